//! `Timer` watchers: one-shot and repeating expiry, ordering by `after`, and the
//! per-type API (`again`, `remaining`, `set`, `set_repeat`).

mod util;

use gevent_core::{Error, Events, Loop};
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;
use util::watchdog;

const MS: Duration = Duration::from_millis(1);

#[test]
fn one_shot_fires_once_and_becomes_inactive() {
    let lp = Loop::new().unwrap();
    let _dog = watchdog(&lp);
    let calls = Rc::new(RefCell::new(Vec::new()));
    let t = lp.timer(MS, Duration::ZERO);
    let c = calls.clone();
    t.start(move |w, revents| {
        // libev stops a one-shot timer before its callback runs.
        c.borrow_mut().push((revents, w.is_active()));
    })
    .unwrap();
    assert!(t.is_active());
    // `run` returns by itself: the expired timer no longer keeps the loop alive.
    lp.run().unwrap();

    assert_eq!(*calls.borrow(), [(Events::TIMER, false)]);
    assert!(!t.is_active());
    assert!(!t.is_pending());
}

#[test]
fn repeating_fires_until_its_callback_stops_it() {
    let lp = Loop::new().unwrap();
    let _dog = watchdog(&lp);
    let calls = Rc::new(Cell::new(0));
    let t = lp.timer(MS, MS);
    let c = calls.clone();
    t.start(move |w, revents| {
        assert!(revents.contains(Events::TIMER));
        // Still active: a repeating timer is re-armed before its callback.
        assert!(w.is_active());
        c.set(c.get() + 1);
        if c.get() == 5 {
            w.stop();
        }
    })
    .unwrap();
    lp.run().unwrap();
    assert_eq!(calls.get(), 5);
    assert!(!t.is_active());
}

#[test]
fn timers_fire_in_order_of_expiry_not_of_start() {
    let lp = Loop::new().unwrap();
    let _dog = watchdog(&lp);
    let order = Rc::new(RefCell::new(Vec::new()));
    let timers: Vec<_> = [3u64, 1, 2]
        .into_iter()
        .map(|ms| {
            let t = lp.timer(Duration::from_millis(ms), Duration::ZERO);
            let o = order.clone();
            t.start(move |_, _| o.borrow_mut().push(ms)).unwrap();
            t
        })
        .collect();
    lp.run().unwrap();
    // Even when all three are due in the same iteration (a slow machine, valgrind),
    // libev invokes expired timers earliest first.
    assert_eq!(*order.borrow(), [1, 2, 3]);
    drop(timers);
}

#[test]
fn remaining_counts_down_and_is_zero_when_stopped() {
    let lp = Loop::new().unwrap();
    let _dog = watchdog(&lp);
    let after = Duration::from_secs(5);
    let long = Rc::new(lp.timer(after, Duration::ZERO));
    assert_eq!(long.remaining(), Duration::ZERO, "not started yet");
    long.start(|_, _| panic!("the long timer must not fire"))
        .unwrap();
    let at_start = long.remaining();
    assert!(
        at_start > Duration::ZERO && at_start <= after,
        "{at_start:?}"
    );

    // Once a 1 ms timer has expired, the loop's clock has moved on by at least 1 ms.
    let seen = Rc::new(Cell::new(None));
    let short = lp.timer(MS, Duration::ZERO);
    let (l, s) = (long.clone(), seen.clone());
    short
        .start(move |_, _| {
            s.set(Some(l.remaining()));
            l.stop();
        })
        .unwrap();
    lp.run().unwrap();

    let later = seen.get().expect("the short timer never fired");
    assert!(later < at_start, "{later:?} !< {at_start:?}");
    assert!(later <= after - MS, "{later:?}");
    assert_eq!(long.remaining(), Duration::ZERO, "stopped");
}

#[test]
fn set_is_refused_while_active_and_allowed_when_stopped() {
    let lp = Loop::new().unwrap();
    let _dog = watchdog(&lp);
    let t = lp.timer(Duration::from_secs(60), Duration::ZERO);
    t.start(|_, _| {}).unwrap();
    assert!(matches!(t.set(MS, MS), Err(Error::WatcherActive(_))));
    // The refused set changed nothing.
    assert_eq!(t.repeat(), Duration::ZERO);
    assert!(t.remaining() > MS);

    t.stop();
    t.set(MS, Duration::from_millis(2)).unwrap();
    assert_eq!(t.repeat(), Duration::from_millis(2));
    // The new `after` is used: the timer now fires in 1 ms, not in a minute.
    let fired = Rc::new(Cell::new(false));
    let f = fired.clone();
    t.start(move |w, _| {
        f.set(true);
        w.stop();
    })
    .unwrap();
    lp.run().unwrap();
    assert!(fired.get());
}

