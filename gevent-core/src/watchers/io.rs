//! `Io`: readiness of a file descriptor (`ev_io`).
//!
//! Made with [`Loop::io`]`(fd, events)`; the callback receives `READ` and/or `WRITE`.
//! libev aborts on a negative fd or an illegal mask, and misbehaves on a closed fd;
//! here each is an [`Error`] instead. As in gevent after its issue #2100, whether the fd
//! is open is checked with `fcntl(F_GETFD)` when the watcher is made, set and started.
//!
//! The special problem of closed and dup'ed fds (ev.pod): stop the watcher *before*
//! closing its fd. A watcher whose fd was closed behind its back gets `ERROR` and is
//! stopped by libev.

use crate::error::{Error, Result};
use crate::event_loop::Loop;
use crate::events::Events;
use crate::watcher::{kind, zeroed, Watcher, WatcherRef};
use libev_sys as ffi;
use std::os::fd::RawFd;

kind! {
    /// Marker for io watchers.
    IoKind: ev_io, "io", ev_io_start / ev_io_stop, extra = (), STOP_ON_PANIC = true;
    {
        fn before_start(w: &WatcherRef<Self>) -> Result<()> {
            check_fd(w.fd())
        }
        // A rearm restarts a watcher whose fd was checked when it was made (or set): no
        // system call per wait. An fd closed since is reported by libev as ERROR.
        fn before_rearm(_w: &WatcherRef<Self>) -> Result<()> {
            Ok(())
        }
    }
}

/// An io watcher: see the [module docs](self).
pub type Io = Watcher<IoKind>;

fn check_fd(fd: RawFd) -> Result<()> {
    if fd < 0 {
        return Err(Error::NegativeFd(fd));
    }
    // SAFETY: F_GETFD only reads the descriptor flags.
    if unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1 {
        return Err(Error::ClosedFd(fd));
    }
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
        // SAFETY: a fresh, inactive struct.
        unsafe { ffi::ev_io_set(&mut raw, fd, events.bits() as i32) };
        Ok(Watcher::new(self, raw, ()))
    }
}

impl WatcherRef<IoKind> {
    /// The watched fd.
    pub fn fd(&self) -> RawFd {
        // SAFETY: the struct is valid for reads.
        unsafe { (*self.raw()).fd }
    }

    /// The events of interest.
    pub fn events(&self) -> Events {
        // SAFETY: the struct is valid for reads.
        Events::from_bits(unsafe { (*self.raw()).events } as u32) & (Events::READ | Events::WRITE)
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
        // SAFETY: inactive watcher.
        unsafe { ffi::ev_io_set(self.raw(), fd, events.bits() as i32) };
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
        // SAFETY: inactive watcher.
        unsafe { ffi::ev_io_modify(self.raw(), events.bits() as i32) };
        Ok(())
    }
}
