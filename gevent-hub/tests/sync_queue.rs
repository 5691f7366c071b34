//! Queues: ordering and hand-off under load, kills of blocked getters, timeouts, the
//! non-blocking forms in the hub, the storage policies, Channel rendezvous, task_done/
//! join, shutdown and iteration.

mod util;

use gevent_hub::sync::{PutError, QueueError};
use gevent_hub::{
    get_hub, sleep, spawn, wait, Channel, Error, JoinError, LifoQueue, PriorityQueue, Queue,
};
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;
use util::{settle, under_valgrind, with_watchdog, Log};

#[test]
fn producer_and_consumer_through_a_queue_of_one_lose_and_duplicate_nothing() {
    // 100,000 natively; valgrind runs the same hand-offs some 100 times slower.
    let n: u64 = if under_valgrind() { 5_000 } else { 100_000 };
    with_watchdog(|| {
        let q = Queue::bounded(1);
        let q2 = q.clone();
        let producer = spawn(move || {
            for i in 0..n {
                q2.put(i).unwrap();
            }
        });
        let q3 = q.clone();
        let consumer = spawn(move || {
            let mut next = 0;
            let mut sum = 0;
            while next < n {
                let x = q3.get().unwrap();
                assert_eq!(x, next, "items come out in the order they went in");
                sum += x;
                next += 1;
            }
            sum
        });
        producer.join().unwrap();
        assert_eq!(consumer.join().unwrap(), n * (n - 1) / 2);
        assert!(q.is_empty());
        assert_eq!((q.waiting_getters(), q.waiting_putters()), (0, 0));
    });
}

#[test]
fn a_consumer_killed_while_blocked_in_get_leaves_the_queue_consistent() {
    with_watchdog(|| {
        let q: Queue<u32> = Queue::bounded(1);
        let q2 = q.clone();
        let consumer = spawn(move || q2.get().unwrap());
        settle();
        assert_eq!(q.waiting_getters(), 1);
        consumer.kill().unwrap();
        assert_eq!(q.waiting_getters(), 0, "the killed getter left the line");
        q.put_nowait(1).unwrap();
        assert!(matches!(
            q.put_nowait(2),
            Err(PutError {
                error: QueueError::Full,
                item: 2
            })
        ));
        assert_eq!(q.get_nowait().unwrap(), 1);
        assert!(matches!(q.get_nowait(), Err(QueueError::Empty)));
    });
}

#[test]
fn an_item_handed_to_a_getter_killed_before_it_ran_is_not_lost() {
    with_watchdog(|| {
        let q: Queue<u32> = Queue::bounded(1);
        let q2 = q.clone();
        let doomed = spawn(move || q2.get().unwrap());
        settle();
        // The kill is delivered before the put's wake-up: the getter unwinds holding 7.
        doomed.kill_nowait();
        q.put_nowait(7).unwrap();
        q.put_nowait(8).unwrap(); // 7 was handed over, so there was room for 8
        assert!(matches!(doomed.join(), Err(JoinError::Killed)));
        assert_eq!(
            q.get_nowait().unwrap(),
            7,
            "7 went back to the head of the queue"
        );
        assert_eq!(q.get_nowait().unwrap(), 8);

        // With another getter waiting, the returned item goes straight to it.
        let (qa, qb) = (q.clone(), q.clone());
        let doomed = spawn(move || qa.get().unwrap());
        let heir = spawn(move || qb.get().unwrap());
        settle();
        doomed.kill_nowait();
        q.put_nowait(9).unwrap();
        assert!(matches!(doomed.join(), Err(JoinError::Killed)));
        assert_eq!(heir.join().unwrap(), 9);
        assert!(q.is_empty());
        assert_eq!(
            q.unfinished_tasks(),
            3,
            "each of the three puts counts once"
        );
    });
}

#[test]
fn timeouts_report_empty_and_full_and_give_the_item_back() {
    with_watchdog(|| {
        let q = Queue::bounded(1);
        assert!(matches!(
            q.get_timeout(Duration::from_millis(1)),
            Err(QueueError::Empty)
        ));
        q.put(String::from("a")).unwrap();
        let e = q
            .put_timeout(String::from("b"), Duration::from_millis(1))
            .unwrap_err();
        assert!(matches!(e.error, QueueError::Full));
        assert_eq!(e.into_inner(), "b");
        assert_eq!((q.waiting_getters(), q.waiting_putters()), (0, 0));
        assert_eq!(q.get_timeout(Duration::from_millis(1)).unwrap(), "a");
    });
}

