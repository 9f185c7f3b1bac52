//! Dependency caches: each `cache` path of a job is a Docker named volume that outlives the run,
//! named from the project and the key, so two projects never share one by accident and the same
//! key always finds the same volume.
//!
//! A declared cache follows GitLab's rules: the job works on a copy of its own (a volume of the
//! run, filled from the stored cache, or the first fallback key that has one), and the copy is
//! published over the stored cache when `cache: when` allows for the job's result. Jobs sharing
//! a key so run at the same time, and the last to publish wins, as on GitLab; a failed job's
//! writes are not kept. The copies run in a helper container from the job's image (`cp -a`,
//! as root), inside the engine. Python's automatic caches are mounted live and shared (the
//! tools guard their own); live caches that are written are held exclusively.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::RwLock;

use crate::engine::runtime::{labels, ContainerRuntime, ContainerSpec, Output};
use crate::pipeline::expand;
use crate::pipeline::{Cache, CacheKey, CachePolicy, CacheWhen};
use crate::project::paths;

/// Label keys of cache volumes.
pub mod cache_labels {
    pub const CACHE: &str = "io.berth.cache";
    pub const KEY: &str = "io.berth.cache.key";
    pub const PATH: &str = "io.berth.cache.path";
}

/// One volume mounted into one job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub volume: String,
    pub key: String,
    /// The cache path, relative to the project.
    pub path: String,
    pub read_only: bool,
    /// Writable, yet safe for concurrent jobs (the tool guards its own cache): shared lock.
    pub shared: bool,
    pub labels: HashMap<String, String>,
    /// GitLab's rules: the job works on a copy of its own. `None`: the volume is mounted live.
    pub copy: Option<Copy>,
}

/// What a job does with its copy of a cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copy {
    /// Filled from the stored cache first (`pull`, `pull-push`); else it starts empty (`push`).
    pub restore: bool,
    /// Published over the stored cache for this outcome (`push`, `pull-push`); `None`: never.
    pub save: Option<CacheWhen>,
    /// When the key has no cache yet: the first of these (key, volume) that has one.
    pub fallbacks: Vec<(String, String)>,
}

impl Mount {
    /// `volume:target[:ro]`; a relative path is inside the workspace, an absolute one as is.
    pub fn bind(&self, container_dir: &str) -> String {
        self.bind_of(&self.volume, container_dir)
    }

    /// [`Mount::bind`] of another volume at the same place (the job's copy of the cache).
    pub fn bind_of(&self, volume: &str, container_dir: &str) -> String {
        let ro = if self.read_only { ":ro" } else { "" };
        let path = self.path.trim_end_matches('/');
        if path.starts_with('/') {
            format!("{volume}:{path}{ro}")
        } else {
            format!("{volume}:{container_dir}/{path}{ro}")
        }
    }
}

fn short_hash(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    hex::encode(h.finalize())[..12].to_string()
}

/// A key as written with the job's variables expanded; empty when it expands to nothing.
fn expand_key(text: &str, env: &[(String, String)]) -> String {
    let lookup = |n: &str| env.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    expand::expand(text, &lookup, 0).trim().to_string()
}

/// The keys a job restores from when its own has no cache: `fallback_keys` in order, then the
/// `CACHE_FALLBACK_KEY` variable, as GitLab Runner tries them (expanded; empty ones and the
/// key itself left out).
pub fn fallback_keys(cache: &Cache, key: &str, env: &[(String, String)]) -> Vec<String> {
    let global = env
        .iter()
        .rev()
        .find(|(k, _)| k == "CACHE_FALLBACK_KEY")
        .map(|(_, v)| v.clone());
    let mut out: Vec<String> = Vec::new();
    for text in cache.fallback_keys.iter().chain(global.iter()) {
        let k = expand_key(text, env);
        if !k.is_empty() && k != key && !out.contains(&k) {
            out.push(k);
        }
    }
    out
}

