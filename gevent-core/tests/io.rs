//! `Io` watchers on real pipes and sockets: readiness fires the callback with the
//! right `revents`, and the watcher's fd and interest can change only while stopped.

mod util;

use gevent_core::{Error, Events, Loop};
use std::cell::{Cell, RefCell};
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::time::Duration;
use util::{watchdog, Pipe};

#[test]
fn read_fires_for_data_written_before_run() {
    let lp = Loop::new().unwrap();
    let _dog = watchdog(&lp);
    let pipe = Rc::new(Pipe::new());
    pipe.write(b"hello");

    let got = Rc::new(RefCell::new(None));
    let w = lp.io(pipe.read_fd(), Events::READ).unwrap();
    let (p, g) = (pipe.clone(), got.clone());
    w.start(move |w, revents| {
        *g.borrow_mut() = Some((revents, p.drain()));
        w.stop();
    })
    .unwrap();
    lp.run().unwrap();

    let (revents, data) = got.borrow_mut().take().expect("the io callback never ran");
    assert!(revents.contains(Events::READ), "{revents:?}");
    assert!(!revents.contains(Events::WRITE), "{revents:?}");
    assert_eq!(data, b"hello");
    assert!(!w.is_active());
}

#[test]
fn read_fires_when_a_timer_callback_writes_while_the_loop_runs() {
    let lp = Loop::new().unwrap();
    let _dog = watchdog(&lp);
    let pipe = Rc::new(Pipe::new());
    let written = Rc::new(Cell::new(false));

    let writer = lp.timer(Duration::from_millis(1), Duration::ZERO);
    let (p, wr) = (pipe.clone(), written.clone());
    writer
        .start(move |_, _| {
            p.write(b"x");
            wr.set(true);
        })
        .unwrap();

    let got = Rc::new(RefCell::new(Vec::new()));
    let reader = lp.io(pipe.read_fd(), Events::READ).unwrap();
    let (p, g, wr) = (pipe.clone(), got.clone(), written.clone());
    reader
        .start(move |w, revents| {
            // Readable only because the timer wrote: the pipe was empty before.
            assert!(wr.get(), "READ fired before anything was written");
            assert!(revents.contains(Events::READ), "{revents:?}");
            g.borrow_mut().extend(p.drain());
            w.stop();
        })
        .unwrap();
    lp.run().unwrap();
    assert_eq!(*got.borrow(), b"x");
}

#[test]
fn read_does_not_fire_on_an_empty_pipe() {
    let lp = Loop::new().unwrap();
    let pipe = Pipe::new();
    let calls = Rc::new(Cell::new(0));
    let w = lp.io(pipe.read_fd(), Events::READ).unwrap();
    let c = calls.clone();
    w.start(move |_, _| c.set(c.get() + 1)).unwrap();

    for _ in 0..3 {
        lp.run_nowait().unwrap();
    }
    assert_eq!(calls.get(), 0, "READ fired with nothing to read");

    pipe.write(b"!");
    let _dog = watchdog(&lp);
    lp.run_once().unwrap();
    assert_eq!(calls.get(), 1);
}

#[test]
fn read_is_level_triggered_until_the_data_is_consumed() {
    let lp = Loop::new().unwrap();
    let _dog = watchdog(&lp);
    let pipe = Rc::new(Pipe::new());
    pipe.write(b"unread");
    let calls = Rc::new(Cell::new(0));
    let w = lp.io(pipe.read_fd(), Events::READ).unwrap();
    let (c, p) = (calls.clone(), pipe.clone());
    w.start(move |w, _| {
        c.set(c.get() + 1);
        // Never reading means the fd stays readable: libev reports it every iteration.
        if c.get() == 3 {
            assert_eq!(p.drain(), b"unread");
            w.stop();
        }
    })
    .unwrap();
    lp.run().unwrap();
    assert_eq!(calls.get(), 3);
}

#[test]
fn read_fires_at_end_of_file() {
    let lp = Loop::new().unwrap();
    let _dog = watchdog(&lp);
    let Pipe { reader, writer } = Pipe::new();
    drop(writer);
    let seen = Rc::new(Cell::new(Events::NONE));
    let w = lp.io(reader.as_raw_fd(), Events::READ).unwrap();
    let s = seen.clone();
    w.start(move |w, revents| {
        s.set(revents);
        w.stop();
    })
    .unwrap();
    lp.run().unwrap();
    assert!(seen.get().contains(Events::READ), "{:?}", seen.get());
    assert!(util::read_available(&reader).is_empty());
}

