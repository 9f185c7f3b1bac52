//! The life of one job: a fresh container per attempt, the workspace and scripts unpacked into
//! it, its output streamed line by line, a timeout, retries, and the container removed whatever
//! happened.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use tokio_util::sync::CancellationToken;

use super::output::{catch_up, pump_output, Read, RECHECK_BYTES};
use super::services::Attach;
use super::{
    ahead, artifacts, caches, checkouts, script, services, Outcome, PreparedJob, Shared, Workspace,
};
use crate::engine::runtime::{labels, ContainerRuntime, ContainerSpec, RuntimeError};
use crate::events::{Event, JobStatus, LogLine, Sink};
use crate::pipeline::steps::NeedResult;
use crate::pipeline::ServiceNetwork;
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
    /// The job's image cannot give it what it asks for (a Python version it lacks): not the
    /// job's own failure, as an engine that cannot run it is not.
    Unrunnable(String),
}

pub(super) async fn run(
    job: Arc<PreparedJob>,
    shared: Arc<Shared>,
    sink: Sink,
    cancel: CancellationToken,
    needs: Vec<NeedResult>,
    warm: Option<ahead::Warming>,
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
    // The container started ahead serves the first attempt; a retry gets a fresh one.
    let mut warm = warm;
    loop {
        sink.send(Event::JobStarted {
            job: job.name.clone(),
            stage: job.stage.clone(),
            image: job.image.clone(),
            attempt,
        })
        .await;
        let last = attempt > job.retry;
        let warm = match warm.take() {
            Some(warming) => ahead::ready(warming).await,
            None => None,
        };
        let ended = attempt_once(&job, &shared, &sink, &cancel, attempt, last, &needs, warm).await;
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
            Ended::Unrunnable(why) => (JobStatus::Error, None, Some(why.clone())),
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

#[allow(clippy::too_many_arguments)]
async fn attempt_once(
    job: &PreparedJob,
    shared: &Shared,
    sink: &Sink,
    cancel: &CancellationToken,
    attempt: u32,
    last: bool,
    needs: &[NeedResult],
    warm: Option<ahead::Warm>,
) -> Ended {
    let engine = &*shared.engine;
    let config = &shared.config;
    // The caches the job works on a copy of: made and filled for this attempt (a job started
    // ahead has none).
    let cache_labels = job_labels(job, shared);
    let copies = cache_copies(job, shared, &cache_labels, attempt);
    let restored = match &warm {
        Some(_) => Vec::new(),
        None => match copies
            .restore(&job.caches, &config.run_id, job.index, attempt)
            .await
        {
            Ok((restored, lines)) => {
                for line in lines {
                    log(sink, &job.name, line).await;
                }
                restored
            }
            Err(why) => return Ended::Broken(RuntimeError::Api(format!("cache: {why}"))),
        },
    };
    // A failed job's service logs go into the run's record.
    let logs_dir = config.run_dir.join("services").join(format!(
        "{}-{attempt}",
        artifacts::file_stem(job.index, &job.name)
    ));
    let localhost = job.service_network == ServiceNetwork::Localhost;
    let shell = config.shell_job.as_deref() == Some(job.name.as_str());
    let (spec, id, mut sidecars, held) = match warm {
        // Created, filled and started while its needs ran (no services or volumes of its own).
        // Its needs have finished: the environment it runs with (a debug shell gets it) has
        // their dotenv variables, which reach its script through the gate.
        Some(mut warm) => {
            warm.spec.env = with_dotenv(job, shared);
            (warm.spec, warm.id, None, Some(warm.held))
        }
        None => match create(job, shared, sink, attempt, &logs_dir, shell, &restored).await {
            Ok((spec, id, sidecars)) => (spec, id, sidecars, None),
            Err(ended) => return ended,
        },
    };
    let namespace = sidecars.as_mut().filter(|_| localhost).map(|s| (s, &spec));
    let mut ended = drive(
        job, shared, sink, cancel, &id, shell, needs, namespace, held,
    )
    .await;
    if matches!(ended, Ended::Exited(0)) {
        if let Err(why) = keep_dotenv(job, shared, sink, &id).await {
            ended = Ended::Refused(why);
        }
    }
    // Keep artifacts from the attempt whose result stands: a pass, or the last failure.
    let passed = matches!(ended, Ended::Exited(0));
    let failed_for_good = matches!(ended, Ended::Exited(_) | Ended::TimedOut(_)) && !passed && last;
    // Caches are saved for a job that ended on its own, as `cache: when` says (each attempt is
    // a job of its own on GitLab); a cache that cannot be saved is a warning, as there.
    if matches!(ended, Ended::Exited(_) | Ended::TimedOut(_)) && !restored.is_empty() {
        let lines = match copies.save(&job.caches, &restored, passed).await {
            Ok(lines) => lines,
            Err(why) => vec![format!("WARNING: cache not saved: {why}")],
        };
        for line in lines {
            log(sink, &job.name, line).await;
        }
    }
    // Reports are kept whatever the result, as GitLab uploads them.
    if let Some(spec) = job.artifacts.as_ref().and_then(|a| a.kept(passed)) {
        if passed || failed_for_good {
            if let Err(why) = keep_artifacts(job, shared, sink, &id, &spec).await {
                ended = Ended::Refused(format!("artifacts: {why}"));
            }
        }
    }
    if let Some(debug) = &config.debug {
        let failed = matches!(ended, Ended::Exited(code) if code != 0)
            || matches!(
                ended,
                Ended::TimedOut(_) | Ended::Refused(_) | Ended::Unrunnable(_)
            );
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
    let logs = (sidecars.is_some() && !matches!(ended, Ended::Exited(0) | Ended::Cancelled))
        .then_some(logs_dir);
    // The result stands once the artifacts are kept: removing the container (then its services
    // and network) goes on in the background while the next jobs start; the run waits for it
    // before it ends.
    let (engine, sink, name) = (shared.engine.clone(), sink.clone(), job.name.clone());
    let mut volumes = job.volumes.clone();
    volumes.extend(restored.into_iter().map(|r| r.volume));
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
            notices(&sink, &name, remove_volumes(&*engine, &volumes).await).await;
        });
    ended
}

/// The attempt's container created (not started), with its volumes, network and services.
async fn create(
    job: &PreparedJob,
    shared: &Shared,
    sink: &Sink,
    attempt: u32,
    logs_dir: &std::path::Path,
    shell: bool,
    restored: &[caches::Restored],
) -> Result<(ContainerSpec, String, Option<services::Running>), Ended> {
    let engine = &*shared.engine;
    let config = &shared.config;
    let labels = job_labels(job, shared);
    let name = container_name(job, shared, attempt);
    if config.offline && !job.services.is_empty() {
        log(
            sink,
            &job.name,
            "Services not started: --network none gives the job no network to reach them".into(),
        )
        .await;
    }
    if let Err(why) = create_volumes(job, shared, &labels).await {
        notices(sink, &job.name, remove_volumes(engine, &job.volumes).await).await;
        return Err(Ended::Refused(why));
    }
    // Services reached at localhost join the job container's namespace once it runs (in
    // `drive`); the others are started first, on the job's network.
    let localhost = job.service_network == ServiceNetwork::Localhost;
    let sidecars = if job.services.is_empty() || config.offline {
        None
    } else {
        // Hermetic: the job and its services reach each other and nothing else.
        let made = match services::network(engine, &name, &labels, config.hermetic.is_some()).await
        {
            Ok(mut running) if !localhost => match services::start(
                engine,
                &mut running,
                &job.services,
                &name,
                &labels,
                config.service_timeout,
                Attach::Network,
            )
            .await
            {
                Ok(warnings) => {
                    for line in warnings {
                        log(sink, &job.name, line).await;
                    }
                    Ok(running)
                }
                Err(why) => Err((Some(running), why)),
            },
            other => other,
        };
        match made {
            Ok(running) => Some(running),
            Err((running, why)) => {
                if let Some(running) = running {
                    notices(
                        sink,
                        &job.name,
                        services::stop(engine, running, Some(logs_dir)).await,
                    )
                    .await;
                }
                notices(sink, &job.name, remove_volumes(engine, &job.volumes).await).await;
                return Err(Ended::Refused(why));
            }
        }
    };
    let network = match &sidecars {
        _ if config.offline => Some("none".to_string()),
        Some(s) => Some(s.network.clone()),
        None if config.hermetic.is_some() => Some("none".to_string()),
        None => None,
    };
    let binds = binds(job, shared, restored);
    let mut spec = container_spec(job, shared, labels, name, network, binds);
    if sidecars.is_some() {
        spec.aliases = services::job_aliases(&job.env);
    }
    if shell {
        spec.entrypoint = Some(vec![String::new()]);
        spec.cmd = script::Scripts::shell_command();
        spec.interactive = true;
    }
    let created = match engine.create_container(&spec).await {
        // Hermetic: berth probes the services in the job's namespace over the probe network.
        Ok(id) => match sidecars.as_ref().and_then(|s| s.probe.as_ref()) {
            Some(probe) if localhost => engine.connect_network(probe, &id).await.map(|()| id),
            _ => Ok(id),
        },
        Err(e) => Err(e),
    };
    let id = match created {
        Ok(id) => id,
        Err(e) => {
            if let Some(running) = sidecars {
                notices(sink, &job.name, services::stop(engine, running, None).await).await;
            }
            notices(sink, &job.name, remove_volumes(engine, &job.volumes).await).await;
            return Err(Ended::Broken(e));
        }
    };
    Ok((spec, id, sidecars))
}

/// The job's container, its services and their network carry the same labels.
pub(super) fn job_labels(job: &PreparedJob, shared: &Shared) -> HashMap<String, String> {
    let mut labels = shared.labels.clone();
    labels.insert(labels::JOB.to_string(), job.name.clone());
    labels
}

pub(super) fn container_name(job: &PreparedJob, shared: &Shared, attempt: u32) -> String {
    format!(
        "berth-{}-{}-{}-{attempt}",
        shared.config.run_id,
        job.index,
        paths::slug(&job.name)
    )
}

/// The project (when it is mounted) and the job's caches (a cache it works on a copy of: the
/// copy `restored` made).
pub(super) fn binds(
    job: &PreparedJob,
    shared: &Shared,
    restored: &[caches::Restored],
) -> Vec<String> {
    let config = &shared.config;
    let mut binds = match &config.workspace {
        Workspace::Mount => vec![format!(
            "{}:{}",
            config.context.project_dir.display(),
            config.context.container_dir
        )],
        Workspace::Copy { .. } => Vec::new(),
    };
    binds.extend(job.caches.iter().enumerate().map(|(i, m)| {
        match restored.iter().find(|r| r.mount == i) {
            Some(copy) => m.bind_of(&copy.volume, &config.context.container_dir),
            None => m.bind(&config.context.container_dir),
        }
    }));
    binds
}

/// The job's container as it runs its script (or, for a job of steps, stays up for them).
pub(super) fn container_spec(
    job: &PreparedJob,
    shared: &Shared,
    labels: HashMap<String, String>,
    name: String,
    network: Option<String>,
    binds: Vec<String>,
) -> ContainerSpec {
    let config = &shared.config;
    let (entrypoint, cmd) = match job.steps {
        Some(_) => (Some(super::steps::keep_alive()), Vec::new()),
        None => (job.entrypoint.clone(), script::Scripts::command()),
    };
    ContainerSpec {
        name,
        image: job.image.clone(),
        entrypoint,
        cmd,
        env: with_dotenv(job, shared),
        working_dir: config.context.container_dir.clone(),
        labels,
        binds,
        network,
        aliases: Vec::new(),
        interactive: false,
        stdin: false,
        hostname: config.hostname.clone(),
        options: job.container.clone(),
    }
}

/// Make the job's named volumes (labelled as temporary: the run's sweep removes what is left).
async fn create_volumes(
    job: &PreparedJob,
    shared: &Shared,
    labels: &std::collections::HashMap<String, String>,
) -> Result<(), String> {
    let mut labels = labels.clone();
    labels.insert(labels::TEMPORARY.to_string(), "1".to_string());
    for v in &job.volumes {
        shared
            .engine
            .create_volume(v, &labels)
            .await
            .map_err(|e| format!("volume {v}: {e}"))?;
    }
    Ok(())
}

async fn remove_volumes(engine: &dyn ContainerRuntime, volumes: &[String]) -> Vec<String> {
    let mut problems = Vec::new();
    for v in volumes {
        if let Err(e) = engine.remove_volume(v).await {
            problems.push(format!("volume {v}: {e}"));
        }
    }
    problems
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
        // Recorded too: a later run may take them instead of running the job again.
        if let Err(e) = record_dotenv(job, &shared.config.run_dir, &all) {
            log(
                sink,
                &job.name,
                format!("cannot record the dotenv variables: {e}"),
            )
            .await;
        }
        shared
            .dotenv
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(job.index, all);
    }
    Ok(())
}

