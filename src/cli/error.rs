//! How a command ends when it does not succeed: one error type, the exit code it stands for
//! (the README's "Exit codes") and the words berth prints for it on standard error.

use std::io::{self, Write};

use crate::engine::runtime::RuntimeError;
use crate::events::RunStatus;
use crate::project::state::StateError;
use crate::store::RunsError;

/// Exit codes, as documented in the README.
pub mod exit {
    pub const OK: i32 = 0;
    pub const JOB_FAILED: i32 = 1;
    pub const BAD_INPUT: i32 = 2;
    pub const DOCKER: i32 = 3;
    pub const INTERRUPTED: i32 = 130;
}

/// Why a command ended without success. Only [`super::main`] prints it ([`CliError::print`]).
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The command line as clap read it: a mistake (exit 2), or `--help` / `--version`, which
    /// clap prints to standard output (exit 0).
    #[error(transparent)]
    Args(#[from] clap::Error),
    /// The command line, the project or the pipeline is wrong; nothing was started (exit 2).
    #[error("{0}")]
    Input(String),
    /// The run store, or berth's own directory in the project, cannot be used (exit 2).
    #[error(transparent)]
    Runs(#[from] RunsError),
    #[error(transparent)]
    State(#[from] StateError),
    /// A pipeline that cannot be read: its diagnostics as rendered, with the closing line
    /// (exit 2). Printed as it is.
    #[error("{0}")]
    Pipeline(String),
    /// `berth replay`: what changed since the run, one line each (exit 2).
    #[error("run {run} drifted (refusing to replay)")]
    Drifted { run: String, drift: Vec<String> },
    /// The engine cannot be reached (exit 3); printed with a hint of what to check.
    #[error(transparent)]
    Unreachable(RuntimeError),
    /// The engine, an image or the host failed what berth asked of it (exit 3).
    #[error("{0}")]
    Engine(String),
    /// Several objects could not be removed, one line each (exit 3).
    #[error("{}", .0.join("; "))]
    Problems(Vec<String>),
    /// The run ended without passing; its reporters have said why (exit 1, 3 or 130).
    #[error("the run ended {0:?}")]
    Run(RunStatus),
    /// The run stopped at an error while it was being interrupted (exit 130).
    #[error("{0}")]
    Interrupted(String),
    /// Artifacts that cannot be unpacked (exit 1).
    #[error("{0}")]
    Extract(String),
    /// `berth verify`: the two runs' artifacts differ (exit 1); standard output lists them.
    #[error("not reproducible")]
    NotReproducible,
    /// One of `berth verify`'s runs did not pass: its own error, then this (its exit code).
    #[error("verify: run {run} did not pass (exit {}); nothing to compare", .source.exit_code())]
    VerifyRun {
        run: usize,
        #[source]
        source: Box<CliError>,
    },
    /// Standard output cannot be written. A reader that went away (`berth runs | head -1`)
    /// ends berth quietly with exit 0, as ripgrep does; anything else is exit 3.
    #[error("cannot write to standard output: {0}")]
    Stdout(io::Error),
    /// The async runtime cannot start (exit 3).
    #[error("cannot start: {0}")]
    Start(io::Error),
}

impl CliError {
    /// Exit 2 with `berth: {message}`.
    pub(super) fn input(message: impl std::fmt::Display) -> Self {
        CliError::Input(message.to_string())
    }

    /// Exit 3 with `berth: {message}`.
    pub(super) fn engine(message: impl std::fmt::Display) -> Self {
        CliError::Engine(message.to_string())
    }

    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::Args(e) if !e.use_stderr() => exit::OK,
            CliError::Stdout(e) if e.kind() == io::ErrorKind::BrokenPipe => exit::OK,
            CliError::Args(_)
            | CliError::Input(_)
            | CliError::Runs(_)
            | CliError::State(_)
            | CliError::Pipeline(_)
            | CliError::Drifted { .. } => exit::BAD_INPUT,
            CliError::Unreachable(_)
            | CliError::Engine(_)
            | CliError::Problems(_)
            | CliError::Stdout(_)
            | CliError::Start(_) => exit::DOCKER,
            CliError::Run(status) => match status {
                RunStatus::Passed => exit::OK,
                RunStatus::Failed => exit::JOB_FAILED,
                RunStatus::Error => exit::DOCKER,
                RunStatus::Interrupted => exit::INTERRUPTED,
            },
            CliError::Interrupted(_) => exit::INTERRUPTED,
            CliError::Extract(_) | CliError::NotReproducible => exit::JOB_FAILED,
            CliError::VerifyRun { source, .. } => source.exit_code(),
        }
    }

    /// What berth prints on standard error for this error (nothing for what the run's
    /// reporters or standard output have already said).
    pub fn text(&self) -> String {
        match self {
            // clap renders its own.
            CliError::Args(e) => e.render().to_string(),
            CliError::Pipeline(rendered) => rendered.clone(),
            CliError::Problems(problems) => {
                problems.iter().map(|p| format!("berth: {p}\n")).collect()
            }
            CliError::Drifted { drift, .. } => {
                let mut text = format!("berth: {self}:\n");
                for d in drift {
                    text.push_str(&format!("  - {d}\n"));
                }
                text + "berth: --allow-drift replays it as it is now\n"
            }
            CliError::Unreachable(e) => format!(
                "berth: {e}\nberth: is the Docker engine running? (DOCKER_HOST is used when set)\n"
            ),
            CliError::Run(_) | CliError::NotReproducible => String::new(),
            CliError::Stdout(e) if e.kind() == io::ErrorKind::BrokenPipe => String::new(),
            CliError::VerifyRun { source, .. } => format!("{}berth: {self}\n", source.text()),
            _ => format!("berth: {self}\n"),
        }
    }

    /// Print the error where it belongs: clap's help and version on standard output, the rest
    /// on standard error. A stream that cannot be written is not a reason to panic.
    pub fn print(&self) {
        if let CliError::Args(e) = self {
            let _ = e.print();
            return;
        }
        let text = self.text();
        if !text.is_empty() {
            let _ = io::stderr().lock().write_all(text.as_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_error_keeps_its_documented_exit_code() {
        let broken = io::Error::from(io::ErrorKind::BrokenPipe);
        let full = io::Error::other("no space left on device");
        for (error, code) in [
            (CliError::input("bad"), 2),
            (CliError::Pipeline("error: ...\n".into()), 2),
            (CliError::engine("gone"), 3),
            (CliError::Problems(vec!["a".into()]), 3),
            (CliError::Run(RunStatus::Failed), 1),
            (CliError::Run(RunStatus::Error), 3),
            (CliError::Run(RunStatus::Interrupted), 130),
            (CliError::Interrupted("stopped".into()), 130),
            (CliError::Extract("cannot".into()), 1),
            (CliError::NotReproducible, 1),
            (CliError::Stdout(broken), 0),
            (CliError::Stdout(full), 3),
        ] {
            assert_eq!(error.exit_code(), code, "{error:?}");
        }
    }

    #[test]
    fn the_words_printed_are_todays() {
        assert_eq!(
            CliError::input("no job named `x`").text(),
            "berth: no job named `x`\n"
        );
        assert_eq!(
            CliError::Problems(vec!["a".into(), "b".into()]).text(),
            "berth: a\nberth: b\n"
        );
        assert_eq!(
            CliError::Unreachable(RuntimeError::Unreachable("cannot reach".into())).text(),
            format!(
                "berth: {}\nberth: is the Docker engine running? (DOCKER_HOST is used when set)\n",
                RuntimeError::Unreachable("cannot reach".into())
            )
        );
        // What the run's reporters said is not said again; a reader that left hears nothing.
        assert_eq!(CliError::Run(RunStatus::Failed).text(), "");
        let broken = io::Error::from(io::ErrorKind::BrokenPipe);
        assert_eq!(CliError::Stdout(broken).text(), "");
        let drifted = CliError::Drifted {
            run: "20260101-000000-0001".into(),
            drift: vec!["the commit is b, the run was at a".into()],
        };
        assert_eq!(
            drifted.text(),
            "berth: run 20260101-000000-0001 drifted (refusing to replay):\n  \
             - the commit is b, the run was at a\nberth: --allow-drift replays it as it is now\n"
        );
        let verify = CliError::VerifyRun {
            run: 1,
            source: Box::new(CliError::input("bad")),
        };
        assert_eq!(verify.exit_code(), 2);
        assert_eq!(
            verify.text(),
            "berth: bad\nberth: verify: run 1 did not pass (exit 2); nothing to compare\n"
        );
    }
}
