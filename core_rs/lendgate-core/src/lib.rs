//! lendgate's domain core, in pure Rust.
//!
//! Nothing here knows about Python or gRPC: the `lendgate-py` crate wraps this crate
//! as the private extension module `lendgate._core`, and the gRPC servers call it
//! through that module. Every fallible function returns [`CoreError`]; nothing in
//! this crate may panic on input that came from a request.

pub mod aggregates;
pub mod auction;
pub mod document;
pub mod error;
pub mod expr;
pub mod expr_filter;
pub mod lists;
pub mod matchkeys;
pub mod normalize;
pub mod parallel;
pub mod rules;
pub mod scoring;
pub mod strategy;

pub use error::{CoreError, CoreResult};

/// The version of this crate, as built (for reports and diagnostics).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
