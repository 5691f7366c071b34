//! `poll`, `ppoll` and `select`, cooperative over any number of fds (gevent.select):
//! on a thread that patched them, a greenlet asks the real call with a zero timeout,
//! and if nothing is ready parks on a watcher per fd (and the timeout) until one
//! fires, then asks again. A zero timeout, a `ppoll` with a signal mask, and any
//! caller that cannot park get the real call.

use crate::{real, Patch};
use gevent_hub::monkey_seam::{self as seam, Stop};
use libc::{c_int, fd_set, nfds_t, pollfd, sigset_t, timespec, timeval};
use std::time::{Duration, Instant};

/// A timeout as `poll`'s milliseconds (-1: none), rounded up so that a wait never
/// ends before its deadline.
fn poll_ms(t: Option<Duration>) -> c_int {
    t.map_or(-1, |t| {
        c_int::try_from(t.as_micros().div_ceil(1000)).unwrap_or(c_int::MAX)
    })
}

/// The time left until `deadline` (`None`: no deadline).
fn left(deadline: Option<Instant>) -> Option<Duration> {
    deadline.map(|d| d.saturating_duration_since(Instant::now()))
}

/// Wake-ups that found nothing ready. A watcher can fire for what the call does not
/// report (ordinary data for a `POLLPRI`-only request, data for an fd asked only for
/// errors), and would again at once: after the first such wake-up the call polls
/// after growing pauses (1 ms to 64 ms) instead of waiting on the watchers, so it
/// never spins.
#[derive(Default)]
struct Idle {
    empty_wakes: u32,
    last_was_wake: bool,
}

impl Idle {
    /// Notes a wake-up (the next poll tells whether it found anything).
    fn woke(&mut self) {
        if self.last_was_wake {
            self.empty_wakes += 1;
        }
        self.last_was_wake = true;
    }

    /// The pause to take before polling again, if the wake-ups have been empty.
    fn pause(&self, left: Option<Duration>) -> Option<Duration> {
        if self.empty_wakes == 0 {
            return None;
        }
        let p = Duration::from_millis(1 << self.empty_wakes.min(7).saturating_sub(1));
        Some(left.map_or(p, |l| l.min(p)))
    }
}

/// A poll over `fds` with a timeout (`None`: none), cooperatively.
///
/// # Safety
/// `fds` points to `n` pollfds (the call's own contract).
unsafe fn poll_cooperative(fds: *mut pollfd, n: nfds_t, timeout: Option<Duration>) -> c_int {
    let deadline = timeout.and_then(|d| Instant::now().checked_add(d));
    let list: &[pollfd] = if n == 0 || fds.is_null() {
        &[]
    } else {
        // SAFETY: the caller's contract.
        unsafe { std::slice::from_raw_parts(fds, n as usize) }
    };
    // One fd, one direction (`connect_timeout`, a library polling before it reads):
    // the fd's own watcher in the readiness core, reused from call to call.
    if let [p] = list {
        let write = match p.events {
            libc::POLLIN => Some(false),
            libc::POLLOUT => Some(true),
            _ => None,
        };
        if let (true, Some(write)) = (p.fd >= 0, write) {
            if let Some(st) = crate::io::state(p.fd, crate::fdmeta::classify(p.fd)) {
                // SAFETY: the caller's contract.
                return unsafe { poll_one(fds, &st, write, deadline) };
            }
        }
    }
    let want: Vec<(c_int, bool, bool)> = list
        .iter()
        .filter(|p| p.fd >= 0)
        .map(|p| {
            let r = p.events & (libc::POLLIN | libc::POLLPRI | libc::POLLRDHUP) != 0;
            let w = p.events & libc::POLLOUT != 0;
            // Errors and hangups are reported even if nothing was asked for.
            (p.fd, r || !w, w)
        })
        .collect();
    let mut idle = Idle::default();
    loop {
        // SAFETY: the caller's contract.
        let r = unsafe { real::poll(fds, n, 0) };
        if r != 0 {
            return r;
        }
        let t = left(deadline);
        if t.is_some_and(|t| t.is_zero()) {
            return 0;
        }
        let woke = if want.is_empty() {
            seam::sleep(t.unwrap_or(Duration::MAX)).map(|()| false)
        } else if let Some(pause) = idle.pause(t) {
            seam::sleep(pause).map(|()| true)
        } else {
            seam::wait_fds(&want, t)
        };
        match woke {
            Ok(true) => {
                idle.woke();
                continue;
            }
            Ok(false) => {
                // Timed out: one last look, as the real call would report a
                // readiness that arrived with the deadline.
                // SAFETY: the caller's contract.
                return unsafe { real::poll(fds, n, 0) };
            }
            Err(Stop::CannotPark) => {
                let ms = poll_ms(t);
                // SAFETY: the caller's contract.
                return unsafe { real::poll(fds, n, ms) };
            }
            Err(s) => return crate::io::fail(s) as c_int,
        }
    }
}

