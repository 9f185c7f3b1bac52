//! `berth cache export` and `import`: move caches between machines (a laptop and CI) as one
//! gzipped tar. It holds `berth-caches.json` (each cache's key, path, labels and a digest of its
//! content) then one tar per cache, as the engine's archive API gives a volume's files. Volumes
//! are read and written through a helper container that is created, never started. An import
//! never replaces a cache whose content differs without `--force`.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::caches::{cache_labels, volume_name};
use crate::engine::runtime::{labels, ContainerRuntime, ContainerSpec, ObjectInfo};

const MANIFEST: &str = "berth-caches.json";
/// Where the helper container mounts the volume; the archive's entries start with this name.
const DATA_DIR: &str = "/berth-cache-data";

#[derive(Debug, Serialize, Deserialize)]
struct Manifest {
    version: u32,
    caches: Vec<Entry>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Entry {
    key: String,
    path: String,
    /// The volume's labels but the project's own (a project is a path on one machine).
    labels: BTreeMap<String, String>,
    archive: String,
    /// sha256 over every entry's path, kind, size and content: equal digests, equal caches.
    digest: String,
}

/// What an import did with each cache.
#[derive(Debug, PartialEq, Eq)]
pub enum Imported {
    Created { key: String, volume: String },
    Identical { key: String },
    Replaced { key: String, volume: String },
}

/// A project's cache volumes (not the throwaway ones of `--no-cache`).
pub async fn project_caches(
    engine: &dyn ContainerRuntime,
    project: &Path,
) -> Result<Vec<ObjectInfo>, String> {
    let filter = format!("{}={}", labels::PROJECT, project.display());
    Ok(engine
        .volumes_with_label(&filter)
        .await
        .map_err(|e| e.to_string())?
        .into_iter()
        .filter(|v| {
            v.labels.contains_key(cache_labels::CACHE) && !v.labels.contains_key(labels::TEMPORARY)
        })
        .collect())
}

/// Write the caches with these keys into `out` (a .tar.gz); returns the volumes written.
pub async fn export(
    engine: &dyn ContainerRuntime,
    project: &Path,
    keys: &[String],
    out: &Path,
) -> Result<Vec<String>, String> {
    let volumes = project_caches(engine, project).await?;
    let key_of = |v: &ObjectInfo| v.labels.get(cache_labels::KEY).cloned().unwrap_or_default();
    for k in keys {
        if !volumes.iter().any(|v| &key_of(v) == k) {
            return Err(format!("no cache with key `{k}` in this project"));
        }
    }
    let chosen: Vec<&ObjectInfo> = volumes
        .iter()
        .filter(|v| keys.contains(&key_of(v)))
        .collect();
    let staging = tempfile::tempdir().map_err(|e| e.to_string())?;
    let mut manifest = Manifest {
        version: 1,
        caches: Vec::new(),
    };
    let mut parts = Vec::new();
    for (i, v) in chosen.iter().enumerate() {
        let part = staging.path().join(format!("{i}.tar"));
        read_volume(engine, project, v, &part).await?;
        let digest = digest_of(&part)?;
        let mut kept: BTreeMap<String, String> = v.labels.clone().into_iter().collect();
        kept.remove(labels::PROJECT);
        manifest.caches.push(Entry {
            key: key_of(v),
            path: v
                .labels
                .get(cache_labels::PATH)
                .cloned()
                .unwrap_or_default(),
            labels: kept,
            archive: format!("caches/{i}.tar"),
            digest,
        });
        parts.push(part);
    }
    let out = out.to_path_buf();
    let names = chosen.iter().map(|v| v.name.clone()).collect();
    tokio::task::spawn_blocking(move || write_bundle(&out, &manifest, &parts))
        .await
        .map_err(|e| e.to_string())??;
    Ok(names)
}

fn write_bundle(out: &Path, manifest: &Manifest, parts: &[PathBuf]) -> Result<(), String> {
    let file = std::fs::File::create(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let gz = flate2::write::GzEncoder::new(file, flate2::Compression::fast());
    let mut tar = tar::Builder::new(gz);
    let json = serde_json::to_vec_pretty(manifest).map_err(|e| e.to_string())?;
    let mut header = tar::Header::new_gnu();
    header.set_size(json.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    tar.append_data(&mut header, MANIFEST, json.as_slice())
        .map_err(|e| e.to_string())?;
    for (entry, part) in manifest.caches.iter().zip(parts) {
        tar.append_path_with_name(part, &entry.archive)
            .map_err(|e| e.to_string())?;
    }
    let gz = tar.into_inner().map_err(|e| e.to_string())?;
    gz.finish()
        .and_then(|mut f| f.flush())
        .map_err(|e| format!("{}: {e}", out.display()))
}

/// Import every cache of a bundle into this project's volumes (named as a job here would name
/// them). A cache already here with other content is refused unless `force`.
pub async fn import(
    engine: &dyn ContainerRuntime,
    project: &Path,
    bundle: &Path,
    force: bool,
) -> Result<Vec<Imported>, String> {
    let staging = tempfile::tempdir().map_err(|e| e.to_string())?;
    let (dir, path) = (staging.path().to_path_buf(), bundle.to_path_buf());
    let manifest = tokio::task::spawn_blocking(move || unpack_bundle(&path, &dir))
        .await
        .map_err(|e| e.to_string())??;
    let existing = project_caches(engine, project).await?;
    // Check every cache before touching any: a refused import changes nothing.
    let mut plan = Vec::new();
    for entry in &manifest.caches {
        let part = staging.path().join(&entry.archive);
        if digest_of(&part)? != entry.digest {
            return Err(format!(
                "cache `{}`: its archive does not match its digest (a damaged file?)",
                entry.key
            ));
        }
        let volume = volume_name(project, &entry.key, &entry.path);
        let present = match existing.iter().find(|v| v.name == volume) {
            Some(v) => {
                let here = staging.path().join("present.tar");
                read_volume(engine, project, v, &here).await?;
                let empty = tar_is_empty(&here)?;
                (!empty).then(|| digest_of(&here)).transpose()?
            }
            None => None,
        };
        match present {
            Some(d) if d == entry.digest => plan.push((entry, volume, part, Some(true))),
            Some(_) if !force => {
                return Err(format!(
                    "cache `{}` ({}) is already here with other content; nothing was imported \
                     (--force replaces it)",
                    entry.key, entry.path
                ))
            }
            Some(_) => plan.push((entry, volume, part, Some(false))),
            None => plan.push((entry, volume, part, None)),
        }
    }
    let mut done = Vec::new();
    for (entry, volume, part, present) in plan {
        if present == Some(true) {
            done.push(Imported::Identical {
                key: entry.key.clone(),
            });
            continue;
        }
        if present == Some(false) {
            engine
                .remove_volume(&volume)
                .await
                .map_err(|e| format!("cannot replace {volume}: {e} (is a job using it?)"))?;
        }
        let mut volume_labels: HashMap<String, String> = entry.labels.clone().into_iter().collect();
        volume_labels.insert(labels::BERTH.into(), "1".into());
        volume_labels.insert(labels::PROJECT.into(), project.display().to_string());
        volume_labels.insert(cache_labels::CACHE.into(), "1".into());
        volume_labels.insert(cache_labels::KEY.into(), entry.key.clone());
        volume_labels.insert(cache_labels::PATH.into(), entry.path.clone());
        engine
            .create_volume(&volume, &volume_labels)
            .await
            .map_err(|e| format!("{volume}: {e}"))?;
        write_volume(engine, project, &volume, &volume_labels, &part).await?;
        done.push(if present.is_some() {
            Imported::Replaced {
                key: entry.key.clone(),
                volume,
            }
        } else {
            Imported::Created {
                key: entry.key.clone(),
                volume,
            }
        });
    }
    Ok(done)
}

fn unpack_bundle(bundle: &Path, dir: &Path) -> Result<Manifest, String> {
    let file = std::fs::File::open(bundle).map_err(|e| format!("{}: {e}", bundle.display()))?;
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let mut manifest: Option<Manifest> = None;
    for entry in tar.entries().map_err(|e| e.to_string())? {
        let mut entry = entry.map_err(|e| e.to_string())?;
        let name = entry
            .path()
            .map_err(|e| e.to_string())?
            .to_string_lossy()
            .into_owned();
        if name == MANIFEST {
            let mut text = Vec::new();
            entry.read_to_end(&mut text).map_err(|e| e.to_string())?;
            manifest = Some(
                serde_json::from_slice(&text)
                    .map_err(|e| format!("{}: {MANIFEST}: {e}", bundle.display()))?,
            );
            continue;
        }
        let Some(m) = &manifest else {
            return Err(format!("{}: not a berth cache export", bundle.display()));
        };
        // Only the archives the manifest names, under their own names: nothing else is written.
        if !m.caches.iter().any(|c| c.archive == name) {
            return Err(format!("{}: unexpected entry `{name}`", bundle.display()));
        }
        let target = dir.join(&name);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
        }
        let mut out = std::fs::File::create(&target).map_err(|e| e.to_string())?;
        std::io::copy(&mut entry, &mut out).map_err(|e| e.to_string())?;
    }
    let manifest =
        manifest.ok_or_else(|| format!("{}: not a berth cache export", bundle.display()))?;
    for c in &manifest.caches {
        if !dir.join(&c.archive).is_file() {
            return Err(format!("{}: `{}` is missing", bundle.display(), c.archive));
        }
    }
    Ok(manifest)
}

/// A container that only gives access to one volume: created, never started, then removed.
async fn helper(
    engine: &dyn ContainerRuntime,
    project: &Path,
    volume: &str,
    volume_labels: &HashMap<String, String>,
) -> Result<String, String> {
    // The image the cache was filled in if it is here, else any: the container never runs.
    let recorded = match volume_labels.get(super::python::IMAGE_LABEL) {
        Some(id) if engine.image_exists(id).await.unwrap_or(false) => Some(id.clone()),
        _ => None,
    };
    let image = match recorded {
        Some(id) => id,
        None => engine
            .any_local_image()
            .await
            .map_err(|e| e.to_string())?
            .ok_or("the engine has no image at all to attach the volume to")?,
    };
    let spec = ContainerSpec {
        name: format!(
            "berth-cache-io-{}-{}",
            std::process::id(),
            &volume[volume.len().saturating_sub(12)..]
        ),
        image,
        entrypoint: Some(vec!["/berth-never-started".into()]),
        cmd: Vec::new(),
        env: Vec::new(),
        working_dir: String::new(),
        labels: HashMap::from([
            (labels::BERTH.to_string(), "1".to_string()),
            (labels::PROJECT.to_string(), project.display().to_string()),
        ])
        .into_iter()
        .chain(super::owner::Owner::me().labels())
        .collect(),
        binds: vec![format!("{volume}:{DATA_DIR}")],
        network: None,
        aliases: Vec::new(),
        interactive: false,
        stdin: false,
        hostname: None,
        options: Default::default(),
    };
    engine
        .create_container(&spec)
        .await
        .map_err(|e| format!("helper container for {volume}: {e}"))
}

async fn read_volume(
    engine: &dyn ContainerRuntime,
    project: &Path,
    volume: &ObjectInfo,
    out: &Path,
) -> Result<(), String> {
    let id = helper(engine, project, &volume.name, &volume.labels).await?;
    let result = async {
        let mut file = tokio::fs::File::create(out)
            .await
            .map_err(|e| format!("{}: {e}", out.display()))?;
        let mut stream = Box::pin(engine.download(&id, DATA_DIR));
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| format!("{}: {e}", volume.name))?;
            tokio::io::AsyncWriteExt::write_all(&mut file, &chunk)
                .await
                .map_err(|e| e.to_string())?;
        }
        tokio::io::AsyncWriteExt::flush(&mut file)
            .await
            .map_err(|e| e.to_string())
    }
    .await;
    let _ = engine.remove_container(&id).await;
    result
}

