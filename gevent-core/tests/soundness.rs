//! DESIGN.md's soundness rules 1–7, one test per behaviour.
//!
//! Each test builds the situation the rule is about (a callback that drops its own
//! watcher, a loop whose last handle goes while watchers live, a panic in a callback,
//! …) and checks what must hold afterwards. Under valgrind (`.ci/valgrind`) the same
//! tests also show that libev never touched freed memory and nothing leaked.
//!
//! `Loop` and watchers being `!Send` is pinned by `compile_fail` doc tests in the
//! sources (`Loop` and `Watcher`); only the `Send + Sync` side is checked here.

mod util;

use gevent_core::kind::TimerKind;
use gevent_core::{Events, Loop, Timer, WatcherCore};
use std::cell::{Cell, RefCell};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::time::Duration;
use util::{breaking_watchdog as watchdog, panic_text, DropCount, ReadablePipe};

const ZERO: Duration = Duration::ZERO;

fn counter() -> Rc<Cell<u32>> {
    Rc::new(Cell::new(0))
}

fn bump(c: &Cell<u32>) {
    c.set(c.get() + 1);
}

// ---- Rule 3: a callback may stop, restart, re-arm, replace or drop its own watcher ----

#[test]
fn callback_stops_its_own_watcher() {
    let lp = Loop::new().unwrap();
    let (_dog, dog_fired) = watchdog(&lp);
    let calls = counter();
    let drops = counter();
    let idle = lp.idle();
    let (c, dc) = (calls.clone(), DropCount(drops.clone()));
    let freed = drops.clone();
    idle.start(move |w, _| {
        let _keep = &dc;
        bump(&c);
        if c.get() == 3 {
            w.stop();
            assert!(!w.is_active());
            // The running closure is not freed under its own feet.
            assert_eq!(freed.get(), 0);
        }
    })
    .unwrap();
    // `run` returns only because the idle watcher stopped itself.
    lp.run().unwrap();
    assert!(!dog_fired.get());
    assert_eq!(calls.get(), 3);
    assert!(!idle.is_active());
    // `stop` drops the callback (as gevent does); that happened once it had returned.
    assert_eq!(drops.get(), 1);
    assert!(!idle.has_callback());
}

type TimerCallback = Box<dyn FnMut(&WatcherCore<TimerKind>, Events)>;

/// A callback that restarts its one-shot timer with a fresh copy of itself until `n`
/// reaches 3.
fn restarting_cb(n: Rc<Cell<u32>>) -> TimerCallback {
    Box::new(move |w, ev| {
        assert!(ev.contains(Events::TIMER));
        // A one-shot timer is already stopped when its callback runs.
        assert!(!w.is_active());
        bump(&n);
        if n.get() < 3 {
            w.start(restarting_cb(n.clone())).unwrap();
            assert!(w.is_active());
        }
    })
}

#[test]
fn callback_restarts_its_own_one_shot_timer() {
    let lp = Loop::new().unwrap();
    let (_dog, dog_fired) = watchdog(&lp);
    let n = counter();
    let t = lp.timer(ZERO, ZERO);
    t.start(restarting_cb(n.clone())).unwrap();
    lp.run().unwrap();
    assert!(!dog_fired.get());
    assert_eq!(n.get(), 3);
    assert!(!t.is_active());
}

#[test]
fn callback_stops_then_starts_its_own_watcher_with_a_new_callback() {
    let lp = Loop::new().unwrap();
    let (_dog, dog_fired) = watchdog(&lp);
    let first_drops = counter();
    let second_calls = counter();
    let idle = lp.idle();
    let dc = DropCount(first_drops.clone());
    let (fd, sc) = (first_drops.clone(), second_calls.clone());
    idle.start(move |w, _| {
        let _keep = &dc;
        w.stop();
        let (fd, sc) = (fd.clone(), sc.clone());
        w.start(move |w, _| {
            // The first closure was freed after it returned, before this one ran.
            assert_eq!(fd.get(), 1);
            bump(&sc);
            w.stop();
        })
        .unwrap();
        assert!(w.is_active());
    })
    .unwrap();
    lp.run().unwrap();
    assert!(!dog_fired.get());
    assert_eq!(second_calls.get(), 1);
    assert_eq!(first_drops.get(), 1);
}

