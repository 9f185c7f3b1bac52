//! Plain output: one line per event, each log line prefixed with its job's name, and a closing
//! summary. For logs, CI and anything that is not a terminal.

use std::io::Write;

use super::{ReportError, Reporter};
use crate::events::{Event, JobStatus, JobSummary, RunStatus, TestResults};
use crate::units;

pub struct Plain<W: Write + Send> {
    out: W,
    /// The jobs' JUnit results so far, for the summary.
    tests: Vec<(String, TestResults)>,
}

impl<W: Write + Send> Plain<W> {
    pub fn new(out: W) -> Self {
        Plain {
            out,
            tests: Vec::new(),
        }
    }
}

impl<W: Write + Send> Reporter for Plain<W> {
    fn handle(&mut self, event: &Event) -> Result<(), ReportError> {
        // One write per event: stderr is unbuffered, and a batch of log lines is one event.
        let mut text = Vec::new();
        match event {
            Event::TestReport { job, results } => self.tests.push((job.clone(), results.clone())),
            Event::RunFinished {
                status,
                duration,
                jobs,
                critical_path,
            } => summary(
                &mut text,
                *status,
                *duration,
                jobs,
                critical_path,
                &self.tests,
            )?,
            _ => {}
        }
        render(&mut text, event)?;
        self.out.write_all(&text)?;
        Ok(self.out.flush()?)
    }
}

