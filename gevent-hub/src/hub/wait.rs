//! The wait vocabulary, in one place: how a greenlet waits in the hub and how it is
//! woken.
//!
//! - [`Wait`]: one logical wait of the current greenlet. It parks the greenlet in the
//!   hub ([`Wait::park`]) until one of its [`Waker`]s, its timeout, a kill or a loop
//!   exit resumes it. Every wait carries a sequence number (in the greenlet's
//!   [`Record`]): a wake-up that arrives after its wait ended finds the number changed
//!   and does nothing. Anything else that switches into a parked greenlet is an
//!   [`Error::InvalidSwitch`].
//! - [`Waker`]: a greenlet's (it resumes that greenlet's current wait) or a *sink*'s:
//!   it notes which object became ready in a [`SinkOwner`] owned by whoever waits for
//!   many objects at once (`joinall`, `wait`, `iwait`), and resumes whoever waits on
//!   the sink right now, so each object is subscribed to once per wait and each
//!   notification is O(1).
//! - [`Waitable`]: what `wait`/`iwait` accept; [`WaitList`]: an object's waiters, all
//!   woken at once; [`WaiterQueue`] and [`park_in_line`]: greenlets served one at a
//!   time in FIFO order (semaphores, queues), with hand-off.
//! - [`wait_until`] (re-check a condition after each wake-up) and [`wait_notified`]
//!   (a wake-up is the answer: gevent's `Event.wait`).

use super::record::{current_record, Record};
use super::{hub_if_any, try_get_hub, Wake};
use crate::error::{Error, Result};
use crate::greenlet::{as_signal, switch_msg, Msg};
use gevent_core::Timer;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::panic::resume_unwind;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Something a greenlet can wait for with [`wait`](crate::wait) and
/// [`iwait`](crate::iwait).
pub trait Waitable {
    /// True once it is ready (a greenlet has finished, an event is set, …).
    fn is_ready(&self) -> bool;
    /// Registers a waker to be woken when it becomes ready.
    fn subscribe(&self, w: Waker);
}

impl<W: Waitable + ?Sized> Waitable for &W {
    fn is_ready(&self) -> bool {
        (**self).is_ready()
    }
    fn subscribe(&self, w: Waker) {
        (**self).subscribe(w)
    }
}

/// A wake-up for one particular wait of one greenlet, or a notification for a sink
/// (see the module docs). Cheap to clone; stale ones do nothing.
#[derive(Clone)]
pub struct Waker(WakerKind);

#[derive(Clone)]
enum WakerKind {
    Greenlet { rec: Rc<Record>, seq: u64 },
    Sink { sink: Rc<Sink>, tag: usize },
}

impl fmt::Debug for Waker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Waker");
        match &self.0 {
            WakerKind::Greenlet { rec, .. } => {
                d.field("greenlet", &rec.greenlet().map(|g| g.id()));
            }
            WakerKind::Sink { tag, .. } => {
                d.field("tag", tag);
            }
        }
        d.field("valid", &self.is_valid()).finish()
    }
}

impl Waker {
    /// True while the wait it belongs to is still going on.
    pub fn is_valid(&self) -> bool {
        match &self.0 {
            WakerKind::Greenlet { rec, seq } => rec.wait_seq.get() == *seq && rec.is_alive(),
            WakerKind::Sink { sink, .. } => !sink.closed.get(),
        }
    }

    /// Whether `other` is a waker of the same wait (or sink and tag) as this one.
    pub(crate) fn same_wait(&self, other: &Waker) -> bool {
        match (&self.0, &other.0) {
            (WakerKind::Greenlet { rec: a, seq: x }, WakerKind::Greenlet { rec: b, seq: y }) => {
                Rc::ptr_eq(a, b) && x == y
            }
            (WakerKind::Sink { sink: a, tag: x }, WakerKind::Sink { sink: b, tag: y }) => {
                Rc::ptr_eq(a, b) && x == y
            }
            _ => false,
        }
    }

    /// Resumes the waiting greenlet at the hub's next callback phase, after the
    /// running greenlet (or the running hub callback) has gone on to its next
    /// blocking point (or returned): gevent delivers an `Event`'s notifications the
    /// same way, from a callback of their own.
    pub fn wake(&self) {
        self.wake_as(Wake::Woken, false);
    }