#[test]
fn callback_rearms_its_own_fired_timer_with_again() {
    let lp = Loop::new().unwrap();
    let (_dog, dog_fired) = watchdog(&lp);
    let n = counter();
    let t = lp.timer(ZERO, ZERO);
    let c = n.clone();
    t.start(move |w, _| {
        bump(&c);
        match c.get() {
            // Fired once and stopped: `again` with a repeat must restart it, using the
            // very callback that is running now.
            1 => {
                assert!(!w.is_active());
                w.set_repeat(Duration::from_micros(1));
                w.again().unwrap();
                assert!(w.is_active());
            }
            // Repeating now: `again` re-arms the active timer.
            2 => {
                assert!(w.is_active());
                w.again().unwrap();
            }
            _ => w.stop(),
        }
    })
    .unwrap();
    lp.run().unwrap();
    assert!(!dog_fired.get());
    assert_eq!(n.get(), 3);
}

#[test]
fn callback_drops_its_own_watcher() {
    let lp = Loop::new().unwrap();
    let (_dog, dog_fired) = watchdog(&lp);
    let calls = counter();
    let drops = counter();
    // The owning handle lives in the callback's own captured state: the only way to
    // drop it is from inside the callback.
    let slot: Rc<RefCell<Option<Timer>>> = Rc::new(RefCell::new(None));
    let t = lp.timer(ZERO, Duration::from_micros(1));
    let (c, s, dc) = (calls.clone(), slot.clone(), DropCount(drops.clone()));
    let freed = drops.clone();
    t.start(move |w, _| {
        let _keep = &dc;
        bump(&c);
        assert!(w.is_active());
        let me = s
            .borrow_mut()
            .take()
            .expect("the handle is still in its slot");
        drop(me);
        // Stopped by the drop, yet the watcher and this closure are still alive: the
        // trampoline holds them until the callback returns.
        assert!(!w.is_active());
        assert_eq!(freed.get(), 0);
    })
    .unwrap();
    *slot.borrow_mut() = Some(t);
    drop(slot);
    lp.run().unwrap();
    assert!(!dog_fired.get());
    // A repeating timer, yet it ran once: dropping the handle stopped it for good.
    assert_eq!(calls.get(), 1);
    assert_eq!(drops.get(), 1);
}

#[test]
fn callback_replaces_itself_with_set_callback() {
    let lp = Loop::new().unwrap();
    let (_dog, dog_fired) = watchdog(&lp);
    let first_drops = counter();
    let first_calls = counter();
    let second_calls = counter();
    let idle = lp.idle();
    let dc = DropCount(first_drops.clone());
    let (fc, fd, sc) = (
        first_calls.clone(),
        first_drops.clone(),
        second_calls.clone(),
    );
    idle.start(move |w, _| {
        let _keep = &dc;
        bump(&fc);
        let (fd2, sc2) = (fd.clone(), sc.clone());
        w.set_callback(move |w, _| {
            assert_eq!(
                fd2.get(),
                1,
                "the replaced closure is freed before the new one runs"
            );
            bump(&sc2);
            w.stop();
        });
        // Still running: the replaced closure must not be freed yet.
        assert_eq!(fd.get(), 0);
        assert!(w.is_active());
    })
    .unwrap();
    lp.run().unwrap();
    assert!(!dog_fired.get());
    assert_eq!(first_calls.get(), 1, "the old callback never runs again");
    assert_eq!(second_calls.get(), 1, "the new one runs next time");
    assert_eq!(first_drops.get(), 1);
}

#[test]
fn callback_replaces_itself_with_start_while_active() {
    let lp = Loop::new().unwrap();
    let (_dog, dog_fired) = watchdog(&lp);
    let first_drops = counter();
    let first_calls = counter();
    let second_calls = counter();
    // A repeating timer is still active in its callback: `start` only swaps the closure.
    let t = lp.timer(ZERO, Duration::from_micros(1));
    let dc = DropCount(first_drops.clone());
    let (fc, fd, sc) = (
        first_calls.clone(),
        first_drops.clone(),
        second_calls.clone(),
    );
    t.start(move |w, _| {
        let _keep = &dc;
        bump(&fc);
        assert!(w.is_active());
        let (fd2, sc2) = (fd.clone(), sc.clone());
        w.start(move |w, _| {
            assert_eq!(fd2.get(), 1);
            bump(&sc2);
            w.stop();
        })
        .unwrap();
        assert_eq!(fd.get(), 0);
    })
    .unwrap();
    lp.run().unwrap();
    assert!(!dog_fired.get());
    assert_eq!(first_calls.get(), 1);
    assert_eq!(second_calls.get(), 1);
    assert_eq!(first_drops.get(), 1);
}

