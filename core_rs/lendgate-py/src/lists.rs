//! Bindings for `lendgate_core::lists`: one partner's lists, shared with rule sets.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use lendgate_core::lists::{
    self, Entry, EntryKind, ListRegistry, ListType, NewEntry, StagedWrite, WriteMode, WriteStamp,
};
use pyo3::prelude::*;

use crate::buffer::ReadOnlyBytes;
use crate::error::PyCoreError;

/// (added, replaced, [(index, reason)...]) of a write.
type WriteResult = (usize, usize, Vec<(usize, String)>);

/// An entry crossing the boundary: (value, expire_ms or None, comment, create_ms, author).
type PyEntry = (String, Option<i64>, String, i64, String);

/// The lists of one partner. Lookups take no lock; every write is atomic.
#[pyclass(frozen, name = "ListRegistry", module = "lendgate._core")]
pub struct PyListRegistry {
    pub(crate) inner: Arc<ListRegistry>,
}

/// A row of a write as Python gives it: (value, expire_ms or None, comment).
type PyNewEntry = (String, Option<i64>, String);

/// A list write prepared by `ListRegistry.stage` or `stage_import`: store its change
/// (`take_change`), then publish it with `ListRegistry.commit`.
#[pyclass(frozen, name = "StagedListWrite", module = "lendgate._core")]
pub struct PyStagedWrite {
    list_id: String,
    received: usize,
    rejected: Vec<(usize, String)>,
    inner: Mutex<Option<StagedWrite>>,
}

impl PyStagedWrite {
    fn new(list_id: &str, staged: StagedWrite) -> Self {
        Self {
            list_id: list_id.to_string(),
            received: staged.received,
            rejected: staged.outcome.rejected.clone(),
            inner: Mutex::new(Some(staged)),
        }
    }

    fn state(&self) -> MutexGuard<'_, Option<StagedWrite>> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[pymethods]
impl PyStagedWrite {
    /// The stored entries to add and to remove (the store's text form, each list
    /// sorted); taken once, later calls return empty lists.
    fn take_change(&self) -> (Vec<String>, Vec<String>) {
        self.state()
            .as_mut()
            .map(StagedWrite::take_change)
            .unwrap_or_default()
    }

    /// `(index, reason)` of the rejected entries (indexes into the write's input).
    #[getter]
    fn rejected(&self) -> Vec<(usize, String)> {
        self.rejected.clone()
    }

    /// Number of entries given, valid or not, repeated or not.
    #[getter]
    fn received(&self) -> usize {
        self.received
    }
}

fn stamp(author: &str, now_ms: i64, default_expire: Option<i64>) -> WriteStamp<'_> {
    WriteStamp {
        author,
        now_ms,
        default_expire,
    }
}

fn mode(replace: bool) -> WriteMode {
    if replace {
        WriteMode::Replace
    } else {
        WriteMode::Merge
    }
}

#[pymethods]
impl PyListRegistry {
    #[new]
    fn new() -> Self {
        Self {
            inner: Arc::new(ListRegistry::new()),
        }
    }

    /// Creates an empty list; `entry_kind` and `list_type` are proto names without prefix.
    fn create(&self, list_id: &str, entry_kind: &str, list_type: &str) -> Result<(), PyCoreError> {
        let kind: EntryKind = entry_kind.parse()?;
        let list_type: ListType = list_type.parse()?;
        self.inner.create(list_id, kind, list_type)?;
        Ok(())
    }

    /// Deletes a list and its entries.
    fn delete(&self, list_id: &str) -> Result<(), PyCoreError> {
        Ok(self.inner.delete(list_id)?)
    }

    /// The ids of all lists, sorted.
    fn ids(&self) -> Vec<String> {
        self.inner.ids()
    }

    /// Normalises `value` as a value of `entry_kind`.
    #[staticmethod]
    fn normalize(entry_kind: &str, value: &str) -> Result<String, PyCoreError> {
        let kind: EntryKind = entry_kind.parse()?;
        Ok(kind.normalize(value)?)
    }

    /// Normalises every value of a batch as values of `entry_kind` (GIL released):
    /// the normal forms (`None` where a value is invalid) and `(index, reason)` of the
    /// invalid ones. One call for a bulk import instead of one per value.
    #[staticmethod]
    #[allow(clippy::type_complexity)]
    fn normalize_many(
        py: Python<'_>,
        entry_kind: &str,
        values: Vec<String>,
    ) -> Result<(Vec<Option<String>>, Vec<(usize, String)>), PyCoreError> {
        let kind: EntryKind = entry_kind.parse()?;
        Ok(py.detach(|| {
            let mut rejected = Vec::new();
            let keys = values
                .iter()
                .enumerate()
                .map(|(i, v)| match kind.normalize(v) {
                    Ok(k) => Some(k),
                    Err(e) => {
                        // The reason alone, as `normalize` raises it (field, reason).
                        let why = match e {
                            lendgate_core::CoreError::InvalidArgument { reason, .. } => reason,
                            other => other.to_string(),
                        };
                        rejected.push((i, why));
                        None
                    }
                })
                .collect();
            (keys, rejected)
        }))
    }