    /// In a watcher callback of this crate's own: switches into the waiting greenlet
    /// at once when called in the hub (else as [`wake`](Waker::wake)). Only for
    /// callers whose frames below are this crate's: the hub's stack is suspended
    /// there while the greenlet runs, possibly until the thread's teardown resumes it,
    /// when a user's callback would find its thread-locals destroyed.
    pub(crate) fn wake_now(&self) {
        self.wake_as(Wake::Woken, true);
    }

    /// Ends the wait with `why` ([`Wake::TimedOut`] from a wait's own timer); `now`
    /// as in [`wake_now`](Waker::wake_now).
    pub(crate) fn wake_as(&self, why: Wake, now: bool) {
        match &self.0 {
            WakerKind::Greenlet { rec, seq } => resume(rec, *seq, why, now),
            WakerKind::Sink { sink, tag } => sink.notify(*tag, now),
        }
    }
}

/// Resumes wait `seq` of the greenlet `rec` records with `why`, if that wait is on:
/// switches into it when `now` and called in the hub, else queues the wake-up.
#[inline] // into the hub's drain loop: one `ret` less after each switch back to the hub
fn resume(rec: &Rc<Record>, seq: u64, why: Wake, now: bool) {
    if rec.wait_seq.get() != seq {
        return;
    }
    // No `Rc<Hub>` may stay on a stack that is suspended by the switch: the hub
    // greenlet can stay suspended here for good, and would keep the hub alive after
    // its thread ended.
    let Some((in_hub, exiting)) = hub_if_any(|h| (h.is_current(), h.is_exiting())) else {
        return;
    };
    if exiting {
        return;
    }
    if in_hub && now {
        switch_in(rec, why);
    } else {
        hub_if_any(|hub| hub.queue_wakeup(rec.clone(), seq, why));
    }
}

/// In the hub: switches into the greenlet `rec` records if it is parked.
#[inline]
fn switch_in(rec: &Record, why: Wake) {
    if rec.parked.get() {
        if let Some(g) = rec.greenlet() {
            // What the greenlet switches back with is almost always a code
            // (`Parked`); anything else is dropped here as well.
            drop(as_signal(switch_msg(&g, why.msg())));
        }
    }
}

/// Resumes, from the hub's ready queue, a wake-up queued by [`resume`]. `in_hub`: the
/// caller knows it runs in the hub and the hub is not exiting.
#[inline]
pub(super) fn resume_queued(rec: &Rc<Record>, seq: u64, why: Wake, in_hub: bool) {
    if in_hub {
        if rec.wait_seq.get() == seq {
            switch_in(rec, why);
        }
    } else {
        resume(rec, seq, why, true);
    }
}

/// Where notifications for a wait on many objects gather: the tags of the objects
/// that became ready, in order, and the wait (if any) to resume when one arrives.
pub(crate) struct Sink {
    fired: RefCell<Vec<usize>>,
    waiter: RefCell<Option<Waker>>,
    /// Its owner is done: its wakers are stale.
    closed: Cell<bool>,
}

impl Sink {
    fn notify(&self, tag: usize, now: bool) {
        if self.closed.get() {
            return;
        }
        self.fired.borrow_mut().push(tag);
        let w = self.waiter.borrow().clone();
        if let Some(w) = w {
            w.wake_as(Wake::Woken, now);
        }
    }
}

/// The owner of a [`Sink`]: closes it when dropped, so wakers left behind in objects'
/// wait lists become stale.
pub(crate) struct SinkOwner(Rc<Sink>);

impl SinkOwner {
    /// A new, empty sink.
    pub(crate) fn new() -> SinkOwner {
        SinkOwner(Rc::new(Sink {
            fired: RefCell::new(Vec::new()),
            waiter: RefCell::new(None),
            closed: Cell::new(false),
        }))
    }

    /// A waker that notes `tag` in this sink.
    pub(crate) fn waker(&self, tag: usize) -> Waker {
        Waker(WakerKind::Sink {
            sink: self.0.clone(),
            tag,
        })
    }

    /// The tags noted since the last call, in the order they came.
    pub(crate) fn take(&self) -> Vec<usize> {
        std::mem::take(&mut *self.0.fired.borrow_mut())
    }

