//! Waiting on many things at once, and on one thing by many: `joinall`, `wait`,
//! `killall` and `iwait` subscribe to each object once however many hub turns the wait
//! spans; thousands of waiters park on one `Event` and wake on one `set`; an `Event`
//! set and cleared in the same turn still wakes its waiters (gevent's
//! `TestEvent_SetThenClear`); and a switch into a waiting greenlet from anywhere but
//! what it waits for is an error, not a wake-up (gevent's `InvalidSwitchError`).

mod util;

use gevent_hub::greenlet::getcurrent;
use gevent_hub::net::{wait_read, wait_write};
use gevent_hub::{
    get_hub, iwait, joinall, killall, sleep, spawn, try_sleep, wait, with_timeout, AnyGreenlet,
    Error, Event, Greenlet, Outcome, Waitable, Waker,
};
use std::cell::Cell;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::time::Duration;
use util::{scaled, Counter, WATCHDOG_LIMIT};

/// A greenlet that counts how often a wait subscribes to it.
struct Counted {
    g: Greenlet<()>,
    subscriptions: Counter,
}

impl Waitable for Counted {
    fn is_ready(&self) -> bool {
        self.g.ready()
    }
    fn subscribe(&self, w: Waker) {
        self.subscriptions.bump();
        self.g.subscribe(w);
    }
}

impl AnyGreenlet for Counted {
    fn kill_nowait(&self) {
        self.g.kill_nowait();
    }
    fn outcome(&self) -> Option<Outcome> {
        self.g.outcome()
    }
    fn name(&self) -> &str {
        self.g.name()
    }
}

/// `n` greenlets, the i-th waiting for its own event; and a driver that sets them one
/// per hub turn, so that they finish on `n` different turns.
fn staggered(n: usize, subscriptions: &Counter) -> (Vec<Counted>, Driver) {
    let events: Vec<Event> = (0..n).map(|_| Event::new()).collect();
    let gs = events
        .iter()
        .map(|e| {
            let e = e.clone();
            Counted {
                g: spawn(move || e.wait().unwrap()),
                subscriptions: subscriptions.clone(),
            }
        })
        .collect();
    let done = Event::new();
    let d = done.clone();
    let g = spawn(move || {
        for e in events {
            e.set();
            sleep(Duration::ZERO);
        }
        d.set();
    });
    (gs, Driver { g, done })
}

/// The greenlet that sets the events, and an event set when it has set them all.
struct Driver {
    g: Greenlet<()>,
    done: Event,
}

impl Driver {
    fn join(self) -> Result<(), gevent_hub::JoinError> {
        self.g.join()
    }
    fn clone_for_join(&self) -> Event {
        self.done.clone()
    }
}

fn any_refs(gs: &[Counted]) -> Vec<&dyn AnyGreenlet> {
    gs.iter().map(|g| g as &dyn AnyGreenlet).collect()
}

#[test]
fn joinall_subscribes_to_each_greenlet_once() {
    for n in [200, scaled(10_000, 10)] {
        let subs = Counter::new();
        let (gs, driver) = staggered(n, &subs);
        let done = with_timeout(WATCHDOG_LIMIT, || joinall(&any_refs(&gs), None, false))
            .expect("joinall finished")
            .unwrap();
        assert!(done);
        assert!(gs.iter().all(|g| g.g.ready()));
        assert!(
            subs.get() <= n,
            "{n} greenlets finishing on {n} turns: {} subscriptions",
            subs.get()
        );
        driver.join().unwrap();
    }
}

#[test]
fn joinall_with_raise_error_returns_at_the_first_failure_without_resubscribing() {
    let subs = Counter::new();
    let (mut gs, driver) = staggered(200, &subs);
    // Fails once the driver is done, after the others finished on 200 turns.
    let d = driver.clone_for_join();
    gs.push(Counted {
        g: spawn(move || {
            d.wait().unwrap();
            panic!("boom")
        }),
        subscriptions: subs.clone(),
    });
    let r = with_timeout(WATCHDOG_LIMIT, || joinall(&any_refs(&gs), None, true))
        .expect("joinall returned");
    match r {
        Err(Error::GreenletFailed(m)) => assert!(m.contains("boom"), "{m}"),
        other => panic!("expected the failure, got {other:?}"),
    }
    assert!(subs.get() <= gs.len(), "{} subscriptions", subs.get());
}

