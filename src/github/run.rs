//! The facts of one workflow run (commit, ref, event, repository, run number), which the CLI
//! fills from git, and what GitHub derives from them: the `github`, `runner`, `inputs`,
//! `secrets` and `vars` contexts and the default environment variables of every step
//! ("Store information in variables: Default environment variables", "Contexts reference").

use crate::github::expr::{Object, Value};
use crate::github::trigger::GitRef;
use crate::github::workflow::{InputType, Workflow};
use crate::project::git::Facts;

/// Where berth keeps its files in a job's container: step scripts, the files steps write
/// their outputs to, the event payload.
pub const DIR: &str = "/berth/github";
/// `RUNNER_TEMP`: emptied by nobody, since every job has a fresh container.
pub const RUNNER_TEMP: &str = "/berth/github/temp";
/// `RUNNER_TOOL_CACHE`, where GitHub's hosted runners keep their tools.
pub const RUNNER_TOOL_CACHE: &str = "/opt/hostedtoolcache";
/// `GITHUB_EVENT_PATH`: the event payload, written with the job's first command.
pub const EVENT_PATH: &str = "/berth/github/event.json";

/// What a workflow run is about. [`Run::from_git`] fills it from the project's git facts.
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    /// `push`, `pull_request`, `workflow_dispatch`...
    pub event_name: String,
    /// The branch or tag (for pull requests: the head branch); `None`: unknown.
    pub git_ref: Option<GitRef>,
    /// A pull request's base branch (`github.base_ref`).
    pub base_ref: Option<String>,
    pub sha: String,
    /// `owner/name`.
    pub repository: String,
    pub actor: String,
    pub run_id: u64,
    pub run_number: u64,
    pub run_attempt: u32,
    /// The checkout inside every job's container (`GITHUB_WORKSPACE`).
    pub workspace: String,
    pub server_url: String,
    /// The event payload (`github.event`, the file at `GITHUB_EVENT_PATH`).
    pub event: serde_json::Value,
    /// `workflow_dispatch` inputs given on the command line (the workflow's defaults fill in
    /// the rest).
    pub inputs: Vec<(String, String)>,
    pub secrets: Vec<(String, String)>,
    pub vars: Vec<(String, String)>,
    /// `RUNNER_ARCH`: `X64` or `ARM64`.
    pub runner_arch: String,
    /// The actions the run's steps use beyond the built-ins, read before it starts.
    pub actions: std::sync::Arc<crate::github::actions::Actions>,
}

impl Run {
    /// The facts git gives, for `event_name`; the repository is `project_path` from the
    /// origin remote, the run id and number berth's pipeline id.
    pub fn from_git(facts: &Facts, event_name: &str) -> Run {
        let git_ref = match (&facts.tag, &facts.branch) {
            (Some(t), _) => Some(GitRef::Tag(t.clone())),
            (None, Some(b)) => Some(GitRef::Branch(b.clone())),
            (None, None) => None,
        };
        let repository = if facts.project_path.contains('/') {
            facts.project_path.clone()
        } else {
            format!("local/{}", facts.project_path)
        };
        Run {
            event_name: event_name.to_string(),
            git_ref,
            base_ref: None,
            sha: facts.commit_sha.clone(),
            repository,
            actor: "berth".to_string(),
            run_id: facts.pipeline_id,
            run_number: facts.pipeline_id,
            run_attempt: 1,
            workspace: facts.container_dir.clone(),
            server_url: "https://github.com".to_string(),
            event: serde_json::Value::Object(serde_json::Map::new()),
            inputs: Vec::new(),
            secrets: Vec::new(),
            vars: Vec::new(),
            runner_arch: runner_arch().to_string(),
            actions: Default::default(),
        }
    }

    /// The event payload GitHub would send for the commit `facts` describes, in the parts
    /// workflows read (`github.event.before`, `.head_commit.message`,
    /// `.pull_request.head.sha`, `.repository.default_branch`...); `--event-payload` replaces
    /// it whole.
    pub fn payload(&self, facts: &Facts) -> serde_json::Value {
        use serde_json::json;
        let name = self.repository.rsplit('/').next().unwrap_or_default();
        let repository = json!({
            "full_name": self.repository,
            "name": name,
            "owner": {"login": self.owner()},
            "default_branch": facts.default_branch,
            "html_url": format!("{}/{}", self.server_url, self.repository),
        });
        let (author, email) = match facts.commit_author.rsplit_once(" <") {
            Some((n, e)) => (n.to_string(), e.trim_end_matches('>').to_string()),
            None => (facts.commit_author.clone(), String::new()),
        };
        let head_commit = json!({
            "id": self.sha,
            "message": facts.commit_message,
            "timestamp": facts.commit_timestamp,
            "author": {"name": author, "email": email},
        });
        match self.event_name.as_str() {
            "push" => json!({
                "ref": self.full_ref(),
                "before": facts.before_sha,
                "after": self.sha,
                "created": false,
                "deleted": false,
                "forced": false,
                "head_commit": head_commit,
                "repository": repository,
                "sender": {"login": self.actor},
            }),
            "pull_request" | "pull_request_target" => json!({
                "action": "synchronize",
                "number": 1,
                "pull_request": {
                    "number": 1,
                    "title": facts.commit_message.lines().next().unwrap_or_default(),
                    "head": {"ref": self.ref_name(), "sha": self.sha},
                    "base": {"ref": self.base_ref.clone().unwrap_or_default()},
                },
                "repository": repository,
                "sender": {"login": self.actor},
            }),
            "workflow_dispatch" => json!({
                "ref": self.full_ref(),
                "inputs": self.inputs.iter().map(|(k, v)| (k.clone(), json!(v))).collect::<serde_json::Map<String, serde_json::Value>>(),
                "repository": repository,
                "sender": {"login": self.actor},
            }),
            _ => json!({
                "ref": self.full_ref(),
                "repository": repository,
                "sender": {"login": self.actor},
            }),
        }
    }

