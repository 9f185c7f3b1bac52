//! A stand-in for github.com in the tests of remote actions and workflows: a folder of bare
//! repositories, `<server>/github/<owner>/<name>`, served over `file://` as `BERTH_ACTIONS_URL`.

use std::path::Path;
use std::process::Command;

/// `git ARGS` in `dir`, committing as a fixed author; what it printed.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .output()
        .expect("git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The files in `src` committed (a repository made if there is none) and tagged `tag`: the
/// commit.
pub fn commit_and_tag(src: &Path, tag: &str) -> String {
    if !src.join(".git").exists() {
        git(src, &["init", "-q", "-b", "main"]);
    }
    git(src, &["add", "."]);
    git(src, &["commit", "-q", "-m", tag]);
    git(src, &["tag", "-f", tag]);
    git(src, &["rev-parse", "HEAD"])
}

/// The repository `src` served as `owner/name` under `server`: the URL for `BERTH_ACTIONS_URL`.
pub fn serve(server: &Path, src: &Path, owner: &str, name: &str) -> String {
    let dir = server.join("github").join(owner);
    std::fs::create_dir_all(&dir).expect("server folder");
    git(
        &dir,
        &["clone", "-q", "--bare", src.to_str().expect("utf-8"), name],
    );
    format!("file://{}", server.join("github").display())
}
