//! A parsed workflow made the [`Pipeline`] berth runs: one pipeline job per matrix
//! combination, named by its check-run name (`test (3.11, ubuntu-latest)`), needing every job
//! of the jobs it `needs` (a need on a matrix waits for all its combinations), in the image of
//! its `container:` or of its `runs-on` label through the platform map, its steps behind
//! [`JobSteps`]. Also which workflows an event triggers ([`choose`]).
//!
//! `runs-on`, `container`, `services`, `name`, `timeout-minutes` and `continue-on-error` are
//! evaluated here with what is known before the run (`github`, `inputs`, `vars`, `matrix`,
//! `strategy`); `needs` is not known yet, so it reads as null there. A matrix made from a
//! need's output is one job until its needs have ended, whose [`DynamicMatrix`] then lowers its
//! combinations with `needs` known. A job that calls a reusable workflow becomes that
//! workflow's jobs (see [`reusable`]). Services and `container:`
//! get their `options` (see [`options`]), `volumes`, `ports` and `credentials`; a job on a
//! runner reaches its services at localhost, a `container:` job by their keys.
//!
//! Every job has `when: always`: whether it runs after its needs is its `if:`, which the
//! engine asks through [`crate::pipeline::steps::Steps::should_run`]. A job's `base_name`
//! is its id in the file: what [`crate::pipeline::steps::NeedResult::job`] should hold for
//! the jobs that need it (the combinations of a matrix then fold into one result).

mod options;
mod reusable;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use crate::github::actions::reusable::{Called, CalledStatus, CalledWorkflow};
use crate::github::expr::{Contexts, Scope, Template, Value};
use crate::github::matrix::{self, Combination, Matrix};
use crate::github::run::{self, Run, WorkflowFacts};
use crate::github::steps::{JobSpec, JobSteps};
use crate::github::trigger::{self, Decision, Event};
use crate::github::workflow::{Container, Field, Job, JobKind, StepsJob, Text, Workflow};
use crate::pipeline::{self, AllowFailure, Image, Need, Pipeline, When};
use crate::source::diag::Diagnostic;
use reusable::Site;

/// The images `runs-on` labels map to unless `--platform LABEL=IMAGE` says otherwise: act's
/// medium images, which resemble GitHub's runners (bash, git, Python 3, Node).
pub const DEFAULT_PLATFORMS: &[(&str, &str)] = &[
    ("ubuntu-latest", "catthehacker/ubuntu:act-latest"),
    ("ubuntu-24.04", "catthehacker/ubuntu:act-24.04"),
    ("ubuntu-22.04", "catthehacker/ubuntu:act-22.04"),
];

/// GitHub's `timeout-minutes` when a job sets none.
pub const DEFAULT_TIMEOUT_MINUTES: f64 = 360.0;

/// `runs-on` label → image. Labels compare ignoring case, as GitHub's do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platforms {
    images: Vec<(String, String)>,
}

impl Default for Platforms {
    fn default() -> Platforms {
        let mut p = Platforms { images: Vec::new() };
        for (label, image) in DEFAULT_PLATFORMS {
            p.set(label, image);
        }
        p
    }
}

impl Platforms {
    /// The defaults ([`DEFAULT_PLATFORMS`]).
    pub fn new() -> Platforms {
        Platforms::default()
    }

    /// Maps `label` to `image`, replacing what it mapped to.
    pub fn set(&mut self, label: &str, image: &str) {
        self.images.retain(|(l, _)| !l.eq_ignore_ascii_case(label));
        self.images.push((label.to_string(), image.to_string()));
    }

    /// Reads `LABEL=IMAGE` (the `--platform` option's value).
    pub fn parse_assignment(text: &str) -> Result<(String, String), String> {
        match text.split_once('=') {
            // A label is one word (`ubuntu-latest`), not a flag of act's.
            Some((l, i))
                if !l.trim().is_empty()
                    && !i.trim().is_empty()
                    && !l.trim().starts_with('-')
                    && !l.trim().contains(char::is_whitespace) =>
            {
                Ok((l.trim().to_string(), i.trim().to_string()))
            }
            _ => Err(format!(
                "`{text}`: expected LABEL=IMAGE, for example ubuntu-latest=python:3.12"
            )),
        }
    }

    /// Reads a platforms file: a `LABEL=IMAGE` per line (or `-P`/`--platform LABEL=IMAGE`,
    /// as act's `.actrc` writes them), `#` comments and blank lines ignored. `Err`: the line
    /// number and what is wrong with it.
    pub fn parse_file(text: &str) -> Result<Vec<(String, String)>, (usize, String)> {
        let mut out = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let assignment = ["-P ", "--platform ", "--platform="]
                .iter()
                .find_map(|flag| line.strip_prefix(flag))
                .unwrap_or(line);
            out.push(Platforms::parse_assignment(assignment.trim()).map_err(|e| (i + 1, e))?);
        }
        Ok(out)
    }

    pub fn image(&self, label: &str) -> Option<&str> {
        self.images
            .iter()
            .find(|(l, _)| l.eq_ignore_ascii_case(label))
            .map(|(_, i)| i.as_str())
    }
}

