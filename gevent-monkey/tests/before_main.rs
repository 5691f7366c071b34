//! Calls before `main` and during a patched thread's thread-local teardown pass
//! through to libc unchanged. Its own `main` (no libtest harness): what runs before
//! `main` and after a thread's body is the point.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicIsize, Ordering};

/// What the pipe round trip before `main` returned (bytes read), or -1.
static BEFORE_MAIN: AtomicIsize = AtomicIsize::new(-2);

/// Runs before `main`, from the ELF constructors: hooked calls with nothing set up
/// (no hub, no patched thread, the real functions not looked up yet).
extern "C" fn before_main() {
    let mut fds = [0; 2];
    // SAFETY: pipe fills the array; the fds are used and closed here.
    unsafe {
        if libc::pipe(fds.as_mut_ptr()) != 0 {
            BEFORE_MAIN.store(-1, Ordering::SeqCst);
            return;
        }
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 1000,
        };
        libc::nanosleep(&ts, &mut ts);
        libc::write(fds[1], b"x".as_ptr().cast(), 1);
        let mut b = [0u8; 1];
        let r = libc::read(fds[0], b.as_mut_ptr().cast(), 1);
        libc::close(fds[0]);
        libc::close(fds[1]);
        BEFORE_MAIN.store(r, Ordering::SeqCst);
    }
}

#[used]
#[link_section = ".init_array"]
static INIT: extern "C" fn() = before_main;

/// Writes to a socket and reads the echo from its destructor, at thread-local
/// teardown of a patched thread (no hub to park on any more: the calls must block
/// for real, and complete).
struct AtTeardown(Option<(std::net::TcpStream, std::net::TcpStream)>);

impl Drop for AtTeardown {
    fn drop(&mut self) {
        if let Some((mut a, mut b)) = self.0.take() {
            // The hub is gone: nothing can park here.
            let blocking =
                gevent_hub::monkey_seam::mode() == gevent_hub::monkey_seam::Mode::Blocking;
            a.write_all(b"bye").unwrap();
            let mut got = [0u8; 3];
            b.read_exact(&mut got).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(1));
            TEARDOWN_OK.store(blocking && got == *b"bye", Ordering::SeqCst);
        }
    }
}

static TEARDOWN_OK: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

thread_local! {
    static LATE: std::cell::RefCell<AtTeardown> = const { std::cell::RefCell::new(AtTeardown(None)) };
}

fn main() {
    assert_eq!(
        BEFORE_MAIN.load(Ordering::SeqCst),
        1,
        "the pipe round trip before main"
    );
    std::thread::spawn(|| {
        // Registered before the hub's exit guard, so destroyed after it (thread-local
        // destructors run newest first): when it runs, the hub is gone.
        LATE.with(|_| ());
        gevent_monkey::patch_all().unwrap();
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let a = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (b, _) = l.accept().unwrap();
        // A cooperative read first, so the hooks made the socket non-blocking.
        let w = gevent_hub::spawn({
            let a = a.try_clone().unwrap();
            move || (&a).write_all(b"1").unwrap()
        });
        let mut one = [0u8; 1];
        (&b).read_exact(&mut one).unwrap();
        w.join().unwrap();
        LATE.with(|l| l.borrow_mut().0 = Some((a, b)));
    })
    .join()
    .unwrap();
    assert!(
        TEARDOWN_OK.load(Ordering::SeqCst),
        "the teardown's socket calls completed"
    );
    // The pipe fds are closed: a plain read of a fresh pipe still works here, unpatched.
    let mut fds = [0; 2];
    // SAFETY: pipe fills the array.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: both fds are ours.
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: a write and a read of one byte on our pipe.
    unsafe {
        assert_eq!(libc::write(w.as_raw_fd(), b"y".as_ptr().cast(), 1), 1);
        let mut b = [0u8; 1];
        assert_eq!(libc::read(r.as_raw_fd(), b.as_mut_ptr().cast(), 1), 1);
    }
    println!(
        "before_main: ok (calls before main and at a patched thread's teardown passed through)"
    );
}
