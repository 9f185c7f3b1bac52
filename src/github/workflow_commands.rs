//! Workflow commands a step prints on its output (`::add-mask::secret`, `::group::Title`,
//! `::error file=app.py,line=3::message`), read as the runner's `ActionCommandManager` reads
//! them, and what they do: [`Commands`] is a job's reader, behind the engine's
//! [`OutputFilter`] seam, so that the engine knows no format.
//!
//! - `add-mask` masks its value from then on (in the job's log, events and record); `group`
//!   shows a header line `▸ TITLE` and `endgroup` nothing; `error`, `warning` and `notice`
//!   show `Error: file:line:col: title: message` and are gathered for the job's summary;
//!   `debug` shows only when the secret or variable `ACTIONS_STEP_DEBUG` is `true`, as on
//!   GitHub; `echo::on` shows the command lines themselves.
//! - `stop-commands::TOKEN` stops reading commands until a line `::TOKEN::`, for the rest of the
//!   job (the runner's state is the job's, not the step's).
//! - `set-output` (and `save-state`) still work, with GitHub's deprecation warning; `set-env`
//!   and `add-path` fail their step as on GitHub, unless `ACTIONS_ALLOW_UNSECURE_COMMANDS` is
//!   `true` in the step's environment.
//! - Only the commands the runner knows are commands; any other `::name::` line is output.

use std::sync::{Arc, Mutex};

use crate::pipeline::steps::{Filtered, OutputFilter};

/// The commands the runner knows (`_registeredCommands`).
const KNOWN: &[&str] = &[
    "add-mask",
    "add-matcher",
    "add-path",
    "debug",
    "echo",
    "endgroup",
    "error",
    "group",
    "notice",
    "remove-matcher",
    "save-state",
    "set-env",
    "set-output",
    "stop-commands",
    "warning",
];

const SET_ENV_DISABLED: &str = "The `set-env` command is disabled. Please upgrade to using Environment Files or opt into unsecure command execution by setting the `ACTIONS_ALLOW_UNSECURE_COMMANDS` environment variable to `true`. For more information see: https://github.blog/changelog/2020-10-01-github-actions-deprecating-set-env-and-add-path-commands/";

fn deprecated(command: &str) -> String {
    format!("The `{command}` command is deprecated and will be disabled soon. Please upgrade to using Environment Files. For more information see: https://github.blog/changelog/2022-10-11-github-actions-deprecating-save-state-and-set-output-commands/")
}

/// One command: `::name key=value,key=value::data`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkflowCommand {
    /// Lower case: `add-mask`, `group`, `endgroup`, `error`, `warning`, `notice`, `debug`,
    /// `set-output`, `save-state`, `echo`, `stop-commands`...
    pub name: String,
    /// `file`, `line`, `col`, `endLine`, `title`... unescaped, in order.
    pub properties: Vec<(String, String)>,
    /// The text after the second `::`, unescaped.
    pub data: String,
}

impl WorkflowCommand {
    /// A property by its case-insensitive key; the last one given wins, as in the runner.
    pub fn property(&self, key: &str) -> Option<&str> {
        self.properties
            .iter()
            .rev()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }

    /// `error`, `warning` and `notice` make annotations.
    pub fn is_annotation(&self) -> bool {
        matches!(self.name.as_str(), "error" | "warning" | "notice")
    }
}

/// Reads one output line; `None` when it is not one of the commands the runner knows.
/// Leading whitespace is allowed, as the runner trims it.
pub fn parse_line(line: &str) -> Option<WorkflowCommand> {
    parse_named(line, |name| {
        KNOWN.iter().any(|k| k.eq_ignore_ascii_case(name))
    })
}

/// [`parse_line`] for the names `known` accepts.
fn parse_named(line: &str, known: impl Fn(&str) -> bool) -> Option<WorkflowCommand> {
    let line = line.trim_start().trim_end_matches(['\r', '\n']);
    let rest = line.strip_prefix("::")?;
    let end = rest.find("::")?;
    let (head, data) = (&rest[..end], &rest[end + 2..]);
    let (name, props) = match head.find(' ') {
        Some(i) => (&head[..i], head[i + 1..].trim()),
        None => (head, ""),
    };
    if name.is_empty() || !known(name) {
        return None;
    }
    // Pairs without a key or a value are left out, as the runner leaves them.
    let properties = props
        .split(',')
        .filter_map(|pair| pair.split_once('='))
        .filter(|(k, v)| !k.is_empty() && !v.is_empty())
        .map(|(k, v)| (k.to_string(), unescape_property(v)))
        .collect();
    Some(WorkflowCommand {
        name: name.to_ascii_lowercase(),
        properties,
        data: unescape_data(data),
    })
}

