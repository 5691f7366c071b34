//! The loop-phase watchers, which differ only in when libev calls them:
//!
//! - `Idle` (`ev_idle`): when no other watcher of the same or higher priority is
//!   pending; while one is active the loop polls without blocking.
//! - `Prepare` (`ev_prepare`): just before the loop blocks for new events.
//! - `Check` (`ev_check`): just after it has polled.
//! - `Fork` (`ev_fork`): in the child, on the first iteration after
//!   [`Loop::fork`](crate::Loop::fork).
//! - `Cleanup` (`ev_cleanup`): while the loop is being destroyed. A cleanup watcher does
//!   not keep its loop alive (it could never fire otherwise); in its callback the loop
//!   cannot be run or used to start watchers ([`Error::LoopReleased`](crate::Error)).

use crate::event_loop::Loop;
use crate::sys::zeroed;
use crate::watcher::{kind, Watcher};

kind! {
    /// Marker for idle watchers.
    IdleKind: ev_idle, "idle", ev_idle_start / ev_idle_stop, extra = ();
    {}
}
kind! {
    /// Marker for prepare watchers.
    PrepareKind: ev_prepare, "prepare", ev_prepare_start / ev_prepare_stop, extra = ();
    {}
}
kind! {
    /// Marker for check watchers.
    CheckKind: ev_check, "check", ev_check_start / ev_check_stop, extra = ();
    {}
}
kind! {
    /// Marker for fork watchers.
    ForkKind: ev_fork, "fork", ev_fork_start / ev_fork_stop, extra = ();
    {}
}
kind! {
    /// Marker for cleanup watchers.
    CleanupKind: ev_cleanup, "cleanup", ev_cleanup_start / ev_cleanup_stop, extra = (), WEAK_LOOP = true;
    {}
}

/// An idle watcher: see the [module docs](self).
pub type Idle = Watcher<IdleKind>;
/// A prepare watcher: see the [module docs](self).
pub type Prepare = Watcher<PrepareKind>;
/// A check watcher: see the [module docs](self).
pub type Check = Watcher<CheckKind>;
/// A fork watcher: see the [module docs](self).
pub type Fork = Watcher<ForkKind>;
/// A cleanup watcher: see the [module docs](self).
pub type Cleanup = Watcher<CleanupKind>;

impl Loop {
    /// An idle watcher (`ev_idle_init`). Not started yet.
    pub fn idle(&self) -> Idle {
        Watcher::new(self, zeroed(), ())
    }
    /// A prepare watcher (`ev_prepare_init`). Not started yet.
    pub fn prepare(&self) -> Prepare {
        Watcher::new(self, zeroed(), ())
    }
    /// A check watcher (`ev_check_init`). Not started yet.
    pub fn check(&self) -> Check {
        Watcher::new(self, zeroed(), ())
    }
    /// A fork watcher (`ev_fork_init`). Not started yet.
    pub fn fork_watcher(&self) -> Fork {
        Watcher::new(self, zeroed(), ())
    }
    /// A cleanup watcher (`ev_cleanup_init`). Not started yet.
    pub fn cleanup(&self) -> Cleanup {
        Watcher::new(self, zeroed(), ())
    }
}
