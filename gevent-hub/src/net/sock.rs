//! The cooperative socket every `net` type wraps: a non-blocking socket and its fd's
//! state in the [readiness core](super::readiness).
//!
//! An operation is tried first; when the kernel says `EAGAIN`, the greenlet waits
//! through the core and tries again.
//!
//! ## The hot path
//! Per echo message a server should make one `recv` and one `send`, like a C server on
//! raw libev callbacks. Two things make that so:
//! - *Remembered readiness*: after a read that returned less than the buffer could
//!   hold, the socket is taken to be drained, and the next read waits for readiness
//!   first instead of paying for a `recv` that fails with `EAGAIN` (tokio does the
//!   same; gevent does not, and pays a failed `recv` before every wait).
//! - *Lazy disarm* (the core's, for fds whose closes it hears of): after a wake-up the
//!   read watcher stays started. If it fires while nobody waits, its callback stops it.
//!   In a request/response exchange the next wait finds it still armed, so libev never
//!   has to change the epoll set.
//!
//! A socket holds its fd's `Rc<FdState>`, so none of this looks the fd up.
//!
//! ## The user's non-blocking mode
//! The fd is always non-blocking. [`FdState::set_nonblocking`] only changes what the
//! user sees: in non-blocking mode an operation that would wait returns `WouldBlock`
//! instead, as std's non-blocking sockets do.
//!
//! ## Closing
//! [`Sock::close`] (and dropping the last handle) retires the fd's state in the core
//! first, which wakes a greenlet waiting on the socket with an error, so nobody waits on
//! a recycled fd. Two greenlets waiting to read (or to write) the same socket at once is
//! an error, not a hang.
//!
//! An explicit `close` while handles remain releases the socket at once (the peer sees
//! the connection end, a listener stops listening) but keeps its fd *number* reserved
//! until the last handle is dropped: an unconnected placeholder socket is `dup3`'d over
//! it, so a `BorrowedFd` taken from a handle never comes to name another file (what
//! `AsFd` promises). Using the placeholder fails (`ENOTCONN`, `EINVAL`). If no
//! placeholder can be had (out of fds), the socket is shut down instead and closed
//! with its last handle. The core forgets the number at the release, and again just
//! before the placeholder goes.

use super::readiness::{self, closed_error, Closes, Direction, FdState};
use socket2::Socket;
use std::cell::RefCell;
use std::io::{self, IoSliceMut, Read};
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;
use std::time::Duration;

/// A socket shared by the handles of one `net` object (`try_clone` shares it).
pub(crate) struct Sock {
    sock: RefCell<Option<Socket>>,
    /// After an explicit `close`: what holds the fd's number until the last handle goes
    /// (the placeholder, or the shut-down socket itself).
    reserved: RefCell<Option<Socket>>,
    state: Rc<FdState>,
}

impl Sock {
    /// Wraps a socket that is already non-blocking (e.g. from `accept4(SOCK_NONBLOCK)`).
    pub(crate) fn from_nonblocking(s: Socket) -> Sock {
        Sock {
            state: readiness::adopt(s.as_raw_fd()),
            sock: RefCell::new(Some(s)),
            reserved: RefCell::new(None),
        }
    }

    pub(crate) fn fd(&self) -> RawFd {
        self.state.fd()
    }

    /// The fd's state in the readiness core.
    pub(crate) fn state(&self) -> &FdState {
        &self.state
    }

    /// Runs `f` on the socket, or fails if it was closed.
    pub(crate) fn with<R>(&self, f: impl FnOnce(&Socket) -> io::Result<R>) -> io::Result<R> {
        match &*self.sock.borrow() {
            Some(s) => f(s),
            None => Err(closed_error("socket")),
        }
    }

    pub(crate) fn set_timeout(&self, dir: Direction, t: Option<Duration>) -> io::Result<()> {
        self.state.dir(dir).set_timeout(t)
    }

