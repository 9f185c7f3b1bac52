use super::*;
use crate::github::trigger::GitRef;
use crate::github::workflow;

fn facts() -> Run {
    crate::github::steps::tests::facts()
}

fn lowered_with(src: &str, platforms: &Platforms) -> Result<Lowered, Vec<Diagnostic>> {
    let parsed = workflow::parse(src, 0).unwrap_or_else(|d| panic!("{d:#?}"));
    lower(
        &parsed.workflow,
        ".github/workflows/ci.yml",
        &facts(),
        platforms,
    )
}

fn lowered(src: &str) -> Lowered {
    lowered_with(src, &Platforms::new()).unwrap_or_else(|d| panic!("{d:#?}"))
}

fn errors(src: &str) -> Vec<String> {
    match lowered_with(src, &Platforms::new()) {
        Ok(_) => panic!("the workflow should be refused"),
        Err(d) => d
            .iter()
            .map(|d| {
                let s = d.span.unwrap_or_default();
                format!(
                    "{}:{} {}: {}{}",
                    s.line,
                    s.col,
                    d.job.as_deref().unwrap_or("-"),
                    d.message,
                    d.help
                        .as_ref()
                        .map(|h| format!(" ({h})"))
                        .unwrap_or_default()
                )
            })
            .collect(),
    }
}

fn image(job: &pipeline::Job) -> &str {
    match &job.image {
        Some(Image::Name { name, .. }) => name,
        other => panic!("{other:?}"),
    }
}

const MATRIX: &str = "\
name: CI
on: push
jobs:
  test:
    runs-on: ${{ matrix.os }}
    continue-on-error: ${{ matrix.python == '3.13' }}
    timeout-minutes: 10
    strategy:
      matrix:
        python: [3.10, '3.11', '3.13']
        os: [ubuntu-latest, ubuntu-22.04]
        exclude:
          - python: '3.13'
            os: ubuntu-22.04
    steps:
      - run: echo ${{ matrix.python }}
  named:
    name: Lint ${{ matrix.tool }} on ${{ github.ref_name }}
    runs-on: ubuntu-latest
    container: python:3.12-slim
    strategy:
      matrix:
        tool: [ruff, mypy]
    steps:
      - run: x
  report:
    needs: [test, named]
    runs-on: ubuntu-24.04
    services:
      db:
        image: postgres:16
        env:
          POSTGRES_PASSWORD: ${{ github.actor }}
        ports: ['5432:5432']
        options: --health-cmd pg_isready
    steps:
      - run: x
";

#[test]
fn matrix_jobs_are_named_as_github_names_check_runs() {
    let l = lowered(MATRIX);
    let names: Vec<&str> = l.pipeline.jobs.iter().map(|j| j.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "test (3.1, ubuntu-latest)",
            "test (3.1, ubuntu-22.04)",
            "test (3.11, ubuntu-latest)",
            "test (3.11, ubuntu-22.04)",
            "test (3.13, ubuntu-latest)",
            "Lint ruff on main",
            "Lint mypy on main",
            "report"
        ]
    );
    let jobs = &l.pipeline.jobs;
    assert_eq!(image(&jobs[0]), "catthehacker/ubuntu:act-latest");
    assert_eq!(image(&jobs[1]), "catthehacker/ubuntu:act-22.04");
    assert_eq!(image(&jobs[5]), "python:3.12-slim");
    assert_eq!(image(&jobs[7]), "catthehacker/ubuntu:act-24.04");
    let ids: Vec<&str> = jobs.iter().map(|j| j.base_name.as_str()).collect();
    assert_eq!(
        ids,
        ["test", "test", "test", "test", "test", "named", "named", "report"]
    );
    assert_eq!(jobs[0].allow_failure, AllowFailure::No);
    assert_eq!(jobs[4].allow_failure, AllowFailure::Yes);
    assert_eq!(jobs[0].timeout, Some(Duration::from_secs(600)));
    assert_eq!(jobs[0].stage, "CI");
    assert_eq!(l.pipeline.stages, ["CI"]);
    assert_eq!(jobs[0].when, When::Always);

    // A need on a matrix waits for all of its jobs.
    let needs: Vec<&str> = jobs[7]
        .needs
        .iter()
        .flatten()
        .map(|n| n.job.as_str())
        .collect();
    assert_eq!(
        needs,
        [
            "test (3.1, ubuntu-latest)",
            "test (3.1, ubuntu-22.04)",
            "test (3.11, ubuntu-latest)",
            "test (3.11, ubuntu-22.04)",
            "test (3.13, ubuntu-latest)",
            "Lint ruff on main",
            "Lint mypy on main"
        ]
    );
    assert_eq!(jobs[0].needs.as_deref().map(<[_]>::len), Some(0));

    // What plan shows.
    assert_eq!(l.jobs[7].needs, ["test", "named"]);
    assert_eq!(l.jobs[7].matrix, None);
    assert_eq!(
        l.jobs[0].matrix.as_ref().map(Value::to_serde_json),
        Some(serde_json::json!({"python": 3.1, "os": "ubuntu-latest"}))
    );

    // The service, by its key.
    assert_eq!(
        jobs[7].services,
        [pipeline::Service {
            image: "postgres:16".into(),
            aliases: vec!["db".into()],
            entrypoint: None,
            command: None,
            variables: vec![pipeline::Variable {
                name: "POSTGRES_PASSWORD".into(),
                value: "octocat".into(),
                expand: false
            }],
            ports: vec![pipeline::Port {
                container: 5432,
                host: Some(5432)
            }],
            options: pipeline::ContainerOptions {
                health: Some(pipeline::HealthCheck {
                    command: Some("pg_isready".into()),
                    disabled: false,
                    interval: None,
                    timeout: None,
                    start_period: None,
                    retries: None,
                }),
                ..Default::default()
            },
            credentials: None,
        }]
    );
    // A job on a runner reaches its services at localhost.
    assert_eq!(jobs[7].service_network, pipeline::ServiceNetwork::Localhost);
    assert!(l.warnings.is_empty(), "{:?}", l.warnings);
}

