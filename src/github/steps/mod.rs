//! One (matrix-expanded) job's steps with GitHub's meaning, behind the engine's
//! [`Steps`] seam: the job's `if:`, then each step decided when the ones before it have ended.
//!
//! - `if:` has an implicit `success()` unless it calls a status function; at job level
//!   `success()`/`failure()` read the needs' results (a matrix need: failure if any of its
//!   jobs failed, else cancelled if any was, else skipped if all were, else success), in a step
//!   the job's status so far; `cancelled()` is the run's.
//! - `env` is the workflow's, then the job's (each evaluated with the contexts of its moment),
//!   then what steps wrote to `$GITHUB_ENV`, then the step's own; the step's `if:` sees it
//!   without the step's own.
//! - `continue-on-error`: a failed step's `outcome` is `failure`, its `conclusion` `success`,
//!   and the job goes on as if it had passed.
//! - An expression that fails at run time fails its step (later steps run as after any failed
//!   step); an action berth does not have fails the job before its first step, as GitHub
//!   fails "Set up job" when it cannot get an action.
//! - A `run:` script is interpolated, written to `/berth/github/<step>/script<ext>` and run
//!   by its shell; every command gets empty `$GITHUB_OUTPUT`, `$GITHUB_ENV`, `$GITHUB_PATH`
//!   and `$GITHUB_STEP_SUMMARY` files, read back after it ends (whatever its exit code).
//! - `hashFiles` reads the project directory, which each job's workspace copies (see
//!   [`crate::github::hash_files`]).
//! - `actions/cache`, `actions/upload-artifact` and `actions/download-artifact` are engine
//!   operations ([`actions`]); `actions/cache` saves after the job's last step, when the job
//!   has succeeded and its key was no exact hit (GitHub's `post-if: success()`).

mod actions;
mod docker;
mod shell;
mod status;
#[cfg(test)]
pub(crate) mod tests;

pub use shell::Shell;

pub use status::needs_context;
use status::{fold_needs, JobHost, StepHost};

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actions::ActionKind;

use crate::github::actions::{self as found_actions, Action, Status};
use crate::github::expr::{Condition, Contexts, Object, Scope, Template, Value};
use crate::github::run::{self, Run, WorkflowFacts};
use crate::github::workflow::{Env, Field, RunDefaults, Runs, Step, StepAction, StepsJob, Text};
use crate::github::workflow_commands::{Commands, StepFilter};
use crate::github::{file_commands, setup_python};
use crate::pipeline::steps::{
    Command, Ended, NeedResult, Operation, Outcome, OutputFilter, Report, Start, StepContainer,
    StepImage, Steps, StepsRun,
};
use crate::pipeline::Checkout;
use crate::project::checkout::Repository;

/// The built-in actions, by `owner/name` (any version).
pub const BUILT_IN_ACTIONS: &[&str] = &[
    "actions/checkout",
    "actions/setup-python",
    "actions/cache",
    "actions/cache/restore",
    "actions/cache/save",
    "actions/upload-artifact",
    "actions/download-artifact",
];

/// `hashFiles`' answer for the job's workspace.
type Hasher = Arc<status::HashFn>;

/// Everything one job's steps need, fixed when the workflow is lowered.
#[derive(Debug, Clone)]
pub struct JobSpec {
    pub run: Arc<Run>,
    pub workflow: WorkflowFacts,
    pub workflow_env: Env,
    pub workflow_defaults: RunDefaults,
    /// The `inputs` context.
    pub inputs: Value,
    /// The job's id in the file.
    pub job_id: String,
    /// Its check-run name (`test (3.11)`).
    pub name: String,
    pub condition: Option<Text>,
    pub job: StepsJob,
    /// The `matrix` context (null without a matrix) and the `strategy` context.
    pub matrix: Value,
    pub strategy: Value,
    /// The image the job runs in, and the `runs-on` label it came from (`None`: from
    /// `container:`), for setup-python's message.
    pub image: String,
    pub platform_label: Option<String>,
    /// `container: env`, evaluated: set in every step, below everything else.
    pub container_env: Vec<(String, String)>,
    /// Each service's key and its ports: (the port it listens on, the port the job reaches it
    /// at), for `job.services.<id>.ports`.
    pub service_ports: Vec<(String, Vec<(u16, u16)>)>,
}

/// A job's steps, for the engine.
#[derive(Debug)]
pub struct JobSteps {
    spec: Arc<JobSpec>,
    condition: Condition,
}

impl JobSteps {
    /// Parses the job's `if:`; an error is the reader's to place (it already checked it).
    pub fn new(spec: JobSpec) -> Result<JobSteps, String> {
        let text = spec.condition.as_ref().map_or("", |t| t.text.as_str());
        let condition = Condition::parse(text, &Scope::JOB_IF).map_err(|e| e.to_string())?;
        Ok(JobSteps {
            spec: Arc::new(spec),
            condition,
        })
    }

    pub fn spec(&self) -> &JobSpec {
        &self.spec
    }
}

impl Steps for JobSteps {
    fn should_run(&self, needs: &[NeedResult], cancelled: bool) -> Result<bool, String> {
        let (results, needs) = fold_needs(needs);
        let contexts = base_contexts(&self.spec, needs, "");
        let host = JobHost {
            results: &results,
            cancelled,
        };
        self.condition.evaluate(&contexts, &host).map_err(|e| {
            format!(
                "job `{}`: its `if:` cannot be evaluated: {e}",
                self.spec.name
            )
        })
    }

    fn skip_reason(&self, needs: &[NeedResult]) -> String {
        // With no `if:` a job runs only when every job it needs succeeded: say which did not.
        let not_passed: Vec<String> = needs
            .iter()
            .filter(|n| n.result != "success")
            .map(|n| format!("`{}` {}", n.job, past(&n.result)))
            .collect();
        match (&self.spec.condition, not_passed.is_empty()) {
            (None, false) => format!("a job it needs did not succeed: {}", not_passed.join(", ")),
            _ => "its `if:` condition is false".to_string(),
        }
    }

    fn commands(&self) -> Vec<String> {
        let steps = self.spec.job.steps.iter();
        steps
            .filter_map(|step| match &step.action {
                StepAction::Run { run, .. } => Some(run.text.clone()),
                StepAction::Uses { .. } => None,
            })
            .collect()
    }

    fn checkout(&self) -> Option<Checkout> {
        // actions/checkout: `fetch-depth` commits (1 by default, 0 all), HEAD on the branch.
        let with = self
            .spec
            .job
            .steps
            .iter()
            .find_map(|step| match &step.action {
                StepAction::Uses { uses, with } if action_of(uses) == "actions/checkout" => {
                    Some(with)
                }
                _ => None,
            })?;
        let input = |key: &str| {
            with.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(key))
                .map(|(_, t)| t.text.trim().to_string())
        };
        let depth = input("fetch-depth")
            .and_then(|d| d.parse().ok())
            .unwrap_or(1);
        let run = &self.spec.run;
        let branch = match &run.git_ref {
            Some(crate::github::trigger::GitRef::Branch(b)) => Some(b.clone()),
            _ => None,
        };
        Some(Checkout::Repository(Repository {
            depth,
            branch,
            attached: true,
            remote: Some(format!(
                "{}/{}",
                run.server_url.trim_end_matches('/'),
                run.repository
            )),
            check_out: true,
            submodules: Default::default(),
            writable: false,
        }))
    }

    fn cached_tools(&self) -> Vec<String> {
        // setup-python's `cache:` is berth's Python cache for that tool.
        let steps = self.spec.job.steps.iter();
        steps
            .filter_map(|step| match &step.action {
                StepAction::Uses { uses, with } if action_of(uses) == "actions/setup-python" => {
                    let cache = with.iter().find(|(k, _)| k.eq_ignore_ascii_case("cache"));
                    cache.map(|(_, tool)| tool.text.trim().to_string())
                }
                _ => None,
            })
            .filter(|tool| matches!(tool.as_str(), "pip" | "pipenv" | "poetry"))
            .collect()
    }

    fn start(&self, start: Start) -> Box<dyn StepsRun> {
        let (_, needs) = fold_needs(&start.needs);
        Box::new(JobRun::new(self.spec.clone(), start, needs))
    }

    fn images(&self, project_dir: &std::path::Path) -> Result<Vec<StepImage>, String> {
        let mut images: Vec<StepImage> = Vec::new();
        for (_, image) in step_images(&self.spec, project_dir)? {
            if !images.contains(&image) {
                images.push(image);
            }
        }
        Ok(images)
    }
}

/// The image of each step (of the job's and of the composites it uses) that runs in a
/// container of its own, by its `uses:`.
fn step_images(
    spec: &JobSpec,
    project_dir: &std::path::Path,
) -> Result<Vec<(String, StepImage)>, String> {
    let mut out: Vec<(String, StepImage)> = Vec::new();
    for entry in plan_entries(spec).0 {
        let StepAction::Uses { uses, .. } = &entry.step.action else {
            continue;
        };
        if out.iter().any(|(u, _)| u == uses) {
            continue;
        }
        let Some(status) = spec.run.actions.get(uses) else {
            continue;
        };
        if let Some(image) = docker::image_of(status, project_dir) {
            out.push((uses.clone(), image?));
        }
    }
    Ok(out)
}

