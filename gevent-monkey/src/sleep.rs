//! The sleeps: `nanosleep`, `clock_nanosleep` (std's `thread::sleep`), `usleep`,
//! `sleep`. On a thread that patched sleeping, a greenlet's sleep parks it on a hub
//! timer; everywhere else the real call.
//!
//! A kill or a `Timeout` that lands during a sleep ends it early, reported as a sleep
//! that completed (0): a caller retrying on `EINTR` with the time left, as std does,
//! would otherwise call again at once, forever. The kill is delivered at the
//! greenlet's next blocking point in Rust (see the crate docs).

use crate::{errno, real, Patch};
use gevent_hub::monkey_seam::{self as seam, Stop};
use libc::{c_int, c_uint, clockid_t, timespec};
use std::time::Duration;

/// What a cooperative sleep of `d` ended with: `Some(())` slept (or ended early by a
/// kill), `None` make the real call.
#[inline]
fn park(d: Duration) -> Option<()> {
    match crate::parks(Patch::SLEEP) {
        Ok(()) => {}
        Err(None) => return None,
        // Being killed: the sleep ends at once, as if completed.
        Err(Some(_)) => return Some(()),
    }
    let r = crate::io::guarded(-1, || match seam::sleep(d) {
        Ok(()) | Err(Stop::Killed | Stop::Expired) => 0,
        Err(_) => -1,
    });
    (r == 0).then_some(())
}

/// A relative timespec as a duration; `None` if libc would refuse it (`EINVAL`).
fn duration(ts: &timespec) -> Option<Duration> {
    if ts.tv_sec < 0 || !(0..1_000_000_000).contains(&ts.tv_nsec) {
        return None;
    }
    Some(Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32))
}

/// libc's `nanosleep`.
///
/// # Safety
/// libc's contract for `nanosleep`.
#[no_mangle]
pub unsafe extern "C" fn nanosleep(req: *const timespec, rem: *mut timespec) -> c_int {
    // SAFETY: `req` is null or valid (the caller's contract).
    if let Some(d) = unsafe { req.as_ref() }.and_then(duration) {
        if park(d).is_some() {
            return 0;
        }
    }
    // SAFETY: the caller's contract is libc's.
    unsafe { real::nanosleep(req, rem) }
}

/// libc's `clock_nanosleep` (what std's `thread::sleep` calls). Relative sleeps and
/// `TIMER_ABSTIME` on the wall and monotonic clocks park; CPU-time clocks and bad
/// input are libc's.
///
/// # Safety
/// libc's contract for `clock_nanosleep`.
#[no_mangle]
pub unsafe extern "C" fn clock_nanosleep(
    clock: clockid_t,
    flags: c_int,
    req: *const timespec,
    rem: *mut timespec,
) -> c_int {
    let parks = matches!(
        clock,
        libc::CLOCK_REALTIME | libc::CLOCK_MONOTONIC | libc::CLOCK_BOOTTIME | libc::CLOCK_TAI
    );
    // SAFETY: `req` is null or valid (the caller's contract).
    if let (true, Some(ts)) = (parks, unsafe { req.as_ref() }) {
        let d = if flags & libc::TIMER_ABSTIME != 0 {
            until(clock, ts)
        } else {
            duration(ts)
        };
        if let Some(d) = d {
            if park(d).is_some() {
                return 0;
            }
        }
    }
    // SAFETY: the caller's contract is libc's.
    unsafe { real::clock_nanosleep(clock, flags, req, rem) }
}

/// The time from now until the absolute `ts` on `clock` (zero if past).
fn until(clock: clockid_t, ts: &timespec) -> Option<Duration> {
    let target = duration(ts)?;
    let mut now = timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    let saved = errno::get();
    // SAFETY: writes one timespec we own.
    let r = unsafe { libc::clock_gettime(clock, &mut now) };
    errno::set(saved);
    if r != 0 {
        return None;
    }
    Some(target.saturating_sub(duration(&now)?))
}

/// libc's `usleep`.
///
/// # Safety
/// libc's contract for `usleep`.
#[no_mangle]
pub unsafe extern "C" fn usleep(us: libc::useconds_t) -> c_int {
    if park(Duration::from_micros(u64::from(us))).is_some() {
        return 0;
    }
    // SAFETY: the caller's contract is libc's.
    unsafe { real::usleep(us) }
}

/// libc's `sleep`: returns the seconds left unslept (0).
///
/// # Safety
/// libc's contract for `sleep`.
#[no_mangle]
pub unsafe extern "C" fn sleep(secs: c_uint) -> c_uint {
    if park(Duration::from_secs(u64::from(secs))).is_some() {
        return 0;
    }
    // SAFETY: the caller's contract is libc's.
    unsafe { real::sleep(secs) }
}