/// The key of a cache for a job: the text with variables expanded, or a hash of files.
pub fn key_of(cache: &Cache, env: &[(String, String)], project: &Path) -> String {
    match &cache.key {
        CacheKey::Text(text) => {
            let key = expand_key(text, env);
            if key.is_empty() {
                "default".into()
            } else {
                key
            }
        }
        CacheKey::Files { files, prefix } => {
            let mut h = Sha256::new();
            let mut found = false;
            for f in files {
                if let Ok(mut file) = std::fs::File::open(project.join(f)) {
                    let mut content = Vec::new();
                    if file.read_to_end(&mut content).is_ok() {
                        h.update(f.as_bytes());
                        h.update([0]);
                        h.update(&content);
                        found = true;
                    }
                }
            }
            // GitLab: when none of the files exists, the key is "default".
            let body = if found {
                hex::encode(h.finalize())[..16].to_string()
            } else {
                "default".to_string()
            };
            match prefix {
                Some(p) => format!("{p}-{body}"),
                None => body,
            }
        }
    }
}

/// The volume for one path of one cache of one project.
pub fn volume_name(project: &Path, key: &str, path: &str) -> String {
    let project_text = project.display().to_string();
    let proj = short_hash(&[&project_text]);
    let mut readable = paths::slug(key).to_lowercase();
    readable.truncate(40);
    format!(
        "berth-cache-{}-{readable}-{}",
        &proj[..8],
        short_hash(&[key, path])
    )
}

/// The volumes a job mounts. With `temporary` (`--no-cache`), fresh volumes owned by the run.
pub fn mounts(
    caches: &[Cache],
    env: &[(String, String)],
    project: &Path,
    run_id: &str,
    temporary: bool,
) -> Vec<Mount> {
    let stored = |key: &str, path: &str| {
        if temporary {
            format!("berth-tmpcache-{run_id}-{}", short_hash(&[key, path]))
        } else {
            volume_name(project, key, path)
        }
    };
    let mut out: Vec<Mount> = Vec::new();
    for cache in caches {
        let key = key_of(cache, env, project);
        let fallbacks = fallback_keys(cache, &key, env);
        for path in &cache.paths {
            let path = path
                .trim_start_matches("./")
                .trim_end_matches('/')
                .to_string();
            let mut labels = HashMap::from([
                (labels::BERTH.to_string(), "1".to_string()),
                (labels::PROJECT.to_string(), project.display().to_string()),
                (cache_labels::CACHE.to_string(), "1".to_string()),
                (cache_labels::KEY.to_string(), key.clone()),
                (cache_labels::PATH.to_string(), path.clone()),
            ]);
            if temporary {
                labels.insert(labels::RUN.to_string(), run_id.to_string());
                labels.insert(labels::TEMPORARY.to_string(), "1".to_string());
            }
            // Two caches naming the same path: the first wins, as one directory takes one mount.
            if out.iter().any(|m| m.path == path) {
                continue;
            }
            let copy = Copy {
                restore: cache.policy != CachePolicy::Push,
                save: (cache.policy != CachePolicy::Pull).then_some(cache.when),
                fallbacks: fallbacks
                    .iter()
                    .map(|k| (k.clone(), stored(k, &path)))
                    .collect(),
            };
            out.push(Mount {
                volume: stored(&key, &path),
                key: key.clone(),
                path,
                // The job's copy is its own: a `pull` job may write it, as on GitLab, and its
                // writes are not kept.
                read_only: false,
                shared: false,
                labels,
                copy: Some(copy),
            });
        }
    }
    out
}

/// A cache path inside the project must be a directory there, or absent: its volume is mounted
/// at that path, and a link or a file in the project cannot be copied over a mount (the engine
/// fails with "device or resource busy"), nor should a mount follow a link out of the workspace.
pub fn check_in_project(mount: &Mount, project: &Path) -> Result<(), String> {
    if mount.path.starts_with('/') {
        return Ok(());
    }
    let mut at = project.to_path_buf();
    let mut shown = Vec::new();
    for part in mount.path.split('/').filter(|p| !p.is_empty() && *p != ".") {
        at.push(part);
        shown.push(part);
        let inner = shown.join("/");
        let whole = &mount.path;
        let why = match std::fs::symlink_metadata(&at) {
            Err(_) => return Ok(()),
            Ok(m) if m.is_dir() => continue,
            Ok(m) if m.file_type().is_symlink() => {
                let to = std::fs::read_link(&at).unwrap_or_default();
                format!("is a symbolic link in the project (to `{}`)", to.display())
            }
            Ok(_) => "is a file in the project".to_string(),
        };
        let what = if inner == *whole {
            format!("cache path `{whole}` {why}")
        } else {
            format!("cache path `{whole}`: `{inner}` {why}")
        };
        return Err(format!(
            "{what}; a cache is a directory mounted there (remove it from the project or cache \
             another path)"
        ));
    }
    Ok(())
}