/// A job's result as a sentence says it: `failed`, `was skipped`.
fn past(result: &str) -> String {
    match result {
        "failure" => "failed".to_string(),
        "skipped" => "was skipped".to_string(),
        "cancelled" => "was cancelled".to_string(),
        other => format!("ended with {other}"),
    }
}

/// `job.services`: each service's `ports`, as GitHub gives them (strings keyed by the port the
/// service listens on).
fn services_context(services: &[(String, Vec<(u16, u16)>)]) -> Value {
    Value::object(services.iter().map(|(id, ports)| {
        let ports = ports
            .iter()
            .map(|(listens, reached)| (listens.to_string(), Value::from(reached.to_string())));
        (id.clone(), Value::object([("ports", Value::object(ports))]))
    }))
}

/// The contexts every expression of the job sees (without `env`, `steps`, `job`).
fn base_contexts(spec: &JobSpec, needs: Value, action: &str) -> Contexts {
    let run = &spec.run;
    let mut c = Contexts::new();
    c.insert(
        "github",
        run::github_context(run, &spec.workflow, &spec.job_id, action),
    )
    .insert("inputs", spec.inputs.clone())
    .insert("vars", run::vars_context(run))
    .insert("secrets", run::secrets_context(run))
    .insert("matrix", spec.matrix.clone())
    .insert("strategy", spec.strategy.clone())
    .insert("needs", needs)
    .insert("runner", run::runner_context(run, &spec.name));
    c
}

/// Sets `key` in an ordered environment, keeping the first place of a name already there.
fn set(env: &mut Vec<(String, String)>, key: &str, value: String) {
    match env.iter_mut().find(|(k, _)| k == key) {
        Some(slot) => slot.1 = value,
        None => env.push((key.to_string(), value)),
    }
}

fn env_value(env: &[(String, String)]) -> Value {
    let mut o = Object::case_sensitive();
    for (k, v) in env {
        o.insert(k.clone(), Value::from(v.as_str()));
    }
    Value::from(o)
}

/// The files one step talks to the runner through.
#[derive(Debug, Clone)]
struct StepFiles {
    dir: String,
    output: String,
    env: String,
    path: String,
    summary: String,
    state: String,
}

impl StepFiles {
    fn new(label: &str) -> StepFiles {
        let dir = format!("{}/{label}", run::DIR);
        StepFiles {
            state: format!("{dir}/state"),
            output: format!("{dir}/output"),
            env: format!("{dir}/env"),
            path: format!("{dir}/path"),
            summary: format!("{dir}/summary"),
            dir,
        }
    }

    /// A step's files in a container of its own, named as the runner names them there.
    fn in_container(label: &str) -> StepFiles {
        let dir = docker::FILE_COMMANDS;
        let name = label.replace('.', "_");
        StepFiles {
            state: format!("{dir}/save_state_{name}"),
            output: format!("{dir}/set_output_{name}"),
            env: format!("{dir}/set_env_{name}"),
            path: format!("{dir}/add_path_{name}"),
            summary: format!("{dir}/step_summary_{name}"),
            dir: dir.to_string(),
        }
    }
}

/// What the step whose command runs is doing.
#[derive(Debug, Clone)]
enum Phase {
    Run,
    /// setup-python listing the image's interpreters.
    PythonProbe {
        version: Option<String>,
        version_file: Option<String>,
        update_environment: bool,
    },
    /// setup-python making the chosen one a venv.
    PythonInstall,
    /// Asking the job's `HOME`, for the `~` of an operation's paths.
    Home {
        operation: Operation,
        kind: ActionKind,
    },
    /// An engine operation of a built-in action.
    Action(ActionKind),
    /// A JavaScript action's script: its `pre`, `main` or `post`; `marker` is the file the
    /// command leaves when the container has no `node`.
    Node {
        stage: Stage,
        marker: String,
    },
    /// A step in a container of its own: a Docker action's `pre-entrypoint`, its main
    /// entrypoint or its `post-entrypoint`, or a `docker://` step.
    Docker {
        stage: Stage,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Pre,
    Main,
    Post,
}

/// The file a home probe writes `$HOME` to, in the step's directory.
const HOME_FILE: &str = "home";

/// What runs after the job's last step: `actions/cache`'s save, a JavaScript action's `post`.
#[derive(Debug, Clone)]
struct Post {
    /// The entry of the step it belongs to.
    step: usize,
    name: String,
    kind: PostKind,
}

#[derive(Debug, Clone)]
enum PostKind {
    Save {
        key: String,
        paths: Vec<String>,
    },
    Node {
        action: Arc<Action>,
        script: String,
        condition: Option<Text>,
        inputs: Vec<(String, String)>,
    },
    /// A Docker action's `post-entrypoint`.
    Docker {
        action: Arc<Action>,
        entrypoint: String,
        condition: Option<Text>,
        inputs: Vec<(String, String)>,
    },
}

/// What a step's own container runs: its entrypoint (`None`: the image's), its arguments,
/// and the environment the action gives it (inputs as `INPUT_*`, `runs.env`).
#[derive(Debug, Clone, Default)]
struct DockerRun {
    entrypoint: Option<String>,
    args: Vec<String>,
    env: Vec<(String, String)>,
}

/// One thing the job does, in order: a step of the job's or of a composite action it uses
/// (expanded in place), a JavaScript action's `pre` (before the first step), or the end of a
/// composite (its outputs made the calling step's).
#[derive(Debug, Clone)]
struct Entry {
    step: Step,
    /// The frame whose `steps` and `inputs` the step sees; an `End` is its composite's.
    frame: usize,
    /// `3`, or `3.2` for the second step of the composite step 3 uses.
    label: String,
    /// `GITHUB_ACTION`.
    action: String,
    kind: EntryKind,
    /// A composite's step: the frame its steps run in.
    enters: Option<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EntryKind {
    Pre,
    Step,
    End,
}

/// The job's steps, or a composite action's while it runs: their `steps` context, the
/// action's `inputs`, and whether one of them failed.
#[derive(Debug, Clone)]
struct Frame {
    parent: usize,
    /// The entry of the composite's `End`.
    end: usize,
    action: Option<Arc<Action>>,
    steps_context: Object,
    inputs: Value,
    /// The calling step's own `env:`, evaluated: under its steps' own.
    env: Vec<(String, String)>,
    failed: bool,
    message: Option<String>,
    continue_on_error: bool,
}

impl Frame {
    fn new(parent: usize, inputs: Value, action: Option<Arc<Action>>) -> Frame {
        Frame {
            parent,
            end: 0,
            action,
            steps_context: Object::new(),
            inputs,
            env: Vec::new(),
            failed: false,
            message: None,
            continue_on_error: false,
        }
    }
}

/// The action a step uses, when it is one berth read (not a built-in).
fn action_for<'a>(spec: &'a JobSpec, step: &Step) -> Option<&'a Arc<Action>> {
    match &step.action {
        StepAction::Uses { uses, .. } => match spec.run.actions.get(uses) {
            Some(Status::Ready(a)) => Some(a),
            _ => None,
        },
        StepAction::Run { .. } => None,
    }
}

/// The job's entries and frames: `pre`s first, then the steps with composites expanded.
fn plan_entries(spec: &JobSpec) -> (Vec<Entry>, Vec<Frame>) {
    let mut entries = Vec::new();
    let mut frames = vec![Frame::new(0, spec.inputs.clone(), None)];
    let names = action_names(&spec.job.steps);
    for (step, name) in spec.job.steps.iter().zip(&names) {
        if let Some(a) = action_for(spec, step) {
            if let Runs::Node { pre: Some(_), .. }
            | Runs::Docker {
                pre_entrypoint: Some(_),
                ..
            } = &a.manifest.runs
            {
                entries.push(Entry {
                    step: step.clone(),
                    frame: 0,
                    label: format!("{}", step.index),
                    action: name.clone(),
                    kind: EntryKind::Pre,
                    enters: None,
                });
            }
        }
    }
    expand(spec, &spec.job.steps, 0, "", &mut entries, &mut frames);
    (entries, frames)
}

fn expand(
    spec: &JobSpec,
    steps: &[Step],
    frame: usize,
    prefix: &str,
    entries: &mut Vec<Entry>,
    frames: &mut Vec<Frame>,
) {
    for (step, name) in steps.iter().zip(action_names(steps)) {
        let label = format!("{prefix}{}", step.index);
        let at = entries.len();
        entries.push(Entry {
            step: step.clone(),
            frame,
            label: label.clone(),
            action: name.clone(),
            kind: EntryKind::Step,
            enters: None,
        });
        let Some(a) = action_for(spec, step) else {
            continue;
        };
        let Runs::Composite { steps: inner } = &a.manifest.runs else {
            continue;
        };
        let f = frames.len();
        frames.push(Frame::new(frame, Value::Null, Some(a.clone())));
        entries[at].enters = Some(f);
        expand(spec, inner, f, &format!("{label}."), entries, frames);
        frames[f].end = entries.len();
        entries.push(Entry {
            step: step.clone(),
            frame: f,
            label,
            action: name,
            kind: EntryKind::End,
            enters: None,
        });
    }
}

/// `INPUT_<NAME>`: the runner's name of an input's variable.
fn input_var(name: &str) -> String {
    format!("INPUT_{}", name.replace(' ', "_").to_ascii_uppercase())
}

