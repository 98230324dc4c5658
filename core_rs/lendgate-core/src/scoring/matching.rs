//! Consortium matches: earlier applications of all partners sharing a key, masked.
//!
//! The index keeps, per normalised key (`phone` `79991234567`), the most recent
//! applications that carried it ([`MAX_PER_KEY`]). A fired rule that names match kinds
//! in the pack gets the applications behind it, as the caller may see them.
//!
//! Disclosure policy (the consortium's, applied to every match):
//!
//! - the other partner is never named, and its application id is never shown; a match
//!   of the caller's own application carries its application id;
//! - `match_ref` is a hash of the report name and the historical event, so it is
//!   stable within one report and cannot link two reports or find the partner;
//! - event time is truncated to the day (UTC);
//! - compared values are masked: phones keep the country code and the last 4 digits,
//!   names the first letter of each word, passports the last 4 characters, birth
//!   dates the year only; the caller's own application is shown unmasked;
//! - the result and fraud status of the historical application are shown.
//!
//! Fuzzy matching: the index also blocks applications by the applicant's birth date
//! ([`MAX_PER_BIRTH_DATE`] most recent per date) and finds, among the block's
//! candidates, the ones whose full name is similar to the current one: Jaro–Winkler
//! similarity of the two names' [`name_key`]s (lower case, Cyrillic transliterated to
//! Latin, so `Иванов` meets `Ivanov`) at least the scorer's threshold. The cost is
//! O(block), never O(index). Such a match reports its name field as FUZZY with the
//! similarity, masked like any other.
//!
//! The index also keeps, per application, whether its finish (a `LOAN_APP_RESULT`
//! event or an APPROVED/REFUSED outcome) was already counted by the aggregates, so
//! that a refusal reported both ways counts once; and a 64-bit hash of every request
//! key the log holds, so that a new request needs no store read to know it is new
//! (a hash seen before sends the caller to the store, which has the exact answer).

use std::borrow::Cow;
use std::collections::VecDeque;

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{CoreError, CoreResult};
use crate::parallel;
use crate::scoring::growth::{Segmented, Sharded, SEGMENT, SHARDS};

/// Applications kept per key (the most recent).
pub const MAX_PER_KEY: usize = 50;
/// Matches reported per rule (the most recent).
pub const MAX_PER_RULE: usize = 20;
/// Applications kept per birth date for fuzzy name matching (the most recent): the
/// bound on the candidates one check compares its name with.
pub const MAX_PER_BIRTH_DATE: usize = 128;
/// Default Jaro–Winkler similarity of two names' [`name_key`]s from which they are
/// taken as the same person's (with the same birth date).
pub const DEFAULT_NAME_SIMILARITY: f64 = 0.92;
/// The match kind a pack's rule names to get the fuzzy (name + birth date) matches.
pub const SIMILAR_PERSON: &str = "similar_person";
/// Snapshot magic and the format version this build writes and reads.
const SNAPSHOT_MAGIC: &[u8; 8] = b"LGMXSNAP";
/// Version of the match index snapshot format (2: with the birth-date blocks; 3: each
/// logged request-key hash with its newest event day; 4: the same content in sections
/// that a restore decodes in parallel; 5: with the position of the first record held,
/// dropped records as empty ones and the retention sweep's cursor). Versions 1 to 4 are
/// still read (see [`MatchIndex::restore`]).
pub const SNAPSHOT_VERSION: u16 = 5;
/// Positions records can take; when the next one would not fit a `u32`, the index is
/// compacted (the held records renumbered from 0) first.
const MAX_POSITIONS: usize = 1 << 32;
/// Microseconds in a day: logged request keys are aged by event day.
const DAY_US: i64 = 86_400_000_000;
/// Days a logged request-key hash outlives the retention horizon: the store deletes the
/// event (and with it the key) in its own pass, every minute and in batches, so the
/// index forgets the hash only once the store has certainly done so.
const LOGGED_MARGIN_DAYS: i32 = 1;
const KEY_SEP: char = '\u{1f}';

/// Randomly seeded per map: keys come from requests (no predictable collisions).
type Hasher = foldhash::fast::RandomState;
type HashMap<K, V> = std::collections::HashMap<K, V, Hasher>;

/// What the index remembers of one application event.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Check sequence number (this process's order of checks, replayed identically).
    pub seq: u64,
    /// The partner that sent it.
    pub partner_id: String,
    /// The partner's application id.
    pub application_id: String,
    /// Subtype name (`LOAN_APP_CREATE`), or empty.
    pub subtype: String,
    /// Event time, microseconds since the epoch.
    pub event_time_us: i64,
    /// Applicant's normalised mobile phone.
    pub phone: String,
    /// Applicant's normalised full name.
    pub name: String,
    /// Applicant's birth date `YYYY-MM-DD`.
    pub birth_date: String,
    /// Applicant's normalised passport.
    pub passport: String,
    /// Result name (`REJECTED`) of the event or of a later outcome, or empty.
    pub result: String,
    /// Fraud status name (`CONFIRMED`) of a later outcome, or empty.
    pub fraud_status: String,
}

/// How a compared field relates (proto `MatchKind`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FieldMatch {
    /// Equal after normalisation.
    Exact,
    /// Different as sent, similar by name key (Jaro–Winkler similarity 0..1).
    Fuzzy(f64),
    /// Different where they were expected to agree.
    Contradiction,
}

/// A compared field of a match (proto `MatchedField`).
#[derive(Debug, Clone, PartialEq)]
pub struct MatchedField {
    /// Proto path of the compared field.
    pub field: &'static str,
    /// How the values relate.
    pub kind: FieldMatch,
    /// The current event's value.
    pub current_value: String,
    /// The historical value, masked unless it is the caller's own.
    pub historical_value: String,
}

/// A historical application as the caller may see it (proto `HistoricalMatch`).
#[derive(Debug, Clone, PartialEq)]
pub struct Match {
    /// Opaque reference, stable within one report.
    pub match_ref: String,
    /// Whether it is the caller's own application.
    pub own_application: bool,
    /// Its application id (only for the caller's own).
    pub application_id: String,
    /// Start of its event's day (UTC), seconds since the epoch.
    pub event_day_s: i64,
    /// Subtype name, or empty.
    pub subtype: String,
    /// Compared fields.
    pub fields: Vec<MatchedField>,
    /// Result name, or empty.
    pub result: String,
    /// Fraud status name, or empty.
    pub fraud_status: String,
}

/// `79991234567` → `+7******4567`.
pub fn mask_phone(value: &str) -> String {
    let chars: Vec<char> = value.chars().collect();
    if chars.len() <= 5 {
        return "*".repeat(chars.len());
    }
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("+{}{}{tail}", chars[0], "*".repeat(chars.len() - 5))
}

/// `ivanov ivan` → `I*** I***`.
pub fn mask_name(value: &str) -> String {
    value
        .split_whitespace()
        .filter_map(|w| w.chars().next())
        .map(|c| c.to_uppercase().collect::<String>() + "***")
        .collect::<Vec<_>>()
        .join(" ")
}

/// All but the last 4 characters hidden.
pub fn mask_passport(value: &str) -> String {
    let chars: Vec<char> = value.chars().collect();
    let hidden = chars.len().saturating_sub(4);
    "*".repeat(hidden) + &chars[hidden..].iter().collect::<String>()
}

/// `ivan@example.com` → `i***@example.com` (the domain is shown).
pub fn mask_email(value: &str) -> String {
    match value.split_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}***@{domain}")
        }
        None => mask_passport(value),
    }
}

/// `10.1.2.3` → `10.1.*.*`; an IPv6 address keeps its first two groups.
pub fn mask_ip(value: &str) -> String {
    let sep = if value.contains(':') { ':' } else { '.' };
    let parts: Vec<&str> = value.split(sep).collect();
    if parts.len() < 3 {
        return mask_passport(value);
    }
    let hidden = vec!["*"; parts.len() - 2];
    [&parts[..2], &hidden[..]].concat().join(&sep.to_string())
}

/// The year only.
pub fn mask_birth_date(value: &str) -> String {
    if value.is_empty() {
        return String::new();
    }
    value.chars().take(4).collect::<String>() + "-**-**"
}

/// The name as fuzzy matching compares it: lower case letters and single spaces,
/// Cyrillic transliterated to Latin (`ё` as `e`, `й` as `y`, `х` as `kh`...), and the
/// Latin spellings a transliteration varies on made one (`j` → `y`, `x` → `ks`,
/// `w` → `v`), so `Юлия`, `Yuliya` and `Julija` come close. Borrowed when nothing
/// changes (an ASCII name already in that form).
pub fn name_key(name: &str) -> Cow<'_, str> {
    let plain = name.bytes().all(|b| {
        (b.is_ascii_lowercase() && !matches!(b, b'j' | b'x' | b'w'))
            || b.is_ascii_digit()
            || b == b' '
    });
    if plain {
        return Cow::Borrowed(name);
    }
    let mut out = String::with_capacity(name.len() + 4);
    for c in name.chars().flat_map(char::to_lowercase) {
        match c {
            'j' => out.push('y'),
            'x' => out.push_str("ks"),
            'w' => out.push('v'),
            'a'..='z' | '0'..='9' => out.push(c),
            c if c.is_whitespace() || c == '-' => {
                if !out.is_empty() && !out.ends_with(' ') {
                    out.push(' ');
                }
            }
            c => out.push_str(transliterate(c)),
        }
    }
    while out.ends_with(' ') {
        out.pop();
    }
    Cow::Owned(out)
}