    /// Parks until a tag is noted (returns `Ok(true)` at once if one is) or `deadline`
    /// passes (`Ok(false)`).
    ///
    /// # Errors
    /// As [`Wait::park`].
    pub(crate) fn wait(&self, what: &'static str, deadline: Option<Instant>) -> Result<bool> {
        if !self.0.fired.borrow().is_empty() {
            return Ok(true);
        }
        let mut w = Wait::new(what)?;
        if let Some(d) = deadline {
            let left = d.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(false);
            }
            w.set_timeout(left)?;
        }
        *self.0.waiter.borrow_mut() = Some(w.waker());
        let r = loop {
            let r = w.park();
            if !self.0.fired.borrow().is_empty() {
                break Ok(true);
            }
            match r {
                // A wake-up left over from an earlier notification: keep waiting.
                Ok(true) => continue,
                other => break other,
            }
        };
        self.0.waiter.borrow_mut().take();
        r
    }
}

impl Drop for SinkOwner {
    fn drop(&mut self) {
        self.0.closed.set(true);
        self.0.waiter.borrow_mut().take();
    }
}

/// `now + d`, or `None` (no deadline) when that is beyond what `Instant` can hold.
pub(crate) fn deadline_after(d: Duration) -> Option<Instant> {
    Instant::now().checked_add(d)
}

/// One logical wait of the current greenlet. Wakers made from it are valid until it is
/// dropped; [`park`](Wait::park) may be called several times (re-check the condition
/// after each wake-up).
pub struct Wait {
    rec: Rc<Record>,
    seq: u64,
    what: &'static str,
    timer: Option<Timer>,
    remote_ids: RefCell<Vec<u64>>,
}

impl fmt::Debug for Wait {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Wait").field("what", &self.what).finish()
    }
}

impl Wait {
    /// Begins a wait for `what` (named in errors).
    ///
    /// # Errors
    /// [`Error::BlockingInHub`] in the hub; [`Error::Unwinding`] during a panic;
    /// [`Error::ThreadExiting`] once the thread has begun to end.
    #[inline]
    pub fn new(what: &'static str) -> Result<Wait> {
        let state = match hub_if_any(|h| (h.is_current(), h.is_exiting())) {
            Some(s) => s,
            None => {
                try_get_hub()?;
                hub_if_any(|h| (h.is_current(), h.is_exiting())).ok_or(Error::ThreadExiting)?
            }
        };
        may_block(what, state)?;
        let rec = current_record();
        let seq = rec.wait_seq.get().wrapping_add(1);
        rec.wait_seq.set(seq);
        Ok(Wait {
            rec,
            seq,
            what,
            timer: None,
            remote_ids: RefCell::new(Vec::new()),
        })
    }

    /// [`Wait::new`] ending with a timeout after `timeout`, if given.
    pub(crate) fn timed(what: &'static str, timeout: Option<Duration>) -> Result<Wait> {
        let mut w = Wait::new(what)?;
        if let Some(d) = timeout {
            w.set_timeout(d)?;
        }
        Ok(w)
    }

    /// Queues this wait's own wake-up behind every wake-up already queued: the next
    /// [`park`](Wait::park) is a yield. (A wait is never begun in the hub, so the
    /// wake-up always goes through the queue.)
    #[inline]
    pub(crate) fn wake_queued(&self) {
        hub_if_any(|h| h.queue_wakeup(self.rec.clone(), self.seq, Wake::Woken));
    }

    /// A waker for this wait.
    pub fn waker(&self) -> Waker {
        Waker(WakerKind::Greenlet {
            rec: self.rec.clone(),
            seq: self.seq,
        })
    }

    /// A waker for other threads. The hub's loop is kept alive until it is used or the
    /// wait ends.
    pub fn remote_waker(&self) -> super::RemoteWaker {
        let (id, waker) = super::remote::register(self.waker());
        self.remote_ids.borrow_mut().push(id);
        waker
    }

    /// Ends the wait with a timeout after `d` ([`park`](Wait::park) then returns
    /// `Ok(false)`). A `d` too large for the clock means no timeout.
    ///
    /// # Errors
    /// The hub's loop refused the timer.
    pub fn set_timeout(&mut self, d: Duration) -> Result<()> {
        if deadline_after(d).is_none() {
            return Ok(());
        }
        let Some(t) = hub_if_any(|h| h.timer_from_now(d)) else {
            return Err(Error::ThreadExiting);
        };
        let w = self.waker();
        t.start(move |_, _| w.wake_as(Wake::TimedOut, true))?;
        self.timer = Some(t);
        Ok(())
    }

