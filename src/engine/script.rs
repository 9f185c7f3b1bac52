//! The shell scripts a job's container runs, written out as text (pure, so it is unit-tested).
//!
//! They do what GitLab Runner's Docker executor does with its bash shell, so that a job's log
//! reads as it does on GitLab:
//! - `driver.sh` (POSIX sh) plays the runner's part: it picks the shell as the runner does
//!   (bash, else sh), prints the `step_script` and `after_script` sections, runs `step.sh`,
//!   then `after.sh` in a shell of its own with `CI_JOB_STATUS` and its own timeout, and exits
//!   with the script's status.
//! - `step.sh` and `after.sh` are the runner's generated scripts: errexit, pipefail where the
//!   shell has it, noclobber off, a TERM trap, the commands evaluated in a subshell with stdin
//!   closed, each echoed green and bold as `$ cmd`.
//! - `stop.sh` ends the script running now with every process it started (berth runs it on a
//!   cancellation or `RUNNER_SCRIPT_TIMEOUT`; the driver on `RUNNER_AFTER_SCRIPT_TIMEOUT`).

use std::time::Duration;

/// Where the scripts live inside the container.
pub const DIR: &str = "/berth";

/// GitLab Runner's default `RUNNER_AFTER_SCRIPT_TIMEOUT`.
pub const AFTER_SCRIPT_TIMEOUT: Duration = Duration::from_secs(5 * 60);

/// What the runner prints when a script ran out of time, `{}` the script's stage.
pub fn timeout_warning(stage: &str) -> String {
    format!(
        "{stage} could not run to completion because the timeout was exceeded. For more control \
         over job and script timeouts see: \
         https://docs.gitlab.com/ci/runners/configure_runners/#set-script-and-after_script-timeouts"
    )
}

const BOLD_GREEN: &str = "\x1b[32;1m";
const RESET: &str = "\x1b[0;m";
const CLEAR: &str = "\x1b[0K";

/// The variables that change how GitLab Runner writes and runs a job's script, read from the
/// job's variables as the runner reads them (Go's boolean and duration syntax).
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// `FF_SCRIPT_SECTIONS`: a multi-line command is a collapsed section of the log.
    pub script_sections: bool,
    /// `FF_ENABLE_BASH_EXIT_CODE_CHECK`: each command's status is checked, not only `set -e`.
    pub exit_code_check: bool,
    /// `FF_USE_LEGACY_BASH_EVAL`: `: | eval '...'` instead of the trapped subshell.
    pub legacy_eval: bool,
    /// `CI_DEBUG_TRACE`: `set -o xtrace`.
    pub trace: bool,
    /// `AFTER_SCRIPT_IGNORE_ERRORS` (true by default): a failing after_script leaves the
    /// job's result alone.
    pub after_ignore_errors: bool,
    /// `RUNNER_SCRIPT_TIMEOUT`, when shorter than the job's timeout.
    pub script_timeout: Option<Duration>,
    /// `RUNNER_AFTER_SCRIPT_TIMEOUT` (5 minutes by default).
    pub after_timeout: Duration,
    /// What the runner warns about in the log before the script (a malformed timeout, ...).
    pub warnings: Vec<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            script_sections: false,
            exit_code_check: false,
            legacy_eval: false,
            trace: false,
            after_ignore_errors: true,
            script_timeout: None,
            after_timeout: AFTER_SCRIPT_TIMEOUT,
            warnings: Vec::new(),
        }
    }
}

