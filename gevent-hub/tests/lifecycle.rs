//! A greenlet's life from spawn to join at scale (memory comes back), and how it can
//! end badly: a panic returned by `join`, a wait nothing can end, a blocking call made
//! on the hub itself.

mod util;

use gevent_hub::stack::{self, POOL_MAX};
use gevent_hub::{get_hub, sleep, spawn, try_sleep, Error, Event, Greenlet, JoinError, Outcome};
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;
use util::{mapping_count, rss_bytes, settle, under_valgrind, virtual_bytes, Counter};

const GREENLETS_PER_ROUND: usize = 100_000;
/// Growth of RSS allowed between two identical rounds (allocator slack, lazily
/// committed pages of pooled stacks).
const RSS_SLACK: usize = 8 << 20;
/// Growth of the number of mappings allowed between two identical rounds.
const MAPPING_SLACK: usize = 64;

/// Spawns and joins `total` greenlets, `batch` alive at a time, each yielding once so
/// that the whole batch is suspended together.
fn round(total: usize, batch: usize, done: &Counter) {
    let mut left = total;
    while left > 0 {
        let n = batch.min(left);
        left -= n;
        let gs: Vec<Greenlet<()>> = (0..n)
            .map(|_| {
                let d = done.clone();
                spawn(move || {
                    sleep(Duration::ZERO);
                    d.bump();
                })
            })
            .collect();
        for g in gs {
            g.join().unwrap();
        }
        let (_, pooled) = stack::stats();
        assert!(
            pooled <= POOL_MAX,
            "the stack pool is bounded: {pooled} > {POOL_MAX}"
        );
    }
}

/// Memory readings to compare between rounds.
#[derive(Debug, Clone, Copy)]
struct Reading {
    mapped: usize,
    pooled: usize,
    rss: usize,
    mappings: usize,
}

fn reading() -> Reading {
    let (mapped, pooled) = stack::stats();
    Reading {
        mapped,
        pooled,
        rss: rss_bytes(),
        mappings: mapping_count(),
    }
}

fn assert_no_growth(before: Reading, after: Reading) {
    assert!(
        after.mappings <= before.mappings + MAPPING_SLACK,
        "mappings pile up: {} before, {} after",
        before.mappings,
        after.mappings
    );
    // Valgrind's own bookkeeping (freed-block queue, shadow memory) shows up in RSS.
    if !under_valgrind() {
        assert!(
            after.rss <= before.rss + RSS_SLACK,
            "RSS grew by {} KiB over an identical round",
            (after.rss.saturating_sub(before.rss)) >> 10
        );
    }
}

#[test]
fn memory_returns_to_its_baseline_after_100k_greenlets() {
    // A pool's worth alive at a time: after the first batch every stack is reused.
    let done = Counter::new();
    round(GREENLETS_PER_ROUND, POOL_MAX, &done);
    assert_eq!(done.get(), GREENLETS_PER_ROUND);
    let first = reading();
    // The batch's stacks, plus the hub's own.
    assert!(first.mapped <= POOL_MAX + 1, "stacks mapped: {first:?}");

    round(GREENLETS_PER_ROUND, POOL_MAX, &done);
    assert_eq!(done.get(), 2 * GREENLETS_PER_ROUND);
    let second = reading();
    assert_eq!(
        second.mapped, first.mapped,
        "the second round maps no new stack"
    );
    assert_eq!(second.pooled, first.pooled);
    assert_no_growth(first, second);

    // Trimming the pool gives every pooled stack back: the mappings (64 stacks each)
    // that hold only pooled stacks are unmapped, all but the one with the hub's stack.
    // (Counting mappings says little: the kernel merges neighbouring ones.)
    let vm_before = virtual_bytes();
    stack::trim_pool();
    assert_eq!(stack::stats().1, 0);
    let freed = vm_before.saturating_sub(virtual_bytes());
    assert!(
        freed >= (POOL_MAX - 64) * stack::DEFAULT_STACK_SIZE,
        "trimmed stacks are unmapped: {} KiB of address space freed",
        freed >> 10
    );
}

#[test]
fn stacks_beyond_the_pool_are_unmapped_when_their_greenlets_end() {
    // More alive at once than the pool keeps: the surplus is mapped for each batch
    // and must be unmapped again when the batch ends.
    const BATCH: usize = 1_000;
    let done = Counter::new();
    round(2 * BATCH, BATCH, &done);
    let first = reading();
    assert_eq!(
        first.pooled, POOL_MAX,
        "a full pool after batches larger than it"
    );

    round(8 * BATCH, BATCH, &done);
    let second = reading();
    assert_eq!(done.get(), 10 * BATCH);
    assert_eq!(second.pooled, POOL_MAX);
    assert!(second.mapped > first.mapped, "the surplus was mapped again");
    assert_no_growth(first, second);
}

