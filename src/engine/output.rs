//! A job's output, from the engine's stream to the log lines reporters get: batched, cut into
//! pieces past 64 KiB where no secret is split, byte-exact, and read again where an engine's
//! stream can end early.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::engine::runtime::{ContainerRuntime, Output, RuntimeError};
use crate::events::{Event, LineEnd, LogLine, Mask, Sink};
use crate::pipeline::steps::OutputFilter;

/// Up to this much output, a log the stream gave whole is read again all the same, for the
/// last line Docker's stream can miss.
pub(super) const RECHECK_BYTES: u64 = 256 * 1024;

/// How long a log stream may stay silent once the container has stopped.
const STALL: Duration = Duration::from_secs(5);

/// The lines that come within BATCH_WAIT of a batch's first, up to BATCH_BYTES, go out as
/// one event: a job printing a lot costs an event per batch, not per line, and a line waits
/// at most this long to be shown.
const BATCH_BYTES: usize = 256 * 1024;
const BATCH_WAIT: Duration = Duration::from_millis(10);

/// How reading a log stream ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Read {
    ToTheEnd,
    Failed(String),
    Stalled,
}

impl std::fmt::Display for Read {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Read::ToTheEnd => write!(f, "ended"),
            Read::Failed(e) => write!(f, "failed ({e})"),
            Read::Stalled => write!(f, "stalled (nothing for {}s)", STALL.as_secs()),
        }
    }
}

/// Each output stream's unfinished line, and how many bytes it carried.
pub(super) struct Pumped {
    lines: [Lines; 2],
    pub(super) bytes: [u64; 2],
    filter: Option<Filter>,
}

/// The job's format reading the lines of one command, and what it asked to mask meanwhile.
struct Filter {
    filter: Box<dyn OutputFilter>,
    added: Vec<String>,
    /// The values added, applied here: lines go out in batches, and a value masked on one
    /// line hides it on the next of the same batch.
    mask: Mask,
    /// Each stream's last piece was cut: its next piece goes on with a line already read.
    in_cut: [bool; 2],
}

impl Pumped {
    fn new(mask: Arc<Mask>, filter: Option<Box<dyn OutputFilter>>) -> Pumped {
        Pumped {
            lines: [Lines::new(mask.clone()), Lines::new(mask)],
            bytes: [0, 0],
            filter: filter.map(|filter| Filter {
                filter,
                added: Vec::new(),
                mask: Mask::new([]),
                in_cut: [false, false],
            }),
        }
    }

    /// Split `bytes` of stream `which` (0 stdout, 1 stderr) into lines, skipping the first
    /// `skip` bytes of that stream (already seen).
    fn push(&mut self, which: usize, bytes: &[u8], skip: u64, out: &mut Vec<LogLine>) {
        let seen = self.bytes[which];
        self.bytes[which] += bytes.len() as u64;
        let from = usize::try_from(skip.saturating_sub(seen)).unwrap_or(usize::MAX);
        let first = out.len();
        self.lines[which].push(&bytes[from.min(bytes.len())..], out);
        self.filter(which, out, first);
    }

    /// Pass the lines of stream `which` from `out[first..]` through the filter: each whole
    /// line (the pieces of a cut one are shown as they are), masked with what it added.
    fn filter(&mut self, which: usize, out: &mut Vec<LogLine>, first: usize) {
        let Some(f) = &mut self.filter else {
            return;
        };
        let new: Vec<LogLine> = out.drain(first..).collect();
        for line in new {
            let whole = !f.in_cut[which] && !line.is_cut();
            f.in_cut[which] = line.is_cut();
            let shown = match whole {
                true => {
                    let filtered = f.filter.line(&line.text);
                    let masks: Vec<String> = filtered
                        .masks
                        .into_iter()
                        .filter(|m| !m.is_empty())
                        .collect();
                    if !masks.is_empty() {
                        f.mask = f.mask.with(masks.iter().cloned());
                        for l in &mut self.lines {
                            l.mask = Arc::new(l.mask.with(masks.iter().cloned()));
                        }
                        f.added.extend(masks);
                    }
                    filtered.shown
                }
                false => None,
            };
            let lines = match shown {
                None => vec![line],
                Some(texts) => texts.into_iter().map(LogLine::text).collect(),
            };
            for mut line in lines {
                f.mask.text(&mut line.text);
                if let Some(raw) = &mut line.raw {
                    f.mask.bytes(raw);
                }
                out.push(line);
            }
        }
    }

