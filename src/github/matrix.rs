//! `strategy.matrix` expanded as GitHub expands it (the runner's `MatrixBuilder`): the
//! cartesian product of the vectors in key order (the first key varies slowest), minus the
//! combinations an `exclude` matches (a partial match: only the keys it names), each
//! `include` adding its extra keys to every combination it matches (never replacing an
//! original value; a later include may replace what an earlier one added) or, matching none,
//! becoming a combination of its own. Values compare as the expression language's `==` does
//! (`Ubuntu` equals `ubuntu`, `'3.10'` equals `3.1`). A matrix makes at most 256 jobs.
//!
//! Check-run names follow the runner's `JobNameBuilder`: the job's name (its `name:` if it is
//! literal, else its id) then ` (v1, v2, ...)`, the values of the combination's vectors
//! depth first (inside objects and arrays too), nulls and empty strings left out, extras an
//! include added left out; cut at 100 characters with `...`. A `name:` with an expression
//! replaces all of that by its value.

use crate::github::expr::{loose_eq, Contexts, ExprError, Host, Object, Scope, Template, Value};
use crate::source::yaml::Span;

/// GitHub's limit on the jobs one matrix makes.
pub const MAX_JOBS: usize = 256;

/// A job's `strategy.matrix`.
#[derive(Debug, Clone, PartialEq)]
pub enum Matrix {
    /// No expression in it: [`expand`] it.
    Literal(Value),
    /// An expression (`${{ fromJSON(needs.setup.outputs.matrix) }}`) or a mapping with
    /// expressions inside: [`evaluate`] it with the job's contexts, then [`expand`] the result.
    Deferred { value: Value, span: Span },
}

/// One job of a matrix.
#[derive(Debug, Clone, PartialEq)]
pub struct Combination {
    /// The `matrix` context: the vectors' values, then what includes added.
    pub matrix: Value,
    /// The values shown in the check-run name, rendered.
    pub name_values: Vec<String>,
}

/// Why a matrix cannot be expanded; `key` is the matrix key it is about, when there is one.
#[derive(Debug, Clone, PartialEq)]
pub struct MatrixError {
    pub message: String,
    pub key: Option<String>,
}

fn fail(message: impl Into<String>, key: Option<&str>) -> MatrixError {
    MatrixError {
        message: message.into(),
        key: key.map(String::from),
    }
}