/// One Cyrillic letter in Latin (Russian passport practice, `й` as `y`); any other
/// character is dropped.
fn transliterate(c: char) -> &'static str {
    match c {
        'а' => "a",
        'б' => "b",
        'в' => "v",
        'г' => "g",
        'д' => "d",
        'е' | 'ё' | 'э' => "e",
        'ж' => "zh",
        'з' => "z",
        'и' => "i",
        'й' | 'ы' => "y",
        'к' => "k",
        'л' => "l",
        'м' => "m",
        'н' => "n",
        'о' => "o",
        'п' => "p",
        'р' => "r",
        'с' => "s",
        'т' => "t",
        'у' => "u",
        'ф' => "f",
        'х' => "kh",
        'ц' => "ts",
        'ч' => "ch",
        'ш' => "sh",
        'щ' => "shch",
        'ю' => "yu",
        'я' => "ya",
        'і' => "i",
        'ї' => "yi",
        'є' => "ye",
        'ґ' => "g",
        'ў' => "u",
        _ => "",
    }
}

/// Jaro–Winkler similarity (0..1) of two names' [`name_key`]s.
pub fn name_similarity(a: &str, b: &str) -> f64 {
    strsim::jaro_winkler(&name_key(a), &name_key(b))
}

type Field = (&'static str, fn(&Record) -> &str, fn(&str) -> String);

const NAME_FIELD: &str = "application.applicant.last_name";

/// A shared key reported as a compared field of the matches it found: match kind,
/// proto path, mask. (Phone, name and passport are compared on every match.)
type KeyField = (&'static str, &'static str, fn(&str) -> String);

const KEY_FIELDS: [KeyField; 4] = [
    (
        "employer",
        "application.applicant.employer.tax_id",
        mask_passport,
    ),
    ("ip", "application.ip_address", mask_ip),
    ("device", "application.device.device_id", mask_passport),
    ("email", "application.applicant.emails", mask_email),
];

const FIELDS: [Field; 4] = [
    ("application.applicant.phones", |r| &r.phone, mask_phone),
    (NAME_FIELD, |r| &r.name, mask_name),
    (
        "application.applicant.birth_date",
        |r| &r.birth_date,
        mask_birth_date,
    ),
    (
        "application.applicant.passport.number",
        |r| &r.passport,
        mask_passport,
    ),
];

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct AppState {
    /// Positions in `records`, in insertion order.
    records: Vec<u32>,
    /// The aggregates already counted this application's finish.
    finish_counted: bool,
}

/// In-memory index of recent applications by match key (one process's view).
///
/// Not synchronised: the caller serialises access (the scoring service's one
/// synchronous section; the bindings hold it behind a mutex).
///
/// Millions of entries: the records are [`Segmented`] and the tables [`Sharded`], so
/// that no check ever waits for one of them to be copied or rehashed whole.
///
/// Retention never renumbers: a dropped record leaves an empty tombstone (sequence
/// number 0) at its position, is taken out of its application and birth-date block at
/// once, and out of the key lists lazily — readers skip it, a full list sheds its dead
/// entries before it evicts a live one (so the live entries are exactly those an eager
/// removal would keep), and each prune step sweeps a few shards of the lists. Whole
/// segments of tombstones leave the front. So a prune costs what it drops plus a sweep
/// of [`SHARDS`]`/`n of the lists, not a pass over every record and list.
#[derive(Debug, Default)]
pub struct MatchIndex {
    next_seq: u64,
    records: Segmented<Record>,
    /// Earliest event time of the live records of each segment of `records`
    /// (`i64::MAX`: none live): a prune visits only segments it can drop from.
    seg_min: VecDeque<i64>,
    /// Live records held.
    live: usize,
    /// The shard the next prune step sweeps first (key lists).
    sweep: usize,
    /// The day from which logged request keys were last kept (`None`: never pruned, or
    /// one older than that was noted since): their retention moves by whole days, so a
    /// pass sweeps them once a day.
    logged_kept_from: Option<i32>,
    /// Each shard in first-insertion order (kept by prune), so a snapshot needs no sort.
    by_key: Sharded<KeyLists>,
    apps: Sharded<HashMap<String, AppState>>,
    /// Hash of every logged request key -> the newest event day (days since the epoch)
    /// of the events logged under it; pruned with the records.
    logged: Sharded<HashMap<u64, i32>>,
    /// Positions by the applicant's birth date, the most recent [`MAX_PER_BIRTH_DATE`]
    /// (applications with a name and a birth date): the fuzzy matching's blocks.
    by_birth: Sharded<HashMap<String, VecDeque<u32>>>,
}

/// Positions of the records with one key, by key (one shard of them).
type KeyLists = IndexMap<String, VecDeque<u32>, Hasher>;

/// An earlier application whose applicant has the current birth date and a similar
/// name: its position in the index and the names' similarity.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Similar {
    pos: u32,
    /// Jaro–Winkler similarity of the name keys, 0..1.
    pub similarity: f64,
    /// The normalised names differ (a typo, a transliteration), not only their keys.
    pub name_differs: bool,
    /// The earlier application gave another passport or mobile phone (both known).
    pub other_documents: bool,
}

fn app_key(partner_id: &str, application_id: &str) -> String {
    format!("{partner_id}{KEY_SEP}{application_id}")
}

fn index_key(kind: &str, value: &str) -> String {
    format!("{kind}{KEY_SEP}{value}")
}

/// The serialized form: records, the per-key lists and the per-application flags,
/// each sorted so that equal states give equal bytes.
#[derive(Serialize, Deserialize)]
struct SnapshotBody {
    next_seq: u64,
    records: Vec<Record>,
    by_key: Vec<(String, Vec<u32>)>,
    finish_counted: Vec<String>,
    /// (request-key hash, newest event day), sorted by hash.
    logged: Vec<(u64, i32)>,
    by_birth: Vec<(String, Vec<u32>)>,
}

/// Version 2 of [`SnapshotBody`]: logged request-key hashes without their day.
#[derive(Serialize, Deserialize)]
struct SnapshotBodyV2 {
    next_seq: u64,
    records: Vec<Record>,
    by_key: Vec<(String, Vec<u32>)>,
    finish_counted: Vec<String>,
    logged: Vec<u64>,
    by_birth: Vec<(String, Vec<u32>)>,
}

/// Version 1 of [`SnapshotBody`]: no birth-date blocks.
#[derive(Deserialize)]
struct SnapshotBodyV1 {
    next_seq: u64,
    records: Vec<Record>,
    by_key: Vec<(String, Vec<u32>)>,
    finish_counted: Vec<String>,
    logged: Vec<u64>,
}

/// The record at `pos` of `records` unless it was dropped (a tombstone, or a position
/// before the first segment held).
fn live_record(records: &Segmented<Record>, pos: u32) -> Option<&Record> {
    records.get(pos as usize).filter(|r| r.seq != 0)
}

/// Appends `record` (live, or a tombstone) keeping each segment's earliest live time.
fn push_record(records: &mut Segmented<Record>, seg_min: &mut VecDeque<i64>, record: Record) {
    let time = if record.seq == 0 {
        i64::MAX
    } else {
        record.event_time_us
    };
    records.push(record);
    if seg_min.len() < records.segments().len() {
        seg_min.push_back(i64::MAX);
    }
    if let Some(earliest) = seg_min.back_mut() {
        *earliest = (*earliest).min(time);
    }
}

fn push_capped(list: &mut VecDeque<u32>, pos: u32, cap: usize) {
    if list.len() == cap {
        list.pop_front();
    }
    list.push_back(pos);
}

fn sorted_lists(map: &HashMap<String, VecDeque<u32>>) -> Vec<(String, Vec<u32>)> {
    let mut out: Vec<(String, Vec<u32>)> = map
        .iter()
        .map(|(k, v)| (k.clone(), v.iter().copied().collect()))
        .collect();
    out.sort_unstable();
    out
}

/// A version 3 [`SnapshotBody`] as it was written (tests write one to read it back).
#[cfg(test)]
#[derive(Serialize)]
struct SnapshotBodyRef<'a> {
    next_seq: u64,
    records: &'a [Record],
    by_key: Vec<(&'a str, &'a VecDeque<u32>)>,
    finish_counted: Vec<&'a str>,
    logged: Vec<(u64, i32)>,
    by_birth: Vec<(&'a str, &'a VecDeque<u32>)>,
}

impl MatchIndex {
    /// An empty index.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of application events held.
    pub fn len(&self) -> usize {
        self.live
    }

    /// Whether no application is held.
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// The record at `pos` unless retention dropped it.
    fn live_at(&self, pos: u32) -> Option<&Record> {
        live_record(&self.records, pos)
    }

    /// The next check's sequence number (every check, application or payment, takes one).
    pub fn take_seq(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq
    }

    /// Records that the log holds an event with this request key, of event time
    /// `event_time_us` (µs since the epoch): the hash is kept until retention passes
    /// the newest such event (see [`Self::prune`]).
    pub fn note_logged(&mut self, request_key: &str, event_time_us: i64) {
        let day = day_of(event_time_us);
        if self.logged_kept_from.is_some_and(|kept| day < kept) {
            self.logged_kept_from = None; // the next prune sweeps again
        }
        let hash = request_hash(request_key);
        self.logged
            .shard_mut(&hash)
            .entry(hash)
            .and_modify(|d| *d = (*d).max(day))
            .or_insert(day);
    }

    /// Whether the log may hold an event with this request key: `false` is certain
    /// (every logged key still in the store was noted), `true` needs the store's exact
    /// answer.
    pub fn maybe_logged(&self, request_key: &str) -> bool {
        let hash = request_hash(request_key);
        self.logged.shard(&hash).contains_key(&hash)
    }

    /// Number of logged request-key hashes held.
    pub fn logged_len(&self) -> usize {
        self.logged.shards().iter().map(HashMap::len).sum()
    }

    /// Whether the aggregates already counted the finish of this application.
    pub fn finish_counted(&self, partner_id: &str, application_id: &str) -> bool {
        let app = app_key(partner_id, application_id);
        self.apps
            .shard(&app)
            .get(&app)
            .is_some_and(|a| a.finish_counted)
    }