    /// Send the unfinished lines; the values the filter asked to mask during the command.
    pub(super) async fn finish(mut self, job: &str, sink: &Sink) -> Vec<String> {
        let mut lines = Vec::new();
        for which in 0..2 {
            let first = lines.len();
            self.lines[which].finish(&mut lines);
            self.filter(which, &mut lines, first);
        }
        send_lines(sink, job, lines).await;
        self.filter.map(|f| f.added).unwrap_or_default()
    }
}

async fn send_lines(sink: &Sink, job: &str, lines: Vec<LogLine>) {
    if !lines.is_empty() {
        sink.send(Event::JobLog {
            job: job.to_string(),
            lines,
        })
        .await;
    }
}

/// Stream the job's output into events until the stream ends; once `stopped` (the container
/// has), only until it stalls.
pub(super) async fn pump_output(
    stream: impl futures_util::Stream<Item = Result<Output, RuntimeError>>,
    job: String,
    sink: Sink,
    stopped: CancellationToken,
) -> (Pumped, Read) {
    pump_filtered(stream, job, sink, stopped, None).await
}

/// [`pump_output`], each whole line read by the job's format first.
pub(super) async fn pump_filtered(
    stream: impl futures_util::Stream<Item = Result<Output, RuntimeError>>,
    job: String,
    sink: Sink,
    stopped: CancellationToken,
    filter: Option<Box<dyn OutputFilter>>,
) -> (Pumped, Read) {
    let pumped = Pumped::new(sink.mask(), filter);
    drain(stream, pumped, [0, 0], &stopped, &job, &sink).await
}

/// Podman's followed log stream can end before the last lines of a stopped container
/// (podman#21914), and any engine's stream can break off: read the whole log again and pass
/// on what was not seen yet.
pub(super) async fn catch_up(
    engine: &dyn ContainerRuntime,
    id: &str,
    pumped: Pumped,
    job: &str,
    sink: &Sink,
) -> (Pumped, Read) {
    let seen = pumped.bytes;
    let again = Pumped {
        lines: pumped.lines,
        bytes: [0, 0],
        filter: pumped.filter,
    };
    let stopped = CancellationToken::new();
    stopped.cancel();
    let (pumped, read) = drain(engine.output_so_far(id), again, seen, &stopped, job, sink).await;
    // Short of what was seen: the engine lost part of what the stream had.
    let read = match read {
        Read::ToTheEnd if pumped.bytes[0] < seen[0] || pumped.bytes[1] < seen[1] => {
            Read::Failed("the engine's log is shorter than its stream was".into())
        }
        other => other,
    };
    (pumped, read)
}

/// Pass `stream` on into `pumped`, skipping the first `skip` bytes of each of its two streams,
/// until it ends or fails; once `stopped`, until it stalls. The lines go out in batches of what
/// is ready at once.
async fn drain(
    stream: impl futures_util::Stream<Item = Result<Output, RuntimeError>>,
    mut pumped: Pumped,
    skip: [u64; 2],
    stopped: &CancellationToken,
    job: &str,
    sink: &Sink,
) -> (Pumped, Read) {
    futures_util::pin_mut!(stream);
    loop {
        let item = if stopped.is_cancelled() {
            match tokio::time::timeout(STALL, stream.next()).await {
                Ok(item) => item,
                Err(_) => return (pumped, Read::Stalled),
            }
        } else {
            tokio::select! {
                item = stream.next() => item,
                _ = stopped.cancelled() => continue,
            }
        };
        let mut batch = Vec::new();
        let mut size = 0;
        let mut item = Some(item);
        // The first item, then what else comes within a moment: hyper hands over the output a
        // frame (a line) at a time through another task, so what is "ready now" is one line.
        let deadline = tokio::time::Instant::now() + BATCH_WAIT;
        while let Some(next) = item.take() {
            let read = match next {
                Some(Ok(Output::Stdout(b))) => {
                    pumped.push(0, &b, skip[0], &mut batch);
                    size += b.len();
                    None
                }
                Some(Ok(Output::Stderr(b))) => {
                    pumped.push(1, &b, skip[1], &mut batch);
                    size += b.len();
                    None
                }
                Some(Err(e)) => Some(Read::Failed(e.to_string())),
                None => Some(Read::ToTheEnd),
            };
            if let Some(read) = read {
                send_lines(sink, job, batch).await;
                return (pumped, read);
            }
            if size < BATCH_BYTES {
                item = tokio::time::timeout_at(deadline, stream.next()).await.ok();
            }
        }
        send_lines(sink, job, batch).await;
    }
}

