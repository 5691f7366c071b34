//! `Signal` watchers with real signals sent to this process: the callback runs in the
//! loop, on the loop's thread, after the signal arrived.
//!
//! libev installs a process-wide handler for a watched signal and restores the default
//! action when the last watcher stops, so each test owns its own signal (the tests of
//! this file run on several threads at once) and raises it only while a watcher for it
//! is active.

mod util;

use gevent_core::{Error, Events, Loop, NSIG};
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::thread;
use std::time::Duration;
use util::{kill_self, raise, watchdog};

#[test]
fn signal_sent_to_the_process_runs_the_callback_in_the_loop() {
    let lp = Loop::new().unwrap();
    let _dog = watchdog(&lp);
    let w = lp.signal(libc::SIGUSR1).unwrap();
    assert_eq!(w.signum(), libc::SIGUSR1);

    let seen = Rc::new(RefCell::new(None));
    let s = seen.clone();
    let me = thread::current().id();
    w.start(move |w, revents| {
        let lp = w.get_loop().unwrap();
        // In the loop (not in a signal handler) and on the loop's thread.
        *s.borrow_mut() = Some((revents, w.signum(), lp.depth(), thread::current().id()));
        w.stop();
    })
    .unwrap();

    // Sent while the loop runs, from one of its callbacks.
    let sender = lp.timer(Duration::from_millis(1), Duration::ZERO);
    sender.start(|_, _| kill_self(libc::SIGUSR1)).unwrap();
    lp.run().unwrap();

    let got = seen
        .borrow_mut()
        .take()
        .expect("the signal callback never ran");
    assert_eq!(got, (Events::SIGNAL, libc::SIGUSR1, 1, me));
}

#[test]
fn signal_raised_before_run_is_delivered_by_the_first_iteration() {
    let lp = Loop::new().unwrap();
    let _dog = watchdog(&lp);
    let w = lp.signal(libc::SIGUSR2).unwrap();
    let calls = Rc::new(Cell::new(0));
    let c = calls.clone();
    w.start(move |_, revents| {
        assert_eq!(revents, Events::SIGNAL);
        c.set(c.get() + 1);
    })
    .unwrap();

    raise(libc::SIGUSR2);
    assert_eq!(calls.get(), 0, "the callback must wait for the loop");
    lp.run_once().unwrap();
    assert_eq!(calls.get(), 1);
}

#[test]
fn signals_arriving_before_the_loop_looks_coalesce() {
    let lp = Loop::new().unwrap();
    let _dog = watchdog(&lp);
    let w = lp.signal(libc::SIGWINCH).unwrap();
    let calls = Rc::new(Cell::new(0));
    let c = calls.clone();
    w.start(move |_, _| c.set(c.get() + 1)).unwrap();

    for _ in 0..3 {
        raise(libc::SIGWINCH);
    }
    lp.run_once().unwrap();
    for _ in 0..3 {
        lp.run_nowait().unwrap();
    }
    assert_eq!(calls.get(), 1);

    // And the watcher keeps listening.
    raise(libc::SIGWINCH);
    lp.run_once().unwrap();
    assert_eq!(calls.get(), 2);
}

#[test]
fn every_watcher_of_a_signal_on_the_loop_is_called() {
    let lp = Loop::new().unwrap();
    let _dog = watchdog(&lp);
    let calls = Rc::new(RefCell::new(Vec::new()));
    let watchers: Vec<_> = (0..2)
        .map(|i| {
            let w = lp.signal(libc::SIGALRM).unwrap();
            let c = calls.clone();
            w.start(move |w, _| {
                c.borrow_mut().push(i);
                w.stop();
            })
            .unwrap();
            w
        })
        .collect();
    raise(libc::SIGALRM);
    lp.run().unwrap();
    calls.borrow_mut().sort();
    assert_eq!(*calls.borrow(), [0, 1]);
    drop(watchers);
}

#[test]
fn one_signal_belongs_to_one_loop_at_a_time() {
    let first = Loop::new().unwrap();
    let second = Loop::new().unwrap();
    let a = first.signal(libc::SIGURG).unwrap();
    let b = second.signal(libc::SIGURG).unwrap();
    a.start(|_, _| {}).unwrap();
    // libev would assert here; a second watcher on the same loop is fine.
    assert_eq!(
        b.start(|_, _| {}).unwrap_err(),
        Error::SignalInUse(libc::SIGURG)
    );
    assert!(!b.is_active());
    let a2 = first.signal(libc::SIGURG).unwrap();
    a2.start(|_, _| {}).unwrap();

    // Once the first loop lets go of it, the second one gets it, and the signal.
    a.stop();
    assert_eq!(
        b.start(|_, _| {}).unwrap_err(),
        Error::SignalInUse(libc::SIGURG)
    );
    drop(a2);
    let got = Rc::new(Cell::new(false));
    let g = got.clone();
    b.start(move |w, _| {
        g.set(true);
        w.stop();
    })
    .unwrap();
    let _dog = watchdog(&second);
    raise(libc::SIGURG);
    second.run().unwrap();
    assert!(got.get());
}

#[test]
fn bad_signal_numbers_are_errors() {
    let lp = Loop::new().unwrap();
    assert_eq!(lp.signal(0).unwrap_err(), Error::SignalOutOfRange(0));
    assert_eq!(lp.signal(-1).unwrap_err(), Error::SignalOutOfRange(-1));
    assert_eq!(lp.signal(NSIG).unwrap_err(), Error::SignalOutOfRange(NSIG));
    assert_eq!(
        lp.signal(libc::SIGKILL).unwrap_err(),
        Error::SignalUncatchable(libc::SIGKILL)
    );
    assert_eq!(
        lp.signal(libc::SIGSTOP).unwrap_err(),
        Error::SignalUncatchable(libc::SIGSTOP)
    );
    // The highest one is accepted (made, not started: nothing is raised here).
    assert_eq!(lp.signal(NSIG - 1).unwrap().signum(), NSIG - 1);
}

/// libev resets a signal to SIG_DFL when its last watcher stops; the disposition the
/// process had before (here: SIGPIPE ignored, as in every Rust binary) must come back.
#[test]
fn stopping_the_last_watcher_restores_the_previous_disposition() {
    let disposition = |sig| {
        // SAFETY: reads the disposition only.
        unsafe {
            let mut old: libc::sigaction = std::mem::zeroed();
            assert_eq!(libc::sigaction(sig, std::ptr::null(), &mut old), 0);
            old.sa_sigaction
        }
    };
    let before = disposition(libc::SIGPIPE);
    assert_eq!(before, libc::SIG_IGN, "the Rust runtime ignores SIGPIPE");
    let lp = gevent_core::Loop::new().unwrap();
    let w = lp.signal(libc::SIGPIPE).unwrap();
    w.start(|_, _| {}).unwrap();
    assert_ne!(
        disposition(libc::SIGPIPE),
        libc::SIG_IGN,
        "libev's handler is installed"
    );
    w.stop();
    assert_eq!(disposition(libc::SIGPIPE), libc::SIG_IGN);
}
