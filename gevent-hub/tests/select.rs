//! poll and select over many fds: what is ready at once, the first of ten to become
//! ready while parked, timeouts, libc's answers for hang-ups and invalid fds, and an
//! fd another greenlet waits on (or reads) too, before or after the poll.

mod util;

use gevent_hub::net::wait_read;
use gevent_hub::select::{poll, select, PollFd, PollFlags};
use gevent_hub::spawn;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::time::Duration;
use util::{with_watchdog, Counter};

/// A pipe: (read end, write end), as files.
fn pipe() -> (std::fs::File, std::fs::File) {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills the two-int array it is given.
    let r = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    assert_eq!(r, 0, "pipe2: {}", io::Error::last_os_error());
    // SAFETY: both fds were just made and are owned by nobody else.
    unsafe {
        (
            std::fs::File::from(OwnedFd::from_raw_fd(fds[0])),
            std::fs::File::from(OwnedFd::from_raw_fd(fds[1])),
        )
    }
}

/// An fd number that is surely not open: a high one (fds are handed out lowest
/// first, so no other test's thread gets it), opened and closed again.
fn closed_number() -> RawFd {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit fills the struct it is given.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
    let high = (lim.rlim_cur.min(4096) - 1) as RawFd;
    let (r, _w) = pipe();
    // SAFETY: dup2 onto a number nobody uses (see above), closed right after.
    assert_eq!(unsafe { libc::dup2(r.as_raw_fd(), high) }, high);
    // SAFETY: `high` is ours (just made) and used by nothing else.
    assert_eq!(unsafe { libc::close(high) }, 0);
    high
}

#[test]
fn poll_reports_what_is_ready_at_once() {
    with_watchdog(|| {
        let (r, mut w) = pipe();
        let mut fds = [
            PollFd::new(&r, PollFlags::IN),
            PollFd::new(&w, PollFlags::OUT),
        ];
        // An empty pipe's write end is writable, its read end is not readable.
        assert_eq!(poll(&mut fds, None).unwrap(), 1);
        assert!(fds[0].revents().is_empty());
        assert_eq!(fds[1].revents(), PollFlags::OUT);
        w.write_all(b"x").unwrap();
        assert_eq!(poll(&mut fds, Some(Duration::ZERO)).unwrap(), 2);
        assert_eq!(fds[0].revents(), PollFlags::IN);
    });
}

#[test]
fn a_timeout_returns_zero() {
    with_watchdog(|| {
        let (r, _w) = pipe();
        let mut fds = [PollFd::new(&r, PollFlags::IN)];
        assert_eq!(poll(&mut fds, Some(Duration::from_millis(2))).unwrap(), 0);
        assert!(fds[0].revents().is_empty());
        assert_eq!(poll(&mut fds, Some(Duration::ZERO)).unwrap(), 0);
        let reads = [r.as_raw_fd()];
        let (rd, wr) = select(&reads, &[] as &[RawFd], Some(Duration::from_millis(1))).unwrap();
        assert!(rd.is_empty() && wr.is_empty());
    });
}

#[test]
fn the_one_of_ten_that_becomes_ready_wakes_the_poll() {
    with_watchdog(|| {
        let pipes: Vec<_> = (0..10).map(|_| pipe()).collect();
        let mut fds: Vec<_> = pipes
            .iter()
            .map(|(r, _)| PollFd::new(r, PollFlags::IN))
            .collect();
        let mut w7 = pipes[7].1.try_clone().unwrap();
        let ran = Counter::new();
        let r2 = ran.clone();
        // Runs only once the poll below has parked this greenlet.
        let writer = spawn(move || {
            r2.bump();
            w7.write_all(b"7").unwrap();
        });
        assert_eq!(poll(&mut fds, None).unwrap(), 1);
        assert_eq!(ran.get(), 1, "the writer ran while the poll waited");
        for (i, p) in fds.iter().enumerate() {
            let want = if i == 7 {
                PollFlags::IN
            } else {
                PollFlags::EMPTY
            };
            assert_eq!(p.revents(), want, "entry {i}");
        }
        writer.join().unwrap();
        // select says the same.
        let reads: Vec<RawFd> = pipes.iter().map(|(r, _)| r.as_raw_fd()).collect();
        let (rd, wr) = select(&reads, &[] as &[RawFd], None).unwrap();
        assert_eq!(rd, [&reads[7]]);
        assert!(wr.is_empty());
    });
}

