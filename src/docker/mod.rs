//! The one module that speaks to the Docker Engine API (through bollard), and finds the engine
//! to speak to ([`endpoint`]): Docker's or Podman's.
//!
//! [`Engine`] is berth's [`ContainerRuntime`] on that API: the engine sees only the seam's own
//! types ([`ContainerSpec`] in, exit codes, log chunks and [`RuntimeError`] out), turned into
//! bollard's here.

pub mod endpoint;
mod errors;
mod registry;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use bollard::container::LogOutput;
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{
    BuildImageOptionsBuilder, CreateContainerOptionsBuilder, CreateImageOptionsBuilder,
    DownloadFromContainerOptionsBuilder, ListContainersOptionsBuilder, ListNetworksOptionsBuilder,
    ListVolumesOptionsBuilder, LogsOptionsBuilder, RemoveContainerOptionsBuilder,
    RemoveImageOptionsBuilder, RemoveVolumeOptionsBuilder, UploadToContainerOptionsBuilder,
    WaitContainerOptionsBuilder,
};
use bollard::Docker;
use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::{Stream, StreamExt, TryStreamExt};

use crate::engine::runtime::{
    labels, Attached, ContainerInfo, ContainerOptions, ContainerRuntime, ContainerSpec,
    ContainerState, Credentials, ExecSpec, Health, ImageSource, ImageStep, Mount, NetworkKind,
    ObjectInfo, Output, Progress, RuntimeError, Stdin,
};

use errors::*;
use registry::*;

/// bollard's own default request timeout.
const CONNECT_TIMEOUT_SECS: u64 = 120;

#[derive(Clone)]
pub struct Engine {
    docker: Docker,
    version: Arc<str>,
    podman: bool,
}

impl Engine {
    /// Connect as the docker CLI would (DOCKER_HOST, else the local socket) and agree on an API
    /// version the engine speaks.
    pub async fn connect() -> Result<Engine, RuntimeError> {
        let home = std::env::var_os("HOME").map(std::path::PathBuf::from);
        let endpoint = crate::docker::endpoint::find(&|k| std::env::var(k).ok(), home.as_deref())
            .map_err(RuntimeError::Unreachable)?;
        let unreachable = |e: bollard::errors::Error| {
            RuntimeError::Unreachable(format!("{} ({}): {e}", endpoint.host, endpoint.from))
        };
        let client = |version: &bollard::ClientVersion| match &endpoint.tls {
            Some(tls)
                if endpoint.host.starts_with("tcp://") || endpoint.host.starts_with("https://") =>
            {
                Docker::connect_with_ssl(
                    &endpoint.host,
                    &tls.key,
                    &tls.cert,
                    &tls.ca,
                    CONNECT_TIMEOUT_SECS,
                    version,
                )
            }
            _ if endpoint.host.starts_with("tcp://") || endpoint.host.starts_with("http://") => {
                Docker::connect_with_http(&endpoint.host, CONNECT_TIMEOUT_SECS, version)
            }
            _ if endpoint.host.starts_with("unix://") => {
                Docker::connect_with_unix(&endpoint.host, CONNECT_TIMEOUT_SECS, version)
            }
            _ => Docker::connect_with_host(&endpoint.host),
        };
        let docker = client(bollard::API_DEFAULT_VERSION).map_err(unreachable)?;
        // One /version answers three questions: does the engine answer, which API version do we
        // agree on, and what is it (a version for the records; Docker or Podman). bollard's own
        // negotiation would ask again for the last.
        let v = docker.version().await.map_err(unreachable)?;
        let server = v.api_version.as_deref().and_then(|a| {
            let (major, minor) = a.split_once('.')?;
            Some(bollard::ClientVersion {
                major_version: major.parse().ok()?,
                minor_version: minor.parse().ok()?,
            })
        });
        let docker = match server {
            Some(server) if server < *bollard::API_DEFAULT_VERSION => {
                client(&server).map_err(unreachable)?
            }
            _ => docker,
        };
        let podman = v
            .components
            .unwrap_or_default()
            .iter()
            .any(|c| c.name.starts_with("Podman"));
        Ok(Engine {
            docker,
            version: Arc::from(v.version.as_deref().unwrap_or("unknown")),
            podman,
        })
    }

