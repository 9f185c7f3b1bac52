//! How a `run:` step's script is run: GitHub's shells ("Workflow syntax:
//! jobs.<job_id>.steps[*].shell"), the script file's extension, and the PATH the step gets.

/// A step's shell, as `shell:` (or `defaults.run.shell`) names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shell {
    /// No shell given: `bash -e {0}` when the image has bash, else `sh -e {0}`.
    Default,
    Bash,
    Sh,
    Python,
    Pwsh,
    Powershell,
    /// `command [args] {0}`: words, `{0}` among them.
    Custom(Vec<String>),
}

impl Shell {
    /// Reads `shell:`; a custom shell must say where the script goes with `{0}`.
    pub fn parse(text: &str) -> Result<Shell, String> {
        Ok(match text.trim() {
            "" => Shell::Default,
            "bash" => Shell::Bash,
            "sh" => Shell::Sh,
            "python" => Shell::Python,
            "pwsh" => Shell::Pwsh,
            "powershell" => Shell::Powershell,
            "cmd" => return Err("`shell: cmd` runs only on Windows runners".to_string()),
            custom => {
                if !custom.contains("{0}") {
                    return Err(format!(
                        "`shell: {custom}`: a custom shell must contain `{{0}}`, where the script's path goes"
                    ));
                }
                Shell::Custom(custom.split_whitespace().map(String::from).collect())
            }
        })
    }

    /// The script file's extension, as the runner names it (some interpreters need it).
    pub fn extension(&self) -> &'static str {
        let program = match self {
            Shell::Custom(words) => words.first().map(String::as_str).unwrap_or(""),
            _ => "",
        };
        match self {
            Shell::Default | Shell::Bash | Shell::Sh => ".sh",
            Shell::Python => ".py",
            Shell::Pwsh | Shell::Powershell => ".ps1",
            Shell::Custom(_) => match program.rsplit('/').next().unwrap_or(program) {
                "bash" | "sh" => ".sh",
                "python" | "python3" => ".py",
                "pwsh" | "powershell" => ".ps1",
                _ => "",
            },
        }
    }

    /// The script as written to its file: PowerShell gets the runner's prologue and
    /// epilogue, so that errors stop it and its exit code is the last command's.
    pub fn script(&self, body: &str) -> String {
        match self {
            Shell::Pwsh | Shell::Powershell => format!(
                "$ErrorActionPreference = 'stop'\n{body}\nif ((Test-Path -LiteralPath variable:\\LASTEXITCODE)) {{ exit $LASTEXITCODE }}"
            ),
            _ => body.to_string(),
        }
    }

    /// The process that runs `file`, with `prepends` first on PATH. A wrapper `sh -c` is
    /// needed to choose between bash and sh inside the container, and to extend the image's
    /// own PATH (which berth does not know); otherwise the shell is run directly.
    pub fn argv(&self, file: &str, prepends: &[String]) -> Vec<String> {
        let fixed: Vec<String> = match self {
            Shell::Default => {
                let mut script = path_prefix(prepends);
                script.push_str(&format!(
                    "if command -v bash >/dev/null 2>&1; then exec bash -e {f}; else exec sh -e {f}; fi",
                    f = quote(file)
                ));
                return vec!["sh".into(), "-c".into(), script];
            }
            Shell::Bash => ["bash", "--noprofile", "--norc", "-eo", "pipefail", file]
                .map(String::from)
                .to_vec(),
            Shell::Sh => ["sh", "-e", file].map(String::from).to_vec(),
            // `python` as GitHub's runners have it; images with only `python3` (Debian's and
            // Ubuntu's packages) run that rather than failing with "not found".
            Shell::Python => {
                let mut script = path_prefix(prepends);
                script.push_str(&format!(
                    "if command -v python >/dev/null 2>&1; then exec python {f}; else exec python3 {f}; fi",
                    f = quote(file)
                ));
                return vec!["sh".into(), "-c".into(), script];
            }
            Shell::Pwsh | Shell::Powershell => {
                let program = if *self == Shell::Pwsh {
                    "pwsh"
                } else {
                    "powershell"
                };
                vec![
                    program.into(),
                    "-command".into(),
                    format!(". '{}'", file.replace('\'', "''")),
                ]
            }
            Shell::Custom(words) => words.iter().map(|w| w.replace("{0}", file)).collect(),
        };
        if prepends.is_empty() {
            return fixed;
        }
        let mut script = path_prefix(prepends);
        script.push_str("exec");
        for word in &fixed {
            script.push(' ');
            script.push_str(&quote(word));
        }
        vec!["sh".into(), "-c".into(), script]
    }
}

