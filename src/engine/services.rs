//! Services: sidecar containers started for a job, reachable by alias on a network of the
//! job's own, or, for a job that reaches them at `localhost` (GitHub's jobs on a runner), in
//! the job container's own network namespace. berth waits (bounded) until each service is
//! ready, as the format's runner does ([`ServiceWait`]): healthy when it has a health check,
//! else accepting connections on its TCP ports (those its image declares and those the
//! pipeline names), or GitLab Runner's check of one TCP port, whose failure is a warning.
//! The services, their network and the job's volumes are removed after the job, whatever
//! happened.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::engine::runtime::{
    ContainerOptions, ContainerRuntime, ContainerSpec, Health, NetworkKind, Output, RuntimeError,
};
use crate::pipeline::expand;
use crate::pipeline::Service;
pub use crate::pipeline::ServiceWait;
use crate::project::paths;

/// How long a service may take to be ready, unless `--service-timeout` says.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// A service resolved for one job: the image to run and its environment.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub image: String,
    pub aliases: Vec<String>,
    pub entrypoint: Option<Vec<String>>,
    pub command: Option<Vec<String>>,
    pub env: Vec<(String, String)>,
    /// Ports waited on besides those the image declares.
    pub ports: Vec<u16>,
    /// Its mounts resolved (see `prepare::resolve_mounts`).
    pub options: ContainerOptions,
    pub wait: ServiceWait,
}

/// Resolve a job's services against its environment (services get the job's variables too).
/// Their mounts are resolved by the caller.
pub fn prepare(
    services: &[Service],
    job_env: &[(String, String)],
    wait: ServiceWait,
) -> Vec<Prepared> {
    let lookup = |n: &str| job_env.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    services
        .iter()
        .map(|s| {
            let mut env = job_env.to_vec();
            for v in &s.variables {
                let value = if v.expand {
                    expand::expand(&v.value, &lookup, 0)
                } else {
                    v.value.clone()
                };
                env.retain(|(k, _)| k != &v.name);
                env.push((v.name.clone(), value));
            }
            Prepared {
                image: expand::expand(&s.image, &lookup, 0),
                aliases: s.aliases.clone(),
                entrypoint: s.entrypoint.clone(),
                command: s.command.clone(),
                env,
                ports: s.ports.iter().map(|p| p.container).collect(),
                options: s.options.clone(),
                wait,
            }
        })
        .collect()
}

/// The services of one attempt and their network.
pub struct Running {
    pub network: String,
    /// Hermetic runs: the network berth reaches the services by to see they are ready.
    pub probe: Option<String>,
    /// (container id, first alias)
    pub containers: Vec<(String, String)>,
}

impl Running {
    /// The network berth reaches the services on.
    fn reachable(&self) -> &str {
        self.probe.as_deref().unwrap_or(&self.network)
    }
}

/// Where services are attached.
#[derive(Debug, Clone, Copy)]
pub enum Attach<'a> {
    /// To the job's network, under their aliases.
    Network,
    /// Into this (running) container's network namespace: the job's, which reaches them at
    /// `localhost`.
    Namespace(&'a str),
}

/// Create the job's network (and, `sealed`, the probe network): for hermetic runs the job's
/// network reaches nothing but the services, and berth probes the services' ports over a
/// second, internal network only they are on.
pub async fn network(
    engine: &dyn ContainerRuntime,
    name_prefix: &str,
    base_labels: &HashMap<String, String>,
    sealed: bool,
) -> Result<Running, (Option<Running>, String)> {
    let network = format!("{name_prefix}-net");
    let kind = if sealed {
        NetworkKind::Sealed
    } else {
        NetworkKind::Bridge
    };
    engine
        .create_network(&network, base_labels, kind)
        .await
        .map_err(|e| (None, format!("cannot create the network: {e}")))?;
    let mut running = Running {
        network: network.clone(),
        probe: None,
        containers: Vec::new(),
    };
    if sealed {
        let probe = format!("{name_prefix}-probe");
        if let Err(e) = engine
            .create_network(&probe, base_labels, NetworkKind::Internal)
            .await
        {
            return Err((Some(running), format!("cannot create the network: {e}")));
        }
        running.probe = Some(probe);
    }
    Ok(running)
}

