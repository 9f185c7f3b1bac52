//! Before any job starts: resolve each job's image and environment, and make every image
//! available (present, pulled, or built from `image: {build: DIR}`), so that an image that
//! cannot be had stops the run with nothing started.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::{script, PreparedJob, RunError, Shared, DEFAULT_TIMEOUT};
use crate::engine::runtime::{ImageStep, RuntimeError};
use crate::events::{Event, Sink};
use crate::pipeline::expand;
use crate::pipeline::Image;
use crate::plan::Plan;
use crate::project::paths;
use crate::project::workspace::{self, Selection};

/// How an image is obtained.
#[derive(Debug, Clone)]
enum Source {
    Reference,
    Build {
        context: std::path::PathBuf,
        dockerfile: String,
    },
}

pub(super) async fn prepare(
    plan: &Plan,
    shared: &Arc<Shared>,
    sink: &Sink,
    cancel: &CancellationToken,
) -> Result<Vec<Option<Arc<PreparedJob>>>, RunError> {
    let config = &shared.config;
    // image reference -> (how to get it, first job that uses it)
    let mut needed: BTreeMap<String, (Source, String)> = BTreeMap::new();
    let mut prepared = Vec::with_capacity(plan.jobs.len());
    for (index, pj) in plan.jobs.iter().enumerate() {
        if !pj.run || matches!(pj.job.trigger, Some(crate::pipeline::Trigger::Other { .. })) {
            prepared.push(None);
            continue;
        }
        let job = &pj.job;
        let job_id = config.context.pipeline_id * 1000 + index as u64 + 1;
        let replayed = config.replay.as_ref().and_then(|r| r.jobs.get(&job.name));
        let env = match replayed {
            Some(r) => r.env.clone(),
            None => super::job_env(config, job, job_id),
        };
        let lookup = |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        let (image, entrypoint, source) = match &job.image {
            None => (config.default_image.clone(), None, Source::Reference),
            Some(Image::Name { name, entrypoint }) => (
                expand::expand(name, &lookup, 0),
                entrypoint.clone(),
                Source::Reference,
            ),
            Some(Image::Build {
                context,
                dockerfile,
            }) => {
                let dir = config
                    .context
                    .project_dir
                    .join(expand::expand(context, &lookup, 0));
                let hash = workspace::content_hash(&dir, Selection::BuildContext).map_err(|e| {
                    RunError::Image {
                        job: job.name.clone(),
                        source: RuntimeError::Image {
                            image: format!("build: {context}"),
                            reason: format!("cannot read {}: {e}", dir.display()),
                        },
                    }
                })?;
                let tag = format!(
                    "berth-build/{}:{}",
                    paths::slug(context).to_lowercase(),
                    &hash[..16]
                );
                let dockerfile = dockerfile.clone().unwrap_or_else(|| "Dockerfile".into());
                (
                    tag,
                    None,
                    Source::Build {
                        context: dir,
                        dockerfile,
                    },
                )
            }
        };
        // A replay runs in the very image the record names, whatever the tag says now.
        let (image, source) = match replayed.and_then(|r| r.image.clone()) {
            Some(id) => (id, Source::Reference),
            None => (image, source),
        };
        needed
            .entry(image.clone())
            .or_insert_with(|| (source, job.name.clone()));
        let services = super::services::prepare(&job.services, &env);
        // With no network, services are not started: their images are not needed either.
        for s in services.iter().filter(|_| !config.offline) {
            needed
                .entry(s.image.clone())
                .or_insert_with(|| (Source::Reference, job.name.clone()));
        }
        let cache_mounts = super::caches::mounts(
            &job.caches,
            &env,
            &config.context.project_dir,
            &config.run_id,
            config.no_cache,
        );
        for mount in &cache_mounts {
            super::caches::check_in_project(mount, &config.context.project_dir)
                .map_err(|why| RunError::Input(format!("job `{}`: {why}", job.name)))?;
        }
        let scripts = script::render(&job.before_script, &job.script, &job.after_script);
        let scripts_tar = scripts.to_tar().map_err(|e| {
            RunError::Docker(RuntimeError::Api(format!(
                "cannot write the job's scripts: {e}"
            )))
        })?;
        prepared.push(Some(PreparedJob {
            index,
            name: job.name.clone(),
            stage: job.stage.clone(),
            image,
            entrypoint,
            env,
            scripts_tar,
            timeout: job.timeout.unwrap_or(DEFAULT_TIMEOUT),
            retry: job.retry,
            allow_failure: job.allow_failure.clone(),
            artifacts: job.artifacts.clone(),
            artifacts_from: pj.artifacts_from.clone(),
            caches: cache_mounts,
            services,
            start_in: job
                .start_in
                .filter(|_| job.when == crate::pipeline::When::Delayed),
        }));
    }

    // A hermetic run uses locked images only: nothing unlocked is even pulled.
    let lock = config.hermetic.as_ref().and_then(|h| h.lock.clone());
    if let Some(lock) = &lock {
        for (image, (_, job)) in &needed {
            lock.entry(image)
                .map_err(|e| RunError::Lock(format!("job `{job}`: {e}")))?;
        }
    }
    let locked: Vec<(String, String)> = needed
        .iter()
        .map(|(image, (_, job))| (image.clone(), job.clone()))
        .collect();
    // Image IDs for the record; an ID found is also the proof the image is present.
    let mut ids: BTreeMap<String, Option<String>> = BTreeMap::new();
    for (image, (source, job)) in needed {
        if cancel.is_cancelled() {
            break;
        }
        let wrap = |source: RuntimeError| match source {
            RuntimeError::Unreachable(_) => RunError::Docker(source),
            other => RunError::Image {
                job: job.clone(),
                source: other,
            },
        };
        match source {
            Source::Reference => {
                if let Some(id) = shared.engine.image_id(&image).await.map_err(wrap)? {
                    ids.insert(image, Some(id));
                    continue;
                }
                sink.send(Event::ImagePreparing {
                    image: image.clone(),
                    action: "pulling".into(),
                })
                .await;
                let result = with_progress(sink, &image, |step| {
                    shared.engine.ensure_image(&image, step)
                })
                .await;
                result.map_err(wrap)?;
            }
            Source::Build {
                context,
                dockerfile,
            } => {
                if let Some(id) = shared.engine.image_id(&image).await.map_err(wrap)? {
                    ids.insert(image, Some(id));
                    continue;
                }
                sink.send(Event::ImagePreparing {
                    image: image.clone(),
                    action: format!("building {}", context.display()),
                })
                .await;
                let tar = tempfile::NamedTempFile::new()
                    .map_err(|e| wrap(RuntimeError::Api(e.to_string())))?;
                let ctx = context.clone();
                let tar_path = tar.path().to_path_buf();
                tokio::task::spawn_blocking(move || {
                    workspace::write_tar(&ctx, Selection::BuildContext, "", &tar_path)
                })
                .await
                .map_err(|e| wrap(RuntimeError::Api(e.to_string())))?
                .map_err(|e| {
                    wrap(RuntimeError::Image {
                        image: image.clone(),
                        reason: format!("cannot pack {}: {e}", context.display()),
                    })
                })?;
                let result = with_progress(sink, &image, |step| {
                    shared
                        .engine
                        .build_image(tar.path(), &dockerfile, &image, step)
                })
                .await;
                result.map_err(wrap)?;
            }
        }
    }
    if let Some(lock) = &lock {
        for (image, job) in &locked {
            let current = match ids.get(image).cloned().flatten() {
                Some(id) => Some(id),
                None => shared.engine.image_id(image).await.unwrap_or(None),
            };
            lock.check(image, current.as_deref())
                .map_err(|e| RunError::Lock(format!("job `{job}`: {e}")))?;
        }
    }
    // What each job will run, for the run's record (the sink masks secrets).
    for (pj, job) in plan.jobs.iter().zip(prepared.iter_mut()) {
        let Some(job) = job else { continue };
        if !ids.contains_key(&job.image) {
            let id = shared.engine.image_id(&job.image).await.unwrap_or(None);
            ids.insert(job.image.clone(), id);
        }
        if config.python_cache {
            // Keyed by the image ID: known only now that every image is there.
            let image_id = ids.get(&job.image).cloned().flatten();
            for note in add_python_caches(job, &pj.job, image_id.as_deref(), config) {
                sink.send(Event::Notice {
                    message: format!("job `{}`: {note}", job.name),
                })
                .await;
            }
        }
        let commands = pj
            .job
            .before_script
            .iter()
            .chain(&pj.job.script)
            .chain(&pj.job.after_script)
            .cloned()
            .collect();
        sink.send(Event::JobQueued {
            job: job.name.clone(),
            stage: job.stage.clone(),
            image: job.image.clone(),
            image_id: ids.get(&job.image).cloned().flatten(),
            variables: job.env.clone(),
            commands,
        })
        .await;
    }
    Ok(prepared.into_iter().map(|p| p.map(Arc::new)).collect())
}

