//! The crate's one error vocabulary.
//!
//! libev `assert`s or `abort`s on many misuses (a negative fd, one signal on two loops,
//! a child watcher off the default loop, …). Every such case reachable from the safe
//! API is checked first and reported as one of these variants instead. A panic in a
//! callback is not an error of this kind: it travels as a [`PanicPayload`].

use std::fmt;
use std::io;

/// A panic payload, as `std::panic::catch_unwind` returns it.
pub type PanicPayload = Box<dyn std::any::Any + Send + 'static>;

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, with enough detail for a person to act on it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// A file descriptor below zero was given to an io watcher.
    NegativeFd(i32),
    /// The file descriptor is not open (`fcntl(F_GETFD)` failed with `EBADF`).
    ClosedFd(i32),
    /// An io event mask with bits other than `READ` and `WRITE`.
    InvalidEvents(u32),
    /// A signal number outside `1..NSIG`.
    SignalOutOfRange(i32),
    /// A signal that cannot be caught (`SIGKILL`, `SIGSTOP`).
    SignalUncatchable(i32),
    /// The signal is already watched by another loop; libev allows one loop per signal.
    SignalInUse(i32),
    /// Child watchers work only on the default loop (it alone reaps children).
    ChildOffDefaultLoop,
    /// A negative pid was given to a child watcher (0 means "any child").
    InvalidPid(i32),
    /// A priority outside `MINPRI..=MAXPRI`.
    PriorityOutOfRange(i32),
    /// The operation needs a stopped watcher (changing priority, fd, timer values, …).
    WatcherActive(&'static str),
    /// The watcher has no callback to run (e.g. `Timer::again` before any `start`).
    NoCallback(&'static str),
    /// A backend or flag name that libev does not know; lists the valid ones.
    UnknownBackend {
        /// The name that was given.
        name: String,
        /// The names that are accepted.
        valid: &'static str,
    },
    /// The requested backend is not available on this kernel or build.
    BackendUnavailable(String),
    /// libev could not create the loop.
    LoopCreate,
    /// The default loop belongs to another thread; a loop is used by one thread only.
    DefaultLoopInUse,
    /// The loop is being destroyed: a cleanup callback tried to start a watcher on it or
    /// to get it back (`Loop::default_loop` included).
    LoopReleased,
    /// A path with an interior NUL byte.
    InvalidPath,
    /// libev reported a fatal system error (its `syserr` callback), with `errno`.
    System {
        /// libev's message, e.g. `"(libev) epoll_wait"`.
        message: String,
        /// `errno` at the time of the report.
        errno: i32,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NegativeFd(fd) => write!(f, "invalid file descriptor {fd}: must not be negative"),
            Error::ClosedFd(fd) => write!(f, "file descriptor {fd} is not open"),
            Error::InvalidEvents(m) => {
                write!(f, "illegal io event mask {m:#x}: only READ ({:#x}) and WRITE ({:#x}) are allowed", 1, 2)
            }
            Error::SignalOutOfRange(s) => {
                write!(f, "signal number {s} is out of range 1..{}", crate::sys::NSIG)
            }
            Error::SignalUncatchable(s) => write!(f, "signal {s} cannot be caught (SIGKILL and SIGSTOP never can)"),
            Error::SignalInUse(s) => write!(
                f,
                "signal {s} is already watched by another loop; libev delivers a signal to one loop only"
            ),
            Error::ChildOffDefaultLoop => {
                write!(f, "child watchers work only on the default loop (Loop::default_loop())")
            }
            Error::InvalidPid(p) => write!(f, "invalid pid {p} for a child watcher (0 means any child)"),
            Error::PriorityOutOfRange(p) => write!(
                f,
                "priority {p} is out of range {}..={}",
                crate::sys::MINPRI,
                crate::sys::MAXPRI
            ),
            Error::WatcherActive(what) => write!(f, "cannot {what} while the watcher is active; stop it first"),
            Error::NoCallback(w) => write!(f, "the {w} watcher has no callback; start it with one first"),
            Error::UnknownBackend { name, valid } => {
                write!(f, "unknown libev backend or flag {name:?}; valid names: {valid}")
            }
            Error::BackendUnavailable(b) => write!(f, "backend {b} is not available on this system"),
            Error::LoopCreate => write!(f, "libev could not create an event loop"),
            Error::DefaultLoopInUse => write!(
                f,
                "the default loop belongs to another thread; create a Loop::new() for this thread"
            ),
            Error::LoopReleased => write!(f, "the loop is being destroyed and cannot run again"),
            Error::InvalidPath => write!(f, "path contains a NUL byte"),
            Error::System { message, errno } => {
                write!(f, "{message}: {}", io::Error::from_raw_os_error(*errno))
            }
        }
    }
}

impl std::error::Error for Error {}

impl From<Error> for io::Error {
    fn from(e: Error) -> io::Error {
        let kind = match &e {
            Error::ClosedFd(_) => io::ErrorKind::NotFound,
            Error::DefaultLoopInUse | Error::SignalInUse(_) => io::ErrorKind::ResourceBusy,
            Error::BackendUnavailable(_) => io::ErrorKind::Unsupported,
            Error::System { errno, .. } => io::Error::from_raw_os_error(*errno).kind(),
            Error::LoopCreate | Error::LoopReleased => io::ErrorKind::Other,
            _ => io::ErrorKind::InvalidInput,
        };
        io::Error::new(kind, e)
    }
}
