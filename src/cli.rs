//! The command line: parses arguments, wires pipeline → plan → engine → reporter, and maps
//! every outcome to an exit code.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use clap::{Parser, Subcommand, ValueEnum};
use tokio_util::sync::CancellationToken;

use crate::diag::Severity;
use crate::docker::{labels, Engine};
use crate::engine::{self, RunConfig, RunError, Workspace};
use crate::events::RunInfo;
use crate::events::{RunStatus, Sink};
use crate::pipeline::{self, Loaded, Source};
use crate::plan::{self, Plan};
use crate::report::records::{self, Records};
use crate::report::{json::Json, junit::Junit, plain::Plain, terminal::Terminal, Fanout, Reporter};
use crate::runs::{self, Runs};
use crate::vars::{self, Context};
use crate::workspace::{self, Selection};

/// Exit codes, as documented in the README.
pub mod exit {
    pub const OK: i32 = 0;
    pub const JOB_FAILED: i32 = 1;
    pub const BAD_INPUT: i32 = 2;
    pub const DOCKER: i32 = 3;
    pub const INTERRUPTED: i32 = 130;
}

/// `println!` for berth's standard output: a reader that went away (`berth runs | head -1`)
/// ends berth quietly with exit 0, as ripgrep does, instead of a panic. SIGPIPE stays ignored,
/// so that a run can always clean up.
macro_rules! out {
    ($($arg:tt)*) => {
        out_raw(format!("{}\n", format_args!($($arg)*)).as_bytes())
    };
}

fn out_raw(bytes: &[u8]) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(exit::OK);
        }
        eprintln!("berth: cannot write to standard output: {e}");
        std::process::exit(exit::DOCKER);
    }
}

#[derive(Debug, Parser)]
#[command(
    name = "berth",
    version,
    about = "Run a GitLab CI pipeline locally, every job in a fresh Docker container",
    after_help = "Exit codes: 0 all jobs passed, 1 a job failed, 2 bad pipeline file or command \
                  line (nothing started), 3 Docker unreachable or an image cannot be had, \
                  130 interrupted."
)]
pub struct Cli {
    /// The project directory [default: the current directory]
    #[arg(short = 'C', long = "project", global = true, value_name = "DIR")]
    project: Option<PathBuf>,
    /// The pipeline file [default: berth.yml, else .gitlab-ci.yml, in the project directory]
    #[arg(short = 'f', long = "file", global = true, value_name = "FILE")]
    file: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the pipeline, or the named jobs and everything they need
    Run(RunArgs),
    /// Run JOB and what it needs; if JOB fails, open a shell in its container as it was left
    Debug(RunArgs),
    /// Run what JOB needs, then open a shell in JOB's environment instead of its script
    Shell(RunArgs),
    /// Run recorded jobs again: the same images (by ID), variables, commit and pipeline file
    Replay(ReplayArgs),
    /// Pin every image the pipeline uses (jobs and services) to its ID in berth.lock
    Lock(RunArgs),
    /// Run the jobs twice, hermetically, varying hostname and time; compare their artifacts
    Verify(RunArgs),
    /// Fill the Python dependency caches of the named jobs (default: every job that installs
    /// Python packages) in their own images, without running their scripts; takes `run`'s options
    #[command(mut_arg("jobs", |a| a.help(
        "Jobs whose caches to fill; every job that installs Python packages when none are named"
    )))]
    Warm(RunArgs),
    /// Validate the pipeline and print what would run, in order, without Docker
    Plan(PlanArgs),
    /// List, remove or prune this project's dependency caches (Docker named volumes)
    #[command(subcommand)]
    Cache(CacheCommand),
    /// List recent runs: id, when, status, duration
    Runs,
    /// Print a job's log from a run (default: the latest run)
    Logs {
        #[arg(value_name = "RUN|JOB", num_args = 1..=2, required = true)]
        names: Vec<String>,
    },
    /// Print a run's summary (default: the latest run)
    Show {
        #[arg(value_name = "RUN")]
        run: Option<String>,
    },
    /// List the artifacts a run stored, or unpack one job's artifacts on the host
    Artifacts(ArtifactsArgs),
    /// Remove containers, networks and temporary volumes that crashed runs left behind
    Prune(PruneArgs),
    /// Print a completion script for SHELL to stdout (e.g. `berth completions bash >
    /// ~/.local/share/bash-completion/completions/berth`)
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) of berth, or of one of its commands, to stdout (e.g. `berth man
    /// | man -l -`)
    Man {
        #[arg(value_name = "COMMAND")]
        command: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum CacheCommand {
    /// List caches: key, path, jobs that used them, size, last used
    Ls,
    /// Remove the caches with these keys
    Rm {
        #[arg(required = true)]
        keys: Vec<String>,
    },
    /// Write the caches with these keys into one .tar.gz (keys and labels kept), for another machine
    Export {
        #[arg(required = true)]
        keys: Vec<String>,
        /// The file to write
        #[arg(short = 'o', long = "output", value_name = "FILE.tar.gz")]
        output: PathBuf,
    },
    /// Load the caches of a `cache export` file into this project; a cache already here with
    /// other content is refused (exit 2) unless --force
    Import {
        file: PathBuf,
        /// Replace caches whose content differs
        #[arg(long)]
        force: bool,
    },
    /// Remove caches not used for a while (all of this project's, without --older-than)
    Prune {
        /// For example `7d`, `12h`, `1w`
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        older_than: Option<std::time::Duration>,
    },
}

fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    pipeline::duration::parse(s)
}

#[derive(Debug, clap::Args)]
struct ArtifactsArgs {
    /// A run id (default: the latest run) and/or a job name
    #[arg(value_name = "RUN|JOB")]
    names: Vec<String>,
    /// Unpack the job's artifacts into DIR
    #[arg(long, value_name = "DIR")]
    extract: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
struct ReplayArgs {
    /// A run id (default: the latest run) and/or the jobs to replay (default: every job that ran)
    #[arg(value_name = "RUN|JOB")]
    names: Vec<String>,
    /// Replay even when the commit, the tree, the pipeline file or an image has changed since
    #[arg(long)]
    allow_drift: bool,
    /// Output format: a live view on a terminal (auto), or plain lines
    #[arg(long, value_enum, default_value_t = Output::Auto)]
    output: Output,
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// Jobs to run (with everything they need); all when none are named
    jobs: Vec<String>,
    /// How many jobs may run at once
    #[arg(short = 'j', long = "jobs", value_name = "N", default_value_t = default_parallelism())]
    parallel: usize,
    #[command(flatten)]
    origin: OriginArgs,
    /// How the project reaches the jobs: a fresh copy each (copy), or bind-mounted read-write
    /// for fast local loops (mount)
    #[arg(long, value_enum, default_value_t = WorkspaceMode::Copy)]
    workspace: WorkspaceMode,
    /// Also run manual jobs
    #[arg(long)]
    manual: bool,
    /// Run with empty, throwaway caches; stored caches are not touched
    #[arg(long)]
    no_cache: bool,
    /// How long a service may take to accept connections on its ports
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "30s")]
    service_timeout: std::time::Duration,
    /// Output format: a live view on a terminal (auto), or plain lines
    #[arg(long, value_enum, default_value_t = Output::Auto)]
    output: Output,
    /// Show every job's full log (the live view otherwise shows the latest line)
    #[arg(short, long)]
    verbose: bool,
    /// Also write a JUnit XML report (one test case per job) to FILE
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
    /// A secret variable for every job, its value from berth's environment (NAME) or a file
    /// (NAME=@FILE); masked as [MASKED] in every log line, event and record. Repeatable
    #[arg(long = "secret", value_name = "NAME[=@FILE]")]
    secrets: Vec<String>,
    /// Mask this variable's value (as the jobs see it, from the pipeline file or -e) as
    /// [MASKED] in every log line, event and record; the pipeline file can list names in its
    /// BERTH_MASK variable instead. Repeatable
    #[arg(long = "mask", value_name = "NAME")]
    masks: Vec<String>,
    /// How many run records to keep under .berth/runs
    #[arg(long, value_name = "N", default_value_t = 20)]
    keep_runs: usize,
    /// The image for jobs that name none
    #[arg(long, value_name = "IMAGE", default_value = "alpine:latest")]
    default_image: String,
    #[command(flatten)]
    python: PythonRunArgs,
    /// When a job fails, open a shell in its container as it was left (runs one job at a time)
    #[arg(long)]
    shell_on_failure: bool,
    /// Keep the failed job's state as an image after the shell ends
    #[arg(long)]
    keep: bool,
    /// Run only from berth.lock's images, with no network (services on an internal network
    /// with the job), SOURCE_DATE_EPOCH from the commit, TZ=UTC and a fixed locale
    #[arg(long)]
    hermetic: bool,
}

