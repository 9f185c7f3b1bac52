//! The one place that reads YAML text.
//!
//! Builds a tree of [`Node`]s that remember where they came from (line and column), so that
//! every later error can point at the user's line. The tree follows the reading GitLab gets from
//! Ruby's Psych rather than a strict YAML reader: duplicate keys are allowed (the last one wins,
//! in the first one's place), several `<<` merge keys in one mapping are applied in order, and
//! tags such as `!reference` are kept on the node for the pipeline layer to resolve.
//!
//! Aliases are copied, so a few hundred bytes of nested anchors could expand to gigabytes
//! ("billion laughs"): every node built is charged to a [`Budget`], shared by all the files of
//! a pipeline and by the later steps that copy nodes (`extends`, `!reference`, inputs), and the
//! alias that would cross it is an error, as GitLab refuses a file that is "too big".

use std::collections::HashMap;
use std::fmt;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser, Tag};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// A position in the source: 1-based line and column, and which file (an index into the
/// pipeline's [`crate::source::diag::SourceMap`]; 0 is the main pipeline file).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct Span {
    pub line: usize,
    pub col: usize,
    #[serde(skip)]
    pub file: u16,
}

impl Span {
    pub fn at(line: usize, col: usize) -> Span {
        Span { line, col, file: 0 }
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.col)
    }
}

/// A YAML value with its position and optional tag (`!reference`, ...).
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub value: Value,
    pub span: Span,
    pub tag: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A scalar as written; `plain` scalars may be null/bool/number, quoted ones are strings.
    Scalar {
        text: String,
        plain: bool,
    },
    Seq(Vec<Node>),
    Map(Vec<Entry>),
}

/// One key of a mapping. Keys are read as text: GitLab's keys are names.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub key: String,
    pub key_span: Span,
    pub value: Node,
}

/// A YAML syntax error, with the position the parser stopped at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub message: String,
    pub span: Span,
    /// The file is well-formed but too big once expanded (not "invalid YAML").
    pub too_big: bool,
}

impl Node {
    pub fn is_null(&self) -> bool {
        matches!(&self.value, Value::Scalar { text, plain: true } if is_null_text(text))
    }

    /// The text of a scalar (any scalar: GitLab turns `script: 123` into "123").
    pub fn as_scalar(&self) -> Option<&str> {
        match &self.value {
            Value::Scalar { text, .. } => Some(text),
            _ => None,
        }
    }

    /// A scalar that is a string, not null; numbers and booleans are accepted as their text.
    pub fn as_text(&self) -> Option<&str> {
        if self.is_null() {
            return None;
        }
        self.as_scalar()
    }

    pub fn as_bool(&self) -> Option<bool> {
        match &self.value {
            Value::Scalar { text, plain: true } => match text.as_str() {
                "true" | "True" | "TRUE" => Some(true),
                "false" | "False" | "FALSE" => Some(false),
                _ => None,
            },
            _ => None,
        }
    }

    pub fn as_int(&self) -> Option<i64> {
        match &self.value {
            Value::Scalar { text, plain: true } => text.parse().ok(),
            _ => None,
        }
    }

    pub fn as_seq(&self) -> Option<&[Node]> {
        match &self.value {
            Value::Seq(items) => Some(items),
            _ => None,
        }
    }

    pub fn as_map(&self) -> Option<&[Entry]> {
        match &self.value {
            Value::Map(entries) => Some(entries),
            _ => None,
        }
    }

    /// The value under `key` in a mapping.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.as_map()?
            .iter()
            .find(|e| e.key == key)
            .map(|e| &e.value)
    }

    /// The entry for `key` in a mapping (to reach the key's own span).
    pub fn entry(&self, key: &str) -> Option<&Entry> {
        self.as_map()?.iter().find(|e| e.key == key)
    }

    /// A short name of the node's kind, for "expected X, found Y" messages.
    pub fn kind(&self) -> &'static str {
        match &self.value {
            Value::Scalar { .. } if self.is_null() => "null",
            Value::Scalar { .. } if self.as_bool().is_some() => "a boolean",
            Value::Scalar { .. } if self.as_int().is_some() => "a number",
            Value::Scalar { .. } => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }
}

