//! Element filters: which events update an element.
//!
//! The expression language lives elsewhere; aggregates see a filter only through
//! [`EventFilter`], so compiled expressions can be plugged in later. Until then the
//! built-in [`FieldFilter`] covers the seed's filters: a conjunction (or disjunction)
//! of comparisons of one attribute with literals, given as structured data.

use super::value::{AttrPath, EventView, Val};
use crate::error::{CoreError, CoreResult};
use serde::Deserialize;
use serde_json::Value;
use std::fmt::Debug;

/// Decides whether an event updates an element (or counts for a built-in parameter).
pub trait EventFilter: Send + Sync + Debug {
    /// `true` when `event` passes. Errors are reported to the caller of `apply`.
    fn matches(&self, event: &Value) -> CoreResult<bool>;

    /// `true` when the event seen through `view` passes. The default needs the whole
    /// document (see [`Self::needs_document`]).
    fn matches_view(&self, view: &EventView<'_>) -> CoreResult<bool> {
        match view.document() {
            Some(doc) => self.matches(doc),
            None => Err(CoreError::Internal {
                reason: "a filter needs the whole event document, which was not kept".into(),
            }),
        }
    }

    /// Whether [`Self::matches_view`] needs the whole document (not just the slots
    /// of the paths given to [`Self::visit_paths`]).
    fn needs_document(&self) -> bool {
        true
    }

    /// Calls `f` on every attribute path the filter reads, so the store can give
    /// each a slot in the event view.
    fn visit_paths(&mut self, _f: &mut dyn FnMut(&mut AttrPath)) {}

    /// A text equal for two filters exactly when they pass the same events, so the
    /// store evaluates a filter shared by several elements once per event; `None`
    /// (the default): never shared.
    fn identity(&self) -> Option<String> {
        None
    }
}

/// A filter as written in a definition: `{all: [...]}` or `{any: [...]}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterSpec {
    /// Every condition must hold.
    #[serde(default)]
    pub all: Vec<CondSpec>,
    /// At least one condition must hold (when given).
    #[serde(default)]
    pub any: Vec<CondSpec>,
}

/// One condition on one attribute; exactly one operator is given.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CondSpec {
    /// Dotted attribute path.
    pub attr: String,
    /// Equal to a literal (numbers compare numerically, strings exactly).
    pub eq: Option<Value>,
    /// Not equal to a literal (a missing attribute is "not equal").
    pub ne: Option<Value>,
    /// Equal to one of the literals.
    #[serde(rename = "in")]
    pub in_: Option<Vec<Value>>,
    /// Equal to none of the literals (a missing attribute passes).
    pub not_in: Option<Vec<Value>>,
    /// Numerically greater than.
    pub gt: Option<f64>,
    /// Numerically greater than or equal to.
    pub gte: Option<f64>,
    /// Numerically less than.
    pub lt: Option<f64>,
    /// Numerically less than or equal to.
    pub lte: Option<f64>,
    /// Present and not null (`true`) or absent/null (`false`).
    pub exists: Option<bool>,
}

#[derive(Debug)]
enum Op {
    Eq(Value),
    Ne(Value),
    In(Vec<Value>),
    NotIn(Vec<Value>),
    Gt(f64),
    Gte(f64),
    Lt(f64),
    Lte(f64),
    Exists(bool),
}

#[derive(Debug)]
struct Cond {
    path: AttrPath,
    op: Op,
}

/// The built-in structured filter.
#[derive(Debug)]
pub struct FieldFilter {
    all: Vec<Cond>,
    any: Vec<Cond>,
}

impl FieldFilter {
    /// Compiles a spec; `field` is the definition path of the filter, for errors.
    pub fn compile(spec: &FilterSpec, field: &str) -> CoreResult<Self> {
        if spec.all.is_empty() && spec.any.is_empty() {
            return Err(CoreError::invalid(
                field,
                "a filter needs at least one condition under `all` or `any`",
            ));
        }
        let conds = |list: &[CondSpec], name: &str| -> CoreResult<Vec<Cond>> {
            list.iter()
                .enumerate()
                .map(|(i, c)| compile_cond(c, &format!("{field}.{name}[{i}]")))
                .collect()
        };
        Ok(Self {
            all: conds(&spec.all, "all")?,
            any: conds(&spec.any, "any")?,
        })
    }
}

fn compile_cond(c: &CondSpec, field: &str) -> CoreResult<Cond> {
    let path = AttrPath::parse(&c.attr, &format!("{field}.attr"))?;
    let mut ops = Vec::new();
    let num = |x: f64, name: &str| {
        if x.is_finite() {
            Ok(x)
        } else {
            Err(CoreError::invalid(
                format!("{field}.{name}"),
                "must be a finite number",
            ))
        }
    };
    if let Some(v) = &c.eq {
        ops.push(Op::Eq(v.clone()));
    }
    if let Some(v) = &c.ne {
        ops.push(Op::Ne(v.clone()));
    }
    if let Some(v) = &c.in_ {
        ops.push(Op::In(v.clone()));
    }
    if let Some(v) = &c.not_in {
        ops.push(Op::NotIn(v.clone()));
    }
    if let Some(x) = c.gt {
        ops.push(Op::Gt(num(x, "gt")?));
    }
    if let Some(x) = c.gte {
        ops.push(Op::Gte(num(x, "gte")?));
    }
    if let Some(x) = c.lt {
        ops.push(Op::Lt(num(x, "lt")?));
    }
    if let Some(x) = c.lte {
        ops.push(Op::Lte(num(x, "lte")?));
    }
    if let Some(b) = c.exists {
        ops.push(Op::Exists(b));
    }
    if ops.len() != 1 {
        return Err(CoreError::invalid(
            field,
            format!(
                "a condition has exactly one operator (eq, ne, in, not_in, gt, gte, lt, lte, exists), got {}",
                ops.len()
            ),
        ));
    }
    let op = ops
        .pop()
        .ok_or_else(|| CoreError::invalid(field, "no operator"))?;
    Ok(Cond { path, op })
}

