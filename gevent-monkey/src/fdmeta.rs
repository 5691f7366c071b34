//! What the hooks know of each fd number, process-wide: whether it may park (a socket
//! or a pipe), and the blocking mode its user sees.
//!
//! To park a greenlet the hooks need the fd non-blocking, and they set `O_NONBLOCK`
//! on it the first time a greenlet would block on it. The user's view stays as libc
//! gives it: `fcntl(F_GETFL)` does not show the flag unless the user set it, a user's
//! `O_NONBLOCK` still yields `EAGAIN`, and every thread (patched or not) that makes a
//! blocking call on such an fd gets the blocking behaviour back: an `EAGAIN` the user
//! would never have seen is waited out with the real `poll` and the call retried.
//!
//! One byte per fd number, in a static table (1 MiB of address space, touched only
//! where fds are): no allocation, so a hook in any context (a signal handler's
//! `write`, the thread's teardown, before `main`) can read and update it. Numbers
//! beyond the table are never parked. A byte is reset when the number is made anew
//! (`socket`, `accept`, `pipe`, `dup`...) or closed through libc's `close`.

use crate::{errno, real};
use libc::c_int;
use std::sync::atomic::{AtomicU32, AtomicU8, Ordering};
use std::time::Duration;

/// Classified since the number was last made or closed.
pub(crate) const KNOWN: u8 = 1;
/// A socket or a pipe: a greenlet may park on it.
pub(crate) const PARK: u8 = 2;
/// The user's view is non-blocking (they asked for it): never park, never hide
/// `EAGAIN`.
pub(crate) const USER_NB: u8 = 4;
/// `O_NONBLOCK` is known to be set on the file (by the hooks, or it was there).
pub(crate) const SET_NB: u8 = 8;
/// A stream socket or a pipe: a short read means drained.
pub(crate) const STREAM: u8 = 16;
/// A socket (has `SO_RCVTIMEO`/`SO_SNDTIMEO`).
pub(crate) const SOCKET: u8 = 32;
/// The hooks turned `O_NONBLOCK` on (the user had not): hidden from `F_GETFL`, kept
/// through the user's `F_SETFL` and `FIONBIO`.
pub(crate) const HOOK_NB: u8 = 64;

/// Fd numbers the table covers.
pub(crate) const TABLE: usize = 1 << 20;

static META: [AtomicU8; TABLE] = [const { AtomicU8::new(0) }; TABLE];

/// Bumped whenever a number is made anew or closed, on any thread: a thread's
/// readiness state for the number, set up at another generation, is for a file the
/// number no longer names (closed by another thread, reused).
static GEN: [AtomicU32; TABLE] = [const { AtomicU32::new(0) }; TABLE];

/// The generation of `fd`'s number (0 for a number the table does not cover).
#[inline(always)]
pub(crate) fn generation(fd: c_int) -> u32 {
    usize::try_from(fd)
        .ok()
        .and_then(|i| GEN.get(i))
        .map_or(0, |g| g.load(Ordering::Relaxed))
}

fn bump(fd: c_int) {
    if let Some(g) = usize::try_from(fd).ok().and_then(|i| GEN.get(i)) {
        g.fetch_add(1, Ordering::Relaxed);
    }
}

#[inline(always)]
fn slot(fd: c_int) -> Option<&'static AtomicU8> {
    META.get(usize::try_from(fd).ok()?)
}

/// The byte of `fd` (0 for a number the table does not cover).
#[inline(always)]
pub(crate) fn get(fd: c_int) -> u8 {
    slot(fd).map_or(0, |s| s.load(Ordering::Relaxed))
}

/// Replaces the byte of `fd`.
#[inline]
pub(crate) fn set(fd: c_int, v: u8) {
    if let Some(s) = slot(fd) {
        s.store(v, Ordering::Relaxed);
    }
}

/// A number just made by the kernel, described by `meta`: whatever was remembered of
/// the number (here and in this thread's readiness core) is stale.
#[inline]
pub(crate) fn made(fd: c_int, meta: u8) {
    gevent_hub::monkey_seam::forget(fd);
    bump(fd);
    set(fd, meta);
}

/// The number is about to stop naming its file (`close`), or has just been made to
/// name another (`dup2`/`dup3` onto it): this thread's waiters on it wake with
/// `EBADF`, and every thread's state for it is stale from here on.
#[inline]
pub(crate) fn closed(fd: c_int) {
    gevent_hub::monkey_seam::forget(fd);
    bump(fd);
    set(fd, 0);
}

/// Sets or clears `bits` in the byte of `fd`.
#[inline]
pub(crate) fn update(fd: c_int, bits: u8, on: bool) {
    if let Some(s) = slot(fd) {
        if on {
            s.fetch_or(bits, Ordering::Relaxed);
        } else {
            s.fetch_and(!bits, Ordering::Relaxed);
        }
    }
}

/// The byte of a socket just made with `ty` (`SOCK_STREAM | SOCK_NONBLOCK`, ...).
pub(crate) fn for_socket(ty: c_int) -> u8 {
    let base = ty & !(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC);
    let mut m = KNOWN | PARK | SOCKET;
    if base == libc::SOCK_STREAM {
        m |= STREAM;
    }
    if ty & libc::SOCK_NONBLOCK != 0 {
        m |= USER_NB | SET_NB;
    }
    m
}

/// The byte of a pipe end just made with `flags` (`O_NONBLOCK`, ...).
pub(crate) fn for_pipe(flags: c_int) -> u8 {
    let mut m = KNOWN | PARK | STREAM;
    if flags & libc::O_NONBLOCK != 0 {
        m |= USER_NB | SET_NB;
    }
    m
}

