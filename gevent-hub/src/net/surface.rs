//! The std surface of the net types, written once.
//!
//! Every net type is a struct holding `sock: Rc<Sock>`; [`std_surface!`] gives it the
//! methods and trait impls its std counterpart has, in groups, so that the types cannot
//! drift apart again:
//!
//! - *always*: `local_addr`, `try_clone`, `close`, `take_error`, `set_nonblocking`,
//!   `Debug`, and the fd conversions (`AsFd`, `AsRawFd`, `IntoRawFd`, `FromRawFd`,
//!   `From<OwnedFd>`, `From<the std type>`, `From<Self> for OwnedFd`);
//! - `timeouts`: `set_read_timeout`, `set_write_timeout`, `read_timeout`,
//!   `write_timeout`;
//! - `stream`: `peer_addr`, `shutdown`, `peek`, and `Read`/`Write` (vectored too) on
//!   the type and on a shared reference to it;
//! - `datagram`: `peer_addr`, `send`, `recv`, `peek`;
//! - `ttl`: `set_ttl`, `ttl`.
//!
//! What differs between types (constructors, addresses given as arguments, options of
//! one protocol) stays in the type's own file. A macro rather than a generic
//! `Socket<Kind>`: the public types stay distinct nominal structs with their own docs,
//! `Debug` name and error messages, as std's are, and each method is still written
//! once; the address type, the only thing the shared methods differ in, is a
//! parameter.

use std::mem::MaybeUninit;

/// An initialised buffer as the `MaybeUninit` one socket2's receive calls take.
pub(crate) fn uninit(buf: &mut [u8]) -> &mut [MaybeUninit<u8>] {
    // SAFETY: an initialised byte slice is a valid slice of MaybeUninit bytes, and the
    // socket calls only ever write initialised bytes into it.
    unsafe { &mut *(buf as *mut [u8] as *mut [MaybeUninit<u8>]) }
}