/// A lowered workflow.
#[derive(Debug)]
pub struct Lowered {
    pub pipeline: Pipeline,
    /// One per pipeline job, in the same order: what `berth plan` shows of GitHub's view.
    pub jobs: Vec<PlannedJob>,
    /// What berth reads but does not do yet.
    pub warnings: Vec<Diagnostic>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PlannedJob {
    /// The check-run name, the pipeline job's name.
    pub name: String,
    /// The job's id in the file.
    pub job: String,
    /// The ids of the jobs it needs.
    pub needs: Vec<String>,
    /// Its matrix combination; `None` without a matrix.
    pub matrix: Option<Value>,
    /// `if:` as written.
    pub condition: Option<String>,
    pub image: String,
    /// A matrix job whose failure cancels the other combinations (`strategy.fail-fast`).
    pub fail_fast: bool,
    /// At most this many combinations of the matrix run at once (`strategy.max-parallel`);
    /// `None`: no limit of its own.
    pub max_parallel: Option<usize>,
}

/// Makes the pipeline of `workflow` (read from `file`, its path in the repository) for `run`.
/// Errors name the job and point into the file; a job that calls a workflow is one (see
/// [`lower_calling`]).
pub fn lower(
    workflow: &Workflow,
    file: &str,
    run: &Run,
    platforms: &Platforms,
) -> Result<Lowered, Vec<Diagnostic>> {
    lower_calling(workflow, file, run, platforms, &Called::default())
}

/// [`lower`], the workflows its jobs call (and those they call) read into `called`.
pub fn lower_calling(
    workflow: &Workflow,
    file: &str,
    run: &Run,
    platforms: &Platforms,
    called: &Called,
) -> Result<Lowered, Vec<Diagnostic>> {
    let facts = WorkflowFacts {
        name: workflow.name.clone().unwrap_or_else(|| file.to_string()),
        file: file.to_string(),
    };
    let run = Arc::new(run.clone());
    let inputs = run::inputs_context(workflow, &run);
    let frames = reusable::Frames::default();
    let mut lowering = Lowering {
        facts: &facts,
        run: &run,
        platforms,
        called,
        top_inputs: &inputs,
        frames: Vec::new(),
        out: Vec::new(),
        errors: Vec::new(),
        warnings: Vec::new(),
    };
    let top = Site {
        prefix: String::new(),
        display: String::new(),
        frame: None,
        frames: frames.clone(),
        wrap: calls_any(workflow),
    };
    lowering.level(workflow, &top, &inputs);
    let Lowering {
        frames: all_frames,
        mut out,
        mut errors,
        warnings,
        ..
    } = lowering;
    // Every call is known now: the jobs' steps read them at run time.
    let _ = frames.set(all_frames.clone());
    unique_names(&mut out);
    let mut needs_of: Vec<Vec<Need>> = Vec::new();
    for entry in &out {
        let mut names: Vec<String> = Vec::new();
        for id in &entry.needs {
            let found = resolve(&out, &all_frames, &entry.prefix, id, true);
            if found.is_empty() && entry.workflow.job(id).is_none() {
                errors.push(
                    Diagnostic::error(
                        format!(
                            "job `{}` needs `{id}`, which is not a job of this workflow",
                            entry.planned.job
                        ),
                        Some(entry.job.span),
                    )
                    .in_job(&entry.planned.job),
                );
            }
            names.extend(found);
        }
        // Inside a call: what the callers need too (their `with:` and `if:` read it).
        let mut frame = entry.frame.clone();
        while let Some(f) = frame {
            for id in &f.needs {
                names.extend(resolve(&out, &all_frames, &f.parent_prefix, id, true));
            }
            frame = f.parent.clone();
        }
        let mut seen = Vec::new();
        names.retain(|n| {
            let new = !seen.contains(n);
            seen.push(n.clone());
            new
        });
        needs_of.push(
            names
                .into_iter()
                .map(|name| Need {
                    job: name,
                    span: entry.job.span,
                    artifacts: false,
                    optional: false,
                    instances: None,
                })
                .collect(),
        );
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let stage = facts.name.clone();
    let mut jobs = Vec::new();
    let mut planned = Vec::new();
    for (entry, needs) in out.into_iter().zip(needs_of) {
        let mut job = entry.job;
        job.needs = Some(needs);
        job.origin = Some(origin(&facts.file, &entry.planned));
        jobs.push(job);
        planned.push(entry.planned);
    }
    Ok(Lowered {
        pipeline: Pipeline {
            stages: vec![stage],
            variables: Vec::new(),
            jobs,
            left_out: Vec::new(),
            name: Some(facts.name.clone()),
            hermetic: false,
        },
        jobs: planned,
        warnings,
    })
}

/// Does a job of `workflow` call a workflow?
fn calls_any(workflow: &Workflow) -> bool {
    workflow
        .jobs
        .iter()
        .any(|j| matches!(j.kind, JobKind::Reusable(_)))
}

/// The pipeline jobs the need `id` of a job at `prefix` names: the job's combinations, or
/// every job of a call; with `callers`, also what a call's caller needs (its outputs read
/// its inputs, which may read those).
fn resolve(
    out: &[Entry],
    frames: &[Arc<reusable::CallFrame>],
    prefix: &str,
    id: &str,
    callers: bool,
) -> Vec<String> {
    let full = format!("{prefix}{id}");
    let inner = format!("{full}/").to_ascii_lowercase();
    let mut names: Vec<String> = out
        .iter()
        .filter(|e| {
            e.planned.job.eq_ignore_ascii_case(&full)
                || e.planned.job.to_ascii_lowercase().starts_with(&inner)
        })
        .map(|e| e.job.name.clone())
        .collect();
    if callers {
        if let Some(f) = frames
            .iter()
            .find(|f| f.prefix.eq_ignore_ascii_case(&inner))
        {
            for need in &f.needs {
                names.extend(resolve(out, frames, &f.parent_prefix, need, false));
            }
        }
    }
    names
}

/// A pipeline job being made, with where it sits.
struct Entry<'w> {
    job: pipeline::Job,
    planned: PlannedJob,
    /// Its workflow's prefix (`call/`), the ids it needs there, and the call around it.
    prefix: String,
    needs: Vec<String>,
    frame: Option<Arc<reusable::CallFrame>>,
    workflow: &'w Workflow,
}

/// The lowering of a workflow and of those its jobs call.
struct Lowering<'a, 'w> {
    facts: &'a WorkflowFacts,
    run: &'a Arc<Run>,
    platforms: &'a Platforms,
    called: &'w Called,
    top_inputs: &'a Value,
    frames: Vec<Arc<reusable::CallFrame>>,
    out: Vec<Entry<'w>>,
    errors: Vec<Diagnostic>,
    warnings: Vec<Diagnostic>,
}

impl<'w> Lowering<'_, 'w> {
    /// The jobs of `workflow`, sitting at `site`, whose `inputs` context reads `inputs`
    /// before the run.
    fn level(&mut self, workflow: &'w Workflow, site: &Site, inputs: &Value) {
        // The workflow kept for the jobs made at run time, copied once if any job needs it.
        let mut shared_workflow: Option<Arc<Workflow>> = None;
        for job in &workflow.jobs {
            let steps_job = match &job.kind {
                JobKind::Steps(s) => s,
                JobKind::Reusable(r) => {
                    if let Err(e) = self.call(job, r, site, inputs) {
                        self.errors.push(e);
                    }
                    continue;
                }
            };
            let mut ctx = job_contexts(self.run, self.facts, &job.id, inputs);
            let lowering = JobLowering {
                workflow,
                job,
                steps_job,
                facts: self.facts,
                run: self.run,
                inputs,
                platforms: self.platforms,
                site,
            };
            let made = if let Some(expression) = matrix_from_needs(job) {
                // Its jobs are known once its needs have ended: one job stands for them until then.
                let shared = shared_workflow
                    .get_or_insert_with(|| Arc::new(workflow.clone()))
                    .clone();
                let expander = DynamicMatrix {
                    workflow: shared,
                    job: job.id.clone(),
                    facts: self.facts.clone(),
                    run: self.run.clone(),
                    inputs: inputs.clone(),
                    platforms: self.platforms.clone(),
                    site: site.clone(),
                };
                lowering
                    .placeholder(&ctx, expression, expander)
                    .map(|j| vec![j])
            } else {
                lowering.jobs(&mut ctx, &mut self.warnings)
            };
            match made {
                Ok(jobs) => {
                    for (pipeline_job, planned) in jobs {
                        self.out.push(Entry {
                            job: pipeline_job,
                            planned,
                            prefix: site.prefix.clone(),
                            needs: job.needs.clone(),
                            frame: site.frame.clone(),
                            workflow,
                        });
                    }
                }
                Err(e) => self.errors.push(e),
            }
        }
    }

