//! Splits an expression into tokens the way the runner's `LexicalAnalyzer` does: what a `.` or a
//! word means depends on the token before it (`.5` is a number at the start, `a.b` a property).

use super::error::{ErrorKind, ExprError};
use super::value::parse_number;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
    Dot,
    Star,
    Op(Op),
    Null,
    Bool(bool),
    Number(f64),
    Str(String),
    /// A word after `.`: any legal word, `true` and `null` included.
    Property(String),
    /// A word followed (after any blanks) by `(`.
    Function(String),
    /// Any other word: a context name.
    Name(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Not,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    And,
    Or,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Token {
    pub tok: Tok,
    /// Byte offset of the token's first character in the expression.
    pub start: usize,
    /// Byte offset just past the token.
    pub end: usize,
}

/// Characters that end a word or a number, as in the runner (`'` and `*` do not: `a'` is one
/// unexpected symbol).
fn is_boundary(c: char) -> bool {
    matches!(
        c,
        '(' | '[' | ')' | ']' | ',' | '.' | '!' | '>' | '<' | '=' | '&' | '|'
    ) || c.is_whitespace()
}

/// A legal word: a letter or `_`, then letters, digits, `_` or `-` (so `steps.my-step` works).
fn is_legal_word(w: &str) -> bool {
    let mut chars = w.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// All tokens of `text`, or the first symbol that cannot be a token.
pub(crate) fn tokenize(text: &str) -> Result<Vec<Token>, ExprError> {
    let mut tokens: Vec<Token> = Vec::new();
    let mut i = 0;
    while let Some(c) = text[i..].chars().next() {
        if c.is_whitespace() {
            i += c.len_utf8();
            continue;
        }
        let start = i;
        let last = tokens.last().map(|t| &t.tok);
        let tok = match c {
            '(' => {
                i += 1;
                Tok::LParen
            }
            ')' => {
                i += 1;
                Tok::RParen
            }
            '[' => {
                i += 1;
                Tok::LBracket
            }
            ']' => {
                i += 1;
                Tok::RBracket
            }
            ',' => {
                i += 1;
                Tok::Comma
            }
            '*' => {
                i += 1;
                Tok::Star
            }
            '\'' => {
                let (s, end) = read_string(text, start)?;
                i = end;
                Tok::Str(s)
            }
            '!' | '<' | '>' | '=' | '&' | '|' => {
                let (op, end) = read_operator(text, start)?;
                i = end;
                Tok::Op(op)
            }
            // A dot where an operand is expected starts a number (`.5`); elsewhere it is `a.b`.
            '.' if !operand_expected(last) => {
                i += 1;
                Tok::Dot
            }
            '.' | '+' | '-' | '0'..='9' => {
                // Dots belong to a number (`1.5`); `1.5.3` is one unexpected symbol.
                let end = scan(text, start + c.len_utf8(), |c| !is_boundary(c) || c == '.');
                i = end;
                let raw = &text[start..end];
                let n = parse_number(raw);
                if n.is_nan() {
                    return Err(unexpected(raw, start));
                }
                Tok::Number(n)
            }
            _ => {
                let end = scan(text, start + c.len_utf8(), |c| !is_boundary(c));
                i = end;
                let word = &text[start..end];
                if !is_legal_word(word) {
                    return Err(unexpected(word, start));
                }
                word_token(word, last, &text[end..])
            }
        };
        tokens.push(Token { tok, start, end: i });
    }
    Ok(tokens)
}

/// Whether the previous token leaves the lexer expecting an operand.
fn operand_expected(last: Option<&Tok>) -> bool {
    matches!(
        last,
        None | Some(Tok::Comma | Tok::LParen | Tok::LBracket | Tok::Op(_))
    )
}

fn word_token(word: &str, last: Option<&Tok>, rest: &str) -> Tok {
    if last == Some(&Tok::Dot) {
        return Tok::Property(word.to_string());
    }
    // Keywords are case-sensitive: `True` is a (unknown) context name, as on GitHub.
    match word {
        "null" => return Tok::Null,
        "true" => return Tok::Bool(true),
        "false" => return Tok::Bool(false),
        "NaN" => return Tok::Number(f64::NAN),
        "Infinity" => return Tok::Number(f64::INFINITY),
        _ => {}
    }
    if rest.trim_start().starts_with('(') {
        Tok::Function(word.to_string())
    } else {
        Tok::Name(word.to_string())
    }
}

/// End offset of the run of characters from `from` that satisfy `keep`.
fn scan(text: &str, from: usize, keep: impl Fn(char) -> bool) -> usize {
    text[from..]
        .char_indices()
        .find(|&(_, c)| !keep(c))
        .map_or(text.len(), |(j, _)| from + j)
}

/// A single-quoted string from `start`; `''` inside is one quote.
fn read_string(text: &str, start: usize) -> Result<(String, usize), ExprError> {
    let mut out = String::new();
    let mut chars = text[start + 1..].char_indices().peekable();
    while let Some((j, c)) = chars.next() {
        if c == '\'' {
            if chars.peek().map(|&(_, c)| c) == Some('\'') {
                chars.next();
            } else {
                return Ok((out, start + 1 + j + 1));
            }
        }
        out.push(c);
    }
    Err(ExprError::new(start, ErrorKind::UnclosedString))
}

fn read_operator(text: &str, start: usize) -> Result<(Op, usize), ExprError> {
    let two = text.get(start..start + 2);
    let op2 = match two {
        Some("!=") => Some(Op::Ne),
        Some(">=") => Some(Op::Ge),
        Some("<=") => Some(Op::Le),
        Some("==") => Some(Op::Eq),
        Some("&&") => Some(Op::And),
        Some("||") => Some(Op::Or),
        _ => None,
    };
    if let Some(op) = op2 {
        return Ok((op, start + 2));
    }
    match &text[start..start + 1] {
        "!" => Ok((Op::Not, start + 1)),
        ">" => Ok((Op::Gt, start + 1)),
        "<" => Ok((Op::Lt, start + 1)),
        _ => {
            // `=`, `&` or `|` alone: report the run up to the next boundary, as the runner does.
            let end = scan(text, start + 1, |c| !is_boundary(c));
            Err(unexpected(&text[start..end], start))
        }
    }
}

fn unexpected(raw: &str, start: usize) -> ExprError {
    ExprError::new(start, ErrorKind::UnexpectedSymbol(raw.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(text: &str) -> Vec<Tok> {
        match tokenize(text) {
            Ok(tokens) => tokens.into_iter().map(|t| t.tok).collect(),
            Err(e) => panic!("{text:?} did not tokenize: {e}"),
        }
    }

    #[test]
    fn a_dot_is_a_number_or_a_dereference_by_what_precedes_it() {
        assert_eq!(toks(".5"), [Tok::Number(0.5)]);
        assert_eq!(
            toks("a.b"),
            [Tok::Name("a".into()), Tok::Dot, Tok::Property("b".into())]
        );
        assert_eq!(
            toks("a.null"),
            [
                Tok::Name("a".into()),
                Tok::Dot,
                Tok::Property("null".into())
            ]
        );
        assert_eq!(
            toks("x == .5"),
            [Tok::Name("x".into()), Tok::Op(Op::Eq), Tok::Number(0.5)]
        );
    }

    #[test]
    fn words_before_a_parenthesis_are_functions() {
        assert_eq!(
            toks("success ()"),
            [Tok::Function("success".into()), Tok::LParen, Tok::RParen]
        );
        assert_eq!(toks("my-step_2"), [Tok::Name("my-step_2".into())]);
    }

    #[test]
    fn strings_escape_quotes_by_doubling() {
        assert_eq!(toks("'It''s'"), [Tok::Str("It's".into())]);
        assert_eq!(toks("''"), [Tok::Str(String::new())]);
        let e = tokenize("'open").expect_err("an unclosed string is an error");
        assert_eq!((e.offset, e.kind), (0, ErrorKind::UnclosedString));
    }

    #[test]
    fn bad_symbols_are_reported_with_their_offset() {
        let e = tokenize("a = b").expect_err("a single = is not an operator");
        assert_eq!(e.offset, 2);
        assert_eq!(e.kind, ErrorKind::UnexpectedSymbol("=".into()));
        let e = tokenize("1.2.3").expect_err("1.2.3 is not a number");
        assert_eq!(e.kind, ErrorKind::UnexpectedSymbol("1.2.3".into()));
        let e = tokenize("x == \"a\"").expect_err("double quotes are not strings");
        assert_eq!(
            (e.offset, e.kind),
            (5, ErrorKind::UnexpectedSymbol("\"a\"".into()))
        );
    }
}
