//! `ThreadPool`: blocking work on OS threads, waited for by greenlets without blocking
//! the hub (gevent's `gevent.threadpool`).
//!
//! Some calls only come in a blocking form: file I/O, `getaddrinfo`, a C library that
//! sleeps. Made in a greenlet they would stall every greenlet of the thread. The pool
//! runs them on worker threads while the greenlet that wants the result waits for it
//! like for anything else: parked, costing no CPU.
//!
//! ```text
//!  hub thread                                   worker thread
//!  spawn(f): register task #n, ref the loop
//!            push job ───── Mutex+Condvar ────► runs f (panics caught)
//!  join():   park                               stores the result, then
//!                                               hub.run_callback_threadsafe(complete #n)
//!  hub's Async watcher fires ◄─────────────────── (async send)
//!  complete #n: unref the loop, wake the waiters
//!  join() returns the result
//! ```
//!
//! The pool as a whole: [`resize`](ThreadPool::resize) changes its size (shrinking
//! between tasks, never interrupting one), [`join`](ThreadPool::join) waits parked
//! for everything submitted to finish, [`kill`](ThreadPool::kill) stops it (queued
//! tasks cancelled, running ones let finish).
//!
//! Each task keeps its hub's loop alive until it completes, so waiting for one from
//! the main greenlet is not mistaken for a deadlock; nothing else of the pool touches
//! the loop. Workers are started on demand, up to the pool's size, and retire after
//! sitting idle for a while. The pool itself is `Send + Sync`; a [`ThreadResult`]
//! belongs to the thread that spawned the task.
//!
//! ```
//! use gevent_hub::threadpool::spawn_blocking;
//!
//! let task = spawn_blocking(|| std::fs::read("Cargo.toml").map(|b| b.len()));
//! let len = task.join().unwrap().unwrap();
//! assert!(len > 0);
//! ```

use crate::error::{Error, Result};
use crate::greenlet::panic_message;
use crate::hub::{get_hub, try_get_hub, wait_until, HubHandle, RemoteWaker, Waker};
use crate::hub::{WaitList, Waitable};
use crate::ids::Ids;
use crate::pool::SizeError;
use gevent_core::LoopRef;
use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::mem::ManuallyDrop;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{JoinHandle, ThreadId};
use std::time::Duration;

/// Size of each thread's default pool (gevent's default).
pub const DEFAULT_MAX_THREADS: usize = 10;

/// How long a worker waits for work before it retires, by default.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a thread pool task has no value.
#[derive(Debug)]
#[non_exhaustive]
pub enum ThreadError {
    /// The task panicked; the panic's message.
    Panicked(String),
    /// The pool was killed ([`ThreadPool::kill`]) or dropped before the task started.
    Cancelled,
    /// No worker thread could be started for it (the OS refused).
    Spawn(String),
    /// Waiting for it failed (called in the hub, …).
    Wait(Error),
}

impl fmt::Display for ThreadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ThreadError::Panicked(m) => write!(f, "the thread pool task panicked: {m}"),
            ThreadError::Cancelled => {
                f.write_str("the thread pool was killed or dropped before the task started")
            }
            ThreadError::Spawn(e) => write!(f, "could not start a thread pool worker: {e}"),
            ThreadError::Wait(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for ThreadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ThreadError::Wait(e) => Some(e),
            _ => None,
        }
    }
}

impl From<Error> for ThreadError {
    fn from(e: Error) -> ThreadError {
        ThreadError::Wait(e)
    }
}

impl From<ThreadError> for std::io::Error {
    fn from(e: ThreadError) -> std::io::Error {
        match e {
            ThreadError::Wait(e) => e.into(),
            e => std::io::Error::other(e),
        }
    }
}

/// The `Send` half of a [`ThreadError`]: what a worker can report.
enum Failure {
    Panicked(String),
    Cancelled,
    Spawn(String),
}

impl From<Failure> for ThreadError {
    fn from(f: Failure) -> ThreadError {
        match f {
            Failure::Panicked(m) => ThreadError::Panicked(m),
            Failure::Cancelled => ThreadError::Cancelled,
            Failure::Spawn(m) => ThreadError::Spawn(m),
        }
    }
}

