//! Dependency caches as Docker named volumes, against the real engine: GitLab's rules (a job
//! works on a copy, saved as `cache: when` says; fallback keys; jobs sharing a key in parallel).

use crate::common::{busybox_project, Run};

const COUNTER: &str = "\
count:
  cache:
    key: {files: [requirements.txt], prefix: deps}
    paths: [.cache/deps]
  script:
    - cat .cache/deps/count 2>/dev/null || echo 0
    - echo $(( $(cat .cache/deps/count 2>/dev/null || echo 0) + 1 )) > .cache/deps/count
";

/// The count the `count` job found (the first line of its output that is a number).
fn count(run: &Run) -> String {
    run.log("count")
        .into_iter()
        .find(|l| l.parse::<u32>().is_ok())
        .unwrap_or_else(|| panic!("no count in:\n{}", run.stderr))
        .to_string()
}

/// What a job said it found (its lines `found <text>`).
fn found<'a>(run: &'a Run, job: &str) -> Vec<&'a str> {
    run.log(job)
        .into_iter()
        .filter_map(|l| l.strip_prefix("found "))
        .collect()
}

#[test]
fn a_cache_survives_between_runs_and_changes_with_its_key_file() {
    let p = busybox_project(COUNTER);
    p.write("requirements.txt", "pytest==8.0\n");
    p.berth(&["run"]).expect_code(0);
    let second = p.berth(&["run"]);
    second.expect_code(0);
    assert_eq!(
        count(&second),
        "1",
        "the second run finds what the first left"
    );
    assert!(second.stderr.contains("cache `deps-"), "{}", second.stderr);

    p.write("requirements.txt", "pytest==9.0\n");
    let changed = p.berth(&["run"]);
    changed.expect_code(0);
    assert_eq!(
        count(&changed),
        "0",
        "a changed lockfile gets a new, empty cache"
    );

    let listed = p.berth(&["cache", "ls"]);
    listed.expect_code(0);
    assert_eq!(
        listed
            .stdout
            .lines()
            .filter(|l| l.starts_with("deps-"))
            .count(),
        2,
        "{}",
        listed.stdout
    );
    assert!(
        listed.stdout.contains("count"),
        "the jobs that used it are listed: {}",
        listed.stdout
    );
    // Caches outlive the run; nothing else does (the jobs' copies neither).
    assert!(p.leftovers().is_empty(), "{:?}", p.leftovers());
}

#[test]
fn two_projects_never_share_a_cache() {
    let a = busybox_project(COUNTER);
    let b = busybox_project(COUNTER);
    a.berth(&["run"]).expect_code(0);
    let run_b = b.berth(&["run"]);
    run_b.expect_code(0);
    assert_eq!(count(&run_b), "0");
}

#[test]
fn policy_pull_writes_are_not_kept() {
    let p = busybox_project(
        "\
stages: [fill, read, check]
fill:
  stage: fill
  cache: {key: shared, paths: [vendor]}
  script: [echo filled > vendor/marker]
read:
  stage: read
  cache: {key: shared, paths: [vendor], policy: pull}
  script: ['echo found $(cat vendor/marker)', echo overwritten > vendor/marker]
check:
  stage: check
  cache: {key: shared, paths: [vendor], policy: pull}
  script: ['echo found $(cat vendor/marker)']
",
    );
    let run = p.berth(&["run"]);
    run.expect_code(0);
    assert_eq!(found(&run, "read"), vec!["filled"], "{}", run.stderr);
    assert_eq!(
        found(&run, "check"),
        vec!["filled"],
        "a pull job may write its copy (as on GitLab), and its writes are not kept"
    );
    assert!(run
        .log("read")
        .contains(&"Not uploading cache shared due to policy"));
}

/// A job writing a cache and exiting with `$CODE`, then one reading it.
fn writer_then_reader(rule: &str) -> String {
    format!(
        "\
stages: [write, read]
write:
  stage: write
  cache: {{key: k, paths: [c]{rule}}}
  allow_failure: true
  script: ['echo $$ > c/pid', 'echo wrote $(cat c/pid)', exit $CODE]
read:
  stage: read
  cache: {{key: k, paths: [c], policy: pull}}
  script: ['echo found $(cat c/pid 2>/dev/null || echo nothing)']
"
    )
}

