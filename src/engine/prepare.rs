//! What each job of a run needs, worked out before anything is asked of the containers' side:
//! its environment, its image and how to get it, its services, caches and scripts, and whether
//! the lock allows its images. No runtime calls here (a build context is read from disk for its
//! hash); [`super::images`] then gets the images.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{caches, python, script, services, PreparedJob, RunConfig, RunError, DEFAULT_TIMEOUT};
use crate::pipeline::{expand, Credentials, Image, Job, Mount, Trigger, When};
use crate::plan::Plan;
use crate::project::paths;
use crate::project::workspace::{self, Selection};

/// How an image is had.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Source {
    /// Present, or pulled by its reference.
    Reference,
    /// Built from a directory of the project (`image: {build: DIR}`).
    Build {
        context: PathBuf,
        dockerfile: String,
    },
}

/// An image the run needs: how to have it, and the first job that uses it (errors name it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Needed {
    pub source: Source,
    pub job: String,
    /// The pipeline's credentials for its registry, if it gives some.
    pub credentials: Option<Credentials>,
}

/// Every job prepared (`None`: it does not run here), and every image they need, by reference.
#[derive(Debug)]
pub(super) struct Prepared {
    pub jobs: Vec<Option<PreparedJob>>,
    pub images: BTreeMap<String, Needed>,
}

/// Prepare every job of the plan that will run. A hermetic run's images must all be locked:
/// nothing unlocked is even pulled.
pub(super) fn jobs(plan: &Plan, config: &RunConfig) -> Result<Prepared, RunError> {
    jobs_from(plan, config, 0)
}

