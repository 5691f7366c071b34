//! gevent, in Rust: libev's event loop with safe, gevent.core-style watchers, and
//! greenlets run from a per-thread hub.
//!
//! This facade re-exports the workspace's crates:
//! - [`sys`] (`libev-sys`): the raw libev 4.33 bindings;
//! - [`core`] (`gevent-core`): the safe loop and watchers;
//! - [`hub`] (`gevent-hub`): greenlets, the hub and the blocking primitives.
#![deny(missing_docs, rust_2018_idioms)]

pub use gevent_core as core;
/// `gevent-http`: an HTTP/1.1 server on greenlets (gevent's `pywsgi`; the cargo
/// feature `http`, on by default).
#[cfg(feature = "http")]
pub use gevent_http as http;
pub use gevent_hub as hub;
/// `gevent-monkey`: gevent's `monkey.patch_all()` (the cargo feature `monkey`).
#[cfg(feature = "monkey")]
pub use gevent_monkey as monkey;
pub use libev_sys as sys;

/// The libev backends compiled into this build, comma-separated, as libev names them
/// (reported by `libev-sys` at build time).
pub const COMPILED_BACKENDS: &str = env!("GEVENT_COMPILED_BACKENDS");
