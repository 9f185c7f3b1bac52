//! Loading GitHub workflows: read every file, keep those the event triggers (with the files it
//! changed for `paths` filters), lower each to berth's model and make one pipeline of their
//! jobs. Bad input in any file fails the whole load before anything starts.

use std::path::Path;

use crate::github;
use crate::pipeline::{Failed, Format, Loaded, Pipeline};
use crate::project::git::Facts;
use crate::source::diag::SourceMap;
use crate::source::Source;

/// What a load starts from besides the files and the project's facts.
#[derive(Debug, Clone, Copy)]
pub struct Options<'a> {
    /// The event (`push`, `pull_request`...).
    pub event: &'a str,
    /// A pull request's base branch (`None`: the default branch).
    pub base: Option<&'a str>,
    /// `-e` values: in the `secrets` context too, unmasked.
    pub env: &'a [(String, String)],
    /// `--secret`s: win over `env`, and are masked.
    pub secrets: &'a [(String, String)],
    /// `runs-on` labels to images, later ones winning (the user's file, then `--platform`).
    pub platforms: &'a [(String, String)],
    /// `workflow_dispatch` inputs given (`--input`).
    pub inputs: &'a [(String, String)],
    /// The event payload (`--event-payload`); `None`: the one GitHub would send for the commit.
    pub payload: Option<&'a serde_json::Value>,
    /// Where remote actions are cached.
    pub action_cache: &'a github::actions::cache::Cache,
}

/// How a load ended.
#[derive(Debug)]
pub enum Load {
    /// The pipeline of the triggered workflows' jobs.
    Runs(Box<Loaded>),
    /// No workflow runs for the event: why, for each.
    NothingRuns { notes: Vec<String> },
    /// A workflow a job calls is not in the action cache, and berth fetches nothing during a
    /// run: what is missing and the command that fetches it.
    Missing { message: String },
}

