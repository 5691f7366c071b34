//! `UdpSocket`, `UnixStream`, `UnixListener` and `UnixDatagram`: datagrams to and from
//! addresses and over connected sockets, receives that park until data arrives, read
//! timeouts, and Unix stream pairs and listeners in a temporary directory.

use gevent_hub::net::{UdpSocket, UnixDatagram, UnixListener, UnixStream};
use gevent_hub::{sleep, spawn, with_timeout};
use std::cell::Cell;
use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

/// A lost wake-up fails the test after this long instead of hanging it.
const WATCHDOG: Duration = Duration::from_secs(10);

/// Runs `f` (in the test's main greenlet) under a watchdog [`with_timeout`].
fn with_watchdog<R>(f: impl FnOnce() -> R) -> R {
    with_timeout(WATCHDOG, f)
        .unwrap_or_else(|e| panic!("watchdog: the test did not finish within {WATCHDOG:?}: {e}"))
}

/// A fresh directory for socket files, removed (with its contents) when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!(
            "gevent-hub-{tag}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn udp_send_to_and_recv_from_carry_the_datagram_and_its_sender() {
    with_watchdog(|| {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        let (aa, ba) = (a.local_addr().unwrap(), b.local_addr().unwrap());
        assert_eq!(a.send_to(b"first", ba).unwrap(), 5);
        assert_eq!(a.send_to(b"second one", ba).unwrap(), 10);
        let mut buf = [0u8; 64];
        // Datagram boundaries are kept.
        let (n, from) = b.recv_from(&mut buf).unwrap();
        assert_eq!((&buf[..n], from), (&b"first"[..], aa));
        let (n, _) = b.peek_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"second one");
        let (n, from) = b.recv_from(&mut buf).unwrap();
        assert_eq!((&buf[..n], from), (&b"second one"[..], aa));
        // The reply goes back to the sender's address.
        b.send_to(b"reply", from).unwrap();
        let (n, from) = a.recv_from(&mut buf).unwrap();
        assert_eq!((&buf[..n], from), (&b"reply"[..], ba));
    });
}

#[test]
fn udp_recv_parks_the_greenlet_until_a_datagram_arrives() {
    with_watchdog(|| {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        let ba = b.local_addr().unwrap();
        let sent = Rc::new(Cell::new(false));
        let s2 = sent.clone();
        // Runs only once the receiver below has parked.
        let sender = spawn(move || {
            s2.set(true);
            a.send_to(b"wake up", ba).unwrap();
        });
        let mut buf = [0u8; 16];
        let (n, _) = b.recv_from(&mut buf).unwrap();
        assert!(sent.get(), "the receive waited for the sender");
        assert_eq!(&buf[..n], b"wake up");
        sender.join().unwrap();
    });
}

#[test]
fn udp_connect_send_and_recv_use_the_default_peer() {
    with_watchdog(|| {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        let stranger = UdpSocket::bind("127.0.0.1:0").unwrap();
        let e = a.peer_addr().unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotConnected);
        a.connect(b.local_addr().unwrap()).unwrap();
        b.connect(a.local_addr().unwrap()).unwrap();
        assert_eq!(a.peer_addr().unwrap(), b.local_addr().unwrap());

        // A connected socket only receives from its peer.
        stranger
            .send_to(b"filtered out", a.local_addr().unwrap())
            .unwrap();
        assert_eq!(b.send(b"ping").unwrap(), 4);
        let mut buf = [0u8; 16];
        let n = a.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"ping");
        a.send(b"pong").unwrap();
        let n = b.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"pong");
    });
}

#[test]
fn udp_recv_with_a_read_timeout_returns_timed_out() {
    with_watchdog(|| {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let timeout = Duration::from_millis(50);
        a.set_read_timeout(Some(timeout)).unwrap();
        let t0 = Instant::now();
        let e = a.recv_from(&mut [0u8; 16]).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut, "{e:?}");
        assert!(t0.elapsed() >= timeout, "a timeout never fires early");
        let e = a.set_read_timeout(Some(Duration::ZERO)).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    });
}

#[test]
fn closing_a_udp_socket_wakes_its_blocked_receiver() {
    with_watchdog(|| {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let closer = a.try_clone().unwrap();
        let receiver = spawn(move || a.recv_from(&mut [0u8; 16]).map(|(n, _)| n));
        sleep(Duration::ZERO);
        assert!(!receiver.ready(), "the receiver is blocked");
        closer.close();
        let e = receiver.join().unwrap().unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotConnected, "{e:?}");
    });
}

#[test]
fn unix_stream_pair_carries_bytes_both_ways() {
    with_watchdog(|| {
        let (a, b) = UnixStream::pair().unwrap();
        // The reader parks until the writer (which runs only then) has written.
        let reader = spawn(move || {
            let mut got = [0u8; 5];
            (&b).read_exact(&mut got).unwrap();
            (&b).write_all(b"world").unwrap();
            got
        });
        sleep(Duration::ZERO);
        assert!(!reader.ready(), "the reader waits for data");
        (&a).write_all(b"hello").unwrap();
        assert_eq!(&reader.join().unwrap(), b"hello");
        let mut got = [0u8; 5];
        (&a).read_exact(&mut got).unwrap();
        assert_eq!(&got, b"world");
        // The peer is gone (dropped with the greenlet's closure): EOF.
        assert_eq!((&a).read(&mut got).unwrap(), 0);
    });
}

