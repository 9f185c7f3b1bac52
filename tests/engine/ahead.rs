//! Start-ahead: the container of a job that runs next is made and started while the jobs it
//! needs still run, and it still sees only what they left, only once they have finished. Each
//! test holds a job of the first stage at a file it waits for, looks at the containers that
//! exist then (by berth's labels, at that point in time), and lets the job go by creating the
//! file in its container.

use std::io::Read;
use std::process::{Child, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use berth::engine::runtime::{labels, ContainerRuntime as _, ExecSpec, Output};
use futures_util::StreamExt;

use crate::child::read_until;
use crate::common::{block_on, busybox_project, require_image, Project, BUSYBOX};

/// A job's script line that waits until `/tmp/NAME` exists in its container.
fn hold(name: &str) -> String {
    format!("'until [ -e /tmp/{name} ]; do sleep 0.2; done'")
}

/// This project's job containers now: (job, container id, running), by berth's labels.
fn containers(p: &Project) -> Vec<(String, String, bool)> {
    let project = p.path().display().to_string();
    block_on(async {
        let engine = berth::docker::Engine::connect().await.expect("engine");
        let mut out = Vec::new();
        for c in engine
            .containers_with_label(labels::PROJECT, Some(&project))
            .await
            .expect("list containers")
        {
            let Some(job) = c.labels.get(labels::JOB) else {
                continue;
            };
            // Gone between the listing and the look: it does not count.
            if let Ok(state) = engine.container_state(&c.id, "").await {
                out.push((job.clone(), c.id.clone(), state.running));
            }
        }
        out
    })
}

fn running_job(p: &Project, job: &str) -> Option<String> {
    containers(p)
        .into_iter()
        .find(|(j, _, running)| j == job && *running)
        .map(|(_, id, _)| id)
}

/// Wait (up to a minute) until `check` gives something; what it gave.
fn wait_for<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(found) = check() {
            return found;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "gave up waiting: {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Let the job that waits for `/tmp/NAME` go on.
pub fn release(p: &Project, job: &str, name: &str) {
    let id = wait_for(&format!("a running container of `{job}`"), || {
        running_job(p, job)
    });
    block_on(async {
        let engine = berth::docker::Engine::connect().await.expect("engine");
        let spec = ExecSpec {
            argv: ["touch", &format!("/tmp/{name}")]
                .map(String::from)
                .to_vec(),
            ..Default::default()
        };
        let (_, mut output) = engine.exec(&id, &spec).await.expect("exec");
        while output.next().await.is_some() {}
    });
}

/// A time field of a container's `docker inspect` (the engine's clock, UTC) as (date and time
/// to the second, nanoseconds): Go's text leaves out a fraction's trailing zeros.
fn inspect(id: &str, field: &str) -> (String, u32) {
    let out = std::process::Command::new("docker")
        .args(["inspect", "-f", &format!("{{{{.{field}}}}}"), id])
        .output()
        .expect("docker inspect");
    assert!(out.status.success(), "docker inspect {id}: {out:?}");
    let text = String::from_utf8(out.stdout).expect("utf-8");
    let utc = text.trim().trim_end_matches('Z').trim_end_matches("+00:00");
    let (seconds, fraction) = utc.split_once('.').unwrap_or((utc, "0"));
    let nanos = format!("{fraction:0<9}").parse().expect("nanoseconds");
    (seconds.to_string(), nanos)
}

/// berth running with its output read until `needle`; the rest is read in the background.
struct Running {
    child: Child,
    seen: String,
    rest: JoinHandle<String>,
}

fn start(p: &Project, args: &[&str], needle: &str) -> Running {
    let mut child = p
        .command(args)
        .stderr(Stdio::piped())
        .spawn()
        .expect("start berth");
    let mut stderr = child.stderr.take().expect("stderr");
    let seen = read_until(&mut stderr, needle, Duration::from_secs(60));
    assert!(seen.contains(needle), "{seen}");
    let rest = std::thread::spawn(move || {
        let mut rest = String::new();
        let _ = stderr.read_to_string(&mut rest);
        rest
    });
    Running { child, seen, rest }
}

impl Running {
    /// Its exit code and all it printed.
    fn finish(mut self) -> (Option<i32>, String) {
        let status = self.child.wait().expect("wait for berth");
        let rest = self.rest.join().expect("reader");
        (status.code(), self.seen + &rest)
    }
}

fn log_of<'a>(output: &'a str, job: &str) -> Vec<&'a str> {
    crate::common::job_log(output, job)
}