fn is_null_text(text: &str) -> bool {
    matches!(text, "" | "~" | "null" | "Null" | "NULL")
}

/// GitLab's default `max_yaml_depth`.
const MAX_DEPTH: usize = 100;

/// What one node costs in a [`Budget`], besides its text: about what Ruby's Psych allocates
/// for an object, which GitLab counts the same way.
pub const NODE_COST: usize = 40;

/// The most a pipeline may amount to, its includes and every alias, `extends`, `!reference`
/// and input expanded, and every job created: 64 MiB, each key and value counted as
/// [`NODE_COST`] plus its text. GitLab allows 2 MB per file by default (counted alike, before
/// `extends`) and 150 included files, so a real pipeline stays far below. At worst (aliases of
/// one-letter scalars) berth holds about 4 bytes of memory per byte counted: ~270 MB.
pub const MAX_EXPANDED: usize = 64 << 20;

/// How much of [`MAX_EXPANDED`] a pipeline has used: one per pipeline, passed to every step
/// that builds or copies nodes.
#[derive(Debug, Clone)]
pub struct Budget {
    used: usize,
    limit: usize,
}

impl Default for Budget {
    fn default() -> Self {
        Budget::with_limit(MAX_EXPANDED)
    }
}

/// A [`Budget`] ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooBig {
    pub limit: usize,
}

impl fmt::Display for TooBig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the pipeline is too big once its aliases, includes, `extends` and `!reference` are expanded (more than {} MiB counted as GitLab does)",
            self.limit >> 20
        )
    }
}

impl Budget {
    pub fn with_limit(limit: usize) -> Budget {
        Budget { used: 0, limit }
    }

    /// Spend `cost`; an error (and nothing spent) if that would cross the limit.
    pub fn charge(&mut self, cost: usize) -> Result<(), TooBig> {
        match self.used.checked_add(cost) {
            Some(used) if used <= self.limit => {
                self.used = used;
                Ok(())
            }
            _ => Err(TooBig { limit: self.limit }),
        }
    }

    /// Spent so far.
    pub fn used(&self) -> usize {
        self.used
    }
}

/// What a tree costs in a [`Budget`]: [`NODE_COST`] and the text of every node and key.
pub fn cost(node: &Node) -> usize {
    // A loop over a stack, not recursion: trees may be deep.
    let mut total = 0usize;
    let mut todo = vec![node];
    while let Some(n) = todo.pop() {
        total = total.saturating_add(own_cost(n));
        match &n.value {
            Value::Scalar { .. } => {}
            Value::Seq(items) => todo.extend(items),
            Value::Map(entries) => {
                for e in entries {
                    total = total.saturating_add(NODE_COST + e.key.len());
                    todo.push(&e.value);
                }
            }
        }
    }
    total
}

/// A node's cost without its children.
pub fn own_cost(node: &Node) -> usize {
    let text = match &node.value {
        Value::Scalar { text, .. } => text.len(),
        _ => 0,
    };
    NODE_COST + text + node.tag.as_ref().map_or(0, String::len)
}

/// Parse one YAML document into a spanned tree. An empty document is a null node.
pub fn parse(source: &str) -> Result<Node, SyntaxError> {
    let mut docs = parse_documents(source, 0)?;
    Ok(if docs.is_empty() {
        null_node(Span::at(1, 1))
    } else {
        docs.swap_remove(0)
    })
}

/// Parse one file as YAML 1.2 reads mapping keys, for readers stricter than Psych (GitHub's):
/// every key is kept as written and in order, duplicates included (the reader decides whether
/// they are errors), and `<<` is an ordinary key, not a merge. Aliases are copied as usual.
pub fn parse_documents_keeping_keys(source: &str, file: u16) -> Result<Vec<Node>, SyntaxError> {
    let mut builder = Builder {
        file,
        keep_keys: true,
        ..Builder::default()
    };
    read_events(strip_bom(source), &mut builder)?;
    if let Some(err) = builder.error {
        return Err(err);
    }
    Ok(builder.docs)
}

