//! Raw greenlets: stackful coroutines with explicit `switch`, a parent, and `throw`,
//! as in Python's `greenlet` library.
//!
//! ## How a switch works
//!
//! Each greenlet but the thread's *main* one (which runs on the thread's own stack)
//! owns a stack from [`crate::greenlet::stack`]. A suspended greenlet is represented by the
//! `context::Context` that `jump_fcontext` returned when it last switched away: the
//! saved stack pointer, with the callee-saved registers pushed just below it.
//!
//! ```text
//!   greenlet A (running)                       greenlet B (suspended)
//!   ┌──────────────┐                           ┌──────────────┐
//!   │ A's frames   │  switch(B, msg):          │ B's frames   │
//!   │ switch_msg   │  1. msg -> TRANSFER       │ switch_msg   │ <- B.ctx
//!   └──────────────┘  2. CURRENT = B           └──────────────┘
//!                     3. B.ctx.resume(&A) ───────────► B returns from its own resume,
//!                                                      stores A's context into A.ctx,
//!                                                      takes msg from TRANSFER
//! ```
//!
//! `Transfer::data` carries a pointer to the greenlet that switched, so the resumed
//! side can store where to switch back to. A greenlet that starts for the first time
//! enters `entry`, which does the same and then runs the body.
//!
//! ## The entry discipline
//! The body runs inside `catch_unwind`: a panic never reaches the `extern "C"` entry
//! function or the `context` assembly (unwinding into either would abort or corrupt).
//! When the body is done the greenlet switches to its parent for the last time; its
//! `Rc` is parked in a thread-local (`DYING`) and the *receiving* side returns the
//! stack to the pool, so a stack is never freed by code running on it. Switching while
//! the thread is unwinding is refused ([`SwitchError::Unwinding`]): the unwinder's
//! state is per thread, so another greenlet's panic would be a double panic.
//!
//! ## Lifetime
//! A suspended greenlet keeps itself alive through the frames on its own stack. When
//! the last user handle of a started, unfinished greenlet is dropped, a
//! [`GreenletExit`] is thrown into it so that its destructors run, as Python's greenlet
//! does on garbage collection (unless the thread is unwinding, in which case it is
//! left suspended and its stack is leaked rather than freed under live frames).

pub mod stack;

use crate::ids::Ids;

use context::{Context, Transfer};
use stack::GreenletStack;
pub(crate) use stack::RunningInfo;
use std::any::Any;
use std::cell::{Cell, RefCell};
use std::fmt;
use std::mem::ManuallyDrop;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::rc::Rc;

/// A value passed by [`RawGreenlet::switch`].
pub type Value = Box<dyn Any>;

/// A panic payload, as `catch_unwind` returns it (the same type as gevent-core's).
pub type PanicPayload = gevent_core::PanicPayload;

/// The payload thrown into a greenlet to kill it. Unwinding with it runs the greenlet's
/// destructors; a greenlet that ends this way counts as killed, not as panicked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GreenletExit;

/// What travels with a switch.
pub(crate) enum Msg {
    Value(Value),
    Throw(PanicPayload),
    Finished(Result<Value, PanicPayload>),
    /// A code from whatever schedules greenlets (the hub's wake-up reasons), passed
    /// through without being looked at (no allocation).
    Signal(u8),
}

/// Why a switch did not happen, or how the target ended.
#[derive(Debug)]
#[non_exhaustive]
pub enum SwitchError {
    /// The thread is unwinding from a panic; switching now would mix two greenlets'
    /// unwinding state.
    Unwinding,
    /// The target greenlet has finished.
    Dead,
    /// The greenlet switched to finished by panicking; here is the payload.
    Panicked(PanicPayload),
    /// No stack could be mapped for the greenlet.
    NoStack(std::io::Error),
    /// The thread's greenlets were torn down (it is ending).
    ThreadExited,
}

