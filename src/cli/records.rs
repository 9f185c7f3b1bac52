//! `berth runs`, `show`, `logs` and `artifacts`: reading the run records.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::store::archives::ArtifactManifest as Manifest;
use crate::store::{self, record};

use super::args::{ArtifactsArgs, Cli};
use super::setup::{open_runs, pick_run};
use super::{out_raw, CliError};

pub(super) fn cmd_runs(cli: &Cli) -> Result<(), CliError> {
    let runs = open_runs(cli)?;
    let now = crate::units::now_secs();
    out!(
        "{:<22} {:<14} {:<12} {:>9}  PIPELINE",
        "RUN",
        "WHEN",
        "STATUS",
        "DURATION"
    )?;
    for id in runs.ids().iter().rev() {
        match record::RunManifest::load(&runs.path(id)) {
            Ok(m) => out!(
                "{:<22} {:<14} {:<12} {:>9}  {}",
                id,
                format!(
                    "{} ago",
                    crate::units::duration(std::time::Duration::from_secs(
                        now.saturating_sub(m.started_at)
                    ))
                ),
                m.status,
                crate::units::duration(std::time::Duration::from_millis(m.duration_ms)),
                m.pipeline
            )?,
            Err(_) => out!("{id:<22} {:<14} {:<12} {:>9}", "-", "no record", "-")?,
        }
    }
    Ok(())
}

pub(super) fn cmd_logs(cli: &Cli, names: &[String]) -> Result<(), CliError> {
    let (picked, rest) = pick_run(cli, names, 1..=1)?;
    let [job] = rest else {
        return Err(CliError::input(
            "expected a job name, or a run id and a job name",
        ));
    };
    let run = &picked.id;
    let manifest = picked.manifest()?;
    let Some(record) = manifest.jobs.iter().find(|j| &j.name == job) else {
        return Err(CliError::input(format!("run {run} has no job `{job}`")));
    };
    match store::open_in_record(&picked.dir, &record.log) {
        Ok(mut f) => copy_out(&mut f),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => Err(CliError::input(
            format!("run {run}: the log of `{job}`: {e}"),
        )),
        Err(_) => {
            eprintln!("berth: job `{job}` printed nothing in run {run}");
            Ok(())
        }
    }
}

pub(super) fn cmd_show(cli: &Cli, run: Option<&str>) -> Result<(), CliError> {
    let given: Vec<String> = run.into_iter().map(String::from).collect();
    let m = pick_run(cli, &given, 0..=0)?.0.manifest()?;
    out!("run {} of {}: {}", m.run_id, m.pipeline, m.status)?;
    out!(
        "berth {}, engine {}, commit {}{}, pipeline sha256 {}",
        m.berth_version,
        m.engine_version,
        m.commit,
        if m.dirty { " (dirty)" } else { "" },
        &m.pipeline_sha256[..m.pipeline_sha256.len().min(16)]
    )?;
    let w = m.jobs.iter().map(|j| j.name.len()).max().unwrap_or(0);
    for j in &m.jobs {
        let d = j
            .duration_ms
            .map(|ms| crate::units::duration(std::time::Duration::from_millis(ms)))
            .unwrap_or_else(|| "-".into());
        out!(
            "  {:<10} {:w$}  {:<16} {:>8}  {}",
            j.stage,
            j.name,
            j.status,
            d,
            j.image
        )?;
        if let Some(tests) = &j.tests {
            out!("  {:<10} {:w$}  tests: {}", "", "", tests.counts())?;
            for name in &tests.failures {
                out!("  {:<10} {:w$}    failed: {name}", "", "")?;
            }
        }
    }
    if m.critical_path.len() > 1 {
        out!("critical path: {}", m.critical_path.join(" -> "))?;
    }
    out!(
        "total {}",
        crate::units::duration(std::time::Duration::from_millis(m.duration_ms))
    )?;
    Ok(())
}

