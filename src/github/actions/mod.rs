//! The actions a workflow's steps use beyond berth's built-ins: where each comes from
//! ([`ActionRef`]: `./path` in the repository, `owner/repo[/path]@ref` from the action cache,
//! `docker://image`), its metadata read and checked before anything runs ([`load`]), nested
//! composites followed, and the cache of remote actions fetched once with git ([`cache`]).

pub mod cache;
pub mod reusable;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::github::steps::BUILT_IN_ACTIONS;
use crate::github::workflow::{self, ActionManifest, Runs, StepAction, Workflow};
use crate::source::diag::{Diagnostic, SourceMap};

/// What a `uses:` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActionRef {
    /// One of berth's own (`actions/checkout`...).
    BuiltIn(String),
    /// `./path`: a folder of the repository (the workspace), normalized, without `./`.
    Local(String),
    /// `owner/repo[/path]@ref`.
    Remote(Remote),
    /// `docker://image`.
    Docker(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Remote {
    pub owner: String,
    pub repo: String,
    /// The action's folder in the repository; empty: its root.
    pub path: String,
    pub git_ref: String,
}

impl Remote {
    /// `owner/repo[/path]@ref`, as written.
    pub fn name(&self) -> String {
        let path = if self.path.is_empty() {
            String::new()
        } else {
            format!("/{}", self.path)
        };
        format!("{}/{}{path}@{}", self.owner, self.repo, self.git_ref)
    }

    /// `owner/repo@ref`: what is fetched and pinned (every path of a repository at one ref is
    /// one commit).
    pub fn repo_ref(&self) -> String {
        format!("{}/{}@{}", self.owner, self.repo, self.git_ref)
    }
}

/// The `owner/repo@ref` a remote `uses:` (a built-in's name too: the real action) is fetched
/// and pinned as; `None`: a local action or an image.
pub fn repo_ref(uses: &str) -> Option<String> {
    match parse_ref(uses) {
        ActionRef::Local(_) | ActionRef::Docker(_) => None,
        _ => Some(remote_of(uses).repo_ref()),
    }
}

/// Reads a `uses:` (the workflow reader has checked its form).
pub fn parse_ref(uses: &str) -> ActionRef {
    if let Some(image) = uses.strip_prefix("docker://") {
        return ActionRef::Docker(image.to_string());
    }
    if uses.starts_with("./") || uses.starts_with(".\\") {
        let parts: Vec<&str> = uses
            .split(['/', '\\'])
            .filter(|p| !p.is_empty() && *p != ".")
            .collect();
        return ActionRef::Local(parts.join("/"));
    }
    let name = uses.split('@').next().unwrap_or(uses).to_ascii_lowercase();
    if BUILT_IN_ACTIONS.contains(&name.as_str()) {
        return ActionRef::BuiltIn(name);
    }
    ActionRef::Remote(remote_of(uses))
}

/// `owner/repo[/path]@ref` read as a repository's action.
fn remote_of(uses: &str) -> Remote {
    let (path, git_ref) = uses.split_once('@').unwrap_or((uses, ""));
    let mut parts = path.split(['/', '\\']).filter(|p| !p.is_empty());
    let owner = parts.next().unwrap_or_default().to_string();
    let repo = parts.next().unwrap_or_default().to_string();
    Remote {
        owner,
        repo,
        path: parts.collect::<Vec<_>>().join("/"),
        git_ref: git_ref.to_string(),
    }
}

/// Where an action's files are.
#[derive(Debug, Clone, PartialEq)]
pub enum Location {
    /// In the job's workspace, at this path relative to it (`uses: ./path`).
    Workspace(String),
    /// In the action cache on this host: the checked-out commit, and the action's folder in it.
    Cache {
        dir: PathBuf,
        path: String,
        sha: String,
    },
}

/// An action whose metadata was read.
#[derive(Debug, Clone, PartialEq)]
pub struct Action {
    /// The `uses:` it was read for.
    pub uses: String,
    /// Its metadata file as messages name it (`.github/actions/hello/action.yml`).
    pub file: String,
    pub location: Location,
    pub manifest: ActionManifest,
}

impl Action {
    /// The folder that holds its files in the job's container (`GITHUB_ACTION_PATH`).
    pub fn container_dir(&self, workspace: &str) -> String {
        match &self.location {
            Location::Workspace(path) => join(workspace, path),
            Location::Cache { path, sha, .. } => join(&format!("{CONTAINER_DIR}/{sha}"), path),
        }
    }
}

/// Where remote actions' files are copied in a job's container.
pub const CONTAINER_DIR: &str = "/berth/actions";

fn join(dir: &str, path: &str) -> String {
    if path.is_empty() {
        dir.trim_end_matches('/').to_string()
    } else {
        format!("{}/{path}", dir.trim_end_matches('/'))
    }
}

/// How a `uses:` stands after loading.
#[derive(Debug, Clone, PartialEq)]
pub enum Status {
    BuiltIn,
    /// Read (from the repository or the cache).
    Ready(Arc<Action>),
    /// A remote action not in the cache.
    Missing(Remote),
    /// A `docker://` image, run as it is.
    Image(String),
}

/// Every action a run's workflows use, by `uses:` as written.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Actions {
    found: Vec<(String, Status)>,
}

