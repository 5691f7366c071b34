//! Spawning greenlets on the hub ([`spawn`], [`Builder`]) and the handle to one
//! ([`Greenlet`]): its result, its links, killing it.

use crate::error::{Error, Result};
use crate::greenlet::stack::DEFAULT_STACK_SIZE;
use crate::greenlet::{self, GreenletExit, GreenletState, PanicPayload};
use crate::hub::{
    hub_if_any, set_spawned_at, throw_into, wait_until, Member, WaitList, Waitable, Wake, Waker,
};
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
    /// The greenlet never ran: it could not be started (no stack could be mapped).
    Spawn(Error),
}

impl fmt::Display for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JoinError::Panicked(p) => match super::report::timeout_id(p) {
                Some(id) => write!(
                    f,
                    "the greenlet was ended by a Timeout (id {id}) it did not catch"
                ),
                None => write!(
                    f,
                    "the greenlet panicked: {}",
                    greenlet::panic_message(&**p)
                ),
            },
            JoinError::Killed => f.write_str("the greenlet was killed"),
            JoinError::Wait(e) => write!(f, "{e}"),
            JoinError::Spawn(e) => write!(f, "{e}"),
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

/// Names a link added by [`Greenlet::link`], for [`Greenlet::unlink`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LinkId(u64);

/// The part of a greenlet's state that does not depend on its value type. Until the
/// greenlet starts, its scheduled start (a queued callback, or spawn_later's timer)
/// holds it; once running, the body does: links fire and joiners wake even if every
/// handle was dropped. The value lives in [`State`], which the body holds weakly.
/// Nothing on the heap points back at the start, so a greenlet whose start never
/// happens (its thread exited first) is freed with the loop's queue, not leaked.
struct Core {
    raw: Rc<GreenletState>,
    /// `spawn_later`'s start timer (owned by the loop), so a kill can stop it rather
    /// than keep the loop alive for a greenlet that will never start.
    start_timer: RefCell<Option<gevent_core::WeakWatcher<gevent_core::kind::TimerKind>>>,
    /// Its start is scheduled (spawned, or `start`ed after `Builder::create`).
    scheduled: Cell<bool>,
    finished: Cell<bool>,
    outcome: RefCell<Option<Outcome>>,
    waiters: WaitList,
    links: RefCell<Vec<(u64, Link)>>,
    /// The id of the next link.
    next_link: Cell<u64>,
    spawned_at: &'static Location<'static>,
    /// Its slot in the hub's list of greenlets to end at thread exit, until it ends.
    enrolled: Cell<Option<usize>>,
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

    /// Marks the greenlet finished, wakes joiners and queues the links, each as its own
    /// hub callback: one that panics is reported like any hub callback and the others
    /// still run. (At thread exit nothing is queued: the links are dropped unrun.)
    fn finish(&self, outcome: Outcome) {
        if self.finished.replace(true) {
            return;
        }
        *self.outcome.borrow_mut() = Some(outcome);
        self.unenroll();
        self.waiters.wake_all();
        let links = self.links.take();
        if links.is_empty() {
            return;
        }
        let info = Rc::new(self.info());
        hub_if_any(|hub| {
            if hub.is_exiting() {
                return;
            }
            for (_, l) in links {
                let info = info.clone();
                hub.get_loop().run_callback(move || l(&info));
            }
        });
    }

    fn unenroll(&self) {
        if let Some(slot) = self.enrolled.take() {
            hub_if_any(|hub| hub.forget(slot));
        }
    }

    fn subscribe(&self, w: Waker) {
        self.waiters.push(w);
    }
}

impl Member for Core {
    fn run_info(&self) -> crate::hub::runinfo::GreenletRunInfo {
        crate::hub::runinfo::GreenletRunInfo {
            id: self.raw.id(),
            name: self.raw.name().to_owned(),
            spawned_at: Some(self.spawned_at),
            state: crate::hub::runinfo::state_of(&self.raw, self.scheduled.get()),
        }
    }

