//! `TcpListener` and `TcpStream`: connecting (refused, timed out, by name), accepting
//! (`incoming`), addresses, half-close, writing to a closed peer (BrokenPipe, never
//! SIGPIPE), what closing a socket does to the greenlets blocked on it, one reader per
//! socket, read timeouts, full-duplex use from two greenlets, name resolution off the
//! hub, and `wait_read` on a foreign fd.
//!
//! Timeouts are checked by their error kind and by a lower bound only (a timeout never
//! fires before its duration has passed, even when the greenlet ran a while without
//! switching before it started waiting); no test asserts an upper bound.

use gevent_hub::net::{lookup_host, wait_read, wait_write, TcpListener, TcpStream};
use gevent_hub::{sleep, spawn, with_timeout};
use std::cell::Cell;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::rc::Rc;
use std::time::{Duration, Instant};

/// A lost wake-up fails the test after this long instead of hanging it.
const WATCHDOG: Duration = Duration::from_secs(10);

/// Runs `f` (in the test's main greenlet) under a watchdog [`with_timeout`].
fn with_watchdog<R>(f: impl FnOnce() -> R) -> R {
    with_timeout(WATCHDOG, f)
        .unwrap_or_else(|e| panic!("watchdog: the test did not finish within {WATCHDOG:?}: {e}"))
}

/// A connected (client, server-side) pair on 127.0.0.1.
fn tcp_pair() -> (TcpStream, TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (s, peer) = l.accept().unwrap();
    assert_eq!(peer, c.local_addr().unwrap());
    (c, s)
}

/// A port on 127.0.0.1 that nothing listens on (it was bound, then released).
fn closed_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let a = l.local_addr().unwrap();
    drop(l);
    a
}

#[test]
fn connecting_to_a_closed_port_is_refused() {
    with_watchdog(|| {
        let e = TcpStream::connect(closed_port()).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused, "{e:?}");
        let e = TcpStream::connect_timeout(&closed_port(), WATCHDOG).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused, "{e:?}");
    });
}

#[test]
fn connect_timeout_connects_or_times_out_when_nobody_answers() {
    with_watchdog(|| {
        // A listener with backlog 0 holds one completed connection; while it is not
        // accepted, Linux drops further SYNs, so those connects get no answer at all.
        let socket = socket2::Socket::new(
            socket2::Domain::IPV4,
            socket2::Type::STREAM.nonblocking(),
            None,
        )
        .unwrap();
        socket
            .bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
            .unwrap();
        socket.listen(0).unwrap();
        let listener = TcpListener::from(OwnedFd::from(socket));
        let addr = listener.local_addr().unwrap();

        let timeout = Duration::from_millis(100);
        let mut held = Vec::new();
        let mut timed_out = None;
        for _ in 0..16 {
            let t0 = Instant::now();
            match TcpStream::connect_timeout(&addr, timeout) {
                Ok(s) => held.push(s),
                Err(e) => {
                    timed_out = Some((e, t0.elapsed()));
                    break;
                }
            }
        }
        let (e, took) = timed_out.expect("a connect to a full listen queue times out");
        assert_eq!(e.kind(), io::ErrorKind::TimedOut, "{e:?}");
        assert!(
            took >= timeout,
            "timed out after {took:?}, before {timeout:?}"
        );
        assert!(!held.is_empty(), "the first connect succeeded");

        let e = TcpStream::connect_timeout(&addr, Duration::ZERO).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    });
}

#[test]
fn incoming_yields_each_connection() {
    with_watchdog(|| {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let clients: Vec<_> = (0..3u8)
            .map(|i| {
                spawn(move || {
                    let c = TcpStream::connect(addr).unwrap();
                    (&c).write_all(&[i]).unwrap();
                    c
                })
            })
            .collect();
        let mut got: Vec<u8> = l
            .incoming()
            .take(3)
            .map(|s| {
                let mut b = [0u8; 1];
                s.unwrap().read_exact(&mut b).unwrap();
                b[0]
            })
            .collect();
        got.sort_unstable();
        assert_eq!(got, [0, 1, 2]);
        for c in clients {
            c.join().unwrap();
        }
    });
}

