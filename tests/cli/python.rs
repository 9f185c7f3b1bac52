//! Zero-config Python dependency caches, `berth warm`, `--network none` and cache export/import,
//! against the real engine, with the fixture's wheels served by a local index service.

use crate::common;
use crate::common::{
    require_image, Project, Run, PYTHON_PDM, PYTHON_PIPENV, PYTHON_POETRY, PYTHON_UV,
};
use crate::pypi::require_index;

fn fixture() -> Project {
    require_index();
    Project::fixture("python-deps")
}

/// The keys of this project's caches, from `berth cache ls`.
/// The project's cache keys, sorted: `berth cache ls` lists them in the engine's order, which
/// an export and import need not keep.
fn cache_keys(p: &Project) -> Vec<String> {
    let listed = p.berth(&["cache", "ls"]);
    listed.expect_code(0);
    let mut keys: Vec<String> = listed
        .stdout
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect();
    keys.sort();
    keys
}

fn log_has(run: &Run, job: &str, needle: &str) -> bool {
    run.log(job).iter().any(|l| l.contains(needle))
}

#[test]
fn a_cold_run_fills_the_cache_and_the_next_run_installs_from_it() {
    let p = fixture();
    let cold = p.berth(&["run"]);
    cold.expect_code(0);
    assert!(
        log_has(&cold, "test", "Downloading http://pypi/files/pytest-8.3.3"),
        "{}",
        cold.stderr
    );
    assert!(
        cold.stderr.contains("cache `python-pip-"),
        "{}",
        cold.stderr
    );
    assert!(log_has(&cold, "test", "passed"), "{}", cold.stderr);

    let warm = p.berth(&["run"]);
    warm.expect_code(0);
    assert!(
        log_has(&warm, "test", "Using cached http://pypi/files/pytest-8.3.3"),
        "{}",
        warm.stderr
    );
    assert!(
        !log_has(&warm, "test", "Downloading"),
        "nothing is downloaded again: {}",
        warm.stderr
    );
    let keys = cache_keys(&p);
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert!(keys[0].starts_with("python-pip-"));
    assert!(p.leftovers().is_empty(), "{:?}", p.leftovers());
}

#[test]
fn after_warm_the_pipeline_passes_with_no_network() {
    let p = fixture();
    // Without a warmed cache, no network means no packages: the switch really cuts it off.
    let cold = p.berth(&["run", "--network", "none"]);
    cold.expect_code(1);
    assert!(
        log_has(&cold, "test", "Services not started"),
        "{}",
        cold.stderr
    );

    // Warm runs the job's own commands up to its last install, its index traffic recorded.
    let warmed = p.berth(&["warm"]);
    warmed.expect_code(0);
    assert!(
        warmed.stderr.contains(
            "warming `test` (pip) with its own commands up to `/tmp/venv/bin/pip install -r requirements.txt`"
        ),
        "{}",
        warmed.stderr
    );
    assert!(
        log_has(
            &warmed,
            "test",
            "berth warm: recorded index: 5 pages, 5 files"
        ),
        "{}",
        warmed.stderr
    );
    assert!(
        !log_has(&warmed, "test", "pytest -q"),
        "warm runs none of the job's commands after its last install"
    );

    // Offline, pip's index is the proxy replaying what warm recorded.
    let offline = p.berth(&["run", "--network", "none"]);
    offline.expect_code(0);
    assert!(
        log_has(
            &offline,
            "test",
            "berth: replaying (no network) the package index"
        ),
        "{}",
        offline.stderr
    );
    assert!(
        log_has(
            &offline,
            "test",
            "Looking in indexes: http://127.0.0.1:47831/i/0/"
        ),
        "{}",
        offline.stderr
    );
    assert!(log_has(&offline, "test", "4 passed"), "{}", offline.stderr);
    assert!(p.leftovers().is_empty(), "{:?}", p.leftovers());
}

