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
use util::{in_hub, quiet_expected_panics, with_watchdog};

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
        let r = Some(in_hub(|| default_pool().apply(|| ())));
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

/// Long enough never to be reached by a working test (valgrind included): a bound on
/// std channel waits so that a bug fails instead of hanging.
const LONG: Duration = Duration::from_secs(10);

#[test]
fn resize_up_starts_workers_for_queued_tasks_at_once() {
    with_watchdog(|| {
        let pool = ThreadPool::new(1).unwrap();
        let (go_tx, go_rx) = mpsc::channel::<()>();
        let (started_tx, started) = mpsc::channel::<usize>();
        let s0 = started_tx.clone();
        let blocker = pool.spawn(move || {
            s0.send(0).unwrap();
            go_rx.recv_timeout(LONG).is_ok()
        });
        assert_eq!(started.recv_timeout(LONG), Ok(0));
        let queued: Vec<_> = (1..=2)
            .map(|i| {
                let s = started_tx.clone();
                pool.spawn(move || s.send(i).unwrap())
            })
            .collect();
        assert_eq!(pool.queued(), 2, "the one worker is busy");
        pool.resize(3).unwrap();
        // Both queued tasks start while the first still holds its worker.
        let mut got = [
            started.recv_timeout(LONG).unwrap(),
            started.recv_timeout(LONG).unwrap(),
        ];
        got.sort();
        assert_eq!(got, [1, 2]);
        assert!(!blocker.ready());
        go_tx.send(()).unwrap();
        assert!(blocker.join().unwrap());
        for q in queued {
            q.join().unwrap();
        }
        assert_eq!(pool.max_threads(), 3);
    });
}

#[test]
fn resize_down_lets_running_tasks_finish_and_loses_none() {
    with_watchdog(|| {
        let pool = ThreadPool::new(4).unwrap();
        let (started_tx, started) = mpsc::channel::<()>();
        let gates: Vec<_> = (0..4).map(|_| mpsc::channel::<()>()).collect();
        let mut go = Vec::new();
        let mut first = Vec::new();
        for (tx, rx) in gates {
            go.push(tx);
            let s = started_tx.clone();
            first.push(pool.spawn(move || {
                s.send(()).unwrap();
                rx.recv_timeout(LONG).is_ok()
            }));
        }
        for _ in 0..4 {
            started.recv_timeout(LONG).unwrap();
        }
        // Queued behind the four: they may run only one at a time once resized.
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let rest: Vec<_> = (0..8usize)
            .map(|i| {
                let (running, most) = (running.clone(), most.clone());
                pool.spawn(move || {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    std::thread::yield_now();
                    running.fetch_sub(1, Ordering::SeqCst);
                    i
                })
            })
            .collect();
        pool.resize(1).unwrap();
        assert_eq!(pool.threads(), 4, "nobody is interrupted");
        for tx in go {
            tx.send(()).unwrap();
        }
        for r in first {
            assert!(r.join().unwrap(), "every running task finished");
        }
        let got: Vec<usize> = rest.into_iter().map(|r| r.join().unwrap()).collect();
        assert_eq!(got, (0..8).collect::<Vec<_>>(), "no queued task was lost");
        assert_eq!(most.load(Ordering::SeqCst), 1, "one worker was left");
        assert!(pool.resize(0).is_err(), "a size of 0 is refused");
        assert_eq!(pool.max_threads(), 1);
    });
}

#[test]
fn join_waits_parked_for_every_queued_and_running_task() {
    with_watchdog(|| {
        let pool = ThreadPool::new(2).unwrap();
        let done = Arc::new(AtomicUsize::new(0));
        let (go_tx, go_rx) = mpsc::channel::<()>();
        let go_rx = Arc::new(std::sync::Mutex::new(go_rx));
        for _ in 0..6 {
            let (d, rx) = (done.clone(), go_rx.clone());
            // Results dropped: join is how this waits.
            drop(pool.spawn(move || {
                rx.lock().unwrap().recv_timeout(LONG).unwrap();
                d.fetch_add(1, Ordering::SeqCst);
            }));
        }
        assert_eq!(pool.pending(), 6);
        assert!(!pool.join_timeout(Duration::from_millis(1)).unwrap());
        // Only this greenlet releases the tasks: join returns only if it ran while
        // join was parked.
        let opener = spawn(move || {
            for _ in 0..6 {
                go_tx.send(()).unwrap();
            }
        });
        pool.join().unwrap();
        assert!(opener.ready());
        assert_eq!(done.load(Ordering::SeqCst), 6);
        assert_eq!(pool.pending(), 0);
        pool.join().unwrap(); // nothing left: at once
    });
}

#[test]
fn join_returns_with_this_threads_results_ready() {
    with_watchdog(|| {
        let pool = ThreadPool::new(3).unwrap();
        let rs: Vec<_> = (0..20u32).map(|i| pool.spawn(move || i)).collect();
        pool.join().unwrap();
        assert!(rs.iter().all(|r| r.ready()));
        let sum: u32 = rs.into_iter().map(|r| r.join().unwrap()).sum();
        assert_eq!(sum, 190);
    });
}

#[test]
fn kill_cancels_queued_tasks_lets_running_ones_finish_and_refuses_new_ones() {
    with_watchdog(|| {
        let pool = ThreadPool::new(1).unwrap();
        let (started_tx, started) = mpsc::channel::<()>();
        let (go_tx, go_rx) = mpsc::channel::<()>();
        let running = pool.spawn(move || {
            started_tx.send(()).unwrap();
            go_rx.recv_timeout(LONG).is_ok()
        });
        let ran = Arc::new(AtomicUsize::new(0));
        let queued: Vec<_> = (0..3)
            .map(|_| {
                let r = ran.clone();
                pool.spawn(move || r.fetch_add(1, Ordering::SeqCst))
            })
            .collect();
        started.recv_timeout(LONG).unwrap();
        // A greenlet parked in join sees the kill's cancellations and the running task.
        let p2 = pool.clone();
        let joiner = spawn(move || p2.join());
        sleep(Duration::ZERO);
        pool.kill();
        assert!(pool.is_killed());
        assert_eq!(pool.pending(), 1, "only the running task is left");
        for q in queued {
            assert!(matches!(q.join(), Err(ThreadError::Cancelled)));
        }
        assert!(
            matches!(pool.spawn(|| ()).join(), Err(ThreadError::Cancelled)),
            "a killed pool accepts nothing"
        );
        assert!(!joiner.ready(), "join waits for the running task");
        go_tx.send(()).unwrap();
        assert!(running.join().unwrap(), "the running task finished");
        joiner.join().unwrap().unwrap();
        assert_eq!(ran.load(Ordering::SeqCst), 0, "no queued task ran");
        pool.kill(); // again: nothing happens
        let msg = ThreadError::Cancelled.to_string();
        assert!(msg.contains("killed"), "{msg}");
    });
}
