//! A job of steps (GitHub's) in its container: the container only stays up, and each command
//! the job's format asks for runs in it as a process of its own, one after another, its output
//! in the job's log under the step's name. Between two commands the format reads what the last
//! one wrote (outputs, environment) and decides the next; the engine knows none of it.
//!
//! A command may ask for a container of its own (GitHub's Docker actions): a fresh one of its
//! image in the job container's network namespace, mounting the job's workspace, which such
//! a job keeps in a volume of its own (see `prepare`). A volume rather than copying the
//! workspace in and back: on a 55 MB workspace of 2,000 files a job with one such step took
//! 25-33 s with the copies, 9-11 s with the volume, as long as with a `run:` step instead.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::job::{log, Ended};
use super::output::pump_filtered;
use super::runtime::{ContainerOptions, ContainerSpec, ExecSpec, Mount};
use super::{PreparedJob, Shared};
use crate::events::Sink;
use crate::pipeline::steps::{self, Command, NeedResult, Steps};

/// What the container runs meanwhile: nothing, until it is killed.
pub(super) fn keep_alive() -> Vec<String> {
    [
        "/bin/sh",
        "-c",
        "trap 'exit 0' TERM INT; while :; do sleep 3600 & wait $!; done",
    ]
    .map(String::from)
    .to_vec()
}

/// The most berth reads back of a file a step wrote (`$GITHUB_OUTPUT` and the like).
const FILE_LIMIT: usize = 4 << 20;

