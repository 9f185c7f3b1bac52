//! The scheduler: runs a [`Plan`] through a [`runtime::ContainerRuntime`] (Docker's or Podman's,
//! from `crate::docker`) and reports what happens as events.
//!
//! A job starts when everything it depends on has finished and its `when` says so, with at most
//! `jobs_limit` running at once. A failed job stops every job that depends on it (the later
//! stages); jobs already running finish. Ctrl-C cancels: running jobs are killed and removed.
//! At the end, anything still carrying the run's label is removed.

mod ahead;
pub mod artifacts;
pub mod caches;
mod checkouts;
pub mod debug;
mod expanded;
mod images;
mod job;
pub mod operations;
mod output;
pub mod owner;
mod prepare;
pub mod python;
pub mod runtime;
pub mod script;
pub mod services;
mod steps;
mod test_reports;
pub mod transfer;
pub mod tty;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::engine::runtime::{labels, ContainerInfo, ContainerRuntime, ObjectInfo, RuntimeError};
use crate::events::{Event, JobStatus, JobSummary, RunStatus, Sink};
use crate::pipeline::{AllowFailure, JobEnvironment, When};
use crate::plan::Plan;
use crate::project::git::Facts;

/// GitLab's default job timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3600);

/// How the project reaches the jobs.
#[derive(Debug, Clone)]
pub enum Workspace {
    /// A fresh copy per job, unpacked from this snapshot tar.
    Copy { tar: PathBuf },
    /// The project directory itself, bind-mounted read-write.
    Mount,
}

#[derive(Debug, Clone)]
pub struct RunConfig {
    pub run_id: String,
    pub pipeline_name: String,
    pub jobs_limit: usize,
    pub workspace: Workspace,
    pub context: Facts,
    /// The pipeline format's way of building a job's environment.
    pub environment: Arc<dyn JobEnvironment>,
    /// `-e KEY=VALUE`: the highest precedence.
    pub overrides: Vec<(String, String)>,
    /// For jobs with no `image` anywhere.
    pub default_image: String,
    /// This run's record directory (`.berth/runs/<run-id>`); artifacts go under it.
    pub run_dir: PathBuf,
    /// `--no-cache`: empty caches that are removed with the run; stored ones are untouched.
    pub no_cache: bool,
    /// How long a service may take to accept connections.
    pub service_timeout: Duration,
    /// Automatic caches for jobs that install Python packages (`--no-python-cache` turns off).
    pub python_cache: bool,
    /// `--network none`: jobs get no network (and so no services); package tools stay offline.
    pub offline: bool,
    /// Facts recorded with the run (versions, pipeline hash, commit).
    pub info: crate::events::RunInfo,
    /// The files git tracks in the project (for `artifacts: untracked`).
    pub tracked: Arc<std::collections::HashSet<String>>,
    /// `--shell-on-failure` / `berth debug JOB`.
    pub debug: Option<debug::Debug>,
    /// `berth shell JOB`: this job gets a shell instead of its script.
    pub shell_job: Option<String>,
    /// `berth replay`: recorded environments and image IDs, by job name.
    pub replay: Option<Arc<Replay>>,
    /// `--from-run`: jobs not run again, what they produced taken from a recorded run.
    pub reused: Option<Arc<Reused>>,
    /// `--hermetic`: locked images, no network, fixed time, zone and locale.
    pub hermetic: Option<Hermetic>,
    /// The containers' hostname (`berth verify` varies it between its two runs).
    pub hostname: Option<String>,
}

/// What a hermetic run holds fixed.
#[derive(Debug, Clone)]
pub struct Hermetic {
    /// SOURCE_DATE_EPOCH: the commit's time.
    pub source_date_epoch: u64,
    /// The images the run may use; `None`: no lock to check (`berth verify` without one).
    pub lock: Option<Arc<crate::project::lock::Lockfile>>,
}

/// What a run record says each replayed job had.
#[derive(Debug, Clone, Default)]
pub struct Replay {
    pub jobs: HashMap<String, ReplayJob>,
}

#[derive(Debug, Clone)]
pub struct ReplayJob {
    /// The job's whole environment, as recorded (secrets filled in again).
    pub env: Vec<(String, String)>,
    /// The image ID the job ran in.
    pub image: Option<String>,
}

/// What a recorded run's jobs produced, for a run that takes it instead of running them again.
#[derive(Debug, Clone, Default)]
pub struct Reused {
    /// The recorded run.
    pub run_id: String,
    /// By job name.
    pub jobs: HashMap<String, ReusedJob>,
}

