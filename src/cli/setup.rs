//! What commands start from: the project, its pipeline read and planned, the engine, the runs.

use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};

use crate::docker::Engine;
use crate::engine::runtime::RuntimeError;
use crate::github;
use crate::gitlab;
use crate::pipeline::{Format, Loaded};
use crate::plan::{self, Plan};
use crate::project::git::Facts;
use crate::source::diag::Severity;
use crate::source::Source;
use crate::store::{self, record, Runs};

use super::args::{Cli, OriginArgs};
use super::CliError;

/// The Docker engine, or exit code 3 with a message that says what to check.
pub(super) async fn connect() -> Result<Engine, CliError> {
    Engine::connect().await.map_err(CliError::Unreachable)
}

/// The engine being connected to, while the pipeline is read (see [`LoadedRun::read`]).
pub(super) type Connecting = tokio::task::JoinHandle<Result<Engine, RuntimeError>>;

/// The engine [`LoadedRun::read`] started connecting to.
pub(super) async fn connected(engine: Connecting) -> Result<Engine, CliError> {
    match engine.await {
        Ok(connected) => connected.map_err(CliError::Unreachable),
        Err(e) => Err(CliError::Unreachable(RuntimeError::Unreachable(
            e.to_string(),
        ))),
    }
}

/// The project directory and a connected engine.
pub(super) async fn project_and_engine(cli: &Cli) -> Result<(PathBuf, Engine), CliError> {
    let project = project_dir(cli)?;
    let engine = connect().await?;
    Ok((project, engine))
}

pub(super) fn project_dir(cli: &Cli) -> Result<PathBuf, CliError> {
    let dir = match &cli.project {
        Some(d) => d.clone(),
        None => std::env::current_dir()
            .map_err(|e| CliError::input(format!("cannot read the current directory: {e}")))?,
    };
    dir.canonicalize()
        .map_err(|e| CliError::input(format!("project directory {}: {e}", dir.display())))
}

/// A pipeline read and planned for a run.
pub(super) struct LoadedRun {
    pub(super) project: PathBuf,
    pub(super) source: Source,
    pub(super) loaded: Loaded,
    pub(super) plan: Plan,
    pub(super) context: Facts,
    pub(super) run_id: String,
    /// `--secret`s, read before the pipeline: a workflow's `secrets` context has them.
    pub(super) secrets: Vec<(String, String)>,
}

/// Which of the pipeline's jobs a run plans.
pub(super) struct Planning<'a> {
    /// The jobs named on the command line (none: every job).
    pub(super) jobs: &'a [String],
    /// Manual jobs too.
    pub(super) manual: bool,
    /// Child pipelines become part of the run.
    pub(super) children: bool,
}

impl LoadedRun {
    /// The project's pipeline read and planned while the engine connects: a good pipeline
    /// does not wait for the engine's answer, and a bad one still ends the run (exit 2) before
    /// any container exists. `None` when `workflow: rules` create no pipeline.
    pub(super) fn read(
        cli: &Cli,
        origin: &OriginArgs,
        secrets: Vec<(String, String)>,
        planning: Planning,
    ) -> Result<Option<(LoadedRun, Connecting)>, CliError> {
        let project = project_dir(cli)?;
        let engine = tokio::spawn(Engine::connect());
        let (run_id, pipeline_id) = store::new_run_id();
        let Some((source, mut loaded, context)) =
            load(cli, &project, origin, &secrets, pipeline_id)?
        else {
            return Ok(None);
        };
        if planning.children {
            gitlab::flatten_children(&mut loaded.pipeline, &pipeline_context(&context, origin))
                .map_err(|failed| rejected(&failed, &source))?;
        }
        let plan = make_plan(&loaded, planning.jobs, planning.manual)?;
        let run = LoadedRun {
            project,
            source,
            loaded,
            plan,
            context,
            run_id,
            secrets,
        };
        Ok(Some((run, engine)))
    }
}

