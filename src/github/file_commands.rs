//! The files a step writes to talk to the runner: `$GITHUB_OUTPUT` and `$GITHUB_ENV`
//! (`name=value` lines, or `name<<DELIMITER` then lines up to the delimiter alone on a line),
//! `$GITHUB_PATH` (one directory a line) and `$GITHUB_STEP_SUMMARY` (Markdown), read as the
//! runner's `FileCommandManager` reads them.

/// Reads a `$GITHUB_OUTPUT` or `$GITHUB_ENV` file into names and values, in file order.
/// Errors say what is wrong as the runner does (a line without `=` or `<<`, an empty name, a
/// heredoc whose delimiter never comes).
pub fn parse_key_values(text: &str) -> Result<Vec<(String, String)>, String> {
    let lines: Vec<&str> = text
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        i += 1;
        if line.is_empty() {
            continue;
        }
        let equals = line.find('=');
        let heredoc = line.find("<<");
        match (equals, heredoc) {
            (Some(e), h) if h.is_none_or(|h| e < h) => {
                let name = &line[..e];
                if name.is_empty() {
                    return Err(format!("invalid format '{line}': the name is empty"));
                }
                out.push((name.to_string(), line[e + 1..].to_string()));
            }
            (_, Some(h)) => {
                let name = &line[..h];
                let delimiter = &line[h + 2..];
                if name.is_empty() || delimiter.is_empty() {
                    return Err(format!(
                        "invalid format '{line}': a heredoc needs a name and a delimiter"
                    ));
                }
                let start = i;
                let Some(end) = lines[start..].iter().position(|l| *l == delimiter) else {
                    return Err(format!(
                        "invalid value of '{name}': matching delimiter not found '{delimiter}'"
                    ));
                };
                out.push((name.to_string(), lines[start..start + end].join("\n")));
                i = start + end + 1;
            }
            _ => return Err(format!("invalid format '{line}'")),
        }
    }
    Ok(out)
}

/// Reads a `$GITHUB_PATH` file: its non-empty lines, each a directory to put first on PATH.
pub fn parse_path(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.trim_end_matches('\r'))
        .filter(|l| !l.trim().is_empty())
        .map(String::from)
        .collect()
}

/// Adds directories to a step's PATH prepends as the runner does: a directory added again
/// moves to the front; the last added comes first.
pub fn prepend_paths(prepends: &mut Vec<String>, added: Vec<String>) {
    for dir in added {
        prepends.retain(|d| *d != dir);
        prepends.insert(0, dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_values_and_heredocs_are_read_as_the_runner_reads_them() {
        let text = "a=1\nempty=\n\nmulti<<EOF\nline one\nline=two\nEOF\nb=x=y\r\nc<<_X_\n_X_\n";
        let got = parse_key_values(text).expect("valid file");
        let want = [
            ("a", "1"),
            ("empty", ""),
            ("multi", "line one\nline=two"),
            ("b", "x=y"),
            ("c", ""),
        ];
        let got: Vec<(&str, &str)> = got.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn an_equals_sign_before_the_heredoc_marker_makes_a_plain_value() {
        let got = parse_key_values("json={\"a\":\"<<\"}\n").expect("valid file");
        assert_eq!(got, [("json".to_string(), "{\"a\":\"<<\"}".to_string())]);
    }

    #[test]
    fn malformed_files_are_errors() {
        assert_eq!(
            parse_key_values("just text\n").unwrap_err(),
            "invalid format 'just text'"
        );
        assert_eq!(
            parse_key_values("x<<EOF\nno end\n").unwrap_err(),
            "invalid value of 'x': matching delimiter not found 'EOF'"
        );
        assert_eq!(
            parse_key_values("=v\n").unwrap_err(),
            "invalid format '=v': the name is empty"
        );
    }

    #[test]
    fn the_last_path_added_comes_first_and_a_repeat_moves_to_the_front() {
        let mut prepends = Vec::new();
        prepend_paths(&mut prepends, parse_path("/a\n\n/b\n"));
        assert_eq!(prepends, ["/b", "/a"]);
        prepend_paths(&mut prepends, vec!["/a".to_string()]);
        assert_eq!(prepends, ["/a", "/b"]);
    }
}
