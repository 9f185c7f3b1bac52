//! GitHub Actions workflows, run unchanged: steps one after another in one container per job,
//! outputs between steps and jobs, matrices, `if:`, and the python-ci seed of berth's founding
//! documents against a local package index (containers cannot reach PyPI).

use std::process::Command;

use crate::common::{require_image, Project, BUSYBOX, PYTHON};
use crate::pypi::{require_index, INDEX_IMAGE};

const PLATFORM: &str = "ubuntu-latest=berth-test/python:3.11";

#[test]
fn a_bad_workflow_is_exit_2_with_its_file_and_line_and_no_container() {
    let p = Project::new(&[(
        ".github/workflows/ci.yml",
        "on: push\njobs:\n  build:\n    runs-on: ubuntu-latest\n    stepz:\n      - run: true\n",
    )]);
    let run = p.berth(&["run"]);
    run.expect_code(2);
    assert!(
        run.stderr.contains(".github/workflows/ci.yml:5"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("stepz"), "{}", run.stderr);
    assert!(p.leftovers().is_empty());
}

#[test]
fn a_workflow_the_event_does_not_trigger_runs_nothing() {
    let p = Project::new(&[(
        ".github/workflows/ci.yml",
        "on: pull_request\njobs:\n  build:\n    runs-on: ubuntu-latest\n    steps:\n      - run: true\n",
    )]);
    let run = p.berth(&["run"]);
    run.expect_code(0);
    assert!(
        run.stderr.contains("no workflow runs for push"),
        "{}",
        run.stderr
    );
}

/// The local index as a container on Docker's default bridge, where the jobs are too; removed
/// when dropped.
struct Index {
    id: String,
    ip: String,
}

impl Index {
    fn start() -> Index {
        require_index();
        let out = Command::new("docker")
            .args(["run", "-d", "--label", "io.berth.test=1", INDEX_IMAGE])
            .output()
            .expect("docker run");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let out = Command::new("docker")
            .args(["inspect", "-f", "{{.NetworkSettings.IPAddress}}", &id])
            .output()
            .expect("docker inspect");
        let ip = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert!(!ip.is_empty(), "the index has no address");
        Index { id, ip }
    }

    /// `-e` arguments that send pip to the index.
    fn pip_env(&self) -> Vec<String> {
        vec![
            "-e".into(),
            format!("PIP_INDEX_URL=http://{}/simple/", self.ip),
            "-e".into(),
            format!("PIP_TRUSTED_HOST={}", self.ip),
        ]
    }
}

impl Drop for Index {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["rm", "-f", &self.id]).output();
    }
}

#[test]
fn the_python_ci_seed_passes_and_fails_when_a_test_fails() {
    require_image(PYTHON);
    let index = Index::start();
    let p = Project::fixture("github/python-ci");
    let mut args = vec!["run".to_string(), "--platform".into(), PLATFORM.into()];
    args.extend(index.pip_env());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = p.berth(&args);
    run.expect_code(0);
    let log = run.log("test").join("\n");
    assert!(log.contains("Successfully installed"), "{log}");
    assert!(log.contains("All checks passed!"), "{log}");
    assert!(log.contains("2 passed"), "{log}");
    // A failing test fails the job and the run (exit 1).
    p.write(
        "tests/test_shop.py",
        "from shop import tag\n\n\ndef test_wrong():\n    assert tag('tea', 5) == 'tea: 5.00'\n",
    );
    let run = p.berth(&args);
    run.expect_code(1);
    assert!(run.log("test").join("\n").contains("1 failed"));
    assert!(p.leftovers().is_empty(), "{:?}", p.leftovers());
}