#[test]
fn write_fires_on_a_writable_pipe_end() {
    let lp = Loop::new().unwrap();
    let _dog = watchdog(&lp);
    let pipe = Rc::new(Pipe::new());
    let seen = Rc::new(Cell::new(Events::NONE));
    let w = lp.io(pipe.write_fd(), Events::WRITE).unwrap();
    let (s, p) = (seen.clone(), pipe.clone());
    w.start(move |w, revents| {
        s.set(revents);
        p.write(b"fits");
        w.stop();
    })
    .unwrap();
    lp.run().unwrap();
    assert!(seen.get().contains(Events::WRITE), "{:?}", seen.get());
    assert!(!seen.get().contains(Events::READ), "{:?}", seen.get());
    assert_eq!(pipe.drain(), b"fits");
}

#[test]
fn revents_hold_only_the_ready_directions() {
    let lp = Loop::new().unwrap();
    let _dog = watchdog(&lp);
    let (a, mut b) = UnixStream::pair().unwrap();
    a.set_nonblocking(true).unwrap();
    let seen = Rc::new(RefCell::new(Vec::new()));
    let w = lp.io(a.as_raw_fd(), Events::READ | Events::WRITE).unwrap();
    let s = seen.clone();
    w.start(move |w, revents| {
        s.borrow_mut().push(revents);
        w.stop();
    })
    .unwrap();

    // Nothing to read yet: only WRITE is ready.
    lp.run().unwrap();
    // Now both directions are.
    b.write_all(b"ping").unwrap();
    let s = seen.clone();
    w.start(move |w, revents| {
        s.borrow_mut().push(revents);
        w.stop();
    })
    .unwrap();
    lp.run().unwrap();

    assert_eq!(
        *seen.borrow(),
        [Events::WRITE, Events::READ | Events::WRITE],
        "revents per run"
    );
}

#[test]
fn fd_and_events_report_what_the_watcher_was_made_with() {
    let lp = Loop::new().unwrap();
    let pipe = Pipe::new();
    let w = lp.io(pipe.read_fd(), Events::READ).unwrap();
    assert_eq!(w.fd(), pipe.read_fd());
    assert_eq!(w.events(), Events::READ);
    let both = lp
        .io(pipe.write_fd(), Events::READ | Events::WRITE)
        .unwrap();
    assert_eq!(both.fd(), pipe.write_fd());
    assert_eq!(both.events(), Events::READ | Events::WRITE);
}

#[test]
fn set_and_set_events_are_refused_while_active() {
    let lp = Loop::new().unwrap();
    let a = Pipe::new();
    let b = Pipe::new();
    let w = lp.io(a.read_fd(), Events::READ).unwrap();
    w.start(|_, _| {}).unwrap();

    assert!(matches!(
        w.set(b.read_fd(), Events::READ),
        Err(Error::WatcherActive(_))
    ));
    assert!(matches!(
        w.set_events(Events::READ | Events::WRITE),
        Err(Error::WatcherActive(_))
    ));
    // Nothing changed, and the watcher is still running.
    assert_eq!((w.fd(), w.events()), (a.read_fd(), Events::READ));
    assert!(w.is_active());

    w.stop();
    w.set(b.write_fd(), Events::WRITE).unwrap();
    assert_eq!((w.fd(), w.events()), (b.write_fd(), Events::WRITE));
    w.set_events(Events::READ | Events::WRITE).unwrap();
    assert_eq!(w.events(), Events::READ | Events::WRITE);
}

