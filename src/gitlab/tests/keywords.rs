//! Jobs and their keywords: stages, needs, scripts, variables, images, artifacts, caches,
//! services, and the errors GitLab gives for each.

use std::time::Duration;

use super::*;

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
fn cache_when_fallback_keys_untracked_and_unprotect() {
    let l = ok("\
a:
  script: s
  cache:
    key: deps-$CI_COMMIT_REF_SLUG
    fallback_keys: [deps-$CI_DEFAULT_BRANCH, deps-main]
    paths: [vendor]
    when: always
    untracked: true
    unprotect: true
b:
  script: s
  cache: {paths: [x], when: on_failure}
");
    let a = &job(&l, "a").caches[0];
    assert_eq!(a.when, CacheWhen::Always);
    assert_eq!(
        a.fallback_keys,
        vec!["deps-$CI_DEFAULT_BRANCH", "deps-main"],
        "expanded with the job's variables when it runs"
    );
    assert!(a.untracked);
    let b = &job(&l, "b").caches[0];
    assert_eq!(b.when, CacheWhen::OnFailure);
    assert!(b.fallback_keys.is_empty() && !b.untracked);
    assert_eq!(l.warnings.len(), 1, "{:?}", l.warnings);
    assert!(l.warnings[0]
        .message
        .contains("`cache: untracked` is not supported"));

    let e = errors("a:\n  script: s\n  cache: {paths: [x], when: never}\n");
    assert!(e[0]
        .message
        .contains("`cache: when: never` is not a valid value"));
    assert_eq!(e[0].job.as_deref(), Some("a"));
}

#[test]
fn cache_key_files_takes_at_most_two() {
    let two = ok("a:\n  script: s\n  cache:\n    key:\n      files: [Gemfile.lock, yarn.lock]\n      prefix: deps\n    paths: [vendor]\n");
    assert_eq!(
        two.pipeline.jobs[0].caches[0].key,
        CacheKey::Files {
            files: vec!["Gemfile.lock".into(), "yarn.lock".into()],
            prefix: Some("deps".into())
        }
    );
    let e = errors(
        "a:\n  script: s\n  cache:\n    key:\n      files: [a.lock, b.lock, c.lock]\n    paths: [vendor]\n",
    );
    assert_eq!(e.len(), 1, "{e:#?}");
    assert_eq!(
        e[0].message,
        "`cache: key: files` lists 3 files; GitLab takes at most two"
    );
    assert_eq!(e[0].span.map(|s| s.line), Some(5), "at the list");
    assert_eq!(e[0].job.as_deref(), Some("a"));
    let none = errors("a:\n  script: s\n  cache: {key: {files: []}, paths: [v]}\n");
    assert!(none[0].message.contains("needs one or two files"));
}

#[test]
fn artifacts_reports_by_type() {
    let l = ok("\
a:
  script: s
  artifacts:
    reports:
      junit: [report.xml, 'junit/*.xml']
      coverage_report: {coverage_format: cobertura, path: coverage.xml}
      codequality: gl-code-quality.json
      dotenv: build.env
");
    let a = l.pipeline.jobs[0].artifacts.as_ref().unwrap();
    let kinds: Vec<(&str, Vec<&str>)> = a
        .reports
        .iter()
        .map(|r| {
            (
                r.kind.as_str(),
                r.paths.iter().map(String::as_str).collect(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("junit", vec!["report.xml", "junit/*.xml"]),
            ("coverage_report", vec!["coverage.xml"]),
            ("codequality", vec!["gl-code-quality.json"]),
            ("dotenv", vec!["build.env"]),
        ]
    );
    assert!(a.reports[0].is_junit());
    assert_eq!(a.dotenv, vec!["build.env"]);
    let e = errors("a:\n  script: s\n  artifacts:\n    reports:\n      jnuit: r.xml\n");
    assert!(
        e[0].message.contains("unknown type `jnuit`"),
        "{}",
        e[0].message
    );
    assert_eq!(e[0].span.map(|s| s.line), Some(5));
    let up = errors("a:\n  script: s\n  artifacts: {reports: {junit: ../r.xml}}\n");
    assert!(
        up[0].message.contains("report path `../r.xml`"),
        "{}",
        up[0].message
    );
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