/// The byte of `fd`, classifying it first if needed (`fstat`, `F_GETFL`: once per fd
/// number). fds 0-2 never park: parking inside a `println!` would leave std's stdout
/// lock taken while other greenlets print. Keeps `errno`.
#[inline]
pub(crate) fn classify(fd: c_int) -> u8 {
    let m = get(fd);
    if m & KNOWN != 0 || slot(fd).is_none() {
        return m;
    }
    classify_slow(fd)
}

#[cold]
fn classify_slow(fd: c_int) -> u8 {
    let saved = errno::get();
    let mut m = KNOWN;
    if fd > 2 {
        // SAFETY: fstat writes into the zeroed struct we own; an invalid fd fails.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        if unsafe { libc::fstat(fd, &mut st) } == 0 {
            match st.st_mode & libc::S_IFMT {
                libc::S_IFSOCK => {
                    m |= PARK | SOCKET;
                    let mut ty: c_int = 0;
                    let mut len = std::mem::size_of::<c_int>() as libc::socklen_t;
                    // SAFETY: SO_TYPE writes one int into `ty`, whose size `len` gives.
                    let r = unsafe {
                        libc::getsockopt(
                            fd,
                            libc::SOL_SOCKET,
                            libc::SO_TYPE,
                            (&mut ty as *mut c_int).cast(),
                            &mut len,
                        )
                    };
                    if r == 0 && ty == libc::SOCK_STREAM {
                        m |= STREAM;
                    }
                }
                libc::S_IFIFO => m |= PARK | STREAM,
                _ => {}
            }
            // The user's mode, for every fd (`F_GETFL` and `F_SETFL` keep it).
            // SAFETY: F_GETFL takes no argument and only reads the flags.
            let fl = unsafe { real::fcntl(fd, libc::F_GETFL, 0) };
            if fl >= 0 && fl & libc::O_NONBLOCK != 0 {
                m |= USER_NB | SET_NB;
            }
        } else {
            // Not open: nothing to remember.
            errno::set(saved);
            return 0;
        }
    }
    set(fd, m);
    errno::set(saved);
    m
}

/// Makes the file of `fd` non-blocking (for the hooks' use; the user's view is
/// unchanged). Returns false if that failed (the caller then makes the blocking
/// call). Keeps `errno`.
#[inline]
pub(crate) fn ensure_nonblocking(fd: c_int, m: u8) -> bool {
    if m & SET_NB != 0 {
        return true;
    }
    let saved = errno::get();
    // SAFETY: F_GETFL/F_SETFL read and set the file's status flags; no memory.
    let ok = unsafe {
        let fl = real::fcntl(fd, libc::F_GETFL, 0);
        if fl < 0 {
            None
        } else if fl & libc::O_NONBLOCK != 0 {
            Some(SET_NB)
        } else if real::fcntl(fd, libc::F_SETFL, (fl | libc::O_NONBLOCK) as libc::c_ulong) == 0 {
            Some(SET_NB | HOOK_NB)
        } else {
            None
        }
    };
    if let Some(bits) = ok {
        update(fd, bits, true);
    }
    let ok = ok.is_some();
    errno::set(saved);
    ok
}

/// True if an `EAGAIN` from `fd` is one its user would not have seen: they see the fd
/// as blocking, but its file is non-blocking (for the hooks' sake, possibly through
/// another fd number of the same file): the call must be made to block. The slow
/// path only (one `F_GETFL`). Keeps `errno`.
#[cold]
pub(crate) fn hides_eagain(fd: c_int) -> bool {
    let m = get(fd);
    if m & (KNOWN | PARK | USER_NB) != KNOWN | PARK {
        return false;
    }
    let saved = errno::get();
    // SAFETY: F_GETFL takes no argument and only reads the flags.
    let fl = unsafe { real::fcntl(fd, libc::F_GETFL, 0) };
    errno::set(saved);
    fl >= 0 && fl & libc::O_NONBLOCK != 0
}

/// A timeval as a timeout (`None` for zero, libc's "no timeout", or negative).
pub(crate) fn timeval_duration(tv: &libc::timeval) -> Option<Duration> {
    if tv.tv_sec < 0 || tv.tv_usec < 0 || (tv.tv_sec == 0 && tv.tv_usec == 0) {
        return None;
    }
    Some(Duration::from_secs(tv.tv_sec as u64) + Duration::from_micros(tv.tv_usec as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fds_0_to_2_never_park() {
        for fd in 0..=2 {
            // Whatever they are (a terminal, a pipe from the test harness, a file).
            assert_eq!(classify(fd) & PARK, 0, "fd {fd}");
        }
    }

    #[test]
    fn a_socket_is_classified_once_and_a_close_forgets_it() {
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        let fd = std::os::fd::AsRawFd::as_raw_fd(&a);
        let m = classify(fd);
        assert_eq!(
            m & (KNOWN | PARK | SOCKET | STREAM),
            KNOWN | PARK | SOCKET | STREAM
        );
        assert_eq!(m & USER_NB, 0, "made blocking, as socketpair makes it");
        drop(a);
        assert_eq!(get(fd), 0, "close (through the hook) forgot the number");
    }

    #[test]
    fn numbers_beyond_the_table_are_never_parked() {
        assert_eq!(classify(TABLE as c_int), 0);
        assert_eq!(classify(-1), 0);
    }
}