#[derive(Debug, Clone, Default)]
pub struct ReusedJob {
    /// Its artifacts (the archive in this run's record), if it stored any.
    pub artifacts: Option<artifacts::Stored>,
    /// The variables of its dotenv reports.
    pub dotenv: Vec<(String, String)>,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// An image is not locked, or not as locked (`--hermetic`).
    #[error("{0}")]
    Lock(String),
    /// The pipeline asks for what the project cannot give (a cache path that is a link): found
    /// before any container is created.
    #[error("{0}")]
    Input(String),
    /// berth could not do its own part on the host (read or pack a build context, write a
    /// job's scripts).
    #[error("job `{job}`: {what}")]
    Host { job: String, what: String },
    #[error("job `{job}`: {source}")]
    Image { job: String, source: RuntimeError },
    /// Several images cannot be had (each an `Image` or `Host` error).
    #[error("{} images cannot be had:\n{}", .0.len(), .0.iter().map(|e| format!("  {e}")).collect::<Vec<_>>().join("\n"))]
    Images(Vec<RunError>),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
}

#[derive(Debug, Clone)]
pub struct RunResult {
    pub status: RunStatus,
    pub jobs: Vec<JobSummary>,
    pub duration: Duration,
    pub critical_path: Vec<String>,
}

/// A job ready to run: everything resolved, nothing left to look up.
#[derive(Debug)]
pub struct PreparedJob {
    pub index: usize,
    pub name: String,
    pub stage: String,
    pub image: String,
    pub entrypoint: Option<Vec<String>>,
    pub env: Vec<(String, String)>,
    pub scripts_tar: Vec<u8>,
    pub timeout: Duration,
    pub retry: u32,
    pub allow_failure: AllowFailure,
    pub artifacts: Option<crate::pipeline::Artifacts>,
    /// Plan indices of the jobs whose artifacts this one receives.
    pub artifacts_from: crate::plan::JobSet,
    pub caches: Vec<caches::Mount>,
    pub services: Vec<services::Prepared>,
    /// `when: delayed`: wait this long before starting.
    pub start_in: Option<Duration>,
    /// A job of steps (GitHub's) instead of a script.
    pub steps: Option<Arc<dyn crate::pipeline::steps::Steps>>,
    /// What its workspace holds when it starts.
    pub checkout: crate::pipeline::Checkout,
    /// The job container's options, its mounts resolved.
    pub container: crate::pipeline::ContainerOptions,
    /// The named volumes its containers mount, made for it and removed after it.
    pub volumes: Vec<String>,
    pub service_network: crate::pipeline::ServiceNetwork,
}

/// What the jobs share.
pub(crate) struct Shared {
    engine: Arc<dyn ContainerRuntime>,
    config: RunConfig,
    labels: HashMap<String, String>,
    /// Artifacts stored so far, by plan index.
    stored: Mutex<HashMap<usize, artifacts::Stored>>,
    cache_locks: caches::Locks,
    /// (job, mount) for every cache a job used, for the cache index.
    cache_uses: Mutex<Vec<(String, caches::Mount)>>,
    /// Variables from each job's dotenv report, by plan index.
    dotenv: Mutex<HashMap<usize, Vec<(String, String)>>>,
    /// Containers, services and networks of finished jobs being removed in the background.
    cleanup: Mutex<JoinSet<()>>,
    /// The outputs of each finished job of steps, by plan index, for the jobs that need it.
    step_outputs: Mutex<HashMap<usize, Vec<(String, String)>>>,
    /// The archives the jobs' checkouts start with, made while the first jobs' containers are
    /// created (by `checkouts_making`).
    checkouts: tokio::sync::OnceCell<checkouts::Checkouts>,
    checkouts_making: Mutex<Option<tokio::task::JoinHandle<checkouts::Checkouts>>>,
    /// How many jobs have numbers: the plan's, then those made at run time.
    made: std::sync::atomic::AtomicUsize,
    /// The summaries of the jobs made at run time, by the plan index of the job they replace.
    expanded: Mutex<HashMap<usize, Vec<JobSummary>>>,
    /// The jobs creating and starting their containers now, by plan index: containers
    /// prepared ahead wait for them (on a small machine they would slow a job that can run
    /// now, for one that cannot yet).
    starting: Mutex<HashMap<usize, CancellationToken>>,
}

impl Shared {
    fn new(
        engine: Arc<dyn ContainerRuntime>,
        config: RunConfig,
        labels: HashMap<String, String>,
        planned: usize,
    ) -> Shared {
        Shared {
            engine,
            config,
            labels,
            stored: Mutex::new(HashMap::new()),
            cache_locks: caches::Locks::default(),
            cache_uses: Mutex::new(Vec::new()),
            dotenv: Mutex::new(HashMap::new()),
            cleanup: Mutex::new(JoinSet::new()),
            step_outputs: Mutex::new(HashMap::new()),
            checkouts: tokio::sync::OnceCell::new(),
            checkouts_making: Mutex::new(None),
            made: std::sync::atomic::AtomicUsize::new(planned),
            expanded: Mutex::new(HashMap::new()),
            starting: Mutex::new(HashMap::new()),
        }
    }
}

