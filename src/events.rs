//! What happens during a run, as a stream of events. The engine sends them; reporters turn them
//! into terminal output, JSON, JUnit or records. The engine never prints.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::mpsc;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    Passed,
    /// Failed, but `allow_failure` lets the pipeline pass.
    AllowedFailure,
    Failed,
    TimedOut,
    /// Docker could not run the job (not the job's own fault).
    Error,
    /// Stopped by Ctrl-C.
    Cancelled,
    /// Not run because of what happened before it (`when`, a failed dependency).
    Skipped,
    /// A manual job that was not asked for.
    Manual,
}

impl JobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Passed => "passed",
            JobStatus::AllowedFailure => "failed (allowed)",
            JobStatus::Failed => "failed",
            JobStatus::TimedOut => "timed out",
            JobStatus::Error => "error",
            JobStatus::Cancelled => "cancelled",
            JobStatus::Skipped => "skipped",
            JobStatus::Manual => "manual",
        }
    }

    /// `": why"` after a status that is not a pass, for status lines.
    pub fn note(self, message: Option<&str>) -> String {
        match message {
            Some(m) if self != JobStatus::Passed => format!(": {m}"),
            _ => String::new(),
        }
    }

    /// Does this status fail the pipeline?
    pub fn fails_pipeline(self) -> bool {
        matches!(
            self,
            JobStatus::Failed | JobStatus::TimedOut | JobStatus::Error | JobStatus::Cancelled
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Passed,
    Failed,
    /// Docker failed under the run.
    Error,
    Interrupted,
}

/// One job's line in the closing summary.
#[derive(Debug, Clone, Serialize)]
pub struct JobSummary {
    pub name: String,
    pub stage: String,
    pub status: JobStatus,
    pub image: Option<String>,
    #[serde(rename = "duration_ms", serialize_with = "opt_ms")]
    pub duration: Option<Duration>,
}

pub use crate::store::record::TestResults;

/// Facts about a run that make it reproducible, sent once at its start.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RunInfo {
    pub berth_version: String,
    pub engine_version: String,
    pub pipeline_file: String,
    pub pipeline_sha256: String,
    pub commit: String,
    /// Uncommitted changes in the project when the run started.
    pub dirty: bool,
    /// Seconds since the epoch.
    pub started_at: u64,
    /// What the pipeline ran for: its branch or tag, and CI_PIPELINE_SOURCE.
    pub branch: Option<String>,
    pub tag: Option<String>,
    pub source: String,
    /// The pipeline files read from the project.
    pub files: Vec<crate::store::record::PipelineFile>,
    /// The remote actions used, at their commits.
    pub pins: Vec<crate::store::record::Pin>,
}

/// Durations travel as whole milliseconds.
fn ms<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_millis() as u64)
}

fn opt_ms<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => ms(d, s),
        None => s.serialize_none(),
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    RunStarted {
        run_id: String,
        pipeline: String,
        jobs: usize,
        info: RunInfo,
    },
    /// A job that will run, with everything needed to reproduce it (secrets masked).
    JobQueued {
        job: String,
        stage: String,
        image: String,
        /// The image's ID (digest of its configuration) at the time of the run.
        image_id: Option<String>,
        variables: Vec<(String, String)>,
        commands: Vec<String>,
    },
    /// Something the user should know that is not a job's output.
    Notice {
        message: String,
    },
    ImagePreparing {
        image: String,
        action: String,
    },
    /// A pull's layer status (`layer` set, with bytes when Docker tells) or a build's output line.
    ImageProgress {
        image: String,
        line: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        layer: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        current_bytes: Option<u64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        total_bytes: Option<u64>,
    },
    JobStarted {
        job: String,
        stage: String,
        image: String,
        attempt: u32,
    },
    /// Lines of a job's output (or berth's own lines about the job), as many as arrived at once.
    /// `--output json` writes one `job_log` object per line.
    JobLog {
        job: String,
        lines: Vec<LogLine>,
    },
    JobRetrying {
        job: String,
        attempt: u32,
        reason: String,
    },
    JobFinished {
        job: String,
        stage: String,
        status: JobStatus,
        exit_code: Option<i64>,
        #[serde(rename = "duration_ms", serialize_with = "ms")]
        duration: Duration,
        message: Option<String>,
        attempts: u32,
    },
    JobSkipped {
        job: String,
        stage: String,
        status: JobStatus,
        reason: String,
    },
    CacheMounted {
        job: String,
        key: String,
        path: String,
        volume: String,
        read_only: bool,
    },
    ArtifactsStored {
        job: String,
        /// The archive, relative to the project directory.
        path: String,
        files: usize,
        bytes: u64,
    },
    /// What a job's JUnit reports (`artifacts: reports: junit`) say, once they are kept.
    TestReport {
        job: String,
        #[serde(flatten)]
        results: TestResults,
    },
    Interrupted {
        running: Vec<String>,
    },
    RunFinished {
        status: RunStatus,
        #[serde(rename = "duration_ms", serialize_with = "ms")]
        duration: Duration,
        jobs: Vec<JobSummary>,
        /// The chain of jobs that set the total time, first to last.
        critical_path: Vec<String>,
    },
}