    /// The jobs of the workflow `job` calls, once per combination of its matrix.
    fn call(
        &mut self,
        job: &'w Job,
        call: &'w crate::github::workflow::Reusable,
        site: &Site,
        inputs: &Value,
    ) -> Result<(), Diagnostic> {
        let error = |message: String, span: Option<crate::source::yaml::Span>| {
            Diagnostic::error(message, Some(span.unwrap_or(job.span))).in_job(&job.id)
        };
        let all: &'w Called = self.called;
        let called: &'w CalledWorkflow = match all.get(&call.uses) {
            Some(CalledStatus::Ready(c)) => c,
            // The load reads every called workflow first: it says what is wrong with one.
            _ => {
                return Err(error(
                    format!(
                        "job `{}` calls `{}`, which was not read before the run",
                        job.id, call.uses
                    ),
                    Some(call.uses_span),
                ))
            }
        };
        let Some(trigger) = called.workflow.trigger("workflow_call") else {
            return Err(error(
                format!(
                    "job `{}` calls `{}`, which is not a reusable workflow: its `on:` has no `workflow_call`",
                    job.id, call.uses
                ),
                Some(call.uses_span),
            ));
        };
        // Secrets: those it requires must be passed, and only those it declares can be.
        if !call.secrets_inherit {
            for (name, text) in &call.secrets {
                if !trigger
                    .secrets
                    .iter()
                    .any(|(s, _)| s.eq_ignore_ascii_case(name))
                {
                    return Err(error(
                        format!("`secrets: {name}`: `{}` has no secret `{name}`", call.uses),
                        Some(text.span),
                    ));
                }
            }
            for (name, required) in &trigger.secrets {
                if *required
                    && !call
                        .secrets
                        .iter()
                        .any(|(s, _)| s.eq_ignore_ascii_case(name))
                {
                    return Err(error(
                        format!(
                            "`{}` requires the secret `{name}`: pass it in `secrets:` (or `secrets: inherit`)",
                            call.uses
                        ),
                        Some(call.uses_span),
                    ));
                }
            }
        }
        let mut ctx = job_contexts(self.run, self.facts, &job.id, inputs);
        ctx.insert("needs", Value::object(Vec::<(String, Value)>::new()))
            .insert("secrets", run::secrets_context(self.run));
        if matrix_from_needs(job).is_some() {
            return Err(error(
                format!(
                    "job `{}`: a matrix of calls made from a need's output is not supported yet",
                    job.id
                ),
                None,
            ));
        }
        let combinations = job_combinations(job, &ctx, &error)?;
        let strategy = job.strategy.as_ref();
        let fail_fast = match strategy.map(|s| &s.fail_fast) {
            Some(Field::Value(b)) => *b,
            _ => true,
        };
        let list = combinations.clone().unwrap_or_else(|| {
            vec![Combination {
                matrix: Value::Null,
                name_values: Vec::new(),
            }]
        });
        let total = list.len();
        for (index, combo) in list.iter().enumerate() {
            let strategy_ctx = matrix::strategy_context(fail_fast, None, index, total);
            let matrix_ctx = match &combinations {
                Some(_) => combo.matrix.clone(),
                None => Value::object(Vec::<(String, Value)>::new()),
            };
            ctx.insert("matrix", matrix_ctx.clone())
                .insert("strategy", strategy_ctx.clone());
            let name = matrix::check_run_name(
                &job.id,
                job.name.as_ref().map(|t| t.text.as_str()),
                combo,
                &ctx,
            )
            .map_err(|e| {
                error(
                    format!("`name` cannot be evaluated: {e}"),
                    job.name.as_ref().map(|t| t.span),
                )
            })?;
            let called_inputs = reusable::inputs(call, trigger, &ctx, false)
                .map_err(|e| error(e.message, e.span))?;
            let frame = Arc::new(reusable::CallFrame {
                parent: site.frame.clone(),
                parent_prefix: site.prefix.clone(),
                prefix: format!("{}{}/", site.prefix, job.id),
                caller: job.id.clone(),
                needs: job.needs.clone(),
                condition: job.condition.clone(),
                call: call.clone(),
                trigger: trigger.clone(),
                file: called.file.clone(),
                matrix: matrix_ctx,
                strategy: strategy_ctx,
                run: self.run.clone(),
                facts: self.facts.clone(),
                top_inputs: self.top_inputs.clone(),
            });
            self.frames.push(frame.clone());
            let inner = Site {
                prefix: frame.prefix.clone(),
                display: format!("{}{name} / ", site.display),
                frame: Some(frame),
                frames: site.frames.clone(),
                wrap: true,
            };
            self.level(&called.workflow, &inner, &called_inputs);
        }
        Ok(())
    }
}

