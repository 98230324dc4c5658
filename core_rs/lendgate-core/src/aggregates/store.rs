//! The in-memory store: per object, sharded maps from normalised key to element state.

use super::compile::{Definitions, Element, Group, Object, Operand, ParamBody};
use super::proto::ProtoPlan;
use super::query;
use super::spec::ExceptSpec;
use super::state::{ElemState, Entity};
use super::value::{check_len, convert, EventView, InlineStr, Millis, Scalar, Val};
use crate::error::{CoreError, CoreResult};
use crate::normalize::normalize_key_into;
use crate::parallel;
use parking_lot::Mutex;
use serde_json::Value;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::Arc;

/// Shards per key group: a power of two, enough that two cores rarely meet on one lock.
const SHARDS: usize = 64;
/// Separator of the parts of a composite key (ASCII unit separator).
const KEY_SEP: char = '\u{1f}';
/// Snapshot magic and the format version this build writes and reads.
const SNAPSHOT_MAGIC: &[u8; 8] = b"LGAGSNAP";
/// Version of the snapshot format.
pub const SNAPSHOT_VERSION: u16 = 2;
/// Keys up to this many bytes are kept inside the hash table's entry (a 64-byte
/// entry with the entity's pointer): ids, INNs, phones and most composite keys —
/// "surname + first name + phone" in Cyrillic often needs 40 bytes or more.
const INLINE_KEY: usize = 46;

/// A normalised key, kept inside the table entry when short, so a probe compares it
/// without another cache miss (and without `memcmp`).
type KeyBuf = InlineStr<INLINE_KEY>;

/// The keys of one shard: each key is hashed once per event, and that one hash picks
/// the shard (top bits) and the bucket (all bits).
#[derive(Default)]
struct Map {
    table: hashbrown::HashTable<(KeyBuf, Entity)>,
}

impl Map {
    fn len(&self) -> usize {
        self.table.len()
    }

    /// The entity of `key` (in its stored form), if any.
    fn find_mut(&mut self, hash: u64, key: &KeyBuf) -> Option<&mut Entity> {
        self.table
            .find_mut(hash, |(k, _)| *k == *key)
            .map(|(_, e)| e)
    }

    fn find(&self, hash: u64, key: &KeyBuf) -> Option<&Entity> {
        self.table.find(hash, |(k, _)| *k == *key).map(|(_, e)| e)
    }

    /// Inserts a key known to be absent; returns its entity.
    fn insert(&mut self, hasher: &Hasher, hash: u64, key: KeyBuf, ent: Entity) -> &mut Entity {
        &mut self
            .table
            .insert_unique(hash, (key, ent), |(k, _)| hasher.hash_one(k.as_bytes()))
            .into_mut()
            .1
    }

    /// The entity of `key`, inserted by `new` when absent (one probe either way).
    fn get_or_insert(
        &mut self,
        hasher: &Hasher,
        hash: u64,
        key: &str,
        new: impl FnOnce() -> Entity,
    ) -> &mut Entity {
        let entry = self.table.entry(
            hash,
            |(k, _)| k.as_bytes() == key.as_bytes(),
            |(k, _)| hasher.hash_one(k.as_bytes()),
        );
        match entry {
            hashbrown::hash_table::Entry::Occupied(e) => &mut e.into_mut().1,
            hashbrown::hash_table::Entry::Vacant(e) => {
                &mut e.insert((KeyBuf::from(key), new())).into_mut().1
            }
        }
    }

    fn iter(&self) -> impl Iterator<Item = &(KeyBuf, Entity)> {
        self.table.iter()
    }

    fn retain(&mut self, mut keep: impl FnMut(&mut Entity) -> bool) {
        self.table.retain(|(_, e)| keep(e));
    }
}

/// A message type's name and its plan (`None`: the type is read as a whole document).
type ProtoPlanEntry = (Box<str>, Option<Arc<ProtoPlan>>);

/// Randomly seeded per store (keys come from requests: no predictable collisions).
type Hasher = foldhash::fast::RandomState;

/// The sharded keys of one key group.
struct GroupShards {
    shards: Box<[Mutex<Map>]>,
}

impl GroupShards {
    fn new() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(Map::default())).collect(),
        }
    }

    fn shard(&self, hash: u64) -> &Mutex<Map> {
        &self.shards[(hash >> 58) as usize % SHARDS]
    }
}

/// The values of the parameters for one event, in definition order.
pub type ParamValues = Vec<Scalar>;

/// What one call of [`AggregateStore::expire_step`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExpireProgress {
    /// Shards visited.
    pub shards: usize,
    /// Keys removed because nothing of theirs is within any horizon (a key shared by
    /// several objects counts once).
    pub keys_dropped: usize,
    /// The pass reached the last shard (the next call starts a new pass).
    pub pass_complete: bool,
}

/// Keyed, time-windowed aggregates ("dynamic calculation objects").
///
/// Thread-safe: `apply` from any number of threads. Objects with the same key form a
/// group whose state is kept together, one entity per key; each group's keys are
/// spread over `SHARDS` mutexes. One event locks one shard of each group it touches,
/// all of them first, in group order (see `run`); everything else locks one shard at a
/// time.
pub struct AggregateStore {
    defs: Definitions,
    groups: Box<[GroupShards]>,
    hasher: Hasher,
    /// Protobuf extraction plans by message type (`None`: decode the whole document).
    proto_plans: parking_lot::RwLock<Vec<ProtoPlanEntry>>,
    watermark: AtomicI64,
    expire_cursor: AtomicUsize,
}

