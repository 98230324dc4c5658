//! Criterion benches of the expression language (`cargo bench -p lendgate-core --bench expr`).
//!
//! The target: at least 1,000,000 simple condition evaluations per second
//! per core. `evaluate_value` is the hot path (the event is converted once and many
//! rules run against it); `evaluate_json` includes converting the event each time.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use lendgate_core::expr::{Expression, UnaryExpression, Value};
use serde_json::json;
use std::hint::black_box;

const SIMPLE: &str = "amount > 1000 and age < 30";
const MEDIUM: &str =
    "applicant.income * 12 >= loan.amount / 2 and applicant.country in ['RU', 'KZ'] and not blacklisted";

fn event() -> serde_json::Value {
    json!({
        "amount": 5000,
        "age": 25,
        "blacklisted": false,
        "applicant": {"income": 85000.5, "country": "RU", "phone": "79123456789"},
        "loan": {"amount": 250000, "term": 12},
        "history": [1, 2, 3, 4, 5, 6, 7, 8]
    })
}

fn compile(c: &mut Criterion) {
    c.bench_function("expr/compile/simple", |b| {
        b.iter(|| Expression::compile(black_box(SIMPLE)))
    });
    c.bench_function("expr/compile/medium", |b| {
        b.iter(|| Expression::compile(black_box(MEDIUM)))
    });
}

fn evaluate(c: &mut Criterion) {
    let input = event();
    let value = Value::from(&input);
    let mut g = c.benchmark_group("expr/evaluate");
    g.throughput(Throughput::Elements(1));
    for (name, src) in [
        ("simple", SIMPLE),
        ("medium", MEDIUM),
        ("closure", "count(history, # > 4) >= 3"),
    ] {
        let e = Expression::compile(src).expect("valid expression");
        g.bench_function(format!("{name}/value"), |b| {
            b.iter(|| e.evaluate_value(black_box(&value)))
        });
    }
    let e = Expression::compile(SIMPLE).expect("valid expression");
    g.bench_function("simple/json", |b| b.iter(|| e.evaluate(black_box(&input))));
    let t = UnaryExpression::compile("[1000..10000)").expect("valid test");
    let subject = Value::from(&json!({"$": 5000}));
    g.bench_function("unary/interval", |b| {
        b.iter(|| t.evaluate_value(black_box(&subject)))
    });
    g.finish();
}

criterion_group!(benches, compile, evaluate);
criterion_main!(benches);
