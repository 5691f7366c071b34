//! The socket and pipe calls: `read`/`write` and their vectored forms, `recv*`/
//! `send*`, `sendfile`, `accept`/`accept4`, `connect`.
//!
//! Each hook decides, in this order:
//! 1. the thread has not patched sockets: the real call (an `EAGAIN` its user would
//!    not have seen is waited out, see [`fdmeta`](crate::fdmeta));
//! 2. the fd does not park (not a socket or pipe, fds 0-2, beyond the table), the
//!    user made it non-blocking, or the call asks not to wait (`MSG_DONTWAIT`): the
//!    real call, unchanged;
//! 3. the caller is the hub, has no hub, or the thread is ending: the blocking call;
//!    a greenlet with a kill pending that it could not unwind for: fails at once;
//! 4. otherwise the greenlet parks on the hub's fd-keyed readiness core between
//!    attempts, with the fd's `SO_RCVTIMEO`/`SO_SNDTIMEO` as the wait's timeout.

use crate::fdmeta::{self, KNOWN, PARK, SOCKET, STREAM, USER_NB};
use crate::{errno, real, Patch};
use gevent_hub::monkey_seam::{self as seam, Stop};
use libc::{c_int, c_void, iovec, msghdr, off_t, size_t, sockaddr, socklen_t, ssize_t};
use std::time::{Duration, Instant};

/// Fails the call for `s`: sets `errno` as the call's blocking form would (a socket
/// timeout is `EAGAIN`), and returns -1.
///
/// A kill is `ECANCELED` and an expired `Timeout` is `ETIMEDOUT`, not `EINTR`:
/// std and most C code retry a call that failed with `EINTR`, which would spin here
/// while the kill waits to be delivered.
#[cold]
pub(crate) fn fail(s: Stop) -> isize {
    errno::set(match s {
        Stop::TimedOut => libc::EAGAIN,
        Stop::Closed | Stop::BadFd => libc::EBADF,
        Stop::Killed => libc::ECANCELED,
        Stop::Expired => libc::ETIMEDOUT,
        Stop::Deadlock => libc::EDEADLK,
        Stop::CannotPark => libc::EIO,
    });
    -1
}

/// The decision of steps 1-3: `Some(m)` (the fd's byte) to go cooperative.
#[inline(always)]
fn decide(fd: c_int, dontwait: bool) -> Result<u8, Option<Stop>> {
    if !crate::patched(Patch::SOCKET) {
        return Err(None);
    }
    let m = fdmeta::classify(fd);
    if m & PARK == 0 || m & USER_NB != 0 || dontwait {
        return Err(None);
    }
    crate::parks(Patch::SOCKET).map(|()| m)
}

/// One hooked call on `fd` in direction `write`; `attempt` makes the real call.
/// `want`: the bytes asked for (0: unknown), so that a short transfer on a stream
/// marks the direction drained.
///
/// Only the unpatched thread's path is inlined into the hook: a thread-local read,
/// the real call, and a look at `errno` only after a failure.
#[inline(always)]
pub(crate) fn call(
    fd: c_int,
    write: bool,
    dontwait: bool,
    want: usize,
    mut attempt: impl FnMut() -> isize + Copy,
) -> isize {
    if !crate::patched(Patch::SOCKET) {
        let r = attempt();
        if r >= 0 || dontwait {
            return r;
        }
        return failed_unpatched(fd, write, attempt);
    }
    call_patched(fd, write, dontwait, want, attempt)
}

/// The real call failed on a thread that did not patch: an `EAGAIN` its user would
/// not have seen is waited out. (`attempt` by value: the hook's fast path keeps its
/// arguments in registers.)
#[cold]
#[inline(never)]
fn failed_unpatched(fd: c_int, write: bool, mut attempt: impl FnMut() -> isize) -> isize {
    if !errno::would_block(errno::get()) {
        return -1;
    }
    block_out(fd, write, &mut attempt)
}

