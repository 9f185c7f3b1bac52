//! The keywords a job (or `default`) is made of: services, caches, artifacts, scripts, image,
//! variables, needs, when, allow_failure, timeout, retry.

use std::time::Duration;

use crate::pipeline::*;
use crate::source::yaml::{Node, Value};

use super::*;

/// The types `artifacts: reports` takes, as GitLab lists them.
const REPORT_TYPES: &[&str] = &[
    "accessibility",
    "annotations",
    "api_fuzzing",
    "browser_performance",
    "coverage_report",
    "codequality",
    "container_scanning",
    "coverage_fuzzing",
    "cyclonedx",
    "dast",
    "dependency_scanning",
    "dotenv",
    "junit",
    "load_performance",
    "metrics",
    "requirements",
    "repository_xray",
    "sast",
    "secret_detection",
    "terraform",
    // Deprecated, still accepted by GitLab.
    "performance",
    "license_scanning",
];

impl Reader<'_> {
    pub(super) fn services(&mut self, node: &Node) -> Vec<Service> {
        if node.is_null() {
            return Vec::new();
        }
        let Some(items) = node.as_seq() else {
            self.expected("a list of images", "services", node);
            return Vec::new();
        };
        let mut out = Vec::new();
        for item in items {
            if let Some(image) = item.as_text() {
                out.push(Service {
                    image: image.to_string(),
                    aliases: Service::default_aliases(image),
                    entrypoint: None,
                    command: None,
                    variables: Vec::new(),
                    ports: Vec::new(),
                    options: Default::default(),
                    credentials: None,
                });
                continue;
            }
            if item.as_map().is_none() {
                self.expected("an image name or `{name, alias, ...}`", "services", item);
                continue;
            }
            let Some(image) = item.get("name").and_then(|n| n.as_text()) else {
                self.error("a service needs a `name` (its image)", item.span);
                continue;
            };
            for e in item.as_map().unwrap_or_default() {
                if ![
                    "name",
                    "alias",
                    "entrypoint",
                    "command",
                    "variables",
                    "pull_policy",
                    "docker",
                    "kubernetes",
                ]
                .contains(&e.key.as_str())
                {
                    self.error(
                        format!("a service has an unknown key `{}`", e.key),
                        e.key_span,
                    );
                }
            }
            let aliases = match item.get("alias").and_then(|a| a.as_text()) {
                Some(a) => a
                    .split(|c: char| c == ',' || c.is_whitespace())
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect(),
                None => Service::default_aliases(image),
            };
            let list = |this: &mut Self, key: &str| {
                item.get(key).map(|n| match n.as_text() {
                    Some(one) => vec![one.to_string()],
                    None => this
                        .string_list(&format!("services: {key}"), n)
                        .unwrap_or_default(),
                })
            };
            let entrypoint = list(self, "entrypoint");
            let command = list(self, "command");
            let variables = item
                .get("variables")
                .map(|v| self.variables(v))
                .unwrap_or_default();
            out.push(Service {
                image: image.to_string(),
                aliases,
                entrypoint,
                command,
                variables,
                ports: Vec::new(),
                options: Default::default(),
                credentials: None,
            });
        }
        out
    }

    /// `cache`: one mapping or a list of them.
    pub(super) fn caches(&mut self, node: &Node) -> Vec<Cache> {
        if node.is_null() {
            return Vec::new();
        }
        let items: Vec<&Node> = match node.as_seq() {
            Some(items) => items.iter().collect(),
            None => vec![node],
        };
        items.into_iter().filter_map(|n| self.cache(n)).collect()
    }

    pub(super) fn cache(&mut self, node: &Node) -> Option<Cache> {
        let Some(entries) = node.as_map() else {
            self.expected("a mapping with `key` and `paths`", "cache", node);
            return None;
        };
        let mut cache = Cache::new(CacheKey::Text("default".into()), Vec::new());
        for e in entries {
            match e.key.as_str() {
                "key" => {
                    if let Some(text) = e.value.as_text() {
                        cache.key = CacheKey::Text(text.to_string());
                    } else if let Some(files) = e.value.get("files") {
                        let files = self
                            .string_list("cache: key: files", files)
                            .unwrap_or_default();
                        let at = e.value.get("files").map_or(e.value.span, |f| f.span);
                        // GitLab refuses more than two.
                        if files.len() > 2 {
                            self.error_help(
                                format!(
                                    "`cache: key: files` lists {} files; GitLab takes at most two",
                                    files.len()
                                ),
                                at,
                                "keep the one or two files whose changes should make a new cache",
                            );
                        } else if files.is_empty() {
                            self.error("`cache: key: files` needs one or two files", at);
                        }
                        for k in e.value.as_map().unwrap_or_default() {
                            if k.key != "files" && k.key != "prefix" {
                                self.error(
                                    format!("`cache: key` has an unknown key `{}`", k.key),
                                    k.key_span,
                                );
                            }
                        }
                        let prefix = e
                            .value
                            .get("prefix")
                            .and_then(|p| p.as_text())
                            .map(String::from);
                        cache.key = CacheKey::Files { files, prefix };
                    } else if !e.value.is_null() {
                        self.expected("a string or `{files: [...]}`", "cache: key", &e.value);
                    }
                }
                "paths" => {
                    let list = self
                        .string_list("cache: paths", &e.value)
                        .unwrap_or_default();
                    let items = e.value.as_seq().unwrap_or_default();
                    for (path, item) in list.into_iter().zip(items) {
                        if let Err(why) = crate::project::paths::check_pattern(&path) {
                            self.error(format!("cache path `{path}` {why}"), item.span);
                        } else if path.contains(['*', '?', '[', '{']) {
                            self.warn(
                                format!("cache path `{path}` is a glob; berth mounts cache paths as volumes and skips it"),
                                item.span,
                            );
                        } else {
                            cache.paths.push(path);
                        }
                    }
                }
                "policy" => {
                    cache.policy = match e.value.as_text() {
                        Some("pull") => CachePolicy::Pull,
                        Some("push") => CachePolicy::Push,
                        Some("pull-push") => CachePolicy::PullPush,
                        _ => {
                            self.error_help(
                                format!(
                                    "`cache: policy: {}` is not a valid value",
                                    e.value.as_scalar().unwrap_or("...")
                                ),
                                e.value.span,
                                "use pull, push or pull-push",
                            );
                            CachePolicy::PullPush
                        }
                    }
                }
                "when" => {
                    cache.when = match e.value.as_text() {
                        Some("on_success") => CacheWhen::OnSuccess,
                        Some("on_failure") => CacheWhen::OnFailure,
                        Some("always") => CacheWhen::Always,
                        _ => {
                            self.error_help(
                                format!(
                                    "`cache: when: {}` is not a valid value",
                                    e.value.as_scalar().unwrap_or("...")
                                ),
                                e.value.span,
                                "use on_success, on_failure or always",
                            );
                            CacheWhen::OnSuccess
                        }
                    }
                }
                "fallback_keys" => {
                    cache.fallback_keys = self
                        .string_list("cache: fallback_keys", &e.value)
                        .unwrap_or_default();
                }
                "untracked" => match e.value.as_bool() {
                    Some(b) => {
                        cache.untracked = b;
                        if b {
                            self.warn(
                                "`cache: untracked` is not supported by berth yet: the untracked files are not cached",
                                e.key_span,
                            );
                        }
                    }
                    None => self.expected("true or false", "cache: untracked", &e.value),
                },
                // Protected branches are GitLab's; a local cache has no `-protected` suffix.
                "unprotect" => {
                    if e.value.as_bool().is_none() {
                        self.expected("true or false", "cache: unprotect", &e.value);
                    }
                }
                other => self.error(format!("`cache` has an unknown key `{other}`"), e.key_span),
            }
        }
        Some(cache)
    }

    pub(super) fn artifacts(&mut self, node: &Node) -> Option<Artifacts> {
        if node.is_null() {
            return None;
        }
        let Some(entries) = node.as_map() else {
            self.expected("a mapping with `paths`", "artifacts", node);
            return None;
        };
        let mut artifacts = Artifacts {
            paths: Vec::new(),
            exclude: Vec::new(),
            untracked: false,
            when: ArtifactsWhen::OnSuccess,
            name: None,
            dotenv: Vec::new(),
            reports: Vec::new(),
        };
        for e in entries {
            match e.key.as_str() {
                "paths" | "exclude" => {
                    let list = if e.value.is_null() {
                        Vec::new()
                    } else {
                        self.string_list(&format!("artifacts: {}", e.key), &e.value)
                            .unwrap_or_default()
                    };
                    let items = e.value.as_seq().unwrap_or_default();
                    for (path, item) in list.iter().zip(items) {
                        if let Err(why) = crate::project::paths::check_pattern(path) {
                            self.error_help(
                                format!("artifact path `{path}` {why}"),
                                item.span,
                                "artifact paths are relative to the project directory and stay inside it",
                            );
                        }
                    }
                    if e.key == "paths" {
                        artifacts.paths = list;
                    } else {
                        artifacts.exclude = list;
                    }
                }
                "when" => {
                    artifacts.when = match e.value.as_text() {
                        Some("on_success") => ArtifactsWhen::OnSuccess,
                        Some("on_failure") => ArtifactsWhen::OnFailure,
                        Some("always") => ArtifactsWhen::Always,
                        _ => {
                            self.error_help(
                                format!(
                                    "`artifacts: when: {}` is not a valid value",
                                    e.value.as_scalar().unwrap_or("...")
                                ),
                                e.value.span,
                                "use on_success, on_failure or always",
                            );
                            ArtifactsWhen::OnSuccess
                        }
                    }
                }
                "name" => artifacts.name = e.value.as_text().map(String::from),
                // Artifacts live with the run record; there is no server to expire them.
                "expire_in" | "expose_as" | "public" | "access" => {}
                "untracked" => match e.value.as_bool() {
                    Some(b) => artifacts.untracked = b,
                    None => self.expected("true or false", "artifacts: untracked", &e.value),
                },
                "reports" => self.reports(&e.value, &mut artifacts),
                other => self.error(
                    format!("`artifacts` has an unknown key `{other}`"),
                    e.key_span,
                ),
            }
        }
        Some(artifacts)
    }

    /// `artifacts: reports`: each type's files, kept whatever the job's result; dotenv's
    /// variables also go to the jobs that receive the artifacts.
    fn reports(&mut self, node: &Node, artifacts: &mut Artifacts) {
        let Some(entries) = node.as_map() else {
            self.expected(
                "a mapping of report types to files",
                "artifacts: reports",
                node,
            );
            return;
        };
        for r in entries {
            let kind = r.key.as_str();
            if !REPORT_TYPES.contains(&kind) {
                self.error_help(
                    format!("`artifacts: reports` has an unknown type `{kind}`"),
                    r.key_span,
                    format!("GitLab's report types: {}", REPORT_TYPES.join(", ")),
                );
                continue;
            }
            let what = format!("artifacts: reports: {kind}");
            // `coverage_report` is `{coverage_format, path}`; the others one path or a list.
            let paths = if kind == "coverage_report" {
                match r.value.get("path").and_then(|p| p.as_text()) {
                    Some(path) => vec![path.to_string()],
                    None => {
                        self.expected("`{coverage_format: cobertura, path: ...}`", &what, &r.value);
                        continue;
                    }
                }
            } else {
                match r.value.as_text() {
                    Some(one) => vec![one.to_string()],
                    None => self.string_list(&what, &r.value).unwrap_or_default(),
                }
            };
            for path in &paths {
                if let Err(why) = crate::project::paths::check_pattern(path) {
                    self.error(format!("report path `{path}` {why}"), r.value.span);
                }
            }
            if kind == "dotenv" {
                artifacts.dotenv = paths.clone();
            }
            artifacts.reports.push(Report {
                kind: kind.to_string(),
                paths,
            });
        }
    }

    pub(super) fn string_list(&mut self, key: &str, node: &Node) -> Option<Vec<String>> {
        let Some(items) = node.as_seq() else {
            self.expected("a list of names", key, node);
            return None;
        };
        let mut out = Vec::new();
        for item in items {
            match item.as_text() {
                Some(s) => out.push(s.to_string()),
                None => self.expected("a list of names", key, item),
            }
        }
        Some(out)
    }

    /// A script: a string, or a list of strings and (nested, flattened) lists.
    pub(super) fn script(&mut self, key: &str, node: &Node) -> Option<Vec<String>> {
        if node.is_null() {
            return Some(Vec::new());
        }
        let mut out = Vec::new();
        if self.flatten_script(key, node, &mut out, 0) {
            Some(out)
        } else {
            None
        }
    }

    pub(super) fn flatten_script(
        &mut self,
        key: &str,
        node: &Node,
        out: &mut Vec<String>,
        depth: usize,
    ) -> bool {
        match &node.value {
            Value::Scalar { text, .. } if !node.is_null() => {
                out.push(text.clone());
                true
            }
            Value::Seq(items) if depth < 10 => {
                let mut ok = true;
                for item in items {
                    ok &= self.flatten_script(key, item, out, depth + 1);
                }
                ok
            }
            _ => {
                self.expected("a command or a list of commands", key, node);
                false
            }
        }
    }

    pub(super) fn image(&mut self, node: &Node) -> Option<Image> {
        if node.is_null() {
            return None;
        }
        if let Some(name) = node.as_text() {
            return Some(Image::Name {
                name: name.to_string(),
                entrypoint: None,
            });
        }
        if node.as_map().is_none() {
            self.expected("an image name or a mapping with `name`", "image", node);
            return None;
        }
        for e in node.as_map().unwrap_or_default() {
            if ![
                "name",
                "entrypoint",
                "build",
                "dockerfile",
                "pull_policy",
                "docker",
                "kubernetes",
            ]
            .contains(&e.key.as_str())
            {
                self.error(
                    format!("`image` has an unknown key `{}`", e.key),
                    e.key_span,
                );
            }
        }
        if let Some(build) = node.get("build") {
            let Some(context) = build.as_text() else {
                self.expected("a directory", "image: build", build);
                return None;
            };
            let dockerfile = node
                .get("dockerfile")
                .and_then(|d| d.as_text())
                .map(String::from);
            return Some(Image::Build {
                context: context.to_string(),
                dockerfile,
            });
        }
        let Some(name) = node.get("name").and_then(|n| n.as_text()) else {
            self.error("`image` needs a `name` (or `build: DIR`)", node.span);
            return None;
        };
        let entrypoint = node
            .get("entrypoint")
            .map(|ep| self.string_list("entrypoint", ep).unwrap_or_default());
        Some(Image::Name {
            name: name.to_string(),
            entrypoint,
        })
    }

    pub(super) fn variables(&mut self, node: &Node) -> Vec<Variable> {
        if node.is_null() {
            return Vec::new();
        }
        let Some(entries) = node.as_map() else {
            self.expected("a mapping of names to values", "variables", node);
            return Vec::new();
        };
        let mut out = Vec::new();
        for e in entries {
            let v = &e.value;
            let (value, expand) = if v.is_null() {
                (String::new(), true)
            } else if let Some(text) = v.as_scalar() {
                (text.to_string(), true)
            } else if v.as_map().is_some() {
                let value = match v.get("value") {
                    Some(x) if x.is_null() => String::new(),
                    Some(x) => match x.as_scalar() {
                        Some(t) => t.to_string(),
                        None => {
                            self.expected("a string", &format!("variables: {}: value", e.key), x);
                            continue;
                        }
                    },
                    None => String::new(),
                };
                let expand = v.get("expand").and_then(|x| x.as_bool()).unwrap_or(true);
                (value, expand)
            } else {
                self.expected(
                    "a string or a mapping with `value`",
                    &format!("variables: {}", e.key),
                    v,
                );
                continue;
            };
            out.push(Variable {
                name: e.key.clone(),
                value,
                expand,
            });
        }
        out
    }

    pub(super) fn needs(&mut self, node: &Node) -> Option<Vec<Need>> {
        if node.is_null() {
            return Some(Vec::new());
        }
        let Some(items) = node.as_seq() else {
            self.expected("a list of job names", "needs", node);
            return None;
        };
        let mut out = Vec::new();
        for item in items {
            if let Some(name) = item.as_text() {
                out.push(Need {
                    job: name.to_string(),
                    span: item.span,
                    artifacts: true,
                    optional: false,
                    instances: None,
                });
            } else if item.as_map().is_some() {
                if item.get("pipeline").is_some() || item.get("project").is_some() {
                    self.warn(
                        "`needs` on another pipeline or project cannot be met locally; ignored",
                        item.span,
                    );
                    continue;
                }
                let Some(name) = item.get("job").and_then(|j| j.as_text()) else {
                    self.error("a `needs` entry needs a `job`", item.span);
                    continue;
                };
                let flag = |key: &str, default: bool| {
                    item.get(key).and_then(|n| n.as_bool()).unwrap_or(default)
                };
                let instances = match item.get("parallel") {
                    None => None,
                    Some(p) => match parallel::need_names(name, p) {
                        Ok(names) => Some(names),
                        Err(d) => {
                            self.push_error(d);
                            continue;
                        }
                    },
                };
                out.push(Need {
                    job: name.to_string(),
                    span: item.get("job").map(|j| j.span).unwrap_or(item.span),
                    artifacts: flag("artifacts", true),
                    optional: flag("optional", false),
                    instances,
                });
            } else {
                self.expected("a job name or `{job: NAME}`", "needs", item);
            }
        }
        Some(out)
    }

    pub(super) fn when(&mut self, node: &Node) -> Option<When> {
        let when = match node.as_text() {
            Some("on_success") => When::OnSuccess,
            Some("on_failure") => When::OnFailure,
            Some("always") => When::Always,
            Some("manual") => When::Manual,
            Some("never") => When::Never,
            Some("delayed") => When::Delayed,
            _ => {
                self.error_help(
                    format!(
                        "`when: {}` is not a valid value",
                        node.as_scalar().unwrap_or("...")
                    ),
                    node.span,
                    "use on_success, on_failure, always, manual, delayed or never",
                );
                return None;
            }
        };
        Some(when)
    }

    pub(super) fn allow_failure(&mut self, node: &Node) -> AllowFailure {
        if let Some(b) = node.as_bool() {
            return if b {
                AllowFailure::Yes
            } else {
                AllowFailure::No
            };
        }
        if let Some(codes) = node.get("exit_codes") {
            let list: Vec<&Node> = match codes.as_seq() {
                Some(items) => items.iter().collect(),
                None => vec![codes],
            };
            let mut out = Vec::new();
            for c in list {
                match c.as_int() {
                    Some(n) => out.push(n),
                    None => self.expected("an exit code", "allow_failure: exit_codes", c),
                }
            }
            return AllowFailure::ExitCodes(out);
        }
        self.expected("true, false or `{exit_codes: [..]}`", "allow_failure", node);
        AllowFailure::No
    }

    pub(super) fn timeout(&mut self, node: &Node) -> Option<Duration> {
        let text = node.as_text()?;
        match duration::parse(text) {
            Ok(d) => Some(d),
            Err(e) => {
                self.error(format!("`timeout`: {e}"), node.span);
                None
            }
        }
    }

    pub(super) fn retry(&mut self, node: &Node) -> Option<u32> {
        let max_node = if node.as_map().is_some() {
            node.get("max")?
        } else {
            node
        };
        match max_node.as_int() {
            Some(n @ 0..=2) => Some(n as u32),
            _ => {
                self.error(
                    format!(
                        "`retry` should be 0, 1 or 2, found `{}`",
                        max_node.as_scalar().unwrap_or("...")
                    ),
                    max_node.span,
                );
                None
            }
        }
    }
}
