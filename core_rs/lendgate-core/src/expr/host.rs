//! The extension point of the language: functions the host provides (such as
//! `in_list`), and the record of the input values an evaluation read.
//!
//! A host function is declared at compile time in [`Options::host_functions`]
//! (name and arity), so a misspelt name or a wrong number of arguments is a syntax
//! error with its position, like any built-in. Its implementation is supplied per
//! evaluation through [`Context::host`], because it usually needs per-evaluation
//! state (the lists as of the event time). Built-in names take precedence.
//!
//! [`Options::host_functions`]: super::Options::host_functions

use std::sync::Arc;

use super::value::Value;

/// The signature of one host function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostFunction {
    /// The name the expression calls it by.
    pub name: Arc<str>,
    /// Minimum number of arguments.
    pub min_args: usize,
    /// Maximum number of arguments.
    pub max_args: usize,
    /// True for a boolean test: as a unary-test cell it is used as it is (like
    /// `startsWith`), not compared with `$`.
    pub predicate: bool,
}

impl HostFunction {
    /// A function taking exactly `args` arguments.
    pub fn new(name: &str, args: usize, predicate: bool) -> Self {
        Self {
            name: Arc::from(name),
            min_args: args,
            max_args: args,
            predicate,
        }
    }
}

/// The host functions expressions compiled with these options may call.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HostFunctions(Arc<[HostFunction]>);

impl HostFunctions {
    /// Declares `functions`.
    pub fn new(functions: Vec<HostFunction>) -> Self {
        Self(functions.into())
    }

    pub(crate) fn find(&self, name: &str) -> Option<&HostFunction> {
        self.0.iter().find(|f| f.name.as_ref() == name)
    }
}

/// Implements host functions during one evaluation.
pub trait Host {
    /// Calls the declared function `name` with its evaluated arguments. An `Err`
    /// becomes the evaluation error "`name`(): message".
    fn call(&self, name: &str, args: &[Value]) -> Result<Value, String>;
}

/// A value an evaluation read: a path of the input document (`application.amount`,
/// `items[0]`) or a host call with its arguments (`in_list("bad-inn", "7701234567")`).
#[derive(Debug, Clone)]
pub struct Read {
    /// What was read.
    pub path: String,
    /// The value it had.
    pub value: Value,
}

/// Per-evaluation extras; `Context::default()` has neither.
#[derive(Default)]
pub struct Context<'a> {
    /// Implementations of the declared host functions.
    pub host: Option<&'a dyn Host>,
    /// When set, every input path and host call the evaluation reads is recorded
    /// here once (first value), in the order first read.
    pub reads: Option<&'a mut Vec<Read>>,
}
