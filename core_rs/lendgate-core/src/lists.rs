//! Named black, white and grey lists of typed values, for `in_list("id", value)`.
//!
//! Reads are the hot path (every rule that calls `in_list` on every event), writes
//! are rare and batched. So each list's content is an immutable [`Snapshot`] behind
//! an `ArcSwap`: a lookup is one atomic load and one hash probe, with no lock, and a
//! write builds the next snapshot and publishes it in one swap — a bulk load is
//! atomic and readers never see half of it. The content is split into shards so a
//! small write copies only the shards it touches, not the whole list. Writers of one
//! list are serialised by a mutex that readers never take.
//!
//! Values are normalised by the list's [`EntryKind`] (see `normalize.rs`) both when
//! stored and when looked up. Every entry may expire: it is a member only while
//! `at < expire_time`, where `at` is the *event* time of the lookup, so replaying
//! history gives the answers it gave live. Times are milliseconds since the Unix
//! epoch.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::str::FromStr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use foldhash::fast::FixedState;
use parking_lot::Mutex;

use crate::error::{CoreError, CoreResult};
use crate::expr::{Host, HostFunction, Value};
use crate::normalize;

mod staged;
pub use staged::{
    decode_entry, decode_import_chunks, encode_entry, NewEntry, StagedWrite, WriteStamp,
    MAX_ENTRIES_PER_MESSAGE,
};

/// Number of shards of a list's content (a power of two).
const SHARDS: usize = 64;

/// "Never expires".
const NEVER: i64 = i64::MAX;

/// What membership in a list means (proto `ListType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListType {
    /// Membership is a fraud signal.
    Black,
    /// Membership is trusted.
    White,
    /// Membership calls for attention.
    Grey,
}

impl FromStr for ListType {
    type Err = CoreError;

    fn from_str(s: &str) -> CoreResult<Self> {
        Ok(match s {
            "BLACK" => Self::Black,
            "WHITE" => Self::White,
            "GREY" => Self::Grey,
            other => {
                return Err(CoreError::invalid(
                    "list.type",
                    format!("unknown list type {other:?} (expected BLACK, WHITE or GREY)"),
                ))
            }
        })
    }
}

impl ListType {
    /// The proto enum value name without its prefix.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Black => "BLACK",
            Self::White => "WHITE",
            Self::Grey => "GREY",
        }
    }
}

/// What the values of a list are, which decides their normalisation (proto
/// `ListEntryKind`, names without the prefix).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// Taxpayer number (INN): 10 or 12 digits.
    TaxId,
    /// Passport series and number: letters and digits, upper case.
    Passport,
    /// Phone number (digits, national trunk prefix 8 rewritten to 7).
    Phone,
    /// IP address, or a CIDR network matching every address in it.
    Ip,
    /// Card number or token; an entry of 6 or 8 digits is a BIN that matches every
    /// card number starting with it.
    Card,
    /// Device identifier (IMEI, fingerprint), compared case-insensitively.
    Device,
    /// E-mail address, lower case.
    Email,
    /// Bank account number: letters and digits, upper case (IBAN or domestic).
    Account,
    /// Any string, trimmed, whitespace collapsed, lower case.
    String,
}

impl FromStr for EntryKind {
    type Err = CoreError;

    fn from_str(s: &str) -> CoreResult<Self> {
        Ok(match s {
            "TAX_ID" => Self::TaxId,
            "PASSPORT" => Self::Passport,
            "PHONE" => Self::Phone,
            "IP" => Self::Ip,
            "CARD" => Self::Card,
            "DEVICE" => Self::Device,
            "EMAIL" => Self::Email,
            "ACCOUNT" => Self::Account,
            "STRING" => Self::String,
            other => {
                return Err(CoreError::invalid(
                    "list.entry_kind",
                    format!("unknown entry kind {other:?}"),
                ))
            }
        })
    }
}

