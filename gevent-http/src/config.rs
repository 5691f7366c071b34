//! The server's limits and timeouts.

use gevent_hub::server::ServerOptions;
use std::time::Duration;

/// How a [`Server`](crate::Server) reads requests and protects itself.
///
/// Every limit has a default a public server can run with; each is a field to change.
///
/// ```
/// use gevent_http::Config;
/// use std::time::Duration;
///
/// let config = Config {
///     max_body_bytes: Some(1 << 20),
///     header_read_timeout: Some(Duration::from_secs(5)),
///     ..Config::default()
/// };
/// assert_eq!(config.max_header_bytes, 64 * 1024);
/// ```
#[derive(Debug, Clone)]
pub struct Config {
    /// The most bytes a request line and its headers may take (default 64 KiB).
    /// Beyond it the request is answered `431 Request Header Fields Too Large`, or
    /// `414 URI Too Long` if the request line alone does not fit.
    pub max_header_bytes: usize,
    /// The most header fields a request may have (default 100); more: `431`.
    pub max_headers: usize,
    /// The largest request body accepted (default 1 GiB; `None`: no bound). A
    /// `Content-Length` over it is answered `413 Content Too Large` before the handler
    /// runs; a chunked body that grows past it fails the handler's read and the
    /// response becomes `413` (or, if the response had started, the connection is cut).
    pub max_body_bytes: Option<u64>,
    /// How long a client has to send a whole request head, from its first byte (or,
    /// for a connection's first request, from the accept); slower clients are answered
    /// `408 Request Timeout` and cut off (default 30 s; `None`: no bound).
    pub header_read_timeout: Option<Duration>,
    /// How long a kept-alive connection may sit idle between requests before the
    /// server closes it (default 60 s; `None`: no bound).
    ///
    /// This and [`header_read_timeout`](Config::header_read_timeout) are enforced by
    /// one sweep of the server's connections every eighth of the shorter of the two
    /// (between 5 ms and 1 s), not by a timer per read: a connection is cut off up
    /// to that much after its time is up.
    pub keep_alive_timeout: Option<Duration>,
    /// Whether connections are kept alive between requests at all (default true).
    pub keep_alive: bool,
    /// The bound on each read of a request body (default 60 s; `None`: none). A read
    /// that waits longer fails with `TimedOut`.
    pub body_read_timeout: Option<Duration>,
    /// The bound on each write to a client (default 60 s; `None`: none); a client that
    /// stops reading is cut off after it.
    pub write_timeout: Option<Duration>,
    /// A request body the handler left unread is read and discarded up to this many
    /// bytes so that the connection can serve the next request (default 256 KiB);
    /// past it the connection is closed instead.
    pub max_drain_bytes: u64,
    /// How the listener is set up and stopped: backlog, `SO_REUSEPORT`, the bound on
    /// connections served at once (`max_connections`, accepting pauses while full),
    /// the stop grace and kill timeouts.
    pub server: ServerOptions,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            max_header_bytes: 64 * 1024,
            max_headers: 100,
            max_body_bytes: Some(1 << 30),
            header_read_timeout: Some(Duration::from_secs(30)),
            keep_alive_timeout: Some(Duration::from_secs(60)),
            keep_alive: true,
            body_read_timeout: Some(Duration::from_secs(60)),
            write_timeout: Some(Duration::from_secs(60)),
            max_drain_bytes: 256 * 1024,
            server: ServerOptions::default(),
        }
    }
}