#[inline(never)]
fn call_patched(
    fd: c_int,
    write: bool,
    dontwait: bool,
    want: usize,
    mut attempt: impl FnMut() -> isize,
) -> isize {
    match decide(fd, dontwait) {
        Ok(m) => guarded(-1, || cooperative(fd, m, write, want, &mut attempt)),
        Err(None) => blocking(fd, write, dontwait, &mut attempt),
        Err(Some(s)) => fail(s),
    }
}

/// Runs the cooperative part so that nothing can unwind out of a hook: a panic (a
/// defect, already reported by the panic hook) fails the call with `EIO` and returns
/// `failed`; a kill or `Timeout` that somehow unwound is put back to be delivered
/// later.
#[inline(always)]
pub(crate) fn guarded<T>(failed: T, f: impl FnOnce() -> T) -> T {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(p) => {
            seam::defer_throw(p);
            errno::set(libc::EIO);
            failed
        }
    }
}

#[inline(always)]
fn cooperative(
    fd: c_int,
    m: u8,
    write: bool,
    want: usize,
    attempt: &mut dyn FnMut() -> isize,
) -> isize {
    if !fdmeta::ensure_nonblocking(fd, m) {
        return blocking(fd, write, false, attempt);
    }
    let Some(st) = state(fd, m) else {
        return blocking(fd, write, false, attempt);
    };
    // One deadline for the whole call, however many wake-ups it takes.
    let mut deadline = None;
    loop {
        if st.is_ready(write) {
            let r = attempt();
            if r >= 0 {
                if want != 0 && m & STREAM != 0 && (r as usize) < want {
                    st.set_ready(write, false);
                }
                return r;
            }
            if !errno::would_block(errno::get()) {
                return r;
            }
            st.set_ready(write, false);
        }
        let left = match time_left(&st, write, &mut deadline) {
            Ok(left) => left,
            Err(s) => return fail(s),
        };
        match st.wait(write, left) {
            Ok(()) => st.set_ready(write, true),
            Err(Stop::CannotPark) => return blocking(fd, write, false, attempt),
            Err(s) => return fail(s),
        }
    }
}

/// This thread's readiness state for `fd`, set up for the file the number names now:
/// state left from another file of the same number (closed by another thread, then
/// reused) is dropped and made anew.
#[inline(always)]
pub(crate) fn state(fd: c_int, m: u8) -> Option<seam::Fd> {
    let generation = fdmeta::generation(fd);
    let st = seam::fd(fd)?;
    match st.tag() {
        Some(g) if g == generation => Some(st),
        tag => {
            let st = if tag.is_some() {
                seam::forget(fd);
                seam::fd(fd)?
            } else {
                st
            };
            adopt(fd, m, &st);
            st.set_tag(generation);
            Some(st)
        }
    }
}

/// What is left of the call's timeout in `write`'s direction: `Ok(None)` none,
/// `Err(TimedOut)` none left. `deadline` is fixed at the first wait.
#[inline(always)]
fn time_left(
    st: &seam::Fd,
    write: bool,
    deadline: &mut Option<Option<Instant>>,
) -> Result<Option<Duration>, Stop> {
    let d = *deadline.get_or_insert_with(|| {
        st.timeout(write)
            .and_then(|t| Instant::now().checked_add(t))
    });
    match d {
        None => Ok(None),
        Some(d) => {
            let left = d.saturating_duration_since(Instant::now());
            if left.is_zero() {
                Err(Stop::TimedOut)
            } else {
                Ok(Some(left))
            }
        }
    }
}

/// Sets up this thread's readiness state for a socket: its timeouts, read once from
/// the socket (`setsockopt` keeps them current afterwards).
#[cold]
fn adopt(fd: c_int, m: u8, st: &seam::Fd) {
    if m & SOCKET != 0 {
        let saved = errno::get();
        st.set_timeout(false, socket_timeout(fd, libc::SO_RCVTIMEO));
        st.set_timeout(true, socket_timeout(fd, libc::SO_SNDTIMEO));
        errno::set(saved);
    }
}