/// Parse every document of a file (`---` separated), its spans naming file number `file`.
pub fn parse_documents(source: &str, file: u16) -> Result<Vec<Node>, SyntaxError> {
    parse_documents_within(source, file, &mut Budget::default())
}

/// [`parse_documents`], charging what it builds (aliases expanded) to `budget`.
pub fn parse_documents_within(
    source: &str,
    file: u16,
    budget: &mut Budget,
) -> Result<Vec<Node>, SyntaxError> {
    let mut builder = Builder {
        file,
        budget: std::mem::take(budget),
        ..Builder::default()
    };
    let result = read_events(strip_bom(source), &mut builder);
    *budget = std::mem::take(&mut builder.budget);
    result?;
    if let Some(err) = builder.error {
        return Err(err);
    }
    Ok(builder.docs)
}

/// The text without a UTF-8 byte-order mark, which editors on Windows put first and GitLab
/// reads past (yaml-rust2 would make it part of the first key). Columns stay right: an editor
/// does not show the mark either.
pub fn strip_bom(text: &str) -> &str {
    text.strip_prefix('\u{feff}').unwrap_or(text)
}

fn read_events(source: &str, builder: &mut Builder) -> Result<(), SyntaxError> {
    let file = builder.file;
    let mut parser = Parser::new_from_str(source);
    // The events read in a loop rather than with `Parser::load`, which recurses once per
    // nesting level and overflows the stack on deep input (found by fuzzing).
    let mut depth = 0;
    loop {
        let (event, mark) = parser.next_token().map_err(|e| SyntaxError {
            message: e.info().to_string(),
            span: span_of(e.marker(), file),
            too_big: false,
        })?;
        match event {
            Event::SequenceStart(..) | Event::MappingStart(..) => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(SyntaxError {
                        message: format!("lists and mappings nest more than {MAX_DEPTH} deep"),
                        span: span_of(&mark, file),
                        too_big: false,
                    });
                }
            }
            Event::SequenceEnd | Event::MappingEnd => depth -= 1,
            _ => {}
        }
        let last = matches!(event, Event::StreamEnd);
        builder.on_event(event, mark);
        // The first error ends the reading: after a budget error, going on would only spend
        // time on a file that is refused anyway.
        if last || builder.error.is_some() {
            break;
        }
    }
    Ok(())
}

/// A null scalar at `span` (an empty document, a missing value).
pub fn null_node(span: Span) -> Node {
    Node {
        value: Value::Scalar {
            text: String::new(),
            plain: true,
        },
        span,
        tag: None,
    }
}

fn span_of(m: &Marker, file: u16) -> Span {
    // yaml-rust2 counts lines from 1 and columns from 0.
    Span {
        line: m.line(),
        col: m.col() + 1,
        file,
    }
}

fn tag_text(tag: Option<Tag>) -> Option<String> {
    tag.map(|t| format!("{}{}", t.handle, t.suffix))
}

/// A mapping or sequence being filled while its events arrive, and what the budget had spent
/// when it opened (so that an anchored one knows its own cost).
enum Open {
    Seq {
        node: Node,
        anchor: usize,
        spent_before: usize,
    },
    Map {
        node: Node,
        anchor: usize,
        spent_before: usize,
        pending_key: Option<(Node, bool)>,
        keys: KeyIndex,
    },
}

/// Where each key of a big mapping is, so that inserting n keys is not n² comparisons (a
/// pipeline has maps of 100,000 variables or 20,000 jobs); small maps are searched in place.
#[derive(Default)]
struct KeyIndex(Option<HashMap<String, usize>>);

/// Below this many entries a linear search is cheaper than a hash map.
const INDEX_FROM: usize = 16;

impl KeyIndex {
    fn position(&mut self, entries: &[Entry], key: &str) -> Option<usize> {
        if self.0.is_none() && entries.len() >= INDEX_FROM {
            self.0 = Some(
                entries
                    .iter()
                    .enumerate()
                    .map(|(i, e)| (e.key.clone(), i))
                    .collect(),
            );
        }
        match &self.0 {
            Some(index) => index.get(key).copied(),
            None => entries.iter().position(|e| e.key == key),
        }
    }