/// Names must be unique for the engine: a repeated check-run name gets its job id.
fn unique_names(out: &mut [Entry]) {
    let names: Vec<(String, String)> = out
        .iter()
        .map(|e| (e.job.name.clone(), e.planned.job.clone()))
        .collect();
    for (e, name) in out.iter_mut().zip(unique(names)) {
        e.job.name = name.clone();
        e.planned.name = name;
    }
}

/// Each (check-run name, job id) made unique: a name taken before gets its job id.
fn unique(names: Vec<(String, String)>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (name, id) in names {
        let mut unique = name.clone();
        let mut n = 2;
        if out.contains(&unique) {
            unique = format!("{name} [{id}]");
        }
        while out.contains(&unique) {
            unique = format!("{name} [{id} {n}]");
            n += 1;
        }
        out.push(unique);
    }
    out
}

/// The combinations of `job`'s matrix, or `None` without one; `error` places a mistake.
fn job_combinations(
    job: &Job,
    ctx: &Contexts,
    error: &dyn Fn(String, Option<crate::source::yaml::Span>) -> Diagnostic,
) -> Result<Option<Vec<Combination>>, Diagnostic> {
    let Some(m) = job.strategy.as_ref().and_then(|s| s.matrix.as_ref()) else {
        return Ok(None);
    };
    let value = match m {
        Matrix::Literal(v) => v.clone(),
        Matrix::Deferred { value, span } => matrix::evaluate(value, ctx, &()).map_err(|e| {
            error(
                format!("`strategy: matrix` cannot be evaluated: {e}"),
                Some(*span),
            )
        })?,
    };
    matrix::expand(&value)
        .map(Some)
        .map_err(|e| error(format!("`strategy: matrix`: {}", e.message), None))
}

/// What the engine and `berth plan` know of a job's place in its workflow.
fn origin(file: &str, planned: &PlannedJob) -> pipeline::JobOrigin {
    pipeline::JobOrigin {
        file: file.to_string(),
        id: planned.job.clone(),
        needs: planned.needs.clone(),
        matrix: planned.matrix.as_ref().map(|m| m.to_serde_json()),
        condition: planned.condition.clone(),
        fail_fast: planned.fail_fast,
        max_parallel: planned.max_parallel,
    }
}

/// The contexts a job's keys are evaluated with before it runs (`needs` is added at run time).
fn job_contexts(run: &Run, facts: &WorkflowFacts, job: &str, inputs: &Value) -> Contexts {
    let mut ctx = Contexts::new();
    ctx.insert("github", run::github_context(run, facts, job, ""))
        .insert("inputs", inputs.clone())
        .insert("vars", run::vars_context(run));
    ctx
}

/// The matrix expression of a job whose matrix is made from a need's output.
fn matrix_from_needs(job: &Job) -> Option<String> {
    match job.strategy.as_ref()?.matrix.as_ref()? {
        Matrix::Deferred { value, .. } => {
            let text = match value {
                Value::String(s) => s.to_string(),
                other => other.to_json_pretty(),
            };
            text.to_ascii_lowercase().contains("needs.").then_some(text)
        }
        Matrix::Literal(_) => None,
    }
}

