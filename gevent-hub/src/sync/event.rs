//! `Event` and `AsyncResult`: one-shot and resettable notifications between greenlets.

use crate::error::{Error, Result};
use crate::hub::{wait_notified, WaitList, Waitable, Waker};
use std::cell::{Cell, RefCell};
use std::fmt;
use std::rc::Rc;
use std::time::Duration;

/// A flag greenlets can wait for (gevent's `Event`): [`set`](Event::set) wakes every
/// waiter; [`clear`](Event::clear) makes later waits block again. Cloning gives another
/// handle to the same event.
///
/// # Examples
/// ```
/// use gevent_hub::{spawn, Event};
///
/// let ready = Event::new();
/// let r = ready.clone();
/// let waiter = spawn(move || r.wait().unwrap());
/// ready.set();
/// waiter.join().unwrap();
/// assert!(ready.is_set());
/// ```
#[derive(Clone, Default)]
pub struct Event {
    inner: Rc<EventInner>,
}

#[derive(Default)]
struct EventInner {
    flag: Cell<bool>,
    waiters: WaitList,
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event")
            .field("set", &self.is_set())
            .finish()
    }
}

impl Event {
    /// A new, unset event.
    pub fn new() -> Event {
        Event::default()
    }

    /// True while set.
    pub fn is_set(&self) -> bool {
        self.inner.flag.get()
    }

    /// Sets the flag and wakes every waiting greenlet. Works anywhere, the hub included;
    /// the waiters run at the hub's next callback phase, never inside this call.
    pub fn set(&self) {
        self.inner.flag.set(true);
        self.inner.waiters.wake_all();
    }

    /// Clears the flag.
    pub fn clear(&self) {
        self.inner.flag.set(false);
    }

    /// Waits until the flag is set. A waiter returns once it was set while it waited,
    /// even if it has been cleared again since (gevent's `Event.wait`).
    ///
    /// # Errors
    /// [`Error::WouldBlockForever`] if nothing is left that could set it;
    /// [`Error::BlockingInHub`] in the hub.
    #[inline]
    pub fn wait(&self) -> Result<()> {
        self.wait_inner(None).map(|_| ())
    }

    /// Waits up to `timeout`; returns whether the flag was set (at the call, or while
    /// waiting: `true` even if it was cleared again since), `false` on timeout.
    ///
    /// # Errors
    /// As [`wait`](Event::wait).
    pub fn wait_timeout(&self, timeout: Duration) -> Result<bool> {
        self.wait_inner(Some(timeout))
    }

    #[inline]
    fn wait_inner(&self, timeout: Option<Duration>) -> Result<bool> {
        let i = &self.inner;
        wait_notified(
            "an Event to be set",
            timeout,
            || i.flag.get(),
            |w| i.waiters.push(w),
        )
    }
}

impl Waitable for Event {
    fn is_ready(&self) -> bool {
        self.is_set()
    }
    fn subscribe(&self, w: Waker) {
        self.inner.waiters.push(w)
    }
}

/// A value (or an error) that one greenlet provides and others wait for (gevent's
/// `AsyncResult`). Set once; cloning gives another handle to the same result.
///
/// # Examples
/// ```
/// use gevent_hub::{spawn, AsyncResult};
/// use std::time::Duration;
///
/// let answer = AsyncResult::<u32>::new();
/// let a = answer.clone();
/// spawn(move || a.set(42));
/// assert_eq!(answer.get().unwrap(), 42);
/// assert_eq!(answer.get_timeout(Duration::ZERO).unwrap(), 42, "set once, kept");
/// ```
pub struct AsyncResult<T, E = String> {
    inner: Rc<ResultInner<T, E>>,
}

struct ResultInner<T, E> {
    value: RefCell<Option<std::result::Result<T, E>>>,
    waiters: WaitList,
}

impl<T, E> Clone for AsyncResult<T, E> {
    fn clone(&self) -> Self {
        AsyncResult {
            inner: self.inner.clone(),
        }
    }
}

impl<T, E> Default for AsyncResult<T, E> {
    fn default() -> Self {
        AsyncResult {
            inner: Rc::new(ResultInner {
                value: RefCell::new(None),
                waiters: WaitList::default(),
            }),
        }
    }
}

