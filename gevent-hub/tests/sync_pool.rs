//! Group and Pool: bounded concurrency, slots, join/kill, add/discard, and the
//! streaming imap/imap_unordered/map.

mod util;

use gevent_hub::pool::{Group, Pool};
use gevent_hub::{sleep, spawn, Error, Event, JoinError, Outcome};
use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;
use util::{in_hub, quiet_expected_panics, settle, with_watchdog, Counter, Log};

/// Yields to the hub `n` times.
fn yield_times(n: usize) {
    for _ in 0..n {
        sleep(Duration::ZERO);
    }
}

#[test]
fn imap_runs_at_most_size_calls_at_once_and_yields_in_input_order() {
    with_watchdog(|| {
        let pool = Pool::new(10);
        let running = Rc::new(Cell::new(0usize));
        let most = Rc::new(Cell::new(0usize));
        let (r2, m2) = (running.clone(), most.clone());
        let results: Vec<u64> = pool
            .imap(
                move |x: u64| {
                    r2.set(r2.get() + 1);
                    m2.set(m2.get().max(r2.get()));
                    // Calls take different numbers of switches, so they finish out of order.
                    yield_times(1 + (x as usize * 7) % 5);
                    r2.set(r2.get() - 1);
                    x * 2
                },
                0..1000,
            )
            .map(|r| r.unwrap())
            .collect();
        assert_eq!(results, (0..1000).map(|x| x * 2).collect::<Vec<_>>());
        assert_eq!(most.get(), 10, "ten calls ran at once, never more");
        assert_eq!(running.get(), 0);
        settle();
        assert_eq!(pool.free_count(), 10, "every slot came back");
        assert!(pool.is_empty());
    });
}

#[test]
fn imap_unordered_yields_results_as_they_complete() {
    with_watchdog(|| {
        let pool = Pool::new(3);
        // The call with the fewest switches finishes first.
        let out: Vec<usize> = pool
            .imap_unordered(
                |n: usize| {
                    yield_times(n);
                    n
                },
                [3, 1, 2],
            )
            .map(|r| r.unwrap())
            .collect();
        assert_eq!(out, [1, 2, 3]);
    });
}

#[test]
fn map_reports_a_call_that_panicked() {
    with_watchdog(|| {
        quiet_expected_panics();
        let pool = Pool::new(2);
        let r = pool.map(
            |x: u32| {
                assert!(x != 3, "expected: call {x} failed");
                x
            },
            0..5,
        );
        match r {
            Err(JoinError::Panicked(p)) => {
                let msg = p.downcast_ref::<String>().cloned().unwrap_or_default();
                assert!(msg.contains("call 3 failed"), "{msg}");
            }
            other => panic!("expected the panic of call 3, got {other:?}"),
        }
        settle();
        pool.join().unwrap();
        assert_eq!(pool.free_count(), 2);
    });
}

#[test]
fn dropping_an_imap_early_kills_the_calls_it_started() {
    with_watchdog(|| {
        let pool = Pool::new(4);
        let unwound = Counter::new();
        let u2 = unwound.clone();
        let gate = Event::new();
        let g2 = gate.clone();
        let first: Vec<u32> = pool
            .imap(
                move |x: u32| {
                    let _guard = u2.drop_guard();
                    if x > 0 {
                        g2.wait().unwrap(); // never set: only a kill ends these
                    }
                    x
                },
                0..100,
            )
            .take(1)
            .map(|r| r.unwrap())
            .collect();
        assert_eq!(first, [0]);
        pool.join().unwrap();
        assert_eq!(pool.free_count(), 4);
        // Call 0 returned; calls 1..=3 were started (the window is 4) and killed.
        assert_eq!(unwound.get(), 4);
    });
}

#[test]
fn a_pool_of_size_zero_is_always_full() {
    with_watchdog(|| {
        let pool = Pool::new(0);
        assert!(pool.full());
        assert_eq!(pool.free_count(), 0);
        assert!(!pool
            .wait_available_timeout(Duration::from_millis(1))
            .unwrap());
        let r = pool.spawn_timeout(Duration::from_millis(1), || unreachable!("never runs"));
        assert!(matches!(r, Err(Error::TimedOut)), "{r:?}");
        assert_eq!(pool.len(), 0);
    });
}