/// Two timers expire in the same iteration; the higher-priority one runs first and
/// drops (or stops) the other while it is pending.
fn other_pending_watcher_is_removed(drop_it: bool) {
    let lp = Loop::new().unwrap();
    let (_dog, dog_fired) = watchdog(&lp);
    let b_calls = counter();
    let b_drops = counter();
    let saw_pending = Rc::new(Cell::new(false));

    let b = lp.timer(ZERO, ZERO);
    let (bc, dc) = (b_calls.clone(), DropCount(b_drops.clone()));
    b.start(move |_, _| {
        let _keep = &dc;
        bump(&bc);
    })
    .unwrap();
    let slot = Rc::new(RefCell::new(Some(b)));

    let a = lp.timer(ZERO, ZERO);
    a.set_priority(1).unwrap();
    let (s, sp) = (slot.clone(), saw_pending.clone());
    a.start(move |_, _| {
        let mut g = s.borrow_mut();
        let b = g.as_ref().expect("b is still in its slot");
        // Both expired together: b's event is queued behind ours.
        sp.set(b.is_pending());
        if drop_it {
            drop(g.take());
        } else {
            b.stop();
            assert!(!b.is_pending());
        }
    })
    .unwrap();
    // Both are started in the same iteration with the same delay, so they share an
    // expiry time and become pending together.
    lp.run().unwrap();
    assert!(!dog_fired.get());
    assert!(saw_pending.get(), "b was pending when a removed it");
    assert_eq!(
        b_calls.get(),
        0,
        "a removed watcher's pending event never runs"
    );
    assert_eq!(b_drops.get(), 1);
    assert_eq!(lp.pending_count(), 0);
    if !drop_it {
        assert!(slot.borrow().as_ref().is_some_and(|b| !b.is_active()));
    }
}

#[test]
fn callback_drops_another_pending_watcher() {
    other_pending_watcher_is_removed(true);
}

#[test]
fn callback_stops_another_pending_watcher() {
    other_pending_watcher_is_removed(false);
}

// ---- Rules 1 and 2: dropping a handle stops the watcher and un-pends it ----

#[test]
fn dropping_a_fed_watcher_unpends_it() {
    let lp = Loop::new().unwrap();
    let calls = counter();
    let t = lp.timer(Duration::from_secs(3600), ZERO);
    let c = calls.clone();
    t.start(move |_, _| bump(&c)).unwrap();
    t.feed(Events::CUSTOM);
    assert!(t.is_pending());
    assert_eq!(lp.pending_count(), 1);
    drop(t);
    // libev keeps the queue slot (it counts in `pending_count`) but points it at a
    // dummy: running the queue must not call into the freed watcher.
    lp.run_nowait().unwrap();
    assert_eq!(calls.get(), 0);
    assert_eq!(lp.pending_count(), 0);
}

// ---- Rule 4: the loop outlives every watcher and is destroyed once, last ----

