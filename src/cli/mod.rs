//! The command line: parses arguments, wires pipeline → plan → engine → reporter, and maps
//! every outcome to an exit code.
//!
//! One file per command or group of commands; `args` holds the clap definition only.

/// Exit codes, as documented in the README.
pub mod exit {
    pub const OK: i32 = 0;
    pub const JOB_FAILED: i32 = 1;
    pub const BAD_INPUT: i32 = 2;
    pub const DOCKER: i32 = 3;
    pub const INTERRUPTED: i32 = 130;
}

/// `println!` for berth's standard output: a reader that went away (`berth runs | head -1`)
/// ends berth quietly with exit 0, as ripgrep does, instead of a panic. SIGPIPE stays ignored,
/// so that a run can always clean up.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::cli::out_raw(format!("{}\n", format_args!($($arg)*)).as_bytes())
    };
}

pub(crate) fn out_raw(bytes: &[u8]) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(exit::OK);
        }
        eprintln!("berth: cannot write to standard output: {e}");
        std::process::exit(exit::DOCKER);
    }
}

mod args;
mod cache;
mod docs;
mod lock;
mod plan;
mod prune;
mod records;
mod replay;
mod run;
mod setup;
mod verify;
mod warm;

use clap::Parser;

pub use args::Cli;
pub use plan::render_plan;
pub use run::MASK_LIST;

use args::{CacheCommand, Command};
use run::RunMode;

/// Entry point: parse, run, and return the process exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                exit::BAD_INPUT
            } else {
                exit::OK
            };
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("berth: cannot start: {e}");
            return exit::DOCKER;
        }
    };
    runtime.block_on(async move {
        match &cli.command {
            Command::Plan(args) => plan::cmd_plan(&cli, args),
            Command::Run(args) => run::cmd_run(&cli, args, RunMode::Run, None, None).await,
            Command::Debug(args) => run::cmd_run(&cli, args, RunMode::Debug, None, None).await,
            Command::Shell(args) => run::cmd_run(&cli, args, RunMode::Shell, None, None).await,
            Command::Lock(args) => run::cmd_run(&cli, args, RunMode::Lock, None, None).await,
            Command::Verify(args) => verify::cmd_verify(&cli, args).await,
            Command::Replay(args) => replay::cmd_replay(&cli, args).await,
            Command::Warm(args) => warm::cmd_warm(&cli, args).await,
            Command::Prune(args) => prune::cmd_prune(&cli, args).await,
            Command::Artifacts(args) => records::cmd_artifacts(&cli, args),
            Command::Cache(CacheCommand::Export { keys, output }) => {
                cache::cmd_cache_export(&cli, keys, output).await
            }
            Command::Cache(CacheCommand::Import { file, force }) => {
                cache::cmd_cache_import(&cli, file, *force).await
            }
            Command::Cache(command) => cache::cmd_cache(&cli, command).await,
            Command::Runs => records::cmd_runs(&cli),
            Command::Logs { names } => records::cmd_logs(&cli, names),
            Command::Show { run } => records::cmd_show(&cli, run.as_deref()),
            Command::Completions { shell } => docs::cmd_completions(*shell),
            Command::Man { command } => docs::cmd_man(command.as_deref()),
        }
    })
}