/// A socket's `SO_RCVTIMEO`/`SO_SNDTIMEO` (`None`: none, or not a socket).
pub(crate) fn socket_timeout(fd: c_int, opt: c_int) -> Option<Duration> {
    let mut tv = libc::timeval {
        tv_sec: 0,
        tv_usec: 0,
    };
    let mut len = std::mem::size_of::<libc::timeval>() as socklen_t;
    // SAFETY: the option writes one timeval into `tv`, whose size `len` gives.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            opt,
            (&mut tv as *mut libc::timeval).cast(),
            &mut len,
        )
    };
    if r != 0 {
        return None;
    }
    fdmeta::timeval_duration(&tv)
}

/// The real call, made to block if its user expects it to (see
/// [`fdmeta::hides_eagain`]).
#[inline(always)]
pub(crate) fn blocking(
    fd: c_int,
    write: bool,
    dontwait: bool,
    attempt: &mut dyn FnMut() -> isize,
) -> isize {
    let r = attempt();
    if r >= 0 || dontwait || !errno::would_block(errno::get()) {
        return r;
    }
    block_out(fd, write, attempt)
}

/// Waits out an `EAGAIN` the user would not have seen, with the real `poll` and the
/// socket's own timeout, as the blocking call would have.
#[cold]
fn block_out(fd: c_int, write: bool, attempt: &mut dyn FnMut() -> isize) -> isize {
    if !fdmeta::hides_eagain(fd) {
        errno::set(libc::EAGAIN);
        return -1;
    }
    let opt = if write {
        libc::SO_SNDTIMEO
    } else {
        libc::SO_RCVTIMEO
    };
    let deadline = if fdmeta::get(fd) & SOCKET != 0 {
        socket_timeout(fd, opt).and_then(|d| Instant::now().checked_add(d))
    } else {
        None
    };
    loop {
        if !poll_one(fd, write, deadline) {
            return -1;
        }
        let r = attempt();
        if r >= 0 || !errno::would_block(errno::get()) {
            return r;
        }
    }
}

/// The real `poll` on one fd until it is ready in `write`'s direction or `deadline`
/// passes; false (with `errno` set: `EAGAIN` on timeout) if it did not become ready.
fn poll_one(fd: c_int, write: bool, deadline: Option<Instant>) -> bool {
    let events = if write { libc::POLLOUT } else { libc::POLLIN };
    let mut p = libc::pollfd {
        fd,
        events,
        revents: 0,
    };
    let ms = match deadline {
        None => -1,
        Some(d) => {
            let left = d.saturating_duration_since(Instant::now());
            // Rounded up: a wait never ends before its deadline.
            c_int::try_from(left.as_micros().div_ceil(1000)).unwrap_or(c_int::MAX)
        }
    };
    // SAFETY: one pollfd we own.
    let n = unsafe { real::poll(&mut p, 1, ms) };
    match n {
        0 => {
            errno::set(libc::EAGAIN);
            false
        }
        n => n > 0,
    }
}

/// The total length of an iovec array (what a vectored call asks for).
///
/// # Safety
/// `iov` points to `cnt` iovecs, or `cnt` is not positive.
unsafe fn iov_len(iov: *const iovec, cnt: c_int) -> usize {
    if iov.is_null() || cnt <= 0 {
        return 0;
    }
    // SAFETY: the caller's contract (the vectored call's own).
    let v = unsafe { std::slice::from_raw_parts(iov, cnt as usize) };
    v.iter().fold(0usize, |a, x| a.saturating_add(x.iov_len))
}

/// True if `flags` ask a socket call not to wait.
#[inline(always)]
fn dontwait(flags: c_int) -> bool {
    flags & libc::MSG_DONTWAIT != 0
}

