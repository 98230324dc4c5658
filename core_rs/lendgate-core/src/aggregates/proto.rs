//! Extraction of the attributes the definitions read straight from protobuf bytes.
//!
//! A [`ProtoPlan`] is compiled once per message type from its descriptor and the
//! definitions' [`PathTable`]: for each field a path goes through, its number, its
//! trie node and how to read it. Decoding walks the wire format once, reads those
//! fields (strings borrowed from the bytes) and skips every other field by its wire
//! type, so no `DynamicMessage` and no document is built.
//!
//! The values are those of the document `crate::document` makes of the message:
//! proto field names, enum values by name without their prefix (an unknown number
//! stays a number), `Timestamp` as an RFC 3339 string, `bytes` as lowercase hex, a
//! field without presence absent when it holds its default, a repeated field as an
//! array (present when not empty), the last occurrence of a scalar field winning and
//! repeated occurrences of a message field merging. Paths through types the plan does
//! not read itself (maps, `Struct`, `Value`, `Duration`, wrappers, members of a real
//! `oneof`) make [`ProtoPlan::compile`] return `None`, and the store then decodes the
//! whole document instead.
//!
//! Fields nobody reads are skipped by their framing only (as any lazy protobuf reader
//! does): a damaged value inside a field the definitions never read is not reported.

use super::value::{PathTable, Val};
use crate::error::{CoreError, CoreResult};
use prost::encoding::{decode_key, decode_varint, skip_field, DecodeContext, WireType};
use prost_reflect::{FieldDescriptor, Kind, MessageDescriptor};
use std::borrow::Cow;

/// How to read the fields of one message type that some path goes through.
#[derive(Debug)]
pub(crate) struct ProtoPlan {
    fields: Vec<FieldPlan>,
}

#[derive(Debug)]
struct FieldPlan {
    number: u32,
    /// The slot of the path ending at this field, if one does.
    slot: Option<u32>,
    /// The field has presence (message, `optional`): present even at its default.
    presence: bool,
    read: Read,
}

#[derive(Debug)]
enum Read {
    Bool,
    Int32,
    Int64,
    Uint32,
    Uint64,
    Sint32,
    Sint64,
    Fixed32,
    Fixed64,
    Sfixed32,
    Sfixed64,
    Float,
    Double,
    Str,
    Bytes,
    /// Enum values by number, with their document names.
    Enum(Vec<(i32, Box<str>)>),
    Timestamp,
    Message(ProtoPlan),
    /// A repeated field read only as a whole: present when it has elements.
    /// `packable`: numeric elements, whose length-delimited chunk holds any number
    /// of them (zero included); otherwise each occurrence is one element.
    Repeated {
        packable: bool,
    },
}

impl ProtoPlan {
    /// The plan of `desc` for the paths of `table`, or `None` when some path goes
    /// through a type the plan does not read (the caller then builds the document).
    pub(crate) fn compile(desc: &MessageDescriptor, table: &PathTable) -> Option<Self> {
        Self::node(desc, table, 0)
    }

    fn node(desc: &MessageDescriptor, table: &PathTable, node: usize) -> Option<Self> {
        let mut fields = Vec::new();
        for (name, child) in &table.nodes[node].children {
            // A name that is no field of the message is never present.
            let Some(field) = desc.get_field_by_name(name) else {
                continue;
            };
            let child = *child as usize;
            let n = &table.nodes[child];
            if field.containing_oneof().is_some_and(|o| !o.is_synthetic()) {
                return None;
            }
            let read = if field.is_map() {
                return None;
            } else if field.is_list() {
                Read::Repeated {
                    packable: !matches!(
                        field.kind(),
                        Kind::String | Kind::Bytes | Kind::Message(_)
                    ),
                }
            } else {
                scalar_read(&field, table, child)?
            };
            // Paths below a string or a number never resolve; below a list neither.
            let leaf = matches!(read, Read::Message(_));
            if !leaf && n.slot.is_none() {
                continue;
            }
            fields.push(FieldPlan {
                number: field.number(),
                slot: n.slot,
                presence: field.supports_presence(),
                read,
            });
        }
        fields.sort_by_key(|f| f.number);
        Some(Self { fields })
    }