#[test]
fn after_warm_the_python_ci_seed_passes_with_no_network() {
    require_image(PYTHON);
    let index = Index::start();
    let p = Project::fixture("github/python-ci");
    let mut warm = vec!["warm".to_string(), "--platform".into(), PLATFORM.into()];
    warm.extend(index.pip_env());
    let warm: Vec<&str> = warm.iter().map(String::as_str).collect();
    let warmed = p.berth(&warm);
    warmed.expect_code(0);
    // The steps' `pip install -r requirements-dev.txt` is what makes the job a pip job.
    assert!(
        warmed.stderr.contains("warming `test` (pip) from"),
        "{}",
        warmed.stderr
    );
    let log = warmed.log("test").join("\n");
    assert!(
        log.contains("berth warm: resolving requirements-dev.txt with pip"),
        "{log}"
    );
    assert!(
        !log.contains("All checks passed"),
        "warm runs none of the steps: {log}"
    );

    let offline = p.berth(&["run", "--platform", PLATFORM, "--network", "none"]);
    offline.expect_code(0);
    let log = offline.log("test").join("\n");
    assert!(
        log.contains("Processing /var/cache/berth/pip/wheels/"),
        "{log}"
    );
    assert!(log.contains("2 passed"), "{log}");
    assert!(p.leftovers().is_empty(), "{:?}", p.leftovers());
}

#[test]
fn the_verbatim_3_12_workflow_stops_with_a_clear_error() {
    require_image(PYTHON);
    let p = Project::fixture("github/python-ci-3.12");
    let run = p.berth(&["run", "--platform", PLATFORM]);
    // The image cannot run the job as asked: exit 3, as for an image that cannot be had.
    run.expect_code(3);
    let all = format!("{}{}", run.stdout, run.stderr);
    assert!(all.contains("3.12"), "{all}");
    assert!(all.contains("berth-test/python:3.11"), "{all}");
    assert!(all.contains("--platform"), "{all}");
    assert!(p.leftovers().is_empty());
}

#[test]
fn plan_lists_the_jobs_under_githubs_names_with_their_matrix() {
    let p = Project::new(&[(
        ".github/workflows/ci.yml",
        "on: [push]\njobs:\n  lint:\n    runs-on: ubuntu-latest\n    steps:\n      - run: true\n  test:\n    needs: lint\n    if: success()\n    runs-on: ${{ matrix.os }}\n    strategy:\n      matrix:\n        python: [3.10, '3.11']\n        os: [ubuntu-latest]\n    steps:\n      - run: true\n",
    )]);
    let run = p.berth(&["plan", "--output", "json"]);
    run.expect_code(0);
    let jobs: serde_json::Value = serde_json::from_str(&run.stdout).expect("JSON");
    let names: Vec<&str> = jobs
        .as_array()
        .expect("an array")
        .iter()
        .map(|j| j["name"].as_str().expect("a name"))
        .collect();
    assert_eq!(
        names,
        [
            "lint",
            "test (3.1, ubuntu-latest)",
            "test (3.11, ubuntu-latest)"
        ]
    );
    let test = &jobs[1];
    assert_eq!(test["workflow"], ".github/workflows/ci.yml");
    assert_eq!(test["job"], "test");
    assert_eq!(test["needs"], serde_json::json!(["lint"]));
    // An unquoted 3.10 is the number 3.1, as GitHub reads it.
    assert_eq!(
        test["matrix"],
        serde_json::json!({"python": 3.1, "os": "ubuntu-latest"})
    );
    assert_eq!(test["if"], "success()");
    assert!(jobs[0].get("matrix").is_none());
    // A job's id selects every combination of its matrix, with what they need.
    let selected = p.berth(&["plan", "--output", "json", "test"]);
    selected.expect_code(0);
    let selected: serde_json::Value = serde_json::from_str(&selected.stdout).expect("JSON");
    assert_eq!(selected.as_array().map(Vec::len), Some(3), "{selected}");
    let text = p.berth(&["plan"]);
    assert!(
        text.stdout.contains(".github/workflows/ci.yml runs: push"),
        "{}",
        text.stdout
    );
}

/// `ubuntu-latest` as the small busybox image.
fn busybox_platform() -> String {
    format!("ubuntu-latest={BUSYBOX}")
}

