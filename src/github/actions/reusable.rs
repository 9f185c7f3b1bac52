//! The workflows jobs call (`jobs.<id>.uses:`): `./.github/workflows/x.yml` read from the
//! repository, `owner/repo/.github/workflows/x.yml@ref` from the action cache (fetched by
//! `berth actions pull` as actions are), each read and checked before anything runs, nested
//! calls followed up to GitHub's limit and cycles refused.

use std::path::Path;
use std::sync::Arc;

use super::{cache, parse_ref, ActionRef, Remote};
use crate::github::workflow::{self, JobKind, Workflow};
use crate::source::diag::{Diagnostic, SourceMap};
use crate::source::yaml::Span;

/// Workflows nest at most this deep, the top caller included: GitHub.com's limit ("up to ten
/// levels of workflows": the caller and nine reusable workflows below it).
pub const MAX_LEVELS: usize = 10;

/// A called workflow, read.
#[derive(Debug, Clone, PartialEq)]
pub struct CalledWorkflow {
    /// Its file as messages name it (`.github/workflows/build.yml`, or
    /// `octo/ci/.github/workflows/build.yml@0123456789ab` from the cache).
    pub file: String,
    pub workflow: Workflow,
    /// The commit it was read at, for one from the cache.
    pub sha: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum CalledStatus {
    Ready(Arc<CalledWorkflow>),
    /// A remote workflow not in the cache.
    Missing(Remote),
}

/// Every workflow a run's jobs call, by `uses:` as written.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Called {
    found: Vec<(String, CalledStatus)>,
}

impl Called {
    pub fn get(&self, uses: &str) -> Option<&CalledStatus> {
        self.found.iter().find(|(u, _)| u == uses).map(|(_, s)| s)
    }

    pub fn all(&self) -> &[(String, CalledStatus)] {
        &self.found
    }

    /// The workflows read, with their file names: their steps use actions too.
    pub fn workflows(&self) -> Vec<(String, Workflow)> {
        self.found
            .iter()
            .filter_map(|(_, s)| match s {
                CalledStatus::Ready(c) => Some((c.file.clone(), c.workflow.clone())),
                CalledStatus::Missing(_) => None,
            })
            .collect()
    }

    /// Each remote workflow read from the cache (its `uses:`) and its commit.
    pub fn pins(&self) -> Vec<(String, String)> {
        self.found
            .iter()
            .filter_map(|(uses, s)| match s {
                CalledStatus::Ready(c) => c.sha.clone().map(|sha| (uses.clone(), sha)),
                CalledStatus::Missing(_) => None,
            })
            .collect()
    }

    /// The remote workflows named (read or missing): what `berth actions pull` fetches.
    pub fn remotes(&self) -> Vec<Remote> {
        let mut out: Vec<Remote> = Vec::new();
        for (uses, _) in &self.found {
            if let ActionRef::Remote(r) = parse_ref(uses) {
                if !out.contains(&r) {
                    out.push(r);
                }
            }
        }
        out
    }

    /// The remote workflows not in the cache.
    pub fn missing(&self) -> Vec<&Remote> {
        self.found
            .iter()
            .filter_map(|(_, s)| match s {
                CalledStatus::Missing(r) => Some(r),
                CalledStatus::Ready(_) => None,
            })
            .collect()
    }
}

/// What a job's `uses:` names: a file of this repository (`.github/workflows/x.yml`) or of
/// a remote one. `Err`: why it is not a reusable workflow's reference.
fn reference(uses: &str) -> Result<ActionRef, String> {
    let in_workflows = |path: &str| {
        let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
        dir == ".github/workflows" && (name.ends_with(".yml") || name.ends_with(".yaml"))
    };
    let expected =
        "expected ./.github/workflows/FILE.yml or OWNER/REPO/.github/workflows/FILE.yml@REF";
    if let Some(path) = uses.strip_prefix("./") {
        if in_workflows(path) && !path.contains('@') {
            return Ok(ActionRef::Local(path.to_string()));
        }
        return Err(expected.to_string());
    }
    match parse_ref(uses) {
        ActionRef::Remote(r)
            if !r.owner.is_empty()
                && !r.repo.is_empty()
                && !r.git_ref.is_empty()
                && in_workflows(&r.path) =>
        {
            Ok(ActionRef::Remote(r))
        }
        _ => Err(expected.to_string()),
    }
}

/// One call to follow: the `uses:`, where it is written, the calling job, and the files of
/// the workflows above it (the top caller first).
struct Call {
    uses: String,
    span: Span,
    job: String,
    chain: Vec<String>,
    /// The `uses:` that led here, for cycles.
    above: Vec<String>,
}

fn calls_of(workflow: &Workflow, chain: &[String], above: &[String]) -> Vec<Call> {
    workflow
        .jobs
        .iter()
        .filter_map(|job| match &job.kind {
            JobKind::Reusable(r) => Some(Call {
                uses: r.uses.clone(),
                span: r.uses_span,
                job: job.id.clone(),
                chain: chain.to_vec(),
                above: above.to_vec(),
            }),
            JobKind::Steps(_) => None,
        })
        .collect()
}

