//! The GitLab corpus (fixtures/gitlab/): `berth plan --output json` on every case must give the
//! plan checked in beside it, written from GitLab's documentation and compared with
//! gitlab-ci-local (see fixtures/gitlab/README.md). The script builds each case's git
//! repository (branch, tag, changed files) the same way for berth and for gitlab-ci-local; here
//! it runs for berth alone, so the test needs no Node.

use std::process::Command;

#[test]
fn berth_plans_every_corpus_case_as_gitlab_would() {
    let root = env!("CARGO_MANIFEST_DIR");
    let out = Command::new("bash")
        .arg(format!("{root}/scripts/compare-gitlab-ci-local.sh"))
        .env("BERTH", env!("CARGO_BIN_EXE_berth"))
        // Only berth is compared here; the oracle is run by hand (see the script's header).
        .env("GITLAB_CI_LOCAL", "gitlab-ci-local-not-used-by-this-test")
        .output()
        .expect("bash runs the comparison script");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "berth differs from the expected plans:\n{stdout}\n{stderr}"
    );
    let summary = stdout.lines().last().unwrap_or_default();
    let cases = std::fs::read_dir(format!("{root}/fixtures/gitlab"))
        .expect("the corpus is there")
        .filter(|e| e.as_ref().is_ok_and(|e| e.path().is_dir()))
        .count();
    assert!(
        summary.starts_with(&format!("{cases} cases: berth matches {cases}")),
        "{summary}"
    );
}
