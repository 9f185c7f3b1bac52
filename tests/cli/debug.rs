//! Debugging in place, driven through a real pseudo-terminal: a failed job's shell (its
//! variables, the files it wrote, its services by alias), and a shell before a job's script.
//! python3's `pty` module plays the user at the keyboard.

use std::process::Command;

use crate::common::{require_image, Project, BUSYBOX};

const HTTPD: &str = "berth-test/httpd:latest";

/// Plays a user: waits for each text, then types the line after it; returns all it saw.
const DRIVER: &str = r#"
import json, os, pty, select, sys, time
cfg = json.loads(sys.argv[1])
pid, fd = pty.fork()
if pid == 0:
    os.chdir(cfg["cwd"])
    os.environ.pop("NO_COLOR", None)
    os.execv(cfg["bin"], [cfg["bin"]] + cfg["args"])
out = b""
seen = 0
def read(timeout):
    global out
    r, _, _ = select.select([fd], [], [], timeout)
    if not r:
        return True
    try:
        data = os.read(fd, 4096)
    except OSError:
        return False
    if not data:
        return False
    out += data
    return True
for wait, send in cfg["steps"]:
    end = time.time() + 90
    while wait.encode() not in out[seen:] and time.time() < end:
        if not read(0.2):
            break
    if wait.encode() not in out[seen:]:
        out += ("\n[driver] gave up waiting for %r\n" % wait).encode()
        break
    seen = out.index(wait.encode(), seen) + len(wait)
    os.write(fd, send.encode())
end = time.time() + 90
while time.time() < end and read(0.2):
    pass
_, status = os.waitpid(pid, 0)
sys.stdout.buffer.write(out)
sys.exit(os.waitstatus_to_exitcode(status))
"#;

fn drive(p: &Project, args: &[&str], steps: &[(&str, &str)]) -> (i32, String) {
    let cfg = serde_json::json!({
        "cwd": p.path(),
        "bin": env!("CARGO_BIN_EXE_berth"),
        "args": args,
        "steps": steps,
    });
    let out = Command::new("python3")
        .args(["-c", DRIVER, &cfg.to_string()])
        .output()
        .expect("python3 drives the pseudo-terminal");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn a_failed_job_opens_a_shell_in_its_state_with_its_services() {
    require_image(BUSYBOX);
    require_image(HTTPD);
    let p = Project::new(&[(
        "berth.yml",
        &format!(
            "\
image: {BUSYBOX}
broken:
  variables: {{SECRET_SAUCE: ketchup}}
  services:
    - name: {HTTPD}
      alias: web
  script:
    - echo written-before-failing > state.txt
    - exit 4
"
        ),
    )]);
    let (code, seen) = drive(
        &p,
        &["run", "--shell-on-failure"],
        &[
            (
                "a shell opens",
                "echo name=$CI_JOB_NAME sauce=$SECRET_SAUCE\r",
            ),
            ("name=broken sauce=ketchup", "cat state.txt\r"),
            ("written-before-failing", "wget -q -O - http://web/\r"),
            ("berth test page", "exit\r"),
        ],
    );
    assert!(seen.contains("berth test page"), "{seen}");
    // The shell does not change the job's result.
    assert_eq!(code, 1, "{seen}");
    assert!(p.leftovers().is_empty(), "{:?}", p.leftovers());
    let images = Command::new("docker")
        .args(["images", "-q", "berth-debug"])
        .output()
        .expect("docker images");
    assert!(
        String::from_utf8_lossy(&images.stdout).trim().is_empty(),
        "the committed state is removed after the shell"
    );
}

#[test]
fn berth_shell_opens_before_the_script_with_artifacts_in_place() {
    require_image(BUSYBOX);
    let p = Project::new(&[(
        "berth.yml",
        &format!(
            "\
image: {BUSYBOX}
stages: [build, test]
build:
  stage: build
  script: [mkdir -p out, echo built-artifact > out/a.txt]
  artifacts: {{paths: [out/]}}
test:
  stage: test
  script: [echo the-script-ran]
"
        ),
    )]);
    let (code, seen) = drive(
        &p,
        &["shell", "test"],
        &[
            ("`exit` ends it", "cat out/a.txt; echo job=$CI_JOB_NAME\r"),
            ("job=test", "exit 0\r"),
        ],
    );
    assert!(seen.contains("built-artifact"), "{seen}");
    assert!(
        !seen.contains("the-script-ran\r\n"),
        "the script must not run: {seen}"
    );
    assert_eq!(code, 0, "{seen}");
    assert!(p.leftovers().is_empty(), "{:?}", p.leftovers());
}
