//! Criterion benches of the strategy engine on zen's benchmark graphs
//! (`cargo bench -p lendgate-core --bench strategy`). Input is converted once
//! (`evaluate_value`), as a server holding a decoded request would.

use std::path::PathBuf;

use criterion::{criterion_group, criterion_main, Criterion};
use lendgate_core::expr::Value;
use lendgate_core::strategy::{EvalOptions, Graph};
use std::hint::black_box;

fn data() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata/zen/benchmark")
}

fn graphs(c: &mut Criterion) {
    let manifest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(data().join("manifest.json")).expect("manifest"),
    )
    .expect("manifest JSON");
    for entry in manifest.as_array().into_iter().flatten() {
        if entry["kind"] != "graph" {
            continue;
        }
        let text = std::fs::read_to_string(data().join(entry["file"].as_str().unwrap_or("")))
            .expect("graph file");
        let graph = Graph::compile(&text).expect("graph compiles");
        let input = Value::from(&entry["input"]);
        let name = entry["name"].as_str().unwrap_or("?");
        c.bench_function(&format!("strategy/{name}"), |b| {
            b.iter(|| graph.evaluate_value(black_box(&input), &EvalOptions::default()))
        });
    }
}

criterion_group!(benches, graphs);
criterion_main!(benches);
