//! What a loop keeps on its watchers' behalf: the watchers it owns after
//! [`Watcher::detach`](crate::Watcher::detach), and how many child watchers are active.
//!
//! The loop's state holds a [`Registry`]; the watchers fill it. It sits below both, so
//! that neither the loop's module nor the watchers' has to import the other's
//! internals: the loop sees detached watchers only as [`Detached`] objects.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

/// A watcher kept alive by its loop after `Watcher::detach`.
pub(crate) trait Detached {
    fn stop_detached(&self);
    /// Cleanup watchers stay listed until the loop is destroyed: that is when they fire.
    fn fires_at_destroy(&self) -> bool;
    /// The watcher's address, which identifies it in the list.
    fn addr(&self) -> *const ();
}

/// The watcher-side state a loop holds.
#[derive(Default)]
pub(crate) struct Registry {
    /// Watchers kept alive without a handle (`Watcher::detach`), until they stop.
    detached: RefCell<Vec<Rc<dyn Detached>>>,
    /// Active child watchers: libev's SIGCHLD reaping runs only while this is > 0.
    children: Cell<usize>,
}

impl Registry {
    /// Keeps `w` alive until [`take`](Self::take) or [`release_detached`](Self::release_detached).
    pub(crate) fn keep(&self, w: Rc<dyn Detached>) {
        self.detached.borrow_mut().push(w);
    }

    /// Takes the detached watcher at `addr` out of the list. The caller drops it, outside
    /// any borrow of the list: dropping it may stop and free the watcher.
    pub(crate) fn take(&self, addr: *const ()) -> Option<Rc<dyn Detached>> {
        let mut list = self.detached.borrow_mut();
        list.iter()
            .position(|w| w.addr() == addr)
            .map(|i| list.swap_remove(i))
    }

    /// The last `Loop` handle went away: stops and lets go of every detached watcher
    /// but the cleanup watchers, which fire when the loop is destroyed.
    pub(crate) fn release_detached(&self) {
        let (keep, release): (Vec<_>, Vec<_>) = std::mem::take(&mut *self.detached.borrow_mut())
            .into_iter()
            .partition(|w| w.fires_at_destroy());
        self.detached.borrow_mut().extend(keep);
        for w in &release {
            w.stop_detached();
        }
    }

    /// True if no child watcher is active (the next one turns child reaping on).
    pub(crate) fn no_children(&self) -> bool {
        self.children.get() == 0
    }

    /// A child watcher started.
    pub(crate) fn add_child(&self) {
        self.children.set(self.children.get() + 1);
    }

    /// A child watcher stopped; true if it was the last one (child reaping goes off).
    pub(crate) fn remove_child(&self) -> bool {
        let n = self.children.get() - 1;
        self.children.set(n);
        n == 0
    }
}
