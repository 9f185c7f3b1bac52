//! The steps played as the engine plays them: each command's `Ended` fed by hand.

use super::*;
use crate::github::lower::{lower, Platforms};
use crate::github::trigger::GitRef;
use crate::github::workflow;
use crate::pipeline;

pub(crate) fn facts() -> Run {
    Run {
        event_name: "push".into(),
        git_ref: Some(GitRef::Branch("main".into())),
        base_ref: None,
        sha: "0123456789abcdef0123456789abcdef01234567".into(),
        repository: "acme/shop".into(),
        actor: "octocat".into(),
        run_id: 42,
        run_number: 7,
        run_attempt: 1,
        workspace: "/builds/shop".into(),
        server_url: "https://github.com".into(),
        event: serde_json::json!({"ref": "refs/heads/main"}),
        inputs: Vec::new(),
        secrets: vec![("TOKEN".into(), "s3cret".into())],
        vars: vec![("STAGE".into(), "dev".into())],
        runner_arch: "X64".into(),
        actions: Default::default(),
    }
}

pub(crate) fn jobs(src: &str) -> Vec<pipeline::Job> {
    let parsed = workflow::parse(src, 0).unwrap_or_else(|d| panic!("{d:#?}"));
    let lowered = lower(
        &parsed.workflow,
        ".github/workflows/ci.yml",
        &facts(),
        &Platforms::new(),
    )
    .unwrap_or_else(|d| panic!("{d:#?}"));
    lowered.pipeline.jobs
}

fn start(job: &pipeline::Job) -> Box<dyn StepsRun> {
    start_with(job, Start::default())
}

fn start_with(job: &pipeline::Job, start: Start) -> Box<dyn StepsRun> {
    match &job.steps {
        Some(steps) => steps.start(start),
        None => panic!("{} has no steps", job.name),
    }
}

fn one_job(src: &str) -> pipeline::Job {
    let mut all = jobs(src);
    assert_eq!(all.len(), 1);
    all.remove(0)
}

fn next(run: &mut dyn StepsRun) -> Command {
    match run.next() {
        Ok(Some(c)) => c,
        other => panic!("expected a command, got {other:?}"),
    }
}

fn done(run: &mut dyn StepsRun) {
    match run.next() {
        Ok(None) => {}
        other => panic!("expected the end, got {other:?}"),
    }
}

fn exit(code: i64) -> Ended {
    Ended {
        exit_code: code,
        timed_out: false,
        files: Vec::new(),
        operation: None,
    }
}

fn with_files(code: i64, files: &[(&str, &str)]) -> Ended {
    Ended {
        exit_code: code,
        timed_out: false,
        files: files
            .iter()
            .map(|(p, c)| (p.to_string(), c.to_string()))
            .collect(),
        operation: None,
    }
}

fn env<'a>(c: &'a Command, key: &str) -> Option<&'a str> {
    c.env
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

fn file<'a>(c: &'a Command, path: &str) -> Option<&'a str> {
    c.files
        .iter()
        .find(|(p, _)| p == path)
        .map(|(_, v)| v.as_str())
}

/// The script of a `run:` step's command (bash or sh by default).
fn script(c: &Command) -> &str {
    c.files
        .iter()
        .find(|(p, _)| p.ends_with("/script.sh") || p.ends_with("/script.py"))
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no script in {c:?}"))
}

const SEED: &str = "\
name: python-ci
on: [push, pull_request]
jobs:
  test:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
      - uses: actions/setup-python@v5
        with: { python-version: '3.11' }
      - run: pip install -r requirements-dev.txt
      - run: ruff check . && pytest -q
";

const VENV_BIN: &str = "/opt/hostedtoolcache/berth-python/3.11.2/bin";

/// Plays setup-python's two commands, the image having Python 3.11.2.
fn set_up_python(run: &mut dyn StepsRun) {
    let probe = next(run);
    assert_eq!(probe.name, "Run actions/setup-python@v5");
    assert_eq!(probe.argv, ["sh", "-e", "/berth/github/2/probe.sh"]);
    run.finished(with_files(
        0,
        &[(
            "/berth/github/2/pythons",
            "3.11.2 /usr/bin/python3\n3.11.2 /usr/bin/python3.11\n",
        )],
    ));
    let install = next(run);
    assert_eq!(install.name, "Run actions/setup-python@v5");
    assert_eq!(install.argv, ["sh", "-e", "/berth/github/2/install.sh"]);
    let text = file(&install, "/berth/github/2/install.sh").expect("the install script");
    assert!(text.starts_with("exe='/usr/bin/python3'\n"), "{text}");
    // What the install script writes, as the container would.
    run.finished(with_files(
        0,
        &[
            ("/berth/github/2/output", "python-version=3.11.2\n"),
            ("/berth/github/2/path", &format!("{VENV_BIN}\n")),
            (
                "/berth/github/2/env",
                "pythonLocation=/opt/hostedtoolcache/berth-python/3.11.2\n",
            ),
        ],
    ));
}

