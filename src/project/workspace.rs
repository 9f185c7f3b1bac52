//! The project as each job receives it: a snapshot of the files a CI checkout would have
//! (tracked and untracked-but-not-ignored), taken once per run and written as a tar file that is
//! streamed into every job's container.

use std::fs::File;
use std::io::{self, BufWriter};
use std::path::{Path, PathBuf};

use ignore::WalkBuilder;

/// Directories never copied: git's own store and berth's records.
const SKIP: &[&str] = &[".git", ".berth"];

/// Which ignore rules pick the files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Selection {
    /// What a CI checkout has: `.gitignore`d files left out.
    Checkout,
    /// What GitLab Runner's checkout has: [`Selection::Checkout`]'s files, each writable by
    /// all (its helper checks out under umask 0000: files 0666, or 0777 when executable,
    /// directories 0777).
    RunnerCheckout,
    /// A Docker build context: `.dockerignore`d files left out.
    BuildContext,
}

/// Which files of `project` a job sees, relative to it, sorted.
pub fn files(project: &Path, selection: Selection) -> io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let checkout = matches!(selection, Selection::Checkout | Selection::RunnerCheckout);
    let mut walker = WalkBuilder::new(project);
    walker
        .hidden(false)
        .git_ignore(checkout)
        .git_exclude(checkout)
        .git_global(false)
        .require_git(false)
        .ignore(false)
        .parents(false)
        .follow_links(false)
        .filter_entry(move |e| {
            let top = e.depth() == 1 && SKIP.iter().any(|s| e.file_name() == *s);
            // A checkout has no other repository's `.git` either (a submodule's is the
            // checkout's own to make).
            let nested = checkout && e.depth() > 1 && e.file_name() == ".git";
            !(top || nested)
        });
    if !checkout {
        walker.add_custom_ignore_filename(".dockerignore");
    }
    let walker = walker.build();
    for entry in walker {
        let entry = entry.map_err(io::Error::other)?;
        if entry.depth() == 0 {
            continue;
        }
        let rel = entry
            .path()
            .strip_prefix(project)
            .map_err(io::Error::other)?
            .to_path_buf();
        out.push(rel);
    }
    out.sort();
    Ok(out)
}

/// Write the snapshot of `project` as a tar at `dest`, every entry under `prefix` (for example
/// `builds/demo`), owned by root, modes and times kept. Returns the number of entries.
pub fn write_tar(
    project: &Path,
    selection: Selection,
    prefix: &str,
    dest: &Path,
) -> io::Result<usize> {
    write_checkout_tar(project, selection, prefix, None, &[], dest)
}

/// [`write_tar`], with the repository `git_dir` (every file of it) as the checkout's `.git`,
/// and `git_files` (path, text: its submodules' `.git` files), before the working tree.
pub fn write_checkout_tar(
    project: &Path,
    selection: Selection,
    prefix: &str,
    git_dir: Option<&Path>,
    git_files: &[(String, String)],
    dest: &Path,
) -> io::Result<usize> {
    let mut files: Vec<(PathBuf, PathBuf)> = Vec::new();
    if let Some(git_dir) = git_dir {
        let mut walker = WalkBuilder::new(git_dir);
        walker.standard_filters(false).follow_links(false);
        for entry in walker.build() {
            let entry = entry.map_err(io::Error::other)?;
            let rel = entry
                .path()
                .strip_prefix(git_dir)
                .map_err(io::Error::other)?;
            files.push((entry.path().to_path_buf(), Path::new(".git").join(rel)));
        }
        files.sort_by(|a, b| a.1.cmp(&b.1));
    }
    for rel in self::files(project, selection)? {
        files.push((project.join(&rel), rel));
    }
    let mut builder = tar::Builder::new(BufWriter::new(File::create(dest)?));
    builder.follow_symlinks(false);
    // The directories leading to the project, so the container gets them with sane modes.
    let mut parts = String::new();
    for part in prefix.split('/').filter(|p| !p.is_empty()) {
        if !parts.is_empty() {
            parts.push('/');
        }
        parts.push_str(part);
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Directory);
        header.set_mode(0o777);
        header.set_size(0);
        header.set_mtime(0);
        builder.append_data(&mut header, format!("{parts}/"), io::empty())?;
    }
    let writable = selection == Selection::RunnerCheckout;
    for (path, text) in git_files {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_mode(if writable { 0o666 } else { 0o644 });
        header.set_size(text.len() as u64);
        header.set_mtime(0);
        builder.append_data(&mut header, Path::new(prefix).join(path), text.as_bytes())?;
    }
    for (path, rel) in &files {
        let meta = std::fs::symlink_metadata(path)?;
        let name = Path::new(prefix).join(rel);
        let mut header = tar::Header::new_gnu();
        header.set_metadata_in_mode(&meta, tar::HeaderMode::Complete);
        header.set_uid(0);
        header.set_gid(0);
        if writable && !meta.file_type().is_symlink() {
            use std::os::unix::fs::PermissionsExt;
            let executable = meta.is_dir() || meta.permissions().mode() & 0o111 != 0;
            header.set_mode(if executable { 0o777 } else { 0o666 });
        }
        if meta.file_type().is_symlink() {
            let target = std::fs::read_link(path)?;
            builder.append_link(&mut header, &name, &target)?;
        } else if meta.is_dir() {
            header.set_size(0);
            builder.append_data(&mut header, &name, io::empty())?;
        } else if meta.is_file() {
            builder.append_data(&mut header, &name, File::open(path)?)?;
        }
        // Sockets, fifos and devices have no place in a checkout.
    }
    builder
        .into_inner()?
        .into_inner()
        .map_err(|e| e.into_error())?;
    Ok(files.len())
}

