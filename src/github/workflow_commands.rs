//! Workflow commands a step prints on its output (`::add-mask::secret`, `::group::Title`,
//! `::error file=app.py,line=3::message`), read as the runner's `ActionCommand` reads them.
//! The engine feeds the output lines of a step here: masks, groups and annotations are its
//! business (the log and the summary); [`Parser`] also follows `::stop-commands::TOKEN`.

/// One command: `::name key=value,key=value::data`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkflowCommand {
    /// As written, lower case: `add-mask`, `group`, `endgroup`, `error`, `warning`,
    /// `notice`, `debug`, `set-output`, `save-state`, `echo`, `stop-commands`...
    pub name: String,
    /// `file`, `line`, `col`, `endLine`, `title`... unescaped, in order.
    pub properties: Vec<(String, String)>,
    /// The text after the second `::`, unescaped.
    pub data: String,
}

impl WorkflowCommand {
    pub fn property(&self, key: &str) -> Option<&str> {
        self.properties
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }

    /// `error`, `warning` and `notice` make annotations.
    pub fn is_annotation(&self) -> bool {
        matches!(self.name.as_str(), "error" | "warning" | "notice")
    }
}

/// Reads one output line; `None` when it is not a workflow command. Leading whitespace is
/// allowed, as the runner trims it.
pub fn parse_line(line: &str) -> Option<WorkflowCommand> {
    let line = line.trim_start().trim_end_matches(['\r', '\n']);
    let rest = line.strip_prefix("::")?;
    let end = rest.find("::")?;
    let (head, data) = (&rest[..end], &rest[end + 2..]);
    let (name, props) = match head.find(' ') {
        Some(i) => (&head[..i], head[i + 1..].trim()),
        None => (head, ""),
    };
    if name.is_empty() {
        return None;
    }
    let mut properties = Vec::new();
    for pair in props.split(',').filter(|p| !p.trim().is_empty()) {
        let (k, v) = pair.split_once('=')?;
        properties.push((k.trim().to_string(), unescape_property(v)));
    }
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
    stopped_until: Option<String>,
}

impl Parser {
    pub fn new() -> Parser {
        Parser::default()
    }

    /// The command on this line, if any and if commands are not stopped.
    pub fn feed(&mut self, line: &str) -> Option<WorkflowCommand> {
        if let Some(token) = &self.stopped_until {
            if line.trim() == format!("::{token}::") {
                self.stopped_until = None;
            }
            return None;
        }
        let command = parse_line(line)?;
        if command.name == "stop-commands" && !command.data.is_empty() {
            self.stopped_until = Some(command.data.clone());
            return None;
        }
        Some(command)
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
}