/// How a piece of a job's output ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineEnd {
    Lf,
    CrLf,
    /// The line goes on in the next piece: it was too long for one.
    Cut,
    /// The output ended here without a newline.
    Eof,
}

/// A line of a job's output, or a part of a line too long for one piece. Its text is for
/// people; [`LogLine::write_exact`] gives back the bytes the job printed, for the run record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// Without the line's end; invalid UTF-8 shows as U+FFFD.
    pub text: String,
    /// The exact bytes (without the end) when they are not valid UTF-8.
    pub raw: Option<Vec<u8>>,
    pub end: LineEnd,
}

impl LogLine {
    /// A whole line of text (berth's own lines about a job).
    pub fn text(text: impl Into<String>) -> LogLine {
        LogLine {
            text: text.into(),
            raw: None,
            end: LineEnd::Lf,
        }
    }

    pub fn from_bytes(bytes: &[u8], end: LineEnd) -> LogLine {
        match std::str::from_utf8(bytes) {
            Ok(text) => LogLine {
                text: text.to_string(),
                raw: None,
                end,
            },
            Err(_) => LogLine {
                text: String::from_utf8_lossy(bytes).into_owned(),
                raw: Some(bytes.to_vec()),
                end,
            },
        }
    }

    /// The line goes on in the next piece.
    pub fn is_cut(&self) -> bool {
        self.end == LineEnd::Cut
    }

    /// The bytes as the job printed them, with the line's end.
    pub fn write_exact(&self, out: &mut impl std::io::Write) -> std::io::Result<()> {
        out.write_all(self.raw.as_deref().unwrap_or(self.text.as_bytes()))?;
        out.write_all(match self.end {
            LineEnd::Lf => b"\n",
            LineEnd::CrLf => b"\r\n",
            LineEnd::Cut | LineEnd::Eof => b"",
        })
    }
}

/// As `--output json` shows a line: `line`, and `cut: true` when it goes on in the next one.
impl Serialize for LogLine {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("line", &self.text)?;
        if self.is_cut() {
            map.serialize_entry("cut", &true)?;
        }
        map.end()
    }
}

/// Where the engine sends events. Cloneable; sending never fails the run (a reporter that went
/// away simply stops listening).
#[derive(Clone)]
pub struct Sink {
    tx: mpsc::Sender<Event>,
    /// Secret values replaced by `[MASKED]` in everything sent.
    mask: Arc<Mask>,
}

pub const MASK: &str = "[MASKED]";

impl Sink {
    pub fn channel(capacity: usize) -> (Sink, mpsc::Receiver<Event>) {
        Self::masking(capacity, Vec::new())
    }

    /// A channel whose events never show any of `secrets`.
    pub fn masking(capacity: usize, secrets: Vec<String>) -> (Sink, mpsc::Receiver<Event>) {
        let (tx, rx) = mpsc::channel(capacity);
        (
            Sink {
                tx,
                mask: Arc::new(Mask::new(secrets)),
            },
            rx,
        )
    }

