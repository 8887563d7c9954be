//! cfgsnap's change to russh-cryptovec: on Unix, buffers are not locked
//! into memory one by one (see `vendor/README.md` in cfgsnap for why).
//! The signatures stay those of the upstream crate, so nothing else in it
//! changes; zeroing on clear, resize and drop is untouched.

use super::MemoryLockError;

/// Does nothing: buffers are not unlocked one by one.
#[inline]
pub fn munlock(_ptr: *const u8, _len: usize) -> Result<(), MemoryLockError> {
    Ok(())
}

/// Does nothing: buffers are not locked one by one.
#[inline]
pub fn mlock(_ptr: *const u8, _len: usize) -> Result<(), MemoryLockError> {
    Ok(())
}
