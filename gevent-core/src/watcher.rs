//! The machinery every watcher shares, written once.
//!
//! ```text
//!   Watcher<K>  (owning handle; drop = stop)
//!       │ Rc
//!       ▼
//!   WatcherCore<K> ── raw: UnsafeCell<ev_TYPE>   ◄── libev holds &raw while active/pending
//!       │              cb:  Box<dyn FnMut(&WatcherCore<K>, Events)>
//!       │              loop link (LoopRc; LoopWeak for cleanup watchers)
//!       ▼
//!   raw.data = pointer to the WatcherCore ──► trampoline::<K> finds its way back
//! ```
//!
//! The rules named here are the crate's [soundness rules](crate#soundness-rules).
//!
//! The libev struct lives inside an `Rc` allocation, so it never moves (rule 1). The
//! owning handle stops the watcher when dropped, and `ev_TYPE_stop` also clears a
//! pending event, so libev never touches freed memory (rules 1 and 2). The trampoline
//! takes an extra strong count for the duration of a callback, and moves the closure
//! out of its slot while it runs, so a callback may stop, restart, re-arm, replace or
//! drop its own watcher (rule 3). Panics are caught before they reach C (rule 5). The
//! struct's `data` points back at the `WatcherCore` (rule 9), which is how the
//! trampoline, through `watcher_of`, finds its way back.
//!
//! The watcher state machine is libev's: *initialised* (made, not started) →
//! `start` → *active* → event → *pending* → callback runs → *active* (or *stopped*
//! for one-shot timers) → `stop` → *initialised*. `feed` makes any watcher pending.

use crate::error::{Error, Result};
use crate::event_loop::{Loop, LoopInner, LoopRc, LoopWeak};
use crate::events::Events;
use crate::registry::Detached;
use libev_sys::{self as ffi, EvWatcher};
use std::cell::{Cell, RefCell, UnsafeCell};
use std::ffi::c_int;
use std::fmt;
use std::ops::Deref;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::{Rc, Weak};

pub use crate::sys::{MAXPRI, MINPRI};

type RawCb<R> = Option<unsafe extern "C" fn(*mut ffi::ev_loop, *mut R, c_int)>;
type BoxedCb<K> = Box<dyn FnMut(&WatcherCore<K>, Events)>;

pub(crate) mod sealed {
    pub trait Sealed {}
}

/// One libev watcher type: what differs between `ev_io`, `ev_timer`, … Implemented by
/// the marker types in [`kind`](crate::kind); not implementable outside this crate.
pub trait Kind: sealed::Sealed + Sized + 'static {
    /// The libev struct (`ev_io`, `ev_timer`, …).
    #[doc(hidden)]
    type Raw: EvWatcher<Callback = RawCb<Self::Raw>>;
    /// Per-type state kept beside the raw struct.
    #[doc(hidden)]
    type Extra;
    /// The watcher's name in messages ("io", "timer", …).
    const NAME: &'static str;
    /// Cleanup watchers hold their loop weakly: they fire while it is destroyed.
    #[doc(hidden)]
    const WEAK_LOOP: bool = false;
    /// Stop (rather than only report) a watcher whose callback panicked.
    #[doc(hidden)]
    const STOP_ON_PANIC: bool = false;
    #[doc(hidden)]
    unsafe fn ev_start(l: *mut ffi::ev_loop, w: *mut Self::Raw);
    #[doc(hidden)]
    unsafe fn ev_stop(l: *mut ffi::ev_loop, w: *mut Self::Raw);
    /// Validation and bookkeeping before `ev_TYPE_start` (e.g. is the fd open?).
    #[doc(hidden)]
    fn before_start(_w: &WatcherCore<Self>) -> Result<()> {
        Ok(())
    }
    /// Validation before [`rearm`](WatcherCore::rearm) (a restart with the same
    /// callback). Defaults to [`Kind::before_start`]; io watchers skip the fd check
    /// there, since rearming is the per-wait hot path of every socket.
    #[doc(hidden)]
    fn before_rearm(w: &WatcherCore<Self>) -> Result<()> {
        Self::before_start(w)
    }
    /// Bookkeeping after the watcher stopped (by `stop`, never by libev itself).
    #[doc(hidden)]
    fn after_stop(_w: &WatcherCore<Self>) {}
    /// Runs `start`, the `ev_TYPE_start` call. A type that must do something around it
    /// (hold a lock, catch what libev calls back into) overrides this.
    #[doc(hidden)]
    fn around_start(_w: &WatcherCore<Self>, start: impl FnOnce()) {
        start()
    }
    /// Runs `stop`, the `ev_TYPE_stop` call; see [`Kind::around_start`].
    #[doc(hidden)]
    fn around_stop(_w: &WatcherCore<Self>, stop: impl FnOnce()) {
        stop()
    }
}

