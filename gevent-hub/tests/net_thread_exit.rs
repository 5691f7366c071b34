//! A thread whose hub waited on foreign fds through the readiness core releases, when it
//! ends, what the core kept for them (their io watchers, and so the hub's loop with its
//! epoll fd and eventfd), whether the waits had ended or a greenlet was still parked in
//! one.
//!
//! One test in its own binary: it counts this process's open fds, which other tests
//! running beside it would disturb.

use gevent_hub::net::{wait_read, wait_write};
use gevent_hub::{sleep, spawn};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::thread;
use std::time::Duration;

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("list /proc/self/fd")
        .count()
}

/// A non-blocking pipe: (read end, write end).
fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills the two-int array we pass.
    let r = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) };
    assert_eq!(r, 0, "pipe2: {}", io::Error::last_os_error());
    // SAFETY: both fds were just made and are owned by nobody else.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

/// A thread that waits on a pipe (a finished wait, and a greenlet left parked in one),
/// then ends.
fn thread_waiting_on_foreign_fds() {
    thread::spawn(|| {
        let (rd, wr) = pipe();
        wait_write(wr.as_raw_fd(), None).unwrap();
        let n = rd.as_raw_fd();
        let _parked = spawn(move || {
            let _keep = (rd, wr);
            let _ = wait_read(n, None);
        });
        sleep(Duration::ZERO);
    })
    .join()
    .expect("the thread ended cleanly");
}

#[test]
fn threads_that_waited_on_foreign_fds_release_every_fd_when_they_end() {
    // Warm up what the process keeps once.
    thread_waiting_on_foreign_fds();
    let before = open_fds();
    for _ in 0..10 {
        thread_waiting_on_foreign_fds();
    }
    assert_eq!(
        open_fds(),
        before,
        "10 threads ended, and no fd of theirs is left open"
    );
}
