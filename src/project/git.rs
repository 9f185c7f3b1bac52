//! What berth reads from git about the project and the run: the commit, the branch or tag, the
//! `origin` remote, whether the tree is dirty ([`Facts`]), and which files changed against a
//! base (`rules: changes`, [`GitChanges`]). GitLab and GitHub take these from the event that
//! started a pipeline; berth takes them from git, overridden by the command line.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::paths::slug;

/// Where the pipeline runs for: GitLab takes branch, tag and source from the event that
/// started it; berth from git, overridden by `--branch`, `--tag` and `--source`.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    pub branch: Option<String>,
    pub tag: Option<String>,
    pub source: Option<String>,
    /// The push's before-commit, as the user names it (`--before`).
    pub before: Option<String>,
}

/// Facts about the project and the run that the predefined variables carry.
#[derive(Debug, Clone)]
pub struct Facts {
    pub project_dir: PathBuf,
    pub project_name: String,
    /// Where the project sits inside every job's container (CI_PROJECT_DIR).
    pub container_dir: String,
    pub commit_sha: String,
    pub ref_name: String,
    pub pipeline_id: u64,
    /// Uncommitted changes when the run started.
    pub dirty: bool,
    /// The pipeline's branch (none for tag and merge request pipelines).
    pub branch: Option<String>,
    pub tag: Option<String>,
    /// CI_PIPELINE_SOURCE: push, merge_request_event, schedule, web, ...
    pub source: String,
    pub default_branch: String,
    pub commit_message: String,
    pub commit_timestamp: String,
    pub commit_author: String,
    /// The commit's time in seconds since the epoch (SOURCE_DATE_EPOCH of hermetic runs).
    pub commit_epoch: Option<u64>,
    /// `group/project` from the `origin` remote (else the directory's name).
    pub project_path: String,
    /// The GitLab host from the `origin` remote (else `gitlab.example.com`).
    pub server_host: String,
    /// What a push of the commit would have been sent on top of: the upstream branch's tip,
    /// else the parent commit, else forty zeros (then `changes:` hold, as on GitLab).
    pub before_sha: String,
}

impl Facts {
    pub fn new(project_dir: &Path, pipeline_id: u64) -> Facts {
        Facts::with_origin(project_dir, pipeline_id, &Origin::default())
    }