/// Evaluates the expressions of a deferred matrix: a string that is exactly one `${{ }}`
/// becomes the expression's value (`fromJSON` gives a mapping or a list), other strings
/// with `${{ }}` become text.
pub fn evaluate(value: &Value, contexts: &Contexts, host: &dyn Host) -> Result<Value, ExprError> {
    Ok(match value {
        Value::String(s) if s.contains("${{") => {
            Template::parse(s, &Scope::STRATEGY)?.evaluate(contexts, host)?
        }
        Value::Array(items) => Value::array(
            items
                .iter()
                .map(|v| evaluate(v, contexts, host))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(o) => {
            let mut out = Object::new();
            for (k, v) in o.iter() {
                out.insert(k, evaluate(v, contexts, host)?);
            }
            Value::Object(std::sync::Arc::new(out))
        }
        other => other.clone(),
    })
}

/// Expands a matrix (a mapping of vectors, with `include` and `exclude`) into its
/// combinations, in GitHub's order.
pub fn expand(matrix: &Value) -> Result<Vec<Combination>, MatrixError> {
    let Value::Object(entries) = matrix else {
        return Err(fail(
            format!(
                "the matrix should be a mapping, found {}",
                matrix.kind_name()
            ),
            None,
        ));
    };
    let mut vectors: Vec<(&str, &[Value])> = Vec::new();
    let mut include: &[Value] = &[];
    let mut exclude: &[Value] = &[];
    for (key, value) in entries.iter() {
        let Value::Array(items) = value else {
            return Err(fail(
                format!("`{key}` should be a list, found {}", value.kind_name()),
                Some(key),
            ));
        };
        match key {
            "include" => include = items,
            "exclude" => exclude = items,
            _ if items.is_empty() => {
                return Err(fail(
                    format!("matrix vector `{key}` does not contain any values"),
                    Some(key),
                ))
            }
            _ => vectors.push((key, items)),
        }
    }
    if vectors.is_empty() && include.is_empty() {
        return Err(fail("a matrix must define at least one vector", None));
    }
    let is_vector = |k: &str| vectors.iter().any(|(v, _)| v.eq_ignore_ascii_case(k));

    let mut excludes = Vec::new();
    for item in exclude {
        let Value::Object(o) = item else {
            return Err(fail(
                "each `exclude` item should be a mapping",
                Some("exclude"),
            ));
        };
        if o.is_empty() {
            return Err(fail(
                "a matrix exclude filter must not be empty",
                Some("exclude"),
            ));
        }
        if let Some((k, _)) = o.iter().find(|(k, _)| !is_vector(k)) {
            return Err(fail(
                format!("matrix exclude key `{k}` does not match any key within the matrix"),
                Some("exclude"),
            ));
        }
        excludes.push(o);
    }
    // Each include: its filter (keys that are vectors) and its extras.
    let mut includes: Vec<(Vec<(&str, &Value)>, Vec<(&str, &Value)>)> = Vec::new();
    for item in include {
        let Value::Object(o) = item else {
            return Err(fail(
                "each `include` item should be a mapping",
                Some("include"),
            ));
        };
        if o.is_empty() {
            return Err(fail(
                "a matrix include mapping does not contain any values",
                Some("include"),
            ));
        }
        let (filter, extra) = o.iter().partition(|(k, _)| is_vector(k));
        includes.push((filter, extra));
    }

    let product = vectors
        .iter()
        .try_fold(1usize, |acc, (_, v)| acc.checked_mul(v.len()))
        .filter(|n| *n <= MAX_JOBS * 1024)
        .ok_or_else(|| fail(format!("the matrix makes more than {MAX_JOBS} jobs"), None))?;
    let product = if vectors.is_empty() { 0 } else { product };
    let mut matched = vec![false; includes.len()];
    let mut out = Vec::new();
    for index in 0..product {
        let mut combo = Object::new();
        let mut block = product;
        for (key, values) in &vectors {
            block /= values.len();
            combo.insert(*key, values[(index / block) % values.len()].clone());
        }
        if excludes
            .iter()
            .any(|f| f.iter().all(|(k, v)| matches(combo.get(k), v)))
        {
            continue;
        }
        let name_values = rendered(&combo);
        let mut extra = Object::new();
        for (i, (filter, adds)) in includes.iter().enumerate() {
            if filter.iter().all(|(k, v)| matches(combo.get(k), v)) {
                matched[i] = true;
                for (k, v) in adds {
                    extra.insert(*k, (*v).clone());
                }
            }
        }
        for (k, v) in extra.iter() {
            combo.insert(k, v.clone());
        }
        out.push(Combination {
            matrix: Value::Object(std::sync::Arc::new(combo)),
            name_values,
        });
        if out.len() > MAX_JOBS {
            return Err(fail(
                format!("the matrix makes more than {MAX_JOBS} jobs"),
                None,
            ));
        }
    }
    for (i, (filter, adds)) in includes.iter().enumerate() {
        if matched[i] {
            continue;
        }
        let mut combo = Object::new();
        for (k, v) in filter.iter().chain(adds) {
            combo.insert(*k, (*v).clone());
        }
        let name_values = rendered(&combo);
        out.push(Combination {
            matrix: Value::Object(std::sync::Arc::new(combo)),
            name_values,
        });
    }
    if out.len() > MAX_JOBS {
        return Err(fail(
            format!(
                "the matrix makes {} jobs, more than GitHub's {MAX_JOBS}",
                out.len()
            ),
            None,
        ));
    }
    Ok(out)
}

/// Whether a combination's value matches a filter's: leaf by leaf, with `==`'s coercions
/// (a filter's mapping or list names only the leaves it compares).
fn matches(actual: Option<&Value>, filter: &Value) -> bool {
    match filter {
        Value::Object(o) => o.iter().all(|(k, f)| match actual {
            Some(Value::Object(a)) => matches(a.get(k), f),
            _ => matches(None, f),
        }),
        Value::Array(items) => items.iter().enumerate().all(|(i, f)| match actual {
            Some(Value::Array(a)) => matches(a.get(i), f),
            _ => matches(None, f),
        }),
        leaf => loose_eq(actual.unwrap_or(&Value::Null), leaf),
    }
}

/// The values of a combination as its check-run name shows them: depth first, scalars only,
/// nulls and empty strings left out.
fn rendered(combo: &Object) -> Vec<String> {
    let mut out = Vec::new();
    let mut todo: Vec<&Value> = combo.values().collect();
    todo.reverse();
    while let Some(v) = todo.pop() {
        match v {
            Value::Array(items) => todo.extend(items.iter().rev()),
            Value::Object(o) => {
                let mut inner: Vec<&Value> = o.values().collect();
                inner.reverse();
                todo.extend(inner);
            }
            Value::Null => {}
            scalar => {
                let text = scalar.to_github_string();
                if !text.is_empty() {
                    out.push(text);
                }
            }
        }
    }
    out
}

/// A name with the values appended, as the runner's `JobNameBuilder` builds it.
pub fn display_name(base: &str, values: &[String]) -> String {
    let name = if values.is_empty() {
        base.to_string()
    } else {
        format!("{base} ({})", values.join(", "))
    };
    const MAX: usize = 100;
    if name.chars().count() > MAX {
        let cut: String = name.chars().take(MAX - 3).collect();
        return format!("{cut}...");
    }
    name
}

/// The check-run name of one job of a matrix (or of a job without one, given
/// `Combination { name_values: [] }`): `name` is the job's `name:` as written. A name with
/// expressions is evaluated with `contexts` (the caller puts `matrix`, `strategy`, `github`,
/// `needs`... in) and taken as it is; an empty result falls back to the default name.
pub fn check_run_name(
    job_id: &str,
    name: Option<&str>,
    combination: &Combination,
    contexts: &Contexts,
) -> Result<String, ExprError> {
    match name {
        Some(n) if n.contains("${{") => {
            let evaluated = Template::parse(n, &Scope::JOB)?.evaluate_string(contexts, &())?;
            if evaluated.is_empty() {
                return Ok(display_name(job_id, &combination.name_values));
            }
            Ok(evaluated)
        }
        Some(n) if !n.is_empty() => Ok(display_name(n, &combination.name_values)),
        _ => Ok(display_name(job_id, &combination.name_values)),
    }
}

/// The `strategy` context of job `index` of `total`.
pub fn strategy_context(
    fail_fast: bool,
    max_parallel: Option<f64>,
    index: usize,
    total: usize,
) -> Value {
    Value::object([
        ("fail-fast", Value::Bool(fail_fast)),
        ("job-index", Value::Number(index as f64)),
        ("job-total", Value::Number(total as f64)),
        (
            "max-parallel",
            Value::Number(max_parallel.filter(|m| *m > 0.0).unwrap_or(total as f64)),
        ),
    ])
}
