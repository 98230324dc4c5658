use serde_json::{json, Value as Json};

use super::*;

fn graph(nodes: Json, edges: Json) -> CoreResult<Graph> {
    Graph::compile(&json!({"nodes": nodes, "edges": edges}).to_string())
}

fn table(policy: &str) -> Graph {
    graph(
        json!([
            {"id": "in", "name": "in", "type": "inputNode"},
            {"id": "t", "name": "t", "type": "decisionTableNode", "content": {
                "hitPolicy": policy,
                "inputs": [{"id": "c1", "field": "score"}],
                "outputs": [{"id": "o1", "field": "band"}],
                "rules": [
                    {"_id": "r1", "c1": ">= 700", "o1": "'A'"},
                    {"_id": "r2", "c1": ">= 500", "o1": "'B'", "_priority": "5"},
                    {"_id": "r3", "c1": "", "o1": "'B'"}
                ]}},
            {"id": "out", "name": "out", "type": "outputNode"}
        ]),
        json!([
            {"id": "e1", "sourceId": "in", "targetId": "t"},
            {"id": "e2", "sourceId": "t", "targetId": "out"}
        ]),
    )
    .expect("compiles")
}

fn run(g: &Graph, input: Json) -> CoreResult<Json> {
    g.evaluate(&input, &EvalOptions::default()).output
}

#[test]
fn hit_policies() {
    assert_eq!(
        run(&table("first"), json!({"score": 800})),
        Ok(json!({"band": "A"}))
    );
    assert_eq!(
        run(&table("collect"), json!({"score": 800})),
        Ok(json!([{"band": "A"}, {"band": "B"}, {"band": "B"}]))
    );
    assert_eq!(
        run(&table("priority"), json!({"score": 800})),
        Ok(json!({"band": "B"}))
    );
    assert_eq!(
        run(&table("any"), json!({"score": 600})),
        Ok(json!({"band": "B"}))
    );
    assert_eq!(
        run(&table("unique"), json!({"score": 100})),
        Ok(json!({"band": "B"}))
    );
    let err = run(&table("unique"), json!({"score": 800})).expect_err("two rows match");
    assert!(err.to_string().contains("`r1` and `r2`"), "{err}");
    assert!(run(&table("any"), json!({"score": 800})).is_err());
}

#[test]
fn missing_field_follows_null_semantics() {
    // `null >= 700` is false; the catch-all row matches.
    assert_eq!(run(&table("first"), json!({})), Ok(json!({"band": "B"})));
}

#[test]
fn rejects_bad_graphs_with_the_culprit() {
    let in_node = json!({"id": "in", "name": "in", "type": "inputNode"});
    let err = graph(
        json!([in_node]),
        json!([{"id": "e", "sourceId": "in", "targetId": "x"}]),
    )
    .expect_err("dangling");
    assert!(err.to_string().contains("edges[e].targetId"), "{err}");
    let err = graph(
        json!([in_node, {"id": "f", "name": "f", "type": "functionNode", "content": "x"}]),
        json!([]),
    )
    .expect_err("js");
    assert!(err.to_string().contains("nodes[f].type"), "{err}");
    let err = graph(json!([]), json!([])).expect_err("no input");
    assert!(err.to_string().contains("exactly one inputNode"), "{err}");
    let bad_expr = json!({"id": "x", "name": "x", "type": "expressionNode",
        "content": {"expressions": [{"id": "1", "key": "a", "value": "1 +"}]}});
    let err = graph(json!([in_node, bad_expr]), json!([])).expect_err("syntax");
    assert!(err.to_string().contains("nodes[x].expressions[a]"), "{err}");
}