const CONTAINERS: &str = "\
on: push
jobs:
  app:
    runs-on: ubuntu-latest
    container:
      image: node:20
      options: --user 1000 --ulimit nofile=1024 -e FROM_OPTIONS=1
      volumes: [cache:/cache, './fixtures:/fixtures:ro']
      credentials:
        username: me
        password: ${{ secrets.REGISTRY_TOKEN }}
    services:
      web:
        image: nginx
        ports: ['8080:80', 6379]
        options: >-
          --health-cmd \"curl -f http://localhost\"
          --health-interval 2s --network-alias www
    steps:
      - run: x
";

#[test]
fn container_and_service_options_volumes_ports_and_credentials_are_lowered() {
    let w = workflow::parse(CONTAINERS, 0).expect("parsed").workflow;
    let mut run = facts();
    run.secrets = vec![("REGISTRY_TOKEN".into(), "s3cret".into())];
    let l = lower(&w, "ci.yml", &run, &Platforms::new()).expect("lowered");
    let job = &l.pipeline.jobs[0];
    // A `container:` job reaches its services by their keys (and `--network-alias`).
    assert_eq!(job.service_network, pipeline::ServiceNetwork::Aliases);
    assert_eq!(job.container.user.as_deref(), Some("1000"));
    assert_eq!(
        job.container.mounts,
        [
            pipeline::Mount::Volume {
                name: "cache".into(),
                target: "/cache".into(),
                read_only: false
            },
            pipeline::Mount::Bind {
                source: "fixtures".into(),
                target: "/fixtures".into(),
                read_only: true
            }
        ]
    );
    assert_eq!(
        job.credentials,
        Some(pipeline::Credentials {
            username: "me".into(),
            password: "s3cret".into()
        })
    );
    let web = &job.services[0];
    assert_eq!(web.aliases, ["web", "www"]);
    assert_eq!(
        web.ports,
        [
            pipeline::Port {
                container: 80,
                host: Some(8080)
            },
            pipeline::Port {
                container: 6379,
                host: None
            }
        ]
    );
    let health = web.options.health.as_ref().expect("a health check");
    assert_eq!(health.command.as_deref(), Some("curl -f http://localhost"));
    assert_eq!(health.interval, Some(Duration::from_secs(2)));
    // The flag berth leaves out is a warning naming it, at `options:`.
    let warnings: Vec<&str> = l.warnings.iter().map(|d| d.message.as_str()).collect();
    assert_eq!(
        warnings,
        ["`container: options`: `--ulimit nofile=1024` is not supported yet and is ignored"]
    );
    // `-e` of `options:` is in every step's environment; `job.services` has the ports.
    let mut steps = job.steps.as_ref().expect("steps").start(Default::default());
    let c = match steps.next() {
        Ok(Some(c)) => c,
        other => panic!("{other:?}"),
    };
    assert!(
        c.env
            .contains(&("FROM_OPTIONS".to_string(), "1".to_string())),
        "{:?}",
        c.env
    );
}

