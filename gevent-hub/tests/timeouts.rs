//! `Timeout` and `with_timeout`: which of several nested timeouts fires, with which
//! id, that a cancelled one never fires, and the non-unwinding timeout forms
//! (`join_timeout`, `Event::wait_timeout`).

mod util;

use gevent_hub::{
    sleep, spawn, try_sleep, with_timeout, with_timeout_value, Error, Event, Timeout,
    TimeoutExpired,
};
use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::time::Duration;
use util::WATCHDOG_LIMIT;

/// Far enough away that it never fires during a test.
const NEVER: Duration = Duration::from_secs(3600);
const SHORT: Duration = Duration::from_millis(10);

#[test]
fn an_inner_timeout_shorter_than_the_outer_fires_as_the_inner_and_the_outer_completes() {
    let r = with_timeout(WATCHDOG_LIMIT, || {
        let inner = with_timeout(SHORT, || try_sleep(NEVER));
        assert!(
            matches!(inner, Err(Error::TimedOut)),
            "the inner fired: {inner:?}"
        );
        // The outer body goes on after the inner timed out, and may block again.
        sleep(Duration::ZERO);
        "outer completed"
    });
    assert_eq!(r.unwrap(), "outer completed");
}

#[test]
fn after_the_inner_fires_the_outer_can_still_fire_as_the_outer() {
    let inner_fired = Rc::new(Cell::new(false));
    let f = inner_fired.clone();
    let r = with_timeout(Duration::from_millis(50), || {
        let inner = with_timeout(SHORT, || try_sleep(NEVER));
        f.set(matches!(inner, Err(Error::TimedOut)));
        sleep(NEVER);
        "not reached"
    });
    assert!(inner_fired.get());
    assert!(matches!(r, Err(Error::TimedOut)), "the outer fired: {r:?}");
}

#[test]
fn an_outer_timeout_shorter_than_the_inner_fires_as_the_outer() {
    let inner_returned = Rc::new(Cell::new(false));
    let ir = inner_returned.clone();
    let r = with_timeout(SHORT, || {
        let inner = with_timeout(NEVER, || try_sleep(NEVER));
        // Not reached: the outer's expiry passes through the inner with_timeout.
        ir.set(true);
        inner
    });
    assert!(matches!(r, Err(Error::TimedOut)), "{r:?}");
    assert!(
        !inner_returned.get(),
        "the inner with_timeout did not swallow the outer's expiry"
    );
}

/// Runs `f` under two raw timeouts and returns the expiry it unwound with.
fn expiry_of(outer: &Timeout, inner: &Timeout) -> TimeoutExpired {
    let p = catch_unwind(AssertUnwindSafe(|| try_sleep(NEVER)))
        .expect_err("a timeout interrupts the sleep");
    let e = *p
        .downcast_ref::<TimeoutExpired>()
        .expect("the payload is a TimeoutExpired");
    assert!(
        outer.is_expiry(&p) != inner.is_expiry(&p),
        "exactly one of them expired"
    );
    e
}

#[test]
fn the_expiry_payload_names_the_timeout_that_fired() {
    // Outer shorter.
    let outer = Timeout::start_new(SHORT).unwrap();
    let inner = Timeout::start_new(NEVER).unwrap();
    assert_ne!(outer.id(), inner.id());
    let e = expiry_of(&outer, &inner);
    assert_eq!(e, TimeoutExpired { id: outer.id() });
    assert!(!outer.pending() && inner.pending());
    drop((inner, outer));

    // Inner shorter.
    let outer = Timeout::start_new(NEVER).unwrap();
    let inner = Timeout::start_new(SHORT).unwrap();
    let e = expiry_of(&outer, &inner);
    assert_eq!(e, TimeoutExpired { id: inner.id() });
    assert!(outer.pending() && !inner.pending());
}

#[test]
fn a_cancelled_timeout_never_interrupts() {
    let t = Timeout::start_new(Duration::from_millis(1)).unwrap();
    assert!(t.pending());
    t.cancel();
    assert!(!t.pending());
    // Block for longer than the timeout was: a live one would fire in here.
    sleep(Duration::from_millis(20));
    sleep(Duration::ZERO);
    drop(t);

    // A timeout dropped without cancel is cancelled too.
    drop(Timeout::start_new(Duration::from_millis(1)).unwrap());
    sleep(Duration::from_millis(20));
}

#[test]
fn with_timeout_returns_the_value_when_in_time_and_cancels_its_timer() {
    assert_eq!(with_timeout(SHORT, || 7).unwrap(), 7);
    // The finished with_timeout's timer must not fire into later blocking calls.
    sleep(Duration::from_millis(30));
}

