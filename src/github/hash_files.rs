//! `hashFiles(patterns...)` as the runner computes it: the files of the workspace that the
//! patterns match, in the order of a walk with each directory's names sorted, the SHA-256 of
//! each file's content, those digests (raw bytes) hashed once more, in hex; `""` when no file
//! matches. Patterns are relative to the workspace (or absolute inside it), one per argument
//! or per line, `!` negating (a later pattern overrides an earlier one), `**` across names, a
//! directory standing for everything in it; `#` starts a comment line.
//!
//! berth reads the project directory, of which each job's workspace is a fresh copy: the
//! files a CI checkout would have (`.gitignore`d ones left out), as the job starts. A link is
//! read only when it leads to a file inside the project; no directory link is followed (with
//! or without `--follow-symbolic-links`, which is accepted); a pattern with `..` is refused.

use std::io::Read;
use std::path::Path;

use globset::{GlobBuilder, GlobMatcher};
use sha2::{Digest, Sha256};

use crate::project::workspace::{self, Selection};

/// One pattern: what it matches and whether it negates.
struct Pattern {
    negate: bool,
    matchers: Vec<GlobMatcher>,
}

/// Reads patterns: relative to the workspace, whose path in the container is `workspace`.
fn parse(workspace: &str, patterns: &[String]) -> Result<Vec<Pattern>, String> {
    let workspace = workspace.trim_end_matches('/');
    let mut out = Vec::new();
    for (i, arg) in patterns.iter().enumerate() {
        if i == 0 && arg.trim() == "--follow-symbolic-links" {
            continue;
        }
        for line in arg.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (negate, text) = match line.strip_prefix('!') {
                Some(rest) => (true, rest.trim_start()),
                None => (false, line),
            };
            let rel = if let Some(rest) = text.strip_prefix(&format!("{workspace}/")) {
                rest.to_string()
            } else if text == workspace {
                "**".to_string()
            } else if text.starts_with('/') {
                // Outside the workspace: the runner ignores the files it matches.
                continue;
            } else {
                text.trim_start_matches("./").to_string()
            };
            if rel.split('/').any(|p| p == "..") {
                return Err(format!(
                    "pattern `{line}` leaves the workspace (`..`): berth refuses it"
                ));
            }
            let rel = rel.trim_end_matches('/');
            let rel = if rel.is_empty() || rel == "." {
                "**"
            } else {
                rel
            };
            let mut matchers = Vec::new();
            for glob in [rel.to_string(), format!("{rel}/**")] {
                let g = GlobBuilder::new(&glob)
                    .literal_separator(true)
                    .backslash_escape(true)
                    .build()
                    .map_err(|e| format!("pattern `{line}`: {e}"))?;
                matchers.push(g.compile_matcher());
            }
            out.push(Pattern { negate, matchers });
        }
    }
    Ok(out)
}

/// Whether the patterns, applied in order, leave `rel` matched.
fn matched(patterns: &[Pattern], rel: &str) -> bool {
    let mut yes = false;
    for p in patterns {
        if p.matchers.iter().any(|m| m.is_match(rel)) {
            yes = !p.negate;
        }
    }
    yes
}

