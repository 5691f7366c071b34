//! Locks that block the thread: std's `Mutex`, `RwLock`, `Condvar`, `Once`, channels
//! and `thread::park` wait in the kernel with a futex, reached through libc's
//! `syscall`. A greenlet of a patched thread that waits there stops every greenlet
//! of the thread; and if the lock's holder is another greenlet of the same thread
//! (holding it across a patched call), nothing can ever release it: the thread is
//! deadlocked. Rust's locks cannot be patched as gevent patches Python's, so the
//! hook only says so: a warning through `log` naming the greenlet (at most one a
//! second per thread) and a count ([`lock_waits`](crate::lock_waits)), then the
//! real wait.

use crate::Patch;
use gevent_hub::monkey_seam::{self as seam, Mode};
use libc::c_long;
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

static WAITS: AtomicU64 = AtomicU64::new(0);

/// Futex waits made by greenlets of patched threads since the process started.
pub(crate) fn waits() -> u64 {
    WAITS.load(Ordering::Relaxed)
}

thread_local! {
    // No destructors: read at any time, the thread's teardown included.
    static IN_NOTE: Cell<bool> = const { Cell::new(false) };
    static LAST_WARNING: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// True for the futex operations that wait.
fn waits_in_kernel(op: c_long) -> bool {
    let cmd = op & !((libc::FUTEX_PRIVATE_FLAG | libc::FUTEX_CLOCK_REALTIME) as c_long);
    [
        libc::FUTEX_WAIT,
        libc::FUTEX_WAIT_BITSET,
        libc::FUTEX_LOCK_PI,
        libc::FUTEX_WAIT_REQUEUE_PI,
        libc::FUTEX_LOCK_PI2,
    ]
    .iter()
    .any(|&c| c as c_long == cmd)
}

#[cold]
fn note() {
    // The logger may itself wait on a lock: no second note from inside the first.
    if IN_NOTE.try_with(|n| n.replace(true)).unwrap_or(true) {
        return;
    }
    WAITS.fetch_add(1, Ordering::Relaxed);
    let now = Instant::now();
    let due = LAST_WARNING
        .try_with(|l| {
            let due = l
                .get()
                .is_none_or(|t| now.saturating_duration_since(t) >= Duration::from_secs(1));
            if due {
                l.set(Some(now));
            }
            due
        })
        .unwrap_or(false);
    // The program's logger runs here, inside an `extern "C"` function: a panic in it
    // must not unwind out of the hook.
    if due {
        let _ = std::panic::catch_unwind(|| {
            log::warn!(
                "greenlet '{}' blocks its OS thread in a futex wait (a std Mutex, RwLock, \
             Condvar, Once, channel or thread::park): every greenlet of the thread waits \
             with it, and if another greenlet of this thread holds the lock across a \
             patched call, the thread is deadlocked. Between greenlets use \
             gevent_hub::sync (Lock, Semaphore, Queue), and hold no std lock across I/O.",
                gevent_hub::current_name()
            )
        });
    }
    let _ = IN_NOTE.try_with(|n| n.set(false));
}

/// libc's `syscall`, defined with six fixed arguments where C has `...`: on the
/// targets the build script allows, variadic integer arguments are passed as fixed
/// ones, so what the caller passed is read unchanged (the slots a caller did not fill
/// are passed on as they are, and the kernel ignores them).
///
/// # Safety
/// libc's contract for `syscall`.
#[no_mangle]
pub unsafe extern "C" fn syscall(
    n: c_long,
    a1: c_long,
    a2: c_long,
    a3: c_long,
    a4: c_long,
    a5: c_long,
    a6: c_long,
) -> c_long {
    if n == libc::SYS_futex
        && waits_in_kernel(a2)
        && crate::patched(Patch::SOCKET)
        && seam::mode() == Mode::Cooperative
    {
        note();
    }
    let p = real_syscall();
    if p == 0 {
        crate::errno::set(libc::ENOSYS);
        return -1;
    }
    // SAFETY: `p` is libc's `syscall`, variadic after the number; the caller's
    // contract is libc's.
    unsafe {
        let f = std::mem::transmute::<usize, unsafe extern "C" fn(c_long, ...) -> c_long>(p);
        f(n, a1, a2, a3, a4, a5, a6)
    }
}

static SLOT: AtomicUsize = AtomicUsize::new(0);

/// The address of libc's `syscall` (0 if there is none), looked up once.
fn real_syscall() -> usize {
    match SLOT.load(Ordering::Relaxed) {
        0 => {
            // SAFETY: a NUL-terminated name; dlsym only reads it.
            let p = unsafe { libc::dlsym(libc::RTLD_NEXT, c"syscall".as_ptr()) } as usize;
            SLOT.store(p, Ordering::Relaxed);
            p
        }
        p => p,
    }
}

/// Looks `syscall` up now (see `real::resolve_all`).
pub(crate) fn resolve() {
    real_syscall();
}
