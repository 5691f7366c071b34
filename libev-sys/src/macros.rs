//! libev's function-like macros and header-inline functions, as `#[inline]` Rust.
//!
//! `ev.h` implements part of its API as macros (`ev_init`, `ev_io_set`, `ev_is_active`,
//! …) and `static inline` functions (`ev_is_default_loop`), which have no symbol to
//! link against. Each one is here under its C name, taking the same arguments, and
//! each is checked by the crate's tests against the C macro compiled by the C compiler
//! (`csrc/probe.c`).
//!
//! Every watcher struct starts with libev's common header (`EV_WATCHER`: `active`,
//! `pending`, `priority`, `data`, `cb`), which is what lets C cast any watcher to
//! `ev_watcher *`; [`EvWatcher`] states that fact for the Rust types so the generic
//! macros below can do the same.

use crate::*;
use core::ffi::{c_char, c_int};

/// A libev watcher struct: it begins with the common `EV_WATCHER` header, so a pointer
/// to it may be read as a pointer to [`ev_watcher`].
///
/// # Safety
/// Implement only for `#[repr(C)]` structs whose first fields are exactly those of
/// [`ev_watcher`], with a `cb` field of type [`EvWatcher::Callback`].
pub unsafe trait EvWatcher {
    /// The type of the struct's `cb` field.
    type Callback: Copy;
    /// Writes the struct's own `cb` field (C's `ev_cb_ (w) = cb`).
    ///
    /// # Safety
    /// `w` must point to a valid watcher struct.
    unsafe fn write_cb(w: *mut Self, cb: Self::Callback);
    /// Reads the struct's own `cb` field.
    ///
    /// # Safety
    /// `w` must point to a valid watcher struct.
    unsafe fn read_cb(w: *const Self) -> Self::Callback;
}

macro_rules! watchers {
    ($($t:ident),* $(,)?) => {$(
        // SAFETY: bindgen generated these from ev.h, where each struct opens with
        // EV_WATCHER (or EV_WATCHER_LIST / EV_WATCHER_TIME, which begin with it).
        unsafe impl EvWatcher for $t {
            type Callback = Option<unsafe extern "C" fn(*mut ev_loop, *mut $t, c_int)>;
            #[inline]
            unsafe fn write_cb(w: *mut Self, cb: Self::Callback) {
                // SAFETY: `w` points to a valid watcher (this method's contract), so its
                // `cb` field is valid for a write.
                unsafe { core::ptr::addr_of_mut!((*w).cb).write(cb) }
            }
            #[inline]
            unsafe fn read_cb(w: *const Self) -> Self::Callback {
                // SAFETY: `w` points to a valid watcher (this method's contract), so its
                // `cb` field is valid for a read.
                unsafe { core::ptr::addr_of!((*w).cb).read() }
            }
        }
    )*};
}
watchers!(
    ev_watcher,
    ev_watcher_list,
    ev_watcher_time,
    ev_io,
    ev_timer,
    ev_periodic,
    ev_signal,
    ev_child,
    ev_stat,
    ev_idle,
    ev_prepare,
    ev_check,
    ev_fork,
    ev_cleanup,
    ev_embed,
    ev_async,
);

#[inline]
fn header<W: EvWatcher>(w: *mut W) -> *mut ev_watcher {
    w.cast()
}

/// `ev_init (w, cb)`: marks the watcher inactive and not pending, priority 0, and sets
/// its callback. Call it (or an `ev_TYPE_init`) once before anything else.
///
/// # Safety
/// `w` must point to writable memory for a `W`; the watcher must not be active.
#[inline]
pub unsafe fn ev_init<W: EvWatcher>(w: *mut W, cb: W::Callback) {
    // SAFETY: W begins with the ev_watcher header (EvWatcher's contract) and `w` is
    // writable (this function's contract).
    unsafe {
        let h = header(w);
        (*h).active = 0;
        (*h).pending = 0;
        ev_set_priority(w, 0);
        ev_set_cb(w, cb);
    }
}

