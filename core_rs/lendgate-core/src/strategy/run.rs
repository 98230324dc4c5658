//! One evaluation of a compiled graph: ZEN's walk (topological, from the input
//! node, pruning the branches a switch did not take) plus our error handling.

use std::sync::Arc;
use std::time::Instant;

use serde_json::Value as Json;

use super::model::{
    AbTest, Cell, Expressions, GraphDef, HitPolicy, Kind, Node, OutCell, Rule, Table, Transform,
    ERROR_HANDLE,
};
use super::ops::{
    dot_insert, empty_object, is_true, merge, object_for, same, set_field, with_fields,
};
use super::{AbPath, EvalOptions, NodeTrace};
use crate::error::{CoreError, CoreResult};
use crate::expr::{Map, Value};

/// ZEN stops walking after this many resets of the walk (one per pruning).
const MAX_RESETS: usize = 1_000;

pub(crate) struct Outcome {
    pub result: CoreResult<Value>,
    pub trace: Vec<NodeTrace>,
    pub ab_paths: Vec<AbPath>,
}

pub(crate) struct Run<'g, 'o> {
    def: &'g GraphDef,
    opts: &'o EvalOptions<'o>,
    depth: u8,
    parent_nodes: Option<Value>,
    edge_alive: Vec<bool>,
    node_alive: Vec<bool>,
    data: Vec<Option<Value>>,
    nodes_view: Vec<Option<Value>>,
    visited: Vec<bool>,
    routed: Vec<bool>,
    to_visit: Vec<usize>,
    resets: usize,
    trace: Vec<NodeTrace>,
    ab_paths: Vec<AbPath>,
    handler_calls: u64,
}

/// Why a node did not produce an output.
type NodeResult = Result<Value, String>;

impl<'g, 'o> Run<'g, 'o> {
    pub(crate) fn new(
        def: &'g GraphDef,
        opts: &'o EvalOptions<'o>,
        depth: u8,
        parent_nodes: Option<Value>,
    ) -> Self {
        let n = def.nodes.len();
        Self {
            def,
            opts,
            depth,
            parent_nodes,
            edge_alive: vec![true; def.edges.len()],
            node_alive: vec![true; n],
            data: vec![None; n],
            nodes_view: vec![None; n],
            visited: vec![false; n],
            routed: vec![false; n],
            to_visit: Vec::new(),
            resets: 0,
            trace: Vec::new(),
            ab_paths: Vec::new(),
            handler_calls: 0,
        }
    }

    pub(crate) fn evaluate(mut self, input: &Value) -> Outcome {
        let result = self.walk(input);
        Outcome {
            result,
            trace: self.trace,
            ab_paths: self.ab_paths,
        }
    }

    fn walk(&mut self, input: &Value) -> CoreResult<Value> {
        if self.depth >= self.opts.max_depth {
            return Err(CoreError::NodeFailed {
                node_id: String::new(),
                reason: format!(
                    "sub-strategy depth limit ({}) exceeded",
                    self.opts.max_depth
                ),
            });
        }
        self.init_inputs();
        while let Some(nid) = self.next(input)? {
            if self.data[nid].is_some() {
                continue;
            }
            let node = &self.def.nodes[nid];
            let node_input = match node.kind {
                Kind::Input => input.clone(),
                _ => self.incoming(nid),
            };
            let (output, _) = self.run_node(nid, node_input)?;
            self.store(nid, output);
            if matches!(node.kind, Kind::Output) {
                break;
            }
        }
        Ok(self.ending())
    }

    fn store(&mut self, nid: usize, output: Value) {
        if matches!(self.def.nodes[nid].kind, Kind::Input) {
            if let Some(parent) = &self.parent_nodes {
                self.nodes_view[nid] = Some(with_fields(&output, &[("$nodes", parent.clone())]));
            }
        }
        self.data[nid] = Some(output);
    }

    fn init_inputs(&mut self) {
        for (i, n) in self.def.nodes.iter().enumerate() {
            if self.node_alive[i] && matches!(n.kind, Kind::Input) {
                self.to_visit.push(i);
            }
        }
    }

