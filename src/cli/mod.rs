//! The command line: parses arguments, wires pipeline → plan → engine → reporter, and maps
//! every outcome to an exit code.
//!
//! One file per command or group of commands; `args` holds the clap definition only, `error`
//! the one error type every command returns and only [`main`] prints.

/// `println!` for berth's standard output, as a `Result` for `?`: a reader that went away
/// (`berth runs | head -1`) ends the command, and berth exits quietly with 0 (see
/// [`CliError::Stdout`]). SIGPIPE stays ignored, so that a run can always clean up.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::cli::out_raw(format!("{}\n", format_args!($($arg)*)).as_bytes())
    };
}

pub(crate) fn out_raw(bytes: &[u8]) -> Result<(), CliError> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(bytes)
        .and_then(|()| stdout.flush())
        .map_err(CliError::Stdout)
}

mod actions;
mod args;
mod cache;
mod docs;
mod error;
mod lock;
mod plan;
mod prune;
mod records;
mod replay;
mod reuse;
mod run;
mod setup;
mod verify;
mod warm;

use clap::Parser;

pub use args::Cli;
pub use error::{exit, CliError};
pub use plan::render_plan;
pub use run::MASK_LIST;

use args::{ActionsCommand, CacheCommand, Command};
use run::RunMode;

/// Entry point: parse, run, print what went wrong, and return the process exit code.
pub fn main() -> i32 {
    let started = Cli::try_parse().map_err(CliError::from).and_then(|cli| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(CliError::Start)?;
        Ok((cli, runtime))
    });
    match started {
        // Said before the runtime goes, which waits for what still runs on its threads.
        Ok((cli, runtime)) => runtime.block_on(async { ended(command(&cli).await) }),
        Err(e) => ended(Err(e)),
    }
}

/// The one place an error is printed.
fn ended(result: Result<(), CliError>) -> i32 {
    match result {
        Ok(()) => exit::OK,
        Err(e) => {
            e.print();
            e.exit_code()
        }
    }
}

async fn command(cli: &Cli) -> Result<(), CliError> {
    match &cli.command {
        Command::Plan(args) => plan::cmd_plan(cli, args),
        Command::Run(args) => run::cmd_run(cli, args, RunMode::Run, None, None).await,
        Command::Debug(args) => run::cmd_run(cli, args, RunMode::Debug, None, None).await,
        Command::Shell(args) => run::cmd_run(cli, args, RunMode::Shell, None, None).await,
        Command::Lock(args) => run::cmd_run(cli, args, RunMode::Lock, None, None).await,
        Command::Verify(args) => verify::cmd_verify(cli, args).await,
        Command::Replay(args) => replay::cmd_replay(cli, args).await,
        Command::Warm(args) => warm::cmd_warm(cli, args).await,
        Command::Prune(args) => prune::cmd_prune(cli, args).await,
        Command::Artifacts(args) => records::cmd_artifacts(cli, args),
        Command::Cache(CacheCommand::Export { keys, output }) => {
            cache::cmd_cache_export(cli, keys, output).await
        }
        Command::Cache(CacheCommand::Import { file, force }) => {
            cache::cmd_cache_import(cli, file, *force).await
        }
        Command::Cache(command) => cache::cmd_cache(cli, command).await,
        Command::Actions(ActionsCommand::Pull) => actions::cmd_pull(cli),
        Command::Runs => records::cmd_runs(cli),
        Command::Logs { names } => records::cmd_logs(cli, names),
        Command::Show { run } => records::cmd_show(cli, run.as_deref()),
        Command::Completions { shell } => docs::cmd_completions(*shell),
        Command::Man { command } => docs::cmd_man(command.as_deref()),
    }
}
