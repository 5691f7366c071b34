//! Helpers shared by the integration tests: real pipes, watchdogs that turn a hang
//! into a failure, temporary directories, signals sent to the process or the thread,
//! and the lock that serialises default-loop tests.

// Each test binary compiles this module and uses only some of it.
#![allow(dead_code)]

use gevent_core::{Loop, Timer};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// How long a loop may run before the watchdog fails the test. Generous on purpose:
/// it only exists so that a missing event fails instead of hanging (valgrind included).
pub const WATCHDOG_LIMIT: Duration = Duration::from_secs(10);

/// Starts a timer that panics (failing the test from inside `run`) if the loop is
/// still running after [`WATCHDOG_LIMIT`]. It does not keep the loop alive, so `run`
/// returns as soon as the watchers under test are done. Keep the returned handle
/// alive for as long as the loop runs.
pub fn watchdog(lp: &Loop) -> Timer {
    let t = lp.timer(WATCHDOG_LIMIT, Duration::ZERO);
    t.start(|_, _| {
        panic!("watchdog: the loop ran for {WATCHDOG_LIMIT:?} and the awaited event never came")
    })
    .expect("start the watchdog timer");
    t.set_ref(false);
    t
}

/// A non-blocking, close-on-exec pipe; both ends close when dropped.
#[derive(Debug)]
pub struct Pipe {
    pub reader: File,
    pub writer: File,
}

impl Pipe {
    pub fn new() -> Pipe {
        let mut fds = [0; 2];
        // SAFETY: pipe2 writes two descriptors into the array on success.
        let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) };
        assert_eq!(rc, 0, "pipe2: {}", io::Error::last_os_error());
        // SAFETY: both descriptors were just created and are owned by nobody else.
        let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        Pipe {
            reader: File::from(r),
            writer: File::from(w),
        }
    }

    pub fn read_fd(&self) -> RawFd {
        self.reader.as_raw_fd()
    }

    pub fn write_fd(&self) -> RawFd {
        self.writer.as_raw_fd()
    }

    pub fn write(&self, data: &[u8]) {
        (&self.writer).write_all(data).expect("write to the pipe");
    }

    /// Everything that can be read right now (the pipe is non-blocking).
    pub fn drain(&self) -> Vec<u8> {
        read_available(&self.reader)
    }
}

/// Reads whatever a non-blocking descriptor has available right now.
pub fn read_available(mut f: &File) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) => panic!("read: {e}"),
        }
    }
    out
}

/// Serialises the tests that use libev's default loop: it belongs to one thread at a
/// time, and cargo runs the tests of one binary on several threads.
pub fn default_loop_lock() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    // A test that failed while holding the lock must not fail the others.
    LOCK.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A fresh directory under the system temp dir, removed with its contents on drop.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("gevent-core-{tag}-{}-{n}", std::process::id()));
        std::fs::create_dir(&path).expect("create the temp dir");
        TempDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A 10 s timer that does not keep the loop alive and, if it ever fires, breaks every
/// nested `run` and records that it did, for tests that want to assert on a hang
/// rather than panic inside `run` (compare [`watchdog`]).
pub fn breaking_watchdog(lp: &Loop) -> (Timer, std::rc::Rc<std::cell::Cell<bool>>) {
    let fired = std::rc::Rc::new(std::cell::Cell::new(false));
    let t = lp.timer(WATCHDOG_LIMIT, Duration::ZERO);
    t.set_ref(false);
    let f = fired.clone();
    t.start(move |w, _| {
        f.set(true);
        if let Some(lp) = w.get_loop() {
            lp.break_loop(gevent_core::Break::All);
        }
    })
    .expect("start the watchdog timer");
    (t, fired)
}

/// Counts its own drops: moved into a closure, it tells when the closure was freed.
pub struct DropCount(pub std::rc::Rc<std::cell::Cell<u32>>);

impl Drop for DropCount {
    fn drop(&mut self) {
        self.0.set(self.0.get() + 1);
    }
}

/// The text of a panic payload made by `panic!("literal")` or `panic!("{}", x)`.
pub fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "<non-string payload>".to_owned()
    }
}

/// Both ends of a new close-on-exec pipe, as raw descriptors the caller closes (with
/// [`close`]) when the test needs to control exactly when.
pub fn raw_pipe() -> (RawFd, RawFd) {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    assert_eq!(rc, 0, "pipe2: {}", io::Error::last_os_error());
    (fds[0], fds[1])
}

/// Closes a descriptor from [`raw_pipe`] (or a duplicate of one).
pub fn close(fd: RawFd) {
    // SAFETY: the caller owns `fd` and never uses it again.
    let rc = unsafe { libc::close(fd) };
    assert_eq!(rc, 0, "close({fd}): {}", io::Error::last_os_error());
}

/// Sends `sig` to the whole process, as `kill -SIG <pid>` from outside would: any
/// thread may take it.
pub fn kill_self(sig: i32) {
    // SAFETY: kill only sends a signal; the caller has a watcher (or disposition) for
    // `sig` in place.
    let rc = unsafe { libc::kill(libc::getpid(), sig) };
    assert_eq!(rc, 0, "kill: {}", io::Error::last_os_error());
}

/// Sends `sig` to the calling thread: its handler has run when this returns.
pub fn raise(sig: i32) {
    // SAFETY: raise only sends a signal; the caller has a watcher (or disposition) for
    // `sig` in place.
    let rc = unsafe { libc::raise(sig) };
    assert_eq!(rc, 0, "raise: {}", io::Error::last_os_error());
}

/// A pipe whose read end stays readable (one byte written, never read). Closed on drop.
pub struct ReadablePipe {
    pub r: i32,
    pub w: i32,
}

impl ReadablePipe {
    pub fn new() -> ReadablePipe {
        let (r, w) = raw_pipe();
        // SAFETY: writes one byte from a live buffer to the pipe just made.
        assert_eq!(unsafe { libc::write(w, b"x".as_ptr().cast(), 1) }, 1);
        ReadablePipe { r, w }
    }
}

impl Drop for ReadablePipe {
    fn drop(&mut self) {
        close(self.r);
        close(self.w);
    }
}