    pub fn with_origin(project_dir: &Path, pipeline_id: u64, origin: &Origin) -> Facts {
        let project_name = project_dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "project".into());
        let slug = slug(&project_name);
        let git = |args: &[&str]| -> Option<String> {
            let out = Command::new("git")
                .args(args)
                .current_dir(project_dir)
                .output()
                .ok()?;
            out.status
                .success()
                .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
                .filter(|s| !s.is_empty())
        };
        // Outside a repository there is nothing to ask git; inside, one status call tells the
        // commit, the branch and whether the tree is dirty, and one log call the message.
        let in_repo = in_git_repo(project_dir);
        let status = in_repo
            // berth's own folder never makes the tree dirty, .gitignore or not.
            .then(|| {
                git(&[
                    "status",
                    "--porcelain=v2",
                    "--branch",
                    "--",
                    ":(exclude).berth",
                ])
            })
            .flatten();
        let facts = status.as_deref().map(parse_status).unwrap_or_default();
        let commit_sha = facts.oid.clone().unwrap_or_else(|| "0".repeat(40));
        let (commit_epoch, commit_timestamp, commit_author, commit_message) = match facts.oid {
            Some(_) => {
                let log =
                    git(&["log", "-1", "--format=%ct%n%cI%n%an <%ae>%n%B"]).unwrap_or_default();
                let mut lines = log.splitn(4, '\n');
                (
                    lines.next().and_then(|t| t.parse().ok()),
                    lines.next().unwrap_or_default().to_string(),
                    lines.next().unwrap_or_default().to_string(),
                    lines.next().unwrap_or_default().to_string(),
                )
            }
            None => Default::default(),
        };
        let git_dir = project_dir
            .ancestors()
            .map(|d| d.join(".git"))
            .find(|d| d.is_dir());
        let (project_path, server_host) = git_dir
            .as_deref()
            .and_then(origin_url)
            .and_then(|u| parse_remote(&u))
            .map(|(host, path)| (path, host))
            .unwrap_or_else(|| (project_name.clone(), "gitlab.example.com".into()));
        let default_branch = git_dir
            .as_deref()
            .and_then(|d| std::fs::read_to_string(d.join("refs/remotes/origin/HEAD")).ok())
            .and_then(|t| {
                t.trim()
                    .strip_prefix("ref: refs/remotes/origin/")
                    .map(String::from)
            })
            .unwrap_or_else(|| "main".into());
        let (branch, tag) = match (&origin.branch, &origin.tag) {
            (_, Some(tag)) => (None, Some(tag.clone())),
            (Some(b), None) => (Some(b.clone()), None),
            (None, None) => match facts.head {
                Some(branch) => (Some(branch), None),
                None if status.is_some() => match git(&["describe", "--tags", "--exact-match"]) {
                    Some(t) => (None, Some(t)),
                    None => (Some("HEAD".into()), None),
                },
                None => (Some(default_branch.clone()), None),
            },
        };
        let ref_name = tag.clone().or_else(|| branch.clone()).unwrap_or_default();
        let commit =
            |rev: &str| git(&["rev-parse", "--verify", "-q", &format!("{rev}^{{commit}}")]);
        let before_sha = match (&origin.before, status.is_some()) {
            (_, false) => None,
            (Some(rev), true) => commit(rev),
            // A pushed branch's upstream is its tip already: then the parent, as a push of
            // the one commit would have it.
            (None, true) => commit("@{upstream}")
                .filter(|u| *u != commit_sha)
                .or_else(|| commit("HEAD~1")),
        }
        .unwrap_or_else(|| "0".repeat(40));
        let source = origin.source.clone().unwrap_or_else(|| "push".into());
        Facts {
            project_dir: project_dir.to_path_buf(),
            container_dir: format!("/builds/{slug}"),
            project_name,
            commit_sha,
            ref_name,
            pipeline_id,
            dirty: facts.dirty,
            branch,
            tag,
            source,
            default_branch,
            commit_message,
            commit_timestamp,
            commit_author,
            commit_epoch,
            project_path,
            server_host,
            before_sha,
        }
    }

    /// What `rules: changes` compares, from git.
    pub fn changes(&self) -> GitChanges {
        GitChanges {
            dir: self.project_dir.clone(),
            before: self.before_sha.clone(),
            merge_request: self.source == "merge_request_event",
            default_branch: self.default_branch.clone(),
            cache: Default::default(),
        }
    }

    /// What a GitHub pull request's path filters compare: the working tree against the merge
    /// base of HEAD and `base` (GitHub's three-dot diff for pull requests).
    pub fn changes_against(&self, base: &str) -> GitChanges {
        GitChanges {
            dir: self.project_dir.clone(),
            before: self.before_sha.clone(),
            merge_request: true,
            default_branch: base.to_string(),
            cache: Default::default(),
        }
    }
}

/// The files a change touched, as `rules: changes` compares them.
pub trait ChangedFiles: Send + Sync {
    /// Paths (relative, `/`-separated) changed against `compare_to` (a ref), or against
    /// GitLab's default base when `None`. `Ok(None)`: there is nothing to compare with (a new
    /// branch, no parent commit), and GitLab then treats `changes` as true.
    fn changed(&self, compare_to: Option<&str>) -> Result<Option<Vec<String>>, String>;
}