/// A job whose matrix is made from a need's output, lowered when its needs have ended: its
/// combinations then become jobs as a literal matrix's do, their keys evaluated with the
/// `needs` context too.
#[derive(Debug)]
struct DynamicMatrix {
    workflow: Arc<Workflow>,
    job: String,
    facts: WorkflowFacts,
    run: Arc<Run>,
    inputs: Value,
    platforms: Platforms,
    /// Where the job's workflow sits (the top one, or one a job calls).
    site: Site,
}

impl pipeline::steps::Expand for DynamicMatrix {
    fn expand(&self, needs: &[pipeline::steps::NeedResult]) -> Result<Vec<pipeline::Job>, String> {
        let job = self
            .workflow
            .job(&self.job)
            .ok_or_else(|| format!("job `{}` is not in its workflow", self.job))?;
        let JobKind::Steps(steps_job) = &job.kind else {
            return Err(format!("job `{}` has no steps", self.job));
        };
        let mut ctx = job_contexts(&self.run, &self.facts, &job.id, &self.inputs);
        let needs = self.site.view(needs);
        ctx.insert("needs", crate::github::steps::needs_context(&needs));
        let lowering = JobLowering {
            workflow: &self.workflow,
            job,
            steps_job,
            facts: &self.facts,
            run: &self.run,
            inputs: &self.inputs,
            platforms: &self.platforms,
            site: &self.site,
        };
        let mut warnings = Vec::new();
        let mut out = lowering
            .jobs(&mut ctx, &mut warnings)
            .map_err(|d| d.message)?;
        let names = out
            .iter()
            .map(|(j, p)| (j.name.clone(), p.job.clone()))
            .collect();
        for ((job, planned), name) in out.iter_mut().zip(unique(names)) {
            job.name = name.clone();
            planned.name = name;
        }
        Ok(out
            .into_iter()
            .map(|(mut job, planned)| {
                job.origin = Some(origin(&self.facts.file, &planned));
                job
            })
            .collect())
    }
}

struct JobLowering<'a> {
    workflow: &'a Workflow,
    job: &'a Job,
    steps_job: &'a StepsJob,
    facts: &'a WorkflowFacts,
    run: &'a Arc<Run>,
    inputs: &'a Value,
    platforms: &'a Platforms,
    site: &'a Site,
}