#[test]
fn set_repeat_on_a_running_timer_takes_effect_at_the_next_expiry() {
    let lp = Loop::new().unwrap();
    let _dog = watchdog(&lp);
    let calls = Rc::new(Cell::new(0));
    let t = lp.timer(MS, MS);
    let c = calls.clone();
    t.start(move |w, _| {
        c.set(c.get() + 1);
        if c.get() == 3 {
            // The next expiry was already scheduled before this callback; after it
            // the timer is one-shot and stops by itself.
            w.set_repeat(Duration::ZERO);
            assert_eq!(w.repeat(), Duration::ZERO);
        }
    })
    .unwrap();
    lp.run().unwrap();
    assert_eq!(calls.get(), 4);
    assert!(!t.is_active());
}

#[test]
fn again_restarts_an_active_timer_at_repeat_from_now() {
    let lp = Loop::new().unwrap();
    let _dog = watchdog(&lp);
    let t = lp.timer(Duration::from_secs(60), MS);
    let calls = Rc::new(Cell::new(0));
    let c = calls.clone();
    t.start(move |w, _| {
        c.set(c.get() + 1);
        w.stop();
    })
    .unwrap();
    assert!(t.remaining() > Duration::from_secs(1));

    t.again().unwrap();
    assert!(t.is_active());
    assert!(t.remaining() <= MS, "{:?}", t.remaining());
    // It fires after `repeat`, long before the original minute.
    lp.run().unwrap();
    assert_eq!(calls.get(), 1);
}

#[test]
fn again_with_zero_repeat_stops_but_keeps_the_callback() {
    let lp = Loop::new().unwrap();
    let _dog = watchdog(&lp);
    let t = lp.timer(Duration::from_secs(60), Duration::ZERO);
    let calls = Rc::new(Cell::new(0));
    let c = calls.clone();
    t.start(move |w, _| {
        c.set(c.get() + 1);
        w.stop();
    })
    .unwrap();

    t.again().unwrap();
    assert!(!t.is_active());
    assert!(t.has_callback());
    // A stopped timer with zero repeat: `again` has nothing to do.
    t.again().unwrap();
    assert!(!t.is_active());

    // With a repeat, `again` starts it with the kept callback.
    t.set_repeat(MS);
    t.again().unwrap();
    assert!(t.is_active());
    lp.run().unwrap();
    assert_eq!(calls.get(), 1);
}

#[test]
fn again_rearms_a_fired_one_shot_with_its_callback() {
    let lp = Loop::new().unwrap();
    let _dog = watchdog(&lp);
    let t = lp.timer(MS, Duration::ZERO);
    let calls = Rc::new(Cell::new(0));
    let c = calls.clone();
    t.start(move |_, _| c.set(c.get() + 1)).unwrap();
    lp.run().unwrap();
    assert_eq!(calls.get(), 1);
    assert!(!t.is_active());

    // An inactivity timeout pushed back after it expired.
    t.set_repeat(MS);
    t.again().unwrap();
    let c = calls.clone();
    t.set_callback(move |w, _| {
        c.set(c.get() + 10);
        w.stop();
    });
    lp.run().unwrap();
    assert_eq!(calls.get(), 11);
}

#[test]
fn again_without_a_callback_is_an_error() {
    let lp = Loop::new().unwrap();
    let fresh = lp.timer(Duration::ZERO, MS);
    assert_eq!(fresh.again().unwrap_err(), Error::NoCallback("timer"));
    assert!(!fresh.is_active());

    // `stop` drops the callback, so a stopped timer cannot be restarted by `again`.
    let stopped = lp.timer(Duration::from_secs(60), MS);
    stopped.start(|_, _| {}).unwrap();
    stopped.stop();
    assert!(!stopped.has_callback());
    assert_eq!(stopped.again().unwrap_err(), Error::NoCallback("timer"));
    assert!(!stopped.is_active());
}
