//! Per-key state of the elements, its update by one event and its pruning.
//!
//! Arrays are kept sorted by event time, so an out-of-order event is inserted where its
//! time puts it (after records with the same time: ties keep arrival order).
//! Pruning never removes a record that a query at a time `>= cut` could see, where
//! `cut = watermark - allowed lateness`: that is what makes depth limits exact for
//! every event the store accepts (see `docs/AGGREGATES.md`).

use super::compile::Element;
use super::spec::ElementKind;
use super::value::{Millis, Scalar};
use serde::{Deserialize, Serialize};

/// One (time, value) record of an array element.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Rec {
    pub(crate) t: Millis,
    pub(crate) v: Scalar,
}

/// One counter of a `date_and_counter` element: bucket index (time / width) and count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Bucket {
    pub(crate) b: i32,
    pub(crate) n: u32,
}

/// The state of one element for one key.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub(crate) enum ElemState {
    /// Never updated, or expired.
    #[default]
    Empty,
    /// A single value: `updated` is the latest event time that touched it, `at` the
    /// time of the value itself (for first/last).
    Single {
        updated: Millis,
        at: Millis,
        v: Scalar,
    },
    /// Records sorted by time.
    Records(Vec<Rec>),
    /// Buckets sorted by index.
    Buckets(Vec<Bucket>),
}

/// All elements of one object for one key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Entity {
    pub(crate) elems: Box<[ElemState]>,
}

impl Entity {
    pub(crate) fn new(n: usize) -> Self {
        Self {
            elems: (0..n).map(|_| ElemState::Empty).collect(),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.elems.iter().all(|e| matches!(e, ElemState::Empty))
    }
}

impl ElemState {
    /// Applies one event at time `t` carrying `v` (`Scalar::Null` for counters), then
    /// prunes what no accepted query can see any more.
    pub(crate) fn update(&mut self, e: &Element, t: Millis, v: Scalar, cut: Millis) {
        use ElementKind as K;
        if let Self::Single { updated, .. } = self {
            if *updated <= t - e.horizon_ms {
                *self = Self::Empty;
            }
        }
        match e.kind {
            K::First | K::Last | K::Sum | K::Min | K::Max | K::Count => {
                self.update_single(e.kind, t, v)
            }
            K::TimeAndValue | K::Unique | K::TimeAndLastUniqueValue => {
                if !matches!(self, Self::Records(_)) {
                    *self = Self::Records(Vec::new());
                }
                if let Self::Records(recs) = self {
                    insert_record(recs, e, t, v);
                }
            }
            K::DateAndCounter => {
                if !matches!(self, Self::Buckets(_)) {
                    *self = Self::Buckets(Vec::new());
                }
                if let Self::Buckets(bs) = self {
                    let b = bucket_index(t, e.bucket_ms);
                    match bs.binary_search_by_key(&b, |x| x.b) {
                        Ok(i) => bs[i].n = bs[i].n.saturating_add(1),
                        Err(i) => bs.insert(i, Bucket { b, n: 1 }),
                    }
                }
            }
        }
        self.prune_at(e, cut, true);
    }

    fn update_single(&mut self, kind: ElementKind, t: Millis, v: Scalar) {
        use ElementKind as K;
        let Self::Single {
            updated,
            at,
            v: old,
        } = self
        else {
            let v = match kind {
                K::Count => Scalar::Int(1),
                _ => v,
            };
            *self = Self::Single {
                updated: t,
                at: t,
                v,
            };
            return;
        };
        *updated = (*updated).max(t);
        match kind {
            K::First if t < *at => (*at, *old) = (t, v),
            K::Last if t >= *at => (*at, *old) = (t, v),
            K::Count => {
                if let Scalar::Int(n) = old {
                    *n = n.saturating_add(1);
                }
            }
            K::Sum => {
                *old = match (&*old, &v) {
                    (Scalar::Int(a), Scalar::Int(b)) => Scalar::Int(a.saturating_add(*b)),
                    (a, b) => Scalar::Num(a.as_f64().unwrap_or(0.0) + b.as_f64().unwrap_or(0.0)),
                }
            }
            K::Min | K::Max => {
                if let (Some(a), Some(b)) = (old.as_f64(), v.as_f64()) {
                    if (kind == K::Min && b < a) || (kind == K::Max && b > a) {
                        *old = v;
                    }
                }
            }
            _ => {}
        }
    }

    /// Drops what no query at a time `>= cut` can see: records older than the
    /// element's horizon before `cut`, and records before `cut` beyond the newest
    /// `max_records` of them. Single values expire after `horizon` without updates.
    ///
    /// Expiry passes (`expire_step`) call this between events. For `unique` and
    /// `time_and_last_unique_value` they drop only by the horizon: the depth in
    /// records of those is applied when the element changes (see [`Self::update`] and
    /// "Late events and distinct values" in `docs/AGGREGATES.md`), so that no answer
    /// depends on when expiry ran.
    pub(crate) fn prune(&mut self, e: &Element, cut: Millis) {
        self.prune_at(e, cut, false);
    }

