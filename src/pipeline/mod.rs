//! The pipeline as berth runs it, whatever file it came from: stages, jobs and what each job
//! needs (image, scripts, variables, caches, artifacts, services), validated. A format's reader
//! ([`crate::gitlab`]) makes it; the plan and the engine consume it. Nothing here reads YAML or
//! touches Docker.

pub mod expand;
pub mod globs;
pub mod steps;

use std::collections::HashMap;
use std::time::Duration;

use serde::Serialize;

use crate::source::diag::{Diagnostic, SourceMap};
use crate::source::yaml::Span;

/// How a format builds one job's environment (its predefined variables and precedence), so
/// that the engine needs to know no format.
pub trait JobEnvironment: Send + Sync + std::fmt::Debug {
    /// The job's variables in the order they are set, values expanded.
    fn job_env(
        &self,
        job: &Job,
        job_id: u64,
        dotenv: &[(String, String)],
        overrides: &[(String, String)],
    ) -> Vec<(String, String)>;

    /// How the project reaches the job's workspace, given its environment (`job_env`'s).
    fn checkout(&self, job: &Job, env: &[(String, String)]) -> Checkout {
        let _ = (job, env);
        Checkout::Files
    }

    /// How a job waits for its services: the format's runner's way.
    fn service_wait(&self) -> ServiceWait {
        ServiceWait::Ready
    }
}

/// How a job waits for its services before its script.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ServiceWait {
    /// Healthy when it has a health check, else every TCP port open; a service that is not
    /// ready in time fails the job (GitHub's runner).
    #[default]
    Ready,
    /// GitLab Runner's: a TCP connection to `HEALTHCHECK_TCP_PORT`, else to any of the first
    /// 20 ports the image exposes; a service that is not ready in time is a warning in the
    /// job's log, and the job runs.
    AnyPort,
}

/// What a job's workspace holds when it starts (before the artifacts it receives).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Checkout {
    /// The project's files as a checkout has them, with no repository.
    Files,
    /// The files over a repository of the pipeline's commit (when the project is one).
    Repository(crate::project::checkout::Repository),
    /// Nothing (GitLab's `GIT_STRATEGY: none` or `empty`).
    Empty,
}

