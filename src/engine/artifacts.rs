//! Artifacts: after a job, the files its `artifacts: paths` match are streamed out of the
//! container (Docker archive API), filtered, and stored as a gzipped tar with a manifest (path,
//! size, sha256 of each file). Before a later job starts, the archives it should receive are
//! checked entry by entry and streamed into its workspace. Nothing is held in memory whole.

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, BufWriter, Read};
use std::path::{Path, PathBuf};

use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use flate2::Compression;
use futures_util::{StreamExt, TryStreamExt};

use sha2::{Digest, Sha256};
use tokio_util::io::{StreamReader, SyncIoBridge};

use crate::engine::runtime::{ContainerRuntime, RuntimeError};
use crate::pipeline::Artifacts;
use crate::project::paths::{self, Link, Placed, PlacedKind, Walk};
use crate::store::archives::{ArtifactManifest, FileEntry, PARTIAL};

/// A stored archive and its manifest.
#[derive(Debug, Clone)]
pub struct Stored {
    pub archive: PathBuf,
    pub manifest: ArtifactManifest,
}

/// The file names for a job's artifacts inside the run's `artifacts/` directory.
pub fn file_stem(index: usize, job: &str) -> String {
    format!("{index:03}-{}", crate::project::paths::file_slug(job))
}

