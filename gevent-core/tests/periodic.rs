//! `Periodic` watchers on the wall clock: a one-shot at an absolute time, a fixed
//! interval, and a reschedule closure (including one that answers with a time in the
//! past, which libev would abort on).

mod util;

use gevent_core::{Error, Events, Loop};
use std::cell::{Cell, RefCell};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::time::Duration;
use util::watchdog;

const MS: Duration = Duration::from_millis(1);

/// Wall-clock times pass through libev as `f64` seconds since 1970, which resolve
/// about 0.25 µs today: compare them to within a microsecond.
fn assert_close(a: Duration, b: Duration) {
    assert!(a.abs_diff(b) <= Duration::from_micros(1), "{a:?} vs {b:?}");
}

#[test]
fn one_shot_fires_once_at_its_absolute_time() {
    let lp = Loop::new().unwrap();
    let _dog = watchdog(&lp);
    let at = lp.now() + Duration::from_millis(2);
    let p = lp.periodic(at, Duration::ZERO);
    assert_close(p.offset(), at);
    assert_eq!(p.interval(), Duration::ZERO);

    let fired = Rc::new(RefCell::new(Vec::new()));
    let f = fired.clone();
    p.start(move |w, revents| {
        let now = w.get_loop().unwrap().now();
        f.borrow_mut().push((revents, now, w.is_active()));
    })
    .unwrap();
    assert_close(p.at(), at);
    // The one-shot stops itself, so `run` returns after it fired.
    lp.run().unwrap();

    let fired = fired.borrow();
    assert_eq!(fired.len(), 1, "fired {} times", fired.len());
    let (revents, now, active) = fired[0];
    assert_eq!(revents, Events::PERIODIC);
    assert!(now >= at, "fired at {now:?}, before {at:?}");
    assert!(!active);
    assert!(!p.is_active());
}

#[test]
fn one_shot_in_the_past_fires_at_once() {
    let lp = Loop::new().unwrap();
    let _dog = watchdog(&lp);
    let p = lp.periodic(lp.now() - Duration::from_secs(3600), Duration::ZERO);
    let fired = Rc::new(Cell::new(0));
    let f = fired.clone();
    p.start(move |_, _| f.set(f.get() + 1)).unwrap();
    lp.run_once().unwrap();
    assert_eq!(fired.get(), 1);
    assert!(!p.is_active());
}

#[test]
fn interval_fires_repeatedly_on_its_grid() {
    let lp = Loop::new().unwrap();
    let _dog = watchdog(&lp);
    // Every millisecond of wall-clock time, counted from the epoch.
    let p = lp.periodic(Duration::ZERO, MS);
    assert_eq!(p.interval(), MS);
    let ats = Rc::new(RefCell::new(Vec::new()));
    let a = ats.clone();
    p.start(move |w, revents| {
        assert_eq!(revents, Events::PERIODIC);
        // Before the callback runs, libev has moved `at` to the next grid point
        // after the loop's current time.
        let now = w.get_loop().unwrap().now();
        assert!(w.at() > now, "at {:?} <= now {now:?}", w.at());
        a.borrow_mut().push(w.at());
        if a.borrow().len() == 3 {
            w.stop();
        }
    })
    .unwrap();
    lp.run().unwrap();

    let ats = ats.borrow();
    assert_eq!(ats.len(), 3);
    assert!(ats.windows(2).all(|p| p[0] < p[1]), "{ats:?}");
    for at in ats.iter() {
        // On the grid: a whole number of milliseconds.
        let off_grid = at.as_nanos() % MS.as_nanos();
        let dist = off_grid.min(MS.as_nanos() - off_grid);
        assert!(dist <= 1_000, "{at:?} is not on the 1 ms grid");
    }
}

#[test]
fn reschedule_closure_is_asked_and_its_answer_is_used() {
    let lp = Loop::new().unwrap();
    let _dog = watchdog(&lp);
    let asked = Rc::new(RefCell::new(Vec::new()));
    let answers = Rc::new(RefCell::new(Vec::new()));
    let (q, a) = (asked.clone(), answers.clone());
    let p = lp.periodic_with(move |now| {
        q.borrow_mut().push(now);
        let next = now + MS;
        a.borrow_mut().push(next);
        next
    });
    assert!(asked.borrow().is_empty(), "asked before start");

    let fired = Rc::new(Cell::new(0));
    let (f, a) = (fired.clone(), answers.clone());
    p.start(move |w, revents| {
        assert_eq!(revents, Events::PERIODIC);
        // Asked again before each callback, and that answer is the next time.
        let answers = a.borrow();
        assert_eq!(answers.len(), f.get() + 2);
        assert_close(w.at(), *answers.last().unwrap());
        f.set(f.get() + 1);
        if f.get() == 3 {
            w.stop();
        }
    })
    .unwrap();
    // Starting asks once, with the loop's time, and schedules that answer.
    assert_eq!(asked.borrow().len(), 1);
    assert_close(asked.borrow()[0], lp.now());
    assert_close(p.at(), answers.borrow()[0]);

    lp.run().unwrap();
    assert_eq!(fired.get(), 3);
    let asked = asked.borrow();
    assert!(asked.windows(2).all(|t| t[0] <= t[1]), "{asked:?}");
}

