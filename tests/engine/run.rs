//! End-to-end runs of the real binary against the real Docker engine.

use crate::common::{busybox_project, require_image, Project, BUSYBOX};

#[test]
fn stages_run_in_order_and_each_job_gets_a_fresh_workspace() {
    let p = busybox_project(
        "\
stages: [one, two]
write:
  stage: one
  script:
    - cat data.txt
    - echo from-job > data.txt
    - echo new > created.txt
read:
  stage: two
  script:
    - cat data.txt
    - test ! -e created.txt
",
    );
    p.write("data.txt", "from-host\n");
    let run = p.berth(&["run"]);
    run.expect_code(0);
    assert_eq!(run.log("write")[1], "from-host");
    // The second job sees the project as it is on disk, not what the first job wrote.
    assert_eq!(run.log("read")[1], "from-host");
    assert!(run.line_index("==> write: passed") < run.line_index("==> read: started"));
    // Nothing a job writes reaches the host.
    assert_eq!(
        std::fs::read_to_string(p.path().join("data.txt")).unwrap(),
        "from-host\n"
    );
    assert!(!p.path().join("created.txt").exists());
    assert!(p.leftovers().is_empty(), "{:?}", p.leftovers());
}

#[test]
fn untracked_edits_are_seen_and_ignored_files_are_not() {
    let p = busybox_project("job:\n  script:\n    - cat edited.txt\n    - test ! -e build/out.o\n");
    p.write(".gitignore", "build/\n");
    p.write("edited.txt", "uncommitted edit\n");
    p.write("build/out.o", "binary\n");
    let run = p.berth(&["run"]);
    run.expect_code(0);
    assert_eq!(run.log("job")[1], "uncommitted edit");
}

#[test]
fn commands_are_echoed_and_the_failing_command_sets_the_status() {
    let p = busybox_project(
        "\
stages: [build, test, deploy]
build:
  stage: build
  before_script: [echo before]
  script:
    - echo one
    - sh -c 'exit 7'
    - echo never
  after_script:
    - echo cleanup $CI_JOB_NAME
test:
  stage: test
  script: echo should not run
",
    );
    let run = p.berth(&["run"]);
    run.expect_code(1);
    let log = run.log("build");
    assert_eq!(
        log,
        vec![
            "$ echo before",
            "before",
            "$ echo one",
            "one",
            "$ sh -c 'exit 7'",
            "Running after script...",
            "$ echo cleanup $CI_JOB_NAME",
            "cleanup build",
        ]
    );
    assert!(
        run.status_of("build").contains("failed"),
        "{}",
        run.status_of("build")
    );
    assert!(run.status_of("build").contains("exit code 7"));
    assert!(run.status_of("test").contains("skipped"));
    assert!(run.log("test").is_empty());
    assert!(run.stderr.contains("pipeline failed"));
}

#[test]
fn after_script_cannot_change_the_result() {
    let p = busybox_project("job:\n  script: [echo ok]\n  after_script: [exit 5]\n");
    let run = p.berth(&["run"]);
    run.expect_code(0);
    assert!(run
        .log("job")
        .iter()
        .any(|l| l.contains("after_script failed")));
}

#[test]
fn allow_failure_and_when_keywords() {
    let p = busybox_project(
        "\
stages: [a, b, c]
flaky:
  stage: a
  script: exit 3
  allow_failure: {exit_codes: [3]}
next:
  stage: b
  script: echo next ran
notify:
  stage: c
  when: on_failure
  script: echo should not run
always:
  stage: c
  when: always
  script: echo always ran
",
    );
    let run = p.berth(&["run"]);
    run.expect_code(0);
    assert!(run.status_of("flaky").contains("failed (allowed)"));
    assert_eq!(run.log("next"), vec!["$ echo next ran", "next ran"]);
    assert!(run.status_of("notify").contains("skipped"));
    assert_eq!(run.log("always")[1], "always ran");
}

#[test]
fn on_failure_jobs_run_after_a_failure_and_the_pipeline_fails() {
    let p = busybox_project(
        "\
stages: [a, b]
broken:
  stage: a
  script: exit 1
still_running:
  stage: a
  script: [sleep 1, echo sibling finished]
report:
  stage: b
  when: on_failure
  script: echo reporting
",
    );
    let run = p.berth(&["run"]);
    run.expect_code(1);
    // A job already running in the failing stage finishes.
    assert!(run.status_of("still_running").contains("passed"));
    assert_eq!(run.log("report")[1], "reporting");
}

#[test]
fn needs_starts_a_job_before_its_stage_comes() {
    let p = busybox_project(
        "\
stages: [build, test]
slow:
  stage: build
  script: [sleep 3, echo slow done]
quick:
  stage: build
  script: echo quick done
after_quick:
  stage: test
  needs: [quick]
  script: echo dag
",
    );
    let run = p.berth(&["run"]);
    run.expect_code(0);
    assert!(
        run.line_index("==> after_quick: started") < run.line_index("==> slow: passed"),
        "a job with needs must not wait for the whole earlier stage:\n{}",
        run.stderr
    );
}

