//! Real GitLab pipelines end to end against the real Docker engine: includes, extends, rules,
//! matrix jobs, dotenv reports, child pipelines, delayed jobs and triggers of other projects.

use crate::common;
use crate::common::{require_image, Project, BUSYBOX};

/// A project whose `.gitlab-ci.yml` (plus other files) runs in the busybox image.
fn gitlab_project(pipeline: &str, files: &[(&str, &str)]) -> Project {
    require_image(BUSYBOX);
    let p = Project::new(&[(".gitlab-ci.yml", &format!("image: {BUSYBOX}\n{pipeline}"))]);
    for (name, text) in files {
        p.write(name, text);
    }
    p
}

#[test]
fn matrix_names_and_variables_reach_the_script() {
    let p = gitlab_project(
        "\
test:
  script: echo \"name=$CI_JOB_NAME os=$OS node=$CI_NODE_INDEX/$CI_NODE_TOTAL\"
  parallel:
    matrix:
      - OS: [linux, mac]
",
        &[],
    );
    let run = p.berth(&["run"]);
    run.expect_code(0);
    assert_eq!(
        run.log("test: [linux]")[1],
        "name=test: [linux] os=linux node=1/2"
    );
    assert_eq!(
        run.log("test: [mac]")[1],
        "name=test: [mac] os=mac node=2/2"
    );
    assert!(p.leftovers().is_empty(), "{:?}", p.leftovers());
}

#[test]
fn rules_variables_override_job_variables_and_rules_pick_jobs() {
    let p = gitlab_project(
        "\
variables: {LEVEL: global}
deploy:
  variables: {LEVEL: job, KEEP: job}
  script: echo \"level=$LEVEL keep=$KEEP\"
  rules:
    - if: $CI_COMMIT_BRANCH == \"release\"
      variables: {LEVEL: rule}
    - when: never
tag-only:
  script: echo tag
  rules:
    - if: $CI_COMMIT_TAG
",
        &[],
    );
    let run = p.berth(&["run", "--branch", "release"]);
    run.expect_code(0);
    assert_eq!(run.log("deploy")[1], "level=rule keep=job");
    assert!(!run.stderr.contains("[tag-only]"), "{}", run.stderr);

    // On another branch no job is created: nothing runs, and that is not a failure.
    let plan = p.berth(&["plan", "--branch", "main"]);
    plan.expect_code(0);
    assert!(
        plan.stdout.contains("not in this pipeline"),
        "{}",
        plan.stdout
    );
    assert!(plan.stdout.contains("deploy"), "{}", plan.stdout);

    let tag = p.berth(&["run", "--tag", "v1.0"]);
    tag.expect_code(0);
    assert_eq!(tag.log("tag-only")[1], "tag");
}

#[test]
fn a_dotenv_report_reaches_later_jobs() {
    let p = gitlab_project(
        "\
stages: [build, test]
version:
  stage: build
  script:
    - echo VERSION=1.2.3 > build.env
    - echo BUILD_KIND=release >> build.env
  artifacts:
    reports:
      dotenv: build.env
use:
  stage: test
  variables: {VERSION: from-yaml}
  script: echo \"version=$VERSION kind=$BUILD_KIND\"
",
        &[],
    );
    let run = p.berth(&["run"]);
    run.expect_code(0);
    // dotenv variables win over the job's own (GitLab's precedence).
    let log = run.log("use");
    assert!(log.contains(&"version=1.2.3 kind=release"), "{log:?}");
}

#[test]
fn includes_extends_and_a_local_child_pipeline_run() {
    let p = gitlab_project(
        "\
include:
  - local: ci/templates.yml
stages: [build, children, after]
build:
  extends: .quiet
  stage: build
  script: echo \"built with $TOOL\"
child:
  stage: children
  variables: {FROM_PARENT: yes-it-is}
  trigger:
    include: ci/child.yml
    strategy: depend
after:
  stage: after
  script: echo after
",
        &[
            ("ci/templates.yml", ".quiet:\n  variables: {TOOL: make}\n"),
            (
                "ci/child.yml",
                // A child pipeline takes nothing from its parent's defaults.
                "\
image: berth-test/busybox:latest
stages: [one, two]
first:
  stage: one
  script: echo \"child first, parent says $FROM_PARENT, source $CI_PIPELINE_SOURCE\"
second:
  stage: two
  script: echo child second
",
            ),
        ],
    );
    let plan = p.berth(&["plan", "--output", "json"]);
    plan.expect_code(0);
    assert!(
        plan.stdout.contains("\"name\": \"child\""),
        "{}",
        plan.stdout
    );

    let run = p.berth(&["run"]);
    run.expect_code(0);
    assert_eq!(run.log("build")[1], "built with make");
    assert_eq!(
        run.log("child / first")[1],
        "child first, parent says yes-it-is, source parent_pipeline"
    );
    assert!(run.line_index("==> build: passed") < run.line_index("==> child / first: started"));
    assert!(
        run.line_index("==> child / first: passed") < run.line_index("==> child / second: started")
    );
    assert!(run.line_index("==> child / second: passed") < run.line_index("==> after: started"));
    assert!(p.leftovers().is_empty(), "{:?}", p.leftovers());
}

