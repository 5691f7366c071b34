//! `UnixStream`, `UnixListener` and `UnixDatagram`, with `std::os::unix::net`'s names.

use super::readiness::Direction;
use super::sock::Sock;
use socket2::{Domain, SockAddr, Socket, Type};
use std::fmt;
use std::io::{self, Read, Write};
use std::mem::{ManuallyDrop, MaybeUninit};
use std::net::Shutdown;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::os::unix::net::SocketAddr;
use std::path::Path;
use std::rc::Rc;
use std::time::Duration;

fn uninit(buf: &mut [u8]) -> &mut [MaybeUninit<u8>] {
    // SAFETY: see udp.rs: initialised bytes are valid MaybeUninit bytes.
    unsafe { &mut *(buf as *mut [u8] as *mut [MaybeUninit<u8>]) }
}

/// Runs `f` with a std view of `fd` (for the address getters, whose std types have no
/// public constructors for every case).
fn std_view<T: FromRawFd, R>(fd: RawFd, f: impl FnOnce(&T) -> R) -> R {
    // SAFETY: the view is never dropped (ManuallyDrop), so it does not close our fd,
    // and it does not outlive this call.
    let v = ManuallyDrop::new(unsafe { T::from_raw_fd(fd) });
    f(&v)
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

/// An unnamed address, as std reports an unbound peer. std has no constructor for
/// one; the local address of an unbound socket is one.
fn unnamed_addr() -> io::Result<SocketAddr> {
    std::os::unix::net::UnixDatagram::unbound()?.local_addr()
}

macro_rules! unix_common {
    ($t:ident, $std:ty) => {
        impl $t {
            fn from_nonblocking(s: Socket) -> $t {
                $t {
                    sock: Rc::new(Sock::from_nonblocking(s)),
                }
            }

            /// The local address.
            ///
            /// # Errors
            /// `getsockname` errors, or a closed socket.
            pub fn local_addr(&self) -> io::Result<SocketAddr> {
                self.sock
                    .with(|s| std_view(s.as_raw_fd(), |v: &$std| v.local_addr()))
            }

            /// Another handle to the same socket.
            ///
            /// # Errors
            /// Never, today; kept for std's signature.
            pub fn try_clone(&self) -> io::Result<$t> {
                Ok($t {
                    sock: self.sock.clone(),
                })
            }

            /// Closes it now, waking a greenlet blocked on it with an error.
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

        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($t))
                    .field("fd", &self.sock.fd())
                    .finish()
            }
        }

        super::fd_conversions!($t, $std, from_nonblocking);
    };
}

/// A Unix stream socket; reads and writes park the greenlet.
pub struct UnixStream {
    sock: Rc<Sock>,
}
unix_common!(UnixStream, std::os::unix::net::UnixStream);

impl UnixStream {
    /// Connects to the socket at `path`.
    ///
    /// # Errors
    /// `connect` errors.
    pub fn connect<P: AsRef<Path>>(path: P) -> io::Result<UnixStream> {
        let s = Socket::new(Domain::UNIX, Type::STREAM.nonblocking(), None)?;
        let stream = UnixStream::from_nonblocking(s);
        let addr = SockAddr::unix(path)?;
        match stream.sock.with(|s| s.connect(&addr)) {
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

    /// The peer's address.
    ///
    /// # Errors
    /// `getpeername` errors.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.sock.with(|s| {
            std_view(s.as_raw_fd(), |v: &std::os::unix::net::UnixStream| {
                v.peer_addr()
            })
        })
    }

    /// Shuts down one or both halves.
    ///
    /// # Errors
    /// `shutdown` errors.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.sock.with(|s| s.shutdown(how))
    }

    /// Read timeout (`TimedOut`).
    ///
    /// # Errors
    /// `InvalidInput` for a zero duration.
    pub fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        self.sock.set_timeout(Direction::Read, t)
    }

    /// Write timeout (`TimedOut`).
    ///
    /// # Errors
    /// `InvalidInput` for a zero duration.
    pub fn set_write_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        self.sock.set_timeout(Direction::Write, t)
    }
}

impl Read for &UnixStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.sock.read(buf)
    }
}
impl Write for &UnixStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.sock.write(buf)
    }
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.sock.write_all(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
impl Read for UnixStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&*self).read(buf)
    }
}
impl Write for UnixStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&*self).write(buf)
    }
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        (&*self).write_all(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A Unix listening socket.
pub struct UnixListener {
    sock: Rc<Sock>,
}
unix_common!(UnixListener, std::os::unix::net::UnixListener);

impl UnixListener {
    /// Binds and listens at `path`.
    ///
    /// # Errors
    /// `bind` (e.g. the path exists) or `listen` errors.
    pub fn bind<P: AsRef<Path>>(path: P) -> io::Result<UnixListener> {
        let s = Socket::new(Domain::UNIX, Type::STREAM.nonblocking(), None)?;
        s.bind(&SockAddr::unix(path)?)?;
        s.listen(super::DEFAULT_BACKLOG)?;
        Ok(UnixListener::from_nonblocking(s))
    }

    /// Accepts a connection, waiting for one.
    ///
    /// # Errors
    /// `accept` errors.
    pub fn accept(&self) -> io::Result<(UnixStream, SocketAddr)> {
        let (s, a) = self.sock.io_op(Direction::Read, None, super::accept_raw)?;
        let addr = addr_of(&a).or_else(|_| {
            std_view(s.as_raw_fd(), |v: &std::os::unix::net::UnixStream| {
                v.peer_addr()
            })
        })?;
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
unix_common!(UnixDatagram, std::os::unix::net::UnixDatagram);

impl UnixDatagram {
    /// Binds to `path`.
    ///
    /// # Errors
    /// `bind` errors.
    pub fn bind<P: AsRef<Path>>(path: P) -> io::Result<UnixDatagram> {
        let s = Socket::new(Domain::UNIX, Type::DGRAM.nonblocking(), None)?;
        s.bind(&SockAddr::unix(path)?)?;
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

    /// Sends to `path`.
    ///
    /// # Errors
    /// `sendto` errors.
    pub fn send_to<P: AsRef<Path>>(&self, buf: &[u8], path: P) -> io::Result<usize> {
        let a = SockAddr::unix(path)?;
        self.sock.io_op(Direction::Write, None, |s| {
            s.send_to_with_flags(buf, &a, libc::MSG_NOSIGNAL)
        })
    }

    /// Sends to the connected peer.
    ///
    /// # Errors
    /// `send` errors.
    pub fn send(&self, buf: &[u8]) -> io::Result<usize> {
        self.sock.write(buf)
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

    /// Receives a datagram.
    ///
    /// # Errors
    /// `recv` errors.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.sock
            .io_op(Direction::Read, None, |s| s.recv(uninit(buf)))
    }

    /// Receive timeout (`TimedOut`).
    ///
    /// # Errors
    /// `InvalidInput` for a zero duration.
    pub fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        self.sock.set_timeout(Direction::Read, t)
    }
}
