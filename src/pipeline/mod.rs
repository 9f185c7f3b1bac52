//! The pipeline file: from the YAML tree to a validated, typed model.
//!
//! Everything GitLab would refuse is an error [`Diagnostic`] with the line it is about; keys berth
//! reads but does not act on yet are warnings. Nothing here touches Docker.

mod children;
mod compose;
pub mod context;
pub mod duration;
pub mod expr;
mod includes;
mod inputs;
mod parallel;
pub mod rules;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

pub use children::flatten as flatten_children;
pub use context::{ChangedFiles, ChangedList, Context};

use crate::source::diag::{Diagnostic, SourceMap};
use crate::source::yaml::{self, Node, Span, Value};
use rules::{Condition, Policy, Rule};

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
    /// `reports: dotenv`: files of `KEY=VALUE` lines whose variables later jobs receive.
    pub dotenv: Vec<String>,
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
}

/// Reading failed: every diagnostic (errors first), and the files they point into.
#[derive(Debug)]
pub struct Failed {
    pub diagnostics: Vec<Diagnostic>,
    pub sources: SourceMap,
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
    "spec",
    "hermetic",
];

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
    "start_in",
    "artifacts",
    "dependencies",
    "cache",
    "services",
    "extends",
    "rules",
    "only",
    "except",
    "parallel",
    "trigger",
    "inherit",
    "environment",
];
/// Job keys that have no meaning on a local machine: accepted quietly.
const JOB_NO_LOCAL_MEANING: &[&str] = &[
    "tags",
    "interruptible",
    "coverage",
    "resource_group",
    "id_tokens",
    "secrets",
    "release",
    "pages",
    "dast_configuration",
    "identity",
];
/// GitLab job keys berth does not support yet: a warning each.
const JOB_NOT_YET: &[&str] = &["hooks", "manual_confirmation", "run"];
const DEFAULT_KEYS: &[&str] = &[
    "image",
    "before_script",
    "after_script",
    "variables",
    "timeout",
    "retry",
    "artifacts",
    "cache",
    "services",
    "tags",
    "interruptible",
    "id_tokens",
];
const DEFAULT_NOT_YET: &[&str] = &["hooks"];

/// Read a pipeline file and everything it includes, and create its jobs as GitLab would for
/// `ctx`. On failure, every diagnostic found (errors and warnings).
pub fn load_source(source: &Source, ctx: &Context) -> Result<Loaded, Failed> {
    let mut sources = SourceMap::single(&source.name, &source.text);
    let mut composer = compose::Composer::new(ctx, &mut sources);
    let root = composer.compose();
    let mut errors = std::mem::take(&mut composer.errors);
    let mut warnings = std::mem::take(&mut composer.warnings);
    let budget = std::mem::take(&mut composer.budget);
    let mut cx = Reader {
        ctx,
        errors: Vec::new(),
        warnings: Vec::new(),
        job: None,
        refused: None,
        budget,
        default_cost: 0,
    };
    let pipeline = match root {
        Some(root) if errors.is_empty() => cx.pipeline(&root),
        _ => None,
    };
    errors.append(&mut cx.errors);
    warnings.append(&mut cx.warnings);
    if errors.is_empty() {
        if let Some(pipeline) = pipeline {
            return Ok(Loaded {
                pipeline,
                warnings,
                sources,
                refused: cx.refused,
            });
        }
    }
    errors.extend(warnings);
    Err(Failed {
        diagnostics: errors,
        sources,
    })
}

/// Read a pipeline from text alone (no project files around it), for a push to `main`.
pub fn load(text: &str) -> Result<Loaded, Vec<Diagnostic>> {
    let source = Source {
        path: PathBuf::from("berth.yml"),
        name: "berth.yml".into(),
        text: text.to_string(),
    };
    load_source(&source, &Context::for_tests()).map_err(|f| f.diagnostics)
}

/// `inherit:`: which defaults and global variables a job takes (`None`: all of them).
#[derive(Default)]
struct Inherit {
    default: Option<Vec<String>>,
    variables: Option<Vec<String>>,
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

struct Reader<'a> {
    ctx: &'a Context,
    errors: Vec<Diagnostic>,
    warnings: Vec<Diagnostic>,
    job: Option<String>,
    refused: Option<String>,
    /// The composer's budget, which every job created is charged to: `parallel` and the
    /// defaults copy a definition into each job.
    budget: yaml::Budget,
    /// What the defaults (`default:` and the old global keywords) cost: each job may copy them.
    default_cost: usize,
}