/// `MSG_WAITALL` on a stream the hooks made non-blocking returns what is there: the
/// hooks wait for the rest themselves. (A datagram is one read either way.)
#[cold]
fn waits_for_all(fd: c_int, flags: c_int) -> bool {
    flags & libc::MSG_WAITALL != 0
        && !dontwait(flags)
        && fdmeta::get(fd) & (KNOWN | PARK | USER_NB | STREAM) == KNOWN | PARK | STREAM
}

/// A `recv`/`recvfrom` with `MSG_WAITALL`, made of calls without it.
///
/// # Safety
/// `buf` is valid for `n` bytes (the call's own contract).
#[cold]
#[inline(never)]
unsafe fn recv_all(
    fd: c_int,
    buf: *mut c_void,
    n: size_t,
    flags: c_int,
    one: impl Fn(*mut c_void, size_t, c_int) -> isize + Copy,
) -> isize {
    let flags = flags & !libc::MSG_WAITALL;
    let mut got = 0usize;
    while got < n {
        // SAFETY: `got < n`: the rest of the caller's buffer.
        let p = unsafe { buf.cast::<u8>().add(got) }.cast::<c_void>();
        let r = call(fd, false, false, n - got, move || one(p, n - got, flags));
        if r <= 0 {
            return if got > 0 { got as isize } else { r };
        }
        got += r as usize;
    }
    got as isize
}

/// libc's `read`.
///
/// # Safety
/// libc's contract for `read`.
#[no_mangle]
pub unsafe extern "C" fn read(fd: c_int, buf: *mut c_void, n: size_t) -> ssize_t {
    // SAFETY: the caller's contract is libc's.
    call(fd, false, false, n, move || unsafe {
        real::read(fd, buf, n)
    })
}

/// libc's `readv`.
///
/// # Safety
/// libc's contract for `readv`.
#[no_mangle]
pub unsafe extern "C" fn readv(fd: c_int, iov: *const iovec, cnt: c_int) -> ssize_t {
    // SAFETY: the caller's contract is libc's.
    let want = unsafe { iov_len(iov, cnt) };
    // SAFETY: as above.
    call(fd, false, false, want, move || unsafe {
        real::readv(fd, iov, cnt)
    })
}

/// libc's `write`.
///
/// # Safety
/// libc's contract for `write`.
#[no_mangle]
pub unsafe extern "C" fn write(fd: c_int, buf: *const c_void, n: size_t) -> ssize_t {
    // SAFETY: the caller's contract is libc's.
    call(fd, true, false, n, move || unsafe {
        real::write(fd, buf, n)
    })
}

/// libc's `writev`.
///
/// # Safety
/// libc's contract for `writev`.
#[no_mangle]
pub unsafe extern "C" fn writev(fd: c_int, iov: *const iovec, cnt: c_int) -> ssize_t {
    // SAFETY: the caller's contract is libc's.
    let want = unsafe { iov_len(iov, cnt) };
    // SAFETY: as above.
    call(fd, true, false, want, move || unsafe {
        real::writev(fd, iov, cnt)
    })
}

/// libc's `recv`.
///
/// # Safety
/// libc's contract for `recv`.
#[no_mangle]
pub unsafe extern "C" fn recv(fd: c_int, buf: *mut c_void, n: size_t, flags: c_int) -> ssize_t {
    if flags & libc::MSG_WAITALL != 0 && waits_for_all(fd, flags) {
        // SAFETY: the caller's contract is libc's.
        return unsafe { recv_all(fd, buf, n, flags, |p, k, f| real::recv(fd, p, k, f)) };
    }
    // SAFETY: the caller's contract is libc's.
    call(fd, false, dontwait(flags), n, move || unsafe {
        real::recv(fd, buf, n, flags)
    })
}

