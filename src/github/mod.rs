//! GitHub Actions' reading of a workflow: the expression language ([`expr`]), the workflow
//! file as a typed model ([`workflow`]), filter patterns ([`pattern`]), whether an event
//! triggers a workflow ([`trigger`]), matrix expansion with check-run names ([`matrix`]),
//! and running it: the run's facts and contexts ([`run`]), the workflow made a
//! [`crate::pipeline::Pipeline`] ([`lower`]), a job's steps behind the engine's seam
//! ([`steps`]) with the files steps write ([`file_commands`]), the built-in
//! `actions/setup-python` ([`setup_python`]), and the commands steps print
//! ([`workflow_commands`]).

pub mod actions;
pub mod expr;
pub mod file_commands;
pub mod hash_files;
pub mod load;
pub mod lower;
pub mod matrix;
pub mod pattern;
pub mod run;
pub mod setup_python;
pub mod steps;
pub mod trigger;
pub mod workflow;
pub mod workflow_commands;

use std::path::{Path, PathBuf};

/// Is `path` a workflow file (`.github/workflows/NAME.yml` or `.yaml`)?
pub fn is_workflow_path(path: &Path) -> bool {
    let is_yaml = path.extension().is_some_and(|e| e == "yml" || e == "yaml");
    let parent = path.parent();
    let in_workflows = parent
        .and_then(|p| p.file_name())
        .is_some_and(|n| n == "workflows");
    let in_github = parent
        .and_then(Path::parent)
        .and_then(|p| p.file_name())
        .is_some_and(|n| n == ".github");
    is_yaml && in_workflows && in_github
}

/// The project's workflow files, by name: `.github/workflows/*.yml` and `*.yaml` (not in
/// subfolders, as GitHub reads them). Only regular files: a link could lead anywhere.
pub fn workflow_files(project: &Path) -> Vec<PathBuf> {
    let dir = project.join(".github").join("workflows");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.path())
        .filter(|p| is_workflow_path(p))
        .collect();
    files.sort();
    files
}

#[cfg(test)]
mod discovery_tests {
    use super::*;

    #[test]
    fn workflows_are_yaml_files_directly_in_github_workflows() {
        let dir = tempfile::tempdir().unwrap();
        let wf = dir.path().join(".github/workflows");
        std::fs::create_dir_all(wf.join("sub")).unwrap();
        for f in ["b.yaml", "a.yml", "notes.md", "sub/c.yml"] {
            std::fs::write(wf.join(f), "on: push\n").unwrap();
        }
        std::os::unix::fs::symlink(wf.join("a.yml"), wf.join("link.yml")).unwrap();
        let names: Vec<String> = workflow_files(dir.path())
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["a.yml", "b.yaml"]);
        assert!(is_workflow_path(Path::new("x/.github/workflows/ci.yml")));
        assert!(!is_workflow_path(Path::new("x/workflows/ci.yml")));
        assert!(!is_workflow_path(Path::new(".gitlab-ci.yml")));
    }
}
