//! The crate's edge to C, written once: [`syscall!`] for raw libc calls, all-zero C
//! structs, libev's time (`f64` seconds) as a `Duration`, an `ev_ref` as a guard, and
//! the limits libev and the kernel set.

use libev_sys as ffi;
use std::time::Duration;

/// The lowest watcher priority (`EV_MINPRI`).
pub const MINPRI: i32 = ffi::EV_MINPRI;
/// The highest watcher priority (`EV_MAXPRI`).
pub const MAXPRI: i32 = ffi::EV_MAXPRI;
/// One past the highest signal number (`NSIG`): valid signals are `1..NSIG`.
pub const NSIG: i32 = 65;

/// An `ev_ref` held on a loop (it keeps `ev_run` from returning), given back with
/// `ev_unref` when dropped: what pairs the two calls everywhere in this crate.
#[must_use]
pub(crate) struct EvRef {
    raw: *mut ffi::ev_loop,
}

impl EvRef {
    /// Takes a reference on loop `raw` (`ev_ref`).
    ///
    /// # Safety
    /// `raw` must be a live loop, used on this thread only, that stays alive until the
    /// guard is dropped.
    pub(crate) unsafe fn new(raw: *mut ffi::ev_loop) -> EvRef {
        // SAFETY: the caller's contract: a live loop on this thread.
        unsafe { ffi::ev_ref(raw) };
        EvRef { raw }
    }
}

impl Drop for EvRef {
    fn drop(&mut self) {
        // SAFETY: the loop is still alive (`new`'s contract); this gives back the
        // reference `new` took.
        unsafe { ffi::ev_unref(self.raw) }
    }
}

/// Calls a libc function, turning its `-1` into the `errno` it set, as mio does:
/// `syscall!(fcntl(fd, libc::F_GETFD))` is an `io::Result<c_int>`. Every raw libc call
/// of the crate goes through it. The call itself stays unsafe: write it inside an
/// `unsafe` block, under a `// SAFETY:` line that says why it is sound.
macro_rules! syscall {
    ($fn:ident ( $($arg:expr),* $(,)? )) => {{
        let res = libc::$fn($($arg),*);
        if res == -1 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(res)
        }
    }};
}
pub(crate) use syscall;

/// C structs for which all-zero bytes are a valid value.
///
/// # Safety
/// Implement only for plain C data: integers, floats, raw and nullable function
/// pointers, and structs or arrays of those.
pub(crate) unsafe trait Zeroable {}

macro_rules! zeroable {
    ($($t:ty),* $(,)?) => {$(
        // SAFETY: libev's watcher structs hold integers, doubles, raw and nullable
        // function pointers and a `struct stat`; `sigaction` holds a handler (0 is
        // SIG_DFL), a signal set, flags and a nullable function pointer.
        unsafe impl Zeroable for $t {}
    )*};
}
zeroable!(
    ffi::ev_io,
    ffi::ev_timer,
    ffi::ev_periodic,
    ffi::ev_signal,
    ffi::ev_child,
    ffi::ev_stat,
    ffi::ev_idle,
    ffi::ev_prepare,
    ffi::ev_check,
    ffi::ev_fork,
    ffi::ev_cleanup,
    ffi::ev_async,
    libc::sigaction,
);

/// An all-zero C struct: a libev watcher ready for `ev_TYPE_set` and `Watcher::new`,
/// or an out-parameter for libc.
pub(crate) fn zeroed<T: Zeroable>() -> T {
    // SAFETY: all-zero is a valid T (Zeroable's contract).
    unsafe { std::mem::zeroed() }
}

/// libev time (seconds as `f64`) to a `Duration`: negatives (and NaN) read as zero,
/// and times too large for a `Duration` (a timer set to `Duration::MAX`, which the
/// `f64` rounds up) as `Duration::MAX`, "never".
pub(crate) fn secs(t: f64) -> Duration {
    if t > 0.0 {
        Duration::try_from_secs_f64(t).unwrap_or(Duration::MAX)
    } else {
        Duration::ZERO
    }
}
