//! Whether a job (or an include, or the pipeline itself) is created: `rules` with `if`,
//! `changes` and `exists`, and the older `only` / `except`, decided the way GitLab decides
//! them for the context the pipeline runs in.

use std::time::Duration;

use globset::{GlobBuilder, GlobMatcher};

use crate::source::diag::Diagnostic;
use crate::source::yaml::{Node, Span};

use super::expr::{self, Expr};
use super::scope::Scope;
use super::{AllowFailure, Need, Variable, When};

/// One entry of `rules`.
#[derive(Debug, Clone)]
pub struct Rule {
    pub span: Span,
    pub condition: Condition,
    pub when: Option<When>,
    pub start_in: Option<Duration>,
    pub allow_failure: Option<AllowFailure>,
    pub variables: Vec<Variable>,
    pub needs: Option<Vec<Need>>,
}

/// The clauses of a rule; all that are present must hold.
#[derive(Debug, Clone, Default)]
pub struct Condition {
    pub if_: Option<(String, Expr)>,
    pub changes: Option<Changes>,
    pub exists: Option<Vec<String>>,
}

#[derive(Debug, Clone)]
pub struct Changes {
    pub paths: Vec<String>,
    pub compare_to: Option<String>,
}

impl Condition {
    /// Read `if`, `changes` and `exists` from a rule; other keys are the caller's.
    pub fn read(rule: &Node) -> Result<Condition, Diagnostic> {
        let mut c = Condition::default();
        if let Some(n) = rule.get("if") {
            let text = n
                .as_text()
                .ok_or_else(|| Diagnostic::expected("`rules: if`", "an expression", n))?;
            let parsed = expr::parse(text).map_err(|e| expr_error(text, &e, n.span))?;
            c.if_ = Some((text.to_string(), parsed));
        }
        if let Some(n) = rule.get("changes") {
            c.changes = Some(if n.as_map().is_some() {
                Changes {
                    paths: texts(n.get("paths"), "rules: changes: paths")?,
                    compare_to: n
                        .get("compare_to")
                        .and_then(|v| v.as_text())
                        .map(String::from),
                }
            } else {
                Changes {
                    paths: texts(Some(n), "rules: changes")?,
                    compare_to: None,
                }
            });
        }
        if let Some(n) = rule.get("exists") {
            c.exists = Some(if n.as_map().is_some() {
                texts(n.get("paths"), "rules: exists: paths")?
            } else {
                texts(Some(n), "rules: exists")?
            });
        }
        Ok(c)
    }

    /// Does the condition hold? `vars` are the variables the job can see.
    pub fn holds(
        &self,
        vars: &dyn Fn(&str) -> Option<String>,
        ctx: &Scope,
    ) -> Result<bool, String> {
        if let Some((_, e)) = &self.if_ {
            if !e.eval(vars) {
                return Ok(false);
            }
        }
        if let Some(ch) = &self.changes {
            if !changes_match(ch, vars, ctx)? {
                return Ok(false);
            }
        }
        if let Some(globs) = &self.exists {
            if !exists(globs, vars, ctx)? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// A short text of the condition, for `berth plan` ("if: $CI_COMMIT_TAG").
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some((text, _)) = &self.if_ {
            parts.push(format!("if: {text}"));
        }
        if let Some(c) = &self.changes {
            parts.push(format!("changes: {}", c.paths.join(", ")));
        }
        if let Some(e) = &self.exists {
            parts.push(format!("exists: {}", e.join(", ")));
        }
        if parts.is_empty() {
            "a rule without conditions".into()
        } else {
            parts.join(", ")
        }
    }
}

fn expr_error(text: &str, e: &expr::ExprError, span: Span) -> Diagnostic {
    Diagnostic::error(
        format!("invalid expression `{text}`: {}", e.message),
        Some(span),
    )
}

fn texts(node: Option<&Node>, key: &str) -> Result<Vec<String>, Diagnostic> {
    let Some(node) = node else {
        return Ok(Vec::new());
    };
    if let Some(t) = node.as_text() {
        return Ok(vec![t.to_string()]);
    }
    let items = node
        .as_seq()
        .ok_or_else(|| Diagnostic::expected(&format!("`{key}`"), "a list of paths", node))?;
    items
        .iter()
        .map(|i| {
            i.as_text()
                .map(String::from)
                .ok_or_else(|| Diagnostic::expected(&format!("`{key}`"), "a list of paths", i))
        })
        .collect()
}

/// Ruby's `File.fnmatch?` with PATHNAME | DOTMATCH | EXTGLOB, as GitLab matches `changes` and
/// `exists`: `*` stays inside a directory, `**/` crosses them, `{a,b}` alternates.
fn glob(pattern: &str) -> Result<GlobMatcher, String> {
    GlobBuilder::new(pattern.trim_start_matches('/'))
        .literal_separator(true)
        .backslash_escape(true)
        .build()
        .map(|g| g.compile_matcher())
        .map_err(|e| format!("invalid path pattern `{pattern}`: {e}"))
}

fn expand_all(paths: &[String], vars: &dyn Fn(&str) -> Option<String>) -> Vec<String> {
    paths
        .iter()
        .map(|p| crate::pipeline::expand::expand(p, vars, 0))
        .collect()
}

fn changes_match(
    ch: &Changes,
    vars: &dyn Fn(&str) -> Option<String>,
    ctx: &Scope,
) -> Result<bool, String> {
    let Some(source) = &ctx.changes else {
        return Ok(true);
    };
    let compare_to = ch
        .compare_to
        .as_ref()
        .map(|c| crate::pipeline::expand::expand(c, vars, 0));
    let Some(files) = source.changed(compare_to.as_deref())? else {
        return Ok(true);
    };
    let globs = expand_all(&ch.paths, vars)
        .iter()
        .map(|p| glob(p))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(files.iter().any(|f| globs.iter().any(|g| g.is_match(f))))
}

fn exists(
    paths: &[String],
    vars: &dyn Fn(&str) -> Option<String>,
    ctx: &Scope,
) -> Result<bool, String> {
    let globs = expand_all(paths, vars)
        .iter()
        .map(|p| glob(p))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ctx
        .project_files()
        .iter()
        .any(|rel| globs.iter().any(|g| g.is_match(rel))))
}

