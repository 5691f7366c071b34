//! `Group`: a set of greenlets managed together (gevent's `gevent.pool.Group`).
//!
//! A [`Group`] tracks the greenlets spawned through it (or [`add`](Group::add)ed to it)
//! until they finish: [`join`](Group::join) waits for all, [`kill`](Group::kill) kills
//! all. [`imap`](Group::imap), [`imap_unordered`](Group::imap_unordered) and
//! [`map`](Group::map) run a function over an iterator in the group's greenlets and
//! stream the results back (in input order, or as they complete). A
//! [`Pool`](crate::pool::Pool) is a group with a bound; it is built on this one.
//!
//! Members are held as `Rc<Greenlet<T>>`: the group keeps its own handle to kill and
//! wait for them, and hands out another. A greenlet leaves its group when it finishes
//! (through a link, so at the hub's next callback phase) or when
//! [`discard`](Group::discard)ed; in a pool, that frees its slot.

use super::handle::{AnyGreenlet, Builder, Greenlet, GreenletInfo, JoinError, Outcome};
use super::sleep::current_id;
use crate::error::{Error, Result};
use crate::hub::{wait_until, WaitList, Waitable, Waker};
use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::rc::{Rc, Weak};
use std::time::Duration;

/// A pool's slot accounting, as a group sees it: a member takes a slot before it is
/// spawned and gives it back when it leaves. ([`Pool`](crate::pool::Pool) implements it
/// with a semaphore; a plain [`Group`] has none.)
pub(crate) trait Slots {
    /// Takes a slot, waiting up to `timeout` (`None`: as long as it takes); returns
    /// whether it got one.
    fn acquire(&self, timeout: Option<Duration>) -> Result<bool>;
    /// Gives a slot back.
    fn release(&self);
}

pub(crate) struct GroupInner {
    /// By greenlet id, so members are killed in the order they were spawned.
    members: RefCell<BTreeMap<u64, Rc<dyn AnyGreenlet>>>,
    /// [`join`](Group::join)ers: woken when the group becomes empty.
    empty: WaitList,
    /// A pool's free slots; a member holds one until it leaves.
    pub(crate) slots: Option<Rc<dyn Slots>>,
}

impl GroupInner {
    pub(crate) fn new(slots: Option<Rc<dyn Slots>>) -> Rc<GroupInner> {
        Rc::new(GroupInner {
            members: RefCell::new(BTreeMap::new()),
            empty: WaitList::default(),
            slots,
        })
    }

    /// Makes `g` a member (its slot, in a pool, already taken) until it finishes.
    pub(crate) fn insert<T: 'static>(self: &Rc<Self>, g: &Rc<Greenlet<T>>) {
        self.members.borrow_mut().insert(g.id(), g.clone());
        let weak: Weak<GroupInner> = Rc::downgrade(self);
        g.link(move |info: &GreenletInfo| {
            if let Some(inner) = weak.upgrade() {
                inner.remove(info.id);
            }
        });
    }

    /// Takes member `id` out, freeing its slot. Returns whether it was a member.
    pub(crate) fn remove(&self, id: u64) -> bool {
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

    pub(crate) fn contains(&self, id: u64) -> bool {
        self.members.borrow().contains_key(&id)
    }

    pub(crate) fn len(&self) -> usize {
        self.members.borrow().len()
    }

    pub(crate) fn join(&self, timeout: Option<Duration>) -> Result<bool> {
        wait_until(
            "a Group's greenlets to finish (join)",
            timeout,
            || self.members.borrow().is_empty(),
            |w| self.empty.push(w),
        )
    }

    pub(crate) fn kill_nowait(&self) {
        // A copy: a kill of an unstarted member ends it (and may run code) at once.
        let members: Vec<_> = self.members.borrow().values().cloned().collect();
        // A member killing its own group is killed last (at its next blocking point).
        let me = current_id();
        let (mine, others): (Vec<_>, Vec<_>) = members.iter().partition(|g| g.id() == Some(me));
        for g in others.into_iter().chain(mine) {
            g.kill_nowait();
        }
    }

    pub(crate) fn kill(&self, timeout: Option<Duration>) -> Result<bool> {
        self.kill_nowait();
        self.join(timeout)
    }

    /// Spawns `f` as a member, first taking a slot in a pool (waiting up to `timeout`).
    #[track_caller]
    pub(crate) fn spawn<T: 'static>(
        self: &Rc<Self>,
        timeout: Option<Duration>,
        f: impl FnOnce() -> T + 'static,
    ) -> Result<Rc<Greenlet<T>>> {
        if let Some(s) = &self.slots {
            match timeout {
                None => {
                    s.acquire(None)?;
                }
                Some(d) => {
                    if !s.acquire(Some(d))? {
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
    pub(crate) inner: Rc<GroupInner>,
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

    /// Waits until every member has finished. Members added meanwhile are waited for
    /// too.
    ///
    /// # Errors
    /// [`Error::WouldBlockForever`], [`Error::BlockingInHub`].
    pub fn join(&self) -> Result<()> {
        self.inner.join(None).map(drop)
    }

    /// [`join`](Group::join) for at most `timeout`; returns whether every member
    /// finished.
    ///
    /// # Errors
    /// As [`join`](Group::join).
    pub fn join_timeout(&self, timeout: Duration) -> Result<bool> {
        self.inner.join(Some(timeout))
    }

    /// Kills every member and waits until they have finished.
    ///
    /// # Errors
    /// As [`join`](Group::join).
    pub fn kill(&self) -> Result<()> {
        self.inner.kill(None).map(drop)
    }

    /// [`kill`](Group::kill), waiting at most `timeout`; returns whether every member
    /// finished (one that catches the kill and goes on may not).
    ///
    /// # Errors
    /// As [`join`](Group::join).
    pub fn kill_timeout(&self, timeout: Duration) -> Result<bool> {
        self.inner.kill(Some(timeout))
    }

    /// Kills every member without waiting (usable in the hub).
    pub fn kill_nowait(&self) {
        self.inner.kill_nowait();
    }

    /// Runs `f` over `input` in greenlets of this group, all at once, yielding the
    /// results in input order. See [`Pool::imap`](crate::pool::Pool::imap) for a bounded form.
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

/// The iterator of [`Group::imap`], [`Group::imap_unordered`] and their
/// [`Pool`](crate::pool::Pool) forms.
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
    pub(crate) fn new(
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
