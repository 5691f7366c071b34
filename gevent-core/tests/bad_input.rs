//! Soundness rule 6: every libev `assert`/`abort` reachable from the safe API is a typed
//! [`Error`] first.
//!
//! The default build compiles libev with `NDEBUG`, so there a missing check would not
//! abort: libev would go on with the bad input, silently. CI therefore also runs this
//! file with the `libev-asserts` feature (libev's assertions on, `EV_VERIFY 1`), where
//! each case below would abort the whole test process if its check were missing.
//! Every test asserts the exact error variant and then that the process is still
//! healthy: a fresh loop still runs a timer.

mod util;

use gevent_core::{Error, Events, Flags, Loop, MAXPRI, MINPRI, NSIG};
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;
use util::{breaking_watchdog as watchdog, close, default_loop_lock, raise, raw_pipe as pipe};

const ZERO: Duration = Duration::ZERO;

/// The process survived the bad input: a fresh loop still runs a timer.
fn assert_healthy() {
    let lp = Loop::new().expect("a fresh loop");
    let (_dog, dog_fired) = watchdog(&lp);
    let fired = Rc::new(Cell::new(0));
    let t = lp.timer(ZERO, ZERO);
    let f = fired.clone();
    t.start(move |_, _| f.set(f.get() + 1)).unwrap();
    lp.run().unwrap();
    assert!(!dog_fired.get());
    assert_eq!(fired.get(), 1);
}

/// A pipe end moved to a number at or above `min`, then closed: a descriptor number
/// that is certainly not open. Other tests run on other threads and open descriptors
/// too, and the kernel hands out the lowest free number, so a low number closed here
/// could be reused by them at once; nothing else in this binary asks for numbers this
/// high.
fn closed_fd(min: i32) -> i32 {
    let (r, w) = pipe();
    // SAFETY: F_DUPFD_CLOEXEC duplicates an open descriptor we own.
    let high = unsafe { libc::fcntl(r, libc::F_DUPFD_CLOEXEC, min) };
    assert!(
        high >= min,
        "F_DUPFD_CLOEXEC: {}",
        std::io::Error::last_os_error()
    );
    close(r);
    close(w);
    close(high);
    high
}

#[test]
fn io_on_a_negative_fd_is_negative_fd() {
    let lp = Loop::new().unwrap();
    assert_eq!(lp.io(-1, Events::READ).err(), Some(Error::NegativeFd(-1)));
    assert_eq!(
        lp.io(i32::MIN, Events::WRITE).err(),
        Some(Error::NegativeFd(i32::MIN))
    );
    // Re-pointing an existing watcher is checked the same way.
    let (r, w) = pipe();
    let io = lp.io(r, Events::READ).unwrap();
    assert_eq!(io.set(-7, Events::READ), Err(Error::NegativeFd(-7)));
    assert_eq!(io.fd(), r, "the failed set changed nothing");
    drop(io);
    close(r);
    close(w);
    assert_healthy();
}

#[test]
fn io_on_a_closed_fd_is_closed_fd() {
    let lp = Loop::new().unwrap();
    let fd = closed_fd(600);
    assert_eq!(lp.io(fd, Events::READ).err(), Some(Error::ClosedFd(fd)));
    assert_healthy();
}

#[test]
fn starting_io_after_its_fd_was_closed_is_closed_fd() {
    let lp = Loop::new().unwrap();
    let (r, w) = pipe();
    // SAFETY: F_DUPFD_CLOEXEC duplicates an open descriptor we own.
    let high = unsafe { libc::fcntl(r, libc::F_DUPFD_CLOEXEC, 650) };
    assert!(high >= 650);
    let io = lp.io(high, Events::READ).unwrap();
    close(high);
    // libev would accept the stale number and misbehave in epoll; it is refused here.
    assert_eq!(io.start(|_, _| {}), Err(Error::ClosedFd(high)));
    assert!(!io.is_active());
    assert!(!io.has_callback());
    drop(io);
    close(r);
    close(w);
    assert_healthy();
}

#[test]
fn io_with_an_illegal_event_mask_is_invalid_events() {
    let lp = Loop::new().unwrap();
    let (r, w) = pipe();
    assert_eq!(
        lp.io(r, Events::TIMER).err(),
        Some(Error::InvalidEvents(Events::TIMER.bits()))
    );
    let mixed = Events::READ | Events::SIGNAL;
    assert_eq!(
        lp.io(r, mixed).err(),
        Some(Error::InvalidEvents(mixed.bits()))
    );
    let io = lp.io(r, Events::READ).unwrap();
    assert_eq!(
        io.set_events(Events::CUSTOM),
        Err(Error::InvalidEvents(Events::CUSTOM.bits()))
    );
    assert_eq!(
        io.set(r, Events::WRITE | Events::ERROR),
        Err(Error::InvalidEvents((Events::WRITE | Events::ERROR).bits()))
    );
    assert_eq!(
        io.events(),
        Events::READ,
        "the failed changes changed nothing"
    );
    drop(io);
    close(r);
    close(w);
    assert_healthy();
}

