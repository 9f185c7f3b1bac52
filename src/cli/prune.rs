//! `berth prune`: remove what crashed runs left on the engine.

use crate::engine;

use super::args::{Cli, PruneArgs};
use super::setup::{connect, project_dir};
use super::CliError;

pub(super) async fn cmd_prune(cli: &Cli, args: &PruneArgs) -> Result<(), CliError> {
    let project = if args.all {
        None
    } else {
        Some(project_dir(cli)?.display().to_string())
    };
    let engine = connect().await?;
    let scope = engine::owner::PruneScope {
        project: project.as_deref(),
        force: args.force,
    };
    let pruned = engine::owner::prune(&engine, scope)
        .await
        .map_err(CliError::engine)?;
    out!(
        "removed {} containers, {} networks, {} temporary volumes",
        pruned.removed.containers,
        pruned.removed.networks,
        pruned.removed.volumes
    )?;
    if !pruned.spared.is_empty() {
        let runs: Vec<&str> = pruned.spared.iter().map(String::as_str).collect();
        out!(
            "left alone: run{} {} (its berth is alive; --force removes it too)",
            if runs.len() == 1 { "" } else { "s" },
            runs.join(", ")
        )?;
    }
    if pruned.removed.problems.is_empty() {
        Ok(())
    } else {
        Err(CliError::Problems(pruned.removed.problems))
    }
}
