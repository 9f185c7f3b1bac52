//! The pipeline file: from the YAML tree to a validated, typed model.
//!
//! Everything GitLab would refuse is an error [`Diagnostic`] with the line it is about; keys berth
//! reads but does not act on yet are warnings. Nothing here touches Docker.

pub mod duration;
pub mod expr;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use crate::diag::Diagnostic;
use crate::yaml::{self, Node, Span, Value};

/// The pipeline file's text and the name to show in messages.
#[derive(Debug, Clone)]
pub struct Source {
    pub path: PathBuf,
    pub name: String,
    pub text: String,
}

impl Source {
    /// Find the pipeline file of a project: `berth.yml`, else `.gitlab-ci.yml`.
    pub fn discover(project: &Path) -> Option<PathBuf> {
        ["berth.yml", ".gitlab-ci.yml"]
            .iter()
            .map(|n| project.join(n))
            .find(|p| p.is_file())
    }

    pub fn read(path: &Path) -> std::io::Result<Source> {
        let text = std::fs::read_to_string(path)?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| path.display().to_string());
        Ok(Source {
            path: path.to_path_buf(),
            name,
            text,
        })
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Pipeline {
    pub stages: Vec<String>,
    pub variables: Vec<Variable>,
    /// Jobs in file order (hidden jobs and templates are not jobs).
    pub jobs: Vec<Job>,
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
}

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
    Never,
}

impl When {
    pub fn as_str(self) -> &'static str {
        match self {
            When::OnSuccess => "on_success",
            When::OnFailure => "on_failure",
            When::Always => "always",
            When::Manual => "manual",
            When::Never => "never",
        }
    }
}

/// The result of reading a pipeline: the model and any warnings, or every error found.
#[derive(Debug)]
pub struct Loaded {
    pub pipeline: Pipeline,
    pub warnings: Vec<Diagnostic>,
}

/// Keys that are the pipeline's, not jobs.
const GLOBAL_KEYS: &[&str] = &[
    "stages",
    "types",
    "variables",
    "default",
    "image",
    "before_script",
    "after_script",
    "services",
    "cache",
    "include",
    "workflow",
];
/// Global keys GitLab has that berth reads but does not act on yet.
const GLOBAL_NOT_YET: &[&str] = &["include", "workflow"];

const JOB_KEYS: &[&str] = &[
    "stage",
    "image",
    "before_script",
    "script",
    "after_script",
    "variables",
    "needs",
    "allow_failure",
    "timeout",
    "retry",
    "when",
    "artifacts",
    "dependencies",
    "cache",
    "services",
];
/// Job keys that have no meaning on a local machine: accepted quietly.
const JOB_NO_LOCAL_MEANING: &[&str] = &[
    "tags",
    "interruptible",
    "coverage",
    "resource_group",
    "environment",
    "id_tokens",
    "secrets",
    "release",
    "pages",
    "dast_configuration",
    "identity",
];
/// GitLab job keys berth does not support yet: a warning each.
const JOB_NOT_YET: &[&str] = &[
    "extends",
    "rules",
    "only",
    "except",
    "parallel",
    "trigger",
    "inherit",
    "start_in",
    "hooks",
    "manual_confirmation",
    "run",
];
const DEFAULT_KEYS: &[&str] = &[
    "image",
    "before_script",
    "after_script",
    "variables",
    "timeout",
    "retry",
    "artifacts",
    "cache",
];
const DEFAULT_NOT_YET: &[&str] = &["services", "tags", "interruptible", "hooks", "id_tokens"];

/// Read and validate a pipeline. On failure, every diagnostic found (errors and warnings).
pub fn load(text: &str) -> Result<Loaded, Vec<Diagnostic>> {
    let root = yaml::parse(text).map_err(|e| {
        vec![Diagnostic::error(
            format!("invalid YAML: {}", e.message),
            Some(e.span),
        )]
    })?;
    let mut cx = Reader::default();
    let root = match resolve_references(&root, &root, 0) {
        Ok(root) => root,
        Err(d) => return Err(vec![d]),
    };
    let pipeline = cx.pipeline(&root);
    if cx.errors.is_empty() {
        if let Some(pipeline) = pipeline {
            return Ok(Loaded {
                pipeline,
                warnings: cx.warnings,
            });
        }
    }
    let mut all = cx.errors;
    all.extend(cx.warnings);
    Err(all)
}

