//! Reusable workflows end to end on the real engine: a local one with inputs, secrets and
//! outputs that a later job reads (its jobs passing an artifact), a matrix of calls, a nested
//! call, a remote one fetched from a local git repository standing in for GitHub and then run
//! with the source gone (and pinned by `berth lock`), and the mistakes (exit 2 at the file and line, exit 3 when missing).

use std::path::Path;

use crate::common::{require_image, Project, BUSYBOX};
use crate::github_server::{commit_and_tag, serve};

fn platform() -> String {
    format!("ubuntu-latest={BUSYBOX}")
}

/// `berth run` with the secret `API_TOKEN`.
fn secret_run(p: &Project, token: &str) -> crate::common::Run {
    let out = p
        .command(&["run", "--platform", &platform(), "--secret", "API_TOKEN"])
        .env("API_TOKEN", token)
        .output()
        .expect("run berth");
    crate::common::Run::from(out)
}

#[test]
fn a_local_reusable_workflow_runs_with_inputs_secrets_outputs_matrix_and_nesting() {
    require_image(BUSYBOX);
    let p = Project::fixture("github/reusable");
    let plan = p.berth(&["plan", "--output", "json"]);
    plan.expect_code(0);
    let jobs: serde_json::Value = serde_json::from_str(&plan.stdout).expect("JSON");
    let jobs = jobs.as_array().expect("an array");
    let shown: Vec<(String, String, Vec<String>)> = jobs
        .iter()
        .map(|j| {
            let needs = j["needs"].as_array().expect("needs");
            (
                j["name"].as_str().expect("name").to_string(),
                j["job"].as_str().expect("job").to_string(),
                needs
                    .iter()
                    .map(|n| n.as_str().unwrap().to_string())
                    .collect(),
            )
        })
        .collect();
    let row = |name: &str, job: &str, needs: &[&str]| {
        (
            name.to_string(),
            job.to_string(),
            needs.iter().map(|n| n.to_string()).collect::<Vec<_>>(),
        )
    };
    assert_eq!(
        shown,
        [
            row("setup", "setup", &[]),
            row("build / compile", "build/compile", &["setup"]),
            row("build / package", "build/package", &["build/compile"]),
            row("report", "report", &["build"]),
            row("numbers (1) / leaf", "numbers/leaf", &[]),
            row("numbers (2) / leaf", "numbers/leaf", &[]),
            row("Nested / inner / leaf", "nested/inner/leaf", &[]),
        ],
        "{}",
        plan.stdout
    );
    assert!(jobs
        .iter()
        .all(|j| j["workflow"] == ".github/workflows/ci.yml"));
    let text = p.berth(&["plan"]);
    assert!(
        text.stdout.contains(".github/workflows/ci.yml: job `build` calls ./.github/workflows/build.yml: reusable workflow, local"),
        "{}",
        text.stdout
    );

    let run = secret_run(&p, "s3cret");
    run.expect_code(0);
    let log = |job: &str| p.berth(&["logs", job]).stdout;
    // `with:` read the caller's need, typed as declared; the secret passed by name, masked;
    // one not passed is not there.
    let compile = log("build / compile");
    assert!(
        compile.contains("compile for hello world loud=true token=[MASKED] api="),
        "{compile}"
    );
    assert!(!compile.contains("s3cret"), "{compile}");
    // The workflow's output, from its job's, read by the caller's dependent.
    let report = log("report");
    assert!(
        report.contains("build said packaged built for hello world (success)"),
        "{report}"
    );
    // A matrix of calls, and a call inside a called workflow: the top workflow's name.
    assert!(log("numbers (1) / leaf").contains("leaf n=1 big=false repo=reusable"));
    assert!(log("numbers (2) / leaf").contains("leaf n=2 big=true repo=reusable"));
    assert!(log("Nested / inner / leaf").contains("leaf n=3 big=true"));
    assert!(p.leftovers().is_empty(), "{:?}", p.leftovers());
}

#[test]
fn a_caller_that_does_not_run_skips_the_workflow_it_calls() {
    require_image(BUSYBOX);
    let p = Project::fixture("github/reusable");
    let ci = std::fs::read_to_string(p.path().join(".github/workflows/ci.yml")).unwrap();
    p.write(
        ".github/workflows/ci.yml",
        &ci.replace(
            "    needs: setup\n    uses:",
            "    needs: setup\n    if: needs.setup.outputs.greeting == 'bye'\n    uses:",
        ),
    );
    let run = secret_run(&p, "x");
    run.expect_code(0);
    for job in ["build / compile", "build / package", "report"] {
        assert!(
            run.status_of(job).contains("skipped"),
            "{}",
            run.status_of(job)
        );
    }
    assert!(run.status_of("numbers (1) / leaf").contains("passed"));
}