    fn reset(&mut self) {
        self.visited.iter_mut().for_each(|v| *v = false);
        self.to_visit.clear();
        self.init_inputs();
        self.resets += 1;
    }

    fn alive_in(&self, nid: usize) -> impl Iterator<Item = usize> + '_ {
        self.def.in_edges[nid]
            .iter()
            .copied()
            .filter(|&e| self.edge_alive[e])
    }

    fn alive_out(&self, nid: usize) -> impl Iterator<Item = usize> + '_ {
        self.def.out_edges[nid]
            .iter()
            .copied()
            .filter(|&e| self.edge_alive[e])
    }

    /// The next node to run, in ZEN's order; routing nodes (switch, A/B test, nodes
    /// with an error edge) run here because their result decides the walk.
    fn next(&mut self, input: &Value) -> CoreResult<Option<usize>> {
        if self.resets >= MAX_RESETS {
            return Ok(None);
        }
        while let Some(nid) = self.to_visit.pop() {
            if self.visited[nid] {
                continue;
            }
            if !self.node_alive[nid] {
                return Ok(None);
            }
            let unresolved: Vec<usize> = self
                .alive_in(nid)
                .map(|e| self.def.edges[e].source)
                .filter(|&s| !self.visited[s])
                .collect();
            if !unresolved.is_empty() {
                self.to_visit.push(nid);
                self.to_visit.extend(unresolved);
                continue;
            }
            self.visited[nid] = true;

            let node = &self.def.nodes[nid];
            let routing =
                matches!(node.kind, Kind::Switch { .. } | Kind::AbTest(_)) || node.has_error_edge;
            if routing && !self.routed[nid] {
                self.routed[nid] = true;
                let node_input = match node.kind {
                    Kind::Input => input.clone(),
                    _ => self.incoming(nid),
                };
                let (output, route) = self.run_node(nid, node_input)?;
                self.data[nid] = Some(output);
                let doomed: Vec<usize> = self
                    .alive_out(nid)
                    .filter(|&e| !route.keeps(self.def.edges[e].handle.as_deref()))
                    .collect();
                if !doomed.is_empty() {
                    for e in doomed {
                        self.remove_edge(e);
                    }
                    self.reset();
                    continue;
                }
            }
            let successors: Vec<usize> = self
                .alive_out(nid)
                .map(|e| self.def.edges[e].target)
                .collect();
            self.to_visit.extend(successors);
            return Ok(Some(nid));
        }
        Ok(None)
    }

    /// Removes an edge, then whatever only it kept connected (as ZEN does).
    fn remove_edge(&mut self, e: usize) {
        if !self.edge_alive[e] {
            return;
        }
        self.edge_alive[e] = false;
        let edge = &self.def.edges[e];
        let (source, target) = (edge.source, edge.target);
        for (nid, incoming) in [(target, true), (source, false)] {
            let left = if incoming {
                self.alive_in(nid).count()
            } else {
                self.alive_out(nid).count()
            };
            if left == 0 {
                let other: Vec<usize> = if incoming {
                    self.alive_out(nid).collect()
                } else {
                    self.alive_in(nid).collect()
                };
                for o in other {
                    self.remove_edge(o);
                }
                if self.alive_in(nid).count() + self.alive_out(nid).count() == 0 {
                    self.node_alive[nid] = false;
                }
            }
        }
    }

    /// The merged outputs of the node's predecessors.
    fn incoming(&self, nid: usize) -> Value {
        let mut sources = self
            .alive_in(nid)
            .filter_map(|e| self.data[self.def.edges[e].source].as_ref());
        let Some(first) = sources.next() else {
            return empty_object();
        };
        let head = match first {
            Value::Object(_) | Value::Array(_) => first.clone(),
            _ => empty_object(),
        };
        sources.fold(head, merge)
    }

    /// The result: the merged outputs of the visited nodes that lead nowhere.
    fn ending(&self) -> Value {
        (0..self.def.nodes.len())
            .filter(|&n| self.visited[n] && self.node_alive[n] && self.alive_out(n).count() == 0)
            .filter_map(|n| self.data[n].as_ref())
            .fold(empty_object(), merge)
    }

    /// `$nodes`: every node's output so far, by node name.
    fn nodes_context(&self) -> Value {
        let mut map = Map::default();
        for (i, node) in self.def.nodes.iter().enumerate() {
            if let Some(d) = self.nodes_view[i].as_ref().or(self.data[i].as_ref()) {
                map.insert(node.name.clone(), d.clone());
            }
        }
        Value::object(map)
    }

    /// What an expression sees: the node's input, plus `$nodes` when the graph uses it.
    fn env(&self, input: &Value) -> Value {
        if self.def.uses_nodes {
            with_fields(input, &[("$nodes", self.nodes_context())])
        } else {
            input.clone()
        }
    }

    /// Runs one node with its error handling and records its trace.
    fn run_node(&mut self, nid: usize, input: Value) -> CoreResult<(Value, Route)> {
        let def = self.def;
        let node = &def.nodes[nid];
        if self.opts.deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(CoreError::NodeFailed {
                node_id: node.id.to_string(),
                reason: "the evaluation deadline passed".into(),
            });
        }
        let start = Instant::now();
        let trace_from = self.trace.len();
        let mut detail = Json::Null;
        let (result, route) = match self.handle(node, &input, &mut detail) {
            Ok((value, route)) => (Ok(value), route),
            Err(reason) => (Err(reason), Route::All),
        };
        let elapsed = start.elapsed();
        let result = match (result, node.timeout) {
            (Ok(_), Some(limit)) if elapsed > limit => Err(format!(
                "timeout after {} ms (the node took {} ms)",
                limit.as_millis(),
                elapsed.as_millis()
            )),
            (r, _) => r,
        };
        // Sub-decision traces were appended meanwhile; nest them under this node.
        if self.opts.trace && self.trace.len() > trace_from {
            let nested: Vec<NodeTrace> = self.trace.drain(trace_from..).collect();
            detail = Json::Array(nested.iter().map(NodeTrace::to_json).collect());
        } else {
            self.trace.truncate(trace_from);
        }
        let (output, route, error) = match result {
            Ok(v) => (v, route, None),
            Err(reason) if node.has_error_edge => {
                let info = Value::from(&serde_json::json!({
                    "nodeId": node.id.as_ref(), "message": reason.as_str()
                }));
                let out = with_fields(&input, &[("$error", info)]);
                (out, Route::Error, Some(reason))
            }
            Err(reason) => match &node.on_error.default_output {
                Some(default) => (default.clone(), Route::All, Some(reason)),
                None => {
                    self.record(
                        node,
                        &input,
                        &Value::Null,
                        Some(reason.clone()),
                        start,
                        detail,
                    );
                    return Err(CoreError::NodeFailed {
                        node_id: node.id.to_string(),
                        reason,
                    });
                }
            },
        };
        let route = match (route, node.has_error_edge) {
            (Route::All, true) => Route::NotError,
            (r, _) => r,
        };
        self.record(node, &input, &output, error, start, detail);
        Ok((output, route))
    }

    fn record(
        &mut self,
        node: &Node,
        input: &Value,
        output: &Value,
        error: Option<String>,
        start: Instant,
        detail: Json,
    ) {
        if !self.opts.trace {
            return;
        }
        let order = self.trace.len();
        self.trace.push(NodeTrace {
            node_id: node.id.to_string(),
            name: node.name.to_string(),
            kind: node.type_name,
            input: input.to_json(),
            output: output.to_json(),
            error,
            duration: start.elapsed(),
            order,
            detail,
        });
    }

    fn charge(&mut self) -> Result<(), String> {
        self.handler_calls += 1;
        if self.handler_calls > self.opts.max_node_runs {
            return Err(format!(
                "the evaluation ran more than {} node steps",
                self.opts.max_node_runs
            ));
        }
        Ok(())
    }

    fn handle(
        &mut self,
        node: &'g Node,
        input: &Value,
        detail: &mut Json,
    ) -> Result<(Value, Route), String> {
        self.charge()?;
        match &node.kind {
            Kind::Input | Kind::Output => Ok((input.clone(), Route::All)),
            Kind::Switch {
                collect,
                statements,
            } => {
                let env = self.env(input);
                let mut taken = Vec::new();
                for st in statements {
                    let pass = st.condition.as_ref().map_or(true, |c| {
                        c.as_ref()
                            .is_some_and(|c| c.evaluate_value(&env).is_ok_and(|v| is_true(&v)))
                    });
                    if pass {
                        taken.push(st.id.clone());
                        if !collect {
                            break;
                        }
                    }
                }
                if self.opts.trace {
                    *detail = serde_json::json!({
                        "statements": taken.iter().map(|s| s.as_ref()).collect::<Vec<_>>()
                    });
                }
                Ok((input.clone(), Route::Handles(taken)))
            }
            Kind::AbTest(ab) => {
                let path = self.ab_path(ab, input)?;
                self.ab_paths.push(AbPath {
                    node_id: node.id.to_string(),
                    path,
                });
                *detail = serde_json::json!({ "path": path });
                Ok((input.clone(), Route::Handles(vec![Arc::from(path)])))
            }
            Kind::Table(t, table) => {
                let mut matched = Vec::new();
                let out = self.transformed(t, input, &mut |run, item| {
                    run.table(table, &item, &mut matched)
                })?;
                if self.opts.trace {
                    let ids: Vec<&str> = matched.iter().map(|id| id.as_ref()).collect();
                    *detail = serde_json::json!({ "matchedRules": ids });
                }
                Ok((out, Route::All))
            }
            Kind::Expression(t, exprs) => {
                let out =
                    self.transformed(t, input, &mut |run, item| run.expressions(exprs, &item))?;
                Ok((out, Route::All))
            }
            Kind::Decision(t, key) => {
                let out = self.transformed(t, input, &mut |run, item| run.decision(key, &item))?;
                Ok((out, Route::All))
            }
            Kind::Custom { kind, config } => {
                let now = Instant::now();
                let left = self.opts.deadline.map(|d| d.saturating_duration_since(now));
                let timeout = match (node.timeout, left) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                let out = self
                    .opts
                    .host
                    .custom(kind, config, &input.to_json(), timeout)
                    .map_err(|e| format!("custom node `{kind}`: {e}"))?;
                Ok((Value::from(&out), Route::All))
            }
        }
    }

    /// `inputField`, `executionMode: loop`, `outputPath` and `passThrough` around a handler.
    fn transformed(
        &mut self,
        t: &Transform,
        input: &Value,
        f: &mut dyn FnMut(&mut Self, Value) -> NodeResult,
    ) -> NodeResult {
        let source = match &t.input_field {
            None => input.clone(),
            Some(e) => e
                .evaluate_value(&self.env(input))
                .map_err(|err| format!("Failed to evaluate expression: {err}"))?,
        };
        let mut output = if t.loop_mode {
            let Value::Array(items) = &source else {
                return Err("Expected an array".into());
            };
            let mut out = Vec::with_capacity(items.len());
            for item in items.iter() {
                self.charge()?;
                let r = f(self, item.clone())?;
                out.push(if t.pass_through {
                    merge(item.clone(), &r)
                } else {
                    r
                });
            }
            Value::array(out)
        } else {
            f(self, source)?
        };
        if let Some(path) = &t.output_path {
            let mut wrapped = empty_object();
            dot_insert(&mut wrapped, path, output);
            output = wrapped;
        }
        if t.pass_through {
            output = merge(input.clone(), &output);
        }
        Ok(output)
    }

    fn expressions(&self, exprs: &Expressions, input: &Value) -> NodeResult {
        // A non-object input is seen as an empty object with `$`.
        let with_dollar = exprs.uses_dollar || !matches!(input, Value::Object(_));
        let mut env = if with_dollar {
            let mut fields = vec![("$", empty_object())];
            if self.def.uses_nodes {
                fields.push(("$nodes", self.nodes_context()));
            }
            with_fields(input, &fields)
        } else {
            // Nothing reads `$`: the input is the environment as it is (no copy).
            self.env(input)
        };
        let mut result = object_for(exprs.items.len());
        for (key, e) in &exprs.items {
            let v = e.evaluate_value(&env).map_err(|err| {
                format!("Failed to evaluate expression \"{}\": {err}", e.source())
            })?;
            if with_dollar {
                if let Value::Object(m) = &mut env {
                    if let Some(dollar) = Arc::make_mut(m).get_mut("$") {
                        dot_insert(dollar, key, v.clone());
                    }
                }
            }
            dot_insert(&mut result, key, v);
        }
        Ok(result)
    }

    fn table(&self, t: &Table, input: &Value, matched: &mut Vec<Arc<str>>) -> NodeResult {
        let env = self.env(input);
        let subjects: Vec<Option<Result<Value, ()>>> = t
            .inputs
            .iter()
            .map(|c| {
                c.field
                    .as_ref()
                    .map(|f| f.evaluate_value(&env).map_err(|_| ()))
            })
            .collect();
        let mut cx = TableCx {
            env_subject: None,
            env,
            subjects,
        };
        let first_collect = t.hit_policy == HitPolicy::First && t.outputs.iter().any(|o| o.collect);
        if first_collect {
            return Ok(self.first_hit_collect(t, &mut cx, matched));
        }
        let mut hits: Vec<(&Rule, Value)> = Vec::new();
        for rule in &t.rules {
            if !cx.matches(rule) {
                continue;
            }
            let Some(out) = cx.row_output(t, rule) else {
                continue;
            };
            matched.push(rule.id.clone());
            hits.push((rule, out));
            if t.hit_policy == HitPolicy::First {
                break;
            }
        }
        Ok(match t.hit_policy {
            HitPolicy::First => hits.pop().map_or(Value::Null, |h| h.1),
            HitPolicy::Collect | HitPolicy::RuleOrder => {
                Value::array(hits.into_iter().map(|h| h.1).collect())
            }
            HitPolicy::Unique => {
                if hits.len() > 1 {
                    return Err(format!(
                        "hit policy `unique`: rules `{}` and `{}` both match",
                        hits[0].0.id, hits[1].0.id
                    ));
                }
                hits.pop().map_or(Value::Null, |h| h.1)
            }
            HitPolicy::Any => {
                if let Some((other, _)) = hits.iter().find(|h| !same(&h.1, &hits[0].1)) {
                    return Err(format!(
                        "hit policy `any`: rules `{}` and `{}` match with different outputs",
                        hits[0].0.id, other.id
                    ));
                }
                hits.into_iter().next().map_or(Value::Null, |h| h.1)
            }
            HitPolicy::Priority => {
                let mut best: Option<(&Rule, Value)> = None;
                for h in hits {
                    if best.as_ref().map_or(true, |b| h.0.priority > b.0.priority) {
                        best = Some(h);
                    }
                }
                best.map_or(Value::Null, |h| h.1)
            }
        })
    }

    /// `first` with `field[]` columns: scalars of the first matching row, arrays of
    /// the values of every matching row (as ZEN).
    fn first_hit_collect(&self, t: &Table, cx: &mut TableCx, matched: &mut Vec<Arc<str>>) -> Value {
        let mut scalars: Option<Value> = None;
        let mut collected: Vec<Vec<Value>> = vec![Vec::new(); t.outputs.len()];
        let mut any = false;
        'rows: for rule in &t.rules {
            if !cx.matches(rule) {
                continue;
            }
            let include_scalars = scalars.is_none();
            let mut row_scalars = empty_object();
            let mut row_collects = Vec::new();
            for (i, col) in t.outputs.iter().enumerate() {
                let Some(path) = &col.path else { continue };
                if !col.collect && !include_scalars {
                    continue;
                }
                let v = match &rule.outputs[i] {
                    OutCell::Empty => continue,
                    OutCell::Broken => continue 'rows,
                    OutCell::Value(e) => match e.evaluate_value(&cx.env) {
                        Ok(v) => v,
                        Err(_) => continue 'rows,
                    },
                };
                if col.collect {
                    row_collects.push((i, v));
                } else {
                    dot_insert(&mut row_scalars, path, v);
                }
            }
            any = true;
            matched.push(rule.id.clone());
            if include_scalars {
                scalars = Some(row_scalars);
            }
            for (i, v) in row_collects {
                collected[i].push(v);
            }
        }
        if !any {
            return Value::Null;
        }
        let mut out = scalars.unwrap_or_else(empty_object);
        for (i, col) in t.outputs.iter().enumerate() {
            if let (true, Some(path)) = (col.collect, &col.path) {
                dot_insert(
                    &mut out,
                    path,
                    Value::array(std::mem::take(&mut collected[i])),
                );
            }
        }
        out
    }

    fn decision(&mut self, key: &str, input: &Value) -> NodeResult {
        let child = self.opts.host.load(key).map_err(|e| e.to_string())?;
        let parent = child.def.uses_nodes.then(|| self.nodes_context());
        let outcome = Run::new(&child.def, self.opts, self.depth + 1, parent).evaluate(input);
        self.trace.extend(outcome.trace);
        self.ab_paths.extend(outcome.ab_paths);
        outcome.result.map_err(|e| e.to_string())
    }

    fn ab_path(&self, ab: &AbTest, input: &Value) -> Result<&'static str, String> {
        let key = ab
            .key
            .evaluate_value(&self.env(input))
            .map_err(|e| format!("abTest key: {e}"))?;
        let key = match key {
            Value::String(s) => s.to_string(),
            Value::Null => return Err("abTest key is null".into()),
            other => other.to_json().to_string(),
        };
        Ok(if ab_bucket(&ab.salt, &key) < ab.challenger_bp {
            "challenger"
        } else {
            "champion"
        })
    }
}

