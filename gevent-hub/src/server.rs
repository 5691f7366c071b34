//! Servers: `StreamServer` (TCP) and `DatagramServer` (UDP). `signal_handler` is
//! re-exported here from [`crate::signal`], where it lives.
//!
//! The slides' echo server, whole:
//!
//! ```no_run
//! use gevent_hub::server::StreamServer;
//! use std::io::{Read, Write};
//!
//! let server = StreamServer::new("0.0.0.0:4000", |mut sock, _addr| {
//!     let mut buf = [0u8; 4096];
//!     loop {
//!         match sock.read(&mut buf) {
//!             Ok(0) | Err(_) => break,
//!             Ok(n) => if sock.write_all(&buf[..n]).is_err() { break },
//!         }
//!     }
//! })?;
//! server.serve_forever()?;
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! Each connection runs its handler in its own greenlet. Accepting survives what a
//! busy server meets: running out of file descriptors (`EMFILE`/`ENFILE`) backs off
//! (10 ms doubling to 1 s) instead of spinning, a connection reset before `accept`
//! is skipped, and a handler that panics is reported without stopping the server.
//!
//! ## Pausing, closing, sharing a bound
//! [`StreamServer::stop_accepting`] pauses accepting and leaves clients in the
//! kernel's backlog until [`start_accepting`](StreamServer::start_accepting);
//! [`close`](StreamServer::close) closes the listener and leaves running handlers
//! alone; [`stop`](StreamServer::stop) does both and ends the handlers. A [`Spawn`]
//! (gevent's `spawn=`) puts handlers in a [`Pool`] several servers share, or starts
//! them through a function of the user's.
//!
//! ## Multi-core
//! A hub is one thread. To use several cores, run one server per thread on the same
//! port with [`ServerOptions::reuse_port`] (`SO_REUSEPORT`): the kernel spreads the
//! connections over the threads' listeners (see `examples/echo_server.rs --threads`).

use crate::diag::{error_limited, RateLimit};
use crate::net::{TcpListener, TcpStream, ToSocketAddrs, UdpSocket, DEFAULT_BACKLOG};
use crate::pool::Pool;
use crate::spawn::{
    current_id, joinall, killall, spawn, try_sleep, AnyGreenlet, Greenlet, Outcome,
};
use crate::sync::Event;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::time::Duration;

pub use crate::signal::{signal_handler, SignalHandler};

/// How a [`StreamServer`] listens.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// The listen backlog (default 1024, as in the slides).
    pub backlog: i32,
    /// Set `SO_REUSEPORT`, to run one server per thread on one port.
    pub reuse_port: bool,
    /// At most this many connections are handled at once; accepting pauses while full
    /// (gevent's `spawn=Pool(n)`). `None`: no bound.
    pub max_connections: Option<usize>,
    /// How long [`StreamServer::stop`] gives running handlers to finish before it kills
    /// them (default [`DEFAULT_STOP_TIMEOUT`], gevent's `stop_timeout`).
    pub stop_timeout: Duration,
    /// How long [`StreamServer::stop`] waits for handlers it killed to end (default
    /// [`DEFAULT_KILL_TIMEOUT`], as gevent's `pool.kill(timeout=1)`); a handler still
    /// running then is reported as having resisted.
    pub kill_timeout: Duration,
}

/// The default [`ServerOptions::stop_timeout`]: 1 s, as in gevent.
pub const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(1);

/// The default [`ServerOptions::kill_timeout`]: 1 s, as in gevent.
pub const DEFAULT_KILL_TIMEOUT: Duration = Duration::from_secs(1);

impl Default for ServerOptions {
    fn default() -> ServerOptions {
        ServerOptions {
            backlog: DEFAULT_BACKLOG,
            reuse_port: false,
            max_connections: None,
            stop_timeout: DEFAULT_STOP_TIMEOUT,
            kill_timeout: DEFAULT_KILL_TIMEOUT,
        }
    }
}

/// What [`StreamServer::stop`] (or [`DatagramServer::stop`]) did with the handlers
/// that were running.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct StopReport {
    /// Handlers that ended on their own within the grace period.
    pub finished: usize,
    /// Handlers killed after the grace period that ended within the kill timeout.
    pub killed: usize,
    /// Handlers still running after the kill timeout: they caught the kill and went on
    /// (they keep their connections until they end).
    pub resisted: Vec<ResistingHandler>,
}

