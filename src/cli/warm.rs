//! `berth warm`: fill the jobs' Python dependency caches by running what each job runs to
//! install, and no more.

use crate::pipeline;
use crate::plan;

use super::args::{Cli, NetworkMode, RunArgs};
use super::run::{execute, Launch};
use super::setup::{LoadedRun, Planning};
use super::CliError;

/// `berth warm`: each chosen job becomes a job that runs its own commands up to and including its
/// last install command (a job of steps: resolves and downloads what the project's dependency
/// files name), in the job's image, with its variables and services, its automatic Python caches
/// mounted and its index traffic recorded; nothing waits for anything else.
pub(super) async fn cmd_warm(cli: &Cli, args: &RunArgs) -> Result<(), CliError> {
    use crate::engine::python;
    if args.python.no_python_cache || args.no_cache || args.python.network == NetworkMode::None {
        return Err(CliError::input(
            "warm fills the stored Python caches: it needs them, and a network",
        ));
    }
    let secrets = super::run::read_secrets(&args.secrets).map_err(CliError::Input)?;
    let planning = Planning {
        jobs: &args.jobs,
        // Manual jobs count too: warming runs none of their commands.
        manual: true,
        children: false,
    };
    let Some((mut run, engine)) = LoadedRun::read(cli, &args.origin, secrets, planning)? else {
        return Ok(());
    };
    let plan = &mut run.plan;
    let files = python::dependency_files(&run.project);
    let mut warm = Vec::new();
    // Jobs that would fill the same caches the same way are warmed once.
    let mut seen = std::collections::HashSet::new();
    for planned in std::mem::take(&mut plan.jobs) {
        let job = &planned.job;
        let named = args.jobs.contains(&job.name);
        if !args.jobs.is_empty() && !named {
            continue;
        }
        let tools = python::tools_of(job);
        if tools.is_empty() {
            if named {
                return Err(CliError::input(format!(
                    "job `{}` installs no Python packages (pip, uv, poetry, pipenv, pdm)",
                    job.name
                )));
            }
            continue;
        }
        let own = match job.steps {
            None => python::warm_commands(&job.before_script, &job.script),
            Some(_) => None,
        };
        if job.steps.is_none() && own.is_none() {
            // `uv lock`, `poetry add`: the job uses the tool but installs nothing to warm.
            eprintln!(
                "berth: `{}` is not warmed: its script installs no Python packages",
                job.name
            );
            continue;
        }
        let same = format!(
            "{:?} {tools:?} {:?} {:?} {own:?}",
            job.image, job.variables, job.services
        );
        if !named && !seen.insert(same) {
            continue;
        }
        let names: Vec<&str> = tools.iter().map(|t| t.name()).collect();
        let script = match &own {
            Some(commands) => {
                eprintln!(
                    "berth: warming `{}` ({}) with its own commands up to `{}`",
                    job.name,
                    names.join(", "),
                    commands.last().map(String::as_str).unwrap_or_default()
                );
                let mut script = commands.clone();
                // pipenv passes its sources to pip itself: its wheelhouse is still filled.
                if tools.contains(&python::Tool::Pipenv) {
                    let pipenv = std::collections::BTreeSet::from([python::Tool::Pipenv]);
                    script.extend(python::warm_script(&pipenv, &files));
                }
                // The proxy records for pip and pdm (see engine::python).
                let recorded =
                    tools.contains(&python::Tool::Pip) || tools.contains(&python::Tool::Pdm);
                script.extend(python::warm_report(&tools, recorded));
                script
            }
            None => {
                eprintln!(
                    "berth: warming `{}` ({}) from {}",
                    job.name,
                    names.join(", "),
                    if files.is_empty() {
                        "no dependency files".to_string()
                    } else {
                        files.join(", ")
                    }
                );
                let mut script = python::warm_script(&tools, &files);
                script.extend(python::warm_report(&tools, false));
                script
            }
        };
        let mut job = planned.job.clone();
        job.before_script = Vec::new();
        job.after_script = Vec::new();
        job.script = script;
        // The index proxy records (see engine::python).
        job.variables.push(pipeline::Variable {
            name: python::WARM.into(),
            value: "1".into(),
            expand: false,
        });
        // A job of steps is warmed as a script in its image: its steps are not run.
        job.steps = None;
        job.artifacts = None;
        job.caches = Vec::new();
        job.needs = Some(Vec::new());
        job.dependencies = Some(Vec::new());
        job.when = pipeline::When::OnSuccess;
        job.allow_failure = pipeline::AllowFailure::No;
        warm.push(plan::PlannedJob {
            job,
            deps: Default::default(),
            dag: true,
            run: true,
            artifacts_from: Default::default(),
            ..planned
        });
    }
    if warm.is_empty() {
        eprintln!("berth: no job installs Python packages; nothing to warm");
        return Ok(());
    }
    plan.jobs = warm;
    execute(args, run, engine, Launch::run()).await
}
