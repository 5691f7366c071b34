//! gevent's greenlet API on the hub: `spawn`, `join`, `kill`, `link`, `joinall`,
//! `killall`, `wait`/`iwait`, `sleep`, `idle`.
//!
//! A spawned greenlet's parent is the hub; its first switch is queued with
//! `loop.run_callback`, so it starts at the hub's next prepare phase. It runs whether
//! or not its [`Greenlet`] handle is kept; the handle is how to get its result.

use crate::error::{Error, Result};
use crate::greenlet::{self, GInner, GreenletExit, Msg, PanicPayload};
use crate::hub::{get_hub, throw_into, wait_until, Wait, Waker, WAKE_START};
use crate::stack::DEFAULT_STACK_SIZE;
use std::cell::{Cell, RefCell};
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe, Location};
use std::rc::Rc;
use std::time::Duration;

/// How a greenlet ended, as links see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The body returned.
    Successful,
    /// The body panicked; the panic's message.
    Panicked(String),
    /// It was killed (`GreenletExit`), possibly before it started.
    Killed,
}

/// What a [`link`](Greenlet::link) callback is told about the greenlet that finished.
#[derive(Debug, Clone)]
pub struct GreenletInfo {
    /// Its id.
    pub id: u64,
    /// Its name.
    pub name: String,
    /// How it ended.
    pub outcome: Outcome,
}

/// Why [`Greenlet::join`] has no value to return.
#[derive(Debug)]
#[non_exhaustive]
pub enum JoinError {
    /// The greenlet panicked; the payload, for `resume_unwind` or inspection.
    Panicked(PanicPayload),
    /// The greenlet was killed.
    Killed,
    /// Waiting itself failed (would block forever, called in the hub, …).
    Wait(Error),
}

impl fmt::Display for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JoinError::Panicked(p) => write!(
                f,
                "the greenlet panicked: {}",
                greenlet::panic_message(&**p)
            ),
            JoinError::Killed => f.write_str("the greenlet was killed"),
            JoinError::Wait(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for JoinError {}

impl From<Error> for JoinError {
    fn from(e: Error) -> JoinError {
        JoinError::Wait(e)
    }
}

type Link = Box<dyn FnOnce(&GreenletInfo)>;

/// The part of a greenlet's state that does not depend on its value type. Until the
/// greenlet starts, its scheduled start (a queued callback, or spawn_later's timer)
/// holds it; once running, the body does: links fire and joiners wake even if every
/// handle was dropped. The value lives in [`State`], which the body holds weakly.
/// Nothing on the heap points back at the start, so a greenlet whose start never
/// happens (its thread exited first) is freed with the loop's queue, not leaked.
struct Core {
    raw: Rc<GInner>,
    /// `spawn_later`'s start timer (owned by the loop), so a kill can stop it rather
    /// than keep the loop alive for a greenlet that will never start.
    start_timer: RefCell<Option<gevent_core::WeakWatcher<gevent_core::kind::TimerKind>>>,
    finished: Cell<bool>,
    outcome: RefCell<Option<Outcome>>,
    waiters: RefCell<Vec<Waker>>,
    links: RefCell<Vec<Link>>,
    spawned_at: &'static Location<'static>,
}

/// What a body holds of its greenlet before it runs: both weakly (see [`Core`]).
type BodyLinks<T> = (std::rc::Weak<Core>, std::rc::Weak<State<T>>);

struct State<T> {
    core: Rc<Core>,
    value: RefCell<Option<std::result::Result<T, JoinError>>>,
}

impl Core {
    fn info(&self) -> GreenletInfo {
        GreenletInfo {
            id: self.raw.id(),
            name: self.raw.name().to_owned(),
            outcome: self.outcome.borrow().clone().unwrap_or(Outcome::Killed),
        }
    }

    /// Marks the greenlet finished, wakes joiners and queues the links.
    fn finish(&self, outcome: Outcome) {
        if self.finished.replace(true) {
            return;
        }
        *self.outcome.borrow_mut() = Some(outcome);
        for w in self.waiters.take() {
            w.wake();
        }
        let links = self.links.take();
        if !links.is_empty() {
            let info = self.info();
            get_hub().get_loop().run_callback(move || {
                for l in links {
                    l(&info);
                }
            });
        }
    }

    fn subscribe(&self, w: Waker) {
        let mut ws = self.waiters.borrow_mut();
        if ws.len() >= 16 {
            ws.retain(Waker::is_valid);
        }
        ws.push(w);
    }
}

/// A greenlet spawned on this thread's hub, with its result of type `T`.
///
/// Greenlets belong to their thread:
/// ```compile_fail
/// fn assert_send<T: Send>() {}
/// assert_send::<gevent_hub::Greenlet<()>>();
/// ```
pub struct Greenlet<T> {
    state: Rc<State<T>>,
}

impl<T> fmt::Debug for Greenlet<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.state.core;
        f.debug_struct("Greenlet")
            .field("id", &c.raw.id())
            .field("name", &c.raw.name())
            .field("started", &c.raw.is_started())
            .field("ready", &c.finished.get())
            .field("spawned_at", &format_args!("{}", c.spawned_at))
            .finish()
    }
}

