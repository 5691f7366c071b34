//! `wait_read`/`wait_write` on a foreign fd whose number is closed and reused behind the
//! readiness core's back: the next wait on the number watches the new file, not the
//! old one (epoll forgets a closed file by itself, so a watcher left armed over the
//! old one would never fire).
//!
//! One test in its own binary: it relies on `pipe` handing out the lowest free number,
//! which tests on other threads opening fds at the same time would disturb.

use gevent_hub::net::{wait_read, wait_write, UnixStream};
use gevent_hub::{spawn, with_timeout};
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

/// A non-blocking pipe: (read end, write end).
fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills the two-int array we pass.
    let r = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) };
    assert_eq!(r, 0, "pipe2: {}", io::Error::last_os_error());
    // SAFETY: both fds were just made and are owned by nobody else.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

/// Waits for `rd` to become readable, woken by a write of `byte` to `wr` from a greenlet
/// that runs only once the wait has parked; returns what was read.
fn woken_by_a_write(rd: &OwnedFd, wr: OwnedFd, byte: u8) -> (u8, OwnedFd) {
    let writer = spawn(move || {
        std::fs::File::from(wr.try_clone().unwrap())
            .write_all(&[byte])
            .unwrap();
        wr
    });
    wait_read(rd.as_raw_fd(), None).unwrap();
    let mut b = [0u8; 1];
    std::fs::File::from(rd.try_clone().unwrap())
        .read_exact(&mut b)
        .unwrap();
    (b[0], writer.join().unwrap())
}

#[test]
fn a_foreign_fd_number_closed_and_reused_is_waited_on_afresh() {
    with_timeout(Duration::from_secs(10), || {
        let (rd, wr) = pipe();
        let n = rd.as_raw_fd();
        let (b, wr) = woken_by_a_write(&rd, wr, 1);
        assert_eq!(b, 1);
        wait_write(wr.as_raw_fd(), None).unwrap();

        // Closed behind the core's back, and the number reopened: another pipe.
        drop((rd, wr));
        let (rd, wr) = pipe();
        assert_eq!(rd.as_raw_fd(), n, "close + reopen gives the same number");
        let (b, wr) = woken_by_a_write(&rd, wr, 2);
        assert_eq!(b, 2, "the wait watched the new pipe");
        wait_write(wr.as_raw_fd(), None).unwrap();

        // Closed again, and the number taken by a net socket this time.
        drop((rd, wr));
        let (a, b) = UnixStream::pair().unwrap();
        assert_eq!(a.as_raw_fd(), n, "the socket got the same number");
        let reader = spawn(move || {
            let mut got = [0u8; 5];
            (&a).read_exact(&mut got).unwrap();
            got
        });
        // The reader has parked on the number (spawn ran it up to its wait first).
        gevent_hub::sleep(Duration::ZERO);
        (&b).write_all(b"fresh").unwrap();
        assert_eq!(&reader.join().unwrap(), b"fresh");
    })
    .expect("every wait was woken");
}
