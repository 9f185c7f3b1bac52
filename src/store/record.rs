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
    /// Every pipeline file the run read from the project (the main one, GitLab's local
    /// includes, each workflow), for `replay` to say which changed.
    #[serde(default)]
    pub files: Vec<PipelineFile>,
    /// The remote actions the run used, at their commits.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pins: Vec<Pin>,
}

/// Something a run used from elsewhere, at the commit it resolved to (a remote action).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pin {
    pub uses: String,
    pub commit: String,
}

/// A pipeline file as the run read it: its path in the project and the sha256 of its text.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PipelineFile {
    pub path: String,
    pub sha256: String,
}

impl PipelineFile {
    /// The text's digest, as recorded (a byte-order mark does not count: the reader drops it).
    pub fn digest(text: &str) -> String {
        use sha2::{Digest, Sha256};
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        hex::encode(Sha256::digest(text.as_bytes()))
    }
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
    /// What the job's JUnit reports (`artifacts: reports: junit`) counted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tests: Option<TestResults>,
}

/// Test cases counted in JUnit XML reports.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestResults {
    pub passed: usize,
    pub failed: usize,
    /// Cases that ended in an error (`<error>`), apart from the failed ones.
    pub errors: usize,
    pub skipped: usize,
    /// The failed and errored cases' names (`class.name`), the first [`TestResults::NAMED`].
    pub failures: Vec<String>,
}

impl TestResults {
    /// How many failures are named; the counts go on past it.
    pub const NAMED: usize = 50;

    pub fn add(&mut self, other: TestResults) {
        self.passed += other.passed;
        self.failed += other.failed;
        self.errors += other.errors;
        self.skipped += other.skipped;
        for f in other.failures {
            if self.failures.len() < Self::NAMED {
                self.failures.push(f);
            }
        }
    }

    /// `12 passed, 1 failed, 2 skipped` (errors and skipped only when there are some).
    pub fn counts(&self) -> String {
        let mut parts = vec![
            format!("{} passed", self.passed),
            format!("{} failed", self.failed),
        ];
        if self.errors > 0 {
            parts.push(format!("{} errors", self.errors));
        }
        if self.skipped > 0 {
            parts.push(format!("{} skipped", self.skipped));
        }
        parts.join(", ")
    }
}

impl RunManifest {
    pub fn load(run_dir: &Path) -> Result<RunManifest, String> {
        let path = run_dir.join(MANIFEST);
        let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        serde_json::from_slice(&bytes).map_err(|e| format!("{}: {e}", path.display()))
    }
}