#[test]
fn two_workflows_with_a_job_of_the_same_id_run_both_apart() {
    require_image(BUSYBOX);
    let job =
        |say: &str| format!("    runs-on: ubuntu-latest\n    steps:\n      - run: echo {say}\n");
    let p = Project::new(&[
        (
            ".github/workflows/a.yml",
            &format!("on: push\njobs:\n  test:\n{}", job("from-a; exit 1")),
        ),
        (
            ".github/workflows/b.yml",
            &format!(
                "on: push\njobs:\n  test:\n{}  after:\n    needs: test\n{}",
                job("from-b"),
                job("after-b")
            ),
        ),
    ]);
    let platform = busybox_platform();
    let run = p.berth(&["run", "--platform", &platform]);
    run.expect_code(1);
    // The second workflow's `test` is told apart by its file; its `after` needs it, not a.yml's
    // failed `test`.
    assert!(run.status_of("test").contains("failed"), "{}", run.stderr);
    assert!(
        run.status_of("test [b.yml]").contains("passed"),
        "{}",
        run.stderr
    );
    assert!(run.status_of("after").contains("passed"), "{}", run.stderr);
    let logs = p.berth(&["logs", "test [b.yml]"]);
    logs.expect_code(0);
    assert!(logs.stdout.contains("from-b"), "{}", logs.stdout);
    assert!(!logs.stdout.contains("from-a"), "{}", logs.stdout);
    let show = p.berth(&["show"]);
    assert!(show.stdout.contains("test [b.yml]"), "{}", show.stdout);
    assert!(p.leftovers().is_empty(), "{:?}", p.leftovers());
}

#[test]
fn a_job_is_chosen_by_its_id_as_well_as_by_its_check_run_name() {
    let p = Project::new(&[(
        ".github/workflows/ci.yml",
        "on: push\njobs:\n  build:\n    name: Build it\n    runs-on: ubuntu-latest\n    steps:\n      - run: true\n  test:\n    needs: build\n    strategy:\n      matrix:\n        v: [1, 2]\n    runs-on: ubuntu-latest\n    steps:\n      - run: true\n  lint:\n    runs-on: ubuntu-latest\n    steps:\n      - run: true\n",
    )]);
    let names = |args: &[&str]| -> Vec<String> {
        let run = p.berth(args);
        run.expect_code(0);
        let jobs: serde_json::Value = serde_json::from_str(&run.stdout).expect("JSON");
        jobs.as_array()
            .expect("an array")
            .iter()
            .map(|j| j["name"].as_str().expect("a name").to_string())
            .collect()
    };
    assert_eq!(
        names(&["plan", "--output", "json", "test"]),
        ["Build it", "test (1)", "test (2)"]
    );
    assert_eq!(names(&["plan", "--output", "json", "build"]), ["Build it"]);
    assert_eq!(
        names(&["plan", "--output", "json", "test (2)"]),
        ["Build it", "test (2)"]
    );
    p.berth(&["plan", "nope"]).expect_code(2);
}

#[test]
fn a_workflow_run_replays() {
    require_image(BUSYBOX);
    let other = "on: push\njobs:\n  other:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo other-step\n";
    let p = Project::new(&[
        (
            ".github/workflows/ci.yml",
            "on: push\njobs:\n  hello:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo hello-step\n",
        ),
        (".github/workflows/other.yml", other),
    ]);
    let platform = busybox_platform();
    p.berth(&["run", "--platform", &platform]).expect_code(0);
    let replay = p.berth(&["replay"]);
    replay.expect_code(0);
    assert!(
        replay.log("hello").contains(&"hello-step"),
        "{}",
        replay.stderr
    );
    // Every workflow the run read is checked for drift, not only the first.
    p.write(
        ".github/workflows/other.yml",
        &other.replace("other-step", "changed"),
    );
    let drifted = p.berth(&["replay"]);
    drifted.expect_code(2);
    assert!(
        drifted
            .stderr
            .contains("the pipeline file .github/workflows/other.yml changed since the run"),
        "{}",
        drifted.stderr
    );
    assert!(p.leftovers().is_empty(), "{:?}", p.leftovers());
}

