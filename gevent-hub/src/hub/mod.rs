//! The hub: one per thread, the greenlet that runs the event loop.
//!
//! As the gevent talk describes it, blocking is "arm a watcher whose callback switches
//! back to me, then switch to the hub":
//!
//! ```text
//!  greenlet G                 hub greenlet (inside ev_run)              libev
//!  sleep(1s):
//!    arm timer(cb = wake G)
//!    park ─────switch──────►  ev_run polls ... timer expires ─────────  timer cb
//!                             cb: wake(G) ─switch─┐
//!    ◄────────────────────────────────────────────┘
//!    returns from sleep       (the hub stays suspended inside the callback
//!                              until some greenlet parks again)
//! ```
//!
//! `spawn` queues the new greenlet's first switch with `loop.run_callback`; those
//! callbacks are drained by gevent-core's prepare watcher, just before the loop would
//! block, and the drain is time-bounded so ready greenlets cannot starve I/O.
//!
//! A wake-up from another greenlet (say `Event::set`) cannot switch directly (the
//! setter would be suspended with nobody to resume it), so it is queued with
//! `run_callback` too. Every wait carries a sequence number: a wake-up that arrives
//! after its wait ended (a late timer, an event set twice) finds the number changed
//! and does nothing. A parked greenlet resumed by anything but its wake-ups, its
//! timeout or a kill (a raw `switch` into it) gets [`Error::InvalidSwitch`].
//!
//! When the loop runs out of work while greenlets still wait, `run` returns; the hub
//! then wakes the main greenlet with "this operation would block forever" (gevent's
//! `LoopExit`) instead of sleeping forever.
//!
//! The layer's parts: this module (the hub, its thread-exit teardown, kills),
//! [`record`] (what the hub knows of each greenlet), [`wait`] (the wait vocabulary),
//! [`remote`] (other threads' handles), and [`monitor`] (the blocking monitor each hub
//! may own, gevent's `monitor_thread`).
//!
//! ## Waiting for many things
//! A [`Waker`] is either a greenlet's (it resumes that greenlet's current wait) or a
//! *sink*'s: it records which object became ready in a list owned by whoever waits
//! for many objects at once (`joinall`, `wait`, `iwait`), and resumes whoever waits on
//! the sink right now. Each object is subscribed to once for the whole wait, and each
//! notification costs O(1), however many hub turns the wait spans.
//!
//! ## Thread exit
//! When a thread that has a hub ends, its hub is torn down from the greenlet layer's
//! exit hook, before anything of the greenlet machinery goes, in this order: the hub
//! stops scheduling (wake-ups, links and spawns are dropped, and a wait started now
//! fails with [`Error::ThreadExiting`]); every greenlet spawned on it that has not
//! finished is ended — an unstarted one drops its body unrun, a started one gets
//! [`GreenletExit`](crate::GreenletExit) raised where it is suspended, so its
//! destructors run and release its sockets and timers; the loop is quiesced (no
//! queued callback and no watcher callback runs any more) and the hub greenlet is
//! resumed once, so that its `ev_run` frames return; then the hub and its loop are
//! dropped, which closes the loop's file descriptors. Nothing queued runs during the
//! thread's teardown.

pub mod monitor;
pub(crate) mod record;
pub(crate) mod remote;
pub(crate) mod runinfo;
pub(crate) mod wait;

pub use remote::{HubHandle, RemoteWaker};
pub(crate) use wait::{
    deadline_after, park_in_line, wait_notified, wait_until, yield_now, SinkOwner, WaitList,
    WaiterQueue,
};
pub use wait::{Wait, Waitable, Waker};

use crate::error::{Error, Result};
use crate::greenlet::{
    self, current_rc, switch_msg, GreenletExit, GreenletState, Msg, PanicPayload,
};
use gevent_core::{Loop, Timer};
use record::record_of;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::mem::ManuallyDrop;
use std::rc::{Rc, Weak};
use std::time::Duration;

/// Why the hub switches into a greenlet, or what a greenlet tells the hub: carried by
/// the greenlet core's `Msg::Signal`, which passes it through without knowing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Wake {
    /// A greenlet parking: "run the loop" (the hub ignores it).
    Parked = 0,
    /// A waker of its wait fired.
    Woken = 1,
    /// Its wait's timeout fired.
    TimedOut = 2,
    /// The loop ran out of work while it waited (gevent's `LoopExit`).
    LoopExit = 3,
    /// A spawned greenlet's first switch.
    Start = 4,
}