#[test]
fn watchers_outlive_the_last_loop_handle() {
    let lp = Loop::new().unwrap();
    let cleanups = counter();
    let inner_drops = counter();
    // Observers of the loop's end: a cleanup watcher runs inside ev_loop_destroy, and
    // the error handler's closure is freed with the loop state right after it.
    let cleanup = lp.cleanup();
    let cu = cleanups.clone();
    cleanup
        .start(move |_, ev| {
            assert!(ev.contains(Events::CLEANUP));
            bump(&cu);
        })
        .unwrap();
    let dc = DropCount(inner_drops.clone());
    lp.set_error_handler(move |_| {
        let _keep = &dc;
    });
    let fired = counter();
    let t = lp.timer(ZERO, ZERO);
    let f = fired.clone();
    t.start(move |w, _| {
        bump(&f);
        // The loop is reachable from the watcher even though the user dropped it.
        assert!(w.get_loop().is_some());
    })
    .unwrap();

    drop(lp);
    assert_eq!(cleanups.get(), 0, "a watcher still holds the loop");
    assert_eq!(inner_drops.get(), 0);

    let again = t.get_loop().expect("the watcher keeps its loop");
    again.run().unwrap();
    drop(again);
    assert_eq!(fired.get(), 1);
    assert_eq!(cleanups.get(), 0);

    drop(t);
    assert_eq!(cleanups.get(), 1, "the last watcher took the loop with it");
    assert_eq!(inner_drops.get(), 1);
    // The cleanup watcher outlives its loop harmlessly.
    assert!(cleanup.get_loop().is_none());
    cleanup.stop();
    drop(cleanup);
    assert_eq!(cleanups.get(), 1, "destroyed exactly once");
    assert_eq!(inner_drops.get(), 1);
}

/// While the loop is destroyed, cleanup callbacks reach it only through weak links.
/// Those must not hand out a new strong reference: one kept past the destruction would
/// point at a destroyed loop, and its drop would destroy it again.
#[test]
fn a_cleanup_callback_cannot_take_its_loop_back_during_destruction() {
    let lp = Loop::new().unwrap();
    let runs = counter();
    let state_drops = counter();
    let kept: Rc<RefCell<Vec<Option<Loop>>>> = Rc::default();
    let other = lp.cleanup();
    let cleanup = lp.cleanup();
    let (r, k) = (runs.clone(), kept.clone());
    cleanup
        .start(move |w, _| {
            bump(&r);
            // Every way a cleanup watcher has of getting at its loop.
            k.borrow_mut().push(w.get_loop());
            k.borrow_mut().push(other.get_loop());
            assert_eq!(
                other.start(|_, _| {}),
                Err(gevent_core::Error::LoopReleased)
            );
            w.feed(Events::CUSTOM); // a no-op: nothing may queue into a dying loop
        })
        .unwrap();
    let dc = DropCount(state_drops.clone());
    lp.set_error_handler(move |_| {
        let _keep = &dc;
    });
    drop(lp);

    assert_eq!(runs.get(), 1, "the cleanup callback ran once");
    assert!(
        kept.borrow().iter().all(Option::is_none),
        "a loop handle escaped the destruction"
    );
    assert_eq!(state_drops.get(), 1, "the loop state was freed, once");
    assert!(!cleanup.is_pending());
    assert!(cleanup.get_loop().is_none());
    drop(cleanup);
    drop(kept);
    assert_eq!(runs.get(), 1);
    assert_eq!(state_drops.get(), 1);
}

#[test]
fn detached_one_shot_timer_fires_and_is_released() {
    let lp = Loop::new().unwrap();
    let (_dog, dog_fired) = watchdog(&lp);
    let fired = counter();
    let drops = counter();
    let t = lp.timer(ZERO, ZERO);
    let (f, dc) = (fired.clone(), DropCount(drops.clone()));
    t.start(move |_, _| {
        let _keep = &dc;
        bump(&f);
    })
    .unwrap();
    t.detach();
    assert_eq!(drops.get(), 0, "the loop keeps a detached watcher alive");
    // It keeps the loop running until it has fired.
    lp.run().unwrap();
    assert!(!dog_fired.get());
    assert_eq!(fired.get(), 1);
    assert_eq!(drops.get(), 1, "released right after its last event");
}

#[test]
fn detached_repeating_timer_is_freed_with_the_last_loop_handle() {
    let lp = Loop::new().unwrap();
    let cleanups = counter();
    let cleanup = lp.cleanup();
    let cu = cleanups.clone();
    cleanup.start(move |_, _| bump(&cu)).unwrap();
    let fired = counter();
    let drops = counter();
    let t = lp.timer(ZERO, Duration::from_micros(1));
    let (f, dc) = (fired.clone(), DropCount(drops.clone()));
    t.start(move |w, _| {
        let _keep = &dc;
        bump(&f);
        assert!(w.is_active());
    })
    .unwrap();
    t.detach();
    // run_once blocks until the timer has fired at least once.
    lp.run_once().unwrap();
    assert!(fired.get() >= 1);
    assert_eq!(drops.get(), 0);
    let other = lp.clone();
    drop(lp);
    assert_eq!(drops.get(), 0, "another Loop handle is still alive");
    drop(other);
    assert_eq!(
        drops.get(),
        1,
        "stopped and freed with the last Loop handle"
    );
    assert_eq!(cleanups.get(), 1, "and it no longer held the loop");
}