#[test]
fn killall_waits_for_its_targets_with_one_subscription_each() {
    let subs = Counter::new();
    let n = 200;
    let gs: Vec<Counted> = (0..n)
        .map(|i| Counted {
            g: spawn(move || {
                // Each one swallows the kill and lingers for i turns: they finish on
                // different turns.
                let r = catch_unwind(AssertUnwindSafe(|| try_sleep(Duration::from_secs(3600))));
                assert!(r.is_err(), "killed while asleep");
                for _ in 0..i {
                    sleep(Duration::ZERO);
                }
            }),
            subscriptions: subs.clone(),
        })
        .collect();
    sleep(Duration::ZERO);
    assert!(killall(&any_refs(&gs), true, Some(WATCHDOG_LIMIT)).unwrap());
    assert!(subs.get() <= n, "{} subscriptions", subs.get());
}

#[test]
fn wait_for_all_and_for_a_count_subscribe_once() {
    let subs = Counter::new();
    let (gs, driver) = staggered(200, &subs);
    let objs: Vec<&dyn Waitable> = gs.iter().map(|g| g as &dyn Waitable).collect();
    let first = with_timeout(WATCHDOG_LIMIT, || wait(&objs, None, Some(50)))
        .expect("wait returned")
        .unwrap();
    assert!(first.len() >= 50, "{} ready", first.len());
    let after_first = subs.get();
    assert!(after_first <= 200, "{after_first} subscriptions");
    let all = wait(&objs, None, None).unwrap();
    assert_eq!(all, (0..200).collect::<Vec<_>>());
    driver.join().unwrap();
}

#[test]
fn iwait_yields_each_object_once_and_subscribes_once() {
    let subs = Counter::new();
    let n = 200;
    let (gs, driver) = staggered(n, &subs);
    let objs: Vec<&dyn Waitable> = gs.iter().map(|g| g as &dyn Waitable).collect();
    let order: Vec<usize> = with_timeout(WATCHDOG_LIMIT, || {
        iwait(&objs, None).map(Result::unwrap).collect()
    })
    .expect("iwait ended");
    assert_eq!(
        order,
        (0..n).collect::<Vec<_>>(),
        "in the order they finished"
    );
    assert!(subs.get() <= n, "{} subscriptions", subs.get());
    driver.join().unwrap();
}

#[test]
fn iwait_sees_what_became_ready_while_its_loop_body_blocked() {
    let subs = Counter::new();
    let n = 50;
    let (gs, driver) = staggered(n, &subs);
    let objs: Vec<&dyn Waitable> = gs.iter().map(|g| g as &dyn Waitable).collect();
    let mut order = Vec::new();
    for r in iwait(&objs, Some(WATCHDOG_LIMIT)) {
        order.push(r.unwrap());
        // Blocking on something else between items: several others finish meanwhile.
        for _ in 0..3 {
            sleep(Duration::ZERO);
        }
    }
    order.sort_unstable();
    assert_eq!(order, (0..n).collect::<Vec<_>>(), "each one exactly once");
    driver.join().unwrap();
}

#[test]
fn iwait_with_an_unbounded_timeout_is_no_timeout() {
    let e = Event::new();
    let e2 = e.clone();
    let setter = spawn(move || e2.set());
    let objs: [&dyn Waitable; 1] = [&e];
    let got: Vec<usize> = iwait(&objs, Some(Duration::MAX))
        .map(Result::unwrap)
        .collect();
    assert_eq!(got, [0]);
    setter.join().unwrap();
}

#[test]
fn a_hundred_thousand_waiters_park_on_one_event_and_wake_on_one_set() {
    let n = scaled(100_000, 10);
    let event = Event::new();
    let woken = Counter::new();
    let gs: Vec<Greenlet<bool>> = (0..n)
        .map(|_| {
            let (e, w) = (event.clone(), woken.clone());
            spawn(move || {
                let r = e.wait_timeout(WATCHDOG_LIMIT).unwrap();
                w.bump();
                r
            })
        })
        .collect();
    // Let every one of them park.
    sleep(Duration::ZERO);
    assert!(gs.iter().all(|g| g.started() && !g.ready()));
    assert_eq!(woken.get(), 0);
    event.set();
    for g in gs {
        assert!(g.join().unwrap(), "woken by the set, not by the timeout");
    }
    assert_eq!(woken.get(), n);
}

#[test]
fn an_event_set_then_cleared_in_one_turn_wakes_its_waiters() {
    for n in [1, 100, 1000] {
        let event = Event::new();
        let gs: Vec<Greenlet<bool>> = (0..n)
            .map(|_| {
                let e = event.clone();
                spawn(move || e.wait_timeout(WATCHDOG_LIMIT).unwrap())
            })
            .collect();
        sleep(Duration::ZERO);
        event.set();
        event.clear();
        for g in gs {
            assert!(
                g.join().unwrap(),
                "{n} waiters: it was set while they waited, so wait returns true"
            );
        }
        // And plain `wait` returns too (it does not park again).
        let e = event.clone();
        let g = spawn(move || e.wait().unwrap());
        sleep(Duration::ZERO);
        event.set();
        event.clear();
        with_timeout(WATCHDOG_LIMIT, || g.join().unwrap()).expect("wait returned");
    }
}