/// The bucket (0..10000) of a sticky key: FNV-1a 64 of `salt:key`, so the same key
/// always takes the same path, on every server and across restarts.
pub(crate) fn ab_bucket(salt: &str, key: &str) -> u32 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in salt.bytes().chain([b':']).chain(key.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h % 10_000) as u32
}

/// Which outgoing edges a routing node keeps.
enum Route {
    All,
    /// Edges whose handle is one of these (a switch drops unlabelled edges, as ZEN).
    Handles(Vec<Arc<str>>),
    /// The node failed: only its error edges.
    Error,
    /// The node succeeded: every edge but its error edges.
    NotError,
}

impl Route {
    fn keeps(&self, handle: Option<&str>) -> bool {
        match self {
            Route::All => true,
            Route::Handles(h) => handle.is_some_and(|x| h.iter().any(|s| s.as_ref() == x)),
            Route::Error => handle == Some(ERROR_HANDLE),
            Route::NotError => handle != Some(ERROR_HANDLE),
        }
    }
}

/// The per-evaluation state of a decision table.
struct TableCx {
    env: Value,
    /// `env` plus `$`, set to each column's subject in turn; built on first use, for
    /// cells that are not a direct comparison with a constant.
    env_subject: Option<Value>,
    /// Each input column's subject; `None` for a column without a field, `Err` when
    /// the field failed to evaluate (its cells then never match).
    subjects: Vec<Option<Result<Value, ()>>>,
}

