//! The queue behind [`Loop::run_callback`](crate::Loop::run_callback), which the hub
//! is built on, and the two internal watchers that drain it.
//!
//! As in gevent, queued callbacks are run by an internal *prepare* watcher, that is,
//! just before the loop would block in `epoll_wait`. They run in FIFO order, including
//! callbacks queued while the queue is being drained, until the queue is empty or the
//! drain's time budget (5 ms by default) is spent. If work is left over, a zero-delay
//! timer makes the next poll return at once, so queued callbacks neither starve I/O nor
//! let the loop sleep while they wait. While anything is queued the queue holds a
//! reference on the loop (`ev_ref`), so `run` does not return before it is drained.
//!
//! The queue lives in the loop's state; the loop supplies the prepare watcher's C
//! callback, which calls [`CallbackQueue::drain`] with the loop's panic routing.

use crate::error::PanicPayload;
use crate::sys::{zeroed, EvRef};
use libev_sys as ffi;
use std::cell::{Cell, RefCell, UnsafeCell};
use std::collections::VecDeque;
use std::ffi::c_int;
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::time::{Duration, Instant};

/// A queued [`Loop::run_callback`](crate::Loop::run_callback) entry: the closure lives
/// in the same allocation as the slot (one allocation per callback).
trait Queued {
    /// Runs the closure if it is still there; `None` if it was cancelled.
    fn run(&self) -> Option<std::thread::Result<()>>;
    /// Drops the closure unrun; returns whether it was there.
    fn cancel(&self) -> bool;
    fn is_pending(&self) -> bool;
}

struct Slot<F> {
    f: Cell<Option<F>>,
    pending: Cell<bool>,
}

impl<F: FnOnce()> Queued for Slot<F> {
    fn run(&self) -> Option<std::thread::Result<()>> {
        let f = self.f.take()?;
        self.pending.set(false);
        Some(catch_unwind(AssertUnwindSafe(f)))
    }
    fn cancel(&self) -> bool {
        let f = self.f.take();
        self.pending.set(false);
        // Dropped after the slot is updated: the closure's destructor may look at the
        // callback's handle.
        f.is_some()
    }
    fn is_pending(&self) -> bool {
        self.pending.get()
    }
}

/// Handle to a callback queued with [`Loop::run_callback`](crate::Loop::run_callback).
/// Dropping it does not cancel the callback.
pub struct Callback {
    slot: Rc<dyn Queued>,
}

impl Callback {
    fn new<F: FnOnce() + 'static>(f: F) -> Callback {
        Callback {
            slot: Rc::new(Slot {
                f: Cell::new(Some(f)),
                pending: Cell::new(true),
            }),
        }
    }

    /// A handle to `f` dropped unrun, for a loop that runs nothing any more.
    pub(crate) fn discarded<F: FnOnce() + 'static>(f: F) -> Callback {
        let cb = Callback::new(f);
        cb.slot.cancel();
        cb
    }

    /// Cancels the callback if it has not run yet. Returns whether it was pending.
    pub fn cancel(&self) -> bool {
        self.slot.cancel()
    }
    /// True until the callback has run or was cancelled.
    pub fn pending(&self) -> bool {
        self.slot.is_pending()
    }
}

impl fmt::Debug for Callback {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Callback")
            .field("pending", &self.pending())
            .finish()
    }
}

/// One queued callback: a closure in its own allocation (with a handle that can
/// cancel it), or a plain function, queued without allocating.
enum Entry {
    Closure(Rc<dyn Queued>),
    Fn(fn()),
}

/// The C callback of the queue's prepare watcher; it must call [`CallbackQueue::drain`].
pub(crate) type PrepareCb = unsafe extern "C" fn(*mut ffi::ev_loop, *mut ffi::ev_prepare, c_int);

/// A loop's callback queue and its internal watchers.
pub(crate) struct CallbackQueue {
    raw: *mut ffi::ev_loop,
    queue: RefCell<VecDeque<Entry>>,
    /// Held while anything is queued: the queue keeps the loop alive until drained.
    hold: RefCell<Option<EvRef>>,
    budget: Cell<Duration>,
    /// Drains the queue before the loop blocks.
    prepare: UnsafeCell<ffi::ev_prepare>,
    /// Started while work is left over after a drain: the next poll must not block.
    timer0: UnsafeCell<ffi::ev_timer>,
}

impl CallbackQueue {
    /// The queue of loop `raw`; its watchers are set up by [`start`](Self::start) once
    /// the queue has its final address.
    pub(crate) fn new(raw: *mut ffi::ev_loop) -> CallbackQueue {
        CallbackQueue {
            raw,
            queue: RefCell::new(VecDeque::new()),
            hold: RefCell::new(None),
            budget: Cell::new(Duration::from_millis(5)),
            prepare: UnsafeCell::new(zeroed()),
            timer0: UnsafeCell::new(zeroed()),
        }
    }

