//! `berth run JOB --from-run [RUN]`: the named jobs alone, fed with what the jobs they need
//! produced in a recorded run (their artifacts and dotenv variables) instead of running those
//! again. Each such job must have passed in that run. Its archive is copied into this run's
//! record, so the record is whole on its own and pruning the old one loses nothing. A record
//! may have come with the repository: it is read only through [`store::open_in_record`].

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::engine::artifacts::Stored;
use crate::engine::{Reused, ReusedJob};
use crate::plan::Plan;
use crate::store::archives::{ArtifactManifest, DotenvRecord, DOTENV_DIR};
use crate::store::record::RunManifest;
use crate::store::{self, Runs};

use super::CliError;

/// What the recorded run gives, read before this run's record exists.
pub(super) struct Taken {
    pub(super) run_id: String,
    run_dir: PathBuf,
    jobs: Vec<TakenJob>,
}

/// A job to take: its name, its artifacts' manifest (with the archive's path in the record)
/// and its dotenv variables.
type TakenJob = (
    String,
    Option<(ArtifactManifest, String)>,
    Vec<(String, String)>,
);

/// The jobs of `plan` that `selected` does not name, taken from run `given` (`latest`: the
/// newest record). Exit 2 when nothing is selected, or when a job to take did not pass there.
pub(super) fn read(
    project: &Path,
    given: &str,
    plan: &Plan,
    selected: &[String],
) -> Result<Taken, CliError> {
    if selected.is_empty() {
        return Err(CliError::input(
            "--from-run runs the jobs you name alone: name at least one job",
        ));
    }
    let runs = Runs::open(project)?;
    let run_id = runs.pick((given != "latest").then_some(given))?;
    let run_dir = runs.path(&run_id);
    let manifest = RunManifest::load(&run_dir).map_err(CliError::input)?;
    let dotenv = dotenv_records(&run_dir);
    let named = |name: &str, base: &str, id: Option<&str>| {
        selected
            .iter()
            .any(|s| s == name || s == base || Some(s.as_str()) == id)
    };
    let mut jobs = Vec::new();
    for pj in &plan.jobs {
        let job = &pj.job;
        let id = job.origin.as_ref().map(|o| o.id.as_str());
        if !pj.run || named(&job.name, &job.base_name, id) {
            continue;
        }
        let Some(record) = manifest.jobs.iter().find(|r| r.name == job.name) else {
            return Err(CliError::input(format!(
                "job `{}` is needed but did not run in run {run_id}: name it too, or a run where it ran",
                job.name
            )));
        };
        if !matches!(record.status.as_str(), "passed" | "allowed_failure") {
            return Err(CliError::input(format!(
                "job `{}` is needed but {} in run {run_id}: name it too, or a run where it passed",
                job.name, record.status
            )));
        }
        let artifacts = match &record.artifacts {
            Some(rel) => Some(artifact_manifest(&run_dir, rel)?),
            None => None,
        };
        let variables = dotenv
            .iter()
            .find(|d| d.job == job.name)
            .map(|d| d.variables.clone())
            .unwrap_or_default();
        jobs.push((job.name.clone(), artifacts, variables));
    }
    Ok(Taken {
        run_id,
        run_dir,
        jobs,
    })
}

impl Taken {
    /// What the engine takes, the archives copied into this run's record at `run_dir`.
    pub(super) fn into_run(self, run_dir: &Path) -> Result<Reused, CliError> {
        let mut jobs = HashMap::new();
        let dir = run_dir.join("artifacts");
        for (name, artifacts, dotenv) in self.jobs {
            let artifacts = match artifacts {
                Some((manifest, archive)) => {
                    let to = dir.join(&manifest.archive);
                    copy_in(&self.run_dir, &archive, &to, &manifest).map_err(|e| {
                        CliError::input(format!(
                            "job `{name}`: cannot take its artifacts from run {}: {e}",
                            self.run_id
                        ))
                    })?;
                    Some(Stored {
                        archive: to,
                        manifest,
                    })
                }
                None => None,
            };
            if !dotenv.is_empty() {
                record_dotenv(run_dir, &name, &dotenv).map_err(|e| {
                    CliError::input(format!(
                        "job `{name}`: cannot record its dotenv variables: {e}"
                    ))
                })?;
            }
            jobs.insert(name, ReusedJob { artifacts, dotenv });
        }
        Ok(Reused {
            run_id: self.run_id,
            jobs,
        })
    }
}

