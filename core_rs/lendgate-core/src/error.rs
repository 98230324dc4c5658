//! The one error type of the core crate.

use thiserror::Error;

/// Every error the core can return. The bindings map each variant to one Python
/// exception, and the servers map those to gRPC status codes.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CoreError {
    /// The caller passed a value that can never be valid (bad field, bad syntax).
    /// `field` names the offending input (a dotted path where there is one).
    #[error("invalid argument `{field}`: {reason}")]
    InvalidArgument { field: String, reason: String },

    /// A named thing (rule, list, aggregate definition...) does not exist.
    #[error("{kind} `{name}` not found")]
    NotFound { kind: &'static str, name: String },

    /// An expression does not parse. `position` counts characters from 0.
    #[error("expression syntax error at position {position}: {reason}")]
    ExpressionSyntax { position: usize, reason: String },

    /// A defect of lendgate itself, not of the input (e.g. corrupt embedded data).
    #[error("internal error: {reason}")]
    Internal { reason: String },

    /// An expression failed while evaluating (type mismatch, overflow, a limit hit).
    #[error("expression evaluation failed: {reason}")]
    ExpressionEvaluation { reason: String },

    /// A node of a decision graph (strategy) failed and nothing handled the failure.
    /// `node_id` is the JDM node id; `reason` says what happened.
    #[error("node `{node_id}` failed: {reason}")]
    NodeFailed { node_id: String, reason: String },
}

impl CoreError {
    /// Shorthand for [`CoreError::InvalidArgument`].
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::InvalidArgument {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// The result type of the core crate.
pub type CoreResult<T> = Result<T, CoreError>;
