//! `spec: inputs` of an included file: check what the `include` gives against what the file
//! declares (required, types, options, regex), then put the values in wherever the content
//! says `$[[ inputs.NAME ]]`.

use crate::source::diag::Diagnostic;
use crate::source::yaml::{self, Budget, Entry, Node, Span, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    String,
    Number,
    Boolean,
    Array,
}

impl Kind {
    fn described(self) -> &'static str {
        match self {
            Kind::String => "a string",
            Kind::Number => "a number",
            Kind::Boolean => "a boolean",
            Kind::Array => "an array",
        }
    }
}

/// The content with its inputs interpolated, or every problem found.
pub fn apply(
    header: &Node,
    given: Option<&Node>,
    included_at: Option<Span>,
    content: &Node,
    budget: &mut Budget,
) -> Result<Node, Vec<Diagnostic>> {
    let mut errors = Vec::new();
    let declared = header
        .get("spec")
        .and_then(|s| s.get("inputs"))
        .and_then(|i| i.as_map())
        .unwrap_or_default();
    let given_entries = given.and_then(|g| g.as_map()).unwrap_or_default();
    for g in given_entries {
        if !declared.iter().any(|d| d.key == g.key) {
            errors.push(Diagnostic::error(
                format!("the included file declares no input `{}`", g.key),
                Some(g.key_span),
            ));
        }
    }
    let mut values: Vec<(String, Node)> = Vec::new();
    for d in declared {
        let kind = match d.value.get("type").and_then(|t| t.as_text()) {
            None | Some("string") => Kind::String,
            Some("number") => Kind::Number,
            Some("boolean") => Kind::Boolean,
            Some("array") => Kind::Array,
            Some(other) => {
                errors.push(Diagnostic::error(
                    format!("input `{}` has an unknown type `{other}`", d.key),
                    d.value.get("type").map(|t| t.span),
                ));
                continue;
            }
        };
        let value = match given_entries.iter().find(|g| g.key == d.key) {
            Some(g) => g.value.clone(),
            None => match d.value.get("default") {
                Some(def) => def.clone(),
                None => {
                    errors.push(Diagnostic::error(
                        format!(
                            "input `{}` is required and the include gives no value",
                            d.key
                        ),
                        included_at.or(Some(d.key_span)),
                    ));
                    continue;
                }
            },
        };
        let ok = match kind {
            Kind::String => value.as_scalar().is_some(),
            Kind::Number => value.as_scalar().is_some_and(|t| t.parse::<f64>().is_ok()),
            Kind::Boolean => value.as_bool().is_some(),
            Kind::Array => value.as_seq().is_some(),
        };
        if !ok {
            errors.push(Diagnostic::error(
                format!(
                    "input `{}` should be {}, found {}",
                    d.key,
                    kind.described(),
                    value.kind()
                ),
                Some(value.span),
            ));
            continue;
        }
        if let Some(options) = d.value.get("options").and_then(|o| o.as_seq()) {
            let text = value.as_scalar().unwrap_or_default();
            if !options.iter().any(|o| o.as_scalar() == Some(text)) {
                errors.push(Diagnostic::error(
                    format!(
                        "input `{}`: `{text}` is not one of its options ({})",
                        d.key,
                        options
                            .iter()
                            .filter_map(|o| o.as_scalar())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    Some(value.span),
                ));
                continue;
            }
        }
        if let Some(re) = d.value.get("regex").and_then(|r| r.as_text()) {
            let pattern = re
                .strip_prefix('/')
                .and_then(|r| r.strip_suffix('/'))
                .unwrap_or(re);
            let text = value.as_scalar().unwrap_or_default();
            match regex::Regex::new(pattern) {
                Ok(r) if r.is_match(text) => {}
                Ok(_) => {
                    errors.push(Diagnostic::error(
                        format!("input `{}`: `{text}` does not match {re}", d.key),
                        Some(value.span),
                    ));
                    continue;
                }
                Err(e) => {
                    errors.push(Diagnostic::error(
                        format!("input `{}`: invalid regex {re}: {e}", d.key),
                        d.value.get("regex").map(|r| r.span),
                    ));
                    continue;
                }
            }
        }
        values.push((d.key.clone(), value));
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    interpolate(content, &values, budget).map_err(|e| vec![e])
}

/// The budget error for a copy of an input at `span`.
fn too_big(e: yaml::TooBig, span: Span) -> Diagnostic {
    Diagnostic::error(format!("`$[[ inputs ]]`: {e}"), Some(span))
}

/// The content with each `$[[ inputs.NAME ]]` replaced; every copy of a value is charged to
/// `budget` (an array input put in a thousand places is a thousand copies).
fn interpolate(
    node: &Node,
    values: &[(String, Node)],
    budget: &mut Budget,
) -> Result<Node, Diagnostic> {
    let value = match &node.value {
        Value::Scalar { text, plain } => {
            if !text.contains("$[[") {
                return Ok(node.clone());
            }
            // A scalar that is one whole `$[[ ... ]]` takes the input's own type.
            let trimmed = text.trim();
            if trimmed.starts_with("$[[")
                && trimmed.ends_with("]]")
                && trimmed.matches("$[[").count() == 1
            {
                let (name, funcs) = block(&trimmed[3..trimmed.len() - 2]);
                if funcs.is_empty() {
                    let v = lookup(values, name, node.span)?;
                    budget
                        .charge(yaml::cost(v))
                        .map_err(|e| too_big(e, node.span))?;
                    return Ok(Node {
                        span: node.span,
                        ..v.clone()
                    });
                }
            }
            Value::Scalar {
                text: substitute(text, values, node.span, budget)?,
                plain: *plain && !text.contains("$[["),
            }
        }
        Value::Seq(items) => Value::Seq(
            items
                .iter()
                .map(|i| interpolate(i, values, budget))
                .collect::<Result<_, _>>()?,
        ),
        Value::Map(entries) => Value::Map(
            entries
                .iter()
                .map(|e| {
                    Ok(Entry {
                        key: if e.key.contains("$[[") {
                            substitute(&e.key, values, e.key_span, budget)?
                        } else {
                            e.key.clone()
                        },
                        key_span: e.key_span,
                        value: interpolate(&e.value, values, budget)?,
                    })
                })
                .collect::<Result<_, Diagnostic>>()?,
        ),
    };
    Ok(Node {
        value,
        span: node.span,
        tag: node.tag.clone(),
    })
}

/// `inputs.NAME | fn | fn(args)` → (NAME, functions).
fn block(inner: &str) -> (&str, Vec<&str>) {
    let mut parts = inner.split('|').map(str::trim);
    let head = parts.next().unwrap_or_default();
    (head, parts.collect())
}

fn lookup<'a>(
    values: &'a [(String, Node)],
    name: &str,
    span: Span,
) -> Result<&'a Node, Diagnostic> {
    let key = name.strip_prefix("inputs.").ok_or_else(|| {
        Diagnostic::error(
            format!("`$[[ {name} ]]`: only `inputs.NAME` can be interpolated"),
            Some(span),
        )
    })?;
    values
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v)
        .ok_or_else(|| {
            Diagnostic::error(
                format!("`$[[ {name} ]]`: the file declares no input `{key}`"),
                Some(span),
            )
        })
}