/// Replace `!reference [job, key, ...]` tags with the node they name (nested ones too).
fn resolve_references(node: &Node, root: &Node, depth: usize) -> Result<Node, Diagnostic> {
    if depth > 10 {
        return Err(Diagnostic::error(
            "`!reference` nests more than 10 levels deep (is there a cycle?)",
            Some(node.span),
        ));
    }
    if node.tag.as_deref() == Some("!reference") {
        let path: Option<Vec<&str>> = node
            .as_seq()
            .map(|items| items.iter().map(|i| i.as_text()).collect())
            .unwrap_or(None);
        let path = path.filter(|p| !p.is_empty()).ok_or_else(|| {
            Diagnostic::error(
                "`!reference` needs a list of names, like `!reference [.setup, script]`",
                Some(node.span),
            )
        })?;
        let mut target = root;
        for (i, key) in path.iter().enumerate() {
            target = target.get(key).ok_or_else(|| {
                Diagnostic::error(
                    format!(
                        "`!reference [{}]` names `{}`, which does not exist",
                        path.join(", "),
                        path[..=i].join(".")
                    ),
                    Some(node.span),
                )
            })?;
        }
        return resolve_references(target, root, depth + 1);
    }
    let value = match &node.value {
        Value::Scalar { .. } => node.value.clone(),
        Value::Seq(items) => Value::Seq(
            items
                .iter()
                .map(|i| resolve_references(i, root, depth))
                .collect::<Result<_, _>>()?,
        ),
        Value::Map(entries) => Value::Map(
            entries
                .iter()
                .map(|e| {
                    Ok(yaml::Entry {
                        key: e.key.clone(),
                        key_span: e.key_span,
                        value: resolve_references(&e.value, root, depth)?,
                    })
                })
                .collect::<Result<_, Diagnostic>>()?,
        ),
    };
    Ok(Node {
        value,
        span: node.span,
        tag: node.tag.clone(),
    })
}

/// What `default:` (or the old global keywords) gives every job.
#[derive(Default)]
struct Defaults {
    image: Option<Image>,
    before_script: Option<Vec<String>>,
    after_script: Option<Vec<String>>,
    timeout: Option<Duration>,
    retry: Option<u32>,
    artifacts: Option<Artifacts>,
    caches: Option<Vec<Cache>>,
    services: Option<Vec<Service>>,
}

#[derive(Default)]
struct Reader {
    errors: Vec<Diagnostic>,
    warnings: Vec<Diagnostic>,
    job: Option<String>,
}

impl Reader {
    fn error(&mut self, message: impl Into<String>, span: Span) {
        let mut d = Diagnostic::error(message, Some(span));
        d.job = self.job.clone();
        self.errors.push(d);
    }

    fn error_help(&mut self, message: impl Into<String>, span: Span, help: impl Into<String>) {
        let mut d = Diagnostic::error(message, Some(span)).with_help(help);
        d.job = self.job.clone();
        self.errors.push(d);
    }

    fn warn(&mut self, message: impl Into<String>, span: Span) {
        let mut d = Diagnostic::warning(message, Some(span));
        d.job = self.job.clone();
        self.warnings.push(d);
    }

    fn expected(&mut self, what: &str, key: &str, node: &Node) {
        self.error(
            format!("`{key}` should be {what}, found {}", node.kind()),
            node.span,
        );
    }

