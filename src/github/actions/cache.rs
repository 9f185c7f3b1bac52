//! The action cache: each remote action's repository fetched once with git, at the commit its
//! ref named then, and used from here without network afterwards.
//!
//! Layout under the root (`~/.cache/berth/actions` unless configured):
//! `<owner>/<repo>/<sha>/` holds the commit's files; `<owner>/<repo>/refs/<ref>` the commit a
//! ref resolved to when it was fetched (a ref that is a full commit id needs none). The source
//! is `<source URL>/<owner>/<repo>` (`https://github.com` unless configured: GitHub Enterprise,
//! or a local bare repository over `file://` in the tests).
//!
//! A project's `berth.lock` may pin refs to commits: a pinned ref resolves to its pin alone (the
//! refs file is not read, and a fetch asks for the pinned commit), so every machine runs the
//! commit the lock names whatever the ref names today.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::Remote;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cache {
    root: PathBuf,
    source: String,
    /// `owner/repo@ref` -> the commit berth.lock pins it to.
    pins: BTreeMap<String, String>,
    /// Built-in actions the user runs for real (`BERTH_REAL_ACTIONS`), by name.
    real: Vec<String>,
}

/// What a fetch made of a remote action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    pub sha: String,
    /// It was in the cache already.
    pub cached: bool,
}

fn is_sha(text: &str) -> bool {
    text.len() == 40 && text.chars().all(|c| c.is_ascii_hexdigit())
}

/// A ref as a file name: `/` (in `releases/v1`) kept apart from the folders.
fn ref_file(git_ref: &str) -> String {
    git_ref.replace('%', "%25").replace('/', "%2F")
}

impl Cache {
    pub fn new(root: PathBuf, source: String) -> Cache {
        Cache {
            root,
            source,
            pins: BTreeMap::new(),
            real: Vec::new(),
        }
    }

    /// The same cache, with these built-in actions (`actions/checkout`...) run as the real
    /// actions, fetched and read like any other.
    pub fn with_real(self, real: Vec<String>) -> Cache {
        Cache { real, ..self }
    }

    /// Does the user run the built-in action `name` for real?
    pub fn runs_real(&self, name: &str) -> bool {
        self.real.iter().any(|r| r.eq_ignore_ascii_case(name))
    }

    /// The same cache, with refs pinned to commits (`owner/repo@ref` -> commit).
    pub fn pinned(self, pins: BTreeMap<String, String>) -> Cache {
        Cache { pins, ..self }
    }

    /// The commit `remote` must resolve to: its own ref when that is a commit, else its pin.
    fn wanted(&self, remote: &Remote) -> Option<String> {
        if is_sha(&remote.git_ref) {
            return Some(remote.git_ref.to_ascii_lowercase());
        }
        self.pins
            .get(&remote.repo_ref())
            .filter(|pin| is_sha(pin))
            .map(|pin| pin.to_ascii_lowercase())
    }

