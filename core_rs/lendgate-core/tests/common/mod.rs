//! Helpers shared by the zen conformance tests (expressions and decision graphs).

use std::path::PathBuf;

use lendgate_core::expr::{Clock, Options};
use serde_json::Value;

/// A folder of the zen conformance data (`testdata/zen/<sub>`).
pub fn zen_data(sub: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/zen")
        .join(sub)
}

/// Options with the clock pinned where zen's own tests pin it.
pub fn options() -> Options {
    Options {
        clock: Clock::Fixed("2025-08-19T16:55:02.078Z".parse().expect("valid instant")),
        ..Options::default()
    }
}

/// JSON equality with numbers compared by value (JSON5 reads `1` as a float).
pub fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}
