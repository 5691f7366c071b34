//! `Group`: a set of greenlets managed together (gevent's `gevent.pool.Group`).
//!
//! A [`Group`] tracks the greenlets spawned through it (or [`add`](Group::add)ed to it)
//! until they finish: [`join`](Group::join) waits for all, [`kill`](Group::kill) kills
//! all. [`imap`](Group::imap), [`imap_unordered`](Group::imap_unordered) and
//! [`map`](Group::map) run a function over an iterator in the group's greenlets and
//! stream the results back (in input order, or as they complete); gevent's one-call
//! forms are here too: [`apply`](Group::apply), [`apply_async`](Group::apply_async),
//! [`map_async`](Group::map_async), with [`killone`](Group::killone) and
//! [`join_raise_error`](Group::join_raise_error). A
//! [`Pool`](crate::pool::Pool) is a group with a bound; it is built on this one.
//!
//! Members are held as `Rc<Greenlet<T>>`: the group keeps its own handle to kill and
//! wait for them, and hands out another. A greenlet leaves its group when it finishes
//! (through a link, so at the hub's next callback phase) or when
//! [`discard`](Group::discard)ed; in a pool, that frees its slot.

use super::handle::{AnyGreenlet, Builder, Greenlet, GreenletInfo, JoinError, Outcome};
use super::sleep::current_id;
use crate::error::{Error, Result};
use crate::greenlet::GreenletExit;
use crate::hub::{wait_until, WaitList, Waitable, Waker};
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
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
    /// Slots free right now.
    fn available(&self) -> usize;
}

/// A callback of [`Group::apply_async`] and the `map_async`s: called with the value, in
/// the greenlet that computed it, once it is computed.
pub type Callback<T> = Box<dyn FnOnce(&T)>;

/// In a greenlet that stands in for a call (`apply_async` on a full pool,
/// `map_async`): returns the call's value, or ends this greenlet the way the call
/// ended (its panic payload, a kill), so that joining the stand-in tells the same.
fn value_or_unwind<T>(r: std::result::Result<T, JoinError>) -> T {
    match r {
        Ok(v) => v,
        Err(JoinError::Panicked(p)) => std::panic::resume_unwind(p),
        Err(JoinError::Killed) => std::panic::resume_unwind(Box::new(GreenletExit)),
        // Not a panic of the user's: no report, the message travels as the payload.
        Err(e) => std::panic::resume_unwind(Box::new(e.to_string())),
    }
}

/// Spawns (outside any group) a greenlet whose value is `f`'s, passed to `callback`
/// first.
#[track_caller]
pub(crate) fn spawn_with_callback<T: 'static>(
    name: &str,
    f: impl FnOnce() -> std::result::Result<T, JoinError> + 'static,
    callback: Option<Callback<T>>,
) -> Result<Rc<Greenlet<T>>> {
    Builder::new()
        .name(name)
        .spawn(move || {
            let v = value_or_unwind(f());
            if let Some(cb) = callback {
                cb(&v);
            }
            v
        })
        .map(Rc::new)
}

pub(crate) struct GroupInner {
    /// By greenlet id, so members are killed in the order they were spawned.
    members: RefCell<BTreeMap<u64, Rc<dyn AnyGreenlet>>>,
    /// [`join`](Group::join)ers: woken when the group becomes empty.
    empty: WaitList,
    /// A pool's free slots; a member holds one until it leaves.
    pub(crate) slots: Option<Rc<dyn Slots>>,
    /// Members [`killone`](Group::killone) has killed, so that a second call does not
    /// throw again into one that is unwinding.
    dying: RefCell<BTreeSet<u64>>,
    /// `join_raise_error`s going on: while there is one, members that panic are noted
    /// in `failures`.
    raising: Cell<usize>,
    /// "name: message" of each member that panicked while a `join_raise_error` went on.
    failures: RefCell<Vec<String>>,
}

/// Ends a `join_raise_error`'s interest in failures (however it returns or unwinds).
struct Raising<'a>(&'a GroupInner);

impl Drop for Raising<'_> {
    fn drop(&mut self) {
        let n = self.0.raising.get() - 1;
        self.0.raising.set(n);
        if n == 0 {
            self.0.failures.borrow_mut().clear();
        }
    }
}

