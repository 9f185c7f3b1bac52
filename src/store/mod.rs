//! The run store: `.berth/runs/<run-id>/`, one directory per run. Its manifest ([`record`])
//! and logs are written by the records reporter, its artifacts ([`archives`]) by the engine;
//! [`verify`] compares two runs' artifacts.
//!
//! Only what this module recognises as a run record is listed, read or deleted: a real
//! directory (not a link) named like a run id. A repository may bring its own `.berth/`, so a
//! name from the command line is checked before it becomes a path. A live run holds an
//! advisory lock on its `lock` file (the kernel drops it however the process ends, in any PID
//! namespace that shares the file), which tells a record left "running" by a berth that died
//! from one whose berth is still at work.

use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

pub mod archives;
pub mod record;
pub mod verify;

use crate::project::state::{self, StateError};
use record::{RunManifest, MANIFEST};

/// The file a live run holds locked.
const LOCK: &str = "lock";

/// The store's folder under berth's own (`.berth/runs`).
const RUNS: &str = "runs";

/// A run's record folder relative to the project, `.berth/runs/<run-id>`, as berth shows it.
pub fn record_dir(run_id: &str) -> PathBuf {
    Path::new(state::DIR).join(RUNS).join(run_id)
}

/// The status given to a record whose berth ended without finishing it.
pub const ABANDONED: &str = "abandoned";

/// Is `name` a run id (`YYYYMMDD-HHMMSS-xxxx`, the suffix optional for older records)?
/// Nothing else under `.berth/runs` is berth's, and nothing else may become a path there.
pub fn is_run_id(name: &str) -> bool {
    let b = name.as_bytes();
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    if b.len() < 15 || !digits(0..8) || b[8] != b'-' || !digits(9..15) {
        return false;
    }
    match &b[15..] {
        [] => true,
        [b'-', hex @ ..] => {
            (4..=8).contains(&hex.len()) && hex.iter().all(|c| c.is_ascii_hexdigit())
        }
        _ => false,
    }
}

/// A run id for now, and the pipeline id derived from the same instant.
pub fn new_run_id() -> (String, u64) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs();
    let (y, m, d) = civil_from_days((secs / 86400) as i64);
    let t = secs % 86400;
    // The suffix sorts too: the millisecond (64 × 0..999 < 0x10000), then a few bits that set
    // apart two processes started in the same millisecond.
    let salt = now.subsec_millis() * 64 + ((now.subsec_nanos() ^ std::process::id()) & 63);
    let id = format!(
        "{y:04}{m:02}{d:02}-{:02}{:02}{:02}-{salt:04x}",
        t / 3600,
        (t % 3600) / 60,
        t % 60
    );
    (id, secs % 1_000_000_000)
}

/// The id after `id`: its hex suffix plus one (it still sorts after `id`).
fn next_run_id(id: &str) -> String {
    match id.rsplit_once('-') {
        Some((head, tail)) => {
            let n = u32::from_str_radix(tail, 16).unwrap_or(0).wrapping_add(1) & 0xffff;
            format!("{head}-{n:04x}")
        }
        None => format!("{id}-0000"),
    }
}

/// Days since 1970-01-01 to a (year, month, day) date (Howard Hinnant's algorithm).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Why a run record cannot be had.
#[derive(Debug, thiserror::Error)]
pub enum RunsError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error(
        "`{0}` is not a run id (runs are named like 20261124-213501-1a2b; `berth runs` lists them)"
    )]
    NotAnId(String),
    #[error("no run `{id}` in {}", runs.display())]
    NoSuchRun { id: String, runs: PathBuf },
    #[error("no runs recorded in {}", .0.display())]
    NoRuns(PathBuf),
    #[error("cannot create {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A project's run store.
pub struct Runs {
    dir: PathBuf,
}

/// Held while a run is live: its record's lock. Dropping it (or the process ending in any
/// way) releases the lock.
pub struct Live {
    /// `None` where the filesystem has no locks (then a later berth cannot tell).
    _lock: Option<std::fs::File>,
}

impl Runs {
    /// The store, made if missing (for commands that write records).
    pub fn create(project: &Path) -> Result<Runs, StateError> {
        Ok(Runs {
            dir: state::dir(project, &[RUNS])?,
        })
    }

