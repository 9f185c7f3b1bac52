//! GitLab CI's expression language, as in `rules: if`, `only/except: variables` and
//! `workflow: rules`: `$VAR`, `"strings"`, `'strings'`, `null`, `/regex/flags`, `==`, `!=`, `=~`,
//! `!~`, `&&`, `||` and parentheses.
//!
//! The semantics follow GitLab's own evaluator (`lib/gitlab/ci/pipeline/expression/`), quirks
//! included, because a pipeline must select the same jobs here as on GitLab:
//! - Values keep their kind until the very end: `&&` and `||` return one of their operands as
//!   Ruby does, and only the final value is asked whether it is "present". A variable set to ""
//!   is therefore false alone, but `$EMPTY && $SET` is true and `$EMPTY || $SET` is false
//!   (GitLab issues 321371 and 358775 describe exactly this).
//! - A bare value is true when it is present: not null, not false, not empty or whitespace only.
//! - An undefined variable is `null`; a variable set to "" is not (`$EMPTY == null` is false).
//! - Regexes match anywhere in the text (unanchored), as RE2's scan does; an undefined variable
//!   is matched as "" (so `$UNSET =~ /^v*/` is true).
//! - The right side of `=~`/`!~` may be a variable (or string) holding `/pattern/flags`; when it
//!   does not hold that form, or holds an invalid regex, GitLab falls back to Ruby's
//!   `String#scan`, which is a substring test: `$A =~ $B` is then true when B's value contains A's.
//! - Values are compared as they are: nothing inside a value or a string literal is expanded
//!   (GitLab issue 327780: nested variables are not expanded in `rules:if`), so `lookup` should
//!   give raw values.
//! - `${VAR}` is not part of the language; at most 99 tokens are allowed. `true` and `false`
//!   are booleans (never equal to a variable, whose value is a string).
//!
//! Deliberate differences: GitLab's shunting-yard parser accepts some malformed orders
//! (`$A $B ==`, `$A ()`) that berth rejects, and regex classes (`\w`, `\d`, `\s`, `\b`) follow
//! the `regex` crate's Unicode rules where RE2 keeps them ASCII.

use std::sync::LazyLock;

use regex::Regex;

/// A parsed expression, ready to be evaluated against any set of variables.
#[derive(Debug, Clone)]
pub struct Expr {
    root: Node,
}

/// Why an expression could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ExprError {
    pub message: String,
    /// byte offset into the expression text
    pub offset: usize,
}

impl ExprError {
    fn new(offset: usize, message: impl Into<String>) -> ExprError {
        ExprError {
            message: message.into(),
            offset,
        }
    }
}

/// GitLab's lexer reads at most 100 tokens and refuses an expression that reaches the 100th
/// ("Too many tokens!"), so 99 is the most it takes; so does berth, so that a file berth accepts
/// is one GitLab accepts.
const MAX_TOKENS: usize = 99;

/// Parses an expression; every error says what is wrong and where.
pub fn parse(text: &str) -> Result<Expr, ExprError> {
    let tokens = lex(text)?;
    if tokens.is_empty() {
        return Err(ExprError::new(0, "empty expression"));
    }
    let mut parser = Parser {
        text,
        tokens: &tokens,
        next: 0,
    };
    let root = parser.or_expr()?;
    if let Some(token) = parser.peek() {
        return Err(parser.unexpected(token, "an operator"));
    }
    Ok(Expr { root })
}

impl Expr {
    /// Whether the expression holds, `lookup` giving each variable's value (`None`: undefined).
    pub fn eval(&self, lookup: &dyn Fn(&str) -> Option<String>) -> bool {
        self.root.eval(lookup).is_present()
    }
}

/// `/pattern/flags` as GitLab writes regexes in `only: refs` and in expressions;
/// `None` when `text` is not in that form.
///
/// The form is checked line by line, as GitLab's Ruby pattern `^/(.*)/([ismU]*)$` does: the first
/// line that starts with `/` and ends with a `/` and flags from `i`, `s`, `m`, `U` is the regex,
/// with RE2's meaning of the flags (`m`: `^`/`$` at lines, `s`: `.` matches `\n`, `U`: lazy).
pub fn regex_literal(text: &str) -> Option<Result<Regex, ExprError>> {
    let (body, flags) = text.split('\n').find_map(split_literal)?;
    Some(compile(body, flags, 0))
}