/// What `run`, `debug`, `shell`, `lock` and `verify` ask of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RunMode {
    Run,
    Debug,
    Shell,
    /// Resolve every image and write berth.lock; nothing runs.
    Lock,
    /// One of `berth verify`'s two runs: hermetic, with a lock if there is one.
    Verify,
}

/// What the pipeline runs for, as GitLab would know it from the push.
#[derive(Debug, clap::Args)]
struct OriginArgs {
    /// The branch the pipeline is for [default: git's current branch]
    #[arg(long, value_name = "NAME")]
    branch: Option<String>,
    /// Make it a tag pipeline for this tag (CI_COMMIT_TAG)
    #[arg(long, value_name = "NAME", conflicts_with = "branch")]
    tag: Option<String>,
    /// CI_PIPELINE_SOURCE: push, merge_request_event, schedule, web, api, trigger, ...
    #[arg(long, value_name = "SOURCE", default_value = "push")]
    source: String,
    /// Set a variable for every job (highest precedence; rules see it too); may be repeated
    #[arg(short = 'e', long = "env", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    env: Vec<(String, String)>,
}

impl OriginArgs {
    fn origin(&self) -> vars::Origin {
        vars::Origin {
            branch: self.branch.clone(),
            tag: self.tag.clone(),
            source: Some(self.source.clone()),
        }
    }
}

// ---- Python caches and hermetic runs (`berth warm`, `berth cache export/import`) ----

/// Options of `berth run` (and `berth warm`) about Python caches and the job network.
#[derive(Debug, clap::Args)]
struct PythonRunArgs {
    /// Jobs' network: `default` (a bridge; services on a network of the job's own), or `none`
    /// (no network at all, no services; pip and uv install from their caches only)
    #[arg(long, value_enum, default_value_t = NetworkMode::Default)]
    network: NetworkMode,
    /// Do not give jobs that install Python packages their automatic caches
    #[arg(long)]
    no_python_cache: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum NetworkMode {
    Default,
    None,
}

/// `berth warm`: each chosen job becomes a job that only resolves and downloads what the
/// project's dependency files name, in the job's image, with its variables and services and its
/// automatic Python caches mounted; nothing waits for anything else.
async fn cmd_warm(cli: &Cli, args: &RunArgs) -> i32 {
    use crate::engine::python;
    if args.python.no_python_cache || args.no_cache || args.python.network == NetworkMode::None {
        eprintln!("berth: warm fills the stored Python caches: it needs them, and a network");
        return exit::BAD_INPUT;
    }
    let project = match project_dir(cli) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let engine = connect_soon();
    let (run_id, pipeline_id) = runs::new_run_id();
    let (source, loaded, context) = match load(cli, &project, &args.origin, pipeline_id) {
        Ok(x) => x,
        Err(code) => return code,
    };
    // Manual jobs count too: warming runs none of their commands.
    let mut plan = match make_plan(&loaded, &args.jobs, true) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let files = python::dependency_files(&project);
    let mut warm = Vec::new();
    // Jobs that would fill the same caches the same way are warmed once.
    let mut seen = std::collections::HashSet::new();
    for planned in std::mem::take(&mut plan.jobs) {
        let job = &planned.job;
        let named = args.jobs.contains(&job.name);
        if !args.jobs.is_empty() && !named {
            continue;
        }
        let tools = python::detect(job.before_script.iter().chain(&job.script));
        if tools.is_empty() {
            if named {
                eprintln!(
                    "berth: job `{}` installs no Python packages (pip, uv, poetry, pipenv, pdm)",
                    job.name
                );
                return exit::BAD_INPUT;
            }
            continue;
        }
        let same = format!(
            "{:?} {tools:?} {:?} {:?}",
            job.image, job.variables, job.services
        );
        if !named && !seen.insert(same) {
            continue;
        }
        let names: Vec<&str> = tools.iter().map(|t| t.name()).collect();
        eprintln!(
            "berth: warming `{}` ({}) from {}",
            job.name,
            names.join(", "),
            if files.is_empty() {
                "no dependency files".to_string()
            } else {
                files.join(", ")
            }
        );
        let mut job = planned.job.clone();
        job.before_script = Vec::new();
        job.after_script = Vec::new();
        job.script = python::warm_script(&tools, &files);
        job.artifacts = None;
        job.caches = Vec::new();
        job.needs = Some(Vec::new());
        job.dependencies = Some(Vec::new());
        job.when = pipeline::When::OnSuccess;
        job.allow_failure = pipeline::AllowFailure::No;
        warm.push(plan::PlannedJob {
            job,
            deps: Default::default(),
            dag: true,
            run: true,
            artifacts_from: Default::default(),
            ..planned
        });
    }
    if warm.is_empty() {
        eprintln!("berth: no job installs Python packages; nothing to warm");
        return exit::OK;
    }
    plan.jobs = warm;
    let run = LoadedRun {
        project,
        source,
        loaded,
        plan,
        context,
        run_id,
        engine,
    };
    execute(args, run, RunMode::Run, None, None, None).await
}

async fn cmd_cache_export(cli: &Cli, keys: &[String], output: &Path) -> i32 {
    let (project, engine) = match project_and_engine(cli).await {
        Ok(x) => x,
        Err(code) => return code,
    };
    match engine::transfer::export(&engine, &project, keys, output).await {
        Ok(volumes) => {
            out!(
                "exported {} cache volume{} to {}",
                volumes.len(),
                if volumes.len() == 1 { "" } else { "s" },
                output.display()
            );
            exit::OK
        }
        Err(e) => {
            eprintln!("berth: cache export: {e}");
            exit::BAD_INPUT
        }
    }
}

async fn cmd_cache_import(cli: &Cli, file: &Path, force: bool) -> i32 {
    use crate::engine::transfer::Imported;
    let (project, engine) = match project_and_engine(cli).await {
        Ok(x) => x,
        Err(code) => return code,
    };
    match engine::transfer::import(&engine, &project, file, force).await {
        Ok(done) => {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            let mut index = crate::engine::caches::Index::load(&project);
            for d in &done {
                match d {
                    Imported::Created { key, volume } | Imported::Replaced { key, volume } => {
                        let verb = if matches!(d, Imported::Created { .. }) {
                            "imported"
                        } else {
                            "replaced"
                        };
                        out!("{verb} cache `{key}` (volume {volume})");
                        // Counted as used now, so that `cache prune --older-than` spares it.
                        let entry = index.volumes.entry(volume.clone()).or_default();
                        entry.key = key.clone();
                        entry.last_used = now;
                    }
                    Imported::Identical { key } => {
                        out!("cache `{key}` is already here, identical; kept")
                    }
                }
            }
            if let Err(e) = index.save(&project) {
                eprintln!("berth: cannot update the cache index: {e}");
            }
            exit::OK
        }
        Err(e) => {
            eprintln!("berth: cache import: {e}");
            exit::BAD_INPUT
        }
    }
}

// ---- end of Python options ----

#[derive(Debug, clap::Args)]
struct PlanArgs {
    /// Jobs to plan (with everything they need); all when none are named
    jobs: Vec<String>,
    #[command(flatten)]
    origin: OriginArgs,
    /// Include manual jobs as if they were played
    #[arg(long)]
    manual: bool,
    /// Output format
    #[arg(long, value_enum, default_value_t = PlanOutput::Text)]
    output: PlanOutput,
}

#[derive(Debug, clap::Args)]
struct PruneArgs {
    /// Every project's leftovers on the engine, not only this project's
    #[arg(long)]
    all: bool,
    /// Also remove objects of runs whose berth is still alive
    #[arg(long)]
    force: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum WorkspaceMode {
    Copy,
    Mount,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Output {
    /// The live view when stderr is a terminal, else plain
    Auto,
    Plain,
    /// The live view
    Terminal,
    /// One JSON object per event per line, on stdout (see docs/events.md)
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum PlanOutput {
    Text,
    Json,
    Yaml,
}

fn default_parallelism() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .max(4)
}

fn parse_key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("`{s}` is not KEY=VALUE")),
    }
}

