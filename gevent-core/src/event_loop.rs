//! [`Loop`]: one libev event loop, the state behind it, and how that state is freed.
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
//! The loop's state holds pieces that have modules of their own: the
//! [`run_callback`](Loop::run_callback) queue ([`crate::callbacks`]) and the ownership
//! of the default loop ([`crate::default_loop`]); libev's system errors reach `run`
//! through [`crate::syserr`].

use crate::callbacks::{Callback, CallbackQueue};
use crate::default_loop::{self, DefaultLoopOwner};
use crate::error::{Error, PanicPayload, Result};
use crate::flags::{backend_names, check_backends, Flags};
use crate::registry::Registry;
use crate::sys::{secs, EvRef};
use crate::syserr;
use libev_sys as ffi;
use std::cell::{Cell, RefCell};
use std::ffi::c_int;
use std::fmt;
use std::mem::ManuallyDrop;
use std::ops::Deref;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::{Rc, Weak};
use std::time::Duration;

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

/// libev's version, `(major, minor)`.
pub fn version() -> (i32, i32) {
    // SAFETY: getters of libev's build, without preconditions.
    unsafe { (ffi::ev_version_major(), ffi::ev_version_minor()) }
}

/// The state behind every [`Loop`] handle and watcher. It is libev's `userdata`.
pub(crate) struct LoopInner {
    pub(crate) raw: *mut ffi::ev_loop,
    is_default: bool,
    /// This thread's ownership of the default loop (only there), dropped after
    /// `ev_loop_destroy`.
    default_owner: Cell<Option<DefaultLoopOwner>>,
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
    callbacks: CallbackQueue,
    /// Detached watchers and the child-watcher count.
    pub(crate) watchers: Registry,
    /// Set by [`Loop::quiesce`]: no callback of this loop runs any more.
    pub(crate) quiesced: Cell<bool>,
}

impl LoopInner {
    /// # Safety
    /// `l` must be a loop created by this module (its userdata is a `LoopInner`) and
    /// still alive.
    pub(crate) unsafe fn from_raw<'a>(l: *mut ffi::ev_loop) -> &'a LoopInner {
        // SAFETY: the caller's contract, and rule 8: userdata is the LoopInner.
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
        // SAFETY: `self` is the loop's state, so the loop is alive (rules 4 and 8), on
        // this thread (rule 7).
        unsafe { ffi::ev_break(self.raw, ffi::EVBREAK_ALL as c_int) };
    }

    fn queue_callback<F: FnOnce() + 'static>(&self, f: F) -> Callback {
        if self.quiesced.get() {
            // Nothing runs on a quiesced loop: dropped unrun (the handle says so).
            return Callback::discarded(f);
        }
        self.callbacks.push(f)
    }

    fn queue_fn(&self, f: fn()) {
        if !self.quiesced.get() {
            self.callbacks.push_fn(f);
        }
    }

    /// Body of the internal prepare watcher.
    fn drain_callbacks(&self) {
        if !self.callbacks.has_queued() {
            return; // nothing was queued: the common case of a busy loop costs nothing
        }
        if self.quiesced.get() {
            self.callbacks.discard();
            return;
        }
        self.callbacks.drain(|p| self.handle_panic(p));
    }

    /// True while at least one `Loop` handle exists.
    pub(crate) fn has_handles(&self) -> bool {
        self.handles.get() > 0
    }

    /// The last `Loop` handle went away: stop and drop what only the loop kept alive.
    fn release_detached(&self) {
        self.watchers.release_detached();
        // Free the closures themselves, not just the queue's references: a `Callback`
        // handle would otherwise keep a closure that can never run alive (and pending).
        self.callbacks.discard();
    }
}

/// The callback queue's prepare watcher: drain it, with this loop's panic routing.
unsafe extern "C" fn prepare_cb(l: *mut ffi::ev_loop, _w: *mut ffi::ev_prepare, _revents: c_int) {
    // SAFETY: the internal prepare watcher exists only on loops made by `Loop::wrap`,
    // whose userdata is their LoopInner (rule 8), and libev calls it inside the loop.
    let inner = unsafe { LoopInner::from_raw(l) };
    inner.drain_callbacks();
}

