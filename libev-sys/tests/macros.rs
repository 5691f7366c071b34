//! Each Rust equivalent of a libev macro leaves a watcher in exactly the state the C
//! macro leaves it in (compared byte for byte against `csrc/probe.c`).

use core::ffi::c_int;
use core::mem::{size_of, MaybeUninit};
use libev_sys::probe::*;
use libev_sys::*;

/// A watcher filled with a byte pattern, so fields a macro must not touch are
/// visibly left alone and fields it must set are visibly changed.
fn patterned<T>(byte: u8) -> T {
    let mut w = MaybeUninit::<T>::uninit();
    // SAFETY: every watcher struct is plain old data (ints, doubles, raw and function
    // pointers); any byte pattern is a valid value for the fields we compare as bytes.
    unsafe {
        std::ptr::write_bytes(w.as_mut_ptr(), byte, 1);
        w.assume_init()
    }
}

fn bytes<T>(w: &T) -> &[u8] {
    // SAFETY: reading the object representation of a POD struct.
    unsafe { std::slice::from_raw_parts((w as *const T).cast::<u8>(), size_of::<T>()) }
}

unsafe extern "C" fn io_cb(_: *mut ev_loop, _: *mut ev_io, _: c_int) {}
unsafe extern "C" fn watcher_cb(_: *mut ev_loop, _: *mut ev_watcher, _: c_int) {}
unsafe extern "C" fn resched(_: *mut ev_periodic, now: ev_tstamp) -> ev_tstamp {
    now + 1.0
}

#[test]
fn ev_init_matches_c() {
    let mut r: ev_io = patterned(0xA5);
    let mut c: ev_io = patterned(0xA5);
    // SAFETY: valid, inactive watchers; the callback types differ only in the pointee.
    unsafe {
        ev_init(&mut r, Some(io_cb));
        let cb: unsafe extern "C" fn(*mut ev_loop, *mut ev_watcher, c_int) =
            std::mem::transmute(io_cb as unsafe extern "C" fn(*mut ev_loop, *mut ev_io, c_int));
        libev_sys_probe_ev_init((&mut c as *mut ev_io).cast(), Some(cb));
    }
    assert_eq!(bytes(&r), bytes(&c));
    assert_eq!(r.active, 0);
    assert_eq!(r.pending, 0);
    assert_eq!(r.priority, 0);
    assert_eq!(r.fd, c.fd, "ev_init must not touch the io fields");
}

#[test]
fn header_accessors_match_c() {
    let mut w: ev_timer = patterned(0);
    for (active, pending, pri) in [(0, 0, 0), (3, 0, -2), (0, 7, 2), (1, 1, 1)] {
        w.active = active;
        w.pending = pending;
        w.priority = pri;
        let p = (&mut w as *mut ev_timer).cast::<ev_watcher>();
        // SAFETY: w is a valid watcher; the probe reads the same header fields.
        unsafe {
            assert_eq!(ev_is_active(&w), libev_sys_probe_ev_is_active(p));
            assert_eq!(ev_is_pending(&w), libev_sys_probe_ev_is_pending(p));
            assert_eq!(ev_priority(&w), libev_sys_probe_ev_priority(p));
        }
        // SAFETY: `w` is a valid watcher.
        assert_eq!(unsafe { ev_is_active(&w) }, active);
    }
}

#[test]
fn set_priority_matches_c() {
    for pri in EV_MINPRI..=EV_MAXPRI {
        let mut r: ev_check = patterned(0x11);
        let mut c: ev_check = patterned(0x11);
        // SAFETY: inactive watchers.
        unsafe {
            ev_set_priority(&mut r, pri);
            libev_sys_probe_ev_set_priority((&mut c as *mut ev_check).cast(), pri);
        }
        assert_eq!(bytes(&r), bytes(&c));
        assert_eq!(r.priority, pri);
    }
}

#[test]
fn callbacks_match_c() {
    let mut r: ev_watcher = patterned(0);
    let mut c: ev_watcher = patterned(0);
    // SAFETY: valid watchers.
    unsafe {
        ev_set_cb(&mut r, Some(watcher_cb));
        libev_sys_probe_ev_set_cb(&mut c, Some(watcher_cb));
        assert_eq!(bytes(&r), bytes(&c));
        let got = ev_cb(&r).map(|f| f as usize);
        assert_eq!(got, Some(watcher_cb as *const () as usize));
        assert_eq!(
            libev_sys_probe_ev_cb(&mut r) as usize,
            watcher_cb as *const () as usize
        );
    }
}