    fn pipeline(&mut self, root: &Node) -> Option<Pipeline> {
        if root.is_null() {
            self.error("the pipeline file is empty", root.span);
            return None;
        }
        let Some(entries) = root.as_map() else {
            self.error(
                format!("a pipeline file should be a mapping, found {}", root.kind()),
                root.span,
            );
            return None;
        };

        let mut stages = match root.get("stages").or_else(|| root.get("types")) {
            Some(node) => self.string_list("stages", node).unwrap_or_default(),
            None => vec!["build".into(), "test".into(), "deploy".into()],
        };
        // GitLab always has .pre first and .post last.
        stages.retain(|s| s != ".pre" && s != ".post");
        stages.insert(0, ".pre".into());
        stages.push(".post".into());

        let mut variables = Vec::new();
        let mut defaults = Defaults::default();
        for key in [
            "image",
            "before_script",
            "after_script",
            "cache",
            "services",
        ] {
            if let Some(node) = root.get(key) {
                self.default_key(&mut defaults, &mut variables, key, node);
            }
        }
        if let Some(node) = root.get("variables") {
            variables.extend(self.variables(node));
        }
        if let Some(default) = root.get("default") {
            match default.as_map() {
                Some(entries) => {
                    for e in entries {
                        if DEFAULT_KEYS.contains(&e.key.as_str()) {
                            self.default_key(&mut defaults, &mut variables, &e.key, &e.value);
                        } else if DEFAULT_NOT_YET.contains(&e.key.as_str()) {
                            self.warn(
                                format!(
                                    "`default: {}` is not supported by berth yet; ignored",
                                    e.key
                                ),
                                e.key_span,
                            );
                        } else {
                            self.error(
                                format!("`default` has an unknown key `{}`", e.key),
                                e.key_span,
                            );
                        }
                    }
                }
                None if default.is_null() => {}
                None => self.expected("a mapping", "default", default),
            }
        }
        for e in entries {
            if GLOBAL_NOT_YET.contains(&e.key.as_str()) {
                self.warn(
                    format!(
                        "the global `{}` keyword is not supported by berth yet; ignored",
                        e.key
                    ),
                    e.key_span,
                );
            }
        }

        let mut jobs = Vec::new();
        for e in entries {
            if GLOBAL_KEYS.contains(&e.key.as_str()) || e.key.starts_with('.') {
                continue;
            }
            self.job = Some(e.key.clone());
            if let Some(job) = self.job_def(&e.key, e.key_span, &e.value, &defaults) {
                jobs.push(job);
            }
            self.job = None;
        }
        if jobs.is_empty() && self.errors.is_empty() {
            self.error("the pipeline has no jobs", root.span);
        }

        let pipeline = Pipeline {
            stages,
            variables,
            jobs,
        };
        self.check_graph(&pipeline);
        Some(pipeline)
    }

    fn default_key(
        &mut self,
        defaults: &mut Defaults,
        variables: &mut Vec<Variable>,
        key: &str,
        node: &Node,
    ) {
        match key {
            "image" => defaults.image = self.image(node),
            "before_script" => defaults.before_script = self.script("before_script", node),
            "after_script" => defaults.after_script = self.script("after_script", node),
            "timeout" => defaults.timeout = self.timeout(node),
            "retry" => defaults.retry = self.retry(node),
            "artifacts" => defaults.artifacts = self.artifacts(node),
            "cache" => defaults.caches = Some(self.caches(node)),
            "services" => defaults.services = Some(self.services(node)),
            "variables" => variables.extend(self.variables(node)),
            _ => {}
        }
    }