fn unescape_data(s: &str) -> String {
    s.replace("%0D", "\r")
        .replace("%0A", "\n")
        .replace("%25", "%")
}

fn unescape_property(s: &str) -> String {
    s.replace("%0D", "\r")
        .replace("%0A", "\n")
        .replace("%3A", ":")
        .replace("%2C", ",")
        .replace("%25", "%")
}

/// Reads a step's output line by line, honouring `::stop-commands::TOKEN` (no command is
/// read until the line `::TOKEN::`).
#[derive(Debug, Clone, Default)]
pub struct Parser {
    /// `Some`: stopped, until this token (an empty one never comes, as in the runner).
    stopped_until: Option<String>,
}

/// A line, as [`Parser`] reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// Output (not a command, or commands are stopped).
    Output,
    /// `::stop-commands::` or the token that resumes: shown as printed, as the runner does.
    Toggle,
    Command(WorkflowCommand),
}

impl Parser {
    pub fn new() -> Parser {
        Parser::default()
    }

    /// What this line is.
    pub fn read(&mut self, line: &str) -> Line {
        if let Some(token) = &self.stopped_until {
            let resumes = !token.is_empty()
                && parse_named(line, |name| name.eq_ignore_ascii_case(token)).is_some();
            if resumes {
                self.stopped_until = None;
                return Line::Toggle;
            }
            return Line::Output;
        }
        match parse_line(line) {
            None => Line::Output,
            Some(c) if c.name == "stop-commands" => {
                self.stopped_until = Some(c.data);
                Line::Toggle
            }
            Some(c) => Line::Command(c),
        }
    }

    /// The command on this line, if any and if commands are not stopped.
    pub fn feed(&mut self, line: &str) -> Option<WorkflowCommand> {
        match self.read(line) {
            Line::Command(c) => Some(c),
            Line::Output | Line::Toggle => None,
        }
    }
}

/// An annotation a step made (`::error file=app.py,line=3,title=T::message`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Annotation {
    /// `error`, `warning` or `notice`.
    pub level: String,
    /// `file:line:col` (as much as was given), the file relative to the workspace.
    pub location: Option<String>,
    pub title: Option<String>,
    pub message: String,
}

impl Annotation {
    fn new(level: &str, message: String) -> Annotation {
        Annotation {
            level: level.to_string(),
            location: None,
            title: None,
            message,
        }
    }

    fn of(command: &WorkflowCommand, workspace: &str) -> Annotation {
        let prop = |k: &str| command.property(k).filter(|v| !v.trim().is_empty());
        let location = prop("file").map(|file| {
            let file = file
                .strip_prefix(workspace)
                .and_then(|f| f.strip_prefix('/'))
                .unwrap_or(file);
            let mut at = file.to_string();
            if let Some(line) = prop("line").or(prop("endLine")) {
                at.push_str(&format!(":{line}"));
                if let Some(col) = prop("col").or(prop("endColumn")) {
                    at.push_str(&format!(":{col}"));
                }
            }
            at
        });
        Annotation {
            level: command.name.clone(),
            location,
            title: prop("title").map(String::from),
            message: command.data.clone(),
        }
    }

    /// `Error: app.py:3:5: Title: message`; a message of several lines on as many.
    pub fn render(&self) -> String {
        let mut level = self.level.clone();
        if let Some(first) = level.get_mut(..1) {
            first.make_ascii_uppercase();
        }
        let mut out = format!("{level}: ");
        for part in [&self.location, &self.title].into_iter().flatten() {
            out.push_str(part);
            out.push_str(": ");
        }
        out.push_str(&self.message);
        out
    }
}

/// What the commands of one step did, for the step's end.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StepEffects {
    /// `set-output`.
    pub outputs: Vec<(String, String)>,
    /// `set-env` and `add-path`, where unsecure commands are allowed.
    pub env: Vec<(String, String)>,
    pub paths: Vec<String>,
    /// A command that could not be processed fails its step, as on GitHub.
    pub failure: Option<String>,
}

/// A job's workflow commands: shared between the job's run (which reads each step's effects
/// and the annotations) and the filter over each step's output.
#[derive(Debug, Default)]
pub struct Commands {
    parser: Parser,
    /// `ACTIONS_STEP_DEBUG`: `debug` lines are shown.
    debug: bool,
    workspace: String,
    /// The step whose output is read, and its settings.
    step: String,
    allow_unsecure: bool,
    echo: bool,
    warned: Vec<&'static str>,
    effects: StepEffects,
    /// Every step's annotations so far, with the step's name.
    annotations: Vec<(String, Annotation)>,
}

