//! A thread that exits while greenlets are parked on its hub releases everything the
//! hub and those greenlets own: the loop's epoll fd and eventfd, the greenlets' sockets
//! and timers (their destructors run), so a process whose threads come and go does not
//! leak file descriptors (gevent #1601).
//!
//! One test in its own binary: it counts this process's open fds, which other tests
//! running beside it would disturb.

use gevent_hub::net::UnixStream;
use gevent_hub::{sleep, spawn, spawn_later, Event};
use std::io::Read;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

const NEVER: Duration = Duration::from_secs(3600);

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("list /proc/self/fd")
        .count()
}

/// Bumps the counter when dropped: proof that a parked greenlet's frames unwound.
struct Dropped(Arc<AtomicUsize>);
impl Drop for Dropped {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// What a thread leaves parked when it returns.
#[derive(Debug, Clone, Copy)]
enum Parked {
    Sleeping,
    TimedEventWait,
    SocketRead,
    NotStartedYet,
    Everything,
}

/// Runs a thread that parks greenlets as `what` says and returns without joining
/// them; returns how many parked greenlets' destructors ran by the time it ended.
fn thread_leaving(what: Parked) -> usize {
    let dropped = Arc::new(AtomicUsize::new(0));
    let d = dropped.clone();
    thread::spawn(move || {
        let guard = || Dropped(d.clone());
        let sleeping = |g: Dropped| {
            spawn(move || {
                let _g = g;
                sleep(NEVER);
            })
        };
        let timed_wait = |g: Dropped| {
            spawn(move || {
                let _g = g;
                Event::new().wait_timeout(NEVER).unwrap();
            })
        };
        let reading = |g: Dropped| {
            let (a, b) = UnixStream::pair().unwrap();
            spawn(move || {
                let _g = g;
                let _keep = b;
                let mut buf = [0u8; 16];
                let _ = (&a).read(&mut buf);
            })
        };
        let _gs = match what {
            Parked::Sleeping => vec![sleeping(guard())],
            Parked::TimedEventWait => vec![timed_wait(guard())],
            Parked::SocketRead => vec![reading(guard())],
            Parked::NotStartedYet => {
                let g = guard();
                vec![spawn_later(NEVER, move || drop(g))]
            }
            Parked::Everything => vec![
                sleeping(guard()),
                timed_wait(guard()),
                reading(guard()),
                reading(guard()),
            ],
        };
        // Let the started ones park (the not-started one stays queued on its timer).
        sleep(Duration::ZERO);
    })
    .join()
    .expect("the thread ended cleanly");
    dropped.load(Ordering::SeqCst)
}

#[test]
fn threads_exiting_with_parked_greenlets_release_every_fd() {
    // Warm up what the process keeps once (the test harness, std's own state).
    thread_leaving(Parked::Everything);
    let before = open_fds();
    for what in [
        Parked::Sleeping,
        Parked::TimedEventWait,
        Parked::SocketRead,
        Parked::NotStartedYet,
        Parked::Everything,
    ] {
        for _ in 0..10 {
            let expected = match what {
                Parked::Everything => 4,
                _ => 1,
            };
            assert_eq!(
                thread_leaving(what),
                expected,
                "{what:?}: the parked greenlets' destructors ran at thread exit"
            );
        }
        assert_eq!(
            open_fds(),
            before,
            "{what:?}: 10 threads ended, and no fd of theirs is left open"
        );
    }
}
