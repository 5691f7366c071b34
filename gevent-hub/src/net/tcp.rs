//! `TcpListener` and `TcpStream`, with `std::net`'s names and signatures (the shared
//! surface comes from [`std_surface!`](super::surface)).

use super::readiness::Direction;
use super::resolve::{each_addr, ToSocketAddrs};
use super::sock::Sock;
use super::surface::std_surface;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd};
use std::rc::Rc;
use std::time::Duration;

/// The listen backlog of [`TcpListener::bind`] (the slides' `StreamServer` default).
pub const DEFAULT_BACKLOG: i32 = 1024;

pub(crate) fn sock_addr(a: &SockAddr) -> io::Result<SocketAddr> {
    a.as_socket()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not an IP socket address"))
}

/// The local IP address of `s`.
pub(crate) fn local_ip(s: &Socket) -> io::Result<SocketAddr> {
    sock_addr(&s.local_addr()?)
}

/// The peer's IP address of `s`.
pub(crate) fn peer_ip(s: &Socket) -> io::Result<SocketAddr> {
    sock_addr(&s.peer_addr()?)
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
            crate::sys::cvt(r).map(|fd| Socket::from_raw_fd(fd))
        })
    }
}

/// A TCP socket listening for connections; `accept` parks the greenlet, not the thread.
///
/// # Examples
/// A client and a server in one thread, each in its own greenlet:
/// ```
/// use gevent_hub::net::{TcpListener, TcpStream};
/// use gevent_hub::spawn;
/// use std::io::{Read, Write};
///
/// let listener = TcpListener::bind("127.0.0.1:0")?;
/// let addr = listener.local_addr()?;
/// let server = spawn(move || -> std::io::Result<()> {
///     let (mut conn, _peer) = listener.accept()?;
///     let mut buf = [0u8; 5];
///     conn.read_exact(&mut buf)?;
///     conn.write_all(&buf)
/// });
/// let mut client = TcpStream::connect(addr)?;
/// client.write_all(b"hello")?;
/// let mut echo = [0u8; 5];
/// client.read_exact(&mut echo)?;
/// assert_eq!(&echo, b"hello");
/// server.join().unwrap()?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct TcpListener {
    sock: Rc<Sock>,
}

std_surface!(TcpListener: std::net::TcpListener, SocketAddr, local = local_ip; ttl);

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
        TcpListener::bind_with(addr, backlog, false)
    }

    /// [`bind_with_backlog`](TcpListener::bind_with_backlog), optionally with
    /// `SO_REUSEPORT`, so that one listener per thread can share a port (the kernel
    /// spreads the connections over them).
    ///
    /// # Errors
    /// As [`bind`](TcpListener::bind).
    pub fn bind_with<A: ToSocketAddrs>(
        addr: A,
        backlog: i32,
        reuse_port: bool,
    ) -> io::Result<TcpListener> {
        each_addr(&addr, |a| {
            let s = Socket::new(
                Domain::for_address(*a),
                Type::STREAM.nonblocking(),
                Some(Protocol::TCP),
            )?;
            s.set_reuse_address(true)?;
            if reuse_port {
                s.set_reuse_port(true)?;
            }
            s.bind(&(*a).into())?;
            s.listen(backlog)?;
            Ok(TcpListener::from_socket(s))
        })
    }

    /// Wraps a socket that is non-blocking and listening already.
    fn from_socket(s: Socket) -> TcpListener {
        TcpListener::from_nonblocking(s)
    }

    /// Accepts a connection, waiting (cooperatively) for one.
    ///
    /// # Errors
    /// `accept` errors (`EMFILE` when out of fds, …), `WouldBlock` in non-blocking
    /// mode, or the hub's errors.
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

std_surface!(TcpStream: std::net::TcpStream, SocketAddr, local = local_ip, peer = peer_ip;
    timeouts, stream, ttl);

impl TcpStream {
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

    /// Sends all of `buf` (gevent's `sendall`; `write_all` does the same).
    ///
    /// # Errors
    /// `BrokenPipe`/`ConnectionReset` when the peer is gone, `TimedOut`, …
    pub fn sendall(&self, buf: &[u8]) -> io::Result<()> {
        self.sock.write_all(buf)
    }
}