impl Commands {
    pub fn new(debug: bool, workspace: &str) -> Commands {
        Commands {
            debug,
            workspace: workspace.to_string(),
            ..Commands::default()
        }
    }

    /// A new step begins to print; `allow_unsecure`: `ACTIONS_ALLOW_UNSECURE_COMMANDS` is true
    /// in its environment.
    pub fn begin_step(&mut self, name: &str, allow_unsecure: bool) {
        self.step = name.to_string();
        self.allow_unsecure = allow_unsecure;
        self.echo = self.debug;
        self.warned.clear();
        self.effects = StepEffects::default();
    }

    /// What the step's commands did.
    pub fn end_step(&mut self) -> StepEffects {
        std::mem::take(&mut self.effects)
    }

    /// Each annotation as the job's summary lists it: `Error in `step`: ...`.
    pub fn summary(&self) -> Vec<String> {
        self.annotations
            .iter()
            .map(|(step, a)| {
                let rendered = a.render();
                let (level, rest) = rendered.split_once(": ").unwrap_or(("", &rendered));
                format!("{level} in `{step}`: {rest}")
            })
            .collect()
    }

    fn annotate(&mut self, annotation: Annotation, shown: &mut Vec<String>) {
        shown.extend(annotation.render().lines().map(String::from));
        self.annotations.push((self.step.clone(), annotation));
    }

    fn fail(&mut self, line: &str, command: &str, why: String, shown: &mut Vec<String>) {
        let what = format!("Unable to process command '{line}' successfully.");
        self.annotate(Annotation::new("error", what), shown);
        self.annotate(Annotation::new("error", why.clone()), shown);
        if self.effects.failure.is_none() {
            self.effects.failure = Some(format!("`::{command}::`: {why}"));
        }
    }

    fn warn_once(&mut self, command: &'static str, shown: &mut Vec<String>) {
        if !self.warned.contains(&command) {
            self.warned.push(command);
            self.annotate(Annotation::new("warning", deprecated(command)), shown);
        }
    }

    /// One line of the step's output.
    pub fn line(&mut self, line: &str) -> Filtered {
        let command = match self.parser.read(line) {
            Line::Output | Line::Toggle => return Filtered::default(),
            Line::Command(c) => c,
        };
        let mut shown = Vec::new();
        let mut masks = Vec::new();
        // The runner shows these command lines themselves under `::echo::on`.
        let omit_echo = matches!(
            command.name.as_str(),
            "add-mask" | "debug" | "error" | "warning" | "notice"
        );
        if self.echo && !omit_echo {
            shown.push(line.trim_start().to_string());
        }
        let name = command.property("name").filter(|n| !n.is_empty());
        match command.name.as_str() {
            "add-mask" if command.data.trim().is_empty() => {
                let why = "Can't add secret mask for empty string in ##[add-mask] command.";
                self.annotate(Annotation::new("warning", why.to_string()), &mut shown);
            }
            "add-mask" => {
                if self.echo {
                    shown.push("::add-mask::***".to_string());
                }
                masks.push(command.data.clone());
            }
            "group" => shown.push(format!("▸ {}", command.data)),
            "endgroup" => {}
            "error" | "warning" | "notice" => {
                let annotation = Annotation::of(&command, &self.workspace);
                self.annotate(annotation, &mut shown);
            }
            "debug" if self.debug => {
                shown.extend(command.data.lines().map(|l| format!("Debug: {l}")));
            }
            "debug" => {}
            "echo" => match command.data.trim().to_ascii_lowercase().as_str() {
                "on" => self.echo = true,
                "off" => self.echo = false,
                _ => {
                    let why = format!("Invalid echo command value. Possible values can be: 'on', 'off'. Current value is: '{}'.", command.data);
                    self.fail(line.trim(), "echo", why, &mut shown);
                }
            },
            "set-output" | "save-state" => {
                let which = if command.name == "set-output" {
                    "set-output"
                } else {
                    "save-state"
                };
                match name {
                    None => {
                        let why =
                            format!("Required field 'name' is missing in ##[{which}] command.");
                        self.fail(line.trim(), which, why, &mut shown);
                    }
                    Some(name) => {
                        self.warn_once(which, &mut shown);
                        // State is for an action's post step: berth's built-in ones have none.
                        if which == "set-output" {
                            let name = name.to_string();
                            self.effects.outputs.retain(|(k, _)| *k != name);
                            self.effects.outputs.push((name, command.data.clone()));
                        }
                    }
                }
            }
            "set-env" | "add-path" if !self.allow_unsecure => {
                let why = SET_ENV_DISABLED.replace("`set-env`", &format!("`{}`", command.name));
                let which = if command.name == "set-env" {
                    "set-env"
                } else {
                    "add-path"
                };
                self.fail(line.trim(), which, why, &mut shown);
            }
            "set-env" => match name {
                None => {
                    let why =
                        "Required field 'name' is missing in ##[set-env] command.".to_string();
                    self.fail(line.trim(), "set-env", why, &mut shown);
                }
                Some(name) => self
                    .effects
                    .env
                    .push((name.to_string(), command.data.clone())),
            },
            "add-path" => self.effects.paths.push(command.data.clone()),
            // Problem matchers read a file of patterns berth does not apply yet.
            _ => shown.push(format!(
                "berth: `::{}::` (problem matchers) is not supported yet: ignored",
                command.name
            )),
        }
        Filtered {
            shown: Some(shown),
            masks,
        }
    }
}

