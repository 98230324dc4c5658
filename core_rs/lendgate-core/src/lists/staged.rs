//! Persisted writes of a list, in two steps: [`List::stage`] prepares the next content
//! off to the side and says what the store must record (entries to add and to remove,
//! in the store's text form); after the store has committed, [`List::commit`] publishes
//! it in one swap. A bulk import of a million entries thus does its normalisation,
//! de-duplication and table building before the store transaction, not after it, and
//! readers see the list change only once the change is durable.
//!
//! The store keeps one entry as one string, `value␟expire_ms␟create_ms␟author␟comment`
//! (␟ = U+001F; an empty expiry = never), so that a change of expiry or comment is a
//! removal plus an addition in the list's next version.

use std::hash::BuildHasher;
use std::sync::Arc;

use foldhash::fast::FixedState;
use parking_lot::Mutex;
use prost::Message;

use super::{Entry, List, Snapshot, Stored, WriteMode, WriteOutcome, NEVER, SHARDS};
use crate::error::{CoreError, CoreResult};
use crate::parallel;

/// Separator of the fields of a stored entry.
const SEP: char = '\x1f';

/// At most this many entries in one message of an import stream.
pub const MAX_ENTRIES_PER_MESSAGE: usize = 10_000;

/// An entry of a write as the caller gives it, before normalisation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEntry {
    /// The value as given.
    pub value: String,
    /// When it stops matching (ms since the epoch); `None` = the write's default.
    pub expire_time: Option<i64>,
    /// Why the value is listed.
    pub comment: String,
}

/// Who writes, when, and the expiry of entries that bring none.
#[derive(Debug, Clone, Copy)]
pub struct WriteStamp<'a> {
    /// The author recorded on every entry.
    pub author: &'a str,
    /// The creation time recorded on every entry (ms since the epoch).
    pub now_ms: i64,
    /// The expiry of entries without one (the list's default TTL); `None` = never.
    pub default_expire: Option<i64>,
}

/// A write prepared against a list's content: persist [`StagedWrite::take_change`]
/// first, then publish with [`List::commit`].
#[derive(Debug)]
pub struct StagedWrite {
    list: Arc<str>,
    mode: WriteMode,
    base: Arc<Snapshot>,
    next: Snapshot,
    /// The entries written, de-duplicated (the last of a value wins), by shard:
    /// re-applied if the list changed since staging.
    applied: Vec<Bucket>,
    /// Added and replaced counts, and the rejected entries (input index, reason).
    pub outcome: WriteOutcome,
    /// Number of entries given, valid or not, repeated or not.
    pub received: usize,
    add: Vec<String>,
    remove: Vec<String>,
}

impl StagedWrite {
    /// The stored entries the change adds and removes, each sorted (store text form).
    /// Taken once: later calls return empty lists.
    pub fn take_change(&mut self) -> (Vec<String>, Vec<String>) {
        (
            std::mem::take(&mut self.add),
            std::mem::take(&mut self.remove),
        )
    }

    /// Number of distinct valid entries written.
    pub fn written(&self) -> usize {
        self.applied.iter().map(Vec::len).sum()
    }
}

impl Stored {
    fn same(&self, other: &Stored) -> bool {
        self.expire_ms == other.expire_ms
            && self.create_ms == other.create_ms
            && self.comment == other.comment
            && self.author == other.author
    }
}

/// One stored entry in the store's text form.
fn encode(value: &str, s: &Stored) -> String {
    let mut out = String::with_capacity(value.len() + s.comment.len() + s.author.len() + 40);
    out.push_str(value);
    out.push(SEP);
    if s.expire_ms != NEVER {
        out.push_str(&s.expire_ms.to_string());
    }
    out.push(SEP);
    out.push_str(&s.create_ms.to_string());
    out.push(SEP);
    out.push_str(&s.author);
    out.push(SEP);
    out.push_str(&s.comment);
    out
}

/// An entry as written in the store's text form (see the module docs).
pub fn encode_entry(e: &Entry) -> String {
    let stored = Stored {
        expire_ms: e.expire_time.unwrap_or(NEVER),
        create_ms: e.create_time,
        comment: e.comment.as_str().into(),
        author: e.author.as_str().into(),
    };
    encode(&e.value, &stored)
}

