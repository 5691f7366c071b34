//! A fork's child of a patched thread keeps a working hub: libev makes its backend
//! anew, and the thread pool (whose workers stayed in the parent) is replaced.
//!
//! A test binary of its own, and a child that starts no thread: a child forked from a
//! process whose other threads may hold locks (libc's, a thread pool's) can hang on
//! them, which no fork hook can help (POSIX allows only async-signal-safe calls in
//! such a child until it execs). The thread pool's replacement is tested without a
//! fork, by calling the child's side of the hook directly (`libc_calls.rs`).

mod common;

use common::{patched, pipe, put, take};
use gevent_hub::spawn;

#[test]
fn a_forked_child_keeps_a_working_hub() {
    let (verdict, status) = patched(|| {
        // The child says how it went here rather than by its exit status (which a
        // leak checker around the test changes: the child ends with `_exit` while its
        // thread pool's worker still runs).
        let (verdict_rd, verdict_wr) = pipe();
        // SAFETY: fork in a test thread; the child only uses its own hub, then
        // _exit()s without running the parent's destructors.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            // A child that hangs dies of SIGALRM instead of outliving the test.
            // SAFETY: alarm has no memory contract.
            unsafe { libc::alarm(30) };
            // The child: a greenlet and a cooperative sleep on the re-made backend.
            let slept = common::a_thread_sleep_lets_others_run();
            let (rd, wr) = pipe();
            let reader = spawn(move || take(&rd, 1).0);
            spawn(move || put(&wr, b"!"));
            let piped = reader.join().ok() == Some(1);
            let verdict = format!("sleep {slept}, pipe {piped}");
            put(&verdict_wr, verdict.as_bytes());
            // SAFETY: ends the child at once.
            unsafe { libc::_exit(0) };
        }
        assert!(pid > 0, "fork: {}", std::io::Error::last_os_error());
        drop(verdict_wr);
        let mut verdict = Vec::new();
        loop {
            let (n, got) = take(&verdict_rd, 256);
            if n <= 0 {
                break;
            }
            verdict.extend_from_slice(&got);
        }
        let mut status = 0;
        // SAFETY: waits for our own child.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        (String::from_utf8_lossy(&verdict).into_owned(), status)
    });
    assert_eq!(verdict, "sleep true, pipe true", "status {status:#x}");
    assert!(
        libc::WIFEXITED(status),
        "the child ended by itself: status {status:#x}"
    );
}