/// A handler that did not end when [`StreamServer::stop`] (or
/// [`DatagramServer::stop`]) killed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResistingHandler {
    /// Its greenlet's id.
    pub greenlet_id: u64,
    /// Its greenlet's name.
    pub greenlet_name: String,
    /// The client it serves (for a datagram handler: the datagram's sender).
    pub peer: SocketAddr,
}

type Handler = Rc<dyn Fn(TcpStream, SocketAddr)>;

/// A spawn function of [`Spawn::with`]: starts the connection's body (which calls the
/// handler) in a greenlet and returns it.
type SpawnFn = Rc<dyn Fn(Box<dyn FnOnce()>) -> crate::Result<Rc<Greenlet<()>>>>;

/// How a [`StreamServer`] starts each connection's handler (gevent's `spawn=`
/// argument). Given to [`StreamServer::with_spawn`] or
/// [`StreamServer::from_listener_with_spawn`]; the other constructors take
/// [`ServerOptions::max_connections`] instead (a pool of the server's own).
///
/// Not part of [`ServerOptions`], which stays `Send` (one copy per thread with
/// `reuse_port`), while a pool and a spawn function belong to one thread.
#[derive(Clone, Default)]
pub enum Spawn {
    /// A new greenlet per connection, or one in a pool of the server's own when
    /// [`ServerOptions::max_connections`] is set (the default).
    #[default]
    Greenlet,
    /// In this pool, which may be shared by several servers (gevent's `spawn=pool`):
    /// together they handle at most the pool's size at once, each server accepting
    /// only while the pool has a free slot.
    Pool(Pool),
    /// Through a function of the user's (see [`Spawn::with`]).
    With(SpawnFn),
}

impl Spawn {
    /// A spawn function (gevent's `spawn=callable`): `f` is given the connection's
    /// body, to run in a greenlet it starts (with a name, in a group, after some
    /// bookkeeping) and returns, so that the server can count, stop and kill it. An
    /// `Err` closes that connection, is logged, and the server goes on accepting.
    pub fn with(
        f: impl Fn(Box<dyn FnOnce()>) -> crate::Result<Rc<Greenlet<()>>> + 'static,
    ) -> Spawn {
        Spawn::With(Rc::new(f))
    }
}

impl fmt::Debug for Spawn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Spawn::Greenlet => f.write_str("Spawn::Greenlet"),
            Spawn::Pool(p) => f.debug_tuple("Spawn::Pool").field(p).finish(),
            Spawn::With(_) => f.write_str("Spawn::With(..)"),
        }
    }
}

/// A running handler: its client's address and its greenlet, by greenlet id.
type Handlers = HashMap<u64, (SocketAddr, Rc<Greenlet<()>>)>;

struct ServerInner {
    listener: TcpListener,
    addr: SocketAddr,
    handler: Handler,
    /// How handlers start: a plain greenlet, in a pool (the server's own for
    /// `max_connections`, or a shared one), or through the user's function.
    spawn: Spawn,
    stop_timeout: Duration,
    kill_timeout: Duration,
    /// Running handlers by greenlet id, with their clients' addresses.
    handlers: RefCell<Handlers>,
    acceptor: RefCell<Option<Greenlet<()>>>,
    /// Accept errors and handler panics can come at any rate: logged within a limit.
    log_limit: RateLimit,
    stopping: Cell<bool>,
    stopped: Event,
    accepted: Cell<u64>,
    /// `start` was called (and the server neither stopped nor closed since).
    started: Cell<bool>,
    /// The listener was closed (by `close` or `stop`).
    closed: Cell<bool>,
    /// Accepting is wanted: cleared by `stop_accepting`, set by `start_accepting`.
    accepting: Cell<bool>,
    /// The acceptor is parked where a kill loses nothing (waiting for a connection or a
    /// slot, backing off): `stop_accepting` may kill it there.
    killable: Cell<bool>,
    /// Its pool is the user's, maybe shared with other servers: another server may
    /// fill it while this one waits for a connection.
    shared_pool: bool,
}

/// A TCP server running a handler greenlet per connection.
///
/// # Examples
/// ```
/// use gevent_hub::net::TcpStream;
/// use gevent_hub::server::StreamServer;
/// use std::io::{Read, Write};
///
/// let server = StreamServer::new("127.0.0.1:0", |mut sock, _peer| {
///     let _ = sock.write_all(b"hi\n");
/// })?;
/// server.start()?;
/// let mut client = TcpStream::connect(server.server_addr())?;
/// let mut greeting = String::new();
/// client.read_to_string(&mut greeting)?; // the handler ends: the server closes it
/// assert_eq!(greeting, "hi\n");
/// let report = server.stop()?;
/// assert!(report.resisted.is_empty());
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone)]
pub struct StreamServer {
    inner: Rc<ServerInner>,
}