#[test]
fn detaching_after_the_last_loop_handle_is_gone_stops_the_watcher() {
    let lp = Loop::new().unwrap();
    let cleanups = counter();
    let cleanup = lp.cleanup();
    let cu = cleanups.clone();
    cleanup.start(move |_, _| bump(&cu)).unwrap();
    let drops = counter();
    let t = lp.timer(Duration::from_secs(3600), Duration::from_secs(3600));
    let dc = DropCount(drops.clone());
    t.start(move |_, _| {
        let _keep = &dc;
    })
    .unwrap();
    drop(lp);
    // Nobody is left to drop the last Loop handle: keeping it would leak the watcher
    // and the loop (each holds the other) for good.
    t.detach();
    assert_eq!(drops.get(), 1);
    assert_eq!(cleanups.get(), 1);
}

#[test]
fn detached_watcher_that_stops_itself_is_released() {
    let lp = Loop::new().unwrap();
    let (_dog, dog_fired) = watchdog(&lp);
    let drops = counter();
    let idle = lp.idle();
    let (n, dc) = (counter(), DropCount(drops.clone()));
    idle.start(move |w, _| {
        let _keep = &dc;
        bump(&n);
        if n.get() == 3 {
            w.stop();
        }
    })
    .unwrap();
    idle.detach();
    lp.run().unwrap();
    assert!(!dog_fired.get());
    // Freed by its own `stop`, long before the loop goes.
    assert_eq!(drops.get(), 1);
}

// ---- Nested run ----

#[test]
fn callback_runs_the_loop_nested() {
    let lp = Loop::new().unwrap();
    let (_dog, dog_fired) = watchdog(&lp);
    let inner_depth = Rc::new(Cell::new(0));
    let outer_done = counter();
    let outer = lp.timer(ZERO, ZERO);
    let (d, od) = (inner_depth.clone(), outer_done.clone());
    outer
        .start(move |w, _| {
            let lp = w.get_loop().unwrap();
            assert_eq!(lp.depth(), 1);
            let inner = lp.timer(ZERO, ZERO);
            let d = d.clone();
            inner
                .start(move |w, _| d.set(w.get_loop().unwrap().depth()))
                .unwrap();
            // Returns once the inner timer has fired: nothing else keeps it running.
            lp.run().unwrap();
            assert!(!inner.is_active());
            bump(&od);
        })
        .unwrap();
    lp.run().unwrap();
    assert!(!dog_fired.get());
    assert_eq!(inner_depth.get(), 2);
    assert_eq!(outer_done.get(), 1);
    assert_eq!(lp.depth(), 0);
}

// ---- Rule 5: no panic unwinds into C ----

#[test]
fn panic_in_callback_resumes_from_run() {
    let lp = Loop::new().unwrap();
    let (_dog, dog_fired) = watchdog(&lp);
    let t = lp.timer(ZERO, ZERO);
    t.start(|_, _| panic!("boom in a timer")).unwrap();
    let err = catch_unwind(AssertUnwindSafe(|| lp.run())).expect_err("the panic resumes");
    assert_eq!(panic_text(&*err), "boom in a timer");
    assert!(!dog_fired.get());
    assert_eq!(lp.depth(), 0);

    // The loop is usable afterwards.
    let fired = counter();
    let t2 = lp.timer(ZERO, ZERO);
    let f = fired.clone();
    t2.start(move |_, _| bump(&f)).unwrap();
    lp.run().unwrap();
    assert_eq!(fired.get(), 1);
    assert!(!dog_fired.get());
}

