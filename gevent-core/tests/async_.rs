//! `Async` watchers woken from real threads: a send wakes a loop that is blocked,
//! sends coalesce, and a sender outliving its watcher (or loop) is a harmless no-op.

mod util;

use gevent_core::{AsyncSender, Events, Loop};
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use util::watchdog;

#[test]
fn sender_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync + Clone + 'static>() {}
    assert_send_sync::<AsyncSender>();
}

#[test]
fn send_from_another_thread_wakes_a_blocked_loop() {
    let lp = Loop::new().unwrap();
    let _dog = watchdog(&lp);
    let w = lp.async_();
    let seen = Rc::new(RefCell::new(None));
    let s = seen.clone();
    let me = thread::current().id();
    w.start(move |w, revents| {
        *s.borrow_mut() = Some((revents, thread::current().id()));
        w.stop();
    })
    .unwrap();

    // The thread sends only once the loop is about to block (its prepare phase):
    // nothing else could wake it before the watchdog.
    let (about_to_block, go) = mpsc::channel();
    let prepare = lp.prepare();
    prepare
        .start(move |w, _| {
            about_to_block.send(()).unwrap();
            w.stop();
        })
        .unwrap();
    let sender = w.sender();
    let t = thread::spawn(move || {
        go.recv().unwrap();
        sender.send()
    });
    lp.run().unwrap();
    assert!(
        t.join().unwrap(),
        "the watcher was alive, so send reports true"
    );
    assert_eq!(*seen.borrow(), Some((Events::ASYNC, me)));
}

#[test]
fn sends_before_the_loop_looks_coalesce_into_one_callback() {
    let lp = Loop::new().unwrap();
    let _dog = watchdog(&lp);
    let w = lp.async_();
    let calls = Rc::new(Cell::new(0));
    let c = calls.clone();
    w.start(move |_, _| c.set(c.get() + 1)).unwrap();

    let sender = w.sender();
    thread::spawn(move || {
        for _ in 0..100 {
            assert!(sender.send());
        }
    })
    .join()
    .unwrap();
    assert!(w.pending());
    lp.run_once().unwrap();
    assert_eq!(calls.get(), 1);
    assert!(!w.pending());
    for _ in 0..3 {
        lp.run_nowait().unwrap();
    }
    assert_eq!(calls.get(), 1, "nothing was sent since");
}

#[test]
fn concurrent_senders_are_all_seen_by_a_later_callback() {
    const THREADS: usize = 4;
    const SENDS: usize = 500;
    let lp = Loop::new().unwrap();
    let _dog = watchdog(&lp);
    let w = lp.async_();
    let finished = Arc::new(AtomicUsize::new(0));
    let calls = Rc::new(Cell::new(0));
    let (c, f) = (calls.clone(), finished.clone());
    w.start(move |w, _| {
        c.set(c.get() + 1);
        if f.load(Ordering::SeqCst) == THREADS {
            w.stop();
        }
    })
    .unwrap();

    let threads: Vec<_> = (0..THREADS)
        .map(|_| {
            let (sender, finished) = (w.sender(), finished.clone());
            thread::spawn(move || {
                for _ in 1..SENDS {
                    assert!(sender.send());
                }
                // Counted before the last send, so the callback that this send causes
                // (there is always one after it) sees the count.
                finished.fetch_add(1, Ordering::SeqCst);
                assert!(sender.send());
            })
        })
        .collect();
    lp.run().unwrap();
    for t in threads {
        t.join().unwrap();
    }
    assert!(
        (1..=THREADS * SENDS).contains(&calls.get()),
        "{}",
        calls.get()
    );
}

