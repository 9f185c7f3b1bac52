use std::path::Path;
use std::time::Duration;

use super::*;
use crate::project::git::ChangedList;
use crate::source::diag::Severity;

fn ok(src: &str) -> Loaded {
    match load(src) {
        Ok(l) => l,
        Err(d) => panic!("expected a valid pipeline, got {d:#?}"),
    }
}

fn errors(src: &str) -> Vec<Diagnostic> {
    match load(src) {
        Ok(l) => panic!(
            "expected errors, got a pipeline with {} jobs",
            l.pipeline.jobs.len()
        ),
        Err(d) => d
            .into_iter()
            .filter(|d| d.severity == Severity::Error)
            .collect(),
    }
}

const SEED: &str = "\
stages: [build, test, deploy]
install:
  stage: build
  script: pip install -e .
pytest:
  stage: test
  script: pytest -q
ship:
  stage: deploy
  script: ./deploy.sh
";

#[test]
fn seed_example_reads() {
    let l = ok(SEED);
    let p = &l.pipeline;
    assert_eq!(p.stages, vec![".pre", "build", "test", "deploy", ".post"]);
    let names: Vec<_> = p.jobs.iter().map(|j| j.name.as_str()).collect();
    assert_eq!(names, vec!["install", "pytest", "ship"]);
    assert_eq!(p.jobs[0].script, vec!["pip install -e ."]);
    assert_eq!(p.jobs[2].stage, "deploy");
    assert!(l.warnings.is_empty());
}

