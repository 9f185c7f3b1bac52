//! A GitLab job sees what GitLab Runner's Docker executor gives the same job: the project at
//! `/builds/<namespace>/<project>`, the server's and the merge request's variables, services'
//! health checks, submodules and `cache: untracked`.

use crate::common::busybox_project;

/// A project whose `origin` is `https://gitlab.com/acme/tools/shop.git`, one commit on `main`.
fn shop(pipeline: &str) -> crate::common::Project {
    let p = busybox_project(pipeline);
    p.git(&["init", "-q", "-b", "main"]);
    p.git(&[
        "remote",
        "add",
        "origin",
        "https://gitlab.com/acme/tools/shop.git",
    ]);
    p.git(&["add", "-A"]);
    p.git(&["commit", "-q", "-m", "first"]);
    p
}

#[test]
fn the_project_sits_at_builds_namespace_project_as_the_runner_puts_it() {
    let p = shop(
        "job:\n  script:\n    - echo \"dir=$CI_PROJECT_DIR pwd=$(pwd) name=$CI_PROJECT_NAME ns=$CI_PROJECT_NAMESPACE builds=$CI_BUILDS_DIR\"\n    - echo \"repo=$CI_REPOSITORY_URL server=$CI_SERVER_URL api=$CI_API_V4_URL\"\n    - ls $CI_PROJECT_DIR/berth.yml\n",
    );
    let run = p.berth(&["run", "--output", "plain"]);
    run.expect_code(0);
    let log = run.log("job");
    for line in [
        "dir=/builds/acme/tools/shop pwd=/builds/acme/tools/shop name=shop ns=acme/tools builds=/builds",
        "repo=https://gitlab-ci-token:[MASKED]@gitlab.com/acme/tools/shop.git server=https://gitlab.com api=https://gitlab.com/api/v4",
        "/builds/acme/tools/shop/berth.yml",
    ] {
        assert!(log.contains(&line), "{line}: {log:?}");
    }
    assert!(p.leftovers().is_empty(), "{:?}", p.leftovers());
}

#[test]
fn a_merge_request_pipeline_has_gitlabs_merge_request_variables() {
    let p = shop(
        "job:\n  rules: [{if: $CI_PIPELINE_SOURCE == \"merge_request_event\"}]\n  script:\n    - echo \"mr=$CI_MERGE_REQUEST_IID title=$CI_MERGE_REQUEST_TITLE labels=$CI_MERGE_REQUEST_LABELS\"\n    - echo \"from=$CI_MERGE_REQUEST_SOURCE_BRANCH_NAME to=$CI_MERGE_REQUEST_TARGET_BRANCH_NAME base=$CI_MERGE_REQUEST_DIFF_BASE_SHA\"\n    - echo \"shas=[$CI_MERGE_REQUEST_SOURCE_BRANCH_SHA][$CI_MERGE_REQUEST_TARGET_BRANCH_SHA] branch=[$CI_COMMIT_BRANCH] ref=$CI_COMMIT_REF_NAME\"\n",
    );
    let base = p.git(&["rev-parse", "HEAD"]);
    p.git(&["switch", "-q", "-c", "stable"]);
    p.git(&["commit", "-q", "--allow-empty", "-m", "stable moves on"]);
    p.git(&["switch", "-q", "-c", "topic", &base]);
    p.git(&["commit", "-q", "--allow-empty", "-m", "Make it faster"]);
    let run = p.berth(&[
        "run",
        "--output",
        "plain",
        "--source",
        "merge_request_event",
        "--base",
        "stable",
        "--mr-iid",
        "12",
        "--mr-label",
        "perf",
        "--mr-label",
        "backend",
    ]);
    run.expect_code(0);
    let log = run.log("job");
    let expected = [
        "mr=12 title=Make it faster labels=perf,backend".to_string(),
        format!("from=topic to=stable base={base}"),
        "shas=[][] branch=[] ref=topic".to_string(),
    ];
    for line in &expected {
        assert!(log.contains(&line.as_str()), "{line}: {log:?}");
    }
    // Without the flags: the default branch, the commit's title, no labels.
    let run = p.berth(&[
        "run",
        "--output",
        "plain",
        "--source",
        "merge_request_event",
        "--mr-title",
        "Draft: faster",
    ]);
    run.expect_code(0);
    let log = run.log("job");
    for line in [
        "mr=1 title=Draft: faster labels=".to_string(),
        format!("from=topic to=main base={base}"),
    ] {
        assert!(log.contains(&line.as_str()), "{line}: {log:?}");
    }
    assert!(p.leftovers().is_empty(), "{:?}", p.leftovers());
}