#[test]
fn the_nowait_forms_work_inside_a_watcher_callback() {
    with_watchdog(|| {
        let q: Queue<u32> = Queue::new();
        let seen = Rc::new(RefCell::new(Vec::new()));
        let (q2, s2) = (q.clone(), seen.clone());
        let t = get_hub()
            .get_loop()
            .timer(Duration::from_millis(1), Duration::ZERO);
        t.start(move |_, _| {
            // In the hub: the put hands 1 to the blocked getter and switches to it.
            q2.put_nowait(1).unwrap();
            q2.put_nowait(2).unwrap();
            s2.borrow_mut().push(format!("{:?}", q2.get_nowait()));
            s2.borrow_mut().push(format!("{:?}", q2.get_nowait()));
            // A blocking form that would wait is refused in the hub.
            s2.borrow_mut().push(match q2.get() {
                Err(QueueError::Wait(Error::BlockingInHub(_))) => "refused".to_owned(),
                other => format!("{other:?}"),
            });
        })
        .unwrap();
        assert_eq!(q.get().unwrap(), 1);
        settle();
        assert_eq!(*seen.borrow(), ["Ok(2)", "Err(Empty)", "refused"]);
    });
}

#[test]
fn lifo_and_priority_queues_hand_out_items_in_their_order() {
    let lifo = LifoQueue::new();
    let prio = PriorityQueue::new();
    for x in [3, 1, 4, 1, 5] {
        lifo.put_nowait(x).unwrap();
        prio.put_nowait(x).unwrap();
    }
    let lifo_out: Vec<i32> = (0..5).map(|_| lifo.get_nowait().unwrap()).collect();
    let prio_out: Vec<i32> = (0..5).map(|_| prio.get_nowait().unwrap()).collect();
    assert_eq!(lifo_out, [5, 1, 4, 1, 3]);
    assert_eq!(
        prio_out,
        [1, 1, 3, 4, 5],
        "smallest first, as gevent's heapq"
    );
}

#[test]
fn a_bounded_lifo_queue_moves_a_waiting_putters_item_in_when_room_is_made() {
    with_watchdog(|| {
        let q = LifoQueue::bounded(2);
        q.put(1).unwrap();
        q.put(2).unwrap();
        let q2 = q.clone();
        let putter = spawn(move || q2.put(3).unwrap());
        settle();
        assert_eq!(q.waiting_putters(), 1);
        assert_eq!(q.get().unwrap(), 2);
        assert_eq!(q.len(), 2, "the putter's item moved in as room was made");
        assert_eq!(q.get().unwrap(), 3);
        assert_eq!(q.get().unwrap(), 1);
        putter.join().unwrap();
    });
}

#[test]
fn a_channel_put_waits_until_a_getter_takes_the_item() {
    with_watchdog(|| {
        let ch = Channel::new();
        assert_eq!(ch.maxsize(), Some(0));
        assert!(matches!(
            ch.put_nowait(0),
            Err(PutError {
                error: QueueError::Full,
                ..
            })
        ));
        let log = Log::new();
        let (c2, l2) = (ch.clone(), log.clone());
        let putter = spawn(move || {
            l2.push("put");
            c2.put(1).unwrap();
            l2.push("put returned");
        });
        settle();
        assert_eq!(
            ch.waiting_putters(),
            1,
            "nobody took it yet: the putter waits"
        );
        assert_eq!(ch.len(), 0);
        assert_eq!(ch.get().unwrap(), 1);
        log.push("got");
        putter.join().unwrap();
        assert_eq!(log.entries(), ["put", "got", "put returned"]);

        // A getter that waits first is handed the item; the put does not wait.
        let c3 = ch.clone();
        let getter = spawn(move || c3.get().unwrap());
        settle();
        ch.put_nowait(2).unwrap();
        assert_eq!(getter.join().unwrap(), 2);
    });
}

#[test]
fn join_waits_until_every_item_is_marked_done() {
    with_watchdog(|| {
        let q = Queue::new();
        for i in 0..3 {
            q.put(i).unwrap();
        }
        assert_eq!(q.unfinished_tasks(), 3);
        assert!(!q.join_timeout(Duration::from_millis(1)).unwrap());
        let q2 = q.clone();
        let done = Rc::new(RefCell::new(Vec::new()));
        let d2 = done.clone();
        let worker = spawn(move || {
            for _ in 0..3 {
                let x = q2.get().unwrap();
                sleep(Duration::ZERO);
                d2.borrow_mut().push(x);
                q2.task_done().unwrap();
            }
        });
        q.join().unwrap();
        assert_eq!(
            *done.borrow(),
            [0, 1, 2],
            "join returned after the last task_done"
        );
        assert!(matches!(q.task_done(), Err(QueueError::TooManyTaskDone)));
        worker.join().unwrap();
    });
}

