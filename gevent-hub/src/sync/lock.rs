//! `Lock` (a bounded semaphore of one) and `RLock` (re-entrant per greenlet).
//!
//! Neither guards data by itself, as in gevent: greenlets of one thread already share
//! data through `Rc<RefCell<…>>`; the lock orders who may touch it *across switches*
//! (a greenlet that blocks while holding a `RefCell` borrow would be a bug, one that
//! blocks while holding a `Lock` is the point).

use super::semaphore::{BoundedSemaphore, ReleaseError, SemaphoreGuard};
use crate::error::Result;
use crate::hub::Waitable;
use crate::hub::Waker;
use crate::spawn::current_id;
use std::cell::Cell;
use std::fmt;
use std::rc::Rc;
use std::time::Duration;

/// A mutual-exclusion lock for greenlets (gevent's `Lock`): a
/// [`BoundedSemaphore`] of one. Waiters get it in FIFO order. Cloning gives another
/// handle to the same lock.
///
/// ```
/// use gevent_hub::sync::Lock;
///
/// let lock = Lock::new();
/// {
///     let _g = lock.lock().unwrap();
///     assert!(lock.locked());
///     assert!(lock.try_lock().is_none());
/// }
/// assert!(!lock.locked());
/// assert!(lock.release().is_err(), "releasing an unlocked Lock is an error");
/// ```
#[derive(Clone)]
pub struct Lock {
    sem: BoundedSemaphore,
}

impl Default for Lock {
    fn default() -> Self {
        Lock::new()
    }
}

impl fmt::Debug for Lock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lock")
            .field("locked", &self.locked())
            .field("waiting", &self.sem.waiting())
            .finish()
    }
}

impl Lock {
    /// An unlocked lock.
    pub fn new() -> Lock {
        Lock {
            sem: BoundedSemaphore::new(1),
        }
    }

    /// True while someone holds it.
    pub fn locked(&self) -> bool {
        self.sem.locked()
    }

    /// Takes the lock, waiting for it if needed; released when the guard drops.
    ///
    /// # Errors
    /// [`Error::WouldBlockForever`](crate::Error::WouldBlockForever) when nothing left
    /// could release it; [`Error::BlockingInHub`](crate::Error::BlockingInHub).
    pub fn lock(&self) -> Result<LockGuard<'_>> {
        Ok(LockGuard::new(self.sem.guard()?))
    }

    /// [`lock`](Lock::lock), waiting at most `timeout`; `None` if it timed out.
    ///
    /// # Errors
    /// As [`lock`](Lock::lock).
    pub fn lock_timeout(&self, timeout: Duration) -> Result<Option<LockGuard<'_>>> {
        Ok(self.sem.guard_timeout(timeout)?.map(LockGuard::new))
    }

    /// Takes the lock if it is free, without waiting. Works in the hub.
    pub fn try_lock(&self) -> Option<LockGuard<'_>> {
        self.sem.try_guard().map(LockGuard::new)
    }

    /// Takes the lock without a guard; pair with [`release`](Lock::release).
    ///
    /// # Errors
    /// As [`lock`](Lock::lock).
    pub fn acquire(&self) -> Result<()> {
        self.sem.acquire()
    }

    /// [`acquire`](Lock::acquire), waiting at most `timeout`; returns whether it got it.
    ///
    /// # Errors
    /// As [`lock`](Lock::lock).
    pub fn acquire_timeout(&self, timeout: Duration) -> Result<bool> {
        self.sem.acquire_timeout(timeout)
    }

    /// Takes the lock if it is free; returns whether it did.
    pub fn try_acquire(&self) -> bool {
        self.sem.try_acquire()
    }

    /// Releases a lock taken with [`acquire`](Lock::acquire). Any greenlet may release
    /// it (as in gevent); the next waiter gets it.
    ///
    /// # Errors
    /// [`ReleaseError::TooManyReleases`] if it is not locked.
    pub fn release(&self) -> std::result::Result<(), ReleaseError> {
        self.sem.release()
    }
}

impl Waitable for Lock {
    /// True when it is free.
    fn is_ready(&self) -> bool {
        !self.locked()
    }
    fn subscribe(&self, w: Waker) {
        self.sem.subscribe(w);
    }
}

/// Holds a [`Lock`]; releases it when dropped.
#[must_use = "the lock is released as soon as the guard is dropped"]
#[derive(Debug)]
pub struct LockGuard<'a> {
    /// Released (the lock freed) when the guard drops.
    _permit: SemaphoreGuard<'a>,
}

