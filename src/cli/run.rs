//! `berth run`, `debug` and `shell`: a pipeline planned, run by the engine, reported and recorded.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use tempfile::NamedTempFile;
use tokio_util::sync::CancellationToken;

use crate::docker::Engine;
use crate::engine::{self, RunConfig, RunError, Workspace};
use crate::events::{RunInfo, RunStatus, Sink};
use crate::plan::Plan;
use crate::project::lock::{self, Lockfile};
use crate::project::workspace::{self, Selection};
use crate::report::records::Records;
use crate::report::{json::Json, junit::Junit, plain::Plain, terminal::Terminal};
use crate::report::{Fanout, ReportError, Reporter};
use crate::store::record::PipelineFile;
use crate::store::{self, Runs};

use super::args::{Cli, NetworkMode, Output, RunArgs, WorkspaceMode};
use super::exit;
use super::lock::write_lock;
use super::setup::{connected, Connecting, LoadedRun, Planning};
use super::CliError;

/// What `run`, `debug`, `shell`, `lock` and `verify` ask of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RunMode {
    Run,
    Debug,
    Shell,
    /// Resolve every image and write berth.lock; nothing runs.
    Lock,
    /// One of `berth verify`'s two runs: hermetic, with a lock if there is one.
    Verify,
}

/// What a command asks of a run beyond its arguments.
pub(super) struct Launch {
    pub(super) mode: RunMode,
    /// `berth debug JOB` and `berth shell JOB`: the job.
    pub(super) target: Option<String>,
    /// `berth replay`: the recorded environments and images.
    pub(super) replay: Option<engine::Replay>,
    /// `berth verify`: the containers' hostname.
    pub(super) hostname: Option<String>,
}

impl Launch {
    /// A plain run of the plan.
    pub(super) fn run() -> Launch {
        Launch {
            mode: RunMode::Run,
            target: None,
            replay: None,
            hostname: None,
        }
    }
}

pub(super) async fn cmd_run(
    cli: &Cli,
    args: &RunArgs,
    mode: RunMode,
    replay: Option<engine::Replay>,
    hostname: Option<String>,
) -> Result<(), CliError> {
    let target = match (mode, args.jobs.as_slice()) {
        (RunMode::Run | RunMode::Lock | RunMode::Verify, _) => None,
        (_, [one]) => Some(one.clone()),
        _ => {
            return Err(CliError::input(format!(
                "`berth {}` takes exactly one job",
                if mode == RunMode::Debug {
                    "debug"
                } else {
                    "shell"
                }
            )))
        }
    };
    let secrets = read_secrets(&args.secrets).map_err(CliError::Input)?;
    let planning = Planning {
        jobs: &args.jobs,
        // A lock covers manual jobs' images too.
        manual: args.manual || mode == RunMode::Lock,
        // Child pipelines run as part of this run.
        children: true,
    };
    let Some((run, engine)) = LoadedRun::read(cli, &args.origin, secrets, planning)? else {
        return Ok(());
    };
    let launch = Launch {
        mode,
        target,
        replay,
        hostname,
    };
    execute(args, run, engine, launch).await
}

