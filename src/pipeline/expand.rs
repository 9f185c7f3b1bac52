//! `$VAR` and `${VAR}` references in variable values, image names, cache keys and paths, as
//! GitLab expands them before a job runs.

/// The most an expansion makes (Linux refuses a single environment value over 128 KiB
/// anyway): references that expand to references cannot grow a value without bound.
pub const MAX_EXPANDED: usize = 1 << 20;

/// Expand `$VAR` and `${VAR}` (`$$` is a literal `$`). Unknown variables become empty, as in
/// a shell; references are followed a few levels deep; the result is cut at [`MAX_EXPANDED`].
pub fn expand(text: &str, lookup: &dyn Fn(&str) -> Option<String>, depth: usize) -> String {
    let mut out = String::with_capacity(text.len());
    expand_into(text, lookup, depth, &mut out);
    out
}

/// Append to `out` until it is [`MAX_EXPANDED`] long: the work is bounded by that, however
/// the references nest.
fn expand_into(
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    depth: usize,
    out: &mut String,
) {
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if out.len() >= MAX_EXPANDED {
            return;
        }
        if c != '$' {
            out.push(c);
            continue;
        }
        match chars.peek() {
            Some(&(_, '$')) => {
                chars.next();
                out.push('$');
            }
            Some(&(_, '{')) => {
                let rest = &text[i + 2..];
                match rest.find('}') {
                    Some(end) if is_name(&rest[..end]) => {
                        resolve(&rest[..end], lookup, depth, out);
                        for _ in 0..end + 2 {
                            chars.next();
                        }
                    }
                    _ => out.push('$'),
                }
            }
            Some(&(_, n)) if n.is_ascii_alphabetic() || n == '_' => {
                let rest = &text[i + 1..];
                let end = rest
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(rest.len());
                resolve(&rest[..end], lookup, depth, out);
                for _ in 0..end {
                    chars.next();
                }
            }
            _ => out.push('$'),
        }
    }
}

fn is_name(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn resolve(name: &str, lookup: &dyn Fn(&str) -> Option<String>, depth: usize, out: &mut String) {
    match lookup(name) {
        Some(v) if depth < 8 => expand_into(&v, lookup, depth + 1, out),
        Some(v) => {
            let room = MAX_EXPANDED.saturating_sub(out.len());
            let mut cut = v.len().min(room);
            while !v.is_char_boundary(cut) {
                cut -= 1;
            }
            out.push_str(&v[..cut]);
        }
        None => {}
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn references_that_multiply_are_cut_at_the_limit() {
        // Each level names the next ten times: 10^8 copies of `x` if followed in full.
        let mut pairs: Vec<(String, String)> = (0..8)
            .map(|i| (format!("V{i}"), format!("$V{}", i + 1).repeat(10)))
            .collect();
        pairs.push(("V8".into(), "x".into()));
        let map: HashMap<String, String> = pairs.into_iter().collect();
        let lookup = |k: &str| map.get(k).cloned();
        let out = expand("$V0", &lookup, 0);
        assert_eq!(out.len(), MAX_EXPANDED);
        assert!(out.bytes().all(|b| b == b'x'));
        // Small expansions are whole, as before.
        assert_eq!(expand("a${V8}b", &lookup, 0), "axb");
    }

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |n| map.get(n).cloned()
    }

    #[test]
    fn expansion_forms() {
        let v = vars(&[("A", "x"), ("B", "$A-y"), ("LONG_NAME", "z")]);
        assert_eq!(expand("$A ${A} $$A $LONG_NAME.", &v, 0), "x x $A z.");
        assert_eq!(expand("$B", &v, 0), "x-y");
        assert_eq!(expand("$MISSING|", &v, 0), "|");
        assert_eq!(expand("cost: 5$ ${", &v, 0), "cost: 5$ ${");
    }

    #[test]
    fn self_reference_terminates() {
        let v = vars(&[("A", "$A")]);
        assert_eq!(expand("$A", &v, 0), "$A");
    }
}