/// `ev_is_active (w)`: non-zero while the watcher is started.
///
/// # Safety
/// `w` must point to an initialised watcher.
#[inline]
pub unsafe fn ev_is_active<W: EvWatcher>(w: *const W) -> c_int {
    // SAFETY: W begins with the ev_watcher header (EvWatcher's contract), and `w`
    // points to an initialised watcher (this function's contract).
    unsafe { (*header(w.cast_mut())).active }
}

/// `ev_is_pending (w)`: non-zero while an event is queued for the watcher's callback.
///
/// # Safety
/// `w` must point to an initialised watcher.
#[inline]
pub unsafe fn ev_is_pending<W: EvWatcher>(w: *const W) -> c_int {
    // SAFETY: W begins with the ev_watcher header (EvWatcher's contract), and `w`
    // points to an initialised watcher (this function's contract).
    unsafe { (*header(w.cast_mut())).pending }
}

/// `ev_priority (w)`.
///
/// # Safety
/// `w` must point to an initialised watcher.
#[inline]
pub unsafe fn ev_priority<W: EvWatcher>(w: *const W) -> c_int {
    // SAFETY: W begins with the ev_watcher header (EvWatcher's contract), and `w`
    // points to an initialised watcher (this function's contract).
    unsafe { (*header(w.cast_mut())).priority }
}

/// `ev_set_priority (w, pri)`. libev requires `EV_MINPRI <= pri <= EV_MAXPRI` and the
/// watcher to be inactive; this raw form checks neither.
///
/// # Safety
/// `w` must point to a watcher that is not active.
#[inline]
pub unsafe fn ev_set_priority<W: EvWatcher>(w: *mut W, pri: c_int) {
    // SAFETY: W begins with the ev_watcher header (EvWatcher's contract), and `w`
    // points to a valid watcher (this function's contract).
    unsafe { (*header(w)).priority = pri }
}

/// `ev_cb (w)`: the watcher's callback.
///
/// # Safety
/// `w` must point to an initialised watcher.
#[inline]
pub unsafe fn ev_cb<W: EvWatcher>(w: *const W) -> W::Callback {
    // SAFETY: `w` points to an initialised watcher, which is what `read_cb` and
    // `write_cb` need (this function's contract).
    unsafe { W::read_cb(w) }
}

/// `ev_set_cb (w, cb)`: replaces the callback; allowed at any time, even from inside
/// the callback itself.
///
/// # Safety
/// `w` must point to an initialised watcher.
#[inline]
pub unsafe fn ev_set_cb<W: EvWatcher>(w: *mut W, cb: W::Callback) {
    // SAFETY: `w` points to an initialised watcher, which is what `read_cb` and
    // `write_cb` need (this function's contract).
    unsafe { W::write_cb(w, cb) }
}

/// `ev_io_set (w, fd, events)`.
///
/// # Safety
/// `w` must point to an io watcher that is not active.
#[inline]
pub unsafe fn ev_io_set(w: *mut ev_io, fd: c_int, events: c_int) {
    // SAFETY: `w` points to a valid watcher of this type (this function's contract),
    // so its fields are valid for these accesses.
    unsafe {
        (*w).fd = fd;
        (*w).events = events | EV__IOFDSET;
    }
}

/// `ev_io_modify (w, events)`: changes only the event mask.
///
/// # Safety
/// `w` must point to an io watcher that is not active.
#[inline]
pub unsafe fn ev_io_modify(w: *mut ev_io, events: c_int) {
    // SAFETY: `w` points to a valid watcher of this type (this function's contract),
    // so its fields are valid for these accesses.
    unsafe { (*w).events = ((*w).events & EV__IOFDSET) | events }
}