    /// The store for reading: `.berth/runs` need not exist (then it lists nothing), but a link
    /// on the way is refused.
    pub fn open(project: &Path) -> Result<Runs, StateError> {
        // Checked for links on the way; it need not exist yet (then it lists nothing).
        state::existing_dir(project, &[RUNS])?;
        Ok(Runs {
            dir: project.join(state::DIR).join(RUNS),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The record directory of a (checked) run id.
    pub fn path(&self, id: &str) -> PathBuf {
        self.dir.join(id)
    }

    /// Is there a record of this name? Only run ids are looked up.
    pub fn has(&self, name: &str) -> bool {
        is_run_id(name) && matches!(state::is_real_dir(&self.dir.join(name)), Ok(true))
    }

    /// The run records, oldest first.
    pub fn ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = std::fs::read_dir(&self.dir)
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                    .filter_map(|e| e.file_name().into_string().ok())
                    .filter(|name| is_run_id(name))
                    .collect()
            })
            .unwrap_or_default();
        ids.sort();
        ids
    }

    /// The run a command names, or the latest.
    pub fn pick(&self, given: Option<&str>) -> Result<String, RunsError> {
        match given {
            Some(id) if !is_run_id(id) => Err(RunsError::NotAnId(id.to_string())),
            Some(id) if self.has(id) => Ok(id.to_string()),
            Some(id) => Err(RunsError::NoSuchRun {
                id: id.to_string(),
                runs: self.dir.clone(),
            }),
            None => self
                .ids()
                .pop()
                .ok_or_else(|| RunsError::NoRuns(self.dir.clone())),
        }
    }

    /// Claim a new record directory, which makes the id this run's alone (two runs started in
    /// the same millisecond may draw the same id; the second takes the next one), and hold it
    /// live.
    pub fn claim(&self, mut id: String) -> Result<(String, PathBuf, Live), RunsError> {
        for _ in 0..64 {
            let dir = self.dir.join(&id);
            match std::fs::create_dir(&dir) {
                Ok(()) => {
                    let live = hold(&dir).map_err(|source| RunsError::Io {
                        path: dir.join(LOCK),
                        source,
                    })?;
                    return Ok((id, dir, live));
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => id = next_run_id(&id),
                Err(source) => return Err(RunsError::Io { path: dir, source }),
            }
        }
        Err(RunsError::Io {
            path: self.dir.join(&id),
            source: std::io::Error::other("every nearby run id is taken"),
        })
    }

    /// Remove the oldest finished records so that at most `keep` remain. Only run records are
    /// removed, never one whose run is still live, nor `protect` (a record a run reads).
    pub fn prune(&self, keep: usize, protect: Option<&str>) -> std::io::Result<usize> {
        let ids = self.ids();
        let excess = ids.len().saturating_sub(keep);
        let mut removed = 0;
        for id in &ids[..excess] {
            let dir = self.dir.join(id);
            if is_live(&dir) || Some(id.as_str()) == protect {
                continue;
            }
            std::fs::remove_dir_all(&dir)?;
            removed += 1;
        }
        Ok(removed)
    }

    /// Records still "running" whose berth has gone (killed, out of disk, ...): marked
    /// abandoned, and their half-written artifact archives removed. Returns their ids.
    pub fn settle_abandoned(&self) -> Vec<String> {
        let mut settled = Vec::new();
        for id in self.ids() {
            let dir = self.dir.join(&id);
            if !RunManifest::load(&dir).is_ok_and(|m| m.status == "running") {
                continue;
            }
            // Held while the record is changed, and the manifest read again under it: its
            // berth may have finished it just now.
            let Some(_held) = try_lock(&dir) else {
                continue;
            };
            let Ok(mut manifest) = RunManifest::load(&dir) else {
                continue;
            };
            if manifest.status != "running" {
                continue;
            }
            // Half-written archives of the dead run (whole ones keep their names).
            let _ = archives::remove_partial(&dir);
            manifest.status = ABANDONED.into();
            for job in &mut manifest.jobs {
                if matches!(job.status.as_str(), "running" | "queued" | "") {
                    job.status = ABANDONED.into();
                }
            }
            let written = serde_json::to_vec_pretty(&manifest)
                .map_err(std::io::Error::other)
                .and_then(|json| state::write_atomic(&dir, MANIFEST, &json));
            if written.is_ok() {
                settled.push(id);
            }
        }
        settled
    }
}

/// Open a file of a run record (`logs/x.log`) for reading: the path must stay inside the
/// record, and no directory on the way nor the file itself may be a link (a record may have
/// come with the repository).
pub fn open_in_record(run_dir: &Path, rel: &str) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let refuse = |why: &str| {
        std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            format!("`{rel}` {why}; not read"),
        )
    };
    if rel.starts_with('/') || rel.split('/').any(|p| p == "..") {
        return Err(refuse("is outside the run's directory"));
    }
    let mut path = run_dir.to_path_buf();
    let parts: Vec<&str> = rel
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    let Some((file, dirs)) = parts.split_last() else {
        return Err(refuse("names no file"));
    };
    for dir in dirs {
        path.push(dir);
        if !matches!(state::is_real_dir(&path), Ok(true)) {
            return Err(refuse("lies behind a link or a missing folder"));
        }
    }
    path.push(file);
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => refuse("is a link"),
            _ => e,
        })
}

