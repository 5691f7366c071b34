//! Cooperative networking: `std::net`'s types, greenlet-aware.
//!
//! The types mirror `std::net` (and `std::os::unix::net`) names and signatures, so
//! blocking code ports by changing an import: a read that would block parks the
//! greenlet and lets the hub run others. Built on `socket2`, non-blocking underneath.
//! Every wait goes through one fd-keyed readiness core (`readiness.rs`: per fd, its
//! two directions' io watchers, waiters and remembered readiness), which
//! [`wait_read`]/[`wait_write`] on foreign fds share; `sock.rs` holds the hot path (one
//! `recv` and one `send` per echoed message) and what closing a socket does to a
//! greenlet waiting on it; `surface.rs` writes the std surface once for every type.
//!
//! Names are resolved off the hub ([`lookup_host`], [`ToSocketAddrs`]). SIGPIPE never
//! fires: writes use `MSG_NOSIGNAL`, and a write to a reset peer returns `BrokenPipe`.
//!
//! ## What each type has of its std counterpart
//! Every type has `local_addr`, `try_clone`, `take_error`, `set_nonblocking`, `Debug`
//! and the fd conversions (`AsFd`, `AsRawFd`, `IntoRawFd`, `FromRawFd`,
//! `From<OwnedFd>`, `From<` the std type `>`, `From<Self> for OwnedFd`), plus gevent's
//! `close`. Beyond that:
//!
//! | | [`TcpStream`] | [`TcpListener`] | [`UdpSocket`] | [`UnixStream`] | [`UnixListener`] | [`UnixDatagram`] |
//! |---|---|---|---|---|---|---|
//! | constructors | `connect`, `connect_timeout` | `bind` | `bind` | `connect`, `connect_addr`, `pair` | `bind`, `bind_addr` | `bind`, `bind_addr`, `unbound`, `pair` |
//! | `accept`, `incoming` | | ✓ | | | ✓ | |
//! | `peer_addr` | ✓ | | ✓ | ✓ | | ✓ |
//! | `shutdown` | ✓ | | | ✓ | | ✓ |
//! | `set_read_timeout`, `set_write_timeout`, `read_timeout`, `write_timeout` | ✓ | | ✓ | ✓ | | ✓ |
//! | `peek` | ✓ | | ✓ | ✓ ¹ | | ✓ ¹ |
//! | `Read`, `Write` (vectored too) on `T` and `&T` | ✓ | | | ✓ | | |
//! | `connect` (default peer), `send`, `recv`, `send_to`, `recv_from`, `peek_from` | | | ✓ | | | ✓ (`peek_from` ¹; also `connect_addr`, `send_to_addr`) |
//! | `set_ttl`, `ttl` | ✓ | ✓ | ✓ | | | |
//! | `set_nodelay`, `nodelay` | ✓ | | | | | |
//! | `set_broadcast`, `broadcast`, `(set_)multicast_loop_v4`, `(set_)multicast_ttl_v4`, `(set_)multicast_loop_v6`, `join_/leave_multicast_v4/_v6` | | | ✓ | | | |
//! | beyond std | `sendall` | `bind_with_backlog`, `accept_timeout` | | | | |
//!
//! ¹ unstable in std (`unix_socket_peek`). Left out: what std deprecates (`set_only_v6`,
//! `only_v6`) and its other unstable methods (`linger`, `peer_cred`, the ancillary-data
//! calls, `set_mark`, `into_incoming`). `UnixListener::incoming` returns an iterator,
//! not std's `Incoming` type.
//!
//! ## Cooperative differences
//! - A blocking call parks the greenlet, never the thread; timeouts end the wait with
//!   `TimedOut` (std says `WouldBlock` or `TimedOut`, depending on the platform).
//! - `set_nonblocking(true)` makes a call that would wait return `WouldBlock` at once,
//!   as std's non-blocking socket does; the fd is non-blocking underneath either way,
//!   and adopting an fd (`FromRawFd`, `From<OwnedFd>`, `From<std type>`) makes it so.
//! - `try_clone` shares the socket instead of `dup`ing it: timeouts and the mode are
//!   shared, and `close` on one handle closes it for all (waking their waiters).
//! - One greenlet may wait to read and one to write a socket (or an fd, through
//!   [`wait_read`]/[`wait_write`]) at a time; a second gets `ResourceBusy`.

pub(crate) mod readiness;
mod resolve;
mod sock;
mod surface;
mod tcp;
mod udp;
mod unix;

pub use resolve::{lookup_host, ToSocketAddrs};
pub use sock::{wait_read, wait_write};
pub use tcp::{Incoming, TcpListener, TcpStream, DEFAULT_BACKLOG};
pub use udp::UdpSocket;
pub use unix::{UnixDatagram, UnixListener, UnixStream};

pub(crate) use tcp::accept_raw;