#[test]
fn a_panic_is_returned_by_join_and_the_others_complete() {
    let gs: Vec<Greenlet<u32>> = (0..3u32)
        .map(|i| {
            spawn(move || {
                sleep(Duration::ZERO);
                if i == 1 {
                    panic!("greenlet {i} failed");
                }
                i * 10
            })
        })
        .collect();
    let mut results = gs.into_iter().map(Greenlet::join);
    assert_eq!(results.next().unwrap().unwrap(), 0);
    match results.next().unwrap() {
        Err(JoinError::Panicked(p)) => {
            assert_eq!(
                p.downcast_ref::<String>().map(String::as_str),
                Some("greenlet 1 failed")
            );
        }
        other => panic!("expected JoinError::Panicked, got {other:?}"),
    }
    assert_eq!(results.next().unwrap().unwrap(), 20);
    assert!(!std::thread::panicking());
}

#[test]
fn a_panicked_greenlet_reports_its_outcome_to_links_and_get() {
    let g = spawn(|| -> u32 { panic!("boom") });
    let seen = Rc::new(RefCell::new(None));
    let s = seen.clone();
    g.link(move |info| *s.borrow_mut() = Some(info.outcome.clone()));
    match g.get() {
        Err(JoinError::Panicked(p)) => assert_eq!(gevent_hub::greenlet::panic_message(&*p), "boom"),
        other => panic!("expected Panicked, got {other:?}"),
    }
    settle();
    assert_eq!(*seen.borrow(), Some(Outcome::Panicked("boom".to_owned())));
    assert!(g.ready() && !g.successful());
}

#[test]
fn join_on_a_greenlet_waiting_for_nothing_reports_would_block_forever() {
    let ev = Event::new();
    let finished = Counter::new();
    let (e, f) = (ev.clone(), finished.clone());
    let g = spawn(move || {
        e.wait().unwrap();
        f.bump();
    });
    match g.join() {
        Err(JoinError::Wait(Error::WouldBlockForever(what))) => {
            assert!(what.contains("join"), "the error names the wait: {what}");
        }
        other => panic!("expected WouldBlockForever, got {other:?}"),
    }
    // The hub recovers: setting the event lets the stranded greenlet finish.
    ev.set();
    settle();
    assert_eq!(finished.get(), 1);
}

#[test]
fn event_wait_in_main_with_nothing_to_wake_it_reports_would_block_forever() {
    match Event::new().wait() {
        Err(Error::WouldBlockForever(what)) => assert!(what.contains("Event"), "{what}"),
        other => panic!("expected WouldBlockForever, got {other:?}"),
    }
}

