//! Globs over absolute paths in a job's container, as GitHub's `@actions/glob` reads them:
//! `*` and `?` within one name, `**` across names, `[...]` a class; a pattern that names a
//! directory stands for everything in it; the part of a pattern before its first wildcard is
//! where its search starts. Both the format (which resolves a step's patterns) and the engine
//! (which walks the container's files) read them.

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

/// Whether a name holds a wildcard.
pub fn has_wildcard(text: &str) -> bool {
    text.contains(['*', '?', '['])
}

/// Where the search of a pattern starts: its names up to the first that holds a wildcard
/// (`/w/dist/**/*.js` → `/w/dist`; a pattern without wildcards is itself).
pub fn search_path(pattern: &str) -> String {
    let mut out = Vec::new();
    for part in pattern.split('/') {
        if has_wildcard(part) {
            break;
        }
        out.push(part);
    }
    let joined = out.join("/");
    if joined.is_empty() {
        "/".to_string()
    } else {
        trim_slash(&joined).to_string()
    }
}

fn trim_slash(path: &str) -> &str {
    let t = path.trim_end_matches('/');
    if t.is_empty() {
        "/"
    } else {
        t
    }
}

/// The search paths of patterns, those inside another left out (it is searched with it),
/// in the patterns' order.
pub fn search_paths(patterns: &[String]) -> Vec<String> {
    let all: Vec<String> = patterns.iter().map(|p| search_path(p)).collect();
    let mut out: Vec<String> = Vec::new();
    for p in &all {
        let inside_other = all.iter().any(|o| o != p && is_within(p, o));
        if !inside_other && !out.contains(p) {
            out.push(p.clone());
        }
    }
    out
}

/// `path` is `dir` or below it.
pub fn is_within(path: &str, dir: &str) -> bool {
    let dir = trim_slash(dir);
    path == dir || dir == "/" || path.starts_with(&format!("{dir}/"))
}

/// The deepest directory every path is in or is (the root of an upload of several search
/// paths, as upload-artifact takes it).
pub fn common_ancestor(paths: &[String]) -> String {
    let mut iter = paths.iter();
    let Some(first) = iter.next() else {
        return "/".to_string();
    };
    let mut common: Vec<&str> = first.split('/').collect();
    for p in iter {
        let parts: Vec<&str> = p.split('/').collect();
        let n = common
            .iter()
            .zip(&parts)
            .take_while(|(a, b)| a == b)
            .count();
        common.truncate(n);
    }
    let joined = common.join("/");
    if joined.is_empty() {
        "/".to_string()
    } else {
        joined
    }
}

/// Include and exclude patterns over absolute paths.
#[derive(Debug, Clone)]
pub struct PathGlobs {
    include: GlobSet,
    exclude: GlobSet,
}

fn set(patterns: &[String]) -> Result<GlobSet, String> {
    let mut set = GlobSetBuilder::new();
    for p in patterns {
        let p = trim_slash(p);
        // A directory stands for everything in it.
        let descendants = if p == "/" {
            "/**".to_string()
        } else {
            format!("{p}/**")
        };
        for glob in [p.to_string(), descendants] {
            let g = GlobBuilder::new(&glob)
                .literal_separator(true)
                .backslash_escape(true)
                .build()
                .map_err(|e| format!("`{p}`: {e}"))?;
            set.add(g);
        }
    }
    set.build().map_err(|e| e.to_string())
}

impl PathGlobs {
    pub fn new(include: &[String], exclude: &[String]) -> Result<PathGlobs, String> {
        Ok(PathGlobs {
            include: set(include)?,
            exclude: set(exclude)?,
        })
    }

    pub fn matches(&self, path: &str) -> bool {
        self.include.is_match(path) && !self.exclude.is_match(path)
    }
}

/// A name matches a glob of names (`pattern` of download-artifact: `*` across everything).
pub fn name_matches(pattern: &str, name: &str) -> bool {
    GlobBuilder::new(pattern)
        .build()
        .map(|g| g.compile_matcher().is_match(name))
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn search_paths_stop_at_the_first_wildcard_and_nest() {
        assert_eq!(search_path("/w/dist/**/*.js"), "/w/dist");
        assert_eq!(search_path("/w/a.txt"), "/w/a.txt");
        assert_eq!(search_path("/w/out/"), "/w/out");
        assert_eq!(search_path("/*.log"), "/");
        assert_eq!(
            search_paths(&strings(&[
                "/w/dist/*.js",
                "/w/dist/sub/x",
                "/w/lib",
                "/w/dist/y"
            ])),
            strings(&["/w/dist", "/w/lib"])
        );
        assert_eq!(
            search_paths(&strings(&["/w/a", "/w/a"])),
            strings(&["/w/a"])
        );
    }

    #[test]
    fn the_common_ancestor_is_a_whole_name() {
        assert_eq!(
            common_ancestor(&strings(&["/w/dist/a", "/w/dist/b/c"])),
            "/w/dist"
        );
        // `/w/dist` and `/w/distro` share `/w`, not `/w/dist`.
        assert_eq!(common_ancestor(&strings(&["/w/dist", "/w/distro"])), "/w");
        assert_eq!(common_ancestor(&strings(&["/a/x", "/b/y"])), "/");
        assert_eq!(common_ancestor(&strings(&["/w/out"])), "/w/out");
    }

    #[test]
    fn globs_match_directories_whole_and_exclude() {
        let g = PathGlobs::new(
            &strings(&["/w/out", "/w/src/**/*.rs"]),
            &strings(&["/w/out/tmp"]),
        )
        .unwrap();
        assert!(g.matches("/w/out/a/b.txt"));
        assert!(g.matches("/w/src/x/y/z.rs"));
        assert!(g.matches("/w/src/z.rs"));
        assert!(!g.matches("/w/src/z.txt"));
        assert!(!g.matches("/w/out/tmp/x"));
        assert!(!g.matches("/w/outside"));
        // `*` stays within one name.
        let g = PathGlobs::new(&strings(&["/w/*.txt"]), &[]).unwrap();
        assert!(g.matches("/w/a.txt"));
        assert!(!g.matches("/w/d/a.txt"));
        assert!(name_matches("build-*", "build-linux"));
        assert!(!name_matches("build-*", "test-linux"));
    }
}
