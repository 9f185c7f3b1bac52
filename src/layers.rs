//! The flow as a rule: every top-level module has a layer, and a module's code (its tests
//! aside) imports only modules of lower layers. Two modules of one layer never import each
//! other, so a second pipeline format sits beside `gitlab` without either knowing the other.

use std::collections::BTreeMap;
use std::path::Path;

/// Lower first. `events` is the engine's output vocabulary: below the engine that sends them
/// and the reporters that read them.
const LAYERS: &[(&str, u8)] = &[
    ("units", 0),
    ("source", 0),
    ("project", 1),
    ("pipeline", 2),
    ("store", 2),
    ("gitlab", 3),
    ("github", 3),
    ("plan", 4),
    ("events", 4),
    ("engine", 5),
    ("report", 5),
    // The engine's seam implemented: it imports the engine's runtime types, the engine
    // imports nothing of it.
    ("docker", 6),
    ("cli", 7),
];

/// The code of a file without its comments, its test module and anything after it (test
/// modules come last in berth's files).
fn code(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let t = line.trim_start();
        if t.starts_with("#[cfg(test)]") {
            break;
        }
        if t.starts_with("//") {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// The top-level modules named by `crate::...` paths, including `use crate::{a, b::c}` groups.
fn imports(code: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // Top-level names in the group: those at brace depth 0, after `{` or `,`.
            let mut depth = 0;
            let mut start = true;
            let mut name = String::new();
            for c in group.chars() {
                if start && depth == 0 && (c.is_alphanumeric() || c == '_') {
                    name.push(c);
                    continue;
                }
                if !name.is_empty() {
                    found.push(std::mem::take(&mut name));
                    start = false;
                }
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => start = true,
                    _ => {}
                }
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            found.push(name);
        }
    }
    found
}

fn walk(dir: &Path, files: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            walk(&path, files);
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
}

#[test]
fn no_import_runs_back_up_the_flow() {
    let layer: BTreeMap<&str, u8> = LAYERS.iter().copied().collect();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    walk(&src, &mut files);
    let mut wrong = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for file in &files {
        let rel = file.strip_prefix(&src).unwrap();
        let top = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy();
        let top = top.trim_end_matches(".rs").to_string();
        if matches!(top.as_str(), "lib" | "main" | "layers") || rel.ends_with("tests.rs") {
            continue;
        }
        let Some(&own) = layer.get(top.as_str()) else {
            wrong.push(format!("{}: module `{top}` has no layer", rel.display()));
            continue;
        };
        seen.insert(top.clone());
        let text = std::fs::read_to_string(file).unwrap();
        for name in imports(&code(&text)) {
            if name == top {
                continue;
            }
            match layer.get(name.as_str()) {
                Some(&l) if l < own => {}
                Some(_) => wrong.push(format!("{}: `{top}` imports `{name}`", rel.display())),
                None => wrong.push(format!("{}: `crate::{name}` has no layer", rel.display())),
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports against the flow:\n{}",
        wrong.join("\n")
    );
    // Every layer names a module that exists, so the table stays the tree's.
    for (name, _) in LAYERS {
        assert!(
            seen.contains(*name),
            "`{name}` is in LAYERS but not in src/"
        );
    }
}

#[test]
fn imports_are_read_from_paths_and_groups() {
    let code = code(
        "use crate::a::b;\nuse crate::{c, d::{e, f}, g};\n// crate::h\nlet x = crate::i::j();\n#[cfg(test)]\nuse crate::k;\n",
    );
    assert_eq!(imports(&code), ["a", "c", "d", "g", "i"]);
}
