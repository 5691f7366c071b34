//! `Semaphore` and `BoundedSemaphore`: counted permits, handed to waiters in FIFO order.
//!
//! A release with greenlets waiting does not raise the count: it hands the permit to
//! the first waiter (see the module docs of [`sync`](crate::sync)). So a greenlet that
//! releases and at once acquires again queues behind those already waiting, and a
//! waiter is never overtaken.

use crate::error::Result;
use crate::hub::Waker;
use crate::hub::{park_in_line, WaitList, Waitable, WaiterQueue};
use std::cell::Cell;
use std::fmt;
use std::rc::Rc;
use std::time::Duration;

/// Why a release was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReleaseError {
    /// A [`BoundedSemaphore`] (or [`Lock`](crate::sync::Lock)) was released more times
    /// than it was acquired; `bound` is its initial count.
    TooManyReleases {
        /// The initial (and maximum) count.
        bound: usize,
    },
    /// An [`RLock`](crate::sync::RLock) was released by a greenlet that does not hold it.
    NotOwner,
}

impl fmt::Display for ReleaseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReleaseError::TooManyReleases { bound } => write!(
                f,
                "released more times than acquired (the count would exceed its bound of {bound})"
            ),
            ReleaseError::NotOwner => {
                f.write_str("released by a greenlet that does not hold the lock")
            }
        }
    }
}

impl std::error::Error for ReleaseError {}

pub(crate) struct SemInner {
    permits: Cell<usize>,
    /// `Some(initial)` for a bounded semaphore.
    bound: Option<usize>,
    /// `state` is true once a permit was handed to the waiter.
    waiters: WaiterQueue<bool>,
    /// [`Waitable`] subscribers: woken when a permit becomes free.
    watchers: WaitList,
}

impl SemInner {
    fn new(permits: usize, bound: Option<usize>) -> Rc<SemInner> {
        Rc::new(SemInner {
            permits: Cell::new(permits),
            bound,
            waiters: WaiterQueue::default(),
            watchers: WaitList::default(),
        })
    }

    pub(crate) fn try_acquire(&self) -> bool {
        // Waiters exist only while the count is 0 (a release hands its permit over).
        let n = self.permits.get();
        if n > 0 {
            self.permits.set(n - 1);
            true
        } else {
            false
        }
    }

    pub(crate) fn acquire(&self, timeout: Option<Duration>) -> Result<bool> {
        if self.try_acquire() {
            return Ok(true);
        }
        let (r, _) = park_in_line(
            "a Semaphore to be released",
            timeout,
            &self.waiters,
            false,
            |granted| *granted,
            // Killed after a permit was handed over: pass it on.
            |_| self.release_unchecked(),
        );
        r
    }

    pub(crate) fn release(&self) -> std::result::Result<(), ReleaseError> {
        if let Some(bound) = self.bound {
            if self.permits.get() >= bound {
                return Err(ReleaseError::TooManyReleases { bound });
            }
        }
        self.release_unchecked();
        Ok(())
    }

    /// Hands a permit to the first waiter, or returns it to the count.
    fn release_unchecked(&self) {
        if let Some(w) = self.waiters.pop_live() {
            *w.state.borrow_mut() = true;
            // In the hub this switches into the waiter at once: nothing is borrowed here.
            w.wake();
        } else {
            self.permits.set(self.permits.get() + 1);
            self.watchers.wake_all();
        }
    }

    pub(crate) fn available(&self) -> usize {
        self.permits.get()
    }
}

/// A counting semaphore (gevent's `Semaphore`): [`acquire`](Semaphore::acquire) takes a
/// permit, waiting in line (FIFO) while there is none; [`release`](Semaphore::release)
/// gives one back. Cloning gives another handle to the same semaphore.
///
/// ```
/// use gevent_hub::sync::Semaphore;
/// use std::time::Duration;
///
/// let sem = Semaphore::new(1);
/// let guard = sem.guard().unwrap();
/// assert!(!sem.acquire_timeout(Duration::from_millis(1)).unwrap());
/// drop(guard);
/// assert!(sem.try_acquire());
/// ```
#[derive(Clone)]
pub struct Semaphore {
    inner: Rc<SemInner>,
}

impl fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Semaphore")
            .field("available", &self.available())
            .field("waiting", &self.waiting())
            .finish()
    }
}

impl Semaphore {
    /// A semaphore with `permits` permits.
    pub fn new(permits: usize) -> Semaphore {
        Semaphore {
            inner: SemInner::new(permits, None),
        }
    }

    /// Gives a permit back: to the first waiter if there is one. Works in the hub.
    pub fn release(&self) {
        self.inner.release_unchecked();
    }
}

