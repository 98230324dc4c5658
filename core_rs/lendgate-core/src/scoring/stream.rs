//! `CheckStreamRequest` items taken apart on the wire, without decoding the event.
//!
//! A stream item carries the same event as a unary `Check{Application,Payment}Request`
//! and must get the same answer, so the service scores (and logs) exactly the unary
//! request the item stands for. [`split_stream_item`] reads the item's top-level fields
//! and writes that request by copying the event's bytes behind the unary field tag; the
//! event itself is decoded once, by [`super::prepare`], like a unary call's.
//!
//! The reading follows protobuf's rules as the generated Python classes apply them: an
//! unknown field, or a known one with another wire type, is skipped; of the `event`
//! oneof the last member on the wire wins, and repeated occurrences of that member
//! merge (their bytes are kept in order, each behind its own tag, which a decoder
//! merges the same way). Strings must be UTF-8.

use prost::encoding::{decode_key, decode_varint, encode_key, encode_varint, skip_field};
use prost::encoding::{DecodeContext, WireType};

use super::Kind;
use crate::error::{CoreError, CoreResult};

/// The parts of one `CheckStreamRequest`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamItem<'a> {
    /// `correlation_id` (may be empty: the caller reports that).
    pub correlation_id: &'a str,
    /// `request_id` (may be empty).
    pub request_id: &'a str,
    /// Which member of the `event` oneof is set; `None` when neither is.
    pub kind: Option<Kind>,
    /// The serialized unary request of `kind` (`request_id` = 1, the event = 2); empty
    /// when `kind` is `None`.
    pub unary: Vec<u8>,
}

const CORRELATION_ID: u32 = 1;
const REQUEST_ID: u32 = 2;
const APPLICATION: u32 = 3;
const PAYMENT: u32 = 4;

/// The fields of both unary requests: `request_id` = 1, the event = 2.
const UNARY_REQUEST_ID: u32 = 1;
const UNARY_EVENT: u32 = 2;

fn malformed(reason: impl std::fmt::Display) -> CoreError {
    CoreError::invalid("request", reason.to_string())
}

fn text<'a>(bytes: &'a [u8], field: &str) -> CoreResult<&'a str> {
    std::str::from_utf8(bytes).map_err(|_| malformed(format!("{field} is not UTF-8")))
}

/// Splits one serialized `CheckStreamRequest`. Bytes that are not one (broken framing,
/// a string that is not UTF-8) are an `InvalidArgument` error on field `request`.
pub fn split_stream_item(raw: &[u8]) -> CoreResult<StreamItem<'_>> {
    let mut buf = raw;
    let (mut correlation_id, mut request_id) = ("", "");
    let mut kind = None;
    let mut event: Vec<&[u8]> = Vec::with_capacity(1);
    while !buf.is_empty() {
        let (tag, wire_type) = decode_key(&mut buf).map_err(malformed)?;
        let known = matches!(tag, CORRELATION_ID | REQUEST_ID | APPLICATION | PAYMENT);
        if !known || wire_type != WireType::LengthDelimited {
            skip_field(wire_type, tag, &mut buf, DecodeContext::default()).map_err(malformed)?;
            continue;
        }
        let len = decode_varint(&mut buf).map_err(malformed)?;
        let len = usize::try_from(len)
            .ok()
            .filter(|&n| n <= buf.len())
            .ok_or_else(|| malformed("a field is longer than the message"))?;
        let (value, rest) = buf.split_at(len);
        buf = rest;
        match tag {
            CORRELATION_ID => correlation_id = text(value, "correlation_id")?,
            REQUEST_ID => request_id = text(value, "request_id")?,
            _ => {
                let member = if tag == APPLICATION {
                    Kind::Application
                } else {
                    Kind::Payment
                };
                if kind != Some(member) {
                    // Another oneof member replaces what was read before it.
                    event.clear();
                    kind = Some(member);
                }
                event.push(value);
            }
        }
    }
    let unary = kind.map_or_else(Vec::new, |_| unary_request(request_id, &event));
    Ok(StreamItem {
        correlation_id,
        request_id,
        kind,
        unary,
    })
}

fn unary_request(request_id: &str, event: &[&[u8]]) -> Vec<u8> {
    let size = request_id.len() + event.iter().map(|part| part.len() + 11).sum::<usize>() + 11;
    let mut out = Vec::with_capacity(size);
    if !request_id.is_empty() {
        encode_key(UNARY_REQUEST_ID, WireType::LengthDelimited, &mut out);
        encode_varint(request_id.len() as u64, &mut out);
        out.extend_from_slice(request_id.as_bytes());
    }
    for part in event {
        encode_key(UNARY_EVENT, WireType::LengthDelimited, &mut out);
        encode_varint(part.len() as u64, &mut out);
        out.extend_from_slice(part);
    }
    out
}

#[cfg(test)]
mod tests {
    use prost::Message;
    use prost_reflect::{DynamicMessage, Value as PValue};

    use super::*;
    use crate::document::{decode, message_descriptor};

    fn message(name: &str) -> DynamicMessage {
        DynamicMessage::new(message_descriptor(name).unwrap())
    }