    fn end_at_exit(&self) {
        if self.finished.get() {
            return;
        }
        if self.raw.is_started() {
            crate::hub::end_greenlet_at_exit(&self.raw);
        } else {
            self.raw.kill_unstarted();
            if let Some(t) = self.start_timer.take() {
                t.stop();
            }
            self.finish(Outcome::Killed);
        }
    }
}

impl Drop for Core {
    fn drop(&mut self) {
        self.unenroll();
    }
}

/// A greenlet spawned on this thread's hub, with its result of type `T`.
///
/// # Examples
/// ```
/// use gevent_hub::{sleep, spawn, JoinError, Outcome};
/// use std::time::Duration;
///
/// let worker = spawn(|| sleep(Duration::from_secs(3600)));
/// sleep(Duration::ZERO); // let it start and park
/// worker.kill().unwrap(); // unwinds it from its sleep
/// assert!(worker.is_finished() && !worker.successful());
/// assert_eq!(worker.outcome(), Some(Outcome::Killed));
/// assert!(matches!(worker.join(), Err(JoinError::Killed)));
/// ```
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

    /// Spawns `f` on this thread's hub; it starts at the hub's next callback phase. Its
    /// stack is mapped now, so a greenlet that could not run is reported here.
    ///
    /// # Errors
    /// [`Error::Spawn`] if no stack of the asked size can be mapped (an impossible
    /// `stack_size`, or the process's memory-mapping limit reached); the hub could not
    /// be created; [`Error::ThreadExiting`] while the thread ends.
    #[track_caller]
    pub fn spawn<T: 'static>(self, f: impl FnOnce() -> T + 'static) -> Result<Greenlet<T>> {
        let g = self.create(f)?;
        g.start();
        Ok(g)
    }

    /// Makes the greenlet without starting it (gevent's `Greenlet(run)` before
    /// `start()`): it runs once [`start`](Greenlet::start)ed or
    /// [`start_later`](Greenlet::start_later)ed. Its stack is mapped now. Killed (or
    /// its thread ending) before it starts, its body is dropped unrun.
    ///
    /// # Errors
    /// As [`Builder::spawn`].
    #[track_caller]
    pub fn create<T: 'static>(self, f: impl FnOnce() -> T + 'static) -> Result<Greenlet<T>> {
        let g = self.build(f, Location::caller())?;
        g.reserve_stack()?;
        Ok(g)
    }

    /// Spawns `f` to start after `delay`.
    ///
    /// # Errors
    /// As [`Builder::spawn`].
    #[track_caller]
    pub fn spawn_later<T: 'static>(
        self,
        delay: Duration,
        f: impl FnOnce() -> T + 'static,
    ) -> Result<Greenlet<T>> {
        let g = self.create(f)?;
        g.start_later(delay)?;
        Ok(g)
    }

    fn build<T: 'static>(
        self,
        f: impl FnOnce() -> T + 'static,
        at: &'static Location<'static>,
    ) -> Result<Greenlet<T>> {
        let hub = crate::hub::try_get_hub()?;
        if hub.is_exiting() {
            return Err(Error::ThreadExiting);
        }
        // The body reaches its core and its value's state through weak references (see
        // `Core`); it upgrades the core as it starts, while the start holds it.
        let cell: Rc<RefCell<Option<BodyLinks<T>>>> = Rc::new(RefCell::new(None));
        let cell2 = cell.clone();
        let body = move |_v: greenlet::Value| -> greenlet::Value {
            let links = cell2.borrow_mut().take();
            let Some(core) = links.as_ref().and_then(|(c, _)| c.upgrade()) else {
                return Box::new(());
            };
            let r = match catch_unwind(AssertUnwindSafe(f)) {
                // A kill (or a Timeout) that landed where the greenlet could not unwind
                // (a monkey-patched call) ends it as if it had unwound.
                Ok(v) => match crate::hub::take_deferred_throw(|_| true) {
                    Some(p) => {
                        drop(v);
                        Err(p)
                    }
                    None => Ok(v),
                },
                Err(p) => Err(p),
            };
            // Its greenlet-local values go with its function, before its joiners learn
            // it ended (a value's drop may still block).
            let _ = catch_unwind(super::local::drop_locals);
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
                    let msg = super::report::describe_payload(&*p);
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
            Some(hub.raw_greenlet()),
            self.stack_size.unwrap_or(DEFAULT_STACK_SIZE),
            self.name,
        );
        set_spawned_at(&raw, at);
        super::report::install_panic_report();
        raw.managed.set(true);
        let core = Rc::new(Core {
            raw,
            start_timer: RefCell::new(None),
            scheduled: Cell::new(false),
            finished: Cell::new(false),
            outcome: RefCell::new(None),
            waiters: WaitList::default(),
            links: RefCell::new(Vec::new()),
            next_link: Cell::new(0),
            spawned_at: at,
            enrolled: Cell::new(None),
        });
        let weak: std::rc::Weak<dyn Member> = Rc::downgrade(&core) as _;
        core.enrolled.set(Some(hub.enroll(weak)));
        let state = Rc::new(State {
            core: core.clone(),
            value: RefCell::new(None),
        });
        *cell.borrow_mut() = Some((Rc::downgrade(&core), Rc::downgrade(&state)));
        Ok(Greenlet { state })
    }
}

