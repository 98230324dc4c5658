//! JDM (GoRules JSON Decision Model) parsing, validation and compilation.
//!
//! Every expression of the graph — switch conditions, table cells, expression
//! nodes, input fields — is compiled here, once; evaluation never parses.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value as Json;

use super::ops::KeyPath;
use crate::error::{CoreError, CoreResult};
use crate::expr::{Expression, Options, UnaryExpression, Value};

/// The edge handle that carries a node's failure (our extension, see
/// `docs/STRATEGIES.md`).
pub const ERROR_HANDLE: &str = "error";

/// How a table picks among matching rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HitPolicy {
    /// The first matching row (ZEN, DMN).
    First,
    /// Every matching row, as an array (ZEN `collect`).
    Collect,
    /// Exactly one row may match; more is an error (DMN).
    Unique,
    /// All matching rows must give the same output (DMN).
    Any,
    /// The matching row with the highest `_priority` (ties: the first row).
    Priority,
    /// Every matching row in rule order, as an array (DMN).
    RuleOrder,
}

/// `inputField` / `outputPath` / `executionMode` / `passThrough` of a node.
#[derive(Debug, Clone, Default)]
pub(crate) struct Transform {
    pub input_field: Option<Expression>,
    pub output_path: Option<KeyPath>,
    pub loop_mode: bool,
    pub pass_through: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct InputColumn {
    pub id: Arc<str>,
    /// The subject of the column's cells; `None` makes each cell a standard
    /// boolean expression.
    pub field: Option<Expression>,
}

#[derive(Debug, Clone)]
pub(crate) struct OutputColumn {
    pub id: Arc<str>,
    /// `None`: a column without a field (never written).
    pub path: Option<KeyPath>,
    /// `field[]`: values of every matching row are collected into an array.
    pub collect: bool,
}

#[derive(Debug, Clone)]
pub(crate) enum Cell {
    Any,
    /// A cell that does not compile never matches (as in ZEN); see `warnings`.
    Never,
    Unary(UnaryExpression),
    Standard(Expression),
}

#[derive(Debug, Clone)]
pub(crate) enum OutCell {
    Empty,
    Value(Expression),
    /// Does not compile: the row is skipped (as in ZEN).
    Broken,
}

#[derive(Debug, Clone)]
pub(crate) struct Rule {
    pub id: Arc<str>,
    pub priority: f64,
    /// One cell per input column.
    pub inputs: Vec<Cell>,
    /// One per output column.
    pub outputs: Vec<OutCell>,
}

#[derive(Debug, Clone)]
pub(crate) struct Table {
    pub hit_policy: HitPolicy,
    pub inputs: Vec<InputColumn>,
    pub outputs: Vec<OutputColumn>,
    pub rules: Vec<Rule>,
}

/// The expressions of an expression node, in order.
#[derive(Debug, Clone)]
pub(crate) struct Expressions {
    pub items: Vec<(KeyPath, Expression)>,
    /// Some expression may read `$` (the node's results so far): only then is it
    /// kept up to date, which costs a copy of the input object per evaluation.
    pub uses_dollar: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct Statement {
    pub id: Arc<str>,
    /// `None`: always taken; `Some(None)`: does not compile, never taken.
    pub condition: Option<Option<Expression>>,
}

#[derive(Debug, Clone)]
pub(crate) struct AbTest {
    pub key: Expression,
    /// Share of keys sent to the challenger, in basis points (0..=10000).
    pub challenger_bp: u32,
    pub salt: String,
}

#[derive(Debug, Clone)]
pub(crate) enum Kind {
    Input,
    Output,
    Switch {
        collect: bool,
        statements: Vec<Statement>,
    },
    Table(Transform, Box<Table>),
    Expression(Transform, Expressions),
    Decision(Transform, String),
    AbTest(AbTest),
    Custom {
        kind: String,
        config: Arc<Json>,
    },
}

/// What to do when a node fails (our extension).
#[derive(Debug, Clone, Default)]
pub(crate) struct OnError {
    /// Use this output instead of failing.
    pub default_output: Option<Value>,
}

#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub id: Arc<str>,
    pub name: Arc<str>,
    pub type_name: &'static str,
    pub kind: Kind,
    pub on_error: OnError,
    pub timeout: Option<Duration>,
    /// Some outgoing edge carries [`ERROR_HANDLE`].
    pub has_error_edge: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct Edge {
    pub source: usize,
    pub target: usize,
    pub handle: Option<Arc<str>>,
}

/// A validated, compiled graph. Immutable; shared across threads.
#[derive(Debug)]
pub(crate) struct GraphDef {
    pub nodes: Vec<Node>,
    pub edges: Vec<Edge>,
    /// Edge ids per node, newest first (the order ZEN's graph library visits them).
    pub out_edges: Vec<Vec<usize>>,
    pub in_edges: Vec<Vec<usize>>,
    /// Some expression reads `$nodes`: only then is that view built.
    pub uses_nodes: bool,
    pub sub_decisions: Vec<String>,
    /// Cells that never match because they do not compile.
    pub warnings: Vec<String>,
}

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> CoreError {
    CoreError::invalid(field, reason)
}

fn node_field(id: &str, rest: &str) -> String {
    format!("nodes[{id}]{rest}")
}

struct Compiler<'a> {
    options: &'a Options,
    uses_nodes: bool,
    warnings: Vec<String>,
}

impl Compiler<'_> {
    fn standard(&mut self, field: &str, source: &str) -> CoreResult<Expression> {
        self.uses_nodes |= source.contains("$nodes");
        Expression::compile_with(source, self.options.clone())
            .map_err(|e| invalid(field, e.to_string()))
    }

