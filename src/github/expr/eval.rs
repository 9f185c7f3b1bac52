//! Evaluation: the contexts an expression reads, the caller's answers for the status functions
//! and `hashFiles`, and GitHub's semantics for every node.

use std::cmp::Ordering;
use std::sync::Arc;

use super::error::ExprError;
use super::functions;
use super::lexer::Op;
use super::parser::{Expr, IndexArg, Node, NodeKind, Status};
use super::value::{loose_cmp, loose_eq, Value};

/// The named contexts an expression can read (`github`, `env`, `matrix`, ...), by name
/// ignoring case. A context that is not set reads as null.
#[derive(Debug, Clone, Default)]
pub struct Contexts {
    named: Vec<(String, Value)>,
}

impl Contexts {
    pub fn new() -> Contexts {
        Contexts::default()
    }

    /// Sets a context; `env` should be built from [`super::Object::case_sensitive`], as
    /// GitHub's is.
    pub fn insert(&mut self, name: &str, value: Value) -> &mut Contexts {
        let name = name.to_ascii_lowercase();
        match self.named.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = value,
            None => self.named.push((name, value)),
        }
        self
    }

    pub fn get(&self, name: &str) -> Option<&Value> {
        self.named
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }
}

/// What only the caller knows: the job's (or the needs') status and the workspace's files.
/// `always()` needs no answer: it is true.
pub trait Host {
    /// `success()`, `failure()` or `cancelled()`. `args` are the job names a job-level
    /// `success('build')` names (empty elsewhere).
    fn status(&self, status: Status, args: &[Value]) -> Result<bool, String>;

    /// `hashFiles(patterns...)`: the SHA-256 of the matching files as GitHub computes it, or
    /// "" when nothing matches. A first pattern `--follow-symbolic-links` is an option.
    fn hash_files(&self, patterns: &[String]) -> Result<String, String>;
}

/// A host for fields where neither status functions nor `hashFiles` are in scope (the parser
/// already refuses them there, so these answers are never reached in practice).
impl Host for () {
    fn status(&self, status: Status, _args: &[Value]) -> Result<bool, String> {
        Err(format!("{status:?} is not available here"))
    }

    fn hash_files(&self, _patterns: &[String]) -> Result<String, String> {
        Err("hashFiles is not available here".to_string())
    }
}

impl Expr {
    /// Evaluates the expression; errors (a bad `format` string, invalid JSON, a failing
    /// `hashFiles`) carry the column of the call that failed.
    pub fn evaluate(&self, contexts: &Contexts, host: &dyn Host) -> Result<Value, ExprError> {
        let env = Env { contexts, host };
        env.eval(&self.root)
            .map(|e| e.value)
            .map_err(|e| e.located_in(&self.text))
    }

    /// Evaluates and applies GitHub's truthiness, as `if:` does.
    pub fn is_truthy(&self, contexts: &Contexts, host: &dyn Host) -> Result<bool, ExprError> {
        self.evaluate(contexts, host).map(|v| v.is_truthy())
    }
}

/// A value, and whether it is the array a wildcard produced: indexing such an array applies the
/// index to each element (`a.*.b`), where indexing an ordinary array picks an element.
pub(crate) struct Evaluated {
    pub value: Value,
    pub filtered: bool,
}

impl From<Value> for Evaluated {
    fn from(value: Value) -> Evaluated {
        Evaluated {
            value,
            filtered: false,
        }
    }
}

pub(crate) struct Env<'a> {
    pub contexts: &'a Contexts,
    pub host: &'a dyn Host,
}

