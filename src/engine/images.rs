//! Before any job starts: every image the run needs made available (present, pulled, or built
//! from `image: {build: DIR}`), with its progress as events, so that an image that cannot be
//! had stops the run with nothing started.

use std::collections::BTreeMap;

use tokio_util::sync::CancellationToken;

use super::prepare::{Needed, Source};
use super::RunError;
use crate::engine::runtime::{ContainerRuntime, ImageStep, RuntimeError};
use crate::events::{Event, Sink};
use crate::project::workspace::{self, Selection};

/// Image IDs by reference, as far as known.
pub(super) type Ids = BTreeMap<String, Option<String>>;

/// Have every needed image, in order of reference, until `cancel`. Returns the IDs of those
/// that were already present (an ID found is also the proof the image is there).
pub(super) async fn ensure(
    images: &BTreeMap<String, Needed>,
    engine: &dyn ContainerRuntime,
    sink: &Sink,
    cancel: &CancellationToken,
) -> Result<Ids, RunError> {
    let mut ids = Ids::new();
    // Every image that cannot be had is reported at once, not one per run.
    let mut failed = Vec::new();
    for (image, needed) in images {
        if cancel.is_cancelled() {
            break;
        }
        match ensure_one(image, needed, engine, sink, &mut ids).await {
            Ok(()) => {}
            Err(e @ RunError::Runtime(_)) => return Err(e),
            Err(e) => failed.push(e),
        }
    }
    match failed.len() {
        0 => Ok(ids),
        1 => Err(failed.remove(0)),
        _ => Err(RunError::Images(failed)),
    }
}

/// One image present (already there, pulled or built), its ID in `ids` when known.
async fn ensure_one(
    image: &str,
    Needed {
        source,
        job,
        credentials,
    }: &Needed,
    engine: &dyn ContainerRuntime,
    sink: &Sink,
    ids: &mut Ids,
) -> Result<(), RunError> {
    let wrap = |source: RuntimeError| match source {
        RuntimeError::Unreachable(_) => RunError::Runtime(source),
        other => RunError::Image {
            job: job.clone(),
            source: other,
        },
    };
    if let Some(id) = engine.image_id(image).await.map_err(wrap)? {
        ids.insert(image.to_string(), Some(id));
        return Ok(());
    }
    match source {
        Source::Reference => {
            sink.send(Event::ImagePreparing {
                image: image.to_string(),
                action: "pulling".into(),
            })
            .await;
            with_progress(sink, image, |step| {
                engine.ensure_image(image, credentials.as_ref(), step)
            })
            .await
            .map_err(wrap)?;
        }
        Source::Build {
            context,
            dockerfile,
        } => {
            sink.send(Event::ImagePreparing {
                image: image.to_string(),
                action: format!("building {}", context.display()),
            })
            .await;
            let host = |what: String| RunError::Host {
                job: job.clone(),
                what,
            };
            let tar = tempfile::NamedTempFile::new()
                .map_err(|e| host(format!("cannot make a file for the build context: {e}")))?;
            let (ctx, tar_path) = (context.clone(), tar.path().to_path_buf());
            tokio::task::spawn_blocking(move || {
                workspace::write_tar(&ctx, Selection::BuildContext, "", &tar_path)
            })
            .await
            .map_err(|e| host(format!("packing the build context stopped: {e}")))?
            .map_err(|e| {
                host(format!(
                    "image `{image}` cannot be had: cannot pack {}: {e}",
                    context.display()
                ))
            })?;
            with_progress(sink, image, |step| {
                engine.build_image(tar.path(), dockerfile, image, step)
            })
            .await
            .map_err(wrap)?;
        }
    }
    Ok(())
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
