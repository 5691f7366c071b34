//! The cooperative socket core every `net` type is built on.
//!
//! A socket is non-blocking underneath. An operation is tried first; when the kernel
//! says `EAGAIN`, the greenlet waits on the socket's io watcher and tries again. Each
//! direction has one io watcher, made on first use and reused for every wait after
//! that (no allocation, no watcher re-creation per message).
//!
//! ## The hot path
//! Per echo message a server should make one `recv` and one `send`, like a C server on
//! raw libev callbacks. Two things make that so:
//! - *Remembered readiness*: after a read that returned less than the buffer could
//!   hold, the socket is taken to be drained, and the next read waits for readiness
//!   first instead of paying for a `recv` that fails with `EAGAIN` (tokio does the
//!   same; gevent does not, and pays a failed `recv` before every wait).
//! - *Lazy disarm*: after a wake-up the read watcher stays started. If it fires while
//!   nobody waits, its callback stops it. In a request/response exchange the next wait
//!   finds it still armed, so libev never has to change the epoll set.
//!
//! ## Closing
//! [`Sock::close`] (and dropping the last handle) wakes a greenlet waiting on the
//! socket with an error before the fd is closed, so nobody waits on a recycled fd.
//! Two greenlets waiting to read (or to write) the same socket at once is an error,
//! not a hang.
//!
//! An explicit `close` while handles remain releases the socket at once (the peer sees
//! the connection end, a listener stops listening) but keeps its fd *number* reserved
//! until the last handle is dropped: an unconnected placeholder socket is `dup3`'d over
//! it, so a `BorrowedFd` taken from a handle never comes to name another file (what
//! `AsFd` promises). Using the placeholder fails (`ENOTCONN`, `EINVAL`). If no
//! placeholder can be had (out of fds), the socket is shut down instead and closed
//! with its last handle.

use crate::hub::{get_hub, Wait, Waker};
use gevent_core::{Events, Io};
use socket2::Socket;
use std::cell::{Cell, RefCell};
use std::io::{self, Read};
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;
use std::time::Duration;

/// One direction (read or write) of a socket.
#[derive(Default)]
struct Direction {
    io: RefCell<Option<Io>>,
    /// The greenlet waiting in this direction, if any.
    waiter: Rc<RefCell<Option<Waker>>>,
    timeout: Cell<Option<Duration>>,
}

/// A socket shared by the handles of one `net` object (`try_clone` shares it).
pub(crate) struct Sock {
    sock: RefCell<Option<Socket>>,
    /// After an explicit `close`: what holds `fd`'s number until the last handle goes
    /// (the placeholder, or the shut-down socket itself).
    reserved: RefCell<Option<Socket>>,
    fd: RawFd,
    /// Believed readable: the last read filled the buffer, or nobody has looked yet.
    read_ready: Cell<bool>,
    read: Direction,
    write: Direction,
}

pub(crate) fn closed_error() -> io::Error {
    io::Error::new(
        io::ErrorKind::NotConnected,
        "the socket was closed (possibly by another greenlet while this one waited on it)",
    )
}

fn concurrent_error(dir: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::ResourceBusy,
        format!("another greenlet is already waiting to {dir} this socket; use one reader and one writer per socket"),
    )
}

fn timed_out(dir: &str) -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, format!("socket {dir} timed out"))
}

impl Sock {
    /// Wraps a socket that is already non-blocking (e.g. from `accept4(SOCK_NONBLOCK)`).
    pub(crate) fn from_nonblocking(s: Socket) -> Sock {
        Sock {
            fd: s.as_raw_fd(),
            sock: RefCell::new(Some(s)),
            reserved: RefCell::new(None),
            read_ready: Cell::new(true),
            read: Direction::default(),
            write: Direction::default(),
        }
    }

    pub(crate) fn fd(&self) -> RawFd {
        self.fd
    }

