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

use crate::error::{Error, Result};
use crate::greenlet::{self, current_rc, switch_msg, GInner, GreenletExit, Msg, PanicPayload};
use gevent_core::{Async, AsyncSender, Loop, Timer};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::fmt;
use std::mem::ManuallyDrop;
use std::panic::resume_unwind;
use std::rc::{Rc, Weak};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Wake-up codes carried by `Msg::Hub`.
pub(crate) const WAKE: usize = 1;
pub(crate) const WAKE_TIMEOUT: usize = 2;
pub(crate) const WAKE_LOOP_EXIT: usize = 3;
pub(crate) const WAKE_START: usize = 4;
/// What a parking greenlet sends the hub (the hub ignores it).
const PARKED: usize = 0;

/// What other threads can send to a hub.
enum RemoteOp {
    Wake(u64),
    Call(Box<dyn FnOnce() + Send>),
}

struct Remote {
    queue: Mutex<Vec<RemoteOp>>,
    sender: AsyncSender,
}

/// Something the hub must end when its thread exits: a greenlet spawned on it.
pub(crate) trait Member {
    /// Ends it: drops an unstarted body, unwinds a started greenlet.
    fn end_at_exit(&self);
}

/// The hub's unfinished greenlets, for thread exit: a slab, O(1) in and out.
#[derive(Default)]
struct Members {
    slots: Vec<Option<Weak<dyn Member>>>,
    free: Vec<usize>,
}

/// The per-thread hub.
pub struct Hub {
    lp: Loop,
    raw: Rc<GInner>,
    remote: Arc<Remote>,
    /// Async watcher that drains `remote`; unreferenced (see `RemoteWaker`).
    _async: Async,
    /// Local wakers registered for remote wake-ups, by id.
    remote_waiters: RefCell<HashMap<u64, Waker>>,
    next_remote: Cell<u64>,
    /// Set once its thread has begun to end: nothing is scheduled any more.
    exiting: Cell<bool>,
    members: RefCell<Members>,
    /// The blocking monitor `GEVENT_MONITOR_THREAD_ENABLE` asked for, for the hub's
    /// lifetime (last: dropped after the hub greenlet has left its loop).
    _monitor: Option<crate::monitor::BlockingMonitor>,
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
            eprintln!("gevent: the hub's loop failed: {e}");
        }
        drop(lp);
        if SHUTTING_DOWN.with(Cell::get) {
            return;
        }
        // Out of work: whoever waits in the main greenlet would wait forever.
        let main = greenlet::main_rc();
        let _ = switch_msg(&main, Msg::Hub(WAKE_LOOP_EXIT));
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
        let _ = switch_msg(&hub.raw, Msg::Hub(WAKE));
        SHUTTING_DOWN.with(|s| s.set(false));
    }
    HUB_PTR.with(|p| p.set(std::ptr::null()));
    let held = HUB.with(|h| h.borrow_mut().take());
    drop(held);
    drop(hub);
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

impl Hub {
    fn new(lp: Loop) -> Result<Hub> {
        let main = greenlet::main_rc();
        let raw = greenlet::new_inner(
            Box::new(|v| {
                hub_body(v);
                Box::new(())
            }),
            Some(main),
            crate::stack::DEFAULT_STACK_SIZE,
            Some("Hub".to_owned()),
        );
        raw.managed.set(true);
        // Panics of raw watcher callbacks on the hub are reported, and the hub goes on
        // (gevent's handle_error); greenlets catch their own panics.
        lp.set_error_handler(|p| {
            eprintln!(
                "gevent: a callback on the hub panicked: {}",
                greenlet::panic_message(&*p)
            );
        });
        let a = lp.async_();
        let remote = Arc::new(Remote {
            queue: Mutex::new(Vec::new()),
            sender: a.sender(),
        });
        let r2 = remote.clone();
        a.start(move |_, _| drain_remote(&r2))?;
        a.set_ref(false);
        let monitor = crate::monitor::from_env_on(&lp);
        Ok(Hub {
            lp,
            raw,
            remote,
            _async: a,
            remote_waiters: RefCell::new(HashMap::new()),
            next_remote: Cell::new(1),
            exiting: Cell::new(false),
            members: RefCell::new(Members::default()),
            _monitor: monitor,
        })
    }

