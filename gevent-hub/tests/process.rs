//! Child processes: waits and pipes park the greenlet (many children waited for at
//! once), both output pipes read at once, timeouts, exit codes and signals, EOF on a
//! closed stdin, a missing program, and a Timeout around a wait.

mod util;

use gevent_hub::process::{Command, Stdio};
use gevent_hub::{joinall, spawn, with_timeout, Error};
use std::cell::RefCell;
use std::io::{self, BufRead, Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::rc::Rc;
use std::time::Duration;
use util::{on_thread, scaled, settle, under_valgrind, with_watchdog, Counter, WATCHDOG_LIMIT};

/// `sh -c 'read x; exit 0'`: a child that runs until a line (or EOF) arrives on its
/// stdin, then exits with 0.
fn blocked_on_stdin() -> Command {
    let mut c = Command::new("sh");
    c.args(["-c", "read x; exit 0"]).stdin(Stdio::piped());
    c
}

#[test]
fn twenty_greenlets_wait_for_their_children_at_once() {
    // On a thread of its own: a wait that held the thread would hang the hub, and
    // with it any watchdog running in the hub.
    on_thread(|| {
        // Each greenlet starts a child that cannot exit before the test writes to its
        // stdin, and waits for it. If a wait held the thread, the first one would
        // never return (nothing could write): all twenty must be parked at once.
        let inputs = Rc::new(RefCell::new(Vec::new()));
        let waiting = Counter::new();
        let exited = Counter::new();
        let gs: Vec<_> = (0..20)
            .map(|_| {
                let (inputs, waiting, exited) = (inputs.clone(), waiting.clone(), exited.clone());
                spawn(move || {
                    let mut child = blocked_on_stdin().spawn().unwrap();
                    inputs.borrow_mut().push(child.stdin.take().unwrap());
                    waiting.bump();
                    let status = child.wait().unwrap();
                    exited.bump();
                    status
                })
            })
            .collect();
        settle();
        assert_eq!(waiting.get(), 20, "all twenty children started");
        assert_eq!(exited.get(), 0, "none can have exited: their stdin is open");
        for mut input in inputs.borrow_mut().drain(..) {
            input.write_all(b"go\n").unwrap();
        }
        assert!(joinall(&gs, None, false).unwrap());
        assert_eq!(exited.get(), 20);
        for g in gs {
            assert!(g.join().unwrap().success());
        }
    });
}

#[test]
fn a_ticker_runs_while_a_greenlet_waits_for_a_child() {
    with_watchdog(|| {
        let ticks = Counter::new();
        let mut child = blocked_on_stdin().spawn().unwrap();
        let input = child.stdin.take().unwrap();
        let t = ticks.clone();
        // Ticks, then lets the child go: only possible if the wait below parked.
        let ticker = spawn(move || {
            for _ in 0..3 {
                t.bump();
                gevent_hub::sleep(Duration::ZERO);
            }
            drop(input);
        });
        assert!(child.wait().unwrap().success());
        assert_eq!(ticks.get(), 3);
        ticker.join().unwrap();
    });
}

#[test]
fn output_reads_a_mebibyte_from_stdout_and_from_stderr_without_deadlock() {
    with_watchdog(|| {
        let n = scaled(1 << 20, 256 * 1024);
        // stderr first: a reader that drained stdout before stderr would stall the
        // child on a full stderr pipe.
        let script =
            format!("yes e | head -c {n} >&2; yes o | head -c {n}; yes e | head -c {n} >&2");
        let out = Command::new("sh").args(["-c", &script]).output().unwrap();
        assert!(out.status.success(), "{:?}", out.status);
        assert_eq!(out.stdout.len(), n);
        assert_eq!(out.stderr.len(), 2 * n);
        assert!(out.stdout.chunks(2).all(|c| c[0] == b'o'));
        assert!(out.stderr.chunks(2).all(|c| c[0] == b'e'));
    });
}

#[test]
fn output_leaves_stdin_null_and_status_inherits() {
    with_watchdog(|| {
        // `cat` with a null stdin ends at once.
        let out = Command::new("cat").output().unwrap();
        assert!(out.status.success());
        assert!(out.stdout.is_empty());
        // The command is reusable, and `status` after `output` does not pipe.
        let mut c = Command::new("true");
        c.output().unwrap();
        assert!(c.status().unwrap().success());
    });
}

#[test]
fn wait_timeout_returns_none_while_the_child_runs_then_its_status() {
    with_watchdog(|| {
        let mut child = blocked_on_stdin().spawn().unwrap();
        // The child cannot exit while its stdin is open, however long this waits.
        assert_eq!(child.wait_timeout(Duration::from_millis(5)).unwrap(), None);
        assert_eq!(child.wait_timeout(Duration::ZERO).unwrap(), None);
        assert_eq!(child.try_wait().unwrap(), None);
        drop(child.stdin.take());
        let status = child.wait_timeout(WATCHDOG_LIMIT).unwrap();
        assert!(status.is_some_and(|s| s.success()), "{status:?}");
        // Reaped: later calls give the same status.
        assert_eq!(child.try_wait().unwrap(), status);
        assert_eq!(child.wait().unwrap(), status.unwrap());
    });
}

#[test]
fn exit_codes_and_signals_are_reported() {
    with_watchdog(|| {
        let s = Command::new("sh").args(["-c", "exit 3"]).status().unwrap();
        assert_eq!(s.code(), Some(3));
        assert!(!s.success());
        let s = Command::new("sh")
            .args(["-c", "kill -TERM $$"])
            .status()
            .unwrap();
        assert_eq!((s.code(), s.signal()), (None, Some(libc::SIGTERM)));
        let mut child = blocked_on_stdin().spawn().unwrap();
        child.kill().unwrap();
        assert_eq!(child.wait().unwrap().signal(), Some(libc::SIGKILL));
        // Killing a reaped child is fine, as std's.
        child.kill().unwrap();
    });
}

#[test]
fn closing_piped_stdin_gives_the_child_eof() {
    with_watchdog(|| {
        let mut child = Command::new("cat")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        // More than the pipes hold: the writer and the reader must take turns.
        let data: Vec<u8> = (0..scaled(1 << 20, 256 * 1024)).map(|i| i as u8).collect();
        let input = child.stdin.take().unwrap();
        let d2 = data.clone();
        let writer = spawn(move || {
            let mut input = input;
            input.write_all(&d2).unwrap();
            // Dropped here: cat sees EOF and exits.
        });
        let mut echoed = Vec::new();
        child
            .stdout
            .take()
            .unwrap()
            .read_to_end(&mut echoed)
            .unwrap();
        writer.join().unwrap();
        assert!(echoed == data, "cat echoed what it was given");
        assert!(child.wait().unwrap().success());
    });
}

#[test]
fn stdout_can_feed_another_child() {
    with_watchdog(|| {
        let mut first = Command::new("echo")
            .arg("pipeline")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let out = Command::new("tr")
            .args(["a-z", "A-Z"])
            .stdin(first.stdout.take().unwrap())
            .output()
            .unwrap();
        assert_eq!(out.stdout, b"PIPELINE\n");
        assert!(first.wait().unwrap().success());
    });
}

#[test]
fn env_and_current_dir_reach_the_child() {
    with_watchdog(|| {
        let out = Command::new("sh")
            .args(["-c", "echo $GEVENT_X:${HOME-unset}; pwd"])
            .env_clear()
            .env("GEVENT_X", "1")
            .envs([("GEVENT_Y", "2")])
            .env_remove("GEVENT_Y")
            .current_dir("/")
            .output()
            .unwrap();
        assert_eq!(out.stdout, b"1:unset\n/\n");
    });
}

#[test]
fn spawning_a_missing_program_is_not_found_and_names_it() {
    with_watchdog(|| {
        let r = Command::new("/nonexistent/gevent-no-such-program").spawn();
        if under_valgrind() {
            // valgrind runs glibc's posix_spawn as a plain fork, so the exec's failure
            // never reaches std: the child exits with 127 instead.
            assert_eq!(r.unwrap().wait().unwrap().code(), Some(127));
            return;
        }
        let e = r.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        assert!(
            e.to_string().contains("gevent-no-such-program"),
            "the error names the program: {e}"
        );
        let e = Command::new("/nonexistent/x").output().unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
    });
}

/// A pipe: (read end, write end).
fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills the two-int array it is given.
    let r = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    assert_eq!(r, 0, "pipe2: {}", io::Error::last_os_error());
    // SAFETY: both fds were just made and are owned by nobody else.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

/// Blocks (without reaping) until `pid`, a child of this process, has exited; at once
/// if it is no child of ours (any more).
fn wait_exited_unreaped(pid: libc::pid_t) {
    // SAFETY: a zeroed siginfo_t is a valid out-parameter for waitid.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: waitid fills `info`; WNOWAIT leaves the child a zombie.
    let r = unsafe {
        libc::waitid(
            libc::P_PID,
            pid as libc::id_t,
            &mut info,
            libc::WEXITED | libc::WNOWAIT,
        )
    };
    let e = io::Error::last_os_error();
    assert!(
        r == 0 || e.raw_os_error() == Some(libc::ECHILD),
        "waitid: {e}"
    );
}

/// Whether `pid` is still a child of this process (running or a zombie).
fn is_our_child(pid: libc::pid_t) -> bool {
    // SAFETY: a zeroed siginfo_t is a valid out-parameter for waitid.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: waitid fills `info`; WNOHANG never blocks, WNOWAIT reaps nothing.
    let r = unsafe {
        libc::waitid(
            libc::P_PID,
            pid as libc::id_t,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        )
    };
    r == 0
}

#[test]
fn a_timeout_around_wait_leaves_the_child_running() {
    with_watchdog(|| {
        // cat reads a pipe of the test's (not its Child::stdin, which wait closes):
        // it cannot exit before the test closes the write end.
        let (r, w) = pipe();
        let mut child = Command::new("cat")
            .stdin(r)
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let res = with_timeout(Duration::from_millis(5), || child.wait());
        assert!(
            matches!(res, Err(Error::TimedOut)),
            "the Timeout ended the wait: {res:?}"
        );
        // The child runs on, and can still be waited for.
        assert_eq!(child.try_wait().unwrap(), None);
        drop(w);
        assert!(child.wait().unwrap().success());
        // And with wait_timeout, then kill.
        let mut child = blocked_on_stdin().spawn().unwrap();
        let res = with_timeout(Duration::from_millis(5), || {
            child.wait_timeout(WATCHDOG_LIMIT)
        });
        assert!(matches!(res, Err(Error::TimedOut)), "{res:?}");
        child.kill().unwrap();
        assert_eq!(child.wait().unwrap().signal(), Some(libc::SIGKILL));
    });
}

#[test]
fn a_killed_waiter_leaves_no_zombie() {
    with_watchdog(|| {
        let (r, w) = pipe();
        let pid = Rc::new(std::cell::Cell::new(0));
        let p2 = pid.clone();
        let waiter = spawn(move || {
            let mut child = Command::new("cat")
                .stdin(r)
                .stdout(Stdio::null())
                .spawn()
                .unwrap();
            p2.set(child.id() as libc::pid_t);
            child.wait()
        });
        settle();
        let pid = pid.get();
        assert!(pid > 0 && is_our_child(pid));
        // The kill unwinds the wait; the Child (and its pidfd) goes with the stack,
        // the child runs on until its input ends.
        waiter.kill().unwrap();
        assert!(waiter.join().is_err());
        assert!(
            is_our_child(pid),
            "dropping a Child does not reap a running child"
        );
        drop(w);
        wait_exited_unreaped(pid);
        Command::new("true").status().unwrap();
        assert!(!is_our_child(pid), "the next spawn reaped it");
    });
}

/// What this process's open fds are: each one's link (`pipe:[inode]`,
/// `anon_inode:[pidfd]`, a path) and, for a pidfd, the pid it names.
fn open_fds() -> Vec<(String, Option<libc::pid_t>)> {
    let mut fds = Vec::new();
    for e in std::fs::read_dir("/proc/self/fd").unwrap().flatten() {
        // Closed meanwhile (another test's, or read_dir's own): skipped.
        let Ok(link) = std::fs::read_link(e.path()) else {
            continue;
        };
        let info =
            std::fs::read_to_string(std::path::Path::new("/proc/self/fdinfo").join(e.file_name()))
                .unwrap_or_default();
        let pid = info
            .lines()
            .find_map(|l| l.strip_prefix("Pid:"))
            .and_then(|p| p.trim().parse().ok());
        fds.push((link.to_string_lossy().into_owned(), pid));
    }
    fds
}

#[test]
fn a_kill_during_output_leaks_no_fd_and_the_child_is_reaped_later() {
    // On a thread of its own: the test reads the child's pid with a blocking read.
    on_thread(|| {
        // The child says its pid on a pipe of the test's (its stderr), then cats a pipe
        // of the test's (its stdin) to the stdout `output` reads: it cannot end before
        // the test lets it.
        let (pid_r, pid_w) = pipe();
        let (r, w) = pipe();
        let reader = spawn(move || {
            Command::new("sh")
                .args(["-c", "echo $$ >&2; exec cat"])
                .stdin(r)
                .stderr(pid_w)
                .output()
        });
        settle();
        let mut said = String::new();
        // A short blocking read of one line (the pipe stays open: the child holds it).
        // The child has its stdout set up before it runs `sh`.
        io::BufReader::new(std::fs::File::from(pid_r))
            .read_line(&mut said)
            .unwrap();
        let pid: libc::pid_t = said.trim().parse().unwrap();
        let stdout = std::fs::read_link(format!("/proc/{pid}/fd/1")).unwrap();
        let stdout = stdout.to_string_lossy().into_owned();
        assert!(stdout.starts_with("pipe:"), "{stdout}");
        assert!(
            open_fds().iter().any(|(l, _)| *l == stdout),
            "output reads the child's stdout"
        );
        // The kill unwinds `output` from its read; the Child goes with it.
        reader.kill().unwrap();
        assert!(reader.join().is_err());
        let left: Vec<_> = open_fds()
            .into_iter()
            .filter(|(l, p)| *l == stdout || *p == Some(pid))
            .collect();
        assert!(
            left.is_empty(),
            "fds of the killed output left open: {left:?}"
        );
        // The child runs on, and is reaped by a later spawn once it has ended.
        assert!(is_our_child(pid));
        drop(w);
        wait_exited_unreaped(pid);
        Command::new("true").status().unwrap();
        assert!(!is_our_child(pid), "the next spawn reaped it");
    });
}

#[test]
fn a_dropped_child_is_reaped_by_a_later_spawn() {
    with_watchdog(|| {
        let mut child = blocked_on_stdin().spawn().unwrap();
        let pid = child.id() as libc::pid_t;
        let input = child.stdin.take();
        // Dropped while it surely runs (its stdin is open): it cannot be reaped now.
        drop(child);
        drop(input);
        wait_exited_unreaped(pid);
        Command::new("true").status().unwrap();
        assert!(!is_our_child(pid), "the spawn reaped the dropped child");
    });
}

#[test]
fn waits_use_a_pidfd_where_the_kernel_has_one() {
    with_watchdog(|| {
        // SAFETY: pidfd_open of our own pid, just to learn whether the kernel has it;
        // the fd is closed at once.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, libc::getpid(), 0) };
        if fd < 0 {
            // No pidfd here (an old kernel, valgrind): waits use the fallback's
            // thread, which the other tests then cover.
            return;
        }
        // SAFETY: the kernel just made `fd`, and nothing else owns it.
        drop(unsafe { OwnedFd::from_raw_fd(fd as i32) });
        let mut child = Command::new("true").spawn().unwrap();
        assert!(format!("{child:?}").contains("pidfd"), "{child:?}");
        assert!(child.wait().unwrap().success());
        assert!(format!("{child:?}").contains("reaped"), "{child:?}");
    });
}