/// `include: rules`: the include happens when the first matching rule is not `when: never`.
pub fn include_allowed(
    rules: &Node,
    vars: &[(String, String)],
    ctx: &Scope,
) -> Result<bool, Diagnostic> {
    let Some(items) = rules.as_seq() else {
        return Err(Diagnostic::expected("`include: rules`", "a list", rules));
    };
    let lookup = |n: &str| {
        vars.iter()
            .rev()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.clone())
    };
    for item in items {
        let cond = Condition::read(item)?;
        let holds = cond
            .holds(&lookup, ctx)
            .map_err(|e| Diagnostic::error(e, Some(item.span)))?;
        if holds {
            return Ok(item.get("when").and_then(|w| w.as_text()) != Some("never"));
        }
    }
    Ok(false)
}

/// What the rules decided for a job.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// The job is created; the matching rule (its index and text) adjusts it.
    Created { rule: Option<(usize, String)> },
    /// Not created, and why.
    Left { reason: String },
}

/// Evaluate `rules` in order: the first whose condition holds decides.
pub fn first_match(
    rules: &[Rule],
    vars: &dyn Fn(&str) -> Option<String>,
    ctx: &Scope,
) -> Result<Option<usize>, (Span, String)> {
    for (i, rule) in rules.iter().enumerate() {
        if rule
            .condition
            .holds(vars, ctx)
            .map_err(|e| (rule.span, e))?
        {
            return Ok(Some(i));
        }
    }
    Ok(None)
}

/// `only` / `except`: refs (keywords, names, `/regex/`), `variables`, `changes`.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    pub refs: Option<Vec<String>>,
    pub variables: Option<Vec<(String, Expr)>>,
    pub changes: Option<Changes>,
}

impl Policy {
    pub fn read(node: &Node, key: &str) -> Result<Policy, Diagnostic> {
        let mut p = Policy::default();
        if node.as_seq().is_some() || node.as_text().is_some() {
            p.refs = Some(texts(Some(node), key)?);
            return Ok(p);
        }
        let Some(entries) = node.as_map() else {
            return Err(Diagnostic::expected(
                &format!("`{key}`"),
                "a list of refs or a mapping",
                node,
            ));
        };
        for e in entries {
            match e.key.as_str() {
                "refs" => p.refs = Some(texts(Some(&e.value), &format!("{key}: refs"))?),
                "variables" => {
                    let list = texts(Some(&e.value), &format!("{key}: variables"))?;
                    let mut out = Vec::new();
                    for text in list {
                        let parsed = expr::parse(&text)
                            .map_err(|err| expr_error(&text, &err, e.value.span))?;
                        out.push((text, parsed));
                    }
                    p.variables = Some(out);
                }
                "changes" => {
                    p.changes = Some(if e.value.as_map().is_some() {
                        Changes {
                            paths: texts(e.value.get("paths"), &format!("{key}: changes: paths"))?,
                            compare_to: e
                                .value
                                .get("compare_to")
                                .and_then(|v| v.as_text())
                                .map(String::from),
                        }
                    } else {
                        Changes {
                            paths: texts(Some(&e.value), &format!("{key}: changes"))?,
                            compare_to: None,
                        }
                    })
                }
                "kubernetes" => {}
                other => {
                    return Err(Diagnostic::error(
                        format!("`{key}` has an unknown key `{other}`"),
                        Some(e.key_span),
                    ))
                }
            }
        }
        Ok(p)
    }

