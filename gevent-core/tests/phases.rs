//! The loop-phase watchers: prepare runs before the poll and check after it, in every
//! iteration; idle runs only when nothing else is pending; fork runs on the iteration
//! after `Loop::fork`; cleanup runs while the loop is destroyed.

mod util;

use gevent_core::{Events, Loop};
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;
use util::{watchdog, Pipe};

type Log = Rc<RefCell<Vec<&'static str>>>;

#[test]
fn prepare_runs_before_the_poll_and_check_after_it() {
    let lp = Loop::new().unwrap();
    let _dog = watchdog(&lp);
    let log: Log = Default::default();
    let pipe = Rc::new(Pipe::new());

    // Only the prepare callback writes, so the io watcher can fire in the same
    // iteration only if prepare ran before the poll.
    let prepare = Rc::new(lp.prepare());
    let check = Rc::new(lp.check());
    let (l, p) = (log.clone(), pipe.clone());
    prepare
        .start(move |_, revents| {
            assert_eq!(revents, Events::PREPARE);
            l.borrow_mut().push("prepare");
            p.write(b"!");
        })
        .unwrap();
    let l = log.clone();
    check
        .start(move |_, revents| {
            assert_eq!(revents, Events::CHECK);
            l.borrow_mut().push("check");
        })
        .unwrap();

    let io = lp.io(pipe.read_fd(), Events::READ).unwrap();
    let (l, p, pr, ch) = (log.clone(), pipe.clone(), prepare.clone(), check.clone());
    let rounds = Rc::new(Cell::new(0));
    io.start(move |w, _| {
        l.borrow_mut().push("io");
        assert_eq!(p.drain(), b"!");
        rounds.set(rounds.get() + 1);
        if rounds.get() == 3 {
            pr.stop();
            ch.stop();
            w.stop();
        }
    })
    .unwrap();
    lp.run().unwrap();

    // Check watchers run before the other watchers of the iteration.
    assert_eq!(
        *log.borrow(),
        ["prepare", "check", "io"].repeat(3),
        "one iteration per line"
    );
}

#[test]
fn prepare_and_check_run_once_per_iteration() {
    let lp = Loop::new().unwrap();
    let counts = Rc::new(Cell::new((0, 0)));
    let prepare = lp.prepare();
    let check = lp.check();
    let c = counts.clone();
    prepare
        .start(move |_, _| c.set((c.get().0 + 1, c.get().1)))
        .unwrap();
    let c = counts.clone();
    check
        .start(move |_, _| c.set((c.get().0, c.get().1 + 1)))
        .unwrap();
    let before = lp.iteration();
    for _ in 0..5 {
        lp.run_nowait().unwrap();
    }
    assert_eq!(lp.iteration() - before, 5);
    assert_eq!(counts.get(), (5, 5));
}

#[test]
fn idle_runs_only_when_nothing_else_is_pending() {
    let lp = Loop::new().unwrap();
    let _dog = watchdog(&lp);
    let log: Log = Default::default();
    let pipe = Rc::new(Pipe::new());
    pipe.write(b"busy");

    // The pipe stays readable (level-triggered) for three iterations.
    let io = lp.io(pipe.read_fd(), Events::READ).unwrap();
    let (l, p) = (log.clone(), pipe.clone());
    io.start(move |w, _| {
        l.borrow_mut().push("io");
        if l.borrow().len() == 3 {
            p.drain();
            w.stop();
        }
    })
    .unwrap();
    let idle = lp.idle();
    let l = log.clone();
    idle.start(move |w, revents| {
        assert_eq!(revents, Events::IDLE);
        l.borrow_mut().push("idle");
        w.stop();
    })
    .unwrap();
    lp.run().unwrap();
    assert_eq!(*log.borrow(), ["io", "io", "io", "idle"]);
}