/// Entry point: parse, run, and return the process exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                exit::BAD_INPUT
            } else {
                exit::OK
            };
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("berth: cannot start: {e}");
            return exit::DOCKER;
        }
    };
    runtime.block_on(async move {
        match &cli.command {
            Command::Plan(args) => cmd_plan(&cli, args),
            Command::Run(args) => cmd_run(&cli, args, RunMode::Run, None, None).await,
            Command::Debug(args) => cmd_run(&cli, args, RunMode::Debug, None, None).await,
            Command::Shell(args) => cmd_run(&cli, args, RunMode::Shell, None, None).await,
            Command::Lock(args) => cmd_run(&cli, args, RunMode::Lock, None, None).await,
            Command::Verify(args) => cmd_verify(&cli, args).await,
            Command::Replay(args) => cmd_replay(&cli, args).await,
            Command::Warm(args) => cmd_warm(&cli, args).await,
            Command::Prune(args) => cmd_prune(&cli, args).await,
            Command::Artifacts(args) => cmd_artifacts(&cli, args),
            Command::Cache(CacheCommand::Export { keys, output }) => {
                cmd_cache_export(&cli, keys, output).await
            }
            Command::Cache(CacheCommand::Import { file, force }) => {
                cmd_cache_import(&cli, file, *force).await
            }
            Command::Cache(command) => cmd_cache(&cli, command).await,
            Command::Runs => cmd_runs(&cli),
            Command::Logs { names } => cmd_logs(&cli, names),
            Command::Show { run } => cmd_show(&cli, run.as_deref()),
            Command::Completions { shell } => cmd_completions(*shell),
            Command::Man { command } => cmd_man(command.as_deref()),
        }
    })
}

/// `berth completions SHELL`: generated from the clap definition, so it never falls behind.
fn cmd_completions(shell: clap_complete::Shell) -> i32 {
    use clap::CommandFactory;
    let mut cmd = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cmd, "berth", &mut script);
    out_raw(&script);
    exit::OK
}

/// `berth man [COMMAND]`: berth(1), or berth-COMMAND(1) for one subcommand, as roff.
fn cmd_man(command: Option<&str>) -> i32 {
    use clap::CommandFactory;
    let mut cli = Cli::command();
    // Global options (-C, -f) reach the subcommands' pages, which are named berth-NAME.
    cli.build();
    let page = match command {
        None => cli,
        Some(name) => match cli.find_subcommand(name) {
            // After build(), its display name is `berth-NAME`: the page's title.
            Some(sub) => sub.clone(),
            None => {
                eprintln!("berth: no command `{name}` (see `berth --help`)");
                return exit::BAD_INPUT;
            }
        },
    };
    let mut out = Vec::new();
    if let Err(e) = clap_mangen::Man::new(page)
        .source(concat!("berth ", env!("CARGO_PKG_VERSION")))
        .render(&mut out)
    {
        eprintln!("berth: cannot render the man page: {e}");
        return exit::BAD_INPUT;
    }
    out_raw(&out);
    exit::OK
}

/// The Docker engine, or exit code 3 with a message that says what to check.
async fn connect() -> Result<Engine, i32> {
    Engine::connect().await.map_err(engine_unreachable)
}

/// Start connecting to the engine while the pipeline is read: a good pipeline does not wait for
/// the engine's answer, and a bad one still ends the run (exit 2) before any container exists.
fn connect_soon() -> tokio::task::JoinHandle<Result<Engine, crate::docker::DockerError>> {
    tokio::spawn(Engine::connect())
}

fn engine_unreachable(e: crate::docker::DockerError) -> i32 {
    eprintln!("berth: {e}");
    eprintln!("berth: is the Docker engine running? (DOCKER_HOST is used when set)");
    exit::DOCKER
}

/// The project directory and a connected engine, or the exit code that says why not.
async fn project_and_engine(cli: &Cli) -> Result<(PathBuf, Engine), i32> {
    let project = project_dir(cli)?;
    let engine = connect().await?;
    Ok((project, engine))
}

fn project_dir(cli: &Cli) -> Result<PathBuf, i32> {
    let dir = match &cli.project {
        Some(d) => d.clone(),
        None => std::env::current_dir().map_err(|e| {
            eprintln!("berth: cannot read the current directory: {e}");
            exit::BAD_INPUT
        })?,
    };
    dir.canonicalize().map_err(|e| {
        eprintln!("berth: project directory {}: {e}", dir.display());
        exit::BAD_INPUT
    })
}

/// Find, read and validate the pipeline for its context; print diagnostics. Errors are exit
/// code 2; a pipeline that `workflow: rules` refuse is a message and exit code 0.
fn load(
    cli: &Cli,
    project: &Path,
    origin: &OriginArgs,
    pipeline_id: u64,
) -> Result<(Source, Loaded, Context), i32> {
    let path = match &cli.file {
        Some(f) => f.clone(),
        None => Source::discover(project).ok_or_else(|| {
            eprintln!(
                "berth: no pipeline file in {}: expected berth.yml or .gitlab-ci.yml (or name one with -f)",
                project.display()
            );
            exit::BAD_INPUT
        })?,
    };
    let source = Source::read(&path).map_err(|e| {
        eprintln!("berth: cannot read {}: {e}", path.display());
        exit::BAD_INPUT
    })?;
    let context = Context::with_origin(project, pipeline_id, &origin.origin());
    match pipeline::load_source(&source, &pipeline_context(&context, origin)) {
        Ok(loaded) => {
            for w in &loaded.warnings {
                eprint!("{}", w.render(&loaded.sources));
            }
            if let Some(why) = &loaded.refused {
                eprintln!(
                    "berth: `workflow: rules` create no pipeline for {} {} (source {}): {why}",
                    if context.tag.is_some() {
                        "tag"
                    } else {
                        "branch"
                    },
                    context.ref_name,
                    context.source
                );
                return Err(exit::OK);
            }
            Ok((source, loaded, context))
        }
        Err(failed) => Err(report_failed(&failed, &source)),
    }
}

/// What rules, includes and child pipelines see of the run's context.
fn pipeline_context(context: &Context, origin: &OriginArgs) -> pipeline::Context {
    pipeline::Context {
        project_dir: context.project_dir.clone(),
        variables: context.pipeline_variables(),
        overrides: origin.env.clone(),
        changes: Some(std::sync::Arc::new(context.changes())),
        files: Default::default(),
    }
}

/// Print every diagnostic of a pipeline that cannot be read; exit code 2.
fn report_failed(failed: &pipeline::Failed, source: &Source) -> i32 {
    let errors = failed
        .diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .count();
    for d in &failed.diagnostics {
        eprint!("{}", d.render(&failed.sources));
    }
    eprintln!(
        "berth: {errors} error{} in {}; nothing was started",
        if errors == 1 { "" } else { "s" },
        source.name
    );
    exit::BAD_INPUT
}

fn make_plan(loaded: &Loaded, jobs: &[String], manual: bool) -> Result<Plan, i32> {
    plan::plan(&loaded.pipeline, jobs, manual).map_err(|e| {
        eprintln!("berth: {e}");
        exit::BAD_INPUT
    })
}

fn cmd_plan(cli: &Cli, args: &PlanArgs) -> i32 {
    let result = (|| {
        let project = project_dir(cli)?;
        let (source, loaded, _) = load(cli, &project, &args.origin, 0)?;
        let plan = make_plan(&loaded, &args.jobs, args.manual)?;
        Ok::<_, i32>((source, loaded, plan))
    })();
    let (source, loaded, plan) = match result {
        Ok(x) => x,
        Err(code) => return code,
    };
    match args.output {
        PlanOutput::Json => match serde_json::to_string_pretty(&plan.to_json()) {
            Ok(s) => out!("{s}"),
            Err(e) => {
                eprintln!("berth: {e}");
                return exit::BAD_INPUT;
            }
        },
        PlanOutput::Yaml => match serde_yaml::to_string(&plan.to_json()) {
            Ok(s) => out_raw(s.as_bytes()),
            Err(e) => {
                eprintln!("berth: {e}");
                return exit::BAD_INPUT;
            }
        },
        PlanOutput::Text => out_raw(render_plan(&source.name, &plan, &loaded.pipeline).as_bytes()),
    }
    exit::OK
}

