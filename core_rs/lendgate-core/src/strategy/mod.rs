//! Decision strategies: GoRules JDM graphs, compiled once and evaluated many times.
//!
//! ```
//! use lendgate_core::strategy::{EvalOptions, Graph};
//! use serde_json::json;
//!
//! let graph = Graph::compile(r#"{
//!   "nodes": [
//!     {"id": "in", "name": "request", "type": "inputNode"},
//!     {"id": "e", "name": "score", "type": "expressionNode",
//!      "content": {"expressions": [{"id": "1", "key": "ok", "value": "amount < 1000"}]}},
//!     {"id": "out", "name": "response", "type": "outputNode"}
//!   ],
//!   "edges": [
//!     {"id": "a", "sourceId": "in", "targetId": "e"},
//!     {"id": "b", "sourceId": "e", "targetId": "out"}
//!   ]
//! }"#).unwrap();
//! let eval = graph.evaluate(&json!({"amount": 500}), &EvalOptions::default());
//! assert_eq!(eval.output.unwrap(), json!({"ok": true}));
//! ```
//!
//! Semantics follow ZEN (the reference engine of JDM): the walk, the merging of node
//! outputs, switch pruning, tables and their null semantics, `$`, `$nodes`, loop
//! mode and pass-through. Our extensions — the DMN hit policies `unique`, `any`,
//! `priority`, `ruleOrder`; the `abTest` custom node; per-node `onError`,
//! `timeoutMs` and `error` edges — are described in `docs/STRATEGIES.md`.
//! A [`Graph`] is immutable, `Send + Sync`, and cheap to clone.

mod model;
mod ops;
mod run;
pub mod structpb;

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value as Json;

pub use model::{HitPolicy, ERROR_HANDLE};

use crate::error::{CoreError, CoreResult};
use crate::expr::{Options, Value};

/// A compiled decision graph.
#[derive(Debug, Clone)]
pub struct Graph {
    def: Arc<model::GraphDef>,
}

/// What the engine asks of its host: sub-strategies and custom nodes.
pub trait Host: Sync {
    /// Loads the sub-strategy a decision node names.
    fn load(&self, key: &str) -> CoreResult<Graph> {
        Err(CoreError::NotFound {
            kind: "strategy",
            name: key.to_owned(),
        })
    }

    /// Runs a custom node (`customNode` with `content.kind`) other than `abTest`.
    ///
    /// `timeout` is what is left of the node's `timeoutMs` or of the evaluation's
    /// deadline, whichever ends first: a host must give up at that point (run the
    /// node where it can be abandoned) and answer with an error. The engine also
    /// fails a node that returns after its limit, but cannot interrupt one.
    fn custom(
        &self,
        kind: &str,
        config: &Json,
        input: &Json,
        timeout: Option<Duration>,
    ) -> Result<Json, String> {
        let _ = (config, input, timeout);
        Err(format!("node kind `{kind}` is not available"))
    }
}

/// A host with no sub-strategies and no custom nodes.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoHost;

impl Host for NoHost {}

/// Options of one evaluation.
pub struct EvalOptions<'a> {
    /// Record every node's input, output, time and error.
    pub trace: bool,
    /// Maximum nesting of sub-strategies (decision nodes); ZEN's default is 10.
    pub max_depth: u8,
    /// Maximum node runs (loop items count one each) of one evaluation, sub-strategies
    /// included per graph: bounds runaway loops.
    pub max_node_runs: u64,
    /// No node starts after this instant.
    pub deadline: Option<Instant>,
    /// Loads sub-strategies and runs custom nodes.
    pub host: &'a dyn Host,
}

impl Default for EvalOptions<'_> {
    fn default() -> Self {
        Self {
            trace: false,
            max_depth: 10,
            max_node_runs: 100_000,
            deadline: None,
            host: &NoHost,
        }
    }
}

/// One node's run, as recorded in a trace.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeTrace {
    pub node_id: String,
    pub name: String,
    /// The JDM node type (`decisionTableNode`, ...).
    pub kind: &'static str,
    pub input: Json,
    pub output: Json,
    /// Why the node failed (handled or not).
    pub error: Option<String>,
    pub duration: Duration,
    /// Position in the run (0 is the first node run).
    pub order: usize,
    /// Per-kind detail: matched rules, switch statements taken, A/B path, or the
    /// nested trace of a sub-strategy.
    pub detail: Json,
}