    /// What the sink hides, for text that does not travel as an event (berth's own errors).
    pub fn mask(&self) -> Arc<Mask> {
        self.mask.clone()
    }

    /// The same channel, also hiding `values` in what goes through it (what a job asks to
    /// mask as it runs: GitHub's `::add-mask::`).
    pub fn also_masking(&self, values: &[String]) -> Sink {
        Sink {
            tx: self.tx.clone(),
            mask: Arc::new(self.mask.with(values.iter().cloned())),
        }
    }

    pub async fn send(&self, mut event: Event) {
        if !self.mask.is_empty() {
            event.mask(&self.mask);
        }
        let _ = self.tx.send(event).await;
    }
}

/// Lines of a multi-line secret shorter than this (after trimming) are not masked on their own:
/// an empty line or a lone `}` would mask every such line of every log.
pub const MIN_SECRET_LINE: usize = 4;

/// The secret values to hide, and how to find them.
pub struct Mask {
    /// Longest first, so that a secret containing another is masked whole.
    finders: Vec<memchr::memmem::Finder<'static>>,
}

impl Mask {
    /// Each value, and each line of a multi-line value on its own (a job printing the value
    /// prints it line by line), except trivially short lines.
    pub fn new(values: impl IntoIterator<Item = String>) -> Mask {
        let mut secrets: Vec<String> = Vec::new();
        for v in values {
            if v.contains('\n') {
                for line in v.lines().map(str::trim) {
                    if line.chars().count() >= MIN_SECRET_LINE {
                        secrets.push(line.to_string());
                    }
                }
            }
            secrets.push(v);
        }
        secrets.retain(|s| !s.is_empty());
        secrets.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        secrets.dedup();
        Mask {
            finders: secrets
                .iter()
                .map(|s| memchr::memmem::Finder::new(s.as_bytes()).into_owned())
                .collect(),
        }
    }

    /// These secrets and `values`.
    pub fn with(&self, values: impl IntoIterator<Item = String>) -> Mask {
        let known = self
            .finders
            .iter()
            .map(|f| String::from_utf8_lossy(f.needle()).into_owned());
        Mask::new(known.chain(values))
    }

    pub fn is_empty(&self) -> bool {
        self.finders.is_empty()
    }

    /// The longest secret's length in bytes.
    pub fn longest(&self) -> usize {
        self.finders.first().map_or(0, |f| f.needle().len())
    }

    /// `text` with every secret replaced.
    pub fn masked(&self, text: &str) -> String {
        let mut text = text.to_string();
        self.text(&mut text);
        text
    }

    /// Replace every secret in `text`: as it is, and as a terminal shows it (escape sequences
    /// and control characters removed, so that `hun\e[0mter2` shows `hunter2`).
    pub fn text(&self, text: &mut String) {
        if let Some(masked) = self.apply(text.as_bytes()) {
            *text = String::from_utf8(masked)
                .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
        }
    }

    pub fn bytes(&self, bytes: &mut Vec<u8>) {
        if let Some(masked) = self.apply(bytes) {
            *bytes = masked;
        }
    }

    /// Where to cut a line that is too long near `at` so that no secret is split by the cut
    /// (a secret split in two pieces could be masked in neither): `at`, or the start of a secret
    /// that spans it. `buf` holds at least [`Mask::longest`] bytes past `at`.
    pub fn safe_cut(&self, buf: &[u8], at: usize) -> usize {
        let mut cut = at.min(buf.len());
        // Moving the cut back may split another secret: again until none is (bounded, as the
        // cut only moves back).
        for _ in 0..=self.finders.len() {
            let before = cut;
            for f in &self.finders {
                let n = f.needle().len();
                // Longer secrets than half the room before the cut are not worth a short piece.
                if n < 2 || n > cut / 2 {
                    continue;
                }
                let (from, to) = (cut + 1 - n, (cut + n - 1).min(buf.len()));
                if let Some(p) = f.find(&buf[from..to]) {
                    cut = cut.min(from + p);
                }
            }
            if cut == before {
                break;
            }
        }
        cut
    }