/// `rules: changes` read from git: the working tree (committed or not, untracked files too)
/// against the previous commit, the default branch for merge requests, or `compare_to`.
pub struct GitChanges {
    dir: PathBuf,
    /// A push's before-commit (forty zeros: none, and `changes:` hold).
    before: String,
    merge_request: bool,
    default_branch: String,
    cache: std::sync::Mutex<HashMap<Option<String>, Option<Vec<String>>>>,
}

impl ChangedFiles for GitChanges {
    fn changed(&self, compare_to: Option<&str>) -> Result<Option<Vec<String>>, String> {
        let key = compare_to.map(String::from);
        if let Some(hit) = self.cache.lock().ok().and_then(|c| c.get(&key).cloned()) {
            return Ok(hit);
        }
        if !in_git_repo(&self.dir) {
            return Ok(None);
        }
        let git = |args: &[&str]| -> Option<String> {
            let out = Command::new("git")
                .args(args)
                .current_dir(&self.dir)
                .output()
                .ok()?;
            out.status
                .success()
                .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
        };
        let base = match compare_to {
            Some(r) => Some(
                git(&[
                    "rev-parse",
                    "--verify",
                    "--quiet",
                    &format!("{r}^{{commit}}"),
                ])
                .ok_or_else(|| format!("`compare_to: {r}` is not a ref in this repository"))?,
            ),
            None if self.merge_request => {
                let target = [
                    format!("origin/{}", self.default_branch),
                    self.default_branch.clone(),
                ]
                .into_iter()
                .find_map(|t| git(&["merge-base", "HEAD", &t]));
                target
            }
            None if self.before.bytes().all(|b| b == b'0') => None,
            None => Some(self.before.clone()),
        };
        let result = match base {
            None => None,
            Some(base) => {
                let base = base.trim();
                let mut files: Vec<String> = git(&["diff", "--name-only", base])
                    .unwrap_or_default()
                    .lines()
                    .map(String::from)
                    .collect();
                files.extend(
                    git(&["ls-files", "--others", "--exclude-standard"])
                        .unwrap_or_default()
                        .lines()
                        .map(String::from),
                );
                Some(files)
            }
        };
        if let Ok(mut c) = self.cache.lock() {
            c.insert(key, result.clone());
        }
        Ok(result)
    }
}

/// A fixed list of changed files (tests).
pub struct ChangedList(pub Option<Vec<String>>);

impl ChangedFiles for ChangedList {
    fn changed(&self, _compare_to: Option<&str>) -> Result<Option<Vec<String>>, String> {
        Ok(self.0.clone())
    }
}

/// The `origin` remote's URL, read from `.git/config` (no git process).
fn origin_url(git_dir: &Path) -> Option<String> {
    let config = std::fs::read_to_string(git_dir.join("config")).ok()?;
    let mut in_origin = false;
    for line in config.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_origin = line == "[remote \"origin\"]";
        } else if in_origin {
            if let Some(url) = line.strip_prefix("url") {
                return Some(url.trim_start().trim_start_matches('=').trim().to_string());
            }
        }
    }
    None
}

/// (host, `group/project`) from `https://host/group/project.git` or `git@host:group/project.git`.
fn parse_remote(url: &str) -> Option<(String, String)> {
    let rest = match url.split_once("://") {
        Some((_, rest)) => rest.to_string(),
        None => url.replacen(':', "/", 1),
    };
    let rest = rest
        .rsplit_once('@')
        .map(|(_, r)| r.to_string())
        .unwrap_or(rest);
    let (host, path) = rest.split_once('/')?;
    let host = host.split(':').next().unwrap_or(host);
    let path = path.trim_end_matches('/').trim_end_matches(".git");
    (!host.is_empty() && !path.is_empty()).then(|| (host.to_string(), path.to_string()))
}

/// Is `dir` inside a git work tree? (Looks for `.git` upwards; starts no process.)
pub fn in_git_repo(dir: &Path) -> bool {
    dir.ancestors().any(|d| d.join(".git").exists())
}