    fn unary(&mut self, field: &str, source: &str) -> CoreResult<UnaryExpression> {
        self.uses_nodes |= source.contains("$nodes");
        UnaryExpression::compile_with(source, self.options.clone())
            .map_err(|e| invalid(field, e.to_string()))
    }

    /// Where ZEN treats a cell that does not compile as "no match" (table cells,
    /// switch conditions), so do we, with a warning instead of a rejection.
    fn lenient<T>(&mut self, r: CoreResult<T>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                self.warnings.push(format!("{e} (never matches)"));
                None
            }
        }
    }

    fn transform(&mut self, id: &str, content: &Json) -> CoreResult<Transform> {
        let input_field = match non_empty_str(content.get("inputField")) {
            Some(s) => Some(self.standard(&node_field(id, ".content.inputField"), s)?),
            None => None,
        };
        let loop_mode = match content.get("executionMode").and_then(Json::as_str) {
            None | Some("single") => false,
            Some("loop") => true,
            Some(other) => {
                return Err(invalid(
                    node_field(id, ".content.executionMode"),
                    format!("unknown execution mode `{other}` (expected single or loop)"),
                ))
            }
        };
        Ok(Transform {
            input_field,
            output_path: non_empty_str(content.get("outputPath")).map(KeyPath::new),
            loop_mode,
            pass_through: content
                .get("passThrough")
                .and_then(Json::as_bool)
                .unwrap_or(false),
        })
    }

    fn table(&mut self, id: &str, content: &Json) -> CoreResult<Table> {
        let hit_policy = match content.get("hitPolicy").and_then(Json::as_str) {
            None | Some("first") => HitPolicy::First,
            Some("collect") => HitPolicy::Collect,
            Some("unique") => HitPolicy::Unique,
            Some("any") => HitPolicy::Any,
            Some("priority") => HitPolicy::Priority,
            Some("ruleOrder" | "rule order" | "rule_order") => HitPolicy::RuleOrder,
            Some(other) => {
                return Err(invalid(
                    node_field(id, ".content.hitPolicy"),
                    format!("unknown hit policy `{other}`"),
                ))
            }
        };
        let mut inputs = Vec::new();
        for col in array(content, "inputs") {
            let col_id = str_of(col, "id").ok_or_else(|| {
                invalid(
                    node_field(id, ".content.inputs"),
                    "an input column has no id",
                )
            })?;
            let field = match non_empty_str(col.get("field")) {
                Some(f) => Some(self.standard(&node_field(id, &format!(".inputs[{col_id}]")), f)?),
                None => None,
            };
            inputs.push(InputColumn {
                id: Arc::from(col_id),
                field,
            });
        }
        let mut outputs = Vec::new();
        for col in array(content, "outputs") {
            let col_id = str_of(col, "id").ok_or_else(|| {
                invalid(
                    node_field(id, ".content.outputs"),
                    "an output column has no id",
                )
            })?;
            let field = str_of(col, "field").unwrap_or("").trim();
            let (path, collect) = match field.strip_suffix("[]") {
                Some(base) => (base.trim_end(), true),
                None => (field, false),
            };
            outputs.push(OutputColumn {
                id: Arc::from(col_id),
                path: (!path.is_empty()).then(|| KeyPath::new(path)),
                collect,
            });
        }
        let mut rules = Vec::new();
        for (n, rule) in array(content, "rules").iter().enumerate() {
            let cell = |key: &str| rule.get(key).and_then(Json::as_str).map(str::trim);
            let rule_id = cell("_id").map_or_else(|| n.to_string(), str::to_owned);
            let at = |col: &str| node_field(id, &format!(".rules[{rule_id}][{col}]"));
            let mut in_cells = Vec::with_capacity(inputs.len());
            for col in &inputs {
                in_cells.push(match cell(&col.id) {
                    None | Some("") => Cell::Any,
                    Some(src) if col.field.is_some() => {
                        let r = self.unary(&at(&col.id), src);
                        self.lenient(r).map_or(Cell::Never, Cell::Unary)
                    }
                    Some(src) => {
                        let r = self.standard(&at(&col.id), src);
                        self.lenient(r).map_or(Cell::Never, Cell::Standard)
                    }
                });
            }
            let mut out_cells = Vec::with_capacity(outputs.len());
            for col in &outputs {
                out_cells.push(match cell(&col.id) {
                    None | Some("") => OutCell::Empty,
                    Some(src) => {
                        let r = self.standard(&at(&col.id), src);
                        self.lenient(r).map_or(OutCell::Broken, OutCell::Value)
                    }
                });
            }
            let priority = match rule.get("_priority") {
                Some(Json::Number(p)) => p.as_f64().unwrap_or(0.0),
                Some(Json::String(s)) if !s.trim().is_empty() => s
                    .trim()
                    .parse()
                    .map_err(|_| invalid(at("_priority"), "not a number"))?,
                _ => 0.0,
            };
            rules.push(Rule {
                id: Arc::from(rule_id.as_str()),
                priority,
                inputs: in_cells,
                outputs: out_cells,
            });
        }
        Ok(Table {
            hit_policy,
            inputs,
            outputs,
            rules,
        })
    }

    fn ab_test(&mut self, id: &str, config: &Json) -> CoreResult<AbTest> {
        let key = str_of(config, "key").ok_or_else(|| {
            invalid(
                node_field(id, ".content.config.key"),
                "abTest needs `key`, an expression giving the sticky key",
            )
        })?;
        let percent = config
            .get("challengerPercent")
            .and_then(Json::as_f64)
            .ok_or_else(|| {
                invalid(
                    node_field(id, ".content.config.challengerPercent"),
                    "abTest needs `challengerPercent`, a number from 0 to 100",
                )
            })?;
        if !(0.0..=100.0).contains(&percent) {
            return Err(invalid(
                node_field(id, ".content.config.challengerPercent"),
                "must be between 0 and 100",
            ));
        }
        Ok(AbTest {
            key: self.standard(&node_field(id, ".content.config.key"), key)?,
            challenger_bp: (percent * 100.0).round() as u32,
            salt: str_of(config, "salt").unwrap_or(id).to_owned(),
        })
    }

    fn node(&mut self, raw: &Json) -> CoreResult<Node> {
        let id = str_of(raw, "id").ok_or_else(|| invalid("nodes", "a node has no `id`"))?;
        let name = str_of(raw, "name").unwrap_or(id);
        let type_name = str_of(raw, "type")
            .ok_or_else(|| invalid(node_field(id, ".type"), "missing node type"))?;
        let null = Json::Null;
        let content = raw.get("content").unwrap_or(&null);
        let (type_name, kind): (&'static str, Kind) = match type_name {
            "inputNode" => ("inputNode", Kind::Input),
            "outputNode" => ("outputNode", Kind::Output),
            "switchNode" => {
                let collect = matches!(
                    content.get("hitPolicy").and_then(Json::as_str),
                    Some("collect")
                );
                let mut statements = Vec::new();
                for st in array(content, "statements") {
                    let sid = str_of(st, "id").ok_or_else(|| {
                        invalid(
                            node_field(id, ".content.statements"),
                            "a statement has no id",
                        )
                    })?;
                    let condition = match non_empty_str(st.get("condition")) {
                        Some(c) => {
                            let r =
                                self.standard(&node_field(id, &format!(".statements[{sid}]")), c);
                            Some(self.lenient(r))
                        }
                        None => None,
                    };
                    statements.push(Statement {
                        id: Arc::from(sid),
                        condition,
                    });
                }
                (
                    "switchNode",
                    Kind::Switch {
                        collect,
                        statements,
                    },
                )
            }
            "decisionTableNode" => (
                "decisionTableNode",
                Kind::Table(
                    self.transform(id, content)?,
                    Box::new(self.table(id, content)?),
                ),
            ),
            "expressionNode" => {
                let mut exprs = Vec::new();
                let mut uses_dollar = false;
                for e in array(content, "expressions") {
                    let key = str_of(e, "key").unwrap_or("").trim();
                    let value = str_of(e, "value").unwrap_or("");
                    if key.is_empty() || value.trim().is_empty() {
                        continue;
                    }
                    let compiled =
                        self.standard(&node_field(id, &format!(".expressions[{key}]")), value)?;
                    uses_dollar |= value.contains('$');
                    exprs.push((KeyPath::new(key), compiled));
                }
                let exprs = Expressions {
                    items: exprs,
                    uses_dollar,
                };
                (
                    "expressionNode",
                    Kind::Expression(self.transform(id, content)?, exprs),
                )
            }
            "decisionNode" => {
                let key = non_empty_str(content.get("key")).ok_or_else(|| {
                    invalid(
                        node_field(id, ".content.key"),
                        "a decision node needs the key of the sub-strategy",
                    )
                })?;
                (
                    "decisionNode",
                    Kind::Decision(self.transform(id, content)?, key.to_owned()),
                )
            }
            "customNode" => {
                let kind = non_empty_str(content.get("kind")).ok_or_else(|| {
                    invalid(
                        node_field(id, ".content.kind"),
                        "a custom node needs a kind",
                    )
                })?;
                let config = content.get("config").cloned().unwrap_or(Json::Null);
                if kind == "abTest" {
                    ("customNode", Kind::AbTest(self.ab_test(id, &config)?))
                } else {
                    (
                        "customNode",
                        Kind::Custom {
                            kind: kind.to_owned(),
                            config: Arc::new(config),
                        },
                    )
                }
            }
            "functionNode" => return Err(invalid(
                node_field(id, ".type"),
                "functionNode (JavaScript) is not supported: no JavaScript engine is embedded; \
                     use an expression node or a registered `python` custom node",
            )),
            other => {
                return Err(invalid(
                    node_field(id, ".type"),
                    format!("unsupported node type `{other}`"),
                ))
            }
        };
        let on_error = match content.get("onError") {
            Some(cfg) => OnError {
                default_output: cfg.get("output").map(Value::from),
            },
            None => OnError::default(),
        };
        let timeout = match content.get("timeoutMs") {
            None | Some(Json::Null) => None,
            Some(t) => Some(Duration::from_millis(t.as_u64().ok_or_else(|| {
                invalid(
                    node_field(id, ".content.timeoutMs"),
                    "must be a whole number of milliseconds",
                )
            })?)),
        };
        Ok(Node {
            id: Arc::from(id),
            name: Arc::from(name),
            type_name,
            kind,
            on_error,
            timeout,
            has_error_edge: false,
        })
    }
}

