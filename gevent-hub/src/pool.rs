//! `Group` and `Pool`: sets of greenlets managed together (gevent's `gevent.pool`).
//!
//! A [`Group`] tracks the greenlets spawned through it (or [`add`](Group::add)ed to it)
//! until they finish: [`join`](Group::join) waits for all, [`kill`](Group::kill) kills
//! all. A [`Pool`] is a group with a size: [`spawn`](Pool::spawn) waits for a free slot,
//! so at most `size` of its greenlets run at once.
//!
//! [`imap`](Pool::imap), [`imap_unordered`](Pool::imap_unordered) and
//! [`map`](Pool::map) run a function over an iterator in the pool's greenlets and
//! stream the results back (in input order, or as they complete), keeping at most
//! `size` calls in flight.
//!
//! ```
//! use gevent_hub::pool::Pool;
//!
//! let pool = Pool::new(3).unwrap();
//! let squares: Vec<u32> = pool.map(|x: u32| x * x, 0..5).unwrap();
//! assert_eq!(squares, [0, 1, 4, 9, 16]);
//! ```
//!
//! Members are held as `Rc<Greenlet<T>>`: the group keeps its own handle to kill and
//! wait for them, and hands out another.
//!
//! A greenlet leaves its group when it finishes (through a link, so at the hub's next
//! callback phase) or when [`discard`](Group::discard)ed; in a pool, that frees its slot.

use crate::error::{Error, Result};
use crate::hub::WaitList;
use crate::hub::Waitable;
use crate::hub::{wait_until, Waker};
use crate::spawn::{AnyGreenlet, Builder, Greenlet, GreenletInfo, JoinError, Outcome};
use crate::sync::Semaphore;
use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::rc::{Rc, Weak};
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

struct GroupInner {
    /// By greenlet id, so members are killed in the order they were spawned.
    members: RefCell<BTreeMap<u64, Rc<dyn AnyGreenlet>>>,
    /// [`join`](Group::join)ers: woken when the group becomes empty.
    empty: WaitList,
    /// A pool's free slots; a member holds one until it leaves.
    slots: Option<Semaphore>,
}

impl GroupInner {
    fn new(slots: Option<Semaphore>) -> Rc<GroupInner> {
        Rc::new(GroupInner {
            members: RefCell::new(BTreeMap::new()),
            empty: WaitList::default(),
            slots,
        })
    }

    /// Makes `g` a member (its slot, in a pool, already taken) until it finishes.
    fn insert<T: 'static>(self: &Rc<Self>, g: &Rc<Greenlet<T>>) {
        self.members.borrow_mut().insert(g.id(), g.clone());
        let weak: Weak<GroupInner> = Rc::downgrade(self);
        g.link(move |info: &GreenletInfo| {
            if let Some(inner) = weak.upgrade() {
                inner.remove(info.id);
            }
        });
    }

    /// Takes member `id` out, freeing its slot. Returns whether it was a member.
    fn remove(&self, id: u64) -> bool {
        let Some(g) = self.members.borrow_mut().remove(&id) else {
            return false;
        };
        let now_empty = self.members.borrow().is_empty();
        // In the hub, this release switches into a waiting spawner at once: nothing of
        // ours is borrowed here.
        if let Some(s) = &self.slots {
            s.release();
        }
        if now_empty {
            self.empty.wake_all();
        }
        drop(g);
        true
    }

    fn contains(&self, id: u64) -> bool {
        self.members.borrow().contains_key(&id)
    }

    fn len(&self) -> usize {
        self.members.borrow().len()
    }

    fn join(&self, timeout: Option<Duration>) -> Result<bool> {
        wait_until(
            "a Group's greenlets to finish (join)",
            timeout,
            || self.members.borrow().is_empty(),
            |w| self.empty.push(w),
        )
    }

    fn kill_nowait(&self) {
        // A copy: a kill of an unstarted member ends it (and may run code) at once.
        let members: Vec<_> = self.members.borrow().values().cloned().collect();
        // A member killing its own group is killed last (at its next blocking point).
        let me = crate::spawn::current_id();
        let (mine, others): (Vec<_>, Vec<_>) = members.iter().partition(|g| g.id() == Some(me));
        for g in others.into_iter().chain(mine) {
            g.kill_nowait();
        }
    }

    fn kill(&self, timeout: Option<Duration>) -> Result<bool> {
        self.kill_nowait();
        self.join(timeout)
    }

    /// Spawns `f` as a member, first taking a slot in a pool (waiting up to `timeout`).
    #[track_caller]
    fn spawn<T: 'static>(
        self: &Rc<Self>,
        timeout: Option<Duration>,
        f: impl FnOnce() -> T + 'static,
    ) -> Result<Rc<Greenlet<T>>> {
        if let Some(s) = &self.slots {
            match timeout {
                None => s.acquire()?,
                Some(d) => {
                    if !s.acquire_timeout(d)? {
                        return Err(Error::TimedOut);
                    }
                }
            }
        }
        let g = match Builder::new().spawn(f) {
            Ok(g) => Rc::new(g),
            Err(e) => {
                if let Some(s) = &self.slots {
                    s.release();
                }
                return Err(e);
            }
        };
        self.insert(&g);
        Ok(g)
    }
}

