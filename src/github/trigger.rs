//! Whether a workflow runs for an event, as GitHub decides it ("Events that trigger
//! workflows", "Workflow syntax: on.<event>.<branches|tags|paths>"), with the reason in words
//! for `berth plan`.
//!
//! - The event must be in `on:`. `types:` narrows its activity; without it `pull_request` and
//!   `pull_request_target` run only for `opened`, `synchronize` and `reopened`.
//! - `branches`/`tags` (and their `-ignore`) match the pushed branch or tag, the base branch of
//!   a pull request, the head branch of the workflow run for `workflow_run`. A push event with
//!   only branch filters does not run for tags, and the other way round.
//! - `paths`/`paths-ignore` (push and pull requests): the workflow runs if a changed file is
//!   selected (`paths`) or one is not ignored (`paths-ignore`). No changed file: it does not
//!   run. Only the first 300 files count. Tags pushed skip path filters. When the changed
//!   files are unknown (GitHub: more than 1,000 commits, or a diff that timed out), it runs.
//! - With both kinds of filter, both must pass.

use crate::github::pattern::{self, Pattern};
use crate::github::workflow::Trigger;

/// GitHub compares at most this many changed files with path filters.
pub const MAX_DIFF_FILES: usize = 300;

/// The ref an event is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GitRef {
    Branch(String),
    Tag(String),
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event<'a> {
    /// `push`, `pull_request`, `workflow_dispatch`...
    pub name: &'a str,
    /// The pushed branch or tag; for pull requests the base branch; `None` when unknown
    /// (ref filters are then not applied).
    pub git_ref: Option<GitRef>,
    /// Changed files relative to the repository root; `None` when unknown.
    pub changed_files: Option<&'a [String]>,
    /// The activity type (`opened`, `closed`...); `None` when unknown (not checked).
    pub activity: Option<&'a str>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub runs: bool,
    pub reason: String,
}

const PR_DEFAULT_TYPES: &[&str] = &["opened", "synchronize", "reopened"];

/// Whether a workflow with these triggers runs for `event`.
pub fn decide(on: &[Trigger], event: &Event) -> Decision {
    let Some(trigger) = on.iter().find(|t| t.event == event.name) else {
        let names: Vec<&str> = on.iter().map(|t| t.event.as_str()).collect();
        return no(format!(
            "{} is not in on: [{}]",
            event.name,
            names.join(", ")
        ));
    };
    let mut reasons = Vec::new();
    if let Some(activity) = event.activity {
        let pr = matches!(event.name, "pull_request" | "pull_request_target");
        if !trigger.types.is_empty() {
            if !trigger.types.iter().any(|t| t == activity) {
                return no(format!(
                    "{} `{activity}` is not in types: [{}]",
                    event.name,
                    trigger.types.join(", ")
                ));
            }
            reasons.push(format!(
                "`{activity}` is in types: [{}]",
                trigger.types.join(", ")
            ));
        } else if pr && !PR_DEFAULT_TYPES.contains(&activity) {
            return no(format!(
                "{} `{activity}` is not a default activity type (opened, synchronize, reopened) and the workflow has no `types:`",
                event.name
            ));
        }
    }
    let subject = match &event.git_ref {
        Some(GitRef::Branch(b)) => format!("{} to {b}", event.name),
        Some(GitRef::Tag(t)) => format!("{} of tag {t}", event.name),
        None => event.name.to_string(),
    };
    match ref_filter(trigger, event) {
        Ok(Some(why)) => reasons.push(why),
        Ok(None) => {}
        Err(why) => return no(format!("{subject} {why}")),
    }
    match path_filter(trigger, event) {
        Ok(Some(why)) => reasons.push(why),
        Ok(None) => {}
        Err(why) => return no(format!("{subject}: {why}")),
    }
    let reason = if reasons.is_empty() {
        format!("{subject} is in on: with no filters that apply")
    } else {
        format!("{subject} {}", reasons.join(" and "))
    };
    Decision { runs: true, reason }
}

fn no(reason: String) -> Decision {
    Decision {
        runs: false,
        reason,
    }
}

/// `Ok(Some(why))`: filters passed; `Ok(None)`: none applied; `Err(why)`: filtered out.
fn ref_filter(trigger: &Trigger, event: &Event) -> Result<Option<String>, String> {
    let Some(git_ref) = &event.git_ref else {
        return Ok(None);
    };
    let has_branch = trigger.branches.is_some() || trigger.branches_ignore.is_some();
    let has_tag = trigger.tags.is_some() || trigger.tags_ignore.is_some();
    let (name, include, ignore, kind) = match git_ref {
        GitRef::Branch(b) => (b, &trigger.branches, &trigger.branches_ignore, "branches"),
        GitRef::Tag(t) => (t, &trigger.tags, &trigger.tags_ignore, "tags"),
    };
    if include.is_none() && ignore.is_none() {
        // Only the other kind of filter: the event does not run for this kind of ref.
        return match git_ref {
            GitRef::Tag(_) if has_branch => Err(
                "does not run: the workflow filters branches only, so tags do not trigger it"
                    .into(),
            ),
            GitRef::Branch(_) if has_tag && event.name == "push" => Err(
                "does not run: the workflow filters tags only, so branches do not trigger it"
                    .into(),
            ),
            _ => Ok(None),
        };
    }
    if let Some(list) = include {
        return match pattern::decisive(list, name) {
            Some(p) if !p.is_negative() => {
                Ok(Some(format!("matches {kind}: {}", pattern::list(list))))
            }
            Some(p) => Err(format!(
                "is excluded by `{}` in {kind}: {}",
                p.text(),
                pattern::list(list)
            )),
            None => Err(format!("does not match {kind}: {}", pattern::list(list))),
        };
    }
    let list = ignore.as_deref().unwrap_or_default();
    if pattern::selects(list, name) {
        return Err(format!("matches {kind}-ignore: {}", pattern::list(list)));
    }
    Ok(Some(format!(
        "is not in {kind}-ignore: {}",
        pattern::list(list)
    )))
}

fn path_filter(trigger: &Trigger, event: &Event) -> Result<Option<String>, String> {
    let (paths, ignore) = (&trigger.paths, &trigger.paths_ignore);
    if paths.is_none() && ignore.is_none() {
        return Ok(None);
    }
    if !matches!(event.name, "push" | "pull_request" | "pull_request_target") {
        return Ok(None);
    }
    if matches!(event.git_ref, Some(GitRef::Tag(_))) {
        return Ok(Some("path filters are not evaluated for tags".into()));
    }
    let Some(files) = event.changed_files else {
        return Ok(Some(
            "the changed files are unknown, so path filters pass (as GitHub when it has no diff)"
                .into(),
        ));
    };
    let files = &files[..files.len().min(MAX_DIFF_FILES)];
    if files.is_empty() {
        return Err("no files changed, and the workflow has path filters".into());
    }
    if let Some(list) = paths {
        return match files.iter().find(|f| pattern::selects(list, f)) {
            Some(f) => Ok(Some(format!("{f} matches paths: {}", pattern::list(list)))),
            None => Err(format!(
                "no changed file matches paths: {}",
                pattern::list(list)
            )),
        };
    }
    let list: &[Pattern] = ignore.as_deref().unwrap_or_default();
    match files.iter().find(|f| !pattern::selects(list, f)) {
        Some(f) => Ok(Some(format!(
            "{f} is not in paths-ignore: {}",
            pattern::list(list)
        ))),
        None => Err(format!(
            "every changed file matches paths-ignore: {}",
            pattern::list(list)
        )),
    }
}
