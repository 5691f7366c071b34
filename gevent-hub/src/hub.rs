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
//! and does nothing.
//!
//! When the loop runs out of work while greenlets still wait, `run` returns; the hub
//! then wakes the main greenlet with "this operation would block forever" (gevent's
//! `LoopExit`) instead of sleeping forever.

use crate::error::{Error, Result};
use crate::greenlet::{self, current_rc, switch_msg, GInner, Msg, PanicPayload};
use gevent_core::{Async, AsyncSender, Loop, Timer};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::fmt;
use std::panic::resume_unwind;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Wake-up codes carried by `Msg::Hub`.
pub(crate) const WAKE: usize = 1;
pub(crate) const WAKE_TIMEOUT: usize = 2;
pub(crate) const WAKE_LOOP_EXIT: usize = 3;
pub(crate) const WAKE_START: usize = 4;

/// What other threads can send to a hub.
enum RemoteOp {
    Wake(u64),
    Call(Box<dyn FnOnce() + Send>),
}

struct Remote {
    queue: Mutex<Vec<RemoteOp>>,
    sender: AsyncSender,
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
}

impl fmt::Debug for Hub {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hub").field("loop", &self.lp).finish()
    }
}

thread_local! {
    static HUB: RefCell<Option<Rc<Hub>>> = const { RefCell::new(None) };
    /// The greenlet thread-locals were touched before HUB (see `try_get_hub`).
    static TLS_ORDERED: Cell<bool> = const { Cell::new(false) };
    /// The hub HUB holds, for the switch path (no reference-count traffic); null until
    /// it exists and once it is being dropped.
    static HUB_PTR: Cell<*const Hub> = const { Cell::new(std::ptr::null()) };
}

/// Runs `f` with this thread's hub (creating it if needed) without cloning its handle:
/// the wait/wake path calls this several times per switch.
///
/// # Panics
/// As [`get_hub`], if the hub cannot be created.
pub(crate) fn with_hub<R>(f: impl FnOnce(&Hub) -> R) -> R {
    let p = HUB_PTR.with(Cell::get);
    if p.is_null() {
        return f(&get_hub());
    }
    // SAFETY: HUB holds an Rc to this hub until the thread-local is destroyed, and
    // Hub::drop clears HUB_PTR before anything of the hub goes; `f` cannot drop HUB.
    f(unsafe { &*p })
}

/// The hub of this thread, created on first use with a new event loop.
///
/// # Panics
/// If libev cannot create a loop (e.g. out of file descriptors) on first use.
pub fn get_hub() -> Rc<Hub> {
    try_get_hub().unwrap_or_else(|e| panic!("gevent: cannot create this thread's hub: {e}"))
}

/// [`get_hub`] without the panic.
///
/// # Errors
/// The loop could not be created.
pub fn try_get_hub() -> Result<Rc<Hub>> {
    // The greenlet machinery's thread-locals must outlive HUB's (a hub being dropped at
    // thread exit switches greenlets): thread-locals are destroyed in reverse order of
    // first use, so touch them before HUB is touched for the first time.
    if !TLS_ORDERED.with(Cell::get) {
        greenlet::tls_alive();
        TLS_ORDERED.with(|t| t.set(true));
    }
    if let Some(h) = HUB.with(|h| h.borrow().clone()) {
        return Ok(h);
    }
    let hub = Rc::new(Hub::new(Loop::new()?)?);
    HUB.with(|h| *h.borrow_mut() = Some(hub.clone()));
    HUB_PTR.with(|p| p.set(Rc::as_ptr(&hub)));
    Ok(hub)
}

