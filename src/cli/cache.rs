//! `berth cache ls/rm/prune/export/import`: this project's dependency caches on the engine.

use std::path::Path;

use crate::engine;
use crate::engine::runtime::{labels, ContainerRuntime as _, ObjectInfo};

use super::args::{CacheCommand, Cli};
use super::setup::project_and_engine;
use super::CliError;

pub(super) async fn cmd_cache(cli: &Cli, command: &CacheCommand) -> Result<(), CliError> {
    use crate::engine::caches::{cache_labels, Index};
    let (project, engine) = project_and_engine(cli).await?;
    let filter = format!("{}={}", labels::PROJECT, project.display());
    let volumes: Vec<_> = engine
        .volumes_with_label(&filter)
        .await
        .map_err(CliError::engine)?
        .into_iter()
        .filter(|v| {
            v.labels.contains_key(cache_labels::CACHE) && !v.labels.contains_key(labels::TEMPORARY)
        })
        .collect();
    let mut index = Index::load(&project);
    let now = crate::units::now_secs();
    let label = |v: &ObjectInfo, k: &str| v.labels.get(k).cloned().unwrap_or_default();
    let to_remove: Vec<&ObjectInfo> = match command {
        CacheCommand::Ls => {
            out!(
                "{:<28} {:<20} {:>10}  {:<12} JOBS",
                "KEY",
                "PATH",
                "SIZE",
                "LAST USED"
            )?;
            for v in &volumes {
                let entry = index.volumes.get(&v.name).cloned().unwrap_or_default();
                let size = match engine.volume_mountpoint(&v.name).await {
                    Ok(dir) => dir_size(Path::new(&dir))
                        .map(crate::units::bytes)
                        .unwrap_or_else(|| "-".into()),
                    Err(_) => "-".into(),
                };
                let last = if entry.last_used == 0 {
                    "-".to_string()
                } else {
                    format!(
                        "{} ago",
                        crate::units::duration(std::time::Duration::from_secs(
                            now.saturating_sub(entry.last_used)
                        ))
                    )
                };
                out!(
                    "{:<28} {:<20} {:>10}  {:<12} {}",
                    label(v, cache_labels::KEY),
                    label(v, cache_labels::PATH),
                    size,
                    last,
                    entry.jobs.join(", ")
                )?;
            }
            return Ok(());
        }
        CacheCommand::Rm { keys } => {
            let chosen: Vec<_> = volumes
                .iter()
                .filter(|v| keys.contains(&label(v, cache_labels::KEY)))
                .collect();
            for k in keys {
                if !volumes.iter().any(|v| &label(v, cache_labels::KEY) == k) {
                    eprintln!("berth: no cache with key `{k}` in this project");
                }
            }
            chosen
        }
        // Handled by cmd_cache_export / cmd_cache_import.
        CacheCommand::Export { .. } | CacheCommand::Import { .. } => {
            return Err(CliError::input(
                "cache export and import are commands of their own",
            ))
        }
        CacheCommand::Prune { older_than } => volumes
            .iter()
            .filter(|v| match older_than {
                None => true,
                Some(age) => {
                    let last = index.volumes.get(&v.name).map(|e| e.last_used).unwrap_or(0);
                    now.saturating_sub(last) >= age.as_secs()
                }
            })
            .collect(),
    };
    let mut failed = Vec::new();
    for v in &to_remove {
        match engine.remove_volume(&v.name).await {
            Ok(()) => {
                out!(
                    "removed cache `{}` ({}, volume {})",
                    label(v, cache_labels::KEY),
                    label(v, cache_labels::PATH),
                    v.name
                )?;
                index.volumes.remove(&v.name);
            }
            Err(e) => failed.push(format!(
                "cannot remove {}: {e} (is a job using it?)",
                v.name
            )),
        }
    }
    if !to_remove.is_empty() {
        if let Err(e) = index.save(&project) {
            eprintln!("berth: cannot update the cache index: {e}");
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(CliError::Problems(failed))
    }
}

/// Total size of the files under a directory, when it can be read from here (a local engine).
pub(super) fn dir_size(dir: &Path) -> Option<u64> {
    let meta = std::fs::symlink_metadata(dir).ok()?;
    if !meta.is_dir() {
        return Some(meta.len());
    }
    let mut total = 0;
    for entry in std::fs::read_dir(dir).ok()? {
        let entry = entry.ok()?;
        total += dir_size(&entry.path()).unwrap_or(0);
    }
    Some(total)
}

pub(super) async fn cmd_cache_export(
    cli: &Cli,
    keys: &[String],
    output: &Path,
) -> Result<(), CliError> {
    let (project, engine) = project_and_engine(cli).await?;
    let volumes = engine::transfer::export(&engine, &project, keys, output)
        .await
        .map_err(|e| CliError::input(format!("cache export: {e}")))?;
    out!(
        "exported {} cache volume{} to {}",
        volumes.len(),
        if volumes.len() == 1 { "" } else { "s" },
        output.display()
    )
}

pub(super) async fn cmd_cache_import(cli: &Cli, file: &Path, force: bool) -> Result<(), CliError> {
    use crate::engine::transfer::Imported;
    let (project, engine) = project_and_engine(cli).await?;
    let done = engine::transfer::import(&engine, &project, file, force)
        .await
        .map_err(|e| CliError::input(format!("cache import: {e}")))?;
    let now = crate::units::now_secs();
    let mut index = crate::engine::caches::Index::load(&project);
    for d in &done {
        match d {
            Imported::Created { key, volume } | Imported::Replaced { key, volume } => {
                let verb = if matches!(d, Imported::Created { .. }) {
                    "imported"
                } else {
                    "replaced"
                };
                out!("{verb} cache `{key}` (volume {volume})")?;
                // Counted as used now, so that `cache prune --older-than` spares it.
                let entry = index.volumes.entry(volume.clone()).or_default();
                entry.key = key.clone();
                entry.last_used = now;
            }
            Imported::Identical { key } => out!("cache `{key}` is already here, identical; kept")?,
        }
    }
    if let Err(e) = index.save(&project) {
        eprintln!("berth: cannot update the cache index: {e}");
    }
    Ok(())
}