/// `std_surface!(Type: std::Type, Addr, local = f, peer = g; group, ...)`: see the
/// module docs. `f` and `g` turn a `&Socket` into an `io::Result<Addr>`; with `peer`,
/// `Debug` shows the peer too.
macro_rules! std_surface {
    ($t:ident: $std:ty, $addr:ty, local = $local:path $(, peer = $peer:path)?; $($group:ident),* $(,)?) => {
        $crate::net::surface::std_surface!(@go $t, $std, $addr, $local, [$($peer)?]; $($group),*);
    };

    (@go $t:ident, $std:ty, $addr:ty, $local:path, $peer:tt; $($group:ident),*) => {
        $crate::net::surface::std_surface!(@always $t, $std, $addr, $local, $peer);
        $( $crate::net::surface::std_surface!(@$group $t, $std, $addr, $peer); )*
    };

    (@always $t:ident, $std:ty, $addr:ty, $local:path, [$($peer:path)?]) => {
        impl $t {
            /// Wraps a socket that is non-blocking already.
            fn from_nonblocking(s: ::socket2::Socket) -> $t {
                $t {
                    sock: ::std::rc::Rc::new($crate::net::sock::Sock::from_nonblocking(s)),
                }
            }

            /// The local address.
            ///
            /// # Errors
            /// `getsockname` errors, or a closed socket.
            pub fn local_addr(&self) -> ::std::io::Result<$addr> {
                self.sock.with($local)
            }

            /// Another handle to the same socket (no `dup`: the handles share the
            /// socket, its timeouts and its mode, and it closes when the last one is
            /// dropped, or at once with `close`).
            ///
            /// # Errors
            /// Never, today; kept for std's signature.
            pub fn try_clone(&self) -> ::std::io::Result<$t> {
                Ok($t {
                    sock: self.sock.clone(),
                })
            }

            /// Closes the socket now, for every handle, waking any greenlet waiting on it
            /// with an error (gevent's `close`). Its fd number stays reserved until the
            /// last handle is dropped.
            pub fn close(&self) {
                self.sock.close();
            }

            /// The pending socket error (`SO_ERROR`), cleared by reading it.
            ///
            /// # Errors
            /// `getsockopt` errors, or a closed socket.
            pub fn take_error(&self) -> ::std::io::Result<Option<::std::io::Error>> {
                self.sock.with(|s| s.take_error())
            }

            /// Sets the mode its calls show. In non-blocking mode a call that would wait
            /// (a read with nothing to read, a full send buffer, no connection to accept)
            /// returns `WouldBlock` at once instead of parking the greenlet, as with
            /// std's non-blocking sockets. Blocking mode (the default) parks. The fd itself
            /// stays non-blocking underneath either way; the mode is shared by every
            /// handle of the socket, as std's (a file's flag) is by its clones.
            ///
            /// # Errors
            /// A closed socket.
            pub fn set_nonblocking(&self, nonblocking: bool) -> ::std::io::Result<()> {
                self.sock.with(|_| Ok(()))?;
                self.sock.state().set_nonblocking(nonblocking);
                Ok(())
            }
        }

        impl ::std::fmt::Debug for $t {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.debug_struct(stringify!($t))
                    .field("fd", &self.sock.fd())
                    .field("local", &self.local_addr().ok())
                    $( .field("peer", &self.sock.with($peer).ok()) )?
                    .finish()
            }
        }

        impl ::std::os::fd::AsRawFd for $t {
            fn as_raw_fd(&self) -> ::std::os::fd::RawFd {
                self.sock.fd()
            }
        }

        impl ::std::os::fd::AsFd for $t {
            fn as_fd(&self) -> ::std::os::fd::BorrowedFd<'_> {
                // SAFETY: the fd number stays open while `self` (and its Rc<Sock>) lives:
                // an explicit `close` keeps it reserved (a placeholder is dup'd over it)
                // until the last handle is dropped, which the borrow of `self` prevents.
                unsafe { ::std::os::fd::BorrowedFd::borrow_raw(self.sock.fd()) }
            }
        }

        impl ::std::os::fd::IntoRawFd for $t {
            /// Gives up the fd: every other handle of this socket sees it closed. While
            /// other handles exist, the caller gets a `dup` of it (theirs stays reserved
            /// for them), or -1 if none can be made (out of fds) or it was closed.
            fn into_raw_fd(self) -> ::std::os::fd::RawFd {
                self.sock
                    .into_socket()
                    .map(::std::os::fd::IntoRawFd::into_raw_fd)
                    .unwrap_or(-1)
            }
        }

        impl From<$t> for ::std::os::fd::OwnedFd {
            /// As [`IntoRawFd::into_raw_fd`](std::os::fd::IntoRawFd::into_raw_fd).
            ///
            /// # Panics
            /// If the socket was closed, or other handles share it and no `dup` can be
            /// made (out of fds).
            fn from(s: $t) -> ::std::os::fd::OwnedFd {
                match s.sock.into_socket() {
                    Ok(s) => s.into(),
                    Err(e) => panic!("gevent: cannot give up the fd of a net socket: {e}"),
                }
            }
        }

        impl ::std::os::fd::FromRawFd for $t {
            /// Takes ownership of `fd` and makes it non-blocking underneath (the socket's
            /// calls park, as in blocking mode).
            unsafe fn from_raw_fd(fd: ::std::os::fd::RawFd) -> $t {
                // SAFETY: the caller's contract: `fd` is an open socket we now own.
                let s = unsafe { <::socket2::Socket as ::std::os::fd::FromRawFd>::from_raw_fd(fd) };
                let _ = s.set_nonblocking(true);
                $t::from_nonblocking(s)
            }
        }

        impl From<::std::os::fd::OwnedFd> for $t {
            /// Adopts `fd` (made non-blocking underneath).
            fn from(fd: ::std::os::fd::OwnedFd) -> $t {
                let s = ::socket2::Socket::from(fd);
                let _ = s.set_nonblocking(true);
                $t::from_nonblocking(s)
            }
        }

        impl From<$std> for $t {
            /// Adopts a std socket (made non-blocking underneath).
            fn from(s: $std) -> $t {
                let s = ::socket2::Socket::from(s);
                let _ = s.set_nonblocking(true);
                $t::from_nonblocking(s)
            }
        }
    };

    (@timeouts $t:ident, $std:ty, $addr:ty, $peer:tt) => {
        impl $t {
            /// Reads time out after `t` with `TimedOut` (`None`: never), as std's.
            ///
            /// # Errors
            /// `InvalidInput` for `Some(Duration::ZERO)`, as in std.
            pub fn set_read_timeout(&self, t: Option<::std::time::Duration>) -> ::std::io::Result<()> {
                self.sock.set_timeout($crate::net::readiness::Direction::Read, t)
            }

            /// Writes time out after `t` with `TimedOut` (`None`: never), as std's.
            ///
            /// # Errors
            /// `InvalidInput` for `Some(Duration::ZERO)`, as in std.
            pub fn set_write_timeout(&self, t: Option<::std::time::Duration>) -> ::std::io::Result<()> {
                self.sock.set_timeout($crate::net::readiness::Direction::Write, t)
            }

            /// The read timeout.
            ///
            /// # Errors
            /// Never; kept for std's signature.
            pub fn read_timeout(&self) -> ::std::io::Result<Option<::std::time::Duration>> {
                Ok(self.sock.timeout($crate::net::readiness::Direction::Read))
            }

            /// The write timeout.
            ///
            /// # Errors
            /// Never; kept for std's signature.
            pub fn write_timeout(&self) -> ::std::io::Result<Option<::std::time::Duration>> {
                Ok(self.sock.timeout($crate::net::readiness::Direction::Write))
            }
        }
    };

    (@stream $t:ident, $std:ty, $addr:ty, [$peer:path]) => {
        impl $t {
            /// The remote address.
            ///
            /// # Errors
            /// `getpeername` errors (`NotConnected`).
            pub fn peer_addr(&self) -> ::std::io::Result<$addr> {
                self.sock.with($peer)
            }

            /// Shuts down the read, write or both halves.
            ///
            /// # Errors
            /// `shutdown` errors.
            pub fn shutdown(&self, how: ::std::net::Shutdown) -> ::std::io::Result<()> {
                self.sock.with(|s| s.shutdown(how))
            }

            /// Reads without consuming, waiting for data (up to the read timeout).
            ///
            /// # Errors
            /// As `read`.
            pub fn peek(&self, buf: &mut [u8]) -> ::std::io::Result<usize> {
                self.sock.io_op($crate::net::readiness::Direction::Read, None, |s| {
                    s.peek($crate::net::surface::uninit(buf))
                })
            }
        }

        impl ::std::io::Read for &$t {
            fn read(&mut self, buf: &mut [u8]) -> ::std::io::Result<usize> {
                self.sock.read(buf)
            }
            fn read_vectored(&mut self, bufs: &mut [::std::io::IoSliceMut<'_>]) -> ::std::io::Result<usize> {
                self.sock.read_vectored(bufs)
            }
        }

        impl ::std::io::Write for &$t {
            fn write(&mut self, buf: &[u8]) -> ::std::io::Result<usize> {
                self.sock.write(buf)
            }
            fn write_all(&mut self, buf: &[u8]) -> ::std::io::Result<()> {
                self.sock.write_all(buf)
            }
            fn write_vectored(&mut self, bufs: &[::std::io::IoSlice<'_>]) -> ::std::io::Result<usize> {
                self.sock.io_op($crate::net::readiness::Direction::Write, None, |s| {
                    s.send_vectored_with_flags(bufs, ::libc::MSG_NOSIGNAL)
                })
            }
            fn flush(&mut self) -> ::std::io::Result<()> {
                Ok(())
            }
        }

        impl ::std::io::Read for $t {
            fn read(&mut self, buf: &mut [u8]) -> ::std::io::Result<usize> {
                (&*self).read(buf)
            }
            fn read_vectored(&mut self, bufs: &mut [::std::io::IoSliceMut<'_>]) -> ::std::io::Result<usize> {
                (&*self).read_vectored(bufs)
            }
        }

        impl ::std::io::Write for $t {
            fn write(&mut self, buf: &[u8]) -> ::std::io::Result<usize> {
                (&*self).write(buf)
            }
            fn write_all(&mut self, buf: &[u8]) -> ::std::io::Result<()> {
                (&*self).write_all(buf)
            }
            fn write_vectored(&mut self, bufs: &[::std::io::IoSlice<'_>]) -> ::std::io::Result<usize> {
                (&*self).write_vectored(bufs)
            }
            fn flush(&mut self) -> ::std::io::Result<()> {
                Ok(())
            }
        }
    };

    (@datagram $t:ident, $std:ty, $addr:ty, [$peer:path]) => {
        impl $t {
            /// The connected peer's address.
            ///
            /// # Errors
            /// `NotConnected` before `connect`.
            pub fn peer_addr(&self) -> ::std::io::Result<$addr> {
                self.sock.with($peer)
            }

            /// Sends `buf` to the connected peer, waiting for room (up to the write
            /// timeout); returns the bytes sent.
            ///
            /// # Errors
            /// `send` errors (`NotConnected` before `connect`), `TimedOut`.
            pub fn send(&self, buf: &[u8]) -> ::std::io::Result<usize> {
                self.sock.write(buf)
            }

            /// Receives one datagram from the connected peer, waiting for it (up to the
            /// read timeout); returns its length (a datagram longer than `buf` is cut).
            ///
            /// # Errors
            /// `recv` errors, `TimedOut`.
            pub fn recv(&self, buf: &mut [u8]) -> ::std::io::Result<usize> {
                self.sock.io_op($crate::net::readiness::Direction::Read, None, |s| {
                    s.recv($crate::net::surface::uninit(buf))
                })
            }

            /// Like [`recv`](Self::recv), without removing the datagram.
            ///
            /// # Errors
            /// As [`recv`](Self::recv).
            pub fn peek(&self, buf: &mut [u8]) -> ::std::io::Result<usize> {
                self.sock.io_op($crate::net::readiness::Direction::Read, None, |s| {
                    s.peek($crate::net::surface::uninit(buf))
                })
            }
        }
    };

    (@ttl $t:ident, $std:ty, $addr:ty, $peer:tt) => {
        impl $t {
            /// Sets the IP time-to-live (`IP_TTL`) of the packets it sends.
            ///
            /// # Errors
            /// `setsockopt` errors.
            pub fn set_ttl(&self, ttl: u32) -> ::std::io::Result<()> {
                self.sock.with(|s| s.set_ttl_v4(ttl))
            }

            /// The IP time-to-live (`IP_TTL`).
            ///
            /// # Errors
            /// `getsockopt` errors.
            pub fn ttl(&self) -> ::std::io::Result<u32> {
                self.sock.with(|s| s.ttl_v4())
            }
        }
    };
}
pub(crate) use std_surface;