/// The loop a watcher belongs to.
pub(crate) enum LoopLink {
    Strong(LoopRc),
    Weak(LoopWeak, *mut ffi::ev_loop),
}

impl LoopLink {
    /// The raw loop, if it is still alive and not being destroyed.
    fn raw(&self) -> Option<*mut ffi::ev_loop> {
        match self {
            LoopLink::Strong(rc) => Some(rc.raw),
            LoopLink::Weak(w, raw) => w.upgrade().map(|_| *raw),
        }
    }
    /// The loop's state, if it is still alive and not being destroyed.
    fn inner(&self) -> Option<LoopRc> {
        match self {
            LoopLink::Strong(rc) => Some(rc.clone()),
            LoopLink::Weak(w, _) => w.upgrade(),
        }
    }
}

impl<K: Kind> Detached for WatcherCore<K> {
    fn stop_detached(&self) {
        self.stop();
    }
    fn fires_at_destroy(&self) -> bool {
        K::WEAK_LOOP
    }
    fn addr(&self) -> *const () {
        self as *const Self as *const ()
    }
}

/// The watcher itself: the libev struct, its callback and its link to the loop, in the
/// one heap allocation that the owning [`Watcher`] handle, the trampoline and (for a
/// detached watcher) the loop share. Callbacks receive `&WatcherCore<K>`, and
/// `Watcher<K>` derefs to it; all the common operations live here.
pub struct WatcherCore<K: Kind> {
    /// First field, so it is dropped first: an async watcher's extra detaches its
    /// cross-thread senders before anything else of the watcher goes.
    pub(crate) extra: K::Extra,
    raw: UnsafeCell<K::Raw>,
    lp: LoopLink,
    cb: RefCell<Option<BoxedCb<K>>>,
    /// Bumped whenever the callback slot is written, so the trampoline can tell
    /// whether the running callback replaced (or cleared) itself.
    cb_epoch: Cell<u64>,
    /// The epoch of the callback the trampoline is running (taken out of `cb`), so
    /// that it still counts as this watcher's callback until it is replaced.
    running_epoch: Cell<Option<u64>>,
    /// The user asked for a watcher that does not keep the loop alive.
    no_ref: Cell<bool>,
    /// An `ev_unref` is currently held on the loop on this watcher's behalf.
    unrefd: Cell<bool>,
    /// Kept alive by the loop's detached list rather than by a handle.
    detached: Cell<bool>,
}

/// The old name of [`WatcherCore`].
#[deprecated(note = "renamed to WatcherCore: it is the watcher itself, not a reference")]
pub type WatcherRef<K> = WatcherCore<K>;

/// An owning watcher handle: made from a [`Loop`], started with a closure, stopped
/// when dropped. Derefs to [`WatcherCore`] for the common operations; each watcher
/// type adds its own ([`Timer::again`](crate::WatcherCore::again), …).
///
/// ```compile_fail
/// fn assert_send<T: Send>() {}
/// assert_send::<gevent_core::Timer>();
/// ```
#[must_use = "dropping a watcher handle stops the watcher; `detach` keeps it running"]
pub struct Watcher<K: Kind> {
    inner: Rc<WatcherCore<K>>,
}