#[test]
fn a_hang_up_is_reported_and_select_counts_it_readable() {
    with_watchdog(|| {
        let (r, w) = pipe();
        let closer = spawn(move || drop(w));
        let mut fds = [PollFd::new(&r, PollFlags::IN)];
        assert_eq!(poll(&mut fds, None).unwrap(), 1);
        assert!(
            fds[0].revents().contains(PollFlags::HUP),
            "{:?}",
            fds[0].revents()
        );
        closer.join().unwrap();
        let reads = [r.as_raw_fd()];
        let (rd, _) = select(&reads, &[] as &[RawFd], None).unwrap();
        assert_eq!(rd.len(), 1);
        // A write end whose reader has gone: ERR, which select counts writable.
        let (r, w) = pipe();
        drop(r);
        let mut fds = [PollFd::new(&w, PollFlags::OUT)];
        poll(&mut fds, None).unwrap();
        assert!(
            fds[0].revents().contains(PollFlags::ERR),
            "{:?}",
            fds[0].revents()
        );
        let writes = [w.as_raw_fd()];
        let (_, wr) = select(&[] as &[RawFd], &writes, None).unwrap();
        assert_eq!(wr.len(), 1);
    });
}

#[test]
fn a_closed_fd_is_nval_for_poll_and_ebadf_for_select() {
    with_watchdog(|| {
        let bad = closed_number();
        let (r, _w) = pipe();
        let mut fds = [
            PollFd::from_raw_fd(bad, PollFlags::IN),
            PollFd::new(&r, PollFlags::IN),
            // Negative: ignored, as libc does.
            PollFd::from_raw_fd(-1, PollFlags::IN),
        ];
        assert_eq!(poll(&mut fds, None).unwrap(), 1);
        assert_eq!(fds[0].revents(), PollFlags::NVAL);
        assert!(fds[1].revents().is_empty() && fds[2].revents().is_empty());
        let e = select(&[bad], &[] as &[RawFd], None).unwrap_err();
        assert!(
            e.to_string().contains(&bad.to_string()),
            "names the fd: {e}"
        );
        assert!(e.to_string().contains("Bad file descriptor"), "{e}");
        let e = select(&[-1], &[] as &[RawFd], None).unwrap_err();
        assert!(e.to_string().contains("-1"), "{e}");
    });
}

#[test]
fn an_fd_another_greenlet_waits_on_can_be_polled_too() {
    with_watchdog(|| {
        let (a, b) = UnixStream::pair().unwrap();
        let fd = a.as_raw_fd();
        // The other greenlet holds the fd's read waiter in the readiness core.
        let reader = spawn(move || wait_read(fd, None));
        gevent_hub::sleep(Duration::ZERO);
        let mut fds = [PollFd::from_raw_fd(fd, PollFlags::IN)];
        // A copy: `b` stays open, so the poll sees data, not a hang-up.
        let mut b2 = b.try_clone().unwrap();
        let writer = spawn(move || b2.write_all(b"z").unwrap());
        assert_eq!(poll(&mut fds, None).unwrap(), 1);
        assert_eq!(fds[0].revents(), PollFlags::IN);
        writer.join().unwrap();
        reader.join().unwrap().unwrap();
        let mut buf = [0u8; 1];
        (&a).read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"z");
    });
}

#[test]
fn a_socket_can_be_read_while_another_greenlet_polls_it() {
    with_watchdog(|| {
        let (a, b) = gevent_hub::net::UnixStream::pair().unwrap();
        let a = std::rc::Rc::new(a);
        let fd = a.as_raw_fd();
        // The poll parks first and holds the fd's read direction in the readiness core.
        let poller = spawn(move || {
            let mut fds = [PollFd::from_raw_fd(fd, PollFlags::IN)];
            let n = poll(&mut fds, None).unwrap();
            (n, fds[0].revents())
        });
        gevent_hub::sleep(Duration::ZERO);
        assert!(!poller.ready(), "the poll is parked");
        let a2 = a.clone();
        let reader = spawn(move || {
            let mut buf = [0u8; 1];
            (&*a2).read_exact(&mut buf).map(|()| buf)
        });
        gevent_hub::sleep(Duration::ZERO);
        assert!(
            !reader.ready(),
            "the read is parked beside the poll, not refused"
        );
        // Two bytes: the poll, woken beside the reader, asks poll(2) again after the
        // read took one.
        (&b).write_all(b"qr").unwrap();
        assert_eq!(reader.join().unwrap().unwrap(), *b"q");
        assert_eq!(poller.join().unwrap(), (1, PollFlags::IN));
    });
}

