//! A repository is untrusted and an engine is shared: a committed `.berth/` cannot make berth
//! write or delete outside it, `berth prune` removes only what dead runs of this project left,
//! and run records end, name runs safely and print quietly into a closed pipe.

use std::collections::HashMap;
use std::os::unix::fs::symlink;
use std::process::Stdio;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::common::{block_on, busybox_project, require_image, Project, BUSYBOX};
use berth::docker::Engine;
use berth::engine::runtime::{labels, ContainerRuntime as _, ContainerSpec};

const ECHO: &str = "hello:\n  script: [echo hello]\n";

/// Folders that look like run records, outside the project.
fn precious_folder() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for id in ["20200101-000000-0001", "20200101-000000-0002", "photos"] {
        std::fs::create_dir(dir.path().join(id)).unwrap();
        std::fs::write(dir.path().join(id).join("keep.txt"), "precious").unwrap();
    }
    dir
}

fn entries(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn a_committed_runs_link_is_refused_and_its_target_untouched() {
    let p = busybox_project(ECHO);
    let outside = precious_folder();
    let before = entries(outside.path());
    std::fs::create_dir(p.path().join(".berth")).unwrap();
    symlink(outside.path(), p.path().join(".berth/runs")).unwrap();
    // --keep-runs 1 would prune every old record it saw.
    let run = p.berth(&["run", "--keep-runs", "1"]);
    run.expect_code(2);
    assert!(
        run.stderr.contains(".berth/runs is a symbolic link"),
        "{}",
        run.stderr
    );
    assert_eq!(entries(outside.path()), before);
    assert!(outside
        .path()
        .join("20200101-000000-0001/keep.txt")
        .is_file());
    assert!(p.leftovers().is_empty(), "{:?}", p.leftovers());
    // Reading commands refuse it too, rather than list what lies behind it.
    let runs = p.berth(&["runs"]);
    runs.expect_code(2);
    assert!(!runs.stdout.contains("20200101"), "{}", runs.stdout);
}

#[test]
fn committed_links_to_berths_files_are_refused() {
    for name in ["locks", "caches.json"] {
        let p = busybox_project(ECHO);
        let outside = tempfile::tempdir().unwrap();
        let target = outside.path().join("victim");
        std::fs::write(&target, "precious").unwrap();
        std::fs::create_dir(p.path().join(".berth")).unwrap();
        symlink(&target, p.path().join(".berth").join(name)).unwrap();
        let run = p.berth(&["run"]);
        run.expect_code(2);
        assert!(
            run.stderr
                .contains(&format!(".berth/{name} is a symbolic link")),
            "{name}: {}",
            run.stderr
        );
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "precious");
        assert_eq!(entries(outside.path()), ["victim"]);
    }
}

#[test]
fn berths_own_writes_never_follow_a_link() {
    // A link where an older berth wrote its temporary file: written through before.
    let p = busybox_project(
        "job:\n  cache: {key: k, paths: [c]}\n  script: [mkdir -p c, echo hi > c/x]\n",
    );
    let outside = tempfile::tempdir().unwrap();
    let target = outside.path().join("victim");
    std::fs::write(&target, "precious").unwrap();
    std::fs::create_dir(p.path().join(".berth")).unwrap();
    symlink(&target, p.path().join(".berth/caches.json.tmp")).unwrap();
    p.berth(&["run"]).expect_code(0);
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "precious");
    let index = std::fs::symlink_metadata(p.path().join(".berth/caches.json")).unwrap();
    assert!(index.is_file(), "the cache index is berth's own file");
}