/// The per-event buffers, kept per thread and reused (cleared) from event to event.
#[derive(Default)]
struct Scratch {
    /// All groups' normalised keys, back to back.
    keys: String,
    /// Per group: the range of its key in `keys`, or `None` when the event lacks it.
    groups: Vec<Option<(u32, u32)>>,
    /// Per element (flat, `Definitions::elem_base`): the value to apply (`Some` when
    /// the filter passed).
    updates: Vec<Option<Scalar>>,
    /// Per element (flat): this event's value of the element's attribute, when a
    /// parameter needs it.
    current: Vec<Option<Scalar>>,
    /// Per distinct filter (`Element::filter_id`): not run yet (0), failed (1),
    /// passed (2).
    filters: Vec<u8>,
}

thread_local! {
    static SCRATCH: std::cell::Cell<Option<Box<Scratch>>> = const { std::cell::Cell::new(None) };
}

impl Scratch {
    /// This thread's buffers (new ones if they are in use).
    fn take() -> Box<Scratch> {
        SCRATCH.with(std::cell::Cell::take).unwrap_or_default()
    }

    /// Clears the buffers and keeps them for the thread's next event.
    fn give_back(mut self: Box<Self>) {
        self.keys.clear();
        self.groups.clear();
        self.updates.clear();
        self.current.clear();
        self.filters.clear();
        SCRATCH.with(|c| c.set(Some(self)));
    }
}

/// One event, read and checked before anything is changed.
struct Prepared {
    t: Millis,
    s: Box<Scratch>,
}

/// A key group an event reads or changes: its hash, its key, and whether the event
/// updates any of its elements.
struct Touch {
    gi: usize,
    hash: u64,
    key: KeyBuf,
    changes: bool,
}

/// Reads the first and the last record of every array of an entity, so that the
/// memory they sit in is on its way to the cache before the queries need it (the
/// reads of several entities overlap; a query's binary search then mostly hits).
/// Returns a value only so the reads cannot be optimised away.
fn touch(states: &[ElemState]) -> usize {
    let mut x = 0usize;
    for st in states {
        x ^= match st {
            ElemState::Records(r) => {
                r.first().map_or(0, |r| r.t as usize) ^ r.last().map_or(0, |r| r.t as usize)
            }
            ElemState::Buckets(b) => {
                b.first().map_or(0, |b| b.n as usize) ^ b.last().map_or(0, |b| b.n as usize)
            }
            _ => 0,
        };
    }
    x
}

impl AggregateStore {
    /// An empty store for compiled definitions.
    pub fn new(defs: Definitions) -> Self {
        let groups = (0..defs.groups.len()).map(|_| GroupShards::new()).collect();
        Self {
            defs,
            groups,
            hasher: Hasher::default(),
            proto_plans: parking_lot::RwLock::new(Vec::new()),
            watermark: AtomicI64::new(i64::MIN),
            expire_cursor: AtomicUsize::new(0),
        }
    }

    /// The definitions the store runs.
    pub fn definitions(&self) -> &Definitions {
        &self.defs
    }

    /// The newest event time applied so far (epoch ms), if any.
    pub fn watermark(&self) -> Option<Millis> {
        let w = self.watermark.load(Ordering::Acquire);
        (w != i64::MIN).then_some(w)
    }

    /// Number of keys held, per object name (hidden objects of built-in parameters
    /// are named `$param`).
    pub fn key_counts(&self) -> Vec<(String, usize)> {
        let mut counts = vec![0; self.defs.objects.len()];
        for (g, shards) in self.defs.groups.iter().zip(self.groups.iter()) {
            for shard in shards.shards.iter() {
                for (_, ent) in shard.lock().iter() {
                    for &oi in &g.objects {
                        counts[oi] += usize::from(!is_empty(self.states(ent, oi)));
                    }
                }
            }
        }
        self.defs
            .objects
            .iter()
            .zip(counts)
            .map(|(o, n)| (o.name.clone(), n))
            .collect()
    }