/// Find, read and validate the pipeline for its context; print its warnings. `None` (a
/// message, and exit code 0) for a pipeline that `workflow: rules` refuse. `secrets`: the
/// `--secret`s, for a workflow's `secrets` context.
pub(super) fn load(
    cli: &Cli,
    project: &Path,
    origin: &OriginArgs,
    secrets: &[(String, String)],
    pipeline_id: u64,
) -> Result<Option<(Source, Loaded, Facts)>, CliError> {
    let path = match &cli.file {
        Some(f) if github::is_workflow_path(f) => {
            return load_workflows(
                project,
                std::slice::from_ref(f),
                origin,
                secrets,
                pipeline_id,
            );
        }
        Some(f) => f.clone(),
        None => match Source::discover(project) {
            Some(path) => path,
            None => {
                let workflows = github::workflow_files(project);
                if workflows.is_empty() {
                    return Err(CliError::input(format!(
                        "no pipeline file in {}: expected berth.yml, .gitlab-ci.yml or \
                         .github/workflows/*.yml (or name one with -f)",
                        project.display()
                    )));
                }
                return load_workflows(project, &workflows, origin, secrets, pipeline_id);
            }
        },
    };
    let source = Source::read(&path)
        .map_err(|e| CliError::input(format!("cannot read {}: {e}", path.display())))?;
    let context = Facts::with_origin(project, pipeline_id, &origin.origin());
    let loaded = gitlab::load_source(&source, &pipeline_context(&context, origin))
        .map_err(|failed| rejected(&failed, &source))?;
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
        return Ok(None);
    }
    Ok(Some((source, loaded, context)))
}

/// How the engine builds the environment of a job of this pipeline: its format's way.
pub(super) fn environment(
    loaded: &Loaded,
    facts: &Facts,
) -> std::sync::Arc<dyn crate::pipeline::JobEnvironment> {
    match loaded.format {
        Format::GitLab => std::sync::Arc::new(gitlab::variables::GitLabEnvironment {
            facts: facts.clone(),
            pipeline_variables: loaded.pipeline.variables.clone(),
        }),
        Format::GitHub => std::sync::Arc::new(github::lower::GitHubEnvironment),
    }
}

/// The user's `runs-on` images: `$XDG_CONFIG_HOME/berth/platforms` (by default
/// `~/.config/berth/platforms`), a `LABEL=IMAGE` per line; `--platform` wins over it. The
/// user's, not the repository's: a laptop's images are its own.
fn user_platforms() -> Result<Vec<(String, String)>, CliError> {
    let dir = match std::env::var_os("XDG_CONFIG_HOME").filter(|d| !d.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => match std::env::var_os("HOME") {
            Some(home) => PathBuf::from(home).join(".config"),
            None => return Ok(Vec::new()),
        },
    };
    let path = dir.join("berth").join("platforms");
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(CliError::input(format!("{}: {e}", path.display()))),
    };
    github::lower::Platforms::parse_file(&text)
        .map_err(|(line, e)| CliError::input(format!("{}:{line}: {e}", path.display())))
}

