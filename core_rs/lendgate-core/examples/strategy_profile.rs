//! Profiles one zen benchmark graph: `cargo run --release --example strategy_profile -- NAME N`.
//! Prints the time per evaluation of the parse, evaluate and serialize steps.

use std::time::Instant;

use lendgate_core::strategy::{EvalOptions, Graph};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let name = args.get(1).map_or("expression-table-map", String::as_str);
    let n: u32 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(200);
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/zen/benchmark");
    let manifest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{dir}/manifest.json")).expect("manifest"),
    )
    .expect("json");
    let entry = manifest
        .as_array()
        .expect("array")
        .iter()
        .find(|e| e["name"] == name)
        .expect("graph");
    let graph_json =
        std::fs::read_to_string(format!("{dir}/{}", entry["file"].as_str().expect("file")))
            .expect("graph file");
    let graph = Graph::compile(&graph_json).expect("compile");
    let input = serde_json::to_vec(&entry["input"]).expect("input");
    let opts = EvalOptions::default();
    let (mut parse, mut eval, mut ser) = (0.0, 0.0, 0.0);
    let mut size = 0;
    for _ in 0..n {
        let t = Instant::now();
        let v: lendgate_core::expr::Value = serde_json::from_slice(&input).expect("parse");
        let t1 = Instant::now();
        let out = graph.run(&v, &opts).output.expect("ok");
        let t2 = Instant::now();
        size = lendgate_core::expr::to_json_bytes(&out).len();
        let t3 = Instant::now();
        parse += (t1 - t).as_secs_f64();
        eval += (t2 - t1).as_secs_f64();
        ser += (t3 - t2).as_secs_f64();
    }
    let us = |x: f64| x / f64::from(n) * 1e6;
    println!(
        "{name}: parse {:.1} us, evaluate {:.1} us, serialize {:.1} us ({size} bytes)",
        us(parse),
        us(eval),
        us(ser)
    );
}
