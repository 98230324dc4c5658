//! One decoded check event: validation and the projections the scoring path needs
//! (the aggregates' flat event, the consortium match keys, what the index remembers).
//!
//! The event is the document of `crate::document` (proto field names, enum names
//! without prefix, RFC 3339 timestamps). Field violations name the request's proto
//! path (`application.applicant.birth_date`).

use chrono::{DateTime, NaiveDate};
use serde_json::{json, Map, Value as Json};

/// Longest string accepted in any field of an event, in characters.
pub const MAX_STRING_CHARS: usize = 4096;
/// Earliest accepted event time: 2000-01-01T00:00:00Z, in microseconds.
pub const EARLIEST_EVENT_US: i64 = 946_684_800_000_000;
/// How far in the future (after the receive time) an event time may lie.
pub const MAX_CLOCK_SKEW_US: i64 = 86_400_000_000;

/// Enum fields of the events, by field name: a value the server does not know is
/// decoded as a number and refused.
const ENUM_FIELDS: &[&str] = &[
    "subtype",
    "channel",
    "product",
    "unit",
    "gender",
    "kind",
    "platform",
    "status",
    "special_check_result",
    "result",
    "type",
];
const DATE_FIELDS: &[&str] = &[
    "birth_date",
    "issue_date",
    "expiry_date",
    "employment_start_date",
];

/// The kind of a checked event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `CheckApplicationRequest.application`.
    Application,
    /// `CheckPaymentRequest.payment`.
    Payment,
}

impl Kind {
    /// `application` / `payment` (the request's field and the store's event kind).
    pub fn field(self) -> &'static str {
        match self {
            Self::Application => "application",
            Self::Payment => "payment",
        }
    }

    /// The request message of the kind.
    pub fn request_type(self) -> &'static str {
        match self {
            Self::Application => "lendgate.v1.CheckApplicationRequest",
            Self::Payment => "lendgate.v1.CheckPaymentRequest",
        }
    }

    /// The event's id field.
    pub fn id_field(self) -> &'static str {
        match self {
            Self::Application => "application_id",
            Self::Payment => "payment_id",
        }
    }

    /// Parses `application` / `payment`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "application" => Some(Self::Application),
            "payment" => Some(Self::Payment),
            _ => None,
        }
    }
}

/// One problem of a request: the proto path of the field and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Proto path, e.g. `application.applicant.birth_date`.
    pub field: String,
    /// What is wrong.
    pub description: String,
}

fn violation(field: impl Into<String>, description: impl Into<String>) -> Violation {
    Violation {
        field: field.into(),
        description: description.into(),
    }
}

/// A string field of an object, `""` when absent or not a string.
pub fn text<'a>(v: &'a Json, key: &str) -> &'a str {
    v.get(key).and_then(Json::as_str).unwrap_or("")
}

fn truthy(v: Option<&Json>) -> bool {
    match v {
        None | Some(Json::Null) => false,
        Some(Json::Bool(b)) => *b,
        Some(Json::String(s)) => !s.is_empty(),
        Some(Json::Array(a)) => !a.is_empty(),
        Some(Json::Object(o)) => !o.is_empty(),
        Some(Json::Number(n)) => n.as_f64() != Some(0.0),
    }
}

/// Parses an RFC 3339 time into microseconds since the epoch.
pub fn parse_time_us(v: Option<&Json>) -> Option<i64> {
    let s = v?.as_str()?;
    if s.is_empty() {
        return None;
    }
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.timestamp_micros())
}

fn is_date_shape(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit())
}

/// A `YYYY-MM-DD` calendar date (year 1..9999), or `None`.
fn parse_date(s: &str) -> Option<NaiveDate> {
    if !is_date_shape(s) {
        return None;
    }
    let d = NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()?;
    (s[..4] != *"0000").then_some(d)
}

fn too_long(s: &str) -> bool {
    s.len() > MAX_STRING_CHARS && s.chars().count() > MAX_STRING_CHARS
}