#[derive(Debug, Clone, Serialize)]
pub struct Pipeline {
    pub stages: Vec<String>,
    /// Global variables, then those a `workflow` rule set (which win).
    pub variables: Vec<Variable>,
    /// Jobs in file order (hidden jobs and templates are not jobs); parallel jobs expanded.
    pub jobs: Vec<Job>,
    /// Jobs the file defines that `rules`, `only` or `except` left out, and why.
    pub left_out: Vec<LeftOut>,
    /// `workflow: name`, expanded.
    pub name: Option<String>,
    /// `hermetic: true` (berth's own key): run as with `--hermetic`.
    pub hermetic: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct LeftOut {
    pub name: String,
    pub reason: String,
}

impl Pipeline {
    /// Each stage's position, by name.
    pub fn stage_index(&self) -> HashMap<&str, usize> {
        self.stages
            .iter()
            .enumerate()
            .map(|(i, s)| (s.as_str(), i))
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Variable {
    pub name: String,
    pub value: String,
    /// `expand: false` keeps `$` in the value literal.
    pub expand: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Job {
    pub name: String,
    #[serde(skip)]
    pub span: Span,
    pub stage: String,
    #[serde(skip)]
    pub stage_span: Span,
    pub image: Option<Image>,
    pub before_script: Vec<String>,
    pub script: Vec<String>,
    pub after_script: Vec<String>,
    pub variables: Vec<Variable>,
    /// `None`: the job follows stage order. `Some`: it starts when these are done (DAG).
    pub needs: Option<Vec<Need>>,
    pub allow_failure: AllowFailure,
    pub timeout: Option<Duration>,
    pub retry: u32,
    pub when: When,
    pub artifacts: Option<Artifacts>,
    /// `dependencies`: whose artifacts the job receives (`None`: GitLab's default).
    pub dependencies: Option<Vec<Need>>,
    pub caches: Vec<Cache>,
    pub services: Vec<Service>,
    /// `when: delayed`: how long to wait before starting.
    pub start_in: Option<Duration>,
    /// Why the job was created (the rule that matched), for `berth plan`.
    pub reason: Option<String>,
    pub environment: Option<Environment>,
    /// A trigger job starts a pipeline instead of running a script.
    pub trigger: Option<Trigger>,
    /// The name before `parallel` expanded it (`build` for `build 1/3`).
    pub base_name: String,
    /// `inherit: variables`: which global variables the job gets (`None`: all).
    pub inherit_variables: Option<Vec<String>>,
    /// A job of steps decided one after another (GitHub's) instead of a script.
    #[serde(skip)]
    pub steps: Option<std::sync::Arc<dyn steps::Steps>>,
    /// Jobs made when its needs have ended, run in its place (see [`steps::Expand`]).
    #[serde(skip)]
    pub expand: Option<std::sync::Arc<dyn steps::Expand>>,
    /// What the file says of the job beyond the model, for `berth plan` (GitHub's).
    #[serde(skip)]
    pub origin: Option<JobOrigin>,
    /// How the job's container is made beyond its image (GitHub's `container: options` and
    /// `volumes`).
    pub container: ContainerOptions,
    /// Credentials for pulling the job's image when it is not present.
    #[serde(skip)]
    pub credentials: Option<Credentials>,
    /// How the job reaches its services.
    pub service_network: ServiceNetwork,
}

/// How a job reaches its services.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ServiceNetwork {
    /// On a network of the job's own, by alias (GitLab's, and GitHub's `container:` jobs).
    #[default]
    Aliases,
    /// In the job container's network namespace, at `localhost` (GitHub's jobs on a runner,
    /// which reach their services at `localhost:<port>`).
    Localhost,
}

/// How a container is made beyond its image, command and environment: what GitHub's
/// `options:` (docker-create flags) and `volumes:` say that the engine can do.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ContainerOptions {
    pub health: Option<HealthCheck>,
    pub user: Option<String>,
    pub hostname: Option<String>,
    pub working_dir: Option<String>,
    /// CPUs in billionths (`--cpus 1.5` is 1_500_000_000).
    pub nano_cpus: Option<i64>,
    /// Bytes.
    pub memory: Option<i64>,
    /// Bytes of `/dev/shm`.
    pub shm_size: Option<i64>,
    pub privileged: bool,
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    /// `--tmpfs PATH[:OPTIONS]`: path and mount options.
    pub tmpfs: Vec<(String, String)>,
    pub mounts: Vec<Mount>,
}

/// A health check the engine runs in the container; berth waits until it passes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HealthCheck {
    /// Run by the container's shell (`--health-cmd`); `None`: the image's own, if it has one.
    pub command: Option<String>,
    /// `--no-healthcheck`: none, not even the image's.
    pub disabled: bool,
    pub interval: Option<Duration>,
    pub timeout: Option<Duration>,
    pub start_period: Option<Duration>,
    pub retries: Option<u32>,
}

/// A volume or a directory of the project mounted in a container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mount {
    /// A named volume, made for the job and removed after it (shared by its containers).
    Volume {
        name: String,
        target: String,
        read_only: bool,
    },
    /// A directory of the project, relative to it (`.` for the project itself).
    Bind {
        source: String,
        target: String,
        read_only: bool,
    },
    /// A fresh anonymous volume at `target`.
    Anonymous { target: String },
}

/// A registry user and password for pulling an image.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"***")
            .finish()
    }
}

/// A port of a service: where it listens, and the port GitHub would publish it on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Port {
    pub container: u16,
    /// `None`: any free port (GitHub's `ports: [6379]`).
    pub host: Option<u16>,
}

/// Where a job came from in a format whose jobs are not the model's one for one (a GitHub
/// job is one pipeline job per matrix combination).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct JobOrigin {
    /// The file it is defined in.
    pub file: String,
    /// Its id in the file (`needs:` names it so).
    pub id: String,
    /// The ids of the jobs it needs.
    pub needs: Vec<String>,
    /// Its matrix combination, values as the format renders them; `None` without a matrix.
    pub matrix: Option<serde_json::Value>,
    /// Its `if:` as written.
    pub condition: Option<String>,
    /// A failure cancels the other jobs of the same id (GitHub's `strategy.fail-fast`, true by
    /// default for a matrix).
    pub fail_fast: bool,
    /// At most this many jobs of the same id run at once (GitHub's `strategy.max-parallel`).
    pub max_parallel: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Environment {
    pub name: String,
    pub url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// `trigger: include:` local files: a child pipeline berth runs.
    Child {
        files: Vec<String>,
        /// `strategy: depend`: the trigger job mirrors the child's result.
        depend: bool,
    },
    /// Another project's pipeline, or a remote include: nothing to run locally.
    Other { what: String },
}

