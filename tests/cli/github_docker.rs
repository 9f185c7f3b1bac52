//! Docker actions and `uses: docker://image` steps, end to end on the real engine: a Docker
//! action built from its Dockerfile (inputs, args, env, outputs, pre/post-entrypoint), a
//! `docker://` step, the workspace shared both ways with the job's other steps, a failing
//! step, Ctrl-C, the images they need in the missing-images report and in `berth plan`, and
//! no container left after any of it.

use std::io::Read;
use std::time::{Duration, Instant};

use crate::common::{require_image, Project, BUSYBOX};
use crate::github_server::{commit_and_tag, serve};

const HTTPD: &str = "berth-test/httpd:latest";

fn platform() -> String {
    format!("ubuntu-latest={BUSYBOX}")
}

#[test]
fn a_docker_action_and_docker_steps_run_in_their_own_containers_sharing_the_workspace() {
    require_image(BUSYBOX);
    let p = Project::fixture("github/docker-actions");
    let run = p.berth(&["run", "--platform", &platform()]);
    // `failing` fails; `docker` passes.
    run.expect_code(1);
    assert!(run.status_of("docker").contains("passed"), "{}", run.stderr);
    let log = run.log("docker").join("\n");
    let at = |needle: &str| {
        log.find(needle)
            .unwrap_or_else(|| panic!("`{needle}` not in:\n{log}"))
    };
    // pre-entrypoint before the job's first step, with the action's args.
    assert!(
        at("pre-entrypoint ran with [berth]") < at("▶ Run echo \"written before\""),
        "{log}"
    );
    // Its args evaluated with its inputs (a default too), its env, INPUT_*.
    at("args: [berth] [second arg] (2)");
    at("INPUT_WHO=berth INPUT_MOOD=cheerful GREETING=hello cheerful");
    // Where GitHub mounts things; what `pre` saved in $GITHUB_STATE.
    at("workspace /github/workspace, in /github/workspace, home /github/home, event present");
    at("state from pre: from-pre");
    // The workspace, both ways: what an earlier step wrote, what the action made and removed.
    at("the action reads: written before");
    at("later step reads: made by the action");
    at("remove-me.txt is gone");
    // Its $GITHUB_OUTPUT, $GITHUB_ENV and workflow commands.
    at("output: hello cheerful, berth");
    at("env: set in the container");
    at("Notice in `Run ./.github/actions/hello`: the action ran");
    // A docker:// step with `entrypoint` and `args`, and its output.
    at("raw sees written before in /github/workspace");
    at("raw said 42");
    // post-entrypoint after the last step, with the state and the workspace.
    assert!(
        at("post-entrypoint ran, state from-pre, sees made by the action") > at("raw said 42"),
        "{log}"
    );
    // A failing docker:// step: its exit code reaches the job, later steps do not run.
    let failing = run.log("failing").join("\n");
    assert!(failing.contains("about to fail"), "{failing}");
    assert!(failing.contains("failed with exit code 7"), "{failing}");
    assert!(!failing.contains("never printed"), "{failing}");
    assert!(
        run.status_of("failing").contains("failed"),
        "{}",
        run.stderr
    );
    assert!(p.leftovers().is_empty(), "{:?}", p.leftovers());
}

#[test]
fn the_images_of_docker_steps_are_reported_together_and_planned() {
    require_image(BUSYBOX);
    let p = Project::new(&[(
        ".github/workflows/ci.yml",
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n      - uses: docker://berth-test/absent-one:1\n  b:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo hi\n      - uses: docker://berth-test/absent-two:1\n",
    )]);
    let plan = p.berth(&["plan"]);
    plan.expect_code(0);
    assert!(
        plan.stdout.contains(
            "uses docker://berth-test/absent-one:1: docker image berth-test/absent-one:1"
        ),
        "{}",
        plan.stdout
    );
    let run = p.berth(&["run", "--platform", &platform()]);
    // Both are named at once, before any job starts.
    run.expect_code(3);
    let all = format!("{}{}", run.stdout, run.stderr);
    assert!(all.contains("berth-test/absent-one:1"), "{all}");
    assert!(all.contains("berth-test/absent-two:1"), "{all}");
    assert!(!all.contains("==> a: started"), "{all}");
    assert!(p.leftovers().is_empty(), "{:?}", p.leftovers());
}

