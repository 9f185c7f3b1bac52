//! Errors and their columns, scopes and limits, `${{ }}` templates and `if:` conditions.

use super::*;

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
