//! The live view for a terminal: a spinner line per running job (stage, elapsed time, latest log
//! line), a line per image being pulled or built, a status line per finished job, the tail of a
//! failed job's log, an overall line of counts, and the closing summary.
//!
//! indicatif reads the terminal's width at each redraw and cuts the wide message to fit, so narrow
//! terminals and resizes keep one line per bar. Colours follow `console`, which honours NO_COLOR.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use console::style;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::plain::summary;
use super::{ReportError, Reporter};
use crate::events::{Event, JobStatus};
use crate::units::bytes;

/// How many lines of a failed job's log are shown under it.
const TAIL: usize = 20;
const TICK: Duration = Duration::from_millis(120);

pub struct Terminal {
    multi: MultiProgress,
    /// The bottom line: done / running / queued / failed and the run's elapsed time.
    overall: Option<ProgressBar>,
    bars: HashMap<String, ProgressBar>,
    image: Option<ImageView>,
    tails: HashMap<String, VecDeque<String>>,
    counts: Counts,
    verbose: bool,
    /// The jobs' JUnit results so far, for the summary.
    tests: Vec<(String, crate::events::TestResults)>,
    /// The first line of the event being shown that could not be written.
    unwritten: std::cell::Cell<Option<std::io::Error>>,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Counts {
    planned: usize,
    done: usize,
    running: usize,
    failed: usize,
}

impl Counts {
    fn line(&self) -> String {
        let queued = self
            .planned
            .saturating_sub(self.done)
            .saturating_sub(self.running);
        format!(
            "{} done · {} running · {} queued · {} failed",
            self.done, self.running, queued, self.failed
        )
    }
}

/// The image being pulled or built (one at a time, before any job starts).
struct ImageView {
    image: String,
    action: String,
    bar: ProgressBar,
    started: Instant,
    /// Pull: each layer's latest status and bytes.
    layers: BTreeMap<String, (String, Option<u64>, Option<u64>)>,
    /// Build: the current `Step N/M : ...` and the latest line of its output.
    step: Option<String>,
    last: Option<String>,
}

impl ImageView {
    fn message(&self) -> String {
        if self.layers.is_empty() {
            return match (&self.step, &self.last) {
                (Some(step), Some(last)) => format!("{step} · {last}"),
                (Some(one), None) | (None, Some(one)) => one.clone(),
                (None, None) => self.action.clone(),
            };
        }
        pull_message(&self.layers)
    }
}

/// `2/5 layers · 1a2b3c Downloading 3.1 MB/20.4 MB · ...` for the layers still moving.
fn pull_message(layers: &BTreeMap<String, (String, Option<u64>, Option<u64>)>) -> String {
    let finished = |status: &str| {
        matches!(
            status,
            "Pull complete" | "Already exists" | "Download complete"
        ) || status.starts_with("Digest:")
            || status.starts_with("Status:")
    };
    let done = layers.values().filter(|(s, ..)| finished(s)).count();
    let mut parts = vec![format!("{done}/{} layers", layers.len())];
    for (layer, (status, current, total)) in layers {
        if finished(status) {
            continue;
        }
        let short: String = layer.chars().take(12).collect();
        parts.push(match (current, total) {
            (Some(c), Some(t)) => format!("{short} {status} {}/{}", bytes(*c), bytes(*t)),
            (Some(c), None) => format!("{short} {status} {}", bytes(*c)),
            _ => format!("{short} {status}"),
        });
    }
    parts.join(" · ")
}

/// A log line made safe to print among the live lines: escape sequences, carriage returns and
/// other control characters from the job would move the cursor under indicatif's feet.
fn printable(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    // The same view of the line as the mask's (events::visible), so that what is shown is
    // what was masked.
    crate::events::visible(line.as_bytes(), |shown| {
        let part = line
            .get(shown.clone())
            .map(std::borrow::Cow::Borrowed)
            .unwrap_or_else(|| String::from_utf8_lossy(&line.as_bytes()[shown]));
        if part.contains('\t') {
            out.push_str(&part.replace('\t', "    "));
        } else {
            out.push_str(&part);
        }
    });
    out
}

fn mark(status: JobStatus) -> String {
    let m = match status {
        JobStatus::Passed => style("✔").green(),
        JobStatus::AllowedFailure => style("⚠").yellow(),
        JobStatus::Skipped | JobStatus::Manual => style("○").dim(),
        JobStatus::Cancelled => style("■").yellow(),
        _ => style("✘").red(),
    };
    m.for_stderr().to_string()
}

fn spinner_style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_spinner())
}