    /// Values at the table's paths (slot order), borrowed from `bytes` and the plan.
    pub(crate) fn extract<'a>(
        &'a self,
        full_name: &str,
        bytes: &'a [u8],
        slots: usize,
    ) -> CoreResult<Vec<Option<Val<'a>>>> {
        let mut out = vec![None; slots];
        self.read_message(bytes, &mut out, 0).map_err(|why| {
            CoreError::invalid("request", format!("not a valid {full_name} message: {why}"))
        })?;
        Ok(out)
    }

    fn read_message<'a>(
        &'a self,
        mut buf: &'a [u8],
        out: &mut [Option<Val<'a>>],
        depth: u32,
    ) -> Result<(), String> {
        if depth > 100 {
            return Err("recursion limit reached".into());
        }
        while !buf.is_empty() {
            let (number, wire) = decode_key(&mut buf).map_err(|e| e.to_string())?;
            let Some(f) = self.fields.iter().find(|f| f.number == number) else {
                skip_field(wire, number, &mut buf, DecodeContext::default())
                    .map_err(|e| e.to_string())?;
                continue;
            };
            let v = f.read(wire, &mut buf, out, depth)?;
            // An empty packed chunk does not empty a list an earlier chunk filled.
            let empty_chunk = v.is_none() && matches!(f.read, Read::Repeated { .. });
            if let (Some(s), false) = (f.slot, empty_chunk) {
                out[s as usize] = v;
            }
        }
        Ok(())
    }
}

fn scalar_read(field: &FieldDescriptor, table: &PathTable, child: usize) -> Option<Read> {
    Some(match field.kind() {
        Kind::Bool => Read::Bool,
        Kind::Int32 => Read::Int32,
        Kind::Int64 => Read::Int64,
        Kind::Uint32 => Read::Uint32,
        Kind::Uint64 => Read::Uint64,
        Kind::Sint32 => Read::Sint32,
        Kind::Sint64 => Read::Sint64,
        Kind::Fixed32 => Read::Fixed32,
        Kind::Fixed64 => Read::Fixed64,
        Kind::Sfixed32 => Read::Sfixed32,
        Kind::Sfixed64 => Read::Sfixed64,
        Kind::Float => Read::Float,
        Kind::Double => Read::Double,
        Kind::String => Read::Str,
        Kind::Bytes => Read::Bytes,
        Kind::Enum(e) => {
            let prefix = format!("{}_", upper_snake(e.name()));
            Read::Enum(
                e.values()
                    .map(|v| {
                        let name = v.name();
                        (
                            v.number(),
                            name.strip_prefix(&prefix).unwrap_or(name).into(),
                        )
                    })
                    .collect(),
            )
        }
        Kind::Message(m) => match m.full_name() {
            "google.protobuf.Timestamp" => Read::Timestamp,
            name if name.starts_with("google.protobuf.") => return None,
            _ => Read::Message(ProtoPlan::node(&m, table, child)?),
        },
    })
}

/// `ApplicationSubtype` → `APPLICATION_SUBTYPE` (as `crate::document` names enums).
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

fn expect(wire: WireType, want: WireType) -> Result<(), String> {
    if wire == want {
        Ok(())
    } else {
        Err(format!("invalid wire type: {wire:?} (expected {want:?})"))
    }
}

fn varint(wire: WireType, buf: &mut &[u8]) -> Result<u64, String> {
    expect(wire, WireType::Varint)?;
    decode_varint(buf).map_err(|e| e.to_string())
}

fn fixed<const N: usize>(wire: WireType, buf: &mut &[u8]) -> Result<[u8; N], String> {
    expect(
        wire,
        if N == 4 {
            WireType::ThirtyTwoBit
        } else {
            WireType::SixtyFourBit
        },
    )?;
    let (head, rest) = buf
        .split_first_chunk::<N>()
        .ok_or_else(|| "buffer underflow".to_string())?;
    *buf = rest;
    Ok(*head)
}