    fn application(id: &str, amount: i64) -> DynamicMessage {
        let mut app = message("lendgate.v1.ApplicationEvent");
        app.set_field_by_name("application_id", PValue::String(id.into()));
        app.set_field_by_name("partner_id", PValue::String("p1".into()));
        let mut money = message("lendgate.v1.Money");
        money.set_field_by_name("amount_minor", PValue::I64(amount));
        money.set_field_by_name("currency", PValue::String("RUB".into()));
        app.set_field_by_name("loan_amount", PValue::Message(money));
        app
    }

    fn item(cid: &str, rid: &str, app: Option<DynamicMessage>) -> Vec<u8> {
        let mut m = message("lendgate.v1.CheckStreamRequest");
        m.set_field_by_name("correlation_id", PValue::String(cid.into()));
        m.set_field_by_name("request_id", PValue::String(rid.into()));
        if let Some(app) = app {
            m.set_field_by_name("application", PValue::Message(app));
        }
        m.encode_to_vec()
    }

    /// The unary request the generated classes would build from the item.
    fn expected_unary(rid: &str, app: DynamicMessage) -> DynamicMessage {
        let mut m = message("lendgate.v1.CheckApplicationRequest");
        m.set_field_by_name("request_id", PValue::String(rid.into()));
        m.set_field_by_name("application", PValue::Message(app));
        m
    }

    #[test]
    fn an_item_becomes_the_unary_request_it_stands_for() {
        let raw = item("c-1", "r-1", Some(application("a-1", 50_000)));
        let split = split_stream_item(&raw).unwrap();
        assert_eq!(split.correlation_id, "c-1");
        assert_eq!(split.request_id, "r-1");
        assert_eq!(split.kind, Some(Kind::Application));
        let unary = decode("lendgate.v1.CheckApplicationRequest", &split.unary).unwrap();
        assert_eq!(unary, expected_unary("r-1", application("a-1", 50_000)));
    }

    #[test]
    fn no_event_no_request_and_no_ids_are_reported_as_empty() {
        let raw = item("", "", None);
        let split = split_stream_item(&raw).unwrap();
        assert_eq!((split.correlation_id, split.request_id), ("", ""));
        assert_eq!(split.kind, None);
        assert!(split.unary.is_empty());
        let empty = split_stream_item(&[]).unwrap();
        assert_eq!(empty.kind, None);
        // An empty application is still the member that is set.
        let raw = item("c", "", Some(message("lendgate.v1.ApplicationEvent")));
        let split = split_stream_item(&raw).unwrap();
        assert_eq!(split.kind, Some(Kind::Application));
        assert_eq!(split.unary, vec![0x12, 0x00]);
    }

    #[test]
    fn the_last_oneof_member_wins_and_repeats_of_it_merge() {
        let mut raw = item("c", "r", None);
        // payment, then application twice: the payment is dropped, the two merge.
        let mut payment = message("lendgate.v1.PaymentEvent");
        payment.set_field_by_name("payment_id", PValue::String("pay-1".into()));
        let pay = payment.encode_to_vec();
        raw.push(0x22);
        raw.push(pay.len() as u8);
        raw.extend_from_slice(&pay);
        let first = application("a-1", 10).encode_to_vec();
        let mut second = message("lendgate.v1.ApplicationEvent");
        second.set_field_by_name("application_id", PValue::String("a-2".into()));
        let second = second.encode_to_vec();
        for part in [&first, &second] {
            raw.push(0x1a);
            raw.push(part.len() as u8);
            raw.extend_from_slice(part);
        }
        let split = split_stream_item(&raw).unwrap();
        assert_eq!(split.kind, Some(Kind::Application));
        let unary = decode("lendgate.v1.CheckApplicationRequest", &split.unary).unwrap();
        let mut merged = application("a-1", 10);
        merged.set_field_by_name("application_id", PValue::String("a-2".into()));
        assert_eq!(unary, expected_unary("r", merged));
        // The same bytes through prost-reflect's own decoder agree on the member.
        let whole = decode("lendgate.v1.CheckStreamRequest", &raw).unwrap();
        assert!(whole.has_field_by_name("application"));
        assert!(!whole.has_field_by_name("payment"));
    }

    #[test]
    fn unknown_fields_and_other_wire_types_are_skipped() {
        let mut raw = vec![0x08, 0x05]; // field 1 as a varint: not the string, skipped
        raw.extend_from_slice(&[0xa8, 0x06, 0x01]); // field 101, varint
        raw.extend_from_slice(&item("c-9", "r-9", Some(application("a", 1))));
        let split = split_stream_item(&raw).unwrap();
        assert_eq!((split.correlation_id, split.request_id), ("c-9", "r-9"));
        assert_eq!(split.kind, Some(Kind::Application));
    }

    #[test]
    fn broken_bytes_are_invalid_arguments_never_panics() {
        let good = item("c", "r", Some(application("a-1", 50_000)));
        for cut in 1..good.len() {
            // Every prefix either splits or is refused; none panics.
            let _ = split_stream_item(&good[..cut]);
        }
        let too_long = [0x0a, 0x7f, b'x'];
        let err = split_stream_item(&too_long).unwrap_err();
        assert!(matches!(err, CoreError::InvalidArgument { ref field, .. } if field == "request"));
        let not_utf8 = [0x0a, 0x02, 0xff, 0xfe];
        let err = split_stream_item(&not_utf8).unwrap_err();
        assert!(
            err.to_string().contains("correlation_id is not UTF-8"),
            "{err}"
        );
        assert!(split_stream_item(&[0xff]).is_err(), "a truncated key");
    }
}