#[test]
fn a_bind_mount_outside_the_project_is_an_error_at_its_line() {
    let text = CONTAINERS.replace("'./fixtures:/fixtures:ro'", "'/etc:/host-etc'");
    let errors = errors(&text);
    assert_eq!(errors.len(), 1, "{errors:?}");
    let line = text
        .lines()
        .position(|l| l.contains("/etc:/host-etc"))
        .expect("the line")
        + 1;
    assert!(
        errors[0].starts_with(&format!("{line}:")),
        "{line}: {}",
        errors[0]
    );
    assert!(errors[0].contains(" app: "), "{}", errors[0]);
    assert!(errors[0].contains("`/etc`"), "{}", errors[0]);
    assert!(errors[0].contains("outside the project"), "{}", errors[0]);
}

#[test]
fn job_services_ports_in_the_expression_context() {
    let text = CONTAINERS.replace(
        "- run: x",
        "- run: echo ${{ job.services.web.ports['80'] }}-${{ job.services.web.ports['6379'] }}",
    );
    let l = lowered(&text);
    let mut steps = l.pipeline.jobs[0]
        .steps
        .as_ref()
        .expect("steps")
        .start(Default::default());
    let c = match steps.next() {
        Ok(Some(c)) => c,
        other => panic!("{other:?}"),
    };
    let script = c
        .files
        .iter()
        .find(|(p, _)| p.ends_with("script.sh"))
        .map(|(_, s)| s.as_str());
    assert_eq!(script, Some("echo 80-6379"));
}

#[test]
fn the_matrix_and_strategy_reach_the_steps() {
    let l = lowered(MATRIX);
    let job = &l.pipeline.jobs[2];
    let mut run = job.steps.as_ref().expect("steps").start(Default::default());
    let c = match run.next() {
        Ok(Some(c)) => c,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        c.files
            .iter()
            .find(|(p, _)| p.ends_with("script.sh"))
            .map(|(_, s)| s.as_str()),
        Some("echo 3.11")
    );
}

#[test]
fn platforms_can_be_changed_and_an_unknown_label_is_an_error_with_help() {
    let mut p = Platforms::new();
    p.set("UBUNTU-LATEST", "berth-test/python:3.11");
    p.set("self-hosted", "debian:12");
    let l = lowered_with(
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps: [{run: x}]\n  b:\n    runs-on: [self-hosted, linux]\n    steps: [{run: x}]\n",
        &p,
    )
    .unwrap_or_else(|d| panic!("{d:#?}"));
    assert_eq!(image(&l.pipeline.jobs[0]), "berth-test/python:3.11");
    assert_eq!(image(&l.pipeline.jobs[1]), "debian:12");
    assert_eq!(
        Platforms::parse_assignment("ubuntu-latest=python:3.12"),
        Ok(("ubuntu-latest".into(), "python:3.12".into()))
    );
    assert!(Platforms::parse_assignment("nolabel").is_err());
    assert_eq!(
        errors("on: push\njobs:\n  a:\n    runs-on: macos-latest\n    steps: [{run: x}]\n"),
        ["4:14 a: `runs-on: macos-latest` names no image berth knows (map the label to an image with `--platform macos-latest=IMAGE`, or give the job a `container:`)"]
    );
}

/// Lowers `top` (`.github/workflows/ci.yml`) with `files` in the repository, as the load
/// does: the called workflows read first. `Err`: each mistake as `file:line:col job: message`.
fn calling(files: &[(&str, &str)], top: &str) -> Result<Lowered, Vec<String>> {
    calling_with(files, top, |_| {})
}

