//! `berth lock`: every image of the pipeline present and pinned to its ID in berth.lock, and
//! every remote action pinned to the commit it runs at.

use std::path::Path;

use crate::docker::Engine;
use crate::engine::{self, RunConfig};
use crate::events::Sink;
use crate::plan::Plan;
use crate::project::lock::{self, Locked, Lockfile};
use crate::report::{plain::Plain, Fanout};

use super::run::tell_unwritten;
use super::CliError;

/// `berth lock`: every image of the pipeline present (pulled or built) and pinned.
pub(super) async fn write_lock(
    plan: &Plan,
    pins: &[(String, String)],
    config: RunConfig,
    engine: Engine,
    project: &Path,
) -> Result<(), CliError> {
    let (sink, events) = Sink::masking(1024, Vec::new());
    let plain = Fanout::new(vec![Box::new(Plain::new(std::io::stderr()))]);
    let reporting = tokio::spawn(plain.drain(events));
    let resolved = engine::resolve_images(plan, config, std::sync::Arc::new(engine), sink).await;
    if let Ok(unwritten) = reporting.await {
        tell_unwritten(&unwritten);
    }
    let images = resolved.map_err(CliError::engine)?;
    let mut lock = Lockfile {
        version: 1,
        ..Default::default()
    };
    for (name, id, digests) in images {
        out!("{name}  {id}")?;
        lock.images.insert(
            name,
            Locked {
                id,
                digest: digests.into_iter().next(),
            },
        );
    }
    // Each remote action as read from the cache: its repository at the commit its ref named.
    for (uses, commit) in pins {
        if let Some(repo_ref) = crate::github::actions::repo_ref(uses) {
            if lock
                .actions
                .insert(repo_ref.clone(), commit.clone())
                .is_none()
            {
                out!("{repo_ref}  {commit}")?;
            }
        }
    }
    lock.save(project)
        .map_err(|e| CliError::input(format!("cannot write {}: {e}", lock::FILE)))?;
    let actions = match lock.actions.len() {
        0 => String::new(),
        n => format!(", {n} actions"),
    };
    eprintln!(
        "berth: wrote {} ({} images{actions})",
        lock::FILE,
        lock.images.len()
    );
    Ok(())
}