impl JobLowering<'_> {
    /// The job's id in the run: `call/build` for a job of a called workflow.
    fn id(&self) -> String {
        format!("{}{}", self.site.prefix, self.job.id)
    }

    /// The needs `berth plan` shows, by their ids in the run: the caller's for a called
    /// workflow's first jobs.
    fn planned_needs(&self) -> Vec<String> {
        match &self.site.frame {
            Some(f) if self.job.needs.is_empty() => f
                .needs
                .iter()
                .map(|n| format!("{}{n}", f.parent_prefix))
                .collect(),
            _ => self
                .job
                .needs
                .iter()
                .map(|n| format!("{}{n}", self.site.prefix))
                .collect(),
        }
    }

    fn error(&self, message: String, span: Option<crate::source::yaml::Span>) -> Diagnostic {
        Diagnostic::error(message, Some(span.unwrap_or(self.job.span))).in_job(&self.id())
    }

    fn string(&self, text: &Text, ctx: &Contexts, what: &str) -> Result<String, Diagnostic> {
        Template::parse(&text.text, &Scope::ALL)
            .and_then(|t| t.evaluate_string(ctx, &()))
            .map_err(|e| {
                self.error(
                    format!("`{what}` cannot be evaluated: {e}"),
                    Some(text.span),
                )
            })
    }

    fn value<T: Clone>(
        &self,
        field: &Field<T>,
        ctx: &Contexts,
        what: &str,
        from: impl Fn(&Value) -> T,
    ) -> Result<T, Diagnostic> {
        match field {
            Field::Value(v) => Ok(v.clone()),
            Field::Expr(t) => Template::parse(&t.text, &Scope::ALL)
                .and_then(|tpl| tpl.evaluate(ctx, &()))
                .map(|v| from(&v))
                .map_err(|e| {
                    self.error(format!("`{what}` cannot be evaluated: {e}"), Some(t.span))
                }),
        }
    }

    /// The matrix's combinations, or one without a matrix.
    fn combinations(&self, ctx: &Contexts) -> Result<Option<Vec<Combination>>, Diagnostic> {
        job_combinations(self.job, ctx, &|m, span| self.error(m, span))
    }

    fn jobs(
        &self,
        ctx: &mut Contexts,
        warnings: &mut Vec<Diagnostic>,
    ) -> Result<Vec<(pipeline::Job, PlannedJob)>, Diagnostic> {
        let job = self.job;
        let sj = self.steps_job;
        let strategy = job.strategy.as_ref();
        let fail_fast = match strategy {
            Some(s) => self.value(&s.fail_fast, ctx, "strategy: fail-fast", Value::is_truthy)?,
            None => true,
        };
        let max_parallel = match strategy.and_then(|s| s.max_parallel.as_ref()) {
            Some(f) => Some(self.value(f, ctx, "strategy: max-parallel", Value::to_number)?),
            None => None,
        };
        let combinations = self.combinations(ctx)?;
        let list = combinations.clone().unwrap_or_else(|| {
            vec![Combination {
                matrix: Value::Null,
                name_values: Vec::new(),
            }]
        });
        let total = list.len();
        let mut out = Vec::new();
        for (index, combo) in list.iter().enumerate() {
            let strategy_ctx = matrix::strategy_context(fail_fast, max_parallel, index, total);
            let matrix_ctx = match &combinations {
                Some(_) => combo.matrix.clone(),
                None => Value::object(Vec::<(String, Value)>::new()),
            };
            ctx.insert("matrix", matrix_ctx.clone())
                .insert("strategy", strategy_ctx.clone());
            let name = matrix::check_run_name(
                &job.id,
                job.name.as_ref().map(|t| t.text.as_str()),
                combo,
                ctx,
            )
            .map_err(|e| {
                self.error(
                    format!("`name` cannot be evaluated: {e}"),
                    job.name.as_ref().map(|t| t.span),
                )
            })?;
            let name = format!("{}{name}", self.site.display);
            let (image, platform_label) = self.image(ctx)?;
            // A job on a runner reaches its services at localhost, a `container:` job by name.
            let service_network = if platform_label.is_some() {
                pipeline::ServiceNetwork::Localhost
            } else {
                pipeline::ServiceNetwork::Aliases
            };
            let mut container_env = Vec::new();
            let mut container = pipeline::ContainerOptions::default();
            let mut credentials = None;
            if let Some(c) = &sj.container {
                for (k, t) in &c.env {
                    container_env.push((
                        k.clone(),
                        self.string(t, ctx, &format!("container: env: {k}"))?,
                    ));
                }
                let parsed = self.container_options(c, ctx, "container", warnings)?;
                container_env.extend(parsed.env);
                container = parsed.options;
                credentials = self.credentials(c, ctx, "container")?;
            }
            let mut services = Vec::new();
            let mut service_ports = Vec::new();
            for s in &sj.services {
                let what = format!("services: {}", s.id);
                let image = self.string(&s.container.image, ctx, &format!("{what}: image"))?;
                if image.is_empty() {
                    continue;
                }
                let mut variables = Vec::new();
                for (k, t) in &s.container.env {
                    variables.push(pipeline::Variable {
                        name: k.clone(),
                        value: self.string(t, ctx, &format!("{what}: env: {k}"))?,
                        expand: false,
                    });
                }
                let entrypoint = match &s.container.entrypoint {
                    Some(t) => Some(vec![self.string(t, ctx, "entrypoint")?]),
                    None => None,
                };
                // Split as a shell would: `sh -c 'a; b'` is three words.
                let command = match &s.container.command {
                    Some(t) => Some(options::split(&self.string(t, ctx, "command")?).map_err(
                        |e| self.error(format!("`{what}: command`: {e}"), Some(t.span)),
                    )?),
                    None => None,
                };
                let parsed = self.container_options(&s.container, ctx, &what, warnings)?;
                variables.extend(
                    parsed
                        .env
                        .into_iter()
                        .map(|(name, value)| pipeline::Variable {
                            name,
                            value,
                            expand: false,
                        }),
                );
                let mut aliases = vec![s.id.clone()];
                aliases.extend(parsed.aliases);
                let ports = self.ports(&s.container, ctx, &what, service_network, warnings)?;
                service_ports.push((
                    s.id.clone(),
                    ports.iter().map(|p| (p.container, p.container)).collect(),
                ));
                services.push(pipeline::Service {
                    image,
                    aliases,
                    entrypoint,
                    command,
                    variables,
                    ports,
                    options: parsed.options,
                    credentials: self.credentials(&s.container, ctx, &what)?,
                });
            }
            let minutes = match &sj.timeout_minutes {
                Some(f) => self.value(f, ctx, "timeout-minutes", Value::to_number)?,
                None => DEFAULT_TIMEOUT_MINUTES,
            };
            let timeout = (minutes.is_finite() && minutes > 0.0)
                .then(|| Duration::from_secs_f64(minutes * 60.0));
            let allow_failure = match &sj.continue_on_error {
                Some(f) => self.value(f, ctx, "continue-on-error", Value::is_truthy)?,
                None => false,
            };
            let spec = JobSpec {
                matrix: matrix_ctx,
                strategy: strategy_ctx,
                platform_label,
                container_env,
                service_ports,
                ..self.spec(name.clone(), image.clone())
            };
            let steps = JobSteps::new(spec).map_err(|e| {
                self.error(
                    format!("`if` cannot be read: {e}"),
                    job.condition.as_ref().map(|t| t.span),
                )
            })?;
            let mut pipeline_job = self.base_job(name.clone(), steps);
            pipeline_job.image = Some(Image::Name {
                name: image.clone(),
                entrypoint: None,
            });
            pipeline_job.allow_failure = if allow_failure {
                AllowFailure::Yes
            } else {
                AllowFailure::No
            };
            pipeline_job.timeout = timeout;
            pipeline_job.services = services;
            pipeline_job.container = container;
            pipeline_job.credentials = credentials;
            pipeline_job.service_network = service_network;
            let planned = PlannedJob {
                name,
                job: self.id(),
                needs: self.planned_needs(),
                matrix: combinations.as_ref().map(|_| combo.matrix.clone()),
                condition: job.condition.as_ref().map(|t| t.text.clone()),
                image,
                fail_fast: fail_fast && combinations.is_some(),
                max_parallel: combinations
                    .as_ref()
                    .and(max_parallel)
                    .filter(|m| *m >= 1.0)
                    .map(|m| m as usize),
            };
            out.push((pipeline_job, planned));
        }
        Ok(out)
    }

    /// What the steps of the job named `name` in `image` need, with no matrix, services or
    /// `container:` of its own.
    fn spec(&self, name: String, image: String) -> JobSpec {
        JobSpec {
            run: self.run.clone(),
            workflow: self.facts.clone(),
            workflow_env: self.workflow.env.clone(),
            workflow_defaults: self.workflow.defaults.clone(),
            inputs: self.inputs.clone(),
            job_id: self.job.id.clone(),
            name,
            condition: self.job.condition.clone(),
            job: self.steps_job.clone(),
            matrix: Value::Null,
            strategy: Value::Null,
            image,
            platform_label: None,
            container_env: Vec::new(),
            service_ports: Vec::new(),
        }
    }

    /// The pipeline job of `name` with its steps, and every other key at its default.
    fn base_job(&self, name: String, steps: JobSteps) -> pipeline::Job {
        pipeline::Job {
            name,
            span: self.job.span,
            stage: self.facts.name.clone(),
            stage_span: self.job.span,
            image: None,
            before_script: Vec::new(),
            script: Vec::new(),
            after_script: Vec::new(),
            variables: Vec::new(),
            needs: Some(Vec::new()),
            allow_failure: AllowFailure::No,
            timeout: None,
            retry: 0,
            when: When::Always,
            artifacts: None,
            dependencies: Some(Vec::new()),
            caches: Vec::new(),
            services: Vec::new(),
            start_in: None,
            reason: None,
            environment: None,
            trigger: None,
            base_name: self.id(),
            inherit_variables: None,
            steps: Some(self.site.steps(steps)),
            expand: None,
            origin: None,
            container: pipeline::ContainerOptions::default(),
            credentials: None,
            service_network: pipeline::ServiceNetwork::default(),
        }
    }

    /// The job that stands for a matrix made from a need's output until its needs have ended:
    /// it decides its `if:` and checkout, then `expander` makes the matrix's jobs.
    fn placeholder(
        &self,
        ctx: &Contexts,
        expression: String,
        expander: DynamicMatrix,
    ) -> Result<(pipeline::Job, PlannedJob), Diagnostic> {
        let job = self.job;
        // A name made of the matrix is known only with it: the job's id until then.
        let name = match &job.name {
            Some(t) if !t.text.contains("${{") => t.text.clone(),
            _ => job.id.clone(),
        };
        let name = format!("{}{name}", self.site.display);
        let image = self
            .image(ctx)
            .map_or_else(|_| "(decided when its needs end)".to_string(), |(i, _)| i);
        let steps = JobSteps::new(self.spec(name.clone(), image.clone())).map_err(|e| {
            self.error(
                format!("`if` cannot be read: {e}"),
                job.condition.as_ref().map(|t| t.span),
            )
        })?;
        let mut pipeline_job = self.base_job(name.clone(), steps);
        pipeline_job.expand = Some(Arc::new(expander));
        let planned = PlannedJob {
            name,
            job: self.id(),
            needs: self.planned_needs(),
            matrix: Some(Value::from(expression.as_str())),
            condition: job.condition.as_ref().map(|t| t.text.clone()),
            image,
            fail_fast: false,
            max_parallel: None,
        };
        Ok((pipeline_job, planned))
    }

    /// The image: `container:` (when not empty), else the first `runs-on` label the platform
    /// map knows; with the label it came from.
    fn image(&self, ctx: &Contexts) -> Result<(String, Option<String>), Diagnostic> {
        let sj = self.steps_job;
        if let Some(c) = &sj.container {
            let image = self.string(&c.image, ctx, "container")?;
            if !image.is_empty() {
                return Ok((image, None));
            }
        }
        let mut labels = Vec::new();
        for t in &sj.runs_on.labels {
            labels.push(self.string(t, ctx, "runs-on")?);
        }
        for label in &labels {
            if let Some(image) = self.platforms.image(label) {
                return Ok((image.to_string(), Some(label.clone())));
            }
        }
        let span = sj.runs_on.labels.first().map(|t| t.span);
        let shown = if labels.is_empty() {
            "(none)".to_string()
        } else {
            labels.join(", ")
        };
        let label = labels.first().map_or("LABEL", String::as_str);
        Err(self
            .error(
                format!("`runs-on: {shown}` names no image berth knows"),
                span,
            )
            .with_help(format!(
                "map the label to an image with `--platform {label}=IMAGE`, or give the job a `container:`"
            )))
    }

    /// `options:` and `volumes:` of a service or of `container:`; flags berth leaves out
    /// are warnings at `options:`.
    fn container_options(
        &self,
        c: &Container,
        ctx: &Contexts,
        what: &str,
        warnings: &mut Vec<Diagnostic>,
    ) -> Result<options::Parsed, Diagnostic> {
        let workspace = &self.run.workspace;
        let mut parsed = match &c.options {
            Some(t) => {
                let text = self.string(t, ctx, &format!("{what}: options"))?;
                options::parse(&text, workspace)
                    .map_err(|e| self.error(format!("`{what}: options`: {e}"), Some(t.span)))?
            }
            None => options::Parsed::default(),
        };
        if let Some(t) = &c.options {
            for note in std::mem::take(&mut parsed.notes) {
                warnings.push(
                    Diagnostic::warning(format!("`{what}: options`: {note}"), Some(t.span))
                        .in_job(&self.id()),
                );
            }
        }
        for v in &c.volumes {
            let text = self.string(v, ctx, &format!("{what}: volumes"))?;
            let mount = options::mount(&text, workspace)
                .map_err(|e| self.error(format!("`{what}: volumes`: {e}"), Some(v.span)))?;
            parsed.options.mounts.push(mount);
        }
        Ok(parsed)
    }

    /// `credentials:` evaluated (they may use `secrets`); both, or none.
    fn credentials(
        &self,
        c: &Container,
        ctx: &Contexts,
        what: &str,
    ) -> Result<Option<pipeline::Credentials>, Diagnostic> {
        let Some(creds) = &c.credentials else {
            return Ok(None);
        };
        let mut ctx = ctx.clone();
        ctx.insert("secrets", run::secrets_context(self.run));
        let field = |t: &Option<Text>, name: &str| -> Result<String, Diagnostic> {
            match t {
                Some(t) => self.string(t, &ctx, &format!("{what}: credentials: {name}")),
                None => Ok(String::new()),
            }
        };
        let username = field(&creds.username, "username")?;
        let password = field(&creds.password, "password")?;
        // A secret not given reads as empty: then the user's own login for the registry is.
        if username.is_empty() || password.is_empty() {
            return Ok(None);
        }
        Ok(Some(pipeline::Credentials { username, password }))
    }

    /// `ports:` read: `6379`, `8080:80`, `127.0.0.1:8080:80`, with an optional `/tcp`.
    fn ports(
        &self,
        c: &Container,
        ctx: &Contexts,
        what: &str,
        network: pipeline::ServiceNetwork,
        warnings: &mut Vec<Diagnostic>,
    ) -> Result<Vec<pipeline::Port>, Diagnostic> {
        let mut out = Vec::new();
        for t in &c.ports {
            let text = self.string(t, ctx, &format!("{what}: ports"))?;
            let port = parse_port(&text)
                .map_err(|e| self.error(format!("`{what}: ports`: {e}"), Some(t.span)))?;
            match port.host {
                Some(host)
                    if host != port.container && network == pipeline::ServiceNetwork::Localhost =>
                {
                    warnings.push(
                        Diagnostic::warning(
                            format!(
                                "`{what}: ports: {text}`: the job shares the service's network,                                  so it reaches it at localhost:{c}, not {host}                                  (`job.services.<id>.ports['{c}']` says {c})",
                                c = port.container
                            ),
                            Some(t.span),
                        )
                        .in_job(&self.id()),
                    );
                }
                _ => {}
            }
            out.push(port);
        }
        Ok(out)
    }
}