impl Shared {
    /// The run's checkouts, once made (none when the project is mounted).
    /// Job `i` is about to create and start its container.
    fn starting(&self, i: usize) {
        self.starting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(i, CancellationToken::new());
    }

    /// Job `i`'s container has started (or it will start none).
    fn started(&self, i: usize) {
        let token = self
            .starting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&i);
        if let Some(token) = token {
            token.cancel();
        }
    }

    /// Until the jobs starting now have started their containers, for at most `most`.
    async fn starts_done(&self, most: Duration) {
        let tokens: Vec<CancellationToken> = self
            .starting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        let all = futures_util::future::join_all(tokens.iter().map(|t| t.cancelled()));
        let _ = tokio::time::timeout(most, all).await;
    }

    async fn checkouts(&self) -> &checkouts::Checkouts {
        self.checkouts
            .get_or_init(|| async {
                let making = self
                    .checkouts_making
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .take();
                match making {
                    // A task that died leaves the jobs the project's files (as a failure does).
                    Some(task) => task.await.unwrap_or_default(),
                    None => checkouts::Checkouts::default(),
                }
            })
            .await
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Outcome {
    pub status: JobStatus,
    pub duration: Duration,
}

#[derive(Debug, Clone)]
enum State {
    Waiting,
    Running,
    Done(JobStatus, Option<Duration>),
}

/// Run the plan. Errors only for what stops a run before any job starts (an image that cannot
/// be had, Docker unreachable); a job's failure is a [`RunResult`].
pub async fn run(
    plan: &Plan,
    config: RunConfig,
    engine: Arc<dyn ContainerRuntime>,
    sink: Sink,
    cancel: CancellationToken,
) -> Result<RunResult, RunError> {
    let started = Instant::now();
    sink.send(Event::RunStarted {
        run_id: config.run_id.clone(),
        pipeline: config.pipeline_name.clone(),
        jobs: plan.jobs.len(),
        info: config.info.clone(),
    })
    .await;

    let mut labels = HashMap::from([
        (labels::BERTH.to_string(), "1".to_string()),
        (labels::RUN.to_string(), config.run_id.clone()),
        (
            labels::PROJECT.to_string(),
            config.context.project_dir.display().to_string(),
        ),
    ]);
    labels.extend(owner::Owner::me().labels());
    // Before anything else is created: `berth prune` elsewhere tells a live run by its lease.
    let lease = match owner::Lease::take(&engine, &labels).await {
        Ok(lease) => lease,
        Err(e) => {
            sink.send(not_started(&cancel, started)).await;
            return Err(e.into());
        }
    };
    let shared = Arc::new(Shared::new(engine, config, labels, plan.jobs.len()));

    let result = match ready(plan, &shared, &sink, &cancel).await {
        Ok(prepared) => Ok(schedule(plan, prepared, &shared, &sink, &cancel, started).await),
        Err(e) => Err(e),
    };
    let removing = std::mem::take(&mut *shared.cleanup.lock().unwrap_or_else(|e| e.into_inner()));
    removing.join_all().await;
    lease.release(&*shared.engine).await;
    sweep(&shared, &sink).await;
    record_cache_uses(&shared, &sink).await;
    // A run that could not start (an image that cannot be had, say) still ends its record.
    let finished = match &result {
        Ok(r) => Event::RunFinished {
            status: r.status,
            duration: r.duration,
            jobs: r.jobs.clone(),
            critical_path: r.critical_path.clone(),
        },
        Err(_) => not_started(&cancel, started),
    };
    sink.send(finished).await;
    result
}

/// A job not run again: what it produced in the recorded run `run_id` is this run's, and the
/// reason says so.
fn take_reused(shared: &Shared, i: usize, taken: &ReusedJob, run_id: &str) -> String {
    let mut what = Vec::new();
    if let Some(stored) = &taken.artifacts {
        what.push(format!("{} artifact files", stored.manifest.files.len()));
        shared
            .stored
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(i, stored.clone());
    }
    if !taken.dotenv.is_empty() {
        what.push(format!("{} dotenv variables", taken.dotenv.len()));
        shared
            .dotenv
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(i, taken.dotenv.clone());
    }
    let what = if what.is_empty() {
        "nothing to pass on".to_string()
    } else {
        what.join(" and ")
    };
    format!("not run again: taken from run {run_id} ({what})")
}

/// The end of a run that stopped before any job could start, so that its record ends too.
fn not_started(cancel: &CancellationToken, started: Instant) -> Event {
    Event::RunFinished {
        status: if cancel.is_cancelled() {
            RunStatus::Interrupted
        } else {
            RunStatus::Error
        },
        duration: started.elapsed(),
        jobs: Vec::new(),
        critical_path: Vec::new(),
    }
}

async fn schedule(
    plan: &Plan,
    prepared: Vec<Option<Arc<PreparedJob>>>,
    shared: &Arc<Shared>,
    sink: &Sink,
    cancel: &CancellationToken,
    started: Instant,
) -> RunResult {
    let n = plan.jobs.len();
    let mut state = vec![State::Waiting; n];
    // When each job started and ended, for the critical path.
    let mut times: Vec<Option<(Instant, Instant)>> = vec![None; n];
    let mut began: Vec<Option<Instant>> = vec![None; n];
    let mut running: JoinSet<(usize, Outcome)> = JoinSet::new();
    let mut tokens: Vec<Option<CancellationToken>> = vec![None; n];
    let limit = shared.config.jobs_limit.max(1);
    // Containers of the jobs that run next, started while their needs run (see `ahead`).
    let mut ahead = ahead::Ahead::new(limit);

    loop {
        if cancel.is_cancelled() {
            ahead.discard_all(shared);
        } else {
            for i in 0..n {
                if !matches!(state[i], State::Waiting) || running.len() >= limit {
                    continue;
                }
                let pj = &plan.jobs[i];
                if let Some(reused) = shared.config.reused.as_ref() {
                    if let Some(taken) = reused.jobs.get(&pj.job.name) {
                        state[i] = State::Done(JobStatus::Passed, None);
                        let reason = take_reused(shared, i, taken, &reused.run_id);
                        sink.send(Event::JobSkipped {
                            job: pj.job.name.clone(),
                            stage: pj.job.stage.clone(),
                            status: JobStatus::Passed,
                            reason,
                        })
                        .await;
                        // In this run's record too, so that a later run can take them again.
                        if let Some(stored) = &taken.artifacts {
                            let project = &shared.config.context.project_dir;
                            sink.send(Event::ArtifactsStored {
                                job: pj.job.name.clone(),
                                path: stored
                                    .archive
                                    .strip_prefix(project)
                                    .unwrap_or(&stored.archive)
                                    .display()
                                    .to_string(),
                                files: stored.manifest.files.len(),
                                bytes: stored.manifest.bytes,
                            })
                            .await;
                        }
                        continue;
                    }
                }
                if let Some(crate::pipeline::Trigger::Other { what }) = &pj.job.trigger {
                    state[i] = State::Done(JobStatus::Skipped, None);
                    sink.send(Event::JobSkipped {
                        job: pj.job.name.clone(),
                        stage: pj.job.stage.clone(),
                        status: JobStatus::Skipped,
                        reason: format!("it triggers {what}, which cannot run locally"),
                    })
                    .await;
                    continue;
                }
                if !pj.run {
                    state[i] = State::Done(JobStatus::Manual, None);
                    sink.send(Event::JobSkipped {
                        job: pj.job.name.clone(),
                        stage: pj.job.stage.clone(),
                        status: JobStatus::Manual,
                        reason:
                            "manual job: name it on the command line (or use --manual) to run it"
                                .into(),
                    })
                    .await;
                    continue;
                }
                match decide(plan, i, &state) {
                    Decision::Wait => {}
                    Decision::Skip(reason) => {
                        state[i] = State::Done(JobStatus::Skipped, None);
                        sink.send(Event::JobSkipped {
                            job: pj.job.name.clone(),
                            stage: pj.job.stage.clone(),
                            status: JobStatus::Skipped,
                            reason,
                        })
                        .await;
                    }
                    Decision::Run => {
                        let made_later = pj.job.expand.is_some();
                        if prepared[i].is_none() && !made_later {
                            continue;
                        }
                        if at_max_parallel(plan, i, &state) {
                            continue;
                        }
                        let steps = pj.job.steps.as_ref();
                        // Only a job of steps reads its needs' results: a GitLab job that follows
                        // every job of the earlier stages would otherwise walk them all.
                        let needs = match steps {
                            Some(_) => need_results(plan, i, &state, shared),
                            None => Vec::new(),
                        };
                        if let Some(program) = steps {
                            // A job of steps decides itself whether it runs (`if:`).
                            let skip = match program.should_run(&needs, cancel.is_cancelled()) {
                                Ok(true) => None,
                                Ok(false) => {
                                    Some((JobStatus::Skipped, program.skip_reason(&needs)))
                                }
                                Err(why) => Some((JobStatus::Failed, why)),
                            };
                            if let Some((status, reason)) = skip {
                                state[i] = State::Done(status, None);
                                sink.send(Event::JobSkipped {
                                    job: pj.job.name.clone(),
                                    stage: pj.job.stage.clone(),
                                    status,
                                    reason,
                                })
                                .await;
                                continue;
                            }
                        }
                        state[i] = State::Running;
                        began[i] = Some(Instant::now());
                        // Its own token: fail-fast stops a job without stopping the run.
                        let job_cancel = cancel.child_token();
                        tokens[i] = Some(job_cancel.clone());
                        let (shared, sink) = (shared.clone(), sink.clone());
                        match prepared[i].clone() {
                            Some(job) => {
                                let warm = ahead.take(i);
                                // Its start comes before those of containers prepared ahead.
                                if warm.is_none() && ahead::eligible(&job, &shared) {
                                    shared.starting(i);
                                }
                                running.spawn(async move {
                                    (
                                        i,
                                        job::run(job, shared, sink, job_cancel, needs, warm).await,
                                    )
                                })
                            }
                            None => {
                                let (parent, stages) = (pj.clone(), plan.stages.clone());
                                running.spawn(async move {
                                    let outcome = expanded::run(
                                        i, parent, stages, shared, sink, job_cancel, needs,
                                    );
                                    (i, outcome.await)
                                })
                            }
                        };
                    }
                }
            }
            ahead.retire(&state, shared);
            ahead.fill(plan, &prepared, &state, shared, sink);
        }
        if running.is_empty() {
            break;
        }
        tokio::select! {
            joined = running.join_next() => {
                if let Some(Ok((i, outcome))) = joined {
                    // Ended before its container started, if it did not.
                    shared.started(i);
                    state[i] = State::Done(outcome.status, Some(outcome.duration));
                    times[i] = began[i].map(|b| (b, Instant::now()));
                    if outcome.status.fails_pipeline() {
                        fail_fast(plan, i, &mut state, &tokens, sink).await;
                    }
                }
            }
            _ = cancel.cancelled(), if !cancel.is_cancelled() => {
                let names: Vec<String> = (0..n)
                    .filter(|&i| matches!(state[i], State::Running))
                    .map(|i| plan.jobs[i].job.name.clone())
                    .collect();
                sink.send(Event::Interrupted { running: names }).await;
            }
        }
    }

    ahead.discard_all(shared);
    let interrupted = cancel.is_cancelled();
    let mut summaries = Vec::with_capacity(n);
    for (i, pj) in plan.jobs.iter().enumerate() {
        let (status, duration) = match &state[i] {
            State::Done(s, d) => (*s, *d),
            // Never started: the run was interrupted (or a dependency never resolved).
            _ => (JobStatus::Cancelled, None),
        };
        if matches!(state[i], State::Waiting) && interrupted {
            sink.send(Event::JobSkipped {
                job: pj.job.name.clone(),
                stage: pj.job.stage.clone(),
                status: JobStatus::Cancelled,
                reason: "the run was interrupted before it started".into(),
            })
            .await;
        }
        // Jobs made at run time are summarised in place of the job that stood for them.
        let made = shared
            .expanded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&i);
        if let Some(made) = made {
            summaries.extend(made);
            continue;
        }
        summaries.push(JobSummary {
            name: pj.job.name.clone(),
            stage: pj.job.stage.clone(),
            status,
            image: prepared[i].as_ref().map(|p| p.image.clone()),
            duration,
        });
    }
    let status = if interrupted {
        RunStatus::Interrupted
    } else if summaries
        .iter()
        .any(|s| s.status.fails_pipeline() && s.status != JobStatus::Error)
    {
        RunStatus::Failed
    } else if summaries.iter().any(|s| s.status == JobStatus::Error) {
        RunStatus::Error
    } else {
        RunStatus::Passed
    };
    RunResult {
        status,
        jobs: summaries,
        duration: started.elapsed(),
        critical_path: critical_path(plan, &times),
    }
}