#[test]
fn spawn_waits_for_a_free_slot() {
    with_watchdog(|| {
        let pool = Pool::new(2);
        let gate = Event::new();
        let log = Log::new();
        for i in 0..2 {
            let (gate, log) = (gate.clone(), log.clone());
            pool.spawn(move || {
                gate.wait().unwrap();
                log.push(format!("blocker {i} done"));
            })
            .unwrap();
        }
        assert_eq!(pool.free_count(), 0);
        assert!(pool.full());
        assert!(matches!(
            pool.spawn_timeout(Duration::from_millis(1), || ()),
            Err(Error::TimedOut)
        ));
        let (p2, l2) = (pool.clone(), log.clone());
        let spawner = spawn(move || {
            let g = p2.spawn(move || l2.push("third ran")).unwrap();
            g.get().unwrap();
        });
        settle();
        assert!(log.entries().is_empty(), "the third waits for a slot");
        gate.set();
        spawner.join().unwrap();
        pool.join().unwrap();
        let entries = log.entries();
        assert_eq!(entries.len(), 3);
        assert_eq!(
            entries[2], "third ran",
            "it ran only once a blocker finished"
        );
    });
}

#[test]
fn join_reports_whether_every_member_finished() {
    with_watchdog(|| {
        let group = Group::new();
        let gate = Event::new();
        let g2 = gate.clone();
        let member = group.spawn(move || g2.wait().unwrap());
        assert!(!group.join_timeout(Duration::from_millis(1)).unwrap());
        assert!(group.contains(&member));
        gate.set();
        group.join().unwrap();
        assert!(group.is_empty());
        assert!(member.ready());
    });
}

#[test]
fn kill_ends_every_member_and_runs_their_destructors() {
    with_watchdog(|| {
        let pool = Pool::new(3);
        let unwound = Counter::new();
        let gate = Event::new();
        let members: Vec<_> = (0..3)
            .map(|_| {
                let (u, gate) = (unwound.clone(), gate.clone());
                pool.spawn(move || {
                    let _guard = u.drop_guard();
                    gate.wait().unwrap();
                })
                .unwrap()
            })
            .collect();
        settle();
        pool.kill().unwrap();
        assert_eq!(unwound.get(), 3);
        assert!(members.iter().all(|g| g.outcome() == Some(Outcome::Killed)));
        assert_eq!(pool.free_count(), 3);
    });
}

#[test]
fn add_and_discard_manage_membership_of_existing_greenlets() {
    with_watchdog(|| {
        let pool = Pool::new(1);
        let gate = Event::new();
        let g2 = gate.clone();
        let outsider = Rc::new(spawn(move || g2.wait().unwrap()));
        pool.add(&outsider).unwrap();
        assert!(pool.contains(&outsider));
        assert_eq!(pool.free_count(), 0, "an added greenlet holds a slot");
        pool.add(&outsider).unwrap(); // again: nothing happens, no second slot
        let latecomer = Rc::new(spawn(|| ()));
        assert!(!pool
            .add_timeout(&latecomer, Duration::from_millis(1))
            .unwrap());
        assert!(!pool.contains(&latecomer), "no slot, so not added");
        assert!(pool.discard(&outsider));
        assert!(!pool.discard(&outsider));
        assert_eq!(pool.free_count(), 1);
        // A discarded greenlet is not waited for.
        pool.join().unwrap();
        assert!(!outsider.ready(), "discarding does not stop it");
        gate.set();
        settle();
        assert!(outsider.ready());
    });
}

#[test]
fn wait_available_waits_for_a_free_slot_without_taking_it() {
    with_watchdog(|| {
        let pool = Pool::new(1);
        let gate = Event::new();
        let g2 = gate.clone();
        pool.spawn(move || g2.wait().unwrap()).unwrap();
        assert!(!pool
            .wait_available_timeout(Duration::from_millis(1))
            .unwrap());
        let g3 = gate.clone();
        let opener = spawn(move || g3.set());
        pool.wait_available().unwrap();
        assert_eq!(pool.free_count(), 1, "waiting took no slot");
        opener.join().unwrap();
    });
}

#[test]
fn a_member_killed_before_it_started_frees_its_slot() {
    with_watchdog(|| {
        let pool = Pool::new(1);
        let ran = Counter::new();
        let r2 = ran.clone();
        let g = pool.spawn(move || r2.bump()).unwrap();
        g.kill_nowait();
        settle();
        assert_eq!(ran.get(), 0);
        assert_eq!(pool.free_count(), 1);
        assert!(pool.is_empty());
    });
}

#[test]
fn joining_a_pool_whose_member_waits_forever_is_diagnosed() {
    let pool = Pool::new(1);
    let never = Event::new();
    let n2 = never.clone();
    pool.spawn(move || n2.wait().unwrap()).unwrap();
    assert!(matches!(pool.join(), Err(Error::WouldBlockForever(_))));
    assert!(matches!(
        pool.spawn(|| ()),
        Err(Error::WouldBlockForever(_))
    ));
    pool.kill().unwrap();
}