    /// Records that the aggregates counted the finish of this application.
    pub fn set_finish_counted(&mut self, partner_id: &str, application_id: &str) {
        let app = app_key(partner_id, application_id);
        self.apps
            .shard_mut(&app)
            .entry(app)
            .or_default()
            .finish_counted = true;
    }

    /// Indexes `record` under `keys` (kind, normalised value).
    pub fn add(&mut self, record: Record, keys: &[(String, String)]) -> CoreResult<()> {
        if record.seq == 0 {
            return Err(CoreError::Internal {
                reason: "an indexed record needs its sequence number (from 1)".into(),
            });
        }
        if self.records.end() >= MAX_POSITIONS {
            self.compact();
        }
        let pos = u32::try_from(self.records.end()).map_err(|_| CoreError::Internal {
            reason: "the match index is full (2^32 applications)".into(),
        })?;
        for (kind, value) in keys {
            let key = index_key(kind, value);
            let list = self.by_key.shard_mut(&key).entry(key).or_default();
            if list.len() >= MAX_PER_KEY {
                // Shed the dropped first: a live entry is evicted only by the cap.
                list.retain(|&p| live_record(&self.records, p).is_some());
            }
            push_capped(list, pos, MAX_PER_KEY);
        }
        if !record.birth_date.is_empty() && !record.name.is_empty() {
            let date = &record.birth_date;
            let block = self
                .by_birth
                .shard_mut(date)
                .entry(date.clone())
                .or_default();
            push_capped(block, pos, MAX_PER_BIRTH_DATE);
        }
        let app = app_key(&record.partner_id, &record.application_id);
        self.apps
            .shard_mut(&app)
            .entry(app)
            .or_default()
            .records
            .push(pos);
        self.live += 1;
        push_record(&mut self.records, &mut self.seg_min, record);
        Ok(())
    }

    /// Records an outcome on every indexed event of the application (empty values
    /// leave the field as it is).
    pub fn mark(&mut self, partner_id: &str, application_id: &str, result: &str, fraud: &str) {
        let app = app_key(partner_id, application_id);
        let Some(app) = self.apps.shard(&app).get(&app) else {
            return;
        };
        for &pos in &app.records {
            let r = &mut self.records[pos as usize];
            if !result.is_empty() {
                result.clone_into(&mut r.result);
            }
            if !fraud.is_empty() {
                fraud.clone_into(&mut r.fraud_status);
            }
        }
    }

    /// Earlier applications whose applicant has `current`'s birth date and a name of
    /// similarity at least `threshold` (Jaro–Winkler of the [`name_key`]s), the caller's
    /// other events of the same application left out; in block order (oldest first).
    /// Compares with at most [`MAX_PER_BIRTH_DATE`] candidates.
    pub fn similar(&self, current: &Record, caller: &str, threshold: f64) -> Vec<Similar> {
        let Some(block) = self
            .by_birth
            .shard(&current.birth_date)
            .get(&current.birth_date)
            .filter(|_| !current.name.is_empty())
        else {
            return Vec::new();
        };
        let mine = name_key(&current.name);
        let differ = |a: &str, b: &str| !a.is_empty() && !b.is_empty() && a != b;
        block
            .iter()
            .filter_map(|&pos| {
                let r = self.live_at(pos)?;
                if r.partner_id == caller && r.application_id == current.application_id {
                    return None;
                }
                let similarity = if r.name == current.name {
                    1.0
                } else {
                    strsim::jaro_winkler(&mine, &name_key(&r.name))
                };
                (similarity >= threshold).then(|| Similar {
                    pos,
                    similarity,
                    name_differs: r.name != current.name,
                    other_documents: differ(&r.passport, &current.passport)
                        || differ(&r.phone, &current.phone),
                })
            })
            .collect()
    }

    /// Earlier applications sharing a key of `kinds` — or, for [`SIMILAR_PERSON`], in
    /// `similar` with a name that differs — most recent first (event time, then
    /// sequence), at most [`MAX_PER_RULE`], masked for `caller`; the caller's other
    /// events of the same application are left out. A name found similar is reported
    /// FUZZY with its similarity.
    pub fn matches(
        &self,
        kinds: &[String],
        keys: &[(String, String)],
        similar: &[Similar],
        current: &Record,
        caller: &str,
        report_name: &str,
    ) -> Vec<Match> {
        // Each record with the shared key that found it (`None`: found as a similar
        // person, or by a key its fields already show).
        let mut found: Vec<(&Record, Option<(&KeyField, &str)>)> = Vec::new();
        if kinds.iter().any(|k| k == SIMILAR_PERSON) {
            found.extend(
                similar
                    .iter()
                    .filter(|s| s.name_differs)
                    .filter_map(|s| Some((self.live_at(s.pos)?, None))),
            );
        }
        for (kind, value) in keys {
            if !kinds.iter().any(|k| k == kind) {
                continue;
            }
            let key = index_key(kind, value);
            let Some(list) = self.by_key.shard(&key).get(&key) else {
                continue;
            };
            let shown = KEY_FIELDS
                .iter()
                .find(|f| f.0 == kind)
                .map(|f| (f, &**value));
            for r in list.iter().filter_map(|&pos| self.live_at(pos)) {
                if r.partner_id == caller && r.application_id == current.application_id {
                    continue;
                }
                found.push((r, shown));
            }
        }
        // Stable: the entries of one record stay together, in key order.
        found.sort_by_key(|(r, _)| std::cmp::Reverse((r.event_time_us, r.seq)));
        let mut out: Vec<Match> = Vec::new();
        let mut last_seq = None;
        for (h, shown) in found {
            if last_seq != Some(h.seq) {
                if out.len() == MAX_PER_RULE {
                    break;
                }
                last_seq = Some(h.seq);
                let fuzzy = similar
                    .iter()
                    .find(|s| self.live_at(s.pos).is_some_and(|r| r.seq == h.seq))
                    .map(|s| s.similarity);
                out.push(masked(h, current, caller, report_name, fuzzy));
            }
            if let (Some(m), Some(((_, path, mask), value))) = (out.last_mut(), shown) {
                if !m
                    .fields
                    .iter()
                    .any(|f| f.field == *path && f.current_value == value)
                {
                    m.fields.push(MatchedField {
                        field: path,
                        kind: FieldMatch::Exact,
                        current_value: value.to_owned(),
                        historical_value: if m.own_application {
                            value.to_owned()
                        } else {
                            mask(value)
                        },
                    });
                }
            }
        }
        out
    }

    /// Forgets every application event older than `before_us` (event time, µs):
    /// retention of the hot state, as the store forgets them. An application with no
    /// event left forgets its counted-finish mark too (a replay of the purged log would
    /// not have it). Logged request-key hashes whose newest event day is more than
    /// [`LOGGED_MARGIN_DAYS`] before the horizon's day are forgotten too, as the store
    /// forgets an event's request id with the event: a retry of such a request is a
    /// new write. The sequence counter stays. Returns how many records were dropped.
    /// Sweeps every shard: [`Self::prune_step`] is the serving-time form.
    pub fn prune(&mut self, before_us: i64) -> usize {
        self.prune_step(before_us, SHARDS)
    }

    /// [`Self::prune`] with the lazy part bounded: every record older than `before_us`
    /// is dropped (visiting only segments holding one), and `sweep_shards` of the
    /// [`SHARDS`] shards of the key lists (and of the applications, for finish marks
    /// without events) are swept, in turn from call to call. Answers
    /// are the same as after a full prune; what waits is memory. The logged keys move
    /// by whole days: the first call in a new horizon day sweeps them all.
    pub fn prune_step(&mut self, before_us: i64, sweep_shards: usize) -> usize {
        let keep_from = day_of(before_us).saturating_sub(LOGGED_MARGIN_DAYS);
        let sweep_shards = sweep_shards.clamp(1, SHARDS);
        let swept: Vec<usize> = (0..sweep_shards)
            .map(|i| (self.sweep + i) % SHARDS)
            .collect();
        self.sweep = (self.sweep + sweep_shards) % SHARDS;
        if !self.logged_kept_from.is_some_and(|kept| keep_from <= kept) {
            for shard in self.logged.shards_mut() {
                shard.retain(|_, day| *day >= keep_from);
            }
            self.logged_kept_from = Some(keep_from);
        }
        let mut dropped = 0;
        for seg in 0..self.seg_min.len() {
            if self.seg_min[seg] >= before_us {
                continue;
            }
            let first = self.records.base() + seg * SEGMENT;
            let mut earliest = i64::MAX;
            for at in 0..self.records.segment_len(seg) {
                let r = &self.records[first + at];
                if r.seq == 0 {
                    continue;
                }
                if r.event_time_us < before_us {
                    self.forget(first + at);
                    dropped += 1;
                } else {
                    earliest = earliest.min(r.event_time_us);
                }
            }
            self.seg_min[seg] = earliest;
        }
        while self.seg_min.front() == Some(&i64::MAX) && self.records.pop_front() {
            self.seg_min.pop_front();
        }
        for &i in &swept {
            let records = &self.records;
            self.by_key.shards_mut()[i].retain(|_, list| {
                list.retain(|&p| live_record(records, p).is_some());
                !list.is_empty()
            });
            // A finish mark without any event held (an outcome for an application whose
            // events are gone, or never came) is forgotten too.
            self.apps.shards_mut()[i].retain(|_, app| !app.records.is_empty());
        }
        dropped
    }

    /// Drops the record at `pos`: a tombstone stays; its application and birth-date
    /// block let go of it now (the key lists, lazily).
    fn forget(&mut self, pos: usize) {
        let record = std::mem::take(&mut self.records[pos]);
        self.live -= 1;
        let pos = pos as u32;
        let app = app_key(&record.partner_id, &record.application_id);
        let apps = self.apps.shard_mut(&app);
        if let Some(state) = apps.get_mut(&app) {
            state.records.retain(|&p| p != pos);
            if state.records.is_empty() {
                apps.remove(&app);
            }
        }
        if !record.birth_date.is_empty() && !record.name.is_empty() {
            let blocks = self.by_birth.shard_mut(&record.birth_date);
            if let Some(block) = blocks.get_mut(&record.birth_date) {
                block.retain(|&p| p != pos);
                if block.is_empty() {
                    blocks.remove(&record.birth_date);
                }
            }
        }
    }

