//! The calls that make, copy, close and configure fds, hooked on every thread so the
//! table of [`fdmeta`](crate::fdmeta) and the readiness core stay true:
//! - `close` forgets the number before it can name another file, `dup2` and `dup3`
//!   as soon as it does (its waiters, greenlets of this thread parked on it, fail
//!   with `EBADF`; other threads see its generation change);
//! - `socket`, `socketpair`, `pipe`, `pipe2`, `dup`, `fcntl(F_DUPFD*)` and the
//!   accepts (in [`io`](crate::io)) record what the new number is;
//! - `fcntl(F_GETFL/F_SETFL)` and `ioctl(FIONBIO)` keep the user's view of
//!   `O_NONBLOCK` (the hooks may have set it on the file for their own use);
//! - `setsockopt(SO_RCVTIMEO/SO_SNDTIMEO)` keeps the waits' timeouts current;
//! - `fork` tells the child's hub.

use crate::fdmeta::{self, HOOK_NB, KNOWN, SET_NB, USER_NB};
use crate::{errno, real};
use gevent_hub::monkey_seam as seam;
use libc::{c_int, c_ulong, c_void, pid_t, socklen_t};

/// libc's `close`.
///
/// # Safety
/// libc's contract for `close`.
#[no_mangle]
pub unsafe extern "C" fn close(fd: c_int) -> c_int {
    fdmeta::closed(fd);
    // SAFETY: the caller's contract is libc's.
    unsafe { real::close(fd) }
}

/// libc's `dup`.
///
/// # Safety
/// libc's contract for `dup`.
#[no_mangle]
pub unsafe extern "C" fn dup(fd: c_int) -> c_int {
    // SAFETY: the caller's contract is libc's.
    let r = unsafe { real::dup(fd) };
    if r >= 0 {
        fdmeta::made(r, fdmeta::get(fd));
    }
    r
}

/// libc's `dup2`.
///
/// # Safety
/// libc's contract for `dup2`.
#[no_mangle]
pub unsafe extern "C" fn dup2(old: c_int, new: c_int) -> c_int {
    // SAFETY: the caller's contract is libc's.
    let r = unsafe { real::dup2(old, new) };
    if r >= 0 && old != new {
        // Forgotten only once it names `old`'s file: a failed dup2 changes nothing.
        fdmeta::closed(r);
        fdmeta::set(r, fdmeta::get(old));
    }
    r
}

/// libc's `dup3`.
///
/// # Safety
/// libc's contract for `dup3`.
#[no_mangle]
pub unsafe extern "C" fn dup3(old: c_int, new: c_int, flags: c_int) -> c_int {
    // SAFETY: the caller's contract is libc's.
    let r = unsafe { real::dup3(old, new, flags) };
    if r >= 0 {
        fdmeta::closed(r);
        fdmeta::set(r, fdmeta::get(old));
    }
    r
}

/// libc's `fcntl`. Defined with one fixed argument where C has `...`: on the targets
/// the build script allows, a variadic integer or pointer argument is passed exactly
/// as a fixed one, so the value the caller passed (if any) is read unchanged.
///
/// # Safety
/// libc's contract for `fcntl`.
#[no_mangle]
pub unsafe extern "C" fn fcntl(fd: c_int, cmd: c_int, arg: c_ulong) -> c_int {
    // SAFETY: the caller's contract is libc's.
    unsafe { fcntl_impl(fd, cmd, arg) }
}

/// glibc's other name of `fcntl`, which C code built with 64-bit file offsets calls.
///
/// # Safety
/// libc's contract for `fcntl`.
#[no_mangle]
pub unsafe extern "C" fn fcntl64(fd: c_int, cmd: c_int, arg: c_ulong) -> c_int {
    // SAFETY: the caller's contract is libc's.
    unsafe { fcntl_impl(fd, cmd, arg) }
}

