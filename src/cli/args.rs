//! The clap definition of berth's command line: commands, their options and defaults.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

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
    pub(super) project: Option<PathBuf>,
    /// The pipeline file [default: berth.yml, else .gitlab-ci.yml, in the project directory]
    #[arg(short = 'f', long = "file", global = true, value_name = "FILE")]
    pub(super) file: Option<PathBuf>,
    #[command(subcommand)]
    pub(super) command: Command,
}

#[derive(Debug, Subcommand)]
pub(super) enum Command {
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
    /// The actions GitHub workflows use: `pull` fetches every remote one into the action cache
    #[command(subcommand)]
    Actions(ActionsCommand),
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
pub(super) enum ActionsCommand {
    /// Fetch every remote action (`owner/repo[/path]@ref`) the workflows name, once, with git,
    /// into the action cache (BERTH_ACTIONS_CACHE, default ~/.cache/berth/actions), from
    /// BERTH_ACTIONS_URL (default https://github.com); later runs need no network for them
    Pull,
}

#[derive(Debug, Subcommand)]
pub(super) enum CacheCommand {
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
    crate::gitlab::duration::parse(s)
}

#[derive(Debug, clap::Args)]
pub(super) struct ArtifactsArgs {
    /// A run id (default: the latest run) and/or a job name
    #[arg(value_name = "RUN|JOB")]
    pub(super) names: Vec<String>,
    /// Unpack the job's artifacts into DIR
    #[arg(long, value_name = "DIR")]
    pub(super) extract: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub(super) struct ReplayArgs {
    /// A run id (default: the latest run) and/or the jobs to replay (default: every job that ran)
    #[arg(value_name = "RUN|JOB")]
    pub(super) names: Vec<String>,
    /// Replay even when the commit, the tree, the pipeline file or an image has changed since
    #[arg(long)]
    pub(super) allow_drift: bool,
    /// Output format: a live view on a terminal (auto), or plain lines
    #[arg(long, value_enum, default_value_t = Output::Auto)]
    pub(super) output: Output,
}

#[derive(Debug, clap::Args)]
pub(super) struct RunArgs {
    /// Jobs to run (with everything they need); all when none are named
    pub(super) jobs: Vec<String>,
    /// How many jobs may run at once
    #[arg(short = 'j', long = "jobs", value_name = "N", default_value_t = default_parallelism())]
    pub(super) parallel: usize,
    #[command(flatten)]
    pub(super) origin: OriginArgs,
    /// How the project reaches the jobs: a fresh copy each (copy), or bind-mounted read-write
    /// for fast local loops (mount)
    #[arg(long, value_enum, default_value_t = WorkspaceMode::Copy)]
    pub(super) workspace: WorkspaceMode,
    /// Also run manual jobs
    #[arg(long)]
    pub(super) manual: bool,
    /// Run with empty, throwaway caches; stored caches are not touched
    #[arg(long)]
    pub(super) no_cache: bool,
    /// How long a service may take to be ready (healthy, or accepting connections on its ports)
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "30s")]
    pub(super) service_timeout: std::time::Duration,
    /// Output format: a live view on a terminal (auto), or plain lines
    #[arg(long, value_enum, default_value_t = Output::Auto)]
    pub(super) output: Output,
    /// Show every job's full log (the live view otherwise shows the latest line)
    #[arg(short, long)]
    pub(super) verbose: bool,
    /// Also write a JUnit XML report (one test case per job) to FILE
    #[arg(long, value_name = "FILE")]
    pub(super) junit: Option<PathBuf>,
    /// A secret variable for every job, its value from berth's environment (NAME) or a file
    /// (NAME=@FILE); masked as [MASKED] in every log line, event and record. Repeatable
    #[arg(long = "secret", value_name = "NAME[=@FILE]")]
    pub(super) secrets: Vec<String>,
    /// Mask this variable's value (as the jobs see it, from the pipeline file or -e) as
    /// [MASKED] in every log line, event and record; the pipeline file can list names in its
    /// BERTH_MASK variable instead. Repeatable
    #[arg(long = "mask", value_name = "NAME")]
    pub(super) masks: Vec<String>,
    /// How many run records to keep under .berth/runs
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub(super) keep_runs: usize,
    /// The image for jobs that name none
    #[arg(long, value_name = "IMAGE", default_value = "alpine:latest")]
    pub(super) default_image: String,
    #[command(flatten)]
    pub(super) python: PythonRunArgs,
    /// When a job fails, open a shell in its container as it was left (runs one job at a time)
    #[arg(long)]
    pub(super) shell_on_failure: bool,
    /// Keep the failed job's state as an image after the shell ends
    #[arg(long)]
    pub(super) keep: bool,
    /// Run only from berth.lock's images, with no network (services on an internal network
    /// with the job), SOURCE_DATE_EPOCH from the commit, TZ=UTC and a fixed locale
    #[arg(long)]
    pub(super) hermetic: bool,
    /// Run the named jobs alone: the jobs they need are not run again, their artifacts and
    /// dotenv variables are taken from a recorded run (default: the latest)
    #[arg(long, value_name = "RUN", num_args = 0..=1, default_missing_value = "latest")]
    pub(super) from_run: Option<String>,
}