fn failing(content_extra: Json, extra_nodes: Json, extra_edges: Json) -> Graph {
    let mut content = json!({"expressions": [{"id": "1", "key": "x", "value": "1 + 'a'"}]});
    if let (Some(c), Some(extra)) = (content.as_object_mut(), content_extra.as_object()) {
        c.extend(extra.clone());
    }
    let mut nodes = vec![
        json!({"id": "in", "name": "in", "type": "inputNode"}),
        json!({"id": "bad", "name": "bad", "type": "expressionNode", "content": content}),
    ];
    nodes.extend(extra_nodes.as_array().cloned().unwrap_or_default());
    let mut edges = vec![json!({"id": "e1", "sourceId": "in", "targetId": "bad"})];
    edges.extend(extra_edges.as_array().cloned().unwrap_or_default());
    graph(Json::Array(nodes), Json::Array(edges)).expect("compiles")
}

#[test]
fn a_failing_node_fails_the_evaluation_with_its_trace() {
    let g = failing(json!({}), json!([]), json!([]));
    let eval = g.evaluate(
        &json!({}),
        &EvalOptions {
            trace: true,
            ..Default::default()
        },
    );
    let Err(CoreError::NodeFailed { node_id, .. }) = eval.output else {
        panic!("expected a node failure")
    };
    assert_eq!(node_id, "bad");
    assert!(eval
        .trace
        .iter()
        .any(|t| t.node_id == "bad" && t.error.is_some()));
}

#[test]
fn on_error_default_output() {
    let g = failing(
        json!({"onError": {"output": {"x": 0}}}),
        json!([]),
        json!([]),
    );
    let eval = g.evaluate(
        &json!({}),
        &EvalOptions {
            trace: true,
            ..Default::default()
        },
    );
    assert_eq!(eval.output, Ok(json!({"x": 0})));
    assert!(eval
        .trace
        .iter()
        .any(|t| t.node_id == "bad" && t.error.is_some()));
}

#[test]
fn error_edge_routes_failures() {
    let nodes = json!([
        {"id": "fallback", "name": "fallback", "type": "expressionNode",
         "content": {"expressions": [{"id": "1", "key": "decision", "value": "'manual'"}]}},
        {"id": "next", "name": "next", "type": "expressionNode",
         "content": {"expressions": [{"id": "1", "key": "decision", "value": "'auto'"}]}}
    ]);
    let edges = json!([
        {"id": "e2", "sourceId": "bad", "targetId": "fallback", "sourceHandle": "error"},
        {"id": "e3", "sourceId": "bad", "targetId": "next"}
    ]);
    let g = failing(json!({}), nodes, edges);
    assert_eq!(run(&g, json!({})), Ok(json!({"decision": "manual"})));
}

#[test]
fn ab_test_is_sticky_and_splits() {
    let g = graph(
        json!([
            {"id": "in", "name": "in", "type": "inputNode"},
            {"id": "ab", "name": "ab", "type": "customNode", "content": {"kind": "abTest",
                "config": {"key": "clientId", "challengerPercent": 20, "salt": "s1"}}},
            {"id": "c", "name": "c", "type": "expressionNode",
             "content": {"expressions": [{"id": "1", "key": "arm", "value": "'champion'"}]}},
            {"id": "d", "name": "d", "type": "expressionNode",
             "content": {"expressions": [{"id": "1", "key": "arm", "value": "'challenger'"}]}}
        ]),
        json!([
            {"id": "e1", "sourceId": "in", "targetId": "ab"},
            {"id": "e2", "sourceId": "ab", "targetId": "c", "sourceHandle": "champion"},
            {"id": "e3", "sourceId": "ab", "targetId": "d", "sourceHandle": "challenger"}
        ]),
    )
    .expect("compiles");
    let mut challengers = 0;
    for i in 0..1000 {
        let input = json!({"clientId": format!("client-{i}")});
        let a = g.evaluate(&input, &EvalOptions::default());
        let b = g.evaluate(&input, &EvalOptions::default());
        assert_eq!(a.output, b.output);
        let arm = a.output.expect("ok")["arm"].clone();
        assert_eq!(arm, json!(a.ab_paths[0].path));
        if arm == json!("challenger") {
            challengers += 1;
        }
    }
    assert!((150..250).contains(&challengers), "{challengers}");
}

#[test]
fn graphs_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Graph>();
}