    /// The default root: `$XDG_CACHE_HOME/berth/actions`, else `~/.cache/berth/actions`.
    pub fn default_root(xdg_cache_home: Option<&str>, home: Option<&str>) -> Option<PathBuf> {
        match (xdg_cache_home.filter(|x| !x.is_empty()), home) {
            (Some(x), _) => Some(Path::new(x).join("berth/actions")),
            (None, Some(h)) => Some(Path::new(h).join(".cache/berth/actions")),
            (None, None) => None,
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn repo_dir(&self, remote: &Remote) -> PathBuf {
        self.root.join(&remote.owner).join(&remote.repo)
    }

    /// The commit `remote`'s ref was fetched at and the folder of its files; `None`: not here.
    pub fn resolve(&self, remote: &Remote) -> Option<(String, PathBuf)> {
        let repo = self.repo_dir(remote);
        let sha = if let Some(sha) = self.wanted(remote) {
            sha
        } else {
            let text =
                std::fs::read_to_string(repo.join("refs").join(ref_file(&remote.git_ref))).ok()?;
            text.trim().to_string()
        };
        let dir = repo.join(&sha);
        (is_sha(&sha) && dir.is_dir()).then_some((sha, dir))
    }

    /// Where `remote` is fetched from.
    pub fn url(&self, remote: &Remote) -> String {
        format!(
            "{}/{}/{}",
            self.source.trim_end_matches('/'),
            remote.owner,
            remote.repo
        )
    }

    /// Fetches `remote` unless its ref is in the cache already: the ref's commit, shallowly,
    /// its files unpacked under `<sha>/`. `Err`: what git said.
    pub fn fetch(&self, remote: &Remote) -> Result<Fetched, String> {
        if let Some((sha, _)) = self.resolve(remote) {
            return Ok(Fetched { sha, cached: true });
        }
        let repo = self.repo_dir(remote);
        std::fs::create_dir_all(repo.join("refs"))
            .map_err(|e| format!("cannot create {}: {e}", repo.display()))?;
        let work = tempfile::Builder::new()
            .prefix(".fetch-")
            .tempdir_in(&repo)
            .map_err(|e| format!("cannot create a folder in {}: {e}", repo.display()))?;
        let git_dir = work.path().join("git");
        let git = |args: &[&str]| -> Result<String, String> {
            let out = Command::new("git")
                .arg("--git-dir")
                .arg(&git_dir)
                .args(args)
                .stdin(Stdio::null())
                .output()
                .map_err(|e| format!("cannot run git: {e}"))?;
            if !out.status.success() {
                return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
            }
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
        };
        git(&["init", "-q", "--bare"])?;
        let url = self.url(remote);
        let wanted = self.wanted(remote);
        let asked = wanted.as_deref().unwrap_or(&remote.git_ref);
        git(&["fetch", "-q", "--depth", "1", &url, asked])
            .map_err(|e| format!("git fetch {url} {asked}: {e}"))?;
        let sha = git(&["rev-parse", "FETCH_HEAD^{commit}"])?;
        let files = work.path().join("files");
        std::fs::create_dir_all(&files)
            .map_err(|e| format!("cannot create {}: {e}", files.display()))?;
        let mut archive = Command::new("git")
            .arg("--git-dir")
            .arg(&git_dir)
            .args(["archive", "--format=tar", &sha])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot run git: {e}"))?;
        let unpacked = match archive.stdout.take() {
            Some(out) => tar::Archive::new(out)
                .unpack(&files)
                .map_err(|e| format!("cannot unpack {sha}: {e}")),
            None => Err("git archive gave no output".to_string()),
        };
        let status = archive.wait().map_err(|e| format!("git archive: {e}"))?;
        unpacked?;
        if !status.success() {
            return Err(format!("git archive {sha} failed"));
        }
        let dir = repo.join(&sha);
        if !dir.is_dir() {
            std::fs::rename(&files, &dir)
                .map_err(|e| format!("cannot move the files into {}: {e}", dir.display()))?;
        }
        // A pinned ref says nothing of what the ref names today: its refs file is left alone.
        if wanted.is_none() {
            let file = repo.join("refs").join(ref_file(&remote.git_ref));
            std::fs::write(&file, format!("{sha}\n"))
                .map_err(|e| format!("cannot write {}: {e}", file.display()))?;
        }
        Ok(Fetched { sha, cached: false })
    }
}

/// An action's files, each path relative to `dir` with its bytes, for copying into a job's
/// container. Links and special files are left out (an action's files are plain files).
pub fn files(dir: &Path) -> Result<Vec<(String, Vec<u8>)>, String> {
    let mut out = Vec::new();
    let mut todo = vec![PathBuf::new()];
    while let Some(rel) = todo.pop() {
        let entries = std::fs::read_dir(dir.join(&rel))
            .map_err(|e| format!("cannot read {}: {e}", dir.join(&rel).display()))?;
        for entry in entries.flatten() {
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            let path = rel.join(entry.file_name());
            if kind.is_dir() {
                todo.push(path);
            } else if kind.is_file() {
                let bytes = std::fs::read(entry.path())
                    .map_err(|e| format!("cannot read {}: {e}", entry.path().display()))?;
                out.push((path.display().to_string(), bytes));
            }
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn git(dir: &Path, args: &[&str]) {
        let ok = Command::new("git")
            .args(args)
            .current_dir(dir)
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.com")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.com")
            .status()
            .unwrap()
            .success();
        assert!(ok, "git {args:?}");
    }

    #[test]
    fn a_ref_is_fetched_once_then_read_from_the_cache() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        std::fs::create_dir_all(src.join("sub")).unwrap();
        std::fs::write(src.join("sub/action.yml"), "name: x\n").unwrap();
        git(&src, &["init", "-q", "-b", "main"]);
        git(&src, &["add", "."]);
        git(&src, &["commit", "-q", "-m", "one"]);
        git(&src, &["tag", "v1"]);
        let server = tmp.path().join("server/octo");
        std::fs::create_dir_all(&server).unwrap();
        git(
            &server,
            &["clone", "-q", "--bare", src.to_str().unwrap(), "tools"],
        );
        let cache = Cache::new(
            tmp.path().join("cache"),
            format!("file://{}", tmp.path().join("server").display()),
        );
        let remote = Remote {
            owner: "octo".into(),
            repo: "tools".into(),
            path: "sub".into(),
            git_ref: "v1".into(),
        };
        assert_eq!(cache.resolve(&remote), None);
        let first = cache.fetch(&remote).unwrap();
        assert!(!first.cached);
        let (sha, dir) = cache.resolve(&remote).unwrap();
        assert_eq!(sha, first.sha);
        assert_eq!(
            std::fs::read_to_string(dir.join("sub/action.yml")).unwrap(),
            "name: x\n"
        );
        // The source gone, the cache still answers.
        std::fs::remove_dir_all(tmp.path().join("server")).unwrap();
        assert!(cache.fetch(&remote).unwrap().cached);
        let by_sha = Remote {
            git_ref: sha.clone(),
            ..remote.clone()
        };
        assert_eq!(cache.resolve(&by_sha).map(|(s, _)| s), Some(sha));
        let other = Remote {
            git_ref: "v2".into(),
            ..remote
        };
        let e = cache.fetch(&other).unwrap_err();
        assert!(e.contains("git fetch"), "{e}");
        assert_eq!(
            files(&dir).unwrap(),
            [("sub/action.yml".to_string(), b"name: x\n".to_vec())]
        );
    }

    #[test]
    fn a_pinned_ref_resolves_to_its_pin_whatever_the_ref_names_now() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        std::fs::create_dir_all(&src).unwrap();
        git(&src, &["init", "-q", "-b", "main"]);
        std::fs::write(src.join("action.yml"), "name: one\n").unwrap();
        git(&src, &["add", "."]);
        git(&src, &["commit", "-q", "-m", "one"]);
        let rev = |dir: &Path| {
            let out = Command::new("git")
                .args(["rev-parse", "HEAD"])
                .current_dir(dir)
                .output()
                .unwrap();
            String::from_utf8(out.stdout).unwrap().trim().to_string()
        };
        let one = rev(&src);
        std::fs::write(src.join("action.yml"), "name: two\n").unwrap();
        git(&src, &["commit", "-q", "-am", "two"]);
        // The tag moved on since the lock was written.
        git(&src, &["tag", "v1"]);
        let server = tmp.path().join("server/octo");
        std::fs::create_dir_all(&server).unwrap();
        git(
            &server,
            &["clone", "-q", "--bare", src.to_str().unwrap(), "tools"],
        );
        let source = format!("file://{}", tmp.path().join("server").display());
        let remote = Remote {
            owner: "octo".into(),
            repo: "tools".into(),
            path: String::new(),
            git_ref: "v1".into(),
        };
        let pins = BTreeMap::from([("octo/tools@v1".to_string(), one.clone())]);
        let cache = Cache::new(tmp.path().join("cache"), source).pinned(pins);
        assert_eq!(cache.resolve(&remote), None);
        let fetched = cache.fetch(&remote).unwrap();
        assert_eq!(fetched.sha, one);
        let (sha, dir) = cache.resolve(&remote).unwrap();
        assert_eq!(sha, one);
        assert_eq!(
            std::fs::read_to_string(dir.join("action.yml")).unwrap(),
            "name: one\n"
        );
        // Unpinned, the same cache has not resolved the ref: the pin wrote no refs file.
        let unpinned = Cache::new(cache.root().to_path_buf(), String::new());
        assert_eq!(unpinned.resolve(&remote), None);
    }
}
