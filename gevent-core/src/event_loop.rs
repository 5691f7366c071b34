//! [`Loop`]: one libev event loop, and `run_callback`, the queue the hub is built on.
//!
//! A `Loop` handle is a reference-counted pointer to the loop's state; every watcher
//! holds a reference too, so `ev_loop_destroy` runs exactly once, after the last
//! handle *and* the last watcher are gone (soundness rule 4). The loop state is also
//! libev's `userdata`, which is how C callbacks find their way back to Rust.
//!
//! Every strong reference is a [`LoopRc`], and the last one to go destroys the loop
//! *before* the state's memory is released. Destruction runs callbacks (cleanup
//! watchers) that reach the state through `userdata` as `&LoopInner`, so it must not
//! run from `Drop for LoopInner`, whose `&mut self` would be live at the same time:
//! `LoopRc` holds only the `Rc` (a pointer) and destroys through `&LoopInner`, whose
//! state is all `Cell`/`RefCell`. While that runs, weak references do not upgrade,
//! exactly as if the count had already reached zero.
//!
//! ## `run_callback` and the prepare watcher
//!
//! As in gevent, callbacks queued with [`Loop::run_callback`] are run by an internal
//! *prepare* watcher, that is, just before the loop would block in `epoll_wait`. They
//! run in FIFO order, including callbacks queued while the queue is being drained,
//! until the queue is empty or the drain's time budget (5 ms by default) is spent. If
//! work is left over, a zero-delay timer makes the next poll return at once, so queued
//! callbacks neither starve I/O nor let the loop sleep while they wait.

use crate::error::{Error, Result};
use crate::watcher::{Detached, LoopLink};
use libev_sys as ffi;
use std::any::Any;
use std::cell::{Cell, RefCell, UnsafeCell};
use std::collections::VecDeque;
use std::ffi::c_int;
use std::fmt;
use std::mem::ManuallyDrop;
use std::ops::Deref;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::{Rc, Weak};
use std::sync::{Mutex, OnceLock};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

/// A panic payload, as `std::panic::catch_unwind` returns it.
pub type PanicPayload = Box<dyn Any + Send + 'static>;

type ErrorHandler = Box<dyn FnMut(PanicPayload)>;

/// How far [`Loop::break_loop`] unwinds nested `run` calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Break {
    /// Return from the innermost `run` (`EVBREAK_ONE`).
    One,
    /// Return from every nested `run` (`EVBREAK_ALL`).
    All,
    /// Cancel a pending break (`EVBREAK_CANCEL`).
    Cancel,
}

/// Loop creation flags: a backend set plus libev's behaviour flags, as in
/// `ev_loop_new(flags)`. Parse them from gevent-style names with [`str::parse`]:
/// `"epoll"`, `"poll,select"`, `"epoll,signalfd,nosigmask"`.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct Flags(pub u32);

/// libev's behaviour flags, by gevent's names. The backends' names come from
/// [`libev_sys::BACKENDS`], the workspace's one list of them.
const BEHAVIOUR_FLAGS: &[(&str, u32)] = &[
    ("noenv", ffi::EVFLAG_NOENV),
    ("forkcheck", ffi::EVFLAG_FORKCHECK),
    ("noinotify", ffi::EVFLAG_NOINOTIFY),
    ("signalfd", ffi::EVFLAG_SIGNALFD),
    ("nosigmask", ffi::EVFLAG_NOSIGMASK),
    ("notimerfd", ffi::EVFLAG_NOTIMERFD),
];
const BACKEND_MASK: u32 = ffi::EVBACKEND_MASK;

/// Every name [`Flags`] parses, with its bits: the backends, then the behaviour flags.
fn flag_names() -> impl Iterator<Item = (&'static str, u32)> {
    ffi::BACKENDS.iter().chain(BEHAVIOUR_FLAGS).copied()
}

/// The names of [`flag_names`] as a list for messages: `"select, poll, …"`.
fn valid_names() -> &'static str {
    static VALID: OnceLock<String> = OnceLock::new();
    VALID.get_or_init(|| flag_names().map(|(n, _)| n).collect::<Vec<_>>().join(", "))
}

impl Flags {
    /// Let libev choose (`EVFLAG_AUTO`): the recommended backends.
    pub const AUTO: Flags = Flags(0);
    /// The backend bits of these flags.
    pub fn backends(self) -> u32 {
        self.0 & BACKEND_MASK
    }
}

impl std::ops::BitOr for Flags {
    type Output = Flags;
    fn bitor(self, o: Flags) -> Flags {
        Flags(self.0 | o.0)
    }
}