#[test]
fn a_changed_lockfile_gets_a_new_key_and_the_switch_turns_caching_off() {
    let p = fixture();
    p.berth(&["warm"]).expect_code(0);
    // pip's cache and the index warm recorded, each keyed by the lockfile.
    let first = cache_keys(&p);
    assert_eq!(first.len(), 2, "{first:?}");
    let text = std::fs::read_to_string(p.path().join("requirements.txt")).unwrap();
    p.write("requirements.txt", &format!("{text}# pinned again\n"));
    p.berth(&["warm"]).expect_code(0);
    let second = cache_keys(&p);
    assert_eq!(second.len(), 4, "{second:?}");
    assert!(second.contains(&first[0]));

    let off = p.berth(&["run", "--no-python-cache"]);
    off.expect_code(0);
    assert!(!off.stderr.contains("cache `python-"), "{}", off.stderr);
    let by_variable = p.berth(&["run", "-e", "BERTH_PYTHON_CACHE=false"]);
    by_variable.expect_code(0);
    assert!(
        !by_variable.stderr.contains("cache `python-"),
        "{}",
        by_variable.stderr
    );
}

#[test]
fn warmed_caches_move_through_export_and_import() {
    let p = fixture();
    p.berth(&["warm"]).expect_code(0);
    // pip's cache and the index warm recorded.
    let keys = cache_keys(&p);
    assert_eq!(keys.len(), 2, "{keys:?}");
    let bundle = p.path().join("caches.tar.gz");
    let bundle_arg = bundle.display().to_string();
    let exported = p.berth(&["cache", "export", &keys[0], &keys[1], "-o", &bundle_arg]);
    exported.expect_code(0);
    assert!(
        exported.stdout.contains("exported 2 cache volumes"),
        "{}",
        exported.stdout
    );

    // A fresh engine state: the caches are gone, and with them the offline run.
    p.berth(&["cache", "rm", &keys[0], &keys[1]]).expect_code(0);
    assert!(cache_keys(&p).is_empty());
    p.berth(&["run", "--network", "none"]).expect_code(1);

    let imported = p.berth(&["cache", "import", &bundle_arg]);
    imported.expect_code(0);
    assert!(
        imported
            .stdout
            .contains(&format!("imported cache `{}`", keys[0])),
        "{}",
        imported.stdout
    );
    assert_eq!(cache_keys(&p), keys, "the same key, the same labels");
    let offline = p.berth(&["run", "--network", "none"]);
    offline.expect_code(0);
    assert!(log_has(&offline, "test", "4 passed"), "{}", offline.stderr);

    // The same content again: nothing to do. Other content under the key: refused, unchanged.
    let again = p.berth(&["cache", "import", &bundle_arg]);
    again.expect_code(0);
    assert!(again.stdout.contains("identical"), "{}", again.stdout);
    p.berth(&["run"]).expect_code(0); // the online run adds pip's HTTP cache to the volume
    let refused = p.berth(&["cache", "import", &bundle_arg]);
    refused.expect_code(2);
    assert!(
        refused.stderr.contains("other content"),
        "{}",
        refused.stderr
    );
    let forced = p.berth(&["cache", "import", "--force", &bundle_arg]);
    forced.expect_code(0);
    assert!(
        forced.stdout.contains("replaced cache"),
        "{}",
        forced.stdout
    );
    assert!(p.leftovers().is_empty(), "{:?}", p.leftovers());
}

#[test]
fn with_uv_and_a_uv_lock_warm_then_run_offline() {
    require_index();
    require_image(PYTHON_UV);
    let p = Project::fixture("python-deps-uv");
    p.berth(&["run", "--network", "none"]).expect_code(1);

    let warmed = p.berth(&["warm"]);
    warmed.expect_code(0);
    // Warm runs the job's own install.
    assert!(
        warmed
            .stderr
            .contains("warming `test` (uv) with its own commands up to `uv sync --frozen`"),
        "{}",
        warmed.stderr
    );
    // `lock` (a manual job) uses uv the same way in the same image: warmed once, not twice.
    assert!(
        warmed.stderr.contains("warming `test` (uv)"),
        "{}",
        warmed.stderr
    );
    assert!(
        !warmed.stderr.contains("warming `lock`"),
        "{}",
        warmed.stderr
    );
    let keys = cache_keys(&p);
    assert!(
        keys.len() == 1 && keys[0].starts_with("python-uv-"),
        "{keys:?}"
    );

    let offline = p.berth(&["run", "--network", "none"]);
    offline.expect_code(0);
    assert!(
        log_has(&offline, "test", "Installed 5 packages"),
        "{}",
        offline.stderr
    );
    assert!(log_has(&offline, "test", "4 passed"), "{}", offline.stderr);
    assert!(p.leftovers().is_empty(), "{:?}", p.leftovers());
}

