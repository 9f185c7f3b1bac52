//! The syntax tree and the parser: GitHub's grammar and precedence (`!` above `<` `<=` `>` `>=`,
//! above `==` `!=`, above `&&`, above `||`; `.`, `[ ]` and calls bind tightest), its limits, and
//! the check of every function and context name against the [`Scope`] of the field the
//! expression sits in.

use super::error::{ErrorKind, ExprError};
use super::lexer::{tokenize, Op, Tok, Token};
use super::value::Value;
use super::CONTEXTS;

/// The runner refuses expressions longer than this (UTF-16 units, as .NET counts).
pub const MAX_LENGTH: usize = 21_000;
/// The runner refuses trees deeper than this.
pub const MAX_DEPTH: usize = 50;
/// Nesting berth follows before giving up, to keep recursion shallow; only parentheses, which
/// add no depth to GitHub's tree, can reach it without also passing [`MAX_DEPTH`].
const MAX_NESTING: usize = 100;

/// A parsed expression, ready to evaluate any number of times.
#[derive(Debug, Clone)]
pub struct Expr {
    pub(crate) root: Node,
    /// The text it was parsed from, for the columns of evaluation errors.
    pub(crate) text: String,
}

#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub kind: NodeKind,
    /// Byte offset of the node's first token.
    pub offset: usize,
}

#[derive(Debug, Clone)]
pub(crate) enum NodeKind {
    Literal(Value),
    /// A context, by its lower-case name.
    Context(String),
    /// `a.b`, `a['b']`, `a[0]`, `a.*`, `a[*]`.
    Index(Box<Node>, Box<IndexArg>),
    Not(Box<Node>),
    Compare(Op, Box<Node>, Box<Node>),
    /// `&&` and `||` with all their operands, flattened as the runner flattens them.
    And(Vec<Node>),
    Or(Vec<Node>),
    Call(Function, Vec<Node>),
}

#[derive(Debug, Clone)]
pub(crate) enum IndexArg {
    Wildcard,
    Expr(Node),
}

/// The functions GitHub knows. Names are matched ignoring case (`toJson`, `toJSON`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    Contains,
    StartsWith,
    EndsWith,
    Format,
    Join,
    ToJson,
    FromJson,
    Case,
    HashFiles,
    Status(Status),
}

/// The status functions: which the caller answers (see [`super::Host`]), `always()` excepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Success,
    Failure,
    Cancelled,
    Always,
}

impl Function {
    /// Its name as GitHub's documentation spells it.
    pub fn name(self) -> &'static str {
        match self {
            Function::Contains => "contains",
            Function::StartsWith => "startsWith",
            Function::EndsWith => "endsWith",
            Function::Format => "format",
            Function::Join => "join",
            Function::ToJson => "toJSON",
            Function::FromJson => "fromJSON",
            Function::Case => "case",
            Function::HashFiles => "hashFiles",
            Function::Status(Status::Success) => "success",
            Function::Status(Status::Failure) => "failure",
            Function::Status(Status::Cancelled) => "cancelled",
            Function::Status(Status::Always) => "always",
        }
    }

    fn from_name(name: &str) -> Option<Function> {
        let f = match name.to_ascii_lowercase().as_str() {
            "contains" => Function::Contains,
            "startswith" => Function::StartsWith,
            "endswith" => Function::EndsWith,
            "format" => Function::Format,
            "join" => Function::Join,
            "tojson" => Function::ToJson,
            "fromjson" => Function::FromJson,
            "case" => Function::Case,
            "hashfiles" => Function::HashFiles,
            "success" => Function::Status(Status::Success),
            "failure" => Function::Status(Status::Failure),
            "cancelled" => Function::Status(Status::Cancelled),
            "always" => Function::Status(Status::Always),
            _ => return None,
        };
        Some(f)
    }

    /// The built-in functions' argument counts; `None` for those a [`Scope`] grants.
    fn builtin_arity(self) -> Option<(usize, usize)> {
        match self {
            Function::Contains | Function::StartsWith | Function::EndsWith => Some((2, 2)),
            Function::Format => Some((1, usize::from(u8::MAX))),
            Function::Join => Some((1, 2)),
            Function::ToJson | Function::FromJson => Some((1, 1)),
            Function::Case => Some((3, usize::from(u8::MAX))),
            Function::HashFiles | Function::Status(_) => None,
        }
    }
}