    /// `GITHUB_REF`: `refs/heads/main`, `refs/tags/v1`, or empty when unknown.
    pub fn full_ref(&self) -> String {
        match &self.git_ref {
            Some(GitRef::Branch(b)) => format!("refs/heads/{b}"),
            Some(GitRef::Tag(t)) => format!("refs/tags/{t}"),
            None => String::new(),
        }
    }

    pub fn ref_name(&self) -> &str {
        match &self.git_ref {
            Some(GitRef::Branch(n)) | Some(GitRef::Tag(n)) => n,
            None => "",
        }
    }

    pub fn ref_type(&self) -> &'static str {
        match &self.git_ref {
            Some(GitRef::Tag(_)) => "tag",
            _ => "branch",
        }
    }

    pub fn owner(&self) -> &str {
        self.repository.split('/').next().unwrap_or_default()
    }

    fn api_url(&self) -> String {
        if self.server_url == "https://github.com" {
            "https://api.github.com".to_string()
        } else {
            format!("{}/api/v3", self.server_url)
        }
    }

    fn graphql_url(&self) -> String {
        if self.server_url == "https://github.com" {
            "https://api.github.com/graphql".to_string()
        } else {
            format!("{}/api/graphql", self.server_url)
        }
    }

    fn is_pull_request(&self) -> bool {
        matches!(
            self.event_name.as_str(),
            "pull_request" | "pull_request_target"
        )
    }
}

/// The host's architecture as GitHub names it.
fn runner_arch() -> &'static str {
    match std::env::consts::ARCH {
        "aarch64" => "ARM64",
        "arm" => "ARM",
        "x86" => "X86",
        _ => "X64",
    }
}

/// The workflow a job belongs to, as the `github` context and the variables name it.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkflowFacts {
    /// Its `name:`, else its path in the repository.
    pub name: String,
    /// Its path in the repository (`.github/workflows/ci.yml`).
    pub file: String,
}

/// The `github` context of a job (`job` its id); `action` is the running step's
/// `GITHUB_ACTION`, empty outside steps.
pub fn github_context(run: &Run, workflow: &WorkflowFacts, job: &str, action: &str) -> Value {
    let s = |v: &str| Value::from(v);
    let head_ref = if run.is_pull_request() {
        run.ref_name().to_string()
    } else {
        String::new()
    };
    let base_ref = if run.is_pull_request() {
        run.base_ref.clone().unwrap_or_default()
    } else {
        String::new()
    };
    let event = serde_json::from_str::<Value>(&run.event.to_string()).unwrap_or_default();
    Value::object([
        ("action", s(action)),
        ("action_path", s("")),
        ("action_ref", s("")),
        ("action_repository", s("")),
        ("actor", s(&run.actor)),
        ("api_url", Value::from(run.api_url())),
        ("base_ref", Value::from(base_ref)),
        ("event", event),
        ("event_name", s(&run.event_name)),
        ("event_path", s(EVENT_PATH)),
        ("graphql_url", Value::from(run.graphql_url())),
        ("head_ref", Value::from(head_ref)),
        ("job", s(job)),
        ("ref", Value::from(run.full_ref())),
        ("ref_name", s(run.ref_name())),
        ("ref_protected", Value::Bool(false)),
        ("ref_type", s(run.ref_type())),
        ("repository", s(&run.repository)),
        ("repository_owner", s(run.owner())),
        (
            "repositoryUrl",
            Value::from(format!(
                "{}/{}.git",
                run.server_url.replacen("https://", "git://", 1),
                run.repository
            )),
        ),
        ("retention_days", s("90")),
        ("run_id", Value::from(run.run_id.to_string())),
        ("run_number", Value::from(run.run_number.to_string())),
        ("run_attempt", Value::from(run.run_attempt.to_string())),
        ("server_url", s(&run.server_url)),
        ("sha", s(&run.sha)),
        // berth's jobs get no GitHub token.
        ("token", s("")),
        ("triggering_actor", s(&run.actor)),
        ("workflow", s(&workflow.name)),
        (
            "workflow_ref",
            Value::from(format!(
                "{}/{}@{}",
                run.repository,
                workflow.file,
                run.full_ref()
            )),
        ),
        ("workflow_sha", s(&run.sha)),
        ("workspace", s(&run.workspace)),
    ])
}

