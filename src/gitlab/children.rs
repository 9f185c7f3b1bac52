//! Child pipelines (`trigger: include:` local files), for `berth run`: each trigger job is
//! replaced by the jobs of its child pipeline, named `trigger / job`, in the trigger's stage.
//! They start when the trigger would have, keep their own order among themselves (their stages
//! become `needs`), and the parent's later stages wait for them all, as with
//! `strategy: depend`. `berth plan` shows the trigger job itself, as GitLab lists it.

use std::collections::HashMap;

use super::{load_source, scope::Scope, Failed, Job, Need, Pipeline, Source, Trigger};

/// Replace every local child-pipeline trigger by its child's jobs.
pub fn flatten(pipeline: &mut Pipeline, ctx: &Scope) -> Result<(), Failed> {
    let stage_index = pipeline.stage_index();
    let stage_of: HashMap<String, usize> = pipeline
        .jobs
        .iter()
        .map(|j| {
            (
                j.name.clone(),
                stage_index.get(j.stage.as_str()).copied().unwrap_or(0),
            )
        })
        .collect();
    let mut out: Vec<Job> = Vec::with_capacity(pipeline.jobs.len());
    // Trigger name -> the names of its child's jobs, for parents that need the trigger.
    let mut replaced: HashMap<String, Vec<String>> = HashMap::new();
    for job in &pipeline.jobs {
        let Some(Trigger::Child { files, .. }) = &job.trigger else {
            out.push(job.clone());
            continue;
        };
        let own_stage = stage_of.get(&job.name).copied().unwrap_or(0);
        // What the trigger waited for, the child's first jobs wait for (without artifacts:
        // a child pipeline does not receive its parent's).
        let upstream: Vec<Need> = match &job.needs {
            Some(needs) => needs.clone(),
            None => pipeline
                .jobs
                .iter()
                .filter(|j| stage_of.get(&j.name).copied().unwrap_or(0) < own_stage)
                .map(|j| Need {
                    job: j.name.clone(),
                    span: job.span,
                    artifacts: false,
                    optional: false,
                    instances: None,
                })
                .collect(),
        }
        .into_iter()
        .map(|n| Need {
            artifacts: false,
            ..n
        })
        .collect();
        let children = child_jobs(job, files, ctx, &pipeline.variables)?;
        let names = children.iter().map(|c| c.name.clone()).collect();
        for mut child in children {
            let mut needs = upstream.clone();
            needs.extend(child.needs.take().unwrap_or_default());
            child.needs = Some(needs);
            child.stage = job.stage.clone();
            out.push(child);
        }
        replaced.insert(job.name.clone(), names);
    }
    // A parent job that needs a trigger needs its child's jobs.
    for job in &mut out {
        for list in [&mut job.needs, &mut job.dependencies]
            .into_iter()
            .flatten()
        {
            let mut expanded = Vec::new();
            for need in list.drain(..) {
                match replaced.get(&need.job) {
                    Some(names) => expanded.extend(names.iter().map(|n| Need {
                        job: n.clone(),
                        artifacts: false,
                        ..need.clone()
                    })),
                    None => expanded.push(need),
                }
            }
            *list = expanded;
        }
    }
    pipeline.jobs = out;
    Ok(())
}

/// The child's jobs, renamed `trigger / job`, with the child's stage order turned into
/// `needs` and the child's global variables made their own.
fn child_jobs(
    trigger: &Job,
    files: &[String],
    ctx: &Scope,
    parent_variables: &[super::Variable],
) -> Result<Vec<Job>, Failed> {
    let mut child_ctx = ctx.clone();
    for (k, v) in &mut child_ctx.variables {
        if k == "CI_PIPELINE_SOURCE" {
            *v = "parent_pipeline".into();
        }
    }
    // The trigger job's variables (and the parent's globals it inherits) reach the child
    // pipeline as pipeline variables.
    let inherited = parent_variables
        .iter()
        .filter(|v| match &trigger.inherit_variables {
            None => true,
            Some(keep) => keep.contains(&v.name),
        });
    let passed: Vec<(String, String)> = inherited
        .chain(&trigger.variables)
        .map(|v| (v.name.clone(), v.value.clone()))
        .collect();
    child_ctx.overrides = passed
        .iter()
        .cloned()
        .chain(ctx.overrides.clone())
        .collect();
    // In the jobs' environment, the passed variables rank as the child's pipeline variables:
    // above its jobs' own.
    let mut pipeline_level: Vec<super::Variable> = passed
        .iter()
        .map(|(k, v)| super::Variable {
            name: k.clone(),
            value: v.clone(),
            expand: true,
        })
        .collect();
    pipeline_level.push(super::Variable {
        name: "CI_PIPELINE_SOURCE".into(),
        value: "parent_pipeline".into(),
        expand: false,
    });
    let include: String = files
        .iter()
        .map(|f| format!("  - local: '{}'\n", f.replace('\'', "''")))
        .collect();
    let source = Source {
        path: ctx
            .project_dir
            .join(files.first().map(String::as_str).unwrap_or("child")),
        name: format!("child pipeline of `{}`", trigger.name),
        text: format!("include:\n{include}"),
    };
    let loaded = load_source(&source, &child_ctx)?;
    let child = loaded.pipeline;
    let prefix = |n: &str| format!("{} / {n}", trigger.name);
    let stage_index = child.stage_index();
    let stage_of: HashMap<&str, usize> = child
        .jobs
        .iter()
        .map(|j| {
            (
                j.name.as_str(),
                stage_index.get(j.stage.as_str()).copied().unwrap_or(0),
            )
        })
        .collect();
    let mut jobs = Vec::new();
    for j in &child.jobs {
        let mut c = j.clone();
        let own = stage_of.get(j.name.as_str()).copied().unwrap_or(0);
        let rename = |list: &Vec<Need>| -> Vec<Need> {
            list.iter()
                .map(|n| Need {
                    job: prefix(&n.job),
                    ..n.clone()
                })
                .collect()
        };
        c.needs = Some(match &j.needs {
            Some(needs) => rename(needs),
            // Stage order inside the child: every job of its earlier stages.
            None => child
                .jobs
                .iter()
                .filter(|o| stage_of.get(o.name.as_str()).copied().unwrap_or(0) < own)
                .map(|o| Need {
                    job: prefix(&o.name),
                    span: j.span,
                    artifacts: true,
                    optional: false,
                    instances: None,
                })
                .collect(),
        });
        c.dependencies = j.dependencies.as_ref().map(rename);
        c.name = prefix(&j.name);
        c.base_name = prefix(&j.base_name);
        // The child's globals are its own; the parent's do not leak in.
        let mut vars: Vec<super::Variable> = child
            .variables
            .iter()
            .filter(|v| match &j.inherit_variables {
                None => true,
                Some(keep) => keep.contains(&v.name),
            })
            .cloned()
            .collect();
        vars.append(&mut c.variables);
        vars.extend(pipeline_level.iter().cloned());
        c.variables = vars;
        c.inherit_variables = Some(Vec::new());
        jobs.push(c);
    }
    Ok(jobs)
}
