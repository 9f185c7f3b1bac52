//! Artifacts against the real engine: what moves between jobs, what does not, and what is refused.

use crate::child;
use crate::common::busybox_project;

#[test]
fn artifacts_flow_across_three_stages_narrowed_by_needs_and_dependencies() {
    let p = busybox_project(
        "\
stages: [build, test, deploy]
compile:
  stage: build
  script:
    - mkdir -p bin && echo app > bin/app && echo scratch > scratch.txt
  artifacts:
    paths: [bin/]
docs:
  stage: build
  script: [mkdir -p site, echo page > site/index.html]
  artifacts:
    paths: [site/]
unit:
  stage: test
  script:
    - cat bin/app site/index.html
    - test ! -e scratch.txt
    - echo result > report.txt
  artifacts:
    paths: [report.txt]
only_compile:
  stage: test
  needs: [compile]
  script: [cat bin/app, test ! -e site]
nothing:
  stage: test
  needs: [{job: compile, artifacts: false}]
  script: [test ! -e bin, test ! -e site]
ship:
  stage: deploy
  dependencies: [unit]
  script: [cat report.txt, test ! -e bin, test ! -e site]
",
    );
    let run = p.berth(&["run"]);
    run.expect_code(0);
    assert_eq!(&run.log("unit")[3..5], &["app", "page"]);
    assert_eq!(run.log("ship")[2], "result");
    assert!(run
        .log("only_compile")
        .contains(&"Receiving artifacts of `compile` (1 files)"));
    assert!(!run
        .log("nothing")
        .iter()
        .any(|l| l.starts_with("Receiving")));
    // The host tree is untouched: artifacts live in the run record only.
    for f in ["bin", "site", "report.txt", "scratch.txt"] {
        assert!(!p.path().join(f).exists(), "{f} leaked to the host");
    }
    // Each stored archive has a manifest with sizes and hashes.
    let listed = p.berth(&["artifacts", "compile"]);
    listed.expect_code(0);
    let sha = sha256_hex(b"app\n");
    assert!(
        listed.stdout.contains(&format!("bin/app  4  {sha}")),
        "{}",
        listed.stdout
    );
    let out = tempfile::tempdir().unwrap();
    let extracted = p.berth(&[
        "artifacts",
        "unit",
        "--extract",
        out.path().to_str().unwrap(),
    ]);
    extracted.expect_code(0);
    assert_eq!(
        std::fs::read_to_string(out.path().join("report.txt")).unwrap(),
        "result\n"
    );
    assert!(p.leftovers().is_empty());
}

fn sha256_hex(data: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(data))
}

#[test]
fn a_path_that_matches_nothing_is_a_warning_not_a_failure() {
    let p = busybox_project("job:\n  script: [echo hi]\n  artifacts:\n    paths: [dist/]\n");
    let run = p.berth(&["run"]);
    run.expect_code(0);
    assert!(run
        .log("job")
        .iter()
        .any(|l| l.starts_with("WARNING: dist/: no matching files")));
}

#[test]
fn failed_jobs_keep_artifacts_only_when_asked() {
    let p = busybox_project(
        "\
on_success:
  script: [echo x > kept.txt, exit 1]
  artifacts: {paths: [kept.txt]}
on_failure:
  script: [echo y > debug.txt, exit 1]
  artifacts: {paths: [debug.txt], when: on_failure}
timed_out:
  timeout: 2s
  script: [echo z > partial.txt, sleep 60]
  artifacts: {paths: [partial.txt], when: always}
",
    );
    let run = p.berth(&["run"]);
    run.expect_code(1);
    let listed = p.berth(&["artifacts"]);
    listed.expect_code(0);
    assert!(!listed.stdout.contains("on_success:"), "{}", listed.stdout);
    assert!(
        listed.stdout.contains("on_failure: 1 files"),
        "{}",
        listed.stdout
    );
    assert!(
        listed.stdout.contains("timed_out: 1 files"),
        "{}",
        listed.stdout
    );
    assert!(p.leftovers().is_empty());
}

#[test]
fn an_artifact_link_that_escapes_is_refused_naming_the_entry() {
    let p = busybox_project(
        "\
stages: [a, b]
evil:
  stage: a
  script: [mkdir -p out, ln -s /etc/shadow out/secret]
  artifacts: {paths: [out/]}
victim:
  stage: b
  script: [echo should not run]
",
    );
    let run = p.berth(&["run"]);
    run.expect_code(1);
    let status = run.status_of("victim");
    assert!(status.contains("failed"), "{status}");
    assert!(
        status.contains("entry `out/secret` is a link to `/etc/shadow`"),
        "{status}"
    );
    assert!(!run.log("victim").contains(&"should not run"));
}