/// The entry of a stored text (see [`encode_entry`]); `Internal` if it is malformed,
/// since only lendgate writes it.
pub fn decode_entry(text: &str) -> CoreResult<Entry> {
    let bad = || CoreError::Internal {
        reason: format!("malformed stored list entry {text:?}"),
    };
    let mut parts = text.splitn(5, SEP);
    let mut next = || parts.next().ok_or_else(bad);
    let value = next()?.to_string();
    let expire = next()?;
    let create = next()?;
    let author = next()?.to_string();
    let comment = next()?.to_string();
    Ok(Entry {
        value,
        expire_time: if expire.is_empty() {
            None
        } else {
            Some(expire.parse().map_err(|_| bad())?)
        },
        comment,
        create_time: create.parse().map_err(|_| bad())?,
        author,
    })
}

/// `google.protobuf.Timestamp`.
#[derive(Clone, PartialEq, Message)]
struct PbTimestamp {
    #[prost(int64, tag = "1")]
    seconds: i64,
    #[prost(int32, tag = "2")]
    nanos: i32,
}

/// `lendgate.v1.ListEntry` (the fields a write reads).
#[derive(Clone, PartialEq, Message)]
struct PbListEntry {
    #[prost(string, tag = "1")]
    value: String,
    #[prost(message, optional, tag = "2")]
    expire_time: Option<PbTimestamp>,
    #[prost(string, tag = "3")]
    comment: String,
}

/// `lendgate.v1.ImportListEntriesRequest`, the entries only (the head — request id,
/// name, mode — is read from the first message by the server).
#[derive(Clone, PartialEq, Message)]
struct PbImportChunk {
    #[prost(message, repeated, tag = "4")]
    entries: Vec<PbListEntry>,
}

/// The entries of the serialized `ImportListEntriesRequest` messages of one import
/// stream, one vector per message, in order (messages decoded in parallel). `InvalidArgument` for a message
/// that does not decode, one with more than [`MAX_ENTRIES_PER_MESSAGE`] entries, or an
/// invalid expiry.
pub fn decode_import_chunks(chunks: &[&[u8]]) -> CoreResult<Vec<Vec<NewEntry>>> {
    parallel::map(chunks.len(), |n| {
        let chunk = PbImportChunk::decode(chunks[n]).map_err(|e| {
            CoreError::invalid("entries", format!("message {n} of the stream: {e}"))
        })?;
        if chunk.entries.len() > MAX_ENTRIES_PER_MESSAGE {
            return Err(CoreError::invalid(
                "entries",
                format!("message {n}: at most {MAX_ENTRIES_PER_MESSAGE} entries per message"),
            ));
        }
        chunk
            .entries
            .into_iter()
            .enumerate()
            .map(|(i, e)| {
                let expire_time = match e.expire_time {
                    None => None,
                    Some(t) => Some(timestamp_ms(&t).ok_or_else(|| {
                        CoreError::invalid(
                            "entries.expire_time",
                            format!("message {n}, entry {i}: not a valid timestamp"),
                        )
                    })?),
                };
                Ok(NewEntry {
                    value: e.value,
                    expire_time,
                    comment: e.comment,
                })
            })
            .collect::<CoreResult<Vec<_>>>()
    })
}

/// Milliseconds since the epoch (floored, as protobuf's `ToMilliseconds`); `None` for
/// nanos outside `0..1e9` or a time beyond the `i64` range.
fn timestamp_ms(t: &PbTimestamp) -> Option<i64> {
    if !(0..1_000_000_000).contains(&t.nanos) {
        return None;
    }
    t.seconds
        .checked_mul(1000)?
        .checked_add(i64::from(t.nanos / 1_000_000))
}

/// The reason of a normalisation failure, without the field prefix.
fn reason(e: CoreError) -> String {
    match e {
        CoreError::InvalidArgument { reason, .. } => reason,
        other => other.to_string(),
    }
}

/// The entries of a write that fall in one shard: `(key, stored)` in input order.
type Bucket = Vec<(Box<str>, Stored)>;

/// What staging one shard produced.
struct ShardWrite {
    shard: Arc<super::Shard>,
    applied: Bucket,
    add: Vec<String>,
    remove: Vec<String>,
    added: usize,
    replaced: usize,
}

impl List {
    /// Prepares a write of `entries` (merge or replace) against the current content:
    /// normalises and de-duplicates them (the last of a value wins), builds the next
    /// content and the store change. Nothing is visible to readers until
    /// [`List::commit`]. Invalid values are rejected one by one (`outcome.rejected`,
    /// by input index), the rest are written.
    pub fn stage(
        &self,
        entries: Vec<NewEntry>,
        mode: WriteMode,
        stamp: WriteStamp<'_>,
    ) -> CoreResult<StagedWrite> {
        self.stage_pieces(vec![entries], mode, stamp)
    }