/// The chain that set the total time: from the job that ended last, back through the
/// dependency that ended last, to a job that waited for nothing that ran.
fn critical_path(plan: &Plan, times: &[Option<(Instant, Instant)>]) -> Vec<String> {
    let end = |i: usize| times[i].map(|(_, e)| e);
    let mut current = (0..plan.jobs.len())
        .filter(|&i| end(i).is_some())
        .max_by_key(|&i| end(i));
    let mut chain = Vec::new();
    while let Some(i) = current {
        chain.push(plan.jobs[i].job.name.clone());
        current = plan.jobs[i]
            .deps
            .iter()
            .filter(|&d| end(d).is_some())
            .max_by_key(|&d| end(d));
    }
    chain.reverse();
    chain
}

enum Decision {
    Wait,
    Run,
    Skip(String),
}

/// Whether job `i` may start now, given what its dependencies did and its `when`.
/// GitHub's `strategy.max-parallel`: as many jobs of the same id as it allows are running,
/// so job `i` waits for one of them to end.
fn at_max_parallel(plan: &Plan, i: usize, state: &[State]) -> bool {
    let Some((origin, max)) = plan.jobs[i]
        .job
        .origin
        .as_ref()
        .and_then(|o| Some((o, o.max_parallel?)))
    else {
        return false;
    };
    let running = plan
        .jobs
        .iter()
        .zip(state)
        .filter(|(pj, s)| {
            matches!(s, State::Running)
                && pj
                    .job
                    .origin
                    .as_ref()
                    .is_some_and(|o| o.file == origin.file && o.id == origin.id)
        })
        .count();
    running >= max
}

