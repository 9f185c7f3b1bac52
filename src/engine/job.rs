//! The life of one job: a fresh container per attempt, the workspace and scripts unpacked into
//! it, its output streamed line by line, a timeout, retries, and the container removed whatever
//! happened.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use tokio_util::sync::CancellationToken;

use super::{artifacts, script, services, Outcome, PreparedJob, Shared, Workspace};
use crate::engine::runtime::{labels, ContainerRuntime, ContainerSpec, Output, RuntimeError};
use crate::events::{Event, JobStatus, LineEnd, LogLine, Mask, Sink};
use crate::pipeline::steps::NeedResult;
use crate::project::paths;

/// How one attempt ended.
pub(super) enum Ended {
    Exited(i64),
    /// Ran out of time: the limit that ended it (the job's, or one step's).
    TimedOut(std::time::Duration),
    Cancelled,
    Broken(RuntimeError),
    /// The job's own data was refused or could not be kept (an unsafe artifact, a failed upload).
    Refused(String),
}

pub(super) async fn run(
    job: Arc<PreparedJob>,
    shared: Arc<Shared>,
    sink: Sink,
    cancel: CancellationToken,
    needs: Vec<NeedResult>,
) -> Outcome {
    if let Some(delay) = job.start_in {
        log(
            &sink,
            &job.name,
            format!(
                "when: delayed: starting in {}",
                crate::units::duration(delay)
            ),
        )
        .await;
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = cancel.cancelled() => {}
        }
    }
    let started = Instant::now();
    // Held through every attempt: a job writing a cache has it to itself.
    let _cache_guards = shared
        .cache_locks
        .acquire(&job.caches, &shared.config.context.project_dir)
        .await;
    if let Err(e) = prepare_caches(&job, &shared, &sink).await {
        let duration = started.elapsed();
        sink.send(Event::JobFinished {
            job: job.name.clone(),
            stage: job.stage.clone(),
            status: JobStatus::Error,
            exit_code: None,
            duration,
            message: Some(format!("cache volume: {e}")),
            attempts: 0,
        })
        .await;
        return Outcome {
            status: JobStatus::Error,
            duration,
        };
    }
    let mut attempt = 1;
    loop {
        sink.send(Event::JobStarted {
            job: job.name.clone(),
            stage: job.stage.clone(),
            image: job.image.clone(),
            attempt,
        })
        .await;
        let last = attempt > job.retry;
        let ended = attempt_once(&job, &shared, &sink, &cancel, attempt, last, &needs).await;
        let (status, exit_code, message) = match &ended {
            Ended::Exited(0) => (JobStatus::Passed, Some(0), None),
            Ended::Exited(code) => (
                JobStatus::Failed,
                Some(*code),
                Some(format!("exit code {code}")),
            ),
            Ended::TimedOut(limit) => (
                JobStatus::TimedOut,
                None,
                Some(format!(
                    "timed out after {}",
                    crate::units::duration(*limit)
                )),
            ),
            Ended::Cancelled => (JobStatus::Cancelled, None, Some("interrupted".into())),
            Ended::Broken(e) => (JobStatus::Error, None, Some(e.to_string())),
            Ended::Refused(why) => (JobStatus::Failed, None, Some(why.clone())),
        };
        let retryable = matches!(
            status,
            JobStatus::Failed | JobStatus::TimedOut | JobStatus::Error
        );
        if retryable && attempt <= job.retry && !cancel.is_cancelled() {
            sink.send(Event::JobRetrying {
                job: job.name.clone(),
                attempt: attempt + 1,
                reason: message.clone().unwrap_or_default(),
            })
            .await;
            attempt += 1;
            continue;
        }
        let status = match status {
            JobStatus::Failed | JobStatus::TimedOut | JobStatus::Error
                if job.allow_failure.allows(exit_code) =>
            {
                JobStatus::AllowedFailure
            }
            other => other,
        };
        let duration = started.elapsed();
        sink.send(Event::JobFinished {
            job: job.name.clone(),
            stage: job.stage.clone(),
            status,
            exit_code,
            duration,
            message,
            attempts: attempt,
        })
        .await;
        return Outcome { status, duration };
    }
}

