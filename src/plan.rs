//! What will run, in which order: the pipeline's jobs as a graph.
//!
//! A job with `needs` depends on exactly those jobs (a DAG edge); any other job depends on every
//! job of the earlier stages. Selecting jobs on the command line keeps them and everything they
//! depend on. Pure logic: no Docker.
//!
//! "Every job of the earlier stages" is kept as a bound ([`JobSet::Before`]), not as a list:
//! 20,000 jobs in 4 stages would otherwise hold 150 million edges.

use std::collections::{BTreeSet, HashMap, HashSet};

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
    pub deps: JobSet,
    /// The deps come from `needs` (true) or from stage order (false).
    pub dag: bool,
    /// False for a manual job nobody asked for: shown, not run.
    pub run: bool,
    /// Indices of the jobs whose artifacts this one receives, in plan order: `dependencies`
    /// if given, else `needs` with `artifacts: true`, else every job of the earlier stages.
    pub artifacts_from: JobSet,
}

/// Some jobs of a plan, as indices into [`Plan::jobs`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobSet {
    /// The jobs `needs` or `dependencies` name.
    Listed(Vec<usize>),
    /// Every job before this index: the jobs of the earlier stages, which come first in plan
    /// order. One number however many jobs there are.
    Before(usize),
}

impl Default for JobSet {
    fn default() -> Self {
        JobSet::Listed(Vec::new())
    }
}

impl JobSet {
    pub fn iter(&self) -> JobSetIter<'_> {
        match self {
            JobSet::Listed(list) => JobSetIter::Listed(list.iter()),
            JobSet::Before(end) => JobSetIter::Before(0..*end),
        }
    }

    pub fn len(&self) -> usize {
        match self {
            JobSet::Listed(list) => list.len(),
            JobSet::Before(end) => *end,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The indices kept in memory: what a plan's size grows with.
    pub fn stored(&self) -> usize {
        match self {
            JobSet::Listed(list) => list.len(),
            JobSet::Before(_) => 1,
        }
    }
}

/// The indices of a [`JobSet`], in order.
pub enum JobSetIter<'a> {
    Listed(std::slice::Iter<'a, usize>),
    Before(std::ops::Range<usize>),
}

impl Iterator for JobSetIter<'_> {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        match self {
            JobSetIter::Listed(it) => it.next().copied(),
            JobSetIter::Before(range) => range.next(),
        }
    }
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

    let index_of: HashMap<&str, usize> = candidates
        .iter()
        .enumerate()
        .map(|(i, j)| (j.name.as_str(), i))
        .collect();
    // A name that is no job's may be a GitHub job's id: every combination of its matrix, or
    // every job of the workflow it calls (`build` for `build/compile`).
    let mut selected: Vec<String> = Vec::new();
    let mut unknown: Vec<String> = Vec::new();
    for name in select {
        if index_of.contains_key(name.as_str()) {
            selected.push(name.clone());
            continue;
        }
        let by_id: Vec<String> = candidates
            .iter()
            .filter(|j| {
                j.origin.as_ref().is_some_and(|o| {
                    &o.id == name
                        || o.id
                            .strip_prefix(name.as_str())
                            .is_some_and(|r| r.starts_with('/'))
                })
            })
            .map(|j| j.name.clone())
            .collect();
        if by_id.is_empty() {
            unknown.push(name.clone());
        }
        selected.extend(by_id);
    }
    if !unknown.is_empty() {
        return Err(PlanError::UnknownJobs(unknown));
    }
    let select = &selected;

    let stage_at: Vec<usize> = candidates
        .iter()
        .map(|j| stage_index.get(j.stage.as_str()).copied().unwrap_or(0))
        .collect();
    // Candidates are in stage order: those of the earlier stages are the ones before the first
    // of a job's own stage.
    let stage_start = first_of_stage(&stage_at);
    let needed = |i: usize| -> Option<Vec<usize>> {
        candidates[i].needs.as_ref().map(|needs| {
            needs
                .iter()
                .filter_map(|n| index_of.get(n.job.as_str()).copied())
                .collect()
        })
    };

    let keep: BTreeSet<usize> = if select.is_empty() {
        (0..candidates.len()).collect()
    } else {
        let mut keep = BTreeSet::new();
        let mut todo: Vec<usize> = select
            .iter()
            .filter_map(|n| index_of.get(n.as_str()).copied())
            .collect();
        // Candidates before this one are already on their way in: each is pushed once, not
        // once per job of a later stage.
        let mut pulled = 0;
        while let Some(i) = todo.pop() {
            if keep.insert(i) {
                match needed(i) {
                    Some(deps) => todo.extend(deps),
                    None => {
                        let end = stage_start[i];
                        if end > pulled {
                            todo.extend(pulled..end);
                            pulled = end;
                        }
                    }
                }
            }
        }
        keep
    };

    let kept: Vec<usize> = keep.into_iter().collect();
    let mut new_index: Vec<Option<usize>> = vec![None; candidates.len()];
    for (n, &o) in kept.iter().enumerate() {
        new_index[o] = Some(n);
    }
    let kept_stages: Vec<usize> = kept.iter().map(|&i| stage_at[i]).collect();
    let kept_start = first_of_stage(&kept_stages);
    let renumber = |list: Vec<usize>| -> Vec<usize> {
        list.into_iter().filter_map(|d| new_index[d]).collect()
    };
    let named: HashSet<&str> = select.iter().map(String::as_str).collect();
    let jobs = kept
        .iter()
        .enumerate()
        .map(|(n, &i)| {
            let job = candidates[i];
            let deps = match needed(i) {
                Some(list) => JobSet::Listed(renumber(list)),
                None => JobSet::Before(kept_start[n]),
            };
            let artifacts_from = match (&job.dependencies, &job.needs) {
                (Some(deps), _) => JobSet::Listed(sorted(renumber(
                    deps.iter()
                        .filter_map(|d| index_of.get(d.job.as_str()).copied())
                        .collect(),
                ))),
                (None, Some(needs)) => JobSet::Listed(sorted(renumber(
                    needs
                        .iter()
                        .filter(|n| n.artifacts)
                        .filter_map(|n| index_of.get(n.job.as_str()).copied())
                        .collect(),
                ))),
                (None, None) => JobSet::Before(kept_start[n]),
            };
            PlannedJob {
                job: job.clone(),
                stage_index: stage_at[i],
                deps,
                dag: job.needs.is_some(),
                artifacts_from,
                run: job.when != When::Manual || manual || named.contains(job.name.as_str()),
            }
        })
        .collect();
    Ok(Plan {
        stages: p.stages.clone(),
        jobs,
    })
}