impl TableCx {
    fn matches(&mut self, rule: &Rule) -> bool {
        for (i, cell) in rule.inputs.iter().enumerate() {
            let pass = match cell {
                Cell::Any => true,
                Cell::Never => false,
                Cell::Standard(e) => e.evaluate_value(&self.env).is_ok_and(|v| is_true(&v)),
                Cell::Unary(u) => match &self.subjects[i] {
                    Some(Ok(subject)) => match u.test_subject(subject) {
                        Some(pass) => pass.unwrap_or(false),
                        None => {
                            let env = self.env_subject.get_or_insert_with(|| {
                                with_fields(&self.env, &[("$", Value::Null)])
                            });
                            set_field(env, "$", subject.clone());
                            u.evaluate_value(env).unwrap_or(false)
                        }
                    },
                    _ => false,
                },
            };
            if !pass {
                return false;
            }
        }
        true
    }

    /// The row's output object; `None` when an output cell fails (ZEN skips the row).
    fn row_output(&self, t: &Table, rule: &Rule) -> Option<Value> {
        let mut out = object_for(t.outputs.len());
        for (i, col) in t.outputs.iter().enumerate() {
            let Some(path) = &col.path else { continue };
            let v = match &rule.outputs[i] {
                OutCell::Empty => continue,
                OutCell::Broken => return None,
                OutCell::Value(e) => e.evaluate_value(&self.env).ok()?,
            };
            dot_insert(&mut out, path, v);
        }
        Some(out)
    }
}
