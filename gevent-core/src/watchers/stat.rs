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
use std::time::{Duration, SystemTime, UNIX_EPOCH};

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

/// A path's attributes as a stat watcher saw them ([`WatcherCore::info`]): the
/// fields of `struct stat` in Rust types. The raw struct is [`WatcherCore::attr`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatInfo {
    /// Size in bytes (`st_size`).
    pub size: u64,
    /// File type and permission bits (`st_mode`; `libc::S_IFMT` masks the type).
    pub mode: u32,
    /// Last modification (`st_mtime`, with its nanoseconds).
    pub modified: SystemTime,
    /// Last status change (`st_ctime`).
    pub changed: SystemTime,
    /// Last access (`st_atime`).
    pub accessed: SystemTime,
    /// Inode number.
    pub ino: u64,
    /// Device the file is on.
    pub dev: u64,
    /// Hard links.
    pub nlink: u64,
    /// Owner's user id.
    pub uid: u32,
    /// Owner's group id.
    pub gid: u32,
}

impl StatInfo {
    fn from_raw(st: &libc::stat) -> StatInfo {
        let time = |s: libc::time_t, ns: i64| -> SystemTime {
            let ns = u32::try_from(ns.clamp(0, 999_999_999)).unwrap_or(0);
            if s >= 0 {
                UNIX_EPOCH + Duration::new(s as u64, ns)
            } else {
                UNIX_EPOCH - Duration::new(s.unsigned_abs(), 0) + Duration::new(0, ns)
            }
        };
        StatInfo {
            size: u64::try_from(st.st_size).unwrap_or(0),
            mode: st.st_mode,
            modified: time(st.st_mtime, st.st_mtime_nsec),
            changed: time(st.st_ctime, st.st_ctime_nsec),
            accessed: time(st.st_atime, st.st_atime_nsec),
            ino: st.st_ino,
            dev: st.st_dev,
            // nlink_t is 64 bits on x86_64 and 32 on aarch64.
            #[allow(clippy::useless_conversion)]
            nlink: u64::from(st.st_nlink),
            uid: st.st_uid,
            gid: st.st_gid,
        }
    }

    /// Whether it is a directory.
    pub fn is_dir(&self) -> bool {
        self.mode & libc::S_IFMT == libc::S_IFDIR
    }

    /// Whether it is a regular file.
    pub fn is_file(&self) -> bool {
        self.mode & libc::S_IFMT == libc::S_IFREG
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
    ///
    /// ```
    /// use gevent_core::Loop;
    /// use std::time::Duration;
    ///
    /// let dir = std::env::temp_dir().join(format!("stat-info-doc-{}", std::process::id()));
    /// std::fs::write(&dir, b"12345")?;
    /// let lp = Loop::new()?;
    /// let w = lp.stat(&dir, Duration::ZERO)?;
    /// let info = w.stat_now_info().expect("the file exists");
    /// assert_eq!(info.size, 5);
    /// assert!(info.is_file());
    /// std::fs::remove_file(&dir)?;
    /// assert_eq!(w.stat_now_info(), None);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn info(&self) -> Option<StatInfo> {
        self.attr().as_ref().map(StatInfo::from_raw)
    }

    /// The attributes before the last change, `None` if the path did not exist.
    pub fn prev_info(&self) -> Option<StatInfo> {
        self.prev().as_ref().map(StatInfo::from_raw)
    }

    /// Reads the path's attributes now ([`stat_now`](WatcherCore::stat_now)) and
    /// returns them as [`info`](WatcherCore::info) does.
    pub fn stat_now_info(&self) -> Option<StatInfo> {
        self.stat_now().as_ref().map(StatInfo::from_raw)
    }

    /// The raw `struct stat` seen last, `None` if the path did not exist
    /// ([`info`](WatcherCore::info) has its fields in Rust types).
    pub fn attr(&self) -> Option<libc::stat> {
        // SAFETY: rule 1: the struct lives in this allocation, and libev writes it
        // only on this thread (rule 7), never during this read.
        exists(unsafe { &(*self.as_raw()).attr })
    }

    /// The raw `struct stat` before the last change, `None` if the path did not
    /// exist ([`prev_info`](WatcherCore::prev_info) in Rust types).
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