/// Locks per volume: readers share, a writer is alone. Within one berth, an async lock; between
/// two berth processes on the same project, an advisory file lock in `.berth/locks/`.
#[derive(Default)]
pub struct Locks {
    locks: std::sync::Mutex<HashMap<String, Arc<RwLock<()>>>>,
}

/// Held while a job runs; dropping it releases both locks.
pub enum Guard {
    Read(
        #[allow(dead_code)] tokio::sync::OwnedRwLockReadGuard<()>,
        #[allow(dead_code)] Option<std::fs::File>,
    ),
    Write(
        #[allow(dead_code)] tokio::sync::OwnedRwLockWriteGuard<()>,
        #[allow(dead_code)] Option<std::fs::File>,
    ),
}

/// Take the file lock of a volume (shared or exclusive), waiting for it off the async threads.
/// `None` when the lock file cannot be made (then only the in-process lock protects).
/// The lock file is opened without following a link: a repository may bring `.berth/locks`.
async fn file_lock(project: &Path, volume: &str, exclusive: bool) -> Option<std::fs::File> {
    use std::os::unix::io::AsRawFd;
    let dir = crate::project::state::dir(project, &["locks"]).ok()?;
    let file = crate::project::state::open_lock_file(&dir.join(format!("{volume}.lock"))).ok()?;
    tokio::task::spawn_blocking(move || {
        let op = if exclusive {
            libc::LOCK_EX
        } else {
            libc::LOCK_SH
        };
        // SAFETY: flock on a descriptor we own; released when the file is closed.
        let rc = unsafe { libc::flock(file.as_raw_fd(), op) };
        (rc == 0).then_some(file)
    })
    .await
    .ok()
    .flatten()
}

impl Locks {
    /// Take the lock of every mount that is mounted live, in name order so that two jobs can
    /// never deadlock. A job's copy needs none: the copies in and out take theirs.
    pub async fn acquire(&self, mounts: &[Mount], project: &std::path::Path) -> Vec<Guard> {
        let mut sorted: Vec<&Mount> = mounts.iter().filter(|m| m.copy.is_none()).collect();
        sorted.sort_by(|a, b| a.volume.cmp(&b.volume));
        let mut guards = Vec::new();
        for m in sorted {
            let exclusive = !(m.read_only || m.shared);
            guards.push(self.one(&m.volume, exclusive, project).await);
        }
        guards
    }

    /// Hold these volumes (shared, or each alone), in name order.
    pub async fn hold(&self, volumes: &[&str], exclusive: bool, project: &Path) -> Vec<Guard> {
        let mut sorted = volumes.to_vec();
        sorted.sort();
        sorted.dedup();
        let mut guards = Vec::new();
        for v in sorted {
            guards.push(self.one(v, exclusive, project).await);
        }
        guards
    }

    async fn one(&self, volume: &str, exclusive: bool, project: &Path) -> Guard {
        let lock = {
            let mut map = self.locks.lock().unwrap_or_else(|e| e.into_inner());
            map.entry(volume.to_string()).or_default().clone()
        };
        if exclusive {
            let inner = lock.write_owned().await;
            Guard::Write(inner, file_lock(project, volume, true).await)
        } else {
            let inner = lock.read_owned().await;
            Guard::Read(inner, file_lock(project, volume, false).await)
        }
    }
}

