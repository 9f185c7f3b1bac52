//! `berth run`, `debug` and `shell`: a pipeline planned, run by the engine, reported and recorded.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use tokio_util::sync::CancellationToken;

use crate::docker::Engine;
use crate::engine::runtime::RuntimeError;
use crate::engine::{self, RunConfig, RunError, Workspace};
use crate::events::{RunInfo, RunStatus, Sink};
use crate::gitlab;
use crate::pipeline::Loaded;
use crate::plan::Plan;
use crate::project::git::Facts;
use crate::project::workspace::{self, Selection};
use crate::report::records::Records;
use crate::report::{json::Json, junit::Junit, plain::Plain, terminal::Terminal, Fanout, Reporter};
use crate::source::Source;
use crate::store::{self, Runs};

use super::args::{Cli, NetworkMode, Output, RunArgs, WorkspaceMode};
use super::exit;
use super::lock::{lock_config, write_lock};
use super::setup::{
    connect_soon, engine_unreachable, load, make_plan, pipeline_context, project_dir, report_failed,
};

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

pub(super) async fn cmd_run(
    cli: &Cli,
    args: &RunArgs,
    mode: RunMode,
    replay: Option<engine::Replay>,
    hostname: Option<String>,
) -> i32 {
    let target = match (mode, args.jobs.as_slice()) {
        (RunMode::Run | RunMode::Lock | RunMode::Verify, _) => None,
        (_, [one]) => Some(one.clone()),
        _ => {
            eprintln!(
                "berth: `berth {}` takes exactly one job",
                if mode == RunMode::Debug {
                    "debug"
                } else {
                    "shell"
                }
            );
            return exit::BAD_INPUT;
        }
    };
    let project = match project_dir(cli) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let engine = connect_soon();
    let (run_id, pipeline_id) = store::new_run_id();
    let (source, mut loaded, context) = match load(cli, &project, &args.origin, pipeline_id) {
        Ok(x) => x,
        Err(code) => return code,
    };
    // Child pipelines run as part of this run.
    if let Err(failed) = gitlab::flatten_children(
        &mut loaded.pipeline,
        &pipeline_context(&context, &args.origin),
    ) {
        return report_failed(&failed, &source);
    }
    // A lock covers manual jobs' images too.
    let plan = match make_plan(&loaded, &args.jobs, args.manual || mode == RunMode::Lock) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let loaded_run = LoadedRun {
        project,
        source,
        loaded,
        plan,
        context,
        run_id,
        engine,
    };
    execute(args, loaded_run, mode, target, replay, hostname).await
}

/// A pipeline read and planned for a run.
pub(super) struct LoadedRun {
    pub(super) project: PathBuf,
    pub(super) source: Source,
    pub(super) loaded: Loaded,
    pub(super) plan: Plan,
    pub(super) context: Facts,
    pub(super) run_id: String,
    /// The engine, connecting while the pipeline was read and planned.
    pub(super) engine: tokio::task::JoinHandle<Result<Engine, RuntimeError>>,
}