impl std::str::FromStr for Flags {
    type Err = Error;
    /// Comma- or space-separated names; see [`Flags`].
    fn from_str(s: &str) -> Result<Flags> {
        let mut bits = 0;
        for name in s.split([',', ' ']).map(str::trim).filter(|n| !n.is_empty()) {
            let lower = name.to_ascii_lowercase();
            let lower = lower.strip_prefix("ev").unwrap_or(&lower);
            match flag_names().find(|&(n, _)| n == lower) {
                Some((_, b)) => bits |= b,
                None => {
                    return Err(Error::UnknownBackend {
                        name: name.to_owned(),
                        valid: valid_names(),
                    })
                }
            }
        }
        Ok(Flags(bits))
    }
}

impl fmt::Debug for Flags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&backend_names(self.0))
    }
}

/// The names of the bits set in `bits`, comma-separated (`"epoll,signalfd"`).
pub fn backend_names(bits: u32) -> String {
    let names: Vec<&str> = flag_names()
        .filter(|&(_, b)| bits & b != 0)
        .map(|(n, _)| n)
        .collect();
    if names.is_empty() {
        "auto".into()
    } else {
        names.join(",")
    }
}

/// The backends this libev was built with and this kernel supports. (io_uring is not
/// built: libev 4.33 cannot tear an io_uring loop down cleanly; see
/// `libev-sys/csrc/ev_config.h`.)
pub fn supported_backends() -> Flags {
    // SAFETY: plain getter.
    Flags(unsafe { ffi::ev_supported_backends() })
}

/// The backends libev recommends on this system (what `Flags::AUTO` picks from).
pub fn recommended_backends() -> Flags {
    // SAFETY: plain getter.
    Flags(unsafe { ffi::ev_recommended_backends() })
}

/// libev's version, `(major, minor)`.
pub fn version() -> (i32, i32) {
    // SAFETY: plain getters.
    unsafe { (ffi::ev_version_major(), ffi::ev_version_minor()) }
}

/// A queued [`Loop::run_callback`] entry: the closure lives in the same allocation as
/// the slot (one allocation per callback).
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

/// Handle to a callback queued with [`Loop::run_callback`]. Dropping it does not
/// cancel the callback.
pub struct Callback {
    slot: Rc<dyn Queued>,
}

impl Callback {
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

/// The state behind every [`Loop`] handle and watcher. It is libev's `userdata`.
pub(crate) struct LoopInner {
    pub(crate) raw: *mut ffi::ev_loop,
    is_default: bool,
    /// Number of live `Loop` handles (watchers' references are not counted). When it
    /// drops to zero, detached watchers and queued callbacks are released, which
    /// breaks the reference cycles they would otherwise form with the loop.
    handles: Cell<usize>,
    /// Set while `ev_loop_destroy` runs (cleanup watchers may be called then).
    pub(crate) releasing: Cell<bool>,
    /// A panic caught in a callback, to be resumed by `run` once `ev_run` returns.
    panic: RefCell<Option<PanicPayload>>,
    /// gevent's `handle_error`: receives panics instead of breaking the loop.
    error_handler: RefCell<Option<ErrorHandler>>,
    /// Bumped by `set_error_handler`/`clear_error_handler`, so that a handler which
    /// replaced or cleared itself while running is not put back afterwards.
    handler_epoch: Cell<u64>,
    callbacks: RefCell<VecDeque<Rc<dyn Queued>>>,
    /// True while the callback queue holds an `ev_ref` on the loop.
    callbacks_ref: Cell<bool>,
    callback_budget: Cell<Duration>,
    prepare: UnsafeCell<ffi::ev_prepare>,
    timer0: UnsafeCell<ffi::ev_timer>,
    /// Watchers kept alive without a handle (`Watcher::detach`), until they stop.
    pub(crate) detached: RefCell<Vec<Rc<dyn Detached>>>,
    /// Active child watchers: libev's SIGCHLD reaping runs only while this is > 0.
    pub(crate) children: Cell<usize>,
    /// Set by [`Loop::quiesce`]: no callback of this loop runs any more.
    pub(crate) quiesced: Cell<bool>,
}

impl LoopInner {
    /// # Safety
    /// `l` must be a loop created by this module (its userdata is a `LoopInner`) and
    /// still alive.
    pub(crate) unsafe fn from_raw<'a>(l: *mut ffi::ev_loop) -> &'a LoopInner {
        // SAFETY: the caller's contract; userdata is set right after creation.
        unsafe { &*(ffi::ev_userdata(l) as *const LoopInner) }
    }

