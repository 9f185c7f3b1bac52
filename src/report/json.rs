//! `--output json`: one JSON object per line for each event, with a schema version (`v`) and a
//! timestamp (`ts`, milliseconds since the epoch). The schema is documented in docs/events.md.

use super::{ReportError, Reporter};
use crate::events::{Event, LogLine};
use std::io::Write;

/// Bumped when a field changes meaning or disappears; new fields may be added within a version.
pub const SCHEMA_VERSION: u32 = 1;

pub struct Json<W: Write + Send> {
    out: W,
}

impl<W: Write + Send> Json<W> {
    pub fn new(out: W) -> Self {
        Json { out }
    }
}

/// An event as the JSON lines `--output json` prints: one, or one per log line.
pub fn lines(event: &Event, ts_ms: u64) -> Vec<serde_json::Value> {
    match event {
        Event::JobLog { job, lines } => log_lines(job, lines, ts_ms),
        other => vec![object(other, ts_ms)],
    }
}

fn object(event: &Event, ts_ms: u64) -> serde_json::Value {
    let mut value = serde_json::to_value(event).unwrap_or(serde_json::Value::Null);
    if let Some(map) = value.as_object_mut() {
        map.insert("v".into(), SCHEMA_VERSION.into());
        map.insert("ts".into(), ts_ms.into());
    }
    value
}

/// One `job_log` object per line: the schema's, whatever the batch.
fn log_lines(job: &str, lines: &[LogLine], ts_ms: u64) -> Vec<serde_json::Value> {
    lines
        .iter()
        .map(|l| {
            let mut value = serde_json::json!({
                "event": "job_log",
                "job": job,
                "line": l.text,
            });
            if let Some(map) = value.as_object_mut() {
                if l.is_cut() {
                    map.insert("cut".into(), true.into());
                }
                map.insert("v".into(), SCHEMA_VERSION.into());
                map.insert("ts".into(), ts_ms.into());
            }
            value
        })
        .collect()
}

impl<W: Write + Send> Reporter for Json<W> {
    fn handle(&mut self, event: &Event) -> Result<(), ReportError> {
        let ts = crate::units::now_millis();
        // One write per event, as plain output does.
        let mut text = String::new();
        for v in lines(event, ts) {
            text.push_str(&v.to_string());
            text.push('\n');
        }
        self.out.write_all(text.as_bytes())?;
        Ok(self.out.flush()?)
    }
}
