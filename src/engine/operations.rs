//! The operations a job of steps asks of the engine instead of a process
//! ([`Operation`]): caches restored into and saved from the running job's container, and the
//! run's named artifacts stored and unpacked. Everything moves through the engine's archive
//! API and temporary files on the host, so memory stays bounded whatever the size.
//!
//! A cache is a named volume that outlives the run, labelled with its project, key and paths
//! (only a cache of the same paths can be restored), and the time it was saved (a prefix picks
//! the newest). A key can come from an earlier step's output, so a volume cannot be mounted
//! when the container is created: a helper container (from the job's own image, idle,
//! labelled with the run, removed whatever happens) mounts it, and the archive API copies
//! between the two. A cache is whole once its last entry, a marker, is in; one without
//! it (a berth stopped midway) is no cache and is replaced by the next save.

use std::collections::HashMap;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use flate2::write::GzEncoder;
use flate2::Compression;
use futures_util::StreamExt;
use sha2::{Digest, Sha256};

use super::artifacts::{Hashing, Partial};
use super::caches::{cache_labels, Mount};
use super::job::log;
use super::runtime::{labels, ContainerRuntime, ContainerSpec, RuntimeError};
use super::{PreparedJob, Shared};
use crate::events::Sink;
use crate::pipeline::globs::{self, PathGlobs};
use crate::pipeline::steps::{Operation, Report};
use crate::project::paths::{Link, Walk};
use crate::store::archives::{ArtifactManifest, FileEntry, PARTIAL};

/// Where a helper container mounts a cache volume.
const DATA_DIR: &str = "/berth-cache-data";
/// The last entry of a whole cache.
const COMPLETE: &str = ".berth-cache-complete";
/// Labels of a step cache beyond [`cache_labels`].
pub mod step_cache_labels {
    /// The hash of the cache's paths: only a cache of the same paths is restored.
    pub const VERSION: &str = "io.berth.stepcache.version";
    /// When it was saved, in nanoseconds since the epoch: a prefix picks the newest.
    pub const SAVED: &str = "io.berth.stepcache.saved";
}

/// Do `operation` for the job in its running container `id`; what it did goes to the log.
pub(super) async fn perform(
    job: &PreparedJob,
    shared: &Shared,
    sink: &Sink,
    id: &str,
    operation: &Operation,
) -> Result<Report, String> {
    let result = match operation {
        Operation::RestoreCache {
            key,
            prefixes,
            paths,
            lookup_only,
        } => restore(job, shared, sink, id, key, prefixes, paths, *lookup_only).await,
        Operation::SaveCache { key, paths } => save(job, shared, sink, id, key, paths).await,
        Operation::UploadArtifact {
            name,
            search,
            include,
            exclude,
            root,
            hidden,
        } => {
            let spec = UploadSpec {
                name,
                search,
                include,
                exclude,
                root,
                hidden: *hidden,
            };
            upload(job, shared, sink, id, &spec).await
        }
        Operation::DownloadArtifacts {
            name,
            pattern,
            into,
            separate,
        } => {
            download(
                job,
                shared,
                sink,
                id,
                name.as_deref(),
                pattern.as_deref(),
                into,
                *separate,
            )
            .await
        }
    };
    if let Err(why) = &result {
        log(sink, &job.name, format!("berth: {why}")).await;
    }
    result
}

fn short_hash(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    hex::encode(h.finalize())
}

/// The version of a cache: its paths, in order.
fn version(paths: &[String]) -> String {
    let parts: Vec<&str> = paths.iter().map(String::as_str).collect();
    short_hash(&parts)[..16].to_string()
}

/// The volume of a cache of one project.
pub fn volume_name(project: &Path, key: &str, paths: &[String]) -> String {
    let project = project.display().to_string();
    format!(
        "berth-ghcache-{}-{}",
        &short_hash(&[&project])[..8],
        &short_hash(&[key, &version(paths)])[..16]
    )
}

/// A cache found on the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub volume: String,
    pub key: String,
    /// When it was saved (nanoseconds since the epoch).
    pub saved: u128,
}

