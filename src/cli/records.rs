//! `berth runs`, `show`, `logs` and `artifacts`: reading the run records.

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::store::{self, record};

use super::args::{ArtifactsArgs, Cli};
use super::exit;
use super::setup::{load_run, open_runs};

pub(super) fn cmd_runs(cli: &Cli) -> i32 {
    let runs = match open_runs(cli) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    out!(
        "{:<22} {:<14} {:<12} {:>9}  PIPELINE",
        "RUN",
        "WHEN",
        "STATUS",
        "DURATION"
    );
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
            ),
            Err(_) => out!("{id:<22} {:<14} {:<12} {:>9}", "-", "no record", "-"),
        }
    }
    exit::OK
}

pub(super) fn cmd_logs(cli: &Cli, names: &[String]) -> i32 {
    let (run, job) = match names {
        [job] => (None, job),
        [run, job] => (Some(run.as_str()), job),
        _ => return exit::BAD_INPUT,
    };
    let (dir, run, manifest) = match load_run(cli, run) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let Some(record) = manifest.jobs.iter().find(|j| &j.name == job) else {
        eprintln!("berth: run {run} has no job `{job}`");
        return exit::BAD_INPUT;
    };
    match store::open_in_record(&dir, &record.log) {
        Ok(mut f) => {
            let _ = std::io::copy(&mut f, &mut std::io::stdout());
            exit::OK
        }
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            eprintln!("berth: run {run}: the log of `{job}`: {e}");
            exit::BAD_INPUT
        }
        Err(_) => {
            eprintln!("berth: job `{job}` printed nothing in run {run}");
            exit::OK
        }
    }
}

pub(super) fn cmd_show(cli: &Cli, run: Option<&str>) -> i32 {
    let (_, _, m) = match load_run(cli, run) {
        Ok(x) => x,
        Err(code) => return code,
    };
    out!("run {} of {}: {}", m.run_id, m.pipeline, m.status);
    out!(
        "berth {}, engine {}, commit {}{}, pipeline sha256 {}",
        m.berth_version,
        m.engine_version,
        m.commit,
        if m.dirty { " (dirty)" } else { "" },
        &m.pipeline_sha256[..m.pipeline_sha256.len().min(16)]
    );
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
        );
    }
    if m.critical_path.len() > 1 {
        out!("critical path: {}", m.critical_path.join(" -> "));
    }
    out!(
        "total {}",
        crate::units::duration(std::time::Duration::from_millis(m.duration_ms))
    );
    exit::OK
}

pub(super) fn cmd_artifacts(cli: &Cli, args: &ArtifactsArgs) -> i32 {
    use crate::engine::artifacts::extract;
    use crate::store::archives::ArtifactManifest as Manifest;
    let runs = match open_runs(cli) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let mut names = args.names.clone();
    // `RUN JOB`, `RUN` or `JOB`: a lone name is a run only when it is one.
    let given = match names.as_slice() {
        [run, _] => Some(run.clone()),
        [one] if runs.has(one) => Some(one.clone()),
        _ => None,
    };
    if given.is_some() {
        names.remove(0);
    }
    let run = match runs.pick(given.as_deref()) {
        Ok(run) => run,
        Err(e) => {
            eprintln!("berth: {e}");
            return exit::BAD_INPUT;
        }
    };
    let job = match names.as_slice() {
        [] => None,
        [job] => Some(job.clone()),
        _ => {
            eprintln!("berth: expected at most a run id and a job name");
            return exit::BAD_INPUT;
        }
    };
    let run_dir = runs.path(&run);
    let dir = run_dir.join("artifacts");
    let mut manifests: Vec<(PathBuf, Manifest)> = Vec::new();
    // Listed only when it is a real folder of the record (not a link the repository brought).
    let mut names: Vec<String> = match crate::project::state::is_real_dir(&dir) {
        Ok(true) => std::fs::read_dir(&dir)
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .filter_map(|e| e.file_name().into_string().ok())
                    .collect()
            })
            .unwrap_or_default(),
        Ok(false) => Vec::new(),
        Err(e) => {
            eprintln!("berth: {e}");
            return exit::BAD_INPUT;
        }
    };
    names.sort();
    for name in names.into_iter().filter(|n| n.ends_with(".json")) {
        let path = dir.join(&name);
        let read =
            store::open_in_record(&run_dir, &format!("artifacts/{name}")).and_then(|mut f| {
                let mut bytes = Vec::new();
                std::io::Read::read_to_end(&mut f, &mut bytes).map(|_| bytes)
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
    if let Some(job) = &job {
        manifests.retain(|(_, m)| &m.job == job);
        if manifests.is_empty() {
            eprintln!("berth: run {run} stored no artifacts for job `{job}`");
            return exit::BAD_INPUT;
        }
    }
    if let Some(dest) = &args.extract {
        let [(archive, manifest)] = manifests.as_slice() else {
            eprintln!("berth: name the job whose artifacts to extract");
            return exit::BAD_INPUT;
        };
        return match extract(archive, dest) {
            Ok(n) => {
                out!(
                    "extracted {n} entries of `{}` into {}",
                    manifest.job,
                    dest.display()
                );
                exit::OK
            }
            Err(e) => {
                eprintln!("berth: {e}");
                exit::JOB_FAILED
            }
        };
    }
    out!("run {run}");
    for (archive, m) in &manifests {
        out!(
            "{}: {} files, {} bytes ({})",
            m.job,
            m.files.len(),
            m.bytes,
            archive.display()
        );
        if job.is_some() {
            for f in &m.files {
                match (&f.sha256, &f.link) {
                    (_, Some(link)) => out!("  {} -> {link}", f.path),
                    (Some(sha), None) => out!("  {}  {}  {sha}", f.path, f.size),
                    (None, None) => out!("  {}", f.path),
                }
            }
        }
    }
    exit::OK
}