/// Run the job's steps in the started container `id`; the job passed when its steps say so.
pub(super) async fn run(
    job: &PreparedJob,
    shared: &Shared,
    sink: &Sink,
    cancel: &CancellationToken,
    id: &str,
    program: &dyn Steps,
    needs: &[NeedResult],
) -> Ended {
    let engine = &*shared.engine;
    let mut run = program.start(steps::Start {
        env: super::job::with_dotenv(job, shared),
        needs: needs.to_vec(),
        cancelled: cancel.is_cancelled(),
        project_dir: Some(shared.config.context.project_dir.clone()),
    });
    let deadline = tokio::time::Instant::now() + job.timeout;
    let mut commands = 0;
    // The run's sink, also hiding what the job's steps asked to mask (`::add-mask::`).
    let mut job_sink = sink.clone();
    loop {
        let sink = &job_sink;
        let command = match run.next() {
            Ok(Some(command)) => command,
            Ok(None) => break,
            Err(why) => {
                log(sink, &job.name, why.clone()).await;
                return Ended::Refused(why);
            }
        };
        log(sink, &job.name, format!("▶ {}", command.name)).await;
        if let Some(container) = &command.container {
            commands += 1;
            let now = tokio::time::Instant::now();
            let step_limit = command.timeout.filter(|t| now + *t < deadline);
            let own = OwnContainer {
                job_container: id,
                container,
                number: commands,
                limit: step_limit.map_or(deadline, |t| now + t),
                step_limit,
            };
            let filter = run.output_filter();
            match in_own_container(job, shared, sink, cancel, &command, &own, filter).await {
                Ok((ended, masks)) => {
                    if !masks.is_empty() {
                        job_sink = job_sink.also_masking(&masks);
                    }
                    run.finished(ended);
                    if cancel.is_cancelled() {
                        run.cancel();
                    }
                    continue;
                }
                Err(ended) => return ended,
            }
        }
        if !command.files.is_empty() {
            let tar = match files_tar(&command) {
                Ok(tar) => tar,
                Err(e) => return Ended::Refused(format!("step `{}`: {e}", command.name)),
            };
            if let Err(e) = engine.upload_tar_bytes(id, "/", tar).await {
                return Ended::Broken(e);
            }
        }
        if let Some(operation) = &command.operation {
            let report = tokio::select! {
                report = super::operations::perform(job, shared, sink, id, operation) => report,
                _ = tokio::time::sleep_until(deadline) => return Ended::TimedOut(job.timeout),
                _ = cancel.cancelled() => return Ended::Cancelled,
            };
            run.finished(steps::Ended {
                operation: Some(report),
                ..steps::Ended::default()
            });
            if cancel.is_cancelled() {
                run.cancel();
            }
            continue;
        }
        // The step's own `timeout-minutes` when it ends before the job's.
        let now = tokio::time::Instant::now();
        let step_limit = command.timeout.filter(|t| now + *t < deadline);
        let limit = step_limit.map_or(deadline, |t| now + t);
        commands += 1;
        let pid_file = match step_limit {
            Some(_) => match record_pid_dir(engine, id).await {
                Ok(()) => Some(format!("{PID_DIR}/{commands}.pid")),
                Err(e) => return Ended::Broken(e),
            },
            None => None,
        };
        let spec = ExecSpec {
            argv: match &pid_file {
                Some(file) => recording_pid(file, &command.argv),
                None => command.argv.clone(),
            },
            env: command.env.clone(),
            working_dir: command.working_dir.clone(),
        };
        let (exec, output) = match engine.exec(id, &spec).await {
            Ok(started) => started,
            Err(e) => return Ended::Broken(e),
        };
        let stopped = CancellationToken::new();
        let mut pump = tokio::spawn(pump_filtered(
            output,
            job.name.clone(),
            sink.clone(),
            stopped.clone(),
            run.output_filter(),
        ));
        // A step that runs out of its own time is stopped alone (its process group, through
        // a second process); the job's time running out, or a cancelled run, ends the job's
        // container.
        let mut timed_out = false;
        let mut masks = Vec::new();
        let ended = tokio::select! {
            pumped = &mut pump => {
                if let Ok((pumped, _)) = pumped {
                    masks = pumped.finish(&job.name, sink).await;
                }
                None
            }
            _ = tokio::time::sleep_until(limit) => match (step_limit, &pid_file) {
                (Some(t), Some(file)) => {
                    let message = format!(
                        "step `{}` timed out after {}",
                        command.name,
                        crate::units::duration(t)
                    );
                    log(sink, &job.name, message).await;
                    let stopped = stop_step(engine, id, file, &mut pump, &job.name, sink).await;
                    timed_out = stopped.is_some();
                    masks = stopped.unwrap_or_default();
                    (!timed_out).then_some(Ended::TimedOut(t))
                }
                _ => Some(Ended::TimedOut(job.timeout)),
            },
            _ = cancel.cancelled() => Some(Ended::Cancelled),
        };
        if let Some(ended) = ended {
            let _ = engine.kill(id).await;
            stopped.cancel();
            if let Ok((pumped, _)) = pump.await {
                pumped.finish(&job.name, sink).await;
            }
            return ended;
        }
        if !masks.is_empty() {
            job_sink = job_sink.also_masking(&masks);
        }
        let sink = &job_sink;
        let exit_code = match exit_code(engine, &exec).await {
            Ok(code) => code,
            Err(e) => return Ended::Broken(e),
        };
        let mut files = Vec::new();
        for (path, read) in read_step_files(engine, id, &command.collect).await {
            match read {
                Ok(Some(text)) => files.push((path.clone(), text)),
                // A file the step removed is as good as empty.
                Ok(None) => {}
                Err(why) => {
                    let message =
                        format!("step `{}`: {path} {why}: berth ignores it", command.name);
                    log(sink, &job.name, message).await;
                }
            }
        }
        run.finished(steps::Ended {
            exit_code,
            timed_out,
            files,
            operation: None,
        });
        if cancel.is_cancelled() {
            run.cancel();
        }
    }
    let sink = &job_sink;
    let outcome = run.outcome();
    log_annotations(sink, &job.name, &outcome.annotations).await;
    for (step, summary) in &outcome.summaries {
        log(sink, &job.name, format!("Summary of `{step}`:")).await;
        for line in summary.lines() {
            log(sink, &job.name, line.to_string()).await;
        }
    }
    if let Some(message) = &outcome.message {
        log(sink, &job.name, message.clone()).await;
    }
    shared
        .step_outputs
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(job.index, outcome.outputs.clone());
    match (outcome.success, outcome.message) {
        (true, _) => Ended::Exited(0),
        (false, Some(message)) if outcome.environment_error => {
            Ended::Unrunnable(sink.mask().masked(&message))
        }
        (false, _) => Ended::Exited(1),
    }
}

