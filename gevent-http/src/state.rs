//! What a server's connections share: the handler, the configuration, and the
//! open connections (for the graceful stop).

use crate::conn::{Phase, Shared};
use crate::{Body, Config, ResponseBody};
use http::{Request, Response};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::Shutdown;
use std::rc::{Rc, Weak};
use std::time::{Duration, Instant};

/// What serves requests: a function or closure from the request to its response.
///
/// It runs in the connection's greenlet, so it can block in gevent's way (sleep,
/// sockets, queues, locks) while other requests are served. It is implemented for
/// every `Fn(Request<Body>) -> Response<B>` whose body `B` converts into a
/// [`ResponseBody`]. A handler that panics is answered `500` (and logged); a kill or a
/// `Timeout` it does not catch goes on unwinding and ends the connection.
pub trait Handler: 'static {
    /// Answers one request.
    fn call(&self, req: Request<Body>) -> Response<ResponseBody>;
}

impl<F, B> Handler for F
where
    F: Fn(Request<Body>) -> Response<B> + 'static,
    B: Into<ResponseBody>,
{
    fn call(&self, req: Request<Body>) -> Response<ResponseBody> {
        self(req).map(Into::into)
    }
}

/// What the server's connections share.
pub(crate) struct ServerState {
    pub(crate) config: Rc<Config>,
    pub(crate) handler: Box<dyn Handler>,
    pub(crate) stopping: Cell<bool>,
    conns: RefCell<HashMap<u64, Weak<Shared>>>,
    next_id: Cell<u64>,
}

impl ServerState {
    pub(crate) fn new(config: Config, handler: impl Handler) -> Rc<ServerState> {
        Rc::new(ServerState {
            config: Rc::new(config),
            handler: Box::new(handler),
            stopping: Cell::new(false),
            conns: RefCell::new(HashMap::new()),
            next_id: Cell::new(0),
        })
    }

    /// How often the sweep runs: an eighth of the shortest wait it bounds (so a
    /// timeout is late by at most that), between 5 ms and 1 s; `None` if nothing is
    /// bounded.
    pub(crate) fn sweep_interval(&self) -> Option<Duration> {
        let c = &self.config;
        let shortest = match (c.keep_alive_timeout, c.header_read_timeout) {
            (Some(a), Some(b)) => a.min(b),
            (Some(a), None) | (None, Some(a)) => a,
            (None, None) => return None,
        };
        Some((shortest / 8).clamp(Duration::from_millis(5), Duration::from_secs(1)))
    }

    /// Cuts off the connections whose wait ran out: those idle longer than the
    /// keep-alive timeout and those past their head deadline. Their read ends (the
    /// read side is shut down) and they see `swept`: the idle ones close, the others
    /// are answered `408`.
    pub(crate) fn sweep(&self, now: Instant) {
        let keep_alive = self.config.keep_alive_timeout;
        let due: Vec<Rc<Shared>> = self
            .conns
            .borrow()
            .values()
            .filter_map(Weak::upgrade)
            .filter(|c| match c.phase.get() {
                Phase::Idle(Some(since)) => {
                    keep_alive.is_some_and(|t| now.duration_since(since) >= t)
                }
                Phase::Head(Some(deadline)) => now >= deadline,
                Phase::Busy | Phase::Idle(None) | Phase::Head(None) => false,
            })
            .collect();
        for c in due {
            c.swept.set(true);
            let _ = c.stream.shutdown(Shutdown::Read);
        }
    }

    /// Marks the server stopping and closes the connections waiting idle for a next
    /// request: their read ends as if the client had closed, and they close.
    pub(crate) fn stop_idle(&self) {
        self.stopping.set(true);
        let idle: Vec<Rc<Shared>> = self
            .conns
            .borrow()
            .values()
            .filter_map(Weak::upgrade)
            .filter(|c| matches!(c.phase.get(), Phase::Idle(_)))
            .collect();
        for c in idle {
            let _ = c.stream.shutdown(Shutdown::Read);
        }
    }

    pub(crate) fn register(&self, c: &Rc<Shared>) -> u64 {
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        if let Ok(mut conns) = self.conns.try_borrow_mut() {
            conns.insert(id, Rc::downgrade(c));
        }
        id
    }

    pub(crate) fn unregister(&self, id: u64) {
        if let Ok(mut conns) = self.conns.try_borrow_mut() {
            conns.remove(&id);
        }
    }
}