    /// Runs `f` on the socket, or fails if it was closed.
    pub(crate) fn with<R>(&self, f: impl FnOnce(&Socket) -> io::Result<R>) -> io::Result<R> {
        match &*self.sock.borrow() {
            Some(s) => f(s),
            None => Err(closed_error()),
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.sock.borrow().is_none()
    }

    pub(crate) fn set_timeout(&self, read: bool, t: Option<Duration>) -> io::Result<()> {
        if t == Some(Duration::ZERO) {
            // As std: a zero timeout is an error, not "no timeout".
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "cannot set a 0 duration timeout",
            ));
        }
        if read { &self.read } else { &self.write }.timeout.set(t);
        Ok(())
    }

    pub(crate) fn timeout(&self, read: bool) -> Option<Duration> {
        if read { &self.read } else { &self.write }.timeout.get()
    }

    /// Waits until the socket is readable (`read`) or writable, up to `timeout`
    /// (`None`: this direction's own timeout).
    pub(crate) fn wait(&self, read: bool, timeout: Option<Duration>) -> io::Result<()> {
        let dir = if read { &self.read } else { &self.write };
        let what = if read { "read from" } else { "write to" };
        if self.is_closed() {
            return Err(closed_error());
        }
        if dir.waiter.borrow().as_ref().is_some_and(Waker::is_valid) {
            return Err(concurrent_error(what));
        }
        let mut w = Wait::new(if read {
            "a socket to become readable"
        } else {
            "a socket to become writable"
        })
        .map_err(io::Error::from)?;
        if let Some(d) = timeout.or(dir.timeout.get()) {
            w.set_timeout(d).map_err(io::Error::from)?;
        }
        self.arm(dir, read)?;
        *dir.waiter.borrow_mut() = Some(w.waker());
        let r = w.park();
        dir.waiter.borrow_mut().take();
        if self.is_closed() {
            return Err(closed_error());
        }
        match r {
            Ok(true) => Ok(()),
            Ok(false) => {
                // Timed out: nobody waits now, so do not leave the watcher armed.
                if let Some(io) = &*dir.io.borrow() {
                    io.disarm();
                }
                Err(timed_out(if read { "read" } else { "write" }))
            }
            Err(e) => {
                if let Some(io) = &*dir.io.borrow() {
                    io.disarm();
                }
                Err(e.into())
            }
        }
    }

    /// Starts this direction's watcher (made on first use).
    fn arm(&self, dir: &Direction, read: bool) -> io::Result<()> {
        let mut slot = dir.io.borrow_mut();
        if let Some(io) = &*slot {
            return io.rearm().map_err(io::Error::from);
        }
        let hub = get_hub();
        let events = if read { Events::READ } else { Events::WRITE };
        let io = hub
            .get_loop()
            .io(self.fd, events)
            .map_err(io::Error::from)?;
        let waiter = dir.waiter.clone();
        io.start(move |w, _| {
            let waker = waiter.borrow().clone();
            match waker {
                Some(k) if k.is_valid() => k.wake(),
                // Ready while nobody waits: stop until somebody does (lazy disarm).
                _ => w.disarm(),
            }
        })
        .map_err(io::Error::from)?;
        *slot = Some(io);
        Ok(())
    }

    /// `recv` into `buf`, waiting for readability as needed.
    pub(crate) fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.read_ready.get() {
                match self.with(|s| (&*s).read(buf)) {
                    Ok(n) => {
                        // A short read means the socket is (very likely) drained.
                        if n < buf.len() {
                            self.read_ready.set(false);
                        }
                        return Ok(n);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.read_ready.set(false),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                }
            }
            if buf.is_empty() {
                return Ok(0);
            }
            self.wait(true, None)?;
            self.read_ready.set(true);
        }
    }

    /// Retries `op` (a non-blocking socket call) until it does not say `EAGAIN`, waiting
    /// in direction `read` in between, up to `timeout`.
    pub(crate) fn io_op<R>(
        &self,
        read: bool,
        timeout: Option<Duration>,
        mut op: impl FnMut(&Socket) -> io::Result<R>,
    ) -> io::Result<R> {
        loop {
            match self.with(&mut op) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.wait(read, timeout)?,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                r => return r,
            }
        }
    }

    /// `send` (never raising SIGPIPE), waiting for writability as needed.
    pub(crate) fn write(&self, buf: &[u8]) -> io::Result<usize> {
        self.io_op(false, None, |s| s.send_with_flags(buf, libc::MSG_NOSIGNAL))
    }

    /// Writes all of `buf` (gevent's `sendall`).
    pub(crate) fn write_all(&self, mut buf: &[u8]) -> io::Result<()> {
        while !buf.is_empty() {
            match self.write(buf)? {
                0 => {
                    return Err(io::Error::new(
                        io::ErrorKind::WriteZero,
                        "failed to write whole buffer",
                    ))
                }
                n => buf = &buf[n..],
            }
        }
        Ok(())
    }

    /// Closes the socket: wakes waiters (they get an error), stops the watchers, and
    /// releases the socket, keeping its fd number reserved until the last handle is
    /// dropped (see the module docs). Idempotent.
    pub(crate) fn close(&self) {
        let Some(s) = self.shut() else { return };
        *self.reserved.borrow_mut() = Some(reserve_number(s));
    }

    /// The part of closing shared with the last handle's drop: wake, stop, take out.
    fn shut(&self) -> Option<Socket> {
        let s = self.sock.borrow_mut().take()?;
        for dir in [&self.read, &self.write] {
            if let Some(io) = dir.io.borrow_mut().take() {
                io.stop();
            }
            let waiter = dir.waiter.borrow_mut().take();
            if let Some(w) = waiter {
                w.wake();
            }
        }
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
    if ph >= 0 {
        // SAFETY: both fds are open and ours; dup3 atomically closes what `fd` named
        // (the real socket, released once no other fd refers to it) and makes `fd`
        // name the placeholder. `s` keeps owning the number `fd`.
        let r = unsafe { libc::dup3(ph, fd, libc::O_CLOEXEC) };
        // SAFETY: `ph` is ours and no longer needed (on success `fd` is its copy).
        unsafe { libc::close(ph) };
        if r == fd {
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
        drop(self.reserved.get_mut().take());
    }
}

/// gevent's `wait_read`: waits until a foreign fd is readable, up to `timeout`.
///
/// # Errors
/// `TimedOut`, or the hub's errors (would block forever, called in the hub).
pub fn wait_read(fd: RawFd, timeout: Option<Duration>) -> io::Result<()> {
    wait_fd(fd, Events::READ, timeout)
}

/// gevent's `wait_write`: waits until a foreign fd is writable, up to `timeout`.
///
/// # Errors
/// As [`wait_read`].
pub fn wait_write(fd: RawFd, timeout: Option<Duration>) -> io::Result<()> {
    wait_fd(fd, Events::WRITE, timeout)
}

fn wait_fd(fd: RawFd, events: Events, timeout: Option<Duration>) -> io::Result<()> {
    let w = Wait::timed("a file descriptor", timeout).map_err(io::Error::from)?;
    let io = get_hub()
        .get_loop()
        .io(fd, events)
        .map_err(io::Error::from)?;
    let k = w.waker();
    io.start(move |_, _| k.wake()).map_err(io::Error::from)?;
    match w.park() {
        Ok(true) => Ok(()),
        Ok(false) => Err(timed_out("wait")),
        Err(e) => Err(e.into()),
    }
}
