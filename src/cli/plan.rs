//! `berth plan`: validate the pipeline and print what would run, without Docker.

use crate::pipeline;
use crate::plan::Plan;

use super::args::{Cli, PlanArgs, PlanOutput};
use super::setup::{load, make_plan, project_dir};
use super::{out_raw, CliError};

pub(super) fn cmd_plan(cli: &Cli, args: &PlanArgs) -> Result<(), CliError> {
    let project = project_dir(cli)?;
    let Some((source, loaded, _)) = load(cli, &project, &args.origin, &[], 0)? else {
        return Ok(());
    };
    let plan = make_plan(&loaded, &args.jobs, args.manual)?;
    match args.output {
        PlanOutput::Json => {
            let json = serde_json::to_string_pretty(&plan.to_json()).map_err(CliError::input)?;
            out!("{json}")
        }
        PlanOutput::Yaml => {
            let yaml = serde_yaml::to_string(&plan.to_json()).map_err(CliError::input)?;
            out_raw(yaml.as_bytes())
        }
        PlanOutput::Text => {
            let mut text = String::new();
            for note in &loaded.notes {
                text.push_str(note);
                text.push('\n');
            }
            text.push_str(&render_plan(&source.name, &plan, &loaded.pipeline));
            out_raw(text.as_bytes())
        }
    }
}

/// The human plan: stages in order, each job with what decides when it runs.
pub fn render_plan(file: &str, plan: &Plan, pipeline: &pipeline::Pipeline) -> String {
    let mut out = String::new();
    let stages_used: Vec<&str> = plan
        .stages
        .iter()
        .filter(|s| plan.jobs.iter().any(|j| &j.job.stage == *s))
        .map(|s| s.as_str())
        .collect();
    out.push_str(&format!(
        "{file}: {} job{} in {} stage{}\n",
        plan.jobs.len(),
        if plan.jobs.len() == 1 { "" } else { "s" },
        stages_used.len(),
        if stages_used.len() == 1 { "" } else { "s" }
    ));
    let width = plan
        .jobs
        .iter()
        .map(|j| j.job.name.len())
        .max()
        .unwrap_or(0);
    for stage in stages_used {
        out.push_str(&format!("\nstage {stage}\n"));
        for pj in plan.jobs.iter().filter(|j| j.job.stage == stage) {
            let mut notes = Vec::new();
            if let Some(needs) = &pj.job.needs {
                if needs.is_empty() {
                    notes.push("needs nothing".to_string());
                } else {
                    let names: Vec<&str> = needs.iter().map(|n| n.job.as_str()).collect();
                    notes.push(format!("needs {}", names.join(", ")));
                }
            }
            match &pj.job.origin {
                // GitHub's jobs run as their `if:` says (after their needs, whatever happened).
                Some(origin) => {
                    if let Some(condition) = &origin.condition {
                        notes.push(format!("if: {condition}"));
                    }
                }
                None if pj.job.when != pipeline::When::OnSuccess => {
                    notes.push(format!("when {}", pj.job.when.as_str()));
                }
                None => {}
            }
            if let Some(d) = pj.job.start_in {
                notes.push(format!("starts after {}", crate::units::duration(d)));
            }
            if let Some(why) = &pj.job.reason {
                notes.push(why.clone());
            }
            if let Some(pipeline::Trigger::Child { files, .. }) = &pj.job.trigger {
                notes.push(format!("child pipeline {}", files.join(", ")));
            }
            if let Some(pipeline::Trigger::Other { what }) = &pj.job.trigger {
                notes.push(format!("triggers {what}: skipped locally"));
            }
            if !pj.run {
                notes.push("not run unless named".into());
            }
            if pj.job.allow_failure != pipeline::AllowFailure::No {
                notes.push("may fail".into());
            }
            if pj.job.retry > 0 {
                notes.push(format!("retry {}", pj.job.retry));
            }
            if let Some(t) = pj.job.timeout {
                notes.push(format!("timeout {}", crate::units::duration(t)));
            }
            match &pj.job.image {
                Some(pipeline::Image::Name { name, .. }) => notes.push(format!("image {name}")),
                Some(pipeline::Image::Build { context, .. }) => {
                    notes.push(format!("image built from {context}"))
                }
                None => {}
            }
            let line = format!("  {:width$}  {}", pj.job.name, notes.join("; "));
            out.push_str(line.trim_end());
            out.push('\n');
        }
    }
    if !pipeline.left_out.is_empty() {
        out.push_str("\nnot in this pipeline\n");
        let width = pipeline
            .left_out
            .iter()
            .map(|l| l.name.len())
            .max()
            .unwrap_or(0);
        for l in &pipeline.left_out {
            out.push_str(&format!("  {:width$}  {}\n", l.name, l.reason));
        }
    }
    out
}