    fn job_def(&mut self, name: &str, span: Span, node: &Node, defaults: &Defaults) -> Option<Job> {
        let Some(entries) = node.as_map() else {
            self.error(
                format!(
                    "a job should be a mapping with a `script`, found {}",
                    node.kind()
                ),
                if node.is_null() { span } else { node.span },
            );
            return None;
        };
        let mut not_yet = Vec::new();
        for e in entries {
            let key = e.key.as_str();
            if JOB_KEYS.contains(&key) || JOB_NO_LOCAL_MEANING.contains(&key) {
                continue;
            }
            if JOB_NOT_YET.contains(&key) {
                self.warn(
                    format!("`{key}` is not supported by berth yet; ignored"),
                    e.key_span,
                );
                not_yet.push(key);
            } else {
                self.error_help(
                    format!("unknown key `{key}`"),
                    e.key_span,
                    format!("a job's keys are: {}", JOB_KEYS.join(", ")),
                );
            }
        }
        if node.get("trigger").is_some() && node.get("script").is_none() {
            // A trigger job has no script; it is reported and left out.
            return None;
        }

        let stage_span = node.get("stage").map(|n| n.span).unwrap_or(span);
        let stage = match node.get("stage") {
            Some(n) => match n.as_text() {
                Some(s) => s.to_string(),
                None => {
                    self.expected("a stage name", "stage", n);
                    return None;
                }
            },
            None => "test".to_string(),
        };
        let image = match node.get("image") {
            Some(n) => self.image(n),
            None => defaults.image.clone(),
        };
        let before_script = match node.get("before_script") {
            Some(n) => self.script("before_script", n).unwrap_or_default(),
            None => defaults.before_script.clone().unwrap_or_default(),
        };
        let after_script = match node.get("after_script") {
            Some(n) => self.script("after_script", n).unwrap_or_default(),
            None => defaults.after_script.clone().unwrap_or_default(),
        };
        let script = match node.get("script") {
            Some(n) => {
                let script = self.script("script", n).unwrap_or_default();
                if script.is_empty() {
                    self.error("`script` is empty", n.span);
                }
                script
            }
            None => {
                let mut help =
                    "every job runs a `script`: a command or a list of commands".to_string();
                if !not_yet.is_empty() {
                    help = format!(
                        "{help}; this job uses {}, which berth does not support yet",
                        not_yet
                            .iter()
                            .map(|k| format!("`{k}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    );
                }
                self.error_help("the job has no `script`", span, help);
                Vec::new()
            }
        };
        let variables = node
            .get("variables")
            .map(|n| self.variables(n))
            .unwrap_or_default();
        let needs = node.get("needs").and_then(|n| self.needs(n));
        let when = match node.get("when") {
            Some(n) => self.when(n).unwrap_or(When::OnSuccess),
            None => When::OnSuccess,
        };
        let allow_failure = match node.get("allow_failure") {
            Some(n) => self.allow_failure(n),
            // GitLab: manual jobs may fail without failing the pipeline.
            None if when == When::Manual => AllowFailure::Yes,
            None => AllowFailure::No,
        };
        let timeout = match node.get("timeout") {
            Some(n) => self.timeout(n),
            None => defaults.timeout,
        };
        let retry = match node.get("retry") {
            Some(n) => self.retry(n).unwrap_or(0),
            None => defaults.retry.unwrap_or(0),
        };
        let artifacts = match node.get("artifacts") {
            Some(n) => self.artifacts(n),
            None => defaults.artifacts.clone(),
        };
        let caches = match node.get("cache") {
            Some(n) => self.caches(n),
            None => defaults.caches.clone().unwrap_or_default(),
        };
        let services = match node.get("services") {
            Some(n) => self.services(n),
            None => defaults.services.clone().unwrap_or_default(),
        };
        let dependencies = match node.get("dependencies") {
            Some(n) if n.is_null() => Some(Vec::new()),
            Some(n) => self.string_list("dependencies", n).map(|names| {
                let items = n.as_seq().unwrap_or_default();
                names
                    .into_iter()
                    .zip(items)
                    .map(|(job, item)| Need {
                        job,
                        span: item.span,
                        artifacts: true,
                        optional: false,
                    })
                    .collect()
            }),
            None => None,
        };
        Some(Job {
            name: name.to_string(),
            span,
            stage,
            stage_span,
            image,
            before_script,
            script,
            after_script,
            variables,
            needs,
            allow_failure,
            timeout,
            retry,
            when,
            artifacts,
            dependencies,
            caches,
            services,
        })
    }

    fn services(&mut self, node: &Node) -> Vec<Service> {
        if node.is_null() {
            return Vec::new();
        }
        let Some(items) = node.as_seq() else {
            self.expected("a list of images", "services", node);
            return Vec::new();
        };
        let mut out = Vec::new();
        for item in items {
            if let Some(image) = item.as_text() {
                out.push(Service {
                    image: image.to_string(),
                    aliases: Service::default_aliases(image),
                    entrypoint: None,
                    command: None,
                    variables: Vec::new(),
                });
                continue;
            }
            if item.as_map().is_none() {
                self.expected("an image name or `{name, alias, ...}`", "services", item);
                continue;
            }
            let Some(image) = item.get("name").and_then(|n| n.as_text()) else {
                self.error("a service needs a `name` (its image)", item.span);
                continue;
            };
            for e in item.as_map().unwrap_or_default() {
                if ![
                    "name",
                    "alias",
                    "entrypoint",
                    "command",
                    "variables",
                    "pull_policy",
                    "docker",
                    "kubernetes",
                ]
                .contains(&e.key.as_str())
                {
                    self.error(
                        format!("a service has an unknown key `{}`", e.key),
                        e.key_span,
                    );
                }
            }
            let aliases = match item.get("alias").and_then(|a| a.as_text()) {
                Some(a) => a
                    .split(|c: char| c == ',' || c.is_whitespace())
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect(),
                None => Service::default_aliases(image),
            };
            let list = |this: &mut Self, key: &str| {
                item.get(key).map(|n| match n.as_text() {
                    Some(one) => vec![one.to_string()],
                    None => this
                        .string_list(&format!("services: {key}"), n)
                        .unwrap_or_default(),
                })
            };
            let entrypoint = list(self, "entrypoint");
            let command = list(self, "command");
            let variables = item
                .get("variables")
                .map(|v| self.variables(v))
                .unwrap_or_default();
            out.push(Service {
                image: image.to_string(),
                aliases,
                entrypoint,
                command,
                variables,
            });
        }
        out
    }

    /// `cache`: one mapping or a list of them.
    fn caches(&mut self, node: &Node) -> Vec<Cache> {
        if node.is_null() {
            return Vec::new();
        }
        let items: Vec<&Node> = match node.as_seq() {
            Some(items) => items.iter().collect(),
            None => vec![node],
        };
        items.into_iter().filter_map(|n| self.cache(n)).collect()
    }

    fn cache(&mut self, node: &Node) -> Option<Cache> {
        let Some(entries) = node.as_map() else {
            self.expected("a mapping with `key` and `paths`", "cache", node);
            return None;
        };
        let mut cache = Cache {
            key: CacheKey::Text("default".into()),
            paths: Vec::new(),
            policy: CachePolicy::PullPush,
        };
        for e in entries {
            match e.key.as_str() {
                "key" => {
                    if let Some(text) = e.value.as_text() {
                        cache.key = CacheKey::Text(text.to_string());
                    } else if let Some(files) = e.value.get("files") {
                        let files = self
                            .string_list("cache: key: files", files)
                            .unwrap_or_default();
                        let prefix = e
                            .value
                            .get("prefix")
                            .and_then(|p| p.as_text())
                            .map(String::from);
                        cache.key = CacheKey::Files { files, prefix };
                    } else if !e.value.is_null() {
                        self.expected("a string or `{files: [...]}`", "cache: key", &e.value);
                    }
                }
                "paths" => {
                    let list = self
                        .string_list("cache: paths", &e.value)
                        .unwrap_or_default();
                    let items = e.value.as_seq().unwrap_or_default();
                    for (path, item) in list.into_iter().zip(items) {
                        if let Err(why) = crate::paths::check_pattern(&path) {
                            self.error(format!("cache path `{path}` {why}"), item.span);
                        } else if path.contains(['*', '?', '[', '{']) {
                            self.warn(
                                format!("cache path `{path}` is a glob; berth mounts cache paths as volumes and skips it"),
                                item.span,
                            );
                        } else {
                            cache.paths.push(path);
                        }
                    }
                }
                "policy" => {
                    cache.policy = match e.value.as_text() {
                        Some("pull") => CachePolicy::Pull,
                        Some("push") => CachePolicy::Push,
                        Some("pull-push") => CachePolicy::PullPush,
                        _ => {
                            self.error_help(
                                format!(
                                    "`cache: policy: {}` is not a valid value",
                                    e.value.as_scalar().unwrap_or("...")
                                ),
                                e.value.span,
                                "use pull, push or pull-push",
                            );
                            CachePolicy::PullPush
                        }
                    }
                }
                // Caches are mounted live, so there is no upload to skip; see the README.
                "when" | "fallback_keys" | "unprotect" => {}
                "untracked" => self.warn(
                    "`cache: untracked` is not supported by berth yet; ignored",
                    e.key_span,
                ),
                other => self.error(format!("`cache` has an unknown key `{other}`"), e.key_span),
            }
        }
        Some(cache)
    }

    fn artifacts(&mut self, node: &Node) -> Option<Artifacts> {
        if node.is_null() {
            return None;
        }
        let Some(entries) = node.as_map() else {
            self.expected("a mapping with `paths`", "artifacts", node);
            return None;
        };
        let mut artifacts = Artifacts {
            paths: Vec::new(),
            exclude: Vec::new(),
            untracked: false,
            when: ArtifactsWhen::OnSuccess,
            name: None,
        };
        for e in entries {
            match e.key.as_str() {
                "paths" | "exclude" => {
                    let list = if e.value.is_null() {
                        Vec::new()
                    } else {
                        self.string_list(&format!("artifacts: {}", e.key), &e.value)
                            .unwrap_or_default()
                    };
                    let items = e.value.as_seq().unwrap_or_default();
                    for (path, item) in list.iter().zip(items) {
                        if let Err(why) = crate::paths::check_pattern(path) {
                            self.error_help(
                                format!("artifact path `{path}` {why}"),
                                item.span,
                                "artifact paths are relative to the project directory and stay inside it",
                            );
                        }
                    }
                    if e.key == "paths" {
                        artifacts.paths = list;
                    } else {
                        artifacts.exclude = list;
                    }
                }
                "when" => {
                    artifacts.when = match e.value.as_text() {
                        Some("on_success") => ArtifactsWhen::OnSuccess,
                        Some("on_failure") => ArtifactsWhen::OnFailure,
                        Some("always") => ArtifactsWhen::Always,
                        _ => {
                            self.error_help(
                                format!(
                                    "`artifacts: when: {}` is not a valid value",
                                    e.value.as_scalar().unwrap_or("...")
                                ),
                                e.value.span,
                                "use on_success, on_failure or always",
                            );
                            ArtifactsWhen::OnSuccess
                        }
                    }
                }
                "name" => artifacts.name = e.value.as_text().map(String::from),
                // Artifacts live with the run record; there is no server to expire them.
                "expire_in" | "expose_as" | "public" | "access" => {}
                "untracked" => match e.value.as_bool() {
                    Some(b) => artifacts.untracked = b,
                    None => self.expected("true or false", "artifacts: untracked", &e.value),
                },
                "reports" => self.warn(
                    "`artifacts: reports` is not supported by berth yet; ignored",
                    e.key_span,
                ),
                other => self.error(
                    format!("`artifacts` has an unknown key `{other}`"),
                    e.key_span,
                ),
            }
        }
        Some(artifacts)
    }

    fn string_list(&mut self, key: &str, node: &Node) -> Option<Vec<String>> {
        let Some(items) = node.as_seq() else {
            self.expected("a list of names", key, node);
            return None;
        };
        let mut out = Vec::new();
        for item in items {
            match item.as_text() {
                Some(s) => out.push(s.to_string()),
                None => self.expected("a list of names", key, item),
            }
        }
        Some(out)
    }

    /// A script: a string, or a list of strings and (nested, flattened) lists.
    fn script(&mut self, key: &str, node: &Node) -> Option<Vec<String>> {
        if node.is_null() {
            return Some(Vec::new());
        }
        let mut out = Vec::new();
        if self.flatten_script(key, node, &mut out, 0) {
            Some(out)
        } else {
            None
        }
    }

    fn flatten_script(
        &mut self,
        key: &str,
        node: &Node,
        out: &mut Vec<String>,
        depth: usize,
    ) -> bool {
        match &node.value {
            Value::Scalar { text, .. } if !node.is_null() => {
                out.push(text.clone());
                true
            }
            Value::Seq(items) if depth < 10 => {
                let mut ok = true;
                for item in items {
                    ok &= self.flatten_script(key, item, out, depth + 1);
                }
                ok
            }
            _ => {
                self.expected("a command or a list of commands", key, node);
                false
            }
        }
    }

    fn image(&mut self, node: &Node) -> Option<Image> {
        if node.is_null() {
            return None;
        }
        if let Some(name) = node.as_text() {
            return Some(Image::Name {
                name: name.to_string(),
                entrypoint: None,
            });
        }
        if node.as_map().is_none() {
            self.expected("an image name or a mapping with `name`", "image", node);
            return None;
        }
        for e in node.as_map().unwrap_or_default() {
            if ![
                "name",
                "entrypoint",
                "build",
                "dockerfile",
                "pull_policy",
                "docker",
                "kubernetes",
            ]
            .contains(&e.key.as_str())
            {
                self.error(
                    format!("`image` has an unknown key `{}`", e.key),
                    e.key_span,
                );
            }
        }
        if let Some(build) = node.get("build") {
            let Some(context) = build.as_text() else {
                self.expected("a directory", "image: build", build);
                return None;
            };
            let dockerfile = node
                .get("dockerfile")
                .and_then(|d| d.as_text())
                .map(String::from);
            return Some(Image::Build {
                context: context.to_string(),
                dockerfile,
            });
        }
        let Some(name) = node.get("name").and_then(|n| n.as_text()) else {
            self.error("`image` needs a `name` (or `build: DIR`)", node.span);
            return None;
        };
        let entrypoint = node
            .get("entrypoint")
            .map(|ep| self.string_list("entrypoint", ep).unwrap_or_default());
        Some(Image::Name {
            name: name.to_string(),
            entrypoint,
        })
    }

    fn variables(&mut self, node: &Node) -> Vec<Variable> {
        if node.is_null() {
            return Vec::new();
        }
        let Some(entries) = node.as_map() else {
            self.expected("a mapping of names to values", "variables", node);
            return Vec::new();
        };
        let mut out = Vec::new();
        for e in entries {
            let v = &e.value;
            let (value, expand) = if v.is_null() {
                (String::new(), true)
            } else if let Some(text) = v.as_scalar() {
                (text.to_string(), true)
            } else if v.as_map().is_some() {
                let value = match v.get("value") {
                    Some(x) if x.is_null() => String::new(),
                    Some(x) => match x.as_scalar() {
                        Some(t) => t.to_string(),
                        None => {
                            self.expected("a string", &format!("variables: {}: value", e.key), x);
                            continue;
                        }
                    },
                    None => String::new(),
                };
                let expand = v.get("expand").and_then(|x| x.as_bool()).unwrap_or(true);
                (value, expand)
            } else {
                self.expected(
                    "a string or a mapping with `value`",
                    &format!("variables: {}", e.key),
                    v,
                );
                continue;
            };
            out.push(Variable {
                name: e.key.clone(),
                value,
                expand,
            });
        }
        out
    }

    fn needs(&mut self, node: &Node) -> Option<Vec<Need>> {
        if node.is_null() {
            return Some(Vec::new());
        }
        let Some(items) = node.as_seq() else {
            self.expected("a list of job names", "needs", node);
            return None;
        };
        let mut out = Vec::new();
        for item in items {
            if let Some(name) = item.as_text() {
                out.push(Need {
                    job: name.to_string(),
                    span: item.span,
                    artifacts: true,
                    optional: false,
                });
            } else if item.as_map().is_some() {
                if item.get("pipeline").is_some() || item.get("project").is_some() {
                    self.warn(
                        "`needs` on another pipeline or project cannot be met locally; ignored",
                        item.span,
                    );
                    continue;
                }
                let Some(name) = item.get("job").and_then(|j| j.as_text()) else {
                    self.error("a `needs` entry needs a `job`", item.span);
                    continue;
                };
                let flag = |key: &str, default: bool| {
                    item.get(key).and_then(|n| n.as_bool()).unwrap_or(default)
                };
                out.push(Need {
                    job: name.to_string(),
                    span: item.get("job").map(|j| j.span).unwrap_or(item.span),
                    artifacts: flag("artifacts", true),
                    optional: flag("optional", false),
                });
            } else {
                self.expected("a job name or `{job: NAME}`", "needs", item);
            }
        }
        Some(out)
    }

    fn when(&mut self, node: &Node) -> Option<When> {
        let when = match node.as_text() {
            Some("on_success") => When::OnSuccess,
            Some("on_failure") => When::OnFailure,
            Some("always") => When::Always,
            Some("manual") => When::Manual,
            Some("never") => When::Never,
            Some("delayed") => {
                self.warn(
                    "`when: delayed` is not supported by berth yet; the job runs without delay",
                    node.span,
                );
                When::OnSuccess
            }
            _ => {
                self.error_help(
                    format!(
                        "`when: {}` is not a valid value",
                        node.as_scalar().unwrap_or("...")
                    ),
                    node.span,
                    "use on_success, on_failure, always, manual or never",
                );
                return None;
            }
        };
        Some(when)
    }

    fn allow_failure(&mut self, node: &Node) -> AllowFailure {
        if let Some(b) = node.as_bool() {
            return if b {
                AllowFailure::Yes
            } else {
                AllowFailure::No
            };
        }
        if let Some(codes) = node.get("exit_codes") {
            let list: Vec<&Node> = match codes.as_seq() {
                Some(items) => items.iter().collect(),
                None => vec![codes],
            };
            let mut out = Vec::new();
            for c in list {
                match c.as_int() {
                    Some(n) => out.push(n),
                    None => self.expected("an exit code", "allow_failure: exit_codes", c),
                }
            }
            return AllowFailure::ExitCodes(out);
        }
        self.expected("true, false or `{exit_codes: [..]}`", "allow_failure", node);
        AllowFailure::No
    }

    fn timeout(&mut self, node: &Node) -> Option<Duration> {
        let text = node.as_text()?;
        match duration::parse(text) {
            Ok(d) => Some(d),
            Err(e) => {
                self.error(format!("`timeout`: {e}"), node.span);
                None
            }
        }
    }

    fn retry(&mut self, node: &Node) -> Option<u32> {
        let max_node = if node.as_map().is_some() {
            node.get("max")?
        } else {
            node
        };
        match max_node.as_int() {
            Some(n @ 0..=2) => Some(n as u32),
            _ => {
                self.error(
                    format!(
                        "`retry` should be 0, 1 or 2, found `{}`",
                        max_node.as_scalar().unwrap_or("...")
                    ),
                    max_node.span,
                );
                None
            }
        }
    }

    /// Stages exist, needs name real jobs in the same or an earlier stage, and form no cycle.
    fn check_graph(&mut self, p: &Pipeline) {
        let stage_index = p.stage_index();
        let by_name: HashMap<&str, &Job> = p.jobs.iter().map(|j| (j.name.as_str(), j)).collect();
        let declared = p.stages[1..p.stages.len() - 1].join(", ");
        for job in &p.jobs {
            self.job = Some(job.name.clone());
            let Some(&own) = stage_index.get(job.stage.as_str()) else {
                let span = job.stage_span;
                self.error_help(
                    format!("stage `{}` is not declared in `stages`", job.stage),
                    span,
                    format!("declared stages: {declared}"),
                );
                continue;
            };
            for dep in job.dependencies.iter().flatten() {
                match by_name.get(dep.job.as_str()) {
                    None => self.error(
                        format!("`dependencies` names `{}`, which is not a job", dep.job),
                        dep.span,
                    ),
                    Some(other) => {
                        if stage_index
                            .get(other.stage.as_str())
                            .is_some_and(|&s| s >= own)
                        {
                            self.error(
                                format!(
                                    "`dependencies` names `{}`, which is not in an earlier stage",
                                    dep.job
                                ),
                                dep.span,
                            );
                        }
                    }
                }
            }
            for need in job.needs.iter().flatten() {
                match by_name.get(need.job.as_str()) {
                    None if need.optional => {}
                    None => self.error(
                        format!("`needs` names `{}`, which is not a job", need.job),
                        need.span,
                    ),
                    Some(other) => {
                        if let Some(&theirs) = stage_index.get(other.stage.as_str()) {
                            if theirs > own {
                                self.error(
                                    format!(
                                        "`needs` names `{}`, which is in the later stage `{}`",
                                        need.job, other.stage
                                    ),
                                    need.span,
                                );
                            }
                        }
                    }
                }
            }
            self.job = None;
        }
        // Cycles can only form among jobs of one stage; a depth-first walk finds them.
        let mut state: HashMap<&str, u8> = HashMap::new();
        for job in &p.jobs {
            let mut path = Vec::new();
            if let Some(cycle) = find_cycle(job.name.as_str(), &by_name, &mut state, &mut path) {
                self.job = Some(cycle[0].clone());
                let span = by_name
                    .get(cycle[0].as_str())
                    .and_then(|j| j.needs.iter().flatten().find(|n| n.job == cycle[1]))
                    .map(|n| n.span)
                    .unwrap_or(job.span);
                self.error(
                    format!("`needs` forms a cycle: {}", cycle.join(" -> ")),
                    span,
                );
                self.job = None;
                break;
            }
        }
    }
}

fn find_cycle<'a>(
    name: &'a str,
    jobs: &HashMap<&'a str, &'a Job>,
    state: &mut HashMap<&'a str, u8>,
    path: &mut Vec<&'a str>,
) -> Option<Vec<String>> {
    match state.get(name) {
        Some(2) => return None,
        Some(1) => {
            let start = path.iter().position(|n| *n == name).unwrap_or(0);
            let mut cycle: Vec<String> = path[start..].iter().map(|s| s.to_string()).collect();
            cycle.push(name.to_string());
            return Some(cycle);
        }
        _ => {}
    }
    state.insert(name, 1);
    path.push(name);
    if let Some(job) = jobs.get(name) {
        for need in job.needs.iter().flatten() {
            if let Some((&other, _)) = jobs.get_key_value(need.job.as_str()) {
                if let Some(c) = find_cycle(other, jobs, state, path) {
                    return Some(c);
                }
            }
        }
    }
    path.pop();
    state.insert(name, 2);
    None
}

#[cfg(test)]
mod tests;
