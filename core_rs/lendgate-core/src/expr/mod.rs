//! The expression language: compatible with GoRules' ZEN expression language.
//!
//! Compile once, evaluate many times, from any number of threads:
//!
//! ```
//! use lendgate_core::expr::Expression;
//! use serde_json::json;
//!
//! let e = Expression::compile("amount > 1000 and age < 30").unwrap();
//! assert_eq!(e.evaluate(&json!({"amount": 5000, "age": 25})).unwrap(), json!(true));
//! ```
//!
//! [`UnaryExpression`] compiles a decision-table cell (`> 5`, `[1..10]`, `"a", "b"`)
//! that tests the subject `$`. Numbers are decimals, as in ZEN (`0.1 + 0.2 == 0.3`).
//! Runaway input is bounded by [`Limits`]: nesting depth at compile time, steps and
//! sizes at run time. See `docs/EXPRESSIONS.md` for the language.

mod ast;
mod date;
mod eval;
mod functions;
mod host;
mod lexer;
mod parser;
mod subject;
mod value;
pub(crate) mod value_serde;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

pub use date::{DateValue, Interval};
pub use host::{Context, Host, HostFunction, HostFunctions, Read};
pub use value::{map_with_capacity, Map, MapHasher, Value};
pub use value_serde::to_json_bytes;

use crate::error::{CoreError, CoreResult};

/// Bounds on what one expression may cost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Maximum nesting of the syntax tree (parentheses, operator chains, calls).
    pub max_depth: usize,
    /// Maximum length of the source text in bytes.
    pub max_source_bytes: usize,
    /// Maximum units of work of one evaluation (nodes visited, elements produced).
    pub max_steps: u64,
    /// Maximum length of an array made from an interval (`[0..n]`).
    pub max_collection_len: usize,
    /// Maximum length in bytes of a string built by concatenation or templates.
    pub max_string_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_depth: 128,
            max_source_bytes: 64 * 1024,
            max_steps: 10_000_000,
            max_collection_len: 1_000_000,
            max_string_bytes: 1 << 20,
        }
    }
}

/// Where `d()`, `now` and `isToday()` get the current time from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Clock {
    /// The system clock.
    #[default]
    System,
    /// A fixed instant (tests, replays, back-tests).
    Fixed(DateTime<Utc>),
}

impl Clock {
    pub(crate) fn now(self) -> DateTime<Utc> {
        match self {
            Clock::System => Utc::now(),
            Clock::Fixed(t) => t,
        }
    }
}

/// Compile-time options of an expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    pub limits: Limits,
    pub clock: Clock,
    /// The time zone of dates written without one (ZEN uses the host's; we default to
    /// UTC so results do not depend on where the server runs).
    pub timezone: Tz,
    /// Functions the host provides (see [`HostFunctions`]); none by default.
    pub host_functions: HostFunctions,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            limits: Limits::default(),
            clock: Clock::System,
            timezone: Tz::UTC,
            host_functions: HostFunctions::default(),
        }
    }
}

/// Internal error, before its byte position is turned into a character position.
#[derive(Debug, Clone)]
pub(crate) enum ExprError {
    Syntax { offset: usize, reason: String },
    Eval(String),
    Limit(String),
}

impl ExprError {
    pub(crate) fn syntax(offset: usize, reason: impl Into<String>) -> Self {
        Self::Syntax {
            offset,
            reason: reason.into(),
        }
    }

    pub(crate) fn eval(reason: impl Into<String>) -> Self {
        Self::Eval(reason.into())
    }

    pub(crate) fn reason(&self) -> String {
        match self {
            Self::Syntax { reason, .. } | Self::Eval(reason) | Self::Limit(reason) => {
                reason.clone()
            }
        }
    }

    fn into_core(self, src: &str) -> CoreError {
        match self {
            Self::Syntax { offset, reason } => CoreError::ExpressionSyntax {
                position: src.get(..offset).map_or(offset, |s| s.chars().count()),
                reason,
            },
            Self::Eval(reason) | Self::Limit(reason) => CoreError::ExpressionEvaluation { reason },
        }
    }
}

/// A compiled standard expression.
#[derive(Debug, Clone)]
pub struct Expression {
    source: Box<str>,
    root: ast::Node,
    options: Options,
}

/// A compiled unary test: an expression about the subject `$`.
#[derive(Debug, Clone)]
pub struct UnaryExpression {
    inner: Expression,
    /// The direct form of `$ OP constant` tests (see `subject.rs`).
    direct: Option<subject::SubjectTest>,
}