impl fmt::Display for SwitchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SwitchError::Unwinding => {
                f.write_str("cannot switch greenlets while the thread is unwinding from a panic")
            }
            SwitchError::Dead => f.write_str("cannot switch to a greenlet that has finished"),
            SwitchError::Panicked(p) => write!(f, "the greenlet panicked: {}", panic_message(p)),
            SwitchError::NoStack(e) => write!(f, "cannot allocate a greenlet stack: {e}"),
            SwitchError::ThreadExited => f.write_str(
                "cannot switch greenlets: this thread's greenlets were torn down as it ended",
            ),
        }
    }
}

impl std::error::Error for SwitchError {}

/// Why [`RawGreenlet::set_parent`] refused: the new parent descends from the greenlet
/// (or is it), so the parent chain would loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParentCycle;

impl fmt::Display for ParentCycle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the new parent descends from the greenlet: the parent chain would loop")
    }
}

impl std::error::Error for ParentCycle {}

/// The message of a panic payload (`&str` or `String`), or a placeholder.
pub fn panic_message(p: &(dyn Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else if p.is::<GreenletExit>() {
        "GreenletExit".to_owned()
    } else {
        "<non-string panic payload>".to_owned()
    }
}

type Body = Box<dyn FnOnce(Value) -> Value>;

/// The state of one greenlet.
pub(crate) struct GreenletState {
    id: u64,
    /// Set when given; otherwise made (`Greenlet-<id>`) the first time it is asked for,
    /// so an unnamed spawn does not pay for formatting it.
    name: std::cell::OnceCell<Box<str>>,
    /// Where to resume it; `Some` exactly while it is suspended.
    ctx: Cell<Option<Context>>,
    /// `None` for the main greenlet and before the first switch.
    stack: RefCell<Option<GreenletStack>>,
    /// The stack's guard page, `[lo, hi)`, cached for the switch path.
    guard: Cell<(usize, usize)>,
    stack_size: usize,
    body: Cell<Option<Body>>,
    parent: RefCell<Option<Rc<GreenletState>>>,
    started: Cell<bool>,
    dead: Cell<bool>,
    is_main: bool,
    /// User-visible handles (`RawGreenlet`); internal references are not counted.
    handles: Cell<usize>,
    /// Owned by whatever schedules it (the hub): its lifetime is that layer's business,
    /// so dropping the last raw handle does not kill it.
    pub(crate) managed: Cell<bool>,
    /// The scheduling layer's own state for this greenlet (the hub's record): a
    /// pointer that layer set with the function that frees it, called when the
    /// greenlet is dropped. This layer never looks inside.
    ext: Cell<*const ()>,
    ext_drop: Cell<Option<ExtDrop>>,
}

/// Frees what [`GreenletState::set_extension`] stored.
pub(crate) type ExtDrop = unsafe fn(*const ());

impl Drop for GreenletState {
    fn drop(&mut self) {
        if let Some(free) = self.ext_drop.take() {
            // SAFETY: `set_extension`'s contract: `free` frees `ext`, once.
            unsafe { free(self.ext.replace(std::ptr::null())) };
        }
    }
}

impl GreenletState {
    pub(crate) fn id(&self) -> u64 {
        self.id
    }
    pub(crate) fn name(&self) -> &str {
        self.name
            .get_or_init(|| format!("Greenlet-{}", self.id).into_boxed_str())
    }
    /// The name if one was given (or already made), without making one: for the
    /// switch path, which must not format `Greenlet-<id>` on every switch.
    pub(crate) fn name_if_set(&self) -> Option<&str> {
        self.name.get().map(|n| &**n)
    }
    pub(crate) fn is_dead(&self) -> bool {
        self.dead.get()
    }
    pub(crate) fn is_started(&self) -> bool {
        self.started.get()
    }
    /// Maps its stack now rather than at its first switch, so that a stack that cannot
    /// be had is reported by whoever made the greenlet. Does nothing once it has one.
    pub(crate) fn reserve_stack(&self) -> std::io::Result<()> {
        let mut slot = self.stack.borrow_mut();
        if slot.is_none() && !self.started.get() {
            *slot = Some(stack::take(self.stack_size)?);
        }
        Ok(())
    }
    /// The scheduling layer's per-greenlet state, as it stored it (null if not yet).
    pub(crate) fn extension(&self) -> *const () {
        self.ext.get()
    }

    /// Stores the scheduling layer's per-greenlet state, once.
    ///
    /// # Safety
    /// `p` must stay valid until `free(p)` is called, which this greenlet does when it
    /// is dropped; nothing else may free it. The slot must be empty.
    pub(crate) unsafe fn set_extension(&self, p: *const (), free: ExtDrop) {
        debug_assert!(self.ext.get().is_null());
        self.ext.set(p);
        self.ext_drop.set(Some(free));
    }
    /// Its parent, to change (the hub re-parents greenlets it ends at thread exit).
    pub(crate) fn parent_mut(&self) -> std::cell::RefMut<'_, Option<Rc<GreenletState>>> {
        self.parent.borrow_mut()
    }
    /// Ends a greenlet that never started: its body is dropped unrun, a stack mapped
    /// for it goes back.
    pub(crate) fn kill_unstarted(&self) {
        if !self.started.get() {
            self.dead.set(true);
            drop(self.body.take());
            if let Some(s) = self.stack.borrow_mut().take() {
                stack::give_back(s);
            }
        }
    }
    fn running_info(&self) -> RunningInfo {
        let (guard_lo, guard_hi) = self.guard.get();
        RunningInfo {
            guard_lo,
            guard_hi,
            id: self.id,
            // Unnamed: the overflow report prints `Greenlet-<id>` itself.
            name: self
                .name
                .get()
                .map_or((std::ptr::null(), 0), |n| (n.as_ptr(), n.len())),
        }
    }
}