impl Wake {
    pub(crate) fn msg(self) -> Msg {
        Msg::Signal(self as u8)
    }

    /// The wake-up a `Msg::Signal` code stands for, if it is one of ours.
    #[inline]
    pub(crate) fn from_code(code: u8) -> Option<Wake> {
        match code {
            0 => Some(Wake::Parked),
            1 => Some(Wake::Woken),
            2 => Some(Wake::TimedOut),
            3 => Some(Wake::LoopExit),
            4 => Some(Wake::Start),
            _ => None,
        }
    }
}

/// Something the hub must end when its thread exits: a greenlet spawned on it.
pub(crate) trait Member {
    /// Ends it: drops an unstarted body, unwinds a started greenlet.
    fn end_at_exit(&self);
    /// What it is doing, for [`run_info`](crate::run_info).
    fn run_info(&self) -> runinfo::GreenletRunInfo;
}

/// The hub's unfinished greenlets, for thread exit: a slab, O(1) in and out.
#[derive(Default)]
struct Members {
    slots: Vec<Option<Weak<dyn Member>>>,
    free: Vec<usize>,
}

impl Members {
    fn insert(&mut self, m: Weak<dyn Member>) -> usize {
        match self.free.pop() {
            Some(i) => {
                self.slots[i] = Some(m);
                i
            }
            None => {
                self.slots.push(Some(m));
                self.slots.len() - 1
            }
        }
    }

    fn remove(&mut self, i: usize) {
        if let Some(slot) = self.slots.get_mut(i) {
            if slot.take().is_some() {
                self.free.push(i);
            }
        }
    }
}

/// The per-thread hub.
pub struct Hub {
    lp: Loop,
    raw: Rc<GreenletState>,
    inbox: remote::Inbox,
    /// Set once its thread has begun to end: nothing is scheduled any more.
    exiting: Cell<bool>,
    members: RefCell<Members>,
    /// Wake-ups made outside the hub, waiting for it to resume their greenlets, in
    /// order: drained in batches by one queued callback instead of one callback (and
    /// one allocation) per wake-up.
    ready: RefCell<VecDeque<Wakeup>>,
    /// A drain of `ready` is queued.
    drain_queued: Cell<bool>,
    /// The blocking monitor `GEVENT_MONITOR_THREAD_ENABLE` asked for, for the hub's
    /// lifetime (last: dropped after the hub greenlet has left its loop).
    _monitor: Option<monitor::BlockingMonitor>,
}

impl fmt::Debug for Hub {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hub").field("loop", &self.lp).finish()
    }
}

