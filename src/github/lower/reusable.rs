//! Jobs that call a reusable workflow (`jobs.<id>.uses:`) become the called workflow's jobs,
//! as GitHub runs them: each named `<caller> / <called>` (`call/build` in `berth plan`), the
//! first ones needing what the caller needs, all of them run only when the caller's `if:`
//! holds, with the `inputs` the caller's `with:` gives (typed and checked against
//! `on.workflow_call.inputs`) and the `secrets` it passes (by name, or `inherit`). The jobs
//! that need the caller see one result for it, with the called workflow's `outputs`.
//!
//! A called workflow's jobs are pipeline jobs whose `base_name` is their full id
//! (`call/build`, `outer/inner/build`): what the engine gives back in each
//! [`NeedResult`]. [`CalledSteps`] shows each job the needs of its own workflow under their
//! ids there, a call folded into one result ([`view`]).

use std::sync::{Arc, OnceLock};

use crate::github::expr::{Contexts, Scope, Template, Value};
use crate::github::run::{self, Run, WorkflowFacts};
use crate::github::steps::{needs_context, JobSpec, JobSteps};
use crate::github::workflow::{InputType, Reusable, RunDefaults, RunsOn, StepsJob, Text, Trigger};
use crate::pipeline::steps::{Command, Ended, NeedResult, Outcome, Start, Steps, StepsRun};
use crate::pipeline::Checkout;
use crate::source::yaml::Span;

/// Every call of the lowering, filled in once all are known (the jobs are made before).
pub(super) type Frames = Arc<OnceLock<Vec<Arc<CallFrame>>>>;

/// Where a workflow's jobs sit: the top workflow, or one a job calls.
#[derive(Debug, Clone, Default)]
pub(super) struct Site {
    /// What its jobs' ids are prefixed with: "" at the top, `call/` (`outer/inner/`) below.
    pub prefix: String,
    /// What its jobs' names are prefixed with: "" or `Caller name / `.
    pub display: String,
    /// The call that made it; `None` at the top.
    pub frame: Option<Arc<CallFrame>>,
    pub frames: Frames,
    /// Its jobs' steps are wrapped in [`CalledSteps`]: in a called workflow, and in one that
    /// calls a workflow (its jobs may need the call).
    pub wrap: bool,
}

impl Site {
    /// The steps the engine gets for a job of this site.
    pub fn steps(&self, steps: JobSteps) -> Arc<dyn Steps> {
        if !self.wrap {
            return Arc::new(steps);
        }
        Arc::new(CalledSteps {
            steps,
            frame: self.frame.clone(),
            prefix: self.prefix.clone(),
            frames: self.frames.clone(),
        })
    }

    /// The needs `needs` (ids of this site's workflow) as the job's own view shows them.
    pub fn view(&self, needs: &[NeedResult]) -> Vec<NeedResult> {
        if !self.wrap {
            return needs.to_vec();
        }
        view(frames(&self.frames), &self.prefix, needs)
    }
}

fn frames(frames: &Frames) -> &[Arc<CallFrame>] {
    frames.get().map_or(&[], |v| v.as_slice())
}

/// One call of a reusable workflow (one combination of a matrix of calls).
#[derive(Debug)]
pub(super) struct CallFrame {
    /// The call around the caller; `None`: the caller is a job of the top workflow.
    pub parent: Option<Arc<CallFrame>>,
    /// The caller's workflow's prefix, and the called workflow's (`call/`).
    pub parent_prefix: String,
    pub prefix: String,
    /// The calling job: its id, needs and `if:`, as its workflow names them.
    pub caller: String,
    pub needs: Vec<String>,
    pub condition: Option<Text>,
    pub call: Reusable,
    /// The called workflow's `on: workflow_call`, and its file.
    pub trigger: Trigger,
    pub file: String,
    /// The caller's `matrix` and `strategy` contexts.
    pub matrix: Value,
    pub strategy: Value,
    /// The run, with the top workflow's secrets, and the top workflow's facts and inputs.
    pub run: Arc<Run>,
    pub facts: WorkflowFacts,
    pub top_inputs: Value,
}