impl GroupInner {
    pub(crate) fn new(slots: Option<Rc<dyn Slots>>) -> Rc<GroupInner> {
        Rc::new(GroupInner {
            members: RefCell::new(BTreeMap::new()),
            empty: WaitList::default(),
            slots,
            dying: RefCell::new(BTreeSet::new()),
            raising: Cell::new(0),
            failures: RefCell::new(Vec::new()),
        })
    }

    /// Makes `g` a member (its slot, in a pool, already taken) until it finishes.
    pub(crate) fn insert<T: 'static>(self: &Rc<Self>, g: &Rc<Greenlet<T>>) {
        self.members.borrow_mut().insert(g.id(), g.clone());
        let weak: Weak<GroupInner> = Rc::downgrade(self);
        g.link(move |info: &GreenletInfo| {
            if let Some(inner) = weak.upgrade() {
                if let Outcome::Panicked(m) = &info.outcome {
                    if inner.raising.get() > 0 {
                        inner
                            .failures
                            .borrow_mut()
                            .push(format!("{}: {m}", info.name));
                        inner.empty.wake_all();
                    }
                }
                inner.remove(info.id);
            }
        });
    }

    /// Takes member `id` out, freeing its slot. Returns whether it was a member.
    pub(crate) fn remove(&self, id: u64) -> bool {
        let Some(g) = self.members.borrow_mut().remove(&id) else {
            return false;
        };
        self.dying.borrow_mut().remove(&id);
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

    /// Waits until every member has finished, or until one of them panics (gevent's
    /// `join(raise_error=True)`, returning at the first failure as `joinall` does).
    pub(crate) fn join_raise_error(&self, timeout: Option<Duration>) -> Result<bool> {
        self.raising.set(self.raising.get() + 1);
        let _raising = Raising(self);
        let seen = self.failures.borrow().len();
        let done = wait_until(
            "a Group's greenlets to finish (join_raise_error)",
            timeout,
            || self.members.borrow().is_empty() || self.failures.borrow().len() > seen,
            |w| self.empty.push(w),
        )?;
        if let Some(f) = self.failures.borrow().get(seen) {
            return Err(Error::GreenletFailed(f.clone()));
        }
        Ok(done)
    }

    /// True when a spawn would wait for a slot.
    pub(crate) fn full(&self) -> bool {
        self.slots.as_ref().is_some_and(|s| s.available() == 0)
    }

    /// Takes finished member `g` out of the group (freeing its slot now, not at its
    /// link), so that the handle is the last one and its value can be moved out.
    pub(crate) fn take_result<T>(&self, g: Rc<Greenlet<T>>) -> std::result::Result<T, JoinError> {
        self.remove(g.id());
        match Rc::try_unwrap(g) {
            Ok(g) => g.join(),
            // Someone else holds a handle too: report the outcome without the value.
            Err(g) => Err(match g.outcome() {
                Some(Outcome::Panicked(m)) => JoinError::Panicked(Box::new(m)),
                _ => JoinError::Killed,
            }),
        }
    }

    /// gevent's `apply`: runs `f` in a member and returns its value; called from a
    /// member, runs it right there (waiting for a slot of its own pool could wait forever).
    #[track_caller]
    pub(crate) fn apply<T: 'static>(
        self: &Rc<Self>,
        f: impl FnOnce() -> T + 'static,
    ) -> std::result::Result<T, JoinError> {
        if self.contains(current_id()) {
            return Ok(f());
        }
        crate::hub::refuse_in_hub("Group::apply (use apply_async, and join from a greenlet)")?;
        let g = self.spawn(None, f).map_err(|e| match e {
            e @ Error::Spawn(_) => JoinError::Spawn(e),
            e => JoinError::Wait(e),
        })?;
        wait_until(
            "a Group's greenlet to finish (apply)",
            None,
            || g.ready(),
            |w| g.subscribe(w),
        )?;
        self.take_result(g)
    }

    /// gevent's `apply_async`: never waits. With a free slot (or no bound), `f` runs in
    /// a member; in a full pool, a greenlet outside it waits for the slot and runs `f`
    /// there, as gevent does.
    #[track_caller]
    pub(crate) fn apply_async<T: 'static>(
        self: &Rc<Self>,
        f: impl FnOnce() -> T + 'static,
        callback: Option<Callback<T>>,
    ) -> Result<Rc<Greenlet<T>>> {
        if self.full() {
            let inner = self.clone();
            return spawn_with_callback("apply_async", move || inner.apply(f), callback);
        }
        self.spawn(None, move || {
            let v = f();
            if let Some(cb) = callback {
                cb(&v);
            }
            v
        })
    }

    /// gevent's `killone`.
    pub(crate) fn killone<T>(
        &self,
        g: &Greenlet<T>,
        block: bool,
        timeout: Option<Duration>,
    ) -> Result<bool> {
        let id = g.id();
        if self.contains(id) && self.dying.borrow_mut().insert(id) {
            g.kill_nowait();
            if !block {
                self.remove(id);
            }
        }
        if !block {
            return Ok(g.ready());
        }
        let done = wait_until(
            "a killed greenlet to finish (killone)",
            timeout,
            || g.ready(),
            |w| g.subscribe(w),
        )?;
        self.remove(id);
        Ok(done)
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

    /// Waits until every member has finished, or returns at the first member that
    /// panics (gevent's `join(raise_error=True)`), with
    /// [`Error::GreenletFailed`] naming it and its panic's message. Members that
    /// finished (and left) before the call are not looked at; members added meanwhile
    /// are. A killed member is no failure.
    ///
    /// # Examples
    /// ```
    /// use gevent_hub::pool::Group;
    /// use gevent_hub::{Error, Event};
    ///
    /// let group = Group::new();
    /// let never = Event::new();
    /// let n2 = never.clone();
    /// group.spawn(move || n2.wait().unwrap()); // would keep a plain join waiting
    /// let parser = group.spawn(|| -> u32 { panic!("bad input") });
    /// match group.join_raise_error() {
    ///     Err(Error::GreenletFailed(m)) => assert_eq!(m, format!("{}: bad input", parser.name())),
    ///     other => panic!("{other:?}"),
    /// }
    /// group.kill().unwrap();
    /// ```
    ///
    /// # Errors
    /// [`Error::GreenletFailed`]; as [`join`](Group::join).
    pub fn join_raise_error(&self) -> Result<()> {
        self.inner.join_raise_error(None).map(drop)
    }

    /// [`join_raise_error`](Group::join_raise_error) for at most `timeout`; returns
    /// whether every member finished.
    ///
    /// # Errors
    /// As [`join_raise_error`](Group::join_raise_error).
    pub fn join_raise_error_timeout(&self, timeout: Duration) -> Result<bool> {
        self.inner.join_raise_error(Some(timeout))
    }

    /// Kills member `g` (gevent's `killone`): with `block`, waits up to `timeout`
    /// (`None`: as long as it takes) for it to finish, then stops tracking it; without,
    /// stops tracking it at once (in a pool, its slot is free again while it
    /// unwinds). Returns whether it has finished. A greenlet that is not a member is
    /// not killed (with `block`, it is still waited for, as in gevent); a member
    /// already being killed by `killone` is not killed twice.
    ///
    /// # Examples
    /// ```
    /// use gevent_hub::pool::Pool;
    /// use gevent_hub::Event;
    ///
    /// let pool = Pool::new(1);
    /// let never = Event::new();
    /// let n2 = never.clone();
    /// let stuck = pool.spawn(move || n2.wait().unwrap()).unwrap();
    /// assert!(pool.killone(&stuck, true, None).unwrap());
    /// assert!(pool.is_empty() && pool.free_count() == 1);
    /// ```
    ///
    /// # Errors
    /// As [`join`](Group::join).
    pub fn killone<T>(
        &self,
        g: &Greenlet<T>,
        block: bool,
        timeout: Option<Duration>,
    ) -> Result<bool> {
        self.inner.killone(g, block, timeout)
    }

    /// Runs `f` in a member and returns its value (gevent's `apply`). Called from one
    /// of the group's own members, runs `f` right there instead: in a full pool, a
    /// member waiting for a slot could wait forever.
    ///
    /// # Examples
    /// ```
    /// use gevent_hub::pool::Pool;
    ///
    /// let pool = Pool::new(2);
    /// assert_eq!(pool.apply(|| 6 * 7).unwrap(), 42);
    /// ```
    ///
    /// # Errors
    /// [`JoinError::Panicked`] (the payload) or [`JoinError::Killed`] as `f` ended;
    /// [`JoinError::Spawn`] if it could not be started; [`JoinError::Wait`] for a wait
    /// error: [`Error::BlockingInHub`] in the hub (before `f` is started), waiting
    /// forever for a slot.
    #[track_caller]
    pub fn apply<T: 'static>(
        &self,
        f: impl FnOnce() -> T + 'static,
    ) -> std::result::Result<T, JoinError> {
        self.inner.apply(f)
    }

    /// Starts `f` and returns its greenlet at once (gevent's `apply_async`); never
    /// waits, so it works in the hub. With a free slot (always, in a plain group) `f`
    /// runs in a member; in a full pool, a greenlet outside the pool waits for a slot
    /// and runs `f` there, as gevent does, and the greenlet returned is that one: its
    /// value, panic or kill is `f`'s.
    ///
    /// `callback`, if any, is called with the value in the greenlet that ran `f`, right
    /// after `f` returns and before the greenlet finishes, so once a
    /// [`join`](Greenlet::join) returns the value, the callback has run. (gevent calls
    /// it from a greenlet of its own; running it here keeps it ordered before the
    /// join.) It is not called if `f` panicked or was killed; a panic in it is that
    /// greenlet's, as if `f` had panicked.
    ///
    /// The handle is the [`Greenlet`] itself, as gevent returns: it joins, kills,
    /// links and goes into [`joinall`](crate::joinall) like any other.
    ///
    /// # Examples
    /// ```
    /// use gevent_hub::pool::Pool;
    /// use std::cell::Cell;
    /// use std::rc::Rc;
    ///
    /// let pool = Pool::new(1);
    /// let seen = Rc::new(Cell::new(0));
    /// let s2 = seen.clone();
    /// let first = pool.apply_async(|| 1, None).unwrap();
    /// // The pool is full: this one waits for the slot in a greenlet of its own.
    /// let second = pool.apply_async(|| 2, Some(Box::new(move |v: &i32| s2.set(*v)))).unwrap();
    /// assert_eq!(Rc::try_unwrap(second).unwrap().join().unwrap(), 2);
    /// assert_eq!(seen.get(), 2, "the callback ran before the join returned");
    /// assert_eq!(first.get().unwrap(), 1);
    /// ```
    ///
    /// # Errors
    /// [`Error::Spawn`] if no stack could be mapped, [`Error::ThreadExiting`].
    #[track_caller]
    pub fn apply_async<T: 'static>(
        &self,
        f: impl FnOnce() -> T + 'static,
        callback: Option<Callback<T>>,
    ) -> Result<Rc<Greenlet<T>>> {
        self.inner.apply_async(f, callback)
    }

    /// [`map`](Group::map) in a greenlet of its own, returned at once (gevent's
    /// `map_async`): its value is the `Vec` of results, in input order; it ends as the
    /// first call that failed did (that call's panic payload, or a kill). `callback`,
    /// if any, gets the `Vec` first, as in [`apply_async`](Group::apply_async). The
    /// greenlet is not a member.
    ///
    /// # Examples
    /// ```
    /// use gevent_hub::pool::Group;
    /// use std::rc::Rc;
    ///
    /// let group = Group::new();
    /// let g = group.map_async(|x: u32| x + 1, vec![1, 2, 3], None).unwrap();
    /// assert_eq!(Rc::try_unwrap(g).unwrap().join().unwrap(), [2, 3, 4]);
    /// ```
    ///
    /// # Errors
    /// As [`apply_async`](Group::apply_async).
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
        let group = self.clone();
        spawn_with_callback("map_async", move || group.map(f, input), callback)
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
        Some(self.group.take_result(g))
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