impl Expression {
    /// Compiles `source` with default [`Options`].
    ///
    /// Returns [`CoreError::ExpressionSyntax`] with the character position and the
    /// reason when the source is not a valid expression.
    pub fn compile(source: &str) -> CoreResult<Self> {
        Self::compile_with(source, Options::default())
    }

    /// Compiles `source` with the given options.
    pub fn compile_with(source: &str, options: Options) -> CoreResult<Self> {
        let root = parser::parse_standard(source, &options.limits, &options.host_functions)
            .map_err(|e| e.into_core(source))?;
        Ok(Self {
            source: source.into(),
            root,
            options,
        })
    }

    /// The source text this expression was compiled from.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Evaluates against a JSON document (its fields are the expression's variables).
    ///
    /// Returns [`CoreError::ExpressionEvaluation`] on a type error (`1 + "a"`) or when
    /// a [`Limits`] bound is exceeded.
    pub fn evaluate(&self, input: &serde_json::Value) -> CoreResult<serde_json::Value> {
        Ok(self.evaluate_value(&Value::from(input))?.to_json())
    }

    /// Evaluates against an already-converted input: convert an event once with
    /// `Value::from(&json)` and evaluate many expressions against it.
    pub fn evaluate_value(&self, input: &Value) -> CoreResult<Value> {
        self.evaluate_in(input, Context::default())
    }

    /// Evaluates with host function implementations and/or a record of the values
    /// read (see [`Context`]). Calling a declared host function without a host is
    /// an evaluation error.
    pub fn evaluate_in(&self, input: &Value, context: Context<'_>) -> CoreResult<Value> {
        let mut cx = eval::Cx::new(
            input.clone(),
            &self.options.limits,
            self.options.clock,
            self.options.timezone,
        );
        cx.host = context.host;
        cx.reads = context.reads;
        eval::eval(&self.root, &mut cx).map_err(|e| e.into_core(&self.source))
    }
}

impl UnaryExpression {
    /// Compiles a unary test (`> 5`, `[1..10]`, `'GB', 'US'`, `startsWith($, "A")`).
    pub fn compile(source: &str) -> CoreResult<Self> {
        Self::compile_with(source, Options::default())
    }

    /// Compiles a unary test with the given options.
    pub fn compile_with(source: &str, options: Options) -> CoreResult<Self> {
        let root = parser::parse_unary(source, &options.limits, &options.host_functions)
            .map_err(|e| e.into_core(source))?;
        let direct = subject::SubjectTest::from_node(&root, &options.limits);
        Ok(Self {
            direct,
            inner: Expression {
                source: source.into(),
                root,
                options,
            },
        })
    }

    /// The source text of the test.
    pub fn source(&self) -> &str {
        self.inner.source()
    }

    /// Tests a document whose `$` field is the subject (other fields are variables).
    pub fn evaluate(&self, input: &serde_json::Value) -> CoreResult<bool> {
        self.evaluate_value(&Value::from(input))
    }

    /// Tests `subject` directly when the test compares the subject with constants
    /// (`> 5`, `[1..10]`, `"a", "b"`): `None` when it needs the document (then use
    /// [`UnaryExpression::evaluate_value`] with `$` set). An `Err` is the interpreter's
    /// error (a comparison of unlike types).
    pub fn test_subject(&self, subject: &Value) -> Option<CoreResult<bool>> {
        let direct = self.direct.as_ref()?;
        Some(
            direct
                .test(subject)
                .map_err(|_| CoreError::ExpressionEvaluation {
                    reason: format!(
                        "`{}` does not apply to {}",
                        self.source(),
                        subject.type_name()
                    ),
                }),
        )
    }

    /// Tests an already-converted document whose `$` field is the subject.
    pub fn evaluate_value(&self, input: &Value) -> CoreResult<bool> {
        if let Some(direct) = &self.direct {
            let subject = match input {
                Value::Object(o) => o.get("$"),
                Value::Null => None,
                _ => return self.interpret(input),
            };
            if let Ok(pass) = direct.test(subject.unwrap_or(&Value::Null)) {
                return Ok(pass);
            }
            // An error: the interpreter words it.
        }
        self.interpret(input)
    }

    fn interpret(&self, input: &Value) -> CoreResult<bool> {
        match self.inner.evaluate_value(input)? {
            Value::Bool(b) => Ok(b),
            other => Err(CoreError::ExpressionEvaluation {
                reason: format!("a unary test must give a bool, got {}", other.type_name()),
            }),
        }
    }
}

#[cfg(test)]
mod tests;