/// Run a plan: the engine, the reporters, the run record; `run`, `debug`, `shell`, `replay`
/// and `warm` share it, and `lock` up to its images.
pub(super) async fn execute(
    args: &RunArgs,
    run: LoadedRun,
    engine: Connecting,
    launch: Launch,
) -> Result<(), CliError> {
    let hermetic = hermetic(args, &run, launch.mode)?;
    let engine = connected(engine).await?;
    let secrets = run.secrets.clone();
    // Read before the store is pruned, which then keeps the record taken from.
    let taken = match &args.from_run {
        Some(given) if launch.mode != RunMode::Lock => Some(super::reuse::read(
            &run.project,
            given,
            &run.plan,
            &args.jobs,
        )?),
        _ => None,
    };
    let runs = open_store(
        &run.project,
        args.keep_runs,
        taken.as_ref().map(|t| t.run_id.as_str()),
    )?;
    if launch.mode == RunMode::Lock {
        let setup = Setup::lock(&run.run_id, &runs, &engine);
        let config = run_config(&run, args, launch, setup);
        return write_lock(&run.plan, &run.loaded.pins, config, engine, &run.project).await;
    }
    // The snapshot lives as long as the run: every job unpacks the same tree.
    let snapshot = snapshot(args.workspace, &run).await?;
    // Claimed once nothing before the run can fail, so that no record is left without a
    // manifest; held until the run ends: tells a later berth that it is still being written.
    let (run_id, run_dir, _live) = runs.claim(run.run_id.clone())?;
    let reused = match taken {
        Some(t) => Some(std::sync::Arc::new(t.into_run(&run_dir)?)),
        None => None,
    };
    let setup = Setup {
        reused,
        run_id,
        run_dir,
        workspace: match &snapshot {
            Some(t) => Workspace::Copy {
                tar: t.path().to_path_buf(),
            },
            None => Workspace::Mount,
        },
        secrets: &secrets,
        hermetic,
        engine_version: engine.version().to_string(),
    };
    let interactive = interactive(args, launch.mode);
    let config = run_config(&run, args, launch, setup);
    let ended = run_reported(args, &run.plan, config, engine, &secrets, interactive).await;
    drop(snapshot);
    ended
}

/// A shell takes the terminal: one job at a time, plain lines around it.
fn interactive(args: &RunArgs, mode: RunMode) -> bool {
    matches!(mode, RunMode::Debug | RunMode::Shell) || args.shell_on_failure
}

/// `--hermetic` (or the pipeline's own, or `berth verify`): locked images at a fixed time.
fn hermetic(
    args: &RunArgs,
    run: &LoadedRun,
    mode: RunMode,
) -> Result<Option<engine::Hermetic>, CliError> {
    if !(args.hermetic || run.loaded.pipeline.hermetic || mode == RunMode::Verify) {
        return Ok(None);
    }
    let lock = Lockfile::load(&run.project).map_err(CliError::Input)?;
    if lock.is_none() && mode == RunMode::Run {
        return Err(CliError::input(format!(
            "a hermetic run uses only locked images, and there is no {}: `berth lock` writes it",
            lock::FILE
        )));
    }
    // A hermetic run takes each remote action at the commit the lock pins, and only so.
    if let Some(lock) = &lock {
        for (uses, commit) in &run.loaded.pins {
            if let Some(repo_ref) = crate::github::actions::repo_ref(uses) {
                lock.check_action(&repo_ref, commit)
                    .map_err(CliError::Input)?;
            }
        }
    }
    // Without a commit, the pipeline file's time stands for the sources' time.
    let epoch = run.context.commit_epoch.unwrap_or_else(|| {
        std::fs::metadata(&run.source.path)
            .and_then(|m| m.modified())
            .map(crate::units::epoch_secs)
            .unwrap_or(0)
    });
    Ok(Some(engine::Hermetic {
        source_date_epoch: epoch,
        lock: lock.map(std::sync::Arc::new),
    }))
}

/// The project's run store, tidied before a run: records whose berth is gone are marked so,
/// and the oldest pruned to make room for this one.
fn open_store(project: &Path, keep: usize, protect: Option<&str>) -> Result<Runs, CliError> {
    crate::project::state::check(project)?;
    let runs = Runs::create(project)?;
    for id in runs.settle_abandoned() {
        eprintln!(
            "berth: run {id} ended without finishing its record (its berth is gone); marked {}",
            store::ABANDONED
        );
    }
    if let Err(e) = runs.prune(keep.saturating_sub(1), protect) {
        eprintln!(
            "berth: cannot prune old runs in {}: {e}",
            runs.dir().display()
        );
    }
    Ok(runs)
}

