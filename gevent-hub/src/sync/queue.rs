//! Queues between greenlets: [`Queue`] (FIFO), [`LifoQueue`], [`PriorityQueue`] and
//! [`Channel`] (a rendezvous: `put` waits until a getter takes the item).
//!
//! They are one type, [`GenericQueue`], with a [`Storage`] policy that decides which
//! item comes out next; everything else (bounds, waiting, hand-off, `task_done`/`join`,
//! `shutdown`) is shared.
//!
//! Items enter through `put` and leave through `get`:
//!
//! ```text
//!  put(x) ──► a getter waits? ── yes ──► x handed to the first getter (FIFO)
//!                 │ no
//!                 ▼
//!            room in storage? ── yes ──► storage.push(x)
//!                 │ no
//!                 ▼
//!            wait in line with x; a get that makes room moves x into storage
//!            (or, for a Channel, takes x straight from the putter)
//! ```
//!
//! The non-blocking forms (`put_nowait`, `get_nowait`) never wait, so they also work
//! in the hub itself, inside a watcher callback. Every blocking form has a timeout form;
//! a timeout is reported as [`QueueError::Full`] or [`QueueError::Empty`], as gevent
//! does.
//!
//! ```
//! use gevent_hub::sync::Queue;
//! use gevent_hub::spawn;
//!
//! let q = Queue::bounded(1);
//! let producer = {
//!     let q = q.clone();
//!     spawn(move || {
//!         for i in 0..3 {
//!             q.put(i).unwrap(); // waits while the queue is full
//!         }
//!         q.shutdown(false); // consumers finish what is queued, then stop
//!     })
//! };
//! let got: Vec<i32> = q.iter().collect();
//! assert_eq!(got, [0, 1, 2]);
//! producer.join().unwrap();
//! ```

use crate::error::{Error, Result};
use crate::hub::{park_in_line, WaitList, Waitable, WaiterQueue};
use crate::hub::{wait_until, Waker};
use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::fmt;
use std::marker::PhantomData;
use std::rc::Rc;
use std::time::Duration;

/// Why a queue operation did not complete.
#[derive(Debug)]
#[non_exhaustive]
pub enum QueueError {
    /// Nothing to get (right now, or before the timeout).
    Empty,
    /// No room to put (right now, or before the timeout).
    Full,
    /// The queue was shut down: no more puts; gets fail once it is empty.
    Shutdown,
    /// [`task_done`](GenericQueue::task_done) was called more times than items were put.
    TooManyTaskDone,
    /// Waiting failed: nothing left could ever wake this greenlet, or the call was made
    /// in the hub.
    Wait(Error),
}

impl fmt::Display for QueueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QueueError::Empty => f.write_str("the queue is empty"),
            QueueError::Full => f.write_str("the queue is full"),
            QueueError::Shutdown => f.write_str("the queue was shut down"),
            QueueError::TooManyTaskDone => {
                f.write_str("task_done() called more times than items were put")
            }
            QueueError::Wait(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for QueueError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            QueueError::Wait(e) => Some(e),
            _ => None,
        }
    }
}

impl From<Error> for QueueError {
    fn from(e: Error) -> QueueError {
        QueueError::Wait(e)
    }
}

/// A failed put: why, and the item, given back.
pub struct PutError<T> {
    /// Why: [`QueueError::Full`], [`QueueError::Shutdown`] or [`QueueError::Wait`].
    pub error: QueueError,
    /// The item that was not put.
    pub item: T,
}

impl<T> PutError<T> {
    /// The item that was not put.
    pub fn into_inner(self) -> T {
        self.item
    }
}

impl<T> fmt::Debug for PutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PutError")
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

impl<T> fmt::Display for PutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "put failed: {}", self.error)
    }
}

impl<T> std::error::Error for PutError<T> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

impl<T> From<PutError<T>> for QueueError {
    fn from(e: PutError<T>) -> QueueError {
        e.error
    }
}

