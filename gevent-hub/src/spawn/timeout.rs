//! `Timeout`: interrupt the greenlet that started it at its blocking point.
//!
//! Like gevent's `Timeout`, it raises in the greenlet (here: unwinds with a
//! [`TimeoutExpired`] payload) when it expires while that greenlet is blocked, or at its
//! next blocking call. [`with_timeout`] wraps a closure and turns its own expiry into
//! [`Error::TimedOut`]; an expiry of some *other* timeout passes through untouched, so
//! timeouts nest.
//!
//! Blocking calls that take a timeout argument (`join_timeout`, `Event::wait_timeout`,
//! socket read timeouts) do not unwind: they return a value or an error.

use crate::error::{Error, Result};
use crate::greenlet::{current_rc, PanicPayload};
use crate::hub::{get_hub, throw_into};
use crate::ids::Ids;
use gevent_core::Timer;
use std::fmt;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::time::Duration;

/// The payload a [`Timeout`] unwinds with; `id` names the timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeoutExpired {
    /// The [`Timeout::id`] of the timeout that expired.
    pub id: u64,
}

thread_local! {
    static NEXT: Ids = const { Ids::new() };
}

/// A pending interruption of the current greenlet. Dropping it cancels it.
#[must_use = "the timeout is cancelled as soon as it is dropped"]
pub struct Timeout {
    timer: Timer,
    id: u64,
    target: std::rc::Rc<crate::greenlet::GreenletState>,
}

impl fmt::Debug for Timeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Timeout")
            .field("id", &self.id)
            .field("pending", &self.pending())
            .finish()
    }
}

impl Timeout {
    /// Starts a timeout of `d` for the current greenlet.
    ///
    /// # Errors
    /// The hub's loop refused the timer (it is being destroyed).
    pub fn start_new(d: Duration) -> Result<Timeout> {
        let id = NEXT.with(Ids::next);
        let target = current_rc();
        let timer = get_hub().timer_from_now(d);
        let t2 = target.clone();
        timer.start(move |_, _| throw_into(&t2, Box::new(TimeoutExpired { id }), true))?;
        Ok(Timeout { timer, id, target })
    }

    /// Its id, as carried by [`TimeoutExpired`].
    pub fn id(&self) -> u64 {
        self.id
    }

    /// True until it expires or is cancelled.
    pub fn pending(&self) -> bool {
        self.timer.is_active()
    }

    /// Cancels it, including an expiry that is waiting for the greenlet's next
    /// blocking call (it expired while the greenlet was not parked in the hub).
    pub fn cancel(&self) {
        self.timer.stop();
        crate::hub::cancel_pending_throw(&self.target, |p| self.is_expiry(p));
    }

    /// True if `payload` is this timeout's expiry.
    pub fn is_expiry(&self, payload: &PanicPayload) -> bool {
        payload
            .downcast_ref::<TimeoutExpired>()
            .is_some_and(|t| t.id == self.id)
    }
}

/// Runs `f`, interrupting it after `d` (gevent's `with_timeout`).
///
/// # Errors
/// [`Error::TimedOut`] if it was interrupted.
///
/// # Panics
/// Panics from `f` (including other timeouts' expiries) propagate unchanged.
pub fn with_timeout<R>(d: Duration, f: impl FnOnce() -> R) -> Result<R> {
    let t = Timeout::start_new(d)?;
    let r = catch_unwind(AssertUnwindSafe(f));
    t.cancel();
    match r {
        Ok(v) => Ok(v),
        Err(p) if t.is_expiry(&p) => Err(Error::TimedOut),
        Err(p) => resume_unwind(p),
    }
}

impl Drop for Timeout {
    fn drop(&mut self) {
        self.cancel();
    }
}