impl CallFrame {
    fn parent_inputs(&self, all: &[Arc<CallFrame>], needs: &[NeedResult]) -> Result<Value, String> {
        match &self.parent {
            Some(p) => p.inputs(all, needs),
            None => Ok(self.top_inputs.clone()),
        }
    }

    fn parent_secrets(
        &self,
        all: &[Arc<CallFrame>],
        needs: &[NeedResult],
    ) -> Result<Vec<(String, String)>, String> {
        match &self.parent {
            Some(p) => p.secrets(all, needs),
            None => Ok(self.run.secrets.clone()),
        }
    }

    /// How the caller's needs ended, under their ids in the caller's workflow.
    fn caller_view(&self, all: &[Arc<CallFrame>], needs: &[NeedResult]) -> Vec<NeedResult> {
        // Only the caller's needs: the call's own result reads this (its outputs its inputs).
        view_of(all, &self.parent_prefix, needs, Some(&self.needs))
    }

    /// The contexts of the caller's `with:` and `secrets:`.
    fn caller_contexts(
        &self,
        all: &[Arc<CallFrame>],
        needs: &[NeedResult],
    ) -> Result<Contexts, String> {
        let secrets = self.parent_secrets(all, needs)?;
        let mut ctx = Contexts::new();
        ctx.insert(
            "github",
            run::github_context(&self.run, &self.facts, &self.caller, ""),
        )
        .insert("inputs", self.parent_inputs(all, needs)?)
        .insert("vars", run::vars_context(&self.run))
        .insert("secrets", secrets_value(&secrets))
        .insert("matrix", self.matrix.clone())
        .insert("strategy", self.strategy.clone())
        .insert("needs", needs_context(&self.caller_view(all, needs)));
        Ok(ctx)
    }

    /// The called workflow's `inputs` context, given how the jobs ended.
    fn inputs(&self, all: &[Arc<CallFrame>], needs: &[NeedResult]) -> Result<Value, String> {
        let ctx = self.caller_contexts(all, needs)?;
        inputs(&self.call, &self.trigger, &ctx, true)
            .map_err(|e| format!("job `{}` calling {}: {}", self.caller, self.file, e.message))
    }

    /// The called workflow's `secrets`: the caller's (`inherit`) or those it names.
    fn secrets(
        &self,
        all: &[Arc<CallFrame>],
        needs: &[NeedResult],
    ) -> Result<Vec<(String, String)>, String> {
        if self.call.secrets_inherit {
            return self.parent_secrets(all, needs);
        }
        let ctx = self.caller_contexts(all, needs)?;
        let mut out = Vec::new();
        for (name, text) in &self.call.secrets {
            let value = Template::parse(&text.text, &Scope::ALL)
                .and_then(|t| t.evaluate_string(&ctx, &()))
                .map_err(|e| {
                    format!(
                        "job `{}`: `secrets: {name}` cannot be evaluated: {e}",
                        self.caller
                    )
                })?;
            out.push((name.clone(), value));
        }
        Ok(out)
    }

    /// The caller's `if:` as a job's condition, with the caller's contexts.
    fn caller_steps(
        &self,
        all: &[Arc<CallFrame>],
        needs: &[NeedResult],
    ) -> Result<JobSteps, String> {
        let mut run = (*self.run).clone();
        run.secrets = self.parent_secrets(all, needs)?;
        let spec = JobSpec {
            run: Arc::new(run),
            workflow: self.facts.clone(),
            workflow_env: Vec::new(),
            workflow_defaults: RunDefaults::default(),
            inputs: self.parent_inputs(all, needs)?,
            job_id: self.caller.clone(),
            name: self.caller.clone(),
            condition: self.condition.clone(),
            job: StepsJob {
                runs_on: RunsOn::default(),
                environment: None,
                timeout_minutes: None,
                continue_on_error: None,
                container: None,
                services: Vec::new(),
                outputs: Vec::new(),
                env: Vec::new(),
                defaults: RunDefaults::default(),
                steps: Vec::new(),
            },
            matrix: self.matrix.clone(),
            strategy: self.strategy.clone(),
            image: String::new(),
            platform_label: None,
            container_env: Vec::new(),
            service_ports: Vec::new(),
        };
        JobSteps::new(spec).map_err(|e| format!("job `{}`: `if` cannot be read: {e}", self.caller))
    }