// ## Thread exit
//
// None of this module's thread-locals has a destructor (`ManuallyDrop`, or plain `Copy`
// cells), so each of them stays usable until the thread is gone, whatever order std
// destroys thread-locals in (it leaves that unspecified). The one destructor is
// `EXIT_GUARD`'s: it runs the exit hooks of the layers above (the hub unwinds its
// greenlets and releases its loop there), then frees this layer's own state, in that
// order. After it, the thread's greenlet machinery is `Exited`: switches are refused.
thread_local! {
    /// The switch path's state: plain cells, one thread-local access per switch.
    static TLS: Tls = const {
        Tls {
            current: Cell::new(std::ptr::null()),
            main: Cell::new(std::ptr::null()),
            phase: Cell::new(Phase::Running),
            hook: Cell::new(None),
        }
    };
    static NEXT_ID: Ids = const { Ids::new() };
    static EXIT_HOOKS: ManuallyDrop<RefCell<Vec<ExitHook>>> =
        const { ManuallyDrop::new(RefCell::new(Vec::new())) };
    static EXIT_GUARD: ExitGuard = const { ExitGuard };
}

/// This thread's greenlet machinery, as the switch path sees it.
struct Tls {
    /// The running greenlet, not owned: a running greenlet is kept alive by its own
    /// entry frame (and the main greenlet by `main`), so a switch touches no reference
    /// count. Null until the main greenlet's record exists.
    current: Cell<*const GreenletState>,
    /// The main greenlet's record, owned (`Rc::into_raw`), once it exists.
    main: Cell<*const GreenletState>,
    phase: Cell<Phase>,
    /// Called on every switch (see `set_switch_hook`).
    hook: Cell<Option<SwitchHook>>,
}

/// What a switch hands the greenlet it resumes. It lives in the switcher's frame, which
/// stays put while the switcher is suspended, and `Transfer::data` points at it, so
/// passing a message takes no thread-local and no allocation. The receiver moves
/// everything out of it first thing ([`receive`]) and it is never read again.
struct Mail {
    /// The greenlet that switched (its context is stored on arrival).
    from: *const GreenletState,
    msg: ManuallyDrop<Msg>,
    /// Set by a greenlet's last switch: the greenlet itself, so that the receiver can
    /// reclaim its stack (nothing runs on it any more) and drop the last reference the
    /// finished greenlet held to itself.
    dying: ManuallyDrop<Option<Rc<GreenletState>>>,
}

type ExitHook = Box<dyn FnOnce()>;

/// Where this thread's greenlet machinery is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Running,
    /// The thread is ending: the exit hooks run (switching still works).
    Exiting,
    /// Torn down: no switch is possible any more.
    Exited,
}