impl Env<'_> {
    pub fn value(&self, node: &Node) -> Result<Value, ExprError> {
        self.eval(node).map(|e| e.value)
    }

    pub fn eval(&self, node: &Node) -> Result<Evaluated, ExprError> {
        match &node.kind {
            NodeKind::Literal(v) => Ok(v.clone().into()),
            NodeKind::Context(name) => {
                Ok(self.contexts.get(name).cloned().unwrap_or_default().into())
            }
            NodeKind::Index(target, arg) => {
                let target = self.eval(target)?;
                self.index(target, arg)
            }
            NodeKind::Not(e) => Ok(Value::Bool(!self.value(e)?.is_truthy()).into()),
            NodeKind::Compare(op, l, r) => {
                let (l, r) = (self.value(l)?, self.value(r)?);
                let result = match op {
                    Op::Eq => loose_eq(&l, &r),
                    Op::Ne => !loose_eq(&l, &r),
                    // `>=` is "equal or greater", so null >= null is true though neither is
                    // greater.
                    Op::Ge => loose_eq(&l, &r) || loose_cmp(&l, &r) == Some(Ordering::Greater),
                    Op::Le => loose_eq(&l, &r) || loose_cmp(&l, &r) == Some(Ordering::Less),
                    Op::Gt => loose_cmp(&l, &r) == Some(Ordering::Greater),
                    Op::Lt => loose_cmp(&l, &r) == Some(Ordering::Less),
                    Op::And | Op::Or | Op::Not => false, // not produced by the parser
                };
                Ok(Value::Bool(result).into())
            }
            // `&&` and `||` give an operand itself, not a boolean, and stop at the first that
            // decides: `a && 'x' || 'y'` is GitHub's ternary.
            NodeKind::And(operands) => {
                let mut last = Evaluated::from(Value::Null);
                for operand in operands {
                    last = self.eval(operand)?;
                    if !last.value.is_truthy() {
                        break;
                    }
                }
                Ok(last)
            }
            NodeKind::Or(operands) => {
                let mut last = Evaluated::from(Value::Null);
                for operand in operands {
                    last = self.eval(operand)?;
                    if last.value.is_truthy() {
                        break;
                    }
                }
                Ok(last)
            }
            NodeKind::Call(function, args) => {
                functions::call(self, *function, args, node.offset).map(Evaluated::from)
            }
        }
    }

    /// `target[arg]` as the runner's `Index` does it: a missing key, an index out of range or
    /// indexing a non-collection is null (a wildcard on one gives an empty array); a key is
    /// the index's string form, an array position its number rounded down.
    fn index(&self, target: Evaluated, arg: &IndexArg) -> Result<Evaluated, ExprError> {
        let collection = matches!(target.value, Value::Array(_) | Value::Object(_));
        // The runner evaluates the index only when there is something to index.
        if !collection {
            return Ok(match arg {
                IndexArg::Wildcard => filtered(Vec::new()),
                IndexArg::Expr(_) => Value::Null.into(),
            });
        }
        let key = match arg {
            IndexArg::Wildcard => None,
            IndexArg::Expr(e) => Some(self.value(e)?),
        };
        let key = key.as_ref();
        if target.filtered {
            let mut out = Vec::new();
            if let Value::Array(items) = &target.value {
                for item in items.iter() {
                    match (item, key) {
                        (Value::Object(o), None) => out.extend(o.values().cloned()),
                        (Value::Array(a), None) => out.extend(a.iter().cloned()),
                        (Value::Object(o), Some(k)) => {
                            if let Some(v) = string_key(k).and_then(|k| o.get(&k)) {
                                out.push(v.clone());
                            }
                        }
                        (Value::Array(a), Some(k)) => {
                            if let Some(v) = array_position(k).and_then(|i| a.get(i)) {
                                out.push(v.clone());
                            }
                        }
                        _ => {}
                    }
                }
            }
            return Ok(filtered(out));
        }
        let result = match (&target.value, key) {
            (Value::Object(o), None) => return Ok(filtered(o.values().cloned().collect())),
            (Value::Array(a), None) => return Ok(filtered(a.to_vec())),
            (Value::Object(o), Some(k)) => string_key(k).and_then(|k| o.get(&k).cloned()),
            (Value::Array(a), Some(k)) => array_position(k).and_then(|i| a.get(i).cloned()),
            _ => None,
        };
        Ok(result.unwrap_or_default().into())
    }

    pub fn status(&self, status: Status, args: &[Value]) -> Result<bool, String> {
        match status {
            Status::Always => Ok(true),
            _ => self.host.status(status, args),
        }
    }
}

fn filtered(items: Vec<Value>) -> Evaluated {
    Evaluated {
        value: Value::Array(Arc::new(items)),
        filtered: true,
    }
}

/// An object key from an index value: any primitive's string form (`a[1]` reads key "1").
fn string_key(k: &Value) -> Option<String> {
    k.is_primitive().then(|| k.to_github_string())
}

/// An array position from an index value: its number, rounded down; NaN and negatives none.
fn array_position(k: &Value) -> Option<usize> {
    let n = k.to_number();
    if n.is_nan() || n < 0.0 || n.floor() > f64::from(i32::MAX) {
        return None;
    }
    Some(n.floor() as usize)
}