/// The filter over one step's output, for the engine.
#[derive(Debug, Clone)]
pub struct StepFilter(pub Arc<Mutex<Commands>>);

impl OutputFilter for StepFilter {
    fn line(&mut self, line: &str) -> Filtered {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).line(line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_with_properties_and_escapes_are_read() {
        let c = parse_line("::error file=app.py,line=3,title=A%2C B::bad%0Athing 100%25")
            .expect("a command");
        assert_eq!(c.name, "error");
        assert_eq!(c.property("file"), Some("app.py"));
        assert_eq!(c.property("LINE"), Some("3"));
        assert_eq!(c.property("title"), Some("A, B"));
        assert_eq!(c.data, "bad\nthing 100%");
        assert!(c.is_annotation());

        let m = parse_line("  ::add-mask::s3cret").expect("a command");
        assert_eq!((m.name.as_str(), m.data.as_str()), ("add-mask", "s3cret"));
        assert!(m.properties.is_empty());
        let g = parse_line("::group::Install deps").expect("a command");
        assert_eq!(
            (g.name.as_str(), g.data.as_str()),
            ("group", "Install deps")
        );
        assert_eq!(
            parse_line("::endgroup::").map(|c| c.name),
            Some("endgroup".into())
        );
    }

    #[test]
    fn ordinary_lines_are_not_commands() {
        for line in ["hello", ":: no name", "::error", "echo ::error::x", "::::x"] {
            assert_eq!(parse_line(line), None, "{line:?}");
        }
    }

    #[test]
    fn stop_commands_stops_until_its_token() {
        let mut p = Parser::new();
        assert_eq!(p.feed("::stop-commands::tok42"), None);
        assert_eq!(p.feed("::error::ignored"), None);
        assert_eq!(p.feed("::tok42::"), None);
        assert_eq!(
            p.feed("::warning::seen").map(|c| c.data),
            Some("seen".into())
        );
    }

    #[test]
    fn only_the_runners_commands_are_read_and_stray_pairs_are_left_out() {
        assert_eq!(parse_line("::frobnicate::x"), None);
        assert_eq!(
            parse_line("::ERROR::x").map(|c| c.name),
            Some("error".into())
        );
        let c = parse_line("::error file=a.py,junk,=v,k=,line=2,line=9::m").expect("a command");
        assert_eq!(
            c.properties,
            [
                ("file".to_string(), "a.py".to_string()),
                ("line".into(), "2".into()),
                ("line".into(), "9".into())
            ]
        );
        // The last of a repeated key wins, as in the runner's dictionary.
        assert_eq!(c.property("line"), Some("9"));
    }

    #[test]
    fn data_and_properties_are_unescaped_as_the_runner_does() {
        // In data, `%3A` and `%2C` stay; `%25` is unescaped last, so `%250A` is `%0A`.
        let c = parse_line("::notice title=x%3Ay%2Cz%0Aw%25::a%3Ab%2C %250A%0D%0Aend")
            .expect("a command");
        assert_eq!(c.property("title"), Some("x:y,z\nw%"));
        assert_eq!(c.data, "a%3Ab%2C %0A\r\nend");
    }

    fn shown(c: &mut Commands, line: &str) -> (Option<Vec<String>>, Vec<String>) {
        let f = c.line(line);
        (f.shown, f.masks)
    }

    #[test]
    fn masks_groups_and_annotations_are_what_the_log_shows() {
        let mut c = Commands::new(false, "/work/ws");
        c.begin_step("Run lint", false);
        assert_eq!(shown(&mut c, "plain"), (None, vec![]));
        assert_eq!(
            shown(&mut c, "::add-mask::s3cret"),
            (Some(vec![]), vec!["s3cret".to_string()])
        );
        assert_eq!(
            shown(&mut c, "::group::Install deps"),
            (Some(vec!["▸ Install deps".to_string()]), vec![])
        );
        assert_eq!(shown(&mut c, "::endgroup::"), (Some(vec![]), vec![]));
        assert_eq!(
            shown(
                &mut c,
                "::error file=/work/ws/app.py,line=3,col=5,title=Bad::no%0Agood"
            )
            .0,
            Some(vec![
                "Error: app.py:3:5: Bad: no".to_string(),
                "good".to_string()
            ])
        );
        assert_eq!(
            shown(&mut c, "::warning::careful").0,
            Some(vec!["Warning: careful".to_string()])
        );
        // `debug` only with ACTIONS_STEP_DEBUG.
        assert_eq!(shown(&mut c, "::debug::details").0, Some(vec![]));
        let mut d = Commands::new(true, "/w");
        d.begin_step("s", false);
        assert_eq!(
            shown(&mut d, "::debug::details").0,
            Some(vec!["Debug: details".to_string()])
        );
        assert_eq!(
            c.summary(),
            [
                "Error in `Run lint`: app.py:3:5: Bad: no\ngood",
                "Warning in `Run lint`: careful"
            ]
        );
        assert_eq!(c.end_step(), StepEffects::default());
    }

    #[test]
    fn stopped_commands_are_output_until_the_token() {
        let mut c = Commands::new(false, "/w");
        c.begin_step("s", false);
        // The toggles themselves are shown as printed, as the runner shows them.
        assert_eq!(shown(&mut c, "::stop-commands::tok42"), (None, vec![]));
        assert_eq!(shown(&mut c, "::add-mask::x"), (None, vec![]));
        assert_eq!(shown(&mut c, "::tok42::"), (None, vec![]));
        assert_eq!(shown(&mut c, "::add-mask::x").1, ["x"]);
    }

    #[test]
    fn set_output_works_with_a_warning_and_set_env_fails_its_step() {
        let mut c = Commands::new(false, "/w");
        c.begin_step("s", false);
        let (lines, _) = shown(&mut c, "::set-output name=answer::42");
        assert!(lines.unwrap()[0].starts_with("Warning: The `set-output` command is deprecated"));
        // Warned once a step.
        assert_eq!(
            shown(&mut c, "::set-output name=answer::43").0,
            Some(vec![])
        );
        let (lines, _) = shown(&mut c, "::set-env name=X::1");
        let lines = lines.unwrap();
        assert_eq!(
            lines[0],
            "Error: Unable to process command '::set-env name=X::1' successfully."
        );
        assert!(
            lines[1].starts_with("Error: The `set-env` command is disabled."),
            "{lines:?}"
        );
        let effects = c.end_step();
        assert_eq!(effects.outputs, [("answer".to_string(), "43".to_string())]);
        assert!(effects.env.is_empty());
        assert!(effects
            .failure
            .unwrap()
            .starts_with("`::set-env::`: The `set-env` command is disabled"));
        // ACTIONS_ALLOW_UNSECURE_COMMANDS: as GitHub did before it disabled them.
        c.begin_step("t", true);
        assert_eq!(shown(&mut c, "::set-env name=X::1").0, Some(vec![]));
        assert_eq!(shown(&mut c, "::add-path::/opt/bin").0, Some(vec![]));
        let effects = c.end_step();
        assert_eq!(effects.env, [("X".to_string(), "1".to_string())]);
        assert_eq!(effects.paths, ["/opt/bin"]);
        assert_eq!(effects.failure, None);
    }

    #[test]
    fn echo_on_shows_the_command_lines_but_never_a_mask() {
        let mut c = Commands::new(false, "/w");
        c.begin_step("s", false);
        assert_eq!(shown(&mut c, "::echo::on").0, Some(vec![]));
        assert_eq!(
            shown(&mut c, "::group::G").0,
            Some(vec!["::group::G".to_string(), "▸ G".to_string()])
        );
        assert_eq!(
            shown(&mut c, "::add-mask::pw").0,
            Some(vec!["::add-mask::***".to_string()])
        );
        // Echo is the step's: off again in the next.
        c.begin_step("t", false);
        assert_eq!(shown(&mut c, "::group::G").0, Some(vec!["▸ G".to_string()]));
    }
}