/// A function a field allows beyond the built-in ones, with its argument counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Allowed {
    pub function: Function,
    pub min: usize,
    pub max: usize,
}

/// What an expression may name where it stands: GitHub gives each workflow field its own
/// contexts and functions ("Context availability"; `workflow-v1.0.json` in actions/runner).
/// A name outside the scope is a parse error, as on GitHub, found before anything runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scope {
    pub contexts: &'static [&'static str],
    pub functions: &'static [Allowed],
}

const fn allow(function: Function, min: usize, max: usize) -> Allowed {
    Allowed { function, min, max }
}

const HASH_FILES: Allowed = allow(Function::HashFiles, 1, u8::MAX as usize);
const ALWAYS: Allowed = allow(Function::Status(Status::Always), 0, 0);
const CANCELLED: Allowed = allow(Function::Status(Status::Cancelled), 0, 0);
const SUCCESS: Allowed = allow(Function::Status(Status::Success), 0, 0);
const FAILURE: Allowed = allow(Function::Status(Status::Failure), 0, 0);

impl Scope {
    /// Every context and function: for tests and callers that check nothing.
    pub const ALL: Scope = Scope {
        contexts: CONTEXTS,
        functions: &[HASH_FILES, ALWAYS, CANCELLED, SUCCESS, FAILURE],
    };
    /// `run-name`, `on.workflow_call.inputs.<id>.default`, workflow `concurrency`.
    pub const WORKFLOW: Scope = Scope {
        contexts: &["github", "inputs", "vars"],
        functions: &[],
    };
    /// Workflow-level `env`.
    pub const WORKFLOW_ENV: Scope = Scope {
        contexts: &["github", "inputs", "vars", "secrets"],
        functions: &[],
    };
    /// `on.workflow_call.outputs.<id>.value`.
    pub const WORKFLOW_OUTPUT: Scope = Scope {
        contexts: &["github", "inputs", "vars", "jobs"],
        functions: &[],
    };
    /// `jobs.<id>.strategy`: a matrix may come from a need's output.
    pub const STRATEGY: Scope = Scope {
        contexts: &["github", "inputs", "vars", "needs"],
        functions: &[],
    };
    /// `jobs.<id>.if`: status functions; `success()` and `failure()` take job names there.
    pub const JOB_IF: Scope = Scope {
        contexts: &["github", "inputs", "vars", "needs"],
        functions: &[
            ALWAYS,
            CANCELLED,
            allow(Function::Status(Status::Success), 0, usize::MAX),
            allow(Function::Status(Status::Failure), 0, usize::MAX),
        ],
    };
    /// Job fields evaluated per matrix combination: `name`, `runs-on`, `container`,
    /// `services`, `environment`, `concurrency`, `timeout-minutes`, `continue-on-error`.
    pub const JOB: Scope = Scope {
        contexts: &["github", "inputs", "vars", "needs", "strategy", "matrix"],
        functions: &[],
    };
    /// Job-level `env`: as [`Scope::JOB`] plus `secrets`.
    pub const JOB_ENV: Scope = Scope {
        contexts: &[
            "github", "inputs", "vars", "needs", "strategy", "matrix", "secrets",
        ],
        functions: &[],
    };
    /// `jobs.<id>.defaults.run`: as [`Scope::JOB`] plus `env`.
    pub const JOB_DEFAULTS_RUN: Scope = Scope {
        contexts: &[
            "github", "inputs", "vars", "strategy", "matrix", "needs", "env",
        ],
        functions: &[],
    };
    /// A `container:` or service's `credentials`.
    pub const CREDENTIALS: Scope = Scope {
        contexts: &["github", "inputs", "vars", "secrets", "env"],
        functions: &[],
    };
    /// `jobs.<id>.outputs.<id>`: everything the job's steps leave, without `hashFiles`.
    pub const JOB_OUTPUTS: Scope = Scope {
        contexts: &[
            "github", "inputs", "vars", "needs", "strategy", "matrix", "secrets", "steps", "job",
            "runner", "env",
        ],
        functions: &[],
    };
    /// Step fields: `run`, `with`, `env`, `name`, `working-directory`, `continue-on-error`,
    /// `timeout-minutes`.
    pub const STEP: Scope = Scope {
        contexts: &[
            "github", "inputs", "vars", "needs", "strategy", "matrix", "secrets", "steps", "job",
            "runner", "env",
        ],
        functions: &[HASH_FILES],
    };
    /// `jobs.<id>.steps[*].if`: no `secrets` (GitHub's rule), status functions.
    pub const STEP_IF: Scope = Scope {
        contexts: &[
            "github", "inputs", "vars", "needs", "strategy", "matrix", "steps", "job", "runner",
            "env",
        ],
        functions: &[ALWAYS, CANCELLED, SUCCESS, FAILURE, HASH_FILES],
    };

