//! Keyed, time-windowed aggregates — the seed's "dynamic calculation objects".
//!
//! An *object* is keyed by one event attribute or a composite of several (each
//! normalised); per key it keeps *elements*: single values (`first`, `last`, `sum`,
//! `min`, `max`, `count`) and bounded arrays (`unique`, `time_and_value`,
//! `date_and_counter`, `time_and_last_unique_value`). Every event updates the
//! elements whose filter it passes, **by the event's own time**, and the parameters
//! (`calc_aggregate`, `calc_interval`, `save`, `compare_fl`, transforms and the
//! built-in history parameters) are computed for it in the same call.
//!
//! - [`spec`]: the definition format (serde; JSON in, YAML converted by the caller);
//! - [`compile`]: validation into [`Definitions`];
//! - [`filter`]: the [`EventFilter`] seam for element filters;
//! - [`store`]: the sharded [`AggregateStore`] with apply, evaluate, retention and
//!   snapshot/restore.
//!
//! `docs/AGGREGATES.md` describes the model, the event-time and out-of-order rules and
//! the memory figures.

pub mod compile;
pub mod filter;
mod json;
mod proto;
pub mod query;
pub mod spec;
mod state;
pub mod store;
pub mod value;

pub use compile::{Definitions, ExprCompiler};
pub use filter::EventFilter;
pub use store::{AggregateStore, ExpireProgress, ParamValues, SNAPSHOT_VERSION};
pub use value::{InlineStr, Scalar, SmallStr, Val};