/// The scheduled first switch into a greenlet (skipped if it was killed meanwhile).
fn start(core: &Rc<Core>) {
    drop(core.start_timer.take());
    let raw = &core.raw;
    if !raw.is_dead() && !raw.is_started() {
        let _ = greenlet::switch_msg(raw, Wake::Start.msg());
    }
}

/// Spawns `f` as a new greenlet on this thread's hub (gevent's `spawn`).
///
/// If it cannot be started (no stack can be mapped: the process reached its
/// memory-mapping limit), the greenlet returned has already ended: [`Greenlet::join`]
/// says why ([`JoinError::Spawn`]) and its links run with
/// [`Outcome::Panicked`] carrying that message. Use [`Builder::spawn`] to get the
/// error from the spawn itself.
///
/// # Examples
/// ```
/// use gevent_hub::{sleep, spawn};
/// use std::time::Duration;
///
/// let g = spawn(|| {
///     sleep(Duration::from_millis(1)); // parks this greenlet; others run meanwhile
///     "done"
/// });
/// assert_eq!(g.join().unwrap(), "done");
/// ```
///
/// # Panics
/// If this thread's hub cannot be created (libev cannot make a loop), or the thread is
/// ending.
#[track_caller]
pub fn spawn<T: 'static>(f: impl FnOnce() -> T + 'static) -> Greenlet<T> {
    spawn_or_fail(Builder::new(), None, f)
}

/// Spawns `f` to start after `delay` (gevent's `spawn_later`). A greenlet that cannot
/// be started is reported as by [`spawn`].
///
/// # Panics
/// As [`spawn`].
#[track_caller]
pub fn spawn_later<T: 'static>(delay: Duration, f: impl FnOnce() -> T + 'static) -> Greenlet<T> {
    spawn_or_fail(Builder::new(), Some(delay), f)
}

#[track_caller]
fn spawn_or_fail<T: 'static>(
    b: Builder,
    delay: Option<Duration>,
    f: impl FnOnce() -> T + 'static,
) -> Greenlet<T> {
    let g = b
        .build(f, Location::caller())
        .unwrap_or_else(|e| panic!("gevent: spawn failed: {e}"));
    if let Err(e) = g.reserve_stack() {
        g.fail_to_start(e);
        return g;
    }
    match delay {
        None => g.start(),
        Some(d) => {
            if let Err(e) = g.start_later(d) {
                g.fail_to_start(e);
            }
        }
    }
    g
}

