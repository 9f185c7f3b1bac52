//! One GitHub Actions workflow file, read from the spanned YAML tree into a typed model with
//! GitHub's meaning, every key checked against the runner's schema
//! (`src/Sdk/WorkflowParser/workflow-v1.0.json` in actions/runner) and every `${{ }}` checked
//! under the contexts its field allows, before anything runs.
//!
//! The YAML is read as GitHub reads it (YamlDotNet, YAML 1.2 core schema, the runner's
//! `YamlObjectReader`): `on` is the string "on" (not YAML 1.1's `true`), `yes`/`no` are
//! strings, `3.10` is the number 3.1 and `010` the number 10 (`env: {V: 3.10}` is "3.1"),
//! anchors and aliases work (GitHub added them in 2025) but `<<` merge keys do not (`<<` is an
//! unknown key), a key twice in one mapping is an error even if only its case differs, and
//! one file holds one document. Expression fields are kept as written ([`Text`]) and evaluated
//! later, by the caller, with the contexts of their moment.

mod action;
mod jobs;
mod on;
mod reader;

#[cfg(test)]
mod tests;

use crate::github::expr::Value;
use crate::github::pattern::Pattern;
use crate::source::yaml::Span;

pub use action::{parse_action, ActionInput, ActionManifest, Runs, NODE_RUNTIMES};
pub use reader::{parse, Parsed};

/// A string as written in the workflow, with where it starts; its `${{ }}` (if any) have been
/// checked against the field's contexts and are evaluated later.
#[derive(Debug, Clone, PartialEq)]
pub struct Text {
    pub text: String,
    pub span: Span,
}

impl Text {
    /// Whether the string holds an expression to evaluate.
    pub fn has_expressions(&self) -> bool {
        self.text.contains("${{")
    }
}

/// A field that is a literal of its type or an expression evaluated later
/// (`continue-on-error: ${{ matrix.experimental }}`).
#[derive(Debug, Clone, PartialEq)]
pub enum Field<T> {
    Value(T),
    Expr(Text),
}

/// `env:` and the like, in file order; values keep their expressions.
pub type Env = Vec<(String, Text)>;

/// `defaults: run:`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RunDefaults {
    pub shell: Option<Text>,
    pub working_directory: Option<Text>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Workflow {
    pub name: Option<String>,
    pub run_name: Option<Text>,
    pub on: Vec<Trigger>,
    pub env: Env,
    pub defaults: RunDefaults,
    pub concurrency: Option<Concurrency>,
    pub permissions: Option<Permissions>,
    pub jobs: Vec<Job>,
}

/// One event of `on:` with its filters.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Trigger {
    pub event: String,
    pub span: Span,
    pub branches: Option<Vec<Pattern>>,
    pub branches_ignore: Option<Vec<Pattern>>,
    pub tags: Option<Vec<Pattern>>,
    pub tags_ignore: Option<Vec<Pattern>>,
    pub paths: Option<Vec<Pattern>>,
    pub paths_ignore: Option<Vec<Pattern>>,
    /// Activity types (`types:`); empty when not given.
    pub types: Vec<String>,
    /// `workflow_run: workflows:`.
    pub workflows: Vec<String>,
    /// `schedule:` cron lines.
    pub crons: Vec<String>,
    /// `workflow_dispatch: inputs:` or `workflow_call: inputs:`.
    pub inputs: Vec<Input>,
    /// `workflow_call: secrets:`: each secret's name and whether the caller must pass it.
    pub secrets: Vec<(String, bool)>,
    /// `workflow_call: outputs:`: each output's name and `value` (read with `jobs`).
    pub outputs: Env,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputType {
    String,
    Boolean,
    Number,
    Choice,
    Environment,
}

/// An input of `workflow_dispatch` or `workflow_call`.
#[derive(Debug, Clone, PartialEq)]
pub struct Input {
    pub name: String,
    pub description: Option<String>,
    pub kind: InputType,
    pub required: bool,
    /// As typed in the file (a string, boolean or number); `None` when absent.
    pub default: Option<Value>,
    /// `choice` inputs' options.
    pub options: Vec<String>,
}

/// `concurrency:`, accepted: berth runs one workflow at a time locally.
#[derive(Debug, Clone, PartialEq)]
pub struct Concurrency {
    pub group: Text,
    pub cancel_in_progress: Option<Field<bool>>,
}