/// The automatic Python caches of a job that installs Python packages (see [`super::python`]);
/// returns what the user should know about them.
fn add_python_caches(
    job: &mut PreparedJob,
    source: &crate::pipeline::Job,
    image_id: Option<&str>,
    config: &super::RunConfig,
) -> Vec<String> {
    let tools = super::python::detect(source.before_script.iter().chain(&source.script));
    let ctx = super::python::RunScope {
        project: &config.context.project_dir,
        run_id: &config.run_id,
        temporary: config.no_cache,
        offline: config.offline || config.hermetic.is_some(),
    };
    // Without an ID (an engine that would not say), the reference stands in for it.
    let image_id = image_id.unwrap_or(&job.image);
    let extra = super::python::for_job(&tools, image_id, &job.env, &ctx);
    for m in extra.mounts {
        // A declared cache at the same place wins.
        if !job.caches.iter().any(|c| c.path == m.path) {
            job.caches.push(m);
        }
    }
    job.env.extend(extra.env);
    extra.notes
}

/// Run `work` (a pull or a build), sending each progress step as an event while it goes rather
/// than after: the live view shows it, and a slow pull is not silence.
async fn with_progress<W, F, T>(sink: &Sink, image: &str, work: W) -> T
where
    W: FnOnce(Box<dyn FnMut(ImageStep) + Send>) -> F,
    F: std::future::Future<Output = T>,
{
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    // The callback (and so `tx`) is dropped when `work` completes, which ends the forwarding.
    let work = work(Box::new(move |step| {
        let _ = tx.send(step);
    }));
    let forward = async {
        while let Some(step) = rx.recv().await {
            let ImageStep {
                layer,
                line,
                current,
                total,
            } = step;
            // `line` keeps its meaning from before the layer fields: `LAYER: STATUS` for pulls.
            let line = match &layer {
                Some(layer) => format!("{layer}: {line}"),
                None => line,
            };
            sink.send(Event::ImageProgress {
                image: image.to_string(),
                line,
                layer,
                current_bytes: current,
                total_bytes: total,
            })
            .await;
        }
    };
    let (result, ()) = tokio::join!(work, forward);
    result
}
