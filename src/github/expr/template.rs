//! Strings with `${{ }}` in them, and `if:` conditions, read as the runner's `TemplateReader`
//! and workflow converter read them.

use super::error::{ErrorKind, ExprError};
use super::eval::{Contexts, Host};
use super::parser::{Expr, Scope, Status};
use super::value::Value;

/// A workflow string split into literal text and `${{ }}` expressions.
#[derive(Debug, Clone)]
pub struct Template {
    segments: Vec<Segment>,
    /// The string as written, to give evaluation errors their columns in it.
    text: String,
}

#[derive(Debug, Clone)]
enum Segment {
    Text(String),
    Expr {
        expr: Expr,
        /// Byte offset of the expression's text (trimmed) in the template string, to place
        /// evaluation errors.
        start: usize,
    },
}

/// Where one `${{ ... }}` sits in a string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// Offset of `${{`.
    pub open: usize,
    /// Offset just past `}}`.
    pub close: usize,
}

/// Finds the `${{ }}` spans of `text`. The closing `}}` is the first outside a single-quoted
/// string, so `${{ '}}' }}` is one expression (a quote toggles "inside a string", which also
/// handles `''` escapes). A `${{` without its `}}` is an error at the `${{`.
pub fn find_expressions(text: &str) -> Result<Vec<Span>, ExprError> {
    let b = text.as_bytes();
    let mut spans = Vec::new();
    let mut from = 0;
    while let Some(j) = text[from..].find("${{") {
        let open = from + j;
        let mut in_string = false;
        let mut close = None;
        let mut i = open + 3;
        while i < b.len() {
            match b[i] {
                b'\'' => in_string = !in_string,
                // `}}` counts from the third brace's neighbour on, as the runner's check of the
                // previous character does (`${{}}` is empty, not unclosed).
                b'}' if !in_string && b[i - 1] == b'}' && i > open + 3 => {
                    close = Some(i + 1);
                    break;
                }
                _ => {}
            }
            i += 1;
        }
        let Some(close) = close else {
            return Err(ExprError::new(open, ErrorKind::UnclosedExpression).located_in(text));
        };
        spans.push(Span { open, close });
        from = close;
    }
    Ok(spans)
}

/// The expression inside a span, trimmed, and its offset in the text.
fn inner(text: &str, span: Span) -> (&str, usize) {
    let raw = &text[span.open + 3..span.close - 2];
    let trimmed = raw.trim_start();
    let start = span.open + 3 + (raw.len() - trimmed.len());
    (trimmed.trim_end(), start)
}

impl Template {
    /// Parses every `${{ }}` of `text` against `scope`; the first error is returned with its
    /// offset and column in `text`.
    pub fn parse(text: &str, scope: &Scope) -> Result<Template, ExprError> {
        let mut segments = Vec::new();
        let mut at = 0;
        for span in find_expressions(text)? {
            if span.open > at {
                segments.push(Segment::Text(text[at..span.open].to_string()));
            }
            let (source, start) = inner(text, span);
            let expr = parse_inner(text, span, source, start, scope)?;
            segments.push(Segment::Expr { expr, start });
            at = span.close;
        }
        if at < text.len() || segments.is_empty() {
            segments.push(Segment::Text(text[at..].to_string()));
        }
        Ok(Template {
            segments,
            text: text.to_string(),
        })
    }

    /// Whether any expression of the string calls a status function.
    pub fn uses_status_function(&self) -> bool {
        self.segments
            .iter()
            .any(|s| matches!(s, Segment::Expr { expr, .. } if expr.uses_status_function()))
    }

    /// Whether the string holds no expression at all.
    pub fn is_literal(&self) -> bool {
        self.segments.iter().all(|s| matches!(s, Segment::Text(_)))
    }