/// A sidecar container started before the job on a network of its own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Service {
    pub image: String,
    /// Names the job reaches it by (GitLab's defaults from the image name when none is given).
    pub aliases: Vec<String>,
    pub entrypoint: Option<Vec<String>>,
    pub command: Option<Vec<String>>,
    pub variables: Vec<Variable>,
    /// The ports it serves (GitHub's `ports:`); waited on with the image's declared ones.
    pub ports: Vec<Port>,
    pub options: ContainerOptions,
    /// Credentials for pulling its image when it is not present.
    #[serde(skip)]
    pub credentials: Option<Credentials>,
}

impl Service {
    /// GitLab's default aliases: the image name without tag or digest, with `/` replaced by
    /// `__` and by `-` (`postgres:16` → `postgres`; `tutum/wordpress` → `tutum__wordpress`,
    /// `tutum-wordpress`).
    pub fn default_aliases(image: &str) -> Vec<String> {
        let without_digest = image.split('@').next().unwrap_or(image);
        let last_slash = without_digest.rfind('/').map(|i| i + 1).unwrap_or(0);
        let name = match without_digest[last_slash..].rfind(':') {
            Some(i) => &without_digest[..last_slash + i],
            None => without_digest,
        };
        let mut aliases = vec![name.replace('/', "__"), name.replace('/', "-")];
        aliases.dedup();
        aliases
    }
}

/// A dependency cache: directories kept between runs, found again by key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cache {
    pub key: CacheKey,
    /// Directories relative to the project directory.
    pub paths: Vec<String>,
    pub policy: CachePolicy,
    /// For which outcome of the job the cache is saved.
    pub when: CacheWhen,
    /// Keys restored from, in order, when the key has no cache yet (`$VAR`s expanded).
    pub fallback_keys: Vec<String>,
    /// Also the files git does not track in the project directory.
    pub untracked: bool,
}

impl Cache {
    /// A cache of `paths` under `key`, saved as GitLab's default does (pull-push, on success).
    pub fn new(key: CacheKey, paths: Vec<String>) -> Cache {
        Cache {
            key,
            paths,
            policy: CachePolicy::PullPush,
            when: CacheWhen::OnSuccess,
            fallback_keys: Vec::new(),
            untracked: false,
        }
    }
}

/// `cache: when`: GitLab's rule for saving a cache (which `artifacts: when` shares).
pub type CacheWhen = ArtifactsWhen;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CacheKey {
    /// A key as written; `$VAR` references are expanded with the job's variables.
    Text(String),
    /// A hash of these files' contents, after an optional prefix.
    Files {
        files: Vec<String>,
        prefix: Option<String>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CachePolicy {
    Pull,
    Push,
    PullPush,
}

/// What a job keeps after it ends, for later jobs and for the user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Artifacts {
    /// Paths and globs relative to the project directory.
    pub paths: Vec<String>,
    pub exclude: Vec<String>,
    /// Also every file git does not track (what the job created or left untracked).
    pub untracked: bool,
    pub when: ArtifactsWhen,
    pub name: Option<String>,
    /// `reports: dotenv`: files of `KEY=VALUE` lines whose variables later jobs receive.
    pub dotenv: Vec<String>,
    /// `reports`: files kept whatever the job's result, by report type (dotenv's too).
    pub reports: Vec<Report>,
}

impl Artifacts {
    /// What a job that `passed` (or failed) keeps: its `paths` when `when` says so, and its
    /// reports whatever its result, as GitLab uploads them; `None` when nothing.
    pub fn kept(&self, passed: bool) -> Option<Artifacts> {
        let mut kept = self.clone();
        if !self.when.keeps(passed) {
            kept.paths.clear();
            kept.untracked = false;
        }
        for report in &self.reports {
            for path in &report.paths {
                if !kept.paths.contains(path) {
                    kept.paths.push(path.clone());
                }
            }
        }
        (!kept.paths.is_empty() || kept.untracked).then_some(kept)
    }

    /// The paths and globs of its JUnit reports.
    pub fn junit(&self) -> Vec<String> {
        self.reports
            .iter()
            .filter(|r| r.is_junit())
            .flat_map(|r| r.paths.clone())
            .collect()
    }
}

/// One type of `artifacts: reports`: its files (paths and globs relative to the project).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// GitLab's name for it: `junit`, `coverage_report`, `codequality`, ...
    pub kind: String,
    pub paths: Vec<String>,
}

