//! Protobuf messages of the contract as documents for expressions.
//!
//! Rules, filters and strategies see an event as a JSON-like document. This module
//! decodes a serialized message of the contract (the bytes grpcio handed to Python,
//! untouched) with the descriptors compiled into this crate, and turns it into that
//! document, following the convention stated in `rules.proto`:
//!
//! - fields under their proto names (`applicant.passport.issuing_region`); proto3
//!   fields without presence appear only when set to a non-default value, as in the
//!   proto3 JSON mapping, so a missing field reads as `null` in an expression;
//! - enum values as their names without the enum's prefix (`"LOAN_APP_CREATE"`);
//!   an unknown enum number stays a number;
//! - `Timestamp` as an RFC 3339 UTC string, `Duration` as a number of seconds,
//!   wrapper types as their value, `Struct`/`Value`/`ListValue` as plain JSON,
//!   `bytes` as lowercase hex; 64-bit integers as exact JSON integers; a non-finite
//!   float as `null`.

use std::sync::LazyLock;

use chrono::{DateTime, SecondsFormat};
use prost_reflect::{
    DescriptorPool, DynamicMessage, EnumDescriptor, Kind, MapKey, MessageDescriptor,
    ReflectMessage, Value,
};
use serde_json::{Map, Number, Value as Json};

use crate::error::{CoreError, CoreResult};

static DESCRIPTORS: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/lendgate_v1_descriptors.bin"));

static POOL: LazyLock<Result<DescriptorPool, String>> =
    LazyLock::new(|| DescriptorPool::decode(DESCRIPTORS).map_err(|err| err.to_string()));

/// The descriptors of the whole contract (`lendgate.v1` and the well-known types it uses).
pub fn pool() -> CoreResult<&'static DescriptorPool> {
    POOL.as_ref().map_err(|reason| CoreError::Internal {
        reason: format!("embedded descriptors do not decode: {reason}"),
    })
}

/// The descriptor of a message of the contract, e.g. `lendgate.v1.ApplicationEvent`.
pub fn message_descriptor(full_name: &str) -> CoreResult<MessageDescriptor> {
    pool()?
        .get_message_by_name(full_name)
        .ok_or_else(|| CoreError::NotFound {
            kind: "message type",
            name: full_name.to_owned(),
        })
}

/// Decodes `bytes` as the message `full_name` of the contract.
pub fn decode(full_name: &str, bytes: &[u8]) -> CoreResult<DynamicMessage> {
    let descriptor = message_descriptor(full_name)?;
    DynamicMessage::decode(descriptor, bytes).map_err(|err| {
        CoreError::invalid("request", format!("not a valid {full_name} message: {err}"))
    })
}

/// Decodes `bytes` as the message `full_name` and returns it as a document.
pub fn decode_document(full_name: &str, bytes: &[u8]) -> CoreResult<Json> {
    Ok(to_document(&decode(full_name, bytes)?))
}

/// A decoded message as a document (see the module documentation for the mapping).
pub fn to_document(message: &DynamicMessage) -> Json {
    let descriptor = message.descriptor();
    if let Some(json) = well_known(&descriptor, message) {
        return json;
    }
    let mut object = Map::new();
    for (field, value) in message.fields() {
        object.insert(field.name().to_owned(), value_to_json(&field.kind(), value));
    }
    Json::Object(object)
}

fn value_to_json(kind: &Kind, value: &Value) -> Json {
    match value {
        Value::Bool(b) => Json::Bool(*b),
        Value::I32(n) => Json::from(*n),
        Value::I64(n) => Json::from(*n),
        Value::U32(n) => Json::from(*n),
        Value::U64(n) => Json::from(*n),
        Value::F32(x) => float(f64::from(*x)),
        Value::F64(x) => float(*x),
        Value::String(s) => Json::String(s.clone()),
        Value::Bytes(b) => Json::String(b.iter().map(|byte| format!("{byte:02x}")).collect()),
        Value::EnumNumber(number) => match kind {
            Kind::Enum(descriptor) => enum_name(descriptor, *number),
            _ => Json::from(*number),
        },
        Value::Message(message) => to_document(message),
        Value::List(items) => Json::Array(items.iter().map(|v| value_to_json(kind, v)).collect()),
        Value::Map(entries) => {
            let value_kind = match kind {
                Kind::Message(entry) => entry.map_entry_value_field().kind(),
                other => other.clone(),
            };
            let mut object = Map::new();
            for (key, value) in entries {
                object.insert(map_key(key), value_to_json(&value_kind, value));
            }
            Json::Object(object)
        }
    }
}