/// A job's artifact manifest (`artifacts/<stem>.json`) and its archive's path in the record.
fn artifact_manifest(run_dir: &Path, rel: &str) -> Result<(ArtifactManifest, String), CliError> {
    let bad = |e: String| CliError::input(format!("run record {}: {rel}: {e}", run_dir.display()));
    let mut text = String::new();
    store::open_in_record(run_dir, rel)
        .and_then(|mut f| f.read_to_string(&mut text))
        .map_err(|e| bad(e.to_string()))?;
    let manifest: ArtifactManifest = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    // The archive is a file name beside the manifest, never a path.
    if matches!(manifest.archive.as_str(), "" | "." | "..") || manifest.archive.contains('/') {
        return Err(bad(format!("`{}` is no archive name", manifest.archive)));
    }
    let parent = rel.rsplit_once('/').map_or("", |(d, _)| d);
    let archive = if parent.is_empty() {
        manifest.archive.clone()
    } else {
        format!("{parent}/{}", manifest.archive)
    };
    Ok((manifest, archive))
}

/// Every job's recorded dotenv variables; a record that cannot be read gives none.
fn dotenv_records(run_dir: &Path) -> Vec<DotenvRecord> {
    if !matches!(
        crate::project::state::is_real_dir(&run_dir.join(DOTENV_DIR)),
        Ok(true)
    ) {
        return Vec::new();
    }
    let Ok(entries) = std::fs::read_dir(run_dir.join(DOTENV_DIR)) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.ends_with(".json") {
            continue;
        }
        let mut text = String::new();
        let read = store::open_in_record(run_dir, &format!("{DOTENV_DIR}/{name}"))
            .and_then(|mut f| f.read_to_string(&mut text));
        if let (Ok(_), Ok(record)) = (read, serde_json::from_str::<DotenvRecord>(&text)) {
            out.push(record);
        }
    }
    out
}

/// The archive `rel` of the record at `run_dir` copied to `to`, its manifest beside it as the
/// engine writes them (`<stem>.tar.gz` and `<stem>.json`).
fn copy_in(
    run_dir: &Path,
    rel: &str,
    to: &Path,
    manifest: &ArtifactManifest,
) -> std::io::Result<()> {
    let mut from = store::open_in_record(run_dir, rel)?;
    if let Some(dir) = to.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut out = std::fs::File::create(to)?;
    std::io::copy(&mut from, &mut out)?;
    out.sync_all()?;
    let json = serde_json::to_vec_pretty(manifest).map_err(std::io::Error::other)?;
    std::fs::write(to.with_extension("").with_extension("json"), json)
}

/// The variables taken, in this run's record as the engine records a job's.
fn record_dotenv(run_dir: &Path, job: &str, variables: &[(String, String)]) -> std::io::Result<()> {
    let record = DotenvRecord {
        job: job.to_string(),
        variables: variables.to_vec(),
    };
    let stem = format!("taken-{}", crate::project::paths::file_slug(job));
    record.write(run_dir, &stem)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_cannot_lead_the_copy_out_of_itself() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("run");
        std::fs::create_dir_all(run.join("artifacts")).unwrap();
        std::fs::write(dir.path().join("secret.json"), "{}").unwrap();
        let manifest = |archive: &str| {
            format!(r#"{{"job": "build", "archive": "{archive}", "files": [], "bytes": 0}}"#)
        };
        // The manifest's own path must stay inside the record.
        assert!(artifact_manifest(&run, "../secret.json").is_err());
        // An archive is a name beside its manifest, never a path.
        for archive in ["../../secret", "..", "a/b.tar.gz", ""] {
            std::fs::write(run.join("artifacts/000-build.json"), manifest(archive)).unwrap();
            assert!(
                artifact_manifest(&run, "artifacts/000-build.json").is_err(),
                "{archive}"
            );
        }
        std::fs::write(
            run.join("artifacts/000-build.json"),
            manifest("000-build.tar.gz"),
        )
        .unwrap();
        let (_, archive) = artifact_manifest(&run, "artifacts/000-build.json").unwrap();
        assert_eq!(archive, "artifacts/000-build.tar.gz");
        // A linked dotenv folder is not read.
        std::os::unix::fs::symlink(dir.path(), run.join(DOTENV_DIR)).unwrap();
        std::fs::write(
            dir.path().join("x.json"),
            r#"{"job": "build", "variables": [["A", "1"]]}"#,
        )
        .unwrap();
        assert!(dotenv_records(&run).is_empty());
    }
}
