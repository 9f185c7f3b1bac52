//! What commands start from: the project, its pipeline read and planned, the engine, the runs.

use std::path::{Path, PathBuf};

use crate::docker::Engine;
use crate::engine::runtime::RuntimeError;
use crate::gitlab;
use crate::pipeline::Loaded;
use crate::plan::{self, Plan};
use crate::project::git::Facts;
use crate::source::diag::Severity;
use crate::source::Source;
use crate::store::record;
use crate::store::Runs;

use super::args::{Cli, OriginArgs};
use super::exit;

/// The Docker engine, or exit code 3 with a message that says what to check.
pub(super) async fn connect() -> Result<Engine, i32> {
    Engine::connect().await.map_err(engine_unreachable)
}

/// Start connecting to the engine while the pipeline is read: a good pipeline does not wait for
/// the engine's answer, and a bad one still ends the run (exit 2) before any container exists.
pub(super) fn connect_soon() -> tokio::task::JoinHandle<Result<Engine, RuntimeError>> {
    tokio::spawn(Engine::connect())
}

pub(super) fn engine_unreachable(e: RuntimeError) -> i32 {
    eprintln!("berth: {e}");
    eprintln!("berth: is the Docker engine running? (DOCKER_HOST is used when set)");
    exit::DOCKER
}

/// The project directory and a connected engine, or the exit code that says why not.
pub(super) async fn project_and_engine(cli: &Cli) -> Result<(PathBuf, Engine), i32> {
    let project = project_dir(cli)?;
    let engine = connect().await?;
    Ok((project, engine))
}

pub(super) fn project_dir(cli: &Cli) -> Result<PathBuf, i32> {
    let dir = match &cli.project {
        Some(d) => d.clone(),
        None => std::env::current_dir().map_err(|e| {
            eprintln!("berth: cannot read the current directory: {e}");
            exit::BAD_INPUT
        })?,
    };
    dir.canonicalize().map_err(|e| {
        eprintln!("berth: project directory {}: {e}", dir.display());
        exit::BAD_INPUT
    })
}

/// Find, read and validate the pipeline for its context; print diagnostics. Errors are exit
/// code 2; a pipeline that `workflow: rules` refuse is a message and exit code 0.
pub(super) fn load(
    cli: &Cli,
    project: &Path,
    origin: &OriginArgs,
    pipeline_id: u64,
) -> Result<(Source, Loaded, Facts), i32> {
    let path = match &cli.file {
        Some(f) => f.clone(),
        None => Source::discover(project).ok_or_else(|| {
            eprintln!(
                "berth: no pipeline file in {}: expected berth.yml or .gitlab-ci.yml (or name one with -f)",
                project.display()
            );
            exit::BAD_INPUT
        })?,
    };
    let source = Source::read(&path).map_err(|e| {
        eprintln!("berth: cannot read {}: {e}", path.display());
        exit::BAD_INPUT
    })?;
    let context = Facts::with_origin(project, pipeline_id, &origin.origin());
    match gitlab::load_source(&source, &pipeline_context(&context, origin)) {
        Ok(loaded) => {
            for w in &loaded.warnings {
                eprint!("{}", w.render(&loaded.sources));
            }
            if let Some(why) = &loaded.refused {
                eprintln!(
                    "berth: `workflow: rules` create no pipeline for {} {} (source {}): {why}",
                    if context.tag.is_some() {
                        "tag"
                    } else {
                        "branch"
                    },
                    context.ref_name,
                    context.source
                );
                return Err(exit::OK);
            }
            Ok((source, loaded, context))
        }
        Err(failed) => Err(report_failed(&failed, &source)),
    }
}

/// How the engine builds the environment of a job of this pipeline: GitLab's way.
pub(super) fn environment(
    loaded: &Loaded,
    facts: &Facts,
) -> std::sync::Arc<dyn crate::pipeline::JobEnvironment> {
    std::sync::Arc::new(gitlab::variables::GitLabEnvironment {
        facts: facts.clone(),
        pipeline_variables: loaded.pipeline.variables.clone(),
    })
}

/// What rules, includes and child pipelines see of the run's context.
pub(super) fn pipeline_context(context: &Facts, origin: &OriginArgs) -> gitlab::Scope {
    gitlab::Scope {
        project_dir: context.project_dir.clone(),
        variables: gitlab::variables::predefined(context),
        overrides: origin.env.clone(),
        changes: Some(std::sync::Arc::new(context.changes())),
        files: Default::default(),
    }
}

/// Print every diagnostic of a pipeline that cannot be read; exit code 2.
pub(super) fn report_failed(failed: &crate::pipeline::Failed, source: &Source) -> i32 {
    let errors = failed
        .diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .count();
    for d in &failed.diagnostics {
        eprint!("{}", d.render(&failed.sources));
    }
    eprintln!(
        "berth: {errors} error{} in {}; nothing was started",
        if errors == 1 { "" } else { "s" },
        source.name
    );
    exit::BAD_INPUT
}

pub(super) fn make_plan(loaded: &Loaded, jobs: &[String], manual: bool) -> Result<Plan, i32> {
    plan::plan(&loaded.pipeline, jobs, manual).map_err(|e| {
        eprintln!("berth: {e}");
        exit::BAD_INPUT
    })
}

/// The project's run store, for reading.
pub(super) fn open_runs(cli: &Cli) -> Result<Runs, i32> {
    Runs::open(&project_dir(cli)?).map_err(|e| {
        eprintln!("berth: {e}");
        exit::BAD_INPUT
    })
}

/// The run record a command is about: its id and manifest (default: the latest run).
pub(super) fn load_run(
    cli: &Cli,
    given: Option<&str>,
) -> Result<(PathBuf, String, record::RunManifest), i32> {
    let runs = open_runs(cli)?;
    let run = runs.pick(given).map_err(|e| {
        eprintln!("berth: {e}");
        exit::BAD_INPUT
    })?;
    let manifest = record::RunManifest::load(&runs.path(&run)).map_err(|e| {
        eprintln!("berth: {e}");
        exit::BAD_INPUT
    })?;
    Ok((runs.path(&run), run, manifest))
}