/// Collect a stopped (or finished) container's artifacts into `<dest>.tar.gz` and
/// `<dest>.json`. Returns what was stored (None when nothing matched) and the warnings
/// for the job's log (patterns that matched nothing).
pub async fn collect(
    engine: &dyn ContainerRuntime,
    container: &str,
    container_dir: &str,
    spec: &Artifacts,
    job: &str,
    dest: &Path,
    tracked: &std::sync::Arc<HashSet<String>>,
) -> Result<(Option<Stored>, Vec<String>), String> {
    let include = paths::matcher(&spec.paths)?;
    let exclude = paths::matcher(&spec.exclude)?;
    let mut bases: Vec<String> = spec.paths.iter().map(|p| paths::base_dir(p)).collect();
    // `untracked` looks at the whole project.
    let untracked = spec.untracked.then(|| tracked.clone());
    if untracked.is_some() {
        bases.push(String::new());
    }
    bases.sort();
    bases.dedup();
    // A base inside another base is fetched with it.
    let all = bases.clone();
    bases.retain(|b| {
        !all.iter()
            .any(|other| other != b && (other.is_empty() || b.starts_with(&format!("{other}/"))))
    });

    let mut readers = Vec::new();
    for base in &bases {
        let path = if base.is_empty() {
            container_dir.to_string()
        } else {
            format!("{container_dir}/{base}")
        };
        // A path that does not exist reads as an empty archive (no HEAD request first). The
        // stream stays lazy: the engine holds the container while an archive is unread, so the
        // next path is asked for only once the one before it has been read.
        let stream = engine
            .download(container, &path)
            .take_while(|item| std::future::ready(!matches!(item, Err(RuntimeError::NotFound(_)))))
            .map_err(|e| io::Error::other(e.to_string()));
        readers.push((
            base.clone(),
            SyncIoBridge::new(StreamReader::new(Box::pin(stream))),
        ));
    }

    if let Some(dir) = dest.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let archive_path = PathBuf::from(format!("{}.tar.gz", dest.display()));
    let manifest_path = PathBuf::from(format!("{}.json", dest.display()));
    // Written under a temporary name and renamed once whole: a run stopped midway (a full disk,
    // a lost engine, SIGKILL) leaves no archive under the name a manifest would claim.
    let partial = Partial(partial_name(&archive_path));
    let patterns = spec.paths.clone();
    let job = job.to_string();
    let archive_for_task = archive_path.clone();
    tokio::task::spawn_blocking(move || -> Result<(Option<Stored>, Vec<String>), String> {
        let file = File::create(&partial.0)
            .map_err(|e| format!("cannot write {}: {e}", partial.0.display()))?;
        let mut builder = tar::Builder::new(GzEncoder::new(BufWriter::new(file), Compression::fast()));
        let mut files = Vec::new();
        let mut seen = HashSet::new();
        let mut matched = vec![false; patterns.len()];
        // What the engine gave, walked as a receiving job will walk it: the job that made a
        // hostile link hears of it here, the jobs that need it refuse it.
        let mut walk = Walk::new();
        let mut refused: Option<String> = None;
        for (base, reader) in readers {
            let mut archive = tar::Archive::new(reader);
            let entries = archive.entries().map_err(|e| format!("reading artifacts: {e}"))?;
            for entry in entries {
                let mut entry = entry.map_err(|e| format!("reading artifacts: {e}"))?;
                let raw = entry.path().map_err(|e| e.to_string())?.to_string_lossy().into_owned();
                let Some(rel) = rebase(&base, &raw) else { continue };
                let hits = include.matches(&rel);
                // The checkout's repository is git's own, not an untracked file.
                let in_git = rel == ".git" || rel.starts_with(".git/");
                let is_untracked = untracked.as_ref().is_some_and(|t| {
                    !entry.header().entry_type().is_dir() && !t.contains(&rel) && !in_git
                });
                if (hits.is_empty() && !is_untracked)
                    || exclude.is_match(&rel)
                    || !seen.insert(rel.clone())
                {
                    continue;
                }
                for h in hits {
                    matched[h / 2] = true;
                }
                let mut header = entry.header().clone();
                let kind = header.entry_type();
                if kind.is_symlink() || kind.is_hard_link() {
                    let target = entry
                        .link_name()
                        .map_err(|e| e.to_string())?
                        .map(|t| t.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    let target = if kind.is_hard_link() {
                        rebase(&base, &target).unwrap_or(target)
                    } else {
                        target
                    };
                    let link = if kind.is_hard_link() {
                        Link::Hard(&target)
                    } else {
                        Link::Symbolic(&target)
                    };
                    if let Err(why) = walk.check_entry(&rel, Some(link)) {
                        refused.get_or_insert(format!("entry `{rel}` {why}"));
                    }
                    builder
                        .append_link(&mut header, &rel, &target)
                        .map_err(|e| format!("writing artifacts: {e}"))?;
                    files.push(FileEntry { path: rel, size: 0, sha256: None, link: Some(target) });
                } else if kind.is_dir() {
                    if let Err(why) = walk.check_entry(&rel, None) {
                        refused.get_or_insert(format!("entry `{rel}` {why}"));
                    }
                    builder
                        .append_data(&mut header, format!("{rel}/"), io::empty())
                        .map_err(|e| format!("writing artifacts: {e}"))?;
                } else {
                    if let Err(why) = walk.check_entry(&rel, None) {
                        refused.get_or_insert(format!("entry `{rel}` {why}"));
                    }
                    let mut hashing = Hashing { inner: &mut entry, hasher: Sha256::new(), size: 0 };
                    builder
                        .append_data(&mut header, &rel, &mut hashing)
                        .map_err(|e| format!("writing artifacts: {e}"))?;
                    let (size, digest) = (hashing.size, hex::encode(hashing.hasher.finalize()));
                    files.push(FileEntry { path: rel, size, sha256: Some(digest), link: None });
                }
            }
        }
        let encoder = builder.into_inner().map_err(|e| format!("writing artifacts: {e}"))?;
        let mut out = encoder.finish().map_err(|e| format!("writing artifacts: {e}"))?;
        io::Write::flush(&mut out).map_err(|e| format!("writing artifacts: {e}"))?;
        let mut warnings: Vec<String> = patterns
            .iter()
            .zip(&matched)
            .filter(|(_, m)| !**m)
            .map(|(p, _)| {
                format!(
                    "WARNING: {p}: no matching files. Ensure that the artifact path is relative to the working directory"
                )
            })
            .collect();
        if let Err((_, name, why)) = walk.finish() {
            refused.get_or_insert(format!("entry `{name}` {why}"));
        }
        if let Some(why) = refused {
            warnings.push(format!(
                "WARNING: artifacts: {why}: the jobs that receive these artifacts will refuse them"
            ));
        }
        if seen.is_empty() {
            // `partial` removes the empty archive.
            return Ok((None, warnings));
        }
        // Whole on disk before it has its final name.
        out.get_ref().sync_all().map_err(|e| format!("writing artifacts: {e}"))?;
        partial.persist(&archive_for_task)?;
        let bytes = files.iter().map(|f| f.size).sum();
        let manifest = ArtifactManifest {
            job,
            name: None,
            archive: archive_for_task
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            files,
            bytes,
        };
        let json = serde_json::to_vec_pretty(&manifest).map_err(|e| e.to_string())?;
        let partial_manifest = Partial(partial_name(&manifest_path));
        std::fs::write(&partial_manifest.0, json)
            .map_err(|e| format!("cannot write {}: {e}", partial_manifest.0.display()))?;
        partial_manifest.persist(&manifest_path)?;
        Ok((Some(Stored { archive: archive_for_task, manifest }), warnings))
    })
    .await
    .map_err(|e| format!("collecting artifacts: {e}"))?
}

fn partial_name(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(PARTIAL);
    PathBuf::from(name)
}

/// A file being written: removed when dropped (an error, a panic, a cancelled task) unless
/// renamed to its final name.
pub(super) struct Partial(pub(super) PathBuf);

impl Partial {
    pub(super) fn persist(self, to: &Path) -> Result<(), String> {
        std::fs::rename(&self.0, to).map_err(|e| format!("cannot write {}: {e}", to.display()))?;
        std::mem::forget(self);
        Ok(())
    }
}

impl Drop for Partial {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The project-relative path of an entry downloaded for `base` (entries start with the base's
/// last component; for the whole project, with the project directory's name).
fn rebase(base: &str, raw: &str) -> Option<String> {
    let raw = raw.trim_start_matches("./").trim_end_matches('/');
    let rel = if base.is_empty() {
        raw.split_once('/').map(|(_, rest)| rest.to_string())?
    } else {
        match base.rsplit_once('/') {
            Some((parent, _)) => format!("{parent}/{raw}"),
            None => raw.to_string(),
        }
    };
    (!rel.is_empty()).then_some(rel)
}

/// A reader that hashes and counts what passes through it (an entry's sha256 and size).
pub(super) struct Hashing<R> {
    pub(super) inner: R,
    pub(super) hasher: Sha256,
    pub(super) size: u64,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }
}

/// Check every entry of a stored archive before it is unpacked: no absolute path, no `..`, no
/// link out of the workspace, alone or chained with the links before it. The error names the
/// entry.
pub fn check_archive(archive: &Path) -> Result<(), String> {
    check_archives(&[archive.to_path_buf()]).map_err(|(_, why)| why)
}

/// Check archives that are unpacked one after another into one workspace, as one walk: a link
/// of one archive may lead an entry of the next out. A refusal says which archive (its index).
pub fn check_archives(archives: &[PathBuf]) -> Result<(), (usize, String)> {
    let mut walk = Walk::new();
    for (i, archive) in archives.iter().enumerate() {
        if i > 0 {
            walk.next_source();
        }
        let file = File::open(archive)
            .map_err(|e| (i, format!("cannot read {}: {e}", archive.display())))?;
        let mut tar = tar::Archive::new(GzDecoder::new(io::BufReader::new(file)));
        let entries = tar
            .entries()
            .map_err(|e| (i, format!("{}: {e}", archive.display())))?;
        for entry in entries {
            let entry = entry.map_err(|e| (i, format!("{}: {e}", archive.display())))?;
            place(&mut walk, &entry).map_err(|why| (i, why))?;
        }
    }
    walk.finish()
        .map_err(|(i, name, why)| (i, format!("entry `{name}` {why}; refused")))
}

/// The next entry of an archive through the walk: where it lands, or why it is refused.
fn place<R: Read>(walk: &mut Walk, entry: &tar::Entry<'_, R>) -> Result<Placed, String> {
    let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
    let kind = entry.header().entry_type();
    let target = entry
        .link_name_bytes()
        .map(|t| String::from_utf8_lossy(&t).into_owned());
    let link = match (&target, kind.is_symlink(), kind.is_hard_link()) {
        (Some(t), true, _) => Some(Link::Symbolic(t.as_str())),
        (Some(t), _, true) => Some(Link::Hard(t.as_str())),
        _ => None,
    };
    walk.check_entry(&name, link)
        .map_err(|why| format!("entry `{name}` {why}; refused"))
}

/// What follows the workspace in a job's single upload at `/`: the artifacts it receives (stored
/// archives, already checked), their entries moved under `prefix` (the project directory without
/// its leading `/`), then its scripts (a tar to unpack at `/`). A complete archive: each upload
/// costs the engine a mount of the container's filesystem, so a job makes one.
pub fn write_upload_tail(
    archives: &[PathBuf],
    prefix: &str,
    scripts: &[u8],
    out: impl io::Write,
) -> Result<(), String> {
    let mut builder = tar::Builder::new(Abortable {
        inner: out,
        aborted: false,
    });
    let written = (|| {
        // Walked again as they stream: an archive changed since it was checked is still refused.
        let mut walk = Walk::new();
        for (i, archive) in archives.iter().enumerate() {
            if i > 0 {
                walk.next_source();
            }
            let file = File::open(archive)
                .map_err(|e| format!("cannot read {}: {e}", archive.display()))?;
            let mut tar = tar::Archive::new(GzDecoder::new(io::BufReader::new(file)));
            append_entries(&mut builder, &mut tar, prefix, Some(&mut walk))
                .map_err(|e| format!("{}: {e}", archive.display()))?;
        }
        walk.finish().map_err(|(i, name, why)| {
            format!("{}: entry `{name}` {why}; refused", archives[i].display())
        })?;
        append_entries(&mut builder, &mut tar::Archive::new(scripts), "", None)
            .map_err(|e| format!("scripts: {e}"))
    })();
    if let Err(why) = written {
        // Dropping the builder would close the archive properly: a short archive the engine
        // could take as whole. Nothing more reaches the upload.
        builder.get_mut().aborted = true;
        return Err(why);
    }
    let mut out = builder.into_inner().map_err(|e| e.to_string())?;
    io::Write::flush(&mut out.inner).map_err(|e| e.to_string())
}

/// A writer that refuses every write once aborted.
struct Abortable<W> {
    inner: W,
    aborted: bool,
}

impl<W: io::Write> io::Write for Abortable<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.aborted {
            return Err(io::Error::other("aborted"));
        }
        self.inner.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.aborted {
            return Err(io::Error::other("aborted"));
        }
        self.inner.flush()
    }
}