fn substitute(
    text: &str,
    values: &[(String, Node)],
    span: Span,
    budget: &mut Budget,
) -> Result<String, Diagnostic> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("$[[") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 3..];
        let Some(end) = after.find("]]") else {
            return Err(Diagnostic::error(
                "`$[[` without its closing `]]`",
                Some(span),
            ));
        };
        let (name, funcs) = block(&after[..end]);
        let v = lookup(values, name, span)?;
        let mut s = match &v.value {
            Value::Scalar { text, .. } => text.clone(),
            _ => flow(v),
        };
        for f in funcs {
            s = function(f, s, span)?;
        }
        budget.charge(s.len()).map_err(|e| too_big(e, span))?;
        out.push_str(&s);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// GitLab's interpolation functions.
fn function(f: &str, s: String, span: Span) -> Result<String, Diagnostic> {
    if f == "expand_vars" {
        // Expanded later with the job's variables, as every value is.
        return Ok(s);
    }
    if f == "posix_escape" {
        return Ok(s
            .chars()
            .flat_map(|c| {
                let escape = !(c.is_ascii_alphanumeric() || "_-./=:,+@%".contains(c));
                escape.then_some('\\').into_iter().chain(std::iter::once(c))
            })
            .collect());
    }
    if let Some(args) = f
        .strip_prefix("truncate(")
        .and_then(|a| a.strip_suffix(')'))
    {
        let nums: Vec<usize> = args
            .split(',')
            .filter_map(|n| n.trim().parse().ok())
            .collect();
        if let [offset, len] = nums[..] {
            return Ok(s.chars().skip(offset).take(len).collect());
        }
    }
    Err(Diagnostic::error(
        format!("unknown interpolation function `{f}`"),
        Some(span),
    ))
}

/// A list or mapping as YAML flow text, for an array input put inside a string (and to
/// compare two includes' inputs).
pub(super) fn flow(node: &Node) -> String {
    match &node.value {
        Value::Scalar { text, .. } => text.clone(),
        Value::Seq(items) => format!(
            "[{}]",
            items.iter().map(flow).collect::<Vec<_>>().join(", ")
        ),
        Value::Map(entries) => format!(
            "{{{}}}",
            entries
                .iter()
                .map(|e| format!("{}: {}", e.key, flow(&e.value)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::yaml::parse_documents;

    fn run(text: &str, given: &str) -> Result<Node, Vec<Diagnostic>> {
        let docs = parse_documents(text, 0).unwrap();
        let given = crate::source::yaml::parse(given).unwrap();
        apply(
            &docs[0],
            Some(&given),
            None,
            &docs[1],
            &mut Default::default(),
        )
    }

    const FILE: &str = "\
spec:
  inputs:
    stage:
      default: test
    env:
      options: [dev, prod]
    jobs:
      type: array
      default: [a, b]
---
'deploy-$[[ inputs.env ]]':
  stage: $[[ inputs.stage ]]
  needs: $[[ inputs.jobs ]]
  script: echo $[[ inputs.env | truncate(0,2) ]]
";

    #[test]
    fn inputs_defaults_types_and_functions() {
        let out = run(FILE, "env: prod").unwrap();
        let job = out.get("deploy-prod").unwrap();
        assert_eq!(job.get("stage").unwrap().as_text(), Some("test"));
        assert_eq!(job.get("needs").unwrap().as_seq().unwrap().len(), 2);
        assert_eq!(job.get("script").unwrap().as_text(), Some("echo pr"));
    }

    #[test]
    fn bad_inputs_are_errors() {
        let e = run(FILE, "{}").unwrap_err();
        assert!(e[0].message.contains("`env` is required"), "{e:?}");
        let e = run(FILE, "{env: test}").unwrap_err();
        assert!(e[0].message.contains("not one of its options"), "{e:?}");
        let e = run(FILE, "{env: dev, nope: 1}").unwrap_err();
        assert!(e[0].message.contains("no input `nope`"), "{e:?}");
        let e = run(FILE, "{env: dev, jobs: x}").unwrap_err();
        assert!(e[0].message.contains("should be an array"), "{e:?}");
    }
}