#[test]
fn calls_that_do_not_fit_are_exit_2_at_their_line() {
    let p = Project::fixture("github/reusable");
    let ci = std::fs::read_to_string(p.path().join(".github/workflows/ci.yml")).unwrap();
    let check = |text: &str, place: &str, message: &str| {
        p.write(".github/workflows/ci.yml", text);
        let run = p.berth(&["run", "--platform", &platform()]);
        run.expect_code(2);
        assert!(run.stderr.contains(place), "{place}: {}", run.stderr);
        assert!(run.stderr.contains(message), "{message}: {}", run.stderr);
        assert!(run.stderr.contains("nothing was started"), "{}", run.stderr);
    };
    check(
        &ci.replace("      loud: true\n", "      loud: 'yes'\n"),
        ".github/workflows/ci.yml:16:13",
        "`with: loud` is a string `yes`, but the input `loud` of `./.github/workflows/build.yml` is a boolean",
    );
    check(
        &ci.replace(
            "      loud: true\n",
            "      loud: true\n      colour: red\n",
        ),
        ".github/workflows/ci.yml:17:15",
        "has no input `colour` (its inputs: who, loud)",
    );
    check(
        &ci.replace("      who: ${{ needs.setup.outputs.greeting }} world\n", ""),
        ".github/workflows/ci.yml:13:11",
        "requires the input `who`, which `with:` does not give",
    );
    check(
        &ci.replace(
            "./.github/workflows/leaf.yml",
            "./.github/workflows/gone.yml",
        ),
        ".github/workflows/ci.yml:28:11",
        "job `numbers` calls `./.github/workflows/gone.yml`, but the repository has no such file",
    );
    p.write(
        ".github/workflows/plain.yml",
        "on: pull_request\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps: [{run: echo}]\n",
    );
    check(
        &ci.replace("./.github/workflows/middle.yml", "./.github/workflows/plain.yml"),
        ".github/workflows/ci.yml:33:11",
        "job `nested` calls `./.github/workflows/plain.yml`, which is not a reusable workflow: its `on:` has no `workflow_call`",
    );
    check(
        &ci.replace(
            "./.github/workflows/middle.yml",
            "./.github/workflows/ci.yml",
        ),
        ".github/workflows/ci.yml:33:11",
        "job `nested` calls `./.github/workflows/ci.yml`, which is already being called",
    );
    assert!(p.leftovers().is_empty());
}

/// `berth ARGS` with the action cache at `cache`, fetched from `source`.
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
fn a_remote_reusable_workflow_is_fetched_once_then_runs_offline() {
    require_image(BUSYBOX);
    let server = tempfile::tempdir().expect("temp dir");
    let cache = tempfile::tempdir().expect("temp dir");
    // The workflows' repository, a bare repository over file:// in GitHub's stead.
    let src = server.path().join("src");
    std::fs::create_dir_all(src.join(".github/workflows")).unwrap();
    std::fs::write(
        src.join(".github/workflows/shared.yml"),
        "on:\n  workflow_call:\n    inputs:\n      what: {type: string, default: thing}\n    outputs:\n      done: {value: '${{ jobs.work.outputs.done }}'}\njobs:\n  work:\n    runs-on: ubuntu-latest\n    outputs:\n      done: ${{ steps.w.outputs.done }}\n    steps:\n      - id: w\n        run: echo \"done=shared ${{ inputs.what }}\" >> \"$GITHUB_OUTPUT\"\n",
    )
    .unwrap();
    let sha = commit_and_tag(&src, "v1");
    let source = serve(server.path(), &src, "octo", "ci");
    let p = Project::new(&[(
        ".github/workflows/ci.yml",
        "on: push\njobs:\n  call:\n    uses: octo/ci/.github/workflows/shared.yml@v1\n    with: {what: remotely}\n  after:\n    needs: call\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo \"got ${{ needs.call.outputs.done }}\"\n",
    )]);

    // Not fetched yet: exit 3, naming the workflow and the command that fetches it.
    let missing = berth(
        &p,
        cache.path(),
        &source,
        &["run", "--platform", &platform()],
    );
    missing.expect_code(3);
    assert!(
        missing
            .stderr
            .contains("`octo/ci/.github/workflows/shared.yml@v1` is not in berth's action cache"),
        "{}",
        missing.stderr
    );
    assert!(
        missing.stderr.contains("berth actions pull"),
        "{}",
        missing.stderr
    );

    let pull = berth(&p, cache.path(), &source, &["actions", "pull"]);
    pull.expect_code(0);
    assert!(
        pull.stdout
            .contains("octo/ci/.github/workflows/shared.yml@v1: fetched"),
        "{}",
        pull.stdout
    );

    // The source gone: the cache answers, with no network at all.
    std::fs::remove_dir_all(server.path().join("github")).unwrap();
    let plan = berth(&p, cache.path(), &source, &["plan"]);
    assert!(
        plan.stdout
            .contains(&format!("reusable workflow, cached at {}", &sha[..12])),
        "{}",
        plan.stdout
    );
    let run = berth(
        &p,
        cache.path(),
        &source,
        &["run", "--platform", &platform(), "--network", "none"],
    );
    run.expect_code(0);
    let after = p.berth(&["logs", "after"]).stdout;
    assert!(after.contains("got shared remotely"), "{after}");
    // The run's record names the commit the workflow ran at.
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(p.run_dir().join("manifest.json")).expect("manifest"),
    )
    .expect("JSON");
    assert_eq!(
        manifest["pins"],
        serde_json::json!([{"uses": "octo/ci/.github/workflows/shared.yml@v1", "commit": sha}]),
        "{manifest}"
    );
    // `berth lock` pins the workflow's repository at that commit, as an action's; a hermetic
    // run then takes it from there.
    let lock = berth(
        &p,
        cache.path(),
        &source,
        &["lock", "--platform", &platform()],
    );
    lock.expect_code(0);
    let text = std::fs::read_to_string(p.path().join("berth.lock")).expect("berth.lock");
    let written: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(
        written["actions"],
        serde_json::json!({"octo/ci@v1": sha}),
        "{text}"
    );
    let hermetic = berth(
        &p,
        cache.path(),
        &source,
        &["run", "--platform", &platform(), "--hermetic"],
    );
    hermetic.expect_code(0);
    assert!(p.leftovers().is_empty(), "{:?}", p.leftovers());
}
