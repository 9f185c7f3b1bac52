//! One job's definition, and the graph the jobs form: `needs` resolved against the jobs that
//! exist, checked for cycles and for stages.

use std::collections::HashMap;
use std::time::Duration;

use crate::pipeline::*;
use crate::source::yaml::{Node, Span};

use super::*;

impl Reader<'_> {
    pub(super) fn job_def(
        &mut self,
        name: &str,
        span: Span,
        node: &Node,
        defaults: &Defaults,
        inherit: &Inherit,
    ) -> Option<Job> {
        let Some(entries) = node.as_map() else {
            self.error(
                format!(
                    "a job should be a mapping with a `script`, found {}",
                    node.kind()
                ),
                if node.is_null() { span } else { node.span },
            );
            return None;
        };
        let mut not_yet = Vec::new();
        for e in entries {
            let key = e.key.as_str();
            if JOB_KEYS.contains(&key) || JOB_NO_LOCAL_MEANING.contains(&key) {
                continue;
            }
            if JOB_NOT_YET.contains(&key) {
                self.warn(
                    format!("`{key}` is not supported by berth yet; ignored"),
                    e.key_span,
                );
                not_yet.push(key);
            } else {
                self.error_help(
                    format!("unknown key `{key}`"),
                    e.key_span,
                    format!("a job's keys are: {}", JOB_KEYS.join(", ")),
                );
            }
        }
        let from_default = |key: &str| match &inherit.default {
            None => true,
            Some(keys) => keys.iter().any(|k| k == key),
        };
        let trigger = node.get("trigger").and_then(|n| self.trigger(n));

        let stage_span = node.get("stage").map(|n| n.span).unwrap_or(span);
        let stage = match node.get("stage") {
            Some(n) => match n.as_text() {
                Some(s) => s.to_string(),
                None => {
                    self.expected("a stage name", "stage", n);
                    return None;
                }
            },
            None => "test".to_string(),
        };
        let image = match node.get("image") {
            Some(n) => self.image(n),
            None if from_default("image") => defaults.image.clone(),
            None => None,
        };
        let before_script = match node.get("before_script") {
            Some(n) => self.script("before_script", n).unwrap_or_default(),
            None if from_default("before_script") => {
                defaults.before_script.clone().unwrap_or_default()
            }
            None => Vec::new(),
        };
        let after_script = match node.get("after_script") {
            Some(n) => self.script("after_script", n).unwrap_or_default(),
            None if from_default("after_script") => {
                defaults.after_script.clone().unwrap_or_default()
            }
            None => Vec::new(),
        };
        let script = match node.get("script") {
            Some(n) => {
                let script = self.script("script", n).unwrap_or_default();
                if script.is_empty() {
                    self.error("`script` is empty", n.span);
                }
                script
            }
            None if trigger.is_some() => Vec::new(),
            None => {
                let mut help =
                    "every job runs a `script`: a command or a list of commands".to_string();
                if !not_yet.is_empty() {
                    help = format!(
                        "{help}; this job uses {}, which berth does not support yet",
                        not_yet
                            .iter()
                            .map(|k| format!("`{k}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    );
                }
                self.error_help("the job has no `script`", span, help);
                Vec::new()
            }
        };
        let variables = node
            .get("variables")
            .map(|n| self.variables(n))
            .unwrap_or_default();
        let needs = node.get("needs").and_then(|n| self.needs(n));
        let when = match node.get("when") {
            Some(n) => match self.when(n) {
                Some(When::Never) => {
                    self.error_help(
                        "`when: never` is not a job's `when`",
                        n.span,
                        "GitLab takes `when: never` only inside `rules` (`rules: [{when: never}]`)",
                    );
                    When::OnSuccess
                }
                w => w.unwrap_or(When::OnSuccess),
            },
            None => When::OnSuccess,
        };
        let start_in = node.get("start_in").and_then(|n| self.start_in(n));
        if when == When::Delayed && start_in.is_none() {
            self.error(
                "`when: delayed` needs a `start_in`",
                node.get("when").map(|n| n.span).unwrap_or(span),
            );
        }
        let allow_failure = match node.get("allow_failure") {
            Some(n) => self.allow_failure(n),
            // GitLab: manual jobs may fail without failing the pipeline.
            None if when == When::Manual => AllowFailure::Yes,
            None => AllowFailure::No,
        };
        let timeout = match node.get("timeout") {
            Some(n) => self.timeout(n),
            None if from_default("timeout") => defaults.timeout,
            None => None,
        };
        let retry = match node.get("retry") {
            Some(n) => self.retry(n).unwrap_or(0),
            None if from_default("retry") => defaults.retry.unwrap_or(0),
            None => 0,
        };
        let artifacts = match node.get("artifacts") {
            Some(n) => self.artifacts(n),
            None if from_default("artifacts") => defaults.artifacts.clone(),
            None => None,
        };
        let caches = match node.get("cache") {
            Some(n) => self.caches(n),
            None if from_default("cache") => defaults.caches.clone().unwrap_or_default(),
            None => Vec::new(),
        };
        let services = match node.get("services") {
            Some(n) => self.services(n),
            None if from_default("services") => defaults.services.clone().unwrap_or_default(),
            None => Vec::new(),
        };
        let environment = node.get("environment").and_then(|n| self.environment(n));
        let dependencies = match node.get("dependencies") {
            Some(n) if n.is_null() => Some(Vec::new()),
            Some(n) => self.string_list("dependencies", n).map(|names| {
                let items = n.as_seq().unwrap_or_default();
                names
                    .into_iter()
                    .zip(items)
                    .map(|(job, item)| Need {
                        job,
                        span: item.span,
                        artifacts: true,
                        optional: false,
                        instances: None,
                    })
                    .collect()
            }),
            None => None,
        };
        Some(Job {
            name: name.to_string(),
            span,
            stage,
            stage_span,
            image,
            before_script,
            script,
            after_script,
            variables,
            needs,
            allow_failure,
            timeout,
            retry,
            when,
            artifacts,
            dependencies,
            caches,
            services,
            start_in,
            reason: None,
            environment,
            trigger,
            base_name: name.to_string(),
            inherit_variables: inherit.variables.clone(),
            steps: None,
            expand: None,
            origin: None,
            container: Default::default(),
            credentials: None,
            service_network: Default::default(),
        })
    }

    pub(super) fn environment(&mut self, node: &Node) -> Option<Environment> {
        if let Some(name) = node.as_text() {
            return Some(Environment {
                name: name.to_string(),
                url: None,
            });
        }
        if node.as_map().is_none() {
            self.expected("a name or a mapping with `name`", "environment", node);
            return None;
        }
        let Some(name) = node.get("name").and_then(|n| n.as_text()) else {
            self.error("`environment` needs a `name`", node.span);
            return None;
        };
        Some(Environment {
            name: name.to_string(),
            url: node.get("url").and_then(|u| u.as_text()).map(String::from),
        })
    }

    pub(super) fn trigger(&mut self, node: &Node) -> Option<Trigger> {
        if let Some(project) = node.as_text() {
            return Some(Trigger::Other {
                what: format!("project {project}"),
            });
        }
        if node.as_map().is_none() {
            self.expected(
                "a project or a mapping with `include` or `project`",
                "trigger",
                node,
            );
            return None;
        }
        let depend = node.get("strategy").and_then(|s| s.as_text()) == Some("depend");
        if let Some(project) = node.get("project").and_then(|p| p.as_text()) {
            return Some(Trigger::Other {
                what: format!("project {project}"),
            });
        }
        let Some(include) = node.get("include") else {
            self.error("`trigger` needs `include` or `project`", node.span);
            return None;
        };
        let items: Vec<&Node> = match include.as_seq() {
            Some(items) => items.iter().collect(),
            None => vec![include],
        };
        let mut files = Vec::new();
        for item in items {
            if let Some(path) = item
                .as_text()
                .or_else(|| item.get("local").and_then(|l| l.as_text()))
            {
                if path.starts_with("http://") || path.starts_with("https://") {
                    return Some(Trigger::Other {
                        what: format!("remote {path}"),
                    });
                }
                files.push(path.trim_start_matches('/').to_string());
            } else {
                let what = item
                    .as_map()
                    .and_then(|m| m.first())
                    .map(|e| format!("{} {}", e.key, e.value.as_scalar().unwrap_or("...")))
                    .unwrap_or_else(|| "an include".into());
                return Some(Trigger::Other { what });
            }
        }
        Some(Trigger::Child { files, depend })
    }

    pub(super) fn start_in(&mut self, node: &Node) -> Option<Duration> {
        let text = node.as_text()?;
        match duration::parse(text) {
            Ok(d) => Some(d),
            Err(e) => {
                self.error(format!("`start_in`: {e}"), node.span);
                None
            }
        }
    }

    /// Point `needs` and `dependencies` at the jobs that exist: a parallel job's name means
    /// all its instances (or those a `parallel: matrix` names); an optional need of a job
    /// that is not created is dropped; a required one is an error.
    pub(super) fn resolve_needs(&mut self, jobs: &mut [Job], left_out: &[LeftOut]) {
        let created: std::collections::HashSet<String> =
            jobs.iter().map(|j| j.name.clone()).collect();
        let mut instances: HashMap<String, Vec<String>> = HashMap::new();
        for j in jobs.iter().filter(|j| j.name != j.base_name) {
            instances
                .entry(j.base_name.clone())
                .or_default()
                .push(j.name.clone());
        }
        let omitted = |name: &str| {
            left_out.iter().any(|l| {
                l.name == name
                    || l.name.starts_with(&format!("{name}: ["))
                    || l.name.starts_with(&format!("{name} "))
            })
        };
        for job in jobs.iter_mut() {
            self.job = Some(job.name.clone());
            for (key, list) in [
                ("needs", &mut job.needs),
                ("dependencies", &mut job.dependencies),
            ] {
                let Some(list) = list.as_mut() else {
                    continue;
                };
                let mut out = Vec::new();
                for need in list.drain(..) {
                    let names: Vec<String> = match &need.instances {
                        Some(named) => named.clone(),
                        None if created.contains(&need.job) => vec![need.job.clone()],
                        None => instances
                            .get(&need.job)
                            .cloned()
                            .unwrap_or_else(|| vec![need.job.clone()]),
                    };
                    for n in names {
                        if created.contains(&n) {
                            out.push(Need {
                                job: n,
                                instances: None,
                                ..need.clone()
                            });
                        } else if need.optional {
                        } else if omitted(&n) || omitted(&need.job) {
                            self.errors.push(
                                Diagnostic::error(
                                    format!("`{key}` names `{n}`, which is not in this pipeline (its rules left it out)"),
                                    Some(need.span),
                                )
                                .in_job(&job.name)
                                .with_help("make the need `optional: true`, or give both jobs the same rules"),
                            );
                        } else {
                            out.push(Need {
                                job: n,
                                instances: None,
                                ..need.clone()
                            });
                        }
                    }
                }
                *list = out;
            }
            self.job = None;
        }
    }

    /// Stages exist, needs name real jobs in the same or an earlier stage, and form no cycle.
    pub(super) fn check_graph(&mut self, p: &Pipeline) {
        let stage_index = p.stage_index();
        let by_name: HashMap<&str, &Job> = p.jobs.iter().map(|j| (j.name.as_str(), j)).collect();
        let declared = p.stages[1..p.stages.len() - 1].join(", ");
        for job in &p.jobs {
            self.job = Some(job.name.clone());
            let Some(&own) = stage_index.get(job.stage.as_str()) else {
                let span = job.stage_span;
                self.error_help(
                    format!("stage `{}` is not declared in `stages`", job.stage),
                    span,
                    format!("declared stages: {declared}"),
                );
                continue;
            };
            for dep in job.dependencies.iter().flatten() {
                match by_name.get(dep.job.as_str()) {
                    None => self.error(
                        format!("`dependencies` names `{}`, which is not a job", dep.job),
                        dep.span,
                    ),
                    Some(other) => {
                        if stage_index
                            .get(other.stage.as_str())
                            .is_some_and(|&s| s >= own)
                        {
                            self.error(
                                format!(
                                    "`dependencies` names `{}`, which is not in an earlier stage",
                                    dep.job
                                ),
                                dep.span,
                            );
                        }
                    }
                }
            }
            for need in job.needs.iter().flatten() {
                match by_name.get(need.job.as_str()) {
                    None if need.optional => {}
                    None => self.error(
                        format!("`needs` names `{}`, which is not a job", need.job),
                        need.span,
                    ),
                    Some(other) => {
                        if let Some(&theirs) = stage_index.get(other.stage.as_str()) {
                            if theirs > own {
                                self.error(
                                    format!(
                                        "`needs` names `{}`, which is in the later stage `{}`",
                                        need.job, other.stage
                                    ),
                                    need.span,
                                );
                            }
                        }
                    }
                }
            }
            self.job = None;
        }
        // Cycles can only form among jobs of one stage; a depth-first walk finds them.
        let mut state: HashMap<&str, u8> = HashMap::new();
        for job in &p.jobs {
            let mut path = Vec::new();
            if let Some(cycle) = find_cycle(job.name.as_str(), &by_name, &mut state, &mut path) {
                self.job = Some(cycle[0].clone());
                let span = by_name
                    .get(cycle[0].as_str())
                    .and_then(|j| j.needs.iter().flatten().find(|n| n.job == cycle[1]))
                    .map(|n| n.span)
                    .unwrap_or(job.span);
                self.error(
                    format!("`needs` forms a cycle: {}", cycle.join(" -> ")),
                    span,
                );
                self.job = None;
                break;
            }
        }
    }
}

fn find_cycle<'a>(
    name: &'a str,
    jobs: &HashMap<&'a str, &'a Job>,
    state: &mut HashMap<&'a str, u8>,
    path: &mut Vec<&'a str>,
) -> Option<Vec<String>> {
    match state.get(name) {
        Some(2) => return None,
        Some(1) => {
            let start = path.iter().position(|n| *n == name).unwrap_or(0);
            let mut cycle: Vec<String> = path[start..].iter().map(|s| s.to_string()).collect();
            cycle.push(name.to_string());
            return Some(cycle);
        }
        _ => {}
    }
    state.insert(name, 1);
    path.push(name);
    if let Some(job) = jobs.get(name) {
        for need in job.needs.iter().flatten() {
            if let Some((&other, _)) = jobs.get_key_value(need.job.as_str()) {
                if let Some(c) = find_cycle(other, jobs, state, path) {
                    return Some(c);
                }
            }
        }
    }
    path.pop();
    state.insert(name, 2);
    None
}
