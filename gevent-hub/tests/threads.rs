//! Hubs and OS threads: other threads hand work to a hub (`run_callback_threadsafe`)
//! and wake its greenlets (`RemoteWaker`); each thread's hub runs on its own.

mod util;

use gevent_hub::{
    current_name, get_hub, sleep, spawn, with_timeout, Error, Event, HubHandle, RemoteWaker, Wait,
};
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::{self, ThreadId};
use std::time::Duration;
use util::{Log, WATCHDOG_LIMIT};

#[test]
fn handles_and_remote_wakers_can_cross_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    fn assert_send<T: Send>() {}
    assert_send_sync::<HubHandle>();
    assert_send::<RemoteWaker>();
}

thread_local! {
    /// Set by the cross-thread callback: it runs on this (the hub's) thread, so it can
    /// reach the test's thread-locals.
    static CALLED: Event = Event::new();
}

#[test]
fn run_callback_threadsafe_runs_the_closure_on_the_hub_thread() {
    let handle = get_hub().handle();
    let seen: Arc<Mutex<Option<(ThreadId, String)>>> = Arc::default();
    let s = seen.clone();
    let sender = thread::spawn(move || {
        handle.run_callback_threadsafe(move || {
            *s.lock().unwrap() = Some((thread::current().id(), current_name()));
            CALLED.with(Event::set);
        })
    });
    assert!(
        sender.join().unwrap(),
        "the hub is alive: the call was queued"
    );
    // The timeout keeps the loop alive until the callback comes (and fails the test
    // if it never does).
    let called = CALLED.with(Event::clone);
    with_timeout(WATCHDOG_LIMIT, || called.wait().unwrap()).expect("the callback ran");

    let (tid, name) = seen.lock().unwrap().clone().unwrap();
    assert_eq!(tid, thread::current().id(), "it ran on the hub's thread");
    assert_eq!(name, "Hub", "it ran in the hub greenlet");
}

#[test]
fn run_callback_threadsafe_to_a_finished_thread_hub_returns_false() {
    // A hub that never ran, and one whose loop ran greenlets before its thread ended.
    for run_it in [false, true] {
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            tx.send(get_hub().handle()).unwrap();
            if run_it {
                spawn(|| sleep(Duration::ZERO)).join().unwrap();
            }
        })
        .join()
        .unwrap();
        let handle = rx.recv().unwrap();
        assert!(
            !handle.run_callback_threadsafe(|| unreachable!("its hub is gone")),
            "ran: {run_it}"
        );
    }
}

/// Runs `work` on a new thread whose hub's loop carries a cleanup watcher, and says
/// whether the loop was destroyed (the watcher fired) by the time the thread ended.
fn loop_destroyed_at_thread_exit(work: fn()) -> bool {
    let destroyed = Arc::new(AtomicBool::new(false));
    let d = destroyed.clone();
    thread::spawn(move || {
        let c = get_hub().get_loop().cleanup();
        c.start(move |_, _| d.store(true, Ordering::SeqCst))
            .unwrap();
        c.detach();
        work();
    })
    .join()
    .unwrap();
    destroyed.load(Ordering::SeqCst)
}

#[test]
fn a_thread_that_never_ran_its_hub_destroys_its_loop_on_exit() {
    assert!(loop_destroyed_at_thread_exit(|| ()));
    // Ending with a would-block-forever leaves the hub outside its loop: also fine.
    assert!(loop_destroyed_at_thread_exit(|| {
        assert!(Event::new().wait().is_err());
    }));
}

#[test]
fn a_thread_that_ran_its_hub_destroys_its_loop_on_exit() {
    assert!(loop_destroyed_at_thread_exit(|| {
        spawn(|| sleep(Duration::ZERO)).join().unwrap();
    }));
}

#[test]
fn a_remote_waker_resumes_the_parked_greenlet_and_keeps_the_loop_alive() {
    let hub = get_hub();
    let w = Wait::new("a wake-up from another thread").unwrap();
    let remote = w.remote_waker();

    // The other thread wakes us only once the hub has run with main parked, so the
    // loop must stay alive on the remote waker's account until then.
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let waker_thread = thread::spawn(move || {
        go_rx.recv().unwrap();
        remote.wake()
    });
    hub.get_loop().run_callback(move || go_tx.send(()).unwrap());

    // A watchdog that does not itself keep the loop alive.
    let watchdog_fired = Rc::new(Cell::new(false));
    let (f, wk) = (watchdog_fired.clone(), w.waker());
    let watchdog = hub.get_loop().timer(WATCHDOG_LIMIT, Duration::ZERO);
    watchdog
        .start(move |_, _| {
            f.set(true);
            wk.wake();
        })
        .unwrap();
    watchdog.set_ref(false);

    let woken = w.park();
    assert!(matches!(woken, Ok(true)), "woken, not {woken:?}");
    assert!(!watchdog_fired.get(), "the remote wake-up arrived");
    assert!(
        waker_thread.join().unwrap(),
        "the hub was alive to take the wake-up"
    );
    drop(w);

    // With the wait over, nothing keeps the loop alive any more.
    assert!(matches!(
        Event::new().wait(),
        Err(Error::WouldBlockForever(_))
    ));
}