    /// The hub's event loop: watchers made from it are driven while greenlets block.
    pub fn get_loop(&self) -> &Loop {
        &self.lp
    }

    /// A `Send + Sync` handle other threads can use to run code in this hub.
    pub fn handle(&self) -> HubHandle {
        HubHandle {
            remote: self.remote.clone(),
        }
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

    pub(crate) fn raw_greenlet(&self) -> Rc<GInner> {
        self.raw.clone()
    }

    /// Records a greenlet to end at thread exit; returns its slot for [`Hub::forget`].
    pub(crate) fn enroll(&self, m: Weak<dyn Member>) -> usize {
        self.members.borrow_mut().insert(m)
    }

    /// The greenlet in `slot` has finished (or is gone).
    pub(crate) fn forget(&self, slot: usize) {
        self.members.borrow_mut().remove(slot);
    }
}

fn drain_remote(remote: &Remote) {
    let ops = std::mem::take(&mut *remote.queue.lock().unwrap_or_else(|e| e.into_inner()));
    for op in ops {
        match op {
            RemoteOp::Wake(id) => {
                let w = hub_if_any(|h| h.remote_waiters.borrow_mut().remove(&id)).flatten();
                if let Some(w) = w {
                    w.wake();
                }
            }
            RemoteOp::Call(f) => {
                hub_if_any(|h| h.lp.run_callback(f));
            }
        }
    }
}

/// Lets other threads queue work on a hub (`run_callback_threadsafe`).
#[derive(Clone)]
pub struct HubHandle {
    remote: Arc<Remote>,
}

impl fmt::Debug for HubHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HubHandle")
            .field("connected", &self.remote.sender.is_connected())
            .finish()
    }
}

impl HubHandle {
    /// Runs `f` on the hub's thread, in the hub, at its next loop iteration. Returns
    /// `false` if the hub is gone. `f` must not block (spawn a greenlet for that).
    pub fn run_callback_threadsafe(&self, f: impl FnOnce() + Send + 'static) -> bool {
        self.push(RemoteOp::Call(Box::new(f)))
    }

    fn push(&self, op: RemoteOp) -> bool {
        if !self.remote.sender.is_connected() {
            return false;
        }
        self.remote
            .queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(op);
        self.remote.sender.send()
    }
}

/// Wakes one waiting greenlet from another thread. Made on the hub's thread by
/// [`Wait::remote_waker`]; while it exists the hub's loop stays alive (the wait is not
/// "forever": another thread will end it).
pub struct RemoteWaker {
    id: u64,
    handle: HubHandle,
}

impl fmt::Debug for RemoteWaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteWaker").field("id", &self.id).finish()
    }
}

impl RemoteWaker {
    /// Wakes the greenlet. Returns `false` if its hub is gone.
    pub fn wake(self) -> bool {
        self.handle.push(RemoteOp::Wake(self.id))
    }
}

/// A wake-up for one particular wait of one greenlet, or a notification for a sink
/// (see the module docs). Cheap to clone; stale ones do nothing.
#[derive(Clone)]
pub struct Waker(WakerKind);

#[derive(Clone)]
enum WakerKind {
    Greenlet { g: Rc<GInner>, seq: u64 },
    Sink { sink: Rc<Sink>, tag: usize },
}

impl fmt::Debug for Waker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            WakerKind::Greenlet { g, .. } => f
                .debug_struct("Waker")
                .field("greenlet", &g.id())
                .field("valid", &self.is_valid())
                .finish(),
            WakerKind::Sink { tag, .. } => f
                .debug_struct("Waker")
                .field("tag", tag)
                .field("valid", &self.is_valid())
                .finish(),
        }
    }
}

impl Waker {
    /// True while the wait it belongs to is still going on.
    pub fn is_valid(&self) -> bool {
        match &self.0 {
            WakerKind::Greenlet { g, seq } => g.wait_seq.get() == *seq && !g.is_dead(),
            WakerKind::Sink { sink, .. } => !sink.closed.get(),
        }
    }

