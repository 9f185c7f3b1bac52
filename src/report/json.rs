//! `--output json`: one JSON object per line for each event, with a schema version (`v`) and a
//! timestamp (`ts`, milliseconds since the epoch). The schema is documented in docs/events.md.

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use super::Reporter;
use crate::events::Event;

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

/// One event as the JSON line `--output json` prints.
pub fn line(event: &Event, ts_ms: u64) -> serde_json::Value {
    let mut value = serde_json::to_value(event).unwrap_or(serde_json::Value::Null);
    if let Some(map) = value.as_object_mut() {
        map.insert("v".into(), SCHEMA_VERSION.into());
        map.insert("ts".into(), ts_ms.into());
    }
    value
}

impl<W: Write + Send> Reporter for Json<W> {
    fn handle(&mut self, event: &Event) {
        let ts = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let _ = writeln!(self.out, "{}", line(event, ts));
        let _ = self.out.flush();
    }
}