/// libc's `recvfrom`.
///
/// # Safety
/// libc's contract for `recvfrom`.
#[no_mangle]
pub unsafe extern "C" fn recvfrom(
    fd: c_int,
    buf: *mut c_void,
    n: size_t,
    flags: c_int,
    addr: *mut sockaddr,
    len: *mut socklen_t,
) -> ssize_t {
    if flags & libc::MSG_WAITALL != 0 && waits_for_all(fd, flags) {
        // SAFETY: the caller's contract is libc's.
        return unsafe {
            recv_all(fd, buf, n, flags, |p, k, f| {
                real::recvfrom(fd, p, k, f, addr, len)
            })
        };
    }
    // SAFETY: the caller's contract is libc's.
    call(fd, false, dontwait(flags), n, move || unsafe {
        real::recvfrom(fd, buf, n, flags, addr, len)
    })
}

/// libc's `recvmsg`.
///
/// # Safety
/// libc's contract for `recvmsg`.
#[no_mangle]
pub unsafe extern "C" fn recvmsg(fd: c_int, msg: *mut msghdr, flags: c_int) -> ssize_t {
    // SAFETY: the caller's contract is libc's.
    call(fd, false, dontwait(flags), 0, move || unsafe {
        real::recvmsg(fd, msg, flags)
    })
}

/// libc's `send`.
///
/// # Safety
/// libc's contract for `send`.
#[no_mangle]
pub unsafe extern "C" fn send(fd: c_int, buf: *const c_void, n: size_t, flags: c_int) -> ssize_t {
    // SAFETY: the caller's contract is libc's.
    call(fd, true, dontwait(flags), n, move || unsafe {
        real::send(fd, buf, n, flags)
    })
}

/// libc's `sendto`.
///
/// # Safety
/// libc's contract for `sendto`.
#[no_mangle]
pub unsafe extern "C" fn sendto(
    fd: c_int,
    buf: *const c_void,
    n: size_t,
    flags: c_int,
    addr: *const sockaddr,
    len: socklen_t,
) -> ssize_t {
    // SAFETY: the caller's contract is libc's.
    call(fd, true, dontwait(flags), n, move || unsafe {
        real::sendto(fd, buf, n, flags, addr, len)
    })
}

/// libc's `sendmsg`.
///
/// # Safety
/// libc's contract for `sendmsg`.
#[no_mangle]
pub unsafe extern "C" fn sendmsg(fd: c_int, msg: *const msghdr, flags: c_int) -> ssize_t {
    // SAFETY: the caller's contract is libc's.
    call(fd, true, dontwait(flags), 0, move || unsafe {
        real::sendmsg(fd, msg, flags)
    })
}

/// libc's `sendfile` (std's `io::copy` from a file to a socket uses it): waits on the
/// socket it writes to.
///
/// # Safety
/// libc's contract for `sendfile`.
#[no_mangle]
pub unsafe extern "C" fn sendfile(
    out_fd: c_int,
    in_fd: c_int,
    offset: *mut off_t,
    count: size_t,
) -> ssize_t {
    // SAFETY: the caller's contract is libc's.
    call(out_fd, true, false, count, move || unsafe {
        real::sendfile(out_fd, in_fd, offset, count)
    })
}

/// libc's `accept`.
///
/// # Safety
/// libc's contract for `accept`.
#[no_mangle]
pub unsafe extern "C" fn accept(fd: c_int, addr: *mut sockaddr, len: *mut socklen_t) -> c_int {
    // SAFETY: the caller's contract is libc's.
    let r = call(
        fd,
        false,
        false,
        0,
        move || unsafe { real::accept(fd, addr, len) } as isize,
    );
    accepted(fd, r, 0)
}

/// libc's `accept4`.
///
/// # Safety
/// libc's contract for `accept4`.
#[no_mangle]
pub unsafe extern "C" fn accept4(
    fd: c_int,
    addr: *mut sockaddr,
    len: *mut socklen_t,
    flags: c_int,
) -> c_int {
    // SAFETY: the caller's contract is libc's.
    let r = call(
        fd,
        false,
        false,
        0,
        move || unsafe { real::accept4(fd, addr, len, flags) } as isize,
    );
    accepted(fd, r, flags)
}

