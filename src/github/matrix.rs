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
    let mut includes: Vec<(Pairs, Pairs)> = Vec::new();
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

/// Keys and values of an include: its filter (the keys that are vectors) or its extras.
type Pairs<'a> = Vec<(&'a str, &'a Value)>;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::yaml;

    /// A matrix written in YAML, read as the workflow reader reads it.
    fn read(src: &str) -> Value {
        let node = yaml::parse(src).unwrap();
        crate::github::workflow::matrix_value_for_tests(&node)
    }

    fn combos(src: &str) -> Vec<String> {
        expand(&read(src))
            .unwrap()
            .iter()
            .map(|c| show(&c.matrix))
            .collect()
    }

    /// A combination's keys and values in their order.
    fn show(v: &Value) -> String {
        let Value::Object(o) = v else { panic!("{v:?}") };
        let pairs: Vec<String> = o
            .iter()
            .map(|(k, v)| format!("{k}={}", v.to_github_string()))
            .collect();
        pairs.join(" ")
    }

    /// "Running variations of jobs in a workflow: Example: Expanding configurations".
    #[test]
    fn includes_extend_or_add_as_the_docs_show() {
        let got = combos(
            "fruit: [apple, pear]\nanimal: [cat, dog]\ninclude:\n  - color: green\n  - color: pink\n    animal: cat\n  - fruit: apple\n    shape: circle\n  - fruit: banana\n  - fruit: banana\n    animal: cat\n",
        );
        assert_eq!(
            got,
            [
                "fruit=apple animal=cat color=pink shape=circle",
                "fruit=apple animal=dog color=green shape=circle",
                "fruit=pear animal=cat color=pink",
                "fruit=pear animal=dog color=green",
                "fruit=banana",
                "fruit=banana animal=cat",
            ]
        );
    }

    /// "Example: Excluding matrix configurations": 12 combinations, 3 excluded (the second
    /// exclude is partial: it removes both environments).
    #[test]
    fn excludes_match_partially() {
        let got = combos(
            "os: [macos-latest, windows-latest]\nversion: [12, 14, 16]\nenvironment: [staging, production]\nexclude:\n  - os: macos-latest\n    version: 12\n    environment: production\n  - os: windows-latest\n    version: 16\n",
        );
        assert_eq!(got.len(), 9);
        assert!(!got
            .iter()
            .any(|c| c.contains(r#""os":"windows-latest","version":16"#)));
        assert_eq!(got[0], "os=macos-latest version=12 environment=staging");
        assert_eq!(got[1], "os=macos-latest version=14 environment=staging");
    }

    /// "Example: Adding configurations": an include only of new combinations, and one that
    /// extends a combination (its extra value not in the check-run name).
    #[test]
    fn include_only_matrices_and_check_run_names() {
        let got = combos("include:\n  - site: production\n    datacenter: site-a\n  - site: staging\n    datacenter: site-b\n");
        assert_eq!(
            got,
            [
                "site=production datacenter=site-a",
                "site=staging datacenter=site-b"
            ]
        );

        let m = read("os: [windows-latest, ubuntu-latest]\nnode: [14, 16]\ninclude:\n  - os: windows-latest\n    node: 16\n    npm: 6\n");
        let all = expand(&m).unwrap();
        let names: Vec<String> = all
            .iter()
            .map(|c| check_run_name("build", None, c, &Contexts::new()).unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "build (windows-latest, 14)",
                "build (windows-latest, 16)",
                "build (ubuntu-latest, 14)",
                "build (ubuntu-latest, 16)"
            ]
        );
        assert_eq!(show(&all[1].matrix), "os=windows-latest node=16 npm=6");
        // A literal `name:` takes the values too; one with an expression is its value alone.
        assert_eq!(
            check_run_name("build", Some("Build"), &all[0], &Contexts::new()).unwrap(),
            "Build (windows-latest, 14)"
        );
        let mut contexts = Contexts::new();
        contexts.insert("matrix", all[0].matrix.clone());
        assert_eq!(
            check_run_name(
                "build",
                Some("Node ${{ matrix.node }} on ${{ matrix.os }}"),
                &all[0],
                &contexts
            )
            .unwrap(),
            "Node 14 on windows-latest"
        );
    }

    #[test]
    fn values_compare_and_render_as_github_does() {
        // `==` ignores case and coerces: `Ubuntu` excludes `ubuntu`, '3.10' matches 3.1.
        let got = combos(
            "os: [ubuntu, windows]\npy: [3.10, 3.8]\nexclude:\n  - os: Ubuntu\n    py: '3.10'\n",
        );
        assert_eq!(
            got,
            ["os=ubuntu py=3.8", "os=windows py=3.1", "os=windows py=3.8"]
        );
        // Objects inside give their values depth first; nulls, empty strings are left out.
        let c = expand(&read(
            "node: [{version: 14, npm: [6, true]}]\nx: ['', ~, 1e3]\n",
        ))
        .unwrap();
        assert_eq!(c[0].name_values, ["14", "6", "true"]);
        assert_eq!(c[1].name_values, ["14", "6", "true"]);
        assert_eq!(c[2].name_values, ["14", "6", "true", "1000"]);
        // Cut at 100 characters.
        let long = display_name("job", &["x".repeat(200)]);
        assert_eq!(
            (long.chars().count(), &long[long.len() - 4..]),
            (100, "x...")
        );
    }

    #[test]
    fn bad_matrices_say_why() {
        let err = |src: &str| expand(&read(src)).unwrap_err();
        assert_eq!(
            err("os: ubuntu\n"),
            fail("`os` should be a list, found String", Some("os"))
        );
        assert_eq!(
            err("exclude: [{os: x}]\n").message,
            "a matrix must define at least one vector"
        );
        assert_eq!(
            err("os: [a]\ninclude: [{}]\n").message,
            "a matrix include mapping does not contain any values"
        );
        assert_eq!(
            err("os: [a]\nexclude: [{}]\n").message,
            "a matrix exclude filter must not be empty"
        );
        // 16 x 16 = 256 is the most; one more is refused.
        let ok = format!(
            "a: [{}]\nb: [{}]\n",
            (1..=16)
                .map(|i| i.to_string())
                .collect::<Vec<_>>()
                .join(","),
            (1..=16)
                .map(|i| i.to_string())
                .collect::<Vec<_>>()
                .join(",")
        );
        assert_eq!(expand(&read(&ok)).unwrap().len(), 256);
        let over = format!("{ok}include: [{{a: 99}}]\n");
        assert_eq!(
            err(&over).message,
            "the matrix makes 257 jobs, more than GitHub's 256"
        );
    }

    #[test]
    fn the_strategy_context() {
        let s = strategy_context(true, None, 1, 4);
        assert_eq!(
            s.to_serde_json().to_string(),
            r#"{"fail-fast":true,"job-index":1,"job-total":4,"max-parallel":4}"#
        );
    }
}
