//! What will run, in which order: the pipeline's jobs as a graph.
//!
//! A job with `needs` depends on exactly those jobs (a DAG edge); any other job depends on every
//! job of the earlier stages. Selecting jobs on the command line keeps them and everything they
//! depend on. Pure logic: no Docker.

use std::collections::{BTreeSet, HashMap};

use serde::Serialize;

use crate::pipeline::{Job, Pipeline, When};

#[derive(Debug, Clone)]
pub struct Plan {
    pub stages: Vec<String>,
    /// In stage order, then file order.
    pub jobs: Vec<PlannedJob>,
}

#[derive(Debug, Clone)]
pub struct PlannedJob {
    pub job: Job,
    pub stage_index: usize,
    /// Indices into [`Plan::jobs`] of the jobs this one waits for.
    pub deps: Vec<usize>,
    /// The deps come from `needs` (true) or from stage order (false).
    pub dag: bool,
    /// False for a manual job nobody asked for: shown, not run.
    pub run: bool,
    /// Indices of the jobs whose artifacts this one receives, in plan order: `dependencies`
    /// if given, else `needs` with `artifacts: true`, else every job of the earlier stages.
    pub artifacts_from: Vec<usize>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("no job named {}", .0.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", "))]
    UnknownJobs(Vec<String>),
}

/// Plan the pipeline. `select` names jobs to run (with what they need); empty runs all.
/// `manual` runs manual jobs as if they had been played.
pub fn plan(p: &Pipeline, select: &[String], manual: bool) -> Result<Plan, PlanError> {
    let stage_index = p.stage_index();
    let mut candidates: Vec<&Job> = p.jobs.iter().filter(|j| j.when != When::Never).collect();
    // Validation guarantees the stage exists; stable sort keeps file order inside a stage.
    candidates.sort_by_key(|j| stage_index.get(j.stage.as_str()).copied().unwrap_or(0));

    let unknown: Vec<String> = select
        .iter()
        .filter(|n| !candidates.iter().any(|j| &j.name == *n))
        .cloned()
        .collect();
    if !unknown.is_empty() {
        return Err(PlanError::UnknownJobs(unknown));
    }

    let index_of: HashMap<&str, usize> = candidates
        .iter()
        .enumerate()
        .map(|(i, j)| (j.name.as_str(), i))
        .collect();
    // Looked up once per job: the dependency closures below ask for it n² times.
    let stage_at: Vec<usize> = candidates
        .iter()
        .map(|j| stage_index.get(j.stage.as_str()).copied().unwrap_or(0))
        .collect();
    let direct_deps = |i: usize| -> Vec<usize> {
        let job = candidates[i];
        match &job.needs {
            Some(needs) => needs
                .iter()
                .filter_map(|n| index_of.get(n.job.as_str()).copied())
                .collect(),
            None => (0..candidates.len())
                .filter(|&k| stage_at[k] < stage_at[i])
                .collect(),
        }
    };

    let keep: BTreeSet<usize> = if select.is_empty() {
        (0..candidates.len()).collect()
    } else {
        let mut keep = BTreeSet::new();
        let mut todo: Vec<usize> = select
            .iter()
            .filter_map(|n| index_of.get(n.as_str()).copied())
            .collect();
        while let Some(i) = todo.pop() {
            if keep.insert(i) {
                todo.extend(direct_deps(i));
            }
        }
        keep
    };

    let new_index: HashMap<usize, usize> = keep.iter().enumerate().map(|(n, &o)| (o, n)).collect();
    let artifacts_from = |i: usize| -> Vec<usize> {
        let job = candidates[i];
        let mut from: Vec<usize> = match (&job.dependencies, &job.needs) {
            (Some(deps), _) => deps
                .iter()
                .filter_map(|d| index_of.get(d.job.as_str()).copied())
                .collect(),
            (None, Some(needs)) => needs
                .iter()
                .filter(|n| n.artifacts)
                .filter_map(|n| index_of.get(n.job.as_str()).copied())
                .collect(),
            (None, None) => (0..candidates.len())
                .filter(|&k| stage_at[k] < stage_at[i])
                .collect(),
        };
        from.sort_unstable();
        from.dedup();
        from.into_iter()
            .filter_map(|d| new_index.get(&d).copied())
            .collect()
    };
    let jobs = keep
        .iter()
        .map(|&i| {
            let job = candidates[i];
            let named = select.iter().any(|n| n == &job.name);
            PlannedJob {
                job: job.clone(),
                stage_index: stage_at[i],
                deps: direct_deps(i)
                    .into_iter()
                    .filter_map(|d| new_index.get(&d).copied())
                    .collect(),
                dag: job.needs.is_some(),
                artifacts_from: artifacts_from(i),
                run: job.when != When::Manual || manual || named,
            }
        })
        .collect();
    Ok(Plan {
        stages: p.stages.clone(),
        jobs,
    })
}

/// One job in `berth plan --output json`: a stable interface.
#[derive(Debug, Serialize)]
pub struct JsonJob<'a> {
    pub name: &'a str,
    pub stage: &'a str,
    pub when: &'static str,
    pub allow_failure: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub needs: Option<Vec<JsonNeed<'a>>>,
}