/// Copy every entry of `tar` into `builder`, its path (and a hard link's target, which names
/// another entry) under `prefix`; each checked by `walk` first when given.
fn append_entries<W: io::Write, R: Read>(
    builder: &mut tar::Builder<W>,
    tar: &mut tar::Archive<R>,
    prefix: &str,
    mut walk: Option<&mut Walk>,
) -> io::Result<()> {
    // An empty prefix joins to the path itself.
    let under = |p: &Path| Path::new(prefix).join(p);
    for entry in tar.entries()? {
        let mut entry = entry?;
        if let Some(walk) = walk.as_deref_mut() {
            place(walk, &entry).map_err(io::Error::other)?;
        }
        let name = under(&entry.path()?);
        let mut header = entry.header().clone();
        let kind = header.entry_type();
        if kind.is_symlink() || kind.is_hard_link() {
            let target = entry.link_name()?.unwrap_or_default().into_owned();
            let target = if kind.is_hard_link() {
                under(&target)
            } else {
                target
            };
            builder.append_link(&mut header, &name, &target)?;
        } else {
            builder.append_data(&mut header, &name, &mut entry)?;
        }
    }
    Ok(())
}

/// Unpack a stored archive on the host (for `berth artifacts --extract`), with the same checks.
/// Each entry is written where the walk placed it, so no link of the archive is followed, and
/// a link already in `dest` (below it) is never written through: every directory on the way
/// is checked to be a real one, and files are opened without following a link.
pub fn extract(archive: &Path, dest: &Path) -> Result<usize, String> {
    check_archive(archive)?;
    let file =
        File::open(archive).map_err(|e| format!("cannot read {}: {e}", archive.display()))?;
    let mut tar = tar::Archive::new(GzDecoder::new(io::BufReader::new(file)));
    std::fs::create_dir_all(dest).map_err(|e| format!("cannot create {}: {e}", dest.display()))?;
    let mut walk = Walk::new();
    let mut count = 0;
    for entry in tar.entries().map_err(|e| e.to_string())? {
        let mut entry = entry.map_err(|e| e.to_string())?;
        let placed = place(&mut walk, &entry)?;
        if write_placed(&mut entry, &placed, dest)? {
            count += 1;
        }
    }
    Ok(count)
}

