//! Scheduling on the hub: who runs when after `spawn`, `spawn_later` and `sleep(0)`,
//! and that ready greenlets cannot starve timers.

mod util;

use gevent_hub::{
    get_hub, idle, joinall, sleep, spawn, spawn_later, try_sleep, with_timeout, AnyGreenlet,
    AsyncResult, Error, Event, Greenlet, Queue, Semaphore, Wait,
};
use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};
use util::{Log, WATCHDOG_LIMIT};

fn join_all<T>(gs: &[Greenlet<T>]) {
    let refs: Vec<&dyn AnyGreenlet> = gs.iter().map(|g| g as &dyn AnyGreenlet).collect();
    assert!(
        joinall(&refs, None, true).unwrap(),
        "every greenlet finished"
    );
}

#[test]
fn sleep_zero_interleaves_two_greenlets() {
    let log = Log::new();
    let gs: Vec<_> = (1..=2)
        .map(|i| {
            let log = log.clone();
            spawn(move || {
                log.push(format!("{i}A"));
                sleep(Duration::ZERO);
                log.push(format!("{i}B"));
            })
        })
        .collect();
    join_all(&gs);
    assert_eq!(log.entries(), ["1A", "2A", "1B", "2B"]);
}

#[test]
fn greenlets_start_in_spawn_order_once_the_spawner_blocks() {
    let log = Log::new();
    let gs: Vec<_> = (0..20)
        .map(|i| {
            let log = log.clone();
            spawn(move || log.push(i.to_string()))
        })
        .collect();
    assert!(
        log.entries().is_empty(),
        "spawn only schedules: nothing runs before main blocks"
    );
    assert!(gs.iter().all(|g| !g.started()));
    join_all(&gs);
    let expected: Vec<String> = (0..20).map(|i| i.to_string()).collect();
    assert_eq!(log.entries(), expected);
}

#[test]
fn spawn_later_starts_after_its_delay_in_delay_order() {
    // Each timer's deadline is taken from the clock when it is created (libev's
    // monotonic clock, the one `Instant` reads). The 40 ms one is created first, so the
    // deadlines are in delay order only if creating the second took under 35 ms; a
    // loaded machine under valgrind can exceed that once, while it translates this
    // code for the first time. An attempt that overran proves nothing and is retried.
    const LATE: Duration = Duration::from_millis(40);
    const EARLY: Duration = Duration::from_millis(5);
    for _attempt in 0..5 {
        let log = Log::new();
        let (l1, l2, l3) = (log.clone(), log.clone(), log.clone());
        let before = Instant::now();
        let late = spawn_later(LATE, move || l1.push("late"));
        let early = spawn_later(EARLY, move || l2.push("early"));
        let gap = before.elapsed();
        let now = spawn(move || l3.push("now"));
        assert!(!late.started() && !early.started());

        late.join().unwrap();
        assert!(early.ready() && now.ready());
        if gap >= LATE - EARLY {
            continue;
        }
        assert_eq!(log.entries(), ["now", "early", "late"]);
        return;
    }
    panic!("creating two timers took over 35 ms on every attempt");
}

#[test]
fn with_timeout_interrupts_a_greenlet_that_only_yields() {
    // Each sleep(0) queues a callback; if draining callbacks never gave way to the
    // loop's timers, this would spin until the watchdog.
    let start = Instant::now();
    let spins = Rc::new(Cell::new(0u64));
    let s = spins.clone();
    let r = with_timeout(Duration::from_millis(10), move || loop {
        sleep(Duration::ZERO);
        s.set(s.get() + 1);
        if start.elapsed() > WATCHDOG_LIMIT {
            return "starved";
        }
    });
    assert!(
        matches!(r, Err(Error::TimedOut)),
        "expected TimedOut, got {r:?}"
    );
    assert!(spins.get() > 0, "the loop body ran before the timeout");
}

#[test]
fn a_busy_yielding_greenlet_does_not_starve_a_sleeper() {
    let stop = Rc::new(Cell::new(false));
    let spins = Rc::new(Cell::new(0u64));
    let (st, sp) = (stop.clone(), spins.clone());
    let start = Instant::now();
    let spinner = spawn(move || {
        while !st.get() && start.elapsed() < WATCHDOG_LIMIT {
            sleep(Duration::ZERO);
            sp.set(sp.get() + 1);
        }
        st.get()
    });
    sleep(Duration::from_millis(10));
    stop.set(true);
    assert!(spins.get() > 0, "the spinner ran while main slept");
    assert!(
        spinner.join().unwrap(),
        "main's timer fired while the spinner kept yielding"
    );
}

#[test]
fn idle_returns_after_ready_greenlets_have_run() {
    let log = Log::new();
    let l = log.clone();
    let g = spawn(move || l.push("ran"));
    idle().unwrap();
    assert!(g.ready(), "idle waits until the queued start has run");
    assert_eq!(log.entries(), ["ran"]);
    // With nothing at all to do, idle still returns.
    idle().unwrap();
}

/// Runs `wake` in a callback of the hub while the main greenlet waits in `wait`, and
/// returns what happened in which order.
fn wake_from_a_hub_callback(wait: impl FnOnce(), wake: impl FnOnce() + 'static) -> Vec<String> {
    let log = Log::new();
    let l = log.clone();
    get_hub().get_loop().run_callback(move || {
        wake();
        l.push("callback ran to its end");
    });
    wait();
    log.push("waiter resumed");
    log.entries()
}