impl fmt::Debug for StreamServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamServer")
            .field("addr", &self.inner.addr)
            .field("connections", &self.connection_count())
            .finish()
    }
}

fn is_out_of_resources(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(
            libc::ECONNABORTED
                | libc::EPROTO
                | libc::EPERM
                | libc::ENETDOWN
                | libc::ENOPROTOOPT
                | libc::EHOSTDOWN
        ) | Some(
            libc::ENONET | libc::EHOSTUNREACH | libc::EOPNOTSUPP | libc::ENETUNREACH | libc::EINTR
        )
    )
}

impl StreamServer {
    /// Binds `addr` (backlog 1024) and prepares to run `handler(stream, peer)` in a new
    /// greenlet for each connection. Call [`start`](StreamServer::start) or
    /// [`serve_forever`](StreamServer::serve_forever).
    ///
    /// # Errors
    /// Resolution or `bind`/`listen` errors.
    pub fn new<A: ToSocketAddrs>(
        addr: A,
        handler: impl Fn(TcpStream, SocketAddr) + 'static,
    ) -> io::Result<StreamServer> {
        StreamServer::with_options(addr, ServerOptions::default(), handler)
    }

    /// [`new`](StreamServer::new) with options.
    ///
    /// # Errors
    /// As [`new`](StreamServer::new); `InvalidInput` for `max_connections: Some(0)`.
    pub fn with_options<A: ToSocketAddrs>(
        addr: A,
        opts: ServerOptions,
        handler: impl Fn(TcpStream, SocketAddr) + 'static,
    ) -> io::Result<StreamServer> {
        let listener = TcpListener::bind_with(addr, opts.backlog, opts.reuse_port)?;
        StreamServer::build(listener, &opts, Spawn::Greenlet, handler)
    }

    /// [`with_options`](StreamServer::with_options), starting each handler as `spawn`
    /// says (gevent's `spawn=`): in a [`Pool`] shared with other servers, or through a
    /// function of the user's.
    ///
    /// # Examples
    /// Two servers sharing one bound of two connections at once:
    /// ```
    /// use gevent_hub::pool::Pool;
    /// use gevent_hub::server::{ServerOptions, Spawn, StreamServer};
    ///
    /// let pool = Pool::new(2);
    /// let a = StreamServer::with_spawn("127.0.0.1:0", ServerOptions::default(), Spawn::Pool(pool.clone()), |_, _| ())?;
    /// let b = StreamServer::with_spawn("127.0.0.1:0", ServerOptions::default(), Spawn::Pool(pool.clone()), |_, _| ())?;
    /// a.start()?;
    /// b.start()?;
    /// assert_eq!(pool.size(), 2);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`with_options`](StreamServer::with_options); `InvalidInput` if `spawn` is
    /// not [`Spawn::Greenlet`] and `max_connections` is set too (the pool, or the
    /// function, is the bound).
    pub fn with_spawn<A: ToSocketAddrs>(
        addr: A,
        opts: ServerOptions,
        spawn: Spawn,
        handler: impl Fn(TcpStream, SocketAddr) + 'static,
    ) -> io::Result<StreamServer> {
        check_spawn(&opts, &spawn)?;
        let listener = TcpListener::bind_with(addr, opts.backlog, opts.reuse_port)?;
        StreamServer::build(listener, &opts, spawn, handler)
    }

    /// Serves connections accepted from an existing listener.
    ///
    /// # Errors
    /// `InvalidInput` for `max_connections: Some(0)`; `getsockname` errors.
    pub fn from_listener(
        listener: TcpListener,
        max_connections: Option<usize>,
        handler: impl Fn(TcpStream, SocketAddr) + 'static,
    ) -> io::Result<StreamServer> {
        let opts = ServerOptions {
            max_connections,
            ..ServerOptions::default()
        };
        StreamServer::build(listener, &opts, Spawn::Greenlet, handler)
    }

