//! Logs kept whole and masked: a job printing a lot, a very long line, bytes that are not UTF-8,
//! a very long job name, and secrets in the ways a job or berth can show them.

use std::time::Instant;

use crate::common;
use crate::common::{busybox_project, Run};

/// The record's log of `job` in the project's latest run.
fn record(p: &common::Project, job: &str) -> Vec<u8> {
    let dir = p.run_dir();
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    let log = manifest["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["name"] == job)
        .unwrap_or_else(|| panic!("no job {job} in {manifest}"))["log"]
        .as_str()
        .unwrap()
        .to_string();
    std::fs::read(dir.join(log)).unwrap()
}

#[test]
fn a_job_printing_a_lot_keeps_every_line_in_the_record_and_the_output() {
    const LINES: usize = 600_000;
    let p = busybox_project(&format!("big:\n  script: [\"seq {LINES}\"]\n"));
    let started = Instant::now();
    let run = p.berth(&["run", "--output", "plain"]);
    let took = started.elapsed();
    run.expect_code(0);
    let mut body = echoed(&format!("seq {LINES}"));
    for i in 1..=LINES {
        body.push_str(&format!("{i}\n"));
    }
    let expected = step_log(body.as_bytes());
    let log = without_timestamps(&record(&p, "big"));
    assert!(
        log == expected,
        "the record has {} of {} bytes",
        log.len(),
        expected.len()
    );
    let shown = run
        .stderr
        .lines()
        .filter(|l| l.starts_with("[big] "))
        .count();
    // The section's title, the command and its lines (the section's end is a marker alone).
    assert_eq!(shown, LINES + 2, "lines in the plain output");
    assert!(
        !run.stderr.contains("incomplete"),
        "no notice for a whole log:\n{}",
        &run.stderr[run.stderr.len().saturating_sub(500)..]
    );
    eprintln!(
        "{LINES} lines in {:.1}s: {:.0} lines/s",
        took.as_secs_f64(),
        LINES as f64 / took.as_secs_f64()
    );
}

/// What `gen.sh` prints: a 200 KiB line, bytes that are not UTF-8, a CRLF line, and an end
/// without a newline.
const GEN: &str =
    "head -c 204800 /dev/zero | tr '\\0' x\nprintf '\\n\\377\\376 caf\\303\\251\\r\\nend'\n";

fn generated() -> Vec<u8> {
    let mut out = vec![b'x'; 204800];
    out.extend_from_slice(b"\n\xff\xfe caf\xc3\xa9\r\nend");
    out
}

#[test]
fn a_long_line_and_bytes_that_are_not_utf8_are_recorded_byte_for_byte() {
    let p = busybox_project("gen:\n  script: [sh gen.sh]\n");
    p.write("gen.sh", GEN);
    let run = p.berth(&["run", "--output", "json"]);
    run.expect_code(0);
    let mut body = echoed("sh gen.sh").into_bytes();
    body.extend_from_slice(&generated());
    let expected = step_log(&body);
    // Docker's default log driver (json-file) stores lines as JSON strings: invalid UTF-8
    // reaches berth already replaced by U+FFFD. What the engine has, berth keeps exactly.
    let stored = String::from_utf8_lossy(&expected).into_owned().into_bytes();
    let log = without_timestamps(&record(&p, "gen"));
    assert!(
        log == expected || log == stored,
        "the record differs from what the job printed: {} bytes, {:?} at the end",
        log.len(),
        String::from_utf8_lossy(&log[log.len().saturating_sub(20)..])
    );
    // The JSON stream cuts the long line into pieces that say so, and that add up to it.
    let mut line = String::new();
    let mut pieces = 0;
    for event in run.stdout.lines() {
        let v: serde_json::Value = serde_json::from_str(event).unwrap();
        if v["event"] != "job_log" || !v["line"].as_str().unwrap().starts_with('x') {
            continue;
        }
        line.push_str(v["line"].as_str().unwrap());
        pieces += 1;
        if v["cut"] != true {
            break;
        }
    }
    assert!(pieces > 1, "the long line went out in {pieces} piece");
    assert_eq!(line, "x".repeat(204800));
    // `berth logs` gives the bytes back too.
    let logs = p.command(&["logs", "gen"]).output().unwrap();
    assert_eq!(without_timestamps(&logs.stdout), log);
}

#[test]
fn a_job_with_a_280_character_name_is_recorded() {
    let name = format!("job-{}", "n".repeat(276));
    let other = format!("job-{}m", "n".repeat(275));
    // Its artifact archive is named after it too.
    let with_artifacts = format!("art-{}", "a".repeat(276));
    let p = busybox_project(&format!(
        "{name}:\n  script: [echo first]\n{other}:\n  script: [echo second]\n\
         {with_artifacts}:\n  script: [echo a > out.txt]\n  artifacts: {{paths: [out.txt]}}\n"
    ));
    let run = p.berth(&["run", "--output", "plain"]);
    run.expect_code(0);
    assert!(
        !run.stderr.contains("cannot write the run record"),
        "{}",
        run.stderr
    );
    let first = step_log(format!("{}first\n", echoed("echo first")).as_bytes());
    let second = step_log(format!("{}second\n", echoed("echo second")).as_bytes());
    assert_eq!(without_timestamps(&record(&p, &name)), first);
    assert_eq!(without_timestamps(&record(&p, &other)), second);
    let logs = p.berth(&["logs", &name]);
    logs.expect_code(0);
    assert_eq!(without_timestamps(logs.stdout.as_bytes()), first);
    let stored = p.berth(&["artifacts", &with_artifacts]);
    stored.expect_code(0);
    assert!(stored.stdout.contains("1 files"), "{}", stored.stdout);
}

const PEM: &str = "-----BEGIN PRIVATE KEY-----
MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj
MzEfYyjiWA4R4/M2bS1GB4t7NXp98C3SC6dVMvDuictGeurT8jNbvJZHtCSuYEvu
NMoSfm76oqFvAp8Gy0iz5sxjZmSnXyCdPEovGhLa0VzMaQ8s+CLOyS56YyCFGeJZ
-----END PRIVATE KEY-----
";

/// Fails the test when any of `secrets` is in `text`.
fn assert_hidden(what: &str, text: &str, secrets: &[&str]) {
    for s in secrets {
        assert!(!text.contains(s), "`{s}` leaked into the {what}:\n{text}");
    }
}

#[test]
fn a_multi_line_secret_is_masked_line_by_line() {
    let p =
        busybox_project("show:\n  script: ['echo \"$PEM\"', 'echo \"key: $PEM\" | tail -n 2']\n");
    p.write("key.pem", PEM);
    let run = p.berth(&["run", "--output", "json", "--secret", "PEM=@key.pem"]);
    run.expect_code(0);
    let lines: Vec<&str> = PEM.lines().collect();
    let log = String::from_utf8(record(&p, "show")).unwrap();
    assert_hidden("record", &log, &lines);
    assert_hidden("events", &run.stdout, &lines);
    assert_eq!(log.matches("[MASKED]").count(), 5 + 2, "{log}");
}

#[test]
fn secrets_are_masked_across_a_cut_and_across_escape_sequences() {
    // The secret starts 5 bytes before the 64 KiB cut of a long line; another has an escape
    // sequence in its middle, which the live view removes (and a terminal never shows).
    let p = busybox_project(
        "show:\n  script:\n    - sh long.sh\n    - printf 'pw=hun\\033[1mter2-secret\\033[0m.\\n'\n",
    );
    p.write(
        "long.sh",
        "head -c 65531 /dev/zero | tr '\\0' y\necho \"$TOKEN and more\"\n",
    );
    let run = Run::from(
        p.command(&[
            "run", "--output", "plain", "--secret", "TOKEN", "--secret", "PW",
        ])
        .env("TOKEN", "s3cr3t-token-value")
        .env("PW", "hunter2-secret")
        .output()
        .unwrap(),
    );
    run.expect_code(0);
    let log = String::from_utf8(record(&p, "show")).unwrap();
    let secrets = [
        "s3cr3t-token-value",
        "hunter2-secret",
        "hun\u{1b}[1mter2-secret",
    ];
    assert_hidden("record", &log, &secrets);
    assert_hidden("plain output", &run.stderr, &secrets);
    assert!(log.contains("[MASKED] and more"), "{}", &log[65000..]);
    assert!(log.contains("pw=[MASKED]"), "{}", &log[65000..]);
    // Everything else of the long line is there, byte for byte.
    assert!(log.contains(&format!("{}[MASKED] and more\n", "y".repeat(65531))));
}

#[test]
fn a_secret_in_an_image_name_is_masked_in_errors_and_events() {
    let p = busybox_project("show:\n  image: berth-test/no-such-image:$TAG\n  script: [true]\n");
    let run = Run::from(
        p.command(&["run", "--output", "json", "--secret", "TAG"])
            .env("TAG", "t0ps3cr3t")
            .output()
            .unwrap(),
    );
    run.expect_code(3);
    assert!(run.stderr.contains("[MASKED]"), "{}", run.stderr);
    assert_hidden("error", &run.stderr, &["t0ps3cr3t"]);
    assert_hidden("events", &run.stdout, &["t0ps3cr3t"]);
    assert!(p.leftovers().is_empty(), "{:?}", p.leftovers());
}

/// `berth ARGS` in `p` with at most `files` open files.
fn berth_with_open_files(p: &common::Project, files: u32, args: &str) -> Run {
    let berth = env!("CARGO_BIN_EXE_berth");
    Run::from(
        std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("ulimit -n {files} && exec {berth} {args}"))
            .current_dir(p.path())
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap(),
    )
}