    /// A callback panicked: hand the payload to the error handler, or keep it for `run`
    /// and break the loop.
    pub(crate) fn handle_panic(&self, payload: PanicPayload) {
        let epoch = self.handler_epoch.get();
        let handler = self.error_handler.borrow_mut().take();
        if let Some(mut h) = handler {
            let r = catch_unwind(AssertUnwindSafe(|| h(payload)));
            if self.handler_epoch.get() == epoch {
                *self.error_handler.borrow_mut() = Some(h);
            } else {
                drop(h);
            }
            if let Err(p) = r {
                self.store_panic(p);
            }
        } else {
            self.store_panic(payload);
        }
    }

    fn bump_handler_epoch(&self) {
        self.handler_epoch
            .set(self.handler_epoch.get().wrapping_add(1));
    }

    fn store_panic(&self, payload: PanicPayload) {
        let mut slot = self.panic.borrow_mut();
        if slot.is_none() {
            *slot = Some(payload);
        }
        drop(slot);
        // SAFETY: the loop is alive (self is its userdata).
        unsafe { ffi::ev_break(self.raw, ffi::EVBREAK_ALL as c_int) };
    }

    fn queue_callback<F: FnOnce() + 'static>(&self, f: F) -> Callback {
        let slot: Rc<dyn Queued> = Rc::new(Slot {
            f: Cell::new(Some(f)),
            pending: Cell::new(true),
        });
        if self.quiesced.get() {
            // Nothing runs on a quiesced loop: dropped unrun (the handle says so).
            slot.cancel();
            return Callback { slot };
        }
        self.callbacks.borrow_mut().push_back(slot.clone());
        if !self.callbacks_ref.replace(true) {
            // SAFETY: live loop. The queue keeps the loop alive until drained.
            unsafe { ffi::ev_ref(self.raw) };
        }
        Callback { slot }
    }

    /// Drops every queued callback unrun (and the queue's reference on the loop).
    fn discard_callbacks(&self) {
        let queued = std::mem::take(&mut *self.callbacks.borrow_mut());
        for cb in queued {
            cb.cancel();
        }
        // SAFETY: live loop; timer0 lives inside self.
        unsafe { ffi::ev_timer_stop(self.raw, self.timer0.get()) };
        if self.callbacks_ref.replace(false) {
            // SAFETY: live loop; pairs with the ev_ref taken when the queue filled.
            unsafe { ffi::ev_unref(self.raw) };
        }
    }

    /// Body of the internal prepare watcher.
    fn drain_callbacks(&self) {
        if !self.callbacks_ref.get() {
            return; // nothing was queued: the common case of a busy loop costs nothing
        }
        if self.quiesced.get() {
            self.discard_callbacks();
            return;
        }
        // No deadline for a budget beyond what an Instant can hold (Duration::MAX).
        let deadline = Instant::now().checked_add(self.callback_budget.get());
        let mut ran = 0u32;
        loop {
            let next = self.callbacks.borrow_mut().pop_front();
            let Some(cb) = next else { break };
            if let Some(r) = cb.run() {
                if let Err(p) = r {
                    self.handle_panic(p);
                }
                ran += 1;
                // Checking the clock every few callbacks keeps the common case cheap.
                if ran % 16 == 0 && deadline.is_some_and(|d| Instant::now() >= d) {
                    break;
                }
            }
        }
        let left = !self.callbacks.borrow().is_empty();
        // SAFETY: live loop; timer0 lives inside self.
        unsafe {
            if left {
                // More work queued: do not let the coming poll block.
                ffi::ev_timer_start(self.raw, self.timer0.get());
            } else {
                ffi::ev_timer_stop(self.raw, self.timer0.get());
                if self.callbacks_ref.replace(false) {
                    ffi::ev_unref(self.raw);
                }
            }
        }
    }

    /// True while at least one `Loop` handle exists.
    pub(crate) fn has_handles(&self) -> bool {
        self.handles.get() > 0
    }

    /// The last `Loop` handle went away: stop and drop what only the loop kept alive.
    fn release_detached(&self) {
        let (keep, release): (Vec<_>, Vec<_>) = std::mem::take(&mut *self.detached.borrow_mut())
            .into_iter()
            .partition(|w| w.fires_at_destroy());
        self.detached.borrow_mut().extend(keep);
        for w in &release {
            w.stop_detached();
        }
        drop(release);
        // Free the closures themselves, not just the queue's references: a `Callback`
        // handle would otherwise keep a closure that can never run alive (and pending).
        self.discard_callbacks();
    }
}

unsafe extern "C" fn prepare_cb(l: *mut ffi::ev_loop, _w: *mut ffi::ev_prepare, _revents: c_int) {
    // SAFETY: the internal prepare watcher exists only on loops made here.
    let inner = unsafe { LoopInner::from_raw(l) };
    inner.drain_callbacks();
}