#[test]
fn panic_in_nested_run_reaches_the_outer_run() {
    let lp = Loop::new().unwrap();
    let (_dog, dog_fired) = watchdog(&lp);
    let outer = lp.timer(ZERO, ZERO);
    outer
        .start(|w, _| {
            let lp = w.get_loop().unwrap();
            let inner = lp.idle();
            inner.start(|_, _| panic!("boom inside")).unwrap();
            lp.run().unwrap();
            unreachable!("the inner run resumes the panic");
        })
        .unwrap();
    let err = catch_unwind(AssertUnwindSafe(|| lp.run())).expect_err("the panic resumes");
    assert_eq!(panic_text(&*err), "boom inside");
    assert!(!dog_fired.get());
    assert_eq!(lp.depth(), 0);
    // Usable afterwards.
    let fired = counter();
    let t = lp.timer(ZERO, ZERO);
    let f = fired.clone();
    t.start(move |_, _| bump(&f)).unwrap();
    lp.run().unwrap();
    assert_eq!(fired.get(), 1);
}

#[test]
fn error_handler_gets_the_panic_and_the_loop_keeps_running() {
    let lp = Loop::new().unwrap();
    let (_dog, dog_fired) = watchdog(&lp);
    let seen = Rc::new(RefCell::new(Vec::new()));
    let s = seen.clone();
    lp.set_error_handler(move |p| s.borrow_mut().push(panic_text(&*p)));
    let calls = counter();
    let idle = lp.idle();
    let c = calls.clone();
    idle.start(move |w, _| {
        bump(&c);
        if c.get() < 3 {
            panic!("idle panic {}", c.get());
        }
        w.stop();
    })
    .unwrap();
    // No panic comes out of run: the handler took both.
    lp.run().unwrap();
    assert!(!dog_fired.get());
    assert_eq!(calls.get(), 3, "the loop kept calling after each panic");
    assert_eq!(*seen.borrow(), ["idle panic 1", "idle panic 2"]);
}

#[test]
fn error_handler_that_clears_itself_stays_cleared() {
    let lp = Loop::new().unwrap();
    let (_dog, dog_fired) = watchdog(&lp);
    let handled = counter();
    let (h, lp2) = (handled.clone(), lp.clone());
    lp.set_error_handler(move |_| {
        bump(&h);
        lp2.clear_error_handler();
    });
    let idle = lp.idle();
    let calls = counter();
    let c = calls.clone();
    idle.start(move |_, _| {
        bump(&c);
        panic!("idle panic {}", c.get());
    })
    .unwrap();
    // The first panic goes to the handler, which removes itself: the second resumes.
    let err = catch_unwind(AssertUnwindSafe(|| lp.run())).expect_err("the panic resumes");
    assert_eq!(panic_text(&*err), "idle panic 2");
    assert_eq!(handled.get(), 1);
    assert!(!dog_fired.get());
}

#[test]
fn panic_in_the_error_handler_resumes_from_run() {
    let lp = Loop::new().unwrap();
    let (_dog, dog_fired) = watchdog(&lp);
    lp.set_error_handler(|p| panic!("handler saw: {}", panic_text(&*p)));
    let t = lp.timer(ZERO, ZERO);
    t.start(|_, _| panic!("boom")).unwrap();
    let err = catch_unwind(AssertUnwindSafe(|| lp.run())).expect_err("the panic resumes");
    assert_eq!(panic_text(&*err), "handler saw: boom");
    assert!(!dog_fired.get());
    // The handler stays installed, and the loop usable.
    let fired = counter();
    let t2 = lp.timer(ZERO, ZERO);
    let f = fired.clone();
    t2.start(move |_, _| bump(&f)).unwrap();
    lp.run().unwrap();
    assert_eq!(fired.get(), 1);
}

#[test]
fn io_watcher_whose_callback_panics_is_stopped() {
    let pipe = ReadablePipe::new();
    let lp = Loop::new().unwrap();
    let (_dog, dog_fired) = watchdog(&lp);
    let calls = counter();
    let io = lp.io(pipe.r, Events::READ).unwrap();
    let c = calls.clone();
    io.start(move |_, ev| {
        assert!(ev.contains(Events::READ));
        bump(&c);
        // Never reads: left running, the level-triggered fd would call this again forever.
        panic!("io panic");
    })
    .unwrap();
    let err = catch_unwind(AssertUnwindSafe(|| lp.run())).expect_err("the panic resumes");
    assert_eq!(panic_text(&*err), "io panic");
    assert!(!io.is_active());
    // The fd is still readable, but the stopped watcher no longer keeps the loop busy.
    lp.run().unwrap();
    assert_eq!(calls.get(), 1);
    assert!(!dog_fired.get());
}