impl Actions {
    pub fn get(&self, uses: &str) -> Option<&Status> {
        self.found.iter().find(|(u, _)| u == uses).map(|(_, s)| s)
    }

    pub fn all(&self) -> &[(String, Status)] {
        &self.found
    }

    /// Each remote action read from the cache (its `uses:`) and the commit it runs at.
    pub fn pins(&self) -> Vec<(String, String)> {
        self.found
            .iter()
            .filter_map(|(uses, status)| match status {
                Status::Ready(a) => match &a.location {
                    Location::Cache { sha, .. } => Some((uses.clone(), sha.clone())),
                    Location::Workspace(_) => None,
                },
                _ => None,
            })
            .collect()
    }

    /// What `berth plan` says of a `uses:`: built in, local, cached (at its commit), missing.
    pub fn describe(&self, uses: &str) -> String {
        match self.get(uses) {
            None | Some(Status::BuiltIn) => "built in".to_string(),
            Some(Status::Ready(a)) => {
                // A Docker action's image: the one it names, or built from its Dockerfile.
                let image = match &a.manifest.runs {
                    Runs::Docker { image, .. } => match image.strip_prefix("docker://") {
                        Some(reference) => format!(", image {reference}"),
                        None => format!(", image built from its {image}"),
                    },
                    _ => String::new(),
                };
                match &a.location {
                    Location::Workspace(_) => format!("local, {}{image}", a.manifest.runs.kind()),
                    Location::Cache { sha, .. } => {
                        format!(
                            "cached at {}, {}{image}",
                            &sha[..sha.len().min(12)],
                            a.manifest.runs.kind()
                        )
                    }
                }
            }
            Some(Status::Missing(_)) => "missing (berth actions pull fetches it)".to_string(),
            Some(Status::Image(image)) => format!("docker image {image}"),
        }
    }
}

/// Composites nest at most this deep (GitHub's limit: nine levels under the job's step).
const MAX_DEPTH: usize = 10;