fn walk(value: &Json, path: &mut String, out: &mut Vec<Violation>) {
    match value {
        Json::Object(map) => {
            for (key, item) in map {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
                if ENUM_FIELDS.contains(&key.as_str()) && item.is_number() {
                    out.push(violation(
                        path.as_str(),
                        format!("unknown enum value {item}"),
                    ));
                } else if let (true, Some(s)) = (DATE_FIELDS.contains(&key.as_str()), item.as_str())
                {
                    if !s.is_empty() {
                        date_violation(s, path, out);
                    }
                } else {
                    walk(item, path, out);
                }
                path.truncate(len);
            }
        }
        Json::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                walk(item, path, out);
                path.truncate(len);
            }
        }
        Json::String(s) if too_long(s) => {
            out.push(violation(
                path.as_str(),
                format!("at most {MAX_STRING_CHARS} characters"),
            ));
        }
        _ => {}
    }
}

fn date_violation(s: &str, path: &str, out: &mut Vec<Violation>) {
    if too_long(s) {
        out.push(violation(
            path,
            format!("at most {MAX_STRING_CHARS} characters"),
        ));
    } else if !is_date_shape(s) {
        out.push(violation(path, "a date YYYY-MM-DD"));
    } else if parse_date(s).is_none() {
        out.push(violation(path, "not a calendar date"));
    }
}

/// Every problem of the event of `kind` received at `now_us`, as violations named by
/// the request's proto path. An empty list means the event may be scored.
pub fn validate(kind: Kind, event: &Json, now_us: i64) -> Vec<Violation> {
    let mut out = Vec::new();
    let mut path = kind.field().to_owned();
    walk(event, &mut path, &mut out);
    let prefix = kind.field();
    if !truthy(event.get(kind.id_field())) {
        out.push(violation(
            format!("{prefix}.{}", kind.id_field()),
            "required",
        ));
    }
    let event_time = parse_time_us(event.get("event_time"));
    match event_time {
        None => out.push(violation(format!("{prefix}.event_time"), "required")),
        Some(t) if !(EARLIEST_EVENT_US..=now_us.saturating_add(MAX_CLOCK_SKEW_US)).contains(&t) => {
            out.push(violation(
                format!("{prefix}.event_time"),
                "before 2000-01-01 or in the future",
            ));
        }
        Some(_) => {}
    }
    match kind {
        Kind::Application => validate_application(event, event_time.unwrap_or(now_us), &mut out),
        Kind::Payment => validate_payment(event, &mut out),
    }
    out
}

fn is_unspecified(v: Option<&Json>) -> bool {
    matches!(v, None | Some(Json::Null))
        || matches!(v.and_then(Json::as_str), Some("" | "UNSPECIFIED"))
}

fn negative_amount(money: Option<&Json>) -> bool {
    money
        .and_then(|m| m.get("amount_minor"))
        .and_then(Json::as_i64)
        .is_some_and(|a| a < 0)
}

fn validate_application(event: &Json, event_time_us: i64, out: &mut Vec<Violation>) {
    let subtype = event.get("subtype");
    if is_unspecified(subtype) {
        out.push(violation("application.subtype", "required"));
    }
    let applicant = event.get("applicant");
    if subtype.and_then(Json::as_str) == Some("LOAN_APP_CREATE") && !truthy(applicant) {
        out.push(violation(
            "application.applicant",
            "required for LOAN_APP_CREATE",
        ));
    }
    let event_day = DateTime::from_timestamp_micros(event_time_us).map(|t| t.date_naive());
    let mut people: Vec<(String, &Json)> = Vec::new();
    if let Some(a) = applicant.filter(|a| a.is_object()) {
        people.push(("application.applicant".to_owned(), a));
    }
    for field in ["co_borrowers", "guarantors"] {
        if let Some(Json::Array(items)) = event.get(field) {
            for (i, p) in items.iter().enumerate() {
                people.push((format!("application.{field}[{i}]"), p));
            }
        }
    }
    for (path, person) in people {
        if let (Some(birth), Some(day)) = (parse_date(text(person, "birth_date")), event_day) {
            if birth > day {
                out.push(violation(format!("{path}.birth_date"), "in the future"));
            }
        }
        if negative_amount(person.get("monthly_income")) {
            out.push(violation(
                format!("{path}.monthly_income.amount_minor"),
                "negative",
            ));
        }
    }
    if negative_amount(event.get("loan_amount")) {
        out.push(violation(
            "application.loan_amount.amount_minor",
            "negative",
        ));
    }
}

