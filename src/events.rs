//! What happens during a run, as a stream of events. The engine sends them; reporters turn them
//! into terminal output, JSON, JUnit or records. The engine never prints.

use std::time::Duration;

use serde::Serialize;
use tokio::sync::mpsc;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    Passed,
    /// Failed, but `allow_failure` lets the pipeline pass.
    AllowedFailure,
    Failed,
    TimedOut,
    /// Docker could not run the job (not the job's own fault).
    Error,
    /// Stopped by Ctrl-C.
    Cancelled,
    /// Not run because of what happened before it (`when`, a failed dependency).
    Skipped,
    /// A manual job that was not asked for.
    Manual,
}

impl JobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Passed => "passed",
            JobStatus::AllowedFailure => "failed (allowed)",
            JobStatus::Failed => "failed",
            JobStatus::TimedOut => "timed out",
            JobStatus::Error => "error",
            JobStatus::Cancelled => "cancelled",
            JobStatus::Skipped => "skipped",
            JobStatus::Manual => "manual",
        }
    }

    /// `": why"` after a status that is not a pass, for status lines.
    pub fn note(self, message: Option<&str>) -> String {
        match message {
            Some(m) if self != JobStatus::Passed => format!(": {m}"),
            _ => String::new(),
        }
    }

    /// Does this status fail the pipeline?
    pub fn fails_pipeline(self) -> bool {
        matches!(
            self,
            JobStatus::Failed | JobStatus::TimedOut | JobStatus::Error | JobStatus::Cancelled
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Passed,
    Failed,
    /// Docker failed under the run.
    Error,
    Interrupted,
}

/// One job's line in the closing summary.
#[derive(Debug, Clone, Serialize)]
pub struct JobSummary {
    pub name: String,
    pub stage: String,
    pub status: JobStatus,
    pub image: Option<String>,
    #[serde(rename = "duration_ms", serialize_with = "opt_ms")]
    pub duration: Option<Duration>,
}

/// Facts about a run that make it reproducible, sent once at its start.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RunInfo {
    pub berth_version: String,
    pub engine_version: String,
    pub pipeline_file: String,
    pub pipeline_sha256: String,
    pub commit: String,
    /// Uncommitted changes in the project when the run started.
    pub dirty: bool,
    /// Seconds since the epoch.
    pub started_at: u64,
    /// What the pipeline ran for: its branch or tag, and CI_PIPELINE_SOURCE.
    pub branch: Option<String>,
    pub tag: Option<String>,
    pub source: String,
}

/// Durations travel as whole milliseconds.
fn ms<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_millis() as u64)
}

fn opt_ms<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => ms(d, s),
        None => s.serialize_none(),
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    RunStarted {
        run_id: String,
        pipeline: String,
        jobs: usize,
        info: RunInfo,
    },
    /// A job that will run, with everything needed to reproduce it (secrets masked).
    JobQueued {
        job: String,
        stage: String,
        image: String,
        /// The image's ID (digest of its configuration) at the time of the run.
        image_id: Option<String>,
        variables: Vec<(String, String)>,
        commands: Vec<String>,
    },
    /// Something the user should know that is not a job's output.
    Notice {
        message: String,
    },
    ImagePreparing {
        image: String,
        action: String,
    },
    /// A pull's layer status (`layer` set, with bytes when Docker tells) or a build's output line.
    ImageProgress {
        image: String,
        line: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        layer: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        current_bytes: Option<u64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        total_bytes: Option<u64>,
    },
    JobStarted {
        job: String,
        stage: String,
        image: String,
        attempt: u32,
    },
    JobLog {
        job: String,
        line: String,
    },
    JobRetrying {
        job: String,
        attempt: u32,
        reason: String,
    },
    JobFinished {
        job: String,
        stage: String,
        status: JobStatus,
        exit_code: Option<i64>,
        #[serde(rename = "duration_ms", serialize_with = "ms")]
        duration: Duration,
        message: Option<String>,
        attempts: u32,
    },
    JobSkipped {
        job: String,
        stage: String,
        status: JobStatus,
        reason: String,
    },
    CacheMounted {
        job: String,
        key: String,
        path: String,
        volume: String,
        read_only: bool,
    },
    ArtifactsStored {
        job: String,
        /// The archive, relative to the project directory.
        path: String,
        files: usize,
        bytes: u64,
    },
    Interrupted {
        running: Vec<String>,
    },
    RunFinished {
        status: RunStatus,
        #[serde(rename = "duration_ms", serialize_with = "ms")]
        duration: Duration,
        jobs: Vec<JobSummary>,
        /// The chain of jobs that set the total time, first to last.
        critical_path: Vec<String>,
    },
}