/// Run the job, or drop it unrun for this reason (it still reports).
enum Cmd {
    Run,
    Cancel(Failure),
}

type Job = Box<dyn FnOnce(Cmd) + Send>;

struct State {
    queue: VecDeque<Job>,
    /// The most workers alive at once; a [`resize`](ThreadPool::resize) below the
    /// live count retires workers as they finish their current task.
    max_threads: usize,
    /// Live workers.
    threads: usize,
    /// Workers waiting for a job.
    idle: usize,
    /// Tasks submitted and not yet run to the end or cancelled: queued plus running.
    pending: usize,
    /// Greenlets in [`ThreadPool::join`], each woken (on its own hub) when `pending`
    /// reaches 0.
    joiners: Vec<(HubHandle, RemoteWaker)>,
    /// Killed or dropped: no task is accepted any more.
    shutdown: bool,
    /// Handles of live workers, to join them when the pool is dropped. A retiring
    /// worker removes (detaches) its own.
    handles: HashMap<ThreadId, JoinHandle<()>>,
}

struct Shared {
    state: Mutex<State>,
    work: Condvar,
    idle_timeout: Duration,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Jobs run unlocked and catch their panics: a poisoned lock has consistent data.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl State {
    /// `n` tasks ran to their end or were cancelled; returns the joiners to wake once
    /// none is left (woken by the caller, unlocked).
    fn finished(&mut self, n: usize) -> Vec<(HubHandle, RemoteWaker)> {
        self.pending -= n;
        if self.pending == 0 {
            std::mem::take(&mut self.joiners)
        } else {
            Vec::new()
        }
    }
}

/// Wakes the greenlets in [`ThreadPool::join`]. The wake-up is sent from a callback
/// on each joiner's own hub, so it arrives after the completions the workers sent
/// before it: a `ThreadResult` of that thread is ready when `join` returns.
fn wake_joiners(joiners: Vec<(HubHandle, RemoteWaker)>) {
    for (hub, w) in joiners {
        hub.run_callback_threadsafe(move || {
            w.wake();
        });
    }
}

/// Cancels `jobs` (their results report `why`), then counts them as finished.
fn cancel(shared: &Shared, jobs: Vec<Job>, why: impl Fn() -> Failure) {
    let n = jobs.len();
    if n == 0 {
        return;
    }
    for job in jobs {
        job(Cmd::Cancel(why()));
    }
    let joiners = shared.lock().finished(n);
    wake_joiners(joiners);
}

fn worker(shared: Arc<Shared>) {
    let me = std::thread::current().id();
    let mut st = shared.lock();
    loop {
        if st.threads > st.max_threads && !st.shutdown {
            // The pool was made smaller: this one goes, between two tasks. A wake-up
            // for a queued task meant for it goes to another worker.
            st.threads -= 1;
            st.handles.remove(&me);
            if !st.queue.is_empty() {
                shared.work.notify_one();
            }
            return;
        }
        if let Some(job) = st.queue.pop_front() {
            drop(st);
            job(Cmd::Run);
            st = shared.lock();
            let joiners = st.finished(1);
            if !joiners.is_empty() {
                drop(st);
                wake_joiners(joiners);
                st = shared.lock();
            }
            continue;
        }
        if st.shutdown {
            break;
        }
        st.idle += 1;
        let (guard, res) = shared
            .work
            .wait_timeout(st, shared.idle_timeout)
            .unwrap_or_else(|e| e.into_inner());
        st = guard;
        st.idle -= 1;
        if res.timed_out() && st.queue.is_empty() && !st.shutdown {
            // Nobody needed this thread for a whole idle period: retire.
            st.threads -= 1;
            st.handles.remove(&me);
            return;
        }
    }
    st.threads -= 1;
}

/// Owns the workers: the pool shuts down when the last [`ThreadPool`] handle goes.
struct Owner {
    shared: Arc<Shared>,
}

impl Drop for Owner {
    fn drop(&mut self) {
        let (jobs, handles) = {
            let mut st = self.shared.lock();
            st.shutdown = true;
            let jobs: Vec<Job> = st.queue.drain(..).collect();
            (jobs, std::mem::take(&mut st.handles))
        };
        self.shared.work.notify_all();
        cancel(&self.shared, jobs, || Failure::Cancelled);
        let me = std::thread::current().id();
        for (id, h) in handles {
            // The last handle may be dropped by a task on a worker: it cannot join itself.
            if id != me {
                let _ = h.join();
            }
        }
    }
}

/// A pool of OS threads for blocking work (gevent's `ThreadPool`). Cloning gives
/// another handle to the same pool; when the last one is dropped, tasks not started
/// yet are cancelled ([`ThreadError::Cancelled`]) and the drop waits for the running
/// ones to finish.
#[derive(Clone)]
pub struct ThreadPool {
    owner: Arc<Owner>,
}

impl fmt::Debug for ThreadPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.owner.shared.lock();
        f.debug_struct("ThreadPool")
            .field("max_threads", &st.max_threads)
            .field("threads", &st.threads)
            .field("idle", &st.idle)
            .field("queued", &st.queue.len())
            .finish()
    }
}

