//! Bad input: every mistake is exit code 2, names the file, line and job, and starts nothing.
//! Also `berth plan`, which needs no Docker at all.

use crate::common;
use crate::common::Project;

/// Run `berth run` on a broken pipeline; it must fail before touching Docker.
fn rejected(pipeline: &str) -> String {
    let p = Project::new(&[("berth.yml", pipeline)]);
    // An unreachable engine proves that validation happens before any Docker call.
    let run = common::Run::from(
        p.command(&["run"])
            .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
            .output()
            .expect("run berth"),
    );
    run.expect_code(2);
    assert!(
        !run.stderr.contains("==>"),
        "a job started:\n{}",
        run.stderr
    );
    assert!(run.stderr.contains("nothing was started"), "{}", run.stderr);
    run.stderr
}

#[test]
fn yaml_syntax_error_names_line_and_column() {
    let err = rejected("job:\n  script: [echo\n  stage: test\n");
    assert!(err.contains("invalid YAML"), "{err}");
    assert!(err.contains("--> berth.yml:"), "{err}");
}

#[test]
fn undeclared_stage() {
    let err = rejected("stages: [build]\ncompile:\n  stage: biuld\n  script: make\n");
    assert!(
        err.contains("error: job `compile`: stage `biuld` is not declared in `stages`"),
        "{err}"
    );
    assert!(err.contains("--> berth.yml:3:10"), "{err}");
    assert!(err.contains("3 |   stage: biuld"), "{err}");
    assert!(err.contains("help: declared stages: build"), "{err}");
}

#[test]
fn needs_unknown_later_and_cycle() {
    let err = rejected(
        "\
stages: [a, b]
x:
  stage: a
  needs: [ghost, y]
  script: s
y:
  stage: b
  script: s
",
    );
    assert!(
        err.contains("job `x`: `needs` names `ghost`, which is not a job"),
        "{err}"
    );
    assert!(
        err.contains("`needs` names `y`, which is in the later stage `b`"),
        "{err}"
    );
    assert!(err.contains("--> berth.yml:4:"), "{err}");
    assert!(err.contains("2 errors"), "{err}");

    let err = rejected("a:\n  needs: [b]\n  script: s\nb:\n  needs: [a]\n  script: s\n");
    assert!(err.contains("cycle: a -> b -> a"), "{err}");
}

#[test]
fn job_without_script_and_wrong_types() {
    let err = rejected("lint:\n  stage: test\n");
    assert!(err.contains("job `lint`: the job has no `script`"), "{err}");
    assert!(err.contains("--> berth.yml:1:1"), "{err}");

    let err = rejected("t:\n  script: x\n  timeout: tomorrow\n  retry: 9\n  when: sometimes\n");
    assert!(err.contains("`timeout`"), "{err}");
    assert!(err.contains("`retry` should be 0, 1 or 2"), "{err}");
    assert!(
        err.contains("`when: sometimes` is not a valid value"),
        "{err}"
    );

    let err = rejected("stages: build\nj:\n  script: x\n");
    assert!(
        err.contains("`stages` should be a list of names, found a string"),
        "{err}"
    );
}

#[test]
fn unknown_job_key_is_an_error_like_gitlab() {
    let err = rejected("job:\n  scirpt: make\n  script: make\n");
    assert!(err.contains("unknown key `scirpt`"), "{err}");
    assert!(err.contains("--> berth.yml:2:3"), "{err}");
}

#[test]
fn missing_pipeline_file_and_bad_arguments() {
    let p = Project::new(&[]);
    let run = p.berth(&["run"]);
    run.expect_code(2);
    assert!(run.stderr.contains("no pipeline file"), "{}", run.stderr);
    let run = p.berth(&["run", "--jobs", "many"]);
    run.expect_code(2);
    let run = p.berth(&["run", "-e", "NOEQUALS"]);
    run.expect_code(2);
    assert!(run.stderr.contains("is not KEY=VALUE"), "{}", run.stderr);
}

#[test]
fn unsupported_keys_warn_and_the_plan_still_prints() {
    let p = Project::new(&[(
        "berth.yml",
        "job:\n  script: make\n  hooks: {pre_get_sources_script: x}\n  tags: [docker]\n",
    )]);
    let run = p.berth(&["plan"]);
    run.expect_code(0);
    assert!(
        run.stderr
            .contains("warning: job `job`: `hooks` is not supported by berth yet"),
        "{}",
        run.stderr
    );
    assert!(
        !run.stderr.contains("tags"),
        "keys with no local meaning are quiet: {}",
        run.stderr
    );
}