/// Which item a queue hands out next. Implement it for a custom order.
pub trait Storage<T>: Default {
    /// The size limit of `GenericQueue::new()`: `None` is unbounded.
    const DEFAULT_MAXSIZE: Option<usize> = None;
    /// Stores an item.
    fn push(&mut self, item: T);
    /// Takes out the item that comes next.
    fn pop(&mut self) -> Option<T>;
    /// Puts back an item that [`pop`](Storage::pop) returned but could not deliver, so
    /// that it comes next again.
    fn unpop(&mut self, item: T);
    /// The item that comes next.
    fn peek(&self) -> Option<&T>;
    /// How many items are stored.
    fn len(&self) -> usize;
    /// True when nothing is stored.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// First in, first out.
#[derive(Debug)]
pub struct Fifo<T>(VecDeque<T>);

/// Last in, first out.
#[derive(Debug)]
pub struct Lifo<T>(Vec<T>);

/// Smallest first (as Python's `heapq` and gevent's `PriorityQueue`); wrap items in
/// [`Reverse`] for largest first.
#[derive(Debug)]
pub struct Priority<T: Ord>(BinaryHeap<Reverse<T>>);

/// No storage by default: a put waits until a getter takes the item.
#[derive(Debug)]
pub struct Rendezvous<T>(VecDeque<T>);

impl<T> Default for Fifo<T> {
    fn default() -> Self {
        Fifo(VecDeque::new())
    }
}

impl<T> Default for Lifo<T> {
    fn default() -> Self {
        Lifo(Vec::new())
    }
}

impl<T: Ord> Default for Priority<T> {
    fn default() -> Self {
        Priority(BinaryHeap::new())
    }
}

impl<T> Default for Rendezvous<T> {
    fn default() -> Self {
        Rendezvous(VecDeque::new())
    }
}

impl<T> Storage<T> for Fifo<T> {
    fn push(&mut self, item: T) {
        self.0.push_back(item);
    }
    fn pop(&mut self) -> Option<T> {
        self.0.pop_front()
    }
    fn unpop(&mut self, item: T) {
        self.0.push_front(item);
    }
    fn peek(&self) -> Option<&T> {
        self.0.front()
    }
    fn len(&self) -> usize {
        self.0.len()
    }
}

impl<T> Storage<T> for Lifo<T> {
    fn push(&mut self, item: T) {
        self.0.push(item);
    }
    fn pop(&mut self) -> Option<T> {
        self.0.pop()
    }
    fn unpop(&mut self, item: T) {
        self.0.push(item);
    }
    fn peek(&self) -> Option<&T> {
        self.0.last()
    }
    fn len(&self) -> usize {
        self.0.len()
    }
}

impl<T: Ord> Storage<T> for Priority<T> {
    fn push(&mut self, item: T) {
        self.0.push(Reverse(item));
    }
    fn pop(&mut self) -> Option<T> {
        self.0.pop().map(|r| r.0)
    }
    fn unpop(&mut self, item: T) {
        self.push(item);
    }
    fn peek(&self) -> Option<&T> {
        self.0.peek().map(|r| &r.0)
    }
    fn len(&self) -> usize {
        self.0.len()
    }
}

impl<T> Storage<T> for Rendezvous<T> {
    const DEFAULT_MAXSIZE: Option<usize> = Some(0);
    fn push(&mut self, item: T) {
        self.0.push_back(item);
    }
    fn pop(&mut self) -> Option<T> {
        self.0.pop_front()
    }
    fn unpop(&mut self, item: T) {
        self.0.push_front(item);
    }
    fn peek(&self) -> Option<&T> {
        self.0.front()
    }
    fn len(&self) -> usize {
        self.0.len()
    }
}

/// A FIFO queue (gevent's `Queue`/`JoinableQueue`).
pub type Queue<T> = GenericQueue<T, Fifo<T>>;
/// A LIFO queue (gevent's `LifoQueue`).
pub type LifoQueue<T> = GenericQueue<T, Lifo<T>>;
/// A queue that hands out its smallest item first (gevent's `PriorityQueue`).
pub type PriorityQueue<T> = GenericQueue<T, Priority<T>>;
/// A rendezvous (gevent's `Channel`): [`new`](GenericQueue::new) makes it with no room,
/// so each put waits until a getter takes its item.
pub type Channel<T> = GenericQueue<T, Rendezvous<T>>;

/// What a waiting getter was handed.
#[derive(Default)]
enum GetState<T> {
    #[default]
    Waiting,
    Got(T),
    Shutdown,
}

/// What became of a waiting putter's item.
#[derive(Default)]
enum PutState<T> {
    Offering(T),
    /// Moved into the queue (or straight to a getter). Also the placeholder left once
    /// the putter has read its outcome.
    #[default]
    Taken,
    Refused(T),
}

struct State<S> {
    items: S,
    maxsize: Option<usize>,
    shutdown: bool,
    /// Items put and not yet marked done with `task_done`.
    unfinished: usize,
}

impl<S> State<S> {
    /// True when a put would store the item (`len` is `items.len()`).
    fn has_room(&self, len: usize) -> bool {
        self.maxsize.is_none_or(|m| len < m)
    }
}

struct Inner<T, S> {
    st: RefCell<State<S>>,
    getters: WaiterQueue<GetState<T>>,
    putters: WaiterQueue<PutState<T>>,
    /// [`Waitable`] subscribers: woken when a get would no longer wait.
    readers: WaitList,
    /// [`join`](GenericQueue::join)ers: woken when `unfinished` drops to 0.
    joiners: WaitList,
}

/// The queue core behind [`Queue`], [`LifoQueue`], [`PriorityQueue`] and [`Channel`]:
/// `S` decides the order. Cloning gives another handle to the same queue.
pub struct GenericQueue<T, S> {
    inner: Rc<Inner<T, S>>,
    _order: PhantomData<fn() -> S>,
}

impl<T, S> Clone for GenericQueue<T, S> {
    fn clone(&self) -> Self {
        GenericQueue {
            inner: self.inner.clone(),
            _order: PhantomData,
        }
    }
}

impl<T, S: Storage<T>> Default for GenericQueue<T, S> {
    fn default() -> Self {
        GenericQueue::new()
    }
}

impl<T, S: Storage<T>> fmt::Debug for GenericQueue<T, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Queue")
            .field("len", &self.len())
            .field("maxsize", &self.maxsize())
            .field("getters", &self.waiting_getters())
            .field("putters", &self.waiting_putters())
            .field("shutdown", &self.is_shutdown())
            .finish()
    }
}

