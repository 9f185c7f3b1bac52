//! Shared helpers for the end-to-end tests: the real binary, the real Docker engine, fixture
//! images built once, and throwaway projects. Both test binaries (`tests/engine`, `tests/cli`)
//! compile this module and use all of it; a helper that only one of them needs lives in that
//! binary's folder instead, so that neither compiles code it does not use.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use berth::engine::runtime::ContainerRuntime as _;

pub const BUSYBOX: &str = "berth-test/busybox:latest";
pub const PYTHON: &str = "berth-test/python:3.11";
pub const PYTHON_UV: &str = "berth-test/python-uv:3.11";
pub const PYTHON_POETRY: &str = "berth-test/python-poetry:3.11";
pub const PYTHON_PDM: &str = "berth-test/python-pdm:3.11";
pub const PYTHON_PIPENV: &str = "berth-test/python-pipenv:3.11";

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Make sure the engine answers and the image exists, building it with `images/build.sh` (under
/// a lock, so parallel test processes build it once). Fails loudly: these tests never skip.
/// The engine is the one `DOCKER_HOST` names, for berth and for the docker CLI the build uses.
pub fn require_image(image: &str) {
    static ENGINE: OnceLock<()> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let ok = block_on(async { berth::docker::Engine::connect().await.map(|_| ()) });
        if let Err(e) = ok {
            panic!(
                "these tests need a running Docker engine (run .ci/ensure-docker.sh; for \
                 Podman, .ci/ensure-podman.sh and DOCKER_HOST=unix:///run/berth-podman.sock): {e}"
            );
        }
    });
    if image_exists(image) {
        return;
    }
    let lock_path = std::env::temp_dir().join("berth-test-images.lock");
    let lock = std::fs::File::create(&lock_path).expect("create the image lock file");
    use std::os::unix::io::AsRawFd;
    // SAFETY: flock on a file descriptor we own; released when `lock` is dropped.
    unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) };
    if !image_exists(image) {
        let which = match image {
            PYTHON => "python",
            PYTHON_UV => "python-uv",
            PYTHON_POETRY => "python-poetry",
            PYTHON_PDM => "python-pdm",
            PYTHON_PIPENV => "python-pipenv",
            _ => "busybox",
        };
        let status = Command::new("bash")
            .arg(repo_root().join("images/build.sh"))
            .arg(which)
            .status()
            .expect("run images/build.sh");
        assert!(status.success(), "images/build.sh {which} failed");
        assert!(
            image_exists(image),
            "images/build.sh did not produce {image}"
        );
    }
    drop(lock);
}

fn image_exists(image: &str) -> bool {
    block_on(async {
        let engine = berth::docker::Engine::connect()
            .await
            .expect("Docker engine");
        engine.image_exists(image).await.expect("inspect image")
    })
}

pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(f)
}

/// A throwaway project whose `berth.yml` runs `pipeline` in the busybox image.
pub fn busybox_project(pipeline: &str) -> Project {
    require_image(BUSYBOX);
    Project::new(&[("berth.yml", &format!("image: {BUSYBOX}\n{pipeline}"))])
}

/// A throwaway project directory with the given files.
pub struct Project {
    pub dir: tempfile::TempDir,
}

impl Project {
    pub fn new(files: &[(&str, &str)]) -> Project {
        let dir = tempfile::Builder::new()
            .prefix("berth-test-")
            .tempdir()
            .expect("temp dir");
        let p = Project { dir };
        for (name, text) in files {
            p.write(name, text);
        }
        p
    }

    pub fn path(&self) -> PathBuf {
        self.dir
            .path()
            .canonicalize()
            .expect("canonical project path")
    }

