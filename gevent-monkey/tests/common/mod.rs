//! What the monkey tests share: a watchdog, so that a regression (a call that blocks
//! the thread instead of parking its greenlet) fails the test instead of hanging it.

#![allow(dead_code)] // each test binary uses its own part

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::mpsc;
use std::time::Duration;

/// How long a test body may take before it counts as hung.
pub const WATCHDOG: Duration = Duration::from_secs(60);

/// Runs `body` on a thread of its own that patched everything first, and returns what
/// it returned; panics (with the body's panic, or "hung") if it panicked or did not
/// finish within [`WATCHDOG`].
pub fn patched<T: Send + 'static>(body: impl FnOnce() -> T + Send + 'static) -> T {
    on_thread(move || {
        gevent_monkey::patch_all().expect("patch_all");
        body()
    })
}

/// [`patched`] without the patch (the body patches, or checks what happens without).
pub fn on_thread<T: Send + 'static>(body: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    let h = std::thread::spawn(move || {
        let r = body();
        let _ = tx.send(());
        r
    });
    match rx.recv_timeout(WATCHDOG) {
        Ok(()) => h.join().expect("the test body panicked"),
        Err(mpsc::RecvTimeoutError::Disconnected) => match h.join() {
            Ok(_) => unreachable!("the body returned without reporting"),
            Err(p) => std::panic::resume_unwind(p),
        },
        Err(mpsc::RecvTimeoutError::Timeout) => {
            panic!("the test body hung for {WATCHDOG:?}: a call blocked its thread")
        }
    }
}

/// A connected pair of std TCP streams on loopback.
pub fn tcp_pair() -> (std::net::TcpStream, std::net::TcpStream) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let a = std::net::TcpStream::connect(l.local_addr().expect("addr")).expect("connect");
    let (b, _) = l.accept().expect("accept");
    (a, b)
}

/// `n` scaled by `GEVENT_TEST_SCALE` (valgrind's run sets it below 1), at least 1.
pub fn scaled(n: usize) -> usize {
    let scale: f64 = std::env::var("GEVENT_TEST_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0);
    ((n as f64 * scale) as usize).max(1)
}

/// Whether a greenlet's `std::thread::sleep` let another greenlet run meanwhile: the
/// sleeper reports a flag that a greenlet spawned after it sets. True only if the
/// sleep parked the sleeper (unpatched, it blocks the thread and the flag is unset).
pub fn a_thread_sleep_lets_others_run() -> bool {
    use std::cell::Cell;
    use std::rc::Rc;
    let flag = Rc::new(Cell::new(false));
    let f = flag.clone();
    let sleeper = gevent_hub::spawn(move || {
        std::thread::sleep(Duration::from_millis(1));
        f.get()
    });
    let f = flag.clone();
    gevent_hub::spawn(move || f.set(true));
    sleeper.join().unwrap_or(false)
}

/// A blocking pipe (read end, write end), as `pipe(2)` makes it.
pub fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: pipe fills the two-int array.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: both fds were just made and are ours alone.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

/// `write(2)` of `b` to `fd`.
pub fn put(fd: &OwnedFd, b: &[u8]) -> isize {
    // SAFETY: writes from a valid buffer.
    unsafe { libc::write(fd.as_raw_fd(), b.as_ptr().cast(), b.len()) }
}

/// `read(2)` of up to `n` bytes from `fd`: what it returned, and the bytes.
pub fn take(fd: &OwnedFd, n: usize) -> (isize, Vec<u8>) {
    let mut b = vec![0u8; n];
    // SAFETY: reads into a valid buffer.
    let r = unsafe { libc::read(fd.as_raw_fd(), b.as_mut_ptr().cast(), n) };
    b.truncate(r.max(0) as usize);
    (r, b)
}
