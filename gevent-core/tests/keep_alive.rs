//! What keeps `Loop::run` from returning besides active watchers: a `LoopRef` guard
//! from `Loop::hold`, and the `ref_`/`unref` pair it wraps. A guard may be dropped from
//! a callback, and may outlive every `Loop` handle.

mod util;

use gevent_core::{Loop, LoopRef};
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;
use util::watchdog;

#[test]
fn a_held_loop_has_work_until_the_guard_is_dropped() {
    let lp = Loop::new().unwrap();
    let held = lp.hold();
    assert!(
        lp.run_nowait().unwrap(),
        "held: run_nowait reports work left"
    );
    drop(held);
    assert!(!lp.run_nowait().unwrap(), "released: nothing left");
}

#[test]
fn dropping_the_guard_in_a_callback_lets_run_return() {
    let lp = Loop::new().unwrap();
    let _dog = watchdog(&lp);
    let slot: Rc<RefCell<Option<LoopRef>>> = Rc::new(RefCell::new(Some(lp.hold())));
    let t = lp.timer(Duration::from_millis(1), Duration::ZERO);
    let s = slot.clone();
    t.start(move |_, _| drop(s.borrow_mut().take())).unwrap();
    lp.run().unwrap(); // returns once the timer has dropped the guard
    assert!(slot.borrow().is_none());
}

#[test]
fn ref_and_unref_balance_like_the_guard() {
    let lp = Loop::new().unwrap();
    lp.ref_();
    assert!(lp.run_nowait().unwrap());
    lp.unref();
    assert!(!lp.run_nowait().unwrap());
}

#[test]
fn a_guard_outlives_the_last_loop_handle() {
    let lp = Loop::new().unwrap();
    let held = lp.hold();
    drop(lp);
    // The guard's own reference keeps the loop until its ev_unref has run.
    drop(held);
}