/// A command's own container, and where it stands in its job.
struct OwnContainer<'a> {
    job_container: &'a str,
    container: &'a steps::StepContainer,
    /// The job's how-manieth command it is (names its container).
    number: usize,
    /// When it must have ended: its own `timeout` (`step_limit`) or the job's.
    limit: tokio::time::Instant,
    step_limit: Option<Duration>,
}

/// Run `command` in a fresh container of its own (a Docker action, a `docker://` step): in the
/// job container's network namespace (its services answer as they do there), with the job's
/// workspace (the volume it is in, or the mounted project) at the step's workspace, its files
/// written before and read after. The container is removed however it ends. `Err`: the job
/// ends so (cancelled, out of time, the engine failed).
async fn in_own_container(
    job: &PreparedJob,
    shared: &Shared,
    sink: &Sink,
    cancel: &CancellationToken,
    command: &Command,
    own: &OwnContainer<'_>,
    filter: Option<Box<dyn steps::OutputFilter>>,
) -> Result<(steps::Ended, Vec<String>), Ended> {
    let engine = &*shared.engine;
    let config = &shared.config;
    let sc = own.container;
    // Both containers mount one workspace, as on GitHub: what either writes the other sees,
    // with nothing copied.
    let mut options = ContainerOptions::default();
    let mut binds = Vec::new();
    match &config.workspace {
        super::Workspace::Mount => binds.push(format!(
            "{}:{}",
            config.context.project_dir.display(),
            sc.workspace
        )),
        super::Workspace::Copy { .. } => {
            let volume = job.container.mounts.iter().find_map(|m| match m {
                Mount::Volume { name, target, .. } if *target == sc.job_workspace => Some(name),
                _ => None,
            });
            let Some(volume) = volume else {
                return Err(Ended::Refused(format!(
                    "step `{}`: the job's workspace is not in a volume its step's container can mount",
                    command.name
                )));
            };
            options.mounts.push(Mount::Volume {
                name: volume.clone(),
                target: sc.workspace.clone(),
                read_only: false,
            });
        }
    }
    let short = &own.job_container[..own.job_container.len().min(12)];
    let spec = ContainerSpec {
        name: format!(
            "berth-{}-{}-step{}-{short}",
            config.run_id, job.index, own.number
        ),
        image: sc.image.clone(),
        entrypoint: sc.entrypoint.clone().map(|e| vec![e]),
        cmd: command.argv.clone(),
        env: command.env.clone(),
        working_dir: command
            .working_dir
            .clone()
            .unwrap_or_else(|| sc.workspace.clone()),
        labels: super::job::job_labels(job, shared),
        binds,
        network: Some(format!("container:{}", own.job_container)),
        options,
        ..ContainerSpec::default()
    };
    let step_id = engine
        .create_container(&spec)
        .await
        .map_err(Ended::Broken)?;
    let ended = tokio::select! {
        ended = drive_own(job, shared, sink, command, own, &step_id, filter) => ended,
        _ = cancel.cancelled() => Err(Ended::Cancelled),
    };
    // Removed however the step ended (the run's sweep finds it by its labels otherwise).
    if let Err(e) = engine.remove_container(&step_id).await {
        let message = format!(
            "step `{}`: its container cannot be removed: {e}",
            command.name
        );
        log(sink, &job.name, message).await;
    }
    ended
}

