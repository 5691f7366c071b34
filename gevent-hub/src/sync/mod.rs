//! Greenlet-aware synchronisation: waiting parks the greenlet and switches to the hub;
//! it never blocks the thread.
//!
//! - [`Event`] and [`AsyncResult`]: notifications, woken all at once.
//! - [`Semaphore`], [`BoundedSemaphore`], [`Lock`], [`RLock`]: permits, handed to
//!   waiters one at a time in the order they started waiting.
//! - [`Queue`], [`LifoQueue`], [`PriorityQueue`], [`Channel`] (module [`queue`]): one
//!   queue core with a storage policy; bounded or not, joinable, shut down-able.
//!
//! All of them live on one thread (they are `Rc` handles: clone one to share it between
//! greenlets), never keep the hub's loop alive by themselves (so a wait that nobody can
//! end is reported as [`Error::WouldBlockForever`](crate::Error::WouldBlockForever)),
//! and have a timeout form for every blocking call.
//!
//! ## Hand-off
//! Semaphores and queues do not wake every waiter and let them race: a release (or a
//! put) hands the permit (or the item) to the first waiter, which owns it from that
//! moment, even before it runs. A waiter that leaves early (timeout, kill, a
//! [`Timeout`](crate::Timeout)) leaves the line; one killed after it was handed
//! something gives it back, so nothing is lost or duplicated.

mod event;
mod lock;
pub mod queue;
mod semaphore;

pub use event::{AsyncResult, Event, GetError};
pub use lock::{Lock, LockGuard, RLock, RLockGuard};
pub use queue::{Channel, LifoQueue, PriorityQueue, PutError, Queue, QueueError};
pub use semaphore::{BoundedSemaphore, ReleaseError, Semaphore, SemaphoreGuard};

pub(crate) use event::WaitList;

use crate::error::Result;
use crate::hub::{Wait, Waker};
use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::Duration;

/// A greenlet standing in a [`WaiterQueue`], and what it was handed (or offers).
pub(crate) struct Waiter<V> {
    waker: Waker,
    /// Written by whoever serves the waiter, read by the waiter when it resumes.
    pub(crate) state: RefCell<V>,
}

impl<V> Waiter<V> {
    /// Resumes the waiter (queued unless called in the hub).
    pub(crate) fn wake(&self) {
        self.waker.wake();
    }
}

/// Greenlets waiting their turn, first come first served.
pub(crate) struct WaiterQueue<V>(RefCell<VecDeque<Rc<Waiter<V>>>>);

impl<V> Default for WaiterQueue<V> {
    fn default() -> Self {
        WaiterQueue(RefCell::new(VecDeque::new()))
    }
}

impl<V> WaiterQueue<V> {
    pub(crate) fn len(&self) -> usize {
        self.0.borrow().len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.borrow().is_empty()
    }

    /// The first waiter whose greenlet can still be resumed. Waiters leave the line
    /// themselves when their wait ends, so a dead one is only skipped defensively: what
    /// it would be handed would be lost.
    pub(crate) fn pop_live(&self) -> Option<Rc<Waiter<V>>> {
        loop {
            let w = self.0.borrow_mut().pop_front()?;
            if w.waker.is_valid() {
                return Some(w);
            }
        }
    }

    /// The first waiter, live or not (a putter's item must not be skipped).
    pub(crate) fn pop_any(&self) -> Option<Rc<Waiter<V>>> {
        self.0.borrow_mut().pop_front()
    }

    /// Everyone, in order.
    pub(crate) fn drain(&self) -> Vec<Rc<Waiter<V>>> {
        self.0.borrow_mut().drain(..).collect()
    }

    fn push(&self, w: Rc<Waiter<V>>) {
        self.0.borrow_mut().push_back(w);
    }

    fn remove(&self, w: &Rc<Waiter<V>>) {
        self.0.borrow_mut().retain(|x| !Rc::ptr_eq(x, w));
    }
}

/// Stands the current greenlet at the back of `queue` with `state` and parks it until
/// someone serves it (`served(&state)` holds), `timeout` passes, or waiting fails.
///
/// Returns the final state with `Ok(true)` when served, `Ok(false)` on timeout, or the
/// wait's error. A greenlet served just as its timeout fired counts as served. If the
/// greenlet unwinds while parked (killed, a [`Timeout`](crate::Timeout)), it leaves
/// the line, and what it was already handed goes to `undo`.
pub(crate) fn park_in_line<V: Default>(
    what: &'static str,
    timeout: Option<Duration>,
    queue: &WaiterQueue<V>,
    state: V,
    served: fn(&V) -> bool,
    undo: impl FnOnce(V),
) -> (Result<bool>, V) {
    let wait = match Wait::timed(what, timeout) {
        Ok(w) => w,
        Err(e) => return (Err(e), state),
    };
    let waiter = Rc::new(Waiter {
        waker: wait.waker(),
        state: RefCell::new(state),
    });
    queue.push(waiter.clone());
    let mut guard = LeaveLine {
        queue,
        waiter: &waiter,
        served,
        undo: Some(undo),
    };
    let r = loop {
        // A kill unwinds from here: `guard` then leaves the line and gives back.
        let r = wait.park();
        if served(&waiter.state.borrow()) {
            break Ok(true);
        }
        match r {
            // Woken by a stale wake-up: keep waiting.
            Ok(true) => continue,
            other => break other,
        }
    };
    guard.undo = None;
    drop(guard);
    let state = waiter.state.take();
    (r, state)
}

/// Takes a waiter out of its line when its wait ends, whichever way it ends.
struct LeaveLine<'a, V: Default, U: FnOnce(V)> {
    queue: &'a WaiterQueue<V>,
    waiter: &'a Rc<Waiter<V>>,
    served: fn(&V) -> bool,
    /// Present only while unwinding out of the park (disarmed on normal exits).
    undo: Option<U>,
}

impl<V: Default, U: FnOnce(V)> Drop for LeaveLine<'_, V, U> {
    fn drop(&mut self) {
        self.queue.remove(self.waiter);
        if let Some(undo) = self.undo.take() {
            let state = self.waiter.state.take();
            if (self.served)(&state) {
                undo(state);
            }
        }
    }
}