fn delimited<'a>(wire: WireType, buf: &mut &'a [u8]) -> Result<&'a [u8], String> {
    expect(wire, WireType::LengthDelimited)?;
    let len = decode_varint(buf).map_err(|e| e.to_string())?;
    let len = usize::try_from(len)
        .ok()
        .filter(|l| *l <= buf.len())
        .ok_or_else(|| "buffer underflow".to_string())?;
    let (head, rest) = buf.split_at(len);
    *buf = rest;
    Ok(head)
}

/// An integer as the document holds it (a JSON number: `i64` when it fits).
fn int(x: i64) -> Val<'static> {
    Val::Int(x)
}

fn uint(x: u64) -> Val<'static> {
    i64::try_from(x).map_or(Val::UInt(x), Val::Int)
}

fn float(x: f64) -> Option<Val<'static>> {
    x.is_finite().then_some(Val::Float(x))
}

impl FieldPlan {
    /// Reads one occurrence; `None` when the document would not hold the field.
    fn read<'a>(
        &'a self,
        wire: WireType,
        buf: &mut &'a [u8],
        out: &mut [Option<Val<'a>>],
        depth: u32,
    ) -> Result<Option<Val<'a>>, String> {
        // Proto3 fields without presence are absent from the document at their default.
        let keep = |v: Val<'a>, default: bool| (self.presence || !default).then_some(v);
        Ok(match &self.read {
            Read::Bool => {
                let b = varint(wire, buf)? != 0;
                keep(Val::Bool(b), !b)
            }
            Read::Int32 => {
                let x = i64::from(varint(wire, buf)? as i32);
                keep(int(x), x == 0)
            }
            Read::Int64 => {
                let x = varint(wire, buf)? as i64;
                keep(int(x), x == 0)
            }
            Read::Uint32 => {
                let x = u64::from(varint(wire, buf)? as u32);
                keep(uint(x), x == 0)
            }
            Read::Uint64 => {
                let x = varint(wire, buf)?;
                keep(uint(x), x == 0)
            }
            Read::Sint32 => {
                let u = varint(wire, buf)? as u32;
                let x = i64::from(((u >> 1) as i32) ^ -((u & 1) as i32));
                keep(int(x), x == 0)
            }
            Read::Sint64 => {
                let u = varint(wire, buf)?;
                let x = ((u >> 1) as i64) ^ -((u & 1) as i64);
                keep(int(x), x == 0)
            }
            Read::Fixed32 => {
                let x = u64::from(u32::from_le_bytes(fixed::<4>(wire, buf)?));
                keep(uint(x), x == 0)
            }
            Read::Fixed64 => {
                let x = u64::from_le_bytes(fixed::<8>(wire, buf)?);
                keep(uint(x), x == 0)
            }
            Read::Sfixed32 => {
                let x = i64::from(i32::from_le_bytes(fixed::<4>(wire, buf)?));
                keep(int(x), x == 0)
            }
            Read::Sfixed64 => {
                let x = i64::from_le_bytes(fixed::<8>(wire, buf)?);
                keep(int(x), x == 0)
            }
            Read::Float => {
                let x = f64::from(f32::from_le_bytes(fixed::<4>(wire, buf)?));
                float(x).and_then(|v| keep(v, x == 0.0))
            }
            Read::Double => {
                let x = f64::from_le_bytes(fixed::<8>(wire, buf)?);
                float(x).and_then(|v| keep(v, x == 0.0))
            }
            Read::Str => {
                let b = delimited(wire, buf)?;
                let s = std::str::from_utf8(b)
                    .map_err(|_| "invalid string value: data is not UTF-8 encoded".to_string())?;
                keep(Val::Str(Cow::Borrowed(s)), s.is_empty())
            }
            Read::Bytes => {
                let b = delimited(wire, buf)?;
                let hex: String = b.iter().map(|byte| format!("{byte:02x}")).collect();
                keep(Val::Str(Cow::Owned(hex)), b.is_empty())
            }
            Read::Enum(names) => {
                let n = varint(wire, buf)? as i32;
                let v = match names.iter().find(|(k, _)| *k == n) {
                    Some((_, name)) => Val::Str(Cow::Borrowed(&**name)),
                    None => int(i64::from(n)),
                };
                keep(v, n == 0)
            }
            Read::Timestamp => Some(timestamp(delimited(wire, buf)?)?),
            Read::Message(plan) => {
                let body = delimited(wire, buf)?;
                plan.read_message(body, out, depth + 1)?;
                Some(Val::Raw("{…}"))
            }
            Read::Repeated { packable } => {
                if *packable && wire == WireType::LengthDelimited {
                    let body = delimited(wire, buf)?;
                    (!body.is_empty()).then_some(Val::Raw("[…]"))
                } else {
                    skip_field(wire, self.number, buf, DecodeContext::default())
                        .map_err(|e| e.to_string())?;
                    Some(Val::Raw("[…]"))
                }
            }
        })
    }
}