/// Which cache a restore takes, as GitHub's cache service matches: for the key, then each
/// prefix in turn, a cache of exactly that key, else the newest whose key starts with it.
pub fn choose<'a>(
    candidates: &'a [Candidate],
    key: &str,
    prefixes: &[String],
) -> Option<&'a Candidate> {
    for wanted in std::iter::once(key).chain(prefixes.iter().map(String::as_str)) {
        let newest = |exact: bool| {
            candidates
                .iter()
                .filter(|c| {
                    if exact {
                        c.key == wanted
                    } else {
                        c.key.starts_with(wanted)
                    }
                })
                .max_by_key(|c| c.saved)
        };
        if let Some(c) = newest(true).or_else(|| newest(false)) {
            return Some(c);
        }
    }
    None
}

/// This project's caches of these paths.
async fn candidates(shared: &Shared, paths: &[String]) -> Result<Vec<Candidate>, String> {
    let project = shared.config.context.project_dir.display().to_string();
    let filter = format!("{}={}", step_cache_labels::VERSION, version(paths));
    let volumes = shared
        .engine
        .volumes_with_label(&filter)
        .await
        .map_err(|e| format!("cannot list caches: {e}"))?;
    Ok(volumes
        .into_iter()
        .filter(|v| v.labels.get(labels::PROJECT) == Some(&project))
        .filter_map(|v| {
            Some(Candidate {
                key: v.labels.get(cache_labels::KEY)?.clone(),
                saved: v.labels.get(step_cache_labels::SAVED)?.parse().ok()?,
                volume: v.name,
            })
        })
        .collect())
}

/// A container that gives access to `volume` at [`DATA_DIR`], from the job's image (which
/// has the shell the job's container idles in); the caller removes it. Started, idle: Docker's
/// archive API reaches the volumes of a created container, Podman's only those of a running one.
async fn helper(job: &PreparedJob, shared: &Shared, volume: &str) -> Result<String, String> {
    let spec = ContainerSpec {
        name: format!(
            "berth-stepcache-{}-{}-{}",
            shared.config.run_id,
            std::process::id(),
            &volume[volume.len().saturating_sub(12)..]
        ),
        image: job.image.clone(),
        entrypoint: Some(super::steps::keep_alive()),
        working_dir: String::new(),
        labels: shared.labels.clone(),
        binds: vec![format!("{volume}:{DATA_DIR}")],
        ..ContainerSpec::default()
    };
    let what = |e: RuntimeError| format!("helper container for cache volume {volume}: {e}");
    let id = shared.engine.create_container(&spec).await.map_err(what)?;
    if let Err(e) = shared.engine.start(&id).await {
        let _ = shared.engine.remove_container(&id).await;
        return Err(what(e));
    }
    Ok(id)
}

/// The helper's id while it lives: removed when the work with it is done, however it ended.
async fn with_helper<T>(
    job: &PreparedJob,
    shared: &Shared,
    volume: &str,
    work: impl AsyncFnOnce(&str) -> Result<T, String>,
) -> Result<T, String> {
    let id = helper(job, shared, volume).await?;
    let result = work(&id).await;
    let _ = shared.engine.remove_container(&id).await;
    result
}

/// A stream from the engine written to a temporary file; `None` when the path is not there.
async fn download_to_file(
    engine: &dyn ContainerRuntime,
    container: &str,
    path: &str,
) -> Result<Option<tempfile::NamedTempFile>, String> {
    let file = tempfile::NamedTempFile::new().map_err(|e| format!("temporary file: {e}"))?;
    let mut out = tokio::fs::File::from_std(file.reopen().map_err(|e| e.to_string())?);
    let mut stream = engine.download(container, path);
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(bytes) => tokio::io::AsyncWriteExt::write_all(&mut out, &bytes)
                .await
                .map_err(|e| format!("temporary file: {e}"))?,
            Err(RuntimeError::NotFound(_)) => return Ok(None),
            Err(e) => return Err(format!("{path}: {e}")),
        }
    }
    tokio::io::AsyncWriteExt::flush(&mut out)
        .await
        .map_err(|e| e.to_string())?;
    Ok(Some(file))
}

fn now_nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

