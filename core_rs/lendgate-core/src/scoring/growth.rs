//! Containers that grow without stopping the world.
//!
//! The match index holds millions of records and keys. A `Vec` that doubles at that
//! size copies gigabytes, and a hash table that grows rehashes every entry — inside
//! one check, which then takes seconds (measured: the first check after restoring 10M
//! events took 2–4 s, all of it a `Vec<Record>` doubling into freshly faulted pages).
//! [`Segmented`] never moves what it holds; [`Sharded`] splits a map into
//! [`SHARDS`] tables, so a table that grows rehashes a sixty-fourth of the entries.

use std::collections::VecDeque;
use std::hash::{BuildHasher, Hash};
use std::ops::{Index, IndexMut};

/// Elements per segment of a [`Segmented`] vector.
pub const SEGMENT: usize = 1 << 16;
/// Tables of a [`Sharded`] map.
pub const SHARDS: usize = 64;
/// The shard of a key is chosen by this fixed hash, so the same keys fall into the same
/// shards in every process: a snapshot taken shard by shard is the same bytes for the
/// same state, also after a restore. (The tables themselves keep random seeds.)
const SHARD_SEED: u64 = 0x6c65_6e64_6761_7465;

/// A vector kept in segments of [`SEGMENT`] elements: `push` never moves the elements
/// already held, so it costs the same at ten million as at ten. Positions are absolute:
/// whole segments can leave the front ([`Self::pop_front`]) and the positions after
/// them stay what they were.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segmented<T> {
    segments: VecDeque<Vec<T>>,
    /// Position of the first element held (a multiple of [`SEGMENT`]).
    base: usize,
    len: usize,
}

impl<T> Default for Segmented<T> {
    fn default() -> Self {
        Self {
            segments: VecDeque::new(),
            base: 0,
            len: 0,
        }
    }
}

impl<T> Segmented<T> {
    /// Number of elements held (from [`Self::base`] to [`Self::end`]).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Position of the first element held.
    pub fn base(&self) -> usize {
        self.base
    }

    /// Position the next `push` takes.
    pub fn end(&self) -> usize {
        self.base + self.len
    }

    /// Appends `value` at position [`Self::end`].
    pub fn push(&mut self, value: T) {
        match self.segments.back_mut() {
            Some(last) if last.len() < SEGMENT => last.push(value),
            _ => {
                let mut segment = Vec::with_capacity(SEGMENT);
                segment.push(value);
                self.segments.push_back(segment);
            }
        }
        self.len += 1;
    }

    /// The element at `pos`, if held.
    pub fn get(&self, pos: usize) -> Option<&T> {
        let at = pos.checked_sub(self.base)?;
        self.segments.get(at / SEGMENT)?.get(at % SEGMENT)
    }

    /// The elements in order.
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.segments.iter().flatten()
    }

    /// The segments in order: each holds [`SEGMENT`] elements but the last.
    pub fn segments(&self) -> impl ExactSizeIterator<Item = &[T]> {
        self.segments.iter().map(Vec::as_slice)
    }

    /// Number of elements in segment `i` (counted from the front).
    pub fn segment_len(&self, i: usize) -> usize {
        self.segments.get(i).map_or(0, Vec::len)
    }

    /// Drops the first segment if it is full (never the one `push` fills): the
    /// positions after it stay the same. Returns whether one was dropped.
    pub fn pop_front(&mut self) -> bool {
        if !self.segments.front().is_some_and(|s| s.len() == SEGMENT) {
            return false;
        }
        self.segments.pop_front();
        self.base += SEGMENT;
        self.len -= SEGMENT;
        true
    }

    /// Takes every element out in order, leaving the vector empty from position 0;
    /// each segment is freed as soon as it has been read.
    pub fn drain_all(&mut self) -> impl Iterator<Item = T> {
        self.len = 0;
        self.base = 0;
        std::mem::take(&mut self.segments).into_iter().flatten()
    }

    /// A vector of `parts` in order from position `base` (rounded down to a multiple
    /// of [`SEGMENT`]; parts of any lengths: full segments are kept as they are,
    /// others are regrouped).
    pub fn from_parts(base: usize, parts: Vec<Vec<T>>) -> Self {
        let mut out = Self {
            base: base - base % SEGMENT,
            ..Self::default()
        };
        for mut part in parts {
            let tail_has_room = out.segments.back().is_some_and(|s| s.len() < SEGMENT);
            if part.len() == SEGMENT && !tail_has_room {
                out.len += SEGMENT;
                out.segments.push_back(part);
            } else if !tail_has_room && part.len() < SEGMENT && part.capacity() >= SEGMENT {
                out.len += part.len();
                out.segments.push_back(part);
            } else {
                part.drain(..).for_each(|v| out.push(v));
            }
        }
        out
    }
}

impl<T> Index<usize> for Segmented<T> {
    type Output = T;

    fn index(&self, pos: usize) -> &T {
        let at = pos - self.base;
        &self.segments[at / SEGMENT][at % SEGMENT]
    }
}