    /// Each present part, and whether it is satisfied (GitLab: `only` needs all, `except` any).
    pub fn parts(
        &self,
        vars: &dyn Fn(&str) -> Option<String>,
        ctx: &Scope,
    ) -> Result<Vec<bool>, String> {
        let mut out = Vec::new();
        if let Some(refs) = &self.refs {
            out.push(refs.iter().any(|r| ref_matches(r, vars)));
        }
        if let Some(list) = &self.variables {
            out.push(list.iter().any(|(_, e)| e.eval(vars)));
        }
        if let Some(ch) = &self.changes {
            out.push(changes_match(ch, vars, ctx)?);
        }
        Ok(out)
    }
}

/// One `only`/`except` ref: a keyword, a `/regex/`, or a ref name, each optionally
/// `@group/project`: then it holds only in that project (`CI_PROJECT_PATH`). As GitLab, the
/// project part goes at the first `@` before anything else is compared.
fn ref_matches(pattern: &str, vars: &dyn Fn(&str) -> Option<String>) -> bool {
    let (pattern, project) = match pattern.split_once('@') {
        Some((pattern, project)) => (pattern, Some(project)),
        None => (pattern, None),
    };
    if project.is_some_and(|p| vars("CI_PROJECT_PATH").as_deref() != Some(p)) {
        return false;
    }
    let source = vars("CI_PIPELINE_SOURCE").unwrap_or_default();
    let is_tag = vars("CI_COMMIT_TAG").is_some_and(|t| !t.is_empty());
    let is_branch = vars("CI_COMMIT_BRANCH").is_some_and(|b| !b.is_empty());
    match pattern {
        "branches" => return is_branch,
        "tags" => return is_tag,
        "merge_requests" => return source == "merge_request_event",
        "external_pull_requests" => return source == "external_pull_request_event",
        "pushes" => return source == "push",
        "schedules" => return source == "schedule",
        "triggers" => return source == "trigger",
        "web" => return source == "web",
        "api" => return source == "api",
        "pipelines" => return source == "pipeline" || source == "parent_pipeline",
        "external" => return source == "external",
        "chat" => return source == "chat",
        _ => {}
    }
    // Names and regexes match only a branch or a tag (not a merge request's pipeline).
    if !is_branch && !is_tag {
        return false;
    }
    let ref_name = vars("CI_COMMIT_REF_NAME").unwrap_or_default();
    if let Some(re) = expr::regex_literal(pattern) {
        return re.is_ok_and(|r| r.is_match(&ref_name));
    }
    pattern == ref_name
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(list: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |n| {
            list.iter()
                .find(|(k, _)| *k == n)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn refs_keywords_names_and_regexes() {
        let branch = vars(&[
            ("CI_PIPELINE_SOURCE", "push"),
            ("CI_COMMIT_BRANCH", "feature/x"),
            ("CI_COMMIT_REF_NAME", "feature/x"),
        ]);
        assert!(ref_matches("branches", &branch));
        assert!(!ref_matches("tags", &branch));
        assert!(ref_matches("pushes", &branch));
        assert!(ref_matches("/^feature\\//", &branch));
        assert!(!ref_matches("main", &branch));
        // `@project`: only in that project, and a keyword too.
        assert!(!ref_matches("feature/x@group/project", &branch));
        let in_project = vars(&[
            ("CI_PIPELINE_SOURCE", "push"),
            ("CI_COMMIT_BRANCH", "main"),
            ("CI_COMMIT_REF_NAME", "main"),
            ("CI_PROJECT_PATH", "group/proj"),
        ]);
        assert!(ref_matches("branches@group/proj", &in_project));
        assert!(ref_matches("main@group/proj", &in_project));
        assert!(!ref_matches("main@other/proj", &in_project));
        assert!(!ref_matches("branches@other/proj", &in_project));
        // A merge request's pipeline has no branch: names do not match it.
        let mr = vars(&[
            ("CI_PIPELINE_SOURCE", "merge_request_event"),
            ("CI_COMMIT_REF_NAME", "feature/x"),
        ]);
        assert!(!ref_matches("feature/x", &mr));
        assert!(ref_matches("merge_requests", &mr));
        let tag = vars(&[
            ("CI_PIPELINE_SOURCE", "push"),
            ("CI_COMMIT_TAG", "v1.0"),
            ("CI_COMMIT_REF_NAME", "v1.0"),
        ]);
        assert!(ref_matches("tags", &tag));
        assert!(!ref_matches("branches", &tag));
    }

    #[test]
    fn globs_as_fnmatch() {
        let g = glob("src/*.py").unwrap();
        assert!(g.is_match("src/a.py"));
        assert!(!g.is_match("src/x/a.py"));
        let g = glob("src/**/*.py").unwrap();
        assert!(g.is_match("src/x/y/a.py"));
        let g = glob("/docs/{a,b}.md").unwrap();
        assert!(g.is_match("docs/b.md"));
    }
}