    /// Switches to the hub until a waker of this wait (or the timeout) resumes this
    /// greenlet. Returns `Ok(true)` when woken, `Ok(false)` on timeout.
    ///
    /// # Errors
    /// [`Error::WouldBlockForever`] when the loop ran out of work;
    /// [`Error::InvalidSwitch`] when something else switched into this greenlet;
    /// [`Error::ThreadExiting`] once the thread has begun to end.
    ///
    /// # Panics
    /// A kill or a [`Timeout`](crate::Timeout) unwinds from here with its payload.
    // Always inlined: the switch back returns through it, and each `ret` after a
    // switch is mispredicted (see `greenlet::switch_msg`).
    #[inline(always)]
    pub fn park(&self) -> Result<bool> {
        if let Some(p) = self.rec.take_throw() {
            resume_unwind(p);
        }
        if self.timer.as_ref().is_some_and(|t| !t.is_active()) {
            return Ok(false);
        }
        wake_result(self.switch_parked()?, self.what)
    }

    /// Marks this greenlet parked on this wait and switches to the hub; returns what
    /// the switch back brought.
    ///
    /// # Errors
    /// [`Error::ThreadExiting`] if the thread has no running hub any more.
    #[inline(always)] // the switch back returns through it (see `greenlet::switch_msg`)
    fn switch_parked(
        &self,
    ) -> Result<std::result::Result<u8, std::result::Result<Msg, crate::greenlet::SwitchError>>>
    {
        let Some((hub_greenlet, exiting)) = hub_if_any(|h| (h.raw_greenlet(), h.is_exiting()))
        else {
            return Err(Error::ThreadExiting);
        };
        if exiting {
            return Err(Error::ThreadExiting);
        }
        self.rec.parked.set(true);
        self.rec.waiting_on.set(self.what);
        let r = as_signal(switch_msg(&hub_greenlet, Wake::Parked.msg()));
        drop(hub_greenlet);
        self.rec.parked.set(false);
        Ok(r)
    }
}

impl Wait {
    /// [`park`](Wait::park) for a greenlet that must not unwind here (a C frame is
    /// below it: the monkey layer's hooks). A kill or a [`Timeout`](crate::Timeout)
    /// that arrives while it is parked, or was already pending, is kept pending,
    /// marked deferred, and `Ok(None)` is returned: it is delivered at the greenlet's
    /// next blocking point, at the end of the `with_timeout` it belongs to, or when the
    /// greenlet's function returns. Otherwise `Ok(Some(woken))` as `park`.
    ///
    /// # Errors
    /// As [`Wait::park`].
    #[inline(always)]
    pub(crate) fn park_or_defer(&self) -> Result<Option<bool>> {
        if self.rec.has_throw() {
            self.rec.throw_deferred.set(true);
            // Still a yield: code that loops on the failing call (retrying on every
            // error) must not freeze the other greenlets and the hub.
            self.wake_queued();
            // However the yield ends (the thread ending included), the call fails.
            let _ = self.switch_deferring();
            return Ok(None);
        }
        if self.timer.as_ref().is_some_and(|t| !t.is_active()) {
            return Ok(Some(false));
        }
        self.switch_deferring()
    }

    /// The switch of [`park_or_defer`](Wait::park_or_defer): a throw that arrives is
    /// kept pending (the first one, if one already is).
    #[inline(always)]
    fn switch_deferring(&self) -> Result<Option<bool>> {
        match self.switch_parked()? {
            Err(Ok(Msg::Throw(p))) => {
                if !self.rec.has_throw() {
                    self.rec.defer_throw(p);
                }
                Ok(None)
            }
            r => wake_result(r, self.what).map(Some),
        }
    }
}

