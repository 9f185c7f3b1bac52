//! A job's environment: predefined CI variables, pipeline and job variables, and the command
//! line's `-e`, in GitLab's precedence, with `$VAR` references between them expanded.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::pipeline::{Job, Variable};

/// Where the pipeline runs for: GitLab takes branch, tag and source from the event that
/// started it; berth from git, overridden by `--branch`, `--tag` and `--source`.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    pub branch: Option<String>,
    pub tag: Option<String>,
    pub source: Option<String>,
}

/// Facts about the project and the run that the predefined variables carry.
#[derive(Debug, Clone)]
pub struct Context {
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
}

impl Context {
    pub fn new(project_dir: &Path, pipeline_id: u64) -> Context {
        Context::with_origin(project_dir, pipeline_id, &Origin::default())
    }

    pub fn with_origin(project_dir: &Path, pipeline_id: u64, origin: &Origin) -> Context {
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
        let source = origin.source.clone().unwrap_or_else(|| "push".into());
        Context {
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
        }
    }

    /// The predefined variables of the pipeline (not of one job), as GitLab sets them.
    pub fn pipeline_variables(&self) -> Vec<(String, String)> {
        let mut v: Vec<(&str, String)> = vec![
            ("CI", "true".into()),
            ("GITLAB_CI", "true".into()),
            ("BERTH", "true".into()),
            ("CI_SERVER", "yes".into()),
            ("CI_SERVER_NAME", "GitLab".into()),
            ("CI_SERVER_HOST", self.server_host.clone()),
            ("CI_SERVER_FQDN", self.server_host.clone()),
            ("CI_SERVER_PORT", "443".into()),
            ("CI_SERVER_PROTOCOL", "https".into()),
            ("CI_SERVER_URL", format!("https://{}", self.server_host)),
            ("CI_PIPELINE_ID", self.pipeline_id.to_string()),
            ("CI_PIPELINE_IID", self.pipeline_id.to_string()),
            ("CI_PIPELINE_SOURCE", self.source.clone()),
            ("CI_PIPELINE_CREATED_AT", self.commit_timestamp.clone()),
            ("CI_COMMIT_SHA", self.commit_sha.clone()),
            (
                "CI_COMMIT_SHORT_SHA",
                self.commit_sha.chars().take(8).collect(),
            ),
            ("CI_COMMIT_BEFORE_SHA", "0".repeat(40)),
            ("CI_COMMIT_REF_NAME", self.ref_name.clone()),
            ("CI_COMMIT_REF_SLUG", ref_slug(&self.ref_name)),
            ("CI_COMMIT_MESSAGE", self.commit_message.clone()),
            (
                "CI_COMMIT_TITLE",
                self.commit_message
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .to_string(),
            ),
            (
                "CI_COMMIT_DESCRIPTION",
                self.commit_message
                    .split_once('\n')
                    .map(|(_, d)| d.trim_start_matches('\n').to_string())
                    .unwrap_or_default(),
            ),
            ("CI_COMMIT_TIMESTAMP", self.commit_timestamp.clone()),
            ("CI_COMMIT_AUTHOR", self.commit_author.clone()),
            ("CI_DEFAULT_BRANCH", self.default_branch.clone()),
            ("CI_PROJECT_NAME", self.project_name.clone()),
            ("CI_PROJECT_TITLE", self.project_name.clone()),
            ("CI_PROJECT_PATH", self.project_path.clone()),
            ("CI_PROJECT_PATH_SLUG", ref_slug(&self.project_path)),
            (
                "CI_PROJECT_NAMESPACE",
                self.project_path
                    .rsplit_once('/')
                    .map(|(ns, _)| ns.to_string())
                    .unwrap_or_default(),
            ),
            (
                "CI_PROJECT_ROOT_NAMESPACE",
                self.project_path
                    .split('/')
                    .next()
                    .unwrap_or_default()
                    .to_string(),
            ),
            (
                "CI_PROJECT_URL",
                format!("https://{}/{}", self.server_host, self.project_path),
            ),
            ("CI_PROJECT_DIR", self.container_dir.clone()),
            ("CI_BUILDS_DIR", "/builds".into()),
            ("CI_REGISTRY", format!("registry.{}", self.server_host)),
            (
                "CI_REGISTRY_IMAGE",
                format!("registry.{}/{}", self.server_host, self.project_path).to_lowercase(),
            ),
        ];
        if let Some(tag) = &self.tag {
            v.push(("CI_COMMIT_TAG", tag.clone()));
        }
        match (&self.branch, self.source.as_str()) {
            (Some(branch), "merge_request_event") => {
                v.push(("CI_MERGE_REQUEST_ID", "1".into()));
                v.push(("CI_MERGE_REQUEST_IID", "1".into()));
                v.push(("CI_MERGE_REQUEST_SOURCE_BRANCH_NAME", branch.clone()));
                v.push((
                    "CI_MERGE_REQUEST_TARGET_BRANCH_NAME",
                    self.default_branch.clone(),
                ));
                v.push(("CI_MERGE_REQUEST_EVENT_TYPE", "detached".into()));
                v.push((
                    "CI_MERGE_REQUEST_SOURCE_BRANCH_SHA",
                    self.commit_sha.clone(),
                ));
                v.push(("CI_MERGE_REQUEST_PROJECT_PATH", self.project_path.clone()));
            }
            (Some(branch), _) => v.push(("CI_COMMIT_BRANCH", branch.clone())),
            (None, _) => {}
        }
        v.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
    }