    /// [`List::stage`] of the entries of several pieces in order (the messages of an
    /// import stream). Pieces are normalised, and shards built, on a few threads: the
    /// entries are spread over the content's shards first, and each shard is
    /// de-duplicated, compared with the current content and built on its own.
    pub fn stage_pieces(
        &self,
        pieces: Vec<Vec<NewEntry>>,
        mode: WriteMode,
        stamp: WriteStamp<'_>,
    ) -> CoreResult<StagedWrite> {
        let base = self.content.load_full();
        let author: Arc<str> = Arc::from(stamp.author);
        let received = pieces.iter().map(Vec::len).sum();
        let offsets: Vec<usize> = pieces
            .iter()
            .scan(0, |at, p| {
                let start = *at;
                *at += p.len();
                Some(start)
            })
            .collect();
        let pieces: Vec<Mutex<Vec<NewEntry>>> = pieces.into_iter().map(Mutex::new).collect();
        // Normalise each piece and spread it over the shards: per piece, one bucket per
        // shard (input order kept within a bucket) and the rejected entries.
        let spread = |n: usize| {
            let entries = std::mem::take(&mut *pieces[n].lock());
            let mut buckets: Vec<Bucket> = (0..SHARDS).map(|_| Vec::new()).collect();
            let mut rejected = Vec::new();
            for (i, e) in entries.into_iter().enumerate() {
                match self.kind.normalize(&e.value) {
                    Ok(key) => {
                        let stored = Stored {
                            expire_ms: e.expire_time.or(stamp.default_expire).unwrap_or(NEVER),
                            create_ms: stamp.now_ms,
                            comment: e.comment.into_boxed_str(),
                            author: author.clone(),
                        };
                        if let Some(b) = buckets.get_mut(Snapshot::shard_of(&key)) {
                            b.push((key.into_boxed_str(), stored));
                        }
                    }
                    Err(err) => rejected.push((offsets[n] + i, reason(err))),
                }
            }
            Ok((
                buckets.into_iter().map(Mutex::new).collect::<Vec<_>>(),
                rejected,
            ))
        };
        let spread = parallel::map_if_worth(received, pieces.len(), spread)?;
        let mut outcome = WriteOutcome::default();
        let mut buckets = Vec::with_capacity(spread.len());
        for (b, rejected) in spread {
            buckets.push(b);
            outcome.rejected.extend(rejected);
        }
        // A replace compares every current entry too.
        let work = received
            + match mode {
                WriteMode::Merge => 0,
                WriteMode::Replace => base.shards.iter().map(|s| s.len()).sum(),
            };
        let shards = parallel::map_if_worth(work, SHARDS, |s| {
            let entries = buckets
                .iter()
                .flat_map(|piece| piece.get(s).map(|b| std::mem::take(&mut *b.lock())))
                .flatten();
            let old = base.shards.get(s).cloned().unwrap_or_default();
            Ok(stage_shard(entries, &old, mode))
        })?;

        let mut next = Snapshot::empty();
        let (mut add, mut remove, mut applied) = (Vec::new(), Vec::new(), Vec::new());
        for (s, w) in shards.into_iter().enumerate() {
            if let Some(slot) = next.shards.get_mut(s) {
                *slot = w.shard;
            }
            outcome.added += w.added;
            outcome.replaced += w.replaced;
            add.extend(w.add);
            remove.extend(w.remove);
            applied.push(w.applied);
        }
        if self.kind == super::EntryKind::Ip {
            next.rebuild_networks();
        }
        add.sort_unstable();
        remove.sort_unstable();
        Ok(StagedWrite {
            list: self.id.clone(),
            mode,
            base,
            next,
            applied,
            outcome,
            received,
            add,
            remove,
        })
    }

