//! `Child`: status changes of child processes (`ev_child`), default loop only.
//!
//! ## The default loop and SIGCHLD
//!
//! Plain libev makes its default loop reap *every* child (`waitpid(-1)` on SIGCHLD) from
//! the moment the loop exists, which makes `std::process::Child::wait` fail with
//! `ECHILD` for unrelated children. Here child reaping is opt-in: it runs only while at
//! least one `Child` watcher is active on the default loop. While it runs, libev reaps
//! all children, exactly as in C and gevent, so a program that mixes child watchers
//! with `std::process::Child::wait` must not start them at the same time.
//!
//! A child that exited before its watcher started is still reported: starting a watcher
//! makes libev look for exited children at once.

use crate::error::{Error, Result};
use crate::event_loop::Loop;
use crate::signal::{claim, release};
use crate::sys::zeroed;
use crate::watcher::{kind, Watcher, WatcherCore};
use libev_sys as ffi;
use std::cell::Cell;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;

kind! {
    /// Marker for child watchers.
    ChildKind: ev_child, "child", ev_child_start / ev_child_stop, extra = Cell<bool>;
    {
        fn before_start(w: &WatcherCore<Self>) -> crate::Result<()> {
            let lp = w.loop_inner().ok_or(Error::LoopReleased)?;
            if lp.watchers.no_children() {
                claim(libc::SIGCHLD, lp.raw)?;
                // SAFETY: lp.raw is the default loop (checked when the watcher was made),
                // alive while the watcher links to it (rule 4), on this thread (rule 7).
                unsafe { ffi::libev_sys_child_reaping_start(lp.raw) };
            }
            lp.watchers.add_child();
            w.extra.set(true);
            // Reap children that exited before anyone was listening.
            // SAFETY: as above (rules 4 and 7).
            unsafe { ffi::ev_feed_signal_event(lp.raw, libc::SIGCHLD) };
            Ok(())
        }
        fn after_stop(w: &WatcherCore<Self>) {
            if !w.extra.replace(false) {
                return;
            }
            if let Some(lp) = w.loop_inner() {
                if lp.watchers.remove_child() {
                    // SAFETY: the watcher's live default loop (rules 4 and 7).
                    unsafe { ffi::libev_sys_child_reaping_stop(lp.raw) };
                    release(libc::SIGCHLD, lp.raw);
                }
            }
        }
    }
}

/// A child watcher: see the [module docs](self).
pub type Child = Watcher<ChildKind>;

impl Loop {
    /// A watcher for child `pid` (0: any child); with `trace`, stops and continues are
    /// reported too (`ev_child_init`). Not started yet.
    ///
    /// # Errors
    /// [`Error::ChildOffDefaultLoop`] unless this is the default loop;
    /// [`Error::InvalidPid`] for a negative pid.
    pub fn child(&self, pid: i32, trace: bool) -> Result<Child> {
        if !self.is_default() {
            return Err(Error::ChildOffDefaultLoop);
        }
        if pid < 0 {
            return Err(Error::InvalidPid(pid));
        }
        let mut raw: ffi::ev_child = zeroed();
        // SAFETY: `raw` is a fresh struct that nothing has started or points at.
        unsafe { ffi::ev_child_set(&mut raw, pid, trace as i32) };
        Ok(Watcher::new(self, raw, Cell::new(false)))
    }
}

impl WatcherCore<ChildKind> {
    /// The pid being watched (0: any).
    pub fn pid(&self) -> i32 {
        // SAFETY: rule 1: the struct lives in this allocation, and libev writes it
        // only on this thread (rule 7), never during this read.
        unsafe { (*self.as_raw()).pid }
    }

    /// The pid that changed status last (`rpid`).
    pub fn rpid(&self) -> i32 {
        // SAFETY: rule 1: the struct lives in this allocation, and libev writes it
        // only on this thread (rule 7), never during this read.
        unsafe { (*self.as_raw()).rpid }
    }

    /// The raw `waitpid` status of that change (`rstatus`).
    pub fn rstatus(&self) -> i32 {
        // SAFETY: rule 1: the struct lives in this allocation, and libev writes it
        // only on this thread (rule 7), never during this read.
        unsafe { (*self.as_raw()).rstatus }
    }

    /// `rstatus` as a `std::process::ExitStatus`.
    pub fn exit_status(&self) -> ExitStatus {
        ExitStatus::from_raw(self.rstatus())
    }
}