/// JSON equality where numbers compare by value (`1 == 1.0`).
pub fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

fn as_number(v: &Val<'_>) -> Option<f64> {
    match v {
        Val::Str(s) => s.trim().parse().ok(),
        other => other.as_f64(),
    }
}

impl Cond {
    fn holds(&self, event: &Value) -> bool {
        self.holds_value(self.path.get(event).and_then(Val::from_json).as_ref())
    }

    #[inline]
    fn holds_value(&self, v: Option<&Val<'_>>) -> bool {
        match (&self.op, v) {
            (Op::Exists(want), v) => v.is_some() == *want,
            (Op::Ne(lit), v) => v.map_or(true, |v| !v.eq_json(lit)),
            (Op::NotIn(lits), v) => v.map_or(true, |v| !lits.iter().any(|l| v.eq_json(l))),
            (_, None) => false,
            (Op::Eq(lit), Some(v)) => v.eq_json(lit),
            (Op::In(lits), Some(v)) => lits.iter().any(|l| v.eq_json(l)),
            (Op::Gt(x), Some(v)) => as_number(v).is_some_and(|n| n > *x),
            (Op::Gte(x), Some(v)) => as_number(v).is_some_and(|n| n >= *x),
            (Op::Lt(x), Some(v)) => as_number(v).is_some_and(|n| n < *x),
            (Op::Lte(x), Some(v)) => as_number(v).is_some_and(|n| n <= *x),
        }
    }
}

impl EventFilter for FieldFilter {
    fn identity(&self) -> Option<String> {
        // Every field of the compiled conditions (operators, literals, paths).
        Some(format!("{self:?}"))
    }

    fn matches(&self, event: &Value) -> CoreResult<bool> {
        Ok(self.all.iter().all(|c| c.holds(event))
            && (self.any.is_empty() || self.any.iter().any(|c| c.holds(event))))
    }

    fn matches_view(&self, view: &EventView<'_>) -> CoreResult<bool> {
        let holds = |c: &Cond| c.holds_value(c.path.at(view));
        Ok(self.all.iter().all(holds) && (self.any.is_empty() || self.any.iter().any(holds)))
    }

    fn needs_document(&self) -> bool {
        false
    }

    fn visit_paths(&mut self, f: &mut dyn FnMut(&mut AttrPath)) {
        for c in self.all.iter_mut().chain(self.any.iter_mut()) {
            f(&mut c.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn filter(spec: Value) -> FieldFilter {
        let spec: FilterSpec = serde_json::from_value(spec).unwrap();
        FieldFilter::compile(&spec, "filter").unwrap()
    }

    #[test]
    fn conjunction_of_equalities() {
        let f = filter(json!({"all": [
            {"attr": "common.subtype", "eq": "LOAN_APP_RESULT"},
            {"attr": "ext.requestResult", "eq": "REJECTED"}
        ]}));
        let ev =
            json!({"common": {"subtype": "LOAN_APP_RESULT"}, "ext": {"requestResult": "REJECTED"}});
        assert!(f.matches(&ev).unwrap());
        let ev =
            json!({"common": {"subtype": "LOAN_APP_RESULT"}, "ext": {"requestResult": "APPROVED"}});
        assert!(!f.matches(&ev).unwrap());
        assert!(!f.matches(&json!({})).unwrap());
    }

    #[test]
    fn ranges_lists_and_any() {
        let f = filter(json!({
            "all": [{"attr": "amount", "gte": 100}, {"attr": "amount", "lt": 5000}],
            "any": [{"attr": "currency", "in": ["RUB", "USD"]}, {"attr": "ip", "exists": true}]
        }));
        assert!(f
            .matches(&json!({"amount": 100, "currency": "RUB"}))
            .unwrap());
        assert!(f
            .matches(&json!({"amount": 4999.5, "ip": "1.2.3.4"}))
            .unwrap());
        assert!(!f
            .matches(&json!({"amount": 5000, "currency": "RUB"}))
            .unwrap());
        assert!(!f
            .matches(&json!({"amount": 200, "currency": "EUR"}))
            .unwrap());
    }

    #[test]
    fn a_condition_needs_exactly_one_operator() {
        let spec: FilterSpec =
            serde_json::from_value(json!({"all": [{"attr": "a", "eq": 1, "ne": 2}]})).unwrap();
        let err = FieldFilter::compile(&spec, "objects[0].elements[0].filter").unwrap_err();
        assert!(
            matches!(err, CoreError::InvalidArgument { ref field, .. } if field == "objects[0].elements[0].filter.all[0]")
        );
    }
}
