//! Expression filters for aggregate elements: the expression engine plugged into the
//! aggregates' [`ExprCompiler`] seam, so a definition may say
//! `filter_expr: 'common.subtype == "LOAN_APP_CREATE" and ext.requestResult == "REJECTED"'`.
//!
//! The expression sees the aggregates' event document. A filter that does not give
//! `true` on an event — `false`, another type, or an evaluation error such as `null > 1`
//! on an event without the attribute — does not match: an administrator's filter must
//! never make a bank's check fail.

use crate::aggregates::{EventFilter, ExprCompiler};
use crate::error::{CoreError, CoreResult};
use crate::expr::{Expression, Value};

/// Compiles `filter_expr` fields with the expression engine.
#[derive(Debug, Default, Clone, Copy)]
pub struct ExprFilters;

#[derive(Debug)]
struct ExprFilter(Expression);

impl EventFilter for ExprFilter {
    fn matches(&self, event: &serde_json::Value) -> CoreResult<bool> {
        Ok(matches!(
            self.0.evaluate_value(&Value::from(event)),
            Ok(Value::Bool(true))
        ))
    }
}

impl ExprCompiler for ExprFilters {
    fn compile(&self, expr: &str, field: &str) -> CoreResult<Box<dyn EventFilter>> {
        if expr.trim().is_empty() {
            return Err(CoreError::invalid(field, "an empty filter expression"));
        }
        let compiled = Expression::compile(expr).map_err(|e| match e {
            CoreError::ExpressionSyntax { position, reason } => CoreError::invalid(
                field,
                format!("syntax error at position {position}: {reason}"),
            ),
            other => CoreError::invalid(field, other.to_string()),
        })?;
        Ok(Box::new(ExprFilter(compiled)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregates::{AggregateStore, Definitions, Scalar};

    fn store(filter: &str) -> CoreResult<AggregateStore> {
        let defs = serde_json::json!({
            "objects": [{"name": "Phone", "key": [{"attr": "consumer.mobile", "kind": "phone"}],
                "elements": [{"name": "n", "kind": "count", "filter_expr": filter}]}],
            "params": [{"fn": "calc_aggregate", "name": "n", "object": "Phone",
                "element": "n", "agg": "value"}]
        });
        Ok(AggregateStore::new(Definitions::from_json_with(
            &defs.to_string(),
            Some(&ExprFilters),
        )?))
    }

    fn apply(s: &AggregateStore, t: i64, subtype: serde_json::Value) -> Scalar {
        const T0: i64 = 1_767_225_600_000; // 2026-01-01
        let event = serde_json::json!({"common": {"eventTime": T0 + t, "subtype": subtype, "n": 3},
            "consumer": {"mobile": "+7 900 000-00-01"}});
        s.apply_value(&event).unwrap().remove(0)
    }

    #[test]
    fn expression_filters_select_events_and_errors_do_not_match() {
        let s = store(r#"common.subtype == "A" and common.n > 2"#).unwrap();
        assert_eq!(apply(&s, 1_000, "A".into()), Scalar::Int(1));
        assert_eq!(apply(&s, 2_000, "B".into()), Scalar::Int(1));
        assert_eq!(apply(&s, 3_000, "A".into()), Scalar::Int(2));
        // `null > 1`-style errors and non-bool results do not match.
        let s = store("common.missing > 1").unwrap();
        assert_eq!(apply(&s, 1_000, "A".into()), Scalar::Int(0));
        let s = store("common.subtype").unwrap();
        assert_eq!(apply(&s, 1_000, "A".into()), Scalar::Int(0));
    }

    #[test]
    fn a_bad_expression_names_the_field_and_the_position() {
        let err = store("common.subtype == ").err().unwrap().to_string();
        assert!(err.contains("objects[0].elements[0].filter_expr"), "{err}");
        assert!(err.contains("position"), "{err}");
        let err = store("  ").err().unwrap().to_string();
        assert!(err.contains("filter_expr"), "{err}");
    }
}