impl<T, S: Storage<T>> GenericQueue<T, S> {
    /// A queue with the storage's default bound: unbounded, except a [`Channel`],
    /// which has no room at all.
    pub fn new() -> Self {
        Self::with_maxsize(S::DEFAULT_MAXSIZE)
    }

    /// A queue holding at most `maxsize` items; puts wait while it is full. `0` makes
    /// a rendezvous, like a [`Channel`].
    pub fn bounded(maxsize: usize) -> Self {
        Self::with_maxsize(Some(maxsize))
    }

    /// A queue with no bound.
    pub fn unbounded() -> Self {
        Self::with_maxsize(None)
    }

    fn with_maxsize(maxsize: Option<usize>) -> Self {
        GenericQueue {
            inner: Rc::new(Inner {
                st: RefCell::new(State {
                    items: S::default(),
                    maxsize,
                    shutdown: false,
                    unfinished: 0,
                }),
                getters: WaiterQueue::default(),
                putters: WaiterQueue::default(),
                readers: WaitList::default(),
                joiners: WaitList::default(),
            }),
            _order: PhantomData,
        }
    }

    /// Items stored (not counting items of putters still waiting).
    pub fn len(&self) -> usize {
        self.inner.st.borrow().items.len()
    }

    /// True when nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True when a put would wait.
    pub fn is_full(&self) -> bool {
        let st = self.inner.st.borrow();
        !st.has_room(st.items.len()) && self.inner.getters.is_empty()
    }

    /// The bound (`None`: unbounded).
    pub fn maxsize(&self) -> Option<usize> {
        self.inner.st.borrow().maxsize
    }

    /// Greenlets waiting in `get`.
    pub fn waiting_getters(&self) -> usize {
        self.inner.getters.len()
    }

    /// Greenlets waiting in `put`.
    pub fn waiting_putters(&self) -> usize {
        self.inner.putters.len()
    }

    /// True once [`shutdown`](GenericQueue::shutdown) was called.
    pub fn is_shutdown(&self) -> bool {
        self.inner.st.borrow().shutdown
    }

    /// Items put and not yet marked done with [`task_done`](GenericQueue::task_done).
    pub fn unfinished_tasks(&self) -> usize {
        self.inner.st.borrow().unfinished
    }

    /// A copy of the item that comes next, without taking it.
    pub fn peek_nowait(&self) -> Option<T>
    where
        T: Clone,
    {
        self.inner.st.borrow().items.peek().cloned()
    }