/// The longest piece of a line that goes out in one event; a longer line is cut into pieces
/// (the record joins them again).
const MAX_LINE: usize = 64 * 1024;

/// Splits a byte stream into lines; a line longer than [`MAX_LINE`] goes out in pieces, cut
/// where no secret is split and, in UTF-8, between characters. Each piece keeps its bytes.
pub(crate) struct Lines {
    buf: Vec<u8>,
    mask: Arc<Mask>,
}

impl Lines {
    pub fn new(mask: Arc<Mask>) -> Lines {
        Lines {
            buf: Vec::new(),
            mask,
        }
    }

    /// How many bytes past a cut must be there to place it: a secret's, and a character's.
    fn margin(&self) -> usize {
        self.mask.longest().min(MAX_LINE / 2) + 4
    }

    pub fn push(&mut self, mut bytes: &[u8], out: &mut Vec<LogLine>) {
        while let Some(nl) = memchr::memchr(b'\n', bytes) {
            if self.buf.is_empty() {
                self.line(&bytes[..nl], out);
            } else {
                let mut buf = std::mem::take(&mut self.buf);
                buf.extend_from_slice(&bytes[..nl]);
                self.line(&buf, out);
                buf.clear();
                self.buf = buf;
            }
            bytes = &bytes[nl + 1..];
        }
        self.buf.extend_from_slice(bytes);
        if self.buf.len() >= MAX_LINE + self.margin() {
            let used = self.pieces(&self.buf, None, out);
            self.buf.drain(..used);
        }
    }

    /// The unfinished line at the end of the output.
    pub fn finish(&mut self, out: &mut Vec<LogLine>) {
        if !self.buf.is_empty() {
            self.pieces(&self.buf, Some(LineEnd::Eof), out);
            self.buf.clear();
        }
    }

    fn line(&self, line: &[u8], out: &mut Vec<LogLine>) {
        match line.strip_suffix(b"\r") {
            Some(line) => self.pieces(line, Some(LineEnd::CrLf), out),
            None => self.pieces(line, Some(LineEnd::Lf), out),
        };
    }

    /// Pass on `data` in pieces: all of it when its `end` is known, else the pieces that have
    /// enough bytes after them to be cut well. How many bytes went out.
    fn pieces(&self, data: &[u8], end: Option<LineEnd>, out: &mut Vec<LogLine>) -> usize {
        let mut start = 0;
        loop {
            let rest = &data[start..];
            match end {
                Some(end) if rest.len() <= MAX_LINE => {
                    out.push(LogLine::from_bytes(rest, end));
                    return data.len();
                }
                None if rest.len() < MAX_LINE + self.margin() => return start,
                _ => {}
            }
            let cut = self.cut(rest);
            out.push(LogLine::from_bytes(&rest[..cut], LineEnd::Cut));
            start += cut;
        }
    }

