//! gevent's `monkey.patch_all()` for Rust: unmodified blocking code — `std::net`,
//! `std::thread::sleep`, `to_socket_addrs`, and the crates that open their own
//! sockets (redis, ureq, tungstenite, ...) — made cooperative on the calling thread's
//! hub.
//!
//! ```no_run
//! use std::io::{Read, Write};
//! use std::net::TcpListener;
//!
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     gevent_monkey::patch_all()?;
//!     // From here on, the std program below runs one greenlet per client, on one
//!     // OS thread: each blocking call parks its greenlet instead of the thread.
//!     let listener = TcpListener::bind("127.0.0.1:4000")?;
//!     for conn in listener.incoming() {
//!         let mut conn = conn?;
//!         gevent_hub::spawn(move || {
//!             let mut buf = [0u8; 1024];
//!             while let Ok(n @ 1..) = conn.read(&mut buf) {
//!                 if conn.write_all(&buf[..n]).is_err() {
//!                     break;
//!                 }
//!             }
//!         });
//!     }
//!     Ok(())
//! }
//! ```
//!
//! # How it works
//! The crate defines libc's blocking entry points — `read`, `write`, `recv`, `send`,
//! `accept`, `connect`, `poll`, `select`, `clock_nanosleep`, `getaddrinfo`, `close`
//! and the others listed below — as `#[no_mangle] extern "C"` functions. Once the
//! crate is linked into a binary, every call to those names in the binary (std's, and
//! every crate's) reaches these definitions instead of libc's, and so do the shared
//! libraries the process loads (the executable exports a definition that libc also
//! has). The real function is found with `dlsym(RTLD_NEXT, ..)` and cached.
//!
//! A hook parks the calling greenlet on the hub's fd-keyed readiness core (the one
//! `gevent_hub::net` uses) only when all of these hold; otherwise it makes the real
//! call, unchanged:
//! - the calling thread patched that family ([`patch_all`], [`patch_socket`],
//!   [`patch_sleep`], [`patch_dns`], [`patch_select`]): threads that never patch —
//!   thread-pool workers, plain std threads, libtest's threads — are untouched;
//! - the caller is a greenlet of a running hub (the main greenlet counts), not the
//!   hub itself (libev's own `read` of its eventfd), not during the thread's
//!   teardown, not while a panic unwinds;
//! - the fd is a socket or a pipe, not fd 0, 1 or 2 (parking inside a `println!`
//!   would leave std's stdout lock taken), and its user did not make it non-blocking
//!   (`set_nonblocking(true)`, `O_NONBLOCK`, `SOCK_NONBLOCK`: they still get
//!   `EAGAIN`), and the call did not ask `MSG_DONTWAIT`.
//!
//! To park, a hook sets `O_NONBLOCK` on the file the first time it would block. The
//! user's view stays libc's: `fcntl(F_GETFL)` does not show the flag, and a blocking
//! call on such a file from a thread that did not patch still blocks (the hook waits
//! out the `EAGAIN` with the real `poll`). `SO_RCVTIMEO`/`SO_SNDTIMEO` become the
//! waits' timeouts, failing with libc's `EAGAIN` (std: `WouldBlock`). Name lookups
//! run on the hub's thread pool, as gevent's threaded resolver. `close`, `dup2` and
//! `dup3` wake the fd's waiters (`EBADF`) and forget its state before the number can
//! be reused; `fork` tells the child's hub.
//!
//! # Kills and timeouts in a patched call
//! A greenlet parked in a hook has C frames below it (std's or a C library's), and
//! nothing may unwind through them. A kill or a [`Timeout`](gevent_hub::Timeout)
//! that lands there makes the call fail instead — socket calls and `poll`/`select`
//! with `ECANCELED` (a kill) or `ETIMEDOUT` (a `Timeout`), lookups with `EAI_SYSTEM`
//! and that `errno`, sleeps by returning early as if completed — and stays pending:
//! it is delivered, as the same kill or `Timeout`, at the greenlet's next blocking
//! point in Rust (any `gevent_hub` wait), at the end of the
//! [`with_timeout`](gevent_hub::with_timeout) it belongs to, or when the greenlet's
//! function returns (its outcome is then `Killed`). Until then every hooked call that
//! would park fails at once, so the code unwinds its own way, through its errors.
//! (`EINTR` is not used: std and most C code retry on it.)
//!
//! # What stays blocking
//! - Raw system calls (rustix's linux_raw backend, io_uring, `libc::syscall`), glibc's
//!   internal calls (its resolver's own sockets, `fclose` of an `fdopen`ed socket),
//!   libraries loaded with `RTLD_DEEPBIND`, and `epoll_wait` (a mio or tokio runtime
//!   inside a greenlet blocks the thread).
//! - `std::thread::spawn` stays an OS thread: nothing patches pthreads. Spawn
//!   greenlets with [`gevent_hub::spawn`] (the import swap of
//!   `examples/echo_monkey.rs`).
//! - `pselect`, and `ppoll` with a signal mask (the mask cannot be applied around a
//!   park); `recvmmsg`/`sendmmsg`, `splice`, `copy_file_range`.
//! - fd numbers above 2^20 (beyond the hooks' table).
//!
//! # Hazards
//! - **Locks held across a patched call.** A greenlet holding a `std::sync::Mutex`
//!   (or `RwLock`, `parking_lot`'s) across a call that parks, and another greenlet of
//!   the same thread locking it, deadlock the thread: the second blocks the OS thread
//!   in the kernel, and the first can never be resumed to unlock. gevent patches its
//!   locks; Rust cannot. Use `gevent_hub::sync::Lock` between greenlets, or hold no
//!   lock across I/O. The crate watches for it: std waits for a contended lock with a
//!   futex, through libc's `syscall`, which is hooked too; a greenlet of a patched
//!   thread that waits there is logged (a warning through `log`, naming the greenlet,
//!   at most one a second per thread) and counted ([`lock_waits`]). The blocking
//!   monitor (`gevent_hub::monitor`) names the greenlet that holds the hub as well.
//! - **Two greenlets on one fd and direction** are allowed (as two threads would
//!   be); the second waits on a watcher of its own.
//! - **The hooks' `O_NONBLOCK` is on the file**: unhooked calls on it (`splice`, raw
//!   syscalls) and a child process that inherits the socket see it non-blocking.
//! - **An fd closed behind libc's `close`** (a raw syscall) while a greenlet of this
//!   thread remembers it, then reused, may leave that remembered state stale.
//!
//! # Linking
//! Each binary and each test target must use this crate for its hooks to be in it:
//! an integration test that never names `gevent_monkey` is not linked with it. The
//! patch functions are the only way in, so calling one is what links it; the facade
//! re-exports it as `gevent::monkey` behind the cargo feature `monkey`.