fn render(out: &mut impl Write, event: &Event) -> std::io::Result<()> {
    match event {
        Event::RunStarted {
            run_id,
            pipeline,
            jobs,
            ..
        } => writeln!(out, "berth: run {run_id} of {pipeline}: {jobs} jobs"),
        Event::Notice { message } => writeln!(out, "berth: {message}"),
        Event::ImagePreparing { image, action } => {
            writeln!(out, "berth: image {image}: {action}")
        }
        // Byte counts come many times a second: plain output keeps the status changes.
        Event::ImageProgress {
            current_bytes: Some(_),
            ..
        } => Ok(()),
        Event::ImageProgress { image, line, .. } => writeln!(out, "berth: image {image}: {line}"),
        Event::JobStarted {
            job,
            stage,
            image,
            attempt,
        } => {
            let again = if *attempt > 1 {
                format!(", attempt {attempt}")
            } else {
                String::new()
            };
            writeln!(
                out,
                "==> {job}: started (stage {stage}, image {image}{again})"
            )
        }
        Event::JobLog { job, lines } => {
            for text in lines
                .iter()
                .filter_map(|l| crate::events::section_view(&l.text))
            {
                writeln!(out, "[{job}] {text}")?;
            }
            Ok(())
        }
        Event::JobRetrying {
            job,
            attempt,
            reason,
        } => writeln!(out, "==> {job}: {reason}; retrying (attempt {attempt})"),
        Event::JobFinished {
            job,
            status,
            duration,
            message,
            ..
        } => {
            let why = status.note(message.as_deref());
            writeln!(
                out,
                "==> {job}: {} in {}{why}",
                status.as_str(),
                units::duration(*duration)
            )
        }
        Event::JobSkipped {
            job,
            status,
            reason,
            ..
        } => writeln!(out, "==> {job}: {} ({reason})", status.as_str()),
        Event::CacheMounted {
            job,
            key,
            path,
            volume,
            read_only,
        } => writeln!(
            out,
            "==> {job}: cache `{key}` at {path}{} (volume {volume})",
            if *read_only { ", read-only" } else { "" }
        ),
        Event::ArtifactsStored {
            job,
            path,
            files,
            bytes,
        } => writeln!(
            out,
            "==> {job}: artifacts: {files} files, {bytes} bytes in {path}"
        ),
        Event::Interrupted { running } => {
            if running.is_empty() {
                writeln!(out, "berth: interrupted")
            } else {
                writeln!(
                    out,
                    "berth: interrupted; stopping {}",
                    running
                        .iter()
                        .map(|j| format!("`{j}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }
        }
        Event::TestReport { job, results } => {
            writeln!(out, "==> {job}: tests: {}", results.counts())
        }
        // The reporter writes the summary, with the tests it has heard of.
        Event::RunFinished { .. } => Ok(()),
        Event::JobQueued { .. } => Ok(()),
    }
}

/// The closing summary: one line per job, the tests the jobs' JUnit reports counted, then the
/// pipeline's result.
pub fn summary(
    out: &mut impl Write,
    status: RunStatus,
    duration: std::time::Duration,
    jobs: &[JobSummary],
    critical_path: &[String],
    tests: &[(String, TestResults)],
) -> std::io::Result<()> {
    writeln!(out)?;
    writeln!(out, "summary:")?;
    let w_stage = jobs.iter().map(|j| j.stage.len()).max().unwrap_or(0);
    let w_name = jobs.iter().map(|j| j.name.len()).max().unwrap_or(0);
    let w_status = jobs
        .iter()
        .map(|j| j.status.as_str().len())
        .max()
        .unwrap_or(0);
    for j in jobs {
        let duration = j
            .duration
            .map(units::duration)
            .unwrap_or_else(|| "-".into());
        let image = j.image.as_deref().unwrap_or("-");
        writeln!(
            out,
            "  {:w_stage$}  {:w_name$}  {:w_status$}  {:>8}  {image}",
            j.stage,
            j.name,
            j.status.as_str(),
            duration
        )?;
    }
    let count = |f: fn(JobStatus) -> bool| jobs.iter().filter(|j| f(j.status)).count();
    let passed = count(|s| s == JobStatus::Passed);
    let allowed = count(|s| s == JobStatus::AllowedFailure);
    let failed = count(|s| s.fails_pipeline());
    let skipped = count(|s| matches!(s, JobStatus::Skipped | JobStatus::Manual));
    let word = match status {
        RunStatus::Passed => "passed",
        RunStatus::Failed => "failed",
        RunStatus::Error => "failed (Docker error)",
        RunStatus::Interrupted => "interrupted",
    };
    test_summary(out, tests)?;
    if critical_path.len() > 1 {
        writeln!(out, "critical path: {}", critical_path.join(" -> "))?;
    }
    writeln!(
        out,
        "pipeline {word} in {}: {}",
        units::duration(duration),
        counts(passed, allowed, failed, skipped)
    )
}

/// What the JUnit reports said, job by job, with each failed test's name, then the total.
fn test_summary(out: &mut impl Write, tests: &[(String, TestResults)]) -> std::io::Result<()> {
    if tests.is_empty() {
        return Ok(());
    }
    writeln!(out, "tests (JUnit reports):")?;
    let total_width = if tests.len() > 1 { "total".len() } else { 0 };
    let width = tests
        .iter()
        .map(|(j, _)| j.len())
        .chain([total_width])
        .max()
        .unwrap_or(0);
    let mut total = TestResults::default();
    for (job, results) in tests {
        writeln!(out, "  {job:width$}  {}", results.counts())?;
        for name in &results.failures {
            writeln!(out, "    failed: {name}")?;
        }
        let unnamed = (results.failed + results.errors).saturating_sub(results.failures.len());
        if unnamed > 0 {
            writeln!(out, "    and {unnamed} more")?;
        }
        total.add(TestResults {
            failures: Vec::new(),
            ..results.clone()
        });
    }
    if tests.len() > 1 {
        writeln!(out, "  {:width$}  {}", "total", total.counts())?;
    }
    Ok(())
}

/// `2 jobs passed, 1 failed (allowed), 0 did not, 1 not run`; allowed failures only when there
/// are some.
fn counts(passed: usize, allowed: usize, failed: usize, skipped: usize) -> String {
    let jobs = if passed == 1 { "job" } else { "jobs" };
    let mut parts = vec![format!("{passed} {jobs} passed")];
    if allowed > 0 {
        parts.push(format!("{allowed} failed (allowed)"));
    }
    parts.push(format!("{failed} did not"));
    parts.push(format!("{skipped} not run"));
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_counts_allowed_failures_apart_in_singular_or_plural() {
        assert_eq!(
            counts(0, 1, 1, 0),
            "0 jobs passed, 1 failed (allowed), 1 did not, 0 not run"
        );
        assert_eq!(counts(1, 0, 0, 2), "1 job passed, 0 did not, 2 not run");
        assert_eq!(
            counts(3, 2, 0, 0),
            "3 jobs passed, 2 failed (allowed), 0 did not, 0 not run"
        );
    }

    #[test]
    fn pull_byte_counts_are_left_out_status_changes_kept() {
        let progress = |line: &str, current: Option<u64>| Event::ImageProgress {
            image: "alpine:3".into(),
            line: line.into(),
            layer: Some("1a2b".into()),
            current_bytes: current,
            total_bytes: current.map(|_| 100),
        };
        let mut out = Vec::new();
        for event in [
            progress("1a2b: Pulling fs layer", None),
            progress("1a2b: Downloading", Some(40)),
            progress("1a2b: Pull complete", None),
        ] {
            render(&mut out, &event).unwrap();
        }
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "berth: image alpine:3: 1a2b: Pulling fs layer\nberth: image alpine:3: 1a2b: Pull complete\n"
        );
    }
}
