//! `Signal`: Unix signals, delivered in the loop instead of in a handler (`ev_signal`).
//!
//! libev installs the handler, records the signal, and runs the callback from the loop,
//! so the callback can do anything. A signal can be watched by one loop at a time
//! (libev asserts otherwise); here a second loop gets [`Error::SignalInUse`], and
//! numbers outside `1..NSIG` or uncatchable signals are errors too.

use crate::error::{Error, Result};
use crate::event_loop::Loop;
use crate::watcher::{kind, zeroed, Watcher, WatcherRef};
use libev_sys as ffi;
use std::cell::Cell;
use std::sync::Mutex;

/// One past the highest signal number (`NSIG`): valid signals are `1..NSIG`.
pub const NSIG: i32 = 65;

kind! {
    /// Marker for signal watchers.
    SignalKind: ev_signal, "signal", ev_signal_start / ev_signal_stop, extra = Cell<bool>;
    {
        fn before_start(w: &WatcherRef<Self>) -> crate::Result<()> {
            let l = w.raw_loop().ok_or(Error::LoopReleased)?;
            claim(w.signum(), l)?;
            w.extra.set(true);
            Ok(())
        }
        fn after_stop(w: &WatcherRef<Self>) {
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

/// Which loop owns each signal, and how many active watchers there hold it.
static OWNERS: Mutex<[(usize, usize); NSIG as usize]> = Mutex::new([(0, 0); NSIG as usize]);

/// Reserves `signum` for loop `l` (process-wide), or reports who has it.
pub(crate) fn claim(signum: i32, l: *mut ffi::ev_loop) -> Result<()> {
    let mut owners = OWNERS.lock().unwrap_or_else(|e| e.into_inner());
    let slot = &mut owners[signum as usize];
    if slot.1 > 0 && slot.0 != l as usize {
        return Err(Error::SignalInUse(signum));
    }
    *slot = (l as usize, slot.1 + 1);
    Ok(())
}

/// Gives back one reservation of `signum` by loop `l`.
pub(crate) fn release(signum: i32, l: *mut ffi::ev_loop) {
    let mut owners = OWNERS.lock().unwrap_or_else(|e| e.into_inner());
    let slot = &mut owners[signum as usize];
    if slot.0 == l as usize && slot.1 > 0 {
        slot.1 -= 1;
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
        // SAFETY: a fresh, inactive struct.
        unsafe { ffi::ev_signal_set(&mut raw, signum) };
        Ok(Watcher::new(self, raw, Cell::new(false)))
    }
}

impl WatcherRef<SignalKind> {
    /// The signal number.
    pub fn signum(&self) -> i32 {
        // SAFETY: the struct is valid for reads.
        unsafe { (*self.raw()).signum }
    }
}
