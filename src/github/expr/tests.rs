//! Cases from GitHub's documentation ("Evaluate expressions in workflows and actions", cited
//! by section as [expr: Section]; "Contexts reference" as [ctx: Section]; "Workflow syntax" as
//! [syntax: key]) and edge cases from the runner's behaviour.

use std::cell::RefCell;

use super::*;

fn s(text: &str) -> Value {
    Value::from(text)
}

fn n(x: f64) -> Value {
    Value::from(x)
}

fn b(x: bool) -> Value {
    Value::from(x)
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("test JSON {text:?}: {e}"))
}

/// The contexts the cases read: a push to main with an issue payload, a matrix, a step, a need.
fn contexts() -> Contexts {
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
struct TestHost {
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

fn eval_with(text: &str, host: &TestHost) -> Result<Value, ExprError> {
    Expr::parse(text, &Scope::ALL)?.evaluate(&contexts(), host)
}

fn eval(text: &str) -> Value {
    eval_with(text, &TestHost::default()).unwrap_or_else(|e| panic!("{text:?}: {e}"))
}

fn error(text: &str, scope: &Scope) -> ExprError {
    match Expr::parse(text, scope) {
        Err(e) => e,
        Ok(expr) => match expr.evaluate(&contexts(), &TestHost::default()) {
            Err(e) => e,
            Ok(v) => panic!("{text:?} should fail, gave {v:?}"),
        },
    }
}

/// Structural equality, except that NaN matches NaN.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x == y || (x.is_nan() && y.is_nan()),
        _ => a == b,
    }
}

