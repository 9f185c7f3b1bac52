//! The `.git` of a job's workspace, as a CI runner's checkout leaves it: a repository whose HEAD
//! is the pipeline's commit, holding its history to a depth, the tags that point into that
//! history, and an `origin` remote. It is made on the host from the project's own repository
//! (a shallow fetch over the `file://` transport: only the objects the depth needs are copied,
//! and nothing of the project's repository is touched), once per run and depth, and reaches
//! each job with the working tree over it: uncommitted edits show in `git status` there.

use std::path::Path;
use std::process::Command;

/// A checkout's git side, as the format asks for it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Repository {
    /// Commits of history (0: all of it).
    pub depth: u32,
    /// The pipeline's branch: fetched as `origin/<branch>` when the project has it.
    pub branch: Option<String>,
    /// HEAD on that branch, tracking `origin/<branch>` (GitHub's checkout of a branch); else
    /// detached at the commit (GitLab Runner's).
    pub attached: bool,
    /// The `origin` remote's URL (`None`: no remote).
    pub remote: Option<String>,
    /// The commit is checked out (GitLab's `GIT_CHECKOUT: "false"`: fetched only, HEAD unborn
    /// and the working tree empty, as a fresh clone that skips the checkout leaves it).
    pub check_out: bool,
}

/// Why a repository cannot be made: git's own words.
#[derive(Debug)]
pub struct Failed(pub String);

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Is `project` the top of a git repository with a commit at HEAD (a checkout can be made)?
pub fn can_check_out(project: &Path) -> bool {
    let top = git(project, None, &["rev-parse", "--show-toplevel"]);
    let head = git(
        project,
        None,
        &["rev-parse", "--verify", "-q", "HEAD^{commit}"],
    );
    match (top, head, project.canonicalize()) {
        (Ok(top), Ok(_), Ok(project)) => Path::new(top.trim()).canonicalize().ok() == Some(project),
        _ => false,
    }
}

/// Make, in the empty directory `dest`, the repository of a checkout of `commit` of the
/// repository at `project`: `dest` becomes what a checkout's `.git` is.
pub fn make(project: &Path, commit: &str, repo: &Repository, dest: &Path) -> Result<(), Failed> {
    let run = |args: &[&str]| git(dest, Some(dest), args);
    run(&["init", "-q", "--bare"])?;
    run(&["config", "core.bare", "false"])?;
    run(&[
        "remote",
        "add",
        "origin",
        &format!("file://{}", project.display()),
    ])?;
    // The commit under a ref of its own, as GitLab Runner fetches it, and the branch if the
    // project has it; the tags that point into what is fetched follow (git's default).
    let mut refspecs = vec![format!("+{commit}:refs/pipelines/checkout")];
    let branch = repo.branch.as_deref().filter(|b| {
        git(
            project,
            None,
            &["show-ref", "--verify", "-q", &format!("refs/heads/{b}")],
        )
        .is_ok()
    });
    if let Some(b) = branch {
        refspecs.push(format!("+refs/heads/{b}:refs/remotes/origin/{b}"));
    }
    let depth = format!("--depth={}", repo.depth);
    let mut fetch = vec![
        // A commit asked for by its ID, from the user's repository: allowed for this fetch.
        "-c",
        "uploadpack.allowAnySHA1InWant=true",
        "-c",
        "protocol.file.allow=always",
        "fetch",
        "-q",
        "--no-recurse-submodules",
    ];
    if repo.depth > 0 {
        fetch.push(&depth);
    }
    fetch.push("origin");
    fetch.extend(refspecs.iter().map(String::as_str));
    run(&fetch)?;
    if !repo.check_out {
        // Fetched, not checked out: the commit stays reachable by its ref for a later
        // `git checkout`.
        return set_remote(&run, repo);
    }
    match (repo.attached, branch) {
        (true, Some(b)) => {
            run(&["update-ref", &format!("refs/heads/{b}"), commit])?;
            run(&["symbolic-ref", "HEAD", &format!("refs/heads/{b}")])?;
            run(&["config", &format!("branch.{b}.remote"), "origin"])?;
            run(&[
                "config",
                &format!("branch.{b}.merge"),
                &format!("refs/heads/{b}"),
            ])?;
        }
        _ => {
            run(&["update-ref", "--no-deref", "HEAD", commit])?;
        }
    }
    run(&["update-ref", "-d", "refs/pipelines/checkout"])?;
    // The index of HEAD: the working tree laid over it shows what is not committed.
    run(&["read-tree", "HEAD"])?;
    set_remote(&run, repo)
}

/// `origin` as the checkout names it, in place of the project it was fetched from.
fn set_remote(
    run: &dyn Fn(&[&str]) -> Result<String, Failed>,
    repo: &Repository,
) -> Result<(), Failed> {
    match &repo.remote {
        Some(remote) => run(&["remote", "set-url", "origin", remote])?,
        None => run(&["remote", "remove", "origin"])?,
    };
    Ok(())
}

/// Run git in `dir` (on the repository `git_dir` when given), its output or its complaint.
fn git(dir: &Path, git_dir: Option<&Path>, args: &[&str]) -> Result<String, Failed> {
    let mut command = Command::new("git");
    command
        .args(args)
        .current_dir(dir)
        // The machine's settings and prompts have no place in a checkout.
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_TERMINAL_PROMPT", "0");
    if let Some(git_dir) = git_dir {
        command.env("GIT_DIR", git_dir);
    }
    let out = command
        .output()
        .map_err(|e| Failed(format!("cannot run git: {e}")))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(Failed(format!(
            "git {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}