/// GitHub workflows: read every file, keep those the event triggers, and make one pipeline of
/// their jobs ([`github::load`]). Bad input in any file is exit 2 before anything starts.
fn load_workflows(
    project: &Path,
    files: &[PathBuf],
    origin: &OriginArgs,
    secrets: &[(String, String)],
    pipeline_id: u64,
) -> Result<Option<(Source, Loaded, Facts)>, CliError> {
    let context = Facts::with_origin(project, pipeline_id, &origin.origin());
    let mut sources = Vec::new();
    for path in files {
        let mut source = Source::read(path)
            .map_err(|e| CliError::input(format!("cannot read {}: {e}", path.display())))?;
        // Messages and records name the file as the repository does.
        source.name = path
            .strip_prefix(project)
            .map(|p| p.display().to_string())
            .unwrap_or_else(|_| path.display().to_string());
        sources.push(source);
    }
    let Some(first) = sources.first().cloned() else {
        return Err(CliError::input("no workflow file to read"));
    };
    let platforms = user_platforms()?
        .into_iter()
        .chain(origin.platforms.iter().cloned())
        .collect::<Vec<_>>();
    let payload = match &origin.event_payload {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| CliError::input(format!("--event-payload {}: {e}", path.display())))?;
            let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
                CliError::input(format!(
                    "--event-payload {}:{}:{}: {e}",
                    path.display(),
                    e.line(),
                    e.column()
                ))
            })?;
            Some(value)
        }
        None => None,
    };
    let action_cache = action_cache(project)?;
    let options = github::load::Options {
        action_cache: &action_cache,
        payload: payload.as_ref(),
        inputs: &origin.inputs,
        event: &origin.event,
        base: origin.base.as_deref(),
        env: &origin.env,
        secrets,
        platforms: &platforms,
    };
    match github::load::load(&sources, &context, &options) {
        Err(failed) => Err(rejected(&failed, &first)),
        Ok(github::load::Load::NothingRuns { notes }) => {
            eprintln!(
                "berth: no workflow runs for {} {}:",
                origin.event, context.ref_name
            );
            for note in &notes {
                eprintln!("  {note}");
            }
            Ok(None)
        }
        Ok(github::load::Load::Missing { message }) => Err(CliError::engine(message)),
        Ok(github::load::Load::Runs(loaded)) => {
            for w in &loaded.warnings {
                eprint!("{}", w.render(&loaded.sources));
            }
            Ok(Some((first, *loaded, context)))
        }
    }
}

/// The cache of remote actions: `BERTH_ACTIONS_CACHE`, else `~/.cache/berth/actions`; fetched
/// from `BERTH_ACTIONS_URL/<owner>/<repo>` (default `https://github.com`).
pub(super) fn action_cache(project: &Path) -> Result<github::actions::cache::Cache, CliError> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let root = match var("BERTH_ACTIONS_CACHE") {
        Some(dir) => PathBuf::from(dir),
        None => github::actions::cache::Cache::default_root(
            var("XDG_CACHE_HOME").as_deref(),
            var("HOME").as_deref(),
        )
        .ok_or_else(|| {
            CliError::input("no HOME to keep the action cache in: set BERTH_ACTIONS_CACHE")
        })?,
    };
    let source = var("BERTH_ACTIONS_URL").unwrap_or_else(|| "https://github.com".to_string());
    // The project's berth.lock pins refs to commits: every machine runs what the lock names.
    let pins = crate::project::lock::Lockfile::load(project)
        .map_err(CliError::Input)?
        .map(|lock| lock.actions)
        .unwrap_or_default();
    Ok(github::actions::cache::Cache::new(root, source)
        .pinned(pins)
        .with_real(real_actions(var("BERTH_REAL_ACTIONS").as_deref())?))
}

