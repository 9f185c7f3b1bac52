//! A GitLab job's environment: the predefined CI variables, pipeline and job variables,
//! dotenv reports and the command line's `-e`, in GitLab's precedence, with `$VAR` references
//! between them expanded.

use std::collections::HashMap;

use crate::pipeline::expand::expand;
use crate::pipeline::{Checkout, Job, JobEnvironment, ServiceWait, Variable};
use crate::project::checkout::{Repository, SubmoduleStrategy, Submodules};
use crate::project::git::{Facts, MergeRequest};

/// GitLab's way of building a job's environment, for the engine (which knows no format).
#[derive(Debug, Clone)]
pub struct GitLabEnvironment {
    pub facts: Facts,
    pub pipeline_variables: Vec<Variable>,
}

impl JobEnvironment for GitLabEnvironment {
    fn job_env(
        &self,
        job: &Job,
        job_id: u64,
        dotenv: &[(String, String)],
        overrides: &[(String, String)],
    ) -> Vec<(String, String)> {
        job_env(
            &self.facts,
            &self.pipeline_variables,
            job,
            job_id,
            dotenv,
            overrides,
        )
    }

    /// GitLab Runner's checkout: `GIT_STRATEGY` (`none` and `empty` leave the directory
    /// empty), `GIT_DEPTH` (20 by default, 0 the whole history), `GIT_CHECKOUT` (`"false"`:
    /// fetched, not checked out), HEAD detached at the commit, `origin` the project's URL on
    /// its server.
    fn checkout(&self, _job: &Job, env: &[(String, String)]) -> Checkout {
        let get = |name: &str| {
            env.iter()
                .rev()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.trim())
        };
        if matches!(get("GIT_STRATEGY"), Some("none" | "empty")) {
            return Checkout::Empty;
        }
        let facts = &self.facts;
        Checkout::Repository(Repository {
            depth: get("GIT_DEPTH").and_then(|d| d.parse().ok()).unwrap_or(20),
            branch: facts.branch.clone(),
            attached: false,
            remote: Some(format!("{}.git", project_url(facts))),
            check_out: get("GIT_CHECKOUT") != Some("false"),
            submodules: Submodules {
                strategy: match get("GIT_SUBMODULE_STRATEGY") {
                    Some("normal") => SubmoduleStrategy::Normal,
                    Some("recursive") => SubmoduleStrategy::Recursive,
                    _ => SubmoduleStrategy::None,
                },
                paths: get("GIT_SUBMODULE_PATHS")
                    .map(|p| p.split_whitespace().map(String::from).collect())
                    .unwrap_or_default(),
                depth: get("GIT_SUBMODULE_DEPTH").and_then(|d| d.parse().ok()),
            },
            writable: !umask_disabled(get("FF_DISABLE_UMASK_FOR_DOCKER_EXECUTOR")),
        })
    }

    fn service_wait(&self) -> ServiceWait {
        ServiceWait::AnyPort
    }
}

/// `FF_DISABLE_UMASK_FOR_DOCKER_EXECUTOR` as the runner reads it (Go's `ParseBool`): on,
/// the runner's helper checks out with git's own modes instead of under umask 0000.
pub fn umask_disabled(value: Option<&str>) -> bool {
    matches!(
        value.map(str::trim),
        Some("1" | "t" | "T" | "TRUE" | "true" | "True")
    )
}