impl<K: Kind> Deref for Watcher<K> {
    type Target = WatcherCore<K>;
    fn deref(&self) -> &WatcherCore<K> {
        &self.inner
    }
}

impl<K: Kind> Drop for Watcher<K> {
    fn drop(&mut self) {
        // Rule 2: dropping the handle stops the watcher (and clears a pending event).
        self.inner.stop();
    }
}

/// A weak handle to a detached watcher ([`Watcher::detach_weak`]): it can stop the
/// watcher while the loop still owns it, and does not keep it alive.
pub struct WeakWatcher<K: Kind> {
    inner: Weak<WatcherCore<K>>,
}

impl<K: Kind> WeakWatcher<K> {
    /// Stops the watcher if it still exists; the loop then lets it go. Returns whether
    /// it existed.
    pub fn stop(&self) -> bool {
        match self.inner.upgrade() {
            Some(w) => {
                w.stop();
                true
            }
            None => false,
        }
    }

    /// True while the watcher exists (detached and not yet stopped).
    pub fn is_alive(&self) -> bool {
        self.inner.strong_count() > 0
    }
}

impl<K: Kind> fmt::Debug for WeakWatcher<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WeakWatcher")
            .field("kind", &K::NAME)
            .field("alive", &self.is_alive())
            .finish()
    }
}

impl<K: Kind> fmt::Debug for WatcherCore<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(K::NAME)
            .field("active", &self.is_active())
            .field("pending", &self.is_pending())
            .field("priority", &self.priority())
            .field("ref", &self.is_ref())
            .finish()
    }
}

impl<K: Kind> fmt::Debug for Watcher<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt(f)
    }
}

impl<K: Kind> Watcher<K> {
    /// Makes a watcher around `raw`, which the caller has initialised with the type's
    /// `ev_TYPE_set` values.
    pub(crate) fn new(lp: &Loop, raw: K::Raw, extra: K::Extra) -> Watcher<K> {
        let link = if K::WEAK_LOOP {
            LoopLink::Weak(lp.inner.downgrade(), lp.inner.raw)
        } else {
            LoopLink::Strong(lp.inner.clone())
        };
        let inner = Rc::new(WatcherCore {
            extra,
            raw: UnsafeCell::new(raw),
            lp: link,
            cb: RefCell::new(None),
            cb_epoch: Cell::new(0),
            running_epoch: Cell::new(None),
            no_ref: Cell::new(false),
            unrefd: Cell::new(false),
            detached: Cell::new(false),
        });
        let w = inner.raw.get();
        // SAFETY: rule 1: the struct has its final address inside the Rc, and nothing
        // has started it. ev_init keeps the ev_TYPE_set fields and resets the header;
        // `data` is set to the WatcherCore (rule 9).
        unsafe {
            let cb: RawCb<K::Raw> = Some(trampoline::<K>);
            ffi::ev_init(w, cb);
            (*(w as *mut ffi::ev_watcher)).data = Rc::as_ptr(&inner) as *mut _;
        }
        Watcher { inner }
    }

    /// Gives up the handle but keeps the watcher running: the loop owns it until it
    /// stops (a callback calls `stop`, a one-shot timer fires) or the last `Loop`
    /// handle is dropped. This is the explicit opt-in of soundness rule 2.
    pub fn detach(self) {
        self.detach_weak();
    }

    /// [`detach`](Watcher::detach), keeping a weak handle that can still stop the
    /// watcher (or see that it is gone) without keeping it alive.
    pub fn detach_weak(self) -> WeakWatcher<K> {
        let weak = WeakWatcher {
            inner: Rc::downgrade(&self.inner),
        };
        self.detach_inner();
        weak
    }

    fn detach_inner(self) {
        let this = std::mem::ManuallyDrop::new(self);
        // SAFETY: `this` is ManuallyDrop and never used again, so the Rc moves out of it
        // exactly once.
        let inner = unsafe { std::ptr::read(&this.inner) };
        if !inner.is_active() && !inner.is_pending() {
            inner.stop();
            return;
        }
        if let Some(lp) = inner.lp.inner() {
            if !K::WEAK_LOOP && !lp.has_handles() {
                // The last `Loop` handle is already gone, so nothing would ever release
                // the watcher: it and the loop would keep each other alive for good.
                inner.stop();
                return;
            }
            inner.detached.set(true);
            lp.watchers.keep(inner);
        }
    }
}