/// [`jobs`], the plan's jobs numbered from `first` (jobs made at run time are numbered after
/// the run's plan, so that their containers and volumes are named apart). A job made at run
/// time ([`crate::pipeline::Job::expand`]) is not prepared: its jobs will be.
pub(super) fn jobs_from(
    plan: &Plan,
    config: &RunConfig,
    first: usize,
) -> Result<Prepared, RunError> {
    let mut images: BTreeMap<String, Needed> = BTreeMap::new();
    let mut need = |image: &str, source: Source, job: &str, credentials: &Option<Credentials>| {
        let needed = images.entry(image.to_string()).or_insert_with(|| Needed {
            source,
            job: job.to_string(),
            credentials: None,
        });
        if needed.credentials.is_none() {
            needed.credentials = credentials.clone();
        }
    };
    let mut jobs = Vec::with_capacity(plan.jobs.len());
    for (index, pj) in plan.jobs.iter().enumerate() {
        let index = first + index;
        if !pj.run
            || matches!(pj.job.trigger, Some(Trigger::Other { .. }))
            || pj.job.expand.is_some()
            || config
                .reused
                .as_ref()
                .is_some_and(|r| r.jobs.contains_key(&pj.job.name))
        {
            jobs.push(None);
            continue;
        }
        let job = &pj.job;
        let job_id = config.context.pipeline_id * 1000 + index as u64 + 1;
        let replayed = config.replay.as_ref().and_then(|r| r.jobs.get(&job.name));
        let env = match replayed {
            Some(r) => r.env.clone(),
            None => environment(config, job, job_id),
        };
        let (image, entrypoint, source) = image(job, &env, config)?;
        // A replay runs in the very image the record names, whatever the tag says now.
        let (image, source) = match replayed.and_then(|r| r.image.clone()) {
            Some(id) => (id, Source::Reference),
            None => (image, source),
        };
        need(&image, source, &job.name, &job.credentials);
        // Steps that run in containers of their own (GitHub's Docker actions) need theirs.
        let step_images = match &job.steps {
            Some(steps) => {
                steps
                    .images(&config.context.project_dir)
                    .map_err(|what| RunError::Host {
                        job: job.name.clone(),
                        what,
                    })?
            }
            None => Vec::new(),
        };
        let own_containers = !step_images.is_empty();
        for step_image in step_images {
            let source = match step_image.build {
                Some((context, dockerfile)) => Source::Build {
                    context,
                    dockerfile,
                },
                None => Source::Reference,
            };
            need(&step_image.image, source, &job.name, &None);
        }
        let mut services =
            services::prepare(&job.services, &env, config.environment.service_wait());
        // With no network, services are not started: their images are not needed either.
        for (s, model) in services.iter().zip(&job.services) {
            if !config.offline {
                need(&s.image, Source::Reference, &job.name, &model.credentials);
            }
        }
        let project = &config.context.project_dir;
        let volume_prefix = format!("berth-{}-{index}-vol", config.run_id);
        let input = |why: String| RunError::Input(format!("job `{}`: {why}", job.name));
        let mut volumes = Vec::new();
        let mut container = job.container.clone();
        for options in
            std::iter::once(&mut container).chain(services.iter_mut().map(|s| &mut s.options))
        {
            options.mounts = resolve_mounts(&options.mounts, project, &volume_prefix, &mut volumes)
                .map_err(input)?;
        }
        // A job whose steps run in containers of their own keeps its workspace in a volume
        // of its own, which those containers mount too (see `engine::steps`).
        if own_containers && matches!(config.workspace, super::Workspace::Copy { .. }) {
            let name = workspace_volume(&volume_prefix);
            volumes.push(name.clone());
            container.mounts.push(Mount::Volume {
                name,
                target: config.context.container_dir.clone(),
                read_only: false,
            });
        }
        let cache_mounts =
            caches::mounts(&job.caches, &env, project, &config.run_id, config.no_cache);
        for mount in &cache_mounts {
            caches::check_in_project(mount, project)
                .map_err(|why| RunError::Input(format!("job `{}`: {why}", job.name)))?;
        }
        let options = script::Options::from_env(&env, job.timeout.unwrap_or(DEFAULT_TIMEOUT));
        let scripts = script::render(&job.before_script, &job.script, &job.after_script, &options);
        let scripts_tar = scripts.to_tar().map_err(|e| RunError::Host {
            job: job.name.clone(),
            what: format!("cannot write the job's scripts: {e}"),
        })?;
        let checkout = config.environment.checkout(job, &env);
        jobs.push(Some(PreparedJob {
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
            start_in: job.start_in.filter(|_| job.when == When::Delayed),
            steps: job.steps.clone(),
            checkout,
            container,
            volumes,
            service_network: job.service_network,
        }));
    }
    if let Some(lock) = config.hermetic.as_ref().and_then(|h| h.lock.as_ref()) {
        for (image, needed) in &images {
            lock.entry(image)
                .map_err(|e| RunError::Lock(format!("job `{}`: {e}", needed.job)))?;
        }
    }
    Ok(Prepared { jobs, images })
}

/// The volume a job's workspace is in when steps of its own containers share it.
pub(super) fn workspace_volume(volume_prefix: &str) -> String {
    format!("{volume_prefix}-workspace")
}

/// The model's mounts as the engine takes them: a named volume becomes one of the job's own
/// (`{prefix}-{name}`, added to `volumes`), a directory of the project its path on the host. A
/// directory that is missing or that leads out of the project (a symbolic link) is refused.
pub(super) fn resolve_mounts(
    mounts: &[Mount],
    project: &Path,
    prefix: &str,
    volumes: &mut Vec<String>,
) -> Result<Vec<Mount>, String> {
    let mut out = Vec::new();
    for m in mounts {
        out.push(match m {
            Mount::Volume {
                name,
                target,
                read_only,
            } => {
                let name = format!("{prefix}-{}", paths::slug(name));
                if !volumes.contains(&name) {
                    volumes.push(name.clone());
                }
                Mount::Volume {
                    name,
                    target: target.clone(),
                    read_only: *read_only,
                }
            }
            Mount::Bind {
                source,
                target,
                read_only,
            } => {
                let root = project
                    .canonicalize()
                    .map_err(|e| format!("the project directory: {e}"))?;
                let path = root.join(source).canonicalize().map_err(|e| {
                    format!("volume `{source}:{target}`: `{source}` cannot be mounted: {e}")
                })?;
                if !path.starts_with(&root) {
                    return Err(format!(
                        "volume `{source}:{target}`: `{source}` leads out of the project (to \
                         `{}`); a bind mount must stay inside it",
                        path.display()
                    ));
                }
                Mount::Bind {
                    source: path.display().to_string(),
                    target: target.clone(),
                    read_only: *read_only,
                }
            }
            Mount::Anonymous { .. } => m.clone(),
        });
    }
    Ok(out)
}