/// Its destructor is the thread's teardown (see "Thread exit" above).
struct ExitGuard;

impl Drop for ExitGuard {
    fn drop(&mut self) {
        thread_exit();
    }
}

/// Registers `hook` to run when this thread ends, before the greenlet machinery is torn
/// down (hooks run newest first). Returns `false`, dropping `hook`, if the thread is
/// already ending.
pub(crate) fn at_thread_exit(hook: impl FnOnce() + 'static) -> bool {
    if phase() != Phase::Running {
        return false;
    }
    // Touching the guard registers its destructor (once per thread).
    EXIT_GUARD.with(|_| ());
    EXIT_HOOKS.with(|h| h.borrow_mut().push(Box::new(hook)));
    true
}

/// True once this thread has begun to end (its exit hooks run, or have run).
pub(crate) fn thread_exiting() -> bool {
    phase() != Phase::Running
}

fn phase() -> Phase {
    TLS.with(|t| t.phase.get())
}

fn thread_exit() {
    TLS.with(|t| t.phase.set(Phase::Exiting));
    // The hooks switch greenlets: that needs the thread's own stack to be the one
    // running (`main`). If the thread ends from inside another greenlet
    // (`process::exit` there), leave everything as it is: the process is ending.
    let on_main = TLS.with(|t| t.current.get() == t.main.get());
    if on_main {
        while let Some(hook) = EXIT_HOOKS.with(|h| h.borrow_mut().pop()) {
            // A panic must not leave a thread-local destructor: std would abort.
            if let Err(p) = catch_unwind(AssertUnwindSafe(hook)) {
                log::error!(
                    "thread teardown: an exit hook panicked: {}",
                    panic_message(&*p)
                );
            }
        }
        drop(EXIT_HOOKS.with(|h| std::mem::take(&mut *h.borrow_mut())));
        let main = TLS.with(|t| {
            t.current.set(std::ptr::null());
            t.main.replace(std::ptr::null())
        });
        if !main.is_null() {
            // SAFETY: `main` came from `Rc::into_raw` and owned one count, which
            // nothing else will use: the pointer was just cleared.
            drop(unsafe { Rc::from_raw(main) });
        }
        stack::release_thread_pool();
    }
    TLS.with(|t| t.phase.set(Phase::Exited));
}

fn next_id() -> u64 {
    NEXT_ID.with(Ids::next)
}

/// The running greenlet (creating the main greenlet record on first use).
pub(crate) fn current_rc() -> Rc<GreenletState> {
    let p = current_ptr();
    // SAFETY: the running greenlet is alive (see `Tls::current`); the new count is
    // the caller's.
    unsafe {
        Rc::increment_strong_count(p);
        Rc::from_raw(p)
    }
}

/// The running greenlet's address, without touching its reference count (creating
/// the main greenlet record on first use).
pub(crate) fn current_ptr() -> *const GreenletState {
    let p = TLS.with(|t| t.current.get());
    if p.is_null() {
        make_main()
    } else {
        p
    }
}

/// The running greenlet, if this thread has begun to run greenlets and its state is
/// still reachable. Never creates the main greenlet's record and never panics: usable
/// from a panic hook, and during the thread's teardown.
pub(crate) fn try_current_rc() -> Option<Rc<GreenletState>> {
    let p = TLS.try_with(|t| t.current.get()).ok()?;
    if p.is_null() {
        return None;
    }
    // SAFETY: a running greenlet is alive while it runs (see `Tls::current`); the new
    // count is the caller's.
    unsafe {
        Rc::increment_strong_count(p);
        Some(Rc::from_raw(p))
    }
}

/// True for the thread's own stack (the main greenlet).
pub(crate) fn is_main(g: &GreenletState) -> bool {
    g.is_main
}