#[test]
fn a_timeout_started_in_a_greenlet_interrupts_that_greenlet_only() {
    let ev = Event::new();
    let e = ev.clone();
    let waiter = spawn(move || e.wait_timeout(WATCHDOG_LIMIT).unwrap());
    let sleeper = spawn(|| with_timeout(SHORT, || try_sleep(NEVER)));
    assert!(matches!(sleeper.join().unwrap(), Err(Error::TimedOut)));
    assert!(!waiter.ready(), "the other greenlet was not interrupted");
    ev.set();
    assert!(waiter.join().unwrap());
}

#[test]
fn join_timeout_returns_false_then_true() {
    let ev = Event::new();
    let e = ev.clone();
    let g = spawn(move || e.wait().unwrap());
    assert!(
        !g.join_timeout(SHORT).unwrap(),
        "still blocked on the event"
    );
    assert!(g.started() && !g.ready());
    ev.set();
    assert!(g.join_timeout(WATCHDOG_LIMIT).unwrap());
    assert!(g.successful());
}

#[test]
fn event_wait_timeout_returns_false_then_true() {
    let ev = Event::new();
    assert!(!ev.wait_timeout(SHORT).unwrap());
    let e = ev.clone();
    let setter = spawn(move || e.set());
    assert!(ev.wait_timeout(WATCHDOG_LIMIT).unwrap());
    assert!(setter.ready());
}

#[test]
fn a_timeout_that_expired_during_a_raw_switch_is_cancelled_with_it() {
    use gevent_hub::greenlet::{RawGreenlet, Value};
    let r = with_timeout(SHORT, || {
        // main's timeout expires while main is suspended here, not parked in the hub.
        let child = RawGreenlet::new(|_: Value| sleep(Duration::from_millis(50)));
        child.switch(()).unwrap();
        "finished"
    });
    // It finished without a blocking point of its own after the expiry; either outcome
    // is acceptable, but the timeout must be over once with_timeout has returned.
    assert!(matches!(r, Ok("finished") | Err(Error::TimedOut)), "{r:?}");
    let later = catch_unwind(|| try_sleep(Duration::ZERO));
    assert!(
        later.is_ok(),
        "a stale expiry hit a later sleep: {:?}",
        later.unwrap_err().downcast_ref::<TimeoutExpired>()
    );
}

/// gevent's `Timeout` can be started again once it expired or was cancelled; starting
/// it while it is pending is an error ("cancel it first").
#[test]
fn a_timeout_is_restartable_after_expiry_or_cancel() {
    let t = Timeout::new(Duration::from_millis(1));
    assert!(!t.pending(), "a new Timeout is not started");
    for round in 0..3 {
        t.start().unwrap();
        assert!(t.pending());
        assert!(
            matches!(t.start(), Err(Error::AlreadyPending)),
            "round {round}: started while pending"
        );
        let r = catch_unwind(AssertUnwindSafe(|| try_sleep(WATCHDOG_LIMIT)));
        let p = r.expect_err("the sleep is interrupted");
        assert!(t.is_expiry(&p), "round {round}: its own expiry");
        assert!(!t.pending());
    }
    // Cancelled, then started again: it fires again.
    t.start().unwrap();
    t.cancel();
    assert!(!t.pending());
    sleep(Duration::from_millis(5));
    t.start().unwrap();
    let p = catch_unwind(AssertUnwindSafe(|| try_sleep(WATCHDOG_LIMIT))).unwrap_err();
    assert!(t.is_expiry(&p));
}

/// A `Timeout` made in one greenlet and started in another interrupts the starter
/// (gevent: the timeout belongs to `getcurrent()` at `start`).
#[test]
fn a_timeout_interrupts_the_greenlet_that_started_it() {
    let t = Rc::new(Timeout::new(Duration::from_millis(1)));
    let t2 = t.clone();
    let g = spawn(move || {
        t2.start().unwrap();
        let p = catch_unwind(AssertUnwindSafe(|| try_sleep(WATCHDOG_LIMIT))).unwrap_err();
        t2.is_expiry(&p)
    });
    assert!(g.join().unwrap());
    assert!(!t.pending());
}

/// gevent's `with_timeout(seconds, f, timeout_value=v)`: `v` instead of an error.
#[test]
fn with_timeout_value_returns_the_value_given_for_an_expiry() {
    let r = with_timeout_value(Duration::from_millis(1), "timed out", || {
        sleep(WATCHDOG_LIMIT);
        "finished"
    });
    assert_eq!(r.unwrap(), "timed out");
    let r = with_timeout_value(WATCHDOG_LIMIT, "timed out", || "finished");
    assert_eq!(r.unwrap(), "finished");
}

/// gevent's silent form, `with Timeout(t, False): ...`, leaves the block without an
/// exception: here `with_timeout(..).ok()` gives `None`.
#[test]
fn the_silent_form_leaves_the_block_without_an_error() {
    let got = with_timeout(Duration::from_millis(1), || sleep(WATCHDOG_LIMIT)).ok();
    assert_eq!(got, None);
}