/// A `google.protobuf.Timestamp` as the document writes it (RFC 3339, UTC).
fn timestamp(mut body: &[u8]) -> Result<Val<'static>, String> {
    let (mut seconds, mut nanos) = (0i64, 0i32);
    while !body.is_empty() {
        let (number, wire) = decode_key(&mut body).map_err(|e| e.to_string())?;
        match number {
            1 => seconds = varint(wire, &mut body)? as i64,
            2 => nanos = varint(wire, &mut body)? as i32,
            _ => skip_field(wire, number, &mut body, DecodeContext::default())
                .map_err(|e| e.to_string())?,
        }
    }
    if let Some(text) = u32::try_from(nanos).ok().and_then(|n| rfc3339(seconds, n)) {
        return Ok(Val::Str(Cow::Owned(text)));
    }
    let instant = u32::try_from(nanos)
        .ok()
        .and_then(|n| chrono::DateTime::from_timestamp(seconds, n));
    Ok(match instant {
        Some(t) => Val::Str(Cow::Owned(
            t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
        )),
        // The document keeps an invalid timestamp as a message.
        None => Val::Raw("{…}"),
    })
}

/// What chrono's `to_rfc3339_opts(AutoSi, true)` writes, for years 1..=9999 and nanos
/// below one second (`None` otherwise: chrono then formats it); without chrono's
/// general formatter, since every event's time goes through here.
fn rfc3339(seconds: i64, nanos: u32) -> Option<String> {
    if !(-62_135_596_800..=253_402_300_799).contains(&seconds) || nanos >= 1_000_000_000 {
        return None;
    }
    let (y, mo, d) = super::value::civil_from_days(seconds.div_euclid(86_400));
    let sod = seconds.rem_euclid(86_400);
    // Digits written by hand: `core::fmt` would cost more than the rest of the read.
    let mut s = String::with_capacity(32);
    let digits = |s: &mut String, n: i64, width: u32| {
        for k in (0..width).rev() {
            s.push(char::from(b'0' + (n / 10i64.pow(k) % 10) as u8));
        }
    };
    digits(&mut s, y, 4);
    s.push('-');
    digits(&mut s, mo, 2);
    s.push('-');
    digits(&mut s, d, 2);
    s.push('T');
    digits(&mut s, sod / 3600, 2);
    s.push(':');
    digits(&mut s, sod / 60 % 60, 2);
    s.push(':');
    digits(&mut s, sod % 60, 2);
    let n = i64::from(nanos);
    if nanos != 0 {
        s.push('.');
        if nanos % 1_000_000 == 0 {
            digits(&mut s, n / 1_000_000, 3);
        } else if nanos % 1_000 == 0 {
            digits(&mut s, n / 1_000, 6);
        } else {
            digits(&mut s, n, 9);
        }
    }
    s.push('Z');
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregates::value::{AttrPath, EventView};
    use proptest::prelude::*;
    use prost::Message as _;
    use prost_reflect::{DynamicMessage, Value as PValue};

    proptest! {
        #[test]
        fn timestamps_are_written_as_chrono_writes_them(
            seconds in -62_135_596_800i64..=253_402_300_799,
            nanos in prop_oneof![Just(0u32), 0u32..1000, (0u32..1000).prop_map(|n| n * 1_000_000),
                                 (0u32..1_000_000).prop_map(|n| n * 1000), 0u32..1_000_000_000],
        ) {
            let want = chrono::DateTime::from_timestamp(seconds, nanos)
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true));
            prop_assert_eq!(rfc3339(seconds, nanos), want);
        }
    }

    const PATHS: &[&str] = &[
        "application_id",
        "subtype",
        "event_time",
        "event_time.seconds",
        "partner_id",
        "loan_amount",
        "loan_amount.amount_minor",
        "loan_amount.currency",
        "applicant.client_id",
        "applicant.passport",
        "applicant.passport.number",
        "applicant.passport.kind",
        "applicant.emails",
        "co_borrowers",
        "co_borrowers.client_id",
        "bureau_check.score",
        "bureau_check.default_90_12_count",
        "nosuch.field",
    ];

    fn table_of(paths: &[&str]) -> (PathTable, Vec<AttrPath>) {
        let mut table = PathTable::default();
        let mut ps: Vec<AttrPath> = paths
            .iter()
            .map(|p| AttrPath::parse(p, "attr").unwrap())
            .collect();
        for p in &mut ps {
            table.intern(p);
        }
        table.finish();
        (table, ps)
    }

    /// A value of a view, with every compound reduced to "some compound".
    fn norm(v: Option<&Val<'_>>) -> Option<String> {
        v.map(|v| match v {
            Val::Json(_) | Val::Raw(_) => "<compound>".into(),
            Val::Str(s) => format!("s:{s}"),
            Val::Float(x) => format!("f:{x}"),
            Val::UInt(u) => format!("n:{u}"),
            Val::Int(i) => format!("n:{i}"),
            Val::Bool(b) => format!("b:{b}"),
        })
    }

    fn desc(name: &str) -> MessageDescriptor {
        crate::document::message_descriptor(name).unwrap()
    }

    fn text() -> impl Strategy<Value = String> {
        prop::sample::select(vec!["", "P1", "Ivanov", "45 01 123456", "é"]).prop_map(String::from)
    }

    fn message() -> impl Strategy<Value = Vec<u8>> {
        (
            prop::option::of(text()),
            prop::option::of(prop::sample::select(vec![0i32, 1, 2, 3, 99])),
            prop::option::of((946_684_800i64..4_000_000_000, 0i32..1_000_000_000)),
            prop::option::of((prop::option::of(-5i64..5), prop::option::of(text()))),
            prop::option::of((
                prop::option::of(text()),
                prop::option::of((prop::option::of(text()), prop::option::of(0i32..3))),
                prop::collection::vec(text(), 0..3),
            )),
            prop::collection::vec(prop::option::of(text()), 0..3),
            prop::option::of((prop::option::of(-1i32..3), prop::option::of(0i32..3))),
        )
            .prop_map(|(app, subtype, time, amount, applicant, cobs, bureau)| {
                let d = desc("lendgate.v1.ApplicationEvent");
                let mut m = DynamicMessage::new(d.clone());
                let sub = |name: &str| DynamicMessage::new(desc(name));
                if let Some(a) = app {
                    m.set_field_by_name("application_id", PValue::String(a));
                }
                if let Some(s) = subtype {
                    m.set_field_by_name("subtype", PValue::EnumNumber(s));
                }
                if let Some((secs, nanos)) = time {
                    let mut t = sub("google.protobuf.Timestamp");
                    t.set_field_by_name("seconds", PValue::I64(secs));
                    t.set_field_by_name("nanos", PValue::I32(nanos));
                    m.set_field_by_name("event_time", PValue::Message(t));
                }
                if let Some((minor, cur)) = amount {
                    let mut a = sub("lendgate.v1.Money");
                    if let Some(x) = minor {
                        a.set_field_by_name("amount_minor", PValue::I64(x));
                    }
                    if let Some(c) = cur {
                        a.set_field_by_name("currency", PValue::String(c));
                    }
                    m.set_field_by_name("loan_amount", PValue::Message(a));
                }
                if let Some((client, passport, emails)) = applicant {
                    let mut p = sub("lendgate.v1.Person");
                    if let Some(c) = client {
                        p.set_field_by_name("client_id", PValue::String(c));
                    }
                    if let Some((number, kind)) = passport {
                        let mut pp = sub("lendgate.v1.Passport");
                        if let Some(n) = number {
                            pp.set_field_by_name("number", PValue::String(n));
                        }
                        if let Some(k) = kind {
                            pp.set_field_by_name("kind", PValue::EnumNumber(k));
                        }
                        p.set_field_by_name("passport", PValue::Message(pp));
                    }
                    p.set_field_by_name(
                        "emails",
                        PValue::List(emails.into_iter().map(PValue::String).collect()),
                    );
                    m.set_field_by_name("applicant", PValue::Message(p));
                }
                let cobs: Vec<PValue> = cobs
                    .into_iter()
                    .map(|c| {
                        let mut p = sub("lendgate.v1.Person");
                        if let Some(c) = c {
                            p.set_field_by_name("client_id", PValue::String(c));
                        }
                        PValue::Message(p)
                    })
                    .collect();
                m.set_field_by_name("co_borrowers", PValue::List(cobs));
                if let Some((score, defaults)) = bureau {
                    let mut b = sub("lendgate.v1.BureauCheck");
                    if let Some(s) = score {
                        b.set_field_by_name("score", PValue::I32(s));
                    }
                    if let Some(x) = defaults {
                        b.set_field_by_name("default_90_12_count", PValue::I32(x));
                    }
                    m.set_field_by_name("bureau_check", PValue::Message(b));
                }
                m.encode_to_vec()
            })
    }

    proptest! {
        /// The plan reads what the whole document holds, for random messages and for
        /// two messages back to back (the wire format's merge).
        #[test]
        fn the_plan_reads_what_the_document_holds(a in message(), b in message(), merge in any::<bool>()) {
            let (table, paths) = table_of(PATHS);
            let name = "lendgate.v1.ApplicationEvent";
            let plan = ProtoPlan::compile(&desc(name), &table).expect("a plan");
            let bytes = if merge { [a, b].concat() } else { a };
            let doc = crate::document::decode_document(name, &bytes).unwrap();
            let whole = EventView::from_document(&doc, &table);
            let view = EventView::from_slots(plan.extract(name, &bytes, table.len()).unwrap());
            for p in &paths {
                prop_assert_eq!(norm(p.at(&whole)), norm(p.at(&view)), "{} in {}", p.as_str(), doc);
            }
        }
    }

    #[test]
    fn damaged_bytes_are_refused_and_unreadable_types_fall_back() {
        let (table, _) = table_of(PATHS);
        let name = "lendgate.v1.ApplicationEvent";
        let plan = ProtoPlan::compile(&desc(name), &table).unwrap();
        for bad in [
            &b"\xff\xff\xff"[..],
            b"\x0a\x05ab",
            b"\x0a\x02\xff\xfe",
            b"\x10",
        ] {
            let err = plan.extract(name, bad, table.len()).unwrap_err();
            assert!(
                matches!(err, CoreError::InvalidArgument { ref field, .. } if field == "request"),
                "{bad:?}"
            );
            assert!(
                crate::document::decode_document(name, bad).is_err(),
                "{bad:?}"
            );
        }
        // Unknown fields are skipped; a string field sent as a varint is refused.
        assert!(plan
            .extract(name, b"\x0a\x00\xa0\x01\x01", table.len())
            .is_ok());
        assert!(plan
            .extract(name, b"\x0a\x00\x20\x01", table.len())
            .is_err());
        assert!(plan.extract(name, b"\x08\x01", table.len()).is_err());
        // `attributes` is a Struct: read through the whole document.
        let (t2, _) = table_of(&["attributes.channel"]);
        assert!(ProtoPlan::compile(&desc(name), &t2).is_none());
    }
}