#[derive(Debug, Default, PartialEq, Eq)]
struct GitFacts {
    oid: Option<String>,
    head: Option<String>,
    dirty: bool,
}

/// Read `git status --porcelain=v2 --branch`.
fn parse_status(text: &str) -> GitFacts {
    let mut facts = GitFacts::default();
    for line in text.lines() {
        if let Some(oid) = line.strip_prefix("# branch.oid ") {
            facts.oid = (oid != "(initial)").then(|| oid.to_string());
        } else if let Some(head) = line.strip_prefix("# branch.head ") {
            facts.head = (head != "(detached)").then(|| head.to_string());
        } else if !line.starts_with('#') && !line.is_empty() {
            facts.dirty = true;
        }
    }
    facts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn git_status_facts() {
        let clean = "# branch.oid abc123\n# branch.head main\n# branch.upstream origin/main\n";
        assert_eq!(
            parse_status(clean),
            GitFacts {
                oid: Some("abc123".into()),
                head: Some("main".into()),
                dirty: false
            }
        );
        let dirty = "# branch.oid abc\n# branch.head (detached)\n? new.txt\n";
        let f = parse_status(dirty);
        assert_eq!(f.head, None);
        assert!(f.dirty);
        assert_eq!(
            parse_status("# branch.oid (initial)\n# branch.head main\n").oid,
            None
        );
    }

    #[test]
    fn the_before_sha_is_the_upstream_tip_else_the_parent_else_what_before_says() {
        let dir = tempfile::tempdir().unwrap();
        let dir = dir.path();
        let git = |args: &[&str]| {
            let out = Command::new("git")
                .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
                .args(args)
                .current_dir(dir)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout).trim().to_string()
        };
        let commit = |file: &str| {
            std::fs::write(dir.join(file), file).unwrap();
            git(&["add", "-A"]);
            git(&["commit", "-q", "-m", file]);
            git(&["rev-parse", "HEAD"])
        };
        git(&["init", "-q", "-b", "main"]);
        let first = commit("a");
        let second = commit("b");
        let third = commit("c");
        let facts = |before: Option<&str>| {
            let origin = Origin {
                before: before.map(String::from),
                ..Origin::default()
            };
            Facts::with_origin(dir, 1, &origin)
        };
        // No upstream: the parent, and `changes` compare with it.
        assert_eq!(facts(None).before_sha, second);
        let changed = |f: &Facts| f.changes().changed(None).unwrap();
        assert_eq!(changed(&facts(None)), Some(vec!["c".to_string()]));
        // An upstream behind HEAD: what a push would send is everything since its tip.
        git(&[
            "remote",
            "add",
            "origin",
            "https://gitlab.example.com/g/p.git",
        ]);
        git(&["update-ref", "refs/remotes/origin/main", &first]);
        git(&["branch", "--set-upstream-to=origin/main"]);
        assert_eq!(facts(None).before_sha, first);
        assert_eq!(
            changed(&facts(None)),
            Some(vec!["b".to_string(), "c".to_string()])
        );
        // Pushed already (the upstream is HEAD): the parent again.
        git(&["update-ref", "refs/remotes/origin/main", &third]);
        assert_eq!(facts(None).before_sha, second);
        // `--before` wins; one that names no commit is none (changes then hold).
        assert_eq!(facts(Some("HEAD~2")).before_sha, first);
        let none = facts(Some("nope"));
        assert_eq!(none.before_sha, "0".repeat(40));
        assert_eq!(changed(&none), None);
    }

    #[test]
    fn remotes() {
        assert_eq!(
            parse_remote("git@gitlab.com:group/sub/proj.git"),
            Some(("gitlab.com".into(), "group/sub/proj".into()))
        );
        assert_eq!(
            parse_remote("https://user@gitlab.example.com:8443/g/p"),
            Some(("gitlab.example.com".into(), "g/p".into()))
        );
    }
}