fn unique_run(tag: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("20000101-000000-{:04x}{tag}", nanos & 0xffff)
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A run's objects as another berth (another host, or another PID namespace) leaves them: a
/// stopped container and, when `lease_age` says so, a lease renewed that many seconds ago.
fn forge_run(engine: &Engine, project: &str, run: &str, lease_age: Option<u64>) -> String {
    let labels = HashMap::from([
        (labels::BERTH.to_string(), "1".to_string()),
        (labels::RUN.to_string(), run.to_string()),
        (labels::PROJECT.to_string(), project.to_string()),
        (
            labels::HOST.to_string(),
            "another-machine/pid:[4026531836]".to_string(),
        ),
        // No such process here: a bare pid would call this run dead.
        (labels::PID.to_string(), "4000000".to_string()),
        (labels::PID_START.to_string(), "12345".to_string()),
    ]);
    block_on(async {
        if let Some(age) = lease_age {
            let mut lease = labels.clone();
            lease.insert(labels::TEMPORARY.to_string(), "1".to_string());
            lease.insert(labels::LEASE.to_string(), (now() - age).to_string());
            engine
                .create_volume(&format!("berth-lease-{run}-1-{}", now()), &lease)
                .await
                .expect("lease volume");
        }
        let spec = ContainerSpec {
            name: format!("berth-forged-{run}"),
            image: BUSYBOX.to_string(),
            cmd: vec!["true".to_string()],
            labels,
            ..ContainerSpec::default()
        };
        engine.create_container(&spec).await.expect("container")
    })
}

fn container_exists(engine: &Engine, run: &str) -> bool {
    block_on(engine.containers_with_label(labels::RUN, Some(run)))
        .expect("list")
        .iter()
        .any(|c| c.labels.get(labels::RUN).map(String::as_str) == Some(run))
}

#[test]
fn prune_spares_live_runs_elsewhere_and_other_projects() {
    require_image(BUSYBOX);
    let p = Project::new(&[]);
    let other = Project::new(&[]);
    let engine = block_on(Engine::connect()).expect("engine");
    let project = p.path().display().to_string();
    let live = unique_run("a");
    let dead = unique_run("b");
    let elsewhere = unique_run("c");
    forge_run(&engine, &project, &live, Some(5));
    forge_run(&engine, &project, &dead, Some(3600));
    forge_run(
        &engine,
        &other.path().display().to_string(),
        &elsewhere,
        None,
    );

    let pruned = p.berth(&["prune"]);
    pruned.expect_code(0);
    assert!(container_exists(&engine, &live), "{}", pruned.stdout);
    assert!(!container_exists(&engine, &dead), "{}", pruned.stdout);
    assert!(container_exists(&engine, &elsewhere), "another project's");
    assert!(
        pruned.stdout.contains(&format!("left alone: run {live}")),
        "{}",
        pruned.stdout
    );

    // Pruned from its own project. (`--all`, which would reach it from here, is unit-tested:
    // run here it would race with tests that look at what their own killed runs left.)
    other.berth(&["prune"]).expect_code(0);
    assert!(!container_exists(&engine, &elsewhere));
    assert!(container_exists(&engine, &live));
    // --force removes the live run too, lease included.
    p.berth(&["prune", "--force"]).expect_code(0);
    assert!(!container_exists(&engine, &live));
    assert!(p.leftovers().is_empty(), "{:?}", p.leftovers());
    assert!(other.leftovers().is_empty(), "{:?}", other.leftovers());
}

#[test]
fn a_live_run_holds_a_lease_and_a_killed_one_is_marked_on_the_next_start() {
    let p = busybox_project(
        "slow:\n  script: ['if [ -f slow ]; then echo ready; sleep 300; fi', echo done]\n",
    );
    p.write("slow", "");
    let mut child = p.start_until(&["run", "--output", "plain"], "[slow] ready");
    let killed = p.run_dir();
    let id = killed.file_name().unwrap().to_string_lossy().into_owned();
    // The live run's lease is on the engine, with its run's labels.
    let engine = block_on(Engine::connect()).expect("engine");
    let leases = block_on(engine.volumes_with_label(&format!("{}={id}", labels::RUN))).unwrap();
    assert!(
        leases.iter().any(|v| v.labels.contains_key(labels::LEASE)),
        "{leases:?}"
    );
    // Spared while its berth lives, even by a prune on the same host.
    let spared = p.berth(&["prune"]);
    assert!(spared.stdout.contains(&id), "{}", spared.stdout);
    child.kill().expect("kill berth");
    child.wait().expect("wait");
    // Dead on this host: prunable at once, lease and all.
    p.berth(&["prune"]).expect_code(0);
    assert!(p.leftovers().is_empty(), "{:?}", p.leftovers());

    std::fs::remove_file(p.path().join("slow")).unwrap();
    let next = p.berth(&["run", "--output", "plain"]);
    next.expect_code(0);
    assert!(
        next.stderr
            .contains(&format!("run {id} ended without finishing its record")),
        "{}",
        next.stderr
    );
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(killed.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["status"], "abandoned");
    let runs = p.berth(&["runs"]);
    let line = runs
        .stdout
        .lines()
        .find(|l| l.starts_with(&id))
        .unwrap_or_else(|| panic!("{}", runs.stdout));
    assert!(line.contains("abandoned"), "{line}");
}

#[test]
fn a_run_stopped_by_a_missing_image_ends_its_record() {
    let p = busybox_project("job:\n  image: berth-test/no-such-image:never\n  script: [true]\n");
    let run = p.berth(&["run", "--output", "plain"]);
    run.expect_code(3);
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(p.run_dir().join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["status"], "error", "{manifest}");
    assert!(p.leftovers().is_empty(), "{:?}", p.leftovers());
}

#[test]
fn run_names_are_checked_before_they_become_paths() {
    let p = busybox_project(ECHO);
    p.berth(&["run"]).expect_code(0);
    // A record-like folder outside .berth/runs.
    p.write(
        "x/artifacts/stolen.json",
        r#"{"job":"stolen","archive":"stolen.tar.gz","files":[],"bytes":0}"#,
    );
    let named = p.berth(&["artifacts", "../../x", "stolen"]);
    named.expect_code(2);
    assert!(
        named.stderr.contains("`../../x` is not a run id"),
        "{}",
        named.stderr
    );
    let alone = p.berth(&["artifacts", "../../x"]);
    alone.expect_code(2);
    assert!(!alone.stdout.contains("stolen"), "{}", alone.stdout);
    for args in [&["logs", "../../x", "hello"][..], &["show", "../.."]] {
        let refused = p.berth(args);
        refused.expect_code(2);
        assert!(
            refused.stderr.contains("is not a run id"),
            "{}",
            refused.stderr
        );
    }
}

#[test]
fn a_reader_that_goes_away_ends_berth_quietly() {
    let p = busybox_project(ECHO);
    p.berth(&["run"]).expect_code(0);
    for args in [
        &["runs"][..],
        &["plan"],
        &["show"],
        &["prune"],
        &["completions", "bash"],
    ] {
        let mut child = p
            .command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start berth");
        // Closed before berth writes its first line, as `| head -0` would.
        drop(child.stdout.take());
        let out = child.wait_with_output().expect("wait");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert_ne!(out.status.code(), Some(101), "{args:?}: {stderr}");
        assert!(out.status.success(), "{args:?}: {:?} {stderr}", out.status);
    }
}

#[test]
fn berths_own_folder_does_not_make_the_tree_dirty() {
    let p = busybox_project(ECHO);
    // No .gitignore naming .berth.
    p.git(&["init", "-q"]);
    p.git(&["add", "berth.yml"]);
    p.git(&["commit", "-qm", "pipeline"]);
    p.berth(&["run"]).expect_code(0);
    // .berth/ now exists and is untracked: the replay must not see drift.
    let replay = p.berth(&["replay"]);
    replay.expect_code(0);
    assert!(!replay.stderr.contains("uncommitted"), "{}", replay.stderr);
}

#[test]
fn a_committed_record_cannot_make_berth_delete_or_read_elsewhere() {
    let p = busybox_project(ECHO);
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("thesis.tex.partial"), "years of work").unwrap();
    std::fs::write(outside.path().join("secret.log"), "secret").unwrap();
    // A record "left running" by a berth that is gone, its folders links out of the project.
    let record = p.path().join(".berth/runs/20200101-000000-0001");
    std::fs::create_dir_all(&record).unwrap();
    std::fs::write(
        record.join("manifest.json"),
        r#"{"schema":1,"run_id":"20200101-000000-0001","pipeline":"berth.yml","status":"running",
            "started_at":0,"duration_ms":0,"berth_version":"0","engine_version":"0",
            "pipeline_sha256":"","commit":"","dirty":false,"critical_path":[],
            "jobs":[{"name":"hello","stage":"test","image":"x","image_id":null,"variables":[],
            "commands":[],"status":"passed","exit_code":0,"message":null,"started_at":null,
            "finished_at":null,"duration_ms":null,"retries":0,"log":"logs/hello.log",
            "artifacts":null}]}"#,
    )
    .unwrap();
    symlink(outside.path(), record.join("artifacts")).unwrap();
    symlink(outside.path(), record.join("logs")).unwrap();
    p.berth(&["run"]).expect_code(0);
    assert_eq!(
        std::fs::read_to_string(outside.path().join("thesis.tex.partial")).unwrap(),
        "years of work"
    );
    let logs = p.berth(&["logs", "20200101-000000-0001", "hello"]);
    logs.expect_code(2);
    assert!(!logs.stdout.contains("secret"), "{}", logs.stdout);
    let listed = p.berth(&["artifacts", "20200101-000000-0001"]);
    assert!(!listed.stdout.contains("thesis"), "{}", listed.stdout);
}

