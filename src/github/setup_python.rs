//! `actions/setup-python`, built in: the requested Python is looked for among the image's
//! `python3`, `python3.X` and `python` executables (a first command lists them with their
//! versions), chosen here as setup-python chooses (`3.11`, `3.11.4`, `3.x`, ranges such as
//! `>=3.10 <3.13`, `python-version-file`), then a second command makes it a virtual
//! environment under `$RUNNER_TOOL_CACHE/berth-python/<version>` first on PATH, so that
//! `pip install` works as on GitHub (Debian's Python is "externally managed", a venv's is
//! not), and sets `pythonLocation` and the `python-version` output.
//!
//! Not done: downloading a Python, PyPy/GraalPy, free-threaded builds, `cache:` (noted in the
//! step's log), `architecture`, `check-latest`.

use std::cmp::Ordering;

/// A Python version: major, minor, patch.
pub type Version = (u64, u64, u64);

/// An interpreter the image has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub version: Version,
    pub path: String,
}

impl Candidate {
    pub fn version_text(&self) -> String {
        let (a, b, c) = self.version;
        format!("{a}.{b}.{c}")
    }
}

/// Exit status of the install script when the image's Python cannot make a virtual
/// environment: an environment problem, not the workflow's.
pub const NO_VENV_EXIT: i64 = 3;

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// The script that lists the image's interpreters as `VERSION PATH` lines into `out` (and
/// shows them in the log), and copies `version_file` (relative to the working directory)
/// to `version_copy` when asked.
pub fn probe_script(out: &str, version_file: Option<(&str, &str)>) -> String {
    let mut s = String::new();
    s.push_str(&format!(": > {}\n", quote(out)));
    if let Some((file, copy)) = version_file {
        s.push_str(&format!(
            "if [ -f {f} ]; then cp {f} {c}; fi\n",
            f = quote(file),
            c = quote(copy)
        ));
    }
    s.push_str(&format!(
        r#"old_ifs=$IFS
IFS=:
for d in $PATH; do
  IFS=$old_ifs
  for exe in "$d"/python3 "$d"/python3.[0-9]* "$d"/python; do
    case "$exe" in *-config|*m) continue ;; esac
    [ -x "$exe" ] && [ ! -d "$exe" ] || continue
    v=$("$exe" -c 'import sys; print("%d.%d.%d" % tuple(sys.version_info[:3]))' 2>/dev/null) || continue
    echo "found Python $v at $exe"
    echo "$v $exe" >> {out}
  done
done
"#,
        out = quote(out)
    ));
    s
}

/// Reads the probe's lines; the same executable seen through two PATH entries counts once.
pub fn parse_probe(text: &str) -> Vec<Candidate> {
    let mut out: Vec<Candidate> = Vec::new();
    for line in text.lines() {
        let Some((v, path)) = line.trim().split_once(' ') else {
            continue;
        };
        let Some(version) = parse_version(v) else {
            continue;
        };
        if !out.iter().any(|c| c.path == path) {
            out.push(Candidate {
                version,
                path: path.to_string(),
            });
        }
    }
    out
}

fn parse_version(v: &str) -> Option<Version> {
    let mut parts = v.split('.').map(|p| p.parse::<u64>().ok());
    Some((
        parts.next()??,
        parts.next()??,
        parts.next().flatten().unwrap_or(0),
    ))
}

/// The version a `python-version-file` asks for: `.python-version` (its first line that is
/// not a comment), `.tool-versions` (the `python` line), `pyproject.toml`
/// (`requires-python`, or Poetry's `python` dependency).
pub fn version_from_file(name: &str, content: &str) -> Option<String> {
    let base = name.rsplit('/').next().unwrap_or(name);
    if base == ".tool-versions" {
        return content.lines().find_map(|l| {
            let mut words = l.split_whitespace();
            (words.next() == Some("python")).then(|| words.next().map(String::from))?
        });
    }
    if base.ends_with(".toml") {
        return content.lines().find_map(|l| {
            let (k, v) = l.split_once('=')?;
            let k = k.trim();
            (k == "requires-python" || k == "python")
                .then(|| v.trim().trim_matches(['"', '\'']).to_string())
                .filter(|v| !v.is_empty())
        });
    }
    content
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .map(String::from)
}

