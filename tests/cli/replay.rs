//! `berth replay`: recorded jobs run again with the recorded variables in the recorded image,
//! and give the same log; what drifted since (the tree, a secret) is named and refused.

use crate::common::{busybox_project, Project, Run, BUSYBOX};

fn runs(p: &Project) -> Vec<String> {
    let mut ids: Vec<String> = std::fs::read_dir(p.path().join(".berth/runs"))
        .expect("runs dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    ids.sort();
    ids
}

fn with_token(p: &Project, args: &[&str], token: Option<&str>) -> Run {
    let mut cmd = p.command(args);
    match token {
        Some(t) => cmd.env("TOKEN", t),
        None => cmd.env_remove("TOKEN"),
    };
    cmd.output().expect("berth runs").into()
}

#[test]
fn a_replayed_failure_gives_the_same_log_and_drift_is_refused() {
    let p = busybox_project(
        "\
flaky:
  variables: {LEVEL: three}
  script:
    - echo \"pipeline=$CI_PIPELINE_ID job=$CI_JOB_ID level=$LEVEL token=$TOKEN\"
    - exit 3
",
    );
    p.write(".gitignore", ".berth/\n");
    p.git(&["init", "-q", "-b", "main"]);
    p.git(&["add", "-A"]);
    p.git(&["commit", "-q", "-m", "first"]);

    let first = with_token(
        &p,
        &["run", "--output", "plain", "--secret", "TOKEN"],
        Some("s3cret"),
    );
    first.expect_code(1);
    let original = runs(&p).pop().expect("a run");

    let replayed = with_token(
        &p,
        &["replay", &original, "--output", "plain"],
        Some("s3cret"),
    );
    replayed.expect_code(1);
    // Run ids start with the second they began: the new one is the one that was not there.
    let again = runs(&p)
        .into_iter()
        .find(|r| r != &original)
        .expect("a second run");
    let log = |run: &str| p.berth(&["logs", run, "flaky"]).stdout;
    let (a, b) = (log(&original), log(&again));
    assert!(a.contains("level=three token=[MASKED]"), "{a}");
    // The recorded variables (pipeline and job ids included) come back: the same log, the
    // sections' timestamps aside.
    let untimed = |log: &str| {
        String::from_utf8_lossy(&crate::logs::without_timestamps(log.as_bytes())).into_owned()
    };
    assert_eq!(untimed(&a), untimed(&b));

    // A secret that is not there is drift, named.
    let no_secret = with_token(&p, &["replay", &original], None);
    no_secret.expect_code(2);
    assert!(
        no_secret.stderr.contains("secret TOKEN is not set"),
        "{}",
        no_secret.stderr
    );

    // An uncommitted change is drift; --allow-drift replays anyway.
    p.write("notes.txt", "changed\n");
    let dirty = with_token(&p, &["replay", &original], Some("s3cret"));
    dirty.expect_code(2);
    assert!(
        dirty.stderr.contains("uncommitted changes"),
        "{}",
        dirty.stderr
    );
    let forced = with_token(
        &p,
        &[
            "replay",
            &original,
            "flaky",
            "--allow-drift",
            "--output",
            "plain",
        ],
        Some("s3cret"),
    );
    forced.expect_code(1);
    assert!(
        forced.stderr.contains("replaying anyway"),
        "{}",
        forced.stderr
    );
    assert!(p.leftovers().is_empty(), "{:?}", p.leftovers());
}

/// `build` makes an artifact and a dotenv report (kept as an artifact too, as GitLab keeps
/// reports), `test` reads them.
const BUILD_THEN_TEST: &str = "\
stages: [build, test]
build:
  stage: build
  script:
    - echo \"built at $CI_PIPELINE_ID\" > out.txt
    - echo VERSION=1.2.3 > build.env
  artifacts:
    paths: [out.txt]
    reports:
      dotenv: build.env
test:
  stage: test
  script:
    - cat out.txt
    - echo \"version=$VERSION\"
";

#[test]
fn one_job_runs_alone_fed_with_what_a_recorded_run_produced() {
    let p = busybox_project(BUILD_THEN_TEST);
    let first = p.berth(&["run"]);
    first.expect_code(0);
    let recorded = runs(&p).pop().expect("a run");
    let built = p.berth(&["logs", "test"]);
    let built_line = built
        .stdout
        .lines()
        .find(|l| l.contains("built at"))
        .unwrap_or_else(|| panic!("{}", built.stdout))
        .to_string();

    let alone = p.berth(&["run", "test", "--from-run"]);
    alone.expect_code(0);
    // `build` is not run again: the run says where its artifacts and variables came from.
    let taken = format!(
        "==> build: passed (not run again: taken from run {recorded} (2 artifact files and 1 dotenv variables))"
    );
    assert!(alone.stderr.contains(&taken), "{}", alone.stderr);
    assert!(
        !alone.stderr.contains("==> build: passed in"),
        "{}",
        alone.stderr
    );
    let log = p.berth(&["logs", "test"]);
    assert!(log.stdout.contains(&built_line), "{}", log.stdout);
    assert!(log.stdout.contains("version=1.2.3"), "{}", log.stdout);
    // The new record holds the archive it took, so it is whole without the old one.
    let newest = runs(&p).pop().expect("a run");
    assert_ne!(newest, recorded);
    let taken = std::fs::read_dir(p.path().join(".berth/runs").join(&newest).join("artifacts"))
        .expect("artifacts")
        .filter_map(|e| e.ok())
        .any(|e| e.file_name().to_string_lossy().ends_with(".tar.gz"));
    assert!(taken, "no archive in the new record");
    assert!(p.leftovers().is_empty(), "{:?}", p.leftovers());

    // Named explicitly, the run is found the same; with no job, or from a run where the need
    // did not pass, nothing runs (exit 2) and the message says why.
    p.berth(&["run", "test", "--from-run", &recorded])
        .expect_code(0);
    // A run that took them records them as its own: the next one takes them from it.
    p.berth(&["run", "test", "--from-run"]).expect_code(0);
    let log = p.berth(&["logs", "test"]);
    assert!(
        log.stdout.contains(&built_line) && log.stdout.contains("version=1.2.3"),
        "{}",
        log.stdout
    );
    let none = p.berth(&["run", "--from-run"]);
    none.expect_code(2);
    assert!(
        none.stderr.contains("name at least one job"),
        "{}",
        none.stderr
    );
    p.write(
        "berth.yml",
        &format!(
            "image: {BUSYBOX}\n{}",
            BUILD_THEN_TEST.replace("    - echo VERSION=1.2.3 > build.env\n", "    - exit 4\n")
        ),
    );
    p.berth(&["run"]).expect_code(1);
    let failed = p.berth(&["run", "test", "--from-run"]);
    failed.expect_code(2);
    assert!(
        failed
            .stderr
            .contains("job `build` is needed but failed in run"),
        "{}",
        failed.stderr
    );
    assert!(p.leftovers().is_empty(), "{:?}", p.leftovers());
}
