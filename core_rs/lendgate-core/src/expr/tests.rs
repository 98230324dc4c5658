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