#[test]
fn a_tampered_archive_with_dotdot_is_refused() {
    // An archive in the run record edited to climb out of the workspace: the next job refuses it.
    let p = busybox_project(
        "\
stages: [a, b]
maker:
  stage: a
  script: [echo ok > good.txt]
  artifacts: {paths: [good.txt]}
# Holds `taker` back (it would start at once, its container made ahead) until the archive is
# replaced.
hold:
  stage: a
  script: ['until [ -e /tmp/go ]; do sleep 0.2; done']
taker:
  stage: b
  script: [echo should not run]
",
    );
    let mut child = p
        .command(&["run", "--output", "plain", "-j", "2"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let seen = child::read_until(
        &mut stderr,
        "==> maker: artifacts:",
        std::time::Duration::from_secs(60),
    );
    assert!(seen.contains("artifacts:"), "{seen}");
    // Replace the stored archive before `taker` starts (maker stored it, then finishes).
    let run_dir = p.run_dir();
    let archive = run_dir.join("artifacts/000-maker.tar.gz");
    write_hostile_archive(&archive);
    crate::ahead::release(&p, "hold", "go");
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(1), "{seen}{rest}");
    assert!(
        rest.contains("entry `../../etc/cron.d/x` has a `..` component; refused"),
        "{rest}"
    );
}

fn write_hostile_archive(path: &std::path::Path) {
    let file = std::fs::File::create(path).unwrap();
    let mut b = tar::Builder::new(flate2::write::GzEncoder::new(
        file,
        flate2::Compression::fast(),
    ));
    let mut h = tar::Header::new_gnu();
    h.set_size(2);
    h.set_mode(0o644);
    let name = b"../../etc/cron.d/x";
    h.as_old_mut().name[..name.len()].copy_from_slice(name);
    h.set_cksum();
    b.append(&h, &b"x\n"[..]).unwrap();
    b.into_inner().unwrap().finish().unwrap();
}

#[test]
fn a_300_mb_artifact_round_trips_with_bounded_memory() {
    let p = busybox_project(
        "\
stages: [make, use]
make:
  stage: make
  script:
    - mkdir -p big
    - dd if=/dev/urandom of=big/blob bs=1M count=300 2>/dev/null
    - sha256sum big/blob > big/blob.sha256
  artifacts: {paths: [big/]}
use:
  stage: use
  script:
    - sha256sum -c big/blob.sha256
",
    );
    let run = p.berth(&["run"]);
    run.expect_code(0);
    assert!(
        run.log("use").iter().any(|l| l.contains("big/blob: OK")),
        "{}",
        run.stderr
    );
    // Peak RSS of berth, the largest child this test process waited for (git is not used here).
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage fills the struct we own.
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) };
    let peak_mib = usage.ru_maxrss / 1024;
    assert!(
        peak_mib < 100,
        "berth peaked at {peak_mib} MiB moving a 300 MB artifact"
    );
    let manifest = p.berth(&["artifacts", "make"]);
    assert!(
        manifest.stdout.contains("big/blob  314572800  "),
        "{}",
        manifest.stdout
    );
}

#[test]
fn untracked_artifacts_are_the_files_git_does_not_track() {
    let p = busybox_project(
        "\
stages: [a, b]
make:
  stage: a
  script: [echo new > generated.txt, echo changed >> tracked.txt]
  artifacts: {untracked: true}
use:
  stage: b
  script: [cat generated.txt]
",
    );
    p.write("tracked.txt", "v1\n");
    p.git(&["init", "-q"]);
    p.git(&["add", "."]);
    p.git(&["commit", "-q", "-m", "init"]);
    let run = p.berth(&["run"]);
    run.expect_code(0);
    assert_eq!(run.log("use")[2], "new");
    let listed = p.berth(&["artifacts", "make"]);
    assert!(listed.stdout.contains("generated.txt"), "{}", listed.stdout);
    assert!(
        !listed.stdout.contains("tracked.txt  "),
        "{}",
        listed.stdout
    );
    assert!(!listed.stdout.contains("berth.yml"), "{}", listed.stdout);
}

#[test]
fn several_artifact_paths_with_large_files_are_all_kept() {
    // Each path is its own archive download; the engine holds the container while one is
    // unread, so they are read one after another (a second request sent early would wait).
    let p = busybox_project(
        "\
stages: [make, use]
make:
  stage: make
  script:
    - mkdir -p a b c
    - head -c 8388608 /dev/urandom > a/big
    - head -c 8388608 /dev/urandom > b/big
    - echo small > c/small
  artifacts:
    paths: [a/, b/, c/, missing/]
use:
  stage: use
  script: [ls -l a/big b/big, cat c/small]
",
    );
    let started = std::time::Instant::now();
    let run = p.berth(&["run"]);
    run.expect_code(0);
    assert!(run.log("use").contains(&"small"));
    assert!(
        run.log("make")
            .iter()
            .any(|l| l.contains("missing/: no matching files")),
        "{:?}",
        run.log("make")
    );
    // Well below the engine client's 120 s request timeout, which a stalled download would hit.
    assert!(started.elapsed() < std::time::Duration::from_secs(60));
}

