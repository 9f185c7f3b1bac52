//! `berth replay`: run recorded jobs again, after checking what drifted since.

use crate::engine;
use crate::engine::runtime::ContainerRuntime as _;
use crate::project::git::Facts;
use crate::source::Source;
use crate::store::record::{self, PipelineFile, RunManifest};
use std::path::Path;

use clap::Parser;

use super::args::{Cli, Command, ReplayArgs};
use super::run::{cmd_run, RunMode};
use super::setup::{pick_run, project_and_engine};
use super::CliError;

/// `berth replay`: check what drifted since the recorded run, then run its jobs again with the
/// recorded environments in the recorded images.
pub(super) async fn cmd_replay(cli: &Cli, args: &ReplayArgs) -> Result<(), CliError> {
    let (picked, jobs) = pick_run(cli, &args.names, 0..=usize::MAX)?;
    let run_id = &picked.id;
    let manifest = picked.manifest()?;
    let selected: Vec<&record::JobRecord> = manifest
        .jobs
        .iter()
        .filter(|j| {
            if jobs.is_empty() {
                j.started_at.is_some()
            } else {
                jobs.contains(&j.name)
            }
        })
        .collect();
    let unknown: Vec<&String> = jobs
        .iter()
        .filter(|n| !manifest.jobs.iter().any(|j| &j.name == *n))
        .collect();
    if !unknown.is_empty() || selected.is_empty() {
        return Err(CliError::input(format!(
            "run {run_id} has no recorded job {}",
            if unknown.is_empty() {
                "that ran".to_string()
            } else {
                unknown
                    .iter()
                    .map(|n| format!("`{n}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        )));
    }
    let (project, engine) = project_and_engine(cli).await?;

    // What changed since the run.
    let mut drift = Vec::new();
    let now = Facts::new(&project, 0);
    if now.commit_sha != manifest.commit {
        drift.push(format!(
            "the commit is {}, the run was at {}",
            short(&now.commit_sha),
            short(&manifest.commit)
        ));
    }
    if now.dirty {
        drift.push("the working tree has uncommitted changes".to_string());
    }
    // A workflow run records the workflow's path in the repository (GitLab's: discovered).
    let recorded = project.join(&manifest.pipeline);
    let file = cli
        .file
        .clone()
        .or_else(|| Source::discover(&project))
        .or_else(|| {
            (crate::github::is_workflow_path(&recorded) && recorded.is_file()).then_some(recorded)
        });
    match file.as_deref().map(std::fs::read) {
        Some(Ok(bytes)) => {
            use sha2::{Digest, Sha256};
            if hex::encode(Sha256::digest(&bytes)) != manifest.pipeline_sha256 {
                drift.push(format!(
                    "the pipeline file {} changed since the run",
                    manifest.pipeline
                ));
            }
        }
        _ => drift.push(format!("the pipeline file {} is gone", manifest.pipeline)),
    }
    drift.extend(changed_files(&project, &manifest));
    let mut secrets = std::collections::BTreeSet::new();
    let mut replay = engine::Replay::default();
    for job in &selected {
        match &job.image_id {
            Some(id) => match engine.image_id(&job.image).await {
                Ok(Some(current)) if &current == id => {}
                Ok(Some(current)) => drift.push(format!(
                    "job `{}`: image {} is now {}, the run used {}",
                    job.name,
                    job.image,
                    short_id(&current),
                    short_id(id)
                )),
                Ok(None) => match engine.image_id(id).await {
                    Ok(Some(_)) => {}
                    _ => drift.push(format!(
                        "job `{}`: the image it ran in ({}, {}) is no longer present",
                        job.name,
                        job.image,
                        short_id(id)
                    )),
                },
                Err(e) => return Err(CliError::engine(e)),
            },
            None => drift.push(format!("job `{}`: the record names no image ID", job.name)),
        }
        let mut env = Vec::new();
        for (k, v) in &job.variables {
            if v == crate::events::MASK {
                match std::env::var(k) {
                    Ok(value) => {
                        secrets.insert(k.clone());
                        env.push((k.clone(), value));
                    }
                    Err(_) => drift.push(format!(
                        "job `{}`: secret {k} is not set in berth's environment",
                        job.name
                    )),
                }
            } else {
                env.push((k.clone(), v.clone()));
            }
        }
        replay.jobs.insert(
            job.name.clone(),
            engine::ReplayJob {
                env,
                image: job.image_id.clone(),
            },
        );
    }
    if !drift.is_empty() {
        if !args.allow_drift {
            return Err(CliError::Drifted {
                run: run_id.clone(),
                drift,
            });
        }
        eprintln!("berth: run {run_id} drifted (replaying anyway):");
        for d in &drift {
            eprintln!("  - {d}");
        }
    }
    // `berth run`'s own defaults, from its definition, with what the record fixes on top.
    let mut run_args = match Cli::try_parse_from(["berth", "run"]) {
        Ok(Cli {
            command: Command::Run(args),
            ..
        }) => args,
        _ => {
            return Err(CliError::input(
                "replay: cannot take `berth run`'s defaults",
            ))
        }
    };
    run_args.jobs = selected.iter().map(|j| j.name.clone()).collect();
    run_args.origin.branch = manifest.branch.clone();
    run_args.origin.tag = manifest.tag.clone();
    if !manifest.source.is_empty() {
        run_args.origin.source = manifest.source.clone();
    }
    run_args.manual = true;
    run_args.output = args.output;
    run_args.secrets = secrets.into_iter().collect();
    cmd_run(cli, &run_args, RunMode::Run, Some(replay), None).await
}

pub(super) fn short(sha: &str) -> &str {
    &sha[..sha.len().min(8)]
}

pub(super) fn short_id(id: &str) -> &str {
    let id = id.strip_prefix("sha256:").unwrap_or(id);
    &id[..id.len().min(12)]
}

/// The pipeline files besides the main one (includes, other workflows) that changed or are gone
/// since the run. A record is untrusted: a path is read only inside the project, through no link.
fn changed_files(project: &Path, manifest: &RunManifest) -> Vec<String> {
    let mut drift = Vec::new();
    for file in manifest
        .files
        .iter()
        .filter(|f| f.path != manifest.pipeline)
    {
        let text = crate::store::open_in_record(project, &file.path).and_then(|mut f| {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut f, &mut text).map(|_| text)
        });
        match text {
            Ok(text) if PipelineFile::digest(&text) == file.sha256 => {}
            Ok(_) => drift.push(format!(
                "the pipeline file {} changed since the run",
                file.path
            )),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                drift.push(format!("the pipeline file {} is gone", file.path))
            }
            Err(e) => drift.push(format!("the pipeline file {}: {e}", file.path)),
        }
    }
    drift
}
