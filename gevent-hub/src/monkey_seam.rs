//! What the monkey layer (`gevent-monkey`) needs of the hub, in terms of fd numbers
//! and without unwinding: its hooks run below C frames (they *are* libc's entry points
//! for the program), where a kill or a `Timeout` must not unwind. Every wait here
//! ends with a [`Stop`] instead, and the throw stays pending, marked deferred: it is
//! delivered at the greenlet's next blocking point in Rust, at the end of the
//! `with_timeout` it belongs to, or when the greenlet's function returns.
//!
//! Not an API: hidden from the docs, for `gevent-monkey` alone, and free to change
//! with it.

use crate::hub::{hub_if_any, Wait, Waitable};
use crate::net::readiness::{self, Direction, FdState, WaitError};
use crate::Error;
use gevent_core::Events;
use std::os::fd::RawFd;
use std::rc::Rc;
use std::time::Duration;

/// Why a wait ended without the fd (or the sleep) being done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// The fd's own timeout passed (`SO_RCVTIMEO`/`SO_SNDTIMEO`, a poll's timeout).
    TimedOut,
    /// The fd was closed through the core (another greenlet's `close`) meanwhile.
    Closed,
    /// A kill is pending for this greenlet: the call must fail.
    Killed,
    /// A [`Timeout`](crate::Timeout) expired for this greenlet: the call must fail.
    Expired,
    /// The loop has nothing else to do: waiting would never end (gevent's
    /// `LoopExit`).
    Deadlock,
    /// The hub cannot park this greenlet after all (the thread is ending): make the
    /// blocking call instead.
    CannotPark,
    /// libev refused the fd (not open).
    BadFd,
}

/// Where the calling code runs, for a hook's first decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// In a greenlet (or the main greenlet) of a running hub: park it.
    Cooperative,
    /// In the hub itself, on a thread without a hub, while the thread ends or a panic
    /// unwinds: make the blocking call.
    Blocking,
    /// This greenlet has a kill or an expired `Timeout` pending that it could not
    /// unwind for: fail at once (never block a greenlet that is being ended).
    Interrupted(Stop),
}

/// The calling code's [`Mode`]. Cheap: one thread-local read on the common path.
#[inline]
pub fn mode() -> Mode {
    match hub_if_any(|h| (h.is_current(), h.is_exiting())) {
        Some((false, false)) if !std::thread::panicking() => Mode::Cooperative,
        Some((false, true)) => match pending() {
            Some(s) => Mode::Interrupted(s),
            None => Mode::Blocking,
        },
        _ => Mode::Blocking,
    }
}

/// The kind of the running greenlet's pending throw, if it has one.
fn pending() -> Option<Stop> {
    let rec = crate::hub::record::current_record();
    let p = rec.pending_throw.take()?;
    let kind = if p.is::<crate::TimeoutExpired>() {
        Stop::Expired
    } else {
        Stop::Killed
    };
    rec.pending_throw.set(Some(p));
    Some(kind)
}

/// What ended a deferring park with a throw.
fn interrupted() -> Stop {
    pending().unwrap_or(Stop::Killed)
}

fn hub_stop(e: Error) -> Stop {
    match e {
        Error::WouldBlockForever(_) => Stop::Deadlock,
        _ => Stop::CannotPark,
    }
}

/// One direction: `false` read, `true` write.
fn dir(write: bool) -> Direction {
    if write {
        Direction::Write
    } else {
        Direction::Read
    }
}

/// This thread's readiness state of one fd number.
#[derive(Debug, Clone)]
pub struct Fd(Rc<FdState>);

/// The state of `fd` in this thread's readiness core, made on first use (`None` for a
/// negative fd or once the thread's registry is gone).
#[inline]
pub fn fd(fd: RawFd) -> Option<Fd> {
    readiness::state(fd).ok().map(Fd)
}