/// `hashFiles` over the files of `root` (the project), for a workspace at `workspace`.
pub fn hash_files(root: &Path, workspace: &str, patterns: &[String]) -> Result<String, String> {
    let patterns = parse(workspace, patterns)?;
    if patterns.iter().all(|p| p.negate) {
        return Ok(String::new());
    }
    let files = workspace::files(root, Selection::Checkout)
        .map_err(|e| format!("cannot list {}: {e}", root.display()))?;
    let real_root = root
        .canonicalize()
        .map_err(|e| format!("{}: {e}", root.display()))?;
    let mut outer = Sha256::new();
    let mut count = 0;
    for rel in files {
        let Some(text) = rel.to_str() else { continue };
        if !matched(&patterns, text) {
            continue;
        }
        let path = root.join(&rel);
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        let file = if meta.file_type().is_symlink() {
            // Only to a file that is in the project.
            match path.canonicalize() {
                Ok(target) if target.starts_with(&real_root) && target.is_file() => target,
                _ => continue,
            }
        } else if meta.is_file() {
            path
        } else {
            continue;
        };
        let mut f = std::fs::File::open(&file)
            .map_err(|e| format!("cannot read {}: {e}", rel.display()))?;
        let mut h = Sha256::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = f
                .read(&mut buf)
                .map_err(|e| format!("cannot read {}: {e}", rel.display()))?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
        outer.update(h.finalize());
        count += 1;
    }
    Ok(if count == 0 {
        String::new()
    } else {
        hex::encode(outer.finalize())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(p: &[&str]) -> Vec<String> {
        p.iter().map(|s| s.to_string()).collect()
    }

    fn project() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.txt"), "hello\n").unwrap();
        std::fs::create_dir(dir.path().join("b")).unwrap();
        std::fs::write(dir.path().join("b/c.txt"), "world\n").unwrap();
        std::fs::write(dir.path().join("b/d.log"), "log\n").unwrap();
        dir
    }

    // python3: import hashlib; a = hashlib.sha256(b'hello\n').digest();
    // c = hashlib.sha256(b'world\n').digest(); hashlib.sha256(a + c).hexdigest()
    const A_AND_C: &str = "96cb8058ed58b58f8fc0ad459bacf81108599b403e91674460ccb089f8ebb9db";
    // python3: hashlib.sha256(hashlib.sha256(b'world\n').digest()).hexdigest()
    const C_ONLY: &str = "dc0a7d4047ef3bfc9f2a86dc270e6e67cb7a3a7c071acedf5899382f6040d106";

    #[test]
    fn known_values_as_the_runner_computes_them() {
        let dir = project();
        let h = |p: &[&str]| hash_files(dir.path(), "/w", &s(p)).unwrap();
        assert_eq!(h(&["**/*.txt"]), A_AND_C);
        // Several patterns, one list of files in walk order, whatever the patterns' order.
        assert_eq!(h(&["b/c.txt", "a.txt"]), A_AND_C);
        assert_eq!(h(&["b/c.txt\na.txt"]), A_AND_C);
        assert_eq!(h(&["b/*.txt"]), C_ONLY);
        // A directory stands for its files; `!` takes some out again.
        assert_eq!(h(&["b", "!b/*.log"]), C_ONLY);
        assert_eq!(h(&["**", "!**/*.log"]), A_AND_C);
        // Absolute inside the workspace, `./`.
        assert_eq!(h(&["/w/b/c.txt"]), C_ONLY);
        assert_eq!(h(&["./b/c.txt"]), C_ONLY);
        assert_eq!(h(&["--follow-symbolic-links", "b/c.txt"]), C_ONLY);
    }

    #[test]
    fn nothing_matched_is_empty() {
        let dir = project();
        let h = |p: &[&str]| hash_files(dir.path(), "/w", &s(p)).unwrap();
        assert_eq!(h(&["**/*.lock"]), "");
        assert_eq!(h(&["!a.txt"]), "");
        assert_eq!(h(&["/elsewhere/a.txt"]), "");
        // A directory alone is no file.
        std::fs::create_dir(dir.path().join("empty")).unwrap();
        assert_eq!(h(&["empty"]), "");
    }

    #[test]
    fn the_walk_descends_before_a_longer_name() {
        // `a/x` comes before `a.txt`: each directory's names sorted, as the runner's walk.
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("a")).unwrap();
        std::fs::write(dir.path().join("a/x"), "world\n").unwrap();
        std::fs::write(dir.path().join("a.txt"), "hello\n").unwrap();
        // python3: hashlib.sha256(hashlib.sha256(b'world\n').digest()
        //   + hashlib.sha256(b'hello\n').digest()).hexdigest()
        assert_eq!(
            hash_files(dir.path(), "/w", &s(&["**"])).unwrap(),
            "d5bc6aced19287d552f0052d8ed5a90f0e4e09bfcf14d6c0d876e6e98449b2a4"
        );
    }

    #[test]
    fn nothing_outside_the_project_is_read() {
        let dir = project();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), "s\n").unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret"), dir.path().join("b/link"))
            .unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("out")).unwrap();
        let h = |p: &[&str]| hash_files(dir.path(), "/w", &s(p));
        assert_eq!(h(&["b/link"]).unwrap(), "");
        assert_eq!(h(&["out/**"]).unwrap(), "");
        assert_eq!(h(&["b/*.txt", "b/link"]).unwrap(), C_ONLY);
        // A link to a file inside is read through.
        std::os::unix::fs::symlink("c.txt", dir.path().join("b/inner")).unwrap();
        assert_eq!(h(&["b/inner"]).unwrap(), C_ONLY);
        let e = h(&["../x"]).unwrap_err();
        assert!(e.contains("leaves the workspace"), "{e}");
        assert!(h(&["b/../../x"]).is_err());
    }
}