/// The main greenlet's record, made on the first use of greenlets on this thread.
#[cold]
fn make_main() -> *const GreenletState {
    let main = Rc::new(GreenletState {
        id: next_id(),
        name: std::cell::OnceCell::from(Box::<str>::from("main")),
        ctx: Cell::new(None),
        stack: RefCell::new(None),
        guard: Cell::new((0, 0)),
        stack_size: 0,
        body: Cell::new(None),
        parent: RefCell::new(None),
        started: Cell::new(true),
        dead: Cell::new(false),
        is_main: true,
        handles: Cell::new(0),
        managed: Cell::new(true),
        ext: Cell::new(std::ptr::null()),
        ext_drop: Cell::new(None),
    });
    if phase() == Phase::Exited {
        // Once torn down, the thread gets no new record: this one only answers the
        // question, and goes when its last user does.
        return Rc::into_raw(main);
    }
    EXIT_GUARD.with(|_| ());
    let p = Rc::into_raw(main);
    TLS.with(|t| {
        t.main.set(p);
        t.current.set(p);
    });
    p
}

/// The main greenlet of this thread: the root of every parent chain.
pub(crate) fn main_rc() -> Rc<GreenletState> {
    let mut g = current_rc();
    loop {
        let p = g.parent.borrow().clone();
        match p {
            Some(p) => g = p,
            None => return g,
        }
    }
}

/// Makes `g` the running greenlet.
#[inline]
fn set_current(g: &GreenletState) {
    TLS.with(|t| {
        t.current.set(g);
        if let Some(hook) = t.hook.get() {
            hook(g);
        }
    });
}

/// What the stack-overflow handler needs to know of the running greenlet. Safe to
/// call from a signal handler: reads plain thread-local cells and the running
/// greenlet's own fields (it is alive while it runs), allocates nothing.
pub(crate) fn running_for_signal() -> Option<RunningInfo> {
    let p = TLS.try_with(|t| t.current.get()).ok()?;
    // SAFETY: a non-null `current` is the running greenlet, alive while it runs (see
    // `Tls::current`); the fields read are not being written by this thread (it was
    // interrupted in greenlet code, not in a switch that updates them).
    (!p.is_null()).then(|| unsafe { (*p).running_info() })
}

/// Installs `hook` to be called on every switch of this thread with the greenlet
/// switched to (the blocking monitor watches switches this way); `None` removes it.
/// Returns the hook it replaces. The hook must not switch.
pub(crate) fn set_switch_hook(hook: Option<SwitchHook>) -> Option<SwitchHook> {
    TLS.with(|t| t.hook.replace(hook))
}

/// See [`set_switch_hook`].
pub(crate) type SwitchHook = fn(&GreenletState);

pub(crate) fn new_inner(
    body: Body,
    parent: Option<Rc<GreenletState>>,
    stack_size: usize,
    name: Option<String>,
) -> Rc<GreenletState> {
    let id = next_id();
    Rc::new(GreenletState {
        id,
        name: name
            .map(String::into_boxed_str)
            .map(std::cell::OnceCell::from)
            .unwrap_or_default(),
        ctx: Cell::new(None),
        stack: RefCell::new(None),
        guard: Cell::new((0, 0)),
        stack_size,
        body: Cell::new(Some(body)),
        parent: RefCell::new(Some(parent.unwrap_or_else(current_rc))),
        started: Cell::new(false),
        dead: Cell::new(false),
        is_main: false,
        handles: Cell::new(0),
        managed: Cell::new(false),
        ext: Cell::new(std::ptr::null()),
        ext_drop: Cell::new(None),
    })
}

/// Called first thing after every resume, with what `resume` returned: takes the
/// message out of the switcher's [`Mail`] and stores the switcher's context, or, after
/// a greenlet's last switch, reclaims its stack.
#[inline(always)]
fn receive(t: Transfer) -> Msg {
    let mail = t.data as *mut Mail;
    // SAFETY: `mail` is the switcher's `Mail`, in its frame, which stays put while it
    // is suspended; it is read once, here, before anything could resume the switcher.
    // The switcher is alive: a suspended greenlet keeps itself alive through its own
    // frames, a finished one through `dying` until we drop it below.
    unsafe {
        let msg = ManuallyDrop::take(&mut (*mail).msg);
        match ManuallyDrop::take(&mut (*mail).dying) {
            None => (*(*mail).from).ctx.set(Some(t.context)),
            Some(d) => {
                // Nothing runs on the finished greenlet's stack any more.
                if let Some(s) = d.stack.borrow_mut().take() {
                    stack::give_back(s);
                }
                drop(d);
            }
        }
        msg
    }
}

