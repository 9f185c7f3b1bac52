//! `include` of local files (wildcards, nested, rules) and `spec: inputs`.

use std::path::Path;

use super::*;

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
