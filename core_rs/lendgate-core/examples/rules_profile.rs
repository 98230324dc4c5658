//! Evaluates the 30-rule bench pack on one event N times, for callgrind:
//!
//! ```text
//! cargo build --release -p lendgate-core --example rules_profile
//! valgrind --tool=callgrind --toggle-collect='*measured*' \
//!     target/release/examples/rules_profile 5000
//! ```
//!
//! `Collected` / N is the instruction count of one whole-pack evaluation.

#[path = "../benches/rules_fixture.rs"]
mod fixture;

use lendgate_core::expr::Value;
use lendgate_core::lists::ListRegistry;
use lendgate_core::rules::{EventKind, RuleSet, DEFAULT_ZONE_THRESHOLD};
use std::hint::black_box;

#[inline(never)]
fn measured(set: &RuleSet, doc: &Value, lists: &ListRegistry, n: usize) -> i64 {
    let mut score = 0;
    for _ in 0..n {
        score +=
            black_box(set.evaluate(black_box(doc), EventKind::Application, fixture::AT, lists))
                .fraud_score;
    }
    score
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(5000);
    let doc = Value::from(&fixture::document());
    let lists = fixture::registry();
    let set = RuleSet::compile(fixture::pack(), DEFAULT_ZONE_THRESHOLD).expect("pack compiles");
    println!("score sum {}", measured(&set, &doc, &lists, n));
}