#[test]
fn defaults_and_inheritance() {
    let l = ok("\
image: alpine
default:
  before_script: [echo hi]
  timeout: 10m
  retry: 1
variables:
  A: 1
a:
  script: [one, [two, three]]
b:
  image: {name: busybox, entrypoint: ['']}
  before_script: []
  retry: {max: 2}
  timeout: 30s
  script: x
");
    let p = &l.pipeline;
    let a = &p.jobs[0];
    assert_eq!(a.stage, "test");
    assert_eq!(
        a.image,
        Some(Image::Name {
            name: "alpine".into(),
            entrypoint: None
        })
    );
    assert_eq!(a.before_script, vec!["echo hi"]);
    assert_eq!(a.script, vec!["one", "two", "three"]);
    assert_eq!(a.timeout, Some(Duration::from_secs(600)));
    assert_eq!(a.retry, 1);
    let b = &p.jobs[1];
    assert_eq!(
        b.image,
        Some(Image::Name {
            name: "busybox".into(),
            entrypoint: Some(vec![String::new()])
        })
    );
    assert!(b.before_script.is_empty());
    assert_eq!(b.retry, 2);
    assert_eq!(b.timeout, Some(Duration::from_secs(30)));
    assert_eq!(p.variables[0].value, "1");
}

#[test]
fn hidden_jobs_anchors_and_two_merge_keys() {
    let l = ok("\
.base: &base
  image: busybox
  stage: build
.vars: &vars
  variables: {X: '1'}
job with spaces:
  <<: *base
  <<: *vars
  script: echo $X
");
    let p = &l.pipeline;
    assert_eq!(p.jobs.len(), 1);
    let j = &p.jobs[0];
    assert_eq!(j.name, "job with spaces");
    assert_eq!(j.stage, "build");
    assert_eq!(j.variables[0].name, "X");
}

#[test]
fn reference_tags_resolve_nested() {
    let l = ok("\
.setup:
  script: [echo setup]
.more:
  script:
    - !reference [.setup, script]
    - echo more
job:
  script:
    - !reference [.more, script]
    - echo job
");
    assert_eq!(
        l.pipeline.jobs[0].script,
        vec!["echo setup", "echo more", "echo job"]
    );
}

#[test]
fn missing_reference_is_an_error_with_line() {
    let e = errors("job:\n  script: !reference [.nope, script]\n");
    assert_eq!(e[0].span.unwrap().line, 2);
    assert!(e[0].message.contains(".nope"), "{}", e[0].message);
}

#[test]
fn needs_and_when_and_allow_failure() {
    let l = ok("\
stages: [a, b]
x:
  stage: a
  script: s
y:
  stage: b
  needs: [x, {job: x, artifacts: false}]
  when: always
  allow_failure: {exit_codes: [3, 4]}
  script: s
z:
  stage: b
  needs: []
  when: manual
  script: s
");
    let p = &l.pipeline;
    let y = &p.jobs[1];
    let needs = y.needs.as_ref().unwrap();
    assert_eq!(needs.len(), 2);
    assert!(!needs[1].artifacts);
    assert_eq!(y.when, When::Always);
    assert!(y.allow_failure.allows(Some(3)));
    assert!(!y.allow_failure.allows(Some(1)));
    let z = &p.jobs[2];
    assert_eq!(z.needs.as_deref(), Some(&[][..]));
    assert_eq!(z.allow_failure, AllowFailure::Yes, "manual jobs may fail");
}

#[test]
fn undeclared_stage_names_job_and_line() {
    let e = errors("stages: [build]\njob:\n  stage: tset\n  script: x\n");
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].job.as_deref(), Some("job"));
    assert_eq!(e[0].span.unwrap().line, 3);
    assert!(e[0].message.contains("tset"));
}

#[test]
fn needs_unknown_job_and_later_stage() {
    let e = errors(
        "\
stages: [a, b]
x:
  stage: a
  needs: [y, ghost]
  script: s
y:
  stage: b
  script: s
",
    );
    assert_eq!(e.len(), 2, "{e:#?}");
    assert!(e.iter().all(|d| d.job.as_deref() == Some("x")));
    assert!(e.iter().any(|d| d.message.contains("later stage")));
    assert!(e.iter().any(|d| d.message.contains("ghost")));
    assert!(e.iter().all(|d| d.span.unwrap().line == 4));
}

#[test]
fn needs_cycle() {
    let e = errors("a:\n  needs: [b]\n  script: s\nb:\n  needs: [a]\n  script: s\n");
    assert_eq!(e.len(), 1);
    assert!(e[0].message.contains("cycle"));
    assert!(e[0].message.contains("a -> b -> a"), "{}", e[0].message);
}

#[test]
fn job_without_script_and_wrong_types() {
    let e = errors(
        "a:\n  stage: test\nb:\n  script: {x: 1}\nc:\n  script: s\n  retry: 5\n  timeout: soon\n",
    );
    let msgs: Vec<_> = e
        .iter()
        .map(|d| (d.job.clone().unwrap(), d.message.clone()))
        .collect();
    assert!(
        msgs.iter()
            .any(|(j, m)| j == "a" && m.contains("no `script`")),
        "{msgs:?}"
    );
    assert!(
        msgs.iter()
            .any(|(j, m)| j == "b" && m.contains("a mapping")),
        "{msgs:?}"
    );
    assert!(
        msgs.iter().any(|(j, m)| j == "c" && m.contains("retry")),
        "{msgs:?}"
    );
    assert!(
        msgs.iter().any(|(j, m)| j == "c" && m.contains("timeout")),
        "{msgs:?}"
    );
}

#[test]
fn unknown_key_is_an_error_unsupported_key_a_warning() {
    let e = errors("a:\n  scirpt: x\n  script: y\n");
    assert!(e[0].message.contains("scirpt"));
    let l = ok("a:\n  script: y\n  hooks: {pre_get_sources_script: x}\n  tags: [docker]\n");
    assert_eq!(l.warnings.len(), 1);
    assert!(l.warnings[0].message.contains("hooks"));
}

#[test]
fn yaml_syntax_error_has_line() {
    let e = errors("a:\n  script: [x\nb: 1\n");
    assert!(e[0].message.starts_with("invalid YAML"));
    assert!(e[0].span.is_some());
}

#[test]
fn null_values_are_accepted() {
    let l = ok("variables:\nbefore_script:\na:\n  script: x\n  variables:\n    EMPTY:\n  needs:\n");
    let a = &l.pipeline.jobs[0];
    assert_eq!(a.variables[0].value, "");
    assert_eq!(a.needs.as_deref(), Some(&[][..]));
}

#[test]
fn variables_value_form_and_expand() {
    let l = ok("variables:\n  A: {value: '$B', expand: false, description: d}\na:\n  script: x\n");
    assert_eq!(
        l.pipeline.variables[0],
        Variable {
            name: "A".into(),
            value: "$B".into(),
            expand: false
        }
    );
}

#[test]
fn image_build() {
    let l = ok("a:\n  image: {build: images/tool}\n  script: x\n");
    assert_eq!(
        l.pipeline.jobs[0].image,
        Some(Image::Build {
            context: "images/tool".into(),
            dockerfile: None
        })
    );
}

#[test]
fn empty_and_non_mapping_files() {
    assert!(errors("")[0].message.contains("empty"));
    assert!(errors("- a\n- b\n")[0].message.contains("mapping"));
    assert!(errors("stages: [a]\n")[0].message.contains("no jobs"));
}

#[test]
fn artifacts_and_dependencies() {
    let l = ok("\
stages: [a, b]
x:
  stage: a
  script: s
  artifacts:
    paths: [dist/, '*.log']
    exclude: [dist/tmp/**]
    when: always
    expire_in: 1 week
y:
  stage: b
  dependencies: [x]
  script: s
z:
  stage: b
  dependencies: []
  script: s
");
    let x = &l.pipeline.jobs[0];
    let a = x.artifacts.as_ref().unwrap();
    assert_eq!(a.paths, vec!["dist/", "*.log"]);
    assert_eq!(a.exclude, vec!["dist/tmp/**"]);
    assert_eq!(a.when, ArtifactsWhen::Always);
    assert_eq!(
        l.pipeline.jobs[1].dependencies.as_ref().unwrap()[0].job,
        "x"
    );
    assert_eq!(l.pipeline.jobs[2].dependencies.as_deref(), Some(&[][..]));
}

#[test]
fn artifact_paths_must_stay_inside_the_project() {
    let e = errors("x:\n  script: s\n  artifacts:\n    paths: [ok/, ../../etc]\n");
    assert_eq!(e.len(), 1, "{e:#?}");
    assert!(e[0]
        .message
        .contains("`../../etc` leaves the project directory"));
    assert_eq!(e[0].span.unwrap().line, 4);
    assert_eq!(e[0].job.as_deref(), Some("x"));
}

#[test]
fn dependencies_must_be_earlier_jobs() {
    let e = errors("stages: [a, b]\nx:\n  stage: b\n  script: s\ny:\n  stage: a\n  dependencies: [x, ghost]\n  script: s\n");
    assert_eq!(e.len(), 2, "{e:#?}");
    assert!(e
        .iter()
        .any(|d| d.message.contains("not in an earlier stage")));
    assert!(e
        .iter()
        .any(|d| d.message.contains("`ghost`, which is not a job")));
}

#[test]
fn caches_one_or_many_with_defaults() {
    let l = ok("\
default:
  cache: {paths: [.cache/pip]}
a:
  script: s
b:
  script: s
  cache:
    - key: {files: [requirements.txt], prefix: py}
      paths: [.venv]
      policy: pull
    - key: $CI_JOB_NAME
      paths: [out, 'x/*']
");
    let a = &l.pipeline.jobs[0];
    assert_eq!(a.caches.len(), 1);
    assert_eq!(a.caches[0].key, CacheKey::Text("default".into()));
    assert_eq!(a.caches[0].policy, CachePolicy::PullPush);
    let b = &l.pipeline.jobs[1];
    assert_eq!(b.caches.len(), 2);
    assert_eq!(
        b.caches[0].key,
        CacheKey::Files {
            files: vec!["requirements.txt".into()],
            prefix: Some("py".into())
        }
    );
    assert_eq!(b.caches[0].policy, CachePolicy::Pull);
    assert_eq!(
        b.caches[1].paths,
        vec!["out"],
        "globs are skipped with a warning"
    );
    assert_eq!(l.warnings.len(), 1);
}

#[test]
fn cache_paths_must_stay_inside() {
    let e = errors("a:\n  script: s\n  cache: {paths: [../up]}\n");
    assert!(e[0].message.contains("leaves the project directory"));
}

#[test]
fn services_with_gitlab_default_aliases() {
    let l = ok("\
job:
  script: s
  services:
    - postgres:16
    - registry.example.com/group/tool:1.2
    - name: berth-test/httpd
      alias: web, www
      command: [httpd, -f]
      variables: {PORT: '80'}
");
    let s = &l.pipeline.jobs[0].services;
    assert_eq!(s[0].aliases, vec!["postgres"]);
    assert_eq!(
        s[1].aliases,
        vec![
            "registry.example.com__group__tool",
            "registry.example.com-group-tool"
        ]
    );
    assert_eq!(s[2].aliases, vec!["web", "www"]);
    assert_eq!(
        s[2].command.as_deref(),
        Some(&["httpd".to_string(), "-f".to_string()][..])
    );
    assert_eq!(s[2].variables[0].name, "PORT");
    assert!(l.warnings.is_empty());
}

fn with_ctx(src: &str, vars: &[(&str, &str)]) -> Result<Loaded, Vec<Diagnostic>> {
    let mut ctx = Scope::for_tests();
    for (k, v) in vars {
        ctx.variables.retain(|(n, _)| n != k);
        if !v.is_empty() {
            ctx.variables.push((k.to_string(), v.to_string()));
        }
    }
    let source = Source {
        path: "berth.yml".into(),
        name: "berth.yml".into(),
        text: src.to_string(),
    };
    load_source(&source, &ctx).map_err(|f| f.diagnostics)
}

fn job<'a>(l: &'a Loaded, name: &str) -> &'a Job {
    l.pipeline
        .jobs
        .iter()
        .find(|j| j.name == name)
        .unwrap_or_else(|| panic!("no job {name}"))
}

fn job_names(l: &Loaded) -> Vec<&str> {
    l.pipeline.jobs.iter().map(|j| j.name.as_str()).collect()
}

#[test]
fn extends_merges_deeply_lists_replaced_later_parents_win() {
    let l = ok("\
.base:
  image: alpine
  variables: {A: base, B: base}
  script: [base]
  tags: [x]
.other:
  variables: {B: other, C: other}
  before_script: [other]
.deep:
  extends: .base
  stage: build
job:
  extends: [.deep, .other]
  variables: {C: job}
  script: [own]
");
    let j = job(&l, "job");
    assert_eq!(j.stage, "build");
    assert_eq!(j.script, vec!["own"]);
    assert_eq!(j.before_script, vec!["other"]);
    let vars: Vec<(&str, &str)> = j
        .variables
        .iter()
        .map(|v| (v.name.as_str(), v.value.as_str()))
        .collect();
    assert_eq!(vars, vec![("A", "base"), ("B", "other"), ("C", "job")]);
}

#[test]
fn extends_cycles_and_missing_parents_name_the_chain() {
    let e = errors(
        "a:\n  extends: b\n  script: x\nb:\n  extends: .c\n  script: y\n.c:\n  extends: a\n",
    );
    assert!(
        e.iter()
            .any(|d| d.message.contains("cycle") && d.message.contains("a -> b -> .c -> a")),
        "{e:?}"
    );
    let e = errors("a:\n  extends: .nope\n  script: x\n");
    assert!(e[0].message.contains("`.nope`"), "{e:?}");
    assert_eq!(e[0].span.map(|s| s.line), Some(2));
    assert_eq!(e[0].job.as_deref(), Some("a"));
}

#[test]
fn references_see_extended_jobs() {
    let l = ok("\
.setup:
  script: [one]
.more:
  extends: .setup
  after_script: [after]
job:
  script:
    - !reference [.more, script]
    - two
  after_script: !reference [.more, after_script]
");
    let j = job(&l, "job");
    assert_eq!(j.script, vec!["one", "two"]);
    assert_eq!(j.after_script, vec!["after"]);
}

#[test]
fn rules_decide_when_allow_failure_variables_and_needs() {
    let src = "\
variables: {DEPLOY: 'no'}
build:
  stage: build
  script: b
lint:
  stage: build
  script: l
test:
  script: t
  variables: {LEVEL: job}
  needs: [build, lint]
  rules:
    - if: $CI_COMMIT_TAG
      when: never
    - if: '$CI_COMMIT_BRANCH == \"main\" && $DEPLOY == \"no\"'
      when: manual
      variables: {LEVEL: rule}
      needs: [build]
    - when: always
docs:
  script: d
  rules:
    - changes: [docs/**/*]
      allow_failure: true
";
    let l = with_ctx(src, &[]).unwrap();
    let t = job(&l, "test");
    assert_eq!(t.when, When::Manual);
    // With rules, a manual job fails the pipeline unless it says otherwise.
    assert_eq!(t.allow_failure, AllowFailure::No);
    assert_eq!(t.variables.last().map(|v| v.value.as_str()), Some("rule"));
    assert_eq!(t.needs.as_ref().map(|n| n.len()), Some(1));
    assert!(t
        .reason
        .as_deref()
        .unwrap_or_default()
        .starts_with("rule 2"));
    // No changes source: GitLab treats `changes` as true.
    assert_eq!(job(&l, "docs").allow_failure, AllowFailure::Yes);

    let l = with_ctx(src, &[("CI_COMMIT_TAG", "v1"), ("CI_COMMIT_BRANCH", "")]).unwrap();
    assert_eq!(job_names(&l), vec!["build", "lint", "docs"]);
    assert!(
        l.pipeline.left_out[0].reason.contains("rule 1"),
        "{:?}",
        l.pipeline.left_out
    );

    let l = with_ctx(src, &[("CI_COMMIT_BRANCH", "feature")]).unwrap();
    let t = job(&l, "test");
    assert_eq!(t.when, When::Always);
    assert_eq!(t.needs.as_ref().map(|n| n.len()), Some(2));
}

#[test]
fn rules_changes_read_the_changed_files() {
    let src = "docs:\n  script: d\n  rules:\n    - changes: ['docs/**/*.md']\n";
    let mut ctx = Scope::for_tests();
    let source = Source {
        path: "berth.yml".into(),
        name: "berth.yml".into(),
        text: src.into(),
    };
    ctx.changes = Some(std::sync::Arc::new(ChangedList(Some(vec![
        "src/a.rs".into()
    ]))));
    let l = load_source(&source, &ctx).unwrap();
    assert!(l.pipeline.jobs.is_empty());
    ctx.changes = Some(std::sync::Arc::new(ChangedList(Some(vec![
        "docs/x/y.md".into()
    ]))));
    let l = load_source(&source, &ctx).unwrap();
    assert_eq!(job_names(&l), vec!["docs"]);
}

#[test]
fn a_bad_expression_is_an_error_with_its_line() {
    let e = errors("a:\n  script: x\n  rules:\n    - if: '$A == (\"x\"'\n");
    assert!(e[0].message.contains("invalid expression"), "{e:?}");
    assert_eq!(e[0].span.map(|s| s.line), Some(4));
}

#[test]
fn only_and_except_with_gitlabs_default() {
    let src = "\
always:
  script: x
tags-only:
  script: x
  only: [tags]
not-main:
  script: x
  except: [main]
feature:
  script: x
  only:
    refs: ['/^feature-/']
    variables: ['$RELEASE']
mr:
  script: x
  only: [merge_requests]
";
    let l = with_ctx(src, &[]).unwrap();
    assert_eq!(job_names(&l), vec!["always"]);
    let l = with_ctx(
        src,
        &[
            ("CI_COMMIT_BRANCH", "feature-1"),
            ("CI_COMMIT_REF_NAME", "feature-1"),
            ("RELEASE", "1"),
        ],
    )
    .unwrap();
    assert_eq!(job_names(&l), vec!["always", "not-main", "feature"]);
    // Merge request pipelines are not branch pipelines: the default `only` leaves jobs out.
    let l = with_ctx(
        src,
        &[
            ("CI_PIPELINE_SOURCE", "merge_request_event"),
            ("CI_COMMIT_BRANCH", ""),
        ],
    )
    .unwrap();
    assert_eq!(job_names(&l), vec!["mr"]);
}

#[test]
fn workflow_rules_refuse_or_set_variables() {
    let src = "\
workflow:
  name: 'Pipeline for $CI_COMMIT_BRANCH ($MODE)'
  rules:
    - if: $CI_COMMIT_TAG
      when: never
    - if: $CI_COMMIT_BRANCH
      variables: {MODE: branch}
job:
  script: x
";
    let l = with_ctx(src, &[]).unwrap();
    assert!(l.refused.is_none());
    assert_eq!(
        l.pipeline.name.as_deref(),
        Some("Pipeline for main (branch)")
    );
    assert!(l
        .pipeline
        .variables
        .iter()
        .any(|v| v.name == "MODE" && v.value == "branch"));
    let l = with_ctx(src, &[("CI_COMMIT_TAG", "v1"), ("CI_COMMIT_BRANCH", "")]).unwrap();
    assert!(l.refused.as_deref().unwrap_or_default().contains("rule 1"));
    assert!(l.pipeline.jobs.is_empty());
    let l = with_ctx(src, &[("CI_COMMIT_BRANCH", "")]).unwrap();
    assert!(l.refused.is_some());
}

#[test]
fn parallel_jobs_are_named_as_gitlab_names_them() {
    let src = "\
build:
  stage: build
  script: b
  parallel:
    matrix:
      - OS: [linux, mac]
        ARCH: amd64
test:
  script: t
  parallel: 2
  needs:
    - job: build
      parallel:
        matrix:
          - OS: mac
            ARCH: amd64
deploy:
  stage: deploy
  script: d
  needs: [test]
";
    let l = ok(src);
    assert_eq!(
        job_names(&l),
        vec![
            "build: [linux, amd64]",
            "build: [mac, amd64]",
            "test 1/2",
            "test 2/2",
            "deploy"
        ]
    );
    let b = job(&l, "build: [mac, amd64]");
    let os = b.variables.iter().find(|v| v.name == "OS").unwrap();
    assert_eq!(os.value, "mac");
    let t = job(&l, "test 2/2");
    assert_eq!(t.needs.as_ref().unwrap()[0].job, "build: [mac, amd64]");
    assert!(t
        .variables
        .iter()
        .any(|v| v.name == "CI_NODE_INDEX" && v.value == "2"));
    let d = job(&l, "deploy");
    let needs: Vec<&str> = d
        .needs
        .as_ref()
        .unwrap()
        .iter()
        .map(|n| n.job.as_str())
        .collect();
    assert_eq!(needs, vec!["test 1/2", "test 2/2"]);
}

#[test]
fn matrix_variables_reach_rules() {
    let src = "\
deploy:
  script: d
  parallel:
    matrix:
      - PROVIDER: [aws, gcp]
  rules:
    - if: $PROVIDER == \"aws\"
";
    let l = ok(src);
    assert_eq!(job_names(&l), vec!["deploy: [aws]"]);
    assert_eq!(l.pipeline.left_out[0].name, "deploy: [gcp]");
}

#[test]
fn needs_on_a_job_rules_left_out() {
    let src = "\
a:
  stage: build
  script: x
  rules: [{if: $NOPE}]
b:
  script: y
  needs: [a]
c:
  script: z
  needs: [{job: a, optional: true}]
";
    let e = errors(src);
    assert!(
        e.iter()
            .any(|d| d.job.as_deref() == Some("b") && d.message.contains("left it out")),
        "{e:?}"
    );
    let l = ok(&src.replace("needs: [a]", "needs: [{job: a, optional: true}]"));
    assert_eq!(job(&l, "c").needs.as_ref().map(|n| n.len()), Some(0));
}

#[test]
fn inherit_default_and_variables() {
    let src = "\
default:
  image: alpine
  before_script: [setup]
variables: {A: a, B: b}
plain:
  script: x
none:
  inherit: {default: false, variables: false}
  script: x
some:
  inherit: {default: [image], variables: [B]}
  script: x
";
    let l = ok(src);
    assert!(job(&l, "plain").image.is_some());
    assert!(job(&l, "none").image.is_none());
    assert!(job(&l, "none").before_script.is_empty());
    assert_eq!(job(&l, "none").inherit_variables, Some(vec![]));
    assert!(job(&l, "some").image.is_some());
    assert!(job(&l, "some").before_script.is_empty());
    assert_eq!(
        job(&l, "some").inherit_variables,
        Some(vec!["B".to_string()])
    );
}

#[test]
fn delayed_environment_trigger_and_dotenv() {
    let src = "\
later:
  script: x
  when: delayed
  start_in: 2 seconds
  environment: {name: review/$CI_COMMIT_REF_SLUG, url: 'https://x'}
  artifacts:
    reports:
      dotenv: build.env
child:
  trigger:
    include: ci/child.yml
    strategy: depend
other:
  trigger: group/project
";
    let l = ok(src);
    let j = job(&l, "later");
    assert_eq!(j.when, When::Delayed);
    assert_eq!(j.start_in, Some(Duration::from_secs(2)));
    assert_eq!(j.environment.as_ref().map(|e| e.url.is_some()), Some(true));
    assert_eq!(
        j.artifacts.as_ref().map(|a| a.dotenv.clone()),
        Some(vec!["build.env".to_string()])
    );
    assert_eq!(
        job(&l, "child").trigger,
        Some(Trigger::Child {
            files: vec!["ci/child.yml".into()],
            depend: true
        })
    );
    assert!(matches!(
        job(&l, "other").trigger,
        Some(Trigger::Other { .. })
    ));
    let e = errors("later:\n  script: x\n  when: delayed\n");
    assert!(e[0].message.contains("start_in"));
}

/// A project directory with files, for includes.
fn project(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (path, text) in files {
        let p = dir.path().join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    dir
}

fn load_dir(dir: &Path, ctx_vars: &[(&str, &str)]) -> Result<Loaded, Failed> {
    let mut ctx = Scope::for_tests();
    ctx.project_dir = dir.to_path_buf();
    ctx.variables
        .extend(ctx_vars.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let source = Source::read(&dir.join(".gitlab-ci.yml")).unwrap();
    load_source(&source, &ctx)
}

#[test]
fn includes_local_wildcards_nested_rules_and_the_main_file_wins() {
    let dir = project(&[
        (
            ".gitlab-ci.yml",
            "include:\n  - local: /ci/base.yml\n  - ci/jobs/*.yml\n  - local: ci/optional.yml\n    rules:\n      - if: $WANT_OPTIONAL\nbuild:\n  script: [main]\n",
        ),
        ("ci/base.yml", "include: ci/nested.yml\nstages: [build, test]\nbuild:\n  stage: build\n  script: [base]\n"),
        ("ci/nested.yml", ".tpl:\n  script: [from-nested]\n"),
        ("ci/jobs/a.yml", "a:\n  extends: .tpl\n"),
        ("ci/jobs/b.yml", "b:\n  script: [b]\n"),
        ("ci/jobs/sub/c.yml", "c:\n  script: [c]\n"),
        ("ci/optional.yml", "optional:\n  script: [o]\n"),
    ]);
    let l = load_dir(dir.path(), &[]).unwrap();
    assert_eq!(job_names(&l), vec!["build", "a", "b"]);
    assert_eq!(job(&l, "build").stage, "build");
    assert_eq!(job(&l, "build").script, vec!["main"]);
    assert_eq!(job(&l, "a").script, vec!["from-nested"]);
    let l = load_dir(dir.path(), &[("WANT_OPTIONAL", "1")]).unwrap();
    assert!(job_names(&l).contains(&"optional"));
    let names: Vec<&str> = l.sources.files().iter().map(|f| f.name.as_str()).collect();
    assert!(names.contains(&"ci/nested.yml"), "{names:?}");
}

#[test]
fn errors_in_included_files_name_that_file() {
    let dir = project(&[
        (".gitlab-ci.yml", "include: ci/bad.yml\nok:\n  script: x\n"),
        ("ci/bad.yml", "bad:\n  stage: nowhere\n  script: x\n"),
    ]);
    let failed = load_dir(dir.path(), &[]).unwrap_err();
    let d = &failed.diagnostics[0];
    let text = d.render(&failed.sources);
    assert!(text.contains("--> ci/bad.yml:2:10"), "{text}");
    assert!(text.contains("stage: nowhere"), "{text}");

    let dir = project(&[(
        ".gitlab-ci.yml",
        "include: ci/missing.yml\nok:\n  script: x\n",
    )]);
    let failed = load_dir(dir.path(), &[]).unwrap_err();
    assert!(failed.diagnostics[0]
        .message
        .contains("cannot read `ci/missing.yml`"));
    let dir = project(&[(
        ".gitlab-ci.yml",
        "include: ../outside.yml\nok:\n  script: x\n",
    )]);
    let failed = load_dir(dir.path(), &[]).unwrap_err();
    assert!(failed.diagnostics[0]
        .message
        .contains("outside the project"));
}

#[test]
fn include_inputs_and_kinds_berth_cannot_fetch() {
    let dir = project(&[
        (
            ".gitlab-ci.yml",
            "include:\n  - local: ci/deploy.yml\n    inputs: {env: prod}\n  - project: group/ci\n    file: /t.yml\n",
        ),
        (
            "ci/deploy.yml",
            "spec:\n  inputs:\n    env:\n    stage: {default: deploy}\n---\n'deploy-$[[ inputs.env ]]':\n  stage: $[[ inputs.stage ]]\n  script: echo $[[ inputs.env ]]\n",
        ),
    ]);
    std::env::set_var("BERTH_INCLUDE_CACHE", dir.path().join("cache"));
    let failed = load_dir(dir.path(), &[]).unwrap_err();
    let d = &failed.diagnostics[0];
    assert!(d.message.contains("project: group/ci"), "{d:?}");
    assert!(
        d.help.as_deref().unwrap_or_default().contains("vendor it"),
        "{d:?}"
    );
    // A copy in the include cache is used instead.
    let cached = dir.path().join("cache/project/group/ci/HEAD/t.yml");
    std::fs::create_dir_all(cached.parent().unwrap()).unwrap();
    std::fs::write(&cached, "from-cache:\n  stage: deploy\n  script: x\n").unwrap();
    let l = load_dir(dir.path(), &[]).unwrap();
    assert_eq!(job_names(&l), vec!["deploy-prod", "from-cache"]);
    assert_eq!(job(&l, "deploy-prod").script, vec!["echo prod"]);
}