unsafe extern "C" fn timer0_cb(_l: *mut ffi::ev_loop, _w: *mut ffi::ev_timer, _revents: c_int) {
    // Nothing to do: its only job was to make the poll return at once.
}

impl LoopInner {
    /// Destroys the libev loop (`ev_loop_destroy`, which runs the cleanup watchers) and
    /// returns a panic one of their callbacks left behind. Called once, by the last
    /// [`LoopRc`], through a shared reference: the callbacks build their own.
    fn destroy(&self) -> Option<PanicPayload> {
        self.releasing.set(true);
        // SAFETY: the caller is the last strong reference and `releasing` keeps weak ones
        // from upgrading, so no watcher but cleanup watchers (which hold a weak link and
        // are invoked by ev_loop_destroy) refers to this loop, and nothing can start one.
        unsafe {
            // The prepare watcher was unref'd after its start; give the reference back
            // before stopping it, or libev's active count drifts below zero (which
            // matters for the default loop, whose struct is static and reused).
            ffi::ev_ref(self.raw);
            ffi::ev_prepare_stop(self.raw, self.prepare.get());
            ffi::ev_timer_stop(self.raw, self.timer0.get());
            // Deliver events still queued (fed to cleanup watchers, the only ones left):
            // ev_loop_destroy does so only when some cleanup watcher is active, and a
            // watcher left pending in a freed loop could not be stopped safely.
            if ffi::ev_pending_count(self.raw) != 0 {
                ffi::ev_invoke_pending(self.raw);
            }
            ffi::ev_loop_destroy(self.raw);
        }
        // Before a panic resumes, or the default loop could never be made again.
        if self.is_default {
            *DEFAULT_OWNER.lock().unwrap_or_else(|e| e.into_inner()) = None;
        }
        self.panic.borrow_mut().take()
    }
}

/// A strong reference to a loop's state: the only kind there is. The last one to be
/// dropped destroys the loop, then frees the state (see the module docs for why the
/// destruction is not `LoopInner`'s own `Drop`).
pub(crate) struct LoopRc(ManuallyDrop<Rc<LoopInner>>);

/// A weak reference to a loop's state; it upgrades only to a live, not-releasing loop.
#[derive(Clone)]
pub(crate) struct LoopWeak(Weak<LoopInner>);

impl LoopRc {
    fn new(inner: LoopInner) -> LoopRc {
        LoopRc(ManuallyDrop::new(Rc::new(inner)))
    }

    pub(crate) fn downgrade(&self) -> LoopWeak {
        LoopWeak(Rc::downgrade(&self.0))
    }

    fn as_ptr(&self) -> *const LoopInner {
        Rc::as_ptr(&self.0)
    }
}

impl LoopWeak {
    pub(crate) const fn new() -> LoopWeak {
        LoopWeak(Weak::new())
    }

    /// A strong reference, unless the loop is gone or being destroyed: a reference
    /// taken during destruction could outlive it.
    pub(crate) fn upgrade(&self) -> Option<LoopRc> {
        let rc = self.0.upgrade()?;
        if rc.releasing.get() {
            // Never the last one: the destroying LoopRc still holds its own.
            drop(rc);
            return None;
        }
        Some(LoopRc(ManuallyDrop::new(rc)))
    }
}

impl Clone for LoopRc {
    fn clone(&self) -> LoopRc {
        LoopRc(self.0.clone())
    }
}

impl Deref for LoopRc {
    type Target = LoopInner;
    fn deref(&self) -> &LoopInner {
        &self.0
    }
}

impl Drop for LoopRc {
    fn drop(&mut self) {
        // `releasing`: this is not the reference destroying the loop, which by then
        // cannot have company, but stay safe if it ever had.
        let last = Rc::strong_count(&self.0) == 1 && !self.0.releasing.get();
        let panic = if last { self.0.destroy() } else { None };
        // SAFETY: the Rc is taken out exactly once, here, and never used again.
        drop(unsafe { ManuallyDrop::take(&mut self.0) });
        // A panic from a cleanup callback has nowhere to go but here.
        if let Some(p) = panic {
            if !std::thread::panicking() {
                std::panic::resume_unwind(p);
            }
        }
    }
}

/// Which thread owns libev's default loop (it is a process-wide singleton).
static DEFAULT_OWNER: Mutex<Option<ThreadId>> = Mutex::new(None);

thread_local! {
    static DEFAULT_LOOP: RefCell<LoopWeak> = const { RefCell::new(LoopWeak::new()) };
    /// libev system errors reported on this thread, picked up by `run` and constructors.
    static SYSERR: RefCell<Option<Error>> = const { RefCell::new(None) };
    /// The loop currently inside `ev_run` on this thread (innermost), for syserr.
    static RUNNING: Cell<*mut ffi::ev_loop> = const { Cell::new(std::ptr::null_mut()) };
}