/// [`poll_cooperative`] of one fd in one direction, on its readiness state.
///
/// # Safety
/// `fds` points to one pollfd, for `st`'s fd.
unsafe fn poll_one(
    fds: *mut pollfd,
    st: &gevent_hub::monkey_seam::Fd,
    write: bool,
    deadline: Option<Instant>,
) -> c_int {
    let mut idle = Idle::default();
    loop {
        // SAFETY: the caller's contract.
        let r = unsafe { real::poll(fds, 1, 0) };
        if r != 0 {
            if r > 0 {
                // What the caller does next (its read or write) need not wait first.
                st.set_ready(write, true);
            }
            return r;
        }
        let t = left(deadline);
        if t.is_some_and(|t| t.is_zero()) {
            return 0;
        }
        let woke = match idle.pause(t) {
            Some(pause) => seam::sleep(pause).map(|()| true),
            None => match st.wait(write, t) {
                // Closed meanwhile: the poll below says POLLNVAL, as the real one.
                Ok(()) | Err(Stop::Closed) => Ok(true),
                Err(Stop::TimedOut) => Ok(false),
                Err(s) => Err(s),
            },
        };
        match woke {
            Ok(true) => idle.woke(),
            // SAFETY: the caller's contract.
            Ok(false) => return unsafe { real::poll(fds, 1, 0) },
            Err(Stop::CannotPark) => {
                let ms = poll_ms(t);
                // SAFETY: the caller's contract.
                return unsafe { real::poll(fds, 1, ms) };
            }
            Err(s) => return crate::io::fail(s) as c_int,
        }
    }
}

/// libc's `poll`.
///
/// # Safety
/// libc's contract for `poll`.
#[no_mangle]
pub unsafe extern "C" fn poll(fds: *mut pollfd, n: nfds_t, timeout: c_int) -> c_int {
    if timeout != 0 {
        match crate::parks(Patch::SELECT) {
            Ok(()) => {
                let t = u64::try_from(timeout).ok().map(Duration::from_millis);
                // SAFETY: the caller's contract is libc's.
                return crate::io::guarded(-1, || unsafe { poll_cooperative(fds, n, t) });
            }
            Err(Some(s)) => return crate::io::fail(s) as c_int,
            Err(None) => {}
        }
    }
    // SAFETY: the caller's contract is libc's.
    unsafe { real::poll(fds, n, timeout) }
}

/// libc's `ppoll`; with a signal mask it is the real call (the mask cannot be
/// applied atomically around a park).
///
/// # Safety
/// libc's contract for `ppoll`.
#[no_mangle]
pub unsafe extern "C" fn ppoll(
    fds: *mut pollfd,
    n: nfds_t,
    timeout: *const timespec,
    mask: *const sigset_t,
) -> c_int {
    // SAFETY: `timeout` is null or valid (the caller's contract).
    let t = unsafe { timeout.as_ref() };
    let zero = t.is_some_and(|t| t.tv_sec == 0 && t.tv_nsec == 0);
    if mask.is_null() && !zero {
        let d = match t {
            None => None,
            Some(t) if t.tv_sec >= 0 && (0..1_000_000_000).contains(&t.tv_nsec) => {
                Some(Duration::new(t.tv_sec as u64, t.tv_nsec as u32))
            }
            // Invalid: libc says EINVAL.
            // SAFETY: the caller's contract is libc's.
            Some(_) => return unsafe { real::ppoll(fds, n, timeout, mask) },
        };
        match crate::parks(Patch::SELECT) {
            Ok(()) => {
                // SAFETY: the caller's contract is libc's.
                return crate::io::guarded(-1, || unsafe { poll_cooperative(fds, n, d) });
            }
            Err(Some(s)) => return crate::io::fail(s) as c_int,
            Err(None) => {}
        }
    }
    // SAFETY: the caller's contract is libc's.
    unsafe { real::ppoll(fds, n, timeout, mask) }
}

/// The fds set in `set` below `n`.
///
/// # Safety
/// `set` is null or a valid fd_set.
unsafe fn members(set: *const fd_set, n: c_int) -> impl Iterator<Item = c_int> {
    // SAFETY: the caller's contract; FD_ISSET only reads the set.
    let set = unsafe { set.as_ref() };
    (0..n).filter(move |&fd| set.is_some_and(|s| unsafe { libc::FD_ISSET(fd, s) }))
}