/// The human plan: stages in order, each job with what decides when it runs.
pub fn render_plan(file: &str, plan: &Plan, pipeline: &pipeline::Pipeline) -> String {
    let mut out = String::new();
    let stages_used: Vec<&str> = plan
        .stages
        .iter()
        .filter(|s| plan.jobs.iter().any(|j| &j.job.stage == *s))
        .map(|s| s.as_str())
        .collect();
    out.push_str(&format!(
        "{file}: {} job{} in {} stage{}\n",
        plan.jobs.len(),
        if plan.jobs.len() == 1 { "" } else { "s" },
        stages_used.len(),
        if stages_used.len() == 1 { "" } else { "s" }
    ));
    let width = plan
        .jobs
        .iter()
        .map(|j| j.job.name.len())
        .max()
        .unwrap_or(0);
    for stage in stages_used {
        out.push_str(&format!("\nstage {stage}\n"));
        for pj in plan.jobs.iter().filter(|j| j.job.stage == stage) {
            let mut notes = Vec::new();
            if let Some(needs) = &pj.job.needs {
                if needs.is_empty() {
                    notes.push("needs nothing".to_string());
                } else {
                    let names: Vec<&str> = needs.iter().map(|n| n.job.as_str()).collect();
                    notes.push(format!("needs {}", names.join(", ")));
                }
            }
            if pj.job.when != pipeline::When::OnSuccess {
                notes.push(format!("when {}", pj.job.when.as_str()));
            }
            if let Some(d) = pj.job.start_in {
                notes.push(format!("starts after {}", pipeline::duration::human(d)));
            }
            if let Some(why) = &pj.job.reason {
                notes.push(why.clone());
            }
            if let Some(pipeline::Trigger::Child { files, .. }) = &pj.job.trigger {
                notes.push(format!("child pipeline {}", files.join(", ")));
            }
            if let Some(pipeline::Trigger::Other { what }) = &pj.job.trigger {
                notes.push(format!("triggers {what}: skipped locally"));
            }
            if !pj.run {
                notes.push("not run unless named".into());
            }
            if pj.job.allow_failure != pipeline::AllowFailure::No {
                notes.push("may fail".into());
            }
            if pj.job.retry > 0 {
                notes.push(format!("retry {}", pj.job.retry));
            }
            if let Some(t) = pj.job.timeout {
                notes.push(format!("timeout {}", pipeline::duration::human(t)));
            }
            match &pj.job.image {
                Some(pipeline::Image::Name { name, .. }) => notes.push(format!("image {name}")),
                Some(pipeline::Image::Build { context, .. }) => {
                    notes.push(format!("image built from {context}"))
                }
                None => {}
            }
            let line = format!("  {:width$}  {}", pj.job.name, notes.join("; "));
            out.push_str(line.trim_end());
            out.push('\n');
        }
    }
    if !pipeline.left_out.is_empty() {
        out.push_str("\nnot in this pipeline\n");
        let width = pipeline
            .left_out
            .iter()
            .map(|l| l.name.len())
            .max()
            .unwrap_or(0);
        for l in &pipeline.left_out {
            out.push_str(&format!("  {:width$}  {}\n", l.name, l.reason));
        }
    }
    out
}

async fn cmd_run(
    cli: &Cli,
    args: &RunArgs,
    mode: RunMode,
    replay: Option<engine::Replay>,
    hostname: Option<String>,
) -> i32 {
    let target = match (mode, args.jobs.as_slice()) {
        (RunMode::Run | RunMode::Lock | RunMode::Verify, _) => None,
        (_, [one]) => Some(one.clone()),
        _ => {
            eprintln!(
                "berth: `berth {}` takes exactly one job",
                if mode == RunMode::Debug {
                    "debug"
                } else {
                    "shell"
                }
            );
            return exit::BAD_INPUT;
        }
    };
    let project = match project_dir(cli) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let engine = connect_soon();
    let (run_id, pipeline_id) = runs::new_run_id();
    let (source, mut loaded, context) = match load(cli, &project, &args.origin, pipeline_id) {
        Ok(x) => x,
        Err(code) => return code,
    };
    // Child pipelines run as part of this run.
    if let Err(failed) = pipeline::flatten_children(
        &mut loaded.pipeline,
        &pipeline_context(&context, &args.origin),
    ) {
        return report_failed(&failed, &source);
    }
    // A lock covers manual jobs' images too.
    let plan = match make_plan(&loaded, &args.jobs, args.manual || mode == RunMode::Lock) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let loaded_run = LoadedRun {
        project,
        source,
        loaded,
        plan,
        context,
        run_id,
        engine,
    };
    execute(args, loaded_run, mode, target, replay, hostname).await
}

/// A pipeline read and planned for a run.
struct LoadedRun {
    project: PathBuf,
    source: Source,
    loaded: Loaded,
    plan: Plan,
    context: Context,
    run_id: String,
    /// The engine, connecting while the pipeline was read and planned.
    engine: tokio::task::JoinHandle<Result<Engine, crate::docker::DockerError>>,
}