/// The state of `fd` if this thread's core has one (makes none).
pub fn fd_if_any(fd: RawFd) -> Option<Fd> {
    readiness::state_if_any(fd).map(Fd)
}

/// Forgets `fd` before its number can name another file (`close`, `dup2`/`dup3` onto
/// it): its waiters get [`Stop::Closed`].
pub fn forget(fd: RawFd) {
    readiness::forget(fd);
}

impl Fd {
    /// Whether an attempt in this direction is believed worth a system call.
    #[inline]
    pub fn is_ready(&self, write: bool) -> bool {
        self.0.dir(dir(write)).is_ready()
    }

    /// Records what the last attempt found.
    #[inline]
    pub fn set_ready(&self, write: bool, ready: bool) {
        self.0.dir(dir(write)).set_ready(ready);
    }

    /// The direction's timeout (`None`: none).
    #[inline]
    pub fn timeout(&self, write: bool) -> Option<Duration> {
        self.0.dir(dir(write)).timeout()
    }

    /// Sets the direction's timeout; zero means none, as for `SO_RCVTIMEO`.
    pub fn set_timeout(&self, write: bool, t: Option<Duration>) {
        let t = t.filter(|d| !d.is_zero());
        let _ = self.0.dir(dir(write)).set_timeout(t);
    }

    /// The monkey layer's tag: the fd number's generation when it set this state up
    /// (`None`: never).
    #[inline]
    pub fn tag(&self) -> Option<u32> {
        self.0.tag()
    }

    /// Records the generation it was set up at.
    pub fn set_tag(&self, generation: u32) {
        self.0.set_tag(generation);
    }

    /// Parks the running greenlet until the fd is ready in the direction, up to
    /// `timeout`. A second greenlet waiting in the same direction (two "threads"
    /// blocked in `accept` on one listener) waits on a watcher of its own.
    ///
    /// # Errors
    /// See [`Stop`].
    #[inline]
    pub fn wait(&self, write: bool, timeout: Option<Duration>) -> Result<(), Stop> {
        let d = dir(write);
        match self.0.wait_deferring(d, timeout) {
            Ok(()) => Ok(()),
            Err(WaitError::Busy) => {
                let st = self.0.clone();
                let r = wait_fds_as(&[(self.0.fd(), !write, write)], timeout, |w| {
                    st.add_other_waiter(d, w)
                });
                // Closed through the core meanwhile: only the first waiter was told.
                if self.0.is_retired() {
                    return Err(Stop::Closed);
                }
                match r {
                    Ok(true) => Ok(()),
                    Ok(false) => Err(Stop::TimedOut),
                    Err(s) => Err(s),
                }
            }
            Err(WaitError::TimedOut) => Err(Stop::TimedOut),
            Err(WaitError::Closed) => Err(Stop::Closed),
            Err(WaitError::Interrupted) => Err(interrupted()),
            Err(WaitError::Hub(e)) => Err(hub_stop(e)),
            Err(WaitError::Watcher(_)) => Err(Stop::BadFd),
        }
    }
}

/// Parks the running greenlet until one of `fds` (fd, readable, writable) is ready
/// (`Ok(true)`) or `timeout` passes (`Ok(false)`): a watcher of its own per fd, for
/// `poll`/`select` over many fds. The caller finds out which with a `poll` of timeout
/// zero afterwards.
///
/// # Errors
/// See [`Stop`]; [`Stop::BadFd`] if libev refuses one of the fds.
pub fn wait_fds(fds: &[(RawFd, bool, bool)], timeout: Option<Duration>) -> Result<bool, Stop> {
    wait_fds_as(fds, timeout, |_| {})
}