#[test]
fn a_failed_jobs_cache_is_not_saved() {
    let p = busybox_project(&writer_then_reader(""));
    let failed = p.berth(&["run", "-e", "CODE=1"]);
    failed.expect_code(0);
    assert_eq!(
        found(&failed, "read"),
        vec!["nothing"],
        "the failed job's writes are not saved: {}",
        failed.stderr
    );
    let passed = p.berth(&["run", "-e", "CODE=0"]);
    passed.expect_code(0);
    let wrote = passed.log("write");
    let pid = wrote
        .iter()
        .find_map(|l| l.strip_prefix("wrote "))
        .expect("the job says what it wrote");
    assert_eq!(found(&passed, "read"), vec![pid], "saved on success");
    assert!(wrote.contains(&"Created cache"), "{}", passed.stderr);
}

#[test]
fn cache_when_always_and_on_failure_save_a_failed_jobs_cache() {
    for (rule, on_success) in [(", when: always", true), (", when: on_failure", false)] {
        let p = busybox_project(&writer_then_reader(rule));
        let failed = p.berth(&["run", "-e", "CODE=3"]);
        failed.expect_code(0);
        assert_ne!(
            found(&failed, "read"),
            vec!["nothing"],
            "{rule}: {}",
            failed.stderr
        );
        assert!(failed.log("write").contains(&"Created cache"), "{rule}");
        p.berth(&["cache", "rm", "k"]).expect_code(0);
        let passed = p.berth(&["run", "-e", "CODE=0"]);
        passed.expect_code(0);
        assert_eq!(
            found(&passed, "read") != vec!["nothing"],
            on_success,
            "{rule}: {}",
            passed.stderr
        );
    }
}

#[test]
fn the_fallback_key_restores_and_the_job_saves_under_its_own_key() {
    let pipeline = |key: &str, fallback: &str| {
        format!(
            "image: berth-test/busybox:latest\njob:\n  cache: {{key: {key}, paths: [c]{fallback}}}\n  script: ['echo found $(cat c/from 2>/dev/null || echo nothing)', 'echo {key} > c/from']\n"
        )
    };
    let p = busybox_project("");
    p.write("berth.yml", &pipeline("main", ""));
    p.berth(&["run"]).expect_code(0);
    // A branch's first run: its key has no cache; the first fallback that has one is restored.
    p.write(
        "berth.yml",
        &pipeline("feature", ", fallback_keys: [missing, main]"),
    );
    let first = p.berth(&["run"]);
    first.expect_code(0);
    assert_eq!(found(&first, "job"), vec!["main"], "{}", first.stderr);
    let log = first.log("job");
    for line in [
        "Checking cache for feature...",
        "WARNING: no cache for feature",
        "Checking cache for missing...",
        "Checking cache for main...",
    ] {
        assert!(log.contains(&line), "`{line}` in {log:?}");
    }
    // It saved under its own key.
    let again = p.berth(&["run"]);
    again.expect_code(0);
    assert_eq!(found(&again, "job"), vec!["feature"], "{}", again.stderr);
    // And the variable CACHE_FALLBACK_KEY is tried after the job's own fallbacks.
    p.write("berth.yml", &pipeline("other", ""));
    let global = p.berth(&["run", "-e", "CACHE_FALLBACK_KEY=main"]);
    global.expect_code(0);
    assert_eq!(
        found(&global, "job"),
        vec!["main"],
        "CACHE_FALLBACK_KEY restores too: {}",
        global.stderr
    );
}

#[test]
fn jobs_sharing_a_cache_key_run_at_the_same_time() {
    // Each job notes the kernel's uptime (one clock for every container) as it starts and ends.
    let job = concat!(
        "  cache: {key: shared, paths: [c]}\n",
        "  script:\n",
        "    - echo start $(cut -d' ' -f1 /proc/uptime)\n",
        "    - sleep 2\n",
        "    - echo $CI_JOB_NAME > c/last\n",
        "    - echo end $(cut -d' ' -f1 /proc/uptime)\n",
    );
    let p = busybox_project(&format!(
        "stages: [work, check]\nfirst:\n  stage: work\n{job}second:\n  stage: work\n{job}check:\n  stage: check\n  cache: {{key: shared, paths: [c], policy: pull}}\n  script: ['echo found $(cat c/last)']\n"
    ));
    let run = p.berth(&["run", "-j", "4"]);
    run.expect_code(0);
    let at = |job: &str, what: &str| -> f64 {
        run.log(job)
            .iter()
            .find_map(|l| l.strip_prefix(&format!("{what} ")))
            .and_then(|t| t.parse().ok())
            .unwrap_or_else(|| panic!("no {what} time for {job}:\n{}", run.stderr))
    };
    let a = (at("first", "start"), at("first", "end"));
    let b = (at("second", "start"), at("second", "end"));
    assert!(
        a.0 < b.1 && b.0 < a.1,
        "the jobs overlap: first {a:?}, second {b:?}\n{}",
        run.stderr
    );
    // The last to finish published: the cache is one job's whole copy.
    let last = found(&run, "check");
    assert!(last == vec!["first"] || last == vec!["second"], "{last:?}");
}