    /// Adds (or with `replace`, makes the whole content) `entries`, atomically.
    #[pyo3(signature = (list_id, entries, replace=false))]
    fn write(
        &self,
        py: Python<'_>,
        list_id: &str,
        entries: Vec<PyEntry>,
        replace: bool,
    ) -> Result<WriteResult, PyCoreError> {
        let list = self.inner.require(list_id)?;
        let entries: Vec<Entry> = entries
            .into_iter()
            .map(|(value, expire_time, comment, create_time, author)| Entry {
                value,
                expire_time,
                comment,
                create_time,
                author,
            })
            .collect();
        let out = py.detach(|| list.write(entries, mode(replace)));
        Ok((out.added, out.replaced, out.rejected))
    }

    /// Prepares a write of `(value, expire_ms, comment)` rows stamped with `author` and
    /// `now_ms` (entries without expiry get `default_expire_ms`), GIL released. Nothing
    /// changes until `commit`.
    #[pyo3(signature = (list_id, rows, author, now_ms, default_expire_ms=None, replace=false))]
    #[allow(clippy::too_many_arguments)]
    fn stage(
        &self,
        py: Python<'_>,
        list_id: &str,
        rows: Vec<PyNewEntry>,
        author: &str,
        now_ms: i64,
        default_expire_ms: Option<i64>,
        replace: bool,
    ) -> Result<PyStagedWrite, PyCoreError> {
        let list = self.inner.require(list_id)?;
        let entries = rows
            .into_iter()
            .map(|(value, expire_time, comment)| NewEntry {
                value,
                expire_time,
                comment,
            })
            .collect();
        let staged = py.detach(|| {
            list.stage(
                entries,
                mode(replace),
                stamp(author, now_ms, default_expire_ms),
            )
        })?;
        Ok(PyStagedWrite::new(list_id, staged))
    }

    /// Like `stage`, from the serialized `ImportListEntriesRequest` messages of an
    /// import stream (decoded here, GIL released). `CoreInvalidArgument` for a message
    /// that does not decode, carries too many entries or an invalid expiry.
    #[pyo3(signature = (list_id, chunks, author, now_ms, default_expire_ms=None, replace=false))]
    #[allow(clippy::too_many_arguments)]
    fn stage_import(
        &self,
        py: Python<'_>,
        list_id: &str,
        chunks: Vec<Bound<'_, PyAny>>,
        author: &str,
        now_ms: i64,
        default_expire_ms: Option<i64>,
        replace: bool,
    ) -> PyResult<PyStagedWrite> {
        let list = self.inner.require(list_id).map_err(PyCoreError)?;
        let buffers = chunks
            .iter()
            .map(|c| ReadOnlyBytes::new(c, "chunks"))
            .collect::<PyResult<Vec<_>>>()?;
        let staged = py.detach(|| -> Result<StagedWrite, PyCoreError> {
            let slices: Vec<&[u8]> = buffers.iter().map(ReadOnlyBytes::as_slice).collect();
            let pieces = lists::decode_import_chunks(&slices)?;
            Ok(list.stage_pieces(
                pieces,
                mode(replace),
                stamp(author, now_ms, default_expire_ms),
            )?)
        })?;
        Ok(PyStagedWrite::new(list_id, staged))
    }

    /// Publishes a staged write (once its change is stored): `(added, replaced)`.
    /// `CoreInvalidArgument` if it was committed before.
    fn commit(
        &self,
        py: Python<'_>,
        staged: &PyStagedWrite,
    ) -> Result<(usize, usize), PyCoreError> {
        let list = self.inner.require(&staged.list_id)?;
        let Some(inner) = staged.state().take() else {
            return Err(lendgate_core::CoreError::invalid("staged", "already committed").into());
        };
        let out = py.detach(|| list.commit(inner))?;
        Ok((out.added, out.replaced))
    }

    /// Adds entries given in the store's text form (see `encode_entry`), GIL released:
    /// the load of a stored list. Returns how many were added or replaced.
    fn load_stored(
        &self,
        py: Python<'_>,
        list_id: &str,
        texts: Vec<String>,
    ) -> Result<usize, PyCoreError> {
        let list = self.inner.require(list_id)?;
        py.detach(|| -> Result<usize, PyCoreError> {
            let entries = texts
                .iter()
                .map(|t| lists::decode_entry(t))
                .collect::<Result<Vec<_>, _>>()?;
            let out = list.write(entries, WriteMode::Merge);
            Ok(out.added + out.replaced)
        })
    }