/// The volume of a job's copy of a cache, for one attempt (a retry starts from the stored
/// cache again, as GitLab's new job does).
pub fn copy_volume(run_id: &str, job_index: usize, attempt: u32, mount: &Mount) -> String {
    format!(
        "berth-cachecopy-{run_id}-{job_index}-{attempt}-{}",
        short_hash(&[&mount.volume])
    )
}

/// Where a job's copies of its caches come from and go to, for one attempt.
pub struct Copies<'a> {
    pub engine: &'a dyn ContainerRuntime,
    pub locks: &'a Locks,
    pub project: &'a Path,
    /// The job's image (its `sh` and `cp` do the copying) and its containers' labels.
    pub image: &'a str,
    pub labels: &'a HashMap<String, String>,
    /// A prefix for the helper containers' names (unique to the job's attempt).
    pub name: String,
}

/// One cache copied into a job: which of its mounts, the copy's volume, and where it came
/// from (the key restored, `None` when it starts empty).
#[derive(Debug, Clone)]
pub struct Restored {
    pub mount: usize,
    pub volume: String,
    pub from: Option<String>,
}

impl Copies<'_> {
    /// Make the job's copy of each cache it works on a copy of, filled from the stored cache
    /// (or the first fallback key that has one); the log lines say what was found.
    pub async fn restore(
        &self,
        mounts: &[Mount],
        run_id: &str,
        job_index: usize,
        attempt: u32,
    ) -> Result<(Vec<Restored>, Vec<String>), String> {
        let mut restored = Vec::new();
        let mut lines = Vec::new();
        let existing = self.existing().await?;
        let mut pairs: Vec<(String, String)> = Vec::new();
        for (i, m) in mounts.iter().enumerate() {
            let Some(copy) = &m.copy else { continue };
            let volume = copy_volume(run_id, job_index, attempt, m);
            let mut labels = self.labels.clone();
            labels.insert(labels::TEMPORARY.to_string(), "1".to_string());
            self.engine
                .create_volume(&volume, &labels)
                .await
                .map_err(|e| format!("volume {volume}: {e}"))?;
            let mut from = None;
            if !copy.restore {
                lines.push(format!("Not downloading cache {} due to policy", m.key));
            } else {
                let candidates = std::iter::once((&m.key, &m.volume))
                    .chain(copy.fallbacks.iter().map(|(k, v)| (k, v)));
                for (key, stored) in candidates {
                    lines.push(format!("Checking cache for {key}..."));
                    if existing.contains(stored) {
                        pairs.push((stored.clone(), volume.clone()));
                        from = Some(key.clone());
                        lines.push(format!(
                            "Successfully extracted cache ({key} at {})",
                            m.path
                        ));
                        break;
                    }
                    lines.push(format!("WARNING: no cache for {key}"));
                }
            }
            restored.push(Restored {
                mount: i,
                volume,
                from,
            });
        }
        if !pairs.is_empty() {
            let sources: Vec<&str> = pairs.iter().map(|(f, _)| f.as_str()).collect();
            let _shared = self.locks.hold(&sources, false, self.project).await;
            self.copy(&pairs, false, "restore").await?;
        }
        Ok((restored, lines))
    }

    /// Publish the job's copies whose `cache: when` allows for its result (`passed`) over the
    /// stored caches, each alone while it is written; the log lines say what was saved.
    pub async fn save(
        &self,
        mounts: &[Mount],
        restored: &[Restored],
        passed: bool,
    ) -> Result<Vec<String>, String> {
        let mut lines = Vec::new();
        let mut pairs = Vec::new();
        let mut targets = Vec::new();
        for r in restored {
            let Some(m) = mounts.get(r.mount) else {
                continue;
            };
            let Some(copy) = &m.copy else { continue };
            match copy.save {
                None => lines.push(format!("Not uploading cache {} due to policy", m.key)),
                Some(when) if when.keeps(passed) => {
                    self.engine
                        .create_volume(&m.volume, &m.labels)
                        .await
                        .map_err(|e| format!("volume {}: {e}", m.volume))?;
                    lines.push(format!("Creating cache {} ({})...", m.key, m.path));
                    pairs.push((r.volume.clone(), m.volume.clone()));
                    targets.push(m.volume.as_str());
                }
                Some(_) => {}
            }
        }
        if pairs.is_empty() {
            return Ok(lines);
        }
        let _alone = self.locks.hold(&targets, true, self.project).await;
        self.copy(&pairs, true, "save").await?;
        lines.push("Created cache".to_string());
        Ok(lines)
    }

    /// The project's volumes on the engine, by name.
    async fn existing(&self) -> Result<std::collections::HashSet<String>, String> {
        let filter = format!("{}={}", labels::PROJECT, self.project.display());
        let found = self
            .engine
            .volumes_with_label(&filter)
            .await
            .map_err(|e| format!("cannot list the caches: {e}"))?;
        Ok(found.into_iter().map(|v| v.name).collect())
    }

    /// Copy each (from, to) volume's content in one helper container; with `replace`, what
    /// `to` held goes first.
    async fn copy(
        &self,
        pairs: &[(String, String)],
        replace: bool,
        what: &str,
    ) -> Result<(), String> {
        let mut binds = Vec::new();
        let mut script = String::from("set -e\n");
        for (i, (from, to)) in pairs.iter().enumerate() {
            binds.push(format!("{from}:/berth-from/{i}:ro"));
            binds.push(format!("{to}:/berth-to/{i}"));
            if replace {
                // A copy the job left as it found it is not written again (most runs change
                // nothing): comparing reads the files, rewriting 10k of them takes seconds.
                // Globs that match nothing stay as written, and `rm -f` ignores them.
                script.push_str(&format!(
                    "if ! {{ command -v diff >/dev/null 2>&1 && diff -rq /berth-from/{i} /berth-to/{i} >/dev/null 2>&1; }}; then\n\
                     rm -rf /berth-to/{i}/* /berth-to/{i}/.[!.]* /berth-to/{i}/..?*\n\
                     cp -a /berth-from/{i}/. /berth-to/{i}/\n\
                     fi\n"
                ));
            } else {
                script.push_str(&format!("cp -a /berth-from/{i}/. /berth-to/{i}/\n"));
            }
        }
        let spec = ContainerSpec {
            name: format!("{}-{what}", self.name),
            image: self.image.to_string(),
            entrypoint: Some(vec!["/bin/sh".into(), "-c".into(), script]),
            working_dir: "/".into(),
            labels: self.labels.clone(),
            binds,
            network: Some("none".into()),
            options: crate::pipeline::ContainerOptions {
                user: Some("0".into()),
                ..Default::default()
            },
            ..ContainerSpec::default()
        };
        let engine = self.engine;
        let failed = |e: String| format!("cannot {what} the caches in image {}: {e}", self.image);
        let id = engine
            .create_container(&spec)
            .await
            .map_err(|e| failed(e.to_string()))?;
        let result = async {
            engine.start(&id).await.map_err(|e| e.to_string())?;
            let code = engine.wait(&id).await.map_err(|e| e.to_string())?;
            if code == 0 {
                return Ok(());
            }
            // What the copy said, for the message.
            let mut said = String::new();
            let mut out = engine.output_so_far(&id);
            while let Some(Ok(chunk)) = futures_util::StreamExt::next(&mut out).await {
                let (Output::Stdout(b) | Output::Stderr(b)) = chunk;
                said.push_str(&String::from_utf8_lossy(&b));
                if said.len() > 2000 {
                    break;
                }
            }
            let said = said.lines().take(5).collect::<Vec<_>>().join("; ");
            Err(format!("the copy exited with code {code}: {said}"))
        }
        .await;
        let _ = engine.remove_container(&id).await;
        result.map_err(failed)
    }
}

