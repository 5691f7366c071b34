//! The hub's record of a greenlet: what the hub, not the greenlet core, knows of each
//! greenlet that waits in it or that it spawned. The greenlet core keeps it in the
//! greenlet's extension slot and drops it with the greenlet; it knows nothing of what
//! is in it.

use crate::greenlet::{self, GreenletState, PanicPayload};
use std::cell::{Cell, RefCell};
use std::panic::Location;
use std::rc::{Rc, Weak};

/// One greenlet, as the hub sees it.
pub(crate) struct Record {
    /// The greenlet (weak: the greenlet owns its record).
    g: Weak<GreenletState>,
    /// Bumped whenever a wait of this greenlet begins or ends, so that wake-ups for
    /// an earlier wait are recognised as stale and ignored.
    pub(crate) wait_seq: Cell<u64>,
    /// Parked in the hub, waiting for a wake-up.
    pub(crate) parked: Cell<bool>,
    /// What its current (or last) wait waits for, as the wait names it (run info).
    pub(crate) waiting_on: Cell<&'static str>,
    /// A throw (kill, timeout) to deliver at its next blocking point.
    pub(crate) pending_throw: Cell<Option<PanicPayload>>,
    /// The pending throw arrived while the greenlet was parked where it could not
    /// unwind (a C frame below it: the monkey layer's hooks), and was put back: the
    /// greenlet's end and `with_timeout` deliver it too, not only its next blocking
    /// point.
    pub(crate) throw_deferred: Cell<bool>,
    /// Where it was spawned, for diagnostics (`None` unless the hub spawned it).
    pub(crate) spawned_at: Cell<Option<&'static Location<'static>>>,
    /// Its values of [`GreenletLocal`](crate::GreenletLocal)s, by the local's id.
    pub(crate) locals: RefCell<Vec<(u64, Rc<dyn std::any::Any>)>>,
}

impl Record {
    /// Takes the pending throw, if any (it is being delivered or withdrawn).
    pub(crate) fn take_throw(&self) -> Option<PanicPayload> {
        self.throw_deferred.set(false);
        self.pending_throw.take()
    }

    /// Puts back a throw that arrived where the greenlet cannot unwind (see
    /// [`Record::throw_deferred`]).
    pub(crate) fn defer_throw(&self, p: PanicPayload) {
        self.pending_throw.set(Some(p));
        self.throw_deferred.set(true);
    }

    /// True while a throw waits for delivery.
    pub(crate) fn has_throw(&self) -> bool {
        let p = self.pending_throw.take();
        let has = p.is_some();
        self.pending_throw.set(p);
        has
    }

    /// Takes the pending throw if it was deferred and `is_mine` recognises it.
    pub(crate) fn take_deferred_if(
        &self,
        is_mine: impl Fn(&PanicPayload) -> bool,
    ) -> Option<PanicPayload> {
        if !self.throw_deferred.get() {
            return None;
        }
        let p = self.pending_throw.take()?;
        if is_mine(&p) {
            self.throw_deferred.set(false);
            Some(p)
        } else {
            self.pending_throw.set(Some(p));
            None
        }
    }

    /// The greenlet, while it exists.
    pub(crate) fn greenlet(&self) -> Option<Rc<GreenletState>> {
        self.g.upgrade()
    }

    /// True while the greenlet exists and has not finished.
    pub(crate) fn is_alive(&self) -> bool {
        self.g.upgrade().is_some_and(|g| !g.is_dead())
    }
}

/// The record of `g`, made on first use.
pub(crate) fn record_of(g: &Rc<GreenletState>) -> Rc<Record> {
    let mut p = g.extension().cast::<Record>();
    if p.is_null() {
        let rec = Rc::new(Record {
            g: Rc::downgrade(g),
            wait_seq: Cell::new(0),
            parked: Cell::new(false),
            waiting_on: Cell::new(""),
            pending_throw: Cell::new(None),
            throw_deferred: Cell::new(false),
            spawned_at: Cell::new(None),
            locals: RefCell::new(Vec::new()),
        });
        p = Rc::into_raw(rec);
        // SAFETY: the slot is empty (checked above) and only this module fills it: with
        // an `Rc<Record>` whose count `free_record` gives back when the greenlet goes.
        unsafe { g.set_extension(p.cast(), free_record) };
    }
    // SAFETY: the slot holds an `Rc<Record>` made above (see `free_record`), alive as
    // long as the greenlet, which the caller holds; the new count is the caller's.
    unsafe {
        Rc::increment_strong_count(p);
        Rc::from_raw(p)
    }
}

/// The record of the running greenlet: [`record_of`] without the two reference-count
/// updates of getting the running greenlet's `Rc` first (every wait does this).
#[inline]
/// Where `g` was spawned, if the hub spawned it; makes no record (a panic hook calls
/// it).
pub(crate) fn spawned_at_if_known(g: &GreenletState) -> Option<&'static Location<'static>> {
    let p = g.extension().cast::<Record>();
    if p.is_null() {
        return None;
    }
    // SAFETY: as in `record_of`: the slot holds an `Rc<Record>` alive as long as the
    // greenlet, which the caller holds; only a shared reference is made.
    unsafe { (*p).spawned_at.get() }
}

pub(crate) fn current_record() -> Rc<Record> {
    let g = greenlet::current_ptr();
    // SAFETY: the running greenlet is alive while it runs (see `greenlet::current_ptr`).
    let p = unsafe { (*g).extension() }.cast::<Record>();
    if p.is_null() {
        return record_of(&greenlet::current_rc());
    }
    // SAFETY: as in `record_of`: the slot holds an `Rc<Record>` alive as long as the
    // greenlet; the new count is the caller's.
    unsafe {
        Rc::increment_strong_count(p);
        Rc::from_raw(p)
    }
}

/// Gives back the slot's count on the record (the greenlet is being dropped).
///
/// # Safety
/// `p` is a greenlet's extension as [`record_of`] set it, passed once.
unsafe fn free_record(p: *const ()) {
    // SAFETY: the caller's contract: `p` came from `Rc::into_raw` of a Record.
    drop(unsafe { Rc::from_raw(p.cast::<Record>()) });
}

/// The record of `g` if it has one (diagnostics that must not make one).
pub(crate) fn record_if_any(g: &GreenletState) -> Option<&Record> {
    // SAFETY: a non-null slot holds a Record (see `record_of`), alive as long as `g`.
    unsafe { g.extension().cast::<Record>().as_ref() }
}
