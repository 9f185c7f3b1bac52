//! The seam between the engine and whatever runs its containers: [`ContainerRuntime`], in
//! berth's own types. `crate::docker` implements it for Docker's and Podman's API; a backend on
//! a distributed engine (Docker Swarm, Kubernetes) would be one more implementation, with no
//! change to the scheduler or the life of a job.
//!
//! Everything a runtime creates for berth carries the labels in [`labels`], so that cleanup can
//! always find it.

use std::collections::HashMap;
use std::path::Path;
use std::pin::Pin;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::stream::BoxStream;

/// The two 512-byte zero blocks that close a tar (as the tar crate writes them): what is left
/// out of a tar file that another archive's entries follow in one upload.
pub const TAR_END: u64 = 1024;

pub use crate::pipeline::{ContainerOptions, Credentials, HealthCheck, Mount};

/// Label keys on everything berth creates.
pub mod labels {
    /// Present on every object berth creates.
    pub const BERTH: &str = "io.berth";
    /// The run that created the object.
    pub const RUN: &str = "io.berth.run";
    /// The project directory (absolute path on the host).
    pub const PROJECT: &str = "io.berth.project";
    /// The job the object belongs to.
    pub const JOB: &str = "io.berth.job";
    /// The owner's host: the kernel's boot id and its PID namespace (see `engine::owner`).
    pub const HOST: &str = "io.berth.host";
    /// The pid of the berth process that owns the object, on its host.
    pub const PID: &str = "io.berth.pid";
    /// When that process started (clock ticks since boot), which tells a reused pid apart.
    pub const PID_START: &str = "io.berth.pid-start";
    /// On a run's lease volume: when the lease was last renewed (seconds since the epoch).
    pub const LEASE: &str = "io.berth.lease";
    /// Set on volumes that must not outlive their run.
    pub const TEMPORARY: &str = "io.berth.temporary";
}

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("cannot reach the Docker engine: {0}")]
    Unreachable(String),
    #[error("image `{image}` cannot be had: {reason}")]
    Image { image: String, reason: String },
    #[error("not found: {0}")]
    NotFound(String),
    #[error("Docker engine error: {0}")]
    Api(String),
    /// berth itself ran out of something (open files, disk space) talking to the engine.
    #[error("{0}")]
    Exhausted(String),
}

/// What a container should be.
#[derive(Debug, Clone, Default)]
pub struct ContainerSpec {
    pub name: String,
    pub image: String,
    /// `None` keeps the image's entrypoint; `Some([""])` clears it, as GitLab does.
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Vec<String>,
    pub env: Vec<(String, String)>,
    pub working_dir: String,
    pub labels: HashMap<String, String>,
    /// `host:container[:ro]` bind mounts.
    pub binds: Vec<String>,
    /// A network to join instead of the default bridge, with the names others reach it by;
    /// `container:ID` joins that container's network namespace (its `localhost`).
    pub network: Option<String>,
    pub aliases: Vec<String>,
    /// A terminal and an open stdin, for a shell someone types into.
    pub interactive: bool,
    /// An open stdin without a terminal, written through [`ContainerRuntime::attach_stdin`]
    /// (the gate of a job started ahead).
    pub stdin: bool,
    /// The container's hostname (Docker's default: its short ID).
    pub hostname: Option<String>,
    /// Health check, user, resources, mounts. Here a bind mount's source is a path on the
    /// engine's host and a volume's name the engine's (see `engine::services::resolve_mounts`).
    pub options: ContainerOptions,
}

/// A process to run in a running container (a step of a job of steps).
#[derive(Debug, Clone, Default)]
pub struct ExecSpec {
    pub argv: Vec<String>,
    /// Its environment, over the container's own.
    pub env: Vec<(String, String)>,
    /// `None`: the container's working directory.
    pub working_dir: Option<String>,
}

/// One piece of a container's output.
#[derive(Debug, Clone)]
pub enum Output {
    Stdout(Bytes),
    Stderr(Bytes),
}

/// One progress report of a pull (a layer's status and bytes) or a build (a line of its output,
/// `Step N/M : ...` at each step).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageStep {
    pub layer: Option<String>,
    pub line: String,
    pub current: Option<u64>,
    pub total: Option<u64>,
}

/// Where the progress of a pull or a build goes, step by step.
pub type Progress = Box<dyn FnMut(ImageStep) + Send>;

/// How an image came to be available.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageSource {
    Present,
    Pulled,
    Built,
}

