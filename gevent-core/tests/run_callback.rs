//! `Loop::run_callback`: gevent's `loop.run_callback`, the queue the hub's scheduler is
//! built on. Callbacks run in FIFO order from the loop's prepare phase, keep the loop
//! alive until drained, can be cancelled, never starve timers or I/O, and a panicking
//! one is handled like a panicking watcher callback.

mod util;

use gevent_core::{Callback, Events, Loop};
use std::cell::{Cell, RefCell};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::time::Duration;
use util::{breaking_watchdog as watchdog, panic_text, DropCount, ReadablePipe};

const ZERO: Duration = Duration::ZERO;

type Log = Rc<RefCell<Vec<String>>>;

fn log_to(log: &Log, what: impl Into<String>) {
    log.borrow_mut().push(what.into());
}

#[test]
fn callbacks_run_in_fifo_order() {
    let lp = Loop::new().unwrap();
    let (_dog, dog_fired) = watchdog(&lp);
    let log: Log = Rc::default();
    for i in 0..5 {
        let l = log.clone();
        lp.run_callback(move || log_to(&l, i.to_string()));
    }
    assert_eq!(lp.pending_callbacks(), 5);
    lp.run().unwrap();
    assert!(!dog_fired.get());
    assert_eq!(*log.borrow(), ["0", "1", "2", "3", "4"]);
    assert_eq!(lp.pending_callbacks(), 0);
}

#[test]
fn callbacks_queued_during_the_drain_run_in_the_same_drain_in_order() {
    let lp = Loop::new().unwrap();
    let (_dog, dog_fired) = watchdog(&lp);
    let log: Log = Rc::default();
    let iterations = Rc::new(RefCell::new(Vec::new()));
    let note = {
        let (log, iterations, lp) = (log.clone(), iterations.clone(), lp.clone());
        move |what: &str| {
            log_to(&log, what);
            // The iteration counter moves only when the loop polls: one value for all
            // of them means one drain, without a poll in between.
            iterations.borrow_mut().push(lp.iteration());
        }
    };
    let n = note.clone();
    let lp2 = lp.clone();
    lp.run_callback(move || {
        n("first");
        let n2 = n.clone();
        let lp3 = lp2.clone();
        lp2.run_callback(move || {
            n2("queued by first");
            let n3 = n2.clone();
            lp3.run_callback(move || n3("queued by queued"));
        });
        let n2 = n.clone();
        lp2.run_callback(move || n2("queued by first, second"));
    });
    let n = note.clone();
    lp.run_callback(move || n("second"));
    drop(note);
    lp.run().unwrap();
    assert!(!dog_fired.get());
    assert_eq!(
        *log.borrow(),
        [
            "first",
            "second",
            "queued by first",
            "queued by first, second",
            "queued by queued",
        ]
    );
    let its = iterations.borrow();
    assert!(its.iter().all(|&i| i == its[0]), "one drain: {its:?}");
}

#[test]
fn cancelled_callback_never_runs() {
    let lp = Loop::new().unwrap();
    let (_dog, dog_fired) = watchdog(&lp);
    let log: Log = Rc::default();
    let l = log.clone();
    let drops = Rc::new(Cell::new(0));
    let dc = DropCount(drops.clone());
    let cb = lp.run_callback(move || {
        let _keep = &dc;
        log_to(&l, "cancelled one ran");
    });
    assert!(cb.pending());
    assert!(cb.cancel(), "it was pending");
    assert!(!cb.pending());
    assert!(!cb.cancel(), "cancelling twice is a no-op");
    assert_eq!(drops.get(), 1, "cancelling frees the closure at once");

    // Cancelled by an earlier callback of the same drain.
    let victim: Rc<RefCell<Option<Callback>>> = Rc::default();
    let v = victim.clone();
    let l = log.clone();
    lp.run_callback(move || {
        log_to(&l, "canceller");
        assert!(v.borrow().as_ref().unwrap().cancel());
    });
    let l = log.clone();
    *victim.borrow_mut() = Some(lp.run_callback(move || log_to(&l, "victim ran")));

    // Only cancelled work is left after the canceller: run still returns.
    lp.run().unwrap();
    assert!(!dog_fired.get());
    assert_eq!(*log.borrow(), ["canceller"]);
    assert!(!cb.pending());
    assert!(!victim.borrow().as_ref().unwrap().pending());
    assert_eq!(lp.pending_callbacks(), 0);
}