    /// Whether this scope offers the status functions (an `if:`).
    pub(crate) fn has_status_functions(&self) -> bool {
        self.functions
            .iter()
            .any(|a| matches!(a.function, Function::Status(_)))
    }
}

impl Expr {
    /// Parses `text` (without `${{ }}`), checking every name against `scope`.
    pub fn parse(text: &str, scope: &Scope) -> Result<Expr, ExprError> {
        parse_node(text, scope)
            .map(|root| Expr {
                root,
                text: text.to_string(),
            })
            .map_err(|e| e.located_in(text))
    }

    /// Whether the expression calls `success()`, `failure()`, `cancelled()` or `always()`
    /// anywhere: GitHub's test for adding the implicit `success() &&` to an `if:`.
    pub fn uses_status_function(&self) -> bool {
        fn walk(n: &Node) -> bool {
            match &n.kind {
                NodeKind::Literal(_) | NodeKind::Context(_) => false,
                NodeKind::Index(target, arg) => {
                    walk(target) || matches!(&**arg, IndexArg::Expr(e) if walk(e))
                }
                NodeKind::Not(e) => walk(e),
                NodeKind::Compare(_, l, r) => walk(l) || walk(r),
                NodeKind::And(v) | NodeKind::Or(v) => v.iter().any(walk),
                NodeKind::Call(Function::Status(_), _) => true,
                NodeKind::Call(_, args) => args.iter().any(walk),
            }
        }
        walk(&self.root)
    }

    /// The expression's text, as parsed.
    pub fn text(&self) -> &str {
        &self.text
    }
}

fn parse_node(text: &str, scope: &Scope) -> Result<Node, ExprError> {
    if text.encode_utf16().count() > MAX_LENGTH {
        return Err(ExprError::new(0, ErrorKind::TooLong(MAX_LENGTH)));
    }
    let tokens = tokenize(text)?;
    if tokens.is_empty() {
        return Err(ExprError::new(0, ErrorKind::EmptyExpression));
    }
    let mut parser = Parser {
        text,
        tokens: &tokens,
        pos: 0,
        scope,
        nesting: 0,
    };
    let root = parser.or()?;
    if let Some(t) = parser.peek() {
        return Err(parser.unexpected(t));
    }
    if depth(&root) > MAX_DEPTH {
        return Err(ExprError::new(0, ErrorKind::TooDeep(MAX_DEPTH)));
    }
    Ok(root)
}

/// The tree's depth as the runner counts it: every operator, index and call is a level.
fn depth(n: &Node) -> usize {
    1 + match &n.kind {
        NodeKind::Literal(_) | NodeKind::Context(_) => 0,
        NodeKind::Index(target, arg) => {
            let arg_depth = match &**arg {
                IndexArg::Wildcard => 1,
                IndexArg::Expr(e) => depth(e),
            };
            depth(target).max(arg_depth)
        }
        NodeKind::Not(e) => depth(e),
        NodeKind::Compare(_, l, r) => depth(l).max(depth(r)),
        NodeKind::And(v) | NodeKind::Or(v) | NodeKind::Call(_, v) => {
            v.iter().map(depth).max().unwrap_or(0)
        }
    }
}