#![deny(missing_docs, rust_2018_idioms, unsafe_op_in_unsafe_fn)]

mod dns;
mod errno;
mod fd;
mod fdmeta;
mod io;
mod lock;
mod real;
mod select;
mod sleep;

use std::cell::Cell;
use std::fmt;

/// The families a thread can patch (bits of its mask).
pub(crate) struct Patch;

impl Patch {
    pub(crate) const SOCKET: u8 = 1;
    pub(crate) const SLEEP: u8 = 2;
    pub(crate) const DNS: u8 = 4;
    pub(crate) const SELECT: u8 = 8;
    const ALL: u8 = Self::SOCKET | Self::SLEEP | Self::DNS | Self::SELECT;
}

thread_local! {
    // No destructor: the hooks read it at any time, the thread's teardown included.
    static PATCHED: Cell<u8> = const { Cell::new(0) };
}

/// True if the calling thread patched `family`.
#[inline(always)]
pub(crate) fn patched(family: u8) -> bool {
    PATCHED.try_with(|p| p.get() & family != 0).unwrap_or(false)
}

/// Whether a hooked call of `family` parks its caller: `Ok(())`; `Err(None)`: make
/// the real call (the thread did not patch the family; the caller is the hub, has no
/// hub, or the thread is ending); `Err(Some(stop))`: fail at once (a kill or Timeout
/// is pending for the caller, see the crate docs).
#[inline(always)]
pub(crate) fn parks(family: u8) -> Result<(), Option<gevent_hub::monkey_seam::Stop>> {
    use gevent_hub::monkey_seam::{mode, Mode};
    if !patched(family) {
        return Err(None);
    }
    match mode() {
        Mode::Cooperative => Ok(()),
        Mode::Blocking => Err(None),
        Mode::Interrupted(s) => Err(Some(s)),
    }
}