/// A set of greenlets that can be joined or killed together (gevent's `Group`).
/// Cloning gives another handle to the same group.
#[derive(Clone)]
pub struct Group {
    inner: Rc<GroupInner>,
}

impl Default for Group {
    fn default() -> Self {
        Group::new()
    }
}

impl fmt::Debug for Group {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Group").field("len", &self.len()).finish()
    }
}

impl Group {
    /// An empty group.
    pub fn new() -> Group {
        Group {
            inner: GroupInner::new(None),
        }
    }

    /// Spawns `f` as a member of the group.
    ///
    /// # Panics
    /// If this thread's hub cannot be created, as [`spawn`](crate::spawn).
    #[track_caller]
    pub fn spawn<T: 'static>(&self, f: impl FnOnce() -> T + 'static) -> Rc<Greenlet<T>> {
        self.inner
            .spawn(None, f)
            .unwrap_or_else(|e| panic!("gevent: spawn failed: {e}"))
    }

    /// Makes an existing greenlet a member until it finishes (or is discarded).
    pub fn add<T: 'static>(&self, g: &Rc<Greenlet<T>>) {
        if !self.inner.contains(g.id()) {
            self.inner.insert(g);
        }
    }

    /// Stops tracking `g` (it keeps running). Returns whether it was a member.
    pub fn discard<T>(&self, g: &Greenlet<T>) -> bool {
        self.inner.remove(g.id())
    }

    /// True if `g` is a member.
    pub fn contains<T>(&self, g: &Greenlet<T>) -> bool {
        self.inner.contains(g.id())
    }

    /// Members (greenlets not yet finished, or finished a moment ago).
    pub fn len(&self) -> usize {
        self.inner.len()
    }

    /// True when there is no member.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Waits until every member has finished (up to `timeout`); returns whether they all
    /// did. Members added meanwhile are waited for too.
    ///
    /// # Errors
    /// [`Error::WouldBlockForever`], [`Error::BlockingInHub`].
    pub fn join(&self, timeout: Option<Duration>) -> Result<bool> {
        self.inner.join(timeout)
    }

    /// Kills every member and waits (up to `timeout`) until they have finished; returns
    /// whether they all did.
    ///
    /// # Errors
    /// As [`join`](Group::join).
    pub fn kill(&self, timeout: Option<Duration>) -> Result<bool> {
        self.inner.kill(timeout)
    }

    /// Kills every member without waiting (usable in the hub).
    pub fn kill_nowait(&self) {
        self.inner.kill_nowait();
    }

    /// Runs `f` over `input` in greenlets of this group, all at once, yielding the
    /// results in input order. See [`Pool::imap`] for a bounded form.
    pub fn imap<I, F, R>(&self, f: F, input: I) -> Imap<I::IntoIter, R>
    where
        I: IntoIterator,
        I::Item: 'static,
        F: Fn(I::Item) -> R + 'static,
        R: 'static,
    {
        Imap::new(self.inner.clone(), usize::MAX, true, f, input.into_iter())
    }

    /// As [`imap`](Group::imap), yielding results as they complete.
    pub fn imap_unordered<I, F, R>(&self, f: F, input: I) -> Imap<I::IntoIter, R>
    where
        I: IntoIterator,
        I::Item: 'static,
        F: Fn(I::Item) -> R + 'static,
        R: 'static,
    {
        Imap::new(self.inner.clone(), usize::MAX, false, f, input.into_iter())
    }

    /// Runs `f` over `input` in greenlets of this group and collects the results in
    /// input order.
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
}

impl Waitable for Group {
    /// True when it has no member ([`join`](Group::join) would return at once).
    fn is_ready(&self) -> bool {
        self.is_empty()
    }
    fn subscribe(&self, w: Waker) {
        self.inner.empty.push(w);
    }
}

