//! Who owns what berth leaves on an engine, and whether that owner is still alive; and
//! `berth prune`, which removes only what dead owners left.
//!
//! An engine is often shared: by berth processes in other PID namespaces (a CI runner, a
//! container given the Docker socket) or on other machines (`tcp://`). A bare pid tells nothing
//! there. So every object carries its owner's identity (the kernel's boot id and the PID
//! namespace, the pid and the process's start time), which is exact on the owner's own host;
//! and every run holds a lease on the engine, a small labelled volume renewed every
//! [`RENEW`], which anyone sharing the engine can read. A run whose owner is not on this host is
//! alive while its lease is younger than [`EXPIRES`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::engine::runtime::{labels, ContainerRuntime, ObjectInfo, RuntimeError};

/// How often a live run renews its lease.
pub const RENEW: Duration = Duration::from_secs(10);
/// A lease not renewed for this long belongs to a dead run (well over [`RENEW`], to allow for
/// a busy machine and for clocks that differ a little between hosts).
pub const EXPIRES: Duration = Duration::from_secs(90);

/// The identity of a berth process, as labels put it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// `<boot id>/<pid namespace>`: the same for every process that can see the same pids.
    pub host: String,
    pub pid: u32,
    /// When the process started, in clock ticks since boot (tells a pid reused from another).
    pub started: u64,
}

impl Owner {
    /// This process.
    pub fn me() -> Owner {
        let pid = std::process::id();
        Owner {
            host: host_identity(),
            pid,
            started: process_start(pid).unwrap_or(0),
        }
    }

    pub fn labels(&self) -> [(String, String); 3] {
        [
            (labels::HOST.to_string(), self.host.clone()),
            (labels::PID.to_string(), self.pid.to_string()),
            (labels::PID_START.to_string(), self.started.to_string()),
        ]
    }

    fn from_labels(l: &HashMap<String, String>) -> Option<Owner> {
        Some(Owner {
            host: l.get(labels::HOST)?.clone(),
            pid: l.get(labels::PID)?.parse().ok()?,
            started: l.get(labels::PID_START)?.parse().ok()?,
        })
    }
}

/// Empty when either part cannot be read: then no other process counts as on our host.
fn host_identity() -> String {
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let pidns = std::fs::read_link("/proc/self/ns/pid")
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    if boot.is_empty() || pidns.is_empty() {
        String::new()
    } else {
        format!("{boot}/{pidns}")
    }
}

/// What this host can tell of a process of its own.
#[derive(Debug, PartialEq, Eq)]
enum Process {
    Alive,
    Dead,
    /// Not for us to see (`/proc` mounted with `hidepid`, another user's process).
    Unknown,
}

fn process_state(pid: u32, started: u64) -> Process {
    let Ok(pid_t) = i32::try_from(pid) else {
        return Process::Dead;
    };
    // SAFETY: signal 0 checks existence without touching the process.
    if unsafe { libc::kill(pid_t, 0) } != 0
        && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
    {
        return Process::Dead;
    }
    match process_start(pid) {
        _ if started == 0 => Process::Unknown,
        Some(s) if s == started => Process::Alive,
        // The pid was reused by a process started later.
        Some(_) => Process::Dead,
        None => Process::Unknown,
    }
}

