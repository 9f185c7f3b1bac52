//! The GitHub corpus (fixtures/github/corpus/): every case's workflows planned for each of its
//! events must give the jobs written from GitHub's documentation beside it (see
//! fixtures/github/corpus/README.md). Each event gets a fresh git repository made the way the
//! expectation says (branch, tag, base, changed files), so path filters see a real diff.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};

/// The fields of `berth plan --output json` the corpus pins, in the compact form the
/// expectations are written in.
const FIELDS: &[&str] = &["workflow", "job", "name", "needs", "matrix", "if"];

#[test]
fn berth_plans_every_github_corpus_case_as_github_would() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/github/corpus");
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&corpus)
        .expect("the corpus is there")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    cases.sort();
    let mut runs: Vec<(&Path, PathBuf)> = Vec::new();
    for case in &cases {
        let mut expects: Vec<PathBuf> = std::fs::read_dir(case.join("expect"))
            .unwrap_or_else(|e| panic!("{}/expect: {e}", case.display()))
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        expects.sort();
        assert!(!expects.is_empty(), "{} has no expectation", case.display());
        runs.extend(expects.into_iter().map(|e| (case.as_path(), e)));
    }
    assert!(cases.len() >= 15, "the corpus has {} cases", cases.len());
    // Each run is a few git and berth processes: several at a time.
    let next = std::sync::atomic::AtomicUsize::new(0);
    let failures = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some((case, expect)) = runs.get(i) else {
                    break;
                };
                if let Err(why) = check(case, expect) {
                    failures.lock().unwrap().push(format!(
                        "{}/{}: {why}",
                        case.file_name().unwrap_or_default().to_string_lossy(),
                        expect.file_name().unwrap_or_default().to_string_lossy()
                    ));
                }
            });
        }
    });
    let mut failures = failures.into_inner().unwrap();
    failures.sort();
    let runs = runs.len();
    assert!(
        failures.is_empty(),
        "{} of {runs} corpus runs differ from GitHub's documented behaviour:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

/// One expectation: build its repository, plan, compare jobs and trigger decisions.
fn check(case: &Path, expect_path: &Path) -> Result<(), String> {
    let text = std::fs::read_to_string(expect_path).map_err(|e| e.to_string())?;
    let expect: Value = serde_json::from_str(&text).map_err(|e| format!("bad JSON: {e}"))?;
    let s = |k: &str| expect.get(k).and_then(Value::as_str);
    let list = |k: &str| -> Vec<String> {
        expect
            .get(k)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default()
    };
    let event = s("event").unwrap_or("push");
    let default_branch = s("default_branch").unwrap_or("main");
    let branch = s("branch").unwrap_or(default_branch);
    let repo = tempfile::Builder::new()
        .prefix("berth-gh-corpus-")
        .tempdir()
        .map_err(|e| e.to_string())?;
    let dir = repo.path();
    copy_case(case, dir)?;
    build_repo(
        dir,
        default_branch,
        branch,
        &list("base_changed"),
        &list("changed"),
        s("tag"),
    )?;

    let mut args: Vec<String> = vec!["--event".into(), event.into()];
    match s("tag") {
        Some(tag) => args.extend(["--tag".into(), tag.into()]),
        None => args.extend(["--branch".into(), branch.into()]),
    }
    if let Some(base) = s("base") {
        args.extend(["--base".into(), base.into()]);
    }
    let berth = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_berth"))
            .arg("-C")
            .arg(dir)
            .arg("plan")
            .args(extra)
            .args(&args)
            .env("NO_COLOR", "1")
            .output()
            .map_err(|e| e.to_string())
    };

    let out = berth(&["--output", "json"])?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let want_error = s("expect") == Some("error");
    if want_error {
        return match out.status.code() {
            Some(2) => Ok(()),
            code => Err(format!(
                "expected exit 2 (bad input), got {code:?}\n{stderr}"
            )),
        };
    }
    if !out.status.success() {
        return Err(format!("berth exit {:?}\n{stderr}", out.status.code()));
    }
    let planned: Vec<Value> = if stdout.trim().is_empty() {
        Vec::new()
    } else {
        serde_json::from_str(&stdout).map_err(|e| format!("not JSON: {e}\n{stdout}"))?
    };
    let got: Vec<Value> = planned.iter().map(compact).collect();
    let mut problems = Vec::new();
    // Without `jobs`, only the decisions under `workflows` are pinned.
    if let Some(want) = expect.get("jobs").and_then(Value::as_array) {
        if &got != want {
            problems.push(format!(
                "jobs differ\n  expected: {}\n  berth:    {}",
                lines(want),
                lines(&got)
            ));
        }
    }

    // Which workflows trigger, and why, from the text plan (stdout when some run, stderr
    // when none does).
    if let Some(decisions) = expect.get("workflows").and_then(Value::as_object) {
        let text = berth(&[])?;
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&text.stdout),
            String::from_utf8_lossy(&text.stderr)
        );
        for (file, want) in decisions {
            let want = want.as_str().unwrap_or_default();
            let note = said
                .lines()
                .map(str::trim_start)
                .find_map(|l| l.strip_prefix(&format!("{file} ")));
            match note {
                Some(n) if n.starts_with(want) => {}
                Some(n) => problems.push(format!("{file}: expected `{want}...`, berth says `{n}`")),
                None => problems.push(format!("{file}: no decision in\n{said}")),
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}

/// A planned job reduced to the fields the corpus pins.
fn compact(job: &Value) -> Value {
    let mut out = serde_json::Map::new();
    for f in FIELDS {
        if let Some(v) = job.get(*f) {
            out.insert(f.to_string(), v.clone());
        }
    }
    json!(out)
}

fn lines(jobs: &[Value]) -> String {
    let items: Vec<String> = jobs.iter().map(Value::to_string).collect();
    format!("[\n    {}\n  ]", items.join(",\n    "))
}

/// The case's files, without its expectations.
fn copy_case(from: &Path, to: &Path) -> Result<(), String> {
    for entry in std::fs::read_dir(from)
        .map_err(|e| e.to_string())?
        .flatten()
    {
        let name = entry.file_name();
        if from.join("expect") == entry.path() || name == "NOTES.md" {
            continue;
        }
        let target = to.join(&name);
        if entry.path().is_dir() {
            std::fs::create_dir_all(&target).map_err(|e| e.to_string())?;
            copy_case(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target).map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}

/// A repository whose last commit (on `branch`, tagged `tag`) changes exactly `changed`
/// against its parent; the default branch holds the case's files, then `base_changed` in a
/// commit made after `branch` left it (a pull request's diff must not see those).
fn build_repo(
    dir: &Path,
    default_branch: &str,
    branch: &str,
    base_changed: &[String],
    changed: &[String],
    tag: Option<&str>,
) -> Result<(), String> {
    let git = |args: &[&str]| -> Result<(), String> {
        let out = Command::new("git")
            .args(args)
            .current_dir(dir)
            .env("GIT_AUTHOR_NAME", "corpus")
            .env("GIT_AUTHOR_EMAIL", "corpus@example.com")
            .env("GIT_COMMITTER_NAME", "corpus")
            .env("GIT_COMMITTER_EMAIL", "corpus@example.com")
            .output()
            .map_err(|e| format!("git: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "git {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    };
    let write = |path: &str, text: &str| -> Result<(), String> {
        let p = dir.join(path);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
        }
        std::fs::write(&p, text).map_err(|e| e.to_string())
    };
    git(&["init", "-q", "-b", default_branch])?;
    git(&["add", "-A"])?;
    git(&["commit", "-q", "--allow-empty", "-m", "base"])?;
    if branch != default_branch {
        git(&["checkout", "-q", "-b", branch])?;
    }
    for f in changed {
        write(f, &format!("changed by the event: {f}\n"))?;
    }
    git(&["add", "-A"])?;
    git(&["commit", "-q", "--allow-empty", "-m", "change"])?;
    if let Some(tag) = tag {
        git(&["tag", tag])?;
    }
    if !base_changed.is_empty() {
        git(&["checkout", "-q", default_branch])?;
        for f in base_changed {
            write(f, &format!("changed on the base: {f}\n"))?;
        }
        git(&["add", "-A"])?;
        git(&["commit", "-q", "-m", "base moves on"])?;
        git(&["checkout", "-q", branch])?;
    }
    Ok(())
}