impl<T, E> fmt::Debug for AsyncResult<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncResult")
            .field("ready", &self.ready())
            .finish()
    }
}

/// Why [`AsyncResult::get`] has no value.
#[derive(Debug)]
pub enum GetError<E> {
    /// The producer set an error.
    Failed(E),
    /// Waiting failed (timeout, would block forever, …).
    Wait(Error),
}

impl<E: fmt::Display> fmt::Display for GetError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GetError::Failed(e) => write!(f, "{e}"),
            GetError::Wait(e) => write!(f, "{e}"),
        }
    }
}

impl<E: fmt::Debug + fmt::Display> std::error::Error for GetError<E> {}

impl<T, E> AsyncResult<T, E> {
    /// A new, empty result.
    pub fn new() -> Self {
        AsyncResult::default()
    }

    /// True once a value or an error is set.
    pub fn ready(&self) -> bool {
        self.inner.value.borrow().is_some()
    }

    /// True if a value (not an error) is set.
    pub fn successful(&self) -> bool {
        matches!(*self.inner.value.borrow(), Some(Ok(_)))
    }

    /// Sets the value and wakes the waiters. A second set replaces the first.
    pub fn set(&self, v: T) {
        *self.inner.value.borrow_mut() = Some(Ok(v));
        self.inner.waiters.wake_all();
    }

    /// Sets an error and wakes the waiters (gevent's `set_exception`).
    pub fn set_error(&self, e: E) {
        *self.inner.value.borrow_mut() = Some(Err(e));
        self.inner.waiters.wake_all();
    }

    /// Waits until it is ready (set, or set to an error).
    ///
    /// # Errors
    /// As [`Event::wait`].
    pub fn wait(&self) -> Result<()> {
        self.wait_inner(None).map(drop)
    }

    /// [`wait`](AsyncResult::wait) for at most `timeout`; returns whether it is ready.
    ///
    /// # Errors
    /// As [`Event::wait`].
    pub fn wait_timeout(&self, timeout: Duration) -> Result<bool> {
        self.wait_inner(Some(timeout))
    }

    fn wait_inner(&self, timeout: Option<Duration>) -> Result<bool> {
        let i = &self.inner;
        wait_notified(
            "an AsyncResult to be set",
            timeout,
            || i.value.borrow().is_some(),
            |w| i.waiters.push(w),
        )
    }

    /// Waits for the value and returns a copy.
    ///
    /// # Errors
    /// [`GetError::Failed`] with the error set; [`GetError::Wait`] if waiting failed.
    pub fn get(&self) -> std::result::Result<T, GetError<E>>
    where
        T: Clone,
        E: Clone,
    {
        self.get_inner(None)
    }

    /// [`get`](AsyncResult::get), waiting at most `timeout`.
    ///
    /// # Errors
    /// As [`get`](AsyncResult::get); [`GetError::Wait`] with [`Error::TimedOut`] when
    /// `timeout` expired.
    pub fn get_timeout(&self, timeout: Duration) -> std::result::Result<T, GetError<E>>
    where
        T: Clone,
        E: Clone,
    {
        self.get_inner(Some(timeout))
    }

    fn get_inner(&self, timeout: Option<Duration>) -> std::result::Result<T, GetError<E>>
    where
        T: Clone,
        E: Clone,
    {
        if !self.wait_inner(timeout).map_err(GetError::Wait)? {
            return Err(GetError::Wait(Error::TimedOut));
        }
        match self.inner.value.borrow().as_ref() {
            Some(Ok(v)) => Ok(v.clone()),
            Some(Err(e)) => Err(GetError::Failed(e.clone())),
            None => Err(GetError::Wait(Error::TimedOut)),
        }
    }

    /// Takes the value out, leaving the result empty (not ready) again.
    pub fn take(&self) -> Option<std::result::Result<T, E>> {
        self.inner.value.borrow_mut().take()
    }
}

impl<T, E> Waitable for AsyncResult<T, E> {
    fn is_ready(&self) -> bool {
        self.ready()
    }
    fn subscribe(&self, w: Waker) {
        self.inner.waiters.push(w)
    }
}
