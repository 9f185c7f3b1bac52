//! `berth lock`: every image of the pipeline present and pinned to its ID in berth.lock.

use std::path::{Path, PathBuf};

use crate::docker::Engine;
use crate::engine::{self, RunConfig, Workspace};
use crate::events::{RunInfo, Sink};
use crate::pipeline::Loaded;
use crate::plan::Plan;
use crate::project::git::Facts;
use crate::report::{plain::Plain, Reporter};
use crate::source::Source;

use super::args::RunArgs;
use super::exit;

/// What `berth lock` needs of a run's configuration: no workspace, no record, nothing run.
pub(super) fn lock_config(
    project: &Path,
    source: &Source,
    loaded: &Loaded,
    context: Facts,
    run_id: String,
    run_dir: PathBuf,
    args: &RunArgs,
) -> RunConfig {
    RunConfig {
        run_id,
        pipeline_name: source.name.clone(),
        jobs_limit: 1,
        workspace: Workspace::Mount,
        environment: super::setup::environment(loaded, &context),
        context,
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
pub(super) async fn write_lock(
    plan: &Plan,
    config: RunConfig,
    engine: Engine,
    project: &Path,
) -> i32 {
    let (sink, mut rx) = Sink::masking(1024, Vec::new());
    let mut plain = Plain::new(std::io::stderr());
    let reporting = tokio::spawn(async move {
        while let Some(event) = rx.recv().await {
            plain.handle(&event);
        }
    });
    let resolved = engine::resolve_images(plan, config, std::sync::Arc::new(engine), sink).await;
    let _ = reporting.await;
    let images = match resolved {
        Ok(images) => images,
        Err(e) => {
            eprintln!("berth: {e}");
            return exit::DOCKER;
        }
    };
    let mut lock = crate::project::lock::Lockfile {
        version: 1,
        ..Default::default()
    };
    for (name, id, digests) in images {
        out!("{name}  {id}");
        lock.images.insert(
            name,
            crate::project::lock::Locked {
                id,
                digest: digests.into_iter().next(),
            },
        );
    }
    match lock.save(project) {
        Ok(()) => {
            eprintln!(
                "berth: wrote {} ({} images)",
                crate::project::lock::FILE,
                lock.images.len()
            );
            exit::OK
        }
        Err(e) => {
            eprintln!("berth: cannot write {}: {e}", crate::project::lock::FILE);
            exit::BAD_INPUT
        }
    }
}