/// Load the workflows of `sources` (named as the repository names them) for a run of
/// `options.event` on the commit `context` describes.
pub fn load(sources: &[Source], context: &Facts, options: &Options) -> Result<Load, Failed> {
    let mut map = SourceMap::default();
    let mut read = Vec::new();
    let mut diagnostics = Vec::new();
    let mut warnings = Vec::new();
    for source in sources {
        let file = map.add(source.name.clone(), source.text.clone());
        match github::workflow::parse(&source.text, file) {
            Ok(parsed) => {
                warnings.extend(parsed.warnings);
                read.push((source.name.clone(), parsed.workflow));
            }
            Err(errors) => diagnostics.extend(errors),
        }
    }
    let sources = map;
    let fail = |diagnostics, sources: &SourceMap| Failed {
        diagnostics,
        sources: sources.clone(),
    };
    if !diagnostics.is_empty() {
        return Err(fail(diagnostics, &sources));
    }
    // A pull request's filters look at the branch it targets, and its diff starts there.
    let base = matches!(options.event, "pull_request" | "pull_request_target").then(|| {
        options
            .base
            .map(String::from)
            .unwrap_or_else(|| context.default_branch.clone())
    });
    let git_ref = match (&base, &context.tag, &context.branch) {
        (Some(base), _, _) => Some(github::trigger::GitRef::Branch(base.clone())),
        (None, Some(tag), _) => Some(github::trigger::GitRef::Tag(tag.clone())),
        (None, None, Some(branch)) => Some(github::trigger::GitRef::Branch(branch.clone())),
        (None, None, None) => None,
    };
    let changed = changed_files(&read, options.event, context, base.as_deref());
    // `types:` are checked against a payload's `action` when one is given: berth's own payload
    // says what a push to a pull request is, and would narrow every other activity out.
    let activity = options
        .payload
        .and_then(|p| p.get("action"))
        .and_then(|a| a.as_str());
    let event = github::trigger::Event {
        name: options.event,
        git_ref,
        changed_files: changed.as_deref(),
        activity,
    };
    let mut run = github::run::Run::from_git(context, options.event);
    run.base_ref = base.clone();
    run.inputs = options.inputs.to_vec();
    run.event = match options.payload {
        Some(payload) => payload.clone(),
        None => run.payload(context),
    };
    run.secrets = options.env.to_vec();
    for (k, v) in options.secrets {
        match run.secrets.iter_mut().find(|(n, _)| n == k) {
            Some(slot) => slot.1 = v.clone(),
            None => run.secrets.push((k.clone(), v.clone())),
        }
    }
    let mut platforms = github::lower::Platforms::new();
    for (label, image) in options.platforms {
        platforms.set(label, image);
    }
    let choices = github::lower::choose(&read, &event);
    let notes: Vec<String> = choices
        .iter()
        .map(|c| {
            let runs = if c.decision.runs {
                "runs"
            } else {
                "does not run"
            };
            format!("{} {runs}: {}", c.file, c.decision.reason)
        })
        .collect();
    let chosen: Vec<_> = choices.into_iter().filter(|c| c.decision.runs).collect();
    // The actions of the workflows that run, read (and checked) before anything starts.
    let running: Vec<(String, github::workflow::Workflow)> = chosen
        .iter()
        .map(|c| (c.file.to_string(), c.workflow.clone()))
        .collect();
    let mut sources = sources;
    // The workflows jobs call, read (and checked) before anything starts, as actions are.
    let called = github::actions::reusable::load(
        &running,
        &context.project_dir,
        options.action_cache,
        &mut sources,
    )
    .map_err(|errors| fail(errors, &sources))?;
    let missing = called.missing();
    if !missing.is_empty() {
        let names: Vec<String> = missing.iter().map(|r| format!("`{}`", r.name())).collect();
        return Ok(Load::Missing {
            message: format!(
                "the reusable workflow{} {} {} not in berth's action cache, and berth runs without network: `berth actions pull` fetches {}",
                if names.len() == 1 { "" } else { "s" },
                names.join(", "),
                if names.len() == 1 { "is" } else { "are" },
                if names.len() == 1 { "it" } else { "them" },
            ),
        });
    }
    let with_called: Vec<(String, github::workflow::Workflow)> =
        running.iter().cloned().chain(called.workflows()).collect();
    let actions = github::actions::load(
        &with_called,
        &context.project_dir,
        options.action_cache,
        &mut sources,
    )
    .map_err(|errors| fail(errors, &sources))?;
    // `berth plan` says which actions each job uses and whether berth has them.
    let mut notes = notes;
    for (file, wf) in &with_called {
        for job in &wf.jobs {
            if let github::workflow::JobKind::Reusable(r) = &job.kind {
                notes.push(format!(
                    "{file}: job `{}` calls {}: {}",
                    job.id,
                    r.uses,
                    describe_called(&called, &r.uses)
                ));
            }
            if let github::workflow::JobKind::Steps(sj) = &job.kind {
                for step in &sj.steps {
                    if let github::workflow::StepAction::Uses { uses, .. } = &step.action {
                        notes.push(format!(
                            "{file}: job `{}` uses {uses}: {}",
                            job.id,
                            actions.describe(uses)
                        ));
                    }
                }
            }
        }
    }
    let mut pins = actions.pins();
    pins.extend(called.pins());
    run.actions = std::sync::Arc::new(actions);
    let mut pipeline: Option<Pipeline> = None;
    for choice in &chosen {
        let mut lowered =
            github::lower::lower_calling(choice.workflow, choice.file, &run, &platforms, &called)
                .map_err(|errors| fail(errors, &sources))?;
        warnings.append(&mut lowered.warnings);
        if let Some(p) = &pipeline {
            rename_taken(&mut lowered.pipeline.jobs, &p.jobs, choice.file);
        }
        match &mut pipeline {
            None => pipeline = Some(lowered.pipeline),
            Some(p) => {
                for stage in lowered.pipeline.stages {
                    if !p.stages.contains(&stage) {
                        p.stages.push(stage);
                    }
                }
                p.jobs.extend(lowered.pipeline.jobs);
            }
        }
    }
    let Some(pipeline) = pipeline else {
        return Ok(Load::NothingRuns { notes });
    };
    Ok(Load::Runs(Box::new(Loaded {
        pipeline,
        warnings,
        sources,
        refused: None,
        format: Format::GitHub,
        notes,
        pins,
    })))
}

