//! What people and tools read: plain output, the JSON event stream, JUnit, run records, and
//! secret masking. Snapshots normalise times, ids and hashes.

use crate::common::{require_image, Project, Run, BUSYBOX};
use crate::logs::{echoed, step_log, without_timestamps};

const PIPELINE: &str = "\
stages: [build, test]
build:
  stage: build
  script: [echo building, mkdir -p out, echo app > out/app]
  artifacts: {paths: [out/]}
test:
  stage: test
  script: [cat out/app, exit 3]
  allow_failure: true
lint:
  stage: test
  script: [echo \"token=$TOKEN\"]
";

fn project() -> Project {
    require_image(BUSYBOX);
    Project::new(&[("berth.yml", &format!("image: {BUSYBOX}\n{PIPELINE}"))])
}

/// Replace what changes from run to run: durations, run ids.
fn normalise(text: &str) -> String {
    // The runner's section lines: their timestamps, their escapes made visible.
    let text = String::from_utf8_lossy(&without_timestamps(text.as_bytes()))
        .replace('\x1b', "\\e")
        .replace('\r', "\\r");
    let mut out = Vec::new();
    for line in text.lines() {
        let mut words: Vec<String> = Vec::new();
        for w in line.split(' ') {
            let bare = w.trim_end_matches(':');
            let w = if bare.len() > 1
                && bare.ends_with('s')
                && bare[..bare.len() - 1].parse::<f64>().is_ok()
            {
                format!("[T]{}", &w[bare.len()..])
            } else if w.len() == 20 && w.as_bytes()[8] == b'-' && w.as_bytes()[15] == b'-' {
                "[RUN]".to_string()
            } else if w.contains(".berth/runs/") {
                "[PATH]".to_string()
            } else {
                w.to_string()
            };
            words.push(w);
        }
        // Durations are right-aligned in the summary: "0.5s" and "10.5s" pad differently.
        let mut line = words.join(" ");
        while line.contains("   [T]") {
            line = line.replace("   [T]", "  [T]");
        }
        out.push(line);
    }
    out.join("\n")
}

#[test]
fn plain_output_snapshot() {
    let p = project();
    let run = p.berth(&["run", "-j", "1", "--output", "plain", "-e", "TOKEN=t"]);
    run.expect_code(0);
    insta::assert_snapshot!(normalise(&run.stderr));
}

#[test]
fn json_events_snapshot_and_schema() {
    let p = project();
    let run = Run::from(
        p.command(&["run", "-j", "1", "--output", "json", "--secret", "TOKEN"])
            .env("TOKEN", "hunter2")
            .output()
            .unwrap(),
    );
    run.expect_code(0);
    let mut lines = Vec::new();
    for line in run.stdout.lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("every line is JSON");
        assert_eq!(v["v"], 1);
        assert!(v["ts"].as_u64().is_some());
        let event = v["event"].as_str().unwrap().to_string();
        let job = v["job"].as_str().unwrap_or("-").to_string();
        let detail = match event.as_str() {
            "job_log" => {
                String::from_utf8_lossy(&without_timestamps(v["line"].as_str().unwrap().as_bytes()))
                    .into_owned()
            }
            "job_finished" => format!(
                "{} exit={} attempts={}",
                v["status"].as_str().unwrap(),
                v["exit_code"],
                v["attempts"]
            ),
            "job_queued" => {
                let vars = v["variables"].as_array().unwrap();
                let token = vars.iter().find(|p| p[0] == "TOKEN").unwrap();
                format!(
                    "image={} TOKEN={}",
                    v["image"].as_str().unwrap(),
                    token[1].as_str().unwrap()
                )
            }
            "artifacts_stored" => format!("files={} bytes={}", v["files"], v["bytes"]),
            "run_finished" => format!(
                "{} critical_path={}",
                v["status"].as_str().unwrap(),
                v["critical_path"]
            ),
            _ => String::new(),
        };
        lines.push(format!("{event} {job} {detail}").trim_end().to_string());
    }
    assert!(
        !run.stdout.contains("hunter2"),
        "the secret leaked:\n{}",
        run.stdout
    );
    insta::assert_snapshot!(lines.join("\n"));
}