async fn attempt_once(
    job: &PreparedJob,
    shared: &Shared,
    sink: &Sink,
    cancel: &CancellationToken,
    attempt: u32,
    last: bool,
    needs: &[NeedResult],
) -> Ended {
    let engine = &*shared.engine;
    let config = &shared.config;
    // The job's container, its services and their network carry the same labels.
    let mut labels = shared.labels.clone();
    labels.insert(labels::JOB.to_string(), job.name.clone());
    let mut binds = match &config.workspace {
        Workspace::Mount => vec![format!(
            "{}:{}",
            config.context.project_dir.display(),
            config.context.container_dir
        )],
        Workspace::Copy { .. } => Vec::new(),
    };
    binds.extend(
        job.caches
            .iter()
            .map(|m| m.bind(&config.context.container_dir)),
    );
    let name = format!(
        "berth-{}-{}-{}-{attempt}",
        config.run_id,
        job.index,
        paths::slug(&job.name)
    );
    if config.offline && !job.services.is_empty() {
        log(
            sink,
            &job.name,
            "Services not started: --network none gives the job no network to reach them".into(),
        )
        .await;
    }
    let sidecars = if job.services.is_empty() || config.offline {
        None
    } else {
        match services::start(
            engine,
            &job.services,
            &name,
            &labels,
            config.service_timeout,
            // Hermetic: the job and its services reach each other and nothing else.
            config.hermetic.is_some(),
        )
        .await
        {
            Ok(running) => Some(running),
            Err((running, why)) => {
                if let Some(running) = running {
                    notices(sink, &job.name, services::stop(engine, running, None).await).await;
                }
                return Ended::Refused(why);
            }
        }
    };
    let shell = config.shell_job.as_deref() == Some(job.name.as_str());
    let spec = ContainerSpec {
        name,
        image: job.image.clone(),
        entrypoint: if shell {
            Some(vec![String::new()])
        } else if job.steps.is_some() {
            Some(super::steps::keep_alive())
        } else {
            job.entrypoint.clone()
        },
        cmd: if shell {
            script::Scripts::shell_command()
        } else if job.steps.is_some() {
            Vec::new()
        } else {
            script::Scripts::command()
        },
        env: with_dotenv(job, shared),
        working_dir: config.context.container_dir.clone(),
        labels,
        binds,
        network: match &sidecars {
            _ if config.offline => Some("none".to_string()),
            Some(s) => Some(s.network.clone()),
            None if config.hermetic.is_some() => Some("none".to_string()),
            None => None,
        },
        aliases: Vec::new(),
        interactive: shell,
        hostname: config.hostname.clone(),
    };
    let id = match engine.create_container(&spec).await {
        Ok(id) => id,
        Err(e) => {
            if let Some(running) = sidecars {
                notices(sink, &job.name, services::stop(engine, running, None).await).await;
            }
            return Ended::Broken(e);
        }
    };
    let mut ended = drive(job, shared, sink, cancel, &id, shell, needs).await;
    if matches!(ended, Ended::Exited(0)) {
        if let Err(why) = keep_dotenv(job, shared, sink, &id).await {
            ended = Ended::Refused(why);
        }
    }
    // Keep artifacts from the attempt whose result stands: a pass, or the last failure.
    let passed = matches!(ended, Ended::Exited(0));
    let failed_for_good = matches!(ended, Ended::Exited(_) | Ended::TimedOut(_)) && !passed && last;
    if let Some(spec) = &job.artifacts {
        if (passed || failed_for_good) && spec.when.keeps(passed) {
            if let Err(why) = keep_artifacts(job, shared, sink, &id, spec).await {
                ended = Ended::Refused(format!("artifacts: {why}"));
            }
        }
    }
    if let Some(debug) = &config.debug {
        let failed = matches!(ended, Ended::Exited(code) if code != 0)
            || matches!(ended, Ended::TimedOut(_) | Ended::Refused(_));
        if failed && last && debug.job.as_ref().is_none_or(|j| j == &job.name) {
            if let Err(e) =
                super::debug::after_failure(engine, sink, &spec, &id, &job.name, debug.keep).await
            {
                sink.send(Event::Notice {
                    message: format!("job `{}`: cannot open a shell in it: {e}", job.name),
                })
                .await;
            }
        }
    }
    // A failed job's service logs go into the run's record.
    let logs =
        (sidecars.is_some() && !matches!(ended, Ended::Exited(0) | Ended::Cancelled)).then(|| {
            config.run_dir.join("services").join(format!(
                "{}-{attempt}",
                artifacts::file_stem(job.index, &job.name)
            ))
        });
    // The result stands once the artifacts are kept: removing the container (then its services
    // and network) goes on in the background while the next jobs start; the run waits for it
    // before it ends.
    let (engine, sink, name) = (shared.engine.clone(), sink.clone(), job.name.clone());
    shared
        .cleanup
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .spawn(async move {
            if let Err(e) = engine.remove_container(&id).await {
                sink.send(Event::Notice {
                    message: format!("job `{name}`: could not remove its container: {e}"),
                })
                .await;
            }
            if let Some(running) = sidecars {
                notices(
                    &sink,
                    &name,
                    services::stop(&*engine, running, logs.as_deref()).await,
                )
                .await;
            }
        });
    ended
}

