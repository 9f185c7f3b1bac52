//! `berth actions pull`: every remote action the project's workflows name, fetched once into
//! the action cache, so that later runs (hermetic, offline) have them.

use crate::cli::args::Cli;
use crate::cli::error::CliError;
use crate::cli::setup::{action_cache, project_dir, rejected};
use crate::github;
use crate::source::Source;

pub(super) fn cmd_pull(cli: &Cli) -> Result<(), CliError> {
    let project = project_dir(cli)?;
    let files = match &cli.file {
        Some(f) => vec![f.clone()],
        None => github::workflow_files(&project),
    };
    let mut sources = Vec::new();
    for path in &files {
        let mut source = Source::read(path)
            .map_err(|e| CliError::input(format!("cannot read {}: {e}", path.display())))?;
        source.name = path
            .strip_prefix(&project)
            .map(|p| p.display().to_string())
            .unwrap_or_else(|_| path.display().to_string());
        sources.push(source);
    }
    let Some(first) = sources.first().cloned() else {
        return Err(CliError::input(format!(
            "no workflow in {}/.github/workflows (or name one with -f)",
            project.display()
        )));
    };
    let cache = action_cache(&project)?;
    let mut done: Vec<github::actions::Remote> = Vec::new();
    let mut problems = Vec::new();
    // A fetched composite may use further actions: read again until nothing new turns up.
    loop {
        let remotes = github::load::remote_actions(&sources, &project, &cache)
            .map_err(|failed| rejected(&failed, &first))?;
        let new: Vec<_> = remotes.into_iter().filter(|r| !done.contains(r)).collect();
        if new.is_empty() {
            break;
        }
        for remote in new {
            match cache.fetch(&remote) {
                Ok(f) => {
                    let how = if f.cached { "cached" } else { "fetched" };
                    out!("{}: {how} at {}", remote.name(), f.sha)?;
                }
                Err(e) => problems.push(format!("{}: {e}", remote.name())),
            }
            done.push(remote);
        }
    }
    if !problems.is_empty() {
        return Err(CliError::Problems(problems));
    }
    if done.is_empty() {
        out!("no remote actions to fetch")?;
    }
    Ok(())
}