#[test]
fn wait_counts_an_event_set_then_cleared_as_ready() {
    let event = Event::new();
    let e = event.clone();
    let setter = spawn(move || {
        e.set();
        e.clear();
    });
    let objs: [&dyn Waitable; 1] = [&event];
    assert_eq!(wait(&objs, Some(WATCHDOG_LIMIT), None).unwrap(), [0]);
    setter.join().unwrap();
}

/// A pipe nobody writes to: its read end never becomes readable.
fn quiet_pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills two fds on success, which we then own.
    let r = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) };
    assert_eq!(r, 0, "pipe2: {}", io::Error::last_os_error());
    use std::os::fd::FromRawFd;
    // SAFETY: both fds are fresh and owned by nobody else.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

/// Switches into the current greenlet from a hub callback, with a value, while it
/// waits: what gevent's `test_wait_read_invalid_switch` does.
fn schedule_foreign_switch_into_me() {
    let me = getcurrent();
    get_hub().get_loop().run_callback(move || {
        let _ = me.switch("not what you waited for");
    });
}

#[test]
fn a_foreign_switch_into_wait_read_is_an_error_not_readiness() {
    let (r, _w) = quiet_pipe();
    schedule_foreign_switch_into_me();
    let e = wait_read(r.as_raw_fd(), Some(WATCHDOG_LIMIT)).unwrap_err();
    assert_ne!(e.kind(), io::ErrorKind::TimedOut, "{e}");
    let inner = e
        .get_ref()
        .and_then(|i| i.downcast_ref::<Error>())
        .unwrap_or_else(|| panic!("not a hub error: {e:?}"));
    assert!(matches!(inner, Error::InvalidSwitch(_)), "{inner:?}");
    // The waiter is still usable: a real wait after it works.
    let (r2, w2) = quiet_pipe();
    nix_write(&w2, b"x");
    wait_read(r2.as_raw_fd(), Some(WATCHDOG_LIMIT)).unwrap();
}

fn nix_write(fd: &OwnedFd, data: &[u8]) {
    // SAFETY: writing from a valid buffer to an open fd.
    let n = unsafe { libc::write(fd.as_raw_fd(), data.as_ptr().cast(), data.len()) };
    assert_eq!(n, data.len() as isize);
}

#[test]
fn a_foreign_switch_into_wait_write_is_an_error() {
    // A full pipe is not writable.
    let (_r, w) = quiet_pipe();
    let chunk = [0u8; 65536];
    // SAFETY: non-blocking writes from a valid buffer until the pipe is full.
    while unsafe { libc::write(w.as_raw_fd(), chunk.as_ptr().cast(), chunk.len()) } > 0 {}
    schedule_foreign_switch_into_me();
    let e = wait_write(w.as_raw_fd(), Some(WATCHDOG_LIMIT)).unwrap_err();
    let inner = e.get_ref().and_then(|i| i.downcast_ref::<Error>());
    assert!(matches!(inner, Some(Error::InvalidSwitch(_))), "{e:?}");
}

#[test]
fn a_foreign_switch_into_an_event_wait_or_a_sleep_is_an_error() {
    let event = Event::new();
    schedule_foreign_switch_into_me();
    let r = event.wait_timeout(WATCHDOG_LIMIT);
    assert!(matches!(r, Err(Error::InvalidSwitch(_))), "{r:?}");

    schedule_foreign_switch_into_me();
    let r = try_sleep(WATCHDOG_LIMIT);
    assert!(matches!(r, Err(Error::InvalidSwitch(_))), "{r:?}");

    // Waiting still works afterwards.
    let flag = Rc::new(Cell::new(false));
    let f = flag.clone();
    let e2 = event.clone();
    let g = spawn(move || {
        f.set(true);
        e2.set();
    });
    assert!(event.wait_timeout(WATCHDOG_LIMIT).unwrap());
    assert!(flag.get());
    g.join().unwrap();
}

