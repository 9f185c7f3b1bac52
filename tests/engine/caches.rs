//! Dependency caches as Docker named volumes, against the real engine.

use crate::common::busybox_project;

const COUNTER: &str = "\
count:
  cache:
    key: {files: [requirements.txt], prefix: deps}
    paths: [.cache/deps]
  script:
    - cat .cache/deps/count 2>/dev/null || echo 0
    - echo $(( $(cat .cache/deps/count 2>/dev/null || echo 0) + 1 )) > .cache/deps/count
";

#[test]
fn a_cache_survives_between_runs_and_changes_with_its_key_file() {
    let p = busybox_project(COUNTER);
    p.write("requirements.txt", "pytest==8.0\n");
    p.berth(&["run"]).expect_code(0);
    let second = p.berth(&["run"]);
    second.expect_code(0);
    assert_eq!(
        second.log("count")[1],
        "1",
        "the second run finds what the first left"
    );
    assert!(second.stderr.contains("cache `deps-"), "{}", second.stderr);

    p.write("requirements.txt", "pytest==9.0\n");
    let changed = p.berth(&["run"]);
    changed.expect_code(0);
    assert_eq!(
        changed.log("count")[1],
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
    // Caches outlive the run; nothing else does.
    assert!(p.leftovers().is_empty(), "{:?}", p.leftovers());
}

#[test]
fn two_projects_never_share_a_cache() {
    let a = busybox_project(COUNTER);
    let b = busybox_project(COUNTER);
    a.berth(&["run"]).expect_code(0);
    let run_b = b.berth(&["run"]);
    run_b.expect_code(0);
    assert_eq!(run_b.log("count")[1], "0");
}

#[test]
fn policy_pull_cannot_write() {
    let p = busybox_project(
        "\
stages: [fill, read]
fill:
  stage: fill
  cache: {key: shared, paths: [vendor]}
  script: [echo filled > vendor/marker]
read:
  stage: read
  cache: {key: shared, paths: [vendor], policy: pull}
  script: [cat vendor/marker, echo overwrite > vendor/marker]
",
    );
    let run = p.berth(&["run"]);
    run.expect_code(1);
    assert_eq!(run.log("read")[1], "filled");
    assert!(
        run.log("read")
            .iter()
            .any(|l| l.contains("Read-only file system")),
        "{}",
        run.stderr
    );
}

#[test]
fn parallel_jobs_share_a_cache_without_losing_updates() {
    // Each job reads, waits, then writes: without exclusive access one update would be lost.
    let job = concat!(
        "  cache: {key: shared, paths: [c]}\n",
        "  script:\n",
        "    - n=$(cat c/count 2>/dev/null || echo 0)\n",
        "    - sleep 1\n",
        "    - echo $((n + 1)) > c/count\n",
    );
    let p = busybox_project(&format!(
        "stages: [work, check]\nfirst:\n  stage: work\n{job}second:\n  stage: work\n{job}check:\n  stage: check\n  cache: {{key: shared, paths: [c], policy: pull}}\n  script: [cat c/count]\n"
    ));
    let run = p.berth(&["run", "-j", "4"]);
    run.expect_code(0);
    assert_eq!(run.log("check")[1], "2", "{}", run.stderr);
}

#[test]
fn no_cache_runs_with_empty_caches_and_keeps_the_stored_ones() {
    let p = busybox_project(COUNTER);
    p.berth(&["run"]).expect_code(0);
    let fresh = p.berth(&["run", "--no-cache"]);
    fresh.expect_code(0);
    assert_eq!(fresh.log("count")[1], "0");
    assert!(fresh.stderr.contains("berth-tmpcache-"), "{}", fresh.stderr);
    let after = p.berth(&["run"]);
    after.expect_code(0);
    assert_eq!(
        after.log("count")[1],
        "1",
        "the stored cache was not touched"
    );
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
fn two_berth_processes_share_a_cache_without_losing_updates() {
    let p = busybox_project(concat!(
        "bump:\n",
        "  cache: {key: shared, paths: [c]}\n",
        "  script:\n",
        "    - n=$(cat c/count 2>/dev/null || echo 0)\n",
        "    - sleep 1\n",
        "    - echo $((n + 1)) > c/count\n",
        "    - cat c/count\n",
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
    let counts: Vec<String> = [a, b]
        .iter()
        .filter_map(|o| {
            String::from_utf8_lossy(&o.stderr)
                .lines()
                .rev()
                .find_map(|l| {
                    l.strip_prefix("[bump] ")
                        .filter(|x| x.parse::<u32>().is_ok())
                        .map(String::from)
                })
        })
        .collect();
    let mut counts = counts;
    counts.sort();
    assert_eq!(counts, vec!["1", "2"], "one update was lost");
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