/// `permissions:`, accepted: berth's jobs get no GitHub token.
#[derive(Debug, Clone, PartialEq)]
pub enum Permissions {
    ReadAll,
    WriteAll,
    /// Scope name and level (`read`, `write`, `none`).
    Scopes(Vec<(String, String)>),
}

/// One job of `jobs:`.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub id: String,
    /// The job key's position.
    pub span: Span,
    pub name: Option<Text>,
    pub needs: Vec<String>,
    /// `if:` as written (parse it with `expr::Condition` and `Scope::JOB_IF`).
    pub condition: Option<Text>,
    pub strategy: Option<Strategy>,
    pub permissions: Option<Permissions>,
    pub concurrency: Option<Concurrency>,
    pub kind: JobKind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum JobKind {
    /// A job that runs steps on a runner.
    Steps(Box<StepsJob>),
    /// `uses:` a reusable workflow: kept as such, not run by this reader.
    Reusable(Reusable),
}

#[derive(Debug, Clone, PartialEq)]
pub struct StepsJob {
    pub runs_on: RunsOn,
    pub environment: Option<Environment>,
    pub timeout_minutes: Option<Field<f64>>,
    pub continue_on_error: Option<Field<bool>>,
    pub container: Option<Container>,
    pub services: Vec<Service>,
    pub outputs: Env,
    pub env: Env,
    pub defaults: RunDefaults,
    pub steps: Vec<Step>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Reusable {
    pub uses: String,
    /// Where `uses:` is written.
    pub uses_span: Span,
    pub with: Env,
    /// Each `with:` value as typed in the file (`true` a boolean, `3` a number), for checking
    /// it against the called workflow's input types.
    pub with_values: Vec<(String, Value)>,
    /// `secrets: inherit`, or the secrets passed by name.
    pub secrets_inherit: bool,
    pub secrets: Env,
}

/// `runs-on:` a label, a list of labels, or `{group, labels}`; a label may be an expression.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RunsOn {
    pub group: Option<Text>,
    pub labels: Vec<Text>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Environment {
    pub name: Text,
    pub url: Option<Text>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Credentials {
    pub username: Option<Text>,
    pub password: Option<Text>,
}

/// `container:`, or a service of `services:` (which alone has `entrypoint` and `command`).
#[derive(Debug, Clone, PartialEq)]
pub struct Container {
    pub image: Text,
    pub env: Env,
    pub credentials: Option<Credentials>,
    pub volumes: Vec<Text>,
    pub ports: Vec<Text>,
    pub options: Option<Text>,
    pub entrypoint: Option<Text>,
    pub command: Option<Text>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Service {
    /// The key under `services:`: the host name a `container:` job reaches it by.
    pub id: String,
    pub container: Container,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Strategy {
    pub matrix: Option<crate::github::matrix::Matrix>,
    /// Default true.
    pub fail_fast: Field<bool>,
    pub max_parallel: Option<Field<f64>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// 1-based position in the job, for messages.
    pub index: usize,
    pub span: Span,
    pub id: Option<String>,
    pub name: Option<Text>,
    /// `if:` as written (parse it with `expr::Condition` and `Scope::STEP_IF`).
    pub condition: Option<Text>,
    pub env: Env,
    pub continue_on_error: Option<Field<bool>>,
    pub timeout_minutes: Option<Field<f64>>,
    pub action: StepAction,
}

#[derive(Debug, Clone, PartialEq)]
pub enum StepAction {
    Run {
        run: Text,
        shell: Option<Text>,
        working_directory: Option<Text>,
    },
    Uses {
        uses: String,
        with: Env,
    },
}

impl Step {
    /// How messages and logs name the step: its name as written, else its id, else
    /// `Run <first line>` or `Run <action>` as GitHub shows it.
    pub fn label(&self) -> String {
        if let Some(name) = &self.name {
            return name.text.clone();
        }
        match &self.action {
            StepAction::Run { run, .. } => {
                format!("Run {}", run.text.lines().next().unwrap_or("").trim())
            }
            StepAction::Uses { uses, .. } => format!("Run {uses}"),
        }
    }
}

impl Workflow {
    pub fn job(&self, id: &str) -> Option<&Job> {
        self.jobs.iter().find(|j| j.id.eq_ignore_ascii_case(id))
    }

    pub fn trigger(&self, event: &str) -> Option<&Trigger> {
        self.on.iter().find(|t| t.event == event)
    }
}

/// A YAML node read as the reader reads matrix values, for other modules' tests.
#[cfg(test)]
pub(crate) fn matrix_value_for_tests(node: &crate::source::yaml::Node) -> Value {
    reader::to_value(node)
}