impl Options {
    /// The options a job's variables give, for a job of `job_timeout`.
    pub fn from_env(env: &[(String, String)], job_timeout: Duration) -> Options {
        let get = |name: &str| {
            env.iter()
                .rev()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
                .unwrap_or("")
        };
        let mut warnings = Vec::new();
        // A flag that does not parse keeps its default, as the runner's does.
        let mut flag = |name: &str, default: bool| match get(name) {
            "" => default,
            raw => go_bool(raw).unwrap_or_else(|| {
                warnings.push(format!(
                    "{name}: could not parse feature flag, expected bool, got {raw}"
                ));
                default
            }),
        };
        let script_sections = flag("FF_SCRIPT_SECTIONS", false);
        let exit_code_check = flag("FF_ENABLE_BASH_EXIT_CODE_CHECK", false);
        let legacy_eval = flag("FF_USE_LEGACY_BASH_EVAL", false);
        let trace = flag("CI_DEBUG_TRACE", false);
        let after_ignore_errors = flag("AFTER_SCRIPT_IGNORE_ERRORS", true);
        let mut timeout = |name: &str| -> Option<Duration> {
            let raw = get(name);
            if raw.trim().is_empty() {
                return None;
            }
            match go_duration(raw) {
                None => {
                    warnings.push(format!("Ignoring malformed {name} timeout: {raw}"));
                    None
                }
                Some(Err(())) => {
                    warnings.push(format!("Ignoring relative {name} timeout: {raw}"));
                    None
                }
                Some(Ok(d)) if d > job_timeout => {
                    warnings.push(format!(
                        "{name} timeout: {raw} is longer than job timeout. Setting to job timeout"
                    ));
                    None
                }
                Some(Ok(d)) if d.is_zero() => None,
                Some(Ok(d)) => Some(d),
            }
        };
        let script_timeout = timeout("RUNNER_SCRIPT_TIMEOUT");
        let after_timeout = timeout("RUNNER_AFTER_SCRIPT_TIMEOUT").unwrap_or(AFTER_SCRIPT_TIMEOUT);
        Options {
            script_sections,
            exit_code_check,
            legacy_eval,
            trace,
            after_ignore_errors,
            script_timeout,
            after_timeout,
            warnings,
        }
    }
}

/// Go's `strconv.ParseBool`.
pub(super) fn go_bool(raw: &str) -> Option<bool> {
    match raw {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Go's `time.ParseDuration` (`90s`, `1h30m`, `1.5m`, `0`): `None` if it does not parse,
/// `Some(Err)` if it is negative.
fn go_duration(raw: &str) -> Option<Result<Duration, ()>> {
    let (negative, mut rest) = match raw.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, raw.strip_prefix('+').unwrap_or(raw)),
    };
    if rest == "0" {
        return Some(Ok(Duration::ZERO));
    }
    if rest.is_empty() {
        return None;
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let num = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num == 0 || rest[..num] == *"." {
            return None;
        }
        let value: f64 = rest[..num].parse().ok()?;
        rest = &rest[num..];
        let unit = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let seconds = match &rest[..unit] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        rest = &rest[unit..];
        total += value * seconds;
    }
    Some(if negative && total > 0.0 {
        Err(())
    } else {
        Ok(Duration::from_secs_f64(total))
    })
}

pub struct Scripts {
    pub driver: String,
    pub step: String,
    pub after: Option<String>,
    pub stop: String,
    /// More files to put beside them: (absolute path, content).
    pub extra: Vec<(String, String)>,
}

/// Quote for a POSIX shell: single quotes, with `'` written as `'\''`.
pub fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// The commands of one script as the runner writes them: `prefix` names its sections
/// (`script_step`, `after_script_step`), `notice` is printed first.
fn commands_body(
    commands: &[String],
    prefix: &str,
    notice: Option<&str>,
    opts: &Options,
) -> String {
    let check = if opts.exit_code_check {
        "_runner_exit_code=$?; if [ $_runner_exit_code -ne 0 ]; then exit $_runner_exit_code; fi\n"
    } else {
        ""
    };
    let mut s = format!("cd \"$CI_PROJECT_DIR\"\n{check}");
    if let Some(notice) = notice {
        s.push_str(&format!(
            "printf '%s\\n' {}\n",
            quote(&format!("{BOLD_GREEN}{notice}{RESET}"))
        ));
    }
    for (i, cmd) in commands.iter().enumerate() {
        let cmd = cmd.trim();
        match cmd.split_once('\n') {
            _ if cmd.is_empty() => s.push_str("echo\n"),
            None => s.push_str(&format!(
                "printf '%s\\n' {}\n",
                quote(&format!("{BOLD_GREEN}$ {cmd}{RESET}"))
            )),
            // The whole command, folded away in GitLab's log view. Its text goes through
            // printf's %b, as the runner's does.
            Some(_) if opts.script_sections => {
                let id = format!("section_{prefix}_{i}");
                s.push_str(&format!(
                    "printf '%b\\n' \"section_start:$(date +%s):{id}[hide_duration=true,collapsed=true]\"{}\n",
                    quote(&format!("\r{CLEAR}{BOLD_GREEN}$ {cmd}{RESET}"))
                ));
                s.push_str(&format!(
                    "printf '%b\\n' \"section_end:$(date +%s):{id}\"{}\n",
                    quote(&format!("\r{CLEAR}"))
                ));
            }
            Some((first, _)) => s.push_str(&format!(
                "printf '%s\\n' {}\n",
                quote(&format!(
                    "{BOLD_GREEN}$ {first} # collapsed multi-line command{RESET}"
                ))
            )),
        }
        s.push_str(cmd);
        s.push('\n');
        s.push_str(check);
    }
    s
}

