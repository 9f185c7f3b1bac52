//! Cases from GitHub's documentation ("Evaluate expressions in workflows and actions", cited
//! by section as [expr: Section]; "Contexts reference" as [ctx: Section]; "Workflow syntax" as
//! [syntax: key]) and edge cases from the runner's behaviour.

mod language;
mod templates;

use std::cell::RefCell;

use super::*;

pub(super) fn s(text: &str) -> Value {
    Value::from(text)
}

pub(super) fn n(x: f64) -> Value {
    Value::from(x)
}

pub(super) fn b(x: bool) -> Value {
    Value::from(x)
}

pub(super) fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("test JSON {text:?}: {e}"))
}

/// The contexts the cases read: a push to main with an issue payload, a matrix, a step, a need.
pub(super) fn contexts() -> Contexts {
    let mut env = Object::case_sensitive();
    env.insert("HOME", s("/root"));
    env.insert("continue", s("true"));
    env.insert("time", s("3"));
    let mut c = Contexts::new();
    c.insert(
        "github",
        json(
            r#"{
                "ref": "refs/heads/main",
                "event_name": "push",
                "repository": "octo-org/octo-repo-prod",
                "event": {
                    "action": "opened",
                    "issue": { "labels": [ { "name": "bug" }, { "name": "help wanted" } ] }
                }
            }"#,
        ),
    )
    .insert("env", Value::from(env))
    .insert("matrix", json(r#"{ "python": 3.10, "os": "ubuntu-latest" }"#))
    .insert(
        "steps",
        json(r#"{ "demo": { "conclusion": "failure", "outputs": { "count": "10" } } }"#),
    )
    .insert(
        "needs",
        json(r#"{ "build": { "result": "success", "outputs": { "matrix": "{\"v\": [1, 2]}" } } }"#),
    )
    .insert("runner", json(r#"{ "os": "Linux" }"#))
    .insert("job", json(r#"{ "status": "success" }"#))
    .insert(
        "vars",
        json(
            r#"{
                "fruits": [
                    { "name": "apple", "quantity": 1 },
                    { "name": "orange", "quantity": 2 },
                    { "name": "pear", "quantity": 1 }
                ],
                "vegetables": {
                    "scallions": { "colors": ["green", "white"], "ediblePortions": ["roots", "stalks"] },
                    "beets": { "colors": ["purple", "red"], "ediblePortions": ["roots", "leaves"] }
                }
            }"#,
        ),
    );
    c
}

/// A job whose status the test sets, recording the patterns `hashFiles` is asked for.
#[derive(Default)]
pub(super) struct TestHost {
    failed: bool,
    cancelled: bool,
    hashed: RefCell<Vec<Vec<String>>>,
}

impl Host for TestHost {
    fn status(&self, status: Status, _args: &[Value]) -> Result<bool, String> {
        Ok(match status {
            Status::Success => !self.failed && !self.cancelled,
            Status::Failure => self.failed,
            Status::Cancelled => self.cancelled,
            Status::Always => true,
        })
    }

    fn hash_files(&self, patterns: &[String]) -> Result<String, String> {
        self.hashed.borrow_mut().push(patterns.to_vec());
        if patterns.iter().any(|p| p.contains("unreadable")) {
            return Err("permission denied".to_string());
        }
        Ok(format!("hash-of-{}", patterns.join("+")))
    }
}

pub(super) fn eval_with(text: &str, host: &TestHost) -> Result<Value, ExprError> {
    Expr::parse(text, &Scope::ALL)?.evaluate(&contexts(), host)
}

pub(super) fn eval(text: &str) -> Value {
    eval_with(text, &TestHost::default()).unwrap_or_else(|e| panic!("{text:?}: {e}"))
}

pub(super) fn error(text: &str, scope: &Scope) -> ExprError {
    match Expr::parse(text, scope) {
        Err(e) => e,
        Ok(expr) => match expr.evaluate(&contexts(), &TestHost::default()) {
            Err(e) => e,
            Ok(v) => panic!("{text:?} should fail, gave {v:?}"),
        },
    }
}

/// Structural equality, except that NaN matches NaN.
pub(super) fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x == y || (x.is_nan() && y.is_nan()),
        _ => a == b,
    }
}

pub(super) fn check_table(cases: &[(&str, Value)]) {
    let mut failures = Vec::new();
    for (text, want) in cases {
        match eval_with(text, &TestHost::default()) {
            Ok(got) if same(&got, want) => {}
            Ok(got) => failures.push(format!("{text}: got {got:?}, want {want:?}")),
            Err(e) => failures.push(format!("{text}: error {e}, want {want:?}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