    /// The engine's version string, for records (known since connecting).
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Is the engine Podman (its Docker-compatible API)? Where the two differ, berth adapts.
    fn is_podman(&self) -> bool {
        self.podman
    }

    async fn upload_stream(
        &self,
        container: &str,
        dest: &str,
        body: impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static,
    ) -> Result<(), RuntimeError> {
        let options = UploadToContainerOptionsBuilder::default()
            .path(dest)
            .build();
        self.docker
            .upload_to_container(container, Some(options), bollard::body_try_stream(body))
            .await?;
        Ok(())
    }

    fn logs(
        &self,
        container: &str,
        follow: bool,
    ) -> impl Stream<Item = Result<Output, RuntimeError>> {
        let options = LogsOptionsBuilder::default()
            .follow(follow)
            .stdout(true)
            .stderr(true)
            .build();
        self.docker
            .logs(container, Some(options))
            .filter_map(|item| async move { output_of(item) })
    }
}

/// A piece of a container's or a process's output in berth's terms (stdin echoes dropped).
fn output_of(
    item: Result<LogOutput, bollard::errors::Error>,
) -> Option<Result<Output, RuntimeError>> {
    match item {
        Ok(LogOutput::StdOut { message }) | Ok(LogOutput::Console { message }) => {
            Some(Ok(Output::Stdout(message)))
        }
        Ok(LogOutput::StdErr { message }) => Some(Ok(Output::Stderr(message))),
        Ok(LogOutput::StdIn { .. }) => None,
        Err(e) => Some(Err(e.into())),
    }
}

