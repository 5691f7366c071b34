//! Waiting for many file descriptors at once (gevent's `gevent.select`): [`poll`] and
//! [`select`] with libc's semantics, parking the greenlet instead of the thread.
//!
//! ```
//! use gevent_hub::select::{poll, PollFd, PollFlags};
//! use std::io::Write;
//! use std::os::unix::net::UnixStream;
//! use std::time::Duration;
//!
//! let (a, mut b) = UnixStream::pair()?;
//! let mut fds = [PollFd::new(&a, PollFlags::IN), PollFd::new(&b, PollFlags::IN)];
//! // Nothing to read yet: the timeout ends the wait.
//! assert_eq!(poll(&mut fds, Some(Duration::from_millis(1)))?, 0);
//! b.write_all(b"x")?;
//! assert_eq!(poll(&mut fds, None)?, 1);
//! assert!(fds[0].revents().contains(PollFlags::IN));
//! assert!(fds[1].revents().is_empty());
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! ## How a call waits
//! A call first asks the kernel with a real `poll(2)` of timeout zero. If something
//! is ready (or an fd is invalid), that is the answer, exactly as libc's. Otherwise the
//! greenlet parks once on all the fds through the [readiness core](crate::net) (each
//! fd and direction its watcher, made once and reused across calls), and the first
//! that becomes ready, or the timeout, wakes it; it then asks `poll(2)` again, so
//! what it returns is always the kernel's word, never a guess from a wake-up.
//!
//! ## libc's semantics, and where they stop
//! - [`PollFlags::ERR`], [`PollFlags::HUP`] and [`PollFlags::NVAL`] are reported
//!   whether asked for or not; a closed or never-opened fd number gives `NVAL` (and
//!   [`select`] fails with `EBADF`, as `select(2)` does). A negative fd is ignored
//!   (its `revents` is empty).
//! - Interest is readable ([`PollFlags::IN`]) and writable ([`PollFlags::OUT`]): the
//!   event loop has no event for priority data, so `POLLPRI` is not offered. An fd
//!   asked for neither is checked by each `poll(2)` (for `ERR`/`HUP`) but does not
//!   end a wait by itself.
//! - [`select`] has no `FD_SETSIZE` limit (it is built on `poll`), and, as gevent's,
//!   no exceptional-condition list.
//! - A timeout of `None` waits without a bound; `Some(Duration::ZERO)` only checks.
//!
//! Fds are taken by number ([`PollFd::from_raw_fd`]) or from anything that has one
//! ([`PollFd::new`]), because libc's semantics are about numbers: a closed number
//! answers `NVAL`, which a [`BorrowedFd`](std::os::fd::BorrowedFd) could not even
//! express, and an array of `PollFd`s borrows nothing, so it can be kept and reused
//! across calls as a `pollfd` array is.

use crate::net::readiness::{self, Closes, Direction, WaitError};
use std::fmt;
use std::io;
use std::ops::{BitOr, BitOrAssign};
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::time::{Duration, Instant};

/// `poll(2)`'s event bits: what to wait for ([`IN`](PollFlags::IN),
/// [`OUT`](PollFlags::OUT)) and what came back (those, and [`ERR`](PollFlags::ERR),
/// [`HUP`](PollFlags::HUP), [`NVAL`](PollFlags::NVAL)).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct PollFlags(libc::c_short);

impl PollFlags {
    /// No events.
    pub const EMPTY: PollFlags = PollFlags(0);
    /// Readable: data to read, a connection to accept, or the end of the stream
    /// (`POLLIN`).
    pub const IN: PollFlags = PollFlags(libc::POLLIN);
    /// Writable (`POLLOUT`).
    pub const OUT: PollFlags = PollFlags(libc::POLLOUT);
    /// An error condition (`POLLERR`; reported, never asked for).
    pub const ERR: PollFlags = PollFlags(libc::POLLERR);
    /// Hung up: the other end closed (`POLLHUP`; reported, never asked for).
    pub const HUP: PollFlags = PollFlags(libc::POLLHUP);
    /// Not an open fd (`POLLNVAL`; reported, never asked for).
    pub const NVAL: PollFlags = PollFlags(libc::POLLNVAL);

    /// The raw bits.
    pub fn bits(self) -> libc::c_short {
        self.0
    }

    /// Whether every bit of `other` is set.
    pub fn contains(self, other: PollFlags) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether any bit of `other` is set.
    pub fn intersects(self, other: PollFlags) -> bool {
        self.0 & other.0 != 0
    }

    /// Whether no bit is set.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl BitOr for PollFlags {
    type Output = PollFlags;
    fn bitor(self, rhs: PollFlags) -> PollFlags {
        PollFlags(self.0 | rhs.0)
    }
}

