//! Start-ahead: the containers of the jobs that will run next are created, given their
//! workspace and scripts, and started while the jobs they need still run, so that starting a
//! container is off the critical path. A job's script waits in its container at a gate (a
//! blocking read of its stdin, which berth holds open from before the start and which costs
//! nothing while it waits); once its needs have finished, berth unpacks their artifacts and a
//! file of their dotenv variables into it and opens the gate by writing one line there, on a
//! connection already open (no process to start in the container, no further request). A
//! berth that goes away closes the stdin: the script then ends without running. A job of steps
//! needs no gate: its container only stays up until berth runs the first step in it.
//!
//! What a job sees does not change: it starts only after its needs, with what they left, in a
//! container no other job used. A container prepared for a job that then does not run (a need
//! that failed, `when`, `if:`, fail-fast, Ctrl-C) is removed. At most as many are prepared ahead
//! as `-j` lets run at once.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::io::AsyncWriteExt;
use tokio::task::JoinHandle;

use super::job::{self, Ended};
use super::runtime::{ContainerSpec, RuntimeError, Stdin};
use super::{script, PreparedJob, Shared, State};
use crate::events::{JobStatus, Sink};
use crate::pipeline::When;
use crate::plan::Plan;
use futures_util::StreamExt;

/// A job's container, created, filled and started ahead of it.
pub(super) struct Warm {
    pub id: String,
    pub spec: ContainerSpec,
    pub held: Held,
}

/// What holds a job started ahead: its script's gate (the container's stdin), or, for a job of
/// steps, nothing (it waits for its first step).
pub(super) enum Held {
    Gate(Stdin),
    Steps,
}

/// A container being prepared; `None` when that failed (the job then gets one as usual).
pub(super) type Warming = JoinHandle<Option<Warm>>;

/// How long a container prepared ahead waits for the running jobs' own starts at most: a
/// safety net (what holds a start up, such as the checkouts being made, holds this one too).
const YIELD: std::time::Duration = std::time::Duration::from_secs(30);

/// The script that waits at the gate, and the line that opens it.
const GATE_SCRIPT: &str = "berth/gate.sh";
const OPEN: &[u8] = b"go\n";
/// Written at the gate's opening: the dotenv variables of the job's needs, as `env` arguments.
const GO: &str = "berth/go.sh";

/// The containers prepared ahead in a run, by plan index.
pub(super) struct Ahead {
    warming: HashMap<usize, Warming>,
    limit: usize,
}

impl Ahead {
    /// At most `limit` prepared at a time (`-j`).
    pub fn new(limit: usize) -> Ahead {
        Ahead {
            warming: HashMap::new(),
            limit,
        }
    }

    /// Start preparing the jobs that will run next, in the plan's order, up to the limit.
    pub fn fill(
        &mut self,
        plan: &Plan,
        prepared: &[Option<Arc<PreparedJob>>],
        state: &[State],
        shared: &Arc<Shared>,
        sink: &Sink,
    ) {
        for (i, job) in prepared.iter().enumerate() {
            if self.warming.len() >= self.limit {
                return;
            }
            let Some(job) = job else { continue };
            if self.warming.contains_key(&i) || !runs_next(plan, i, state) || !eligible(job, shared)
            {
                continue;
            }
            let (job, shared, sink) = (job.clone(), shared.clone(), sink.clone());
            self.warming
                .insert(i, tokio::spawn(prepare(job, shared, sink)));
        }
    }

    /// The container prepared for job `i`, which starts now.
    pub fn take(&mut self, i: usize) -> Option<Warming> {
        self.warming.remove(&i)
    }

    /// Remove the containers of the jobs that ended without running (skipped, cancelled).
    pub fn retire(&mut self, state: &[State], shared: &Shared) {
        let done: Vec<usize> = self
            .warming
            .keys()
            .copied()
            .filter(|&i| matches!(state[i], State::Done(..)))
            .collect();
        for i in done {
            if let Some(warming) = self.warming.remove(&i) {
                discard(warming, shared);
            }
        }
    }

    /// Remove every container still prepared (the run is ending or interrupted).
    pub fn discard_all(&mut self, shared: &Shared) {
        for (_, warming) in self.warming.drain() {
            discard(warming, shared);
        }
    }
}

/// Removed in the background with the run's other cleanup, which the run waits for before its
/// final sweep: a preparation still under way finishes first, so nothing is created after it.
fn discard(warming: Warming, shared: &Shared) {
    let engine = shared.engine.clone();
    shared
        .cleanup
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .spawn(async move {
            if let Ok(Some(warm)) = warming.await {
                let _ = engine.remove_container(&warm.id).await;
            }
        });
}