impl<T> Greenlet<T> {
    fn core(&self) -> &Core {
        &self.state.core
    }

    /// Maps its stack now; on failure it never runs.
    fn reserve_stack(&self) -> Result<()> {
        let r = self.core().raw.reserve_stack().map_err(Error::Spawn);
        if r.is_err() {
            self.core().raw.kill_unstarted();
            self.core().unenroll();
        }
        r
    }

    /// Ends it unstarted because of `e`: joiners get [`JoinError::Spawn`], links run.
    fn fail_to_start(&self, e: Error) {
        let core = self.core();
        core.raw.kill_unstarted();
        let msg = e.to_string();
        *self.state.value.borrow_mut() = Some(Err(JoinError::Spawn(e)));
        core.finish(Outcome::Panicked(msg));
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

    /// Alias of [`ready`](Greenlet::ready), the name of std's `JoinHandle::is_finished`.
    pub fn is_finished(&self) -> bool {
        self.ready()
    }

    /// Alias of [`ready`](Greenlet::ready), gevent's `dead`.
    pub fn dead(&self) -> bool {
        self.ready()
    }

    /// True if it finished by returning. (gevent also counts a kill by `GreenletExit`
    /// as success; here a killed greenlet has no value: [`join`](Greenlet::join) gives
    /// [`JoinError::Killed`].)
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

    /// Schedules its start at the hub's next turn (gevent's `start()`), if it was made
    /// with [`Builder::create`] and is not scheduled, running or finished; otherwise
    /// does nothing.
    pub fn start(&self) {
        let core = self.core();
        if core.scheduled.replace(true) || core.finished.get() {
            return;
        }
        let c = self.state.core.clone();
        hub_if_any(|hub| hub.get_loop().run_callback(move || start(&c)));
    }

    /// Schedules its start after `delay` (gevent's `start_later()`), as
    /// [`start`](Greenlet::start).
    ///
    /// # Errors
    /// The hub's loop refused the timer (it is being destroyed).
    pub fn start_later(&self, delay: Duration) -> Result<()> {
        let core = self.core();
        if core.scheduled.get() || core.finished.get() {
            return Ok(());
        }
        let t = crate::hub::try_get_hub()?.timer_from_now(delay);
        let c = self.state.core.clone();
        t.start(move |_, _| start(&c))?;
        *core.start_timer.borrow_mut() = Some(t.detach_weak());
        core.scheduled.set(true);
        Ok(())
    }

    /// True once its start is scheduled (it was spawned, or started), until it ends.
    pub fn is_scheduled(&self) -> bool {
        let c = self.core();
        c.scheduled.get() && !c.finished.get()
    }

    /// Raises `payload` in it at its blocking point, as a kill raises
    /// [`GreenletExit`] (gevent's `throw` and `kill(exception=...)`): it ends with
    /// that panic ([`Outcome::Panicked`], `join` gives [`JoinError::Panicked`] with the
    /// payload) unless it catches it; a `GreenletExit` payload is a plain kill. An
    /// unstarted greenlet never runs and ends so at once. Returns without waiting.
    pub fn throw_nowait(&self, payload: PanicPayload) {
        let core = self.core();
        if core.finished.get() {
            return;
        }
        if payload.is::<GreenletExit>() {
            return kill_core(core);
        }
        let raw = &core.raw;
        if raw.is_started() {
            return throw_into(raw, payload, false);
        }
        raw.kill_unstarted();
        if let Some(t) = core.start_timer.take() {
            t.stop();
        }
        let msg = super::report::describe_payload(&*payload);
        *self.state.value.borrow_mut() = Some(Err(JoinError::Panicked(payload)));
        core.finish(Outcome::Panicked(msg));
    }

    /// [`throw_nowait`](Greenlet::throw_nowait), then waits until it has finished.
    ///
    /// # Errors
    /// As [`kill`](Greenlet::kill).
    pub fn throw(&self, payload: PanicPayload) -> Result<()> {
        self.throw_nowait(payload);
        self.wait(None).map(|_| ())
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
    /// has). Links run in the order they were added. Returns the link's id, for
    /// [`unlink`](Greenlet::unlink).
    pub fn link(&self, f: impl FnOnce(&GreenletInfo) + 'static) -> LinkId {
        let core = self.core();
        let id = core.next_link.get();
        core.next_link.set(id + 1);
        if core.finished.get() {
            let info = core.info();
            hub_if_any(|hub| {
                if !hub.is_exiting() {
                    hub.get_loop().run_callback(move || f(&info));
                }
            });
        } else {
            core.links.borrow_mut().push((id, Box::new(f)));
        }
        LinkId(id)
    }

    /// [`link`](Greenlet::link) that calls `f` only if the greenlet returned a value
    /// (gevent's `link_value`; a killed greenlet has none, see
    /// [`successful`](Greenlet::successful)).
    pub fn link_value(&self, f: impl FnOnce(&GreenletInfo) + 'static) -> LinkId {
        self.link(move |info| {
            if matches!(info.outcome, Outcome::Successful) {
                f(info);
            }
        })
    }

    /// [`link`](Greenlet::link) that calls `f` only if the greenlet panicked (or could
    /// not be started): gevent's `link_exception`.
    pub fn link_exception(&self, f: impl FnOnce(&GreenletInfo) + 'static) -> LinkId {
        self.link(move |info| {
            if matches!(info.outcome, Outcome::Panicked(_)) {
                f(info);
            }
        })
    }

    /// Another handle to the same greenlet (crate-internal: a scope keeps one).
    pub(crate) fn clone_handle(&self) -> Greenlet<T> {
        Greenlet {
            state: self.state.clone(),
        }
    }

    /// The greenlet core's state of it.
    pub(crate) fn core_raw(&self) -> Rc<GreenletState> {
        self.core().raw.clone()
    }

    /// Takes back the link `id` if it has not been queued to run yet (the greenlet has
    /// not finished); returns whether it did (gevent's `unlink`).
    pub fn unlink(&self, id: LinkId) -> bool {
        let mut links = self.core().links.borrow_mut();
        match links.iter().position(|(i, _)| *i == id.0) {
            Some(at) => {
                drop(links.remove(at));
                true
            }
            None => false,
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
    throw_into(raw, Box::new(GreenletExit), false);
}

/// A greenlet of any value type, for [`joinall`](crate::joinall) and [`killall`](crate::killall).
pub trait AnyGreenlet: Waitable {
    /// Kills it without waiting.
    fn kill_nowait(&self);
    /// How it ended, once it has.
    fn outcome(&self) -> Option<Outcome>;
    /// Its name.
    fn name(&self) -> &str;
    /// Its greenlet id, if it is a greenlet of the hub (`None` for a stand-in), so
    /// that [`killall`](crate::killall) can tell whether it is the caller.
    fn id(&self) -> Option<u64> {
        None
    }
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
    fn id(&self) -> Option<u64> {
        Some(Greenlet::id(self))
    }
}

impl<T> Waitable for Greenlet<T> {
    fn is_ready(&self) -> bool {
        self.ready()
    }
    fn subscribe(&self, w: Waker) {
        self.core().subscribe(w)
    }
}

/// So that [`joinall`](crate::joinall) and [`killall`](crate::killall) take a list
/// of references (`&[&dyn AnyGreenlet]`, `&[&g1, &g2]`) as well as of greenlets.
impl<G: AnyGreenlet + ?Sized> AnyGreenlet for &G {
    fn kill_nowait(&self) {
        (**self).kill_nowait()
    }
    fn outcome(&self) -> Option<Outcome> {
        (**self).outcome()
    }
    fn name(&self) -> &str {
        (**self).name()
    }
    fn id(&self) -> Option<u64> {
        (**self).id()
    }
}
