//! The script as GitLab Runner runs it: after_script in a shell of its own with CI_JOB_STATUS,
//! after a failure, a `RUNNER_SCRIPT_TIMEOUT` and a cancellation, under its own timeout; the
//! job's own timeout ending it all, as on GitLab; the runner's umask and shell options.

use std::time::{Duration, Instant};

use crate::common::busybox_project;

#[test]
fn after_script_runs_after_a_failure_with_the_jobs_status_in_a_shell_of_its_own() {
    let p = busybox_project(
        "\
failing:
  script: [export MINE=set, 'false', echo never]
  after_script: ['echo \"status=$CI_JOB_STATUS mine=${MINE:-unset}\"']
passing:
  script: ['true']
  after_script: ['echo \"status=$CI_JOB_STATUS\"']
",
    );
    let run = p.berth(&["run"]);
    run.expect_code(1);
    assert!(run.status_of("failing").contains("exit code 1"));
    let log = run.log("failing");
    assert!(!log.contains(&"never"), "{log:?}");
    assert_eq!(
        log.last().copied(),
        Some("status=failed mine=unset"),
        "{log:?}"
    );
    assert_eq!(run.log("passing").last().copied(), Some("status=success"));
}

#[test]
fn runner_script_timeout_stops_the_script_then_after_script_runs_with_timedout() {
    let p = busybox_project(
        "\
slow:
  variables: {RUNNER_SCRIPT_TIMEOUT: 2s}
  script: [echo started, sleep 120]
  after_script: ['echo \"status=$CI_JOB_STATUS\"', touch after-ran]
  artifacts: {paths: [after-ran], when: always}
",
    );
    let started = Instant::now();
    let run = p.berth(&["run"]);
    run.expect_code(1);
    assert!(
        run.status_of("slow").contains("timed out after 2.0s"),
        "{}",
        run.status_of("slow")
    );
    let log = run.log("slow");
    let warned = log
        .iter()
        .position(|l| l.starts_with("WARNING: step_script could not run to completion because the timeout was exceeded."))
        .unwrap_or_else(|| panic!("no timeout warning in {log:?}"));
    let status = log
        .iter()
        .position(|l| *l == "status=timedout")
        .unwrap_or_else(|| panic!("after_script did not run: {log:?}"));
    assert!(warned < status, "{log:?}");
    // The 120 s sleep was cut short, and after_script's files are the job's.
    assert!(started.elapsed() < Duration::from_secs(60));
    assert!(
        run.stderr.contains("==> slow: artifacts: 1 files"),
        "{}",
        run.stderr
    );
    assert!(p.leftovers().is_empty(), "{:?}", p.leftovers());
}

#[test]
fn after_script_has_its_own_timeout_and_its_failure_leaves_the_result_alone() {
    let p = busybox_project(
        "\
long_after:
  variables: {RUNNER_AFTER_SCRIPT_TIMEOUT: 2s}
  script: [echo ok]
  after_script: [echo cleaning, sleep 120, echo never]
strict:
  variables: {AFTER_SCRIPT_IGNORE_ERRORS: 'false'}
  script: [echo ok]
  after_script: ['exit 4']
",
    );
    let started = Instant::now();
    let run = p.berth(&["run"]);
    run.expect_code(1);
    assert!(started.elapsed() < Duration::from_secs(60));
    assert!(
        run.status_of("long_after").contains("passed"),
        "{}",
        run.stderr
    );
    let log = run.log("long_after");
    assert!(log.contains(&"cleaning"), "{log:?}");
    assert!(!log.contains(&"never"), "{log:?}");
    assert!(
        log.iter().any(|l| l.starts_with(
            "WARNING: after_script could not run to completion because the timeout was exceeded."
        )),
        "{log:?}"
    );
    assert!(log.iter().any(|l| l
        .starts_with("WARNING: after_script failed, but job will continue unaffected: exit code")));
    // AFTER_SCRIPT_IGNORE_ERRORS=false: the after_script's failure fails the job.
    assert!(
        run.status_of("strict").contains("exit code 4"),
        "{}",
        run.stderr
    );
}

#[test]
fn the_jobs_own_timeout_ends_after_script_too_as_on_gitlab() {
    let p = busybox_project(
        "\
sleepy:
  timeout: 2s
  script: [echo started, sleep 120]
  after_script: [echo after ran]
",
    );
    let run = p.berth(&["run"]);
    run.expect_code(1);
    assert!(run.status_of("sleepy").contains("timed out after 2.0s"));
    let log = run.log("sleepy");
    assert!(!log.contains(&"after ran"), "{log:?}");
    assert!(
        log.iter()
            .any(|l| l.starts_with("WARNING: step_script could not run to completion")),
        "{log:?}"
    );
    assert!(p.leftovers().is_empty(), "{:?}", p.leftovers());
}

#[test]
fn a_cancelled_job_runs_its_after_script_with_canceled() {
    let p = busybox_project(
        "\
waiting:
  script: [echo ready, sleep 300]
  after_script: ['echo \"status=$CI_JOB_STATUS\"']
",
    );
    let mut child = p
        .command(&["run"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start berth");
    let mut stderr = child.stderr.take().expect("stderr");
    let mut seen =
        crate::child::read_until(&mut stderr, "[waiting] ready", Duration::from_secs(60));
    assert!(seen.contains("[waiting] ready"), "{seen}");
    // SAFETY: sending a signal to our own child process.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = child.wait().expect("wait");
    let mut rest = String::new();
    let _ = std::io::Read::read_to_string(&mut stderr, &mut rest);
    seen.push_str(&rest);
    assert_eq!(status.code(), Some(130), "{seen}");
    let run = crate::common::Run {
        code: 130,
        stdout: String::new(),
        stderr: seen,
    };
    let log = run.log("waiting");
    assert!(
        log.contains(&"WARNING: script canceled externally (UI, API)"),
        "{log:?}"
    );
    assert_eq!(log.last().copied(), Some("status=canceled"), "{log:?}");
    assert!(p.leftovers().is_empty(), "left behind: {:?}", p.leftovers());
}

#[test]
fn the_script_runs_under_the_runners_umask_and_shell_options() {
    let p = busybox_project(
        "\
job:
  script:
    - umask
    - 'echo old > f; echo new > f; cat f'
    - 'read line || echo stdin closed'
    - 'false | true'
",
    );
    let run = p.berth(&["run"]);
    run.expect_code(1);
    let log = run.log("job");
    assert_eq!(
        log,
        [
            "$ umask",
            "0022",
            "$ echo old > f; echo new > f; cat f",
            "new",
            "$ read line || echo stdin closed",
            "stdin closed",
            "$ false | true",
        ]
    );
}
