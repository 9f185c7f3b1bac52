//! GitLab CI's reading of a pipeline file: from the spanned YAML tree to the validated model,
//! with GitLab's meaning. `include`, `extends` and `!reference` (`compose.rs`, `includes.rs`),
//! `spec: inputs` (`inputs.rs`), `rules`/`only`/`except` ([`rules`], [`expr`]), `parallel`
//! (`parallel.rs`), child pipelines (`children.rs`) and a job's environment ([`variables`]).
//!
//! Everything GitLab would refuse is an error [`Diagnostic`] with the line it is about; keys berth
//! reads but does not act on yet are warnings. Nothing here touches Docker.

mod children;
mod compose;
pub mod duration;
pub mod expr;
mod includes;
mod inputs;
mod job;
mod keywords;
mod parallel;
mod reader;
pub mod rules;
pub mod scope;
pub mod variables;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

pub use children::flatten as flatten_children;
pub use scope::Scope;

use crate::pipeline::*;
use crate::source::diag::{Diagnostic, SourceMap};
use crate::source::yaml::{self};
use crate::source::Source;

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
pub fn load_source(source: &Source, ctx: &Scope) -> Result<Loaded, Failed> {
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
                format: Format::GitLab,
                notes: Vec::new(),
                pins: Vec::new(),
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
    load_source(&source, &Scope::for_tests()).map_err(|f| f.diagnostics)
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
    ctx: &'a Scope,
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
    fn new(ctx: &'a Scope, globals: &'a [Variable]) -> Visible<'a> {
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

#[cfg(test)]
mod tests;
