//! The C library works through the raw bindings: version, backends, and a new loop
//! that runs a timer and an io watcher on a pipe.

use core::ffi::{c_int, c_void};
use libev_sys::*;

#[test]
fn version_is_4_33() {
    // SAFETY: plain getters.
    unsafe {
        assert_eq!((ev_version_major(), ev_version_minor()), (4, 33));
    }
    assert_eq!((EV_VERSION_MAJOR, EV_VERSION_MINOR), (4, 33));
}

#[test]
fn backends_include_epoll_poll_select() {
    // SAFETY: plain getters.
    let (supported, recommended) = unsafe { (ev_supported_backends(), ev_recommended_backends()) };
    for b in [EVBACKEND_EPOLL, EVBACKEND_POLL, EVBACKEND_SELECT] {
        assert_ne!(
            supported & b,
            0,
            "backend {b:#x} missing from {supported:#x}"
        );
    }
    assert_ne!(recommended & EVBACKEND_EPOLL, 0);
    // Each compiled-in backend can actually run a loop.
    for b in [EVBACKEND_EPOLL, EVBACKEND_POLL, EVBACKEND_SELECT] {
        // SAFETY: new loop, destroyed right away.
        unsafe {
            let l = ev_loop_new(b);
            assert!(!l.is_null(), "ev_loop_new({b:#x}) failed");
            assert_eq!(ev_backend(l), b);
            ev_loop_destroy(l);
        }
    }
}

#[test]
fn backend_table_names_every_supported_backend_once() {
    let mut all = 0;
    for &(name, bit) in BACKENDS {
        assert_eq!(
            bit.count_ones(),
            1,
            "{name}: {bit:#x} is not one EVBACKEND_* bit"
        );
        assert_eq!(all & bit, 0, "{name}: {bit:#x} listed twice");
        assert_ne!(
            bit & EVBACKEND_ALL,
            0,
            "{name}: {bit:#x} is no libev backend"
        );
        all |= bit;
    }
    // SAFETY: a plain getter.
    let supported = unsafe { ev_supported_backends() };
    assert_eq!(
        supported & !all,
        0,
        "{supported:#x} has a backend the table lacks"
    );
}

#[derive(Default)]
struct Seen {
    timer_fired: u32,
    io_fired: u32,
    io_revents: c_int,
    byte: u8,
}

unsafe extern "C" fn on_timer(l: *mut ev_loop, w: *mut ev_timer, revents: c_int) {
    // SAFETY: data points at the test's (pipe write fd, Seen) pair for the loop's lifetime.
    unsafe {
        let (wfd, seen) = &mut *((*w).data as *mut (c_int, Seen));
        assert_eq!(revents & EV_TIMER, EV_TIMER);
        seen.timer_fired += 1;
        // The timer writes one byte to the pipe; the io watcher then sees it.
        assert_eq!(libc::write(*wfd, b"x".as_ptr().cast(), 1), 1);
        ev_timer_stop(l, w);
    }
}

unsafe extern "C" fn on_read(l: *mut ev_loop, w: *mut ev_io, revents: c_int) {
    // SAFETY: as above.
    unsafe {
        let (_, seen) = &mut *((*w).data as *mut (c_int, Seen));
        seen.io_fired += 1;
        seen.io_revents = revents;
        let mut b = 0u8;
        assert_eq!(libc::read((*w).fd, (&mut b as *mut u8).cast(), 1), 1);
        seen.byte = b;
        ev_io_stop(l, w);
    }
}

#[test]
fn loop_runs_timer_then_io_on_a_pipe() {
    let mut fds = [0 as c_int; 2];
    // SAFETY: plain syscalls and libev calls; the watchers and `state` outlive the loop run,
    // and both watchers are stopped (by their callbacks) before they go out of scope.
    unsafe {
        assert_eq!(libc::pipe(fds.as_mut_ptr()), 0);
        let mut state = (fds[1], Seen::default());
        let l = ev_loop_new(EVFLAG_AUTO);
        assert!(!l.is_null());

        let mut t: ev_timer = core::mem::zeroed();
        ev_timer_init(&mut t, Some(on_timer), 0.001, 0.0);
        t.data = (&mut state as *mut (c_int, Seen)).cast::<c_void>();
        ev_timer_start(l, &mut t);

        let mut io: ev_io = core::mem::zeroed();
        ev_io_init(&mut io, Some(on_read), fds[0], EV_READ);
        io.data = t.data;
        ev_io_start(l, &mut io);

        // `active` is non-zero when started (for timers it is the heap index).
        assert_ne!(ev_is_active(&t), 0);
        assert_ne!(ev_is_active(&io), 0);
        // Runs until no active watcher is left: both callbacks stop their watcher.
        let more = ev_run(l, 0);
        assert_eq!(more, 0);
        assert_eq!(ev_is_active(&t), 0);
        assert_eq!(ev_is_active(&io), 0);
        assert!(
            ev_iteration(l) >= 2,
            "timer and io need two iterations at least"
        );
        ev_loop_destroy(l);
        libc::close(fds[0]);
        libc::close(fds[1]);

        let seen = &state.1;
        assert_eq!(seen.timer_fired, 1);
        assert_eq!(seen.io_fired, 1);
        assert_eq!(seen.io_revents & EV_READ, EV_READ);
        assert_eq!(seen.byte, b'x');
    }
}

#[test]
fn now_and_time_agree() {
    // SAFETY: new loop, destroyed at the end.
    unsafe {
        let l = ev_loop_new(0);
        ev_now_update(l);
        let (now, wall) = (ev_now(l), ev_time());
        assert!((now - wall).abs() < 1.0, "ev_now {now} vs ev_time {wall}");
        ev_loop_destroy(l);
    }
}
