//! Jobs made at run time (GitHub's matrix made from a need's output): when the job that stands
//! for them may start, its format makes them from how its needs ended; they are prepared, their
//! images had, and they run in its place, together (within `-j` and `max-parallel`), a failure
//! cancelling the others under `fail-fast`. The stand-in ends when they all have: failed if one
//! failed, its outputs theirs (a later one's winning), so the jobs that need it read them as
//! they would a matrix's.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::{images, job, prepare, Outcome, Shared};
use crate::events::{Event, JobStatus, JobSummary, Sink};
use crate::pipeline::steps::NeedResult;
use crate::plan::{JobSet, Plan, PlannedJob};

/// Runs the jobs `parent` (plan index `index`) stands for. Their summaries are kept in
/// [`Shared`] for the run's result, in place of the parent's.
pub(super) async fn run(
    index: usize,
    parent: PlannedJob,
    stages: Vec<String>,
    shared: Arc<Shared>,
    sink: Sink,
    cancel: CancellationToken,
    needs: Vec<NeedResult>,
) -> Outcome {
    let started = Instant::now();
    let failed = |why: String| fail(&sink, &parent, why, started);
    let Some(expander) = parent.job.expand.clone() else {
        return failed("it has no jobs to make".into()).await;
    };
    let made = match expander.expand(&needs) {
        Ok(made) if made.is_empty() => return failed("its matrix makes no jobs".into()).await,
        Ok(made) => made,
        Err(why) => return failed(why).await,
    };
    let plan = Plan {
        stages,
        jobs: made
            .into_iter()
            .map(|job| PlannedJob {
                job,
                stage_index: parent.stage_index,
                deps: JobSet::default(),
                dag: true,
                run: true,
                artifacts_from: parent.artifacts_from.clone(),
            })
            .collect(),
    };
    let first = shared.made.fetch_add(plan.jobs.len(), Ordering::Relaxed);
    let prepared = match prepare::jobs_from(&plan, &shared.config, first) {
        Ok(p) => p,
        Err(e) => return failed(e.to_string()).await,
    };
    let mut ids = match images::ensure(&prepared.images, &*shared.engine, &sink, &cancel).await {
        Ok(ids) => ids,
        Err(e) => return failed(e.to_string()).await,
    };
    let mut jobs = prepared.jobs;
    super::queue(&plan, &mut jobs, &mut ids, &shared, &sink).await;
    let jobs: Vec<_> = jobs.into_iter().flatten().map(Arc::new).collect();

    let fail_fast = plan
        .jobs
        .iter()
        .any(|pj| pj.job.origin.as_ref().is_some_and(|o| o.fail_fast));
    // The matrix's `strategy`, which its jobs carry (the stand-in has none of its own).
    let max_parallel = plan
        .jobs
        .first()
        .and_then(|pj| pj.job.origin.as_ref()?.max_parallel);
    let limit = max_parallel
        .unwrap_or(usize::MAX)
        .min(shared.config.jobs_limit)
        .max(1);

    let mut statuses: Vec<Option<(JobStatus, std::time::Duration)>> = vec![None; jobs.len()];
    let mut tokens = Vec::with_capacity(jobs.len());
    let mut running = JoinSet::new();
    let mut next = 0;
    let mut stopped: Option<String> = None;
    let mut finish_order = Vec::new();
    loop {
        while next < jobs.len() && running.len() < limit && stopped.is_none() {
            if cancel.is_cancelled() {
                break;
            }
            let token = cancel.child_token();
            tokens.push(token.clone());
            let (job, shared, sink, needs) = (
                jobs[next].clone(),
                shared.clone(),
                sink.clone(),
                needs.clone(),
            );
            let k = next;
            running
                .spawn(async move { (k, job::run(job, shared, sink, token, needs, None).await) });
            next += 1;
        }
        let Some(joined) = running.join_next().await else {
            break;
        };
        let Ok((k, outcome)) = joined else { continue };
        statuses[k] = Some((outcome.status, outcome.duration));
        finish_order.push(k);
        if fail_fast && outcome.status.fails_pipeline() && stopped.is_none() {
            stopped = Some(format!("fail-fast: `{}` failed", jobs[k].name));
            for t in &tokens {
                t.cancel();
            }
        }
    }
    // What never started: cancelled by fail-fast or by the run's end.
    for (k, job) in jobs.iter().enumerate().skip(next) {
        let reason = stopped
            .clone()
            .unwrap_or_else(|| "the run was interrupted before it started".into());
        sink.send(Event::JobSkipped {
            job: job.name.clone(),
            stage: job.stage.clone(),
            status: JobStatus::Cancelled,
            reason,
        })
        .await;
        statuses[k] = Some((JobStatus::Cancelled, std::time::Duration::ZERO));
    }

    // Their outputs become the stand-in's, in the order they finished.
    {
        let mut outputs = shared
            .step_outputs
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let mut merged: Vec<(String, String)> = Vec::new();
        for &k in &finish_order {
            for (name, value) in outputs.get(&jobs[k].index).cloned().unwrap_or_default() {
                match merged.iter_mut().find(|(n, _)| *n == name) {
                    Some(slot) => slot.1 = value,
                    None => merged.push((name, value)),
                }
            }
        }
        outputs.insert(index, merged);
    }
    let summaries: Vec<JobSummary> = jobs
        .iter()
        .zip(&statuses)
        .map(|(job, s)| JobSummary {
            name: job.name.clone(),
            stage: job.stage.clone(),
            status: s.map_or(JobStatus::Cancelled, |(status, _)| status),
            image: Some(job.image.clone()),
            duration: s.map(|(_, d)| d).filter(|d| !d.is_zero()),
        })
        .collect();
    let status = combined(summaries.iter().map(|s| s.status));
    shared
        .expanded
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(index, summaries);
    Outcome {
        status,
        duration: started.elapsed(),
    }
}

/// The stand-in fails before it makes its jobs: `why` is its summary.
async fn fail(sink: &Sink, parent: &PlannedJob, why: String, started: Instant) -> Outcome {
    sink.send(Event::JobSkipped {
        job: parent.job.name.clone(),
        stage: parent.job.stage.clone(),
        status: JobStatus::Failed,
        reason: why,
    })
    .await;
    Outcome {
        status: JobStatus::Failed,
        duration: started.elapsed(),
    }
}

/// The stand-in's status: a failure if one of its jobs failed (the worst of them), cancelled if
/// one was, skipped if all were, else passed.
fn combined(statuses: impl Iterator<Item = JobStatus>) -> JobStatus {
    let all: Vec<JobStatus> = statuses.collect();
    let first = |wanted: &[JobStatus]| all.iter().copied().find(|s| wanted.contains(s));
    first(&[JobStatus::Failed, JobStatus::TimedOut, JobStatus::Error])
        .or(first(&[JobStatus::Cancelled]))
        .unwrap_or(if all.iter().all(|s| *s == JobStatus::Skipped) {
            JobStatus::Skipped
        } else {
            JobStatus::Passed
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stand_in_fails_when_one_of_its_jobs_does() {
        use JobStatus::*;
        assert_eq!(combined([Passed, Failed, Cancelled].into_iter()), Failed);
        assert_eq!(combined([Passed, Cancelled].into_iter()), Cancelled);
        assert_eq!(combined([Passed, AllowedFailure].into_iter()), Passed);
        assert_eq!(combined([Skipped, Skipped].into_iter()), Skipped);
        assert_eq!(combined([Skipped, Passed].into_iter()), Passed);
    }
}