    /// The part of a group's entity that belongs to object `oi`.
    fn states<'e>(&self, ent: &'e Entity, oi: usize) -> &'e [ElemState] {
        let o = &self.defs.objects[oi];
        &ent.elems[o.offset..o.offset + o.elements.len()]
    }

    /// Applies one event (a JSON document) to every object and returns every
    /// parameter's value for it. The event is applied entirely or not at all.
    ///
    /// Only the attributes the definitions read are taken out of the JSON (unless an
    /// expression filter needs the whole document).
    pub fn apply(&self, event: &[u8]) -> CoreResult<ParamValues> {
        self.with_json(event, |view| self.apply_view(view))
    }

    /// [`Self::apply`] for an already parsed event.
    pub fn apply_value(&self, event: &Value) -> CoreResult<ParamValues> {
        self.apply_view(&EventView::from_document(event, &self.defs.paths))
    }

    /// [`Self::apply`] for a serialized protobuf message of type `full_name` (a
    /// `lendgate.v1` message). Only the fields the definitions read are decoded (see
    /// `aggregates::proto`), unless an expression filter needs the whole document.
    pub fn apply_proto(&self, full_name: &str, bytes: &[u8]) -> CoreResult<ParamValues> {
        self.with_proto(full_name, bytes, |view| self.apply_view(view))
    }

    /// [`Self::evaluate`] for a serialized protobuf message of type `full_name`.
    pub fn evaluate_proto(&self, full_name: &str, bytes: &[u8]) -> CoreResult<ParamValues> {
        self.with_proto(full_name, bytes, |view| self.evaluate_view(view))
    }

    fn with_proto<R>(
        &self,
        full_name: &str,
        bytes: &[u8],
        f: impl FnOnce(&EventView<'_>) -> CoreResult<R>,
    ) -> CoreResult<R> {
        match self.proto_plan(full_name)? {
            Some(plan) => f(&EventView::from_slots(plan.extract(
                full_name,
                bytes,
                self.defs.paths.len(),
            )?)),
            None => {
                let doc = crate::document::decode_document(full_name, bytes)?;
                f(&EventView::from_document(&doc, &self.defs.paths))
            }
        }
    }

    /// The extraction plan of a message type, compiled on first use.
    fn proto_plan(&self, full_name: &str) -> CoreResult<Option<Arc<ProtoPlan>>> {
        if let Some((_, plan)) = self
            .proto_plans
            .read()
            .iter()
            .find(|(n, _)| &**n == full_name)
        {
            return Ok(plan.clone());
        }
        let desc = crate::document::message_descriptor(full_name)?;
        let plan = (!self.defs.needs_document)
            .then(|| ProtoPlan::compile(&desc, &self.defs.paths))
            .flatten()
            .map(Arc::new);
        let mut plans = self.proto_plans.write();
        if !plans.iter().any(|(n, _)| &**n == full_name) {
            plans.push((full_name.into(), plan.clone()));
        }
        Ok(plan)
    }

    /// The values [`Self::apply`] would return for this event, without changing
    /// anything.
    pub fn evaluate(&self, event: &[u8]) -> CoreResult<ParamValues> {
        self.with_json(event, |view| self.evaluate_view(view))
    }

    /// [`Self::evaluate`] for an already parsed event.
    pub fn evaluate_value(&self, event: &Value) -> CoreResult<ParamValues> {
        self.evaluate_view(&EventView::from_document(event, &self.defs.paths))
    }

    fn with_json<R>(
        &self,
        event: &[u8],
        f: impl FnOnce(&EventView<'_>) -> CoreResult<R>,
    ) -> CoreResult<R> {
        if self.defs.needs_document {
            let doc = parse_event(event)?;
            f(&EventView::from_document(&doc, &self.defs.paths))
        } else {
            f(&EventView::from_slots(self.defs.paths.extract_json(event)?))
        }
    }

    fn apply_view(&self, event: &EventView<'_>) -> CoreResult<ParamValues> {
        let mut prepared = self.prepare(event)?;
        let w = self
            .watermark
            .fetch_max(prepared.t, Ordering::AcqRel)
            .max(prepared.t);
        let out = self.run(event, &mut prepared, w - self.defs.lateness_ms, true);
        prepared.s.give_back();
        Ok(out)
    }

    fn evaluate_view(&self, event: &EventView<'_>) -> CoreResult<ParamValues> {
        let mut prepared = self.prepare(event)?;
        let w = self.watermark.load(Ordering::Acquire).max(prepared.t);
        let out = self.run(event, &mut prepared, w - self.defs.lateness_ms, false);
        prepared.s.give_back();
        Ok(out)
    }

    fn prepare(&self, event: &EventView<'_>) -> CoreResult<Prepared> {
        let defs = &self.defs;
        let tv = defs
            .time_attr
            .at(event)
            .ok_or_else(|| CoreError::invalid(defs.time_attr.as_str(), "the event has no time"))?;
        let t = super::value::parse_time_val(tv, defs.time_attr.as_str())?;
        let w = self.watermark.load(Ordering::Acquire);
        if w != i64::MIN && t < w - defs.lateness_ms {
            return Err(CoreError::invalid(
                defs.time_attr.as_str(),
                format!(
                    "event time {t} is {} s older than the newest event seen, beyond the \
                     allowed lateness of {} s",
                    (w - t) / 1000,
                    defs.lateness_ms / 1000
                ),
            ));
        }
        let mut s = Scratch::take();
        s.groups.resize(defs.groups.len(), None);
        s.filters.resize(defs.n_filters, 0);
        for (oi, o) in defs.objects.iter().enumerate() {
            // The key of a group is built with its first object (offset 0), so errors
            // come in definition order.
            if o.offset == 0 {
                match build_key(o, event, &mut s.keys) {
                    Ok(range) => s.groups[o.group] = range,
                    Err(e) => {
                        s.give_back();
                        return Err(e);
                    }
                }
            }
            if let Err(e) = prepare_object(o, event, s.groups[o.group].is_some(), &mut s) {
                s.give_back();
                return Err(e);
            }
            debug_assert_eq!(s.updates.len(), defs.elem_base[oi + 1]);
        }
        Ok(Prepared { t, s })
    }

    /// Applies a prepared event (when `commit`) and computes every parameter. The
    /// parameters that read the state before the event (`except: record`, `save`) are
    /// computed before its updates.
    ///
    /// The shards of every group the event touches are locked first, in group order,
    /// and held for the whole event (this is the only place that holds more than one
    /// shard lock, so the order cannot deadlock). With the locks taken, the keys are
    /// looked up back to back and each entity's arrays touched before any of them is
    /// used: the cache misses of the seven or so independent lookups of an event then
    /// overlap instead of queueing one behind another (a lock is a full barrier on
    /// x86, so one lock per lookup would serialise them).
    fn run(
        &self,
        event: &EventView<'_>,
        p: &mut Prepared,
        cut: Millis,
        commit: bool,
    ) -> ParamValues {
        let defs = &self.defs;
        let t = p.t;
        let s = &mut *p.s;
        let mut out = Vec::with_capacity(defs.params.len());
        out.resize_with(defs.params.len(), || Scalar::Null);
        let elems = |oi: usize| defs.elem_base[oi]..defs.elem_base[oi + 1];
        let mut todo = Vec::with_capacity(defs.groups.len());
        for (gi, g) in defs.groups.iter().enumerate() {
            let Some((lo, hi)) = s.groups[gi] else {
                continue;
            };
            let changes = g
                .objects
                .iter()
                .any(|&oi| s.updates[elems(oi)].iter().any(Option::is_some));
            let reads = g.objects.iter().any(|&oi| {
                let o = &defs.objects[oi];
                !o.params_before.is_empty() || !o.params_after.is_empty()
            });
            if changes || reads {
                let key = &s.keys[lo as usize..hi as usize];
                let hash = self.hasher.hash_one(key.as_bytes());
                todo.push(Touch {
                    gi,
                    hash,
                    key: KeyBuf::from(key),
                    changes,
                });
            }
        }
        let mut shards: Vec<_> = todo
            .iter()
            .map(|x| self.groups[x.gi].shard(x.hash).lock())
            .collect();
        let found: Vec<Option<&Entity>> = todo
            .iter()
            .zip(shards.iter())
            .map(|(x, shard)| shard.find(x.hash, &x.key))
            .collect();
        std::hint::black_box(found.iter().flatten().fold(0, |a, e| a ^ touch(&e.elems)));
        drop(found);
        for (x, shard) in todo.into_iter().zip(shards.iter_mut()) {
            let (gi, hash, changes) = (x.gi, x.hash, x.changes);
            let g = &defs.groups[gi];
            let objects = || g.objects.iter().map(|&oi| (oi, &defs.objects[oi]));
            let existing = shard.find_mut(hash, &x.key);
            for (oi, o) in objects() {
                let states = existing.as_deref().map(|e| self.states(e, oi));
                for &pi in &o.params_before {
                    out[pi] =
                        eval_stateful(&defs.params[pi].body, o, states, t, &s.current[elems(oi)]);
                }
            }
            let mut copy;
            let after: Option<&Entity> = match (changes, commit, existing) {
                (false, _, existing) => existing.map(|e| &*e),
                (true, true, Some(ent)) => {
                    self.apply_group(g, ent, t, &mut s.updates, cut, true);
                    Some(&*ent)
                }
                (true, true, None) => {
                    let mut ent = Entity::new(g.n_elems);
                    self.apply_group(g, &mut ent, t, &mut s.updates, cut, true);
                    Some(&*shard.insert(&self.hasher, hash, x.key, ent))
                }
                (true, false, existing) => {
                    copy = existing
                        .map(|e| e.clone())
                        .unwrap_or_else(|| Entity::new(g.n_elems));
                    self.apply_group(g, &mut copy, t, &mut s.updates, cut, false);
                    Some(&copy)
                }
            };
            for (oi, o) in objects() {
                let states = after.map(|e| self.states(e, oi));
                for &pi in &o.params_after {
                    out[pi] =
                        eval_stateful(&defs.params[pi].body, o, states, t, &s.current[elems(oi)]);
                }
            }
        }
        drop(shards);
        for (pi, param) in defs.params.iter().enumerate() {
            if param.body.object().is_none() {
                out[pi] = eval_transform(&param.body, event, &out);
            }
        }
        out
    }

    /// Applies the updates of every object of group `g` to its entity; `take` moves
    /// the values out of `updates` instead of cloning them.
    fn apply_group(
        &self,
        g: &Group,
        ent: &mut Entity,
        t: Millis,
        updates: &mut [Option<Scalar>],
        cut: Millis,
        take: bool,
    ) {
        for &oi in &g.objects {
            let o = &self.defs.objects[oi];
            let ups = &mut updates[self.defs.elem_base[oi]..self.defs.elem_base[oi + 1]];
            let states = &mut ent.elems[o.offset..o.offset + o.elements.len()];
            for ((st, el), up) in states.iter_mut().zip(&o.elements).zip(ups) {
                let v = if take { up.take() } else { up.clone() };
                if let Some(v) = v {
                    st.update(el, t, v, cut);
                }
            }
        }
    }

    /// Drops expired data from up to `max_shards` shards, continuing where the last
    /// call stopped. Each shard is locked only while it is pruned, so queries on other
    /// shards go on. The horizon is relative to the newest event time (event time,
    /// not wall time), so a replay expires exactly what live traffic expired.
    pub fn expire_step(&self, max_shards: usize) -> ExpireProgress {
        let mut progress = ExpireProgress::default();
        let total = self.groups.len() * SHARDS;
        let Some(w) = self.watermark() else {
            progress.pass_complete = true;
            return progress;
        };
        if total == 0 {
            progress.pass_complete = true;
            return progress;
        }
        let cut = w - self.defs.lateness_ms;
        for _ in 0..max_shards.min(total) {
            let slot = self.expire_cursor.fetch_add(1, Ordering::AcqRel) % total;
            let (gi, si) = (slot / SHARDS, slot % SHARDS);
            let elements: Vec<&Element> = self.defs.groups[gi]
                .objects
                .iter()
                .flat_map(|&oi| &self.defs.objects[oi].elements)
                .collect();
            let mut shard = self.groups[gi].shards[si].lock();
            let before = shard.len();
            shard.retain(|ent| {
                for (st, el) in ent.elems.iter_mut().zip(&elements) {
                    st.prune(el, cut);
                }
                !ent.is_empty()
            });
            progress.keys_dropped += before - shard.len();
            progress.shards += 1;
            if slot + 1 == total {
                progress.pass_complete = true;
                break;
            }
        }
        progress
    }

    /// Serialises the whole state: a versioned header, the layout of the definitions,
    /// the watermark, then per object one section per shard — its entity count and byte
    /// length (fixed-width little-endian `u64`s), then each key with its elements
    /// (postcard). The sections are serialised on several threads, and let
    /// [`Self::restore`] decode them on several threads. Each shard is locked only while
    /// its section is copied, so the snapshot is a consistent cut only when no `apply`
    /// runs meanwhile.
    ///
    /// The format is per object, not per key group: it does not depend on how the
    /// store keeps objects that share a key together in memory.
    pub fn snapshot(&self) -> CoreResult<Vec<u8>> {
        // Every (object, shard) section is serialised on its own, on up to
        // [`parallel::MAX_THREADS`] threads, then they are joined in order.
        let jobs: Vec<(usize, usize)> = (self.defs.objects.iter().enumerate())
            .flat_map(|(oi, o)| (0..self.groups[o.group].shards.len()).map(move |si| (oi, si)))
            .collect();
        let sections = parallel::map(jobs.len(), |i| self.snapshot_section(jobs[i].0, jobs[i].1))?;
        let mut out = Vec::with_capacity(64 + sections.iter().map(Vec::len).sum::<usize>());
        out.extend_from_slice(SNAPSHOT_MAGIC);
        out.extend_from_slice(&SNAPSHOT_VERSION.to_le_bytes());
        put(&mut out, &self.defs.layout)?;
        put(&mut out, &self.watermark.load(Ordering::Acquire))?;
        put(&mut out, &(self.defs.objects.len() as u64))?;
        let mut done = sections.into_iter();
        for o in &self.defs.objects {
            let shards = self.groups[o.group].shards.len();
            put(&mut out, &(shards as u64))?;
            for section in done.by_ref().take(shards) {
                out.extend_from_slice(&section);
            }
        }
        Ok(out)
    }

    /// One section of [`Self::snapshot`]: object `oi`'s entities of shard `si`, after
    /// their count and byte length.
    fn snapshot_section(&self, oi: usize, si: usize) -> CoreResult<Vec<u8>> {
        let shard = self.groups[self.defs.objects[oi].group].shards[si].lock();
        let held = |ent: &&(KeyBuf, Entity)| !is_empty(self.states(&ent.1, oi));
        let mut out = vec![0; 16];
        let mut count = 0u64;
        for (k, ent) in shard.iter().filter(held) {
            let elems = self.states(ent, oi);
            put(&mut out, &(k.as_str(), EntityRef { elems }))?;
            count += 1;
        }
        let len = (out.len() - 16) as u64;
        out[..8].copy_from_slice(&count.to_le_bytes());
        out[8..16].copy_from_slice(&len.to_le_bytes());
        Ok(out)
    }

    /// Rebuilds a store from a [`Self::snapshot`] taken with definitions of the same
    /// layout: the shard sections are decoded on up to [`parallel::MAX_THREADS`] threads
    /// into tables sized from their counts. A version 1 snapshot (no sections) is read
    /// on one thread. Any other format version or layout is refused with a message
    /// saying so.
    pub fn restore(defs: Definitions, data: &[u8]) -> CoreResult<Self> {
        let rest = data
            .strip_prefix(SNAPSHOT_MAGIC.as_slice())
            .ok_or_else(|| bad_snapshot("not an aggregate snapshot (bad magic)"))?;
        let (ver, mut rest) = rest
            .split_first_chunk::<2>()
            .ok_or_else(|| bad_snapshot("truncated header"))?;
        let ver = u16::from_le_bytes(*ver);
        if ver != SNAPSHOT_VERSION && ver != 1 {
            return Err(bad_snapshot(format!(
                "snapshot format version {ver} cannot be read by this build, which reads \
                 versions 1 and {SNAPSHOT_VERSION}; rebuild the state by replaying the \
                 event log"
            )));
        }
        let layout: String = take(&mut rest)?;
        if layout != defs.layout {
            return Err(bad_snapshot(
                "the snapshot was taken with different object definitions (objects, keys, \
                 elements, kinds or types changed); rebuild by replaying the event log",
            ));
        }
        let store = Self::new(defs);
        let w: i64 = take(&mut rest)?;
        store.watermark.store(w, Ordering::Release);
        let n_obj: u64 = take(&mut rest)?;
        if n_obj != store.defs.objects.len() as u64 {
            return Err(bad_snapshot("object count does not match the definitions"));
        }
        if ver == 1 {
            store.restore_v1(rest)?;
            return Ok(store);
        }
        let sections = sections(rest, store.defs.objects.len())?;
        store.reserve_for(&sections);
        parallel::map(sections.len(), |i| store.load_section(&sections[i]))?;
        Ok(store)
    }

    /// Sizes each key group's shard tables for the keys the sections will bring (the
    /// largest object's count: objects of one group mostly share their keys), so the
    /// restore does not grow them step by step.
    fn reserve_for(&self, sections: &[Section<'_>]) {
        let mut per_object = vec![0u64; self.defs.objects.len()];
        for s in sections {
            per_object[s.object] += s.count;
        }
        let mut per_group = vec![0u64; self.groups.len()];
        for (o, n) in self.defs.objects.iter().zip(per_object) {
            per_group[o.group] = per_group[o.group].max(n);
        }
        for (shards, total) in self.groups.iter().zip(per_group) {
            let each = usize::try_from(total).unwrap_or(usize::MAX) / SHARDS;
            if each == 0 {
                continue;
            }
            // Keys spread uniformly: a shard gets `each` ± a few standard deviations.
            let slack = 4 * (each as f64).sqrt() as usize + 16;
            for shard in shards.shards.iter() {
                let mut shard = shard.lock();
                shard
                    .table
                    .reserve(each + slack, |(k, _)| self.hasher.hash_one(k.as_bytes()));
            }
        }
    }

    /// Decodes one section's entities into the store.
    fn load_section(&self, section: &Section<'_>) -> CoreResult<()> {
        let mut rest = section.body;
        for _ in 0..section.count {
            let (k, ent): (&str, Entity) = take_borrowed(&mut rest)?;
            self.load_entity(section.object, k, ent)?;
        }
        if !rest.is_empty() {
            return Err(bad_snapshot("a shard section is longer than its entities"));
        }
        Ok(())
    }

    /// Reads a version 1 snapshot's objects (no sections: one thread).
    fn restore_v1(&self, mut rest: &[u8]) -> CoreResult<()> {
        for oi in 0..self.defs.objects.len() {
            let n_shards: u64 = take(&mut rest)?;
            for _ in 0..n_shards {
                let n: u64 = take(&mut rest)?;
                for _ in 0..n {
                    let (k, ent): (&str, Entity) = take_borrowed(&mut rest)?;
                    self.load_entity(oi, k, ent)?;
                }
            }
        }
        if !rest.is_empty() {
            return Err(bad_snapshot("trailing bytes after the last entity"));
        }
        Ok(())
    }

    /// Puts one key's elements of object `oi` into its group's entity.
    fn load_entity(&self, oi: usize, k: &str, ent: Entity) -> CoreResult<()> {
        let o = &self.defs.objects[oi];
        let n_elems = o.elements.len();
        if ent.elems.len() != n_elems {
            return Err(bad_snapshot("an entity does not match its object"));
        }
        if ent.is_empty() {
            return Ok(());
        }
        let n_groups = self.defs.groups[o.group].n_elems;
        let hash = self.hasher.hash_one(k.as_bytes());
        let mut shard = self.groups[o.group].shard(hash).lock();
        let held = shard.get_or_insert(&self.hasher, hash, k, || Entity::new(n_groups));
        let states = &mut held.elems[o.offset..o.offset + n_elems];
        if !is_empty(states) {
            return Err(bad_snapshot(format!("key {k:?} appears twice")));
        }
        for (st, v) in states.iter_mut().zip(ent.elems) {
            *st = v;
        }
        Ok(())
    }
}

/// One shard's entities of one object in a version 2 snapshot.
struct Section<'a> {
    object: usize,
    count: u64,
    body: &'a [u8],
}

/// The sections of a version 2 snapshot after its object count, checked to tile the
/// rest of the bytes exactly.
fn sections(mut rest: &[u8], objects: usize) -> CoreResult<Vec<Section<'_>>> {
    let mut out = Vec::new();
    for object in 0..objects {
        let n: u64 = take(&mut rest)?;
        for _ in 0..n {
            let (head, after) = rest
                .split_first_chunk::<16>()
                .ok_or_else(|| bad_snapshot("truncated section header"))?;
            let count = u64::from_le_bytes(head[..8].try_into().unwrap_or_default());
            let len = u64::from_le_bytes(head[8..].try_into().unwrap_or_default());
            let len = usize::try_from(len)
                .ok()
                .filter(|&l| l <= after.len())
                .ok_or_else(|| bad_snapshot("truncated section"))?;
            // Every entity takes at least two bytes (key length, element count).
            if count > (len / 2) as u64 {
                return Err(bad_snapshot("a section's count does not fit its length"));
            }
            let (body, after) = after.split_at(len);
            out.push(Section {
                object,
                count,
                body,
            });
            rest = after;
        }
    }
    if !rest.is_empty() {
        return Err(bad_snapshot("trailing bytes after the last section"));
    }
    Ok(out)
}