#[test]
fn shutdown_wakes_waiting_getters_and_putters_with_a_clear_error() {
    with_watchdog(|| {
        let empty: Queue<u32> = Queue::new();
        let e2 = empty.clone();
        let getter = spawn(move || e2.get());
        let full = Queue::bounded(1);
        full.put(1).unwrap();
        let f2 = full.clone();
        let putter = spawn(move || f2.put(2).map_err(|e| (e.error.to_string(), e.item)));
        settle();
        empty.shutdown(false);
        full.shutdown(false);
        assert!(matches!(getter.join().unwrap(), Err(QueueError::Shutdown)));
        let (msg, item) = putter.join().unwrap().unwrap_err();
        assert_eq!(item, 2, "the refused item is given back");
        assert!(msg.contains("shut down"), "{msg}");
        // Graceful: what was queued can still be taken, then gets fail.
        assert!(matches!(
            full.put_nowait(3),
            Err(PutError {
                error: QueueError::Shutdown,
                ..
            })
        ));
        assert_eq!(full.get().unwrap(), 1);
        assert!(matches!(full.get(), Err(QueueError::Shutdown)));
    });
}

#[test]
fn an_immediate_shutdown_drops_the_items_and_releases_join() {
    with_watchdog(|| {
        let q = Queue::new();
        q.put(1).unwrap();
        q.put(2).unwrap();
        let q2 = q.clone();
        let joiner = spawn(move || q2.join());
        settle();
        assert!(!joiner.ready());
        q.shutdown(true);
        joiner.join().unwrap().unwrap();
        assert!(q.is_empty());
        assert!(matches!(q.get_nowait(), Err(QueueError::Shutdown)));
    });
}

#[test]
fn iterating_a_queue_blocks_for_items_and_ends_on_shutdown() {
    with_watchdog(|| {
        let q = Queue::bounded(2);
        let q2 = q.clone();
        let producer = spawn(move || {
            for i in 0..10 {
                q2.put(i).unwrap();
            }
            q2.shutdown(false);
        });
        let mut it = q.iter();
        let got: Vec<i32> = it.by_ref().collect();
        assert_eq!(got, (0..10).collect::<Vec<_>>());
        assert!(it.error().is_none(), "it ended on the shutdown");
        producer.join().unwrap();
    });
}

#[test]
fn getting_from_a_queue_nobody_will_fill_is_diagnosed() {
    let q: Queue<u8> = Queue::new();
    match q.get() {
        Err(QueueError::Wait(Error::WouldBlockForever(what))) => {
            assert!(what.contains("Queue"), "{what}")
        }
        other => panic!("expected WouldBlockForever, got {other:?}"),
    }
    let mut it = q.iter();
    assert_eq!(it.next(), None);
    assert!(matches!(
        it.error(),
        Some(QueueError::Wait(Error::WouldBlockForever(_)))
    ));
    assert_eq!(q.waiting_getters(), 0);
}

#[test]
fn a_queue_is_waitable_for_an_item() {
    with_watchdog(|| {
        let a: Queue<u8> = Queue::new();
        let b: Queue<u8> = Queue::new();
        let b2 = b.clone();
        let putter = spawn(move || b2.put(5).unwrap());
        assert_eq!(wait(&[&a, &b], None, Some(1)).unwrap(), [1]);
        assert_eq!(b.get_nowait().unwrap(), 5);
        putter.join().unwrap();
    });
}

#[test]
fn peek_waits_for_an_item_and_leaves_it_in_the_queue() {
    with_watchdog(|| {
        let q: Queue<u32> = Queue::new();
        let log = Log::new();
        let (q2, l2) = (q.clone(), log.clone());
        let peeker = spawn(move || {
            let x = q2.peek();
            l2.push(format!("peeked {x:?}"));
            x.ok()
        });
        let (q2, l2) = (q.clone(), log.clone());
        spawn(move || {
            l2.push("put 7");
            q2.put(7).unwrap();
        });
        assert_eq!(peeker.join().unwrap(), Some(7));
        assert_eq!(log.entries(), ["put 7", "peeked Ok(7)"]);
        assert_eq!(q.len(), 1, "the peeked item is still there");
        assert_eq!(q.get().unwrap(), 7);
        // Nothing left: a timed peek says Empty; a shutdown ends a waiting peek.
        assert!(matches!(
            q.peek_timeout(Duration::from_millis(1)),
            Err(QueueError::Empty)
        ));
        let q2 = q.clone();
        let waiting = spawn(move || matches!(q2.peek(), Err(QueueError::Shutdown)));
        settle();
        q.shutdown(false);
        assert!(
            waiting.join().unwrap(),
            "the waiting peek learns of the shutdown"
        );
    });
}
