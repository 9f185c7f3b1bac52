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
    pub duration: Option<Duration>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    RunStarted {
        run_id: String,
        pipeline: String,
        jobs: usize,
    },
    /// Something the user should know that is not a job's output.
    Notice {
        message: String,
    },
    ImagePreparing {
        image: String,
        action: String,
    },
    ImageProgress {
        image: String,
        line: String,
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
        duration: Duration,
        message: Option<String>,
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
        duration: Duration,
        jobs: Vec<JobSummary>,
    },
}

/// Where the engine sends events. Cloneable; sending never fails the run (a reporter that went
/// away simply stops listening).
#[derive(Clone)]
pub struct Sink {
    tx: mpsc::Sender<Event>,
}

impl Sink {
    pub fn channel(capacity: usize) -> (Sink, mpsc::Receiver<Event>) {
        let (tx, rx) = mpsc::channel(capacity);
        (Sink { tx }, rx)
    }

    pub async fn send(&self, event: Event) {
        let _ = self.tx.send(event).await;
    }
}