    /// The string's value: a string that is exactly one `${{ }}` gives the expression's value
    /// itself (an object, a number...), which is how `strategy.matrix: ${{ fromJSON(...) }}`
    /// works; anything else is text, each expression converted to a string (null as empty,
    /// arrays and objects as `Array` and `Object`, as GitHub's `format` does).
    pub fn evaluate(&self, contexts: &Contexts, host: &dyn Host) -> Result<Value, ExprError> {
        if let [Segment::Expr { expr, start }] = self.segments.as_slice() {
            return expr
                .evaluate(contexts, host)
                .map_err(|e| e.shifted(*start, &self.text));
        }
        self.evaluate_text(contexts, host).map(Value::String)
    }

    /// The string's value for a field that takes a string (`run`, `name`, `env` values, `with`
    /// inputs): as [`Template::evaluate`], null as "", but a lone expression that gives an
    /// array or object is an error, as on GitHub ("Expected a string").
    pub fn evaluate_string(
        &self,
        contexts: &Contexts,
        host: &dyn Host,
    ) -> Result<String, ExprError> {
        if let [Segment::Expr { expr, start }] = self.segments.as_slice() {
            let value = expr
                .evaluate(contexts, host)
                .map_err(|e| e.shifted(*start, &self.text))?;
            if !value.is_primitive() {
                let kind = ErrorKind::ExpectedString(value.kind_name().to_string());
                return Err(ExprError::new(*start, kind).located_in(&self.text));
            }
            return Ok(value.to_github_string());
        }
        self.evaluate_text(contexts, host)
    }

    fn evaluate_text(&self, contexts: &Contexts, host: &dyn Host) -> Result<String, ExprError> {
        let mut out = String::new();
        for segment in &self.segments {
            match segment {
                Segment::Text(t) => out.push_str(t),
                Segment::Expr { expr, start } => {
                    let v = expr
                        .evaluate(contexts, host)
                        .map_err(|e| e.shifted(*start, &self.text))?;
                    out.push_str(&v.to_github_string());
                }
            }
        }
        Ok(out)
    }
}

/// Parses the expression of `span`; an empty one is an error at its `${{`.
fn parse_inner(
    text: &str,
    span: Span,
    source: &str,
    start: usize,
    scope: &Scope,
) -> Result<Expr, ExprError> {
    if source.is_empty() {
        return Err(ExprError::new(span.open, ErrorKind::EmptyExpression).located_in(text));
    }
    Expr::parse(source, scope).map_err(|e| e.shifted(start, text))
}

/// Parses `text` and evaluates it as [`Template::evaluate_string`] does: the one-call form of
/// interpolation for a string field.
pub fn interpolate(
    text: &str,
    scope: &Scope,
    contexts: &Contexts,
    host: &dyn Host,
) -> Result<String, ExprError> {
    Template::parse(text, scope)?.evaluate_string(contexts, host)
}

/// Every error in every `${{ }}` of `text` (syntax, unknown or out-of-scope functions and
/// contexts, argument counts), with offsets and columns in `text`, without evaluating
/// anything: what the workflow reader reports as file:line:column before a run starts.
/// An unclosed `${{` ends the search.
pub fn check(text: &str, scope: &Scope) -> Vec<ExprError> {
    let spans = match find_expressions(text) {
        Ok(spans) => spans,
        Err(e) => return vec![e],
    };
    spans
        .into_iter()
        .filter_map(|span| {
            let (source, start) = inner(text, span);
            parse_inner(text, span, source, start, scope).err()
        })
        .collect()
}

/// A parsed `if:` condition.
#[derive(Debug, Clone)]
pub struct Condition {
    body: Body,
    implicit_success: bool,
}

#[derive(Debug, Clone)]
enum Body {
    /// An empty condition: `success()` alone.
    Empty,
    Expr(Expr),
    /// `${{ }}` mixed with text: the resulting string is the condition.
    Text(Template),
}