#[test]
fn a_stopped_watcher_set_to_another_fd_fires_for_that_fd() {
    let lp = Loop::new().unwrap();
    let _dog = watchdog(&lp);
    let first = Pipe::new();
    let second = Rc::new(Pipe::new());
    // Data on the old fd must not wake the re-pointed watcher.
    first.write(b"old");
    second.write(b"new");

    let w = lp.io(first.write_fd(), Events::WRITE).unwrap();
    w.set(second.read_fd(), Events::READ).unwrap();
    let got = Rc::new(RefCell::new(None));
    let (g, p) = (got.clone(), second.clone());
    w.start(move |w, revents| {
        *g.borrow_mut() = Some((w.fd(), revents, p.drain()));
        w.stop();
    })
    .unwrap();
    lp.run().unwrap();

    let (fd, revents, data) = got.borrow_mut().take().expect("callback never ran");
    assert_eq!(fd, second.read_fd());
    assert!(revents.contains(Events::READ));
    assert_eq!(data, b"new");
    assert_eq!(first.drain(), b"old");
}

#[test]
fn bad_fds_and_masks_are_errors() {
    let lp = Loop::new().unwrap();
    assert_eq!(lp.io(-1, Events::READ).unwrap_err(), Error::NegativeFd(-1));

    let closed = never_open_fd();
    assert_eq!(
        lp.io(closed, Events::READ).unwrap_err(),
        Error::ClosedFd(closed)
    );

    let pipe = Pipe::new();
    assert_eq!(
        lp.io(pipe.read_fd(), Events::TIMER).unwrap_err(),
        Error::InvalidEvents(Events::TIMER.bits())
    );
    let w = lp.io(pipe.read_fd(), Events::READ).unwrap();
    assert_eq!(w.set(-3, Events::READ).unwrap_err(), Error::NegativeFd(-3));
    assert!(matches!(
        w.set_events(Events::READ | Events::SIGNAL),
        Err(Error::InvalidEvents(_))
    ));
    // A rejected change leaves the watcher as it was.
    assert_eq!((w.fd(), w.events()), (pipe.read_fd(), Events::READ));
}

/// A descriptor number above any possible limit (the kernel caps fds at `nr_open`,
/// at most 2^30), so it is closed whatever other threads open meanwhile.
fn never_open_fd() -> i32 {
    i32::MAX
}

/// ev.pod's "special problem of disappearing file descriptors": the program closes an
/// fd while its watcher is active. libev must not abort; the watcher is stopped and its
/// callback told with `ERROR`, and stopping or dropping it afterwards is harmless.
#[test]
fn an_fd_closed_behind_an_active_watcher_is_reported_not_fatal() {
    for backend in closed_fd_backends() {
        let lp = Loop::with_backend(backend).unwrap();
        let pipe = read_end_at(Pipe::new(), 703);
        let w = lp.io(pipe.read_fd(), Events::READ).unwrap();
        let seen = Rc::new(Cell::new(Events::NONE));
        let s2 = seen.clone();
        w.start(move |w, ev| {
            s2.set(ev);
            w.stop();
        })
        .unwrap();
        drop(pipe); // closes the fd while the watcher is active
        let _dog = watchdog(&lp);
        lp.run().unwrap();
        assert!(
            seen.get().contains(Events::ERROR),
            "{backend}: callback saw {:?}",
            seen.get()
        );
        assert!(!w.is_active());
        drop(w);
        // The loop is still healthy.
        let t = lp.timer(Duration::ZERO, Duration::ZERO);
        let fired = Rc::new(Cell::new(false));
        let f2 = fired.clone();
        t.start(move |_, _| f2.set(true)).unwrap();
        lp.run().unwrap();
        assert!(fired.get(), "{backend}");
    }
}

/// Moves `pipe`'s read end to descriptor number `at`. The closed- and reused-fd tests
/// need a number that no other test thread is handed while it is free: the kernel
/// allocates the lowest free number, and this binary never has hundreds open.
fn read_end_at(pipe: Pipe, at: RawFd) -> Pipe {
    // SAFETY: F_GETFD only reads the descriptor flags.
    assert_eq!(
        unsafe { libc::fcntl(at, libc::F_GETFD) },
        -1,
        "fd {at} in use"
    );
    // SAFETY: duplicates a live descriptor onto a number nobody owns (checked above).
    let fd = unsafe { libc::dup3(pipe.read_fd(), at, libc::O_CLOEXEC) };
    assert_eq!(fd, at, "dup3: {}", std::io::Error::last_os_error());
    // SAFETY: `at` was just created by dup3 and is owned by nobody else.
    let reader = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(at) });
    Pipe {
        reader,
        writer: pipe.writer,
    }
}