fn bad_snapshot(why: impl Into<String>) -> CoreError {
    CoreError::invalid("snapshot", why.into())
}

fn parse_event(bytes: &[u8]) -> CoreResult<Value> {
    let v: Value = serde_json::from_slice(bytes)
        .map_err(|e| CoreError::invalid("event", format!("not a JSON document: {e}")))?;
    if !v.is_object() {
        return Err(CoreError::invalid(
            "event",
            "the event must be a JSON object",
        ));
    }
    Ok(v)
}

fn put<T: serde::Serialize + ?Sized>(out: &mut Vec<u8>, v: &T) -> CoreResult<()> {
    let buf = std::mem::take(out);
    *out = postcard::to_extend(v, buf)
        .map_err(|e| CoreError::invalid("snapshot", format!("cannot encode: {e}")))?;
    Ok(())
}

fn take<T: serde::de::DeserializeOwned>(rest: &mut &[u8]) -> CoreResult<T> {
    take_borrowed(rest)
}

/// Like [`take`], for values that borrow from the bytes (keys as `&str`).
fn take_borrowed<'a, T: serde::Deserialize<'a>>(rest: &mut &'a [u8]) -> CoreResult<T> {
    let (v, r) = postcard::take_from_bytes(rest)
        .map_err(|e| CoreError::invalid("snapshot", format!("corrupt or truncated: {e}")))?;
    *rest = r;
    Ok(v)
}

