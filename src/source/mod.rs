//! The text of a pipeline file as berth reads it: a YAML tree whose every node knows its line
//! and column ([`yaml`]), and compiler-style diagnostics that point into it ([`diag`]). Every
//! pipeline format shares them.

pub mod diag;
pub mod yaml;

use std::path::{Path, PathBuf};

/// The pipeline file's text and the name to show in messages.
#[derive(Debug, Clone)]
pub struct Source {
    pub path: PathBuf,
    pub name: String,
    pub text: String,
}

impl Source {
    /// Find the pipeline file of a project: `berth.yml`, else `.gitlab-ci.yml`.
    pub fn discover(project: &Path) -> Option<PathBuf> {
        ["berth.yml", ".gitlab-ci.yml"]
            .iter()
            .map(|n| project.join(n))
            .find(|p| p.is_file())
    }

    pub fn read(path: &Path) -> std::io::Result<Source> {
        let text = std::fs::read_to_string(path)?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| path.display().to_string());
        Ok(Source {
            path: path.to_path_buf(),
            name,
            text,
        })
    }
}
