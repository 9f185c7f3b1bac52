//! `berth warm` on projects shaped like real ones (fixtures/python-real-*: their `.gitlab-ci.yml`
//! written as such projects write them, not for berth): a cold run passes, `berth warm` runs each
//! job's own commands up to its last install with the index traffic recorded, and `berth run
//! --network none` then passes from the caches and the recorded index. The wheels, pdm and uv
//! among them, are served by a local index service (see pypi.rs).

use crate::common::{Project, Run};
use crate::pypi::require_tools_index;

fn log_has(run: &Run, job: &str, needle: &str) -> bool {
    run.log(job).iter().any(|l| l.contains(needle))
}

/// Cold, warm, offline: what each run must show.
fn cold_warm_offline(fixture: &str, job: &str, warming: &str) -> (Project, [Run; 3]) {
    require_tools_index();
    let p = Project::fixture(fixture);
    let cold = p.berth(&["run"]);
    cold.expect_code(0);
    assert!(log_has(&cold, job, "4 passed"), "{}", cold.stderr);

    let warmed = p.berth(&["warm"]);
    warmed.expect_code(0);
    assert!(warmed.stderr.contains(warming), "{}", warmed.stderr);
    assert!(
        log_has(&warmed, job, "berth warm: recorded index: "),
        "{}",
        warmed.stderr
    );
    assert!(
        !log_has(&warmed, job, "passed"),
        "warm runs nothing after the last install: {}",
        warmed.stderr
    );

    let offline = p.berth(&["run", "--network", "none"]);
    offline.expect_code(0);
    assert!(
        log_has(
            &offline,
            job,
            "berth: replaying (no network) the package index"
        ),
        "{}",
        offline.stderr
    );
    assert!(log_has(&offline, job, "4 passed"), "{}", offline.stderr);
    assert!(p.leftovers().is_empty(), "{:?}", p.leftovers());
    (p, [cold, warmed, offline])
}

#[test]
fn pip_with_its_own_cache_dir_and_test_requirements_runs_offline_after_warm() {
    let (_p, [cold, warmed, offline]) = cold_warm_offline(
        "python-real-pip",
        "test",
        "warming `test` (pip) with its own commands up to `pip install -r test-requirements.txt`",
    );
    // The job's PIP_CACHE_DIR (in its workspace, also its declared `cache:`) is berth's volume.
    assert!(
        cold.stderr.contains(
            "/.cache/pip (the job's own cache directory), in place of its declared cache"
        ),
        "{}",
        cold.stderr
    );
    assert!(
        log_has(&warmed, "test", "berth warm: pip cache: "),
        "{}",
        warmed.stderr
    );
    // What warm downloaded, pip takes from its cache there.
    assert!(
        log_has(&offline, "test", "Using cached http://127.0.0.1:47831/f/"),
        "{}",
        offline.stderr
    );
}

#[test]
fn uv_installed_with_pip_then_uv_sync_runs_offline_after_warm() {
    let (_p, [_, _, offline]) = cold_warm_offline(
        "python-real-uv",
        "tests",
        "warming `tests` (pip, uv) with its own commands up to `uv sync`",
    );
    // pip installs uv from the recorded index, uv the project from its own cache.
    assert!(
        log_has(&offline, "tests", "Successfully installed uv-0.13.9"),
        "{}",
        offline.stderr
    );
}

#[test]
fn pdm_installed_with_pip_then_pdm_install_runs_offline_after_warm() {
    let (_p, [_, _, offline]) = cold_warm_offline(
        "python-real-pdm",
        "test",
        "warming `test` (pip, pdm) with its own commands up to `pdm install`",
    );
    // No freshness limit to explain: pdm asks the recorded index.
    assert!(
        !offline.stderr.contains("pdm has no offline mode"),
        "{}",
        offline.stderr
    );
    assert!(
        log_has(&offline, "test", "Install pytest 8.3.3 successful"),
        "{}",
        offline.stderr
    );
}