    /// A copy of the item that comes next, waiting while there is none (gevent's
    /// `peek()`); the item stays in the queue. An item put while getters wait goes
    /// to them, not past a peek: a peek sees what is stored.
    ///
    /// # Errors
    /// [`QueueError::Shutdown`] once shut down and empty (also when it is shut down
    /// while this waits), or [`QueueError::Wait`].
    pub fn peek(&self) -> std::result::Result<T, QueueError>
    where
        T: Clone,
    {
        self.peek_inner(None)
    }

    /// [`peek`](GenericQueue::peek), waiting at most `timeout` (gevent's
    /// `peek(timeout=...)`).
    ///
    /// # Errors
    /// [`QueueError::Empty`] on timeout, or as [`peek`](GenericQueue::peek).
    pub fn peek_timeout(&self, timeout: Duration) -> std::result::Result<T, QueueError>
    where
        T: Clone,
    {
        self.peek_inner(Some(timeout))
    }

    fn peek_inner(&self, timeout: Option<Duration>) -> std::result::Result<T, QueueError>
    where
        T: Clone,
    {
        let i = &self.inner;
        let ready = || {
            let st = i.st.borrow();
            st.items.len() > 0 || st.shutdown
        };
        wait_until("an item in a Queue (peek)", timeout, ready, |w| {
            i.readers.push(w)
        })
        .map_err(QueueError::Wait)?;
        match self.peek_nowait() {
            Some(x) => Ok(x),
            None if self.is_shutdown() => Err(QueueError::Shutdown),
            None => Err(QueueError::Empty),
        }
    }

    /// Puts `item` without waiting. Works in the hub (inside a watcher callback).
    ///
    /// # Errors
    /// [`QueueError::Full`] or [`QueueError::Shutdown`], with the item given back.
    pub fn put_nowait(&self, item: T) -> std::result::Result<(), PutError<T>> {
        self.try_put(item)
            .map_err(|(error, item)| PutError { error, item })
    }

    /// Puts `item`, waiting while the queue is full.
    ///
    /// # Errors
    /// [`QueueError::Shutdown`] (also when it is shut down while this waits), or
    /// [`QueueError::Wait`]: nothing left could make room
    /// ([`Error::WouldBlockForever`]), or called in the hub while full. The item is
    /// given back.
    pub fn put(&self, item: T) -> std::result::Result<(), PutError<T>> {
        self.put_inner(item, None)
    }

    /// [`put`](GenericQueue::put), waiting at most `timeout`.
    ///
    /// # Errors
    /// [`QueueError::Full`] on timeout, or as [`put`](GenericQueue::put).
    pub fn put_timeout(&self, item: T, timeout: Duration) -> std::result::Result<(), PutError<T>> {
        self.put_inner(item, Some(timeout))
    }

    /// Takes the next item without waiting. Works in the hub.
    ///
    /// # Errors
    /// [`QueueError::Empty`], or [`QueueError::Shutdown`] once shut down and empty.
    pub fn get_nowait(&self) -> std::result::Result<T, QueueError> {
        self.try_get()
    }

    /// Takes the next item, waiting while there is none.
    ///
    /// # Errors
    /// [`QueueError::Shutdown`] once shut down and empty (also when it is shut down
    /// while this waits), or [`QueueError::Wait`].
    pub fn get(&self) -> std::result::Result<T, QueueError> {
        self.get_inner(None)
    }

    /// [`get`](GenericQueue::get), waiting at most `timeout`.
    ///
    /// # Errors
    /// [`QueueError::Empty`] on timeout, or as [`get`](GenericQueue::get).
    pub fn get_timeout(&self, timeout: Duration) -> std::result::Result<T, QueueError> {
        self.get_inner(Some(timeout))
    }

    /// Marks one item taken with `get` as processed (gevent's `task_done`).
    ///
    /// # Errors
    /// [`QueueError::TooManyTaskDone`] if every item put is already marked done.
    pub fn task_done(&self) -> std::result::Result<(), QueueError> {
        let left = {
            let mut st = self.inner.st.borrow_mut();
            if st.unfinished == 0 {
                return Err(QueueError::TooManyTaskDone);
            }
            st.unfinished -= 1;
            st.unfinished
        };
        if left == 0 {
            self.inner.joiners.wake_all();
        }
        Ok(())
    }