/// `dist/up -> ..`, `dist/up2 -> up/..`, ... `dist/passwd -> up7/etc/passwd`: each link alone
/// stays inside, the chain reaches `/`.
const LINK_CHAIN: &str = concat!(
    "    - mkdir -p dist && ln -s .. dist/up\n",
    "    - for i in 2 3 4 5 6 7; do ln -s up$([ $i = 2 ] || echo $((i - 1)))/.. dist/up$i; done\n",
    "    - ln -s up7/etc/passwd dist/passwd\n",
    "    - cat dist/passwd >/dev/null && echo chain reaches the root\n",
);

#[test]
fn a_chain_of_relative_links_out_of_the_workspace_is_refused_by_jobs_and_extract() {
    let p = busybox_project(&format!(
        "\
stages: [a, b]
maker:
  stage: a
  script:
{LINK_CHAIN}  artifacts: {{paths: [dist/]}}
victim:
  stage: b
  script:
    - cat dist/passwd
    - echo escaped > dist/up7/tmp/berth-escaped
    - cat /tmp/berth-escaped
"
    ));
    let run = p.berth(&["run"]);
    run.expect_code(1);
    assert!(
        run.log("maker").contains(&"chain reaches the root"),
        "the chain works in the job that makes it: {}",
        run.stderr
    );
    // The job that made the chain hears of it in its log; the one that needs it refuses it.
    assert!(
        run.log("maker")
            .iter()
            .any(|l| l.starts_with("WARNING: artifacts: entry `dist/up2` is a link to `up/..`")),
        "{}",
        run.stderr
    );
    let status = run.status_of("victim");
    assert!(
        status.contains("artifacts of `maker`: entry `dist/up2` is a link to `up/..`"),
        "{status}"
    );
    assert!(!run.log("victim").iter().any(|l| l.starts_with("root:")));
    assert!(!run.log("victim").contains(&"escaped"));

    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("x");
    let extracted = p.berth(&["artifacts", "maker", "--extract", dest.to_str().unwrap()]);
    assert_ne!(extracted.code, 0, "{}", extracted.stdout);
    assert!(
        extracted
            .stderr
            .contains("entry `dist/up2` is a link to `up/..`"),
        "{}",
        extracted.stderr
    );
    assert!(
        std::fs::symlink_metadata(dest.join("dist/passwd")).is_err(),
        "no link was left in the destination"
    );
    assert!(p.leftovers().is_empty());
}

#[test]
fn a_run_killed_during_an_artifact_download_leaves_no_archive_under_its_name() {
    let p = busybox_project(
        "\
make:
  script:
    - mkdir -p big
    - dd if=/dev/urandom of=big/blob bs=1M count=300 2>/dev/null
  artifacts: {paths: [big/]}
",
    );
    let mut child = p
        .command(&["run", "--output", "plain"])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the download has written a few MB, then kill berth as a crash would.
    let started = std::time::Instant::now();
    let written = |dir: &std::path::Path| -> u64 {
        std::fs::read_dir(dir)
            .map(|d| {
                d.filter_map(|e| e.ok()?.metadata().ok())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0)
    };
    let artifacts = loop {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(120),
            "no artifact download seen"
        );
        let dir = std::fs::read_dir(p.path().join(".berth/runs"))
            .ok()
            .and_then(|mut d| d.next())
            .and_then(|e| e.ok())
            .map(|e| e.path().join("artifacts"));
        if let Some(dir) = dir.filter(|d| written(d) > 4 << 20) {
            break dir;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    child.kill().unwrap();
    child.wait().unwrap();
    // This project's dead run only: other tests' runs are left alone.
    p.berth(&["prune"]).expect_code(0);
    let names: Vec<String> = std::fs::read_dir(&artifacts)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !names
            .iter()
            .any(|n| n == "000-make.tar.gz" || n == "000-make.json"),
        "a partial archive is stored under the final name: {names:?}"
    );
    let run_dir = artifacts.parent().unwrap();
    if let Ok(record) = std::fs::read_to_string(run_dir.join("manifest.json")) {
        assert!(!record.contains("000-make.json"), "{record}");
    }
    // What the next run's start calls for the runs of dead berths.
    berth::store::archives::remove_partial(run_dir).unwrap();
    assert_eq!(std::fs::read_dir(&artifacts).unwrap().count(), 0);
    assert!(p.leftovers().is_empty(), "{:?}", p.leftovers());
}
