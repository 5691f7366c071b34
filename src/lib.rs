//! gevent, in Rust: libev's event loop with safe, gevent.core-style watchers, and
//! greenlets run from a per-thread hub, so that code written in a plain blocking style
//! multiplexes thousands of connections on one thread.
//!
//! This facade re-exports the workspace's crates:
//! - [`sys`] (`libev-sys`): the raw libev 4.33 bindings;
//! - [`core`] (`gevent-core`): the safe loop and watchers;
//! - [`hub`] (`gevent-hub`): greenlets, the hub and the blocking primitives;
//! - [`http`] (`gevent-http`, feature `http`, on by default): the HTTP/1.1 server;
//! - `monkey` (`gevent-monkey`, feature `monkey`): gevent's `monkey.patch_all()`.
//!
//! # A guided tour, through the programs gevent is explained with
//!
//! Each step is one of the seed talks' programs; each has a runnable example in the
//! repository's `examples/` (`cargo run --example NAME`).
//!
//! ## 1. The event loop: gevent.core (`examples/timer.rs`)
//! libev's loop, with watchers started with a closure, as `gevent.core` has them:
//!
//! ```
//! use gevent::core::Loop;
//! use std::time::Duration;
//!
//! let lp = Loop::new()?;
//! let timer = lp.timer(Duration::from_millis(1), Duration::from_millis(1));
//! let mut ticks = 0;
//! timer.start(move |t, _events| {
//!     ticks += 1;
//!     if ticks == 3 {
//!         t.stop(); // nothing left to watch: run() returns
//!     }
//! })?;
//! lp.run()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! `examples/io.rs`, `loop_phases.rs`, `signals.rs` and `evpod_port.rs` (libev's own
//! example program, line by line) show the other watchers; `docs/porting-from-libev.md`
//! maps every libev call.
//!
//! ## 2. Greenlets: explicit switches (`examples/greenlet_switch.rs`)
//! Stackful coroutines, like the `greenlet` library: a switch suspends one and resumes
//! another, each on its own stack.
//!
//! ```
//! use gevent::hub::greenlet::{RawGreenlet, Value};
//!
//! let g = RawGreenlet::new(|v: Value| {
//!     let n = *v.downcast::<i32>().unwrap();
//!     n * 2 // back to the parent (here: main), as the switch's value
//! });
//! let back = g.switch(21)?;
//! assert_eq!(*back.downcast::<i32>().unwrap(), 42);
//! assert!(g.is_dead());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## 3. The hub, made by hand (`examples/hub_sleep.rs`)
//! The slides' simplified hub: a greenlet whose body runs the loop, and a `sleep` that
//! arms a timer whose callback switches back to the sleeper, then switches to the hub.
//! That is all the hub is; [`hub`]'s adds the run queue (resumed from the loop's
//! prepare watcher), kills, timeouts and the blocking primitives.
//!
//! ## 4. Spawn, sleep, join (`examples/resolve.rs`)
//! The hub is per thread and made on first use. `spawn` schedules a greenlet; every
//! blocking call (`sleep`, a socket read, `Queue::get`, `join`) switches to the hub, which
//! runs whatever is ready:
//!
//! ```
//! use gevent::hub::{joinall, sleep, spawn};
//! use std::time::Duration;
//!
//! let jobs: Vec<_> = (1..=3u64)
//!     .map(|i| {
//!         spawn(move || {
//!             sleep(Duration::from_millis(10 * i)); // the three sleeps overlap
//!             i
//!         })
//!     })
//!     .collect();
//! assert!(joinall(&jobs, Some(Duration::from_secs(5)), false)?);
//! let values: Vec<u64> = jobs.into_iter().map(|g| g.join().unwrap()).collect();
//! assert_eq!(values, [1, 2, 3]);
//! # Ok::<(), gevent::hub::Error>(())
//! ```
//!
//! `examples/resolve.rs` is the tutorial's `joinall` of name lookups with a timeout;
//! `examples/download.rs` fetches pages concurrently.
//!
//! ## 5. The echo server (`examples/echo_server.rs`, `examples/demo.rs`)
//! [`hub::server::StreamServer`] runs a handler greenlet per connection; `hub::net`
//! mirrors `std::net`:
//!
//! ```
//! use gevent::hub::net::TcpStream;
//! use gevent::hub::server::StreamServer;
//! use std::io::{Read, Write};
//!
//! let server = StreamServer::new("127.0.0.1:0", |mut sock, _addr| {
//!     let mut buf = [0u8; 4096];
//!     while let Ok(n @ 1..) = sock.read(&mut buf) {
//!         if sock.write_all(&buf[..n]).is_err() {
//!             break;
//!         }
//!     }
//! })?;
//! server.start()?;
//! let mut client = TcpStream::connect(server.server_addr())?;
//! client.write_all(b"hello")?;
//! let mut echo = [0u8; 5];
//! client.read_exact(&mut echo)?;
//! assert_eq!(&echo, b"hello");
//! server.stop()?;
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! `examples/demo.rs` (the README's main demo) runs it with 1,000 client greenlets in
//! one thread; `echo_monkey.rs` is the slides' threaded echo ported by swapping imports.
//!
//! ## 6. Actors (`examples/actors.rs`)
//! Greenlets with a [`hub::Queue`] for an inbox, trading messages:
//!
//! ```
//! use gevent::hub::{spawn, Queue};
//!
//! let (inbox, replies) = (Queue::new(), Queue::new());
//! let (rx, tx) = (inbox.clone(), replies.clone());
//! let actor = spawn(move || {
//!     while let Ok(n) = rx.get() {
//!         if n == 0 {
//!             break;
//!         }
//!         let _ = tx.put(n * 10);
//!     }
//! });
//! for n in [1, 2, 3, 0] {
//!     inbox.put(n).unwrap();
//! }
//! actor.join().unwrap();
//! let got: Vec<i32> = std::iter::from_fn(|| replies.get_nowait().ok()).collect();
//! assert_eq!(got, [10, 20, 30]);
//! ```
//!
//! ## 7. A web application ([`http`], `examples/http_server.rs`)
//! gevent's `pywsgi`: a handler from the `http` crate's `Request` to its `Response`,
//! run in the connection's greenlet (`docs/http.md`):
//!
//! ```no_run
//! use gevent::http::{Body, Request, Response, Server};
//!
//! Server::new("0.0.0.0:8080", |req: Request<Body>| {
//!     Response::new(format!("Hello from {}\n", req.uri().path()))
//! })?
//! .serve_forever()?;
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! ## 8. Monkey patching (`examples/monkey_echo.rs`, feature `monkey`)
//! `gevent::monkey::patch_all()` at the top of `main` makes unmodified blocking code —
//! `std::net`, `std::thread::sleep`, crates that open their own sockets — park the
//! calling greenlet instead of the thread (`docs/monkey.md`).
//!
//! # Kills and timeouts are unwinds
//! A [`Greenlet::kill`](hub::Greenlet::kill) and a [`Timeout`](hub::Timeout) expiry
//! unwind the target greenlet from its blocking point, with a panic payload
//! ([`hub::GreenletExit`], [`hub::TimeoutExpired`]), so that its destructors run.
//! Code that catches panics (`std::panic::catch_unwind`) therefore catches them too,
//! and must hand back what is not its own:
//!
//! ```
//! use gevent::hub::{sleep, with_timeout, GreenletExit, TimeoutExpired};
//! use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
//! use std::time::Duration;
//!
//! let r = with_timeout(Duration::from_millis(5), || {
//!     let caught = catch_unwind(AssertUnwindSafe(|| sleep(Duration::from_secs(60))));
//!     if let Err(p) = caught {
//!         if p.is::<GreenletExit>() || p.is::<TimeoutExpired>() {
//!             resume_unwind(p); // not ours: let the kill or the Timeout go on
//!         }
//!         // a real panic of the code inside: handle it here
//!     }
//! });
//! assert!(r.is_err()); // the Timeout reached its `with_timeout`
//! ```
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