/// GitHub's `fail-fast`: a failed matrix job cancels the other combinations of its job, those
/// running and those still waiting.
async fn fail_fast(
    plan: &Plan,
    failed: usize,
    state: &mut [State],
    tokens: &[Option<CancellationToken>],
    sink: &Sink,
) {
    let Some(origin) = plan.jobs[failed]
        .job
        .origin
        .as_ref()
        .filter(|o| o.fail_fast)
    else {
        return;
    };
    let reason = format!("fail-fast: `{}` failed", plan.jobs[failed].job.name);
    for (j, pj) in plan.jobs.iter().enumerate() {
        let sibling = pj
            .job
            .origin
            .as_ref()
            .is_some_and(|o| o.file == origin.file && o.id == origin.id);
        if j == failed || !sibling {
            continue;
        }
        match state[j] {
            State::Waiting => {
                state[j] = State::Done(JobStatus::Cancelled, None);
                sink.send(Event::JobSkipped {
                    job: pj.job.name.clone(),
                    stage: pj.job.stage.clone(),
                    status: JobStatus::Cancelled,
                    reason: reason.clone(),
                })
                .await;
            }
            State::Running => {
                if let Some(token) = &tokens[j] {
                    token.cancel();
                }
            }
            State::Done(..) => {}
        }
    }
}