#[test]
fn a_service_is_checked_on_healthcheck_tcp_port_and_reaches_the_job_as_build() {
    crate::common::require_image("berth-test/httpd:latest");
    // The image exposes 80; this service listens on 8080 only: the runner's check of 80 would
    // time out, HEALTHCHECK_TCP_PORT points it at 8080.
    let p = busybox_project(
        "\
job:
  variables: {FF_NETWORK_PER_BUILD: \"true\"}
  services:
    - name: berth-test/httpd:latest
      alias: web
      command: [sh, -c, 'exec httpd -f -p 8080 -h /www']
      variables: {HEALTHCHECK_TCP_PORT: \"8080\"}
  script:
    - wget -q -O - http://web:8080/
    - ping -c 1 -W 5 build >/dev/null && echo build resolves
unchecked:
  services:
    - name: berth-test/httpd:latest
      alias: web
      command: [sh, -c, 'exec httpd -f -p 8080 -h /www']
  script:
    - wget -q -O - http://web:8080/
    - ping -c 1 -W 2 build >/dev/null 2>&1 || echo no build
",
    );
    let run = p.berth(&["run", "--output", "plain", "--service-timeout", "3s"]);
    run.expect_code(0);
    let job = run.log("job");
    assert!(!job.iter().any(|l| l.contains("WARNING")), "{job:?}");
    assert!(job.contains(&"<h1>berth test page</h1>"), "{job:?}");
    assert!(job.contains(&"build resolves"), "{job:?}");
    let unchecked = run.log("unchecked");
    assert!(
        unchecked.iter().any(|l| l.contains("*** WARNING:")
            && l.contains("-svc0-web probably didn't start properly.")),
        "{unchecked:?}"
    );
    assert!(
        unchecked.contains(&"<h1>berth test page</h1>"),
        "{unchecked:?}"
    );
    assert!(unchecked.contains(&"no build"), "{unchecked:?}");
    assert!(p.leftovers().is_empty(), "{:?}", p.leftovers());
}

/// A repository of one commit in a directory of its own (a submodule's origin).
fn library(dir: &std::path::Path, file: &str, sub: Option<&std::path::Path>) -> String {
    let git = |args: &[&str]| {
        let out = std::process::Command::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
            .args(["-c", "protocol.file.allow=always"])
            .args(args)
            .current_dir(dir)
            .output()
            .expect("git");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    std::fs::create_dir_all(dir).expect("dir");
    git(&["init", "-q", "-b", "main"]);
    std::fs::write(dir.join(file), "x\n").expect("write");
    if let Some(sub) = sub {
        git(&["submodule", "add", "-q", &sub.display().to_string(), "deep"]);
    }
    git(&["add", "-A"]);
    git(&["commit", "-q", "-m", file]);
    // Two commits: a submodule's depth shows.
    git(&["commit", "-q", "--allow-empty", "-m", "again"]);
    git(&["rev-parse", "HEAD"])
}

#[test]
fn git_submodule_strategy_makes_the_submodules_repositories_from_the_projects_own() {
    crate::common::require_image("berth-test/python-git:3.11");
    let p = shop(
        "\
default:
  image: berth-test/python-git:3.11
recursive:
  variables: {GIT_SUBMODULE_STRATEGY: recursive, GIT_SUBMODULE_DEPTH: \"1\"}
  script:
    - echo lib commits=$(git -C lib rev-list --count HEAD)
    - echo lib=$(git -C lib rev-parse HEAD) deep=$(git -C lib/deep rev-parse HEAD)
    - echo url=$(git -C lib remote get-url origin)
    - echo status=[$(git status --porcelain)]
    - git submodule status --recursive | cut -c1 | tr -d '\\n'; echo ' marks'
normal:
  variables: {GIT_SUBMODULE_STRATEGY: normal}
  script:
    - echo lib=$(git -C lib rev-parse HEAD)
    - git -C lib submodule status | cut -c1 | sed 's/^/deep mark /'
excluded:
  variables: {GIT_SUBMODULE_STRATEGY: normal, GIT_SUBMODULE_PATHS: ':(exclude)lib'}
  script:
    - git submodule status | cut -c1 | sed 's/^/lib mark /'
none:
  script:
    - git submodule status | cut -c1 | sed 's/^/lib mark /'
",
    );
    let others = tempfile::tempdir().expect("temp dir");
    let deep = others.path().join("deep");
    let deep_head = library(&deep, "deep.txt", None);
    let lib = others.path().join("lib");
    let lib_head = library(&lib, "lib.txt", Some(&deep));
    let add = |args: &[&str]| {
        let mut all = vec!["-c", "protocol.file.allow=always"];
        all.extend(args);
        p.git(&all)
    };
    add(&["submodule", "add", "-q", &lib.display().to_string(), "lib"]);
    add(&["submodule", "update", "-q", "--init", "--recursive"]);
    // A URL relative to the project's, as GitLab projects often have them.
    p.git(&[
        "config",
        "-f",
        ".gitmodules",
        "submodule.lib.url",
        "../lib.git",
    ]);
    p.git(&["add", "-A"]);
    p.git(&["commit", "-q", "-m", "lib"]);
    let run = p.berth(&["run", "--output", "plain"]);
    run.expect_code(0);
    let log = run.log("recursive");
    for line in [
        "lib commits=1".to_string(),
        format!("lib={lib_head} deep={deep_head}"),
        "url=https://gitlab.com/acme/tools/lib.git".to_string(),
        "status=[]".to_string(),
        "   marks".to_string(),
    ] {
        assert!(log.contains(&line.as_str()), "{line}: {log:?}");
    }
    let normal = run.log("normal");
    assert!(
        normal.contains(&format!("lib={lib_head}").as_str()),
        "{normal:?}"
    );
    // `-`: a submodule not initialized.
    assert!(normal.contains(&"deep mark -"), "{normal:?}");
    assert!(
        run.log("excluded").contains(&"lib mark -"),
        "{:?}",
        run.log("excluded")
    );
    assert!(
        run.log("none").contains(&"lib mark -"),
        "{:?}",
        run.log("none")
    );
    assert!(p.leftovers().is_empty(), "{:?}", p.leftovers());
}

#[test]
fn the_checkout_is_writable_by_all_as_the_runners_umask_0000_leaves_it() {
    crate::common::require_image("berth-test/python-git:3.11");
    let p = shop(
        "\
default:
  image: berth-test/python-git:3.11
job:
  script:
    - echo modes=$(stat -c %a berth.yml run.sh . .git/HEAD)
    # A job whose image runs as another user writes the checkout as on GitLab.
    - su nobody -s /bin/sh -c 'echo hi > new.txt && echo more >> berth.yml && touch .git/mine' && echo nobody wrote
git_modes:
  variables: {FF_DISABLE_UMASK_FOR_DOCKER_EXECUTOR: \"true\"}
  script:
    - echo git=$(stat -c %a .git/HEAD)
",
    );
    p.write("run.sh", "#!/bin/sh\n");
    p.git(&["add", "-A"]);
    p.git(&["commit", "-q", "-m", "script"]);
    let run = p.berth(&["run", "--output", "plain"]);
    run.expect_code(0);
    let log = run.log("job");
    for line in ["modes=666 777 777 666", "nobody wrote"] {
        assert!(log.contains(&line), "{line}: {log:?}");
    }
    let git = run.log("git_modes");
    assert!(git.contains(&"git=644"), "{git:?}");
    assert!(p.leftovers().is_empty(), "{:?}", p.leftovers());
}
