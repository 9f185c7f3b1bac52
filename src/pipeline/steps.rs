//! A job that runs as steps in one container, each decided only when the steps before it have
//! ended (GitHub Actions' jobs): whether a step runs, its script and its environment can depend
//! on what earlier steps wrote. The format decides (conditions, expressions, outputs); the
//! engine runs the commands it is given, in the job's container, and reports back how each
//! ended. So the engine knows no format, and the format touches no container.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// A job's steps, as its format runs them.
pub trait Steps: Send + Sync + fmt::Debug {
    /// Does the job run at all, given how the jobs it needs ended (`if:` on the job)? `Err`:
    /// the condition cannot be evaluated, and the job fails with that message.
    fn should_run(&self, needs: &[NeedResult], cancelled: bool) -> Result<bool, String>;

    /// Why the job is skipped when [`Steps::should_run`] said no, for its summary.
    fn skip_reason(&self, needs: &[NeedResult]) -> String {
        let _ = needs;
        "its `if:` condition is false".to_string()
    }

    /// A fresh run of the job's steps.
    fn start(&self, start: Start) -> Box<dyn StepsRun>;

    /// The commands the steps run, as written (expressions unevaluated), for what they install:
    /// berth gives a job that installs Python packages its dependency caches.
    fn commands(&self) -> Vec<String> {
        Vec::new()
    }

    /// The package tools whose caches the steps ask for by name (setup-python's `cache: pip`).
    fn cached_tools(&self) -> Vec<String> {
        Vec::new()
    }

    /// What the steps' checkout leaves in the workspace; `None`: the project's files.
    fn checkout(&self) -> Option<super::Checkout> {
        None
    }

    /// The images steps run in containers of their own (GitHub's Docker actions and
    /// `docker://` steps), for the run to have before anything starts. `project_dir`: the
    /// project on this host, which a build's context is read from.
    fn images(&self, project_dir: &std::path::Path) -> Result<Vec<StepImage>, String> {
        let _ = project_dir;
        Ok(Vec::new())
    }
}

/// An image a step runs in: pulled by its reference, or built as `image` (a tag named by its
/// context's content) from `context` with `dockerfile` (relative to it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepImage {
    pub image: String,
    pub build: Option<(PathBuf, String)>,
}

/// A job whose jobs are known only once the jobs it needs have ended (GitHub's matrix made
/// from a need's output): the engine asks it for them when its needs are done, and runs them
/// in its place.
pub trait Expand: Send + Sync + fmt::Debug {
    /// The jobs to run, given how the needs ended; `Err`: why there are none (the job fails).
    fn expand(&self, needs: &[NeedResult]) -> Result<Vec<super::Job>, String>;
}

/// What a run of the steps starts from.
#[derive(Debug, Clone, Default)]
pub struct Start {
    /// The job's environment as the engine built it (the format's predefined variables and the
    /// command line's), before any step's own.
    pub env: Vec<(String, String)>,
    /// How the jobs it needs ended, and their outputs.
    pub needs: Vec<NeedResult>,
    /// The run was cancelled before the job started (only `always()` steps run).
    pub cancelled: bool,
    /// The project directory on this host, of which the job's workspace is a fresh copy: what
    /// the format reads files of before any step has run (GitHub's `hashFiles`). `None`: no
    /// files to read.
    pub project_dir: Option<PathBuf>,
}

/// How a job ended, for the jobs that need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NeedResult {
    /// The job's id in its file (`needs:` names it so).
    pub job: String,
    /// `success`, `failure`, `cancelled` or `skipped`, as GitHub names them.
    pub result: String,
    pub outputs: Vec<(String, String)>,
}

/// One run of a job's steps: asked for the next command until it has none.
pub trait StepsRun: Send {
    /// The next command, or `None` when the job is over. `Err`: the job fails with that
    /// message (an expression that fails at run time, an action berth does not have).
    fn next(&mut self) -> Result<Option<Command>, String>;

    /// How the command `next` gave last ended.
    fn finished(&mut self, ended: Ended);

    /// The engine was told to stop (Ctrl-C, a failed job elsewhere under fail-fast): steps that
    /// run whatever happens still run, the others are skipped.
    fn cancel(&mut self);

    /// How the job ended, once `next` has said `None`.
    fn outcome(&self) -> Outcome;

    /// What reads the output of the command `next` gave last, line by line; `None`: its lines
    /// are shown as printed.
    fn output_filter(&mut self) -> Option<Box<dyn OutputFilter>> {
        None
    }
}

/// Reads each line a command prints as its format means it (GitHub's workflow commands,
/// `::add-mask::`, `::group::`): what the log shows of it, and values to hide from then on.
/// The engine calls it for every whole line, in order, before anything is shown.
pub trait OutputFilter: Send {
    fn line(&mut self, line: &str) -> Filtered;
}

/// What the log shows of one line.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Filtered {
    /// `None`: the line as printed; else these lines instead (none: the line is not shown).
    pub shown: Option<Vec<String>>,
    /// Values to mask, from this line on, in everything the job's log, events and record
    /// carry (its later steps too).
    pub masks: Vec<String>,
}