/// Run a plan: the engine, the reporters, the run record; `run`, `debug`, `shell`, `replay`
/// and `warm` share it.
async fn execute(
    args: &RunArgs,
    run: LoadedRun,
    mode: RunMode,
    target: Option<String>,
    replay: Option<engine::Replay>,
    hostname: Option<String>,
) -> i32 {
    let LoadedRun {
        project,
        source,
        loaded,
        plan,
        context,
        run_id,
        engine,
    } = run;
    // A shell takes the terminal: one job at a time, plain lines around it.
    let interactive = matches!(mode, RunMode::Debug | RunMode::Shell) || args.shell_on_failure;
    let hermetic = if args.hermetic || loaded.pipeline.hermetic || mode == RunMode::Verify {
        let lock = match crate::lock::Lockfile::load(&project) {
            Ok(l) => l,
            Err(e) => {
                eprintln!("berth: {e}");
                return exit::BAD_INPUT;
            }
        };
        if lock.is_none() && mode == RunMode::Run {
            eprintln!(
                "berth: a hermetic run uses only locked images, and there is no {}: `berth lock` writes it",
                crate::lock::FILE
            );
            return exit::BAD_INPUT;
        }
        // Without a commit, the pipeline file's time stands for the sources' time.
        let epoch = context.commit_epoch.unwrap_or_else(|| {
            std::fs::metadata(&source.path)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map(|d| d.as_secs())
                .unwrap_or(0)
        });
        Some(engine::Hermetic {
            source_date_epoch: epoch,
            lock: lock.map(std::sync::Arc::new),
        })
    } else {
        None
    };
    let engine = match engine.await {
        Ok(Ok(e)) => e,
        Ok(Err(e)) => return engine_unreachable(e),
        Err(e) => {
            return engine_unreachable(crate::docker::DockerError::Unreachable(e.to_string()))
        }
    };
    let secrets = match read_secrets(&args.secrets) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("berth: {e}");
            return exit::BAD_INPUT;
        }
    };
    let config_commit = context.commit_sha.clone();
    let (config_branch, config_tag, config_source) = (
        context.branch.clone(),
        context.tag.clone(),
        context.source.clone(),
    );
    let config_dirty = context.dirty;
    let runs = match crate::state::check(&project).and_then(|()| Runs::create(&project)) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("berth: {e}");
            return exit::BAD_INPUT;
        }
    };
    for id in runs.settle_abandoned() {
        eprintln!(
            "berth: run {id} ended without finishing its record (its berth is gone); marked {}",
            runs::ABANDONED
        );
    }
    if let Err(e) = runs.prune(args.keep_runs.saturating_sub(1)) {
        eprintln!(
            "berth: cannot prune old runs in {}: {e}",
            runs.dir().display()
        );
    }
    if mode == RunMode::Lock {
        let run_dir = runs.path(&run_id);
        let config = lock_config(&project, &source, &loaded, context, run_id, run_dir, args);
        return write_lock(&plan, config, engine, &project).await;
    }
    // The snapshot lives as long as the run: every job unpacks the same tree.
    let snapshot = match args.workspace {
        WorkspaceMode::Mount => None,
        WorkspaceMode::Copy => {
            let tar = match tempfile::Builder::new()
                .prefix("berth-workspace-")
                .suffix(".tar")
                .tempfile()
            {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("berth: cannot create the workspace snapshot: {e}");
                    return exit::DOCKER;
                }
            };
            let prefix = context.container_dir.trim_start_matches('/').to_string();
            let (dir, path) = (project.clone(), tar.path().to_path_buf());
            let written = tokio::task::spawn_blocking(move || {
                workspace::write_tar(&dir, Selection::Checkout, &prefix, &path)
            })
            .await;
            match written {
                Ok(Ok(_)) => Some(tar),
                Ok(Err(e)) => {
                    eprintln!("berth: cannot snapshot {}: {e}", project.display());
                    return exit::BAD_INPUT;
                }
                Err(e) => {
                    eprintln!("berth: cannot snapshot {}: {e}", project.display());
                    return exit::BAD_INPUT;
                }
            }
        }
    };
    // Claimed once nothing before the run can fail, so that no record is left without a
    // manifest; held until the run ends: tells a later berth that it is still being written.
    let (run_id, run_dir, _live) = match runs.claim(run_id) {
        Ok(claimed) => claimed,
        Err(e) => {
            eprintln!("berth: {e}");
            return exit::BAD_INPUT;
        }
    };
    let workspace = match &snapshot {
        Some(t) => Workspace::Copy {
            tar: t.path().to_path_buf(),
        },
        None => Workspace::Mount,
    };
    let config = RunConfig {
        run_id,
        pipeline_name: source.name.clone(),
        jobs_limit: if interactive { 1 } else { args.parallel },
        workspace,
        context,
        pipeline_variables: loaded.pipeline.variables.clone(),
        overrides: args.origin.env.iter().chain(&secrets).cloned().collect(),
        default_image: args.default_image.clone(),
        run_dir,
        no_cache: args.no_cache,
        python_cache: !args.python.no_python_cache,
        offline: args.python.network == NetworkMode::None,
        service_timeout: args.service_timeout,
        // Only `artifacts: untracked` needs the list of tracked files.
        debug: match mode {
            RunMode::Debug => Some(engine::debug::Debug {
                job: target.clone(),
                keep: args.keep,
            }),
            RunMode::Run if args.shell_on_failure => Some(engine::debug::Debug {
                job: None,
                keep: args.keep,
            }),
            _ => None,
        },
        shell_job: if mode == RunMode::Shell {
            target.clone()
        } else {
            None
        },
        replay: replay.map(std::sync::Arc::new),
        hermetic,
        hostname,
        tracked: std::sync::Arc::new(
            if plan
                .jobs
                .iter()
                .any(|j| j.job.artifacts.as_ref().is_some_and(|a| a.untracked))
            {
                git_tracked(&project)
            } else {
                Default::default()
            },
        ),
        info: RunInfo {
            berth_version: env!("CARGO_PKG_VERSION").to_string(),
            engine_version: engine.version().to_string(),
            pipeline_file: source.path.display().to_string(),
            pipeline_sha256: {
                use sha2::{Digest, Sha256};
                hex::encode(Sha256::digest(source.text.as_bytes()))
            },
            commit: config_commit.clone(),
            dirty: config_dirty,
            branch: config_branch,
            tag: config_tag,
            source: config_source,
            started_at: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
        },
    };

    let cancel = CancellationToken::new();
    watch_signals(cancel.clone());
    let hidden = secrets
        .iter()
        .map(|(_, v)| v.clone())
        .chain(masked_values(&plan, &config, &args.masks))
        .collect();
    let (sink, mut rx) = Sink::masking(1024, hidden);
    // berth's own error below is masked as the events are (an image name can hold a secret).
    let mask = sink.mask();
    let live = match args.output {
        _ if interactive => false,
        Output::Auto => std::io::stderr().is_terminal(),
        Output::Plain | Output::Json => false,
        Output::Terminal => true,
    };
    let display: Box<dyn Reporter> = if args.output == Output::Json {
        Box::new(Json::new(std::io::stdout()))
    } else if live {
        Box::new(Terminal::new(args.verbose))
    } else {
        Box::new(Plain::new(std::io::stderr()))
    };
    let mut reporters = vec![
        display,
        Box::new(Records::new(config.run_dir.clone())) as Box<dyn Reporter>,
    ];
    if let Some(path) = &args.junit {
        reporters.push(Box::new(Junit::new(path.clone())));
    }
    let mut reporter = Fanout(reporters);
    let reporting = tokio::spawn(async move {
        while let Some(event) = rx.recv().await {
            reporter.handle(&event);
        }
    });
    let result = engine::run(&plan, config, engine, sink, cancel.clone()).await;
    let _ = reporting.await;
    drop(snapshot);
    match result {
        Ok(r) => match r.status {
            RunStatus::Passed => exit::OK,
            RunStatus::Failed => exit::JOB_FAILED,
            RunStatus::Error => exit::DOCKER,
            RunStatus::Interrupted => exit::INTERRUPTED,
        },
        Err(e) => {
            eprintln!("berth: {}", mask.masked(&e.to_string()));
            if cancel.is_cancelled() {
                exit::INTERRUPTED
            } else {
                match e {
                    RunError::Image { .. } | RunError::Docker(_) => exit::DOCKER,
                    RunError::Lock(_) | RunError::Input(_) => exit::BAD_INPUT,
                }
            }
        }
    }
}

/// What `berth lock` needs of a run's configuration: no workspace, no record, nothing run.
fn lock_config(
    project: &Path,
    source: &Source,
    loaded: &Loaded,
    context: Context,
    run_id: String,
    run_dir: PathBuf,
    args: &RunArgs,
) -> RunConfig {
    RunConfig {
        run_id,
        pipeline_name: source.name.clone(),
        jobs_limit: 1,
        workspace: Workspace::Mount,
        context,
        pipeline_variables: loaded.pipeline.variables.clone(),
        overrides: args.origin.env.clone(),
        default_image: args.default_image.clone(),
        run_dir,
        no_cache: true,
        python_cache: false,
        offline: false,
        service_timeout: args.service_timeout,
        debug: None,
        shell_job: None,
        replay: None,
        hermetic: None,
        hostname: None,
        tracked: Default::default(),
        info: RunInfo {
            pipeline_file: project.join(&source.name).display().to_string(),
            ..Default::default()
        },
    }
}

/// `berth lock`: every image of the pipeline present (pulled or built) and pinned.
async fn write_lock(plan: &Plan, config: RunConfig, engine: Engine, project: &Path) -> i32 {
    let (sink, mut rx) = Sink::masking(1024, Vec::new());
    let mut plain = Plain::new(std::io::stderr());
    let reporting = tokio::spawn(async move {
        while let Some(event) = rx.recv().await {
            plain.handle(&event);
        }
    });
    let resolved = engine::resolve_images(plan, config, engine, sink).await;
    let _ = reporting.await;
    let images = match resolved {
        Ok(images) => images,
        Err(e) => {
            eprintln!("berth: {e}");
            return exit::DOCKER;
        }
    };
    let mut lock = crate::lock::Lockfile {
        version: 1,
        ..Default::default()
    };
    for (name, id, digests) in images {
        out!("{name}  {id}");
        lock.images.insert(
            name,
            crate::lock::Locked {
                id,
                digest: digests.into_iter().next(),
            },
        );
    }
    match lock.save(project) {
        Ok(()) => {
            eprintln!(
                "berth: wrote {} ({} images)",
                crate::lock::FILE,
                lock.images.len()
            );
            exit::OK
        }
        Err(e) => {
            eprintln!("berth: cannot write {}: {e}", crate::lock::FILE);
            exit::BAD_INPUT
        }
    }
}