/// Run a plan: the engine, the reporters, the run record; `run`, `debug`, `shell`, `replay`
/// and `warm` share it.
pub(super) async fn execute(
    args: &RunArgs,
    run: LoadedRun,
    mode: RunMode,
    target: Option<String>,
    replay: Option<engine::Replay>,
    hostname: Option<String>,
) -> i32 {
    let LoadedRun {
        project,
        source,
        loaded,
        plan,
        context,
        run_id,
        engine,
    } = run;
    // A shell takes the terminal: one job at a time, plain lines around it.
    let interactive = matches!(mode, RunMode::Debug | RunMode::Shell) || args.shell_on_failure;
    let hermetic = if args.hermetic || loaded.pipeline.hermetic || mode == RunMode::Verify {
        let lock = match crate::project::lock::Lockfile::load(&project) {
            Ok(l) => l,
            Err(e) => {
                eprintln!("berth: {e}");
                return exit::BAD_INPUT;
            }
        };
        if lock.is_none() && mode == RunMode::Run {
            eprintln!(
                "berth: a hermetic run uses only locked images, and there is no {}: `berth lock` writes it",
                crate::project::lock::FILE
            );
            return exit::BAD_INPUT;
        }
        // Without a commit, the pipeline file's time stands for the sources' time.
        let epoch = context.commit_epoch.unwrap_or_else(|| {
            std::fs::metadata(&source.path)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map(|d| d.as_secs())
                .unwrap_or(0)
        });
        Some(engine::Hermetic {
            source_date_epoch: epoch,
            lock: lock.map(std::sync::Arc::new),
        })
    } else {
        None
    };
    let engine = match engine.await {
        Ok(Ok(e)) => e,
        Ok(Err(e)) => return engine_unreachable(e),
        Err(e) => return engine_unreachable(RuntimeError::Unreachable(e.to_string())),
    };
    let secrets = match read_secrets(&args.secrets) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("berth: {e}");
            return exit::BAD_INPUT;
        }
    };
    let config_commit = context.commit_sha.clone();
    let (config_branch, config_tag, config_source) = (
        context.branch.clone(),
        context.tag.clone(),
        context.source.clone(),
    );
    let config_dirty = context.dirty;
    let runs = match crate::project::state::check(&project).and_then(|()| Runs::create(&project)) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("berth: {e}");
            return exit::BAD_INPUT;
        }
    };
    for id in runs.settle_abandoned() {
        eprintln!(
            "berth: run {id} ended without finishing its record (its berth is gone); marked {}",
            store::ABANDONED
        );
    }
    if let Err(e) = runs.prune(args.keep_runs.saturating_sub(1)) {
        eprintln!(
            "berth: cannot prune old runs in {}: {e}",
            runs.dir().display()
        );
    }
    if mode == RunMode::Lock {
        let run_dir = runs.path(&run_id);
        let config = lock_config(&project, &source, &loaded, context, run_id, run_dir, args);
        return write_lock(&plan, config, engine, &project).await;
    }
    // The snapshot lives as long as the run: every job unpacks the same tree.
    let snapshot = match args.workspace {
        WorkspaceMode::Mount => None,
        WorkspaceMode::Copy => {
            let tar = match tempfile::Builder::new()
                .prefix("berth-workspace-")
                .suffix(".tar")
                .tempfile()
            {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("berth: cannot create the workspace snapshot: {e}");
                    return exit::DOCKER;
                }
            };
            let prefix = context.container_dir.trim_start_matches('/').to_string();
            let (dir, path) = (project.clone(), tar.path().to_path_buf());
            let written = tokio::task::spawn_blocking(move || {
                workspace::write_tar(&dir, Selection::Checkout, &prefix, &path)
            })
            .await;
            match written {
                Ok(Ok(_)) => Some(tar),
                Ok(Err(e)) => {
                    eprintln!("berth: cannot snapshot {}: {e}", project.display());
                    return exit::BAD_INPUT;
                }
                Err(e) => {
                    eprintln!("berth: cannot snapshot {}: {e}", project.display());
                    return exit::BAD_INPUT;
                }
            }
        }
    };
    // Claimed once nothing before the run can fail, so that no record is left without a
    // manifest; held until the run ends: tells a later berth that it is still being written.
    let (run_id, run_dir, _live) = match runs.claim(run_id) {
        Ok(claimed) => claimed,
        Err(e) => {
            eprintln!("berth: {e}");
            return exit::BAD_INPUT;
        }
    };
    let workspace = match &snapshot {
        Some(t) => Workspace::Copy {
            tar: t.path().to_path_buf(),
        },
        None => Workspace::Mount,
    };
    let config = RunConfig {
        run_id,
        pipeline_name: source.name.clone(),
        jobs_limit: if interactive { 1 } else { args.parallel },
        workspace,
        environment: super::setup::environment(&loaded, &context),
        context,
        overrides: args.origin.env.iter().chain(&secrets).cloned().collect(),
        default_image: args.default_image.clone(),
        run_dir,
        no_cache: args.no_cache,
        python_cache: !args.python.no_python_cache,
        offline: args.python.network == NetworkMode::None,
        service_timeout: args.service_timeout,
        // Only `artifacts: untracked` needs the list of tracked files.
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
        shell_job: if mode == RunMode::Shell {
            target.clone()
        } else {
            None
        },
        replay: replay.map(std::sync::Arc::new),
        hermetic,
        hostname,
        tracked: std::sync::Arc::new(
            if plan
                .jobs
                .iter()
                .any(|j| j.job.artifacts.as_ref().is_some_and(|a| a.untracked))
            {
                git_tracked(&project)
            } else {
                Default::default()
            },
        ),
        info: RunInfo {
            berth_version: env!("CARGO_PKG_VERSION").to_string(),
            engine_version: engine.version().to_string(),
            pipeline_file: source.path.display().to_string(),
            pipeline_sha256: {
                use sha2::{Digest, Sha256};
                hex::encode(Sha256::digest(source.text.as_bytes()))
            },
            commit: config_commit.clone(),
            dirty: config_dirty,
            branch: config_branch,
            tag: config_tag,
            source: config_source,
            started_at: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
        },
    };

    let cancel = CancellationToken::new();
    watch_signals(cancel.clone());
    let hidden = secrets
        .iter()
        .map(|(_, v)| v.clone())
        .chain(masked_values(&plan, &config, &args.masks))
        .collect();
    let (sink, mut rx) = Sink::masking(1024, hidden);
    // berth's own error below is masked as the events are (an image name can hold a secret).
    let mask = sink.mask();
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
        Box::new(Records::new(config.run_dir.clone())) as Box<dyn Reporter>,
    ];
    if let Some(path) = &args.junit {
        reporters.push(Box::new(Junit::new(path.clone())));
    }
    let mut reporter = Fanout(reporters);
    let reporting = tokio::spawn(async move {
        while let Some(event) = rx.recv().await {
            reporter.handle(&event);
        }
    });
    let result = engine::run(&plan, config, Arc::new(engine), sink, cancel.clone()).await;
    let _ = reporting.await;
    drop(snapshot);
    match result {
        Ok(r) => match r.status {
            RunStatus::Passed => exit::OK,
            RunStatus::Failed => exit::JOB_FAILED,
            RunStatus::Error => exit::DOCKER,
            RunStatus::Interrupted => exit::INTERRUPTED,
        },
        Err(e) => {
            eprintln!("berth: {}", mask.masked(&e.to_string()));
            if cancel.is_cancelled() {
                exit::INTERRUPTED
            } else {
                match e {
                    RunError::Host { .. } | RunError::Image { .. } | RunError::Runtime(_) => {
                        exit::DOCKER
                    }
                    RunError::Lock(_) | RunError::Input(_) => exit::BAD_INPUT,
                }
            }
        }
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