/// The prepared container, once its preparation is over (`None` if it failed).
pub(super) async fn ready(warming: Warming) -> Option<Warm> {
    warming.await.ok().flatten()
}

/// Job `i` will run once the jobs it needs, now running or passed, pass: `when` lets it, and
/// nothing it needs is still waiting or did not succeed.
fn runs_next(plan: &Plan, i: usize, state: &[State]) -> bool {
    let pj = &plan.jobs[i];
    matches!(state[i], State::Waiting)
        && matches!(pj.job.when, When::OnSuccess | When::Always)
        && pj.deps.iter().all(|d| match &state[d] {
            State::Running => true,
            State::Done(status, _) => {
                matches!(status, JobStatus::Passed | JobStatus::AllowedFailure)
            }
            State::Waiting => false,
        })
}

/// Whether a job's container can be prepared ahead with nothing of it changing. Not: a job
/// with services (they start with it, on its network), volumes or caches of its own (made and
/// locked when it starts), a delayed job, and the job `berth shell` opens.
pub(super) fn eligible(job: &PreparedJob, shared: &Shared) -> bool {
    job.services.is_empty()
        && job.volumes.is_empty()
        && job.caches.is_empty()
        && job.start_in.is_none()
        && shared.config.shell_job.as_deref() != Some(job.name.as_str())
}

/// Create the job's first container, unpack its workspace and scripts (with the gate) into
/// it, and start it. A failure removes what was made: the job then starts as usual.
async fn prepare(job: Arc<PreparedJob>, shared: Arc<Shared>, sink: Sink) -> Option<Warm> {
    // The jobs that can run now start first; this one cannot run before they end anyway.
    shared.starts_done(YIELD).await;
    let config = &shared.config;
    let engine = &*shared.engine;
    let network = (config.offline || config.hermetic.is_some()).then(|| "none".to_string());
    let mut spec = job::container_spec(
        &job,
        &shared,
        job::job_labels(&job, &shared),
        job::container_name(&job, &shared, 1),
        network,
        job::binds(&job, &shared, &[]),
    );
    if job.steps.is_none() {
        spec.cmd = gate_command();
        spec.stdin = true;
    }
    let scripts = match job.steps {
        Some(_) => job.scripts_tar.clone(),
        None => with_gate(&job.scripts_tar).ok()?,
    };
    let id = engine.create_container(&spec).await.ok()?;
    // Without the artifacts of its needs this says nothing; what fails here is tried again the
    // usual way when the job starts.
    let filled = async {
        let held = match job.steps {
            Some(_) => Held::Steps,
            // Attached before the start, so that the gate's read finds it open.
            None => Held::Gate(engine.attach_stdin(&id).await.ok()?),
        };
        job::upload_files(&job, &shared, &sink, &id, scripts, false)
            .await
            .ok()?;
        engine.start(&id).await.ok()?;
        Some(held)
    }
    .await;
    match filled {
        Some(held) => Some(Warm { id, spec, held }),
        None => {
            let _ = engine.remove_container(&id).await;
            None
        }
    }
}

/// The command of a job's container started ahead: its gate, which then runs the driver.
fn gate_command() -> Vec<String> {
    vec!["/bin/sh".into(), format!("/{GATE_SCRIPT}")]
}

/// Waits for berth to open the gate, then runs the job's driver with the dotenv variables of
/// its needs over its environment (`env`, so any name a dotenv report allows gets through).
fn gate_script() -> String {
    let driver = script::Scripts::command().join(" ");
    format!(
        "# Generated by berth: this container started while the jobs it needs still ran. berth\n\
         # opens the gate (a line on stdin) once they have finished and what they left is in;\n\
         # a closed stdin means berth is gone, and the job does not run unwatched.\n\
         read -r berth_gate || exit 125\n\
         [ \"$berth_gate\" = go ] || exit 125\n\
         set --\n\
         if [ -f /{GO} ]; then . /{GO}; fi\n\
         if [ \"$#\" -gt 0 ]; then exec env \"$@\" {driver} </dev/null; fi\n\
         exec {driver} </dev/null\n"
    )
}

/// The job's scripts with the gate's script.
fn with_gate(scripts: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    for entry in tar::Archive::new(scripts).entries()? {
        let mut entry = entry?;
        let mut header = entry.header().clone();
        let path = entry.path()?.into_owned();
        builder.append_data(&mut header, path, &mut entry)?;
    }
    let text = gate_script();
    let mut header = tar::Header::new_gnu();
    header.set_size(text.len() as u64);
    header.set_mode(0o755);
    header.set_mtime(0);
    builder.append_data(&mut header, GATE_SCRIPT, text.as_bytes())?;
    builder.into_inner()
}

