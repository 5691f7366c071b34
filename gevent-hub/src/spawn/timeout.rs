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
use crate::greenlet::{current_rc, GreenletState, PanicPayload};
use crate::hub::{throw_into, try_get_hub};
use crate::ids::Ids;
use gevent_core::Timer;
use std::cell::RefCell;
use std::fmt;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::rc::Rc;
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

/// An interruption of the greenlet that started it, after its duration. Dropping it
/// cancels it.
///
/// As gevent's `Timeout`, it can be made unstarted ([`new`](Timeout::new)) and
/// [`start`](Timeout::start)ed later, by the greenlet it is to interrupt, and started
/// again once it has expired or been cancelled.
///
/// gevent's silent form, `with Timeout(t, False): ...`, which leaves the block
/// quietly on expiry, is [`with_timeout`]`(t, ..).ok()`:
///
/// ```
/// use gevent_hub::{sleep, with_timeout};
/// use std::time::Duration;
///
/// let got = with_timeout(Duration::from_millis(1), || {
///     sleep(Duration::from_secs(60));
///     "never"
/// })
/// .ok();
/// assert_eq!(got, None);
/// ```
#[must_use = "the timeout is cancelled as soon as it is dropped"]
pub struct Timeout {
    duration: Duration,
    id: u64,
    /// While started: the armed timer and the greenlet it interrupts.
    armed: RefCell<Option<(Timer, Rc<GreenletState>)>>,
}

impl fmt::Debug for Timeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Timeout")
            .field("id", &self.id)
            .field("duration", &self.duration)
            .field("pending", &self.pending())
            .finish()
    }
}

impl Timeout {
    /// A timeout of `d`, not started yet (gevent's `Timeout(seconds)`).
    pub fn new(d: Duration) -> Timeout {
        Timeout {
            duration: d,
            id: NEXT.with(Ids::next),
            armed: RefCell::new(None),
        }
    }

    /// Starts a timeout of `d` for the current greenlet.
    ///
    /// # Errors
    /// The hub's loop refused the timer (it is being destroyed).
    pub fn start_new(d: Duration) -> Result<Timeout> {
        let t = Timeout::new(d);
        t.start()?;
        Ok(t)
    }

    /// Arms it for the current greenlet: it expires its duration from now. A timeout
    /// that expired or was cancelled can be started again.
    ///
    /// # Errors
    /// [`Error::AlreadyPending`] if it is pending (cancel it first, as gevent says);
    /// the hub's loop refused the timer (it is being destroyed).
    pub fn start(&self) -> Result<()> {
        if self.pending() {
            return Err(Error::AlreadyPending);
        }
        self.cancel();
        let target = current_rc();
        let timer = try_get_hub()?.timer_from_now(self.duration);
        let (t2, id) = (target.clone(), self.id);
        timer.start(move |_, _| throw_into(&t2, Box::new(TimeoutExpired { id }), true))?;
        *self.armed.borrow_mut() = Some((timer, target));
        Ok(())
    }

    /// Its id, as carried by [`TimeoutExpired`].
    pub fn id(&self) -> u64 {
        self.id
    }

    /// How long after its start it expires.
    pub fn duration(&self) -> Duration {
        self.duration
    }

    /// True from its start until it expires or is cancelled.
    pub fn pending(&self) -> bool {
        self.armed
            .borrow()
            .as_ref()
            .is_some_and(|(t, _)| t.is_active())
    }

    /// Cancels it, including an expiry that is waiting for the greenlet's next
    /// blocking call (it expired while the greenlet was not parked in the hub).
    pub fn cancel(&self) {
        let armed = self.armed.borrow_mut().take();
        if let Some((timer, target)) = armed {
            timer.stop();
            crate::hub::cancel_pending_throw(&target, |p| self.is_expiry(p));
        }
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
/// # Examples
/// ```
/// use gevent_hub::{sleep, with_timeout, Error};
/// use std::time::Duration;
///
/// let r = with_timeout(Duration::from_millis(1), || sleep(Duration::from_secs(60)));
/// assert!(matches!(r, Err(Error::TimedOut)));
/// assert_eq!(with_timeout(Duration::from_secs(60), || 7).unwrap(), 7);
/// ```
///
/// # Errors
/// [`Error::TimedOut`] if it was interrupted.
///
/// # Panics
/// Panics from `f` (including other timeouts' expiries) propagate unchanged.
pub fn with_timeout<R>(d: Duration, f: impl FnOnce() -> R) -> Result<R> {
    let t = Timeout::start_new(d)?;
    let r = match catch_unwind(AssertUnwindSafe(f)) {
        // Expired where `f` could not unwind (a monkey-patched call, which then failed):
        // the expiry is delivered here.
        Ok(v) => match crate::hub::take_deferred_throw(|p| t.is_expiry(p)) {
            Some(p) => {
                drop(v);
                Err(p)
            }
            None => Ok(v),
        },
        Err(p) => Err(p),
    };
    t.cancel();
    match r {
        Ok(v) => Ok(v),
        Err(p) if t.is_expiry(&p) => Err(Error::TimedOut),
        Err(p) => resume_unwind(p),
    }
}

/// [`with_timeout`] that returns `timeout_value` when `f` is interrupted (gevent's
/// `with_timeout(seconds, f, timeout_value=...)`).
///
/// # Errors
/// The hub's loop refused the timer (it is being destroyed).
///
/// # Panics
/// As [`with_timeout`].
pub fn with_timeout_value<R>(d: Duration, timeout_value: R, f: impl FnOnce() -> R) -> Result<R> {
    match with_timeout(d, f) {
        Err(Error::TimedOut) => Ok(timeout_value),
        r => r,
    }
}

impl Drop for Timeout {
    fn drop(&mut self) {
        self.cancel();
    }
}
