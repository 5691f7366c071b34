//! Cooperative networking: `std::net`'s types, greenlet-aware.
//!
//! The types mirror `std::net` (and `std::os::unix::net`) names and signatures, so
//! blocking code ports by changing an import: a read that would block parks the
//! greenlet and lets the hub run others. Built on `socket2`, non-blocking underneath;
//! see `sock.rs` for the hot path (one `recv` and one `send` per echoed message) and
//! for what closing a socket does to a greenlet waiting on it, and `readiness.rs` for
//! the fd-keyed core every wait goes through.
//!
//! Names are resolved off the hub ([`lookup_host`], [`ToSocketAddrs`]). SIGPIPE never
//! fires: writes use `MSG_NOSIGNAL`, and a write to a reset peer returns `BrokenPipe`.

pub(crate) mod readiness;
mod resolve;
mod sock;
mod tcp;
mod udp;
mod unix;

pub use resolve::{lookup_host, ToSocketAddrs};
pub use sock::{wait_read, wait_write};
pub use tcp::{Incoming, TcpListener, TcpStream, DEFAULT_BACKLOG};
pub use udp::UdpSocket;
pub use unix::{UnixDatagram, UnixListener, UnixStream};

pub(crate) use resolve::each_addr as resolve_each;
pub(crate) use tcp::accept_raw;

/// `AsRawFd`, `AsFd`, `IntoRawFd`, `FromRawFd`, `From<OwnedFd>` and `From<std type>`
/// for a net type holding `sock: Rc<Sock>`; `$make` wraps a non-blocking `Socket`.
macro_rules! fd_conversions {
    ($t:ident, $std:ty, $make:ident) => {
        impl AsRawFd for $t {
            fn as_raw_fd(&self) -> RawFd {
                self.sock.fd()
            }
        }
        impl AsFd for $t {
            fn as_fd(&self) -> BorrowedFd<'_> {
                // SAFETY: the fd number stays open while `self` (and its Rc<Sock>) lives:
                // an explicit `close` keeps it reserved (a placeholder is dup'd over it)
                // until the last handle is dropped, which the borrow of `self` prevents.
                unsafe { BorrowedFd::borrow_raw(self.sock.fd()) }
            }
        }
        impl IntoRawFd for $t {
            /// Gives up the fd: every other handle of this socket sees it closed.
            fn into_raw_fd(self) -> RawFd {
                // Duplicate first so that closing our copy (waking waiters) leaves the
                // caller's fd open.
                let fd = self
                    .sock
                    .with(|s| s.try_clone())
                    .map(|s| s.into_raw_fd())
                    .unwrap_or(-1);
                self.sock.close();
                fd
            }
        }
        impl FromRawFd for $t {
            /// Takes ownership of `fd` and makes it non-blocking.
            unsafe fn from_raw_fd(fd: RawFd) -> $t {
                // SAFETY: the caller's contract: `fd` is an open socket we now own.
                let s = unsafe { Socket::from_raw_fd(fd) };
                let _ = s.set_nonblocking(true);
                $t::$make(s)
            }
        }
        impl From<OwnedFd> for $t {
            fn from(fd: OwnedFd) -> $t {
                let s = Socket::from(fd);
                let _ = s.set_nonblocking(true);
                $t::$make(s)
            }
        }
        impl From<$std> for $t {
            /// Adopts a std socket (made non-blocking).
            fn from(s: $std) -> $t {
                let s = Socket::from(s);
                let _ = s.set_nonblocking(true);
                $t::$make(s)
            }
        }
    };
}
pub(crate) use fd_conversions;