    /// [`from_listener`](StreamServer::from_listener) with options (their `backlog`
    /// and `reuse_port` are the listener's already, and unused) and a [`Spawn`].
    ///
    /// # Errors
    /// As [`with_spawn`](StreamServer::with_spawn), without the binding.
    pub fn from_listener_with_spawn(
        listener: TcpListener,
        opts: ServerOptions,
        spawn: Spawn,
        handler: impl Fn(TcpStream, SocketAddr) + 'static,
    ) -> io::Result<StreamServer> {
        check_spawn(&opts, &spawn)?;
        StreamServer::build(listener, &opts, spawn, handler)
    }

    fn build(
        listener: TcpListener,
        opts: &ServerOptions,
        spawn: Spawn,
        handler: impl Fn(TcpStream, SocketAddr) + 'static,
    ) -> io::Result<StreamServer> {
        // A pool of 0 is always full: a server that could never serve anyone.
        if opts.max_connections == Some(0) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "max_connections must be at least 1",
            ));
        }
        let shared_pool = matches!(spawn, Spawn::Pool(_));
        let spawn = match (spawn, opts.max_connections) {
            (Spawn::Greenlet, Some(n)) => Spawn::Pool(Pool::new(n)),
            (spawn, _) => spawn,
        };
        let addr = listener.local_addr()?;
        Ok(StreamServer {
            inner: Rc::new(ServerInner {
                listener,
                addr,
                handler: Rc::new(handler),
                spawn,
                stop_timeout: opts.stop_timeout,
                kill_timeout: opts.kill_timeout,
                handlers: RefCell::new(HashMap::new()),
                acceptor: RefCell::new(None),
                log_limit: RateLimit::new(10),
                stopping: Cell::new(false),
                stopped: Event::new(),
                accepted: Cell::new(0),
                started: Cell::new(false),
                closed: Cell::new(false),
                accepting: Cell::new(false),
                killable: Cell::new(false),
                shared_pool,
            }),
        })
    }

    /// The address the server listens on (useful after binding port 0).
    pub fn server_addr(&self) -> SocketAddr {
        self.inner.addr
    }

    /// Connections being handled right now.
    pub fn connection_count(&self) -> usize {
        self.inner.handlers.borrow().len()
    }

    /// Connections accepted so far.
    pub fn accepted_count(&self) -> u64 {
        self.inner.accepted.get()
    }

    /// Starts accepting in a background greenlet and returns. Starting a started
    /// server does nothing (it does not resume accepting paused by
    /// [`stop_accepting`](StreamServer::stop_accepting): that is
    /// [`start_accepting`](StreamServer::start_accepting)).
    ///
    /// # Errors
    /// `InvalidInput` if it was stopped or closed already.
    pub fn start(&self) -> io::Result<()> {
        self.check_open()?;
        if self.inner.started.replace(true) {
            return Ok(());
        }
        self.start_accepting()
    }

    fn check_open(&self) -> io::Result<()> {
        let what = if self.inner.stopping.get() {
            "the server was stopped"
        } else if self.inner.closed.get() {
            "the server was closed"
        } else {
            return Ok(());
        };
        Err(io::Error::new(io::ErrorKind::InvalidInput, what))
    }

    /// Accepts connections again after [`stop_accepting`](StreamServer::stop_accepting)
    /// (gevent's `start_accepting`), or for the first time; it does not make the
    /// server [`started`](StreamServer::started). Does nothing while accepting.
    ///
    /// # Errors
    /// `InvalidInput` if it was stopped or closed; the hub could not spawn the
    /// acceptor.
    pub fn start_accepting(&self) -> io::Result<()> {
        self.check_open()?;
        let inner = &self.inner;
        inner.accepting.set(true);
        let alive = inner.acceptor.borrow().as_ref().is_some_and(|g| !g.ready());
        if alive {
            // Still on its way (handing a connection over): it goes on accepting.
            return Ok(());
        }
        let i2 = inner.clone();
        let g = crate::spawn::Builder::new()
            .name(format!("StreamServer({})", inner.addr))
            .spawn(move || accept_loop(&i2))?;
        *inner.acceptor.borrow_mut() = Some(g);
        Ok(())
    }

    /// Pauses accepting without closing the listener (gevent's `stop_accepting`):
    /// clients that connect meanwhile wait in the kernel's backlog (up to
    /// [`ServerOptions::backlog`]) until [`start_accepting`](StreamServer::start_accepting);
    /// running handlers go on. A connection being handed over when it is called is
    /// still served. Usable in the hub (it does not wait).
    ///
    /// # Examples
    /// ```
    /// use gevent_hub::net::TcpStream;
    /// use gevent_hub::server::StreamServer;
    /// use std::io::Read;
    ///
    /// let server = StreamServer::new("127.0.0.1:0", |sock, _| drop(sock))?;
    /// server.start()?;
    /// server.stop_accepting();
    /// let mut client = TcpStream::connect(server.server_addr())?; // into the backlog
    /// assert_eq!(server.accepted_count(), 0);
    /// server.start_accepting()?;
    /// let mut buf = [0u8; 1];
    /// assert_eq!(client.read(&mut buf)?, 0, "accepted now, and closed by the handler");
    /// assert_eq!(server.accepted_count(), 1);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn stop_accepting(&self) {
        let inner = &self.inner;
        inner.accepting.set(false);
        if inner.killable.get() {
            // Parked with nothing in hand: a kill there leaves every connection in the
            // backlog. Otherwise it stops by itself before its next accept.
            if let Some(g) = inner.acceptor.borrow_mut().take() {
                g.kill_nowait();
            }
            inner.killable.set(false);
        }
    }

    /// True while it accepts connections (started or
    /// [`start_accepting`](StreamServer::start_accepting), not paused, stopped or
    /// closed).
    pub fn is_accepting(&self) -> bool {
        self.inner.accepting.get()
    }

    /// Closes the listener (gevent's `close`): no connection is accepted any more
    /// (clients waiting in the backlog are refused), and
    /// [`serve_forever`](StreamServer::serve_forever) returns. Running handlers go on,
    /// still counted by [`connection_count`](StreamServer::connection_count); a
    /// [`stop`](StreamServer::stop) later ends them. Closing twice does nothing.
    ///
    /// # Examples
    /// ```
    /// use gevent_hub::server::StreamServer;
    ///
    /// let server = StreamServer::new("127.0.0.1:0", |_, _| ())?;
    /// server.start()?;
    /// assert!(server.started() && !server.closed());
    /// server.close();
    /// assert!(server.closed() && !server.started());
    /// assert!(server.start().is_err());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn close(&self) {
        self.shut(false);
        self.inner.stopped.set();
    }

    /// Stops accepting for good: closes the listener (once) and ends the acceptor.
    /// `kill`: kill it whatever it is doing (a stop). Else (a close) it is killed only
    /// if it is parked with nothing in hand (waiting for a pool's slot, the listener's
    /// close would not wake it); one that holds a connection hands it over and sees
    /// `closed` before its next accept.
    fn shut(&self, kill: bool) {
        let inner = &self.inner;
        inner.accepting.set(false);
        inner.started.set(false);
        if !inner.closed.replace(true) {
            inner.listener.close();
        }
        if let Some(g) = inner.acceptor.borrow_mut().take() {
            if kill || inner.killable.get() {
                g.kill_nowait();
            }
        }
        inner.killable.set(false);
    }

    /// True once the listener is closed ([`close`](StreamServer::close) or
    /// [`stop`](StreamServer::stop)), gevent's `closed`.
    pub fn closed(&self) -> bool {
        self.inner.closed.get()
    }

    /// True between [`start`](StreamServer::start) (or
    /// [`serve_forever`](StreamServer::serve_forever)) and
    /// [`stop`](StreamServer::stop) or [`close`](StreamServer::close), gevent's
    /// `started`; pausing with [`stop_accepting`](StreamServer::stop_accepting) does
    /// not change it.
    pub fn started(&self) -> bool {
        self.inner.started.get()
    }

    /// Starts (if needed) and waits until [`stop`](StreamServer::stop) is called.
    ///
    /// # Errors
    /// The hub's errors (e.g. called in the hub).
    pub fn serve_forever(&self) -> io::Result<()> {
        self.start()?;
        self.inner.stopped.wait().map_err(io::Error::from)
    }

    /// Stops accepting, gives running handlers [`ServerOptions::stop_timeout`] to
    /// finish, then kills the rest and waits up to the kill timeout
    /// ([`ServerOptions::kill_timeout`]) for them to end; returns what happened, naming
    /// the handlers that caught the kill and went on (they are also logged).
    /// [`serve_forever`](StreamServer::serve_forever) returns once this does.
    ///
    /// Called from one of the server's own handlers, it deals with the others the same
    /// way, then schedules the caller's own kill, as gevent does: the caller goes on
    /// until its next blocking point and is killed there.
    ///
    /// # Errors
    /// The hub's errors (e.g. called in the hub).
    pub fn stop(&self) -> io::Result<StopReport> {
        self.stop_timeout(self.inner.stop_timeout)
    }

    /// [`stop`](StreamServer::stop) with a grace period of `grace` instead of
    /// [`ServerOptions::stop_timeout`] (`Duration::MAX`: wait for every handler).
    ///
    /// # Errors
    /// As [`stop`](StreamServer::stop).
    pub fn stop_timeout(&self, grace: Duration) -> io::Result<StopReport> {
        let inner = &self.inner;
        if !inner.stopping.replace(true) {
            self.shut(true);
        }
        let what = format!("StreamServer({})", inner.addr);
        let report = stop_handlers(&inner.handlers, grace, inner.kill_timeout, &what)?;
        inner.stopped.set();
        Ok(report)
    }
}

