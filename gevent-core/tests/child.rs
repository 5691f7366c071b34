//! `Child` watchers with real child processes, and the default-loop policy around them:
//! child reaping is opt-in, so `std::process` keeps working while the default loop
//! exists, and the default loop belongs to one thread at a time.
//!
//! Every test that touches the default loop holds `default_loop_lock()` (declared
//! first, so it is released after every handle and watcher of the test is dropped).

mod util;

use gevent_core::{Error, Events, Loop};
use std::cell::{Cell, RefCell};
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::rc::Rc;
use std::thread;
use std::time::Duration;
use util::{default_loop_lock, watchdog};

fn spawn_sh(script: &str) -> std::process::Child {
    Command::new("sh")
        .args(["-c", script])
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn sh")
}

/// Spawns `sh -c script` for a child watcher and returns its pid. std never waits for
/// it: libev reaps it, which is what the tests check.
#[allow(clippy::zombie_processes)]
fn spawn_for_libev(script: &str) -> i32 {
    spawn_sh(script).id() as i32
}

/// Blocks until `pid` has exited, without reaping it (`waitid` with `WNOWAIT`).
fn wait_until_exited_not_reaped(pid: u32) {
    // SAFETY: siginfo_t is plain data; waitid fills it in.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: plain syscall on our own child.
    let rc = unsafe {
        libc::waitid(
            libc::P_PID,
            pid as libc::id_t,
            &mut info,
            libc::WEXITED | libc::WNOWAIT,
        )
    };
    assert_eq!(rc, 0, "waitid: {}", std::io::Error::last_os_error());
}

#[test]

fn child_exit_reports_rpid_and_status() {
    let _guard = default_loop_lock();
    let lp = Loop::default_loop().unwrap();
    let _dog = watchdog(&lp);
    let pid = spawn_for_libev("exit 3");

    let w = lp.child(pid, false).unwrap();
    assert_eq!(w.pid(), pid);
    let seen = Rc::new(RefCell::new(None));
    let s = seen.clone();
    w.start(move |w, revents| {
        *s.borrow_mut() = Some((revents, w.rpid(), w.rstatus(), w.exit_status()));
        w.stop();
    })
    .unwrap();
    lp.run().unwrap();

    let (revents, rpid, rstatus, status) = seen.borrow_mut().take().expect("no child event");
    assert_eq!(revents, Events::CHILD);
    assert_eq!(rpid, pid);
    assert!(libc::WIFEXITED(rstatus) && libc::WEXITSTATUS(rstatus) == 3);
    assert_eq!(status.code(), Some(3));
    assert!(!status.success());
}

#[test]

fn child_killed_by_a_signal_reports_the_signal() {
    let _guard = default_loop_lock();
    let lp = Loop::default_loop().unwrap();
    let _dog = watchdog(&lp);
    let pid = spawn_for_libev("kill -TERM $$");
    let w = lp.child(pid, false).unwrap();
    let status = Rc::new(Cell::new(None));
    let s = status.clone();
    w.start(move |w, _| {
        s.set(Some(w.exit_status()));
        w.stop();
    })
    .unwrap();
    lp.run().unwrap();
    let status = status.get().expect("no child event");
    assert_eq!(status.signal(), Some(libc::SIGTERM));
    assert_eq!(status.code(), None);
}

#[test]

fn child_that_exited_before_the_watcher_started_is_reported() {
    let _guard = default_loop_lock();
    let lp = Loop::default_loop().unwrap();
    let _dog = watchdog(&lp);
    let pid = spawn_for_libev("exit 0");
    // Its SIGCHLD came and went before anyone listened.
    wait_until_exited_not_reaped(pid as u32);

    let w = lp.child(pid, false).unwrap();
    let seen = Rc::new(Cell::new(None));
    let s = seen.clone();
    w.start(move |w, _| {
        s.set(Some((w.rpid(), w.exit_status().success())));
        w.stop();
    })
    .unwrap();
    lp.run().unwrap();
    assert_eq!(seen.get(), Some((pid, true)));
}

#[test]

fn pid_zero_watches_any_child() {
    let _guard = default_loop_lock();
    let lp = Loop::default_loop().unwrap();
    let _dog = watchdog(&lp);
    let w = lp.child(0, false).unwrap();
    assert_eq!(w.pid(), 0);
    let seen = Rc::new(Cell::new(None));
    let s = seen.clone();
    w.start(move |w, _| {
        s.set(Some((w.rpid(), w.exit_status().code())));
        w.stop();
    })
    .unwrap();
    let pid = spawn_for_libev("exit 5");
    lp.run().unwrap();
    assert_eq!(seen.get(), Some((pid, Some(5))));
}

#[test]