/// A process's start time (field 22 of `/proc/PID/stat`), `None` when there is no such process.
fn process_start(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: count from its last `)`.
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(19)?.parse().ok()
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A run's lease, renewed in the background until [`Lease::release`] (or until dropped). The lease's volume is
/// temporary and carries the run's labels, so the run's final sweep removes it.
pub struct Lease {
    stop: CancellationToken,
    /// Renews, and returns the name of the lease volume that stands when it stops.
    task: JoinHandle<String>,
}

fn lease_labels(run: &HashMap<String, String>, at: u64) -> HashMap<String, String> {
    let mut l = run.clone();
    l.insert(labels::TEMPORARY.to_string(), "1".to_string());
    l.insert(labels::LEASE.to_string(), at.to_string());
    l
}

fn lease_name(run: &HashMap<String, String>, at: u64) -> String {
    let id = run.get(labels::RUN).map(String::as_str).unwrap_or("");
    format!("berth-lease-{id}-{}-{at}", std::process::id())
}

impl Lease {
    /// Take the lease for a run whose objects carry `run_labels` (the run id, the project, the
    /// owner). Taken before the run creates anything, so that no object of a live run is ever
    /// seen without it.
    pub async fn take(
        engine: &Arc<dyn ContainerRuntime>,
        run_labels: &HashMap<String, String>,
    ) -> Result<Lease, RuntimeError> {
        let at = now();
        let mut current = lease_name(run_labels, at);
        engine
            .create_volume(&current, &lease_labels(run_labels, at))
            .await?;
        let stop = CancellationToken::new();
        let (engine, labels, token) = (engine.clone(), run_labels.clone(), stop.clone());
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(RENEW) => {}
                    _ = token.cancelled() => return current,
                }
                let at = now();
                let next = lease_name(&labels, at);
                if next == current {
                    continue;
                }
                // The new lease first, then the old one goes: there is always one.
                if engine
                    .create_volume(&next, &lease_labels(&labels, at))
                    .await
                    .is_ok()
                {
                    let _ = engine.remove_volume(&current).await;
                    current = next;
                }
            }
        });
        Ok(Lease { stop, task })
    }

    /// Stop renewing and remove the lease (by name: it needs no listing, which a run short of
    /// open files may not manage; the run's sweep removes any other temporary volume).
    pub async fn release(mut self, engine: &dyn ContainerRuntime) {
        self.stop.cancel();
        if let Ok(current) = (&mut self.task).await {
            let _ = engine.remove_volume(&current).await;
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// What is known of the owners of objects on an engine.
pub struct Liveness {
    me: Owner,
    /// (project, run id) -> the owner its lease names, and its newest renewal (seconds since
    /// the epoch).
    leases: HashMap<(String, String), (Option<Owner>, u64)>,
    now: u64,
}

fn run_key(l: &HashMap<String, String>) -> Option<(String, String)> {
    let project = l.get(labels::PROJECT).cloned().unwrap_or_default();
    Some((project, l.get(labels::RUN)?.clone()))
}

impl Liveness {
    /// From the lease volumes on the engine (`volumes`: berth's temporary volumes).
    pub fn new(me: Owner, volumes: &[ObjectInfo], now: u64) -> Liveness {
        let mut leases: HashMap<(String, String), (Option<Owner>, u64)> = HashMap::new();
        for v in volumes {
            let (Some(key), Some(at)) = (
                run_key(&v.labels),
                v.labels.get(labels::LEASE).and_then(|t| t.parse().ok()),
            ) else {
                continue;
            };
            let entry = leases
                .entry(key)
                .or_insert_with(|| (Owner::from_labels(&v.labels), at));
            entry.1 = entry.1.max(at);
        }
        Liveness { me, leases, now }
    }

    /// Is the berth that owns an object with these labels still alive? Decided once per run,
    /// from its lease (every object of the run shares its verdict), else from the object's
    /// own owner labels.
    pub fn alive(&self, object: &HashMap<String, String>) -> bool {
        match run_key(object).and_then(|key| self.leases.get(&key)) {
            Some((owner, at)) => self.judge(owner.as_ref(), Some(*at)),
            // A helper of berth's outside any run (cache export and import) from another host:
            // nothing tells, so it is spared (`--force` removes it).
            None if !object.contains_key(labels::RUN) => match Owner::from_labels(object) {
                Some(o) if o.host != self.me.host || o.host.is_empty() => true,
                owner => self.judge(owner.as_ref(), None),
            },
            None => self.judge(Owner::from_labels(object).as_ref(), None),
        }
    }

    fn judge(&self, owner: Option<&Owner>, lease: Option<u64>) -> bool {
        let fresh = || lease.is_some_and(|at| self.now.saturating_sub(at) < EXPIRES.as_secs());
        match owner {
            // Our own host's pids: exact, so a crashed run is prunable at once.
            Some(o) if !o.host.is_empty() && o.host == self.me.host => {
                match process_state(o.pid, o.started) {
                    Process::Alive => true,
                    Process::Dead => false,
                    Process::Unknown => fresh() || lease.is_none(),
                }
            }
            _ => fresh(),
        }
    }
}

/// Which objects `berth prune` considers.
pub struct PruneScope<'a> {
    /// This project's objects only (`None`: every project's).
    pub project: Option<&'a str>,
    /// Remove live runs' objects too.
    pub force: bool,
}

/// What prune does with one object.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    /// Not in scope (another project's).
    Ignore,
    /// Its berth is alive.
    Spare,
    Remove,
}