#[cold]
#[inline(never)]
fn start_context(target: &Rc<GreenletState>) -> Result<Context, SwitchError> {
    target.reserve_stack().map_err(SwitchError::NoStack)?;
    let slot = target.stack.borrow();
    let Some(s) = slot.as_ref() else {
        return Err(SwitchError::NoStack(std::io::Error::other("no stack")));
    };
    // SAFETY: the stack is fresh (or pooled and unused) and stays owned by the greenlet
    // until the receiver of its final switch gives it back.
    let ctx = unsafe { Context::new(s.stack(), entry) };
    target.guard.set(s.guard());
    drop(slot);
    target.started.set(true);
    Ok(ctx)
}

/// Switches to `target` carrying `msg`; returns the message this greenlet is resumed
/// with.
///
/// Inlined into every caller on purpose: `jump_fcontext` returns into the resumed
/// greenlet by an indirect jump, so the CPU's return-address predictions are those of
/// the greenlet that switched away, and each `ret` between the resume and the
/// resumed greenlet's own code is mispredicted. Each frame less on this path is one
/// misprediction less per switch.
#[inline(always)]
pub(crate) fn switch_msg(target: &Rc<GreenletState>, msg: Msg) -> Result<Msg, SwitchError> {
    if std::thread::panicking() {
        return Err(SwitchError::Unwinding);
    }
    let (cur_ptr, phase) = TLS.with(|t| (t.current.get(), t.phase.get()));
    if phase == Phase::Exited {
        return Err(SwitchError::ThreadExited);
    }
    let cur_ptr = if cur_ptr.is_null() {
        make_main()
    } else {
        cur_ptr
    };
    if std::ptr::eq(cur_ptr, Rc::as_ptr(target)) {
        return Ok(msg);
    }
    if target.dead.get() {
        return Err(SwitchError::Dead);
    }
    let ctx = if target.started.get() {
        // Not `ok_or`: its eagerly made error would be dropped on every switch.
        match target.ctx.take() {
            Some(ctx) => ctx,
            None => return Err(SwitchError::Dead),
        }
    } else {
        start_context(target)?
    };
    set_current(target);
    let mut mail = Mail {
        from: cur_ptr,
        msg: ManuallyDrop::new(msg),
        dying: ManuallyDrop::new(None),
    };
    // SAFETY: ctx is the target's saved context (or a fresh one on its own stack); the
    // resumed side takes `mail` before anything else, and we stay alive while
    // suspended (see `Tls::current`).
    let t = unsafe { ctx.resume(std::ptr::from_mut(&mut mail) as usize) };
    Ok(receive(t))
}

/// Splits what a switch returned: a scheduler code (which owns nothing) comes out as
/// itself, anything else as it was. On the hub's switch paths almost every result is a
/// code; taking it this way costs a compare, not a call into `Msg`'s drop glue.
#[inline(always)]
pub(crate) fn as_signal(r: Result<Msg, SwitchError>) -> Result<u8, Result<Msg, SwitchError>> {
    if let Ok(Msg::Signal(code)) = r {
        // Nothing to drop: a `Signal` owns no resources.
        std::mem::forget(r);
        Ok(code)
    } else {
        Err(r)
    }
}

extern "C" fn entry(t: Transfer) -> ! {
    let msg = receive(t);
    // Held for the whole life of the greenlet: it keeps the greenlet alive while it
    // runs and while it is suspended (see `Tls::current`).
    let me = current_rc();
    let body = me.body.take();
    let result = match (msg, body) {
        (Msg::Throw(p), _) => Err(p),
        (msg, Some(body)) => {
            let arg: Value = match msg {
                Msg::Value(v) | Msg::Finished(Ok(v)) => v,
                _ => Box::new(()),
            };
            catch_unwind(AssertUnwindSafe(move || body(arg)))
        }
        (_, None) => Ok(Box::new(()) as Value),
    };
    finish(me, result)
}