/// What a network reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetworkKind {
    /// A bridge with the usual way out.
    Bridge,
    /// No way out, but the host (its address on the bridge) still answers.
    Internal,
    /// Nothing but the containers on it: internal, and no host address on the bridge.
    Sealed,
}

/// What a started container looks like from outside.
#[derive(Debug, Clone)]
pub struct ContainerState {
    pub running: bool,
    pub exit_code: Option<i64>,
    pub ip: Option<String>,
    pub tcp_ports: Vec<u16>,
    /// `None`: it has no health check.
    pub health: Option<Health>,
    /// The health check's test as configured (`["CMD-SHELL", "pg_isready"]`), the image's own
    /// or the container's.
    pub health_test: Vec<String>,
}

/// What the engine's health check says of a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    Starting,
    Healthy,
    /// With the last check's output.
    Unhealthy(String),
}

#[derive(Debug, Clone)]
pub struct ContainerInfo {
    pub id: String,
    pub name: String,
    pub labels: HashMap<String, String>,
}

/// A network or a volume, as listed.
#[derive(Debug, Clone)]
pub struct ObjectInfo {
    pub id: String,
    pub name: String,
    pub labels: HashMap<String, String>,
}

/// A container's output and a writer to its stdin, attached before it starts.
pub type Attached = (
    BoxStream<'static, Result<Bytes, RuntimeError>>,
    Pin<Box<dyn tokio::io::AsyncWrite + Send>>,
);

/// The writing end of a container's stdin.
pub type Stdin = Pin<Box<dyn tokio::io::AsyncWrite + Send>>;

type Result<T, E = RuntimeError> = std::result::Result<T, E>;

/// Everything the engine asks of the containers' side: images, containers, the archives in and
/// out of them, their logs, networks and volumes. Removals and kills of what is already gone
/// (or already stopped) succeed.
#[async_trait]
pub trait ContainerRuntime: Send + Sync {
    // Images.

    /// The image's ID and its registry digests (`repo@sha256:...`), if it is present.
    async fn image_identity(&self, image: &str) -> Result<Option<(String, Vec<String>)>>;

    /// The image's ID (the digest of its configuration), if it is present.
    async fn image_id(&self, image: &str) -> Result<Option<String>>;

    async fn image_exists(&self, image: &str) -> Result<bool> {
        Ok(self.image_id(image).await?.is_some())
    }

    /// Some image present, for helper containers that are created, never started.
    async fn any_local_image(&self) -> Result<Option<String>>;

    /// Make sure `image` is present, pulling it if not: with `credentials` when given, else
    /// with the user's for its registry. `progress` receives each status change of each layer,
    /// with its bytes when known.
    async fn ensure_image(
        &self,
        image: &str,
        credentials: Option<&Credentials>,
        progress: Progress,
    ) -> Result<ImageSource>;

    /// Build `context_tar` (a tar file of the build context) as `tag`, unless it exists already.
    async fn build_image(
        &self,
        context_tar: &Path,
        dockerfile: &str,
        tag: &str,
        progress: Progress,
    ) -> Result<ImageSource>;

    /// Save a (stopped) container's filesystem as an image `repo:tag` with these labels.
    async fn commit(
        &self,
        container: &str,
        repo: &str,
        tag: &str,
        labels: &HashMap<String, String>,
    ) -> Result<String>;

    /// Remove an image by reference (forced); a missing one is not an error.
    async fn remove_image(&self, image: &str) -> Result<()>;

    // Containers.

    /// Create (not start) a container; returns its id.
    async fn create_container(&self, spec: &ContainerSpec) -> Result<String>;

    async fn start(&self, container: &str) -> Result<()>;

    /// Attach to a created interactive container before it starts.
    async fn attach(&self, container: &str) -> Result<Attached>;

    /// Attach to a created container's stdin (`stdin` in its spec) before it starts; the
    /// stdin closes when the writer does.
    async fn attach_stdin(&self, container: &str) -> Result<Stdin>;

    /// Tell a container's terminal its size.
    async fn resize(&self, container: &str, rows: u16, cols: u16) -> Result<()>;

    /// Wait for the container to stop; its exit code.
    async fn wait(&self, container: &str) -> Result<i64>;

    /// Stop a running container at once (SIGKILL), keeping its filesystem for collection.
    async fn kill(&self, container: &str) -> Result<()>;

