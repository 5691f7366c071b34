//! Semaphore, BoundedSemaphore, Lock and RLock: FIFO hand-off, timeouts, kills while
//! waiting, over-release, deadlock diagnosis, and use from the hub itself.

mod util;

use gevent_hub::sync::ReleaseError;
use gevent_hub::{
    get_hub, sleep, spawn, wait, BoundedSemaphore, Error, Event, JoinError, Lock, RLock, Semaphore,
    Waitable,
};
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;
use util::{quiet_expected_panics, settle, with_watchdog, Counter, Log, WATCHDOG_LIMIT};

#[test]
fn acquire_timeout_on_an_empty_semaphore_returns_false() {
    with_watchdog(|| {
        let sem = Semaphore::new(0);
        assert!(!sem.acquire_timeout(Duration::from_millis(10)).unwrap());
        assert_eq!(sem.waiting(), 0, "the timed-out waiter left the line");
        // The semaphore still works afterwards.
        sem.release();
        assert!(sem.acquire_timeout(Duration::from_millis(10)).unwrap());
    });
}

#[test]
fn waiters_get_permits_in_the_order_they_started_waiting() {
    with_watchdog(|| {
        let sem = Semaphore::new(0);
        let log = Log::new();
        let gs: Vec<_> = (0..5)
            .map(|i| {
                let (sem, log) = (sem.clone(), log.clone());
                spawn(move || {
                    sem.acquire().unwrap();
                    log.push(format!("{i}"));
                })
            })
            .collect();
        settle();
        assert_eq!(sem.waiting(), 5);
        for n in 1..=5 {
            sem.release();
            settle();
            let want: Vec<String> = (0..n).map(|i| i.to_string()).collect();
            assert_eq!(
                log.entries(),
                want,
                "one release wakes exactly the next waiter"
            );
        }
        for g in gs {
            g.join().unwrap();
        }
    });
}

#[test]
fn a_released_permit_goes_to_the_waiter_not_to_a_later_acquirer() {
    with_watchdog(|| {
        let sem = Semaphore::new(0);
        let s2 = sem.clone();
        let waiter = spawn(move || s2.acquire_timeout(WATCHDOG_LIMIT).unwrap());
        settle();
        sem.release();
        // The waiter has not run yet, but the permit is already its own.
        assert!(
            !sem.try_acquire(),
            "a release must not be taken by a barging acquirer"
        );
        assert_eq!(sem.available(), 0);
        assert!(waiter.join().unwrap());
    });
}

#[test]
fn a_waiter_that_timed_out_leaves_the_line() {
    with_watchdog(|| {
        let sem = Semaphore::new(0);
        let s1 = sem.clone();
        let quick = spawn(move || s1.acquire_timeout(Duration::from_millis(1)).unwrap());
        let s2 = sem.clone();
        let patient = spawn(move || s2.acquire().unwrap());
        assert!(!quick.join().unwrap());
        assert_eq!(sem.waiting(), 1);
        sem.release();
        patient.join().unwrap();
        assert_eq!(
            sem.available(),
            0,
            "the one permit went to the patient waiter"
        );
    });
}

#[test]
fn a_waiter_killed_after_being_handed_a_permit_passes_it_on() {
    with_watchdog(|| {
        let sem = Semaphore::new(0);
        let got = Counter::new();
        let spawn_waiter = || {
            let (sem, got) = (sem.clone(), got.clone());
            spawn(move || {
                sem.acquire().unwrap();
                got.bump();
            })
        };
        let first = spawn_waiter();
        let second = spawn_waiter();
        settle();
        // The kill is queued before the release's wake-up, so `first` unwinds while
        // holding the permit it was handed.
        first.kill_nowait();
        sem.release();
        assert!(matches!(first.join(), Err(JoinError::Killed)));
        second.join().unwrap();
        assert_eq!(got.get(), 1);
        assert_eq!(
            sem.available(),
            0,
            "the permit was passed on, not lost nor doubled"
        );
        assert_eq!(sem.waiting(), 0);
    });
}

#[test]
fn waiting_on_a_semaphore_nobody_will_release_is_diagnosed() {
    let sem = Semaphore::new(0);
    match sem.acquire() {
        Err(Error::WouldBlockForever(what)) => assert!(what.contains("Semaphore"), "{what}"),
        other => panic!("expected WouldBlockForever, got {other:?}"),
    }
    assert_eq!(sem.waiting(), 0);

    let lock = Lock::new();
    let _held = lock.lock().unwrap();
    assert!(matches!(lock.lock(), Err(Error::WouldBlockForever(_))));
}

#[test]
fn a_bounded_semaphore_refuses_to_be_released_more_than_acquired() {
    let sem = BoundedSemaphore::new(2);
    assert_eq!(
        sem.release(),
        Err(ReleaseError::TooManyReleases { bound: 2 })
    );
    assert!(sem.try_acquire());
    sem.release().unwrap();
    assert_eq!(sem.available(), 2);
    assert!(sem.release().is_err());
    // The plain semaphore has no bound.
    let plain = Semaphore::new(0);
    plain.release();
    plain.release();
    assert_eq!(plain.available(), 2);
}

