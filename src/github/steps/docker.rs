//! Steps that run in a container of their own, as GitHub runs Docker actions and `uses:
//! docker://image` steps: the image (pulled, or built from the action's Dockerfile and tagged
//! by its content), the paths GitHub mounts in that container, and `with: args` split as a
//! command line.

use std::path::{Path, PathBuf};

use crate::github::actions::{Action, Location, Status};
use crate::github::workflow::Runs;
use crate::pipeline::steps::StepImage;
use crate::project::workspace::{self, Selection};

/// The workspace in the step's container (`GITHUB_WORKSPACE`).
pub const WORKSPACE: &str = "/github/workspace";
/// The folder of the step's `GITHUB_OUTPUT`, `GITHUB_ENV`... files.
pub const FILE_COMMANDS: &str = "/github/file_commands";
/// The event's payload (`GITHUB_EVENT_PATH`).
pub const EVENT_PATH: &str = "/github/workflow/event.json";
/// `HOME`.
pub const HOME: &str = "/github/home";

/// The image a step's container runs, for the `uses:` of a Docker action or a `docker://`
/// step; `None` for any other. `project` is the repository on this host (a local action's
/// Dockerfile is read from it).
pub fn image_of(status: &Status, project: &Path) -> Option<Result<StepImage, String>> {
    match status {
        Status::Image(image) => Some(Ok(StepImage {
            image: image.clone(),
            build: None,
        })),
        Status::Ready(a) => match &a.manifest.runs {
            Runs::Docker { image, .. } => Some(action_image(a, image, project)),
            _ => None,
        },
        _ => None,
    }
}

/// A Docker action's image: `docker://image` as it is, else its Dockerfile built with the
/// action's folder as the context, tagged by that folder's content (built once).
fn action_image(a: &Action, image: &str, project: &Path) -> Result<StepImage, String> {
    if let Some(reference) = image.strip_prefix("docker://") {
        return Ok(StepImage {
            image: reference.to_string(),
            build: None,
        });
    }
    let context: PathBuf = match &a.location {
        Location::Workspace(path) => project.join(path),
        Location::Cache { dir, path, .. } => dir.join(path),
    };
    let hash = workspace::content_hash(&context, Selection::BuildContext).map_err(|e| {
        format!(
            "the Docker action of {} cannot be built: cannot read {}: {e}",
            a.file,
            context.display()
        )
    })?;
    let name = match &a.location {
        Location::Workspace(path) => path.clone(),
        Location::Cache { .. } => a.uses.split('@').next().unwrap_or(&a.uses).to_string(),
    };
    Ok(StepImage {
        image: build_tag(&name, &hash),
        build: Some((context, image.trim_start_matches("./").to_string())),
    })
}

/// `berth-build/action-<name>:<hash>`, the tag of an action's image built from its content
/// (the name in the few characters a repository's name may have).
fn build_tag(name: &str, hash: &str) -> String {
    let lower = name.to_ascii_lowercase();
    let words: Vec<&str> = lower
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    format!(
        "berth-build/action-{}:{}",
        words.join("-"),
        &hash[..hash.len().min(16)]
    )
}

/// `with: args` of a `docker://` step as the runner passes it to `docker run`: split at
/// whitespace, quotes ('' and "") keeping what they enclose together, `\` escaping the next
/// character outside single quotes.
pub fn split_args(text: &str) -> Result<Vec<String>, String> {
    let mut args = Vec::new();
    let mut current = String::new();
    let mut has = false;
    let mut chars = text.chars();
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some('\''), '\'') | (Some('"'), '"') => quote = None,
            (Some('\''), c) => current.push(c),
            (_, '\\') => match chars.next() {
                Some(n) => current.push(n),
                None => current.push('\\'),
            },
            (Some(_), c) => current.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                has = true;
            }
            (None, c) if c.is_whitespace() => {
                if has || !current.is_empty() {
                    args.push(std::mem::take(&mut current));
                    has = false;
                }
            }
            (None, c) => current.push(c),
        }
    }
    if let Some(q) = quote {
        return Err(format!("`with: args` has an unclosed {q}"));
    }
    if has || !current.is_empty() {
        args.push(current);
    }
    Ok(args)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_split_as_a_command_line() {
        let split = |t: &str| split_args(t).unwrap();
        assert_eq!(split("  a b\tc "), ["a", "b", "c"]);
        assert_eq!(
            split(r#"-c "echo hi there" 'x y' """#),
            ["-c", "echo hi there", "x y", ""]
        );
        assert_eq!(split(r"a\ b 'c\d'"), ["a b", r"c\d"]);
        assert!(split("").is_empty());
        assert!(split_args("'open").is_err());
    }

    fn action(runs: &str, location: Location) -> Status {
        let text = format!("name: x\nruns:\n  using: docker\n{runs}");
        let manifest = crate::github::workflow::parse_action(&text, 0).unwrap();
        Status::Ready(std::sync::Arc::new(Action {
            uses: "octo/lint/docker@v2".into(),
            file: "action.yml".into(),
            location,
            manifest,
        }))
    }

    #[test]
    fn a_cached_docker_action_is_built_from_its_folder_in_the_cache() {
        let cache = tempfile::tempdir().unwrap();
        let folder = cache.path().join("docker");
        std::fs::create_dir_all(&folder).unwrap();
        std::fs::write(folder.join("Dockerfile"), "FROM scratch\n").unwrap();
        let location = Location::Cache {
            dir: cache.path().to_path_buf(),
            path: "docker".into(),
            sha: "abc".into(),
        };
        let status = action("  image: ./Dockerfile\n", location.clone());
        let image = image_of(&status, Path::new("/nowhere")).unwrap().unwrap();
        assert!(
            image
                .image
                .starts_with("berth-build/action-octo-lint-docker:"),
            "{image:?}"
        );
        assert_eq!(image.build, Some((folder.clone(), "Dockerfile".into())));
        // Its content names the tag: a change is another image.
        std::fs::write(folder.join("Dockerfile"), "FROM scratch\nENV A=1\n").unwrap();
        let again = image_of(&status, Path::new("/nowhere")).unwrap().unwrap();
        assert_ne!(again.image, image.image);
        // `docker://` in the metadata: that image, nothing built.
        let status = action("  image: docker://alpine:3\n", location);
        let image = image_of(&status, Path::new("/nowhere")).unwrap().unwrap();
        assert_eq!((image.image.as_str(), image.build), ("alpine:3", None));
    }

    #[test]
    fn a_build_tag_names_the_action_and_its_content() {
        assert_eq!(
            build_tag(".github/actions/Greet", "0123456789abcdef0123"),
            "berth-build/action-github-actions-greet:0123456789abcdef"
        );
    }
}
