//! `sleep`, `idle`, and who is running.

use crate::error::Result;
use crate::greenlet;
use crate::hub::{get_hub, Wait, Waker};
use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

/// Suspends the current greenlet for `d` (gevent's `sleep`), with the shape of std's
/// `thread::sleep`, so that code ported by swapping the import compiles as it was.
/// `sleep(Duration::ZERO)` yields: every greenlet that is ready to run gets to run
/// first.
///
/// Where no switch is possible (in the hub itself, while the thread unwinds from a
/// panic, during the thread's exit) it blocks the thread for `d`, as std's does; a
/// switch into it from something else than its timer ends it early.
/// [`try_sleep`] reports those cases instead.
///
/// ```
/// use gevent_hub::{sleep, spawn};
/// use std::time::Duration;
///
/// let g = spawn(|| sleep(Duration::from_millis(1)));
/// sleep(Duration::ZERO); // g starts, and parks in its sleep
/// g.join().unwrap();
/// ```
#[inline]
pub fn sleep(d: Duration) {
    if let Err(e) = try_sleep(d) {
        sleep_without_switching(d, &e);
    }
}

#[cold]
fn sleep_without_switching(d: Duration, e: &crate::Error) {
    use crate::Error;
    match e {
        // Woken early by a foreign switch: as a spurious wake-up, it ends the sleep.
        Error::InvalidSwitch(_) => {}
        _ if d.is_zero() => std::thread::yield_now(),
        _ => std::thread::sleep(d),
    }
}

/// [`sleep`] that says why it could not sleep cooperatively instead of blocking the
/// thread.
///
/// # Errors
/// [`Error::BlockingInHub`](crate::Error::BlockingInHub) in the hub;
/// [`Error::Unwinding`](crate::Error::Unwinding) during a panic;
/// [`Error::ThreadExiting`](crate::Error::ThreadExiting) during the thread's exit;
/// [`Error::InvalidSwitch`](crate::Error::InvalidSwitch) if something else switched
/// into it.
#[inline] // one `ret` less after the switch back (see `greenlet::switch_msg`)
pub fn try_sleep(d: Duration) -> Result<()> {
    if d.is_zero() {
        // A yield: our wake-up goes behind everything already queued.
        return crate::hub::yield_now();
    }
    park_until_fired("sleep", |fire| {
        let t = get_hub().timer_from_now(d);
        t.start(move |_, _| fire.fire())?;
        Ok(t)
    })
}

/// Waits until the hub has nothing else to do (an idle watcher fires), gevent's `idle`.
///
/// # Errors
/// As [`sleep`].
pub fn idle() -> Result<()> {
    park_until_fired("idle", |fire| {
        let i = get_hub().get_loop().idle();
        i.start(move |w, _| {
            w.stop();
            fire.fire();
        })?;
        Ok(i)
    })
}

/// What a watcher's callback calls to end a [`park_until_fired`].
struct Fire {
    fired: Rc<Cell<bool>>,
    waker: Waker,
}

impl Fire {
    fn fire(&self) {
        self.fired.set(true);
        // From a watcher callback of this crate's: the wake-up may switch in place.
        self.waker.wake_now();
    }
}

/// Parks until the watcher that `arm` starts calls [`Fire::fire`], keeping the
/// watcher alive until then.
#[inline] // the switch back returns through it (see `greenlet::switch_msg`)
fn park_until_fired<W>(what: &'static str, arm: impl FnOnce(Fire) -> Result<W>) -> Result<()> {
    let w = Wait::new(what)?;
    let fired = Rc::new(Cell::new(false));
    let _watcher = arm(Fire {
        fired: fired.clone(),
        waker: w.waker(),
    })?;
    while !fired.get() {
        w.park()?;
    }
    Ok(())
}

/// The running greenlet's id (the main greenlet and the hub have ids too).
pub fn current_id() -> u64 {
    greenlet::current_rc().id()
}

/// The running greenlet's name.
pub fn current_name() -> String {
    greenlet::current_rc().name().to_owned()
}
