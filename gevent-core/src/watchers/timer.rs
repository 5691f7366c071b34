//! `Timer`: relative timeouts, optionally repeating (`ev_timer`).
//!
//! Made with [`Loop::timer`]`(after, repeat)`: fires `after` from the loop's
//! [`now`](Loop::now), then every `repeat` if that is not zero. Timers run on the
//! monotonic clock, so wall-clock jumps do not move them. Durations cannot be negative,
//! so libev's "negative repeat" assertion cannot be reached.
//!
//! For an inactivity timeout that is pushed back often, prefer [`again`](WatcherCore::again)
//! (ev.pod's "be smart about timeouts", strategy 2) over stop + start.

use crate::error::{Error, Result};
use crate::event_loop::Loop;
use crate::sys::secs;
use crate::sys::zeroed;
use crate::watcher::{kind, Watcher, WatcherCore};
use libev_sys as ffi;
use std::time::Duration;

kind! {
    /// Marker for timer watchers.
    TimerKind: ev_timer, "timer", ev_timer_start / ev_timer_stop, extra = ();
    {}
}

/// A timer watcher: see the [module docs](self).
///
/// Besides what every watcher has ([`start`](WatcherCore::start), `stop`, `is_active`,
/// ...), a timer has (on [`WatcherCore<TimerKind>`], which it derefs to):
/// [`set`](WatcherCore::set)`(after, repeat)` while stopped,
/// [`repeat`](WatcherCore::repeat)/[`set_repeat`](WatcherCore::set_repeat),
/// [`again`](WatcherCore::again) (`ev_timer_again`: restart from now, the cheap way
/// to push an inactivity timeout back) and [`remaining`](WatcherCore::remaining).
///
/// Unlike [`Loop::io`], [`Loop::timer`] cannot fail: any two durations make a valid
/// timer, while an io watcher checks its fd and events.
///
/// ```
/// use gevent_core::Loop;
/// use std::time::Duration;
///
/// let lp = Loop::new()?;
/// let t = lp.timer(Duration::from_secs(60), Duration::ZERO);
/// t.set(Duration::from_millis(1), Duration::from_millis(1))?; // stopped: allowed
/// let mut fired = 0;
/// t.start(move |t, _| {
///     fired += 1;
///     if fired == 2 {
///         t.set_repeat(Duration::ZERO);
///         t.again().unwrap(); // repeat zero: again() stops it
///     }
/// })?;
/// lp.run()?; // returns once the timer has stopped
/// assert!(!t.is_active());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub type Timer = Watcher<TimerKind>;

impl Loop {
    /// A timer that fires after `after`, then every `repeat` unless it is zero
    /// (`ev_timer_init`). Not started yet.
    pub fn timer(&self, after: Duration, repeat: Duration) -> Timer {
        let mut raw: ffi::ev_timer = zeroed();
        // SAFETY: `raw` is a fresh struct that nothing has started or points at.
        unsafe { ffi::ev_timer_set(&mut raw, after.as_secs_f64(), repeat.as_secs_f64()) };
        Watcher::new(self, raw, ())
    }
}

impl WatcherCore<TimerKind> {
    /// Changes `after` and `repeat` (`ev_timer_set`); only while stopped.
    ///
    /// # Errors
    /// [`Error::WatcherActive`] while started.
    pub fn set(&self, after: Duration, repeat: Duration) -> Result<()> {
        if self.is_active() {
            return Err(Error::WatcherActive("set a timer"));
        }
        // SAFETY: the watcher is stopped (checked above), so libev allows the change;
        // the struct lives in this allocation (rule 1).
        unsafe { ffi::ev_timer_set(self.as_raw(), after.as_secs_f64(), repeat.as_secs_f64()) };
        Ok(())
    }

    /// The repeat interval.
    pub fn repeat(&self) -> Duration {
        // SAFETY: rule 1: the struct lives in this allocation, and libev writes it
        // only on this thread (rule 7), never during this read.
        secs(unsafe { (*self.as_raw()).repeat })
    }

    /// Changes the repeat interval; takes effect at the next expiry or
    /// [`again`](WatcherCore::again). Allowed at any time, as in libev.
    pub fn set_repeat(&self, repeat: Duration) {
        // SAFETY: libev reads `repeat` only when rescheduling, on this thread (rule 7);
        // writing it is allowed while active (ev.pod, "ev_timer"). Rule 1 for the struct.
        unsafe { (*self.as_raw()).repeat = repeat.as_secs_f64() }
    }

    /// `ev_timer_again`: restarts a repeating timer to fire `repeat` from now; stops it
    /// if `repeat` is zero (keeping its callback); starts a stopped one with a non-zero
    /// `repeat`, using the callback it was last started with.
    ///
    /// # Errors
    /// [`Error::NoCallback`] if a stopped timer would start without a callback;
    /// [`Error::LoopReleased`] when the loop is gone.
    pub fn again(&self) -> Result<()> {
        let l = self.raw_loop().ok_or(Error::LoopReleased)?;
        let repeat = self.repeat();
        if self.is_active() {
            if repeat.is_zero() {
                self.stop_inner(false);
            } else {
                // SAFETY: an active watcher on its live loop (rules 1 and 4).
                unsafe { ffi::ev_timer_again(l, self.as_raw()) };
            }
        } else if !repeat.is_zero() {
            if !self.has_callback() {
                return Err(Error::NoCallback("timer"));
            }
            // SAFETY: a stopped watcher with a callback on its live loop (rules 1 and
            // 4); ev_timer_again starts it with `repeat`.
            unsafe { ffi::ev_timer_again(l, self.as_raw()) };
            self.after_start(l);
        }
        Ok(())
    }

    /// Time left until the timer fires (`ev_timer_remaining`); zero when stopped.
    pub fn remaining(&self) -> Duration {
        match self.raw_loop() {
            Some(l) if self.is_active() => {
                // SAFETY: an active watcher on its live loop (rules 1 and 4).
                secs(unsafe { ffi::ev_timer_remaining(l, self.as_raw()) })
            }
            _ => Duration::ZERO,
        }
    }
}
