//! Ctrl-C and SIGTERM: running jobs are stopped and removed, the run says what was interrupted,
//! and berth exits 130 without leaving anything behind.

use std::io::Read;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::child::read_until;
use crate::common::{require_image, Project, BUSYBOX};

fn interrupt_with(signal: i32) {
    require_image(BUSYBOX);
    require_image("berth-test/httpd:latest");
    let p = Project::new(&[(
        "berth.yml",
        &format!(
            "\
image: {BUSYBOX}
stages: [long, later]
waiting:
  stage: long
  services: [berth-test/httpd:latest]
  script: [echo ready, sleep 300]
also_waiting:
  stage: long
  script: [sleep 300]
never_started:
  stage: later
  script: [echo should not run]
"
        ),
    )]);
    let mut child = p
        .command(&["run", "-j", "2"])
        .stderr(Stdio::piped())
        .spawn()
        .expect("start berth");
    let mut stderr = child.stderr.take().expect("stderr");
    let mut seen = read_until(&mut stderr, "[waiting] ready", Duration::from_secs(60));
    assert!(
        seen.contains("[waiting] ready"),
        "the job never started:\n{seen}"
    );

    // SAFETY: sending a signal to our own child process.
    unsafe { libc::kill(child.id() as i32, signal) };
    let sent = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        assert!(
            sent.elapsed() < Duration::from_secs(30),
            "berth did not exit after the signal"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut rest = String::new();
    let _ = stderr.read_to_string(&mut rest);
    seen.push_str(&rest);

    assert_eq!(status.code(), Some(130), "output:\n{seen}");
    assert!(seen.contains("interrupted"), "{seen}");
    assert!(
        seen.contains("`waiting`") && seen.contains("`also_waiting`"),
        "{seen}"
    );
    assert!(!seen.contains("[never_started]"), "{seen}");
    assert!(seen.contains("pipeline interrupted"), "{seen}");
    assert!(p.leftovers().is_empty(), "left behind: {:?}", p.leftovers());
}

#[test]
fn ctrl_c_stops_and_removes_running_jobs() {
    interrupt_with(libc::SIGINT);
}

#[test]
fn sigterm_does_the_same() {
    interrupt_with(libc::SIGTERM);
}

#[test]
fn prune_removes_what_a_killed_run_left_behind() {
    require_image(BUSYBOX);
    let p = Project::new(&[(
        "berth.yml",
        &format!("image: {BUSYBOX}\nstuck:\n  script: [echo ready, sleep 300]\n"),
    )]);
    let mut child = p.start_until(&["run", "--output", "plain"], "[stuck] ready");
    // SIGKILL: berth gets no chance to clean up, like a crash.
    child.kill().expect("kill berth");
    child.wait().expect("wait");
    assert!(
        !p.leftovers().is_empty(),
        "a killed run leaves its container"
    );
    let pruned = p.berth(&["prune"]);
    pruned.expect_code(0);
    let removed: usize = pruned
        .stdout
        .strip_prefix("removed ")
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("unexpected prune output: {}", pruned.stdout));
    // Other tests may run beside this one; their live runs are spared, dead leftovers are not.
    assert!(removed >= 1, "{}", pruned.stdout);
    assert!(p.leftovers().is_empty(), "{:?}", p.leftovers());
}