/// Splits one line `/body/flags` into body and flags.
fn split_literal(line: &str) -> Option<(&str, &str)> {
    let rest = line.strip_prefix('/')?;
    let close = rest.rfind('/')?;
    let flags = &rest[close + 1..];
    if !flags.chars().all(|c| matches!(c, 'i' | 's' | 'm' | 'U')) {
        return None;
    }
    Some((&rest[..close], flags))
}

fn compile(body: &str, flags: &str, offset: usize) -> Result<Regex, ExprError> {
    // RE2 takes `(?ii)`; the regex crate refuses a repeated flag, so each is given once.
    let mut unique = String::new();
    for flag in flags.chars() {
        if !unique.contains(flag) {
            unique.push(flag);
        }
    }
    let pattern = if unique.is_empty() {
        body.to_string()
    } else {
        format!("(?{unique}){body}")
    };
    Regex::new(&pattern).map_err(|err| {
        ExprError::new(
            offset,
            format!("invalid regex /{body}/{flags}: {}", regex_reason(&err)),
        )
    })
}

/// The regex crate's syntax errors draw the pattern over several lines; the reason is the last.
fn regex_reason(err: &regex::Error) -> String {
    let text = err.to_string();
    let last = text
        .lines()
        .rev()
        .find(|line| !line.trim().is_empty())
        .unwrap_or("");
    last.trim().trim_start_matches("error: ").to_string()
}

#[derive(Debug, Clone)]
enum TokenKind {
    Open,
    Close,
    Variable(String),
    Str(String),
    Pattern(Pattern),
    Null,
    Bool(bool),
    Op(Op),
}

#[derive(Debug, Clone)]
struct Token {
    kind: TokenKind,
    start: usize,
    end: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Equals,
    NotEquals,
    Matches,
    NotMatches,
    And,
    Or,
}

/// A regex literal of the expression; `source` is how GitLab would compare two of them.
#[derive(Debug, Clone)]
struct Pattern {
    source: String,
    regex: Regex,
}

/// The shape of a regex token in GitLab's lexer: a slash, then at least one character that is
/// not a slash or is an escaped slash, then one character that is not a backslash, then the
/// closing slash and flags. Its first (leftmost-first) match is the token, as in Ruby; note
/// that this asks for two characters between the slashes, so GitLab refuses `/a/`.
static PATTERN_TOKEN: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"\A/(?:[^/]|\\/)+[^\\]/[ismU]*").ok());

fn lex(text: &str) -> Result<Vec<Token>, ExprError> {
    let mut tokens = Vec::new();
    let mut pos = 0;
    loop {
        // Ruby's `\s`: what GitLab skips between tokens.
        let rest = &text[pos..];
        let trimmed = rest.trim_start_matches([' ', '\t', '\n', '\r', '\x0c', '\x0b']);
        pos += rest.len() - trimmed.len();
        if trimmed.is_empty() {
            return Ok(tokens);
        }
        if tokens.len() == MAX_TOKENS {
            return Err(ExprError::new(
                pos,
                format!("too many tokens at {pos}: GitLab allows {MAX_TOKENS} in an expression"),
            ));
        }
        let (kind, len) = lex_one(trimmed, pos)?;
        tokens.push(Token {
            kind,
            start: pos,
            end: pos + len,
        });
        pos += len;
    }
}

