//! The hub's error vocabulary: what a blocking call returns instead of hanging.

use crate::greenlet::SwitchError;
use std::fmt;
use std::io;

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a blocking operation could not complete.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The loop ran out of work while this greenlet waited: nothing can ever wake it
    /// (gevent's `LoopExit`). Names what was waited on.
    WouldBlockForever(String),
    /// A blocking call was made on the hub itself (inside a raw watcher callback or a
    /// `run_callback`), which would deadlock: the hub is what wakes greenlets up.
    BlockingInHub(&'static str),
    /// A blocking call was made while the thread is unwinding from a panic.
    Unwinding,
    /// The timeout given to the operation expired.
    TimedOut,
    /// The event loop failed.
    Loop(gevent_core::Error),
    /// A greenlet could not get a stack.
    Spawn(io::Error),
    /// A greenlet waited for (`joinall` with `raise_error`) panicked: its name and message.
    GreenletFailed(String),
    /// Something other than what the greenlet waits for switched into it while it
    /// waited (gevent's `InvalidSwitchError`): says what arrived.
    InvalidSwitch(String),
    /// The thread is ending: its hub no longer runs, so nothing could end the wait.
    ThreadExiting,
    /// A switch between greenlets failed: what [`SwitchError`] said.
    Switch(String),
    /// An OS thread the hub needs (a thread-pool worker, the blocking monitor) could
    /// not be started.
    ThreadSpawn(io::Error),
    /// A [`Timeout`](crate::Timeout) was started while it was pending.
    AlreadyPending,
    /// A call that only the main greenlet may make (it waits for what the whole hub
    /// does, as [`hub_wait`](crate::hub_wait)) was made from another greenlet.
    NotMainGreenlet(&'static str),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::WouldBlockForever(what) => write!(
                f,
                "this operation would block forever: waiting for {what}, but the hub has nothing left that could wake it"
            ),
            Error::BlockingInHub(what) => write!(
                f,
                "cannot block ({what}) in the hub: this is a watcher callback or run_callback; spawn a greenlet to block"
            ),
            Error::Unwinding => f.write_str("cannot block while the thread is unwinding from a panic"),
            Error::TimedOut => f.write_str("timed out"),
            Error::Loop(e) => write!(f, "event loop error: {e}"),
            Error::Spawn(e) => write!(f, "cannot start a greenlet: {e}"),
            Error::Switch(e) => write!(f, "{e}"),
            Error::ThreadSpawn(e) => write!(f, "cannot start a thread: {e}"),
            Error::GreenletFailed(m) => write!(f, "greenlet failed: {m}"),
            Error::AlreadyPending => {
                f.write_str("the Timeout is already pending: cancel it before starting it again")
            }
            Error::NotMainGreenlet(what) => write!(
                f,
                "{what} can only be called from the main greenlet (the thread's own stack)"
            ),
            Error::ThreadExiting => f.write_str(
                "this thread is ending: its hub was torn down and runs nothing any more"
            ),
            Error::InvalidSwitch(what) => write!(
                f,
                "invalid switch into a waiting greenlet: {what} arrived instead of a wake-up from what it waits for"
            ),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Loop(e) => Some(e),
            Error::Spawn(e) | Error::ThreadSpawn(e) => Some(e),
            _ => None,
        }
    }
}

impl From<gevent_core::Error> for Error {
    fn from(e: gevent_core::Error) -> Error {
        Error::Loop(e)
    }
}

impl From<Error> for io::Error {
    fn from(e: Error) -> io::Error {
        let kind = match &e {
            Error::TimedOut => io::ErrorKind::TimedOut,
            Error::WouldBlockForever(_) => io::ErrorKind::Deadlock,
            Error::Loop(_) | Error::Spawn(_) | Error::Switch(_) | Error::ThreadSpawn(_) => {
                io::ErrorKind::Other
            }
            Error::BlockingInHub(_)
            | Error::Unwinding
            | Error::GreenletFailed(_)
            | Error::InvalidSwitch(_)
            | Error::ThreadExiting => io::ErrorKind::Other,
            Error::AlreadyPending | Error::NotMainGreenlet(_) => io::ErrorKind::InvalidInput,
        };
        io::Error::new(kind, e)
    }
}

impl From<SwitchError> for Error {
    /// The two switch errors that have their own meaning in a wait map onto it.
    fn from(e: SwitchError) -> Error {
        match e {
            SwitchError::Unwinding => Error::Unwinding,
            SwitchError::ThreadExited => Error::ThreadExiting,
            e => Error::Switch(e.to_string()),
        }
    }
}