/// The predefined variables of the pipeline (not of one job), as GitLab sets them.
pub fn predefined(facts: &Facts) -> Vec<(String, String)> {
    let mut v: Vec<(&str, String)> = vec![
        ("CI", "true".into()),
        ("GITLAB_CI", "true".into()),
        ("BERTH", "true".into()),
        ("CI_SERVER", "yes".into()),
        ("CI_SERVER_NAME", "GitLab".into()),
        ("CI_SERVER_HOST", facts.server.host.clone()),
        ("CI_SERVER_FQDN", facts.server.fqdn()),
        ("CI_SERVER_PORT", facts.server.port.to_string()),
        ("CI_SERVER_PROTOCOL", facts.server.protocol.clone()),
        ("CI_SERVER_URL", facts.server.url()),
        ("CI_SERVER_SHELL_SSH_HOST", facts.server.host.clone()),
        (
            "CI_SERVER_SHELL_SSH_PORT",
            facts.server.ssh_port.to_string(),
        ),
        ("CI_API_V4_URL", format!("{}/api/v4", facts.server.url())),
        (
            "CI_API_GRAPHQL_URL",
            format!("{}/api/graphql", facts.server.url()),
        ),
        ("CI_PIPELINE_ID", facts.pipeline_id.to_string()),
        ("CI_PIPELINE_IID", facts.pipeline_id.to_string()),
        ("CI_PIPELINE_SOURCE", facts.source.clone()),
        ("CI_PIPELINE_CREATED_AT", facts.commit_timestamp.clone()),
        ("CI_COMMIT_SHA", facts.commit_sha.clone()),
        (
            "CI_COMMIT_SHORT_SHA",
            facts.commit_sha.chars().take(8).collect(),
        ),
        ("CI_COMMIT_BEFORE_SHA", facts.before_sha.clone()),
        ("CI_COMMIT_REF_NAME", facts.ref_name.clone()),
        ("CI_COMMIT_REF_SLUG", ref_slug(&facts.ref_name)),
        ("CI_COMMIT_MESSAGE", facts.commit_message.clone()),
        (
            "CI_COMMIT_TITLE",
            facts
                .commit_message
                .lines()
                .next()
                .unwrap_or_default()
                .to_string(),
        ),
        (
            "CI_COMMIT_DESCRIPTION",
            facts
                .commit_message
                .split_once('\n')
                .map(|(_, d)| d.trim_start_matches('\n').to_string())
                .unwrap_or_default(),
        ),
        ("CI_COMMIT_TIMESTAMP", facts.commit_timestamp.clone()),
        ("CI_COMMIT_AUTHOR", facts.commit_author.clone()),
        ("CI_DEFAULT_BRANCH", facts.default_branch.clone()),
        ("CI_PROJECT_NAME", facts.project_name.clone()),
        ("CI_PROJECT_TITLE", facts.project_name.clone()),
        ("CI_PROJECT_PATH", facts.project_path.clone()),
        ("CI_PROJECT_PATH_SLUG", ref_slug(&facts.project_path)),
        (
            "CI_PROJECT_NAMESPACE",
            facts
                .project_path
                .rsplit_once('/')
                .map(|(ns, _)| ns.to_string())
                .unwrap_or_default(),
        ),
        (
            "CI_PROJECT_ROOT_NAMESPACE",
            facts
                .project_path
                .split('/')
                .next()
                .unwrap_or_default()
                .to_string(),
        ),
        ("CI_PROJECT_URL", project_url(facts)),
        // GitLab's value holds the job's token, which berth has not: the log shows it masked.
        (
            "CI_REPOSITORY_URL",
            format!(
                "{}://gitlab-ci-token:[MASKED]@{}/{}.git",
                facts.server.protocol,
                facts.server.fqdn(),
                facts.project_path
            ),
        ),
        ("CI_PROJECT_DIR", facts.container_dir.clone()),
        ("CI_BUILDS_DIR", "/builds".into()),
        ("CI_REGISTRY", format!("registry.{}", facts.server.host)),
        (
            "CI_REGISTRY_IMAGE",
            format!("registry.{}/{}", facts.server.host, facts.project_path).to_lowercase(),
        ),
    ];
    if let Some(tag) = &facts.tag {
        v.push(("CI_COMMIT_TAG", tag.clone()));
    }
    match (&facts.merge_request, &facts.branch) {
        (Some(mr), _) => v.extend(merge_request(facts, mr)),
        (None, Some(branch)) => v.push(("CI_COMMIT_BRANCH", branch.clone())),
        (None, None) => {}
    }
    v.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

fn project_url(facts: &Facts) -> String {
    format!("{}/{}", facts.server.url(), facts.project_path)
}

/// A merge request pipeline's variables, as GitLab sets them for a detached pipeline (one on
/// the source branch's commit, berth's kind): its source and target branch SHAs are empty
/// there (GitLab sets them in merged results pipelines only).
fn merge_request(facts: &Facts, mr: &MergeRequest) -> Vec<(&'static str, String)> {
    let mut v = vec![
        ("CI_MERGE_REQUEST_EVENT_TYPE", "detached".to_string()),
        ("CI_MERGE_REQUEST_SOURCE_BRANCH_SHA", String::new()),
        ("CI_MERGE_REQUEST_TARGET_BRANCH_SHA", String::new()),
    ];
    if let Some(base) = &mr.diff_base_sha {
        v.push(("CI_MERGE_REQUEST_DIFF_BASE_SHA", base.clone()));
    }
    let title = mr.title.clone();
    let draft = ["draft:", "[draft]", "(draft)"]
        .iter()
        .any(|p| title.to_lowercase().starts_with(p));
    v.extend([
        ("CI_MERGE_REQUEST_ID", mr.iid.to_string()),
        ("CI_MERGE_REQUEST_IID", mr.iid.to_string()),
        (
            "CI_MERGE_REQUEST_REF_PATH",
            format!("refs/merge-requests/{}/head", mr.iid),
        ),
        ("CI_MERGE_REQUEST_PROJECT_PATH", facts.project_path.clone()),
        ("CI_MERGE_REQUEST_PROJECT_URL", project_url(facts)),
        (
            "CI_MERGE_REQUEST_TARGET_BRANCH_NAME",
            mr.target_branch.clone(),
        ),
        ("CI_MERGE_REQUEST_TITLE", title),
        ("CI_MERGE_REQUEST_DRAFT", draft.to_string()),
        ("CI_MERGE_REQUEST_DESCRIPTION", String::new()),
        ("CI_MERGE_REQUEST_DESCRIPTION_IS_TRUNCATED", "false".into()),
    ]);
    // GitLab leaves the variable out when the merge request has no labels.
    if !mr.labels.is_empty() {
        v.push(("CI_MERGE_REQUEST_LABELS", mr.labels.join(",")));
    }
    v.extend([
        ("CI_MERGE_REQUEST_SQUASH_ON_MERGE", "false".to_string()),
        (
            "CI_MERGE_REQUEST_SOURCE_PROJECT_PATH",
            facts.project_path.clone(),
        ),
        ("CI_MERGE_REQUEST_SOURCE_PROJECT_URL", project_url(facts)),
        (
            "CI_MERGE_REQUEST_SOURCE_BRANCH_NAME",
            mr.source_branch.clone(),
        ),
    ]);
    v
}

/// GitLab's `*_SLUG`: lowercased, anything but `a-z0-9` replaced by `-`, at most 63 bytes, no
/// `-` at either end.
pub fn ref_slug(name: &str) -> String {
    let s: String = name
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                c
            } else {
                '-'
            }
        })
        .collect();
    let s: String = s.chars().take(63).collect();
    s.trim_matches('-').to_string()
}

