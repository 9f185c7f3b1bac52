//! The example projects under `fixtures/`, run end to end as a user would.

use crate::common::{require_image, Project, BUSYBOX, PYTHON};

#[test]
fn seed_python_project_installs_tests_and_deploys() {
    require_image(PYTHON);
    let p = Project::fixture("python");
    let run = p.berth(&["run"]);
    run.expect_code(0);
    assert!(run.status_of("install").contains("passed"));
    assert!(run.status_of("pytest").contains("passed"));
    assert!(run.status_of("ship").contains("passed"));
    assert!(
        run.log("install")
            .iter()
            .any(|l| l.contains("Successfully installed calc")),
        "{}",
        run.stderr
    );
    assert!(
        run.log("pytest").iter().any(|l| l.contains(" passed")),
        "{}",
        run.stderr
    );
    assert!(
        run.log("ship").iter().any(|l| l.contains("deploying calc")),
        "{}",
        run.stderr
    );
    assert!(p.leftovers().is_empty(), "{:?}", p.leftovers());
    // The job's installs never reach the host tree.
    assert!(!p.path().join("src/calc.egg-info").exists());
}

#[test]
fn bash_when_the_image_has_it_else_sh() {
    require_image(PYTHON);
    require_image(BUSYBOX);
    let p = Project::new(&[(
        "berth.yml",
        &format!(
            "\
with_bash:
  image: {PYTHON}
  script: ['echo \"shell=${{BASH_VERSION:+bash}}\"']
with_sh:
  image: {BUSYBOX}
  script: ['echo \"shell=${{BASH_VERSION:-sh}}\"']
pipefail:
  image: {PYTHON}
  script: ['false | true', 'echo unreachable']
"
        ),
    )]);
    let run = p.berth(&["run"]);
    run.expect_code(1);
    assert_eq!(run.log("with_sh")[1], "shell=sh");
    assert!(
        run.status_of("pipefail").contains("failed"),
        "{}",
        run.stderr
    );
    assert!(!run.log("pipefail").contains(&"unreachable"));
    assert_eq!(run.log("with_bash")[1], "shell=bash");
}

#[test]
fn dag_fixture_runs_with_its_allowed_failure_and_manual_job() {
    require_image(BUSYBOX);
    let p = Project::fixture("dag");
    let run = p.berth(&["run"]);
    run.expect_code(0);
    assert!(run.status_of("flaky").contains("failed (allowed)"));
    assert!(run.status_of("deploy").contains("manual"));
    assert!(run.status_of("notify failure").contains("skipped"));
    // `needs: []` starts with the first stage, not after it.
    assert!(run.line_index("==> lint: started") < run.line_index("==> compile: passed"));
}

#[test]
fn failures_fixture_stops_at_the_timeout_and_reports() {
    require_image(BUSYBOX);
    let p = Project::fixture("failures");
    let run = p.berth(&["run"]);
    run.expect_code(1);
    assert!(run.status_of("allowed").contains("failed (allowed)"));
    assert!(
        run.status_of("too slow").contains("timed out after 3.0s"),
        "{}",
        run.stderr
    );
    assert!(run.status_of("never reached").contains("skipped"));
    assert_eq!(run.log("on failure")[1], "reporting the failure");
    assert!(p.leftovers().is_empty(), "{:?}", p.leftovers());
}
