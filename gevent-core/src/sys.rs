//! The crate's edge to C, written once: all-zero libev structs, libev's time (`f64`
//! seconds) as a `Duration`, an `ev_ref` as a guard, and the limits libev and the
//! kernel set.

use libev_sys::{self as ffi, EvWatcher};
use std::time::Duration;

/// The lowest watcher priority (`EV_MINPRI`).
pub const MINPRI: i32 = ffi::EV_MINPRI;
/// The highest watcher priority (`EV_MAXPRI`).
pub const MAXPRI: i32 = ffi::EV_MAXPRI;
/// One past the highest signal number (`NSIG`): valid signals are `1..NSIG`.
pub const NSIG: i32 = 65;

/// An `ev_ref` held on a loop (it keeps `ev_run` from returning), given back with
/// `ev_unref` when dropped: what pairs the two calls everywhere in this crate.
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

/// A zeroed libev watcher struct, ready for `ev_TYPE_set` and `Watcher::new`.
pub(crate) fn zeroed<R: EvWatcher>() -> R {
    // SAFETY: libev watcher structs are plain C data (integers, doubles, raw and
    // nullable function pointers, `struct stat`); all-zero is a valid value of each.
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