/// True if the calling thread patched anything.
#[inline]
pub(crate) fn patched_any() -> bool {
    PATCHED.try_with(|p| p.get() != 0).unwrap_or(false)
}

/// Why patching failed.
#[derive(Debug)]
pub enum Error {
    /// The calling thread's hub could not be made.
    Hub(gevent_hub::Error),
    /// Calls in this binary do not reach the hooks (the symbol `recv` resolves
    /// elsewhere): the binary was linked in a way the crate does not support.
    NotInterposed,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Hub(e) => write!(f, "cannot patch this thread: its hub: {e}"),
            Error::NotInterposed => f.write_str(
                "gevent-monkey's hooks are not in effect in this binary: calls to libc's \
                 `recv` do not reach them (statically linked libc? another definition?)",
            ),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Hub(e) => Some(e),
            Error::NotInterposed => None,
        }
    }
}

fn patch(families: u8) -> Result<(), Error> {
    // The address the binary's calls to `recv` reach: ours, if the hooks are linked.
    let reached = libc::recv as *const () as usize;
    if reached != io::recv as *const () as usize {
        return Err(Error::NotInterposed);
    }
    gevent_hub::monkey_seam::ensure_hub().map_err(Error::Hub)?;
    real::resolve_all();
    lock::resolve();
    PATCHED.with(|p| p.set(p.get() | families));
    Ok(())
}

/// Makes the calling thread's blocking calls cooperative: sockets and pipes, sleeps,
/// name lookups, `poll`/`select` (gevent's `monkey.patch_all()`). Call it at the top
/// of `main` (or of a thread that runs a hub); it makes the thread's hub if needed.
/// Idempotent; other threads are not affected.
///
/// # Errors
/// [`Error::Hub`] if the hub cannot be made; [`Error::NotInterposed`] if the hooks
/// are not in effect in this binary.
pub fn patch_all() -> Result<(), Error> {
    patch(Patch::ALL)
}

/// Sockets and pipes only: `read`/`write`, `recv*`/`send*`, `accept`, `connect`
/// (gevent's `patch_socket`).
///
/// # Errors
/// As [`patch_all`].
pub fn patch_socket() -> Result<(), Error> {
    patch(Patch::SOCKET)
}

/// Sleeps only: `nanosleep`, `clock_nanosleep` (`std::thread::sleep`), `usleep`,
/// `sleep` (gevent's `patch_time`).
///
/// # Errors
/// As [`patch_all`].
pub fn patch_sleep() -> Result<(), Error> {
    patch(Patch::SLEEP)
}

/// Name lookups only: `getaddrinfo`, `getnameinfo`, on the hub's thread pool
/// (gevent's `patch_dns`).
///
/// # Errors
/// As [`patch_all`].
pub fn patch_dns() -> Result<(), Error> {
    patch(Patch::DNS)
}

/// `poll`, `ppoll` and `select` only (gevent's `patch_select`).
///
/// # Errors
/// As [`patch_all`].
pub fn patch_select() -> Result<(), Error> {
    patch(Patch::SELECT)
}

/// How many times a greenlet of a patched thread has blocked its OS thread in a futex
/// wait (a std `Mutex`, `RwLock`, `Condvar`, `Once`, channel or `thread::park`) since
/// the process started; each is also logged (see the crate docs' hazards).
pub fn lock_waits() -> u64 {
    lock::waits()
}

/// What the calling thread has patched, as gevent's `monkey.is_module_patched`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Patched {
    /// Sockets and pipes.
    pub socket: bool,
    /// Sleeps.
    pub sleep: bool,
    /// Name lookups.
    pub dns: bool,
    /// `poll`/`select`.
    pub select: bool,
}

/// What the calling thread has patched.
pub fn patched_here() -> Patched {
    Patched {
        socket: patched(Patch::SOCKET),
        sleep: patched(Patch::SLEEP),
        dns: patched(Patch::DNS),
        select: patched(Patch::SELECT),
    }
}
