//! berth as a running child process: start it and read its output until a line appears, for the
//! tests that stop or tamper with a run midway.

use std::io::Read;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common::Project;

impl Project {
    /// Start `berth ARGS` with plain output and wait (up to a minute) until its output shows
    /// `needle`; the running child, for the test to stop as it likes.
    pub fn start_until(&self, args: &[&str], needle: &str) -> std::process::Child {
        let mut child = self
            .command(args)
            .stderr(Stdio::piped())
            .spawn()
            .expect("start berth");
        let mut stderr = child.stderr.take().expect("stderr");
        let seen = read_until(&mut stderr, needle, Duration::from_secs(60));
        assert!(seen.contains(needle), "{seen}");
        // Keep draining, so that berth never blocks on a full pipe.
        std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
        child
    }
}

/// Read a child's stderr until `needle` appears (or the time is up); returns what was read.
pub fn read_until(stderr: &mut impl Read, needle: &str, limit: Duration) -> String {
    let start = Instant::now();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while start.elapsed() < limit {
        match stderr.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                seen.extend_from_slice(&buf[..n]);
                if String::from_utf8_lossy(&seen).contains(needle) {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    String::from_utf8_lossy(&seen).into_owned()
}