impl Condition {
    /// Reads an `if:` value as GitHub does:
    /// - empty (pass "" when `if:` is absent) is `success()`;
    /// - a value without `${{` is an expression as it stands (`if: github.ref == 'x'`);
    /// - a value that is exactly one `${{ expr }}` is `expr`; one that is exactly a quoted
    ///   string, `${{ 'text' }}`, is read as the expression `text` (the runner folds it to a
    ///   literal string, which then becomes the condition's text);
    /// - `${{ }}` mixed with text makes a string, true unless empty: GitHub's well-known trap
    ///   (`if: ${{ a }} && b` always runs);
    /// - without a call to a status function anywhere in it, the condition is
    ///   `success() && (condition)`.
    ///
    /// `scope` is [`Scope::JOB_IF`] or [`Scope::STEP_IF`]; errors are placed in `text`.
    pub fn parse(text: &str, scope: &Scope) -> Result<Condition, ExprError> {
        let body = match condition_source(text)? {
            ConditionSource::Empty => Body::Empty,
            ConditionSource::Expression(source, start) => {
                Body::Expr(Expr::parse(&source, scope).map_err(|e| e.shifted(start, text))?)
            }
            ConditionSource::Text => Body::Text(Template::parse(text, scope)?),
        };
        let uses_status = match &body {
            Body::Empty => false,
            Body::Expr(e) => e.uses_status_function(),
            Body::Text(t) => t.uses_status_function(),
        };
        Ok(Condition {
            body,
            implicit_success: !uses_status && scope.has_status_functions(),
        })
    }

    /// Whether GitHub reads this condition as `success() && (...)`: true when it calls none
    /// of `success()`, `failure()`, `cancelled()`, `always()` (an empty one included).
    pub fn implicit_success(&self) -> bool {
        self.implicit_success
    }

    /// Whether the step or job runs. With the implicit `success()`, the condition itself is
    /// not evaluated when it is false, as `&&` would not.
    pub fn evaluate(&self, contexts: &Contexts, host: &dyn Host) -> Result<bool, ExprError> {
        if self.implicit_success {
            let ok = host.status(Status::Success, &[]).map_err(|message| {
                ExprError::new(
                    0,
                    ErrorKind::Status {
                        function: "success".to_string(),
                        message,
                    },
                )
            })?;
            if !ok {
                return Ok(false);
            }
        }
        match &self.body {
            Body::Empty => Ok(true),
            Body::Expr(e) => e.is_truthy(contexts, host),
            Body::Text(t) => t.evaluate(contexts, host).map(|v| v.is_truthy()),
        }
    }
}

enum ConditionSource {
    Empty,
    /// Expression text, and where it starts in the `if:` value.
    Expression(String, usize),
    /// `${{ }}` mixed with text.
    Text,
}

fn condition_source(text: &str) -> Result<ConditionSource, ExprError> {
    if text.trim().is_empty() {
        return Ok(ConditionSource::Empty);
    }
    let spans = find_expressions(text)?;
    match spans.as_slice() {
        [] => Ok(ConditionSource::Expression(text.to_string(), 0)),
        [span] if span.open == 0 && span.close == text.len() => {
            let (source, start) = inner(text, *span);
            if source.is_empty() {
                return Err(ExprError::new(0, ErrorKind::EmptyExpression).located_in(text));
            }
            match quoted_only(source) {
                Some(unquoted) if unquoted.trim().is_empty() => Ok(ConditionSource::Empty),
                // Columns inside are counted from the string's first character.
                Some(unquoted) => Ok(ConditionSource::Expression(unquoted, start + 1)),
                None => Ok(ConditionSource::Expression(source.to_string(), start)),
            }
        }
        _ => Ok(ConditionSource::Text),
    }
}

/// The content of an expression made only of single-quoted strings side by side (the
/// runner's `IsExpressionString`: `'a''b'` is `a'b`), or `None`.
fn quoted_only(source: &str) -> Option<String> {
    let mut out = String::new();
    let mut in_string = false;
    for (i, c) in source.char_indices() {
        if c == '\'' {
            in_string = !in_string;
            if in_string && i != 0 {
                out.push(c);
            }
        } else if !in_string {
            return None;
        } else {
            out.push(c);
        }
    }
    Some(out)
}
