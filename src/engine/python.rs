//! Zero-config Python dependency caches. A job whose commands install Python packages (pip, uv,
//! poetry, pipenv, pdm) gets one named volume per tool, mounted outside the workspace, with the
//! tool's cache variables pointing into it. The key hashes the project's dependency files and the
//! job's image ID, so a changed lockfile, another Python or another platform never shares a
//! cache. `berth warm` fills the same volumes ahead of time by running the job's own commands up
//! to its last install ([`warm_commands`]), with pip's and pdm's index traffic going through a
//! recording proxy (`index_proxy.py`, in the job's image, on its loopback) into one more volume;
//! with no network the same proxy replays it, with no freshness limit. uv installs from its cache
//! in its own offline mode, pipenv from a wheelhouse; poetry, whose sources the proxy cannot
//! take over, installs offline only while the index pages it cached are fresh (berth says so).

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use sha2::{Digest, Sha256};

use super::caches::{cache_labels, Mount};
use crate::engine::runtime::labels;

/// Where the volumes are mounted in the job's container (outside the workspace, so artifacts and
/// `untracked` never see them).
pub const MOUNT_ROOT: &str = "/var/cache/berth";

/// The variable that turns the automatic caches off for one job (`"false"` or `"0"`).
pub const SWITCH: &str = "BERTH_PYTHON_CACHE";

/// Label of the image ID a Python cache was filled with (export/import keep it).
pub const IMAGE_LABEL: &str = "io.berth.cache.image";

/// The variable `berth warm` sets on the jobs it runs: the proxy records instead of replaying.
pub const WARM: &str = "BERTH_PYTHON_WARM";

/// The recording index proxy, shipped beside the job's scripts.
const PROXY_SOURCE: &str = include_str!("index_proxy.py");

/// Where the proxy is in the container, and where its recordings are.
const PROXY_PATH: &str = "/berth/index_proxy.py";
const INDEX_DIR: &str = "/var/cache/berth/index";

/// The proxy's address on the job's own loopback (there with no network too).
const PROXY_URL: &str = "http://127.0.0.1:47831";

/// The index a tool asks when nothing says otherwise.
const PYPI: &str = "https://pypi.org/simple";

/// Where poetry makes a job's virtualenvs: in the container, outside the cache volume.
const POETRY_VIRTUALENVS: &str = "/tmp/poetry-virtualenvs";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Tool {
    Pip,
    Uv,
    Poetry,
    Pipenv,
    Pdm,
}

impl Tool {
    pub fn name(self) -> &'static str {
        match self {
            Tool::Pip => "pip",
            Tool::Uv => "uv",
            Tool::Poetry => "poetry",
            Tool::Pipenv => "pipenv",
            Tool::Pdm => "pdm",
        }
    }

    /// The volume's mount point.
    pub fn dir(self) -> String {
        format!("{MOUNT_ROOT}/{}", self.name())
    }

    /// The variables that point the tool at its volume.
    fn env(self) -> Vec<(&'static str, String)> {
        let dir = self.dir();
        match self {
            Tool::Pip => vec![("PIP_CACHE_DIR", format!("{dir}/cache"))],
            // The cache is another filesystem than the environment: copy, as uv would after
            // failing to hardlink, without its warning.
            Tool::Uv => vec![("UV_CACHE_DIR", dir), ("UV_LINK_MODE", "copy".into())],
            // Poetry keeps its virtualenvs under its cache directory unless told otherwise: they
            // stay in the container, as without berth; the volume holds downloads only.
            Tool::Poetry => vec![
                ("POETRY_CACHE_DIR", dir),
                ("POETRY_VIRTUALENVS_PATH", POETRY_VIRTUALENVS.into()),
            ],
            // pipenv installs with pip: both caches live in its volume.
            Tool::Pipenv => vec![
                ("PIPENV_CACHE_DIR", format!("{dir}/pipenv")),
                ("PIP_CACHE_DIR", format!("{dir}/pip")),
            ],
            Tool::Pdm => vec![("PDM_CACHE_DIR", dir)],
        }
    }

    /// Variables for a job with no network: install from what is cached, ask no index.
    fn offline_env(self) -> Vec<(&'static str, String)> {
        match self {
            // pip's HTTP cache needs an index to answer: offline, the recording proxy is the
            // index of a job of scripts (see `proxy_env`), the wheelhouse `berth warm` fills
            // that of a job of steps.
            Tool::Pip => vec![
                ("PIP_NO_INDEX", "1".into()),
                ("PIP_FIND_LINKS", format!("{}/wheels", self.dir())),
            ],
            // pipenv installs with pip, so the same: the wheelhouse `berth warm` fills from the
            // lock is the index.
            Tool::Pipenv => vec![
                ("PIP_NO_INDEX", "1".into()),
                ("PIP_FIND_LINKS", format!("{}/wheels", self.dir())),
            ],
            Tool::Uv => vec![("UV_OFFLINE", "1".into())],
            // pdm's index is the recording proxy (see `proxy_env`).
            Tool::Poetry | Tool::Pdm => Vec::new(),
        }
    }

    /// What the user should know about the tool in a job with no network, if anything.
    fn offline_note(self) -> Option<&'static str> {
        match self {
            // Poetry has no offline mode: it reads each locked package's file list from the
            // index again before taking the file from its cache, and its HTTP cache answers
            // for the index only while the page is fresh (`max-age`, 10 minutes on PyPI).
            Tool::Poetry => Some(
                "poetry has no offline mode: it installs from its cache with no network only while \
                 the index pages it cached are fresh (10 minutes on PyPI), so run `berth warm` \
                 just before; later it fails to reach the index",
            ),
            // pdm neither: its lock names files, not where they are, so it asks the index for
            // their links again; its HTTP cache answers while the page is fresh, as poetry's.
            Tool::Pdm => Some(
                "pdm has no offline mode: it installs from its cache with no network only while \
                 the index pages it cached are fresh (10 minutes on PyPI), so run `berth warm` \
                 just before; later it fails to reach the index",
            ),
            Tool::Pip | Tool::Uv | Tool::Pipenv => None,
        }
    }
}