#[test]
fn a_guard_releases_on_drop_and_when_its_greenlet_panics() {
    with_watchdog(|| {
        let sem = Semaphore::new(1);
        {
            let _g = sem.guard().unwrap();
            assert_eq!(sem.available(), 0);
            assert!(sem.try_guard().is_none());
            assert!(sem
                .guard_timeout(Duration::from_millis(1))
                .unwrap()
                .is_none());
        }
        assert_eq!(sem.available(), 1);
        quiet_expected_panics();
        let s2 = sem.clone();
        let g = spawn(move || {
            let _g = s2.guard().unwrap();
            panic!("expected: failing while holding a permit");
        });
        assert!(matches!(g.join(), Err(JoinError::Panicked(_))));
        assert_eq!(sem.available(), 1, "unwinding dropped the guard");
    });
}

#[test]
fn a_lock_keeps_read_modify_write_atomic_across_switches() {
    with_watchdog(|| {
        let lock = Lock::new();
        let value = Rc::new(RefCell::new(0));
        let gs: Vec<_> = (0..4)
            .map(|_| {
                let (lock, value) = (lock.clone(), value.clone());
                spawn(move || {
                    for _ in 0..10 {
                        let _g = lock.lock().unwrap();
                        let v = *value.borrow();
                        // Every other greenlet runs here; only the lock keeps them out.
                        sleep(Duration::ZERO);
                        *value.borrow_mut() = v + 1;
                    }
                })
            })
            .collect();
        for g in gs {
            g.join().unwrap();
        }
        assert_eq!(*value.borrow(), 40, "no update was lost");
        assert!(!lock.locked());
        assert!(lock.release().is_err(), "releasing a free Lock is an error");
    });
}

#[test]
fn an_rlock_is_reentrant_and_only_its_holder_may_release_it() {
    with_watchdog(|| {
        let lock = RLock::new();
        lock.acquire().unwrap();
        lock.acquire().unwrap();
        assert_eq!(lock.count(), 2);
        assert!(lock.is_owned());

        let l2 = lock.clone();
        let other = spawn(move || {
            let release = l2.release();
            let took = l2.try_acquire();
            let waited = l2.acquire_timeout(WATCHDOG_LIMIT).unwrap();
            (release, took, waited, l2.count())
        });
        settle();
        lock.release().unwrap();
        assert!(lock.locked(), "one release of two keeps it held");
        lock.release().unwrap();
        let (release, took, waited, count) = other.join().unwrap();
        assert_eq!(release, Err(ReleaseError::NotOwner));
        assert!(!took, "another greenlet holds it");
        assert!(waited, "freed by its holder, it went to the waiter");
        assert_eq!(count, 1);
        assert_eq!(lock.release(), Err(ReleaseError::NotOwner));
    });
}

#[test]
fn release_from_a_watcher_callback_wakes_the_waiter() {
    with_watchdog(|| {
        let sem = Semaphore::new(0);
        let s2 = sem.clone();
        let t = get_hub()
            .get_loop()
            .timer(Duration::from_millis(1), Duration::ZERO);
        t.start(move |_, _| s2.release()).unwrap();
        sem.acquire().unwrap();
        assert_eq!(sem.available(), 0);
    });
}

#[test]
fn acquiring_in_the_hub_is_refused_only_when_it_would_wait() {
    with_watchdog(|| {
        let sem = Semaphore::new(1);
        let results = Rc::new(RefCell::new(Vec::new()));
        let ran = Event::new();
        let (s2, r2, ran2) = (sem.clone(), results.clone(), ran.clone());
        let t = get_hub()
            .get_loop()
            .timer(Duration::from_millis(1), Duration::ZERO);
        t.start(move |_, _| {
            let first = s2.acquire().map_err(|e| e.to_string());
            let second = s2.acquire().map_err(|e| e.to_string());
            r2.borrow_mut().push((first, second));
            ran2.set();
        })
        .unwrap();
        ran.wait().unwrap();
        let (first, second) = results.borrow_mut().pop().unwrap();
        assert_eq!(first, Ok(()), "a free permit is taken without waiting");
        let e = second.unwrap_err();
        assert!(e.contains("in the hub"), "{e}");
    });
}

#[test]
fn semaphores_and_locks_are_waitable() {
    with_watchdog(|| {
        let sem = Semaphore::new(0);
        let lock = Lock::new();
        let guard = lock.lock().unwrap();
        let s2 = sem.clone();
        let releaser = spawn(move || s2.release());
        assert_eq!(
            wait(&[&sem as &dyn Waitable, &lock], None, Some(1)).unwrap(),
            [0]
        );
        drop(guard);
        assert_eq!(
            wait(&[&sem as &dyn Waitable, &lock], None, None).unwrap(),
            [0, 1]
        );
        releaser.join().unwrap();
    });
}