/// The job's environment with the variables of the dotenv reports it receives (from the jobs
/// whose artifacts it gets): above its own variables, below the command line's.
pub(super) fn with_dotenv(job: &PreparedJob, shared: &Shared) -> Vec<(String, String)> {
    let reports = shared.dotenv.lock().unwrap_or_else(|e| e.into_inner());
    let mut env = job.env.clone();
    for from in job.artifacts_from.iter() {
        for (k, v) in reports.get(&from).into_iter().flatten() {
            if shared.config.overrides.iter().any(|(o, _)| o == k) {
                continue;
            }
            match env.iter_mut().find(|(n, _)| n == k) {
                Some(slot) => slot.1 = v.clone(),
                None => env.push((k.clone(), v.clone())),
            }
        }
    }
    env
}

/// Read the job's dotenv reports out of its stopped container, for the jobs after it.
async fn keep_dotenv(
    job: &PreparedJob,
    shared: &Shared,
    sink: &Sink,
    id: &str,
) -> Result<(), String> {
    let Some(files) = job.artifacts.as_ref().map(|a| &a.dotenv) else {
        return Ok(());
    };
    let mut all = Vec::new();
    for file in files {
        let vars = artifacts::read_dotenv(
            &*shared.engine,
            id,
            &shared.config.context.container_dir,
            file,
        )
        .await?;
        log(
            sink,
            &job.name,
            format!("dotenv report {file}: {} variables", vars.len()),
        )
        .await;
        all.extend(vars);
    }
    if !all.is_empty() {
        shared
            .dotenv
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(job.index, all);
    }
    Ok(())
}

async fn notices(sink: &Sink, job: &str, problems: Vec<String>) {
    for p in problems {
        sink.send(Event::Notice {
            message: format!("job `{job}`: {p}"),
        })
        .await;
    }
}

