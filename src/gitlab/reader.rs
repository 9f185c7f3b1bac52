//! The pipeline's own keys: `stages`, `variables`, `default`, `workflow`, and creating the jobs
//! from their definitions with `rules`, `only`/`except` and `inherit` applied.

use std::collections::{HashMap, HashSet};

use crate::pipeline::*;
use crate::source::yaml::{Node, Span};

use super::rules::{self, Condition, Policy, Rule};
use super::*;

impl Reader<'_> {
    pub(super) fn error(&mut self, message: impl Into<String>, span: Span) {
        let mut d = Diagnostic::error(message, Some(span));
        d.job = self.job.clone();
        self.errors.push(d);
    }

    pub(super) fn error_help(
        &mut self,
        message: impl Into<String>,
        span: Span,
        help: impl Into<String>,
    ) {
        let mut d = Diagnostic::error(message, Some(span)).with_help(help);
        d.job = self.job.clone();
        self.errors.push(d);
    }

    pub(super) fn warn(&mut self, message: impl Into<String>, span: Span) {
        let mut d = Diagnostic::warning(message, Some(span));
        d.job = self.job.clone();
        self.warnings.push(d);
    }

    pub(super) fn expected(&mut self, what: &str, key: &str, node: &Node) {
        self.error(
            format!("`{key}` should be {what}, found {}", node.kind()),
            node.span,
        );
    }

    pub(super) fn pipeline(&mut self, root: &Node) -> Option<Pipeline> {
        let entries = root.as_map()?;

        let mut stages = match root.get("stages").or_else(|| root.get("types")) {
            Some(node) => self.string_list("stages", node).unwrap_or_default(),
            None => vec!["build".into(), "test".into(), "deploy".into()],
        };
        // GitLab always has .pre first and .post last.
        stages.retain(|s| s != ".pre" && s != ".post");
        stages.insert(0, ".pre".into());
        stages.push(".post".into());

        let mut variables = Vec::new();
        let mut defaults = Defaults::default();
        for key in [
            "image",
            "before_script",
            "after_script",
            "cache",
            "services",
        ] {
            if let Some(node) = root.get(key) {
                self.default_key(&mut defaults, &mut variables, key, node);
            }
        }
        if let Some(node) = root.get("variables") {
            variables.extend(self.variables(node));
        }
        if let Some(default) = root.get("default") {
            match default.as_map() {
                Some(entries) => {
                    for e in entries {
                        if DEFAULT_KEYS.contains(&e.key.as_str()) {
                            self.default_key(&mut defaults, &mut variables, &e.key, &e.value);
                        } else if DEFAULT_NOT_YET.contains(&e.key.as_str()) {
                            self.warn(
                                format!(
                                    "`default: {}` is not supported by berth yet; ignored",
                                    e.key
                                ),
                                e.key_span,
                            );
                        } else {
                            self.error(
                                format!("`default` has an unknown key `{}`", e.key),
                                e.key_span,
                            );
                        }
                    }
                }
                None if default.is_null() => {}
                None => self.expected("a mapping", "default", default),
            }
        }
        let mut name = None;
        if let Some(workflow) = root.get("workflow") {
            name = self.workflow(workflow, &mut variables);
        }

        self.default_cost = [
            "image",
            "before_script",
            "after_script",
            "cache",
            "services",
            "default",
        ]
        .iter()
        .filter_map(|k| root.get(k))
        .map(yaml::cost)
        .sum();
        let visible = Visible::new(self.ctx, &variables);
        let mut jobs = Vec::new();
        let mut left_out = Vec::new();
        let mut defined = 0;
        for e in entries {
            if GLOBAL_KEYS.contains(&e.key.as_str()) || e.key.starts_with('.') {
                continue;
            }
            defined += 1;
            self.job = Some(e.key.clone());
            self.create_jobs(
                &e.key,
                e.key_span,
                &e.value,
                &defaults,
                &visible,
                &mut jobs,
                &mut left_out,
            );
            self.job = None;
        }
        drop(visible);
        if defined == 0 && self.errors.is_empty() {
            self.error("the pipeline has no jobs", root.span);
        }
        if self.refused.is_some() {
            jobs.clear();
            left_out.clear();
        }
        self.resolve_needs(&mut jobs, &left_out);

        let hermetic = match root.get("hermetic") {
            None => false,
            Some(n) => match n.as_bool() {
                Some(b) => b,
                None => {
                    self.expected("true or false", "hermetic", n);
                    false
                }
            },
        };
        let pipeline = Pipeline {
            stages,
            variables,
            jobs,
            left_out,
            name,
            hermetic,
        };
        self.check_graph(&pipeline);
        Some(pipeline)
    }

    /// `workflow: rules` decide whether there is a pipeline at all, and may set variables.
    pub(super) fn workflow(
        &mut self,
        node: &Node,
        variables: &mut Vec<Variable>,
    ) -> Option<String> {
        if node.is_null() {
            return None;
        }
        let Some(entries) = node.as_map() else {
            self.expected("a mapping with `rules`", "workflow", node);
            return None;
        };
        for e in entries {
            if !["rules", "name", "auto_cancel"].contains(&e.key.as_str()) {
                self.error(
                    format!("`workflow` has an unknown key `{}`", e.key),
                    e.key_span,
                );
            }
        }
        if let Some(rules_node) = node.get("rules") {
            let rules = self.rules(rules_node).unwrap_or_default();
            let vars = self.visible(&[variables], &[]);
            let lookup = |n: &str| vars.get(n).cloned();
            match rules::first_match(&rules, &lookup, self.ctx) {
                Ok(Some(i)) => {
                    let rule = &rules[i];
                    if rule.when == Some(When::Never) {
                        self.refused = Some(format!(
                            "workflow rule {} ({}) says `when: never`",
                            i + 1,
                            rule.condition.describe()
                        ));
                    } else {
                        variables.extend(rule.variables.iter().cloned());
                    }
                }
                Ok(None) => {
                    self.refused = Some("no `workflow: rules` entry matched".into());
                }
                Err((span, e)) => self.error(e, span),
            }
        }
        let name = node.get("name").and_then(|n| n.as_text())?;
        let vars = self.visible(&[variables], &[]);
        Some(crate::pipeline::expand::expand(
            name,
            &|n| vars.get(n).cloned(),
            0,
        ))
    }

    /// The variables a job's conditions can see, expanded: the context's predefined ones, then
    /// each layer in order, then the command line's.
    pub(super) fn visible(
        &self,
        layers: &[&[Variable]],
        extra: &[(String, String)],
    ) -> HashMap<String, String> {
        let mut raw: Vec<(String, String, bool)> = self
            .ctx
            .variables
            .iter()
            .chain(extra)
            .map(|(k, v)| (k.clone(), v.clone(), false))
            .collect();
        for layer in layers {
            raw.extend(
                layer
                    .iter()
                    .map(|v| (v.name.clone(), v.value.clone(), v.expand)),
            );
        }
        raw.extend(
            self.ctx
                .overrides
                .iter()
                .map(|(k, v)| (k.clone(), v.clone(), false)),
        );
        let mut last: HashMap<String, (String, bool)> = HashMap::new();
        for (k, v, e) in raw {
            last.insert(k, (v, e));
        }
        let plain: HashMap<&str, &str> = last
            .iter()
            .map(|(k, (v, _))| (k.as_str(), v.as_str()))
            .collect();
        last.iter()
            .map(|(k, (v, e))| {
                let value = if *e {
                    crate::pipeline::expand::expand(v, &|n| plain.get(n).map(|s| s.to_string()), 0)
                } else {
                    v.clone()
                };
                (k.clone(), value)
            })
            .collect()
    }

    pub(super) fn default_key(
        &mut self,
        defaults: &mut Defaults,
        variables: &mut Vec<Variable>,
        key: &str,
        node: &Node,
    ) {
        match key {
            "image" => defaults.image = self.image(node),
            "before_script" => defaults.before_script = self.script("before_script", node),
            "after_script" => defaults.after_script = self.script("after_script", node),
            "timeout" => defaults.timeout = self.timeout(node),
            "retry" => defaults.retry = self.retry(node),
            "artifacts" => defaults.artifacts = self.artifacts(node),
            "cache" => defaults.caches = Some(self.caches(node)),
            "services" => defaults.services = Some(self.services(node)),
            "variables" => variables.extend(self.variables(node)),
            _ => {}
        }
    }

    /// Read one job definition, expand `parallel`, and keep the instances its rules create.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn create_jobs(
        &mut self,
        name: &str,
        span: Span,
        node: &Node,
        defaults: &Defaults,
        visible: &Visible,
        jobs: &mut Vec<Job>,
        left_out: &mut Vec<LeftOut>,
    ) {
        let Some(inherit) = self.inherit(node) else {
            return;
        };
        let Some(job) = self.job_def(name, span, node, defaults, &inherit) else {
            return;
        };
        let job_rules = node.get("rules").and_then(|n| self.rules(n));
        let only = node.get("only").and_then(|n| self.policy(n, "only"));
        let except = node.get("except").and_then(|n| self.policy(n, "except"));
        if job_rules.is_some() && (node.get("only").is_some() || node.get("except").is_some()) {
            self.error(
                "a job cannot use `rules` together with `only` or `except`",
                node.get("rules").map(|n| n.span).unwrap_or(span),
            );
            return;
        }
        let explicit_allow_failure = node.get("allow_failure").map(|n| self.allow_failure(n));
        let instances = match parallel::expand(node.get("parallel")) {
            Ok(list) => list,
            Err(d) => {
                self.errors.push(d.in_job(name));
                return;
            }
        };
        let keep: Option<HashSet<&str>> = inherit
            .variables
            .as_ref()
            .map(|keep| keep.iter().map(String::as_str).collect());
        let per_job = yaml::cost(node).saturating_add(self.default_cost);
        for instance in instances {
            if let Err(e) = self.budget.charge(per_job) {
                self.error(format!("{e}: `{name}` makes jobs past it"), span);
                return;
            }
            let mut job = job.clone();
            if let Some(inst) = instance {
                job.name = inst.name(name);
                let mut vars = inst.variables;
                vars.append(&mut job.variables);
                job.variables = vars;
                job.variables.extend(inst.matrix);
            }
            // Only rules, `only` and `except` read the job's variables; GitLab's default `only`
            // reads the context alone, and most jobs of a big pipeline have nothing else.
            let conditional = job_rules.is_some() || only.is_some() || except.is_some();
            // The job moves on below; what the lookup reads of it is copied (a job's own).
            let (own_vars, job_name, job_stage) = if conditional {
                (job.variables.clone(), job.name.clone(), job.stage.clone())
            } else {
                Default::default()
            };
            let own: HashMap<&str, (&str, bool)> = own_vars
                .iter()
                .map(|v| (v.name.as_str(), (v.value.as_str(), v.expand)))
                .collect();
            // GitLab's precedence, highest first: the command line, the job's variables, the
            // global ones it inherits, the job's predefined ones, the context's.
            let raw = |n: &str| -> Option<(&str, bool)> {
                if let Some(v) = visible.overrides.get(n) {
                    return Some((v, false));
                }
                if let Some(&v) = own.get(n) {
                    return Some(v);
                }
                if keep.as_ref().is_none_or(|k| k.contains(n)) {
                    if let Some(&v) = visible.globals.get(n) {
                        return Some(v);
                    }
                }
                match n {
                    "CI_JOB_NAME" => return Some((job_name.as_str(), false)),
                    "CI_JOB_STAGE" => return Some((job_stage.as_str(), false)),
                    _ => {}
                }
                visible.ctx.get(n).map(|v| (*v, false))
            };
            let ctx = self.ctx;
            let lookup = |n: &str| -> Option<String> {
                if !conditional {
                    return ctx.var(n).map(String::from);
                }
                let (value, expand) = raw(n)?;
                Some(if expand {
                    crate::pipeline::expand::expand(
                        value,
                        &|m| raw(m).map(|(v, _)| v.to_string()),
                        0,
                    )
                } else {
                    value.to_string()
                })
            };
            let decided = match &job_rules {
                Some(rules) => {
                    self.apply_rules(job, rules, &lookup, explicit_allow_failure.clone())
                }
                None => self.apply_policies(job, only.as_ref(), except.as_ref(), &lookup),
            };
            match decided {
                Ok(job) => jobs.push(job),
                Err(out) => left_out.push(out),
            }
        }
    }

    pub(super) fn apply_rules(
        &mut self,
        mut job: Job,
        rules: &[Rule],
        lookup: &dyn Fn(&str) -> Option<String>,
        explicit_allow_failure: Option<AllowFailure>,
    ) -> Result<Job, LeftOut> {
        let leave = |job: &Job, reason: String| LeftOut {
            name: job.name.clone(),
            reason,
        };
        let i = match rules::first_match(rules, lookup, self.ctx) {
            Ok(Some(i)) => i,
            Ok(None) => return Err(leave(&job, "no rule matched".into())),
            Err((span, e)) => {
                self.error(e, span);
                return Err(leave(&job, "a rule could not be evaluated".into()));
            }
        };
        let rule = &rules[i];
        let what = format!("rule {} ({})", i + 1, rule.condition.describe());
        let when = rule.when.unwrap_or(job.when);
        if when == When::Never {
            return Err(leave(&job, format!("{what}: when: never")));
        }
        // GitLab takes a missing `allow_failure` from the job's own `when:`, not the rule's.
        let manual_job = job.when == When::Manual;
        job.when = when;
        if rule.start_in.is_some() {
            job.start_in = rule.start_in;
        }
        // With rules, a job made manual by its rule fails the pipeline unless it says
        // otherwise; a job that is `when: manual` itself may fail, as without rules.
        job.allow_failure = rule
            .allow_failure
            .clone()
            .or(explicit_allow_failure)
            .unwrap_or(if manual_job {
                AllowFailure::Yes
            } else {
                AllowFailure::No
            });
        job.variables.extend(rule.variables.iter().cloned());
        if let Some(needs) = &rule.needs {
            job.needs = Some(needs.clone());
        }
        job.reason = Some(what);
        Ok(job)
    }

    pub(super) fn apply_policies(
        &mut self,
        mut job: Job,
        only: Option<&Policy>,
        except: Option<&Policy>,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Job, LeftOut> {
        let leave = |job: &Job, reason: String| LeftOut {
            name: job.name.clone(),
            reason,
        };
        // GitLab's default: `only: [branches, tags]`.
        let default_only = Policy {
            refs: Some(vec!["branches".into(), "tags".into()]),
            ..Policy::default()
        };
        let only_given = only.is_some();
        let only = only.unwrap_or(&default_only);
        match only.parts(lookup, self.ctx) {
            Ok(parts) if parts.iter().all(|p| *p) => {}
            Ok(_) => {
                let reason = if only_given {
                    "`only` did not match".to_string()
                } else {
                    "GitLab's default `only: [branches, tags]` did not match".to_string()
                };
                return Err(leave(&job, reason));
            }
            Err(e) => {
                self.error(e, job.span);
                return Err(leave(&job, "`only` could not be evaluated".into()));
            }
        }
        if let Some(except) = except {
            match except.parts(lookup, self.ctx) {
                Ok(parts) if parts.iter().any(|p| *p) => {
                    return Err(leave(&job, "`except` matched".into()))
                }
                Ok(_) => {}
                Err(e) => {
                    self.error(e, job.span);
                    return Err(leave(&job, "`except` could not be evaluated".into()));
                }
            }
        }
        if only_given || except.is_some() {
            job.reason = Some(
                match (only_given, except.is_some()) {
                    (true, true) => "`only` matched and `except` did not",
                    (true, false) => "`only` matched",
                    _ => "`except` did not match",
                }
                .into(),
            );
        }
        Ok(job)
    }

    pub(super) fn rules(&mut self, node: &Node) -> Option<Vec<Rule>> {
        if node.is_null() {
            return Some(Vec::new());
        }
        let Some(items) = node.as_seq() else {
            self.expected("a list of rules", "rules", node);
            return None;
        };
        // `!reference` can put a list of rules where one rule goes: GitLab flattens them.
        let mut flat: Vec<&Node> = Vec::new();
        let mut stack: Vec<&Node> = items.iter().rev().collect();
        while let Some(n) = stack.pop() {
            match n.as_seq() {
                Some(inner) => stack.extend(inner.iter().rev()),
                None => flat.push(n),
            }
        }
        let mut out = Vec::new();
        for item in flat {
            let Some(entries) = item.as_map() else {
                self.expected("a mapping like `{if: ..., when: ...}`", "rules", item);
                continue;
            };
            for e in entries {
                if ![
                    "if",
                    "changes",
                    "exists",
                    "when",
                    "start_in",
                    "allow_failure",
                    "variables",
                    "needs",
                    "interruptible",
                ]
                .contains(&e.key.as_str())
                {
                    self.error(format!("a rule has an unknown key `{}`", e.key), e.key_span);
                }
            }
            let condition = match Condition::read(item) {
                Ok(c) => c,
                Err(d) => {
                    self.push_error(d);
                    continue;
                }
            };
            out.push(Rule {
                span: item.span,
                condition,
                when: item.get("when").and_then(|n| self.when(n)),
                start_in: item.get("start_in").and_then(|n| self.start_in(n)),
                allow_failure: item.get("allow_failure").map(|n| self.allow_failure(n)),
                variables: item
                    .get("variables")
                    .map(|n| self.variables(n))
                    .unwrap_or_default(),
                needs: item.get("needs").and_then(|n| self.needs(n)),
            });
        }
        Some(out)
    }

    pub(super) fn policy(&mut self, node: &Node, key: &str) -> Option<Policy> {
        match Policy::read(node, key) {
            Ok(p) => Some(p),
            Err(d) => {
                self.push_error(d);
                None
            }
        }
    }

    pub(super) fn push_error(&mut self, mut d: Diagnostic) {
        d.job = self.job.clone();
        self.errors.push(d);
    }

    /// `inherit: {default, variables}`: `None` inside means everything is inherited.
    pub(super) fn inherit(&mut self, node: &Node) -> Option<Inherit> {
        let mut out = Inherit::default();
        let Some(inherit) = node.get("inherit") else {
            return Some(out);
        };
        let Some(entries) = inherit.as_map() else {
            self.expected(
                "a mapping with `default` and `variables`",
                "inherit",
                inherit,
            );
            return None;
        };
        for e in entries {
            let value = if let Some(b) = e.value.as_bool() {
                if b {
                    None
                } else {
                    Some(Vec::new())
                }
            } else {
                Some(
                    self.string_list(&format!("inherit: {}", e.key), &e.value)
                        .unwrap_or_default(),
                )
            };
            match e.key.as_str() {
                "default" => out.default = value,
                "variables" => out.variables = value,
                other => self.error(
                    format!("`inherit` has an unknown key `{other}`"),
                    e.key_span,
                ),
            }
        }
        Some(out)
    }
}
