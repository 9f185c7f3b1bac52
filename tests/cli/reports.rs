//! `artifacts: reports`: kept whatever the job's result, as GitLab keeps them, and the JUnit
//! results the jobs reported in the run's summary (plain output and the JSON event stream).

use crate::common::{require_image, Project, BUSYBOX};

/// `unit` writes a JUnit report with a failure and fails; `lint` one that passes.
const PIPELINE: &str = r#"
unit:
  script:
    - |
      cat > report.xml <<'XML'
      <?xml version="1.0" encoding="utf-8"?>
      <testsuites><testsuite name="pytest" tests="4">
        <testcase classname="tests.test_a" name="test_ok"/>
        <testcase classname="tests.test_a" name="test_also_ok"/>
        <testcase classname="tests.test_a" name="test_bad"><failure message="assert 1 == 2">trace</failure></testcase>
        <testcase classname="tests.test_b" name="test_later"><skipped/></testcase>
      </testsuite></testsuites>
      XML
    - exit 1
  allow_failure: true
  artifacts:
    paths: [never-made/]
    reports:
      junit: report.xml
lint:
  script: ['echo "<testsuite name=\"lint\"><testcase name=\"style\"/></testsuite>" > lint.xml']
  artifacts:
    reports:
      junit: [lint.xml]
      codequality: missing.json
"#;

fn project() -> Project {
    require_image(BUSYBOX);
    Project::new(&[("berth.yml", &format!("image: {BUSYBOX}\n{PIPELINE}"))])
}

#[test]
fn the_summary_shows_the_junit_results_and_a_failed_jobs_report_is_kept() {
    let p = project();
    let run = p.berth(&["run", "--output", "plain"]);
    run.expect_code(0);
    let summary = &run.stderr[run.stderr.find("summary:").expect("a summary")..];
    for line in [
        "tests (JUnit reports):",
        "  unit   2 passed, 1 failed, 1 skipped",
        "    failed: tests.test_a.test_bad",
        "  lint   1 passed, 0 failed",
        "  total  3 passed, 1 failed, 1 skipped",
    ] {
        assert!(
            summary.lines().any(|l| l == line),
            "`{line}` in:\n{summary}"
        );
    }
    assert!(
        run.stderr
            .contains("==> unit: tests: 2 passed, 1 failed, 1 skipped"),
        "{}",
        run.stderr
    );
    // The failed job's `paths` are not kept (`when: on_success`); its report is.
    let listed = p.berth(&["artifacts", "unit"]);
    listed.expect_code(0);
    assert!(
        listed
            .stdout
            .lines()
            .any(|l| l.starts_with("  report.xml ")),
        "{}",
        listed.stdout
    );
    // The run's record keeps them: in its manifest, and `berth show` says them.
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(p.run_dir().join("manifest.json")).expect("manifest"),
    )
    .expect("JSON");
    let unit = manifest["jobs"]
        .as_array()
        .expect("jobs")
        .iter()
        .find(|j| j["name"] == "unit")
        .expect("unit's record");
    assert_eq!(
        unit["tests"],
        serde_json::json!({"passed": 2, "failed": 1, "errors": 0, "skipped": 1, "failures": ["tests.test_a.test_bad"]}),
        "{unit}"
    );
    let show = p.berth(&["show"]);
    show.expect_code(0);
    for line in [
        "tests: 2 passed, 1 failed, 1 skipped",
        "failed: tests.test_a.test_bad",
        "tests: 1 passed, 0 failed",
    ] {
        assert!(
            show.stdout.lines().any(|l| l.trim() == line),
            "`{line}` in:\n{}",
            show.stdout
        );
    }
}

#[test]
fn the_json_stream_has_each_jobs_test_report() {
    let p = project();
    let run = p.berth(&["run", "--output", "json"]);
    run.expect_code(0);
    let reports: Vec<serde_json::Value> = run
        .stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["event"] == "test_report")
        .collect();
    let unit = reports
        .iter()
        .find(|v| v["job"] == "unit")
        .unwrap_or_else(|| panic!("no test_report of unit in {reports:?}"));
    assert_eq!(unit["passed"], 2);
    assert_eq!(unit["failed"], 1);
    assert_eq!(unit["errors"], 0);
    assert_eq!(unit["skipped"], 1);
    assert_eq!(
        unit["failures"],
        serde_json::json!(["tests.test_a.test_bad"])
    );
    assert_eq!(reports.len(), 2, "{reports:?}");
}
