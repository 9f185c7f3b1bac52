//! Jobs of steps (GitHub Actions workflows): one container per job kept up while each step runs
//! in it as a process of its own (the engine's `exec`), on Docker and on Podman.

use crate::common::{require_image, Project, BUSYBOX};

const PLATFORM: &str = "ubuntu-latest=berth-test/busybox:latest";

const STEPS: &str = r#"name: ci
on: push
env:
  GREETING: hello
jobs:
  build:
    runs-on: ubuntu-latest
    outputs:
      answer: ${{ steps.calc.outputs.answer }}
    steps:
      - uses: actions/checkout@v4
      - run: echo "$GREETING from $GITHUB_JOB - files $(ls)"
      - id: calc
        run: |
          echo "answer=42" >> "$GITHUB_OUTPUT"
          echo "LATER=set-by-env-file" >> "$GITHUB_ENV"
      - run: echo "the answer is ${{ steps.calc.outputs.answer }}, later is $LATER"
  test:
    needs: build
    runs-on: ubuntu-latest
    strategy:
      # Both combinations run to their end (fail-fast would cancel the passing one).
      fail-fast: false
      matrix:
        n: [1, 2]
    steps:
      - run: echo "n=${{ matrix.n }} answer=${{ needs.build.outputs.answer }}"
      - run: exit ${{ matrix.n == 2 && 1 || 0 }}
      - run: echo "not reached after a failure"
      - if: failure()
        run: echo "cleanup after failure"
  report:
    needs: test
    if: always()
    runs-on: ubuntu-latest
    steps:
      - run: echo "test was ${{ needs.test.result }}"
  never:
    needs: test
    runs-on: ubuntu-latest
    steps:
      - run: echo "runs only when test passed"
"#;

#[test]
fn steps_share_a_container_and_pass_outputs_to_later_steps_and_jobs() {
    require_image(BUSYBOX);
    let p = Project::new(&[(".github/workflows/ci.yml", STEPS), ("README", "hi\n")]);
    let run = p.berth(&["run", "--platform", PLATFORM]);
    run.expect_code(1);
    let build = run.log("build");
    assert!(
        build.contains(&"hello from build - files README"),
        "{build:?}"
    );
    assert!(
        build.contains(&"the answer is 42, later is set-by-env-file"),
        "{build:?}"
    );
    // Matrix jobs under GitHub's check-run names, each with the need's output.
    assert!(run.log("test (1)").contains(&"n=1 answer=42"));
    let failed = run.log("test (2)");
    assert!(failed.contains(&"n=2 answer=42"), "{failed:?}");
    assert!(failed.contains(&"cleanup after failure"), "{failed:?}");
    assert!(
        !failed.contains(&"not reached after a failure"),
        "{failed:?}"
    );
    assert!(run.status_of("test (1)").contains(": passed in "));
    assert!(run.status_of("test (2)").contains(": failed in "));
    // `if: always()` runs after a failed need and sees its result; a plain need is skipped.
    assert!(run.log("report").contains(&"test was failure"));
    assert!(
        run.status_of("never").contains("skipped"),
        "{}",
        run.status_of("never")
    );
    assert!(p.leftovers().is_empty(), "{:?}", p.leftovers());
}

#[test]
fn ctrl_c_stops_a_running_step_and_leaves_nothing() {
    require_image(BUSYBOX);
    let p = Project::new(&[(
        ".github/workflows/ci.yml",
        "on: push\njobs:\n  slow:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo ready; sleep 300\n      - run: echo never\n",
    )]);
    let mut child = p
        .command(&["run", "--platform", PLATFORM])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start berth");
    let mut stderr = child.stderr.take().expect("stderr");
    let seen = crate::child::read_until(
        &mut stderr,
        "[slow] ready",
        std::time::Duration::from_secs(60),
    );
    assert!(
        seen.contains("[slow] ready"),
        "the step never started:\n{seen}"
    );
    // SAFETY: sending a signal to our own child process.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = child.wait().expect("wait");
    let mut rest = String::new();
    let _ = std::io::Read::read_to_string(&mut stderr, &mut rest);
    assert_eq!(status.code(), Some(130), "{seen}{rest}");
    assert!(!rest.contains("[slow] never"), "{rest}");
    assert!(p.leftovers().is_empty(), "{:?}", p.leftovers());
}

