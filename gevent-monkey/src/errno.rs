//! The calling thread's `errno`.

/// The current `errno`.
#[inline(always)]
pub(crate) fn get() -> libc::c_int {
    // SAFETY: glibc's per-thread errno location, valid for the thread's lifetime.
    unsafe { *libc::__errno_location() }
}

/// Sets `errno`.
#[inline(always)]
pub(crate) fn set(e: libc::c_int) {
    // SAFETY: as in `get`.
    unsafe { *libc::__errno_location() = e }
}

/// True for the two names of "would block".
#[inline(always)]
pub(crate) fn would_block(e: libc::c_int) -> bool {
    e == libc::EAGAIN || e == libc::EWOULDBLOCK
}
