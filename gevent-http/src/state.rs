//! What a server's connections share: the handler, the configuration, and the
//! open connections (for the graceful stop).

use crate::conn::Shared;
use crate::{Body, Config, ResponseBody};
use http::{Request, Response};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::Shutdown;
use std::rc::{Rc, Weak};

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

    /// Marks the server stopping and closes the connections waiting idle for a next
    /// request: their read ends as if the client had closed, and they close.
    pub(crate) fn stop_idle(&self) {
        self.stopping.set(true);
        let idle: Vec<Rc<Shared>> = self
            .conns
            .borrow()
            .values()
            .filter_map(Weak::upgrade)
            .filter(|c| c.idle.get())
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
