//! Durations far beyond any real wait (`Duration::MAX` and its neighbours) mean
//! "never": timers, periodics and stat watchers accept them and read them back without
//! panicking, and loop settings given such a value neither abort the process nor turn
//! into a system error.

mod util;

use gevent_core::{Events, Loop};
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;
use util::{watchdog, Pipe, TempDir};

/// Far enough in the future to be "never" whatever the clock says: half of what a
/// `Duration` can hold (libev's `double` time rounds `Duration::MAX` itself).
const NEVER: Duration = Duration::from_secs(u64::MAX / 2);

#[test]
fn a_timer_repeating_every_duration_max_fires_once_and_then_never() {
    let lp = Loop::new().unwrap();
    let _dog = watchdog(&lp);
    let t = lp.timer(Duration::ZERO, Duration::MAX);
    assert_eq!(t.repeat(), Duration::MAX);

    let seen = Rc::new(RefCell::new(Vec::new()));
    let s = seen.clone();
    t.start(move |w, revents| {
        s.borrow_mut().push((revents, w.repeat(), w.remaining()));
    })
    .unwrap();
    lp.run_once().unwrap();
    // Rescheduled "never": still active, nothing more fires.
    lp.run_nowait().unwrap();

    let seen = seen.borrow();
    assert_eq!(seen.len(), 1, "{seen:?}");
    let (revents, repeat, remaining) = seen[0];
    assert_eq!(revents, Events::TIMER);
    assert_eq!(repeat, Duration::MAX);
    assert!(remaining >= NEVER, "{remaining:?}");
    assert!(t.is_active());
    assert!(t.remaining() >= NEVER, "{:?}", t.remaining());
    t.again().unwrap();
    assert!(t.remaining() >= NEVER, "{:?}", t.remaining());
}

#[test]
fn a_timer_due_after_duration_max_never_fires() {
    let lp = Loop::new().unwrap();
    let t = lp.timer(Duration::MAX, Duration::ZERO);
    let fired = Rc::new(Cell::new(false));
    let f = fired.clone();
    t.start(move |_, _| f.set(true)).unwrap();
    lp.run_nowait().unwrap();
    assert!(!fired.get());
    assert!(t.remaining() >= NEVER, "{:?}", t.remaining());
    t.set_repeat(Duration::MAX);
    assert_eq!(t.repeat(), Duration::MAX);
}

#[test]
fn a_periodic_with_a_duration_max_interval_is_due_never() {
    let lp = Loop::new().unwrap();
    let p = lp.periodic(Duration::ZERO, Duration::MAX);
    assert_eq!(p.interval(), Duration::MAX);
    let fired = Rc::new(Cell::new(false));
    let f = fired.clone();
    p.start(move |_, _| f.set(true)).unwrap();
    assert!(p.at() >= NEVER, "{:?}", p.at());
    lp.run_nowait().unwrap();
    assert!(!fired.get());
    p.again().unwrap();
    assert!(p.at() >= NEVER, "{:?}", p.at());
}

#[test]
fn a_periodic_at_offset_duration_max_is_due_never() {
    let lp = Loop::new().unwrap();
    let p = lp.periodic(Duration::MAX, Duration::ZERO);
    assert_eq!(p.offset(), Duration::MAX);
    p.start(|_, _| panic!("fired at the end of time")).unwrap();
    assert_eq!(p.at(), Duration::MAX);
    lp.run_nowait().unwrap();
}

#[test]
fn a_reschedule_closure_may_answer_duration_max() {
    let lp = Loop::new().unwrap();
    let asked = Rc::new(Cell::new(0));
    let a = asked.clone();
    let p = lp.periodic_with(move |_now| {
        a.set(a.get() + 1);
        Duration::MAX
    });
    p.start(|_, _| panic!("fired at the end of time")).unwrap();
    assert!(asked.get() >= 1);
    assert_eq!(p.at(), Duration::MAX);
    lp.run_nowait().unwrap();
    p.again().unwrap();
    assert_eq!(p.at(), Duration::MAX);
}

#[test]
fn a_stat_watcher_polling_every_duration_max_reads_it_back() {
    let dir = TempDir::new("stat-huge");
    let lp = Loop::new().unwrap();
    let s = lp.stat(dir.join("file"), Duration::MAX).unwrap();
    assert_eq!(s.interval(), Duration::MAX);
    s.start(|_, _| {}).unwrap();
    assert_eq!(s.interval(), Duration::MAX);
    lp.run_nowait().unwrap();
}

/// Before, the drain's deadline (`now + budget`) overflowed inside libev's prepare
/// callback, where a panic cannot unwind: the process aborted.
#[test]
fn a_callback_budget_of_duration_max_means_no_limit() {
    let lp = Loop::new().unwrap();
    let _dog = watchdog(&lp);
    lp.set_callback_budget(Duration::MAX);
    let ran = Rc::new(Cell::new(0));
    for _ in 0..100 {
        let r = ran.clone();
        lp.run_callback(move || r.set(r.get() + 1));
    }
    lp.run_once().unwrap();
    assert_eq!(ran.get(), 100, "the unlimited drain stopped early");
}

/// libev waits at least the timeout collect interval; converted unchecked to the
/// backend's integer timeout, a huge one came out negative (select: EINVAL, a system
/// error; epoll and poll: wait forever).
#[test]
fn a_huge_timeout_collect_interval_is_not_a_system_error() {
    let have = gevent_core::supported_backends().backends();
    for backend in ["epoll", "poll", "select"] {
        if have & backend.parse::<gevent_core::Flags>().unwrap().backends() == 0 {
            continue;
        }
        let lp = Loop::with_backend(backend).unwrap();
        let _dog = watchdog(&lp);
        lp.set_timeout_collect_interval(Duration::MAX);
        let pipe = Pipe::new();
        pipe.write(b"x");
        let w = lp.io(pipe.read_fd(), Events::READ).unwrap();
        w.start(|w, _| w.stop()).unwrap();
        let r = lp.run_once();
        assert!(r.is_ok(), "{backend}: {r:?}");
        assert!(!w.is_active(), "{backend}: the ready pipe was not reported");
    }
}