fn float(x: f64) -> Json {
    Number::from_f64(x).map_or(Json::Null, Json::Number)
}

fn map_key(key: &MapKey) -> String {
    match key {
        MapKey::Bool(b) => b.to_string(),
        MapKey::I32(n) => n.to_string(),
        MapKey::I64(n) => n.to_string(),
        MapKey::U32(n) => n.to_string(),
        MapKey::U64(n) => n.to_string(),
        MapKey::String(s) => s.clone(),
    }
}

/// `APPLICATION_SUBTYPE_LOAN_APP_CREATE` of enum `ApplicationSubtype` → `LOAN_APP_CREATE`.
fn enum_name(descriptor: &EnumDescriptor, number: i32) -> Json {
    let Some(value) = descriptor.get_value(number) else {
        return Json::from(number);
    };
    let prefix = format!("{}_", upper_snake(descriptor.name()));
    let name = value.name();
    Json::String(name.strip_prefix(&prefix).unwrap_or(name).to_owned())
}

fn upper_snake(camel: &str) -> String {
    let mut out = String::with_capacity(camel.len() + 4);
    for (i, ch) in camel.chars().enumerate() {
        if ch.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(ch.to_ascii_uppercase());
    }
    out
}

fn well_known(descriptor: &MessageDescriptor, message: &DynamicMessage) -> Option<Json> {
    let field = |name: &str| message.get_field_by_name(name);
    match descriptor.full_name() {
        "google.protobuf.Timestamp" => {
            let seconds = field("seconds")?.as_i64()?;
            let nanos = u32::try_from(field("nanos")?.as_i32()?).ok()?;
            let instant = DateTime::from_timestamp(seconds, nanos)?;
            Some(Json::String(
                instant.to_rfc3339_opts(SecondsFormat::AutoSi, true),
            ))
        }
        "google.protobuf.Duration" => {
            let seconds = field("seconds")?.as_i64()?;
            let nanos = field("nanos")?.as_i32()?;
            // Exact for any realistic duration: i64 seconds fit f64 up to 2^53.
            #[allow(clippy::cast_precision_loss)]
            Some(float(seconds as f64 + f64::from(nanos) / 1e9))
        }
        "google.protobuf.Struct" => {
            let fields = field("fields")?;
            let value_kind = descriptor.get_field_by_name("fields")?.kind();
            Some(value_to_json(&value_kind, &fields))
        }
        "google.protobuf.ListValue" => {
            let values = field("values")?;
            let kind = descriptor.get_field_by_name("values")?.kind();
            Some(value_to_json(&kind, &values))
        }
        "google.protobuf.Value" => Some(match message.fields().next() {
            None => Json::Null,
            Some((field, value)) => match field.name() {
                "null_value" => Json::Null,
                _ => value_to_json(&field.kind(), value),
            },
        }),
        "google.protobuf.DoubleValue"
        | "google.protobuf.FloatValue"
        | "google.protobuf.Int64Value"
        | "google.protobuf.UInt64Value"
        | "google.protobuf.Int32Value"
        | "google.protobuf.UInt32Value"
        | "google.protobuf.BoolValue"
        | "google.protobuf.StringValue"
        | "google.protobuf.BytesValue" => {
            let value_field = descriptor.get_field_by_name("value")?;
            let value = field("value")?;
            Some(value_to_json(&value_field.kind(), &value))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;
    use serde_json::json;

    fn application(fill: impl FnOnce(&mut DynamicMessage)) -> Vec<u8> {
        let mut message =
            DynamicMessage::new(message_descriptor("lendgate.v1.ApplicationEvent").unwrap());
        fill(&mut message);
        message.encode_to_vec()
    }

    fn sub(parent: &DynamicMessage, field: &str) -> DynamicMessage {
        let descriptor = parent.descriptor().get_field_by_name(field).unwrap();
        match descriptor.kind() {
            Kind::Message(m) => DynamicMessage::new(m),
            other => panic!("{field} is {other:?}"),
        }
    }

    #[test]
    fn embedded_descriptors_have_every_service() {
        let pool = pool().unwrap();
        for service in [
            "ScoringService",
            "RuleAdminService",
            "StrategyService",
            "AuctionService",
            "ParticipantNodeService",
        ] {
            assert!(pool
                .get_service_by_name(&format!("lendgate.v1.{service}"))
                .is_some());
        }
    }

    #[test]
    fn an_application_reads_as_the_rules_document() {
        let bytes = application(|app| {
            app.set_field_by_name("application_id", Value::String("app-1".into()));
            app.set_field_by_name("subtype", Value::EnumNumber(1));
            let mut time = sub(app, "event_time");
            time.set_field_by_name("seconds", Value::I64(1_763_806_500));
            time.set_field_by_name("nanos", Value::I32(5_000_000));
            app.set_field_by_name("event_time", Value::Message(time));
            let mut money = sub(app, "loan_amount");
            money.set_field_by_name("amount_minor", Value::I64(15_000_000));
            money.set_field_by_name("currency", Value::String("RUB".into()));
            app.set_field_by_name("loan_amount", Value::Message(money));
            let mut person = sub(app, "applicant");
            person.set_field_by_name("last_name", Value::String("Petrov".into()));
            app.set_field_by_name("applicant", Value::Message(person));
        });
        let doc = decode_document("lendgate.v1.ApplicationEvent", &bytes).unwrap();
        assert_eq!(doc["application_id"], json!("app-1"));
        assert_eq!(doc["subtype"], json!("LOAN_APP_CREATE"));
        assert_eq!(doc["event_time"], json!("2025-11-22T10:15:00.005Z"));
        assert_eq!(
            doc["loan_amount"],
            json!({"amount_minor": 15_000_000, "currency": "RUB"})
        );
        assert_eq!(doc["applicant"]["last_name"], json!("Petrov"));
        // Unset proto3 fields are absent, so expressions read them as null.
        assert!(doc.get("partner_id").is_none());
    }

    #[test]
    fn free_form_attributes_are_plain_json() {
        let bytes = application(|app| {
            let attributes = app.descriptor().get_field_by_name("attributes").unwrap();
            let Kind::Message(struct_desc) = attributes.kind() else {
                panic!()
            };
            let json_struct = DynamicMessage::decode(
                struct_desc,
                prost_types::Struct {
                    fields: [(
                        "score".to_owned(),
                        prost_types::Value {
                            kind: Some(prost_types::value::Kind::NumberValue(0.5)),
                        },
                    )]
                    .into(),
                }
                .encode_to_vec()
                .as_slice(),
            )
            .unwrap();
            app.set_field_by_name("attributes", Value::Message(json_struct));
        });
        let doc = decode_document("lendgate.v1.ApplicationEvent", &bytes).unwrap();
        assert_eq!(doc["attributes"], json!({"score": 0.5}));
    }

    #[test]
    fn garbage_is_invalid_not_a_panic() {
        let err = decode_document("lendgate.v1.ApplicationEvent", b"\x0a\x64\x01").unwrap_err();
        assert!(matches!(err, CoreError::InvalidArgument { .. }), "{err:?}");
        let err = decode_document("lendgate.v1.NoSuchMessage", b"").unwrap_err();
        assert!(matches!(err, CoreError::NotFound { .. }));
    }

    #[test]
    fn enum_prefixes_follow_the_enum_name() {
        assert_eq!(upper_snake("ApplicationSubtype"), "APPLICATION_SUBTYPE");
        assert_eq!(upper_snake("Zone"), "ZONE");
    }
}