#[test]
fn apply_waits_for_a_slot_and_returns_the_value() {
    with_watchdog(|| {
        let pool = Pool::new(1);
        let gate = Event::new();
        let log = Log::new();
        let (g2, l2) = (gate.clone(), log.clone());
        pool.spawn(move || {
            g2.wait().unwrap();
            l2.push("blocker done");
        })
        .unwrap();
        let (p2, l3) = (pool.clone(), log.clone());
        let caller = spawn(move || {
            let v = p2
                .apply(move || {
                    l3.push("applied ran");
                    7
                })
                .unwrap();
            v * 6
        });
        settle();
        assert!(
            log.entries().is_empty(),
            "apply waits for the pool's one slot"
        );
        gate.set();
        assert_eq!(caller.join().unwrap(), 42);
        assert_eq!(log.entries(), ["blocker done", "applied ran"]);
        settle();
        assert_eq!(pool.free_count(), 1);
    });
}

#[test]
fn apply_from_a_member_of_a_full_pool_runs_in_place() {
    with_watchdog(|| {
        let pool = Pool::new(1);
        let p2 = pool.clone();
        let member = pool
            .spawn(move || {
                let me = gevent_hub::current_id();
                // Waiting for a slot here would wait for this greenlet itself.
                p2.apply(move || gevent_hub::current_id() == me).unwrap()
            })
            .unwrap();
        assert!(member.get().unwrap(), "it ran in the calling member");
    });
}

#[test]
fn apply_reports_the_panic_of_its_call() {
    with_watchdog(|| {
        quiet_expected_panics();
        let pool = Pool::new(2);
        match pool.apply(|| -> u32 { panic!("expected: applied call failed") }) {
            Err(JoinError::Panicked(p)) => {
                let msg = p.downcast_ref::<&str>().copied().unwrap_or_default();
                assert_eq!(msg, "expected: applied call failed");
            }
            other => panic!("expected the call's panic, got {other:?}"),
        }
        assert_eq!(pool.free_count(), 2);
    });
}

#[test]
fn apply_async_on_a_full_pool_returns_at_once_and_runs_when_a_slot_frees() {
    with_watchdog(|| {
        let pool = Pool::new(1);
        let gate = Event::new();
        let log = Log::new();
        let (g2, l2) = (gate.clone(), log.clone());
        let blocker = pool
            .apply_async(
                move || {
                    g2.wait().unwrap();
                    l2.push("blocker done");
                },
                None,
            )
            .unwrap();
        settle();
        assert!(pool.full());
        let (l3, l4) = (log.clone(), log.clone());
        let queued = pool
            .apply_async(
                move || {
                    l3.push("queued ran");
                    5
                },
                Some(Box::new(move |v: &u32| {
                    l4.push(format!("callback got {v}"))
                })),
            )
            .unwrap();
        log.push("apply_async returned");
        settle();
        assert!(!queued.ready(), "it waits for the slot");
        assert!(!pool.contains(&queued), "waiting outside the pool");
        gate.set();
        assert_eq!(queued.get().unwrap(), 5);
        assert!(blocker.ready());
        assert_eq!(
            log.entries(),
            [
                "apply_async returned",
                "blocker done",
                "queued ran",
                "callback got 5"
            ]
        );
    });
}

#[test]
fn apply_async_reports_a_panic_and_skips_the_callback() {
    with_watchdog(|| {
        quiet_expected_panics();
        let group = Group::new();
        let called = Counter::new();
        let c2 = called.clone();
        let g = group
            .apply_async(
                || -> u32 { panic!("expected: async call failed") },
                Some(Box::new(move |_: &u32| c2.bump())),
            )
            .unwrap();
        assert!(matches!(g.get(), Err(JoinError::Panicked(_))));
        assert_eq!(called.get(), 0);
    });
}

#[test]
fn map_async_is_a_greenlet_whose_value_is_the_results() {
    with_watchdog(|| {
        let pool = Pool::new(2);
        let running = Rc::new(Cell::new(0usize));
        let most = Rc::new(Cell::new(0usize));
        let (r2, m2) = (running.clone(), most.clone());
        let total = Counter::new();
        let t2 = total.clone();
        let g = pool
            .map_async(
                move |x: usize| {
                    r2.set(r2.get() + 1);
                    m2.set(m2.get().max(r2.get()));
                    yield_times(x % 3 + 1);
                    r2.set(r2.get() - 1);
                    x * x
                },
                0..6,
                Some(Box::new(move |v: &Vec<usize>| {
                    for _ in v {
                        t2.bump()
                    }
                })),
            )
            .unwrap();
        assert!(!g.ready(), "returned before any call ran");
        assert_eq!(g.get().unwrap(), [0, 1, 4, 9, 16, 25]);
        assert_eq!(total.get(), 6, "the callback saw the six results");
        assert_eq!(most.get(), 2, "the pool's bound held");
    });
}

