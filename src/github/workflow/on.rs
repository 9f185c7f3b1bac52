//! `on:`: the events that trigger a workflow, in its three forms (`on: push`,
//! `on: [push, pull_request]`, a mapping of events to their filters), checked as GitHub
//! checks them (the schema's strict `on`): known events, each with its own keys and
//! activity types, and never both `branches` and `branches-ignore` (or `tags`/`paths`) on one
//! event.

use crate::github::expr::Scope;
use crate::github::pattern::Pattern;
use crate::source::yaml::Node;

use super::reader::{literal, to_value, Literal, Reader};
use super::*;

/// Every event GitHub triggers workflows on, with the keys its mapping takes and its
/// activity types (`None`: any non-empty name, as `repository_dispatch` has).
struct EventKind {
    name: &'static str,
    keys: &'static [&'static str],
    types: Option<&'static [&'static str]>,
}

const fn ev(
    name: &'static str,
    keys: &'static [&'static str],
    types: &'static [&'static str],
) -> EventKind {
    EventKind {
        name,
        keys,
        types: Some(types),
    }
}

const TYPES: &[&str] = &["types"];
const CRUD: &[&str] = &["created", "edited", "deleted"];
const PR_KEYS: &[&str] = &[
    "types",
    "branches",
    "branches-ignore",
    "paths",
    "paths-ignore",
];
const PR_TYPES: &[&str] = &[
    "assigned",
    "unassigned",
    "labeled",
    "unlabeled",
    "opened",
    "edited",
    "closed",
    "reopened",
    "synchronize",
    "converted_to_draft",
    "ready_for_review",
    "locked",
    "unlocked",
    "review_requested",
    "review_request_removed",
    "auto_merge_enabled",
    "auto_merge_disabled",
];

const EVENTS: &[EventKind] = &[
    ev("branch_protection_rule", TYPES, CRUD),
    ev(
        "check_run",
        TYPES,
        &["completed", "created", "rerequested", "requested_action"],
    ),
    ev("check_suite", TYPES, &["completed"]),
    ev("create", &[], &[]),
    ev("delete", &[], &[]),
    ev("deployment", &[], &[]),
    ev("deployment_status", &[], &[]),
    ev(
        "discussion",
        TYPES,
        &[
            "created",
            "edited",
            "deleted",
            "transferred",
            "pinned",
            "unpinned",
            "labeled",
            "unlabeled",
            "locked",
            "unlocked",
            "category_changed",
            "answered",
            "unanswered",
        ],
    ),
    ev("discussion_comment", TYPES, CRUD),
    ev("fork", &[], &[]),
    ev("gollum", &[], &[]),
    ev(
        "image_version",
        &["types", "names", "versions"],
        &["created", "ready", "deleted"],
    ),
    ev("issue_comment", TYPES, CRUD),
    ev(
        "issues",
        TYPES,
        &[
            "opened",
            "edited",
            "deleted",
            "transferred",
            "pinned",
            "unpinned",
            "closed",
            "reopened",
            "assigned",
            "unassigned",
            "labeled",
            "unlabeled",
            "locked",
            "unlocked",
            "milestoned",
            "demilestoned",
        ],
    ),
    ev("label", TYPES, CRUD),
    ev("merge_group", TYPES, &["checks_requested"]),
    ev(
        "milestone",
        TYPES,
        &["created", "closed", "opened", "edited", "deleted"],
    ),
    ev("page_build", &[], &[]),
    ev(
        "project",
        TYPES,
        &["created", "closed", "reopened", "edited", "deleted"],
    ),
    ev(
        "project_card",
        TYPES,
        &["created", "moved", "converted", "edited", "deleted"],
    ),
    ev(
        "project_column",
        TYPES,
        &["created", "updated", "moved", "deleted"],
    ),
    ev("public", &[], &[]),
    ev("pull_request", PR_KEYS, PR_TYPES),
    ev("pull_request_comment", TYPES, CRUD),
    ev(
        "pull_request_review",
        TYPES,
        &["submitted", "edited", "dismissed"],
    ),
    ev("pull_request_review_comment", TYPES, CRUD),
    ev("pull_request_target", PR_KEYS, PR_TYPES),
    ev(
        "push",
        &[
            "branches",
            "branches-ignore",
            "tags",
            "tags-ignore",
            "paths",
            "paths-ignore",
        ],
        &[],
    ),
    ev("registry_package", TYPES, &["published", "updated"]),
    ev(
        "release",
        TYPES,
        &[
            "published",
            "unpublished",
            "created",
            "edited",
            "deleted",
            "prereleased",
            "released",
        ],
    ),
    EventKind {
        name: "repository_dispatch",
        keys: TYPES,
        types: None,
    },
    ev("schedule", &[], &[]),
    ev("status", &[], &[]),
    ev("watch", TYPES, &["started"]),
    ev("workflow_call", &["inputs", "secrets", "outputs"], &[]),
    ev("workflow_dispatch", &["inputs"], &[]),
    ev(
        "workflow_run",
        &["types", "workflows", "branches", "branches-ignore"],
        &["requested", "completed", "in_progress"],
    ),
];

