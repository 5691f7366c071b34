//! What other threads can do with a hub: queue a callback on it
//! ([`HubHandle::run_callback_threadsafe`]) and wake one of its waits
//! ([`RemoteWaker`]). Both go through a queue behind a mutex and the hub's `Async`
//! watcher, which drains the queue on the hub's thread.

use super::wait::Waker;
use super::{get_hub, hub_if_any};
use crate::ids::Ids;
use gevent_core::{Async, AsyncSender, Loop, LoopRef};
use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

/// What other threads can send to a hub.
enum RemoteOp {
    Wake(u64),
    Call(Box<dyn FnOnce() + Send>),
}

struct Remote {
    queue: Mutex<Vec<RemoteOp>>,
    sender: AsyncSender,
}

/// The hub's side: the queue, its watcher, and the waits registered for remote
/// wake-ups.
pub(crate) struct Inbox {
    remote: Arc<Remote>,
    /// Drains `remote`; unreferenced (a [`RemoteWaker`] references the loop itself).
    _async: Async,
    /// Local wakers registered for remote wake-ups, by id, each holding the loop
    /// running until it is used or its wait ends.
    waiters: RefCell<HashMap<u64, (Waker, LoopRef)>>,
    next: Ids,
}

impl Inbox {
    /// The inbox of a hub whose loop is `lp`.
    pub(crate) fn new(lp: &Loop) -> gevent_core::Result<Inbox> {
        let a = lp.async_();
        let remote = Arc::new(Remote {
            queue: Mutex::new(Vec::new()),
            sender: a.sender(),
        });
        let r2 = remote.clone();
        a.start(move |_, _| drain(&r2))?;
        a.set_ref(false);
        Ok(Inbox {
            remote,
            _async: a,
            waiters: RefCell::new(HashMap::new()),
            next: Ids::new(),
        })
    }

    pub(crate) fn handle(&self) -> HubHandle {
        HubHandle {
            remote: self.remote.clone(),
        }
    }
}

fn drain(remote: &Remote) {
    let ops = std::mem::take(&mut *remote.queue.lock().unwrap_or_else(|e| e.into_inner()));
    for op in ops {
        match op {
            RemoteOp::Wake(id) => {
                let w = hub_if_any(|h| h.inbox().waiters.borrow_mut().remove(&id)).flatten();
                if let Some((w, hold)) = w {
                    w.wake();
                    drop(hold);
                }
            }
            RemoteOp::Call(f) => {
                hub_if_any(|h| h.get_loop().run_callback(f));
            }
        }
    }
}

/// Registers `waker` for a wake-up from another thread; the hub's loop is kept alive
/// until [`unregister`] (the wait ends) or the wake-up arrives.
pub(crate) fn register(waker: Waker) -> (u64, RemoteWaker) {
    let hub = get_hub();
    let inbox = hub.inbox();
    let id = inbox.next.next();
    let hold = hub.get_loop().hold();
    inbox.waiters.borrow_mut().insert(id, (waker, hold));
    (
        id,
        RemoteWaker {
            id,
            handle: inbox.handle(),
        },
    )
}

/// The waits `ids` are over: forget their wakers and give back their loop references.
pub(crate) fn unregister(ids: &[u64]) {
    hub_if_any(|hub| {
        for id in ids {
            // Dropping the entry gives back its reference on the loop.
            let entry = hub.inbox().waiters.borrow_mut().remove(id);
            drop(entry);
        }
    });
}

/// Lets other threads queue work on a hub (`run_callback_threadsafe`).
#[derive(Clone)]
pub struct HubHandle {
    remote: Arc<Remote>,
}

impl fmt::Debug for HubHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HubHandle")
            .field("connected", &self.remote.sender.is_connected())
            .finish()
    }
}

impl HubHandle {
    /// Runs `f` on the hub's thread, in the hub, at its next loop iteration. Returns
    /// `false` if the hub is gone. `f` must not block (spawn a greenlet for that).
    pub fn run_callback_threadsafe(&self, f: impl FnOnce() + Send + 'static) -> bool {
        self.push(RemoteOp::Call(Box::new(f)))
    }

    fn push(&self, op: RemoteOp) -> bool {
        if !self.remote.sender.is_connected() {
            return false;
        }
        self.remote
            .queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(op);
        self.remote.sender.send()
    }
}

/// Wakes one waiting greenlet from another thread. Made on the hub's thread by
/// [`Wait::remote_waker`](super::Wait::remote_waker); while it exists the hub's loop
/// stays alive (the wait is not "forever": another thread will end it).
pub struct RemoteWaker {
    id: u64,
    handle: HubHandle,
}

impl fmt::Debug for RemoteWaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteWaker").field("id", &self.id).finish()
    }
}

impl RemoteWaker {
    /// Wakes the greenlet. Returns `false` if its hub is gone.
    pub fn wake(self) -> bool {
        self.handle.push(RemoteOp::Wake(self.id))
    }
}
