//! The GitLab reader against pipelines from GitLab's documentation: one module per area.

mod composition;
mod includes;
mod keywords;

use super::*;
use crate::source::diag::Severity;

pub(super) fn ok(src: &str) -> Loaded {
    match load(src) {
        Ok(l) => l,
        Err(d) => panic!("expected a valid pipeline, got {d:#?}"),
    }
}

pub(super) fn errors(src: &str) -> Vec<Diagnostic> {
    match load(src) {
        Ok(l) => panic!(
            "expected errors, got a pipeline with {} jobs",
            l.pipeline.jobs.len()
        ),
        Err(d) => d
            .into_iter()
            .filter(|d| d.severity == Severity::Error)
            .collect(),
    }
}

pub(super) fn with_ctx(src: &str, vars: &[(&str, &str)]) -> Result<Loaded, Vec<Diagnostic>> {
    let mut ctx = Scope::for_tests();
    for (k, v) in vars {
        ctx.variables.retain(|(n, _)| n != k);
        if !v.is_empty() {
            ctx.variables.push((k.to_string(), v.to_string()));
        }
    }
    let source = Source {
        path: "berth.yml".into(),
        name: "berth.yml".into(),
        text: src.to_string(),
    };
    load_source(&source, &ctx).map_err(|f| f.diagnostics)
}

pub(super) fn job<'a>(l: &'a Loaded, name: &str) -> &'a Job {
    l.pipeline
        .jobs
        .iter()
        .find(|j| j.name == name)
        .unwrap_or_else(|| panic!("no job {name}"))
}

pub(super) fn job_names(l: &Loaded) -> Vec<&str> {
    l.pipeline.jobs.iter().map(|j| j.name.as_str()).collect()
}