/// One `op version` of a range; partial versions are already widened.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Comparator {
    op: Ordering,
    /// `>=` when `op` is Greater and `inclusive`, and so on.
    inclusive: bool,
    version: Version,
}

impl Comparator {
    fn allows(&self, v: Version) -> bool {
        let c = v.cmp(&self.version);
        c == self.op || (self.inclusive && c == Ordering::Equal)
    }
}

/// A partial version as written: `3`, `3.11`, `3.x`, `3.11.4`; `None` parts are wildcards.
fn parse_partial(text: &str) -> Result<[Option<u64>; 3], String> {
    let mut out = [None; 3];
    let text = text.trim_start_matches(['v', '=']);
    for (i, part) in text.split('.').enumerate() {
        if i > 2 {
            return Err(format!("`{text}` has more than three parts"));
        }
        if matches!(part, "x" | "X" | "*") {
            break;
        }
        // `3.13.0-beta.1`, `3.12-dev`: the prerelease part is dropped.
        let digits = part.split('-').next().unwrap_or(part);
        out[i] = Some(
            digits
                .parse()
                .map_err(|_| format!("`{text}` is not a version"))?,
        );
    }
    if out[0].is_none() && text != "*" && !text.starts_with(['x', 'X']) {
        return Err(format!("`{text}` is not a version"));
    }
    Ok(out)
}

fn ge(version: Version) -> Comparator {
    Comparator {
        op: Ordering::Greater,
        inclusive: true,
        version,
    }
}

fn lt(version: Version) -> Comparator {
    Comparator {
        op: Ordering::Less,
        inclusive: false,
        version,
    }
}

/// The comparators one range term means (semver, as setup-python reads `python-version`).
fn term(text: &str) -> Result<Vec<Comparator>, String> {
    let (op, rest) = ["<=", ">=", "<", ">", "=", "~", "^"]
        .iter()
        .find_map(|op| text.strip_prefix(op).map(|r| (*op, r)))
        .unwrap_or(("", text));
    let p = parse_partial(rest.trim())?;
    let low = (p[0].unwrap_or(0), p[1].unwrap_or(0), p[2].unwrap_or(0));
    // The version just above what a partial covers: `3.11` → 3.12.0, `3` → 4.0.0.
    let above = match p {
        [None, ..] => None,
        [Some(a), None, _] => Some((a + 1, 0, 0)),
        [Some(a), Some(b), None] => Some((a, b + 1, 0)),
        [Some(a), Some(b), Some(c)] => Some((a, b, c + 1)),
    };
    let exact = p[2].is_some();
    Ok(match op {
        "" | "=" => match above {
            Some(above) if !exact => vec![ge(low), lt(above)],
            Some(_) => vec![
                ge(low),
                Comparator {
                    op: Ordering::Less,
                    inclusive: true,
                    version: low,
                },
            ],
            None => vec![],
        },
        ">=" => vec![ge(low)],
        ">" => match above {
            Some(above) => vec![ge(above)],
            None => vec![lt((0, 0, 0))],
        },
        "<" => vec![lt(low)],
        "<=" => match above {
            Some(above) => vec![lt(above)],
            None => vec![],
        },
        "~" => match p {
            [Some(a), None, _] => vec![ge(low), lt((a + 1, 0, 0))],
            [Some(a), Some(b), _] => vec![ge(low), lt((a, b + 1, 0))],
            _ => vec![],
        },
        // `^`: nothing above the first non-zero part changes.
        _ => match p {
            [Some(0), Some(0), Some(c)] => vec![ge(low), lt((0, 0, c + 1))],
            [Some(0), Some(b), _] => vec![ge(low), lt((0, b + 1, 0))],
            [Some(a), ..] => vec![ge(low), lt((a + 1, 0, 0))],
            _ => vec![],
        },
    })
}

/// A `python-version` value read as a range: `||` between alternatives, spaces between
/// terms that must all hold, `A - B` for `>=A <=B`.
#[derive(Debug, Clone, PartialEq)]
pub struct Spec {
    alternatives: Vec<Vec<Comparator>>,
}

