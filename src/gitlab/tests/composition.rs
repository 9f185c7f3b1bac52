//! Composing and deciding: extends, !reference, rules, only/except, workflow, parallel,
//! inherit, environments and triggers.

use std::time::Duration;

use super::*;
use crate::project::git::ChangedList;

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

    // A job that is `when: manual` itself, whose matching rule sets no `when`: GitLab keeps
    // the manual job's `allow_failure: true` (only a rule's own `when: manual` makes it false).
    let own = "job: {script: echo, when: manual, rules: [{if: $CI_COMMIT_BRANCH}]}\n";
    let l = with_ctx(own, &[("CI_COMMIT_BRANCH", "main")]).unwrap();
    let j = job(&l, "job");
    assert_eq!(j.when, When::Manual);
    assert_eq!(j.allow_failure, AllowFailure::Yes);

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
