//! `Async`: wake a loop from another thread (`ev_async`).
//!
//! [`WatcherRef::send`] on the loop's thread, or an [`AsyncSender`] from any thread,
//! makes the watcher's callback run in the loop; several sends before the callback runs
//! are coalesced into one call. The sender is `Send + Sync`, and stays valid after the
//! watcher or its loop is gone: `send` then does nothing and returns `false`.

use crate::event_loop::Loop;
use crate::watcher::{kind, zeroed, Watcher, WatcherRef};
use libev_sys as ffi;
use std::fmt;
use std::sync::{Arc, Mutex};

/// The target of the senders: the loop and the watcher, while both live.
#[derive(Debug)]
struct Target {
    lp: *mut ffi::ev_loop,
    w: *mut ffi::ev_async,
}
// SAFETY: the pointers are only used for ev_async_send, which libev documents as safe
// to call from any thread, and only under the mutex that `AsyncShared::drop` takes
// before the watcher (and with it the loop reference) goes away.
unsafe impl Send for Target {}

/// What the watcher and its senders share.
#[doc(hidden)]
#[derive(Debug, Default)]
pub struct AsyncShared {
    target: Mutex<Option<Target>>,
}

impl Drop for AsyncShared {
    fn drop(&mut self) {
        // Only the watcher's own Arc can be the last one while the target is set.
        self.target
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .take();
    }
}

/// The watcher's side: detaches the senders when the watcher is freed.
///
/// Declared as the first field of the watcher (see `WatcherRef`), so this runs before
/// the watcher's loop reference is released.
#[doc(hidden)]
#[derive(Debug)]
pub struct AsyncExtra(Arc<AsyncShared>);

impl Drop for AsyncExtra {
    fn drop(&mut self) {
        self.0
            .target
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
    }
}

kind! {
    /// Marker for async watchers.
    AsyncKind: ev_async, "async", ev_async_start / ev_async_stop, extra = AsyncExtra;
    {}
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
    /// Wakes the watcher (`ev_async_send`). Returns `false` if the watcher is gone.
    pub fn send(&self) -> bool {
        let t = self.shared.target.lock().unwrap_or_else(|e| e.into_inner());
        match &*t {
            Some(t) => {
                // SAFETY: the watcher and its loop are alive while the target is set, and
                // the lock keeps them so until this call returns.
                unsafe { ffi::ev_async_send(t.lp, t.w) };
                true
            }
            None => false,
        }
    }

    /// True while the watcher exists.
    pub fn is_connected(&self) -> bool {
        self.shared
            .target
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
    }
}

impl Loop {
    /// An async watcher (`ev_async_init`). Not started yet; a send before the start is
    /// remembered.
    pub fn async_(&self) -> Async {
        let shared = Arc::new(AsyncShared::default());
        let w: Async = Watcher::new(self, zeroed(), AsyncExtra(shared.clone()));
        *shared.target.lock().unwrap_or_else(|e| e.into_inner()) = Some(Target {
            lp: self.as_raw(),
            w: w.raw(),
        });
        w
    }
}

impl WatcherRef<AsyncKind> {
    /// Wakes the watcher from the loop's own thread (`ev_async_send`).
    pub fn send(&self) {
        if let Some(l) = self.raw_loop() {
            // SAFETY: live loop and watcher.
            unsafe { ffi::ev_async_send(l, self.raw()) }
        }
    }

    /// True when sent to and the callback has not run yet (`ev_async_pending`).
    pub fn pending(&self) -> bool {
        // SAFETY: the struct is valid for reads; the field is read as volatile.
        unsafe { ffi::ev_async_pending(self.raw()) != 0 }
    }

    /// A `Send + Sync` handle for other threads.
    pub fn sender(&self) -> AsyncSender {
        AsyncSender {
            shared: self.extra.0.clone(),
        }
    }
}
