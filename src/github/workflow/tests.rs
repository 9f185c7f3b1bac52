use super::*;
use crate::github::expr::{Contexts, Value};
use crate::github::matrix::{self, Matrix};
use crate::github::trigger::{decide, Event, GitRef};

fn ok(src: &str) -> Workflow {
    match parse(src, 0) {
        Ok(p) => p.workflow,
        Err(d) => panic!("{d:#?}"),
    }
}

/// Every diagnostic as `line:col job: message`.
fn errors(src: &str) -> Vec<String> {
    let diags = parse(src, 0).expect_err("the workflow should be refused");
    diags
        .iter()
        .map(|d| {
            let span = d.span.unwrap_or_default();
            match &d.job {
                Some(job) => format!("{}:{} {job}: {}", span.line, span.col, d.message),
                None => format!("{}:{} {}", span.line, span.col, d.message),
            }
        })
        .collect()
}

fn steps(job: &Job) -> &StepsJob {
    match &job.kind {
        JobKind::Steps(s) => s,
        JobKind::Reusable(_) => panic!("{} is a reusable job", job.id),
    }
}

/// Issue #16's seed workflow, verbatim.
const PYTHON_CI: &str = "\
name: python-ci
on: [push, pull_request]
jobs:
  test:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
      - uses: actions/setup-python@v5
        with: { python-version: '3.12' }
      - run: pip install -r requirements-dev.txt
      - run: ruff check . && pytest -q
";