    fn pushed(&mut self, entries: &[Entry]) {
        if let (Some(index), Some(last)) = (&mut self.0, entries.last()) {
            index.insert(last.key.clone(), entries.len() - 1);
        }
    }
}

#[derive(Default)]
struct Builder {
    file: u16,
    stack: Vec<Open>,
    /// Each anchored node, with its cost.
    anchors: HashMap<usize, (Node, usize)>,
    docs: Vec<Node>,
    /// The current document has its root value (an empty document has none).
    has_root: bool,
    error: Option<SyntaxError>,
    budget: Budget,
    /// Keep every key as written ([`parse_documents_keeping_keys`]).
    keep_keys: bool,
}

impl Builder {
    fn push_value(&mut self, node: Node, from_alias: bool) {
        let keep_keys = self.keep_keys;
        match self.stack.last_mut() {
            None => {
                self.docs.push(node);
                self.has_root = true;
            }
            Some(Open::Seq { node: seq, .. }) => {
                if let Value::Seq(items) = &mut seq.value {
                    items.push(node);
                }
            }
            Some(Open::Map {
                node: map,
                pending_key,
                keys,
                ..
            }) => match pending_key.take() {
                None => *pending_key = Some((node, from_alias)),
                Some((key, _)) => {
                    if let Value::Map(entries) = &mut map.value {
                        let inserted = if keep_keys {
                            push_entry(entries, key, node)
                        } else {
                            insert_entry(entries, keys, key, node)
                        };
                        if let Err(e) = inserted {
                            if self.error.is_none() {
                                self.error = Some(e);
                            }
                        }
                    }
                }
            },
        }
    }
}

/// Append one `key: value` as written.
fn push_entry(entries: &mut Vec<Entry>, key: Node, value: Node) -> Result<(), SyntaxError> {
    match key.value {
        Value::Scalar { text, .. } => {
            entries.push(Entry {
                key: text,
                key_span: key.span,
                value,
            });
            Ok(())
        }
        _ => Err(SyntaxError {
            message: "a mapping key must be a plain name, not a list or a mapping".into(),
            span: key.span,
            too_big: false,
        }),
    }
}

/// Insert one `key: value` with Psych's rules: `<<` merges (a mapping or a list of them), other
/// keys replace an earlier value in its place.
fn insert_entry(
    entries: &mut Vec<Entry>,
    keys: &mut KeyIndex,
    key: Node,
    value: Node,
) -> Result<(), SyntaxError> {
    let key_text = match &key.value {
        Value::Scalar { text, .. } => text.clone(),
        _ => {
            return Err(SyntaxError {
                message: "a mapping key must be a plain name, not a list or a mapping".into(),
                span: key.span,
                too_big: false,
            })
        }
    };
    let merge = key_text == "<<" && matches!(&key.value, Value::Scalar { plain: true, .. });
    if merge {
        let merged: Vec<Entry> = match value.value {
            Value::Map(m) => m,
            Value::Seq(items) => {
                // Psych merges a list of mappings with the first one winning.
                let mut acc: Vec<Entry> = Vec::new();
                let mut acc_keys = KeyIndex::default();
                for item in items.into_iter().rev() {
                    match item.value {
                        Value::Map(m) => {
                            for e in m {
                                upsert(&mut acc, &mut acc_keys, e);
                            }
                        }
                        _ => {
                            return Err(SyntaxError {
                                message: "a `<<` merge list must contain only mappings".into(),
                                span: item.span,
                                too_big: false,
                            })
                        }
                    }
                }
                acc
            }
            _ => {
                return Err(SyntaxError {
                    message: "a `<<` merge key needs a mapping (an alias like *name)".into(),
                    span: value.span,
                    too_big: false,
                })
            }
        };
        for e in merged {
            upsert(entries, keys, e);
        }
        return Ok(());
    }
    upsert(
        entries,
        keys,
        Entry {
            key: key_text,
            key_span: key.span,
            value,
        },
    );
    Ok(())
}