#[allow(clippy::too_many_arguments)]
async fn restore(
    job: &PreparedJob,
    shared: &Shared,
    sink: &Sink,
    id: &str,
    key: &str,
    prefixes: &[String],
    paths: &[String],
    lookup_only: bool,
) -> Result<Report, String> {
    let say = |line: String| log(sink, &job.name, line);
    if shared.config.no_cache {
        say("--no-cache: no cache restored".into()).await;
        return Ok(Report::CacheRestored { key: None });
    }
    let mut found = candidates(shared, paths).await?;
    loop {
        let Some(chosen) = choose(&found, key, prefixes).cloned() else {
            let keys: Vec<&str> = std::iter::once(key)
                .chain(prefixes.iter().map(String::as_str))
                .collect();
            say(format!(
                "Cache not found for input keys: {}",
                keys.join(", ")
            ))
            .await;
            return Ok(Report::CacheRestored { key: None });
        };
        if lookup_only {
            say(format!(
                "Cache found and can be restored from key: {}",
                chosen.key
            ))
            .await;
            return Ok(Report::CacheRestored {
                key: Some(chosen.key),
            });
        }
        let entries = with_helper(job, shared, &chosen.volume, async |helper| {
            let Some(raw) = download_to_file(&*shared.engine, helper, DATA_DIR).await? else {
                return Ok(None);
            };
            let out = tempfile::NamedTempFile::new().map_err(|e| e.to_string())?;
            let (raw_path, out_path) = (raw.path().to_path_buf(), out.path().to_path_buf());
            let paths = paths.to_vec();
            let entries = tokio::task::spawn_blocking(move || {
                rewrite_cache_for_restore(&raw_path, &out_path, &paths)
            })
            .await
            .map_err(|e| e.to_string())??;
            Ok(entries.map(|n| (n, out)))
        })
        .await?;
        let Some((count, tar)) = entries else {
            // Not whole: as if it were not there.
            found.retain(|c| c.volume != chosen.volume);
            continue;
        };
        shared
            .engine
            .upload_tar_file(id, "/", tar.path())
            .await
            .map_err(|e| format!("restoring cache `{}`: {e}", chosen.key))?;
        say(format!(
            "Cache restored from key: {} ({count} entries)",
            chosen.key
        ))
        .await;
        return Ok(Report::CacheRestored {
            key: Some(chosen.key),
        });
    }
}

/// A volume's archive (entries under `berth-cache-data/`) made one to unpack at `/`: `None`
/// when the cache is not whole. Every entry must be inside one of the cache's paths.
fn rewrite_cache_for_restore(
    raw: &Path,
    out: &Path,
    paths: &[String],
) -> Result<Option<usize>, String> {
    let top = DATA_DIR.trim_start_matches('/');
    let mut archive = tar::Archive::new(io::BufReader::new(
        std::fs::File::open(raw).map_err(|e| e.to_string())?,
    ));
    let mut builder = tar::Builder::new(BufWriter::new(
        std::fs::File::create(out).map_err(|e| e.to_string())?,
    ));
    let mut whole = false;
    let mut count = 0;
    for entry in archive.entries().map_err(|e| e.to_string())? {
        let mut entry = entry.map_err(|e| format!("reading the cache: {e}"))?;
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let name = name.trim_end_matches('/');
        let Some(rel) = name.strip_prefix(top).map(|r| r.trim_start_matches('/')) else {
            continue;
        };
        if rel.is_empty() {
            continue;
        }
        if rel == COMPLETE {
            whole = true;
            continue;
        }
        let abs = format!("/{rel}");
        let inside = paths
            .iter()
            .any(|p| globs::is_within(&abs, p) || globs::is_within(p, &abs));
        if !inside || rel.split('/').any(|c| c == "..") {
            return Err(format!(
                "the cache holds `{abs}`, which is not in its paths: refused"
            ));
        }
        let mut header = entry.header().clone();
        let kind = header.entry_type();
        if kind.is_hard_link() {
            let target = entry
                .link_name()
                .map_err(|e| e.to_string())?
                .map(|t| t.to_string_lossy().into_owned())
                .unwrap_or_default();
            let target = target
                .strip_prefix(top)
                .map(|t| t.trim_start_matches('/').to_string())
                .unwrap_or(target);
            builder
                .append_link(&mut header, rel, target)
                .map_err(|e| e.to_string())?;
        } else if kind.is_symlink() {
            let target = entry
                .link_name()
                .map_err(|e| e.to_string())?
                .map(|t| t.into_owned())
                .unwrap_or_default();
            builder
                .append_link(&mut header, rel, target)
                .map_err(|e| e.to_string())?;
        } else {
            builder
                .append_data(&mut header, rel, &mut entry)
                .map_err(|e| e.to_string())?;
        }
        count += 1;
    }
    let mut inner = builder.into_inner().map_err(|e| e.to_string())?;
    inner.flush().map_err(|e| e.to_string())?;
    Ok(whole.then_some(count))
}

