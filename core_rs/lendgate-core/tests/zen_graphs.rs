//! Runs every test case of ZEN's public decision graphs (`testdata/zen/graphs/`) and
//! the edge cases (`testdata/zen/edge-cases/`) through the strategy engine.
//!
//! Graphs with a JavaScript `functionNode` are rejected at compile time (no JS engine
//! is embedded) and are counted as skipped; every other case must pass.
//! `cargo test -p lendgate-core --test zen_graphs -- --nocapture` prints the counts.

mod common;

use std::path::{Path, PathBuf};

use common::{options, same, zen_data};
use lendgate_core::strategy::{EvalOptions, Graph, Host};
use lendgate_core::{CoreError, CoreResult};
use serde_json::{json, Value};

fn read(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn has_function_node(doc: &Value) -> bool {
    doc["nodes"]
        .as_array()
        .is_some_and(|n| n.iter().any(|n| n["type"] == "functionNode"))
}

#[test]
fn zen_public_graphs() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(zen_data("graphs"))
        .expect("graphs dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    let (mut passed, mut skipped, mut failures) = (0, 0, Vec::new());
    for path in &files {
        let doc = read(path);
        let cases = doc["tests"].as_array().cloned().unwrap_or_default();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let graph = match Graph::from_json(&doc, &options()) {
            Ok(g) => g,
            Err(e) if has_function_node(&doc) => {
                assert!(e.to_string().contains("functionNode"), "{name}: {e}");
                skipped += cases.len();
                continue;
            }
            Err(e) => {
                failures.push(format!("{name}: does not compile: {e}"));
                continue;
            }
        };
        for (i, case) in cases.iter().enumerate() {
            let got = graph
                .evaluate(&case["input"], &EvalOptions::default())
                .output;
            match got {
                Ok(out) if same(&out, &case["output"]) => passed += 1,
                other => failures.push(format!(
                    "{name} case {i}: expected {}, got {other:?}",
                    case["output"]
                )),
            }
        }
    }
    println!(
        "zen graphs: {} files, {passed} cases passed, {} failed, {skipped} skipped (functionNode)",
        files.len(),
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(passed + skipped, 131);
}

/// Loads sub-strategies from the edge-case folder by file name.
struct EdgeCases;

impl Host for EdgeCases {
    fn load(&self, key: &str) -> CoreResult<Graph> {
        let path = zen_data("edge-cases").join(key);
        if !path.exists() {
            return Err(CoreError::NotFound {
                kind: "strategy",
                name: key.into(),
            });
        }
        Graph::from_json(&read(&path), &options())
    }
}

fn edge(name: &str) -> CoreResult<Graph> {
    Graph::from_json(&read(&zen_data("edge-cases").join(name)), &options())
}

fn eval_edge(name: &str, input: Value) -> CoreResult<Value> {
    let opts = EvalOptions {
        host: &EdgeCases,
        ..Default::default()
    };
    edge(name).expect("compiles").evaluate(&input, &opts).output
}

#[test]
fn edge_cases_rejected_at_compile_time() {
    let err = edge("error-cyclic.json").expect_err("cycle");
    assert!(err.to_string().contains("cycle"), "{err}");
    let err = edge("error-missing-input.json").expect_err("no input");
    assert!(err.to_string().contains("exactly one inputNode"), "{err}");
    for js in [
        "function.json",
        "function-v2.json",
        "infinite-function.json",
        "sleep-function.json",
        "http-function.json",
        "credit-analysis.json",
        "$nodes-child.json",
    ] {
        let err = edge(js).expect_err("js");
        assert!(err.to_string().contains("functionNode"), "{js}: {err}");
    }
}

#[test]
fn edge_cases_evaluate_as_zen() {
    // No output node: the result is the output of the nodes that lead nowhere (as ZEN).
    let out = eval_edge(
        "error-missing-output.json",
        json!({"numbers": [1, 5, 15], "firstName": "A", "lastName": "B"}),
    )
    .expect("ok");
    assert_eq!(out["fullName"], json!("A B"));
    assert_eq!(out["deep"]["nested"]["sum"], json!(21));
    assert_eq!(
        eval_edge("passthrough.json", json!({"a": 1})),
        Ok(json!({"a": 1}))
    );
    let tags = eval_edge(
        "table-collect-columns.json",
        json!({"customer": {"age": 70}}),
    )
    .expect("ok");
    assert_eq!(tags["customer"]["tier"], json!("senior"));
    // Recursion through decision nodes is bounded by the depth limit.
    let err = eval_edge("recursive-table1.json", json!({})).expect_err("depth");
    assert!(err.to_string().contains("depth limit"), "{err}");
}