#[test]
fn a_failed_need_skips_the_dependent_job() {
    let p = busybox_project(
        "\
stages: [build, test]
compile:
  stage: build
  script: exit 2
unit:
  stage: test
  needs: [compile]
  script: echo never
",
    );
    let run = p.berth(&["run"]);
    run.expect_code(1);
    assert!(run.status_of("unit").contains("skipped"));
    assert!(run.status_of("unit").contains("compile"));
}

#[test]
fn named_jobs_run_with_what_they_need() {
    let p = busybox_project(
        "\
stages: [a, b]
dep:
  stage: a
  script: echo dep
other:
  stage: a
  script: echo other
target:
  stage: b
  needs: [dep]
  script: echo target
",
    );
    let run = p.berth(&["run", "target"]);
    run.expect_code(0);
    assert_eq!(run.log("dep")[1], "dep");
    assert_eq!(run.log("target")[1], "target");
    assert!(run.log("other").is_empty());
    assert!(!run.stderr.contains("==> other"));
    let unknown = p.berth(&["run", "nope"]);
    unknown.expect_code(2);
    assert!(unknown.stderr.contains("no job named `nope`"));
}

#[test]
fn variables_follow_gitlab_precedence_and_predefined_ones_are_set() {
    let p = busybox_project(
        "\
variables:
  WHO: pipeline
  GREETING: hello $WHO
  LITERAL: {value: '$WHO', expand: false}
job with spaces:
  stage: test
  variables:
    WHO: job
  script:
    - echo \"$GREETING|$LITERAL|$CI|$CI_JOB_NAME|$CI_JOB_STAGE|$CI_PROJECT_DIR|$(pwd)|$FROM_CLI\"
    - test -n \"$CI_PIPELINE_ID\" && test -n \"$CI_COMMIT_SHA\" && test -n \"$CI_COMMIT_REF_NAME\"
",
    );
    let run = p.berth(&["run", "-e", "FROM_CLI=cli"]);
    run.expect_code(0);
    let name = p.path().file_name().unwrap().to_string_lossy().into_owned();
    assert_eq!(
        run.log("job with spaces")[1],
        format!("hello job|$WHO|true|job with spaces|test|/builds/{name}|/builds/{name}|cli")
    );
}

#[test]
fn git_facts_reach_the_job() {
    let p = busybox_project("job:\n  script: echo \"$CI_COMMIT_SHA $CI_COMMIT_REF_NAME\"\n");
    p.git(&["init", "-q", "-b", "feature-x"]);
    p.git(&["add", "."]);
    p.git(&["commit", "-q", "-m", "init"]);
    let sha = p.git(&["rev-parse", "HEAD"]);
    let run = p.berth(&["run"]);
    run.expect_code(0);
    assert_eq!(run.log("job")[1], format!("{sha} feature-x"));
}

#[test]
fn timeout_stops_the_job_and_removes_its_container() {
    let p = busybox_project("sleepy:\n  timeout: 2s\n  script: [echo started, sleep 120]\n");
    let started = std::time::Instant::now();
    let run = p.berth(&["run"]);
    run.expect_code(1);
    assert!(
        run.status_of("sleepy").contains("timed out after 2.0s"),
        "{}",
        run.status_of("sleepy")
    );
    // Not a timing assertion on berth's speed: only that the 120 s sleep was cut short.
    assert!(started.elapsed() < std::time::Duration::from_secs(60));
    assert!(p.leftovers().is_empty(), "{:?}", p.leftovers());
}

#[test]
fn retry_runs_the_job_again_in_a_fresh_container() {
    let p = busybox_project(
        "flaky:\n  retry: 2\n  script:\n    - test ! -e /tmp/marker\n    - touch /tmp/marker\n    - exit 1\n",
    );
    let run = p.berth(&["run"]);
    run.expect_code(1);
    // Each attempt starts clean: the marker of the previous attempt is gone.
    assert_eq!(run.stderr.matches("==> flaky: started").count(), 3);
    assert_eq!(run.stderr.matches("retrying").count(), 2);
    assert_eq!(
        run.log("flaky")
            .iter()
            .filter(|l| **l == "$ exit 1")
            .count(),
        3
    );
}

#[test]
fn parallel_jobs_of_a_stage_overlap_within_the_limit() {
    let p = busybox_project(
        "\
a:
  script: [sleep 2, echo a]
b:
  script: [sleep 2, echo b]
",
    );
    let run = p.berth(&["run", "-j", "2"]);
    run.expect_code(0);
    assert!(run.line_index("==> b: started") < run.line_index("==> a: passed"));
    let serial = p.berth(&["run", "-j", "1"]);
    serial.expect_code(0);
    assert!(serial.line_index("==> a: passed") < serial.line_index("==> b: started"));
}

#[test]
fn mount_mode_shares_the_project_directory() {
    let p = busybox_project("job:\n  script: [cat in.txt, echo from-job > out.txt]\n");
    p.write("in.txt", "host\n");
    let run = p.berth(&["run", "--workspace", "mount"]);
    run.expect_code(0);
    assert_eq!(run.log("job")[1], "host");
    assert_eq!(
        std::fs::read_to_string(p.path().join("out.txt")).unwrap(),
        "from-job\n"
    );
}