/// For each position of a list sorted by stage, the first position of its stage.
fn first_of_stage(stages: &[usize]) -> Vec<usize> {
    let mut out = Vec::with_capacity(stages.len());
    for (i, s) in stages.iter().enumerate() {
        let start = match i {
            0 => 0,
            _ if stages[i - 1] == *s => out[i - 1],
            _ => i,
        };
        out.push(start);
    }
    out
}

fn sorted(mut list: Vec<usize>) -> Vec<usize> {
    list.sort_unstable();
    list.dedup();
    list
}

/// One job in `berth plan --output json`: a stable interface.
#[derive(Debug, Serialize)]
pub struct JsonJob<'a> {
    /// GitHub: the workflow file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workflow: Option<&'a str>,
    /// GitHub: the job's id in it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job: Option<&'a str>,
    pub name: &'a str,
    pub stage: &'a str,
    pub when: &'static str,
    pub allow_failure: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub needs: Option<JsonNeeds<'a>>,
    /// GitHub: the job's matrix combination.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub matrix: Option<&'a serde_json::Value>,
    /// GitHub: the job's `if:` as written.
    #[serde(rename = "if", skip_serializing_if = "Option::is_none")]
    pub condition: Option<&'a str>,
}

/// GitLab's needs name jobs with how; GitHub's are the needed jobs' ids.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum JsonNeeds<'a> {
    Jobs(Vec<JsonNeed<'a>>),
    Ids(Vec<&'a str>),
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
            .map(|pj| {
                let origin = pj.job.origin.as_ref();
                let needs = match origin {
                    Some(o) => Some(JsonNeeds::Ids(o.needs.iter().map(String::as_str).collect())),
                    None => pj.job.needs.as_ref().map(|needs| {
                        JsonNeeds::Jobs(
                            needs
                                .iter()
                                .map(|n| JsonNeed {
                                    job: &n.job,
                                    artifacts: n.artifacts,
                                    optional: n.optional,
                                })
                                .collect(),
                        )
                    }),
                };
                JsonJob {
                    workflow: origin.map(|o| o.file.as_str()),
                    job: origin.map(|o| o.id.as_str()),
                    name: &pj.job.name,
                    stage: &pj.job.stage,
                    when: pj.job.when.as_str(),
                    allow_failure: pj.job.allow_failure != crate::pipeline::AllowFailure::No,
                    needs,
                    matrix: origin.and_then(|o| o.matrix.as_ref()),
                    condition: origin.and_then(|o| o.condition.as_deref()),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gitlab::load;

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
                .map(|d| plan.jobs[d].job.name.as_str())
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
        assert_eq!(plan.jobs[1].deps, JobSet::Listed(vec![0]));
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
                .map(|i| plan.jobs[i].job.name.as_str())
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

    // 20,000 jobs in 4 stages held 150 million edges (2.5 GB) when each job listed every job
    // of the earlier stages: the plan keeps O(n) indices, and means the same jobs.
    #[test]
    fn stage_order_is_kept_linear_in_the_number_of_jobs() {
        let n = 20_000;
        let mut src = String::from("stages: [s0, s1, s2, s3]\n");
        for i in 0..n {
            src.push_str(&format!("j{i}:\n  stage: s{}\n  script: s\n", i * 4 / n));
        }
        let p = load(&src).unwrap().pipeline;
        let plan = plan(&p, &[], false).unwrap();
        let stored: usize = plan
            .jobs
            .iter()
            .map(|j| j.deps.stored() + j.artifacts_from.stored())
            .sum();
        assert!(stored <= 2 * n, "{stored} indices kept for {n} jobs");
        // What they mean is unchanged: the last job waits for the 15,000 of stages s0 to s2.
        let last = plan.jobs.last().unwrap();
        assert_eq!(last.deps.len(), 15_000);
        assert_eq!(last.deps.iter().last(), Some(14_999));
        assert!(last
            .deps
            .iter()
            .all(|d| plan.jobs[d].stage_index < last.stage_index));
        assert_eq!(plan.jobs[0].deps.len(), 0);
        assert_eq!(plan.jobs[5_000].artifacts_from.len(), 5_000);

        // Selecting the last job pulls in every earlier stage, and its own stage not.
        let one = super::plan(&p, &[format!("j{}", n - 1)], false).unwrap();
        assert_eq!(one.jobs.len(), 15_001);
        assert_eq!(one.jobs.last().unwrap().deps.len(), 15_000);
    }
}
