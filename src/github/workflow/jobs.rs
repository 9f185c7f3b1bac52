//! The workflow's top-level keys and its jobs: steps, containers, services and strategy,
//! each key and each field's contexts as the runner's schema has them.

use crate::github::expr::Scope;
use crate::github::matrix::Matrix;
use crate::source::yaml::{Node, Span};

use super::reader::{literal, to_value, Literal, Reader};
use super::*;

const ROOT_KEYS: &[&str] = &[
    "name",
    "run-name",
    "description",
    "on",
    "env",
    "defaults",
    "concurrency",
    "permissions",
    "jobs",
];
const JOB_KEYS: &[&str] = &[
    "name",
    "needs",
    "if",
    "strategy",
    "runs-on",
    "timeout-minutes",
    "cancel-timeout-minutes",
    "continue-on-error",
    "container",
    "services",
    "env",
    "environment",
    "permissions",
    "concurrency",
    "outputs",
    "defaults",
    "steps",
];
const REUSABLE_KEYS: &[&str] = &[
    "name",
    "uses",
    "with",
    "secrets",
    "needs",
    "if",
    "permissions",
    "concurrency",
    "strategy",
];
const RUN_STEP_KEYS: &[&str] = &[
    "name",
    "id",
    "if",
    "timeout-minutes",
    "run",
    "continue-on-error",
    "env",
    "working-directory",
    "shell",
];
const USES_STEP_KEYS: &[&str] = &[
    "name",
    "id",
    "if",
    "continue-on-error",
    "timeout-minutes",
    "uses",
    "with",
    "env",
];
const CONTAINER_KEYS: &[&str] = &["image", "options", "env", "ports", "volumes", "credentials"];
const SERVICE_KEYS: &[&str] = &[
    "image",
    "options",
    "entrypoint",
    "command",
    "env",
    "ports",
    "volumes",
    "credentials",
];
const PERMISSION_SCOPES: &[&str] = &[
    "actions",
    "artifact-metadata",
    "attestations",
    "checks",
    "contents",
    "deployments",
    "discussions",
    "id-token",
    "issues",
    "models",
    "packages",
    "pages",
    "pull-requests",
    "repository-projects",
    "security-events",
    "statuses",
    "vulnerability-alerts",
];

/// A container's `credentials` inside a job: the job's contexts and `secrets`, `env`.
const CONTAINER_CREDENTIALS: Scope = Scope {
    contexts: &[
        "github", "inputs", "vars", "needs", "strategy", "matrix", "secrets", "env",
    ],
    functions: &[],
};
/// `environment: url`: what the steps leave, without `secrets`.
const ENVIRONMENT_URL: Scope = Scope {
    contexts: &[
        "github", "inputs", "vars", "needs", "strategy", "matrix", "steps", "job", "runner", "env",
    ],
    functions: &[],
};

/// GitHub's rule for job and step ids.
fn valid_id(id: &str) -> bool {
    id.chars().enumerate().all(|(i, c)| {
        c.is_ascii_alphabetic() || c == '_' || (i > 0 && (c.is_ascii_digit() || c == '-'))
    }) && !id.is_empty()
        && id.len() < 100
}