/// Whether none of these elements holds anything.
fn is_empty(states: &[ElemState]) -> bool {
    states.iter().all(|e| matches!(e, ElemState::Empty))
}

/// The elements of one object for one key, as the snapshot writes them (the same
/// encoding as [`Entity`]).
#[derive(serde::Serialize)]
struct EntityRef<'a> {
    elems: &'a [ElemState],
}

/// Appends this event's update and current value of every element of `o` to the flat
/// arrays of `s` (nothing to apply when the event lacks the key).
fn prepare_object(
    o: &Object,
    event: &EventView<'_>,
    has_key: bool,
    s: &mut Scratch,
) -> CoreResult<()> {
    if !has_key {
        s.updates.extend(o.elements.iter().map(|_| None));
        s.current.extend(o.elements.iter().map(|_| None));
        return Ok(());
    }
    for el in &o.elements {
        let passes = match &el.filter {
            Some(f) => match s.filters[el.filter_id as usize] {
                0 => {
                    let passes = f.matches_view(event)?;
                    s.filters[el.filter_id as usize] = 1 + u8::from(passes);
                    passes
                }
                known => known == 2,
            },
            None => true,
        };
        let (update, cur) = match (&el.attr, passes) {
            (None, true) => (Some(Scalar::Null), None),
            (None, false) => (None, None),
            (Some(path), true) => {
                let v = path
                    .at(event)
                    .map(|v| convert(el.ty, v, path))
                    .transpose()?;
                let cur = if el.needs_current { v.clone() } else { None };
                (v, cur)
            }
            // Outside the filter, a value of the wrong type is not this element's
            // business: it only serves `except: value` and `search: current`.
            (Some(path), false) if el.needs_current => (
                None,
                path.at(event).and_then(|v| convert(el.ty, v, path).ok()),
            ),
            (Some(_), false) => (None, None),
        };
        s.updates.push(update);
        s.current.push(cur);
    }
    Ok(())
}