    /// The called workflow's `outputs`, from its jobs' (`jobs` is their view).
    fn outputs(
        &self,
        all: &[Arc<CallFrame>],
        needs: &[NeedResult],
        jobs: &[NeedResult],
    ) -> Vec<(String, String)> {
        let mut ctx = Contexts::new();
        ctx.insert(
            "github",
            run::github_context(&self.run, &self.facts, &self.caller, ""),
        )
        .insert("vars", run::vars_context(&self.run))
        .insert(
            "inputs",
            self.inputs(all, needs)
                .unwrap_or_else(|_| Value::object(Vec::<(String, Value)>::new())),
        )
        .insert("jobs", needs_context(jobs));
        // An output that cannot be evaluated is empty, as a job's is.
        self.trigger
            .outputs
            .iter()
            .map(|(name, text)| {
                let value = Template::parse(&text.text, &Scope::ALL)
                    .and_then(|t| t.evaluate_string(&ctx, &()))
                    .unwrap_or_default();
                (name.clone(), value)
            })
            .collect()
    }
}

/// The `secrets` context of these secrets (as [`run::secrets_context`] makes the run's).
fn secrets_value(secrets: &[(String, String)]) -> Value {
    let mut o = crate::github::expr::Object::new();
    o.insert("GITHUB_TOKEN", Value::from(""));
    for (k, v) in secrets {
        o.insert(k.clone(), Value::from(v.as_str()));
    }
    Value::from(o)
}

/// Why `with:` does not fit the called workflow's inputs, and where.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct InputError {
    pub message: String,
    pub span: Option<Span>,
}

/// The called workflow's `inputs` context from the caller's `with:` evaluated with `ctx`,
/// each value of its declared type, defaults for those not given. A literal of the wrong
/// type, an input it does not declare or a required one missing is an error; so is an
/// expression's value of the wrong type when `strict` (at run time: before it, `needs` is
/// not known and reads as null).
pub(super) fn inputs(
    call: &Reusable,
    trigger: &Trigger,
    ctx: &Contexts,
    strict: bool,
) -> Result<Value, InputError> {
    for (name, text) in &call.with {
        if !trigger
            .inputs
            .iter()
            .any(|i| i.name.eq_ignore_ascii_case(name))
        {
            let declared: Vec<&str> = trigger.inputs.iter().map(|i| i.name.as_str()).collect();
            let declared = if declared.is_empty() {
                "it declares none".to_string()
            } else {
                format!("its inputs: {}", declared.join(", "))
            };
            return Err(InputError {
                message: format!(
                    "`with: {name}`: `{}` has no input `{name}` ({declared})",
                    call.uses
                ),
                span: Some(text.span),
            });
        }
    }
    let mut out = crate::github::expr::Object::new();
    for input in &trigger.inputs {
        let given = call
            .with
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(&input.name));
        let value = match given {
            Some((key, text)) => {
                let literal = !text.has_expressions();
                let value = if literal {
                    call.with_values
                        .iter()
                        .find(|(k, _)| k == key)
                        .map_or_else(|| Value::from(text.text.as_str()), |(_, v)| v.clone())
                } else {
                    match Template::parse(&text.text, &Scope::ALL)
                        .and_then(|t| t.evaluate(ctx, &()))
                    {
                        Ok(v) => v,
                        Err(e) if strict => {
                            return Err(InputError {
                                message: format!("`with: {key}` cannot be evaluated: {e}"),
                                span: Some(text.span),
                            })
                        }
                        Err(_) => Value::Null,
                    }
                };
                match typed(&value, input.kind, literal) {
                    Some(v) => v,
                    None if literal || strict => {
                        return Err(InputError {
                            message: format!(
                                "`with: {key}` is {} `{}`, but the input `{}` of `{}` is a {}",
                                article(&value.kind_name().to_ascii_lowercase()),
                                value.to_github_string(),
                                input.name,
                                call.uses,
                                type_name(input.kind)
                            ),
                            span: Some(text.span),
                        })
                    }
                    None => empty(input.kind),
                }
            }
            None => match &input.default {
                _ if input.required => {
                    return Err(InputError {
                        message: format!(
                            "`{}` requires the input `{}`, which `with:` does not give",
                            call.uses, input.name
                        ),
                        span: Some(call.uses_span),
                    })
                }
                Some(Value::String(s)) if s.contains("${{") => {
                    let v = Template::parse(s, &Scope::ALL)
                        .and_then(|t| t.evaluate(ctx, &()))
                        .unwrap_or(Value::Null);
                    typed(&v, input.kind, false).unwrap_or_else(|| empty(input.kind))
                }
                Some(default) => {
                    typed(default, input.kind, false).unwrap_or_else(|| empty(input.kind))
                }
                None => empty(input.kind),
            },
        };
        out.insert(input.name.clone(), value);
    }
    Ok(Value::from(out))
}