/// [`wait_fds`], handing the wait's waker to `also` before it parks (whoever else
/// must be able to end the wait: a close of the fd).
fn wait_fds_as(
    fds: &[(RawFd, bool, bool)],
    timeout: Option<Duration>,
    also: impl FnOnce(crate::hub::Waker),
) -> Result<bool, Stop> {
    let w = Wait::timed("file descriptors (poll/select)", timeout).map_err(hub_stop)?;
    also(w.waker());
    let lp = crate::hub::try_get_hub()
        .map_err(|_| Stop::CannotPark)?
        .get_loop()
        .clone();
    let mut watchers = Vec::with_capacity(fds.len());
    for &(fd, r, wr) in fds {
        let mut ev = Events::from_bits(0);
        if r {
            ev |= Events::READ;
        }
        if wr {
            ev |= Events::WRITE;
        }
        if ev.is_empty() {
            continue;
        }
        let io = lp.io(fd, ev).map_err(|_| Stop::BadFd)?;
        let k = w.waker();
        io.start(move |_, _| k.wake_now())
            .map_err(|_| Stop::BadFd)?;
        watchers.push(io);
    }
    drop(lp);
    let r = w.park_or_defer();
    drop(watchers);
    match r {
        Ok(Some(woken)) => Ok(woken),
        Ok(None) => Err(interrupted()),
        Err(e) => Err(hub_stop(e)),
    }
}

/// Parks the running greenlet for `d` (a hooked `nanosleep`).
///
/// # Errors
/// [`Stop::Killed`]/[`Stop::Expired`] (the sleep ends early), or the hub's.
pub fn sleep(d: Duration) -> Result<(), Stop> {
    let w = Wait::timed("sleep", Some(d)).map_err(hub_stop)?;
    loop {
        match w.park_or_defer() {
            Ok(Some(false)) => return Ok(()),
            // Nothing else holds this wait's wakers.
            Ok(Some(true)) => continue,
            Ok(None) => return Err(interrupted()),
            Err(e) => return Err(hub_stop(e)),
        }
    }
}

/// Runs the blocking `f` on this thread's default thread pool and parks the running
/// greenlet until it is done (gevent's threaded resolver). If the wait is interrupted,
/// `f` still runs to its end and its value is dropped on the worker.
///
/// # Errors
/// See [`Stop`]; [`Stop::CannotPark`] also if the pool could not run `f`.
pub fn run_blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, Stop> {
    // A greenlet being killed starts no more work.
    if let Some(s) = pending() {
        return Err(s);
    }
    // The task first: handing it over may wait itself (in a fork's child, see
    // `threadpool::settle_after_fork`), which would end a wait begun before it.
    let task = crate::threadpool::default_pool().spawn(f);
    let w = Wait::new("a blocking call on the thread pool").map_err(hub_stop)?;
    while !task.is_ready() {
        task.subscribe(w.waker());
        match w.park_or_defer() {
            Ok(Some(_)) => {}
            Ok(None) => return Err(interrupted()),
            Err(e) => return Err(hub_stop(e)),
        }
    }
    drop(w);
    task.join().map_err(|_| Stop::CannotPark)
}

/// In a child process just forked from this thread: the hub's loop is told (libev
/// makes a new backend at its next iteration), and the thread pool, whose workers did
/// not come along, is let go of (kept reachable, never dropped). For the child only.
pub fn after_fork_in_child() {
    hub_if_any(|h| h.get_loop().fork());
    crate::threadpool::forget_default_pool_after_fork();
}

/// Makes this thread's hub if it has none (`patch_all` marks the calling thread's hub).
///
/// # Errors
/// The hub could not be made.
pub fn ensure_hub() -> crate::Result<()> {
    crate::hub::try_get_hub().map(drop)
}

/// Puts back a kill or a `Timeout` that unwound into a hook's guard (it is delivered
/// later, as a deferred throw); any other payload (a defect's panic, already reported
/// by the panic hook) is dropped.
pub fn defer_throw(p: crate::greenlet::PanicPayload) {
    if p.is::<crate::GreenletExit>() || p.is::<crate::TimeoutExpired>() {
        crate::hub::record::current_record().defer_throw(p);
    }
}