/// Reads the metadata of every action `workflows` use, following composites into the actions
/// they use; each file read joins `sources`. `project` is the repository on this host.
/// `Err`: every mistake found (a missing or bad `action.yml`, a composite that uses itself),
/// placed in its file.
pub fn load(
    workflows: &[(String, Workflow)],
    project: &Path,
    cache: &cache::Cache,
    sources: &mut SourceMap,
) -> Result<Actions, Vec<Diagnostic>> {
    let mut actions = Actions::default();
    let mut errors = Vec::new();
    // Each `uses:` with where it was written, and the chain of composites it is inside.
    let mut todo: Vec<(String, Option<crate::source::yaml::Span>, Vec<String>)> = Vec::new();
    for (_, wf) in workflows {
        for job in &wf.jobs {
            if let workflow::JobKind::Steps(sj) = &job.kind {
                for step in &sj.steps {
                    if let StepAction::Uses { uses, .. } = &step.action {
                        todo.push((uses.clone(), Some(step.span), Vec::new()));
                    }
                }
            }
        }
    }
    while let Some((uses, span, chain)) = todo.pop() {
        if chain.contains(&uses) || chain.len() >= MAX_DEPTH {
            let message = if chain.contains(&uses) {
                format!(
                    "the composite action `{uses}` uses itself ({})",
                    chain.join(" → ")
                )
            } else {
                format!("composite actions nest deeper than {MAX_DEPTH} levels at `{uses}`")
            };
            errors.push(Diagnostic::error(message, span));
            continue;
        }
        if actions.get(&uses).is_some() {
            continue;
        }
        let reference = match parse_ref(&uses) {
            // The user asked for the real action: it is one like any other.
            ActionRef::BuiltIn(name) if cache.runs_real(&name) => {
                ActionRef::Remote(remote_of(&uses))
            }
            other => other,
        };
        let status = match reference {
            ActionRef::BuiltIn(_) => Status::BuiltIn,
            ActionRef::Docker(image) => Status::Image(image),
            ActionRef::Local(path) => {
                match read(
                    &uses,
                    &project.join(&path),
                    &path,
                    Location::Workspace(path.clone()),
                    sources,
                ) {
                    Ok(a) => Status::Ready(Arc::new(a)),
                    Err(e) => {
                        errors.push(e.unwrap_or_else(|| {
                            Diagnostic::error(
                                format!("`uses: {uses}`: there is no action.yml or action.yaml in `{path}` (a local action is read from the repository)"),
                                span,
                            )
                        }));
                        continue;
                    }
                }
            }
            ActionRef::Remote(remote) => match cache.resolve(&remote) {
                None => Status::Missing(remote),
                Some((sha, dir)) => {
                    let folder = dir.join(&remote.path);
                    let location = Location::Cache {
                        dir: dir.clone(),
                        path: remote.path.clone(),
                        sha: sha.clone(),
                    };
                    let shown = format!("{}@{}", remote.name(), &sha[..sha.len().min(12)]);
                    match read(&uses, &folder, &shown, location, sources) {
                        Ok(a) => Status::Ready(Arc::new(a)),
                        Err(e) => {
                            errors.push(e.unwrap_or_else(|| {
                                Diagnostic::error(
                                    format!("`uses: {uses}`: the fetched commit {sha} has no action.yml or action.yaml in `{}`", if remote.path.is_empty() { "." } else { &remote.path }),
                                    span,
                                )
                            }));
                            continue;
                        }
                    }
                }
            },
        };
        if let Status::Ready(action) = &status {
            if let Runs::Composite { steps } = &action.manifest.runs {
                let mut inner = chain.clone();
                inner.push(uses.clone());
                for step in steps {
                    if let StepAction::Uses { uses, .. } = &step.action {
                        todo.push((uses.clone(), Some(step.span), inner.clone()));
                    }
                }
            }
        }
        actions.found.push((uses, status));
    }
    if errors.is_empty() {
        Ok(actions)
    } else {
        Err(errors)
    }
}

/// Reads `dir/action.yml` (else `action.yaml`). `Err(None)`: neither exists.
fn read(
    uses: &str,
    dir: &Path,
    shown: &str,
    location: Location,
    sources: &mut SourceMap,
) -> Result<Action, Option<Diagnostic>> {
    for name in ["action.yml", "action.yaml"] {
        let path = dir.join(name);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                return Err(Some(Diagnostic::error(
                    format!("`uses: {uses}`: cannot read {}: {e}", path.display()),
                    None,
                )))
            }
        };
        let file_name = if shown.contains('@') {
            format!("{shown}/{name}")
        } else if shown.is_empty() {
            name.to_string()
        } else {
            format!("{shown}/{name}")
        };
        let file = sources.add(file_name.clone(), text.clone());
        return match workflow::parse_action(&text, file) {
            Ok(manifest) => Ok(Action {
                uses: uses.to_string(),
                file: file_name,
                location,
                manifest,
            }),
            // The first error is the one shown; the rest follow it in the load's list.
            Err(mut errors) => Err(Some(errors.remove(0))),
        };
    }
    Err(None)
}