/// The `runner` context.
pub fn runner_context(run: &Run, runner_name: &str) -> Value {
    Value::object([
        ("name", Value::from(runner_name)),
        ("os", Value::from("Linux")),
        ("arch", Value::from(run.runner_arch.as_str())),
        ("temp", Value::from(RUNNER_TEMP)),
        ("tool_cache", Value::from(RUNNER_TOOL_CACHE)),
        ("debug", Value::from("")),
        ("environment", Value::from("self-hosted")),
    ])
}

/// `secrets`: the given ones, and `GITHUB_TOKEN`, empty (berth has no token to give).
pub fn secrets_context(run: &Run) -> Value {
    let mut o = Object::new();
    o.insert("GITHUB_TOKEN", Value::from(""));
    for (k, v) in &run.secrets {
        o.insert(k.clone(), Value::from(v.as_str()));
    }
    Value::from(o)
}

pub fn vars_context(run: &Run) -> Value {
    Value::object(
        run.vars
            .iter()
            .map(|(k, v)| (k.clone(), Value::from(v.as_str()))),
    )
}

/// `inputs`: for `workflow_dispatch` (and `workflow_call`), the inputs given, else their
/// defaults, typed as the workflow declares them (a boolean input is a boolean, a number a
/// number); other events have none.
pub fn inputs_context(workflow: &Workflow, run: &Run) -> Value {
    let Some(trigger) = workflow.trigger(&run.event_name) else {
        return Value::object(Vec::<(String, Value)>::new());
    };
    let mut o = Object::new();
    for input in &trigger.inputs {
        let given = run
            .inputs
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(&input.name))
            .map(|(_, v)| v.as_str());
        let value = match (given, &input.default) {
            (Some(text), _) => match input.kind {
                InputType::Boolean => Value::Bool(text.eq_ignore_ascii_case("true")),
                InputType::Number => Value::Number(crate::github::expr::parse_number(text)),
                _ => Value::from(text),
            },
            (None, Some(default)) => match input.kind {
                InputType::Boolean | InputType::Number => default.clone(),
                _ => Value::from(default.to_github_string()),
            },
            (None, None) => match input.kind {
                InputType::Boolean => Value::Bool(false),
                _ => Value::from(""),
            },
        };
        o.insert(input.name.clone(), value);
    }
    Value::from(o)
}

/// The default environment variables of a step, in GitHub's names.
pub fn default_env(
    run: &Run,
    workflow: &WorkflowFacts,
    job: &str,
    action: &str,
    runner_name: &str,
) -> Vec<(String, String)> {
    let mut env: Vec<(&str, String)> = vec![
        ("CI", "true".into()),
        ("GITHUB_ACTIONS", "true".into()),
        ("GITHUB_ACTION", action.into()),
        ("GITHUB_ACTOR", run.actor.clone()),
        ("GITHUB_API_URL", run.api_url()),
        ("GITHUB_EVENT_NAME", run.event_name.clone()),
        ("GITHUB_EVENT_PATH", EVENT_PATH.into()),
        ("GITHUB_GRAPHQL_URL", run.graphql_url()),
        ("GITHUB_JOB", job.into()),
        ("GITHUB_REF", run.full_ref()),
        ("GITHUB_REF_NAME", run.ref_name().into()),
        ("GITHUB_REF_PROTECTED", "false".into()),
        ("GITHUB_REF_TYPE", run.ref_type().into()),
        ("GITHUB_REPOSITORY", run.repository.clone()),
        ("GITHUB_REPOSITORY_OWNER", run.owner().into()),
        ("GITHUB_RETENTION_DAYS", "90".into()),
        ("GITHUB_RUN_ATTEMPT", run.run_attempt.to_string()),
        ("GITHUB_RUN_ID", run.run_id.to_string()),
        ("GITHUB_RUN_NUMBER", run.run_number.to_string()),
        ("GITHUB_SERVER_URL", run.server_url.clone()),
        ("GITHUB_SHA", run.sha.clone()),
        ("GITHUB_TRIGGERING_ACTOR", run.actor.clone()),
        ("GITHUB_WORKFLOW", workflow.name.clone()),
        (
            "GITHUB_WORKFLOW_REF",
            format!("{}/{}@{}", run.repository, workflow.file, run.full_ref()),
        ),
        ("GITHUB_WORKFLOW_SHA", run.sha.clone()),
        ("GITHUB_WORKSPACE", run.workspace.clone()),
        ("RUNNER_ARCH", run.runner_arch.clone()),
        ("RUNNER_NAME", runner_name.into()),
        ("RUNNER_OS", "Linux".into()),
        ("RUNNER_TEMP", RUNNER_TEMP.into()),
        ("RUNNER_TOOL_CACHE", RUNNER_TOOL_CACHE.into()),
        ("RUNNER_ENVIRONMENT", "self-hosted".into()),
    ];
    if run.is_pull_request() {
        env.push(("GITHUB_HEAD_REF", run.ref_name().into()));
        env.push(("GITHUB_BASE_REF", run.base_ref.clone().unwrap_or_default()));
    }
    env.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}