    pub(crate) fn timeout(&self, dir: Direction) -> Option<Duration> {
        self.state.dir(dir).timeout()
    }

    /// Waits until the socket is ready in `dir`, up to `timeout` (`None`: this
    /// direction's own timeout).
    pub(crate) fn wait(&self, dir: Direction, timeout: Option<Duration>) -> io::Result<()> {
        if self.sock.borrow().is_none() {
            return Err(closed_error("socket"));
        }
        self.state
            .wait(dir, timeout.or(self.timeout(dir)), Closes::Reported)
            .map_err(|e| e.into_io(dir, "socket"))
    }

    /// A stream read into buffers of `cap` bytes in all: `op` (one system call) is
    /// tried when the socket is believed readable, else after waiting for readability.
    fn read_with(
        &self,
        cap: usize,
        mut op: impl FnMut(&Socket) -> io::Result<usize>,
    ) -> io::Result<usize> {
        let d = self.state.dir(Direction::Read);
        loop {
            if d.is_ready() || self.state.is_nonblocking() {
                match self.with(&mut op) {
                    Ok(n) => {
                        // A short read means the socket is (very likely) drained.
                        if n < cap {
                            d.set_ready(false);
                        }
                        return Ok(n);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        d.set_ready(false);
                        if self.state.is_nonblocking() {
                            return Err(e);
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                }
            }
            if cap == 0 {
                return Ok(0);
            }
            self.wait(Direction::Read, None)?;
            d.set_ready(true);
        }
    }

    /// `recv` into `buf`, waiting for readability as needed.
    pub(crate) fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        let cap = buf.len();
        self.read_with(cap, |s| (&*s).read(buf))
    }

    /// `readv` into `bufs`, waiting for readability as needed.
    pub(crate) fn read_vectored(&self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        let cap = bufs.iter().map(|b| b.len()).sum();
        let n = bufs.len().min(libc::c_int::MAX as usize) as libc::c_int;
        self.read_with(cap, |s| {
            // SAFETY: IoSliceMut is ABI-compatible with iovec on Unix (std documents
            // it); readv writes at most each slice's length into it, and the fd is ours.
            let r = unsafe { libc::readv(s.as_raw_fd(), bufs.as_ptr().cast(), n) };
            crate::sys::cvt(r).map(|r| r as usize)
        })
    }

    /// Retries `op` (a non-blocking socket call) until it does not say `EAGAIN`, waiting
    /// in direction `dir` in between, up to `timeout`. In the user's non-blocking mode,
    /// `EAGAIN` is returned (`WouldBlock`) instead.
    pub(crate) fn io_op<R>(
        &self,
        dir: Direction,
        timeout: Option<Duration>,
        mut op: impl FnMut(&Socket) -> io::Result<R>,
    ) -> io::Result<R> {
        let d = self.state.dir(dir);
        loop {
            match self.with(&mut op) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    d.set_ready(false);
                    if self.state.is_nonblocking() {
                        return Err(e);
                    }
                    self.wait(dir, timeout)?;
                    d.set_ready(true);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                r => return r,
            }
        }
    }

    /// `send` (never raising SIGPIPE), waiting for writability as needed.
    pub(crate) fn write(&self, buf: &[u8]) -> io::Result<usize> {
        self.io_op(Direction::Write, None, |s| {
            s.send_with_flags(buf, libc::MSG_NOSIGNAL)
        })
    }