/// Unpack, start, stream, wait: everything between creating and removing the container.
async fn drive(
    job: &PreparedJob,
    shared: &Shared,
    sink: &Sink,
    cancel: &CancellationToken,
    id: &str,
    shell: bool,
    needs: &[NeedResult],
) -> Ended {
    let engine = &*shared.engine;
    let uploaded = match &shared.config.workspace {
        Workspace::Copy { tar } => {
            let (tail, failure) = match receive_artifacts(job, shared, sink).await {
                Ok(tail) => tail,
                Err(ended) => return ended,
            };
            let uploaded = engine
                .upload_tar_file_then(id, "/", tar, tail.boxed())
                .await;
            // The engine only saw the stream break off: say why it did.
            if let (Err(_), Some(why)) = (&uploaded, failure.get()) {
                return Ended::Refused(format!("the job's files: {why}"));
            }
            uploaded
        }
        // The jobs share the project directory: what earlier jobs wrote is already there.
        Workspace::Mount => {
            engine
                .upload_tar_bytes(id, "/", job.scripts_tar.clone())
                .await
        }
    };
    if let Err(e) = uploaded {
        return Ended::Broken(e);
    }
    if cancel.is_cancelled() {
        return Ended::Cancelled;
    }
    if shell {
        log(
            sink,
            &job.name,
            format!(
                "a shell in the job's environment, before its script (which is in {}/); `exit` ends it",
                script::DIR
            ),
        )
        .await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        return match super::debug::interact(engine, id).await {
            Ok(code) => Ended::Exited(code),
            Err(e) => Ended::Broken(e),
        };
    }
    if let Err(e) = engine.start(id).await {
        return Ended::Broken(e);
    }
    if let Some(program) = &job.steps {
        return super::steps::run(job, shared, sink, cancel, id, &**program, needs).await;
    }
    let stopped = CancellationToken::new();
    let pump = tokio::spawn(pump_output(
        engine.output(id),
        job.name.clone(),
        sink.clone(),
        stopped.clone(),
    ));
    let ended = tokio::select! {
        r = engine.wait(id) => match r {
            Ok(code) => Ended::Exited(code),
            Err(e) => Ended::Broken(e),
        },
        _ = tokio::time::sleep(job.timeout) => Ended::TimedOut(job.timeout),
        _ = cancel.cancelled() => Ended::Cancelled,
    };
    match ended {
        // Killed, not removed: its files stay readable for `artifacts: when: on_failure`.
        Ended::TimedOut(_) => {
            let _ = engine.kill(id).await;
        }
        // Removing kills it; the output stream then ends.
        Ended::Cancelled | Ended::Broken(_) => {
            let _ = engine.remove_container(id).await;
        }
        Ended::Exited(_) | Ended::Refused(_) => {}
    }
    // The container has stopped; its stream goes on with what the engine has not sent yet (a
    // job printing a lot is far ahead of it) and ends after the last line. Only a stream that
    // stalls is let go: an engine that went away, or Podman's, which sometimes outlives the
    // container. The pump holds the sink, and the run's reporters end only when every sink
    // is gone.
    stopped.cancel();
    let Ok((pumped, first)) = pump.await else {
        return ended;
    };
    // A stopped container's log is whole on the engine: what the stream missed is read again.
    // Some engines' streams can also end early without saying so (Podman's, podman#21914), and
    // Docker's sometimes ends before an unterminated last line the container printed as it
    // exited: read again there, on Docker while that is cheap.
    let whole = matches!(ended, Ended::Exited(_) | Ended::TimedOut(_));
    let may_end_early = engine.logs_may_end_early();
    let small = pumped.bytes[0] + pumped.bytes[1] <= RECHECK_BYTES;
    if !(whole && (may_end_early || small || first != Read::ToTheEnd)) {
        pumped.finish(&job.name, sink).await;
        return ended;
    }
    let (pumped, again) = catch_up(engine, id, pumped, &job.name, sink).await;
    pumped.finish(&job.name, sink).await;
    let lost = match (&first, &again) {
        (_, Read::ToTheEnd) => None,
        (Read::ToTheEnd, _) => Some(format!(
            "may be incomplete: the engine's log stream can end early, and reading the log again {again}"
        )),
        _ => Some(format!(
            "is incomplete: the engine's log stream {first}, and reading the log again {again}"
        )),
    };
    if let Some(why) = lost {
        sink.send(Event::Notice {
            message: format!("job `{}`: its log {why}", job.name),
        })
        .await;
    }
    ended
}

/// Create the job's cache volumes (labelled; existing ones are reused) and say where they are.
async fn prepare_caches(job: &PreparedJob, shared: &Shared, sink: &Sink) -> Result<(), String> {
    for m in &job.caches {
        shared
            .engine
            .create_volume(&m.volume, &m.labels)
            .await
            .map_err(|e| format!("{}: {e}", m.volume))?;
        sink.send(Event::CacheMounted {
            job: job.name.clone(),
            key: m.key.clone(),
            path: m.path.clone(),
            volume: m.volume.clone(),
            read_only: m.read_only,
        })
        .await;
        shared
            .cache_uses
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((job.name.clone(), m.clone()));
    }
    Ok(())
}