/// The last switch of a greenlet: to the first ancestor that is still alive.
fn finish(me: Rc<GreenletState>, result: Result<Value, PanicPayload>) -> ! {
    me.dead.set(true);
    let mut parent = me.parent.borrow().clone();
    while let Some(p) = parent.clone() {
        if !p.dead.get() {
            break;
        }
        parent = p.parent.borrow().clone();
    }
    let parent = parent.unwrap_or_else(main_rc);
    let ctx = if parent.started.get() {
        parent.ctx.take()
    } else {
        start_context(&parent).ok()
    };
    let Some(ctx) = ctx else {
        // No way back: an invariant is broken. Nothing sane can run on this stack.
        // Straight to stderr, not through `log`: the process aborts on the next line,
        // before a logger could write anything.
        eprintln!(
            "gevent: greenlet {} finished but its parent cannot be resumed",
            me.id
        );
        std::process::abort();
    };
    set_current(&parent);
    let from = Rc::as_ptr(&me);
    let mut mail = Mail {
        from,
        msg: ManuallyDrop::new(Msg::Finished(result)),
        dying: ManuallyDrop::new(Some(me)),
    };
    drop(parent);
    // SAFETY: every reference this frame held has been moved out (`me` into the mail,
    // `parent` is alive through its own frames or `main`); the receiver takes the mail
    // and reclaims our stack once we are off it.
    unsafe {
        ctx.resume(std::ptr::from_mut(&mut mail) as usize);
    }
    // A finished greenlet's context is never resumed.
    std::process::abort();
}

/// A handle to a greenlet.
///
/// ```
/// use gevent_hub::greenlet::{RawGreenlet, Value};
/// let g = RawGreenlet::new(|arg: Value| {
///     let n = *arg.downcast::<i32>().unwrap();
///     Box::new(n * 2) as Value
/// });
/// let back = g.switch(21).unwrap();
/// assert_eq!(*back.downcast::<i32>().unwrap(), 42);
/// assert!(g.is_dead());
/// ```
///
/// Greenlets belong to their thread:
/// ```compile_fail
/// fn assert_send<T: Send>() {}
/// assert_send::<gevent_hub::greenlet::RawGreenlet>();
/// ```
pub struct RawGreenlet {
    pub(crate) inner: Rc<GreenletState>,
}

impl RawGreenlet {
    pub(crate) fn from_inner(inner: Rc<GreenletState>) -> RawGreenlet {
        inner.handles.set(inner.handles.get() + 1);
        RawGreenlet { inner }
    }

    /// A new greenlet running `body`, whose parent is the current greenlet. It starts at
    /// the first `switch` to it, which passes `body` its argument; what `body` returns
    /// is passed to the parent when it finishes.
    pub fn new<R: Any>(body: impl FnOnce(Value) -> R + 'static) -> RawGreenlet {
        RawGreenlet::with_options(body, None, stack::DEFAULT_STACK_SIZE, None)
    }

    /// [`RawGreenlet::new`] with a parent, a stack size and a name.
    pub fn with_options<R: Any>(
        body: impl FnOnce(Value) -> R + 'static,
        parent: Option<&RawGreenlet>,
        stack_size: usize,
        name: Option<String>,
    ) -> RawGreenlet {
        let body: Body = Box::new(move |v| {
            // A body that already returns a `Value` is not boxed twice.
            let r: Value = Box::new(body(v));
            match r.downcast::<Value>() {
                Ok(inner) => *inner,
                Err(r) => r,
            }
        });
        RawGreenlet::from_inner(new_inner(
            body,
            parent.map(|p| p.inner.clone()),
            stack_size,
            name,
        ))
    }

    /// Switches to this greenlet, passing `value` (to its body if it has not started,
    /// else as the return value of the `switch` it is suspended in). Returns what this
    /// greenlet is switched back with: another greenlet's `switch` value, or the return
    /// value of a child that finished.
    ///
    /// # Errors
    /// [`SwitchError::Dead`] if it has finished; [`SwitchError::Unwinding`] during a
    /// panic; [`SwitchError::Panicked`] if the greenlet that switched back (a child
    /// finishing) panicked.
    ///
    /// # Panics
    /// If a greenlet [`throw`](RawGreenlet::throw)s into this one, the thrown payload
    /// unwinds from here.
    #[inline]
    pub fn switch(&self, value: impl Any) -> Result<Value, SwitchError> {
        let msg = switch_msg(&self.inner, Msg::Value(Box::new(value)))?;
        deliver(msg)
    }