async fn save(
    job: &PreparedJob,
    shared: &Shared,
    sink: &Sink,
    id: &str,
    key: &str,
    paths: &[String],
) -> Result<Report, String> {
    let say = |line: String| log(sink, &job.name, line);
    if shared.config.no_cache {
        say("--no-cache: no cache saved".into()).await;
        return Ok(Report::CacheSaved {
            saved: false,
            files: 0,
        });
    }
    let project = &shared.config.context.project_dir;
    let volume = volume_name(project, key, paths);
    let mut volume_labels = HashMap::from([
        (labels::BERTH.to_string(), "1".to_string()),
        (labels::PROJECT.to_string(), project.display().to_string()),
        (cache_labels::CACHE.to_string(), "1".to_string()),
        (cache_labels::KEY.to_string(), key.to_string()),
        (cache_labels::PATH.to_string(), paths.join(", ")),
        (step_cache_labels::VERSION.to_string(), version(paths)),
    ]);
    // One writer per volume, in this berth and across berths on the project.
    let mount = Mount {
        volume: volume.clone(),
        key: key.to_string(),
        path: String::new(),
        read_only: false,
        shared: false,
        labels: HashMap::new(),
        copy: None,
    };
    let _guard = shared
        .cache_locks
        .acquire(std::slice::from_ref(&mount), project)
        .await;
    if let Some(existing) = candidates(shared, paths)
        .await?
        .into_iter()
        .find(|c| c.volume == volume)
    {
        let whole = with_helper(job, shared, &existing.volume, async |helper| {
            let marker = format!("{DATA_DIR}/{COMPLETE}");
            Ok(download_to_file(&*shared.engine, helper, &marker)
                .await?
                .is_some())
        })
        .await?;
        if whole {
            say(format!(
                "Cache with key `{key}` exists already: not saved (a cache never changes)"
            ))
            .await;
            return Ok(Report::CacheSaved {
                saved: false,
                files: 0,
            });
        }
        // Left by a berth stopped midway: replaced.
        shared
            .engine
            .remove_volume(&existing.volume)
            .await
            .map_err(|e| format!("cache volume {}: {e}", existing.volume))?;
    }
    // The paths out of the job's container, under the volume's directory.
    let tar = tempfile::NamedTempFile::new().map_err(|e| e.to_string())?;
    let mut builder = tar::Builder::new(BufWriter::new(tar.reopen().map_err(|e| e.to_string())?));
    let mut count = 0;
    for path in paths {
        let Some(raw) = download_to_file(&*shared.engine, id, path).await? else {
            say(format!("Cache path {path} does not exist: not saved")).await;
            continue;
        };
        let parent = match path.rsplit_once('/') {
            Some((parent, _)) => parent.trim_start_matches('/').to_string(),
            None => String::new(),
        };
        let raw_path = raw.path().to_path_buf();
        let (n, back) = tokio::task::spawn_blocking(move || {
            let n = append_under(&mut builder, &raw_path, &parent);
            (n, builder)
        })
        .await
        .map_err(|e| e.to_string())?;
        builder = back;
        count += n?;
    }
    if count == 0 {
        say(
            "Path Validation Error: the cache's paths do not exist, hence no cache is being saved"
                .into(),
        )
        .await;
        return Ok(Report::CacheSaved {
            saved: false,
            files: 0,
        });
    }
    let mut header = tar::Header::new_gnu();
    header.set_size(0);
    header.set_mode(0o644);
    builder
        .append_data(
            &mut header,
            format!("{}/{COMPLETE}", DATA_DIR.trim_start_matches('/')),
            io::empty(),
        )
        .map_err(|e| e.to_string())?;
    builder
        .into_inner()
        .map_err(|e| e.to_string())?
        .flush()
        .map_err(|e| e.to_string())?;
    volume_labels.insert(
        step_cache_labels::SAVED.to_string(),
        now_nanos().to_string(),
    );
    shared
        .engine
        .create_volume(&volume, &volume_labels)
        .await
        .map_err(|e| format!("cache volume {volume}: {e}"))?;
    let written = with_helper(job, shared, &volume, async |helper| {
        shared
            .engine
            .upload_tar_file(helper, "/", tar.path())
            .await
            .map_err(|e| format!("saving cache `{key}`: {e}"))
    })
    .await;
    if let Err(why) = written {
        let _ = shared.engine.remove_volume(&volume).await;
        return Err(why);
    }
    say(format!("Cache saved with key: {key} ({count} entries)")).await;
    Ok(Report::CacheSaved {
        saved: true,
        files: count,
    })
}