/// A select cooperatively: the sets are kept, asked with a zero timeout after each
/// wake-up, and written back with the answer.
///
/// # Safety
/// As `select`'s own contract; `n` is within `FD_SETSIZE`.
unsafe fn select_cooperative(
    n: c_int,
    r: *mut fd_set,
    w: *mut fd_set,
    e: *mut fd_set,
    timeout: *mut timeval,
) -> c_int {
    // SAFETY: the caller's contract.
    let t = unsafe { timeout.as_ref() }
        .map(|tv| Duration::from_secs(tv.tv_sec as u64) + Duration::from_micros(tv.tv_usec as u64));
    let deadline = t.and_then(|d| Instant::now().checked_add(d));
    // SAFETY: the caller's contract: each set is null or valid.
    let keep = |s: *mut fd_set| unsafe { s.as_ref().copied() };
    let (r0, w0, e0) = (keep(r), keep(w), keep(e));
    let mut want: Vec<(c_int, bool, bool)> = Vec::new();
    // SAFETY: the sets are valid or null (the caller's contract).
    unsafe {
        let reads: Vec<c_int> = members(r, n).chain(members(e, n)).collect();
        let writes: Vec<c_int> = members(w, n).collect();
        for fd in reads {
            want.push((fd, true, false));
        }
        for fd in writes {
            want.push((fd, false, true));
        }
    }
    let mut idle = Idle::default();
    let restore = |s: *mut fd_set, k: &Option<fd_set>| {
        if let (Some(p), Some(k)) = (
            // SAFETY: the caller's contract: each set is null or valid.
            unsafe { s.as_mut() },
            k,
        ) {
            *p = *k;
        }
    };
    loop {
        let mut zero = timeval {
            tv_sec: 0,
            tv_usec: 0,
        };
        // SAFETY: the caller's contract; the zero timeval is ours.
        let got = unsafe { real::select(n, r, w, e, &mut zero) };
        if got != 0 {
            // As Linux, the time left is written back.
            // SAFETY: `timeout` is null or valid (the caller's contract).
            if let (Some(tv), Some(l)) = (unsafe { timeout.as_mut() }, left(deadline)) {
                *tv = timeval {
                    tv_sec: l.as_secs() as libc::time_t,
                    tv_usec: l.subsec_micros() as libc::suseconds_t,
                };
            }
            return got;
        }
        let left = left(deadline);
        let woke = if left.is_some_and(|d| d.is_zero()) {
            Ok(false)
        } else if want.is_empty() {
            seam::sleep(left.unwrap_or(Duration::MAX)).map(|()| false)
        } else if let Some(pause) = idle.pause(left) {
            seam::sleep(pause).map(|()| true)
        } else {
            seam::wait_fds(&want, left)
        };
        // The zero-timeout select cleared the sets: ask again with the caller's.
        restore(r, &r0);
        restore(w, &w0);
        restore(e, &e0);
        match woke {
            Ok(true) => {
                idle.woke();
                continue;
            }
            Ok(false) => {
                // SAFETY: `timeout` is null or valid (the caller's contract).
                if let Some(tv) = unsafe { timeout.as_mut() } {
                    *tv = timeval {
                        tv_sec: 0,
                        tv_usec: 0,
                    };
                }
                let mut zero = timeval {
                    tv_sec: 0,
                    tv_usec: 0,
                };
                // SAFETY: as above.
                return unsafe { real::select(n, r, w, e, &mut zero) };
            }
            Err(Stop::CannotPark) => {
                // SAFETY: as above.
                return unsafe { real::select(n, r, w, e, timeout) };
            }
            Err(s) => return crate::io::fail(s) as c_int,
        }
    }
}

/// libc's `select`.
///
/// # Safety
/// libc's contract for `select`.
#[no_mangle]
pub unsafe extern "C" fn select(
    n: c_int,
    r: *mut fd_set,
    w: *mut fd_set,
    e: *mut fd_set,
    timeout: *mut timeval,
) -> c_int {
    // SAFETY: `timeout` is null or valid (the caller's contract).
    let tv = unsafe { timeout.as_ref() };
    let zero = tv.is_some_and(|t| t.tv_sec == 0 && t.tv_usec == 0);
    let valid = tv.is_none_or(|t| t.tv_sec >= 0 && (0..1_000_000).contains(&t.tv_usec));
    if !zero && valid && (0..=libc::FD_SETSIZE as c_int).contains(&n) {
        match crate::parks(Patch::SELECT) {
            Ok(()) => {
                // SAFETY: the caller's contract is libc's; `n` is checked above.
                return crate::io::guarded(-1, || unsafe {
                    select_cooperative(n, r, w, e, timeout)
                });
            }
            Err(Some(s)) => return crate::io::fail(s) as c_int,
            Err(None) => {}
        }
    }
    // SAFETY: the caller's contract is libc's.
    unsafe { real::select(n, r, w, e, timeout) }
}
