//! A job's workspace as a CI checkout leaves it: a `.git` whose HEAD is the pipeline's commit,
//! with history to the depth asked for, the tags within it and the `origin` remote, and the
//! uncommitted edits over it; `git describe` and setuptools_scm work as under GitLab Runner and
//! GitHub's checkout.

use crate::common::{require_image, Project};

/// The Python image with git and setuptools-scm (images/build.sh).
const PYTHON_GIT: &str = "berth-test/python-git:3.11";

/// A repository of three commits, `v1.0` on the second, and an edit not committed.
fn repository(files: &[(&str, &str)]) -> (Project, String) {
    let p = Project::new(files);
    p.write("a.txt", "x\n");
    p.git(&["init", "-q", "-b", "main"]);
    p.git(&[
        "remote",
        "add",
        "origin",
        "https://gitlab.com/acme/shop.git",
    ]);
    p.git(&["add", "-A"]);
    for i in 1..=3 {
        p.git(&["commit", "-q", "--allow-empty", "-m", &format!("c{i}")]);
        if i == 2 {
            p.git(&["tag", "v1.0"]);
        }
    }
    p.write("a.txt", "x\nedited\n");
    let head = p.git(&["rev-parse", "HEAD"]);
    (p, head)
}

#[test]
fn a_gitlab_job_has_the_runners_checkout_and_its_git_depth() {
    require_image(PYTHON_GIT);
    let (p, head) = repository(&[(
        "berth.yml",
        "\
default:
  image: berth-test/python-git:3.11
job:
  script:
    - git rev-parse HEAD
    - git symbolic-ref -q HEAD || echo detached
    - git describe --tags --dirty
    - git status --porcelain
    - python3 -m setuptools_scm 2>/dev/null
    - git remote get-url origin
    - echo commits=$(git rev-list --count HEAD)
shallow:
  variables: {GIT_DEPTH: \"2\"}
  script:
    - echo commits=$(git rev-list --count HEAD) shallow=$(git rev-parse --is-shallow-repository)
none:
  variables: {GIT_STRATEGY: none}
  script:
    - echo entries=$(ls -A | wc -l)
fetched:
  variables: {GIT_CHECKOUT: \"false\"}
  script:
    - echo entries=$(ls -A)
    - git checkout -q $CI_COMMIT_SHA
    - echo after=$(ls -A | tr '\\n' ' ')
",
    )]);
    let run = p.berth(&["run", "--output", "plain"]);
    run.expect_code(0);
    let log = run.log("job");
    let short = &head[..7];
    for line in [
        head.as_str(),
        "detached",
        &format!("v1.0-1-g{short}-dirty"),
        " M a.txt",
        "https://gitlab.com/acme/shop.git",
        "commits=3",
    ] {
        assert!(log.contains(&line), "{line}: {log:?}");
    }
    // setuptools_scm: the next version after v1.0, one commit on, dirty (a date suffix).
    assert!(
        log.iter()
            .any(|l| l.starts_with(&format!("1.1.dev1+g{short}.d"))),
        "{log:?}"
    );
    assert!(
        run.log("shallow").contains(&"commits=2 shallow=true"),
        "{:?}",
        run.log("shallow")
    );
    assert!(
        run.log("none").contains(&"entries=0"),
        "{:?}",
        run.log("none")
    );
    // GIT_CHECKOUT false: fetched, nothing checked out, until the script does it.
    let fetched = run.log("fetched");
    assert!(fetched.contains(&"entries=.git"), "{fetched:?}");
    assert!(
        fetched
            .iter()
            .any(|l| l.starts_with("after=.git ") && l.contains("a.txt")),
        "{fetched:?}"
    );
    // The project's own repository is untouched.
    assert_eq!(p.git(&["status", "--porcelain", "--", "a.txt"]), "M a.txt");
    assert!(p.leftovers().is_empty(), "{:?}", p.leftovers());
}

#[test]
fn a_github_checkout_is_on_the_branch_with_its_fetch_depth() {
    require_image(PYTHON_GIT);
    let (p, head) = repository(&[(
        ".github/workflows/ci.yml",
        "\
on: push
jobs:
  one:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
      - run: echo branch=$(git branch --show-current) commits=$(git rev-list --count HEAD) head=$(git rev-parse HEAD)
  full:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
        with: {fetch-depth: 0}
      - run: echo commits=$(git rev-list --count HEAD) tag=$(git describe --tags --abbrev=0)
",
    )]);
    let platform = format!("ubuntu-latest={PYTHON_GIT}");
    let run = p.berth(&["run", "--platform", &platform]);
    run.expect_code(0);
    let expected = format!("branch=main commits=1 head={head}");
    assert!(
        run.log("one").contains(&expected.as_str()),
        "{:?}",
        run.log("one")
    );
    assert!(
        run.log("full").contains(&"commits=3 tag=v1.0"),
        "{:?}",
        run.log("full")
    );
    assert!(p.leftovers().is_empty(), "{:?}", p.leftovers());
}
