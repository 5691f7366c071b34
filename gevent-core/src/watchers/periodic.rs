//! `Periodic`: wall-clock schedules (`ev_periodic`).
//!
//! Unlike a [`Timer`](crate::Timer), a periodic watcher follows the wall clock: with
//! `interval` zero it fires once at the absolute time `offset` (since the Unix epoch);
//! with a non-zero `interval` it fires at every `offset + N * interval` (e.g. each full
//! hour: offset 0, interval 3600 s); with a reschedule closure it fires whenever the
//! closure says, given the current time. libev asserts when a reschedule callback
//! returns a time in the past; here such a time is clamped to "now".
//!
//! A panic in the reschedule closure never reaches libev. When `start` or `again` called
//! the closure, the panic resumes from that call (and the watcher is left stopped);
//! when the loop called it, it is handled like a panic in a callback (the loop breaks
//! and `run` resumes it, or the error handler gets it), and the watcher stays quiet
//! until restarted.

use crate::error::PanicPayload;
use crate::error::{Error, Result};
use crate::event_loop::Loop;
use crate::sys::secs;
use crate::sys::zeroed;
use crate::watcher::{kind, watcher_of, Watcher, WatcherCore};
use libev_sys as ffi;
use std::cell::{Cell, RefCell};
use std::fmt;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::time::Duration;

type Reschedule = Box<dyn FnMut(Duration) -> Duration>;

kind! {
    /// Marker for periodic watchers.
    PeriodicKind: ev_periodic, "periodic", ev_periodic_start / ev_periodic_stop,
        extra = PeriodicExtra;
    {
        // libev calls the reschedule closure from inside ev_periodic_start: a panic
        // there is re-raised once the start has returned.
        fn around_start(w: &WatcherCore<Self>, start: impl FnOnce()) {
            w.rescheduling(start);
        }
    }
}

/// A periodic watcher's state beside the libev struct.
#[doc(hidden)]
pub struct PeriodicExtra {
    reschedule: RefCell<Option<Reschedule>>,
    /// True while `start` or `again` is inside libev, which may call the closure.
    direct: Cell<bool>,
    /// A panic from the closure during such a call, re-raised once libev returned.
    stashed: RefCell<Option<PanicPayload>>,
}

impl fmt::Debug for PeriodicExtra {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PeriodicExtra")
            .field(
                "reschedule",
                &self.reschedule.try_borrow().map(|r| r.is_some()),
            )
            .finish_non_exhaustive()
    }
}

impl PeriodicExtra {
    fn new(reschedule: Option<Reschedule>) -> PeriodicExtra {
        PeriodicExtra {
            reschedule: RefCell::new(reschedule),
            direct: Cell::new(false),
            stashed: RefCell::new(None),
        }
    }
}

/// A periodic watcher: see the [module docs](self).
pub type Periodic = Watcher<PeriodicKind>;

unsafe extern "C" fn reschedule_cb(w: *mut ffi::ev_periodic, now: f64) -> f64 {
    // SAFETY: libev calls this only for a periodic watcher being started or active,
    // made by Watcher::new; such a watcher is alive (rules 1 and 2).
    let this = unsafe { watcher_of::<PeriodicKind>(w) };
    let taken = this.extra.reschedule.borrow_mut().take();
    let Some(mut f) = taken else { return now };
    let r = catch_unwind(AssertUnwindSafe(|| f(secs(now))));
    *this.extra.reschedule.borrow_mut() = Some(f);
    match r {
        Ok(at) => at.as_secs_f64().max(now),
        Err(p) => {
            if this.extra.direct.get() {
                // Called by `start` or `again`: they re-raise it when libev returns.
                this.extra.stashed.borrow_mut().get_or_insert(p);
            } else if let Some(lp) = this.loop_inner() {
                lp.handle_panic(p);
            }
            // Far in the future: the watcher stays quiet until restarted.
            now + 1e9
        }
    }
}

