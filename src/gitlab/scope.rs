//! What a pipeline is created for. GitLab knows the branch, tag, source and changed files from
//! the push that started it; berth takes them from git and the command line (see [`crate::project::git`]), and
//! hands them here so that `include`, `rules`, `only`/`except` and `workflow` can decide.

use std::path::PathBuf;

use crate::project::git::ChangedFiles;
use std::sync::{Arc, OnceLock};

#[derive(Clone)]
pub struct Scope {
    pub project_dir: PathBuf,
    /// Predefined pipeline variables (CI_COMMIT_BRANCH, CI_PIPELINE_SOURCE, ...).
    pub variables: Vec<(String, String)>,
    /// The command line's `-e`: the highest precedence.
    pub overrides: Vec<(String, String)>,
    pub changes: Option<Arc<dyn ChangedFiles>>,
    /// The project's files and directories as a checkout has them, read once for every `include` wildcard
    /// and `exists` rule.
    pub files: Arc<OnceLock<Vec<String>>>,
}

impl std::fmt::Debug for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scope")
            .field("project_dir", &self.project_dir)
            .field("variables", &self.variables)
            .field("overrides", &self.overrides)
            .finish()
    }
}

impl Scope {
    /// A push to `main` in the current directory: what tests and `load(text)` use.
    pub fn for_tests() -> Scope {
        Scope {
            project_dir: PathBuf::from("."),
            variables: vec![
                ("CI".into(), "true".into()),
                ("GITLAB_CI".into(), "true".into()),
                ("CI_COMMIT_BRANCH".into(), "main".into()),
                ("CI_COMMIT_REF_NAME".into(), "main".into()),
                ("CI_DEFAULT_BRANCH".into(), "main".into()),
                ("CI_PIPELINE_SOURCE".into(), "push".into()),
            ],
            overrides: Vec::new(),
            changes: None,
            files: Default::default(),
        }
    }

    /// The project's files and directories (relative, `/`-separated, sorted), as a job's
    /// checkout has them.
    pub fn project_files(&self) -> &[String] {
        self.files.get_or_init(|| {
            crate::project::workspace::files(
                &self.project_dir,
                crate::project::workspace::Selection::Checkout,
            )
            .unwrap_or_default()
            .into_iter()
            .map(|rel| rel.to_string_lossy().replace('\\', "/"))
            .collect()
        })
    }

    pub fn var(&self, name: &str) -> Option<&str> {
        self.overrides
            .iter()
            .rev()
            .chain(self.variables.iter().rev())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}