/// The Python package tools a job uses: those its commands install with, and those a job of
/// steps asks to cache by name.
pub fn tools_of(job: &crate::pipeline::Job) -> BTreeSet<Tool> {
    let (commands, named) = match &job.steps {
        Some(steps) => (steps.commands(), steps.cached_tools()),
        None => Default::default(),
    };
    let mut tools = detect(job.before_script.iter().chain(&job.script).chain(&commands));
    tools.extend(named.iter().filter_map(|name| {
        [Tool::Pip, Tool::Uv, Tool::Poetry, Tool::Pipenv, Tool::Pdm]
            .into_iter()
            .find(|t| t.name() == name)
    }));
    tools
}

/// One word of a simple command in a script line, with the two words after it; for `pip`
/// (`pip3`, `pip3.11`) and `python -m pip`, pip's subcommand.
struct CommandWord<'a> {
    base: &'a str,
    next: &'a str,
    after: &'a str,
    pip: Option<&'a str>,
}

/// The words of each simple command of `line` (`a && b; c | d` are three), unquoted, each
/// program named by its file name.
fn command_words(line: &str) -> Vec<CommandWord<'_>> {
    let mut out = Vec::new();
    for part in line.split(['\n', ';', '&', '|', '(', ')']) {
        let words: Vec<&str> = part
            .split_whitespace()
            .map(|w| w.trim_matches(['"', '\'']))
            .collect();
        for (i, word) in words.iter().enumerate() {
            let base = word.rsplit('/').next().unwrap_or(word);
            let next = words.get(i + 1).copied().unwrap_or("");
            let after = words.get(i + 2).copied().unwrap_or("");
            let is_pip = base == "pip"
                || base.strip_prefix("pip").is_some_and(|v| {
                    !v.is_empty() && v.chars().all(|c| c.is_ascii_digit() || c == '.')
                });
            let module_pip = base.starts_with("python") && next == "-m" && after == "pip";
            let pip = match () {
                _ if is_pip => Some(next),
                _ if module_pip => words.get(i + 3).copied(),
                _ => None,
            };
            out.push(CommandWord {
                base,
                next,
                after,
                pip,
            });
        }
    }
    out
}

/// Does pip's subcommand install (or fetch) packages?
fn pip_installs(subcommand: Option<&str>) -> bool {
    matches!(subcommand, Some("install" | "download" | "wheel"))
}

/// The Python package tools a job's commands use to install something.
pub fn detect<'a>(commands: impl IntoIterator<Item = &'a String>) -> BTreeSet<Tool> {
    let mut tools = BTreeSet::new();
    for command in commands {
        for w in command_words(command) {
            let next = w.next;
            let tool = match w.base {
                _ if w.pip.is_some() => pip_installs(w.pip).then_some(Tool::Pip),
                "uv" if matches!(next, "sync" | "pip" | "run" | "add" | "lock" | "venv") => {
                    Some(Tool::Uv)
                }
                "poetry" if matches!(next, "install" | "sync" | "add" | "lock") => {
                    Some(Tool::Poetry)
                }
                "pipenv" if matches!(next, "install" | "sync" | "lock") => Some(Tool::Pipenv),
                "pdm" if matches!(next, "install" | "sync" | "add" | "lock") => Some(Tool::Pdm),
                _ => None,
            };
            tools.extend(tool);
        }
    }
    tools
}

