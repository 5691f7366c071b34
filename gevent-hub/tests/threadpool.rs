//! ThreadPool: blocking work on OS threads while greenlets keep running, bounded
//! threads, panics reported, the loop kept alive by pending tasks, cancellation on drop,
//! retirement of idle threads, and spawn_blocking.

mod util;

use gevent_hub::threadpool::{default_pool, ThreadError};
use gevent_hub::{get_hub, sleep, spawn, spawn_blocking, wait, Error, Event, ThreadPool, Waitable};
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;
use util::{quiet_expected_panics, with_watchdog};

#[test]
fn a_thousand_blocking_tasks_run_on_ten_threads_while_greenlets_keep_running() {
    with_watchdog(|| {
        let pool = ThreadPool::new(10).unwrap();
        let ticks = Rc::new(Cell::new(0u32));
        let done = Rc::new(Cell::new(false));
        let (t2, d2) = (ticks.clone(), done.clone());
        let ticker = spawn(move || {
            while !d2.get() {
                sleep(Duration::from_millis(1));
                t2.set(t2.get() + 1);
            }
        });

        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let results: Vec<_> = (0..1000usize)
            .map(|i| {
                let (running, most) = (running.clone(), most.clone());
                pool.spawn(move || {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(1));
                    running.fetch_sub(1, Ordering::SeqCst);
                    i
                })
            })
            .collect();
        for (i, r) in results.into_iter().enumerate() {
            assert_eq!(r.join().unwrap(), i);
        }
        done.set(true);
        ticker.join().unwrap();

        assert!(
            ticks.get() >= 3,
            "the ticker kept ticking: {} ticks",
            ticks.get()
        );
        let most = most.load(Ordering::SeqCst);
        assert!((1..=10).contains(&most), "{most} tasks ran at once");
        assert!(pool.threads() <= 10);
    });
}

#[test]
fn a_panicking_task_reports_its_message() {
    with_watchdog(|| {
        quiet_expected_panics();
        let pool = ThreadPool::new(1).unwrap();
        let r = pool.spawn(|| -> u8 { panic!("expected: disk on fire: {}", 42) });
        match r.join() {
            Err(ThreadError::Panicked(m)) => assert_eq!(m, "expected: disk on fire: 42"),
            other => panic!("expected the panic, got {other:?}"),
        }
        // The worker survived it.
        assert_eq!(pool.apply(|| 7).unwrap(), 7);
    });
}

#[test]
fn waiting_on_a_task_from_main_is_not_mistaken_for_a_deadlock() {
    // No watchdog here: its timer would keep the loop alive and hide the bug this
    // looks for (which shows as WouldBlockForever, not as a hang).
    {
        // The task blocks until a hub timer releases it; after that timer, the only
        // thing keeping the loop alive is the pending task itself.
        let (tx, rx) = mpsc::channel::<()>();
        let pool = ThreadPool::new(1).unwrap();
        let r = pool.spawn(move || rx.recv().is_ok());
        let t = get_hub()
            .get_loop()
            .timer(Duration::from_millis(1), Duration::ZERO);
        let tx = RefCell::new(Some(tx));
        t.start(move |_, _| {
            if let Some(tx) = tx.borrow_mut().take() {
                let _ = tx.send(());
            }
        })
        .unwrap();
        assert!(r.join().unwrap());
    }
}

#[test]
fn dropping_the_pool_cancels_tasks_not_started() {
    with_watchdog(|| {
        let pool = ThreadPool::new(1).unwrap();
        let (started_tx, started_rx) = mpsc::channel::<()>();
        let (go_tx, go_rx) = mpsc::channel::<()>();
        let running = pool.spawn(move || {
            let _ = started_tx.send(());
            go_rx.recv().is_ok()
        });
        let queued = pool.spawn(|| "never runs");
        // Blocking the hub thread for a moment is fine here: nothing else waits.
        started_rx.recv().unwrap();
        // The drop joins the running task, so it happens on another thread.
        let dropper = std::thread::spawn(move || drop(pool));
        assert!(matches!(queued.join(), Err(ThreadError::Cancelled)));
        go_tx.send(()).unwrap();
        assert!(running.join().unwrap());
        dropper.join().unwrap();
    });
}

