//! `TcpListener` and `TcpStream`, with `std::net`'s names and signatures.

use super::readiness::Direction;
use super::resolve::{each_addr, ToSocketAddrs};
use super::sock::Sock;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::fmt;
use std::io::{self, IoSlice, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::rc::Rc;
use std::time::Duration;

/// The listen backlog of [`TcpListener::bind`] (the slides' `StreamServer` default).
pub const DEFAULT_BACKLOG: i32 = 1024;

pub(crate) fn sock_addr(a: &SockAddr) -> io::Result<SocketAddr> {
    a.as_socket()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not an IP socket address"))
}

/// Accepts one connection: `accept4` with `SOCK_NONBLOCK | SOCK_CLOEXEC`, one system call.
pub(crate) fn accept_raw(s: &Socket) -> io::Result<(Socket, SockAddr)> {
    let fd = s.as_raw_fd();
    // SAFETY: accept4 writes at most `len` bytes of address into the storage socket2
    // provides, and returns a new fd we take ownership of.
    unsafe {
        SockAddr::try_init(|storage, len| {
            let r = libc::accept4(
                fd,
                storage.cast(),
                len,
                libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            );
            if r < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(Socket::from_raw_fd(r))
            }
        })
    }
}

/// A TCP socket listening for connections; `accept` parks the greenlet, not the thread.
pub struct TcpListener {
    sock: Rc<Sock>,
}

impl fmt::Debug for TcpListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpListener")
            .field("fd", &self.sock.fd())
            .field("addr", &self.local_addr().ok())
            .finish()
    }
}

impl TcpListener {
    /// Binds to `addr` (trying each address it resolves to) with `SO_REUSEADDR` and a
    /// backlog of [`DEFAULT_BACKLOG`].
    ///
    /// # Errors
    /// Resolution, `bind` or `listen` errors.
    pub fn bind<A: ToSocketAddrs>(addr: A) -> io::Result<TcpListener> {
        TcpListener::bind_with_backlog(addr, DEFAULT_BACKLOG)
    }

    /// [`bind`](TcpListener::bind) with an explicit backlog.
    ///
    /// # Errors
    /// As [`bind`](TcpListener::bind).
    pub fn bind_with_backlog<A: ToSocketAddrs>(addr: A, backlog: i32) -> io::Result<TcpListener> {
        each_addr(&addr, |a| {
            let s = Socket::new(
                Domain::for_address(*a),
                Type::STREAM.nonblocking(),
                Some(Protocol::TCP),
            )?;
            s.set_reuse_address(true)?;
            s.bind(&(*a).into())?;
            s.listen(backlog)?;
            Ok(TcpListener::from_socket(s))
        })
    }

    /// Wraps a socket that is non-blocking and listening already.
    pub(crate) fn from_socket(s: Socket) -> TcpListener {
        TcpListener {
            sock: Rc::new(Sock::from_nonblocking(s)),
        }
    }

    /// Accepts a connection, waiting (cooperatively) for one.
    ///
    /// # Errors
    /// `accept` errors (`EMFILE` when out of fds, …) or the hub's errors.
    pub fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        let (s, a) = self.sock.io_op(Direction::Read, None, accept_raw)?;
        Ok((TcpStream::from_nonblocking(s), sock_addr(&a)?))
    }

    /// [`accept`](TcpListener::accept), giving up after `timeout` with `TimedOut`.
    ///
    /// # Errors
    /// As [`accept`](TcpListener::accept).
    pub fn accept_timeout(&self, timeout: Duration) -> io::Result<(TcpStream, SocketAddr)> {
        let (s, a) = self
            .sock
            .io_op(Direction::Read, Some(timeout), accept_raw)?;
        Ok((TcpStream::from_nonblocking(s), sock_addr(&a)?))
    }

    /// An endless iterator of accepted connections (or errors), as std's.
    pub fn incoming(&self) -> Incoming<'_> {
        Incoming { listener: self }
    }

    /// The address it is bound to.
    ///
    /// # Errors
    /// `getsockname` errors.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.sock.with(|s| sock_addr(&s.local_addr()?))
    }

    /// Another handle to the same listener.
    ///
    /// # Errors
    /// Never, today; kept for std's signature.
    pub fn try_clone(&self) -> io::Result<TcpListener> {
        Ok(TcpListener {
            sock: self.sock.clone(),
        })
    }

    /// Closes it now, waking a greenlet blocked in `accept` with an error.
    pub fn close(&self) {
        self.sock.close();
    }

    /// The pending socket error (`SO_ERROR`).
    ///
    /// # Errors
    /// `getsockopt` errors.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.sock.with(|s| s.take_error())
    }
}

/// The iterator of [`TcpListener::incoming`].
#[derive(Debug)]
pub struct Incoming<'a> {
    listener: &'a TcpListener,
}

impl Iterator for Incoming<'_> {
    type Item = io::Result<TcpStream>;
    fn next(&mut self) -> Option<io::Result<TcpStream>> {
        Some(self.listener.accept().map(|(s, _)| s))
    }
}

/// A TCP connection; reads and writes park the greenlet, not the thread.
///
/// `Read` and `Write` are implemented for `&TcpStream` too, so one greenlet can read
/// while another writes. [`try_clone`](TcpStream::try_clone) gives another handle to
/// the same socket (no `dup`): the socket closes when the last handle is dropped, or at
/// once with [`close`](TcpStream::close).
pub struct TcpStream {
    sock: Rc<Sock>,
}

impl fmt::Debug for TcpStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpStream")
            .field("fd", &self.sock.fd())
            .field("local", &self.local_addr().ok())
            .field("peer", &self.peer_addr().ok())
            .finish()
    }
}