/// A script as the runner's bash shell wraps it: the commands are evaluated in a subshell
/// with stdin closed, under errexit (and pipefail where the shell has it); SIGTERM makes
/// either shell exit 1 rather than die of it.
fn wrapped(body: &str, opts: &Options) -> String {
    let mut s =
        String::from("# Generated by berth, as GitLab Runner writes a job's bash script.\n");
    s.push_str("trap 'exit 1' TERM\n\n");
    if opts.trace {
        s.push_str("set -o xtrace\n");
    }
    s.push_str(
        "case \"$(set -o)\" in *\"pipefail\"*) set -o pipefail;; esac; set -o errexit\n\
         set +o noclobber\n",
    );
    if opts.legacy_eval {
        s.push_str(&format!(": | eval {}\n", quote(body)));
    } else {
        s.push_str(&format!(
            "(trap 'exit 1' TERM; eval {}) < /dev/null\n",
            quote(body)
        ));
    }
    s.push_str("exit 0\n");
    s
}

/// A line the runner prints itself (not the script): a section's start, with its title.
fn section_start(name: &str, title: &str) -> String {
    format!(
        "printf 'section_start:%s:{name}\\r\\033[0K\\033[0K\\033[36;1m%s\\033[0;m\\033[0;m\\n' \"$(date +%s)\" {}\n",
        quote(title)
    )
}

fn section_end(name: &str) -> String {
    format!("printf 'section_end:%s:{name}\\r\\033[0K' \"$(date +%s)\"\n")
}

fn warning(text: &str) -> String {
    format!(
        "printf '\\033[0;33mWARNING: %s\\033[0;m\\n' {}\n",
        quote(text)
    )
}

/// The runner's warning, with text the driver only knows when it runs (`$…` expanded).
fn warning_expanding(text: &str) -> String {
    format!("printf '\\033[0;33mWARNING: %s\\033[0;m\\n' \"{text}\"\n")
}

/// Seconds for `sleep`, which takes fractions wherever berth's images have it.
fn seconds(d: Duration) -> String {
    let ms = d.as_millis().max(1);
    if ms.is_multiple_of(1000) {
        format!("{}", ms / 1000)
    } else {
        format!("{}.{:03}", ms / 1000, ms % 1000)
    }
}

pub fn render(before: &[String], script: &[String], after: &[String], opts: &Options) -> Scripts {
    // GitLab sends before_script and script as one step: they share a shell and the
    // sections' numbering.
    let mut step_cmds = before.to_vec();
    step_cmds.extend_from_slice(script);
    let step = wrapped(&commands_body(&step_cmds, "script_step", None, opts), opts);
    let after = (!after.is_empty()).then(|| {
        wrapped(
            &commands_body(
                after,
                "after_script_step",
                Some("Running after script..."),
                opts,
            ),
            opts,
        )
    });
    Scripts {
        driver: driver(opts),
        step,
        after,
        stop: stop(),
        extra: Vec::new(),
    }
}