#[test]
fn an_active_idle_watcher_keeps_the_loop_from_blocking() {
    let lp = Loop::new().unwrap();
    let _dog = watchdog(&lp);
    // A timer an hour away is the only other watcher; with an idle watcher the loop
    // still spins instead of sleeping until it.
    let far = lp.timer(Duration::from_secs(3600), Duration::ZERO);
    far.start(|_, _| panic!("the far timer must not fire"))
        .unwrap();
    let idle = lp.idle();
    let calls = Rc::new(Cell::new(0));
    let c = calls.clone();
    let f = Rc::new(far);
    let f2 = f.clone();
    idle.start(move |w, _| {
        c.set(c.get() + 1);
        if c.get() == 10 {
            w.stop();
            f2.stop();
        }
    })
    .unwrap();
    lp.run().unwrap();
    assert_eq!(calls.get(), 10);
}

#[test]
fn fork_watcher_fires_on_the_iteration_after_loop_fork() {
    let lp = Loop::new().unwrap();
    let _dog = watchdog(&lp);
    let calls = Rc::new(Cell::new(0));
    let fork = Rc::new(lp.fork_watcher());
    let c = calls.clone();
    fork.start(move |_, revents| {
        assert_eq!(revents, Events::FORK);
        c.set(c.get() + 1);
    })
    .unwrap();
    for _ in 0..3 {
        lp.run_nowait().unwrap();
    }
    assert_eq!(calls.get(), 0, "no fork yet");

    lp.fork();
    assert_eq!(calls.get(), 0, "only on the next iteration");
    lp.run_nowait().unwrap();
    assert_eq!(calls.get(), 1);
    lp.run_nowait().unwrap();
    assert_eq!(calls.get(), 1, "once per fork");

    // The loop re-created its kernel state and still sees io.
    let pipe = Pipe::new();
    pipe.write(b"after fork");
    let io = lp.io(pipe.read_fd(), Events::READ).unwrap();
    let seen = Rc::new(Cell::new(false));
    let (s, f) = (seen.clone(), fork.clone());
    io.start(move |w, _| {
        s.set(true);
        w.stop();
        // An active fork watcher keeps the loop alive like any other.
        f.stop();
    })
    .unwrap();
    lp.fork();
    lp.run().unwrap();
    assert!(seen.get());
    assert_eq!(calls.get(), 2);
}

#[test]
fn cleanup_fires_when_the_loop_is_destroyed() {
    let lp = Loop::new().unwrap();
    let log = Rc::new(RefCell::new(Vec::new()));
    let cleanup = lp.cleanup();
    let l = log.clone();
    cleanup
        .start(move |w, revents| {
            // The loop is being destroyed: there is no handle to give out.
            l.borrow_mut().push((revents, w.get_loop().is_none()));
        })
        .unwrap();
    // A cleanup watcher does not keep its loop alive; another watcher does.
    let timer = lp.timer(Duration::from_secs(60), Duration::ZERO);
    assert!(cleanup.get_loop().is_some());

    drop(lp);
    assert!(log.borrow().is_empty(), "the timer still holds the loop");
    drop(timer);
    assert_eq!(*log.borrow(), [(Events::CLEANUP, true)]);

    // Afterwards the handle is inert.
    assert!(cleanup.get_loop().is_none());
    cleanup.stop();
    drop(cleanup);
    assert_eq!(log.borrow().len(), 1);
}

#[test]
fn detached_cleanup_watcher_fires_and_is_freed_with_the_loop() {
    let lp = Loop::new().unwrap();
    let fired = Rc::new(Cell::new(0));
    let cleanup = lp.cleanup();
    let f = fired.clone();
    cleanup.start(move |_, _| f.set(f.get() + 1)).unwrap();
    cleanup.detach();
    assert_eq!(Rc::strong_count(&fired), 2, "the closure is alive");
    drop(lp);
    assert_eq!(fired.get(), 1);
    // The loop owned the watcher, and with it the closure: both are gone.
    assert_eq!(Rc::strong_count(&fired), 1);
}

#[test]
fn stopped_cleanup_watcher_does_not_fire() {
    let lp = Loop::new().unwrap();
    let fired = Rc::new(Cell::new(false));
    let cleanup = lp.cleanup();
    let f = fired.clone();
    cleanup.start(move |_, _| f.set(true)).unwrap();
    cleanup.stop();
    drop(lp);
    assert!(!fired.get());
}