#[test]
fn idle_threads_retire_and_new_work_starts_new_ones() {
    with_watchdog(|| {
        let pool = ThreadPool::with_idle_timeout(4, Duration::from_millis(1)).unwrap();
        // Seen from a task, its own worker is alive.
        let seen = |pool: &ThreadPool| {
            let p = pool.clone();
            pool.spawn(move || p.threads())
        };
        let rs: Vec<_> = (0..4).map(|_| seen(&pool)).collect();
        for r in rs {
            assert!((1..=4).contains(&r.join().unwrap()));
        }
        // Polls a condition (not a timing assumption); the watchdog bounds it.
        while pool.threads() > 0 {
            sleep(Duration::from_millis(1));
        }
        assert_eq!(
            seen(&pool).join().unwrap(),
            1,
            "new work started a new worker"
        );
    });
}

#[test]
fn task_results_are_waitable() {
    with_watchdog(|| {
        let pool = ThreadPool::new(2).unwrap();
        let (tx, rx) = mpsc::channel::<()>();
        let slow = pool.spawn(move || rx.recv().is_ok());
        let quick = pool.spawn(|| 1);
        assert_eq!(
            wait(&[&slow as &dyn Waitable, &quick], None, Some(1)).unwrap(),
            [1]
        );
        assert!(!slow.join_timeout(Duration::from_millis(1)).unwrap());
        tx.send(()).unwrap();
        assert_eq!(
            wait(&[&slow as &dyn Waitable, &quick], None, None).unwrap(),
            [0, 1]
        );
        assert!(slow.join().unwrap());
        assert_eq!(quick.join().unwrap(), 1);
    });
}

#[test]
fn spawn_blocking_runs_the_call_on_another_thread() {
    with_watchdog(|| {
        let me = std::thread::current().id();
        let there = spawn_blocking(|| std::thread::current().id())
            .join()
            .unwrap();
        assert_ne!(there, me);
        let manifest = spawn_blocking(|| std::fs::read_to_string("Cargo.toml"))
            .join()
            .unwrap()
            .unwrap();
        assert!(manifest.contains("gevent-hub"));
        assert_eq!(default_pool().max_threads(), 10, "gevent's default size");
    });
}

#[test]
fn waiting_for_a_task_in_the_hub_is_refused_before_it_is_submitted() {
    with_watchdog(|| {
        let out = Rc::new(RefCell::new(None));
        let ran = Event::new();
        let (o2, r2) = (out.clone(), ran.clone());
        let t = get_hub()
            .get_loop()
            .timer(Duration::from_millis(1), Duration::ZERO);
        t.start(move |_, _| {
            *o2.borrow_mut() = Some(default_pool().apply(|| ()));
            r2.set();
        })
        .unwrap();
        ran.wait().unwrap();
        let r = out.borrow_mut().take();
        assert!(matches!(
            r,
            Some(Err(ThreadError::Wait(Error::BlockingInHub(_))))
        ));
    });
}

#[test]
fn spawn_blocking_in_the_hub_returns_a_handle_a_greenlet_joins() {
    with_watchdog(|| {
        let out = Rc::new(RefCell::new(None));
        let ran = Event::new();
        let (o2, r2) = (out.clone(), ran.clone());
        get_hub().get_loop().run_callback(move || {
            // Never blocks, so the hub may submit work too (tokio's shape).
            *o2.borrow_mut() = Some(spawn_blocking(|| 6 * 7));
            r2.set();
        });
        ran.wait().unwrap();
        let task = out.borrow_mut().take().unwrap();
        assert_eq!(task.join().unwrap(), 42);
    });
}

#[test]
fn a_thread_pool_of_size_zero_is_refused() {
    assert!(ThreadPool::new(0).is_err());
    assert!(ThreadPool::with_idle_timeout(0, Duration::from_secs(1)).is_err());
}
