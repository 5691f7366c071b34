//! `UdpSocket`, with `std::net`'s names and signatures.

use super::readiness::Direction;
use super::resolve::{each_addr, ToSocketAddrs};
use super::sock::Sock;
use super::tcp::sock_addr;
use socket2::{Domain, Protocol, Socket, Type};
use std::fmt;
use std::io;
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::rc::Rc;
use std::time::Duration;

fn uninit(buf: &mut [u8]) -> &mut [MaybeUninit<u8>] {
    // SAFETY: an initialised byte slice is a valid slice of MaybeUninit bytes, and the
    // socket calls only ever write initialised bytes into it.
    unsafe { &mut *(buf as *mut [u8] as *mut [MaybeUninit<u8>]) }
}

/// A UDP socket; receiving parks the greenlet, not the thread.
pub struct UdpSocket {
    sock: Rc<Sock>,
}

impl fmt::Debug for UdpSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UdpSocket")
            .field("fd", &self.sock.fd())
            .field("addr", &self.local_addr().ok())
            .finish()
    }
}

impl UdpSocket {
    fn from_nonblocking(s: Socket) -> UdpSocket {
        UdpSocket {
            sock: Rc::new(Sock::from_nonblocking(s)),
        }
    }

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
    /// Resolution or `sendto` errors.
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

    /// Sends to the connected peer.
    ///
    /// # Errors
    /// `send` errors (`NotConnected` before `connect`).
    pub fn send(&self, buf: &[u8]) -> io::Result<usize> {
        self.sock.write(buf)
    }

    /// Receives from the connected peer.
    ///
    /// # Errors
    /// `recv` errors.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.sock
            .io_op(Direction::Read, None, |s| s.recv(uninit(buf)))
    }

    /// The local address.
    ///
    /// # Errors
    /// `getsockname` errors.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.sock.with(|s| sock_addr(&s.local_addr()?))
    }

    /// The connected peer.
    ///
    /// # Errors
    /// `NotConnected` before `connect`.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.sock.with(|s| sock_addr(&s.peer_addr()?))
    }

    /// Receive timeout (`TimedOut` when it expires).
    ///
    /// # Errors
    /// `InvalidInput` for a zero duration.
    pub fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        self.sock.set_timeout(Direction::Read, t)
    }

    /// Send timeout.
    ///
    /// # Errors
    /// `InvalidInput` for a zero duration.
    pub fn set_write_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        self.sock.set_timeout(Direction::Write, t)
    }

    /// Sets `SO_BROADCAST`.
    ///
    /// # Errors
    /// `setsockopt` errors.
    pub fn set_broadcast(&self, on: bool) -> io::Result<()> {
        self.sock.with(|s| s.set_broadcast(on))
    }

    /// Another handle to the same socket.
    ///
    /// # Errors
    /// Never, today; kept for std's signature.
    pub fn try_clone(&self) -> io::Result<UdpSocket> {
        Ok(UdpSocket {
            sock: self.sock.clone(),
        })
    }

    /// Closes it now, waking a greenlet blocked on it with an error.
    pub fn close(&self) {
        self.sock.close();
    }
}

super::fd_conversions!(UdpSocket, std::net::UdpSocket, from_nonblocking);
