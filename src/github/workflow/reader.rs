//! The reader's tools: GitHub's typing of YAML scalars, mappings checked for unknown and
//! repeated keys, typed fields, and the static check of expressions with their position in
//! the file.

use crate::github::expr::{self, format_number, Condition, ExprError, Scope, Value};
use crate::source::diag::Diagnostic;
use crate::source::yaml::{self, Entry, Node, Span};

use super::*;

/// A workflow read without errors, and what deserves a warning.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    pub workflow: Workflow,
    pub warnings: Vec<Diagnostic>,
}

/// Reads one workflow file (`file` is its number in the caller's `SourceMap`). On failure,
/// every error found, then the warnings.
pub fn parse(text: &str, file: u16) -> Result<Parsed, Vec<Diagnostic>> {
    let docs = match yaml::parse_documents_keeping_keys(text, file) {
        Ok(docs) => docs,
        Err(e) => {
            let message = format!("the workflow is not valid YAML: {}", e.message);
            return Err(vec![Diagnostic::error(message, Some(e.span))]);
        }
    };
    let mut reader = Reader::new(yaml::strip_bom(text));
    let workflow = match docs.as_slice() {
        [] => {
            reader.error(
                "the workflow file is empty",
                Span {
                    line: 1,
                    col: 1,
                    file,
                },
            );
            None
        }
        [root] => reader.workflow(root),
        [_, second, ..] => {
            // A block mapping's own span is not its first key's: point at the key.
            let at = second
                .as_map()
                .and_then(|m| m.first())
                .map_or(second.span, |e| e.key_span);
            reader.error(
                "a workflow file holds one YAML document; this is a second one",
                at,
            );
            None
        }
    };
    match workflow {
        Some(workflow) if reader.errors.is_empty() => Ok(Parsed {
            workflow,
            warnings: reader.warnings,
        }),
        _ => {
            let mut all = reader.errors;
            all.extend(reader.warnings);
            Err(all)
        }
    }
}

/// A YAML scalar as GitHub types it (YAML 1.2's core schema, as the runner's
/// `YamlObjectReader` matches it).
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Literal {
    Null,
    Bool(bool),
    Number(f64),
    String(String),
}

impl Literal {
    /// The text GitHub makes of it where a string is expected: null is "", numbers as the
    /// runner prints them (`3.10` is "3.1").
    pub(super) fn text(&self) -> String {
        match self {
            Literal::Null => String::new(),
            Literal::Bool(b) => b.to_string(),
            Literal::Number(n) => format_number(*n),
            Literal::String(s) => s.clone(),
        }
    }

    pub(super) fn value(self) -> Value {
        match self {
            Literal::Null => Value::Null,
            Literal::Bool(b) => Value::Bool(b),
            Literal::Number(n) => Value::Number(n),
            Literal::String(s) => Value::String(s),
        }
    }
}

fn is_str_tag(tag: &str) -> bool {
    tag == "!!str" || tag == "tag:yaml.org,2002:str"
}

/// The scalar's typed value, or `None` for a list or mapping.
pub(super) fn literal(node: &Node) -> Option<Literal> {
    let yaml::Value::Scalar { text, plain } = &node.value else {
        return None;
    };
    if !*plain || node.tag.as_deref().is_some_and(is_str_tag) {
        return Some(Literal::String(text.clone()));
    }
    Some(match text.as_str() {
        "" | "~" | "null" | "Null" | "NULL" => Literal::Null,
        "true" | "True" | "TRUE" => Literal::Bool(true),
        "false" | "False" | "FALSE" => Literal::Bool(false),
        t => match core_number(t) {
            Some(n) => Literal::Number(n),
            None => Literal::String(t.to_string()),
        },
    })
}

/// YAML 1.2 core-schema numbers: `[-+]?[0-9]+`, `0x..`, `0o..`, floats with an optional
/// exponent, `.inf` and `.nan`.
fn core_number(t: &str) -> Option<f64> {
    match t {
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => return Some(f64::INFINITY),
        "-.inf" | "-.Inf" | "-.INF" => return Some(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Some(f64::NAN),
        _ => {}
    }
    if let Some(hex) = t.strip_prefix("0x") {
        return i64::from_str_radix(hex, 16).ok().map(|n| n as f64);
    }
    if let Some(oct) = t.strip_prefix("0o") {
        return i64::from_str_radix(oct, 8).ok().map(|n| n as f64);
    }
    let body = t.strip_prefix(['-', '+']).unwrap_or(t);
    let (mantissa, exponent) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], Some(&body[i + 1..])),
        None => (body, None),
    };
    let (int, frac) = match mantissa.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (mantissa, None),
    };
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let well_formed = digits(int)
        && frac.is_none_or(digits)
        && (!int.is_empty() || frac.is_some_and(|f| !f.is_empty()))
        && exponent.is_none_or(|e| {
            let e = e.strip_prefix(['-', '+']).unwrap_or(e);
            !e.is_empty() && digits(e)
        });
    if !well_formed {
        return None;
    }
    t.parse().ok()
}