/// Records a socket `accept` made on `listener` (the result `r`, with `flags`).
#[inline]
fn accepted(listener: c_int, r: isize, flags: c_int) -> c_int {
    let r = r as c_int;
    if r >= 0 {
        let ty = if fdmeta::get(listener) & STREAM != 0 {
            libc::SOCK_STREAM
        } else {
            libc::SOCK_SEQPACKET
        };
        fdmeta::made(r, fdmeta::for_socket(ty | (flags & libc::SOCK_NONBLOCK)));
    }
    r
}

/// libc's `connect`: a blocking connect parks until the connection is made or fails,
/// up to the socket's `SO_SNDTIMEO` (then `EINPROGRESS`, as Linux's blocking connect).
///
/// # Safety
/// libc's contract for `connect`.
#[no_mangle]
pub unsafe extern "C" fn connect(fd: c_int, addr: *const sockaddr, len: socklen_t) -> c_int {
    // SAFETY: the caller's contract is libc's.
    let attempt = || unsafe { real::connect(fd, addr, len) };
    match decide(fd, false) {
        Ok(m) => guarded(-1, || connect_cooperative(fd, m, attempt)),
        Err(Some(s)) => fail(s) as c_int,
        Err(None) => {
            let r = attempt();
            let e = errno::get();
            if r == 0
                || (e != libc::EINPROGRESS && e != libc::EALREADY)
                || !fdmeta::hides_eagain(fd)
            {
                return r;
            }
            let deadline =
                socket_timeout(fd, libc::SO_SNDTIMEO).and_then(|d| Instant::now().checked_add(d));
            if !poll_one(fd, true, deadline) {
                if errno::would_block(errno::get()) {
                    errno::set(libc::EINPROGRESS);
                }
                return -1;
            }
            connect_result(fd)
        }
    }
}

fn connect_cooperative(fd: c_int, m: u8, attempt: impl Fn() -> c_int) -> c_int {
    if !fdmeta::ensure_nonblocking(fd, m) {
        return attempt();
    }
    let Some(st) = state(fd, m) else {
        return attempt();
    };
    let mut deadline = None;
    let mut backoff = Duration::from_millis(1);
    loop {
        let r = attempt();
        if r == 0 {
            return 0;
        }
        let e = errno::get();
        let left = time_left(&st, true, &mut deadline);
        if errno::would_block(e) {
            // A Unix socket whose listener's backlog is full. It is writable all the
            // while, so nothing would wake a wait: retry after a growing pause, up to
            // SO_SNDTIMEO, then say EAGAIN as the blocking call does.
            let pause = match left {
                Err(_) => {
                    errno::set(libc::EAGAIN);
                    return -1;
                }
                Ok(left) => left.map_or(backoff, |l| l.min(backoff)),
            };
            match seam::sleep(pause) {
                Ok(()) => {}
                Err(s) => return fail(s) as c_int,
            }
            backoff = (backoff * 2).min(Duration::from_millis(64));
            continue;
        }
        // EALREADY: an earlier attempt (timed out, interrupted) is still going on.
        if e != libc::EINPROGRESS && e != libc::EALREADY {
            return r;
        }
        let waited = left.and_then(|left| st.wait(true, left));
        match waited {
            Ok(()) => return connect_result(fd),
            Err(Stop::TimedOut) => {
                errno::set(libc::EINPROGRESS);
                return -1;
            }
            Err(s) => return fail(s) as c_int,
        }
    }
}

/// The outcome of a connect that was in progress: 0, or -1 with its error.
fn connect_result(fd: c_int) -> c_int {
    let mut err: c_int = 0;
    let mut len = std::mem::size_of::<c_int>() as socklen_t;
    // SAFETY: SO_ERROR writes one int into `err`, whose size `len` gives.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            (&mut err as *mut c_int).cast(),
            &mut len,
        )
    };
    if r != 0 {
        return -1;
    }
    if err != 0 {
        errno::set(err);
        return -1;
    }
    0
}