/// How the jobs `i` depends on ended, as a job of steps reads them (`needs.<id>.result`).
fn need_results(
    plan: &Plan,
    i: usize,
    state: &[State],
    shared: &Shared,
) -> Vec<crate::pipeline::steps::NeedResult> {
    let outputs = shared
        .step_outputs
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    plan.jobs[i]
        .deps
        .iter()
        .map(|d| {
            let result = match &state[d] {
                State::Done(JobStatus::Passed | JobStatus::AllowedFailure, _) => "success",
                State::Done(JobStatus::Cancelled, _) => "cancelled",
                State::Done(JobStatus::Skipped | JobStatus::Manual, _) => "skipped",
                _ => "failure",
            };
            crate::pipeline::steps::NeedResult {
                job: plan.jobs[d].job.base_name.clone(),
                result: result.to_string(),
                outputs: outputs.get(&d).cloned().unwrap_or_default(),
            }
        })
        .collect()
}

fn decide(plan: &Plan, i: usize, state: &[State]) -> Decision {
    let pj = &plan.jobs[i];
    let mut failed: Option<&str> = None;
    let mut manual_need: Option<&str> = None;
    for d in pj.deps.iter() {
        match &state[d] {
            State::Waiting | State::Running => return Decision::Wait,
            State::Done(status, _) => {
                let name = plan.jobs[d].job.name.as_str();
                match status {
                    s if s.fails_pipeline() => failed = failed.or(Some(name)),
                    // A trigger of another project's pipeline is skipped, and nothing follows
                    // from it.
                    JobStatus::Skipped
                        if matches!(
                            plan.jobs[d].job.trigger,
                            Some(crate::pipeline::Trigger::Other { .. })
                        ) => {}
                    // A job skipped because of a failure carries the failure on.
                    JobStatus::Skipped => failed = failed.or(Some(name)),
                    JobStatus::Manual if pj.dag => manual_need = manual_need.or(Some(name)),
                    _ => {}
                }
            }
        }
    }
    if let Some(m) = manual_need {
        return Decision::Skip(format!("it needs `{m}`, a manual job that was not run"));
    }
    match (pj.job.when, failed) {
        (When::Always, _) => Decision::Run,
        (When::OnFailure, Some(_)) => Decision::Run,
        (When::OnFailure, None) => {
            Decision::Skip("`when: on_failure` and nothing before it failed".into())
        }
        (_, Some(f)) => Decision::Skip(format!("`{f}` did not succeed")),
        (_, None) => Decision::Run,
    }
}

