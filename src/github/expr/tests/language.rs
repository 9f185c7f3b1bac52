//! Literals, operators, coercion, property access and the functions.

use super::*;

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