/// Write one entry at its placed path under `dest`. False for kinds a workspace has no use for
/// (devices, fifos).
fn write_placed<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    placed: &Placed,
    dest: &Path,
) -> Result<bool, String> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let kind = entry.header().entry_type();
    let path = real_dirs_to(dest, &placed.path)?;
    let shown = path.display();
    let existing = std::fs::symlink_metadata(&path).ok();
    let replace = |what: &Option<std::fs::Metadata>| match what {
        Some(m) if !m.is_dir() => {
            std::fs::remove_file(&path).map_err(|e| format!("cannot replace {shown}: {e}"))
        }
        _ => Ok(()),
    };
    match &placed.kind {
        PlacedKind::Symbolic(target) => {
            replace(&existing)?;
            std::os::unix::fs::symlink(target, &path)
                .map_err(|e| format!("cannot create {shown}: {e}"))?;
        }
        PlacedKind::Hard(to) => {
            let source = real_dirs_to(dest, to)?;
            match std::fs::symlink_metadata(&source) {
                Ok(m) if m.is_file() => {}
                _ => return Err(format!("entry `{}`: `{to}` is not a file", placed.path)),
            }
            replace(&existing)?;
            std::fs::hard_link(&source, &path)
                .map_err(|e| format!("cannot create {shown}: {e}"))?;
        }
        PlacedKind::Plain if kind.is_dir() => {
            if !existing.as_ref().is_some_and(|m| m.is_dir()) {
                replace(&existing)?;
                std::fs::create_dir(&path).map_err(|e| format!("cannot create {shown}: {e}"))?;
            }
        }
        PlacedKind::Plain if kind.is_file() || kind == tar::EntryType::Continuous => {
            replace(&existing)?;
            let mode = entry.header().mode().unwrap_or(0o644) & 0o777;
            // O_NOFOLLOW: a link put here since the check above is not followed either.
            let mut out = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .custom_flags(libc::O_NOFOLLOW)
                .mode(mode)
                .open(&path)
                .map_err(|e| format!("cannot write {shown}: {e}"))?;
            io::copy(entry, &mut out).map_err(|e| format!("cannot write {shown}: {e}"))?;
            out.set_permissions(std::fs::Permissions::from_mode(mode))
                .map_err(|e| format!("{shown}: {e}"))?;
            if let Ok(mtime) = entry.header().mtime() {
                let when = std::time::UNIX_EPOCH + std::time::Duration::from_secs(mtime);
                let _ = out.set_modified(when);
            }
        }
        PlacedKind::Plain => return Ok(false),
    }
    Ok(true)
}