/// A hash of the selected files' names, executable bits, link targets and contents: the same
/// tree gives the same hash on any machine, whatever the file times.
pub fn content_hash(dir: &Path, selection: Selection) -> io::Result<String> {
    use sha2::{Digest, Sha256};
    use std::os::unix::fs::PermissionsExt;
    let mut hasher = Sha256::new();
    for rel in files(dir, selection)? {
        let path = dir.join(&rel);
        let meta = std::fs::symlink_metadata(&path)?;
        hasher.update(rel.to_string_lossy().as_bytes());
        hasher.update([0]);
        if meta.file_type().is_symlink() {
            hasher.update(b"link:");
            hasher.update(std::fs::read_link(&path)?.to_string_lossy().as_bytes());
        } else if meta.is_file() {
            hasher.update(if meta.permissions().mode() & 0o111 != 0 {
                b"x"
            } else {
                b"f"
            });
            io::copy(&mut File::open(&path)?, &mut hasher)?;
        } else {
            hasher.update(b"d");
        }
        hasher.update([0]);
    }
    Ok(hex::encode(hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn respects_gitignore_and_skips_git_dir() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join(".git/objects")).unwrap();
        std::fs::write(root.join(".git/HEAD"), "ref").unwrap();
        std::fs::create_dir_all(root.join(".berth/runs")).unwrap();
        std::fs::create_dir_all(root.join("src/__pycache__")).unwrap();
        std::fs::write(root.join(".gitignore"), "__pycache__/\n*.log\n").unwrap();
        std::fs::write(root.join("src/a.py"), "x").unwrap();
        std::fs::write(root.join("src/__pycache__/a.pyc"), "x").unwrap();
        std::fs::write(root.join("debug.log"), "x").unwrap();
        std::fs::write(root.join(".env.example"), "x").unwrap();
        let got: Vec<String> = files(root, Selection::Checkout)
            .unwrap()
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        assert_eq!(got, vec![".env.example", ".gitignore", "src", "src/a.py"]);
    }

    #[test]
    fn tar_keeps_modes_links_and_prefix() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("proj");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::write(root.join("run.sh"), "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(root.join("run.sh"), std::fs::Permissions::from_mode(0o755))
            .unwrap();
        std::os::unix::fs::symlink("run.sh", root.join("link")).unwrap();
        let dest = dir.path().join("ws.tar");
        assert_eq!(
            write_tar(&root, Selection::Checkout, "builds/proj", &dest).unwrap(),
            2
        );
        let mut archive = tar::Archive::new(File::open(&dest).unwrap());
        let mut seen = Vec::new();
        for entry in archive.entries().unwrap() {
            let entry = entry.unwrap();
            let path = entry.path().unwrap().display().to_string();
            let header = entry.header();
            if path == "builds/proj/run.sh" {
                assert_eq!(header.mode().unwrap() & 0o777, 0o755);
                assert_eq!(header.uid().unwrap(), 0);
            }
            if path == "builds/proj/link" {
                assert_eq!(header.entry_type(), tar::EntryType::Symlink);
                assert_eq!(
                    entry.link_name().unwrap().unwrap().display().to_string(),
                    "run.sh"
                );
            }
            seen.push(path);
        }
        assert_eq!(
            seen,
            vec![
                "builds/",
                "builds/proj/",
                "builds/proj/link",
                "builds/proj/run.sh"
            ]
        );
    }

    #[test]
    fn content_hash_follows_content_not_times() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(root.join("Dockerfile"), "FROM scratch\n").unwrap();
        std::fs::write(root.join(".dockerignore"), "secret\n").unwrap();
        let h1 = content_hash(root, Selection::BuildContext).unwrap();
        std::fs::write(root.join("secret"), "ignored").unwrap();
        assert_eq!(h1, content_hash(root, Selection::BuildContext).unwrap());
        std::fs::write(root.join("Dockerfile"), "FROM scratch\nENV A=1\n").unwrap();
        assert_ne!(h1, content_hash(root, Selection::BuildContext).unwrap());
    }
}