fn upsert(entries: &mut Vec<Entry>, keys: &mut KeyIndex, entry: Entry) {
    match keys.position(entries, &entry.key) {
        Some(i) => entries[i].value = entry.value,
        None => {
            entries.push(entry);
            keys.pushed(entries);
        }
    }
}

impl Builder {
    /// Spend `cost` on a node at `span`; false (and the error recorded) when the budget is
    /// spent.
    fn charge(&mut self, cost: usize, span: Span) -> bool {
        match self.budget.charge(cost) {
            Ok(()) => true,
            Err(too_big) => {
                if self.error.is_none() {
                    self.error = Some(SyntaxError {
                        message: too_big.to_string(),
                        span,
                        too_big: true,
                    });
                }
                false
            }
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        if self.error.is_some() {
            return;
        }
        let span = span_of(&mark, self.file);
        match ev {
            Event::Scalar(text, style, anchor, tag) => {
                let node = Node {
                    value: Value::Scalar {
                        text,
                        plain: style == TScalarStyle::Plain,
                    },
                    span,
                    tag: tag_text(tag),
                };
                let cost = own_cost(&node);
                if !self.charge(cost, span) {
                    return;
                }
                if anchor > 0 {
                    self.anchors.insert(anchor, (node.clone(), cost));
                }
                self.push_value(node, false);
            }
            Event::SequenceStart(anchor, tag) => {
                let node = Node {
                    value: Value::Seq(Vec::new()),
                    span,
                    tag: tag_text(tag),
                };
                let spent_before = self.budget.used();
                if self.charge(own_cost(&node), span) {
                    self.stack.push(Open::Seq {
                        node,
                        anchor,
                        spent_before,
                    });
                }
            }
            Event::MappingStart(anchor, tag) => {
                let node = Node {
                    value: Value::Map(Vec::new()),
                    span,
                    tag: tag_text(tag),
                };
                let spent_before = self.budget.used();
                if self.charge(own_cost(&node), span) {
                    self.stack.push(Open::Map {
                        node,
                        anchor,
                        spent_before,
                        pending_key: None,
                        keys: KeyIndex::default(),
                    });
                }
            }
            Event::SequenceEnd | Event::MappingEnd => {
                if let Some(open) = self.stack.pop() {
                    let (node, anchor, spent_before) = match open {
                        Open::Seq {
                            node,
                            anchor,
                            spent_before,
                        } => (node, anchor, spent_before),
                        Open::Map {
                            node,
                            anchor,
                            spent_before,
                            ..
                        } => (node, anchor, spent_before),
                    };
                    if anchor > 0 {
                        let cost = self.budget.used() - spent_before;
                        self.anchors.insert(anchor, (node.clone(), cost));
                    }
                    self.push_value(node, false);
                }
            }
            // An alias is a copy: it costs what its anchor cost, checked before copying.
            Event::Alias(id) => match self.anchors.get(&id).map(|(_, cost)| *cost) {
                Some(cost) => {
                    if self.charge(cost, span) {
                        if let Some((node, _)) = self.anchors.get(&id) {
                            let node = node.clone();
                            self.push_value(node, true);
                        }
                    }
                }
                None => {
                    if self.error.is_none() {
                        self.error = Some(SyntaxError {
                            message: "alias refers to an unknown anchor".into(),
                            span,
                            too_big: false,
                        });
                    }
                }
            },
            Event::DocumentStart => {
                self.has_root = false;
                self.anchors.clear();
            }
            Event::DocumentEnd => {
                if !self.has_root {
                    self.docs.push(null_node(span));
                }
            }
            Event::Nothing | Event::StreamStart | Event::StreamEnd => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(node: &Node) -> Vec<&str> {
        node.as_map()
            .unwrap()
            .iter()
            .map(|e| e.key.as_str())
            .collect()
    }

    #[test]
    fn spans_point_at_keys_and_values() {
        let doc = parse("a: 1\nbuild job:\n  stage: test\n").unwrap();
        let entry = doc.entry("build job").unwrap();
        assert_eq!(entry.key_span, Span::at(2, 1));
        let stage = entry.value.get("stage").unwrap();
        assert_eq!(stage.as_text(), Some("test"));
        assert_eq!(stage.span, Span::at(3, 10));
    }

    #[test]
    fn two_merge_keys_apply_in_order_and_explicit_keys_stay() {
        let src = "\
.a: &a
  x: 1
  y: 1
.b: &b
  y: 2
  z: 2
job:
  <<: *a
  <<: *b
  w: 0
";
        let doc = parse(src).unwrap();
        let job = doc.get("job").unwrap();
        assert_eq!(keys(job), vec!["x", "y", "z", "w"]);
        assert_eq!(job.get("y").unwrap().as_text(), Some("2"));
    }

    #[test]
    fn merge_list_first_mapping_wins() {
        let src = ".a: &a {x: 1}\n.b: &b {x: 2, y: 2}\njob:\n  <<: [*a, *b]\n";
        let doc = parse(src).unwrap();
        let job = doc.get("job").unwrap();
        assert_eq!(job.get("x").unwrap().as_text(), Some("1"));
        assert_eq!(job.get("y").unwrap().as_text(), Some("2"));
    }

    #[test]
    fn duplicate_keys_last_wins_in_first_place() {
        let doc = parse("a: 1\nb: 2\na: 3\n").unwrap();
        assert_eq!(keys(&doc), vec!["a", "b"]);
        assert_eq!(doc.get("a").unwrap().as_text(), Some("3"));
    }

    #[test]
    fn keeping_keys_keeps_duplicates_and_does_not_merge() {
        let src = ".a: &a {x: 1}\njob:\n  <<: *a\n  y: 1\n  y: 2\n";
        let doc = parse_documents_keeping_keys(src, 0).unwrap().swap_remove(0);
        let job = doc.get("job").unwrap();
        assert_eq!(keys(job), vec!["<<", "y", "y"]);
        assert_eq!(job.as_map().unwrap()[2].key_span, Span::at(5, 3));
        assert_eq!(
            job.get("<<").unwrap().get("x").unwrap().as_text(),
            Some("1")
        );
    }

    #[test]
    fn tags_are_kept() {
        let doc = parse("job:\n  script: !reference [.setup, script]\n").unwrap();
        let script = doc.get("job").unwrap().get("script").unwrap();
        assert_eq!(script.tag.as_deref(), Some("!reference"));
        assert_eq!(script.as_seq().unwrap().len(), 2);
    }

    #[test]
    fn nulls_bools_and_quoted_strings() {
        let doc = parse("a:\nb: ~\nc: 'null'\nd: true\ne: \"true\"\n").unwrap();
        assert!(doc.get("a").unwrap().is_null());
        assert!(doc.get("b").unwrap().is_null());
        assert!(!doc.get("c").unwrap().is_null());
        assert_eq!(doc.get("d").unwrap().as_bool(), Some(true));
        assert_eq!(doc.get("e").unwrap().as_bool(), None);
    }

    #[test]
    fn syntax_error_has_position() {
        let err = parse("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(err.span.line >= 1, "{err:?}");
        assert!(!err.message.is_empty());
    }

    #[test]
    fn unknown_alias_is_an_error() {
        assert!(parse("a: *nope\n").is_err());
    }

    // Found by fuzzing pipeline::load: 20000 nested lists overflowed the stack.
    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let deepest = format!("{}x", "- ".repeat(MAX_DEPTH));
        assert!(parse(&deepest).is_ok());
        let too_deep = format!("{}x", "- ".repeat(MAX_DEPTH + 1));
        assert!(parse(&too_deep).is_err_and(|e| e.message.contains("nest more than 100 deep")));
        for deep in [
            format!("{}x", "- ".repeat(20_000)),
            "[".repeat(20_000),
            format!("a: {}", "{b: ".repeat(20_000)),
        ] {
            match parse(&deep) {
                Ok(_) => panic!("{}... parsed", &deep[..20]),
                // Flow collections (`[`, `{`) may meet yaml-rust2's own limit first.
                Err(e) => assert!(
                    e.message.contains("nest more than 100 deep")
                        || e.message.contains("recursion limit exceeded"),
                    "{e:?}"
                ),
            }
        }
    }

    #[test]
    fn every_document_is_read_and_parse_gives_the_first() {
        let node = parse("a: 1\n---\nb: 2\n").unwrap();
        assert!(node.get("a").is_some() && node.get("b").is_none());
        // A `spec:` header and its content are one file: a broken later document is an error.
        assert!(parse("a: 1\n---\nb: [\n").is_err());
    }

    #[test]
    fn empty_document_is_null() {
        assert!(parse("").unwrap().is_null());
    }

    #[test]
    fn several_documents_and_their_file() {
        let docs = parse_documents("spec:\n  inputs: {}\n---\njob:\n  script: x\n", 3).unwrap();
        assert_eq!(docs.len(), 2);
        assert!(docs[0].get("spec").is_some());
        let job = docs[1].entry("job").unwrap();
        assert_eq!(
            job.key_span,
            Span {
                line: 4,
                col: 1,
                file: 3
            }
        );
    }

    /// Ten anchors, each a list of ten aliases of the one before: 10^10 scalars once copied.
    fn laughs(levels: usize) -> String {
        let mut src = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..levels {
            let items = vec![format!("*a{}", i - 1); 10].join(", ");
            src.push_str(&format!("a{i}: &a{i} [{items}]\n"));
        }
        src
    }

    #[test]
    fn expanding_aliases_past_the_budget_is_an_error_at_the_alias() {
        // Small enough: read whole, its cost counted with every copy.
        let small = parse_documents_within(&laughs(3), 0, &mut Budget::default()).unwrap();
        let a2 = small[0].get("a2").unwrap();
        assert_eq!(a2.as_seq().unwrap()[9].as_seq().unwrap().len(), 10);
        let mut budget = Budget::default();
        parse_documents_within(&laughs(3), 0, &mut budget).unwrap();
        assert_eq!(
            budget.used(),
            cost(&small[0]),
            "the budget counts the whole tree"
        );

        let err = parse(&laughs(10)).unwrap_err();
        assert!(err.message.contains("too big"), "{err:?}");
        // a0 to a5 hold 1,111,110 scalars (45 MB counted); a6, on line 7, would add 10^7.
        assert_eq!(err.span.line, 7, "{err:?}");
    }

    #[test]
    fn the_budget_is_shared_by_the_files_that_use_it() {
        let text = "a: [x, y]\nb: {c: d}\n";
        let one = cost(&parse(text).unwrap());
        let mut budget = Budget::with_limit(2 * one);
        parse_documents_within(text, 0, &mut budget).unwrap();
        parse_documents_within(text, 1, &mut budget).unwrap();
        assert_eq!(budget.used(), 2 * one);
        let err = parse_documents_within(text, 2, &mut budget).unwrap_err();
        assert!(err.message.contains("too big"), "{err:?}");
        assert_eq!(err.span.file, 2);
    }

    #[test]
    fn a_byte_order_mark_is_not_part_of_the_first_key() {
        let doc = parse("\u{feff}stages: [a]\njob:\n  script: x\n").unwrap();
        let stages = doc.entry("stages").unwrap();
        assert_eq!(stages.key_span, Span::at(1, 1));
        assert_eq!(stages.value.span, Span::at(1, 9));
        assert_eq!(doc.entry("job").unwrap().key_span, Span::at(2, 1));
    }

    #[test]
    fn a_big_mapping_keeps_psych_rules_with_its_index() {
        let mut src: String = (0..40).map(|i| format!("k{i}: {i}\n")).collect();
        src.push_str("k3: again\nk39: last\n");
        let doc = parse(&src).unwrap();
        let entries = doc.as_map().unwrap();
        assert_eq!(entries.len(), 40);
        assert_eq!(entries[3].key, "k3");
        assert_eq!(doc.get("k3").unwrap().as_text(), Some("again"));
        assert_eq!(doc.get("k39").unwrap().as_text(), Some("last"));
        assert_eq!(entries[39].key, "k39");
    }
}