impl EntryKind {
    /// The proto enum value name without its prefix.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TaxId => "TAX_ID",
            Self::Passport => "PASSPORT",
            Self::Phone => "PHONE",
            Self::Ip => "IP",
            Self::Card => "CARD",
            Self::Device => "DEVICE",
            Self::Email => "EMAIL",
            Self::Account => "ACCOUNT",
            Self::String => "STRING",
        }
    }

    /// Normalises a value of this kind, as stored and as looked up. IP networks are
    /// written `addr/prefix` with the host bits cleared; single addresses plainly.
    pub fn normalize(self, value: &str) -> CoreResult<String> {
        match self {
            Self::TaxId => normalize::normalize_digits("tax_id", value, 10, 12),
            Self::Passport => normalize::normalize_passport(value),
            Self::Phone => normalize::normalize_key(normalize::KeyKind::Phone, value),
            Self::Ip => {
                let (net, prefix) = normalize::normalize_ip_network(value)?;
                let full = if net.is_ipv4() { 32 } else { 128 };
                Ok(if prefix == full {
                    net.to_string()
                } else {
                    format!("{net}/{prefix}")
                })
            }
            Self::Card => normalize::normalize_card(value),
            Self::Email => normalize::normalize_email(value),
            Self::Account => normalize::normalize_passport(value).map_err(|_| {
                CoreError::invalid("account", format!("no letters or digits in {value:?}"))
            }),
            Self::Device | Self::String => {
                let out = normalize::normalize_key(normalize::KeyKind::Text, value)?;
                if out.is_empty() {
                    return Err(CoreError::invalid("value", "an empty value"));
                }
                Ok(out)
            }
        }
    }
}

/// An entry as given to or returned by a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The value (normalised when returned).
    pub value: String,
    /// When the entry stops matching (ms since the epoch); `None` = never.
    pub expire_time: Option<i64>,
    /// Why the value is listed.
    pub comment: String,
    /// When the entry was added or last replaced (ms since the epoch).
    pub create_time: i64,
    /// Who added it.
    pub author: String,
}

#[derive(Debug, Clone)]
struct Stored {
    expire_ms: i64,
    create_ms: i64,
    comment: Box<str>,
    author: Arc<str>,
}

type Shard = HashMap<Box<str>, Stored, FixedState>;

/// One immutable state of a list's content.
#[derive(Debug, Clone)]
struct Snapshot {
    shards: Box<[Arc<Shard>]>,
    /// IP lists only: the CIDR entries, scanned after the exact lookup misses.
    networks: Arc<Vec<(IpAddr, u8, i64)>>,
}

impl Snapshot {
    fn empty() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Arc::new(Shard::default())).collect(),
            networks: Arc::new(Vec::new()),
        }
    }

    fn shard_of(key: &str) -> usize {
        // A fixed seed: the shard of a key must not change between snapshots.
        let h = FixedState::with_seed(0x6c65_6e64_6761_7465).hash_one(key);
        usize::try_from(h).unwrap_or_default() & (SHARDS - 1)
    }

    fn get(&self, key: &str) -> Option<&Stored> {
        self.shards.get(Self::shard_of(key))?.get(key)
    }

    fn live(&self, key: &str, at: i64) -> bool {
        self.get(key).is_some_and(|s| at < s.expire_ms)
    }

    fn rebuild_networks(&mut self) {
        let mut nets = Vec::new();
        for shard in self.shards.iter() {
            for (k, s) in shard.iter() {
                if k.contains('/') {
                    if let Ok((net, prefix)) = normalize::normalize_ip_network(k) {
                        nets.push((net, prefix, s.expire_ms));
                    }
                }
            }
        }
        self.networks = Arc::new(nets);
    }
}

fn in_network(addr: IpAddr, net: IpAddr, prefix: u8) -> bool {
    match (addr, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            u32::from(a) & mask == u32::from(n)
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            u128::from(a) & mask == u128::from(n)
        }
        _ => false,
    }
}

/// How a write changes a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMode {
    /// Add to the existing entries; an existing value's expiry and comment are replaced.
    Merge,
    /// Replace the whole content.
    Replace,
}

/// What a write did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteOutcome {
    /// Values that were not in the list before.
    pub added: usize,
    /// Values that were there already (expiry and comment replaced).
    pub replaced: usize,
    /// Entries rejected as invalid for the list's kind: (index in the input, reason).
    pub rejected: Vec<(usize, String)>,
}