/// `BERTH_REAL_ACTIONS`: built-in actions to run as the real ones (comma-separated names, or
/// `all`). A name that is not built in is a mistake, said as such.
fn real_actions(given: Option<&str>) -> Result<Vec<String>, CliError> {
    let built_in = github::steps::BUILT_IN_ACTIONS;
    let mut real = Vec::new();
    for name in given.unwrap_or_default().split(',').map(str::trim) {
        match name.to_ascii_lowercase() {
            n if n.is_empty() => {}
            n if n == "all" => real.extend(built_in.iter().map(|b| b.to_string())),
            n if built_in.contains(&n.as_str()) => real.push(n),
            _ => {
                return Err(CliError::input(format!(
                    "BERTH_REAL_ACTIONS: `{name}` is not one of berth's built-in actions ({}, or `all`)",
                    built_in.join(", ")
                )))
            }
        }
    }
    Ok(real)
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

/// A pipeline that cannot be read: every diagnostic, and a line that says nothing started.
pub(super) fn rejected(failed: &crate::pipeline::Failed, source: &Source) -> CliError {
    let errors = failed
        .diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .count();
    let mut text: String = failed
        .diagnostics
        .iter()
        .map(|d| d.render(&failed.sources))
        .collect();
    text.push_str(&format!(
        "berth: {errors} error{} in {}; nothing was started\n",
        if errors == 1 { "" } else { "s" },
        source.name
    ));
    CliError::Pipeline(text)
}

pub(super) fn make_plan(loaded: &Loaded, jobs: &[String], manual: bool) -> Result<Plan, CliError> {
    plan::plan(&loaded.pipeline, jobs, manual).map_err(CliError::input)
}

/// The project's run store, for reading.
pub(super) fn open_runs(cli: &Cli) -> Result<Runs, CliError> {
    Ok(Runs::open(&project_dir(cli)?)?)
}

/// The run record a command is about.
pub(super) struct Picked {
    pub(super) id: String,
    pub(super) dir: PathBuf,
}

impl Picked {
    pub(super) fn manifest(&self) -> Result<record::RunManifest, CliError> {
        record::RunManifest::load(&self.dir).map_err(CliError::input)
    }
}

/// `[RUN] [JOB...]`, the one way a command's names choose a run: the first name is a run id
/// when there is one name more than the command takes jobs (`logs RUN JOB`), or when it names
/// a recorded run and the jobs may be fewer (`artifacts RUN`); else the latest run. Returns
/// the run and the names after it.
pub(super) fn pick_run<'a>(
    cli: &Cli,
    names: &'a [String],
    jobs: RangeInclusive<usize>,
) -> Result<(Picked, &'a [String]), CliError> {
    let runs = open_runs(cli)?;
    let (given, rest) = match names.split_first() {
        Some((first, rest))
            if Some(names.len()) == jobs.end().checked_add(1)
                || (names.len() > *jobs.start() && runs.has(first)) =>
        {
            (Some(first.as_str()), rest)
        }
        _ => (None, names),
    };
    let id = runs.pick(given)?;
    let dir = runs.path(&id);
    Ok((Picked { id, dir }, rest))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn cli(project: &Path) -> Cli {
        Cli::parse_from(["berth", "-C", &project.display().to_string(), "runs"])
    }

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_first_name_is_a_run_by_count_or_when_it_is_one() {
        let project = tempfile::tempdir().unwrap();
        let runs = Runs::create(project.path()).unwrap();
        let (old, new) = ("20260101-000000-0001", "20260102-000000-0001");
        for id in [old, new] {
            std::fs::create_dir(runs.path(id)).unwrap();
        }
        let cli = cli(project.path());
        let picked = |list: &[&str], jobs| {
            let list = names(list);
            pick_run(&cli, &list, jobs).map(|(p, rest)| (p.id, rest.to_vec()))
        };
        // `logs JOB` / `logs RUN JOB`: a lone name is the job, even one named like a run.
        assert_eq!(picked(&[old], 1..=1).unwrap(), (new.into(), names(&[old])));
        assert_eq!(
            picked(&[old, "j"], 1..=1).unwrap(),
            (old.into(), names(&["j"]))
        );
        // `artifacts [RUN] [JOB]`: a lone name is the run when it is one.
        assert_eq!(picked(&[old], 0..=1).unwrap(), (old.into(), vec![]));
        assert_eq!(picked(&["j"], 0..=1).unwrap(), (new.into(), names(&["j"])));
        assert!(matches!(
            picked(&["../x", "j"], 0..=1),
            Err(CliError::Runs(store::RunsError::NotAnId(_)))
        ));
        // Too many names are left for the command to refuse.
        let three = picked(&["a", "b", "c"], 0..=1).unwrap();
        assert_eq!(three, (new.into(), names(&["a", "b", "c"])));
        // `replay [RUN] [JOB...]` and `show [RUN]`.
        assert_eq!(
            picked(&[old, "a", "b"], 0..=usize::MAX).unwrap(),
            (old.into(), names(&["a", "b"]))
        );
        assert_eq!(picked(&[], 0..=usize::MAX).unwrap(), (new.into(), vec![]));
        assert_eq!(picked(&[old], 0..=0).unwrap(), (old.into(), vec![]));
    }
}
