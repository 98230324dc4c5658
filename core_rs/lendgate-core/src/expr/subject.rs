//! Direct form of the common unary tests (`> 5`, `[1..10]`, `"a", "b"`, `!= null`):
//! a comparison of the subject with a constant, without an environment to build
//! or a syntax tree to walk. Decision tables test every cell of every row against
//! the row's subject, so this is their hot path.
//!
//! Only tests whose every leaf is `$ OP constant` (joined by `and` / `or`) take this
//! form; any other test (`startsWith($, "A")`, `> limit`, `$ * 2 > 10`) is evaluated
//! by the interpreter as before. The results are the interpreter's: the same
//! comparison functions are called, and an error (`> 5` on a string) is an error
//! here too.

use super::ast::Node;
use super::eval::{self, compare, contains, equal, Cx};
use super::lexer::Op;
use super::value::Value;
use super::{Clock, Limits};

/// A unary test reduced to comparisons of the subject with constants.
#[derive(Debug, Clone)]
pub(crate) enum SubjectTest {
    Compare(Op, Value),
    And(Box<SubjectTest>, Box<SubjectTest>),
    Or(Box<SubjectTest>, Box<SubjectTest>),
}

/// An evaluation error of the interpreter (the cell then does not match).
#[derive(Debug)]
pub(crate) struct TestError;

impl SubjectTest {
    /// The direct form of a unary test's syntax tree, when it has one.
    pub(crate) fn from_node(node: &Node, limits: &Limits) -> Option<Self> {
        match node {
            Node::Binary(Op::And, l, r) => Some(Self::And(
                Box::new(Self::from_node(l, limits)?),
                Box::new(Self::from_node(r, limits)?),
            )),
            Node::Binary(Op::Or, l, r) => Some(Self::Or(
                Box::new(Self::from_node(l, limits)?),
                Box::new(Self::from_node(r, limits)?),
            )),
            Node::Binary(
                op @ (Op::Eq | Op::Ne | Op::In | Op::NotIn | Op::Lt | Op::Le | Op::Gt | Op::Ge),
                l,
                r,
            ) if matches!(l.as_ref(), Node::Ident(name) if name.as_ref() == "$") => {
                Some(Self::Compare(*op, constant(r, limits)?))
            }
            _ => None,
        }
    }

    /// The test's result for `subject`, as the interpreter would give it.
    pub(crate) fn test(&self, subject: &Value) -> Result<bool, TestError> {
        match self {
            Self::And(l, r) => Ok(l.test(subject)? && r.test(subject)?),
            Self::Or(l, r) => Ok(l.test(subject)? || r.test(subject)?),
            Self::Compare(op, c) => match op {
                Op::Eq => Ok(equal(subject, c)),
                Op::Ne => Ok(!equal(subject, c)),
                Op::In => contains(*op, subject, c).map_err(|_| TestError),
                Op::NotIn => contains(*op, subject, c).map(|b| !b).map_err(|_| TestError),
                _ => compare(*op, subject, c).map_err(|_| TestError),
            },
        }
    }
}

/// The value of a constant operand (literals, arrays and intervals of literals,
/// negated numbers), computed once; `None` for anything that reads the input.
fn constant(node: &Node, limits: &Limits) -> Option<Value> {
    fn is_constant(node: &Node) -> bool {
        match node {
            Node::Null | Node::Bool(_) | Node::Number(_) | Node::String(_) => true,
            Node::Array(items) => items.iter().all(is_constant),
            Node::Interval { left, right, .. } => is_constant(left) && is_constant(right),
            Node::Parenthesized(inner) | Node::Unary(Op::Sub | Op::Add | Op::Not, inner) => {
                is_constant(inner)
            }
            _ => false,
        }
    }
    if !is_constant(node) {
        return None;
    }
    let mut cx = Cx::new(Value::Null, limits, Clock::System, chrono_tz::Tz::UTC);
    eval::eval(node, &mut cx).ok()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use super::*;
    use crate::expr::parser::parse_unary;
    use crate::expr::value::Map;
    use crate::expr::HostFunctions;

    /// The interpreter's answer: the test evaluated on `{"$": subject}`.
    fn interpreted(node: &Node, subject: &Value) -> Result<bool, TestError> {
        let limits = Limits::default();
        let mut env = Map::default();
        env.insert(Arc::from("$"), subject.clone());
        let mut cx = Cx::new(
            Value::object(env),
            &limits,
            Clock::System,
            chrono_tz::Tz::UTC,
        );
        match eval::eval(node, &mut cx) {
            Ok(Value::Bool(b)) => Ok(b),
            _ => Err(TestError),
        }
    }

    #[test]
    fn direct_tests_answer_as_the_interpreter() {
        let cells = [
            "> 5",
            "<= -2.5",
            "[1..10]",
            "(1..10)",
            "]1..10[",
            "'a', 'b'",
            "\"GB\"",
            "!= null",
            "== true",
            "null",
            "not in ['x', 'y']",
            "in [1, 2, 3]",
            "> 5 and < 10",
            "< 0, > 100",
            "[0..5], [10..15]",
        ];
        let subjects = [
            json!(null),
            json!(0),
            json!(1),
            json!(5),
            json!(7.5),
            json!(10),
            json!(-3),
            json!(101),
            json!("a"),
            json!("GB"),
            json!("x"),
            json!(true),
            json!([1]),
            json!({"k": 1}),
        ];
        let limits = Limits::default();
        for cell in cells {
            let node = parse_unary(cell, &limits, &HostFunctions::default()).expect(cell);
            let direct = SubjectTest::from_node(&node, &limits)
                .unwrap_or_else(|| panic!("`{cell}` has a direct form"));
            for subject in &subjects {
                let subject = Value::from(subject);
                assert_eq!(
                    direct.test(&subject).ok(),
                    interpreted(&node, &subject).ok(),
                    "`{cell}` on {subject}"
                );
            }
        }
    }

    #[test]
    fn tests_that_read_the_input_are_left_to_the_interpreter() {
        let limits = Limits::default();
        for cell in [
            "> limit",
            "startsWith($, 'A')",
            "$ * 2 > 10",
            "> d('2024-01-01')",
        ] {
            let node = parse_unary(cell, &limits, &HostFunctions::default()).expect(cell);
            assert!(SubjectTest::from_node(&node, &limits).is_none(), "{cell}");
        }
    }
}