    /// Renumbers the live records from position 0 (the key lists, applications and
    /// blocks follow), forgetting the tombstones: done only when positions would run
    /// out of a `u32` — once in 4 billion applications — so it may take a while.
    fn compact(&mut self) {
        let base = self.records.base();
        let mut moved: Vec<Option<u32>> = Vec::with_capacity(self.records.len());
        let mut kept = Segmented::default();
        let mut seg_min = VecDeque::new();
        for record in self.records.drain_all() {
            if record.seq == 0 {
                moved.push(None);
            } else {
                // Fewer than before, so within u32 as the positions were.
                moved.push(Some(kept.end() as u32));
                push_record(&mut kept, &mut seg_min, record);
            }
        }
        self.records = kept;
        self.seg_min = seg_min;
        let renumber = |pos: &mut u32| {
            let new = (*pos as usize)
                .checked_sub(base)
                .and_then(|at| moved.get(at).copied().flatten());
            if let Some(new) = new {
                *pos = new;
            }
            new.is_some()
        };
        for shard in self.by_key.shards_mut() {
            shard.retain(|_, list| {
                list.retain_mut(renumber);
                !list.is_empty()
            });
        }
        for shard in self.apps.shards_mut() {
            for app in shard.values_mut() {
                app.records.retain_mut(renumber);
            }
        }
        for shard in self.by_birth.shards_mut() {
            shard.retain(|_, list| {
                list.retain_mut(renumber);
                !list.is_empty()
            });
        }
    }

    /// The whole index as versioned bytes: magic, version, the first held position and
    /// the retention sweep's cursor (little-endian `u64` each), then sections, each a
    /// little-endian `u64` byte length and postcard: the head (sequence counter,
    /// counted finishes, logged request keys, birth-date blocks), the key lists, and the
    /// records in sections of [`SEGMENT`] (one per segment, each with its record count).
    /// Equal states give equal bytes: the key lists go shard by shard, each shard in its
    /// first-insertion order (the same for the same history, and kept by a restore),
    /// the rest sorted.
    pub fn snapshot(&self) -> CoreResult<Vec<u8>> {
        let mut finish_counted: Vec<&str> = self
            .apps
            .iter()
            .filter(|(_, a)| a.finish_counted)
            .map(|(k, _)| k.as_str())
            .collect();
        finish_counted.sort_unstable();
        let mut logged: Vec<(u64, i32)> = self.logged.iter().map(|(&h, &d)| (h, d)).collect();
        logged.sort_unstable();
        let mut by_birth: Vec<(&str, &VecDeque<u32>)> =
            self.by_birth.iter().map(|(k, v)| (k.as_str(), v)).collect();
        by_birth.sort_unstable_by_key(|(k, _)| *k);
        let head = SnapshotHeadRef {
            next_seq: self.next_seq,
            finish_counted,
            logged,
            by_birth,
        };
        let by_key: Vec<(&str, &VecDeque<u32>)> =
            self.by_key.iter().map(|(k, v)| (k.as_str(), v)).collect();
        let mut out = Vec::with_capacity(64 + self.records.len() * 96);
        out.extend_from_slice(SNAPSHOT_MAGIC);
        out.extend_from_slice(&SNAPSHOT_VERSION.to_le_bytes());
        out.extend_from_slice(&(self.records.base() as u64).to_le_bytes());
        out.extend_from_slice(&(self.sweep as u64).to_le_bytes());
        out = section(out, |out| postcard::to_extend(&head, out))?;
        out = section(out, |out| postcard::to_extend(&by_key, out))?;
        let sections = self.records.segments();
        out.extend_from_slice(&(sections.len() as u64).to_le_bytes());
        for records in sections {
            out.extend_from_slice(&(records.len() as u64).to_le_bytes());
            out = section(out, |mut out| {
                for r in records {
                    out = postcard::to_extend(r, out)?;
                }
                Ok(out)
            })?;
        }
        Ok(out)
    }

    /// An index rebuilt from [`Self::snapshot`] bytes: the record sections are decoded
    /// on several threads while others rebuild the key lists and the head's tables. A
    /// version 3 snapshot (one body) is read on one thread. A version 1 snapshot (before the
    /// birth-date blocks) is migrated: the blocks are rebuilt from its records in their
    /// order, as if they had been kept all along (a block then holds the latest
    /// surviving applications of its date, where a live one could have evicted some
    /// before a prune). A version 1 or 2 snapshot's logged request-key hashes carry no
    /// day: each gets the snapshot's newest day (that of its newest record), so they
    /// are pruned one retention period after the snapshot, never earlier than the store
    /// forgets the keys; a snapshot without records keeps them (never pruned) since it
    /// has no day to give. Another format version, a foreign or corrupt snapshot is
    /// refused with a message saying so.
    pub fn restore(data: &[u8]) -> CoreResult<Self> {
        let bad = |why: String| CoreError::invalid("snapshot", why);
        let rest = data
            .strip_prefix(SNAPSHOT_MAGIC.as_slice())
            .ok_or_else(|| bad("not a match index snapshot (bad magic)".into()))?;
        let (ver, rest) = rest
            .split_first_chunk::<2>()
            .ok_or_else(|| bad("truncated header".into()))?;
        let ver = u16::from_le_bytes(*ver);
        let corrupt = |e: postcard::Error| bad(format!("corrupt or truncated: {e}"));
        let v2: SnapshotBodyV2 = match ver {
            5 | 4 => return Self::restore_sections(rest, ver),
            3 => {
                let body: SnapshotBody = postcard::from_bytes(rest).map_err(corrupt)?;
                return Self::from_body(body);
            }
            2 => postcard::from_bytes(rest).map_err(corrupt)?,
            1 => {
                let v1: SnapshotBodyV1 = postcard::from_bytes(rest).map_err(corrupt)?;
                let mut blocks: HashMap<String, VecDeque<u32>> = HashMap::default();
                for (pos, r) in v1.records.iter().enumerate() {
                    if !r.birth_date.is_empty() && !r.name.is_empty() {
                        let block = blocks.entry(r.birth_date.clone()).or_default();
                        // Positions fit u32: the index refuses more records.
                        push_capped(block, pos as u32, MAX_PER_BIRTH_DATE);
                    }
                }
                SnapshotBodyV2 {
                    next_seq: v1.next_seq,
                    records: v1.records,
                    by_key: v1.by_key,
                    finish_counted: v1.finish_counted,
                    logged: v1.logged,
                    by_birth: sorted_lists(&blocks),
                }
            }
            _ => {
                return Err(bad(format!(
                    "match index snapshot format version {ver} cannot be read by this \
                     build, which reads versions 1 to {SNAPSHOT_VERSION}; rebuild the \
                     index by replaying the event log"
                )))
            }
        };
        let day = v2
            .records
            .iter()
            .map(|r| r.event_time_us)
            .max()
            .map_or(i32::MAX, day_of);
        Self::from_body(SnapshotBody {
            next_seq: v2.next_seq,
            records: v2.records,
            by_key: v2.by_key,
            finish_counted: v2.finish_counted,
            logged: v2.logged.into_iter().map(|h| (h, day)).collect(),
            by_birth: v2.by_birth,
        })
    }

    fn restore_sections(mut rest: &[u8], version: u16) -> CoreResult<Self> {
        let bad = damaged;
        // Version 5 starts with the first held position and the sweep's cursor.
        let (base, sweep) = if version >= 5 {
            (take_u64(&mut rest)?, take_u64(&mut rest)?)
        } else {
            (0, 0)
        };
        let base = usize::try_from(base)
            .ok()
            .filter(|&b| b % SEGMENT == 0 && b < MAX_POSITIONS)
            .ok_or_else(|| bad("the first held position is not a segment's"))?;
        let sweep = usize::try_from(sweep).unwrap_or(usize::MAX);
        if sweep >= SHARDS {
            return Err(bad("the sweep cursor is not a shard"));
        }
        let head = take_section(&mut rest)?;
        let keys = take_section(&mut rest)?;
        let n_sections = take_u64(&mut rest)?;
        let mut sections = Vec::new();
        let mut n = 0usize;
        for _ in 0..n_sections {
            let count = take_u64(&mut rest)?;
            let body = take_section(&mut rest)?;
            // A record takes at least 11 bytes (two varints and nine empty strings).
            let count = usize::try_from(count)
                .ok()
                .filter(|&c| c <= body.len() / 11)
                .ok_or_else(|| bad("a record section's count does not fit its length"))?;
            n = n.saturating_add(count);
            sections.push((count, body));
        }
        if !rest.is_empty() {
            return Err(bad("trailing bytes after the last record section"));
        }
        let end = base.saturating_add(n);
        if end > MAX_POSITIONS {
            return Err(bad("more records than an index holds"));
        }
        std::thread::scope(|scope| {
            let by_key = scope.spawn(|| key_lists(keys, end));
            let head = scope.spawn(|| SnapshotHead::decode(head, end));
            let (records, seg_min, live) = decode_records(base, &sections)?;
            let mut apps: Sharded<HashMap<String, AppState>> = Sharded::with(|_| {
                HashMap::with_capacity_and_hasher(live / 2 / SHARDS, Hasher::default())
            });
            for (at, record) in records.iter().enumerate() {
                if record.seq == 0 {
                    continue;
                }
                let app = app_key(&record.partner_id, &record.application_id);
                apps.shard_mut(&app)
                    .entry(app)
                    .or_default()
                    .records
                    .push((base + at) as u32);
            }
            let by_key = joined(by_key.join())?;
            let head = joined(head.join())?;
            for app in head.finish_counted {
                apps.shard_mut(&app).entry(app).or_default().finish_counted = true;
            }
            Ok(Self {
                next_seq: head.next_seq,
                records,
                seg_min,
                live,
                sweep,
                logged_kept_from: None,
                by_key,
                apps,
                logged: head.logged,
                by_birth: head.by_birth,
            })
        })
    }