/// The runner's part: shell selection, the sections, after_script and its timeout.
fn driver(opts: &Options) -> String {
    let mut s = String::from(
        "# Generated by berth: runs the job as GitLab Runner's Docker executor does (step_script,\n\
         # then after_script in a shell of its own) and exits with the script's status.\n\
         # One stream, so the log keeps the order in which things happened.\n\
         exec 2>&1\n\
         # Files come out the same whatever the engine's default.\n\
         umask 0022\n",
    );
    // The runner's order of shells.
    s.push_str(
        "if [ -x /usr/local/bin/bash ]; then berth_shell=/usr/local/bin/bash\n\
         elif [ -x /usr/bin/bash ]; then berth_shell=/usr/bin/bash\n\
         elif [ -x /bin/bash ]; then berth_shell=/bin/bash\n\
         elif [ -x /usr/local/bin/sh ]; then berth_shell=/usr/local/bin/sh\n\
         elif [ -x /usr/bin/sh ]; then berth_shell=/usr/bin/sh\n\
         elif [ -x /bin/sh ]; then berth_shell=/bin/sh\n\
         elif [ -x /busybox/sh ]; then berth_shell=/busybox/sh\n\
         else echo shell not found; exit 1; fi\n",
    );
    for w in &opts.warnings {
        s.push_str(&warning(w));
    }
    s.push_str(&section_start(
        "step_script",
        "Executing \"step_script\" stage of the job script",
    ));
    // Started in the background so that stop.sh can find it; a stop that came before it
    // started leaves it unstarted.
    s.push_str(&format!(
        "berth_status=1\n\
         if [ ! -f {DIR}/step.stopped ]; then\n\
         \x20 \"$berth_shell\" {DIR}/step.sh &\n\
         \x20 berth_pid=$!\n\
         \x20 echo \"$berth_pid\" > {DIR}/step.pid\n\
         \x20 wait \"$berth_pid\"\n\
         \x20 berth_status=$?\n\
         fi\n"
    ));
    s.push_str(&section_end("step_script"));
    s.push_str(&format!(
        "case \"$(cat {DIR}/step.stopped 2>/dev/null)\" in\n\
         \x20 canceled) CI_JOB_STATUS=canceled\n\
         \x20   {}\
         \x20 timedout) CI_JOB_STATUS=timedout\n\
         \x20   {}\
         \x20 *) if [ \"$berth_status\" -eq 0 ]; then CI_JOB_STATUS=success; else CI_JOB_STATUS=failed; fi ;;\n\
         esac\n\
         export CI_JOB_STATUS\n",
        warning("script canceled externally (UI, API)").replace('\n', " ;;\n"),
        warning(&timeout_warning("step_script")).replace('\n', " ;;\n"),
    ));
    s.push_str(&format!("if [ -f {DIR}/after.sh ]; then\n"));
    s.push_str(&section_start("after_script", "Running after_script"));
    s.push_str(&format!(
        "\"$berth_shell\" {DIR}/after.sh &\n\
         berth_pid=$!\n\
         echo \"$berth_pid\" > {DIR}/after.pid\n\
         (sleep {secs} && exec /bin/sh {DIR}/stop.sh timedout after) >/dev/null 2>&1 &\n\
         berth_watch=$!\n\
         wait \"$berth_pid\"\n\
         berth_after=$?\n\
         kill \"$berth_watch\" 2>/dev/null\n",
        secs = seconds(opts.after_timeout),
    ));
    s.push_str(&section_end("after_script"));
    s.push_str(&format!(
        "if [ -f {DIR}/after.stopped ]; then {}fi\n",
        warning(&timeout_warning("after_script")).replace('\n', "; ")
    ));
    let failed = "after_script failed, but job will continue unaffected: exit code $berth_after";
    if opts.after_ignore_errors {
        s.push_str(&format!(
            "if [ \"$berth_after\" -ne 0 ]; then {}fi\n",
            warning_expanding(failed).replace('\n', "; ")
        ));
    } else {
        // AFTER_SCRIPT_IGNORE_ERRORS=false: a failing after_script fails a job that passed.
        s.push_str(
            "if [ \"$berth_after\" -ne 0 ] && [ \"$berth_status\" -eq 0 ]; then berth_status=$berth_after; fi\n",
        );
    }
    s.push_str("fi\nexit \"$berth_status\"\n");
    s
}