/// Take the lock of a record directory: ours for as long as the process lives. Waits for a
/// moment's probe by another berth (see [`try_lock`]).
fn hold(dir: &Path) -> std::io::Result<Live> {
    let file = state::open_lock_file(&dir.join(LOCK))?;
    // SAFETY: flock on a descriptor we own; the lock goes with the descriptor.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
        let e = std::io::Error::last_os_error();
        return match e.raw_os_error() {
            // A filesystem without locks: the run goes on; only settling cannot tell.
            Some(libc::ENOLCK) | Some(libc::EOPNOTSUPP) => Ok(Live { _lock: None }),
            _ => Err(e),
        };
    }
    Ok(Live { _lock: Some(file) })
}

/// The record's lock when no live berth holds it (the caller then holds it while it changes
/// the record). `None` when one does, or when it cannot be told: a record being created (no
/// lock file, no manifest yet), or a lock file that is not a plain file of berth's.
fn try_lock(dir: &Path) -> Option<std::fs::File> {
    let path = dir.join(LOCK);
    match std::fs::symlink_metadata(&path) {
        // An older berth's record, or one a moment old: only one with a manifest is finished.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::symlink_metadata(dir.join(MANIFEST)).ok()?;
        }
        Err(_) => return None,
        Ok(m) if !m.is_file() => return None,
        Ok(_) => {}
    }
    let file = state::open_lock_file(&path).ok()?;
    // SAFETY: as in `hold`; released when `file` is dropped.
    (unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0).then_some(file)
}