    /// Publishes a staged write (after its change was stored). If the list changed since
    /// it was staged, its entries are applied again onto the current content, so the
    /// published list is the current one plus (or, replacing, exactly) this write.
    /// `InvalidArgument` if it was staged on another list.
    pub fn commit(&self, staged: StagedWrite) -> CoreResult<WriteOutcome> {
        if staged.list != self.id {
            return Err(CoreError::invalid(
                "staged",
                format!(
                    "a write staged on list `{}`, not `{}`",
                    staged.list, self.id
                ),
            ));
        }
        let _guard = self.writer.lock();
        let current = self.content.load_full();
        let next = if Arc::ptr_eq(&current, &staged.base) {
            staged.next
        } else {
            let mut next = match staged.mode {
                WriteMode::Merge => (*current).clone(),
                WriteMode::Replace => Snapshot::empty(),
            };
            for (key, stored) in staged.applied.into_iter().flatten() {
                next.put(key, stored);
            }
            if self.kind == super::EntryKind::Ip {
                next.rebuild_networks();
            }
            next
        };
        self.content.store(Arc::new(next));
        Ok(staged.outcome)
    }
}

/// One shard of a staged write: `entries` (this shard's, in input order) de-duplicated
/// and compared with the shard's current content `old`.
fn stage_shard(
    entries: impl Iterator<Item = (Box<str>, Stored)>,
    old: &Arc<super::Shard>,
    mode: WriteMode,
) -> ShardWrite {
    let hasher = FixedState::with_seed(0x7374_6167_6564);
    let mut applied: Bucket = Vec::new();
    let mut seen = hashbrown::HashTable::<usize>::new();
    for (key, stored) in entries {
        let h = hasher.hash_one(&*key);
        let found = seen.find(h, |&j| applied.get(j).is_some_and(|(k, _)| *k == key));
        if let Some(&j) = found {
            if let Some(slot) = applied.get_mut(j) {
                slot.1 = stored;
            }
        } else {
            seen.insert_unique(h, applied.len(), |&j| {
                applied.get(j).map_or(0, |(k, _)| hasher.hash_one(&**k))
            });
            applied.push((key, stored));
        }
    }
    let mut shard = match mode {
        WriteMode::Merge => old.clone(),
        WriteMode::Replace => Arc::new(super::Shard::default()),
    };
    if applied.is_empty() && mode == WriteMode::Merge {
        // Nothing lands here: the shard stays shared with the current content (a small
        // write copies only the shards it touches).
        return ShardWrite {
            shard,
            applied,
            add: Vec::new(),
            remove: Vec::new(),
            added: 0,
            replaced: 0,
        };
    }
    let map = Arc::make_mut(&mut shard);
    map.reserve(applied.len());
    let mut w = ShardWrite {
        shard: Arc::default(),
        applied: Vec::new(),
        add: Vec::with_capacity(applied.len()),
        remove: Vec::new(),
        added: 0,
        replaced: 0,
    };
    for (key, stored) in &applied {
        let before = old.get(key);
        if mode == WriteMode::Merge && before.is_some() {
            w.replaced += 1;
        } else {
            w.added += 1;
        }
        match before {
            Some(o) if o.same(stored) => {}
            Some(o) => {
                w.remove.push(encode(key, o));
                w.add.push(encode(key, stored));
            }
            None => w.add.push(encode(key, stored)),
        }
        map.insert(key.clone(), stored.clone());
    }
    if mode == WriteMode::Replace {
        for (key, o) in old.iter() {
            let h = hasher.hash_one(&**key);
            let kept = seen
                .find(h, |&j| applied.get(j).is_some_and(|(k, _)| k == key))
                .is_some();
            if !kept {
                w.remove.push(encode(key, o));
            }
        }
    }
    w.shard = shard;
    w.applied = applied;
    w
}