/// A YAML node as an expression value (a matrix, an input's default).
pub(super) fn to_value(node: &Node) -> Value {
    match &node.value {
        yaml::Value::Scalar { .. } => literal(node).map_or(Value::Null, Literal::value),
        yaml::Value::Seq(items) => Value::array(items.iter().map(to_value).collect()),
        yaml::Value::Map(entries) => {
            Value::object(entries.iter().map(|e| (e.key.clone(), to_value(&e.value))))
        }
    }
}

pub(super) struct Reader<'a> {
    lines: Vec<&'a str>,
    pub(super) errors: Vec<Diagnostic>,
    pub(super) warnings: Vec<Diagnostic>,
    /// The job being read, named in its messages.
    pub(super) job: Option<String>,
    /// The step being read (`step 2`), prefixed to its messages.
    pub(super) step: Option<String>,
}

/// Where a scalar's text starts relative to its node's span.
#[derive(Clone, Copy)]
enum Style {
    Plain,
    Quoted,
    Block,
}

impl<'a> Reader<'a> {
    pub(super) fn new(text: &'a str) -> Reader<'a> {
        Reader {
            lines: text.lines().collect(),
            errors: Vec::new(),
            warnings: Vec::new(),
            job: None,
            step: None,
        }
    }

    fn located(&self, message: String) -> String {
        match &self.step {
            Some(step) => format!("{step}: {message}"),
            None => message,
        }
    }

    pub(super) fn error(&mut self, message: impl Into<String>, span: Span) {
        let mut d = Diagnostic::error(self.located(message.into()), Some(span));
        d.job = self.job.clone();
        self.errors.push(d);
    }

    pub(super) fn error_help(
        &mut self,
        message: impl Into<String>,
        span: Span,
        help: impl Into<String>,
    ) {
        let mut d = Diagnostic::error(self.located(message.into()), Some(span)).with_help(help);
        d.job = self.job.clone();
        self.errors.push(d);
    }

    pub(super) fn warn(&mut self, message: impl Into<String>, span: Span) {
        let mut d = Diagnostic::warning(self.located(message.into()), Some(span));
        d.job = self.job.clone();
        self.warnings.push(d);
    }

    pub(super) fn expected(&mut self, what: &str, key: &str, node: &Node) {
        self.error(
            format!("`{key}` should be {what}, found {}", node.kind()),
            node.span,
        );
    }

    /// Tags other than YAML's own are errors on GitHub (`branches: [!main]` is the tag
    /// `!main`, not a negated pattern).
    pub(super) fn check_tags(&mut self, node: &Node) {
        let mut todo = vec![node];
        while let Some(n) = todo.pop() {
            if let Some(tag) = &n.tag {
                if !tag.starts_with("!!") && !tag.starts_with("tag:yaml.org,2002:") {
                    // yaml-rust2 places the node after its tag: find the tag on that line.
                    let line = self
                        .lines
                        .get(n.span.line.saturating_sub(1))
                        .copied()
                        .unwrap_or("");
                    let before: String = line.chars().take(n.span.col.saturating_sub(1)).collect();
                    let at = match before.rfind(tag.as_str()) {
                        Some(i) => Span {
                            col: before[..i].chars().count() + 1,
                            ..n.span
                        },
                        None => n.span,
                    };
                    self.error_help(
                        format!("unexpected tag '{tag}'"),
                        at,
                        format!("a value that starts with `!` must be quoted: '{tag}...'"),
                    );
                }
            }
            match &n.value {
                yaml::Value::Scalar { .. } => {}
                yaml::Value::Seq(items) => todo.extend(items),
                yaml::Value::Map(entries) => todo.extend(entries.iter().map(|e| &e.value)),
            }
        }
    }

    /// Errors for keys given twice, ignoring case as GitHub compares them.
    fn duplicates(&mut self, entries: &[Entry]) {
        for (i, e) in entries.iter().enumerate() {
            if entries[..i]
                .iter()
                .any(|o| o.key.eq_ignore_ascii_case(&e.key))
            {
                self.error(format!("`{}` is already defined", e.key), e.key_span);
            }
        }
    }

    /// A mapping whose keys are `keys`; anything else is an error, with the closest key
    /// suggested. A null node is an empty mapping.
    pub(super) fn map<'n>(
        &mut self,
        node: &'n Node,
        what: &str,
        keys: &[&str],
    ) -> Option<&'n [Entry]> {
        if node.is_null() {
            return Some(&[]);
        }
        let Some(entries) = node.as_map() else {
            self.error(
                format!("{what} should be a mapping, found {}", node.kind()),
                node.span,
            );
            return None;
        };
        self.duplicates(entries);
        for e in entries {
            if keys.contains(&e.key.as_str()) {
                continue;
            }
            let message = format!("unknown key `{}` in {what}", e.key);
            match closest(&e.key, keys) {
                Some(k) => self.error_help(message, e.key_span, format!("did you mean `{k}`?")),
                None if e.key == "<<" => self.error_help(
                    message,
                    e.key_span,
                    "GitHub reads anchors and aliases but not `<<` merge keys",
                ),
                None => self.error_help(
                    message,
                    e.key_span,
                    format!("{what} takes: {}", keys.join(", ")),
                ),
            }
        }
        Some(entries)
    }

    /// A mapping with keys of the user's choosing (`env`, `with`, `outputs`).
    pub(super) fn loose<'n>(&mut self, node: &'n Node, what: &str) -> Option<&'n [Entry]> {
        if node.is_null() {
            return Some(&[]);
        }
        let Some(entries) = node.as_map() else {
            self.error(
                format!("`{what}` should be a mapping, found {}", node.kind()),
                node.span,
            );
            return None;
        };
        self.duplicates(entries);
        for e in entries {
            if e.key.is_empty() {
                self.error(format!("`{what}` has an empty key"), e.key_span);
            }
        }
        Some(entries)
    }

    /// A string field: any scalar, converted as GitHub converts it (null is ""). `scope`
    /// says which contexts its expressions may use; `None` refuses expressions.
    pub(super) fn text(&mut self, node: &Node, what: &str, scope: Option<&Scope>) -> Option<Text> {
        let Some(lit) = literal(node) else {
            self.expected("a string", what, node);
            return None;
        };
        let text = lit.text();
        if matches!(lit, Literal::String(_)) {
            self.check(&text, node, what, scope);
        }
        Some(Text {
            text,
            span: node.span,
        })
    }

    /// A string field that may not be empty.
    pub(super) fn non_empty(
        &mut self,
        node: &Node,
        what: &str,
        scope: Option<&Scope>,
    ) -> Option<Text> {
        let text = self.text(node, what, scope)?;
        if text.text.is_empty() {
            self.error(format!("`{what}` may not be empty"), node.span);
            return None;
        }
        Some(text)
    }

    /// A string field without expressions, as a plain string.
    pub(super) fn name(&mut self, node: &Node, what: &str) -> Option<String> {
        self.non_empty(node, what, None).map(|t| t.text)
    }

    /// A boolean field, or an expression where `scope` allows one.
    pub(super) fn boolean(
        &mut self,
        node: &Node,
        what: &str,
        scope: Option<&Scope>,
    ) -> Option<Field<bool>> {
        match literal(node) {
            Some(Literal::Bool(b)) => Some(Field::Value(b)),
            Some(Literal::String(s)) if s.contains("${{") && scope.is_some() => {
                self.check(&s, node, what, scope);
                Some(Field::Expr(Text {
                    text: s,
                    span: node.span,
                }))
            }
            _ => {
                self.expected("a boolean (true or false)", what, node);
                None
            }
        }
    }

    /// A number field, or an expression where `scope` allows one.
    pub(super) fn number(
        &mut self,
        node: &Node,
        what: &str,
        scope: Option<&Scope>,
    ) -> Option<Field<f64>> {
        match literal(node) {
            Some(Literal::Number(n)) => Some(Field::Value(n)),
            Some(Literal::String(s)) if s.contains("${{") && scope.is_some() => {
                self.check(&s, node, what, scope);
                Some(Field::Expr(Text {
                    text: s,
                    span: node.span,
                }))
            }
            _ => {
                self.expected("a number", what, node);
                None
            }
        }
    }

    /// One non-empty string or a list of them.
    pub(super) fn strings(&mut self, node: &Node, what: &str, scope: Option<&Scope>) -> Vec<Text> {
        match node.as_seq() {
            Some(items) => items
                .iter()
                .filter_map(|i| self.non_empty(i, what, scope))
                .collect(),
            None if node.as_map().is_some() => {
                self.expected("a string or a list of strings", what, node);
                Vec::new()
            }
            None => self.non_empty(node, what, scope).into_iter().collect(),
        }
    }

    /// A list of non-empty strings.
    pub(super) fn list(&mut self, node: &Node, what: &str, scope: Option<&Scope>) -> Vec<Text> {
        match node.as_seq() {
            Some(items) => items
                .iter()
                .filter_map(|i| self.non_empty(i, what, scope))
                .collect(),
            None => {
                self.expected("a list of strings", what, node);
                Vec::new()
            }
        }
    }

    /// `env:`-like mappings of strings.
    pub(super) fn env(&mut self, node: &Node, what: &str, scope: Option<&Scope>) -> Env {
        let Some(entries) = self.loose(node, what) else {
            return Vec::new();
        };
        entries
            .iter()
            .filter_map(|e| {
                let value = self.text(&e.value, &format!("{what}: {}", e.key), scope)?;
                Some((e.key.clone(), value))
            })
            .collect()
    }

    /// Checks the `${{ }}` of a string field statically; each error is placed at its
    /// line and column in the file.
    pub(super) fn check(&mut self, text: &str, node: &Node, what: &str, scope: Option<&Scope>) {
        let Some(scope) = scope else {
            if let Ok(spans) = expr::find_expressions(text) {
                if let Some(first) = spans.first() {
                    let at = self.place(node, text, first.open);
                    self.error(
                        format!("`{what}` does not take expressions (`${{{{ }}}}`)"),
                        at,
                    );
                }
            }
            return;
        };
        for e in expr::check(text, scope) {
            let at = self.place(node, text, e.offset);
            self.error(format!("`{what}`: {}", e.kind), at);
        }
    }

    /// Checks an `if:` condition (a string that is an expression even without `${{ }}`).
    pub(super) fn condition(&mut self, node: &Node, what: &str, scope: &Scope) -> Option<Text> {
        let Some(lit) = literal(node) else {
            self.expected("an expression", what, node);
            return None;
        };
        let text = lit.text();
        if let Err(e) = Condition::parse(&text, scope) {
            self.expression_error(node, &text, what, &e);
        }
        Some(Text {
            text,
            span: node.span,
        })
    }

    fn expression_error(&mut self, node: &Node, text: &str, what: &str, e: &ExprError) {
        let at = self.place(node, text, e.offset);
        self.error(format!("`{what}`: {}", e.kind), at);
    }

    /// The file position of byte `offset` of a scalar's value. Plain one-line scalars map
    /// exactly, quoted ones too unless an escape comes before the offset; literal block
    /// scalars (`|`) map by line, each content line's indentation read from the file; a
    /// folded (`>`) or multi-line flow scalar may be off by the folding.
    pub(super) fn place(&self, node: &Node, text: &str, offset: usize) -> Span {
        let offset = offset.min(text.len());
        let before = text.get(..offset).unwrap_or(text);
        let line_index = before.matches('\n').count();
        let col_in_line = before.rsplit('\n').next().unwrap_or("").chars().count();
        let start = node.span;
        let first = self
            .lines
            .get(start.line.saturating_sub(1))
            .copied()
            .unwrap_or("");
        let style = match first.chars().nth(start.col.saturating_sub(1)) {
            Some('\'' | '"') => Style::Quoted,
            Some('|' | '>') => Style::Block,
            _ => Style::Plain,
        };
        match style {
            Style::Plain if line_index == 0 => Span {
                col: start.col + col_in_line,
                ..start
            },
            Style::Quoted if line_index == 0 => Span {
                col: start.col + 1 + col_in_line,
                ..start
            },
            Style::Block => {
                let line = start.line + 1 + line_index;
                let indent = self
                    .lines
                    .get(line - 1)
                    .map_or(0, |l| l.chars().take_while(|c| *c == ' ').count());
                Span {
                    line,
                    col: indent + 1 + col_in_line,
                    ..start
                }
            }
            // A later line of a multi-line scalar; yaml-rust2 places a block scalar (`|`,
            // `>`) at its first content line, so this is the block case too.
            _ => {
                let line = start.line + line_index;
                let indent = self
                    .lines
                    .get(line - 1)
                    .map_or(0, |l| l.chars().take_while(|c| *c == ' ').count());
                Span {
                    line,
                    col: indent + 1 + col_in_line,
                    ..start
                }
            }
        }
    }
}

/// The key of `keys` within two edits of `key`, for "did you mean".
fn closest<'k>(key: &str, keys: &[&'k str]) -> Option<&'k str> {
    keys.iter()
        .map(|k| (distance(key, k), *k))
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Levenshtein distance, case-insensitive.
fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.to_lowercase().chars().collect();
    let b: Vec<char> = b.to_lowercase().chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = if ca == cb {
                prev
            } else {
                1 + prev.min(row[j]).min(row[j + 1])
            };
            prev = cur;
        }
    }
    row[b.len()]
}