impl TcpStream {
    pub(crate) fn from_nonblocking(s: Socket) -> TcpStream {
        TcpStream {
            sock: Rc::new(Sock::from_nonblocking(s)),
        }
    }

    fn connect_one(addr: &SocketAddr, timeout: Option<Duration>) -> io::Result<TcpStream> {
        let s = Socket::new(
            Domain::for_address(*addr),
            Type::STREAM.nonblocking(),
            Some(Protocol::TCP),
        )?;
        let stream = TcpStream::from_nonblocking(s);
        match stream.sock.with(|s| s.connect(&(*addr).into())) {
            Ok(()) => return Ok(stream),
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
            Err(e) => return Err(e),
        }
        stream.sock.wait(Direction::Write, timeout)?;
        if let Some(e) = stream.sock.with(|s| s.take_error())? {
            return Err(e);
        }
        Ok(stream)
    }

    /// Connects to `addr`, trying each address it resolves to (names are resolved off
    /// the hub).
    ///
    /// # Errors
    /// Resolution or connection errors (`ConnectionRefused`, …).
    pub fn connect<A: ToSocketAddrs>(addr: A) -> io::Result<TcpStream> {
        each_addr(&addr, |a| TcpStream::connect_one(a, None))
    }

    /// Connects with a timeout (`TimedOut` when it expires).
    ///
    /// # Errors
    /// As [`connect`](TcpStream::connect).
    pub fn connect_timeout(addr: &SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
        if timeout.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "cannot set a 0 duration timeout",
            ));
        }
        TcpStream::connect_one(addr, Some(timeout))
    }

    /// The remote address.
    ///
    /// # Errors
    /// `getpeername` errors (`NotConnected`).
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.sock.with(|s| sock_addr(&s.peer_addr()?))
    }

    /// The local address.
    ///
    /// # Errors
    /// `getsockname` errors.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.sock.with(|s| sock_addr(&s.local_addr()?))
    }

    /// Shuts down the read, write or both halves.
    ///
    /// # Errors
    /// `shutdown` errors.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.sock.with(|s| s.shutdown(how))
    }

    /// Another handle to the same socket.
    ///
    /// # Errors
    /// Never, today; kept for std's signature.
    pub fn try_clone(&self) -> io::Result<TcpStream> {
        Ok(TcpStream {
            sock: self.sock.clone(),
        })
    }

    /// Closes the socket now (for every handle), waking any greenlet waiting on it
    /// with an error (gevent's `close`).
    pub fn close(&self) {
        self.sock.close();
    }

    /// Reads time out after `t` with `TimedOut` (`None`: never). A zero duration is
    /// an error, as in std.
    ///
    /// # Errors
    /// `InvalidInput` for `Some(Duration::ZERO)`.
    pub fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        self.sock.set_timeout(Direction::Read, t)
    }

    /// Writes time out after `t` with `TimedOut` (`None`: never).
    ///
    /// # Errors
    /// `InvalidInput` for `Some(Duration::ZERO)`.
    pub fn set_write_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        self.sock.set_timeout(Direction::Write, t)
    }

    /// The read timeout.
    ///
    /// # Errors
    /// Never; kept for std's signature.
    pub fn read_timeout(&self) -> io::Result<Option<Duration>> {
        Ok(self.sock.timeout(Direction::Read))
    }

    /// The write timeout.
    ///
    /// # Errors
    /// Never; kept for std's signature.
    pub fn write_timeout(&self) -> io::Result<Option<Duration>> {
        Ok(self.sock.timeout(Direction::Write))
    }

    /// Sets `TCP_NODELAY`.
    ///
    /// # Errors
    /// `setsockopt` errors.
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        self.sock.with(|s| s.set_tcp_nodelay(nodelay))
    }

    /// Reads `TCP_NODELAY`.
    ///
    /// # Errors
    /// `getsockopt` errors.
    pub fn nodelay(&self) -> io::Result<bool> {
        self.sock.with(|s| s.tcp_nodelay())
    }

    /// Sets the IP TTL.
    ///
    /// # Errors
    /// `setsockopt` errors.
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.sock.with(|s| s.set_ttl_v4(ttl))
    }

    /// Reads without consuming, waiting for data.
    ///
    /// # Errors
    /// As `read`.
    pub fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.sock.io_op(Direction::Read, None, |s| {
            // SAFETY: an initialised &mut [u8] is a valid &mut [MaybeUninit<u8>]; recv
            // only writes initialised bytes into it.
            let b = unsafe { &mut *(buf as *mut [u8] as *mut [std::mem::MaybeUninit<u8>]) };
            s.peek(b)
        })
    }

    /// The pending socket error (`SO_ERROR`).
    ///
    /// # Errors
    /// `getsockopt` errors.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.sock.with(|s| s.take_error())
    }

    /// Sends all of `buf` (gevent's `sendall`; `write_all` does the same).
    ///
    /// # Errors
    /// `BrokenPipe`/`ConnectionReset` when the peer is gone, `TimedOut`, …
    pub fn sendall(&self, buf: &[u8]) -> io::Result<()> {
        self.sock.write_all(buf)
    }
}

impl Read for &TcpStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.sock.read(buf)
    }
}

impl Write for &TcpStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.sock.write(buf)
    }
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.sock.write_all(buf)
    }
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.sock.io_op(Direction::Write, None, |s| {
            s.send_vectored_with_flags(bufs, libc::MSG_NOSIGNAL)
        })
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Read for TcpStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&*self).read(buf)
    }
}

impl Write for TcpStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&*self).write(buf)
    }
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        (&*self).write_all(buf)
    }
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        (&*self).write_vectored(bufs)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

super::fd_conversions!(TcpStream, std::net::TcpStream, from_nonblocking);
super::fd_conversions!(TcpListener, std::net::TcpListener, from_socket);