impl ThreadPool {
    /// A pool of at most `max_threads` threads; idle ones retire after
    /// [`DEFAULT_IDLE_TIMEOUT`].
    ///
    /// # Errors
    /// [`SizeError`] if `max_threads` is 0.
    pub fn new(max_threads: usize) -> std::result::Result<ThreadPool, SizeError> {
        ThreadPool::with_idle_timeout(max_threads, DEFAULT_IDLE_TIMEOUT)
    }

    /// A pool of at most `max_threads` threads, each retiring after `idle_timeout`
    /// without work.
    ///
    /// # Errors
    /// [`SizeError`] if `max_threads` is 0.
    pub fn with_idle_timeout(
        max_threads: usize,
        idle_timeout: Duration,
    ) -> std::result::Result<ThreadPool, SizeError> {
        if max_threads == 0 {
            return Err(SizeError::new("ThreadPool"));
        }
        Ok(ThreadPool {
            owner: Arc::new(Owner {
                shared: Arc::new(Shared {
                    state: Mutex::new(State {
                        queue: VecDeque::new(),
                        max_threads,
                        threads: 0,
                        idle: 0,
                        pending: 0,
                        joiners: Vec::new(),
                        shutdown: false,
                        handles: HashMap::new(),
                    }),
                    work: Condvar::new(),
                    idle_timeout,
                }),
            }),
        })
    }

    /// The most threads it runs at once.
    pub fn max_threads(&self) -> usize {
        self.owner.shared.lock().max_threads
    }

    /// Tasks submitted and not finished yet: queued plus running.
    pub fn pending(&self) -> usize {
        self.owner.shared.lock().pending
    }

    /// True once [`kill`](ThreadPool::kill)ed: it accepts no more tasks.
    pub fn is_killed(&self) -> bool {
        self.owner.shared.lock().shutdown
    }

    /// Makes it run at most `max_threads` threads (gevent's `resize`). Growing takes
    /// effect at once: tasks waiting in the queue get new workers now. Shrinking lets
    /// every worker finish the task it is running: a worker above the new size
    /// retires before taking its next one, so no task is lost or interrupted, and the
    /// queue is worked through by the workers that stay. (Workers start on demand and
    /// retire when idle here, so a grown pool starts threads only for work, where
    /// gevent's starts them all.)
    ///
    /// # Examples
    /// ```
    /// use gevent_hub::ThreadPool;
    ///
    /// let pool = ThreadPool::new(1)?;
    /// pool.resize(4)?;
    /// assert_eq!(pool.max_threads(), 4);
    /// let tasks: Vec<_> = (0..8).map(|i| pool.spawn(move || i * 2)).collect();
    /// pool.resize(2)?; // running tasks finish; two workers stay for the rest
    /// let sum: i32 = tasks.into_iter().map(|t| t.join().unwrap()).sum();
    /// assert_eq!(sum, 56);
    /// assert!(pool.resize(0).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`SizeError`] if `max_threads` is 0 (nothing would ever run; [`kill`](ThreadPool::kill) stops a pool).
    pub fn resize(&self, max_threads: usize) -> std::result::Result<(), SizeError> {
        if max_threads == 0 {
            return Err(SizeError::new("ThreadPool"));
        }
        let shared = &self.owner.shared;
        let mut st = shared.lock();
        st.max_threads = max_threads;
        if st.shutdown {
            return Ok(());
        }
        // Growing: start workers for queued tasks no idle worker will take. (A worker
        // that cannot be started is no loss: the running ones get to the queue.)
        let mut started = 0;
        while st.queue.len() > st.idle + started
            && st.threads < st.max_threads
            && spawn_worker(shared, &mut st).is_ok()
        {
            started += 1;
        }
        drop(st);
        // Shrinking: idle workers above the size wake and retire; growing: the new
        // workers (and idle ones) look at the queue.
        shared.work.notify_all();
        Ok(())
    }