    pub fn write(&self, name: &str, text: &str) {
        let path = self.dir.path().join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create dirs");
        }
        std::fs::write(&path, text).expect("write file");
        if name.ends_with(".sh") {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        }
    }

    /// The record directory of this project's latest run.
    pub fn run_dir(&self) -> PathBuf {
        let runs = self.path().join(".berth/runs");
        let mut dirs: Vec<PathBuf> = std::fs::read_dir(&runs)
            .unwrap_or_else(|e| panic!("{}: {e}", runs.display()))
            .map(|e| e.expect("dir entry").path())
            .collect();
        dirs.sort();
        dirs.pop().expect("a run record")
    }

    /// `git ARGS` in this project (a fixed identity); its trimmed stdout.
    pub fn git(&self, args: &[&str]) -> String {
        git_in(&self.path(), args)
    }

    /// `berth ARGS` in this project; waits for it.
    pub fn berth(&self, args: &[&str]) -> Run {
        let out = self.command(args).output().expect("run berth");
        Run::from(out)
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_berth"));
        cmd.args(args)
            .current_dir(self.path())
            .env_remove("NO_COLOR")
            .stdin(Stdio::null());
        cmd
    }

    /// Containers, networks and temporary volumes that runs in this project left behind.
    pub fn leftovers(&self) -> Vec<String> {
        let project = self.path().display().to_string();
        block_on(async {
            let engine = berth::docker::Engine::connect()
                .await
                .expect("Docker engine");
            let label = berth::engine::runtime::labels::PROJECT;
            let mut left: Vec<String> = engine
                .containers_with_label(label, Some(&project))
                .await
                .expect("list containers")
                .into_iter()
                .map(|c| format!("container {}", c.name))
                .collect();
            let filter = format!("{label}={project}");
            for n in engine
                .networks_with_label(&filter)
                .await
                .expect("list networks")
            {
                left.push(format!("network {}", n.name));
            }
            for v in engine
                .volumes_with_label(&filter)
                .await
                .expect("list volumes")
            {
                if v.labels
                    .contains_key(berth::engine::runtime::labels::TEMPORARY)
                {
                    left.push(format!("volume {}", v.name));
                }
            }
            left
        })
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        // Caches outlive runs by design; a test's caches go with its project.
        let project = self.path().display().to_string();
        block_on(async {
            if let Ok(engine) = berth::docker::Engine::connect().await {
                let filter = format!("{}={project}", berth::engine::runtime::labels::PROJECT);
                for v in engine.volumes_with_label(&filter).await.unwrap_or_default() {
                    let _ = engine.remove_volume(&v.name).await;
                }
            }
        });
        // Files written by containers through a bind mount may belong to root; best effort.
        let _ = std::fs::remove_dir_all(self.dir.path());
    }
}

/// A finished berth process.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(out: Output) -> Run {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

impl Run {
    /// Assert the exit code, showing the whole output when it is not the expected one.
    pub fn expect_code(&self, code: i32) -> &Run {
        assert_eq!(
            self.code, code,
            "unexpected exit code\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout, self.stderr
        );
        self
    }

    /// The log lines of one job (without the `[job] ` prefix) as people read them: without
    /// the colours around them, and without the runner's section lines and stage titles
    /// (`Executing "step_script" stage of the job script`). `raw_log` has them.
    pub fn log(&self, job: &str) -> Vec<&str> {
        job_log(&self.stderr, job)
    }

    /// The status line of a job (`==> job: passed in 0.4s`).
    pub fn status_of(&self, job: &str) -> String {
        let prefix = format!("==> {job}: ");
        self.stderr
            .lines()
            .rfind(|l| l.starts_with(&prefix) && !l.contains(": started ("))
            .unwrap_or_else(|| panic!("no status line for `{job}` in:\n{}", self.stderr))
            .to_string()
    }

    /// Index of the first line containing `needle` (to check the order of events).
    pub fn line_index(&self, needle: &str) -> usize {
        self.stderr
            .lines()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("`{needle}` not in:\n{}", self.stderr))
    }
}

/// The log lines of one job in berth's plain output, as people read them: without the
/// `[job] ` prefix, colours, section markers and the sections' title lines.
pub fn job_log<'a>(output: &'a str, job: &str) -> Vec<&'a str> {
    raw_job_log(output, job)
        .into_iter()
        .filter_map(|l| {
            let (text, sectioned) = readable(l);
            let title = text == "Running after_script"
                || (text.starts_with("Executing \"")
                    && text.ends_with("\" stage of the job script"));
            // Reporters show a section's title without its marker.
            (!((sectioned && text.is_empty()) || title)).then_some(text)
        })
        .collect()
}

/// The log lines of one job (without the `[job] ` prefix), as printed.
fn raw_job_log<'a>(output: &'a str, job: &str) -> Vec<&'a str> {
    let prefix = format!("[{job}] ");
    output
        .lines()
        .filter_map(|l| l.strip_prefix(prefix.as_str()))
        .collect()
}

/// A log line without GitLab's section markers (`section_start:<ts>:<name>\r\x1b[0K`) before
/// it and the escape sequences around it, and whether it had a marker.
pub fn readable(line: &str) -> (&str, bool) {
    let mut rest = line;
    let mut sectioned = false;
    loop {
        if rest.starts_with("section_start:") || rest.starts_with("section_end:") {
            if let Some(end) = rest.find("\r\x1b[0K") {
                rest = &rest[end + "\r\x1b[0K".len()..];
                sectioned = true;
                continue;
            }
        }
        match rest.strip_prefix("\x1b[") {
            Some(after) => match after.find(|c: char| ('\x40'..='\x7e').contains(&c)) {
                Some(end) => rest = &after[end + 1..],
                None => break,
            },
            None => break,
        }
    }
    while let Some(at) = rest.rfind("\x1b[") {
        let tail = &rest[at + 2..];
        let ends = tail.len() - 1;
        if !tail.is_empty()
            && tail[..ends].chars().all(|c| c.is_ascii_digit() || c == ';')
            && (0x40..=0x7e).contains(&tail.as_bytes()[ends])
        {
            rest = &rest[..at];
        } else {
            break;
        }
    }
    (rest, sectioned)
}

/// `git ARGS` in `dir`, committing as a fixed author; what it printed.
pub fn git_in(dir: &std::path::Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .output()
        .expect("git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}