/// Whether the running greenlet may begin a wait for `what`, given where it runs
/// (`(in the hub, the hub exiting)`).
#[inline(always)]
fn may_block(what: &'static str, (in_hub, exiting): (bool, bool)) -> Result<()> {
    if exiting {
        return Err(Error::ThreadExiting);
    }
    if in_hub {
        return Err(Error::BlockingInHub(what));
    }
    if std::thread::panicking() {
        return Err(Error::Unwinding);
    }
    Ok(())
}

/// What the switch back into a parked greenlet means for its wait for `what`:
/// woken (`true`), timed out (`false`), a throw (unwinds from here), or an error.
#[inline(always)]
fn wake_result(
    r: std::result::Result<u8, std::result::Result<Msg, crate::greenlet::SwitchError>>,
    what: &'static str,
) -> Result<bool> {
    match r {
        Ok(code) => match Wake::from_code(code) {
            Some(Wake::Woken) => Ok(true),
            Some(Wake::TimedOut) => Ok(false),
            Some(Wake::LoopExit) => Err(Error::WouldBlockForever(what.to_owned())),
            _ => Err(invalid_switch(&Msg::Signal(code), what)),
        },
        Err(Ok(Msg::Throw(p))) => resume_unwind(p),
        Err(Ok(m)) => Err(invalid_switch(&m, what)),
        Err(Err(e)) => Err(e.into()),
    }
}

#[cold]
fn invalid_switch(m: &Msg, what: &'static str) -> Error {
    Error::InvalidSwitch(format!("{} (while waiting for {what})", describe(m)))
}

/// Ends wait `seq` of `rec`: its wakers, a queued wake-up included, are stale.
#[inline(always)]
fn end_wait(rec: &Record, seq: u64) {
    if rec.wait_seq.get() == seq {
        rec.wait_seq.set(seq.wrapping_add(1));
    }
}

/// `sleep(0)`: queues the current greenlet's wake-up behind every wake-up already
/// queued and parks until it comes. What `Wait::new` + `wake_queued` + `park` do,
/// without the parts a yield has no use for (a timer, remote wakers, a name kept for
/// later), since it is the hub's hottest path.
///
/// # Errors
/// As [`Wait::new`] and [`Wait::park`].
#[inline(always)] // the switch back returns through it (see `greenlet::switch_msg`)
pub(crate) fn yield_now() -> Result<()> {
    const WHAT: &str = "sleep";
    let Some((hub_greenlet, in_hub, exiting)) =
        hub_if_any(|h| (h.raw_greenlet(), h.is_current(), h.is_exiting()))
    else {
        // No hub yet: the general path makes it (or says why it cannot).
        let w = Wait::new(WHAT)?;
        w.wake_queued();
        return w.park().map(drop);
    };
    may_block(WHAT, (in_hub, exiting))?;
    let rec = current_record();
    if let Some(p) = rec.take_throw() {
        resume_unwind(p);
    }
    let seq = rec.wait_seq.get().wrapping_add(1);
    rec.wait_seq.set(seq);
    /// Ends the wait however the switch back ends (an unwinding kill too): its
    /// wake-up, if still queued, is stale from here on.
    struct Done<'a>(&'a Record, u64);
    impl Drop for Done<'_> {
        #[inline]
        fn drop(&mut self) {
            self.0.parked.set(false);
            end_wait(self.0, self.1);
        }
    }
    hub_if_any(|h| h.queue_wakeup(rec.clone(), seq, Wake::Woken));
    let done = Done(&rec, seq);
    rec.parked.set(true);
    rec.waiting_on.set(WHAT);
    let r = as_signal(switch_msg(&hub_greenlet, Wake::Parked.msg()));
    drop(hub_greenlet);
    drop(done);
    wake_result(r, WHAT).map(drop)
}

/// What a message that is not a wake-up is, for [`Error::InvalidSwitch`].
fn describe(m: &Msg) -> String {
    match m {
        Msg::Value(_) => "a switch with a value".to_owned(),
        Msg::Finished(_) => "a child greenlet's return".to_owned(),
        Msg::Signal(code) => format!("scheduler code {code}"),
        Msg::Throw(_) => "a throw".to_owned(),
    }
}

impl Drop for Wait {
    fn drop(&mut self) {
        end_wait(&self.rec, self.seq);
        let ids = std::mem::take(self.remote_ids.get_mut());
        if !ids.is_empty() {
            super::remote::unregister(&ids);
        }
    }
}