#[derive(Debug, Clone)]
struct Pending {
    /// Position in the job's steps.
    step: usize,
    name: String,
    continue_on_error: bool,
    timeout: Option<Duration>,
    working_dir: Option<String>,
    env: Vec<(String, String)>,
    phase: Phase,
    files: StepFiles,
    /// Outputs gathered so far (setup-python's two commands).
    outputs: Vec<(String, String)>,
}

/// How one step ended, for the `steps` context.
struct StepEnd {
    outcome: &'static str,
    outputs: Vec<(String, String)>,
    message: Option<String>,
}

struct JobRun {
    spec: Arc<JobSpec>,
    base_env: Vec<(String, String)>,
    needs: Value,
    cancelled: bool,
    failed: bool,
    started: bool,
    /// Workflow and job env, then what `$GITHUB_ENV` set.
    env: Vec<(String, String)>,
    prepends: Vec<String>,
    entries: Vec<Entry>,
    frames: Vec<Frame>,
    /// What each step's `pre`/`main` saved to `$GITHUB_STATE`, by entry label.
    states: Vec<(String, Vec<(String, String)>)>,
    /// Cached actions' folders already copied into the container.
    copied: Vec<String>,
    next_step: usize,
    pending: Option<Pending>,
    queued: Option<Command>,
    summaries: Vec<(String, String)>,
    message: Option<String>,
    environment_error: bool,
    first_command_sent: bool,
    default_shell: Option<String>,
    default_dir: Option<String>,
    /// Saves to do after the last step, in the order their steps ran.
    posts: Vec<Post>,
    hasher: Option<Hasher>,
    /// The workflow commands of the job's output (`::add-mask::`, `::error::`).
    commands: Arc<Mutex<Commands>>,
    /// The image of each `uses:` that runs in a container of its own; `Err`: why they are
    /// not known (the job fails at its set-up).
    images: Result<Vec<(String, StepImage)>, String>,
}

/// `GITHUB_ACTION` as the runner names steps: the id, else `__run`, `__run_2`... for
/// scripts and `__owner_repo` for actions.
fn action_names(steps: &[Step]) -> Vec<String> {
    let mut seen: Vec<String> = Vec::new();
    steps
        .iter()
        .map(|s| {
            if let Some(id) = &s.id {
                return id.clone();
            }
            let base = match &s.action {
                StepAction::Run { .. } => "__run".to_string(),
                StepAction::Uses { uses, .. } => {
                    let name = uses.split('@').next().unwrap_or(uses);
                    format!("__{}", name.replace('/', "_"))
                }
            };
            let n = seen.iter().filter(|b| **b == base).count();
            seen.push(base.clone());
            if n == 0 {
                base
            } else {
                format!("{base}_{}", n + 1)
            }
        })
        .collect()
}

/// `owner/name` of a `uses:` in lower case, without the version.
fn action_of(uses: &str) -> String {
    uses.split('@').next().unwrap_or(uses).to_ascii_lowercase()
}

impl JobRun {
    fn new(spec: Arc<JobSpec>, start: Start, needs: Value) -> JobRun {
        let (entries, frames) = plan_entries(&spec);
        let hasher: Option<Hasher> = start.project_dir.clone().map(|root| {
            let workspace = spec.run.workspace.clone();
            Arc::new(move |patterns: &[String]| {
                crate::github::hash_files::hash_files(&root, &workspace, patterns)
            }) as Hasher
        });
        // GitHub's step debug logging: the secret or variable ACTIONS_STEP_DEBUG.
        let debug = spec
            .run
            .secrets
            .iter()
            .chain(&spec.run.vars)
            .any(|(k, v)| k == "ACTIONS_STEP_DEBUG" && v.eq_ignore_ascii_case("true"));
        let commands = Arc::new(Mutex::new(Commands::new(debug, &spec.run.workspace)));
        let images = match &start.project_dir {
            Some(dir) => step_images(&spec, dir),
            None => Ok(Vec::new()),
        };
        JobRun {
            images,
            spec,
            base_env: start.env,
            needs,
            cancelled: start.cancelled,
            failed: false,
            started: false,
            env: Vec::new(),
            prepends: Vec::new(),
            entries,
            frames,
            states: Vec::new(),
            copied: Vec::new(),
            next_step: 0,
            pending: None,
            queued: None,
            summaries: Vec::new(),
            message: None,
            environment_error: false,
            first_command_sent: false,
            default_shell: None,
            default_dir: None,
            posts: Vec::new(),
            hasher,
            commands,
        }
    }

