//! The C side of the crate's own tests (`csrc/probe.c`): struct layouts as the C
//! compiler sees them, and libev's macros applied by C. Not part of the API.

use crate::*;
use core::ffi::{c_char, c_int, c_void};

/// One `sizeof`/`alignof`/`offsetof` figure, named like `"sizeof ev_io"` or `"ev_io.fd"`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ProbeEntry {
    /// NUL-terminated name.
    pub name: *const c_char,
    /// The figure in bytes.
    pub value: usize,
}

type WatcherCb = Option<unsafe extern "C" fn(*mut ev_loop, *mut ev_watcher, c_int)>;

unsafe extern "C" {
    pub fn libev_sys_probe_layout(count: *mut usize) -> *const ProbeEntry;
    pub fn libev_sys_probe_ev_init(w: *mut ev_watcher, cb: WatcherCb);
    pub fn libev_sys_probe_ev_is_active(w: *mut ev_watcher) -> c_int;
    pub fn libev_sys_probe_ev_is_pending(w: *mut ev_watcher) -> c_int;
    pub fn libev_sys_probe_ev_priority(w: *mut ev_watcher) -> c_int;
    pub fn libev_sys_probe_ev_set_priority(w: *mut ev_watcher, pri: c_int);
    pub fn libev_sys_probe_ev_cb(w: *mut ev_watcher) -> *mut c_void;
    pub fn libev_sys_probe_ev_set_cb(w: *mut ev_watcher, cb: WatcherCb);
    pub fn libev_sys_probe_ev_io_set(w: *mut ev_io, fd: c_int, events: c_int);
    pub fn libev_sys_probe_ev_io_modify(w: *mut ev_io, events: c_int);
    pub fn libev_sys_probe_ev_timer_set(w: *mut ev_timer, after: ev_tstamp, repeat: ev_tstamp);
    pub fn libev_sys_probe_ev_periodic_set(
        w: *mut ev_periodic,
        ofs: ev_tstamp,
        ival: ev_tstamp,
        rcb: ev_periodic_reschedule_cb,
    );
    pub fn libev_sys_probe_ev_periodic_at(w: *mut ev_periodic) -> ev_tstamp;
    pub fn libev_sys_probe_ev_signal_set(w: *mut ev_signal, signum: c_int);
    pub fn libev_sys_probe_ev_child_set(w: *mut ev_child, pid: c_int, trace: c_int);
    pub fn libev_sys_probe_ev_stat_set(w: *mut ev_stat, path: *const c_char, interval: ev_tstamp);
    pub fn libev_sys_probe_ev_embed_set(w: *mut ev_embed, other: *mut ev_loop);
    pub fn libev_sys_probe_ev_async_pending(w: *mut ev_async) -> c_int;
}