/// [`in_own_container`] from its created container `step_id` to its files read back.
#[allow(clippy::too_many_arguments)]
async fn drive_own(
    job: &PreparedJob,
    shared: &Shared,
    sink: &Sink,
    command: &Command,
    own: &OwnContainer<'_>,
    step_id: &str,
    filter: Option<Box<dyn steps::OutputFilter>>,
) -> Result<(steps::Ended, Vec<String>), Ended> {
    let engine = &*shared.engine;
    if !command.files.is_empty() {
        let tar = files_tar(command)
            .map_err(|e| Ended::Refused(format!("step `{}`: {e}", command.name)))?;
        engine
            .upload_tar_bytes(step_id, "/", tar)
            .await
            .map_err(Ended::Broken)?;
    }
    engine.start(step_id).await.map_err(Ended::Broken)?;
    let stopped = CancellationToken::new();
    let pump = tokio::spawn(pump_filtered(
        engine.output(step_id),
        job.name.clone(),
        sink.clone(),
        stopped.clone(),
        filter,
    ));
    let (exit_code, timed_out) = tokio::select! {
        code = engine.wait(step_id) => (code.map_err(Ended::Broken)?, false),
        _ = tokio::time::sleep_until(own.limit) => {
            let Some(t) = own.step_limit else {
                return Err(Ended::TimedOut(job.timeout));
            };
            let message = format!(
                "step `{}` timed out after {}",
                command.name,
                crate::units::duration(t)
            );
            log(sink, &job.name, message).await;
            let _ = engine.kill(step_id).await;
            (-1, true)
        }
    };
    // Stopped: its log ends after the last line the engine has.
    let masks = match tokio::time::timeout(STOP_GRACE, pump).await {
        Ok(Ok((pumped, _))) => pumped.finish(&job.name, sink).await,
        _ => {
            stopped.cancel();
            Vec::new()
        }
    };
    let mut files = Vec::new();
    for (path, read) in read_step_files(engine, step_id, &command.collect).await {
        match read {
            Ok(Some(text)) => files.push((path, text)),
            Ok(None) => {}
            Err(why) => {
                let message = format!("step `{}`: {path} {why}: berth ignores it", command.name);
                log(sink, &job.name, message).await;
            }
        }
    }
    let ended = steps::Ended {
        exit_code,
        timed_out,
        files,
        operation: None,
    };
    Ok((ended, masks))
}

/// Where a step with a timeout of its own records its process id (its process group's: the
/// engine starts each process in a session of its own).
const PID_DIR: &str = "/berth/engine";

/// How long a step that ran out of time has, once asked to stop (SIGTERM), before it is
/// killed (SIGKILL); and how long it then has to end before its job's container is.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// `argv` run by a shell that first writes its process id to `file` (a shell that cannot
/// write it runs the step all the same; it cannot then be stopped alone).
fn recording_pid(file: &str, argv: &[String]) -> Vec<String> {
    let mut wrapped = vec![
        "/bin/sh".to_string(),
        "-c".to_string(),
        format!("{{ echo $$ > {file}; }} 2>/dev/null; exec \"$@\""),
        "berth-step".to_string(),
    ];
    wrapped.extend_from_slice(argv);
    wrapped
}

/// The folder of [`PID_DIR`], writable by whatever user the image runs steps as.
async fn record_pid_dir(
    engine: &dyn super::runtime::ContainerRuntime,
    container: &str,
) -> Result<(), super::runtime::RuntimeError> {
    let mut tar = tar::Builder::new(Vec::new());
    for dir in ["berth", PID_DIR.trim_start_matches('/')] {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Directory);
        header.set_mode(0o777);
        header.set_size(0);
        tar.append_data(&mut header, dir, std::io::empty())
            .map_err(|e| super::runtime::RuntimeError::Api(e.to_string()))?;
    }
    let tar = tar
        .into_inner()
        .map_err(|e| super::runtime::RuntimeError::Api(e.to_string()))?;
    engine.upload_tar_bytes(container, "/", tar).await
}

/// Stop the step whose process id is in `pid_file`: SIGTERM to its process group, SIGKILL
/// after [`STOP_GRACE`], each through a process of its own. When its output ended (the step
/// is over), the values it asked to mask; `None` when it could not be stopped so (its job's
/// container must be).
async fn stop_step(
    engine: &dyn super::runtime::ContainerRuntime,
    container: &str,
    pid_file: &str,
    pump: &mut tokio::task::JoinHandle<(super::output::Pumped, super::output::Read)>,
    job: &str,
    sink: &Sink,
) -> Option<Vec<String>> {
    for signal in ["TERM", "KILL"] {
        let script = format!("p=$(cat {pid_file}) && [ -n \"$p\" ] && kill -{signal} -\"$p\"");
        let spec = ExecSpec {
            argv: ["/bin/sh", "-c", &script].map(String::from).to_vec(),
            ..ExecSpec::default()
        };
        let signalled = match engine.exec(container, &spec).await {
            Ok((exec, output)) => {
                use futures_util::StreamExt;
                output.for_each(|_| async {}).await;
                matches!(exit_code(engine, &exec).await, Ok(0))
            }
            Err(_) => false,
        };
        if !signalled {
            return None;
        }
        if let Ok(pumped) = tokio::time::timeout(STOP_GRACE, &mut *pump).await {
            return Some(match pumped {
                Ok((pumped, _)) => pumped.finish(job, sink).await,
                Err(_) => Vec::new(),
            });
        }
    }
    None
}