fn record_dotenv(
    job: &PreparedJob,
    run_dir: &std::path::Path,
    variables: &[(String, String)],
) -> std::io::Result<()> {
    let record = crate::store::archives::DotenvRecord {
        job: job.name.clone(),
        variables: variables.to_vec(),
    };
    record.write(run_dir, &artifacts::file_stem(job.index, &job.name))
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
/// `namespace`: services to start in the job container's namespace once it runs.
#[allow(clippy::too_many_arguments)]
async fn drive(
    job: &PreparedJob,
    shared: &Shared,
    sink: &Sink,
    cancel: &CancellationToken,
    id: &str,
    shell: bool,
    needs: &[NeedResult],
    namespace: Option<(&mut services::Running, &ContainerSpec)>,
    held: Option<ahead::Held>,
) -> Ended {
    let engine = &*shared.engine;
    if let Some(held) = held {
        // Its files are in and it runs, held at its gate: what its needs left goes in now.
        if cancel.is_cancelled() {
            return Ended::Cancelled;
        }
        if let Err(ended) = ahead::deliver(job, shared, sink, id, held).await {
            return ended;
        }
    } else {
        let scripts = job.scripts_tar.clone();
        if let Err(ended) = upload_files(job, shared, sink, id, scripts, true).await {
            return ended;
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
        let started = engine.start(id).await;
        shared.started(job.index);
        if let Err(e) = started {
            return Ended::Broken(e);
        }
    }
    if let Some((running, spec)) = namespace {
        match services::start(
            engine,
            running,
            &job.services,
            &spec.name,
            &spec.labels,
            shared.config.service_timeout,
            Attach::Namespace(id),
        )
        .await
        {
            Ok(warnings) => {
                for line in warnings {
                    log(sink, &job.name, line).await;
                }
            }
            Err(why) => return Ended::Refused(why),
        }
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
    let (ended, ended_itself) = wait_for_script(job, shared, sink, cancel, id).await;
    match ended {
        // Killed, not removed: its files stay readable for `artifacts: when: on_failure`.
        Ended::TimedOut(_) if !ended_itself => {
            let _ = engine.kill(id).await;
        }
        // Removing kills it; the output stream then ends.
        Ended::Cancelled | Ended::Broken(_) if !ended_itself => {
            let _ = engine.remove_container(id).await;
        }
        _ => {}
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
    let whole = ended_itself || matches!(ended, Ended::Exited(_) | Ended::TimedOut(_));
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

/// Wait for the job's script as GitLab Runner does. A cancellation or `RUNNER_SCRIPT_TIMEOUT`
/// stops the script in the container and lets the driver go on to after_script (bounded by
/// its own timeout there, and by the job's here); the job's own timeout ends everything, and
/// after_script with it, as on GitLab. `true` with the result: the container stopped by
/// itself after a stop, so its log is whole.
async fn wait_for_script(
    job: &PreparedJob,
    shared: &Shared,
    sink: &Sink,
    cancel: &CancellationToken,
    id: &str,
) -> (Ended, bool) {
    let engine = &*shared.engine;
    let deadline = tokio::time::Instant::now() + job.timeout;
    let script_limit = script::Options::from_env(&job.env, job.timeout).script_timeout;
    let exited = |r: Result<i64, RuntimeError>| match r {
        Ok(code) => Ended::Exited(code),
        Err(e) => Ended::Broken(e),
    };
    let timed_out = || async {
        log(sink, &job.name, script_warning("step_script")).await;
        (Ended::TimedOut(job.timeout), false)
    };
    let mut wait = std::pin::pin!(engine.wait(id));
    let script_timer = async {
        match script_limit {
            Some(limit) => tokio::time::sleep(limit).await,
            None => std::future::pending().await,
        }
    };
    let (why, ended) = tokio::select! {
        r = &mut wait => return (exited(r), false),
        _ = tokio::time::sleep_until(deadline) => return timed_out().await,
        _ = script_timer => ("timedout", Ended::TimedOut(script_limit.unwrap_or(job.timeout))),
        _ = cancel.cancelled() => ("canceled", Ended::Cancelled),
    };
    if !stop_script(engine, id, why).await {
        return (ended, false);
    }
    tokio::select! {
        r = &mut wait => match r {
            Ok(_) => (ended, true),
            Err(e) => (Ended::Broken(e), false),
        },
        _ = tokio::time::sleep_until(deadline) => {
            log(sink, &job.name, script_warning("after_script")).await;
            (Ended::TimedOut(job.timeout), false)
        }
    }
}

/// The runner's warning for a script out of time, as its log shows it.
fn script_warning(stage: &str) -> String {
    format!(
        "\x1b[0;33mWARNING: {}\x1b[0;m",
        script::timeout_warning(stage)
    )
}

/// Run `stop.sh` in the job's container: its script ends, the driver goes on. `false` if it
/// could not be started (the container is gone, or the engine would not).
async fn stop_script(engine: &dyn ContainerRuntime, id: &str, why: &str) -> bool {
    let spec = crate::engine::runtime::ExecSpec {
        argv: script::Scripts::stop_command(why),
        ..Default::default()
    };
    match engine.exec(id, &spec).await {
        Ok((_, output)) => {
            // Its output is nothing to show, but it must be read for it to run on.
            tokio::spawn(output.for_each(|_| async {}));
            true
        }
        Err(_) => false,
    }
}

/// Put the job's files into its created container in one upload: the workspace (its checkout
/// first), the artifacts of its needs (unless `artifacts` is false: a job started ahead gets
/// them later), and `scripts`. A mounted project gets only the scripts.
pub(super) async fn upload_files(
    job: &PreparedJob,
    shared: &Shared,
    sink: &Sink,
    id: &str,
    scripts: Vec<u8>,
    artifacts: bool,
) -> Result<(), Ended> {
    let engine = &*shared.engine;
    let uploaded = match &shared.config.workspace {
        Workspace::Copy { tar } => {
            let (tail, failure) =
                match receive_artifacts(job, shared, sink, scripts, artifacts).await {
                    Ok(tail) => tail,
                    Err(ended) => return Err(ended),
                };
            let first = shared.checkouts().await.first(&job.checkout, tar);
            let uploaded = match first {
                checkouts::First::Alone(first) => {
                    engine
                        .upload_tar_file_then(id, "/", first, tail.boxed())
                        .await
                }
                checkouts::First::ThenSnapshot(git) => match snapshot_entries(tar).await {
                    Ok(entries) => {
                        let then = entries.chain(tail).boxed();
                        engine.upload_tar_file_then(id, "/", git, then).await
                    }
                    Err(e) => return Err(Ended::Refused(format!("the workspace snapshot: {e}"))),
                },
            };
            // The engine only saw the stream break off: say why it did.
            if let (Err(_), Some(why)) = (&uploaded, failure.get()) {
                return Err(Ended::Refused(format!("the job's files: {why}")));
            }
            uploaded
        }
        // The jobs share the project directory: what earlier jobs wrote is already there.
        Workspace::Mount => engine.upload_tar_bytes(id, "/", scripts).await,
    };
    uploaded.map_err(Ended::Broken)
}

/// Create the job's live cache volumes (labelled; existing ones are reused) and say where its
/// caches are. A cache the job works on a copy of is made when it is first saved.
async fn prepare_caches(job: &PreparedJob, shared: &Shared, sink: &Sink) -> Result<(), String> {
    for m in &job.caches {
        // `--no-cache`'s throwaway caches are made at once too, for the run's sweep to find.
        if m.copy.is_none() || m.labels.contains_key(labels::TEMPORARY) {
            shared
                .engine
                .create_volume(&m.volume, &m.labels)
                .await
                .map_err(|e| format!("{}: {e}", m.volume))?;
        }
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

/// Where the job's copies of its caches are made, for one attempt: with its image and labels
/// (the run's sweep removes what a failed start leaves).
fn cache_copies<'a>(
    job: &'a PreparedJob,
    shared: &'a Shared,
    labels: &'a std::collections::HashMap<String, String>,
    attempt: u32,
) -> caches::Copies<'a> {
    caches::Copies {
        engine: &*shared.engine,
        locks: &shared.cache_locks,
        project: &shared.config.context.project_dir,
        image: &job.image,
        labels,
        name: format!(
            "berth-{}-{}-{}-{attempt}-cache",
            shared.config.run_id,
            job.index,
            paths::slug(&job.name)
        ),
    }
}

/// What follows the workspace in the job's upload: the artifacts of the jobs it depends on,
/// each checked first, then its scripts.
pub(super) async fn receive_artifacts(
    job: &PreparedJob,
    shared: &Shared,
    sink: &Sink,
    scripts: Vec<u8>,
    artifacts: bool,
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
            .filter(|_| artifacts)
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
        let junit = spec.junit();
        if !junit.is_empty() {
            let archive = stored.archive.clone();
            let read = tokio::task::spawn_blocking(move || {
                super::test_reports::read_archive(&archive, &junit)
            })
            .await;
            let (results, warnings) =
                read.unwrap_or_else(|e| (Default::default(), vec![e.to_string()]));
            for w in warnings {
                log(sink, &job.name, format!("WARNING: {w}")).await;
            }
            sink.send(Event::TestReport {
                job: job.name.clone(),
                results,
            })
            .await;
        }
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

/// The snapshot's entries as a stream, without its end-of-archive blocks (what follows closes
/// the upload).
async fn snapshot_entries(
    tar: &std::path::Path,
) -> std::io::Result<impl Stream<Item = std::io::Result<Bytes>> + Send + 'static> {
    use tokio::io::AsyncReadExt;
    let len = checkouts::entries_len(tar)?;
    let file = tokio::fs::File::open(tar).await?;
    Ok(tokio_util::io::ReaderStream::new(file.take(len)))
}