unsafe fn fcntl_impl(fd: c_int, cmd: c_int, arg: c_ulong) -> c_int {
    match cmd {
        libc::F_GETFL => {
            // SAFETY: F_GETFL reads the flags; no memory.
            let fl = unsafe { real::fcntl(fd, cmd, arg) };
            let m = fdmeta::get(fd);
            if fl >= 0 && m & HOOK_NB != 0 && m & USER_NB == 0 {
                // The hooks' O_NONBLOCK is not the user's.
                return fl & !libc::O_NONBLOCK;
            }
            fl
        }
        libc::F_SETFL => {
            let user_nb = arg as c_int & libc::O_NONBLOCK != 0;
            let m = fdmeta::get(fd);
            // Keep the hooks' O_NONBLOCK on a file they turned it on for.
            let keep = m & HOOK_NB != 0 && !user_nb;
            let pass = if keep {
                arg | libc::O_NONBLOCK as c_ulong
            } else {
                arg
            };
            // SAFETY: F_SETFL sets flags; no memory.
            let r = unsafe { real::fcntl(fd, cmd, pass) };
            if r == 0 && m & KNOWN != 0 {
                user_mode(fd, user_nb, keep);
            }
            r
        }
        libc::F_DUPFD | libc::F_DUPFD_CLOEXEC => {
            // SAFETY: the caller's contract is libc's.
            let r = unsafe { real::fcntl(fd, cmd, arg) };
            if r >= 0 {
                fdmeta::made(r, fdmeta::get(fd));
            }
            r
        }
        // SAFETY: the caller's contract is libc's; the argument is passed on as given.
        _ => unsafe { real::fcntl(fd, cmd, arg) },
    }
}

/// libc's `ioctl` (std's `set_nonblocking` is `ioctl(FIONBIO)`), defined with one
/// fixed argument where C has `...`, as [`fcntl`].
///
/// # Safety
/// libc's contract for `ioctl`.
#[no_mangle]
pub unsafe extern "C" fn ioctl(fd: c_int, req: c_ulong, arg: *mut c_void) -> c_int {
    if req == libc::FIONBIO as c_ulong && !arg.is_null() {
        // SAFETY: FIONBIO's argument is a pointer to an int (the caller's contract).
        let on = unsafe { *arg.cast::<c_int>() } != 0;
        let m = fdmeta::get(fd);
        if m & KNOWN != 0 {
            if !on && m & HOOK_NB != 0 {
                // The user wants it blocking: so it is, in their view; the file stays
                // non-blocking for the hooks. Check the fd exists, as the call would.
                // SAFETY: F_GETFD reads the descriptor flags; no memory.
                if unsafe { real::fcntl(fd, libc::F_GETFD, 0) } < 0 {
                    return -1;
                }
                user_mode(fd, false, true);
                return 0;
            }
            // SAFETY: the caller's contract is libc's.
            let r = unsafe { real::ioctl(fd, req, arg) };
            if r == 0 {
                user_mode(fd, on, false);
            }
            return r;
        }
    }
    // SAFETY: the caller's contract is libc's.
    unsafe { real::ioctl(fd, req, arg) }
}

/// Records the user's blocking mode of a known fd after a successful `F_SETFL` or
/// `FIONBIO`; `kept`: the hooks' `O_NONBLOCK` stayed on underneath.
fn user_mode(fd: c_int, non_blocking: bool, kept: bool) {
    fdmeta::update(fd, USER_NB, non_blocking);
    if non_blocking {
        // The flag is the user's now.
        fdmeta::update(fd, SET_NB, true);
        fdmeta::update(fd, HOOK_NB, false);
    } else if !kept {
        fdmeta::update(fd, SET_NB | HOOK_NB, false);
    }
}

