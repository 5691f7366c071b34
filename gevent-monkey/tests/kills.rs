//! A kill or a `Timeout` that lands while a greenlet is parked inside a patched call:
//! nothing unwinds through the C frames below the hook. The call fails
//! (`ECANCELED` for a kill, `ETIMEDOUT` for a Timeout; a sleep ends early), and the
//! same kill or Timeout is delivered at the greenlet's next blocking point in Rust, at
//! the end of its `with_timeout`, or when its function returns: the outcome stays
//! Killed and destructors run.

mod common;

use common::{patched, tcp_pair};
use gevent_hub::{sleep, spawn, with_timeout, Error, Outcome};
use std::cell::RefCell;
use std::io::Read;
use std::rc::Rc;
use std::time::Duration;

type Log = Rc<RefCell<Vec<String>>>;

/// Notes its drop in the log (a destructor that must run when the greenlet dies).
struct Guard(Log);

impl Drop for Guard {
    fn drop(&mut self) {
        self.0.borrow_mut().push("guard dropped".into());
    }
}

#[test]
fn a_kill_during_a_std_read_fails_the_read_and_ends_the_greenlet_killed() {
    let (outcome, log) = patched(|| {
        let log: Log = Rc::default();
        let (a, _b) = tcp_pair();
        let l = log.clone();
        let g = spawn(move || {
            let _guard = Guard(l.clone());
            let r = (&a).read(&mut [0u8; 8]);
            l.borrow_mut()
                .push(format!("read: {:?}", r.map_err(|e| e.raw_os_error())));
            // The caller goes on after the failed call, as std code would...
            l.borrow_mut().push("after the read".into());
            // ... until its next blocking point in Rust, where the kill lands.
            sleep(Duration::from_secs(60));
            l.borrow_mut()
                .push("after the sleep (must not happen)".into());
        });
        // Let it park in the read.
        sleep(Duration::ZERO);
        g.kill().unwrap();
        let outcome = g.outcome();
        let log = log.borrow().clone();
        (outcome, log)
    });
    assert_eq!(outcome, Some(Outcome::Killed));
    assert_eq!(
        log,
        [
            format!("read: Err(Some({}))", libc::ECANCELED),
            "after the read".to_string(),
            "guard dropped".to_string(),
        ]
    );
}

#[test]
fn a_greenlet_killed_in_a_std_call_that_then_returns_is_killed_not_successful() {
    let (outcome, joined) = patched(|| {
        let (a, _b) = tcp_pair();
        let g = spawn(move || {
            // Returns (with the read's error) without another blocking point.
            (&a).read(&mut [0u8; 8]).map_err(|e| e.raw_os_error())
        });
        sleep(Duration::ZERO);
        g.kill().unwrap();
        (g.outcome(), g.join().is_err())
    });
    assert_eq!(outcome, Some(Outcome::Killed));
    assert!(joined, "join reports the kill, not the function's value");
}

#[test]
fn with_timeout_around_a_std_read_fires() {
    let (r, inner) = patched(|| {
        let (a, _b) = tcp_pair();
        let inner = Rc::new(RefCell::new(None));
        let i = inner.clone();
        let r = with_timeout(Duration::from_millis(10), move || {
            let e = (&a).read(&mut [0u8; 8]).unwrap_err();
            *i.borrow_mut() = e.raw_os_error();
            "the closure's own value"
        });
        let inner = *inner.borrow();
        (r.map_err(|e| matches!(e, Error::TimedOut)), inner)
    });
    assert_eq!(r, Err(true), "with_timeout reports its timeout");
    assert_eq!(inner, Some(libc::ETIMEDOUT), "the read inside failed");
}

#[test]
fn with_timeout_around_thread_sleep_fires() {
    let r = patched(|| {
        with_timeout(Duration::from_millis(5), || {
            std::thread::sleep(Duration::from_secs(60));
        })
        .map_err(|e| matches!(e, Error::TimedOut))
    });
    assert_eq!(r, Err(true));
}

#[test]
fn a_kill_during_thread_sleep_ends_the_greenlet() {
    let (outcome, log) = patched(|| {
        let log: Log = Rc::default();
        let l = log.clone();
        let g = spawn(move || {
            let _guard = Guard(l.clone());
            std::thread::sleep(Duration::from_secs(60));
            l.borrow_mut().push("woke".into());
        });
        sleep(Duration::ZERO);
        g.kill().unwrap();
        let log = log.borrow().clone();
        (g.outcome(), log)
    });
    assert_eq!(outcome, Some(Outcome::Killed));
    // The sleep ended early (as if it had completed); the function's return delivered
    // the kill.
    assert_eq!(log, ["woke", "guard dropped"]);
}

#[test]
fn once_killed_every_patched_call_fails_at_once() {
    let log = patched(|| {
        let log: Log = Rc::default();
        let l = log.clone();
        let (a, _b) = tcp_pair();
        let g = spawn(move || {
            for _ in 0..3 {
                let r = (&a).read(&mut [0u8; 8]);
                l.borrow_mut()
                    .push(format!("{:?}", r.map_err(|e| e.raw_os_error())));
            }
        });
        sleep(Duration::ZERO);
        g.kill().unwrap();
        let log = log.borrow().clone();
        log
    });
    let want = format!("Err(Some({}))", libc::ECANCELED);
    assert_eq!(log, [want.clone(), want.clone(), want]);
}

#[test]
fn a_thread_ending_while_a_greenlet_is_parked_in_a_std_read_ends_it_cleanly() {
    use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
    use std::sync::Arc;
    // What the greenlet saw, from outside the thread (whose thread-locals go with it).
    let dropped = Arc::new(AtomicBool::new(false));
    let errno = Arc::new(AtomicI32::new(0));
    struct Flag(Arc<AtomicBool>);
    impl Drop for Flag {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }
    let (d, e) = (dropped.clone(), errno.clone());
    patched(move || {
        let (a, b) = tcp_pair();
        spawn(move || {
            let _flag = Flag(d);
            let _peer = b;
            let r = (&a).read(&mut [0u8; 8]);
            e.store(
                r.err().and_then(|e| e.raw_os_error()).unwrap_or(-1),
                Ordering::SeqCst,
            );
        });
        // Let it park in the read, then end the thread with it still parked.
        sleep(Duration::ZERO);
    });
    assert!(
        dropped.load(Ordering::SeqCst),
        "the greenlet was ended, its destructors ran"
    );
    assert_eq!(
        errno.load(Ordering::SeqCst),
        libc::ECANCELED,
        "its read failed instead of blocking the exit"
    );
}

#[test]
fn a_killed_greenlet_retrying_its_failed_call_still_lets_the_others_run() {
    let (ticks, outcome) = patched(|| {
        let (a, _b) = tcp_pair();
        let ticks = Rc::new(std::cell::Cell::new(0u32));
        let t = ticks.clone();
        let ticker = spawn(move || loop {
            t.set(t.get() + 1);
            sleep(Duration::ZERO);
        });
        let g = spawn(move || {
            // Code that ignores errors and retries, as many accept loops do.
            for _ in 0..100 {
                let _ = (&a).read(&mut [0u8; 8]);
            }
        });
        sleep(Duration::ZERO);
        let before = ticks.get();
        g.kill().unwrap();
        let after = ticks.get();
        ticker.kill().unwrap();
        (after - before, g.outcome())
    });
    assert!(
        ticks >= 50,
        "the ticker ran while the killed greenlet retried: {ticks}"
    );
    assert_eq!(outcome, Some(Outcome::Killed));
}
