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

#[derive(Debug, Clone, Copy)]
pub enum Link<'a> {
    Symbolic(&'a str),
    Hard(&'a str),
}

/// Links followed in one resolution at most, as Linux's own bound (`MAXSYMLINKS`).
pub const MAX_LINK_HOPS: usize = 40;

/// Where a checked entry lands: a path relative to the workspace that goes through no link of
/// the archive, so writing it there needs to follow none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placed {
    pub path: String,
    pub kind: PlacedKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlacedKind {
    /// A file or a directory.
    Plain,
    /// A symbolic link with this target (a hard link to a symbolic link becomes one: the
    /// kernel links the link itself, not what it points to).
    Symbolic(String),
    /// A hard link to this placed path.
    Hard(String),
}

/// The entries of archives unpacked one after another into one workspace, checked as a path
/// walk would see them: every entry's parent and every link's target are resolved, component by
/// component, through the links the entries before it made. A link checked on its own is not
/// enough: `dist/up -> ..` and `dist/up2 -> up/..` each stay inside, together they climb out.
#[derive(Debug, Default)]
pub struct Walk {
    /// Placed path of each symbolic link so far -> its index in `links`.
    by_path: std::collections::HashMap<String, usize>,
    links: Vec<LinkRecord>,
    source: usize,
}

#[derive(Debug)]
struct LinkRecord {
    name: String,
    placed: String,
    target: String,
    source: usize,
}

/// Why a resolution failed.
enum Stray {
    /// Climbed above the workspace; through this link, if one was followed.
    Out(Option<String>),
    /// Reached an absolute target; through this link, if one was followed.
    Absolute(Option<String>),
    TooManyHops,
}

impl Walk {
    pub fn new() -> Walk {
        Walk::default()
    }

    /// The entries checked from now on belong to the next archive (numbered from 0): `finish`
    /// says which archive a refused link came from.
    pub fn next_source(&mut self) {
        self.source += 1;
    }

    /// Is an archive entry safe to unpack into the workspace after the entries checked before
    /// it? `link` is a symlink's target or a hard link's name (another entry's path). Returns
    /// where it lands, or why not.
    pub fn check_entry(&mut self, name: &str, link: Option<Link<'_>>) -> Result<Placed, String> {
        if name.starts_with('/') {
            return Err("has an absolute path".into());
        }
        if name.split('/').any(|p| p == "..") {
            return Err("has a `..` component".into());
        }
        let parts: Vec<&str> = name
            .split('/')
            .filter(|p| !p.is_empty() && *p != ".")
            .collect();
        let Some((base, parents)) = parts.split_last() else {
            // `./`: the workspace itself, which only a directory may name.
            return match link {
                None => Ok(Placed {
                    path: String::new(),
                    kind: PlacedKind::Plain,
                }),
                Some(_) => Err("is a link in place of the workspace".into()),
            };
        };
        let parent = self
            .resolve(&[], parents, true)
            .map_err(|why| self.written_through(why))?;
        let placed = join(&parent, base);
        if let Some(&i) = self.by_path.get(&placed) {
            return Err(format!(
                "replaces the link `{}` of an entry before it",
                self.links[i].name
            ));
        }
        let kind = match link {
            None => PlacedKind::Plain,
            Some(Link::Symbolic(target)) => PlacedKind::Symbolic(target.to_string()),
            Some(Link::Hard(target)) => {
                if target.starts_with('/') || target.split('/').any(|p| p == "..") {
                    return Err(format!(
                        "is a hard link to `{target}`, outside the workspace"
                    ));
                }
                let parts: Vec<&str> = target
                    .split('/')
                    .filter(|p| !p.is_empty() && *p != ".")
                    .collect();
                let to = self
                    .resolve(&[], &parts, false)
                    .map(|p| p.join("/"))
                    .map_err(|why| {
                        format!("is a hard link to `{target}`, {}", Self::outside(why))
                    })?;
                match self.by_path.get(&to) {
                    Some(&i) => PlacedKind::Symbolic(self.links[i].target.clone()),
                    None if to.is_empty() => {
                        return Err(format!(
                            "is a hard link to `{target}`, the workspace itself"
                        ))
                    }
                    None => PlacedKind::Hard(to),
                }
            }
        };
        if let PlacedKind::Symbolic(target) = &kind {
            self.check_target(&parent, target)
                .map_err(|why| format!("is a link to `{target}`, {}", Self::outside(why)))?;
            self.by_path.insert(placed.clone(), self.links.len());
            self.links.push(LinkRecord {
                name: name.trim_end_matches('/').to_string(),
                placed: placed.clone(),
                target: target.clone(),
                source: self.source,
            });
        }
        Ok(Placed { path: placed, kind })
    }

    /// After the last entry: every link resolved again against all of them, since a link made
    /// later changes where an earlier one leads (`a -> b/../..` is inside until `b -> ..`).
    /// A refusal names the archive (see `next_source`), the link, and why.
    pub fn finish(&self) -> Result<(), (usize, String, String)> {
        for link in &self.links {
            let parent: Vec<&str> = match link.placed.rsplit_once('/') {
                Some((dir, _)) => dir.split('/').collect(),
                None => Vec::new(),
            };
            let parent: Vec<String> = parent.into_iter().map(str::to_string).collect();
            if let Err(why) = self.check_target(&parent, &link.target) {
                return Err((
                    link.source,
                    link.name.clone(),
                    format!("is a link to `{}`, {}", link.target, Self::outside(why)),
                ));
            }
        }
        Ok(())
    }

    fn check_target(&self, parent: &[String], target: &str) -> Result<(), Stray> {
        if target.starts_with('/') {
            return Err(Stray::Absolute(None));
        }
        let parts: Vec<&str> = target.split('/').collect();
        self.resolve(parent, &parts, true).map(|_| ())
    }

    /// Walk `parts` from `start` (both relative to the workspace, `start` through no link),
    /// following the links seen so far, the last component's only with `follow_last`.
    fn resolve(
        &self,
        start: &[String],
        parts: &[&str],
        follow_last: bool,
    ) -> Result<Vec<String>, Stray> {
        let mut at: Vec<String> = start.to_vec();
        let mut pending: std::collections::VecDeque<String> =
            parts.iter().map(|p| p.to_string()).collect();
        let mut hops = 0;
        let mut through: Option<String> = None;
        while let Some(part) = pending.pop_front() {
            match part.as_str() {
                "" | "." => continue,
                ".." => {
                    if at.pop().is_none() {
                        return Err(Stray::Out(through));
                    }
                    continue;
                }
                _ => {}
            }
            at.push(part);
            if pending.is_empty() && !follow_last {
                break;
            }
            let Some(&i) = self.by_path.get(&at.join("/")) else {
                continue;
            };
            let link = &self.links[i];
            hops += 1;
            if hops > MAX_LINK_HOPS {
                return Err(Stray::TooManyHops);
            }
            if link.target.starts_with('/') {
                return Err(Stray::Absolute(Some(link.name.clone())));
            }
            through = Some(link.name.clone());
            at.pop();
            for p in link.target.split('/').rev() {
                pending.push_front(p.to_string());
            }
        }
        Ok(at)
    }

    fn outside(why: Stray) -> String {
        match why {
            Stray::Out(None) | Stray::Absolute(None) => "outside the workspace".into(),
            Stray::Out(Some(link)) | Stray::Absolute(Some(link)) => {
                format!("outside the workspace (through the link `{link}`)")
            }
            Stray::TooManyHops => format!("through more than {MAX_LINK_HOPS} links"),
        }
    }

    fn written_through(&self, why: Stray) -> String {
        match why {
            Stray::TooManyHops => {
                format!("has a parent path through more than {MAX_LINK_HOPS} links")
            }
            Stray::Out(Some(link)) | Stray::Absolute(Some(link)) => {
                format!("is written through the link `{link}`, outside the workspace")
            }
            // A parent path without `..` leaves only through a link.
            Stray::Out(None) | Stray::Absolute(None) => "is written outside the workspace".into(),
        }
    }
}

fn join(parent: &[String], base: &str) -> String {
    if parent.is_empty() {
        base.to_string()
    } else {
        format!("{}/{base}", parent.join("/"))
    }
}

/// A name safe for container names and paths: letters, digits, `-`, `_`, `.`.
pub fn slug(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let s = s.trim_matches('-').to_string();
    if s.is_empty() {
        "job".into()
    } else {
        s
    }
}

/// A job's name as a file name (logs, artifact archives): [`slug`], kept well under the file
/// system's 255 bytes. A longer name is cut, and a hash of the whole name keeps it apart
/// from others cut alike.
pub fn file_slug(job: &str) -> String {
    const MAX: usize = 100;
    let slug = slug(job);
    if slug.len() <= MAX {
        return slug;
    }
    use sha2::{Digest, Sha256};
    let hash = hex::encode(Sha256::digest(job.as_bytes()));
    // The slug is ASCII: any byte is a character boundary.
    format!("{}-{}", &slug[..MAX - 9], &hash[..8])
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

    /// Check entries in order with one walk; the first refusal as `entry: why`.
    fn walk(entries: &[(&str, Option<Link<'_>>)]) -> Result<Vec<Placed>, String> {
        let mut w = Walk::new();
        let mut placed = Vec::new();
        for (name, link) in entries {
            placed.push(
                w.check_entry(name, *link)
                    .map_err(|why| format!("{name}: {why}"))?,
            );
        }
        w.finish()
            .map_err(|(_, name, why)| format!("{name}: {why} (at the end)"))?;
        Ok(placed)
    }

    fn sym(t: &str) -> Option<Link<'_>> {
        Some(Link::Symbolic(t))
    }

    fn hard(t: &str) -> Option<Link<'_>> {
        Some(Link::Hard(t))
    }

    #[test]
    fn entries_that_escape_are_refused() {
        assert!(walk(&[("out/app.txt", None)]).is_ok());
        assert!(walk(&[("/etc/passwd", None)])
            .unwrap_err()
            .contains("absolute path"));
        assert!(walk(&[("out/../../x", None)])
            .unwrap_err()
            .contains("`..` component"));
        assert!(walk(&[("out/link", sym("app.txt"))]).is_ok());
        assert!(walk(&[("out/link", sym("../README"))]).is_ok());
        assert_eq!(
            walk(&[("out/link", sym("../../etc"))]).unwrap_err(),
            "out/link: is a link to `../../etc`, outside the workspace"
        );
        assert!(walk(&[("out/link", sym("/etc/passwd"))]).is_err());
        assert!(walk(&[("out/hard", hard("out/app.txt"))]).is_ok());
        assert!(walk(&[("out/hard", hard("../x"))]).is_err());
        assert!(walk(&[("out/hard", hard("/etc/passwd"))]).is_err());
        assert!(walk(&[("./", None), ("./out/", None)]).is_ok());
        assert!(walk(&[("./", sym("/"))]).is_err());
    }

    #[test]
    fn the_chain_of_relative_links_is_refused_at_the_first_link_that_leaves() {
        let mut chain = vec![("dist/up".to_string(), "..".to_string())];
        chain.push(("dist/up2".into(), "up/..".into()));
        for i in 3..=7 {
            chain.push((format!("dist/up{i}"), format!("up{}/..", i - 1)));
        }
        chain.push(("dist/passwd".into(), "up7/etc/passwd".into()));
        let entries: Vec<(&str, Option<Link<'_>>)> =
            chain.iter().map(|(n, t)| (n.as_str(), sym(t))).collect();
        // Each link alone stays inside: the old check passed them all.
        for (name, target) in &chain {
            let parent = name.rsplit_once('/').map_or("", |(d, _)| d);
            assert!(!escapes(&format!("{parent}/{target}")), "{name}");
        }
        assert_eq!(
            walk(&entries).unwrap_err(),
            "dist/up2: is a link to `up/..`, outside the workspace (through the link `dist/up`)"
        );
        // In the order the engine lists a directory (`passwd` first), the same refusal.
        let mut sorted = entries.clone();
        sorted.sort_by_key(|(n, _)| *n);
        assert!(walk(&sorted)
            .unwrap_err()
            .starts_with("dist/up2: is a link to `up/..`"));
    }

    #[test]
    fn a_link_made_later_is_checked_against_the_earlier_ones_at_the_end() {
        // `dist/a -> b/../..` is `` (the workspace) while `dist/b` is a directory...
        assert!(walk(&[("dist/b/", None), ("dist/a", sym("b/../.."))]).is_ok());
        // ...and climbs out once `dist/b -> ..` (fine on its own) follows it.
        assert_eq!(
            walk(&[("dist/a", sym("b/../..")), ("dist/b", sym(".."))]).unwrap_err(),
            "dist/a: is a link to `b/../..`, outside the workspace (through the link `dist/b`) \
             (at the end)"
        );
    }

    #[test]
    fn entries_written_through_links_land_where_the_links_lead() {
        let placed = walk(&[
            ("dist/up", sym("..")),
            ("dist/up/x", None),
            ("dist/sub", sym("deep/er")),
            ("dist/sub/f", None),
        ])
        .unwrap();
        let paths: Vec<&str> = placed.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(paths, ["dist/up", "x", "dist/sub", "dist/deep/er/f"]);
        assert_eq!(
            walk(&[("dist/up", sym("..")), ("dist/up/../x", None)]).unwrap_err(),
            "dist/up/../x: has a `..` component"
        );
        assert_eq!(
            walk(&[("dist/up", sym("..")), ("dist/up/dist/up", None)]).unwrap_err(),
            "dist/up/dist/up: replaces the link `dist/up` of an entry before it"
        );
        // A parent that leaves through a link, or through a chain of them.
        assert_eq!(
            walk(&[("a", sym(".")), ("a/b", sym("a/a/..")), ("b/x", None)]).unwrap_err(),
            "a/b: is a link to `a/a/..`, outside the workspace (through the link `a`)"
        );
        let mut w = Walk::new();
        w.check_entry("l", sym("x")).unwrap();
        w.check_entry("x", sym(".")).unwrap();
        assert_eq!(w.check_entry("l/l/l/f", None).unwrap().path, "f");
        // Entries through a link to an absolute path.
        let mut w = Walk::new();
        assert!(w.check_entry("etc", sym("/etc")).is_err());
        assert_eq!(
            w.check_entry("etc/passwd", None).unwrap().path,
            "etc/passwd"
        );
    }

    #[test]
    fn a_parent_path_through_a_link_of_an_earlier_archive_is_refused() {
        let mut w = Walk::new();
        w.check_entry("d/b/", None).unwrap();
        w.check_entry("d/a", sym("b/../..")).unwrap();
        w.next_source();
        // Fine alone; with `d/a` it climbs out...
        w.check_entry("d/b", sym("..")).unwrap();
        // ...and so does a file written through `d/a`.
        assert_eq!(
            w.check_entry("d/a/x", None).unwrap_err(),
            "is written through the link `d/b`, outside the workspace"
        );
        let (source, name, why) = w.finish().unwrap_err();
        assert_eq!((source, name.as_str()), (0, "d/a"), "{why}");
    }

    #[test]
    fn link_loops_and_long_chains_are_bounded() {
        let mut w = Walk::new();
        w.check_entry("a", sym("b")).unwrap();
        w.check_entry("b", sym("a")).unwrap();
        assert_eq!(
            w.finish().unwrap_err().2,
            format!("is a link to `b`, through more than {MAX_LINK_HOPS} links")
        );
        assert!(w
            .check_entry("a/x", None)
            .unwrap_err()
            .contains("more than 40 links"));
        // `l{i} -> l{i-1}`: resolving the target of `l{i}` follows i - 1 links; 40 are fine.
        let mut w = Walk::new();
        w.check_entry("l0", None).unwrap();
        for i in 1..=42 {
            let placed = w.check_entry(&format!("l{i}"), sym(&format!("l{}", i - 1)));
            assert_eq!(placed.is_ok(), i <= 41, "l{i}");
        }
    }

    #[test]
    fn hard_links_resolve_through_links_and_to_a_link_become_one() {
        let placed = walk(&[
            ("out/app", None),
            ("out/d", sym(".")),
            ("h1", hard("out/d/app")),
            ("out/rel", sym("../README")),
        ])
        .unwrap();
        assert_eq!(placed[2].kind, PlacedKind::Hard("out/app".into()));
        // A hard link to `out/rel` links the symbolic link itself: `../README` read from the
        // top of the workspace climbs out.
        assert_eq!(
            walk(&[("out/rel", sym("../README")), ("top", hard("out/rel"))]).unwrap_err(),
            "top: is a link to `../README`, outside the workspace"
        );
        let placed = walk(&[("out/rel", sym("../README")), ("out/h", hard("out/rel"))]).unwrap();
        assert_eq!(placed[1].kind, PlacedKind::Symbolic("../README".into()));
        assert_eq!(
            walk(&[
                ("d/a", sym("b/../..")),
                ("d/b", sym("..")),
                ("h", hard("d/a/etc/passwd"))
            ])
            .unwrap_err(),
            "h: is a hard link to `d/a/etc/passwd`, outside the workspace (through the link `d/b`)"
        );
        assert!(walk(&[("h", hard("."))])
            .unwrap_err()
            .contains("the workspace itself"));
    }

    #[test]
    fn slugs() {
        assert_eq!(slug("job with spaces"), "job-with-spaces");
        assert_eq!(slug("test: [a, b]"), "test---a--b");
        assert_eq!(slug("///"), "job");
    }
}