impl Loop {
    /// A periodic watcher firing at `offset + N * interval` wall-clock time, or once at
    /// `offset` when `interval` is zero (`ev_periodic_init`). Not started yet.
    pub fn periodic(&self, offset: Duration, interval: Duration) -> Periodic {
        let mut raw: ffi::ev_periodic = zeroed();
        // SAFETY: `raw` is a fresh struct that nothing has started or points at.
        unsafe {
            ffi::ev_periodic_set(&mut raw, offset.as_secs_f64(), interval.as_secs_f64(), None)
        };
        Watcher::new(self, raw, PeriodicExtra::new(None))
    }

    /// A periodic watcher whose next time is computed by `reschedule(now)`, both as
    /// durations since the Unix epoch. A time before `now` is treated as `now`.
    pub fn periodic_with(
        &self,
        reschedule: impl FnMut(Duration) -> Duration + 'static,
    ) -> Periodic {
        let mut raw: ffi::ev_periodic = zeroed();
        // SAFETY: `raw` is a fresh struct that nothing has started or points at; the
        // callback finds its closure through `data` (rule 9).
        unsafe { ffi::ev_periodic_set(&mut raw, 0.0, 0.0, Some(reschedule_cb)) };
        let f: Reschedule = Box::new(reschedule);
        Watcher::new(self, raw, PeriodicExtra::new(Some(f)))
    }
}

impl WatcherCore<PeriodicKind> {
    /// The absolute time (since the Unix epoch) the watcher fires next (`ev_periodic_at`).
    pub fn at(&self) -> Duration {
        // SAFETY: rule 1: the struct lives in this allocation, and libev writes it
        // only on this thread (rule 7), never during this read.
        secs(unsafe { ffi::ev_periodic_at(self.as_raw()) })
    }

    /// The offset.
    pub fn offset(&self) -> Duration {
        // SAFETY: rule 1: the struct lives in this allocation, and libev writes it
        // only on this thread (rule 7), never during this read.
        secs(unsafe { (*self.as_raw()).offset })
    }

    /// The interval (zero for one-shot and rescheduled watchers).
    pub fn interval(&self) -> Duration {
        // SAFETY: rule 1: the struct lives in this allocation, and libev writes it
        // only on this thread (rule 7), never during this read.
        secs(unsafe { (*self.as_raw()).interval })
    }

    /// Changes offset and interval (`ev_periodic_set`); only while stopped. Keeps a
    /// reschedule closure if there is one.
    ///
    /// # Errors
    /// [`Error::WatcherActive`] while started.
    pub fn set(&self, offset: Duration, interval: Duration) -> Result<()> {
        if self.is_active() {
            return Err(Error::WatcherActive("set a periodic watcher"));
        }
        // SAFETY: the watcher is stopped (checked above), so libev allows the change;
        // the struct lives in this allocation (rule 1).
        unsafe {
            let rcb = (*self.as_raw()).reschedule_cb;
            ffi::ev_periodic_set(
                self.as_raw(),
                offset.as_secs_f64(),
                interval.as_secs_f64(),
                rcb,
            );
        }
        Ok(())
    }

    /// Recomputes the next time after the clock or the parameters changed
    /// (`ev_periodic_again`). Starts a stopped watcher that has a callback.
    ///
    /// # Errors
    /// [`Error::NoCallback`] for a stopped watcher without callback.
    pub fn again(&self) -> Result<()> {
        let l = self.raw_loop().ok_or(Error::LoopReleased)?;
        if !self.is_active() && !self.has_callback() {
            return Err(Error::NoCallback("periodic"));
        }
        // SAFETY: the struct and its live loop (rules 1 and 4); libev's again is a stop
        // and a start.
        self.rescheduling(|| unsafe { ffi::ev_periodic_again(l, self.as_raw()) });
        self.after_start(l);
        Ok(())
    }

    /// Runs a libev call that may call the reschedule closure on this stack, and
    /// re-raises a panic from the closure once libev has returned, with the watcher
    /// stopped (it was scheduled at a made-up time) but its callback kept.
    fn rescheduling(&self, call: impl FnOnce()) {
        let outer = self.extra.direct.replace(true);
        call();
        self.extra.direct.set(outer);
        let stashed = self.extra.stashed.borrow_mut().take();
        if let Some(p) = stashed {
            self.stop_inner(false);
            resume_unwind(p);
        }
    }
}