/// What `berth cache ls` knows beyond Docker: which jobs used a cache and when.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Index {
    pub volumes: BTreeMap<String, IndexEntry>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct IndexEntry {
    pub key: String,
    pub path: String,
    pub jobs: Vec<String>,
    /// Seconds since the epoch.
    pub last_used: u64,
}

impl Index {
    const FILE: &'static str = "caches.json";

    /// The index, or an empty one (none yet, unreadable, or not a plain file of berth's).
    pub fn load(project: &Path) -> Index {
        let Ok(Some(dir)) = crate::project::state::existing_dir(project, &[]) else {
            return Index::default();
        };
        let path = dir.join(Self::FILE);
        if !std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_file()) {
            return Index::default();
        }
        std::fs::read(path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    /// Written whole, never through a link (see [`crate::project::state`]).
    pub fn save(&self, project: &Path) -> std::io::Result<()> {
        let dir = crate::project::state::dir(project, &[]).map_err(std::io::Error::other)?;
        let json = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        crate::project::state::write_atomic(&dir, Self::FILE, &json)
    }

    pub fn record(&mut self, mount: &Mount, job: &str, now: u64) {
        let entry = self.volumes.entry(mount.volume.clone()).or_default();
        entry.key = mount.key.clone();
        entry.path = mount.path.clone();
        entry.last_used = now;
        if !entry.jobs.iter().any(|j| j == job) {
            entry.jobs.push(job.to_string());
            entry.jobs.sort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(key: CacheKey, paths: &[&str], policy: CachePolicy) -> Cache {
        Cache {
            policy,
            ..Cache::new(key, paths.iter().map(|s| s.to_string()).collect())
        }
    }

    #[test]
    fn keys_expand_and_hash_files() {
        let dir = tempfile::tempdir().unwrap();
        let env = vec![("CI_JOB_NAME".to_string(), "lint".to_string())];
        let text = cache(
            CacheKey::Text("deps-$CI_JOB_NAME".into()),
            &["x"],
            CachePolicy::PullPush,
        );
        assert_eq!(key_of(&text, &env, dir.path()), "deps-lint");
        let files = cache(
            CacheKey::Files {
                files: vec!["requirements.txt".into()],
                prefix: Some("py".into()),
            },
            &["x"],
            CachePolicy::PullPush,
        );
        assert_eq!(
            key_of(&files, &env, dir.path()),
            "py-default",
            "no file yet"
        );
        std::fs::write(dir.path().join("requirements.txt"), "pytest==8\n").unwrap();
        let k1 = key_of(&files, &env, dir.path());
        std::fs::write(dir.path().join("requirements.txt"), "pytest==9\n").unwrap();
        let k2 = key_of(&files, &env, dir.path());
        assert!(k1.starts_with("py-") && k2.starts_with("py-"));
        assert_ne!(k1, k2, "a changed lockfile gets a new key");
    }

    #[test]
    fn volume_names_separate_projects_and_keys() {
        let a = volume_name(Path::new("/p/a"), "default", ".cache");
        assert_eq!(a, volume_name(Path::new("/p/a"), "default", ".cache"));
        assert_ne!(a, volume_name(Path::new("/p/b"), "default", ".cache"));
        assert_ne!(a, volume_name(Path::new("/p/a"), "other", ".cache"));
        assert_ne!(a, volume_name(Path::new("/p/a"), "default", "vendor"));
        assert!(a.starts_with("berth-cache-"));
    }

    #[test]
    fn a_cache_path_must_be_a_directory_or_absent_in_the_project() {
        let dir = tempfile::tempdir().unwrap();
        let at = |path: &str| {
            let caches = vec![cache(
                CacheKey::Text("k".into()),
                &[path],
                CachePolicy::PullPush,
            )];
            let m = mounts(&caches, &[], dir.path(), "run1", false);
            check_in_project(&m[0], dir.path())
        };
        assert_eq!(at("vendor"), Ok(()), "absent");
        std::fs::create_dir_all(dir.path().join(".cache/pip")).unwrap();
        assert_eq!(at(".cache/pip/"), Ok(()));
        assert_eq!(at("./.cache/pip/wheels"), Ok(()));
        std::os::unix::fs::symlink("/tmp", dir.path().join("vendor")).unwrap();
        assert_eq!(
            at("vendor/"),
            Err(
                "cache path `vendor` is a symbolic link in the project (to `/tmp`); a cache is \
                 a directory mounted there (remove it from the project or cache another path)"
                    .into()
            )
        );
        std::os::unix::fs::symlink(".cache", dir.path().join("c")).unwrap();
        assert!(at("c/pip")
            .unwrap_err()
            .starts_with("cache path `c/pip`: `c` is a symbolic link"));
        std::fs::write(dir.path().join("f"), "").unwrap();
        assert!(at("f")
            .unwrap_err()
            .starts_with("cache path `f` is a file in the project;"));
        let abs = vec![cache(
            CacheKey::Text("k".into()),
            &["/var/cache/x"],
            CachePolicy::Pull,
        )];
        let m = mounts(&abs, &[], dir.path(), "run1", false);
        assert_eq!(check_in_project(&m[0], dir.path()), Ok(()));
    }

    #[test]
    fn each_job_works_on_a_copy_saved_as_its_policy_and_when_say() {
        let caches = vec![
            cache(
                CacheKey::Text("k".into()),
                &[".cache/pip/", "vendor"],
                CachePolicy::Pull,
            ),
            cache(
                CacheKey::Text("other".into()),
                &["vendor"],
                CachePolicy::PullPush,
            ),
            Cache {
                when: CacheWhen::Always,
                ..cache(CacheKey::Text("p".into()), &["out"], CachePolicy::Push)
            },
        ];
        let m = mounts(&caches, &[], Path::new("/p/a"), "run1", false);
        assert_eq!(m.len(), 3, "the first cache naming a path wins");
        let copy = |i: usize| m[i].copy.clone().unwrap();
        assert!(
            !m[0].read_only,
            "a pull job may write its copy, as on GitLab"
        );
        assert_eq!((copy(0).restore, copy(0).save), (true, None));
        assert_eq!(
            (copy(2).restore, copy(2).save),
            (false, Some(CacheWhen::Always))
        );
        assert_eq!(
            m[0].bind_of("work", "/builds/a"),
            "work:/builds/a/.cache/pip"
        );
        assert_ne!(
            copy_volume("run1", 3, 1, &m[0]),
            copy_volume("run1", 3, 2, &m[0]),
            "a retry starts from the stored cache again"
        );
        let tmp = mounts(&caches, &[], Path::new("/p/a"), "run1", true);
        assert!(tmp[0].volume.starts_with("berth-tmpcache-run1-"));
        assert_eq!(
            tmp[0].labels.get(labels::TEMPORARY).map(String::as_str),
            Some("1")
        );
    }

    #[test]
    fn fallback_keys_then_the_global_fallback_key() {
        let c = Cache {
            fallback_keys: vec!["deps-$CI_DEFAULT_BRANCH".into(), "deps-$NONE".into()],
            ..cache(
                CacheKey::Text("deps-$CI_COMMIT_REF_SLUG".into()),
                &["vendor"],
                CachePolicy::PullPush,
            )
        };
        let env = vec![
            ("CI_COMMIT_REF_SLUG".to_string(), "feature".to_string()),
            ("CI_DEFAULT_BRANCH".to_string(), "main".to_string()),
            ("CACHE_FALLBACK_KEY".to_string(), "deps-main".to_string()),
        ];
        assert_eq!(
            fallback_keys(&c, "deps-feature", &env),
            vec!["deps-main", "deps-"],
            "in order, each once"
        );
        let env2 = vec![
            ("CI_COMMIT_REF_SLUG".to_string(), "feature".to_string()),
            ("CACHE_FALLBACK_KEY".to_string(), "global".to_string()),
        ];
        let m = mounts(
            std::slice::from_ref(&c),
            &env2,
            Path::new("/p/a"),
            "r",
            false,
        );
        let fallbacks = &m[0].copy.as_ref().unwrap().fallbacks;
        assert_eq!(
            fallbacks
                .iter()
                .map(|(k, _)| k.as_str())
                .collect::<Vec<_>>(),
            vec!["deps-", "global"],
            "CACHE_FALLBACK_KEY comes last"
        );
        assert_eq!(
            fallbacks[1].1,
            volume_name(Path::new("/p/a"), "global", "vendor")
        );
    }
}
