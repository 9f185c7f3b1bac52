//! Actions beyond the built-ins, end to end on the real engine: local composite and JavaScript
//! actions (with `pre` and `post`, the runner's protocol used directly), a remote action fetched
//! from a local git repository standing in for GitHub and then used with the source gone, and
//! the errors (a bad action.yml, no node, a remote action missing offline).

use std::path::Path;

use crate::common::{require_image, Project, BUSYBOX};
use crate::github_server::{commit_and_tag, git, serve};

const NODE: &str = "berth-test/node:18";

fn node_platform() -> String {
    format!("ubuntu-latest={NODE}")
}

/// `berth ARGS` with the action cache at `cache` (and fetched from `source`).
fn berth(p: &Project, cache: &Path, source: &str, args: &[&str]) -> crate::common::Run {
    let out = p
        .command(args)
        .env("BERTH_ACTIONS_CACHE", cache)
        .env("BERTH_ACTIONS_URL", source)
        .output()
        .expect("run berth");
    crate::common::Run::from(out)
}

#[test]
fn composite_and_javascript_actions_run_with_inputs_outputs_and_pre_post() {
    require_image(NODE);
    let p = Project::fixture("github/actions");
    let run = p.berth(&["run", "--platform", &node_platform()]);
    run.expect_code(0);
    let logs = p.berth(&["logs", "uses"]).stdout;
    // The composite: a default and a given input in the `inputs` context; as on GitHub, its
    // scripts get no INPUT_* variables.
    assert!(
        logs.contains("inputs: hello berth; INPUT_WHO: []"),
        "{logs}"
    );
    // Its outputs mapped from its steps, one through a nested composite.
    assert!(
        logs.contains("composite said 'hello, berth' and 'HELLO, BERTH'"),
        "{logs}"
    );
    // The JavaScript action: pre before every step, its state in main and post.
    let pre = logs.find("pre for octo").expect("pre ran");
    let first = logs.find("inputs: hello berth").expect("composite ran");
    assert!(pre < first, "{logs}");
    assert!(logs.contains("main sees state at-pre"), "{logs}");
    assert!(logs.contains("js said 'hi octo!' env=set-by-js"), "{logs}");
    let post = logs.find("post sees state at-pre yes").expect("post ran");
    assert!(post > logs.find("js said").unwrap(), "{logs}");
    assert!(p.leftovers().is_empty(), "{:?}", p.leftovers());
}

#[test]
fn a_javascript_action_in_an_image_without_node_is_a_clear_error() {
    require_image(BUSYBOX);
    let p = Project::fixture("github/actions");
    let run = p.berth(&["run", "--platform", &format!("ubuntu-latest={BUSYBOX}")]);
    // The image lacks what the step needs: berth's exit 3, naming the step and the image.
    run.expect_code(3);
    let all = format!("{}{}", run.stdout, run.stderr);
    assert!(
        all.contains("the JavaScript action `./.github/actions/js` runs with the job's `node`"),
        "{all}"
    );
    assert!(all.contains(BUSYBOX), "{all}");
}