/// A server's part of `stop`: joins the running `handlers` (except the caller, if it
/// is one of them) for `grace`, kills the rest and waits `kill_timeout` for them, and
/// reports. Handlers still running stay in `handlers`; the caller's kill is scheduled.
fn stop_handlers(
    handlers: &RefCell<Handlers>,
    grace: Duration,
    kill_timeout: Duration,
    what: &str,
) -> io::Result<StopReport> {
    let me = current_id();
    let mut running: Vec<(u64, SocketAddr, Rc<Greenlet<()>>)> = handlers
        .borrow_mut()
        .drain()
        .map(|(id, (peer, g))| (id, peer, g))
        .collect();
    running.sort_by_key(|(id, _, _)| *id);
    // A handler cannot wait for itself to end.
    let mine = running
        .iter()
        .position(|(id, _, _)| *id == me)
        .map(|i| running.remove(i));
    let total = running.len();
    let mut report = StopReport::default();
    let waited = (|| {
        if total > 0 {
            let refs: Vec<&dyn AnyGreenlet> = running.iter().map(|(_, _, g)| &**g as _).collect();
            joinall(&refs, Some(grace), false)?;
            report.finished = refs.iter().filter(|g| g.is_ready()).count();
            if report.finished < total {
                killall(&refs, true, Some(kill_timeout))?;
            }
        }
        Ok::<(), crate::Error>(())
    })();
    // Whatever the wait gave, every handler still running is counted again.
    let mut still = handlers.borrow_mut();
    for (id, peer, g) in running {
        if !g.ready() {
            if waited.is_ok() {
                report.resisted.push(ResistingHandler {
                    greenlet_id: id,
                    greenlet_name: g.name().to_owned(),
                    peer,
                });
            }
            // Still running: still counted until it ends (its link removes it).
            still.insert(id, (peer, g));
        }
    }
    if let Some((id, peer, g)) = mine {
        g.kill_nowait();
        still.insert(id, (peer, g));
    }
    drop(still);
    waited.map_err(io::Error::from)?;
    report.killed = total - report.finished - report.resisted.len();
    for r in &report.resisted {
        log::warn!(
            "{what} stop: handler '{}' (id {}) for {} did not end within {kill_timeout:?} of being killed",
            r.greenlet_name,
            r.greenlet_id,
            r.peer,
        );
    }
    Ok(report)
}

