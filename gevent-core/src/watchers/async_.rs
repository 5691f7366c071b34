//! `Async`: wake a loop from another thread (`ev_async`).
//!
//! [`WatcherCore::send`] on the loop's thread, or an [`AsyncSender`] from any thread,
//! makes the watcher's callback run in the loop; several sends before the callback runs
//! are coalesced into one call. The sender is `Send + Sync`, and stays valid after the
//! watcher or its loop is gone: `send` then does nothing and returns `false`.
//!
//! A send while the watcher is stopped (before its first start included) is remembered
//! and delivered once it is started; `stop` forgets a send not yet delivered. Plain
//! libev differs on both counts: `ev_async_start` forgets earlier sends, and a send
//! before any async or signal watcher was started on the loop trips an assertion.

use crate::event_loop::Loop;
use crate::sys::zeroed;
use crate::watcher::{kind, Watcher, WatcherCore};
use libev_sys as ffi;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

/// The target of the senders: the loop and the watcher, while both live.
#[derive(Debug)]
struct Target {
    lp: *mut ffi::ev_loop,
    w: *mut ffi::ev_async,
    /// Mirrors the watcher's active state, so senders never read libev's fields.
    started: bool,
    /// Sent while stopped: to be sent for real at the next start.
    early: bool,
}
// SAFETY: rule 7's one exception. The pointers are used only for ev_async_send, which
// libev documents as safe to call from any thread, and only under the mutex that
// `AsyncExtra::drop` takes before the watcher (and with it the loop, rule 4) goes.
unsafe impl Send for Target {}

impl Target {
    /// Sends now if the watcher is started; otherwise remembers the send for its start.
    fn send(&mut self) {
        if self.started {
            // SAFETY: the watcher and its loop are alive while the target is set and the
            // caller holds the lock (rules 1 and 4, see `Send for Target`), and the
            // watcher is started, so libev's wake-up pipe exists.
            unsafe { ffi::ev_async_send(self.lp, self.w) };
        } else {
            self.early = true;
        }
    }
}

/// What the watcher and its senders share.
#[doc(hidden)]
#[derive(Debug, Default)]
pub struct AsyncShared {
    target: Mutex<Option<Target>>,
}

impl AsyncShared {
    fn lock(&self) -> MutexGuard<'_, Option<Target>> {
        // The critical sections never panic, but a poisoned lock is still consistent.
        self.target.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The watcher's side: detaches the senders when the watcher is freed.
///
/// Declared as the first field of the watcher (see `WatcherCore`), so this runs before
/// the watcher's loop reference is released.
#[doc(hidden)]
#[derive(Debug)]
pub struct AsyncExtra(Arc<AsyncShared>);

impl Drop for AsyncExtra {
    fn drop(&mut self) {
        self.0.lock().take();
    }
}

kind! {
    /// Marker for async watchers.
    AsyncKind: ev_async, "async", ev_async_start / ev_async_stop, extra = AsyncExtra;
    {
        // Starting and stopping take the senders' lock, so a send from another thread
        // never races ev_async_start (which clears the watcher's flag) and never reaches
        // a stopped watcher.
        fn around_start(w: &WatcherCore<Self>, start: impl FnOnce()) {
            let mut target = w.extra.0.lock();
            start();
            if let Some(t) = &mut *target {
                t.started = true;
                if std::mem::take(&mut t.early) {
                    t.send();
                }
            }
        }
        fn around_stop(w: &WatcherCore<Self>, stop: impl FnOnce()) {
            let mut target = w.extra.0.lock();
            stop();
            if let Some(t) = &mut *target {
                t.started = false;
                t.early = false;
            }
        }
    }
}

/// An async watcher: see the [module docs](self).
pub type Async = Watcher<AsyncKind>;

/// Wakes an [`Async`] watcher from any thread.
#[derive(Clone)]
pub struct AsyncSender {
    shared: Arc<AsyncShared>,
}

impl fmt::Debug for AsyncSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncSender")
            .field("connected", &self.is_connected())
            .finish()
    }
}

impl AsyncSender {
    /// Wakes the watcher (`ev_async_send`); a stopped watcher gets the send when it is
    /// started. Returns `false` if the watcher is gone.
    pub fn send(&self) -> bool {
        match &mut *self.shared.lock() {
            Some(t) => {
                t.send();
                true
            }
            None => false,
        }
    }

    /// True while the watcher exists.
    pub fn is_connected(&self) -> bool {
        self.shared.lock().is_some()
    }
}

impl Loop {
    /// An async watcher (`ev_async_init`). Not started yet; a send before the start is
    /// remembered.
    pub fn async_(&self) -> Async {
        let shared = Arc::new(AsyncShared::default());
        let w: Async = Watcher::new(self, zeroed(), AsyncExtra(shared.clone()));
        *shared.lock() = Some(Target {
            lp: self.as_raw(),
            w: w.as_raw(),
            started: false,
            early: false,
        });
        w
    }
}

impl WatcherCore<AsyncKind> {
    /// Wakes the watcher from the loop's own thread (`ev_async_send`); a stopped watcher
    /// gets the send when it is started.
    pub fn send(&self) {
        if let Some(t) = &mut *self.extra.0.lock() {
            t.send();
        }
    }

    /// True when sent to and the callback has not run yet (`ev_async_pending`), or sent
    /// to while stopped.
    pub fn pending(&self) -> bool {
        match &*self.extra.0.lock() {
            // SAFETY: the struct lives in this allocation (rule 1); the field other
            // threads' sends write is read as volatile, as C declares it.
            Some(t) if t.started => unsafe { ffi::ev_async_pending(self.as_raw()) != 0 },
            Some(t) => t.early,
            None => false,
        }
    }

    /// A `Send + Sync` handle for other threads.
    pub fn sender(&self) -> AsyncSender {
        AsyncSender {
            shared: self.extra.0.clone(),
        }
    }
}
