//! Dependency caches: each `cache` path of a job is a Docker named volume that outlives the run,
//! named from the project and the key, so two projects never share one by accident and the same
//! key always finds the same volume. Volumes are mounted live (read-only for `policy: pull`);
//! jobs that write a cache take it exclusively, so parallel jobs never corrupt it.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::RwLock;

use crate::engine::runtime::labels;
use crate::pipeline::expand;
use crate::pipeline::{Cache, CacheKey, CachePolicy};
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
}

impl Mount {
    /// `volume:target[:ro]`; a relative path is inside the workspace, an absolute one as is.
    pub fn bind(&self, container_dir: &str) -> String {
        let ro = if self.read_only { ":ro" } else { "" };
        let path = self.path.trim_end_matches('/');
        if path.starts_with('/') {
            format!("{}:{path}{ro}", self.volume)
        } else {
            format!("{}:{container_dir}/{path}{ro}", self.volume)
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

/// The key of a cache for a job: the text with variables expanded, or a hash of files.
pub fn key_of(cache: &Cache, env: &[(String, String)], project: &Path) -> String {
    match &cache.key {
        CacheKey::Text(text) => {
            let lookup = |n: &str| env.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
            let key = expand::expand(text, &lookup, 0);
            if key.trim().is_empty() {
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
    let mut out: Vec<Mount> = Vec::new();
    for cache in caches {
        let key = key_of(cache, env, project);
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
            let volume = if temporary {
                labels.insert(labels::RUN.to_string(), run_id.to_string());
                labels.insert(labels::TEMPORARY.to_string(), "1".to_string());
                format!("berth-tmpcache-{run_id}-{}", short_hash(&[&key, &path]))
            } else {
                volume_name(project, &key, &path)
            };
            // Two caches naming the same path: the first wins, as one directory takes one mount.
            if out.iter().any(|m| m.path == path) {
                continue;
            }
            out.push(Mount {
                volume,
                key: key.clone(),
                path,
                read_only: cache.policy == CachePolicy::Pull,
                shared: false,
                labels,
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
    /// Take every mount's lock, in name order so that two jobs can never deadlock.
    pub async fn acquire(&self, mounts: &[Mount], project: &std::path::Path) -> Vec<Guard> {
        let mut sorted: Vec<&Mount> = mounts.iter().collect();
        sorted.sort_by(|a, b| a.volume.cmp(&b.volume));
        let mut guards = Vec::new();
        for m in sorted {
            let lock = {
                let mut map = self.locks.lock().unwrap_or_else(|e| e.into_inner());
                map.entry(m.volume.clone()).or_default().clone()
            };
            guards.push(if m.read_only || m.shared {
                let inner = lock.read_owned().await;
                Guard::Read(inner, file_lock(project, &m.volume, false).await)
            } else {
                let inner = lock.write_owned().await;
                Guard::Write(inner, file_lock(project, &m.volume, true).await)
            });
        }
        guards
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
    fn mounts_per_path_read_only_for_pull() {
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
        ];
        let m = mounts(&caches, &[], Path::new("/p/a"), "run1", false);
        assert_eq!(m.len(), 2);
        assert!(m.iter().all(|m| m.read_only));
        assert_eq!(
            m[0].bind("/builds/a"),
            format!("{}:/builds/a/.cache/pip:ro", m[0].volume)
        );
        let tmp = mounts(&caches, &[], Path::new("/p/a"), "run1", true);
        assert!(tmp[0].volume.starts_with("berth-tmpcache-run1-"));
        assert_eq!(
            tmp[0].labels.get(labels::TEMPORARY).map(String::as_str),
            Some("1")
        );
    }
}