#[test]
fn local_and_peer_addresses_of_the_two_ends_match() {
    with_watchdog(|| {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let la = l.local_addr().unwrap();
        assert!(la.ip().is_loopback() && la.port() != 0);
        let c = TcpStream::connect(la).unwrap();
        let (s, peer) = l.accept().unwrap();
        assert_eq!(c.peer_addr().unwrap(), la);
        assert_eq!(s.local_addr().unwrap(), la);
        assert_eq!(s.peer_addr().unwrap(), c.local_addr().unwrap());
        assert_eq!(peer, c.local_addr().unwrap());
        // A clone is the same socket.
        assert_eq!(
            c.try_clone().unwrap().local_addr().unwrap(),
            c.local_addr().unwrap()
        );
    });
}

#[test]
fn shutdown_write_gives_the_peer_eof_and_leaves_the_read_half_open() {
    with_watchdog(|| {
        let (c, s) = tcp_pair();
        (&c).write_all(b"last words").unwrap();
        c.shutdown(Shutdown::Write).unwrap();
        let mut got = Vec::new();
        (&s).read_to_end(&mut got).unwrap();
        assert_eq!(got, b"last words");
        // The other direction still works.
        (&s).write_all(b"reply").unwrap();
        drop(s);
        let mut reply = Vec::new();
        (&c).read_to_end(&mut reply).unwrap();
        assert_eq!(reply, b"reply");
        // Writing after shutting down the write half is an error, not a signal.
        let e = (&c).write_all(b"more").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::BrokenPipe, "{e:?}");
    });
}

/// Blocks SIGPIPE in this thread while alive, so that a SIGPIPE raised by a write stays
/// pending where `sigpending` can see it (a blocked signal is queued even when its
/// disposition is to ignore it, as the Rust runtime sets SIGPIPE's).
struct SigpipeBlocked {
    old: libc::sigset_t,
}

impl SigpipeBlocked {
    fn new() -> SigpipeBlocked {
        // SAFETY: sigset_t is plain data; the libc calls initialise and read the sets
        // we pass, and change only this thread's mask.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            let mut old: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGPIPE);
            assert_eq!(libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut old), 0);
            SigpipeBlocked { old }
        }
    }

    /// True if a SIGPIPE is pending; consumes it.
    fn take_pending(&self) -> bool {
        // SAFETY: as in `new`; sigtimedwait with a zero timeout only dequeues a
        // pending SIGPIPE (which is blocked, so it can be dequeued).
        unsafe {
            let mut pending: libc::sigset_t = std::mem::zeroed();
            assert_eq!(libc::sigpending(&mut pending), 0);
            if libc::sigismember(&pending, libc::SIGPIPE) != 1 {
                return false;
            }
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGPIPE);
            let zero = libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            assert_eq!(
                libc::sigtimedwait(&set, std::ptr::null_mut(), &zero),
                libc::SIGPIPE
            );
            true
        }
    }
}

impl Drop for SigpipeBlocked {
    fn drop(&mut self) {
        // SAFETY: restores the mask saved in `new`.
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &self.old, std::ptr::null_mut()) };
    }
}

#[test]
fn writing_to_a_peer_that_closed_gives_broken_pipe_and_no_sigpipe() {
    with_watchdog(|| {
        let sigpipe = SigpipeBlocked::new();
        let (c, s) = tcp_pair();
        drop(s);
        // The first write may still be accepted (the peer answers it with RST), then
        // ECONNRESET may be reported once; after that every write is EPIPE.
        let mut broken_pipe = false;
        for _ in 0..10_000 {
            match (&c).write(b"are you there?") {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {}
                Err(e) => {
                    assert_eq!(e.kind(), io::ErrorKind::BrokenPipe, "{e:?}");
                    broken_pipe = true;
                    break;
                }
            }
            // Let the loopback deliver the peer's RST.
            sleep(Duration::ZERO);
        }
        assert!(broken_pipe, "writes to a closed peer end in BrokenPipe");
        assert!(
            !sigpipe.take_pending(),
            "a write to a broken connection raised SIGPIPE"
        );
        // Control: a plain write(2) on the same socket does raise it, so the check
        // above can see one.
        // SAFETY: writes 1 byte from a valid buffer to an fd we own.
        let r = unsafe { libc::write(c.as_raw_fd(), b"x".as_ptr().cast(), 1) };
        assert_eq!(r, -1);
        assert!(sigpipe.take_pending(), "the control write raised SIGPIPE");
    });
}