impl Spec {
    pub fn parse(text: &str) -> Result<Spec, String> {
        let text = text.trim();
        let lower = text.to_ascii_lowercase();
        if lower.starts_with("pypy") || lower.starts_with("graalpy") {
            return Err(format!(
                "`{text}`: berth looks only for CPython in the image (PyPy and GraalPy are not supported yet)"
            ));
        }
        if lower.ends_with('t') && lower.chars().next().is_some_and(|c| c.is_ascii_digit()) {
            return Err(format!(
                "`{text}`: free-threaded Python builds are not supported yet"
            ));
        }
        let mut alternatives = Vec::new();
        for alt in text.split("||") {
            let words: Vec<&str> = alt.split_whitespace().collect();
            let mut all = Vec::new();
            let mut i = 0;
            while i < words.len() {
                if words.get(i + 1) == Some(&"-") && i + 2 < words.len() {
                    let from = parse_partial(words[i])?;
                    all.push(ge((
                        from[0].unwrap_or(0),
                        from[1].unwrap_or(0),
                        from[2].unwrap_or(0),
                    )));
                    all.extend(term(&format!("<={}", words[i + 2]))?);
                    i += 3;
                    continue;
                }
                // `>= 3.10`: an operator apart from its version.
                if matches!(words[i], "<=" | ">=" | "<" | ">" | "=" | "~" | "^")
                    && i + 1 < words.len()
                {
                    all.extend(term(&format!("{}{}", words[i], words[i + 1]))?);
                    i += 2;
                    continue;
                }
                all.extend(term(words[i])?);
                i += 1;
            }
            if words.is_empty() {
                return Err(format!("`{text}` is not a version or a range"));
            }
            alternatives.push(all);
        }
        Ok(Spec { alternatives })
    }

    pub fn allows(&self, v: Version) -> bool {
        self.alternatives
            .iter()
            .any(|all| all.iter().all(|c| c.allows(v)))
    }

    /// The newest candidate the spec allows (setup-python takes the newest match).
    pub fn choose<'a>(&self, candidates: &'a [Candidate]) -> Option<&'a Candidate> {
        // `rev`: of equal versions, the first on PATH (max_by_key keeps the last).
        candidates
            .iter()
            .rev()
            .filter(|c| self.allows(c.version))
            .max_by_key(|c| c.version)
    }
}