/// `ev_timer_set (w, after, repeat)`.
///
/// # Safety
/// `w` must point to a timer watcher that is not active.
#[inline]
pub unsafe fn ev_timer_set(w: *mut ev_timer, after: ev_tstamp, repeat: ev_tstamp) {
    // SAFETY: `w` points to a valid watcher of this type (this function's contract),
    // so its fields are valid for these accesses.
    unsafe {
        (*w).at = after;
        (*w).repeat = repeat;
    }
}

/// The reschedule callback of a periodic watcher.
pub type ev_periodic_reschedule_cb =
    Option<unsafe extern "C" fn(*mut ev_periodic, ev_tstamp) -> ev_tstamp>;

/// `ev_periodic_set (w, offset, interval, reschedule_cb)`.
///
/// # Safety
/// `w` must point to a periodic watcher that is not active.
#[inline]
pub unsafe fn ev_periodic_set(
    w: *mut ev_periodic,
    ofs: ev_tstamp,
    ival: ev_tstamp,
    rcb: ev_periodic_reschedule_cb,
) {
    // SAFETY: `w` points to a valid watcher of this type (this function's contract),
    // so its fields are valid for these accesses.
    unsafe {
        (*w).offset = ofs;
        (*w).interval = ival;
        (*w).reschedule_cb = rcb;
    }
}

/// `ev_periodic_at (w)`: the absolute time the watcher fires next.
///
/// # Safety
/// `w` must point to an initialised periodic watcher.
#[inline]
pub unsafe fn ev_periodic_at(w: *const ev_periodic) -> ev_tstamp {
    // SAFETY: `w` points to a valid watcher of this type (this function's contract),
    // so its fields are valid for these accesses.
    unsafe { (*w).at }
}

/// `ev_signal_set (w, signum)`.
///
/// # Safety
/// `w` must point to a signal watcher that is not active.
#[inline]
pub unsafe fn ev_signal_set(w: *mut ev_signal, signum: c_int) {
    // SAFETY: `w` points to a valid watcher of this type (this function's contract),
    // so its fields are valid for these accesses.
    unsafe { (*w).signum = signum }
}

/// `ev_child_set (w, pid, trace)`: `pid` 0 means any child; `trace` non-zero also
/// reports stopped and continued children.
///
/// # Safety
/// `w` must point to a child watcher that is not active.
#[inline]
pub unsafe fn ev_child_set(w: *mut ev_child, pid: c_int, trace: c_int) {
    // SAFETY: `w` points to a valid watcher of this type (this function's contract),
    // so its fields are valid for these accesses.
    unsafe {
        (*w).pid = pid;
        (*w).flags = (trace != 0) as c_int;
    }
}

/// `ev_stat_set (w, path, interval)`.
///
/// # Safety
/// `w` must point to a stat watcher that is not active; `path` must stay valid and
/// unchanged for as long as the watcher may be started.
#[inline]
pub unsafe fn ev_stat_set(w: *mut ev_stat, path: *const c_char, interval: ev_tstamp) {
    // SAFETY: `w` points to a valid watcher of this type (this function's contract),
    // so its fields are valid for these accesses.
    unsafe {
        (*w).path = path;
        (*w).interval = interval;
        (*w).wd = -2;
    }
}

/// `ev_embed_set (w, other)`.
///
/// # Safety
/// `w` must point to an embed watcher that is not active.
#[inline]
pub unsafe fn ev_embed_set(w: *mut ev_embed, other: *mut ev_loop) {
    // SAFETY: `w` points to a valid watcher of this type (this function's contract),
    // so its fields are valid for these accesses.
    unsafe { (*w).other = other }
}

/// `ev_async_pending (w)`: non-zero when `ev_async_send` was called and the callback
/// has not run yet. The field is `volatile` in C, and read as such here.
///
/// # Safety
/// `w` must point to an initialised async watcher.
#[inline]
pub unsafe fn ev_async_pending(w: *const ev_async) -> c_int {
    // SAFETY: `w` points to an initialised async watcher (this function's contract);
    // the field is read as volatile, as C declares it.
    unsafe { core::ptr::addr_of!((*w).sent).read_volatile() }
}