/// One named list.
#[derive(Debug)]
pub struct List {
    id: Arc<str>,
    kind: EntryKind,
    list_type: ListType,
    content: ArcSwap<Snapshot>,
    writer: Mutex<()>,
}

impl List {
    /// An empty list.
    pub fn new(id: &str, kind: EntryKind, list_type: ListType) -> Self {
        Self {
            id: Arc::from(id),
            kind,
            list_type,
            content: ArcSwap::from_pointee(Snapshot::empty()),
            writer: Mutex::new(()),
        }
    }

    /// The list id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The kind of values.
    pub fn kind(&self) -> EntryKind {
        self.kind
    }

    /// The colour of the list.
    pub fn list_type(&self) -> ListType {
        self.list_type
    }

    /// Whether `value` is a live member at event time `at`. A value that cannot be
    /// a value of this kind (an IP list asked about "abc") is simply not a member.
    pub fn contains(&self, value: &str, at: i64) -> bool {
        let Ok(key) = self.kind.normalize(value) else {
            return false;
        };
        let snap = self.content.load();
        if snap.live(&key, at) {
            return true;
        }
        match self.kind {
            EntryKind::Ip => {
                let Ok(addr) = normalize::normalize_ip(&key) else {
                    return false;
                };
                snap.networks
                    .iter()
                    .any(|(net, prefix, exp)| at < *exp && in_network(addr, *net, *prefix))
            }
            EntryKind::Card if key.len() > 8 && key.bytes().all(|b| b.is_ascii_digit()) => [8, 6]
                .iter()
                .any(|n| key.get(..*n).is_some_and(|bin| snap.live(bin, at))),
            _ => false,
        }
    }

    /// Adds `entries` (merge) or makes them the whole content (replace), atomically:
    /// readers see the list before or after, never in between. Invalid values are
    /// rejected one by one (reported in the outcome); the rest are applied. Later
    /// duplicates of a value in one call win.
    pub fn write(&self, entries: Vec<Entry>, mode: WriteMode) -> WriteOutcome {
        let _guard = self.writer.lock();
        let old = self.content.load_full();
        let mut next = match mode {
            WriteMode::Merge => (*old).clone(),
            WriteMode::Replace => Snapshot::empty(),
        };
        let mut outcome = WriteOutcome::default();
        let mut authors: HashMap<String, Arc<str>> = HashMap::new();
        for (i, e) in entries.into_iter().enumerate() {
            let key = match self.kind.normalize(&e.value) {
                Ok(k) => k,
                Err(err) => {
                    outcome.rejected.push((i, err.to_string()));
                    continue;
                }
            };
            let author = authors
                .entry(e.author)
                .or_insert_with_key(|a| Arc::from(a.as_str()))
                .clone();
            let stored = Stored {
                expire_ms: e.expire_time.unwrap_or(NEVER),
                create_ms: e.create_time,
                comment: e.comment.into_boxed_str(),
                author,
            };
            let Some(shard) = next.shards.get_mut(Snapshot::shard_of(&key)) else {
                continue;
            };
            let previous = Arc::make_mut(shard).insert(key.into_boxed_str(), stored);
            if previous.is_some() {
                outcome.replaced += 1;
            } else {
                outcome.added += 1;
            }
        }
        if self.kind == EntryKind::Ip {
            next.rebuild_networks();
        }
        self.content.store(Arc::new(next));
        outcome
    }

    /// Removes values (normalised like added ones); returns how many were there.
    /// Values that are absent or invalid are ignored.
    pub fn remove(&self, values: &[String]) -> usize {
        let _guard = self.writer.lock();
        let mut next = (*self.content.load_full()).clone();
        let mut removed = 0;
        for v in values {
            let Ok(key) = self.kind.normalize(v) else {
                continue;
            };
            if let Some(shard) = next.shards.get_mut(Snapshot::shard_of(&key)) {
                if shard.contains_key(key.as_str()) {
                    Arc::make_mut(shard).remove(key.as_str());
                    removed += 1;
                }
            }
        }
        if removed > 0 {
            if self.kind == EntryKind::Ip {
                next.rebuild_networks();
            }
            self.content.store(Arc::new(next));
        }
        removed
    }

