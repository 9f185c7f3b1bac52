//! `berth replay`: recorded jobs run again with the recorded variables in the recorded image,
//! and give the same log; what drifted since (the tree, a secret) is named and refused.

use crate::common::{busybox_project, Project, Run};

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