#[test]
fn junit_report_has_a_case_per_job() {
    let p = project();
    let junit = p.path().join("report.xml");
    let run = p.berth(&["run", "--junit", junit.to_str().unwrap(), "-e", "TOKEN=t"]);
    run.expect_code(0);
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(xml.contains(r#"tests="3""#), "{xml}");
    assert!(
        xml.contains(r#"<testcase name="build" classname="build""#),
        "{xml}"
    );
    assert!(
        xml.contains(r#"<testcase name="lint" classname="test""#),
        "{xml}"
    );
    // An allowed failure passes the pipeline, so it is not a JUnit failure.
    assert!(xml.contains(r#"failures="0""#), "{xml}");
}

#[test]
fn run_records_keep_logs_and_a_manifest() {
    let p = project();
    let run = Run::from(
        p.command(&["run", "--secret", "TOKEN"])
            .env("TOKEN", "hunter2")
            .output()
            .unwrap(),
    );
    run.expect_code(0);
    let runs = p.berth(&["runs"]);
    runs.expect_code(0);
    assert!(
        runs.stdout.lines().nth(1).unwrap().contains("passed"),
        "{}",
        runs.stdout
    );
    let logs = p.berth(&["logs", "lint"]);
    logs.expect_code(0);
    let mut expected = b"Receiving artifacts of `build` (1 files)\n".to_vec();
    expected.extend(step_log(
        format!("{}token=[MASKED]\n", echoed("echo \"token=$TOKEN\"")).as_bytes(),
    ));
    assert_eq!(
        String::from_utf8_lossy(&without_timestamps(logs.stdout.as_bytes())),
        String::from_utf8_lossy(&expected)
    );
    let show = p.berth(&["show"]);
    show.expect_code(0);
    assert!(
        show.stdout.contains("critical path: build -> "),
        "{}",
        show.stdout
    );
    let dir = p.run_dir();
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["status"], "passed");
    assert!(manifest["engine_version"].as_str().unwrap().len() > 2);
    assert_eq!(manifest["pipeline_sha256"].as_str().unwrap().len(), 64);
    let build = manifest["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["name"] == "build")
        .unwrap();
    assert!(build["image_id"].as_str().unwrap().starts_with("sha256:"));
    assert_eq!(build["commands"][0], "echo building");
    assert_eq!(build["exit_code"], 0);
    assert!(build["artifacts"].as_str().unwrap().ends_with(".json"));
    let whole = std::fs::read_to_string(dir.join("manifest.json")).unwrap();
    assert!(
        !whole.contains("hunter2"),
        "the secret leaked into the record"
    );
}

#[test]
fn old_runs_are_pruned() {
    let p = project();
    for _ in 0..3 {
        p.berth(&["run", "--keep-runs", "2", "-e", "TOKEN=t"])
            .expect_code(0);
    }
    assert_eq!(
        std::fs::read_dir(p.path().join(".berth/runs"))
            .unwrap()
            .count(),
        2
    );
}

#[test]
fn variables_listed_in_berth_mask_or_given_to_mask_are_masked() {
    require_image(BUSYBOX);
    let p = Project::new(&[(
        "berth.yml",
        &format!(
            "\
image: {BUSYBOX}
variables:
  BERTH_MASK: API_KEY, DB_PASSWORD
  API_KEY: k-1234-secret
  BASE: pw
show:
  variables:
    DB_PASSWORD: ${{BASE}}-9876-secret
  script:
    - test \"$API_KEY\" = k-1234-secret && test \"$DB_PASSWORD\" = pw-9876-secret
    - echo \"key=$API_KEY pass=$DB_PASSWORD other=$OTHER\"
"
        ),
    )]);
    let run = p.berth(&[
        "run",
        "--output",
        "json",
        "--mask",
        "OTHER",
        "-e",
        "OTHER=plain-but-hidden",
    ]);
    run.expect_code(0);
    let logs = p.berth(&["logs", "show"]);
    logs.expect_code(0);
    assert!(
        logs.stdout
            .contains("key=[MASKED] pass=[MASKED] other=[MASKED]"),
        "{}",
        logs.stdout
    );
    let manifest = std::fs::read_to_string(p.run_dir().join("manifest.json")).unwrap();
    for secret in ["k-1234-secret", "pw-9876-secret", "plain-but-hidden"] {
        for (what, text) in [
            ("events", &run.stdout),
            ("log", &logs.stdout),
            ("record", &manifest),
        ] {
            assert!(!text.contains(secret), "{secret} leaked into the {what}");
        }
    }
}