/// Append the entries of a downloaded archive under `DATA_DIR/parent`; how many.
fn append_under<W: Write>(
    builder: &mut tar::Builder<W>,
    raw: &Path,
    parent: &str,
) -> Result<usize, String> {
    let top = DATA_DIR.trim_start_matches('/');
    let under = |name: &str| {
        if parent.is_empty() {
            format!("{top}/{name}")
        } else {
            format!("{top}/{parent}/{name}")
        }
    };
    let mut archive = tar::Archive::new(io::BufReader::new(
        std::fs::File::open(raw).map_err(|e| e.to_string())?,
    ));
    let mut count = 0;
    for entry in archive.entries().map_err(|e| e.to_string())? {
        let mut entry = entry.map_err(|e| format!("reading the cache's paths: {e}"))?;
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let name = name
            .trim_start_matches("./")
            .trim_end_matches('/')
            .to_string();
        if name.is_empty() || name.split('/').any(|c| c == "..") {
            continue;
        }
        let mut header = entry.header().clone();
        let kind = header.entry_type();
        if kind.is_symlink() || kind.is_hard_link() {
            let target = entry
                .link_name()
                .map_err(|e| e.to_string())?
                .map(|t| t.to_string_lossy().into_owned())
                .unwrap_or_default();
            let target = if kind.is_hard_link() {
                under(&target)
            } else {
                target
            };
            builder
                .append_link(&mut header, under(&name), target)
                .map_err(|e| e.to_string())?;
        } else {
            builder
                .append_data(&mut header, under(&name), &mut entry)
                .map_err(|e| e.to_string())?;
        }
        count += 1;
    }
    Ok(count)
}

/// An upload's patterns, as the operation gives them.
struct UploadSpec<'a> {
    name: &'a str,
    search: &'a [String],
    include: &'a [String],
    exclude: &'a [String],
    root: &'a str,
    hidden: bool,
}

/// Artifact ids, unique in this berth.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// The file names of a named artifact in the run's `artifacts/`.
fn artifact_stem(name: &str) -> String {
    format!("gh-{}", crate::project::paths::file_slug(name))
}

/// Names being stored now, so that two jobs cannot store one name at once.
static STORING: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());

struct Claim(PathBuf);

impl Drop for Claim {
    fn drop(&mut self) {
        STORING
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|p| *p != self.0);
    }
}