impl<'a> LockGuard<'a> {
    fn new(permit: SemaphoreGuard<'a>) -> LockGuard<'a> {
        LockGuard { _permit: permit }
    }
}

/// A re-entrant lock (gevent's `RLock`): the greenlet holding it may take it again;
/// it is free once released as many times as taken. Only its holder may release it.
///
/// ```
/// use gevent_hub::sync::RLock;
///
/// let lock = RLock::new();
/// let a = lock.lock().unwrap();
/// let b = lock.lock().unwrap(); // same greenlet: no deadlock
/// assert_eq!(lock.count(), 2);
/// drop(b);
/// drop(a);
/// assert!(!lock.locked());
/// ```
#[derive(Clone, Default)]
pub struct RLock {
    inner: Rc<RInner>,
}

struct RInner {
    sem: BoundedSemaphore,
    /// Id of the greenlet holding it.
    owner: Cell<Option<u64>>,
    /// How many times the owner has taken it.
    count: Cell<usize>,
}

impl Default for RInner {
    fn default() -> Self {
        RInner {
            sem: BoundedSemaphore::new(1),
            owner: Cell::new(None),
            count: Cell::new(0),
        }
    }
}

impl fmt::Debug for RLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RLock")
            .field("owner", &self.inner.owner.get())
            .field("count", &self.count())
            .finish()
    }
}

impl RLock {
    /// An unlocked re-entrant lock.
    pub fn new() -> RLock {
        RLock::default()
    }

    /// True while some greenlet holds it.
    pub fn locked(&self) -> bool {
        self.inner.owner.get().is_some()
    }

    /// True if the current greenlet holds it.
    pub fn is_owned(&self) -> bool {
        self.inner.owner.get() == Some(current_id())
    }

    /// How many times its holder has taken it (0 when free).
    pub fn count(&self) -> usize {
        self.inner.count.get()
    }

    fn acquire_inner(&self, timeout: Option<Duration>) -> Result<bool> {
        let i = &self.inner;
        let me = current_id();
        if i.owner.get() == Some(me) {
            i.count.set(i.count.get() + 1);
            return Ok(true);
        }
        let got = match timeout {
            None => i.sem.acquire().map(|_| true)?,
            Some(d) => i.sem.acquire_timeout(d)?,
        };
        if got {
            i.owner.set(Some(me));
            i.count.set(1);
        }
        Ok(got)
    }

    /// Takes the lock (again, if the current greenlet holds it), waiting if another
    /// greenlet holds it.
    ///
    /// # Errors
    /// As [`Lock::lock`].
    pub fn acquire(&self) -> Result<()> {
        self.acquire_inner(None).map(|_| ())
    }

    /// [`acquire`](RLock::acquire), waiting at most `timeout`; returns whether it got it.
    ///
    /// # Errors
    /// As [`Lock::lock`].
    pub fn acquire_timeout(&self, timeout: Duration) -> Result<bool> {
        self.acquire_inner(Some(timeout))
    }

    /// Takes the lock if it is free or already held by the current greenlet.
    pub fn try_acquire(&self) -> bool {
        let i = &self.inner;
        let me = current_id();
        if i.owner.get() == Some(me) {
            i.count.set(i.count.get() + 1);
            true
        } else if i.sem.try_acquire() {
            i.owner.set(Some(me));
            i.count.set(1);
            true
        } else {
            false
        }
    }

    /// Releases one level; the lock is free once released as many times as taken.
    ///
    /// # Errors
    /// [`ReleaseError::NotOwner`] if the current greenlet does not hold it.
    pub fn release(&self) -> std::result::Result<(), ReleaseError> {
        let i = &self.inner;
        if i.owner.get() != Some(current_id()) {
            return Err(ReleaseError::NotOwner);
        }
        let n = i.count.get() - 1;
        i.count.set(n);
        if n == 0 {
            i.owner.set(None);
            i.sem.release()?;
        }
        Ok(())
    }

    /// [`acquire`](RLock::acquire) with a guard that releases one level on drop.
    ///
    /// # Errors
    /// As [`Lock::lock`].
    pub fn lock(&self) -> Result<RLockGuard<'_>> {
        self.acquire()?;
        Ok(RLockGuard { lock: self })
    }

    /// [`lock`](RLock::lock), waiting at most `timeout`; `None` if it timed out.
    ///
    /// # Errors
    /// As [`Lock::lock`].
    pub fn lock_timeout(&self, timeout: Duration) -> Result<Option<RLockGuard<'_>>> {
        let got = self.acquire_timeout(timeout)?;
        Ok(got.then(|| RLockGuard { lock: self }))
    }

    /// [`try_acquire`](RLock::try_acquire) with a guard.
    pub fn try_lock(&self) -> Option<RLockGuard<'_>> {
        self.try_acquire().then(|| RLockGuard { lock: self })
    }
}

/// Holds one level of an [`RLock`]; releases it when dropped.
#[must_use = "the lock is released as soon as the guard is dropped"]
#[derive(Debug)]
pub struct RLockGuard<'a> {
    lock: &'a RLock,
}

impl Drop for RLockGuard<'_> {
    fn drop(&mut self) {
        // Only the holder makes guards, and guards stay with their greenlet.
        let _ = self.lock.release();
    }
}