    /// Where to cut `rest`, longer than [`MAX_LINE`].
    fn cut(&self, rest: &[u8]) -> usize {
        let mut cut = self.mask.safe_cut(rest, MAX_LINE);
        // Not inside a UTF-8 character (its continuation bytes are 0b10xxxxxx).
        let floor = cut.saturating_sub(3);
        while cut > floor && rest.get(cut).is_some_and(|b| b & 0xc0 == 0x80) {
            cut -= 1;
        }
        if cut == 0 {
            MAX_LINE
        } else {
            cut
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::{LineEnd, Lines, LogLine, MAX_LINE};
    use crate::events::Mask;

    fn lines(mask: &[&str], chunks: &[&[u8]]) -> Vec<LogLine> {
        let mask = Arc::new(Mask::new(mask.iter().map(|s| s.to_string())));
        let mut l = Lines::new(mask);
        let mut out = Vec::new();
        for c in chunks {
            l.push(c, &mut out);
        }
        l.finish(&mut out);
        out
    }

    fn exact(lines: &[LogLine]) -> Vec<u8> {
        let mut out = Vec::new();
        for l in lines {
            l.write_exact(&mut out).unwrap();
        }
        out
    }

    #[test]
    fn splits_across_chunks() {
        let mut l = Lines::new(Arc::new(Mask::new([])));
        let mut out = Vec::new();
        l.push(b"hel", &mut out);
        assert!(out.is_empty());
        l.push(b"lo\r\nwor", &mut out);
        l.push(b"ld\n\n", &mut out);
        l.push(b"tail", &mut out);
        let texts: Vec<_> = out.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(texts, ["hello", "world", ""]);
        assert_eq!(out[0].end, LineEnd::CrLf);
        out.clear();
        l.finish(&mut out);
        assert_eq!(out, [LogLine::from_bytes(b"tail", LineEnd::Eof)]);
        out.clear();
        l.finish(&mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn a_long_line_goes_out_in_pieces_whose_bytes_add_up() {
        let mut long = vec![b'x'; MAX_LINE * 3 + 10];
        long.push(b'\n');
        long.extend_from_slice(b"next\n");
        // In small chunks and in one: the same pieces.
        let chunked: Vec<&[u8]> = long.chunks(1000).collect();
        for out in [lines(&[], &chunked), lines(&[], &[&long])] {
            assert_eq!(out.len(), 5, "{:?}", out.iter().map(|l| l.text.len()));
            assert!(out[..3]
                .iter()
                .all(|l| l.is_cut() && l.text.len() == MAX_LINE));
            assert_eq!(out[3].text.len(), 10);
            assert_eq!(out[3].end, LineEnd::Lf);
            assert_eq!(exact(&out), long);
        }
    }

    #[test]
    fn invalid_utf8_and_line_ends_are_kept_exactly() {
        let bytes: &[u8] = b"caf\xc3\xa9 \xff\xfe bad\r\nplain\nno end\r";
        let out = lines(&[], &[&bytes[..5], &bytes[5..]]);
        assert_eq!(out[0].text, "café \u{fffd}\u{fffd} bad");
        assert_eq!(out[2].text, "no end\r");
        assert_eq!(exact(&out), bytes);
    }

    #[test]
    fn a_cut_falls_between_characters_and_before_a_secret() {
        // `é` is two bytes: one of them would be at the cut.
        let mut line = vec![b'a'; MAX_LINE - 1];
        line.extend_from_slice("é".as_bytes());
        line.extend_from_slice(b"tail\n");
        let out = lines(&[], &[&line]);
        assert_eq!(out[0].text.len(), MAX_LINE - 1);
        assert_eq!(out[1].text, "étail");
        // A secret across the cut goes whole into the next piece.
        let mut line = vec![b'a'; MAX_LINE - 3];
        line.extend_from_slice(b"hunter2 and more\n");
        let out = lines(&["hunter2"], &[&line[..MAX_LINE], &line[MAX_LINE..]]);
        assert_eq!(out[0].text.len(), MAX_LINE - 3);
        assert_eq!(out[1].text, "hunter2 and more");
    }

    /// Hides lines that start with `mask:` and masks their rest; shows `x` as `y`.
    struct Fake(Vec<String>);

    impl crate::pipeline::steps::OutputFilter for Fake {
        fn line(&mut self, line: &str) -> crate::pipeline::steps::Filtered {
            self.0.push(line.to_string());
            let mut f = crate::pipeline::steps::Filtered::default();
            if let Some(v) = line.strip_prefix("mask:") {
                f.shown = Some(vec![]);
                f.masks = vec![v.to_string()];
            } else if line == "x" {
                f.shown = Some(vec!["y".to_string()]);
            }
            f
        }
    }

    #[test]
    fn a_filter_sees_whole_lines_and_its_masks_hide_the_next_ones_at_once() {
        let mut p = super::Pumped::new(Arc::new(Mask::new([])), Some(Box::new(Fake(vec![]))));
        let mut out = Vec::new();
        // One chunk: the mask is added and used within the same batch.
        p.push(0, b"pw is pw1\nmask:pw1\nnow pw1\nx\n", 0, &mut out);
        let mut long = vec![b'a'; MAX_LINE + 10];
        long.extend_from_slice(b"pw1\n");
        p.push(1, &long, 0, &mut out);
        let texts: Vec<&str> = out.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(&texts[..3], ["pw is pw1", "now [MASKED]", "y"]);
        // A long line goes out in pieces, masked, and is not read as two lines.
        assert!(out[3].is_cut());
        assert_eq!(out[4].text, format!("{}[MASKED]", "a".repeat(10)));
        let added = block_on(p.finish("j", &crate::events::Sink::channel(1).0));
        assert_eq!(added, ["pw1"]);
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
            .block_on(f)
    }
}
