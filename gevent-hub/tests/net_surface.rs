//! The std surface every net type now has (written once for all of them): timeouts and
//! their getters, `take_error`, `peek`, vectored I/O, `set_nonblocking` (calls return
//! `WouldBlock` instead of parking), TTL and datagram options, abstract Unix addresses,
//! and the fd conversions.

use gevent_hub::net::{TcpListener, TcpStream, UdpSocket, UnixDatagram, UnixListener, UnixStream};
use gevent_hub::with_timeout;
use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::net::Shutdown;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

const WATCHDOG: Duration = Duration::from_secs(10);
const SHORT: Duration = Duration::from_millis(20);

fn with_watchdog<R>(f: impl FnOnce() -> R) -> R {
    with_timeout(WATCHDOG, f)
        .unwrap_or_else(|e| panic!("watchdog: the test did not finish within {WATCHDOG:?}: {e}"))
}

/// `set_read_timeout`/`set_write_timeout` and their getters, as std's: zero refused,
/// `None` clears, shared with `try_clone`d handles.
macro_rules! check_timeouts {
    ($s:expr) => {{
        let s = $s;
        assert_eq!(s.read_timeout().unwrap(), None);
        assert_eq!(s.write_timeout().unwrap(), None);
        s.set_read_timeout(Some(SHORT)).unwrap();
        s.set_write_timeout(Some(2 * SHORT)).unwrap();
        assert_eq!(s.read_timeout().unwrap(), Some(SHORT));
        assert_eq!(s.write_timeout().unwrap(), Some(2 * SHORT));
        assert_eq!(s.try_clone().unwrap().read_timeout().unwrap(), Some(SHORT));
        let e = s.set_write_timeout(Some(Duration::ZERO)).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        s.set_write_timeout(None).unwrap();
        assert_eq!(s.write_timeout().unwrap(), None);
        assert!(s.take_error().unwrap().is_none());
    }};
}

#[test]
fn every_socket_with_std_timeouts_has_them_and_their_getters() {
    with_watchdog(|| {
        check_timeouts!(&UdpSocket::bind("127.0.0.1:0").unwrap());
        check_timeouts!(&UnixStream::pair().unwrap().0);
        check_timeouts!(&UnixDatagram::pair().unwrap().0);
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        check_timeouts!(&c);
    });
}

#[test]
fn udp_socket_timeouts_peek_and_options() {
    with_watchdog(|| {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        a.connect(b.local_addr().unwrap()).unwrap();
        b.connect(a.local_addr().unwrap()).unwrap();
        b.set_read_timeout(Some(SHORT)).unwrap();
        let e = b.recv(&mut [0u8; 8]).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut, "{e:?}");
        a.send(b"dgram").unwrap();
        let mut buf = [0u8; 8];
        assert_eq!(b.peek(&mut buf).unwrap(), 5);
        assert_eq!(b.recv(&mut buf).unwrap(), 5);
        assert_eq!(&buf[..5], b"dgram");

        a.set_ttl(17).unwrap();
        assert_eq!(a.ttl().unwrap(), 17);
        a.set_broadcast(true).unwrap();
        assert!(a.broadcast().unwrap());
        a.set_multicast_ttl_v4(3).unwrap();
        assert_eq!(a.multicast_ttl_v4().unwrap(), 3);
        a.set_multicast_loop_v4(false).unwrap();
        assert!(!a.multicast_loop_v4().unwrap());
        assert!(a.take_error().unwrap().is_none());
    });
}

#[test]
fn unix_stream_has_write_timeouts_peek_and_vectored_io() {
    with_watchdog(|| {
        let (a, b) = UnixStream::pair().unwrap();
        let n = (&a)
            .write_vectored(&[IoSlice::new(b"hel"), IoSlice::new(b"lo")])
            .unwrap();
        assert_eq!(n, 5);
        let mut got = [0u8; 5];
        assert_eq!(b.peek(&mut got).unwrap(), 5);
        let (mut x, mut y) = ([0u8; 2], [0u8; 3]);
        let n = (&b)
            .read_vectored(&mut [IoSliceMut::new(&mut x), IoSliceMut::new(&mut y)])
            .unwrap();
        assert_eq!((n, &x, &y), (5, b"he", b"llo"));

        // Nobody reads `b`: the buffers fill, and a write times out.
        a.set_write_timeout(Some(SHORT)).unwrap();
        let chunk = [1u8; 64 * 1024];
        let e = loop {
            if let Err(e) = (&a).write(&chunk) {
                break e;
            }
        };
        assert_eq!(e.kind(), io::ErrorKind::TimedOut, "{e:?}");
        a.shutdown(Shutdown::Both).unwrap();
    });
}

#[test]
fn unix_datagram_has_the_whole_std_surface() {
    with_watchdog(|| {
        let (a, b) = UnixDatagram::pair().unwrap();
        assert!(a.peer_addr().unwrap().is_unnamed());
        a.send(b"one").unwrap();
        let mut buf = [0u8; 8];
        assert_eq!(b.peek(&mut buf).unwrap(), 3);
        let (n, from) = b.peek_from(&mut buf).unwrap();
        assert_eq!((n, from.is_unnamed()), (3, true));
        assert_eq!(b.recv(&mut buf).unwrap(), 3);
        b.set_read_timeout(Some(SHORT)).unwrap();
        assert_eq!(b.read_timeout().unwrap(), Some(SHORT));
        let e = b.recv(&mut buf).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut, "{e:?}");
        b.shutdown(Shutdown::Read).unwrap();
        assert!(a.take_error().unwrap().is_none());
    });
}

