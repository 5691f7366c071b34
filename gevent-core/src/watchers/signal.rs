//! `Signal`: Unix signals, delivered in the loop instead of in a handler (`ev_signal`).
//!
//! libev installs the handler, records the signal, and runs the callback from the loop,
//! so the callback can do anything. A signal can be watched by one loop at a time
//! (libev asserts otherwise); here a second loop gets [`Error::SignalInUse`], and
//! numbers outside `1..NSIG` or uncatchable signals are errors too.
//!
//! When the last watcher of a signal stops, libev resets the signal to `SIG_DFL`. Here
//! the disposition the signal had before the first watcher started is put back
//! instead, so that, for instance, a program that ignores `SIGPIPE` (every Rust
//! binary does) still ignores it after watching it for a while.

use crate::error::{Error, Result};
use crate::event_loop::Loop;
use crate::sys::{syscall, zeroed};
use crate::watcher::{kind, Watcher, WatcherCore};
use libev_sys as ffi;
use std::cell::Cell;
use std::sync::Mutex;

pub use crate::sys::NSIG;

kind! {
    /// Marker for signal watchers.
    SignalKind: ev_signal, "signal", ev_signal_start / ev_signal_stop, extra = Cell<bool>;
    {
        fn before_start(w: &WatcherCore<Self>) -> crate::Result<()> {
            let l = w.raw_loop().ok_or(Error::LoopReleased)?;
            claim(w.signum(), l)?;
            w.extra.set(true);
            Ok(())
        }
        fn after_stop(w: &WatcherCore<Self>) {
            if w.extra.replace(false) {
                if let Some(l) = w.raw_loop() {
                    release(w.signum(), l);
                }
            }
        }
    }
}

/// A signal watcher: see the [module docs](self).
pub type Signal = Watcher<SignalKind>;

/// Per signal: the loop that owns it, how many active watchers there hold it, and the
/// disposition it had before the first of them started.
struct Owner {
    lp: usize,
    count: usize,
    before: Option<libc::sigaction>,
}

const FREE: Owner = Owner {
    lp: 0,
    count: 0,
    before: None,
};
static OWNERS: Mutex<[Owner; NSIG as usize]> = Mutex::new([FREE; NSIG as usize]);

/// Reserves `signum` for loop `l` (process-wide), or reports who has it.
pub(crate) fn claim(signum: i32, l: *mut ffi::ev_loop) -> Result<()> {
    let mut owners = OWNERS.lock().unwrap_or_else(|e| e.into_inner());
    let slot = &mut owners[signum as usize];
    if slot.count > 0 && slot.lp != l as usize {
        return Err(Error::SignalInUse(signum));
    }
    if slot.count == 0 {
        let mut old: libc::sigaction = zeroed();
        // SAFETY: with a null new action sigaction only writes the current disposition
        // into `old`, a live out-parameter. It fails only for an invalid signal number
        // (check_signum ruled that out); then there would be nothing to put back.
        let read = unsafe { syscall!(sigaction(signum, std::ptr::null(), &mut old)) };
        slot.before = read.ok().map(|_| old);
    }
    slot.lp = l as usize;
    slot.count += 1;
    Ok(())
}

/// Gives back one reservation of `signum` by loop `l`; the last one restores the
/// disposition saved by the first [`claim`] (libev has just set `SIG_DFL`).
pub(crate) fn release(signum: i32, l: *mut ffi::ev_loop) {
    let mut owners = OWNERS.lock().unwrap_or_else(|e| e.into_inner());
    let slot = &mut owners[signum as usize];
    if slot.lp == l as usize && slot.count > 0 {
        slot.count -= 1;
        if slot.count == 0 {
            if let Some(before) = slot.before.take() {
                // SAFETY: restores a disposition the process had before; libev no longer
                // has a watcher for this signal, so its handler is not needed.
                let restored =
                    unsafe { syscall!(sigaction(signum, &before, std::ptr::null_mut())) };
                // It fails only for an invalid signal number or disposition, and both
                // came from a successful call on the same signal: nothing to recover.
                debug_assert!(restored.is_ok(), "restore signal {signum}: {restored:?}");
            }
        }
    }
}

pub(crate) fn check_signum(signum: i32) -> Result<()> {
    if !(1..NSIG).contains(&signum) {
        return Err(Error::SignalOutOfRange(signum));
    }
    if signum == libc::SIGKILL || signum == libc::SIGSTOP {
        return Err(Error::SignalUncatchable(signum));
    }
    Ok(())
}

impl Loop {
    /// A watcher for signal `signum` (`ev_signal_init`). Not started yet.
    ///
    /// # Errors
    /// [`Error::SignalOutOfRange`], [`Error::SignalUncatchable`]. Starting it fails with
    /// [`Error::SignalInUse`] while another loop watches the same signal.
    pub fn signal(&self, signum: i32) -> Result<Signal> {
        check_signum(signum)?;
        let mut raw: ffi::ev_signal = zeroed();
        // SAFETY: `raw` is a fresh struct that nothing has started or points at.
        unsafe { ffi::ev_signal_set(&mut raw, signum) };
        Ok(Watcher::new(self, raw, Cell::new(false)))
    }
}

impl WatcherCore<SignalKind> {
    /// The signal number.
    pub fn signum(&self) -> i32 {
        // SAFETY: rule 1: the struct lives in this allocation, and libev writes it
        // only on this thread (rule 7), never during this read.
        unsafe { (*self.as_raw()).signum }
    }
}