/// What follows the workspace in the job's upload: the artifacts of the jobs it depends on,
/// each checked first, then its scripts.
async fn receive_artifacts(
    job: &PreparedJob,
    shared: &Shared,
    sink: &Sink,
) -> Result<
    (
        impl Stream<Item = std::io::Result<Bytes>> + Send + 'static,
        Arc<std::sync::OnceLock<String>>,
    ),
    Ended,
> {
    let sources: Vec<artifacts::Stored> = {
        let stored = shared.stored.lock().unwrap_or_else(|e| e.into_inner());
        job.artifacts_from
            .iter()
            .filter_map(|i| stored.get(&i).cloned())
            .collect()
    };
    // One walk over all of them: they are unpacked into one workspace, in this order.
    let archives: Vec<_> = sources.iter().map(|s| s.archive.clone()).collect();
    let checked = tokio::task::spawn_blocking(move || artifacts::check_archives(&archives))
        .await
        .unwrap_or_else(|e| Err((0, e.to_string())));
    if let Err((i, why)) = checked {
        let from = sources.get(i).map_or("", |s| s.manifest.job.as_str());
        return Err(Ended::Refused(format!("artifacts of `{from}`: {why}")));
    }
    for source in &sources {
        log(
            sink,
            &job.name,
            format!(
                "Receiving artifacts of `{}` ({} files)",
                source.manifest.job,
                source.manifest.files.len()
            ),
        )
        .await;
    }
    let archives: Vec<_> = sources.into_iter().map(|s| s.archive).collect();
    let prefix = shared
        .config
        .context
        .container_dir
        .trim_start_matches('/')
        .to_string();
    let scripts = job.scripts_tar.clone();
    // Written on a blocking thread into a pipe the upload reads; a failure ends the stream with
    // an error rather than a short archive the engine would accept.
    let (writer, reader) = tokio::io::duplex(256 * 1024);
    let writer = tokio_util::io::SyncIoBridge::new(writer);
    let task = tokio::task::spawn_blocking(move || {
        let out = std::io::BufWriter::with_capacity(128 * 1024, writer);
        artifacts::write_upload_tail(&archives, &prefix, &scripts, out)
    });
    let failure = Arc::new(std::sync::OnceLock::new());
    let failed = failure.clone();
    let end = futures_util::stream::once(async move {
        let why = match task.await {
            Ok(Ok(())) => return None,
            Ok(Err(why)) => why,
            Err(e) => e.to_string(),
        };
        let _ = failed.set(why.clone());
        Some(Err(std::io::Error::other(why)))
    })
    .filter_map(std::future::ready);
    Ok((
        tokio_util::io::ReaderStream::new(reader).chain(end),
        failure,
    ))
}

/// Stream the job's artifacts out of its stopped container into the run's record.
async fn keep_artifacts(
    job: &PreparedJob,
    shared: &Shared,
    sink: &Sink,
    id: &str,
    spec: &crate::pipeline::Artifacts,
) -> Result<(), String> {
    let dir = shared.config.run_dir.join("artifacts");
    let stem = artifacts::file_stem(job.index, &job.name);
    let (stored, warnings) = artifacts::collect(
        &*shared.engine,
        id,
        &shared.config.context.container_dir,
        spec,
        &job.name,
        &dir.join(stem),
        &shared.config.tracked,
    )
    .await?;
    for w in warnings {
        log(sink, &job.name, w).await;
    }
    if let Some(stored) = stored {
        let shown = stored
            .archive
            .strip_prefix(&shared.config.context.project_dir)
            .unwrap_or(&stored.archive)
            .display()
            .to_string();
        sink.send(Event::ArtifactsStored {
            job: job.name.clone(),
            path: shown,
            files: stored.manifest.files.len(),
            bytes: stored.manifest.bytes,
        })
        .await;
        shared
            .stored
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(job.index, stored);
    }
    Ok(())
}

pub(super) async fn log(sink: &Sink, job: &str, line: String) {
    sink.send(Event::JobLog {
        job: job.to_string(),
        lines: vec![LogLine::text(line)],
    })
    .await;
}

/// Up to this much output, a log the stream gave whole is read again all the same, for the
/// last line Docker's stream can miss.
const RECHECK_BYTES: u64 = 256 * 1024;

/// How long a log stream may stay silent once the container has stopped.
const STALL: Duration = Duration::from_secs(5);

