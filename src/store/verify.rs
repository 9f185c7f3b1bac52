//! `berth verify`: two runs of the same jobs, compared by their artifact manifests. Every file
//! whose sha256 differs (or that only one run made) is a difference; for text files a short
//! diff says how. Pure logic over run records on disk.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use super::archives::ArtifactManifest;
use super::record;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    pub job: String,
    pub path: String,
    pub what: String,
    /// `-`/`+` lines for a text file whose content differs.
    pub diff: Vec<String>,
}

/// Compare the artifacts of the jobs both runs recorded.
pub fn compare(
    first: (&Path, &record::RunManifest),
    second: (&Path, &record::RunManifest),
) -> Result<Vec<Difference>, String> {
    let mut out = Vec::new();
    for a in &first.1.jobs {
        let Some(b) = second.1.jobs.iter().find(|j| j.name == a.name) else {
            continue;
        };
        let load = |dir: &Path, rel: &Option<String>| -> Result<Option<ArtifactManifest>, String> {
            match rel {
                None => Ok(None),
                Some(rel) => {
                    let path = dir.join(rel);
                    let text = std::fs::read_to_string(&path)
                        .map_err(|e| format!("{}: {e}", path.display()))?;
                    serde_json::from_str(&text)
                        .map(Some)
                        .map_err(|e| format!("{}: {e}", path.display()))
                }
            }
        };
        let (ma, mb) = (load(first.0, &a.artifacts)?, load(second.0, &b.artifacts)?);
        let files = |m: &Option<ArtifactManifest>| -> BTreeMap<String, Option<String>> {
            m.iter()
                .flat_map(|m| m.files.iter())
                .map(|f| (f.path.clone(), f.sha256.clone().or_else(|| f.link.clone())))
                .collect()
        };
        let (fa, fb) = (files(&ma), files(&mb));
        for (path, sum) in &fa {
            match fb.get(path) {
                None => out.push(Difference {
                    job: a.name.clone(),
                    path: path.clone(),
                    what: "only the first run made it".into(),
                    diff: Vec::new(),
                }),
                Some(other) if other != sum => {
                    let archive = |dir: &Path, m: &Option<ArtifactManifest>| {
                        m.as_ref().map(|m| {
                            dir.join(Path::new(&m.archive).file_name().unwrap_or_default())
                        })
                    };
                    let diff = match (
                        archive(&first.0.join("artifacts"), &ma),
                        archive(&second.0.join("artifacts"), &mb),
                    ) {
                        (Some(x), Some(y)) => text_diff(&x, &y, path),
                        _ => Vec::new(),
                    };
                    out.push(Difference {
                        job: a.name.clone(),
                        path: path.clone(),
                        what: "differs".into(),
                        diff,
                    });
                }
                Some(_) => {}
            }
        }
        for path in fb.keys().filter(|p| !fa.contains_key(*p)) {
            out.push(Difference {
                job: a.name.clone(),
                path: path.clone(),
                what: "only the second run made it".into(),
                diff: Vec::new(),
            });
        }
    }
    Ok(out)
}

/// At most 64 KiB of a file out of a `.tar.gz` artifact archive.
fn read_entry(archive: &Path, path: &str) -> Option<Vec<u8>> {
    let file = std::fs::File::open(archive).ok()?;
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(file));
    for entry in tar.entries().ok()? {
        let mut entry = entry.ok()?;
        let name = entry
            .path()
            .ok()?
            .to_string_lossy()
            .trim_start_matches("./")
            .to_string();
        if name == path {
            let mut buf = Vec::new();
            entry.by_ref().take(64 * 1024).read_to_end(&mut buf).ok()?;
            return Some(buf);
        }
    }
    None
}

/// A short line diff of a text file in two archives (nothing for binary files).
fn text_diff(a: &Path, b: &Path, path: &str) -> Vec<String> {
    let (Some(x), Some(y)) = (read_entry(a, path), read_entry(b, path)) else {
        return Vec::new();
    };
    let (Ok(x), Ok(y)) = (String::from_utf8(x), String::from_utf8(y)) else {
        return Vec::new();
    };
    lines_diff(&x, &y, 6)
}

/// Lines that differ, position by position, as `-first` / `+second`, at most `limit` pairs.
pub fn lines_diff(x: &str, y: &str, limit: usize) -> Vec<String> {
    let (xl, yl): (Vec<&str>, Vec<&str>) = (x.lines().collect(), y.lines().collect());
    let mut out = Vec::new();
    let mut pairs = 0;
    for i in 0..xl.len().max(yl.len()) {
        let (l, r) = (xl.get(i), yl.get(i));
        if l == r {
            continue;
        }
        if pairs == limit {
            out.push("...".into());
            break;
        }
        pairs += 1;
        if let Some(l) = l {
            out.push(format!("-{l}"));
        }
        if let Some(r) = r {
            out.push(format!("+{r}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_diffs_are_short() {
        assert_eq!(lines_diff("a\nb\nc\n", "a\nB\nc\n", 5), vec!["-b", "+B"]);
        assert_eq!(lines_diff("a\n", "a\nextra\n", 5), vec!["+extra"]);
        let many_a = "1\n2\n3\n";
        let many_b = "x\ny\nz\n";
        assert_eq!(lines_diff(many_a, many_b, 1), vec!["-1", "+x", "..."]);
    }
}