#[test]
fn closing_a_socket_wakes_its_blocked_reader_and_a_second_reader_is_refused() {
    with_watchdog(|| {
        let (c, _s) = tcp_pair();
        let closer = c.try_clone().unwrap();
        let second = c.try_clone().unwrap();
        let reader = spawn(move || {
            let mut buf = [0u8; 16];
            (&c).read(&mut buf)
        });
        // Let the reader run until it blocks (nothing to read).
        sleep(Duration::ZERO);
        assert!(reader.started() && !reader.ready(), "the reader is blocked");

        // A second reader on the same socket is refused at once, not left to hang.
        let intruder = spawn(move || {
            let mut buf = [0u8; 16];
            (&second).read(&mut buf)
        });
        let e = intruder.join().unwrap().unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::ResourceBusy, "{e:?}");
        assert!(!reader.ready(), "the first reader is still blocked");

        closer.close();
        let e = reader.join().unwrap().unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotConnected, "{e:?}");
        // Everything after close is an error too.
        let e = (&closer).read(&mut [0u8; 1]).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotConnected);
        let e = (&closer).write(b"x").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotConnected);
    });
}

#[test]
fn closing_a_socket_wakes_its_blocked_writer() {
    with_watchdog(|| {
        let (c, _s) = tcp_pair();
        let closer = c.try_clone().unwrap();
        let written = Rc::new(Cell::new(0usize));
        let w = written.clone();
        // Nobody reads `_s`: the writer fills both socket buffers and blocks.
        let writer = spawn(move || {
            let chunk = [7u8; 64 * 1024];
            loop {
                match (&c).write(&chunk) {
                    Ok(n) => w.set(w.get() + n),
                    Err(e) => return e,
                }
            }
        });
        sleep(Duration::ZERO);
        assert!(!writer.ready(), "the writer is blocked on a full buffer");
        assert!(written.get() > 0);
        closer.close();
        let e = writer.join().unwrap();
        assert_eq!(e.kind(), io::ErrorKind::NotConnected, "{e:?}");
    });
}

#[test]
fn a_read_with_a_read_timeout_returns_timed_out() {
    with_watchdog(|| {
        let (c, s) = tcp_pair();
        let timeout = Duration::from_millis(100);
        c.set_read_timeout(Some(timeout)).unwrap();
        assert_eq!(c.read_timeout().unwrap(), Some(timeout));
        let t0 = Instant::now();
        let e = (&c).read(&mut [0u8; 16]).unwrap_err();
        let took = t0.elapsed();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut, "{e:?}");
        assert!(
            took >= timeout,
            "timed out after {took:?}, before {timeout:?}"
        );

        // The socket still works after a timeout.
        (&s).write_all(b"late").unwrap();
        let mut got = [0u8; 4];
        (&c).read_exact(&mut got).unwrap();
        assert_eq!(&got, b"late");

        // As in std: zero is refused, None removes the timeout.
        let e = c.set_read_timeout(Some(Duration::ZERO)).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        c.set_read_timeout(None).unwrap();
        assert_eq!(c.read_timeout().unwrap(), None);
    });
}

/// libev counts timers from the time of its last poll; a timeout started after the
/// greenlet ran for a while without switching must still count from the read.
#[test]
fn a_read_timeout_counts_from_the_read_even_after_the_greenlet_ran_without_switching() {
    with_watchdog(|| {
        let (c, _s) = tcp_pair();
        let timeout = Duration::from_millis(100);
        c.set_read_timeout(Some(timeout)).unwrap();
        // Work for a while without switching: the loop's cached "now" falls behind.
        let busy = Instant::now();
        while busy.elapsed() < Duration::from_millis(60) {
            std::hint::spin_loop();
        }
        let t0 = Instant::now();
        let e = (&c).read(&mut [0u8; 16]).unwrap_err();
        let took = t0.elapsed();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut, "{e:?}");
        assert!(
            took >= timeout,
            "timed out after {took:?}, before {timeout:?}"
        );
    });
}

