//! `berth completions` and `berth man`: generated from the clap definition.

use super::args::Cli;
use super::{exit, out_raw};

/// `berth completions SHELL`: generated from the clap definition, so it never falls behind.
pub(super) fn cmd_completions(shell: clap_complete::Shell) -> i32 {
    use clap::CommandFactory;
    let mut cmd = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cmd, "berth", &mut script);
    out_raw(&script);
    exit::OK
}

/// `berth man [COMMAND]`: berth(1), or berth-COMMAND(1) for one subcommand, as roff.
pub(super) fn cmd_man(command: Option<&str>) -> i32 {
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
                eprintln!("berth: no command `{name}` (see `berth --help`)");
                return exit::BAD_INPUT;
            }
        },
    };
    let mut out = Vec::new();
    if let Err(e) = clap_mangen::Man::new(page)
        .source(concat!("berth ", env!("CARGO_PKG_VERSION")))
        .render(&mut out)
    {
        eprintln!("berth: cannot render the man page: {e}");
        return exit::BAD_INPUT;
    }
    out_raw(&out);
    exit::OK
}