/// Single quotes for sh.
pub fn quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+=:,@%".contains(c))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// `PATH=dirs:$PATH; export PATH; `, or nothing without dirs.
pub(super) fn path_prefix(prepends: &[String]) -> String {
    if prepends.is_empty() {
        return String::new();
    }
    format!(
        "PATH={}:\"$PATH\"; export PATH; ",
        quote(&prepends.join(":"))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shells_run_as_github_runs_them() {
        let f = "/berth/github/3/script.sh";
        assert_eq!(
            Shell::parse("bash").unwrap().argv(f, &[]),
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", f]
        );
        assert_eq!(Shell::parse("sh").unwrap().argv(f, &[]), ["sh", "-e", f]);
        assert_eq!(
            Shell::parse("python").unwrap().argv("/s.py", &[]),
            [
                "sh",
                "-c",
                "if command -v python >/dev/null 2>&1; then exec python /s.py; else exec python3 /s.py; fi"
            ]
        );
        assert_eq!(
            Shell::parse("pwsh").unwrap().argv("/s.ps1", &[]),
            ["pwsh", "-command", ". '/s.ps1'"]
        );
        assert_eq!(
            Shell::parse("perl -w {0}").unwrap().argv("/s", &[]),
            ["perl", "-w", "/s"]
        );
        assert_eq!(
            Shell::Default.argv(f, &[]),
            [
                "sh",
                "-c",
                "if command -v bash >/dev/null 2>&1; then exec bash -e /berth/github/3/script.sh; else exec sh -e /berth/github/3/script.sh; fi"
            ]
        );
    }

    #[test]
    fn path_prepends_go_through_sh() {
        let dirs = ["/venv/bin".to_string(), "/my tools".to_string()];
        assert_eq!(
            Shell::Bash.argv("/s.sh", &dirs),
            [
                "sh",
                "-c",
                "PATH='/venv/bin:/my tools':\"$PATH\"; export PATH; exec bash --noprofile --norc -eo pipefail /s.sh"
            ]
        );
        assert!(Shell::Python.argv("/s.py", &dirs)[2].starts_with(
            "PATH='/venv/bin:/my tools':\"$PATH\"; export PATH; if command -v python "
        ));
        assert!(Shell::Default.argv("/s.sh", &dirs)[2]
            .starts_with("PATH='/venv/bin:/my tools':\"$PATH\"; export PATH; if command -v bash"));
    }

    #[test]
    fn extensions_and_bad_shells() {
        assert_eq!(Shell::Default.extension(), ".sh");
        assert_eq!(Shell::Python.extension(), ".py");
        assert_eq!(Shell::Pwsh.extension(), ".ps1");
        assert_eq!(
            Shell::parse("/usr/bin/python3 -u {0}").unwrap().extension(),
            ".py"
        );
        assert_eq!(Shell::parse("perl {0}").unwrap().extension(), "");
        assert!(Shell::parse("perl")
            .unwrap_err()
            .contains("must contain `{0}`"));
        assert!(Shell::parse("cmd").unwrap_err().contains("Windows"));
        assert!(Shell::Pwsh
            .script("Write-Output hi")
            .starts_with("$ErrorActionPreference = 'stop'\nWrite-Output hi\n"));
    }
}