#[test]
fn a_secret_is_in_the_secrets_context_and_masked() {
    require_image(BUSYBOX);
    let p = Project::new(&[(
        ".github/workflows/ci.yml",
        "on: push\njobs:\n  s:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo \"token=[${{ secrets.TOKEN }}] set=${{ secrets.TOKEN != '' }}\"\n",
    )]);
    let platform = busybox_platform();
    let out = p
        .command(&["run", "--platform", &platform, "--secret", "TOKEN"])
        .env("TOKEN", "hunter2-secret")
        .output()
        .expect("run berth");
    let run = crate::common::Run::from(out);
    run.expect_code(0);
    assert!(
        run.log("s").contains(&"token=[[MASKED]] set=true"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("hunter2-secret"), "{}", run.stderr);
    let logs = p.berth(&["logs", "s"]);
    assert!(logs.stdout.contains("token=[[MASKED]]"), "{}", logs.stdout);
    assert!(!logs.stdout.contains("hunter2-secret"), "{}", logs.stdout);
}

#[test]
fn shell_python_runs_where_the_image_has_only_python3() {
    require_image(PYTHON);
    let p = Project::new(&[(
        ".github/workflows/ci.yml",
        "on: push\njobs:\n  py:\n    runs-on: ubuntu-latest\n    steps:\n      - shell: python\n        run: |\n          import sys\n          print('python', sys.version_info[0])\n",
    )]);
    let run = p.berth(&["run", "--platform", PLATFORM]);
    run.expect_code(0);
    assert!(run.log("py").contains(&"python 3"), "{}", run.stderr);
}

#[test]
fn the_users_platforms_file_maps_runs_on_and_the_command_line_wins() {
    require_image(BUSYBOX);
    let p = Project::new(&[(
        ".github/workflows/ci.yml",
        "on: push\njobs:\n  hello:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo hello from busybox\n",
    )]);
    let config = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir(config.path().join("berth")).expect("mkdir");
    let file = config.path().join("berth/platforms");
    std::fs::write(
        &file,
        format!("# this laptop\n-P ubuntu-latest={BUSYBOX}\n"),
    )
    .expect("write");
    let with_config = |args: &[&str]| -> crate::common::Run {
        p.command(args)
            .env("XDG_CONFIG_HOME", config.path())
            .output()
            .expect("run berth")
            .into()
    };
    let plan = with_config(&["plan"]);
    plan.expect_code(0);
    assert!(
        plan.stdout.contains(&format!("image {BUSYBOX}")),
        "{}",
        plan.stdout
    );
    let run = with_config(&["run"]);
    run.expect_code(0);
    assert!(
        run.log("hello").contains(&"hello from busybox"),
        "{}",
        run.stderr
    );
    let plan = with_config(&["plan", "--platform", "ubuntu-latest=other:1"]);
    assert!(plan.stdout.contains("image other:1"), "{}", plan.stdout);
    assert!(!plan.stdout.contains(BUSYBOX), "{}", plan.stdout);
    // A line berth cannot read is exit 2, naming the file and the line.
    std::fs::write(&file, "ubuntu-latest\n").expect("write");
    let bad = with_config(&["plan"]);
    bad.expect_code(2);
    assert!(
        bad.stderr.contains(&format!("{}:1:", file.display())),
        "{}",
        bad.stderr
    );
}

#[test]
fn the_event_payload_is_what_github_sends_or_the_file_given() {
    require_image(BUSYBOX);
    let p = Project::new(&[(
        ".github/workflows/ci.yml",
        "on: [push]\njobs:\n  e:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo \"before=${{ github.event.before }} after=${{ github.event.after }} msg=${{ github.event.head_commit.message }} repo=${{ github.event.repository.name }}\"\n      - run: grep -c head_commit $GITHUB_EVENT_PATH\n",
    )]);
    p.git(&["init", "-q", "-b", "main"]);
    p.git(&["add", "-A"]);
    p.git(&["commit", "-q", "-m", "first"]);
    p.write("a.txt", "a\n");
    p.git(&["add", "-A"]);
    p.git(&["commit", "-q", "-m", "second"]);
    let (first, second) = (
        p.git(&["rev-parse", "HEAD~1"]),
        p.git(&["rev-parse", "HEAD"]),
    );
    let platform = busybox_platform();
    let run = p.berth(&["run", "--platform", &platform]);
    run.expect_code(0);
    let log = run.log("e");
    let name = p.path().file_name().unwrap().to_string_lossy().into_owned();
    let expected = format!("before={first} after={second} msg=second repo={name}");
    assert!(log.contains(&expected.as_str()), "{expected}: {log:?}");
    assert!(log.contains(&"1"), "the payload file: {log:?}");
    // A payload file replaces it whole.
    p.write(
        "push.json",
        "{\"before\": \"b4\", \"after\": \"af\", \"head_commit\": {\"message\": \"given\"}, \"repository\": {\"name\": \"r\"}}",
    );
    let given = p.berth(&[
        "run",
        "--platform",
        &platform,
        "--event-payload",
        "push.json",
    ]);
    given.expect_code(0);
    assert!(
        given
            .log("e")
            .contains(&"before=b4 after=af msg=given repo=r"),
        "{:?}",
        given.log("e")
    );
    p.write("bad.json", "{\"before\": ");
    let bad = p.berth(&[
        "run",
        "--platform",
        &platform,
        "--event-payload",
        "bad.json",
    ]);
    bad.expect_code(2);
    assert!(bad.stderr.contains("bad.json:1:"), "{}", bad.stderr);
    assert!(p.leftovers().is_empty(), "{:?}", p.leftovers());
}

#[test]
fn workflow_dispatch_inputs_come_from_the_command_line_typed_as_declared() {
    require_image(BUSYBOX);
    let p = Project::new(&[(
        ".github/workflows/ci.yml",
        "on:\n  workflow_dispatch:\n    inputs:\n      level: {type: string, default: low}\n      dry: {type: boolean, default: true}\njobs:\n  d:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo \"level=${{ inputs.level }} dry=${{ inputs.dry }} not=${{ !inputs.dry }} event=${{ github.event.inputs.level }}\"\n",
    )]);
    let platform = busybox_platform();
    let base = [
        "run",
        "--platform",
        &platform,
        "--event",
        "workflow_dispatch",
    ];
    let defaults = p.berth(&base);
    defaults.expect_code(0);
    assert!(
        defaults
            .log("d")
            .contains(&"level=low dry=true not=false event="),
        "{:?}",
        defaults.log("d")
    );
    let mut given = base.to_vec();
    given.extend(["--input", "level=high", "--input", "dry=false"]);
    let given = p.berth(&given);
    given.expect_code(0);
    assert!(
        given
            .log("d")
            .contains(&"level=high dry=false not=true event=high"),
        "{:?}",
        given.log("d")
    );
    assert!(p.leftovers().is_empty(), "{:?}", p.leftovers());
}

/// A workflow whose `test` matrix is made from `setup`'s output (`MATRIX`), and a `report` job
/// that reads how `test` ended.
fn dynamic_matrix(matrix: &str, test_step: &str) -> String {
    format!(
        r#"on: push
jobs:
  setup:
    runs-on: ubuntu-latest
    outputs:
      matrix: ${{{{ steps.m.outputs.matrix }}}}
    steps:
      - id: m
        run: echo 'matrix={matrix}' >> "$GITHUB_OUTPUT"
  test:
    needs: setup
    runs-on: ubuntu-latest
    strategy:
      matrix: ${{{{ fromJSON(needs.setup.outputs.matrix) }}}}
    outputs:
      last: ${{{{ steps.s.outputs.last }}}}
    steps:
      - id: s
        run: |
          echo "n=${{{{ matrix.n }}}} extra=${{{{ matrix.extra }}}} setup=${{{{ needs.setup.result }}}}"
          echo "last=${{{{ matrix.n }}}}" >> "$GITHUB_OUTPUT"
          {test_step}
  report:
    needs: test
    if: always()
    runs-on: ubuntu-latest
    steps:
      - run: echo "test=${{{{ needs.test.result }}}} last=${{{{ needs.test.outputs.last }}}}"
"#
    )
}

#[test]
fn a_matrix_made_from_a_needs_output_runs_its_jobs_when_the_need_ends() {
    require_image(BUSYBOX);
    let workflow = dynamic_matrix(r#"{"n":[1,2],"include":[{"n":3,"extra":"x"}]}"#, "true");
    let p = Project::new(&[(".github/workflows/ci.yml", &workflow)]);
    let platform = busybox_platform();

    // Before the run, the plan shows the job that stands for the matrix, and where it comes from.
    let plan = p.berth(&["plan", "--platform", &platform, "--output", "json"]);
    plan.expect_code(0);
    let plan: serde_json::Value = serde_json::from_str(&plan.stdout).expect("plan JSON");
    let test = plan
        .as_array()
        .expect("an array")
        .iter()
        .find(|j| j["job"] == "test")
        .unwrap_or_else(|| panic!("no test job in the plan: {plan}"));
    assert_eq!(
        test["matrix"], "${{ fromJSON(needs.setup.outputs.matrix) }}",
        "{test}"
    );

    let run = p.berth(&["run", "--platform", &platform]);
    run.expect_code(0);
    for name in ["test (1)", "test (2)", "test (3, x)"] {
        assert!(
            run.status_of(name).contains("passed"),
            "{name}: {}",
            run.stderr
        );
    }
    let logs = p.berth(&["logs", "test (3, x)"]);
    assert!(
        logs.stdout.contains("n=3 extra=x setup=success"),
        "{}",
        logs.stdout
    );
    // The jobs that need the matrix read its result and the outputs of the job that ended last.
    let report = p.berth(&["logs", "report"]);
    assert!(
        report.stdout.contains("test=success last="),
        "{}",
        report.stdout
    );
    let last = report
        .stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("test=success last="))
        .unwrap_or_else(|| panic!("{}", report.stdout));
    assert!(["1", "2", "3"].contains(&last.trim()), "{}", report.stdout);
    // The summary lists the matrix's jobs, not the job that stood for them.
    let show = p.berth(&["show"]);
    let listed = |name: &str| {
        show.stdout
            .lines()
            .any(|l| l.contains(&format!("ci.yml {name}  ")))
    };
    assert!(listed("test (2)") && listed("report"), "{}", show.stdout);
    assert!(!listed("test"), "{}", show.stdout);
    assert!(p.leftovers().is_empty(), "{:?}", p.leftovers());
}

#[test]
fn a_dynamic_matrix_fails_fast_and_a_bad_one_fails_its_job_alone() {
    require_image(BUSYBOX);
    let platform = busybox_platform();
    // n=1 fails at once; n=2 would take a minute: fail-fast cancels it.
    let workflow = dynamic_matrix(
        r#"{"n":[1,2]}"#,
        r#"if [ "${{ matrix.n }}" = 1 ]; then exit 3; else sleep 60; fi"#,
    );
    let p = Project::new(&[(".github/workflows/ci.yml", &workflow)]);
    let run = p.berth(&["run", "--platform", &platform]);
    run.expect_code(1);
    assert!(
        run.status_of("test (1)").contains("failed"),
        "{}",
        run.stderr
    );
    assert!(
        run.status_of("test (2)").contains("cancelled"),
        "{}",
        run.stderr
    );
    let report = p.berth(&["logs", "report"]);
    assert!(report.stdout.contains("test=failure"), "{}", report.stdout);
    assert!(p.leftovers().is_empty(), "{:?}", p.leftovers());

    // An output that is no matrix fails the job that stands for it, and what needs it follows.
    let workflow = dynamic_matrix("not json", "true");
    let p = Project::new(&[(".github/workflows/ci.yml", &workflow)]);
    let run = p.berth(&["run", "--platform", &platform]);
    run.expect_code(1);
    assert!(run.status_of("test").contains("failed"), "{}", run.stderr);
    assert!(run.stderr.contains("matrix"), "{}", run.stderr);
    let report = p.berth(&["logs", "report"]);
    assert!(report.stdout.contains("test=failure"), "{}", report.stdout);
    assert!(p.leftovers().is_empty(), "{:?}", p.leftovers());
}