/// `stop.sh WHY PHASE`: stops the script of PHASE (step or after) with every process it
/// started, as the runner does when a script is cancelled or out of time: TERM first (the
/// scripts' trap makes their shells exit 1), then KILL for what is left after 5 seconds. WHY
/// (canceled, timedout) is left for the driver to tell after_script.
fn stop() -> String {
    format!(
        "# Generated by berth: stops the job's script of phase $2 and what it started.\n\
         echo \"$1\" > {DIR}/\"$2\".stopped\n\
         root=$(cat {DIR}/\"$2\".pid 2>/dev/null)\n\
         [ -n \"$root\" ] || exit 0\n\
         tree=\" $root \"\n\
         grew=1\n\
         while [ \"$grew\" = 1 ]; do\n\
         \x20 grew=0\n\
         \x20 for s in /proc/[0-9]*/status; do\n\
         \x20   p=${{s#/proc/}}; p=${{p%/status}}\n\
         \x20   case \"$tree\" in *\" $p \"*) continue ;; esac\n\
         \x20   pp=\n\
         \x20   {{ while read -r k v; do if [ \"$k\" = PPid: ]; then pp=$v; break; fi; done < \"$s\"; }} 2>/dev/null\n\
         \x20   case \"$tree\" in *\" $pp \"*) tree=\"$tree$p \"; grew=1 ;; esac\n\
         \x20 done\n\
         done\n\
         kill -TERM $tree 2>/dev/null\n\
         n=0\n\
         while [ $n -lt 5 ] && kill -0 \"$root\" 2>/dev/null; do sleep 1; n=$((n + 1)); done\n\
         kill -KILL $tree 2>/dev/null\n\
         exit 0\n"
    )
}

impl Scripts {
    /// The scripts as a tar to unpack at `/` of the container (`berth/driver.sh`, ...).
    pub fn to_tar(&self) -> std::io::Result<Vec<u8>> {
        let mut builder = tar::Builder::new(Vec::new());
        let mut add = |name: &str, text: &str, mode: u32| -> std::io::Result<()> {
            let mut header = tar::Header::new_gnu();
            header.set_size(text.len() as u64);
            header.set_mode(mode);
            header.set_mtime(0);
            header.set_entry_type(if name.ends_with('/') {
                tar::EntryType::Directory
            } else {
                tar::EntryType::Regular
            });
            builder.append_data(&mut header, name, text.as_bytes())
        };
        let dir = DIR.trim_start_matches('/');
        // Writable by all: a job running as another user still leaves its pid and status
        // files there.
        add(&format!("{dir}/"), "", 0o777)?;
        add(&format!("{dir}/driver.sh"), &self.driver, 0o755)?;
        add(&format!("{dir}/step.sh"), &self.step, 0o755)?;
        if let Some(after) = &self.after {
            add(&format!("{dir}/after.sh"), after, 0o755)?;
        }
        add(&format!("{dir}/stop.sh"), &self.stop, 0o755)?;
        for (path, text) in &self.extra {
            add(path.trim_start_matches('/'), text, 0o644)?;
        }
        builder.into_inner()
    }

    /// The container command that runs the driver.
    pub fn command() -> Vec<String> {
        vec!["/bin/sh".into(), format!("{DIR}/driver.sh")]
    }

    /// What berth runs in the job's container to end its script early (`why`: canceled,
    /// timedout), so that after_script still runs.
    pub fn stop_command(why: &str) -> Vec<String> {
        vec![
            "/bin/sh".into(),
            format!("{DIR}/stop.sh"),
            why.into(),
            "step".into(),
        ]
    }