#[test]
fn reschedule_into_the_past_is_clamped_to_now() {
    let lp = Loop::new().unwrap();
    let _dog = watchdog(&lp);
    // libev asserts that a reschedule callback never answers with a past time.
    let p = lp.periodic_with(|now| now.saturating_sub(Duration::from_secs(60)));
    let fired = Rc::new(Cell::new(0));
    let f = fired.clone();
    p.start(move |w, _| {
        let now = w.get_loop().unwrap().now();
        assert!(w.at() + Duration::from_micros(1) >= now, "{:?}", w.at());
        f.set(f.get() + 1);
        if f.get() == 3 {
            w.stop();
        }
    })
    .unwrap();
    lp.run().unwrap();
    assert_eq!(fired.get(), 3);

    // The epoch itself, the earliest answer there is.
    let zero = lp.periodic_with(|_| Duration::ZERO);
    let f = fired.clone();
    zero.start(move |w, _| {
        f.set(f.get() + 1);
        w.stop();
    })
    .unwrap();
    lp.run().unwrap();
    assert_eq!(fired.get(), 4);
}

#[test]
fn reschedule_panic_inside_the_loop_resumes_from_run() {
    let lp = Loop::new().unwrap();
    let _dog = watchdog(&lp);
    let calls = Rc::new(Cell::new(0));
    let c = calls.clone();
    let p = lp.periodic_with(move |now| {
        c.set(c.get() + 1);
        if c.get() == 2 {
            panic!("reschedule boom");
        }
        now + MS
    });
    p.start(|_, _| {}).unwrap();
    let err = catch_unwind(AssertUnwindSafe(|| lp.run())).unwrap_err();
    assert_eq!(err.downcast_ref::<&str>(), Some(&"reschedule boom"));
    assert_eq!(calls.get(), 2);
}

#[test]
fn reschedule_panic_during_start_surfaces_from_start() {
    let lp = Loop::new().unwrap();
    let _dog = watchdog(&lp);
    let p = lp.periodic_with(|_| panic!("reschedule boom at start"));
    let err = catch_unwind(AssertUnwindSafe(|| p.start(|_, _| {}))).unwrap_err();
    assert_eq!(
        err.downcast_ref::<&str>(),
        Some(&"reschedule boom at start")
    );
    // Not left running at a made-up time: nothing keeps the loop alive.
    assert!(!p.is_active());
    lp.run().unwrap();
}

#[test]
fn reschedule_panic_during_again_surfaces_from_again() {
    let lp = Loop::new().unwrap();
    let calls = Rc::new(Cell::new(0));
    let c = calls.clone();
    let p = lp.periodic_with(move |now| {
        c.set(c.get() + 1);
        if c.get() == 2 {
            panic!("reschedule boom in again");
        }
        now + Duration::from_secs(3600)
    });
    p.start(|_, _| {}).unwrap();
    let err = catch_unwind(AssertUnwindSafe(|| p.again())).unwrap_err();
    assert_eq!(
        err.downcast_ref::<&str>(),
        Some(&"reschedule boom in again")
    );
    // Stopped, but it can be recomputed again: the callback was kept.
    assert!(!p.is_active());
    assert!(p.has_callback());
    p.again().unwrap();
    assert!(p.is_active());
    assert_eq!(calls.get(), 3);
}

#[test]
fn set_is_refused_while_active() {
    let lp = Loop::new().unwrap();
    let far = lp.now() + Duration::from_secs(3600);
    let p = lp.periodic(far, Duration::ZERO);
    p.start(|_, _| {}).unwrap();
    assert!(matches!(
        p.set(Duration::ZERO, MS),
        Err(Error::WatcherActive(_))
    ));
    assert_close(p.offset(), far);
    assert_eq!(p.interval(), Duration::ZERO);

    p.stop();
    p.set(Duration::from_secs(5), Duration::from_secs(60))
        .unwrap();
    assert_eq!(p.offset(), Duration::from_secs(5));
    assert_eq!(p.interval(), Duration::from_secs(60));
}

#[test]
fn again_recomputes_the_time_after_a_change() {
    let lp = Loop::new().unwrap();
    let _dog = watchdog(&lp);
    let p = lp.periodic(lp.now() + Duration::from_secs(3600), Duration::ZERO);
    let fired = Rc::new(Cell::new(0));
    let f = fired.clone();
    p.start(move |_, _| f.set(f.get() + 1)).unwrap();
    p.stop();
    assert_eq!(p.again().unwrap_err(), Error::NoCallback("periodic"));

    p.set(lp.now() + MS, Duration::ZERO).unwrap();
    let f = fired.clone();
    p.start(move |_, _| f.set(f.get() + 1)).unwrap();
    // Recomputing from the (unchanged) parameters keeps the new, near time.
    p.again().unwrap();
    assert!(p.is_active());
    lp.run().unwrap();
    assert_eq!(fired.get(), 1);
}