/// `--workspace copy`: the project's checkout as one tar, made before the run.
async fn snapshot(mode: WorkspaceMode, run: &LoadedRun) -> Result<Option<NamedTempFile>, CliError> {
    if mode == WorkspaceMode::Mount {
        return Ok(None);
    }
    let tar = tempfile::Builder::new()
        .prefix("berth-workspace-")
        .suffix(".tar")
        .tempfile()
        .map_err(|e| CliError::engine(format!("cannot create the workspace snapshot: {e}")))?;
    let prefix = run
        .context
        .container_dir
        .trim_start_matches('/')
        .to_string();
    // GitLab Runner's helper checks out under umask 0000 unless the pipeline's variables
    // turn that off (a job's own variable changes only its `.git`).
    let disabled = run
        .loaded
        .pipeline
        .variables
        .iter()
        .rev()
        .find(|v| v.name == "FF_DISABLE_UMASK_FOR_DOCKER_EXECUTOR")
        .map(|v| v.value.as_str());
    let selection = match run.loaded.format {
        crate::pipeline::Format::GitLab if !crate::gitlab::variables::umask_disabled(disabled) => {
            Selection::RunnerCheckout
        }
        _ => Selection::Checkout,
    };
    let (dir, path) = (run.project.clone(), tar.path().to_path_buf());
    let written = tokio::task::spawn_blocking(move || {
        workspace::write_tar(&dir, selection, &prefix, &path).map(|_| ())
    })
    .await
    .map_err(|e| e.to_string())
    .and_then(|w| w.map_err(|e| e.to_string()));
    match written {
        Ok(()) => Ok(Some(tar)),
        Err(e) => Err(CliError::input(format!(
            "cannot snapshot {}: {e}",
            run.project.display()
        ))),
    }
}

/// What a run has beyond its pipeline and arguments: its record, workspace, secrets and
/// hermetic settings. `berth lock` runs nothing and has none of them.
struct Setup<'a> {
    run_id: String,
    run_dir: PathBuf,
    workspace: Workspace,
    secrets: &'a [(String, String)],
    hermetic: Option<engine::Hermetic>,
    engine_version: String,
    /// `--from-run`: what the recorded run's jobs produced.
    reused: Option<std::sync::Arc<engine::Reused>>,
}

impl Setup<'_> {
    /// `berth lock`: the record's place, never claimed (nothing is recorded).
    fn lock(run_id: &str, runs: &Runs, engine: &Engine) -> Setup<'static> {
        Setup {
            run_id: run_id.to_string(),
            run_dir: runs.path(run_id),
            workspace: Workspace::Mount,
            secrets: &[],
            hermetic: None,
            engine_version: engine.version().to_string(),
            reused: None,
        }
    }
}

/// The one place a [`RunConfig`] is made, for a run or for `berth lock`'s images (no
/// workspace, no caches, nothing run).
fn run_config(run: &LoadedRun, args: &RunArgs, launch: Launch, setup: Setup) -> RunConfig {
    let lock = launch.mode == RunMode::Lock;
    let Launch {
        mode,
        target,
        replay,
        hostname,
    } = launch;
    let Setup {
        run_id,
        run_dir,
        workspace,
        secrets,
        hermetic,
        engine_version,
        reused,
    } = setup;
    let context = &run.context;
    RunConfig {
        run_id,
        pipeline_name: run.source.name.clone(),
        jobs_limit: if lock || interactive(args, mode) {
            1
        } else {
            args.parallel
        },
        workspace,
        environment: super::setup::environment(&run.loaded, context),
        context: context.clone(),
        overrides: args.origin.env.iter().chain(secrets).cloned().collect(),
        default_image: args.default_image.clone(),
        run_dir,
        no_cache: lock || args.no_cache,
        python_cache: !lock && !args.python.no_python_cache,
        offline: !lock && args.python.network == NetworkMode::None,
        service_timeout: args.service_timeout,
        debug: match mode {
            RunMode::Debug => Some(engine::debug::Debug {
                job: target.clone(),
                keep: args.keep,
            }),
            RunMode::Run if args.shell_on_failure => Some(engine::debug::Debug {
                job: None,
                keep: args.keep,
            }),
            _ => None,
        },
        shell_job: target.filter(|_| mode == RunMode::Shell),
        replay: replay.map(std::sync::Arc::new),
        reused,
        hermetic,
        hostname,
        // Only `artifacts: untracked` needs the list of tracked files.
        tracked: std::sync::Arc::new(
            if !lock
                && run
                    .plan
                    .jobs
                    .iter()
                    .any(|j| j.job.artifacts.as_ref().is_some_and(|a| a.untracked))
            {
                git_tracked(&run.project)
            } else {
                Default::default()
            },
        ),
        info: RunInfo {
            berth_version: env!("CARGO_PKG_VERSION").to_string(),
            engine_version,
            pipeline_file: run.source.path.display().to_string(),
            pipeline_sha256: {
                use sha2::{Digest, Sha256};
                hex::encode(Sha256::digest(run.source.text.as_bytes()))
            },
            commit: context.commit_sha.clone(),
            dirty: context.dirty,
            branch: context.branch.clone(),
            tag: context.tag.clone(),
            source: context.source.clone(),
            started_at: crate::units::now_secs(),
            files: project_files(&run.project, &run.loaded.sources),
            pins: run
                .loaded
                .pins
                .iter()
                .map(|(uses, commit)| crate::store::record::Pin {
                    uses: uses.clone(),
                    commit: commit.clone(),
                })
                .collect(),
        },
    }
}