/// One entry of `ports:`.
fn parse_port(text: &str) -> Result<pipeline::Port, String> {
    let bad = || format!("`{text}`: expected PORT or HOST_PORT:PORT");
    let spec = text.trim();
    let spec = spec.strip_suffix("/tcp").unwrap_or(spec);
    if spec.ends_with("/udp") || spec.ends_with("/sctp") {
        return Err(format!("`{text}`: only TCP ports are supported"));
    }
    let parts: Vec<&str> = spec.split(':').collect();
    let number = |p: &str| p.parse::<u16>().ok().filter(|&n| n > 0).ok_or_else(bad);
    match parts.as_slice() {
        [c] => Ok(pipeline::Port {
            container: number(c)?,
            host: None,
        }),
        [h, c] | [_, h, c] => Ok(pipeline::Port {
            container: number(c)?,
            host: if h.is_empty() { None } else { Some(number(h)?) },
        }),
        _ => Err(bad()),
    }
}

/// Whether each workflow runs for `event`, and why (`trigger::decide` on its `on:`).
#[derive(Debug, Clone, PartialEq)]
pub struct Choice<'a> {
    pub file: &'a str,
    pub workflow: &'a Workflow,
    pub decision: Decision,
}

/// Every workflow with its decision, in the given order; keep those whose `decision.runs`.
pub fn choose<'a>(workflows: &'a [(String, Workflow)], event: &Event) -> Vec<Choice<'a>> {
    workflows
        .iter()
        .map(|(file, workflow)| Choice {
            file,
            workflow,
            decision: trigger::decide(&workflow.on, event),
        })
        .collect()
}

/// A GitHub job's environment as the engine builds it: the job's own variables and the command
/// line's `-e` (the steps add GitHub's default variables and the workflow's `env:` themselves,
/// each at its moment).
#[derive(Debug, Clone, Default)]
pub struct GitHubEnvironment;

impl pipeline::JobEnvironment for GitHubEnvironment {
    fn job_env(
        &self,
        job: &pipeline::Job,
        _job_id: u64,
        dotenv: &[(String, String)],
        overrides: &[(String, String)],
    ) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = Vec::new();
        let own = job
            .variables
            .iter()
            .map(|v| (v.name.clone(), v.value.clone()));
        for (k, v) in own
            .chain(dotenv.iter().cloned())
            .chain(overrides.iter().cloned())
        {
            match env.iter_mut().find(|(n, _)| *n == k) {
                Some(slot) => slot.1 = v,
                None => env.push((k, v)),
            }
        }
        env
    }

    fn checkout(&self, job: &pipeline::Job, _env: &[(String, String)]) -> pipeline::Checkout {
        let checkout = job.steps.as_ref().and_then(|s| s.checkout());
        checkout.unwrap_or(pipeline::Checkout::Files)
    }
}