impl NodeTrace {
    /// The trace entry as JSON (durations in microseconds).
    pub fn to_json(&self) -> Json {
        serde_json::json!({
            "nodeId": self.node_id,
            "name": self.name,
            "kind": self.kind,
            "input": self.input,
            "output": self.output,
            "error": self.error,
            "durationUs": u64::try_from(self.duration.as_micros()).unwrap_or(u64::MAX),
            "order": self.order,
            "detail": self.detail,
        })
    }
}

/// The path an `abTest` node sent this evaluation down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AbPath {
    pub node_id: String,
    /// `champion` or `challenger`.
    pub path: &'static str,
}

/// The result of one evaluation: the output or the error of the node that failed,
/// and the trace either way.
#[derive(Debug, Clone)]
pub struct Evaluation {
    pub output: CoreResult<Json>,
    /// Empty unless [`EvalOptions::trace`] was set.
    pub trace: Vec<NodeTrace>,
    pub ab_paths: Vec<AbPath>,
}

/// Like [`Evaluation`], with the output still a [`Value`].
#[derive(Debug, Clone)]
pub struct RawEvaluation {
    pub output: CoreResult<Value>,
    /// Empty unless [`EvalOptions::trace`] was set.
    pub trace: Vec<NodeTrace>,
    pub ab_paths: Vec<AbPath>,
}

impl Graph {
    /// Parses, validates and compiles a JDM graph (JSON text).
    ///
    /// Returns [`CoreError::InvalidArgument`] naming the offending node or edge for
    /// bad JSON, a missing or second input node, a dangling edge, a cycle, an
    /// unsupported node type (JavaScript `functionNode`) or an expression that does
    /// not compile.
    pub fn compile(json: &str) -> CoreResult<Self> {
        Self::compile_with(json, &Options::default())
    }

    /// Like [`Graph::compile`], with expression options (clock, time zone, limits).
    pub fn compile_with(json: &str, options: &Options) -> CoreResult<Self> {
        let doc: Json = serde_json::from_str(json)
            .map_err(|e| CoreError::invalid("graph_json", format!("not valid JSON: {e}")))?;
        Self::from_json(&doc, options)
    }

    /// Compiles an already-parsed JDM document.
    pub fn from_json(doc: &Json, options: &Options) -> CoreResult<Self> {
        Ok(Self {
            def: Arc::new(model::compile(doc, options)?),
        })
    }

    /// The keys of the sub-strategies its decision nodes call.
    pub fn sub_decisions(&self) -> &[String] {
        &self.def.sub_decisions
    }

    /// Table cells and switch conditions that do not compile: as in ZEN they never
    /// match, so the graph is accepted; callers should show these to the author.
    pub fn warnings(&self) -> &[String] {
        &self.def.warnings
    }

    /// The kinds of its custom nodes the host must provide (not `abTest`).
    pub fn custom_kinds(&self) -> Vec<String> {
        let mut kinds: Vec<String> = self
            .def
            .nodes
            .iter()
            .filter_map(|n| match &n.kind {
                model::Kind::Custom { kind, .. } => Some(kind.clone()),
                _ => None,
            })
            .collect();
        kinds.sort();
        kinds.dedup();
        kinds
    }

    /// Evaluates the graph on a JSON input.
    pub fn evaluate(&self, input: &Json, options: &EvalOptions<'_>) -> Evaluation {
        self.evaluate_value(&Value::from(input), options)
    }

    /// Evaluates on an already-converted input.
    pub fn evaluate_value(&self, input: &Value, options: &EvalOptions<'_>) -> Evaluation {
        let raw = self.run(input, options);
        Evaluation {
            output: raw.output.map(|v| v.to_json()),
            trace: raw.trace,
            ab_paths: raw.ab_paths,
        }
    }

    /// Evaluates on a [`Value`] and returns the output as a [`Value`]: the hot path
    /// (no JSON tree is built; write the output with `serde_json::to_writer` or
    /// [`structpb::encode`]).
    pub fn run(&self, input: &Value, options: &EvalOptions<'_>) -> RawEvaluation {
        let outcome = run::Run::new(&self.def, options, 0, None).evaluate(input);
        RawEvaluation {
            output: outcome.result,
            trace: outcome.trace,
            ab_paths: outcome.ab_paths,
        }
    }
}

/// The A/B bucket (0..10000) of a sticky key under a salt (exposed for tests and
/// for tools that predict a split).
pub fn ab_bucket(salt: &str, key: &str) -> u32 {
    run::ab_bucket(salt, key)
}

#[cfg(test)]
mod tests;