    /// Waits, parked, until every task queued or running has finished (gevent's
    /// `join`), including tasks submitted from other threads and submitted while it
    /// waits. Results of this thread's tasks are [`ready`](ThreadResult::ready) when
    /// it returns.
    ///
    /// # Examples
    /// ```
    /// use gevent_hub::ThreadPool;
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use std::sync::Arc;
    ///
    /// let pool = ThreadPool::new(3)?;
    /// let done = Arc::new(AtomicUsize::new(0));
    /// for _ in 0..10 {
    ///     let d = done.clone();
    ///     drop(pool.spawn(move || d.fetch_add(1, Ordering::SeqCst)));
    /// }
    /// pool.join()?;
    /// assert_eq!(done.load(Ordering::SeqCst), 10);
    /// assert_eq!(pool.pending(), 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::BlockingInHub`] in the hub, and the hub's other wait errors.
    pub fn join(&self) -> Result<()> {
        self.join_inner(None).map(drop)
    }

    /// [`join`](ThreadPool::join) for at most `timeout`; returns whether every task
    /// finished.
    ///
    /// # Errors
    /// As [`join`](ThreadPool::join).
    pub fn join_timeout(&self, timeout: Duration) -> Result<bool> {
        self.join_inner(Some(timeout))
    }

    fn join_inner(&self, timeout: Option<Duration>) -> Result<bool> {
        const WHAT: &str = "a thread pool's tasks to finish (join)";
        let deadline = timeout.and_then(crate::hub::deadline_after);
        // Not kept across the wait: a parked stack must not hold the hub.
        let handle = try_get_hub()?.handle();
        let mut woken = false;
        loop {
            let left = deadline.map(|d| d.saturating_duration_since(std::time::Instant::now()));
            let w = crate::hub::Wait::timed(WHAT, left)?;
            let mut st = self.owner.shared.lock();
            if st.pending == 0 {
                drop(st);
                if !woken {
                    // Every task sent its completion to its hub before `pending` fell
                    // to 0: one trip through this hub's queue runs this thread's first.
                    wake_joiners(vec![(handle.clone(), w.remote_waker())]);
                    w.park()?;
                }
                return Ok(true);
            }
            st.joiners.push((handle.clone(), w.remote_waker()));
            drop(st);
            if !w.park()? {
                return Ok(self.owner.shared.lock().pending == 0);
            }
            // Sent after the completions (see `wake_joiners`).
            woken = true;
        }
    }

