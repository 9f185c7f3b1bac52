//! The first archive of each job's workspace, by the checkout its format asks for: the run's
//! snapshot of the project's files alone, a `.git` made for the checkout with the snapshot
//! after it, or nothing but the project's directory. Each kind is made once per run, before
//! the first job starts, and lives as long as the run.

use std::collections::HashMap;
use std::path::Path;

use tempfile::NamedTempFile;

use crate::pipeline::Checkout;
use crate::project::checkout;
use crate::project::workspace::{self, Selection};

/// The archives the run's checkouts start with.
#[derive(Debug, Default)]
pub(super) struct Checkouts {
    tars: HashMap<Checkout, NamedTempFile>,
}

/// What a job's upload starts with: a tar file, then (for a repository) the snapshot's
/// entries before whatever else the job receives.
pub(super) enum First<'a> {
    /// The snapshot, or the empty directory.
    Alone(&'a Path),
    /// The checkout's `.git`, then the snapshot.
    ThenSnapshot(&'a Path),
}

impl Checkouts {
    /// Make the archives for `wanted` (`Files` needs none: it is the snapshot). A repository
    /// that cannot be made is a note, and its jobs get the files alone.
    pub(super) fn make(
        wanted: &[Checkout],
        project: &Path,
        commit: &str,
        prefix: &str,
    ) -> (Checkouts, Vec<String>) {
        let mut out = Checkouts::default();
        let mut notes = Vec::new();
        let repository = checkout::can_check_out(project);
        for kind in wanted {
            if out.tars.contains_key(kind) {
                continue;
            }
            let made = match kind {
                Checkout::Files => continue,
                Checkout::Repository(_) if !repository => continue,
                Checkout::Repository(repo) => repository_tar(project, commit, repo, prefix),
                Checkout::Empty => empty_tar(prefix),
            };
            match made {
                Ok(tar) => {
                    out.tars.insert(kind.clone(), tar);
                }
                Err(why) => notes.push(format!(
                    "the checkout's git repository cannot be made ({why}): jobs get the project's files without `.git`"
                )),
            }
        }
        (out, notes)
    }

    /// How the upload of a job with `checkout` starts, given the run's snapshot.
    pub(super) fn first<'a>(&'a self, checkout: &Checkout, snapshot: &'a Path) -> First<'a> {
        match (checkout, self.tars.get(checkout)) {
            // Fetched, not checked out: the repository alone.
            (Checkout::Repository(r), Some(tar)) if !r.check_out => First::Alone(tar.path()),
            (Checkout::Repository(_), Some(tar)) => First::ThenSnapshot(tar.path()),
            (Checkout::Empty, Some(tar)) => First::Alone(tar.path()),
            _ => First::Alone(snapshot),
        }
    }
}

fn temp_tar() -> Result<NamedTempFile, String> {
    tempfile::Builder::new()
        .prefix("berth-checkout-")
        .suffix(".tar")
        .tempfile()
        .map_err(|e| format!("cannot make a temporary file: {e}"))
}

/// The project's directory and its `.git` (the working tree follows from the snapshot).
fn repository_tar(
    project: &Path,
    commit: &str,
    repo: &checkout::Repository,
    prefix: &str,
) -> Result<NamedTempFile, String> {
    let git_dir = tempfile::tempdir().map_err(|e| format!("cannot make a directory: {e}"))?;
    let git_files: Vec<(String, String)> = checkout::make(project, commit, repo, git_dir.path())
        .map_err(|e| e.to_string())?
        .into_iter()
        .map(|f| (f.path, f.text))
        .collect();
    let tar = temp_tar()?;
    let empty = tempfile::tempdir().map_err(|e| format!("cannot make a directory: {e}"))?;
    let selection = if repo.writable {
        Selection::RunnerCheckout
    } else {
        Selection::Checkout
    };
    workspace::write_checkout_tar(
        empty.path(),
        selection,
        prefix,
        Some(git_dir.path()),
        &git_files,
        tar.path(),
    )
    .map_err(|e| format!("cannot pack the repository: {e}"))?;
    Ok(tar)
}

/// The project's directory alone.
fn empty_tar(prefix: &str) -> Result<NamedTempFile, String> {
    let tar = temp_tar()?;
    let empty = tempfile::tempdir().map_err(|e| format!("cannot make a directory: {e}"))?;
    workspace::write_tar(empty.path(), Selection::Checkout, prefix, tar.path())
        .map_err(|e| format!("cannot pack an empty directory: {e}"))?;
    Ok(tar)
}

/// Where the snapshot tar's entries end (before its two end-of-archive blocks).
pub(super) fn entries_len(tar: &Path) -> std::io::Result<u64> {
    Ok(std::fs::metadata(tar)?
        .len()
        .saturating_sub(super::runtime::TAR_END))
}