unsafe extern "C" fn syserr_cb(msg: *const std::ffi::c_char) {
    let errno = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
    let message = if msg.is_null() {
        "(libev) system error".to_owned()
    } else {
        // SAFETY: libev passes a static NUL-terminated string.
        unsafe { std::ffi::CStr::from_ptr(msg) }
            .to_string_lossy()
            .into_owned()
    };
    let _ = SYSERR.try_with(|s| *s.borrow_mut() = Some(Error::System { message, errno }));
    let running = RUNNING.try_with(Cell::get).unwrap_or(std::ptr::null_mut());
    if !running.is_null() {
        // SAFETY: the loop is inside ev_run on this thread.
        unsafe { ffi::ev_break(running, ffi::EVBREAK_ALL as c_int) };
    }
}

fn take_syserr() -> Option<Error> {
    // try_with: a loop may still run while the thread-locals are being destroyed
    // (a hub shutting down at thread exit).
    SYSERR.try_with(|s| s.borrow_mut().take()).ok().flatten()
}

fn install_syserr_cb() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    // SAFETY: installs a process-wide function pointer; libev reads it on errors.
    ONCE.call_once(|| unsafe { ffi::ev_set_syserr_cb(Some(syserr_cb)) });
}

/// A libev event loop.
///
/// Cloning a `Loop` gives another handle to the same loop. A loop belongs to the thread
/// that made it (`Loop` is `!Send`); watchers are made from it
/// ([`timer`](Loop::timer), [`io`](Loop::io), …) and keep it alive.
///
/// ```compile_fail
/// fn assert_send<T: Send>() {}
/// assert_send::<gevent_core::Loop>();
/// ```
pub struct Loop {
    pub(crate) inner: LoopRc,
}

impl Clone for Loop {
    fn clone(&self) -> Loop {
        Loop::from_inner(self.inner.clone())
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let n = self.inner.handles.get() - 1;
        self.inner.handles.set(n);
        if n == 0 {
            self.inner.release_detached();
        }
    }
}

impl fmt::Debug for Loop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Loop")
            .field("default", &self.inner.is_default)
            .field("backend", &Flags(self.backend()))
            .field("iteration", &self.iteration())
            .field("depth", &self.depth())
            .finish()
    }
}

impl Loop {
    pub(crate) fn from_inner(inner: LoopRc) -> Loop {
        inner.handles.set(inner.handles.get() + 1);
        Loop { inner }
    }

    /// A new loop with the backends libev recommends (`ev_loop_new(EVFLAG_AUTO)`).
    ///
    /// # Errors
    /// [`Error::LoopCreate`] or [`Error::System`] if libev cannot set the loop up
    /// (e.g. out of file descriptors).
    pub fn new() -> Result<Loop> {
        Loop::with_flags(Flags::AUTO)
    }

    /// A new loop with explicit flags (`ev_loop_new(flags)`).
    ///
    /// # Errors
    /// [`Error::BackendUnavailable`] if none of the requested backends exists here.
    pub fn with_flags(flags: Flags) -> Result<Loop> {
        install_syserr_cb();
        let flags = check_backends(flags)?;
        // SAFETY: plain constructor; null on failure.
        let raw = unsafe { ffi::ev_loop_new(flags.0) };
        Loop::wrap(raw, false, flags)
    }

    /// A new loop from gevent-style names: `Loop::with_backend("epoll")`,
    /// `Loop::with_backend("poll,signalfd")`.
    ///
    /// # Errors
    /// [`Error::UnknownBackend`] (listing the valid names) for a name libev does not
    /// know; [`Error::BackendUnavailable`] for one this kernel lacks.
    pub fn with_backend(names: &str) -> Result<Loop> {
        Loop::with_flags(names.parse()?)
    }

    /// libev's default loop: the only one that can watch child processes.
    ///
    /// It is one per process, and belongs to the first thread that asks for it until
    /// every handle to it (and every watcher on it) is dropped. Unlike plain libev, it
    /// does not reap child processes until a [`Child`](crate::Child) watcher is started,
    /// so `std::process::Child::wait` keeps working (see the crate docs).
    ///
    /// # Errors
    /// [`Error::DefaultLoopInUse`] if another thread owns the default loop;
    /// [`Error::LoopReleased`] from a cleanup callback while it is being destroyed.
    pub fn default_loop() -> Result<Loop> {
        Loop::default_loop_with_flags(Flags::AUTO)
    }

