//! Where an `include` entry points and how its text is had: local files of the project (with
//! GitLab's `*` and `**` wildcards) are read from disk; other kinds (`remote`, `template`,
//! `project`, `component`) are looked up in the include cache, a directory where a fetcher (or
//! the user) keeps copies, so that a run never needs the network. A kind without a copy is an
//! error that says how to vendor the file.

use std::path::PathBuf;

use crate::pipeline::expand;
use crate::source::diag::Diagnostic;
use crate::source::yaml::{Node, Span};

use super::scope::Scope;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Local(String),
    Remote(String),
    Template(String),
    Project {
        project: String,
        files: Vec<String>,
        reference: Option<String>,
    },
    Component(String),
}

/// One `include` entry, read.
#[derive(Debug, Clone)]
pub struct Spec {
    pub location: Location,
    pub span: Span,
    pub rules: Option<Node>,
    pub inputs: Option<Node>,
}

/// A file's name (as messages show it) and text.
pub struct Fetched {
    pub name: String,
    pub text: String,
    /// Something the user should know (a cached copy used because the fetch failed).
    pub note: Option<String>,
}

const KEYS: &[&str] = &[
    "local",
    "remote",
    "template",
    "project",
    "file",
    "ref",
    "component",
    "rules",
    "inputs",
    "cache",
    "integrity",
];

impl Spec {
    /// Read an entry: a string (a local path, or a URL) or a mapping. `$VAR`s in locations are
    /// expanded with `vars`, as GitLab does.
    pub fn read(item: &Node, vars: &[(String, String)]) -> Result<Spec, Diagnostic> {
        let expand = |text: &str| {
            expand::expand(
                text,
                &|n| {
                    vars.iter()
                        .rev()
                        .find(|(k, _)| k == n)
                        .map(|(_, v)| v.clone())
                },
                0,
            )
        };
        if let Some(text) = item.as_text() {
            let text = expand(text);
            let location = if text.starts_with("https://") || text.starts_with("http://") {
                Location::Remote(text)
            } else {
                Location::Local(text)
            };
            return Ok(Spec {
                location,
                span: item.span,
                rules: None,
                inputs: None,
            });
        }
        let Some(entries) = item.as_map() else {
            return Err(Diagnostic::expected(
                "an `include` entry",
                "a path or a mapping like `{local: FILE}`",
                item,
            ));
        };
        if let Some(e) = entries.iter().find(|e| !KEYS.contains(&e.key.as_str())) {
            return Err(Diagnostic::error(
                format!("`include` has an unknown key `{}`", e.key),
                Some(e.key_span),
            )
            .with_help("an include is one of `local`, `remote`, `template`, `project` (with `file`), `component`"));
        }
        let text = |key: &str| -> Result<Option<String>, Diagnostic> {
            match item.get(key) {
                None => Ok(None),
                Some(n) => match n.as_text() {
                    Some(t) => Ok(Some(expand(t))),
                    None => Err(Diagnostic::expected(
                        &format!("`include: {key}`"),
                        "a string",
                        n,
                    )),
                },
            }
        };
        let location = if let Some(local) = text("local")? {
            Location::Local(local)
        } else if let Some(url) = text("remote")? {
            Location::Remote(url)
        } else if let Some(name) = text("template")? {
            Location::Template(name)
        } else if let Some(project) = text("project")? {
            let files = match item.get("file") {
                Some(n) if n.as_seq().is_some() => n
                    .as_seq()
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|f| f.as_text().map(expand))
                    .collect(),
                Some(n) => n.as_text().map(expand).into_iter().collect(),
                None => Vec::new(),
            };
            if files.is_empty() {
                return Err(Diagnostic::error(
                    "`include: project` needs a `file`",
                    Some(item.span),
                ));
            }
            Location::Project {
                project,
                files,
                reference: text("ref")?,
            }
        } else if let Some(c) = text("component")? {
            Location::Component(c)
        } else {
            return Err(Diagnostic::error(
                "an `include` entry needs one of `local`, `remote`, `template`, `project`, `component`",
                Some(item.span),
            ));
        };
        Ok(Spec {
            location,
            span: item.span,
            rules: item.get("rules").cloned(),
            inputs: item.get("inputs").cloned(),
        })
    }

    /// How messages name it.
    pub fn describe(&self) -> String {
        match &self.location {
            Location::Local(p) => format!("local: {p}"),
            Location::Remote(u) => format!("remote: {u}"),
            Location::Template(t) => format!("template: {t}"),
            Location::Project {
                project,
                files,
                reference,
            } => format!(
                "project: {project}, file: {}{}",
                files.join(", "),
                reference
                    .as_deref()
                    .map(|r| format!(", ref: {r}"))
                    .unwrap_or_default()
            ),
            Location::Component(c) => format!("component: {c}"),
        }
    }
}