#[test]
fn a_job_started_ahead_sees_its_needs_artifact_and_dotenv_variable() {
    let p = busybox_project(&format!(
        "\
stages: [one, two]
make:
  stage: one
  script:
    - echo made > out.txt
    - echo DEP=from-make > build.env
    - echo waiting
    - {}
  artifacts:
    paths: [out.txt]
    reports: {{dotenv: build.env}}
use:
  stage: two
  variables: {{DEP: own}}
  script:
    - cat out.txt
    - echo \"dep=$DEP\"
",
        hold("go")
    ));
    let run = start(&p, &["run", "--output", "plain"], "[make] waiting");
    // Its container runs while `make` still does, and was made only once `make`'s had started
    // (the job that can run starts first).
    let used = wait_for("`use` started ahead", || running_job(&p, "use"));
    let made = running_job(&p, "make").expect("`make` still runs");
    let (made_started, use_created) =
        (inspect(&made, "State.StartedAt"), inspect(&used, "Created"));
    assert!(
        made_started <= use_created,
        "{made_started:?} > {use_created:?}"
    );
    release(&p, "make", "go");
    let (code, out) = run.finish();
    assert_eq!(code, Some(0), "{out}");
    let used = log_of(&out, "use");
    assert!(used.contains(&"made"), "{out}");
    assert!(
        used.contains(&"dep=from-make"),
        "the dotenv value wins:\n{out}"
    );
    let passed = out.find("==> make: passed").expect("make passed");
    let started = out.find("==> use: started").expect("use started");
    assert!(passed < started, "{out}");
    assert!(p.leftovers().is_empty(), "{:?}", p.leftovers());
}

#[test]
fn a_job_whose_need_failed_leaves_no_container() {
    let p = busybox_project(&format!(
        "\
stages: [one, two]
fails:
  stage: one
  script: [echo waiting, {}, exit 3]
slow:
  stage: one
  script: [echo slow, {}]
after:
  stage: two
  needs: [fails]
  script: [echo should not run]
",
        hold("go"),
        hold("go2")
    ));
    let run = start(
        &p,
        &["run", "--output", "plain", "-j", "2"],
        "[fails] waiting",
    );
    wait_for("`after` started ahead", || running_job(&p, "after"));
    release(&p, "fails", "go");
    // Removed as soon as `fails` failed, while `slow` still runs (not by the run's last sweep).
    wait_for("the container of `after` removed", || {
        let now = containers(&p);
        (!now.iter().any(|(j, _, _)| j == "after")).then_some(())
    });
    assert!(
        running_job(&p, "slow").is_some(),
        "`slow` still runs: {:?}",
        containers(&p)
    );
    release(&p, "slow", "go2");
    let (code, out) = run.finish();
    assert_eq!(code, Some(1), "{out}");
    assert!(log_of(&out, "after").is_empty(), "{out}");
    assert!(!out.contains("==> after: started"), "{out}");
    assert!(p.leftovers().is_empty(), "{:?}", p.leftovers());
}

#[test]
fn ctrl_c_while_a_job_is_started_ahead_leaves_nothing() {
    let p = busybox_project(&format!(
        "\
stages: [one, two]
hold:
  stage: one
  script: [echo waiting, {}]
next:
  stage: two
  script: [echo should not run]
",
        hold("go")
    ));
    let run = start(&p, &["run", "--output", "plain"], "[hold] waiting");
    wait_for("`next` started ahead", || running_job(&p, "next"));
    // SAFETY: sending a signal to our own child process.
    unsafe { libc::kill(run.child.id() as i32, libc::SIGINT) };
    let (code, out) = run.finish();
    assert_eq!(code, Some(130), "{out}");
    assert!(log_of(&out, "next").is_empty(), "{out}");
    assert!(p.leftovers().is_empty(), "{:?}", p.leftovers());
}