    /// What `rules: changes` compares, from git.
    pub fn changes(&self) -> GitChanges {
        GitChanges {
            dir: self.project_dir.clone(),
            merge_request: self.source == "merge_request_event",
            default_branch: self.default_branch.clone(),
            cache: Default::default(),
        }
    }
}

/// `rules: changes` read from git: the working tree (committed or not, untracked files too)
/// against the previous commit, the default branch for merge requests, or `compare_to`.
pub struct GitChanges {
    dir: PathBuf,
    merge_request: bool,
    default_branch: String,
    cache: std::sync::Mutex<HashMap<Option<String>, Option<Vec<String>>>>,
}

impl crate::pipeline::ChangedFiles for GitChanges {
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
            None => git(&["rev-parse", "--verify", "--quiet", "HEAD~1"]),
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

/// GitLab's `*_SLUG`: lowercased, anything but `a-z0-9` replaced by `-`, at most 63 bytes, no
/// `-` at either end.
pub fn ref_slug(name: &str) -> String {
    let s: String = name
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                c
            } else {
                '-'
            }
        })
        .collect();
    let s: String = s.chars().take(63).collect();
    s.trim_matches('-').to_string()
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

/// A name safe for container names and paths: letters, digits, `-`, `_`, `.`.
pub fn slug(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let s = s.trim_matches('-').to_string();
    if s.is_empty() {
        "job".into()
    } else {
        s
    }
}

/// A job's name as a file name (logs, artifact archives): [`slug`], kept well under the file
/// system's 255 bytes. A longer name is cut, and a hash of the whole name keeps it apart
/// from others cut alike.
pub fn file_slug(job: &str) -> String {
    const MAX: usize = 100;
    let slug = slug(job);
    if slug.len() <= MAX {
        return slug;
    }
    use sha2::{Digest, Sha256};
    let hash = hex::encode(Sha256::digest(job.as_bytes()));
    // The slug is ASCII: any byte is a character boundary.
    format!("{}-{}", &slug[..MAX - 9], &hash[..8])
}