    /// [`Loop::default_loop`] with flags; the flags only matter when the default loop
    /// is created by this call.
    ///
    /// # Errors
    /// As [`Loop::default_loop`] and [`Loop::with_flags`].
    pub fn default_loop_with_flags(flags: Flags) -> Result<Loop> {
        if let Some(inner) = DEFAULT_LOOP.with(|d| d.borrow().upgrade()) {
            return Ok(Loop::from_inner(inner));
        }
        install_syserr_cb();
        let flags = check_backends(flags)?;
        let mut owner = DEFAULT_OWNER.lock().unwrap_or_else(|e| e.into_inner());
        match *owner {
            // Ours, yet no longer reachable through DEFAULT_LOOP: it is being destroyed
            // right now (we are in one of its cleanup callbacks).
            Some(t) if t == std::thread::current().id() => return Err(Error::LoopReleased),
            Some(_) => return Err(Error::DefaultLoopInUse),
            None => {}
        }
        // SAFETY: no other thread can be inside ev_default_loop (DEFAULT_OWNER lock).
        let raw = unsafe { ffi::ev_default_loop(flags.0) };
        if !raw.is_null() {
            // Child reaping is opt-in (started by the first Child watcher).
            // SAFETY: raw is the default loop, just created on this thread.
            unsafe { ffi::libev_sys_child_reaping_stop(raw) };
        }
        let lp = Loop::wrap(raw, true, flags)?;
        *owner = Some(std::thread::current().id());
        DEFAULT_LOOP.with(|d| *d.borrow_mut() = lp.inner.downgrade());
        Ok(lp)
    }

    fn wrap(raw: *mut ffi::ev_loop, is_default: bool, flags: Flags) -> Result<Loop> {
        if let Some(e) = take_syserr() {
            if !raw.is_null() {
                // SAFETY: created above and never shared.
                unsafe { ffi::ev_loop_destroy(raw) };
            }
            return Err(e);
        }
        if raw.is_null() {
            return Err(if flags.backends() != 0 {
                Error::BackendUnavailable(backend_names(flags.backends()))
            } else {
                Error::LoopCreate
            });
        }
        // The internal watchers start zeroed and are initialised with ev_*_init below,
        // after the Rc has fixed their address.
        let inner = LoopRc::new(LoopInner {
            raw,
            is_default,
            handles: Cell::new(0),
            releasing: Cell::new(false),
            panic: RefCell::new(None),
            error_handler: RefCell::new(None),
            handler_epoch: Cell::new(0),
            callbacks: RefCell::new(VecDeque::new()),
            callbacks_ref: Cell::new(false),
            callback_budget: Cell::new(Duration::from_millis(5)),
            prepare: UnsafeCell::new(crate::watcher::zeroed()),
            timer0: UnsafeCell::new(crate::watcher::zeroed()),
            detached: RefCell::new(Vec::new()),
            children: Cell::new(0),
            quiesced: Cell::new(false),
        });
        // SAFETY: `inner` lives in an Rc (stable address) for as long as the loop; the
        // last LoopRc destroys the loop before the memory goes.
        unsafe {
            ffi::ev_set_userdata(raw, inner.as_ptr() as *mut _);
            let p = inner.prepare.get();
            ffi::ev_prepare_init(p, Some(prepare_cb));
            ffi::ev_set_priority(p, ffi::EV_MAXPRI);
            ffi::ev_prepare_start(raw, p);
            // Internal watchers never keep the loop alive on their own.
            ffi::ev_unref(raw);
            ffi::ev_timer_init(inner.timer0.get(), Some(timer0_cb), 0.0, 0.0);
            ffi::ev_set_priority(inner.timer0.get(), ffi::EV_MAXPRI);
        }
        Ok(Loop::from_inner(inner))
    }

    /// The raw `struct ev_loop *`, for calling libev directly.
    pub fn as_raw(&self) -> *mut ffi::ev_loop {
        self.inner.raw
    }

    /// True for libev's default loop.
    pub fn is_default(&self) -> bool {
        self.inner.is_default
    }

    fn enter_run(&self, flags: c_int) -> Result<bool> {
        if self.inner.releasing.get() {
            return Err(Error::LoopReleased);
        }
        if self.inner.quiesced.get() {
            return Ok(false);
        }
        let prev = RUNNING.with(|r| r.replace(self.inner.raw));
        // SAFETY: live loop on its own thread; callbacks never unwind into C (every
        // trampoline catches panics).
        let more = unsafe { ffi::ev_run(self.inner.raw, flags) };
        RUNNING.with(|r| r.set(prev));
        let panic = self.inner.panic.borrow_mut().take();
        if let Some(p) = panic {
            std::panic::resume_unwind(p);
        }
        if let Some(e) = take_syserr() {
            return Err(e);
        }
        Ok(more != 0)
    }

