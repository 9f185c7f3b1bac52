//! berth's own directory in a project, `.berth/`: run records, cache locks, the cache index.
//!
//! A repository is untrusted input, and it may come with a `.berth/` of its own. So nothing
//! here follows a link: every directory on the way is checked to be a real directory (made if
//! missing), files are created new under a random name and renamed into place (a rename
//! replaces a link instead of writing through it), and lock files are opened with `O_NOFOLLOW`.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

pub const DIR: &str = ".berth";

/// Why berth will not use a path under `.berth/`.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error(
        "{path} is a symbolic link{to}; berth does not follow links under .berth/ that it did \
         not make (it may have come with the repository): remove it"
    )]
    Link { path: PathBuf, to: String },
    #[error("{path} is not a directory; berth keeps its records there: remove or rename it")]
    NotDir { path: PathBuf },
    #[error("cannot use {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn link_error(path: &Path) -> StateError {
    let to = std::fs::read_link(path)
        .map(|t| format!(" (to {})", t.display()))
        .unwrap_or_default();
    StateError::Link {
        path: path.to_path_buf(),
        to,
    }
}

/// Check that `path` is a real directory, not a link to one. `Ok(false)` when it is missing.
pub fn is_real_dir(path: &Path) -> Result<bool, StateError> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => Err(link_error(path)),
        Ok(m) if m.is_dir() => Ok(true),
        Ok(_) => Err(StateError::NotDir {
            path: path.to_path_buf(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(source) => Err(StateError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Make `path` a real directory if it is missing; refuse a link or a file in its place.
fn ensure_dir(path: &Path) -> Result<(), StateError> {
    if is_real_dir(path)? {
        return Ok(());
    }
    match std::fs::create_dir(path) {
        Ok(()) => Ok(()),
        // Made by someone else meanwhile: check what it is.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => is_real_dir(path).map(|_| ()),
        Err(source) => Err(StateError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// `.berth/<sub>/...` of a project, every directory on the way real (made where missing).
/// The project directory itself is the user's choice and is not checked.
pub fn dir(project: &Path, sub: &[&str]) -> Result<PathBuf, StateError> {
    let mut path = project.join(DIR);
    if !is_real_dir(&path)? {
        ensure_dir(&path)?;
        // As uv does for `.venv`: git then never shows nor commits berth's folder.
        let _ = write_atomic(
            &path,
            ".gitignore",
            b"# Made by berth: its own records.\n*\n",
        );
    }
    for part in sub {
        path.push(part);
        ensure_dir(&path)?;
    }
    Ok(path)
}

/// `.berth/<sub>/...` for reading: `Ok(None)` when it does not exist yet; a link on the way is
/// refused as when writing.
pub fn existing_dir(project: &Path, sub: &[&str]) -> Result<Option<PathBuf>, StateError> {
    let mut path = project.join(DIR);
    if !is_real_dir(&path)? {
        return Ok(None);
    }
    for part in sub {
        path.push(part);
        if !is_real_dir(&path)? {
            return Ok(None);
        }
    }
    Ok(Some(path))
}

/// What berth keeps under `.berth/`, each checked before a run: none may be a link.
const KNOWN: &[&str] = &["runs", "locks", "caches.json"];

/// Refuse a `.berth/` whose known entries are links (the repository may have brought them),
/// before a run creates anything. berth's own writes never follow links either; this says so
/// up front, with the path, instead of ignoring what the repository put there.
pub fn check(project: &Path) -> Result<(), StateError> {
    if !is_real_dir(&project.join(DIR))? {
        return Ok(());
    }
    for name in KNOWN {
        let path = project.join(DIR).join(name);
        if std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink()) {
            return Err(link_error(&path));
        }
    }
    Ok(())
}

/// Write `bytes` to `dir/name` whole or not at all: into a new file of a random name in `dir`,
/// then renamed over `name`. A link at `name` is replaced, never written through.
pub fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".tmp")
        // As a plain create would make it (tempfile's own default is 0600).
        .permissions(std::fs::Permissions::from_mode(0o644))
        .tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_data()?;
    tmp.persist(dir.join(name)).map_err(|e| e.error)?;
    Ok(())
}

/// Open (creating) a lock file without following a link in its place.
pub fn open_lock_file(path: &Path) -> std::io::Result<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn makes_real_directories() {
        let project = tempfile::tempdir().unwrap();
        let runs = dir(project.path(), &["runs"]).unwrap();
        assert!(runs.is_dir());
        assert_eq!(runs, project.path().join(".berth/runs"));
        // Twice is fine.
        dir(project.path(), &["runs"]).unwrap();
        assert_eq!(existing_dir(project.path(), &["runs"]).unwrap(), Some(runs));
        assert_eq!(existing_dir(project.path(), &["locks"]).unwrap(), None);
    }

    #[test]
    fn refuses_links_anywhere_on_the_way() {
        let outside = tempfile::tempdir().unwrap();
        let project = tempfile::tempdir().unwrap();
        std::fs::create_dir(project.path().join(".berth")).unwrap();
        symlink(outside.path(), project.path().join(".berth/runs")).unwrap();
        let err = dir(project.path(), &["runs"]).unwrap_err();
        assert!(matches!(err, StateError::Link { .. }), "{err}");
        assert!(
            err.to_string().contains(".berth/runs is a symbolic link"),
            "{err}"
        );
        assert!(existing_dir(project.path(), &["runs"]).is_err());

        let project = tempfile::tempdir().unwrap();
        symlink(outside.path(), project.path().join(".berth")).unwrap();
        assert!(matches!(
            dir(project.path(), &["locks"]),
            Err(StateError::Link { .. })
        ));
        assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_run_checks_every_known_entry() {
        let outside = tempfile::tempdir().unwrap();
        let project = tempfile::tempdir().unwrap();
        check(project.path()).unwrap();
        std::fs::create_dir(project.path().join(".berth")).unwrap();
        check(project.path()).unwrap();
        symlink(outside.path(), project.path().join(".berth/caches.json")).unwrap();
        let err = check(project.path()).unwrap_err();
        assert!(
            err.to_string().contains("caches.json is a symbolic link"),
            "{err}"
        );
    }

    #[test]
    fn atomic_writes_replace_links() {
        let outside = tempfile::tempdir().unwrap();
        let victim = outside.path().join("victim");
        std::fs::write(&victim, "precious").unwrap();
        let dir = tempfile::tempdir().unwrap();
        symlink(&victim, dir.path().join("caches.json")).unwrap();
        write_atomic(dir.path(), "caches.json", b"{}").unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("caches.json")).unwrap(),
            "{}"
        );
        assert!(!std::fs::symlink_metadata(dir.path().join("caches.json"))
            .unwrap()
            .file_type()
            .is_symlink());
    }

    #[test]
    fn lock_files_do_not_follow_links() {
        let outside = tempfile::tempdir().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let target = outside.path().join("made-elsewhere");
        symlink(&target, dir.path().join("v.lock")).unwrap();
        assert!(open_lock_file(&dir.path().join("v.lock")).is_err());
        assert!(!target.exists());
        assert!(open_lock_file(&dir.path().join("w.lock")).is_ok());
    }
}
