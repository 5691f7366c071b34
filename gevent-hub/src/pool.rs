//! `Pool`: a [`Group`] of at most `size` running greenlets (gevent's
//! `gevent.pool.Pool`): [`spawn`](Pool::spawn) waits for a free slot, and
//! [`imap`](Pool::imap), [`imap_unordered`](Pool::imap_unordered) and
//! [`map`](Pool::map) keep at most `size` calls in flight.
//!
//! ```
//! use gevent_hub::pool::Pool;
//!
//! let pool = Pool::new(3);
//! let squares: Vec<u32> = pool.map(|x: u32| x * x, 0..5).unwrap();
//! assert_eq!(squares, [0, 1, 4, 9, 16]);
//! ```

pub use crate::spawn::{Callback, Group, Imap};

use crate::error::Result;
use crate::hub::{wait_until, Waitable, Waker};
use crate::spawn::group::{spawn_with_callback, GroupInner, Slots};
use crate::spawn::{Greenlet, JoinError};
use crate::sync::Semaphore;
use std::fmt;
use std::ops::Deref;
use std::rc::Rc;
use std::time::Duration;

/// A pool of size 0 was asked for: it could never run anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SizeError {
    what: &'static str,
}

impl SizeError {
    pub(crate) fn new(what: &'static str) -> SizeError {
        SizeError { what }
    }
}

impl fmt::Display for SizeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "a {} needs a size of at least 1 (0 would never run anything)",
            self.what
        )
    }
}

impl std::error::Error for SizeError {}

/// A group of at most `size` running greenlets (gevent's `Pool`): spawning waits for a
/// free slot. Cloning gives another handle to the same pool.
///
/// A pool is a [`Group`] (it derefs to one): `join`, `kill`, `len`, `discard`, … are
/// the group's; what differs is here: spawning and adding wait for a slot, and the
/// `imap` family keeps at most `size` calls in flight.
#[derive(Clone)]
pub struct Pool {
    group: Group,
    /// The semaphore the group's slots are taken from.
    slots: Semaphore,
    size: usize,
}

impl Deref for Pool {
    type Target = Group;
    fn deref(&self) -> &Group {
        &self.group
    }
}

impl Slots for Semaphore {
    fn acquire(&self, timeout: Option<Duration>) -> Result<bool> {
        match timeout {
            None => Semaphore::acquire(self).map(|()| true),
            Some(d) => self.acquire_timeout(d),
        }
    }
    fn release(&self) {
        Semaphore::release(self);
    }
    fn available(&self) -> usize {
        Semaphore::available(self)
    }
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("size", &self.size)
            .field("len", &self.len())
            .field("free", &self.free_count())
            .finish()
    }
}

impl Pool {
    /// A pool running at most `size` greenlets at once. A pool of size 0 is always
    /// full, as gevent's `Pool(0)`: its spawns wait (until their timeout, or until
    /// the hub has nothing else to do: `WouldBlockForever`).
    pub fn new(size: usize) -> Pool {
        let slots = Semaphore::new(size);
        Pool {
            group: Group {
                inner: GroupInner::new(Some(Rc::new(slots.clone()))),
            },
            slots,
            size,
        }
    }

    /// Its size.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Slots free right now.
    pub fn free_count(&self) -> usize {
        self.slots.available()
    }

    /// True when a spawn would wait.
    pub fn full(&self) -> bool {
        self.free_count() == 0
    }