#[test]
fn one_prune_removes_everything_a_killed_run_left_temporary_caches_included() {
    let p = busybox_project(
        "slow:\n  cache: {key: k, paths: [c]}\n  script: [echo ready, sleep 300]\n",
    );
    let mut child = p.start_until(&["run", "--output", "plain", "--no-cache"], "[slow] ready");
    child.kill().expect("kill berth");
    child.wait().expect("wait");
    let left = p.leftovers();
    assert!(left.iter().any(|l| l.contains("tmpcache")), "{left:?}");
    let pruned = p.berth(&["prune"]);
    pruned.expect_code(0);
    assert!(!pruned.stdout.contains("left alone"), "{}", pruned.stdout);
    assert!(p.leftovers().is_empty(), "{:?}", p.leftovers());
}

#[test]
fn a_run_that_cannot_start_leaves_no_empty_record() {
    let p = busybox_project(ECHO);
    let run = p
        .command(&["run"])
        .env("TMPDIR", "/nonexistent-berth-tmp")
        .output()
        .expect("run berth");
    assert_ne!(run.status.code(), Some(0));
    let runs = p.path().join(".berth/runs");
    let records: Vec<_> = std::fs::read_dir(&runs)
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    assert!(
        records.iter().all(|r| r.join("manifest.json").is_file()),
        "{records:?}"
    );
    assert!(p.leftovers().is_empty(), "{:?}", p.leftovers());
}