/// A group of at most `size` running greenlets (gevent's `Pool`): spawning waits for a
/// free slot. Cloning gives another handle to the same pool.
#[derive(Clone)]
pub struct Pool {
    inner: Rc<GroupInner>,
    /// The same semaphore as `inner.slots`.
    slots: Semaphore,
    size: usize,
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
    /// A pool running at most `size` greenlets at once.
    ///
    /// # Errors
    /// [`SizeError`] if `size` is 0.
    pub fn new(size: usize) -> std::result::Result<Pool, SizeError> {
        if size == 0 {
            return Err(SizeError::new("Pool"));
        }
        let slots = Semaphore::new(size);
        Ok(Pool {
            inner: GroupInner::new(Some(slots.clone())),
            slots,
            size,
        })
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

    /// Members (running, or finished a moment ago).
    pub fn len(&self) -> usize {
        self.inner.len()
    }

    /// True when there is no member.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Waits for a free slot, then spawns `f` in it. Waiters get slots in FIFO order.
    /// Works in the hub while a slot is free.
    ///
    /// # Errors
    /// [`Error::WouldBlockForever`] when no member can ever finish;
    /// [`Error::BlockingInHub`] when it would wait in the hub; the hub could not be
    /// created.
    #[track_caller]
    pub fn spawn<T: 'static>(&self, f: impl FnOnce() -> T + 'static) -> Result<Rc<Greenlet<T>>> {
        self.inner.spawn(None, f)
    }

    /// [`spawn`](Pool::spawn), waiting at most `timeout` for a slot.
    ///
    /// # Errors
    /// [`Error::TimedOut`] (and `f` is dropped unrun), or as [`spawn`](Pool::spawn).
    #[track_caller]
    pub fn spawn_timeout<T: 'static>(
        &self,
        timeout: Duration,
        f: impl FnOnce() -> T + 'static,
    ) -> Result<Rc<Greenlet<T>>> {
        self.inner.spawn(Some(timeout), f)
    }

    /// Waits for a free slot, then makes `g` a member (holding that slot) until it
    /// finishes. Adding a member again does nothing.
    ///
    /// # Errors
    /// As [`spawn`](Pool::spawn).
    pub fn add<T: 'static>(&self, g: &Rc<Greenlet<T>>) -> Result<()> {
        if self.inner.contains(g.id()) {
            return Ok(());
        }
        self.slots.acquire()?;
        self.inner.insert(g);
        Ok(())
    }

    /// [`add`](Pool::add), waiting at most `timeout` for a slot; returns whether `g` is
    /// a member.
    ///
    /// # Errors
    /// As [`spawn`](Pool::spawn).
    pub fn add_timeout<T: 'static>(&self, g: &Rc<Greenlet<T>>, timeout: Duration) -> Result<bool> {
        if self.inner.contains(g.id()) {
            return Ok(true);
        }
        if !self.slots.acquire_timeout(timeout)? {
            return Ok(false);
        }
        self.inner.insert(g);
        Ok(true)
    }

    /// Stops tracking `g` (it keeps running) and frees its slot. Returns whether it was
    /// a member.
    pub fn discard<T>(&self, g: &Greenlet<T>) -> bool {
        self.inner.remove(g.id())
    }

    /// True if `g` is a member.
    pub fn contains<T>(&self, g: &Greenlet<T>) -> bool {
        self.inner.contains(g.id())
    }

    /// Waits (up to `timeout`) until a slot is free, without taking it; returns whether
    /// one is.
    ///
    /// # Errors
    /// As [`join`](Pool::join).
    pub fn wait_available(&self, timeout: Option<Duration>) -> Result<bool> {
        let s = &self.slots;
        wait_until(
            "a free slot in a Pool",
            timeout,
            || s.available() > 0,
            |w| s.subscribe(w),
        )
    }

    /// As [`Group::join`].
    ///
    /// # Errors
    /// As [`Group::join`].
    pub fn join(&self, timeout: Option<Duration>) -> Result<bool> {
        self.inner.join(timeout)
    }

    /// As [`Group::kill`].
    ///
    /// # Errors
    /// As [`Group::join`].
    pub fn kill(&self, timeout: Option<Duration>) -> Result<bool> {
        self.inner.kill(timeout)
    }

    /// As [`Group::kill_nowait`].
    pub fn kill_nowait(&self) {
        self.inner.kill_nowait();
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
        Imap::new(self.inner.clone(), self.size, true, f, input.into_iter())
    }

    /// As [`imap`](Pool::imap), yielding results as they complete.
    pub fn imap_unordered<I, F, R>(&self, f: F, input: I) -> Imap<I::IntoIter, R>
    where
        I: IntoIterator,
        I::Item: 'static,
        F: Fn(I::Item) -> R + 'static,
        R: 'static,
    {
        Imap::new(self.inner.clone(), self.size, false, f, input.into_iter())
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
}

impl Waitable for Pool {
    /// True when it has no member ([`join`](Pool::join) would return at once).
    fn is_ready(&self) -> bool {
        self.is_empty()
    }
    fn subscribe(&self, w: Waker) {
        self.inner.empty.push(w);
    }
}

