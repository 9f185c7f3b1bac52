//! GitHub's functions, evaluated as the runner evaluates them: arguments only when needed
//! (`contains` reads its second argument only when the first can contain anything, `format`
//! only the arguments its format string references, `case` only up to the branch it takes).

use super::error::{ErrorKind, ExprError};
use super::eval::Env;
use super::parser::{Function, Node};
use super::value::{fold_str, loose_eq, Value};

pub(crate) fn call(
    env: &Env,
    function: Function,
    args: &[Node],
    offset: usize,
) -> Result<Value, ExprError> {
    let fail = |kind| ExprError::new(offset, kind);
    let arg = |i: usize| match args.get(i) {
        Some(node) => env.value(node),
        // The parser checked the argument counts.
        None => Ok(Value::Null),
    };
    match function {
        Function::Contains => {
            let haystack = arg(0)?;
            let found = match &haystack {
                Value::Array(items) if !items.is_empty() => {
                    let needle = arg(1)?;
                    items.iter().any(|item| loose_eq(&needle, item))
                }
                Value::Array(_) | Value::Object(_) => false,
                _ => {
                    let needle = arg(1)?;
                    needle.is_primitive()
                        && fold_str(&haystack.to_github_string())
                            .contains(&fold_str(&needle.to_github_string()))
                }
            };
            Ok(Value::Bool(found))
        }
        Function::StartsWith | Function::EndsWith => {
            let text = arg(0)?;
            if !text.is_primitive() {
                return Ok(Value::Bool(false));
            }
            let affix = arg(1)?;
            if !affix.is_primitive() {
                return Ok(Value::Bool(false));
            }
            let (text, affix) = (
                fold_str(&text.to_github_string()),
                fold_str(&affix.to_github_string()),
            );
            Ok(Value::Bool(if function == Function::StartsWith {
                text.starts_with(&affix)
            } else {
                text.ends_with(&affix)
            }))
        }
        Function::Format => format(env, args, offset),
        Function::Join => {
            let items = arg(0)?;
            match &items {
                Value::Array(list) if !list.is_empty() => {
                    let separator = if list.len() > 1 && args.len() > 1 {
                        let sep = arg(1)?;
                        if sep.is_primitive() {
                            sep.to_github_string()
                        } else {
                            ",".to_string()
                        }
                    } else {
                        ",".to_string()
                    };
                    let parts: Vec<String> = list.iter().map(Value::to_github_string).collect();
                    Ok(Value::String(parts.join(&separator)))
                }
                Value::Array(_) | Value::Object(_) => Ok(Value::String(String::new())),
                primitive => Ok(Value::String(primitive.to_github_string())),
            }
        }
        Function::ToJson => Ok(Value::String(arg(0)?.to_json_pretty())),
        Function::FromJson => {
            let text = arg(0)?.to_github_string();
            serde_json::from_str::<Value>(&text)
                .map_err(|e| fail(ErrorKind::FromJson(e.to_string())))
        }
        Function::Case => {
            // Pairs of predicate and value, then the default.
            let mut i = 0;
            while i + 1 < args.len() {
                match arg(i)? {
                    Value::Bool(true) => return arg(i + 1),
                    Value::Bool(false) => {}
                    other => {
                        return Err(ExprError::new(
                            args[i].offset,
                            ErrorKind::CasePredicate(other.kind_name().to_string()),
                        ))
                    }
                }
                i += 2;
            }
            arg(args.len().saturating_sub(1))
        }
        Function::HashFiles => {
            let mut patterns = Vec::with_capacity(args.len());
            for node in args {
                patterns.push(env.value(node)?.to_github_string());
            }
            env.host
                .hash_files(&patterns)
                .map(Value::String)
                .map_err(|e| fail(ErrorKind::HashFiles(e)))
        }
        Function::Status(status) => {
            let mut values = Vec::with_capacity(args.len());
            for node in args {
                values.push(env.value(node)?);
            }
            env.status(status, &values)
                .map(Value::Bool)
                .map_err(|message| {
                    fail(ErrorKind::Status {
                        function: function.name().to_string(),
                        message,
                    })
                })
        }
    }
}

/// One piece of a format string.
enum Piece {
    Text(String),
    Arg(usize, String),
}