    /// A shell for someone to type into, in the project directory: bash when the image has
    /// it, else sh.
    pub fn shell_command() -> Vec<String> {
        vec![
            "/bin/sh".into(),
            "-c".into(),
            "cd \"$CI_PROJECT_DIR\" 2>/dev/null; if command -v bash >/dev/null 2>&1; then exec bash; else exec sh; fi".into(),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn quoting() {
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), "'it'\\''s'");
    }

    #[test]
    fn the_step_is_the_runners_bash_script() {
        let s = render(
            &["echo before".into()],
            &["pip install -e .".into(), "echo 'quoted'".into()],
            &[],
            &Options::default(),
        );
        let body = "cd \"$CI_PROJECT_DIR\"\n\
                    printf '%s\\n' '\x1b[32;1m$ echo before\x1b[0;m'\n\
                    echo before\n\
                    printf '%s\\n' '\x1b[32;1m$ pip install -e .\x1b[0;m'\n\
                    pip install -e .\n\
                    printf '%s\\n' '\x1b[32;1m$ echo '\\''quoted'\\''\x1b[0;m'\n\
                    echo 'quoted'\n";
        let expected = format!(
            "# Generated by berth, as GitLab Runner writes a job's bash script.\n\
             trap 'exit 1' TERM\n\n\
             case \"$(set -o)\" in *\"pipefail\"*) set -o pipefail;; esac; set -o errexit\n\
             set +o noclobber\n\
             (trap 'exit 1' TERM; eval {}) < /dev/null\n\
             exit 0\n",
            quote(body)
        );
        assert_eq!(s.step, expected);
        assert!(s.after.is_none());
    }

    #[test]
    fn commands_are_trimmed_and_an_empty_one_prints_an_empty_line() {
        let s = render(
            &[],
            &["  echo a  ".into(), "".into()],
            &[],
            &Options::default(),
        );
        assert!(
            s.step.contains("$ echo a\x1b[0;m'\\''\necho a\necho\n\n"),
            "{}",
            s.step
        );
    }

    #[test]
    fn multi_line_commands_collapse_in_the_echo() {
        let s = render(
            &[],
            &["if true; then\n  echo yes\nfi\n".into()],
            &["echo bye".into()],
            &Options::default(),
        );
        assert!(s
            .step
            .contains("\x1b[32;1m$ if true; then # collapsed multi-line command\x1b[0;m"));
        assert!(s.step.contains("if true; then\n  echo yes\nfi\n"));
        assert!(s.after.as_deref().unwrap().contains("echo bye"));
    }

    #[test]
    fn script_sections_fold_a_multi_line_command_numbered_across_before_script() {
        let opts = Options::from_env(&env(&[("FF_SCRIPT_SECTIONS", "true")]), HOUR);
        let s = render(&["echo one".into()], &["echo a\necho b".into()], &[], &opts);
        assert!(s.step.contains(
            "printf '\\''%b\\n'\\'' \"section_start:$(date +%s):section_script_step_1[hide_duration=true,collapsed=true]\"'\\''\r\x1b[0K\x1b[32;1m$ echo a\necho b\x1b[0;m'\\''\n"
        ), "{}", s.step);
        assert!(s
            .step
            .contains("\"section_end:$(date +%s):section_script_step_1\"'\\''\r\x1b[0K'\\''\n"));
        assert!(!s.step.contains("collapsed multi-line command"));
    }

    #[test]
    fn the_flags_change_the_script_as_the_runners_do() {
        let opts = Options::from_env(
            &env(&[
                ("FF_ENABLE_BASH_EXIT_CODE_CHECK", "1"),
                ("FF_USE_LEGACY_BASH_EVAL", "TRUE"),
                ("CI_DEBUG_TRACE", "true"),
            ]),
            HOUR,
        );
        let s = render(&[], &["false".into()], &[], &opts);
        assert!(s.step.contains("\nset -o xtrace\n"));
        assert!(s.step.contains("\n: | eval '"));
        assert!(!s.step.contains("< /dev/null"));
        assert!(s.step.contains(
            "false\n_runner_exit_code=$?; if [ $_runner_exit_code -ne 0 ]; then exit $_runner_exit_code; fi\n"
        ));
    }