/// Start every service (attached as `attach` says) and wait until each is ready. What was
/// started is in `running` whatever happens, for [`stop`]. `Ok`: the lines of the warnings
/// for the job's log (GitLab's services that were not ready, which do not stop the job).
pub async fn start(
    engine: &dyn ContainerRuntime,
    running: &mut Running,
    services: &[Prepared],
    name_prefix: &str,
    base_labels: &HashMap<String, String>,
    ready_timeout: Duration,
    attach: Attach<'_>,
) -> Result<Vec<String>, String> {
    let mut names = Vec::new();
    for (i, service) in services.iter().enumerate() {
        let alias = service
            .aliases
            .first()
            .cloned()
            .unwrap_or_else(|| format!("service{i}"));
        let (network, aliases, probe) = match attach {
            Attach::Network => (
                running.network.clone(),
                service.aliases.clone(),
                running.probe.clone(),
            ),
            Attach::Namespace(job) => (format!("container:{job}"), Vec::new(), None),
        };
        let spec = ContainerSpec {
            name: format!("{name_prefix}-svc{i}-{}", paths::slug(&alias)),
            image: service.image.clone(),
            entrypoint: service.entrypoint.clone(),
            cmd: service.command.clone().unwrap_or_default(),
            env: service.env.clone(),
            working_dir: String::new(),
            labels: base_labels.clone(),
            binds: Vec::new(),
            network: Some(network),
            aliases,
            interactive: false,
            stdin: false,
            hostname: None,
            options: service.options.clone(),
        };
        let id = create_and_start(engine, &spec, probe.as_deref())
            .await
            .map_err(|e| format!("service `{alias}` ({}): {e}", service.image))?;
        running.containers.push((id, alias));
        names.push(spec.name);
    }
    // In the job's namespace the services answer at the job container's address.
    let address = match attach {
        Attach::Network => None,
        Attach::Namespace(job) => {
            let state = engine
                .container_state(job, running.reachable())
                .await
                .map_err(|e| format!("the job's container: {e}"))?;
            Some(
                state
                    .ip
                    .ok_or("the job's container has no address on its network")?,
            )
        }
    };
    let mut warnings = Vec::new();
    let mut checks = Vec::new();
    let started = running.containers.iter().zip(services).zip(&names);
    for (((id, alias), service), name) in started {
        match service.wait {
            ServiceWait::Ready => wait_ready(
                engine,
                id,
                running.reachable(),
                address.as_deref(),
                service,
                ready_timeout,
            )
            .await
            .map_err(|e| format!("service `{alias}`: {e}"))?,
            ServiceWait::AnyPort => {
                let port = health_check_port(&service.env)
                    .map_err(|e| format!("service `{alias}`: {e}"))?;
                let (network, address) = (running.reachable(), address.as_deref());
                checks.push(async move {
                    match any_port(engine, id, name, network, address, port, ready_timeout).await {
                        Ok(()) => Vec::new(),
                        Err(why) => not_started(engine, id, name, why).await,
                    }
                });
            }
        }
    }
    // As the runner does, the services are checked at once, not one after another.
    for lines in futures_util::future::join_all(checks).await {
        warnings.extend(lines);
    }
    Ok(warnings)
}

/// The names of a job's own container on its services' network: `build` under GitLab's
/// `FF_NETWORK_PER_BUILD`, as the runner names the build container, so its services reach it.
pub fn job_aliases(env: &[(String, String)]) -> Vec<String> {
    let on = env
        .iter()
        .rev()
        .find(|(k, _)| k == "FF_NETWORK_PER_BUILD")
        .and_then(|(_, v)| super::script::go_bool(v.trim()))
        .unwrap_or(false);
    if on {
        vec!["build".to_string()]
    } else {
        Vec::new()
    }
}

/// `HEALTHCHECK_TCP_PORT` among a service's variables (its name in any case, as the runner
/// reads it): the one port its check connects to.
fn health_check_port(env: &[(String, String)]) -> Result<Option<u16>, String> {
    match env
        .iter()
        .rev()
        .find(|(k, _)| k.eq_ignore_ascii_case("HEALTHCHECK_TCP_PORT"))
    {
        None => Ok(None),
        Some((_, v)) => v
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| format!("invalid health check tcp port: {v}")),
    }
}

/// Why GitLab Runner's check of a service failed: what it says of it, and what its helper
/// container would have printed.
struct CheckFailed {
    error: String,
    log: String,
}