/// The environment of one job, in GitLab's precedence (later wins): predefined, pipeline
/// variables, job variables, variables from earlier jobs' dotenv reports, command line. Values
/// are expanded against the result.
pub fn job_env(
    ctx: &Context,
    pipeline_vars: &[Variable],
    job: &Job,
    job_id: u64,
    dotenv: &[(String, String)],
    overrides: &[(String, String)],
) -> Vec<(String, String)> {
    let mut order: Vec<String> = Vec::new();
    let mut values: HashMap<String, (String, bool)> = HashMap::new();
    let mut set = |name: &str, value: String, expand: bool| {
        if !values.contains_key(name) {
            order.push(name.to_string());
        }
        values.insert(name.to_string(), (value, expand));
    };
    for (k, v) in ctx.pipeline_variables() {
        set(&k, v, false);
    }
    let job_predefined = [
        ("CI_JOB_NAME", job.name.clone()),
        ("CI_JOB_NAME_SLUG", ref_slug(&job.name)),
        ("CI_JOB_STAGE", job.stage.clone()),
        ("CI_JOB_ID", job_id.to_string()),
        ("CI_NODE_TOTAL", "1".to_string()),
    ];
    for (k, v) in job_predefined {
        set(k, v, false);
    }
    if let Some(env) = &job.environment {
        set("CI_ENVIRONMENT_NAME", env.name.clone(), true);
        set("CI_ENVIRONMENT_SLUG", ref_slug(&env.name), false);
        if let Some(url) = &env.url {
            set("CI_ENVIRONMENT_URL", url.clone(), true);
        }
    }
    let inherited = pipeline_vars
        .iter()
        .filter(|v| match &job.inherit_variables {
            None => true,
            Some(keep) => keep.contains(&v.name),
        });
    for v in inherited.chain(&job.variables) {
        set(&v.name, v.value.clone(), v.expand);
    }
    for (k, v) in dotenv.iter().chain(overrides) {
        set(k, v.clone(), false);
    }
    let raw: HashMap<&str, &str> = values
        .iter()
        .map(|(k, (v, _))| (k.as_str(), v.as_str()))
        .collect();
    let mut env: Vec<(String, String)> = order
        .iter()
        .map(|name| {
            let (value, expand_it) = &values[name];
            let value = if *expand_it {
                expand(value, &|n| raw.get(n).map(|s| s.to_string()), 0)
            } else {
                value.clone()
            };
            (name.clone(), value)
        })
        .collect();
    // The slug follows the expanded name.
    if let Some(name) = env
        .iter()
        .find(|(k, _)| k == "CI_ENVIRONMENT_NAME")
        .map(|(_, v)| ref_slug(v))
    {
        if let Some(slot) = env.iter_mut().find(|(k, _)| k == "CI_ENVIRONMENT_SLUG") {
            slot.1 = name;
        }
    }
    env
}

/// The most an expansion makes (Linux refuses a single environment value over 128 KiB
/// anyway): references that expand to references cannot grow a value without bound.
pub const MAX_EXPANDED: usize = 1 << 20;

/// Expand `$VAR` and `${VAR}` (`$$` is a literal `$`). Unknown variables become empty, as in
/// a shell; references are followed a few levels deep; the result is cut at [`MAX_EXPANDED`].
pub fn expand(text: &str, lookup: &dyn Fn(&str) -> Option<String>, depth: usize) -> String {
    let mut out = String::with_capacity(text.len());
    expand_into(text, lookup, depth, &mut out);
    out
}

/// Append to `out` until it is [`MAX_EXPANDED`] long: the work is bounded by that, however
/// the references nest.
fn expand_into(
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    depth: usize,
    out: &mut String,
) {
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if out.len() >= MAX_EXPANDED {
            return;
        }
        if c != '$' {
            out.push(c);
            continue;
        }
        match chars.peek() {
            Some(&(_, '$')) => {
                chars.next();
                out.push('$');
            }
            Some(&(_, '{')) => {
                let rest = &text[i + 2..];
                match rest.find('}') {
                    Some(end) if is_name(&rest[..end]) => {
                        resolve(&rest[..end], lookup, depth, out);
                        for _ in 0..end + 2 {
                            chars.next();
                        }
                    }
                    _ => out.push('$'),
                }
            }
            Some(&(_, n)) if n.is_ascii_alphabetic() || n == '_' => {
                let rest = &text[i + 1..];
                let end = rest
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(rest.len());
                resolve(&rest[..end], lookup, depth, out);
                for _ in 0..end {
                    chars.next();
                }
            }
            _ => out.push('$'),
        }
    }
}

