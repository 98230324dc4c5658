//! Operations on values that JDM graphs need: dotted inserts and ZEN's merge.

use std::sync::Arc;

use crate::expr::{map_with_capacity, Map, Value};

/// An empty object.
pub(crate) fn empty_object() -> Value {
    Value::object(Map::default())
}

/// An empty object with room for `n` members.
pub(crate) fn object_for(n: usize) -> Value {
    Value::object(map_with_capacity(n))
}

/// A dotted output path (`a.b.c`), split once when the graph is compiled: its keys
/// are shared with every object it writes, so an insert allocates no key.
#[derive(Debug, Clone)]
pub(crate) struct KeyPath {
    keys: Box<[Arc<str>]>,
}

impl KeyPath {
    pub(crate) fn new(path: &str) -> Self {
        Self {
            keys: path.split('.').map(Arc::from).collect(),
        }
    }
}

/// Inserts `value` at `path` of the object `target`, creating the intermediate
/// objects. As in ZEN, nothing is written when `target` or an intermediate value is
/// not an object.
pub(crate) fn dot_insert(target: &mut Value, path: &KeyPath, value: Value) {
    insert_keys(target, &path.keys, value);
}

fn insert_keys(target: &mut Value, keys: &[Arc<str>], value: Value) {
    let Value::Object(map) = target else {
        return;
    };
    let map = Arc::make_mut(map);
    match keys {
        [] => {}
        [last] => {
            map.insert(last.clone(), value);
        }
        [head, rest @ ..] => {
            let child = map.entry(head.clone()).or_insert_with(empty_object);
            insert_keys(child, rest, value);
        }
    }
}

/// Merges `patch` into `doc` the way ZEN merges node outputs: objects merge key by
/// key (a `null` in the patch removes the key), anything else replaces. At the top
/// level an array patch replaces the document and a scalar patch is ignored.
pub(crate) fn merge(doc: Value, patch: &Value) -> Value {
    match patch {
        Value::Array(_) => patch.clone(),
        Value::Object(_) => merge_inner(doc, patch),
        _ => doc,
    }
}

fn merge_inner(doc: Value, patch: &Value) -> Value {
    match (doc, patch) {
        (Value::Object(mut map), Value::Object(p)) => {
            if Arc::ptr_eq(&map, p) {
                return Value::Object(map);
            }
            let m = Arc::make_mut(&mut map);
            m.reserve(p.len());
            for (key, value) in p.iter() {
                if matches!(value, Value::Null) {
                    m.shift_remove(key);
                } else {
                    let slot = m.entry(key.clone()).or_default();
                    let old = std::mem::take(slot);
                    *slot = merge_inner(old, value);
                }
            }
            Value::Object(map)
        }
        (_, patch) => patch.clone(),
    }
}

/// `input` with the extra top-level fields (`$`, `$nodes`) the engine exposes to
/// expressions; a non-object input is seen as an empty object.
pub(crate) fn with_fields(input: &Value, fields: &[(&str, Value)]) -> Value {
    let mut map = match input {
        Value::Object(m) => Map::clone(m),
        _ => map_with_capacity(fields.len()),
    };
    for (k, v) in fields {
        map.insert(Arc::from(*k), v.clone());
    }
    Value::object(map)
}

/// Sets a top-level field of an object in place (copy-on-write).
pub(crate) fn set_field(target: &mut Value, key: &str, value: Value) {
    if let Value::Object(map) = target {
        Arc::make_mut(map).insert(Arc::from(key), value);
    }
}

/// Structural equality through JSON (numbers compare by normalised value).
pub(crate) fn same(a: &Value, b: &Value) -> bool {
    a.to_json() == b.to_json()
}

/// Truthiness of a switch condition or a table cell: only `true` passes.
pub(crate) fn is_true(v: &Value) -> bool {
    matches!(v, Value::Bool(true))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn v(j: serde_json::Value) -> Value {
        Value::from(&j)
    }

    #[test]
    fn dot_insert_creates_objects() {
        let mut t = empty_object();
        dot_insert(&mut t, &KeyPath::new("a.b.c"), v(json!(1)));
        dot_insert(&mut t, &KeyPath::new("a.d"), v(json!(2)));
        assert_eq!(t.to_json(), json!({"a": {"b": {"c": 1}, "d": 2}}));
    }

    #[test]
    fn merge_is_deep_and_null_removes() {
        let doc = v(json!({"a": {"x": 1, "y": 2}, "b": 1, "c": [1]}));
        let out = merge(doc, &v(json!({"a": {"y": 3}, "b": null, "c": [2]})));
        assert_eq!(out.to_json(), json!({"a": {"x": 1, "y": 3}, "c": [2]}));
        assert_eq!(
            merge(v(json!({"a": 1})), &v(json!(5))).to_json(),
            json!({"a": 1})
        );
        assert_eq!(
            merge(v(json!({"a": 1})), &v(json!([5]))).to_json(),
            json!([5])
        );
    }
}
