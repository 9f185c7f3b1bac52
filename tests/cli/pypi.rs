//! A local package index for the Python cache tests. The fixture's wheels are downloaded on the
//! host once (PyPI is reachable from the host, not from containers) into `target/python-wheels`,
//! laid out as a PEP 503 simple index and baked into `berth-test/pypi-fixture`, an image the
//! fixture's pipeline runs as a service. No test needs a container to reach the internet.

use std::path::{Path, PathBuf};
use std::process::Command;

use berth::engine::runtime::ContainerRuntime as _;

use crate::common::{block_on, repo_root, require_image, PYTHON};

pub const INDEX_IMAGE: &str = "berth-test/pypi-fixture:latest";

/// Wheels the index serves beyond `fixtures/python-deps/requirements.txt`: poetry locks for every
/// platform, so it asks the index about pytest's Windows-only dependency too; the GitHub seed
/// (`fixtures/github/python-ci`) lints with ruff.
const EXTRA: &[&str] = &["colorama==0.4.6", "ruff==0.6.9"];

/// The tools real projects install with pip before anything else (`pip install pdm`, `pip install
/// uv`), with their dependencies: what `tests/cli/warm_real.rs`'s fixtures install first.
const TOOLS: &[&str] = &["pdm==2.29.4", "hishel[httpx2]==1.4.0", "uv==0.13.9"];

/// The wheels of `fixtures/python-deps/requirements.txt` and [`EXTRA`], for CPython 3.11 on x86-64
/// Linux.
pub fn wheels_dir() -> PathBuf {
    repo_root().join("target").join("python-wheels")
}

/// Make sure the Python image and the index image exist (downloading the wheels on the host and
/// building the index image when missing), under a lock shared by parallel test processes.
pub fn require_index() {
    build_index(INDEX_IMAGE, download_wheels());
}

/// The index of the fixtures shaped like real projects: the other index's wheels and [`TOOLS`]
/// (an image of its own: the other stays as small as its tests need).
pub const TOOLS_INDEX_IMAGE: &str = "berth-test/pypi-tools:latest";

/// [`require_index`] for [`TOOLS_INDEX_IMAGE`].
pub fn require_tools_index() {
    let mut wheels = download_wheels();
    wheels.extend(download_tools());
    build_index(TOOLS_INDEX_IMAGE, wheels);
}

/// Build `image`, an index serving `wheels`, unless it serves them already.
fn build_index(image: &str, wheels: Vec<PathBuf>) {
    require_image(PYTHON);
    let lock_path = std::env::temp_dir().join("berth-test-pypi.lock");
    let lock = std::fs::File::create(&lock_path).expect("create the index lock file");
    use std::os::unix::io::AsRawFd;
    // SAFETY: flock on a file descriptor we own; released when `lock` is dropped.
    unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) };
    block_on(async {
        let engine = berth::docker::Engine::connect()
            .await
            .expect("Docker engine");
        // An image made from another set of wheels is made again.
        let served = wheel_set_label(&wheels);
        if engine.image_exists(image).await.expect("inspect image")
            && index_label(image).as_deref() == Some(served.as_str())
        {
            return;
        }
        engine
            .remove_image(image)
            .await
            .expect("remove the outdated index image");
        let ctx = tempfile::tempdir().expect("temp dir");
        lay_out_index(&wheels, &ctx.path().join("www"));
        let here = repo_root().join("images/pypi-fixture");
        for f in ["Dockerfile", "serve.py"] {
            std::fs::copy(here.join(f), ctx.path().join(f)).expect("copy the recipe");
        }
        let mut dockerfile = std::fs::OpenOptions::new()
            .append(true)
            .open(ctx.path().join("Dockerfile"))
            .expect("open the Dockerfile");
        use std::io::Write;
        writeln!(dockerfile, "LABEL {WHEELS_LABEL}={served}").expect("label the image");
        let tar_file = tempfile::NamedTempFile::new().expect("temp file");
        {
            let mut builder =
                tar::Builder::new(std::fs::File::create(tar_file.path()).expect("tar"));
            builder
                .append_dir_all(".", ctx.path())
                .expect("pack the context");
            builder.finish().expect("finish the context");
        }
        engine
            .build_image(tar_file.path(), "Dockerfile", image, Box::new(|_| {}))
            .await
            .expect("build the index image");
    });
    drop(lock);
}

/// The label naming the wheels an index image serves (and the recipe it was made with).
const WHEELS_LABEL: &str = "io.berth.test.wheels";

/// A digest of the wheels' file names and of the image's recipe.
fn wheel_set_label(wheels: &[PathBuf]) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for w in wheels {
        h.update(w.file_name().unwrap_or_default().as_encoded_bytes());
        h.update([0]);
    }
    for f in ["Dockerfile", "serve.py"] {
        let recipe = repo_root().join("images/pypi-fixture").join(f);
        h.update(std::fs::read(recipe).expect("read the index recipe"));
        h.update([0]);
    }
    hex::encode(h.finalize())[..16].to_string()
}

