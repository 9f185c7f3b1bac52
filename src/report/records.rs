//! Run records: every job's full log and a manifest of what is needed to reproduce the run,
//! under `.berth/runs/<run-id>/` (`manifest.json`, `logs/<job>.log`).

use super::{ReportError, Reporter};
use crate::events::{Event, LogLine, RunInfo};
use crate::store::record::{JobRecord, RunManifest, MANIFEST};
use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

pub struct Records {
    dir: PathBuf,
    manifest: RunManifest,
    /// The logs of the jobs running now: a job's log is open only while it runs, so that a
    /// run of many jobs holds a few files open, not one per job.
    logs: HashMap<String, BufWriter<File>>,
    running: HashSet<String>,
    index: HashMap<String, usize>,
}

impl Records {
    pub fn new(dir: PathBuf) -> Self {
        Records {
            dir,
            manifest: RunManifest {
                schema: 1,
                ..RunManifest::default()
            },
            logs: HashMap::new(),
            running: HashSet::new(),
            index: HashMap::new(),
        }
    }

    fn job(&mut self, name: &str) -> &mut JobRecord {
        let i = match self.index.get(name) {
            Some(&i) => i,
            None => {
                let stem = crate::project::paths::file_slug(name);
                let mut file = format!("logs/{stem}.log");
                let mut n = 2;
                while self.manifest.jobs.iter().any(|j| j.log == file) {
                    file = format!("logs/{stem}-{n}.log");
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

    /// Append `lines` to the job's log as the job printed them, byte for byte.
    fn write_lines(&mut self, job: &str, lines: &[LogLine]) -> std::io::Result<()> {
        if !self.logs.contains_key(job) {
            let log = self.job(job).log.clone();
            let path = self.dir.join(log);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            // Appended to: a retry's attempt follows the one before.
            let file = OpenOptions::new().create(true).append(true).open(path)?;
            self.logs.insert(job.to_string(), BufWriter::new(file));
        }
        if let Some(w) = self.logs.get_mut(job) {
            for line in lines {
                line.write_exact(w)?;
            }
        }
        // Lines about a job that is not running (a delayed start) do not keep its log open.
        if !self.running.contains(job) {
            self.close(job)?;
        }
        Ok(())
    }

    fn close(&mut self, job: &str) -> std::io::Result<()> {
        match self.logs.remove(job) {
            Some(mut w) => w.flush(),
            None => Ok(()),
        }
    }

    fn save(&mut self) -> std::io::Result<()> {
        for w in self.logs.values_mut() {
            w.flush()?;
        }
        std::fs::create_dir_all(&self.dir)?;
        let json = serde_json::to_vec_pretty(&self.manifest).map_err(std::io::Error::other)?;
        crate::project::state::write_atomic(&self.dir, MANIFEST, &json)
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
                    files,
                    pins,
                    ..
                } = info.clone();
                self.manifest.files = files;
                self.manifest.pins = pins;
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
                    r.started_at = Some(crate::units::now_secs());
                }
                r.status = "running".into();
                self.running.insert(job.clone());
                if *attempt > 1 {
                    self.write_lines(job, &[LogLine::text(format!("berth: attempt {attempt}"))])?;
                }
            }
            Event::JobLog { job, lines } => self.write_lines(job, lines)?,
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
                r.finished_at = Some(crate::units::now_secs());
                r.duration_ms = Some(duration.as_millis() as u64);
                r.retries = attempts.saturating_sub(1);
                self.running.remove(job);
                self.close(job)?;
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
            Event::TestReport { job, results } => self.job(job).tests = Some(results.clone()),
            Event::ArtifactsStored { job, path, .. } => {
                let file = Path::new(path).with_extension("").with_extension("json");
                let rel = file
                    .strip_prefix(crate::store::record_dir(&self.manifest.run_id))
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
    fn handle(&mut self, event: &Event) -> Result<(), ReportError> {
        self.apply(event).map_err(|source| ReportError::Record {
            dir: self.dir.clone(),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{JobStatus, LineEnd};

    fn open_files() -> usize {
        std::fs::read_dir("/proc/self/fd").unwrap().count()
    }

    fn started(job: &str, attempt: u32) -> Event {
        Event::JobStarted {
            job: job.into(),
            stage: "test".into(),
            image: "i".into(),
            attempt,
        }
    }

    fn finished(job: &str) -> Event {
        Event::JobFinished {
            job: job.into(),
            stage: "test".into(),
            status: JobStatus::Passed,
            exit_code: Some(0),
            duration: std::time::Duration::from_millis(1),
            message: None,
            attempts: 1,
        }
    }

    fn log(job: &str, lines: Vec<LogLine>) -> Event {
        Event::JobLog {
            job: job.into(),
            lines,
        }
    }

    #[test]
    fn a_jobs_log_is_open_only_while_it_runs() {
        let dir = tempfile::tempdir().unwrap();
        let mut records = Records::new(dir.path().to_path_buf());
        let before = open_files();
        for i in 0..300 {
            let job = format!("job {i}");
            records.apply(&started(&job, 1)).unwrap();
            records
                .apply(&log(&job, vec![LogLine::text("hello")]))
                .unwrap();
            records.apply(&finished(&job)).unwrap();
        }
        assert!(open_files() <= before + 2, "{} files open", open_files());
        // A retry appends to the first attempt's log.
        records.apply(&started("job 7", 2)).unwrap();
        records
            .apply(&log("job 7", vec![LogLine::text("again")]))
            .unwrap();
        records.apply(&finished("job 7")).unwrap();
        let text = std::fs::read_to_string(dir.path().join("logs/job-7.log")).unwrap();
        assert_eq!(text, "hello\nberth: attempt 2\nagain\n");
    }

    #[test]
    fn the_log_keeps_the_bytes_the_job_printed() {
        let dir = tempfile::tempdir().unwrap();
        let mut records = Records::new(dir.path().to_path_buf());
        records.apply(&started("j", 1)).unwrap();
        let pieces = vec![
            LogLine::from_bytes(b"long ", LineEnd::Cut),
            LogLine::from_bytes(b"line \xff", LineEnd::CrLf),
            LogLine::from_bytes(b"no end", LineEnd::Eof),
        ];
        records.apply(&log("j", pieces)).unwrap();
        records.apply(&finished("j")).unwrap();
        let bytes = std::fs::read(dir.path().join("logs/j.log")).unwrap();
        assert_eq!(bytes, b"long line \xff\r\nno end");
    }

    #[test]
    fn a_record_that_cannot_be_written_says_where_and_takes_the_next_event() {
        let dir = tempfile::tempdir().unwrap();
        // A file where the run's folder should be.
        let blocked = dir.path().join("run");
        std::fs::write(&blocked, "").unwrap();
        let mut records = Records::new(blocked.clone());
        // Nothing to write yet.
        records.handle(&started("j", 1)).unwrap();
        let err = records
            .handle(&log("j", vec![LogLine::text("hello")]))
            .unwrap_err();
        assert!(matches!(&err, ReportError::Record { dir, .. } if dir == &blocked));
        assert!(
            err.to_string().starts_with(&format!(
                "cannot write the run record in {}: ",
                blocked.display()
            )),
            "{err}"
        );
        assert!(!err.is_broken_pipe());
        // The record keeps count all the same: the job finishes in it.
        let _ = records.handle(&finished("j"));
        assert_eq!(records.manifest.jobs[0].status, "passed");
    }

    #[test]
    fn long_job_names_get_short_distinct_log_names() {
        let a = "a".repeat(280);
        let b = format!("{}b", "a".repeat(279));
        let (sa, sb) = (
            crate::project::paths::file_slug(&a),
            crate::project::paths::file_slug(&b),
        );
        assert!(sa.len() <= 100, "{sa}");
        assert_ne!(sa, sb);
        assert_eq!(crate::project::paths::file_slug("build app"), "build-app");
        let dir = tempfile::tempdir().unwrap();
        let mut records = Records::new(dir.path().to_path_buf());
        records.apply(&started(&a, 1)).unwrap();
        records.apply(&log(&a, vec![LogLine::text("ok")])).unwrap();
        records.apply(&finished(&a)).unwrap();
    }
}