/// Remove whatever still carries the run's label (containers first, then networks and
/// temporary volumes), so no fault leaves anything behind.
async fn sweep(shared: &Shared, sink: &Sink) {
    let run = shared.config.run_id.as_str();
    let engine = &*shared.engine;
    // Another project's run may have drawn the same id: what carries another project's label
    // is not this run's.
    let project = shared.config.context.project_dir.display().to_string();
    let ours = |labels: &HashMap<String, String>| of_project(labels, &project);
    let mut problems = Vec::new();
    let filter = format!("{}={run}", labels::RUN);
    // Asked together (nearly every run finds nothing); removed in order: a network is removed
    // only once its containers are gone.
    let (mut containers, mut networks, mut volumes) = tokio::join!(
        engine.containers_with_label(labels::RUN, Some(run)),
        engine.networks_with_label(&filter),
        engine.volumes_with_label(&filter)
    );
    // Three at once need three connections; short of open files, one at a time may still do.
    if containers.is_err() {
        containers = engine.containers_with_label(labels::RUN, Some(run)).await;
    }
    if networks.is_err() {
        networks = engine.networks_with_label(&filter).await;
    }
    if volumes.is_err() {
        volumes = engine.volumes_with_label(&filter).await;
    }
    // What could not be listed is said; what was listed is removed.
    fn listed<T>(
        found: Result<Vec<T>, RuntimeError>,
        what: &str,
        problems: &mut Vec<String>,
    ) -> Vec<T> {
        found.unwrap_or_else(|e| {
            problems.push(format!("{what}: {e}"));
            Vec::new()
        })
    }
    let containers: Vec<_> = listed(containers, "containers", &mut problems)
        .into_iter()
        .filter(|c| ours(&c.labels))
        .collect();
    let networks: Vec<_> = listed(networks, "networks", &mut problems)
        .into_iter()
        .filter(|n| ours(&n.labels))
        .collect();
    let volumes: Vec<_> = listed(volumes, "volumes", &mut problems)
        .into_iter()
        .filter(|v| v.labels.contains_key(labels::TEMPORARY) && ours(&v.labels))
        .collect();
    problems.extend(
        remove_objects(engine, containers, networks, volumes)
            .await
            .problems,
    );
    for p in problems {
        sink.send(Event::Notice {
            message: format!("cleanup: {p} (run `berth prune` to retry)"),
        })
        .await;
    }
}

/// What [`remove_objects`] removed, and what it could not.
#[derive(Debug, Default)]
pub struct Removed {
    pub containers: usize,
    pub networks: usize,
    pub volumes: usize,
    pub problems: Vec<String>,
}

/// Remove containers, then networks (free of them by then), then volumes: the run's final
/// sweep and `berth prune` both end here.
pub(crate) async fn remove_objects(
    engine: &dyn ContainerRuntime,
    containers: Vec<ContainerInfo>,
    networks: Vec<ObjectInfo>,
    volumes: Vec<ObjectInfo>,
) -> Removed {
    let mut removed = Removed::default();
    for c in containers {
        match engine.remove_container(&c.id).await {
            Ok(()) => removed.containers += 1,
            Err(e) => removed.problems.push(format!("container {}: {e}", c.name)),
        }
    }
    for n in networks {
        match engine.remove_network(&n.id).await {
            Ok(()) => removed.networks += 1,
            Err(e) => removed.problems.push(format!("network {}: {e}", n.name)),
        }
    }
    for v in volumes {
        match engine.remove_volume(&v.name).await {
            Ok(()) => removed.volumes += 1,
            Err(e) => removed.problems.push(format!("volume {}: {e}", v.name)),
        }
    }
    removed
}

/// Is an object with these labels this project's (or has it no project label to say)?
pub(crate) fn of_project(object_labels: &HashMap<String, String>, project: &str) -> bool {
    object_labels
        .get(labels::PROJECT)
        .is_none_or(|p| p == project)
}

/// Note in `.berth/caches.json` which jobs used which cache, and when (for `berth cache ls`).
async fn record_cache_uses(shared: &Shared, sink: &Sink) {
    let uses = std::mem::take(&mut *shared.cache_uses.lock().unwrap_or_else(|e| e.into_inner()));
    if uses.is_empty() || shared.config.no_cache {
        return;
    }
    let project = &shared.config.context.project_dir;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut index = caches::Index::load(project);
    for (job, mount) in &uses {
        index.record(mount, job, now);
    }
    if let Err(e) = index.save(project) {
        sink.send(Event::Notice {
            message: format!("cannot update the cache index: {e}"),
        })
        .await;
    }
}