/// Reads every workflow the jobs of `workflows` call, and those they call in turn; each file
/// read joins `sources`. `Err`: every mistake found (a file that is not there, is not a
/// reusable workflow or cannot be read, a cycle, nesting beyond [`MAX_LEVELS`]), placed at the
/// calling job's `uses:` or in the called file.
pub fn load(
    workflows: &[(String, Workflow)],
    project: &Path,
    cache: &cache::Cache,
    sources: &mut SourceMap,
) -> Result<Called, Vec<Diagnostic>> {
    let mut called = Called::default();
    let mut errors = Vec::new();
    let mut todo: Vec<Call> = Vec::new();
    for (file, wf) in workflows {
        todo.extend(
            calls_of(wf, std::slice::from_ref(file), &[])
                .into_iter()
                .rev(),
        );
    }
    while let Some(call) = todo.pop() {
        let error = |message: String| Diagnostic::error(message, Some(call.span)).in_job(&call.job);
        let r = match reference(&call.uses) {
            Ok(r) => r,
            Err(help) => {
                errors.push(
                    error(format!(
                        "`uses: {}` is not a reusable workflow's reference",
                        call.uses
                    ))
                    .with_help(help),
                );
                continue;
            }
        };
        let shown_uses = call.uses.strip_prefix("./").unwrap_or(&call.uses);
        if call.chain.first().is_some_and(|f| f == shown_uses) || call.above.contains(&call.uses) {
            errors.push(error(format!(
                "job `{}` calls `{}`, which is already being called: {} → {} (a workflow cannot call itself)",
                call.job,
                call.uses,
                call.chain.join(" → "),
                shown_uses
            )));
            continue;
        }
        if call.chain.len() >= MAX_LEVELS {
            errors.push(error(format!(
                "job `{}` calls `{}` at level {}: workflows nest at most {MAX_LEVELS} levels deep, the top caller included, as on GitHub ({})",
                call.job,
                call.uses,
                call.chain.len() + 1,
                call.chain.join(" → ")
            )));
            continue;
        }
        let read = match called.get(&call.uses) {
            Some(CalledStatus::Ready(c)) => Some(c.clone()),
            Some(CalledStatus::Missing(_)) => None,
            None => {
                let status = match r {
                    ActionRef::Local(path) => {
                        read_file(&call, &project.join(&path), path.clone(), None, sources)
                    }
                    ActionRef::Remote(remote) => match cache.resolve(&remote) {
                        None => Ok(CalledStatus::Missing(remote)),
                        Some((sha, dir)) => {
                            let shown = format!(
                                "{}/{}/{}@{}",
                                remote.owner,
                                remote.repo,
                                remote.path,
                                &sha[..sha.len().min(12)]
                            );
                            read_file(&call, &dir.join(&remote.path), shown, Some(sha), sources)
                        }
                    },
                    ActionRef::BuiltIn(_) | ActionRef::Docker(_) => continue,
                };
                match status {
                    Ok(status) => {
                        let ready = match &status {
                            CalledStatus::Ready(c) => Some(c.clone()),
                            CalledStatus::Missing(_) => None,
                        };
                        called.found.push((call.uses.clone(), status));
                        ready
                    }
                    Err(mut e) => {
                        errors.append(&mut e);
                        continue;
                    }
                }
            }
        };
        if let Some(c) = read {
            let mut chain = call.chain.clone();
            chain.push(c.file.clone());
            let mut above = call.above.clone();
            above.push(call.uses.clone());
            todo.extend(calls_of(&c.workflow, &chain, &above).into_iter().rev());
        }
    }
    if errors.is_empty() {
        Ok(called)
    } else {
        Err(errors)
    }
}

/// Reads and checks the called file at `path`, shown as `shown`.
fn read_file(
    call: &Call,
    path: &Path,
    shown: String,
    sha: Option<String>,
    sources: &mut SourceMap,
) -> Result<CalledStatus, Vec<Diagnostic>> {
    let at = |message: String| vec![Diagnostic::error(message, Some(call.span)).in_job(&call.job)];
    // Only a regular file, as workflows are found: a link could lead anywhere.
    if std::fs::symlink_metadata(path).is_ok_and(|m| !m.file_type().is_file()) {
        return Err(at(format!(
            "job `{}` calls `{}`, which is not a regular file",
            call.job, call.uses
        )));
    }
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let whence = match &sha {
                Some(sha) => format!("the fetched commit {sha}"),
                None => "the repository".to_string(),
            };
            return Err(at(format!(
                "job `{}` calls `{}`, but {whence} has no such file",
                call.job, call.uses
            )));
        }
        Err(e) => {
            return Err(at(format!(
                "job `{}` calls `{}`: cannot read {}: {e}",
                call.job,
                call.uses,
                path.display()
            )))
        }
    };
    let file = sources.add(shown.clone(), text.clone());
    let parsed = workflow::parse(&text, file)?;
    if parsed.workflow.trigger("workflow_call").is_none() {
        return Err(at(format!(
            "job `{}` calls `{}`, which is not a reusable workflow: its `on:` has no `workflow_call`",
            call.job, call.uses
        )));
    }
    Ok(CalledStatus::Ready(Arc::new(CalledWorkflow {
        file: shown,
        workflow: parsed.workflow,
        sha,
    })))
}