/// Every remote action the workflow files name (inside composites already read too),
/// whatever triggers them: what `berth actions pull` fetches. `Err`: a file that cannot be read.
pub fn remote_actions(
    sources: &[Source],
    project: &Path,
    cache: &github::actions::cache::Cache,
) -> Result<Vec<github::actions::Remote>, Failed> {
    let mut map = SourceMap::default();
    let mut read = Vec::new();
    let mut diagnostics = Vec::new();
    for source in sources {
        let file = map.add(source.name.clone(), source.text.clone());
        match github::workflow::parse(&source.text, file) {
            Ok(parsed) => read.push((source.name.clone(), parsed.workflow)),
            Err(errors) => diagnostics.extend(errors),
        }
    }
    // Called workflows name actions and further workflows: both are fetched.
    let called = match github::actions::reusable::load(&read, project, cache, &mut map) {
        Ok(c) => c,
        Err(errors) => {
            diagnostics.extend(errors);
            Default::default()
        }
    };
    read.extend(called.workflows());
    let actions = github::actions::load(&read, project, cache, &mut map);
    let actions = match actions {
        Ok(a) => a,
        Err(errors) => {
            diagnostics.extend(errors);
            Default::default()
        }
    };
    if !diagnostics.is_empty() {
        return Err(Failed {
            diagnostics,
            sources: map,
        });
    }
    let mut remotes = called.remotes();
    for r in github::actions::remotes(&read, &actions) {
        if !remotes.contains(&r) {
            remotes.push(r);
        }
    }
    Ok(remotes)
}

/// What `berth plan` says of a called workflow: local, or cached at its commit.
fn describe_called(called: &github::actions::reusable::Called, uses: &str) -> String {
    use github::actions::reusable::CalledStatus;
    match called.get(uses) {
        Some(CalledStatus::Ready(c)) => match &c.sha {
            Some(sha) => format!("reusable workflow, cached at {}", &sha[..sha.len().min(12)]),
            None => format!("reusable workflow, local ({})", c.file),
        },
        Some(CalledStatus::Missing(_)) => "missing (berth actions pull fetches it)".to_string(),
        None => "not read".to_string(),
    }
}

/// The files the event changed, for the `paths` filters of `event` (asked of git only when a
/// workflow has one): a push's commit against its parent, a pull request's against its merge
/// base with `base`, uncommitted and untracked files included (as for GitLab's `changes`).
/// `None` when git cannot tell (no repository, no parent commit, no base): the filters pass.
fn changed_files(
    workflows: &[(String, github::workflow::Workflow)],
    event: &str,
    context: &Facts,
    base: Option<&str>,
) -> Option<Vec<String>> {
    use crate::project::git::ChangedFiles;
    let filtered = workflows.iter().any(|(_, w)| {
        w.trigger(event)
            .is_some_and(|t| t.paths.is_some() || t.paths_ignore.is_some())
    });
    if !filtered {
        return None;
    }
    let changes = match base {
        Some(base) => context.changes_against(base),
        None => context.changes(),
    };
    changes.changed(None).ok().flatten()
}