/// The variables a job's conditions can see, indexed once per pipeline rather than copied
/// into every job (120,000 global variables times the jobs with rules).
struct Visible<'a> {
    ctx: HashMap<&'a str, &'a str>,
    globals: HashMap<&'a str, (&'a str, bool)>,
    overrides: HashMap<&'a str, &'a str>,
}

impl<'a> Visible<'a> {
    fn new(ctx: &'a Context, globals: &'a [Variable]) -> Visible<'a> {
        let pairs = |list: &'a [(String, String)]| {
            list.iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect::<HashMap<_, _>>()
        };
        Visible {
            ctx: pairs(&ctx.variables),
            globals: globals
                .iter()
                .map(|v| (v.name.as_str(), (v.value.as_str(), v.expand)))
                .collect(),
            overrides: pairs(&ctx.overrides),
        }
    }
}

impl Reader<'_> {
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
        let entries = root.as_map()?;

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
        let mut name = None;
        if let Some(workflow) = root.get("workflow") {
            name = self.workflow(workflow, &mut variables);
        }

        self.default_cost = [
            "image",
            "before_script",
            "after_script",
            "cache",
            "services",
            "default",
        ]
        .iter()
        .filter_map(|k| root.get(k))
        .map(yaml::cost)
        .sum();
        let visible = Visible::new(self.ctx, &variables);
        let mut jobs = Vec::new();
        let mut left_out = Vec::new();
        let mut defined = 0;
        for e in entries {
            if GLOBAL_KEYS.contains(&e.key.as_str()) || e.key.starts_with('.') {
                continue;
            }
            defined += 1;
            self.job = Some(e.key.clone());
            self.create_jobs(
                &e.key,
                e.key_span,
                &e.value,
                &defaults,
                &visible,
                &mut jobs,
                &mut left_out,
            );
            self.job = None;
        }
        drop(visible);
        if defined == 0 && self.errors.is_empty() {
            self.error("the pipeline has no jobs", root.span);
        }
        if self.refused.is_some() {
            jobs.clear();
            left_out.clear();
        }
        self.resolve_needs(&mut jobs, &left_out);

        let hermetic = match root.get("hermetic") {
            None => false,
            Some(n) => match n.as_bool() {
                Some(b) => b,
                None => {
                    self.expected("true or false", "hermetic", n);
                    false
                }
            },
        };
        let pipeline = Pipeline {
            stages,
            variables,
            jobs,
            left_out,
            name,
            hermetic,
        };
        self.check_graph(&pipeline);
        Some(pipeline)
    }

    /// `workflow: rules` decide whether there is a pipeline at all, and may set variables.
    fn workflow(&mut self, node: &Node, variables: &mut Vec<Variable>) -> Option<String> {
        if node.is_null() {
            return None;
        }
        let Some(entries) = node.as_map() else {
            self.expected("a mapping with `rules`", "workflow", node);
            return None;
        };
        for e in entries {
            if !["rules", "name", "auto_cancel"].contains(&e.key.as_str()) {
                self.error(
                    format!("`workflow` has an unknown key `{}`", e.key),
                    e.key_span,
                );
            }
        }
        if let Some(rules_node) = node.get("rules") {
            let rules = self.rules(rules_node).unwrap_or_default();
            let vars = self.visible(&[variables], &[]);
            let lookup = |n: &str| vars.get(n).cloned();
            match rules::first_match(&rules, &lookup, self.ctx) {
                Ok(Some(i)) => {
                    let rule = &rules[i];
                    if rule.when == Some(When::Never) {
                        self.refused = Some(format!(
                            "workflow rule {} ({}) says `when: never`",
                            i + 1,
                            rule.condition.describe()
                        ));
                    } else {
                        variables.extend(rule.variables.iter().cloned());
                    }
                }
                Ok(None) => {
                    self.refused = Some("no `workflow: rules` entry matched".into());
                }
                Err((span, e)) => self.error(e, span),
            }
        }
        let name = node.get("name").and_then(|n| n.as_text())?;
        let vars = self.visible(&[variables], &[]);
        Some(crate::vars::expand(name, &|n| vars.get(n).cloned(), 0))
    }

    /// The variables a job's conditions can see, expanded: the context's predefined ones, then
    /// each layer in order, then the command line's.
    fn visible(
        &self,
        layers: &[&[Variable]],
        extra: &[(String, String)],
    ) -> HashMap<String, String> {
        let mut raw: Vec<(String, String, bool)> = self
            .ctx
            .variables
            .iter()
            .chain(extra)
            .map(|(k, v)| (k.clone(), v.clone(), false))
            .collect();
        for layer in layers {
            raw.extend(
                layer
                    .iter()
                    .map(|v| (v.name.clone(), v.value.clone(), v.expand)),
            );
        }
        raw.extend(
            self.ctx
                .overrides
                .iter()
                .map(|(k, v)| (k.clone(), v.clone(), false)),
        );
        let mut last: HashMap<String, (String, bool)> = HashMap::new();
        for (k, v, e) in raw {
            last.insert(k, (v, e));
        }
        let plain: HashMap<&str, &str> = last
            .iter()
            .map(|(k, (v, _))| (k.as_str(), v.as_str()))
            .collect();
        last.iter()
            .map(|(k, (v, e))| {
                let value = if *e {
                    crate::vars::expand(v, &|n| plain.get(n).map(|s| s.to_string()), 0)
                } else {
                    v.clone()
                };
                (k.clone(), value)
            })
            .collect()
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

    /// Read one job definition, expand `parallel`, and keep the instances its rules create.
    #[allow(clippy::too_many_arguments)]
    fn create_jobs(
        &mut self,
        name: &str,
        span: Span,
        node: &Node,
        defaults: &Defaults,
        visible: &Visible,
        jobs: &mut Vec<Job>,
        left_out: &mut Vec<LeftOut>,
    ) {
        let Some(inherit) = self.inherit(node) else {
            return;
        };
        let Some(job) = self.job_def(name, span, node, defaults, &inherit) else {
            return;
        };
        let job_rules = node.get("rules").and_then(|n| self.rules(n));
        let only = node.get("only").and_then(|n| self.policy(n, "only"));
        let except = node.get("except").and_then(|n| self.policy(n, "except"));
        if job_rules.is_some() && (node.get("only").is_some() || node.get("except").is_some()) {
            self.error(
                "a job cannot use `rules` together with `only` or `except`",
                node.get("rules").map(|n| n.span).unwrap_or(span),
            );
            return;
        }
        let explicit_allow_failure = node.get("allow_failure").map(|n| self.allow_failure(n));
        let instances = match parallel::expand(node.get("parallel")) {
            Ok(list) => list,
            Err(d) => {
                self.errors.push(d.in_job(name));
                return;
            }
        };
        let keep: Option<HashSet<&str>> = inherit
            .variables
            .as_ref()
            .map(|keep| keep.iter().map(String::as_str).collect());
        let per_job = yaml::cost(node).saturating_add(self.default_cost);
        for instance in instances {
            if let Err(e) = self.budget.charge(per_job) {
                self.error(format!("{e}: `{name}` makes jobs past it"), span);
                return;
            }
            let mut job = job.clone();
            if let Some(inst) = instance {
                job.name = inst.name(name);
                let mut vars = inst.variables;
                vars.append(&mut job.variables);
                job.variables = vars;
                job.variables.extend(inst.matrix);
            }
            // Only rules, `only` and `except` read the job's variables; GitLab's default `only`
            // reads the context alone, and most jobs of a big pipeline have nothing else.
            let conditional = job_rules.is_some() || only.is_some() || except.is_some();
            // The job moves on below; what the lookup reads of it is copied (a job's own).
            let (own_vars, job_name, job_stage) = if conditional {
                (job.variables.clone(), job.name.clone(), job.stage.clone())
            } else {
                Default::default()
            };
            let own: HashMap<&str, (&str, bool)> = own_vars
                .iter()
                .map(|v| (v.name.as_str(), (v.value.as_str(), v.expand)))
                .collect();
            // GitLab's precedence, highest first: the command line, the job's variables, the
            // global ones it inherits, the job's predefined ones, the context's.
            let raw = |n: &str| -> Option<(&str, bool)> {
                if let Some(v) = visible.overrides.get(n) {
                    return Some((v, false));
                }
                if let Some(&v) = own.get(n) {
                    return Some(v);
                }
                if keep.as_ref().is_none_or(|k| k.contains(n)) {
                    if let Some(&v) = visible.globals.get(n) {
                        return Some(v);
                    }
                }
                match n {
                    "CI_JOB_NAME" => return Some((job_name.as_str(), false)),
                    "CI_JOB_STAGE" => return Some((job_stage.as_str(), false)),
                    _ => {}
                }
                visible.ctx.get(n).map(|v| (*v, false))
            };
            let ctx = self.ctx;
            let lookup = |n: &str| -> Option<String> {
                if !conditional {
                    return ctx.var(n).map(String::from);
                }
                let (value, expand) = raw(n)?;
                Some(if expand {
                    crate::vars::expand(value, &|m| raw(m).map(|(v, _)| v.to_string()), 0)
                } else {
                    value.to_string()
                })
            };
            let decided = match &job_rules {
                Some(rules) => {
                    self.apply_rules(job, rules, &lookup, explicit_allow_failure.clone())
                }
                None => self.apply_policies(job, only.as_ref(), except.as_ref(), &lookup),
            };
            match decided {
                Ok(job) => jobs.push(job),
                Err(out) => left_out.push(out),
            }
        }
    }

    fn apply_rules(
        &mut self,
        mut job: Job,
        rules: &[Rule],
        lookup: &dyn Fn(&str) -> Option<String>,
        explicit_allow_failure: Option<AllowFailure>,
    ) -> Result<Job, LeftOut> {
        let leave = |job: &Job, reason: String| LeftOut {
            name: job.name.clone(),
            reason,
        };
        let i = match rules::first_match(rules, lookup, self.ctx) {
            Ok(Some(i)) => i,
            Ok(None) => return Err(leave(&job, "no rule matched".into())),
            Err((span, e)) => {
                self.error(e, span);
                return Err(leave(&job, "a rule could not be evaluated".into()));
            }
        };
        let rule = &rules[i];
        let what = format!("rule {} ({})", i + 1, rule.condition.describe());
        let when = rule.when.unwrap_or(job.when);
        if when == When::Never {
            return Err(leave(&job, format!("{what}: when: never")));
        }
        job.when = when;
        if rule.start_in.is_some() {
            job.start_in = rule.start_in;
        }
        // With rules, a manual job fails the pipeline unless it says otherwise.
        job.allow_failure = rule
            .allow_failure
            .clone()
            .or(explicit_allow_failure)
            .unwrap_or(AllowFailure::No);
        job.variables.extend(rule.variables.iter().cloned());
        if let Some(needs) = &rule.needs {
            job.needs = Some(needs.clone());
        }
        job.reason = Some(what);
        Ok(job)
    }

    fn apply_policies(
        &mut self,
        mut job: Job,
        only: Option<&Policy>,
        except: Option<&Policy>,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Job, LeftOut> {
        let leave = |job: &Job, reason: String| LeftOut {
            name: job.name.clone(),
            reason,
        };
        // GitLab's default: `only: [branches, tags]`.
        let default_only = Policy {
            refs: Some(vec!["branches".into(), "tags".into()]),
            ..Policy::default()
        };
        let only_given = only.is_some();
        let only = only.unwrap_or(&default_only);
        match only.parts(lookup, self.ctx) {
            Ok(parts) if parts.iter().all(|p| *p) => {}
            Ok(_) => {
                let reason = if only_given {
                    "`only` did not match".to_string()
                } else {
                    "GitLab's default `only: [branches, tags]` did not match".to_string()
                };
                return Err(leave(&job, reason));
            }
            Err(e) => {
                self.error(e, job.span);
                return Err(leave(&job, "`only` could not be evaluated".into()));
            }
        }
        if let Some(except) = except {
            match except.parts(lookup, self.ctx) {
                Ok(parts) if parts.iter().any(|p| *p) => {
                    return Err(leave(&job, "`except` matched".into()))
                }
                Ok(_) => {}
                Err(e) => {
                    self.error(e, job.span);
                    return Err(leave(&job, "`except` could not be evaluated".into()));
                }
            }
        }
        if only_given || except.is_some() {
            job.reason = Some(
                match (only_given, except.is_some()) {
                    (true, true) => "`only` matched and `except` did not",
                    (true, false) => "`only` matched",
                    _ => "`except` did not match",
                }
                .into(),
            );
        }
        Ok(job)
    }

    fn rules(&mut self, node: &Node) -> Option<Vec<Rule>> {
        if node.is_null() {
            return Some(Vec::new());
        }
        let Some(items) = node.as_seq() else {
            self.expected("a list of rules", "rules", node);
            return None;
        };
        // `!reference` can put a list of rules where one rule goes: GitLab flattens them.
        let mut flat: Vec<&Node> = Vec::new();
        let mut stack: Vec<&Node> = items.iter().rev().collect();
        while let Some(n) = stack.pop() {
            match n.as_seq() {
                Some(inner) => stack.extend(inner.iter().rev()),
                None => flat.push(n),
            }
        }
        let mut out = Vec::new();
        for item in flat {
            let Some(entries) = item.as_map() else {
                self.expected("a mapping like `{if: ..., when: ...}`", "rules", item);
                continue;
            };
            for e in entries {
                if ![
                    "if",
                    "changes",
                    "exists",
                    "when",
                    "start_in",
                    "allow_failure",
                    "variables",
                    "needs",
                    "interruptible",
                ]
                .contains(&e.key.as_str())
                {
                    self.error(format!("a rule has an unknown key `{}`", e.key), e.key_span);
                }
            }
            let condition = match Condition::read(item) {
                Ok(c) => c,
                Err(d) => {
                    self.push_error(d);
                    continue;
                }
            };
            out.push(Rule {
                span: item.span,
                condition,
                when: item.get("when").and_then(|n| self.when(n)),
                start_in: item.get("start_in").and_then(|n| self.start_in(n)),
                allow_failure: item.get("allow_failure").map(|n| self.allow_failure(n)),
                variables: item
                    .get("variables")
                    .map(|n| self.variables(n))
                    .unwrap_or_default(),
                needs: item.get("needs").and_then(|n| self.needs(n)),
            });
        }
        Some(out)
    }

    fn policy(&mut self, node: &Node, key: &str) -> Option<Policy> {
        match Policy::read(node, key) {
            Ok(p) => Some(p),
            Err(d) => {
                self.push_error(d);
                None
            }
        }
    }

    fn push_error(&mut self, mut d: Diagnostic) {
        d.job = self.job.clone();
        self.errors.push(d);
    }

    /// `inherit: {default, variables}`: `None` inside means everything is inherited.
    fn inherit(&mut self, node: &Node) -> Option<Inherit> {
        let mut out = Inherit::default();
        let Some(inherit) = node.get("inherit") else {
            return Some(out);
        };
        let Some(entries) = inherit.as_map() else {
            self.expected(
                "a mapping with `default` and `variables`",
                "inherit",
                inherit,
            );
            return None;
        };
        for e in entries {
            let value = if let Some(b) = e.value.as_bool() {
                if b {
                    None
                } else {
                    Some(Vec::new())
                }
            } else {
                Some(
                    self.string_list(&format!("inherit: {}", e.key), &e.value)
                        .unwrap_or_default(),
                )
            };
            match e.key.as_str() {
                "default" => out.default = value,
                "variables" => out.variables = value,
                other => self.error(
                    format!("`inherit` has an unknown key `{other}`"),
                    e.key_span,
                ),
            }
        }
        Some(out)
    }

    fn job_def(
        &mut self,
        name: &str,
        span: Span,
        node: &Node,
        defaults: &Defaults,
        inherit: &Inherit,
    ) -> Option<Job> {
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
        let from_default = |key: &str| match &inherit.default {
            None => true,
            Some(keys) => keys.iter().any(|k| k == key),
        };
        let trigger = node.get("trigger").and_then(|n| self.trigger(n));

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
            None if from_default("image") => defaults.image.clone(),
            None => None,
        };
        let before_script = match node.get("before_script") {
            Some(n) => self.script("before_script", n).unwrap_or_default(),
            None if from_default("before_script") => {
                defaults.before_script.clone().unwrap_or_default()
            }
            None => Vec::new(),
        };
        let after_script = match node.get("after_script") {
            Some(n) => self.script("after_script", n).unwrap_or_default(),
            None if from_default("after_script") => {
                defaults.after_script.clone().unwrap_or_default()
            }
            None => Vec::new(),
        };
        let script = match node.get("script") {
            Some(n) => {
                let script = self.script("script", n).unwrap_or_default();
                if script.is_empty() {
                    self.error("`script` is empty", n.span);
                }
                script
            }
            None if trigger.is_some() => Vec::new(),
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
            Some(n) => match self.when(n) {
                Some(When::Never) => {
                    self.error_help(
                        "`when: never` is not a job's `when`",
                        n.span,
                        "GitLab takes `when: never` only inside `rules` (`rules: [{when: never}]`)",
                    );
                    When::OnSuccess
                }
                w => w.unwrap_or(When::OnSuccess),
            },
            None => When::OnSuccess,
        };
        let start_in = node.get("start_in").and_then(|n| self.start_in(n));
        if when == When::Delayed && start_in.is_none() {
            self.error(
                "`when: delayed` needs a `start_in`",
                node.get("when").map(|n| n.span).unwrap_or(span),
            );
        }
        let allow_failure = match node.get("allow_failure") {
            Some(n) => self.allow_failure(n),
            // GitLab: manual jobs may fail without failing the pipeline.
            None if when == When::Manual => AllowFailure::Yes,
            None => AllowFailure::No,
        };
        let timeout = match node.get("timeout") {
            Some(n) => self.timeout(n),
            None if from_default("timeout") => defaults.timeout,
            None => None,
        };
        let retry = match node.get("retry") {
            Some(n) => self.retry(n).unwrap_or(0),
            None if from_default("retry") => defaults.retry.unwrap_or(0),
            None => 0,
        };
        let artifacts = match node.get("artifacts") {
            Some(n) => self.artifacts(n),
            None if from_default("artifacts") => defaults.artifacts.clone(),
            None => None,
        };
        let caches = match node.get("cache") {
            Some(n) => self.caches(n),
            None if from_default("cache") => defaults.caches.clone().unwrap_or_default(),
            None => Vec::new(),
        };
        let services = match node.get("services") {
            Some(n) => self.services(n),
            None if from_default("services") => defaults.services.clone().unwrap_or_default(),
            None => Vec::new(),
        };
        let environment = node.get("environment").and_then(|n| self.environment(n));
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
                        instances: None,
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
            start_in,
            reason: None,
            environment,
            trigger,
            base_name: name.to_string(),
            inherit_variables: inherit.variables.clone(),
        })
    }

    fn environment(&mut self, node: &Node) -> Option<Environment> {
        if let Some(name) = node.as_text() {
            return Some(Environment {
                name: name.to_string(),
                url: None,
            });
        }
        if node.as_map().is_none() {
            self.expected("a name or a mapping with `name`", "environment", node);
            return None;
        }
        let Some(name) = node.get("name").and_then(|n| n.as_text()) else {
            self.error("`environment` needs a `name`", node.span);
            return None;
        };
        Some(Environment {
            name: name.to_string(),
            url: node.get("url").and_then(|u| u.as_text()).map(String::from),
        })
    }

    fn trigger(&mut self, node: &Node) -> Option<Trigger> {
        if let Some(project) = node.as_text() {
            return Some(Trigger::Other {
                what: format!("project {project}"),
            });
        }
        if node.as_map().is_none() {
            self.expected(
                "a project or a mapping with `include` or `project`",
                "trigger",
                node,
            );
            return None;
        }
        let depend = node.get("strategy").and_then(|s| s.as_text()) == Some("depend");
        if let Some(project) = node.get("project").and_then(|p| p.as_text()) {
            return Some(Trigger::Other {
                what: format!("project {project}"),
            });
        }
        let Some(include) = node.get("include") else {
            self.error("`trigger` needs `include` or `project`", node.span);
            return None;
        };
        let items: Vec<&Node> = match include.as_seq() {
            Some(items) => items.iter().collect(),
            None => vec![include],
        };
        let mut files = Vec::new();
        for item in items {
            if let Some(path) = item
                .as_text()
                .or_else(|| item.get("local").and_then(|l| l.as_text()))
            {
                if path.starts_with("http://") || path.starts_with("https://") {
                    return Some(Trigger::Other {
                        what: format!("remote {path}"),
                    });
                }
                files.push(path.trim_start_matches('/').to_string());
            } else {
                let what = item
                    .as_map()
                    .and_then(|m| m.first())
                    .map(|e| format!("{} {}", e.key, e.value.as_scalar().unwrap_or("...")))
                    .unwrap_or_else(|| "an include".into());
                return Some(Trigger::Other { what });
            }
        }
        Some(Trigger::Child { files, depend })
    }

    fn start_in(&mut self, node: &Node) -> Option<Duration> {
        let text = node.as_text()?;
        match duration::parse(text) {
            Ok(d) => Some(d),
            Err(e) => {
                self.error(format!("`start_in`: {e}"), node.span);
                None
            }
        }
    }

    /// Point `needs` and `dependencies` at the jobs that exist: a parallel job's name means
    /// all its instances (or those a `parallel: matrix` names); an optional need of a job
    /// that is not created is dropped; a required one is an error.
    fn resolve_needs(&mut self, jobs: &mut [Job], left_out: &[LeftOut]) {
        let created: std::collections::HashSet<String> =
            jobs.iter().map(|j| j.name.clone()).collect();
        let mut instances: HashMap<String, Vec<String>> = HashMap::new();
        for j in jobs.iter().filter(|j| j.name != j.base_name) {
            instances
                .entry(j.base_name.clone())
                .or_default()
                .push(j.name.clone());
        }
        let omitted = |name: &str| {
            left_out.iter().any(|l| {
                l.name == name
                    || l.name.starts_with(&format!("{name}: ["))
                    || l.name.starts_with(&format!("{name} "))
            })
        };
        for job in jobs.iter_mut() {
            self.job = Some(job.name.clone());
            for (key, list) in [
                ("needs", &mut job.needs),
                ("dependencies", &mut job.dependencies),
            ] {
                let Some(list) = list.as_mut() else {
                    continue;
                };
                let mut out = Vec::new();
                for need in list.drain(..) {
                    let names: Vec<String> = match &need.instances {
                        Some(named) => named.clone(),
                        None if created.contains(&need.job) => vec![need.job.clone()],
                        None => instances
                            .get(&need.job)
                            .cloned()
                            .unwrap_or_else(|| vec![need.job.clone()]),
                    };
                    for n in names {
                        if created.contains(&n) {
                            out.push(Need {
                                job: n,
                                instances: None,
                                ..need.clone()
                            });
                        } else if need.optional {
                        } else if omitted(&n) || omitted(&need.job) {
                            self.errors.push(
                                Diagnostic::error(
                                    format!("`{key}` names `{n}`, which is not in this pipeline (its rules left it out)"),
                                    Some(need.span),
                                )
                                .in_job(&job.name)
                                .with_help("make the need `optional: true`, or give both jobs the same rules"),
                            );
                        } else {
                            out.push(Need {
                                job: n,
                                instances: None,
                                ..need.clone()
                            });
                        }
                    }
                }
                *list = out;
            }
            self.job = None;
        }
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
                        if let Err(why) = crate::project::paths::check_pattern(&path) {
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
            dotenv: Vec::new(),
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
                        if let Err(why) = crate::project::paths::check_pattern(path) {
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
                "reports" => {
                    for r in e.value.as_map().unwrap_or_default() {
                        if r.key == "dotenv" {
                            artifacts.dotenv = match r.value.as_text() {
                                Some(one) => vec![one.to_string()],
                                None => self
                                    .string_list("artifacts: reports: dotenv", &r.value)
                                    .unwrap_or_default(),
                            };
                        } else {
                            // Test and coverage reports are for GitLab's UI; the files stay
                            // in the job's artifacts when `paths` names them.
                        }
                    }
                }
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
                    instances: None,
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
                let instances = match item.get("parallel") {
                    None => None,
                    Some(p) => match parallel::need_names(name, p) {
                        Ok(names) => Some(names),
                        Err(d) => {
                            self.push_error(d);
                            continue;
                        }
                    },
                };
                out.push(Need {
                    job: name.to_string(),
                    span: item.get("job").map(|j| j.span).unwrap_or(item.span),
                    artifacts: flag("artifacts", true),
                    optional: flag("optional", false),
                    instances,
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
            Some("delayed") => When::Delayed,
            _ => {
                self.error_help(
                    format!(
                        "`when: {}` is not a valid value",
                        node.as_scalar().unwrap_or("...")
                    ),
                    node.span,
                    "use on_success, on_failure, always, manual, delayed or never",
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
