//! Services as sidecar containers, against the real engine.

use crate::common::{require_image, Project, BUSYBOX};

const HTTPD: &str = "berth-test/httpd:latest";

fn project(pipeline: &str) -> Project {
    require_image(BUSYBOX);
    require_image(HTTPD);
    Project::new(&[("berth.yml", &format!("image: {BUSYBOX}\n{pipeline}"))])
}

#[test]
fn a_service_is_reachable_by_its_default_alias_and_by_a_named_one() {
    let p = project(
        "\
default_alias:
  services: [berth-test/httpd:latest]
  script: [wget -q -O - http://berth-test__httpd/, wget -q -O - http://berth-test-httpd/]
named:
  services:
    - name: berth-test/httpd:latest
      alias: site
  script: [wget -q -O - http://site/index.html]
",
    );
    let run = p.berth(&["run"]);
    run.expect_code(0);
    let page = "<h1>berth test page</h1>";
    assert_eq!(run.log("default_alias")[1], page);
    assert_eq!(run.log("default_alias")[3], page);
    assert_eq!(run.log("named")[1], page);
    assert!(p.leftovers().is_empty(), "{:?}", p.leftovers());
}

#[test]
fn services_get_the_job_variables() {
    let p = project(
        "\
job:
  variables: {GREETING: hello}
  services:
    - name: berth-test/httpd:latest
      alias: env
      command: [sh, -c, 'mkdir -p /w && echo \"$GREETING $EXTRA\" > /w/index.html && exec httpd -f -p 80 -h /w']
      variables: {EXTRA: service}
  script: [wget -q -O - http://env/]
",
    );
    let run = p.berth(&["run"]);
    run.expect_code(0);
    assert_eq!(run.log("job")[1], "hello service");
}

#[test]
fn a_failing_job_with_a_service_leaves_nothing_behind_and_keeps_the_service_log() {
    let p = project(
        "\
job:
  services:
    - name: berth-test/httpd:latest
      alias: noisy
      command: [sh, -c, 'echo service says hi; exec httpd -f -p 80 -h /www']
  script: [exit 9]
",
    );
    let run = p.berth(&["run"]);
    run.expect_code(1);
    assert!(p.leftovers().is_empty(), "{:?}", p.leftovers());
    let run_dir = p.run_dir();
    let log = std::fs::read_to_string(run_dir.join("services/000-job-1/noisy.log")).unwrap();
    assert!(log.contains("service says hi"), "{log}");
}

#[test]
fn a_gitlab_service_that_never_listens_is_the_runners_warning_and_the_job_runs() {
    let p = project(
        "\
job:
  services:
    - name: berth-test/httpd:latest
      alias: mute
      command: [sh, -c, 'echo mute service up; exec sleep 600']
  script: [echo the job ran]
",
    );
    let started = std::time::Instant::now();
    let run = p.berth(&["run", "--service-timeout", "2s"]);
    run.expect_code(0);
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    let log = run.log("job");
    let warning = log
        .iter()
        .position(|l| {
            l.contains("*** WARNING:") && l.contains("-svc0-mute probably didn't start properly.")
        })
        .unwrap_or_else(|| panic!("{log:?}"));
    let ran = log
        .iter()
        .position(|l| *l == "the job ran")
        .unwrap_or_else(|| panic!("{log:?}"));
    assert!(warning < ran, "{log:?}");
    assert!(
        log.iter()
            .any(|l| l.ends_with("-svc0-mute-wait-for-service\" timeout")),
        "{log:?}"
    );
    assert!(log.contains(&"mute service up"), "{log:?}");
    assert!(p.leftovers().is_empty(), "{:?}", p.leftovers());
}

#[test]
fn a_gitlab_service_that_exits_is_the_runners_warning_and_the_job_runs() {
    let p = project(
        "job:\n  services:\n    - name: berth-test/httpd:latest\n      alias: dead\n      command: [sh, -c, 'exit 3']\n  script: [echo hi]\n",
    );
    let run = p.berth(&["run"]);
    run.expect_code(0);
    let log = run.log("job");
    assert!(
        log.iter()
            .any(|l| l.ends_with("the service exited (code 3)")),
        "{log:?}"
    );
    assert!(log.contains(&"hi"), "{log:?}");
    assert!(p.leftovers().is_empty(), "{:?}", p.leftovers());
}

/// A GitHub workflow whose `ubuntu-latest` is the busybox image.
fn workflow(jobs: &str) -> (Project, String) {
    require_image(BUSYBOX);
    require_image(HTTPD);
    let p = Project::new(&[(
        ".github/workflows/ci.yml",
        &format!("on: push\njobs:\n{jobs}"),
    )]);
    (p, format!("ubuntu-latest={BUSYBOX}"))
}

#[test]
fn a_github_job_on_a_runner_reaches_its_service_at_localhost_and_a_container_job_by_its_key() {
    let (p, platform) = workflow(&format!(
        "
  runner:
    runs-on: ubuntu-latest
    services:
      web:
        image: {HTTPD}
        ports: ['80:80']
    steps:
      - run: wget -q -O - http://localhost:${{{{ job.services.web.ports['80'] }}}}/
  boxed:
    runs-on: ubuntu-latest
    container: {BUSYBOX}
    services:
      web:
        image: {HTTPD}
    steps:
      - run: wget -q -O - http://web/
"
    ));
    let run = p.berth(&["run", "--platform", &platform]);
    run.expect_code(0);
    let page = "<h1>berth test page</h1>";
    assert!(run.log("runner").contains(&page), "{}", run.stderr);
    assert!(run.log("boxed").contains(&page), "{}", run.stderr);
    assert!(p.leftovers().is_empty(), "{:?}", p.leftovers());
}

#[test]
fn a_github_service_with_a_health_check_is_waited_for_until_healthy() {
    // The server answers at once, but the page the check asks for comes 3s later: only a wait
    // on the health check (not on the port) lets the step find it.
    let (p, platform) = workflow(&format!(
        "
  test:
    runs-on: ubuntu-latest
    services:
      web:
        image: {HTTPD}
        command: sh -c '(sleep 3; echo ready > /www/ready.txt) & exec httpd -f -p 80 -h /www'
        options: >-
          --health-cmd \"wget -q -O /dev/null http://localhost/ready.txt\"
          --health-interval 1s --health-retries 30
    steps:
      - run: wget -q -O - http://localhost/ready.txt
"
    ));
    let run = p.berth(&["run", "--platform", &platform]);
    run.expect_code(0);
    assert!(run.log("test").contains(&"ready"), "{}", run.stderr);
    assert!(p.leftovers().is_empty(), "{:?}", p.leftovers());
}

#[test]
fn a_github_service_that_never_turns_healthy_fails_the_job_in_time_with_its_log_kept() {
    let (p, platform) = workflow(&format!(
        "
  sick:
    runs-on: ubuntu-latest
    services:
      db:
        image: {HTTPD}
        command: sh -c 'echo sick service starting; exec httpd -f -p 80 -h /www'
        options: --health-cmd false --health-interval 1s --health-retries 2
    steps:
      - run: echo should not run
  slow:
    runs-on: ubuntu-latest
    services:
      db:
        image: {HTTPD}
        options: --health-cmd false --health-interval 1s --health-retries 1000
    steps:
      - run: echo should not run
"
    ));
    let started = std::time::Instant::now();
    let run = p.berth(&["run", "--platform", &platform, "--service-timeout", "4s"]);
    run.expect_code(1);
    assert!(started.elapsed() < std::time::Duration::from_secs(40));
    let sick = run.status_of("sick");
    assert!(
        sick.contains("service `db`: its health check failed"),
        "{sick}"
    );
    let slow = run.status_of("slow");
    assert!(
        slow.contains("service `db`: it was not healthy within 4s"),
        "{slow}"
    );
    assert!(!run.stderr.contains("should not run"), "{}", run.stderr);
    let log = std::fs::read_to_string(p.run_dir().join("services/000-sick-1/db.log"))
        .expect("the service's log");
    assert!(log.contains("sick service starting"), "{log}");
    assert!(p.leftovers().is_empty(), "{:?}", p.leftovers());
}

#[test]
fn github_volumes_are_the_jobs_own_and_of_the_project_only() {
    let (p, platform) = workflow(&format!(
        "
  vols:
    runs-on: ubuntu-latest
    container:
      image: {BUSYBOX}
      volumes: ['shared:/shared', './data:/data:ro']
      options: --user 0 -e FROM_OPTIONS=yes
    services:
      web:
        image: {HTTPD}
        volumes: ['shared:/www']
    steps:
      - run: echo from-the-job > /shared/index.html && wget -q -O - http://web/
      - run: cat /data/seed.txt && echo \"env=$FROM_OPTIONS\"
      - run: touch /data/nope 2>/dev/null && echo writable || echo read-only
"
    ));
    p.write("data/seed.txt", "seeded\n");
    let run = p.berth(&["run", "--platform", &platform]);
    run.expect_code(0);
    let log = run.log("vols");
    for line in ["from-the-job", "seeded", "env=yes", "read-only"] {
        assert!(log.contains(&line), "{line}: {}", run.stderr);
    }
    assert!(p.leftovers().is_empty(), "{:?}", p.leftovers());
    // A directory of the host outside the project is refused before anything starts.
    p.write(
        ".github/workflows/ci.yml",
        "on: push\njobs:\n  bad:\n    runs-on: ubuntu-latest\n    container:\n      image: x\n      volumes:\n        - /etc:/host-etc\n    steps:\n      - run: true\n",
    );
    let run = p.berth(&["run", "--platform", &platform]);
    run.expect_code(2);
    assert!(
        run.stderr.contains(".github/workflows/ci.yml:8"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("bad"), "{}", run.stderr);
    assert!(run.stderr.contains("outside the project"), "{}", run.stderr);
    assert!(p.leftovers().is_empty(), "{:?}", p.leftovers());
}