    /// Writes all of `buf` (gevent's `sendall`).
    pub(crate) fn write_all(&self, mut buf: &[u8]) -> io::Result<()> {
        while !buf.is_empty() {
            match self.write(buf) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::WriteZero,
                        "failed to write whole buffer",
                    ))
                }
                Ok(n) => buf = &buf[n..],
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Gives up the socket: the last handle gets it as it is, any other gets a `dup`
    /// of it while the shared socket is closed (its number stays reserved for the other
    /// handles). Either way the fd leaves the core, waking its waiters.
    ///
    /// # Errors
    /// A closed socket; `dup` errors.
    pub(crate) fn into_socket(self: Rc<Self>) -> io::Result<Socket> {
        if Rc::strong_count(&self) == 1 {
            return self.shut().ok_or_else(|| closed_error("socket"));
        }
        let copy = self.with(|s| s.try_clone())?;
        self.close();
        Ok(copy)
    }

    /// Closes the socket: retires its fd's state (waking waiters with an error, stopping
    /// the watchers) and releases the socket, keeping its fd number reserved until the
    /// last handle is dropped (see the module docs). Idempotent.
    pub(crate) fn close(&self) {
        let Some(s) = self.shut() else { return };
        *self.reserved.borrow_mut() = Some(reserve_number(s));
    }

    /// The part of closing shared with the last handle's drop: retire, take out.
    fn shut(&self) -> Option<Socket> {
        let s = self.sock.borrow_mut().take()?;
        self.state.retire();
        Some(s)
    }
}

/// Releases socket `s` but keeps its fd number taken: `dup3`s an unconnected socket
/// over it and returns the `Socket` that now owns the number (the placeholder). Falls
/// back to shutting `s` down and keeping it, if no placeholder can be made.
fn reserve_number(s: Socket) -> Socket {
    let fd = s.as_raw_fd();
    // SAFETY: a plain socket(2) call; the result is checked.
    let ph = unsafe {
        libc::socket(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            0,
        )
    };
    if let Ok(ph) = crate::sys::cvt(ph) {
        // SAFETY: both fds are open and ours; dup3 atomically closes what `fd` named
        // (the real socket, released once no other fd refers to it) and makes `fd`
        // name the placeholder. `s` keeps owning the number `fd`.
        let r = crate::sys::cvt(unsafe { libc::dup3(ph, fd, libc::O_CLOEXEC) });
        // SAFETY: `ph` is ours and no longer needed (on success `fd` is its copy). A
        // failed close of it leaks nothing more than the failure says.
        let _ = crate::sys::cvt(unsafe { libc::close(ph) });
        if r.is_ok() {
            return s;
        }
    }
    let _ = s.shutdown(std::net::Shutdown::Both);
    s
}

impl Drop for Sock {
    fn drop(&mut self) {
        // The last handle: the number may go now.
        drop(self.shut());
        if let Some(placeholder) = self.reserved.get_mut().take() {
            // Somebody may have waited on the placeholder's number meanwhile.
            readiness::forget(placeholder.as_raw_fd());
            drop(placeholder);
        }
    }
}

/// gevent's `wait_read`: waits until a foreign fd is readable, up to `timeout`.
///
/// The wait goes through the readiness core: the fd's io watcher is made on the first
/// wait and reused by every later one (closes of a foreign fd are not reported to the
/// core, so the watcher is disarmed when each wait ends, and a number that was closed
/// and reused meanwhile is watched afresh). At most one greenlet waits for an fd to
/// become readable at a time, and a net socket's own waits count.
///
/// # Errors
/// `TimedOut`; `ResourceBusy` if another greenlet waits to read `fd` already;
/// `NotConnected` if the fd was closed through the core (a net socket's `close`)
/// meanwhile; an error for a negative or closed fd; the hub's errors (would block
/// forever, called in the hub).
pub fn wait_read(fd: RawFd, timeout: Option<Duration>) -> io::Result<()> {
    wait_fd(fd, Direction::Read, timeout)
}

/// gevent's `wait_write`: waits until a foreign fd is writable, up to `timeout`.
///
/// # Errors
/// As [`wait_read`].
pub fn wait_write(fd: RawFd, timeout: Option<Duration>) -> io::Result<()> {
    wait_fd(fd, Direction::Write, timeout)
}

fn wait_fd(fd: RawFd, dir: Direction, timeout: Option<Duration>) -> io::Result<()> {
    readiness::wait(fd, dir, timeout, Closes::Unreported)
        .map_err(|e| e.into_io(dir, "file descriptor"))
}