/// Spawn options, std-style: `Builder::new().name("worker").stack_size(1 << 20).spawn(f)`.
#[derive(Debug, Default)]
pub struct Builder {
    name: Option<String>,
    stack_size: Option<usize>,
}

impl Builder {
    /// Default options.
    pub fn new() -> Builder {
        Builder::default()
    }
    /// Names the greenlet (shown in diagnostics; default `Greenlet-<id>`).
    pub fn name(mut self, name: impl Into<String>) -> Builder {
        self.name = Some(name.into());
        self
    }
    /// Virtual size of its stack (default 256 KiB, committed lazily).
    pub fn stack_size(mut self, size: usize) -> Builder {
        self.stack_size = Some(size);
        self
    }

    /// Spawns `f` on this thread's hub; it starts at the hub's next callback phase.
    ///
    /// # Errors
    /// The hub could not be created.
    #[track_caller]
    pub fn spawn<T: 'static>(self, f: impl FnOnce() -> T + 'static) -> Result<Greenlet<T>> {
        let g = self.build(f, Location::caller())?;
        let core = g.state.core.clone();
        get_hub().get_loop().run_callback(move || start(&core));
        Ok(g)
    }

    /// Spawns `f` to start after `delay`.
    ///
    /// # Errors
    /// The hub could not be created.
    #[track_caller]
    pub fn spawn_later<T: 'static>(
        self,
        delay: Duration,
        f: impl FnOnce() -> T + 'static,
    ) -> Result<Greenlet<T>> {
        let g = self.build(f, Location::caller())?;
        let t = get_hub().timer_from_now(delay);
        let core = g.state.core.clone();
        t.start(move |_, _| start(&core))?;
        *g.state.core.start_timer.borrow_mut() = Some(t.detach_weak());
        Ok(g)
    }

    fn build<T: 'static>(
        self,
        f: impl FnOnce() -> T + 'static,
        at: &'static Location<'static>,
    ) -> Result<Greenlet<T>> {
        let hub = crate::hub::try_get_hub()?;
        // The body reaches its core and its value's state through weak references (see
        // `Core`); it upgrades the core as it starts, while the start holds it.
        let cell: Rc<RefCell<Option<BodyLinks<T>>>> = Rc::new(RefCell::new(None));
        let cell2 = cell.clone();
        let body = move |_v: greenlet::Value| -> greenlet::Value {
            let links = cell2.borrow_mut().take();
            let Some(core) = links.as_ref().and_then(|(c, _)| c.upgrade()) else {
                return Box::new(());
            };
            let r = catch_unwind(AssertUnwindSafe(f));
            let st = links.and_then(|(_, st)| st.upgrade());
            let outcome = match r {
                Ok(v) => {
                    if let Some(st) = &st {
                        *st.value.borrow_mut() = Some(Ok(v));
                    }
                    Outcome::Successful
                }
                Err(p) if p.is::<GreenletExit>() => {
                    if let Some(st) = &st {
                        *st.value.borrow_mut() = Some(Err(JoinError::Killed));
                    }
                    Outcome::Killed
                }
                Err(p) => {
                    let msg = greenlet::panic_message(&*p);
                    if let Some(st) = &st {
                        *st.value.borrow_mut() = Some(Err(JoinError::Panicked(p)));
                    }
                    Outcome::Panicked(msg)
                }
            };
            drop(st);
            core.finish(outcome);
            Box::new(())
        };
        let raw = greenlet::new_inner(
            Box::new(body),
            Some(hub_raw(&hub)),
            self.stack_size.unwrap_or(DEFAULT_STACK_SIZE),
            self.name,
        );
        raw.spawned_at.set(Some(at));
        raw.managed.set(true);
        let core = Rc::new(Core {
            raw,
            start_timer: RefCell::new(None),
            finished: Cell::new(false),
            outcome: RefCell::new(None),
            waiters: RefCell::new(Vec::new()),
            links: RefCell::new(Vec::new()),
            spawned_at: at,
        });
        let state = Rc::new(State {
            core: core.clone(),
            value: RefCell::new(None),
        });
        *cell.borrow_mut() = Some((Rc::downgrade(&core), Rc::downgrade(&state)));
        Ok(Greenlet { state })
    }
}