/// `value` as an input of `kind`; `None`: it is not one. A literal must be of the type (as
/// GitHub checks `with:`); an expression's string converts (`'true'`, `'3'`).
fn typed(value: &Value, kind: InputType, literal: bool) -> Option<Value> {
    match (kind, value) {
        (InputType::Boolean, Value::Bool(_)) | (InputType::Number, Value::Number(_)) => {
            Some(value.clone())
        }
        (InputType::Boolean, Value::String(s)) if !literal => match s.to_ascii_lowercase().as_str()
        {
            "true" => Some(Value::Bool(true)),
            "false" => Some(Value::Bool(false)),
            _ => None,
        },
        (InputType::Number, Value::String(s)) if !literal => {
            s.trim().parse::<f64>().ok().map(Value::Number)
        }
        (InputType::Boolean | InputType::Number, _) => None,
        (_, Value::String(_)) => Some(value.clone()),
        (_, Value::Bool(_) | Value::Number(_)) if !literal => {
            Some(Value::from(value.to_github_string()))
        }
        (_, Value::Null) if !literal => Some(Value::from("")),
        _ => None,
    }
}

/// An input neither given nor defaulted.
fn empty(kind: InputType) -> Value {
    match kind {
        InputType::Boolean => Value::Bool(false),
        InputType::Number => Value::Number(0.0),
        _ => Value::from(""),
    }
}

fn type_name(kind: InputType) -> &'static str {
    match kind {
        InputType::Boolean => "boolean",
        InputType::Number => "number",
        _ => "string",
    }
}

fn article(kind: &str) -> String {
    match kind.chars().next() {
        Some('a' | 'e' | 'i' | 'o' | 'u') => format!("an {kind}"),
        _ => format!("a {kind}"),
    }
}

/// How the jobs of the workflow whose jobs' ids start with `prefix` ended, by their ids in
/// it: a call's jobs folded into one result named after the caller, with the called
/// workflow's outputs. Results of jobs outside it are left out.
pub(super) fn view(all: &[Arc<CallFrame>], prefix: &str, needs: &[NeedResult]) -> Vec<NeedResult> {
    view_of(all, prefix, needs, None)
}

/// [`view`] of the jobs `only` names (all: `None`).
fn view_of(
    all: &[Arc<CallFrame>],
    prefix: &str,
    needs: &[NeedResult],
    only: Option<&[String]>,
) -> Vec<NeedResult> {
    let mut out = Vec::new();
    let mut calls: Vec<String> = Vec::new();
    for n in needs {
        let Some(rest) = strip_prefix(&n.job, prefix) else {
            continue;
        };
        let id = rest.split('/').next().unwrap_or(rest);
        if only.is_some_and(|o| !o.iter().any(|i| i.eq_ignore_ascii_case(id))) {
            continue;
        }
        match rest.split_once('/') {
            None => out.push(NeedResult {
                job: rest.to_string(),
                ..n.clone()
            }),
            Some((call, _)) => {
                if !calls.iter().any(|c| c.eq_ignore_ascii_case(call)) {
                    calls.push(call.to_string());
                }
            }
        }
    }
    for call in calls {
        let inner_prefix = format!("{prefix}{call}/");
        let jobs = view(all, &inner_prefix, needs);
        let any = |r: &str| jobs.iter().any(|n| n.result == r);
        let result = if any("failure") {
            "failure"
        } else if any("cancelled") {
            "cancelled"
        } else if jobs.iter().all(|n| n.result == "skipped") {
            "skipped"
        } else {
            "success"
        };
        // A matrix of calls: the last combination's outputs, as GitHub keeps the last.
        let frame = all
            .iter()
            .rev()
            .find(|f| f.prefix.eq_ignore_ascii_case(&inner_prefix));
        let outputs = frame.map_or_else(Vec::new, |f| f.outputs(all, needs, &jobs));
        out.push(NeedResult {
            job: call,
            result: result.to_string(),
            outputs,
        });
    }
    out
}