/// The iterator of [`Pool::imap`], [`Pool::imap_unordered`] and their [`Group`] forms.
/// Each item is the call's value, or how it failed.
pub struct Imap<I: Iterator, R> {
    group: Rc<GroupInner>,
    f: Rc<dyn Fn(I::Item) -> R>,
    /// `None` once exhausted (or after a wait error).
    input: Option<I>,
    /// Calls started and not yet yielded, at most this many.
    window: usize,
    /// Those calls, in input order, with their sequence numbers.
    running: VecDeque<(u64, Rc<Greenlet<R>>)>,
    next_seq: u64,
    /// Unordered only: the calls that ended, in the order they ended.
    ended: Option<Rc<Ended>>,
}

/// Calls of an unordered [`Imap`] that have ended, in order, and who waits for one.
#[derive(Default)]
struct Ended {
    order: RefCell<VecDeque<u64>>,
    waiters: WaitList,
}

/// Captured by a call's closure: dropped when its body returns or unwinds (or when it
/// is killed before starting), it records that call `seq` ended.
struct EndedGuard {
    ended: Rc<Ended>,
    seq: u64,
}

impl Drop for EndedGuard {
    fn drop(&mut self) {
        self.ended.order.borrow_mut().push_back(self.seq);
        self.ended.waiters.wake_all();
    }
}

impl<I: Iterator, R> fmt::Debug for Imap<I, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Imap")
            .field("running", &self.running.len())
            .field("window", &self.window)
            .field("ordered", &self.ended.is_none())
            .field("exhausted", &self.input.is_none())
            .finish()
    }
}

impl<I, R> Imap<I, R>
where
    I: Iterator,
    I::Item: 'static,
    R: 'static,
{
    fn new(
        group: Rc<GroupInner>,
        window: usize,
        ordered: bool,
        f: impl Fn(I::Item) -> R + 'static,
        input: I,
    ) -> Self {
        Imap {
            group,
            f: Rc::new(f),
            input: Some(input),
            window,
            running: VecDeque::new(),
            next_seq: 0,
            ended: (!ordered).then(Rc::default),
        }
    }

    /// Starts calls until the window is full or the input is exhausted.
    fn fill(&mut self) -> Result<()> {
        while self.running.len() < self.window {
            let Some(input) = &mut self.input else { break };
            let Some(x) = input.next() else {
                self.input = None;
                break;
            };
            let f = self.f.clone();
            let seq = self.next_seq;
            self.next_seq += 1;
            let guard = self.ended.clone().map(|ended| EndedGuard { ended, seq });
            let g = self.group.spawn(None, move || {
                let _ended = guard;
                f(x)
            })?;
            self.running.push_back((seq, g));
        }
        Ok(())
    }

    /// Waits for the next result to yield; returns its index in `running`.
    fn wait_next(&self) -> Result<usize> {
        let running = &self.running;
        let idx = match &self.ended {
            None => 0,
            Some(ended) => loop {
                wait_until(
                    "a Pool call to finish (imap_unordered)",
                    None,
                    || !ended.order.borrow().is_empty(),
                    |w| ended.waiters.push(w),
                )?;
                let seq = ended.order.borrow_mut().pop_front();
                if let Some(i) = running.iter().position(|(s, _)| Some(*s) == seq) {
                    break i;
                }
            },
        };
        // The call has ended, but its greenlet may not have stored its value yet.
        let g = &running[idx].1;
        wait_until(
            "a Pool call to finish (imap)",
            None,
            || g.ready(),
            |w| g.subscribe(w),
        )?;
        Ok(idx)
    }

    fn fail(&mut self, e: Error) -> Option<std::result::Result<R, JoinError>> {
        self.input = None;
        for (_, g) in self.running.drain(..) {
            g.kill_nowait();
        }
        Some(Err(JoinError::Wait(e)))
    }
}

impl<I, R> Iterator for Imap<I, R>
where
    I: Iterator,
    I::Item: 'static,
    R: 'static,
{
    type Item = std::result::Result<R, JoinError>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Err(e) = self.fill() {
            return self.fail(e);
        }
        if self.running.is_empty() {
            return None;
        }
        let idx = match self.wait_next() {
            Ok(i) => i,
            Err(e) => return self.fail(e),
        };
        let (_, g) = self.running.remove(idx)?;
        // Leave the group now (freeing the slot) rather than at the link, so that ours
        // is the last handle and the value can be moved out.
        self.group.remove(g.id());
        Some(match Rc::try_unwrap(g) {
            Ok(g) => g.join(),
            // Someone else holds a handle too: report the outcome without the value.
            Err(g) => Err(match g.outcome() {
                Some(Outcome::Panicked(m)) => JoinError::Panicked(Box::new(m)),
                _ => JoinError::Killed,
            }),
        })
    }
}

impl<I: Iterator, R> Drop for Imap<I, R> {
    fn drop(&mut self) {
        // Nobody will take these results.
        for (_, g) in self.running.drain(..) {
            g.kill_nowait();
        }
    }
}