#[test]
fn map_async_ends_as_its_first_failed_call() {
    with_watchdog(|| {
        quiet_expected_panics();
        let group = Group::new();
        let g = group
            .map_async(
                |x: u32| {
                    assert!(x != 2, "expected: item {x} is bad");
                    x
                },
                0..4,
                None,
            )
            .unwrap();
        match g.get() {
            Err(JoinError::Panicked(p)) => {
                let msg = p.downcast_ref::<String>().cloned().unwrap_or_default();
                assert!(msg.contains("item 2 is bad"), "{msg}");
            }
            other => panic!("expected item 2's panic, got {other:?}"),
        }
        assert!(matches!(g.outcome(), Some(Outcome::Panicked(_))));
    });
}

#[test]
fn killone_kills_one_member_and_stops_tracking_it() {
    with_watchdog(|| {
        let pool = Pool::new(2);
        let unwound = Counter::new();
        let gate = Event::new();
        let spawn_waiter = |pool: &Pool| {
            let (u, gate) = (unwound.clone(), gate.clone());
            pool.spawn(move || {
                let _guard = u.drop_guard();
                gate.wait().unwrap();
            })
            .unwrap()
        };
        let a = spawn_waiter(&pool);
        let b = spawn_waiter(&pool);
        settle();
        assert!(pool.killone(&a, true, None).unwrap());
        assert_eq!(unwound.get(), 1, "a unwound before killone returned");
        assert!(!pool.contains(&a) && pool.contains(&b));
        assert_eq!(pool.free_count(), 1);
        // Without blocking: untracked at once, finished at the hub's next turn.
        assert!(!pool.killone(&b, false, None).unwrap());
        assert!(pool.is_empty() && pool.free_count() == 2);
        assert_eq!(unwound.get(), 1);
        settle();
        assert!(b.ready() && unwound.get() == 2);
        // Not a member: not killed; with a timeout, waited for that long.
        let outsider = spawn(move || gate.wait().unwrap());
        settle();
        assert!(!pool
            .killone(&outsider, true, Some(Duration::from_millis(1)))
            .unwrap());
        assert!(!outsider.ready());
        outsider.kill().unwrap();
    });
}

#[test]
fn join_raise_error_returns_at_the_first_member_that_panics_naming_it() {
    with_watchdog(|| {
        quiet_expected_panics();
        let group = Group::new();
        let gate = Event::new();
        let g2 = gate.clone();
        let slow = group.spawn(move || g2.wait().unwrap());
        let bad = Rc::new(
            gevent_hub::Builder::new()
                .name("parser")
                .spawn(|| -> () { panic!("expected: bad header") })
                .unwrap(),
        );
        group.add(&bad);
        match group.join_raise_error() {
            Err(Error::GreenletFailed(m)) => assert_eq!(m, "parser: expected: bad header"),
            other => panic!("expected parser's failure, got {other:?}"),
        }
        assert!(!slow.ready(), "it returned without waiting for the rest");
        // A killed member is no failure.
        slow.kill_nowait();
        assert!(group
            .join_raise_error_timeout(Duration::from_secs(5))
            .unwrap());
        assert_eq!(slow.outcome(), Some(Outcome::Killed));
        // The failure was reported once: a later join has nothing to report.
        let ok = group.spawn(|| 1);
        group.join_raise_error().unwrap();
        assert!(ok.ready());
    });
}

#[test]
fn apply_in_the_hub_is_refused_before_its_call_starts() {
    with_watchdog(|| {
        let pool = Pool::new(1);
        let ran = Counter::new();
        let (p2, r2) = (pool.clone(), ran.clone());
        let r = Some(in_hub(move || p2.apply(move || r2.bump())));
        assert!(
            matches!(r, Some(Err(JoinError::Wait(Error::BlockingInHub(_))))),
            "{r:?}"
        );
        settle();
        assert_eq!(ran.get(), 0, "the call never started");
        assert!(pool.is_empty());
        // apply_async never waits: it works there.
        let p3 = pool.clone();
        let g = in_hub(move || p3.apply_async(|| 9, None).unwrap());
        assert_eq!(g.get().unwrap(), 9);
    });
}