impl<K: Kind> WatcherCore<K> {
    /// The raw libev watcher, for calling libev directly. It must not be started or
    /// stopped behind this type's back.
    pub fn as_raw(&self) -> *mut K::Raw {
        self.raw.get()
    }

    pub(crate) fn raw_loop(&self) -> Option<*mut ffi::ev_loop> {
        self.lp.raw()
    }

    pub(crate) fn loop_inner(&self) -> Option<LoopRc> {
        self.lp.inner()
    }

    /// A handle to the loop this watcher belongs to (`None` for a cleanup watcher whose
    /// loop is gone or being destroyed).
    pub fn get_loop(&self) -> Option<Loop> {
        self.lp.inner().map(Loop::from_inner)
    }

    fn set_cb(&self, cb: Option<BoxedCb<K>>) {
        let old = self.cb.replace(cb);
        self.cb_epoch.set(self.cb_epoch.get().wrapping_add(1));
        // Dropped after the slot is consistent: the closure's destructor may re-enter.
        drop(old);
    }

    /// Sets the callback and starts the watcher (`ev_TYPE_start`). On an active watcher
    /// this only replaces the callback.
    ///
    /// # Errors
    /// The type's own checks (an io watcher on a closed fd, a signal owned by another
    /// loop, …), or [`Error::LoopReleased`] when the loop is gone.
    pub fn start(&self, cb: impl FnMut(&WatcherCore<K>, Events) + 'static) -> Result<()> {
        self.start_boxed(Box::new(cb))
    }

    pub(crate) fn start_boxed(&self, cb: BoxedCb<K>) -> Result<()> {
        if self.is_active() {
            self.set_cb(Some(cb));
            return Ok(());
        }
        let l = self.raw_loop().ok_or(Error::LoopReleased)?;
        K::before_start(self)?;
        self.set_cb(Some(cb));
        self.start_raw(l);
        Ok(())
    }

    /// `ev_TYPE_start` plus the ref bookkeeping; the callback must already be set.
    pub(crate) fn start_raw(&self, l: *mut ffi::ev_loop) {
        K::around_start(self, || {
            // SAFETY: the struct is initialised and lives in the Rc (rule 1); `l` is the
            // watcher's loop, alive while the watcher links to it (rule 4).
            unsafe { K::ev_start(l, self.as_raw()) }
        });
        self.after_start(l);
    }

    /// The ref bookkeeping after libev started the watcher (by `ev_TYPE_start` or an
    /// `again`).
    pub(crate) fn after_start(&self, l: *mut ffi::ev_loop) {
        if self.no_ref.get() && !self.unrefd.get() && self.is_active() {
            // SAFETY: `l` is the watcher's loop, alive while linked (rule 4); the
            // matching ev_ref is in `rebalance_ref`.
            unsafe { ffi::ev_unref(l) };
            self.unrefd.set(true);
        }
    }

    /// Starts the watcher again with the callback it already has: no allocation, which
    /// is what a watcher reused for every wait wants. Does nothing if it is active.
    ///
    /// # Errors
    /// [`Error::NoCallback`] if it has none (never started, or [`stop`](WatcherCore::stop)ped);
    /// the type's own checks, as for [`start`](WatcherCore::start).
    pub fn rearm(&self) -> Result<()> {
        if self.is_active() {
            return Ok(());
        }
        if !self.has_callback() {
            return Err(Error::NoCallback(K::NAME));
        }
        let l = self.raw_loop().ok_or(Error::LoopReleased)?;
        K::before_rearm(self)?;
        self.start_raw(l);
        Ok(())
    }