#[test]
fn closure_freed_by_cancel_may_look_at_its_own_handle() {
    let lp = Loop::new().unwrap();
    // A guard in the closure whose destructor asks its own handle whether it is pending.
    struct AskOnDrop(Rc<RefCell<Option<Callback>>>, Rc<Cell<Option<bool>>>);
    impl Drop for AskOnDrop {
        fn drop(&mut self) {
            self.1.set(self.0.borrow().as_ref().map(Callback::pending));
        }
    }
    let handle: Rc<RefCell<Option<Callback>>> = Rc::default();
    let answer = Rc::new(Cell::new(None));
    let guard = AskOnDrop(handle.clone(), answer.clone());
    *handle.borrow_mut() = Some(lp.run_callback(move || {
        let _keep = &guard;
    }));
    assert!(handle.borrow().as_ref().unwrap().cancel());
    // Cancelling also broke the cycle handle -> closure -> guard -> handle.
    assert_eq!(answer.get(), Some(false));
}

#[test]
fn callback_is_not_pending_once_it_ran() {
    let lp = Loop::new().unwrap();
    let cb = lp.run_callback(|| {});
    assert!(cb.pending());
    lp.run().unwrap();
    assert!(!cb.pending());
    assert!(!cb.cancel(), "too late to cancel");
}

#[test]
fn queue_keeps_run_going_until_drained_then_run_returns() {
    let lp = Loop::new().unwrap();
    let (_dog, dog_fired) = watchdog(&lp);
    // A zero budget ends a drain after every 16 callbacks, so this chain of 100 spans
    // several loop iterations; nothing but the queue keeps the loop alive in between.
    lp.set_callback_budget(ZERO);
    let ran = Rc::new(Cell::new(0u32));
    let first_iteration = lp.iteration();
    fn chain(lp: Loop, ran: Rc<Cell<u32>>) {
        ran.set(ran.get() + 1);
        if ran.get() < 100 {
            let lp2 = lp.clone();
            lp.run_callback(move || chain(lp2, ran));
        }
    }
    let (lp2, r) = (lp.clone(), ran.clone());
    lp.run_callback(move || chain(lp2, r));
    // No watcher is active: only the queue keeps `run` from returning at once.
    lp.run().unwrap();
    assert!(!dog_fired.get());
    assert_eq!(ran.get(), 100, "run returned only once the queue was empty");
    assert!(
        lp.iteration() > first_iteration + 1,
        "the chain spanned several iterations"
    );
    assert_eq!(lp.pending_callbacks(), 0);
    // With the queue empty and nothing active, run returns straight away.
    let before = lp.iteration();
    lp.run().unwrap();
    assert!(lp.iteration() <= before + 1);
}

/// A callback that queues itself again until `stop` is set.
fn forever(lp: Loop, stop: Rc<Cell<bool>>, ran: Rc<Cell<u64>>) {
    ran.set(ran.get() + 1);
    if !stop.get() {
        let lp2 = lp.clone();
        lp.run_callback(move || forever(lp2, stop, ran));
    }
}

#[test]
fn self_requeueing_callback_does_not_starve_a_timer() {
    let lp = Loop::new().unwrap();
    let (_dog, dog_fired) = watchdog(&lp);
    let stop = Rc::new(Cell::new(false));
    let ran = Rc::new(Cell::new(0));
    let (lp2, s, r) = (lp.clone(), stop.clone(), ran.clone());
    lp.run_callback(move || forever(lp2, s, r));
    let timer_ran = Rc::new(Cell::new(false));
    let t = lp.timer(ZERO, ZERO);
    let (s, tr) = (stop.clone(), timer_ran.clone());
    t.start(move |_, ev| {
        assert!(ev.contains(Events::TIMER));
        tr.set(true);
        s.set(true);
    })
    .unwrap();
    // Returns only if the timer got its turn: it is what ends the endless queue.
    lp.run().unwrap();
    assert!(!dog_fired.get(), "the timer was starved");
    assert!(timer_ran.get());
    assert!(ran.get() > 0);
    assert_eq!(lp.pending_callbacks(), 0);
}

