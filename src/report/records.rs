//! Run records: every job's full log and a manifest of what is needed to reproduce the run,
//! under `.berth/runs/<run-id>/` (`manifest.json`, `logs/<job>.log`).

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::Reporter;
use crate::events::{Event, RunInfo};

pub const MANIFEST: &str = "manifest.json";

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Manifest {
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

impl Manifest {
    pub fn load(run_dir: &Path) -> Result<Manifest, String> {
        let path = run_dir.join(MANIFEST);
        let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        serde_json::from_slice(&bytes).map_err(|e| format!("{}: {e}", path.display()))
    }
}

pub struct Records {
    dir: PathBuf,
    manifest: Manifest,
    logs: HashMap<String, BufWriter<File>>,
    index: HashMap<String, usize>,
    failed: bool,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Records {
    pub fn new(dir: PathBuf) -> Self {
        Records {
            dir,
            manifest: Manifest {
                schema: 1,
                ..Manifest::default()
            },
            logs: HashMap::new(),
            index: HashMap::new(),
            failed: false,
        }
    }

    fn job(&mut self, name: &str) -> &mut JobRecord {
        let i = match self.index.get(name) {
            Some(&i) => i,
            None => {
                let mut file = format!("logs/{}.log", crate::vars::slug(name));
                let mut n = 2;
                while self.manifest.jobs.iter().any(|j| j.log == file) {
                    file = format!("logs/{}-{n}.log", crate::vars::slug(name));
                    n += 1;
                }
                self.manifest.jobs.push(JobRecord {
                    name: name.to_string(),
                    log: file,
                    ..JobRecord::default()
                });
                self.index
                    .insert(name.to_string(), self.manifest.jobs.len() - 1);
                self.manifest.jobs.len() - 1
            }
        };
        &mut self.manifest.jobs[i]
    }

    fn write_line(&mut self, job: &str, line: &str) -> std::io::Result<()> {
        if !self.logs.contains_key(job) {
            let log = self.job(job).log.clone();
            let path = self.dir.join(log);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            self.logs
                .insert(job.to_string(), BufWriter::new(File::create(path)?));
        }
        match self.logs.get_mut(job) {
            Some(w) => writeln!(w, "{line}"),
            None => Ok(()),
        }
    }

    fn save(&mut self) -> std::io::Result<()> {
        for w in self.logs.values_mut() {
            w.flush()?;
        }
        std::fs::create_dir_all(&self.dir)?;
        let tmp = self.dir.join("manifest.json.tmp");
        std::fs::write(
            &tmp,
            serde_json::to_vec_pretty(&self.manifest).map_err(std::io::Error::other)?,
        )?;
        std::fs::rename(tmp, self.dir.join(MANIFEST))
    }

    fn apply(&mut self, event: &Event) -> std::io::Result<()> {
        match event {
            Event::RunStarted {
                run_id,
                pipeline,
                info,
                ..
            } => {
                let RunInfo {
                    berth_version,
                    engine_version,
                    pipeline_sha256,
                    commit,
                    dirty,
                    started_at,
                    branch,
                    tag,
                    source,
                    ..
                } = info.clone();
                let m = &mut self.manifest;
                m.run_id = run_id.clone();
                m.pipeline = pipeline.clone();
                m.status = "running".into();
                m.berth_version = berth_version;
                m.engine_version = engine_version;
                m.pipeline_sha256 = pipeline_sha256;
                m.commit = commit;
                m.dirty = dirty;
                m.started_at = started_at;
                m.branch = branch;
                m.tag = tag;
                m.source = source;
                // A manifest exists from the start, so that a crashed run is still listed.
                self.save()?;
            }
            Event::JobQueued {
                job,
                stage,
                image,
                image_id,
                variables,
                commands,
            } => {
                let r = self.job(job);
                r.stage = stage.clone();
                r.image = image.clone();
                r.image_id = image_id.clone();
                r.variables = variables.clone();
                r.commands = commands.clone();
                r.status = "queued".into();
            }
            Event::JobStarted { job, attempt, .. } => {
                let r = self.job(job);
                if *attempt == 1 {
                    r.started_at = Some(now());
                }
                r.status = "running".into();
                let line = format!("berth: attempt {attempt}");
                if *attempt > 1 {
                    self.write_line(job, &line)?;
                }
            }
            Event::JobLog { job, line } => self.write_line(job, line)?,
            Event::JobFinished {
                job,
                status,
                exit_code,
                duration,
                message,
                attempts,
                ..
            } => {
                let r = self.job(job);
                r.status = status.as_str().into();
                r.exit_code = *exit_code;
                r.message = message.clone();
                r.finished_at = Some(now());
                r.duration_ms = Some(duration.as_millis() as u64);
                r.retries = attempts.saturating_sub(1);
            }
            Event::JobSkipped {
                job,
                stage,
                status,
                reason,
            } => {
                let r = self.job(job);
                r.stage = stage.clone();
                r.status = status.as_str().into();
                r.message = Some(reason.clone());
            }
            Event::ArtifactsStored { job, path, .. } => {
                let file = Path::new(path).with_extension("").with_extension("json");
                let rel = file
                    .strip_prefix(Path::new(".berth/runs").join(&self.manifest.run_id))
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|_| file.display().to_string());
                self.job(job).artifacts = Some(rel);
            }
            Event::RunFinished {
                status,
                duration,
                critical_path,
                ..
            } => {
                let m = &mut self.manifest;
                m.status = serde_json::to_value(status)
                    .ok()
                    .and_then(|v| v.as_str().map(String::from))
                    .unwrap_or_default();
                m.duration_ms = duration.as_millis() as u64;
                m.critical_path = critical_path.clone();
                self.save()?;
            }
            _ => {}
        }
        Ok(())
    }
}

impl Reporter for Records {
    fn handle(&mut self, event: &Event) {
        if let Err(e) = self.apply(event) {
            if !self.failed {
                eprintln!(
                    "berth: cannot write the run record in {}: {e}",
                    self.dir.display()
                );
                self.failed = true;
            }
        }
    }
}
