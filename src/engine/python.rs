//! Zero-config Python dependency caches. A job whose commands install Python packages (pip, uv,
//! poetry, pipenv, pdm) gets one named volume per tool, mounted outside the workspace, with the
//! tool's cache variables pointing into it. The key hashes the project's dependency files and the
//! job's image ID, so a changed lockfile, another Python or another platform never shares a
//! cache. `berth warm` fills the same volumes ahead of time ([`warm_script`]); the wheelhouses of
//! pip and pipenv and uv's offline mode let a job with no network install from them; poetry and
//! pdm have no offline mode and install from their caches only while the index pages they cached
//! are fresh (berth says so).

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
            // pip's HTTP cache needs an index to answer: offline, the wheelhouse that
            // `berth warm` fills is the index.
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

/// The Python package tools a job's commands use to install something.
pub fn detect<'a>(commands: impl IntoIterator<Item = &'a String>) -> BTreeSet<Tool> {
    let mut tools = BTreeSet::new();
    for command in commands {
        // Words of each simple command: `a && b; c | d` are three commands.
        for part in command.split(['\n', ';', '&', '|', '(', ')']) {
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
                let tool = match base {
                    _ if is_pip && matches!(next, "install" | "download" | "wheel") => {
                        Some(Tool::Pip)
                    }
                    _ if module_pip => matches!(
                        words.get(i + 3).copied(),
                        Some("install" | "download" | "wheel")
                    )
                    .then_some(Tool::Pip),
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
    let mut h = Sha256::new();
    h.update(tool.name().as_bytes());
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
    format!(
        "python-{}-{}",
        tool.name(),
        &hex::encode(h.finalize())[..16]
    )
}

/// What the automatic caches add to one job: its volumes and its variables.
#[derive(Debug, Default)]
pub struct JobCaches {
    pub mounts: Vec<Mount>,
    pub env: Vec<(String, String)>,
    /// What the user should know about these caches in this run.
    pub notes: Vec<String>,
}

/// Everything [`for_job`] needs to know about the run.
pub struct RunScope<'a> {
    pub project: &'a Path,
    pub run_id: &'a str,
    /// `--no-cache`: throwaway volumes.
    pub temporary: bool,
    /// `--network none`: tell the tools to stay offline.
    pub offline: bool,
}

/// The volumes and variables for a job using `tools` in an image with `image_id`. Variables the
/// job sets itself win; `BERTH_PYTHON_CACHE=false` in its variables turns it all off.
pub fn for_job(
    tools: &BTreeSet<Tool>,
    image_id: &str,
    job_env: &[(String, String)],
    ctx: &RunScope,
) -> JobCaches {
    let set = |name: &str| job_env.iter().any(|(k, _)| k == name);
    let off = job_env.iter().any(|(k, v)| {
        k == SWITCH
            && matches!(
                v.to_ascii_lowercase().as_str(),
                "0" | "false" | "no" | "off"
            )
    });
    let mut out = JobCaches::default();
    if off || tools.is_empty() {
        return out;
    }
    let files = dependency_files(ctx.project);
    for &tool in tools {
        let key = key(tool, image_id, ctx.project, &files);
        let path = tool.dir();
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
            format!("berth-tmpcache-{}-{}", ctx.run_id, tool.name())
        } else {
            super::caches::volume_name(ctx.project, &key, &path)
        };
        out.mounts.push(Mount {
            volume,
            key,
            path,
            read_only: false,
            // pip's and uv's caches are safe to share between concurrent processes (atomic
            // writes, uv locks its own): parallel jobs need not queue for them.
            shared: true,
            labels,
            copy: None,
        });
        let offline = if ctx.offline {
            out.notes.extend(tool.offline_note().map(str::to_string));
            tool.offline_env()
        } else {
            Vec::new()
        };
        for (name, value) in tool.env().into_iter().chain(offline) {
            if !set(name) && !out.env.iter().any(|(k, _)| k == name) {
                out.env.push((name.to_string(), value));
            }
        }
    }
    out
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
        };
        let tools = BTreeSet::from([Tool::Pip, Tool::Uv]);
        let env = vec![("UV_CACHE_DIR".to_string(), "/mine".to_string())];
        let c = for_job(&tools, "sha256:x", &env, &ctx);
        assert_eq!(c.mounts.len(), 2);
        assert_eq!(c.mounts[0].path, "/var/cache/berth/pip");
        assert_eq!(
            c.mounts[0].bind("/builds/p"),
            format!("{}:/var/cache/berth/pip", c.mounts[0].volume)
        );
        let get = |n: &str| c.env.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
        assert_eq!(get("PIP_CACHE_DIR"), Some("/var/cache/berth/pip/cache"));
        assert_eq!(get("PIP_NO_INDEX"), Some("1"));
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
}