impl<T> IndexMut<usize> for Segmented<T> {
    fn index_mut(&mut self, pos: usize) -> &mut T {
        let at = pos - self.base;
        &mut self.segments[at / SEGMENT][at % SEGMENT]
    }
}

/// A map split into [`SHARDS`] tables by a fixed hash of the key. Iteration goes
/// shard by shard, each in its table's own order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sharded<M> {
    shards: Box<[M]>,
}

impl<M: Default> Default for Sharded<M> {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| M::default()).collect(),
        }
    }
}

impl<M> Sharded<M> {
    /// Shards made by `make` (e.g. with a capacity each).
    pub fn with(make: impl FnMut(usize) -> M) -> Self {
        Self {
            shards: (0..SHARDS).map(make).collect(),
        }
    }

    /// The table `key` belongs in.
    pub fn shard<K: Hash + ?Sized>(&self, key: &K) -> &M {
        &self.shards[shard_of(key)]
    }

    /// The table `key` belongs in, to change.
    pub fn shard_mut<K: Hash + ?Sized>(&mut self, key: &K) -> &mut M {
        &mut self.shards[shard_of(key)]
    }

    /// Every table, in shard order.
    pub fn shards(&self) -> &[M] {
        &self.shards
    }

    /// Every entry, shard by shard.
    pub fn iter<'a>(&'a self) -> impl Iterator<Item = <&'a M as IntoIterator>::Item>
    where
        &'a M: IntoIterator,
    {
        self.shards.iter().flatten()
    }

    /// Every table, in shard order, to change.
    pub fn shards_mut(&mut self) -> &mut [M] {
        &mut self.shards
    }
}

/// The shard index of `key`.
pub fn shard_of<K: Hash + ?Sized>(key: &K) -> usize {
    let hash = foldhash::fast::FixedState::with_seed(SHARD_SEED).hash_one(key);
    // The high bits: the tables inside use the low ones.
    (hash >> 58) as usize % SHARDS
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn a_segmented_vector_holds_its_elements_in_place_across_segments() {
        let mut v = Segmented::default();
        for i in 0..(2 * SEGMENT + 5) {
            v.push(i);
        }
        let first = &v[0] as *const usize;
        v.push(7);
        assert_eq!(
            first, &v[0] as *const usize,
            "a push never moves an element"
        );
        assert_eq!(v.len(), 2 * SEGMENT + 6);
        assert_eq!(v[SEGMENT], SEGMENT);
        assert_eq!(v[2 * SEGMENT + 5], 7);
        v[SEGMENT + 1] = 0;
        assert_eq!(v.iter().filter(|&&x| x == 0).count(), 2);
        assert_eq!(
            v.segments().map(<[usize]>::len).collect::<Vec<_>>(),
            [SEGMENT, SEGMENT, 6]
        );
        assert!(v.pop_front(), "a full first segment leaves");
        assert_eq!(
            (v.base(), v.len(), v.end()),
            (SEGMENT, SEGMENT + 6, 2 * SEGMENT + 6)
        );
        assert_eq!(v[SEGMENT], SEGMENT, "positions stay");
        assert_eq!(v.get(SEGMENT - 1), None);
        assert_eq!(v.get(2 * SEGMENT + 5), Some(&7));
        assert_eq!(v.get(2 * SEGMENT + 6), None);
        assert!(
            v.pop_front() && !v.pop_front(),
            "never the segment being filled"
        );
        let all: Vec<usize> = v.drain_all().collect();
        assert_eq!(all.len(), 6);
        assert!(v.is_empty() && v.segments().len() == 0 && v.end() == 0);
    }

    #[test]
    fn parts_of_any_length_regroup_into_full_segments() {
        let parts = vec![
            (0..SEGMENT).collect::<Vec<_>>(),
            (SEGMENT..SEGMENT + 3).collect(),
            (SEGMENT + 3..2 * SEGMENT + 10).collect(),
        ];
        let v = Segmented::from_parts(3 * SEGMENT, parts);
        assert_eq!(v.len(), 2 * SEGMENT + 10);
        assert_eq!(v[3 * SEGMENT + 1], 1);
        assert!(v.iter().copied().eq(0..2 * SEGMENT + 10));
        assert_eq!(
            v.segments().map(<[usize]>::len).collect::<Vec<_>>(),
            [SEGMENT, SEGMENT, 10]
        );
    }

    #[test]
    fn a_key_always_falls_into_the_same_shard_and_keys_spread() {
        let mut map: Sharded<HashMap<String, u32>> = Sharded::default();
        for i in 0..10_000u32 {
            map.shard_mut(&format!("k{i}")).insert(format!("k{i}"), i);
        }
        assert_eq!(map.shard("k42").get("k42"), Some(&42));
        assert_eq!(shard_of("k42"), shard_of(&"k42".to_string()));
        let sizes: Vec<usize> = map.shards().iter().map(HashMap::len).collect();
        assert!(sizes.iter().all(|&n| n > 80 && n < 240), "{sizes:?}");
    }
}