/// The pipeline files the run read that are files of the project (not remote includes or
/// templates), with their digests.
fn project_files(
    project: &std::path::Path,
    sources: &crate::source::diag::SourceMap,
) -> Vec<PipelineFile> {
    let mut files: Vec<PipelineFile> = Vec::new();
    for f in sources.files() {
        let path = f.name.trim_start_matches('/').to_string();
        if files.iter().any(|known| known.path == path)
            || crate::store::open_in_record(project, &path).is_err()
        {
            continue;
        }
        let sha256 = PipelineFile::digest(&f.text);
        files.push(PipelineFile { path, sha256 });
    }
    files
}

/// Run the plan, its events masked and fed to the reporters; the run's end as the command's.
async fn run_reported(
    args: &RunArgs,
    plan: &Plan,
    config: RunConfig,
    engine: Engine,
    secrets: &[(String, String)],
    interactive: bool,
) -> Result<(), CliError> {
    let cancel = CancellationToken::new();
    watch_signals(cancel.clone());
    let hidden = secrets
        .iter()
        .map(|(_, v)| v.clone())
        .chain(masked_values(plan, &config, &args.masks))
        .collect();
    let (sink, events) = Sink::masking(1024, hidden);
    // berth's own error below is masked as the events are (an image name can hold a secret).
    let mask = sink.mask();
    let reporting = tokio::spawn(reporters(args, interactive, &config.run_dir).drain(events));
    let result = engine::run(
        plan,
        config,
        std::sync::Arc::new(engine),
        sink,
        cancel.clone(),
    )
    .await;
    if let Ok(unwritten) = reporting.await {
        tell_unwritten(&unwritten);
    }
    match result {
        Ok(r) if r.status == RunStatus::Passed => Ok(()),
        Ok(r) => Err(CliError::Run(r.status)),
        Err(e) => {
            let message = mask.masked(&e.to_string());
            Err(if cancel.is_cancelled() {
                CliError::Interrupted(message)
            } else {
                match e {
                    RunError::Host { .. }
                    | RunError::Image { .. }
                    | RunError::Images(_)
                    | RunError::Runtime(_) => CliError::Engine(message),
                    RunError::Lock(_) | RunError::Input(_) => CliError::Input(message),
                }
            })
        }
    }
}

/// The live view, plain lines or JSON events; the run record; JUnit when asked for.
fn reporters(args: &RunArgs, interactive: bool, run_dir: &Path) -> Fanout {
    let live = match args.output {
        _ if interactive => false,
        Output::Auto => std::io::stderr().is_terminal(),
        Output::Plain | Output::Json => false,
        Output::Terminal => true,
    };
    let display: Box<dyn Reporter> = if args.output == Output::Json {
        Box::new(Json::new(std::io::stdout()))
    } else if live {
        Box::new(Terminal::new(args.verbose))
    } else {
        Box::new(Plain::new(std::io::stderr()))
    };
    let mut reporters = vec![
        display,
        Box::new(Records::new(run_dir.to_path_buf())) as Box<dyn Reporter>,
    ];
    if let Some(path) = &args.junit {
        reporters.push(Box::new(Junit::new(path.clone())));
    }
    Fanout::new(reporters)
}