/// Where the engine sends events. Cloneable; sending never fails the run (a reporter that went
/// away simply stops listening).
#[derive(Clone)]
pub struct Sink {
    tx: mpsc::Sender<Event>,
    /// Secret values replaced by `[MASKED]` in everything sent.
    secrets: std::sync::Arc<Vec<String>>,
}

pub const MASK: &str = "[MASKED]";

impl Sink {
    pub fn channel(capacity: usize) -> (Sink, mpsc::Receiver<Event>) {
        Self::masking(capacity, Vec::new())
    }

    /// A channel whose events never show any of `secrets`.
    pub fn masking(capacity: usize, mut secrets: Vec<String>) -> (Sink, mpsc::Receiver<Event>) {
        secrets.retain(|s| !s.is_empty());
        // Longest first, so that a secret containing another is masked whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        let (tx, rx) = mpsc::channel(capacity);
        (
            Sink {
                tx,
                secrets: std::sync::Arc::new(secrets),
            },
            rx,
        )
    }

    pub async fn send(&self, mut event: Event) {
        if !self.secrets.is_empty() {
            event.mask(&self.secrets);
        }
        let _ = self.tx.send(event).await;
    }
}

fn mask_text(text: &mut String, secrets: &[String]) {
    for s in secrets {
        if text.contains(s.as_str()) {
            *text = text.replace(s.as_str(), MASK);
        }
    }
}

impl Event {
    /// Replace every secret value in the event's free text.
    pub fn mask(&mut self, secrets: &[String]) {
        match self {
            Event::JobLog { line, .. } => mask_text(line, secrets),
            Event::Notice { message } => mask_text(message, secrets),
            Event::JobQueued {
                variables,
                commands,
                ..
            } => {
                for (_, v) in variables.iter_mut() {
                    mask_text(v, secrets);
                }
                for c in commands.iter_mut() {
                    mask_text(c, secrets);
                }
            }
            Event::JobFinished {
                message: Some(m), ..
            }
            | Event::JobRetrying { reason: m, .. } => mask_text(m, secrets),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn secrets_are_masked_in_logs_and_variables() {
        let (sink, mut rx) = Sink::masking(4, vec!["hunter2".into(), "hunter2-long".into()]);
        sink.send(Event::JobLog {
            job: "j".into(),
            line: "password=hunter2-long and hunter2".into(),
        })
        .await;
        sink.send(Event::JobQueued {
            job: "j".into(),
            stage: "s".into(),
            image: "i".into(),
            image_id: None,
            variables: vec![("TOKEN".into(), "hunter2".into())],
            commands: vec!["echo $TOKEN".into()],
        })
        .await;
        match rx.recv().await.unwrap() {
            Event::JobLog { line, .. } => assert_eq!(line, "password=[MASKED] and [MASKED]"),
            other => panic!("{other:?}"),
        }
        match rx.recv().await.unwrap() {
            Event::JobQueued { variables, .. } => assert_eq!(variables[0].1, "[MASKED]"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn json_shape_uses_milliseconds() {
        let e = Event::JobFinished {
            job: "j".into(),
            stage: "s".into(),
            status: JobStatus::Passed,
            exit_code: Some(0),
            duration: Duration::from_millis(1234),
            message: None,
            attempts: 1,
        };
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["event"], "job_finished");
        assert_eq!(v["duration_ms"], 1234);
        assert_eq!(v["status"], "passed");
    }
}