    /// Waits until every item put has been marked done with
    /// [`task_done`](GenericQueue::task_done).
    ///
    /// # Errors
    /// [`Error::WouldBlockForever`], [`Error::BlockingInHub`].
    pub fn join(&self) -> Result<()> {
        self.join_inner(None).map(|_| ())
    }

    /// [`join`](GenericQueue::join), waiting at most `timeout`; returns whether every
    /// item was marked done.
    ///
    /// # Errors
    /// As [`join`](GenericQueue::join).
    pub fn join_timeout(&self, timeout: Duration) -> Result<bool> {
        self.join_inner(Some(timeout))
    }

    fn join_inner(&self, timeout: Option<Duration>) -> Result<bool> {
        let i = &self.inner;
        wait_until(
            "a Queue's items to be marked done (join)",
            timeout,
            || i.st.borrow().unfinished == 0,
            |w| i.joiners.push(w),
        )
    }

    /// Shuts the queue down (Python 3.13's `Queue.shutdown`): puts fail with
    /// [`QueueError::Shutdown`] from now on, waiting putters get their item back with
    /// that error, and gets fail with it once the queue is empty (waiting getters at
    /// once). With `immediate`, the stored items are dropped too (and count as done for
    /// [`join`](GenericQueue::join)). Works in the hub.
    pub fn shutdown(&self, immediate: bool) {
        let i = &self.inner;
        let (dropped, all_done) = {
            let mut st = i.st.borrow_mut();
            st.shutdown = true;
            let mut dropped = Vec::new();
            if immediate {
                while let Some(x) = st.items.pop() {
                    dropped.push(x);
                }
                st.unfinished = st.unfinished.saturating_sub(dropped.len());
            }
            (dropped, st.unfinished == 0)
        };
        let putters = i.putters.drain();
        for p in &putters {
            let s = p.state.take();
            *p.state.borrow_mut() = match s {
                PutState::Offering(x) => PutState::Refused(x),
                other => other,
            };
        }
        // Getters wait only while nothing is stored, so none of them misses an item.
        let getters = i.getters.drain();
        for g in &getters {
            *g.state.borrow_mut() = GetState::Shutdown;
        }
        // Wake after every state is final: in the hub, a wake runs the waiter at once.
        for p in putters {
            p.wake();
        }
        for g in getters {
            g.wake();
        }
        i.readers.wake_all();
        if all_done {
            i.joiners.wake_all();
        }
        drop(dropped);
    }