fn hub_raw(hub: &crate::hub::Hub) -> Rc<GInner> {
    hub.raw_greenlet()
}

/// The scheduled first switch into a greenlet (skipped if it was killed meanwhile).
fn start(core: &Rc<Core>) {
    drop(core.start_timer.take());
    let raw = &core.raw;
    if !raw.is_dead() && !raw.is_started() {
        let _ = greenlet::switch_msg(raw, Msg::Hub(WAKE_START));
    }
}

/// Spawns `f` as a new greenlet on this thread's hub (gevent's `spawn`).
///
/// # Panics
/// If this thread's hub cannot be created (libev cannot make a loop).
#[track_caller]
pub fn spawn<T: 'static>(f: impl FnOnce() -> T + 'static) -> Greenlet<T> {
    Builder::new()
        .spawn(f)
        .unwrap_or_else(|e| panic!("gevent: spawn failed: {e}"))
}

/// Spawns `f` to start after `delay` (gevent's `spawn_later`).
///
/// # Panics
/// If this thread's hub cannot be created.
#[track_caller]
pub fn spawn_later<T: 'static>(delay: Duration, f: impl FnOnce() -> T + 'static) -> Greenlet<T> {
    Builder::new()
        .spawn_later(delay, f)
        .unwrap_or_else(|e| panic!("gevent: spawn failed: {e}"))
}

impl<T> Greenlet<T> {
    fn core(&self) -> &Core {
        &self.state.core
    }

    /// Its per-thread unique id.
    pub fn id(&self) -> u64 {
        self.core().raw.id()
    }

    /// Its name.
    pub fn name(&self) -> &str {
        self.core().raw.name()
    }

    /// Where it was spawned (file:line), for diagnostics.
    pub fn spawned_at(&self) -> &'static Location<'static> {
        self.core().spawned_at
    }

    /// True once it has finished (returned, panicked or been killed).
    pub fn ready(&self) -> bool {
        self.core().finished.get()
    }

    /// Alias of [`ready`](Greenlet::ready), gevent's `dead`.
    pub fn dead(&self) -> bool {
        self.ready()
    }

    /// True if it finished by returning.
    pub fn successful(&self) -> bool {
        matches!(*self.core().outcome.borrow(), Some(Outcome::Successful))
    }

    /// True once its body has begun running.
    pub fn started(&self) -> bool {
        self.core().raw.is_started()
    }

    /// How it ended, once it has.
    pub fn outcome(&self) -> Option<Outcome> {
        self.core().outcome.borrow().clone()
    }

    /// Waits for it to finish and returns its value, or how it failed.
    ///
    /// # Errors
    /// [`JoinError::Panicked`] with the panic payload, [`JoinError::Killed`], or
    /// [`JoinError::Wait`] if waiting failed (e.g. it waits on something nobody will
    /// ever provide: [`Error::WouldBlockForever`]).
    pub fn join(self) -> std::result::Result<T, JoinError> {
        self.wait(None)?;
        self.take()
    }

    /// Waits up to `timeout` for it to finish; returns whether it did.
    ///
    /// # Errors
    /// As for any wait: [`Error::WouldBlockForever`], [`Error::BlockingInHub`].
    pub fn join_timeout(&self, timeout: Duration) -> Result<bool> {
        self.wait(Some(timeout))
    }

    fn wait(&self, timeout: Option<Duration>) -> Result<bool> {
        let core = self.core();
        wait_until(
            "a greenlet to finish (join)",
            timeout,
            || core.finished.get(),
            |w| core.subscribe(w),
        )
    }

    /// The result of a finished greenlet (once; later calls report it as killed).
    fn take(&self) -> std::result::Result<T, JoinError> {
        self.state
            .value
            .borrow_mut()
            .take()
            .unwrap_or(Err(JoinError::Killed))
    }

    /// Waits for it to finish and returns a copy of its value (gevent's `get`).
    ///
    /// # Errors
    /// As [`join`](Greenlet::join); a panic is reported by its message.
    pub fn get(&self) -> std::result::Result<T, JoinError>
    where
        T: Clone,
    {
        self.wait(None)?;
        match &*self.state.value.borrow() {
            Some(Ok(v)) => Ok(v.clone()),
            Some(Err(JoinError::Panicked(p))) => {
                Err(JoinError::Panicked(Box::new(greenlet::panic_message(&**p))))
            }
            _ => Err(JoinError::Killed),
        }
    }