    fn status(&self) -> &'static str {
        if self.cancelled {
            "cancelled"
        } else if self.failed {
            "failure"
        } else {
            "success"
        }
    }

    fn contexts(&self, action: &str, env: &[(String, String)]) -> Contexts {
        self.contexts_in(0, action, env)
    }

    /// The contexts of a step in `frame`: a composite's steps see its `inputs` and `steps`.
    fn contexts_in(&self, frame: usize, action: &str, env: &[(String, String)]) -> Contexts {
        let mut c = base_contexts(&self.spec, self.needs.clone(), action);
        let f = &self.frames[frame];
        if frame > 0 {
            c.insert("inputs", f.inputs.clone());
        }
        c.insert("env", env_value(env))
            .insert("steps", Value::from(f.steps_context.clone()))
            .insert(
                "job",
                Value::object([
                    ("status", Value::from(self.status())),
                    ("services", services_context(&self.spec.service_ports)),
                ]),
            );
        c
    }

    fn host(&self) -> StepHost<'_> {
        self.host_in(0)
    }

    /// A step's status functions: inside a composite, its steps' failures count too.
    fn host_in(&self, frame: usize) -> StepHost<'_> {
        let mut failed = self.failed;
        let mut f = frame;
        while f > 0 {
            failed |= self.frames[f].failed;
            f = self.frames[f].parent;
        }
        StepHost {
            failed,
            cancelled: self.cancelled,
            hasher: self.hasher.as_deref(),
        }
    }

    /// "Set up job": actions berth lacks, the workflow's and job's env, `defaults.run`.
    /// `Err((message, true))`: the job cannot run here (an action not in the cache).
    fn set_up(&mut self) -> Result<(), (String, bool)> {
        let spec = self.spec.clone();
        for entry in self.entries.iter().filter(|e| e.kind == EntryKind::Step) {
            let StepAction::Uses { uses, .. } = &entry.step.action else {
                continue;
            };
            let what = format!("step {} `{}`", entry.label, entry.step.label());
            match spec.run.actions.get(uses) {
                Some(Status::BuiltIn) => {}
                None if BUILT_IN_ACTIONS.contains(&action_of(uses).as_str()) => {}
                Some(Status::Ready(_) | Status::Image(_)) => {}
                Some(Status::Missing(remote)) => {
                    return Err((
                        format!(
                            "{what}: the action `{}` is not in berth's action cache, and berth runs actions without network: `berth actions pull` fetches it",
                            remote.name()
                        ),
                        true,
                    ))
                }
                None => {
                    return Err((
                        format!(
                            "{what}: `{uses}` was not read before the run (berth has {} built in)",
                            BUILT_IN_ACTIONS.join(", ")
                        ),
                        false,
                    ))
                }
            }
        }
        if let Err(e) = &self.images {
            return Err((e.clone(), false));
        }
        let mut contexts = base_contexts(&spec, self.needs.clone(), "");
        let host = ();
        for (scope, env) in [
            (&Scope::WORKFLOW_ENV, &spec.workflow_env),
            (&Scope::JOB_ENV, &spec.job.env),
        ] {
            for (key, text) in env {
                let value = Template::parse(&text.text, scope)
                    .and_then(|t| t.evaluate_string(&contexts, &host))
                    .map_err(|e| (format!("`env: {key}` cannot be evaluated: {e}"), false))?;
                set(&mut self.env, key, value);
            }
        }
        contexts.insert("env", env_value(&self.env));
        let job_defaults = &spec.job.defaults;
        let evaluate = |t: &Text| {
            Template::parse(&t.text, &Scope::JOB_DEFAULTS_RUN)
                .and_then(|t| t.evaluate_string(&contexts, &host))
                .map_err(|e| (format!("`defaults: run` cannot be evaluated: {e}"), false))
        };
        self.default_shell = match (&job_defaults.shell, &spec.workflow_defaults.shell) {
            (Some(t), _) => Some(evaluate(t)?),
            (None, Some(t)) => Some(t.text.clone()),
            (None, None) => None,
        };
        self.default_dir = match (
            &job_defaults.working_directory,
            &spec.workflow_defaults.working_directory,
        ) {
            (Some(t), _) => Some(evaluate(t)?),
            (None, Some(t)) => Some(t.text.clone()),
            (None, None) => None,
        };
        Ok(())
    }

    /// Records a step's end in the `steps` context and the job's status.
    fn record(&mut self, step: usize, continue_on_error: bool, end: StepEnd) {
        let conclusion = if end.outcome == "failure" && continue_on_error {
            "success"
        } else {
            end.outcome
        };
        let entry = &self.entries[step];
        // A composite's end is the calling step's, in the frame that called it.
        let frame = match entry.kind {
            EntryKind::End => self.frames[entry.frame].parent,
            _ => entry.frame,
        };
        if conclusion == "failure" {
            if frame == 0 {
                self.failed = true;
                if self.message.is_none() {
                    self.message = end.message;
                }
            } else {
                let f = &mut self.frames[frame];
                f.failed = true;
                if f.message.is_none() {
                    f.message = end.message;
                }
            }
        }
        if entry.kind == EntryKind::Pre {
            return;
        }
        if let Some(id) = &entry.step.id {
            let outputs = Value::object(end.outputs.into_iter().map(|(k, v)| (k, Value::from(v))));
            self.frames[frame].steps_context.insert(
                id.clone(),
                Value::object([
                    ("outputs", outputs),
                    ("outcome", Value::from(end.outcome)),
                    ("conclusion", Value::from(conclusion)),
                ]),
            );
        }
    }

    /// A step that failed before running anything.
    fn fail(&mut self, step: usize, continue_on_error: bool, message: String) {
        self.record(
            step,
            continue_on_error,
            StepEnd {
                outcome: "failure",
                outputs: Vec::new(),
                message: Some(message),
            },
        );
    }

    /// Decides step `i`: skipped, done without a command, failed, or a command to run.
    fn begin(&mut self, i: usize) -> Option<Command> {
        match self.entries[i].kind {
            EntryKind::End => {
                self.end_composite(i);
                return None;
            }
            EntryKind::Pre => return self.begin_pre(i),
            EntryKind::Step => {}
        }
        let mut entered = false;
        let command = self.begin_step(i, &mut entered);
        if let (Some(f), false) = (self.entries[i].enters, entered) {
            // The composite did not start: its steps and its end are passed over.
            self.next_step = self.frames[f].end + 1;
        }
        command
    }

    /// The environment under a step of `frame`: the job's, then each calling step's `env:`.
    fn frame_env(&self, frame: usize) -> Vec<(String, String)> {
        let mut chain = Vec::new();
        let mut f = frame;
        while f > 0 {
            chain.push(f);
            f = self.frames[f].parent;
        }
        let mut env = self.env.clone();
        for f in chain.into_iter().rev() {
            for (k, v) in &self.frames[f].env {
                set(&mut env, k, v.clone());
            }
        }
        env
    }

    fn begin_step(&mut self, i: usize, entered: &mut bool) -> Option<Command> {
        let spec = self.spec.clone();
        let entry = self.entries[i].clone();
        let step = &entry.step;
        let frame = entry.frame;
        let action = entry.action.clone();
        let label = step.label();
        let what = format!("step {} `{label}`", entry.label);
        let base_env = self.frame_env(frame);
        let contexts = self.contexts_in(frame, &action, &base_env);
        let runs = Condition::parse(
            step.condition.as_ref().map_or("", |t| t.text.as_str()),
            &Scope::STEP_IF,
        )
        .and_then(|c| c.evaluate(&contexts, &self.host_in(frame)));
        match runs {
            Err(e) => {
                self.fail(
                    i,
                    false,
                    format!("{what}: its `if:` cannot be evaluated: {e}"),
                );
                return None;
            }
            Ok(false) => {
                let end = StepEnd {
                    outcome: "skipped",
                    outputs: Vec::new(),
                    message: None,
                };
                self.record(i, false, end);
                return None;
            }
            Ok(true) => {}
        }
        let host = self.host_in(frame);
        let evaluate = |text: &Text, contexts: &Contexts| {
            Template::parse(&text.text, &Scope::STEP)
                .and_then(|t| t.evaluate_string(contexts, &host))
        };
        let mut env = base_env;
        let mut own_env = Vec::new();
        for (key, text) in &step.env {
            match evaluate(text, &contexts) {
                Ok(v) => {
                    set(&mut env, key, v.clone());
                    own_env.push((key.clone(), v));
                }
                Err(e) => {
                    self.fail(
                        i,
                        false,
                        format!("{what}: `env: {key}` cannot be evaluated: {e}"),
                    );
                    return None;
                }
            }
        }
        let contexts = self.contexts_in(frame, &action, &env);
        let continue_on_error = match &step.continue_on_error {
            None => Ok(false),
            Some(Field::Value(b)) => Ok(*b),
            Some(Field::Expr(t)) => Template::parse(&t.text, &Scope::STEP)
                .and_then(|t| t.evaluate(&contexts, &host))
                .map(|v| v.is_truthy()),
        };
        let continue_on_error = match continue_on_error {
            Ok(c) => c,
            Err(e) => {
                self.fail(
                    i,
                    false,
                    format!("{what}: `continue-on-error` cannot be evaluated: {e}"),
                );
                return None;
            }
        };
        let timeout = match &step.timeout_minutes {
            None => Ok(None),
            Some(Field::Value(m)) => Ok(Some(*m)),
            Some(Field::Expr(t)) => Template::parse(&t.text, &Scope::STEP)
                .and_then(|t| t.evaluate(&contexts, &host))
                .map(|v| Some(v.to_number())),
        };
        let timeout = match timeout {
            Ok(m) => m
                .filter(|m| m.is_finite() && *m > 0.0)
                .map(|m| Duration::from_secs_f64(m * 60.0)),
            Err(e) => {
                let message = format!("{what}: `timeout-minutes` cannot be evaluated: {e}");
                self.fail(i, continue_on_error, message);
                return None;
            }
        };
        let name = match &step.name {
            Some(t) if t.has_expressions() => {
                evaluate(t, &contexts).unwrap_or_else(|_| t.text.clone())
            }
            _ => label.clone(),
        };
        let files = StepFiles::new(&entry.label);
        let mut pending = Pending {
            step: i,
            name: name.clone(),
            continue_on_error,
            timeout,
            working_dir: None,
            env,
            phase: Phase::Run,
            files,
            outputs: Vec::new(),
        };
        match &step.action {
            StepAction::Run {
                run,
                shell,
                working_directory,
            } => {
                let script = match evaluate(run, &contexts) {
                    Ok(s) => s,
                    Err(e) => {
                        let message = format!("{what}: `run` cannot be evaluated: {e}");
                        self.fail(i, continue_on_error, message);
                        return None;
                    }
                };
                let shell_text = shell
                    .as_ref()
                    .map(|t| t.text.clone())
                    .or_else(|| self.default_shell.clone())
                    .unwrap_or_default();
                let shell = match Shell::parse(&shell_text) {
                    Ok(s) => s,
                    Err(e) => {
                        self.fail(i, continue_on_error, format!("{what}: {e}"));
                        return None;
                    }
                };
                let dir = match working_directory {
                    Some(t) => match evaluate(t, &contexts) {
                        Ok(d) => Some(d),
                        Err(e) => {
                            let message =
                                format!("{what}: `working-directory` cannot be evaluated: {e}");
                            self.fail(i, continue_on_error, message);
                            return None;
                        }
                    },
                    None => self.default_dir.clone(),
                };
                pending.working_dir = dir
                    .filter(|d| !d.is_empty() && d != ".")
                    .map(|d| self.in_workspace(&d));
                let file = format!("{}/script{}", pending.files.dir, shell.extension());
                let argv = shell.argv(&file, &self.prepends);
                let extra = vec![(file, shell.script(&script))];
                // A composite's script: its action's folder, and the files in it.
                let mut blobs = Vec::new();
                if let Some(a) = self.frames[frame].action.clone() {
                    let dir = a.container_dir(&self.spec.run.workspace);
                    set(&mut pending.env, "GITHUB_ACTION_PATH", dir);
                    match self.action_files(&a) {
                        Ok(files) => blobs = files,
                        Err(e) => {
                            self.fail(i, continue_on_error, format!("{what}: {e}"));
                            return None;
                        }
                    }
                }
                let mut command = self.command(&mut pending, argv, extra, Vec::new());
                command.blobs = blobs;
                self.pending = Some(pending);
                Some(command)
            }
            StepAction::Uses { uses, with } => {
                let mut inputs = Vec::new();
                for (key, text) in with {
                    match evaluate(text, &contexts) {
                        Ok(v) => inputs.push((key.to_ascii_lowercase(), v)),
                        Err(e) => {
                            let message = format!("{what}: `with: {key}` cannot be evaluated: {e}");
                            self.fail(i, continue_on_error, message);
                            return None;
                        }
                    }
                }
                if let Some(a) = action_for(&spec, step).cloned() {
                    let values = match self.action_inputs(&a, &inputs, &contexts, frame) {
                        Ok(v) => v,
                        Err(e) => {
                            self.fail(i, continue_on_error, format!("{what}: {e}"));
                            return None;
                        }
                    };
                    return match &a.manifest.runs {
                        Runs::Composite { .. } => {
                            let f = entry.enters?;
                            let callee = &mut self.frames[f];
                            callee.inputs =
                                Value::object(values.into_iter().map(|(k, v)| (k, Value::from(v))));
                            callee.env = own_env;
                            callee.steps_context = Object::new();
                            callee.failed = false;
                            callee.message = None;
                            callee.continue_on_error = continue_on_error;
                            *entered = true;
                            None
                        }
                        Runs::Node {
                            main,
                            post,
                            post_if,
                            ..
                        } => {
                            if let Some(post) = post {
                                self.posts.push(Post {
                                    step: i,
                                    name: format!("Post {name}"),
                                    kind: PostKind::Node {
                                        action: a.clone(),
                                        script: post.clone(),
                                        condition: post_if.clone(),
                                        inputs: values.clone(),
                                    },
                                });
                            }
                            let label = entry.label.clone();
                            match self.node_command(
                                &mut pending,
                                &label,
                                &a,
                                main,
                                &values,
                                Stage::Main,
                            ) {
                                Ok(command) => {
                                    self.pending = Some(pending);
                                    Some(command)
                                }
                                Err(e) => {
                                    self.fail(i, continue_on_error, format!("{what}: {e}"));
                                    None
                                }
                            }
                        }
                        Runs::Docker {
                            entrypoint,
                            post_entrypoint,
                            post_if,
                            ..
                        } => {
                            if let Some(post) = post_entrypoint {
                                self.posts.push(Post {
                                    step: i,
                                    name: format!("Post {name}"),
                                    kind: PostKind::Docker {
                                        action: a.clone(),
                                        entrypoint: post.clone(),
                                        condition: post_if.clone(),
                                        inputs: values.clone(),
                                    },
                                });
                            }
                            let label = entry.label.clone();
                            let made = self
                                .docker_action_run(&a, &values, entrypoint.clone(), frame, &action)
                                .and_then(|run| {
                                    self.docker_command(
                                        &mut pending,
                                        &label,
                                        uses,
                                        run,
                                        Stage::Main,
                                    )
                                });
                            match made {
                                Ok(command) => {
                                    self.pending = Some(pending);
                                    Some(command)
                                }
                                Err(e) => {
                                    self.fail(i, continue_on_error, format!("{what}: {e}"));
                                    None
                                }
                            }
                        }
                    };
                }
                if let Some(Status::Image(_)) = spec.run.actions.get(uses) {
                    // `docker://image`: `with: args` and `entrypoint` are all it takes.
                    let given = |k: &str| inputs.iter().find(|(n, _)| n == k).map(|(_, v)| v);
                    let made = docker::split_args(given("args").map_or("", |v| v.as_str()))
                        .and_then(|args| {
                            let run = DockerRun {
                                entrypoint: given("entrypoint")
                                    .map(|e| e.trim().to_string())
                                    .filter(|e| !e.is_empty()),
                                args,
                                env: Vec::new(),
                            };
                            let label = entry.label.clone();
                            self.docker_command(&mut pending, &label, uses, run, Stage::Main)
                        });
                    return match made {
                        Ok(command) => {
                            self.pending = Some(pending);
                            Some(command)
                        }
                        Err(e) => {
                            self.fail(i, continue_on_error, format!("{what}: {e}"));
                            None
                        }
                    };
                }
                let input = |k: &str| {
                    inputs
                        .iter()
                        .find(|(n, _)| n == k)
                        .map(|(_, v)| v.trim().to_string())
                        .filter(|v| !v.is_empty())
                };
                match action_of(uses).as_str() {
                    "actions/checkout" => {
                        let path = input("path");
                        if let Some(p) = path.filter(|p| p != "." && *p != self.spec.run.workspace)
                        {
                            let message = format!("{what}: `actions/checkout` with `path: {p}` is not supported yet: berth's workspace is already the checkout, at {}", self.spec.run.workspace);
                            self.fail(i, continue_on_error, message);
                            return None;
                        }
                        let outputs = vec![
                            ("ref".to_string(), self.spec.run.full_ref()),
                            ("commit".to_string(), self.spec.run.sha.clone()),
                        ];
                        let end = StepEnd {
                            outcome: "success",
                            outputs,
                            message: None,
                        };
                        self.record(i, continue_on_error, end);
                        None
                    }
                    action @ ("actions/cache"
                    | "actions/cache/restore"
                    | "actions/cache/save"
                    | "actions/upload-artifact"
                    | "actions/download-artifact") => {
                        let prepared =
                            match actions::prepare(action, &input, &self.spec.run.workspace) {
                                Ok(p) => p,
                                Err(e) => {
                                    self.fail(
                                        i,
                                        continue_on_error,
                                        format!("{what}: `{action}`: {e}"),
                                    );
                                    return None;
                                }
                            };
                        let command = if prepared.needs_home {
                            pending.phase = Phase::Home {
                                operation: prepared.operation,
                                kind: prepared.kind,
                            };
                            self.home_probe(&mut pending)
                        } else {
                            pending.phase = Phase::Action(prepared.kind);
                            self.operation(&mut pending, prepared.operation)
                        };
                        self.pending = Some(pending);
                        Some(command)
                    }
                    _ => {
                        // setup-python; set_up refused every other action.
                        let version = input("python-version").map(|v| {
                            // A list of versions: the last is the one set up (berth sets up
                            // only that one).
                            v.lines()
                                .map(str::trim)
                                .rfind(|l| !l.is_empty())
                                .unwrap_or_default()
                                .to_string()
                        });
                        let version_file = match &version {
                            Some(_) => None,
                            None => Some(
                                input("python-version-file")
                                    .unwrap_or_else(|| ".python-version".to_string()),
                            ),
                        };
                        let update_environment = input("update-environment")
                            .is_none_or(|v| !v.eq_ignore_ascii_case("false"));
                        let dir = pending.files.dir.clone();
                        let copy = format!("{dir}/version-file");
                        let mut script = setup_python::probe_script(
                            &format!("{dir}/pythons"),
                            version_file.as_deref().map(|f| (f, copy.as_str())),
                        );
                        if let Some(cache) = input("cache") {
                            let note = match cache.as_str() {
                                "pip" | "pipenv" | "poetry" => format!("berth's Python cache volume for {cache} stands in for it (berth cache ls)"),
                                _ => "setup-python caches only pip, pipenv or poetry: nothing is cached".to_string(),
                            };
                            script.push_str(&format!("echo 'berth: `cache: {cache}`: {note}'\n"));
                        }
                        let file = format!("{dir}/probe.sh");
                        pending.phase = Phase::PythonProbe {
                            version,
                            version_file,
                            update_environment,
                        };
                        let argv = Shell::Sh.argv(&file, &self.prepends);
                        let collect = vec![format!("{dir}/pythons"), copy];
                        let command =
                            self.command(&mut pending, argv, vec![(file, script)], collect);
                        self.pending = Some(pending);
                        Some(command)
                    }
                }
            }
        }
    }

    /// A command that writes the job's `$HOME` into the step's directory.
    fn home_probe(&mut self, pending: &mut Pending) -> Command {
        let file = format!("{}/{HOME_FILE}", pending.files.dir);
        let argv = ["/bin/sh", "-c", "printf %s \"$HOME\" > \"$1\"", "sh", &file]
            .map(String::from)
            .to_vec();
        self.command(pending, argv, Vec::new(), vec![file])
    }

    /// The engine operation of a pending step.
    fn operation(&mut self, pending: &mut Pending, operation: Operation) -> Command {
        let mut command = self.command(pending, Vec::new(), Vec::new(), Vec::new());
        command.operation = Some(operation);
        command
    }

    /// The next save of `actions/cache` after the job's last step, if the job has succeeded.
    fn next_post(&mut self) -> Option<Command> {
        while let Some(post) = self.posts.pop() {
            let (key, paths) = match post.kind {
                PostKind::Save { key, paths } => (key, paths),
                PostKind::Node {
                    action,
                    script,
                    condition,
                    inputs,
                } => {
                    let make = |run: &mut Self, pending: &mut Pending, label: &str| {
                        run.node_command(pending, label, &action, &script, &inputs, Stage::Post)
                    };
                    match self.action_post(post.step, post.name, condition, StepFiles::new, make) {
                        Some(command) => return Some(command),
                        None => continue,
                    }
                }
                PostKind::Docker {
                    action,
                    entrypoint,
                    condition,
                    inputs,
                } => {
                    let entry_action = self.entries[post.step].action.clone();
                    let make = |run: &mut Self, pending: &mut Pending, label: &str| {
                        let made = run.docker_action_run(
                            &action,
                            &inputs,
                            Some(entrypoint),
                            0,
                            &entry_action,
                        )?;
                        run.docker_command(pending, label, &action.uses, made, Stage::Post)
                    };
                    let files = StepFiles::in_container;
                    match self.action_post(post.step, post.name, condition, files, make) {
                        Some(command) => return Some(command),
                        None => continue,
                    }
                }
            };
            if self.failed || self.cancelled {
                continue;
            }
            let mut pending = Pending {
                step: post.step,
                name: post.name,
                continue_on_error: true,
                timeout: None,
                working_dir: None,
                env: self.env.clone(),
                phase: Phase::Action(ActionKind::PostSave),
                files: StepFiles::new(&self.entries[post.step].label),
                outputs: Vec::new(),
            };
            let operation = Operation::SaveCache { key, paths };
            let command = self.operation(&mut pending, operation);
            self.pending = Some(pending);
            return Some(command);
        }
        None
    }

    /// Does a JavaScript action's `pre` or `post` run: its `pre-if`/`post-if` (`key`; default
    /// `always()`)? One that cannot be evaluated fails the job.
    fn stage_runs(
        &mut self,
        contexts: &Contexts,
        condition: Option<&Text>,
        what: &str,
        key: &str,
    ) -> bool {
        let text = condition.map_or("always()", |t| t.text.as_str());
        let runs = Condition::parse(text, &Scope::STEP_IF)
            .and_then(|c| c.evaluate(contexts, &self.host()));
        match runs {
            Ok(runs) => runs,
            Err(e) => {
                self.job_failed(format!("{what}: its `{key}` cannot be evaluated: {e}"));
                false
            }
        }
    }

    /// An action's `post` (a JavaScript action's script, a Docker action's `post-entrypoint`)
    /// after the job's steps, when its `post-if` (default `always()`) holds; `files` are where
    /// its file commands are, `make` its command.
    fn action_post(
        &mut self,
        step: usize,
        name: String,
        condition: Option<Text>,
        files: fn(&str) -> StepFiles,
        make: impl FnOnce(&mut Self, &mut Pending, &str) -> Result<Command, String>,
    ) -> Option<Command> {
        let entry = self.entries[step].clone();
        let what = format!("step {} `{name}`", entry.label);
        let env = self.env.clone();
        let contexts = self.contexts(&entry.action, &env);
        if !self.stage_runs(&contexts, condition.as_ref(), &what, "post-if") {
            return None;
        }
        let mut pending = Pending {
            step,
            name,
            continue_on_error: false,
            timeout: None,
            working_dir: None,
            env,
            phase: Phase::Run,
            files: files(&format!("{}-post", entry.label)),
            outputs: Vec::new(),
        };
        match make(self, &mut pending, &entry.label) {
            Ok(command) => {
                self.pending = Some(pending);
                Some(command)
            }
            Err(e) => {
                self.job_failed(format!("{what}: {e}"));
                None
            }
        }
    }

    /// A JavaScript action's `pre`, before the job's first step, when its `pre-if` (default
    /// `always()`) holds.
    fn begin_pre(&mut self, i: usize) -> Option<Command> {
        let entry = self.entries[i].clone();
        let a = action_for(&self.spec, &entry.step)?.clone();
        let (pre, pre_if, docker) = match &a.manifest.runs {
            Runs::Node {
                pre: Some(pre),
                pre_if,
                ..
            } => (pre, pre_if, false),
            Runs::Docker {
                pre_entrypoint: Some(pre),
                pre_if,
                ..
            } => (pre, pre_if, true),
            _ => return None,
        };
        let name = format!("Pre {}", entry.step.label());
        let what = format!("step {} `{name}`", entry.label);
        let env = self.env.clone();
        let contexts = self.contexts(&entry.action, &env);
        if !self.stage_runs(&contexts, pre_if.as_ref(), &what, "pre-if") {
            return None;
        }
        let with = match &entry.step.action {
            StepAction::Uses { with, .. } => with.clone(),
            StepAction::Run { .. } => Vec::new(),
        };
        let mut inputs = Vec::new();
        for (key, text) in &with {
            let value = Template::parse(&text.text, &Scope::STEP)
                .and_then(|t| t.evaluate_string(&contexts, &self.host()));
            match value {
                Ok(v) => inputs.push((key.to_ascii_lowercase(), v)),
                Err(e) => {
                    self.job_failed(format!("{what}: `with: {key}` cannot be evaluated: {e}"));
                    return None;
                }
            }
        }
        let values = match self.action_inputs(&a, &inputs, &contexts, 0) {
            Ok(v) => v,
            Err(e) => {
                self.job_failed(format!("{what}: {e}"));
                return None;
            }
        };
        let mut pending = Pending {
            step: i,
            name,
            continue_on_error: false,
            timeout: None,
            working_dir: None,
            env,
            phase: Phase::Run,
            files: StepFiles::new(&format!("{}-pre", entry.label)),
            outputs: Vec::new(),
        };
        let made = if docker {
            pending.files = StepFiles::in_container(&format!("{}-pre", entry.label));
            let uses = a.uses.clone();
            self.docker_action_run(&a, &values, Some(pre.clone()), 0, &entry.action)
                .and_then(|run| {
                    self.docker_command(&mut pending, &entry.label, &uses, run, Stage::Pre)
                })
        } else {
            self.node_command(&mut pending, &entry.label, &a, pre, &values, Stage::Pre)
        };
        match made {
            Ok(command) => {
                self.pending = Some(pending);
                Some(command)
            }
            Err(e) => {
                self.job_failed(format!("{what}: {e}"));
                None
            }
        }
    }

    /// The job fails (a `pre` or `post` that failed: no step of its own to record).
    fn job_failed(&mut self, message: String) {
        self.failed = true;
        if self.message.is_none() {
            self.message = Some(message);
        }
    }

    /// A composite's steps are over: its outputs, evaluated in its frame, are the calling
    /// step's, which failed if one of its steps did.
    fn end_composite(&mut self, i: usize) {
        let entry = self.entries[i].clone();
        let f = entry.frame;
        let frame = self.frames[f].clone();
        let env = self.frame_env(f);
        let contexts = self.contexts_in(f, &entry.action, &env);
        let mut failed = frame.failed;
        let mut message = frame.message.clone();
        let mut outputs = Vec::new();
        if let Some(a) = &frame.action {
            for (name, value) in &a.manifest.outputs {
                let Some(text) = value else {
                    continue;
                };
                let host = self.host_in(f);
                match Template::parse(&text.text, &Scope::STEP)
                    .and_then(|t| t.evaluate_string(&contexts, &host))
                {
                    Ok(v) => outputs.push((name.clone(), v)),
                    Err(e) => {
                        failed = true;
                        message.get_or_insert(format!(
                            "step {} `{}`: output `{name}` of {} cannot be evaluated: {e}",
                            entry.label,
                            entry.step.label(),
                            a.file
                        ));
                    }
                }
            }
        }
        let outcome = match (failed, self.cancelled) {
            (false, _) => "success",
            (true, true) => "cancelled",
            (true, false) => "failure",
        };
        let end = StepEnd {
            outcome,
            outputs,
            message: if failed { message } else { None },
        };
        self.record(i, frame.continue_on_error, end);
    }

    /// An action's inputs: each it declares, from `with:` or its default (evaluated now),
    /// then the other `with:` keys, as the runner passes them.
    fn action_inputs(
        &self,
        a: &Action,
        with: &[(String, String)],
        contexts: &Contexts,
        frame: usize,
    ) -> Result<Vec<(String, String)>, String> {
        let host = self.host_in(frame);
        let mut out: Vec<(String, String)> = Vec::new();
        for input in &a.manifest.inputs {
            let given = with
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(&input.name))
                .map(|(_, v)| v.clone());
            let value = match (given, &input.default) {
                (Some(v), _) => v,
                (None, Some(t)) => Template::parse(&t.text, &Scope::STEP)
                    .and_then(|t| t.evaluate_string(contexts, &host))
                    .map_err(|e| {
                        format!(
                            "input `{}` of {}: its default cannot be evaluated: {e}",
                            input.name, a.file
                        )
                    })?,
                (None, None) => String::new(),
            };
            out.push((input.name.clone(), value));
        }
        for (k, v) in with {
            if !out.iter().any(|(n, _)| n.eq_ignore_ascii_case(k)) {
                out.push((k.clone(), v.clone()));
            }
        }
        Ok(out)
    }

    /// A cached action's files, to copy into the container with the first command that needs
    /// them (a local action is in the workspace already).
    fn action_files(&mut self, a: &Action) -> Result<Vec<(String, Vec<u8>)>, String> {
        let mut files = Vec::new();
        if let found_actions::Location::Cache { dir: host, sha, .. } = &a.location {
            let target = format!("{}/{sha}", found_actions::CONTAINER_DIR);
            if !self.copied.contains(&target) {
                for (rel, bytes) in found_actions::cache::files(host)? {
                    files.push((format!("{target}/{rel}"), bytes));
                }
                self.copied.push(target);
            }
        }
        Ok(files)
    }

    /// The command of a JavaScript action's script, run with the container's `node`: its
    /// inputs as `INPUT_*`, what its `pre` saved as `STATE_*`, its `$GITHUB_STATE` file; a
    /// cached action's files are copied in with its first command.
    fn node_command(
        &mut self,
        pending: &mut Pending,
        label: &str,
        a: &Action,
        script: &str,
        inputs: &[(String, String)],
        stage: Stage,
    ) -> Result<Command, String> {
        let dir = a.container_dir(&self.spec.run.workspace);
        for (k, v) in inputs {
            set(&mut pending.env, &input_var(k), v.clone());
        }
        set(&mut pending.env, "GITHUB_ACTION_PATH", dir.clone());
        set(
            &mut pending.env,
            "GITHUB_STATE",
            pending.files.state.clone(),
        );
        if let Some((_, saved)) = self.states.iter().find(|(l, _)| l == label) {
            for (k, v) in saved.clone() {
                set(&mut pending.env, &format!("STATE_{k}"), v);
            }
        }
        let extra = vec![(pending.files.state.clone(), String::new())];
        let blobs = self.action_files(a)?;
        let marker = format!("{}/no-node", pending.files.dir);
        let file = format!("{dir}/{}", script.trim_start_matches("./"));
        let mut wrapper = shell::path_prefix(&self.prepends);
        wrapper.push_str(
            "if ! command -v node >/dev/null 2>&1; then : > \"$1\"; exit 127; fi; shift; exec node \"$@\"",
        );
        let argv = vec![
            "/bin/sh".to_string(),
            "-c".to_string(),
            wrapper,
            "berth-node".to_string(),
            marker.clone(),
            file,
        ];
        pending.phase = Phase::Node {
            stage,
            marker: marker.clone(),
        };
        let collect = vec![marker, pending.files.state.clone()];
        let mut command = self.command(pending, argv, extra, collect);
        command.blobs = blobs;
        Ok(command)
    }

    /// A Docker action's `args` and `env` evaluated (they see its `inputs`), its inputs as
    /// `INPUT_*`, run by `entrypoint` (`None`: the image's).
    fn docker_action_run(
        &self,
        a: &Action,
        inputs: &[(String, String)],
        entrypoint: Option<String>,
        frame: usize,
        action: &str,
    ) -> Result<DockerRun, String> {
        let Runs::Docker { args, env, .. } = &a.manifest.runs else {
            return Err(format!("{} is not a Docker action", a.file));
        };
        let frame_env = self.frame_env(frame);
        let mut contexts = self.contexts_in(frame, action, &frame_env);
        contexts.insert(
            "inputs",
            Value::object(
                inputs
                    .iter()
                    .map(|(k, v)| (k.clone(), Value::from(v.as_str()))),
            ),
        );
        let host = self.host_in(frame);
        let evaluate = |t: &Text, what: &str| {
            Template::parse(&t.text, &Scope::STEP)
                .and_then(|t| t.evaluate_string(&contexts, &host))
                .map_err(|e| format!("{what} of {} cannot be evaluated: {e}", a.file))
        };
        let mut run = DockerRun {
            entrypoint,
            ..DockerRun::default()
        };
        for (k, v) in inputs {
            set(&mut run.env, &input_var(k), v.clone());
        }
        for (key, text) in env {
            let value = evaluate(text, &format!("`runs: env: {key}`"))?;
            set(&mut run.env, key, value);
        }
        for (n, arg) in args.iter().enumerate() {
            run.args
                .push(evaluate(arg, &format!("`runs: args` {}", n + 1))?);
        }
        Ok(run)
    }

    /// The command of a step that runs in a container of its own: the image its `uses:`
    /// needs, the workspace at /github/workspace, its files under /github as GitHub mounts
    /// them, what its `pre` saved as `STATE_*`.
    fn docker_command(
        &mut self,
        pending: &mut Pending,
        label: &str,
        uses: &str,
        run: DockerRun,
        stage: Stage,
    ) -> Result<Command, String> {
        let image = match &self.images {
            Ok(images) => images
                .iter()
                .find(|(u, _)| u == uses)
                .map(|(_, i)| i.image.clone()),
            Err(e) => return Err(e.clone()),
        };
        let image = image.ok_or_else(|| format!("internal: no image was had for `{uses}`"))?;
        if matches!(pending.phase, Phase::Run) && stage == Stage::Main {
            pending.files = StepFiles::in_container(label);
        }
        pending.working_dir = None;
        pending.phase = Phase::Docker { stage };
        for (k, v) in run.env {
            set(&mut pending.env, &k, v);
        }
        if let Some((_, saved)) = self.states.iter().find(|(l, _)| l == label) {
            for (k, v) in saved.clone() {
                set(&mut pending.env, &format!("STATE_{k}"), v);
            }
        }
        let state = pending.files.state.clone();
        set(&mut pending.env, "GITHUB_STATE", state.clone());
        // The job's container gets its own first files with its first command of its own.
        let first_sent = self.first_command_sent;
        let mut command = self.command(pending, run.args, Vec::new(), vec![state.clone()]);
        self.first_command_sent = first_sent;
        command
            .files
            .retain(|(path, _)| !path.starts_with(run::DIR));
        command.files.push((state, String::new()));
        command.files.push((
            docker::EVENT_PATH.to_string(),
            self.spec.run.event.to_string(),
        ));
        command
            .files
            .push((format!("{}/", docker::HOME), String::new()));
        for (k, v) in [
            ("GITHUB_WORKSPACE", docker::WORKSPACE),
            ("GITHUB_EVENT_PATH", docker::EVENT_PATH),
            ("HOME", docker::HOME),
        ] {
            set(&mut command.env, k, v.to_string());
        }
        command.working_dir = None;
        command.container = Some(StepContainer {
            image,
            entrypoint: run.entrypoint,
            workspace: docker::WORKSPACE.to_string(),
            job_workspace: self.spec.run.workspace.clone(),
        });
        Ok(command)
    }

    /// What an operation's report makes of the step: its outputs, and why it failed.
    fn after_operation(
        &mut self,
        pending: &mut Pending,
        kind: &ActionKind,
        report: Option<&Result<Report, String>>,
    ) -> Option<String> {
        let Some(report) = report else {
            return Some("the engine did not say how the operation went".to_string());
        };
        let out = &mut pending.outputs;
        match (kind, report) {
            // A cache that cannot be saved is a warning on GitHub, never a failure.
            (ActionKind::Save | ActionKind::PostSave, _) => None,
            (_, Err(e)) => Some(e.clone()),
            (
                ActionKind::Restore {
                    key,
                    save,
                    fail_on_miss,
                },
                Ok(Report::CacheRestored { key: matched }),
            ) => {
                let hit = matched.as_deref() == Some(key.as_str());
                out.push(("cache-hit".into(), hit.to_string()));
                out.push(("cache-primary-key".into(), key.clone()));
                out.push((
                    "cache-matched-key".into(),
                    matched.clone().unwrap_or_default(),
                ));
                if let (Some(paths), false) = (save, hit) {
                    self.posts.push(Post {
                        step: pending.step,
                        name: format!("Post {}", pending.name),
                        kind: PostKind::Save {
                            key: key.clone(),
                            paths: paths.clone(),
                        },
                    });
                }
                (matched.is_none() && *fail_on_miss).then(|| {
                    format!("Failed to restore cache entry. Exiting as fail-on-cache-miss is set. Input key: {key}")
                })
            }
            (
                ActionKind::Upload {
                    name,
                    if_no_files,
                    paths,
                },
                Ok(Report::ArtifactUploaded { id, .. }),
            ) => match id {
                Some(id) => {
                    out.push(("artifact-id".into(), id.to_string()));
                    None
                }
                None if *if_no_files == actions::NoFiles::Error => Some(format!(
                    "No files were found with the provided path: {paths}. No artifacts will be uploaded (artifact `{name}`)."
                )),
                None => None,
            },
            (ActionKind::Download { into }, Ok(Report::ArtifactsDownloaded { .. })) => {
                out.push(("download-path".into(), into.clone()));
                None
            }
            (_, Ok(other)) => Some(format!("the engine reported {other:?} for this step")),
        }
    }

    fn in_workspace(&self, dir: &str) -> String {
        if dir.starts_with('/') {
            dir.to_string()
        } else {
            format!(
                "{}/{}",
                self.spec.run.workspace.trim_end_matches('/'),
                dir.trim_start_matches("./")
            )
        }
    }

    /// The command of the pending step: its files, environment and collected files.
    fn command(
        &mut self,
        pending: &mut Pending,
        argv: Vec<String>,
        extra_files: Vec<(String, String)>,
        extra_collect: Vec<String>,
    ) -> Command {
        let spec = &self.spec;
        let action = &self.entries[pending.step].action;
        let f = &pending.files;
        let mut env = spec.container_env.clone();
        for (k, v) in run::default_env(&spec.run, &spec.workflow, &spec.job_id, action, &spec.name)
        {
            set(&mut env, &k, v);
        }
        for (k, v) in self.base_env.iter().chain(&pending.env) {
            set(&mut env, k, v.clone());
        }
        for (k, v) in [
            ("GITHUB_OUTPUT", &f.output),
            ("GITHUB_ENV", &f.env),
            ("GITHUB_PATH", &f.path),
            ("GITHUB_STEP_SUMMARY", &f.summary),
        ] {
            set(&mut env, k, v.clone());
        }
        let mut files: Vec<(String, String)> = Vec::new();
        if !self.first_command_sent {
            self.first_command_sent = true;
            files.push((run::EVENT_PATH.to_string(), spec.run.event.to_string()));
            // RUNNER_TEMP exists from the start.
            files.push((format!("{}/.berth", run::RUNNER_TEMP), String::new()));
        }
        for path in [&f.output, &f.env, &f.path, &f.summary] {
            files.push((path.clone(), String::new()));
        }
        files.extend(extra_files);
        let mut collect = vec![
            f.output.clone(),
            f.env.clone(),
            f.path.clone(),
            f.summary.clone(),
        ];
        collect.extend(extra_collect);
        Command {
            name: pending.name.clone(),
            files,
            argv,
            env,
            working_dir: pending.working_dir.clone(),
            timeout: pending.timeout,
            collect,
            operation: None,
            container: None,
            blobs: Vec::new(),
        }
    }

    /// setup-python's probe ended well: choose the interpreter, or say what is missing.
    fn after_probe(&mut self, pending: &mut Pending, ended: &Ended) -> Result<Command, String> {
        let Phase::PythonProbe {
            version,
            version_file,
            update_environment,
        } = pending.phase.clone()
        else {
            return Err("internal: not a probe".to_string());
        };
        let read = |path: String| {
            ended
                .files
                .iter()
                .find(|(p, _)| *p == path)
                .map(|(_, c)| c.clone())
        };
        let dir = pending.files.dir.clone();
        let candidates =
            setup_python::parse_probe(&read(format!("{dir}/pythons")).unwrap_or_default());
        let requested = match (version, &version_file) {
            (Some(v), _) => Some(v),
            (None, Some(file)) => match read(format!("{dir}/version-file")) {
                Some(content) => Some(setup_python::version_from_file(file, &content).ok_or_else(
                    || format!("`actions/setup-python`: `{file}` names no Python version"),
                )?),
                // No `.python-version`: setup-python uses the Python on PATH.
                None if file == ".python-version" => None,
                None => {
                    return Err(format!(
                        "`actions/setup-python`: the python-version-file `{file}` is not in the workspace"
                    ))
                }
            },
            (None, None) => None,
        };
        let chosen = match &requested {
            Some(text) => setup_python::Spec::parse(text)
                .map_err(|e| format!("`actions/setup-python`: python-version {e}"))?
                .choose(&candidates),
            None => candidates.first(),
        };
        let Some(chosen) = chosen else {
            self.environment_error = true;
            let has = if candidates.is_empty() {
                "it has no Python at all".to_string()
            } else {
                let list: Vec<String> = candidates
                    .iter()
                    .map(|c| format!("{} at {}", c.version_text(), c.path))
                    .collect();
                format!("it has {}", list.join(", "))
            };
            let how = match &self.spec.platform_label {
                Some(label) => format!(
                    "run the job in an image that has it with `--platform {label}=IMAGE`, or give the job a `container:` that has it"
                ),
                None => "give the job a `container:` image that has it".to_string(),
            };
            return Err(format!(
                "`actions/setup-python`: Python {} is not in the image {} ({has}); berth does not download Pythons yet: {how}",
                requested.as_deref().unwrap_or("(any)"),
                self.spec.image
            ));
        };
        let script = setup_python::install_script(chosen, update_environment);
        let file = format!("{dir}/install.sh");
        pending.phase = Phase::PythonInstall;
        let argv = Shell::Sh.argv(&file, &self.prepends);
        Ok(self.command(pending, argv, vec![(file, script)], Vec::new()))
    }
}

