//! Who owns libev's default loop.
//!
//! libev's default loop is one per process (a static struct in ev.c), but a loop
//! belongs to one thread (soundness rule 7). The first thread to ask for it owns it,
//! until every handle and watcher of it is gone and the loop is destroyed; another
//! thread asking meanwhile gets [`Error::DefaultLoopInUse`]. The owner is recorded
//! here, process-wide; the loop's state holds the [`DefaultLoopOwner`] token and drops
//! it once `ev_loop_destroy` has returned.

use crate::error::{Error, Result};
use crate::flags::Flags;
use libev_sys as ffi;
use std::marker::PhantomData;
use std::sync::{Mutex, MutexGuard};
use std::thread::ThreadId;

/// Which thread owns libev's default loop, while one does.
static OWNER: Mutex<Option<ThreadId>> = Mutex::new(None);

fn owner() -> MutexGuard<'static, Option<ThreadId>> {
    // The critical sections never panic, but a poisoned lock is still consistent.
    OWNER.lock().unwrap_or_else(|e| e.into_inner())
}

/// This thread's ownership of libev's default loop. Dropping it lets another thread
/// create the default loop again; the loop's state does so after `ev_loop_destroy`.
#[must_use]
pub(crate) struct DefaultLoopOwner {
    /// Owned by one thread, like the loop.
    _thread: PhantomData<*const ()>,
}

impl Drop for DefaultLoopOwner {
    fn drop(&mut self) {
        *owner() = None;
    }
}

/// Claims libev's default loop for this thread and creates it (`ev_default_loop`),
/// with child reaping stopped: it is opt-in, started by the first `Child` watcher.
/// The pointer is null when libev could not create the loop.
///
/// # Errors
/// [`Error::DefaultLoopInUse`] if another thread owns it; [`Error::LoopReleased`] if
/// this thread does (it is being destroyed right now: the caller found no live handle
/// to it, so this is one of its cleanup callbacks).
pub(crate) fn create(flags: Flags) -> Result<(*mut ffi::ev_loop, DefaultLoopOwner)> {
    let me = std::thread::current().id();
    {
        let mut owner = owner();
        match *owner {
            Some(t) if t == me => return Err(Error::LoopReleased),
            Some(_) => return Err(Error::DefaultLoopInUse),
            None => *owner = Some(me),
        }
    }
    let token = DefaultLoopOwner {
        _thread: PhantomData,
    };
    // SAFETY: no other thread can be inside ev_default_loop: it would have to own the
    // default loop, which this thread has just claimed.
    let raw = unsafe { ffi::ev_default_loop(flags.0) };
    if !raw.is_null() {
        // SAFETY: raw is the default loop, just created on this thread (rule 7).
        unsafe { ffi::libev_sys_child_reaping_stop(raw) };
    }
    Ok((raw, token))
}