impl PruneScope<'_> {
    fn verdict(&self, liveness: &Liveness, object: &HashMap<String, String>) -> Verdict {
        if self.project.is_some_and(|p| !super::of_project(object, p)) {
            Verdict::Ignore
        } else if !self.force && liveness.alive(object) {
            Verdict::Spare
        } else {
            Verdict::Remove
        }
    }
}

#[derive(Debug, Default)]
pub struct Pruned {
    pub removed: super::Removed,
    /// Runs left alone because their berth is alive.
    pub spared: std::collections::BTreeSet<String>,
}

/// Remove the containers, networks and temporary volumes of berth's whose owner is dead.
pub async fn prune(
    engine: &dyn ContainerRuntime,
    scope: PruneScope<'_>,
) -> Result<Pruned, RuntimeError> {
    // The objects before the leases: a run that starts meanwhile has its lease before its
    // first object, so none of its objects can be seen without a lease.
    let containers = engine.containers_with_label(labels::BERTH, None).await?;
    let networks = engine.networks_with_label(labels::BERTH).await?;
    let volumes = engine.volumes_with_label(labels::TEMPORARY).await?;
    let liveness = Liveness::new(Owner::me(), &volumes, now());
    let mut pruned = Pruned::default();
    let mut chosen = |object: &HashMap<String, String>| match scope.verdict(&liveness, object) {
        Verdict::Remove => true,
        Verdict::Ignore => false,
        Verdict::Spare => {
            if let Some(run) = object.get(labels::RUN) {
                pruned.spared.insert(run.clone());
            }
            false
        }
    };
    let containers: Vec<_> = containers
        .into_iter()
        .filter(|c| chosen(&c.labels))
        .collect();
    let networks: Vec<_> = networks.into_iter().filter(|n| chosen(&n.labels)).collect();
    let volumes: Vec<_> = volumes.into_iter().filter(|v| chosen(&v.labels)).collect();
    pruned.removed = super::remove_objects(engine, containers, networks, volumes).await;
    Ok(pruned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labelled(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn lease(run: &str, at: u64) -> ObjectInfo {
        ObjectInfo {
            id: format!("lease-{run}"),
            name: format!("lease-{run}"),
            labels: labelled(&[(labels::RUN, run), (labels::LEASE, &at.to_string())]),
        }
    }

    #[test]
    fn prune_takes_this_projects_dead_runs_unless_told_otherwise() {
        let now = 1_000_000;
        let in_project = |project: &str| {
            let mut l = lease("alive", now - 5);
            l.labels
                .insert(labels::PROJECT.to_string(), project.to_string());
            l
        };
        let live = Liveness::new(Owner::me(), &[in_project("/p"), in_project("/q")], now);
        let object = |project: &str, run: &str| {
            labelled(&[
                (labels::PROJECT, project),
                (labels::RUN, run),
                (labels::HOST, "elsewhere/pid:[1]"),
            ])
        };
        let scope = |project, force| PruneScope { project, force };
        let here = scope(Some("/p"), false);
        assert_eq!(here.verdict(&live, &object("/p", "dead")), Verdict::Remove);
        assert_eq!(here.verdict(&live, &object("/p", "alive")), Verdict::Spare);
        assert_eq!(here.verdict(&live, &object("/q", "dead")), Verdict::Ignore);
        let all = scope(None, false);
        assert_eq!(all.verdict(&live, &object("/q", "dead")), Verdict::Remove);
        assert_eq!(all.verdict(&live, &object("/q", "alive")), Verdict::Spare);
        let force = scope(Some("/p"), true);
        assert_eq!(
            force.verdict(&live, &object("/p", "alive")),
            Verdict::Remove
        );
        assert_eq!(
            force.verdict(&live, &object("/q", "alive")),
            Verdict::Ignore
        );
    }

    #[test]
    fn this_process_knows_its_start() {
        let me = Owner::me();
        assert!(me.started > 0);
        assert!(me.host.contains("pid:["), "{}", me.host);
        assert_eq!(process_start(me.pid), Some(me.started));
    }

    #[test]
    fn a_lease_of_a_run_on_this_host_names_its_owner() {
        // A run killed here a moment ago: its lease is fresh, but its process is gone.
        let me = Owner::me();
        let mut lease_labels = labelled(&[(labels::RUN, "killed"), (labels::LEASE, "999990")]);
        lease_labels.extend(
            Owner {
                pid: 4_000_000,
                started: 7,
                ..me.clone()
            }
            .labels(),
        );
        let volumes = [ObjectInfo {
            id: "l".into(),
            name: "l".into(),
            labels: lease_labels,
        }];
        let live = Liveness::new(me, &volumes, 1_000_000);
        assert!(!live.alive(&labelled(&[(labels::RUN, "killed")])));
        // An identity that could not be read matches nothing.
        assert!(!live.judge(
            Some(&Owner {
                host: String::new(),
                pid: std::process::id(),
                started: 1
            }),
            None
        ));
    }

    #[test]
    fn on_this_host_the_process_decides() {
        let me = Owner::me();
        let live = Liveness::new(me.clone(), &[], 1_000);
        // The test's own parent process, with its real start time: alive.
        let parent = std::os::unix::process::parent_id();
        let parent_start = process_start(parent).unwrap().to_string();
        let host = me.host.as_str();
        let object = labelled(&[
            (labels::HOST, host),
            (labels::PID, &parent.to_string()),
            (labels::PID_START, &parent_start),
        ]);
        assert!(live.alive(&object));
        // The same pid, started at another time: a reused pid, so the owner is dead.
        let reused = labelled(&[
            (labels::HOST, host),
            (labels::PID, &parent.to_string()),
            (labels::PID_START, "1"),
        ]);
        assert!(!live.alive(&reused));
    }

    #[test]
    fn elsewhere_the_lease_decides_never_the_pid() {
        let now = 1_000_000;
        let live = Liveness::new(
            Owner::me(),
            &[
                lease("fresh", now - 20),
                lease("stale", now - 3_600),
                lease("renewed", now - 3_600),
                lease("renewed", now - 5),
            ],
            now,
        );
        // A pid that is alive here (our own parent) means nothing for another host.
        let parent = std::os::unix::process::parent_id().to_string();
        let other = |run: &str| {
            labelled(&[
                (labels::RUN, run),
                (labels::HOST, "another-machine/pid:[1]"),
                (labels::PID, &parent),
                (labels::PID_START, "5"),
            ])
        };
        assert!(live.alive(&other("fresh")));
        assert!(live.alive(&other("renewed")));
        assert!(!live.alive(&other("stale")));
        assert!(!live.alive(&other("no-lease")));
        // Objects of an older berth (a pid label only): dead unless a lease says otherwise.
        assert!(!live.alive(&labelled(&[(labels::PID, &parent)])));
        // A run's lease decides for all its objects, even ones without owner labels (the
        // temporary cache volumes of a run).
        assert!(live.alive(&labelled(&[(labels::RUN, "fresh")])));
        // The same run id in another project is another run.
        assert!(!live.alive(&labelled(&[
            (labels::RUN, "fresh"),
            (labels::PROJECT, "/q")
        ])));
        // A helper outside any run, from elsewhere: spared; from here: its process decides.
        assert!(live.alive(&labelled(&[
            (labels::HOST, "another-machine/pid:[1]"),
            (labels::PID, "4000000"),
            (labels::PID_START, "5"),
        ])));
    }
}