/// The backends this kernel and build offer, by name.
fn backends() -> Vec<&'static str> {
    let have = gevent_core::supported_backends().backends();
    ["epoll", "poll", "select"]
        .into_iter()
        .filter(|n| have & n.parse::<gevent_core::Flags>().unwrap().backends() != 0)
        .collect()
}

/// The backends for the tests that close an fd behind a watcher. With libev's own
/// assertions on (the `libev-asserts` feature) only select is left: where the default
/// build stops such a watcher with `ERROR`, libev asserts in the epoll backend (EBADF
/// from `epoll_ctl`: "libev: I/O watcher with invalid fd found in epoll_ctl") and in
/// the poll backend (`POLLNVAL`: "libev: poll found invalid fd in poll set"). libev
/// calls closing an fd under a watcher a program error by design, and the safe layer
/// could pre-empt it only with an `fcntl` per changed fd per loop iteration.
fn closed_fd_backends() -> Vec<&'static str> {
    let asserts = cfg!(feature = "libev-asserts");
    backends()
        .into_iter()
        .filter(|&b| !asserts || b == "select")
        .collect()
}

/// ev.pod's disappearing fds, on the socket path: a watcher is disarmed, its fd closed,
/// and the watcher re-armed (which skips the fd check). The kernel forgot the closed
/// fd, so libev must ask it again: the callback gets `ERROR` and the watcher stops,
/// instead of waiting forever on an fd that can never fire.
#[test]
fn rearming_a_watcher_whose_fd_was_closed_reports_error() {
    for backend in closed_fd_backends() {
        let lp = Loop::with_backend(backend).unwrap();
        let pipe = read_end_at(Pipe::new(), 701);
        let w = lp.io(pipe.read_fd(), Events::READ).unwrap();
        let seen = Rc::new(RefCell::new(Vec::new()));
        let s = seen.clone();
        w.start(move |_, revents| s.borrow_mut().push(revents))
            .unwrap();
        lp.run_nowait().unwrap(); // the fd is now registered with the backend
        assert!(seen.borrow().is_empty(), "{backend}: READ on an empty pipe");

        w.disarm();
        drop(pipe); // closes fd 701
        w.rearm().unwrap();
        let (_dog, hung) = util::breaking_watchdog(&lp);
        lp.run().unwrap();

        assert!(!hung.get(), "{backend}: run never returned");
        let seen = seen.borrow();
        assert_eq!(seen.len(), 1, "{backend}: callback saw {seen:?}");
        assert!(seen[0].contains(Events::ERROR), "{backend}: {seen:?}");
        assert!(!w.is_active(), "{backend}: still active");
    }
}

/// A watcher stopped, its fd closed and the number handed to a new pipe, then started
/// again in the same loop iteration: it watches the new pipe (libev's fd bookkeeping
/// looks unchanged, but the kernel dropped the old registration on close).
#[test]
fn a_watcher_restarted_on_a_reused_fd_number_sees_the_new_file() {
    for backend in backends() {
        let lp = Loop::with_backend(backend).unwrap();
        let first = read_end_at(Pipe::new(), 702);
        let w = lp.io(first.read_fd(), Events::READ).unwrap();
        w.start(|_, _| panic!("the first pipe never has data"))
            .unwrap();
        lp.run_nowait().unwrap(); // the fd is now registered with the backend

        w.stop();
        drop(first); // closes fd 702 ...
        let second = Rc::new(read_end_at(Pipe::new(), 702)); // ... and reuses it
        second.write(b"new");
        let got = Rc::new(RefCell::new(None));
        let (g, p) = (got.clone(), second.clone());
        w.start(move |w, revents| {
            *g.borrow_mut() = Some((revents, p.drain()));
            w.stop();
        })
        .unwrap();
        let (_dog, hung) = util::breaking_watchdog(&lp);
        lp.run().unwrap();

        assert!(
            !hung.get(),
            "{backend}: the new pipe's data was never reported"
        );
        let (revents, data) = got.borrow_mut().take().expect("callback never ran");
        assert!(revents.contains(Events::READ), "{backend}: {revents:?}");
        assert_eq!(data, b"new", "{backend}");
    }
}
