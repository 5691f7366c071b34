//! The server: a `StreamServer` whose connection handler speaks HTTP/1.1.

use crate::serve;
use crate::state::{Handler, ServerState};
use crate::Config;
use gevent_hub::net::{TcpListener, TcpStream, ToSocketAddrs};
use gevent_hub::server::{StopReport, StreamServer};
use std::fmt;
use std::io;
use std::net::SocketAddr;

use gevent_hub::{try_sleep, Builder, Greenlet};
use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// An HTTP/1.1 server: a greenlet per connection, the handler called for each
/// request, in blocking style (gevent's `pywsgi.WSGIServer`).
///
/// Keep-alive and pipelining (answers in order, written together), HTTP/1.0,
/// `Expect: 100-continue`, chunked bodies both ways, `HEAD`, upgrades, a cached `Date`
/// header, access logging (through `log`, target [`ACCESS_LOG`](crate::ACCESS_LOG)),
/// and the limits and timeouts of [`Config`] are the server's; the handler sees
/// `http::Request<Body>` and answers `http::Response`.
///
/// # Examples
/// ```
/// use gevent_http::{Request, Response, Server, Body};
/// use gevent_hub::net::TcpStream;
/// use std::io::{Read, Write};
///
/// let server = Server::new("127.0.0.1:0", |req: Request<Body>| {
///     Response::new(format!("you asked for {}", req.uri().path()))
/// })?;
/// server.start()?;
///
/// let mut client = TcpStream::connect(server.server_addr())?;
/// client.write_all(b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")?;
/// let mut answer = String::new();
/// client.read_to_string(&mut answer)?;
/// assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"));
/// assert!(answer.ends_with("\r\n\r\nyou asked for /hello"));
/// server.stop()?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone)]
pub struct Server {
    stream: StreamServer,
    state: Rc<ServerState>,
    /// The greenlet that enforces the keep-alive and head timeouts.
    sweeper: Rc<RefCell<Option<Greenlet<()>>>>,
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("addr", &self.server_addr())
            .field("connections", &self.connection_count())
            .finish()
    }
}

fn check(config: &Config) -> io::Result<()> {
    let invalid = |what: &str| {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("gevent_http::Config: {what}"),
        ))
    };
    for (name, t) in [
        ("header_read_timeout", config.header_read_timeout),
        ("keep_alive_timeout", config.keep_alive_timeout),
        ("body_read_timeout", config.body_read_timeout),
        ("write_timeout", config.write_timeout),
    ] {
        if t == Some(Duration::ZERO) {
            return invalid(&format!("{name} must not be zero (None: no bound)"));
        }
    }
    if config.max_header_bytes < 64 {
        return invalid("max_header_bytes must be at least 64");
    }
    if config.max_headers == 0 {
        return invalid("max_headers must be at least 1");
    }
    Ok(())
}

impl Server {
    /// Binds `addr` with the default [`Config`] and prepares to serve `handler`. Call
    /// [`start`](Server::start) or [`serve_forever`](Server::serve_forever).
    ///
    /// # Errors
    /// Resolution or `bind`/`listen` errors.
    pub fn new<A: ToSocketAddrs>(addr: A, handler: impl Handler) -> io::Result<Server> {
        Server::with_config(addr, Config::default(), handler)
    }

    /// [`new`](Server::new) with a configuration.
    ///
    /// # Errors
    /// As [`new`](Server::new); `InvalidInput` for a configuration that cannot work (a
    /// zero timeout, `max_headers` 0, `max_connections: Some(0)`).
    pub fn with_config<A: ToSocketAddrs>(
        addr: A,
        config: Config,
        handler: impl Handler,
    ) -> io::Result<Server> {
        let opts = config.server.clone();
        Server::assemble(config, handler, |h| {
            StreamServer::with_options(addr, opts, h)
        })
    }

    /// Serves connections accepted from a listener of one's own. Of
    /// [`Config::server`] only `max_connections` applies (the listener is made).
    ///
    /// # Errors
    /// As [`with_config`](Server::with_config).
    pub fn from_listener(
        listener: TcpListener,
        config: Config,
        handler: impl Handler,
    ) -> io::Result<Server> {
        let max = config.server.max_connections;
        Server::assemble(config, handler, |h| {
            StreamServer::from_listener(listener, max, h)
        })
    }

    /// Checks `config` and makes the server, its listening side made by `listen` with
    /// the connection handler given to it.
    fn assemble(
        config: Config,
        handler: impl Handler,
        listen: impl FnOnce(Box<dyn Fn(TcpStream, SocketAddr)>) -> io::Result<StreamServer>,
    ) -> io::Result<Server> {
        check(&config)?;
        let state = ServerState::new(config, handler);
        let s = state.clone();
        let stream = listen(Box::new(move |sock, peer| {
            serve::serve(sock, peer, s.clone())
        }))?;
        Ok(Server {
            stream,
            state,
            sweeper: Rc::default(),
        })
    }

    /// The address the server listens on (useful after binding port 0).
    pub fn server_addr(&self) -> SocketAddr {
        self.stream.server_addr()
    }

    /// Connections open right now.
    pub fn connection_count(&self) -> usize {
        self.stream.connection_count()
    }

    /// The server's configuration.
    pub fn config(&self) -> &Config {
        &self.state.config
    }

    /// Starts accepting in a background greenlet and returns.
    ///
    /// # Errors
    /// `InvalidInput` if it was stopped already.
    pub fn start(&self) -> io::Result<()> {
        self.stream.start()?;
        let mut sweeper = self.sweeper.borrow_mut();
        if sweeper.is_none() {
            if let Some(every) = self.state.sweep_interval() {
                let state = self.state.clone();
                let g = Builder::new()
                    .name(format!(
                        "gevent_http::Server({}) timeouts",
                        self.server_addr()
                    ))
                    // Until killed once the stop is over: the deadlines hold while
                    // a stop waits for the requests in flight.
                    .spawn(move || {
                        while try_sleep(every).is_ok() {
                            state.sweep(Instant::now());
                        }
                    })
                    .map_err(io::Error::from)?;
                *sweeper = Some(g);
            }
        }
        Ok(())
    }

    /// Starts (if needed) and serves until [`stop`](Server::stop) is called.
    ///
    /// # Errors
    /// The hub's errors (e.g. called in the hub).
    pub fn serve_forever(&self) -> io::Result<()> {
        self.start()?;
        self.stream.serve_forever()
    }

    /// Stops gracefully with the configured grace period
    /// ([`ServerOptions::stop_timeout`](gevent_hub::server::ServerOptions::stop_timeout)).
    ///
    /// # Errors
    /// As [`stop_timeout`](Server::stop_timeout).
    pub fn stop(&self) -> io::Result<StopReport> {
        self.stop_timeout(self.state.config.server.stop_timeout)
    }

    /// Stops gracefully: stops accepting, closes the connections that wait idle for
    /// a next request, lets the requests being served finish within `grace` (each
    /// answered with `Connection: close`), then kills the connections still open.
    ///
    /// # Errors
    /// The hub's errors (e.g. called in the hub).
    pub fn stop_timeout(&self, grace: Duration) -> io::Result<StopReport> {
        self.state.stop_idle();
        let report = self.stream.stop_timeout(grace);
        if let Some(g) = self.sweeper.borrow_mut().take() {
            g.kill_nowait();
        }
        report
    }
}
