//! Hermetic runs: only locked images, no network (services on an internal network with the
//! job), SOURCE_DATE_EPOCH from the commit; `berth verify` tells reproducible builds from ones
//! that leak the time or the hostname.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::Command;

use crate::common::{busybox_project, require_image, Project, Run};

/// An HTTP server on the host, on every address, answering "host-says-hi".
fn host_server() -> u16 {
    let listener = TcpListener::bind("0.0.0.0:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut stream = stream;
            let mut buf = [0u8; 2048];
            let _ = stream.read(&mut buf);
            let body = "host-says-hi";
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    port
}

/// The host's address on Docker's default bridge (docker0).
fn bridge_address() -> String {
    let out = Command::new("ip")
        .args(["-4", "-o", "addr", "show", "docker0"])
        .output()
        .expect("ip addr");
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)
        .and_then(|a| a.split('/').next())
        .expect("docker0 has an IPv4 address")
        .to_string()
}

#[test]
fn lock_pins_images_and_a_mismatch_or_a_missing_entry_is_exit_2() {
    let p = busybox_project("job:\n  script: echo hermetic\n");
    p.berth(&["run", "--hermetic"]).expect_code(2);
    let lock = p.berth(&["lock"]);
    lock.expect_code(0);
    let text = std::fs::read_to_string(p.path().join("berth.lock")).expect("berth.lock");
    assert!(
        text.contains("berth-test/busybox:latest") && text.contains("sha256:"),
        "{text}"
    );
    let run = p.berth(&["run", "--hermetic", "--output", "plain"]);
    run.expect_code(0);
    assert_eq!(run.log("job")[1], "hermetic");

    // A lock that pins another ID.
    let stale = regex_replace_id(&text);
    std::fs::write(p.path().join("berth.lock"), stale).expect("write lock");
    let run = p.berth(&["run", "--hermetic"]);
    run.expect_code(2);
    assert!(
        run.stderr.contains("berth-test/busybox:latest") && run.stderr.contains("pins"),
        "{}",
        run.stderr
    );
    // An image the lock does not have.
    std::fs::write(
        p.path().join("berth.lock"),
        "{\"version\": 1, \"images\": {}}",
    )
    .expect("write");
    let run = p.berth(&["run", "--hermetic"]);
    run.expect_code(2);
    assert!(run.stderr.contains("not in berth.lock"), "{}", run.stderr);
    assert!(p.leftovers().is_empty(), "{:?}", p.leftovers());
}

fn regex_replace_id(text: &str) -> String {
    let start = text.find("sha256:").expect("an id") + "sha256:".len();
    let mut out = text.to_string();
    out.replace_range(start..start + 12, "000000000000");
    out
}

#[test]
fn hermetic_jobs_reach_their_services_and_nothing_else() {
    require_image("berth-test/httpd:latest");
    let port = host_server();
    let target = format!("{}:{port}", bridge_address());
    let p = busybox_project(&format!(
        "\
variables: {{TARGET: '{target}'}}
alone:
  script:
    - (wget -q -O - http://$TARGET/ && echo) || echo host-unreachable
with-service:
  services:
    - name: berth-test/httpd:latest
      alias: web
  script:
    - wget -q -O - http://web/
    - (wget -q -O - http://$TARGET/ && echo) || echo host-unreachable
"
    ));
    // Without --hermetic the host answers: the check itself works.
    let open = p.berth(&["run", "--output", "plain"]);
    open.expect_code(0);
    assert!(
        open.log("alone").contains(&"host-says-hi"),
        "{}",
        open.stderr
    );

    p.berth(&["lock"]).expect_code(0);
    let closed = p.berth(&["run", "--hermetic", "--output", "plain"]);
    closed.expect_code(0);
    assert!(
        closed.log("alone").contains(&"host-unreachable"),
        "{}",
        closed.stderr
    );
    let svc = closed.log("with-service");
    assert!(
        svc.contains(&"<h1>berth test page</h1>"),
        "{}",
        closed.stderr
    );
    assert!(svc.contains(&"host-unreachable"), "{}", closed.stderr);
    assert!(p.leftovers().is_empty(), "{:?}", p.leftovers());
}

fn verify(p: &Project) -> Run {
    p.berth(&["verify", "--output", "plain"])
}

#[test]
fn verify_flags_the_date_and_passes_source_date_epoch() {
    let leaky = busybox_project(
        "\
build:
  script: [mkdir -p out, date +%s > out/stamp.txt, echo same > out/same.txt]
  artifacts: {paths: [out/]}
",
    );
    let run = verify(&leaky);
    run.expect_code(1);
    assert!(
        run.stdout.contains("not reproducible: 1 file"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("build: out/stamp.txt: differs"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.lines().any(|l| l.trim().starts_with('-')),
        "{}",
        run.stdout
    );

    let careful = busybox_project(
        "\
build:
  script:
    - mkdir -p out
    - echo \"built at $SOURCE_DATE_EPOCH in $TZ\" > out/stamp.txt
  artifacts: {paths: [out/]}
",
    );
    let run = verify(&careful);
    run.expect_code(0);
    assert!(run.stdout.starts_with("reproducible"), "{}", run.stdout);
    assert!(careful.leftovers().is_empty(), "{:?}", careful.leftovers());
}