#[test]
fn gitlab_yaml_that_strict_parsers_refuse() {
    let p = Project::new(&[(
        ".gitlab-ci.yml",
        "\
.defaults: &defaults
  image: busybox
  before_script: [echo setup]
.vars: &vars
  variables:
    A: '1'
.script: &script
  script:
    - echo hi
    - !reference [.extra, script]
.extra:
  script: [echo extra]
variables:
  EMPTY:
build job:
  <<: *defaults
  <<: *vars
  <<: *script
  stage: build
  needs:
",
    )]);
    let run = p.berth(&["plan", "--output", "json"]);
    run.expect_code(0);
    let json: serde_json::Value = serde_json::from_str(&run.stdout).expect("plan json");
    assert_eq!(
        json,
        serde_json::json!([
            {"name": "build job", "stage": "build", "when": "on_success", "allow_failure": false, "needs": []}
        ])
    );
}

#[test]
fn plan_prints_jobs_in_order() {
    let p = Project::fixture("dag");
    let run = p.berth(&["plan"]);
    run.expect_code(0);
    insta::assert_snapshot!(run.stdout);
    let selected = p.berth(&["plan", "unit"]);
    selected.expect_code(0);
    insta::assert_snapshot!("plan_selected", selected.stdout);
}

/// Anchors nested `levels` deep under a hidden key, each a list of ten aliases of the one
/// before: 10^levels scalars once expanded.
fn laughs(levels: usize) -> String {
    let mut src = String::from(".anchors:\n  a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..levels {
        let items = vec![format!("*a{}", i - 1); 10].join(", ");
        src.push_str(&format!("  a{i}: &a{i} [{items}]\n"));
    }
    src
}

// A 600-byte file of nested aliases took 3.2 GB (a 900-byte one was killed at 24 GB).
#[test]
fn billion_laughs_stop_at_the_alias_that_crosses_the_limit() {
    let src = format!("{}job:\n  script: echo\n", laughs(10));
    let err = rejected(&src);
    assert!(err.contains("error: the pipeline is too big"), "{err}");
    assert!(err.contains("--> berth.yml:8:12"), "{err}");
    assert!(!err.contains("invalid YAML"), "{err}");

    // In an included file, the included file's line.
    let p = Project::new(&[
        ("berth.yml", "include: big.yml\njob:\n  script: echo\n"),
        ("big.yml", &laughs(10)),
    ]);
    let run = p.berth(&["plan"]);
    run.expect_code(2);
    assert!(run.stderr.contains("--> big.yml:8:12"), "{}", run.stderr);
}

#[test]
fn copies_made_by_extends_and_reference_count_toward_the_limit() {
    // A template of 10,000 scalars (410 KB counted) extended by 200 jobs: 80 MB of copies.
    let mut src = laughs(4);
    src.push_str(".t:\n  script: *a3\n");
    for i in 0..200 {
        src.push_str(&format!("j{i}:\n  extends: .t\n"));
    }
    let err = rejected(&src);
    assert!(
        err.contains("`extends: .t`: the pipeline is too big"),
        "{err}"
    );

    // Each level references the one before ten times: 10^10 scalars by the tenth.
    let mut src = String::from(".r0:\n  s: [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..10 {
        let refs = vec![format!("!reference [.r{}, s]", i - 1); 10].join(", ");
        src.push_str(&format!(".r{i}:\n  s: [{refs}]\n"));
    }
    src.push_str("job:\n  script: !reference [.r9, s]\n");
    let err = rejected(&src);
    assert!(
        err.contains("`!reference`: the pipeline is too big"),
        "{err}"
    );
    assert!(err.contains("--> berth.yml:"), "{err}");
}

// Twelve lists of twenty values: 1 KB of YAML aborted at 3.8 GB building 20^12 jobs.
#[test]
fn a_huge_matrix_is_refused_before_it_is_built() {
    let values = format!(
        "[{}]",
        (0..20)
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let keys: Vec<String> = (0..12).map(|i| format!("K{i}: {values}")).collect();
    let src = format!(
        "job:\n  script: echo\n  parallel:\n    matrix:\n      - {{{}}}\n",
        keys.join(", ")
    );
    let err = rejected(&src);
    assert!(
        err.contains(
            "job `job`: `parallel: matrix` makes 4096000000000000 jobs; GitLab allows 200"
        ),
        "{err}"
    );
    assert!(err.contains("--> berth.yml:5:7"), "{err}");
}

// An editor's UTF-8 byte-order mark made the first key `\u{feff}stages`.
#[test]
fn a_byte_order_mark_is_read_past_in_every_file() {
    let p = Project::new(&[
        ("berth.yml", "\u{feff}stages: [a]\ninclude: inc.yml\n"),
        ("inc.yml", "\u{feff}job:\n  stage: a\n  script: echo\n"),
    ]);
    let run = p.berth(&["plan"]);
    run.expect_code(0);
    assert!(run.stdout.contains("1 job in 1 stage"), "{}", run.stdout);

    // Line 1 of such a file renders, and points, as the editor shows it.
    let err = rejected("\u{feff}job: {stage: nope, script: x}\n");
    assert!(err.contains("--> berth.yml:1:14"), "{err}");
    assert!(err.contains("1 | job: {stage: nope"), "{err}");
    assert!(!err.contains('\u{feff}'), "{err}");
}