/// GitLab Runner's health check: until `limit`, a TCP connection to `port`, else to any of
/// the first 20 TCP ports the service exposes (lowest first); one that opens is enough.
async fn any_port(
    engine: &dyn ContainerRuntime,
    id: &str,
    name: &str,
    network: &str,
    address: Option<&str>,
    port: Option<u16>,
    limit: Duration,
) -> Result<(), CheckFailed> {
    let started = Instant::now();
    let mut log = String::new();
    loop {
        let state = engine
            .container_state(id, network)
            .await
            .map_err(|e| CheckFailed {
                error: e.to_string(),
                log: log.clone(),
            })?;
        let ports = match port {
            Some(p) => vec![p],
            None => {
                let mut ports = state.tcp_ports.clone();
                ports.sort_unstable();
                ports.dedup();
                ports.truncate(20);
                ports
            }
        };
        if ports.is_empty() {
            return Err(CheckFailed {
                error: format!("service {name:?} has no exposed ports"),
                log,
            });
        }
        // A service that has stopped will not start listening: no use waiting on.
        if !state.running {
            return Err(CheckFailed {
                error: format!(
                    "service \"{name}-wait-for-service\" health check: the service exited (code {})",
                    state.exit_code.unwrap_or(-1)
                ),
                log,
            });
        }
        if let Some(ip) = address.map(str::to_string).or(state.ip) {
            if log.is_empty() {
                let list: Vec<String> = ports.iter().map(u16::to_string).collect();
                log = format!(
                    "waiting for TCP connection to {ip} on [{}]...",
                    list.join(" ")
                );
            }
            for port in &ports {
                let open = tokio::time::timeout(
                    Duration::from_millis(500),
                    tokio::net::TcpStream::connect(format!("{ip}:{port}")),
                )
                .await
                .is_ok_and(|r| r.is_ok());
                if open {
                    return Ok(());
                }
            }
        }
        if started.elapsed() >= limit {
            return Err(CheckFailed {
                error: format!("service \"{name}-wait-for-service\" timeout"),
                log,
            });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The runner's warning for a service whose check failed, with the service's own log, as
/// the lines of the job's log.
async fn not_started(
    engine: &dyn ContainerRuntime,
    id: &str,
    name: &str,
    why: CheckFailed,
) -> Vec<String> {
    const YELLOW: &str = "\x1b[0;33m";
    const RESET: &str = "\x1b[0;m";
    let mut output = Vec::new();
    let service_log = match engine.write_output(id, &mut output).await {
        Ok(()) => String::from_utf8_lossy(&output).into_owned(),
        Err(e) => e.to_string(),
    };
    let mut lines = vec![
        String::new(),
        format!("{YELLOW}*** WARNING:{RESET} Service {name} probably didn't start properly."),
        String::new(),
        "Health check error:".to_string(),
        why.error.trim().to_string(),
        String::new(),
        "Health check container logs:".to_string(),
    ];
    lines.extend(why.log.lines().map(String::from));
    lines.extend([String::new(), "Service container logs:".to_string()]);
    lines.extend(service_log.lines().map(String::from));
    lines.extend([
        String::new(),
        String::new(),
        format!("{YELLOW}*********{RESET}"),
        String::new(),
    ]);
    lines
}

async fn create_and_start(
    engine: &dyn ContainerRuntime,
    spec: &ContainerSpec,
    probe: Option<&str>,
) -> Result<String, RuntimeError> {
    let id = engine.create_container(spec).await?;
    if let Some(probe) = probe {
        engine.connect_network(probe, &id).await?;
    }
    engine.start(&id).await?;
    Ok(id)
}

/// Poll until the service is ready, dies, turns unhealthy, or time is up. Ready: healthy when
/// the engine checks its health, else every TCP port (declared by the image, or `ports`)
/// accepts a connection at its address on `network` (or at `address`).
async fn wait_ready(
    engine: &dyn ContainerRuntime,
    id: &str,
    network: &str,
    address: Option<&str>,
    service: &Prepared,
    limit: Duration,
) -> Result<(), String> {
    let started = Instant::now();
    let ports = &service.ports;
    let mut own_check: Option<Checker> = None;
    loop {
        let state = engine
            .container_state(id, network)
            .await
            .map_err(|e| e.to_string())?;
        if !state.running {
            return Err(format!(
                "it exited (code {}) before it was ready",
                state.exit_code.unwrap_or(-1)
            ));
        }
        let waiting = match state.health {
            Some(Health::Healthy) => return Ok(()),
            Some(Health::Unhealthy(output)) => {
                return Err(if output.is_empty() {
                    "its health check failed: it is unhealthy".to_string()
                } else {
                    format!("its health check failed: it is unhealthy ({output})")
                })
            }
            // An engine that does not run health checks leaves them starting: berth runs them.
            Some(Health::Starting) if !engine.runs_health_checks() => {
                let checker = own_check.get_or_insert_with(|| {
                    Checker::new(&state.health_test, service.options.health.as_ref())
                });
                checker.step(engine, id).await?;
                if checker.passed {
                    return Ok(());
                }
                "it was not healthy".to_string()
            }
            Some(Health::Starting) => "it was not healthy".to_string(),
            None => {
                let Some(ip) = address.map(str::to_string).or(state.ip) else {
                    return Err("it has no address on the job's network".into());
                };
                let mut all = state.tcp_ports.clone();
                all.extend(ports);
                all.sort_unstable();
                all.dedup();
                let mut closed = Vec::new();
                for port in all {
                    let addr = format!("{ip}:{port}");
                    let ok = tokio::time::timeout(
                        Duration::from_millis(500),
                        tokio::net::TcpStream::connect(&addr),
                    )
                    .await
                    .is_ok_and(|r| r.is_ok());
                    if !ok {
                        closed.push(port.to_string());
                    }
                }
                if closed.is_empty() {
                    return Ok(());
                }
                format!("port {} did not accept connections", closed.join(", "))
            }
        };
        if started.elapsed() >= limit {
            return Err(format!("{waiting} within {}s", limit.as_secs()));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A health check berth runs itself, with Docker's meaning: every `interval` (the first at
/// once), unhealthy after `retries` failures in a row once `start_period` is over.
struct Checker {
    argv: Vec<String>,
    interval: Duration,
    timeout: Duration,
    retries: u32,
    start_period: Duration,
    started: Instant,
    next: Instant,
    failures: u32,
    passed: bool,
}

impl Checker {
    fn new(test: &[String], given: Option<&crate::pipeline::HealthCheck>) -> Checker {
        let argv = match given.and_then(|h| h.command.as_ref()) {
            Some(command) => vec!["/bin/sh".into(), "-c".into(), command.clone()],
            None => match test.split_first() {
                Some((kind, rest)) if kind == "CMD-SHELL" => {
                    vec!["/bin/sh".into(), "-c".into(), rest.join(" ")]
                }
                Some((kind, rest)) if kind == "CMD" => rest.to_vec(),
                _ => Vec::new(),
            },
        };
        let or = |d: Option<Duration>, default: u64| {
            d.filter(|d| !d.is_zero())
                .unwrap_or(Duration::from_secs(default))
        };
        let now = Instant::now();
        Checker {
            argv,
            interval: or(given.and_then(|h| h.interval), 30),
            timeout: or(given.and_then(|h| h.timeout), 30),
            retries: given
                .and_then(|h| h.retries)
                .filter(|&r| r > 0)
                .unwrap_or(3),
            start_period: given.and_then(|h| h.start_period).unwrap_or_default(),
            started: now,
            next: now,
            failures: 0,
            passed: false,
        }
    }

    /// Run the check if it is time; an error once it has failed `retries` times.
    async fn step(&mut self, engine: &dyn ContainerRuntime, id: &str) -> Result<(), String> {
        if self.argv.is_empty() {
            return Err("its health check has no command berth can run".into());
        }
        if Instant::now() < self.next {
            return Ok(());
        }
        self.next = Instant::now() + self.interval;
        let (code, output) = match tokio::time::timeout(self.timeout, self.run(engine, id)).await {
            Ok(result) => result?,
            Err(_) => (-1, format!("timed out after {}s", self.timeout.as_secs())),
        };
        if code == 0 {
            self.passed = true;
            return Ok(());
        }
        if self.started.elapsed() >= self.start_period {
            self.failures += 1;
        }
        if self.failures >= self.retries {
            let output = output.trim();
            return Err(if output.is_empty() {
                "its health check failed: it is unhealthy".to_string()
            } else {
                format!("its health check failed: it is unhealthy ({output})")
            });
        }
        Ok(())
    }

    async fn run(&self, engine: &dyn ContainerRuntime, id: &str) -> Result<(i64, String), String> {
        use futures_util::StreamExt;
        let spec = crate::engine::runtime::ExecSpec {
            argv: self.argv.clone(),
            env: Vec::new(),
            working_dir: None,
        };
        let (exec, mut output) = engine
            .exec(id, &spec)
            .await
            .map_err(|e| format!("its health check cannot run: {e}"))?;
        let mut text = Vec::new();
        while let Some(chunk) = output.next().await {
            if let Ok(Output::Stdout(b) | Output::Stderr(b)) = chunk {
                // The end of what it printed is what says why.
                text.extend_from_slice(&b);
                if text.len() > 4096 {
                    text.drain(..text.len() - 4096);
                }
            }
        }
        loop {
            match engine.exec_exit_code(&exec).await {
                Ok(Some(code)) => return Ok((code, String::from_utf8_lossy(&text).into_owned())),
                Ok(None) => tokio::time::sleep(Duration::from_millis(50)).await,
                Err(e) => return Err(format!("its health check cannot run: {e}")),
            }
        }
    }
}

/// Save each service's log under `dir` (when the job failed), then remove the services and the
/// network. Problems are returned as notices; the run's final sweep retries what is left.
pub async fn stop(
    engine: &dyn ContainerRuntime,
    running: Running,
    logs_dir: Option<&Path>,
) -> Vec<String> {
    let mut problems = Vec::new();
    if let Some(dir) = logs_dir {
        if let Err(e) = std::fs::create_dir_all(dir) {
            problems.push(format!("cannot create {}: {e}", dir.display()));
        } else {
            for (id, alias) in &running.containers {
                let path = dir.join(format!("{}.log", paths::slug(alias)));
                match std::fs::File::create(&path) {
                    Ok(mut file) => {
                        if let Err(e) = engine.write_output(id, &mut file).await {
                            problems.push(format!("service `{alias}` log: {e}"));
                        }
                    }
                    Err(e) => problems.push(format!("cannot write {}: {e}", path.display())),
                }
            }
        }
    }
    for (id, alias) in &running.containers {
        if let Err(e) = engine.remove_container(id).await {
            problems.push(format!("service `{alias}`: {e}"));
        }
    }
    for network in std::iter::once(&running.network).chain(&running.probe) {
        if let Err(e) = engine.remove_network(network).await {
            problems.push(format!("network {network}: {e}"));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::Variable;

    #[test]
    fn services_get_job_variables_and_their_own() {
        let services = vec![Service {
            image: "db:$DB_VERSION".into(),
            aliases: vec!["db".into()],
            entrypoint: None,
            command: None,
            ports: Vec::new(),
            options: Default::default(),
            credentials: None,
            variables: vec![Variable {
                name: "POSTGRES_DB".into(),
                value: "$CI_JOB_NAME-db".into(),
                expand: true,
            }],
        }];
        let env = vec![
            ("DB_VERSION".to_string(), "16".to_string()),
            ("CI_JOB_NAME".to_string(), "test".to_string()),
        ];
        let p = prepare(&services, &env, ServiceWait::Ready);
        assert_eq!(p[0].image, "db:16");
        assert!(p[0]
            .env
            .contains(&("POSTGRES_DB".to_string(), "test-db".to_string())));
        assert!(p[0]
            .env
            .contains(&("DB_VERSION".to_string(), "16".to_string())));
    }

    #[test]
    fn the_runners_health_check_port_is_read_in_any_case() {
        let env = |k: &str, v: &str| vec![(k.to_string(), v.to_string())];
        assert_eq!(health_check_port(&[]), Ok(None));
        assert_eq!(
            health_check_port(&env("HEALTHCHECK_TCP_PORT", "8080")),
            Ok(Some(8080))
        );
        assert_eq!(
            health_check_port(&env("healthcheck_tcp_port", " 53 ")),
            Ok(Some(53))
        );
        assert_eq!(
            health_check_port(&env("HEALTHCHECK_TCP_PORT", "web")),
            Err("invalid health check tcp port: web".to_string())
        );
    }
}
