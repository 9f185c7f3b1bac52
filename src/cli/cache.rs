//! `berth cache ls/rm/prune/export/import`: this project's dependency caches on the engine.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::engine;
use crate::engine::runtime::{labels, ContainerRuntime as _, ObjectInfo};

use super::args::{CacheCommand, Cli};
use super::exit;
use super::setup::project_and_engine;

pub(super) async fn cmd_cache(cli: &Cli, command: &CacheCommand) -> i32 {
    use crate::engine::caches::{cache_labels, Index};
    let (project, engine) = match project_and_engine(cli).await {
        Ok(x) => x,
        Err(code) => return code,
    };
    let filter = format!("{}={}", labels::PROJECT, project.display());
    let volumes = match engine.volumes_with_label(&filter).await {
        Ok(list) => list
            .into_iter()
            .filter(|v| {
                v.labels.contains_key(cache_labels::CACHE)
                    && !v.labels.contains_key(labels::TEMPORARY)
            })
            .collect::<Vec<_>>(),
        Err(e) => {
            eprintln!("berth: {e}");
            return exit::DOCKER;
        }
    };
    let mut index = Index::load(&project);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let label = |v: &ObjectInfo, k: &str| v.labels.get(k).cloned().unwrap_or_default();
    let to_remove: Vec<&ObjectInfo> = match command {
        CacheCommand::Ls => {
            out!(
                "{:<28} {:<20} {:>10}  {:<12} JOBS",
                "KEY",
                "PATH",
                "SIZE",
                "LAST USED"
            );
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
                );
            }
            return exit::OK;
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
        CacheCommand::Export { .. } | CacheCommand::Import { .. } => return exit::BAD_INPUT,
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
    let mut failed = false;
    for v in &to_remove {
        match engine.remove_volume(&v.name).await {
            Ok(()) => {
                out!(
                    "removed cache `{}` ({}, volume {})",
                    label(v, cache_labels::KEY),
                    label(v, cache_labels::PATH),
                    v.name
                );
                index.volumes.remove(&v.name);
            }
            Err(e) => {
                eprintln!("berth: cannot remove {}: {e} (is a job using it?)", v.name);
                failed = true;
            }
        }
    }
    if !to_remove.is_empty() {
        if let Err(e) = index.save(&project) {
            eprintln!("berth: cannot update the cache index: {e}");
        }
    }
    if failed {
        exit::DOCKER
    } else {
        exit::OK
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

pub(super) async fn cmd_cache_export(cli: &Cli, keys: &[String], output: &Path) -> i32 {
    let (project, engine) = match project_and_engine(cli).await {
        Ok(x) => x,
        Err(code) => return code,
    };
    match engine::transfer::export(&engine, &project, keys, output).await {
        Ok(volumes) => {
            out!(
                "exported {} cache volume{} to {}",
                volumes.len(),
                if volumes.len() == 1 { "" } else { "s" },
                output.display()
            );
            exit::OK
        }
        Err(e) => {
            eprintln!("berth: cache export: {e}");
            exit::BAD_INPUT
        }
    }
}

pub(super) async fn cmd_cache_import(cli: &Cli, file: &Path, force: bool) -> i32 {
    use crate::engine::transfer::Imported;
    let (project, engine) = match project_and_engine(cli).await {
        Ok(x) => x,
        Err(code) => return code,
    };
    match engine::transfer::import(&engine, &project, file, force).await {
        Ok(done) => {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            let mut index = crate::engine::caches::Index::load(&project);
            for d in &done {
                match d {
                    Imported::Created { key, volume } | Imported::Replaced { key, volume } => {
                        let verb = if matches!(d, Imported::Created { .. }) {
                            "imported"
                        } else {
                            "replaced"
                        };
                        out!("{verb} cache `{key}` (volume {volume})");
                        // Counted as used now, so that `cache prune --older-than` spares it.
                        let entry = index.volumes.entry(volume.clone()).or_default();
                        entry.key = key.clone();
                        entry.last_used = now;
                    }
                    Imported::Identical { key } => {
                        out!("cache `{key}` is already here, identical; kept")
                    }
                }
            }
            if let Err(e) = index.save(&project) {
                eprintln!("berth: cannot update the cache index: {e}");
            }
            exit::OK
        }
        Err(e) => {
            eprintln!("berth: cache import: {e}");
            exit::BAD_INPUT
        }
    }
}