/// Every job that will run prepared and its images present, before anything starts; each is
/// announced (what it will run, in which image) for the run's record.
async fn ready(
    plan: &Plan,
    shared: &Shared,
    sink: &Sink,
    cancel: &CancellationToken,
) -> Result<Vec<Option<Arc<PreparedJob>>>, RunError> {
    let config = &shared.config;
    let engine = &*shared.engine;
    let prepare::Prepared { mut jobs, images } = prepare::jobs(plan, config)?;
    let mut ids = images::ensure(&images, engine, sink, cancel).await?;
    if let Workspace::Copy { .. } = config.workspace {
        let mut wanted: Vec<_> = jobs.iter().flatten().map(|j| j.checkout.clone()).collect();
        // Jobs made at run time check out as the job they stand for.
        wanted.extend(
            plan.jobs
                .iter()
                .filter(|pj| pj.job.expand.is_some())
                .map(|pj| config.environment.checkout(&pj.job, &[])),
        );
        let project = config.context.project_dir.clone();
        let commit = config.context.commit_sha.clone();
        let prefix = config
            .context
            .container_dir
            .trim_start_matches('/')
            .to_string();
        // Made while the jobs' containers are created: each job waits for it before its upload.
        let sink = sink.clone();
        let making = tokio::spawn(async move {
            let made = tokio::task::spawn_blocking(move || {
                checkouts::Checkouts::make(&wanted, &project, &commit, &prefix)
            })
            .await;
            let (made, notes) = made.unwrap_or_else(|e| {
                let note =
                    format!("the checkouts cannot be made ({e}): jobs get the project's files");
                (checkouts::Checkouts::default(), vec![note])
            });
            for message in notes {
                sink.send(Event::Notice { message }).await;
            }
            made
        });
        *shared
            .checkouts_making
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(making);
    }
    if let Some(lock) = config.hermetic.as_ref().and_then(|h| h.lock.as_ref()) {
        for (image, needed) in &images {
            let current = match ids.get(image).cloned().flatten() {
                Some(id) => Some(id),
                None => engine.image_id(image).await.unwrap_or(None),
            };
            lock.check(image, current.as_deref())
                .map_err(|e| RunError::Lock(format!("job `{}`: {e}", needed.job)))?;
        }
    }
    queue(plan, &mut jobs, &mut ids, shared, sink).await;
    Ok(jobs.into_iter().map(|p| p.map(Arc::new)).collect())
}

/// Says what each job will run, for the run's record (the sink masks secrets), and gives the
/// jobs that install Python packages their caches, keyed by the image IDs (`ids`, completed
/// here).
async fn queue(
    plan: &Plan,
    jobs: &mut [Option<PreparedJob>],
    ids: &mut images::Ids,
    shared: &Shared,
    sink: &Sink,
) {
    let config = &shared.config;
    let engine = &*shared.engine;
    for (pj, job) in plan.jobs.iter().zip(jobs.iter_mut()) {
        let Some(job) = job else { continue };
        if !ids.contains_key(&job.image) {
            let id = engine.image_id(&job.image).await.unwrap_or(None);
            ids.insert(job.image.clone(), id);
        }
        if config.python_cache {
            // Keyed by the image ID: known only now that every image is there.
            let image_id = ids.get(&job.image).cloned().flatten();
            for note in prepare::add_python_caches(job, &pj.job, image_id.as_deref(), config) {
                sink.send(Event::Notice {
                    message: format!("job `{}`: {note}", job.name),
                })
                .await;
            }
        }
        let commands = pj
            .job
            .before_script
            .iter()
            .chain(&pj.job.script)
            .chain(&pj.job.after_script)
            .cloned()
            .collect();
        sink.send(Event::JobQueued {
            job: job.name.clone(),
            stage: job.stage.clone(),
            image: job.image.clone(),
            image_id: ids.get(&job.image).cloned().flatten(),
            variables: job.env.clone(),
            commands,
        })
        .await;
    }
}

/// Every image a plan runs (jobs and services), present after this (pulled or built), with
/// its ID and registry digests: what `berth lock` writes.
pub async fn resolve_images(
    plan: &Plan,
    config: RunConfig,
    engine: Arc<dyn ContainerRuntime>,
    sink: Sink,
) -> Result<Vec<(String, String, Vec<String>)>, RunError> {
    let shared = Arc::new(Shared::new(engine, config, HashMap::new(), plan.jobs.len()));
    let prepared = ready(plan, &shared, &sink, &CancellationToken::new()).await?;
    let mut names: Vec<String> = prepared
        .iter()
        .flatten()
        .flat_map(|p| {
            std::iter::once(p.image.clone()).chain(p.services.iter().map(|s| s.image.clone()))
        })
        .collect();
    names.sort();
    names.dedup();
    let mut out = Vec::new();
    for name in names {
        if let Some((id, digests)) = shared.engine.image_identity(&name).await? {
            out.push((name, id, digests));
        }
    }
    Ok(out)
}

/// The entry names of a tar, in order (for tests of what the engine uploads).
#[cfg(test)]
pub(crate) fn tar_entry_names(tar: &[u8]) -> Vec<String> {
    tar::Archive::new(tar)
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sweep_leaves_another_projects_objects_alone() {
        let with = |p: &str| HashMap::from([(labels::PROJECT.to_string(), p.to_string())]);
        assert!(of_project(&with("/work/a"), "/work/a"));
        assert!(!of_project(&with("/work/b"), "/work/a"));
        // Objects of berth's with no project label stay swept, as before.
        assert!(of_project(&HashMap::new(), "/work/a"));
    }
}