/// Appends the normalised key of `o` to `keys`; its range, or `None` (and nothing
/// appended) when the event lacks a part of it.
fn build_key(
    o: &Object,
    event: &EventView<'_>,
    keys: &mut String,
) -> CoreResult<Option<(u32, u32)>> {
    let start = keys.len();
    for (i, (path, kind)) in o.key.iter().enumerate() {
        let raw = match path.at(event) {
            Some(Val::Str(s)) => std::borrow::Cow::Borrowed(&**s),
            Some(v @ (Val::Int(_) | Val::UInt(_) | Val::Float(_) | Val::Bool(_))) => {
                std::borrow::Cow::Owned(v.scalar_text().unwrap_or_default())
            }
            Some(_) => {
                return Err(CoreError::invalid(
                    path.as_str(),
                    "a key attribute must be a string or a number",
                ));
            }
            None => {
                keys.truncate(start);
                return Ok(None);
            }
        };
        check_len(&raw, path.as_str())?;
        if i > 0 {
            keys.push(KEY_SEP);
        }
        let part_start = keys.len();
        normalize_key_into(*kind, &raw, keys).map_err(|e| match e {
            CoreError::InvalidArgument { reason, .. } => CoreError::invalid(path.as_str(), reason),
            other => other,
        })?;
        if keys.len() == part_start {
            keys.truncate(start);
            return Ok(None);
        }
    }
    Ok(Some((start as u32, keys.len() as u32)))
}