/// The annotations the steps made (GitHub's `::error::` and the like), at the job's end.
async fn log_annotations(sink: &Sink, job: &str, annotations: &[String]) {
    if annotations.is_empty() {
        return;
    }
    log(sink, job, format!("Annotations ({}):", annotations.len())).await;
    for annotation in annotations {
        for line in annotation.lines() {
            log(sink, job, format!("  {line}")).await;
        }
    }
}

/// A file a step wrote, read back: `None` when it is not there (the engine cannot give it);
/// `Err` when it is larger than [`FILE_LIMIT`]. Bytes that are not UTF-8 are replaced, as the
/// runner reads these files as UTF-8, rather than losing every line of the file.
/// The files of `paths` that exist, with their content: the files of one directory (a step's
/// `$GITHUB_OUTPUT`, `$GITHUB_ENV`...) in one download of it, the others alone.
async fn read_step_files(
    engine: &dyn super::runtime::ContainerRuntime,
    container: &str,
    paths: &[String],
) -> Vec<(String, Result<Option<String>, String>)> {
    let parent = |p: &str| p.rsplit_once('/').map(|(d, _)| d.to_string());
    let dir = parent(paths.first().map(String::as_str).unwrap_or_default());
    let together = paths.len() > 1 && dir.is_some() && paths.iter().all(|p| parent(p) == dir);
    if let (true, Some(dir)) = (together, dir) {
        if let Some(read) = read_dir_files(engine, container, &dir, paths).await {
            return read;
        }
    }
    let mut out = Vec::new();
    for path in paths {
        out.push((path.clone(), read_step_file(engine, container, path).await));
    }
    out
}

/// [`read_step_files`] for files of `dir`, in one download of it; `None` when that download
/// is too large (then each is read alone, and the large one named).
async fn read_dir_files(
    engine: &dyn super::runtime::ContainerRuntime,
    container: &str,
    dir: &str,
    paths: &[String],
) -> Option<Vec<(String, Result<Option<String>, String>)>> {
    use futures_util::TryStreamExt;
    use std::io::Read;
    let limit = paths.len() * FILE_LIMIT + 64 * 1024;
    let mut tar_bytes = Vec::new();
    let mut stream = engine.download(container, dir);
    loop {
        match stream.try_next().await {
            Ok(Some(chunk)) => tar_bytes.extend_from_slice(&chunk),
            Ok(None) => break,
            Err(_) => return None,
        }
        if tar_bytes.len() > limit {
            return None;
        }
    }
    let mut found: Vec<(String, Result<Option<String>, String>)> = Vec::new();
    let mut archive = tar::Archive::new(&tar_bytes[..]);
    for entry in archive.entries().ok()? {
        let mut entry = entry.ok()?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        // Entries start with the directory's own name.
        let name = entry.path().ok()?.to_string_lossy().into_owned();
        let Some((_, rest)) = name.split_once('/') else {
            continue;
        };
        let path = format!("{dir}/{rest}");
        if !paths.contains(&path) {
            continue;
        }
        if entry.size() > FILE_LIMIT as u64 {
            return None;
        }
        let mut bytes = Vec::new();
        let read = match entry.read_to_end(&mut bytes) {
            Ok(_) => Ok(Some(String::from_utf8_lossy(&bytes).into_owned())),
            Err(e) => Err(format!("cannot be read: {e}")),
        };
        found.push((path, read));
    }
    // In the order asked for; a file the step removed is absent.
    Some(
        paths
            .iter()
            .map(|p| match found.iter().position(|(f, _)| f == p) {
                Some(i) => found.swap_remove(i),
                None => (p.clone(), Ok(None)),
            })
            .collect(),
    )
}