fn array<'a>(v: &'a Json, key: &str) -> &'a [Json] {
    v.get(key)
        .and_then(Json::as_array)
        .map_or(&[], Vec::as_slice)
}

fn str_of<'a>(v: &'a Json, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Json::as_str)
}

fn non_empty_str(v: Option<&Json>) -> Option<&str> {
    v.and_then(Json::as_str).filter(|s| !s.trim().is_empty())
}

/// Parses, validates and compiles a JDM graph.
pub(crate) fn compile(graph: &Json, options: &Options) -> CoreResult<GraphDef> {
    let raw_nodes = graph
        .get("nodes")
        .and_then(Json::as_array)
        .ok_or_else(|| invalid("nodes", "a graph needs a `nodes` array"))?;
    let mut compiler = Compiler {
        options,
        uses_nodes: false,
        warnings: Vec::new(),
    };
    let mut nodes = Vec::with_capacity(raw_nodes.len());
    let mut index: HashMap<Arc<str>, usize> = HashMap::with_capacity(raw_nodes.len());
    for raw in raw_nodes {
        let node = compiler.node(raw)?;
        if index.insert(node.id.clone(), nodes.len()).is_some() {
            return Err(invalid(node_field(&node.id, ""), "duplicate node id"));
        }
        nodes.push(node);
    }
    let inputs = nodes
        .iter()
        .filter(|n| matches!(n.kind, Kind::Input))
        .count();
    if inputs != 1 {
        return Err(invalid(
            "nodes",
            format!("a graph needs exactly one inputNode, found {inputs}"),
        ));
    }

    let mut edges = Vec::new();
    let mut out_edges = vec![Vec::new(); nodes.len()];
    let mut in_edges = vec![Vec::new(); nodes.len()];
    for raw in graph
        .get("edges")
        .and_then(Json::as_array)
        .map_or(&[][..], Vec::as_slice)
    {
        let eid = str_of(raw, "id").unwrap_or("?");
        let end = |key: &str| -> CoreResult<usize> {
            let target = str_of(raw, key)
                .ok_or_else(|| invalid(format!("edges[{eid}].{key}"), "missing"))?;
            index.get(target).copied().ok_or_else(|| {
                invalid(
                    format!("edges[{eid}].{key}"),
                    format!("dangling edge: no node `{target}`"),
                )
            })
        };
        let (source, target) = (end("sourceId")?, end("targetId")?);
        let handle = non_empty_str(raw.get("sourceHandle")).map(Arc::from);
        if handle.as_deref() == Some(ERROR_HANDLE) {
            nodes[source].has_error_edge = true;
        }
        // Newest first, as ZEN's graph library lists a node's edges.
        out_edges[source].insert(0, edges.len());
        in_edges[target].insert(0, edges.len());
        edges.push(Edge {
            source,
            target,
            handle,
        });
    }
    if let Some(at) = find_cycle(nodes.len(), &edges, &out_edges) {
        return Err(invalid(
            "edges",
            format!("the graph has a cycle through node `{}`", nodes[at].id),
        ));
    }
    let sub_decisions = nodes
        .iter()
        .filter_map(|n| match &n.kind {
            Kind::Decision(_, key) => Some(key.clone()),
            _ => None,
        })
        .collect();
    Ok(GraphDef {
        nodes,
        edges,
        out_edges,
        in_edges,
        uses_nodes: compiler.uses_nodes,
        sub_decisions,
        warnings: compiler.warnings,
    })
}

/// A node on a cycle, if there is one (iterative three-colour DFS).
fn find_cycle(n: usize, edges: &[Edge], out: &[Vec<usize>]) -> Option<usize> {
    let mut colour = vec![0u8; n];
    for start in 0..n {
        if colour[start] != 0 {
            continue;
        }
        let mut stack = vec![(start, 0usize)];
        colour[start] = 1;
        while let Some(&mut (node, ref mut next)) = stack.last_mut() {
            if let Some(&e) = out[node].get(*next) {
                *next += 1;
                let t = edges[e].target;
                match colour[t] {
                    0 => {
                        colour[t] = 1;
                        stack.push((t, 0));
                    }
                    1 => return Some(t),
                    _ => {}
                }
            } else {
                colour[node] = 2;
                stack.pop();
            }
        }
    }
    None
}