fn trace_reports_stops_and_continues_too() {
    let _guard = default_loop_lock();
    let lp = Loop::default_loop().unwrap();
    let _dog = watchdog(&lp);
    let pid = spawn_for_libev("kill -STOP $$; exit 7");

    // Two watchers on the same child: only the traced one hears about the stop.
    let traced_log = Rc::new(RefCell::new(Vec::new()));
    let plain_log = Rc::new(RefCell::new(Vec::new()));
    let traced = lp.child(pid, true).unwrap();
    let plain = lp.child(pid, false).unwrap();
    let log = traced_log.clone();
    traced
        .start(move |w, _| {
            let st = w.rstatus();
            log.borrow_mut().push(st);
            if libc::WIFSTOPPED(st) {
                // SAFETY: plain syscall on our own (stopped, unreaped) child.
                assert_eq!(unsafe { libc::kill(pid, libc::SIGCONT) }, 0);
            } else if libc::WIFEXITED(st) {
                w.stop();
            }
        })
        .unwrap();
    let log = plain_log.clone();
    plain
        .start(move |w, _| {
            log.borrow_mut().push(w.rstatus());
            w.stop();
        })
        .unwrap();
    lp.run().unwrap();

    let traced_log = traced_log.borrow();
    let first = traced_log[0];
    let last = *traced_log.last().unwrap();
    assert!(
        libc::WIFSTOPPED(first) && libc::WSTOPSIG(first) == libc::SIGSTOP,
        "{traced_log:?}"
    );
    assert!(
        libc::WIFEXITED(last) && libc::WEXITSTATUS(last) == 7,
        "{traced_log:?}"
    );
    // In between at most a "continued" report (Linux may fold it into the exit).
    assert!(traced_log.len() <= 3, "{traced_log:?}");
    if traced_log.len() == 3 {
        assert!(libc::WIFCONTINUED(traced_log[1]), "{traced_log:?}");
    }
    let plain_log = plain_log.borrow();
    assert_eq!(plain_log.len(), 1, "{plain_log:?}");
    assert!(libc::WIFEXITED(plain_log[0]));
}

#[test]

fn std_process_keeps_working_while_the_default_loop_exists() {
    let _guard = default_loop_lock();
    let lp = Loop::default_loop().unwrap();
    lp.run_nowait().unwrap();
    assert!(Command::new("true").status().unwrap().success());

    // A child that exits while the loop is iterating is left for std to reap: plain
    // libev would have taken it with waitpid(-1), and `wait` would fail with ECHILD.
    let mut child = spawn_sh("exit 4");
    wait_until_exited_not_reaped(child.id());
    for _ in 0..3 {
        lp.run_nowait().unwrap();
    }
    assert_eq!(child.wait().unwrap().code(), Some(4));

    // From inside a callback of the running loop, too.
    let inside = Rc::new(Cell::new(None));
    let prepare = lp.prepare();
    let i = inside.clone();
    prepare
        .start(move |w, _| {
            i.set(Some(Command::new("true").status().unwrap().success()));
            w.stop();
        })
        .unwrap();
    lp.run_nowait().unwrap();
    assert_eq!(inside.get(), Some(true));

    // A child watcher that exists but is not started changes nothing.
    let unstarted = lp.child(0, false).unwrap();
    assert!(Command::new("true").status().unwrap().success());

    // Nor does one that was started and stopped again: reaping stops with it.
    unstarted.start(|_, _| {}).unwrap();
    unstarted.stop();
    let mut child = spawn_sh("exit 6");
    wait_until_exited_not_reaped(child.id());
    for _ in 0..3 {
        lp.run_nowait().unwrap();
    }
    assert_eq!(child.wait().unwrap().code(), Some(6));
}

#[test]
fn child_watchers_need_the_default_loop() {
    let lp = Loop::new().unwrap();
    assert!(!lp.is_default());
    assert_eq!(lp.child(0, false).unwrap_err(), Error::ChildOffDefaultLoop);
    assert_eq!(lp.child(1, true).unwrap_err(), Error::ChildOffDefaultLoop);
}

#[test]
fn negative_pids_are_errors() {
    let _guard = default_loop_lock();
    let lp = Loop::default_loop().unwrap();
    assert_eq!(lp.child(-1, false).unwrap_err(), Error::InvalidPid(-1));
}

#[test]
fn the_default_loop_belongs_to_one_thread_at_a_time() {
    let _guard = default_loop_lock();
    let other_thread = || {
        thread::spawn(|| Loop::default_loop().map(|l| l.is_default()))
            .join()
            .unwrap()
    };

    let lp = Loop::default_loop().unwrap();
    assert!(lp.is_default());
    // Asking again on the owning thread gives the same loop.
    assert_eq!(Loop::default_loop().unwrap().as_raw(), lp.as_raw());
    assert_eq!(other_thread(), Err(Error::DefaultLoopInUse));

    // A watcher keeps the loop, and with it the ownership, alive.
    let t = lp.timer(Duration::from_secs(60), Duration::ZERO);
    drop(lp);
    assert_eq!(other_thread(), Err(Error::DefaultLoopInUse));
    drop(t);

    // Everything dropped: another thread may take it (and gives it back on exit).
    assert_eq!(other_thread(), Ok(true));
    let again = Loop::default_loop().unwrap();
    assert!(again.is_default());
}

#[test]

fn a_recreated_default_loop_has_no_phantom_watchers() {
    let _guard = default_loop_lock();
    for round in 0..3 {
        let lp = Loop::default_loop().unwrap();
        // Nothing is active, so one iteration reports that nothing is left to do.
        assert!(
            !lp.run_nowait().unwrap(),
            "round {round}: libev counts active watchers that do not exist"
        );
    }
}