#[test]
fn abstract_unix_addresses_bind_connect_and_send() {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::net::SocketAddr;
    with_watchdog(|| {
        let name = format!("gevent-surface-{}", std::process::id());
        let addr = SocketAddr::from_abstract_name(format!("{name}-l")).unwrap();
        let l = UnixListener::bind_addr(&addr).unwrap();
        let local = l.local_addr().unwrap();
        assert_eq!(local.as_abstract_name(), addr.as_abstract_name());
        let c = UnixStream::connect_addr(&addr).unwrap();
        let (s, _) = l.accept().unwrap();
        (&c).write_all(b"abstract").unwrap();
        let mut got = [0u8; 8];
        (&s).read_exact(&mut got).unwrap();
        assert_eq!(&got, b"abstract");

        let daddr = SocketAddr::from_abstract_name(format!("{name}-d")).unwrap();
        let rx = UnixDatagram::bind_addr(&daddr).unwrap();
        let tx = UnixDatagram::unbound().unwrap();
        tx.send_to_addr(b"dg", &daddr).unwrap();
        let tx2 = UnixDatagram::unbound().unwrap();
        tx2.connect_addr(&daddr).unwrap();
        tx2.send(b"dg2").unwrap();
        let mut buf = [0u8; 4];
        assert_eq!(rx.recv(&mut buf).unwrap(), 2);
        assert_eq!(rx.recv(&mut buf).unwrap(), 3);
        let unnamed = UnixDatagram::unbound().unwrap().local_addr().unwrap();
        let e = UnixStream::connect_addr(&unnamed).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    });
}

#[test]
fn set_nonblocking_makes_calls_return_would_block_instead_of_parking() {
    with_watchdog(|| {
        let (a, b) = UnixStream::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        let e = (&a).read(&mut [0u8; 4]).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock, "{e:?}");
        // Shared with the clones, as std's flag is by its dups.
        let e = a.try_clone().unwrap().peek(&mut [0u8; 4]).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock, "{e:?}");
        (&b).write_all(b"now").unwrap();
        let mut got = [0u8; 3];
        (&a).read_exact(&mut got).unwrap();
        assert_eq!(&got, b"now");
        // A full send buffer says WouldBlock too.
        let chunk = [0u8; 64 * 1024];
        let e = loop {
            if let Err(e) = (&a).write(&chunk) {
                break e;
            }
        };
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock, "{e:?}");

        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.set_nonblocking(true).unwrap();
        assert_eq!(l.accept().unwrap_err().kind(), io::ErrorKind::WouldBlock);
        let u = UdpSocket::bind("127.0.0.1:0").unwrap();
        u.set_nonblocking(true).unwrap();
        let e = u.recv_from(&mut [0u8; 4]).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        let d = UnixDatagram::unbound().unwrap();
        d.set_nonblocking(true).unwrap();
        assert_eq!(
            d.recv(&mut [0u8; 4]).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );

        // Back to blocking: the read parks until the peer writes.
        a.set_nonblocking(false).unwrap();
        let (c, d) = UnixStream::pair().unwrap();
        c.set_nonblocking(true).unwrap();
        c.set_nonblocking(false).unwrap();
        let writer = gevent_hub::spawn(move || (&d).write_all(b"parked").map(|_| d));
        let mut got = [0u8; 6];
        (&c).read_exact(&mut got).unwrap();
        assert_eq!(&got, b"parked");
        writer.join().unwrap().unwrap();
    });
}

#[test]
fn tcp_has_ttl_on_both_types_and_vectored_reads() {
    with_watchdog(|| {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.set_ttl(33).unwrap();
        assert_eq!(l.ttl().unwrap(), 33);
        let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        c.set_ttl(44).unwrap();
        assert_eq!(c.ttl().unwrap(), 44);
        let (s, _) = l.accept().unwrap();
        (&c).write_all(b"abcdef").unwrap();
        let (mut x, mut y) = ([0u8; 4], [0u8; 2]);
        let mut got = 0;
        while got < 6 {
            let n = if got < 4 {
                let (xs, ys) = (&mut x[got..], &mut y[..]);
                (&s).read_vectored(&mut [IoSliceMut::new(xs), IoSliceMut::new(ys)])
            } else {
                (&s).read_vectored(&mut [IoSliceMut::new(&mut y[got - 4..])])
            };
            got += n.unwrap();
        }
        assert_eq!((&x, &y), (b"abcd", b"ef"));
        assert!(l.take_error().unwrap().is_none());
    });
}

#[test]
fn giving_up_the_fd_hands_over_the_same_number_when_no_other_handle_shares_it() {
    with_watchdog(|| {
        let (a, b) = UnixStream::pair().unwrap();
        let n = a.as_raw_fd();
        let fd = OwnedFd::from(a);
        assert_eq!(
            fd.as_raw_fd(),
            n,
            "the sole handle gives its own fd, no dup"
        );
        // Adopted back, it works as before.
        let a = UnixStream::from(fd);
        (&b).write_all(b"x").unwrap();
        let mut got = [0u8; 1];
        (&a).read_exact(&mut got).unwrap();

        // With another handle, the caller gets a dup and the shared socket closes.
        let other = a.try_clone().unwrap();
        let fd = OwnedFd::from(a);
        assert_ne!(fd.as_raw_fd(), n);
        assert_eq!(
            (&other).read(&mut got).unwrap_err().kind(),
            io::ErrorKind::NotConnected
        );
        let a = UnixStream::from(fd);
        (&b).write_all(b"y").unwrap();
        (&a).read_exact(&mut got).unwrap();
        assert_eq!(&got, b"y");
    });
}