    fn from_body(body: SnapshotBody) -> CoreResult<Self> {
        let bad = |why: String| CoreError::invalid("snapshot", why);
        let n = body.records.len();
        let mut index = Self {
            next_seq: body.next_seq,
            logged: sharded(body.logged),
            ..Self::default()
        };
        for (pos, record) in body.records.into_iter().enumerate() {
            if record.seq != 0 {
                let app = app_key(&record.partner_id, &record.application_id);
                index
                    .apps
                    .shard_mut(&app)
                    .entry(app)
                    .or_default()
                    .records
                    .push(pos as u32);
                index.live += 1;
            }
            push_record(&mut index.records, &mut index.seg_min, record);
        }
        for (key, list) in body.by_key {
            if list.len() > MAX_PER_KEY || list.iter().any(|&p| p as usize >= n) {
                return Err(bad(format!("key list of {key:?} does not fit the records")));
            }
            index.by_key.shard_mut(&key).insert(key, list.into());
        }
        for (date, list) in body.by_birth {
            if list.len() > MAX_PER_BIRTH_DATE || list.iter().any(|&p| p as usize >= n) {
                return Err(bad(format!(
                    "birth date block {date:?} does not fit the records"
                )));
            }
            index.by_birth.shard_mut(&date).insert(date, list.into());
        }
        for app in body.finish_counted {
            index
                .apps
                .shard_mut(&app)
                .entry(app)
                .or_default()
                .finish_counted = true;
        }
        Ok(index)
    }
}

/// The head section of a version 4 or 5 snapshot, as written.
#[derive(Serialize)]
struct SnapshotHeadRef<'a> {
    next_seq: u64,
    finish_counted: Vec<&'a str>,
    /// (request-key hash, newest event day), sorted by hash.
    logged: Vec<(u64, i32)>,
    by_birth: Vec<(&'a str, &'a VecDeque<u32>)>,
}

/// The head section of a version 4 or 5 snapshot, read into the index's tables.
struct SnapshotHead {
    next_seq: u64,
    finish_counted: Vec<String>,
    logged: Sharded<HashMap<u64, i32>>,
    by_birth: Sharded<HashMap<String, VecDeque<u32>>>,
}

impl SnapshotHead {
    fn decode(bytes: &[u8], n: usize) -> CoreResult<Self> {
        #[derive(Deserialize)]
        struct Body {
            next_seq: u64,
            finish_counted: Vec<String>,
            logged: Vec<(u64, i32)>,
            by_birth: Vec<(String, Vec<u32>)>,
        }
        let body: Body = postcard::from_bytes(bytes)
            .map_err(|e| CoreError::invalid("snapshot", format!("corrupt or truncated: {e}")))?;
        let mut by_birth: Sharded<HashMap<String, VecDeque<u32>>> = Sharded::default();
        for (date, list) in body.by_birth {
            if list.len() > MAX_PER_BIRTH_DATE || list.iter().any(|&p| p as usize >= n) {
                return Err(CoreError::invalid(
                    "snapshot",
                    format!("birth date block {date:?} does not fit the records"),
                ));
            }
            by_birth.shard_mut(&date).insert(date, list.into());
        }
        Ok(Self {
            next_seq: body.next_seq,
            finish_counted: body.finish_counted,
            logged: sharded(body.logged),
            by_birth,
        })
    }
}

/// The key lists section, checked against `n` records.
fn key_lists(bytes: &[u8], n: usize) -> CoreResult<Sharded<KeyLists>> {
    let lists: Vec<(String, Vec<u32>)> = postcard::from_bytes(bytes)
        .map_err(|e| CoreError::invalid("snapshot", format!("corrupt or truncated: {e}")))?;
    let each = lists.len() / SHARDS;
    let mut by_key: Sharded<KeyLists> =
        Sharded::with(|_| IndexMap::with_capacity_and_hasher(each, Hasher::default()));
    for (key, list) in lists {
        if list.len() > MAX_PER_KEY || list.iter().any(|&p| p as usize >= n) {
            return Err(CoreError::invalid(
                "snapshot",
                format!("key list of {key:?} does not fit the records"),
            ));
        }
        by_key.shard_mut(&key).insert(key, list.into());
    }
    Ok(by_key)
}

/// `(hash, day)` pairs as the sharded table of logged request keys.
fn sharded(logged: Vec<(u64, i32)>) -> Sharded<HashMap<u64, i32>> {
    let mut out: Sharded<HashMap<u64, i32>> = Sharded::default();
    for (hash, day) in logged {
        out.shard_mut(&hash).insert(hash, day);
    }
    out
}

/// The records of every section, decoded on up to [`parallel::MAX_THREADS`] threads,
/// each section into a segment of its own, from position `base`; with each segment's
/// earliest live event time and the number of live records.
fn decode_records(
    base: usize,
    sections: &[(usize, &[u8])],
) -> CoreResult<(Segmented<Record>, VecDeque<i64>, usize)> {
    let decoded = parallel::map(sections.len(), |i| decode_section(sections[i]))?;
    let live = decoded.iter().map(|d| d.2).sum();
    let aligned = !decoded
        .last()
        .is_some_and(|(records, ..)| records.is_empty())
        && decoded
            .iter()
            .rev()
            .skip(1)
            .all(|(records, ..)| records.len() == SEGMENT);
    let seg_min: VecDeque<i64> = decoded.iter().map(|d| d.1).collect();
    let records = Segmented::from_parts(base, decoded.into_iter().map(|d| d.0).collect());
    if aligned {
        return Ok((records, seg_min, live));
    }
    // Sections of other sizes (not written by this build): the segments' times anew.
    let seg_min = records
        .segments()
        .map(|segment| {
            segment
                .iter()
                .filter(|r| r.seq != 0)
                .map(|r| r.event_time_us)
                .min()
                .unwrap_or(i64::MAX)
        })
        .collect();
    Ok((records, seg_min, live))
}

/// One record section: its records (exactly `count`: a full section is a segment as
/// it is, a short one is regrouped, so crafted empty sections cannot make a restore
/// allocate segments), their earliest live event time and how many are live.
fn decode_section((count, mut body): (usize, &[u8])) -> CoreResult<(Vec<Record>, i64, usize)> {
    let mut records = Vec::with_capacity(count);
    let (mut earliest, mut live) = (i64::MAX, 0);
    for _ in 0..count {
        let (record, rest) = postcard::take_from_bytes::<Record>(body)
            .map_err(|e| CoreError::invalid("snapshot", format!("corrupt or truncated: {e}")))?;
        if record.seq != 0 {
            earliest = earliest.min(record.event_time_us);
            live += 1;
        }
        records.push(record);
        body = rest;
    }
    if !body.is_empty() {
        return Err(damaged("a record section is longer than its records"));
    }
    Ok((records, earliest, live))
}

/// A snapshot that does not decode: cut short, or bytes that are not what was written.
fn damaged(why: &str) -> CoreError {
    CoreError::invalid("snapshot", format!("corrupt or truncated: {why}"))
}

/// A restore thread's answer (a panic in it, never expected, is an error too).
fn joined<T>(result: std::thread::Result<CoreResult<T>>) -> CoreResult<T> {
    result.map_err(|_| CoreError::invalid("snapshot", "a restore thread failed"))?
}

/// Appends a section: its byte length (little-endian `u64`), then what `write` adds.
fn section(
    mut out: Vec<u8>,
    write: impl FnOnce(Vec<u8>) -> postcard::Result<Vec<u8>>,
) -> CoreResult<Vec<u8>> {
    let at = out.len();
    out.extend_from_slice(&[0; 8]);
    let mut out =
        write(out).map_err(|e| CoreError::invalid("snapshot", format!("cannot encode: {e}")))?;
    let len = (out.len() - at - 8) as u64;
    out[at..at + 8].copy_from_slice(&len.to_le_bytes());
    Ok(out)
}

fn take_u64(rest: &mut &[u8]) -> CoreResult<u64> {
    let (v, after) = rest
        .split_first_chunk::<8>()
        .ok_or_else(|| damaged("truncated section header"))?;
    *rest = after;
    Ok(u64::from_le_bytes(*v))
}

fn take_section<'a>(rest: &mut &'a [u8]) -> CoreResult<&'a [u8]> {
    let len = take_u64(rest)?;
    let len = usize::try_from(len)
        .ok()
        .filter(|&l| l <= rest.len())
        .ok_or_else(|| damaged("truncated section"))?;
    let (body, after) = rest.split_at(len);
    *rest = after;
    Ok(body)
}

/// Days since the epoch of a time in µs (floored; saturated to `i32`).
fn day_of(time_us: i64) -> i32 {
    let day = time_us.div_euclid(DAY_US);
    i32::try_from(day).unwrap_or(if day < 0 { i32::MIN } else { i32::MAX })
}

fn request_hash(request_key: &str) -> u64 {
    crate::matchkeys::key_hash("request", request_key) as u64
}