#[test]
fn a_step_that_runs_out_of_its_own_time_fails_alone_and_the_job_goes_on() {
    require_image(BUSYBOX);
    // The background `sleep` keeps the step's output open: its whole process group is stopped.
    let p = Project::new(&[(
        ".github/workflows/ci.yml",
        r#"on: push
jobs:
  slow:
    runs-on: ubuntu-latest
    steps:
      - run: sleep 300 & echo ready; sleep 300
        timeout-minutes: 0.05
      - run: echo never
      - if: always()
        run: echo "cleanup ran"
  soft:
    runs-on: ubuntu-latest
    steps:
      - id: s
        run: sleep 300
        timeout-minutes: 0.05
        continue-on-error: true
      - run: echo "after it, ${{ steps.s.outcome }}"
"#,
    )]);
    let run = p.berth(&["run", "-j", "2", "--platform", PLATFORM]);
    run.expect_code(1);
    let log = run.log("slow");
    assert!(
        log.iter()
            .any(|l| l
                .starts_with("step `Run sleep 300 & echo ready; sleep 300` timed out after 3.0s")),
        "{log:?}"
    );
    // Only the step failed: the job's later `always()` step still ran, the others not.
    assert!(log.contains(&"cleanup ran"), "{log:?}");
    assert!(!log.contains(&"never"), "{log:?}");
    let status = run.status_of("slow");
    assert!(status.contains(": failed in "), "{status}");
    // `continue-on-error` on a step that timed out: the job goes on and passes.
    let soft = run.log("soft");
    assert!(soft.contains(&"after it, failure"), "{soft:?}");
    assert!(
        run.status_of("soft").contains(": passed in "),
        "{}",
        run.stderr
    );
    assert!(p.leftovers().is_empty(), "{:?}", p.leftovers());
}

#[test]
fn a_file_command_with_stray_bytes_keeps_its_lines_and_one_too_large_is_said() {
    require_image(BUSYBOX);
    let p = Project::new(&[(
        ".github/workflows/ci.yml",
        r#"on: push
jobs:
  files:
    runs-on: ubuntu-latest
    steps:
      - id: s
        run: |
          printf 'a=1\nx=\377\376\n' >> "$GITHUB_OUTPUT"
          head -c 5000000 /dev/zero | tr '\0' b >> "$GITHUB_STEP_SUMMARY"
      - run: echo "a is [${{ steps.s.outputs.a }}]"
"#,
    )]);
    let run = p.berth(&["run", "--platform", PLATFORM]);
    run.expect_code(0);
    let log = run.log("files");
    // One byte that is not UTF-8 does not lose the file's other outputs.
    assert!(log.contains(&"a is [1]"), "{log:?}");
    // A file over berth's limit is named, not silently dropped.
    assert!(
        log.iter()
            .any(|l| l.contains("/summary is larger than") && l.contains("berth ignores it")),
        "{log:?}"
    );
    assert!(p.leftovers().is_empty(), "{:?}", p.leftovers());
}

#[test]
fn fail_fast_cancels_the_other_combinations_of_a_failed_matrix_job() {
    require_image(BUSYBOX);
    let p = Project::new(&[(
        ".github/workflows/ci.yml",
        r#"on: push
jobs:
  fast:
    runs-on: ubuntu-latest
    timeout-minutes: 1
    strategy:
      matrix:
        n: [1, 2]
    steps:
      - run: if [ ${{ matrix.n }} = 1 ]; then sleep 2; exit 1; fi; echo slow; sleep 300
  patient:
    runs-on: ubuntu-latest
    strategy:
      fail-fast: false
      matrix:
        n: [1, 2]
    steps:
      - run: if [ ${{ matrix.n }} = 1 ]; then exit 1; fi; sleep 3; echo done
"#,
    )]);
    let run = p.berth(&["run", "-j", "4", "--platform", PLATFORM]);
    run.expect_code(1);
    assert!(
        run.status_of("fast (1)").contains("failed"),
        "{}",
        run.stderr
    );
    // The other combination is stopped, not left to run out its time.
    let other = run.status_of("fast (2)");
    assert!(other.contains("cancelled"), "{}", run.stderr);
    // `fail-fast: false`: the others run to their end.
    assert!(
        run.status_of("patient (2)").contains("passed"),
        "{}",
        run.stderr
    );
    assert!(run.log("patient (2)").contains(&"done"));
    assert!(p.leftovers().is_empty(), "{:?}", p.leftovers());
}