    /// `bytes` with the secrets replaced, or None when there is none in it.
    fn apply(&self, bytes: &[u8]) -> Option<Vec<u8>> {
        let mut hits: Vec<(usize, usize)> = Vec::new();
        for f in &self.finders {
            let n = f.needle().len();
            hits.extend(f.find_iter(bytes).map(|p| (p, p + n)));
        }
        if has_controls(bytes) {
            // The shown text, and where each of its bytes is in the line.
            let mut shown = Vec::with_capacity(bytes.len());
            let mut at = Vec::with_capacity(bytes.len());
            visible(bytes, |r| {
                shown.extend_from_slice(&bytes[r.clone()]);
                at.extend(r);
            });
            for f in &self.finders {
                let n = f.needle().len();
                hits.extend(f.find_iter(&shown).map(|p| (at[p], at[p + n - 1] + 1)));
            }
        }
        if hits.is_empty() {
            return None;
        }
        hits.sort_unstable();
        let mut out = Vec::with_capacity(bytes.len());
        let mut done = 0;
        let mut hits = hits.into_iter().peekable();
        while let Some((start, mut end)) = hits.next() {
            // Overlapping finds become one mask.
            while let Some(&(s, e)) = hits.peek() {
                if s >= end {
                    break;
                }
                end = end.max(e);
                hits.next();
            }
            out.extend_from_slice(&bytes[done..start]);
            out.extend_from_slice(MASK.as_bytes());
            done = end;
        }
        out.extend_from_slice(&bytes[done..]);
        Some(out)
    }
}

fn has_controls(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f || b == 0xc2)
}

/// A job's log line as a reader sees it: GitLab's section markers
/// (`section_start:<time>:<name>[options]\r\x1b[0K`, `section_end:...`) at its start are
/// GitLab's log viewer's to fold, not text; `None`: a line of markers alone (a section's end).
/// The log file keeps them, byte for byte as the runner writes them.
pub fn section_view(text: &str) -> Option<&str> {
    const CLEAR: &str = "\r\x1b[0K";
    let mut rest = text;
    while rest.starts_with("section_start:") || rest.starts_with("section_end:") {
        match rest.find(CLEAR) {
            Some(end) => rest = &rest[end + CLEAR.len()..],
            None => break,
        }
    }
    (rest.len() == text.len() || !rest.is_empty()).then_some(rest)
}

/// The parts of `bytes` a terminal view shows, as ranges: escape sequences (CSI `ESC [ ... final`,
/// OSC `ESC ] ... BEL or ESC \`, and `ESC` with one character) and control characters (C0, DEL,
/// C1) are left out; tabs stay. Ranges of valid UTF-8 start and end on character boundaries.
pub fn visible(bytes: &[u8], mut shown: impl FnMut(std::ops::Range<usize>)) {
    let (mut i, mut start) = (0, 0);
    while i < bytes.len() {
        let b = bytes[i];
        let skip_to = if b == 0x1b {
            let mut j = i + 1;
            match bytes.get(j) {
                Some(b'[') => {
                    j += 1;
                    while j < bytes.len() {
                        j += 1;
                        if (0x40..=0x7e).contains(&bytes[j - 1]) {
                            break;
                        }
                    }
                }
                Some(b']') => {
                    j += 1;
                    while j < bytes.len() {
                        if bytes[j] == 0x07 {
                            j += 1;
                            break;
                        }
                        if bytes[j] == 0x1b && bytes.get(j + 1) == Some(&b'\\') {
                            j += 2;
                            break;
                        }
                        j += 1;
                    }
                }
                Some(&c) => j += utf8_len(c),
                None => {}
            }
            Some(j.min(bytes.len()))
        } else if (b < 0x20 && b != b'\t') || b == 0x7f {
            Some(i + 1)
        } else if b == 0xc2 && matches!(bytes.get(i + 1), Some(0x80..=0x9f)) {
            Some(i + 2)
        } else {
            None
        };
        match skip_to {
            Some(end) => {
                if start < i {
                    shown(start..i);
                }
                i = end;
                start = end;
            }
            None => i += 1,
        }
    }
    if start < bytes.len() {
        shown(start..bytes.len());
    }
}