/// What the pipeline runs for, as GitLab would know it from the push.
#[derive(Debug, clap::Args)]
pub(super) struct OriginArgs {
    /// The branch the pipeline is for [default: git's current branch]
    #[arg(long, value_name = "NAME")]
    pub(super) branch: Option<String>,
    /// Make it a tag pipeline for this tag (CI_COMMIT_TAG)
    #[arg(long, value_name = "NAME", conflicts_with = "branch")]
    pub(super) tag: Option<String>,
    /// CI_PIPELINE_SOURCE: push, merge_request_event, schedule, web, api, trigger, ...
    #[arg(long, value_name = "SOURCE", default_value = "push")]
    pub(super) source: String,
    /// Set a variable for every job (highest precedence; rules see it too); may be repeated
    #[arg(short = 'e', long = "env", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub(super) env: Vec<(String, String)>,
    /// GitHub workflows: the event they run for (push, pull_request, workflow_dispatch,
    /// schedule, ...)
    #[arg(long, value_name = "EVENT", default_value = "push")]
    pub(super) event: String,
    /// The branch a GitHub pull request or a GitLab merge request (`--source
    /// merge_request_event`) targets: its `branches` filters, `changes` and path filters
    /// compare with it, CI_MERGE_REQUEST_TARGET_BRANCH_NAME [default: the default branch]
    #[arg(long, value_name = "BRANCH")]
    pub(super) base: Option<String>,
    /// GitLab merge request pipelines: CI_MERGE_REQUEST_TITLE [default: the commit's title]
    #[arg(long, value_name = "TITLE")]
    pub(super) mr_title: Option<String>,
    /// GitLab merge request pipelines: CI_MERGE_REQUEST_IID (and _ID) [default: 1]
    #[arg(long, value_name = "N")]
    pub(super) mr_iid: Option<u64>,
    /// GitLab merge request pipelines: a label of the merge request (CI_MERGE_REQUEST_LABELS);
    /// may be repeated
    #[arg(long = "mr-label", value_name = "LABEL")]
    pub(super) mr_labels: Vec<String>,
    /// The push's before-commit (CI_COMMIT_BEFORE_SHA; `changes:` compare with it)
    /// [default: the upstream branch's tip, else the parent commit]
    #[arg(long, value_name = "REV")]
    pub(super) before: Option<String>,
    /// GitHub workflow_dispatch: an input's value (the `inputs` context); may be repeated
    #[arg(long = "input", value_name = "NAME=VALUE", value_parser = parse_key_value)]
    pub(super) inputs: Vec<(String, String)>,
    /// GitHub workflows: the event's payload, a JSON file (`github.event`, GITHUB_EVENT_PATH)
    /// [default: what GitHub would send for the commit]
    #[arg(long, value_name = "FILE")]
    pub(super) event_payload: Option<PathBuf>,
    /// GitHub workflows: the image a `runs-on` label runs in (as act's -P); may be repeated
    #[arg(long = "platform", value_name = "LABEL=IMAGE", value_parser = parse_key_value)]
    pub(super) platforms: Vec<(String, String)>,
}

impl OriginArgs {
    pub(super) fn origin(&self) -> crate::project::git::Origin {
        crate::project::git::Origin {
            branch: self.branch.clone(),
            tag: self.tag.clone(),
            source: Some(self.source.clone()),
            before: self.before.clone(),
            target: self.base.clone(),
            mr_title: self.mr_title.clone(),
            mr_iid: self.mr_iid,
            mr_labels: self.mr_labels.clone(),
        }
    }
}

/// Options of `berth run` (and `berth warm`) about Python caches and the job network.
#[derive(Debug, clap::Args)]
pub(super) struct PythonRunArgs {
    /// Jobs' network: `default` (a bridge; services on a network of the job's own), or `none`
    /// (no network at all, no services; pip and uv install from their caches only)
    #[arg(long, value_enum, default_value_t = NetworkMode::Default)]
    pub(super) network: NetworkMode,
    /// Do not give jobs that install Python packages their automatic caches
    #[arg(long)]
    pub(super) no_python_cache: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(super) enum NetworkMode {
    Default,
    None,
}

#[derive(Debug, clap::Args)]
pub(super) struct PlanArgs {
    /// Jobs to plan (with everything they need); all when none are named
    pub(super) jobs: Vec<String>,
    #[command(flatten)]
    pub(super) origin: OriginArgs,
    /// Include manual jobs as if they were played
    #[arg(long)]
    pub(super) manual: bool,
    /// Output format
    #[arg(long, value_enum, default_value_t = PlanOutput::Text)]
    pub(super) output: PlanOutput,
}

#[derive(Debug, clap::Args)]
pub(super) struct PruneArgs {
    /// Every project's leftovers on the engine, not only this project's
    #[arg(long)]
    pub(super) all: bool,
    /// Also remove objects of runs whose berth is still alive
    #[arg(long)]
    pub(super) force: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(super) enum WorkspaceMode {
    Copy,
    Mount,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(super) enum Output {
    /// The live view when stderr is a terminal, else plain
    Auto,
    Plain,
    /// The live view
    Terminal,
    /// One JSON object per event per line, on stdout (see docs/events.md)
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(super) enum PlanOutput {
    Text,
    Json,
    Yaml,
}

pub(super) fn default_parallelism() -> usize {
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

#[cfg(test)]
mod tests {
    use super::*;

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
