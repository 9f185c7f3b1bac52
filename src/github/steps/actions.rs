//! The actions berth has built in that move files rather than run a process: `actions/cache`
//! (and its `restore` and `save` halves), `actions/upload-artifact` and
//! `actions/download-artifact` (v4). Their inputs read as GitHub reads them, made an engine
//! [`Operation`]; the engine's report made their outputs.

use crate::pipeline::globs;
use crate::pipeline::steps::Operation;

/// GitHub's limit on a cache key.
const KEY_LIMIT: usize = 512;

/// What the step does with the engine's report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum ActionKind {
    /// `actions/cache` (`save` then holds its paths, for the step after the job's last) or
    /// `actions/cache/restore`.
    Restore {
        key: String,
        save: Option<Vec<String>>,
        fail_on_miss: bool,
    },
    /// `actions/cache/save`.
    Save,
    /// What `actions/cache` saves after the job's last step.
    PostSave,
    Upload {
        name: String,
        if_no_files: NoFiles,
        paths: String,
    },
    Download {
        into: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum NoFiles {
    Warn,
    Error,
    Ignore,
}

/// An action's operation, made from its inputs.
#[derive(Debug, Clone)]
pub(super) struct Prepared {
    pub operation: Operation,
    pub kind: ActionKind,
    /// Some path starts with `~`: the job's `HOME` must be asked for first.
    pub needs_home: bool,
}

/// The lines of a multi-line input, trimmed, empty ones left out.
fn lines(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect()
}

fn boolean(input: &dyn Fn(&str) -> Option<String>, name: &str) -> Result<bool, String> {
    match input(name).map(|v| v.to_ascii_lowercase()) {
        None => Ok(false),
        Some(v) if v == "true" => Ok(true),
        Some(v) if v == "false" => Ok(false),
        Some(v) => Err(format!(
            "input `{name}` is `{v}`: it must be `true` or `false`"
        )),
    }
}

/// A path as the job's container knows it: relative ones in the workspace, `~` the job's
/// home (left as `~` when `home` is not known yet).
pub(super) fn resolve(path: &str, workspace: &str, home: Option<&str>) -> String {
    let path = path.trim();
    let (negate, path) = match path.strip_prefix('!') {
        Some(rest) => ("!", rest.trim_start()),
        None => ("", path),
    };
    let resolved = if path == "~" || path.starts_with("~/") {
        match home {
            Some(h) => format!("{}{}", h.trim_end_matches('/'), &path[1..]),
            None => path.to_string(),
        }
    } else if path.starts_with('/') {
        path.to_string()
    } else {
        let rel = path.trim_start_matches("./");
        if rel.is_empty() || rel == "." {
            workspace.trim_end_matches('/').to_string()
        } else {
            format!("{}/{rel}", workspace.trim_end_matches('/'))
        }
    };
    let normal = normalize(&resolved);
    format!("{negate}{normal}")
}

/// `.` names and doubled slashes out, a trailing slash off (`..` stays for the check).
fn normalize(path: &str) -> String {
    let parts: Vec<&str> = path
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    if path.starts_with('~') {
        return parts.join("/");
    }
    format!("/{}", parts.join("/"))
}

/// Fills in `~` with the job's home in an operation's paths.
pub(super) fn with_home(operation: &mut Operation, home: &str) {
    let fix = |p: &mut String| {
        if p == "~" || p.starts_with("~/") {
            *p = normalize(&format!("{}{}", home.trim_end_matches('/'), &p[1..]));
        }
    };
    match operation {
        Operation::RestoreCache { paths, .. } | Operation::SaveCache { paths, .. } => {
            paths.iter_mut().for_each(fix)
        }
        Operation::UploadArtifact {
            search,
            include,
            exclude,
            root,
            ..
        } => {
            search.iter_mut().for_each(fix);
            include.iter_mut().for_each(fix);
            exclude.iter_mut().for_each(fix);
            fix(root);
        }
        Operation::DownloadArtifacts { into, .. } => fix(into),
    }
}

/// Fills in `~` in the paths a restore saves later.
pub(super) fn kind_with_home(kind: &mut ActionKind, home: &str) {
    if let ActionKind::Restore {
        save: Some(paths), ..
    } = kind
    {
        let mut operation = Operation::SaveCache {
            key: String::new(),
            paths: std::mem::take(paths),
        };
        with_home(&mut operation, home);
        if let Operation::SaveCache { paths: fixed, .. } = operation {
            *paths = fixed;
        }
    }
}

fn check_key(key: &str) -> Result<(), String> {
    if key.len() > KEY_LIMIT {
        return Err(format!(
            "key `{}...` is longer than {KEY_LIMIT} characters",
            &key[..key.char_indices().nth(40).map_or(key.len(), |(i, _)| i)]
        ));
    }
    if key.contains(',') {
        return Err(format!("key `{key}` cannot contain commas"));
    }
    Ok(())
}

/// Cache paths: files and directories; berth does not expand wildcards in them yet.
fn cache_paths(text: &str, workspace: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for line in lines(text) {
        if line.starts_with('!') || globs::has_wildcard(&line) {
            return Err(format!(
                "path `{line}`: berth caches whole files and directories (no wildcards or `!` yet)"
            ));
        }
        let p = resolve(&line, workspace, None);
        if p.split('/').any(|c| c == "..") {
            return Err(format!("path `{line}`: `..` is not supported"));
        }
        if !out.contains(&p) {
            out.push(p);
        }
    }
    if out.is_empty() {
        return Err("input `path` is required and names no path".to_string());
    }
    Ok(out)
}

/// The operation of `action` (`owner/name[/sub]`, lower case) with these inputs.
pub(super) fn prepare(
    action: &str,
    input: &dyn Fn(&str) -> Option<String>,
    workspace: &str,
) -> Result<Prepared, String> {
    let required = |name: &str| {
        input(name).ok_or_else(|| format!("input `{name}` is required and not supplied"))
    };
    let (operation, kind) = match action {
        "actions/cache" | "actions/cache/restore" => {
            let key = required("key")?;
            check_key(&key)?;
            let prefixes = lines(&input("restore-keys").unwrap_or_default());
            for p in &prefixes {
                check_key(p)?;
            }
            let paths = cache_paths(&required("path")?, workspace)?;
            let lookup_only = boolean(input, "lookup-only")?;
            let fail_on_miss = boolean(input, "fail-on-cache-miss")?;
            let save = (action == "actions/cache").then(|| paths.clone());
            (
                Operation::RestoreCache {
                    key: key.clone(),
                    prefixes,
                    paths,
                    lookup_only,
                },
                ActionKind::Restore {
                    key,
                    save,
                    fail_on_miss,
                },
            )
        }
        "actions/cache/save" => {
            let key = required("key")?;
            check_key(&key)?;
            let paths = cache_paths(&required("path")?, workspace)?;
            (Operation::SaveCache { key, paths }, ActionKind::Save)
        }
        "actions/upload-artifact" => {
            let name = input("name").unwrap_or_else(|| "artifact".to_string());
            check_artifact_name(&name)?;
            let text = required("path")?;
            let mut include = Vec::new();
            let mut exclude = Vec::new();
            for line in lines(&text) {
                let p = resolve(&line, workspace, None);
                if p.split('/').any(|c| c == "..") {
                    return Err(format!("path `{line}`: `..` is not supported"));
                }
                match p.strip_prefix('!') {
                    Some(rest) => exclude.push(rest.to_string()),
                    None => include.push(p),
                }
            }
            if include.is_empty() {
                return Err("input `path` names nothing to upload".to_string());
            }
            let search = globs::search_paths(&include);
            // Several search paths: their common ancestor is the artifact's root; one: the
            // path itself (a file there is named by its own name).
            let root = if search.len() > 1 {
                globs::common_ancestor(&search)
            } else {
                search[0].clone()
            };
            let if_no_files = match input("if-no-files-found")
                .map(|v| v.to_ascii_lowercase())
                .as_deref()
            {
                None | Some("warn") => NoFiles::Warn,
                Some("error") => NoFiles::Error,
                Some("ignore") => NoFiles::Ignore,
                Some(other) => {
                    return Err(format!(
                        "input `if-no-files-found` is `{other}`: it must be warn, error or ignore"
                    ))
                }
            };
            let hidden = boolean(input, "include-hidden-files")?;
            (
                Operation::UploadArtifact {
                    name: name.clone(),
                    search,
                    include,
                    exclude,
                    root,
                    hidden,
                },
                ActionKind::Upload {
                    name,
                    if_no_files,
                    paths: lines(&text).join(", "),
                },
            )
        }
        "actions/download-artifact" => {
            let name = input("name");
            let pattern = input("pattern");
            let merge = boolean(input, "merge-multiple")?;
            let into = resolve(
                &input("path").unwrap_or_else(|| workspace.to_string()),
                workspace,
                None,
            );
            if into.split('/').any(|c| c == "..") {
                return Err("input `path`: `..` is not supported".to_string());
            }
            (
                Operation::DownloadArtifacts {
                    separate: name.is_none() && !merge,
                    name,
                    pattern,
                    into: into.clone(),
                },
                ActionKind::Download { into },
            )
        }
        other => return Err(format!("`{other}` is not an action berth has built in")),
    };
    let mut needs_home = false;
    let mut probe = operation.clone();
    with_home(&mut probe, "/");
    if probe != operation {
        needs_home = true;
    }
    Ok(Prepared {
        operation,
        kind,
        needs_home,
    })
}

/// upload-artifact's rule: no `"`, `:`, `<`, `>`, `|`, `*`, `?`, `\`, `/`, CR or LF.
fn check_artifact_name(name: &str) -> Result<(), String> {
    if let Some(c) = name.chars().find(|c| "\":<>|*?\\/\r\n".contains(*c)) {
        return Err(format!(
            "artifact name `{name}` contains `{}`, which an artifact name cannot",
            c.escape_default()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k: &str| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.trim().to_string())
                .filter(|v| !v.is_empty())
        }
    }

    #[test]
    fn paths_resolve_in_the_workspace_and_home() {
        assert_eq!(resolve("dist", "/w", None), "/w/dist");
        assert_eq!(resolve("./dist/", "/w", None), "/w/dist");
        assert_eq!(resolve(".", "/w/", None), "/w");
        assert_eq!(resolve("/opt/x", "/w", None), "/opt/x");
        assert_eq!(resolve("~/.npm", "/w", Some("/root")), "/root/.npm");
        assert_eq!(resolve("~/.npm", "/w", None), "~/.npm");
        assert_eq!(resolve("!dist/*.map", "/w", None), "!/w/dist/*.map");
    }

    #[test]
    fn cache_inputs_make_a_restore_and_its_save() {
        let i = inputs(&[
            ("key", "deps-abc"),
            ("path", "~/.cache/pip\nvendor\n"),
            ("restore-keys", "deps-\n  \ndeps"),
        ]);
        let p = prepare("actions/cache", &i, "/w").unwrap();
        assert!(p.needs_home);
        let mut op = p.operation.clone();
        with_home(&mut op, "/root");
        assert_eq!(
            op,
            Operation::RestoreCache {
                key: "deps-abc".into(),
                prefixes: vec!["deps-".into(), "deps".into()],
                paths: vec!["/root/.cache/pip".into(), "/w/vendor".into()],
                lookup_only: false,
            }
        );
        assert!(matches!(p.kind, ActionKind::Restore { save: Some(_), .. }));
        let p = prepare("actions/cache/restore", &i, "/w").unwrap();
        assert!(matches!(p.kind, ActionKind::Restore { save: None, .. }));
        // Refused: no key, a comma, wildcards, `..`, a non-boolean.
        let e = prepare("actions/cache", &inputs(&[("path", "x")]), "/w").unwrap_err();
        assert!(e.contains("`key` is required"), "{e}");
        for bad in [
            vec![("key", "a,b"), ("path", "x")],
            vec![("key", "k"), ("path", "*.o")],
            vec![("key", "k"), ("path", "../x")],
            vec![("key", "k"), ("path", "x"), ("lookup-only", "yes")],
        ] {
            assert!(
                prepare("actions/cache", &inputs(&bad), "/w").is_err(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn upload_roots_are_the_search_paths_common_ancestor() {
        let up = |path: &str| {
            let p = prepare("actions/upload-artifact", &inputs(&[("path", path)]), "/w").unwrap();
            match p.operation {
                Operation::UploadArtifact {
                    name,
                    search,
                    root,
                    exclude,
                    ..
                } => (name, search, root, exclude),
                other => panic!("{other:?}"),
            }
        };
        let (name, search, root, _) = up("dist/**/*.js");
        assert_eq!(name, "artifact");
        assert_eq!(search, ["/w/dist"]);
        assert_eq!(root, "/w/dist");
        let (_, search, root, exclude) = up("out/a/x.txt\nout/b/\n!out/b/tmp");
        assert_eq!(search, ["/w/out/a/x.txt", "/w/out/b"]);
        assert_eq!(root, "/w/out");
        assert_eq!(exclude, ["/w/out/b/tmp"]);
        let (_, _, root, _) = up("report.txt");
        assert_eq!(root, "/w/report.txt");
        let e = prepare(
            "actions/upload-artifact",
            &inputs(&[("path", "x"), ("name", "a/b")]),
            "/w",
        )
        .unwrap_err();
        assert!(e.contains("artifact name"), "{e}");
    }

    #[test]
    fn downloads_go_each_into_its_folder_unless_named_or_merged() {
        let down = |pairs: &[(&str, &str)]| {
            prepare("actions/download-artifact", &inputs(pairs), "/w")
                .unwrap()
                .operation
        };
        assert_eq!(
            down(&[("name", "dist")]),
            Operation::DownloadArtifacts {
                name: Some("dist".into()),
                pattern: None,
                into: "/w".into(),
                separate: false
            }
        );
        assert_eq!(
            down(&[("path", "all"), ("pattern", "build-*")]),
            Operation::DownloadArtifacts {
                name: None,
                pattern: Some("build-*".into()),
                into: "/w/all".into(),
                separate: true
            }
        );
        assert!(matches!(
            down(&[("merge-multiple", "true")]),
            Operation::DownloadArtifacts {
                separate: false,
                ..
            }
        ));
    }
}