    /// [`Self::prune`]; `update`: called by an update of this element, which applies
    /// the depth of distinct-value arrays, exactly (no batching).
    fn prune_at(&mut self, e: &Element, cut: Millis, update: bool) {
        let dedup = e.kind != ElementKind::TimeAndValue && e.is_records();
        let too_old = cut - e.horizon_ms;
        let n = e.max_records as usize;
        // A hard bound even inside the lateness window, so a burst cannot grow an
        // array without limit (beyond it, the oldest records go first).
        let hard = n.saturating_mul(2).max(n + 64);
        match self {
            Self::Empty => {}
            Self::Single { updated, .. } => {
                if *updated <= too_old {
                    *self = Self::Empty;
                }
            }
            // The common case costs two comparisons: within the depth in records and
            // nothing at the front older than the horizon.
            Self::Records(recs)
                if recs.len() <= n && recs.first().is_some_and(|r| r.t > too_old) => {}
            Self::Buckets(bs)
                if bs.len() <= n
                    && bs
                        .first()
                        .is_some_and(|x| bucket_start(x.b, e.bucket_ms) > too_old) => {}
            Self::Records(recs) if dedup => {
                let old = recs.partition_point(|r| r.t <= too_old);
                // Beyond the depth (records before `cut` beyond the newest `n` of
                // them, or beyond the hard bound): gone for good, now, so that a
                // later move of a value's record cannot bring one back.
                let depth = if update {
                    let before_cut = recs.partition_point(|r| r.t < cut);
                    before_cut
                        .saturating_sub(n)
                        .max(recs.len().saturating_sub(hard))
                } else {
                    0
                };
                if depth > 0 || worth_draining(old, recs.len()) {
                    recs.drain(..old.max(depth));
                }
                if recs.is_empty() {
                    *self = Self::Empty;
                }
            }
            Self::Records(recs) => {
                let old = recs.partition_point(|r| r.t <= too_old);
                let before_cut = recs.partition_point(|r| r.t < cut);
                let drop = old
                    .max(before_cut.saturating_sub(n))
                    .max(recs.len().saturating_sub(hard));
                if worth_draining(drop, recs.len()) {
                    recs.drain(..drop);
                }
                if recs.is_empty() {
                    *self = Self::Empty;
                }
            }
            Self::Buckets(bs) => {
                let w = e.bucket_ms;
                let old = bs.partition_point(|x| bucket_start(x.b, w) <= too_old);
                let before_cut = bs.partition_point(|x| bucket_start(x.b, w) < cut);
                let drop = old
                    .max(before_cut.saturating_sub(n))
                    .max(bs.len().saturating_sub(hard));
                if worth_draining(drop, bs.len()) {
                    bs.drain(..drop);
                }
                if bs.is_empty() {
                    *self = Self::Empty;
                }
            }
        }
    }
}

/// Whether dropping `drop` of `len` front records is worth the memmove now. Queries
/// filter by time and depth themselves, so stale records may linger a little: a
/// sliding window drains in batches of an eighth of the array instead of one record
/// (and one memmove of the whole array) per event.
fn worth_draining(drop: usize, len: usize) -> bool {
    drop > 0 && (drop == len || drop * 8 >= len.max(8))
}

fn insert_record(recs: &mut Vec<Rec>, e: &Element, t: Millis, v: Scalar) {
    let keep_first = e.kind == ElementKind::Unique;
    if e.kind != ElementKind::TimeAndValue {
        if let Some(i) = recs.iter().position(|r| r.v == v) {
            let moves = if keep_first {
                // A record no query at `t` can see any more (older than the horizon, or
                // beyond the depth in records) counts as gone: the value seen again
                // starts a new record. Whether pruning has already removed it must not
                // change any answer.
                t < recs[i].t || !live_at(recs, i, e, t)
            } else {
                t > recs[i].t
            };
            if !moves {
                return;
            }
            recs.remove(i);
        }
    }
    let at = recs.partition_point(|r| r.t <= t);
    recs.insert(at, Rec { t, v });
}

/// Whether record `i` is still visible to a query at time `t` (within the element's
/// horizon and among the newest `max_records` records at or before `t`).
fn live_at(recs: &[Rec], i: usize, e: &Element, t: Millis) -> bool {
    let upto_t = recs.partition_point(|r| r.t <= t);
    recs[i].t > t - e.horizon_ms && i >= upto_t.saturating_sub(e.max_records as usize)
}

/// Index of the bucket of width `w` that holds time `t` (UTC days or hours).
pub(crate) fn bucket_index(t: Millis, w: Millis) -> i32 {
    // Event times are bounded to years 2000..2100, so hour indexes fit in i32.
    i32::try_from(t.div_euclid(w.max(1))).unwrap_or(i32::MAX)
}

/// Start time of bucket `b` of width `w`.
pub(crate) fn bucket_start(b: i32, w: Millis) -> Millis {
    i64::from(b) * w
}
