//! Every watcher struct as bindgen laid it out in Rust has the size, alignment and
//! field offsets the C compiler gives it under the same configuration.

use core::mem::{align_of, offset_of, size_of};
use libev_sys::probe::libev_sys_probe_layout;
use libev_sys::*;
use std::collections::HashMap;
use std::ffi::CStr;

fn c_layout() -> HashMap<String, usize> {
    let mut n = 0usize;
    // SAFETY: the probe returns a pointer to a static array of `n` entries whose names
    // are static NUL-terminated strings.
    unsafe {
        let p = libev_sys_probe_layout(&mut n);
        std::slice::from_raw_parts(p, n)
            .iter()
            .map(|e| (CStr::from_ptr(e.name).to_str().unwrap().to_owned(), e.value))
            .collect()
    }
}

macro_rules! check {
    ($c:expr, $seen:expr, $t:ident $(, $f:ident)*) => {{
        let name = stringify!($t);
        assert_eq!($c[&format!("sizeof {name}")], size_of::<$t>(), "sizeof {name}");
        assert_eq!($c[&format!("alignof {name}")], align_of::<$t>(), "alignof {name}");
        $seen += 2;
        $(
            let field = format!("{name}.{}", stringify!($f));
            assert_eq!($c[&field], offset_of!($t, $f), "offsetof {field}");
            $seen += 1;
        )*
    }};
}

#[test]
fn every_watcher_struct_matches_c() {
    let c = c_layout();
    let mut seen = 0;
    check!(c, seen, ev_watcher, active, pending, priority, data, cb);
    check!(
        c,
        seen,
        ev_watcher_list,
        active,
        pending,
        priority,
        data,
        cb,
        next
    );
    check!(
        c,
        seen,
        ev_watcher_time,
        active,
        pending,
        priority,
        data,
        cb,
        at
    );
    check!(c, seen, ev_io, active, pending, priority, data, cb, next, fd, events);
    check!(c, seen, ev_timer, active, pending, priority, data, cb, at, repeat);
    check!(
        c,
        seen,
        ev_periodic,
        active,
        pending,
        priority,
        data,
        cb,
        at,
        offset,
        interval,
        reschedule_cb
    );
    check!(c, seen, ev_signal, active, pending, priority, data, cb, next, signum);
    check!(c, seen, ev_child, active, pending, priority, data, cb, next, flags, pid, rpid, rstatus);
    check!(
        c, seen, ev_stat, active, pending, priority, data, cb, next, timer, interval, path, prev,
        attr, wd
    );
    check!(c, seen, ev_statdata);
    check!(c, seen, ev_idle, active, pending, priority, data, cb);
    check!(c, seen, ev_prepare, active, pending, priority, data, cb);
    check!(c, seen, ev_check, active, pending, priority, data, cb);
    check!(c, seen, ev_fork, active, pending, priority, data, cb);
    check!(c, seen, ev_cleanup, active, pending, priority, data, cb);
    check!(
        c, seen, ev_embed, active, pending, priority, data, cb, other, io, prepare, check, timer,
        periodic, idle, fork, cleanup
    );
    check!(c, seen, ev_async, active, pending, priority, data, cb, sent);
    check!(c, seen, ev_tstamp);
    // Every figure the C side reports was compared: nothing in probe.c went unchecked.
    assert_eq!(
        seen,
        c.len(),
        "probe.c reports figures this test does not check"
    );
}

#[test]
fn priorities_match_the_configuration() {
    assert_eq!(EV_MINPRI, -2);
    assert_eq!(EV_MAXPRI, 2);
}