    /// Stops the watcher like [`stop`](WatcherCore::stop) but keeps its callback, for a
    /// later [`rearm`](WatcherCore::rearm).
    pub fn disarm(&self) {
        self.stop_inner(false);
    }

    /// Replaces the callback without starting or stopping the watcher. A callback may
    /// replace itself; the running closure is dropped once it returns.
    pub fn set_callback(&self, cb: impl FnMut(&WatcherCore<K>, Events) + 'static) {
        self.set_cb(Some(Box::new(cb)));
    }

    /// Stops the watcher (`ev_TYPE_stop`) and clears a pending event. The callback is
    /// dropped (as gevent does); `start` takes a new one. Stopping a stopped watcher does
    /// nothing.
    pub fn stop(&self) {
        self.stop_inner(true);
    }

    /// [`stop`](WatcherCore::stop), optionally keeping the callback for a later restart.
    pub(crate) fn stop_inner(&self, drop_cb: bool) {
        if let Some(l) = self.raw_loop() {
            self.rebalance_ref(l);
            // SAFETY: the struct lives in this allocation (rule 1) and `l` is its live
            // loop (rule 4); a watcher that is not pending is left as it is.
            unsafe { ffi::ev_clear_pending(l, self.as_raw().cast()) };
            K::around_stop(self, || {
                // SAFETY: as above (rules 1 and 4); stopping an inactive watcher does
                // nothing.
                unsafe { K::ev_stop(l, self.as_raw()) }
            });
            K::after_stop(self);
        } else if let Some(l) = self.destroying_loop() {
            // A cleanup watcher still queued by ev_loop_destroy (another cleanup callback
            // is stopping or dropping it): take it out of the queue before it is freed.
            // SAFETY: see `destroying_loop`: the loop is being destroyed but is still
            // alive (the exception rule 4 makes for cleanup watchers), and its pending
            // queue lives until every queued watcher was invoked.
            unsafe { ffi::ev_clear_pending(l, self.as_raw().cast()) };
        }
        if drop_cb {
            self.set_cb(None);
        }
        self.undetach();
    }

    /// The loop of a cleanup watcher that `ev_loop_destroy` has queued and not invoked
    /// yet. Its weak link no longer upgrades, but the loop is provably still alive: a
    /// watcher is only pending inside a live loop, and destruction (`LoopInner::destroy`,
    /// then `ev_loop_destroy`) invokes every pending watcher, which un-pends it, before
    /// the last `LoopRc` lets the loop's memory go.
    fn destroying_loop(&self) -> Option<*mut ffi::ev_loop> {
        match &self.lp {
            LoopLink::Weak(_, raw) if self.is_pending() => Some(*raw),
            _ => None,
        }
    }

    /// Gives back the `ev_unref` held for this watcher (libev requires the loop to be
    /// referenced again before a stop).
    fn rebalance_ref(&self, l: *mut ffi::ev_loop) {
        if self.unrefd.replace(false) {
            // SAFETY: `l` is the watcher's loop, alive while linked (rule 4); this gives
            // back the ev_unref of `after_start` or `set_ref`.
            unsafe { ffi::ev_ref(l) };
        }
    }

    fn undetach(&self) {
        if self.detached.replace(false) {
            if let Some(lp) = self.lp.inner() {
                let taken = lp.watchers.take(self as *const Self as *const ());
                // Dropped outside the list's borrow: this may free `self`'s allocation's
                // last external reference, but the caller still holds one.
                drop(taken);
            }
        }
    }

    /// True while started (`ev_is_active`).
    pub fn is_active(&self) -> bool {
        // SAFETY: rule 1: the struct lives in this allocation, and libev writes it
        // only on this thread (rule 7), never during this read.
        unsafe { ffi::ev_is_active(self.as_raw()) != 0 }
    }

    /// True while an event waits for the callback (`ev_is_pending`).
    pub fn is_pending(&self) -> bool {
        // SAFETY: as in `is_active` (rules 1 and 7).
        unsafe { ffi::ev_is_pending(self.as_raw()) != 0 }
    }