#[test]
fn no_more_jobs_are_started_ahead_than_dash_j_lets_run() {
    let mut pipeline = format!(
        "stages: [one, two]\nfirst:\n  stage: one\n  script: [echo waiting, {}]\n",
        hold("go")
    );
    for i in 0..4 {
        pipeline.push_str(&format!("next{i}:\n  stage: two\n  script: [echo next]\n"));
    }
    let p = busybox_project(&pipeline);
    let run = start(
        &p,
        &["run", "--output", "plain", "-j", "1"],
        "[first] waiting",
    );
    let ahead = |p: &Project| {
        containers(p)
            .into_iter()
            .filter(|(j, _, _)| j.starts_with("next"))
            .count()
    };
    wait_for("a job started ahead", || (ahead(&p) > 0).then_some(()));
    // Looked at several times while `first` still runs: never more than one.
    for _ in 0..10 {
        let now = ahead(&p);
        assert_eq!(now, 1, "{:?}", containers(&p));
        std::thread::sleep(Duration::from_millis(100));
    }
    release(&p, "first", "go");
    let (code, out) = run.finish();
    assert_eq!(code, Some(0), "{out}");
    for i in 0..4 {
        assert_eq!(
            log_of(&out, &format!("next{i}")),
            ["$ echo next", "next"],
            "{out}"
        );
    }
    assert!(p.leftovers().is_empty(), "{:?}", p.leftovers());
}

const WORKFLOW: &str = r#"name: ci
on: push
jobs:
  first:
    runs-on: ubuntu-latest
    outputs:
      answer: ${{ steps.calc.outputs.answer }}
    steps:
      - id: calc
        run: echo "answer=42" >> "$GITHUB_OUTPUT"
      - run: echo waiting
      - run: until [ -e /tmp/go ]; do sleep 0.2; done
  second:
    needs: first
    runs-on: ubuntu-latest
    steps:
      - run: echo "answer=${{ needs.first.outputs.answer }} files=$(ls)"
"#;

#[test]
fn a_workflow_jobs_container_is_started_ahead_and_its_steps_wait_for_its_needs() {
    require_image(BUSYBOX);
    let p = Project::new(&[(".github/workflows/ci.yml", WORKFLOW), ("README", "hi\n")]);
    let platform = "ubuntu-latest=berth-test/busybox:latest";
    let run = start(
        &p,
        &["run", "--output", "plain", "--platform", platform],
        "[first] waiting",
    );
    wait_for("`second` started ahead", || running_job(&p, "second"));
    assert!(
        !run.seen.contains("[second]"),
        "no step of `second` ran yet:\n{}",
        run.seen
    );
    release(&p, "first", "go");
    let (code, out) = run.finish();
    assert_eq!(code, Some(0), "{out}");
    assert!(
        log_of(&out, "second").contains(&"answer=42 files=README"),
        "{out}"
    );
    assert!(p.leftovers().is_empty(), "{:?}", p.leftovers());
}

#[test]
fn a_job_held_at_its_gate_does_not_run_once_berth_is_gone() {
    let p = busybox_project(&format!(
        "\
stages: [one, two]
make:
  stage: one
  script: [echo waiting, {}]
use:
  stage: two
  script: [echo should not run]
",
        hold("go")
    ));
    let mut run = start(&p, &["run", "--output", "plain"], "[make] waiting");
    let id = wait_for("`use` started ahead", || running_job(&p, "use"));
    // SIGKILL: berth cannot say anything more to the container it holds.
    run.child.kill().expect("kill berth");
    run.child.wait().expect("wait");
    let (code, said) = block_on(async {
        let engine = berth::docker::Engine::connect().await.expect("engine");
        let code = engine.wait(&id).await.expect("wait for the held container");
        let mut said = String::new();
        let mut output = engine.output_so_far(&id);
        while let Some(Ok(Output::Stdout(b) | Output::Stderr(b))) = output.next().await {
            said.push_str(&String::from_utf8_lossy(&b));
        }
        (code, said)
    });
    // Its stdin closed with berth: the gate's script ended without running the job's.
    assert_eq!(code, 125, "{said}");
    assert!(!said.contains("should not run"), "{said}");
    p.berth(&["prune"]).expect_code(0);
    assert!(p.leftovers().is_empty(), "{:?}", p.leftovers());
}
