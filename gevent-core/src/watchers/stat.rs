//! `Stat`: changes to a path's attributes (`ev_stat`).
//!
//! libev uses inotify where it can and falls back to polling every `interval` (zero
//! picks libev's default, 5 s). The callback runs when any attribute changed; compare
//! [`attr`](WatcherCore::attr) with [`prev`](WatcherCore::prev). A path that does not exist
//! has no attributes (`None`), so creation and deletion are changes too.

use crate::error::{Error, Result};
use crate::event_loop::Loop;
use crate::sys::secs;
use crate::sys::zeroed;
use crate::watcher::{kind, Watcher, WatcherCore};
use libev_sys as ffi;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::Duration;

kind! {
    /// Marker for stat watchers.
    StatKind: ev_stat, "stat", ev_stat_start / ev_stat_stop, extra = CString;
    {}
}

/// A stat watcher: see the [module docs](self).
pub type Stat = Watcher<StatKind>;

impl Loop {
    /// A watcher for `path`, polled every `interval` when inotify cannot be used
    /// (`ev_stat_init`). Not started yet.
    ///
    /// # Errors
    /// [`Error::InvalidPath`] for a path containing a NUL byte.
    pub fn stat(&self, path: impl AsRef<Path>, interval: Duration) -> Result<Stat> {
        let c =
            CString::new(path.as_ref().as_os_str().as_bytes()).map_err(|_| Error::InvalidPath)?;
        let mut raw: ffi::ev_stat = zeroed();
        // SAFETY: `raw` is a fresh struct that nothing has started or points at; the
        // path's heap buffer moves into the watcher with the CString and lives exactly
        // as long as the struct (ev_stat_set's contract).
        unsafe { ffi::ev_stat_set(&mut raw, c.as_ptr(), interval.as_secs_f64()) };
        Ok(Watcher::new(self, raw, c))
    }
}

fn exists(st: &libc::stat) -> Option<libc::stat> {
    // libev marks a missing path with st_nlink == 0.
    (st.st_nlink != 0).then_some(*st)
}

impl WatcherCore<StatKind> {
    /// The watched path.
    pub fn path(&self) -> &Path {
        Path::new(std::ffi::OsStr::from_bytes(self.extra.as_bytes()))
    }

    /// The polling interval: zero means libev's default (5 s); once started, a
    /// non-zero interval below libev's minimum (about 0.1 s) reads as that minimum.
    pub fn interval(&self) -> Duration {
        // SAFETY: rule 1: the struct lives in this allocation, and libev writes it
        // only on this thread (rule 7), never during this read.
        secs(unsafe { (*self.as_raw()).interval })
    }

    /// The attributes seen last, `None` if the path did not exist.
    pub fn attr(&self) -> Option<libc::stat> {
        // SAFETY: rule 1: the struct lives in this allocation, and libev writes it
        // only on this thread (rule 7), never during this read.
        exists(unsafe { &(*self.as_raw()).attr })
    }

    /// The attributes before the last change, `None` if the path did not exist.
    pub fn prev(&self) -> Option<libc::stat> {
        // SAFETY: rule 1: the struct lives in this allocation, and libev writes it
        // only on this thread (rule 7), never during this read.
        exists(unsafe { &(*self.as_raw()).prev })
    }

    /// Reads the path's attributes now into [`attr`](WatcherCore::attr) (`ev_stat_stat`).
    pub fn stat_now(&self) -> Option<libc::stat> {
        if let Some(l) = self.raw_loop() {
            // SAFETY: the struct and its live loop (rules 1 and 4); ev_stat_stat only
            // writes `attr`, on this thread (rule 7).
            unsafe { ffi::ev_stat_stat(l, self.as_raw()) };
        }
        self.attr()
    }
}