/// The terminal's settings from before the live view turned echo off.
static SAVED: std::sync::Mutex<Option<libc::termios>> = std::sync::Mutex::new(None);

/// Keys typed during the run (^C above all) would be echoed into the live lines and shift them
/// under indicatif's feet; echo stays off while the view is up. Signals still work (ISIG).
fn quiet_echo() {
    // SAFETY: tcgetattr/tcsetattr on stderr's terminal with termios values we own.
    unsafe {
        let mut settings: libc::termios = std::mem::zeroed();
        if libc::tcgetattr(libc::STDERR_FILENO, &mut settings) != 0 {
            return;
        }
        let saved = settings;
        settings.c_lflag &= !(libc::ECHO | libc::ECHONL);
        if libc::tcsetattr(libc::STDERR_FILENO, libc::TCSANOW, &settings) == 0 {
            if let Ok(mut slot) = SAVED.lock() {
                slot.get_or_insert(saved);
            }
        }
    }
}

/// The live lines, for a hard exit to take off the screen.
static LIVE: std::sync::Mutex<Option<MultiProgress>> = std::sync::Mutex::new(None);

/// Take the live lines off the screen and put the terminal's settings back (the view ended, or
/// berth exits without unwinding: a second ^C).
pub fn restore_terminal() {
    if let Some(multi) = LIVE.lock().ok().and_then(|mut slot| slot.take()) {
        // Then hidden, so that no tick draws the lines again before the process ends.
        let _ = multi.clear();
        multi.set_draw_target(ProgressDrawTarget::hidden());
    }
    let saved = SAVED.lock().ok().and_then(|mut slot| slot.take());
    if let Some(settings) = saved {
        // SAFETY: tcsetattr with the settings tcgetattr gave.
        unsafe { libc::tcsetattr(libc::STDERR_FILENO, libc::TCSANOW, &settings) };
    }
}

impl Terminal {
    pub fn new(verbose: bool) -> Self {
        quiet_echo();
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        if let Ok(mut slot) = LIVE.lock() {
            *slot = Some(multi.clone());
        }
        Terminal {
            multi,
            overall: None,
            bars: HashMap::new(),
            image: None,
            tails: HashMap::new(),
            counts: Counts::default(),
            verbose,
            tests: Vec::new(),
            unwritten: Default::default(),
        }
    }

    fn line(&self, text: String) {
        self.failed(self.multi.println(text));
    }

    /// Keep the first write of this event that failed.
    fn failed(&self, written: std::io::Result<()>) {
        if let Err(e) = written {
            let first = self.unwritten.take().unwrap_or(e);
            self.unwritten.set(Some(first));
        }
    }

    /// A new bar, above the overall line so that it stays at the bottom.
    fn add(&self, bar: ProgressBar) -> ProgressBar {
        match &self.overall {
            Some(overall) => self.multi.insert_before(overall, bar),
            None => self.multi.add(bar),
        }
    }

    fn recount(&self) {
        if let Some(overall) = &self.overall {
            overall.set_message(self.counts.line());
        }
    }

    fn image_done(&mut self) {
        if let Some(view) = self.image.take() {
            view.bar.finish_and_clear();
            self.line(format!(
                "berth: image {}: {} done in {}",
                view.image,
                view.action,
                crate::units::duration(view.started.elapsed())
            ));
        }
    }

    /// Take every live line off the screen; what was printed above them stays.
    fn clear_live(&mut self) {
        if let Some(view) = self.image.take() {
            view.bar.finish_and_clear();
        }
        for (_, bar) in self.bars.drain() {
            bar.finish_and_clear();
        }
        if let Some(overall) = self.overall.take() {
            overall.finish_and_clear();
        }
    }
}