/// The lines that come within BATCH_WAIT of a batch's first, up to BATCH_BYTES, go out as
/// one event: a job printing a lot costs an event per batch, not per line, and a line waits
/// at most this long to be shown.
const BATCH_BYTES: usize = 256 * 1024;
const BATCH_WAIT: Duration = Duration::from_millis(10);

/// How reading a log stream ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Read {
    ToTheEnd,
    Failed(String),
    Stalled,
}

impl std::fmt::Display for Read {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Read::ToTheEnd => write!(f, "ended"),
            Read::Failed(e) => write!(f, "failed ({e})"),
            Read::Stalled => write!(f, "stalled (nothing for {}s)", STALL.as_secs()),
        }
    }
}

/// Each output stream's unfinished line, and how many bytes it carried.
pub(super) struct Pumped {
    lines: [Lines; 2],
    bytes: [u64; 2],
}

impl Pumped {
    fn new(mask: Arc<Mask>) -> Pumped {
        Pumped {
            lines: [Lines::new(mask.clone()), Lines::new(mask)],
            bytes: [0, 0],
        }
    }

    /// Split `bytes` of stream `which` (0 stdout, 1 stderr) into lines, skipping the first
    /// `skip` bytes of that stream (already seen).
    fn push(&mut self, which: usize, bytes: &[u8], skip: u64, out: &mut Vec<LogLine>) {
        let seen = self.bytes[which];
        self.bytes[which] += bytes.len() as u64;
        let from = usize::try_from(skip.saturating_sub(seen)).unwrap_or(usize::MAX);
        self.lines[which].push(&bytes[from.min(bytes.len())..], out);
    }

    pub(super) async fn finish(mut self, job: &str, sink: &Sink) {
        let mut lines = Vec::new();
        for l in &mut self.lines {
            l.finish(&mut lines);
        }
        send_lines(sink, job, lines).await;
    }
}

async fn send_lines(sink: &Sink, job: &str, lines: Vec<LogLine>) {
    if !lines.is_empty() {
        sink.send(Event::JobLog {
            job: job.to_string(),
            lines,
        })
        .await;
    }
}

/// Stream the job's output into events until the stream ends; once `stopped` (the container
/// has), only until it stalls.
pub(super) async fn pump_output(
    stream: impl futures_util::Stream<Item = Result<Output, RuntimeError>>,
    job: String,
    sink: Sink,
    stopped: CancellationToken,
) -> (Pumped, Read) {
    let pumped = Pumped::new(sink.mask());
    drain(stream, pumped, [0, 0], &stopped, &job, &sink).await
}

/// Podman's followed log stream can end before the last lines of a stopped container
/// (podman#21914), and any engine's stream can break off: read the whole log again and pass
/// on what was not seen yet.
async fn catch_up(
    engine: &dyn ContainerRuntime,
    id: &str,
    pumped: Pumped,
    job: &str,
    sink: &Sink,
) -> (Pumped, Read) {
    let seen = pumped.bytes;
    let again = Pumped {
        lines: pumped.lines,
        bytes: [0, 0],
    };
    let stopped = CancellationToken::new();
    stopped.cancel();
    let (pumped, read) = drain(engine.output_so_far(id), again, seen, &stopped, job, sink).await;
    // Short of what was seen: the engine lost part of what the stream had.
    let read = match read {
        Read::ToTheEnd if pumped.bytes[0] < seen[0] || pumped.bytes[1] < seen[1] => {
            Read::Failed("the engine's log is shorter than its stream was".into())
        }
        other => other,
    };
    (pumped, read)
}