struct Parser<'a> {
    text: &'a str,
    tokens: &'a [Token],
    pos: usize,
    scope: &'a Scope,
    nesting: usize,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<&'a Token> {
        self.tokens.get(self.pos)
    }

    fn next(&mut self) -> Option<&'a Token> {
        let t = self.tokens.get(self.pos);
        self.pos += 1;
        t
    }

    fn peek_op(&self) -> Option<Op> {
        match self.peek() {
            Some(Token {
                tok: Tok::Op(op), ..
            }) => Some(*op),
            _ => None,
        }
    }

    fn unexpected(&self, t: &Token) -> ExprError {
        ExprError::new(
            t.start,
            ErrorKind::UnexpectedSymbol(self.text[t.start..t.end].to_string()),
        )
    }

    fn end(&self) -> ExprError {
        ExprError::new(self.text.len(), ErrorKind::UnexpectedEnd)
    }

    /// The next token, which must be `want`.
    fn expect(&mut self, want: &Tok) -> Result<&'a Token, ExprError> {
        match self.next() {
            Some(t) if &t.tok == want => Ok(t),
            Some(t) => Err(self.unexpected(t)),
            None => Err(self.end()),
        }
    }

    fn enter(&mut self, at: usize) -> Result<(), ExprError> {
        self.nesting += 1;
        if self.nesting > MAX_NESTING {
            return Err(ExprError::new(at, ErrorKind::TooDeep(MAX_DEPTH)));
        }
        Ok(())
    }

    fn or(&mut self) -> Result<Node, ExprError> {
        let first = self.and()?;
        if self.peek_op() != Some(Op::Or) {
            return Ok(first);
        }
        let offset = first.offset;
        let mut operands = Vec::new();
        push_flat(&mut operands, first, true);
        while self.peek_op() == Some(Op::Or) {
            self.pos += 1;
            let next = self.and()?;
            push_flat(&mut operands, next, true);
        }
        Ok(Node {
            kind: NodeKind::Or(operands),
            offset,
        })
    }

    fn and(&mut self) -> Result<Node, ExprError> {
        let first = self.equality()?;
        if self.peek_op() != Some(Op::And) {
            return Ok(first);
        }
        let offset = first.offset;
        let mut operands = Vec::new();
        push_flat(&mut operands, first, false);
        while self.peek_op() == Some(Op::And) {
            self.pos += 1;
            let next = self.equality()?;
            push_flat(&mut operands, next, false);
        }
        Ok(Node {
            kind: NodeKind::And(operands),
            offset,
        })
    }

    fn equality(&mut self) -> Result<Node, ExprError> {
        let mut left = self.comparison()?;
        while let Some(op @ (Op::Eq | Op::Ne)) = self.peek_op() {
            self.pos += 1;
            let right = self.comparison()?;
            left = compare(op, left, right);
        }
        Ok(left)
    }

    fn comparison(&mut self) -> Result<Node, ExprError> {
        let mut left = self.unary()?;
        while let Some(op @ (Op::Lt | Op::Le | Op::Gt | Op::Ge)) = self.peek_op() {
            self.pos += 1;
            let right = self.unary()?;
            left = compare(op, left, right);
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Node, ExprError> {
        if self.peek_op() == Some(Op::Not) {
            let start = self.next().map_or(0, |t| t.start);
            self.enter(start)?;
            let operand = self.unary()?;
            self.nesting -= 1;
            return Ok(Node {
                kind: NodeKind::Not(Box::new(operand)),
                offset: start,
            });
        }
        self.postfix()
    }

    fn postfix(&mut self) -> Result<Node, ExprError> {
        let (mut node, indexable) = self.primary()?;
        while let Some(t) = self.peek() {
            match t.tok {
                Tok::Dot | Tok::LBracket if !indexable => return Err(self.unexpected(t)),
                Tok::Dot => {
                    self.pos += 1;
                    let arg = match self.next() {
                        Some(Token {
                            tok: Tok::Property(name),
                            start,
                            ..
                        }) => IndexArg::Expr(Node {
                            kind: NodeKind::Literal(Value::String(name.clone())),
                            offset: *start,
                        }),
                        Some(Token { tok: Tok::Star, .. }) => IndexArg::Wildcard,
                        Some(t) => return Err(self.unexpected(t)),
                        None => return Err(self.end()),
                    };
                    node = index(node, arg);
                }
                Tok::LBracket => {
                    self.pos += 1;
                    let is_star = matches!(self.peek(), Some(Token { tok: Tok::Star, .. }));
                    let arg = if is_star {
                        self.pos += 1;
                        IndexArg::Wildcard
                    } else {
                        self.enter(t.start)?;
                        let e = self.or()?;
                        self.nesting -= 1;
                        IndexArg::Expr(e)
                    };
                    self.expect(&Tok::RBracket)?;
                    node = index(node, arg);
                }
                _ => break,
            }
        }
        Ok(node)
    }

    /// An operand, and whether `.` or `[` may follow it (not after a literal: `'a'.b` is an
    /// error on GitHub).
    fn primary(&mut self) -> Result<(Node, bool), ExprError> {
        let Some(t) = self.next() else {
            return Err(self.end());
        };
        let literal = |v: Value| {
            Ok((
                Node {
                    kind: NodeKind::Literal(v),
                    offset: t.start,
                },
                false,
            ))
        };
        match &t.tok {
            Tok::Null => literal(Value::Null),
            Tok::Bool(b) => literal(Value::Bool(*b)),
            Tok::Number(n) => literal(Value::Number(*n)),
            Tok::Str(s) => literal(Value::String(s.clone())),
            Tok::Name(name) => {
                let lower = name.to_ascii_lowercase();
                if !CONTEXTS.contains(&lower.as_str()) {
                    return Err(ExprError::new(
                        t.start,
                        ErrorKind::UnknownContext(name.clone()),
                    ));
                }
                if !self.scope.contexts.contains(&lower.as_str()) {
                    return Err(ExprError::new(
                        t.start,
                        ErrorKind::ContextNotAllowed {
                            name: name.clone(),
                            available: self.scope.contexts.join(", "),
                        },
                    ));
                }
                Ok((
                    Node {
                        kind: NodeKind::Context(lower),
                        offset: t.start,
                    },
                    true,
                ))
            }
            Tok::Function(name) => self.call(t, name).map(|n| (n, true)),
            Tok::LParen => {
                self.enter(t.start)?;
                let inner = self.or()?;
                self.nesting -= 1;
                self.expect(&Tok::RParen)?;
                Ok((inner, true))
            }
            _ => Err(self.unexpected(t)),
        }
    }

    fn call(&mut self, t: &'a Token, name: &str) -> Result<Node, ExprError> {
        let Some(function) = Function::from_name(name) else {
            return Err(ExprError::new(
                t.start,
                ErrorKind::UnknownFunction(name.to_string()),
            ));
        };
        let (min, max) = match function.builtin_arity() {
            Some(arity) => arity,
            None => match self.scope.functions.iter().find(|a| a.function == function) {
                Some(a) => (a.min, a.max),
                None => {
                    return Err(ExprError::new(
                        t.start,
                        ErrorKind::FunctionNotAllowed(name.to_string()),
                    ))
                }
            },
        };
        self.expect(&Tok::LParen)?;
        self.enter(t.start)?;
        let mut args = Vec::new();
        if matches!(
            self.peek(),
            Some(Token {
                tok: Tok::RParen,
                ..
            })
        ) {
            self.pos += 1;
        } else {
            loop {
                args.push(self.or()?);
                match self.next() {
                    Some(Token {
                        tok: Tok::Comma, ..
                    }) => {}
                    Some(Token {
                        tok: Tok::RParen, ..
                    }) => break,
                    Some(t) => return Err(self.unexpected(t)),
                    None => return Err(self.end()),
                }
            }
        }
        self.nesting -= 1;
        let function_name = function.name().to_string();
        if args.len() < min {
            return Err(ExprError::new(
                t.start,
                ErrorKind::TooFewArguments {
                    function: function_name,
                    min,
                },
            ));
        }
        if args.len() > max {
            return Err(ExprError::new(
                t.start,
                ErrorKind::TooManyArguments {
                    function: function_name,
                    max,
                },
            ));
        }
        if function == Function::Case && args.len() % 2 == 0 {
            return Err(ExprError::new(t.start, ErrorKind::EvenArguments));
        }
        Ok(Node {
            kind: NodeKind::Call(function, args),
            offset: t.start,
        })
    }
}

fn compare(op: Op, left: Node, right: Node) -> Node {
    let offset = left.offset;
    Node {
        kind: NodeKind::Compare(op, Box::new(left), Box::new(right)),
        offset,
    }
}

fn index(target: Node, arg: IndexArg) -> Node {
    let offset = target.offset;
    Node {
        kind: NodeKind::Index(Box::new(target), Box::new(arg)),
        offset,
    }
}

/// Adds an operand to an `||` (or `&&`) list, splicing in a parenthesised list of the same
/// operator: `(a || b) || c` is one `||` of three, as the runner builds it.
fn push_flat(operands: &mut Vec<Node>, node: Node, or: bool) {
    match node.kind {
        NodeKind::Or(inner) if or => operands.extend(inner),
        NodeKind::And(inner) if !or => operands.extend(inner),
        kind => operands.push(Node {
            kind,
            offset: node.offset,
        }),
    }
}