#[test]
fn many_jobs_need_few_open_files_and_running_out_is_said_as_such() {
    let mut pipeline = String::new();
    for i in 0..40 {
        pipeline.push_str(&format!("job{i}:\n  script: [echo {i}]\n"));
    }
    let p = busybox_project(&pipeline);
    // A log open per job for the whole run needed more than 40. Four jobs at a time need about
    // 20 (each running job holds a log file and two engine connections); the rest is margin.
    let run = berth_with_open_files(&p, 34, "run -j 4 --output plain");
    run.expect_code(0);
    assert!(!run.stderr.contains("cannot write"), "{}", run.stderr);
    assert_eq!(
        without_timestamps(&record(&p, "job39")),
        step_log(format!("{}39\n", echoed("echo 39")).as_bytes())
    );
    // Too few for even that: the jobs fail saying what ran out, not that the engine is away.
    let run = berth_with_open_files(&p, 14, "run -j 4 --output plain");
    assert_ne!(run.code, 0);
    assert!(run.stderr.contains("open files"), "{}", run.stderr);
    assert!(!run.stderr.contains("cannot reach"), "{}", run.stderr);
    assert!(p.leftovers().is_empty(), "{:?}", p.leftovers());
}

/// The log check: a job's record holds what GitLab Runner's log holds for the same job, as the
/// runner's source writes it (shells/bash.go, shells/abstract.go, common/build.go,
/// helpers/build_section.go), timestamps aside: the step_script and after_script sections
/// with their titles in bold cyan, each command echoed in bold green, a multi-line command
/// collapsed to its first line (or a folded section of its own with FF_SCRIPT_SECTIONS), and
/// after_script's notice and CI_JOB_STATUS.
#[test]
fn a_jobs_log_is_what_gitlab_runner_prints_for_it() {
    let p = busybox_project(
        "\
job:
  before_script: [echo before]
  script:
    - echo one
    - |
      echo two
      echo three
    - exit 3
  after_script: ['echo \"after $CI_JOB_STATUS\"']
sections:
  variables: {FF_SCRIPT_SECTIONS: 'true'}
  script:
    - |
      echo a
      echo b
",
    );
    let run = p.berth(&["run", "--output", "plain"]);
    run.expect_code(1);
    let job = "\
section_start:TS:step_script\r\x1b[0K\x1b[0K\x1b[36;1mExecuting \"step_script\" stage of the job script\x1b[0;m\x1b[0;m
\x1b[32;1m$ echo before\x1b[0;m
before
\x1b[32;1m$ echo one\x1b[0;m
one
\x1b[32;1m$ echo two # collapsed multi-line command\x1b[0;m
two
three
\x1b[32;1m$ exit 3\x1b[0;m
section_end:TS:step_script\r\x1b[0Ksection_start:TS:after_script\r\x1b[0K\x1b[0K\x1b[36;1mRunning after_script\x1b[0;m\x1b[0;m
\x1b[32;1mRunning after script...\x1b[0;m
\x1b[32;1m$ echo \"after $CI_JOB_STATUS\"\x1b[0;m
after failed
section_end:TS:after_script\r\x1b[0K";
    let sections = "\
section_start:TS:step_script\r\x1b[0K\x1b[0K\x1b[36;1mExecuting \"step_script\" stage of the job script\x1b[0;m\x1b[0;m
section_start:TS:section_script_step_0[hide_duration=true,collapsed=true]\r\x1b[0K\x1b[32;1m$ echo a
echo b\x1b[0;m
section_end:TS:section_script_step_0\r\x1b[0K
a
b
section_end:TS:step_script\r\x1b[0K";
    for (name, expected) in [("job", job), ("sections", sections)] {
        let log = without_timestamps(&record(&p, name));
        assert_eq!(
            String::from_utf8_lossy(&log),
            expected,
            "the log of `{name}`"
        );
    }
}

/// What GitLab Runner's log holds for a script whose echoed commands and output are `body`:
/// the `step_script` section around it, timestamps as `TS` (see [`without_timestamps`]).
pub(crate) fn step_log(body: &[u8]) -> Vec<u8> {
    let mut out = b"section_start:TS:step_script\r\x1b[0K\x1b[0K\x1b[36;1mExecuting \"step_script\" stage of the job script\x1b[0;m\x1b[0;m\n".to_vec();
    out.extend_from_slice(body);
    out.extend_from_slice(b"section_end:TS:step_script\r\x1b[0K");
    out
}

/// A command as the runner echoes it: green and bold.
pub(crate) fn echoed(command: &str) -> String {
    format!("\x1b[32;1m$ {command}\x1b[0;m\n")
}

/// A log with the section lines' timestamps written `TS`.
pub(crate) fn without_timestamps(log: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(log.len());
    let mut i = 0;
    while i < log.len() {
        let rest = &log[i..];
        let marker = [&b"section_start:"[..], &b"section_end:"[..]]
            .into_iter()
            .find(|m| rest.starts_with(m));
        match marker {
            Some(m) => {
                out.extend_from_slice(m);
                out.extend_from_slice(b"TS");
                i += m.len();
                while log.get(i).is_some_and(u8::is_ascii_digit) {
                    i += 1;
                }
            }
            None => {
                out.push(log[i]);
                i += 1;
            }
        }
    }
    out
}