thread_local! {
    // No destructor: the hub is torn down by its exit hook (see "Thread exit").
    static HUB: ManuallyDrop<RefCell<Option<Rc<Hub>>>> =
        const { ManuallyDrop::new(RefCell::new(None)) };
    /// The hub HUB holds, for the switch path (no reference-count traffic); null until
    /// it exists and once it is gone.
    static HUB_PTR: Cell<*const Hub> = const { Cell::new(std::ptr::null()) };
    /// Set while the hub is torn down: the hub greenlet must leave its loop for good.
    static SHUTTING_DOWN: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` with this thread's hub, if it has one, without cloning its handle: the
/// wait/wake path calls this several times per switch.
pub(crate) fn hub_if_any<R>(f: impl FnOnce(&Hub) -> R) -> Option<R> {
    let p = HUB_PTR.with(Cell::get);
    if p.is_null() {
        return None;
    }
    // SAFETY: HUB holds an Rc to this hub for as long as HUB_PTR is non-null: the
    // teardown clears HUB_PTR before it lets go of HUB's Rc; `f` cannot drop HUB.
    Some(f(unsafe { &*p }))
}

/// The hub of this thread, created on first use with a new event loop.
///
/// # Panics
/// If libev cannot create a loop (e.g. out of file descriptors) on first use, or the
/// thread is ending (its hub was torn down).
pub fn get_hub() -> Rc<Hub> {
    try_get_hub().unwrap_or_else(|e| panic!("gevent: cannot get this thread's hub: {e}"))
}

/// [`get_hub`] without the panic.
///
/// # Errors
/// The loop could not be created; [`Error::ThreadExiting`] once the thread has begun
/// to end without a hub.
pub fn try_get_hub() -> Result<Rc<Hub>> {
    if let Some(h) = HUB.with(|h| h.borrow().clone()) {
        return Ok(h);
    }
    if greenlet::thread_exiting() {
        return Err(Error::ThreadExiting);
    }
    let hub = Rc::new(Hub::new(Loop::new()?)?);
    if !greenlet::at_thread_exit(teardown) {
        return Err(Error::ThreadExiting);
    }
    HUB.with(|h| *h.borrow_mut() = Some(hub.clone()));
    HUB_PTR.with(|p| p.set(Rc::as_ptr(&hub)));
    Ok(hub)
}

/// Refuses, with [`Error::BlockingInHub`] naming `what`, a call that would have to
/// wait for work it is about to hand over, when made in the hub: checked before the
/// work is handed over, since its result could then never be waited for.
pub(crate) fn refuse_in_hub(what: &'static str) -> Result<()> {
    if try_get_hub()?.is_current() {
        return Err(Error::BlockingInHub(what));
    }
    Ok(())
}

/// The hub greenlet's body: run the loop; when it runs out of work, tell the main
/// greenlet. Ends when the hub is torn down (its thread is exiting).
fn hub_body(_: greenlet::Value) {
    loop {
        if SHUTTING_DOWN.with(Cell::get) {
            return;
        }
        let Some(lp) = hub_if_any(|h| h.lp.clone()) else {
            return;
        };
        if let Err(e) = lp.run() {
            log::error!("the hub's loop failed: {e}");
        }
        drop(lp);
        if SHUTTING_DOWN.with(Cell::get) {
            return;
        }
        // Out of work: whoever waits in the main greenlet would wait forever.
        let main = greenlet::main_rc();
        let _ = switch_msg(&main, Wake::LoopExit.msg());
    }
}

/// The hub's part of thread exit (see "Thread exit" in the module docs). Runs on the
/// main greenlet, from the greenlet layer's exit hook.
fn teardown() {
    let Some(hub) = HUB.with(|h| h.borrow().clone()) else {
        return;
    };
    hub.exiting.set(true);
    // End every greenlet that has not finished, each once (no new one can be spawned
    // now). Ending one may end others (its destructors may kill them): those are
    // skipped when their turn comes.
    let members = {
        let mut m = hub.members.borrow_mut();
        m.free.clear();
        std::mem::take(&mut m.slots)
    };
    for member in members.into_iter().flatten() {
        if let Some(member) = member.upgrade() {
            member.end_at_exit();
        }
    }
    // No callback runs any more; let the hub greenlet's frames inside ev_run return.
    hub.lp.quiesce();
    if hub.raw.is_started() && !hub.raw.is_dead() {
        SHUTTING_DOWN.with(|s| s.set(true));
        *hub.raw.parent_mut() = Some(current_rc());
        let _ = switch_msg(&hub.raw, Wake::Woken.msg());
        SHUTTING_DOWN.with(|s| s.set(false));
    }
    HUB_PTR.with(|p| p.set(std::ptr::null()));
    let held = HUB.with(|h| h.borrow_mut().take());
    drop(held);
    drop(hub);
}

impl Hub {
    fn new(lp: Loop) -> Result<Hub> {
        let main = greenlet::main_rc();
        let raw = greenlet::new_inner(
            Box::new(|v| {
                hub_body(v);
                Box::new(())
            }),
            Some(main),
            crate::greenlet::stack::DEFAULT_STACK_SIZE,
            Some("Hub".to_owned()),
        );
        raw.managed.set(true);
        // Panics of raw watcher callbacks on the hub are reported, and the hub goes on
        // (gevent's handle_error); greenlets catch their own panics.
        let limit = crate::diag::RateLimit::new(10);
        lp.set_error_handler(move |p| {
            crate::diag::error_limited!(
                limit,
                "a callback on the hub panicked: {}",
                greenlet::panic_message(&*p)
            );
        });
        let inbox = remote::Inbox::new(&lp)?;
        let monitor = monitor::from_env_on(&lp);
        Ok(Hub {
            lp,
            raw,
            inbox,
            exiting: Cell::new(false),
            members: RefCell::new(Members::default()),
            ready: RefCell::new(VecDeque::new()),
            drain_queued: Cell::new(false),
            _monitor: monitor,
        })
    }

    /// The hub's event loop: watchers made from it are driven while greenlets block.
    pub fn get_loop(&self) -> &Loop {
        &self.lp
    }

    /// A `Send + Sync` handle other threads can use to run code in this hub.
    pub fn handle(&self) -> HubHandle {
        self.inbox.handle()
    }

    pub(crate) fn inbox(&self) -> &remote::Inbox {
        &self.inbox
    }

    pub(crate) fn is_current(&self) -> bool {
        std::ptr::eq(greenlet::current_ptr(), Rc::as_ptr(&self.raw))
    }

    /// True once the hub's thread has begun to end: nothing is scheduled any more.
    pub(crate) fn is_exiting(&self) -> bool {
        self.exiting.get()
    }

    /// A one-shot timer for `d` from *now*. libev counts timers from the time of the
    /// last poll; after a greenlet ran for a while without switching that is in the
    /// past, and a timeout would fire early by as much. (gevent updates the time too.)
    pub(crate) fn timer_from_now(&self, d: Duration) -> Timer {
        self.lp.update_now();
        self.lp.timer(d, Duration::ZERO)
    }

    pub(crate) fn raw_greenlet(&self) -> Rc<GreenletState> {
        self.raw.clone()
    }

    /// Queues a wake-up for the hub to deliver at its next callback phase (the first
    /// one queues the drain).
    pub(crate) fn queue_wakeup(&self, rec: Rc<record::Record>, seq: u64, why: Wake) {
        self.ready.borrow_mut().push_back((rec, seq, why));
        if !self.drain_queued.replace(true) {
            self.lp.run_callback_fn(drain_ready);
        }
    }

    /// Records a greenlet to end at thread exit; returns its slot for [`Hub::forget`].
    pub(crate) fn enroll(&self, m: Weak<dyn Member>) -> usize {
        self.members.borrow_mut().insert(m)
    }

    /// The greenlet in `slot` has finished (or is gone).
    /// Its unfinished greenlets, in the order they were spawned (slots reused).
    pub(crate) fn members(&self) -> Vec<Rc<dyn Member>> {
        self.members
            .borrow()
            .slots
            .iter()
            .flatten()
            .filter_map(Weak::upgrade)
            .collect()
    }

    pub(crate) fn forget(&self, slot: usize) {
        self.members.borrow_mut().remove(slot);
    }
}

/// A wake-up waiting in the hub's ready queue: whose, for which wait, and why.
type Wakeup = (Rc<record::Record>, u64, Wake);

/// The queued callback that delivers the ready queue's wake-ups, in order. The
/// greenlets it resumes queue more (each `sleep(0)` does): while nothing else waits in
/// the loop's callback queue, it delivers those too, up to [`DRAIN_ROUND`] wake-ups,
/// instead of queueing a drain per batch; otherwise it queues itself behind what is
/// there, so that other callbacks, the loop's callback budget and its I/O still get
/// their turn. While it runs, wake-ups queue no drain of their own.
fn drain_ready() {
    /// A panic in the hub's own frames here must not leave `drain_queued` set with no
    /// drain queued: every later wake-up would wait for it forever.
    struct ClearOnPanic;
    impl Drop for ClearOnPanic {
        fn drop(&mut self) {
            if std::thread::panicking() {
                hub_if_any(|h| h.drain_queued.set(false));
            }
        }
    }
    let _clear = ClearOnPanic;
    let mut delivered = 0;
    loop {
        let Some(batch) = hub_if_any(|h| h.ready.borrow().len()) else {
            return;
        };
        for _ in 0..batch {
            let next = hub_if_any(|h| {
                let item = h.ready.borrow_mut().pop_front();
                item.map(|it| (it, h.is_current() && !h.is_exiting()))
            });
            let Some(Some(((rec, seq, why), in_hub))) = next else {
                break;
            };
            wait::resume_queued(&rec, seq, why, in_hub);
        }
        delivered += batch;
        let go_on = hub_if_any(|h| {
            if h.is_exiting() || h.ready.borrow().is_empty() {
                h.drain_queued.set(false);
                return false;
            }
            if delivered >= DRAIN_ROUND || h.lp.pending_callbacks() > 0 {
                // `drain_queued` stays set: this is the drain.
                h.lp.run_callback_fn(drain_ready);
                return false;
            }
            true
        });
        if go_on != Some(true) {
            return;
        }
    }
}

/// The most wake-ups one [`drain_ready`] delivers before it gives the loop its turn.
const DRAIN_ROUND: usize = 64;

/// Raises `payload` in greenlet `g` at its blocking point (kill, timeout). If it is not
/// parked in the hub right now, the payload waits for its next blocking call. The
/// running greenlet is not interrupted on the spot: as in gevent, its kill is scheduled
/// and lands at its next blocking point (after what is already queued). `now`: the
/// caller is a callback of this crate's own (a [`Timeout`](crate::Timeout)'s timer),
/// so the hub may switch into `g` at once (see [`Waker::wake_now`]); otherwise the
/// throw is delivered from a callback of its own, as gevent's `kill` is.
pub(crate) fn throw_into(g: &Rc<GreenletState>, payload: PanicPayload, now: bool) {
    if g.is_dead() {
        return;
    }
    let rec = record_of(g);
    let Some((in_hub, exiting)) = hub_if_any(|h| (h.is_current(), h.exiting.get())) else {
        rec.pending_throw.set(Some(payload));
        return;
    };
    if exiting {
        // The thread's teardown ends every greenlet itself.
        rec.pending_throw.set(Some(payload));
        return;
    }
    let is_current = std::ptr::eq(greenlet::current_ptr(), Rc::as_ptr(g));
    if rec.parked.get() && in_hub && now {
        let _ = switch_msg(g, Msg::Throw(payload));
    } else if rec.parked.get() || is_current {
        let g2 = g.clone();
        let cell = Cell::new(Some(payload));
        hub_if_any(|hub| {
            hub.lp.run_callback(move || {
                if let Some(p) = cell.take() {
                    throw_into(&g2, p, true);
                }
            })
        });
    } else {
        rec.pending_throw.set(Some(payload));
    }
}

/// Takes back a throw meant for `g`'s next blocking point that `is_mine` recognises
/// (a cancelled [`Timeout`](crate::Timeout)'s expiry).
pub(crate) fn cancel_pending_throw(g: &Rc<GreenletState>, is_mine: impl Fn(&PanicPayload) -> bool) {
    let rec = record_of(g);
    let deferred = rec.throw_deferred.get();
    if let Some(p) = rec.take_throw() {
        if !is_mine(&p) {
            rec.pending_throw.set(Some(p));
            rec.throw_deferred.set(deferred);
        }
    }
}

/// Takes the running greenlet's deferred throw (one that arrived where it could not
/// unwind; see [`Wait::park_or_defer`]) if `is_mine` recognises it.
pub(crate) fn take_deferred_throw(is_mine: impl Fn(&PanicPayload) -> bool) -> Option<PanicPayload> {
    record::current_record().take_deferred_if(is_mine)
}

/// Where `g` was spawned, if the hub spawned it (diagnostics).
pub(crate) fn set_spawned_at(g: &Rc<GreenletState>, at: &'static std::panic::Location<'static>) {
    record_of(g).spawned_at.set(Some(at));
}

/// Ends a greenlet of this hub at thread exit: raises [`GreenletExit`] where it is
/// suspended and returns once it has finished (or switched back here).
pub(crate) fn end_greenlet_at_exit(g: &Rc<GreenletState>) {
    if !g.is_started() || g.is_dead() || std::ptr::eq(greenlet::current_ptr(), Rc::as_ptr(g)) {
        return;
    }
    record_of(g).take_throw();
    // When it finishes it comes back here, not to the hub greenlet (which is suspended
    // inside the loop and must stay so until the loop is quiesced).
    *g.parent_mut() = Some(current_rc());
    let _ = switch_msg(g, Msg::Throw(Box::new(GreenletExit)));
}