/// Jobs of a workflow whose check-run names another workflow's jobs already have get the
/// workflow's file name (`test [ci.yml]`), as in-workflow duplicates get their job id: the
/// engine, the logs and the run record know jobs by name. Their needs follow.
fn rename_taken(jobs: &mut [crate::pipeline::Job], taken: &[crate::pipeline::Job], file: &str) {
    let short = Path::new(file)
        .file_name()
        .map_or(file.to_string(), |n| n.to_string_lossy().into_owned());
    let is_taken = |name: &str, jobs: &[crate::pipeline::Job]| {
        taken.iter().chain(jobs).any(|j| j.name == name)
    };
    let mut renamed: Vec<(String, String)> = Vec::new();
    for i in 0..jobs.len() {
        if !taken.iter().any(|j| j.name == jobs[i].name) {
            continue;
        }
        let mut name = format!("{} [{short}]", jobs[i].name);
        let mut n = 2;
        while is_taken(&name, jobs) {
            name = format!("{} [{short} {n}]", jobs[i].name);
            n += 1;
        }
        renamed.push((jobs[i].name.clone(), name.clone()));
        jobs[i].name = name;
    }
    for job in jobs.iter_mut() {
        for need in job.needs.iter_mut().flatten() {
            if let Some((_, new)) = renamed.iter().find(|(old, _)| *old == need.job) {
                need.job = new.clone();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_are_checked_against_a_given_payloads_action() {
        let dir = tempfile::tempdir().unwrap();
        let facts = Facts::new(dir.path(), 1);
        let source = Source {
            path: dir.path().join("ci.yml"),
            name: ".github/workflows/ci.yml".to_string(),
            text: "on:\n  pull_request:\n    types: [closed]\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps: [{run: echo}]\n".to_string(),
        };
        let load = |payload: Option<&serde_json::Value>| {
            let options = Options {
                event: "pull_request",
                base: None,
                env: &[],
                secrets: &[],
                platforms: &[],
                inputs: &[],
                payload,
                action_cache: &github::actions::cache::Cache::new(
                    dir.path().join("actions"),
                    "file:///nowhere".into(),
                ),
            };
            load(std::slice::from_ref(&source), &facts, &options).unwrap()
        };
        // berth's own payload: not checked.
        assert!(matches!(load(None), Load::Runs(_)));
        let opened = serde_json::json!({"action": "opened"});
        match load(Some(&opened)) {
            Load::NothingRuns { notes } => {
                assert!(notes[0].contains("`opened` is not in types"), "{notes:?}")
            }
            _ => panic!("an opened pull request runs a workflow of closed ones"),
        }
        let closed = serde_json::json!({"action": "closed"});
        assert!(matches!(load(Some(&closed)), Load::Runs(_)));
    }

    fn git(dir: &Path, args: &[&str]) {
        let out = std::process::Command::new("git")
            .args(args)
            .current_dir(dir)
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.com")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.com")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    #[test]
    fn path_filters_see_a_pushs_commit_and_a_pull_requests_merge_base_diff() {
        let dir = tempfile::tempdir().unwrap();
        let dir = dir.path();
        let workflow = "on:\n  push:\n    paths: [src/**]\n  pull_request:\n    paths: [src/**]\n  workflow_dispatch:\njobs:\n  a:\n    runs-on: x\n    steps: [{run: echo}]\n";
        let read = vec![(
            "ci.yml".to_string(),
            github::workflow::parse(workflow, 0).unwrap().workflow,
        )];
        let write = |f: &str| {
            std::fs::create_dir_all(dir.join(f).parent().unwrap()).unwrap();
            std::fs::write(dir.join(f), f).unwrap();
        };
        git(dir, &["init", "-q", "-b", "main"]);
        write("README.md");
        git(dir, &["add", "-A"]);
        git(dir, &["commit", "-q", "-m", "base"]);
        git(dir, &["checkout", "-q", "-b", "feature"]);
        write("src/a.py");
        git(dir, &["add", "-A"]);
        git(dir, &["commit", "-q", "-m", "a"]);
        write("src/b.py");
        git(dir, &["add", "-A"]);
        git(dir, &["commit", "-q", "-m", "b"]);
        // The base branch moves on after the pull request left it.
        git(dir, &["checkout", "-q", "main"]);
        write("docs/later.md");
        git(dir, &["add", "-A"]);
        git(dir, &["commit", "-q", "-m", "later"]);
        git(dir, &["checkout", "-q", "feature"]);
        let facts = Facts::new(dir, 1);
        let changed = |event, base| changed_files(&read, event, &facts, base);
        // A push: its commit against its parent.
        assert_eq!(changed("push", None), Some(vec!["src/b.py".to_string()]));
        // A pull request: everything since it left main, nothing main did since.
        assert_eq!(
            changed("pull_request", Some("main")),
            Some(vec!["src/a.py".to_string(), "src/b.py".to_string()])
        );
        // No base to compare with: unknown, so the filters pass.
        assert_eq!(changed("pull_request", Some("gone")), None);
        // No workflow filters paths for this event: git is not asked.
        assert_eq!(changed("workflow_dispatch", None), None);
        // Uncommitted and untracked files count, as for GitLab's `changes`.
        write("src/new.py");
        assert_eq!(
            changed("push", None),
            Some(vec!["src/b.py".to_string(), "src/new.py".to_string()])
        );
    }
}