    /// Start a process in a running container: its id and its output, which ends when the
    /// process does; then [`ContainerRuntime::exec_exit_code`] tells how it ended.
    async fn exec(
        &self,
        container: &str,
        spec: &ExecSpec,
    ) -> Result<(String, BoxStream<'static, Result<Output>>)>;

    /// The exit code of a process [`ContainerRuntime::exec`] started (`None` while it runs).
    async fn exec_exit_code(&self, exec: &str) -> Result<Option<i64>>;

    /// Running or not, its exit code, its address on `network`, the TCP ports its image
    /// declares, and its health.
    async fn container_state(&self, container: &str, network: &str) -> Result<ContainerState>;

    /// Kill (if running) and remove a container with its anonymous volumes.
    async fn remove_container(&self, container: &str) -> Result<()>;

    /// Containers (running or not) carrying `label=value` (or just `label` when value is None).
    async fn containers_with_label(
        &self,
        label: &str,
        value: Option<&str>,
    ) -> Result<Vec<ContainerInfo>>;

    // Archives in and out.

    /// Unpack a tar file into the container at `dest`, streaming it from disk.
    async fn upload_tar_file(&self, container: &str, dest: &str, tar: &Path) -> Result<()>;

    /// Unpack a tar file followed by a second tar (a stream), in one request ([`TAR_END`]
    /// bytes of `first` are left out): each archive
    /// upload costs the engine a mount of the container's filesystem, so jobs make one.
    /// `first` must end with tar's end-of-archive blocks, which are left out of the stream.
    async fn upload_tar_file_then(
        &self,
        container: &str,
        dest: &str,
        first: &Path,
        then: BoxStream<'static, std::io::Result<Bytes>>,
    ) -> Result<()>;

    /// Unpack a tar that streams (a whole archive, end blocks included) into the container:
    /// what a job started ahead of its needs receives from them once they have finished.
    async fn upload_tar_stream(
        &self,
        container: &str,
        dest: &str,
        tar: BoxStream<'static, std::io::Result<Bytes>>,
    ) -> Result<()>;

    /// Unpack an in-memory tar (small things such as the job's scripts) into the container.
    async fn upload_tar_bytes(&self, container: &str, dest: &str, tar: Vec<u8>) -> Result<()>;

    /// A tar stream of `path` inside the container (its entries start with the path's last
    /// component). A path that does not exist is [`RuntimeError::NotFound`].
    fn download(&self, container: &str, path: &str) -> BoxStream<'static, Result<Bytes>>;

    // Logs.

    /// The container's output from its start, following until it stops.
    fn output(&self, container: &str) -> BoxStream<'static, Result<Output>>;

    /// Everything a stopped container printed, from the start.
    fn output_so_far(&self, container: &str) -> BoxStream<'static, Result<Output>>;

    /// Everything a container has printed so far, written to `out` as it streams.
    async fn write_output(
        &self,
        container: &str,
        out: &mut (dyn std::io::Write + Send),
    ) -> Result<()>;

    /// Whether the engine runs containers' health checks itself. Podman runs them from systemd
    /// timers, which a machine without systemd lacks; there berth runs them (see
    /// `engine::services`).
    fn runs_health_checks(&self) -> bool;

    /// Whether a followed log may end before the container's output does without saying so
    /// (Podman's, podman#21914): then a stopped container's log is always read again.
    fn logs_may_end_early(&self) -> bool;

    // Networks.

    /// Create a network of the given kind; returns its id.
    async fn create_network(
        &self,
        name: &str,
        labels: &HashMap<String, String>,
        kind: NetworkKind,
    ) -> Result<String>;

    /// Connect a (created) container to one more network.
    async fn connect_network(&self, network: &str, container: &str) -> Result<()>;

    /// Networks carrying the label.
    async fn networks_with_label(&self, label: &str) -> Result<Vec<ObjectInfo>>;

    async fn remove_network(&self, id: &str) -> Result<()>;

    // Volumes.

    /// Create a named volume with labels; an existing one is kept as it is.
    async fn create_volume(&self, name: &str, labels: &HashMap<String, String>) -> Result<()>;

    /// Volumes carrying the label.
    async fn volumes_with_label(&self, label: &str) -> Result<Vec<ObjectInfo>>;

    /// Where a volume's data lives on the engine's host.
    async fn volume_mountpoint(&self, name: &str) -> Result<String>;

    async fn remove_volume(&self, name: &str) -> Result<()>;
}