/// Copies of files that are not in the project: `$BERTH_INCLUDE_CACHE`, else
/// `$XDG_CACHE_HOME/berth/includes`, else `~/.cache/berth/includes`.
pub struct IncludeCache {
    pub dir: Option<PathBuf>,
}

impl IncludeCache {
    pub fn from_env() -> IncludeCache {
        let env = |k: &str| {
            std::env::var_os(k)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        let dir = env("BERTH_INCLUDE_CACHE")
            .or_else(|| env("XDG_CACHE_HOME").map(|d| d.join("berth").join("includes")))
            .or_else(|| env("HOME").map(|d| d.join(".cache").join("berth").join("includes")));
        IncludeCache { dir }
    }

    /// Where a copy of one file of this include is kept.
    pub fn path_of(&self, location: &Location, file: Option<&str>) -> Option<PathBuf> {
        let dir = self.dir.as_ref()?;
        let clean = |s: &str| {
            s.split('/')
                .filter(|p| !p.is_empty() && *p != "." && *p != "..")
                .collect::<Vec<_>>()
                .join("/")
        };
        Some(match location {
            Location::Local(_) => return None,
            Location::Remote(url) => {
                use sha2::{Digest, Sha256};
                dir.join("remote").join(format!(
                    "{}.yml",
                    hex::encode(Sha256::digest(url.as_bytes()))
                ))
            }
            Location::Template(name) => dir.join("template").join(clean(name)),
            Location::Project {
                project, reference, ..
            } => dir
                .join("project")
                .join(clean(project))
                .join(clean(reference.as_deref().unwrap_or("HEAD")))
                .join(clean(file.unwrap_or_default())),
            Location::Component(c) => dir.join("component").join(format!("{}.yml", clean(c))),
        })
    }
}

/// The files an include brings, in order.
pub fn fetch(spec: &Spec, ctx: &Scope, cache: &IncludeCache) -> Result<Vec<Fetched>, Diagnostic> {
    match &spec.location {
        Location::Local(path) => local(path, ctx, spec.span),
        Location::Remote(url) => remote(spec, url, cache).map(|f| vec![f]),
        Location::Project { files, .. } => {
            files.iter().map(|f| cached(spec, cache, Some(f))).collect()
        }
        _ => cached(spec, cache, None).map(|f| vec![f]),
    }
}

fn cached(spec: &Spec, cache: &IncludeCache, file: Option<&str>) -> Result<Fetched, Diagnostic> {
    let path = cache.path_of(&spec.location, file);
    if let Some(path) = &path {
        if let Ok(text) = std::fs::read_to_string(path) {
            return Ok(Fetched {
                name: format!("{} (cached)", spec.describe()),
                text,
                note: None,
            });
        }
    }
    let kind = match spec.location {
        Location::Remote(_) => "a remote file",
        Location::Template(_) => "a GitLab template",
        Location::Project { .. } => "a file of another project",
        Location::Component(_) => "a CI/CD component",
        Location::Local(_) => "a local file",
    };
    let mut help =
        "vendor it: copy the file into the project and use `include: local: PATH`".to_string();
    if let Some(path) = path {
        help.push_str(&format!(", or put a copy at {}", path.display()));
    }
    Err(Diagnostic::error(
        format!(
            "`include: {}` is {kind}, which berth cannot fetch, and no copy is in the include cache",
            spec.describe()
        ),
        Some(spec.span),
    )
    .with_help(help))
}

/// A remote include: fetched (and its copy in the include cache refreshed), else the cached
/// copy, so that a pipeline that ran once runs offline.
fn remote(spec: &Spec, url: &str, cache: &IncludeCache) -> Result<Fetched, Diagnostic> {
    let path = cache.path_of(&spec.location, None);
    match http_get(url) {
        Ok(text) => {
            if let Some(path) = &path {
                // A cache that cannot be written only costs the offline copy.
                let _ = path
                    .parent()
                    .map(std::fs::create_dir_all)
                    .transpose()
                    .and_then(|_| std::fs::write(path, &text));
            }
            Ok(Fetched {
                name: url.to_string(),
                text,
                note: None,
            })
        }
        Err(why) => match path.as_ref().and_then(|p| std::fs::read_to_string(p).ok()) {
            Some(text) => Ok(Fetched {
                name: format!("{url} (cached copy)"),
                text,
                note: Some(format!(
                    "`include: remote: {url}` could not be fetched ({why}); using the copy cached when it last was"
                )),
            }),
            None => Err(Diagnostic::error(
                format!("`include: remote: {url}` could not be fetched: {why}"),
                Some(spec.span),
            )
            .with_help(match &path {
                Some(p) => format!(
                    "run once with network to cache it, or put a copy at {}, or vendor it as a local file",
                    p.display()
                ),
                None => "vendor it: copy the file into the project and use `include: local: PATH`".into(),
            })),
        },
    }
}

/// GET a small text file (a pipeline: at most 1 MiB), within 10 seconds.
fn http_get(url: &str) -> Result<String, String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(std::time::Duration::from_secs(10)))
        .build()
        .into();
    let mut response = agent.get(url).call().map_err(|e| e.to_string())?;
    response
        .body_mut()
        .with_config()
        .limit(1 << 20)
        .read_to_string()
        .map_err(|e| e.to_string())
}

