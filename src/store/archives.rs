//! A job's artifacts in the run record: `artifacts/<NNN-job>.tar.gz` and, beside it, a JSON
//! list of its files (path, size, sha256). The engine writes them; `berth artifacts`, `verify`
//! and later jobs read them.

use std::io;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// The suffix of files being written in a run's `artifacts/`.
pub const PARTIAL: &str = ".partial";

/// What a job stored: written next to its archive as JSON.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ArtifactManifest {
    pub job: String,
    /// The artifact's own name, for artifacts a step uploaded by name (GitHub's
    /// `actions/upload-artifact`); a job's artifacts (GitLab's) have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub archive: String,
    pub files: Vec<FileEntry>,
    /// Bytes of file content (before compression).
    pub bytes: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FileEntry {
    pub path: String,
    pub size: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// For a symbolic link: where it points.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
}

/// Where a run's record keeps the variables of each job's dotenv reports (`dotenv/<NNN-job>.json`,
/// a [`DotenvRecord`]), for a later run that takes them (`berth run --from-run`).
pub const DOTENV_DIR: &str = "dotenv";

/// A job's dotenv variables, as its run recorded them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DotenvRecord {
    pub job: String,
    pub variables: Vec<(String, String)>,
}

impl DotenvRecord {
    /// Write it into the record at `run_dir` as `dotenv/<stem>.json`.
    pub fn write(&self, run_dir: &Path, stem: &str) -> io::Result<()> {
        let dir = run_dir.join(DOTENV_DIR);
        std::fs::create_dir_all(&dir)?;
        let json = serde_json::to_vec_pretty(self).map_err(io::Error::other)?;
        std::fs::write(dir.join(format!("{stem}.json")), json)
    }
}

/// Remove what a run stopped midway left being written in `run_dir/artifacts/` (a killed berth
/// cannot): for the run of a berth that is gone. Returns how many files were removed.
pub fn remove_partial(run_dir: &Path) -> io::Result<usize> {
    let dir = run_dir.join("artifacts");
    // A record may have come with the repository: never list (and delete) through a link.
    match crate::project::state::is_real_dir(&dir) {
        Ok(true) => {}
        Ok(false) => return Ok(0),
        Err(e) => return Err(io::Error::other(e)),
    }
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut removed = 0;
    for entry in entries {
        let entry = entry?;
        // Only plain files of berth's own naming: never a link, never a directory.
        let ours =
            entry.file_name().to_string_lossy().ends_with(PARTIAL) && entry.file_type()?.is_file();
        if ours {
            std::fs::remove_file(entry.path())?;
            removed += 1;
        }
    }
    Ok(removed)
}