#[test]
fn a_bad_action_yml_is_exit_2_with_its_file_and_line() {
    let p = Project::fixture("github/actions");
    p.write(
        ".github/actions/shout/action.yml",
        "name: shout\nruns:\n  using: composite\n  steps:\n    - run: echo no shell\n",
    );
    let run = p.berth(&["run", "--platform", &node_platform()]);
    run.expect_code(2);
    assert!(
        run.stderr.contains(".github/actions/shout/action.yml:5:12"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("a composite action's `run` step needs `shell`"),
        "{}",
        run.stderr
    );
    assert!(p.leftovers().is_empty());
}

const REMOTE_WORKFLOW: &str = "\
on: push
jobs:
  remote:
    runs-on: ubuntu-latest
    steps:
      - id: hello
        uses: octo/hello/sub@v1
        with:
          who: remote
      - run: echo \"remote said ${{ steps.hello.outputs.said }}\"
";

#[test]
fn a_remote_action_is_fetched_once_then_runs_offline() {
    require_image(NODE);
    let server = tempfile::tempdir().expect("temp dir");
    let cache = tempfile::tempdir().expect("temp dir");
    // The action's repository, served as a bare repository over file:// in GitHub's stead.
    let src = server.path().join("src");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    std::fs::write(
        src.join("sub/action.yml"),
        "name: hello\ninputs:\n  who: {description: whom}\noutputs:\n  said: {description: it}\nruns:\n  using: node20\n  main: index.js\n",
    )
    .unwrap();
    std::fs::write(
        src.join("sub/index.js"),
        "const fs = require('fs'); const n = fs.readFileSync(__dirname + '/logo.bin').length; fs.appendFileSync(process.env.GITHUB_OUTPUT, `said=hello ${process.env.INPUT_WHO} with ${n} bytes from ${process.env.GITHUB_ACTION_PATH}\\n`);\n",
    )
    .unwrap();
    // Not text: an action's images and compiled code reach the job as they are.
    std::fs::write(src.join("sub/logo.bin"), [0x89, b'P', 0xff, 0x00, 0xfe]).unwrap();
    let sha = commit_and_tag(&src, "v1");
    let source = serve(server.path(), &src, "octo", "hello");
    let p = Project::new(&[(".github/workflows/ci.yml", REMOTE_WORKFLOW)]);
    let platform = node_platform();

    // Not fetched yet: exit 3, naming the action and the command that fetches it.
    let missing = berth(&p, cache.path(), &source, &["run", "--platform", &platform]);
    missing.expect_code(3);
    let all = format!("{}{}", missing.stdout, missing.stderr);
    assert!(
        all.contains("`octo/hello/sub@v1` is not in berth's action cache"),
        "{all}"
    );
    assert!(all.contains("berth actions pull"), "{all}");
    let plan = berth(&p, cache.path(), &source, &["plan"]);
    assert!(
        plan.stdout.contains("octo/hello/sub@v1: missing"),
        "{}",
        plan.stdout
    );

    let pull = berth(&p, cache.path(), &source, &["actions", "pull"]);
    pull.expect_code(0);
    assert!(
        pull.stdout.contains("octo/hello/sub@v1: fetched"),
        "{}",
        pull.stdout
    );
    let again = berth(&p, cache.path(), &source, &["actions", "pull"]);
    assert!(
        again.stdout.contains("octo/hello/sub@v1: cached"),
        "{}",
        again.stdout
    );

    // The source gone: the cache answers, with no network at all.
    std::fs::remove_dir_all(server.path().join("github")).unwrap();
    let plan = berth(&p, cache.path(), &source, &["plan"]);
    assert!(
        plan.stdout.contains("octo/hello/sub@v1: cached at"),
        "{}",
        plan.stdout
    );
    let run = berth(
        &p,
        cache.path(),
        &source,
        &["run", "--platform", &platform, "--network", "none"],
    );
    run.expect_code(0);
    let logs = p.berth(&["logs", "remote"]).stdout;
    assert!(
        logs.contains("remote said hello remote with 5 bytes from /berth/actions/"),
        "{logs}"
    );
    // The run's record names the commit the action ran at.
    let runs = p.path().join(".berth/runs");
    let mut records: Vec<_> = std::fs::read_dir(&runs)
        .expect("runs")
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("manifest.json"))
        .filter(|m| m.exists())
        .collect();
    records.sort();
    let record = records.pop().expect("a record");
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(record).expect("manifest")).expect("JSON");
    assert_eq!(
        manifest["pins"],
        serde_json::json!([{"uses": "octo/hello/sub@v1", "commit": sha}]),
        "{manifest}"
    );
    assert!(p.leftovers().is_empty(), "{:?}", p.leftovers());
}

/// A JavaScript action that says `said=<word>`, committed in `src` and tagged v1 (moved there).
fn commit_action(src: &Path, word: &str) -> String {
    std::fs::create_dir_all(src).unwrap();
    std::fs::write(
        src.join("action.yml"),
        "name: say\noutputs:\n  said: {description: it}\nruns:\n  using: node20\n  main: index.js\n",
    )
    .unwrap();
    std::fs::write(
        src.join("index.js"),
        format!("require('fs').appendFileSync(process.env.GITHUB_OUTPUT, 'said={word}\\n');\n"),
    )
    .unwrap();
    commit_and_tag(src, "v1")
}