/// Pass `stream` on into `pumped`, skipping the first `skip` bytes of each of its two streams,
/// until it ends or fails; once `stopped`, until it stalls. The lines go out in batches of what
/// is ready at once.
async fn drain(
    stream: impl futures_util::Stream<Item = Result<Output, RuntimeError>>,
    mut pumped: Pumped,
    skip: [u64; 2],
    stopped: &CancellationToken,
    job: &str,
    sink: &Sink,
) -> (Pumped, Read) {
    futures_util::pin_mut!(stream);
    loop {
        let item = if stopped.is_cancelled() {
            match tokio::time::timeout(STALL, stream.next()).await {
                Ok(item) => item,
                Err(_) => return (pumped, Read::Stalled),
            }
        } else {
            tokio::select! {
                item = stream.next() => item,
                _ = stopped.cancelled() => continue,
            }
        };
        let mut batch = Vec::new();
        let mut size = 0;
        let mut item = Some(item);
        // The first item, then what else comes within a moment: hyper hands over the output a
        // frame (a line) at a time through another task, so what is "ready now" is one line.
        let deadline = tokio::time::Instant::now() + BATCH_WAIT;
        while let Some(next) = item.take() {
            let read = match next {
                Some(Ok(Output::Stdout(b))) => {
                    pumped.push(0, &b, skip[0], &mut batch);
                    size += b.len();
                    None
                }
                Some(Ok(Output::Stderr(b))) => {
                    pumped.push(1, &b, skip[1], &mut batch);
                    size += b.len();
                    None
                }
                Some(Err(e)) => Some(Read::Failed(e.to_string())),
                None => Some(Read::ToTheEnd),
            };
            if let Some(read) = read {
                send_lines(sink, job, batch).await;
                return (pumped, read);
            }
            if size < BATCH_BYTES {
                item = tokio::time::timeout_at(deadline, stream.next()).await.ok();
            }
        }
        send_lines(sink, job, batch).await;
    }
}

/// The longest piece of a line that goes out in one event; a longer line is cut into pieces
/// (the record joins them again).
const MAX_LINE: usize = 64 * 1024;

/// Splits a byte stream into lines; a line longer than [`MAX_LINE`] goes out in pieces, cut
/// where no secret is split and, in UTF-8, between characters. Each piece keeps its bytes.
pub(crate) struct Lines {
    buf: Vec<u8>,
    mask: Arc<Mask>,
}

impl Lines {
    pub fn new(mask: Arc<Mask>) -> Lines {
        Lines {
            buf: Vec::new(),
            mask,
        }
    }

    /// How many bytes past a cut must be there to place it: a secret's, and a character's.
    fn margin(&self) -> usize {
        self.mask.longest().min(MAX_LINE / 2) + 4
    }

    pub fn push(&mut self, mut bytes: &[u8], out: &mut Vec<LogLine>) {
        while let Some(nl) = memchr::memchr(b'\n', bytes) {
            if self.buf.is_empty() {
                self.line(&bytes[..nl], out);
            } else {
                let mut buf = std::mem::take(&mut self.buf);
                buf.extend_from_slice(&bytes[..nl]);
                self.line(&buf, out);
                buf.clear();
                self.buf = buf;
            }
            bytes = &bytes[nl + 1..];
        }
        self.buf.extend_from_slice(bytes);
        if self.buf.len() >= MAX_LINE + self.margin() {
            let used = self.pieces(&self.buf, None, out);
            self.buf.drain(..used);
        }
    }

    /// The unfinished line at the end of the output.
    pub fn finish(&mut self, out: &mut Vec<LogLine>) {
        if !self.buf.is_empty() {
            self.pieces(&self.buf, Some(LineEnd::Eof), out);
            self.buf.clear();
        }
    }

    fn line(&self, line: &[u8], out: &mut Vec<LogLine>) {
        match line.strip_suffix(b"\r") {
            Some(line) => self.pieces(line, Some(LineEnd::CrLf), out),
            None => self.pieces(line, Some(LineEnd::Lf), out),
        };
    }

    /// Pass on `data` in pieces: all of it when its `end` is known, else the pieces that have
    /// enough bytes after them to be cut well. How many bytes went out.
    fn pieces(&self, data: &[u8], end: Option<LineEnd>, out: &mut Vec<LogLine>) -> usize {
        let mut start = 0;
        loop {
            let rest = &data[start..];
            match end {
                Some(end) if rest.len() <= MAX_LINE => {
                    out.push(LogLine::from_bytes(rest, end));
                    return data.len();
                }
                None if rest.len() < MAX_LINE + self.margin() => return start,
                _ => {}
            }
            let cut = self.cut(rest);
            out.push(LogLine::from_bytes(&rest[..cut], LineEnd::Cut));
            start += cut;
        }
    }