#[test]
fn the_seed_workflow() {
    let w = ok(PYTHON_CI);
    assert_eq!(w.name.as_deref(), Some("python-ci"));
    let events: Vec<&str> = w.on.iter().map(|t| t.event.as_str()).collect();
    assert_eq!(events, ["push", "pull_request"]);
    assert_eq!(w.jobs.len(), 1);
    let job = &w.jobs[0];
    assert_eq!((job.id.as_str(), job.span), ("test", Span::at(4, 3)));
    let s = steps(job);
    let labels: Vec<&str> = s.runs_on.labels.iter().map(|l| l.text.as_str()).collect();
    assert_eq!(labels, ["ubuntu-latest"]);
    assert_eq!(s.steps.len(), 4);
    match &s.steps[1].action {
        StepAction::Uses { uses, with } => {
            assert_eq!(uses, "actions/setup-python@v5");
            assert_eq!(with[0].0, "python-version");
            assert_eq!(with[0].1.text, "3.12");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(s.steps[3].label(), "Run ruff check . && pytest -q");
    assert_eq!(s.steps[3].index, 4);
}

/// "Workflow syntax: jobs.<job_id>.services" (the Redis example) and
/// "jobs.<job_id>.container" (the node:18 example), with `needs`, `outputs`, `defaults`,
/// `if`, `environment`, `concurrency` and `permissions`.
#[test]
fn a_job_with_everything() {
    let w = ok("\
on:
  push:
    branches: [main, 'releases/**']
env:
  FIRST: Mona
  NUMBER: 3.10
defaults:
  run:
    shell: bash
    working-directory: ./scripts
permissions: read-all
concurrency: ci-${{ github.ref }}
jobs:
  setup:
    runs-on: ubuntu-latest
    outputs:
      output1: ${{ steps.step1.outputs.test }}
    steps:
      - id: step1
        run: echo \"test=hello\" >> \"$GITHUB_OUTPUT\"
  container-job:
    needs: setup
    if: github.ref == 'refs/heads/main'
    runs-on: [self-hosted, linux]
    environment:
      name: production
      url: ${{ steps.deploy.outputs.url }}
    concurrency:
      group: ${{ github.workflow }}-${{ matrix.node }}
      cancel-in-progress: true
    permissions:
      contents: read
      id-token: write
    timeout-minutes: 30
    continue-on-error: ${{ matrix.experimental }}
    container:
      image: node:18
      env:
        NODE_ENV: development
      ports:
        - 80
      volumes:
        - my_docker_volume:/volume_mount
      options: --cpus 1
      credentials:
        username: ${{ github.actor }}
        password: ${{ secrets.github_token }}
    services:
      redis:
        image: redis
        ports:
          - 6379/tcp
        options: >-
          --health-cmd \"redis-cli ping\"
          --health-interval 10s
    steps:
      - name: Connect
        if: ${{ success() }}
        run: node client.js
        env:
          REDIS_HOST: redis
        timeout-minutes: 5
        shell: python
        working-directory: app
");
    assert_eq!(
        w.env[1],
        (
            "NUMBER".to_string(),
            Text {
                text: "3.1".into(),
                span: Span::at(6, 11)
            }
        )
    );
    assert_eq!(
        w.defaults.shell.as_ref().map(|t| t.text.as_str()),
        Some("bash")
    );
    assert_eq!(w.permissions, Some(Permissions::ReadAll));
    assert_eq!(
        w.concurrency.as_ref().map(|c| c.group.text.as_str()),
        Some("ci-${{ github.ref }}")
    );
    let push = w.trigger("push").unwrap();
    let branches: Vec<&str> = push
        .branches
        .as_ref()
        .unwrap()
        .iter()
        .map(|p| p.text())
        .collect();
    assert_eq!(branches, ["main", "releases/**"]);
    let setup = steps(&w.jobs[0]);
    assert_eq!(setup.outputs[0].1.text, "${{ steps.step1.outputs.test }}");
    assert_eq!(setup.steps[0].id.as_deref(), Some("step1"));
    let job = &w.jobs[1];
    assert_eq!(job.needs, ["setup"]);
    assert_eq!(
        job.condition.as_ref().unwrap().text,
        "github.ref == 'refs/heads/main'"
    );
    assert_eq!(
        job.permissions,
        Some(Permissions::Scopes(vec![
            ("contents".into(), "read".into()),
            ("id-token".into(), "write".into())
        ]))
    );
    let c = job.concurrency.as_ref().unwrap();
    assert_eq!(c.cancel_in_progress, Some(Field::Value(true)));
    let s = steps(job);
    assert_eq!(s.runs_on.labels.len(), 2);
    assert_eq!(s.timeout_minutes, Some(Field::Value(30.0)));
    assert!(
        matches!(&s.continue_on_error, Some(Field::Expr(t)) if t.text == "${{ matrix.experimental }}")
    );
    assert_eq!(s.environment.as_ref().unwrap().name.text, "production");
    let container = s.container.as_ref().unwrap();
    assert_eq!(container.image.text, "node:18");
    assert_eq!(container.ports[0].text, "80");
    assert_eq!(container.options.as_ref().unwrap().text, "--cpus 1");
    let creds = container.credentials.as_ref().unwrap();
    assert_eq!(
        creds.password.as_ref().unwrap().text,
        "${{ secrets.github_token }}"
    );
    assert_eq!(s.services[0].id, "redis");
    assert_eq!(
        s.services[0].container.options.as_ref().unwrap().text,
        "--health-cmd \"redis-cli ping\" --health-interval 10s"
    );
    let step = &s.steps[0];
    assert_eq!(step.label(), "Connect");
    assert_eq!(step.timeout_minutes, Some(Field::Value(5.0)));
    match &step.action {
        StepAction::Run {
            run,
            shell,
            working_directory,
        } => {
            assert_eq!(run.text, "node client.js");
            assert_eq!(shell.as_ref().unwrap().text, "python");
            assert_eq!(working_directory.as_ref().unwrap().text, "app");
        }
        other => panic!("{other:?}"),
    }
}

/// `on` is a plain key (YAML 1.1 would read it as `true`), `yes` is a string, anchors and
/// aliases work: GitHub's reading since 2025 ("Reusing workflow configurations: YAML
/// anchors and aliases").
#[test]
fn yaml_as_github_reads_it() {
    let w = ok("\
on:
  push:
    paths: &paths ['src/**', '!src/docs/**']
  pull_request:
    paths: *paths
jobs:
  a:
    runs-on: ubuntu-latest
    env: &env
      ANSWER: yes
      OCTAL: 010
      HEX: 0x1F
      QUOTED: '3.10'
    steps: [{run: echo}]
  b:
    runs-on: ubuntu-latest
    env: *env
    steps: [{run: echo}]
");
    let pr = w.trigger("pull_request").unwrap();
    assert_eq!(pr.paths.as_ref().unwrap().len(), 2);
    let env: Vec<(&str, &str)> = steps(&w.jobs[1])
        .env
        .iter()
        .map(|(k, v)| (k.as_str(), v.text.as_str()))
        .collect();
    assert_eq!(
        env,
        [
            ("ANSWER", "yes"),
            ("OCTAL", "10"),
            ("HEX", "31"),
            ("QUOTED", "3.10")
        ]
    );
}

#[test]
fn a_matrix_is_expanded_with_numbers_as_github_reads_them() {
    // "Using a matrix for your jobs: Example: Using a single-dimension matrix", with 3.10.
    let w = ok("\
on: push
jobs:
  test:
    strategy:
      fail-fast: false
      max-parallel: 2
      matrix:
        python: [3.8, 3.10, '3.11']
        os: [ubuntu-latest]
    runs-on: ${{ matrix.os }}
    steps: [{run: echo}]
");
    let strategy = w.jobs[0].strategy.as_ref().unwrap();
    assert_eq!(strategy.fail_fast, Field::Value(false));
    assert_eq!(strategy.max_parallel, Some(Field::Value(2.0)));
    let Some(Matrix::Literal(value)) = &strategy.matrix else {
        panic!("{strategy:?}")
    };
    let combos = matrix::expand(value).unwrap();
    let names: Vec<String> = combos
        .iter()
        .map(|c| matrix::check_run_name("test", None, c, &Contexts::new()).unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "test (3.8, ubuntu-latest)",
            "test (3.1, ubuntu-latest)",
            "test (3.11, ubuntu-latest)"
        ]
    );
    let Value::Object(first) = &combos[1].matrix else {
        panic!()
    };
    assert_eq!(first.get("python"), Some(&Value::Number(3.1)));
}

#[test]
fn a_matrix_from_an_expression_is_deferred() {
    // "Example: Using contexts to create matrices" (fromJSON of a need's output).
    let w = ok("\
on: push
jobs:
  setup:
    runs-on: ubuntu-latest
    outputs:
      matrix: ${{ steps.set.outputs.matrix }}
    steps: [{id: set, run: echo}]
  test:
    needs: setup
    strategy:
      matrix: ${{ fromJSON(needs.setup.outputs.matrix) }}
    runs-on: ubuntu-latest
    steps: [{run: echo}]
");
    let Some(Matrix::Deferred { value, span }) = &w.jobs[1].strategy.as_ref().unwrap().matrix
    else {
        panic!()
    };
    assert_eq!(*span, Span::at(11, 15));
    let mut contexts = Contexts::new();
    let outputs = Value::object([("matrix", Value::String("{\"v\": [1, 2]}".into()))]);
    contexts.insert(
        "needs",
        Value::object([("setup", Value::object([("outputs", outputs)]))]),
    );
    let evaluated = matrix::evaluate(value, &contexts, &()).unwrap();
    let names: Vec<Vec<String>> = matrix::expand(&evaluated)
        .unwrap()
        .into_iter()
        .map(|c| c.name_values)
        .collect();
    assert_eq!(names, [vec!["1".to_string()], vec!["2".to_string()]]);
}

#[test]
fn reusable_jobs_are_kept_as_such() {
    let w = ok("\
on: push
jobs:
  call:
    uses: octo-org/example-repo/.github/workflows/reusable.yml@main
    with:
      config-path: .github/labeler.yml
    secrets: inherit
");
    match &w.jobs[0].kind {
        JobKind::Reusable(r) => {
            assert_eq!(
                r.uses,
                "octo-org/example-repo/.github/workflows/reusable.yml@main"
            );
            assert_eq!(r.with[0].1.text, ".github/labeler.yml");
            assert!(r.secrets_inherit);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn dispatch_inputs_and_schedules() {
    // "Events that trigger workflows: workflow_dispatch" and "schedule".
    let w = ok("\
on:
  schedule:
    - cron: '30 5 * * 1,3'
    - cron: '30 5 * * 2,4'
  workflow_dispatch:
    inputs:
      logLevel:
        description: 'Log level'
        required: true
        default: 'warning'
        type: choice
        options: [info, warning, debug]
      print_tags:
        type: boolean
        default: true
      environment:
        type: environment
jobs:
  a: {runs-on: ubuntu-latest, steps: [{run: echo}]}
");
    assert_eq!(
        w.trigger("schedule").unwrap().crons,
        ["30 5 * * 1,3", "30 5 * * 2,4"]
    );
    let inputs = &w.trigger("workflow_dispatch").unwrap().inputs;
    assert_eq!(
        inputs[0],
        Input {
            name: "logLevel".into(),
            description: Some("Log level".into()),
            kind: InputType::Choice,
            required: true,
            default: Some(Value::String("warning".into())),
            options: vec!["info".into(), "warning".into(), "debug".into()],
        }
    );
    assert_eq!(
        (inputs[1].kind, inputs[1].default.clone()),
        (InputType::Boolean, Some(Value::Bool(true)))
    );
    assert_eq!(inputs[2].kind, InputType::Environment);
}

#[test]
fn triggers_decide_with_their_reason() {
    // "Workflow syntax: Example: Including branches and tags" / "Including paths".
    let w = ok("\
on:
  push:
    branches: [main, 'mona/octocat', 'releases/**']
    tags: ['v2', 'v1.*']
  pull_request:
    types: [opened, labeled]
    paths: ['**.js', '!docs/**']
jobs:
  a: {runs-on: ubuntu-latest, steps: [{run: echo}]}
");
    let push = |r: GitRef| Event {
        name: "push",
        git_ref: Some(r),
        changed_files: None,
        activity: None,
    };
    let d = decide(&w.on, &push(GitRef::Branch("main".into())));
    assert_eq!(
        (d.runs, d.reason.as_str()),
        (
            true,
            "push to main matches branches: [main, mona/octocat, 'releases/**']"
        )
    );
    let d = decide(&w.on, &push(GitRef::Branch("releases/10/a".into())));
    assert!(d.runs, "{d:?}");
    let d = decide(&w.on, &push(GitRef::Branch("dev".into())));
    assert_eq!(
        d.reason,
        "push to dev does not match branches: [main, mona/octocat, 'releases/**']"
    );
    assert!(!d.runs);
    let d = decide(&w.on, &push(GitRef::Tag("v1.9".into())));
    assert_eq!(
        (d.runs, d.reason.as_str()),
        (true, "push of tag v1.9 matches tags: [v2, 'v1.*']")
    );

    let files = ["docs/a.js".to_string(), "README.md".to_string()];
    let pr = |activity, files| Event {
        name: "pull_request",
        git_ref: Some(GitRef::Branch("main".into())),
        changed_files: files,
        activity: Some(activity),
    };
    let d = decide(&w.on, &pr("opened", Some(&files[..])));
    assert_eq!(
        d.reason,
        "pull_request to main: no changed file matches paths: ['**.js', '!docs/**']"
    );
    let more = ["docs/a.js".to_string(), "src/app.js".to_string()];
    let d = decide(&w.on, &pr("labeled", Some(&more[..])));
    assert_eq!(
        (d.runs, d.reason.as_str()),
        (true, "pull_request to main `labeled` is in types: [opened, labeled] and src/app.js matches paths: ['**.js', '!docs/**']")
    );
    let d = decide(&w.on, &pr("closed", None));
    assert_eq!(
        d.reason,
        "pull_request `closed` is not in types: [opened, labeled]"
    );
    let d = decide(&w.on, &pr("opened", None));
    assert!(
        d.runs && d.reason.contains("changed files are unknown"),
        "{d:?}"
    );
    let d = decide(
        &w.on,
        &Event {
            name: "workflow_dispatch",
            git_ref: None,
            changed_files: None,
            activity: None,
        },
    );
    assert_eq!(
        d.reason,
        "workflow_dispatch is not in on: [push, pull_request]"
    );
}

#[test]
fn branch_only_filters_skip_tags_and_ignores_work() {
    let w = ok("\
on:
  push:
    branches-ignore: ['mona/octocat', 'releases/**-alpha']
    paths-ignore: ['docs/**']
  pull_request:
jobs:
  a: {runs-on: ubuntu-latest, steps: [{run: echo}]}
");
    let ev = |r: GitRef, files: Option<&'static [String]>| Event {
        name: "push",
        git_ref: Some(r),
        changed_files: files,
        activity: None,
    };
    let d = decide(&w.on, &ev(GitRef::Tag("v1".into()), None));
    assert_eq!(d.reason, "push of tag v1 does not run: the workflow filters branches only, so tags do not trigger it");
    let d = decide(
        &w.on,
        &ev(GitRef::Branch("releases/beta/3-alpha".into()), None),
    );
    assert_eq!(d.reason, "push to releases/beta/3-alpha matches branches-ignore: [mona/octocat, 'releases/**-alpha']");
    let docs: &'static [String] = Box::leak(vec!["docs/a.md".to_string()].into_boxed_slice());
    let d = decide(&w.on, &ev(GitRef::Branch("main".into()), Some(docs)));
    assert_eq!(
        (d.runs, d.reason.as_str()),
        (
            false,
            "push to main: every changed file matches paths-ignore: ['docs/**']"
        )
    );
    let d = decide(&w.on, &ev(GitRef::Branch("main".into()), Some(&[])));
    assert_eq!(
        d.reason,
        "push to main: no files changed, and the workflow has path filters"
    );
    // A pull_request without `types:` runs for opened, synchronize, reopened only.
    let pr = |a| Event {
        name: "pull_request",
        git_ref: None,
        changed_files: None,
        activity: Some(a),
    };
    assert!(decide(&w.on, &pr("synchronize")).runs);
    assert!(!decide(&w.on, &pr("closed")).runs);
}

#[test]
fn bad_keys_name_the_place_and_the_job() {
    assert_eq!(
        errors("on: push\njobs:\n  build:\n    runs_on: ubuntu-latest\n    steps: [{run: echo}]\n"),
        [
            "4:5 build: unknown key `runs_on` in a job",
            "3:3 build: a job needs `runs-on`",
        ]
    );
    assert_eq!(
        errors("on: push\njobs:\n  build:\n    runs-on: x\n    steps:\n      - run: echo\n        with: {a: 1}\n"),
        ["7:9 build: step 1: unknown key `with` in a step"]
    );
    assert_eq!(
        errors("on: pushh\njobs:\n  a: {runs-on: x}\n"),
        ["1:5 `pushh` is not an event that triggers workflows"]
    );
    assert_eq!(
        errors("on:\n  push:\n    branch: [main]\njobs:\n  a: {runs-on: x}\n"),
        ["3:5 unknown key `branch` in `on: push`"]
    );
    assert_eq!(
        errors("on:\n  pull_request:\n    types: [open]\njobs:\n  a: {runs-on: x}\n"),
        ["3:13 `open` is not an activity type of `pull_request`"]
    );
}

#[test]
fn yaml_github_refuses() {
    // Duplicate keys, even differing in case; merge keys; a second document; `!main`.
    assert_eq!(
        errors("on: push\njobs:\n  a:\n    runs-on: x\n    env: {A: 1, a: 2}\n"),
        ["5:17 a: `a` is already defined"]
    );
    assert_eq!(
        errors("on: push\njobs:\n  a: &a\n    runs-on: x\n  b:\n    <<: *a\n"),
        [
            "6:5 b: unknown key `<<` in a job",
            "5:3 b: a job needs `runs-on`"
        ]
    );
    assert_eq!(
        errors("on: push\njobs:\n  a: {runs-on: x}\n---\non: push\n"),
        ["5:1 a workflow file holds one YAML document; this is a second one"]
    );
    assert_eq!(
        errors("on:\n  push:\n    branches: [!main]\njobs:\n  a: {runs-on: x}\n"),
        ["3:16 unexpected tag '!main'"]
    );
}

#[test]
fn filters_github_refuses() {
    assert_eq!(
        errors("on:\n  push:\n    paths: [a]\n    paths-ignore: [b]\njobs:\n  a: {runs-on: x}\n"),
        ["4:5 you may only define one of `paths` and `paths-ignore` for a single event"]
    );
    assert_eq!(
        errors("on:\n  push:\n    tags: ['v[1-]']\njobs:\n  a: {runs-on: x}\n"),
        ["3:12 `on: push: tags`: the pattern `v[1-]` has a range without its end in `[...]`"]
    );
    let parsed = parse(
        "on:\n  push:\n    branches: ['!main']\njobs:\n  a: {runs-on: x}\n",
        0,
    )
    .unwrap();
    assert_eq!(parsed.warnings[0].span, Some(Span::at(3, 16)));
}

#[test]
fn expression_errors_point_into_the_line() {
    // Plain scalar: the column of the bad name itself.
    assert_eq!(
        errors("on: push\njobs:\n  a:\n    runs-on: ${{ steps.x }}\n"),
        ["4:18 a: `runs-on`: context 'steps' is not available here (available: github, inputs, vars, needs, strategy, matrix)"]
    );
    // Quoted: counted from after the quote.
    assert_eq!(
        errors("on: push\njobs:\n  a:\n    runs-on: x\n    steps:\n      - run: \"echo ${{ secret.x }}\"\n"),
        ["6:24 a: step 1: `run`: unrecognized named-value: 'secret' (contexts are github, env, vars, secrets, matrix, strategy, needs, steps, job, jobs, runner, inputs)"]
    );
    // Block scalar: the content line and its indentation.
    assert_eq!(
        errors("on: push\njobs:\n  a:\n    runs-on: x\n    steps:\n      - run: |\n          echo hi\n          echo ${{ github.sha ) }}\n"),
        ["8:31 a: step 1: `run`: unexpected symbol: ')'"]
    );
    // An `if:` without `${{ }}` is an expression; `secrets` is not available in a step's.
    assert_eq!(
        errors("on: push\njobs:\n  a:\n    runs-on: x\n    steps:\n      - if: secrets.token != ''\n        run: echo\n"),
        ["6:13 a: step 1: `if`: context 'secrets' is not available here (available: github, inputs, vars, needs, strategy, matrix, steps, job, runner, env)"]
    );
    // Fields without contexts refuse expressions.
    assert_eq!(
        errors("name: ${{ github.ref }}\non: push\njobs:\n  a: {runs-on: x}\n"),
        ["1:7 `name` does not take expressions (`${{ }}`)"]
    );
}

#[test]
fn needs_must_form_a_graph_with_a_start() {
    assert_eq!(
        errors("on: push\njobs:\n  a: {runs-on: x, needs: b}\n  b: {runs-on: x, needs: a}\n"),
        ["2:1 the workflow must contain at least one job with no dependencies"]
    );
    assert_eq!(
        errors("on: push\njobs:\n  a: {runs-on: x}\n  b: {runs-on: x, needs: [a, c]}\n  c: {runs-on: x, needs: [b]}\n  d: {runs-on: x, needs: z}\n"),
        [
            "4:3 b: job `b` depends on job `c`, which creates a cycle in the dependency graph",
            "5:3 c: job `c` depends on job `b`, which creates a cycle in the dependency graph",
            "6:3 d: job `d` depends on unknown job `z`",
        ]
    );
    assert_eq!(
        errors("on: push\njobs:\n  1st: {runs-on: x}\n"),
        ["3:3 the job id `1st` is invalid: ids start with a letter or `_` and hold only letters, digits, `-` and `_` (fewer than 100)"]
    );
}

#[test]
fn matrix_errors_point_at_their_key() {
    assert_eq!(
        errors(
            "on: push\njobs:\n  a:\n    runs-on: x\n    strategy:\n      matrix:\n        os: []\n"
        ),
        ["7:9 a: `strategy: matrix`: matrix vector `os` does not contain any values"]
    );
    assert_eq!(
        errors("on: push\njobs:\n  a:\n    runs-on: x\n    strategy:\n      matrix:\n        os: [a]\n        exclude: [{arch: x}]\n"),
        ["8:9 a: `strategy: matrix`: matrix exclude key `arch` does not match any key within the matrix"]
    );
    let big = "on: push\njobs:\n  a:\n    runs-on: x\n    strategy:\n      matrix:\n        a: [1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16]\n        b: [1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17]\n";
    assert_eq!(
        errors(big),
        ["6:7 a: `strategy: matrix`: the matrix makes more than 256 jobs"]
    );
    assert_eq!(
        errors("on: push\njobs:\n  a:\n    runs-on: x\n    continue-on-error: yes\n"),
        ["5:24 a: `continue-on-error` should be a boolean (true or false), found a string"]
    );
}
