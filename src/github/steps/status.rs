//! The status functions' answers: a job's `if:` reads its needs' results, a step's `if:` the
//! job's status so far.

use crate::github::expr::{Host, Object, Status, Value};
use crate::pipeline::steps::NeedResult;

/// The needs' results by job id, matrix jobs folded into one, and the `needs` context.
pub(super) fn fold_needs(needs: &[NeedResult]) -> (Vec<(String, String)>, Value) {
    let mut ids: Vec<String> = Vec::new();
    for n in needs {
        if !ids.iter().any(|i| i.eq_ignore_ascii_case(&n.job)) {
            ids.push(n.job.clone());
        }
    }
    let mut results = Vec::new();
    let mut context = Object::new();
    for id in ids {
        let all: Vec<&NeedResult> = needs
            .iter()
            .filter(|n| n.job.eq_ignore_ascii_case(&id))
            .collect();
        let any = |r: &str| all.iter().any(|n| n.result == r);
        let result = if any("failure") {
            "failure"
        } else if any("cancelled") {
            "cancelled"
        } else if all.iter().all(|n| n.result == "skipped") {
            "skipped"
        } else {
            "success"
        };
        // Outputs of a matrix: each job's in turn, a later one's winning (GitHub: the last
        // to finish).
        let mut outputs = Object::new();
        for n in &all {
            for (k, v) in &n.outputs {
                outputs.insert(k.clone(), Value::from(v.as_str()));
            }
        }
        context.insert(
            id.clone(),
            Value::object([
                ("result", Value::from(result)),
                ("outputs", Value::from(outputs)),
            ]),
        );
        results.push((id, result.to_string()));
    }
    (results, Value::from(context))
}

/// The `needs` context of a job whose needs ended so.
pub fn needs_context(needs: &[NeedResult]) -> Value {
    fold_needs(needs).1
}

/// Status functions of a job's `if:`: the needs' results.
pub(super) struct JobHost<'a> {
    pub results: &'a [(String, String)],
    pub cancelled: bool,
}

impl Host for JobHost<'_> {
    fn status(&self, status: Status, args: &[Value]) -> Result<bool, String> {
        let mut selected = Vec::new();
        if args.is_empty() {
            selected.extend(self.results.iter().map(|(_, r)| r.as_str()));
        } else {
            for a in args {
                let name = a.to_github_string();
                match self
                    .results
                    .iter()
                    .find(|(id, _)| id.eq_ignore_ascii_case(&name))
                {
                    Some((_, r)) => selected.push(r.as_str()),
                    None => return Err(format!("`{name}` is not a job this job needs")),
                }
            }
        }
        Ok(match status {
            Status::Success => !self.cancelled && selected.iter().all(|r| *r == "success"),
            Status::Failure => selected.contains(&"failure"),
            Status::Cancelled => self.cancelled,
            Status::Always => true,
        })
    }

    fn hash_files(&self, _patterns: &[String]) -> Result<String, String> {
        // The parser refuses `hashFiles` in a job's `if:`.
        Err("hashFiles is not available in a job's `if:`".to_string())
    }
}

/// What answers `hashFiles`: the patterns in, the hash (or why not) out.
pub(super) type HashFn = dyn Fn(&[String]) -> Result<String, String> + Send + Sync;

/// Status functions of a step's `if:`: the job's status so far; `hashFiles` the workspace's
/// files, through the hasher the job was started with.
pub(super) struct StepHost<'a> {
    pub failed: bool,
    pub cancelled: bool,
    pub hasher: Option<&'a HashFn>,
}

impl Host for StepHost<'_> {
    fn status(&self, status: Status, _args: &[Value]) -> Result<bool, String> {
        Ok(match status {
            Status::Success => !self.failed && !self.cancelled,
            Status::Failure => self.failed && !self.cancelled,
            Status::Cancelled => self.cancelled,
            Status::Always => true,
        })
    }

    fn hash_files(&self, patterns: &[String]) -> Result<String, String> {
        match self.hasher {
            Some(hash) => hash(patterns),
            None => Err("the job has no workspace files to hash".to_string()),
        }
    }
}