/// The token at the start of `rest` (which is not empty) and its length in bytes.
fn lex_one(rest: &str, pos: usize) -> Result<(TokenKind, usize), ExprError> {
    let operators = [
        ("==", Op::Equals),
        ("=~", Op::Matches),
        ("!=", Op::NotEquals),
        ("!~", Op::NotMatches),
        ("&&", Op::And),
        ("||", Op::Or),
    ];
    for (text, op) in operators {
        if rest.starts_with(text) {
            return Ok((TokenKind::Op(op), text.len()));
        }
    }
    let Some(first) = rest.chars().next() else {
        return Err(ExprError::new(pos, "unexpected end of expression"));
    };
    match first {
        '(' => Ok((TokenKind::Open, 1)),
        ')' => Ok((TokenKind::Close, 1)),
        '$' => {
            // Ruby's `\w` is ASCII: letters, digits, underscore.
            let name_len = rest[1..]
                .bytes()
                .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
                .count();
            if name_len == 0 {
                let hint = if rest[1..].starts_with('{') {
                    " (GitLab expressions take `$VAR`, not `${VAR}`)"
                } else {
                    ""
                };
                return Err(ExprError::new(
                    pos,
                    format!("`$` at {pos} is not followed by a variable name{hint}"),
                ));
            }
            let name = rest[1..1 + name_len].to_string();
            Ok((TokenKind::Variable(name), 1 + name_len))
        }
        '"' | '\'' => {
            // No escapes, and (as Ruby's `.`) no line break inside a string.
            let body = &rest[1..];
            match body.find([first, '\n']) {
                Some(close) if body[close..].starts_with(first) => {
                    Ok((TokenKind::Str(body[..close].to_string()), close + 2))
                }
                _ => Err(ExprError::new(
                    pos,
                    format!("unterminated string at {pos} (a string ends on its own line)"),
                )),
            }
        }
        '/' => lex_pattern(rest, pos),
        _ if rest.starts_with("null") => Ok((TokenKind::Null, 4)),
        // GitLab's newest lexer reads whole words `true` and `false` as booleans.
        _ if word_at(rest, "true") => Ok((TokenKind::Bool(true), 4)),
        _ if word_at(rest, "false") => Ok((TokenKind::Bool(false), 5)),
        _ => Err(ExprError::new(
            pos,
            format!("unexpected `{}` at {pos}", snippet(rest)),
        )),
    }
}

fn lex_pattern(rest: &str, pos: usize) -> Result<(TokenKind, usize), ExprError> {
    let found = PATTERN_TOKEN.as_ref().and_then(|token| token.find(rest));
    let Some(found) = found else {
        return Err(ExprError::new(
            pos,
            format!(
                "unterminated or too short regex at {pos}: GitLab wants /pattern/flags with at \
                 least two characters between the slashes"
            ),
        ));
    };
    let token = found.as_str();
    // GitLab unescapes `\/` before reading the token as `/body/flags`.
    let unescaped = token.replace("\\/", "/");
    let Some((body, flags)) = unescaped.split('\n').find_map(split_literal) else {
        return Err(ExprError::new(
            pos,
            format!("invalid regex {} at {pos}", snippet(token)),
        ));
    };
    let regex = compile(body, flags, pos)
        .map_err(|err| ExprError::new(pos, format!("{} (at {pos})", err.message)))?;
    let source = regex.as_str().to_string();
    Ok((TokenKind::Pattern(Pattern { source, regex }), token.len()))
}

fn word_at(rest: &str, word: &str) -> bool {
    rest.strip_prefix(word).is_some_and(|after| {
        !after
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
    })
}

/// A short quote of the text at an error, so a message stays one readable line.
fn snippet(text: &str) -> String {
    let word: String = text
        .chars()
        .take_while(|c| !c.is_whitespace())
        .take(20)
        .collect();
    if word.is_empty() {
        text.chars().take(1).collect()
    } else {
        word
    }
}

#[derive(Debug, Clone)]
enum Node {
    Variable(String),
    Str(String),
    Pattern(Pattern),
    Null,
    Bool(bool),
    Binary(Op, Box<Node>, Box<Node>),
}