/// Every remote action `workflows` name, with those inside the composites already read.
pub fn remotes(workflows: &[(String, Workflow)], actions: &Actions) -> Vec<Remote> {
    let mut out: Vec<Remote> = Vec::new();
    let mut push = |uses: &str| {
        let remote = match (parse_ref(uses), actions.get(uses)) {
            (ActionRef::Remote(r), _) => Some(r),
            // A built-in the user runs for real, as loaded.
            (ActionRef::BuiltIn(_), Some(Status::Missing(r))) => Some(r.clone()),
            (ActionRef::BuiltIn(_), Some(Status::Ready(_))) => Some(remote_of(uses)),
            _ => None,
        };
        if let Some(r) = remote.filter(|r| !out.contains(r)) {
            out.push(r);
        }
    };
    for (_, wf) in workflows {
        for job in &wf.jobs {
            if let workflow::JobKind::Steps(sj) = &job.kind {
                for step in &sj.steps {
                    if let StepAction::Uses { uses, .. } = &step.action {
                        push(uses);
                    }
                }
            }
        }
    }
    for (uses, _) in actions.all() {
        push(uses);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uses_names_a_built_in_a_folder_a_repository_or_an_image() {
        assert_eq!(
            parse_ref("actions/checkout@v4"),
            ActionRef::BuiltIn("actions/checkout".into())
        );
        assert_eq!(
            parse_ref("./.github/actions//hello/"),
            ActionRef::Local(".github/actions/hello".into())
        );
        assert_eq!(
            parse_ref("docker://alpine:3.20"),
            ActionRef::Docker("alpine:3.20".into())
        );
        let ActionRef::Remote(r) = parse_ref("octo/tools/lint/ruff@v2") else {
            panic!()
        };
        assert_eq!(
            (
                r.owner.as_str(),
                r.repo.as_str(),
                r.path.as_str(),
                r.git_ref.as_str()
            ),
            ("octo", "tools", "lint/ruff", "v2")
        );
        assert_eq!(r.name(), "octo/tools/lint/ruff@v2");
    }

    fn workflow(text: &str) -> Vec<(String, Workflow)> {
        let parsed = workflow::parse(text, 0).unwrap();
        vec![("ci.yml".to_string(), parsed.workflow)]
    }

    #[test]
    fn local_composites_are_followed_and_their_mistakes_placed() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(dir.path().join("b")).unwrap();
        std::fs::write(
            a.join("action.yml"),
            "name: a\nruns:\n  using: composite\n  steps:\n    - uses: ./b\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("b/action.yaml"),
            "name: b\nruns:\n  using: node20\n  main: x.js\n",
        )
        .unwrap();
        let wfs = workflow("on: push\njobs:\n  t:\n    runs-on: x\n    steps:\n      - uses: ./a\n      - uses: actions/checkout@v4\n");
        let cache = cache::Cache::new(dir.path().join("cache"), "file:///nowhere".into());
        let mut sources = SourceMap::default();
        let actions = load(&wfs, dir.path(), &cache, &mut sources).unwrap();
        assert!(matches!(actions.get("./a"), Some(Status::Ready(a)) if a.file == "a/action.yml"));
        assert!(
            matches!(actions.get("./b"), Some(Status::Ready(b)) if b.manifest.runs.kind() == "node20")
        );
        assert_eq!(actions.describe("actions/checkout@v4"), "built in");
        // A bad file: its error, in that file.
        std::fs::write(
            dir.path().join("b/action.yaml"),
            "name: b\nruns:\n  using: nodejs\n  main: x.js\n",
        )
        .unwrap();
        let mut sources = SourceMap::default();
        let errors = load(&wfs, dir.path(), &cache, &mut sources).unwrap_err();
        let span = errors[0].span.unwrap();
        assert_eq!(sources.get(span.file).unwrap().name, "b/action.yaml");
        assert_eq!((span.line, span.col), (3, 10));
        // A composite that uses itself.
        std::fs::write(
            dir.path().join("b/action.yaml"),
            "name: b\nruns:\n  using: composite\n  steps:\n    - uses: ./a\n",
        )
        .unwrap();
        let errors = load(&wfs, dir.path(), &cache, &mut SourceMap::default()).unwrap_err();
        assert!(errors[0].message.contains("uses itself"), "{errors:?}");
        // A folder without metadata.
        let wfs =
            workflow("on: push\njobs:\n  t:\n    runs-on: x\n    steps:\n      - uses: ./none\n");
        let errors = load(&wfs, dir.path(), &cache, &mut SourceMap::default()).unwrap_err();
        assert!(errors[0].message.contains("no action.yml"), "{errors:?}");
        assert_eq!(errors[0].span.unwrap().line, 6);
    }
}