    /// True if a callback is set. Inside its own callback this is true until the
    /// callback replaces or clears itself.
    pub fn has_callback(&self) -> bool {
        match self.cb.try_borrow() {
            Ok(c) if c.is_some() => true,
            // The trampoline took the running callback out of the slot; it goes back
            // when it returns, unless it was replaced meanwhile.
            Ok(_) => self.running_epoch.get() == Some(self.cb_epoch.get()),
            Err(_) => true,
        }
    }

    /// The priority, `MINPRI..=MAXPRI` (`ev_priority`).
    pub fn priority(&self) -> i32 {
        // SAFETY: as in `is_active` (rules 1 and 7).
        unsafe { ffi::ev_priority(self.as_raw()) }
    }

    /// Sets the priority: pending watchers with a higher priority run first.
    ///
    /// # Errors
    /// [`Error::PriorityOutOfRange`], or [`Error::WatcherActive`] while started (libev
    /// forbids it, and gevent raises too).
    pub fn set_priority(&self, pri: i32) -> Result<()> {
        if !(MINPRI..=MAXPRI).contains(&pri) {
            return Err(Error::PriorityOutOfRange(pri));
        }
        if self.is_active() || self.is_pending() {
            return Err(Error::WatcherActive("change the priority"));
        }
        // SAFETY: neither active nor pending (checked above), so libev allows the
        // change; the struct lives in this allocation (rule 1).
        unsafe { ffi::ev_set_priority(self.as_raw(), pri) };
        Ok(())
    }

    /// Whether this watcher keeps `Loop::run` from returning (default true). Set to
    /// false for housekeeping watchers; it takes effect whether set before or after
    /// `start`.
    pub fn set_ref(&self, keep_alive: bool) {
        self.no_ref.set(!keep_alive);
        let Some(l) = self.raw_loop() else { return };
        if !keep_alive && !self.unrefd.get() && self.is_active() {
            // SAFETY: `l` is the watcher's loop, alive while linked (rule 4); the
            // matching ev_ref is in `rebalance_ref`.
            unsafe { ffi::ev_unref(l) };
            self.unrefd.set(true);
        } else if keep_alive {
            self.rebalance_ref(l);
        }
    }

    /// See [`set_ref`](WatcherCore::set_ref).
    pub fn is_ref(&self) -> bool {
        !self.no_ref.get()
    }

    /// Makes the watcher pending as if `events` had happened (`ev_feed_event`); the
    /// callback runs in the loop's next invoke phase. The watcher need not be active,
    /// but it needs a callback: one never started gets it from
    /// [`set_callback`](WatcherCore::set_callback), and [`stop`](WatcherCore::stop) drops it.
    pub fn feed(&self, events: Events) {
        if let Some(l) = self.raw_loop() {
            // SAFETY: the struct and its loop `l` are alive (rules 1 and 4); the watcher
            // is now pending, which stop and drop clear again (rules 1 and 2).
            unsafe { ffi::ev_feed_event(l, self.as_raw().cast(), events.bits() as c_int) }
        }
    }

    /// Removes a pending event without running the callback, returning its events
    /// (`ev_clear_pending`).
    pub fn clear_pending(&self) -> Events {
        match self.raw_loop().or_else(|| self.destroying_loop()) {
            Some(l) => {
                // SAFETY: the struct lives in this allocation (rule 1); `l` is its live
                // loop (rule 4) or, for `destroying_loop`, one still being destroyed.
                let bits = unsafe { ffi::ev_clear_pending(l, self.as_raw().cast()) };
                Events::from_bits(bits as u32)
            }
            None => Events::NONE,
        }
    }

    /// Runs after libev itself stopped the watcher (a one-shot timer fired): give back
    /// the unref and let go of a detached watcher.
    fn after_libev_stop(&self, l: *mut ffi::ev_loop) {
        if !self.is_active() {
            self.rebalance_ref(l);
        }
    }
}