/// [`calling`], `prepare` changing the repository first.
fn calling_with(
    files: &[(&str, &str)],
    top: &str,
    prepare: impl FnOnce(&std::path::Path),
) -> Result<Lowered, Vec<String>> {
    let dir = tempfile::tempdir().unwrap();
    for (path, text) in files {
        let path = dir.path().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    prepare(dir.path());
    let mut sources = crate::source::diag::SourceMap::default();
    let file = sources.add(".github/workflows/ci.yml".into(), top.into());
    let parsed = workflow::parse(top, file).unwrap_or_else(|d| panic!("{d:#?}"));
    let read = vec![(
        ".github/workflows/ci.yml".to_string(),
        parsed.workflow.clone(),
    )];
    let cache = crate::github::actions::cache::Cache::new(
        dir.path().join("cache"),
        "file:///nowhere".into(),
    );
    let shown = |d: Vec<Diagnostic>, sources: &crate::source::diag::SourceMap| -> Vec<String> {
        d.iter()
            .map(|d| {
                let s = d.span.unwrap_or_default();
                let name = sources.get(s.file).map_or("?", |f| f.name.as_str());
                format!(
                    "{name}:{}:{} {}: {}",
                    s.line,
                    s.col,
                    d.job.as_deref().unwrap_or("-"),
                    d.message
                )
            })
            .collect()
    };
    let called = crate::github::actions::reusable::load(&read, dir.path(), &cache, &mut sources)
        .map_err(|d| shown(d, &sources))?;
    lower_calling(
        &parsed.workflow,
        ".github/workflows/ci.yml",
        &facts(),
        &Platforms::new(),
        &called,
    )
    .map_err(|d| shown(d, &sources))
}

const CALLED: &str = "\
name: Build
on:
  workflow_call:
    inputs:
      who: {type: string, required: true}
      loud: {type: boolean, default: false}
      times: {type: number, default: 2}
    secrets:
      token: {required: true}
    outputs:
      said:
        value: ${{ jobs.second.outputs.said }}
jobs:
  first:
    name: First
    if: inputs.loud
    runs-on: ubuntu-latest
    steps: [{run: echo}]
  second:
    needs: first
    if: always()
    runs-on: ubuntu-latest
    outputs:
      said: ${{ steps.s.outputs.said }}
    steps: [{id: s, run: echo}]
";

const CALLER: &str = "\
on: push
jobs:
  build:
    runs-on: ubuntu-latest
    steps: [{run: echo}]
  call:
    needs: build
    if: needs.build.outputs.go == 'yes'
    uses: ./.github/workflows/build.yml
    with:
      who: me
      loud: ${{ needs.build.outputs.loud == 'yes' }}
    secrets:
      token: ${{ secrets.TOKEN }}
  after:
    needs: call
    if: needs.call.outputs.said == 'hi'
    runs-on: ubuntu-latest
    steps: [{run: echo}]
";

fn need(job: &str, result: &str, outputs: &[(&str, &str)]) -> pipeline::steps::NeedResult {
    pipeline::steps::NeedResult {
        job: job.into(),
        result: result.into(),
        outputs: outputs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

#[test]
fn a_called_workflows_jobs_are_named_needed_and_run_as_github_runs_them() {
    let l = calling(&[(".github/workflows/build.yml", CALLED)], CALLER).unwrap();
    let names: Vec<&str> = l.pipeline.jobs.iter().map(|j| j.name.as_str()).collect();
    assert_eq!(names, ["build", "call / First", "call / second", "after"]);
    let ids: Vec<&str> = l.jobs.iter().map(|j| j.job.as_str()).collect();
    assert_eq!(ids, ["build", "call/first", "call/second", "after"]);
    // `berth plan`: the caller's needs for the first job, the inner ones after it.
    let planned: Vec<Vec<String>> = l.jobs.iter().map(|j| j.needs.clone()).collect();
    assert_eq!(
        planned,
        [
            vec![],
            vec!["build".to_string()],
            vec!["call/first".into()],
            vec!["call".into()]
        ]
    );
    // The engine: every called job waits for what the caller needs; its dependents for all.
    let waits = |i: usize| -> Vec<String> {
        let needs = l.pipeline.jobs[i].needs.as_ref().unwrap();
        needs.iter().map(|n| n.job.clone()).collect()
    };
    assert_eq!(waits(2), ["call / First", "build"]);
    assert_eq!(waits(3), ["call / First", "call / second", "build"]);
    let steps = |i: usize| l.pipeline.jobs[i].steps.clone().unwrap();
    // The caller's `if:` reads its needs; `with:` gives a typed boolean from an expression.
    let build = |go: &str, loud: &str| need("build", "success", &[("go", go), ("loud", loud)]);
    assert!(steps(1).should_run(&[build("yes", "yes")], false).unwrap());
    assert!(!steps(1).should_run(&[build("yes", "no")], false).unwrap());
    // The caller does not run: nor does any of its jobs, `always()` or not.
    let first = need("call/first", "skipped", &[]);
    assert!(!steps(2)
        .should_run(&[first.clone(), build("no", "yes")], false)
        .unwrap());
    assert!(steps(2)
        .skip_reason(&[first.clone(), build("no", "yes")])
        .contains("`call` that calls .github/workflows/build.yml does not run"));
    assert!(steps(2)
        .should_run(&[first.clone(), build("yes", "no")], false)
        .unwrap());
    // The dependents see one result for the call, with the workflow's outputs.
    let second = need("call/second", "success", &[("said", "hi")]);
    let ended = [
        need("call/first", "success", &[]),
        second.clone(),
        build("yes", "yes"),
    ];
    assert!(steps(3).should_run(&ended, false).unwrap());
    let other = need("call/second", "success", &[("said", "bye")]);
    let ended = [
        need("call/first", "success", &[]),
        other,
        build("yes", "yes"),
    ];
    assert!(!steps(3).should_run(&ended, false).unwrap());
    // A failed called job fails the call: a dependent without `if:` is skipped.
    let plain = CALLER.replace("    if: needs.call.outputs.said == 'hi'\n", "");
    let l = calling(&[(".github/workflows/build.yml", CALLED)], &plain).unwrap();
    let after = l.pipeline.jobs[3].steps.clone().unwrap();
    let failed = [
        need("call/first", "failure", &[]),
        second,
        build("yes", "yes"),
    ];
    assert!(!after.should_run(&failed, false).unwrap());
    assert!(
        after.skip_reason(&failed).contains("`call` failed"),
        "{}",
        after.skip_reason(&failed)
    );
}

#[test]
fn a_matrix_of_calls_and_nested_calls_are_named_by_their_callers() {
    let inner = "on:\n  workflow_call:\n    inputs:\n      v: {type: string}\njobs:\n  leaf:\n    runs-on: ubuntu-latest\n    steps: [{run: echo}]\n";
    let middle = "name: Middle\non: workflow_call\njobs:\n  deep:\n    uses: ./.github/workflows/inner.yml\n    with: {v: x}\n";
    let top = "on: push\njobs:\n  call:\n    strategy:\n      matrix:\n        v: [1, 2]\n    uses: ./.github/workflows/inner.yml\n    with:\n      v: ${{ matrix.v }}\n  nest:\n    name: Nest\n    uses: ./.github/workflows/middle.yml\n";
    let l = calling(
        &[
            (".github/workflows/inner.yml", inner),
            (".github/workflows/middle.yml", middle),
        ],
        top,
    )
    .unwrap();
    let names: Vec<&str> = l.pipeline.jobs.iter().map(|j| j.name.as_str()).collect();
    assert_eq!(
        names,
        ["call (1) / leaf", "call (2) / leaf", "Nest / deep / leaf"]
    );
    let ids: Vec<&str> = l.jobs.iter().map(|j| j.job.as_str()).collect();
    assert_eq!(ids, ["call/leaf", "call/leaf", "nest/deep/leaf"]);
}

#[test]
fn a_matrix_from_a_needs_output_in_a_called_workflow_expands_under_its_caller() {
    let called = "on: workflow_call\njobs:\n  setup:\n    runs-on: ubuntu-latest\n    steps: [{run: x}]\n  t:\n    needs: setup\n    name: T ${{ matrix.v }}\n    runs-on: ubuntu-latest\n    strategy:\n      matrix: ${{ fromJSON(needs.setup.outputs.m) }}\n    steps: [{run: x}]\n";
    let l = calling(
        &[(".github/workflows/m.yml", called)],
        "on: push\njobs:\n  call:\n    uses: ./.github/workflows/m.yml\n",
    )
    .unwrap();
    let t = &l.pipeline.jobs[1];
    assert_eq!(
        (t.name.as_str(), l.jobs[1].job.as_str()),
        ("call / t", "call/t")
    );
    // The engine gives the need under its id in the run; the matrix reads it under its own.
    let needs = [need("call/setup", "success", &[("m", r#"{"v": [1, 2]}"#)])];
    let made = t.expand.as_ref().unwrap().expand(&needs).expect("jobs");
    let names: Vec<&str> = made.iter().map(|j| j.name.as_str()).collect();
    assert_eq!(names, ["call / T 1", "call / T 2"]);
    assert_eq!(made[0].origin.as_ref().unwrap().id, "call/t");
    assert_eq!(made[0].base_name, "call/t");
}

#[test]
fn calls_that_do_not_fit_the_called_workflow_are_errors_at_their_line() {
    let files = [
        (".github/workflows/build.yml", CALLED),
        (
            ".github/workflows/plain.yml",
            "on: push\njobs:\n  a:\n    runs-on: x\n    steps: [{run: x}]\n",
        ),
    ];
    let call = |with: &str| {
        format!("on: push\njobs:\n  call:\n    uses: ./.github/workflows/build.yml\n    secrets: inherit\n    with:\n{with}")
    };
    let one = |top: &str| calling(&files, top).unwrap_err().join("\n");
    assert_eq!(
        one(&call("      who: me\n      colour: red\n")),
        ".github/workflows/ci.yml:8:15 call: `with: colour`: `./.github/workflows/build.yml` has no input `colour` (its inputs: who, loud, times)"
    );
    assert_eq!(
        one(&call("      loud: true\n")),
        ".github/workflows/ci.yml:4:11 call: `./.github/workflows/build.yml` requires the input `who`, which `with:` does not give"
    );
    assert_eq!(
        one(&call("      who: me\n      times: many\n")),
        ".github/workflows/ci.yml:8:14 call: `with: times` is a string `many`, but the input `times` of `./.github/workflows/build.yml` is a number"
    );
    assert_eq!(
        one(&call("      who: me\n      loud: 'true'\n")),
        ".github/workflows/ci.yml:8:13 call: `with: loud` is a string `true`, but the input `loud` of `./.github/workflows/build.yml` is a boolean"
    );
    // A required secret not passed.
    assert_eq!(
        one("on: push\njobs:\n  call:\n    uses: ./.github/workflows/build.yml\n    with: {who: me}\n"),
        ".github/workflows/ci.yml:4:11 call: `./.github/workflows/build.yml` requires the secret `token`: pass it in `secrets:` (or `secrets: inherit`)"
    );
    assert_eq!(
        one("on: push\njobs:\n  call:\n    uses: ./.github/workflows/none.yml\n"),
        ".github/workflows/ci.yml:4:11 call: job `call` calls `./.github/workflows/none.yml`, but the repository has no such file"
    );
    assert_eq!(
        one("on: push\njobs:\n  call:\n    uses: ./.github/workflows/plain.yml\n"),
        ".github/workflows/ci.yml:4:11 call: job `call` calls `./.github/workflows/plain.yml`, which is not a reusable workflow: its `on:` has no `workflow_call`"
    );
    // A link is not followed, as workflows are not found through one.
    let dir = tempfile::tempdir().unwrap();
    let outside = dir.path().join("build.yml");
    std::fs::write(&outside, CALLED).unwrap();
    let linked = calling_with(
        &files,
        "on: push\njobs:\n  call:\n    uses: ./.github/workflows/link.yml\n",
        |root| {
            std::os::unix::fs::symlink(&outside, root.join(".github/workflows/link.yml")).unwrap()
        },
    );
    assert_eq!(
        linked.unwrap_err(),
        [".github/workflows/ci.yml:4:11 call: job `call` calls `./.github/workflows/link.yml`, which is not a regular file"]
    );
    assert_eq!(
        one("on: push\njobs:\n  call:\n    uses: ./ci/x.yml\n"),
        ".github/workflows/ci.yml:4:11 call: `uses: ./ci/x.yml` is not a reusable workflow's reference"
    );
}

#[test]
fn cycles_and_nesting_beyond_githubs_ten_levels_are_refused() {
    let calls = |next: &str| {
        format!("on: workflow_call\njobs:\n  c:\n    uses: ./.github/workflows/{next}.yml\n")
    };
    let leaf =
        "on: workflow_call\njobs:\n  leaf:\n    runs-on: ubuntu-latest\n    steps: [{run: echo}]\n";
    let top = "on: push\njobs:\n  top:\n    uses: ./.github/workflows/w1.yml\n";
    // The top caller and nine levels below it: as deep as GitHub goes.
    let mut files: Vec<(String, String)> = (1..9)
        .map(|i| {
            (
                format!(".github/workflows/w{i}.yml"),
                calls(&format!("w{}", i + 1)),
            )
        })
        .collect();
    files.push((".github/workflows/w9.yml".into(), leaf.into()));
    let as_str = |files: &[(String, String)]| {
        let v: Vec<(&str, &str)> = files
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        calling(&v, top)
    };
    let l = as_str(&files).unwrap();
    assert_eq!(l.jobs[0].job, "top/c/c/c/c/c/c/c/c/leaf");
    // One more level: an error at the call that goes too deep.
    files[8].1 = calls("w10");
    files.push((".github/workflows/w10.yml".into(), leaf.into()));
    let errors = as_str(&files).unwrap_err();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with(".github/workflows/w9.yml:4:11 c: job `c` calls `./.github/workflows/w10.yml` at level 11: workflows nest at most 10 levels deep"),
        "{errors:?}"
    );
    // A workflow that calls itself, through another.
    let errors = as_str(&[
        (".github/workflows/w1.yml".into(), calls("w2")),
        (".github/workflows/w2.yml".into(), calls("w1")),
    ])
    .unwrap_err();
    assert_eq!(
        errors,
        [".github/workflows/w2.yml:4:11 c: job `c` calls `./.github/workflows/w1.yml`, which is already being called: .github/workflows/ci.yml → .github/workflows/w1.yml → .github/workflows/w2.yml → .github/workflows/w1.yml (a workflow cannot call itself)"]
    );
}

#[test]
fn a_matrix_from_a_needs_output_is_one_job_until_the_need_ends() {
    let l = lowered(
        "on: push\njobs:\n  setup:\n    runs-on: ubuntu-latest\n    steps: [{run: x}]\n  t:\n    needs: setup\n    name: T ${{ matrix.v }}\n    runs-on: ${{ matrix.os }}\n    strategy:\n      max-parallel: 1\n      matrix: ${{ fromJSON(needs.setup.outputs.m) }}\n    steps: [{run: x}]\n",
    );
    let t = &l.pipeline.jobs[1];
    assert_eq!(t.name, "t");
    assert!(t.expand.is_some());
    assert_eq!(
        l.jobs[1].matrix,
        Some(Value::from("${{ fromJSON(needs.setup.outputs.m) }}"))
    );
    let needs = [pipeline::steps::NeedResult {
        job: "setup".into(),
        result: "success".into(),
        outputs: vec![(
            "m".into(),
            r#"{"v": [1, 2], "os": ["ubuntu-latest"]}"#.into(),
        )],
    }];
    let made = t.expand.as_ref().unwrap().expand(&needs).expect("jobs");
    let names: Vec<&str> = made.iter().map(|j| j.name.as_str()).collect();
    assert_eq!(names, ["T 1", "T 2"]);
    // Keys made of the matrix are evaluated with it; the jobs know their place as any do.
    assert_eq!(image(&made[0]), "catthehacker/ubuntu:act-latest");
    let origin = made[1].origin.as_ref().expect("origin");
    assert_eq!((origin.id.as_str(), origin.max_parallel), ("t", Some(1)));
    assert_eq!(
        origin.matrix,
        Some(serde_json::json!({"v": 2, "os": "ubuntu-latest"}))
    );
    // An output that is no matrix: the reason the job fails.
    let bad = [pipeline::steps::NeedResult {
        outputs: vec![("m".into(), "[1]".into())],
        ..needs[0].clone()
    }];
    let why = t.expand.as_ref().unwrap().expand(&bad).unwrap_err();
    assert!(why.contains("matrix"), "{why}");
}

#[test]
fn a_literal_fromjson_matrix_is_expanded() {
    let l = lowered(
        "on: push\njobs:\n  t:\n    runs-on: ubuntu-latest\n    strategy:\n      matrix: '${{ fromJSON(''{\"v\": [1, 2]}'') }}'\n    steps: [{run: x}]\n",
    );
    let names: Vec<&str> = l.pipeline.jobs.iter().map(|j| j.name.as_str()).collect();
    assert_eq!(names, ["t (1)", "t (2)"]);
}

#[test]
fn repeated_check_run_names_get_their_job_id() {
    let l = lowered(
        "on: push\njobs:\n  a:\n    name: Build\n    runs-on: ubuntu-latest\n    steps: [{run: x}]\n  b:\n    name: Build\n    runs-on: ubuntu-latest\n    steps: [{run: x}]\n",
    );
    let names: Vec<&str> = l.pipeline.jobs.iter().map(|j| j.name.as_str()).collect();
    assert_eq!(names, ["Build", "Build [b]"]);
}

#[test]
fn choose_tells_which_workflows_run_for_the_event() {
    let read = |src: &str| workflow::parse(src, 0).expect("valid").workflow;
    let workflows = vec![
        (
            "ci.yml".to_string(),
            read("on: [push, pull_request]\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps: [{run: x}]\n"),
        ),
        (
            "release.yml".to_string(),
            read("on:\n  push:\n    tags: ['v*']\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps: [{run: x}]\n"),
        ),
    ];
    let event = Event {
        name: "push",
        git_ref: Some(GitRef::Branch("main".into())),
        changed_files: None,
        activity: None,
    };
    let chosen: Vec<(&str, bool)> = choose(&workflows, &event)
        .iter()
        .map(|c| (c.file, c.decision.runs))
        .collect();
    assert_eq!(chosen, [("ci.yml", true), ("release.yml", false)]);
    let reasons: Vec<String> = choose(&workflows, &event)
        .into_iter()
        .map(|c| c.decision.reason)
        .collect();
    assert_eq!(
        reasons[1],
        "push to main does not run: the workflow filters tags only, so branches do not trigger it"
    );
}

#[test]
fn inputs_take_their_defaults_and_types() {
    let src = "\
on:
  workflow_dispatch:
    inputs:
      level: {type: choice, options: [a, b], default: a}
      dry: {type: boolean, default: true}
      given: {type: string}
jobs:
  j:
    runs-on: ubuntu-latest
    steps:
      - run: echo ${{ inputs.level }} ${{ inputs.dry }} ${{ inputs.given }} ${{ github.event_name }}
";
    let parsed = workflow::parse(src, 0).expect("valid");
    let mut run = facts();
    run.event_name = "workflow_dispatch".into();
    run.inputs = vec![("given".into(), "hello".into())];
    let l = lower(&parsed.workflow, "ci.yml", &run, &Platforms::new())
        .unwrap_or_else(|d| panic!("{d:#?}"));
    let mut r = l.pipeline.jobs[0]
        .steps
        .as_ref()
        .expect("steps")
        .start(Default::default());
    let c = match r.next() {
        Ok(Some(c)) => c,
        other => panic!("{other:?}"),
    };
    let script = c
        .files
        .iter()
        .find(|(p, _)| p.ends_with("script.sh"))
        .map(|(_, s)| s.as_str());
    assert_eq!(script, Some("echo a true hello workflow_dispatch"));
    let wf_name = c
        .env
        .iter()
        .find(|(k, _)| k == "GITHUB_WORKFLOW")
        .map(|(_, v)| v.as_str());
    assert_eq!(wf_name, Some("ci.yml"));
}

#[test]
fn a_platforms_file_takes_assignments_and_acts_flags() {
    let text = "# the images of this laptop\nubuntu-latest=python:3.11\n\n-P ubuntu-22.04=a:1\n--platform=ubuntu-24.04=b:2\n";
    assert_eq!(
        Platforms::parse_file(text),
        Ok(vec![
            ("ubuntu-latest".to_string(), "python:3.11".to_string()),
            ("ubuntu-22.04".to_string(), "a:1".to_string()),
            ("ubuntu-24.04".to_string(), "b:2".to_string()),
        ])
    );
    let (line, message) = Platforms::parse_file("a=b\n--env X=1\n").unwrap_err();
    assert_eq!(line, 2);
    assert!(message.contains("expected LABEL=IMAGE"), "{message}");
}

#[test]
fn max_parallel_is_carried_for_a_matrix_only() {
    let l = lowered(
        "on: push\njobs:\n  m:\n    runs-on: ubuntu-latest\n    strategy:\n      max-parallel: ${{ fromJSON('2') }}\n      matrix:\n        n: [1, 2, 3]\n    steps:\n      - run: 'true'\n  one:\n    runs-on: ubuntu-latest\n    strategy:\n      max-parallel: 1\n    steps:\n      - run: 'true'\n",
    );
    let limits: Vec<_> = l
        .jobs
        .iter()
        .map(|j| (j.name.as_str(), j.max_parallel))
        .collect();
    assert_eq!(
        limits,
        [
            ("m (1)", Some(2)),
            ("m (2)", Some(2)),
            ("m (3)", Some(2)),
            ("one", None)
        ]
    );
}
