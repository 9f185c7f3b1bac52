//! The actions berth has built in that move files: `actions/cache` between runs (named
//! volumes that outlive them, restored by key or prefix), `upload-artifact` and
//! `download-artifact` between the jobs of a run, on busybox.

use berth::engine::runtime::ContainerRuntime as _;

use crate::common::{block_on, require_image, Project, BUSYBOX};

fn platform() -> String {
    format!("ubuntu-latest={BUSYBOX}")
}

/// The project's step caches on the engine: their keys, sorted.
fn cache_keys(p: &Project) -> Vec<String> {
    let project = p.path().display().to_string();
    let volumes = block_on(async {
        let engine = berth::docker::Engine::connect()
            .await
            .expect("Docker engine");
        engine
            .volumes_with_label("io.berth.stepcache.version")
            .await
            .expect("list volumes")
    });
    let mut keys: Vec<String> = volumes
        .into_iter()
        .filter(|v| v.labels.get("io.berth.project") == Some(&project))
        .filter_map(|v| v.labels.get("io.berth.cache.key").cloned())
        .collect();
    keys.sort();
    keys
}

const CACHE_WORKFLOW: &str = "\
on: push
jobs:
  build:
    runs-on: ubuntu-latest
    steps:
      - id: c
        uses: actions/cache@v4
        with:
          key: deps-${{ hashFiles('lock.txt') }}
          restore-keys: deps-
          path: |
            ~/.deps
            vendor
      - run: echo \"hit=${{ steps.c.outputs.cache-hit }} matched=${{ steps.c.outputs.cache-matched-key }}\"
      - run: echo \"before $(cat ~/.deps/a vendor/b 2>/dev/null | tr '\\n' ' ')\"
      - if: steps.c.outputs.cache-hit != 'true'
        run: mkdir -p ~/.deps vendor && echo \"made-$(cat lock.txt)\" > ~/.deps/a && echo vendored > vendor/b
      - run: echo \"got $(cat ~/.deps/a) $(cat vendor/b)\"
";

#[test]
fn a_cache_missed_is_saved_then_hit_then_restored_by_prefix() {
    require_image(BUSYBOX);
    let p = Project::new(&[
        (".github/workflows/ci.yml", CACHE_WORKFLOW),
        ("lock.txt", "v1\n"),
    ]);
    let platform = platform();
    // python3: hashlib.sha256(hashlib.sha256(b'v1\n').digest()).hexdigest()
    let v1 = "deps-ce8a62bdaddc0b404a5748fb4ea6172c3edc312a0dfa52a06b34306a68e808bc";
    let first = p.berth(&["run", "--platform", &platform]);
    first.expect_code(0);
    let logs = p.berth(&["logs", "build"]).stdout;
    assert!(logs.contains("hit=false matched="), "{logs}");
    assert!(!logs.contains("before made"), "{logs}");
    assert!(logs.contains("got made-v1 vendored"), "{logs}");
    assert!(
        logs.contains(&format!("Cache saved with key: {v1}")),
        "{logs}"
    );
    assert_eq!(cache_keys(&p), [v1]);

    // The same key: an exact hit, the content back in HOME and the workspace, nothing saved.
    let second = p.berth(&["run", "--platform", &platform]);
    second.expect_code(0);
    let logs = p.berth(&["logs", "build"]).stdout;
    assert!(logs.contains(&format!("hit=true matched={v1}")), "{logs}");
    assert!(logs.contains("before made-v1 vendored"), "{logs}");
    assert!(logs.contains("got made-v1 vendored"), "{logs}");
    assert!(!logs.contains("Cache saved"), "{logs}");

    // A new key: restored from the old one by the prefix, then saved under the new one.
    std::fs::write(p.path().join("lock.txt"), "v2\n").expect("write");
    let third = p.berth(&["run", "--platform", &platform]);
    third.expect_code(0);
    let logs = p.berth(&["logs", "build"]).stdout;
    assert!(logs.contains(&format!("hit=false matched={v1}")), "{logs}");
    assert!(logs.contains("before made-v1 vendored"), "{logs}");
    // Not an exact hit: the step that makes it ran again.
    assert!(logs.contains("got made-v2 vendored"), "{logs}");
    assert_eq!(cache_keys(&p).len(), 2, "{:?}", cache_keys(&p));
    // No helper container, no temporary volume left (the caches go with the project).
    assert!(p.leftovers().is_empty(), "{:?}", p.leftovers());
}

