//! Path rules for what moves between jobs: artifact patterns must stay inside the project, and
//! archive entries unpacked into a job must not escape its workspace. Pure logic.

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

/// Check an artifact or cache pattern: relative, and never above the project directory.
pub fn check_pattern(pattern: &str) -> Result<(), &'static str> {
    if pattern.trim().is_empty() {
        return Err("is empty");
    }
    if pattern.starts_with('/') {
        return Err("is absolute");
    }
    if escapes(pattern) {
        return Err("leaves the project directory");
    }
    Ok(())
}

/// Does a relative path climb above its starting point (`a/../../b`)?
pub fn escapes(path: &str) -> bool {
    let mut depth: i64 = 0;
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                depth -= 1;
                if depth < 0 {
                    return true;
                }
            }
            _ => depth += 1,
        }
    }
    false
}

/// The directory to fetch for a pattern: its leading components that hold no glob characters
/// (`out/**/*.txt` → `out`, `*.log` → ``, `dist/` → `dist`).
pub fn base_dir(pattern: &str) -> String {
    let mut base = Vec::new();
    for part in pattern.split('/').filter(|p| !p.is_empty() && *p != ".") {
        if part.contains(['*', '?', '[', '{']) {
            break;
        }
        base.push(part);
    }
    base.join("/")
}

/// Compile patterns into a matcher of project-relative paths. A pattern naming a directory also
/// matches everything beneath it, as in GitLab.
pub fn matcher(patterns: &[String]) -> Result<GlobSet, String> {
    let mut set = GlobSetBuilder::new();
    for p in patterns {
        let p = p.trim_start_matches("./").trim_end_matches('/');
        for glob in [p.to_string(), format!("{p}/**")] {
            let g = GlobBuilder::new(&glob)
                .literal_separator(true)
                .build()
                .map_err(|e| format!("`{p}`: {e}"))?;
            set.add(g);
        }
    }
    set.build().map_err(|e| e.to_string())
}

/// Is an archive entry safe to unpack into a workspace? `link` is a symlink's target or a hard
/// link's name. Returns why not.
pub fn check_entry(name: &str, link: Option<Link<'_>>) -> Result<(), String> {
    if name.starts_with('/') {
        return Err("has an absolute path".into());
    }
    if name.split('/').any(|p| p == "..") {
        return Err("has a `..` component".into());
    }
    match link {
        None => Ok(()),
        Some(Link::Hard(target)) => {
            if target.starts_with('/') || target.split('/').any(|p| p == "..") {
                Err(format!(
                    "is a hard link to `{target}`, outside the workspace"
                ))
            } else {
                Ok(())
            }
        }
        Some(Link::Symbolic(target)) => {
            let parent = match name.trim_end_matches('/').rsplit_once('/') {
                Some((dir, _)) => dir,
                None => "",
            };
            if target.starts_with('/') || escapes(&format!("{parent}/{target}")) {
                Err(format!("is a link to `{target}`, outside the workspace"))
            } else {
                Ok(())
            }
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub enum Link<'a> {
    Symbolic(&'a str),
    Hard(&'a str),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_stay_inside() {
        assert!(check_pattern("dist/").is_ok());
        assert!(check_pattern("out/../out/a").is_ok());
        assert!(check_pattern("**/*.whl").is_ok());
        assert_eq!(
            check_pattern("../../etc"),
            Err("leaves the project directory")
        );
        assert_eq!(
            check_pattern("a/../../b"),
            Err("leaves the project directory")
        );
        assert_eq!(check_pattern("/etc/passwd"), Err("is absolute"));
        assert_eq!(check_pattern(" "), Err("is empty"));
    }

    #[test]
    fn base_dirs() {
        assert_eq!(base_dir("out/**/*.txt"), "out");
        assert_eq!(base_dir("*.log"), "");
        assert_eq!(base_dir("dist/"), "dist");
        assert_eq!(base_dir("./a/b.txt"), "a/b.txt");
        assert_eq!(base_dir("reports/{a,b}/x"), "reports");
    }

    #[test]
    fn matching_like_gitlab() {
        let m = matcher(&["dist/".into(), "*.log".into(), "out/**/*.txt".into()]).unwrap();
        assert!(m.is_match("dist/app"));
        assert!(m.is_match("dist/deep/er/file"));
        assert!(m.is_match("build.log"));
        assert!(
            !m.is_match("sub/build.log"),
            "`*` does not cross directories"
        );
        assert!(m.is_match("out/a/b/c.txt"));
        assert!(m.is_match("out/c.txt"));
        assert!(!m.is_match("out/c.bin"));
    }

    #[test]
    fn entries_that_escape_are_refused() {
        assert!(check_entry("out/app.txt", None).is_ok());
        assert!(check_entry("/etc/passwd", None).is_err());
        assert!(check_entry("out/../../x", None).is_err());
        assert!(check_entry("out/link", Some(Link::Symbolic("app.txt"))).is_ok());
        assert!(check_entry("out/link", Some(Link::Symbolic("../README"))).is_ok());
        assert!(check_entry("out/link", Some(Link::Symbolic("../../etc"))).is_err());
        assert!(check_entry("out/link", Some(Link::Symbolic("/etc/passwd"))).is_err());
        assert!(check_entry("out/hard", Some(Link::Hard("out/app.txt"))).is_ok());
        assert!(check_entry("out/hard", Some(Link::Hard("../x"))).is_err());
    }
}