#[test]
fn unix_listener_accepts_a_connection_at_its_path() {
    with_watchdog(|| {
        let dir = TempDir::new("unix-listener");
        let path = dir.path("sock");
        let l = UnixListener::bind(&path).unwrap();
        assert_eq!(l.local_addr().unwrap().as_pathname(), Some(path.as_path()));
        // Binding an existing path fails.
        assert_eq!(
            UnixListener::bind(&path).unwrap_err().kind(),
            io::ErrorKind::AddrInUse
        );

        let p2 = path.clone();
        let client = spawn(move || {
            let c = UnixStream::connect(&p2).unwrap();
            assert_eq!(c.peer_addr().unwrap().as_pathname(), Some(p2.as_path()));
            (&c).write_all(b"over a unix socket").unwrap();
            c.shutdown(Shutdown::Write).unwrap();
            let mut reply = Vec::new();
            (&c).read_to_end(&mut reply).unwrap();
            reply
        });
        let (s, _peer) = l.accept().unwrap();
        let mut got = Vec::new();
        (&s).read_to_end(&mut got).unwrap();
        assert_eq!(got, b"over a unix socket");
        (&s).write_all(b"ack").unwrap();
        drop(s);
        assert_eq!(client.join().unwrap(), b"ack");

        // `incoming` yields the next connection.
        let p3 = path.clone();
        let client = spawn(move || UnixStream::connect(&p3).unwrap());
        let s = l.incoming().next().unwrap().unwrap();
        let c = client.join().unwrap();
        (&c).write_all(b"x").unwrap();
        let mut b = [0u8; 1];
        (&s).read_exact(&mut b).unwrap();
        assert_eq!(&b, b"x");

        let e = UnixStream::connect(dir.path("nobody-here")).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound, "{e:?}");
    });
}

#[test]
fn unix_stream_read_timeout_returns_timed_out() {
    with_watchdog(|| {
        let (a, _b) = UnixStream::pair().unwrap();
        let timeout = Duration::from_millis(50);
        a.set_read_timeout(Some(timeout)).unwrap();
        let t0 = Instant::now();
        let e = (&a).read(&mut [0u8; 4]).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut, "{e:?}");
        assert!(t0.elapsed() >= timeout, "a timeout never fires early");
    });
}

fn recv_from_path(s: &UnixDatagram) -> (Vec<u8>, Option<PathBuf>) {
    let mut buf = [0u8; 256];
    let (n, from) = s.recv_from(&mut buf).unwrap();
    (buf[..n].to_vec(), from.as_pathname().map(Path::to_path_buf))
}

#[test]
fn unix_datagrams_go_to_paths_and_over_pairs() {
    with_watchdog(|| {
        let dir = TempDir::new("unix-dgram");
        let (pa, pb) = (dir.path("a"), dir.path("b"));
        let a = UnixDatagram::bind(&pa).unwrap();
        let b = UnixDatagram::bind(&pb).unwrap();

        // recv parks until the datagram is sent.
        let pb2 = pb.clone();
        let sender = spawn(move || {
            a.send_to(b"to b", &pb2).unwrap();
            a
        });
        assert_eq!(recv_from_path(&b), (b"to b".to_vec(), Some(pa.clone())));
        let a = sender.join().unwrap();

        // Connected: send/recv.
        a.connect(&pb).unwrap();
        a.send(b"connected").unwrap();
        let mut buf = [0u8; 32];
        let n = b.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"connected");

        // An unbound sender can send; its address has no path.
        let u = UnixDatagram::unbound().unwrap();
        u.send_to(b"anonymous", &pb).unwrap();
        let (data, _from) = recv_from_path(&b);
        assert_eq!(data, b"anonymous");

        // A pair.
        let (x, y) = UnixDatagram::pair().unwrap();
        x.send(b"one").unwrap();
        x.send(b"two").unwrap();
        let n = y.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"one");
        let n = y.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"two");

        y.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
        let e = y.recv(&mut buf).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut, "{e:?}");
    });
}

/// A datagram from an unbound socket has an unnamed sender, as std reports it (not the
/// receiver's own address).
#[test]
fn a_datagram_from_an_unbound_socket_has_an_unnamed_sender() {
    let dir = std::env::temp_dir().join(format!("gevent-unnamed-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("rx.sock");
    let _ = std::fs::remove_file(&path);
    let rx = gevent_hub::net::UnixDatagram::bind(&path).unwrap();
    let tx = gevent_hub::net::UnixDatagram::unbound().unwrap();
    tx.send_to(b"hi", &path).unwrap();
    let mut buf = [0u8; 8];
    let (n, from) = rx.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"hi");
    assert!(from.is_unnamed(), "sender reported as {from:?}");
    drop(rx);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A socket nobody waits on does not keep the hub's loop alive: after a read was woken
/// (its watcher stays armed for the next read), a wait that nothing can end fails with
/// "would block forever" instead of hanging.
#[test]
fn an_idle_socket_does_not_keep_the_loop_alive() {
    let (tx, rx) = std::sync::mpsc::channel();
    // Its own thread: a hang must fail the test, and a watchdog timer in this hub
    // would itself keep the loop alive.
    std::thread::spawn(move || {
        let (a, b) = UnixStream::pair().unwrap();
        let reader = spawn(move || {
            let mut buf = [0u8; 8];
            let n = (&a).read(&mut buf).unwrap();
            (a, n)
        });
        sleep(Duration::ZERO);
        (&b).write_all(b"x").unwrap();
        let (a, n) = reader.join().unwrap();
        assert_eq!(n, 1);
        let r = gevent_hub::Event::new().wait();
        let _ = tx.send(matches!(r, Err(gevent_hub::Error::WouldBlockForever(_))));
        drop((a, b));
    });
    let forever = rx
        .recv_timeout(WATCHDOG)
        .expect("the wait ended instead of hanging");
    assert!(forever, "the wait failed with WouldBlockForever");
}