    /// Where to cut `rest`, longer than [`MAX_LINE`].
    fn cut(&self, rest: &[u8]) -> usize {
        let mut cut = self.mask.safe_cut(rest, MAX_LINE);
        // Not inside a UTF-8 character (its continuation bytes are 0b10xxxxxx).
        let floor = cut.saturating_sub(3);
        while cut > floor && rest.get(cut).is_some_and(|b| b & 0xc0 == 0x80) {
            cut -= 1;
        }
        if cut == 0 {
            MAX_LINE
        } else {
            cut
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::{LineEnd, Lines, LogLine, MAX_LINE};
    use crate::events::Mask;

    fn lines(mask: &[&str], chunks: &[&[u8]]) -> Vec<LogLine> {
        let mask = Arc::new(Mask::new(mask.iter().map(|s| s.to_string())));
        let mut l = Lines::new(mask);
        let mut out = Vec::new();
        for c in chunks {
            l.push(c, &mut out);
        }
        l.finish(&mut out);
        out
    }

    fn exact(lines: &[LogLine]) -> Vec<u8> {
        let mut out = Vec::new();
        for l in lines {
            l.write_exact(&mut out).unwrap();
        }
        out
    }

    #[test]
    fn splits_across_chunks() {
        let mut l = Lines::new(Arc::new(Mask::new([])));
        let mut out = Vec::new();
        l.push(b"hel", &mut out);
        assert!(out.is_empty());
        l.push(b"lo\r\nwor", &mut out);
        l.push(b"ld\n\n", &mut out);
        l.push(b"tail", &mut out);
        let texts: Vec<_> = out.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(texts, ["hello", "world", ""]);
        assert_eq!(out[0].end, LineEnd::CrLf);
        out.clear();
        l.finish(&mut out);
        assert_eq!(out, [LogLine::from_bytes(b"tail", LineEnd::Eof)]);
        out.clear();
        l.finish(&mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn a_long_line_goes_out_in_pieces_whose_bytes_add_up() {
        let mut long = vec![b'x'; MAX_LINE * 3 + 10];
        long.push(b'\n');
        long.extend_from_slice(b"next\n");
        // In small chunks and in one: the same pieces.
        let chunked: Vec<&[u8]> = long.chunks(1000).collect();
        for out in [lines(&[], &chunked), lines(&[], &[&long])] {
            assert_eq!(out.len(), 5, "{:?}", out.iter().map(|l| l.text.len()));
            assert!(out[..3]
                .iter()
                .all(|l| l.is_cut() && l.text.len() == MAX_LINE));
            assert_eq!(out[3].text.len(), 10);
            assert_eq!(out[3].end, LineEnd::Lf);
            assert_eq!(exact(&out), long);
        }
    }

    #[test]
    fn invalid_utf8_and_line_ends_are_kept_exactly() {
        let bytes: &[u8] = b"caf\xc3\xa9 \xff\xfe bad\r\nplain\nno end\r";
        let out = lines(&[], &[&bytes[..5], &bytes[5..]]);
        assert_eq!(out[0].text, "café \u{fffd}\u{fffd} bad");
        assert_eq!(out[2].text, "no end\r");
        assert_eq!(exact(&out), bytes);
    }

    #[test]
    fn a_cut_falls_between_characters_and_before_a_secret() {
        // `é` is two bytes: one of them would be at the cut.
        let mut line = vec![b'a'; MAX_LINE - 1];
        line.extend_from_slice("é".as_bytes());
        line.extend_from_slice(b"tail\n");
        let out = lines(&[], &[&line]);
        assert_eq!(out[0].text.len(), MAX_LINE - 1);
        assert_eq!(out[1].text, "étail");
        // A secret across the cut goes whole into the next piece.
        let mut line = vec![b'a'; MAX_LINE - 3];
        line.extend_from_slice(b"hunter2 and more\n");
        let out = lines(&["hunter2"], &[&line[..MAX_LINE], &line[MAX_LINE..]]);
        assert_eq!(out[0].text.len(), MAX_LINE - 3);
        assert_eq!(out[1].text, "hunter2 and more");
    }
}
