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

/// A running handler: its client's address and its greenlet, by greenlet id.
type Handlers = HashMap<u64, (SocketAddr, Rc<Greenlet<()>>)>;

struct ServerInner {
    listener: TcpListener,
    addr: SocketAddr,
    handler: Handler,
    /// The bound on connections handled at once (`max_connections`), if any.
    pool: Option<Pool>,
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
        StreamServer::build(listener, &opts, handler)
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
        StreamServer::build(listener, &opts, handler)
    }

    fn build(
        listener: TcpListener,
        opts: &ServerOptions,
        handler: impl Fn(TcpStream, SocketAddr) + 'static,
    ) -> io::Result<StreamServer> {
        // A pool of 0 is always full: a server that could never serve anyone.
        if opts.max_connections == Some(0) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "max_connections must be at least 1",
            ));
        }
        let pool = opts.max_connections.map(Pool::new);
        let addr = listener.local_addr()?;
        Ok(StreamServer {
            inner: Rc::new(ServerInner {
                listener,
                addr,
                handler: Rc::new(handler),
                pool,
                stop_timeout: opts.stop_timeout,
                kill_timeout: opts.kill_timeout,
                handlers: RefCell::new(HashMap::new()),
                acceptor: RefCell::new(None),
                log_limit: RateLimit::new(10),
                stopping: Cell::new(false),
                stopped: Event::new(),
                accepted: Cell::new(0),
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

    /// Starts accepting in a background greenlet and returns.
    ///
    /// # Errors
    /// `InvalidInput` if it was stopped already.
    pub fn start(&self) -> io::Result<()> {
        if self.inner.stopping.get() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the server was stopped",
            ));
        }
        if self.inner.acceptor.borrow().is_some() {
            return Ok(());
        }
        let inner = self.inner.clone();
        let g = crate::spawn::Builder::new()
            .name(format!("StreamServer({})", self.inner.addr))
            .spawn(move || accept_loop(&inner))?;
        *self.inner.acceptor.borrow_mut() = Some(g);
        Ok(())
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
            inner.listener.close();
            if let Some(a) = inner.acceptor.borrow_mut().take() {
                a.kill_nowait();
            }
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

fn accept_loop(inner: &Rc<ServerInner>) {
    let min_delay = Duration::from_millis(10);
    let mut delay = min_delay;
    loop {
        if inner.stopping.get() {
            return;
        }
        // While the pool is full, leave connections in the kernel's backlog.
        if let Some(pool) = &inner.pool {
            if pool.wait_available().is_err() {
                return;
            }
        }
        match inner.listener.accept() {
            Ok((stream, peer)) => {
                delay = min_delay;
                inner.accepted.set(inner.accepted.get() + 1);
                let handler = inner.handler.clone();
                let body = move || handler(stream, peer);
                // The pool has a free slot (waited for above): its spawn does not wait.
                let g = match &inner.pool {
                    Some(pool) => match pool.spawn(body) {
                        Ok(g) => g,
                        Err(_) => return,
                    },
                    None => Rc::new(spawn(body)),
                };
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
            Err(_) if inner.stopping.get() || inner.listener.take_error().is_err() => return,
            Err(e) if is_transient(&e) => {}
            Err(e) if is_out_of_resources(&e) => {
                // Out of fds or memory: wait for some to be released, without spinning.
                if try_sleep(delay).is_err() {
                    return;
                }
                delay = (delay * 2).min(Duration::from_secs(1));
            }
            Err(e) => {
                error_limited!(
                    inner.log_limit,
                    "StreamServer({}) accept failed: {e}",
                    inner.addr
                );
                if try_sleep(delay).is_err() {
                    return;
                }
                delay = (delay * 2).min(Duration::from_secs(1));
            }
        }
    }
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