#[test]
fn a_failing_child_pipeline_fails_the_trigger_and_stops_later_stages() {
    let p = gitlab_project(
        "\
stages: [children, after]
child:
  stage: children
  trigger:
    include: child.yml
after:
  stage: after
  script: echo after
",
        &[(
            "child.yml",
            "image: berth-test/busybox:latest\nbroken:\n  script: exit 3\n",
        )],
    );
    let run = p.berth(&["run"]);
    run.expect_code(1);
    assert!(run.status_of("child / broken").contains("failed"));
    assert!(!run.stderr.contains("[after] after"), "{}", run.stderr);
}

#[test]
fn delayed_jobs_wait_and_other_projects_triggers_are_skipped() {
    let p = gitlab_project(
        "\
stages: [one, two]
later:
  stage: one
  when: delayed
  start_in: 1 second
  environment: {name: review/$CI_COMMIT_REF_NAME}
  script: echo \"env=$CI_ENVIRONMENT_NAME slug=$CI_ENVIRONMENT_SLUG\"
downstream:
  stage: one
  trigger: group/other-project
last:
  stage: two
  script: echo last
",
        &[],
    );
    let started = std::time::Instant::now();
    let run = p.berth(&["run", "--branch", "feature/x"]);
    run.expect_code(0);
    assert!(started.elapsed() >= std::time::Duration::from_secs(1));
    assert!(
        run.log("later").iter().any(|l| l.contains("starting in 1")),
        "{}",
        run.stderr
    );
    assert!(run
        .log("later")
        .contains(&"env=review/feature/x slug=review-feature-x"));
    assert!(
        run.stderr
            .contains("group/other-project, which cannot run locally"),
        "{}",
        run.stderr
    );
    assert_eq!(run.log("last")[1], "last");
}

#[test]
fn workflow_rules_that_refuse_are_a_message_and_exit_zero() {
    let p = gitlab_project(
        "\
workflow:
  rules:
    - if: $CI_PIPELINE_SOURCE == \"merge_request_event\"
job:
  script: echo never runs
",
        &[],
    );
    let run = p.berth(&["run"]);
    run.expect_code(0);
    assert!(run.stderr.contains("create no pipeline"), "{}", run.stderr);
    assert!(!run.stderr.contains("never runs"));
    let mr = p.berth(&["plan", "--source", "merge_request_event"]);
    mr.expect_code(0);
    assert!(mr.stdout.contains("job"), "{}", mr.stdout);
}

#[test]
fn errors_in_included_files_point_at_them() {
    let p = gitlab_project(
        "include: ci/jobs.yml\nok:\n  script: echo ok\n",
        &[("ci/jobs.yml", "bad:\n  extends: .missing\n  script: x\n")],
    );
    let run = p.berth(&["run"]);
    run.expect_code(2);
    assert!(
        run.stderr.contains("--> ci/jobs.yml:2:12"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("job `bad`"), "{}", run.stderr);
    assert!(p.leftovers().is_empty());
}

/// Serve `body` over HTTP on loopback for `requests` connections; returns the URL.
fn serve_once(body: &'static str, requests: usize) -> (String, std::thread::JoinHandle<()>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let url = format!(
        "http://{}/ci/remote.yml",
        listener.local_addr().expect("addr")
    );
    let handle = std::thread::spawn(move || {
        for stream in listener.incoming().take(requests) {
            let Ok(mut stream) = stream else { continue };
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: text/yaml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (url, handle)
}

#[test]
fn remote_includes_are_fetched_and_cached_for_offline_runs() {
    let (url, server) = serve_once("remote-job:\n  stage: test\n  script: echo remote\n", 1);
    let p = Project::new(&[(
        ".gitlab-ci.yml",
        &format!("include:\n  - remote: '{url}'\nlocal-job:\n  script: echo local\n"),
    )]);
    let cache = tempfile::tempdir().expect("cache dir");
    let plan = |p: &Project| -> common::Run {
        p.command(&["plan", "--output", "json"])
            .env("BERTH_INCLUDE_CACHE", cache.path())
            .output()
            .expect("berth runs")
            .into()
    };
    let online = plan(&p);
    online.expect_code(0);
    assert!(
        online.stdout.contains("\"remote-job\""),
        "{}",
        online.stdout
    );
    server.join().expect("server thread");

    // The server is gone: the cached copy is used, and berth says so.
    let offline = plan(&p);
    offline.expect_code(0);
    assert!(
        offline.stdout.contains("\"remote-job\""),
        "{}",
        offline.stdout
    );
    assert!(
        offline.stderr.contains("using the copy cached"),
        "{}",
        offline.stderr
    );

    // No server and no copy: exit 2, naming the include.
    let empty = tempfile::tempdir().expect("cache dir");
    let none: common::Run = p
        .command(&["plan"])
        .env("BERTH_INCLUDE_CACHE", empty.path())
        .output()
        .expect("berth runs")
        .into();
    none.expect_code(2);
    assert!(
        none.stderr.contains("could not be fetched"),
        "{}",
        none.stderr
    );
}