impl LoopInner {
    /// Destroys the libev loop (`ev_loop_destroy`, which runs the cleanup watchers) and
    /// returns a panic one of their callbacks left behind. Called once, by the last
    /// [`LoopRc`], through a shared reference: the callbacks build their own.
    fn destroy(&self) -> Option<PanicPayload> {
        self.releasing.set(true);
        // SAFETY: rule 4: the caller is the last strong reference and `releasing` keeps
        // weak ones from upgrading, so no watcher but cleanup watchers (which hold a weak
        // link and are invoked by ev_loop_destroy) refers to this loop, and nothing can
        // start one. The queue's watchers were started by `wrap`.
        unsafe {
            self.callbacks.stop();
            // Deliver events still queued (fed to cleanup watchers, the only ones left):
            // ev_loop_destroy does so only when some cleanup watcher is active, and a
            // watcher left pending in a freed loop could not be stopped safely.
            if ffi::ev_pending_count(self.raw) != 0 {
                ffi::ev_invoke_pending(self.raw);
            }
            ffi::ev_loop_destroy(self.raw);
        }
        // Before a panic resumes, or the default loop could never be made again.
        drop(self.default_owner.take());
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
        // SAFETY: the Rc is taken out of the ManuallyDrop exactly once, here, and never
        // used again.
        drop(unsafe { ManuallyDrop::take(&mut self.0) });
        // A panic from a cleanup callback has nowhere to go but here.
        if let Some(p) = panic {
            if !std::thread::panicking() {
                std::panic::resume_unwind(p);
            }
        }
    }
}

/// A reference on a loop that keeps its [`run`](Loop::run) from returning: the RAII
/// form of [`Loop::ref_`]/[`Loop::unref`], made by [`Loop::hold`].
#[must_use = "the loop is held only while the guard lives"]
pub struct LoopRef {
    /// Dropped first: `ev_unref` runs while `_lp` still keeps the loop alive.
    _held: EvRef,
    _lp: LoopRc,
}

impl fmt::Debug for LoopRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoopRef").finish_non_exhaustive()
    }
}