    /// An entry `(value, expire_ms or None, comment, create_ms, author)` in the
    /// store's text form, one string, so that a change of expiry or comment is a
    /// removal plus an addition of a list version.
    #[staticmethod]
    fn encode_entry(entry: PyEntry) -> String {
        let (value, expire_time, comment, create_time, author) = entry;
        lists::encode_entry(&Entry {
            value,
            expire_time,
            comment,
            create_time,
            author,
        })
    }

    /// The entry of a text written by `encode_entry`.
    #[staticmethod]
    fn decode_entry(text: &str) -> Result<PyEntry, PyCoreError> {
        let e = lists::decode_entry(text)?;
        Ok((e.value, e.expire_time, e.comment, e.create_time, e.author))
    }

    /// Bulk load from tab-separated lines `value[\texpire_ms[\tcomment]]` (GIL released).
    /// Rejected indexes are line numbers.
    #[pyo3(signature = (list_id, text, author, create_time_ms, replace=false))]
    fn load_lines(
        &self,
        py: Python<'_>,
        list_id: &str,
        text: &[u8],
        author: &str,
        create_time_ms: i64,
        replace: bool,
    ) -> Result<WriteResult, PyCoreError> {
        let list = self.inner.require(list_id)?;
        let text = std::str::from_utf8(text)
            .map_err(|e| lendgate_core::CoreError::invalid("text", e.to_string()))?;
        Ok(py.detach(|| {
            let (entries, mut rejected) = lists::parse_lines(text, author, create_time_ms);
            // Map entry indexes back to line numbers for the rejections of `write`.
            let lines: Vec<usize> = text
                .lines()
                .enumerate()
                .filter(|(n, l)| !l.trim().is_empty() && !rejected.iter().any(|(r, _)| r == n))
                .map(|(n, _)| n)
                .collect();
            let out = list.write(entries, mode(replace));
            rejected.extend(
                out.rejected
                    .into_iter()
                    .map(|(i, why)| (lines.get(i).copied().unwrap_or(i), why)),
            );
            rejected.sort_unstable();
            (out.added, out.replaced, rejected)
        }))
    }

    /// The stored entries (live or expired) of already normalised values, in order;
    /// `None` where a value is absent.
    fn lookup(
        &self,
        py: Python<'_>,
        list_id: &str,
        values: Vec<String>,
    ) -> Result<Vec<Option<PyEntry>>, PyCoreError> {
        let list = self.inner.require(list_id)?;
        let found = py.detach(|| list.lookup(&values));
        Ok(found
            .into_iter()
            .map(|o| o.map(|e| (e.value, e.expire_time, e.comment, e.create_time, e.author)))
            .collect())
    }

    /// Shares list `list_id` of `source` into this registry under the same id (a
    /// partner's registry sees the consortium's lists this way).
    fn link(&self, source: &PyListRegistry, list_id: &str) -> Result<(), PyCoreError> {
        let list = source.inner.require(list_id)?;
        Ok(self.inner.link(list)?)
    }

    /// Removes values; returns how many were there.
    fn remove(&self, list_id: &str, values: Vec<String>) -> Result<usize, PyCoreError> {
        Ok(self.inner.require(list_id)?.remove(&values))
    }

    /// Whether `value` is a live member of the list at `at_ms` (event time).
    fn contains(&self, list_id: &str, value: &str, at_ms: i64) -> Result<bool, PyCoreError> {
        Ok(self.inner.contains(list_id, value, at_ms)?)
    }

    /// Number of entries live at `at_ms`.
    fn live_count(&self, list_id: &str, at_ms: i64) -> Result<usize, PyCoreError> {
        Ok(self.inner.require(list_id)?.live_count(at_ms))
    }

    /// Up to `limit` entries live at `at_ms` with value > `after`, ordered by value.
    #[pyo3(signature = (list_id, at_ms, limit, after=None))]
    fn entries(
        &self,
        py: Python<'_>,
        list_id: &str,
        at_ms: i64,
        limit: usize,
        after: Option<&str>,
    ) -> Result<Vec<PyEntry>, PyCoreError> {
        let list = self.inner.require(list_id)?;
        let entries = py.detach(|| list.entries(after, limit, at_ms));
        Ok(entries
            .into_iter()
            .map(|e| (e.value, e.expire_time, e.comment, e.create_time, e.author))
            .collect())
    }
}