#[test]
fn manual_jobs_run_only_when_named() {
    let p = busybox_project(
        "build:\n  script: echo build\ndeploy:\n  when: manual\n  script: echo deploying\n",
    );
    let run = p.berth(&["run"]);
    run.expect_code(0);
    assert!(run.status_of("deploy").contains("manual"));
    assert!(run.log("deploy").is_empty());
    let named = p.berth(&["run", "deploy"]);
    named.expect_code(0);
    assert_eq!(named.log("deploy")[1], "deploying");
}

#[test]
fn an_image_built_from_a_directory_with_its_entrypoint_honoured() {
    require_image(BUSYBOX);
    let p = Project::new(&[
        (
            "berth.yml",
            "\
with_entrypoint:
  image: {build: tool}
  script: [tool-version]
",
        ),
        (
            "tool/Dockerfile",
            &format!(
                "FROM {BUSYBOX}\nCOPY entry.sh /entry.sh\nCOPY tool-version /usr/bin/tool-version\nENTRYPOINT [\"/entry.sh\"]\n"
            ),
        ),
        ("tool/entry.sh", "#!/bin/sh\necho entrypoint ran\nexec \"$@\"\n"),
        ("tool/tool-version", "#!/bin/sh\necho tool 1.0\n"),
    ]);
    use std::os::unix::fs::PermissionsExt;
    for f in ["tool/entry.sh", "tool/tool-version"] {
        std::fs::set_permissions(p.path().join(f), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let run = p.berth(&["run"]);
    run.expect_code(0);
    assert_eq!(run.log("with_entrypoint")[0], "entrypoint ran");
    assert!(run.log("with_entrypoint").contains(&"tool 1.0"));
    assert!(run.stderr.contains("berth-build/tool:"));
    // Built once, then reused: the second run does not build.
    let again = p.berth(&["run"]);
    again.expect_code(0);
    assert!(!again.stderr.contains("building"), "{}", again.stderr);
}

#[test]
fn entrypoint_override_clears_the_image_entrypoint() {
    require_image(BUSYBOX);
    let p = Project::new(&[
        ("berth.yml", "build:\n  stage: build\n  image: {build: tool}\n  script: [echo built]\nclear:\n  stage: test\n  image: {name: IMAGE, entrypoint: ['']}\n  script: [echo plain]\n"),
        ("tool/Dockerfile", &format!("FROM {BUSYBOX}\nCOPY entry.sh /entry.sh\nENTRYPOINT [\"/entry.sh\"]\n")),
        ("tool/entry.sh", "#!/bin/sh\necho entrypoint ran\nexec \"$@\"\n"),
    ]);
    let first = p.berth(&["run", "build"]);
    first.expect_code(0);
    assert_eq!(first.log("build")[0], "entrypoint ran");
    let tag = first
        .stderr
        .lines()
        .find_map(|l| {
            l.split_whitespace()
                .find(|w| w.starts_with("berth-build/tool:"))
        })
        .expect("the built tag is reported")
        .trim_end_matches([')', ',', ':'])
        .to_string();
    p.write(
        "berth.yml",
        &format!("clear:\n  image: {{name: '{tag}', entrypoint: ['']}}\n  script: [echo plain]\n"),
    );
    let run = p.berth(&["run"]);
    run.expect_code(0);
    assert_eq!(run.log("clear"), vec!["$ echo plain", "plain"]);
}

#[test]
fn a_missing_image_is_exit_3_naming_job_and_image() {
    let p = busybox_project("job:\n  image: berth-test/no-such-image:never\n  script: echo hi\n");
    let run = p.berth(&["run"]);
    run.expect_code(3);
    assert!(run.stderr.contains("job `job`"), "{}", run.stderr);
    assert!(run.stderr.contains("berth-test/no-such-image:never"));
    assert!(p.leftovers().is_empty());
}

#[test]
fn every_missing_image_is_named_at_once() {
    let p = busybox_project(
        "a:\n  image: berth-test/no-such-image:one\n  script: echo hi\nb:\n  image: berth-test/no-such-image:two\n  script: echo hi\nc:\n  script: echo hi\n",
    );
    let run = p.berth(&["run"]);
    run.expect_code(3);
    assert!(
        run.stderr.contains("2 images cannot be had"),
        "{}",
        run.stderr
    );
    for (job, image) in [("a", "no-such-image:one"), ("b", "no-such-image:two")] {
        assert!(
            run.stderr.contains(&format!("job `{job}`")),
            "{}",
            run.stderr
        );
        assert!(run.stderr.contains(image), "{}", run.stderr);
    }
    assert!(p.leftovers().is_empty());
}

#[test]
fn docker_unreachable_is_exit_3() {
    let p = busybox_project("job:\n  script: echo hi\n");
    let run = Run::from(
        p.command(&["run"])
            .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
            .output()
            .unwrap(),
    );
    run.expect_code(3);
    assert!(
        run.stderr.contains("cannot reach the Docker engine"),
        "{}",
        run.stderr
    );
}

use crate::common::Run;