impl StepsRun for JobRun {
    fn next(&mut self) -> Result<Option<Command>, String> {
        if !self.started {
            self.started = true;
            if let Err((message, unrunnable)) = self.set_up() {
                self.failed = true;
                self.message = Some(message.clone());
                self.next_step = self.entries.len();
                if unrunnable {
                    // Not the project's failure: the job's summary says why, exit 3.
                    self.environment_error = true;
                    return Ok(None);
                }
                return Err(message);
            }
        }
        if let Some(command) = self.queued.take() {
            return Ok(Some(command));
        }
        while self.pending.is_none() && self.next_step < self.entries.len() {
            let i = self.next_step;
            self.next_step += 1;
            if let Some(command) = self.begin(i) {
                return Ok(Some(command));
            }
        }
        if self.pending.is_none() {
            return Ok(self.next_post());
        }
        Ok(None)
    }

    fn finished(&mut self, ended: Ended) {
        let Some(mut pending) = self.pending.take() else {
            return;
        };
        let read = |path: &str| {
            ended
                .files
                .iter()
                .find(|(p, _)| p == path)
                .map_or("", |(_, c)| c.as_str())
        };
        let what = format!(
            "step {} `{}`",
            self.entries[pending.step].label, pending.name
        );
        let mut problem = if ended.timed_out {
            Some(format!("{what} timed out"))
        } else if ended.exit_code != 0 {
            Some(format!("{what} failed with exit code {}", ended.exit_code))
        } else {
            None
        };
        if let Phase::Node { marker, .. } = &pending.phase {
            if ended.files.iter().any(|(p, _)| p == marker) {
                self.environment_error = true;
                let uses = match &self.entries[pending.step].step.action {
                    StepAction::Uses { uses, .. } => uses.clone(),
                    StepAction::Run { .. } => String::new(),
                };
                let how = match &self.spec.platform_label {
                    Some(label) => format!("`--platform {label}=IMAGE` with an image that has node, or a `container:` that has it"),
                    None => "a `container:` image that has node".to_string(),
                };
                problem = Some(format!(
                    "{what}: the JavaScript action `{uses}` runs with the job's `node`, and the image {} has none: give the job {how}",
                    self.spec.image
                ));
            }
        }
        let effects = self
            .commands
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .end_step();
        if let Some(why) = effects.failure {
            problem = problem.or(Some(format!("{what}: {why}")));
        }
        pending.outputs.extend(effects.outputs);
        for (k, v) in effects.env {
            set(&mut self.env, &k, v);
        }
        file_commands::prepend_paths(&mut self.prepends, effects.paths);
        // The runner reads the files whatever the step's result.
        let f = pending.files.clone();
        match file_commands::parse_key_values(read(&f.output)) {
            Ok(outputs) => pending.outputs.extend(outputs),
            Err(e) => problem = problem.or(Some(format!("{what}: $GITHUB_OUTPUT: {e}"))),
        }
        match file_commands::parse_key_values(read(&f.env)) {
            Ok(vars) => {
                for (k, v) in vars {
                    set(&mut self.env, &k, v);
                }
            }
            Err(e) => problem = problem.or(Some(format!("{what}: $GITHUB_ENV: {e}"))),
        }
        file_commands::prepend_paths(&mut self.prepends, file_commands::parse_path(read(&f.path)));
        if let Phase::Node { .. } | Phase::Docker { .. } = &pending.phase {
            match file_commands::parse_key_values(read(&f.state)) {
                Ok(saved) if !saved.is_empty() => {
                    let label = self.entries[pending.step].label.clone();
                    match self.states.iter_mut().find(|(l, _)| *l == label) {
                        Some((_, all)) => all.extend(saved),
                        None => self.states.push((label, saved)),
                    }
                }
                Ok(_) => {}
                Err(e) => problem = problem.or(Some(format!("{what}: $GITHUB_STATE: {e}"))),
            }
        }
        let summary = read(&f.summary);
        if !summary.trim().is_empty() {
            self.summaries
                .push((pending.name.clone(), summary.to_string()));
        }
        if problem.is_none() {
            match pending.phase.clone() {
                Phase::PythonProbe { .. } => match self.after_probe(&mut pending, &ended) {
                    Ok(command) => {
                        self.queued = Some(command);
                        self.pending = Some(pending);
                        return;
                    }
                    Err(message) => problem = Some(format!("{what}: {message}")),
                },
                Phase::Home { operation, kind } => {
                    let home = read(&format!("{}/{HOME_FILE}", f.dir)).trim().to_string();
                    if home.is_empty() || !home.starts_with('/') {
                        problem = Some(format!(
                            "{what}: the job's HOME is not set: `~` names no directory"
                        ));
                    } else {
                        let mut operation = operation.clone();
                        actions::with_home(&mut operation, &home);
                        let mut kind = kind.clone();
                        actions::kind_with_home(&mut kind, &home);
                        pending.phase = Phase::Action(kind);
                        self.queued = Some(self.operation(&mut pending, operation));
                        self.pending = Some(pending);
                        return;
                    }
                }
                Phase::Action(kind) => {
                    let kind = kind.clone();
                    problem = self
                        .after_operation(&mut pending, &kind, ended.operation.as_ref())
                        .map(|why| format!("{what}: {why}"));
                    if kind == ActionKind::PostSave {
                        // Not a step of the job's: nothing to record.
                        return;
                    }
                }
                Phase::PythonInstall | Phase::Run | Phase::Node { .. } | Phase::Docker { .. } => {}
            }
        } else if matches!(pending.phase, Phase::PythonInstall)
            && ended.exit_code == setup_python::NO_VENV_EXIT
        {
            self.environment_error = true;
        }
        if let Phase::Node {
            stage: Stage::Pre | Stage::Post,
            ..
        }
        | Phase::Docker {
            stage: Stage::Pre | Stage::Post,
        } = pending.phase
        {
            // A `pre` or `post` has no step of its own: a failure is the job's.
            if let Some(message) = problem {
                self.job_failed(message);
            }
            return;
        }
        let outcome = match &problem {
            None => "success",
            Some(_) if self.cancelled => "cancelled",
            Some(_) => "failure",
        };
        let end = StepEnd {
            outcome,
            outputs: pending.outputs,
            message: problem,
        };
        self.record(pending.step, pending.continue_on_error, end);
    }