impl Report {
    /// JUnit XML test results, which the run's summary shows.
    pub fn is_junit(&self) -> bool {
        self.kind == "junit"
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ArtifactsWhen {
    OnSuccess,
    OnFailure,
    Always,
}

impl ArtifactsWhen {
    /// Are artifacts kept for a job that passed (`true`) or failed (`false`)?
    pub fn keeps(self, passed: bool) -> bool {
        match self {
            ArtifactsWhen::OnSuccess => passed,
            ArtifactsWhen::OnFailure => !passed,
            ArtifactsWhen::Always => true,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Need {
    pub job: String,
    #[serde(skip)]
    pub span: Span,
    pub artifacts: bool,
    pub optional: bool,
    /// `parallel: matrix` in a need: the instances' names it narrows to.
    #[serde(skip)]
    pub instances: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AllowFailure {
    No,
    Yes,
    /// Only these exit codes are allowed to fail.
    ExitCodes(Vec<i64>),
}

impl AllowFailure {
    pub fn allows(&self, exit_code: Option<i64>) -> bool {
        match self {
            AllowFailure::No => false,
            AllowFailure::Yes => true,
            AllowFailure::ExitCodes(codes) => exit_code.is_some_and(|c| codes.contains(&c)),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Image {
    /// An image reference; `entrypoint` overrides the image's own (`[""]` clears it).
    Name {
        name: String,
        entrypoint: Option<Vec<String>>,
    },
    /// A directory with a Dockerfile that berth builds and tags by content.
    Build {
        context: String,
        dockerfile: Option<String>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum When {
    OnSuccess,
    OnFailure,
    Always,
    Manual,
    Delayed,
    Never,
}

impl When {
    pub fn as_str(self) -> &'static str {
        match self {
            When::OnSuccess => "on_success",
            When::OnFailure => "on_failure",
            When::Always => "always",
            When::Manual => "manual",
            When::Delayed => "delayed",
            When::Never => "never",
        }
    }
}

/// The result of reading a pipeline: the model and any warnings, or every error found.
#[derive(Debug)]
pub struct Loaded {
    pub pipeline: Pipeline,
    pub warnings: Vec<Diagnostic>,
    /// Every file read (the main one first), for messages.
    pub sources: SourceMap,
    /// `workflow: rules` refused to create the pipeline: why.
    pub refused: Option<String>,
    /// Which format it was read from.
    pub format: Format,
    /// What the reader decided beyond the jobs, for `berth plan` (which workflows an event
    /// triggers, and why).
    pub notes: Vec<String>,
    /// What the pipeline takes from elsewhere, pinned: each remote action's `uses:` and the
    /// commit it runs at, for the run's record.
    pub pins: Vec<(String, String)>,
}

/// The pipeline formats berth reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    #[default]
    GitLab,
    GitHub,
}

/// Reading failed: every diagnostic (errors first), and the files they point into.
#[derive(Debug)]
pub struct Failed {
    pub diagnostics: Vec<Diagnostic>,
    pub sources: SourceMap,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_are_kept_whatever_the_result_paths_as_when_says() {
        let a = Artifacts {
            paths: vec!["dist/".into()],
            exclude: Vec::new(),
            untracked: false,
            when: ArtifactsWhen::OnSuccess,
            name: None,
            dotenv: Vec::new(),
            reports: vec![Report {
                kind: "junit".into(),
                paths: vec!["report.xml".into()],
            }],
        };
        assert_eq!(a.kept(true).unwrap().paths, vec!["dist/", "report.xml"]);
        assert_eq!(a.kept(false).unwrap().paths, vec!["report.xml"]);
        assert_eq!(a.junit(), vec!["report.xml"]);
        let no_reports = Artifacts {
            reports: Vec::new(),
            ..a
        };
        assert_eq!(no_reports.kept(false), None);
    }
}