fn is_live(dir: &Path) -> bool {
    try_lock(dir).is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_416), (2025, 11, 24));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }

    #[test]
    fn run_ids_and_what_is_not_one() {
        assert!(is_run_id("20261124-213501-1a2b"));
        assert!(is_run_id("20261124-213501"));
        for bad in [
            "../../x",
            "..",
            "20261124-213501-1a2b/..",
            "20261124-213501-",
            "2026112a-213501-1a2b",
            "20261124-213501-zzzz",
            "",
            "runs",
        ] {
            assert!(!is_run_id(bad), "{bad}");
        }
    }

    #[test]
    fn a_taken_run_id_gives_way_to_the_next() {
        let project = tempfile::tempdir().unwrap();
        let runs = Runs::create(project.path()).unwrap();
        let id = "20261124-213501-1a2b".to_string();
        let (a, _, _live_a) = runs.claim(id.clone()).unwrap();
        let (b, dir, _live_b) = runs.claim(id.clone()).unwrap();
        assert_eq!(a, id);
        assert_eq!(b, "20261124-213501-1a2c");
        assert!(dir.is_dir() && b > a);
    }

    #[test]
    fn run_ids_started_in_one_second_sort_in_order() {
        let mut ids = Vec::new();
        for _ in 0..5 {
            ids.push(new_run_id().0);
            std::thread::sleep(std::time::Duration::from_millis(3));
        }
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, sorted);
        assert!(ids.iter().all(|id| is_run_id(id)));
    }

    #[test]
    fn pruning_removes_only_finished_run_records() {
        let project = tempfile::tempdir().unwrap();
        let runs = Runs::create(project.path()).unwrap();
        for id in ["20260101-000000-0001", "20260101-000000-0002"] {
            finished_record(&runs, id);
        }
        // A record a moment old (no lock, no manifest yet) is being created: kept.
        std::fs::create_dir(runs.path("20260101-000000-0000")).unwrap();
        // Not berth's: kept whatever `keep` says.
        std::fs::create_dir(runs.dir().join("notes")).unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::create_dir(outside.path().join("precious")).unwrap();
        std::os::unix::fs::symlink(
            outside.path().join("precious"),
            runs.dir().join("20250101-000000-0000"),
        )
        .unwrap();
        let (live_id, _, live) = runs.claim("20260101-000000-0003".into()).unwrap();
        assert_eq!(runs.prune(0, None).unwrap(), 2);
        let born = "20260101-000000-0000".to_string();
        assert_eq!(runs.ids(), vec![born.clone(), live_id]);
        assert!(runs.dir().join("notes").is_dir());
        assert!(outside.path().join("precious").is_dir());
        // Once its berth is gone, a record with a lock file is finished, manifest or not.
        drop(live);
        assert_eq!(runs.prune(0, None).unwrap(), 1);
        assert_eq!(runs.ids(), vec![born]);
    }

    #[test]
    fn record_files_are_read_only_inside_the_record() {
        let run = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), "s").unwrap();
        std::fs::create_dir(run.path().join("logs")).unwrap();
        std::fs::write(run.path().join("logs/a.log"), "a").unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret"), run.path().join("logs/b.log"))
            .unwrap();
        std::os::unix::fs::symlink(outside.path(), run.path().join("artifacts")).unwrap();
        assert!(open_in_record(run.path(), "logs/a.log").is_ok());
        for bad in ["logs/b.log", "artifacts/secret", "../x", "/etc/passwd", ""] {
            assert!(open_in_record(run.path(), bad).is_err(), "{bad}");
        }
    }

    fn finished_record(runs: &Runs, id: &str) {
        std::fs::create_dir(runs.path(id)).unwrap();
        std::fs::write(runs.path(id).join(MANIFEST), "{}").unwrap();
    }

    #[test]
    fn pruning_keeps_the_newest() {
        let project = tempfile::tempdir().unwrap();
        let runs = Runs::create(project.path()).unwrap();
        for id in [
            "20260101-000000-aaaa",
            "20260102-000000-aaaa",
            "20260103-000000-aaaa",
        ] {
            finished_record(&runs, id);
        }
        assert_eq!(runs.prune(2, None).unwrap(), 1);
        assert_eq!(runs.ids(), ["20260102-000000-aaaa", "20260103-000000-aaaa"]);
        // A record a run reads from is kept, however old.
        assert_eq!(runs.prune(1, Some("20260102-000000-aaaa")).unwrap(), 0);
        assert_eq!(runs.prune(0, Some("20260102-000000-aaaa")).unwrap(), 1);
        assert_eq!(runs.ids(), ["20260102-000000-aaaa"]);
    }

    #[test]
    fn names_that_are_not_run_ids_are_refused() {
        let project = tempfile::tempdir().unwrap();
        let runs = Runs::create(project.path()).unwrap();
        assert!(matches!(
            runs.pick(Some("../../x")),
            Err(RunsError::NotAnId(_))
        ));
        assert!(matches!(
            runs.pick(Some("20260101-000000-0001")),
            Err(RunsError::NoSuchRun { .. })
        ));
        assert!(matches!(runs.pick(None), Err(RunsError::NoRuns(_))));
    }

    #[test]
    fn records_left_running_by_a_dead_berth_are_settled() {
        let project = tempfile::tempdir().unwrap();
        let runs = Runs::create(project.path()).unwrap();
        let write = |dir: &Path, status: &str| {
            let m = RunManifest {
                status: status.into(),
                ..RunManifest::default()
            };
            std::fs::write(dir.join(MANIFEST), serde_json::to_vec(&m).unwrap()).unwrap();
        };
        let (dead, dir, live) = runs.claim("20260101-000000-0001".into()).unwrap();
        write(&dir, "running");
        std::fs::create_dir(dir.join("artifacts")).unwrap();
        std::fs::write(dir.join("artifacts/build.tar.gz.partial"), "half").unwrap();
        drop(live); // as when the process is killed
        let (alive, dir2, _live) = runs.claim("20260101-000000-0002".into()).unwrap();
        write(&dir2, "running");
        assert_eq!(runs.settle_abandoned(), vec![dead.clone()]);
        assert_eq!(
            RunManifest::load(&runs.path(&dead)).unwrap().status,
            ABANDONED
        );
        assert!(!dir.join("artifacts/build.tar.gz.partial").exists());
        assert_eq!(
            RunManifest::load(&runs.path(&alive)).unwrap().status,
            "running"
        );
    }
}