/// A parameter over one object: `states` are the object's elements for this event's
/// key (`None`: the key has nothing yet), `current` this event's values of them.
fn eval_stateful(
    body: &ParamBody,
    obj: &Object,
    states: Option<&[ElemState]>,
    t: Millis,
    current: &[Option<Scalar>],
) -> Scalar {
    static EMPTY: ElemState = ElemState::Empty;
    let state = |elem: usize| states.and_then(|e| e.get(elem)).unwrap_or(&EMPTY);
    let el = |elem: usize| -> &Element { &obj.elements[elem] };
    let except_value = |elem: usize, except: ExceptSpec| match except {
        ExceptSpec::Value => current.get(elem).and_then(Option::as_ref),
        _ => None,
    };
    match body {
        ParamBody::Aggregate {
            elem,
            agg,
            p,
            window,
            except,
            ..
        } => query::aggregate(
            state(*elem),
            el(*elem),
            t,
            *window,
            *agg,
            *p,
            except_value(*elem, *except),
        ),
        ParamBody::Interval {
            elem,
            unit_ms,
            which,
            search,
            window,
            except,
            ..
        } => query::interval(
            state(*elem),
            el(*elem),
            t,
            *window,
            *which,
            search,
            *unit_ms,
            current.get(*elem).and_then(Option::as_ref),
            except_value(*elem, *except),
        ),
        ParamBody::Previous {
            elem, nth, window, ..
        } => query::previous(state(*elem), el(*elem), t, *window, *nth),
        _ => Scalar::Null,
    }
}