/// The acceptor's own exit: it forgets its handle unless a newer acceptor took over.
fn acceptor_done(inner: &ServerInner) {
    inner.killable.set(false);
    let mut a = inner.acceptor.borrow_mut();
    if a.as_ref().is_some_and(|g| g.id() == current_id()) {
        a.take();
    }
}

/// `inner.killable` while `f` runs: a kill there loses no connection.
fn killable<R>(inner: &ServerInner, f: impl FnOnce() -> R) -> R {
    inner.killable.set(true);
    let r = f();
    inner.killable.set(false);
    r
}

fn accept_loop(inner: &Rc<ServerInner>) {
    let min_delay = Duration::from_millis(10);
    let mut delay = min_delay;
    loop {
        if inner.stopping.get() || inner.closed.get() || !inner.accepting.get() {
            return acceptor_done(inner);
        }
        // While the pool is full, leave connections in the kernel's backlog.
        if let Spawn::Pool(pool) = &inner.spawn {
            if killable(inner, || pool.wait_available()).is_err() {
                return acceptor_done(inner);
            }
            if inner.shared_pool {
                // As gevent does, look at the pool again once a client is there: if
                // another server filled it meanwhile, leave this one in the backlog.
                let fd = inner.listener.as_raw_fd();
                match killable(inner, || crate::net::wait_read(fd, None)) {
                    Err(_) if inner.stopping.get() || inner.closed.get() => {
                        return acceptor_done(inner)
                    }
                    // Any other error is accept's to meet and report (with its backoff).
                    Err(_) => {}
                    Ok(()) if pool.full() => continue,
                    Ok(()) => {}
                }
            }
            if !inner.accepting.get() {
                continue;
            }
        }
        match killable(inner, || inner.listener.accept()) {
            Ok((stream, peer)) => {
                delay = min_delay;
                inner.accepted.set(inner.accepted.get() + 1);
                match &inner.spawn {
                    // A shared pool may have filled up while this one waited to
                    // accept: the connection waits for its slot in a greenlet of its
                    // own, so that pausing or stopping the acceptor cannot drop it.
                    Spawn::Pool(pool) if pool.full() => {
                        let i2 = inner.clone();
                        spawn(move || hand_over(&i2, stream, peer));
                    }
                    _ => hand_over(inner, stream, peer),
                }
            }
            Err(_)
                if inner.stopping.get()
                    || inner.closed.get()
                    || inner.listener.take_error().is_err() =>
            {
                return acceptor_done(inner)
            }
            Err(e) if is_transient(&e) => {}
            Err(e) if is_out_of_resources(&e) => {
                // Out of fds or memory: wait for some to be released, without spinning.
                if killable(inner, || try_sleep(delay)).is_err() {
                    return acceptor_done(inner);
                }
                delay = (delay * 2).min(Duration::from_secs(1));
            }
            Err(e) => {
                error_limited!(
                    inner.log_limit,
                    "StreamServer({}) accept failed: {e}",
                    inner.addr
                );
                if killable(inner, || try_sleep(delay)).is_err() {
                    return acceptor_done(inner);
                }
                delay = (delay * 2).min(Duration::from_secs(1));
            }
        }
    }
}

