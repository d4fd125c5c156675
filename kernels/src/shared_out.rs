//! An output matrix that the threads of one product write at disjoint positions (the int8 and
//! bf16 products share their rows or tiles out this way).

/// A mutable output slice handed to several threads at once.
pub(crate) struct SharedOut {
    ptr: *mut f32,
    len: usize,
}

// SAFETY: threads only write through `write`, whose contract keeps their positions disjoint.
unsafe impl Sync for SharedOut {}

impl SharedOut {
    pub(crate) fn new(out: &mut [f32]) -> Self {
        SharedOut {
            ptr: out.as_mut_ptr(),
            len: out.len(),
        }
    }

    /// # Safety
    /// No other thread may write `offset..offset + values.len()` concurrently.
    pub(crate) unsafe fn write(&self, offset: usize, values: &[f32]) {
        assert!(offset + values.len() <= self.len, "write past the output");
        // SAFETY: in bounds (checked above) and not aliased (the caller's contract).
        unsafe {
            std::ptr::copy_nonoverlapping(values.as_ptr(), self.ptr.add(offset), values.len())
        };
    }

    /// [`SharedOut::write`] of one whole tile: a copy of known length is a few vector moves,
    /// where a copy of run-time length is a `memcpy` call per 64 bytes (5% of the encoder).
    ///
    /// # Safety
    /// As [`SharedOut::write`].
    #[inline(always)]
    pub(crate) unsafe fn write_tile<const N: usize>(&self, offset: usize, values: &[f32; N]) {
        assert!(offset + N <= self.len, "write past the output");
        // SAFETY: in bounds (checked above) and not aliased (the caller's contract).
        unsafe { std::ptr::copy_nonoverlapping(values.as_ptr(), self.ptr.add(offset), N) };
    }
}
