//! Any text given to `expr::parse` parses or fails with an error, and a parsed expression
//! evaluates, never a panic. The fixed variables cover set, empty, blank, regex-holding and
//! not-quite-regex values so that every evaluation path is reachable.
#![no_main]

use berth::gitlab::expr;
use libfuzzer_sys::fuzz_target;

const VARS: &[(&str, &str)] = &[
    ("A", "abc"),
    ("B", "feature/login"),
    ("EMPTY", ""),
    ("BLANK", " \t"),
    ("RE", "/^ab.*/i"),
    ("RE_ESCAPED", "/^feature\\/l/m"),
    ("BAD_RE", "/a(/"),
    ("ALMOST_RE", "/abc/x"),
    ("LINES", "x\n/b+/s"),
    ("NESTED", "$A"),
];

fn lookup(name: &str) -> Option<String> {
    VARS.iter()
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.to_string())
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(parsed) = expr::parse(text) {
            let _ = parsed.eval(&lookup);
        }
        if let Some(Err(err)) = expr::regex_literal(text) {
            assert!(!err.message.is_empty());
        }
    }
});