    /// Kills it without waiting: an unstarted greenlet never runs its body; a started
    /// one gets [`GreenletExit`] raised at its blocking point (its destructors run), as
    /// soon as the hub runs. Killing a finished greenlet does nothing.
    pub fn kill_nowait(&self) {
        kill_core(self.core());
    }

    /// Kills it and waits until it has finished.
    ///
    /// # Errors
    /// [`Error::BlockingInHub`] in the hub (use [`kill_nowait`](Greenlet::kill_nowait)
    /// there), or other wait errors.
    pub fn kill(&self) -> Result<()> {
        self.kill_nowait();
        self.wait(None).map(|_| ())
    }

    /// Kills it and waits up to `timeout`; returns whether it finished.
    ///
    /// # Errors
    /// As [`kill`](Greenlet::kill).
    pub fn kill_timeout(&self, timeout: Duration) -> Result<bool> {
        self.kill_nowait();
        self.wait(Some(timeout))
    }

    /// Calls `f` once, in the hub, after it finishes (at once, queued, if it already
    /// has). Links run in the order they were added.
    pub fn link(&self, f: impl FnOnce(&GreenletInfo) + 'static) {
        let core = self.core();
        if core.finished.get() {
            let info = core.info();
            get_hub().get_loop().run_callback(move || f(&info));
        } else {
            core.links.borrow_mut().push(Box::new(f));
        }
    }
}

fn kill_core(core: &Core) {
    if core.finished.get() {
        return;
    }
    let raw = &core.raw;
    if !raw.is_started() {
        // Its body never runs; drop it (and what it captured) now, and its start timer.
        raw.kill_unstarted();
        if let Some(t) = core.start_timer.take() {
            t.stop();
        }
        core.finish(Outcome::Killed);
        return;
    }
    throw_into(raw, Box::new(GreenletExit));
}

/// A greenlet of any value type, for [`joinall`] and [`killall`].
pub trait AnyGreenlet: Waitable {
    /// Kills it without waiting.
    fn kill_nowait(&self);
    /// How it ended, once it has.
    fn outcome(&self) -> Option<Outcome>;
    /// Its name.
    fn name(&self) -> &str;
}

impl<T> AnyGreenlet for Greenlet<T> {
    fn kill_nowait(&self) {
        Greenlet::kill_nowait(self)
    }
    fn outcome(&self) -> Option<Outcome> {
        Greenlet::outcome(self)
    }
    fn name(&self) -> &str {
        Greenlet::name(self)
    }
}

/// Something a greenlet can wait for with [`wait`] and [`iwait`].
pub trait Waitable {
    /// True once it is ready (a greenlet has finished, an event is set, …).
    fn is_ready(&self) -> bool;
    /// Registers a waker to be woken when it becomes ready.
    fn subscribe(&self, w: Waker);
}

impl<T> Waitable for Greenlet<T> {
    fn is_ready(&self) -> bool {
        self.ready()
    }
    fn subscribe(&self, w: Waker) {
        self.core().subscribe(w)
    }
}

/// Waits for all `greenlets` to finish (up to `timeout`); returns whether they all did.
/// With `raise_error`, returns at the first one that panicked, with
/// [`Error::GreenletFailed`].
///
/// # Errors
/// Wait errors, or the first failure with `raise_error`.
pub fn joinall(
    greenlets: &[&dyn AnyGreenlet],
    timeout: Option<Duration>,
    raise_error: bool,
) -> Result<bool> {
    let failed = || {
        greenlets.iter().find_map(|g| match g.outcome() {
            Some(Outcome::Panicked(m)) => Some(Error::GreenletFailed(format!("{}: {m}", g.name()))),
            _ => None,
        })
    };
    let all = || greenlets.iter().all(|g| g.is_ready());
    let done = wait_until(
        "greenlets to finish (joinall)",
        timeout,
        || all() || (raise_error && failed().is_some()),
        |w| {
            for g in greenlets.iter().filter(|g| !g.is_ready()) {
                g.subscribe(w.clone());
            }
        },
    )?;
    if raise_error {
        if let Some(e) = failed() {
            return Err(e);
        }
    }
    Ok(done && all())
}

/// Kills all `greenlets` and, unless `block` is false, waits up to `timeout` for them
/// to finish; returns whether they all did.
///
/// # Errors
/// Wait errors.
pub fn killall(
    greenlets: &[&dyn AnyGreenlet],
    block: bool,
    timeout: Option<Duration>,
) -> Result<bool> {
    for g in greenlets {
        g.kill_nowait();
    }
    if !block {
        return Ok(greenlets.iter().all(|g| g.is_ready()));
    }
    joinall(greenlets, timeout, false)
}