fn check_table(cases: &[(&str, Value)]) {
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

#[test]
fn literals() {
    // [expr: Literals] "Example of literals"
    check_table(&[
        ("null", Value::Null),
        ("false", b(false)),
        ("true", b(true)),
        ("711", n(711.0)),
        ("-9.2", n(-9.2)),
        ("0xff", n(255.0)),
        ("-2.99e-2", n(-0.0299)),
        ("'It''s open source!'", s("It's open source!")),
        ("'Mona the Octocat'", s("Mona the Octocat")),
        // Beyond the docs: the runner's number forms.
        (".5", n(0.5)),
        ("+3", n(3.0)),
        ("1E3", n(1000.0)),
        ("0o17", n(15.0)),
        ("NaN", n(f64::NAN)),
        ("Infinity", n(f64::INFINITY)),
        ("-Infinity", n(f64::NEG_INFINITY)),
        ("''", s("")),
    ]);
}

#[test]
fn operators_and_precedence() {
    // [expr: Operators] the ternary-like example, on main and elsewhere.
    let ternary =
        "github.ref == 'refs/heads/main' && 'value_for_main_branch' || 'value_for_other_branches'";
    check_table(&[
        (ternary, s("value_for_main_branch")),
        (
            "github.ref == 'refs/heads/dev' && 'value_for_main_branch' || 'value_for_other_branches'",
            s("value_for_other_branches"),
        ),
        // `!` binds tighter than `==`, `==` tighter than `&&`, `&&` tighter than `||`.
        ("!true == false", b(true)),
        ("true || false && false", b(true)),
        ("false && false || true", b(true)),
        ("1 == 1 && 2", n(2.0)),
        ("!(1 == 1)", b(false)),
        ("!!'x'", b(true)),
        ("!github.event.missing", b(true)),
        // Comparisons are left-associative: (3 > 2) > 1 is true > 1, 1 > 1.
        ("3 > 2 > 1", b(false)),
        ("1 < 2 == true", b(true)),
        // `&&` and `||` give the deciding operand itself.
        ("'a' && 'b'", s("b")),
        ("'' && 'b'", s("")),
        ("0 || null", Value::Null),
        ("null || 'fallback'", s("fallback")),
        ("matrix.python || 'none'", n(3.1)),
    ]);
}

#[test]
fn loose_equality_and_the_coercion_table() {
    // [expr: Operators] "GitHub performs loose equality comparisons" and its table: null 0,
    // true 1 / false 0, strings parsed as JSON numbers (empty 0, else NaN), arrays and objects NaN.
    check_table(&[
        ("null == 0", b(true)),
        ("true == 1", b(true)),
        ("false == 0", b(true)),
        ("'' == 0", b(true)),
        ("'1' == 1", b(true)),
        ("' 1.50 ' == 1.5", b(true)),
        ("'0x10' == 16", b(true)),
        ("'1e2' == 100", b(true)),
        ("'abc' == 0", b(false)),
        ("'true' == true", b(false)),
        ("fromJSON('[]') == 0", b(false)),
        ("fromJSON('{}') == 0", b(false)),
        // Booleans and null become numbers first, even against each other.
        ("null == false", b(true)),
        ("null == ''", b(true)),
        ("true == '1'", b(true)),
        ("null == null", b(true)),
        // "GitHub ignores case when comparing strings."
        ("'abc' == 'ABC'", b(true)),
        ("github.event_name == 'PUSH'", b(true)),
        ("'abc' != 'ABD'", b(true)),
        // "NaN is not equal to NaN"; objects and arrays equal only the same instance.
        ("NaN == NaN", b(false)),
        ("NaN != NaN", b(true)),
        ("'abc' == NaN", b(false)),
        ("fromJSON('[]') == fromJSON('[]')", b(false)),
        ("github.event == github.event", b(true)),
        (
            "github.event.issue.labels == github.event.issue.labels",
            b(true),
        ),
        // Strings never equal arrays.
        ("'Array' == fromJSON('[]')", b(false)),
    ]);
}

#[test]
fn ordering_comparisons() {
    check_table(&[
        ("1 < 2", b(true)),
        ("2 <= 2", b(true)),
        ("2 > '10'", b(false)),
        ("'2' > '10'", b(true)),
        ("'a' < 'B'", b(true)),
        ("'B' < 'a'", b(false)),
        ("'abc' <= 'ABC'", b(true)),
        ("true > false", b(true)),
        ("false < 1", b(true)),
        ("null < 1", b(true)),
        ("null > null", b(false)),
        ("null >= null", b(true)),
        ("NaN < 1", b(false)),
        ("NaN > 1", b(false)),
        ("NaN >= NaN", b(false)),
        ("'abc' < 1", b(false)),
        ("fromJSON('[]') < fromJSON('[1]')", b(false)),
        ("fromJSON('[]') <= fromJSON('[]')", b(false)),
        // [expr: Operators] a step output is a string: fromJSON makes it a number.
        ("fromJSON(steps.demo.outputs.count) > 9", b(true)),
        ("steps.demo.outputs.count > '9'", b(false)),
        ("steps.demo.outputs.count > 9", b(true)),
    ]);
}

#[test]
fn truthiness() {
    // [expr: Literals] "falsy values (false, 0, -0, "", '', null) are coerced to false"
    for (text, want) in [
        ("false", false),
        ("0", false),
        ("-0", false),
        ("''", false),
        ("null", false),
        ("NaN", false),
        ("'0'", true),
        ("'false'", true),
        ("fromJSON('[]')", true),
        ("fromJSON('{}')", true),
        ("0.1", true),
        ("-1", true),
    ] {
        assert_eq!(eval(text).is_truthy(), want, "{text}");
        assert_eq!(eval(&format!("!{text}")), b(!want), "!{text}");
    }
}

#[test]
fn property_access_and_object_filters() {
    check_table(&[
        // [ctx: About contexts] property dereference and index syntax.
        ("github.event_name", s("push")),
        ("github['event_name']", s("push")),
        ("github.EVENT_NAME", s("push")),
        ("GITHUB.ref", s("refs/heads/main")),
        ("github.event.issue.labels[0].name", s("bug")),
        ("github.event.issue.labels[1]['name']", s("help wanted")),
        ("steps.demo.outputs.count", s("10")),
        ("needs.build.result", s("success")),
        ("runner.os == 'Linux'", b(true)),
        ("matrix.python", n(3.1)),
        // Missing things are null, never errors.
        ("github.nothing", Value::Null),
        ("github.nothing.deeper.still", Value::Null),
        ("github.event_name.length", Value::Null),
        ("github.event.issue.labels[5]", Value::Null),
        ("github.event.issue.labels[-1]", Value::Null),
        ("secrets.TOKEN", Value::Null),
        // Array positions are numbers rounded down; object keys are strings.
        ("fromJSON('[10, 20]')[1.9]", n(20.0)),
        ("fromJSON('[10, 20]')['1']", n(20.0)),
        ("fromJSON('[10, 20]')[true]", n(20.0)),
        ("fromJSON('[10, 20]')['x']", Value::Null),
        ("fromJSON('{\"1\": \"one\"}')[1]", s("one")),
        ("fromJSON('{\"one\": 1}').ONE", n(1.0)),
        // env keys are case-sensitive; other contexts' keys are not.
        ("env.HOME", s("/root")),
        ("env.home", Value::Null),
        ("env['HOME']", s("/root")),
        // [expr: Object filters] the fruits example: an array of objects.
        (
            "vars.fruits.*.name",
            Value::array(vec![s("apple"), s("orange"), s("pear")]),
        ),
        (
            "vars.fruits[*].quantity",
            Value::array(vec![n(1.0), n(2.0), n(1.0)]),
        ),
        // Filters apply to an object's values too (the runner's `Index` on an object).
        (
            "vars.vegetables.*.ediblePortions",
            json(r#"[["roots", "stalks"], ["roots", "leaves"]]"#),
        ),
        (
            "vars.vegetables.*.ediblePortions.*",
            json(r#"["roots", "stalks", "roots", "leaves"]"#),
        ),
        // A filter on something that is not a collection is an empty array.
        ("github.event_name.*", Value::array(vec![])),
        (
            "toJSON(fromJSON('[[1, 2], [3]]').*.*)",
            s("[\n  1,\n  2,\n  3\n]"),
        ),
        // After a filter, an index applies to every element (strings have no [0]).
        ("vars.fruits.*.name[0]", Value::array(vec![])),
        (
            "fromJSON('[[1, 2], [3]]').*[0]",
            Value::array(vec![n(1.0), n(3.0)]),
        ),
        // A parenthesised filter still filters.
        (
            "(vars.fruits.*).name",
            json(r#"["apple", "orange", "pear"]"#),
        ),
        // Keywords are properties after a dot.
        ("fromJSON('{\"null\": 1}').null", n(1.0)),
    ]);
}

#[test]
fn contains_starts_with_ends_with() {
    check_table(&[
        // [expr: Functions, contains] examples.
        ("contains('Hello world', 'llo')", b(true)),
        ("contains(github.event.issue.labels.*.name, 'bug')", b(true)),
        (
            "contains(fromJSON('[\"push\", \"pull_request\"]'), github.event_name)",
            b(true),
        ),
        // Case-insensitive, loose equality for array elements.
        ("contains('Hello world', 'LLO')", b(true)),
        ("contains(fromJSON('[\"A\"]'), 'a')", b(true)),
        ("contains(fromJSON('[1, 2]'), '2')", b(true)),
        ("contains(fromJSON('[1, 2]'), 3)", b(false)),
        (
            "contains(github.event.issue.labels.*.name, 'feature')",
            b(false),
        ),
        // Objects contain nothing; primitives are their string forms.
        ("contains(github.event, 'issue')", b(false)),
        ("contains(3.10, '.1')", b(true)),
        ("contains(true, 'ru')", b(true)),
        ("contains(null, '')", b(true)),
        ("contains('abc', fromJSON('[]'))", b(false)),
        // [expr: Functions, startsWith / endsWith] examples, and case.
        ("startsWith('Hello world', 'He')", b(true)),
        ("startsWith('Hello world', 'HE')", b(true)),
        ("startsWith('Hello world', 'world')", b(false)),
        ("endsWith('Hello world', 'ld')", b(true)),
        ("endsWith('Hello world', 'LD')", b(true)),
        ("startsWith(github.ref, 'refs/tags/')", b(false)),
        ("startsWith(fromJSON('[\"a\"]'), 'a')", b(false)),
        ("endsWith(711, 11)", b(true)),
        // Function names ignore case.
        ("CONTAINS('abc', 'B')", b(true)),
    ]);
}

#[test]
fn format_and_join() {
    check_table(&[
        // [expr: Functions, format] examples.
        (
            "format('Hello {0} {1} {2}', 'Mona', 'the', 'Octocat')",
            s("Hello Mona the Octocat"),
        ),
        (
            "format('{{Hello {0} {1} {2}!}}', 'Mona', 'the', 'Octocat')",
            s("{Hello Mona the Octocat!}"),
        ),
        // Edge cases: escapes, repeats, conversions.
        ("format('{{0}}', 'a')", s("{0}")),
        ("format('}}{{')", s("}{")),
        ("format('{0}{0}{1}', 'a', 'b')", s("aab")),
        ("format('{1} {0}', 'a', 'b')", s("b a")),
        ("format('{0}|{1}|{2}', null, true, 3.10)", s("|true|3.1")),
        (
            "format('{0} {1}', fromJSON('[1]'), github)",
            s("Array Object"),
        ),
        ("format('plain')", s("plain")),
        ("format('{0}', 'unused', fromJSON('{'))", s("unused")),
        // [expr: Functions, join] example.
        (
            "join(github.event.issue.labels.*.name, ', ')",
            s("bug, help wanted"),
        ),
        ("join(fromJSON('[1, 2, 3]'))", s("1,2,3")),
        (
            "join(fromJSON('[null, true, \"x\", 2.50]'), '-')",
            s("-true-x-2.5"),
        ),
        ("join(fromJSON('[[1], {}]'))", s("Array,Object")),
        ("join('abc', '-')", s("abc")),
        ("join(3.10)", s("3.1")),
        ("join(fromJSON('[]'), '-')", s("")),
        ("join(github)", s("")),
        ("join(fromJSON('[1, 2]'), fromJSON('[]'))", s("1,2")),
        ("join(fromJSON('[1]'), fromJSON('{'))", s("1")),
    ]);
}

#[test]
fn format_errors_are_reported_at_the_call() {
    let cases: &[(&str, &str)] = &[
        (
            "format('{0')",
            "the following format string is invalid: {0 at column 1",
        ),
        (
            "format('a }')",
            "the following format string is invalid: a } at column 1",
        ),
        (
            "format('{}', 1)",
            "the following format string is invalid: {} at column 1",
        ),
        (
            "format('{x}', 1)",
            "the following format string is invalid: {x} at column 1",
        ),
        (
            "format('{256}', 1)",
            "the following format string is invalid: {256} at column 1",
        ),
        (
            "format('{1}', 'a')",
            "the following format string references more arguments than were supplied: {1} at column 1",
        ),
        (
            "format('{0:x}', 1)",
            "the format specifiers 'x' are not valid for objects of type 'Number' at column 1",
        ),
        (
            "'x' == format('{0}')",
            "the following format string references more arguments than were supplied: {0} at column 8",
        ),
    ];
    for (text, want) in cases {
        assert_eq!(error(text, &Scope::ALL).to_string(), *want, "{text}");
    }
}

#[test]
fn to_json_and_from_json() {
    check_table(&[
        // [expr: Functions, toJSON] pretty-printed, two-space indent.
        ("toJSON(runner)", s("{\n  \"os\": \"Linux\"\n}")),
        (
            "toJSON(fromJSON('{\"a\": [1, 2.50], \"b\": {}}'))",
            s("{\n  \"a\": [\n    1,\n    2.5\n  ],\n  \"b\": {}\n}"),
        ),
        ("toJSON('x\"y')", s("\"x\\\"y\"")),
        ("toJSON(null)", s("null")),
        ("toJSON(3.10)", s("3.1")),
        ("toJSON(fromJSON('[]'))", s("[]")),
        (
            "toJSON(matrix)",
            s("{\n  \"python\": 3.1,\n  \"os\": \"ubuntu-latest\"\n}"),
        ),
        // [expr: Functions, fromJSON] examples: a need's JSON output, env strings as values.
        ("fromJSON(needs.build.outputs.matrix).v[1]", n(2.0)),
        ("fromJSON(env.continue)", b(true)),
        ("fromJSON(env.time)", n(3.0)),
        // Numbers, arrays and strings.
        ("fromJSON('3.10')", n(3.1)),
        ("fromJSON('1e3')", n(1000.0)),
        ("fromJSON('-0')", n(-0.0)),
        (
            "fromJSON('12345678901234567890') == 12345678901234567890",
            b(true),
        ),
        ("fromJSON('[1, \"a\", null]')[1]", s("a")),
        ("fromJSON('\"text\"')", s("text")),
        ("fromJSON('null')", Value::Null),
        ("fromJSON(' [true] ')[0]", b(true)),
        // Keys keep the text's order (toJSON shows it), a duplicate replaces in place.
        (
            "toJSON(fromJSON('{\"z\": 1, \"a\": 2, \"Z\": 3}'))",
            s("{\n  \"z\": 3,\n  \"a\": 2\n}"),
        ),
    ]);
    let e = error("fromJSON('{')", &Scope::ALL);
    assert!(
        matches!(&e.kind, ErrorKind::FromJson(_)) && e.column == 1,
        "got {e}"
    );
    let e = error("1 == fromJSON('x')", &Scope::ALL);
    assert!(
        matches!(&e.kind, ErrorKind::FromJson(_)) && e.column == 6,
        "got {e}"
    );
}

#[test]
fn case_function() {
    check_table(&[
        ("case(1 == 1, 'equal', 'not equal')", s("equal")),
        ("case(false, 'a', false, 'b', 'c')", s("c")),
        (
            "case(github.event_name == 'pull_request', 'pr', github.ref == 'refs/heads/main', 'main', 'other')",
            s("main"),
        ),
        ("case(true, 1, fromJSON('{'))", n(1.0)),
        ("Case(false, 1, 2)", n(2.0)),
    ]);
    let e = error("case('yes', 1, 2)", &Scope::ALL);
    assert_eq!(
        e.to_string(),
        "case predicate must evaluate to a boolean value, not String at column 6"
    );
    let e = error("case(true, 1, false, 2)", &Scope::ALL);
    assert_eq!(e.kind, ErrorKind::EvenArguments);
    let e = error("case(true, 1)", &Scope::ALL);
    assert!(
        matches!(e.kind, ErrorKind::TooFewArguments { min: 3, .. }),
        "{e}"
    );
}

#[test]
fn short_circuits_avoid_errors() {
    check_table(&[
        ("true || fromJSON('{')", b(true)),
        ("false && fromJSON('{')", b(false)),
        ("false && format('{')", b(false)),
        ("'x' || hashFiles('unreadable')", s("x")),
        ("contains(fromJSON('[]'), fromJSON('{'))", b(false)),
        ("contains(github, fromJSON('{'))", b(false)),
        ("startsWith(github, fromJSON('{'))", b(false)),
        ("github.event_name[fromJSON('{')]", Value::Null),
        ("join(fromJSON('[1]'), fromJSON('{'))", s("1")),
    ]);
    let e = error("true && fromJSON('{')", &Scope::ALL);
    assert_eq!((e.offset, e.column), (8, 9));
}

#[test]
fn hash_files_and_status_functions_ask_the_host() {
    // [expr: Functions, hashFiles] examples.
    let host = TestHost::default();
    assert_eq!(
        eval_with("hashFiles('**/package-lock.json')", &host),
        Ok(s("hash-of-**/package-lock.json"))
    );
    assert_eq!(
        eval_with(
            "hashFiles('**/package-lock.json', '**/Gemfile.lock')",
            &host
        ),
        Ok(s("hash-of-**/package-lock.json+**/Gemfile.lock"))
    );
    assert_eq!(
        host.hashed.borrow().as_slice(),
        [
            vec!["**/package-lock.json".to_string()],
            vec![
                "**/package-lock.json".to_string(),
                "**/Gemfile.lock".to_string()
            ],
        ]
    );
    let e = eval_with("'k-' + hashFiles('unreadable')", &host).expect_err("'+' is no operator");
    assert_eq!(e.kind, ErrorKind::UnexpectedSymbol("+".into()));
    let e = eval_with("format('k-{0}', hashFiles('unreadable'))", &host)
        .expect_err("the host's failure is an error");
    assert_eq!(
        e.to_string(),
        "hashFiles failed: permission denied at column 17"
    );

    // [expr: Status check functions]
    let failed = TestHost {
        failed: true,
        ..TestHost::default()
    };
    for (text, ok, failing) in [
        ("success()", true, false),
        ("failure()", false, true),
        ("always()", true, true),
        ("cancelled()", false, false),
        ("ALWAYS()", true, true),
        (
            "failure() && steps.demo.conclusion == 'failure'",
            false,
            true,
        ),
    ] {
        assert_eq!(
            eval_with(text, &TestHost::default()),
            Ok(b(ok)),
            "{text} passing"
        );
        assert_eq!(eval_with(text, &failed), Ok(b(failing)), "{text} failing");
    }
}

#[test]
fn parse_errors_name_the_symbol_and_column() {
    let cases: &[(&str, &str)] = &[
        ("github.ref = 'x'", "unexpected symbol: '=' at column 12"),
        ("1 = 2", "unexpected symbol: '=' at column 3"),
        ("github.sha ==", "unexpected end of expression at column 14"),
        ("github.", "unexpected end of expression at column 8"),
        ("(1", "unexpected end of expression at column 3"),
        ("1)", "unexpected symbol: ')' at column 2"),
        ("1 2", "unexpected symbol: '2' at column 3"),
        ("a..b", "unrecognized named-value: 'a' (contexts are github, env, vars, secrets, matrix, strategy, needs, steps, job, jobs, runner, inputs) at column 1"),
        ("github..b", "unexpected symbol: '.' at column 8"),
        ("'abc'.length", "unexpected symbol: '.' at column 6"),
        ("'abc'[0]", "unexpected symbol: '[' at column 6"),
        ("[1]", "unexpected symbol: '[' at column 1"),
        ("github.0", "unexpected symbol: '0' at column 8"),
        ("github['a'", "unexpected end of expression at column 11"),
        ("github[]", "unexpected symbol: ']' at column 8"),
        ("github[* == 1]", "unexpected symbol: '==' at column 10"),
        ("x == \"a\"", "unexpected symbol: '\"a\"' at column 6"),
        ("'open", "unclosed string: a string ends with a single quote (a quote inside is written '') at column 1"),
        ("format('{0}', 1,)", "unexpected symbol: ')' at column 17"),
        ("(1, 2)", "unexpected symbol: ',' at column 3"),
        ("!", "unexpected end of expression at column 2"),
        ("1 <", "unexpected end of expression at column 4"),
        ("1 & 2", "unexpected symbol: '&' at column 3"),
        ("1.2.3 == 1", "unexpected symbol: '1.2.3' at column 1"),
        ("0x1g", "unexpected symbol: '0x1g' at column 1"),
        ("github.sha -1", "unexpected symbol: '-1' at column 12"),
        ("*", "unexpected symbol: '*' at column 1"),
        ("True", "unrecognized named-value: 'True' (contexts are github, env, vars, secrets, matrix, strategy, needs, steps, job, jobs, runner, inputs) at column 1"),
        ("nope(1)", "unrecognized function: 'nope' at column 1"),
        ("1 == toJSON()", "too few arguments for toJSON: it takes at least 1 at column 6"),
        ("contains('a')", "too few arguments for contains: it takes at least 2 at column 1"),
        ("startsWith('a', 'b', 'c')", "too many arguments for startsWith: it takes at most 2 at column 1"),
        ("join(1, 2, 3)", "too many arguments for join: it takes at most 2 at column 1"),
        ("hashFiles()", "too few arguments for hashFiles: it takes at least 1 at column 1"),
        ("success(1)", "too many arguments for success: it takes at most 0 at column 1"),
        ("", "expected an expression at column 1"),
    ];
    let mut failures = Vec::new();
    for (text, want) in cases {
        match Expr::parse(text, &Scope::ALL) {
            Ok(_) => failures.push(format!("{text:?} parsed")),
            Err(e) if e.to_string() != *want => failures.push(format!("{text:?}: {e}")),
            Err(_) => {}
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn scopes_limit_contexts_and_functions() {
    // [ctx: Context availability] a job's `if:` sees github, needs, vars, inputs only.
    let e = error("env.X == 'y'", &Scope::JOB_IF);
    assert_eq!(
        e.to_string(),
        "context 'env' is not available here (available: github, inputs, vars, needs) at column 1"
    );
    let e = error("always() && hashFiles('x')", &Scope::JOB_IF);
    assert_eq!(
        e.to_string(),
        "function 'hashFiles' is not available here at column 13"
    );
    let e = error("success()", &Scope::JOB);
    assert_eq!(e.kind, ErrorKind::FunctionNotAllowed("success".into()));
    // A step's `if:` may not read secrets ([syntax: jobs.<job_id>.steps[*].if]).
    let e = error("secrets.TOKEN != ''", &Scope::STEP_IF);
    assert!(matches!(e.kind, ErrorKind::ContextNotAllowed { .. }), "{e}");
    // Job-level success()/failure() take job names; step-level ones take nothing.
    assert!(Expr::parse("success('build') && failure('test')", &Scope::JOB_IF).is_ok());
    assert!(Expr::parse("success('build')", &Scope::STEP_IF).is_err());
    // Strategy may read needs (matrix from a need's output) but not matrix itself.
    assert!(Expr::parse("fromJSON(needs.build.outputs.matrix)", &Scope::STRATEGY).is_ok());
    assert!(Expr::parse("matrix.os", &Scope::STRATEGY).is_err());
    assert!(Expr::parse("matrix.os", &Scope::JOB).is_ok());
}

#[test]
fn limits_of_length_and_depth() {
    // Every `!` is a level and so is the literal: 49 of them and `true` make 50.
    let deep = format!("{}true", "!".repeat(MAX_DEPTH - 1));
    assert_eq!(eval(&deep), b(false));
    let too_deep = format!("{}true", "!".repeat(MAX_DEPTH));
    assert_eq!(
        error(&too_deep, &Scope::ALL).kind,
        ErrorKind::TooDeep(MAX_DEPTH)
    );
    // Parentheses add no depth to GitHub's tree.
    let parens = format!("{}1{}", "(".repeat(60), ")".repeat(60));
    assert_eq!(eval(&parens), n(1.0));
    // Nesting is bounded before recursion can exhaust a small (1 MiB) thread stack.
    let nested = std::thread::Builder::new()
        .stack_size(1 << 20)
        .spawn(|| {
            let ok = format!("{}1{}", "(".repeat(100), ")".repeat(100));
            let refused = format!("{}1{}", "(".repeat(101), ")".repeat(101));
            let hostile = ["toJSON(", "github[", "!", "(!"]
                .iter()
                .all(|open| Expr::parse(&format!("{}1", open.repeat(5000)), &Scope::ALL).is_err());
            (
                Expr::parse(&ok, &Scope::ALL).is_ok(),
                Expr::parse(&refused, &Scope::ALL).map_err(|e| e.kind).err(),
                hostile,
            )
        })
        .and_then(|t| {
            t.join()
                .map_err(|_| std::io::Error::other("parser thread panicked"))
        });
    assert_eq!(
        nested.ok(),
        Some((true, Some(ErrorKind::TooDeep(MAX_DEPTH)), true))
    );
    let long = format!("'{}'", "x".repeat(MAX_LENGTH));
    assert_eq!(
        error(&long, &Scope::ALL).kind,
        ErrorKind::TooLong(MAX_LENGTH)
    );
    // `&&` chains are flat, as the runner builds them: 200 operands are depth 2.
    let chain = vec!["true"; 200].join(" && ");
    assert_eq!(eval(&chain), b(true));
}

#[test]
fn templates_interpolate_every_expression() {
    let c = contexts();
    let host = TestHost::default();
    let text = |t: &str| interpolate(t, &Scope::ALL, &c, &host);
    // [syntax: jobs.<job_id>.name] names with matrix values; numbers as GitHub renders them.
    assert_eq!(
        text("test (${{ matrix.python }}, ${{ matrix.os }})"),
        Ok("test (3.1, ubuntu-latest)".to_string())
    );
    assert_eq!(text("no expressions"), Ok("no expressions".to_string()));
    assert_eq!(text(""), Ok(String::new()));
    assert_eq!(text("$ {{ not one }}"), Ok("$ {{ not one }}".to_string()));
    // A `}}` inside a string does not close the expression.
    assert_eq!(text("a ${{ '}}' }} b"), Ok("a }} b".to_string()));
    assert_eq!(text("${{ 'it''s' }}"), Ok("it's".to_string()));
    // The runner's escape for a literal `${{`.
    assert_eq!(text("${{ '${{ x }}' }}"), Ok("${{ x }}".to_string()));
    assert_eq!(text("[${{ null }}]"), Ok("[]".to_string()));
    assert_eq!(text("${{ null }}"), Ok(String::new()));
    assert_eq!(text("${{ true }}${{ 1.0 }}"), Ok("true1".to_string()));
    assert_eq!(text("x${{ fromJSON('[1]') }}"), Ok("xArray".to_string()));
    assert_eq!(text("${{ github.event }} "), Ok("Object ".to_string()));
    assert_eq!(text("${{github.event_name}}"), Ok("push".to_string()));
    // A lone array or object in a string field is an error.
    let e = text("${{ github.event }}").expect_err("an object is not a string");
    assert_eq!(
        e.to_string(),
        "expected a string, but the expression gives an Object at column 5"
    );
    // A lone expression keeps its value where any value is allowed (a matrix from JSON).
    let t = Template::parse("${{ fromJSON(needs.build.outputs.matrix) }}", &Scope::ALL)
        .expect("template parses");
    assert_eq!(t.evaluate(&c, &host), Ok(json(r#"{"v": [1, 2]}"#)));
    let t = Template::parse("${{ matrix.python }}", &Scope::ALL).expect("template parses");
    assert_eq!(t.evaluate(&c, &host), Ok(n(3.1)));
    assert!(!t.is_literal());
    let t = Template::parse("v${{ matrix.python }}", &Scope::ALL).expect("template parses");
    assert_eq!(t.evaluate(&c, &host), Ok(s("v3.1")));
    // Evaluation errors are placed in the whole string.
    let e = text("a ${{ fromJSON('{') }}").expect_err("bad JSON");
    assert_eq!((e.offset, e.column), (6, 7));
}

#[test]
fn finding_expressions() {
    assert_eq!(
        find_expressions("a ${{ x }} b ${{ '}}' }}"),
        Ok(vec![
            Span { open: 2, close: 10 },
            Span {
                open: 13,
                close: 24
            }
        ])
    );
    assert_eq!(
        find_expressions("${{ a }}}"),
        Ok(vec![Span { open: 0, close: 8 }])
    );
    let e = find_expressions("ok ${{ 'a }}").expect_err("the quote hides the braces");
    assert_eq!((e.kind, e.column), (ErrorKind::UnclosedExpression, 4));
}

#[test]
fn check_reports_every_error_with_its_column() {
    let errors = check(
        "${{ github.sha }} ${{ foo.bar }} ${{ 1 = 2 }} ${{ }} ${{ hashFiles('x') }}",
        &Scope::JOB,
    );
    let got: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
    assert_eq!(
        got,
        [
            "unrecognized named-value: 'foo' (contexts are github, env, vars, secrets, matrix, strategy, needs, steps, job, jobs, runner, inputs) at column 23",
            "unexpected symbol: '=' at column 40",
            "expected an expression at column 47",
            "function 'hashFiles' is not available here at column 58",
        ]
    );
    // Columns count characters; offsets count bytes.
    let errors = check("é ${{ foo }}", &Scope::ALL);
    assert_eq!(errors.len(), 1);
    assert_eq!((errors[0].offset, errors[0].column), (7, 7));
    assert!(check("echo ${{ matrix.os }} ${{ github.sha }}", &Scope::JOB).is_empty());
    assert!(check("plain text", &Scope::WORKFLOW).is_empty());
    let errors = check("${{ github.sha", &Scope::ALL);
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].kind, ErrorKind::UnclosedExpression);
    // Nothing is evaluated: a bad fromJSON argument is not a static error.
    assert!(check("${{ fromJSON('{') }}", &Scope::ALL).is_empty());
}

fn condition(text: &str, scope: &Scope, host: &TestHost) -> Result<bool, ExprError> {
    Condition::parse(text, scope)?.evaluate(&contexts(), host)
}

#[test]
fn if_conditions() {
    let passing = TestHost::default();
    let failed = TestHost {
        failed: true,
        ..TestHost::default()
    };
    let cancelled = TestHost {
        cancelled: true,
        ..TestHost::default()
    };
    // (text, implicit success(), when passing, after a failure, when cancelled)
    let cases: &[(&str, bool, bool, bool, bool)] = &[
        // An empty if is success().
        ("", true, true, false, false),
        // [syntax: jobs.<job_id>.if] without ${{ }}.
        (
            "github.repository == 'octo-org/octo-repo-prod'",
            true,
            true,
            false,
            false,
        ),
        ("github.repository == 'other'", true, false, false, false),
        // [expr: About expressions] with ${{ }}, and `!` which needs it in YAML.
        (
            "${{ ! startsWith(github.ref, 'refs/tags/') }}",
            true,
            true,
            false,
            false,
        ),
        (
            "${{ github.event_name == 'push' && github.event.action == 'opened' }}",
            true,
            true,
            false,
            false,
        ),
        // [expr: Status check functions]
        ("${{ success() }}", false, true, false, false),
        ("${{ always() }}", false, true, true, true),
        ("always()", false, true, true, true),
        ("${{ cancelled() }}", false, false, false, true),
        ("${{ failure() }}", false, false, true, false),
        (
            "failure() && steps.demo.conclusion == 'failure'",
            false,
            false,
            true,
            false,
        ),
        // A status function anywhere counts, even where it is never called.
        ("false && always()", false, false, false, false),
        ("!cancelled()", false, true, true, false),
        // `${{ }}` mixed with text is a non-empty string: always true (GitHub's trap), but
        // still under the implicit success().
        ("${{ false }} && false", true, true, false, false),
        // `${{ 'text' }}` is read as the expression text.
        (
            "${{ 'github.event_name == ''push''' }}",
            true,
            true,
            false,
            false,
        ),
        ("${{ 'always()' }}", false, true, true, true),
        ("${{ '' }}", true, true, false, false),
    ];
    let mut failures = Vec::new();
    for &(text, implicit, when_passing, when_failed, when_cancelled) in cases {
        match Condition::parse(text, &Scope::STEP_IF) {
            Ok(c) if c.implicit_success() != implicit => failures.push(format!(
                "{text:?}: implicit success() {}",
                c.implicit_success()
            )),
            Ok(_) => {}
            Err(e) => failures.push(format!("{text:?}: {e}")),
        }
        for (host, want, name) in [
            (&passing, when_passing, "passing"),
            (&failed, when_failed, "failed"),
            (&cancelled, when_cancelled, "cancelled"),
        ] {
            match condition(text, &Scope::STEP_IF, host) {
                Ok(got) if got == want => {}
                other => failures.push(format!("{text:?} when {name}: {other:?}, want {want}")),
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn if_errors_and_laziness() {
    // Errors point into the `if:` value as written.
    let e = Condition::parse("github.ref = 'x'", &Scope::STEP_IF).expect_err("= is no operator");
    assert_eq!(e.column, 12);
    let e =
        Condition::parse("${{ github.ref = 'x' }}", &Scope::STEP_IF).expect_err("= is no operator");
    assert_eq!(e.column, 16);
    let e = Condition::parse("${{ }}", &Scope::STEP_IF).expect_err("empty expression");
    assert_eq!(e.kind, ErrorKind::EmptyExpression);
    let e = Condition::parse("env.X", &Scope::JOB_IF).expect_err("no env in a job's if");
    assert!(matches!(e.kind, ErrorKind::ContextNotAllowed { .. }));
    // The implicit success() stops before the condition, as `&&` would.
    let failed = TestHost {
        failed: true,
        ..TestHost::default()
    };
    assert_eq!(
        condition("fromJSON('{')", &Scope::STEP_IF, &failed),
        Ok(false)
    );
    assert!(condition("fromJSON('{')", &Scope::STEP_IF, &TestHost::default()).is_err());
    // A job's if may pass job names to success().
    assert_eq!(
        condition("success('build')", &Scope::JOB_IF, &TestHost::default()),
        Ok(true)
    );
}

#[test]
fn values_from_json_and_to_json() {
    let v = json(r#"{"b": 1.50, "a": [true, null, "x"]}"#);
    assert_eq!(
        v.to_serde_json().to_string(),
        r#"{"a":[true,null,"x"],"b":1.5}"#
    );
    assert_eq!(
        Value::from(serde_json::json!({"k": [1, 2]})),
        Value::object([("k", Value::array(vec![n(1.0), n(2.0)]))])
    );
    assert_eq!(n(3.10).to_github_string(), "3.1");
    assert_eq!(Value::Null.to_github_string(), "");
    assert_eq!(Value::array(vec![]).to_github_string(), "Array");
    assert_eq!(json("{}").to_github_string(), "Object");
}