/// `ev_TYPE_init (w, cb, args…)` is `ev_init (w, cb)` followed by `ev_TYPE_set (w, args…)`;
/// this writes each one that way (with no `_set` for the types whose `ev_TYPE_set` is
/// empty in C).
macro_rules! inits {
    ($($name:ident: $t:ident $(=> $set:ident($($arg:ident: $ty:ty),*))?;)*) => {$(
        #[doc = concat!("`", stringify!($name), " (w, cb", $($(", ", stringify!($arg),)*)? ")`.")]
        ///
        /// # Safety
        #[doc = concat!("As [`ev_init`]", $(" and [`", stringify!($set), "`]",)? ".")]
        #[inline]
        pub unsafe fn $name(w: *mut $t, cb: <$t as EvWatcher>::Callback $($(, $arg: $ty)*)?) {
            // SAFETY: the caller promises what ev_init and the ev_TYPE_set call need.
            unsafe {
                ev_init(w, cb);
                $($set(w $(, $arg)*);)?
            }
        }
    )*};
}
inits! {
    ev_io_init: ev_io => ev_io_set(fd: c_int, events: c_int);
    ev_timer_init: ev_timer => ev_timer_set(after: ev_tstamp, repeat: ev_tstamp);
    ev_periodic_init: ev_periodic => ev_periodic_set(
        ofs: ev_tstamp, ival: ev_tstamp, rcb: ev_periodic_reschedule_cb
    );
    ev_signal_init: ev_signal => ev_signal_set(signum: c_int);
    ev_child_init: ev_child => ev_child_set(pid: c_int, trace: c_int);
    ev_stat_init: ev_stat => ev_stat_set(path: *const c_char, interval: ev_tstamp);
    ev_embed_init: ev_embed => ev_embed_set(other: *mut ev_loop);
    ev_idle_init: ev_idle;
    ev_prepare_init: ev_prepare;
    ev_check_init: ev_check;
    ev_fork_init: ev_fork;
    ev_cleanup_init: ev_cleanup;
    ev_async_init: ev_async;
}

unsafe extern "C" {
    /// The default loop once `ev_default_loop` has created it, else null.
    /// (Declared in ev.h only under `EV_API_STATIC`; ev.c always defines it.)
    pub static mut ev_default_loop_ptr: *mut ev_loop;
}

/// `ev_default_loop_uc_ ()` (`EV_DEFAULT_UC`): the default loop if it was created,
/// else null. Unlike [`ev_default_loop`] it never creates it.
#[inline]
pub fn ev_default_loop_uc_() -> *mut ev_loop {
    // SAFETY: a plain read of libev's global pointer, which libev writes only from
    // ev_default_loop and ev_loop_destroy.
    unsafe { core::ptr::addr_of!(ev_default_loop_ptr).read() }
}

/// `ev_is_default_loop (loop)`.
#[inline]
pub fn ev_is_default_loop(loop_: *mut ev_loop) -> c_int {
    (!loop_.is_null() && loop_ == ev_default_loop_uc_()) as c_int
}

unsafe extern "C" {
    /// Non-zero while the default loop's internal SIGCHLD watcher (which reaps every
    /// child process with `waitpid(-1)`) is active. Defined in `csrc/libev.c`.
    pub fn libev_sys_child_reaping_active() -> c_int;
    /// Stops the default loop's SIGCHLD reaping (no-op on other loops or when stopped).
    ///
    /// # Safety
    /// `loop_` must be a live loop, used on its own thread.
    pub fn libev_sys_child_reaping_stop(loop_: *mut ev_loop);
    /// Starts the default loop's SIGCHLD reaping again (no-op on other loops, when
    /// already active, or before the default loop was ever created).
    ///
    /// # Safety
    /// `loop_` must be a live loop, used on its own thread.
    pub fn libev_sys_child_reaping_start(loop_: *mut ev_loop);
}