    /// The stored entries (live or expired) of already normalised `keys`, in order;
    /// `None` where a key is absent. For callers that persist a change and must know
    /// what it replaces.
    pub fn lookup(&self, keys: &[String]) -> Vec<Option<Entry>> {
        let snap = self.content.load();
        keys.iter()
            .map(|k| {
                snap.get(k).map(|e| Entry {
                    value: k.clone(),
                    expire_time: (e.expire_ms != NEVER).then_some(e.expire_ms),
                    comment: e.comment.to_string(),
                    create_time: e.create_ms,
                    author: e.author.to_string(),
                })
            })
            .collect()
    }

    /// Number of entries live at `at`.
    pub fn live_count(&self, at: i64) -> usize {
        let snap = self.content.load();
        snap.shards
            .iter()
            .map(|s| s.values().filter(|e| at < e.expire_ms).count())
            .sum()
    }

    /// Up to `limit` entries live at `at` whose value is greater than `after`
    /// (a page token), ordered by value.
    pub fn entries(&self, after: Option<&str>, limit: usize, at: i64) -> Vec<Entry> {
        let snap = self.content.load();
        let mut keys: Vec<(&str, &Stored)> = snap
            .shards
            .iter()
            .flat_map(|s| s.iter())
            .filter(|(k, e)| at < e.expire_ms && after.map_or(true, |a| k.as_ref() > a))
            .map(|(k, e)| (k.as_ref(), e))
            .collect();
        if keys.len() > limit && limit > 0 {
            keys.select_nth_unstable_by(limit - 1, |a, b| a.0.cmp(b.0));
            keys.truncate(limit);
        } else if limit == 0 {
            keys.clear();
        }
        keys.sort_unstable_by(|a, b| a.0.cmp(b.0));
        keys.into_iter()
            .map(|(k, e)| Entry {
                value: k.to_string(),
                expire_time: (e.expire_ms != NEVER).then_some(e.expire_ms),
                comment: e.comment.to_string(),
                create_time: e.create_ms,
                author: e.author.to_string(),
            })
            .collect()
    }
}

/// All lists of one partner, by id. Lookups take no lock; creating and deleting a
/// list swaps the index.
#[derive(Debug, Default)]
pub struct ListRegistry {
    lists: ArcSwap<HashMap<Arc<str>, Arc<List>>>,
    writer: Mutex<()>,
}

impl ListRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Creates an empty list. `InvalidArgument` if the id is malformed or taken.
    pub fn create(&self, id: &str, kind: EntryKind, list_type: ListType) -> CoreResult<Arc<List>> {
        validate_id(id)?;
        let _guard = self.writer.lock();
        let current = self.lists.load_full();
        if current.contains_key(id) {
            return Err(CoreError::invalid(
                "list_id",
                format!("list `{id}` already exists"),
            ));
        }
        let list = Arc::new(List::new(id, kind, list_type));
        let mut next = (*current).clone();
        next.insert(Arc::from(id), list.clone());
        self.lists.store(Arc::new(next));
        Ok(list)
    }

    /// Deletes a list with its entries. `NotFound` if there is none.
    pub fn delete(&self, id: &str) -> CoreResult<()> {
        let _guard = self.writer.lock();
        let current = self.lists.load_full();
        if !current.contains_key(id) {
            return Err(not_found(id));
        }
        let mut next = (*current).clone();
        next.remove(id);
        self.lists.store(Arc::new(next));
        Ok(())
    }

    /// Makes `list` (usually another registry's) a list of this one under its own id,
    /// sharing its content: a write through either registry is seen by both. A
    /// partner's registry links the consortium's lists this way. `InvalidArgument` if
    /// the id is taken.
    pub fn link(&self, list: Arc<List>) -> CoreResult<()> {
        let _guard = self.writer.lock();
        let current = self.lists.load_full();
        if current.contains_key(list.id()) {
            return Err(CoreError::invalid(
                "list_id",
                format!("list `{}` already exists", list.id()),
            ));
        }
        let mut next = (*current).clone();
        next.insert(list.id.clone(), list);
        self.lists.store(Arc::new(next));
        Ok(())
    }

    /// The list with this id, if any.
    pub fn get(&self, id: &str) -> Option<Arc<List>> {
        self.lists.load().get(id).cloned()
    }

    /// The list with this id, or `NotFound`.
    pub fn require(&self, id: &str) -> CoreResult<Arc<List>> {
        self.get(id).ok_or_else(|| not_found(id))
    }

    /// Whether `value` is a live member of list `id` at event time `at`; `NotFound`
    /// when there is no such list.
    pub fn contains(&self, id: &str, value: &str, at: i64) -> CoreResult<bool> {
        let lists = self.lists.load();
        let list = lists.get(id).ok_or_else(|| not_found(id))?;
        Ok(list.contains(value, at))
    }

    /// The ids of all lists, sorted.
    pub fn ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.lists.load().keys().map(|k| k.to_string()).collect();
        ids.sort_unstable();
        ids
    }
}