fn is_name(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn resolve(name: &str, lookup: &dyn Fn(&str) -> Option<String>, depth: usize, out: &mut String) {
    match lookup(name) {
        Some(v) if depth < 8 => expand_into(&v, lookup, depth + 1, out),
        Some(v) => {
            let room = MAX_EXPANDED.saturating_sub(out.len());
            let mut cut = v.len().min(room);
            while !v.is_char_boundary(cut) {
                cut -= 1;
            }
            out.push_str(&v[..cut]);
        }
        None => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_that_multiply_are_cut_at_the_limit() {
        // Each level names the next ten times: 10^8 copies of `x` if followed in full.
        let mut pairs: Vec<(String, String)> = (0..8)
            .map(|i| (format!("V{i}"), format!("$V{}", i + 1).repeat(10)))
            .collect();
        pairs.push(("V8".into(), "x".into()));
        let map: HashMap<String, String> = pairs.into_iter().collect();
        let lookup = |k: &str| map.get(k).cloned();
        let out = expand("$V0", &lookup, 0);
        assert_eq!(out.len(), MAX_EXPANDED);
        assert!(out.bytes().all(|b| b == b'x'));
        // Small expansions are whole, as before.
        assert_eq!(expand("a${V8}b", &lookup, 0), "axb");
    }

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |n| map.get(n).cloned()
    }

    #[test]
    fn expansion_forms() {
        let v = vars(&[("A", "x"), ("B", "$A-y"), ("LONG_NAME", "z")]);
        assert_eq!(expand("$A ${A} $$A $LONG_NAME.", &v, 0), "x x $A z.");
        assert_eq!(expand("$B", &v, 0), "x-y");
        assert_eq!(expand("$MISSING|", &v, 0), "|");
        assert_eq!(expand("cost: 5$ ${", &v, 0), "cost: 5$ ${");
    }

    #[test]
    fn self_reference_terminates() {
        let v = vars(&[("A", "$A")]);
        assert_eq!(expand("$A", &v, 0), "$A");
    }

    #[test]
    fn precedence_and_predefined() {
        let ctx = Context {
            project_dir: "/p/demo".into(),
            project_name: "demo".into(),
            container_dir: "/builds/demo".into(),
            commit_sha: "a".repeat(40),
            ref_name: "feature/x".into(),
            pipeline_id: 7,
            dirty: false,
            branch: Some("feature/x".into()),
            tag: None,
            source: "push".into(),
            default_branch: "main".into(),
            commit_message: "Title\n\nBody".into(),
            commit_timestamp: "2026-01-01T00:00:00+00:00".into(),
            commit_author: "A <a@b>".into(),
            commit_epoch: Some(1_767_225_600),
            project_path: "group/demo".into(),
            server_host: "gitlab.example.com".into(),
        };
        let src = "variables: {A: global, B: global, C: '$A/c'}\njob:\n  variables: {B: job}\n  script: s\n";
        let p = crate::pipeline::load(src).unwrap().pipeline;
        let env = job_env(
            &ctx,
            &p.variables,
            &p.jobs[0],
            3,
            &[],
            &[("A".into(), "cli".into())],
        );
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("A"), Some("cli"));
        assert_eq!(get("B"), Some("job"));
        assert_eq!(get("C"), Some("cli/c"));
        assert_eq!(get("CI"), Some("true"));
        assert_eq!(get("CI_JOB_NAME"), Some("job"));
        assert_eq!(get("CI_JOB_STAGE"), Some("test"));
        assert_eq!(get("CI_PROJECT_DIR"), Some("/builds/demo"));
        assert_eq!(get("CI_COMMIT_REF_SLUG"), Some("feature-x"));
        assert_eq!(get("CI_COMMIT_BRANCH"), Some("feature/x"));
        assert_eq!(get("CI_COMMIT_TITLE"), Some("Title"));
        assert_eq!(get("CI_COMMIT_DESCRIPTION"), Some("Body"));
        assert_eq!(get("CI_PROJECT_NAMESPACE"), Some("group"));
        assert_eq!(
            get("CI_REGISTRY_IMAGE"),
            Some("registry.gitlab.example.com/group/demo")
        );
        assert_eq!(get("CI_COMMIT_TAG"), None);
    }

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
    fn remotes_and_ref_slugs() {
        assert_eq!(
            parse_remote("git@gitlab.com:group/sub/proj.git"),
            Some(("gitlab.com".into(), "group/sub/proj".into()))
        );
        assert_eq!(
            parse_remote("https://user@gitlab.example.com:8443/g/p"),
            Some(("gitlab.example.com".into(), "g/p".into()))
        );
        assert_eq!(ref_slug("Feature/ABC_1.2"), "feature-abc-1-2");
        assert_eq!(ref_slug(&"x".repeat(80)).len(), 63);
    }

    #[test]
    fn slugs() {
        assert_eq!(slug("job with spaces"), "job-with-spaces");
        assert_eq!(slug("test: [a, b]"), "test---a--b");
        assert_eq!(slug("///"), "job");
    }
}