impl Reader<'_> {
    pub(super) fn workflow(&mut self, root: &Node) -> Option<Workflow> {
        // GitHub's YAML reader stops at an unknown tag.
        self.check_tags(root);
        if !self.errors.is_empty() {
            return None;
        }
        let entries = self.map(root, "the workflow", ROOT_KEYS)?;
        let mut workflow = Workflow {
            name: None,
            run_name: None,
            on: Vec::new(),
            env: Vec::new(),
            defaults: RunDefaults::default(),
            concurrency: None,
            permissions: None,
            jobs: Vec::new(),
        };
        for e in entries {
            let v = &e.value;
            match e.key.as_str() {
                "name" => workflow.name = self.text(v, "name", None).map(|t| t.text),
                "run-name" => workflow.run_name = self.text(v, "run-name", Some(&Scope::WORKFLOW)),
                "on" => workflow.on = self.on(v),
                "env" => workflow.env = self.env(v, "env", Some(&Scope::WORKFLOW_ENV)),
                "defaults" => workflow.defaults = self.defaults(v, None),
                "concurrency" => {
                    workflow.concurrency = self.concurrency(v, &Scope::WORKFLOW, false)
                }
                "permissions" => workflow.permissions = self.permissions(v),
                "jobs" => workflow.jobs = self.jobs(v, e.key_span),
                _ => {}
            }
        }
        if root.get("on").is_none() {
            self.error(
                "a workflow needs `on:`, the events that trigger it",
                root.span,
            );
        }
        if root.get("jobs").is_none() {
            self.error("a workflow needs `jobs:`", root.span);
        }
        Some(workflow)
    }

    fn defaults(&mut self, node: &Node, scope: Option<&Scope>) -> RunDefaults {
        let mut out = RunDefaults::default();
        let Some(entries) = self.map(node, "`defaults`", &["run"]) else {
            return out;
        };
        for e in entries {
            let Some(run) = self.map(&e.value, "`defaults: run`", &["shell", "working-directory"])
            else {
                continue;
            };
            for r in run {
                match r.key.as_str() {
                    "shell" => out.shell = self.non_empty(&r.value, "defaults: run: shell", scope),
                    _ => {
                        out.working_directory =
                            self.non_empty(&r.value, "defaults: run: working-directory", scope)
                    }
                }
            }
        }
        out
    }

    fn concurrency(&mut self, node: &Node, scope: &Scope, job: bool) -> Option<Concurrency> {
        if node.as_map().is_none() {
            let group = if job {
                self.non_empty(node, "concurrency", Some(scope))?
            } else {
                self.text(node, "concurrency", Some(scope))?
            };
            return Some(Concurrency {
                group,
                cancel_in_progress: None,
            });
        }
        let entries = self.map(node, "`concurrency`", &["group", "cancel-in-progress"])?;
        let mut group = None;
        let mut cancel = None;
        for e in entries {
            match e.key.as_str() {
                "group" => group = self.non_empty(&e.value, "concurrency: group", Some(scope)),
                _ => {
                    cancel = self.boolean(&e.value, "concurrency: cancel-in-progress", Some(scope))
                }
            }
        }
        match group {
            Some(group) => Some(Concurrency {
                group,
                cancel_in_progress: cancel,
            }),
            None => {
                if node.get("group").is_none() {
                    self.error("`concurrency` needs a `group`", node.span);
                }
                None
            }
        }
    }

    fn permissions(&mut self, node: &Node) -> Option<Permissions> {
        if let Some(Literal::String(s)) = literal(node) {
            return match s.as_str() {
                "read-all" => Some(Permissions::ReadAll),
                "write-all" => Some(Permissions::WriteAll),
                _ => {
                    self.error_help(
                        format!("`permissions: {s}` is not a permission level"),
                        node.span,
                        "use read-all, write-all or a mapping of scopes",
                    );
                    None
                }
            };
        }
        let entries = self.map(node, "`permissions`", PERMISSION_SCOPES)?;
        let mut scopes = Vec::new();
        for e in entries {
            let level = literal(&e.value).map(|l| l.text());
            let allowed: &[&str] = match e.key.as_str() {
                "id-token" => &["write", "none"],
                "models" | "vulnerability-alerts" => &["read", "none"],
                _ => &["read", "write", "none"],
            };
            match level {
                Some(level) if allowed.contains(&level.as_str()) => {
                    scopes.push((e.key.clone(), level))
                }
                _ => self.error_help(
                    format!(
                        "`permissions: {}` should be one of {}",
                        e.key,
                        allowed.join(", ")
                    ),
                    e.value.span,
                    "permission levels are read, write and none",
                ),
            }
        }
        Some(Permissions::Scopes(scopes))
    }

    fn jobs(&mut self, node: &Node, key_span: Span) -> Vec<Job> {
        let Some(entries) = self.loose(node, "jobs") else {
            return Vec::new();
        };
        let mut jobs = Vec::new();
        for e in entries {
            if !valid_id(&e.key) || e.key.starts_with("__") {
                self.error(
                    format!("the job id `{}` is invalid: ids start with a letter or `_` and hold only letters, digits, `-` and `_` (fewer than 100)", e.key),
                    e.key_span,
                );
                continue;
            }
            self.job = Some(e.key.clone());
            if let Some(job) = self.job_body(&e.key, e.key_span, &e.value) {
                jobs.push(job);
            }
            self.job = None;
        }
        self.needs_graph(key_span, &jobs);
        jobs
    }

    /// Unknown needs, cycles, and a first job to start with, with the runner's messages.
    fn needs_graph(&mut self, span: Span, jobs: &[Job]) {
        if !self.errors.is_empty() {
            return;
        }
        let mut done: Vec<&str> = Vec::new();
        let mut left: Vec<&Job> = jobs.iter().collect();
        loop {
            let before = left.len();
            left.retain(|j| {
                if j.needs
                    .iter()
                    .all(|n| done.iter().any(|d| d.eq_ignore_ascii_case(n)))
                {
                    done.push(&j.id);
                    false
                } else {
                    true
                }
            });
            if left.len() == before {
                break;
            }
        }
        if !jobs.is_empty() && jobs.iter().all(|j| !j.needs.is_empty()) {
            self.error(
                "the workflow must contain at least one job with no dependencies",
                span,
            );
            return;
        }
        if jobs.is_empty() {
            self.error("the workflow has no jobs", span);
        }
        for job in left {
            for need in &job.needs {
                if done.iter().any(|d| d.eq_ignore_ascii_case(need)) {
                    continue;
                }
                let message = if jobs.iter().any(|j| j.id.eq_ignore_ascii_case(need)) {
                    format!("job `{}` depends on job `{need}`, which creates a cycle in the dependency graph", job.id)
                } else {
                    format!("job `{}` depends on unknown job `{need}`", job.id)
                };
                self.job = Some(job.id.clone());
                self.error(message, job.span);
                self.job = None;
            }
        }
    }

    fn job_body(&mut self, id: &str, span: Span, node: &Node) -> Option<Job> {
        let reusable = node.get("uses").is_some();
        let keys = if reusable { REUSABLE_KEYS } else { JOB_KEYS };
        let entries = self.map(
            node,
            if reusable {
                "a job that calls a workflow"
            } else {
                "a job"
            },
            keys,
        )?;
        let mut job = Job {
            id: id.to_string(),
            span,
            name: None,
            needs: Vec::new(),
            condition: None,
            strategy: None,
            permissions: None,
            concurrency: None,
            kind: JobKind::Reusable(Reusable {
                uses: String::new(),
                uses_span: span,
                with: Vec::new(),
                with_values: Vec::new(),
                secrets_inherit: false,
                secrets: Vec::new(),
            }),
        };
        let mut steps_job = StepsJob {
            runs_on: RunsOn::default(),
            environment: None,
            timeout_minutes: None,
            continue_on_error: None,
            container: None,
            services: Vec::new(),
            outputs: Vec::new(),
            env: Vec::new(),
            defaults: RunDefaults::default(),
            steps: Vec::new(),
        };
        let mut call = Reusable {
            uses: String::new(),
            uses_span: span,
            with: Vec::new(),
            with_values: Vec::new(),
            secrets_inherit: false,
            secrets: Vec::new(),
        };
        for e in entries {
            let v = &e.value;
            match e.key.as_str() {
                "name" => job.name = self.text(v, "name", Some(&Scope::JOB)),
                "needs" => {
                    job.needs = self
                        .strings(v, "needs", None)
                        .into_iter()
                        .map(|t| t.text)
                        .collect()
                }
                "if" => job.condition = self.condition(v, "if", &Scope::JOB_IF),
                "strategy" => job.strategy = self.strategy(v),
                "permissions" => job.permissions = self.permissions(v),
                "concurrency" => job.concurrency = self.concurrency(v, &Scope::JOB, true),
                "runs-on" => steps_job.runs_on = self.runs_on(v),
                "timeout-minutes" => {
                    steps_job.timeout_minutes = self.number(v, "timeout-minutes", Some(&Scope::JOB))
                }
                "cancel-timeout-minutes" => {
                    self.number(v, "cancel-timeout-minutes", Some(&Scope::JOB));
                }
                "continue-on-error" => {
                    steps_job.continue_on_error =
                        self.boolean(v, "continue-on-error", Some(&Scope::JOB))
                }
                "container" => steps_job.container = self.container(v, "container", false),
                "services" => steps_job.services = self.services(v),
                "env" => steps_job.env = self.env(v, "env", Some(&Scope::JOB_ENV)),
                "environment" => steps_job.environment = self.environment(v),
                "outputs" => steps_job.outputs = self.env(v, "outputs", Some(&Scope::JOB_OUTPUTS)),
                "defaults" => steps_job.defaults = self.defaults(v, Some(&Scope::JOB_DEFAULTS_RUN)),
                "steps" => steps_job.steps = self.steps(v),
                "uses" => {
                    call.uses = self.name(v, "uses").unwrap_or_default();
                    call.uses_span = v.span;
                }
                "with" => {
                    call.with = self.env(v, "with", Some(&Scope::JOB));
                    if let Some(entries) = v.as_map() {
                        call.with_values = entries
                            .iter()
                            .map(|e| (e.key.clone(), to_value(&e.value)))
                            .collect();
                    }
                }
                "secrets" => match literal(v) {
                    Some(Literal::String(s)) if s == "inherit" => call.secrets_inherit = true,
                    _ => call.secrets = self.env(v, "secrets", Some(&Scope::JOB_ENV)),
                },
                _ => {}
            }
        }
        if reusable {
            job.kind = JobKind::Reusable(call);
        } else {
            if node.get("runs-on").is_none() {
                self.error_help(
                    "a job needs `runs-on`",
                    span,
                    "`runs-on` names the runner (ubuntu-latest, ...); a job that calls a reusable workflow has `uses` instead",
                );
            }
            job.kind = JobKind::Steps(Box::new(steps_job));
        }
        Some(job)
    }

    fn runs_on(&mut self, node: &Node) -> RunsOn {
        if node.as_map().is_none() {
            return RunsOn {
                group: None,
                labels: self.strings(node, "runs-on", Some(&Scope::JOB)),
            };
        }
        let mut out = RunsOn::default();
        if let Some(entries) = self.map(node, "`runs-on`", &["group", "labels"]) {
            for e in entries {
                match e.key.as_str() {
                    "group" => {
                        out.group = self.non_empty(&e.value, "runs-on: group", Some(&Scope::JOB))
                    }
                    _ => out.labels = self.strings(&e.value, "runs-on: labels", Some(&Scope::JOB)),
                }
            }
        }
        out
    }

    fn environment(&mut self, node: &Node) -> Option<Environment> {
        if node.as_map().is_none() {
            let name = self.text(node, "environment", Some(&Scope::JOB))?;
            return Some(Environment { name, url: None });
        }
        let entries = self.map(node, "`environment`", &["name", "url"])?;
        let mut name = None;
        let mut url = None;
        for e in entries {
            match e.key.as_str() {
                "name" => name = self.text(&e.value, "environment: name", Some(&Scope::JOB)),
                _ => url = self.text(&e.value, "environment: url", Some(&ENVIRONMENT_URL)),
            }
        }
        match name {
            Some(name) => Some(Environment { name, url }),
            None => {
                if node.get("name").is_none() {
                    self.error("`environment` needs a `name`", node.span);
                }
                None
            }
        }
    }

    fn container(&mut self, node: &Node, what: &str, service: bool) -> Option<Container> {
        let scope = Some(&Scope::JOB);
        let mut out = Container {
            image: Text {
                text: String::new(),
                span: node.span,
            },
            env: Vec::new(),
            credentials: None,
            volumes: Vec::new(),
            ports: Vec::new(),
            options: None,
            entrypoint: None,
            command: None,
        };
        if node.as_map().is_none() {
            out.image = self.text(node, what, scope)?;
            return Some(out);
        }
        let keys = if service {
            SERVICE_KEYS
        } else {
            CONTAINER_KEYS
        };
        let entries = self.map(node, &format!("`{what}`"), keys)?;
        for e in entries {
            let v = &e.value;
            let key = format!("{what}: {}", e.key);
            match e.key.as_str() {
                "image" => out.image = self.text(v, &key, scope)?,
                "options" => out.options = self.text(v, &key, scope),
                "entrypoint" => out.entrypoint = self.text(v, &key, scope),
                "command" => out.command = self.text(v, &key, scope),
                "env" => out.env = self.env(v, &key, Some(&Scope::JOB_OUTPUTS)),
                "ports" => out.ports = self.list(v, &key, scope),
                "volumes" => out.volumes = self.list(v, &key, scope),
                _ => {
                    if let Some(creds) = self.map(v, &format!("`{key}`"), &["username", "password"])
                    {
                        let mut c = Credentials {
                            username: None,
                            password: None,
                        };
                        for p in creds {
                            let field = self.non_empty(
                                &p.value,
                                &format!("{key}: {}", p.key),
                                Some(&CONTAINER_CREDENTIALS),
                            );
                            match p.key.as_str() {
                                "username" => c.username = field,
                                _ => c.password = field,
                            }
                        }
                        out.credentials = Some(c);
                    }
                }
            }
        }
        if node.get("image").is_none() {
            self.error(format!("`{what}` needs an `image`"), node.span);
            return None;
        }
        Some(out)
    }

    fn services(&mut self, node: &Node) -> Vec<Service> {
        let Some(entries) = self.loose(node, "services") else {
            return Vec::new();
        };
        entries
            .iter()
            .filter_map(|e| {
                let container = self.container(&e.value, &format!("services: {}", e.key), true)?;
                Some(Service {
                    id: e.key.clone(),
                    container,
                })
            })
            .collect()
    }

    fn strategy(&mut self, node: &Node) -> Option<Strategy> {
        let scope = Some(&Scope::STRATEGY);
        let entries = self.map(node, "`strategy`", &["fail-fast", "max-parallel", "matrix"])?;
        let mut out = Strategy {
            matrix: None,
            fail_fast: Field::Value(true),
            max_parallel: None,
        };
        for e in entries {
            let v = &e.value;
            match e.key.as_str() {
                "fail-fast" => {
                    if let Some(f) = self.boolean(v, "strategy: fail-fast", scope) {
                        out.fail_fast = f;
                    }
                }
                "max-parallel" => {
                    out.max_parallel = self.number(v, "strategy: max-parallel", scope)
                }
                _ => out.matrix = self.matrix(v, e.key_span),
            }
        }
        Some(out)
    }

    /// A matrix without expressions is checked and expanded now, so that its errors (and
    /// the 256-job limit) are reported with the file's positions; one with expressions is
    /// kept for the caller, its expressions checked.
    fn matrix(&mut self, node: &Node, key_span: Span) -> Option<Matrix> {
        if let Some(Literal::String(s)) = literal(node) {
            self.check(&s, node, "strategy: matrix", Some(&Scope::STRATEGY));
            if !s.contains("${{") {
                self.expected(
                    "a mapping of lists or an expression",
                    "strategy: matrix",
                    node,
                );
                return None;
            }
            return Some(Matrix::Deferred {
                value: Value::String(s),
                span: node.span,
            });
        }
        let entries = self.loose(node, "strategy: matrix")?;
        let mut deferred = false;
        for e in entries {
            let mut todo = vec![&e.value];
            while let Some(n) = todo.pop() {
                match &n.value {
                    crate::source::yaml::Value::Scalar { text, .. } => {
                        if matches!(literal(n), Some(Literal::String(_))) && text.contains("${{") {
                            deferred = true;
                            self.check(
                                text,
                                n,
                                &format!("strategy: matrix: {}", e.key),
                                Some(&Scope::STRATEGY),
                            );
                        }
                    }
                    crate::source::yaml::Value::Seq(items) => todo.extend(items),
                    crate::source::yaml::Value::Map(m) => todo.extend(m.iter().map(|e| &e.value)),
                }
            }
        }
        let value = to_value(node);
        if deferred {
            return Some(Matrix::Deferred {
                value,
                span: node.span,
            });
        }
        if let Err(e) = crate::github::matrix::expand(&value) {
            let span = e
                .key
                .as_deref()
                .and_then(|k| node.entry(k))
                .map_or(key_span, |entry| entry.key_span);
            self.error(format!("`strategy: matrix`: {}", e.message), span);
            return None;
        }
        Some(Matrix::Literal(value))
    }

    pub(super) fn steps(&mut self, node: &Node) -> Vec<Step> {
        let Some(items) = node.as_seq() else {
            if !node.is_null() {
                self.expected("a list of steps", "steps", node);
            }
            return Vec::new();
        };
        let mut ids: Vec<String> = Vec::new();
        let mut steps = Vec::new();
        for (i, item) in items.iter().enumerate() {
            self.step = Some(format!("step {}", i + 1));
            if let Some(step) = self.step_body(i + 1, item, &mut ids) {
                steps.push(step);
            }
            self.step = None;
        }
        steps
    }

    fn step_body(&mut self, index: usize, node: &Node, ids: &mut Vec<String>) -> Option<Step> {
        let (has_run, has_uses) = (node.get("run").is_some(), node.get("uses").is_some());
        if node.as_map().is_some() {
            if has_run && has_uses {
                self.error("a step has either `run` or `uses`, not both", node.span);
                return None;
            }
            if !has_run && !has_uses {
                self.error(
                    "a step needs `run` (a script) or `uses` (an action)",
                    node.span,
                );
                return None;
            }
        }
        let keys = if has_run {
            RUN_STEP_KEYS
        } else {
            USES_STEP_KEYS
        };
        let entries = self.map(node, "a step", keys)?;
        let scope = Some(&Scope::STEP);
        let mut step = Step {
            index,
            span: node.span,
            id: None,
            name: None,
            condition: None,
            env: Vec::new(),
            continue_on_error: None,
            timeout_minutes: None,
            action: StepAction::Uses {
                uses: String::new(),
                with: Vec::new(),
            },
        };
        let (mut run, mut shell, mut dir, mut uses, mut with) =
            (None, None, None, None, Vec::new());
        for e in entries {
            let v = &e.value;
            match e.key.as_str() {
                "name" => step.name = self.text(v, "name", scope),
                "id" => {
                    let Some(id) = self.name(v, "id") else {
                        continue;
                    };
                    if !valid_id(&id) || id.starts_with("__") {
                        self.error(format!("the step id `{id}` is invalid: ids start with a letter or `_` and hold only letters, digits, `-` and `_`"), v.span);
                    } else if ids.iter().any(|o| o.eq_ignore_ascii_case(&id)) {
                        self.error(
                            format!("the step id `{id}` is used more than once in this job"),
                            v.span,
                        );
                    } else {
                        ids.push(id.clone());
                        step.id = Some(id);
                    }
                }
                "if" => step.condition = self.condition(v, "if", &Scope::STEP_IF),
                "env" => step.env = self.env(v, "env", scope),
                "continue-on-error" => {
                    step.continue_on_error = self.boolean(v, "continue-on-error", scope)
                }
                "timeout-minutes" => {
                    step.timeout_minutes = self.number(v, "timeout-minutes", scope)
                }
                "run" => run = self.text(v, "run", scope),
                "shell" => shell = self.non_empty(v, "shell", None),
                "working-directory" => dir = self.non_empty(v, "working-directory", scope),
                "uses" => uses = self.uses(v),
                _ => with = self.env(v, "with", scope),
            }
        }
        step.action = match (run, uses) {
            (Some(run), _) => StepAction::Run {
                run,
                shell,
                working_directory: dir,
            },
            (None, Some(uses)) => StepAction::Uses { uses, with },
            _ => return None,
        };
        Some(step)
    }

    /// `uses:` of a step: `owner/repo[/path]@ref`, `./local/path` or `docker://image`.
    fn uses(&mut self, node: &Node) -> Option<String> {
        let uses = self.name(node, "uses")?;
        if uses.starts_with("docker://") || uses.starts_with("./") || uses.starts_with(".\\") {
            return Some(uses);
        }
        let ok = match uses.split_once('@') {
            Some((path, git_ref)) => {
                let parts: Vec<&str> = path.split(['/', '\\']).filter(|s| !s.is_empty()).collect();
                parts.len() >= 2 && !git_ref.is_empty() && !git_ref.contains('@')
            }
            None => false,
        };
        if !ok {
            self.error_help(
                format!("`uses: {uses}` is not an action reference"),
                node.span,
                "expected {owner}/{repo}[/path]@ref, ./path/to/action or docker://image",
            );
            return None;
        }
        Some(uses)
    }
}
