//! `UnixStream`, `UnixListener` and `UnixDatagram`, with `std::os::unix::net`'s names
//! (the shared surface comes from [`std_surface!`](super::surface)).

use super::readiness::Direction;
use super::sock::Sock;
use super::surface::{std_surface, uninit};
use socket2::{Domain, SockAddr, Socket, Type};
use std::io;
use std::mem::ManuallyDrop;
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::os::unix::net::SocketAddr;
use std::path::Path;
use std::rc::Rc;

/// Runs `f` with a std view of `fd` (for the address getters, whose std types have no
/// public constructors for every case).
fn std_view<T: FromRawFd, R>(fd: RawFd, f: impl FnOnce(&T) -> R) -> R {
    // SAFETY: the view is never dropped (ManuallyDrop), so it does not close our fd,
    // and it does not outlive this call.
    let v = ManuallyDrop::new(unsafe { T::from_raw_fd(fd) });
    f(&v)
}

/// The local address of a Unix socket of any type (`getsockname` through std, which
/// can represent unnamed and abstract addresses).
fn local_unix(s: &Socket) -> io::Result<SocketAddr> {
    std_view(s.as_raw_fd(), |v: &std::os::unix::net::UnixDatagram| {
        v.local_addr()
    })
}

/// The peer's address of a Unix socket of any type (`getpeername` through std).
fn peer_unix(s: &Socket) -> io::Result<SocketAddr> {
    std_view(s.as_raw_fd(), |v: &std::os::unix::net::UnixStream| {
        v.peer_addr()
    })
}

fn addr_of(a: &SockAddr) -> io::Result<SocketAddr> {
    match a.as_pathname() {
        Some(p) => SocketAddr::from_pathname(p),
        None => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "unnamed unix socket address",
        )),
    }
}

/// socket2's form of a std address: a path, or (Linux) an abstract name.
fn sock_addr_of(a: &SocketAddr) -> io::Result<SockAddr> {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::ffi::OsStrExt;
    if let Some(p) = a.as_pathname() {
        return SockAddr::unix(p);
    }
    if let Some(name) = a.as_abstract_name() {
        // socket2 takes a leading NUL byte as "abstract".
        let mut b = Vec::with_capacity(name.len() + 1);
        b.push(0);
        b.extend_from_slice(name);
        return SockAddr::unix(std::ffi::OsStr::from_bytes(&b));
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidInput,
        "an unnamed unix socket address cannot be bound to or connected to",
    ))
}

/// An unnamed address, as std reports an unbound peer. std has no constructor for
/// one; the local address of an unbound socket is one.
fn unnamed_addr() -> io::Result<SocketAddr> {
    std::os::unix::net::UnixDatagram::unbound()?.local_addr()
}

/// A Unix stream socket; reads and writes park the greenlet.
pub struct UnixStream {
    sock: Rc<Sock>,
}

std_surface!(UnixStream: std::os::unix::net::UnixStream, SocketAddr,
    local = local_unix, peer = peer_unix; timeouts, stream);

impl UnixStream {
    /// Connects to the socket at `path`.
    ///
    /// # Errors
    /// `connect` errors.
    pub fn connect<P: AsRef<Path>>(path: P) -> io::Result<UnixStream> {
        UnixStream::connect_sock_addr(&SockAddr::unix(path)?)
    }

    /// Connects to the socket at `addr` (a path or an abstract name).
    ///
    /// # Errors
    /// `InvalidInput` for an unnamed address; `connect` errors.
    pub fn connect_addr(addr: &SocketAddr) -> io::Result<UnixStream> {
        UnixStream::connect_sock_addr(&sock_addr_of(addr)?)
    }

    fn connect_sock_addr(addr: &SockAddr) -> io::Result<UnixStream> {
        let s = Socket::new(Domain::UNIX, Type::STREAM.nonblocking(), None)?;
        let stream = UnixStream::from_nonblocking(s);
        match stream.sock.with(|s| s.connect(addr)) {
            Ok(()) => {}
            Err(e)
                if e.raw_os_error() == Some(libc::EINPROGRESS)
                    || e.kind() == io::ErrorKind::WouldBlock =>
            {
                stream.sock.wait(Direction::Write, None)?;
                if let Some(e) = stream.sock.with(|s| s.take_error())? {
                    return Err(e);
                }
            }
            Err(e) => return Err(e),
        }
        Ok(stream)
    }

    /// A connected pair.
    ///
    /// # Errors
    /// `socketpair` errors.
    pub fn pair() -> io::Result<(UnixStream, UnixStream)> {
        let (a, b) = Socket::pair(Domain::UNIX, Type::STREAM.nonblocking(), None)?;
        Ok((
            UnixStream::from_nonblocking(a),
            UnixStream::from_nonblocking(b),
        ))
    }
}

/// A Unix listening socket.
pub struct UnixListener {
    sock: Rc<Sock>,
}

std_surface!(UnixListener: std::os::unix::net::UnixListener, SocketAddr, local = local_unix;);

impl UnixListener {
    /// Binds and listens at `path`.
    ///
    /// # Errors
    /// `bind` (e.g. the path exists) or `listen` errors.
    pub fn bind<P: AsRef<Path>>(path: P) -> io::Result<UnixListener> {
        UnixListener::bind_sock_addr(&SockAddr::unix(path)?)
    }

    /// Binds and listens at `addr` (a path or an abstract name).
    ///
    /// # Errors
    /// `InvalidInput` for an unnamed address; `bind` or `listen` errors.
    pub fn bind_addr(addr: &SocketAddr) -> io::Result<UnixListener> {
        UnixListener::bind_sock_addr(&sock_addr_of(addr)?)
    }

