//! Services: sidecar containers started before a job on a network of the job's own, reachable
//! by alias. berth waits (bounded) until each service's declared TCP ports accept connections,
//! and removes the services and the network after the job, whatever happened.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::engine::runtime::{ContainerRuntime, ContainerSpec, NetworkKind, RuntimeError};
use crate::pipeline::expand;
use crate::pipeline::Service;
use crate::project::paths;

/// How long a service may take to accept connections, unless `--service-timeout` says.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// A service resolved for one job: the image to run and its environment.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub image: String,
    pub aliases: Vec<String>,
    pub entrypoint: Option<Vec<String>>,
    pub command: Option<Vec<String>>,
    pub env: Vec<(String, String)>,
}

/// Resolve a job's services against its environment (services get the job's variables too).
pub fn prepare(services: &[Service], job_env: &[(String, String)]) -> Vec<Prepared> {
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
            }
        })
        .collect()
}

/// The services of one attempt, up and ready.
pub struct Running {
    pub network: String,
    /// Hermetic runs: the network berth reaches the services by to see they are ready.
    pub probe: Option<String>,
    /// (container id, first alias)
    pub containers: Vec<(String, String)>,
}

/// Create the network, start every service on it, and wait until each accepts connections.
/// `sealed` (hermetic runs): the job's network reaches nothing but the services, and berth
/// probes the services' ports over a second, internal network only they are on.
/// On failure, what was created is returned with the error so that it can be removed.
pub async fn start(
    engine: &dyn ContainerRuntime,
    services: &[Prepared],
    name_prefix: &str,
    base_labels: &HashMap<String, String>,
    ready_timeout: Duration,
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
    for (i, service) in services.iter().enumerate() {
        let alias = service
            .aliases
            .first()
            .cloned()
            .unwrap_or_else(|| format!("service{i}"));
        let spec = ContainerSpec {
            name: format!("{name_prefix}-svc{i}-{}", paths::slug(&alias)),
            image: service.image.clone(),
            entrypoint: service.entrypoint.clone(),
            cmd: service.command.clone().unwrap_or_default(),
            env: service.env.clone(),
            working_dir: String::new(),
            labels: base_labels.clone(),
            binds: Vec::new(),
            network: Some(network.clone()),
            aliases: service.aliases.clone(),
            interactive: false,
            hostname: None,
        };
        let id = match create_and_start(engine, &spec, running.probe.as_deref()).await {
            Ok(id) => id,
            Err(e) => {
                return Err((
                    Some(running),
                    format!("service `{alias}` ({}): {e}", service.image),
                ))
            }
        };
        running.containers.push((id, alias));
    }
    let reachable = running.probe.clone().unwrap_or(network);
    for (id, alias) in running.containers.clone() {
        if let Err(e) = wait_ready(engine, &id, &reachable, ready_timeout).await {
            return Err((Some(running), format!("service `{alias}`: {e}")));
        }
    }
    Ok(running)
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

/// Poll until every declared TCP port accepts a connection, the service dies, or time is up.
async fn wait_ready(
    engine: &dyn ContainerRuntime,
    id: &str,
    network: &str,
    limit: Duration,
) -> Result<(), String> {
    let started = Instant::now();
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
        let Some(ip) = state.ip else {
            return Err("it has no address on the job's network".into());
        };
        let mut waiting = Vec::new();
        for port in &state.tcp_ports {
            let addr = format!("{ip}:{port}");
            let ok = tokio::time::timeout(
                Duration::from_millis(500),
                tokio::net::TcpStream::connect(&addr),
            )
            .await
            .is_ok_and(|r| r.is_ok());
            if !ok {
                waiting.push(*port);
            }
        }
        if waiting.is_empty() {
            return Ok(());
        }
        if started.elapsed() >= limit {
            return Err(format!(
                "port {} did not accept connections within {}s",
                waiting
                    .iter()
                    .map(|p| p.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                limit.as_secs()
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
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
        let p = prepare(&services, &env);
        assert_eq!(p[0].image, "db:16");
        assert!(p[0]
            .env
            .contains(&("POSTGRES_DB".to_string(), "test-db".to_string())));
        assert!(p[0]
            .env
            .contains(&("DB_VERSION".to_string(), "16".to_string())));
    }
}