#[test]
fn warm_names_what_it_cannot_warm() {
    let p = common::busybox_project("build:\n  script: [make]\n");
    let none = p.berth(&["warm"]);
    none.expect_code(0);
    assert!(none.stderr.contains("nothing to warm"), "{}", none.stderr);
    let named = p.berth(&["warm", "build"]);
    named.expect_code(2);
    assert!(
        named
            .stderr
            .contains("job `build` installs no Python packages"),
        "{}",
        named.stderr
    );
    let offline = p.berth(&["warm", "--network", "none"]);
    offline.expect_code(2);
}

#[test]
fn with_poetry_and_a_poetry_lock_warm_then_run_offline() {
    require_index();
    require_image(PYTHON_POETRY);
    let p = Project::fixture("python-deps-poetry");
    let cold = p.berth(&["run"]);
    cold.expect_code(0);
    assert!(
        log_has(&cold, "test", "Installing pytest (8.3.3)"),
        "{}",
        cold.stderr
    );
    assert!(log_has(&cold, "test", "4 passed"), "{}", cold.stderr);
    let keys = cache_keys(&p);
    assert!(
        keys.len() == 1 && keys[0].starts_with("python-poetry-"),
        "{keys:?}"
    );

    let warmed = p.berth(&["warm"]);
    warmed.expect_code(0);
    // Warm runs the job's own install.
    assert!(
        warmed.stderr.contains(
            "warming `test` (poetry) with its own commands up to `poetry install --no-interaction`"
        ),
        "{}",
        warmed.stderr
    );
    // `lock` (a manual job) uses poetry the same way in the same image: warmed once.
    assert!(
        warmed.stderr.contains("warming `test` (poetry)"),
        "{}",
        warmed.stderr
    );
    assert!(
        !warmed.stderr.contains("warming `lock`"),
        "{}",
        warmed.stderr
    );
    assert_eq!(cache_keys(&p), keys, "warm fills the run's cache");

    // The virtualenv is not in the volume: offline, poetry installs every package again, from
    // the files in its cache.
    let offline = p.berth(&["run", "--network", "none"]);
    offline.expect_code(0);
    assert!(
        offline
            .stderr
            .contains("job `test`: poetry has no offline mode"),
        "{}",
        offline.stderr
    );
    assert!(
        log_has(&offline, "test", "Installing pytest (8.3.3)"),
        "{}",
        offline.stderr
    );
    assert!(log_has(&offline, "test", "4 passed"), "{}", offline.stderr);
    assert!(p.leftovers().is_empty(), "{:?}", p.leftovers());
}

#[test]
fn with_pdm_and_a_pdm_lock_warm_then_run_offline() {
    require_index();
    require_image(PYTHON_PDM);
    let p = Project::fixture("python-deps-pdm");
    // Nothing cached yet: no network means no packages.
    p.berth(&["run", "--network", "none"]).expect_code(1);

    let cold = p.berth(&["run"]);
    cold.expect_code(0);
    assert!(
        log_has(&cold, "test", "Install pytest 8.3.3 successful"),
        "{}",
        cold.stderr
    );
    assert!(log_has(&cold, "test", "4 passed"), "{}", cold.stderr);
    let keys = cache_keys(&p);
    assert!(
        keys.len() == 1 && keys[0].starts_with("python-pdm-"),
        "{keys:?}"
    );

    let warmed = p.berth(&["warm"]);
    warmed.expect_code(0);
    // Warm runs the job's own install.
    assert!(
        warmed
            .stderr
            .contains("warming `test` (pdm) with its own commands up to `pdm install`"),
        "{}",
        warmed.stderr
    );
    // `lock` (a manual job) uses pdm the same way in the same image: warmed once.
    assert!(
        warmed.stderr.contains("warming `test` (pdm)"),
        "{}",
        warmed.stderr
    );
    assert!(
        !warmed.stderr.contains("warming `lock`"),
        "{}",
        warmed.stderr
    );
    assert_eq!(cache_keys(&p), keys, "warm fills the run's cache");

    // The virtualenv is the checkout's (.venv): offline, pdm installs every package again, from
    // the files in its cache, while the index pages it cached are fresh.
    let offline = p.berth(&["run", "--network", "none"]);
    offline.expect_code(0);
    assert!(
        offline
            .stderr
            .contains("job `test`: pdm has no offline mode"),
        "{}",
        offline.stderr
    );
    assert!(
        log_has(&offline, "test", "Install pytest 8.3.3 successful"),
        "{}",
        offline.stderr
    );
    assert!(log_has(&offline, "test", "4 passed"), "{}", offline.stderr);
    assert!(p.leftovers().is_empty(), "{:?}", p.leftovers());
}