/// gevent delivers the notifications of an Event, AsyncResult, Queue or Semaphore from
/// a callback of their own, and schedules a kill: whatever a hub callback wakes runs
/// only after that callback returned. (The hub's stack then never holds a user's
/// frames while a greenlet runs, so nothing of the user's is resumed at thread exit.)
#[test]
fn a_hub_callback_runs_to_its_end_before_what_it_woke() {
    let expected = ["callback ran to its end", "waiter resumed"];

    let e = Event::new();
    let e2 = e.clone();
    let order = wake_from_a_hub_callback(|| e.wait().unwrap(), move || e2.set());
    assert_eq!(order, expected, "Event::set");

    let r = AsyncResult::<u32, ()>::new();
    let r2 = r.clone();
    let order = wake_from_a_hub_callback(|| assert_eq!(r.get().unwrap(), 7), move || r2.set(7));
    assert_eq!(order, expected, "AsyncResult::set");

    let q = Queue::<u32>::new();
    let q2 = q.clone();
    let order = wake_from_a_hub_callback(
        || assert_eq!(q.get().unwrap(), 1),
        move || q2.put(1).unwrap(),
    );
    assert_eq!(order, expected, "Queue::put");

    let s = Semaphore::new(0);
    let s2 = s.clone();
    let order = wake_from_a_hub_callback(|| s.acquire().unwrap(), move || s2.release());
    assert_eq!(order, expected, "Semaphore::release");

    let w = Wait::new("a waker woken from a hub callback").unwrap();
    let waker = w.waker();
    let order = wake_from_a_hub_callback(|| assert!(w.park().unwrap()), move || waker.wake());
    assert_eq!(order, expected, "Waker::wake");
    drop(w);

    // A kill from a hub callback lands after the callback, as gevent schedules it.
    let log = Log::new();
    let unwound = Event::new();
    let (l, u) = (log.clone(), unwound.clone());
    let g = spawn(move || {
        struct Unwound(Log, Event);
        impl Drop for Unwound {
            fn drop(&mut self) {
                self.0.push("killed greenlet unwound");
                self.1.set();
            }
        }
        let _u = Unwound(l, u);
        sleep(Duration::from_secs(3600));
    });
    sleep(Duration::ZERO); // g parks in its sleep
    let l = log.clone();
    get_hub().get_loop().run_callback(move || {
        g.kill_nowait();
        l.push("callback ran to its end");
    });
    unwound.wait().unwrap();
    assert_eq!(
        log.entries(),
        ["callback ran to its end", "killed greenlet unwound"]
    );
}

/// `sleep` has std's shape (`fn(Duration)`), so code written against
/// `std::thread::sleep` compiles unchanged. Where it cannot switch (in the hub, while
/// unwinding) it blocks the thread as std's does; `try_sleep` says why instead.
#[test]
fn sleep_has_std_s_shape_and_blocks_where_it_cannot_switch() {
    let as_std: fn(Duration) = sleep;
    as_std(Duration::ZERO);

    // In the hub: try_sleep refuses, sleep sleeps the thread (the loop waits for it).
    let seen = Rc::new(Cell::new(None));
    let s = seen.clone();
    get_hub().get_loop().run_callback(move || {
        let refused = matches!(try_sleep(Duration::ZERO), Err(Error::BlockingInHub(_)));
        let before = Instant::now();
        sleep(Duration::from_millis(2));
        s.set(Some((
            refused,
            before.elapsed() >= Duration::from_millis(2),
        )));
    });
    sleep(Duration::ZERO);
    assert_eq!(seen.get(), Some((true, true)));

    // While unwinding (a destructor during a panic): the same.
    struct SleepsInDrop(Rc<Cell<Option<(bool, bool)>>>);
    impl Drop for SleepsInDrop {
        fn drop(&mut self) {
            let refused = matches!(try_sleep(Duration::ZERO), Err(Error::Unwinding));
            let before = Instant::now();
            sleep(Duration::from_millis(2));
            self.0.set(Some((
                refused,
                before.elapsed() >= Duration::from_millis(2),
            )));
        }
    }
    util::quiet_expected_panics();
    let seen = Rc::new(Cell::new(None));
    let s = seen.clone();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        let _d = SleepsInDrop(s);
        panic!("expected: unwinding through a sleeping destructor");
    }));
    assert!(r.is_err());
    assert_eq!(seen.get(), Some((true, true)));
}

/// gevent runs callbacks in the order they were queued, and `sleep(0)` is one: a
/// callback that a greenlet queues before it yields runs before that greenlet's next
/// turn, however many greenlets are yielding.
#[test]
fn a_callback_queued_before_a_yield_runs_before_the_next_turn() {
    let log = Log::new();
    let gs: Vec<_> = ["A", "B"]
        .into_iter()
        .map(|name| {
            let log = log.clone();
            spawn(move || {
                for i in 0..3 {
                    log.push(format!("{name}{i}"));
                    if name == "B" && i == 1 {
                        let l = log.clone();
                        get_hub().get_loop().run_callback(move || l.push("X"));
                    }
                    sleep(Duration::ZERO);
                }
            })
        })
        .collect();
    assert!(joinall(&gs, None, true).unwrap());
    let order = log.entries();
    let at = |e: &str| order.iter().position(|x| x == e).unwrap();
    assert!(at("B1") < at("X") && at("X") < at("B2"), "{order:?}");
    assert_eq!(order.len(), 7, "{order:?}");
}
