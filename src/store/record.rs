//! A run's record on disk: `manifest.json`, what the run was (commit, pipeline, versions) and
//! what each job did (image, environment, commands, status, log and artifacts), written by the
//! records reporter and read by `berth show`, `replay` and `verify`.

use std::path::Path;

use serde::{Deserialize, Serialize};

pub const MANIFEST: &str = "manifest.json";

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RunManifest {
    pub schema: u32,
    pub run_id: String,
    pub pipeline: String,
    pub status: String,
    pub started_at: u64,
    pub duration_ms: u64,
    pub berth_version: String,
    pub engine_version: String,
    pub pipeline_sha256: String,
    pub commit: String,
    pub dirty: bool,
    #[serde(default)]
    pub branch: Option<String>,
    #[serde(default)]
    pub tag: Option<String>,
    #[serde(default)]
    pub source: String,
    pub jobs: Vec<JobRecord>,
    pub critical_path: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct JobRecord {
    pub name: String,
    pub stage: String,
    pub image: String,
    pub image_id: Option<String>,
    pub variables: Vec<(String, String)>,
    pub commands: Vec<String>,
    pub status: String,
    pub exit_code: Option<i64>,
    pub message: Option<String>,
    pub started_at: Option<u64>,
    pub finished_at: Option<u64>,
    pub duration_ms: Option<u64>,
    pub retries: u32,
    /// The log, relative to the run directory.
    pub log: String,
    /// The artifacts' manifest, relative to the run directory.
    pub artifacts: Option<String>,
}

impl RunManifest {
    pub fn load(run_dir: &Path) -> Result<RunManifest, String> {
        let path = run_dir.join(MANIFEST);
        let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        serde_json::from_slice(&bytes).map_err(|e| format!("{}: {e}", path.display()))
    }
}