pub(super) fn cmd_artifacts(cli: &Cli, args: &ArtifactsArgs) -> Result<(), CliError> {
    use crate::engine::artifacts::extract;
    // `RUN JOB`, `RUN` or `JOB`: a lone name is a run only when it is one.
    let (picked, names) = pick_run(cli, &args.names, 0..=1)?;
    let run = &picked.id;
    let job = match names {
        [] => None,
        [job] => Some(job.clone()),
        _ => return Err(CliError::input("expected at most a run id and a job name")),
    };
    let mut manifests = stored_artifacts(&picked.dir)?;
    if let Some(job) = &job {
        manifests.retain(|(_, m)| &m.job == job);
        if manifests.is_empty() {
            return Err(CliError::input(format!(
                "run {run} stored no artifacts for job `{job}`"
            )));
        }
    }
    if let Some(dest) = &args.extract {
        let [(archive, manifest)] = manifests.as_slice() else {
            return Err(CliError::input("name the job whose artifacts to extract"));
        };
        let n = extract(archive, dest).map_err(CliError::Extract)?;
        out!(
            "extracted {n} entries of `{}` into {}",
            manifest.job,
            dest.display()
        )?;
        return Ok(());
    }
    out!("run {run}")?;
    for (archive, m) in &manifests {
        // A step's artifact (GitHub's) is named too.
        let what = match &m.name {
            Some(name) => format!("{} `{name}`", m.job),
            None => m.job.clone(),
        };
        out!(
            "{}: {} files, {} bytes ({})",
            what,
            m.files.len(),
            m.bytes,
            archive.display()
        )?;
        if job.is_some() {
            for f in &m.files {
                match (&f.sha256, &f.link) {
                    (_, Some(link)) => out!("  {} -> {link}", f.path)?,
                    (Some(sha), None) => out!("  {}  {}  {sha}", f.path, f.size)?,
                    (None, None) => out!("  {}", f.path)?,
                }
            }
        }
    }
    Ok(())
}

/// The artifacts a run record holds, each archive with its manifest, in the manifests' order;
/// what cannot be read, or is not a plain file of the record, is said and skipped.
fn stored_artifacts(run_dir: &Path) -> Result<Vec<(PathBuf, Manifest)>, CliError> {
    let dir = run_dir.join("artifacts");
    let mut manifests = Vec::new();
    // Listed only when it is a real folder of the record (not a link the repository brought).
    let mut names: Vec<String> = if crate::project::state::is_real_dir(&dir)? {
        std::fs::read_dir(&dir)
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .filter_map(|e| e.file_name().into_string().ok())
                    .collect()
            })
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    names.sort();
    for name in names.into_iter().filter(|n| n.ends_with(".json")) {
        let path = dir.join(&name);
        let read =
            store::open_in_record(run_dir, &format!("artifacts/{name}")).and_then(|mut f| {
                let mut bytes = Vec::new();
                f.read_to_end(&mut bytes).map(|_| bytes)
            });
        match read
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice::<Manifest>(&b).map_err(|e| e.to_string()))
        {
            // A plain file name beside the manifest, never a path elsewhere.
            Ok(m)
                if m.archive.contains('/')
                    || m.archive.starts_with('.')
                    || !std::fs::symlink_metadata(dir.join(&m.archive))
                        .is_ok_and(|f| f.is_file()) =>
            {
                eprintln!(
                    "berth: {}: archive `{}` is not a plain file in the run's directory; skipped",
                    path.display(),
                    m.archive
                )
            }
            Ok(m) => manifests.push((dir.join(&m.archive), m)),
            Err(e) => eprintln!("berth: {}: {e}", path.display()),
        }
    }
    Ok(manifests)
}

/// A job's log to standard output as it is stored, byte for byte.
fn copy_out(log: &mut std::fs::File) -> Result<(), CliError> {
    let mut chunk = vec![0; 64 * 1024];
    loop {
        match log.read(&mut chunk) {
            Ok(0) => return Ok(()),
            Ok(n) => out_raw(&chunk[..n])?,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(CliError::input(format!("cannot read the log: {e}"))),
        }
    }
}