/// Is a file name one of the dependency files a key is made of?
fn is_dependency_file(name: &str) -> bool {
    let txt = name.ends_with(".txt") || name.ends_with(".in");
    (txt && (name.starts_with("requirements") || name.starts_with("constraints")))
        || matches!(
            name,
            "pyproject.toml"
                | "setup.py"
                | "setup.cfg"
                | "uv.lock"
                | "poetry.lock"
                | "Pipfile"
                | "Pipfile.lock"
                | "pdm.lock"
        )
}

/// The project's dependency files (relative paths, sorted): at its top, and in a
/// `requirements/` directory.
pub fn dependency_files(project: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for (dir, prefix) in [
        (project.to_path_buf(), ""),
        (project.join("requirements"), "requirements/"),
    ] {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let in_dir = !prefix.is_empty() && (name.ends_with(".txt") || name.ends_with(".in"));
            if entry.path().is_file() && (in_dir || is_dependency_file(&name)) {
                found.push(format!("{prefix}{name}"));
            }
        }
    }
    found.sort();
    found
}

/// The cache key of one tool: `python-<tool>-<hash>` of the dependency files and the image ID.
pub fn key(tool: Tool, image_id: &str, project: &Path, files: &[String]) -> String {
    key_named(tool.name(), image_id, project, files)
}

/// [`key`] of a cache by name (a tool's, or the recorded index's).
fn key_named(name: &str, image_id: &str, project: &Path, files: &[String]) -> String {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update([0]);
    h.update(image_id.as_bytes());
    h.update([0]);
    for f in files {
        h.update(f.as_bytes());
        h.update([0]);
        match std::fs::read(project.join(f)) {
            Ok(content) => h.update(&content),
            Err(_) => h.update(b"\xffunreadable"),
        }
        h.update([0]);
    }
    format!("python-{name}-{}", &hex::encode(h.finalize())[..16])
}

/// What the automatic caches add to one job: its volumes and its variables.
#[derive(Debug, Default)]
pub struct JobCaches {
    pub mounts: Vec<Mount>,
    pub env: Vec<(String, String)>,
    /// What the user should know about these caches in this run.
    pub notes: Vec<String>,
    /// Commands to run before the job's own (the index proxy's start).
    pub prelude: Vec<String>,
    /// Files to put beside the job's scripts: (path in the container, content).
    pub files: Vec<(String, String)>,
    /// Cache directories the job names itself (absolute, in the container): berth's volume is
    /// mounted there, in place of a declared cache at the same place.
    pub own_dirs: Vec<String>,
}

/// Everything [`for_job`] needs to know about the run.
pub struct RunScope<'a> {
    pub project: &'a Path,
    pub run_id: &'a str,
    /// `--no-cache`: throwaway volumes.
    pub temporary: bool,
    /// `--network none`: tell the tools to stay offline.
    pub offline: bool,
    /// A job of scripts (GitLab's), where the index proxy starts before the job's commands; a
    /// job of steps installs offline from wheelhouses instead.
    pub scripted: bool,
}

/// The tool's own cache variable, the one a job may set to choose where its cache is.
fn own_variable(tool: Tool) -> &'static str {
    match tool {
        Tool::Pip => "PIP_CACHE_DIR",
        Tool::Uv => "UV_CACHE_DIR",
        Tool::Poetry => "POETRY_CACHE_DIR",
        Tool::Pipenv => "PIPENV_CACHE_DIR",
        Tool::Pdm => "PDM_CACHE_DIR",
    }
}

/// Does the project name pdm sources of its own (which the proxy's `PDM_PYPI_URL` does not
/// replace)?
fn pdm_has_own_sources(project: &Path) -> bool {
    std::fs::read_to_string(project.join("pyproject.toml"))
        .is_ok_and(|t| t.contains("[[tool.pdm.source]]"))
}