#[test]
fn self_requeueing_callback_does_not_starve_a_ready_io_watcher() {
    let pipe = ReadablePipe::new();
    let lp = Loop::new().unwrap();
    let (_dog, dog_fired) = watchdog(&lp);
    let stop = Rc::new(Cell::new(false));
    let ran = Rc::new(Cell::new(0));
    let (lp2, s, r) = (lp.clone(), stop.clone(), ran.clone());
    lp.run_callback(move || forever(lp2, s, r));
    let io_ran = Rc::new(Cell::new(false));
    let io = lp.io(pipe.r, Events::READ).unwrap();
    let (s, ir) = (stop.clone(), io_ran.clone());
    io.start(move |w, ev| {
        assert!(ev.contains(Events::READ));
        ir.set(true);
        s.set(true);
        w.stop();
    })
    .unwrap();
    lp.run().unwrap();
    assert!(!dog_fired.get(), "the io watcher was starved");
    assert!(io_ran.get());
    assert!(ran.get() > 0);
    assert_eq!(lp.pending_callbacks(), 0);
}

#[test]
fn panicking_callback_resumes_from_run() {
    let lp = Loop::new().unwrap();
    let (_dog, dog_fired) = watchdog(&lp);
    let after = Rc::new(Cell::new(0));
    lp.run_callback(|| panic!("callback boom"));
    let a = after.clone();
    lp.run_callback(move || a.set(a.get() + 1));
    let err = catch_unwind(AssertUnwindSafe(|| lp.run())).expect_err("the panic resumes");
    assert_eq!(panic_text(&*err), "callback boom");
    assert_eq!(lp.depth(), 0);
    // The loop is usable afterwards, and nothing queued behind the panic is lost.
    let fresh = Rc::new(Cell::new(0));
    let f = fresh.clone();
    lp.run_callback(move || f.set(f.get() + 1));
    lp.run().unwrap();
    assert!(!dog_fired.get());
    assert_eq!(fresh.get(), 1);
    assert_eq!(
        after.get(),
        1,
        "the callback behind the panicking one ran once"
    );
    assert_eq!(lp.pending_callbacks(), 0);
}

#[test]
fn panicking_callback_goes_to_the_error_handler() {
    let lp = Loop::new().unwrap();
    let (_dog, dog_fired) = watchdog(&lp);
    let seen: Log = Rc::default();
    let s = seen.clone();
    lp.set_error_handler(move |p| log_to(&s, panic_text(&*p)));
    let log: Log = Rc::default();
    let l = log.clone();
    lp.run_callback(move || log_to(&l, "before"));
    lp.run_callback(|| panic!("callback boom"));
    let l = log.clone();
    lp.run_callback(move || log_to(&l, "after"));
    lp.run().unwrap();
    assert!(!dog_fired.get());
    assert_eq!(*seen.borrow(), ["callback boom"]);
    assert_eq!(*log.borrow(), ["before", "after"]);
}

#[test]
fn queued_callbacks_are_freed_with_the_last_loop_handle() {
    let lp = Loop::new().unwrap();
    let drops = Rc::new(Cell::new(0));
    let ran = Rc::new(Cell::new(false));
    let dc = DropCount(drops.clone());
    let r = ran.clone();
    let cb = lp.run_callback(move || {
        let _keep = &dc;
        r.set(true);
    });
    drop(lp);
    // The loop can never run it now: it is freed, not kept alive by the handle.
    assert!(!ran.get());
    assert_eq!(drops.get(), 1);
    assert!(!cb.pending());
    assert!(!cb.cancel());
}

