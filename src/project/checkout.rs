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
    /// Which submodules get a repository of their own.
    pub submodules: Submodules,
    /// Every file writable by all, as GitLab Runner's checkout under umask 0000 leaves them.
    pub writable: bool,
}

/// GitLab's `GIT_SUBMODULE_STRATEGY` and `GIT_SUBMODULE_PATHS`: which submodules are made
/// repositories (at the commit the pipeline's commit records), from the project's own
/// checkouts of them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Submodules {
    pub strategy: SubmoduleStrategy,
    /// Pathspecs: a path, or `:(exclude)path` / `:!path` (none: every submodule).
    pub paths: Vec<String>,
    /// Commits of each submodule's history (`GIT_SUBMODULE_DEPTH`; none: the checkout's).
    pub depth: Option<u32>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SubmoduleStrategy {
    #[default]
    None,
    /// The top-level submodules.
    Normal,
    /// Their submodules too, all the way down.
    Recursive,
}

impl Submodules {
    /// Does the pathspec list pick the submodule at `path`?
    fn picks(&self, path: &str) -> bool {
        let under = |spec: &str| {
            let spec = spec.trim_end_matches('/');
            path == spec || path.starts_with(&format!("{spec}/"))
        };
        let (excludes, includes): (Vec<&str>, Vec<&str>) = self
            .paths
            .iter()
            .map(String::as_str)
            .partition(|p| p.starts_with(":(exclude)") || p.starts_with(":!"));
        let excluded = excludes
            .iter()
            .any(|p| under(p.trim_start_matches(":(exclude)").trim_start_matches(":!")));
        !excluded && (includes.is_empty() || includes.iter().any(|p| under(p)))
    }
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

/// A file of the checkout's working tree that its repository needs: a submodule's `.git`,
/// which names the submodule's repository inside the project's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitFile {
    /// From the project's directory (`lib/.git`).
    pub path: String,
    pub text: String,
}

/// Make, in the empty directory `dest`, the repository of a checkout of `commit` of the
/// repository at `project`: `dest` becomes what a checkout's `.git` is. Returns the `.git`
/// files its submodules need in the working tree.
pub fn make(
    project: &Path,
    commit: &str,
    repo: &Repository,
    dest: &Path,
) -> Result<Vec<GitFile>, Failed> {
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
        set_remote(&run, repo)?;
        return Ok(Vec::new());
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
    set_remote(&run, repo)?;
    let mut files = Vec::new();
    if repo.submodules.strategy != SubmoduleStrategy::None {
        let recursive = repo.submodules.strategy == SubmoduleStrategy::Recursive;
        let base = repo.remote.clone();
        let depth = repo.submodules.depth.unwrap_or(repo.depth);
        let top = Superproject {
            dir: project,
            commit,
            git_dir: dest,
            path: "",
            remote: base,
            depth,
        };
        submodules(&top, dest, &repo.submodules, recursive, &mut files)?;
    }
    Ok(files)
}

/// Make the repositories of the submodules `commit` records, as `git submodule update --init`
/// leaves them: each in `git_dir/modules/<name>`, HEAD detached at the recorded commit, its
/// index that commit's, `origin` its URL, and registered in `git_dir`'s config. `top` is the
/// superproject's path from the job's project directory; the source of each is the project's
/// own checkout of the submodule (one the project has not checked out stays as it is).
/// `top_git` is the project's `.git`, which every module's files are found from.
fn submodules(
    sup: &Superproject<'_>,
    top_git: &Path,
    picked: &Submodules,
    recursive: bool,
    files: &mut Vec<GitFile>,
) -> Result<(), Failed> {
    let (project, commit, git_dir, top) = (sup.dir, sup.commit, sup.git_dir, sup.path);
    let at = |args: &[&str]| git(project, None, args);
    let Ok(listed) = at(&[
        "config",
        "--blob",
        &format!("{commit}:.gitmodules"),
        "--get-regexp",
        r"^submodule\..*\.path$",
    ]) else {
        // No .gitmodules in that commit: no submodules.
        return Ok(());
    };
    for line in listed.lines() {
        let Some((key, path)) = line.split_once(' ') else {
            continue;
        };
        let Some(name) = key
            .strip_prefix("submodule.")
            .and_then(|k| k.strip_suffix(".path"))
        else {
            continue;
        };
        // A name or path that would leave the repository is refused, as git refuses it.
        let inside = |p: &str| {
            !p.is_empty()
                && !p.starts_with('/')
                && p.split('/').all(|part| part != ".." && part != ".")
        };
        if !inside(name) || !inside(path) {
            continue;
        }
        let full = if top.is_empty() {
            path.to_string()
        } else {
            format!("{top}/{path}")
        };
        if !picked.picks(&full) {
            continue;
        }
        // The commit the superproject records for it (a gitlink).
        let entry = at(&["ls-tree", commit, "--", path])?;
        let fields: Vec<&str> = entry.split_whitespace().collect();
        let sha = match fields.as_slice() {
            [_, "commit", sha, ..] => sha.to_string(),
            _ => continue,
        };
        let source = project.join(path);
        if !source.join(".git").exists() {
            continue;
        }
        let source_git = git(&source, None, &["rev-parse", "--absolute-git-dir"])?;
        let url = at(&[
            "config",
            "--blob",
            &format!("{commit}:.gitmodules"),
            &format!("submodule.{name}.url"),
        ])
        .map(|u| resolve_url(u.trim(), sup.remote.as_deref()))
        .unwrap_or_default();
        let module = git_dir.join("modules").join(name);
        std::fs::create_dir_all(&module)
            .map_err(|e| Failed(format!("cannot make {}: {e}", module.display())))?;
        let run = |args: &[&str]| git(&module, Some(&module), args);
        run(&["init", "-q", "--bare"])?;
        run(&["config", "core.bare", "false"])?;
        run(&[
            "remote",
            "add",
            "origin",
            &format!("file://{}", source_git.trim()),
        ])?;
        let depth = format!("--depth={}", sup.depth);
        let refspec = format!("+{sha}:refs/pipelines/checkout");
        let mut fetch = vec![
            "-c",
            "uploadpack.allowAnySHA1InWant=true",
            "-c",
            "protocol.file.allow=always",
            "fetch",
            "-q",
            "--no-recurse-submodules",
            "--no-tags",
        ];
        if sup.depth > 0 {
            fetch.push(&depth);
        }
        fetch.extend(["origin", refspec.as_str()]);
        run(&fetch)?;
        run(&["update-ref", "--no-deref", "HEAD", &sha])?;
        run(&["update-ref", "-d", "refs/pipelines/checkout"])?;
        run(&["read-tree", "HEAD"])?;
        if url.is_empty() {
            run(&["remote", "remove", "origin"])?;
        } else {
            run(&["remote", "set-url", "origin", &url])?;
        }
        // Written as files: git in a repository whose worktree is not on the host would fail.
        let config = |file: &Path, key: &str, value: &str| {
            let file = file.join("config").display().to_string();
            git(project, None, &["config", "-f", &file, key, value])
        };
        let up = "../".repeat(module_depth(top_git, &module));
        config(&module, "core.worktree", &format!("{up}{full}"))?;
        let within = module.strip_prefix(top_git).unwrap_or(&module).display();
        files.push(GitFile {
            path: format!("{full}/.git"),
            text: format!(
                "gitdir: {}.git/{within}\n",
                "../".repeat(full.split('/').count())
            ),
        });
        config(git_dir, &format!("submodule.{name}.url"), &url)?;
        config(git_dir, &format!("submodule.{name}.active"), "true")?;
        if recursive {
            let inner = Superproject {
                dir: &source,
                commit: &sha,
                git_dir: &module,
                path: &full,
                remote: (!url.is_empty()).then(|| url.clone()),
                depth: sup.depth,
            };
            submodules(&inner, top_git, picked, true, files)?;
        }
    }
    Ok(())
}