/// The script that makes `candidate` a virtual environment and puts it first on PATH
/// (unless `update_environment` is false), then sets the step's outputs.
pub fn install_script(candidate: &Candidate, update_environment: bool) -> String {
    let version = candidate.version_text();
    let mut s = format!(
        r#"exe={exe}
dir="$RUNNER_TOOL_CACHE/berth-python/{version}"
if [ ! -x "$dir/bin/python" ]; then
  mkdir -p "$RUNNER_TOOL_CACHE/berth-python"
  if ! "$exe" -m venv "$dir" > "$RUNNER_TEMP/berth-venv.log" 2>&1; then
    cat "$RUNNER_TEMP/berth-venv.log" >&2
    rm -rf "$dir"
    echo "berth: the image's Python {version} ($exe) cannot make a virtual environment; on Debian and Ubuntu the python3-venv package provides it" >&2
    exit {NO_VENV_EXIT}
  fi
fi
echo "Python {version} from $exe, in a virtual environment at $dir"
echo "python-version={version}" >> "$GITHUB_OUTPUT"
echo "python-path=$dir/bin/python" >> "$GITHUB_OUTPUT"
"#,
        exe = quote(&candidate.path),
    );
    if update_environment {
        s.push_str(
            r#"echo "$dir/bin" >> "$GITHUB_PATH"
{
  echo "pythonLocation=$dir"
  echo "Python_ROOT_DIR=$dir"
  echo "Python3_ROOT_DIR=$dir"
  echo "PKG_CONFIG_PATH=$dir/lib/pkgconfig"
} >> "$GITHUB_ENV"
"#,
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image() -> Vec<Candidate> {
        parse_probe(
            "3.11.2 /usr/bin/python3\n3.11.2 /usr/bin/python3.11\n3.9.18 /usr/local/bin/python3.9\n3.12.1 /opt/py/bin/python3.12\n3.11.2 /usr/bin/python3\nbad line\n",
        )
    }

    fn pick(spec: &str) -> Option<String> {
        let candidates = image();
        Spec::parse(spec)
            .unwrap_or_else(|e| panic!("{spec}: {e}"))
            .choose(&candidates)
            .map(|c| format!("{} {}", c.version_text(), c.path))
    }

    #[test]
    fn the_probe_lists_each_executable_once() {
        let c = image();
        assert_eq!(c.len(), 4);
        assert_eq!(c[0].path, "/usr/bin/python3");
        assert_eq!(c[2].version, (3, 9, 18));
    }

    #[test]
    fn versions_and_ranges_pick_the_newest_match() {
        assert_eq!(pick("3.11").as_deref(), Some("3.11.2 /usr/bin/python3"));
        assert_eq!(pick("3.11.2").as_deref(), Some("3.11.2 /usr/bin/python3"));
        assert_eq!(pick("3.11.4"), None);
        assert_eq!(
            pick("3.x").as_deref(),
            Some("3.12.1 /opt/py/bin/python3.12")
        );
        assert_eq!(pick("3").as_deref(), Some("3.12.1 /opt/py/bin/python3.12"));
        assert_eq!(
            pick(">=3.10 <3.12").as_deref(),
            Some("3.11.2 /usr/bin/python3")
        );
        assert_eq!(
            pick(">= 3.9, < 3.10".replace(',', "").as_str()).as_deref(),
            Some("3.9.18 /usr/local/bin/python3.9")
        );
        assert_eq!(
            pick("<3.10 || 3.12").as_deref(),
            Some("3.12.1 /opt/py/bin/python3.12")
        );
        assert_eq!(
            pick("3.9 - 3.11").as_deref(),
            Some("3.11.2 /usr/bin/python3")
        );
        assert_eq!(
            pick("~3.9.1").as_deref(),
            Some("3.9.18 /usr/local/bin/python3.9")
        );
        assert_eq!(
            pick("^3.10").as_deref(),
            Some("3.12.1 /opt/py/bin/python3.12")
        );
        assert_eq!(
            pick(">3.11").as_deref(),
            Some("3.12.1 /opt/py/bin/python3.12")
        );
        assert_eq!(pick("<=3.11").as_deref(), Some("3.11.2 /usr/bin/python3"));
        assert_eq!(
            pick("3.12-dev").as_deref(),
            Some("3.12.1 /opt/py/bin/python3.12")
        );
        assert_eq!(pick("3.13"), None);
    }

    #[test]
    fn what_berth_does_not_look_for_is_said() {
        assert!(Spec::parse("pypy3.10").unwrap_err().contains("PyPy"));
        assert!(Spec::parse("3.13t").unwrap_err().contains("free-threaded"));
        assert_eq!(
            Spec::parse("latest").unwrap_err(),
            "`latest` is not a version"
        );
    }

    #[test]
    fn version_files_are_read_as_setup_python_reads_them() {
        assert_eq!(
            version_from_file(".python-version", "# pinned\n\n3.11.4\n").as_deref(),
            Some("3.11.4")
        );
        assert_eq!(
            version_from_file("sub/.tool-versions", "nodejs 20\npython 3.10.2\n").as_deref(),
            Some("3.10.2")
        );
        assert_eq!(
            version_from_file(
                "pyproject.toml",
                "[project]\nname = \"x\"\nrequires-python = \">=3.10\"\n"
            )
            .as_deref(),
            Some(">=3.10")
        );
    }

    #[test]
    fn the_install_script_sets_path_env_and_outputs() {
        let c = &image()[1];
        let s = install_script(c, true);
        assert!(s.starts_with(
            "exe='/usr/bin/python3.11'\ndir=\"$RUNNER_TOOL_CACHE/berth-python/3.11.2\"\n"
        ));
        assert!(s.contains("\"$exe\" -m venv \"$dir\""));
        assert!(s.contains("echo \"$dir/bin\" >> \"$GITHUB_PATH\""));
        assert!(s.contains("echo \"pythonLocation=$dir\""));
        assert!(s.contains("echo \"python-version=3.11.2\" >> \"$GITHUB_OUTPUT\""));
        assert!(s.contains("exit 3"));
        assert!(!install_script(c, false).contains("GITHUB_PATH"));
    }
}