fn validate_payment(event: &Json, out: &mut Vec<Violation>) {
    if is_unspecified(event.get("type")) {
        out.push(violation("payment.type", "required"));
    }
    let amount = event
        .get("amount")
        .and_then(|m| m.get("amount_minor"))
        .and_then(Json::as_i64);
    if !amount.is_some_and(|a| a > 0) {
        out.push(violation("payment.amount.amount_minor", "required, > 0"));
    }
}

/// Series and number of a person's passport, letters and digits only, upper case.
pub fn passport_number(person: Option<&Json>) -> String {
    let Some(p) = person.and_then(|p| p.get("passport")) else {
        return String::new();
    };
    text(p, "series")
        .chars()
        .chain(text(p, "number").chars())
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_uppercase)
        .collect()
}

/// Last, first and middle name, lower case, single spaces.
pub fn full_name(person: Option<&Json>) -> String {
    let Some(p) = person else {
        return String::new();
    };
    let joined = ["last_name", "first_name", "middle_name"]
        .iter()
        .map(|k| text(p, k))
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase();
    joined.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Digits only; an 11-digit national `8…` becomes `7…` (as the core's lists).
pub fn normalize_phone(value: &str) -> String {
    let mut digits: String = value.chars().filter(char::is_ascii_digit).collect();
    if digits.len() == 11 && digits.starts_with('8') {
        digits.replace_range(0..1, "7");
    }
    digits
}

/// The person's mobile phone (the first MOBILE one, else the first one), normalised.
pub fn mobile(person: Option<&Json>) -> String {
    let Some(Json::Array(phones)) = person.and_then(|p| p.get("phones")) else {
        return String::new();
    };
    for phone in phones {
        if text(phone, "kind") == "MOBILE" && !text(phone, "number").is_empty() {
            return normalize_phone(text(phone, "number"));
        }
    }
    phones
        .first()
        .map(|p| normalize_phone(text(p, "number")))
        .unwrap_or_default()
}

fn set(target: &mut Map<String, Json>, key: &str, value: Option<&Json>) {
    match value {
        None | Some(Json::Null) => {}
        Some(Json::String(s)) if s.is_empty() => {}
        Some(v) => {
            target.insert(key.to_owned(), v.clone());
        }
    }
}

fn set_text(target: &mut Map<String, Json>, key: &str, value: String) {
    if !value.is_empty() {
        target.insert(key.to_owned(), Json::String(value));
    }
}

/// The applicant's registration address (else the first one) as one key: the register
/// id when given, else the structured parts (country, region, city, street, house,
/// flat) joined by `|`, else the one-line text; "" when none. The aggregate key's `text`
/// kind then folds case and spaces.
fn registration_address(applicant: Option<&Json>) -> String {
    let Some(Json::Array(all)) = applicant.and_then(|a| a.get("addresses")) else {
        return String::new();
    };
    let Some(a) = all
        .iter()
        .find(|a| text(a, "kind") == "REGISTRATION")
        .or_else(|| all.first())
    else {
        return String::new();
    };
    let id = text(a, "registry_id");
    if !id.is_empty() {
        return format!("id:{id}");
    }
    let parts = ["country", "region", "city", "street", "house", "flat"].map(|k| text(a, k));
    if parts[2..5].iter().all(|p| !p.is_empty()) {
        return parts.join("|");
    }
    text(a, "full_text").to_owned()
}

/// The flat event the default pack's aggregates read (seed 003 attribute names), at
/// `event_time_ms`. `count_finish = false` leaves `common.subtype` out, so an
/// application's finish already counted (an earlier result or outcome) is not counted
/// again by the elements filtered on `LOAN_APP_RESULT`.
pub fn aggregate_event(
    event: &Json,
    partner_id: &str,
    event_time_ms: i64,
    count_finish: bool,
) -> Json {
    let applicant = event.get("applicant");
    let mut consumer = Map::new();
    set_text(&mut consumer, "fio", full_name(applicant));
    set_text(&mut consumer, "mobile", mobile(applicant));
    set(
        &mut consumer,
        "birthdate",
        applicant.and_then(|a| a.get("birth_date")),
    );
    set_text(
        &mut consumer,
        "idDocumentNumber",
        passport_number(applicant),
    );
    set(
        &mut consumer,
        "passportIssueRegion",
        applicant
            .and_then(|a| a.get("passport"))
            .and_then(|p| p.get("issuing_region")),
    );
    if let Some(client) = applicant
        .map(|a| text(a, "client_id"))
        .filter(|c| !c.is_empty())
    {
        // Client ids are the partner's own: scope them so two partners' ids never meet.
        consumer.insert(
            "userId".into(),
            Json::String(format!("{partner_id}/{client}")),
        );
    }
    let mut ext = Map::new();
    set(&mut ext, "requestResult", event.get("result"));
    set(
        &mut ext,
        "checkResultSpecial",
        event.get("special_check_result"),
    );
    if let Some(bureau) = event.get("bureau_check").filter(|b| truthy(Some(b))) {
        let defaults = bureau
            .get("default_90_12_count")
            .and_then(Json::as_i64)
            .unwrap_or(0);
        ext.insert("bkiDefault90and12".into(), json!(defaults));
    }
    let mut employer = Map::new();
    set(
        &mut employer,
        "inn",
        applicant
            .and_then(|a| a.get("employer"))
            .and_then(|e| e.get("tax_id")),
    );
    let mut device = Map::new();
    set(&mut device, "ip", event.get("ip_address"));
    let sdk = event.get("device");
    set(&mut device, "id", sdk.and_then(|d| d.get("device_id")));
    set(&mut device, "imei", sdk.and_then(|d| d.get("imei")));
    set_text(&mut consumer, "address", registration_address(applicant));
    let subtype = event.get("subtype").cloned().unwrap_or(Json::Null);
    let is_result = subtype.as_str() == Some("LOAN_APP_RESULT");
    let mut common = Map::new();
    common.insert("eventTime".into(), json!(event_time_ms));
    if count_finish || !is_result {
        common.insert("subtype".into(), subtype);
    }
    common.insert("partnerId".into(), json!(partner_id));
    common.insert("riskScore".into(), json!(0));
    let mut out = Map::new();
    out.insert("common".into(), Json::Object(common));
    out.insert("consumer".into(), Json::Object(consumer));
    out.insert("employer".into(), Json::Object(employer));
    out.insert("device".into(), Json::Object(device));
    out.insert("ext".into(), Json::Object(ext));
    if let Some(Json::Array(co)) = event.get("co_borrowers") {
        if let Some(first) = co.first() {
            out.insert(
                "coBorrower".into(),
                json!({ "idDocumentNumber": passport_number(Some(first)) }),
            );
        }
    }
    Json::Object(out)
}

/// Aggregate events for an outcome of `application`: a decision (`APPROVED` /
/// `REFUSED`) counts as a finished application, rejected or not (rules 4–6) unless
/// `count_finish` is false; a fraud status (`CONFIRMED` / `SUSPECTED` / `NOT_FRAUD`)
/// marks the employer, passport and phone (rule 3, seed 001's confirmed-fraud check).
pub fn outcome_events(
    application: &Json,
    partner_id: &str,
    event_time_ms: i64,
    decision: &str,
    fraud_status: &str,
    count_finish: bool,
) -> Vec<Json> {
    let base = aggregate_event(application, partner_id, event_time_ms, true);
    let consumer = &base["consumer"];
    let mut keys = Map::new();
    for k in ["idDocumentNumber", "mobile"] {
        set(&mut keys, k, consumer.get(k));
    }
    let common = |subtype: &str| {
        let mut c = base["common"].clone();
        c["subtype"] = json!(subtype);
        c
    };
    let mut out = Vec::new();
    if count_finish && matches!(decision, "APPROVED" | "REFUSED") {
        let mut with_region = keys.clone();
        set(
            &mut with_region,
            "passportIssueRegion",
            consumer.get("passportIssueRegion"),
        );
        let result = if decision == "REFUSED" {
            "REJECTED"
        } else {
            "APPROVED"
        };
        out.push(json!({
            "common": common("LOAN_APP_RESULT"),
            "consumer": with_region,
            "employer": base["employer"],
            "ext": {"requestResult": result},
        }));
    }
    let resolution = match fraud_status {
        "CONFIRMED" => Some("F"),
        "SUSPECTED" => Some("S"),
        "NOT_FRAUD" => Some("N"),
        _ => None,
    };
    if let Some(r) = resolution {
        out.push(json!({
            "common": common("LOAN_APP_RESOLUTION"),
            "consumer": keys,
            "employer": base["employer"],
            "ext": {"resolution": r},
        }));
    }
    out
}

/// Normalised keys the application is matched on: phone, passport, name + phone,
/// co-borrower passport, employer INN, IP, device, e-mail.
pub fn match_keys(event: &Json) -> Vec<(String, String)> {
    let applicant = event.get("applicant");
    let mut keys = Vec::new();
    let phone = mobile(applicant);
    let name = full_name(applicant);
    let passport = passport_number(applicant);
    if !phone.is_empty() {
        if !name.is_empty() {
            keys.push(("fio_phone".to_owned(), format!("{name}|{phone}")));
        }
        keys.insert(0, ("phone".to_owned(), phone));
    }
    if !passport.is_empty() {
        keys.push(("passport".to_owned(), passport));
    }
    if let Some(Json::Array(people)) = event.get("co_borrowers") {
        for p in people {
            let number = passport_number(Some(p));
            if !number.is_empty() {
                keys.push(("co_borrower_passport".to_owned(), number));
            }
        }
    }
    let scalar = |v: Option<&Json>| match v {
        None | Some(Json::Null) => None,
        Some(Json::String(s)) if s.is_empty() => None,
        Some(Json::String(s)) => Some(s.clone()),
        Some(other) => Some(other.to_string()),
    };
    if let Some(inn) = scalar(
        applicant
            .and_then(|a| a.get("employer"))
            .and_then(|e| e.get("tax_id")),
    ) {
        keys.push(("employer".to_owned(), inn));
    }
    if let Some(ip) = scalar(event.get("ip_address")) {
        keys.push(("ip".to_owned(), ip));
    }
    if let Some(device) = scalar(event.get("device").and_then(|d| d.get("device_id"))) {
        keys.push(("device".to_owned(), device));
    }
    if let Some(Json::Array(emails)) = applicant.and_then(|a| a.get("emails")) {
        for e in emails {
            let e = e.as_str().map_or_else(|| e.to_string(), str::to_owned);
            keys.push(("email".to_owned(), e.trim().to_lowercase()));
        }
    }
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_763_800_000_000_000;

    fn doc(applicant: Json) -> Json {
        json!({
            "application_id": "a",
            "subtype": "LOAN_APP_CREATE",
            "event_time": "2025-11-22T08:00:00Z",
            "applicant": applicant,
        })
    }

    fn fields(event: &Json) -> Vec<String> {
        validate(Kind::Application, event, NOW)
            .into_iter()
            .map(|v| v.field)
            .collect()
    }

    #[test]
    fn violations_name_the_proto_field() {
        let cases = [
            (
                doc(json!({"birth_date": "2999-01-01"})),
                "application.applicant.birth_date",
            ),
            (
                doc(json!({"birth_date": "1990-02-30"})),
                "application.applicant.birth_date",
            ),
            (
                doc(json!({"birth_date": "0000-01-01"})),
                "application.applicant.birth_date",
            ),
            (
                doc(json!({"last_name": "x".repeat(5000)})),
                "application.applicant.last_name",
            ),
            (
                doc(json!({"phones": [{"kind": 42}]})),
                "application.applicant.phones[0].kind",
            ),
            (
                json!({"event_time": "2025-11-22T08:00:00Z"}),
                "application.application_id",
            ),
            (
                json!({"application_id": "a", "event_time": "1999-12-31T00:00:00Z"}),
                "application.event_time",
            ),
            (json!({"application_id": "a"}), "application.subtype"),
            (
                json!({"subtype": "LOAN_APP_CREATE"}),
                "application.applicant",
            ),
        ];
        for (event, field) in cases {
            assert!(
                fields(&event).contains(&field.to_owned()),
                "{field}: {:?}",
                fields(&event)
            );
        }
        let mut negative = doc(json!({"last_name": "X"}));
        negative["loan_amount"] = json!({"amount_minor": -1});
        assert_eq!(fields(&negative), ["application.loan_amount.amount_minor"]);
        assert!(fields(&doc(json!({"last_name": "X", "birth_date": "1990-01-01"}))).is_empty());
    }

    #[test]
    fn a_payment_needs_a_type_and_a_positive_amount() {
        let p = json!({"payment_id": "p", "event_time": "2025-11-22T08:00:00Z", "amount": {"amount_minor": 0}});
        let got: Vec<_> = validate(Kind::Payment, &p, NOW)
            .into_iter()
            .map(|v| v.field)
            .collect();
        assert_eq!(got, ["payment.type", "payment.amount.amount_minor"]);
    }

    #[test]
    fn projections_normalise_names_phones_and_passports() {
        let event = doc(json!({
            "last_name": "Ivanov ", "first_name": "IVAN", "client_id": "c1",
            "passport": {"series": "45 10", "number": "123-456", "issuing_region": "77"},
            "phones": [{"number": "8 (916) 123-45-67", "kind": "HOME"}, {"number": "+7 999 000 11 22", "kind": "MOBILE"}],
            "employer": {"tax_id": "7701"}, "emails": [" Ivan@Example.com "],
        }));
        let agg = aggregate_event(&event, "p", 5, true);
        assert_eq!(agg["consumer"]["fio"], "ivanov ivan");
        assert_eq!(agg["consumer"]["mobile"], "79990001122");
        assert_eq!(agg["consumer"]["idDocumentNumber"], "4510123456");
        assert_eq!(agg["consumer"]["userId"], "p/c1");
        assert_eq!(agg["common"]["subtype"], "LOAN_APP_CREATE");
        let keys = match_keys(&event);
        assert_eq!(keys[0], ("phone".into(), "79990001122".into()));
        assert_eq!(
            keys[1],
            ("fio_phone".into(), "ivanov ivan|79990001122".into())
        );
        assert!(keys.contains(&("email".into(), "ivan@example.com".into())));
    }

    #[test]
    fn a_finish_counted_once_leaves_the_subtype_out() {
        let mut event = doc(json!({"last_name": "X"}));
        event["subtype"] = json!("LOAN_APP_RESULT");
        assert!(aggregate_event(&event, "p", 1, false)["common"]
            .get("subtype")
            .is_none());
        assert_eq!(
            aggregate_event(&event, "p", 1, true)["common"]["subtype"],
            "LOAN_APP_RESULT"
        );
        let refused = outcome_events(&event, "p", 1, "REFUSED", "", false);
        assert!(refused.is_empty());
        assert_eq!(
            outcome_events(&event, "p", 1, "REFUSED", "CONFIRMED", true).len(),
            2
        );
    }
}