    /// Raises `payload` (as a panic) in this greenlet at the point where it is suspended;
    /// an unstarted greenlet dies without running its body. Returns what this greenlet is
    /// then switched back with, as [`switch`](RawGreenlet::switch) does.
    ///
    /// # Errors
    /// As [`switch`](RawGreenlet::switch).
    pub fn throw(&self, payload: PanicPayload) -> Result<Value, SwitchError> {
        let msg = switch_msg(&self.inner, Msg::Throw(payload))?;
        deliver(msg)
    }

    /// The parent: resumed when this greenlet finishes.
    pub fn parent(&self) -> Option<RawGreenlet> {
        self.inner
            .parent
            .borrow()
            .clone()
            .map(RawGreenlet::from_inner)
    }

    /// Changes the parent. A parent chain must not loop back to this greenlet.
    ///
    /// # Errors
    /// [`ParentCycle`] if `parent` has this greenlet among its ancestors (or is it);
    /// the parent is then left as it was.
    pub fn set_parent(&self, parent: &RawGreenlet) -> Result<(), ParentCycle> {
        let mut p = Some(parent.inner.clone());
        while let Some(g) = p {
            if Rc::ptr_eq(&g, &self.inner) {
                return Err(ParentCycle);
            }
            p = g.parent.borrow().clone();
        }
        *self.inner.parent.borrow_mut() = Some(parent.inner.clone());
        Ok(())
    }

    /// True once the body has returned, panicked, or been killed.
    pub fn is_dead(&self) -> bool {
        self.inner.dead.get()
    }

    /// True once switched to for the first time.
    pub fn is_started(&self) -> bool {
        self.inner.started.get()
    }

    /// A per-thread unique id.
    pub fn id(&self) -> u64 {
        self.inner.id
    }

    /// The name (`Greenlet-<id>` unless given).
    pub fn name(&self) -> &str {
        self.inner.name()
    }

    /// True if both handles name the same greenlet.
    pub fn ptr_eq(&self, other: &RawGreenlet) -> bool {
        Rc::ptr_eq(&self.inner, &other.inner)
    }
}

#[inline]
fn deliver(msg: Msg) -> Result<Value, SwitchError> {
    match msg {
        Msg::Value(v) | Msg::Finished(Ok(v)) => Ok(v),
        Msg::Throw(p) => resume_unwind(p),
        Msg::Finished(Err(p)) if p.is::<GreenletExit>() => Ok(Box::new(GreenletExit)),
        Msg::Finished(Err(p)) => Err(SwitchError::Panicked(p)),
        Msg::Signal(code) => Ok(Box::new(code)),
    }
}

/// The running greenlet (`greenlet.getcurrent()`).
pub fn getcurrent() -> RawGreenlet {
    RawGreenlet::from_inner(current_rc())
}

impl Clone for RawGreenlet {
    fn clone(&self) -> RawGreenlet {
        RawGreenlet::from_inner(self.inner.clone())
    }
}

impl Drop for RawGreenlet {
    fn drop(&mut self) {
        let n = self.inner.handles.get() - 1;
        self.inner.handles.set(n);
        let g = &self.inner;
        if n == 0
            && g.started.get()
            && !g.dead.get()
            && !g.is_main
            && !g.managed.get()
            && !std::ptr::eq(Rc::as_ptr(g), current_ptr())
        {
            // Abandoned mid-way: unwind it so its destructors run, then come back here.
            if std::thread::panicking() {
                return;
            }
            let g = g.clone();
            *g.parent.borrow_mut() = Some(current_rc());
            let _ = switch_msg(&g, Msg::Throw(Box::new(GreenletExit)));
        }
    }
}

impl fmt::Debug for RawGreenlet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawGreenlet")
            .field("id", &self.inner.id)
            .field("name", &self.inner.name())
            .field("started", &self.inner.started.get())
            .field("dead", &self.inner.dead.get())
            .finish()
    }
}