/// The dotenv variables for the gate, as `set --` arguments (`NAME=value`, each quoted).
fn go_script(vars: &[(String, String)]) -> String {
    let args: Vec<String> = vars
        .iter()
        .map(|(k, v)| script::quote(&format!("{k}={v}")))
        .collect();
    format!(
        "# Generated by berth: the dotenv variables of the jobs this one needs.\nset -- {}\n",
        args.join(" ")
    )
}

/// The variables the job's dotenv sources gave, as [`job::with_dotenv`] lays them over its own.
fn dotenv_vars(job: &PreparedJob, shared: &Shared) -> Vec<(String, String)> {
    let reports = shared.dotenv.lock().unwrap_or_else(|e| e.into_inner());
    job.artifacts_from
        .iter()
        .flat_map(|from| reports.get(&from).into_iter().flatten())
        .filter(|(k, _)| !shared.config.overrides.iter().any(|(o, _)| o == k))
        .cloned()
        .collect()
}

/// A small tar holding one file.
fn file_tar(path: &str, text: &str) -> std::io::Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(text.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(0);
    builder.append_data(&mut header, path, text.as_bytes())?;
    builder.into_inner()
}

/// The job's needs have finished: unpack their artifacts (and, for a script, their dotenv
/// variables) into its running container, then open its gate.
pub(super) async fn deliver(
    job: &PreparedJob,
    shared: &Shared,
    sink: &Sink,
    id: &str,
    held: Held,
) -> Result<(), Ended> {
    let engine = &*shared.engine;
    let vars = match job.steps {
        // A job of steps reads them when its first step starts.
        Some(_) => Vec::new(),
        None => dotenv_vars(job, shared),
    };
    let has_artifacts = {
        let stored = shared.stored.lock().unwrap_or_else(|e| e.into_inner());
        job.artifacts_from.iter().any(|i| stored.contains_key(&i))
    };
    if has_artifacts || !vars.is_empty() {
        let go = match vars.is_empty() {
            true => empty_tar(),
            false => file_tar(GO, &go_script(&vars)),
        }
        .map_err(|e| Ended::Refused(format!("the dotenv variables of its needs: {e}")))?;
        let (tail, failure) = job::receive_artifacts(job, shared, sink, go, true).await?;
        let uploaded = engine.upload_tar_stream(id, "/", tail.boxed()).await;
        if let (Err(_), Some(why)) = (&uploaded, failure.get()) {
            return Err(Ended::Refused(format!("the job's files: {why}")));
        }
        uploaded.map_err(Ended::Broken)?;
    }
    match held {
        Held::Gate(stdin) => open_gate(stdin).await.map_err(Ended::Broken),
        Held::Steps => Ok(()),
    }
}

fn empty_tar() -> std::io::Result<Vec<u8>> {
    tar::Builder::new(Vec::new()).into_inner()
}

/// Write the line that opens the gate, and close the stdin (its script reads no more of it).
async fn open_gate(mut stdin: Stdin) -> Result<(), RuntimeError> {
    let io = |e: std::io::Error| RuntimeError::Api(format!("opening the job's gate: {e}"));
    stdin.write_all(OPEN).await.map_err(io)?;
    stdin.flush().await.map_err(io)?;
    stdin.shutdown().await.map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gate_is_added_to_the_scripts_as_a_fifo() {
        let scripts = script::render(&[], &["true".into()], &[], &script::Options::default())
            .to_tar()
            .unwrap();
        let tar = with_gate(&scripts).unwrap();
        let mut archive = tar::Archive::new(&tar[..]);
        let entries: Vec<(String, tar::EntryType)> = archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let path = e.path().unwrap().display().to_string();
                (path, e.header().entry_type())
            })
            .collect();
        let names: Vec<&str> = entries.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "berth/",
                "berth/driver.sh",
                "berth/step.sh",
                "berth/stop.sh",
                GATE_SCRIPT,
            ]
        );
        assert_eq!(entries[4].1, tar::EntryType::Regular);
    }

    #[test]
    fn dotenv_variables_reach_the_driver_quoted_through_env() {
        let go = go_script(&[("A".into(), "it's here".into()), ("9B".into(), "x".into())]);
        assert!(go.ends_with("set -- 'A=it'\\''s here' '9B=x'\n"), "{go}");
        let gate = gate_script();
        assert!(gate.contains("read -r berth_gate || exit 125"), "{gate}");
        assert!(
            gate.contains("exec env \"$@\" /bin/sh /berth/driver.sh </dev/null"),
            "{gate}"
        );
    }
}