/// The hub greenlet's body: run the loop; when it runs out of work, tell the main
/// greenlet. Ends when the hub is being dropped (its thread is exiting).
fn hub_body(_: greenlet::Value) {
    loop {
        let lp = HUB.try_with(|h| h.borrow().as_ref().map(|h| h.lp.clone()));
        let Ok(Some(lp)) = lp else { return };
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

thread_local! {
    /// Set while the hub is dropped: the hub greenlet must leave its loop for good.
    static SHUTTING_DOWN: Cell<bool> = const { Cell::new(false) };
}

impl Drop for Hub {
    /// At thread exit the hub greenlet is usually suspended inside `ev_run` (in a
    /// watcher callback that switched to a greenlet). Resume it with the loop told to
    /// break, so that its frames return normally and release the loop; otherwise the
    /// loop (its epoll fd and eventfd) and the hub's stack would leak with the thread.
    /// Greenlets still parked stay suspended (their stacks are not freed under them).
    fn drop(&mut self) {
        let _ = HUB_PTR.try_with(|p| p.set(std::ptr::null()));
        if !self.raw.is_started() || self.raw.is_dead() || std::thread::panicking() {
            return;
        }
        if !greenlet::tls_alive() {
            return;
        }
        SHUTTING_DOWN.with(|s| s.set(true));
        self.lp.break_loop(gevent_core::Break::All);
        let _ = switch_msg(&self.raw, Msg::Hub(WAKE));
        SHUTTING_DOWN.with(|s| s.set(false));
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
        Ok(Hub {
            lp,
            raw,
            remote,
            _async: a,
            remote_waiters: RefCell::new(HashMap::new()),
            next_remote: Cell::new(1),
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
}

fn drain_remote(remote: &Remote) {
    let ops = std::mem::take(&mut *remote.queue.lock().unwrap_or_else(|e| e.into_inner()));
    let hub = get_hub();
    for op in ops {
        match op {
            RemoteOp::Wake(id) => {
                let w = hub.remote_waiters.borrow_mut().remove(&id);
                if let Some(w) = w {
                    w.wake();
                }
            }
            RemoteOp::Call(f) => {
                hub.lp.run_callback(f);
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

/// A wake-up for one particular wait of one greenlet. Cheap to clone; stale ones do
/// nothing.
#[derive(Clone)]
pub struct Waker {
    g: Rc<GInner>,
    seq: u64,
}

impl fmt::Debug for Waker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Waker")
            .field("greenlet", &self.g.id())
            .field("valid", &self.is_valid())
            .finish()
    }
}

impl Waker {
    /// True while the wait it belongs to is still going on.
    pub fn is_valid(&self) -> bool {
        self.g.wait_seq.get() == self.seq && !self.g.is_dead()
    }

    /// Resumes the waiting greenlet: at once when called in the hub, else at the hub's
    /// next callback phase.
    pub fn wake(&self) {
        self.wake_with(WAKE);
    }

    pub(crate) fn wake_with(&self, code: usize) {
        if !self.is_valid() {
            return;
        }
        // No `Rc<Hub>` may stay on a stack that is suspended by the switch: the hub
        // greenlet can stay suspended here for good, and would keep the hub alive after
        // its thread ended.
        if with_hub(Hub::is_current) {
            if self.g.parked.get() {
                let _ = switch_msg(&self.g, Msg::Hub(code));
            }
        } else {
            let w = self.clone();
            with_hub(|hub| hub.lp.run_callback(move || w.wake_with(code)));
        }
    }
}

/// Raises `payload` in greenlet `g` at its blocking point (kill, timeout). If it is not
/// parked in the hub right now, the payload waits for its next blocking call.
pub(crate) fn throw_into(g: &Rc<GInner>, payload: PanicPayload) {
    if g.is_dead() {
        return;
    }
    let hub = get_hub();
    if Rc::ptr_eq(g, &current_rc()) {
        resume_unwind(payload);
    }
    if g.parked.get() && hub.is_current() {
        drop(hub); // see Waker::wake_with
        let _ = switch_msg(g, Msg::Throw(payload));
    } else if g.parked.get() {
        let g2 = g.clone();
        let cell = Cell::new(Some(payload));
        hub.lp.run_callback(move || {
            if let Some(p) = cell.take() {
                throw_into(&g2, p);
            }
        });
    } else {
        g.pending_throw.set(Some(payload));
    }
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
    /// [`Error::BlockingInHub`] in the hub; [`Error::Unwinding`] during a panic.
    pub fn new(what: &'static str) -> Result<Wait> {
        if HUB_PTR.with(Cell::get).is_null() {
            try_get_hub()?;
        }
        if with_hub(Hub::is_current) {
            return Err(Error::BlockingInHub(what));
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

    /// A waker for this wait.
    pub fn waker(&self) -> Waker {
        Waker {
            g: self.g.clone(),
            seq: self.seq,
        }
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
    /// `Ok(false)`).
    pub fn set_timeout(&mut self, d: Duration) -> Result<()> {
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
    /// [`Error::WouldBlockForever`] when the loop ran out of work.
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
        let hub_greenlet = with_hub(|h| h.raw.clone());
        self.g.parked.set(true);
        let r = switch_msg(&hub_greenlet, Msg::Hub(0));
        drop(hub_greenlet);
        self.g.parked.set(false);
        match r {
            Ok(Msg::Throw(p)) => resume_unwind(p),
            Ok(Msg::Hub(WAKE_TIMEOUT)) => Ok(false),
            Ok(Msg::Hub(WAKE_LOOP_EXIT)) => Err(Error::WouldBlockForever(self.what.to_owned())),
            Ok(_) => Ok(true),
            Err(greenlet::SwitchError::Unwinding) => Err(Error::Unwinding),
            Err(e) => Err(Error::Spawn(std::io::Error::other(e.to_string()))),
        }
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
            if let Ok(hub) = try_get_hub() {
                for id in ids {
                    // Each remote waker took one reference on the loop.
                    hub.remote_waiters.borrow_mut().remove(&id);
                    hub.lp.unref();
                }
            }
        }
    }
}

/// Waits until `ready()` holds, registering wakers with `subscribe` before each park.
/// Returns `Ok(false)` if `timeout` expired first.
pub(crate) fn wait_until(
    what: &'static str,
    timeout: Option<Duration>,
    ready: impl Fn() -> bool,
    subscribe: impl Fn(Waker),
) -> Result<bool> {
    if ready() {
        return Ok(true);
    }
    let mut w = Wait::new(what)?;
    if let Some(d) = timeout {
        w.set_timeout(d)?;
    }
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