/// A command to run in the job's container (or in a container of its own).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Command {
    /// The step as the log names it (`Run pytest -q`, `Set up Python`).
    pub name: String,
    /// Files to write into the container before it runs (the step's script, the empty files it
    /// writes its outputs to): absolute path and content.
    pub files: Vec<(String, String)>,
    /// Files of any bytes (a cached action's, which may hold images or compiled code), written
    /// as `files` are.
    pub blobs: Vec<(String, Vec<u8>)>,
    /// The process: program and arguments.
    pub argv: Vec<String>,
    /// Its environment, over the container's own (the image's PATH stays).
    pub env: Vec<(String, String)>,
    /// Its working directory (absolute); `None`: the workspace.
    pub working_dir: Option<String>,
    pub timeout: Option<Duration>,
    /// Files to read back after it ends (absolute paths), whatever its exit code.
    pub collect: Vec<String>,
    /// `Some`: no process (`argv` is empty): the engine does this instead, and says how it
    /// went in [`Ended::operation`]; `files` are still written and `collect` still read.
    pub operation: Option<Operation>,
    /// `Some`: the command runs in a fresh container of this image rather than in the job's
    /// (`argv` is its command); `files` are written and `collect` read there.
    pub container: Option<StepContainer>,
}

/// A command's own container: the image's process (or `entrypoint`) with the command's
/// `argv` as its arguments, the job's workspace mounted at `workspace` (one directory for
/// both containers: what either writes the other sees), in the job container's network
/// namespace.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StepContainer {
    pub image: String,
    /// `None`: the image's own entrypoint.
    pub entrypoint: Option<String>,
    /// Where the workspace is in this container (GitHub's `/github/workspace`).
    pub workspace: String,
    /// Where it is in the job's container (absolute): the mount the two share.
    pub job_workspace: String,
}

/// Work a step asks of the engine rather than of a process: moving files between the job's
/// container and what outlives it (caches that outlive the run, the run's artifacts). Paths
/// are absolute in the container; the format has resolved them (`~`, the workspace).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operation {
    /// Copy a cache into the container where it was taken from: the cache of `key`, else the
    /// newest whose key starts with `key`, else with each of `prefixes` in turn; only caches
    /// of the same `paths` qualify. With `lookup_only`, only say which one would be.
    RestoreCache {
        key: String,
        prefixes: Vec<String>,
        paths: Vec<String>,
        lookup_only: bool,
    },
    /// Copy `paths` from the container into a new cache `key`; one that exists already is
    /// kept as it is (a cache never changes).
    SaveCache { key: String, paths: Vec<String> },
    /// Store the files under `search` (absolute) that `include` matches and `exclude` does
    /// not (globs over absolute paths, a directory standing for everything in it) as the
    /// run's artifact `name`, named relative to `root`; `hidden`: also names starting with `.`.
    UploadArtifact {
        name: String,
        search: Vec<String>,
        include: Vec<String>,
        exclude: Vec<String>,
        root: String,
        hidden: bool,
    },
    /// Unpack the run's artifacts into `into`: the one called `name`, or every one whose
    /// name matches the glob `pattern` (all without one), each into `into/<name>` when
    /// `separate`.
    DownloadArtifacts {
        name: Option<String>,
        pattern: Option<String>,
        into: String,
        separate: bool,
    },
}

/// How an [`Operation`] went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    /// The key of the cache restored (or found, with `lookup_only`); `None`: none was.
    CacheRestored {
        key: Option<String>,
    },
    /// `false`: a cache of that key existed already, or there was nothing to save.
    CacheSaved {
        saved: bool,
        files: usize,
    },
    /// `None`: nothing matched, nothing stored.
    ArtifactUploaded {
        id: Option<u64>,
        files: usize,
    },
    ArtifactsDownloaded {
        names: Vec<String>,
        files: usize,
    },
}

/// How a command ended.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Ended {
    pub exit_code: i64,
    pub timed_out: bool,
    /// The files of [`Command::collect`] that exist, with their content.
    pub files: Vec<(String, String)>,
    /// For a [`Command::operation`]: how it went, or why it failed.
    pub operation: Option<Result<Report, String>>,
}

/// How a job's steps ended.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Outcome {
    pub success: bool,
    /// Why not, for the job's summary (the step that failed).
    pub message: Option<String>,
    /// `outputs:` of the job, evaluated at its end.
    pub outputs: Vec<(String, String)>,
    /// What steps wrote for the run's summary (GitHub's `$GITHUB_STEP_SUMMARY`): the step's
    /// name and its Markdown, in step order; steps that wrote nothing are absent.
    pub summaries: Vec<(String, String)>,
    /// The job failed because its image lacks something the steps asked for (a Python
    /// version): an environment problem, not the project's, for the exit code.
    pub environment_error: bool,
    /// What the steps flagged (GitHub's annotations, `::error::`), one line each, for the
    /// job's summary at its end.
    pub annotations: Vec<String>,
}
