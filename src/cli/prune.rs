//! `berth prune`: remove what crashed runs left on the engine.

use crate::engine;

use super::args::{Cli, PruneArgs};
use super::exit;
use super::setup::{connect, project_dir};

pub(super) async fn cmd_prune(cli: &Cli, args: &PruneArgs) -> i32 {
    let project = if args.all {
        None
    } else {
        match project_dir(cli) {
            Ok(p) => Some(p.display().to_string()),
            Err(code) => return code,
        }
    };
    let engine = match connect().await {
        Ok(e) => e,
        Err(code) => return code,
    };
    let scope = engine::owner::PruneScope {
        project: project.as_deref(),
        force: args.force,
    };
    let pruned = match engine::owner::prune(&engine, scope).await {
        Ok(p) => p,
        Err(e) => {
            eprintln!("berth: {e}");
            return exit::DOCKER;
        }
    };
    for p in &pruned.removed.problems {
        eprintln!("berth: {p}");
    }
    out!(
        "removed {} containers, {} networks, {} temporary volumes",
        pruned.removed.containers,
        pruned.removed.networks,
        pruned.removed.volumes
    );
    if !pruned.spared.is_empty() {
        let runs: Vec<&str> = pruned.spared.iter().map(String::as_str).collect();
        out!(
            "left alone: run{} {} (its berth is alive; --force removes it too)",
            if runs.len() == 1 { "" } else { "s" },
            runs.join(", ")
        );
    }
    if pruned.removed.problems.is_empty() {
        exit::OK
    } else {
        exit::DOCKER
    }
}