/// What the reporters could not write, once each, after the run: the jobs ran as reported, so
/// the exit code stays the run's. A reader that went away is not told.
pub(super) fn tell_unwritten(unwritten: &[ReportError]) {
    use std::io::Write;
    for e in unwritten.iter().filter(|e| !e.is_broken_pipe()) {
        // Standard error may be what failed.
        let _ = writeln!(std::io::stderr(), "berth: {e}");
    }
}

/// The name of the variable in which a pipeline file lists the variables to mask (a berth
/// extension: GitLab masks variables in the project's settings, its YAML has no way to).
pub const MASK_LIST: &str = "BERTH_MASK";

/// The values to mask of the variables named by `--mask` or by a job's `BERTH_MASK` (names
/// separated by spaces or commas), as each job that runs would see them.
pub(super) fn masked_values(
    plan: &Plan,
    config: &engine::RunConfig,
    masks: &[String],
) -> Vec<String> {
    let mut values = Vec::new();
    for pj in plan.jobs.iter().filter(|pj| pj.run) {
        let env = config
            .environment
            .job_env(&pj.job, 0, &[], &config.overrides);
        let value_of = |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v);
        let listed = value_of(MASK_LIST).map(|list| mask_names(list));
        for name in masks
            .iter()
            .map(String::as_str)
            .chain(listed.iter().flatten().copied())
        {
            if let Some(v) = value_of(name) {
                if !values.contains(v) {
                    values.push(v.clone());
                }
            }
        }
    }
    values
}

pub(super) fn mask_names(list: &str) -> Vec<&str> {
    list.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|n| !n.is_empty())
        .collect()
}

/// `--secret NAME` (from the environment) or `NAME=@FILE` (from a file) as (name, value).
pub(super) fn read_secrets(specs: &[String]) -> Result<Vec<(String, String)>, String> {
    specs
        .iter()
        .map(|spec| match spec.split_once("=@") {
            Some((name, file)) => std::fs::read_to_string(file)
                .map(|v| {
                    (
                        name.to_string(),
                        v.trim_end_matches(['\n', '\r']).to_string(),
                    )
                })
                .map_err(|e| format!("secret `{name}`: cannot read {file}: {e}")),
            None => std::env::var(spec).map(|v| (spec.clone(), v)).map_err(|_| {
                format!("secret `{spec}` is not set in the environment (or use {spec}=@FILE)")
            }),
        })
        .collect()
}

/// The files git tracks in the project, relative to it (empty outside a repository).
pub(super) fn git_tracked(project: &Path) -> std::collections::HashSet<String> {
    if !crate::project::git::in_git_repo(project) {
        return Default::default();
    }
    std::process::Command::new("git")
        .args(["ls-files", "-z"])
        .current_dir(project)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| {
            o.stdout
                .split(|b| *b == 0)
                .filter(|p| !p.is_empty())
                .map(|p| String::from_utf8_lossy(p).into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// SIGINT or SIGTERM cancels the run; a second one exits at once.
pub(super) fn watch_signals(cancel: CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    tokio::spawn(async move {
        let (Ok(mut int), Ok(mut term)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) else {
            return;
        };
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
        cancel.cancel();
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
        crate::report::terminal::restore_terminal();
        eprintln!("\nberth: interrupted again; exiting without cleanup (run `berth prune`)");
        std::process::exit(exit::INTERRUPTED);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mask_lists_take_spaces_and_commas() {
        assert_eq!(
            mask_names(" API_KEY, DB_PASSWORD\tTOKEN,,"),
            ["API_KEY", "DB_PASSWORD", "TOKEN"]
        );
    }
}