#[test]
fn a_quiesced_loop_runs_no_callback_and_returns_from_run() {
    let lp = Loop::new().unwrap();
    let ran: Log = Rc::default();
    let drops = Rc::new(Cell::new(0u32));
    let (l1, d1) = (ran.clone(), DropCount(drops.clone()));
    let queued = lp.run_callback(move || {
        let _d = d1;
        log_to(&l1, "queued callback");
    });
    // A callback that quiesces the loop from inside a run, while a timer is pending.
    let t = lp.timer(ZERO, Duration::from_millis(1));
    let l2 = ran.clone();
    t.start(move |_, _| log_to(&l2, "timer")).unwrap();
    let lp2 = lp.clone();
    let l3 = ran.clone();
    let io = ReadablePipe::new();
    let w = lp.io(io.r, Events::READ).unwrap();
    w.start(move |_, _| {
        log_to(&l3, "io");
        lp2.quiesce();
    })
    .unwrap();
    lp.quiesce();
    assert!(lp.is_quiesced());
    assert!(!queued.pending(), "queued callbacks are dropped unrun");
    assert_eq!(drops.get(), 1, "and their closures freed");
    // Queued afterwards: dropped at once.
    let l4 = ran.clone();
    let late = lp.run_callback(move || log_to(&l4, "late callback"));
    assert!(!late.pending());
    // `run` returns at once though active watchers remain.
    lp.run().unwrap();
    assert!(lp.run_once().is_ok());
    assert!(ran.borrow().is_empty(), "nothing ran: {:?}", ran.borrow());
    // Watchers still stop and drop normally; cleanup watchers still fire at destroy.
    let cleaned = Rc::new(Cell::new(false));
    let c = lp.cleanup();
    let c2 = cleaned.clone();
    c.start(move |_, _| c2.set(true)).unwrap();
    c.detach();
    t.stop();
    drop((t, w, lp));
    assert!(
        cleaned.get(),
        "the cleanup watcher fired as the loop was destroyed"
    );
}

thread_local! {
    static FN_LOG: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

fn log_fn_a() {
    FN_LOG.with(|l| l.borrow_mut().push("fn a".into()));
}

fn log_fn_b() {
    FN_LOG.with(|l| l.borrow_mut().push("fn b".into()));
}

fn panicking_fn() {
    panic!("expected: a panicking plain callback");
}

#[test]
fn plain_function_callbacks_keep_the_fifo_order_and_the_loop_alive() {
    let lp = Loop::new().unwrap();
    let (_dog, dog_fired) = watchdog(&lp);
    let log: Log = Rc::default();
    let l = log.clone();
    lp.run_callback(move || log_to(&l, "closure 1"));
    lp.run_callback_fn(log_fn_a);
    let l = log.clone();
    lp.run_callback(move || log_to(&l, "closure 2"));
    lp.run_callback_fn(log_fn_b);
    assert_eq!(lp.pending_callbacks(), 4);
    // Nothing else keeps this loop alive: the queue does, until it is drained.
    lp.run().unwrap();
    assert!(!dog_fired.get());
    let fns = FN_LOG.with(|l| std::mem::take(&mut *l.borrow_mut()));
    assert_eq!(fns, ["fn a", "fn b"]);
    assert_eq!(*log.borrow(), ["closure 1", "closure 2"]);

    // A panicking one goes to the error handler; the next still runs.
    let caught = Rc::new(Cell::new(0));
    let c = caught.clone();
    lp.set_error_handler(move |p| {
        assert!(panic_text(&*p).starts_with("expected:"));
        c.set(c.get() + 1);
    });
    lp.run_callback_fn(panicking_fn);
    lp.run_callback_fn(log_fn_a);
    lp.run().unwrap();
    assert_eq!(caught.get(), 1);
    assert_eq!(FN_LOG.with(|l| l.borrow().len()), 1);

    // A quiesced loop drops them unqueued.
    lp.quiesce();
    lp.run_callback_fn(log_fn_b);
    assert_eq!(lp.pending_callbacks(), 0);
}