#[test]
fn one_greenlet_reads_while_another_writes_the_same_socket() {
    with_watchdog(|| {
        // Both ends send far more than their (shrunk) socket buffers hold before
        // reading: this only completes if each socket's reader and writer run
        // concurrently.
        const SIZE: usize = 1 << 20;
        let (a, b) = tcp_pair();
        for s in [&a, &b] {
            let s = socket2::SockRef::from(s);
            s.set_send_buffer_size(16 * 1024).unwrap();
            s.set_recv_buffer_size(16 * 1024).unwrap();
        }
        let data = |seed: u8| -> Vec<u8> {
            (0..SIZE)
                .map(|i| (i as u8).wrapping_mul(seed).wrapping_add(i as u8 >> 3))
                .collect()
        };
        let pump = |sock: TcpStream, seed: u8| {
            let out = data(seed);
            let rd = sock.try_clone().unwrap();
            let writer = spawn(move || (&sock).write_all(&out));
            let reader = spawn(move || {
                let mut got = vec![0u8; SIZE];
                (&rd).read_exact(&mut got).map(|_| got)
            });
            (writer, reader)
        };
        let (wa, ra) = pump(a, 3);
        let (wb, rb) = pump(b, 5);
        wa.join().unwrap().unwrap();
        wb.join().unwrap().unwrap();
        assert!(ra.join().unwrap().unwrap() == data(5), "a got b's bytes");
        assert!(rb.join().unwrap().unwrap() == data(3), "b got a's bytes");
    });
}

#[test]
fn lookup_host_resolves_localhost_off_the_hub() {
    with_watchdog(|| {
        // `other` can only run while this greenlet waits: if the lookup blocked the
        // thread instead, it would not have run by the time the lookup returns.
        let ran = Rc::new(Cell::new(false));
        let r = ran.clone();
        let other = spawn(move || r.set(true));
        let ips = lookup_host("localhost").unwrap();
        assert!(ran.get(), "another greenlet ran during the lookup");
        assert!(!ips.is_empty());
        assert!(ips.iter().all(|ip| ip.is_loopback()), "{ips:?}");
        other.join().unwrap();

        // Numeric addresses are parsed, not looked up: no wait at all.
        let ran = Rc::new(Cell::new(false));
        let r = ran.clone();
        let other = spawn(move || r.set(true));
        let ips = lookup_host("127.0.0.1").unwrap();
        assert_eq!(ips, ["127.0.0.1".parse::<std::net::IpAddr>().unwrap()]);
        assert!(!ran.get(), "a numeric address did not wait");
        other.join().unwrap();
    });
}

#[test]
fn connect_by_name_reaches_a_listener_on_localhost() {
    with_watchdog(|| {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let acceptor = spawn(move || {
            let (s, _) = l.accept().unwrap();
            (&s).write_all(b"hello by name").unwrap();
        });
        // "localhost" may resolve to ::1 first; connect tries each address in turn.
        let c = TcpStream::connect(format!("localhost:{port}")).unwrap();
        assert_eq!(c.peer_addr().unwrap().port(), port);
        let mut got = Vec::new();
        (&c).read_to_end(&mut got).unwrap();
        assert_eq!(got, b"hello by name");
        acceptor.join().unwrap();

        let e = TcpStream::connect("localhost").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "no port: {e:?}");
    });
}

/// A non-blocking pipe: (read end, write end).
fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills the two-int array we pass.
    assert_eq!(
        unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) },
        0
    );
    // SAFETY: both fds were just created and are owned by nobody else.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