    /// Runs the loop until no active, referenced watcher is left or
    /// [`break_loop`](Loop::break_loop) is called (`ev_run(loop, 0)`).
    ///
    /// # Errors
    /// [`Error::System`] if libev hit a system error (e.g. `epoll_wait` failing);
    /// [`Error::LoopReleased`] if called while the loop is being destroyed.
    ///
    /// # Panics
    /// If a callback panicked and no [error handler](Loop::set_error_handler) is set,
    /// the loop stops and the panic resumes here.
    pub fn run(&self) -> Result<()> {
        self.enter_run(0).map(|_| ())
    }

    /// One iteration, blocking until something happens (`EVRUN_ONCE`). Returns true if
    /// active watchers are left.
    ///
    /// # Errors
    /// As [`Loop::run`].
    pub fn run_once(&self) -> Result<bool> {
        self.enter_run(ffi::EVRUN_ONCE as c_int)
    }

    /// One iteration without blocking (`EVRUN_NOWAIT`). Returns true if active watchers
    /// are left.
    ///
    /// # Errors
    /// As [`Loop::run`].
    pub fn run_nowait(&self) -> Result<bool> {
        self.enter_run(ffi::EVRUN_NOWAIT as c_int)
    }

    /// Makes the running `run` return (`ev_break`).
    pub fn break_loop(&self, how: Break) {
        let h = match how {
            Break::One => ffi::EVBREAK_ONE,
            Break::All => ffi::EVBREAK_ALL,
            Break::Cancel => ffi::EVBREAK_CANCEL,
        };
        // SAFETY: live loop.
        unsafe { ffi::ev_break(self.inner.raw, h as c_int) }
    }

    /// The loop's idea of the current time, as a duration since the Unix epoch: the
    /// time of the last poll, which timers are relative to (`ev_now`).
    pub fn now(&self) -> Duration {
        // SAFETY: live loop.
        secs(unsafe { ffi::ev_now(self.inner.raw) })
    }

    /// Refreshes [`now`](Loop::now) from the clock (`ev_now_update`).
    pub fn update_now(&self) {
        // SAFETY: live loop.
        unsafe { ffi::ev_now_update(self.inner.raw) }
    }

    /// The backend in use (an `EVBACKEND_*` bit); see [`backend_names`].
    pub fn backend(&self) -> u32 {
        // SAFETY: live loop.
        unsafe { ffi::ev_backend(self.inner.raw) }
    }

    /// The backend's name, e.g. `"epoll"`.
    pub fn backend_name(&self) -> String {
        backend_names(self.backend())
    }

    /// How many times the loop polled for events (`ev_iteration`).
    pub fn iteration(&self) -> u32 {
        // SAFETY: live loop.
        unsafe { ffi::ev_iteration(self.inner.raw) }
    }

    /// How many `run` calls are nested right now (`ev_depth`).
    pub fn depth(&self) -> u32 {
        // SAFETY: live loop.
        unsafe { ffi::ev_depth(self.inner.raw) }
    }

    /// Watchers with events waiting for their callbacks (`ev_pending_count`).
    pub fn pending_count(&self) -> u32 {
        // SAFETY: live loop.
        unsafe { ffi::ev_pending_count(self.inner.raw) }
    }

    /// Adds a reference that keeps `run` from returning (`ev_ref`). Pair with
    /// [`unref`](Loop::unref).
    pub fn ref_(&self) {
        // SAFETY: live loop.
        unsafe { ffi::ev_ref(self.inner.raw) }
    }

    /// Drops a reference (`ev_unref`); see [`Watcher::set_ref`](crate::WatcherRef::set_ref)
    /// for the per-watcher form, which is what you usually want.
    pub fn unref(&self) {
        // SAFETY: live loop.
        unsafe { ffi::ev_unref(self.inner.raw) }
    }

    /// libev's `ev_verify` (`EV_VERIFY 1`, see `libev-sys/csrc/ev_config.h`). Its
    /// checks are `assert`s, and libev is built with `NDEBUG` by default, so it walks
    /// the loop's structures and checks nothing; it is kept for ports of C code. With
    /// the `libev-asserts` feature the checks run, and a failed one aborts the process.
    pub fn verify(&self) {
        // SAFETY: live loop.
        unsafe { ffi::ev_verify(self.inner.raw) }
    }

    /// Call in the child after `fork(2)` to re-create the kernel state (epoll fd,
    /// signal pipe) on its next iteration (`ev_loop_fork`).
    pub fn fork(&self) {
        // SAFETY: live loop.
        unsafe { ffi::ev_loop_fork(self.inner.raw) }
    }

    /// Suspends timers while the process is stopped, e.g. across a `SIGTSTP`
    /// (`ev_suspend`); pair with [`resume`](Loop::resume).
    pub fn suspend(&self) {
        // SAFETY: live loop.
        unsafe { ffi::ev_suspend(self.inner.raw) }
    }