async fn write_volume(
    engine: &dyn ContainerRuntime,
    project: &Path,
    volume: &str,
    volume_labels: &HashMap<String, String>,
    part: &Path,
) -> Result<(), String> {
    let id = helper(engine, project, volume, volume_labels).await?;
    let result = engine
        .upload_tar_file(&id, "/", part)
        .await
        .map_err(|e| format!("{volume}: {e}"));
    let _ = engine.remove_container(&id).await;
    result
}

/// The entries of a volume's archive, without the top directory.
fn entries(part: &Path) -> Result<Vec<(String, String)>, String> {
    let file = std::fs::File::open(part).map_err(|e| format!("{}: {e}", part.display()))?;
    let mut tar = tar::Archive::new(file);
    let mut list = Vec::new();
    for entry in tar.entries().map_err(|e| e.to_string())? {
        let mut entry = entry.map_err(|e| e.to_string())?;
        let path = entry
            .path()
            .map_err(|e| e.to_string())?
            .to_string_lossy()
            .into_owned();
        let Some((_, rel)) = path.trim_end_matches('/').split_once('/') else {
            continue;
        };
        let kind = entry.header().entry_type();
        let what = if kind.is_file() {
            let mut h = Sha256::new();
            std::io::copy(&mut entry, &mut h).map_err(|e| e.to_string())?;
            format!("file {}", hex::encode(h.finalize()))
        } else if kind.is_symlink() || kind.is_hard_link() {
            let target = entry
                .link_name()
                .map_err(|e| e.to_string())?
                .map(|l| l.to_string_lossy().into_owned())
                .unwrap_or_default();
            format!("link {target}")
        } else {
            "dir".to_string()
        };
        list.push((rel.to_string(), what));
    }
    list.sort();
    Ok(list)
}