async fn upload(
    job: &PreparedJob,
    shared: &Shared,
    sink: &Sink,
    id: &str,
    spec: &UploadSpec<'_>,
) -> Result<Report, String> {
    let dir = shared.config.run_dir.join("artifacts");
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let stem = dir.join(artifact_stem(spec.name));
    let manifest_path = PathBuf::from(format!("{}.json", stem.display()));
    let archive_path = PathBuf::from(format!("{}.tar.gz", stem.display()));
    let _claim = {
        let mut storing = STORING.lock().unwrap_or_else(|e| e.into_inner());
        if storing.contains(&stem) || std::fs::symlink_metadata(&manifest_path).is_ok() {
            return Err(format!(
                "an artifact named `{}` exists already in this run: berth keeps the first (upload-artifact's `overwrite` is not supported)",
                spec.name
            ));
        }
        storing.push(stem.clone());
        Claim(stem.clone())
    };
    let globs = PathGlobs::new(spec.include, spec.exclude)?;
    let mut downloads = Vec::new();
    for search in spec.search {
        if let Some(file) = download_to_file(&*shared.engine, id, search).await? {
            downloads.push((search.clone(), file));
        }
    }
    let partial = Partial(PathBuf::from(format!(
        "{}{PARTIAL}",
        archive_path.display()
    )));
    let (root, hidden, name, job_name) = (
        spec.root.to_string(),
        spec.hidden,
        spec.name.to_string(),
        job.name.clone(),
    );
    let partial_path = partial.0.clone();
    let files = tokio::task::spawn_blocking(move || {
        write_artifact(&downloads, &globs, &root, hidden, &partial_path)
    })
    .await
    .map_err(|e| e.to_string())??;
    if files.is_empty() {
        log(
            sink,
            &job.name,
            format!(
                "No files were found with the provided path: {}. No artifacts will be uploaded.",
                spec.include.join(", ")
            ),
        )
        .await;
        return Ok(Report::ArtifactUploaded { id: None, files: 0 });
    }
    partial.persist(&archive_path)?;
    let manifest = ArtifactManifest {
        job: job_name,
        name: Some(name.clone()),
        archive: archive_path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        bytes: files.iter().map(|f| f.size).sum(),
        files,
    };
    let json = serde_json::to_vec_pretty(&manifest).map_err(|e| e.to_string())?;
    let partial_manifest = Partial(PathBuf::from(format!(
        "{}{PARTIAL}",
        manifest_path.display()
    )));
    std::fs::write(&partial_manifest.0, json).map_err(|e| format!("cannot write artifact: {e}"))?;
    partial_manifest.persist(&manifest_path)?;
    let artifact_id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    log(
        sink,
        &job.name,
        format!(
            "Artifact {name} has been stored: {} files, {} bytes (id {artifact_id})",
            manifest.files.len(),
            manifest.bytes
        ),
    )
    .await;
    Ok(Report::ArtifactUploaded {
        id: Some(artifact_id),
        files: manifest.files.len(),
    })
}

/// The name of a matched path inside the artifact: relative to `root`, or its own name when
/// it is the root (a single file uploaded alone).
pub fn artifact_name(abs: &str, root: &str) -> Option<String> {
    if abs == root {
        return abs.rsplit('/').next().map(String::from);
    }
    let prefix = if root == "/" {
        "/".to_string()
    } else {
        format!("{root}/")
    };
    abs.strip_prefix(&prefix).map(String::from)
}

/// Whether a name below the search path's folder is hidden (some name in it starts with `.`).
fn is_hidden(rel_to_search_parent: &str) -> bool {
    rel_to_search_parent.split('/').any(|c| c.starts_with('.'))
}