/// The environment of one job, in GitLab's precedence (later wins): predefined, pipeline
/// variables, job variables, variables from earlier jobs' dotenv reports, command line. Values
/// are expanded against the result.
pub fn job_env(
    ctx: &Facts,
    pipeline_vars: &[Variable],
    job: &Job,
    job_id: u64,
    dotenv: &[(String, String)],
    overrides: &[(String, String)],
) -> Vec<(String, String)> {
    let mut order: Vec<String> = Vec::new();
    let mut values: HashMap<String, (String, bool)> = HashMap::new();
    let mut set = |name: &str, value: String, expand: bool| {
        if !values.contains_key(name) {
            order.push(name.to_string());
        }
        values.insert(name.to_string(), (value, expand));
    };
    for (k, v) in predefined(ctx) {
        set(&k, v, false);
    }
    let job_predefined = [
        ("CI_JOB_NAME", job.name.clone()),
        ("CI_JOB_NAME_SLUG", ref_slug(&job.name)),
        ("CI_JOB_STAGE", job.stage.clone()),
        ("CI_JOB_ID", job_id.to_string()),
        ("CI_NODE_TOTAL", "1".to_string()),
    ];
    for (k, v) in job_predefined {
        set(k, v, false);
    }
    if let Some(env) = &job.environment {
        set("CI_ENVIRONMENT_NAME", env.name.clone(), true);
        set("CI_ENVIRONMENT_SLUG", ref_slug(&env.name), false);
        if let Some(url) = &env.url {
            set("CI_ENVIRONMENT_URL", url.clone(), true);
        }
    }
    let inherited = pipeline_vars
        .iter()
        .filter(|v| match &job.inherit_variables {
            None => true,
            Some(keep) => keep.contains(&v.name),
        });
    for v in inherited.chain(&job.variables) {
        set(&v.name, v.value.clone(), v.expand);
    }
    for (k, v) in dotenv.iter().chain(overrides) {
        set(k, v.clone(), false);
    }
    let raw: HashMap<&str, &str> = values
        .iter()
        .map(|(k, (v, _))| (k.as_str(), v.as_str()))
        .collect();
    let mut env: Vec<(String, String)> = order
        .iter()
        .map(|name| {
            let (value, expand_it) = &values[name];
            let value = if *expand_it {
                expand(value, &|n| raw.get(n).map(|s| s.to_string()), 0)
            } else {
                value.clone()
            };
            (name.clone(), value)
        })
        .collect();
    // The slug follows the expanded name.
    if let Some(name) = env
        .iter()
        .find(|(k, _)| k == "CI_ENVIRONMENT_NAME")
        .map(|(_, v)| ref_slug(v))
    {
        if let Some(slot) = env.iter_mut().find(|(k, _)| k == "CI_ENVIRONMENT_SLUG") {
            slot.1 = name;
        }
    }
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precedence_and_predefined() {
        let ctx = Facts {
            project_dir: "/p/demo".into(),
            project_name: "demo".into(),
            container_dir: "/builds/group/demo".into(),
            commit_sha: "a".repeat(40),
            ref_name: "feature/x".into(),
            pipeline_id: 7,
            dirty: false,
            branch: Some("feature/x".into()),
            tag: None,
            source: "push".into(),
            default_branch: "main".into(),
            commit_message: "Title\n\nBody".into(),
            commit_timestamp: "2026-01-01T00:00:00+00:00".into(),
            commit_author: "A <a@b>".into(),
            commit_epoch: Some(1_767_225_600),
            project_path: "group/demo".into(),
            server: Default::default(),
            before_sha: "b".repeat(40),
            merge_request: None,
        };
        let src = "variables: {A: global, B: global, C: '$A/c'}\njob:\n  variables: {B: job}\n  script: s\n";
        let p = crate::gitlab::load(src).unwrap().pipeline;
        let env = job_env(
            &ctx,
            &p.variables,
            &p.jobs[0],
            3,
            &[],
            &[("A".into(), "cli".into())],
        );
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("A"), Some("cli"));
        assert_eq!(get("B"), Some("job"));
        assert_eq!(get("C"), Some("cli/c"));
        assert_eq!(get("CI"), Some("true"));
        assert_eq!(get("CI_JOB_NAME"), Some("job"));
        assert_eq!(get("CI_JOB_STAGE"), Some("test"));
        assert_eq!(get("CI_PROJECT_DIR"), Some("/builds/group/demo"));
        assert_eq!(get("CI_COMMIT_REF_SLUG"), Some("feature-x"));
        assert_eq!(get("CI_COMMIT_BRANCH"), Some("feature/x"));
        assert_eq!(get("CI_COMMIT_TITLE"), Some("Title"));
        assert_eq!(get("CI_COMMIT_DESCRIPTION"), Some("Body"));
        assert_eq!(get("CI_PROJECT_NAMESPACE"), Some("group"));
        assert_eq!(
            get("CI_REGISTRY_IMAGE"),
            Some("registry.gitlab.example.com/group/demo")
        );
        assert_eq!(get("CI_COMMIT_TAG"), None);
    }

    #[test]
    fn merge_request_and_server_variables() {
        let dir = tempfile::tempdir().unwrap();
        let mut facts = Facts::new(dir.path(), 1);
        facts.project_path = "g/p".into();
        facts.server = crate::project::git::Server {
            host: "git.acme.io".into(),
            protocol: "https".into(),
            port: 8443,
            ssh_port: 2222,
        };
        facts.merge_request = Some(MergeRequest {
            iid: 7,
            title: "Draft: speed".into(),
            labels: vec!["perf".into(), "db".into()],
            source_branch: "topic".into(),
            target_branch: "stable".into(),
            diff_base_sha: Some("c".repeat(40)),
        });
        let vars = predefined(&facts);
        let get = |k: &str| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("CI_SERVER_URL"), Some("https://git.acme.io:8443"));
        assert_eq!(get("CI_SERVER_FQDN"), Some("git.acme.io:8443"));
        assert_eq!(get("CI_SERVER_PORT"), Some("8443"));
        assert_eq!(get("CI_SERVER_SHELL_SSH_PORT"), Some("2222"));
        assert_eq!(get("CI_PROJECT_URL"), Some("https://git.acme.io:8443/g/p"));
        assert_eq!(
            get("CI_REPOSITORY_URL"),
            Some("https://gitlab-ci-token:[MASKED]@git.acme.io:8443/g/p.git")
        );
        assert_eq!(get("CI_MERGE_REQUEST_IID"), Some("7"));
        assert_eq!(
            get("CI_MERGE_REQUEST_REF_PATH"),
            Some("refs/merge-requests/7/head")
        );
        assert_eq!(get("CI_MERGE_REQUEST_TITLE"), Some("Draft: speed"));
        assert_eq!(get("CI_MERGE_REQUEST_DRAFT"), Some("true"));
        assert_eq!(get("CI_MERGE_REQUEST_LABELS"), Some("perf,db"));
        assert_eq!(get("CI_MERGE_REQUEST_SOURCE_BRANCH_NAME"), Some("topic"));
        assert_eq!(get("CI_MERGE_REQUEST_TARGET_BRANCH_NAME"), Some("stable"));
        assert_eq!(
            get("CI_MERGE_REQUEST_DIFF_BASE_SHA").map(str::len),
            Some(40)
        );
        assert_eq!(get("CI_MERGE_REQUEST_SOURCE_BRANCH_SHA"), Some(""));
        assert_eq!(get("CI_MERGE_REQUEST_TARGET_BRANCH_SHA"), Some(""));
        // A merge request pipeline is no branch pipeline.
        assert_eq!(get("CI_COMMIT_BRANCH"), None);
        facts.merge_request.as_mut().unwrap().labels.clear();
        let vars = predefined(&facts);
        assert!(!vars.iter().any(|(k, _)| k == "CI_MERGE_REQUEST_LABELS"));
    }

    #[test]
    fn ref_slugs() {
        assert_eq!(ref_slug("Feature/ABC_1.2"), "feature-abc-1-2");
        assert_eq!(ref_slug(&"x".repeat(80)).len(), 63);
    }
}