/// `berth verify`: the same jobs twice, hermetic, with another hostname and a later start;
/// every artifact file that differs is listed, with a short diff for text. Exit 1 when the build
/// is not reproducible.
async fn cmd_verify(cli: &Cli, args: &RunArgs) -> i32 {
    let runs = match open_runs(cli) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let mut ids = Vec::new();
    for (i, host) in ["berth-verify-a", "berth-verify-b"].into_iter().enumerate() {
        let started = std::time::Instant::now();
        eprintln!("berth: verify: run {} of 2 (hostname {host})", i + 1);
        let before = runs.ids();
        let code = cmd_run(cli, args, RunMode::Verify, None, Some(host.to_string())).await;
        if code != exit::OK {
            eprintln!(
                "berth: verify: run {} did not pass (exit {code}); nothing to compare",
                i + 1
            );
            return code;
        }
        match runs.ids().into_iter().find(|r| !before.contains(r)) {
            Some(id) => ids.push(id),
            None => {
                eprintln!("berth: verify: run {} left no record", i + 1);
                return exit::DOCKER;
            }
        }
        // The second run starts in another second, so that the time shows if it leaks in.
        if let Some(rest) = std::time::Duration::from_millis(1100).checked_sub(started.elapsed()) {
            tokio::time::sleep(rest).await;
        }
    }
    let load = |id: &str| records::Manifest::load(&runs.path(id));
    let (a, b) = match (load(&ids[0]), load(&ids[1])) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("berth: verify: {e}");
            return exit::DOCKER;
        }
    };
    match crate::verify::compare((&runs.path(&ids[0]), &a), (&runs.path(&ids[1]), &b)) {
        Ok(diffs) if diffs.is_empty() => {
            let files: usize = a.jobs.iter().filter(|j| j.artifacts.is_some()).count();
            out!(
                "reproducible: runs {} and {} gave the same artifacts ({files} job{} with artifacts)",
                ids[0],
                ids[1],
                if files == 1 { "" } else { "s" }
            );
            exit::OK
        }
        Ok(diffs) => {
            out!(
                "not reproducible: {} file{} differ between runs {} and {}",
                diffs.len(),
                if diffs.len() == 1 { "" } else { "s" },
                ids[0],
                ids[1]
            );
            for d in diffs {
                out!("  {}: {}: {}", d.job, d.path, d.what);
                for line in d.diff {
                    out!("      {line}");
                }
            }
            exit::JOB_FAILED
        }
        Err(e) => {
            eprintln!("berth: verify: {e}");
            exit::DOCKER
        }
    }
}