    /// Initialises both watchers and starts the prepare watcher, with `on_prepare` as
    /// its callback. The internal watchers never keep the loop alive on their own.
    ///
    /// # Safety
    /// The queue must not move again and must stay alive until [`stop`](Self::stop);
    /// the loop must be alive and used on this thread.
    pub(crate) unsafe fn start(&self, on_prepare: PrepareCb) {
        // SAFETY: the caller's contract: the loop is alive, and both structs stay where
        // they are while libev holds them (the queue's own form of rule 1).
        unsafe {
            let p = self.prepare.get();
            ffi::ev_prepare_init(p, Some(on_prepare));
            ffi::ev_set_priority(p, ffi::EV_MAXPRI);
            ffi::ev_prepare_start(self.raw, p);
            ffi::ev_unref(self.raw);
            ffi::ev_timer_init(self.timer0.get(), Some(timer0_cb), 0.0, 0.0);
            ffi::ev_set_priority(self.timer0.get(), ffi::EV_MAXPRI);
        }
    }

    /// Stops both watchers, before the loop is destroyed.
    ///
    /// # Safety
    /// The loop must be alive and used on this thread; [`start`](Self::start) ran.
    pub(crate) unsafe fn stop(&self) {
        // Already released when the last `Loop` handle discarded the queue (nothing can
        // queue without one); let go of it here anyway, so it cannot outlive the loop.
        drop(self.hold.take());
        // SAFETY: the caller's contract: a live loop on its own thread.
        unsafe {
            // The prepare watcher was unref'd after its start; give the reference back
            // before stopping it, or libev's active count drifts below zero (which
            // matters for the default loop, whose struct is static and reused).
            ffi::ev_ref(self.raw);
            ffi::ev_prepare_stop(self.raw, self.prepare.get());
            ffi::ev_timer_stop(self.raw, self.timer0.get());
        }
    }

    /// Queues `f`; the queue keeps the loop alive until it is drained.
    pub(crate) fn push<F: FnOnce() + 'static>(&self, f: F) -> Callback {
        let cb = Callback::new(f);
        self.push_entry(Entry::Closure(cb.slot.clone()));
        cb
    }

    /// Queues the plain function `f` (no allocation, no handle).
    pub(crate) fn push_fn(&self, f: fn()) {
        self.push_entry(Entry::Fn(f));
    }

    fn push_entry(&self, e: Entry) {
        self.queue.borrow_mut().push_back(e);
        let mut hold = self.hold.borrow_mut();
        if hold.is_none() {
            // SAFETY: the queue lives in the loop's state, so the loop is alive (rule 4);
            // the guard is dropped when the queue is drained or discarded, and at the
            // latest by `stop`, before the loop is destroyed.
            *hold = Some(unsafe { EvRef::new(self.raw) });
        }
    }

    /// Entries queued (cancelled ones count until the next drain removes them).
    pub(crate) fn len(&self) -> usize {
        self.queue.borrow().len()
    }

    /// True while something is queued (and the queue holds its reference on the loop).
    pub(crate) fn has_queued(&self) -> bool {
        self.hold.borrow().is_some()
    }

    pub(crate) fn set_budget(&self, d: Duration) {
        self.budget.set(d);
    }

    /// Drops every queued callback unrun (and the queue's reference on the loop).
    pub(crate) fn discard(&self) {
        let queued = std::mem::take(&mut *self.queue.borrow_mut());
        for e in queued {
            if let Entry::Closure(cb) = e {
                cb.cancel();
            }
        }
        // SAFETY: the queue lives in the loop's state, so the loop is alive (rule 4);
        // timer0 lives inside self.
        unsafe { ffi::ev_timer_stop(self.raw, self.timer0.get()) };
        drop(self.hold.take());
    }

    /// Runs queued callbacks until the queue is empty or the budget is spent; a
    /// callback's panic goes to `on_panic`, and the drain goes on.
    pub(crate) fn drain(&self, on_panic: impl Fn(PanicPayload)) {
        // No deadline for a budget beyond what an Instant can hold (Duration::MAX).
        let deadline = Instant::now().checked_add(self.budget.get());
        let mut ran = 0u32;
        loop {
            let next = self.queue.borrow_mut().pop_front();
            let Some(e) = next else { break };
            let r = match e {
                Entry::Closure(cb) => cb.run(),
                Entry::Fn(f) => Some(catch_unwind(f)),
            };
            if let Some(r) = r {
                if let Err(p) = r {
                    on_panic(p);
                }
                ran += 1;
                // Checking the clock every few callbacks keeps the common case cheap.
                if ran % 16 == 0 && deadline.is_some_and(|d| Instant::now() >= d) {
                    break;
                }
            }
        }
        let left = !self.queue.borrow().is_empty();
        if left {
            // More work queued: do not let the coming poll block.
            // SAFETY: as in `discard` (rule 4).
            unsafe { ffi::ev_timer_start(self.raw, self.timer0.get()) };
        } else {
            // SAFETY: as in `discard` (rule 4).
            unsafe { ffi::ev_timer_stop(self.raw, self.timer0.get()) };
            drop(self.hold.take());
        }
    }
}

unsafe extern "C" fn timer0_cb(_l: *mut ffi::ev_loop, _w: *mut ffi::ev_timer, _revents: c_int) {
    // Nothing to do: its only job was to make the poll return at once.
}