    /// Resumes the waiting greenlet: at once when called in the hub, else at the hub's
    /// next callback phase.
    pub fn wake(&self) {
        match &self.0 {
            WakerKind::Greenlet { g, seq } => resume(g, *seq, WAKE),
            WakerKind::Sink { sink, tag } => sink.notify(*tag),
        }
    }

    /// Ends the wait with `code` ([`WAKE_TIMEOUT`] from a wait's own timer).
    fn wake_with(&self, code: usize) {
        match &self.0 {
            WakerKind::Greenlet { g, seq } => resume(g, *seq, code),
            WakerKind::Sink { sink, tag } => sink.notify(*tag),
        }
    }
}

/// Resumes `g`'s wait `seq` with `code`, if that wait is still on.
fn resume(g: &Rc<GInner>, seq: u64, code: usize) {
    if g.wait_seq.get() != seq || g.is_dead() {
        return;
    }
    // No `Rc<Hub>` may stay on a stack that is suspended by the switch: the hub
    // greenlet can stay suspended here for good, and would keep the hub alive after
    // its thread ended.
    let Some((in_hub, exiting)) = hub_if_any(|h| (h.is_current(), h.exiting.get())) else {
        return;
    };
    if exiting {
        return;
    }
    if in_hub {
        if g.parked.get() {
            let _ = switch_msg(g, Msg::Hub(code));
        }
    } else {
        let g = g.clone();
        hub_if_any(|hub| hub.lp.run_callback(move || resume(&g, seq, code)));
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
    fn notify(&self, tag: usize) {
        if self.closed.get() {
            return;
        }
        self.fired.borrow_mut().push(tag);
        let w = self.waiter.borrow().clone();
        if let Some(w) = w {
            w.wake();
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

/// Raises `payload` in greenlet `g` at its blocking point (kill, timeout). If it is not
/// parked in the hub right now, the payload waits for its next blocking call. The
/// running greenlet is not interrupted on the spot: as in gevent, its kill is scheduled
/// and lands at its next blocking point (after what is already queued).
pub(crate) fn throw_into(g: &Rc<GInner>, payload: PanicPayload) {
    if g.is_dead() {
        return;
    }
    let Some((in_hub, exiting)) = hub_if_any(|h| (h.is_current(), h.exiting.get())) else {
        g.pending_throw.set(Some(payload));
        return;
    };
    if exiting {
        // The thread's teardown ends every greenlet itself.
        g.pending_throw.set(Some(payload));
        return;
    }
    let is_current = std::ptr::eq(greenlet::current_ptr(), Rc::as_ptr(g));
    if g.parked.get() && in_hub {
        let _ = switch_msg(g, Msg::Throw(payload));
    } else if g.parked.get() || is_current {
        let g2 = g.clone();
        let cell = Cell::new(Some(payload));
        hub_if_any(|hub| {
            hub.lp.run_callback(move || {
                if let Some(p) = cell.take() {
                    throw_into(&g2, p);
                }
            })
        });
    } else {
        g.pending_throw.set(Some(payload));
    }
}

/// Ends a greenlet of this hub at thread exit: raises [`GreenletExit`] where it is
/// suspended and returns once it has finished (or switched back here).
pub(crate) fn end_greenlet_at_exit(g: &Rc<GInner>) {
    if !g.is_started() || g.is_dead() || std::ptr::eq(greenlet::current_ptr(), Rc::as_ptr(g)) {
        return;
    }
    g.pending_throw.take();
    // When it finishes it comes back here, not to the hub greenlet (which is suspended
    // inside the loop and must stay so until the loop is quiesced).
    *g.parent_mut() = Some(current_rc());
    let _ = switch_msg(g, Msg::Throw(Box::new(GreenletExit)));
}

/// One logical wait of the current greenlet. Wakers made from it are valid until it is
/// dropped; [`park`](Wait::park) may be called several times (re-check the condition
/// after each wake-up).
pub struct Wait {
    g: Rc<GInner>,
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
    pub fn new(what: &'static str) -> Result<Wait> {
        if HUB_PTR.with(Cell::get).is_null() {
            try_get_hub()?;
        }
        match hub_if_any(|h| (h.is_current(), h.exiting.get())) {
            None | Some((_, true)) => return Err(Error::ThreadExiting),
            Some((true, _)) => return Err(Error::BlockingInHub(what)),
            Some((false, false)) => {}
        }
        if std::thread::panicking() {
            return Err(Error::Unwinding);
        }
        let g = current_rc();
        let seq = g.wait_seq.get().wrapping_add(1);
        g.wait_seq.set(seq);
        Ok(Wait {
            g,
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

    /// A waker for this wait.
    pub fn waker(&self) -> Waker {
        Waker(WakerKind::Greenlet {
            g: self.g.clone(),
            seq: self.seq,
        })
    }

    /// A waker for other threads. The hub's loop is kept alive until it is used or the
    /// wait ends.
    pub fn remote_waker(&self) -> RemoteWaker {
        let hub = get_hub();
        let id = hub.next_remote.get();
        hub.next_remote.set(id + 1);
        hub.remote_waiters.borrow_mut().insert(id, self.waker());
        self.remote_ids.borrow_mut().push(id);
        hub.lp.ref_();
        RemoteWaker {
            id,
            handle: hub.handle(),
        }
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
        let hub = get_hub();
        let t = hub.timer_from_now(d);
        let w = self.waker();
        t.start(move |_, _| w.wake_with(WAKE_TIMEOUT))?;
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
    pub fn park(&self) -> Result<bool> {
        if let Some(p) = self.g.pending_throw.take() {
            resume_unwind(p);
        }
        if self.timer.as_ref().is_some_and(|t| !t.is_active()) {
            return Ok(false);
        }
        let Some((hub_greenlet, exiting)) = hub_if_any(|h| (h.raw.clone(), h.exiting.get())) else {
            return Err(Error::ThreadExiting);
        };
        if exiting {
            return Err(Error::ThreadExiting);
        }
        self.g.parked.set(true);
        let r = switch_msg(&hub_greenlet, Msg::Hub(PARKED));
        drop(hub_greenlet);
        self.g.parked.set(false);
        match r {
            Ok(Msg::Throw(p)) => resume_unwind(p),
            Ok(Msg::Hub(WAKE)) => Ok(true),
            Ok(Msg::Hub(WAKE_TIMEOUT)) => Ok(false),
            Ok(Msg::Hub(WAKE_LOOP_EXIT)) => Err(Error::WouldBlockForever(self.what.to_owned())),
            Ok(other) => Err(Error::InvalidSwitch(format!(
                "{} (while waiting for {})",
                describe(&other),
                self.what
            ))),
            Err(greenlet::SwitchError::Unwinding) => Err(Error::Unwinding),
            Err(greenlet::SwitchError::ThreadExited) => Err(Error::ThreadExiting),
            Err(e) => Err(Error::Spawn(std::io::Error::other(e.to_string()))),
        }
    }
}

/// What a message that is not a wake-up is, for [`Error::InvalidSwitch`].
fn describe(m: &Msg) -> String {
    match m {
        Msg::Value(_) => "a switch with a value".to_owned(),
        Msg::Finished(_) => "a child greenlet's return".to_owned(),
        Msg::Hub(code) => format!("hub code {code}"),
        Msg::Throw(_) => "a throw".to_owned(),
    }
}

impl Drop for Wait {
    fn drop(&mut self) {
        // Invalidate every waker of this wait.
        if self.g.wait_seq.get() == self.seq {
            self.g.wait_seq.set(self.seq.wrapping_add(1));
        }
        let ids = std::mem::take(self.remote_ids.get_mut());
        if !ids.is_empty() {
            hub_if_any(|hub| {
                for id in ids {
                    // Each remote waker took one reference on the loop.
                    hub.remote_waiters.borrow_mut().remove(&id);
                    hub.lp.unref();
                }
            });
        }
    }
}

/// Waits until `ready()` holds, registering a waker with `subscribe` first and again
/// after each wake-up (a wake-up consumes the subscription). Returns `Ok(false)` if
/// `timeout` expired first.
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