#[test]
fn io_set_and_modify_match_c() {
    let mut r: ev_io = patterned(0x5A);
    let mut c: ev_io = patterned(0x5A);
    // SAFETY: inactive watchers.
    unsafe {
        ev_io_set(&mut r, 7, EV_READ);
        libev_sys_probe_ev_io_set(&mut c, 7, EV_READ);
        assert_eq!(bytes(&r), bytes(&c));
        assert_eq!(r.events, EV_READ | EV__IOFDSET);
        ev_io_modify(&mut r, EV_WRITE);
        libev_sys_probe_ev_io_modify(&mut c, EV_WRITE);
        assert_eq!(bytes(&r), bytes(&c));
        assert_eq!(
            r.events,
            EV_WRITE | EV__IOFDSET,
            "modify keeps the internal fd-set flag"
        );
        assert_eq!(r.fd, 7);
    }
}

#[test]
fn timer_and_periodic_set_match_c() {
    let mut r: ev_timer = patterned(0x33);
    let mut c: ev_timer = patterned(0x33);
    let mut pr: ev_periodic = patterned(0x44);
    let mut pc: ev_periodic = patterned(0x44);
    // SAFETY: inactive watchers.
    unsafe {
        ev_timer_set(&mut r, 1.5, 0.25);
        libev_sys_probe_ev_timer_set(&mut c, 1.5, 0.25);
        assert_eq!(bytes(&r), bytes(&c));
        assert_eq!((r.at, r.repeat), (1.5, 0.25));

        ev_periodic_set(&mut pr, 3.0, 60.0, Some(resched));
        libev_sys_probe_ev_periodic_set(&mut pc, 3.0, 60.0, Some(resched));
        assert_eq!(bytes(&pr), bytes(&pc));
        pr.at = 42.5;
        assert_eq!(ev_periodic_at(&pr), 42.5);
        assert_eq!(libev_sys_probe_ev_periodic_at(&mut pr), 42.5);
    }
}

#[test]
fn signal_child_stat_embed_set_match_c() {
    // SAFETY: inactive watchers; the path is a static string.
    unsafe {
        let mut r: ev_signal = patterned(1);
        let mut c: ev_signal = patterned(1);
        ev_signal_set(&mut r, 15);
        libev_sys_probe_ev_signal_set(&mut c, 15);
        assert_eq!(bytes(&r), bytes(&c));

        for trace in [0, 1, 5] {
            let mut r: ev_child = patterned(2);
            let mut c: ev_child = patterned(2);
            ev_child_set(&mut r, 1234, trace);
            libev_sys_probe_ev_child_set(&mut c, 1234, trace);
            assert_eq!(bytes(&r), bytes(&c), "trace={trace}");
            assert_eq!(r.flags, (trace != 0) as c_int);
        }

        let path = c"/tmp".as_ptr();
        let mut r: ev_stat = patterned(3);
        let mut c: ev_stat = patterned(3);
        ev_stat_set(&mut r, path, 0.5);
        libev_sys_probe_ev_stat_set(&mut c, path, 0.5);
        assert_eq!(bytes(&r), bytes(&c));
        assert_eq!(r.wd, -2);

        let fake = 0x1000 as *mut ev_loop;
        let mut r: ev_embed = patterned(4);
        let mut c: ev_embed = patterned(4);
        ev_embed_set(&mut r, fake);
        libev_sys_probe_ev_embed_set(&mut c, fake);
        assert_eq!(bytes(&r), bytes(&c));
    }
}

#[test]
fn async_pending_matches_c() {
    let mut w: ev_async = patterned(0);
    for sent in [0, 1] {
        w.sent = sent;
        // SAFETY: valid watcher.
        unsafe {
            assert_eq!(
                ev_async_pending(&w),
                libev_sys_probe_ev_async_pending(&mut w)
            )
        };
        // SAFETY: `w` is a valid watcher.
        assert_eq!(unsafe { ev_async_pending(&w) }, sent);
    }
}

#[test]
fn default_loop_helpers() {
    // SAFETY: plain libev calls; the loops are destroyed at the end.
    unsafe {
        let other = ev_loop_new(0);
        assert!(!other.is_null());
        assert_eq!(ev_is_default_loop(other), 0);
        let def = ev_default_loop(0);
        assert!(!def.is_null());
        assert_eq!(ev_default_loop_uc_(), def);
        assert_eq!(ev_is_default_loop(def), 1);
        ev_loop_destroy(other);
    }
}