impl BitOrAssign for PollFlags {
    fn bitor_assign(&mut self, rhs: PollFlags) {
        self.0 |= rhs.0;
    }
}

impl fmt::Debug for PollFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = [
            (PollFlags::IN, "IN"),
            (PollFlags::OUT, "OUT"),
            (PollFlags::ERR, "ERR"),
            (PollFlags::HUP, "HUP"),
            (PollFlags::NVAL, "NVAL"),
        ];
        let mut rest = self.0;
        let mut first = true;
        f.write_str("PollFlags(")?;
        for (flag, name) in names {
            if self.contains(flag) {
                if !first {
                    f.write_str(" | ")?;
                }
                f.write_str(name)?;
                first = false;
                rest &= !flag.0;
            }
        }
        if rest != 0 {
            if !first {
                f.write_str(" | ")?;
            }
            write!(f, "{rest:#x}")?;
        }
        f.write_str(")")
    }
}

/// One entry of a [`poll`]: an fd, what to wait for, what came back (libc's
/// `struct pollfd`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PollFd {
    fd: RawFd,
    events: PollFlags,
    revents: PollFlags,
}

impl PollFd {
    /// An entry for `fd`'s number waiting for `events` (only [`PollFlags::IN`] and
    /// [`PollFlags::OUT`] count; the others are always reported).
    pub fn new(fd: impl AsFd, events: PollFlags) -> PollFd {
        PollFd::from_raw_fd(fd.as_fd().as_raw_fd(), events)
    }

    /// An entry for the fd number `fd`, which need not be open: a closed one is
    /// reported as [`PollFlags::NVAL`], a negative one is ignored, as libc does.
    pub fn from_raw_fd(fd: RawFd, events: PollFlags) -> PollFd {
        PollFd {
            fd,
            events: PollFlags(events.0 & (libc::POLLIN | libc::POLLOUT)),
            revents: PollFlags::EMPTY,
        }
    }

    /// The fd number.
    pub fn fd(&self) -> RawFd {
        self.fd
    }

    /// What it waits for.
    pub fn events(&self) -> PollFlags {
        self.events
    }

    /// Changes what it waits for.
    pub fn set_events(&mut self, events: PollFlags) {
        *self = PollFd::from_raw_fd(self.fd, events);
    }

    /// What the last [`poll`] found (empty before the first).
    pub fn revents(&self) -> PollFlags {
        self.revents
    }
}

/// Waits until one of `fds` is ready, up to `timeout` (`None`: no limit), and returns
/// how many entries have a non-empty [`revents`](PollFd::revents) (0: the timeout
/// passed), as `poll(2)`; the greenlet parks meanwhile. See the
/// [module docs](self) for the semantics.
///
/// # Examples
/// ```
/// use gevent_hub::select::{poll, PollFd, PollFlags};
/// use std::os::unix::net::UnixStream;
///
/// let (a, _b) = UnixStream::pair()?;
/// let mut fds = [PollFd::new(&a, PollFlags::IN | PollFlags::OUT)];
/// assert_eq!(poll(&mut fds, None)?, 1);
/// assert_eq!(fds[0].revents(), PollFlags::OUT);
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// # Errors
/// `InvalidInput` for more entries than `poll(2)` takes; `poll(2)`'s errors; the
/// hub's (called in the hub, the loop ran out of work).
///
/// # Panics
/// A kill or a [`Timeout`](crate::Timeout) unwinds from the wait.
pub fn poll(fds: &mut [PollFd], timeout: Option<Duration>) -> io::Result<usize> {
    let mut raw: Vec<libc::pollfd> = fds
        .iter()
        .map(|p| libc::pollfd {
            fd: p.fd,
            events: p.events.0,
            revents: 0,
        })
        .collect();
    let n = libc::nfds_t::try_from(raw.len()).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "too many file descriptors for poll",
        )
    })?;
    let deadline = timeout.and_then(|d| Instant::now().checked_add(d));
    let mut left = timeout;
    // libev refused an fd that poll(2) does not report either: said if nothing is ready.
    let mut refused = None;
    loop {
        let ready = poll_now(&mut raw, n)?;
        if ready > 0 || left == Some(Duration::ZERO) {
            for (p, r) in fds.iter_mut().zip(&raw) {
                p.revents = PollFlags(r.revents);
            }
            return Ok(ready);
        }
        if let Some(e) = refused.take() {
            return Err(e);
        }
        let waits: Vec<_> = raw
            .iter()
            .filter(|r| r.fd >= 0)
            .flat_map(|r| {
                let read = (r.events & libc::POLLIN != 0).then_some(Direction::Read);
                let write = (r.events & libc::POLLOUT != 0).then_some(Direction::Write);
                [read, write].into_iter().flatten().map(|d| (r.fd, d))
            })
            .map(|(fd, d)| readiness::state(fd).map(|s| (s, d)))
            .collect::<Result<_, _>>()
            .map_err(poll_error)?;
        match readiness::wait_any(&waits, left, Closes::Unreported) {
            // Woken, or timed out: the kernel says which (the next poll_now).
            Ok(_) => {}
            // Closed through the core meanwhile: poll(2) reports what the number is now.
            Err(WaitError::Closed) => {}
            // Most likely closed before the watcher was made (poll(2) says NVAL).
            Err(e @ WaitError::Watcher(_)) => refused = Some(poll_error(e)),
            Err(e) => return Err(poll_error(e)),
        }
        // `None`: no timeout, or one too long for the clock.
        left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
    }
}

