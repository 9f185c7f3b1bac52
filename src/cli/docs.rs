//! `berth completions` and `berth man`: generated from the clap definition.

use super::args::Cli;
use super::{out_raw, CliError};

/// `berth completions SHELL`: generated from the clap definition, so it never falls behind.
pub(super) fn cmd_completions(shell: clap_complete::Shell) -> Result<(), CliError> {
    use clap::CommandFactory;
    let mut cmd = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cmd, "berth", &mut script);
    out_raw(&script)
}

/// `berth man [COMMAND]`: berth(1), or berth-COMMAND(1) for one subcommand, as roff.
pub(super) fn cmd_man(command: Option<&str>) -> Result<(), CliError> {
    use clap::CommandFactory;
    let mut cli = Cli::command();
    // Global options (-C, -f) reach the subcommands' pages, which are named berth-NAME.
    cli.build();
    let page = match command {
        None => cli,
        Some(name) => match cli.find_subcommand(name) {
            // After build(), its display name is `berth-NAME`: the page's title.
            Some(sub) => sub.clone(),
            None => {
                return Err(CliError::input(format!(
                    "no command `{name}` (see `berth --help`)"
                )))
            }
        },
    };
    let mut out = Vec::new();
    clap_mangen::Man::new(page)
        .source(concat!("berth ", env!("CARGO_PKG_VERSION")))
        .render(&mut out)
        .map_err(|e| CliError::input(format!("cannot render the man page: {e}")))?;
    out_raw(&out)
}