#[test]
fn a_greenlet_parked_on_a_remote_waker_is_joinable() {
    let (tx, rx) = mpsc::channel::<RemoteWaker>();
    let waker_thread = thread::spawn(move || rx.recv().unwrap().wake());
    let g = spawn(move || {
        let w = Wait::new("a wake-up from another thread").unwrap();
        tx.send(w.remote_waker()).unwrap();
        w.park().unwrap()
    });
    // Nothing but the remote waker keeps the loop alive while g waits.
    assert!(g.join().unwrap(), "g was woken, not timed out");
    assert!(waker_thread.join().unwrap());
}

/// What one thread's hub did, for the other thread to compare.
fn interleave(tag: &str) -> Vec<String> {
    let log = Log::new();
    let gs: Vec<_> = (1..=2)
        .map(|i| {
            let (log, tag) = (log.clone(), tag.to_owned());
            spawn(move || {
                log.push(format!("{tag}{i}A"));
                sleep(Duration::ZERO);
                log.push(format!("{tag}{i}B"));
            })
        })
        .collect();
    for g in gs {
        g.join().unwrap();
    }
    log.entries()
}

#[test]
fn two_hubs_on_two_threads_run_independently() {
    // Thread a parks its main greenlet until thread b, after running its own hub's
    // greenlets, wakes it: a's hub sits blocked in its loop while b's does its work.
    let (waker_tx, waker_rx) = mpsc::channel::<RemoteWaker>();
    let a = thread::spawn(move || {
        let loop_ptr = get_hub().get_loop().as_raw() as usize;
        let w = Wait::new("thread b").unwrap();
        waker_tx.send(w.remote_waker()).unwrap();
        let woken = with_timeout(WATCHDOG_LIMIT, || w.park()).expect("b woke a");
        assert!(woken.unwrap());
        (loop_ptr, interleave("a"))
    });
    let b = thread::spawn(move || {
        let loop_ptr = get_hub().get_loop().as_raw() as usize;
        let remote = waker_rx.recv().unwrap();
        let log = interleave("b");
        sleep(Duration::from_millis(1));
        assert!(remote.wake());
        (loop_ptr, log)
    });
    let (loop_b, log_b) = b.join().unwrap();
    let (loop_a, log_a) = a.join().unwrap();
    assert_ne!(loop_a, loop_b, "each thread has its own hub and loop");
    assert_eq!(log_a, ["a1A", "a2A", "a1B", "a2B"]);
    assert_eq!(log_b, ["b1A", "b2A", "b1B", "b2B"]);
}

thread_local! {
    /// First touched after the hub exists, so its destructor runs before the hub's
    /// teardown (glibc runs thread-local destructors last registered, first run).
    static TOUCHED_AFTER_THE_HUB: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// A hub callback wakes the main greenlet, which ends the thread. Whatever the callback
/// does after the wake-up runs before the thread's thread-locals are destroyed: it is
/// never left suspended on the hub's stack, to be resumed during teardown, when it
/// would reach values already freed.
#[test]
fn what_a_hub_callback_does_after_a_wake_up_runs_before_thread_exit() {
    let saw: Arc<Mutex<Option<bool>>> = Arc::default();
    let s = saw.clone();
    thread::spawn(move || {
        let hub = get_hub();
        TOUCHED_AFTER_THE_HUB.with(|v| v.borrow_mut().push(1));
        let e = Event::new();
        let e2 = e.clone();
        hub.get_loop().run_callback(move || {
            e2.set();
            let alive = TOUCHED_AFTER_THE_HUB.try_with(|v| v.borrow().len()).is_ok();
            *s.lock().unwrap() = Some(alive);
        });
        e.wait().unwrap();
        // The thread ends here, with the main greenlet resumed.
    })
    .join()
    .unwrap();
    assert_eq!(
        *saw.lock().unwrap(),
        Some(true),
        "the callback's rest ran while the thread's thread-locals were alive"
    );
}