#[test]
fn a_docker_step_reaches_the_jobs_services_as_its_run_steps_do() {
    require_image(BUSYBOX);
    require_image(HTTPD);
    let p = Project::new(&[(
        ".github/workflows/ci.yml",
        &format!("on: push\njobs:\n  c:\n    runs-on: ubuntu-latest\n    container: {BUSYBOX}\n    services:\n      web:\n        image: {HTTPD}\n    steps:\n      - uses: docker://{BUSYBOX}\n        with:\n          entrypoint: /bin/sh\n          args: -c \"wget -qO- http://web/\"\n"),
    )]);
    let run = p.berth(&["run", "--platform", &platform()]);
    run.expect_code(0);
    assert!(
        run.log("c").iter().any(|l| l.contains("berth test page")),
        "{}",
        run.stderr
    );
    assert!(p.leftovers().is_empty(), "{:?}", p.leftovers());
}

#[test]
fn ctrl_c_during_a_docker_step_removes_its_container() {
    require_image(BUSYBOX);
    let p = Project::new(&[(
        ".github/workflows/ci.yml",
        "on: push\njobs:\n  slow:\n    runs-on: ubuntu-latest\n    steps:\n      - uses: docker://berth-test/busybox:latest\n        with:\n          entrypoint: /bin/sh\n          args: -c \"echo ready; sleep 300\"\n      - run: echo never\n",
    )]);
    let mut child = p
        .command(&["run", "--platform", &platform()])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start berth");
    let mut stderr = child.stderr.take().expect("stderr");
    let seen = read_until(&mut stderr, "[slow] ready", Duration::from_secs(60));
    assert!(
        seen.contains("[slow] ready"),
        "the step never started:\n{seen}"
    );
    // SAFETY: sending a signal to our own child process.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = child.wait().expect("wait");
    let mut rest = String::new();
    let _ = stderr.read_to_string(&mut rest);
    assert_eq!(status.code(), Some(130), "{seen}{rest}");
    assert!(!rest.contains("[slow] never"), "{rest}");
    assert!(p.leftovers().is_empty(), "{:?}", p.leftovers());
}

#[test]
fn a_remote_docker_action_is_built_from_the_action_cache_and_runs_offline() {
    require_image(BUSYBOX);
    let server = tempfile::tempdir().expect("temp dir");
    let cache = tempfile::tempdir().expect("temp dir");
    // The action's repository, a bare repository over file:// in GitHub's stead.
    let src = server.path().join("src");
    std::fs::create_dir_all(src.join("shout")).unwrap();
    std::fs::write(
        src.join("shout/action.yml"),
        "name: shout\ninputs:\n  word: {}\nruns:\n  using: docker\n  image: Dockerfile\n  args: ['${{ inputs.word }}']\n",
    )
    .unwrap();
    std::fs::write(
        src.join("shout/Dockerfile"),
        format!("FROM {BUSYBOX}\nCOPY shout.sh /\nENTRYPOINT [\"/bin/sh\", \"/shout.sh\"]\n"),
    )
    .unwrap();
    std::fs::write(
        src.join("shout/shout.sh"),
        "echo \"remote docker says $1\" | tr a-z A-Z\n",
    )
    .unwrap();
    commit_and_tag(&src, "v1");
    let source = serve(server.path(), &src, "octo", "tools");
    let p = Project::new(&[(
        ".github/workflows/ci.yml",
        "on: push\njobs:\n  r:\n    runs-on: ubuntu-latest\n    steps:\n      - uses: octo/tools/shout@v1\n        with:\n          word: hi\n",
    )]);
    let berth = |args: &[&str]| {
        let out = p
            .command(args)
            .env("BERTH_ACTIONS_CACHE", cache.path())
            .env("BERTH_ACTIONS_URL", &source)
            .output()
            .expect("run berth");
        crate::common::Run::from(out)
    };
    berth(&["actions", "pull"]).expect_code(0);
    let plan = berth(&["plan"]);
    assert!(
        plan.stdout
            .contains("docker, image built from its Dockerfile"),
        "{}",
        plan.stdout
    );
    // The source gone and no network: built from the cached folder.
    std::fs::remove_dir_all(server.path().join("github")).unwrap();
    let run = berth(&["run", "--platform", &platform(), "--network", "none"]);
    run.expect_code(0);
    assert!(
        run.log("r")
            .iter()
            .any(|l| l.contains("REMOTE DOCKER SAYS HI")),
        "{}",
        run.stderr
    );
    assert!(p.leftovers().is_empty(), "{:?}", p.leftovers());
}

/// Read a child's stderr until `needle` appears (or the time is up); what was read.
fn read_until(stderr: &mut impl Read, needle: &str, limit: Duration) -> String {
    let start = Instant::now();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while start.elapsed() < limit {
        match stderr.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                seen.extend_from_slice(&buf[..n]);
                if String::from_utf8_lossy(&seen).contains(needle) {
                    break;
                }
            }
        }
    }
    String::from_utf8_lossy(&seen).into_owned()
}