async fn read_step_file(
    engine: &dyn super::runtime::ContainerRuntime,
    container: &str,
    path: &str,
) -> Result<Option<String>, String> {
    use futures_util::TryStreamExt;
    use std::io::Read;
    let too_large = || format!("is larger than {}", crate::units::bytes(FILE_LIMIT as u64));
    let mut tar_bytes = Vec::new();
    let mut stream = engine.download(container, path);
    loop {
        match stream.try_next().await {
            Ok(Some(chunk)) => tar_bytes.extend_from_slice(&chunk),
            Ok(None) => break,
            Err(_) => return Ok(None),
        }
        if tar_bytes.len() > FILE_LIMIT + 64 * 1024 {
            return Err(too_large());
        }
    }
    let mut archive = tar::Archive::new(&tar_bytes[..]);
    let mut bytes = Vec::new();
    let entry = archive.entries().ok().and_then(|mut e| e.next());
    if let Some(Ok(mut entry)) = entry {
        if entry.size() > FILE_LIMIT as u64 {
            return Err(too_large());
        }
        entry
            .read_to_end(&mut bytes)
            .map_err(|e| format!("cannot be read: {e}"))?;
    }
    Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
}

/// The exit code of a process whose output has ended: engines may take a moment to know it.
pub(super) async fn exit_code(
    engine: &dyn super::runtime::ContainerRuntime,
    exec: &str,
) -> Result<i64, super::runtime::RuntimeError> {
    for _ in 0..50 {
        if let Some(code) = engine.exec_exit_code(exec).await? {
            return Ok(code);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Err(super::runtime::RuntimeError::Api(
        "the step's process ended its output but not its run".into(),
    ))
}

/// The command's files as a tar to unpack at `/`, with their folders.
fn files_tar(command: &Command) -> std::io::Result<Vec<u8>> {
    let mut tar = tar::Builder::new(Vec::new());
    let mut dirs = std::collections::BTreeSet::new();
    // A path ending in `/` is a folder to make (a step's own container's `HOME`).
    let named = command.files.iter().map(|(p, _)| p);
    for path in named.chain(command.blobs.iter().map(|(p, _)| p)) {
        let rel: std::path::PathBuf = std::path::Path::new(path.trim_start_matches('/'))
            .components()
            .collect();
        let skip = if path.ends_with('/') { 0 } else { 1 };
        for dir in rel.ancestors().skip(skip) {
            if !dir.as_os_str().is_empty() {
                dirs.insert(dir.to_path_buf());
            }
        }
    }
    for dir in &dirs {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Directory);
        header.set_mode(0o777);
        header.set_size(0);
        tar.append_data(&mut header, dir, std::io::empty())?;
    }
    let texts = command.files.iter().map(|(p, c)| (p, c.as_bytes()));
    let blobs = command.blobs.iter().map(|(p, c)| (p, c.as_slice()));
    for (path, content) in texts.chain(blobs).filter(|(p, _)| !p.ends_with('/')) {
        let mut header = tar::Header::new_gnu();
        header.set_mode(0o755);
        header.set_size(content.len() as u64);
        tar.append_data(&mut header, path.trim_start_matches('/'), content)?;
    }
    tar.into_inner()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_come_with_their_folders() {
        let command = Command {
            name: "s".into(),
            files: vec![
                ("/berth/github/1.sh".into(), "echo hi\n".into()),
                ("/berth/github/temp/.berth".into(), String::new()),
                ("/github/home/".into(), String::new()),
            ],
            argv: vec![],
            env: vec![],
            working_dir: None,
            timeout: None,
            collect: vec![],
            operation: None,
            container: None,
            blobs: vec![("/berth/actions/abc/logo.png".into(), vec![0x89, 0xff, 0])],
        };
        let tar = files_tar(&command).unwrap();
        let names = crate::engine::tar_entry_names(&tar);
        assert_eq!(
            names,
            [
                "berth",
                "berth/actions",
                "berth/actions/abc",
                "berth/github",
                "berth/github/temp",
                "github",
                "github/home",
                "berth/github/1.sh",
                "berth/github/temp/.berth",
                "berth/actions/abc/logo.png"
            ]
        );
    }
}