/// `berth replay`: check what drifted since the recorded run, then run its jobs again with the
/// recorded environments in the recorded images.
async fn cmd_replay(cli: &Cli, args: &ReplayArgs) -> i32 {
    let runs = match open_runs(cli) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let (run, jobs): (Option<&str>, Vec<String>) = match args.names.split_first() {
        Some((first, rest)) if runs.has(first) => (Some(first.as_str()), rest.to_vec()),
        _ => (None, args.names.clone()),
    };
    let (_, run_id, manifest) = match load_run(cli, run) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let selected: Vec<&records::JobRecord> = manifest
        .jobs
        .iter()
        .filter(|j| {
            if jobs.is_empty() {
                j.started_at.is_some()
            } else {
                jobs.contains(&j.name)
            }
        })
        .collect();
    let unknown: Vec<&String> = jobs
        .iter()
        .filter(|n| !manifest.jobs.iter().any(|j| &j.name == *n))
        .collect();
    if !unknown.is_empty() || selected.is_empty() {
        eprintln!(
            "berth: run {run_id} has no recorded job {}",
            if unknown.is_empty() {
                "that ran".to_string()
            } else {
                unknown
                    .iter()
                    .map(|n| format!("`{n}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        );
        return exit::BAD_INPUT;
    }
    let (project, engine) = match project_and_engine(cli).await {
        Ok(x) => x,
        Err(code) => return code,
    };

    // What changed since the run.
    let mut drift = Vec::new();
    let now = Context::new(&project, 0);
    if now.commit_sha != manifest.commit {
        drift.push(format!(
            "the commit is {}, the run was at {}",
            short(&now.commit_sha),
            short(&manifest.commit)
        ));
    }
    if now.dirty {
        drift.push("the working tree has uncommitted changes".to_string());
    }
    let file = cli.file.clone().or_else(|| Source::discover(&project));
    match file.as_deref().map(std::fs::read) {
        Some(Ok(bytes)) => {
            use sha2::{Digest, Sha256};
            if hex::encode(Sha256::digest(&bytes)) != manifest.pipeline_sha256 {
                drift.push(format!(
                    "the pipeline file {} changed since the run",
                    manifest.pipeline
                ));
            }
        }
        _ => drift.push(format!("the pipeline file {} is gone", manifest.pipeline)),
    }
    let mut secrets = std::collections::BTreeSet::new();
    let mut replay = engine::Replay::default();
    for job in &selected {
        match &job.image_id {
            Some(id) => match engine.image_id(&job.image).await {
                Ok(Some(current)) if &current == id => {}
                Ok(Some(current)) => drift.push(format!(
                    "job `{}`: image {} is now {}, the run used {}",
                    job.name,
                    job.image,
                    short_id(&current),
                    short_id(id)
                )),
                Ok(None) => match engine.image_id(id).await {
                    Ok(Some(_)) => {}
                    _ => drift.push(format!(
                        "job `{}`: the image it ran in ({}, {}) is no longer present",
                        job.name,
                        job.image,
                        short_id(id)
                    )),
                },
                Err(e) => {
                    eprintln!("berth: {e}");
                    return exit::DOCKER;
                }
            },
            None => drift.push(format!("job `{}`: the record names no image ID", job.name)),
        }
        let mut env = Vec::new();
        for (k, v) in &job.variables {
            if v == crate::events::MASK {
                match std::env::var(k) {
                    Ok(value) => {
                        secrets.insert(k.clone());
                        env.push((k.clone(), value));
                    }
                    Err(_) => drift.push(format!(
                        "job `{}`: secret {k} is not set in berth's environment",
                        job.name
                    )),
                }
            } else {
                env.push((k.clone(), v.clone()));
            }
        }
        replay.jobs.insert(
            job.name.clone(),
            engine::ReplayJob {
                env,
                image: job.image_id.clone(),
            },
        );
    }
    if !drift.is_empty() {
        let verb = if args.allow_drift {
            "replaying anyway"
        } else {
            "refusing to replay"
        };
        eprintln!("berth: run {run_id} drifted ({verb}):");
        for d in &drift {
            eprintln!("  - {d}");
        }
        if !args.allow_drift {
            eprintln!("berth: --allow-drift replays it as it is now");
            return exit::BAD_INPUT;
        }
    }
    let run_args = RunArgs {
        jobs: selected.iter().map(|j| j.name.clone()).collect(),
        parallel: default_parallelism(),
        origin: OriginArgs {
            branch: manifest.branch.clone(),
            tag: manifest.tag.clone(),
            source: if manifest.source.is_empty() {
                "push".into()
            } else {
                manifest.source.clone()
            },
            env: Vec::new(),
        },
        workspace: WorkspaceMode::Copy,
        manual: true,
        no_cache: false,
        service_timeout: std::time::Duration::from_secs(30),
        output: args.output,
        verbose: false,
        junit: None,
        secrets: secrets.into_iter().collect(),
        masks: Vec::new(),
        keep_runs: 20,
        default_image: "alpine:latest".into(),
        shell_on_failure: false,
        keep: false,
        hermetic: false,
        python: PythonRunArgs {
            network: NetworkMode::Default,
            no_python_cache: false,
        },
    };
    cmd_run(cli, &run_args, RunMode::Run, Some(replay), None).await
}

fn short(sha: &str) -> &str {
    &sha[..sha.len().min(8)]
}

fn short_id(id: &str) -> &str {
    let id = id.strip_prefix("sha256:").unwrap_or(id);
    &id[..id.len().min(12)]
}

/// The name of the variable in which a pipeline file lists the variables to mask (a berth
/// extension: GitLab masks variables in the project's settings, its YAML has no way to).
pub const MASK_LIST: &str = "BERTH_MASK";

/// The values to mask of the variables named by `--mask` or by a job's `BERTH_MASK` (names
/// separated by spaces or commas), as each job that runs would see them.
fn masked_values(plan: &Plan, config: &engine::RunConfig, masks: &[String]) -> Vec<String> {
    let mut values = Vec::new();
    for pj in plan.jobs.iter().filter(|pj| pj.run) {
        let env = vars::job_env(
            &config.context,
            &config.pipeline_variables,
            &pj.job,
            0,
            &[],
            &config.overrides,
        );
        let value_of = |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v);
        let listed = value_of(MASK_LIST).map(|list| mask_names(list));
        for name in masks
            .iter()
            .map(String::as_str)
            .chain(listed.iter().flatten().copied())
        {
            if let Some(v) = value_of(name) {
                if !values.contains(v) {
                    values.push(v.clone());
                }
            }
        }
    }
    values
}

fn mask_names(list: &str) -> Vec<&str> {
    list.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|n| !n.is_empty())
        .collect()
}

/// `--secret NAME` (from the environment) or `NAME=@FILE` (from a file) as (name, value).
fn read_secrets(specs: &[String]) -> Result<Vec<(String, String)>, String> {
    specs
        .iter()
        .map(|spec| match spec.split_once("=@") {
            Some((name, file)) => std::fs::read_to_string(file)
                .map(|v| {
                    (
                        name.to_string(),
                        v.trim_end_matches(['\n', '\r']).to_string(),
                    )
                })
                .map_err(|e| format!("secret `{name}`: cannot read {file}: {e}")),
            None => std::env::var(spec).map(|v| (spec.clone(), v)).map_err(|_| {
                format!("secret `{spec}` is not set in the environment (or use {spec}=@FILE)")
            }),
        })
        .collect()
}

/// The files git tracks in the project, relative to it (empty outside a repository).
fn git_tracked(project: &Path) -> std::collections::HashSet<String> {
    if !crate::vars::in_git_repo(project) {
        return Default::default();
    }
    std::process::Command::new("git")
        .args(["ls-files", "-z"])
        .current_dir(project)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| {
            o.stdout
                .split(|b| *b == 0)
                .filter(|p| !p.is_empty())
                .map(|p| String::from_utf8_lossy(p).into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// The project's run store, for reading.
fn open_runs(cli: &Cli) -> Result<Runs, i32> {
    Runs::open(&project_dir(cli)?).map_err(|e| {
        eprintln!("berth: {e}");
        exit::BAD_INPUT
    })
}

/// The run record a command is about: its id and manifest (default: the latest run).
fn load_run(cli: &Cli, given: Option<&str>) -> Result<(PathBuf, String, records::Manifest), i32> {
    let runs = open_runs(cli)?;
    let run = runs.pick(given).map_err(|e| {
        eprintln!("berth: {e}");
        exit::BAD_INPUT
    })?;
    let manifest = records::Manifest::load(&runs.path(&run)).map_err(|e| {
        eprintln!("berth: {e}");
        exit::BAD_INPUT
    })?;
    Ok((runs.path(&run), run, manifest))
}

fn cmd_runs(cli: &Cli) -> i32 {
    let runs = match open_runs(cli) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    out!(
        "{:<22} {:<14} {:<12} {:>9}  PIPELINE",
        "RUN",
        "WHEN",
        "STATUS",
        "DURATION"
    );
    for id in runs.ids().iter().rev() {
        match records::Manifest::load(&runs.path(id)) {
            Ok(m) => out!(
                "{:<22} {:<14} {:<12} {:>9}  {}",
                id,
                format!(
                    "{} ago",
                    pipeline::duration::human(std::time::Duration::from_secs(
                        now.saturating_sub(m.started_at)
                    ))
                ),
                m.status,
                pipeline::duration::human(std::time::Duration::from_millis(m.duration_ms)),
                m.pipeline
            ),
            Err(_) => out!("{id:<22} {:<14} {:<12} {:>9}", "-", "no record", "-"),
        }
    }
    exit::OK
}

fn cmd_logs(cli: &Cli, names: &[String]) -> i32 {
    let (run, job) = match names {
        [job] => (None, job),
        [run, job] => (Some(run.as_str()), job),
        _ => return exit::BAD_INPUT,
    };
    let (dir, run, manifest) = match load_run(cli, run) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let Some(record) = manifest.jobs.iter().find(|j| &j.name == job) else {
        eprintln!("berth: run {run} has no job `{job}`");
        return exit::BAD_INPUT;
    };
    match runs::open_in_record(&dir, &record.log) {
        Ok(mut f) => {
            let _ = std::io::copy(&mut f, &mut std::io::stdout());
            exit::OK
        }
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            eprintln!("berth: run {run}: the log of `{job}`: {e}");
            exit::BAD_INPUT
        }
        Err(_) => {
            eprintln!("berth: job `{job}` printed nothing in run {run}");
            exit::OK
        }
    }
}

fn cmd_show(cli: &Cli, run: Option<&str>) -> i32 {
    let (_, _, m) = match load_run(cli, run) {
        Ok(x) => x,
        Err(code) => return code,
    };
    out!("run {} of {}: {}", m.run_id, m.pipeline, m.status);
    out!(
        "berth {}, engine {}, commit {}{}, pipeline sha256 {}",
        m.berth_version,
        m.engine_version,
        m.commit,
        if m.dirty { " (dirty)" } else { "" },
        &m.pipeline_sha256[..m.pipeline_sha256.len().min(16)]
    );
    let w = m.jobs.iter().map(|j| j.name.len()).max().unwrap_or(0);
    for j in &m.jobs {
        let d = j
            .duration_ms
            .map(|ms| pipeline::duration::human(std::time::Duration::from_millis(ms)))
            .unwrap_or_else(|| "-".into());
        out!(
            "  {:<10} {:w$}  {:<16} {:>8}  {}",
            j.stage,
            j.name,
            j.status,
            d,
            j.image
        );
    }
    if m.critical_path.len() > 1 {
        out!("critical path: {}", m.critical_path.join(" -> "));
    }
    out!(
        "total {}",
        pipeline::duration::human(std::time::Duration::from_millis(m.duration_ms))
    );
    exit::OK
}

/// SIGINT or SIGTERM cancels the run; a second one exits at once.
fn watch_signals(cancel: CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    tokio::spawn(async move {
        let (Ok(mut int), Ok(mut term)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) else {
            return;
        };
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
        cancel.cancel();
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
        crate::report::terminal::restore_terminal();
        eprintln!("\nberth: interrupted again; exiting without cleanup (run `berth prune`)");
        std::process::exit(exit::INTERRUPTED);
    });
}

fn cmd_artifacts(cli: &Cli, args: &ArtifactsArgs) -> i32 {
    use crate::engine::artifacts::{extract, Manifest};
    let runs = match open_runs(cli) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let mut names = args.names.clone();
    // `RUN JOB`, `RUN` or `JOB`: a lone name is a run only when it is one.
    let given = match names.as_slice() {
        [run, _] => Some(run.clone()),
        [one] if runs.has(one) => Some(one.clone()),
        _ => None,
    };
    if given.is_some() {
        names.remove(0);
    }
    let run = match runs.pick(given.as_deref()) {
        Ok(run) => run,
        Err(e) => {
            eprintln!("berth: {e}");
            return exit::BAD_INPUT;
        }
    };
    let job = match names.as_slice() {
        [] => None,
        [job] => Some(job.clone()),
        _ => {
            eprintln!("berth: expected at most a run id and a job name");
            return exit::BAD_INPUT;
        }
    };
    let run_dir = runs.path(&run);
    let dir = run_dir.join("artifacts");
    let mut manifests: Vec<(PathBuf, Manifest)> = Vec::new();
    // Listed only when it is a real folder of the record (not a link the repository brought).
    let mut names: Vec<String> = match crate::state::is_real_dir(&dir) {
        Ok(true) => std::fs::read_dir(&dir)
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .filter_map(|e| e.file_name().into_string().ok())
                    .collect()
            })
            .unwrap_or_default(),
        Ok(false) => Vec::new(),
        Err(e) => {
            eprintln!("berth: {e}");
            return exit::BAD_INPUT;
        }
    };
    names.sort();
    for name in names.into_iter().filter(|n| n.ends_with(".json")) {
        let path = dir.join(&name);
        let read =
            runs::open_in_record(&run_dir, &format!("artifacts/{name}")).and_then(|mut f| {
                let mut bytes = Vec::new();
                std::io::Read::read_to_end(&mut f, &mut bytes).map(|_| bytes)
            });
        match read
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice::<Manifest>(&b).map_err(|e| e.to_string()))
        {
            // A plain file name beside the manifest, never a path elsewhere.
            Ok(m)
                if m.archive.contains('/')
                    || m.archive.starts_with('.')
                    || !std::fs::symlink_metadata(dir.join(&m.archive))
                        .is_ok_and(|f| f.is_file()) =>
            {
                eprintln!(
                    "berth: {}: archive `{}` is not a plain file in the run's directory; skipped",
                    path.display(),
                    m.archive
                )
            }
            Ok(m) => manifests.push((dir.join(&m.archive), m)),
            Err(e) => eprintln!("berth: {}: {e}", path.display()),
        }
    }
    if let Some(job) = &job {
        manifests.retain(|(_, m)| &m.job == job);
        if manifests.is_empty() {
            eprintln!("berth: run {run} stored no artifacts for job `{job}`");
            return exit::BAD_INPUT;
        }
    }
    if let Some(dest) = &args.extract {
        let [(archive, manifest)] = manifests.as_slice() else {
            eprintln!("berth: name the job whose artifacts to extract");
            return exit::BAD_INPUT;
        };
        return match extract(archive, dest) {
            Ok(n) => {
                out!(
                    "extracted {n} entries of `{}` into {}",
                    manifest.job,
                    dest.display()
                );
                exit::OK
            }
            Err(e) => {
                eprintln!("berth: {e}");
                exit::JOB_FAILED
            }
        };
    }
    out!("run {run}");
    for (archive, m) in &manifests {
        out!(
            "{}: {} files, {} bytes ({})",
            m.job,
            m.files.len(),
            m.bytes,
            archive.display()
        );
        if job.is_some() {
            for f in &m.files {
                match (&f.sha256, &f.link) {
                    (_, Some(link)) => out!("  {} -> {link}", f.path),
                    (Some(sha), None) => out!("  {}  {}  {sha}", f.path, f.size),
                    (None, None) => out!("  {}", f.path),
                }
            }
        }
    }
    exit::OK
}

async fn cmd_cache(cli: &Cli, command: &CacheCommand) -> i32 {
    use crate::engine::caches::{cache_labels, Index};
    let (project, engine) = match project_and_engine(cli).await {
        Ok(x) => x,
        Err(code) => return code,
    };
    let filter = format!("{}={}", labels::PROJECT, project.display());
    let volumes = match engine.volumes_with_label(&filter).await {
        Ok(list) => list
            .into_iter()
            .filter(|v| {
                v.labels.contains_key(cache_labels::CACHE)
                    && !v.labels.contains_key(labels::TEMPORARY)
            })
            .collect::<Vec<_>>(),
        Err(e) => {
            eprintln!("berth: {e}");
            return exit::DOCKER;
        }
    };
    let mut index = Index::load(&project);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let label =
        |v: &crate::docker::ObjectInfo, k: &str| v.labels.get(k).cloned().unwrap_or_default();
    let to_remove: Vec<&crate::docker::ObjectInfo> = match command {
        CacheCommand::Ls => {
            out!(
                "{:<28} {:<20} {:>10}  {:<12} JOBS",
                "KEY",
                "PATH",
                "SIZE",
                "LAST USED"
            );
            for v in &volumes {
                let entry = index.volumes.get(&v.name).cloned().unwrap_or_default();
                let size = match engine.volume_mountpoint(&v.name).await {
                    Ok(dir) => dir_size(Path::new(&dir))
                        .map(human_bytes)
                        .unwrap_or_else(|| "-".into()),
                    Err(_) => "-".into(),
                };
                let last = if entry.last_used == 0 {
                    "-".to_string()
                } else {
                    format!(
                        "{} ago",
                        pipeline::duration::human(std::time::Duration::from_secs(
                            now.saturating_sub(entry.last_used)
                        ))
                    )
                };
                out!(
                    "{:<28} {:<20} {:>10}  {:<12} {}",
                    label(v, cache_labels::KEY),
                    label(v, cache_labels::PATH),
                    size,
                    last,
                    entry.jobs.join(", ")
                );
            }
            return exit::OK;
        }
        CacheCommand::Rm { keys } => {
            let chosen: Vec<_> = volumes
                .iter()
                .filter(|v| keys.contains(&label(v, cache_labels::KEY)))
                .collect();
            for k in keys {
                if !volumes.iter().any(|v| &label(v, cache_labels::KEY) == k) {
                    eprintln!("berth: no cache with key `{k}` in this project");
                }
            }
            chosen
        }
        // Handled by cmd_cache_export / cmd_cache_import.
        CacheCommand::Export { .. } | CacheCommand::Import { .. } => return exit::BAD_INPUT,
        CacheCommand::Prune { older_than } => volumes
            .iter()
            .filter(|v| match older_than {
                None => true,
                Some(age) => {
                    let last = index.volumes.get(&v.name).map(|e| e.last_used).unwrap_or(0);
                    now.saturating_sub(last) >= age.as_secs()
                }
            })
            .collect(),
    };
    let mut failed = false;
    for v in &to_remove {
        match engine.remove_volume(&v.name).await {
            Ok(()) => {
                out!(
                    "removed cache `{}` ({}, volume {})",
                    label(v, cache_labels::KEY),
                    label(v, cache_labels::PATH),
                    v.name
                );
                index.volumes.remove(&v.name);
            }
            Err(e) => {
                eprintln!("berth: cannot remove {}: {e} (is a job using it?)", v.name);
                failed = true;
            }
        }
    }
    if !to_remove.is_empty() {
        if let Err(e) = index.save(&project) {
            eprintln!("berth: cannot update the cache index: {e}");
        }
    }
    if failed {
        exit::DOCKER
    } else {
        exit::OK
    }
}

/// Total size of the files under a directory, when it can be read from here (a local engine).
fn dir_size(dir: &Path) -> Option<u64> {
    let meta = std::fs::symlink_metadata(dir).ok()?;
    if !meta.is_dir() {
        return Some(meta.len());
    }
    let mut total = 0;
    for entry in std::fs::read_dir(dir).ok()? {
        let entry = entry.ok()?;
        total += dir_size(&entry.path()).unwrap_or(0);
    }
    Some(total)
}

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

async fn cmd_prune(cli: &Cli, args: &PruneArgs) -> i32 {
    let project = if args.all {
        None
    } else {
        match project_dir(cli) {
            Ok(p) => Some(p.display().to_string()),
            Err(code) => return code,
        }
    };
    let engine = match connect().await {
        Ok(e) => e,
        Err(code) => return code,
    };
    let scope = engine::owner::PruneScope {
        project: project.as_deref(),
        force: args.force,
    };
    let pruned = match engine::owner::prune(&engine, scope).await {
        Ok(p) => p,
        Err(e) => {
            eprintln!("berth: {e}");
            return exit::DOCKER;
        }
    };
    for p in &pruned.problems {
        eprintln!("berth: {p}");
    }
    out!(
        "removed {} containers, {} networks, {} temporary volumes",
        pruned.containers,
        pruned.networks,
        pruned.volumes
    );
    if !pruned.spared.is_empty() {
        let runs: Vec<&str> = pruned.spared.iter().map(String::as_str).collect();
        out!(
            "left alone: run{} {} (its berth is alive; --force removes it too)",
            if runs.len() == 1 { "" } else { "s" },
            runs.join(", ")
        );
    }
    if pruned.problems.is_empty() {
        exit::OK
    } else {
        exit::DOCKER
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mask_lists_take_spaces_and_commas() {
        assert_eq!(
            mask_names(" API_KEY, DB_PASSWORD\tTOKEN,,"),
            ["API_KEY", "DB_PASSWORD", "TOKEN"]
        );
    }

    #[test]
    fn key_values() {
        assert_eq!(parse_key_value("A=b=c"), Ok(("A".into(), "b=c".into())));
        assert!(parse_key_value("=x").is_err());
        assert!(parse_key_value("nothing").is_err());
    }

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