/// The declaration of `in_list(list_id, value)` for `expr::Options::host_functions`.
pub fn in_list_function() -> HostFunction {
    HostFunction::new("in_list", 2, true)
}

/// The lists as seen by one event: implements `in_list(list_id, value)` for the
/// expression engine, with expiry judged at the event time `at`.
///
/// `value` may be a string or a number (an INN sent as a number); `null` is in no
/// list. An unknown list id is an error naming the list.
#[derive(Debug, Clone, Copy)]
pub struct ListsAt<'a> {
    /// The partner's lists.
    pub lists: &'a ListRegistry,
    /// Event time, ms since the epoch.
    pub at: i64,
}

impl Host for ListsAt<'_> {
    fn call(&self, name: &str, args: &[Value]) -> Result<Value, String> {
        if name != "in_list" {
            return Err("no such host function".to_string());
        }
        let [id, value] = args else {
            return Err("expected (list_id, value)".to_string());
        };
        let Value::String(id) = id else {
            return Err(format!(
                "the list id must be a string, got {}",
                id.type_name()
            ));
        };
        let lists = self.lists.lists.load();
        let list = lists
            .get(id.as_ref())
            .ok_or_else(|| format!("unknown list `{id}`"))?;
        let found = match value {
            Value::Null => false,
            Value::String(s) => list.contains(s, self.at),
            Value::Number(n) => list.contains(&n.normalize().to_string(), self.at),
            other => {
                return Err(format!(
                    "the value must be a string or a number, got {}",
                    other.type_name()
                ))
            }
        };
        Ok(Value::Bool(found))
    }
}

fn not_found(id: &str) -> CoreError {
    CoreError::NotFound {
        kind: "list",
        name: id.to_string(),
    }
}

/// Checks a resource id: 1..64 characters of `[a-z0-9_-]`.
pub fn validate_id(id: &str) -> CoreResult<()> {
    let ok = (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(CoreError::invalid(
            "id",
            format!("{id:?} is not 1..64 characters of [a-z0-9_-]"),
        ))
    }
}