#[test]
fn with_pipenv_and_a_pipfile_lock_warm_then_run_offline() {
    require_index();
    require_image(PYTHON_PIPENV);
    let p = Project::fixture("python-deps-pipenv");
    let cold = p.berth(&["run"]);
    cold.expect_code(0);
    assert!(log_has(&cold, "test", "4 passed"), "{}", cold.stderr);
    let keys = cache_keys(&p);
    assert!(
        keys.len() == 1 && keys[0].starts_with("python-pipenv-"),
        "{keys:?}"
    );
    // pip's HTTP cache alone needs the index: before warm, no network means no packages.
    p.berth(&["run", "--network", "none"]).expect_code(1);

    let warmed = p.berth(&["warm"]);
    warmed.expect_code(0);
    assert!(
        log_has(
            &warmed,
            "test",
            "berth warm: resolving Pipfile.lock with pipenv"
        ),
        "{}",
        warmed.stderr
    );
    // The lock's wheels, dev packages included, into the wheelhouse.
    assert!(
        log_has(
            &warmed,
            "test",
            "Saved /var/cache/berth/pipenv/wheels/pytest-8.3.3"
        ),
        "{}",
        warmed.stderr
    );
    assert!(
        warmed.stderr.contains("warming `test` (pipenv)"),
        "{}",
        warmed.stderr
    );
    assert!(
        !warmed.stderr.contains("warming `lock`"),
        "{}",
        warmed.stderr
    );
    assert_eq!(cache_keys(&p), keys, "warm fills the run's cache");

    // Offline, pip (under pipenv) takes the wheels from the wheelhouse: no index, no note.
    let offline = p.berth(&["run", "--network", "none"]);
    offline.expect_code(0);
    assert!(
        !offline.stderr.contains("offline mode"),
        "{}",
        offline.stderr
    );
    assert!(log_has(&offline, "test", "4 passed"), "{}", offline.stderr);
    assert!(p.leftovers().is_empty(), "{:?}", p.leftovers());
}

// poetry and pdm have no offline mode: with every package file in their caches they still ask the
// index for the locked packages' file lists, answered from their HTTP caches only while fresh.
#[test]
fn poetry_offline_fails_once_its_cached_index_pages_are_stale() {
    offline_fails_once_index_pages_are_stale(
        PYTHON_POETRY,
        "python-deps-poetry",
        "poetry",
        "All attempts to connect to pypi failed",
    );
}

#[test]
fn pdm_offline_fails_once_its_cached_index_pages_are_stale() {
    offline_fails_once_index_pages_are_stale(
        PYTHON_PDM,
        "python-deps-pdm",
        "pdm",
        "Install pytest 8.3.3 failed",
    );
}

fn offline_fails_once_index_pages_are_stale(image: &str, fixture: &str, tool: &str, failure: &str) {
    require_index();
    require_image(image);
    let p = Project::fixture(fixture);
    // The index's pages say they are fresh for a second (PyPI's for ten minutes).
    let yml = std::fs::read_to_string(p.path().join("berth.yml")).unwrap();
    p.write(
        "berth.yml",
        &yml.replace("variables:\n", "variables:\n  INDEX_MAX_AGE: \"1\"\n"),
    );
    p.berth(&["warm"]).expect_code(0);
    std::thread::sleep(std::time::Duration::from_secs(2));

    let offline = p.berth(&["run", "--network", "none"]);
    offline.expect_code(1);
    let note = format!("job `test`: {tool} has no offline mode");
    assert!(offline.stderr.contains(&note), "{}", offline.stderr);
    assert!(log_has(&offline, "test", failure), "{}", offline.stderr);
    assert!(p.leftovers().is_empty(), "{:?}", p.leftovers());
}