/// `dest/rel`, after making sure that every directory between them is a directory and not a
/// link (creating the missing ones): writing there follows no link.
fn real_dirs_to(dest: &Path, rel: &str) -> Result<PathBuf, String> {
    let mut at = dest.to_path_buf();
    let parts: Vec<&str> = rel.split('/').filter(|p| !p.is_empty()).collect();
    let Some((last, dirs)) = parts.split_last() else {
        return Ok(at);
    };
    for dir in dirs {
        at.push(dir);
        match std::fs::symlink_metadata(&at) {
            Ok(m) if m.is_dir() => {}
            Ok(m) if m.file_type().is_symlink() => {
                return Err(format!(
                    "{} is a link already in the destination; refused to write `{rel}` through it",
                    at.display()
                ))
            }
            Ok(_) => return Err(format!("{} is not a directory", at.display())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => std::fs::create_dir(&at)
                .map_err(|e| format!("cannot create {}: {e}", at.display()))?,
            Err(e) => return Err(format!("{}: {e}", at.display())),
        }
    }
    at.push(last);
    Ok(at)
}

/// GitLab's limit on a dotenv report.
const DOTENV_LIMIT: usize = 5 * 1024;

/// Read an `artifacts: reports: dotenv` file out of a stopped container: its variables, in order.
pub async fn read_dotenv(
    engine: &dyn ContainerRuntime,
    container: &str,
    container_dir: &str,
    path: &str,
) -> Result<Vec<(String, String)>, String> {
    if paths::check_pattern(path).is_err() {
        return Err(format!("dotenv report `{path}` is outside the project"));
    }
    let full = format!("{container_dir}/{}", path.trim_start_matches("./"));
    let text = read_small_file(engine, container, &full, DOTENV_LIMIT)
        .await
        .map_err(|e| format!("dotenv report `{path}`: {e}"))?;
    parse_dotenv(&text).map_err(|e| format!("dotenv report `{path}`: {e}"))
}

/// A small text file out of a container (through the archive API), refused past `limit`
/// bytes; an error when it is not there.
pub async fn read_small_file(
    engine: &dyn ContainerRuntime,
    container: &str,
    path: &str,
    limit: usize,
) -> Result<String, String> {
    let mut tar_bytes = Vec::new();
    let mut stream = Box::pin(engine.download(container, path));
    while let Some(chunk) = stream.try_next().await.map_err(|e| e.to_string())? {
        tar_bytes.extend_from_slice(&chunk);
        if tar_bytes.len() > limit + 64 * 1024 {
            return Err(format!("larger than {limit} bytes"));
        }
    }
    let mut archive = tar::Archive::new(&tar_bytes[..]);
    let mut text = String::new();
    if let Some(entry) = archive.entries().map_err(|e| e.to_string())?.next() {
        let mut entry = entry.map_err(|e| e.to_string())?;
        if entry.size() as usize > limit {
            return Err(format!("larger than {limit} bytes"));
        }
        entry.read_to_string(&mut text).map_err(|e| e.to_string())?;
    }
    Ok(text)
}

/// `KEY=VALUE` lines as GitLab reads them: blank lines skipped, names of letters, digits and
/// `_`, values taken as written (no quotes removed, no expansion).
pub fn parse_dotenv(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(format!("line {}: `{line}` is not KEY=VALUE", n + 1));
        };
        let key = key.trim();
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("line {}: `{key}` is not a variable name", n + 1));
        }
        out.push((key.to_string(), value.trim().to_string()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_upload_tail_moves_artifacts_under_the_project_and_ends_with_the_scripts() {
        let dir = tempfile::tempdir().unwrap();
        let stored = dir.path().join("a.tar.gz");
        {
            let gz = GzEncoder::new(File::create(&stored).unwrap(), Compression::fast());
            let mut b = tar::Builder::new(gz);
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(tar::EntryType::Directory);
            h.set_size(0);
            h.set_mode(0o755);
            b.append_data(&mut h, "out/", io::empty()).unwrap();
            let mut h = tar::Header::new_gnu();
            h.set_size(2);
            h.set_mode(0o640);
            b.append_data(&mut h, "out/x", &b"x\n"[..]).unwrap();
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(tar::EntryType::Symlink);
            h.set_size(0);
            h.set_mode(0o644);
            b.append_link(&mut h, "out/s", "x").unwrap();
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(tar::EntryType::Link);
            h.set_size(0);
            h.set_mode(0o644);
            b.append_link(&mut h, "out/h", "out/x").unwrap();
            b.into_inner().unwrap().finish().unwrap();
        }
        let mut scripts = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(4);
        h.set_mode(0o755);
        scripts
            .append_data(&mut h, "berth/step.sh", &b"true"[..])
            .unwrap();
        let scripts = scripts.into_inner().unwrap();

        let mut out = Vec::new();
        write_upload_tail(&[stored], "builds/p", &scripts, &mut out).unwrap();
        let mut seen = Vec::new();
        for entry in tar::Archive::new(&out[..]).entries().unwrap() {
            let mut entry = entry.unwrap();
            let path = entry.path().unwrap().display().to_string();
            let link = entry.link_name().unwrap().map(|l| l.display().to_string());
            let mode = entry.header().mode().unwrap();
            let mut text = String::new();
            entry.read_to_string(&mut text).unwrap();
            seen.push((path, link, mode, text));
        }
        let row = |p: &str, l: Option<&str>, m: u32, t: &str| {
            (p.to_string(), l.map(str::to_string), m, t.to_string())
        };
        assert_eq!(
            seen,
            vec![
                row("builds/p/out/", None, 0o755, ""),
                row("builds/p/out/x", None, 0o640, "x\n"),
                // A symbolic link's target is the job's business; a hard link names an entry.
                row("builds/p/out/s", Some("x"), 0o644, ""),
                row("builds/p/out/h", Some("builds/p/out/x"), 0o644, ""),
                row("berth/step.sh", None, 0o755, "true"),
            ]
        );
    }

    #[test]
    fn a_broken_upload_tail_is_not_closed_as_a_whole_archive() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good.tar.gz");
        {
            let gz = GzEncoder::new(File::create(&good).unwrap(), Compression::fast());
            let mut b = tar::Builder::new(gz);
            let mut h = tar::Header::new_gnu();
            h.set_size(2);
            h.set_mode(0o644);
            b.append_data(&mut h, "x", &b"x\n"[..]).unwrap();
            b.into_inner().unwrap().finish().unwrap();
        }
        let broken = dir.path().join("broken.tar.gz");
        std::fs::write(&broken, b"not a gzip stream").unwrap();
        let mut out = Vec::new();
        let err =
            write_upload_tail(&[good, broken.clone()], "builds/p", &[], &mut out).unwrap_err();
        assert!(err.contains(&broken.display().to_string()), "{err}");
        // The good archive's entry went out; tar's closing zero blocks did not.
        assert_eq!(out.len(), 1024, "a header and a data block");
        assert!(out[512..].iter().take(2).eq(b"x\n".iter()));
    }

    #[test]
    fn rebasing_downloaded_entries() {
        assert_eq!(rebase("out", "out/a.txt").as_deref(), Some("out/a.txt"));
        assert_eq!(rebase("out/sub", "sub/a").as_deref(), Some("out/sub/a"));
        assert_eq!(rebase("out/a.txt", "a.txt").as_deref(), Some("out/a.txt"));
        assert_eq!(rebase("", "proj/x.log").as_deref(), Some("x.log"));
        assert_eq!(rebase("", "proj/").as_deref(), None);
    }

    fn archive_with(entries: &[(&str, Option<&str>)]) -> tempfile::NamedTempFile {
        let file = tempfile::NamedTempFile::new().unwrap();
        let mut b = tar::Builder::new(GzEncoder::new(
            File::create(file.path()).unwrap(),
            Compression::fast(),
        ));
        for (name, link) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_mode(0o644);
            match link {
                Some(target) => {
                    h.set_entry_type(tar::EntryType::Symlink);
                    h.set_size(0);
                    b.append_link(&mut h, name, target).unwrap();
                }
                None => {
                    h.set_size(2);
                    // Write the raw name so that hostile names survive the builder's own checks.
                    let bytes = name.as_bytes();
                    h.as_old_mut().name[..bytes.len()].copy_from_slice(bytes);
                    h.set_cksum();
                    b.append(&h, &b"ok"[..]).unwrap();
                }
            }
        }
        b.into_inner().unwrap().finish().unwrap();
        file
    }

    #[test]
    fn hostile_archives_are_refused_naming_the_entry() {
        let good = archive_with(&[("out/a.txt", None), ("out/link", Some("a.txt"))]);
        assert!(check_archive(good.path()).is_ok());
        let dotdot = archive_with(&[("out/../../../etc/cron", None)]);
        let err = check_archive(dotdot.path()).unwrap_err();
        assert!(err.contains("entry `out/../../../etc/cron`"), "{err}");
        let absolute = archive_with(&[("/etc/passwd", None)]);
        assert!(check_archive(absolute.path())
            .unwrap_err()
            .contains("absolute"));
        let link = archive_with(&[("out/evil", Some("/etc/passwd"))]);
        assert!(check_archive(link.path())
            .unwrap_err()
            .contains("entry `out/evil` is a link"));
    }

    #[test]
    fn dotenv_lines() {
        let vars =
            parse_dotenv("VERSION=1.2.3\n\n  BUILD_URL = https://x?a=b \nQUOTED=\"q\"\n").unwrap();
        assert_eq!(
            vars,
            vec![
                ("VERSION".to_string(), "1.2.3".to_string()),
                ("BUILD_URL".to_string(), "https://x?a=b".to_string()),
                ("QUOTED".to_string(), "\"q\"".to_string()),
            ]
        );
        assert!(parse_dotenv("no equals sign").is_err());
        assert!(parse_dotenv("BAD-NAME=1").is_err());
    }

    #[test]
    fn archives_unpacked_together_are_walked_together() {
        let links = archive_with(&[("dist/a", Some("b/../..")), ("dist/ok", Some("a"))]);
        let later = archive_with(&[("dist/b", Some(".."))]);
        assert!(check_archive(links.path()).is_ok());
        assert!(check_archive(later.path()).is_ok());
        let both = [links.path().to_path_buf(), later.path().to_path_buf()];
        let (i, why) = check_archives(&both).unwrap_err();
        assert_eq!(i, 0, "the link that leaves is in the first archive");
        assert_eq!(
            why,
            "entry `dist/a` is a link to `b/../..`, outside the workspace (through the link \
             `dist/b`); refused"
        );
        // The upload walks them again as it streams them.
        let err = write_upload_tail(&both, "builds/p", &[], io::sink()).unwrap_err();
        assert!(
            err.contains("entry `dist/a` is a link to `b/../..`"),
            "{err}"
        );
    }

    #[test]
    fn extract_writes_through_no_link() {
        // Through the archive's own link: the entry lands where the link leads, as a file.
        let through = archive_with(&[("dist/up", Some("..")), ("dist/up/x", None)]);
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(extract(through.path(), dir.path()).unwrap(), 2);
        assert_eq!(std::fs::read_to_string(dir.path().join("x")).unwrap(), "ok");
        assert!(std::fs::symlink_metadata(dir.path().join("dist/up"))
            .unwrap()
            .file_type()
            .is_symlink());
        // A link already in the destination is not written through.
        let outside = tempfile::tempdir().unwrap();
        let dest = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), dest.path().join("out")).unwrap();
        let plain = archive_with(&[("out/a.txt", None)]);
        let err = extract(plain.path(), dest.path()).unwrap_err();
        assert!(
            err.contains("is a link already in the destination; refused to write `out/a.txt`"),
            "{err}"
        );
        assert!(!outside.path().join("a.txt").exists());
        // Nor a link at the file's own name: it is replaced, its target untouched.
        std::fs::write(outside.path().join("t"), "theirs").unwrap();
        std::os::unix::fs::symlink(outside.path().join("t"), dest.path().join("a.txt")).unwrap();
        let top = archive_with(&[("a.txt", None)]);
        extract(top.path(), dest.path()).unwrap();
        assert_eq!(
            std::fs::read_to_string(outside.path().join("t")).unwrap(),
            "theirs"
        );
        assert_eq!(
            std::fs::read_to_string(dest.path().join("a.txt")).unwrap(),
            "ok"
        );
        // A refused archive writes nothing at all.
        let chain = archive_with(&[
            ("d/up", Some("..")),
            ("d/up2", Some("up/..")),
            ("d/f", None),
        ]);
        let empty = tempfile::tempdir().unwrap();
        assert!(extract(chain.path(), empty.path())
            .unwrap_err()
            .contains("entry `d/up2`"));
        assert_eq!(std::fs::read_dir(empty.path()).unwrap().count(), 0);
    }

    #[test]
    fn partial_files_are_removed_unless_kept_and_only_they() {
        let run = tempfile::tempdir().unwrap();
        let dir = run.path().join("artifacts");
        std::fs::create_dir_all(&dir).unwrap();
        let final_name = dir.join("000-a.tar.gz");
        {
            let dropped = Partial(partial_name(&final_name));
            std::fs::write(&dropped.0, "half").unwrap();
        }
        assert_eq!(
            std::fs::read_dir(&dir).unwrap().count(),
            0,
            "an error drops it"
        );
        let kept = Partial(partial_name(&final_name));
        std::fs::write(&kept.0, "whole").unwrap();
        kept.persist(&final_name).unwrap();
        assert_eq!(std::fs::read_to_string(&final_name).unwrap(), "whole");
        // What a killed run leaves: removed; berth's finished files and anything else stay.
        std::fs::write(dir.join("001-b.tar.gz.partial"), "half").unwrap();
        std::fs::write(dir.join("001-b.json.partial"), "{").unwrap();
        std::fs::create_dir(dir.join("odd.partial")).unwrap();
        std::os::unix::fs::symlink(&final_name, dir.join("l.partial")).unwrap();
        assert_eq!(
            crate::store::archives::remove_partial(run.path()).unwrap(),
            2
        );
        let mut left: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["000-a.tar.gz", "l.partial", "odd.partial"]);
        assert_eq!(
            crate::store::archives::remove_partial(&run.path().join("none")).unwrap(),
            0
        );
    }

    #[test]
    fn extract_unpacks_checked_archives() {
        let good = archive_with(&[("out/a.txt", None)]);
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(extract(good.path(), dir.path()).unwrap(), 1);
        assert_eq!(
            std::fs::read_to_string(dir.path().join("out/a.txt")).unwrap(),
            "ok"
        );
    }
}