#[test]
fn berth_lock_pins_a_remote_action_to_its_commit_on_every_machine() {
    require_image(NODE);
    let server = tempfile::tempdir().expect("temp dir");
    let src = server.path().join("src");
    let first = commit_action(&src, "first");
    let source = serve(server.path(), &src, "octo", "say");
    let owner = server.path().join("github/octo");
    let workflow = "on: push\njobs:\n  say:\n    runs-on: ubuntu-latest\n    steps:\n      - id: s\n        uses: octo/say@v1\n      - run: echo \"it said ${{ steps.s.outputs.said }}\"\n";
    let p = Project::new(&[(".github/workflows/ci.yml", workflow)]);
    let platform = node_platform();
    let cache = tempfile::tempdir().expect("temp dir");
    berth(&p, cache.path(), &source, &["actions", "pull"]).expect_code(0);
    let lock = berth(
        &p,
        cache.path(),
        &source,
        &["lock", "--platform", &platform],
    );
    lock.expect_code(0);
    let text = std::fs::read_to_string(p.path().join("berth.lock")).expect("berth.lock");
    let written: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(
        written["actions"],
        serde_json::json!({"octo/say@v1": first}),
        "{text}"
    );

    // The tag moves on upstream. Another machine (an empty cache) still gets the locked commit.
    let second = commit_action(&src, "second");
    assert_ne!(first, second);
    git(
        &owner.join("say"),
        &[
            "fetch",
            "-q",
            "-f",
            src.to_str().unwrap(),
            "refs/tags/v1:refs/tags/v1",
            "main:main",
        ],
    );
    let elsewhere = tempfile::tempdir().expect("temp dir");
    let pull = berth(&p, elsewhere.path(), &source, &["actions", "pull"]);
    pull.expect_code(0);
    assert!(
        pull.stdout
            .contains(&format!("octo/say@v1: fetched at {first}")),
        "{}",
        pull.stdout
    );
    let run = berth(
        &p,
        elsewhere.path(),
        &source,
        &["run", "--platform", &platform, "--hermetic"],
    );
    run.expect_code(0);
    let logs = p.berth(&["logs", "say"]).stdout;
    assert!(logs.contains("it said first"), "{logs}");

    // Without the lock the ref names the new commit; a hermetic run refuses an unpinned action.
    let unlocked = tempfile::tempdir().expect("temp dir");
    let mut lock: serde_json::Value = written.clone();
    lock["actions"] = serde_json::json!({});
    std::fs::write(p.path().join("berth.lock"), lock.to_string()).unwrap();
    let pull = berth(&p, unlocked.path(), &source, &["actions", "pull"]);
    assert!(
        pull.stdout
            .contains(&format!("octo/say@v1: fetched at {second}")),
        "{}",
        pull.stdout
    );
    let refused = berth(
        &p,
        unlocked.path(),
        &source,
        &["run", "--platform", &platform, "--hermetic"],
    );
    refused.expect_code(2);
    assert!(
        refused
            .stderr
            .contains("the action `octo/say@v1` is not in berth.lock; `berth lock` adds it"),
        "{}",
        refused.stderr
    );
    assert!(p.leftovers().is_empty(), "{:?}", p.leftovers());
}

#[test]
fn a_built_in_action_runs_as_the_real_one_when_asked() {
    require_image(NODE);
    let server = tempfile::tempdir().expect("temp dir");
    // The real actions/checkout, as the test's stand-in for github.com serves it.
    let src = server.path().join("src");
    commit_action(&src, "real");
    git(&src, &["tag", "v4"]);
    let source = serve(server.path(), &src, "actions", "checkout");
    let workflow = "on: push\njobs:\n  co:\n    runs-on: ubuntu-latest\n    steps:\n      - id: c\n        uses: actions/checkout@v4\n      - run: echo \"checkout said [${{ steps.c.outputs.said }}]\"\n";
    let p = Project::new(&[(".github/workflows/ci.yml", workflow)]);
    let platform = node_platform();
    let cache = tempfile::tempdir().expect("temp dir");
    let real = |args: &[&str], names: &str| {
        let out = p
            .command(args)
            .env("BERTH_ACTIONS_CACHE", cache.path())
            .env("BERTH_ACTIONS_URL", &source)
            .env("BERTH_REAL_ACTIONS", names)
            .output()
            .expect("run berth");
        crate::common::Run::from(out)
    };
    // By default it is berth's own.
    let plan = real(&["plan"], "");
    assert!(
        plan.stdout.contains("uses actions/checkout@v4: built in"),
        "{}",
        plan.stdout
    );
    real(&["run", "--platform", &platform], "").expect_code(0);
    let logs = p.berth(&["logs", "co"]).stdout;
    assert!(logs.contains("checkout said []"), "{logs}");

    // Asked for, it is an action like any other: missing, fetched, then run from the cache.
    let missing = real(&["run", "--platform", &platform], "actions/checkout");
    missing.expect_code(3);
    assert!(
        missing.stderr.contains("berth actions pull"),
        "{}",
        missing.stderr
    );
    let pull = real(&["actions", "pull"], "actions/checkout");
    assert!(
        pull.stdout.contains("actions/checkout@v4: fetched at"),
        "{}",
        pull.stdout
    );
    real(&["run", "--platform", &platform], "all").expect_code(0);
    let logs = p.berth(&["logs", "co"]).stdout;
    assert!(logs.contains("checkout said [real]"), "{logs}");

    let bad = real(&["plan"], "actions/checkout,octo/lint");
    bad.expect_code(2);
    assert!(
        bad.stderr
            .contains("BERTH_REAL_ACTIONS: `octo/lint` is not one of berth's built-in actions"),
        "{}",
        bad.stderr
    );
    assert!(p.leftovers().is_empty(), "{:?}", p.leftovers());
}