    /// Waits for a free slot, then spawns `f` in it. Waiters get slots in FIFO order.
    /// Works in the hub while a slot is free.
    ///
    /// # Errors
    /// [`Error::WouldBlockForever`](crate::Error::WouldBlockForever) when no member can ever finish;
    /// [`Error::BlockingInHub`](crate::Error::BlockingInHub) when it would wait in the hub; the hub could not be
    /// created.
    #[track_caller]
    pub fn spawn<T: 'static>(&self, f: impl FnOnce() -> T + 'static) -> Result<Rc<Greenlet<T>>> {
        self.group.inner.spawn(None, f)
    }

    /// [`spawn`](Pool::spawn), waiting at most `timeout` for a slot.
    ///
    /// # Errors
    /// [`Error::TimedOut`](crate::Error::TimedOut) (and `f` is dropped unrun), or as [`spawn`](Pool::spawn).
    #[track_caller]
    pub fn spawn_timeout<T: 'static>(
        &self,
        timeout: Duration,
        f: impl FnOnce() -> T + 'static,
    ) -> Result<Rc<Greenlet<T>>> {
        self.group.inner.spawn(Some(timeout), f)
    }

    /// Waits for a free slot, then makes `g` a member (holding that slot) until it
    /// finishes. Adding a member again does nothing.
    ///
    /// # Errors
    /// As [`spawn`](Pool::spawn).
    pub fn add<T: 'static>(&self, g: &Rc<Greenlet<T>>) -> Result<()> {
        if self.group.inner.contains(g.id()) {
            return Ok(());
        }
        self.slots.acquire()?;
        self.group.inner.insert(g);
        Ok(())
    }

    /// [`add`](Pool::add), waiting at most `timeout` for a slot; returns whether `g` is
    /// a member.
    ///
    /// # Errors
    /// As [`spawn`](Pool::spawn).
    pub fn add_timeout<T: 'static>(&self, g: &Rc<Greenlet<T>>, timeout: Duration) -> Result<bool> {
        if self.group.inner.contains(g.id()) {
            return Ok(true);
        }
        if !self.slots.acquire_timeout(timeout)? {
            return Ok(false);
        }
        self.group.inner.insert(g);
        Ok(true)
    }

    /// Waits until a slot is free, without taking it.
    ///
    /// # Errors
    /// As [`join`](Group::join).
    pub fn wait_available(&self) -> Result<()> {
        self.wait_available_inner(None).map(drop)
    }

    /// [`wait_available`](Pool::wait_available) for at most `timeout`; returns whether
    /// a slot is free.
    ///
    /// # Errors
    /// As [`join`](Group::join).
    pub fn wait_available_timeout(&self, timeout: Duration) -> Result<bool> {
        self.wait_available_inner(Some(timeout))
    }

    fn wait_available_inner(&self, timeout: Option<Duration>) -> Result<bool> {
        let s = &self.slots;
        wait_until(
            "a free slot in a Pool",
            timeout,
            || s.available() > 0,
            |w| s.subscribe(w),
        )
    }

    /// Runs `f` over `input` in the pool's greenlets, at most `size` calls in flight,
    /// and yields the results in input order (gevent's `Pool.imap`). The input is
    /// consumed lazily, as results are taken; dropping the iterator kills the calls it
    /// started and has not yielded.
    pub fn imap<I, F, R>(&self, f: F, input: I) -> Imap<I::IntoIter, R>
    where
        I: IntoIterator,
        I::Item: 'static,
        F: Fn(I::Item) -> R + 'static,
        R: 'static,
    {
        Imap::new(
            self.group.inner.clone(),
            self.size,
            true,
            f,
            input.into_iter(),
        )
    }

    /// As [`imap`](Pool::imap), yielding results as they complete.
    pub fn imap_unordered<I, F, R>(&self, f: F, input: I) -> Imap<I::IntoIter, R>
    where
        I: IntoIterator,
        I::Item: 'static,
        F: Fn(I::Item) -> R + 'static,
        R: 'static,
    {
        Imap::new(
            self.group.inner.clone(),
            self.size,
            false,
            f,
            input.into_iter(),
        )
    }

    /// Runs `f` over `input` through [`imap`](Pool::imap) and collects the results.
    ///
    /// # Errors
    /// The first call that panicked or was killed, or a wait error.
    pub fn map<I, F, R>(&self, f: F, input: I) -> std::result::Result<Vec<R>, JoinError>
    where
        I: IntoIterator,
        I::Item: 'static,
        F: Fn(I::Item) -> R + 'static,
        R: 'static,
    {
        self.imap(f, input).collect()
    }

    /// [`map`](Pool::map) in a greenlet of its own, returned at once (gevent's
    /// `map_async`), at most `size` calls in flight: as
    /// [`Group::map_async`], whose other methods (`apply`, `apply_async`, `killone`,
    /// `join_raise_error`) a pool shares, its slots bounding them.
    ///
    /// # Examples
    /// ```
    /// use gevent_hub::pool::Pool;
    /// use std::rc::Rc;
    ///
    /// let pool = Pool::new(2);
    /// let g = pool.map_async(|x: u32| x * 10, 1..=4, None).unwrap();
    /// assert_eq!(Rc::try_unwrap(g).unwrap().join().unwrap(), [10, 20, 30, 40]);
    /// ```
    ///
    /// # Errors
    /// As [`Group::apply_async`].
    #[track_caller]
    pub fn map_async<I, F, R>(
        &self,
        f: F,
        input: I,
        callback: Option<Callback<Vec<R>>>,
    ) -> Result<Rc<Greenlet<Vec<R>>>>
    where
        I: IntoIterator + 'static,
        I::Item: 'static,
        F: Fn(I::Item) -> R + 'static,
        R: 'static,
    {
        let pool = self.clone();
        spawn_with_callback("map_async", move || pool.map(f, input), callback)
    }
}

impl Waitable for Pool {
    /// True when it has no member ([`join`](Group::join) would return at once).
    fn is_ready(&self) -> bool {
        self.group.is_ready()
    }
    fn subscribe(&self, w: Waker) {
        self.group.subscribe(w);
    }
}
