//! JUnit XML reports (`artifacts: reports: junit`) read out of a job's stored artifacts, for the
//! run's summary: the test cases each job's reports name, counted as GitLab's test report
//! counts them (a case with `<failure>` failed, with `<error>` errored, with `<skipped>` was
//! skipped, else passed). The archive is streamed; a report that is not XML is a warning.

use std::io::{BufRead, BufReader};
use std::path::Path;

use quick_xml::events::{BytesStart, Event as Xml};

use crate::events::TestResults;
use crate::project::paths;

/// The results of the JUnit reports in `archive` (a job's stored `.tar.gz`) that match
/// `patterns`, and a warning for each report that could not be read.
pub fn read_archive(archive: &Path, patterns: &[String]) -> (TestResults, Vec<String>) {
    let mut results = TestResults::default();
    let mut warnings = Vec::new();
    let matcher = match paths::matcher(patterns) {
        Ok(m) => m,
        Err(why) => return (results, vec![why]),
    };
    let file = match std::fs::File::open(archive) {
        Ok(f) => f,
        Err(e) => return (results, vec![format!("{}: {e}", archive.display())]),
    };
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(BufReader::new(file)));
    let entries = match tar.entries() {
        Ok(e) => e,
        Err(e) => return (results, vec![format!("reading the artifacts: {e}")]),
    };
    for entry in entries {
        let entry = match entry {
            Ok(e) => e,
            Err(e) => {
                warnings.push(format!("reading the artifacts: {e}"));
                break;
            }
        };
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let name = match entry.path() {
            Ok(p) => p.to_string_lossy().into_owned(),
            Err(_) => continue,
        };
        if matcher.matches(&name).is_empty() {
            continue;
        }
        match read(BufReader::new(entry)) {
            Ok(found) => results.add(found),
            Err(why) => warnings.push(format!("JUnit report {name}: {why}")),
        }
    }
    (results, warnings)
}

/// One case being read.
#[derive(Default)]
struct Case {
    name: String,
    status: Status,
}

#[derive(Default, Clone, Copy, PartialEq, Eq)]
enum Status {
    #[default]
    Passed,
    Failed,
    Error,
    Skipped,
}

/// Count the test cases of one JUnit XML document (`<testsuites>` or a lone `<testsuite>`).
pub fn read(reader: impl BufRead) -> Result<TestResults, String> {
    let mut xml = quick_xml::Reader::from_reader(reader);
    let mut buf = Vec::new();
    let mut results = TestResults::default();
    let mut case: Option<Case> = None;
    let mut seen_root = false;
    loop {
        let event = xml
            .read_event_into(&mut buf)
            .map_err(|e| format!("not well-formed XML at byte {}: {e}", xml.buffer_position()))?;
        let (e, empty) = match &event {
            Xml::Start(e) => (Some(e), false),
            Xml::Empty(e) => (Some(e), true),
            _ => (None, false),
        };
        if let Some(e) = e {
            let local = e.local_name();
            let tag = local.as_ref();
            if tag == b"testsuites" || tag == b"testsuite" {
                seen_root = true;
            }
            match case.as_mut() {
                None if tag == b"testcase" => {
                    let started = Case {
                        name: case_name(e),
                        status: Status::Passed,
                    };
                    if empty {
                        count(&mut results, started);
                    } else {
                        case = Some(started);
                    }
                }
                // The worst outcome a case reports stands (a rerun's `<flakyFailure>` and the
                // like are not its result).
                Some(c) => {
                    let status = match tag {
                        b"failure" => Status::Failed,
                        b"error" => Status::Error,
                        b"skipped" => Status::Skipped,
                        _ => c.status,
                    };
                    if c.status == Status::Passed || status == Status::Failed {
                        c.status = status;
                    }
                }
                None => {}
            }
        }
        match event {
            Xml::End(e) if e.local_name().as_ref() == b"testcase" => {
                if let Some(c) = case.take() {
                    count(&mut results, c);
                }
            }
            Xml::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    if !seen_root {
        return Err("no <testsuites> or <testsuite> element".into());
    }
    Ok(results)
}

fn case_name(e: &BytesStart<'_>) -> String {
    let attr = |key: &[u8]| {
        e.attributes()
            .flatten()
            .find(|a| a.key.as_ref() == key)
            .and_then(|a| {
                a.normalized_value(quick_xml::XmlVersion::Implicit1_0)
                    .ok()
                    .map(|v| v.into_owned())
            })
            .unwrap_or_default()
    };
    let (class, name) = (attr(b"classname"), attr(b"name"));
    match (class.is_empty(), name.is_empty()) {
        (false, false) => format!("{class}.{name}"),
        (true, _) => name,
        (false, true) => class,
    }
}

fn count(results: &mut TestResults, case: Case) {
    match case.status {
        Status::Passed => results.passed += 1,
        Status::Skipped => results.skipped += 1,
        Status::Failed | Status::Error => {
            if case.status == Status::Failed {
                results.failed += 1;
            } else {
                results.errors += 1;
            }
            if results.failures.len() < TestResults::NAMED {
                results.failures.push(case.name);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn read_bytes(bytes: impl Read) -> Result<TestResults, String> {
        read(BufReader::new(bytes))
    }

    #[test]
    fn counts_cases_as_gitlab_does() {
        // pytest's shape: a root <testsuites>, properties, output, a failure with text.
        let xml = r#"<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest" errors="1" failures="1" skipped="1" tests="5">
  <testcase classname="tests.test_a" name="test_ok" time="0.001"/>
  <testcase classname="tests.test_a" name="test_also_ok"><system-out>hi &lt;3</system-out></testcase>
  <testcase classname="tests.test_a" name="test_bad"><failure message="assert 1 == 2">trace</failure></testcase>
  <testcase classname="tests.test_b" name="test_setup"><error message="boom"/></testcase>
  <testcase classname="tests.test_b" name="test_later"><skipped message="todo"/></testcase>
</testsuite></testsuites>"#;
        let r = read_bytes(xml.as_bytes()).unwrap();
        assert_eq!(
            r,
            TestResults {
                passed: 2,
                failed: 1,
                errors: 1,
                skipped: 1,
                failures: vec![
                    "tests.test_a.test_bad".into(),
                    "tests.test_b.test_setup".into()
                ],
            }
        );
        assert_eq!(r.counts(), "2 passed, 1 failed, 1 errors, 1 skipped");
    }

    #[test]
    fn a_lone_testsuite_and_bad_documents() {
        // Maven Surefire's shape: one <testsuite> at the root.
        let one = r#"<testsuite name="S"><testcase name="a" classname="C"/><testcase name="b"><failure/></testcase></testsuite>"#;
        let r = read_bytes(one.as_bytes()).unwrap();
        assert_eq!((r.passed, r.failed), (1, 1));
        assert_eq!(r.failures, vec!["b"]);
        assert!(read_bytes("not xml <".as_bytes()).is_err());
        assert!(read_bytes("<html><body/></html>".as_bytes())
            .unwrap_err()
            .contains("no <testsuites>"));
    }
}