#[test]
fn the_seed_runs_setup_python_then_its_scripts_in_a_venv() {
    let job = one_job(SEED);
    assert_eq!(job.name, "test");
    assert_eq!(job.base_name, "test");
    assert_eq!(
        job.image,
        Some(pipeline::Image::Name {
            name: "catthehacker/ubuntu:act-latest".into(),
            entrypoint: None
        })
    );
    assert_eq!(job.timeout, Some(Duration::from_secs(360 * 60)));
    let steps = job.steps.as_ref().expect("steps");
    assert_eq!(steps.should_run(&[], false), Ok(true));
    let mut run = start(&job);
    let run = run.as_mut();

    // Checkout has nothing to run: the first command is setup-python's probe, which also
    // brings the event payload and the step's empty files.
    let probe = next(run);
    assert_eq!(
        file(&probe, "/berth/github/event.json"),
        Some(r#"{"ref":"refs/heads/main"}"#)
    );
    for f in ["output", "env", "path", "summary"] {
        let path = format!("/berth/github/2/{f}");
        assert_eq!(file(&probe, &path), Some(""), "{path}");
        assert!(probe.collect.contains(&path), "{path} is collected");
    }
    assert!(probe
        .collect
        .contains(&"/berth/github/2/pythons".to_string()));
    let text = file(&probe, "/berth/github/2/probe.sh").expect("the probe script");
    assert!(text.contains("\"$d\"/python3.[0-9]*"), "{text}");
    assert_eq!(env(&probe, "GITHUB_OUTPUT"), Some("/berth/github/2/output"));
    assert_eq!(env(&probe, "GITHUB_ACTION"), Some("__actions_setup-python"));
    assert_eq!(env(&probe, "CI"), Some("true"));
    assert_eq!(env(&probe, "GITHUB_WORKSPACE"), Some("/builds/shop"));
    assert_eq!(env(&probe, "GITHUB_REF"), Some("refs/heads/main"));
    assert_eq!(env(&probe, "GITHUB_REPOSITORY_OWNER"), Some("acme"));
    assert_eq!(env(&probe, "GITHUB_WORKFLOW"), Some("python-ci"));
    assert_eq!(env(&probe, "GITHUB_JOB"), Some("test"));
    assert_eq!(env(&probe, "GITHUB_RUN_NUMBER"), Some("7"));
    assert_eq!(env(&probe, "RUNNER_OS"), Some("Linux"));
    run.finished(with_files(
        0,
        &[(
            "/berth/github/2/pythons",
            "3.11.2 /usr/bin/python3\n3.9.2 /usr/bin/python3.9\n",
        )],
    ));
    let install = next(run);
    assert!(file(&install, "/berth/github/2/install.sh")
        .is_some_and(|s| s.contains("berth-python/3.11.2")));
    assert!(!install.files.iter().any(|(p, _)| p.ends_with("event.json")));
    run.finished(with_files(
        0,
        &[
            ("/berth/github/2/output", "python-version=3.11.2\n"),
            ("/berth/github/2/path", &format!("{VENV_BIN}\n")),
            (
                "/berth/github/2/env",
                "pythonLocation=/opt/hostedtoolcache/berth-python/3.11.2\n",
            ),
        ],
    ));

    let pip = next(run);
    assert_eq!(pip.name, "Run pip install -r requirements-dev.txt");
    assert_eq!(
        file(&pip, "/berth/github/3/script.sh"),
        Some("pip install -r requirements-dev.txt")
    );
    assert_eq!(
        pip.argv,
        [
            "sh",
            "-c",
            "PATH=/opt/hostedtoolcache/berth-python/3.11.2/bin:\"$PATH\"; export PATH; if command -v bash >/dev/null 2>&1; then exec bash -e /berth/github/3/script.sh; else exec sh -e /berth/github/3/script.sh; fi"
        ]
    );
    assert_eq!(
        env(&pip, "pythonLocation"),
        Some("/opt/hostedtoolcache/berth-python/3.11.2")
    );
    assert_eq!(env(&pip, "GITHUB_ACTION"), Some("__run"));
    assert_eq!(pip.working_dir, None);
    run.finished(exit(0));

    let test = next(run);
    assert_eq!(test.name, "Run ruff check . && pytest -q");
    assert_eq!(script(&test), "ruff check . && pytest -q");
    assert_eq!(env(&test, "GITHUB_ACTION"), Some("__run_2"));
    run.finished(exit(0));
    done(run);
    let outcome = run.outcome();
    assert!(outcome.success, "{outcome:?}");
    assert_eq!(outcome.message, None);
    assert!(!outcome.environment_error);
}

#[test]
fn a_failing_test_fails_the_seed_job_with_the_step_named() {
    let job = one_job(SEED);
    let mut run = start(&job);
    let run = run.as_mut();
    set_up_python(run);
    let _pip = next(run);
    run.finished(exit(0));
    let _test = next(run);
    run.finished(exit(1));
    done(run);
    let outcome = run.outcome();
    assert!(!outcome.success);
    assert_eq!(
        outcome.message.as_deref(),
        Some("step 4 `Run ruff check . && pytest -q` failed with exit code 1")
    );
}

#[test]
fn a_python_the_image_lacks_is_an_environment_error_naming_version_and_image() {
    let job = one_job(&SEED.replace("'3.11'", "'3.12'"));
    let mut run = start(&job);
    let run = run.as_mut();
    let _probe = next(run);
    run.finished(with_files(
        0,
        &[("/berth/github/2/pythons", "3.11.2 /usr/bin/python3\n")],
    ));
    // pip and the tests are skipped: nothing more runs.
    done(run);
    let outcome = run.outcome();
    assert!(!outcome.success);
    assert!(outcome.environment_error);
    assert_eq!(
        outcome.message.as_deref(),
        Some("step 2 `Run actions/setup-python@v5`: `actions/setup-python`: Python 3.12 is not in the image catthehacker/ubuntu:act-latest (it has 3.11.2 at /usr/bin/python3); berth does not download Pythons yet: run the job in an image that has it with `--platform ubuntu-latest=IMAGE`, or give the job a `container:` that has it")
    );
}

#[test]
fn a_python_that_cannot_make_a_venv_is_an_environment_error() {
    let job = one_job(SEED);
    let mut run = start(&job);
    let run = run.as_mut();
    let _probe = next(run);
    run.finished(with_files(
        0,
        &[("/berth/github/2/pythons", "3.11.2 /usr/bin/python3\n")],
    ));
    let _install = next(run);
    run.finished(exit(setup_python::NO_VENV_EXIT));
    done(run);
    let outcome = run.outcome();
    assert!(outcome.environment_error);
    assert_eq!(
        outcome.message.as_deref(),
        Some("step 2 `Run actions/setup-python@v5` failed with exit code 3")
    );
}

#[test]
fn python_version_file_is_read_from_the_workspace() {
    let job = one_job(&SEED.replace(
        "python-version: '3.11'",
        "python-version-file: .tool-versions",
    ));
    let mut run = start(&job);
    let run = run.as_mut();
    let probe = next(run);
    let text = file(&probe, "/berth/github/2/probe.sh").expect("probe");
    assert!(text.contains("if [ -f '.tool-versions' ]; then cp '.tool-versions' '/berth/github/2/version-file'; fi"), "{text}");
    run.finished(with_files(
        0,
        &[
            (
                "/berth/github/2/pythons",
                "3.11.2 /usr/bin/python3\n3.9.2 /usr/bin/python3.9\n",
            ),
            ("/berth/github/2/version-file", "python 3.9\n"),
        ],
    ));
    let install = next(run);
    let text = file(&install, "/berth/github/2/install.sh").expect("install");
    assert!(text.starts_with("exe='/usr/bin/python3.9'\n"), "{text}");
}

const FAILURES: &str = "\
on: push
jobs:
  j:
    runs-on: ubuntu-latest
    steps:
      - id: a
        run: exit 1
      - run: echo skipped
      - if: always()
        run: echo always
      - if: failure()
        run: echo 'a=${{ steps.a.outcome }} ${{ steps.a.conclusion }} ${{ job.status }}'
      - if: success()
        run: echo never
      - if: cancelled()
        run: echo never either
";

#[test]
fn a_failed_step_skips_the_rest_but_always_and_failure() {
    let job = one_job(FAILURES);
    let mut run = start(&job);
    let run = run.as_mut();
    let a = next(run);
    assert_eq!(script(&a), "exit 1");
    run.finished(exit(1));
    let always = next(run);
    assert_eq!(script(&always), "echo always");
    run.finished(exit(0));
    let failure = next(run);
    assert_eq!(script(&failure), "echo 'a=failure failure failure'");
    run.finished(exit(0));
    done(run);
    let outcome = run.outcome();
    assert!(!outcome.success);
    assert_eq!(
        outcome.message.as_deref(),
        Some("step 1 `Run exit 1` failed with exit code 1")
    );
}

#[test]
fn continue_on_error_keeps_the_job_green_and_tells_outcome_from_conclusion() {
    let job = one_job(
        "\
on: push
jobs:
  j:
    runs-on: ubuntu-latest
    steps:
      - id: flaky
        continue-on-error: true
        run: exit 2
      - run: echo '${{ steps.flaky.outcome }}/${{ steps.flaky.conclusion }}'
",
    );
    let mut run = start(&job);
    let run = run.as_mut();
    let _ = next(run);
    run.finished(exit(2));
    let after = next(run);
    assert_eq!(script(&after), "echo 'failure/success'");
    run.finished(exit(0));
    done(run);
    let outcome = run.outcome();
    assert!(outcome.success, "{outcome:?}");
    assert_eq!(outcome.message, None);
}

#[test]
fn outputs_pass_between_steps_and_to_the_job_through_github_output() {
    let job = one_job(
        "\
on: push
jobs:
  j:
    runs-on: ubuntu-latest
    outputs:
      simple: ${{ steps.gen.outputs.simple }}
      lines: ${{ steps.gen.outputs.json }}
    steps:
      - id: gen
        run: ./gen.sh
      - run: echo '${{ steps.gen.outputs.simple }}' '${{ fromJSON(steps.gen.outputs.json).a }}'
",
    );
    let mut run = start(&job);
    let run = run.as_mut();
    let _ = next(run);
    run.finished(with_files(
        0,
        &[(
            "/berth/github/1/output",
            "json<<EOF\n{\"a\": 1,\n \"b\": 2}\nEOF\nsimple=x=y\n",
        )],
    ));
    let after = next(run);
    assert_eq!(script(&after), "echo 'x=y' '1'");
    run.finished(exit(0));
    done(run);
    let outcome = run.outcome();
    assert_eq!(
        outcome.outputs,
        [
            ("simple".to_string(), "x=y".to_string()),
            ("lines".to_string(), "{\"a\": 1,\n \"b\": 2}".to_string())
        ]
    );
}

#[test]
fn a_malformed_output_file_fails_the_step() {
    let job = one_job(
        "on: push\njobs:\n  j:\n    runs-on: ubuntu-latest\n    steps:\n      - run: ./gen.sh\n",
    );
    let mut run = start(&job);
    let run = run.as_mut();
    let _ = next(run);
    run.finished(with_files(
        0,
        &[("/berth/github/1/output", "x<<END\nnever ended\n")],
    ));
    done(run);
    assert_eq!(
        run.outcome().message.as_deref(),
        Some("step 1 `Run ./gen.sh`: $GITHUB_OUTPUT: invalid value of 'x': matching delimiter not found 'END'")
    );
}

#[test]
fn env_layers_and_github_env_and_path_reach_later_steps() {
    let job = one_job(
        "\
on: push
env:
  A: wf
  B: wf
  REF: ${{ github.ref_name }}
jobs:
  j:
    runs-on: ubuntu-latest
    env:
      B: job
      C: job
    steps:
      - env:
          C: step ${{ env.B }}
        run: echo \"$C\"
      - run: echo ${{ env.FROM_FILE }}
      - env:
          FROM_FILE: step wins
        run: echo \"$FROM_FILE\"
",
    );
    let mut run = start_with(
        &job,
        Start {
            env: vec![("FROM_CLI".into(), "1".into())],
            ..Start::default()
        },
    );
    let run = run.as_mut();
    let first = next(run);
    assert_eq!(env(&first, "A"), Some("wf"));
    assert_eq!(env(&first, "B"), Some("job"));
    assert_eq!(env(&first, "C"), Some("step job"));
    assert_eq!(env(&first, "REF"), Some("main"));
    assert_eq!(env(&first, "FROM_CLI"), Some("1"));
    assert!(
        first.argv[2].starts_with("if command -v bash"),
        "no PATH prefix yet"
    );
    run.finished(with_files(
        0,
        &[
            (
                "/berth/github/1/env",
                "FROM_FILE=written\nMULTI<<X\na\nb\nX\n",
            ),
            ("/berth/github/1/path", "/tools/bin\n"),
            ("/berth/github/1/summary", "## Done\n"),
        ],
    ));
    let second = next(run);
    assert_eq!(script(&second), "echo written");
    assert_eq!(env(&second, "FROM_FILE"), Some("written"));
    assert_eq!(env(&second, "MULTI"), Some("a\nb"));
    assert_eq!(env(&second, "C"), Some("job"));
    assert!(
        second.argv[2].starts_with("PATH=/tools/bin:\"$PATH\"; export PATH; "),
        "{:?}",
        second.argv
    );
    run.finished(exit(0));
    let third = next(run);
    assert_eq!(env(&third, "FROM_FILE"), Some("step wins"));
    run.finished(exit(0));
    done(run);
    let outcome = run.outcome();
    assert_eq!(
        outcome.summaries,
        [("Run echo \"$C\"".to_string(), "## Done\n".to_string())]
    );
}

#[test]
fn shells_working_directories_and_timeouts() {
    let job = one_job(
        "\
on: push
defaults:
  run:
    working-directory: app
jobs:
  j:
    runs-on: ubuntu-latest
    defaults:
      run:
        shell: bash
    steps:
      - run: make
        timeout-minutes: 1.5
      - run: print('hi')
        shell: python
        working-directory: /tmp
      - run: echo custom
        shell: perl -w {0}
        working-directory: ./sub/dir
",
    );
    let mut run = start(&job);
    let run = run.as_mut();
    let make = next(run);
    assert_eq!(
        make.argv,
        [
            "bash",
            "--noprofile",
            "--norc",
            "-eo",
            "pipefail",
            "/berth/github/1/script.sh"
        ]
    );
    assert_eq!(make.working_dir.as_deref(), Some("/builds/shop/app"));
    assert_eq!(make.timeout, Some(Duration::from_secs(90)));
    run.finished(exit(0));
    let py = next(run);
    assert_eq!(
        py.argv,
        Shell::Python.argv("/berth/github/2/script.py", &[])
    );
    assert_eq!(file(&py, "/berth/github/2/script.py"), Some("print('hi')"));
    assert_eq!(py.working_dir.as_deref(), Some("/tmp"));
    run.finished(exit(0));
    let perl = next(run);
    assert_eq!(perl.argv, ["perl", "-w", "/berth/github/3/script"]);
    assert_eq!(perl.working_dir.as_deref(), Some("/builds/shop/sub/dir"));
    run.finished(Ended {
        exit_code: 137,
        timed_out: true,
        files: Vec::new(),
        operation: None,
    });
    done(run);
    assert_eq!(
        run.outcome().message.as_deref(),
        Some("step 3 `Run echo custom` timed out")
    );
}

#[test]
fn an_action_berth_lacks_fails_the_job_before_any_step() {
    let job = one_job(
        "\
on: push
jobs:
  j:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
      - name: Node
        uses: actions/setup-node@v4
        with: { node-version: 20 }
",
    );
    let mut run = start(&job);
    assert_eq!(
        run.next(),
        Err("step 2 `Node`: `actions/setup-node@v4` was not read before the run (berth has actions/checkout, actions/setup-python, actions/cache, actions/cache/restore, actions/cache/save, actions/upload-artifact, actions/download-artifact built in)".to_string())
    );
    let outcome = run.outcome();
    assert!(!outcome.success);
    assert!(outcome
        .message
        .is_some_and(|m| m.contains("`actions/setup-node@v4`")));
}

#[test]
fn checkout_to_another_path_is_refused_for_now() {
    let job = one_job(
        "\
on: push
jobs:
  j:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
        with: { path: other }
      - run: echo after
      - id: co
        if: always()
        uses: actions/checkout@v4
      - if: always()
        run: echo ${{ steps.co.outputs.commit }}
",
    );
    let mut run = start(&job);
    let run = run.as_mut();
    let last = next(run);
    assert_eq!(
        script(&last),
        "echo 0123456789abcdef0123456789abcdef01234567"
    );
    run.finished(exit(0));
    done(run);
    assert_eq!(
        run.outcome().message.as_deref(),
        Some("step 1 `Run actions/checkout@v4`: `actions/checkout` with `path: other` is not supported yet: berth's workspace is already the checkout, at /builds/shop")
    );
}

#[test]
fn cancelling_runs_only_the_steps_that_run_whatever_happens() {
    let job = one_job(
        "\
on: push
jobs:
  j:
    runs-on: ubuntu-latest
    steps:
      - run: sleep 100
      - run: echo next
      - if: cancelled()
        run: echo cleanup ${{ job.status }}
",
    );
    let mut run = start(&job);
    let run = run.as_mut();
    let _ = next(run);
    run.cancel();
    run.finished(exit(143));
    let cleanup = next(run);
    assert_eq!(script(&cleanup), "echo cleanup cancelled");
    run.finished(exit(0));
    done(run);
    let outcome = run.outcome();
    assert!(!outcome.success);
    assert_eq!(outcome.message.as_deref(), Some("the job was cancelled"));
}

#[test]
fn a_step_whose_expression_fails_at_run_time_fails_like_any_step() {
    let job = one_job(
        "\
on: push
jobs:
  j:
    runs-on: ubuntu-latest
    steps:
      - run: echo ${{ fromJSON('not json') }}
      - if: always()
        run: echo still
",
    );
    let mut run = start(&job);
    let run = run.as_mut();
    let still = next(run);
    assert_eq!(script(&still), "echo still");
    run.finished(exit(0));
    done(run);
    let message = run.outcome().message.unwrap_or_default();
    assert!(
        message.starts_with(
            "step 1 `Run echo ${{ fromJSON('not json') }}`: `run` cannot be evaluated:"
        ),
        "{message}"
    );
}

const NEEDS: &str = "\
on: push
jobs:
  build:
    runs-on: ubuntu-latest
    outputs:
      ok: ${{ steps.s.outputs.ok }}
    steps:
      - id: s
        run: echo ok=yes >> $GITHUB_OUTPUT
  deploy:
    needs: build
    if: needs.build.outputs.ok == 'yes'
    runs-on: ubuntu-latest
    steps:
      - run: echo deploying ${{ needs.build.outputs.ok }} ${{ needs.build.result }}
  notify:
    needs: [build, deploy]
    if: failure()
    runs-on: ubuntu-latest
    steps:
      - run: echo failed
  report:
    needs: build
    if: always()
    runs-on: ubuntu-latest
    steps:
      - run: echo report
";

fn need(job: &str, result: &str, outputs: &[(&str, &str)]) -> NeedResult {
    NeedResult {
        job: job.into(),
        result: result.into(),
        outputs: outputs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

#[test]
fn job_if_reads_the_needs_results_and_outputs() {
    let all = jobs(NEEDS);
    let names: Vec<&str> = all.iter().map(|j| j.name.as_str()).collect();
    assert_eq!(names, ["build", "deploy", "notify", "report"]);
    let needs = |j: &pipeline::Job| -> Vec<String> {
        j.needs.iter().flatten().map(|n| n.job.clone()).collect()
    };
    assert_eq!(needs(&all[2]), ["build", "deploy"]);
    let should = |j: &pipeline::Job, needs: &[NeedResult], cancelled: bool| {
        j.steps
            .as_ref()
            .expect("steps")
            .should_run(needs, cancelled)
    };
    let yes = [need("build", "success", &[("ok", "yes")])];
    let no = [need("build", "success", &[("ok", "no")])];
    let failed = [need("build", "failure", &[("ok", "yes")])];
    assert_eq!(should(&all[1], &yes, false), Ok(true));
    assert_eq!(should(&all[1], &no, false), Ok(false));
    // The implicit success(): a failed need skips the job whatever its condition says.
    assert_eq!(should(&all[1], &failed, false), Ok(false));
    assert_eq!(
        should(
            &all[2],
            &[failed[0].clone(), need("deploy", "skipped", &[])],
            false
        ),
        Ok(true)
    );
    assert_eq!(
        should(
            &all[2],
            &[yes[0].clone(), need("deploy", "success", &[])],
            false
        ),
        Ok(false)
    );
    assert_eq!(should(&all[3], &failed, true), Ok(true));
    assert_eq!(should(&all[1], &yes, true), Ok(false));

    // The build job's output reaches deploy's script.
    let mut build = start(&all[0]);
    let _ = next(build.as_mut());
    build.finished(with_files(0, &[("/berth/github/1/output", "ok=yes\n")]));
    done(build.as_mut());
    let outputs = build.outcome().outputs;
    assert_eq!(outputs, [("ok".to_string(), "yes".to_string())]);
    let mut deploy = start_with(
        &all[1],
        Start {
            needs: vec![NeedResult {
                job: "build".into(),
                result: "success".into(),
                outputs,
            }],
            ..Start::default()
        },
    );
    let c = next(deploy.as_mut());
    assert_eq!(script(&c), "echo deploying yes success");
}

#[test]
fn a_matrix_need_folds_its_jobs_results() {
    let (results, context) = fold_needs(&[
        need("test", "success", &[("v", "1")]),
        need("test", "failure", &[("v", "2")]),
        need("lint", "skipped", &[]),
        need("lint", "skipped", &[]),
        need("docs", "success", &[]),
        need("docs", "skipped", &[]),
    ]);
    assert_eq!(
        results,
        [
            ("test".to_string(), "failure".to_string()),
            ("lint".to_string(), "skipped".to_string()),
            ("docs".to_string(), "success".to_string())
        ]
    );
    let Value::Object(o) = &context else {
        panic!("{context:?}")
    };
    let test = o.get("test").cloned().unwrap_or_default();
    assert_eq!(
        test.to_serde_json(),
        serde_json::json!({"result": "failure", "outputs": {"v": "2"}})
    );
}

#[test]
fn job_status_functions_can_name_needs() {
    let job = one_job_of(
        "\
on: push
jobs:
  a:
    runs-on: ubuntu-latest
    steps: [{run: x}]
  b:
    runs-on: ubuntu-latest
    steps: [{run: x}]
  c:
    needs: [a, b]
    if: success('a') && failure('b')
    runs-on: ubuntu-latest
    steps: [{run: x}]
",
        2,
    );
    let should = |needs: &[NeedResult]| job.steps.as_ref().expect("steps").should_run(needs, false);
    assert_eq!(
        should(&[need("a", "success", &[]), need("b", "failure", &[])]),
        Ok(true)
    );
    assert_eq!(
        should(&[need("a", "success", &[]), need("b", "success", &[])]),
        Ok(false)
    );
}

#[test]
fn a_job_skipped_for_its_needs_says_which_did_not_succeed() {
    let src = "\
on: push
jobs:
  a:
    runs-on: ubuntu-latest
    steps: [{run: x}]
  b:
    runs-on: ubuntu-latest
    steps: [{run: x}]
  c:
    needs: [a, b]
    runs-on: ubuntu-latest
    steps: [{run: x}]
  d:
    needs: [a, b]
    if: github.ref == 'refs/heads/other'
    runs-on: ubuntu-latest
    steps: [{run: x}]
";
    let needs = [need("a", "failure", &[]), need("b", "skipped", &[])];
    let implicit = one_job_of(src, 2);
    let implicit = implicit.steps.as_ref().expect("steps");
    assert_eq!(implicit.should_run(&needs, false), Ok(false));
    assert_eq!(
        implicit.skip_reason(&needs),
        "a job it needs did not succeed: `a` failed, `b` was skipped"
    );
    let explicit = one_job_of(src, 3);
    let explicit = explicit.steps.as_ref().expect("steps");
    assert_eq!(explicit.should_run(&needs, false), Ok(false));
    assert_eq!(explicit.skip_reason(&needs), "its `if:` condition is false");
}

#[test]
fn the_commands_for_python_caches_are_the_run_scripts_and_setup_pythons_cache() {
    let job = one_job(
        "\
on: push
jobs:
  j:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/setup-python@v5
        with: {python-version: '3.11', cache: pip}
      - uses: actions/checkout@v4
      - run: |
          python -m pip install -U pip
          pytest -q
",
    );
    let steps = job.steps.as_ref().expect("steps");
    assert_eq!(
        steps.commands(),
        ["python -m pip install -U pip\npytest -q\n"]
    );
    assert_eq!(steps.cached_tools(), ["pip"]);
}

fn one_job_of(src: &str, index: usize) -> pipeline::Job {
    jobs(src).remove(index)
}

#[test]
fn contexts_come_from_the_run_facts() {
    let job = one_job(
        "\
on: push
jobs:
  j:
    runs-on: ubuntu-latest
    steps:
      - run: echo ${{ github.sha }} ${{ github.repository }} ${{ github.event_name }} ${{ github.ref }} ${{ github.event.ref }} ${{ runner.os }} ${{ secrets.TOKEN }} ${{ vars.STAGE }} ${{ github.workspace }} ${{ github.run_id }}
",
    );
    let mut run = start(&job);
    let c = next(run.as_mut());
    assert_eq!(
        script(&c),
        "echo 0123456789abcdef0123456789abcdef01234567 acme/shop push refs/heads/main refs/heads/main Linux s3cret dev /builds/shop 42"
    );
}

#[test]
fn setup_python_looks_on_the_path_earlier_steps_extended() {
    let job = one_job(
        "\
on: push
jobs:
  j:
    runs-on: ubuntu-latest
    steps:
      - run: echo /opt/py/bin >> $GITHUB_PATH
      - uses: actions/setup-python@v5
        with:
          python-version: |
            3.9
            3.12
",
    );
    let mut run = start(&job);
    let run = run.as_mut();
    let _ = next(run);
    run.finished(with_files(0, &[("/berth/github/1/path", "/opt/py/bin\n")]));
    let probe = next(run);
    assert_eq!(
        probe.argv,
        [
            "sh",
            "-c",
            "PATH=/opt/py/bin:\"$PATH\"; export PATH; exec sh -e /berth/github/2/probe.sh"
        ]
    );
    // Of a list of versions, the last is the one set up.
    run.finished(with_files(
        0,
        &[(
            "/berth/github/2/pythons",
            "3.12.1 /opt/py/bin/python3\n3.9.2 /usr/bin/python3\n",
        )],
    ));
    let install = next(run);
    let text = file(&install, "/berth/github/2/install.sh").expect("install");
    assert!(text.starts_with("exe='/opt/py/bin/python3'\n"), "{text}");
}

fn reported(report: Report) -> Ended {
    Ended {
        operation: Some(Ok(report)),
        ..Ended::default()
    }
}

fn operation(c: &Command) -> &Operation {
    c.operation
        .as_ref()
        .unwrap_or_else(|| panic!("{} is no operation", c.name))
}

/// A project with one file, for `hashFiles`.
fn project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.txt"), "hello\n").unwrap();
    dir
}

const CACHE_JOB: &str = "\
on: push
jobs:
  j:
    runs-on: ubuntu-latest
    steps:
      - id: c
        uses: actions/cache@v4
        with:
          key: k-${{ hashFiles('a.txt') }}
          path: |
            ~/.cache
            vendor
          restore-keys: k-
      - run: echo hit=${{ steps.c.outputs.cache-hit }} matched=${{ steps.c.outputs.cache-matched-key }}
";

// python3: hashlib.sha256(hashlib.sha256(b'hello\n').digest()).hexdigest()
const A_TXT: &str = "ecb65bb98f9d905b70458986c39fcbad7715e5f2fcc3b1f07767d7c83e2438cc";

#[test]
fn a_cache_missed_restores_by_prefix_then_saves_after_the_last_step() {
    let dir = project();
    let job = one_job(CACHE_JOB);
    let mut run = start_with(
        &job,
        Start {
            project_dir: Some(dir.path().to_path_buf()),
            ..Start::default()
        },
    );
    let run = run.as_mut();
    // `~` needs the job's HOME first.
    let probe = next(run);
    assert!(probe.operation.is_none());
    assert_eq!(
        probe.collect.last().map(String::as_str),
        Some("/berth/github/1/home")
    );
    run.finished(with_files(0, &[("/berth/github/1/home", "/root\n")]));
    let restore = next(run);
    let key = format!("k-{A_TXT}");
    assert_eq!(
        operation(&restore),
        &Operation::RestoreCache {
            key: key.clone(),
            prefixes: vec!["k-".into()],
            paths: vec!["/root/.cache".into(), "/builds/shop/vendor".into()],
            lookup_only: false,
        }
    );
    run.finished(reported(Report::CacheRestored {
        key: Some("k-older".into()),
    }));
    let script = next(run);
    assert_eq!(
        file(&script, "/berth/github/2/script.sh").map(str::trim),
        Some("echo hit=false matched=k-older")
    );
    run.finished(exit(0));
    // Not an exact hit, the job passed: saved under the key the step had.
    let post = next(run);
    assert_eq!(post.name, "Post Run actions/cache@v4");
    assert_eq!(
        operation(&post),
        &Operation::SaveCache {
            key,
            paths: vec!["/root/.cache".into(), "/builds/shop/vendor".into()],
        }
    );
    run.finished(reported(Report::CacheSaved {
        saved: true,
        files: 3,
    }));
    done(run);
    assert!(run.outcome().success);
}

#[test]
fn an_exact_hit_or_a_failed_job_saves_nothing() {
    let dir = project();
    let job = one_job(CACHE_JOB);
    let key = format!("k-{A_TXT}");
    for (hit, later) in [(true, 0), (false, 1)] {
        let mut run = start_with(
            &job,
            Start {
                project_dir: Some(dir.path().to_path_buf()),
                ..Start::default()
            },
        );
        let run = run.as_mut();
        next(run);
        run.finished(with_files(0, &[("/berth/github/1/home", "/root")]));
        next(run);
        let matched = if hit { key.clone() } else { "k-x".to_string() };
        run.finished(reported(Report::CacheRestored { key: Some(matched) }));
        let script = next(run);
        let expected = if hit { "hit=true" } else { "hit=false" };
        assert!(
            file(&script, "/berth/github/2/script.sh").is_some_and(|s| s.contains(expected)),
            "{script:?}"
        );
        run.finished(exit(later));
        done(run);
    }
}

#[test]
fn a_miss_fails_with_fail_on_cache_miss_and_no_files_with_if_no_files_found_error() {
    let job = one_job(
        "\
on: push
jobs:
  j:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/cache/restore@v4
        continue-on-error: true
        with: { key: k, path: /opt/x, fail-on-cache-miss: true }
      - id: up
        uses: actions/upload-artifact@v4
        with: { name: dist, path: dist/ }
      - run: echo id=${{ steps.up.outputs.artifact-id }}
      - uses: actions/upload-artifact@v4
        with: { path: nothing/, if-no-files-found: error }
",
    );
    let mut run = start(&job);
    let run = run.as_mut();
    let restore = next(run);
    assert!(matches!(
        operation(&restore),
        Operation::RestoreCache { .. }
    ));
    run.finished(reported(Report::CacheRestored { key: None }));
    let up = next(run);
    assert_eq!(
        operation(&up),
        &Operation::UploadArtifact {
            name: "dist".into(),
            search: vec!["/builds/shop/dist".into()],
            include: vec!["/builds/shop/dist".into()],
            exclude: vec![],
            root: "/builds/shop/dist".into(),
            hidden: false,
        }
    );
    run.finished(reported(Report::ArtifactUploaded {
        id: Some(7),
        files: 2,
    }));
    let script = next(run);
    assert!(file(&script, "/berth/github/3/script.sh").is_some_and(|s| s.contains("id=7")));
    run.finished(exit(0));
    next(run);
    run.finished(reported(Report::ArtifactUploaded { id: None, files: 0 }));
    done(run);
    let outcome = run.outcome();
    assert!(!outcome.success);
    let message = outcome.message.unwrap_or_default();
    // The first failure (continue-on-error) does not fail the job: the upload does.
    assert!(message.starts_with("step 4 "), "{message}");
    assert!(
        message.contains("No files were found with the provided path: nothing/"),
        "{message}"
    );
}

/// A job with a local Docker action and a `docker://` step, read from a project in `dir`.
fn docker_job(dir: &std::path::Path, post_if: &str) -> pipeline::Job {
    let action = dir.join(".github/actions/d");
    std::fs::create_dir_all(&action).unwrap();
    std::fs::write(action.join("Dockerfile"), "FROM scratch\n").unwrap();
    std::fs::write(
        action.join("action.yml"),
        format!(
            "name: d\ninputs:\n  who: {{}}\n  mood:\n    default: calm\nruns:\n  using: docker\n  image: Dockerfile\n  args: ['${{{{ inputs.who }}}}', 'is ${{{{ inputs.mood }}}}']\n  env:\n    LOUD: '${{{{ inputs.who }}}}!'\n  pre-entrypoint: /pre\n  post-entrypoint: /post\n  post-if: {post_if}\n"
        ),
    )
    .unwrap();
    let src = "on: push\njobs:\n  t:\n    runs-on: ubuntu-latest\n    steps:\n      - id: d\n        uses: ./.github/actions/d\n        with:\n          who: ann\n      - id: raw\n        uses: docker://alpine:3\n        with:\n          entrypoint: /bin/sh\n          args: -c \"echo '${{ steps.d.outputs.said }}'\"\n";
    let parsed = workflow::parse(src, 0).unwrap_or_else(|d| panic!("{d:#?}"));
    let wfs = vec![("ci.yml".to_string(), parsed.workflow.clone())];
    let cache = crate::github::actions::cache::Cache::new(dir.join("cache"), "file:///x".into());
    let mut sources = crate::source::diag::SourceMap::default();
    let actions = found_actions::load(&wfs, dir, &cache, &mut sources).unwrap();
    let mut run = facts();
    run.actions = Arc::new(actions);
    let lowered = lower(&parsed.workflow, "ci.yml", &run, &Platforms::new())
        .unwrap_or_else(|d| panic!("{d:#?}"));
    lowered.pipeline.jobs.into_iter().next().unwrap()
}

#[test]
fn docker_actions_and_docker_steps_run_in_containers_of_their_own() {
    let dir = tempfile::tempdir().unwrap();
    let job = docker_job(dir.path(), "failure()");
    let steps = job.steps.as_ref().unwrap();
    // The images: the action's built from its folder, tagged by its content; the step's.
    let images = steps.images(dir.path()).unwrap();
    assert_eq!(images.len(), 2, "{images:?}");
    assert!(images[0]
        .image
        .starts_with("berth-build/action-github-actions-d:"));
    assert_eq!(
        images[0].build,
        Some((dir.path().join(".github/actions/d"), "Dockerfile".into()))
    );
    assert_eq!(images[1].image, "alpine:3");
    assert_eq!(images[1].build, None);
    let start = Start {
        project_dir: Some(dir.path().to_path_buf()),
        ..Start::default()
    };
    let mut run = start_with(&job, start);
    // pre-entrypoint first, with the action's args, in the built image.
    let pre = next(&mut *run);
    let own = pre.container.clone().expect("its own container");
    assert_eq!(own.image, images[0].image);
    assert_eq!(own.entrypoint.as_deref(), Some("/pre"));
    assert_eq!(
        (own.workspace.as_str(), own.job_workspace.as_str()),
        ("/github/workspace", "/builds/shop")
    );
    assert_eq!(pre.argv, ["ann", "is calm"]);
    assert_eq!(env(&pre, "GITHUB_WORKSPACE"), Some("/github/workspace"));
    assert_eq!(env(&pre, "HOME"), Some("/github/home"));
    assert!(
        file(&pre, "/github/workflow/event.json").is_some_and(|e| e.contains("refs/heads/main"))
    );
    let state = env(&pre, "GITHUB_STATE").unwrap().to_string();
    assert!(state.starts_with("/github/file_commands/"), "{state}");
    // Nothing of the job's own container goes into the step's.
    assert!(
        pre.files.iter().all(|(p, _)| !p.starts_with("/berth/")),
        "{:?}",
        pre.files
    );
    run.finished(with_files(0, &[(&state, "k=v\n")]));
    // The main entrypoint (the image's): inputs, env, what pre saved, the file commands.
    let main = next(&mut *run);
    assert_eq!(main.container.as_ref().unwrap().entrypoint, None);
    assert_eq!(env(&main, "INPUT_WHO"), Some("ann"));
    assert_eq!(env(&main, "INPUT_MOOD"), Some("calm"));
    assert_eq!(env(&main, "LOUD"), Some("ann!"));
    assert_eq!(env(&main, "STATE_k"), Some("v"));
    let output = env(&main, "GITHUB_OUTPUT").unwrap().to_string();
    assert_eq!(output, "/github/file_commands/set_output_1");
    assert!(main.collect.contains(&output));
    run.finished(with_files(0, &[(&output, "said=hi there\n")]));
    // The docker:// step: its `entrypoint`, its `args` split as a command line.
    let raw = next(&mut *run);
    let own = raw.container.clone().unwrap();
    assert_eq!(
        (own.image.as_str(), own.entrypoint.as_deref()),
        ("alpine:3", Some("/bin/sh"))
    );
    assert_eq!(raw.argv, ["-c", "echo 'hi there'"]);
    run.finished(exit(0));
    // post-if: failure() on a job that passed: no post.
    done(&mut *run);
    assert!(run.outcome().success);
}

#[test]
fn a_failed_docker_step_fails_the_job_and_its_post_runs_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let job = docker_job(dir.path(), "always()");
    let start = Start {
        project_dir: Some(dir.path().to_path_buf()),
        ..Start::default()
    };
    let mut run = start_with(&job, start);
    let _pre = next(&mut *run);
    run.finished(exit(0));
    let _main = next(&mut *run);
    run.finished(exit(7));
    // The step after it does not run; the post does (always()), in the action's image.
    let post = next(&mut *run);
    assert_eq!(post.name, "Post Run ./.github/actions/d");
    assert_eq!(
        post.container.as_ref().unwrap().entrypoint.as_deref(),
        Some("/post")
    );
    run.finished(exit(0));
    done(&mut *run);
    let outcome = run.outcome();
    assert!(!outcome.success);
    assert!(
        outcome
            .message
            .as_deref()
            .is_some_and(|m| m.contains("failed with exit code 7")),
        "{outcome:?}"
    );
}