#[test]
fn fail_on_cache_miss_fails_and_a_failed_job_saves_nothing() {
    require_image(BUSYBOX);
    let p = Project::new(&[(
        ".github/workflows/ci.yml",
        "\
on: push
jobs:
  strict:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/cache/restore@v4
        with: { key: never-saved, path: /tmp/x, fail-on-cache-miss: true }
  failing:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/cache@v4
        with: { key: not-kept, path: /tmp/y }
      - run: mkdir -p /tmp/y && echo y > /tmp/y/f && exit 3
",
    )]);
    let run = p.berth(&["run", "--platform", &platform()]);
    run.expect_code(1);
    assert!(run.status_of("strict").contains("failed"), "{}", run.stderr);
    let logs = p.berth(&["logs", "strict"]).stdout;
    assert!(
        logs.contains("Exiting as fail-on-cache-miss is set. Input key: never-saved"),
        "{logs}"
    );
    assert!(cache_keys(&p).is_empty(), "{:?}", cache_keys(&p));
    assert!(p.leftovers().is_empty(), "{:?}", p.leftovers());
}

#[test]
fn an_artifact_uploaded_by_one_job_is_downloaded_by_the_job_that_needs_it() {
    require_image(BUSYBOX);
    let p = Project::new(&[(
        ".github/workflows/ci.yml",
        "\
on: push
jobs:
  make:
    runs-on: ubuntu-latest
    steps:
      - run: mkdir -p out/sub && echo one > out/a.txt && echo two > out/sub/b.txt && echo h > out/.hidden && echo l > out/x.log
      - id: up
        uses: actions/upload-artifact@v4
        with:
          name: dist
          path: |
            out/
            !out/*.log
      - run: echo \"id=${{ steps.up.outputs.artifact-id }}\"
      - uses: actions/upload-artifact@v4
        with: { name: report, path: out/a.txt }
  use:
    needs: make
    runs-on: ubuntu-latest
    steps:
      - uses: actions/download-artifact@v4
        with: { name: dist, path: got }
      - run: cat got/a.txt got/sub/b.txt && test ! -e got/.hidden && test ! -e got/x.log && test ! -e got/out
      - uses: actions/download-artifact@v4
        with: { path: all }
      - run: echo \"all=$(cat all/dist/sub/b.txt) $(cat all/report/a.txt)\"
",
    )]);
    let run = p.berth(&["run", "--platform", &platform()]);
    run.expect_code(0);
    let made = p.berth(&["logs", "make"]).stdout;
    // The first artifact of the run.
    assert!(made.contains("id=1"), "{made}");
    // `use` passed: its `cat` and `test`s found the files where they belong.
    assert!(run.status_of("use").contains("passed"), "{}", run.stderr);
    let used = p.berth(&["logs", "use"]).stdout;
    assert!(used.contains("all=two one"), "{used}");
    let listed = p.berth(&["artifacts"]);
    listed.expect_code(0);
    assert!(
        listed.stdout.contains("make `dist`: 2 files"),
        "{}",
        listed.stdout
    );
    assert!(
        listed.stdout.contains("make `report`: 1 files"),
        "{}",
        listed.stdout
    );
    assert!(p.leftovers().is_empty(), "{:?}", p.leftovers());
}

#[test]
fn if_no_files_found_error_fails_the_step_and_warn_does_not() {
    require_image(BUSYBOX);
    let p = Project::new(&[(
        ".github/workflows/ci.yml",
        "\
on: push
jobs:
  lenient:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/upload-artifact@v4
        with: { name: a, path: missing/ }
  strict:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/upload-artifact@v4
        with: { name: b, path: missing/, if-no-files-found: error }
",
    )]);
    let run = p.berth(&["run", "--platform", &platform()]);
    run.expect_code(1);
    assert!(
        run.status_of("lenient").contains("passed"),
        "{}",
        run.stderr
    );
    assert!(run.status_of("strict").contains("failed"), "{}", run.stderr);
    let logs = p.berth(&["logs", "strict"]).stdout;
    assert!(
        logs.contains("No files were found with the provided path: missing/"),
        "{logs}"
    );
    assert!(p.leftovers().is_empty(), "{:?}", p.leftovers());
}