#[test]
fn max_parallel_runs_one_combination_at_a_time() {
    require_image(BUSYBOX);
    // Each combination logs when it started and ended, by the host's clock (/proc/uptime).
    let p = Project::new(&[(
        ".github/workflows/ci.yml",
        r#"on: push
jobs:
  m:
    runs-on: ubuntu-latest
    strategy:
      max-parallel: 1
      matrix:
        n: [1, 2, 3]
    steps:
      - run: |
          start=$(cut -d' ' -f1 /proc/uptime)
          sleep 1
          echo "interval $start $(cut -d' ' -f1 /proc/uptime)"
"#,
    )]);
    let run = p.berth(&["run", "-j", "4", "--platform", PLATFORM]);
    run.expect_code(0);
    let mut intervals: Vec<(f64, f64)> = (1..=3)
        .map(|n| {
            let log = run.log(&format!("m ({n})"));
            let line = log
                .iter()
                .find_map(|l| l.strip_prefix("interval "))
                .unwrap_or_else(|| panic!("no interval for m ({n}): {log:?}"));
            let (a, b) = line.split_once(' ').expect("two times");
            (a.parse().expect("start"), b.parse().expect("end"))
        })
        .collect();
    intervals.sort_by(|a, b| a.0.total_cmp(&b.0));
    for w in intervals.windows(2) {
        assert!(
            w[0].1 <= w[1].0,
            "combinations overlapped: {intervals:?}\n{}",
            run.stderr
        );
    }
    assert!(p.leftovers().is_empty(), "{:?}", p.leftovers());
}

#[test]
fn workflow_commands_mask_group_and_annotate_the_jobs_log_and_record() {
    require_image(BUSYBOX);
    let p = Project::new(&[(
        ".github/workflows/ci.yml",
        r#"on: push
jobs:
  cmds:
    runs-on: ubuntu-latest
    steps:
      - run: |
          echo "::add-mask::tok-$((6 * 7))-xyz"
          echo "::group::Installing"
          echo "inside the group"
          echo "::endgroup::"
          echo "::error file=app.py,line=3,col=5,title=Lint::bad%0Athing"
          echo "same step tok-42-xyz"
      - id: two
        run: |
          echo "later step tok-42-xyz"
          echo "::set-output name=x::1"
      - run: echo "x is ${{ steps.two.outputs.x }}"
"#,
    )]);
    let run = p.berth(&["run", "--platform", PLATFORM]);
    run.expect_code(0);
    let log = run.log("cmds");
    assert!(!run.stderr.contains("tok-42-xyz"), "{}", run.stderr);
    assert!(log.contains(&"same step [MASKED]"), "{log:?}");
    assert!(log.contains(&"later step [MASKED]"), "{log:?}");
    // No command line is shown raw.
    assert!(!log.iter().any(|l| l.starts_with("::")), "{log:?}");
    assert!(log.contains(&"▸ Installing"), "{log:?}");
    assert!(log.contains(&"Error: app.py:3:5: Lint: bad"), "{log:?}");
    assert!(
        log.iter()
            .any(|l| l.starts_with("Warning: The `set-output` command is deprecated")),
        "{log:?}"
    );
    // The deprecated set-output still works, as on GitHub.
    assert!(log.contains(&"x is 1"), "{log:?}");
    // The annotations are gathered at the job's end.
    let summary = run.line_index("Annotations (2):");
    assert!(summary > run.line_index("later step"), "{}", run.stderr);
    assert!(
        log.contains(
            &"  Error in `Run echo \"::add-mask::tok-$((6 * 7))-xyz\"`: app.py:3:5: Lint: bad"
        ),
        "{log:?}"
    );
    // The run record never has the value.
    let logs = p.berth(&["logs", "cmds"]);
    logs.expect_code(0);
    assert!(
        logs.stdout.contains("later step [MASKED]"),
        "{}",
        logs.stdout
    );
    for entry in walk(&p.run_dir()) {
        let bytes = std::fs::read(&entry).expect("read the record");
        assert!(
            !String::from_utf8_lossy(&bytes).contains("tok-42-xyz"),
            "{} has the masked value",
            entry.display()
        );
    }
    assert!(p.leftovers().is_empty(), "{:?}", p.leftovers());
}

/// Every file under `dir`.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}
