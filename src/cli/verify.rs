//! `berth verify`: run the jobs twice, hermetically, and compare their artifacts.

use crate::store::record;

use super::args::{Cli, RunArgs};
use super::run::{cmd_run, RunMode};
use super::setup::open_runs;
use super::CliError;

/// `berth verify`: the same jobs twice, hermetic, with another hostname and a later start;
/// every artifact file that differs is listed, with a short diff for text. Exit 1 when the build
/// is not reproducible.
pub(super) async fn cmd_verify(cli: &Cli, args: &RunArgs) -> Result<(), CliError> {
    let runs = open_runs(cli)?;
    let mut ids = Vec::new();
    for (i, host) in ["berth-verify-a", "berth-verify-b"].into_iter().enumerate() {
        let started = std::time::Instant::now();
        eprintln!("berth: verify: run {} of 2 (hostname {host})", i + 1);
        let before = runs.ids();
        cmd_run(cli, args, RunMode::Verify, None, Some(host.to_string()))
            .await
            .map_err(|e| CliError::VerifyRun {
                run: i + 1,
                source: Box::new(e),
            })?;
        match runs.ids().into_iter().find(|r| !before.contains(r)) {
            Some(id) => ids.push(id),
            None => {
                return Err(CliError::engine(format!(
                    "verify: run {} left no record",
                    i + 1
                )))
            }
        }
        // The second run starts in another second, so that the time shows if it leaks in.
        if let Some(rest) = std::time::Duration::from_millis(1100).checked_sub(started.elapsed()) {
            tokio::time::sleep(rest).await;
        }
    }
    let load = |id: &str| record::RunManifest::load(&runs.path(id));
    let (a, b) = match (load(&ids[0]), load(&ids[1])) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => return Err(CliError::engine(format!("verify: {e}"))),
    };
    let diffs = crate::store::verify::compare((&runs.path(&ids[0]), &a), (&runs.path(&ids[1]), &b))
        .map_err(|e| CliError::engine(format!("verify: {e}")))?;
    if diffs.is_empty() {
        let files: usize = a.jobs.iter().filter(|j| j.artifacts.is_some()).count();
        out!(
            "reproducible: runs {} and {} gave the same artifacts ({files} job{} with artifacts)",
            ids[0],
            ids[1],
            if files == 1 { "" } else { "s" }
        )?;
        return Ok(());
    }
    out!(
        "not reproducible: {} file{} differ between runs {} and {}",
        diffs.len(),
        if diffs.len() == 1 { "" } else { "s" },
        ids[0],
        ids[1]
    )?;
    for d in diffs {
        out!("  {}: {}: {}", d.job, d.path, d.what)?;
        for line in d.diff {
            out!("      {line}")?;
        }
    }
    Err(CliError::NotReproducible)
}