    #[test]
    fn flags_and_timeouts_are_read_as_go_reads_them() {
        let o = Options::from_env(
            &env(&[
                ("FF_SCRIPT_SECTIONS", "yes"),
                ("RUNNER_SCRIPT_TIMEOUT", "1m30s"),
                ("RUNNER_AFTER_SCRIPT_TIMEOUT", "10s"),
            ]),
            HOUR,
        );
        assert!(!o.script_sections);
        assert_eq!(o.script_timeout, Some(Duration::from_secs(90)));
        assert_eq!(o.after_timeout, Duration::from_secs(10));
        assert_eq!(
            o.warnings,
            ["FF_SCRIPT_SECTIONS: could not parse feature flag, expected bool, got yes"]
        );
        let o = Options::from_env(
            &env(&[
                ("RUNNER_SCRIPT_TIMEOUT", "2h"),
                ("RUNNER_AFTER_SCRIPT_TIMEOUT", "ten"),
            ]),
            HOUR,
        );
        assert_eq!(o.script_timeout, None);
        assert_eq!(o.after_timeout, AFTER_SCRIPT_TIMEOUT);
        assert_eq!(
            o.warnings,
            [
                "RUNNER_SCRIPT_TIMEOUT timeout: 2h is longer than job timeout. Setting to job timeout",
                "Ignoring malformed RUNNER_AFTER_SCRIPT_TIMEOUT timeout: ten"
            ]
        );
        assert_eq!(go_duration("1.5h"), Some(Ok(Duration::from_secs(5400))));
        assert_eq!(go_duration("300ms"), Some(Ok(Duration::from_millis(300))));
        assert_eq!(go_duration("-1s"), Some(Err(())));
        assert_eq!(go_duration("10"), None);
        assert_eq!(seconds(Duration::from_millis(1500)), "1.500");
    }

    #[test]
    fn the_driver_prints_the_runners_sections_and_runs_after_script_with_its_status() {
        let opts = Options::from_env(&env(&[("RUNNER_AFTER_SCRIPT_TIMEOUT", "7s")]), HOUR);
        let s = render(&[], &["true".into()], &["echo bye".into()], &opts);
        let d = &s.driver;
        let at = |needle: &str| d.find(needle).unwrap_or_else(|| panic!("{needle} in\n{d}"));
        assert!(d.contains(
            "printf 'section_start:%s:step_script\\r\\033[0K\\033[0K\\033[36;1m%s\\033[0;m\\033[0;m\\n' \"$(date +%s)\" 'Executing \"step_script\" stage of the job script'\n"
        ));
        assert!(at("section_start:%s:step_script") < at("step.sh &"));
        assert!(at("step.sh &") < at("section_end:%s:step_script\\r\\033[0K'"));
        assert!(at("CI_JOB_STATUS=failed") < at("section_start:%s:after_script"));
        assert!(at("sleep 7 && exec /bin/sh /berth/stop.sh timedout after") > at("after.sh &"));
        assert!(d.contains(
            "WARNING: %s\\033[0;m\\n' \"after_script failed, but job will continue unaffected: exit code $berth_after\""
        ));
        let after = s.after.as_deref().unwrap();
        assert!(after.contains(
            "printf '\\''%s\\n'\\'' '\\''\x1b[32;1mRunning after script...\x1b[0;m'\\''\n"
        ));
        let strict = Options::from_env(&env(&[("AFTER_SCRIPT_IGNORE_ERRORS", "false")]), HOUR);
        let s = render(&[], &["true".into()], &["false".into()], &strict);
        assert!(s.driver.contains("then berth_status=$berth_after; fi"));
        assert!(!s.driver.contains("continue unaffected"));
    }

    #[test]
    fn tar_has_the_scripts() {
        let s = render(&[], &["true".into()], &["true".into()], &Options::default());
        let tar = s.to_tar().unwrap();
        let names = crate::engine::tar_entry_names(&tar);
        assert_eq!(
            names,
            vec![
                "berth/",
                "berth/driver.sh",
                "berth/step.sh",
                "berth/after.sh",
                "berth/stop.sh"
            ]
        );
    }
}
