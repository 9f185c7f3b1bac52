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
    /// A merge request's target branch (`--base`; default: the default branch).
    pub target: Option<String>,
    /// A merge request's title (`--mr-title`; default: the commit's title).
    pub mr_title: Option<String>,
    /// A merge request's IID (`--mr-iid`; default: 1).
    pub mr_iid: Option<u64>,
    /// A merge request's labels (`--mr-label`, repeatable).
    pub mr_labels: Vec<String>,
}

/// What GitLab knows of the merge request a `merge_request_event` pipeline runs for; berth
/// takes it from git and the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergeRequest {
    pub iid: u64,
    pub title: String,
    pub labels: Vec<String>,
    pub source_branch: String,
    pub target_branch: String,
    /// The merge base of the commit and the target branch (GitLab's diff base), when git
    /// knows the target.
    pub diff_base_sha: Option<String>,
}

/// The GitLab server the `origin` remote names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    pub host: String,
    /// `https` or `http`: an SSH remote's server is reached over https.
    pub protocol: String,
    pub port: u16,
    /// The port of the server's SSH (22 unless an `ssh://` remote names another).
    pub ssh_port: u16,
}

impl Server {
    /// CI_SERVER_FQDN: the host, with the port when it is not the protocol's own.
    pub fn fqdn(&self) -> String {
        let default = if self.protocol == "http" { 80 } else { 443 };
        if self.port == default {
            self.host.clone()
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// CI_SERVER_URL.
    pub fn url(&self) -> String {
        format!("{}://{}", self.protocol, self.fqdn())
    }
}

impl Default for Server {
    fn default() -> Server {
        Server {
            host: "gitlab.example.com".into(),
            protocol: "https".into(),
            port: 443,
            ssh_port: 22,
        }
    }
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
    /// The GitLab server from the `origin` remote (else `https://gitlab.example.com`).
    pub server: Server,
    /// What a push of the commit would have been sent on top of: the upstream branch's tip,
    /// else the parent commit, else forty zeros (then `changes:` hold, as on GitLab).
    pub before_sha: String,
    /// The merge request of a `merge_request_event` pipeline.
    pub merge_request: Option<MergeRequest>,
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
        let remote = git_dir
            .as_deref()
            .and_then(origin_url)
            .and_then(|u| parse_remote(&u));
        // GitLab Runner's build directory is the remote's path under /builds (the Docker
        // executor's default builds_dir); with no remote, the directory's name stands for it.
        let (project_path, server, container_dir) = match remote {
            Some((server, path)) => {
                let dir = format!("/builds/{path}");
                (path, server, dir)
            }
            None => (
                project_name.clone(),
                Server::default(),
                format!("/builds/{slug}"),
            ),
        };
        // CI_PROJECT_NAME is the project's path segment (the last part of CI_PROJECT_PATH).
        let project_name = project_path
            .rsplit('/')
            .next()
            .filter(|n| !n.is_empty())
            .map(String::from)
            .unwrap_or(project_name);
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
        let merge_request = match (&branch, source.as_str()) {
            (Some(source_branch), "merge_request_event") => {
                let target_branch = origin
                    .target
                    .clone()
                    .unwrap_or_else(|| default_branch.clone());
                let diff_base_sha = status
                    .is_some()
                    .then(|| merge_base(&git, &target_branch))
                    .flatten();
                Some(MergeRequest {
                    iid: origin.mr_iid.unwrap_or(1),
                    // GitLab titles a one-commit merge request after its commit.
                    title: origin.mr_title.clone().unwrap_or_else(|| {
                        commit_message
                            .lines()
                            .next()
                            .unwrap_or_default()
                            .to_string()
                    }),
                    labels: origin.mr_labels.clone(),
                    source_branch: source_branch.clone(),
                    target_branch,
                    diff_base_sha,
                })
            }
            _ => None,
        };
        Facts {
            project_dir: project_dir.to_path_buf(),
            container_dir,
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
            server,
            before_sha,
            merge_request,
        }
    }

    /// What `rules: changes` compares, from git: a merge request's changes are those since
    /// the merge base with its target branch.
    pub fn changes(&self) -> GitChanges {
        GitChanges {
            dir: self.project_dir.clone(),
            before: self.before_sha.clone(),
            merge_request: self.source == "merge_request_event",
            default_branch: self
                .merge_request
                .as_ref()
                .map(|mr| mr.target_branch.clone())
                .unwrap_or_else(|| self.default_branch.clone()),
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
            None if self.merge_request => merge_base(
                &|args: &[&str]| git(args).map(|s| s.trim().to_string()),
                &self.default_branch,
            ),
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

/// The merge base of HEAD and `target` (as `origin/<target>`, else the local branch).
fn merge_base(git: &dyn Fn(&[&str]) -> Option<String>, target: &str) -> Option<String> {
    [format!("origin/{target}"), target.to_string()]
        .into_iter()
        .find_map(|t| git(&["merge-base", "HEAD", &t]))
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

/// The server and `group/project` of `https://host[:port]/group/project.git`,
/// `ssh://git@host[:port]/group/project.git` or `git@host:group/project.git`. A path with an
/// empty, `.` or `..` part is none (GitLab Runner refuses such a path too).
fn parse_remote(url: &str) -> Option<(Server, String)> {
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (scheme.to_ascii_lowercase(), rest.to_string()),
        None => ("scp".to_string(), url.replacen(':', "/", 1)),
    };
    let (authority, path) = rest.split_once('/')?;
    let authority = authority
        .rsplit_once('@')
        .map(|(_, a)| a)
        .unwrap_or(authority);
    let (host, port) = match authority.split_once(':') {
        Some((host, port)) => (host, Some(port.parse::<u16>().ok()?)),
        None => (authority, None),
    };
    let path = path.trim_end_matches('/').trim_end_matches(".git");
    let safe = path
        .split('/')
        .all(|part| !part.is_empty() && part != "." && part != ".." && slug(part) == part);
    if host.is_empty() || path.is_empty() || !safe {
        return None;
    }
    let server = match scheme.as_str() {
        "http" | "https" => Server {
            host: host.to_string(),
            port: port.unwrap_or(if scheme == "http" { 80 } else { 443 }),
            protocol: scheme,
            ssh_port: 22,
        },
        // An SSH remote: the server's web side is https on its own port.
        _ => Server {
            host: host.to_string(),
            ssh_port: port.unwrap_or(22),
            ..Server::default()
        },
    };
    Some((server, path.to_string()))
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

    /// A repository in a temporary directory, and a way to run git in it.
    fn scratch_repo() -> (tempfile::TempDir, impl Fn(&[&str]) -> String) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_path_buf();
        let git = move |args: &[&str]| {
            let out = Command::new("git")
                .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
                .args(args)
                .current_dir(&path)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout).trim().to_string()
        };
        git(&["init", "-q", "-b", "main"]);
        (dir, git)
    }

    #[test]
    fn the_project_sits_at_its_remotes_path_under_builds() {
        let (dir, git) = scratch_repo();
        // No remote: the directory's name stands for the path.
        let facts = Facts::new(dir.path(), 1);
        let name = dir.path().file_name().unwrap().to_string_lossy();
        assert_eq!(facts.container_dir, format!("/builds/{}", slug(&name)));
        assert_eq!(facts.project_name, name);
        git(&[
            "remote",
            "add",
            "origin",
            "git@gitlab.acme.io:group/sub/Shop.git",
        ]);
        let facts = Facts::new(dir.path(), 1);
        assert_eq!(facts.container_dir, "/builds/group/sub/Shop");
        assert_eq!(facts.project_name, "Shop");
        assert_eq!(facts.project_path, "group/sub/Shop");
        assert_eq!(facts.server.url(), "https://gitlab.acme.io");
    }

    #[test]
    fn a_merge_request_is_told_by_git_and_the_command_line() {
        let (dir, git) = scratch_repo();
        git(&["commit", "-q", "--allow-empty", "-m", "base"]);
        let base = git(&["rev-parse", "HEAD"]);
        git(&["switch", "-q", "-c", "topic"]);
        git(&[
            "commit",
            "-q",
            "--allow-empty",
            "-m",
            "Add the thing\n\nbody",
        ]);
        git(&["switch", "-q", "main"]);
        git(&["commit", "-q", "--allow-empty", "-m", "main moves on"]);
        git(&["switch", "-q", "topic"]);
        let mut origin = Origin {
            source: Some("merge_request_event".into()),
            ..Origin::default()
        };
        let mr = Facts::with_origin(dir.path(), 1, &origin).merge_request;
        assert_eq!(
            mr,
            Some(MergeRequest {
                iid: 1,
                title: "Add the thing".into(),
                labels: vec![],
                source_branch: "topic".into(),
                target_branch: "main".into(),
                diff_base_sha: Some(base),
            })
        );
        origin.target = Some("nowhere".into());
        origin.mr_title = Some("Draft: x".into());
        origin.mr_iid = Some(42);
        origin.mr_labels = vec!["a".into(), "b c".into()];
        let mr = Facts::with_origin(dir.path(), 1, &origin)
            .merge_request
            .unwrap();
        assert_eq!(
            (mr.iid, mr.title.as_str(), mr.labels.len()),
            (42, "Draft: x", 2)
        );
        assert_eq!(mr.target_branch, "nowhere");
        assert_eq!(mr.diff_base_sha, None);
        // A push pipeline has none.
        origin.source = None;
        assert_eq!(
            Facts::with_origin(dir.path(), 1, &origin).merge_request,
            None
        );
    }

    #[test]
    fn remotes() {
        let remote = |url: &str| parse_remote(url).map(|(s, p)| (s.url(), s.ssh_port, p));
        assert_eq!(
            remote("git@gitlab.com:group/sub/proj.git"),
            Some(("https://gitlab.com".into(), 22, "group/sub/proj".into()))
        );
        assert_eq!(
            remote("https://user@gitlab.example.com:8443/g/p"),
            Some(("https://gitlab.example.com:8443".into(), 22, "g/p".into()))
        );
        assert_eq!(
            remote("http://git.local/g/p.git"),
            Some(("http://git.local".into(), 22, "g/p".into()))
        );
        assert_eq!(
            remote("ssh://git@git.local:2222/g/p.git"),
            Some(("https://git.local".into(), 2222, "g/p".into()))
        );
        // A path that would leave /builds, or name no project, is no project path.
        assert_eq!(remote("https://h/../etc/p.git"), None);
        assert_eq!(remote("https://h/g//p.git"), None);
        assert_eq!(remote("https://h/g/p q.git"), None);
    }
}