/// The watcher whose libev struct is `w`, found through the struct's `data` field
/// (set by [`Watcher::new`] before the struct can be started), with a strong count
/// that keeps it alive for as long as the caller holds the `Rc`: the one way back
/// from a libev pointer to its watcher.
///
/// # Safety
/// `w` must be the libev struct of a live watcher of kind `K`, made by `Watcher::new`.
pub(crate) unsafe fn watcher_of<K: Kind>(w: *mut K::Raw) -> Rc<WatcherCore<K>> {
    // SAFETY: K::Raw begins with the ev_watcher header (EvWatcher's contract); its
    // `data` is the WatcherCore inside an Rc allocation (rule 9), alive by the caller's
    // contract, so one more strong count, owned by the returned Rc, is sound.
    unsafe {
        let p = (*w.cast::<ffi::ev_watcher>()).data as *const WatcherCore<K>;
        Rc::increment_strong_count(p);
        Rc::from_raw(p)
    }
}

/// The one C callback for every watcher of type `K`.
unsafe extern "C" fn trampoline<K: Kind>(l: *mut ffi::ev_loop, w: *mut K::Raw, revents: c_int) {
    // SAFETY: libev calls only active or pending watchers, and those are alive:
    // dropping the last handle stops and un-pends first (rules 1 and 2). The Rc keeps
    // this one alive until the callback has returned (rule 3).
    let this = unsafe { watcher_of::<K>(w) };
    this.after_libev_stop(l);
    // A quiesced loop runs no callback, but cleanup watchers still fire as it is
    // destroyed: they are how a program hooks that moment.
    // SAFETY: libev calls back only from inside a live loop, whose userdata is its
    // LoopInner (rule 8).
    let quiesced = !K::WEAK_LOOP && unsafe { LoopInner::from_raw(l) }.quiesced.get();
    let taken = if quiesced {
        None
    } else {
        this.cb.borrow_mut().take()
    };
    if let Some(mut cb) = taken {
        let epoch = this.cb_epoch.get();
        // Restored afterwards: a nested run may call this watcher's replacement callback.
        let outer = this.running_epoch.replace(Some(epoch));
        let r = catch_unwind(AssertUnwindSafe(|| {
            cb(&this, Events::from_bits(revents as u32))
        }));
        this.running_epoch.set(outer);
        if this.cb_epoch.get() == epoch {
            // Not replaced or cleared while running: put it back.
            *this.cb.borrow_mut() = Some(cb);
        } else {
            drop(cb);
        }
        if let Err(p) = r {
            if K::STOP_ON_PANIC {
                this.stop();
            }
            // SAFETY: as above (rule 8); for a cleanup watcher, userdata stays valid until
            // ev_loop_destroy returns.
            unsafe { LoopInner::from_raw(l) }.handle_panic(p);
        }
    }
    // A detached watcher that is no longer active or pending is released.
    if this.detached.get() && !this.is_active() && !this.is_pending() {
        this.stop();
    }
}

macro_rules! kind {
    (
        $(#[$m:meta])* $kind:ident: $raw:ident, $name:literal, $start:ident / $stop:ident,
        extra = $extra:ty $(, $flag:ident = $val:expr)* ;
        { $($items:item)* }
    ) => {
        $(#[$m])*
        #[derive(Debug)]
        pub enum $kind {}
        impl $crate::watcher::sealed::Sealed for $kind {}
        impl $crate::watcher::Kind for $kind {
            type Raw = libev_sys::$raw;
            type Extra = $extra;
            const NAME: &'static str = $name;
            $(const $flag: bool = $val;)*
            unsafe fn ev_start(l: *mut libev_sys::ev_loop, w: *mut Self::Raw) {
                // SAFETY: the generic machinery passes the watcher's live loop (rule 4)
                // and its initialised struct (rule 1).
                unsafe { libev_sys::$start(l, w) }
            }
            unsafe fn ev_stop(l: *mut libev_sys::ev_loop, w: *mut Self::Raw) {
                // SAFETY: as for $start (rules 1 and 4).
                unsafe { libev_sys::$stop(l, w) }
            }
            $($items)*
        }
    };
}
pub(crate) use kind;
