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