/// A port from gevent passes its list of greenlets as it is: `joinall(&gs)`, not a Vec
/// of `&dyn AnyGreenlet` built by hand; any iterator of references works too.
#[test]
fn joinall_killall_and_wait_take_a_plain_list_of_greenlets() {
    let gs: Vec<_> = (0..4u32).map(|i| spawn(move || i * i)).collect();
    assert!(joinall(&gs, None, true).unwrap());
    assert_eq!(wait(&gs, None, None).unwrap(), [0, 1, 2, 3]);
    assert_eq!(
        gs.into_iter()
            .map(|g| g.join().unwrap())
            .collect::<Vec<_>>(),
        [0, 1, 4, 9]
    );

    let sleepers: Vec<_> = (0..3)
        .map(|_| spawn(|| sleep(Duration::from_secs(3600))))
        .collect();
    sleep(Duration::ZERO);
    // Only the first two, through an iterator.
    assert!(killall(sleepers.iter().take(2), true, None).unwrap());
    assert!(sleepers[0].ready() && sleepers[1].ready() && !sleepers[2].ready());
    assert!(killall([&sleepers[2]], true, None).unwrap());
}

#[test]
fn hub_wait_returns_once_every_greenlet_and_timer_is_done() {
    use gevent_hub::hub_wait;
    // A watchdog of its own: with_timeout's timer would keep the loop alive, which is
    // exactly what hub_wait waits out.
    let (tx, rx) = std::sync::mpsc::channel();
    let body = std::thread::spawn(move || {
        let done = Rc::new(Cell::new(0u32));
        // Greenlets that spawn more and sleep: hub_wait outlasts all of them.
        for i in 0..3u64 {
            let d = done.clone();
            spawn(move || {
                sleep(Duration::from_millis(i));
                let d2 = d.clone();
                spawn(move || {
                    sleep(Duration::from_millis(1));
                    d2.set(d2.get() + 1);
                });
                d.set(d.get() + 1);
            });
        }
        let from_a_greenlet = spawn(|| matches!(hub_wait(), Err(Error::NotMainGreenlet(_))));
        hub_wait().unwrap();
        assert_eq!(done.get(), 6, "every greenlet ran to its end");
        assert!(
            from_a_greenlet.join().unwrap(),
            "only the main greenlet may hub_wait"
        );
        let _ = tx.send(());
    });
    match rx.recv_timeout(WATCHDOG_LIMIT) {
        Ok(()) | Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
            if let Err(p) = body.join() {
                std::panic::resume_unwind(p);
            }
        }
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => panic!("hub_wait did not return"),
    }
}

#[test]
fn joinall_count_returns_once_count_have_finished_naming_which() {
    gevent_hub::with_timeout(WATCHDOG_LIMIT, || {
        let events: Vec<Event> = (0..4).map(|_| Event::new()).collect();
        let gs: Vec<Greenlet<usize>> = events
            .iter()
            .enumerate()
            .map(|(i, e)| {
                let e = e.clone();
                spawn(move || {
                    e.wait().unwrap();
                    i
                })
            })
            .collect();
        // Another greenlet finishes them in its own order: 2, then 0.
        let (e0, e2) = (events[0].clone(), events[2].clone());
        let finisher = spawn(move || {
            e2.set();
            sleep(Duration::ZERO);
            e0.set();
        });
        let done = gevent_hub::joinall_count(&gs, 2, None, false).unwrap();
        assert_eq!(done, [0, 2], "indexes of the finished, in order");
        assert!(!gs[1].ready() && !gs[3].ready());
        finisher.join().unwrap();
        // With a timeout: what finished by then.
        let by_then =
            gevent_hub::joinall_count(&gs, 4, Some(Duration::from_millis(1)), false).unwrap();
        assert_eq!(by_then, [0, 2]);
        // A count of 0, or one past the end, is no error.
        assert_eq!(
            gevent_hub::joinall_count(&gs, 0, None, false).unwrap(),
            [0, 2]
        );
        events[1].set();
        events[3].set();
        assert_eq!(
            gevent_hub::joinall_count(&gs, 99, None, false).unwrap(),
            [0, 1, 2, 3]
        );
    })
    .unwrap();
}

#[test]
fn joinall_count_with_raise_error_returns_at_the_first_failure() {
    gevent_hub::with_timeout(WATCHDOG_LIMIT, || {
        util::quiet_expected_panics();
        let never = Event::new();
        let n2 = never.clone();
        let waiting = spawn(move || n2.wait().unwrap());
        let failing = gevent_hub::Builder::new()
            .name("loader")
            .spawn(|| panic!("expected: no such file"))
            .unwrap();
        let gs: Vec<&dyn AnyGreenlet> = vec![&waiting, &failing];
        match gevent_hub::joinall_count(&gs, 2, None, true) {
            Err(Error::GreenletFailed(m)) => assert_eq!(m, "loader: expected: no such file"),
            other => panic!("expected loader's failure, got {other:?}"),
        }
        assert!(!waiting.ready());
        waiting.kill().unwrap();
    })
    .unwrap();
}