/// The job's environment as the pipeline's format builds it, and what a hermetic run fixes.
fn environment(config: &RunConfig, job: &Job, job_id: u64) -> Vec<(String, String)> {
    let mut env = config
        .environment
        .job_env(job, job_id, &[], &config.overrides);
    if let Some(h) = &config.hermetic {
        // Fixed unless the pipeline names them itself.
        for (k, v) in [
            ("SOURCE_DATE_EPOCH", h.source_date_epoch.to_string()),
            ("TZ", "UTC".to_string()),
            ("LANG", "C.UTF-8".to_string()),
            ("LC_ALL", "C.UTF-8".to_string()),
        ] {
            if !env.iter().any(|(n, _)| n == k) {
                env.push((k.to_string(), v));
            }
        }
    }
    env
}

/// The job's image reference (a build's is a tag named by its context's content), its
/// entrypoint, and how to have it.
fn image(
    job: &Job,
    env: &[(String, String)],
    config: &RunConfig,
) -> Result<(String, Option<Vec<String>>, Source), RunError> {
    let lookup = |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    Ok(match &job.image {
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
                RunError::Host {
                    job: job.name.clone(),
                    what: format!(
                        "image `build: {context}` cannot be had: cannot read {}: {e}",
                        dir.display()
                    ),
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
    })
}

/// Add the automatic Python caches of a job that installs Python packages (see
/// [`super::python`]), keyed by its image's ID (known once the image is there); returns what
/// the user should know about them.
pub(super) fn add_python_caches(
    job: &mut PreparedJob,
    source: &Job,
    image_id: Option<&str>,
    config: &RunConfig,
) -> Vec<String> {
    let tools = python::tools_of(source);
    let ctx = python::RunScope {
        project: &config.context.project_dir,
        run_id: &config.run_id,
        temporary: config.no_cache,
        offline: config.offline || config.hermetic.is_some(),
        scripted: job.steps.is_none(),
    };
    // Without an ID (an engine that would not say), the reference stands in for it.
    let image_id = image_id.unwrap_or(&job.image);
    let mut extra = python::for_job(&tools, image_id, &job.env, &ctx);
    let workspace = job
        .env
        .iter()
        .find(|(k, _)| k == "CI_PROJECT_DIR")
        .map(|(_, v)| v.trim_end_matches('/').to_string())
        .unwrap_or_default();
    let at = |path: &str| match path.starts_with('/') {
        true => path.trim_end_matches('/').to_string(),
        false => format!("{workspace}/{}", path.trim_end_matches('/')),
    };
    for m in extra.mounts {
        // The job names this directory as its tool's cache: berth's volume goes there, in place
        // of a declared cache (which would otherwise hold it apart from `berth warm`'s).
        if extra.own_dirs.contains(&m.path) {
            let before = job.caches.len();
            job.caches.retain(|c| at(&c.path) != m.path);
            if job.caches.len() < before {
                extra.notes.push(format!(
                    "berth's Python cache is mounted at {} (the job's own cache directory), in place of its declared cache there",
                    m.path
                ));
            }
        }
        // Otherwise a declared cache at the same place wins.
        if !job.caches.iter().any(|c| at(&c.path) == at(&m.path)) {
            job.caches.push(m);
        }
    }
    job.env
        .retain(|(k, _)| !extra.env.iter().any(|(n, _)| n == k));
    job.env.extend(extra.env);
    if !extra.prelude.is_empty() {
        // The index proxy starts before the job's own commands, from a file beside its scripts.
        let timeout = source.timeout.unwrap_or(DEFAULT_TIMEOUT);
        let options = script::Options::from_env(&job.env, timeout);
        let before: Vec<String> = extra
            .prelude
            .iter()
            .chain(&source.before_script)
            .cloned()
            .collect();
        let mut scripts = script::render(&before, &source.script, &source.after_script, &options);
        scripts.extra = extra.files;
        match scripts.to_tar() {
            Ok(tar) => job.scripts_tar = tar,
            Err(e) => extra
                .notes
                .push(format!("the package index proxy is not started: {e}")),
        }
    }
    extra.notes
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::path::Path;
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::engine::{Hermetic, Replay, ReplayJob, Workspace};
    use crate::project::git::Facts;
    use crate::project::lock::{Locked, Lockfile};

    /// A pipeline read and planned as `berth run` would, in `project`.
    fn setup(project: &Path, yaml: &str) -> (Plan, RunConfig) {
        let loaded = crate::gitlab::load(yaml).expect("a valid pipeline");
        let plan = crate::plan::plan(&loaded.pipeline, &[], false).expect("a plan");
        let facts = Facts::new(project, 7);
        let config = RunConfig {
            run_id: "r1".into(),
            pipeline_name: "berth.yml".into(),
            jobs_limit: 1,
            workspace: Workspace::Mount,
            environment: Arc::new(crate::gitlab::variables::GitLabEnvironment {
                facts: facts.clone(),
                pipeline_variables: loaded.pipeline.variables.clone(),
            }),
            context: facts,
            overrides: Vec::new(),
            default_image: "default:1".into(),
            run_dir: project.join(".berth/runs/r1"),
            no_cache: false,
            service_timeout: Duration::from_secs(30),
            python_cache: false,
            offline: false,
            info: Default::default(),
            tracked: Default::default(),
            debug: None,
            shell_job: None,
            replay: None,
            reused: None,
            hermetic: None,
            hostname: None,
        };
        (plan, config)
    }

    fn job<'a>(prepared: &'a Prepared, name: &str) -> &'a PreparedJob {
        prepared
            .jobs
            .iter()
            .flatten()
            .find(|j| j.name == name)
            .unwrap_or_else(|| panic!("job {name} is prepared"))
    }

    fn var<'a>(job: &'a PreparedJob, name: &str) -> Option<&'a str> {
        job.env
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    const JOBS: &str = "\
variables: {IMG: 'tool:2'}
first:
  image: $IMG
  services: [db:5]
  script: [echo one]