/// libc's `setsockopt`: a new `SO_RCVTIMEO`/`SO_SNDTIMEO` becomes the timeout of
/// this thread's waits on the socket.
///
/// # Safety
/// libc's contract for `setsockopt`.
#[no_mangle]
pub unsafe extern "C" fn setsockopt(
    fd: c_int,
    level: c_int,
    name: c_int,
    val: *const c_void,
    len: socklen_t,
) -> c_int {
    // SAFETY: the caller's contract is libc's.
    let r = unsafe { real::setsockopt(fd, level, name, val, len) };
    let timeo = name == libc::SO_RCVTIMEO || name == libc::SO_SNDTIMEO;
    if r == 0
        && level == libc::SOL_SOCKET
        && timeo
        && len as usize >= std::mem::size_of::<libc::timeval>()
        && !val.is_null()
    {
        if let Some(st) = seam::fd_if_any(fd) {
            // SAFETY: the kernel accepted a timeval there (checked: success, size).
            let tv = unsafe { std::ptr::read_unaligned(val.cast::<libc::timeval>()) };
            st.set_timeout(name == libc::SO_SNDTIMEO, fdmeta::timeval_duration(&tv));
        }
    }
    r
}

/// libc's `socket`.
///
/// # Safety
/// libc's contract for `socket`.
#[no_mangle]
pub unsafe extern "C" fn socket(domain: c_int, ty: c_int, proto: c_int) -> c_int {
    // SAFETY: the caller's contract is libc's.
    let r = unsafe { real::socket(domain, ty, proto) };
    if r >= 0 {
        fdmeta::made(r, fdmeta::for_socket(ty));
    }
    r
}

/// libc's `socketpair`.
///
/// # Safety
/// libc's contract for `socketpair`.
#[no_mangle]
pub unsafe extern "C" fn socketpair(
    domain: c_int,
    ty: c_int,
    proto: c_int,
    sv: *mut c_int,
) -> c_int {
    // SAFETY: the caller's contract is libc's.
    let r = unsafe { real::socketpair(domain, ty, proto, sv) };
    if r == 0 {
        // SAFETY: on success the two ints were written.
        let (a, b) = unsafe { (*sv, *sv.add(1)) };
        fdmeta::made(a, fdmeta::for_socket(ty));
        fdmeta::made(b, fdmeta::for_socket(ty));
    }
    r
}

/// libc's `pipe`.
///
/// # Safety
/// libc's contract for `pipe`.
#[no_mangle]
pub unsafe extern "C" fn pipe(fds: *mut c_int) -> c_int {
    // SAFETY: the caller's contract is libc's.
    let r = unsafe { real::pipe(fds) };
    if r == 0 {
        // SAFETY: on success the two ints were written.
        let (a, b) = unsafe { (*fds, *fds.add(1)) };
        fdmeta::made(a, fdmeta::for_pipe(0));
        fdmeta::made(b, fdmeta::for_pipe(0));
    }
    r
}

/// libc's `pipe2`.
///
/// # Safety
/// libc's contract for `pipe2`.
#[no_mangle]
pub unsafe extern "C" fn pipe2(fds: *mut c_int, flags: c_int) -> c_int {
    // SAFETY: the caller's contract is libc's.
    let r = unsafe { real::pipe2(fds, flags) };
    if r == 0 {
        // SAFETY: on success the two ints were written.
        let (a, b) = unsafe { (*fds, *fds.add(1)) };
        fdmeta::made(a, fdmeta::for_pipe(flags));
        fdmeta::made(b, fdmeta::for_pipe(flags));
    }
    r
}

/// libc's `fork`: in the child of a thread that patched, the hub's loop is told
/// (libev makes its backend anew) and the thread pool, whose workers stayed in the
/// parent, is replaced on next use.
///
/// # Safety
/// libc's contract for `fork`.
#[no_mangle]
pub unsafe extern "C" fn fork() -> pid_t {
    // SAFETY: the caller's contract is libc's.
    let pid = unsafe { real::fork() };
    if pid == 0 && crate::patched_any() {
        let saved = errno::get();
        seam::after_fork_in_child();
        errno::set(saved);
    }
    pid
}