/// The error of a wait on many fds, which has no one direction to name (libev's
/// refusal of an fd and the hub's errors carry their own messages).
fn poll_error(e: WaitError) -> io::Error {
    match e {
        WaitError::Hub(e) => e.into(),
        WaitError::Watcher(e) => e.into(),
        // Not what `wait_any` ends with, which times out with `Ok(false)` and is
        // never busy or deferred.
        e => io::Error::other(format!(
            "poll: the wait for the file descriptors failed: {e:?}"
        )),
    }
}

/// One `poll(2)` of timeout zero over `raw`: how many entries have events.
fn poll_now(raw: &mut [libc::pollfd], n: libc::nfds_t) -> io::Result<usize> {
    loop {
        // SAFETY: `raw` holds `n` initialised pollfd structs, which poll reads and
        // whose revents it writes; a zero timeout never blocks.
        let r = unsafe { libc::poll(raw.as_mut_ptr(), n, 0) };
        match crate::sys::cvt(r) {
            Ok(r) => return Ok(r as usize),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

/// gevent's `select(rlist, wlist, timeout)`: waits until one of `read` is readable or
/// one of `write` writable, up to `timeout` (`None`: no limit), and returns those that
/// are (both empty: the timeout passed). As `select(2)`, an fd is readable when a
/// read would not block (data, end of stream, an error: `IN`, `HUP`, `ERR`) and
/// writable when a write would not (`OUT`, `ERR`).
///
/// # Examples
/// ```
/// use gevent_hub::select::select;
/// use std::io::Write;
/// use std::os::fd::AsRawFd;
/// use std::os::unix::net::UnixStream;
///
/// let (a, mut b) = UnixStream::pair()?;
/// b.write_all(b"ping")?;
/// // The ready ones come back as references into the lists given.
/// let (readers, writers) = ([a], [b]);
/// let (r, w) = select(&readers, &writers, None)?;
/// assert!(std::ptr::eq(r[0], &readers[0]));
/// assert_eq!(w.len(), 1);
/// // By number, too.
/// let fds = [readers[0].as_raw_fd()];
/// let (r, _) = select(&fds, &[] as &[i32], None)?;
/// assert_eq!(r, [&fds[0]]);
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// # Errors
/// `EBADF` (naming the fd) if one of them is not open or is negative, as
/// `select(2)`; otherwise as [`poll`].
///
/// # Panics
/// A kill or a [`Timeout`](crate::Timeout) unwinds from the wait.
pub fn select<'a, R: AsRawFd, W: AsRawFd>(
    read: &'a [R],
    write: &'a [W],
    timeout: Option<Duration>,
) -> io::Result<(Vec<&'a R>, Vec<&'a W>)> {
    let mut fds: Vec<PollFd> = read
        .iter()
        .map(|f| (f.as_raw_fd(), PollFlags::IN))
        .chain(write.iter().map(|f| (f.as_raw_fd(), PollFlags::OUT)))
        .map(|(fd, ev)| {
            if fd < 0 {
                Err(bad_fd(fd))
            } else {
                Ok(PollFd::from_raw_fd(fd, ev))
            }
        })
        .collect::<io::Result<_>>()?;
    poll(&mut fds, timeout)?;
    if let Some(p) = fds.iter().find(|p| p.revents.contains(PollFlags::NVAL)) {
        return Err(bad_fd(p.fd));
    }
    let (rs, ws) = fds.split_at(read.len());
    let readable = read
        .iter()
        .zip(rs)
        .filter(|(_, p)| {
            p.revents
                .intersects(PollFlags::IN | PollFlags::HUP | PollFlags::ERR)
        })
        .map(|(f, _)| f)
        .collect();
    let writable = write
        .iter()
        .zip(ws)
        .filter(|(_, p)| p.revents.intersects(PollFlags::OUT | PollFlags::ERR))
        .map(|(f, _)| f)
        .collect();
    Ok((readable, writable))
}

fn bad_fd(fd: RawFd) -> io::Error {
    let os = io::Error::from_raw_os_error(libc::EBADF);
    io::Error::new(
        os.kind(),
        format!("select: file descriptor {fd} is not open ({os})"),
    )
}
