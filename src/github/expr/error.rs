//! What can go wrong reading or evaluating an expression, and where.

/// An expression error: what went wrong and where, so that the workflow reader can point at
/// file:line:column. Parse errors point at the offending token; evaluation errors at the
/// function or operand that failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{kind} at column {column}")]
pub struct ExprError {
    pub kind: ErrorKind,
    /// Byte offset into the text that was parsed (the expression, or the whole string for
    /// [`super::Template`] and [`super::check`]).
    pub offset: usize,
    /// 1-based character column of `offset` in that text.
    pub column: usize,
}

impl ExprError {
    /// An error at byte `offset`; the column is filled in by [`ExprError::located_in`] once
    /// the text is known (offset + 1 until then, right for ASCII text).
    pub(crate) fn new(offset: usize, kind: ErrorKind) -> ExprError {
        ExprError {
            kind,
            offset,
            column: offset + 1,
        }
    }

    /// Computes the column of the offset in `text`.
    pub(crate) fn located_in(mut self, text: &str) -> ExprError {
        let offset = self.offset.min(text.len());
        let chars = text
            .get(..offset)
            .map_or(offset, |prefix| prefix.chars().count());
        self.column = chars + 1;
        self
    }

    /// The same error seen from a larger text where the expression starts at byte `start`.
    pub(crate) fn shifted(mut self, start: usize, whole: &str) -> ExprError {
        self.offset += start;
        self.located_in(whole)
    }
}

/// The kinds of expression errors. Messages follow the runner's where it has one, in berth's
/// lower-case style.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ErrorKind {
    #[error("unexpected symbol: '{0}'")]
    UnexpectedSymbol(String),
    #[error("unexpected end of expression")]
    UnexpectedEnd,
    #[error("unclosed string: a string ends with a single quote (a quote inside is written '')")]
    UnclosedString,
    #[error("expected an expression")]
    EmptyExpression,
    #[error("the expression is not closed: '${{{{' has no matching '}}}}'")]
    UnclosedExpression,
    #[error("unrecognized function: '{0}'")]
    UnknownFunction(String),
    #[error("function '{0}' is not available here")]
    FunctionNotAllowed(String),
    #[error("unrecognized named-value: '{0}' (contexts are {list})", list = super::CONTEXTS.join(", "))]
    UnknownContext(String),
    #[error("context '{name}' is not available here (available: {available})")]
    ContextNotAllowed { name: String, available: String },
    #[error("too few arguments for {function}: it takes at least {min}")]
    TooFewArguments { function: String, min: usize },
    #[error("too many arguments for {function}: it takes at most {max}")]
    TooManyArguments { function: String, max: usize },
    #[error("case takes an odd number of arguments: pairs of condition and value, then a default")]
    EvenArguments,
    #[error("exceeded max expression depth {0}")]
    TooDeep(usize),
    #[error("exceeded max expression length {0}")]
    TooLong(usize),
    #[error("the following format string is invalid: {0}")]
    InvalidFormat(String),
    #[error("the following format string references more arguments than were supplied: {0}")]
    FormatArgumentIndex(String),
    #[error("the format specifiers '{specifiers}' are not valid for objects of type '{kind}'")]
    FormatSpecifiers { specifiers: String, kind: String },
    #[error("case predicate must evaluate to a boolean value, not {0}")]
    CasePredicate(String),
    #[error("error parsing fromJSON: {0}")]
    FromJson(String),
    #[error("hashFiles failed: {0}")]
    HashFiles(String),
    #[error("{function}() failed: {message}")]
    Status { function: String, message: String },
    #[error("expected a string, but the expression gives an {0}")]
    ExpectedString(String),
}