/// The matched files of the downloaded search paths as a gzipped tar at `out`; their list.
fn write_artifact(
    downloads: &[(String, tempfile::NamedTempFile)],
    globs: &PathGlobs,
    root: &str,
    hidden: bool,
    out: &Path,
) -> Result<Vec<FileEntry>, String> {
    let file = std::fs::File::create(out).map_err(|e| format!("cannot write artifact: {e}"))?;
    let mut builder = tar::Builder::new(GzEncoder::new(BufWriter::new(file), Compression::fast()));
    let mut files = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut walk = Walk::new();
    for (search, raw) in downloads {
        let parent = match search.rsplit_once('/') {
            Some((p, _)) => p.to_string(),
            None => String::new(),
        };
        let abs_of = |name: &str| format!("{parent}/{}", name.trim_start_matches("./"));
        let mut archive =
            tar::Archive::new(io::BufReader::new(raw.reopen().map_err(|e| e.to_string())?));
        for entry in archive.entries().map_err(|e| e.to_string())? {
            let mut entry = entry.map_err(|e| format!("reading the artifact's files: {e}"))?;
            let raw_name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            let raw_name = raw_name.trim_end_matches('/');
            let kind = entry.header().entry_type();
            if kind.is_dir() || raw_name.is_empty() {
                continue;
            }
            let abs = abs_of(raw_name);
            if !globs.matches(&abs) || (!hidden && is_hidden(raw_name)) {
                continue;
            }
            let Some(rel) = artifact_name(&abs, root) else {
                continue;
            };
            if !seen.insert(rel.clone()) {
                continue;
            }
            let mut header = entry.header().clone();
            if kind.is_symlink() || kind.is_hard_link() {
                let target = entry
                    .link_name()
                    .map_err(|e| e.to_string())?
                    .map(|t| t.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let target = if kind.is_hard_link() {
                    artifact_name(&abs_of(&target), root).unwrap_or(target)
                } else {
                    target
                };
                let link = if kind.is_hard_link() {
                    Link::Hard(&target)
                } else {
                    Link::Symbolic(&target)
                };
                walk.check_entry(&rel, Some(link))
                    .map_err(|why| format!("artifact entry `{rel}` {why}: refused"))?;
                builder
                    .append_link(&mut header, &rel, &target)
                    .map_err(|e| e.to_string())?;
                files.push(FileEntry {
                    path: rel,
                    size: 0,
                    sha256: None,
                    link: Some(target),
                });
            } else {
                walk.check_entry(&rel, None)
                    .map_err(|why| format!("artifact entry `{rel}` {why}: refused"))?;
                let mut hashing = Hashing {
                    inner: &mut entry,
                    hasher: Sha256::new(),
                    size: 0,
                };
                builder
                    .append_data(&mut header, &rel, &mut hashing)
                    .map_err(|e| format!("writing the artifact: {e}"))?;
                files.push(FileEntry {
                    path: rel,
                    size: hashing.size,
                    sha256: Some(hex::encode(hashing.hasher.finalize())),
                    link: None,
                });
            }
        }
    }
    walk.finish()
        .map_err(|(_, name, why)| format!("artifact entry `{name}` {why}: refused"))?;
    let encoder = builder.into_inner().map_err(|e| e.to_string())?;
    let mut out = encoder.finish().map_err(|e| e.to_string())?;
    out.flush().map_err(|e| e.to_string())?;
    out.get_ref().sync_all().map_err(|e| e.to_string())?;
    Ok(files)
}

/// The named artifacts of the run so far: name, archive, manifest.
fn named_artifacts(run_dir: &Path) -> Vec<(String, PathBuf, ArtifactManifest)> {
    let dir = run_dir.join("artifacts");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.starts_with("gh-") && n.ends_with(".json"))
        .collect();
    names.sort();
    let mut out = Vec::new();
    for file in names {
        let read = crate::store::open_in_record(run_dir, &format!("artifacts/{file}")).and_then(
            |mut f| {
                let mut bytes = Vec::new();
                f.read_to_end(&mut bytes).map(|_| bytes)
            },
        );
        let Some(manifest) = read
            .ok()
            .and_then(|b| serde_json::from_slice::<ArtifactManifest>(&b).ok())
        else {
            continue;
        };
        let Some(name) = manifest.name.clone() else {
            continue;
        };
        // A plain file name beside the manifest, never a path elsewhere.
        if manifest.archive.contains('/') || manifest.archive.starts_with('.') {
            continue;
        }
        out.push((name, dir.join(&manifest.archive), manifest));
    }
    out
}