/// Waits until `ready()` holds, registering a waker with `subscribe` first and again
/// after each wake-up (a wake-up consumes the subscription). Returns `Ok(false)` if
/// `timeout` expired first.
#[inline] // the switch back returns through it (see `greenlet::switch_msg`)
pub(crate) fn wait_until(
    what: &'static str,
    timeout: Option<Duration>,
    ready: impl Fn() -> bool,
    subscribe: impl Fn(Waker),
) -> Result<bool> {
    if ready() {
        return Ok(true);
    }
    let w = Wait::timed(what, timeout)?;
    loop {
        subscribe(w.waker());
        if !w.park()? {
            return Ok(ready());
        }
        if ready() {
            return Ok(true);
        }
    }
}

/// Waits for a notification: returns `Ok(true)` at once if `ready()` holds, else
/// subscribes once and returns `Ok(true)` when woken (whether or not `ready()` still
/// holds: it became ready while this greenlet waited, as gevent's `Event.wait` says),
/// `Ok(false)` on timeout.
#[inline] // the switch back returns through it (see `greenlet::switch_msg`)
pub(crate) fn wait_notified(
    what: &'static str,
    timeout: Option<Duration>,
    ready: impl Fn() -> bool,
    subscribe: impl FnOnce(Waker),
) -> Result<bool> {
    if ready() {
        return Ok(true);
    }
    let w = Wait::timed(what, timeout)?;
    subscribe(w.waker());
    w.park()
}

/// Waiters of one object; woken all at once.
///
/// Waits that end early (timed out, killed) leave stale wakers behind; they are swept
/// out when the list has doubled since the last sweep, so a push costs O(1) amortised
/// however many greenlets wait.
#[derive(Default)]
pub(crate) struct WaitList {
    wakers: RefCell<Vec<Waker>>,
    /// The length at which the next push sweeps out stale wakers.
    sweep_at: Cell<usize>,
    /// Wakers looked at by sweeps so far.
    #[cfg(test)]
    swept: Cell<usize>,
}

/// The smallest list that is ever swept.
const SWEEP_MIN: usize = 16;

/// The largest allocation a [`WaitList`] keeps once everyone on it was woken.
const KEEP_CAPACITY: usize = 64;

impl WaitList {
    pub(crate) fn push(&self, w: Waker) {
        let mut ws = self.wakers.borrow_mut();
        if ws.len() >= self.sweep_at.get().max(SWEEP_MIN) {
            #[cfg(test)]
            self.swept.set(self.swept.get() + ws.len());
            ws.retain(Waker::is_valid);
            self.sweep_at.set(2 * ws.len());
        }
        ws.push(w);
    }

    pub(crate) fn wake_all(&self) {
        // Taken out first: no borrow of the list is held while the wakers run.
        let mut ws = std::mem::take(&mut *self.wakers.borrow_mut());
        self.sweep_at.set(0);
        for w in ws.drain(..) {
            w.wake();
        }
        // A list that is waited on again and again (an Event in a loop) keeps its
        // allocation rather than making one per wait; a large one is let go.
        let mut cur = self.wakers.borrow_mut();
        if cur.capacity() == 0 && ws.capacity() <= KEEP_CAPACITY {
            *cur = ws;
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.wakers.borrow().len()
    }
}

/// A greenlet standing in a [`WaiterQueue`], and what it was handed (or offers).
pub(crate) struct Waiter<V> {
    waker: Waker,
    /// Written by whoever serves the waiter, read by the waiter when it resumes.
    pub(crate) state: RefCell<V>,
}

impl<V> Waiter<V> {
    /// Resumes the waiter at the hub's next callback phase.
    pub(crate) fn wake(&self) {
        self.waker.wake();
    }
}

/// Greenlets waiting their turn, first come first served.
pub(crate) struct WaiterQueue<V>(RefCell<VecDeque<Rc<Waiter<V>>>>);

impl<V> Default for WaiterQueue<V> {
    fn default() -> Self {
        WaiterQueue(RefCell::new(VecDeque::new()))
    }
}

impl<V> WaiterQueue<V> {
    pub(crate) fn len(&self) -> usize {
        self.0.borrow().len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.borrow().is_empty()
    }