impl Drop for Terminal {
    /// A run that stops early (an image that cannot be had) still leaves a clean terminal.
    fn drop(&mut self) {
        self.clear_live();
        restore_terminal();
    }
}

impl Reporter for Terminal {
    /// A line that cannot be written does not stop the view's bookkeeping; the event's first
    /// such error is returned.
    fn handle(&mut self, event: &Event) -> Result<(), ReportError> {
        match event {
            Event::RunStarted {
                run_id,
                pipeline,
                jobs,
                ..
            } => {
                self.line(format!("berth: run {run_id} of {pipeline}: {jobs} jobs"));
                self.counts.planned = *jobs;
                let overall = self.multi.add(ProgressBar::new_spinner());
                overall.set_style(spinner_style("{elapsed:>4} {wide_msg}"));
                overall.enable_steady_tick(TICK);
                self.overall = Some(overall);
                self.recount();
            }
            Event::Notice { message } => self.line(format!("berth: {}", printable(message))),
            Event::ImagePreparing { image, action } => {
                self.image_done();
                let bar = self.add(ProgressBar::new_spinner());
                bar.set_style(spinner_style(
                    "{spinner} {prefix:.bold} {elapsed:>4} {wide_msg}",
                ));
                bar.set_prefix(format!("image {image}"));
                bar.set_message(action.clone());
                bar.enable_steady_tick(TICK);
                self.image = Some(ImageView {
                    image: image.clone(),
                    action: action.clone(),
                    bar,
                    started: Instant::now(),
                    layers: BTreeMap::new(),
                    step: None,
                    last: None,
                });
            }
            Event::ImageProgress {
                image,
                line,
                layer,
                current_bytes,
                total_bytes,
            } => {
                let Some(view) = self.image.as_mut().filter(|v| &v.image == image) else {
                    return Ok(());
                };
                let line = printable(line);
                match layer {
                    Some(layer) => {
                        let status = line
                            .strip_prefix(layer.as_str())
                            .and_then(|rest| rest.strip_prefix(": "))
                            .unwrap_or(&line)
                            .to_string();
                        view.layers
                            .insert(layer.clone(), (status, *current_bytes, *total_bytes));
                    }
                    None if line.starts_with("Step ") => {
                        view.step = Some(line);
                        view.last = None;
                    }
                    None => view.last = Some(line),
                }
                view.bar.set_message(view.message());
            }
            Event::JobQueued { .. } => self.image_done(),
            Event::JobStarted {
                job,
                stage,
                attempt,
                ..
            } => {
                self.image_done();
                let bar = self.add(ProgressBar::new_spinner());
                bar.set_style(spinner_style(
                    "{spinner} {prefix:.bold} {elapsed:>4} {wide_msg}",
                ));
                let again = if *attempt > 1 {
                    format!(" (attempt {attempt})")
                } else {
                    String::new()
                };
                bar.set_prefix(format!("{job}{again}"));
                bar.set_message(format!("[{stage}]"));
                bar.enable_steady_tick(TICK);
                match self.bars.insert(job.clone(), bar) {
                    Some(old) => old.finish_and_clear(),
                    None => self.counts.running += 1,
                }
                self.tails.insert(job.clone(), VecDeque::new());
                self.recount();
            }
            Event::JobLog { job, lines } => {
                // Only the lines that can still be seen: all with -v, else the tail.
                let from = if self.verbose {
                    0
                } else {
                    lines.len().saturating_sub(TAIL)
                };
                let shown: Vec<String> = lines[from..]
                    .iter()
                    .filter_map(|l| crate::events::section_view(&l.text))
                    .map(printable)
                    .collect();
                if self.verbose && !shown.is_empty() {
                    let text: Vec<String> = shown.iter().map(|l| format!("[{job}] {l}")).collect();
                    self.line(text.join("\n"));
                }
                if let (Some(bar), Some(last)) = (self.bars.get(job), shown.last()) {
                    bar.set_message(last.clone());
                }
                let tail = self.tails.entry(job.clone()).or_default();
                let older = shown.len().saturating_sub(TAIL);
                for line in shown.into_iter().skip(older) {
                    if tail.len() == TAIL {
                        tail.pop_front();
                    }
                    tail.push_back(line);
                }
            }
            Event::JobRetrying {
                job,
                attempt,
                reason,
            } => self.line(format!(
                "↻ {job}: {}; retrying (attempt {attempt})",
                printable(reason)
            )),
            Event::JobFinished {
                job,
                status,
                duration,
                message,
                ..
            } => {
                if let Some(bar) = self.bars.remove(job) {
                    bar.finish_and_clear();
                    self.counts.running = self.counts.running.saturating_sub(1);
                }
                self.counts.done += 1;
                if status.fails_pipeline() {
                    self.counts.failed += 1;
                }
                self.recount();
                let why = printable(&status.note(message.as_deref()));
                self.line(format!(
                    "{} {} {} in {}{why}",
                    mark(*status),
                    style(job).bold().for_stderr(),
                    status.as_str(),
                    crate::units::duration(*duration)
                ));
                let tail = self.tails.remove(job).unwrap_or_default();
                if *status != JobStatus::Passed && !self.verbose {
                    for l in tail {
                        self.line(format!("    │ {l}"));
                    }
                }
            }
            Event::JobSkipped {
                job,
                status,
                reason,
                ..
            } => {
                self.counts.done += 1;
                if status.fails_pipeline() {
                    self.counts.failed += 1;
                }
                self.line(format!(
                    "{} {job} {} ({})",
                    mark(*status),
                    status.as_str(),
                    printable(reason)
                ));
                self.recount();
            }
            Event::CacheMounted { .. } => {}
            Event::TestReport { job, results } => {
                self.line(format!("  {job}: tests: {}", results.counts()));
                self.tests.push((job.clone(), results.clone()));
            }
            Event::ArtifactsStored {
                job,
                path,
                files,
                bytes,
            } => self.line(format!(
                "  {job}: artifacts: {files} files, {bytes} bytes in {path}"
            )),
            Event::Interrupted { running } => {
                self.line(format!(
                    "berth: interrupted; stopping {}",
                    running.join(", ")
                ));
                for bar in self.bars.values() {
                    bar.set_message("stopping…");
                }
            }
            Event::RunFinished {
                status,
                duration,
                jobs,
                critical_path,
            } => {
                self.clear_live();
                let mut out = Vec::new();
                // Rendered into memory: it cannot fail.
                let _ = summary(
                    &mut out,
                    *status,
                    *duration,
                    jobs,
                    critical_path,
                    &self.tests,
                );
                let written = self.multi.suspend(|| {
                    use std::io::Write;
                    std::io::stderr().write_all(&out)
                });
                self.failed(written);
            }
        }
        match self.unwritten.take() {
            Some(e) => Err(e.into()),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_drops_escapes_and_control_characters() {
        assert_eq!(printable("\u{1b}[31mred\u{1b}[0m done"), "red done");
        assert_eq!(printable("50%\r100%"), "50%100%");
        assert_eq!(printable("\u{1b}]0;title\u{7}text"), "text");
        assert_eq!(printable("\u{1b}]8;;http://x\u{1b}\\link"), "link");
        assert_eq!(printable("a\tb"), "a    b");
        assert_eq!(printable("plain ✔ text"), "plain ✔ text");
    }

    #[test]
    fn counts_line_derives_queued() {
        let c = Counts {
            planned: 5,
            done: 2,
            running: 1,
            failed: 1,
        };
        assert_eq!(c.line(), "2 done · 1 running · 2 queued · 1 failed");
    }

    #[test]
    fn pull_message_shows_moving_layers_with_bytes() {
        let mut layers = BTreeMap::new();
        layers.insert("aaa".to_string(), ("Pull complete".to_string(), None, None));
        layers.insert(
            "bbb".to_string(),
            ("Downloading".to_string(), Some(3_100_000), Some(20_400_000)),
        );
        layers.insert("ccc".to_string(), ("Waiting".to_string(), None, None));
        assert_eq!(
            pull_message(&layers),
            "1/3 layers · bbb Downloading 3.1 MB/20.4 MB · ccc Waiting"
        );
    }
}