second:
  image: {name: 'tool:2', entrypoint: ['']}
  services: [db:5]
  timeout: 5m
  script: [echo two]
plain:
  when: delayed
  start_in: 2 minutes
  script: [echo three]
later:
  when: manual
  image: never:pulled
  script: [echo four]
";

    #[test]
    fn each_image_is_needed_once_by_its_first_job_and_manual_jobs_are_not_prepared() {
        let dir = tempfile::tempdir().unwrap();
        let (plan, config) = setup(dir.path(), JOBS);
        let prepared = jobs(&plan, &config).unwrap();
        let needed: Vec<(&str, &str)> = prepared
            .images
            .iter()
            .map(|(image, n)| (image.as_str(), n.job.as_str()))
            .collect();
        assert_eq!(
            needed,
            vec![
                ("db:5", "first"),
                ("default:1", "plain"),
                ("tool:2", "first")
            ]
        );
        assert!(prepared
            .images
            .values()
            .all(|n| n.source == Source::Reference));
        assert_eq!(prepared.jobs.iter().flatten().count(), 3);
        let later = plan.jobs.iter().position(|j| j.job.name == "later");
        assert!(
            prepared.jobs[later.unwrap()].is_none(),
            "a manual job stays"
        );

        let first = job(&prepared, "first");
        assert_eq!(first.image, "tool:2", "the image's $VAR is expanded");
        assert_eq!(first.entrypoint, None);
        assert_eq!(first.timeout, DEFAULT_TIMEOUT);
        assert_eq!(var(first, "IMG"), Some("tool:2"));
        assert_eq!(first.services.len(), 1);
        assert!(!first.scripts_tar.is_empty());
        let second = job(&prepared, "second");
        assert_eq!(second.entrypoint, Some(vec![String::new()]));
        assert_eq!(second.timeout, Duration::from_secs(300));
        let plain = job(&prepared, "plain");
        assert_eq!(plain.image, "default:1");
        assert_eq!(plain.start_in, Some(Duration::from_secs(120)));
        assert_eq!(first.start_in, None);
    }

    #[test]
    fn an_offline_run_needs_no_service_images() {
        let dir = tempfile::tempdir().unwrap();
        let (plan, mut config) = setup(dir.path(), JOBS);
        config.offline = true;
        let prepared = jobs(&plan, &config).unwrap();
        let images: Vec<&String> = prepared.images.keys().collect();
        assert_eq!(images, ["default:1", "tool:2"]);
    }

    #[test]
    fn a_build_is_tagged_by_its_contexts_content() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = dir.path().join("tool");
        std::fs::create_dir(&ctx).unwrap();
        std::fs::write(ctx.join("Dockerfile"), "FROM scratch\n").unwrap();
        let yaml = "made:\n  image: {build: tool}\n  script: [true]\n";
        let (plan, config) = setup(dir.path(), yaml);
        let tag = |prepared: &Prepared| job(prepared, "made").image.clone();
        let prepared = jobs(&plan, &config).unwrap();
        let first = tag(&prepared);
        let hash = first.strip_prefix("berth-build/tool:").expect(&first);
        assert_eq!(hash.len(), 16, "{first}");
        assert_eq!(
            prepared.images[&first],
            Needed {
                source: Source::Build {
                    context: ctx.clone(),
                    dockerfile: "Dockerfile".into()
                },
                job: "made".into(),
                credentials: None,
            }
        );
        std::fs::write(ctx.join("Dockerfile"), "FROM scratch\nENV A=1\n").unwrap();
        assert_ne!(tag(&jobs(&plan, &config).unwrap()), first);
    }

    #[test]
    fn an_unreadable_build_context_is_a_host_failure_naming_the_job() {
        let dir = tempfile::tempdir().unwrap();
        let yaml = "made:\n  image: {build: missing}\n  script: [true]\n";
        let (plan, config) = setup(dir.path(), yaml);
        match jobs(&plan, &config) {
            Err(e @ RunError::Host { .. }) => {
                let said = e.to_string();
                assert!(said.starts_with("job `made`: "), "{said}");
                assert!(said.contains("cannot read"), "{said}");
            }
            other => panic!("expected a host failure, got {other:?}"),
        }
    }

    #[test]
    fn a_cache_through_a_link_is_bad_input() {
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/tmp", dir.path().join("vendor")).unwrap();
        let yaml = "deps:\n  cache: {key: k, paths: [vendor/]}\n  script: [true]\n";
        let (plan, config) = setup(dir.path(), yaml);
        match jobs(&plan, &config) {
            Err(RunError::Input(why)) => assert!(why.starts_with("job `deps`: "), "{why}"),
            other => panic!("expected bad input, got {other:?}"),
        }
    }

    fn lock(images: &[&str]) -> Arc<Lockfile> {
        let mut lock = Lockfile {
            version: 1,
            ..Default::default()
        };
        for image in images {
            lock.images.insert(
                image.to_string(),
                Locked {
                    id: "sha256:0123456789abcdef".into(),
                    digest: None,
                },
            );
        }
        Arc::new(lock)
    }

    #[test]
    fn a_hermetic_run_refuses_an_unlocked_image_and_fixes_time_zone_and_locale() {
        let dir = tempfile::tempdir().unwrap();
        let yaml = "zoned:\n  image: 'tool:2'\n  variables: {TZ: Europe/Paris}\n  script: [true]\n";
        let (plan, mut config) = setup(dir.path(), yaml);
        config.hermetic = Some(Hermetic {
            source_date_epoch: 1_700_000_000,
            lock: Some(lock(&["other:1"])),
        });
        match jobs(&plan, &config) {
            Err(RunError::Lock(why)) => {
                assert!(why.starts_with("job `zoned`: "), "{why}");
                assert!(why.contains("`tool:2` is not in"), "{why}");
            }
            other => panic!("expected a lock failure, got {other:?}"),
        }
        config.hermetic = Some(Hermetic {
            source_date_epoch: 1_700_000_000,
            lock: Some(lock(&["tool:2"])),
        });
        let prepared = jobs(&plan, &config).unwrap();
        let zoned = job(&prepared, "zoned");
        assert_eq!(var(zoned, "SOURCE_DATE_EPOCH"), Some("1700000000"));
        assert_eq!(var(zoned, "LC_ALL"), Some("C.UTF-8"));
        assert_eq!(
            var(zoned, "TZ"),
            Some("Europe/Paris"),
            "the pipeline's own wins"
        );
    }

    #[test]
    fn a_replay_runs_in_the_recorded_image_with_the_recorded_environment() {
        let dir = tempfile::tempdir().unwrap();
        let yaml = "again:\n  image: 'tool:2'\n  script: [true]\nfresh:\n  script: [true]\n";
        let (plan, mut config) = setup(dir.path(), yaml);
        let recorded = vec![("ONLY".to_string(), "recorded".to_string())];
        config.replay = Some(Arc::new(Replay {
            jobs: HashMap::from([(
                "again".to_string(),
                ReplayJob {
                    env: recorded.clone(),
                    image: Some("sha256:feed".into()),
                },
            )]),
        }));
        let prepared = jobs(&plan, &config).unwrap();
        let again = job(&prepared, "again");
        assert_eq!(again.image, "sha256:feed");
        assert_eq!(again.env, recorded);
        assert_eq!(
            prepared.images["sha256:feed"].source,
            Source::Reference,
            "a recorded image is had by its ID"
        );
        // A job without a record is prepared as in any run.
        let fresh = job(&prepared, "fresh");
        assert_eq!(fresh.image, "default:1");
        assert_eq!(var(fresh, "CI"), Some("true"));
        assert!(!prepared.images.contains_key("tool:2"));
    }

    /// Steps that run in containers of their own, of a pulled and a built image.
    #[derive(Debug)]
    struct OwnContainerSteps;

    impl crate::pipeline::steps::Steps for OwnContainerSteps {
        fn should_run(
            &self,
            _: &[crate::pipeline::steps::NeedResult],
            _: bool,
        ) -> Result<bool, String> {
            Ok(true)
        }

        fn start(
            &self,
            _: crate::pipeline::steps::Start,
        ) -> Box<dyn crate::pipeline::steps::StepsRun> {
            unreachable!("not started in these tests")
        }

        fn images(
            &self,
            project_dir: &Path,
        ) -> Result<Vec<crate::pipeline::steps::StepImage>, String> {
            Ok(vec![
                crate::pipeline::steps::StepImage {
                    image: "alpine:3".into(),
                    build: None,
                },
                crate::pipeline::steps::StepImage {
                    image: "berth-build/action-a:0123".into(),
                    build: Some((project_dir.join("a"), "Dockerfile".into())),
                },
            ])
        }
    }

    #[test]
    fn steps_in_their_own_containers_need_their_images_and_a_workspace_volume() {
        let dir = tempfile::tempdir().unwrap();
        let (mut plan, mut config) = setup(dir.path(), "t:\n  script: [x]\n");
        plan.jobs[0].job.steps = Some(Arc::new(OwnContainerSteps));
        config.workspace = Workspace::Copy {
            tar: dir.path().join("snapshot.tar"),
        };
        let prepared = jobs(&plan, &config).unwrap();
        assert_eq!(prepared.images["alpine:3"].source, Source::Reference);
        assert_eq!(
            prepared.images["berth-build/action-a:0123"].source,
            Source::Build {
                context: dir.path().join("a"),
                dockerfile: "Dockerfile".into()
            }
        );
        // The workspace in a volume of the job's own, which the steps' containers mount.
        let t = job(&prepared, "t");
        assert_eq!(t.volumes, ["berth-r1-0-vol-workspace"]);
        assert!(t.container.mounts.iter().any(|m| matches!(
            m,
            Mount::Volume { name, target, .. }
                if name == "berth-r1-0-vol-workspace" && *target == config.context.container_dir
        )));
        // A mounted project is mounted in them instead: no volume.
        config.workspace = Workspace::Mount;
        let prepared = jobs(&plan, &config).unwrap();
        assert!(job(&prepared, "t").volumes.is_empty());
    }
}
