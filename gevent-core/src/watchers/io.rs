//! `Io`: readiness of a file descriptor (`ev_io`).
//!
//! Made with [`Loop::io`]`(fd, events)`; the callback receives `READ` and/or `WRITE`.
//! libev aborts on a negative fd or an illegal mask, and misbehaves on a closed fd;
//! here each is an [`Error`] instead. As in gevent after its issue #2100, whether the fd
//! is open is checked with `fcntl(F_GETFD)` when the watcher is made, set and started.
//!
//! The special problem of closed and dup'ed fds (ev.pod): stop the watcher *before*
//! closing its fd. A watcher whose fd was closed behind its back gets `ERROR` and is
//! stopped by libev at the first iteration after its start (when libev hands the fd
//! to the backend), and with the poll and select backends at any later poll too; but
//! epoll forgets a closed fd silently, so a watcher already registered there never
//! hears of it again. Every start and [`rearm`](WatcherCore::rearm) hands the fd to the
//! backend afresh, so a watcher restarted after its fd was closed gets `ERROR` (rearm
//! skips the open-fd check), and one restarted on a number that a new open reused
//! watches the new file, even within one loop iteration.
//!
//! With libev's own assertions on (the `libev-asserts` feature), closing an fd under
//! a watcher is fatal instead: the epoll and poll backends assert when they meet it.

use crate::error::{Error, Result};
use crate::event_loop::Loop;
use crate::events::Events;
use crate::sys::{syscall, zeroed};
use crate::watcher::{kind, Watcher, WatcherCore};
use libev_sys as ffi;
use std::os::fd::RawFd;

kind! {
    /// Marker for io watchers.
    IoKind: ev_io, "io", ev_io_start / ev_io_stop, extra = (), STOP_ON_PANIC = true;
    {
        fn before_start(w: &WatcherCore<Self>) -> Result<()> {
            check_fd(w.fd())?;
            reapply_fd(w);
            Ok(())
        }
        // A rearm restarts a watcher whose fd was checked when it was made (or set): no
        // system call per wait. An fd closed since is reported by libev as ERROR.
        fn before_rearm(w: &WatcherCore<Self>) -> Result<()> {
            reapply_fd(w);
            Ok(())
        }
    }
}

/// An io watcher: see the [module docs](self).
pub type Io = Watcher<IoKind>;

/// Makes the coming `ev_io_start` hand the fd to the backend again (`EV__IOFDSET`, as
/// `ev_io_set` does), even when libev's own bookkeeping says nothing changed.
///
/// libev keeps one combined event mask per fd number and calls the backend only when
/// that mask changes. A watcher stopped and started again within one loop iteration
/// leaves the mask as it was, yet its fd may have been closed meanwhile, and epoll
/// forgets a closed file by itself: without this, a restart on a closed fd would wait
/// forever instead of getting `ERROR`, and one on a reused fd number would never see
/// the new file. The price is one `epoll_ctl` that fails with `EEXIST` in exactly that
/// same-iteration case; a restart in a later iteration re-adds the fd anyway.
fn reapply_fd(w: &WatcherCore<IoKind>) {
    // SAFETY: called right before `ev_io_start` on a stopped watcher, when libev allows
    // the mask to change (it clears the bit again in `ev_io_start`); the struct lives
    // in the watcher's allocation (rule 1).
    unsafe { (*w.as_raw()).events |= ffi::EV__IOFDSET };
}

fn check_fd(fd: RawFd) -> Result<()> {
    if fd < 0 {
        return Err(Error::NegativeFd(fd));
    }
    // SAFETY: F_GETFD only reads the descriptor's flags, and takes any fd number. It
    // fails with EBADF only, for an fd that is not open.
    unsafe { syscall!(fcntl(fd, libc::F_GETFD)) }.map_err(|_| Error::ClosedFd(fd))?;
    Ok(())
}

fn check_events(events: Events) -> Result<()> {
    if !(Events::READ | Events::WRITE).contains(events) {
        return Err(Error::InvalidEvents(events.bits()));
    }
    Ok(())
}

impl Loop {
    /// An io watcher for `fd` and `events` (`READ`, `WRITE` or both), not yet started
    /// (`ev_io_init`). The watcher does not own the fd.
    ///
    /// # Errors
    /// [`Error::NegativeFd`], [`Error::ClosedFd`], [`Error::InvalidEvents`].
    pub fn io(&self, fd: RawFd, events: Events) -> Result<Io> {
        check_fd(fd)?;
        check_events(events)?;
        let mut raw: ffi::ev_io = zeroed();
        // SAFETY: `raw` is a fresh struct that nothing has started or points at.
        unsafe { ffi::ev_io_set(&mut raw, fd, events.bits() as i32) };
        Ok(Watcher::new(self, raw, ()))
    }
}

impl WatcherCore<IoKind> {
    /// The watched fd.
    pub fn fd(&self) -> RawFd {
        // SAFETY: rule 1: the struct lives in this allocation, and libev writes it
        // only on this thread (rule 7), never during this read.
        unsafe { (*self.as_raw()).fd }
    }

    /// The events of interest.
    pub fn events(&self) -> Events {
        // SAFETY: rule 1: the struct lives in this allocation, and libev writes it
        // only on this thread (rule 7), never during this read.
        Events::from_bits(unsafe { (*self.as_raw()).events } as u32)
            & (Events::READ | Events::WRITE)
    }

    /// Changes fd and events (`ev_io_set`); only while stopped.
    ///
    /// # Errors
    /// [`Error::WatcherActive`] while started, or the checks of [`Loop::io`].
    pub fn set(&self, fd: RawFd, events: Events) -> Result<()> {
        if self.is_active() {
            return Err(Error::WatcherActive("change an io watcher's fd"));
        }
        check_fd(fd)?;
        check_events(events)?;
        // SAFETY: the watcher is stopped (checked above), so libev allows the change;
        // the struct lives in this allocation (rule 1).
        unsafe { ffi::ev_io_set(self.as_raw(), fd, events.bits() as i32) };
        Ok(())
    }

    /// Changes only the events (`ev_io_modify`); only while stopped.
    ///
    /// # Errors
    /// [`Error::WatcherActive`] while started, [`Error::InvalidEvents`].
    pub fn set_events(&self, events: Events) -> Result<()> {
        if self.is_active() {
            return Err(Error::WatcherActive("change an io watcher's events"));
        }
        check_events(events)?;
        // SAFETY: the watcher is stopped (checked above), so libev allows the change;
        // the struct lives in this allocation (rule 1).
        unsafe { ffi::ev_io_modify(self.as_raw(), events.bits() as i32) };
        Ok(())
    }
}