/// Waits until `count` of `objects` (all of them if `None`) are ready, or `timeout`
/// passes; returns the indexes of the ready ones, in order.
///
/// # Errors
/// Wait errors.
pub fn wait(
    objects: &[&dyn Waitable],
    timeout: Option<Duration>,
    count: Option<usize>,
) -> Result<Vec<usize>> {
    let want = count.unwrap_or(objects.len()).min(objects.len());
    let ready = || objects.iter().filter(|o| o.is_ready()).count() >= want;
    wait_until("objects to become ready (wait)", timeout, ready, |w| {
        for o in objects.iter().filter(|o| !o.is_ready()) {
            o.subscribe(w.clone());
        }
    })?;
    Ok(objects
        .iter()
        .enumerate()
        .filter(|(_, o)| o.is_ready())
        .map(|(i, _)| i)
        .collect())
}

/// Yields the indexes of `objects` as they become ready (gevent's `iwait`); ends when
/// all have, or when `timeout` (for the whole iteration) passes.
pub fn iwait<'a>(objects: &'a [&'a dyn Waitable], timeout: Option<Duration>) -> Iwait<'a> {
    Iwait {
        objects,
        seen: vec![false; objects.len()],
        deadline: timeout.map(|d| std::time::Instant::now() + d),
    }
}

/// The iterator of [`iwait`].
pub struct Iwait<'a> {
    objects: &'a [&'a dyn Waitable],
    seen: Vec<bool>,
    deadline: Option<std::time::Instant>,
}

impl fmt::Debug for Iwait<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Iwait").field("seen", &self.seen).finish()
    }
}

impl Iterator for Iwait<'_> {
    type Item = Result<usize>;
    fn next(&mut self) -> Option<Result<usize>> {
        let next_ready = |seen: &[bool]| {
            (0..self.objects.len()).find(|&i| !seen[i] && self.objects[i].is_ready())
        };
        if self.seen.iter().all(|&s| s) {
            return None;
        }
        let timeout = self
            .deadline
            .map(|d| d.saturating_duration_since(std::time::Instant::now()));
        let seen = &self.seen;
        let r = wait_until(
            "objects to become ready (iwait)",
            timeout,
            || next_ready(seen).is_some(),
            |w| {
                for (i, o) in self.objects.iter().enumerate() {
                    if !seen[i] {
                        o.subscribe(w.clone());
                    }
                }
            },
        );
        match r {
            Ok(true) => {
                let i = next_ready(&self.seen)?;
                self.seen[i] = true;
                Some(Ok(i))
            }
            Ok(false) => None,
            Err(e) => {
                self.seen.iter_mut().for_each(|s| *s = true);
                Some(Err(e))
            }
        }
    }
}

/// Suspends the current greenlet for `d` (gevent's `sleep`). `sleep(Duration::ZERO)`
/// yields: every greenlet that is ready to run gets to run first.
///
/// # Errors
/// [`Error::BlockingInHub`] in the hub; [`Error::Unwinding`] during a panic.
pub fn sleep(d: Duration) -> Result<()> {
    let w = Wait::new("sleep")?;
    let wk = w.waker();
    if d.is_zero() {
        // A yield: queue our own wake-up behind everything already queued. Nothing
        // else holds a waker of this wait, so the first wake-up is ours.
        crate::hub::with_hub(|h| h.get_loop().run_callback(move || wk.wake()));
        w.park()?;
        return Ok(());
    }
    let fired = Rc::new(Cell::new(false));
    let f2 = fired.clone();
    let t = get_hub().timer_from_now(d);
    t.start(move |_, _| {
        f2.set(true);
        wk.wake();
    })?;
    while !fired.get() {
        w.park()?;
    }
    Ok(())
}

/// Waits until the hub has nothing else to do (an idle watcher fires), gevent's `idle`.
///
/// # Errors
/// As [`sleep`].
pub fn idle() -> Result<()> {
    let w = Wait::new("idle")?;
    let fired = Rc::new(Cell::new(false));
    let f2 = fired.clone();
    let wk = w.waker();
    let i = get_hub().get_loop().idle();
    i.start(move |w, _| {
        w.stop();
        f2.set(true);
        wk.wake();
    })?;
    while !fired.get() {
        w.park()?;
    }
    Ok(())
}

/// The running greenlet's id (the main greenlet and the hub have ids too).
pub fn current_id() -> u64 {
    greenlet::current_rc().id()
}

/// The running greenlet's name.
pub fn current_name() -> String {
    greenlet::current_rc().name().to_owned()
}