thread_local! {
    /// This thread's default loop, while it has one.
    static DEFAULT_LOOP: RefCell<LoopWeak> = const { RefCell::new(LoopWeak::new()) };
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
#[must_use = "dropping the last Loop handle stops its detached watchers and drops its queued callbacks"]
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
        syserr::install();
        let flags = check_backends(flags)?;
        // SAFETY: a constructor without preconditions; null on failure.
        let raw = unsafe { ffi::ev_loop_new(flags.0) };
        Loop::wrap(raw, None, flags)
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
        syserr::install();
        let flags = check_backends(flags)?;
        let (raw, owner) = default_loop::create(flags)?;
        let lp = Loop::wrap(raw, Some(owner), flags)?;
        DEFAULT_LOOP.with(|d| *d.borrow_mut() = lp.inner.downgrade());
        Ok(lp)
    }

    /// The loop around `raw`, fresh from libev (null if libev failed); `owner` for the
    /// default loop.
    fn wrap(raw: *mut ffi::ev_loop, owner: Option<DefaultLoopOwner>, flags: Flags) -> Result<Loop> {
        if let Some(e) = syserr::take() {
            if !raw.is_null() {
                // SAFETY: just made by libev, and nothing else knows of it yet.
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
        // The callback queue's watchers are initialised below, once the Rc has fixed
        // their address.
        let inner = LoopRc::new(LoopInner {
            raw,
            is_default: owner.is_some(),
            default_owner: Cell::new(owner),
            handles: Cell::new(0),
            releasing: Cell::new(false),
            panic: RefCell::new(None),
            error_handler: RefCell::new(None),
            handler_epoch: Cell::new(0),
            callbacks: CallbackQueue::new(raw),
            watchers: Registry::default(),
            quiesced: Cell::new(false),
        });
        // SAFETY: rule 8: `inner` lives in an Rc (stable address) for as long as the
        // loop, since the last LoopRc destroys the loop before the memory goes; the
        // queue inside it therefore stays put until `destroy` stops its watchers.
        unsafe {
            ffi::ev_set_userdata(raw, inner.as_ptr() as *mut _);
            inner.callbacks.start(prepare_cb);
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
        let running = syserr::Running::enter(self.inner.raw);
        // SAFETY: this handle keeps the loop alive (rule 4), on its own thread (rule 7),
        // and not being destroyed (checked above); no callback unwinds into C (rule 5).
        let more = unsafe { ffi::ev_run(self.inner.raw, flags) };
        drop(running);
        let panic = self.inner.panic.borrow_mut().take();
        if let Some(p) = panic {
            std::panic::resume_unwind(p);
        }
        if let Some(e) = syserr::take() {
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
        // SAFETY: this handle keeps the loop alive (rule 4), on its own thread (rule 7).
        unsafe { ffi::ev_break(self.inner.raw, h as c_int) }
    }

    /// The loop's idea of the current time, as a duration since the Unix epoch: the
    /// time of the last poll, which timers are relative to (`ev_now`).
    pub fn now(&self) -> Duration {
        // SAFETY: this handle keeps the loop alive (rule 4), on its own thread (rule 7).
        secs(unsafe { ffi::ev_now(self.inner.raw) })
    }

    /// Refreshes [`now`](Loop::now) from the clock (`ev_now_update`).
    pub fn update_now(&self) {
        // SAFETY: this handle keeps the loop alive (rule 4), on its own thread (rule 7).
        unsafe { ffi::ev_now_update(self.inner.raw) }
    }

    /// The backend in use (an `EVBACKEND_*` bit); see [`backend_names`].
    pub fn backend(&self) -> u32 {
        // SAFETY: this handle keeps the loop alive (rule 4), on its own thread (rule 7).
        unsafe { ffi::ev_backend(self.inner.raw) }
    }

    /// The backend's name, e.g. `"epoll"`.
    pub fn backend_name(&self) -> String {
        backend_names(self.backend())
    }

    /// How many times the loop polled for events (`ev_iteration`).
    pub fn iteration(&self) -> u32 {
        // SAFETY: this handle keeps the loop alive (rule 4), on its own thread (rule 7).
        unsafe { ffi::ev_iteration(self.inner.raw) }
    }

    /// How many `run` calls are nested right now (`ev_depth`).
    pub fn depth(&self) -> u32 {
        // SAFETY: this handle keeps the loop alive (rule 4), on its own thread (rule 7).
        unsafe { ffi::ev_depth(self.inner.raw) }
    }

    /// Watchers with events waiting for their callbacks (`ev_pending_count`).
    pub fn pending_count(&self) -> u32 {
        // SAFETY: this handle keeps the loop alive (rule 4), on its own thread (rule 7).
        unsafe { ffi::ev_pending_count(self.inner.raw) }
    }

    /// Keeps [`run`](Loop::run) from returning until the guard is dropped: `ev_ref` now,
    /// `ev_unref` on drop. The guard can be stored anywhere on this thread; it keeps
    /// the loop itself alive as a watcher does, but is not a `Loop` handle.
    ///
    /// ```
    /// # use gevent_core::Loop;
    /// let lp = Loop::new()?;
    /// let busy = lp.hold();
    /// assert!(lp.run_nowait()?); // held: there is still something to wait for
    /// drop(busy);
    /// lp.run()?; // returns: nothing left
    /// # Ok::<(), gevent_core::Error>(())
    /// ```
    pub fn hold(&self) -> LoopRef {
        LoopRef {
            // SAFETY: this handle keeps the loop alive (rule 4), on its own thread (rule
            // 7); the guard's own strong reference keeps it alive until the EvRef goes.
            _held: unsafe { EvRef::new(self.inner.raw) },
            _lp: self.inner.clone(),
        }
    }

    /// Adds a reference that keeps `run` from returning (`ev_ref`). Pair with
    /// [`unref`](Loop::unref), or let [`hold`](Loop::hold) pair them.
    pub fn ref_(&self) {
        // SAFETY: this handle keeps the loop alive (rule 4), on its own thread (rule 7).
        unsafe { ffi::ev_ref(self.inner.raw) }
    }

    /// Drops a reference (`ev_unref`); see [`Watcher::set_ref`](crate::WatcherCore::set_ref)
    /// for the per-watcher form, which is what you usually want.
    pub fn unref(&self) {
        // SAFETY: this handle keeps the loop alive (rule 4), on its own thread (rule 7).
        unsafe { ffi::ev_unref(self.inner.raw) }
    }

    /// libev's `ev_verify` (`EV_VERIFY 1`, see `libev-sys/csrc/ev_config.h`). Its
    /// checks are `assert`s, and libev is built with `NDEBUG` by default, so it walks
    /// the loop's structures and checks nothing; it is kept for ports of C code. With
    /// the `libev-asserts` feature the checks run, and a failed one aborts the process.
    pub fn verify(&self) {
        // SAFETY: this handle keeps the loop alive (rule 4), on its own thread (rule 7).
        unsafe { ffi::ev_verify(self.inner.raw) }
    }

    /// Call in the child after `fork(2)` to re-create the kernel state (epoll fd,
    /// signal pipe) on its next iteration (`ev_loop_fork`).
    pub fn fork(&self) {
        // SAFETY: this handle keeps the loop alive (rule 4), on its own thread (rule 7).
        unsafe { ffi::ev_loop_fork(self.inner.raw) }
    }

    /// Suspends timers while the process is stopped, e.g. across a `SIGTSTP`
    /// (`ev_suspend`); pair with [`resume`](Loop::resume).
    pub fn suspend(&self) {
        // SAFETY: this handle keeps the loop alive (rule 4), on its own thread (rule 7).
        unsafe { ffi::ev_suspend(self.inner.raw) }
    }

    /// Resumes after [`suspend`](Loop::suspend) (`ev_resume`).
    pub fn resume(&self) {
        // SAFETY: this handle keeps the loop alive (rule 4), on its own thread (rule 7).
        unsafe { ffi::ev_resume(self.inner.raw) }
    }

    /// Lets libev batch io events for up to `d` (`ev_set_io_collect_interval`).
    pub fn set_io_collect_interval(&self, d: Duration) {
        // SAFETY: this handle keeps the loop alive (rule 4), on its own thread (rule 7).
        unsafe { ffi::ev_set_io_collect_interval(self.inner.raw, d.as_secs_f64()) }
    }

    /// Lets libev batch timer expiries for up to `d` (`ev_set_timeout_collect_interval`):
    /// each poll then waits at least `d` unless io arrives. An interval longer than
    /// libev's longest single wait (59.743 s) acts as that wait; a longer one would
    /// overflow the backend's timeout.
    pub fn set_timeout_collect_interval(&self, d: Duration) {
        let d = d.as_secs_f64().min(MAX_BLOCKTIME);
        // SAFETY: this handle keeps the loop alive (rule 4), on its own thread (rule 7).
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
        self.inner.callbacks.discard();
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

    /// [`run_callback`](Loop::run_callback) for a plain function: queued without an
    /// allocation, in the same FIFO order, but with no handle (it cannot be cancelled).
    /// For a callback queued again and again (a scheduler's "drain my ready queue").
    pub fn run_callback_fn(&self, f: fn()) {
        self.inner.queue_fn(f);
    }

    /// Callbacks queued and not yet run or cancelled (cancelled ones count until the
    /// next drain removes them).
    pub fn pending_callbacks(&self) -> usize {
        self.inner.callbacks.len()
    }

    /// How long one drain of the callback queue may run before yielding to I/O
    /// (default 5 ms, gevent's switch interval). `Duration::MAX` means no limit: the
    /// drain runs until the queue is empty.
    pub fn set_callback_budget(&self, d: Duration) {
        self.inner.callbacks.set_budget(d);
    }
}

/// libev's longest single wait in the backend (`MAX_BLOCKTIME` in ev.c). Every wait
/// libev computes stays below it, except one lengthened to the timeout collect
/// interval: that one goes to the backend's integer timeout unchecked.
const MAX_BLOCKTIME: f64 = 59.743;