#[test]
fn signal_zero_is_out_of_range() {
    let lp = Loop::new().unwrap();
    assert_eq!(lp.signal(0).err(), Some(Error::SignalOutOfRange(0)));
    assert_eq!(lp.signal(-1).err(), Some(Error::SignalOutOfRange(-1)));
    assert_healthy();
}

#[test]
fn signal_nsig_is_out_of_range() {
    assert_eq!(NSIG, 65);
    let lp = Loop::new().unwrap();
    assert_eq!(lp.signal(65).err(), Some(Error::SignalOutOfRange(65)));
    assert_eq!(
        lp.signal(i32::MAX).err(),
        Some(Error::SignalOutOfRange(i32::MAX))
    );
    // The last valid number is accepted (made, not started).
    assert!(lp.signal(NSIG - 1).is_ok());
    assert_healthy();
}

#[test]
fn sigkill_and_sigstop_are_uncatchable() {
    let lp = Loop::new().unwrap();
    assert_eq!(
        lp.signal(libc::SIGKILL).err(),
        Some(Error::SignalUncatchable(libc::SIGKILL))
    );
    assert_eq!(
        lp.signal(libc::SIGSTOP).err(),
        Some(Error::SignalUncatchable(libc::SIGSTOP))
    );
    assert_healthy();
}

#[test]
fn one_signal_on_two_loops_is_signal_in_use() {
    // SIGUSR2 is used by no other test in this binary.
    let sig = libc::SIGUSR2;
    let a = Loop::new().unwrap();
    let b = Loop::new().unwrap();
    let on_a = a.signal(sig).unwrap();
    on_a.start(|_, _| {}).unwrap();
    let on_b = b.signal(sig).unwrap();
    assert_eq!(on_b.start(|_, _| {}), Err(Error::SignalInUse(sig)));
    assert!(!on_b.is_active());
    // A second watcher on the owning loop is fine.
    let also_on_a = a.signal(sig).unwrap();
    also_on_a.start(|_, _| {}).unwrap();
    // The claim is held until the last watcher on `a` stops.
    on_a.stop();
    assert_eq!(on_b.start(|_, _| {}), Err(Error::SignalInUse(sig)));
    drop(also_on_a);

    // Now `b` may take it, and really gets the signal.
    let (_dog, dog_fired) = watchdog(&b);
    let got = Rc::new(Cell::new(0));
    let g = got.clone();
    on_b.start(move |w, ev| {
        assert!(ev.contains(Events::SIGNAL));
        g.set(g.get() + 1);
        w.stop();
    })
    .unwrap();
    raise(sig); // to this thread; b's watcher handles it
    b.run().unwrap();
    assert!(!dog_fired.get());
    assert_eq!(got.get(), 1);
    // And `a` cannot have it back while `b` holds it.
    on_b.start(|_, _| {}).unwrap();
    assert_eq!(on_a.start(|_, _| {}), Err(Error::SignalInUse(sig)));
    drop(on_b);
    assert_healthy();
}

#[test]
fn child_watcher_off_the_default_loop_is_an_error() {
    let lp = Loop::new().unwrap();
    assert!(!lp.is_default());
    assert_eq!(lp.child(0, false).err(), Some(Error::ChildOffDefaultLoop));
    assert_eq!(lp.child(1, true).err(), Some(Error::ChildOffDefaultLoop));
    assert_healthy();
}

#[test]
fn child_watcher_with_a_negative_pid_is_invalid_pid() {
    let _turn = default_loop_lock();
    let lp = Loop::default_loop().unwrap();
    assert_eq!(lp.child(-1, false).err(), Some(Error::InvalidPid(-1)));
    assert_eq!(
        lp.child(i32::MIN, true).err(),
        Some(Error::InvalidPid(i32::MIN))
    );
    drop(lp);
    assert_healthy();
}

