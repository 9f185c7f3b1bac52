//! Shells someone types into, in exactly a job's environment: `--shell-on-failure` keeps a
//! failed job's container (committed to a labelled image) and opens a shell in it with the same
//! variables, working directory, caches and services; `berth shell JOB` opens one before the
//! job's script, with its artifacts and caches in place. This is the one place the engine
//! touches the terminal: the shell's bytes go straight between it and the container.

use std::io::Read;

use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;

use crate::engine::runtime::{ContainerRuntime, ContainerSpec, RuntimeError};
use crate::engine::tty;
use crate::events::{Event, Sink};

use super::script::Scripts;

/// What `--shell-on-failure` / `berth debug` asks for.
#[derive(Debug, Clone)]
pub struct Debug {
    /// Only this job's failure opens a shell (`berth debug JOB`); `None`: the first that fails.
    pub job: Option<String>,
    /// Keep the committed image after the shell ends.
    pub keep: bool,
}

/// Keep the failed container's state and open a shell in it; everything made for it is
/// removed afterwards unless `keep`.
pub(super) async fn after_failure(
    engine: &dyn ContainerRuntime,
    sink: &Sink,
    spec: &ContainerSpec,
    failed: &str,
    job: &str,
    keep: bool,
) -> Result<(), RuntimeError> {
    let tag = spec.name.trim_start_matches("berth-").to_lowercase();
    let image = format!("berth-debug:{tag}");
    engine
        .commit(failed, "berth-debug", &tag, &spec.labels)
        .await?;
    sink.send(Event::Notice {
        message: format!(
            "job `{job}` failed: a shell opens in its container as it was left (variables, workspace, caches and services as the job had them); `exit` ends it"
        ),
    })
    .await;
    // Let the reporter print that before the shell takes the terminal.
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let mut shell = spec.clone();
    shell.name = format!("{}-debug", spec.name);
    shell.image = image.clone();
    shell.entrypoint = Some(vec![String::new()]);
    shell.cmd = Scripts::shell_command();
    shell.interactive = true;
    let id = engine.create_container(&shell).await?;
    let result = interact(engine, &id).await;
    let _ = engine.remove_container(&id).await;
    if keep {
        sink.send(Event::Notice {
            message: format!(
                "kept the failed state of `{job}` as image {image} (`docker run -it --rm {image} sh`; `docker rmi {image}` removes it)"
            ),
        })
        .await;
    } else {
        engine.remove_image(&image).await?;
    }
    result.map(|_| ())
}

/// Attach the terminal to a created interactive container, start it, and pass bytes both ways
/// (and the window's size) until it exits; its exit code.
pub(super) async fn interact(engine: &dyn ContainerRuntime, id: &str) -> Result<i64, RuntimeError> {
    let (output, mut input) = engine.attach(id).await?;
    let mut output = Box::pin(output);
    engine.start(id).await?;
    let raw = tty::RawMode::enter(0);
    if let Some((rows, cols)) = tty::size(1).or_else(|| tty::size(0)) {
        let _ = engine.resize(id, rows, cols).await;
    }
    // Standard input on a thread of its own: a read still blocked when the shell ends must
    // not keep the process from exiting.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(16);
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        let mut stdin = std::io::stdin();
        loop {
            match stdin.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx.blocking_send(buf[..n].to_vec()).is_err() {
                        break;
                    }
                }
            }
        }
    });
    let mut winch =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change()).ok();
    let mut stdout = tokio::io::stdout();
    let mut stdin_open = true;
    loop {
        tokio::select! {
            chunk = output.next() => match chunk {
                Some(Ok(bytes)) => {
                    let _ = stdout.write_all(&bytes).await;
                    let _ = stdout.flush().await;
                }
                _ => break,
            },
            data = rx.recv(), if stdin_open => match data {
                Some(bytes) => {
                    let _ = input.write_all(&bytes).await;
                    let _ = input.flush().await;
                }
                None => {
                    stdin_open = false;
                    let _ = input.shutdown().await;
                }
            },
            Some(()) = async {
                match winch.as_mut() {
                    Some(w) => w.recv().await,
                    None => std::future::pending().await,
                }
            } => {
                if let Some((rows, cols)) = tty::size(1).or_else(|| tty::size(0)) {
                    let _ = engine.resize(id, rows, cols).await;
                }
            }
        }
    }
    drop(raw);
    engine.wait(id).await
}