#[test]
fn pending_shows_a_send_not_yet_handled() {
    let lp = Loop::new().unwrap();
    let _dog = watchdog(&lp);
    let w = lp.async_();
    let calls = Rc::new(Cell::new(0));
    let c = calls.clone();
    w.start(move |w, _| {
        // libev clears the flag before the callback runs.
        assert!(!w.pending());
        c.set(c.get() + 1);
    })
    .unwrap();
    assert!(!w.pending());

    // From the loop's own thread.
    w.send();
    assert!(w.pending());
    lp.run_once().unwrap();
    assert!(!w.pending());
    assert_eq!(calls.get(), 1);

    // Through a sender on this thread.
    assert!(w.sender().send());
    assert!(w.pending());
    lp.run_once().unwrap();
    assert_eq!(calls.get(), 2);
}

#[test]
fn sender_after_the_watcher_is_dropped_returns_false() {
    let lp = Loop::new().unwrap();
    let w = lp.async_();
    w.start(|_, _| {}).unwrap();
    let sender = w.sender();
    let clone = sender.clone();
    assert!(sender.is_connected());
    assert!(sender.send());

    drop(w);
    assert!(!sender.is_connected());
    assert!(!sender.send());
    // From another thread too, and after the loop is gone as well.
    drop(lp);
    assert!(!thread::spawn(move || clone.send()).join().unwrap());
    assert!(!sender.send());
}

#[test]
fn sender_racing_the_watcher_drop_never_touches_freed_memory() {
    let lp = Loop::new().unwrap();
    let _dog = watchdog(&lp);
    let w = lp.async_();
    let calls = Rc::new(Cell::new(0));
    let c = calls.clone();
    w.start(move |_, _| c.set(c.get() + 1)).unwrap();

    let sender = w.sender();
    let (started, first_sent) = mpsc::channel();
    let t = thread::spawn(move || {
        let mut sent = 0usize;
        while sender.send() {
            if sent == 0 {
                started.send(()).unwrap();
            }
            sent += 1;
        }
        sent
    });
    first_sent.recv().unwrap();
    lp.run_once().unwrap();
    assert!(calls.get() >= 1);
    // Dropped while the thread keeps sending: the thread sees `false` and stops.
    drop(w);
    assert!(t.join().unwrap() >= 1);
}

#[test]
fn sends_while_stopped_wait_for_the_next_start() {
    let lp = Loop::new().unwrap();
    let _dog = watchdog(&lp);
    let w = lp.async_();
    let calls = Rc::new(Cell::new(0));
    let c = calls.clone();
    w.start(move |_, _| c.set(c.get() + 1)).unwrap();
    w.stop();

    // Still connected (the watcher exists), but nothing runs while it is stopped.
    assert!(w.sender().send());
    w.send();
    assert!(w.pending());
    for _ in 0..3 {
        lp.run_nowait().unwrap();
    }
    assert_eq!(calls.get(), 0);

    // Started again, it gets the (coalesced) sends.
    let c = calls.clone();
    w.start(move |_, _| c.set(c.get() + 1)).unwrap();
    lp.run_once().unwrap();
    assert_eq!(calls.get(), 1);

    // `stop` forgets a send that was not delivered yet.
    w.send();
    w.stop();
    assert!(!w.pending());
    let c = calls.clone();
    w.start(move |_, _| c.set(c.get() + 1)).unwrap();
    for _ in 0..3 {
        lp.run_nowait().unwrap();
    }
    assert_eq!(calls.get(), 1);
}

#[test]
fn send_before_the_first_start_is_not_lost() {
    let lp = Loop::new().unwrap();
    let _dog = watchdog(&lp);
    let w = lp.async_();
    let sender = w.sender();
    // Another thread sends before the loop's thread started the watcher, and the loop
    // iterates meanwhile (plain libev asserts here: its wake-up pipe does not exist).
    assert!(thread::spawn(move || sender.send()).join().unwrap());
    w.send();
    lp.run_nowait().unwrap();

    let calls = Rc::new(Cell::new(0));
    let c = calls.clone();
    w.start(move |w, _| {
        c.set(c.get() + 1);
        w.stop();
    })
    .unwrap();
    lp.run().unwrap();
    assert_eq!(calls.get(), 1);
}
