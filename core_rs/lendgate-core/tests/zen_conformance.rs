//! Runs every public ZEN expression case in `testdata/zen/expression/` and fails on
//! any case that differs, except those in [`KNOWN_DIFFERENCES`].
//!
//! Rows are read the way ZEN's own test reads them (`csv` with `;`, header row):
//! rows whose field count differs from the header's (section comments, the four
//! two-column "Interval iterator" rows) are not cases, exactly as in ZEN.
//! `cargo test -p lendgate-core --test zen_conformance -- --nocapture` prints the
//! pass counts per file.

mod common;

use common::{options, same, zen_data};
use lendgate_core::expr::{Expression, UnaryExpression};
use serde_json::Value;

/// Cases we deliberately evaluate differently (file, expression, why). Each is
/// documented in `docs/EXPRESSIONS.md`.
const KNOWN_DIFFERENCES: &[(&str, &str, &str)] = &[];

struct Case {
    expression: String,
    input: Value,
    output: Value,
}

fn cases(file: &str) -> Vec<Case> {
    let path = zen_data("expression").join(file);
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(b';')
        .from_path(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let mut out = Vec::new();
    for record in reader.records() {
        let Ok(row) = record else { continue };
        let (Some(expression), Some(input), Some(output)) = (row.get(0), row.get(1), row.get(2))
        else {
            continue;
        };
        if expression.starts_with('#') {
            continue;
        }
        let parse = |s: &str| -> Value {
            json5::from_str(s).unwrap_or_else(|e| panic!("bad JSON5 {s:?} in {file}: {e}"))
        };
        out.push(Case {
            expression: expression.to_string(),
            input: if input.is_empty() {
                Value::Null
            } else {
                parse(input)
            },
            output: parse(output),
        });
    }
    out
}

fn run(file: &str, unary: bool) {
    let cases = cases(file);
    let mut failures = Vec::new();
    let mut allowed = 0;
    for case in &cases {
        let got: Result<Value, String> = if unary {
            UnaryExpression::compile_with(&case.expression, options())
                .and_then(|e| e.evaluate(&case.input))
                .map(Value::Bool)
                .map_err(|e| e.to_string())
        } else {
            Expression::compile_with(&case.expression, options())
                .and_then(|e| e.evaluate(&case.input))
                .map_err(|e| e.to_string())
        };
        let ok = got.as_ref().is_ok_and(|v| same(v, &case.output));
        if ok {
            continue;
        }
        if KNOWN_DIFFERENCES
            .iter()
            .any(|(f, e, _)| *f == file && *e == case.expression)
        {
            allowed += 1;
            continue;
        }
        failures.push(format!(
            "  {} | input {} | expected {} | got {:?}",
            case.expression, case.input, case.output, got
        ));
    }
    let passed = cases.len() - failures.len() - allowed;
    println!(
        "{file}: {passed}/{} passed, {allowed} known differences, {} failures",
        cases.len(),
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {} cases in {file} differ from ZEN:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn standard() {
    run("standard.csv", false);
}

#[test]
fn unary() {
    run("unary.csv", true);
}

#[test]
fn date() {
    run("date.csv", false);
}
