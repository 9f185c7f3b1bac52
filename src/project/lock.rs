//! `berth.lock`: every image a pipeline runs (jobs and services), pinned to the image ID it had
//! when `berth lock` ran, with the registry digest when there is one, and every remote action's
//! `owner/repo@ref` pinned to the commit it ran at. `--hermetic` runs only from it. Pure logic:
//! reading, writing and checking the file.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

pub const FILE: &str = "berth.lock";

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lockfile {
    pub version: u32,
    /// Image reference as the pipeline names it -> what it was locked to.
    pub images: BTreeMap<String, Locked>,
    /// A remote action's `owner/repo@ref` -> the commit it is pinned to (a lock written before
    /// berth ran actions has none).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub actions: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Locked {
    /// The image's ID (the digest of its configuration).
    pub id: String,
    /// `repo@sha256:...` when the image came from a registry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
}

impl Lockfile {
    /// `Ok(None)` when there is no lock file.
    pub fn load(project: &Path) -> Result<Option<Lockfile>, String> {
        let path = project.join(FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        let lock: Lockfile =
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        if lock.version != 1 {
            return Err(format!(
                "{}: version {} is not one this berth reads (1)",
                path.display(),
                lock.version
            ));
        }
        Ok(Some(lock))
    }

    pub fn save(&self, project: &Path) -> std::io::Result<()> {
        let text = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        // A link committed as berth.lock is neither written through nor silently replaced.
        let path = project.join(FILE);
        if std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink()) {
            return Err(std::io::Error::other(format!(
                "{} is a symbolic link; berth writes it as a plain file: remove the link first",
                path.display()
            )));
        }
        crate::project::state::write_atomic(project, FILE, format!("{text}\n").as_bytes())
    }

    /// Is `image` locked? The message names what to do when it is not.
    pub fn entry(&self, image: &str) -> Result<&Locked, String> {
        self.images
            .get(image)
            .ok_or_else(|| format!("image `{image}` is not in {FILE}; `berth lock` adds it"))
    }

    /// Does the image as it is now (`current` ID) match its entry?
    pub fn check(&self, image: &str, current: Option<&str>) -> Result<(), String> {
        let locked = self.entry(image)?;
        match current {
            Some(id) if id == locked.id => Ok(()),
            Some(id) => Err(format!(
                "image `{image}` is {} but {FILE} pins {}; `berth lock` updates the lock, or get the locked image back",
                short(id),
                short(&locked.id)
            )),
            None => Err(format!(
                "image `{image}` (locked to {}) is not present",
                short(&locked.id)
            )),
        }
    }
}

impl Lockfile {
    /// Does the remote action `repo_ref` (`owner/repo@ref`) run at the commit the lock pins?
    pub fn check_action(&self, repo_ref: &str, commit: &str) -> Result<(), String> {
        match self.actions.get(repo_ref) {
            Some(pin) if pin.eq_ignore_ascii_case(commit) => Ok(()),
            Some(pin) => Err(format!(
                "the action `{repo_ref}` is at {} but {FILE} pins {}; `berth actions pull` fetches the pinned commit",
                short(commit),
                short(pin)
            )),
            None => Err(format!(
                "the action `{repo_ref}` is not in {FILE}; `berth lock` adds it"
            )),
        }
    }
}

fn short(id: &str) -> &str {
    let id = id.strip_prefix("sha256:").unwrap_or(id);
    &id[..id.len().min(12)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_checks() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Lockfile::load(dir.path()).unwrap(), None);
        let mut lock = Lockfile {
            version: 1,
            ..Default::default()
        };
        lock.images.insert(
            "alpine:3".into(),
            Locked {
                id: "sha256:aaaa".into(),
                digest: Some("alpine@sha256:bbbb".into()),
            },
        );
        lock.save(dir.path()).unwrap();
        let back = Lockfile::load(dir.path()).unwrap().unwrap();
        assert_eq!(back, lock);
        assert!(back.check("alpine:3", Some("sha256:aaaa")).is_ok());
        let stale = back.check("alpine:3", Some("sha256:cccc")).unwrap_err();
        assert!(
            stale.contains("alpine:3") && stale.contains("pins aaaa"),
            "{stale}"
        );
        assert!(back
            .check("busybox", Some("x"))
            .unwrap_err()
            .contains("not in berth.lock"));
        // A lock without actions reads as before, and its actions are checked.
        assert!(back.actions.is_empty());
        let text = std::fs::read_to_string(dir.path().join(FILE)).unwrap();
        assert!(!text.contains("actions"), "{text}");
        let mut pinned = back.clone();
        pinned
            .actions
            .insert("octo/tools@v1".into(), "ab".repeat(20));
        pinned.save(dir.path()).unwrap();
        let back = Lockfile::load(dir.path()).unwrap().unwrap();
        assert_eq!(back, pinned);
        assert!(back.check_action("octo/tools@v1", &"AB".repeat(20)).is_ok());
        let moved = back
            .check_action("octo/tools@v1", &"cd".repeat(20))
            .unwrap_err();
        assert!(moved.contains("pins abababababab"), "{moved}");
        let unknown = back.check_action("octo/other@v2", "x").unwrap_err();
        assert!(unknown.contains("`berth lock` adds it"), "{unknown}");
        std::fs::write(dir.path().join(FILE), "{\"version\": 9, \"images\": {}}").unwrap();
        assert!(Lockfile::load(dir.path()).is_err());
    }
}