/// Parses tab-separated lines `value[\texpire_ms[\tcomment]]` (an empty or absent
/// expiry = never) into entries, for bulk loads that should not cross the Python
/// boundary one object at a time. Blank lines are skipped; a bad expiry rejects
/// the line (reported with its 0-based line number).
pub fn parse_lines(
    text: &str,
    author: &str,
    create_time: i64,
) -> (Vec<Entry>, Vec<(usize, String)>) {
    let mut entries = Vec::with_capacity(text.len() / 16);
    let mut rejected = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let mut parts = line.splitn(3, '\t');
        let value = parts.next().unwrap_or_default();
        let expire_time = match parts.next().map(str::trim) {
            None | Some("") => None,
            Some(t) => match t.parse::<i64>() {
                Ok(ms) => Some(ms),
                Err(_) => {
                    rejected.push((n, format!("invalid expiry {t:?} (ms since the epoch)")));
                    continue;
                }
            },
        };
        entries.push(Entry {
            value: value.to_string(),
            expire_time,
            comment: parts.next().unwrap_or_default().to_string(),
            create_time,
            author: author.to_string(),
        });
    }
    (entries, rejected)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(value: &str, expire_time: Option<i64>) -> Entry {
        Entry {
            value: value.to_string(),
            expire_time,
            comment: String::new(),
            create_time: 0,
            author: "test".to_string(),
        }
    }

    #[test]
    fn membership_is_normalised() {
        let l = List::new("phones", EntryKind::Phone, ListType::Black);
        let out = l.write(vec![entry("+7 (912) 345-67-89", None)], WriteMode::Merge);
        assert_eq!(out.added, 1);
        assert!(l.contains("89123456789", 0));
        assert!(!l.contains("89123456780", 0));
        assert!(!l.contains("not a phone", 0));
    }

    #[test]
    fn expiry_is_by_event_time() {
        let l = List::new("inn", EntryKind::TaxId, ListType::Black);
        l.write(vec![entry("7701234567", Some(1_000))], WriteMode::Merge);
        assert!(l.contains("7701234567", 999));
        assert!(!l.contains("7701234567", 1_000));
        assert_eq!(l.live_count(0), 1);
        assert_eq!(l.live_count(1_000), 0);
    }

    #[test]
    fn merge_replaces_and_counts() {
        let l = List::new("s", EntryKind::String, ListType::Grey);
        let out = l.write(vec![entry("A", None), entry("b", None)], WriteMode::Merge);
        assert_eq!((out.added, out.replaced), (2, 0));
        let out = l.write(
            vec![entry("a", Some(5)), entry("c", None)],
            WriteMode::Merge,
        );
        assert_eq!((out.added, out.replaced), (1, 1));
        assert!(!l.contains("a", 5));
        let out = l.write(vec![entry("z", None), entry("", None)], WriteMode::Replace);
        assert_eq!((out.added, out.rejected.len()), (1, 1));
        assert!(!l.contains("b", 0));
        assert!(l.contains("Z", 0));
    }

    #[test]
    fn ip_networks_match_addresses() {
        let l = List::new("ips", EntryKind::Ip, ListType::Black);
        l.write(
            vec![entry("10.0.0.0/8", None), entry("192.168.1.7", Some(10))],
            WriteMode::Merge,
        );
        assert!(l.contains("10.200.3.4", 0));
        assert!(l.contains("::ffff:10.1.1.1", 0));
        assert!(!l.contains("11.0.0.1", 0));
        assert!(l.contains("192.168.1.7", 9));
        assert!(!l.contains("192.168.1.7", 10));
        assert_eq!(l.remove(&["10.1.2.3/8".to_string()]), 1);
        assert!(!l.contains("10.200.3.4", 0));
    }

    #[test]
    fn card_bins_match_card_numbers() {
        let l = List::new("cards", EntryKind::Card, ListType::Black);
        l.write(
            vec![entry("427616", None), entry("tok_ABC", None)],
            WriteMode::Merge,
        );
        assert!(l.contains("4276 1612 3456 7890", 0));
        assert!(!l.contains("4276 1712 3456 7890", 0));
        assert!(l.contains("tok_ABC", 0));
        assert!(!l.contains("tok_abc", 0));
    }

    #[test]
    fn entries_are_paged_by_value() {
        let l = List::new("s", EntryKind::String, ListType::Grey);
        let values = ["d", "a", "c", "b", "e"];
        l.write(
            values.iter().map(|v| entry(v, None)).collect(),
            WriteMode::Merge,
        );
        let page: Vec<String> = l.entries(None, 2, 0).into_iter().map(|e| e.value).collect();
        assert_eq!(page, ["a", "b"]);
        let page: Vec<String> = l
            .entries(Some("b"), 10, 0)
            .into_iter()
            .map(|e| e.value)
            .collect();
        assert_eq!(page, ["c", "d", "e"]);
    }

    #[test]
    fn linked_lists_share_content_and_lookup_reads_entries() {
        let consortium = ListRegistry::new();
        let list = consortium
            .create("bad-phones", EntryKind::Phone, ListType::Black)
            .unwrap();
        let partner = ListRegistry::new();
        partner.link(list.clone()).unwrap();
        assert!(partner.link(list.clone()).is_err());
        list.write(vec![entry("+7 999 123-45-67", None)], WriteMode::Merge);
        assert!(partner.contains("bad-phones", "79991234567", 0).unwrap());
        let key = EntryKind::Phone.normalize("89991234567").unwrap();
        let found = list.lookup(&[key.clone(), "nothing".to_string()]);
        assert_eq!(
            found[0].as_ref().map(|e| e.value.as_str()),
            Some(key.as_str())
        );
        assert!(found[1].is_none());
        consortium.delete("bad-phones").unwrap();
        assert!(partner.contains("bad-phones", "79991234567", 0).unwrap());
    }

    #[test]
    fn registry_lookup_and_errors() {
        let r = ListRegistry::new();
        r.create("bad-inn", EntryKind::TaxId, ListType::Black)
            .unwrap();
        assert!(r
            .create("bad-inn", EntryKind::TaxId, ListType::Black)
            .is_err());
        assert!(r
            .create("Bad INN", EntryKind::TaxId, ListType::Black)
            .is_err());
        r.require("bad-inn")
            .unwrap()
            .write(vec![entry("770123456789", None)], WriteMode::Merge);
        assert!(r.contains("bad-inn", "770123456789", 0).unwrap());
        let err = r.contains("nope", "1", 0).unwrap_err();
        assert!(matches!(err, CoreError::NotFound { ref name, .. } if name == "nope"));
        r.delete("bad-inn").unwrap();
        assert!(r.get("bad-inn").is_none());
    }

    #[test]
    fn lines_parse_with_optional_expiry() {
        let (entries, rejected) = parse_lines("a\nb\t100\tfraud ring\n\nc\tsoon\n", "me", 7);
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[1].expire_time, Some(100));
        assert_eq!(entries[1].comment, "fraud ring");
        assert_eq!(rejected.len(), 1);
        assert_eq!(rejected[0].0, 3);
    }

    #[test]
    fn in_list_in_expressions() {
        use crate::expr::HostFunctions;
        use crate::expr::{Context, Expression, Options};
        let r = ListRegistry::new();
        r.create("bad-inn", EntryKind::TaxId, ListType::Black)
            .unwrap()
            .write(vec![entry("7701234567", Some(100))], WriteMode::Merge);
        let options = Options {
            host_functions: HostFunctions::new(vec![in_list_function()]),
            ..Options::default()
        };
        let e = Expression::compile_with("in_list('bad-inn', inn)", options.clone()).unwrap();
        let run = |inn: serde_json::Value, at: i64| {
            let host = ListsAt { lists: &r, at };
            let ctx = Context {
                host: Some(&host),
                reads: None,
            };
            e.evaluate_in(&Value::from(&serde_json::json!({ "inn": inn })), ctx)
        };
        assert_eq!(run("77-01234567".into(), 0).unwrap().to_json(), true);
        assert_eq!(run(7701234567_i64.into(), 0).unwrap().to_json(), true);
        assert_eq!(run("7701234567".into(), 100).unwrap().to_json(), false);
        assert_eq!(run(serde_json::Value::Null, 0).unwrap().to_json(), false);
        let e = Expression::compile_with("in_list('missing', inn)", options).unwrap();
        let host = ListsAt { lists: &r, at: 0 };
        let ctx = Context {
            host: Some(&host),
            reads: None,
        };
        let err = e
            .evaluate_in(&Value::from(&serde_json::json!({})), ctx)
            .unwrap_err();
        assert!(err.to_string().contains("unknown list `missing`"), "{err}");
    }

    #[test]
    fn concurrent_reads_during_writes() {
        let l = Arc::new(List::new("s", EntryKind::String, ListType::Grey));
        l.write(vec![entry("stay", None)], WriteMode::Merge);
        std::thread::scope(|s| {
            let reader = l.clone();
            s.spawn(move || {
                for _ in 0..10_000 {
                    assert!(reader.contains("stay", 0));
                }
            });
            for i in 0..200 {
                l.write(vec![entry(&format!("v{i}"), None)], WriteMode::Merge);
            }
        });
        assert_eq!(l.live_count(0), 201);
    }
}
