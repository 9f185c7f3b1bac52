//! A stand-in for github.com in the tests of remote actions and workflows: a folder of bare
//! repositories, `<server>/github/<owner>/<name>`, served over `file://` as `BERTH_ACTIONS_URL`.

use std::path::Path;

pub use crate::common::git_in as git;

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