/// Starts the handler of an accepted connection as the server's [`Spawn`] says, and
/// counts it until it ends. In a pool, waits for a slot (at once, unless a shared
/// pool is full).
fn hand_over(inner: &Rc<ServerInner>, stream: TcpStream, peer: SocketAddr) {
    let handler = inner.handler.clone();
    let body = move || handler(stream, peer);
    let spawned = match &inner.spawn {
        Spawn::Greenlet => Ok(Rc::new(spawn(body))),
        Spawn::Pool(pool) => pool.spawn(body),
        Spawn::With(f) => f(Box::new(body)),
    };
    let g = match spawned {
        Ok(g) => g,
        Err(e) => {
            // The connection (in the body) is closed with it.
            error_limited!(
                inner.log_limit,
                "StreamServer({}) could not start a handler for {peer}: {e}",
                inner.addr
            );
            return;
        }
    };
    if inner.stopping.get() {
        // Stopped while it waited for a slot: not served.
        g.kill_nowait();
        return;
    }
    let id = g.id();
    let weak = Rc::downgrade(inner);
    g.link(move |info| {
        let Some(inner) = weak.upgrade() else { return };
        if let Outcome::Panicked(msg) = &info.outcome {
            error_limited!(
                inner.log_limit,
                "StreamServer({}) handler for {peer} panicked: {msg}",
                inner.addr
            );
        }
        inner.handlers.borrow_mut().remove(&id);
    });
    inner.handlers.borrow_mut().insert(id, (peer, g));
}

/// A [`Spawn`] other than the default is the bound: `max_connections` beside it is
/// ambiguous.
fn check_spawn(opts: &ServerOptions, spawn: &Spawn) -> io::Result<()> {
    if opts.max_connections.is_some() && !matches!(spawn, Spawn::Greenlet) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "max_connections and a Spawn other than Spawn::Greenlet were both given: the Spawn's pool or function is the bound, leave max_connections None",
        ));
    }
    Ok(())
}

type DatagramHandler = Rc<dyn Fn(Vec<u8>, SocketAddr, &UdpSocket)>;

/// A UDP server running `handler(data, peer, socket)` in a new greenlet per datagram.
#[derive(Clone)]
pub struct DatagramServer {
    socket: Rc<UdpSocket>,
    handler: DatagramHandler,
    stopped: Event,
    receiver: Rc<RefCell<Option<Greenlet<()>>>>,
    /// Running handlers by greenlet id, with their datagrams' senders.
    handlers: Rc<RefCell<Handlers>>,
}

impl fmt::Debug for DatagramServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatagramServer")
            .field("addr", &self.server_addr())
            .finish()
    }
}