#[test]
fn blocking_in_a_raw_watcher_callback_is_refused() {
    let hub = get_hub();
    // What each blocking call returned, by name.
    type Results = Rc<RefCell<Vec<(&'static str, Result<(), Error>)>>>;
    let results: Results = Rc::default();
    let done = Event::new();
    let (r, d) = (results.clone(), done.clone());
    let timer = hub.get_loop().timer(Duration::ZERO, Duration::ZERO);
    timer
        .start(move |_, _| {
            let mut r = r.borrow_mut();
            r.push(("sleep", try_sleep(Duration::from_millis(1))));
            r.push(("sleep(0)", try_sleep(Duration::ZERO)));
            r.push(("Event::wait", Event::new().wait()));
            r.push(("idle", gevent_hub::idle()));
            drop(r);
            // Setting an Event does not block: allowed in the hub (it switches to the
            // waiter at once, so the borrow above must be over).
            d.set();
        })
        .unwrap();
    done.wait().unwrap();
    let results = results.borrow();
    assert_eq!(results.len(), 4);
    for (what, r) in results.iter() {
        assert!(
            matches!(r, Err(Error::BlockingInHub(_))),
            "{what} in a watcher callback: {r:?}"
        );
    }
}

#[test]
fn blocking_in_a_run_callback_is_refused() {
    let result = Rc::new(RefCell::new(None));
    let done = Event::new();
    let (r, d) = (result.clone(), done.clone());
    let release = Event::new();
    let rel = release.clone();
    let g = spawn(move || rel.wait().unwrap());
    get_hub().get_loop().run_callback(move || {
        // g has started and blocks on `release`: joining it would have to wait.
        *r.borrow_mut() = Some(g.join_timeout(Duration::from_millis(1)));
        d.set();
    });
    done.wait().unwrap();
    let join = result.borrow_mut().take().expect("the callback ran");
    assert!(
        matches!(join, Err(Error::BlockingInHub(_))),
        "join_timeout in run_callback: {join:?}"
    );
    release.set();
    settle();
}

#[test]
fn links_fire_even_when_the_handle_is_dropped() {
    let fired = Counter::new();
    let f = fired.clone();
    spawn(|| sleep(Duration::ZERO)).link(move |_| f.bump());
    settle();
    assert_eq!(fired.get(), 1);
}

#[test]
fn a_panicking_link_does_not_stop_the_links_after_it() {
    let ran = Counter::new();
    let g = spawn(|| ());
    let r = ran.clone();
    g.link(|_| panic!("expected: a failing link"));
    g.link(move |_| r.bump());
    g.join().unwrap();
    settle();
    assert_eq!(ran.get(), 1, "the link after the panicking one ran");

    // Links added to a greenlet that has finished already run the same way.
    let g = spawn(|| ());
    settle();
    assert!(g.ready());
    let r = ran.clone();
    g.link(|_| panic!("expected: a failing link"));
    g.link(move |_| r.bump());
    settle();
    assert_eq!(ran.get(), 2);

    // And the hub goes on: greenlets still run.
    assert_eq!(spawn(|| 5).join().unwrap(), 5);
}

#[test]
fn a_pool_member_behind_a_panicking_link_frees_its_slot() {
    use gevent_hub::pool::Pool;
    let pool = Pool::new(1);
    let g = Rc::new(spawn(|| ()));
    // This link runs before the pool's own, which frees the slot.
    g.link(|_| panic!("expected: a failing link"));
    pool.add(&g).unwrap();
    settle();
    assert_eq!(pool.free_count(), 1, "the member left the pool");
    assert!(pool.is_empty());
    let next = pool.spawn(|| 9).unwrap();
    settle();
    assert!(next.ready());
}

#[test]
fn a_stack_that_cannot_be_mapped_is_an_error_from_spawn_not_a_silent_hang() {
    for size in [1usize << 46, usize::MAX] {
        for later in [false, true] {
            let b = gevent_hub::Builder::new().stack_size(size);
            let r = if later {
                b.spawn_later(Duration::ZERO, || ())
            } else {
                b.spawn(|| ())
            };
            match r {
                Err(Error::Spawn(e)) => {
                    let msg = e.to_string();
                    assert!(msg.contains("stack"), "size {size:#x}: {msg}");
                }
                other => panic!("size {size:#x}: expected Error::Spawn, got {other:?}"),
            }
        }
    }
    // The hub is unharmed.
    assert_eq!(spawn(|| 1).join().unwrap(), 1);
}

#[test]
fn a_greenlet_local_is_one_value_per_greenlet_dropped_when_its_function_returns() {
    use gevent_hub::GreenletLocal;
    use std::cell::Cell;
    /// Notes its drop, naming its greenlet.
    struct Tracked(String, Rc<RefCell<Vec<String>>>);
    impl Drop for Tracked {
        fn drop(&mut self) {
            self.1.borrow_mut().push(format!("dropped {}", self.0));
        }
    }
    let log: Rc<RefCell<Vec<String>>> = Rc::default();
    let made = Rc::new(Cell::new(0u32));
    let (l, m) = (log.clone(), made.clone());
    let local = Rc::new(GreenletLocal::new(move || {
        m.set(m.get() + 1);
        RefCell::new(Tracked(String::new(), l.clone()))
    }));
    let gs: Vec<_> = (0..3)
        .map(|i| {
            let (local, log) = (local.clone(), log.clone());
            spawn(move || {
                assert!(!local.is_set());
                local.with(|t| t.borrow_mut().0 = format!("g{i}"));
                // The others run here and set theirs: this one's stays its own.
                sleep(Duration::ZERO);
                let mine = local.with(|t| t.borrow().0.clone());
                log.borrow_mut().push(format!("g{i} sees {mine}"));
            })
        })
        .collect();
    for g in gs {
        g.join().unwrap();
    }
    assert_eq!(made.get(), 3, "one value per greenlet, made on first use");
    let log = log.borrow().clone();
    for i in 0..3 {
        let saw = log.iter().position(|e| *e == format!("g{i} sees g{i}"));
        let dropped = log.iter().position(|e| *e == format!("dropped g{i}"));
        assert!(saw.is_some() && dropped > saw, "{log:?}");
    }
}

#[test]
fn a_created_greenlet_runs_only_once_started_and_only_once() {
    use gevent_hub::Builder;
    use std::cell::Cell;
    let runs = Rc::new(Cell::new(0));
    let r = runs.clone();
    let g = Builder::new().create(move || r.set(r.get() + 1)).unwrap();
    settle();
    assert_eq!(runs.get(), 0, "not started: it has not run");
    assert!(!g.is_scheduled());
    g.start();
    g.start();
    assert!(g.is_scheduled());
    g.join().unwrap();
    assert_eq!(runs.get(), 1, "started twice, run once");
    // start_later: it runs after the others queued now.
    let order = Rc::new(RefCell::new(Vec::new()));
    let o = order.clone();
    let late = Builder::new()
        .create(move || o.borrow_mut().push("late"))
        .unwrap();
    late.start_later(Duration::from_millis(1)).unwrap();
    let o = order.clone();
    spawn(move || o.borrow_mut().push("now")).join().unwrap();
    late.join().unwrap();
    assert_eq!(*order.borrow(), ["now", "late"]);
}

#[test]
fn throw_raises_a_payload_of_ones_own_at_the_blocking_point() {
    let g = spawn(|| {
        sleep(Duration::from_secs(60));
        "woke (must not happen)"
    });
    sleep(Duration::ZERO);
    g.throw(Box::new("a custom error")).unwrap();
    assert!(matches!(g.outcome(), Some(Outcome::Panicked(ref m)) if m == "a custom error"));
    match g.join() {
        Err(JoinError::Panicked(p)) => {
            assert_eq!(p.downcast_ref::<&str>(), Some(&"a custom error"))
        }
        other => panic!("{other:?}"),
    }
    // Caught by the greenlet: it goes on and returns.
    let g = spawn(|| {
        let r = std::panic::catch_unwind(|| sleep(Duration::from_secs(60)));
        r.err().and_then(|p| p.downcast_ref::<u32>().copied())
    });
    sleep(Duration::ZERO);
    g.throw_nowait(Box::new(7u32));
    assert_eq!(g.join().unwrap(), Some(7));
}

#[test]
fn throw_into_an_unstarted_greenlet_drops_its_body_unrun() {
    use gevent_hub::Builder;
    use std::cell::Cell;
    struct Dropped(Rc<Cell<bool>>);
    impl Drop for Dropped {
        fn drop(&mut self) {
            self.0.set(true);
        }
    }
    let dropped = Rc::new(Cell::new(false));
    let d = Dropped(dropped.clone());
    let g = Builder::new()
        .create(move || {
            let _d = d;
            unreachable!("never runs");
        })
        .unwrap();
    g.throw_nowait(Box::new("refused"));
    assert!(dropped.get(), "its body and what it captured are gone");
    assert!(matches!(g.outcome(), Some(Outcome::Panicked(ref m)) if m == "refused"));
    g.start();
    settle();
    assert!(matches!(g.join(), Err(JoinError::Panicked(_))));
}

#[test]
fn run_info_says_what_every_greenlet_is_doing() {
    use gevent_hub::{run_info, Builder, RunState};
    let ev = Rc::new(Event::new());
    let e = ev.clone();
    let waiter = Builder::new()
        .name("waiter")
        .spawn(move || e.wait().unwrap())
        .unwrap();
    let idle = Builder::new().name("idle").create(|| ()).unwrap();
    settle();
    let scheduled = Builder::new().name("scheduled").spawn(|| ()).unwrap();
    let info = run_info();
    let state = |id: u64| {
        info.greenlets
            .iter()
            .find(|g| g.id == id)
            .map(|g| g.state.clone())
    };
    assert_eq!(info.greenlets[0].state, RunState::Running, "{info}");
    assert!(
        matches!(state(waiter.id()), Some(RunState::Parked(w)) if w.contains("Event")),
        "{info}"
    );
    assert_eq!(state(idle.id()), Some(RunState::Unstarted), "{info}");
    assert_eq!(state(scheduled.id()), Some(RunState::Scheduled), "{info}");
    let text = info.to_string();
    assert!(
        text.contains("waiter (id ") && text.contains("spawned at gevent-hub/tests/lifecycle.rs:"),
        "{text}"
    );
    ev.set();
    let waiter_id = waiter.id();
    waiter.join().unwrap();
    scheduled.join().unwrap();
    let info = run_info();
    assert!(
        info.greenlets.iter().all(|g| g.id != waiter_id),
        "finished ones are gone: {info}"
    );
}