/// The proxy's variables: the upstream indexes it forwards to (the job's own, else PyPI) and the
/// tools' index variables pointing at it. Only pip and pdm are pointed at it: uv records its
/// lock's file URLs and has an offline mode of its own, poetry and pipenv pass their sources on
/// their command lines.
fn proxy_env(tools: &BTreeSet<Tool>, job_env: &[(String, String)]) -> Vec<(String, String)> {
    let get = |name: &str| {
        job_env
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    let mut upstreams: Vec<String> = Vec::new();
    let mut via = |url: &str| {
        // Kept as written (the proxy trims it), so that a secret's masking still finds it.
        let same = |u: &String| u.trim_end_matches('/') == url.trim_end_matches('/');
        let n = match upstreams.iter().position(same) {
            Some(n) => n,
            None => {
                upstreams.push(url.to_string());
                upstreams.len() - 1
            }
        };
        format!("{PROXY_URL}/i/{n}/")
    };
    let mut env = Vec::new();
    if tools.contains(&Tool::Pip) {
        let index = get("PIP_INDEX_URL").unwrap_or_else(|| PYPI.to_string());
        env.push(("PIP_INDEX_URL".to_string(), via(&index)));
        if let Some(extra) = get("PIP_EXTRA_INDEX_URL") {
            let extra: Vec<String> = extra.split_whitespace().map(&mut via).collect();
            env.push(("PIP_EXTRA_INDEX_URL".to_string(), extra.join(" ")));
        }
        // pip keeps what a plain-HTTP index sends in its cache only from a trusted host.
        let host = PROXY_URL.trim_start_matches("http://");
        let trusted = match get("PIP_TRUSTED_HOST") {
            Some(own) => format!("{own} {host}"),
            None => host.to_string(),
        };
        env.push(("PIP_TRUSTED_HOST".to_string(), trusted));
    }
    if tools.contains(&Tool::Pdm) {
        let index = get("PDM_PYPI_URL").unwrap_or_else(|| PYPI.to_string());
        env.push(("PDM_PYPI_URL".to_string(), via(&index)));
    }
    if !upstreams.is_empty() {
        env.push(("BERTH_INDEX_UPSTREAMS".to_string(), upstreams.join(" ")));
    }
    env
}

/// A volume of this project's Python caches at `path`.
fn cache_mount(name: &str, key: String, path: String, image_id: &str, ctx: &RunScope) -> Mount {
    let mut labels = HashMap::from([
        (labels::BERTH.to_string(), "1".to_string()),
        (
            labels::PROJECT.to_string(),
            ctx.project.display().to_string(),
        ),
        (cache_labels::CACHE.to_string(), "1".to_string()),
        (cache_labels::KEY.to_string(), key.clone()),
        (cache_labels::PATH.to_string(), path.clone()),
        (IMAGE_LABEL.to_string(), image_id.to_string()),
    ]);
    let volume = if ctx.temporary {
        labels.insert(labels::RUN.to_string(), ctx.run_id.to_string());
        labels.insert(labels::TEMPORARY.to_string(), "1".to_string());
        format!("berth-tmpcache-{}-{name}", ctx.run_id)
    } else {
        super::caches::volume_name(ctx.project, &key, &path)
    };
    Mount {
        volume,
        key,
        path,
        read_only: false,
        // pip's and uv's caches are safe to share between concurrent processes (atomic
        // writes, uv locks its own), the proxy writes each file whole: parallel jobs need not
        // queue for them.
        shared: true,
        labels,
        copy: None,
    }
}

/// The volumes and variables for a job using `tools` in an image with `image_id`. Variables the
/// job sets itself win, but for the index variables of a run that records or replays the index
/// (`berth warm`, `--network none`): those lead to the proxy, which forwards to the job's index.
/// A cache directory the job sets itself (`PIP_CACHE_DIR: .cache/pip`) gets the volume there.
/// `BERTH_PYTHON_CACHE=false` in its variables turns it all off.
pub fn for_job(
    tools: &BTreeSet<Tool>,
    image_id: &str,
    job_env: &[(String, String)],
    ctx: &RunScope,
) -> JobCaches {
    let value = |name: &str| {
        job_env
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let set = |name: &str| value(name).is_some();
    let is_off = |name: &str| {
        value(name).is_some_and(|v| {
            matches!(
                v.to_ascii_lowercase().as_str(),
                "0" | "false" | "no" | "off"
            )
        })
    };
    let mut out = JobCaches::default();
    if is_off(SWITCH) || tools.is_empty() {
        return out;
    }
    let warm = value(WARM).is_some_and(|v| !v.is_empty()) && !is_off(WARM);
    // A pdm project naming its own sources does not ask PDM_PYPI_URL: not proxied.
    let mut via_proxy = tools.clone();
    if pdm_has_own_sources(ctx.project) {
        via_proxy.remove(&Tool::Pdm);
    }
    let proxied = match ctx.scripted && (warm || ctx.offline) {
        true => proxy_env(&via_proxy, job_env),
        false => Vec::new(),
    };
    let files = dependency_files(ctx.project);
    for &tool in tools {
        let key = key(tool, image_id, ctx.project, &files);
        // The job's own cache directory, made absolute in its workspace.
        let own = value(own_variable(tool))
            .filter(|v| !v.trim().is_empty())
            .map(|v| match (v.starts_with('/'), value("CI_PROJECT_DIR")) {
                (false, Some(dir)) => format!("{}/{v}", dir.trim_end_matches('/')),
                _ => v.to_string(),
            });
        let path = match &own {
            Some(dir) if dir.starts_with('/') => {
                out.own_dirs.push(dir.clone());
                dir.clone()
            }
            Some(dir) => {
                out.notes.push(format!(
                    "its {} ({dir}) is not an absolute path: berth's {} cache is not mounted there",
                    own_variable(tool),
                    tool.name()
                ));
                tool.dir()
            }
            None => tool.dir(),
        };
        out.mounts
            .push(cache_mount(tool.name(), key, path, image_id, ctx));
        let offline = if ctx.offline {
            let note = match tool {
                Tool::Pdm if proxied.iter().any(|(k, _)| k == "PDM_PYPI_URL") => None,
                _ => tool.offline_note(),
            };
            out.notes.extend(note.map(str::to_string));
            match tool {
                // The proxy answers for pip's index.
                Tool::Pip if !proxied.is_empty() => Vec::new(),
                _ => tool.offline_env(),
            }
        } else {
            Vec::new()
        };
        for (name, value) in tool.env().into_iter().chain(offline) {
            if !set(name) && !out.env.iter().any(|(k, _)| k == name) {
                out.env.push((name.to_string(), value));
            }
        }
    }
    if !proxied.is_empty() {
        let key = key_named("index", image_id, ctx.project, &files);
        out.mounts
            .push(cache_mount("index", key, INDEX_DIR.into(), image_id, ctx));
        for (name, value) in proxied {
            out.env.retain(|(k, _)| *k != name);
            out.env.push((name, value));
        }
        let mode = if warm { "record" } else { "replay" };
        // The job's image has a Python (it installs Python packages); an image with none
        // goes on without the proxy, and says so.
        out.prelude.push(format!(
            "\"$(command -v python3 || command -v python || echo python3)\" {PROXY_PATH} serve {mode} {INDEX_DIR} || echo 'berth: the package index proxy did not start: no Python in the image?'"
        ));
        out.files
            .push((PROXY_PATH.to_string(), PROXY_SOURCE.to_string()));
    }
    out
}

/// What `berth warm` says at the end of a job it warmed: what the proxy recorded and how big
/// each cache is.
pub fn warm_report(tools: &BTreeSet<Tool>, recorded: bool) -> Vec<String> {
    let mut lines = Vec::new();
    if recorded {
        lines.push(format!(
            "\"$(command -v python3 || command -v python || echo python3)\" {PROXY_PATH} report {INDEX_DIR} || true"
        ));
    }
    for tool in tools {
        let var = own_variable(*tool);
        // The variable says where the tool's cache really is (berth's or the job's own).
        let dir = match tool {
            Tool::Pip => "${PIP_CACHE_DIR:-}".to_string(),
            _ => format!("${{{var}:-}}"),
        };
        lines.push(format!(
            "echo \"berth warm: {name} cache: $(du -sh \"{dir}\" 2>/dev/null | cut -f1) in {dir}\"",
            name = tool.name()
        ));
    }
    lines
}

/// Is this one command line (of a script) one that installs Python packages: what `berth warm`
/// runs up to? `lock`/`add` are not (they change the project's files), nor are `pdm run` and
/// `poetry run` (they use what is installed); `uv run` is, unless a `uv sync` came before.
pub fn installs(line: &str, uv_synced: bool) -> bool {
    command_words(line).iter().any(|w| match w.base {
        _ if w.pip.is_some() => pip_installs(w.pip),
        "uv" => match w.next {
            "sync" => true,
            "pip" => matches!(w.after, "install" | "sync"),
            "tool" => w.after == "install",
            "run" => !uv_synced,
            _ => false,
        },
        "uvx" => true,
        "poetry" | "pdm" | "pipenv" => matches!(w.next, "install" | "sync"),
        "pipx" => matches!(w.next, "install" | "run"),
        _ => false,
    })
}

/// The commands `berth warm` runs for a job: its own `before_script` and `script` up to and
/// including its last install command, or `None` when none installs anything.
pub fn warm_commands(before: &[String], script: &[String]) -> Option<Vec<String>> {
    let all: Vec<&String> = before.iter().chain(script).collect();
    let mut synced = false;
    let mut last = None;
    for (i, line) in all.iter().enumerate() {
        if installs(line, synced) {
            last = Some(i);
        }
        synced |= line.contains("uv sync");
    }
    last.map(|n| all[..=n].iter().map(|s| s.to_string()).collect())
}

/// The commands `berth warm` runs for a job in its own image: resolve and download what the
/// dependency files name into the tools' caches, without installing the project or running
/// anything else. Each step says what it resolves first.
pub fn warm_script(tools: &BTreeSet<Tool>, files: &[String]) -> Vec<String> {
    let requirements: Vec<&String> = files
        .iter()
        .filter(|f| {
            let name = f.rsplit('/').next().unwrap_or(f);
            (name.ends_with(".txt") || name.ends_with(".in")) && !name.starts_with("constraints")
        })
        .collect();
    let constraints: String = files
        .iter()
        .filter(|f| f.starts_with("constraints"))
        .map(|f| format!(" -c {f}"))
        .collect();
    let has = |name: &str| files.iter().any(|f| f == name);
    let mut script = Vec::new();
    for tool in tools {
        match tool {
            Tool::Pip => {
                let wheels = format!("{}/wheels", Tool::Pip.dir());
                script.push(format!("mkdir -p {wheels}"));
                for r in &requirements {
                    script.push(format!("echo 'berth warm: resolving {r} with pip'"));
                    script.push(format!("pip download -d {wheels} -r {r}{constraints}"));
                }
                if requirements.is_empty() && (has("pyproject.toml") || has("setup.py")) {
                    // The project's own dependencies, built or downloaded as wheels.
                    script.push("echo 'berth warm: resolving the project with pip'".into());
                    script.push(format!("pip wheel -w {wheels}{constraints} ."));
                } else if requirements.is_empty() {
                    script.push(
                        "echo 'berth warm: no requirements file or pyproject.toml: nothing for pip to resolve'"
                            .into(),
                    );
                }
            }
            Tool::Uv => {
                if has("uv.lock") {
                    script.push("echo 'berth warm: resolving uv.lock with uv'".into());
                    // Into a throwaway environment: only the cache is kept.
                    script.push(
                        "UV_PROJECT_ENVIRONMENT=/tmp/berth-warm-venv uv sync --frozen --no-install-project"
                            .into(),
                    );
                } else {
                    script.push("uv venv /tmp/berth-warm-venv".into());
                    for r in &requirements {
                        script.push(format!("echo 'berth warm: resolving {r} with uv'"));
                        script.push(format!(
                            "uv pip install --python /tmp/berth-warm-venv -r {r}{constraints}"
                        ));
                    }
                }
            }
            Tool::Poetry => {
                script.push("echo 'berth warm: resolving poetry.lock with poetry'".into());
                script.push("poetry install --no-root --no-interaction".into());
            }
            Tool::Pipenv => {
                script.push("echo 'berth warm: resolving Pipfile.lock with pipenv'".into());
                // With the dev packages, as `pipenv install` does; then the lock's wheels into a
                // wheelhouse, the index of an offline run (pip's HTTP cache needs the index).
                let wheels = format!("{}/wheels", Tool::Pipenv.dir());
                script.push("pipenv sync --dev".into());
                // An index over plain HTTP is one the Pipfile trusts (pipenv refuses it otherwise),
                // but its requirements do not say so: pip is told.
                script.push(
                    "pipenv requirements --dev --hash | sed 's#^-i http://\\([^/:]*\\)\\(.*\\)#-i http://\\1\\2\\n--trusted-host \\1#' > /tmp/berth-warm-requirements.txt"
                        .into(),
                );
                // An option before `download`: this pip is pipenv's, not a pip job of its own
                // (detected as one, it would mount pip's volume and its PIP_CACHE_DIR too).
                script.push(format!(
                    "pipenv run pip --disable-pip-version-check download -d {wheels} -r /tmp/berth-warm-requirements.txt"
                ));
            }
            Tool::Pdm => {
                script.push("echo 'berth warm: resolving pdm.lock with pdm'".into());
                script.push("pdm sync --no-self".into());
            }
        }
    }
    script
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmds(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn detects_install_commands_only() {
        let tools = detect(&cmds(&[
            "python3 -m venv /tmp/v && /tmp/v/bin/pip install -r requirements.txt",
            "pytest -q",
        ]));
        assert_eq!(tools, BTreeSet::from([Tool::Pip]));
        assert_eq!(
            detect(&cmds(&["python -m pip install ."])),
            BTreeSet::from([Tool::Pip])
        );
        assert_eq!(
            detect(&cmds(&["pip3.11 install x"])),
            BTreeSet::from([Tool::Pip])
        );
        assert_eq!(
            detect(&cmds(&[
                "uv sync --frozen; poetry install",
                "pipenv sync",
                "pdm install"
            ])),
            BTreeSet::from([Tool::Uv, Tool::Poetry, Tool::Pipenv, Tool::Pdm])
        );
        assert!(detect(&cmds(&["pip list", "pipx install black", "make"])).is_empty());
    }

    #[test]
    fn keys_follow_lockfiles_and_images() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("requirements.txt"), "pytest==8.3.3\n").unwrap();
        std::fs::write(dir.path().join("README.md"), "not a dependency file").unwrap();
        std::fs::create_dir(dir.path().join("requirements")).unwrap();
        std::fs::write(
            dir.path().join("requirements/dev.txt"),
            "-r ../requirements.txt\n",
        )
        .unwrap();
        let files = dependency_files(dir.path());
        assert_eq!(files, vec!["requirements.txt", "requirements/dev.txt"]);
        let k1 = key(Tool::Pip, "sha256:a", dir.path(), &files);
        assert!(k1.starts_with("python-pip-"), "{k1}");
        assert_eq!(k1, key(Tool::Pip, "sha256:a", dir.path(), &files));
        assert_ne!(
            k1,
            key(Tool::Pip, "sha256:b", dir.path(), &files),
            "another image"
        );
        assert_ne!(
            k1,
            key(Tool::Uv, "sha256:a", dir.path(), &files),
            "another tool"
        );
        std::fs::write(dir.path().join("requirements.txt"), "pytest==8.3.4\n").unwrap();
        assert_ne!(
            k1,
            key(Tool::Pip, "sha256:a", dir.path(), &files),
            "a changed lockfile"
        );
    }

    #[test]
    fn job_variables_win_and_the_switch_turns_it_off() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = RunScope {
            project: dir.path(),
            run_id: "r1",
            temporary: false,
            offline: true,
            scripted: true,
        };
        let tools = BTreeSet::from([Tool::Pip, Tool::Uv]);
        let env = vec![("UV_CACHE_DIR".to_string(), "/mine".to_string())];
        let c = for_job(&tools, "sha256:x", &env, &ctx);
        // pip's, uv's at the job's own UV_CACHE_DIR, and the recorded index pip asks offline.
        let paths: Vec<&str> = c.mounts.iter().map(|m| m.path.as_str()).collect();
        assert_eq!(
            paths,
            ["/var/cache/berth/pip", "/mine", "/var/cache/berth/index"]
        );
        assert_eq!(c.own_dirs, ["/mine"]);
        assert_eq!(
            c.mounts[0].bind("/builds/p"),
            format!("{}:/var/cache/berth/pip", c.mounts[0].volume)
        );
        let get = |n: &str| c.env.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
        assert_eq!(get("PIP_CACHE_DIR"), Some("/var/cache/berth/pip/cache"));
        assert_eq!(get("PIP_NO_INDEX"), None, "the proxy is pip's index");
        assert_eq!(get("PIP_INDEX_URL"), Some("http://127.0.0.1:47831/i/0/"));
        assert_eq!(
            get("BERTH_INDEX_UPSTREAMS"),
            Some("https://pypi.org/simple")
        );
        assert!(
            c.prelude[0].contains("index_proxy.py serve replay"),
            "{:?}",
            c.prelude
        );
        assert_eq!(get("UV_OFFLINE"), Some("1"));
        assert_eq!(get("UV_CACHE_DIR"), None, "the job's own setting stays");
        let off = vec![(SWITCH.to_string(), "false".to_string())];
        assert!(for_job(&tools, "sha256:x", &off, &ctx).mounts.is_empty());
    }

    #[test]
    fn poetry_keeps_its_virtualenvs_out_of_the_volume_and_offline_is_explained() {
        let dir = tempfile::tempdir().unwrap();
        let mut ctx = RunScope {
            project: dir.path(),
            run_id: "r1",
            temporary: false,
            offline: false,
            scripted: true,
        };
        let tools = BTreeSet::from([Tool::Poetry]);
        let online = for_job(&tools, "sha256:x", &[], &ctx);
        let get =
            |c: &JobCaches, n: &str| c.env.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
        assert_eq!(
            get(&online, "POETRY_CACHE_DIR").as_deref(),
            Some("/var/cache/berth/poetry")
        );
        let venvs = get(&online, "POETRY_VIRTUALENVS_PATH").unwrap();
        assert!(!venvs.starts_with(MOUNT_ROOT), "{venvs}");
        assert!(online.notes.is_empty());

        ctx.offline = true;
        let offline = for_job(&tools, "sha256:x", &[], &ctx);
        assert_eq!(offline.notes.len(), 1);
        assert!(
            offline.notes[0].contains("berth warm"),
            "{:?}",
            offline.notes
        );
        // pdm asks the proxy (PDM_PYPI_URL) offline, unless the project names its own sources.
        let pdm = for_job(&BTreeSet::from([Tool::Pdm]), "sha256:x", &[], &ctx);
        assert!(pdm.notes.is_empty(), "{:?}", pdm.notes);
        std::fs::write(
            dir.path().join("pyproject.toml"),
            "[[tool.pdm.source]]\nname = \"pypi\"\nurl = \"http://pypi/simple/\"\n",
        )
        .unwrap();
        let pdm = for_job(&BTreeSet::from([Tool::Pdm]), "sha256:x", &[], &ctx);
        assert!(
            pdm.notes.len() == 1 && pdm.notes[0].starts_with("pdm has no offline mode"),
            "{:?}",
            pdm.notes
        );
        // pip and uv install from their caches alone: nothing to explain.
        let others = BTreeSet::from([Tool::Pip, Tool::Uv]);
        assert!(for_job(&others, "sha256:x", &[], &ctx).notes.is_empty());
    }

    #[test]
    fn warm_scripts_download_what_the_files_name() {
        let files = cmds(&["constraints.txt", "requirements.txt", "uv.lock"]);
        let pip = warm_script(&BTreeSet::from([Tool::Pip]), &files);
        assert!(pip.iter().any(|c| {
            c
            == "pip download -d /var/cache/berth/pip/wheels -r requirements.txt -c constraints.txt"
        }));
        let uv = warm_script(&BTreeSet::from([Tool::Uv]), &files);
        assert!(uv.iter().any(|c| c.contains("uv sync --frozen")));
        // What berth warm runs is detected as the same tools, so it fills the same volumes.
        assert_eq!(detect(&pip), BTreeSet::from([Tool::Pip]));
        assert_eq!(detect(&uv), BTreeSet::from([Tool::Uv]));
    }

    #[test]
    fn pipenv_offline_installs_from_the_wheelhouse_its_warm_fills() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = RunScope {
            project: dir.path(),
            run_id: "r1",
            temporary: false,
            offline: true,
            scripted: true,
        };
        let tools = BTreeSet::from([Tool::Pipenv]);
        let c = for_job(&tools, "sha256:x", &[], &ctx);
        let get = |n: &str| c.env.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
        assert_eq!(get("PIP_NO_INDEX"), Some("1"));
        assert_eq!(
            get("PIP_FIND_LINKS"),
            Some("/var/cache/berth/pipenv/wheels")
        );
        assert!(c.notes.is_empty(), "{:?}", c.notes);
        let warm = warm_script(&tools, &cmds(&["Pipfile", "Pipfile.lock"]));
        assert!(warm.iter().any(|l| l == "pipenv sync --dev"), "{warm:?}");
        assert!(
            warm.iter()
                .any(|l| l.contains("download -d /var/cache/berth/pipenv/wheels")),
            "{warm:?}"
        );
        assert_eq!(detect(&warm), tools);
    }

    #[test]
    fn warm_runs_the_job_up_to_its_last_install() {
        let before = cmds(&["python -m pip install --upgrade pip", "pip install pdm"]);
        let script = cmds(&["pdm install", "pdm run pytest -q", "pdm build"]);
        assert_eq!(
            warm_commands(&before, &script),
            Some(cmds(&[
                "python -m pip install --upgrade pip",
                "pip install pdm",
                "pdm install"
            ]))
        );
        // `uv run` installs, unless a `uv sync` did already; `uv lock` changes files, never run.
        let uv = cmds(&["pip install uv", "uv sync", "uv run pytest"]);
        assert_eq!(warm_commands(&[], &uv), Some(uv[..2].to_vec()));
        assert_eq!(
            warm_commands(&[], &cmds(&["uv run pytest"])),
            Some(cmds(&["uv run pytest"]))
        );
        assert_eq!(
            warm_commands(&[], &cmds(&["uv lock", "poetry add x"])),
            None
        );
        assert!(installs("pipx run nox -s tests", false));
        assert!(installs("cd sub && python3 -m pip install -e .", false));
        assert!(!installs("pip list", false));
    }

    #[test]
    fn the_proxy_forwards_to_the_jobs_own_indexes_while_warming() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = RunScope {
            project: dir.path(),
            run_id: "r1",
            temporary: false,
            offline: false,
            scripted: true,
        };
        let tools = BTreeSet::from([Tool::Pip, Tool::Pdm]);
        let env = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        // An ordinary online run: no proxy.
        let plain = for_job(&tools, "sha256:x", &env(&[]), &ctx);
        assert!(plain.prelude.is_empty() && plain.files.is_empty());
        let job = env(&[
            (WARM, "1"),
            ("PIP_INDEX_URL", "https://u:p@mirror.example/simple/"),
            ("PIP_EXTRA_INDEX_URL", "https://extra.example/simple"),
            ("PIP_CACHE_DIR", ".cache/pip"),
            ("CI_PROJECT_DIR", "/builds/shop"),
        ]);
        let c = for_job(&tools, "sha256:x", &job, &ctx);
        let get = |n: &str| c.env.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
        assert_eq!(get("PIP_INDEX_URL"), Some("http://127.0.0.1:47831/i/0/"));
        assert_eq!(
            get("PIP_EXTRA_INDEX_URL"),
            Some("http://127.0.0.1:47831/i/1/")
        );
        assert_eq!(get("PDM_PYPI_URL"), Some("http://127.0.0.1:47831/i/2/"));
        assert_eq!(
            get("BERTH_INDEX_UPSTREAMS"),
            Some("https://u:p@mirror.example/simple/ https://extra.example/simple https://pypi.org/simple")
        );
        assert!(c.prelude[0].contains("serve record"), "{:?}", c.prelude);
        assert_eq!(c.files[0].0, "/berth/index_proxy.py");
        // The job's own PIP_CACHE_DIR gets berth's volume, in its workspace.
        assert_eq!(c.own_dirs, ["/builds/shop/.cache/pip"]);
        assert_eq!(get("PIP_CACHE_DIR"), None, "the job's own stays");
        // A job of steps keeps the wheelhouse: no proxy there.
        let steps = RunScope {
            scripted: false,
            ..ctx
        };
        assert!(for_job(&tools, "sha256:x", &job, &steps).prelude.is_empty());
    }
}