fn digest_of(part: &Path) -> Result<String, String> {
    let mut h = Sha256::new();
    for (path, what) in entries(part)? {
        h.update(path.as_bytes());
        h.update([0]);
        h.update(what.as_bytes());
        h.update([0]);
    }
    Ok(hex::encode(h.finalize()))
}

fn tar_is_empty(part: &Path) -> Result<bool, String> {
    Ok(entries(part)?.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_of(files: &[(&str, &str)]) -> tempfile::NamedTempFile {
        let out = tempfile::NamedTempFile::new().unwrap();
        let mut tar = tar::Builder::new(std::fs::File::create(out.path()).unwrap());
        for (name, text) in files {
            let mut header = tar::Header::new_gnu();
            header.set_size(text.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            tar.append_data(
                &mut header,
                format!("berth-cache-data/{name}"),
                text.as_bytes(),
            )
            .unwrap();
        }
        tar.finish().unwrap();
        out
    }

    #[test]
    fn digests_follow_content_not_order() {
        let a = tar_of(&[("x", "1"), ("y/z", "2")]);
        let b = tar_of(&[("y/z", "2"), ("x", "1")]);
        let c = tar_of(&[("x", "1"), ("y/z", "3")]);
        assert_eq!(digest_of(a.path()).unwrap(), digest_of(b.path()).unwrap());
        assert_ne!(digest_of(a.path()).unwrap(), digest_of(c.path()).unwrap());
        assert!(tar_is_empty(tar_of(&[]).path()).unwrap());
    }

    #[test]
    fn a_bundle_round_trips_and_refuses_strangers() {
        let dir = tempfile::tempdir().unwrap();
        let part = tar_of(&[("wheels/a.whl", "wheel")]);
        let manifest = Manifest {
            version: 1,
            caches: vec![Entry {
                key: "python-pip-0123".into(),
                path: "/var/cache/berth/pip".into(),
                labels: BTreeMap::new(),
                archive: "caches/0.tar".into(),
                digest: digest_of(part.path()).unwrap(),
            }],
        };
        let bundle = dir.path().join("c.tar.gz");
        write_bundle(&bundle, &manifest, &[part.path().to_path_buf()]).unwrap();
        let out = dir.path().join("out");
        let read = unpack_bundle(&bundle, &out).unwrap();
        assert_eq!(read.caches[0].key, "python-pip-0123");
        assert_eq!(
            digest_of(&out.join("caches/0.tar")).unwrap(),
            read.caches[0].digest
        );
        // A tar.gz without a manifest first is not an export.
        let stranger = dir.path().join("s.tar.gz");
        {
            let gz = flate2::write::GzEncoder::new(
                std::fs::File::create(&stranger).unwrap(),
                flate2::Compression::fast(),
            );
            let mut tar = tar::Builder::new(gz);
            tar.append_path_with_name(part.path(), "caches/0.tar")
                .unwrap();
            tar.into_inner().unwrap().finish().unwrap();
        }
        assert!(unpack_bundle(&stranger, &dir.path().join("s")).is_err());
    }
}