    fn cancel(&mut self) {
        self.cancelled = true;
    }

    fn outcome(&self) -> Outcome {
        let contexts = self.contexts("", &self.env);
        let mut outputs = Vec::new();
        for (key, text) in &self.spec.job.outputs {
            // An output that cannot be evaluated is left out, as GitHub leaves it empty.
            if let Ok(v) = Template::parse(&text.text, &Scope::JOB_OUTPUTS)
                .and_then(|t| t.evaluate_string(&contexts, &()))
            {
                outputs.push((key.clone(), v));
            }
        }
        Outcome {
            success: !self.failed && !self.cancelled,
            message: self
                .message
                .clone()
                .or_else(|| self.cancelled.then(|| "the job was cancelled".to_string())),
            outputs,
            summaries: self.summaries.clone(),
            environment_error: self.environment_error,
            annotations: self
                .commands
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .summary(),
        }
    }

    fn output_filter(&mut self) -> Option<Box<dyn OutputFilter>> {
        let pending = self.pending.as_ref()?;
        let allow_unsecure = self.base_env.iter().chain(&pending.env).any(|(k, v)| {
            k == "ACTIONS_ALLOW_UNSECURE_COMMANDS" && v.trim().eq_ignore_ascii_case("true")
        });
        self.commands
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .begin_step(&pending.name, allow_unsecure);
        Some(Box::new(StepFilter(self.commands.clone())))
    }
}