#[test]
fn io_watcher_whose_callback_panics_is_stopped_with_an_error_handler() {
    let pipe = ReadablePipe::new();
    let lp = Loop::new().unwrap();
    let (_dog, dog_fired) = watchdog(&lp);
    let panics = counter();
    let p = panics.clone();
    lp.set_error_handler(move |_| bump(&p));
    let io = lp.io(pipe.r, Events::READ).unwrap();
    io.start(|_, _| panic!("io panic")).unwrap();
    // Without the stop, run would spin on the readable fd until the watchdog.
    lp.run().unwrap();
    assert!(!dog_fired.get());
    assert_eq!(panics.get(), 1);
    assert!(!io.is_active());
}

#[test]
fn cleanup_callback_drops_another_pending_cleanup_watcher() {
    let lp = Loop::new().unwrap();
    let b_calls = counter();
    let b_drops = counter();
    let saw_pending = Rc::new(Cell::new(false));
    // Both are queued together when the loop is destroyed; `a` runs first (higher
    // priority) and drops `b`, whose event is still queued inside ev_loop_destroy.
    let b = lp.cleanup();
    let (bc, dc) = (b_calls.clone(), DropCount(b_drops.clone()));
    b.start(move |_, _| {
        let _keep = &dc;
        bump(&bc);
    })
    .unwrap();
    let slot = Rc::new(RefCell::new(Some(b)));
    let a = lp.cleanup();
    a.set_priority(1).unwrap();
    let (s, sp) = (slot.clone(), saw_pending.clone());
    a.start(move |_, _| {
        let b = s.borrow_mut().take().expect("b is still in its slot");
        sp.set(b.is_pending());
        drop(b);
    })
    .unwrap();
    drop(slot);
    drop(lp);
    assert!(saw_pending.get(), "b was pending when a dropped it");
    assert_eq!(
        b_calls.get(),
        0,
        "a dropped watcher's queued event never runs"
    );
    assert_eq!(b_drops.get(), 1);
    drop(a);
}

#[test]
fn fed_cleanup_watcher_that_was_never_started_outlives_its_loop() {
    let lp = Loop::new().unwrap();
    let calls = counter();
    // Not started: libev's destroy has no cleanup watcher to run, yet this one has an
    // event queued in the loop.
    let c = lp.cleanup();
    let n = calls.clone();
    c.set_callback(move |_, ev| {
        assert!(ev.contains(Events::CUSTOM));
        bump(&n);
    });
    c.feed(Events::CUSTOM);
    assert!(c.is_pending());
    drop(lp);
    // The queued event was delivered before the loop went, so nothing refers to the
    // freed loop any more.
    assert_eq!(calls.get(), 1);
    assert!(!c.is_pending());
    c.stop();
    assert_eq!(c.clear_pending(), Events::NONE);
    drop(c);
}

#[test]
fn panic_in_a_cleanup_callback_resumes_where_the_loop_is_dropped() {
    // The default loop, because its release is process-wide state; no other test in
    // this binary uses it.
    let lp = Loop::default_loop().unwrap();
    let cleanup = lp.cleanup();
    cleanup.start(|_, _| panic!("cleanup boom")).unwrap();
    let err = catch_unwind(AssertUnwindSafe(move || drop(lp))).expect_err("the panic resumes");
    assert_eq!(panic_text(&*err), "cleanup boom");
    drop(cleanup);
    // The loop was released all the same: the default loop can be made again.
    let lp = Loop::default_loop().expect("the default loop is free again");
    drop(lp);
}

// ---- Rule 7: only the async sender crosses threads ----

#[test]
fn async_sender_is_send_and_sync_and_outlives_its_loop() {
    fn assert_send_sync<T: Send + Sync + 'static>(_: &T) {}
    let lp = Loop::new().unwrap();
    let a = lp.async_();
    a.start(|_, _| {}).unwrap();
    let sender = a.sender();
    assert_send_sync(&sender);
    drop(a);
    drop(lp);
    // Another thread may still hold it: sending is then a harmless no-op.
    let sent = std::thread::spawn(move || sender.send()).join().unwrap();
    assert!(!sent);
}