/// Recursive descent with GitLab's precedences: comparisons bind tightest, then `&&`, then `||`;
/// all are left-associative. Depth is bounded by `MAX_TOKENS`.
struct Parser<'a> {
    text: &'a str,
    tokens: &'a [Token],
    next: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.next)
    }

    fn peek_op(&self, wanted: &[Op]) -> Option<Op> {
        match self.peek().map(|t| &t.kind) {
            Some(TokenKind::Op(op)) if wanted.contains(op) => Some(*op),
            _ => None,
        }
    }

    fn or_expr(&mut self) -> Result<Node, ExprError> {
        let mut left = self.and_expr()?;
        while let Some(op) = self.peek_op(&[Op::Or]) {
            self.next += 1;
            let right = self.and_expr()?;
            left = Node::Binary(op, Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and_expr(&mut self) -> Result<Node, ExprError> {
        let mut left = self.comparison()?;
        while let Some(op) = self.peek_op(&[Op::And]) {
            self.next += 1;
            let right = self.comparison()?;
            left = Node::Binary(op, Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn comparison(&mut self) -> Result<Node, ExprError> {
        let comparisons = [Op::Equals, Op::NotEquals, Op::Matches, Op::NotMatches];
        let mut left = self.operand()?;
        while let Some(op) = self.peek_op(&comparisons) {
            self.next += 1;
            let right = self.operand()?;
            left = Node::Binary(op, Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn operand(&mut self) -> Result<Node, ExprError> {
        let Some(token) = self.peek() else {
            return Err(ExprError::new(
                self.text.len(),
                "expected a value at the end of the expression",
            ));
        };
        let node = match &token.kind {
            TokenKind::Variable(name) => Node::Variable(name.clone()),
            TokenKind::Str(text) => Node::Str(text.clone()),
            TokenKind::Pattern(pattern) => Node::Pattern(pattern.clone()),
            TokenKind::Null => Node::Null,
            TokenKind::Bool(b) => Node::Bool(*b),
            TokenKind::Open => {
                let open = token.start;
                self.next += 1;
                let inner = self.or_expr()?;
                return match self.peek() {
                    Some(Token {
                        kind: TokenKind::Close,
                        ..
                    }) => {
                        self.next += 1;
                        Ok(inner)
                    }
                    Some(other) => Err(self.unexpected(other, "an operator or `)`")),
                    None => Err(ExprError::new(open, format!("unclosed `(` at {open}"))),
                };
            }
            TokenKind::Close | TokenKind::Op(_) => return Err(self.unexpected(token, "a value")),
        };
        self.next += 1;
        Ok(node)
    }

    fn unexpected(&self, token: &Token, wanted: &str) -> ExprError {
        let at = token.start;
        let text = snippet(&self.text[at..token.end]);
        ExprError::new(
            at,
            format!("unexpected `{text}` at {at}, expected {wanted}"),
        )
    }
}

/// What a node evaluates to, with Ruby's kinds: GitLab's operators pass these around unchanged.
enum Value<'a> {
    Null,
    Str(String),
    Pattern(&'a Pattern),
    Bool(bool),
}

impl Value<'_> {
    /// Ruby truthiness, which `&&`, `||` and the right side of `=~` use: only nil and false fail.
    fn is_truthy(&self) -> bool {
        !matches!(self, Value::Null | Value::Bool(false))
    }

    /// ActiveSupport's `present?`, which decides the final answer: an empty or blank string fails.
    fn is_present(&self) -> bool {
        match self {
            Value::Null => false,
            Value::Bool(b) => *b,
            Value::Str(s) => !s.chars().all(char::is_whitespace),
            Value::Pattern(_) => true,
        }
    }

    /// Ruby's `to_s`, as the left side of `=~` is read.
    fn text(&self) -> String {
        match self {
            Value::Null => String::new(),
            Value::Str(s) => s.clone(),
            Value::Pattern(p) => format!("/{}/", p.source),
            Value::Bool(b) => b.to_string(),
        }
    }

    /// Ruby's `==` between two values of any kind.
    fn equals(&self, other: &Value) -> bool {
        match (self, other) {
            (Value::Null, Value::Null) => true,
            (Value::Str(a), Value::Str(b)) => a == b,
            (Value::Bool(a), Value::Bool(b)) => a == b,
            (Value::Pattern(a), Value::Pattern(b)) => a.source == b.source,
            _ => false,
        }
    }
}

impl Node {
    fn eval(&self, lookup: &dyn Fn(&str) -> Option<String>) -> Value<'_> {
        match self {
            Node::Variable(name) => lookup(name).map_or(Value::Null, Value::Str),
            Node::Str(text) => Value::Str(text.clone()),
            Node::Pattern(pattern) => Value::Pattern(pattern),
            Node::Null => Value::Null,
            Node::Bool(b) => Value::Bool(*b),
            Node::Binary(op, left, right) => {
                let left_value = left.eval(lookup);
                match op {
                    Op::And if !left_value.is_truthy() => left_value,
                    Op::Or if left_value.is_truthy() => left_value,
                    Op::And | Op::Or => right.eval(lookup),
                    Op::Equals => Value::Bool(left_value.equals(&right.eval(lookup))),
                    Op::NotEquals => Value::Bool(!left_value.equals(&right.eval(lookup))),
                    Op::Matches => Value::Bool(matches(&left_value, &right.eval(lookup), false)),
                    Op::NotMatches => Value::Bool(matches(&left_value, &right.eval(lookup), true)),
                }
            }
        }
    }
}

/// `=~` (or `!~` when `negated`) as GitLab evaluates it.
fn matches(text: &Value, pattern: &Value, negated: bool) -> bool {
    if !pattern.is_truthy() {
        // GitLab: `=~ null` is false and `!~ null` is true.
        return negated;
    }
    let text = text.text();
    let found = match pattern {
        Value::Pattern(p) => p.regex.is_match(&text),
        Value::Str(value) => match value_regex(value) {
            Some(regex) => regex.is_match(&text),
            // Not a `/pattern/` (or not a valid one): Ruby's `String#scan` with a string argument.
            None => value.contains(text.as_str()),
        },
        // GitLab fails on a boolean here (it calls a string method on it); nothing can match.
        Value::Bool(_) | Value::Null => false,
    };
    found != negated
}

/// A variable's value read as a regex, as GitLab does on the right of `=~`: `\/` unescaped first.
fn value_regex(value: &str) -> Option<Regex> {
    let unescaped = value.replace("\\/", "/");
    regex_literal(&unescaped)?.ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Variables every table row sees: a set one, an empty one, a blank one, regexes held as
    /// strings, and names taken from GitLab's docs examples.
    const VARS: &[(&str, &str)] = &[
        ("BRANCH", "feature/login"),
        ("OTHER_BRANCH", "feature/login"),
        ("MAIN", "main"),
        ("EMPTY", ""),
        ("BLANK", "  "),
        ("SOURCE", "merge_request_event"),
        ("TESTSTRING", "abcde"),
        ("PATTERN", "/^ab.*/"),
        ("PATTERN_I", "/^AB/i"),
        ("PATTERN_ESCAPED", "/^feature\\/log/"),
        ("NOT_A_PATTERN", "xabcdex"),
        ("BAD_PATTERN", "/ab(/"),
        ("NESTED", "$MAIN"),
        ("MULTILINE", "first\nsecond"),
    ];

    fn lookup(name: &str) -> Option<String> {
        VARS.iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.to_string())
    }

    fn eval(text: &str) -> bool {
        match parse(text) {
            Ok(expr) => expr.eval(&lookup),
            Err(err) => panic!("{text:?} does not parse: {err} (offset {})", err.offset),
        }
    }

    fn check(table: &[(&str, bool)]) {
        let wrong: Vec<String> = table
            .iter()
            .filter(|(text, want)| eval(text) != *want)
            .map(|(text, want)| format!("{text:?} should be {want}"))
            .collect();
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }

    // GitLab docs, "CI/CD variable expressions": compare a variable to a string, either order,
    // in double or single quotes.
    #[test]
    fn equality_with_strings() {
        check(&[
            ("$MAIN == \"main\"", true),
            ("$MAIN == 'main'", true),
            ("\"main\" == $MAIN", true),
            ("$MAIN != \"main\"", false),
            ("$MAIN == \"Main\"", false),
            ("$MAIN != 'other'", true),
            ("$BRANCH == $OTHER_BRANCH", true),
            ("$BRANCH == $MAIN", false),
            ("$BRANCH != $MAIN", true),
            ("'a' == \"a\"", true),
            ("$EMPTY == \"\"", true),
            ("$EMPTY != ''", false),
            // Strings hold no escapes: the other quote kind is plain text inside.
            ("\"it's\" == \"it's\"", true),
            ("'say \"hi\"' == 'say \"hi\"'", true),
            ("\"a\\\" == 'a\\'", true),
        ]);
    }

    // GitLab docs, "CI/CD variable expressions": check whether a variable is defined (`null`)
    // or empty; an undefined variable is null, an empty one is not.
    #[test]
    fn null_and_empty() {
        check(&[
            ("$UNDEFINED == null", true),
            ("$UNDEFINED != null", false),
            ("null == $UNDEFINED", true),
            ("$EMPTY == null", false),
            ("$EMPTY != null", true),
            ("$MAIN == null", false),
            ("$UNDEFINED == \"\"", false),
            ("$UNDEFINED != \"\"", true),
            ("$UNDEFINED == $ALSO_UNDEFINED", true),
            ("$UNDEFINED == $EMPTY", false),
            ("null == null", true),
            ("null", false),
        ]);
    }

    // GitLab docs, "CI/CD variable expressions": a bare variable is true when it is defined and
    // not empty. Ruby's `present?` also treats a blank (whitespace only) value as absent.
    #[test]
    fn presence() {
        check(&[
            ("$MAIN", true),
            ("$UNDEFINED", false),
            ("$EMPTY", false),
            ("$BLANK", false),
            ("\"text\"", true),
            ("''", false),
            ("/ab/", true),
            ("true", true),
            ("false", false),
        ]);
    }

    // GitLab docs, "CI/CD variable expressions", pattern matching: unanchored unless the pattern
    // says so, case-sensitive unless `i`.
    #[test]
    fn regex_literals() {
        check(&[
            ("$BRANCH =~ /^feature/", true),
            ("$BRANCH =~ /login$/", true),
            ("$BRANCH =~ /ogi/", true),
            ("$BRANCH =~ /^login/", false),
            ("$BRANCH !~ /^feature/", false),
            ("$MAIN !~ /^feature/", true),
            ("$BRANCH =~ /^FEATURE/", false),
            ("$BRANCH =~ /^FEATURE/i", true),
            ("$BRANCH =~ /feature\\/login/", true),
            ("$BRANCH =~ /^(feature|fix)\\/.+$/", true),
            ("$TESTSTRING =~ /^ab.*/", true),
            // `m`: `^`/`$` at each line; `s`: `.` crosses lines; `U`: lazy.
            ("$MULTILINE =~ /^second$/", false),
            ("$MULTILINE =~ /^second$/m", true),
            ("$MULTILINE =~ /first.second/", false),
            ("$MULTILINE =~ /first.second/s", true),
            ("$MULTILINE =~ /^SECOND$/mi", true),
            ("$MULTILINE =~ /^SECOND$/mii", true),
            ("$MAIN =~ /ma+/U", true),
            // An undefined variable is matched as "" (GitLab issue 31542).
            ("$UNDEFINED =~ /^v*/", true),
            ("$UNDEFINED =~ /^v+/", false),
            ("$UNDEFINED !~ /^v+/", true),
            ("$EMPTY =~ /^$/", true),
        ]);
    }

    // GitLab docs, "Compare a variable to a regular expression stored in a variable" (and
    // gitlab-org/gitlab MR 85310): the right side is read as `/pattern/flags` when it has that
    // form; otherwise GitLab's fallback is a substring test of the right value against the left.
    #[test]
    fn regex_from_variables() {
        check(&[
            ("$TESTSTRING =~ $PATTERN", true),
            ("$TESTSTRING !~ $PATTERN", false),
            ("$MAIN =~ $PATTERN", false),
            ("$MAIN !~ $PATTERN", true),
            ("$TESTSTRING =~ $PATTERN_I", true),
            ("$BRANCH =~ $PATTERN_ESCAPED", true),
            ("$TESTSTRING =~ \"/^ab/\"", true),
            // Not a pattern: "xabcdex" contains "abcde", not the other way round.
            ("$TESTSTRING =~ $NOT_A_PATTERN", true),
            ("$NOT_A_PATTERN =~ $TESTSTRING", false),
            ("$TESTSTRING !~ $NOT_A_PATTERN", false),
            ("$TESTSTRING =~ \"bcd\"", false),
            ("\"bcd\" =~ $TESTSTRING", true),
            // An invalid regex in a variable also falls back to the substring test.
            ("\"ab(\" =~ $BAD_PATTERN", true),
            ("$TESTSTRING =~ $BAD_PATTERN", false),
            // `=~ null` never matches; `!~ null` always holds.
            ("$TESTSTRING =~ $UNDEFINED", false),
            ("$TESTSTRING !~ $UNDEFINED", true),
            ("$TESTSTRING =~ null", false),
            ("$TESTSTRING !~ null", true),
            // Empty is not null: "" contains "" only.
            ("$UNDEFINED =~ $EMPTY", true),
            ("$MAIN =~ $EMPTY", false),
        ]);
    }

    // GitLab docs, "Join variable expressions together with && or ||" and "Parentheses": `&&`
    // binds tighter than `||`, parentheses group, any depth.
    #[test]
    fn precedence_and_parentheses() {
        check(&[
            ("$MAIN == \"main\" || $MAIN == \"x\" && $UNDEFINED", true),
            ("($MAIN == \"main\" || $MAIN == \"x\") && $UNDEFINED", false),
            ("$UNDEFINED && $MAIN || $SOURCE", true),
            ("$UNDEFINED && ($MAIN || $SOURCE)", false),
            (
                "$BRANCH =~ /^feature/ && $SOURCE == \"merge_request_event\"",
                true,
            ),
            ("$TESTSTRING =~ /^content.*/ || $MAIN == \"main\"", true),
            (
                "($TESTSTRING =~ /^content.*/ || $MAIN) && ($BRANCH =~ /login$/ || $UNDEFINED)",
                true,
            ),
            (
                "$MAIN == \"my-branch\" || (($BRANCH == \"thing\" || $SOURCE == \"thing\") && $MAIN)",
                false,
            ),
            ("((($MAIN)))", true),
            ("(((($UNDEFINED) || (($EMPTY)))))", false),
            ("($MAIN == 'main') == ($BRANCH == 'x')", false),
            ("($MAIN == 'main') == ($BRANCH != 'x')", true),
            ("$MAIN==\"main\"&&$BRANCH=~/^feat/", true),
            ("\t$MAIN\n==\r\n'main' ", true),
        ]);
    }

    // GitLab issues 321371 and 358775: `&&` and `||` return one operand (Ruby), so an empty
    // variable is "truthy" inside them and only the final value is asked for presence.
    #[test]
    fn empty_values_inside_and_or_follow_ruby() {
        check(&[
            ("$EMPTY && $MAIN", true),
            ("$MAIN && $EMPTY", false),
            ("$EMPTY || $MAIN", false),
            ("$MAIN || $EMPTY", true),
            ("$UNDEFINED || $MAIN", true),
            ("$EMPTY && $MAIN == 'main'", true),
            ("$EMPTY != '' && $MAIN == 'main'", false),
        ]);
    }

    // GitLab does not expand variables inside values or strings in an expression (issue 327711):
    // the value `$MAIN` is compared as those five characters.
    #[test]
    fn values_are_not_expanded() {
        check(&[
            ("$NESTED == \"$MAIN\"", true),
            ("$NESTED == \"main\"", false),
            ("$NESTED == $MAIN", false),
            ("$NESTED", true),
        ]);
    }

    #[test]
    fn booleans_are_never_equal_to_variables() {
        check(&[
            ("true == true", true),
            ("$UNDEFINED == false", false),
            ("$TRUE_STRING == true", false),
            ("\"true\" == true", false),
        ]);
    }

    fn error(text: &str) -> ExprError {
        match parse(text) {
            Ok(expr) => panic!("{text:?} parsed as {expr:?}"),
            Err(err) => err,
        }
    }

    #[test]
    fn syntax_errors_say_what_and_where() {
        let cases: &[(&str, usize, &str)] = &[
            ("", 0, "empty expression"),
            ("   ", 0, "empty expression"),
            (
                "$MAIN == 'main')",
                15,
                "unexpected `)` at 15, expected an operator",
            ),
            ("($MAIN == 'main'", 0, "unclosed `(` at 0"),
            ("($MAIN $BRANCH)", 7, "unexpected `$BRANCH` at 7"),
            ("$MAIN ==", 8, "expected a value at the end"),
            ("== $MAIN", 0, "unexpected `==` at 0, expected a value"),
            ("$MAIN && || $X", 9, "unexpected `||` at 9"),
            ("$A $B ==", 3, "unexpected `$B` at 3"),
            ("$A ()", 3, "unexpected `(` at 3"),
            ("()", 1, "unexpected `)` at 1, expected a value"),
            ("$MAIN == \"main", 9, "unterminated string at 9"),
            ("$MAIN == 'ma\nin'", 9, "unterminated string at 9"),
            ("${MAIN} == 'main'", 0, "not `${VAR}`"),
            ("$ == 'x'", 0, "`$` at 0 is not followed by a variable name"),
            ("$MAIN = 'main'", 6, "unexpected `=` at 6"),
            ("$MAIN == main", 9, "unexpected `main` at 9"),
            ("$MAIN =~ /a/", 9, "at least two characters"),
            ("$MAIN =~ /ab", 9, "unterminated or too short regex at 9"),
            ("$MAIN =~ /ab/x", 13, "unexpected `x` at 13"),
            ("$MAIN =~ /x(/", 9, "invalid regex /x(/: unclosed group"),
            ("$MAIN =~ /(?<=a)b/", 9, "invalid regex /(?<=a)b/"),
            ("! $MAIN", 0, "unexpected `!` at 0"),
            ("nullx", 4, "unexpected `x` at 4"),
            ("truex", 0, "unexpected `truex` at 0"),
        ];
        let mut wrong = Vec::new();
        for (text, offset, message) in cases {
            let err = error(text);
            if err.offset != *offset || !err.message.contains(message) {
                wrong.push(format!(
                    "{text:?}: got {:?} at {}, want {message:?} at {offset}",
                    err.message, err.offset
                ));
            }
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }

    #[test]
    fn token_limit_is_gitlabs() {
        // 50 values and 49 `&&` are 99 tokens: the most GitLab's lexer takes.
        let longest = vec!["$MAIN"; 50].join(" && ");
        let expr = parse(&longest).map_err(|e| e.message);
        assert!(expr.is_ok_and(|e| e.eval(&lookup)));
        // The 100th token is refused wherever it is, even as the last one.
        for longer in [format!("{longest} )"), format!("{longest} && $X")] {
            let err = error(&longer);
            assert!(err.message.contains("too many tokens"), "{}", err.message);
            assert_eq!(err.offset, longest.len() + 1);
        }
    }

    #[test]
    fn regex_literal_reads_gitlabs_form() {
        let yes = |text: &str, subject: &str| match regex_literal(text) {
            Some(Ok(re)) => re.is_match(subject),
            other => panic!("{text:?}: {other:?}"),
        };
        assert!(yes("/^release-.*$/", "release-1.2"));
        assert!(!yes("/^release-.*$/", "Release-1.2"));
        assert!(yes("/^release-.*$/i", "Release-1.2"));
        assert!(yes("//", "anything"));
        assert!(yes("/a/b/", "xa/b"), "the last slash closes the pattern");
        assert!(yes("not this line\n/^v\\d+/", "v12"));
        assert!(regex_literal("release").is_none());
        assert!(regex_literal("/release").is_none());
        assert!(regex_literal("/release/x").is_none());
        assert!(regex_literal("").is_none());
        match regex_literal("/a(/") {
            Some(Err(err)) => assert!(err.message.starts_with("invalid regex /a(/:"), "{err}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn lookups_happen_only_for_the_operands_evaluated() {
        let seen = std::cell::RefCell::new(Vec::new());
        let record = |name: &str| {
            seen.borrow_mut().push(name.to_string());
            lookup(name)
        };
        let expr = parse("$MAIN || $BRANCH").map_err(|e| e.message);
        assert!(expr.is_ok_and(|e| e.eval(&record)));
        assert_eq!(*seen.borrow(), vec!["MAIN".to_string()]);
    }

    #[test]
    fn odd_input_never_panics() {
        let inputs = [
            "/",
            "//",
            "///",
            "/\\/",
            "/\\//",
            "'",
            "\"",
            "$",
            "(",
            ")",
            "((",
            "))",
            "é",
            "$é",
            "/é/",
            "/éé/",
            "$A =~ /é\\/",
            "\u{0}",
            "/ab/ismUismU",
            "$A =~ /a{1000}{1000}/",
            "$A =~ /\\//",
            "$A == (",
            "$A == )",
            "||",
            "&&",
            "!",
            "=",
            "~",
            "null null",
        ];
        for text in inputs {
            if let Ok(expr) = parse(text) {
                // Evaluating must not panic either; the answer itself is not the point here.
                let _ = expr.eval(&lookup);
            }
        }
    }
}
