//! `sleep`, `idle`, and who is running.

use crate::error::Result;
use crate::greenlet;
use crate::hub::{get_hub, Wait};
use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

/// Suspends the current greenlet for `d` (gevent's `sleep`). `sleep(Duration::ZERO)`
/// yields: every greenlet that is ready to run gets to run first.
///
/// # Errors
/// [`Error::BlockingInHub`](crate::Error::BlockingInHub) in the hub; [`Error::Unwinding`](crate::Error::Unwinding) during a panic.
#[inline] // one `ret` less after the switch back (see `greenlet::switch_msg`)
pub fn sleep(d: Duration) -> Result<()> {
    let w = Wait::new("sleep")?;
    if d.is_zero() {
        // A yield: our wake-up goes behind everything already queued.
        w.wake_queued();
        w.park()?;
        return Ok(());
    }
    let wk = w.waker();
    let fired = Rc::new(Cell::new(false));
    let f2 = fired.clone();
    let t = get_hub().timer_from_now(d);
    t.start(move |_, _| {
        f2.set(true);
        wk.wake_now();
    })?;
    while !fired.get() {
        w.park()?;
    }
    Ok(())
}

/// Waits until the hub has nothing else to do (an idle watcher fires), gevent's `idle`.
///
/// # Errors
/// As [`sleep`].
pub fn idle() -> Result<()> {
    let w = Wait::new("idle")?;
    let fired = Rc::new(Cell::new(false));
    let f2 = fired.clone();
    let wk = w.waker();
    let i = get_hub().get_loop().idle();
    i.start(move |w, _| {
        w.stop();
        f2.set(true);
        wk.wake_now();
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
