//! An HTTP/1.1 server on greenlets, in blocking style: gevent's `pywsgi` for Rust.
//!
//! A handler is a plain function or closure from an [`http::Request`] to an
//! [`http::Response`], run in the connection's greenlet: it can sleep, call other
//! servers, wait on queues, all in gevent's blocking style, while the hub serves every
//! other connection. The request's [`Body`] is read lazily as `std::io::Read`; the
//! response's [`ResponseBody`] is bytes, a reader, or chunks made as they are sent
//! (WSGI's iterable). Request heads are parsed by `httparse`.
//!
//! ```no_run
//! use gevent_http::{Body, Request, Response, Server, StatusCode};
//!
//! fn hello(req: Request<Body>) -> Response<&'static str> {
//!     match req.uri().path() {
//!         "/" => Response::new("Hello, World!"),
//!         _ => {
//!             let mut not_found = Response::new("not found");
//!             *not_found.status_mut() = StatusCode::NOT_FOUND;
//!             not_found
//!         }
//!     }
//! }
//!
//! Server::new("0.0.0.0:8080", hello)?.serve_forever()?;
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! ## What the server does for the handler
//! - **Connections**: HTTP/1.1 keep-alive and pipelining (answers in order; answers
//!   to requests that arrived together are written together); HTTP/1.0, closed after
//!   each answer unless it asked for `keep-alive`; `Connection: close` either way.
//! - **Bodies**: `Content-Length` and chunked request bodies (extensions skipped,
//!   trailers kept: [`Body::trailers`]); `Expect: 100-continue` answered when the
//!   handler first reads; what a handler leaves unread is read past (up to
//!   [`Config::max_drain_bytes`], else the connection closes). Responses of known
//!   length get `Content-Length`, others are chunked; `HEAD`, `204` and `304` never
//!   carry a body; a `Date` header is added (formatted once a second).
//! - **Upgrades**: a `101` response with [`ResponseBody::upgrade`] hands the raw
//!   connection ([`Upgraded`]) to the handler's function, e.g. for a WebSocket.
//! - **Logging**: each answer is logged at `info` on the target [`ACCESS_LOG`]
//!   (`peer "METHOD target VERSION" status body-bytes seconds`); refusals at `debug`;
//!   handler panics at `error`.
//!
//! ## Protective limits
//! Each is a field of [`Config`], with a default a public server can run with. A bad
//! request is answered and its connection closed; it never ends the server or
//! another connection.
//! - malformed request line or header field, a bad chunked coding: `400`;
//! - request smuggling: both `Content-Length` and `Transfer-Encoding`, several
//!   different or invalid `Content-Length`s, `chunked` not last or twice,
//!   `Transfer-Encoding` from an HTTP/1.0 client, a missing or doubled `Host`: `400`;
//! - a header section over [`Config::max_header_bytes`] (64 KiB) or over
//!   [`Config::max_headers`] fields: `431` (`414` when the request line alone is too
//!   long);
//! - an HTTP version other than 1.0 and 1.1: `505`; a transfer coding other than
//!   chunked: `501`; an expectation other than `100-continue`: `417`;
//! - a body over [`Config::max_body_bytes`]: `413`;
//! - a head not received within [`Config::header_read_timeout`] of its first byte
//!   (slowloris): `408`, and the connection is cut while others are served; idle
//!   keep-alive connections close after [`Config::keep_alive_timeout`];
//! - the bound on connections served at once and the graceful stop are
//!   [`gevent_hub::server::StreamServer`]'s ([`Config::server`], [`Server::stop`]).
#![deny(missing_docs, rust_2018_idioms)]

mod body;
mod chunked;
mod config;
mod conn;
mod date;
mod head;
mod response;
mod serve;
mod server;
mod state;
mod upgrade;

pub use body::Body;
pub use config::Config;
pub use response::ResponseBody;
pub use server::Server;
pub use state::Handler;
pub use upgrade::Upgraded;

/// The `http` crate, whose types handlers see.
pub use http;
pub use http::{header, HeaderMap, Method, Request, Response, StatusCode, Uri, Version};

/// The `log` target of the access log (one `info` line per answer).
pub const ACCESS_LOG: &str = "gevent_http::access";