#[derive(Debug, Serialize)]
pub struct JsonNeed<'a> {
    pub job: &'a str,
    pub artifacts: bool,
    pub optional: bool,
}

impl Plan {
    pub fn to_json(&self) -> Vec<JsonJob<'_>> {
        self.jobs
            .iter()
            .map(|pj| JsonJob {
                name: &pj.job.name,
                stage: &pj.job.stage,
                when: pj.job.when.as_str(),
                allow_failure: pj.job.allow_failure != crate::pipeline::AllowFailure::No,
                needs: pj.job.needs.as_ref().map(|needs| {
                    needs
                        .iter()
                        .map(|n| JsonNeed {
                            job: &n.job,
                            artifacts: n.artifacts,
                            optional: n.optional,
                        })
                        .collect()
                }),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::load;

    fn names(plan: &Plan) -> Vec<&str> {
        plan.jobs.iter().map(|j| j.job.name.as_str()).collect()
    }

    const SRC: &str = "\
stages: [build, test, deploy]
ship:
  stage: deploy
  script: s
lint:
  stage: test
  needs: []
  script: s
unit:
  stage: test
  needs: [compile]
  script: s
compile:
  stage: build
  script: s
docs:
  stage: build
  script: s
release:
  stage: deploy
  when: manual
  script: s
gone:
  rules: [{when: never}]
  script: s
";

    #[test]
    fn orders_by_stage_then_file_and_builds_edges() {
        let p = load(SRC).unwrap().pipeline;
        let plan = plan(&p, &[], false).unwrap();
        assert_eq!(
            names(&plan),
            vec!["compile", "docs", "lint", "unit", "ship", "release"]
        );
        let dep_names = |i: usize| -> Vec<&str> {
            plan.jobs[i]
                .deps
                .iter()
                .map(|&d| plan.jobs[d].job.name.as_str())
                .collect()
        };
        assert!(dep_names(2).is_empty(), "needs: [] starts at once");
        assert_eq!(dep_names(3), vec!["compile"]);
        assert_eq!(dep_names(4), vec!["compile", "docs", "lint", "unit"]);
        assert!(plan.jobs[3].dag && !plan.jobs[4].dag);
        assert!(
            !plan.jobs[5].run,
            "manual jobs are not run unless asked for"
        );
    }

    #[test]
    fn selection_pulls_in_dependencies() {
        let p = load(SRC).unwrap().pipeline;
        let plan = plan(&p, &["unit".to_string()], false).unwrap();
        assert_eq!(names(&plan), vec!["compile", "unit"]);
        assert_eq!(plan.jobs[1].deps, vec![0]);
        let plan2 = super::plan(&p, &["ship".to_string()], false).unwrap();
        assert_eq!(
            names(&plan2),
            vec!["compile", "docs", "lint", "unit", "ship"]
        );
    }

    #[test]
    fn naming_a_manual_job_runs_it() {
        let p = load(SRC).unwrap().pipeline;
        let plan = plan(&p, &["release".to_string()], false).unwrap();
        assert!(plan.jobs.last().unwrap().run);
        let all = super::plan(&p, &[], true).unwrap();
        assert!(all.jobs.iter().all(|j| j.run));
    }

    #[test]
    fn whose_artifacts_each_job_receives() {
        let src = "\
stages: [a, b, c]
one:
  stage: a
  script: s
two:
  stage: a
  script: s
by_stage:
  stage: b
  script: s
by_needs:
  stage: b
  needs: [one, {job: two, artifacts: false}]
  script: s
by_deps:
  stage: c
  dependencies: [two]
  script: s
none:
  stage: c
  dependencies: []
  script: s
";
        let p = load(src).unwrap().pipeline;
        let plan = plan(&p, &[], false).unwrap();
        let from = |name: &str| -> Vec<&str> {
            let j = plan.jobs.iter().find(|j| j.job.name == name).unwrap();
            j.artifacts_from
                .iter()
                .map(|&i| plan.jobs[i].job.name.as_str())
                .collect()
        };
        assert_eq!(from("by_stage"), vec!["one", "two"]);
        assert_eq!(from("by_needs"), vec!["one"]);
        assert_eq!(from("by_deps"), vec!["two"]);
        assert!(from("none").is_empty());
        assert!(from("one").is_empty());
    }

    #[test]
    fn unknown_selection_is_an_error() {
        let p = load(SRC).unwrap().pipeline;
        let err = plan(&p, &["nope".to_string()], false).unwrap_err();
        assert_eq!(err, PlanError::UnknownJobs(vec!["nope".into()]));
    }

    #[test]
    fn json_shape() {
        let p = load(SRC).unwrap().pipeline;
        let plan = plan(&p, &[], false).unwrap();
        let json = serde_json::to_value(plan.to_json()).unwrap();
        assert_eq!(json[2]["name"], "lint");
        assert_eq!(json[2]["needs"], serde_json::json!([]));
        assert!(json[0].get("needs").is_none());
        assert_eq!(json[5]["when"], "manual");
        assert_eq!(json[5]["allow_failure"], true);
    }
}