fn masked(
    h: &Record,
    current: &Record,
    caller: &str,
    report_name: &str,
    name_similarity: Option<f64>,
) -> Match {
    let own = h.partner_id == caller;
    let digest = Sha256::digest(format!("{report_name}{KEY_SEP}{}", h.seq).as_bytes());
    let match_ref = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    let fields = FIELDS
        .iter()
        .filter_map(|(path, get, mask)| {
            let (mine, theirs) = (get(current), get(h));
            if mine.is_empty() || theirs.is_empty() {
                return None;
            }
            let kind = if mine == theirs {
                FieldMatch::Exact
            } else {
                match name_similarity {
                    Some(sim) if *path == NAME_FIELD => FieldMatch::Fuzzy(sim),
                    _ => FieldMatch::Contradiction,
                }
            };
            Some(MatchedField {
                field: path,
                kind,
                current_value: mine.to_owned(),
                historical_value: if own { theirs.to_owned() } else { mask(theirs) },
            })
        })
        .collect();
    Match {
        match_ref,
        own_application: own,
        application_id: if own {
            h.application_id.clone()
        } else {
            String::new()
        },
        event_day_s: h.event_time_us.div_euclid(86_400_000_000) * 86_400,
        subtype: h.subtype.clone(),
        fields,
        result: h.result.clone(),
        fraud_status: h.fraud_status.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(seq: u64, partner: &str, app: &str, t: i64) -> Record {
        Record {
            seq,
            partner_id: partner.into(),
            application_id: app.into(),
            subtype: "LOAN_APP_CREATE".into(),
            event_time_us: t,
            phone: "79991234567".into(),
            name: "ivanov ivan".into(),
            birth_date: "1990-05-15".into(),
            passport: "4510123456".into(),
            result: String::new(),
            fraud_status: String::new(),
        }
    }

    fn phone() -> Vec<(String, String)> {
        vec![("phone".into(), "79991234567".into())]
    }

    #[test]
    fn masks_hide_all_but_what_the_policy_allows() {
        assert_eq!(mask_phone("79991234567"), "+7******4567");
        assert_eq!(mask_phone("1234"), "****");
        assert_eq!(mask_name("ivanov ivan"), "I*** I***");
        assert_eq!(mask_passport("4510123456"), "******3456");
        assert_eq!(mask_passport("12"), "12");
        assert_eq!(mask_birth_date("1990-05-15"), "1990-**-**");
        assert_eq!(mask_email("ivan@example.com"), "i***@example.com");
        assert_eq!(mask_ip("10.1.2.3"), "10.1.*.*");
        assert_eq!(mask_ip("2001:db8:1::2"), "2001:db8:*:*:*");
    }

    #[test]
    fn matches_are_newest_first_masked_and_never_the_same_application() {
        let mut index = MatchIndex::new();
        index.add(record(1, "a", "a1", 10), &phone()).unwrap();
        index.add(record(2, "b", "b1", 30), &phone()).unwrap();
        index.add(record(3, "c", "own", 20), &phone()).unwrap();
        let mut current = record(4, "c", "own", 40);
        current.name = "petrov petr".into();
        let kinds = vec!["phone".to_owned()];
        let found = index.matches(&kinds, &phone(), &[], &current, "c", "reports/x");
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].event_day_s, 0);
        assert!(!found[0].own_application && found[0].application_id.is_empty());
        let name = &found[0].fields[1];
        assert_eq!(name.kind, FieldMatch::Contradiction);
        assert_eq!(name.historical_value, "I*** I***");
        assert_eq!(found[0].fields[0].historical_value, "+7******4567");
        // Another caller sees a1 as its own application, unmasked.
        let found = index.matches(&kinds, &phone(), &[], &current, "a", "reports/x");
        let own = found.iter().find(|m| m.own_application).unwrap();
        assert_eq!(own.application_id, "a1");
        assert_eq!(own.fields[0].historical_value, "79991234567");
        assert!(index
            .matches(&["passport".to_owned()], &phone(), &[], &current, "c", "r")
            .is_empty());
    }

    #[test]
    fn a_key_keeps_its_most_recent_applications() {
        let mut index = MatchIndex::new();
        for i in 0..(MAX_PER_KEY as u64 + 5) {
            index
                .add(record(i + 1, "a", &format!("a{i}"), i as i64), &phone())
                .unwrap();
        }
        let current = record(999, "z", "z", 1_000);
        let kinds = vec!["phone".to_owned()];
        let found = index.matches(&kinds, &phone(), &[], &current, "z", "r");
        assert_eq!(found.len(), MAX_PER_RULE);
        assert_eq!(index.by_key.iter().next().unwrap().1.len(), MAX_PER_KEY);
    }

    #[test]
    fn snapshot_restores_the_same_answers_and_refuses_other_versions() {
        let mut index = MatchIndex::new();
        index.take_seq();
        index.add(record(1, "a", "a1", 10), &phone()).unwrap();
        index.add(record(2, "b", "b1", 30), &phone()).unwrap();
        index.mark("a", "a1", "REJECTED", "CONFIRMED");
        index.set_finish_counted("a", "a1");
        index.note_logged("a/r1", 10);
        let bytes = index.snapshot().unwrap();
        let back = MatchIndex::restore(&bytes).unwrap();
        assert_eq!(back.snapshot().unwrap(), bytes);
        assert!(back.finish_counted("a", "a1") && !back.finish_counted("b", "b1"));
        assert!(back.maybe_logged("a/r1") && !back.maybe_logged("a/r2"));
        let current = record(3, "c", "c1", 40);
        let kinds = vec!["phone".to_owned()];
        assert_eq!(
            back.matches(&kinds, &phone(), &[], &current, "c", "r"),
            index.matches(&kinds, &phone(), &[], &current, "c", "r")
        );
        assert_eq!(
            back.matches(&kinds, &phone(), &[], &current, "c", "r")[1].result,
            "REJECTED"
        );
        let mut newer = bytes.clone();
        newer[8] = 9;
        let err = MatchIndex::restore(&newer).unwrap_err().to_string();
        assert!(err.contains("version 9"), "{err}");
        assert!(MatchIndex::restore(b"LGAGSNAP\x01\x00").is_err());
        assert!(MatchIndex::restore(&bytes[..bytes.len() - 3]).is_err());
    }

    #[test]
    fn prune_forgets_old_events_and_keeps_the_rest_answering_the_same() {
        let mut index = MatchIndex::new();
        for i in 1..=10u64 {
            index.take_seq();
            let app = format!("a{i}");
            index
                .add(record(i, "b", &app, i as i64 * 100), &phone())
                .unwrap();
            index.set_finish_counted("b", &app);
        }
        index.mark("b", "a7", "REJECTED", "CONFIRMED");
        index.set_finish_counted("b", "no-event"); // an outcome without an event held
        assert_eq!(index.prune(400), 3);
        assert_eq!(index.len(), 7);
        assert!(!index.finish_counted("b", "a3") && index.finish_counted("b", "a4"));
        assert!(!index.finish_counted("b", "no-event"));
        let current = record(11, "z", "z", 2_000);
        let kinds = vec!["phone".to_owned()];
        let found = index.matches(&kinds, &phone(), &[], &current, "b", "r");
        let apps: Vec<&str> = found.iter().map(|m| m.application_id.as_str()).collect();
        assert_eq!(apps, ["a10", "a9", "a8", "a7", "a6", "a5", "a4"]);
        assert_eq!(found[3].fraud_status, "CONFIRMED");
        assert_eq!(index.prune(400), 0);
        // A restored copy of the pruned index is the same index.
        let back = MatchIndex::restore(&index.snapshot().unwrap()).unwrap();
        assert_eq!(back.snapshot().unwrap(), index.snapshot().unwrap());
        assert_eq!(index.prune(10_000), 7);
        assert!(
            index.is_empty()
                && index.by_key.iter().next().is_none()
                && index.apps.iter().next().is_none()
        );
        assert_eq!(index.take_seq(), 11); // the counter goes on
    }

    fn person(seq: u64, partner: &str, app: &str, name: &str, birth: &str) -> Record {
        let mut r = record(seq, partner, app, seq as i64 * 10);
        r.name = name.into();
        r.birth_date = birth.into();
        r
    }

    #[test]
    fn name_keys_transliterate_and_unify_spellings() {
        assert_eq!(name_key("ivanov ivan"), "ivanov ivan");
        assert!(matches!(name_key("ivanov ivan"), Cow::Borrowed(_)));
        assert_eq!(name_key("иванов иван"), "ivanov ivan");
        assert_eq!(name_key("щукина юлия"), "shchukina yuliya");
        assert_eq!(name_key("julija  alexandrova"), "yuliya aleksandrova");
        assert_eq!(name_key("l123 f45"), "l123 f45");
        assert_eq!(name_similarity("Иванов Иван", "ivanov ivan"), 1.0);
        assert!(name_similarity("ivanov ivan", "ivanof ivan") > DEFAULT_NAME_SIMILARITY);
        assert!(name_similarity("ivanov ivan", "smirnov petr") < DEFAULT_NAME_SIMILARITY);
    }

    #[test]
    fn similar_names_are_found_within_the_birth_date_block_only() {
        let mut index = MatchIndex::new();
        let keys = phone();
        index
            .add(person(1, "a", "a1", "ivanov ivan", "1990-05-15"), &keys)
            .unwrap();
        index
            .add(person(2, "a", "a2", "иванов иван", "1990-05-15"), &keys)
            .unwrap();
        index
            .add(person(3, "a", "a3", "ivanof ivan", "1991-05-15"), &keys)
            .unwrap();
        index
            .add(person(4, "a", "a4", "smirnov petr", "1990-05-15"), &keys)
            .unwrap();
        let mut current = person(5, "b", "b1", "ivanof ivan", "1990-05-15");
        current.passport = "4599000000".into();
        let found = index.similar(&current, "b", DEFAULT_NAME_SIMILARITY);
        let seqs: Vec<u64> = found
            .iter()
            .map(|s| index.records[s.pos as usize].seq)
            .collect();
        assert_eq!(seqs, [1, 2]); // not the other birth date, not the other name
        assert!(found.iter().all(|s| s.name_differs && s.other_documents));
        assert!(found[0].similarity < 1.0 && found[0].similarity >= DEFAULT_NAME_SIMILARITY);
        // A fuzzy match reports its name FUZZY with the similarity, masked.
        let kinds = vec![SIMILAR_PERSON.to_owned()];
        let m = index.matches(&kinds, &[], &found, &current, "b", "r");
        assert_eq!(m.len(), 2);
        let names: Vec<&MatchedField> = m
            .iter()
            .flat_map(|m| &m.fields)
            .filter(|f| f.field == NAME_FIELD)
            .collect();
        assert!(names
            .iter()
            .all(|f| matches!(f.kind, FieldMatch::Fuzzy(s) if s >= DEFAULT_NAME_SIMILARITY)));
        let shown: Vec<&str> = names.iter().map(|f| f.historical_value.as_str()).collect();
        assert_eq!(shown, ["И*** И***", "I*** I***"]); // newest first
        assert!(m
            .iter()
            .all(|m| !m.own_application && m.application_id.is_empty()));
        // The strictest threshold keeps only equal keys (the transliterated one).
        let strict = index.similar(&person(6, "b", "b2", "ivanov ivan", "1990-05-15"), "b", 1.0);
        assert_eq!(strict.len(), 2);
        assert_eq!(strict.iter().filter(|s| s.name_differs).count(), 1);
    }

    #[test]
    fn a_birth_date_block_keeps_its_most_recent_applications() {
        let mut index = MatchIndex::new();
        for i in 0..(MAX_PER_BIRTH_DATE as u64 + 3) {
            let p = person(i + 1, "a", &format!("a{i}"), "ivanov ivan", "1990-05-15");
            index.add(p, &[]).unwrap();
        }
        let current = person(999, "b", "b", "ivanov ivan", "1990-05-15");
        let found = index.similar(&current, "b", 0.5);
        assert_eq!(found.len(), MAX_PER_BIRTH_DATE);
        assert_eq!(index.records[found[0].pos as usize].seq, 4);
    }

    #[test]
    fn record_sections_restore_in_parallel_and_version_3_is_still_read() {
        let mut index = MatchIndex::new();
        let n = SEGMENT as u64 + 3; // two record sections
        for i in 0..n {
            index.take_seq();
            let mut r = person(
                i + 1,
                ["a", "b", "c"][i as usize % 3],
                &format!("x{i}"),
                "ivanov ivan",
                &format!("19{:02}-01-{:02}", i % 90, 1 + i % 28),
            );
            r.phone = format!("7999{:07}", i % 50_000);
            let keys = vec![("phone".to_owned(), r.phone.clone())];
            index.add(r, &keys).unwrap();
            index.note_logged(&format!("a/r{i}"), i as i64 * 1000);
        }
        index
            .apps
            .shards_mut()
            .iter_mut()
            .flat_map(HashMap::values_mut)
            .step_by(7)
            .for_each(|a| a.finish_counted = true);
        let bytes = index.snapshot().unwrap();
        let back = MatchIndex::restore(&bytes).unwrap();
        assert_eq!(back.len(), n as usize);
        assert_eq!(back.snapshot().unwrap(), bytes);
        let probe = person(n + 1, "b", "new", "ivanof ivan", "1901-01-02");
        assert_eq!(
            back.similar(&probe, "b", DEFAULT_NAME_SIMILARITY),
            index.similar(&probe, "b", DEFAULT_NAME_SIMILARITY)
        );

        // The same state as one version 3 body.
        let mut finish_counted: Vec<&str> = index
            .apps
            .iter()
            .filter(|(_, a)| a.finish_counted)
            .map(|(k, _)| k.as_str())
            .collect();
        finish_counted.sort_unstable();
        let mut logged: Vec<(u64, i32)> = index.logged.iter().map(|(&h, &d)| (h, d)).collect();
        logged.sort_unstable();
        let mut by_birth: Vec<(&str, &VecDeque<u32>)> = index
            .by_birth
            .iter()
            .map(|(k, v)| (k.as_str(), v))
            .collect();
        by_birth.sort_unstable_by_key(|(k, _)| *k);
        let v3 = SnapshotBodyRef {
            next_seq: index.next_seq,
            records: &index.records.iter().cloned().collect::<Vec<_>>(),
            by_key: index.by_key.iter().map(|(k, v)| (k.as_str(), v)).collect(),
            finish_counted,
            logged,
            by_birth,
        };
        let mut old = SNAPSHOT_MAGIC.to_vec();
        old.extend_from_slice(&3u16.to_le_bytes());
        let old = postcard::to_extend(&v3, old).unwrap();
        assert_eq!(
            MatchIndex::restore(&old).unwrap().snapshot().unwrap(),
            bytes
        );

        // Damaged sections are refused, never a panic.
        let mut longer = bytes.clone();
        longer.push(0);
        for bad in [
            &bytes[..bytes.len() - 1],
            &bytes[..bytes.len() / 2],
            &bytes[..20],
            &longer,
        ] {
            let err = MatchIndex::restore(bad).unwrap_err();
            assert!(matches!(err, CoreError::InvalidArgument { .. }), "{err}");
        }
    }

    #[test]
    fn a_version_1_snapshot_is_migrated_with_its_blocks_rebuilt() {
        let mut index = MatchIndex::new();
        index.take_seq();
        index
            .add(person(1, "a", "a1", "ivanov ivan", "1990-05-15"), &phone())
            .unwrap();
        // Its only record's day: what a migrated hash gets.
        index.note_logged("a/r1", 10);
        let v1 = SnapshotBodyV1Out {
            next_seq: 1,
            records: index.records.iter().cloned().collect(),
            by_key: index
                .by_key
                .iter()
                .map(|(k, v)| (k.clone(), v.iter().copied().collect()))
                .collect(),
            finish_counted: Vec::new(),
            logged: index.logged.iter().map(|(&h, _)| h).collect(),
        };
        let mut bytes = SNAPSHOT_MAGIC.to_vec();
        bytes.extend_from_slice(&1u16.to_le_bytes());
        let bytes = postcard::to_extend(&v1, bytes).unwrap();
        let back = MatchIndex::restore(&bytes).unwrap();
        assert_eq!(back.snapshot().unwrap(), index.snapshot().unwrap());
        let current = person(2, "b", "b1", "ivanof ivan", "1990-05-15");
        assert_eq!(
            back.similar(&current, "b", DEFAULT_NAME_SIMILARITY).len(),
            1
        );
        let mut future = index.snapshot().unwrap();
        future[8] = 6;
        let err = MatchIndex::restore(&future).unwrap_err().to_string();
        assert!(
            err.contains("version 6") && err.contains("replaying"),
            "{err}"
        );
    }

    /// Event time of [`numbered`]'s record `seq`: `seq * 10`, but every seventh arrives
    /// late, 300,000 older (so dropped ones also sit between live ones).
    fn time_of(seq: u64) -> i64 {
        seq as i64 * 10 - if seq % 7 == 0 { 300_000 } else { 0 }
    }

    /// A record of application `x{seq / 3}` (three events each), one of 1,000 phones and
    /// 28 birth dates, at [`time_of`]`(seq)`.
    fn numbered(seq: u64) -> (Record, Vec<(String, String)>) {
        let mut r = person(
            seq,
            "a",
            &format!("x{}", seq / 3),
            "ivanov ivan",
            &format!("1990-01-{:02}", 1 + seq % 28),
        );
        r.phone = format!("7999{:07}", seq % 1_000);
        r.event_time_us = time_of(seq);
        let keys = vec![("phone".to_owned(), r.phone.clone())];
        (r, keys)
    }

    /// Matches by phone; similar applications by birth date (sequence, name differs).
    type Answers = (Vec<Vec<Match>>, Vec<Vec<(u64, bool)>>);

    /// What `index` answers for every phone and birth date of [`numbered`] (similar
    /// applications by their sequence numbers, as positions differ between indexes).
    fn answers(index: &MatchIndex) -> Answers {
        let kinds = vec!["phone".to_owned()];
        let current = person(10_000_000, "z", "z", "ivanov ivan", "1990-01-01");
        let by_phone = (0..1_000)
            .map(|p| {
                let keys = vec![("phone".to_owned(), format!("7999{p:07}"))];
                index.matches(&kinds, &keys, &[], &current, "z", "r")
            })
            .collect();
        let by_birth = (1..=28)
            .map(|d| {
                let mut probe = current.clone();
                probe.birth_date = format!("1990-01-{d:02}");
                index
                    .similar(&probe, "z", 0.5)
                    .iter()
                    .map(|s| (index.records[s.pos as usize].seq, s.name_differs))
                    .collect()
            })
            .collect();
        (by_phone, by_birth)
    }

    /// Every key's live entries (sequence numbers, in list order).
    fn live_lists(index: &MatchIndex) -> std::collections::BTreeMap<String, Vec<u64>> {
        index
            .by_key
            .iter()
            .map(|(k, list)| {
                let seqs = list.iter().filter_map(|&p| index.live_at(p)).map(|r| r.seq);
                (k.clone(), seqs.collect::<Vec<_>>())
            })
            .filter(|(_, seqs)| !seqs.is_empty())
            .collect()
    }

    #[test]
    fn retention_drops_without_renumbering_and_answers_as_an_eager_removal_would() {
        let first_batch = 2 * SEGMENT as u64 + 500;
        let total = 3 * SEGMENT as u64;
        let horizon = (SEGMENT as i64 + 1_001) * 10; // seq 1..=SEGMENT+1000, and late ones
        let survives = |seq: u64| time_of(seq) >= horizon;
        let mut live = MatchIndex::new();
        for seq in 1..=first_batch {
            let (r, keys) = numbered(seq);
            let app = r.application_id.clone();
            live.add(r, &keys).unwrap();
            if seq % 5 == 0 {
                live.set_finish_counted("a", &app);
            }
        }
        // The reference: the same index, every dropped entry removed from every list at
        // once (a prune sweeping all shards), as retention did before it went lazy.
        let mut eager = MatchIndex::restore(&live.snapshot().unwrap()).unwrap();
        assert_eq!(eager.prune(horizon), live.prune_step(horizon, 1));
        let dropped = (1..=first_batch).filter(|&s| !survives(s)).count();
        assert!(
            dropped > SEGMENT + 1_000 + 4_000,
            "late ones among the live"
        );
        assert_eq!(live.len(), first_batch as usize - dropped);
        assert_eq!(live.records.base(), SEGMENT, "the dead first segment left");
        assert_eq!(
            live.records.end(),
            first_batch as usize,
            "positions are kept"
        );
        // Lists hold dropped entries between live ones (the late arrivals).
        assert!(live.by_key.iter().any(|(_, list)| {
            let dead = |p: &u32| live.live_at(*p).is_none();
            list.iter().position(dead) > list.iter().position(|p| !dead(p))
        }));
        assert_eq!(live_lists(&live), live_lists(&eager));
        assert_eq!(answers(&live), answers(&eager));
        // More traffic: a full list sheds its dead before it evicts a live entry.
        for seq in first_batch + 1..=total {
            let (r, keys) = numbered(seq);
            live.add(r.clone(), &keys).unwrap();
            eager.add(r, &keys).unwrap();
            if seq == first_batch + 10_000 {
                assert_eq!(live_lists(&live), live_lists(&eager));
            }
        }
        assert_eq!(live_lists(&live), live_lists(&eager));
        assert_eq!(answers(&live), answers(&eager));
        for seq in (3..=total).step_by(3) {
            let app = format!("x{}", seq / 3);
            assert_eq!(
                live.finish_counted("a", &app),
                eager.finish_counted("a", &app),
                "{app}"
            );
        }
        // An application whose events all left forgets its finish; one with an event
        // left keeps it.
        assert!(!live.finish_counted("a", "x5") && live.finish_counted("a", "x40000"));
        // The tombstones and the first position travel in the snapshot.
        let bytes = live.snapshot().unwrap();
        let back = MatchIndex::restore(&bytes).unwrap();
        assert_eq!(back.snapshot().unwrap(), bytes);
        assert_eq!(answers(&back), answers(&live));
        assert_eq!((back.len(), back.records.base()), (live.len(), SEGMENT));
        // Compaction (when positions run out) renumbers from 0 and changes no answer.
        let mut compacted = MatchIndex::restore(&bytes).unwrap();
        compacted.compact();
        assert_eq!(compacted.records.base(), 0);
        assert_eq!(compacted.records.len(), compacted.len());
        assert_eq!(answers(&compacted), answers(&live));
        assert_eq!(live_lists(&compacted).len(), live_lists(&live).len());
        // A full prune leaves nothing behind.
        assert_eq!(live.prune(i64::MAX), eager.len());
        assert!(live.is_empty() && live.by_key.iter().next().is_none());
        assert!(live.apps.iter().next().is_none());
        assert!(live.by_birth.iter().next().is_none());
    }

    #[test]
    fn an_empty_record_section_restores_and_the_index_goes_on() {
        let mut index = MatchIndex::new();
        for seq in 1..=10 {
            let (r, keys) = numbered(seq);
            index.add(r, &keys).unwrap();
        }
        let bytes = index.snapshot().unwrap();
        // Skip the header (magic, version, base, cursor) and the head and key sections.
        let mut at = 10 + 16;
        for _ in 0..2 {
            let len = u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap()) as usize;
            at += 8 + len;
        }
        let n = u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap());
        let mut crafted = bytes[..at].to_vec();
        crafted.extend_from_slice(&(n + 1).to_le_bytes());
        crafted.extend_from_slice(&bytes[at + 8..]);
        crafted.extend_from_slice(&[0; 16]); // a section of no records
        let mut back = MatchIndex::restore(&crafted).unwrap();
        assert_eq!(answers(&back), answers(&index));
        for seq in 11..=20 {
            let (r, keys) = numbered(seq);
            back.add(r, &keys).unwrap();
            index.add(numbered(seq).0, &keys).unwrap();
        }
        assert_eq!(back.prune(100), index.prune(100));
        assert_eq!(answers(&back), answers(&index));
    }

    #[test]
    fn a_version_4_snapshot_is_still_read() {
        let mut index = MatchIndex::new();
        for seq in 1..=300 {
            let (r, keys) = numbered(seq);
            index.add(r, &keys).unwrap();
        }
        let v5 = index.snapshot().unwrap();
        // Version 4: no first position and cursor (both 0 here) after the version.
        let mut v4 = SNAPSHOT_MAGIC.to_vec();
        v4.extend_from_slice(&4u16.to_le_bytes());
        v4.extend_from_slice(&v5[10 + 16..]);
        let back = MatchIndex::restore(&v4).unwrap();
        assert_eq!(back.snapshot().unwrap(), v5);
        assert_eq!(answers(&back), answers(&index));
    }

    #[test]
    fn prune_forgets_logged_request_keys_past_the_horizon_by_their_newest_day() {
        let day = |d: i64| d * DAY_US;
        let mut index = MatchIndex::new();
        index.note_logged("a/old", day(10) + 5);
        index.note_logged("a/retried", day(10));
        index.note_logged("a/retried", day(40) + 7); // its newest event counts
        index.note_logged("a/edge", day(19) + 1);
        index.note_logged("a/new", day(50));
        index.add(record(1, "a", "a1", day(10)), &phone()).unwrap();
        // Horizon in day 20: one day of margin keeps day 19, day 10 goes.
        assert_eq!(index.prune(day(20) + 3), 1);
        assert!(!index.maybe_logged("a/old"));
        assert!(index.maybe_logged("a/retried") && index.maybe_logged("a/edge"));
        assert!(index.maybe_logged("a/new"));
        assert_eq!(index.logged_len(), 3);
        // Nothing left to drop among the records: the hashes are still pruned.
        assert_eq!(index.prune(day(45)), 0);
        assert!(!index.maybe_logged("a/retried") && !index.maybe_logged("a/edge"));
        assert!(index.maybe_logged("a/new"));
        // Swept once per horizon day; a key noted older than that is swept again.
        index.note_logged("a/stale", day(10));
        index.prune_step(day(45) + 60, 1);
        assert!(!index.maybe_logged("a/stale") && index.maybe_logged("a/new"));
        // The days travel in the snapshot.
        let back = MatchIndex::restore(&index.snapshot().unwrap()).unwrap();
        assert_eq!(back.logged, index.logged);
        assert_eq!(back.snapshot().unwrap(), index.snapshot().unwrap());
    }

    #[test]
    fn a_version_2_snapshot_gives_its_hashes_the_newest_record_day() {
        let mut index = MatchIndex::new();
        index.take_seq();
        index
            .add(record(1, "a", "a1", 3 * DAY_US), &phone())
            .unwrap();
        index
            .add(record(2, "a", "a2", 30 * DAY_US + 9), &phone())
            .unwrap();
        index.note_logged("a/r1", 3 * DAY_US);
        index.note_logged("a/r2", 30 * DAY_US + 9);
        let body = |logged: Vec<u64>| SnapshotBodyV2 {
            next_seq: 1,
            records: index.records.iter().cloned().collect(),
            by_key: index
                .by_key
                .iter()
                .map(|(k, v)| (k.clone(), v.iter().copied().collect()))
                .collect(),
            finish_counted: Vec::new(),
            logged,
            by_birth: Vec::new(),
        };
        let encode = |b: &SnapshotBodyV2| {
            let mut bytes = SNAPSHOT_MAGIC.to_vec();
            bytes.extend_from_slice(&2u16.to_le_bytes());
            postcard::to_extend(b, bytes).unwrap()
        };
        let v2 = encode(&body(index.logged.iter().map(|(&h, _)| h).collect()));
        let mut back = MatchIndex::restore(&v2).unwrap();
        assert_eq!(
            back.logged.iter().map(|(_, &d)| d).collect::<Vec<_>>(),
            [30, 30]
        );
        assert_eq!(back.records, index.records);
        // Kept until the horizon passes the snapshot's newest day (plus the margin).
        back.prune(31 * DAY_US);
        assert!(back.maybe_logged("a/r1") && back.maybe_logged("a/r2"));
        back.prune(32 * DAY_US);
        assert!(!back.maybe_logged("a/r1") && !back.maybe_logged("a/r2"));
        // Without records there is no day to give: the hashes are kept.
        let mut empty = MatchIndex::new();
        empty.note_logged("a/r1", 0);
        let v2 = encode(&SnapshotBodyV2 {
            records: Vec::new(),
            by_key: Vec::new(),
            ..body(empty.logged.iter().map(|(&h, _)| h).collect())
        });
        let mut back = MatchIndex::restore(&v2).unwrap();
        back.prune(i64::MAX / 2);
        assert!(back.maybe_logged("a/r1"));
    }

    /// The version 1 body as the previous build wrote it.
    #[derive(Serialize)]
    struct SnapshotBodyV1Out {
        next_seq: u64,
        records: Vec<Record>,
        by_key: Vec<(String, Vec<u32>)>,
        finish_counted: Vec<String>,
        logged: Vec<u64>,
    }

    #[test]
    fn a_match_by_e_mail_or_ip_shows_the_shared_value_masked() {
        let mut index = MatchIndex::new();
        let keys = vec![
            ("email".to_owned(), "ivan@example.com".to_owned()),
            ("ip".to_owned(), "10.1.2.3".to_owned()),
        ];
        index.add(record(1, "a", "a1", 10), &keys).unwrap();
        let current = record(2, "b", "b1", 20);
        let kinds = vec!["email".to_owned(), "ip".to_owned()];
        let found = index.matches(&kinds, &keys, &[], &current, "b", "r");
        assert_eq!(found.len(), 1);
        let shown: Vec<(&str, &str)> = found[0]
            .fields
            .iter()
            .skip(FIELDS.len())
            .map(|f| (f.field, f.historical_value.as_str()))
            .collect();
        assert_eq!(
            shown,
            [
                ("application.applicant.emails", "i***@example.com"),
                ("application.ip_address", "10.1.*.*"),
            ]
        );
        let own = index.matches(&kinds, &keys, &[], &current, "a", "r");
        assert_eq!(own[0].fields.last().unwrap().historical_value, "10.1.2.3");
    }
}