#[test]
fn wait_read_on_an_fd_another_greenlet_polls_wakes_both() {
    with_watchdog(|| {
        let (a, b) = UnixStream::pair().unwrap();
        let fd = a.as_raw_fd();
        let polled = Counter::new();
        let p = polled.clone();
        let poller = spawn(move || {
            let mut fds = [PollFd::from_raw_fd(fd, PollFlags::IN)];
            let n = poll(&mut fds, None).unwrap();
            p.bump();
            n
        });
        gevent_hub::sleep(Duration::ZERO);
        let reader = spawn(move || wait_read(fd, None));
        gevent_hub::sleep(Duration::ZERO);
        assert!(
            !reader.ready(),
            "wait_read parks beside the poll, not refused"
        );
        // Two ordinary waits are still one too many: one reader per fd.
        let late = spawn(move || wait_read(fd, Some(Duration::from_millis(1))));
        let e = late.join().unwrap().unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::ResourceBusy, "{e}");
        (&b).write_all(b"w").unwrap();
        reader.join().unwrap().unwrap();
        assert_eq!(poller.join().unwrap(), 1);
        assert_eq!(polled.get(), 1);
        let mut buf = [0u8; 1];
        (&a).read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"w");
        // Both waits are over: the direction is free again, and nothing is left armed
        // to wake a later wait early.
        let e = wait_read(fd, Some(Duration::from_millis(1))).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut, "{e}");
        let mut fds = [PollFd::from_raw_fd(fd, PollFlags::IN)];
        assert_eq!(poll(&mut fds, Some(Duration::from_millis(1))).unwrap(), 0);
    });
}

#[test]
fn a_wait_that_ends_first_leaves_the_watcher_to_the_one_still_waiting() {
    with_watchdog(|| {
        let (a, b) = UnixStream::pair().unwrap();
        let fd = a.as_raw_fd();
        // A wait_read that times out while a poll waits: the poll still wakes.
        let poller = spawn(move || {
            let mut fds = [PollFd::from_raw_fd(fd, PollFlags::IN)];
            poll(&mut fds, None).unwrap()
        });
        gevent_hub::sleep(Duration::ZERO);
        let e = wait_read(fd, Some(Duration::from_millis(1))).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut, "{e}");
        (&b).write_all(b"1").unwrap();
        assert_eq!(poller.join().unwrap(), 1);
        let mut buf = [0u8; 1];
        (&a).read_exact(&mut buf).unwrap();
        // A poll that times out while a wait_read waits: the wait_read still wakes.
        let reader = spawn(move || wait_read(fd, None));
        gevent_hub::sleep(Duration::ZERO);
        let mut fds = [PollFd::from_raw_fd(fd, PollFlags::IN)];
        assert_eq!(poll(&mut fds, Some(Duration::from_millis(1))).unwrap(), 0);
        (&b).write_all(b"2").unwrap();
        reader.join().unwrap().unwrap();
    });
}

#[test]
fn poll_flags_read_as_libc() {
    assert_eq!(
        (PollFlags::IN | PollFlags::OUT).bits(),
        libc::POLLIN | libc::POLLOUT
    );
    assert_eq!(
        format!("{:?}", PollFlags::IN | PollFlags::HUP),
        "PollFlags(IN | HUP)"
    );
    // Only IN and OUT can be asked for.
    let p = PollFd::from_raw_fd(0, PollFlags::IN | PollFlags::HUP);
    assert_eq!(p.events(), PollFlags::IN);
}

#[test]
fn a_timeout_around_poll_leaves_no_waiter_behind() {
    with_watchdog(|| {
        let (r, _w) = pipe();
        let mut fds = [PollFd::new(&r, PollFlags::IN)];
        let res = gevent_hub::with_timeout(Duration::from_millis(2), || poll(&mut fds, None));
        assert!(matches!(res, Err(gevent_hub::Error::TimedOut)), "{res:?}");
        // The fd's read direction is free again: a wait is not ResourceBusy.
        let e = wait_read(r.as_raw_fd(), Some(Duration::from_millis(1))).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut, "{e}");
    });
}