#[test]
fn no_cache_runs_with_empty_caches_and_keeps_the_stored_ones() {
    let p = busybox_project(COUNTER);
    p.berth(&["run"]).expect_code(0);
    let fresh = p.berth(&["run", "--no-cache"]);
    fresh.expect_code(0);
    assert_eq!(count(&fresh), "0");
    assert!(fresh.stderr.contains("berth-tmpcache-"), "{}", fresh.stderr);
    let after = p.berth(&["run"]);
    after.expect_code(0);
    assert_eq!(count(&after), "1", "the stored cache was not touched");
    assert!(
        p.leftovers().is_empty(),
        "temporary caches are removed: {:?}",
        p.leftovers()
    );
}

#[test]
fn cache_rm_and_prune() {
    let p = busybox_project(
        "a:\n  cache: {key: one, paths: [x]}\n  script: [touch x/f]\nb:\n  cache: {key: two, paths: [y]}\n  script: [touch y/f]\n",
    );
    p.berth(&["run"]).expect_code(0);
    let rm = p.berth(&["cache", "rm", "one"]);
    rm.expect_code(0);
    assert!(rm.stdout.contains("removed cache `one`"));
    let kept = p.berth(&["cache", "prune", "--older-than", "1d"]);
    kept.expect_code(0);
    assert!(
        !kept.stdout.contains("removed"),
        "recently used caches stay: {}",
        kept.stdout
    );
    let listed = p.berth(&["cache", "ls"]);
    assert!(
        listed.stdout.contains("two") && !listed.stdout.contains("\none "),
        "{}",
        listed.stdout
    );
    let pruned = p.berth(&["cache", "prune"]);
    pruned.expect_code(0);
    assert!(pruned.stdout.contains("removed cache `two`"));
}

#[test]
fn two_berth_processes_publishing_one_cache_leave_one_whole_copy() {
    // Each writes many files with its own mark; a publish holds the cache alone, so the cache
    // ends as one process's copy, never a mix of the two.
    let p = busybox_project(concat!(
        "bump:\n",
        "  cache: {key: shared, paths: [c]}\n",
        "  script:\n",
        "    - mark=$$-$(cut -d' ' -f1 /proc/uptime)\n",
        "    - for i in $(seq 1 300); do echo $mark > c/f$i; done\n",
        "    - sleep 1\n",
    ));
    let spawn = || {
        p.command(&["run", "--output", "plain"])
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start berth")
    };
    let (a, b) = (spawn(), spawn());
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    assert!(a.status.success() && b.status.success());
    p.write(
        "berth.yml",
        "image: berth-test/busybox:latest\nread:\n  cache: {key: shared, paths: [c], policy: pull}\n  script: ['echo found $(ls c | wc -l) $(cat c/f* | sort -u | wc -l)']\n",
    );
    let read = p.berth(&["run"]);
    read.expect_code(0);
    let said: Vec<String> = found(&read, "read")
        .iter()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    assert_eq!(said, vec!["300 1"], "{}", read.stderr);
}

#[test]
fn a_cache_path_that_is_a_link_in_the_project_is_a_pipeline_error() {
    let p = busybox_project("build:\n  cache: {key: k, paths: [vendor/]}\n  script: [ls vendor]\n");
    std::os::unix::fs::symlink("/tmp", p.path().join("vendor")).unwrap();
    let run = p.berth(&["run"]);
    run.expect_code(2);
    assert!(
        run.stderr.contains(
            "job `build`: cache path `vendor` is a symbolic link in the project (to `/tmp`)"
        ),
        "{}",
        run.stderr
    );
    assert!(
        !run.stderr.contains("started"),
        "no job was started: {}",
        run.stderr
    );
    assert!(p.leftovers().is_empty(), "{:?}", p.leftovers());
}
