//! `UdpSocket`, with `std::net`'s names and signatures (the shared surface comes from
//! [`std_surface!`](super::surface)).

use super::readiness::Direction;
use super::resolve::{each_addr, ToSocketAddrs};
use super::sock::Sock;
use super::surface::{std_surface, uninit};
use super::tcp::{local_ip, peer_ip, sock_addr};
use socket2::{Domain, Protocol, Socket, Type};
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::rc::Rc;

/// A UDP socket; receiving parks the greenlet, not the thread.
///
/// # Examples
/// ```
/// use gevent_hub::net::UdpSocket;
/// use gevent_hub::spawn;
///
/// let server = UdpSocket::bind("127.0.0.1:0")?;
/// let addr = server.local_addr()?;
/// let echo = spawn(move || -> std::io::Result<()> {
///     let mut buf = [0u8; 64];
///     let (n, peer) = server.recv_from(&mut buf)?; // parks until a datagram comes
///     server.send_to(&buf[..n], peer).map(drop)
/// });
/// let client = UdpSocket::bind("127.0.0.1:0")?;
/// client.send_to(b"ping", addr)?;
/// let mut buf = [0u8; 64];
/// let (n, _) = client.recv_from(&mut buf)?;
/// assert_eq!(&buf[..n], b"ping");
/// echo.join().unwrap()?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct UdpSocket {
    sock: Rc<Sock>,
}

std_surface!(UdpSocket: std::net::UdpSocket, SocketAddr, local = local_ip, peer = peer_ip;
    timeouts, datagram, ttl);

impl UdpSocket {
    /// Binds to `addr`.
    ///
    /// # Errors
    /// Resolution or `bind` errors.
    pub fn bind<A: ToSocketAddrs>(addr: A) -> io::Result<UdpSocket> {
        each_addr(&addr, |a| {
            let s = Socket::new(
                Domain::for_address(*a),
                Type::DGRAM.nonblocking(),
                Some(Protocol::UDP),
            )?;
            s.bind(&(*a).into())?;
            Ok(UdpSocket::from_nonblocking(s))
        })
    }

    /// Receives one datagram, waiting for it; returns its length and sender.
    ///
    /// # Errors
    /// `recvfrom` errors, `TimedOut` with a read timeout.
    pub fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        let (n, a) = self
            .sock
            .io_op(Direction::Read, None, |s| s.recv_from(uninit(buf)))?;
        Ok((n, sock_addr(&a)?))
    }

    /// Like [`recv_from`](UdpSocket::recv_from) without removing the datagram.
    ///
    /// # Errors
    /// As [`recv_from`](UdpSocket::recv_from).
    pub fn peek_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        let (n, a) = self
            .sock
            .io_op(Direction::Read, None, |s| s.peek_from(uninit(buf)))?;
        Ok((n, sock_addr(&a)?))
    }

    /// Sends `buf` to `addr`.
    ///
    /// # Errors
    /// Resolution or `sendto` errors, `TimedOut` with a write timeout.
    pub fn send_to<A: ToSocketAddrs>(&self, buf: &[u8], addr: A) -> io::Result<usize> {
        let a = addr.to_socket_addrs()?.into_iter().next().ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "no addresses to send data to")
        })?;
        let a = a.into();
        self.sock.io_op(Direction::Write, None, |s| {
            s.send_to_with_flags(buf, &a, libc::MSG_NOSIGNAL)
        })
    }

    /// Sets the default peer for `send`/`recv` (and filters incoming datagrams).
    ///
    /// # Errors
    /// Resolution or `connect` errors.
    pub fn connect<A: ToSocketAddrs>(&self, addr: A) -> io::Result<()> {
        each_addr(&addr, |a| self.sock.with(|s| s.connect(&(*a).into())))
    }

    /// Sets `SO_BROADCAST`.
    ///
    /// # Errors
    /// `setsockopt` errors.
    pub fn set_broadcast(&self, on: bool) -> io::Result<()> {
        self.sock.with(|s| s.set_broadcast(on))
    }

    /// Reads `SO_BROADCAST`.
    ///
    /// # Errors
    /// `getsockopt` errors.
    pub fn broadcast(&self) -> io::Result<bool> {
        self.sock.with(|s| s.broadcast())
    }

    /// Sets `IP_MULTICAST_LOOP`.
    ///
    /// # Errors
    /// `setsockopt` errors.
    pub fn set_multicast_loop_v4(&self, on: bool) -> io::Result<()> {
        self.sock.with(|s| s.set_multicast_loop_v4(on))
    }

    /// Reads `IP_MULTICAST_LOOP`.
    ///
    /// # Errors
    /// `getsockopt` errors.
    pub fn multicast_loop_v4(&self) -> io::Result<bool> {
        self.sock.with(|s| s.multicast_loop_v4())
    }

    /// Sets `IP_MULTICAST_TTL`.
    ///
    /// # Errors
    /// `setsockopt` errors.
    pub fn set_multicast_ttl_v4(&self, ttl: u32) -> io::Result<()> {
        self.sock.with(|s| s.set_multicast_ttl_v4(ttl))
    }

    /// Reads `IP_MULTICAST_TTL`.
    ///
    /// # Errors
    /// `getsockopt` errors.
    pub fn multicast_ttl_v4(&self) -> io::Result<u32> {
        self.sock.with(|s| s.multicast_ttl_v4())
    }

    /// Sets `IPV6_MULTICAST_LOOP`.
    ///
    /// # Errors
    /// `setsockopt` errors.
    pub fn set_multicast_loop_v6(&self, on: bool) -> io::Result<()> {
        self.sock.with(|s| s.set_multicast_loop_v6(on))
    }

    /// Reads `IPV6_MULTICAST_LOOP`.
    ///
    /// # Errors
    /// `getsockopt` errors.
    pub fn multicast_loop_v6(&self) -> io::Result<bool> {
        self.sock.with(|s| s.multicast_loop_v6())
    }

    /// Joins the IPv4 multicast group `multiaddr` on `interface`.
    ///
    /// # Errors
    /// `setsockopt` errors.
    pub fn join_multicast_v4(&self, multiaddr: &Ipv4Addr, interface: &Ipv4Addr) -> io::Result<()> {
        self.sock
            .with(|s| s.join_multicast_v4(multiaddr, interface))
    }

    /// Joins the IPv6 multicast group `multiaddr` on interface index `interface`.
    ///
    /// # Errors
    /// `setsockopt` errors.
    pub fn join_multicast_v6(&self, multiaddr: &Ipv6Addr, interface: u32) -> io::Result<()> {
        self.sock
            .with(|s| s.join_multicast_v6(multiaddr, interface))
    }

    /// Leaves the IPv4 multicast group `multiaddr` on `interface`.
    ///
    /// # Errors
    /// `setsockopt` errors.
    pub fn leave_multicast_v4(&self, multiaddr: &Ipv4Addr, interface: &Ipv4Addr) -> io::Result<()> {
        self.sock
            .with(|s| s.leave_multicast_v4(multiaddr, interface))
    }

    /// Leaves the IPv6 multicast group `multiaddr` on interface index `interface`.
    ///
    /// # Errors
    /// `setsockopt` errors.
    pub fn leave_multicast_v6(&self, multiaddr: &Ipv6Addr, interface: u32) -> io::Result<()> {
        self.sock
            .with(|s| s.leave_multicast_v6(multiaddr, interface))
    }
}
