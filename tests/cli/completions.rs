//! Shell completions and man pages, generated from the command-line definition.

use std::process::{Command, Output};

const SUBCOMMANDS: [&str; 10] = [
    "run",
    "plan",
    "cache",
    "runs",
    "logs",
    "show",
    "artifacts",
    "prune",
    "completions",
    "man",
];

fn berth(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(args)
        .output()
        .expect("run berth")
}

fn stdout_of(args: &[&str]) -> String {
    let out = berth(args);
    assert!(
        out.status.success(),
        "berth {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

#[test]
fn completion_scripts_name_every_subcommand() {
    for (shell, marker) in [
        ("bash", "complete -F _berth"),
        ("zsh", "#compdef berth"),
        ("fish", "complete -c berth"),
        ("elvish", "edit:completion:arg-completer[berth]"),
        ("powershell", "Register-ArgumentCompleter"),
    ] {
        let script = stdout_of(&["completions", shell]);
        assert!(script.contains(marker), "{shell}: no `{marker}`");
        for sub in SUBCOMMANDS {
            assert!(script.contains(sub), "{shell}: `{sub}` missing");
        }
    }
}

/// The bash script, sourced in a real bash, completes a subcommand and an option.
#[test]
fn bash_completion_completes() {
    let script = stdout_of(&["completions", "bash"]);
    let complete = |words: &str| {
        let program = format!(
            "{script}\nCOMP_WORDS=({words}); COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1)); \
             _berth berth \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\"; \
             printf '%s\\n' \"${{COMPREPLY[@]}}\""
        );
        let out = Command::new("bash")
            .args(["--norc", "-c", &program])
            .output()
            .expect("run bash");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let subs = complete("berth ru");
    assert_eq!(subs.lines().collect::<Vec<_>>(), ["run", "runs"]);
    let options = complete("berth run --se");
    assert!(options.lines().any(|l| l == "--secret"), "{options}");
    assert!(
        options.lines().any(|l| l == "--service-timeout"),
        "{options}"
    );
}

#[test]
fn man_page_lists_subcommands_and_options() {
    let page = stdout_of(&["man"]);
    assert!(page.starts_with(".ie") || page.starts_with(".TH"), "{page}");
    assert!(page.contains(".TH berth 1"), "{page}");
    assert!(page.contains(".SH SUBCOMMANDS"), "{page}");
    for sub in SUBCOMMANDS {
        assert!(
            page.contains(&format!("berth\\-{sub}(1)")),
            "`{sub}` missing"
        );
    }
    let run = stdout_of(&["man", "run"]);
    assert!(run.contains(".TH berth-run 1"), "{run}");
    for option in ["\\-\\-secret", "\\-\\-mask", "\\-\\-output", "\\-\\-junit"] {
        assert!(run.contains(option), "{option} missing from berth-run(1)");
    }
    let unknown = berth(&["man", "nope"]);
    assert_eq!(unknown.status.code(), Some(2));
}