#[test]
fn priority_out_of_range_at_both_ends() {
    let lp = Loop::new().unwrap();
    let t = lp.timer(ZERO, ZERO);
    assert_eq!(
        t.set_priority(MINPRI - 1),
        Err(Error::PriorityOutOfRange(MINPRI - 1))
    );
    assert_eq!(
        t.set_priority(MAXPRI + 1),
        Err(Error::PriorityOutOfRange(MAXPRI + 1))
    );
    assert_eq!(
        t.set_priority(i32::MIN),
        Err(Error::PriorityOutOfRange(i32::MIN))
    );
    assert_eq!(t.priority(), 0, "the failed calls changed nothing");
    // Both ends themselves are valid.
    t.set_priority(MINPRI).unwrap();
    assert_eq!(t.priority(), MINPRI);
    t.set_priority(MAXPRI).unwrap();
    assert_eq!(t.priority(), MAXPRI);
    drop(t);
    assert_healthy();
}

#[test]
fn changing_priority_while_active_or_pending_is_watcher_active() {
    let lp = Loop::new().unwrap();
    let t = lp.timer(Duration::from_secs(3600), ZERO);
    t.start(|_, _| {}).unwrap();
    assert!(matches!(t.set_priority(1), Err(Error::WatcherActive(_))));
    assert_eq!(t.priority(), 0);
    t.stop();
    // Pending but not active: libev forbids it too.
    t.feed(Events::CUSTOM);
    assert!(matches!(t.set_priority(1), Err(Error::WatcherActive(_))));
    t.clear_pending();
    t.set_priority(1).unwrap();
    assert_eq!(t.priority(), 1);
    drop(t);
    assert_healthy();
}

#[test]
fn unknown_backend_name_lists_the_valid_names() {
    let err = Loop::with_backend("bogus").err();
    let Some(Error::UnknownBackend { name, valid }) = err.clone() else {
        panic!("expected UnknownBackend, got {err:?}");
    };
    assert_eq!(name, "bogus");
    let message = err.unwrap().to_string();
    for n in ["select", "poll", "epoll", "linuxaio", "iouring", "signalfd"] {
        assert!(valid.contains(n), "{n} missing from {valid}");
        assert!(message.contains(n), "{n} missing from {message:?}");
    }
    // One bad name in a list is reported by itself.
    assert!(matches!(
        "epoll, kqueue".parse::<Flags>(),
        Err(Error::UnknownBackend { name, .. }) if name == "kqueue"
    ));
    assert_healthy();
}

#[test]
fn unavailable_backend_is_backend_unavailable() {
    let supported = gevent_core::supported_backends();
    let mut checked = 0;
    for name in ["select", "poll", "epoll", "linuxaio", "iouring"] {
        let flags: Flags = name.parse().unwrap();
        if flags.0 & supported.0 == 0 {
            assert_eq!(
                Loop::with_backend(name).err(),
                Some(Error::BackendUnavailable(name.to_owned())),
                "{name} is not in supported_backends() = {supported:?}"
            );
            checked += 1;
        }
    }
    // libev 4.33's io_uring backend trips its own assertion when its loop is destroyed,
    // so this crate never offers it.
    assert!(checked >= 1, "iouring should be unavailable");
    // A supported one gives a loop with exactly that backend.
    let lp = Loop::with_backend("poll").unwrap();
    assert_eq!(lp.backend_name(), "poll");
    drop(lp);
    assert_healthy();
}

#[test]
fn using_the_loop_from_a_cleanup_callback_during_destruction_is_loop_released() {
    let _turn = default_loop_lock();
    let lp = Loop::default_loop().unwrap();
    // `run` itself cannot be reached here: running needs a `Loop` handle, and while
    // one exists the loop is not destroyed. What a cleanup callback *can* reach is
    // checked instead: getting the loop back, starting a watcher on it, and asking for
    // the default loop again all fail cleanly.
    let results = Rc::new(RefCell::new(Vec::new()));
    let spare = lp.cleanup();
    let cleanup = lp.cleanup();
    let r = results.clone();
    cleanup
        .start(move |w, _| {
            let mut r = r.borrow_mut();
            r.push(format!("get_loop: {:?}", w.get_loop().map(|_| ())));
            r.push(format!("start: {:?}", spare.start(|_, _| {})));
            r.push(format!(
                "default_loop: {:?}",
                Loop::default_loop().map(|_| ())
            ));
        })
        .unwrap();
    drop(lp);
    assert_eq!(
        *results.borrow(),
        [
            "get_loop: None",
            "start: Err(LoopReleased)",
            "default_loop: Err(LoopReleased)",
        ]
    );
    drop(cleanup);
    // The default loop can be made again afterwards.
    let lp = Loop::default_loop().unwrap();
    assert!(lp.is_default());
    drop(lp);
    assert_healthy();
}

#[test]
fn stat_path_with_a_nul_byte_is_invalid_path() {
    let lp = Loop::new().unwrap();
    assert_eq!(
        lp.stat("/tmp/bad\0path", ZERO).err(),
        Some(Error::InvalidPath)
    );
    assert_healthy();
}