impl Snapshot {
    fn put(&mut self, key: Box<str>, stored: Stored) {
        if let Some(shard) = self.shards.get_mut(Self::shard_of(&key)) {
            Arc::make_mut(shard).insert(key, stored);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{EntryKind, ListType};
    use super::*;

    fn new(value: &str, expire_time: Option<i64>, comment: &str) -> NewEntry {
        NewEntry {
            value: value.to_string(),
            expire_time,
            comment: comment.to_string(),
        }
    }

    fn stamp(now_ms: i64) -> WriteStamp<'static> {
        WriteStamp {
            author: "ops",
            now_ms,
            default_expire: None,
        }
    }

    #[test]
    fn nothing_is_visible_before_the_commit() {
        let l = List::new("inn", EntryKind::TaxId, ListType::Black);
        let staged = l
            .stage(
                vec![new("7701234567", None, "")],
                WriteMode::Merge,
                stamp(1),
            )
            .unwrap();
        assert!(!l.contains("7701234567", 0));
        let outcome = l.commit(staged).unwrap();
        assert_eq!((outcome.added, outcome.replaced), (1, 0));
        assert!(l.contains("7701234567", 0));
    }

    #[test]
    fn the_change_is_what_the_store_must_record() {
        let l = List::new("inn", EntryKind::TaxId, ListType::Black);
        let first = l
            .stage(
                vec![
                    new("7701234567", None, "a"),
                    new("7709999999", Some(50), "b"),
                ],
                WriteMode::Merge,
                stamp(1),
            )
            .unwrap();
        l.commit(first).unwrap();
        // Same value again with a new comment and a duplicate (the last wins), one
        // invalid value, one new value.
        let mut staged = l
            .stage(
                vec![
                    new(" 7701234567 ", None, "first"),
                    new("x", None, ""),
                    new("7701234567", None, "c"),
                    new("7705555555", None, ""),
                ],
                WriteMode::Merge,
                stamp(2),
            )
            .unwrap();
        assert_eq!(staged.outcome.rejected.len(), 1);
        assert_eq!(staged.outcome.rejected[0].0, 1);
        assert_eq!((staged.outcome.added, staged.outcome.replaced), (1, 1));
        let (add, remove) = staged.take_change();
        assert_eq!(
            add,
            vec![
                "7701234567\x1f\x1f2\x1fops\x1fc",
                "7705555555\x1f\x1f2\x1fops\x1f"
            ]
        );
        assert_eq!(remove, vec!["7701234567\x1f\x1f1\x1fops\x1fa"]);
        l.commit(staged).unwrap();
        let e = l.lookup(&["7701234567".to_string()]).remove(0).unwrap();
        assert_eq!((e.comment.as_str(), e.create_time), ("c", 2));
        assert!(l.contains("7709999999", 49));
    }

    #[test]
    fn a_replace_removes_what_it_does_not_keep() {
        let l = List::new("inn", EntryKind::TaxId, ListType::Black);
        l.commit(
            l.stage(
                vec![new("7701234567", None, ""), new("7709999999", None, "")],
                WriteMode::Merge,
                stamp(1),
            )
            .unwrap(),
        )
        .unwrap();
        let mut staged = l
            .stage(
                vec![new("7701234567", None, "")],
                WriteMode::Replace,
                stamp(1),
            )
            .unwrap();
        let (add, remove) = staged.take_change();
        assert!(add.is_empty(), "an identical entry is kept as it is");
        assert_eq!(remove, vec!["7709999999\x1f\x1f1\x1fops\x1f"]);
        l.commit(staged).unwrap();
        assert!(l.contains("7701234567", 0));
        assert!(!l.contains("7709999999", 0));
    }

    #[test]
    fn a_list_changed_after_staging_gets_the_write_applied_again() {
        let l = List::new("ip", EntryKind::Ip, ListType::Black);
        let staged = l
            .stage(
                vec![new("10.0.0.0/8", None, "")],
                WriteMode::Merge,
                stamp(1),
            )
            .unwrap();
        l.commit(
            l.stage(
                vec![new("192.168.1.1", None, "")],
                WriteMode::Merge,
                stamp(1),
            )
            .unwrap(),
        )
        .unwrap();
        l.commit(staged).unwrap();
        assert!(l.contains("192.168.1.1", 0), "the other write is kept");
        assert!(l.contains("10.1.2.3", 0), "networks are rebuilt");
        let other = List::new("other", EntryKind::Ip, ListType::Black);
        let staged = other.stage(vec![], WriteMode::Merge, stamp(1)).unwrap();
        assert!(l.commit(staged).is_err());
    }

    #[test]
    fn default_expiry_applies_to_entries_without_one() {
        let l = List::new("inn", EntryKind::TaxId, ListType::Black);
        let stamp = WriteStamp {
            default_expire: Some(100),
            ..stamp(1)
        };
        l.commit(
            l.stage(
                vec![
                    new("7701234567", None, ""),
                    new("7709999999", Some(500), ""),
                ],
                WriteMode::Merge,
                stamp,
            )
            .unwrap(),
        )
        .unwrap();
        assert!(!l.contains("7701234567", 100));
        assert!(l.contains("7709999999", 499));
    }

    #[test]
    fn a_bulk_write_in_pieces_keeps_input_order_and_indexes() {
        let l = List::new("inn", EntryKind::TaxId, ListType::Black);
        let piece = |from: u64| -> Vec<NewEntry> {
            (from..from + 50_000)
                .map(|i| new(&(7_700_000_000 + i).to_string(), None, "first"))
                .collect()
        };
        let mut middle = piece(50_000);
        middle[10].value = "not a tax id".into();
        let mut last = piece(100_000);
        last[7] = new("7700000003", None, "again"); // repeats an entry of the first piece
        let mut staged = l
            .stage_pieces(vec![piece(0), middle, last], WriteMode::Merge, stamp(1))
            .unwrap();
        assert_eq!(staged.received, 150_000);
        assert_eq!(staged.outcome.rejected.len(), 1);
        assert_eq!(staged.outcome.rejected[0].0, 50_010);
        assert_eq!(staged.written(), 149_998);
        assert_eq!(staged.outcome.added, 149_998);
        let (add, remove) = staged.take_change();
        assert_eq!(add.len(), 149_998);
        assert!(add.windows(2).all(|w| w[0] < w[1]), "sorted, no repeats");
        assert!(remove.is_empty());
        l.commit(staged).unwrap();
        let e = l.lookup(&["7700000003".to_string()]).remove(0).unwrap();
        assert_eq!(e.comment, "again", "the last of a value wins");
        assert_eq!(l.live_count(0), 149_998);
    }

    #[test]
    fn a_small_write_copies_only_the_shards_it_touches() {
        let l = List::new("inn", EntryKind::TaxId, ListType::Black);
        let many = (0..10_000u64)
            .map(|i| new(&(7_700_000_000 + i).to_string(), None, ""))
            .collect();
        l.commit(l.stage(many, WriteMode::Merge, stamp(1)).unwrap())
            .unwrap();
        let before = l.content.load_full();
        l.commit(
            l.stage(
                vec![new("7799999999", None, "")],
                WriteMode::Merge,
                stamp(2),
            )
            .unwrap(),
        )
        .unwrap();
        let after = l.content.load_full();
        let shared = before
            .shards
            .iter()
            .zip(after.shards.iter())
            .filter(|(a, b)| Arc::ptr_eq(a, b))
            .count();
        assert_eq!(shared, SHARDS - 1);
        assert_eq!(l.live_count(0), 10_001);
    }

    #[test]
    fn stored_text_round_trips() {
        let e = Entry {
            value: "7701234567".into(),
            expire_time: Some(5),
            comment: "with\ttab and \x1f separator".into(),
            create_time: -3,
            author: "ops".into(),
        };
        assert_eq!(decode_entry(&encode_entry(&e)).unwrap(), e);
        let never = Entry {
            expire_time: None,
            ..e
        };
        assert_eq!(decode_entry(&encode_entry(&never)).unwrap(), never);
        assert!(decode_entry("no separators").is_err());
        assert!(decode_entry("v\x1fx\x1f1\x1fa\x1f").is_err());
    }

    #[test]
    fn import_chunks_decode_and_check_their_size() {
        let chunk = PbImportChunk {
            entries: vec![
                PbListEntry {
                    value: "7701234567".into(),
                    expire_time: Some(PbTimestamp {
                        seconds: 2,
                        nanos: 5_000_000,
                    }),
                    comment: "c".into(),
                },
                PbListEntry {
                    value: "7709999999".into(),
                    expire_time: None,
                    comment: String::new(),
                },
            ],
        }
        .encode_to_vec();
        let pieces = decode_import_chunks(&[chunk.as_slice(), chunk.as_slice()]).unwrap();
        assert_eq!(pieces.len(), 2);
        assert_eq!(pieces[0][0], new("7701234567", Some(2005), "c"));
        assert_eq!(pieces[1][1], new("7709999999", None, ""));
        assert!(decode_import_chunks(&[&b"\xff\xff"[..]]).is_err());
        let too_many = PbImportChunk {
            entries: vec![PbListEntry::default(); MAX_ENTRIES_PER_MESSAGE + 1],
        }
        .encode_to_vec();
        assert!(decode_import_chunks(&[too_many.as_slice()]).is_err());
        let bad_time = PbImportChunk {
            entries: vec![PbListEntry {
                expire_time: Some(PbTimestamp {
                    seconds: 1,
                    nanos: -1,
                }),
                ..PbListEntry::default()
            }],
        }
        .encode_to_vec();
        let err = decode_import_chunks(&[bad_time.as_slice()]).unwrap_err();
        assert!(err.to_string().contains("entry 0"), "{err}");
    }
}