/// The length of the UTF-8 character that starts with `b` (1 for a byte that starts none).
fn utf8_len(b: u8) -> usize {
    match b {
        0xc0..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xf7 => 4,
        _ => 1,
    }
}

impl Event {
    /// Replace every secret value in the event's free text: what came from the pipeline, its
    /// variables, the jobs or the engine (job and stage names are the pipeline's own words).
    pub fn mask(&mut self, mask: &Mask) {
        let m = |s: &mut String| mask.text(s);
        match self {
            Event::JobLog { lines, .. } => {
                for line in lines {
                    m(&mut line.text);
                    if let Some(raw) = &mut line.raw {
                        mask.bytes(raw);
                    }
                }
            }
            Event::Notice { message } => m(message),
            Event::JobQueued {
                image,
                variables,
                commands,
                ..
            } => {
                m(image);
                for (_, v) in variables.iter_mut() {
                    m(v);
                }
                for c in commands.iter_mut() {
                    m(c);
                }
            }
            Event::ImagePreparing { image, action } => {
                m(image);
                m(action);
            }
            Event::ImageProgress {
                image, line, layer, ..
            } => {
                m(image);
                m(line);
                if let Some(layer) = layer {
                    m(layer);
                }
            }
            Event::JobStarted { image, .. } => m(image),
            Event::JobFinished {
                message: Some(text),
                ..
            }
            | Event::JobRetrying { reason: text, .. }
            | Event::JobSkipped { reason: text, .. } => m(text),
            Event::CacheMounted { key, path, .. } => {
                m(key);
                m(path);
            }
            Event::ArtifactsStored { path, .. } => m(path),
            Event::TestReport { results, .. } => {
                for f in results.failures.iter_mut() {
                    m(f);
                }
            }
            Event::RunFinished { jobs, .. } => {
                for image in jobs.iter_mut().filter_map(|j| j.image.as_mut()) {
                    m(image);
                }
            }
            Event::RunStarted { .. }
            | Event::JobFinished { message: None, .. }
            | Event::Interrupted { .. } => {}
        }
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn section_markers_are_left_out_of_the_view() {
        let start =
            "section_start:1796173340:step_script\r\x1b[0K\x1b[0K\x1b[36;1mExecuting\x1b[0;m";
        assert_eq!(
            section_view(start),
            Some("\x1b[0K\x1b[36;1mExecuting\x1b[0;m")
        );
        assert_eq!(
            section_view("section_end:1796173340:step_script\r\x1b[0K"),
            None
        );
        let chained = "section_end:1:step_script\r\x1b[0Ksection_start:2:after_script[collapsed=true]\r\x1b[0KRunning after_script";
        assert_eq!(section_view(chained), Some("Running after_script"));
        assert_eq!(section_view(""), Some(""));
        assert_eq!(
            section_view("section_start: is just text"),
            Some("section_start: is just text")
        );
        assert_eq!(
            section_view("x section_end:1:y\r\x1b[0K"),
            Some("x section_end:1:y\r\x1b[0K")
        );
    }

    use super::*;

    #[tokio::test]
    async fn secrets_are_masked_in_logs_and_variables() {
        let (sink, mut rx) = Sink::masking(4, vec!["hunter2".into(), "hunter2-long".into()]);
        sink.send(Event::JobLog {
            job: "j".into(),
            lines: vec![LogLine::text("password=hunter2-long and hunter2")],
        })
        .await;
        sink.send(Event::JobQueued {
            job: "j".into(),
            stage: "s".into(),
            image: "i".into(),
            image_id: None,
            variables: vec![("TOKEN".into(), "hunter2".into())],
            commands: vec!["echo $TOKEN".into()],
        })
        .await;
        match rx.recv().await.unwrap() {
            Event::JobLog { lines, .. } => {
                assert_eq!(lines[0].text, "password=[MASKED] and [MASKED]")
            }
            other => panic!("{other:?}"),
        }
        match rx.recv().await.unwrap() {
            Event::JobQueued { variables, .. } => assert_eq!(variables[0].1, "[MASKED]"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn each_line_of_a_multi_line_secret_is_masked_but_not_short_ones() {
        let pem =
            "-----BEGIN KEY-----\nMIIEvQIBADANBgkq\n  hkiG9w0BAQEFAASC  \n}\n\n-----END KEY-----\n";
        let mask = Mask::new([pem.to_string()]);
        assert_eq!(mask.masked("MIIEvQIBADANBgkq"), MASK);
        assert_eq!(mask.masked("x hkiG9w0BAQEFAASC y"), "x [MASKED] y");
        // The lone brace and the empty line would mask every such line: they are not.
        assert_eq!(mask.masked("}"), "}");
        assert_eq!(mask.masked(""), "");
        assert_eq!(mask.masked(pem), MASK);
    }

    #[test]
    fn a_secret_shown_whole_once_escapes_are_removed_is_masked() {
        let mask = Mask::new(["hunter2".to_string()]);
        assert_eq!(
            mask.masked("pw: \u{1b}[1mhun\u{1b}[0mter2\u{1b}[31m!"),
            "pw: \u{1b}[1m[MASKED]\u{1b}[31m!"
        );
        assert_eq!(
            mask.masked("hun\u{7}ter2 and hun\u{1b}]0;t\u{7}ter2"),
            "[MASKED] and [MASKED]"
        );
        let mut raw = b"\xffhun\x1b[0mter2\xfe".to_vec();
        mask.bytes(&mut raw);
        assert_eq!(raw, b"\xff[MASKED]\xfe");
        assert_eq!(mask.masked("hunter"), "hunter");
    }

    #[test]
    fn a_cut_is_moved_before_a_secret_it_would_split() {
        let mask = Mask::new(["hunter2".to_string()]);
        let buf = format!("{}hunter2{}", "x".repeat(30), "x".repeat(10));
        let buf = buf.as_bytes();
        for at in 31..37 {
            assert_eq!(mask.safe_cut(buf, at), 30, "cut at {at}");
        }
        assert_eq!(mask.safe_cut(buf, 30), 30);
        assert_eq!(mask.safe_cut(buf, 37), 37);
    }

    #[test]
    fn the_visible_view_drops_what_a_terminal_does_not_show() {
        let shown = |text: &str| {
            let mut out = Vec::new();
            visible(text.as_bytes(), |r| {
                out.extend_from_slice(&text.as_bytes()[r])
            });
            String::from_utf8(out).unwrap()
        };
        assert_eq!(shown("\u{1b}[31mred\u{1b}[0m\tdone"), "red\tdone");
        assert_eq!(shown("a\u{1b}é\u{85}b\r"), "ab");
        assert_eq!(shown("\u{1b}]8;;http://x\u{1b}\\link"), "link");
    }

    #[test]
    fn image_names_and_every_message_are_masked() {
        let mask = Mask::new(["s3cr3t".to_string()]);
        let mut events = vec![
            Event::ImagePreparing {
                image: "registry/u:s3cr3t@x".into(),
                action: "pulling".into(),
            },
            Event::JobStarted {
                job: "j".into(),
                stage: "s".into(),
                image: "img:s3cr3t".into(),
                attempt: 1,
            },
            Event::JobSkipped {
                job: "j".into(),
                stage: "s".into(),
                status: JobStatus::Skipped,
                reason: "because s3cr3t".into(),
            },
        ];
        for e in &mut events {
            e.mask(&mask);
        }
        let text = serde_json::to_string(&events).unwrap();
        assert!(!text.contains("s3cr3t"), "{text}");
        assert!(text.contains("registry/u:[MASKED]@x"), "{text}");
    }

    #[test]
    fn json_shape_uses_milliseconds() {
        let e = Event::JobFinished {
            job: "j".into(),
            stage: "s".into(),
            status: JobStatus::Passed,
            exit_code: Some(0),
            duration: Duration::from_millis(1234),
            message: None,
            attempts: 1,
        };
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["event"], "job_finished");
        assert_eq!(v["duration_ms"], 1234);
        assert_eq!(v["status"], "passed");
    }
}