#[allow(clippy::too_many_arguments)]
async fn download(
    job: &PreparedJob,
    shared: &Shared,
    sink: &Sink,
    id: &str,
    name: Option<&str>,
    pattern: Option<&str>,
    into: &str,
    separate: bool,
) -> Result<Report, String> {
    let all = named_artifacts(&shared.config.run_dir);
    let chosen: Vec<_> = match name {
        Some(n) => {
            let one: Vec<_> = all.into_iter().filter(|(a, _, _)| a == n).collect();
            if one.is_empty() {
                return Err(format!(
                    "Unable to download artifact(s): Artifact not found for name: {n} (berth has the artifacts of this run's jobs that ran before)"
                ));
            }
            one
        }
        None => all
            .into_iter()
            .filter(|(a, _, _)| pattern.is_none_or(|p| globs::name_matches(p, a)))
            .collect(),
    };
    let mut names = Vec::new();
    let mut files = 0;
    for (artifact, archive, manifest) in chosen {
        let dest = if separate {
            format!("{}/{artifact}", into.trim_end_matches('/'))
        } else {
            into.to_string()
        };
        let prefix = dest.trim_start_matches('/').to_string();
        let tar = tempfile::NamedTempFile::new().map_err(|e| e.to_string())?;
        let out = tar.reopen().map_err(|e| e.to_string())?;
        let archive_for_task = archive.clone();
        tokio::task::spawn_blocking(move || {
            super::artifacts::check_archive(&archive_for_task)?;
            super::artifacts::write_upload_tail(
                &[archive_for_task],
                &prefix,
                &[],
                BufWriter::new(out),
            )
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|why| format!("artifact `{artifact}`: {why}"))?;
        shared
            .engine
            .upload_tar_file(id, "/", tar.path())
            .await
            .map_err(|e| format!("artifact `{artifact}`: {e}"))?;
        log(
            sink,
            &job.name,
            format!(
                "Artifact {artifact} downloaded into {dest} ({} files)",
                manifest.files.len()
            ),
        )
        .await;
        files += manifest.files.len();
        names.push(artifact);
    }
    if names.is_empty() {
        log(sink, &job.name, "No artifacts to download".to_string()).await;
    }
    Ok(Report::ArtifactsDownloaded { names, files })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(key: &str, saved: u128) -> Candidate {
        Candidate {
            volume: format!("v-{key}-{saved}"),
            key: key.into(),
            saved,
        }
    }

    #[test]
    fn the_key_then_its_prefix_then_each_restore_key_newest_first() {
        let all = vec![
            c("deps-linux-aaa", 1),
            c("deps-linux-bbb", 3),
            c("deps-linux", 2),
            c("deps-mac-ccc", 5),
        ];
        let pick = |key: &str, prefixes: &[&str]| {
            let p: Vec<String> = prefixes.iter().map(|s| s.to_string()).collect();
            choose(&all, key, &p).map(|c| c.key.clone())
        };
        assert_eq!(
            pick("deps-linux-aaa", &[]).as_deref(),
            Some("deps-linux-aaa")
        );
        // An exact key beats a newer one it prefixes.
        assert_eq!(pick("deps-linux", &[]).as_deref(), Some("deps-linux"));
        // No exact match: the key is a prefix too, then the restore keys in order.
        assert_eq!(pick("deps-lin", &[]).as_deref(), Some("deps-linux-bbb"));
        assert_eq!(
            pick("deps-linux-zzz", &["deps-linux-", "deps-"]).as_deref(),
            Some("deps-linux-bbb")
        );
        assert_eq!(pick("none", &["deps-"]).as_deref(), Some("deps-mac-ccc"));
        assert_eq!(pick("none", &["other-"]), None);
    }

    #[test]
    fn names_in_an_artifact_are_relative_to_its_root() {
        assert_eq!(
            artifact_name("/w/dist/a/b.js", "/w/dist").as_deref(),
            Some("a/b.js")
        );
        assert_eq!(
            artifact_name("/w/report.txt", "/w/report.txt").as_deref(),
            Some("report.txt")
        );
        assert_eq!(artifact_name("/w/distro/x", "/w/dist"), None);
        assert_eq!(artifact_name("/x", "/").as_deref(), Some("x"));
        assert!(is_hidden("out/.cache/x"));
        assert!(!is_hidden("out/cache/x"));
    }

    #[test]
    fn volumes_differ_by_key_paths_and_project() {
        let p = Path::new("/p");
        let paths = vec!["/w/a".to_string()];
        let v = volume_name(p, "k", &paths);
        assert!(v.starts_with("berth-ghcache-"), "{v}");
        assert_ne!(v, volume_name(p, "k2", &paths));
        assert_ne!(v, volume_name(p, "k", &["/w/b".to_string()]));
        assert_ne!(v, volume_name(Path::new("/q"), "k", &paths));
    }
}