    /// The first waiter whose greenlet can still be resumed. Waiters leave the line
    /// themselves when their wait ends, so a dead one is only skipped defensively: what
    /// it would be handed would be lost.
    pub(crate) fn pop_live(&self) -> Option<Rc<Waiter<V>>> {
        loop {
            let w = self.0.borrow_mut().pop_front()?;
            if w.waker.is_valid() {
                return Some(w);
            }
        }
    }

    /// The first waiter, live or not (a putter's item must not be skipped).
    pub(crate) fn pop_any(&self) -> Option<Rc<Waiter<V>>> {
        self.0.borrow_mut().pop_front()
    }

    /// Everyone, in order.
    pub(crate) fn drain(&self) -> Vec<Rc<Waiter<V>>> {
        self.0.borrow_mut().drain(..).collect()
    }

    fn push(&self, w: Rc<Waiter<V>>) {
        self.0.borrow_mut().push_back(w);
    }

    fn remove(&self, w: &Rc<Waiter<V>>) {
        self.0.borrow_mut().retain(|x| !Rc::ptr_eq(x, w));
    }
}

/// Stands the current greenlet at the back of `queue` with `state` and parks it until
/// someone serves it (`served(&state)` holds), `timeout` passes, or waiting fails.
///
/// Returns the final state with `Ok(true)` when served, `Ok(false)` on timeout, or the
/// wait's error. A greenlet served just as its timeout fired counts as served. If the
/// greenlet unwinds while parked (killed, a [`Timeout`](crate::Timeout)), it leaves
/// the line, and what it was already handed goes to `undo`.
pub(crate) fn park_in_line<V: Default>(
    what: &'static str,
    timeout: Option<Duration>,
    queue: &WaiterQueue<V>,
    state: V,
    served: fn(&V) -> bool,
    undo: impl FnOnce(V),
) -> (Result<bool>, V) {
    let wait = match Wait::timed(what, timeout) {
        Ok(w) => w,
        Err(e) => return (Err(e), state),
    };
    let waiter = Rc::new(Waiter {
        waker: wait.waker(),
        state: RefCell::new(state),
    });
    queue.push(waiter.clone());
    let mut guard = LeaveLine {
        queue,
        waiter: &waiter,
        served,
        undo: Some(undo),
    };
    let r = loop {
        // A kill unwinds from here: `guard` then leaves the line and gives back.
        let r = wait.park();
        if served(&waiter.state.borrow()) {
            break Ok(true);
        }
        match r {
            // Woken by a stale wake-up: keep waiting.
            Ok(true) => continue,
            other => break other,
        }
    };
    guard.undo = None;
    drop(guard);
    let state = waiter.state.take();
    (r, state)
}

/// Takes a waiter out of its line when its wait ends, whichever way it ends.
struct LeaveLine<'a, V: Default, U: FnOnce(V)> {
    queue: &'a WaiterQueue<V>,
    waiter: &'a Rc<Waiter<V>>,
    served: fn(&V) -> bool,
    /// Present only while unwinding out of the park (disarmed on normal exits).
    undo: Option<U>,
}

impl<V: Default, U: FnOnce(V)> Drop for LeaveLine<'_, V, U> {
    fn drop(&mut self) {
        self.queue.remove(self.waiter);
        if let Some(undo) = self.undo.take() {
            let state = self.waiter.state.take();
            if (self.served)(&state) {
                undo(state);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pushing n wakers costs O(n) in all, whether they stay valid (a sink's) or go
    /// stale (ended waits'): the sweeps look at fewer than 4n wakers.
    #[test]
    fn pushes_are_amortised_constant() {
        let n = 100_000;
        let valid = WaitList::default();
        let sink = SinkOwner::new();
        for i in 0..n {
            valid.push(sink.waker(i));
        }
        assert_eq!(valid.len(), n, "valid wakers are kept");
        assert!(valid.swept.get() < 4 * n, "swept {}", valid.swept.get());

        let stale = WaitList::default();
        for _ in 0..n {
            // Each new wait of this greenlet ends the one before: its waker goes stale.
            let w = Wait::new("a test wait").unwrap();
            stale.push(w.waker());
        }
        assert!(stale.len() < 2 * SWEEP_MIN, "stale wakers are swept out");
        assert!(stale.swept.get() < 4 * n, "swept {}", stale.swept.get());
    }
}
