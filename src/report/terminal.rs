//! The live view for a terminal: a spinner line per running job with its latest log line, a
//! status line per finished job, the tail of a failed job's log, and the closing summary.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::plain::summary;
use super::Reporter;
use crate::events::{Event, JobStatus};
use crate::pipeline::duration::human;

/// How many lines of a failed job's log are shown under it.
const TAIL: usize = 20;

pub struct Terminal {
    multi: MultiProgress,
    bars: HashMap<String, ProgressBar>,
    tails: HashMap<String, VecDeque<String>>,
    verbose: bool,
}

impl Terminal {
    pub fn new(verbose: bool) -> Self {
        Terminal {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
            bars: HashMap::new(),
            tails: HashMap::new(),
            verbose,
        }
    }

    fn line(&self, text: String) {
        let _ = self.multi.println(text);
    }
}

fn mark(status: JobStatus) -> &'static str {
    match status {
        JobStatus::Passed => "✔",
        JobStatus::AllowedFailure => "⚠",
        JobStatus::Skipped | JobStatus::Manual => "○",
        JobStatus::Cancelled => "■",
        _ => "✘",
    }
}

impl Reporter for Terminal {
    fn handle(&mut self, event: &Event) {
        match event {
            Event::RunStarted {
                run_id,
                pipeline,
                jobs,
                ..
            } => self.line(format!("berth: run {run_id} of {pipeline}: {jobs} jobs")),
            Event::Notice { message } => self.line(format!("berth: {message}")),
            Event::ImagePreparing { image, action } => {
                self.line(format!("berth: image {image}: {action}"))
            }
            Event::ImageProgress { .. } => {}
            Event::JobStarted {
                job,
                stage,
                attempt,
                ..
            } => {
                let bar = self.multi.add(ProgressBar::new_spinner());
                bar.set_style(
                    ProgressStyle::with_template(
                        "{spinner} {prefix:.bold} {elapsed:>4} {wide_msg}",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                );
                let again = if *attempt > 1 {
                    format!(" (attempt {attempt})")
                } else {
                    String::new()
                };
                bar.set_prefix(format!("{job}{again}"));
                bar.set_message(format!("[{stage}]"));
                bar.enable_steady_tick(Duration::from_millis(120));
                if let Some(old) = self.bars.insert(job.clone(), bar) {
                    old.finish_and_clear();
                }
                self.tails.insert(job.clone(), VecDeque::new());
            }
            Event::JobLog { job, line } => {
                if self.verbose {
                    self.line(format!("[{job}] {line}"));
                }
                if let Some(bar) = self.bars.get(job) {
                    bar.set_message(line.clone());
                }
                let tail = self.tails.entry(job.clone()).or_default();
                if tail.len() == TAIL {
                    tail.pop_front();
                }
                tail.push_back(line.clone());
            }
            Event::JobRetrying {
                job,
                attempt,
                reason,
            } => self.line(format!("↻ {job}: {reason}; retrying (attempt {attempt})")),
            Event::JobFinished {
                job,
                status,
                duration,
                message,
                ..
            } => {
                if let Some(bar) = self.bars.remove(job) {
                    bar.finish_and_clear();
                }
                let why = status.note(message.as_deref());
                self.line(format!(
                    "{} {job} {} in {}{why}",
                    mark(*status),
                    status.as_str(),
                    human(*duration)
                ));
                if *status != JobStatus::Passed && !self.verbose {
                    for l in self.tails.remove(job).unwrap_or_default() {
                        self.line(format!("    │ {l}"));
                    }
                }
            }
            Event::JobSkipped {
                job,
                status,
                reason,
                ..
            } => self.line(format!(
                "{} {job} {} ({reason})",
                mark(*status),
                status.as_str()
            )),
            Event::CacheMounted { .. } => {}
            Event::ArtifactsStored {
                job,
                path,
                files,
                bytes,
            } => self.line(format!(
                "  {job}: artifacts: {files} files, {bytes} bytes in {path}"
            )),
            Event::Interrupted { running } => self.line(format!(
                "berth: interrupted; stopping {}",
                running.join(", ")
            )),
            Event::JobQueued { .. } => {}
            Event::RunFinished {
                status,
                duration,
                jobs,
                critical_path,
            } => {
                for bar in self.bars.values() {
                    bar.finish_and_clear();
                }
                let mut out = Vec::new();
                let _ = summary(&mut out, *status, *duration, jobs, critical_path);
                let _ = self.multi.suspend(|| {
                    use std::io::Write;
                    std::io::stderr().write_all(&out)
                });
            }
        }
    }
}