/// `format('{0} {1}', a, b)`: `{{` and `}}` are literal braces; `{N}` is argument N; a
/// malformed string or an index past the arguments is an error, found before any argument is
/// evaluated; `{N:spec}` parses but fails, since GitHub supports no format specifiers.
fn format(env: &Env, args: &[Node], offset: usize) -> Result<Value, ExprError> {
    let fmt = match args.first() {
        Some(node) => env.value(node)?.to_github_string(),
        None => String::new(),
    };
    let pieces = parse_format(&fmt, args.len().saturating_sub(1))
        .map_err(|kind| ExprError::new(offset, kind))?;
    let mut cache: Vec<Option<Value>> = vec![None; args.len().saturating_sub(1)];
    let mut out = String::new();
    for piece in pieces {
        match piece {
            Piece::Text(t) => out.push_str(&t),
            Piece::Arg(i, spec) => {
                let value = match cache.get(i).cloned().flatten() {
                    Some(v) => v,
                    None => {
                        let v = match args.get(i + 1) {
                            Some(node) => env.value(node)?,
                            None => Value::Null,
                        };
                        if let Some(slot) = cache.get_mut(i) {
                            *slot = Some(v.clone());
                        }
                        v
                    }
                };
                if !spec.is_empty() {
                    return Err(ExprError::new(
                        offset,
                        ErrorKind::FormatSpecifiers {
                            specifiers: spec,
                            kind: value.kind_name().to_string(),
                        },
                    ));
                }
                out.push_str(&value.to_github_string());
            }
        }
    }
    Ok(Value::String(out))
}

/// Splits a format string as the runner's `Format` reads it.
fn parse_format(fmt: &str, arg_count: usize) -> Result<Vec<Piece>, ErrorKind> {
    let invalid = || ErrorKind::InvalidFormat(fmt.to_string());
    let b = fmt.as_bytes();
    let mut pieces = Vec::new();
    let mut text = String::new();
    let mut i = 0;
    while i < b.len() {
        let lbrace = fmt[i..].find('{').map(|j| i + j);
        let rbrace = fmt[i..].find('}').map(|j| i + j);
        match (lbrace, rbrace) {
            (Some(l), r) if r.is_none_or(|r| r > l) => {
                if b.get(l + 1) == Some(&b'{') {
                    text.push_str(&fmt[i..=l]);
                    i = l + 2;
                    continue;
                }
                let digits_end = fmt[l + 1..]
                    .find(|c: char| !c.is_ascii_digit())
                    .map_or(fmt.len(), |j| l + 1 + j);
                // An index is a byte in the runner: 0 to 255.
                let index: usize = match fmt[l + 1..digits_end].parse::<u8>() {
                    Ok(n) => usize::from(n),
                    Err(_) => return Err(invalid()),
                };
                let (spec, close) = read_specifiers(fmt, digits_end).ok_or_else(invalid)?;
                if index >= arg_count {
                    return Err(ErrorKind::FormatArgumentIndex(fmt.to_string()));
                }
                text.push_str(&fmt[i..l]);
                if !text.is_empty() {
                    pieces.push(Piece::Text(std::mem::take(&mut text)));
                }
                pieces.push(Piece::Arg(index, spec));
                i = close + 1;
            }
            (_, Some(r)) => {
                if b.get(r + 1) != Some(&b'}') {
                    return Err(invalid());
                }
                text.push_str(&fmt[i..=r]);
                i = r + 2;
            }
            _ => {
                text.push_str(&fmt[i..]);
                break;
            }
        }
    }
    if !text.is_empty() {
        pieces.push(Piece::Text(text));
    }
    Ok(pieces)
}

/// After `{N`: either `}` or `:specifiers}` (with `}}` inside standing for `}`); gives the
/// specifiers and the offset of the closing brace.
fn read_specifiers(fmt: &str, at: usize) -> Option<(String, usize)> {
    let b = fmt.as_bytes();
    match b.get(at) {
        Some(b'}') => return Some((String::new(), at)),
        Some(b':') => {}
        _ => return None,
    }
    let mut spec = String::new();
    let mut chars = fmt[at + 1..].char_indices().peekable();
    while let Some((j, c)) = chars.next() {
        if c != '}' {
            spec.push(c);
        } else if chars.peek().map(|&(_, c)| c) == Some('}') {
            spec.push('}');
            chars.next();
        } else {
            return Some((spec, at + 1 + j));
        }
    }
    None
}