/// The wheels label of an image, if it has one.
fn index_label(image: &str) -> Option<String> {
    let out = Command::new("docker")
        .args(["image", "inspect", "--format"])
        .arg(format!("{{{{index .Config.Labels \"{WHEELS_LABEL}\"}}}}"))
        .arg(image)
        .output()
        .expect("run docker image inspect");
    let label = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success() && !label.is_empty()).then_some(label)
}

/// `pip download` on the host, once: the wheels stay in `target/` between test runs.
fn download_wheels() -> Vec<PathBuf> {
    let dir = wheels_dir();
    let requirements = repo_root().join("fixtures/python-deps/requirements.txt");
    let wanted = std::fs::read_to_string(&requirements)
        .expect("read the fixture's requirements")
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .count()
        + EXTRA.len();
    let have = |dir: &Path| -> Vec<PathBuf> {
        std::fs::read_dir(dir)
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|x| x == "whl"))
                    .collect()
            })
            .unwrap_or_default()
    };
    if have(&dir).len() < wanted {
        std::fs::create_dir_all(&dir).expect("create the wheels dir");
        let status = Command::new("python3")
            .args(["-m", "pip", "download", "--quiet", "--no-deps"])
            .args(["--only-binary=:all:", "--platform", "manylinux2014_x86_64"])
            .args([
                "--python-version",
                "3.11",
                "--implementation",
                "cp",
                "--abi",
                "cp311",
            ])
            .arg("-d")
            .arg(&dir)
            .arg("-r")
            .arg(&requirements)
            .args(EXTRA)
            .status()
            .expect("run pip on the host (python3 -m pip)");
        assert!(
            status.success(),
            "pip download of the fixture's wheels failed"
        );
    }
    let mut found = have(&dir);
    found.sort();
    assert_eq!(
        found.len(),
        wanted,
        "wheels in {}: {found:?}",
        dir.display()
    );
    found
}

/// [`TOOLS`] and their dependencies, downloaded on the host once into `target/python-wheels-tools`.
fn download_tools() -> Vec<PathBuf> {
    let dir = repo_root().join("target").join("python-wheels-tools");
    let marker = dir.join(".wanted");
    let wanted = TOOLS.join("\n");
    if std::fs::read_to_string(&marker).ok().as_deref() != Some(wanted.as_str()) {
        std::fs::create_dir_all(&dir).expect("create the tools' wheels dir");
        let status = Command::new("python3")
            .args(["-m", "pip", "download", "--quiet", "--only-binary=:all:"])
            .args(["--platform", "manylinux_2_17_x86_64"])
            .args(["--platform", "manylinux2014_x86_64"])
            .args(["--python-version", "3.11", "--implementation", "cp"])
            .args(["--abi", "cp311", "-d"])
            .arg(&dir)
            .args(TOOLS)
            .status()
            .expect("run pip on the host (python3 -m pip)");
        assert!(status.success(), "pip download of {TOOLS:?} failed");
        std::fs::write(&marker, &wanted).expect("write the tools' marker");
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("read the tools' wheels dir")
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "whl"))
        .collect();
    found.sort();
    found
}

/// PEP 503: `simple/<normalized name>/index.html` linking each file with its sha256.
fn lay_out_index(wheels: &[PathBuf], www: &Path) {
    use sha2::{Digest, Sha256};
    let files = www.join("files");
    std::fs::create_dir_all(&files).expect("mkdir files");
    // Several versions of a project (the fixture's and a tool's) share its page.
    let mut projects: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for wheel in wheels {
        let name = wheel
            .file_name()
            .expect("a file name")
            .to_string_lossy()
            .into_owned();
        let bytes = std::fs::read(wheel).expect("read a wheel");
        std::fs::write(files.join(&name), &bytes).expect("copy a wheel");
        let project = name
            .split('-')
            .next()
            .expect("a project name")
            .to_lowercase()
            .replace(['_', '.'], "-");
        let sha = hex::encode(Sha256::digest(&bytes));
        let link = format!("<a href=\"/files/{name}#sha256={sha}\">{name}</a>");
        let links = projects.entry(project).or_default();
        if !links.contains(&link) {
            links.push(link);
        }
    }
    for (project, links) in &projects {
        let page = www.join("simple").join(project);
        std::fs::create_dir_all(&page).expect("mkdir project");
        std::fs::write(
            page.join("index.html"),
            format!(
                "<!DOCTYPE html><html><body>{}</body></html>\n",
                links.join("\n")
            ),
        )
        .expect("write a project page");
    }
    let projects: Vec<&String> = projects.keys().collect();
    let links: String = projects
        .iter()
        .map(|p| format!("<a href=\"/simple/{p}/\">{p}</a>\n"))
        .collect();
    std::fs::write(
        www.join("simple/index.html"),
        format!("<!DOCTYPE html><html><body>\n{links}</body></html>\n"),
    )
    .expect("write the root page");
}