    /// Stops the pool (gevent's `kill`), without waiting: from now on it accepts no
    /// task (one spawned later reports [`ThreadError::Cancelled`] at once); the tasks
    /// still queued are dropped unrun and their results report
    /// [`ThreadError::Cancelled`]; the tasks running go on to their end (a thread
    /// cannot be interrupted) and their results report as usual, then their workers
    /// exit. [`join`](ThreadPool::join) after it waits for those running tasks.
    /// Killing a killed pool does nothing.
    ///
    /// # Examples
    /// ```
    /// use gevent_hub::threadpool::{ThreadError, ThreadPool};
    /// use std::sync::mpsc;
    ///
    /// let pool = ThreadPool::new(1)?;
    /// let (started_tx, started) = mpsc::channel();
    /// let (go, go_rx) = mpsc::channel::<()>();
    /// let running = pool.spawn(move || {
    ///     started_tx.send(()).unwrap();
    ///     go_rx.recv().unwrap();
    ///     "finished"
    /// });
    /// let queued = pool.spawn(|| "never runs");
    /// started.recv()?; // the one worker is busy with the first task
    /// pool.kill();
    /// go.send(())?;
    /// assert_eq!(running.join().unwrap(), "finished");
    /// assert!(matches!(queued.join(), Err(ThreadError::Cancelled)));
    /// assert!(matches!(pool.spawn(|| ()).join(), Err(ThreadError::Cancelled)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn kill(&self) {
        let shared = &self.owner.shared;
        let jobs: Vec<Job> = {
            let mut st = shared.lock();
            st.shutdown = true;
            st.queue.drain(..).collect()
        };
        // Idle workers exit; busy ones after their task.
        shared.work.notify_all();
        cancel(shared, jobs, || Failure::Cancelled);
    }

    /// Worker threads alive right now.
    pub fn threads(&self) -> usize {
        self.owner.shared.lock().threads
    }

    /// Tasks waiting for a worker.
    pub fn queued(&self) -> usize {
        self.owner.shared.lock().queue.len()
    }

    /// Runs `f` on a worker thread; the returned handle waits for its result. Never
    /// blocks (works in the hub): tasks beyond the pool's size queue up.
    ///
    /// A panic in `f` is caught on the worker and reported by
    /// [`join`](ThreadResult::join) as [`ThreadError::Panicked`] with its message.
    ///
    /// # Panics
    /// If this thread's hub cannot be created.
    pub fn spawn<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> ThreadResult<T> {
        settle_after_fork();
        let hub = get_hub();
        // Until it completes, the task keeps the loop alive: someone may wait for it.
        let (id, local) = register(hub.get_loop().hold());
        let slot: Slot<T> = Arc::new(Mutex::new(None));
        let s2 = slot.clone();
        let handle = hub.handle();
        let job: Job = Box::new(move |cmd| {
            let r = match cmd {
                Cmd::Run => catch_unwind(AssertUnwindSafe(f))
                    .map_err(|p| Failure::Panicked(panic_message(&*p))),
                Cmd::Cancel(why) => {
                    drop(f);
                    Err(why)
                }
            };
            *s2.lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
            // Through the hub's Async watcher; false only if that hub is gone.
            handle.run_callback_threadsafe(move || complete(id));
        });
        self.submit(job);
        ThreadResult { local, slot }
    }

    fn submit(&self, job: Job) {
        let shared = &self.owner.shared;
        let mut st = shared.lock();
        if st.shutdown {
            // Killed: accepted no more.
            drop(st);
            job(Cmd::Cancel(Failure::Cancelled));
            return;
        }
        st.queue.push_back(job);
        st.pending += 1;
        if st.queue.len() > st.idle && st.threads < st.max_threads {
            match spawn_worker(shared, &mut st) {
                Ok(()) => {}
                Err(e) if st.threads == 0 => {
                    // Nobody would ever run it: report instead of hanging the waiter.
                    let job = st.queue.pop_back();
                    drop(st);
                    if let Some(job) = job {
                        cancel(shared, vec![job], || Failure::Spawn(e.to_string()));
                    }
                    return;
                }
                // The running workers will get to it.
                Err(_) => {}
            }
        }
        drop(st);
        shared.work.notify_one();
    }

    /// Runs `f` on a worker and waits for its result (gevent's `apply`).
    ///
    /// # Errors
    /// As [`ThreadResult::join`]; [`Error::BlockingInHub`] in the hub (checked before
    /// `f` is submitted).
    pub fn apply<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> std::result::Result<T, ThreadError> {
        // Not kept across the wait: a parked stack must not hold the hub.
        crate::hub::refuse_in_hub("ThreadPool::apply (use spawn, and join from a greenlet)")?;
        self.spawn(f).join()
    }
}