/// A repository whose submodules are made: the project or, recursively, a submodule.
struct Superproject<'a> {
    /// Its files on the host (their submodules' checkouts are the sources).
    dir: &'a Path,
    commit: &'a str,
    /// Its repository in the checkout being made.
    git_dir: &'a Path,
    /// Its path from the project's directory (`""`: the project).
    path: &'a str,
    /// Its `origin`, which relative submodule URLs are resolved against.
    remote: Option<String>,
    /// Commits of history of its submodules (0: all).
    depth: u32,
}

/// How many directories `module` lies below the project's directory, whose repository is
/// `top_git` (`.git/modules/a` is 3 below it; `.git/modules/a/modules/b` 5).
fn module_depth(top_git: &Path, module: &Path) -> usize {
    module
        .strip_prefix(top_git)
        .map(|rel| rel.components().count())
        .unwrap_or(0)
        + 1
}

/// A submodule's URL as `git submodule` resolves it: relative ones (`../other.git`) against
/// the superproject's remote.
fn resolve_url(url: &str, base: Option<&str>) -> String {
    if !(url.starts_with("./") || url.starts_with("../")) {
        return url.to_string();
    }
    let Some(base) = base else {
        return url.to_string();
    };
    let mut out = base.trim_end_matches('/').to_string();
    for part in url.split('/') {
        match part {
            "." => {}
            ".." => {
                if let Some(i) = out.rfind('/') {
                    out.truncate(i);
                }
            }
            p => {
                out.push('/');
                out.push_str(p);
            }
        }
    }
    out
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn submodule_paths_are_pathspecs() {
        let picks = |paths: &[&str], path: &str| {
            Submodules {
                strategy: SubmoduleStrategy::Normal,
                paths: paths.iter().map(|p| p.to_string()).collect(),
                depth: None,
            }
            .picks(path)
        };
        assert!(picks(&[], "lib"));
        assert!(picks(&["lib"], "lib"));
        assert!(picks(&["vendor/"], "vendor/a"));
        assert!(!picks(&["lib"], "library"));
        assert!(!picks(&[":(exclude)lib"], "lib"));
        assert!(picks(&[":(exclude)lib"], "other"));
        assert!(!picks(&["vendor", ":!vendor/big"], "vendor/big"));
        assert!(picks(&["vendor", ":!vendor/big"], "vendor/small"));
    }

    #[test]
    fn relative_submodule_urls_follow_the_superprojects() {
        let base = Some("https://gitlab.com/acme/tools/shop.git");
        assert_eq!(
            resolve_url("../lib.git", base),
            "https://gitlab.com/acme/tools/lib.git"
        );
        assert_eq!(
            resolve_url("../../other/lib.git", base),
            "https://gitlab.com/acme/other/lib.git"
        );
        assert_eq!(
            resolve_url("./sub.git", base),
            "https://gitlab.com/acme/tools/shop.git/sub.git"
        );
        assert_eq!(resolve_url("https://x/y.git", base), "https://x/y.git");
        assert_eq!(resolve_url("../lib.git", None), "../lib.git");
    }
}