impl DatagramServer {
    /// Binds `addr`.
    ///
    /// # Errors
    /// Resolution or `bind` errors.
    pub fn new<A: ToSocketAddrs>(
        addr: A,
        handler: impl Fn(Vec<u8>, SocketAddr, &UdpSocket) + 'static,
    ) -> io::Result<DatagramServer> {
        Ok(DatagramServer {
            socket: Rc::new(UdpSocket::bind(addr)?),
            handler: Rc::new(handler),
            stopped: Event::new(),
            receiver: Rc::new(RefCell::new(None)),
            handlers: Rc::default(),
        })
    }

    /// The bound address.
    pub fn server_addr(&self) -> Option<SocketAddr> {
        self.socket.local_addr().ok()
    }

    /// Starts receiving in a background greenlet.
    ///
    /// # Errors
    /// The hub could not spawn.
    pub fn start(&self) -> io::Result<()> {
        if self.receiver.borrow().is_some() || self.stopped.is_set() {
            // Running already, or stopped for good (its socket is closed).
            return Ok(());
        }
        let sock = self.socket.clone();
        let handler = self.handler.clone();
        let handlers = Rc::downgrade(&self.handlers);
        let g = crate::spawn::Builder::new()
            .name("DatagramServer")
            .spawn(move || {
                let mut buf = vec![0u8; 65536];
                while let Ok((n, peer)) = sock.recv_from(&mut buf) {
                    let data = buf[..n].to_vec();
                    let (h, s) = (handler.clone(), sock.clone());
                    let g = Rc::new(spawn(move || h(data, peer, &s)));
                    let Some(running) = handlers.upgrade() else {
                        continue;
                    };
                    let id = g.id();
                    let weak = Rc::downgrade(&running);
                    g.link(move |_| {
                        if let Some(running) = weak.upgrade() {
                            running.borrow_mut().remove(&id);
                        }
                    });
                    running.borrow_mut().insert(id, (peer, g));
                }
            })?;
        *self.receiver.borrow_mut() = Some(g);
        Ok(())
    }

    /// Starts and waits until stopped.
    ///
    /// # Errors
    /// The hub's errors.
    pub fn serve_forever(&self) -> io::Result<()> {
        self.start()?;
        self.stopped.wait().map_err(io::Error::from)
    }

    /// Datagrams being handled right now.
    pub fn handler_count(&self) -> usize {
        self.handlers.borrow().len()
    }

    /// Stops receiving (the socket is closed), gives running handlers
    /// [`DEFAULT_STOP_TIMEOUT`] to finish, then kills the rest and waits up to
    /// [`DEFAULT_KILL_TIMEOUT`] for them, as [`StreamServer::stop`] does;
    /// [`serve_forever`](DatagramServer::serve_forever) returns once this does.
    ///
    /// # Errors
    /// The hub's errors (e.g. called in the hub).
    pub fn stop(&self) -> io::Result<StopReport> {
        self.stop_timeout(DEFAULT_STOP_TIMEOUT)
    }

    /// [`stop`](DatagramServer::stop) with a grace period of `grace`
    /// (`Duration::MAX`: wait for every handler).
    ///
    /// # Errors
    /// As [`stop`](DatagramServer::stop).
    pub fn stop_timeout(&self, grace: Duration) -> io::Result<StopReport> {
        let what = match self.server_addr() {
            Some(a) => format!("DatagramServer({a})"),
            None => "DatagramServer".to_owned(),
        };
        self.socket.close();
        if let Some(g) = self.receiver.borrow_mut().take() {
            g.kill_nowait();
        }
        let report = stop_handlers(&self.handlers, grace, DEFAULT_KILL_TIMEOUT, &what)?;
        self.stopped.set();
        Ok(report)
    }
}

/// Raises this process's soft limit on open files (`RLIMIT_NOFILE`) to at least
/// `wanted`, as far as the hard limit allows (`u64::MAX`: to the hard limit), and
/// returns the soft limit now in force. A server holding thousands of connections
/// needs more than the usual 1024.
///
/// # Errors
/// `getrlimit`/`setrlimit` errors.
pub fn raise_fd_limit(wanted: u64) -> io::Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes only into the struct passed.
    crate::sys::cvt(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) })?;
    if lim.rlim_cur < wanted && lim.rlim_cur < lim.rlim_max {
        lim.rlim_cur = wanted.min(lim.rlim_max);
        // SAFETY: setrlimit reads only the struct passed; a soft limit up to the hard
        // one is always allowed.
        crate::sys::cvt(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) })?;
    }
    Ok(lim.rlim_cur)
}