/// Starts one more worker, counted in `st`.
fn spawn_worker(shared: &Arc<Shared>, st: &mut State) -> std::io::Result<()> {
    let s2 = shared.clone();
    let h = std::thread::Builder::new()
        .name("gevent-threadpool".into())
        .spawn(move || worker(s2))?;
    st.threads += 1;
    st.handles.insert(h.thread().id(), h);
    Ok(())
}

type Slot<T> = Arc<Mutex<Option<std::result::Result<T, Failure>>>>;

/// The hub-thread side of a task: whether it completed, and who waits.
struct LocalTask {
    done: Cell<bool>,
    waiters: WaitList,
    /// Keeps the hub's loop running until the task completes.
    hold: RefCell<Option<LoopRef>>,
}

/// This thread's tasks not completed yet, by id, and its default pool. No destructor:
/// the thread's teardown empties it (from a greenlet-layer exit hook, registered with
/// the first use), whatever order std destroys thread-locals in.
struct Local {
    tasks: HashMap<u64, Rc<LocalTask>>,
    default_pool: Option<ThreadPool>,
    hooked: bool,
}

thread_local! {
    /// Set in a fork's child until the loop has made its backend and its wake-up fd
    /// anew (see [`settle_after_fork`]).
    static AFTER_FORK: Cell<bool> = const { Cell::new(false) };
    static LOCAL: ManuallyDrop<RefCell<Option<Local>>> =
        const { ManuallyDrop::new(RefCell::new(None)) };
    static NEXT_TASK: Ids = const { Ids::new() };
}

/// Runs `f` on this thread's [`Local`], made (and its exit hook registered) on first use.
fn with_local<R>(f: impl FnOnce(&mut Local) -> R) -> R {
    LOCAL.with(|l| {
        let mut l = l.borrow_mut();
        let local = l.get_or_insert_with(|| Local {
            tasks: HashMap::new(),
            default_pool: None,
            hooked: false,
        });
        if !local.hooked {
            // The default pool's workers are joined here, before the hub goes.
            local.hooked = crate::greenlet::at_thread_exit(|| {
                let taken = LOCAL.with(|l| l.borrow_mut().take());
                drop(taken);
            });
        }
        f(local)
    })
}

fn register(hold: LoopRef) -> (u64, Rc<LocalTask>) {
    let id = NEXT_TASK.with(Ids::next);
    let t = Rc::new(LocalTask {
        done: Cell::new(false),
        waiters: WaitList::default(),
        hold: RefCell::new(Some(hold)),
    });
    with_local(|l| l.tasks.insert(id, t.clone()));
    (id, t)
}

/// Runs in the hub of the spawning thread once task `id` has stored its result.
fn complete(id: u64) {
    let t = LOCAL.with(|l| l.borrow_mut().as_mut().and_then(|l| l.tasks.remove(&id)));
    if let Some(t) = t {
        drop(t.hold.take());
        t.done.set(true);
        t.waiters.wake_all();
    }
}

/// The pending result of a [`ThreadPool`] task (gevent's `ThreadResult`). Belongs to
/// the thread that spawned the task.
pub struct ThreadResult<T> {
    local: Rc<LocalTask>,
    slot: Slot<T>,
}

impl<T> fmt::Debug for ThreadResult<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThreadResult")
            .field("ready", &self.ready())
            .finish()
    }
}

impl<T> ThreadResult<T> {
    /// True once the task has finished (or was cancelled).
    pub fn ready(&self) -> bool {
        self.local.done.get()
    }

    fn wait(&self, timeout: Option<Duration>) -> Result<bool> {
        let l = &self.local;
        wait_until(
            "a thread pool task to finish",
            timeout,
            || l.done.get(),
            |w| l.waiters.push(w),
        )
    }

