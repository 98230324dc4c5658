//! Read-only byte buffers from Python without a copy: `bytes`, or a read-only
//! `memoryview` of them (a slice of a large snapshot is passed as a view, not copied).

use pyo3::buffer::PyBuffer;
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;

/// A held, read-only, C-contiguous byte buffer.
pub(crate) struct ReadOnlyBytes(PyBuffer<u8>);

impl ReadOnlyBytes {
    /// Takes the buffer of `obj`; a writable or non-contiguous buffer is refused
    /// (`TypeError`), so its bytes cannot change while Rust reads them without the GIL.
    pub(crate) fn new(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<Self> {
        let buf = PyBuffer::<u8>::get(obj)
            .map_err(|_| PyTypeError::new_err(format!("{what}: expected bytes")))?;
        if !buf.readonly() || !buf.is_c_contiguous() {
            return Err(PyTypeError::new_err(format!(
                "{what}: expected bytes or a read-only, contiguous memoryview"
            )));
        }
        Ok(Self(buf))
    }

    /// The bytes.
    pub(crate) fn as_slice(&self) -> &[u8] {
        let len = self.0.len_bytes();
        if len == 0 {
            return &[];
        }
        // SAFETY: the buffer is held (exported) for `self`'s lifetime, so its memory
        // stays allocated; it is read-only and C-contiguous (checked in `new`), so these
        // `len` bytes are one block nobody writes while it is borrowed.
        unsafe { std::slice::from_raw_parts(self.0.buf_ptr().cast::<u8>(), len) }
    }
}