    fn bind_sock_addr(addr: &SockAddr) -> io::Result<UnixListener> {
        let s = Socket::new(Domain::UNIX, Type::STREAM.nonblocking(), None)?;
        s.bind(addr)?;
        s.listen(super::DEFAULT_BACKLOG)?;
        Ok(UnixListener::from_nonblocking(s))
    }

    /// Accepts a connection, waiting for one.
    ///
    /// # Errors
    /// `accept` errors, `WouldBlock` in non-blocking mode.
    pub fn accept(&self) -> io::Result<(UnixStream, SocketAddr)> {
        let (s, a) = self.sock.io_op(Direction::Read, None, super::accept_raw)?;
        let addr = addr_of(&a).or_else(|_| peer_unix(&s))?;
        Ok((UnixStream::from_nonblocking(s), addr))
    }

    /// An endless iterator of accepted connections.
    pub fn incoming(&self) -> impl Iterator<Item = io::Result<UnixStream>> + '_ {
        std::iter::repeat_with(move || self.accept().map(|(s, _)| s))
    }
}

/// A Unix datagram socket.
pub struct UnixDatagram {
    sock: Rc<Sock>,
}

std_surface!(UnixDatagram: std::os::unix::net::UnixDatagram, SocketAddr,
    local = local_unix, peer = peer_unix; timeouts, datagram);

impl UnixDatagram {
    /// Binds to `path`.
    ///
    /// # Errors
    /// `bind` errors.
    pub fn bind<P: AsRef<Path>>(path: P) -> io::Result<UnixDatagram> {
        UnixDatagram::bind_sock_addr(&SockAddr::unix(path)?)
    }

    /// Binds to `addr` (a path or an abstract name).
    ///
    /// # Errors
    /// `InvalidInput` for an unnamed address; `bind` errors.
    pub fn bind_addr(addr: &SocketAddr) -> io::Result<UnixDatagram> {
        UnixDatagram::bind_sock_addr(&sock_addr_of(addr)?)
    }

    fn bind_sock_addr(addr: &SockAddr) -> io::Result<UnixDatagram> {
        let s = Socket::new(Domain::UNIX, Type::DGRAM.nonblocking(), None)?;
        s.bind(addr)?;
        Ok(UnixDatagram::from_nonblocking(s))
    }

    /// An unbound socket.
    ///
    /// # Errors
    /// `socket` errors.
    pub fn unbound() -> io::Result<UnixDatagram> {
        Ok(UnixDatagram::from_nonblocking(Socket::new(
            Domain::UNIX,
            Type::DGRAM.nonblocking(),
            None,
        )?))
    }

    /// A connected pair.
    ///
    /// # Errors
    /// `socketpair` errors.
    pub fn pair() -> io::Result<(UnixDatagram, UnixDatagram)> {
        let (a, b) = Socket::pair(Domain::UNIX, Type::DGRAM.nonblocking(), None)?;
        Ok((
            UnixDatagram::from_nonblocking(a),
            UnixDatagram::from_nonblocking(b),
        ))
    }

    /// Sets the default peer.
    ///
    /// # Errors
    /// `connect` errors.
    pub fn connect<P: AsRef<Path>>(&self, path: P) -> io::Result<()> {
        let a = SockAddr::unix(path)?;
        self.sock.with(|s| s.connect(&a))
    }

    /// Sets the default peer to `addr` (a path or an abstract name).
    ///
    /// # Errors
    /// `InvalidInput` for an unnamed address; `connect` errors.
    pub fn connect_addr(&self, addr: &SocketAddr) -> io::Result<()> {
        let a = sock_addr_of(addr)?;
        self.sock.with(|s| s.connect(&a))
    }

    /// Sends to `path`.
    ///
    /// # Errors
    /// `sendto` errors.
    pub fn send_to<P: AsRef<Path>>(&self, buf: &[u8], path: P) -> io::Result<usize> {
        self.send_to_sock_addr(buf, &SockAddr::unix(path)?)
    }

    /// Sends to `addr` (a path or an abstract name).
    ///
    /// # Errors
    /// `InvalidInput` for an unnamed address; `sendto` errors.
    pub fn send_to_addr(&self, buf: &[u8], addr: &SocketAddr) -> io::Result<usize> {
        self.send_to_sock_addr(buf, &sock_addr_of(addr)?)
    }

    fn send_to_sock_addr(&self, buf: &[u8], a: &SockAddr) -> io::Result<usize> {
        self.sock.io_op(Direction::Write, None, |s| {
            s.send_to_with_flags(buf, a, libc::MSG_NOSIGNAL)
        })
    }

    /// Receives a datagram and its sender's address.
    ///
    /// # Errors
    /// `recvfrom` errors.
    pub fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        let (n, a) = self
            .sock
            .io_op(Direction::Read, None, |s| s.recv_from(uninit(buf)))?;
        let addr = addr_of(&a).or_else(|_| unnamed_addr())?;
        Ok((n, addr))
    }

    /// Like [`recv_from`](UnixDatagram::recv_from), without removing the datagram.
    ///
    /// # Errors
    /// As [`recv_from`](UnixDatagram::recv_from).
    pub fn peek_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        let (n, a) = self
            .sock
            .io_op(Direction::Read, None, |s| s.peek_from(uninit(buf)))?;
        let addr = addr_of(&a).or_else(|_| unnamed_addr())?;
        Ok((n, addr))
    }

    /// Shuts down the read, write or both halves.
    ///
    /// # Errors
    /// `shutdown` errors.
    pub fn shutdown(&self, how: std::net::Shutdown) -> io::Result<()> {
        self.sock.with(|s| s.shutdown(how))
    }
}