    /// Waits for the task and returns its value.
    ///
    /// # Errors
    /// [`ThreadError::Panicked`] with the panic's message, [`ThreadError::Cancelled`],
    /// [`ThreadError::Spawn`], or [`ThreadError::Wait`] (e.g.
    /// [`Error::BlockingInHub`]).
    pub fn join(self) -> std::result::Result<T, ThreadError> {
        self.wait(None)?;
        let r = self.slot.lock().unwrap_or_else(|e| e.into_inner()).take();
        match r {
            Some(r) => r.map_err(ThreadError::from),
            // Completed means stored; only a second take could see nothing.
            None => Err(ThreadError::Cancelled),
        }
    }

    /// Waits at most `timeout` for the task; returns whether it has finished.
    ///
    /// # Errors
    /// As any wait: [`Error::BlockingInHub`], …
    pub fn join_timeout(&self, timeout: Duration) -> Result<bool> {
        self.wait(Some(timeout))
    }
}

impl<T> Waitable for ThreadResult<T> {
    fn is_ready(&self) -> bool {
        self.ready()
    }
    fn subscribe(&self, w: Waker) {
        self.local.waiters.push(w);
    }
}

/// This thread's default pool ([`DEFAULT_MAX_THREADS`] threads), made on first use.
/// Dropped (its workers joined) when the thread exits.
pub fn default_pool() -> ThreadPool {
    with_local(|l| {
        l.default_pool
            .get_or_insert_with(|| {
                ThreadPool::new(DEFAULT_MAX_THREADS)
                    .unwrap_or_else(|_| unreachable!("the default size is not 0"))
            })
            .clone()
    })
}

/// In a child process just forked: the default pool's workers were not forked with
/// the thread, so the pool is let go of (kept, never dropped: joining threads that do
/// not exist would hang) and the next use makes a new one.
pub(crate) fn forget_default_pool_after_fork() {
    let _ = LOCAL.try_with(|l| {
        if let Ok(mut l) = l.try_borrow_mut() {
            if let Some(pool) = l.as_mut().and_then(|l| l.default_pool.take()) {
                orphan(pool);
            }
            AFTER_FORK.with(|f| f.set(true));
        }
    });
}

/// In a fork's child, before the first task is handed to a worker: lets the loop
/// run one iteration past its poll, so that libev has made its wake-up fd anew
/// (`ev_loop_fork` only marks it; the work is done before the next poll). A worker's
/// wake-up written to the old fd meanwhile would be lost, and its waiter would never
/// learn the task ended. Does nothing in the hub (it cannot wait there; the flag
/// stays for the next caller) and never unwinds (a kill is deferred).
fn settle_after_fork() {
    if !AFTER_FORK.with(Cell::get) {
        return;
    }
    if let Ok(w) = crate::hub::Wait::timed("the loop to settle after a fork", Some(Duration::ZERO))
    {
        AFTER_FORK.with(|f| f.set(false));
        let _ = w.park_or_defer();
    }
}

/// Pools whose workers stayed in a parent process, chained from a static so that
/// they stay reachable (a leak checker sees them as kept, not lost).
struct Orphan {
    _pool: ThreadPool,
    _prev: *mut Orphan,
}

static ORPHANS: std::sync::atomic::AtomicPtr<Orphan> =
    std::sync::atomic::AtomicPtr::new(std::ptr::null_mut());

fn orphan(pool: ThreadPool) {
    use std::sync::atomic::Ordering;
    let o = Box::into_raw(Box::new(Orphan {
        _pool: pool,
        _prev: ORPHANS.load(Ordering::Relaxed),
    }));
    ORPHANS.store(o, Ordering::Relaxed);
}

/// Runs the blocking `f` on this thread's [`default_pool`] and returns its pending
/// result at once, as tokio's `spawn_blocking` does: [`join`](ThreadResult::join)
/// waits for it parked, other greenlets running meanwhile. For file I/O and any other
/// call that only comes in a blocking form. To run and wait in one call:
/// [`ThreadPool::apply`] (gevent's `threadpool.apply`).
///
/// # Panics
/// If this thread's hub cannot be created, as [`ThreadPool::spawn`].
#[must_use = "the task runs anyway; join the result to wait for it or to see its panic"]
pub fn spawn_blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> ThreadResult<T> {
    default_pool().spawn(f)
}
