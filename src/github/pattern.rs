//! GitHub's filter patterns for `branches`, `tags` and `paths` ("Workflow syntax for GitHub
//! Actions: filter pattern cheat sheet"): `*` is any run of characters but `/`, `**` any run
//! at all (`**/` also none), `?` and `+` make the preceding character optional or repeated,
//! `[...]` is one character of a set of letters and digits (`a-z`, `0-9` ranges), `\` escapes
//! the next character, and a leading `!` makes the pattern exclude what an earlier one
//! included. In a list, the last pattern that matches a name decides.

use regex::Regex;

#[derive(Debug, Clone)]
pub struct Pattern {
    text: String,
    negative: bool,
    regex: Regex,
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Pattern) -> bool {
        self.text == other.text
    }
}

impl Pattern {
    /// Reads a pattern; the error says what is wrong with it.
    pub fn parse(text: &str) -> Result<Pattern, String> {
        let (negative, body) = match text.strip_prefix('!') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let source = to_regex(body)?;
        let regex = Regex::new(&source).map_err(|e| format!("is not a valid pattern: {e}"))?;
        Ok(Pattern {
            text: text.to_string(),
            negative,
            regex,
        })
    }

    /// The pattern as written, `!` included.
    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn is_negative(&self) -> bool {
        self.negative
    }

    /// Whether the pattern (without its `!`) matches the whole of `name`.
    pub fn matches(&self, name: &str) -> bool {
        self.regex.is_match(name)
    }
}

/// The pattern that decides `name` in an ordered list, if any matches: the last one.
pub fn decisive<'p>(patterns: &'p [Pattern], name: &str) -> Option<&'p Pattern> {
    patterns.iter().rev().find(|p| p.matches(name))
}

/// Whether the ordered list takes `name`: its decisive pattern is a positive one.
pub fn selects(patterns: &[Pattern], name: &str) -> bool {
    decisive(patterns, name).is_some_and(|p| !p.is_negative())
}

/// The patterns of a list, quoted for a message: `[main, 'releases/**']`.
pub fn list(patterns: &[Pattern]) -> String {
    let items: Vec<String> = patterns
        .iter()
        .map(|p| {
            let t = p.text();
            if t.contains(['*', '!', '[', '?', '+', '\\', ' ']) {
                format!("'{t}'")
            } else {
                t.to_string()
            }
        })
        .collect();
    format!("[{}]", items.join(", "))
}

