//! A job's environment: predefined CI variables, pipeline and job variables, and the command
//! line's `-e`, in GitLab's precedence, with `$VAR` references between them expanded.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::pipeline::{Job, Variable};

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
}

impl Context {
    pub fn new(project_dir: &Path, pipeline_id: u64) -> Context {
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
        // commit, the branch and whether the tree is dirty.
        let status = in_git_repo(project_dir)
            .then(|| git(&["status", "--porcelain=v2", "--branch"]))
            .flatten();
        let facts = status.as_deref().map(parse_status).unwrap_or_default();
        let commit_sha = facts.oid.unwrap_or_else(|| "0".repeat(40));
        let ref_name = match facts.head {
            Some(branch) => branch,
            None if status.is_some() => {
                git(&["describe", "--tags", "--exact-match"]).unwrap_or_else(|| "HEAD".into())
            }
            None => "local".into(),
        };
        let dirty = facts.dirty;
        Context {
            project_dir: project_dir.to_path_buf(),
            container_dir: format!("/builds/{slug}"),
            project_name,
            commit_sha,
            ref_name,
            pipeline_id,
            dirty,
        }
    }
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

/// The environment of one job, in GitLab's precedence (later wins): predefined, pipeline
/// variables, job variables, command line. Values are expanded against the result.
pub fn job_env(
    ctx: &Context,
    pipeline_vars: &[Variable],
    job: &Job,
    job_id: u64,
    overrides: &[(String, String)],
) -> Vec<(String, String)> {
    let predefined = [
        ("CI", "true".to_string()),
        ("GITLAB_CI", "true".to_string()),
        ("BERTH", "true".to_string()),
        ("CI_JOB_NAME", job.name.clone()),
        ("CI_JOB_STAGE", job.stage.clone()),
        ("CI_JOB_ID", job_id.to_string()),
        ("CI_PROJECT_DIR", ctx.container_dir.clone()),
        ("CI_BUILDS_DIR", "/builds".to_string()),
        ("CI_PROJECT_NAME", ctx.project_name.clone()),
        ("CI_PIPELINE_ID", ctx.pipeline_id.to_string()),
        ("CI_COMMIT_SHA", ctx.commit_sha.clone()),
        (
            "CI_COMMIT_SHORT_SHA",
            ctx.commit_sha.chars().take(8).collect(),
        ),
        ("CI_COMMIT_REF_NAME", ctx.ref_name.clone()),
        ("CI_COMMIT_REF_SLUG", slug(&ctx.ref_name).to_lowercase()),
    ];
    let mut order: Vec<String> = Vec::new();
    let mut values: HashMap<String, (String, bool)> = HashMap::new();
    let mut set = |name: &str, value: String, expand: bool| {
        if !values.contains_key(name) {
            order.push(name.to_string());
        }
        values.insert(name.to_string(), (value, expand));
    };
    for (k, v) in predefined {
        set(k, v, false);
    }
    for v in pipeline_vars.iter().chain(&job.variables) {
        set(&v.name, v.value.clone(), v.expand);
    }
    for (k, v) in overrides {
        set(k, v.clone(), false);
    }
    let raw: HashMap<&str, &str> = values
        .iter()
        .map(|(k, (v, _))| (k.as_str(), v.as_str()))
        .collect();
    order
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
        .collect()
}

/// Expand `$VAR` and `${VAR}` (`$$` is a literal `$`). Unknown variables become empty, as in
/// a shell; references are followed a few levels deep.
pub fn expand(text: &str, lookup: &dyn Fn(&str) -> Option<String>, depth: usize) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
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
                        out.push_str(&resolve(&rest[..end], lookup, depth));
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
                out.push_str(&resolve(&rest[..end], lookup, depth));
                for _ in 0..end {
                    chars.next();
                }
            }
            _ => out.push('$'),
        }
    }
    out
}

fn is_name(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn resolve(name: &str, lookup: &dyn Fn(&str) -> Option<String>, depth: usize) -> String {
    match lookup(name) {
        Some(v) if depth < 8 => expand(&v, lookup, depth + 1),
        Some(v) => v,
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        };
        let src = "variables: {A: global, B: global, C: '$A/c'}\njob:\n  variables: {B: job}\n  script: s\n";
        let p = crate::pipeline::load(src).unwrap().pipeline;
        let env = job_env(
            &ctx,
            &p.variables,
            &p.jobs[0],
            3,
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
    fn slugs() {
        assert_eq!(slug("job with spaces"), "job-with-spaces");
        assert_eq!(slug("test: [a, b]"), "test---a--b");
        assert_eq!(slug("///"), "job");
    }
}
