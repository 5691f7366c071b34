//! libev's fatal `syserr` path, routed into Rust (soundness rule 6).
//!
//! libev calls its syserr callback when a system call it cannot do without fails
//! (`epoll_wait`, making the loop's eventfd, …) and, without one, aborts the process.
//! The callback installed here records the message and `errno` for this thread and
//! breaks the loop running on it; [`Loop::run`](crate::Loop::run) and the loop
//! constructors pick the error up with [`take`] and return it as
//! [`Error::System`].

use crate::error::Error;
use libev_sys as ffi;
use std::cell::{Cell, RefCell};
use std::ffi::c_int;

thread_local! {
    /// libev system errors reported on this thread, picked up by `run` and constructors.
    static SYSERR: RefCell<Option<Error>> = const { RefCell::new(None) };
    /// The loop currently inside `ev_run` on this thread (innermost), for syserr.
    static RUNNING: Cell<*mut ffi::ev_loop> = const { Cell::new(std::ptr::null_mut()) };
}

unsafe extern "C" fn syserr_cb(msg: *const std::ffi::c_char) {
    let errno = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
    let message = if msg.is_null() {
        "(libev) system error".to_owned()
    } else {
        // SAFETY: libev passes a static NUL-terminated string (ev.c's syserr calls).
        unsafe { std::ffi::CStr::from_ptr(msg) }
            .to_string_lossy()
            .into_owned()
    };
    let _ = SYSERR.try_with(|s| *s.borrow_mut() = Some(Error::System { message, errno }));
    let running = RUNNING.try_with(Cell::get).unwrap_or(std::ptr::null_mut());
    if !running.is_null() {
        // SAFETY: `Running` marks a loop only while `run` holds a handle to it (rule 4)
        // inside ev_run on this thread (rule 7).
        unsafe { ffi::ev_break(running, ffi::EVBREAK_ALL as c_int) };
    }
}

/// The system error libev reported on this thread since the last call, if any.
pub(crate) fn take() -> Option<Error> {
    // try_with: a loop may still run while the thread-locals are being destroyed
    // (a hub shutting down at thread exit).
    SYSERR.try_with(|s| s.borrow_mut().take()).ok().flatten()
}

/// Installs the syserr callback (once per process); call before creating a loop.
pub(crate) fn install() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    // SAFETY: installs a process-wide function pointer, which libev only reads (on
    // errors); syserr_cb never unwinds (rule 5).
    ONCE.call_once(|| unsafe { ffi::ev_set_syserr_cb(Some(syserr_cb)) });
}

/// Marks a loop as the one inside `ev_run` on this thread, so that a system error
/// breaks it, until dropped (which puts back the loop of an enclosing `run`).
#[must_use]
pub(crate) struct Running {
    outer: *mut ffi::ev_loop,
}

impl Running {
    pub(crate) fn enter(l: *mut ffi::ev_loop) -> Running {
        Running {
            outer: RUNNING.with(|r| r.replace(l)),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        RUNNING.with(|r| r.set(self.outer));
    }
}