fn strip_prefix<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

/// A job's steps seen from where its workflow sits: the callers' `if:` decide first, its
/// `inputs` and `secrets` are evaluated with how the callers' needs ended, and its needs are
/// shown under their ids in its own workflow.
#[derive(Debug)]
pub(super) struct CalledSteps {
    /// The job's steps as lowered (inputs as known before the run).
    steps: JobSteps,
    frame: Option<Arc<CallFrame>>,
    prefix: String,
    frames: Frames,
}

impl CalledSteps {
    fn own(&self, needs: &[NeedResult]) -> Vec<NeedResult> {
        view(frames(&self.frames), &self.prefix, needs)
    }

    /// The calls around the job, the outermost first.
    fn chain(&self) -> Vec<Arc<CallFrame>> {
        let mut chain = Vec::new();
        let mut frame = self.frame.clone();
        while let Some(f) = frame {
            frame = f.parent.clone();
            chain.push(f);
        }
        chain.reverse();
        chain
    }

    /// `Some(why)`: a caller around the job does not run, so neither does it.
    fn caller_skipped(
        &self,
        needs: &[NeedResult],
        cancelled: bool,
    ) -> Result<Option<String>, String> {
        let all = frames(&self.frames);
        for frame in self.chain() {
            let steps = frame.caller_steps(all, needs)?;
            let seen = frame.caller_view(all, needs);
            if !steps.should_run(&seen, cancelled)? {
                return Ok(Some(format!(
                    "the job `{}` that calls {} does not run: {}",
                    frame.caller,
                    frame.file,
                    steps.skip_reason(&seen)
                )));
            }
        }
        Ok(None)
    }

    /// The steps with the `inputs` and `secrets` the callers give, now that `needs` ended.
    fn steps_for(&self, needs: &[NeedResult]) -> Result<JobSteps, String> {
        let Some(frame) = &self.frame else {
            return JobSteps::new(self.steps.spec().clone());
        };
        let all = frames(&self.frames);
        let spec = self.steps.spec();
        let mut run = (*spec.run).clone();
        run.secrets = frame.secrets(all, needs)?;
        JobSteps::new(JobSpec {
            run: Arc::new(run),
            inputs: frame.inputs(all, needs)?,
            ..spec.clone()
        })
    }
}

impl Steps for CalledSteps {
    fn should_run(&self, needs: &[NeedResult], cancelled: bool) -> Result<bool, String> {
        if self.caller_skipped(needs, cancelled)?.is_some() {
            return Ok(false);
        }
        self.steps_for(needs)?
            .should_run(&self.own(needs), cancelled)
    }

    fn skip_reason(&self, needs: &[NeedResult]) -> String {
        match self.caller_skipped(needs, false) {
            Ok(Some(why)) => why,
            _ => self.steps.skip_reason(&self.own(needs)),
        }
    }

    fn start(&self, start: Start) -> Box<dyn StepsRun> {
        let own = self.own(&start.needs);
        match self.steps_for(&start.needs) {
            Ok(steps) => steps.start(Start {
                needs: own,
                ..start
            }),
            Err(message) => Box::new(Refused(message)),
        }
    }

    fn commands(&self) -> Vec<String> {
        self.steps.commands()
    }

    fn cached_tools(&self) -> Vec<String> {
        self.steps.cached_tools()
    }

    fn checkout(&self) -> Option<Checkout> {
        self.steps.checkout()
    }
}

/// A job whose inputs cannot be made: it fails with why, running nothing.
struct Refused(String);

impl StepsRun for Refused {
    fn next(&mut self) -> Result<Option<Command>, String> {
        Err(self.0.clone())
    }

    fn finished(&mut self, _ended: Ended) {}

    fn cancel(&mut self) {}

    fn outcome(&self) -> Outcome {
        Outcome {
            success: false,
            message: Some(self.0.clone()),
            ..Outcome::default()
        }
    }
}
