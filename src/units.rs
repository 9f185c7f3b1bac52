//! Sizes and durations as berth prints them, and times as it records them (seconds since the
//! Unix epoch): one way everywhere.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A moment in seconds since the Unix epoch (0 for one before it).
pub fn epoch_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Now, in seconds since the Unix epoch.
pub fn now_secs() -> u64 {
    epoch_secs(SystemTime::now())
}

/// Now, in milliseconds since the Unix epoch (the JSON events' `ts`).
pub fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// `999 B`, `3.1 MB`: decimal units, as Docker prints sizes.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Format like `1h 30m 5s`, `2.3s`, for output.
pub fn duration(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs < 60.0 {
        return format!("{secs:.1}s");
    }
    let total = d.as_secs();
    let (h, m, s) = (total / 3600, (total % 3600) / 60, total % 60);
    let mut out = Vec::new();
    if h > 0 {
        out.push(format!("{h}h"));
    }
    if m > 0 {
        out.push(format!("{m}m"));
    }
    if s > 0 {
        out.push(format!("{s}s"));
    }
    out.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(bytes(999), "999 B");
        assert_eq!(bytes(3_100_000), "3.1 MB");
        assert_eq!(bytes(5_000_000_000_000_000), "5000.0 TB");
    }

    #[test]
    fn durations() {
        assert_eq!(duration(Duration::from_millis(2340)), "2.3s");
        assert_eq!(duration(Duration::from_secs(5405)), "1h 30m 5s");
    }
}