    /// A blocking iterator over the items: each step is a [`get`](GenericQueue::get);
    /// it ends when the queue is shut down and empty, or when waiting fails (see
    /// [`Iter::error`]).
    pub fn iter(&self) -> Iter<'_, T, S> {
        Iter {
            q: self,
            error: None,
            done: false,
        }
    }

    fn try_put(&self, item: T) -> std::result::Result<(), (QueueError, T)> {
        let i = &self.inner;
        let mut st = i.st.borrow_mut();
        if st.shutdown {
            return Err((QueueError::Shutdown, item));
        }
        if let Some(g) = i.getters.pop_live() {
            // A getter waits only while nothing is stored: this item is the next anyway.
            *g.state.borrow_mut() = GetState::Got(item);
            st.unfinished += 1;
            drop(st);
            g.wake();
            return Ok(());
        }
        if !st.has_room(st.items.len()) {
            return Err((QueueError::Full, item));
        }
        st.items.push(item);
        st.unfinished += 1;
        drop(st);
        i.readers.wake_all();
        Ok(())
    }

    fn try_get(&self) -> std::result::Result<T, QueueError> {
        let i = &self.inner;
        let mut served = Vec::new();
        let r = {
            let mut st = i.st.borrow_mut();
            if let Some(item) = st.items.pop() {
                // Room was made: move waiting putters' items in, in their order.
                while st.has_room(st.items.len()) {
                    let Some(p) = i.putters.pop_any() else { break };
                    if let PutState::Offering(x) = p.state.replace(PutState::Taken) {
                        st.items.push(x);
                        st.unfinished += 1;
                    }
                    served.push(p);
                }
                Ok(item)
            } else if let Some(p) = i.putters.pop_any() {
                // No room at all (a rendezvous): take the item from the putter.
                let r = match p.state.replace(PutState::Taken) {
                    PutState::Offering(x) => {
                        st.unfinished += 1;
                        Ok(x)
                    }
                    _ => Err(QueueError::Empty),
                };
                served.push(p);
                r
            } else if st.shutdown {
                Err(QueueError::Shutdown)
            } else {
                Err(QueueError::Empty)
            }
        };
        for p in served {
            p.wake();
        }
        r
    }

    fn put_inner(
        &self,
        item: T,
        timeout: Option<Duration>,
    ) -> std::result::Result<(), PutError<T>> {
        let item = match self.try_put(item) {
            Ok(()) => return Ok(()),
            Err((QueueError::Full, item)) => item,
            Err((error, item)) => return Err(PutError { error, item }),
        };
        // A waiting putter makes a rendezvous ready to get from.
        self.inner.readers.wake_all();
        let (r, state) = park_in_line(
            "room in a Queue (put)",
            timeout,
            &self.inner.putters,
            PutState::Offering(item),
            |s| !matches!(s, PutState::Offering(_)),
            // Killed after the item was taken: the put happened; nothing to undo.
            drop,
        );
        match (r, state) {
            (_, PutState::Taken) => Ok(()),
            (_, PutState::Refused(item)) => Err(PutError {
                error: QueueError::Shutdown,
                item,
            }),
            (Ok(_), PutState::Offering(item)) => Err(PutError {
                error: QueueError::Full,
                item,
            }),
            (Err(e), PutState::Offering(item)) => Err(PutError {
                error: QueueError::Wait(e),
                item,
            }),
        }
    }

    fn get_inner(&self, timeout: Option<Duration>) -> std::result::Result<T, QueueError> {
        match self.try_get() {
            Err(QueueError::Empty) => {}
            r => return r,
        }
        let (r, state) = park_in_line(
            "an item in a Queue (get)",
            timeout,
            &self.inner.getters,
            GetState::Waiting,
            |s| !matches!(s, GetState::Waiting),
            // Killed after an item was handed over: it goes back to the head of the line.
            |s| {
                if let GetState::Got(x) = s {
                    self.restore(x);
                }
            },
        );
        match (r, state) {
            (_, GetState::Got(x)) => Ok(x),
            (_, GetState::Shutdown) => Err(QueueError::Shutdown),
            (Ok(_), GetState::Waiting) => Err(QueueError::Empty),
            (Err(e), GetState::Waiting) => Err(QueueError::Wait(e)),
        }
    }

    /// Returns an item handed to a getter that died before taking it: to the next
    /// getter, or back to the front of the storage. It stays counted as unfinished.
    fn restore(&self, item: T) {
        let i = &self.inner;
        if let Some(g) = i.getters.pop_live() {
            *g.state.borrow_mut() = GetState::Got(item);
            g.wake();
        } else {
            i.st.borrow_mut().items.unpop(item);
            i.readers.wake_all();
        }
    }
}

impl<T, S: Storage<T>> Waitable for GenericQueue<T, S> {
    /// True when a get would not wait (an item, a waiting putter, or shut down).
    fn is_ready(&self) -> bool {
        let st = self.inner.st.borrow();
        !st.items.is_empty() || !self.inner.putters.is_empty() || st.shutdown
    }
    fn subscribe(&self, w: Waker) {
        self.inner.readers.push(w);
    }
}

/// The blocking iterator of [`GenericQueue::iter`].
pub struct Iter<'a, T, S> {
    q: &'a GenericQueue<T, S>,
    error: Option<QueueError>,
    done: bool,
}

impl<T, S> fmt::Debug for Iter<'_, T, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Iter")
            .field("done", &self.done)
            .field("error", &self.error)
            .finish()
    }
}

impl<T, S> Iter<'_, T, S> {
    /// Why the iteration ended, if not by a shutdown: e.g.
    /// [`Error::WouldBlockForever`] when nothing was left to put items.
    pub fn error(&self) -> Option<&QueueError> {
        self.error.as_ref()
    }
}

impl<T, S: Storage<T>> Iterator for Iter<'_, T, S> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        if self.done {
            return None;
        }
        match self.q.get() {
            Ok(x) => Some(x),
            Err(QueueError::Shutdown) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                self.error = Some(e);
                None
            }
        }
    }
}

impl<'a, T, S: Storage<T>> IntoIterator for &'a GenericQueue<T, S> {
    type Item = T;
    type IntoIter = Iter<'a, T, S>;
    fn into_iter(self) -> Iter<'a, T, S> {
        self.iter()
    }
}
