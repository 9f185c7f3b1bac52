//! GitHub Actions' expression language, `${{ }}`: values, parsing, evaluation, the functions,
//! interpolation into strings, `if:` conditions and static checking.
//!
//! It follows GitHub's documentation ("Evaluate expressions in workflows and actions",
//! "Contexts reference") and, where the documentation is silent, the runner's evaluator
//! (`src/Sdk/Expressions` in actions/runner), because a workflow must mean the same here as on
//! GitHub. Behaviour worth knowing:
//! - `==`, `<` & co. coerce: a number against a string compares numbers, null and booleans
//!   become numbers against anything (so `null == false` and `null == ''` are true), NaN
//!   equals nothing, strings compare ignoring case, arrays and objects equal only themselves.
//! - `&&` and `||` give one of their operands, not a boolean, and evaluate no further than
//!   needed; `!` gives a boolean.
//! - Falsy: `false`, `0`, `-0`, `NaN`, `''`, `null`; every array and object is truthy.
//! - Numbers render with at most 15 significant digits (`3.10` is `3.1`, `1.0` is `1`,
//!   `1E+15`, `1E-05`); in text, null is empty and arrays and objects are the words `Array`
//!   and `Object` (use `toJSON` for their content); a lone `${{ }}` in a string field that
//!   gives an array or object is an error.
//! - Context names and function names ignore case (`GITHUB.SHA`, `toJson`); object keys too,
//!   except in `env`; `null`, `true`, `false`, `NaN` and `Infinity` are case-sensitive keywords.
//! - A missing property, an index out of range, or indexing something that is not an array or
//!   object is null, never an error; `a.*.b` collects `b` from every element of `a`.
//! - Which contexts and functions an expression may use depends on the field ([`Scope`]); a
//!   name outside it is a parse error, reported before anything runs.
//! - `case(pred, value, ..., default)`, GitHub's newest function, is supported.
//!
//! Deliberate differences: `fromJSON` reads strict JSON (the runner's default reader also takes
//! comments, single quotes and trailing text); an index must be an expression or exactly `*`
//! (`a[* == 1]`, meaningless, is refused); more than 100 nested parentheses are refused.

mod error;
mod eval;
mod functions;
mod lexer;
mod parser;
mod template;
mod value;

#[cfg(test)]
mod tests;

pub use error::{ErrorKind, ExprError};
pub use eval::{Contexts, Host};
pub use parser::{Allowed, Expr, Function, Scope, Status, MAX_DEPTH, MAX_LENGTH};
pub use template::{check, find_expressions, interpolate, Condition, Span, Template};
pub use value::{format_number, loose_cmp, loose_eq, parse_number, Object, Value};

/// Every context GitHub defines ("Contexts reference"), in lower case.
pub const CONTEXTS: &[&str] = &[
    "github", "env", "vars", "secrets", "matrix", "strategy", "needs", "steps", "job", "jobs",
    "runner", "inputs",
];