/// An operand as text, borrowed from the event or the results where it can be.
fn operand_text<'a>(
    o: &'a Operand,
    event: &'a EventView<'_>,
    done: &'a [Scalar],
) -> Option<std::borrow::Cow<'a, str>> {
    use std::borrow::Cow;
    match o {
        Operand::Attr(p) => match p.at(event)? {
            Val::Str(s) => Some(Cow::Borrowed(&**s)),
            other => as_text(&val_scalar(other)).map(Cow::Owned),
        },
        Operand::Param(i) => match done.get(*i)? {
            Scalar::Str(s) => Some(Cow::Borrowed(&**s)),
            other => as_text(other).map(Cow::Owned),
        },
        Operand::Value(v) => as_text(&json_scalar(v)).map(Cow::Owned),
    }
}

fn val_scalar(v: &Val<'_>) -> Scalar {
    match v {
        Val::Bool(b) => Scalar::Bool(*b),
        Val::Int(i) => Scalar::Int(*i),
        Val::UInt(u) => Scalar::Num(*u as f64),
        Val::Float(x) => Scalar::Num(*x),
        Val::Str(s) => Scalar::Str((**s).into()),
        Val::Json(_) | Val::Raw(_) => Scalar::Null,
    }
}

fn json_scalar(v: &Value) -> Scalar {
    match v {
        Value::Bool(b) => Scalar::Bool(*b),
        Value::Number(n) => n
            .as_i64()
            .map_or_else(|| n.as_f64().map_or(Scalar::Null, Scalar::Num), Scalar::Int),
        Value::String(s) => Scalar::Str(s.as_str().into()),
        _ => Scalar::Null,
    }
}

fn as_text(s: &Scalar) -> Option<String> {
    match s {
        Scalar::Str(s) => Some(s.to_string()),
        Scalar::Int(i) => Some(i.to_string()),
        Scalar::Num(x) => Some(x.to_string()),
        Scalar::Bool(b) => Some(b.to_string()),
        Scalar::Null => None,
    }
}

fn as_number(s: &Scalar) -> Option<f64> {
    match s {
        Scalar::Str(s) => s.trim().parse().ok(),
        other => other.as_f64(),
    }
}

/// An operand as a number, without building a [`Scalar`] for it.
fn operand_number(o: &Operand, event: &EventView<'_>, done: &[Scalar]) -> Option<f64> {
    match o {
        Operand::Attr(p) => match p.at(event)? {
            Val::Str(s) => s.trim().parse().ok(),
            other => other.as_f64(),
        },
        Operand::Param(i) => as_number(done.get(*i)?),
        Operand::Value(v) => as_number(&json_scalar(v)),
    }
}

fn eval_transform(body: &ParamBody, event: &EventView<'_>, done: &[Scalar]) -> Scalar {
    let num = |o: &Operand| operand_number(o, event, done);
    let finite = |x: f64| {
        if x.is_finite() {
            Scalar::Num(x)
        } else {
            Scalar::Null
        }
    };
    match body {
        ParamBody::CompareFl(a, b) => {
            match (operand_text(a, event, done), operand_text(b, event, done)) {
                (Some(a), Some(b)) => Scalar::Num(query::compare_fl(&a, &b)),
                _ => Scalar::Null,
            }
        }
        ParamBody::Ratio(a, b) => match (num(a), num(b)) {
            (Some(a), Some(b)) if b != 0.0 => finite(a / b),
            _ => Scalar::Null,
        },
        ParamBody::Multiple(a, b) => match (num(a), num(b)) {
            (Some(a), Some(b)) => finite(a * b),
            _ => Scalar::Null,
        },
        ParamBody::Sum(ops) => ops
            .iter()
            .try_fold(-0.0, |acc, o| num(o).map(|x| acc + x))
            .map_or(Scalar::Null, finite),
        ParamBody::Substring { of, start, len } => operand_text(of, event, done)
            .map_or(Scalar::Null, |s| {
                Scalar::Str(query::substring(&s, *start, *len).into())
            }),
        _ => Scalar::Null,
    }
}