#[test]
fn wait_read_waits_for_a_foreign_pipe_to_become_readable() {
    with_watchdog(|| {
        let (rd, wr) = pipe();
        let wrote = Rc::new(Cell::new(false));
        let w2 = wrote.clone();
        let writer = spawn(move || {
            let mut f = std::fs::File::from(wr);
            f.write_all(b"!").unwrap();
            w2.set(true);
            f
        });
        wait_read(rd.as_raw_fd(), None).unwrap();
        assert!(wrote.get(), "woken by the write, not before");
        let mut b = [0u8; 1];
        std::fs::File::from(rd.try_clone().unwrap())
            .read_exact(&mut b)
            .unwrap();
        assert_eq!(&b, b"!");

        // Nothing more to read: the wait times out.
        let t0 = Instant::now();
        let e = wait_read(rd.as_raw_fd(), Some(Duration::from_millis(50))).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut, "{e:?}");
        assert!(t0.elapsed() >= Duration::from_millis(50));

        // An empty pipe is writable at once.
        let wr = writer.join().unwrap();
        wait_write(wr.as_raw_fd(), Some(WATCHDOG)).unwrap();
    });
}

/// True if `fd` names an open file descriptor right now.
fn fd_is_open(fd: i32) -> bool {
    // SAFETY: F_GETFD only reads the descriptor flags.
    unsafe { libc::fcntl(fd, libc::F_GETFD) != -1 }
}

/// The (device, inode) of the file `fd` refers to.
fn file_id(fd: i32) -> (u64, u64) {
    // SAFETY: fstat fills the zeroed struct for an open fd.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    assert_eq!(unsafe { libc::fstat(fd, &mut st) }, 0, "fstat {fd}");
    (st.st_dev, st.st_ino)
}

#[test]
fn a_borrowed_fd_stays_valid_while_its_socket_is_closed_through_another_handle() {
    use std::os::fd::AsFd;
    let (c, s) = tcp_pair();
    let other = c.try_clone().unwrap();
    let borrowed = c.as_fd();
    let fd = borrowed.as_raw_fd();
    other.close();
    // The peer sees the connection closed...
    let mut buf = [0u8; 1];
    assert_eq!(with_watchdog(|| (&s).read(&mut buf).unwrap()), 0);
    // ...but the number the borrow names is still reserved: a file opened now gets
    // another one, and the borrowed fd does not alias it.
    let f = std::fs::File::open("/dev/null").unwrap();
    assert_ne!(f.as_raw_fd(), fd, "the borrowed fd's number was reused");
    assert!(
        fd_is_open(fd),
        "a borrowed fd must stay open for its lifetime"
    );
    assert_ne!(file_id(fd), file_id(f.as_raw_fd()));
    // Using the closed socket is an error, not a use of some other file.
    assert!((&c).write(b"x").is_err());
    let _ = borrowed;
}

#[test]
fn close_on_the_same_handle_keeps_its_borrowed_fd_reserved_too() {
    use std::os::fd::AsFd;
    for kind in ["stream", "listener", "udp"] {
        let (fd, closer): (i32, Box<dyn Fn()>) = match kind {
            "stream" => {
                let (c, _s) = tcp_pair();
                let fd = c.as_fd().as_raw_fd();
                let c = Rc::new(c);
                let c2 = c.clone();
                (fd, Box::new(move || c2.close()))
            }
            "listener" => {
                let l = Rc::new(TcpListener::bind("127.0.0.1:0").unwrap());
                let fd = l.as_fd().as_raw_fd();
                let l2 = l.clone();
                (fd, Box::new(move || l2.close()))
            }
            _ => {
                let u = Rc::new(gevent_hub::net::UdpSocket::bind("127.0.0.1:0").unwrap());
                let fd = u.as_fd().as_raw_fd();
                let u2 = u.clone();
                (fd, Box::new(move || u2.close()))
            }
        };
        closer();
        let f = std::fs::File::open("/dev/null").unwrap();
        assert_ne!(
            f.as_raw_fd(),
            fd,
            "{kind}: the closed socket's number was reused while its handle lives"
        );
        assert!(fd_is_open(fd), "{kind}");
        drop(closer);
    }
}

#[test]
fn a_closed_listener_refuses_connections_though_its_fd_stays_reserved() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    l.close();
    let e = TcpStream::connect(addr).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused);
    assert!(l.accept().is_err());
}