/// A local include: one file, or every file a wildcard matches (in path order).
fn local(path: &str, ctx: &Scope, span: Span) -> Result<Vec<Fetched>, Diagnostic> {
    let rel = path.trim_start_matches('/');
    if crate::project::paths::escapes(rel) {
        return Err(Diagnostic::error(
            format!("`include: local: {path}` points outside the project"),
            Some(span),
        ));
    }
    let names: Vec<String> = if rel.contains('*') {
        let re = wildcard_regex(rel)
            .map_err(|e| Diagnostic::error(format!("`include: local: {path}`: {e}"), Some(span)))?;
        let mut found: Vec<String> = ctx
            .project_files()
            .iter()
            .filter(|f| re.is_match(f) && ctx.project_dir.join(f).is_file())
            .cloned()
            .collect();
        found.sort();
        if found.is_empty() {
            return Err(Diagnostic::error(
                format!("`include: local: {path}` matches no file in the project"),
                Some(span),
            ));
        }
        found
    } else {
        vec![rel.to_string()]
    };
    let mut out = Vec::new();
    for name in names {
        if !(name.ends_with(".yml") || name.ends_with(".yaml")) {
            return Err(Diagnostic::error(
                format!("included file `{name}` does not have a .yml or .yaml extension"),
                Some(span),
            ));
        }
        let text = std::fs::read_to_string(ctx.project_dir.join(&name)).map_err(|e| {
            Diagnostic::error(
                format!("`include: local: {path}`: cannot read `{name}`: {e}"),
                Some(span),
            )
        })?;
        out.push(Fetched {
            name,
            text,
            note: None,
        });
    }
    Ok(out)
}

/// GitLab's wildcard paths: `**` matches anything (slashes too), `*` anything but a slash; the
/// whole path must match.
pub fn wildcard_regex(pattern: &str) -> Result<regex::Regex, regex::Error> {
    let mut re = String::from("^");
    let mut rest = pattern;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix("**") {
            re.push_str(".*?");
            rest = r;
        } else if let Some(r) = rest.strip_prefix('*') {
            re.push_str("[^/]*?");
            rest = r;
        } else {
            let c = rest.chars().next().unwrap_or_default();
            re.push_str(&regex::escape(&c.to_string()));
            rest = &rest[c.len_utf8()..];
        }
    }
    re.push('$');
    regex::Regex::new(&re)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_as_gitlab_reads_them() {
        let one = wildcard_regex("configs/*.yml").unwrap();
        assert!(one.is_match("configs/a.yml"));
        assert!(!one.is_match("configs/sub/a.yml"));
        let deep = wildcard_regex("configs/**.yml").unwrap();
        assert!(deep.is_match("configs/a.yml"));
        assert!(deep.is_match("configs/sub/a.yml"));
        let sub = wildcard_regex("configs/**/*.yml").unwrap();
        assert!(!sub.is_match("configs/a.yml"));
        assert!(sub.is_match("configs/sub/a.yml"));
        assert!(!one.is_match("configs/a.yml.bak"));
    }

    #[test]
    fn cache_paths_stay_in_the_cache() {
        let cache = IncludeCache {
            dir: Some(PathBuf::from("/c")),
        };
        let p = cache
            .path_of(
                &Location::Project {
                    project: "group/../ci".into(),
                    files: vec![],
                    reference: None,
                },
                Some("/templates/../x.yml"),
            )
            .unwrap();
        assert_eq!(p, PathBuf::from("/c/project/group/ci/HEAD/templates/x.yml"));
        let t = cache
            .path_of(
                &Location::Template("Auto-DevOps.gitlab-ci.yml".into()),
                None,
            )
            .unwrap();
        assert_eq!(t, PathBuf::from("/c/template/Auto-DevOps.gitlab-ci.yml"));
    }
}