/// What [`Semaphore`] and [`BoundedSemaphore`] share, written once: counting, taking
/// permits (blocking, with a timeout, or not at all), guards, and `Waitable`.
macro_rules! permits {
    ($t:ident) => {
        impl $t {
            /// Permits free right now (gevent's `counter`).
            pub fn available(&self) -> usize {
                self.inner.available()
            }

            /// True when an acquire would wait.
            pub fn locked(&self) -> bool {
                self.available() == 0
            }

            /// Greenlets waiting for a permit.
            pub fn waiting(&self) -> usize {
                self.inner.waiters.len()
            }

            /// Takes a permit, waiting for one if needed.
            ///
            /// # Errors
            /// [`Error::WouldBlockForever`](crate::Error::WouldBlockForever) when
            /// nothing left could release one;
            /// [`Error::BlockingInHub`](crate::Error::BlockingInHub) when it would wait
            /// inside the hub.
            pub fn acquire(&self) -> Result<()> {
                self.inner.acquire(None).map(|_| ())
            }

            /// Takes a permit, waiting at most `timeout`; returns whether it got one.
            ///
            /// # Errors
            /// As [`acquire`](Self::acquire).
            pub fn acquire_timeout(&self, timeout: Duration) -> Result<bool> {
                self.inner.acquire(Some(timeout))
            }

            /// Takes a permit if one is free, without waiting. Works in the hub.
            pub fn try_acquire(&self) -> bool {
                self.inner.try_acquire()
            }

            /// [`acquire`](Self::acquire) with a guard that releases on drop.
            ///
            /// # Errors
            /// As [`acquire`](Self::acquire).
            pub fn guard(&self) -> Result<SemaphoreGuard<'_>> {
                self.acquire()?;
                Ok(SemaphoreGuard::new(&self.inner))
            }

            /// [`acquire_timeout`](Self::acquire_timeout) with a guard; `None` on
            /// timeout.
            ///
            /// # Errors
            /// As [`acquire`](Self::acquire).
            pub fn guard_timeout(&self, timeout: Duration) -> Result<Option<SemaphoreGuard<'_>>> {
                let got = self.acquire_timeout(timeout)?;
                Ok(got.then(|| SemaphoreGuard::new(&self.inner)))
            }

            /// [`try_acquire`](Self::try_acquire) with a guard.
            pub fn try_guard(&self) -> Option<SemaphoreGuard<'_>> {
                // Lazily: a guard made for nothing would release a permit it never took.
                self.try_acquire().then(|| SemaphoreGuard::new(&self.inner))
            }
        }

        impl Waitable for $t {
            /// True when a permit is free.
            fn is_ready(&self) -> bool {
                self.available() > 0
            }
            fn subscribe(&self, w: Waker) {
                self.inner.watchers.push(w);
            }
        }
    };
}

permits!(Semaphore);
permits!(BoundedSemaphore);

/// A permit of a [`Semaphore`] or [`BoundedSemaphore`], released when dropped.
#[must_use = "the permit is released as soon as the guard is dropped"]
pub struct SemaphoreGuard<'a> {
    sem: &'a SemInner,
}

impl fmt::Debug for SemaphoreGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SemaphoreGuard").finish_non_exhaustive()
    }
}

impl<'a> SemaphoreGuard<'a> {
    /// The guard of a permit the caller has just taken.
    fn new(sem: &'a SemInner) -> SemaphoreGuard<'a> {
        SemaphoreGuard { sem }
    }
}

impl Drop for SemaphoreGuard<'_> {
    fn drop(&mut self) {
        // This guard holds a permit, so the count is below any bound.
        self.sem.release_unchecked();
    }
}

/// A [`Semaphore`] that refuses to be released more times than it was acquired
/// (gevent's `BoundedSemaphore`): the count never exceeds its initial value.
#[derive(Clone)]
pub struct BoundedSemaphore {
    inner: Rc<SemInner>,
}

impl fmt::Debug for BoundedSemaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BoundedSemaphore")
            .field("available", &self.available())
            .field("bound", &self.bound())
            .field("waiting", &self.waiting())
            .finish()
    }
}

impl BoundedSemaphore {
    /// A semaphore with `permits` permits, never more.
    pub fn new(permits: usize) -> BoundedSemaphore {
        BoundedSemaphore {
            inner: SemInner::new(permits, Some(permits)),
        }
    }

    /// The initial (and maximum) count.
    pub fn bound(&self) -> usize {
        self.inner.bound.unwrap_or(0)
    }

    /// Gives a permit back (to the first waiter if there is one). Works in the hub.
    ///
    /// # Errors
    /// [`ReleaseError::TooManyReleases`] if every permit is already free.
    pub fn release(&self) -> std::result::Result<(), ReleaseError> {
        self.inner.release()
    }
}
