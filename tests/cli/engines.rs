//! The Docker endpoint is found as the docker CLI finds it: DOCKER_HOST (unix or tcp), or the
//! current docker context. A TCP proxy in front of the engine's socket stands for a remote
//! engine, and counts the connections that reach it.

use std::io::Read;
use std::net::TcpListener;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::common::{busybox_project, Run};

const SOCKET: &str = "/var/run/docker.sock";

/// Forward TCP connections on loopback to the engine's unix socket; returns the address and a
/// connection counter.
fn tcp_proxy() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let addr = listener.local_addr().expect("addr").to_string();
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    std::thread::spawn(move || {
        for tcp in listener.incoming().flatten() {
            seen.fetch_add(1, Ordering::SeqCst);
            let Ok(unix) = UnixStream::connect(SOCKET) else {
                continue;
            };
            let (mut tcp_r, mut unix_w) = (
                tcp.try_clone().expect("clone"),
                unix.try_clone().expect("clone"),
            );
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut tcp_r, &mut unix_w);
                let _ = unix_w.shutdown(std::net::Shutdown::Write);
            });
            let (mut unix_r, mut tcp_w) = (unix, tcp);
            std::thread::spawn(move || {
                let mut buf = [0u8; 65536];
                loop {
                    match unix_r.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if std::io::Write::write_all(&mut tcp_w, &buf[..n]).is_err() {
                                break;
                            }
                        }
                    }
                }
                let _ = tcp_w.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    (addr, count)
}

#[test]
fn docker_host_over_tcp() {
    let p = busybox_project("job:\n  script: echo over tcp\n");
    let (addr, count) = tcp_proxy();
    let run: Run = p
        .command(&["run", "--output", "plain"])
        .env("DOCKER_HOST", format!("tcp://{addr}"))
        .output()
        .expect("berth runs")
        .into();
    run.expect_code(0);
    assert_eq!(run.log("job")[1], "over tcp");
    assert!(
        count.load(Ordering::SeqCst) > 0,
        "nothing went through the proxy"
    );
    assert!(p.leftovers().is_empty(), "{:?}", p.leftovers());
}

/// A docker config directory whose current context is `name`, pointing at `host`.
fn context_config(name: &str, host: &str) -> tempfile::TempDir {
    use sha2::{Digest, Sha256};
    let dir = tempfile::tempdir().expect("config dir");
    let id = hex::encode(Sha256::digest(name.as_bytes()));
    let meta = dir.path().join("contexts/meta").join(id);
    std::fs::create_dir_all(&meta).expect("meta dir");
    std::fs::write(
        meta.join("meta.json"),
        format!(r#"{{"Name":"{name}","Metadata":{{}},"Endpoints":{{"docker":{{"Host":"{host}","SkipTLSVerify":false}}}}}}"#),
    )
    .expect("meta.json");
    std::fs::write(
        dir.path().join("config.json"),
        format!(r#"{{"currentContext":"{name}"}}"#),
    )
    .expect("config.json");
    dir
}

#[test]
fn the_current_docker_context_is_used() {
    let p = busybox_project("job:\n  script: echo through the context\n");
    let (addr, count) = tcp_proxy();
    let config = context_config("proxied", &format!("tcp://{addr}"));
    let run: Run = p
        .command(&["run", "--output", "plain"])
        .env_remove("DOCKER_HOST")
        .env("DOCKER_CONFIG", config.path())
        .output()
        .expect("berth runs")
        .into();
    run.expect_code(0);
    assert_eq!(run.log("job")[1], "through the context");
    assert!(count.load(Ordering::SeqCst) > 0, "the context was not used");

    // A context whose engine is not there: exit 3, naming the context and its endpoint.
    let gone = context_config("gone", "unix:///nonexistent/docker.sock");
    let run: Run = p
        .command(&["run", "--output", "plain"])
        .env_remove("DOCKER_HOST")
        .env("DOCKER_CONFIG", gone.path())
        .output()
        .expect("berth runs")
        .into();
    run.expect_code(3);
    assert!(
        run.stderr.contains("docker context `gone`")
            && run.stderr.contains("/nonexistent/docker.sock"),
        "{}",
        run.stderr
    );
}