/// The seam's operations on Docker's API, with Podman's differences handled here.
#[async_trait]
impl ContainerRuntime for Engine {
    async fn image_identity(
        &self,
        image: &str,
    ) -> Result<Option<(String, Vec<String>)>, RuntimeError> {
        match self.docker.inspect_image(image).await {
            Ok(info) => Ok(info
                .id
                .map(|id| (id, info.repo_digests.unwrap_or_default()))),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn image_id(&self, image: &str) -> Result<Option<String>, RuntimeError> {
        match self.docker.inspect_image(image).await {
            Ok(info) => Ok(info.id),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn ensure_image(
        &self,
        image: &str,
        given: Option<&Credentials>,
        mut progress: Progress,
    ) -> Result<ImageSource, RuntimeError> {
        if self.image_exists(image).await? {
            return Ok(ImageSource::Present);
        }
        let (repo, tag) = split_reference(image);
        let options = CreateImageOptionsBuilder::default()
            .from_image(repo)
            .tag(tag)
            .build();
        let credentials = match given {
            Some(c) => Some(bollard::auth::DockerCredentials {
                username: Some(c.username.clone()),
                password: Some(c.password.clone()),
                serveraddress: Some(registry_of(image).to_string()),
                ..Default::default()
            }),
            None => credentials_for(image),
        };
        let mut stream = self.docker.create_image(Some(options), None, credentials);
        while let Some(item) = stream.next().await {
            match item {
                Ok(info) => {
                    if let Some(status) = info.status {
                        let bytes = |n: Option<i64>| n.and_then(|n| u64::try_from(n).ok());
                        let detail = info.progress_detail.unwrap_or_default();
                        progress(ImageStep {
                            layer: info.id,
                            line: status,
                            current: bytes(detail.current),
                            total: bytes(detail.total).filter(|&t| t > 0),
                        });
                    }
                }
                Err(e) => {
                    return Err(match RuntimeError::from(e) {
                        RuntimeError::Unreachable(r) => RuntimeError::Unreachable(r),
                        other => RuntimeError::Image {
                            image: image.to_string(),
                            reason: strip_prefix(other.to_string()),
                        },
                    })
                }
            }
        }
        if self.image_exists(image).await? {
            Ok(ImageSource::Pulled)
        } else {
            Err(RuntimeError::Image {
                image: image.to_string(),
                reason: "the pull finished but the image is not there".into(),
            })
        }
    }

    async fn build_image(
        &self,
        context_tar: &Path,
        dockerfile: &str,
        tag: &str,
        mut progress: Progress,
    ) -> Result<ImageSource, RuntimeError> {
        if self.image_exists(tag).await? {
            return Ok(ImageSource::Present);
        }
        let options = BuildImageOptionsBuilder::default()
            .dockerfile(dockerfile)
            .t(tag)
            .rm(true)
            .forcerm(true)
            .labels(&HashMap::from([(labels::BERTH, "1")]))
            .build();
        let file = tokio::fs::File::open(context_tar)
            .await
            .map_err(|e| unreadable("the build context", e))?;
        let body = tokio_util::io::ReaderStream::new(file);
        let mut stream =
            self.docker
                .build_image(options, None, Some(bollard::body_try_stream(body)));
        while let Some(item) = stream.next().await {
            let info = item.map_err(|e| RuntimeError::Image {
                image: tag.to_string(),
                reason: strip_prefix(RuntimeError::from(e).to_string()),
            })?;
            if let Some(detail) = info.error_detail.and_then(|d| d.message) {
                return Err(RuntimeError::Image {
                    image: tag.to_string(),
                    reason: detail,
                });
            }
            if let Some(line) = info.stream {
                let line = line.trim_end();
                if !line.is_empty() {
                    progress(ImageStep {
                        line: line.to_string(),
                        ..ImageStep::default()
                    });
                }
            }
        }
        if self.image_exists(tag).await? {
            Ok(ImageSource::Built)
        } else {
            Err(RuntimeError::Image {
                image: tag.to_string(),
                reason: "the build finished but the image is not there".into(),
            })
        }
    }

    async fn remove_image(&self, image: &str) -> Result<(), RuntimeError> {
        let options = RemoveImageOptionsBuilder::default().force(true).build();
        match self.docker.remove_image(image, Some(options), None).await {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    async fn create_container(&self, spec: &ContainerSpec) -> Result<String, RuntimeError> {
        let o = &spec.options;
        // In another container's namespace the network, and so the hostname, are that one's.
        let shared = spec
            .network
            .as_deref()
            .is_some_and(|n| n.starts_with("container:"));
        let (binds, anonymous) = mounts(&spec.binds, o);
        let body = ContainerCreateBody {
            image: Some(spec.image.clone()),
            entrypoint: spec.entrypoint.clone(),
            // Empty means "the image's own".
            cmd: (!spec.cmd.is_empty()).then(|| spec.cmd.clone()),
            env: Some(spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
            working_dir: o
                .working_dir
                .clone()
                .or_else(|| (!spec.working_dir.is_empty()).then(|| spec.working_dir.clone())),
            labels: Some(spec.labels.clone()),
            attach_stdin: Some(spec.interactive || spec.stdin),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            tty: Some(spec.interactive),
            open_stdin: Some(spec.interactive || spec.stdin),
            hostname: if shared {
                None
            } else {
                spec.hostname.clone().or_else(|| o.hostname.clone())
            },
            user: o.user.clone(),
            healthcheck: o.health.as_ref().map(health_config),
            volumes: (!anonymous.is_empty()).then_some(anonymous),
            stdin_once: Some(spec.interactive || spec.stdin),
            host_config: Some(HostConfig {
                binds: (!binds.is_empty()).then_some(binds),
                network_mode: spec.network.clone(),
                nano_cpus: o.nano_cpus,
                memory: o.memory,
                shm_size: o.shm_size,
                privileged: o.privileged.then_some(true),
                cap_add: (!o.cap_add.is_empty()).then(|| o.cap_add.clone()),
                cap_drop: (!o.cap_drop.is_empty()).then(|| o.cap_drop.clone()),
                tmpfs: (!o.tmpfs.is_empty()).then(|| o.tmpfs.iter().cloned().collect()),
                ..Default::default()
            }),
            // No endpoint for the `none` mode: Podman refuses one ("networks ... can only be
            // used with Bridge mode networking"), and Docker has nothing to configure there.
            networking_config: spec
                .network
                .as_ref()
                .filter(|net| net.as_str() != "none" && !shared)
                .map(|net| bollard::models::NetworkingConfig {
                    endpoints_config: Some(HashMap::from([(
                        net.clone(),
                        bollard::models::EndpointSettings {
                            aliases: (!spec.aliases.is_empty()).then(|| spec.aliases.clone()),
                            ..Default::default()
                        },
                    )])),
                }),
            ..Default::default()
        };
        let options = CreateContainerOptionsBuilder::default()
            .name(&spec.name)
            .build();
        let created = self.docker.create_container(Some(options), body).await?;
        Ok(created.id)
    }

    async fn upload_tar_file(
        &self,
        container: &str,
        dest: &str,
        tar: &Path,
    ) -> Result<(), RuntimeError> {
        let file = tokio::fs::File::open(tar)
            .await
            .map_err(|e| unreadable(tar.display(), e))?;
        self.upload_stream(container, dest, tokio_util::io::ReaderStream::new(file))
            .await
    }

    async fn upload_tar_file_then(
        &self,
        container: &str,
        dest: &str,
        first: &Path,
        then: BoxStream<'static, std::io::Result<Bytes>>,
    ) -> Result<(), RuntimeError> {
        use tokio::io::AsyncReadExt;
        let file = tokio::fs::File::open(first)
            .await
            .map_err(|e| unreadable(first.display(), e))?;
        let len = file
            .metadata()
            .await
            .map_err(|e| unreadable(first.display(), e))?
            .len();
        // Two 512-byte zero blocks close a tar; the second archive's own close the stream.
        let body = tokio_util::io::ReaderStream::new(
            file.take(len.saturating_sub(crate::engine::runtime::TAR_END)),
        )
        .chain(then);
        self.upload_stream(container, dest, body).await
    }

    async fn upload_tar_stream(
        &self,
        container: &str,
        dest: &str,
        tar: BoxStream<'static, std::io::Result<Bytes>>,
    ) -> Result<(), RuntimeError> {
        self.upload_stream(container, dest, tar).await
    }

    async fn upload_tar_bytes(
        &self,
        container: &str,
        dest: &str,
        tar: Vec<u8>,
    ) -> Result<(), RuntimeError> {
        let options = UploadToContainerOptionsBuilder::default()
            .path(dest)
            .build();
        self.docker
            .upload_to_container(container, Some(options), bollard::body_full(tar.into()))
            .await?;
        Ok(())
    }

    async fn start(&self, container: &str) -> Result<(), RuntimeError> {
        self.docker.start_container(container, None).await?;
        Ok(())
    }

    async fn attach(&self, container: &str) -> Result<Attached, RuntimeError> {
        let options = bollard::query_parameters::AttachContainerOptionsBuilder::default()
            .stdin(true)
            .stdout(true)
            .stderr(true)
            .stream(true)
            .build();
        let attached = self
            .docker
            .attach_container(container, Some(options))
            .await?;
        let output = attached
            .output
            .map(|chunk| chunk.map(|o| o.into_bytes()).map_err(RuntimeError::from))
            .boxed();
        Ok((output, attached.input))
    }

    async fn attach_stdin(&self, container: &str) -> Result<Stdin, RuntimeError> {
        let options = bollard::query_parameters::AttachContainerOptionsBuilder::default()
            .stdin(true)
            .stream(true)
            .build();
        let attached = self
            .docker
            .attach_container(container, Some(options))
            .await?;
        Ok(attached.input)
    }

    async fn exec(
        &self,
        container: &str,
        spec: &ExecSpec,
    ) -> Result<(String, BoxStream<'static, Result<Output, RuntimeError>>), RuntimeError> {
        let env: Vec<String> = spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let created = self
            .docker
            .create_exec(
                container,
                bollard::exec::CreateExecOptions {
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    cmd: Some(spec.argv.clone()),
                    env: Some(env),
                    working_dir: spec.working_dir.clone(),
                    ..Default::default()
                },
            )
            .await?;
        match self.docker.start_exec(&created.id, None).await? {
            bollard::exec::StartExecResults::Attached { output, .. } => {
                let output = output
                    .filter_map(|item| async move { output_of(item) })
                    .boxed();
                Ok((created.id, output))
            }
            bollard::exec::StartExecResults::Detached => Err(RuntimeError::Api(
                "the engine started the process detached".into(),
            )),
        }
    }

    async fn exec_exit_code(&self, exec: &str) -> Result<Option<i64>, RuntimeError> {
        let inspected = self.docker.inspect_exec(exec).await?;
        Ok(match inspected.running {
            Some(true) => None,
            _ => inspected.exit_code,
        })
    }

    async fn resize(&self, container: &str, rows: u16, cols: u16) -> Result<(), RuntimeError> {
        let options = bollard::query_parameters::ResizeContainerTTYOptionsBuilder::default()
            .h(i32::from(rows))
            .w(i32::from(cols))
            .build();
        self.docker.resize_container_tty(container, options).await?;
        Ok(())
    }

    async fn commit(
        &self,
        container: &str,
        repo: &str,
        tag: &str,
        labels: &HashMap<String, String>,
    ) -> Result<String, RuntimeError> {
        let options = bollard::query_parameters::CommitContainerOptionsBuilder::default()
            .container(container)
            .repo(repo)
            .tag(tag)
            .pause(false)
            .build();
        let config = bollard::models::ContainerConfig {
            labels: Some(labels.clone()),
            ..Default::default()
        };
        let id = self.docker.commit_container(options, config).await?;
        Ok(id.id)
    }

    fn output(&self, container: &str) -> BoxStream<'static, Result<Output, RuntimeError>> {
        self.logs(container, true).boxed()
    }

    fn output_so_far(&self, container: &str) -> BoxStream<'static, Result<Output, RuntimeError>> {
        self.logs(container, false).boxed()
    }

    fn logs_may_end_early(&self) -> bool {
        self.is_podman()
    }

    fn runs_health_checks(&self) -> bool {
        !self.is_podman()
    }

    async fn wait(&self, container: &str) -> Result<i64, RuntimeError> {
        let options = WaitContainerOptionsBuilder::default()
            .condition("not-running")
            .build();
        let mut stream = self.docker.wait_container(container, Some(options));
        match stream.next().await {
            Some(Ok(resp)) => Ok(resp.status_code),
            // bollard reports a non-zero exit as an error; for berth it is a result.
            Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => Ok(code),
            Some(Err(e)) => Err(e.into()),
            None => Err(RuntimeError::Api(
                "the engine ended the wait without an exit code".into(),
            )),
        }
    }

    async fn kill(&self, container: &str) -> Result<(), RuntimeError> {
        // 404 gone, 409 not running: either way it is stopped.
        done_unless_failed(self.docker.kill_container(container, None).await, true)
    }

    fn download(
        &self,
        container: &str,
        path: &str,
    ) -> BoxStream<'static, Result<Bytes, RuntimeError>> {
        let options = DownloadFromContainerOptionsBuilder::default()
            .path(path)
            .build();
        let path = path.to_string();
        self.docker
            .download_from_container(container, Some(options))
            .map_err(move |e| {
                if is_not_found(&e) {
                    RuntimeError::NotFound(path.clone())
                } else {
                    e.into()
                }
            })
            .boxed()
    }

    async fn remove_container(&self, container: &str) -> Result<(), RuntimeError> {
        let options = RemoveContainerOptionsBuilder::default()
            .force(true)
            .v(true)
            .build();
        // 409: removal already in progress.
        done_unless_failed(
            self.docker.remove_container(container, Some(options)).await,
            true,
        )
    }

    async fn containers_with_label(
        &self,
        label: &str,
        value: Option<&str>,
    ) -> Result<Vec<ContainerInfo>, RuntimeError> {
        let filter = match value {
            Some(v) => format!("{label}={v}"),
            None => label.to_string(),
        };
        let filters = HashMap::from([("label", vec![filter.as_str()])]);
        let options = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&filters)
            .build();
        let list = settled(|| self.docker.list_containers(Some(options.clone()))).await?;
        Ok(list
            .into_iter()
            .map(|c| ContainerInfo {
                id: c.id.unwrap_or_default(),
                name: c
                    .names
                    .and_then(|n| n.into_iter().next())
                    .unwrap_or_default()
                    .trim_start_matches('/')
                    .to_string(),
                labels: c.labels.unwrap_or_default(),
            })
            .collect())
    }

    async fn create_network(
        &self,
        name: &str,
        labels: &HashMap<String, String>,
        kind: NetworkKind,
    ) -> Result<String, RuntimeError> {
        if kind == NetworkKind::Sealed && self.is_podman() {
            return Err(RuntimeError::Api(
                "hermetic jobs with services are not supported on Podman: its bridges always \
                 have a host address (no `com.docker.network.bridge.inhibit_ipv4`), so the \
                 services' network cannot be sealed; run them on Docker"
                    .into(),
            ));
        }
        let request = bollard::models::NetworkCreateRequest {
            name: name.to_string(),
            driver: Some("bridge".into()),
            labels: Some(labels.clone()),
            internal: Some(kind != NetworkKind::Bridge),
            // Without an address on the bridge the host is not reachable from the network
            // (an internal network alone still routes to the host's own addresses).
            options: (kind == NetworkKind::Sealed).then(|| {
                HashMap::from([(
                    "com.docker.network.bridge.inhibit_ipv4".to_string(),
                    "true".to_string(),
                )])
            }),
            ..Default::default()
        };
        let created = self.docker.create_network(request).await?;
        Ok(created.id)
    }

    async fn container_state(
        &self,
        container: &str,
        network: &str,
    ) -> Result<ContainerState, RuntimeError> {
        let info = settled(|| self.docker.inspect_container(container, None)).await?;
        let state = info.state.unwrap_or_default();
        let ip = info
            .network_settings
            .and_then(|n| n.networks)
            .and_then(|mut n| n.remove(network))
            .and_then(|e| e.ip_address)
            .filter(|ip| !ip.is_empty());
        let health_test = info
            .config
            .as_ref()
            .and_then(|c| c.healthcheck.as_ref())
            .and_then(|h| h.test.clone())
            .unwrap_or_default();
        let mut ports: Vec<u16> = info
            .config
            .and_then(|c| c.exposed_ports)
            .unwrap_or_default()
            .iter()
            .filter_map(|p| p.strip_suffix("/tcp").and_then(|n| n.parse().ok()))
            .collect();
        ports.sort_unstable();
        let health = state.health.and_then(|h| {
            use bollard::models::HealthStatusEnum as S;
            match h.status? {
                S::STARTING => Some(Health::Starting),
                S::HEALTHY => Some(Health::Healthy),
                S::UNHEALTHY => Some(Health::Unhealthy(
                    h.log
                        .and_then(|log| log.into_iter().last())
                        .and_then(|r| r.output)
                        .unwrap_or_default()
                        .trim()
                        .to_string(),
                )),
                S::NONE | S::EMPTY => None,
            }
        });
        Ok(ContainerState {
            running: state.running.unwrap_or(false),
            exit_code: state.exit_code,
            ip,
            tcp_ports: ports,
            health,
            health_test,
        })
    }

    async fn write_output(
        &self,
        container: &str,
        out: &mut (dyn std::io::Write + Send),
    ) -> Result<(), RuntimeError> {
        let options = LogsOptionsBuilder::default()
            .follow(false)
            .stdout(true)
            .stderr(true)
            .build();
        let mut stream = self.docker.logs(container, Some(options));
        while let Some(item) = stream.next().await {
            let bytes = item?.into_bytes();
            out.write_all(&bytes)
                .map_err(|e| RuntimeError::Api(format!("writing a log: {e}")))?;
        }
        Ok(())
    }

    async fn networks_with_label(&self, label: &str) -> Result<Vec<ObjectInfo>, RuntimeError> {
        let filters = HashMap::from([("label", vec![label])]);
        let options = ListNetworksOptionsBuilder::default()
            .filters(&filters)
            .build();
        let list = self.docker.list_networks(Some(options)).await?;
        Ok(list
            .into_iter()
            .map(|n| ObjectInfo {
                id: n.id.unwrap_or_default(),
                name: n.name.unwrap_or_default(),
                labels: n.labels.unwrap_or_default(),
            })
            .collect())
    }

    async fn connect_network(&self, network: &str, container: &str) -> Result<(), RuntimeError> {
        let request = bollard::models::NetworkConnectRequest {
            container: container.to_string(),
            ..Default::default()
        };
        self.docker.connect_network(network, request).await?;
        Ok(())
    }

    async fn remove_network(&self, id: &str) -> Result<(), RuntimeError> {
        done_unless_failed(self.docker.remove_network(id).await, false)
    }

    async fn volumes_with_label(&self, label: &str) -> Result<Vec<ObjectInfo>, RuntimeError> {
        let filters = HashMap::from([("label", vec![label])]);
        let options = ListVolumesOptionsBuilder::default()
            .filters(&filters)
            .build();
        let list = self.docker.list_volumes(Some(options)).await?;
        Ok(list
            .volumes
            .unwrap_or_default()
            .into_iter()
            .map(|v| ObjectInfo {
                id: v.name.clone(),
                name: v.name,
                labels: v.labels,
            })
            .collect())
    }

    async fn create_volume(
        &self,
        name: &str,
        labels: &HashMap<String, String>,
    ) -> Result<(), RuntimeError> {
        let request = bollard::models::VolumeCreateRequest {
            name: Some(name.to_string()),
            labels: Some(labels.clone()),
            ..Default::default()
        };
        self.docker.create_volume(request).await?;
        Ok(())
    }

    async fn volume_mountpoint(&self, name: &str) -> Result<String, RuntimeError> {
        Ok(self.docker.inspect_volume(name).await?.mountpoint)
    }

    async fn any_local_image(&self) -> Result<Option<String>, RuntimeError> {
        let list = self
            .docker
            .list_images(None::<bollard::query_parameters::ListImagesOptions>)
            .await?;
        Ok(list.into_iter().next().map(|i| i.id))
    }

    async fn remove_volume(&self, name: &str) -> Result<(), RuntimeError> {
        let options = RemoveVolumeOptionsBuilder::default().force(true).build();
        done_unless_failed(self.docker.remove_volume(name, Some(options)).await, false)
    }
}

/// The binds (berth's own, then the options' bind mounts and named volumes) and the
/// anonymous volumes' paths.
fn mounts(binds: &[String], o: &ContainerOptions) -> (Vec<String>, Vec<String>) {
    let mut all = binds.to_vec();
    let mut anonymous = Vec::new();
    let mode = |ro: bool| if ro { ":ro" } else { "" };
    for m in &o.mounts {
        match m {
            Mount::Volume {
                name: source,
                target,
                read_only,
            }
            | Mount::Bind {
                source,
                target,
                read_only,
            } => all.push(format!("{source}:{target}{}", mode(*read_only))),
            Mount::Anonymous { target } => anonymous.push(target.clone()),
        }
    }
    (all, anonymous)
}

/// A health check in the engine's terms (durations in nanoseconds, 0: the engine's default).
fn health_config(h: &crate::engine::runtime::HealthCheck) -> bollard::models::HealthConfig {
    let nanos =
        |d: Option<std::time::Duration>| d.map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
    let test = if h.disabled {
        Some(vec!["NONE".to_string()])
    } else {
        // An empty test keeps the image's own, with the timings given here.
        h.command
            .as_ref()
            .map(|c| vec!["CMD-SHELL".to_string(), c.clone()])
    };
    bollard::models::HealthConfig {
        test,
        interval: nanos(h.interval),
        timeout: nanos(h.timeout),
        retries: h.retries.map(i64::from),
        start_period: nanos(h.start_period),
        start_interval: None,
    }
}

/// bollard's messages start with "Docker responded with status code N: "; people need the rest.
fn strip_prefix(message: String) -> String {
    match message.split_once(": ") {
        Some((head, rest)) if head.contains("status code") => rest.to_string(),
        _ => message,
    }
}