fn to_regex(pattern: &str) -> Result<String, String> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = String::from("^");
    // Whether `?` or `+` has a preceding character to apply to (else it is literal).
    let mut repeatable = false;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '*' if chars.get(i + 1) == Some(&'*') => {
                if chars.get(i + 2) == Some(&'/') {
                    out.push_str("(?:.*/)?");
                    i += 3;
                } else {
                    out.push_str(".*");
                    i += 2;
                }
                repeatable = false;
                continue;
            }
            '*' => {
                out.push_str("[^/]*");
                repeatable = false;
            }
            '?' | '+' if repeatable => {
                out.push(c);
                repeatable = false;
            }
            '[' => {
                let close = chars[i + 1..]
                    .iter()
                    .position(|&c| c == ']')
                    .map(|p| p + i + 1)
                    .ok_or("has a `[` without its `]`")?;
                let set = &chars[i + 1..close];
                if set.is_empty() {
                    return Err("has an empty `[]`".into());
                }
                out.push('[');
                let mut j = 0;
                while j < set.len() {
                    let a = set[j];
                    if !a.is_ascii_alphanumeric() {
                        return Err(format!(
                            "has `{a}` in `[...]`, which takes only letters, digits and ranges like a-z"
                        ));
                    }
                    if set.get(j + 1) == Some(&'-') {
                        let b = *set
                            .get(j + 2)
                            .ok_or("has a range without its end in `[...]`")?;
                        let same_kind = (a.is_ascii_digit() && b.is_ascii_digit())
                            || (a.is_ascii_alphabetic() && b.is_ascii_alphabetic());
                        if !same_kind || a > b {
                            return Err(format!(
                                "has the range `{a}-{b}`; ranges go from a-z, A-Z or 0-9"
                            ));
                        }
                        out.push(a);
                        out.push('-');
                        out.push(b);
                        j += 3;
                    } else {
                        out.push(a);
                        j += 1;
                    }
                }
                out.push(']');
                i = close + 1;
                repeatable = true;
                continue;
            }
            '\\' => {
                let next = *chars
                    .get(i + 1)
                    .ok_or("ends with `\\`, which escapes nothing")?;
                out.push_str(&regex::escape(&next.to_string()));
                i += 2;
                repeatable = true;
                continue;
            }
            _ => {
                out.push_str(&regex::escape(&c.to_string()));
                repeatable = true;
            }
        }
        i += 1;
    }
    out.push('$');
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, name: &str) -> bool {
        Pattern::parse(pattern).unwrap().matches(name)
    }

    /// The cheat sheet's tables ("Patterns to match branches and tags", "Patterns to match
    /// file paths"), each pattern with names it matches and names it must not.
    #[test]
    fn the_cheat_sheet_examples() {
        let table: &[(&str, &[&str], &[&str])] = &[
            (
                "feature/*",
                &["feature/my-branch", "feature/your-branch"],
                &["feature/your/branch"],
            ),
            (
                "feature/**",
                &[
                    "feature/beta-a/my-branch",
                    "feature/your-branch",
                    "feature/mona/the/octocat",
                ],
                &["features/x"],
            ),
            ("main", &["main"], &["main2", "a/main"]),
            (
                "releases/mona-the-octocat",
                &["releases/mona-the-octocat"],
                &["releases/mona"],
            ),
            ("*", &["main", "releases"], &["releases/1"]),
            ("**", &["all/the/branches", "every/tag", "main"], &[]),
            (
                "*feature",
                &["mona-feature", "feature", "ver-10-feature"],
                &["feature/x"],
            ),
            ("v2*", &["v2", "v2.0", "v2.9"], &["v1", "x/v2"]),
            (
                "v[12].[0-9]+.[0-9]+",
                &["v1.10.1", "v2.0.0"],
                &["v3.0.0", "v1.x.1", "v1..1"],
            ),
            ("*", &["README.md", "server.rb"], &["docs/a.md"]),
            (
                "*.jsx?",
                &["page.js", "page.jsx"],
                &["page.jsxx", "a/page.js"],
            ),
            ("**", &["all/the/files.md"], &[]),
            ("*.js", &["app.js", "index.js"], &["src/app.js"]),
            (
                "**.js",
                &["index.js", "js/index.js", "src/js/app.js"],
                &["index.jsx"],
            ),
            (
                "docs/*",
                &["docs/README.md", "docs/file.txt"],
                &["docs/a/b.md"],
            ),
            (
                "docs/**",
                &["docs/README.md", "docs/mona/octocat.txt"],
                &["doc/x"],
            ),
            (
                "docs/**/*.md",
                &[
                    "docs/README.md",
                    "docs/mona/hello-world.md",
                    "docs/a/markdown/file.md",
                ],
                &["docs/a.txt"],
            ),
            (
                "**/docs/**",
                &[
                    "docs/hello.md",
                    "dir/docs/my-file.txt",
                    "space/docs/plan/space.doc",
                ],
                &["mydocs/x"],
            ),
            (
                "**/README.md",
                &["README.md", "js/README.md"],
                &["README.mdx"],
            ),
            (
                "**/*src/**",
                &["a/src/app.js", "my-src/code/js/app.js"],
                &["src.js"],
            ),
            (
                "**/*-post.md",
                &["my-post.md", "path/their-post.md"],
                &["post.md"],
            ),
            (
                "**/migrate-*.sql",
                &[
                    "migrate-10909.sql",
                    "db/migrate-v1.0.sql",
                    "db/sept/migrate-v1.sql",
                ],
                &["migrate.sql"],
            ),
            ("\\*.md", &["*.md"], &["a.md"]),
        ];
        for (pattern, yes, no) in table {
            for name in *yes {
                assert!(m(pattern, name), "{pattern} should match {name}");
            }
            for name in *no {
                assert!(!m(pattern, name), "{pattern} should not match {name}");
            }
        }
    }

    #[test]
    fn order_decides_with_negations() {
        // The cheat sheet: `*.md`, `!README.md`, `README*` includes README.md again.
        let list: Vec<Pattern> = ["*.md", "!README.md", "README*"]
            .iter()
            .map(|p| Pattern::parse(p).unwrap())
            .collect();
        assert!(selects(&list, "README.md"));
        assert!(selects(&list, "guide.md"));
        assert!(selects(&list, "README.doc"));
        assert!(!selects(&list, "docs/guide.md"));
        let list: Vec<Pattern> = ["*.md", "!README.md"]
            .iter()
            .map(|p| Pattern::parse(p).unwrap())
            .collect();
        assert!(!selects(&list, "README.md"));
        assert_eq!(
            decisive(&list, "README.md").map(Pattern::text),
            Some("!README.md")
        );
        assert_eq!(super::list(&list), "['*.md', '!README.md']");
    }

    #[test]
    fn bad_patterns_say_why() {
        assert_eq!(
            Pattern::parse("v[").unwrap_err(),
            "has a `[` without its `]`"
        );
        assert_eq!(Pattern::parse("v[]").unwrap_err(), "has an empty `[]`");
        assert_eq!(
            Pattern::parse("v[.]").unwrap_err(),
            "has `.` in `[...]`, which takes only letters, digits and ranges like a-z"
        );
        assert_eq!(
            Pattern::parse("[9-0]").unwrap_err(),
            "has the range `9-0`; ranges go from a-z, A-Z or 0-9"
        );
        assert_eq!(
            Pattern::parse("a\\").unwrap_err(),
            "ends with `\\`, which escapes nothing"
        );
        // A leading `?` or `+` has nothing to repeat: it is literal.
        assert!(m("+x", "+x"));
        assert!(m("a++", "aa+"));
    }
}