    /// Resumes after [`suspend`](Loop::suspend) (`ev_resume`).
    pub fn resume(&self) {
        // SAFETY: live loop.
        unsafe { ffi::ev_resume(self.inner.raw) }
    }

    /// Lets libev batch io events for up to `d` (`ev_set_io_collect_interval`).
    pub fn set_io_collect_interval(&self, d: Duration) {
        // SAFETY: live loop.
        unsafe { ffi::ev_set_io_collect_interval(self.inner.raw, d.as_secs_f64()) }
    }

    /// Lets libev batch timer expiries for up to `d` (`ev_set_timeout_collect_interval`):
    /// each poll then waits at least `d` unless io arrives. An interval longer than
    /// libev's longest single wait (59.743 s) acts as that wait; a longer one would
    /// overflow the backend's timeout.
    pub fn set_timeout_collect_interval(&self, d: Duration) {
        let d = d.as_secs_f64().min(MAX_BLOCKTIME);
        // SAFETY: live loop.
        unsafe { ffi::ev_set_timeout_collect_interval(self.inner.raw, d) }
    }

    /// Installs gevent's `handle_error`: panics from callbacks go to `f` and the loop
    /// keeps running, instead of breaking the loop and resuming in `run`.
    pub fn set_error_handler(&self, f: impl FnMut(PanicPayload) + 'static) {
        self.inner.bump_handler_epoch();
        let old = self.inner.error_handler.replace(Some(Box::new(f)));
        // Dropped outside the borrow: its destructor may touch the handler again.
        drop(old);
    }

    /// Removes the error handler: panics break the loop again.
    pub fn clear_error_handler(&self) {
        self.inner.bump_handler_epoch();
        let old = self.inner.error_handler.take();
        drop(old);
    }

    /// Stops the loop for good, for a program or thread that is ending: callbacks
    /// queued with [`run_callback`](Loop::run_callback) are dropped unrun, and so are
    /// later ones; no watcher callback runs any more (events that come up are
    /// dropped); a `run` in progress returns at the end of its current iteration and
    /// later ones return at once. Watchers can still be stopped and dropped, and the
    /// loop is destroyed as usual when its last handle and watcher are gone.
    pub fn quiesce(&self) {
        self.inner.quiesced.set(true);
        self.inner.discard_callbacks();
        self.break_loop(Break::All);
    }

    /// True once [`quiesce`](Loop::quiesce) was called.
    pub fn is_quiesced(&self) -> bool {
        self.inner.quiesced.get()
    }

    /// Queues `f` to run at the loop's next prepare phase, before it next blocks
    /// (gevent's `loop.run_callback`). Callbacks run in FIFO order; the queue keeps the
    /// loop alive until it is drained.
    pub fn run_callback(&self, f: impl FnOnce() + 'static) -> Callback {
        self.inner.queue_callback(f)
    }

    /// Callbacks queued and not yet run or cancelled (cancelled ones count until the
    /// next drain removes them).
    pub fn pending_callbacks(&self) -> usize {
        self.inner.callbacks.borrow().len()
    }

    /// How long one drain of the callback queue may run before yielding to I/O
    /// (default 5 ms, gevent's switch interval). `Duration::MAX` means no limit: the
    /// drain runs until the queue is empty.
    pub fn set_callback_budget(&self, d: Duration) {
        self.inner.callback_budget.set(d);
    }

    pub(crate) fn link(&self) -> LoopLink {
        LoopLink::Strong(self.inner.clone())
    }
}

/// Refuses a backend set with nothing usable in it (libev would fail or fall back).
fn check_backends(flags: Flags) -> Result<Flags> {
    let wanted = flags.backends();
    if wanted != 0 && wanted & supported_backends().0 == 0 {
        return Err(Error::BackendUnavailable(backend_names(wanted)));
    }
    Ok(flags)
}

/// libev time (seconds as `f64`) to a `Duration`: negatives (and NaN) read as zero,
/// and times too large for a `Duration` (a timer set to `Duration::MAX`, which the
/// `f64` rounds up) as `Duration::MAX`, "never".
pub(crate) fn secs(t: f64) -> Duration {
    if t > 0.0 {
        Duration::try_from_secs_f64(t).unwrap_or(Duration::MAX)
    } else {
        Duration::ZERO
    }
}

/// libev's longest single wait in the backend (`MAX_BLOCKTIME` in ev.c). Every wait
/// libev computes stays below it, except one lengthened to the timeout collect
/// interval: that one goes to the backend's integer timeout unchecked.
const MAX_BLOCKTIME: f64 = 59.743;