impl Reader<'_> {
    pub(super) fn on(&mut self, node: &Node) -> Vec<Trigger> {
        if let Some(items) = node.as_seq() {
            return items.iter().filter_map(|i| self.event_name(i)).collect();
        }
        if node.as_map().is_none() {
            return self.event_name(node).into_iter().collect();
        }
        let names: Vec<&str> = EVENTS.iter().map(|e| e.name).collect();
        let Some(entries) = self.map(node, "`on`", &names) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for e in entries {
            let Some(kind) = EVENTS.iter().find(|k| k.name == e.key) else {
                continue;
            };
            let mut trigger = Trigger {
                event: e.key.clone(),
                span: e.key_span,
                ..Trigger::default()
            };
            match kind.name {
                "schedule" => trigger.crons = self.schedule(&e.value),
                "workflow_dispatch" | "workflow_call" => {
                    if let Some(keys) =
                        self.map(&e.value, &format!("`on: {}`", kind.name), kind.keys)
                    {
                        for k in keys {
                            match k.key.as_str() {
                                "inputs" => trigger.inputs = self.inputs(&k.value, kind.name),
                                "secrets" => trigger.secrets = self.call_secrets(&k.value),
                                _ => trigger.outputs = self.call_outputs(&k.value),
                            }
                        }
                    }
                }
                _ => self.event_filters(kind, &e.value, &mut trigger),
            }
            out.push(trigger);
        }
        out
    }

    fn event_name(&mut self, node: &Node) -> Option<Trigger> {
        let Some(Literal::String(name)) = literal(node) else {
            self.expected("an event name, a list of them, or a mapping", "on", node);
            return None;
        };
        if !EVENTS.iter().any(|e| e.name == name) {
            let names: Vec<&str> = EVENTS.iter().map(|e| e.name).collect();
            self.error_help(
                format!("`{name}` is not an event that triggers workflows"),
                node.span,
                format!("events are: {}", names.join(", ")),
            );
            return None;
        }
        Some(Trigger {
            event: name,
            span: node.span,
            ..Trigger::default()
        })
    }

    fn event_filters(&mut self, kind: &EventKind, node: &Node, trigger: &mut Trigger) {
        let what = format!("`on: {}`", kind.name);
        if kind.keys.is_empty() && !node.is_null() {
            self.error(
                format!("{what} takes no settings, found {}", node.kind()),
                node.span,
            );
            return;
        }
        let Some(entries) = self.map(node, &what, kind.keys) else {
            return;
        };
        for e in entries {
            let key = format!("on: {}: {}", kind.name, e.key);
            let v = &e.value;
            match e.key.as_str() {
                "types" => {
                    for t in self.strings(v, &key, None) {
                        if let Some(allowed) = kind.types {
                            if !allowed.contains(&t.text.as_str()) {
                                self.error_help(
                                    format!(
                                        "`{}` is not an activity type of `{}`",
                                        t.text, kind.name
                                    ),
                                    t.span,
                                    format!("its types are: {}", allowed.join(", ")),
                                );
                                continue;
                            }
                        }
                        trigger.types.push(t.text);
                    }
                }
                "workflows" => {
                    trigger.workflows = self
                        .strings(v, &key, None)
                        .into_iter()
                        .map(|t| t.text)
                        .collect()
                }
                "names" | "versions" => {
                    self.strings(v, &key, None);
                }
                filter => {
                    let patterns = self.patterns(v, &key);
                    match filter {
                        "branches" => trigger.branches = Some(patterns),
                        "branches-ignore" => trigger.branches_ignore = Some(patterns),
                        "tags" => trigger.tags = Some(patterns),
                        "tags-ignore" => trigger.tags_ignore = Some(patterns),
                        "paths" => trigger.paths = Some(patterns),
                        _ => trigger.paths_ignore = Some(patterns),
                    }
                }
            }
        }
        // GitHub's message: "you may only define one of `paths` and `paths-ignore` for a
        // single event".
        for (a, b) in [
            ("branches", "branches-ignore"),
            ("tags", "tags-ignore"),
            ("paths", "paths-ignore"),
        ] {
            if let (Some(_), Some(second)) = (node.entry(a), node.entry(b)) {
                self.error_help(
                    format!("you may only define one of `{a}` and `{b}` for a single event"),
                    second.key_span,
                    format!("to exclude some names from `{a}`, add them to it with a leading `!`"),
                );
            }
        }
    }

    fn patterns(&mut self, node: &Node, what: &str) -> Vec<Pattern> {
        let texts = self.strings(node, what, None);
        let mut out = Vec::new();
        for t in &texts {
            match Pattern::parse(&t.text) {
                Ok(p) => out.push(p),
                Err(why) => self.error(format!("`{what}`: the pattern `{}` {why}", t.text), t.span),
            }
        }
        if !out.is_empty() && out.iter().all(Pattern::is_negative) {
            if let Some(first) = texts.first() {
                self.warn(
                    format!("`{what}` has only `!` patterns, so it matches nothing; GitHub asks for at least one pattern without `!`"),
                    first.span,
                );
            }
        }
        out
    }

    fn schedule(&mut self, node: &Node) -> Vec<String> {
        let Some(items) = node.as_seq() else {
            self.expected("a list of `- cron: ...`", "on: schedule", node);
            return Vec::new();
        };
        let mut out = Vec::new();
        for item in items {
            let Some(entries) = self.map(item, "`on: schedule` item", &["cron"]) else {
                continue;
            };
            let Some(cron) = entries.first() else {
                self.error("`on: schedule` item needs a `cron`", item.span);
                continue;
            };
            let Some(text) = self.name(&cron.value, "on: schedule: cron") else {
                continue;
            };
            if text.split_whitespace().count() != 5 {
                self.error_help(
                    format!("the cron `{text}` should have five fields"),
                    cron.value.span,
                    "minute hour day-of-month month day-of-week, as in '30 5 * * 1,3'",
                );
                continue;
            }
            out.push(text);
        }
        out
    }

    fn inputs(&mut self, node: &Node, event: &str) -> Vec<Input> {
        let what = format!("on: {event}: inputs");
        let Some(entries) = self.loose(node, &what) else {
            return Vec::new();
        };
        let dispatch = event == "workflow_dispatch";
        let keys: &[&str] = if dispatch {
            &["description", "type", "required", "default", "options"]
        } else {
            &["description", "type", "required", "default"]
        };
        let mut out = Vec::new();
        for e in entries {
            let key = format!("{what}: {}", e.key);
            let mut input = Input {
                name: e.key.clone(),
                description: None,
                kind: InputType::String,
                required: false,
                default: None,
                options: Vec::new(),
            };
            let Some(fields) = self.map(&e.value, &format!("`{key}`"), keys) else {
                continue;
            };
            for f in fields {
                let v = &f.value;
                let field = format!("{key}: {}", f.key);
                match f.key.as_str() {
                    "description" => input.description = self.text(v, &field, None).map(|t| t.text),
                    "type" => {
                        let kinds: &[(&str, InputType)] = &[
                            ("string", InputType::String),
                            ("boolean", InputType::Boolean),
                            ("number", InputType::Number),
                            ("choice", InputType::Choice),
                            ("environment", InputType::Environment),
                        ];
                        let allowed = if dispatch { kinds } else { &kinds[..3] };
                        let text = literal(v).map(|l| l.text()).unwrap_or_default();
                        match allowed.iter().find(|(n, _)| *n == text) {
                            Some((_, k)) => input.kind = *k,
                            None => {
                                let names: Vec<&str> = allowed.iter().map(|(n, _)| *n).collect();
                                self.error_help(
                                    format!("`{field}` should be one of {}", names.join(", ")),
                                    v.span,
                                    "the input's type",
                                );
                            }
                        }
                    }
                    "required" => {
                        if let Some(Field::Value(b)) = self.boolean(v, &field, None) {
                            input.required = b;
                        }
                    }
                    "default" => {
                        if v.as_map().is_some() || v.as_seq().is_some() {
                            self.expected("a string, boolean or number", &field, v);
                        } else {
                            if let Some(Literal::String(s)) = literal(v) {
                                let scope = if dispatch {
                                    None
                                } else {
                                    Some(&Scope::WORKFLOW)
                                };
                                self.check(&s, v, &field, scope);
                            }
                            input.default = Some(to_value(v));
                        }
                    }
                    _ => {
                        input.options = self
                            .list(v, &field, None)
                            .into_iter()
                            .map(|t| t.text)
                            .collect()
                    }
                }
            }
            if !dispatch && e.value.get("type").is_none() {
                self.error(
                    format!("`{key}` needs a `type` (string, boolean or number)"),
                    e.value.span,
                );
            }
            if input.kind == InputType::Choice && input.options.is_empty() {
                self.error(
                    format!("`{key}` is a choice and needs `options`"),
                    e.value.span,
                );
            }
            out.push(input);
        }
        out
    }

    fn call_secrets(&mut self, node: &Node) -> Vec<(String, bool)> {
        let Some(entries) = self.loose(node, "on: workflow_call: secrets") else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for e in entries {
            let what = format!("on: workflow_call: secrets: {}", e.key);
            let mut required = false;
            if let Some(fields) =
                self.map(&e.value, &format!("`{what}`"), &["description", "required"])
            {
                for f in fields {
                    if f.key == "required" {
                        if let Some(Field::Value(b)) =
                            self.boolean(&f.value, &format!("{what}: required"), None)
                        {
                            required = b;
                        }
                    }
                }
            }
            out.push((e.key.clone(), required));
        }
        out
    }

    fn call_outputs(&mut self, node: &Node) -> Env {
        let Some(entries) = self.loose(node, "on: workflow_call: outputs") else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for e in entries {
            let what = format!("on: workflow_call: outputs: {}", e.key);
            if let Some(fields) =
                self.map(&e.value, &format!("`{what}`"), &["description", "value"])
            {
                for f in fields {
                    if f.key == "value" {
                        if let Some(t) = self.text(
                            &f.value,
                            &format!("{what}: value"),
                            Some(&Scope::WORKFLOW_OUTPUT),
                        ) {
                            out.push((e.key.clone(), t));
                        }
                    }
                }
            }
            if e.value.get("value").is_none() {
                self.error(format!("`{what}` needs a `value`"), e.value.span);
            }
        }
        out
    }
}
