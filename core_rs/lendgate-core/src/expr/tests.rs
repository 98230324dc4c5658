use serde_json::json;

use super::*;

fn eval(src: &str, input: serde_json::Value) -> serde_json::Value {
    Expression::compile(src).unwrap().evaluate(&input).unwrap()
}

#[test]
fn decimal_arithmetic() {
    assert_eq!(eval("0.1 + 0.2 == 0.3", json!({})), json!(true));
    assert_eq!(eval("(3 + 4) * 2", json!(null)), json!(14));
}

#[test]
fn simple_condition() {
    let e = Expression::compile("amount > 1000 and age < 30").unwrap();
    assert_eq!(
        e.evaluate(&json!({"amount": 5000, "age": 25})).unwrap(),
        json!(true)
    );
    assert_eq!(
        e.evaluate(&json!({"amount": 500, "age": 25})).unwrap(),
        json!(false)
    );
}

#[test]
fn syntax_error_has_position() {
    let err = Expression::compile("a + * 2").unwrap_err();
    match err {
        CoreError::ExpressionSyntax { position, .. } => assert_eq!(position, 4),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn syntax_error_position_counts_characters() {
    let err = Expression::compile("'ЖЖ' + )").unwrap_err();
    assert!(
        matches!(err, CoreError::ExpressionSyntax { position: 7, .. }),
        "{err:?}"
    );
}

#[test]
fn deep_nesting_is_rejected_not_overflowing() {
    let src = format!("{}1{}", "(".repeat(10_000), ")".repeat(10_000));
    let err = Expression::compile(&src).unwrap_err();
    assert!(matches!(err, CoreError::ExpressionSyntax { .. }));
    let src = format!("{}1{}", "[".repeat(10_000), "]".repeat(10_000));
    assert!(Expression::compile(&src).is_err());
    let src = format!("{}1", "-".repeat(10_000));
    assert!(Expression::compile(&src).is_err());
    let src = vec!["1"; 10_000].join(" + ");
    assert!(Expression::compile(&src).is_err());
    let src = format!("a{}", ".b".repeat(10_000));
    assert!(Expression::compile(&src).is_err());
    assert!(UnaryExpression::compile(&vec!["> 1"; 10_000].join(", ")).is_err());
}

#[test]
fn runaway_evaluation_is_bounded() {
    let e = Expression::compile("count([0..100000000], true)").unwrap();
    assert!(matches!(
        e.evaluate(&json!({})),
        Err(CoreError::ExpressionEvaluation { .. })
    ));
    let e = Expression::compile("map([0..2000], map([0..2000], map([0..2000], #)))").unwrap();
    assert!(e.evaluate(&json!({})).is_err());
    let e = Expression::compile("s + s + s + s").unwrap();
    let big = "x".repeat(400_000);
    assert!(e.evaluate(&json!({ "s": big })).is_err());
}

#[test]
fn garbage_never_panics() {
    let samples = [
        "",
        " ",
        "(",
        ")",
        "[",
        "]",
        "{",
        "}",
        "`",
        "`${",
        "`${}`",
        "'",
        "a.",
        "a[",
        "a[:",
        "map(",
        "map(a",
        "map(a as",
        "map(a as b,",
        "d(",
        "d().",
        "d().add(",
        "1..2",
        "[1..",
        "(1..2",
        "x ? y",
        "x ? y :",
        "a = ",
        "a = 1;",
        "a = 1; ;",
        "not",
        "-",
        "#",
        "$root.",
        "{a:}",
        "{[1]: 2}",
        "1e",
        "1e+",
        "..",
        "1 in",
        "not in",
        "?? 1",
        "len()",
        "len(1, 2)",
        "\u{0}",
        "é",
        "💥",
        "a.b.c[0][1:2]",
        "[1, 2,]",
        "{a: 1,}",
        "`a${1}b${'c'}`",
    ];
    for s in samples {
        if let Ok(e) = Expression::compile(s) {
            let _ = e.evaluate(&json!({"a": [1, 2], "x": true}));
        }
        if let Ok(e) = UnaryExpression::compile(s) {
            let _ = e.evaluate(&json!({"$": 1}));
        }
    }
}

#[test]
fn expressions_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Expression>();
    check::<UnaryExpression>();
}

#[test]
fn unary_tests() {
    let t = UnaryExpression::compile("'GB', 'US'").unwrap();
    assert!(t.evaluate(&json!({"$": "US"})).unwrap());
    assert!(!t.evaluate(&json!({"$": "FR"})).unwrap());
    let t = UnaryExpression::compile("[1..10)").unwrap();
    assert!(t.evaluate(&json!({"$": 1})).unwrap());
    assert!(!t.evaluate(&json!({"$": 10})).unwrap());
}

#[test]
fn fixed_clock_drives_dates() {
    let now = "2025-08-19T16:55:02Z".parse().unwrap();
    let options = Options {
        clock: Clock::Fixed(now),
        ..Options::default()
    };
    let e = Expression::compile_with("d().year()", options).unwrap();
    assert_eq!(e.evaluate(&json!({})).unwrap(), json!(2025));
}

struct Lists;

impl Host for Lists {
    fn call(&self, name: &str, args: &[Value]) -> Result<Value, String> {
        match (name, args) {
            ("in_list", [Value::String(list), v]) if list.as_ref() == "bad" => Ok(Value::Bool(
                matches!(v, Value::String(s) if s.as_ref() == "x"),
            )),
            ("in_list", [Value::String(list), _]) => Err(format!("unknown list `{list}`")),
            _ => Err("bad arguments".to_string()),
        }
    }
}

fn with_in_list() -> Options {
    Options {
        host_functions: HostFunctions::new(vec![HostFunction::new("in_list", 2, true)]),
        ..Options::default()
    }
}

#[test]
fn host_functions_must_be_declared() {
    let err = Expression::compile("a and in_list('bad', b)").unwrap_err();
    assert_eq!(
        err,
        CoreError::ExpressionSyntax {
            position: 6,
            reason: "unknown function `in_list`".to_string()
        }
    );
    let err = Expression::compile_with("in_list('bad')", with_in_list()).unwrap_err();
    assert!(
        err.to_string().contains("takes 2 arguments, got 1"),
        "{err}"
    );
}

#[test]
fn host_functions_are_called_with_evaluated_arguments() {
    let e = Expression::compile_with(
        "in_list('bad', user.id) or in_list('bad', 'y')",
        with_in_list(),
    )
    .unwrap();
    let input = Value::from(&json!({"user": {"id": "x"}}));
    let ctx = Context {
        host: Some(&Lists),
        reads: None,
    };
    assert_eq!(e.evaluate_in(&input, ctx).unwrap().to_json(), json!(true));
    // Without a host the call is an evaluation error, not a panic.
    let err = e.evaluate_value(&input).unwrap_err();
    assert!(
        err.to_string().contains("`in_list` is not available"),
        "{err}"
    );
    // Host errors name the function.
    let e = Expression::compile_with("in_list('nope', 1)", with_in_list()).unwrap();
    let ctx = Context {
        host: Some(&Lists),
        reads: None,
    };
    let err = e.evaluate_in(&input, ctx).unwrap_err();
    assert!(
        err.to_string().contains("in_list(): unknown list `nope`"),
        "{err}"
    );
}

#[test]
fn host_predicates_work_as_unary_tests() {
    let t = UnaryExpression::compile_with("in_list('bad', $)", with_in_list()).unwrap();
    let input = Value::from(&json!({"$": "x"}));
    let ctx = Context {
        host: Some(&Lists),
        reads: None,
    };
    assert_eq!(
        t.inner.evaluate_in(&input, ctx).unwrap().to_json(),
        json!(true)
    );
}

#[test]
fn reads_are_recorded_once_in_order() {
    let e = Expression::compile_with(
        "a.b[0] > 1 and c == 'q' and a.b[0] < 10 and in_list('bad', c) == false",
        with_in_list(),
    )
    .unwrap();
    let input = Value::from(&json!({"a": {"b": [5]}, "c": "q"}));
    let mut reads = Vec::new();
    let ctx = Context {
        host: Some(&Lists),
        reads: Some(&mut reads),
    };
    assert_eq!(e.evaluate_in(&input, ctx).unwrap().to_json(), json!(true));
    let got: Vec<(String, serde_json::Value)> = reads
        .iter()
        .map(|r| (r.path.clone(), r.value.to_json()))
        .collect();
    assert_eq!(
        got,
        vec![
            ("a.b[0]".to_string(), json!(5)),
            ("c".to_string(), json!("q")),
            ("in_list(\"bad\", \"q\")".to_string(), json!(false)),
        ]
    );
}
