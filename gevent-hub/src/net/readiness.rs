//! The fd-keyed readiness core: every wait for a file descriptor goes through here.
//!
//! One registry per thread owns, per fd number, an [`FdState`]: for each
//! [`Direction`] the io watcher (made on the first wait and reused for every wait after
//! it), the one greenlet waiting, the remembered readiness and the timeout. The net
//! types, [`wait_read`](super::wait_read)/[`wait_write`](super::wait_write) on foreign
//! fds and, later, the monkey layer (which sees only fd numbers) all wait through it:
//!
//! ```text
//!  net types ──(their Rc<FdState>)──┐
//!  wait_read / wait_write ──(fd)────┼──► registry: Vec<Option<Rc<FdState>>> by fd
//!  monkey hooks ──(fd)──────────────┘        │
//!                                            ▼
//!                             FdState { dirs: [DirState; 2] }  (READ, WRITE)
//!                               DirState: io watcher, waiter, ready, timeout
//! ```
//!
//! A socket keeps its `Rc<FdState>` (the hot path then never looks the fd up); the
//! others find it by number, a `Vec` index.
//!
//! ## Waiting
//! [`FdState::wait`] arms the direction's watcher (only if it is not armed already),
//! records the waiting greenlet and parks. The watcher's callback wakes that greenlet;
//! at most one greenlet waits per direction (a second gets [`WaitError::Busy`]).
//! While nobody waits, a watcher does not keep the hub's loop alive (it is unreferenced),
//! so an idle socket never turns "would block forever" into a hang.
//!
//! [`wait_any`] parks one wait on many fds (a child's two output pipes, `poll` and
//! `select` over many fds). It does not take a direction's waiter slot: it *rides* the
//! direction's watcher, which wakes its riders beside its waiter, so a `poll` and a
//! read of one socket wait side by side, in either order (gevent allows a `select`
//! beside a reader). Whoever ends its wait last leaves the watcher as above.
//!
//! What the watcher is left as after a wait depends on who closes the fd ([`Closes`]):
//! - [`Closes::Reported`] (the net types; the monkey layer, which hooks `close`):
//!   *lazy disarm*. The watcher stays armed after a wake-up; if it fires while nobody
//!   waits, its callback disarms it. In a request/response exchange the next wait finds
//!   it still armed, so libev never touches the epoll set.
//! - [`Closes::Unreported`] (a foreign fd given to `wait_read`): the fd may be closed
//!   and its number reused behind the core's back, and epoll forgets a closed file by
//!   itself, so a watcher left armed would never see the new file. It is disarmed when
//!   the wait ends; the next wait restarts the same watcher, which hands the fd to the
//!   backend afresh.
//!
//! ## Closing
//! [`forget`] (and [`FdState::retire`], for an owner holding its state) is to be called
//! *before* an fd's number can name another file: before `close(2)`, before
//! `dup2`/`dup3` onto it, or as soon as one learns it already does. It wakes the fd's
//! waiters with [`WaitError::Closed`], stops its watchers (libev must not watch a closed
//! fd) and drops the number's state; the next wait on the number starts afresh.
//!
//! The registry belongs to its thread; fds waited on by other threads' hubs are not
//! its business. At thread exit it lets go of the state nobody else holds.

use crate::hub::{get_hub, Wait, Waker};
use gevent_core::{Events, Io};
use std::cell::{Cell, RefCell};
use std::fmt;
use std::io;
use std::mem::ManuallyDrop;
use std::os::fd::RawFd;
use std::rc::{Rc, Weak};
use std::time::Duration;

/// One direction of an fd: the index into [`FdState`]'s per-direction state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    /// Readable (or, for a listener, a connection to accept).
    Read = 0,
    /// Writable (or, for a connecting socket, connected).
    Write = 1,
}

impl Direction {
    fn events(self) -> Events {
        match self {
            Direction::Read => Events::READ,
            Direction::Write => Events::WRITE,
        }
    }

    /// What a greenlet waiting this way waits for (named in hub errors).
    fn what(self) -> &'static str {
        match self {
            Direction::Read => "a file descriptor to become readable",
            Direction::Write => "a file descriptor to become writable",
        }
    }

    fn verb(self) -> &'static str {
        match self {
            Direction::Read => "read",
            Direction::Write => "write",
        }
    }
}

/// Who tells the core about closes of an fd; decides what a wait leaves armed (see the
/// module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Closes {
    /// Every close, and every reuse of the number, is reported through [`forget`] (or
    /// [`FdState::retire`]) first: the watcher stays armed after a wake-up.
    Reported,
    /// The fd may be closed behind the core's back: the watcher is disarmed when the
    /// wait ends, and re-registered with the backend by the next one.
    Unreported,
}

/// Why a wait ended without the fd becoming ready.
#[derive(Debug)]
pub(crate) enum WaitError {
    /// The fd was closed through the core ([`forget`], [`FdState::retire`]), before or
    /// while this greenlet waited.
    Closed,
    /// The timeout passed.
    TimedOut,
    /// Another greenlet is already waiting in this direction.
    Busy,
    /// A kill or a `Timeout` arrived during a wait that must not unwind
    /// ([`FdState::wait_deferring`]): it is pending, to be delivered later.
    Interrupted,
    /// The hub refused the wait or ended it: called in the hub, the thread is ending,
    /// the loop ran out of work ("would block forever"), an invalid switch.
    Hub(crate::error::Error),
    /// libev refused the watcher (a negative fd, or one that is not open).
    Watcher(gevent_core::Error),
}

impl WaitError {
    /// The `io::Error` a caller waiting on `what` ("socket", "file descriptor") in
    /// direction `dir` reports.
    pub(crate) fn into_io(self, dir: Direction, what: &str) -> io::Error {
        match self {
            WaitError::Closed => closed_error(what),
            WaitError::TimedOut => io::Error::new(
                io::ErrorKind::TimedOut,
                format!("{what} {} timed out", dir.verb()),
            ),
            WaitError::Busy => io::Error::new(
                io::ErrorKind::ResourceBusy,
                format!(
                    "another greenlet is already waiting to {} this {what}; use one reader and one writer per {what}",
                    match dir {
                        Direction::Read => "read from",
                        Direction::Write => "write to",
                    }
                ),
            ),
            WaitError::Interrupted => io::Error::new(
                io::ErrorKind::Interrupted,
                format!("the {what} {} was interrupted by a kill or a timeout", dir.verb()),
            ),
            WaitError::Hub(e) => e.into(),
            WaitError::Watcher(e) => e.into(),
        }
    }
}

/// The error of an operation on something closed through the core.
pub(crate) fn closed_error(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotConnected,
        format!("the {what} was closed (possibly by another greenlet while this one waited on it)"),
    )
}

/// One direction's state.
#[derive(Default)]
pub(crate) struct DirState {
    /// Made on the first wait, reused by every wait after it; taken out at retirement.
    io: RefCell<Option<Io>>,
    /// The greenlet waiting in this direction, if any.
    waiter: RefCell<Option<Waker>>,
    /// Many-fd waits ([`wait_any`]) parked on this direction: its watcher wakes them
    /// beside the waiter; they never make a wait [`WaitError::Busy`].
    riders: RefCell<Vec<Waker>>,
    /// Other greenlets waiting in this direction on watchers of their own (the monkey
    /// layer lets a second "thread" block on one fd): told of a close too.
    others: RefCell<Vec<Waker>>,
    /// Remembered readiness: believed ready (nobody has looked yet, or the last attempt
    /// did not find it drained). Kept by the fd's owner; the core only stores it.
    ready: Cell<bool>,
    /// The default timeout of its owner's waits in this direction (`set_read_timeout`,
    /// `SO_RCVTIMEO`); [`FdState::wait`] itself takes an explicit one.
    timeout: Cell<Option<Duration>>,
}

impl DirState {
    fn new() -> DirState {
        DirState {
            ready: Cell::new(true),
            ..DirState::default()
        }
    }

    /// Whether an attempt is believed worth a system call (see [`DirState::ready`]).
    pub(crate) fn is_ready(&self) -> bool {
        self.ready.get()
    }

    /// Records what the last attempt found.
    pub(crate) fn set_ready(&self, ready: bool) {
        self.ready.set(ready);
    }

    /// The default timeout of a wait in this direction.
    pub(crate) fn timeout(&self) -> Option<Duration> {
        self.timeout.get()
    }

    /// Sets the default timeout; as std, a zero duration is an error, not "none".
    ///
    /// # Errors
    /// `InvalidInput` for `Some(Duration::ZERO)`.
    pub(crate) fn set_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        if t == Some(Duration::ZERO) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "cannot set a 0 duration timeout",
            ));
        }
        self.timeout.set(t);
        Ok(())
    }
}

/// The core's state of one fd number (see the module docs).
pub(crate) struct FdState {
    fd: RawFd,
    /// Retired: closed or forgotten through the core. Every wait fails with `Closed`.
    retired: Cell<bool>,
    /// The mode the fd's user sees (`set_nonblocking`): `true` means "return
    /// `WouldBlock` instead of waiting". The fd itself is non-blocking either way.
    nonblocking: Cell<bool>,
    /// The monkey layer's tag: the number's generation when it set this state up
    /// (its timeouts read from the socket's options); a different generation means
    /// the number names another file now.
    tag: Cell<Option<u32>>,
    dirs: [DirState; 2],
}

impl fmt::Debug for FdState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FdState")
            .field("fd", &self.fd)
            .field("retired", &self.retired.get())
            .finish()
    }
}

impl FdState {
    fn new(fd: RawFd) -> FdState {
        FdState {
            fd,
            retired: Cell::new(false),
            nonblocking: Cell::new(false),
            tag: Cell::new(None),
            dirs: [DirState::new(), DirState::new()],
        }
    }

    pub(crate) fn fd(&self) -> RawFd {
        self.fd
    }

    pub(crate) fn dir(&self, dir: Direction) -> &DirState {
        &self.dirs[dir as usize]
    }

    /// The user-visible non-blocking mode (see [`FdState::nonblocking`]).
    pub(crate) fn is_nonblocking(&self) -> bool {
        self.nonblocking.get()
    }

    pub(crate) fn set_nonblocking(&self, on: bool) {
        self.nonblocking.set(on);
    }

    /// The monkey layer's tag (see [`FdState::tag`]).
    pub(crate) fn tag(&self) -> Option<u32> {
        self.tag.get()
    }

    pub(crate) fn set_tag(&self, tag: u32) {
        self.tag.set(Some(tag));
    }

    /// Notes a waiter in `dir` that waits on a watcher of its own, so that a close
    /// through the core wakes it too (stale wakers are swept as they are added).
    pub(crate) fn add_other_waiter(&self, dir: Direction, w: Waker) {
        let mut o = self.dir(dir).others.borrow_mut();
        o.retain(Waker::is_valid);
        o.push(w);
    }

    /// Closed or forgotten through the core.
    pub(crate) fn is_retired(&self) -> bool {
        self.retired.get()
    }

    /// Waits until the fd is ready in `dir`, up to `timeout` (`None`: no limit; an
    /// owner passes its direction's [`DirState::timeout`] itself). See the module docs
    /// for what `closes` changes.
    ///
    /// # Errors
    /// [`WaitError`]: closed through the core, timed out, busy, the hub's or libev's.
    ///
    /// # Panics
    /// A kill or a [`Timeout`](crate::Timeout) unwinds from here, as from
    /// [`Wait::park`]; the watcher is left as after a timeout.
    pub(crate) fn wait(
        self: &Rc<Self>,
        dir: Direction,
        timeout: Option<Duration>,
        closes: Closes,
    ) -> Result<(), WaitError> {
        self.wait_as(dir, timeout, closes, false)
    }

    /// [`FdState::wait`] for a caller that must not unwind (the monkey layer's hooks,
    /// with C frames below them): a kill or a `Timeout` ends the wait with
    /// [`WaitError::Interrupted`] and stays pending (see `Wait::park_or_defer`).
    /// Closes are reported.
    ///
    /// # Errors
    /// As [`FdState::wait`], and [`WaitError::Interrupted`].
    pub(crate) fn wait_deferring(
        self: &Rc<Self>,
        dir: Direction,
        timeout: Option<Duration>,
    ) -> Result<(), WaitError> {
        self.wait_as(dir, timeout, Closes::Reported, true)
    }

    #[inline(always)]
    fn wait_as(
        self: &Rc<Self>,
        dir: Direction,
        timeout: Option<Duration>,
        closes: Closes,
        defer: bool,
    ) -> Result<(), WaitError> {
        if self.retired.get() {
            return Err(WaitError::Closed);
        }
        let d = self.dir(dir);
        if d.waiter.borrow().as_ref().is_some_and(Waker::is_valid) {
            return Err(WaitError::Busy);
        }
        let mut w = Wait::new(dir.what()).map_err(WaitError::Hub)?;
        if let Some(t) = timeout {
            w.set_timeout(t).map_err(WaitError::Hub)?;
        }
        self.arm(dir, closes)?;
        *d.waiter.borrow_mut() = Some(w.waker());
        let mut parked = Parked {
            d,
            rider: None,
            keep_armed: false,
        };
        let r = if defer {
            match w.park_or_defer() {
                Ok(Some(woken)) => Ok(woken),
                Ok(None) => return Err(WaitError::Interrupted),
                Err(e) => Err(e),
            }
        } else {
            w.park()
        };
        if self.retired.get() {
            return Err(WaitError::Closed);
        }
        match r {
            Ok(true) => {
                parked.keep_armed = closes == Closes::Reported;
                Ok(())
            }
            Ok(false) => Err(WaitError::TimedOut),
            Err(e) => Err(WaitError::Hub(e)),
        }
    }

    /// Starts this direction's watcher (made on first use), referenced: a waiter keeps
    /// the loop alive.
    fn arm(self: &Rc<Self>, dir: Direction, closes: Closes) -> Result<(), WaitError> {
        let mut slot = self.dir(dir).io.borrow_mut();
        if let Some(io) = &*slot {
            // A rearm skips libev-side checks; a foreign fd may have been closed since
            // its last wait, and libev must not be handed a closed fd.
            // SAFETY: F_GETFD only reads the descriptor flags of a number.
            if closes == Closes::Unreported && unsafe { libc::fcntl(self.fd, libc::F_GETFD) } == -1
            {
                return Err(WaitError::Watcher(gevent_core::Error::ClosedFd(self.fd)));
            }
            io.rearm().map_err(WaitError::Watcher)?;
            io.set_ref(true);
            return Ok(());
        }
        let io = get_hub()
            .get_loop()
            .io(self.fd, dir.events())
            .map_err(WaitError::Watcher)?;
        // Weak: the state owns the watcher, which must not own the state back.
        let state = Rc::downgrade(self);
        io.start(move |w, _| {
            // Taken out before any wake-up: no `Rc` of the state stays on the hub's
            // stack while it is suspended in a woken greenlet.
            let (waker, riders) = match Weak::upgrade(&state) {
                Some(s) => {
                    let d = s.dir(dir);
                    let k = d.waiter.borrow().clone();
                    let r = d.riders.borrow();
                    // No allocation unless a many-fd wait rides this watcher.
                    let r = if r.is_empty() { Vec::new() } else { r.clone() };
                    (k, r)
                }
                None => (None, Vec::new()),
            };
            let mut woke = false;
            if let Some(k) = waker.filter(Waker::is_valid) {
                k.wake_now();
                woke = true;
            }
            for k in riders {
                if k.is_valid() {
                    k.wake_now();
                    woke = true;
                }
            }
            if !woke {
                // Ready while nobody waits: stop until somebody does (lazy disarm).
                w.disarm();
            }
        })
        .map_err(WaitError::Watcher)?;
        *slot = Some(io);
        let _ = REGISTRY.try_with(|r| r.borrow_mut().watchers_created += 1);
        Ok(())
    }

    /// Retires this state: wakes its waiters (they get [`WaitError::Closed`]), stops and
    /// drops its watchers, and takes its number out of the registry if the registry
    /// still maps the number to it. Call it before the fd's number can name another
    /// file. Idempotent.
    pub(crate) fn retire(self: &Rc<Self>) {
        let _ = REGISTRY.try_with(|r| {
            let taken = {
                let mut r = r.borrow_mut();
                match r.fds.get_mut(self.fd as usize) {
                    Some(slot) if slot.as_ref().is_some_and(|s| Rc::ptr_eq(s, self)) => slot.take(),
                    _ => None,
                }
            };
            drop(taken);
        });
        self.shut();
    }

    /// Marks it retired, stops its watchers and wakes its waiters.
    fn shut(&self) {
        if self.retired.replace(true) {
            return;
        }
        let mut waiters = Vec::new();
        for d in &self.dirs {
            let io = d.io.borrow_mut().take();
            if let Some(io) = io {
                io.stop();
            }
            waiters.extend(d.waiter.borrow_mut().take());
            waiters.extend(d.riders.borrow_mut().drain(..));
            waiters.extend(d.others.borrow_mut().drain(..));
        }
        for w in waiters {
            w.wake();
        }
    }
}

/// Waits until one of `fds` is ready in its direction (`Ok(true)`), or `timeout`
/// passes (`Ok(false)`): one wait parked on many fds, for `poll`/`select` and a child
/// process's two output pipes. Which one is ready is the caller's to find out (a
/// `poll` of timeout zero, or trying each).
///
/// Each fd and direction waits through its own state in the core, its watcher made
/// once and reused, as [`FdState::wait`], but as a rider (see the module docs): it
/// takes no waiter slot, so neither it nor a greenlet's [`FdState::wait`] on the same
/// fd, before or after it, is [`WaitError::Busy`], and both are woken.
///
/// # Errors
/// [`WaitError::Closed`] if one of the fds was closed through the core before or
/// during the wait; libev's refusal of an fd; the hub's errors.
///
/// # Panics
/// A kill or a [`Timeout`](crate::Timeout) unwinds from here, as from [`Wait::park`].
pub(crate) fn wait_any(
    fds: &[(Rc<FdState>, Direction)],
    timeout: Option<Duration>,
    closes: Closes,
) -> Result<bool, WaitError> {
    let w = Wait::timed("one of several file descriptors to become ready", timeout)
        .map_err(WaitError::Hub)?;
    // Dropped before `w`: each restores its direction however the wait ends.
    let mut riding = Vec::with_capacity(fds.len());
    for (st, dir) in fds {
        if st.retired.get() {
            return Err(WaitError::Closed);
        }
        st.arm(*dir, closes)?;
        let d = st.dir(*dir);
        let k = w.waker();
        {
            let mut r = d.riders.borrow_mut();
            r.retain(Waker::is_valid);
            r.push(k.clone());
        }
        riding.push(Parked {
            d,
            rider: Some(k),
            keep_armed: false,
        });
    }
    let r = w.park();
    if fds.iter().any(|(st, _)| st.retired.get()) {
        return Err(WaitError::Closed);
    }
    match r {
        Ok(true) => {
            for p in &mut riding {
                p.keep_armed = closes == Closes::Reported;
            }
            Ok(true)
        }
        Ok(false) => Ok(false),
        Err(e) => Err(WaitError::Hub(e)),
    }
}

/// Restores a direction when a wait on it ends, however it ends (an unwinding kill
/// too): the wait leaves the direction (its waiter slot, or its place among the
/// riders), and if nobody else waits there any more the watcher stops keeping the
/// loop alive, and is left armed only after a wake-up of an fd whose closes are
/// reported. While somebody else still waits it is theirs, armed and referenced.
struct Parked<'a> {
    d: &'a DirState,
    /// The many-fd wait's waker, for a rider; `None` for the direction's waiter.
    rider: Option<Waker>,
    keep_armed: bool,
}

impl Drop for Parked<'_> {
    fn drop(&mut self) {
        let others_wait = {
            let mut riders = self.d.riders.borrow_mut();
            match &self.rider {
                Some(me) => {
                    riders.retain(|k| k.is_valid() && !k.same_wait(me));
                    self.d.waiter.borrow().as_ref().is_some_and(Waker::is_valid)
                }
                None => {
                    self.d.waiter.borrow_mut().take();
                    riders.retain(Waker::is_valid);
                    false
                }
            }
        } || !self.d.riders.borrow().is_empty();
        if others_wait {
            return;
        }
        if let Some(io) = &*self.d.io.borrow() {
            if self.keep_armed {
                io.set_ref(false);
            } else {
                io.disarm();
            }
        }
    }
}

/// The per-thread map from fd number to state.
struct Registry {
    fds: Vec<Option<Rc<FdState>>>,
    /// Io watchers made by this thread's core so far (for [`stats`]).
    watchers_created: u64,
    /// The thread-exit hook that empties the registry is registered.
    hooked: bool,
}

thread_local! {
    // No destructor (thread teardown must not depend on the order thread-locals are
    // destroyed in): a greenlet-layer exit hook empties it instead, dropping the state
    // nobody else holds (and so its watchers, which hold the loop). Owners hold their
    // state themselves and cope with the registry being empty.
    static REGISTRY: ManuallyDrop<RefCell<Registry>> = const {
        ManuallyDrop::new(RefCell::new(Registry {
            fds: Vec::new(),
            watchers_created: 0,
            hooked: false,
        }))
    };
}

/// Registers, once per thread, the exit hook that empties the registry.
fn hook_exit(r: &mut Registry) {
    if !r.hooked {
        r.hooked = crate::greenlet::at_thread_exit(|| {
            let fds = REGISTRY.with(|r| std::mem::take(&mut r.borrow_mut().fds));
            drop(fds);
        });
    }
}

fn index(fd: RawFd) -> Result<usize, WaitError> {
    usize::try_from(fd).map_err(|_| WaitError::Watcher(gevent_core::Error::NegativeFd(fd)))
}

/// The state of `fd`, made on first use.
///
/// # Errors
/// [`WaitError::Watcher`] for a negative fd; [`WaitError::Hub`] once the thread's
/// registry is gone (the thread is ending).
pub(crate) fn state(fd: RawFd) -> Result<Rc<FdState>, WaitError> {
    let i = index(fd)?;
    REGISTRY
        .try_with(|r| {
            let mut r = r.borrow_mut();
            hook_exit(&mut r);
            if r.fds.len() <= i {
                r.fds.resize_with(i + 1, || None);
            }
            r.fds[i]
                .get_or_insert_with(|| Rc::new(FdState::new(fd)))
                .clone()
        })
        .map_err(|_| WaitError::Hub(crate::error::Error::ThreadExiting))
}

/// Fresh state for `fd`, a number its caller has just been handed by the kernel (a new
/// socket, an adopted fd): whatever the registry still held for the number is stale,
/// and is retired first (its waiters get [`WaitError::Closed`]). If the registry is
/// gone (thread exit), the state is the caller's alone.
pub(crate) fn adopt(fd: RawFd) -> Rc<FdState> {
    let s = Rc::new(FdState::new(fd));
    let Ok(i) = usize::try_from(fd) else {
        return s;
    };
    let old = REGISTRY
        .try_with(|r| {
            let mut r = r.borrow_mut();
            hook_exit(&mut r);
            if r.fds.len() <= i {
                r.fds.resize_with(i + 1, || None);
            }
            r.fds[i].replace(s.clone())
        })
        .ok()
        .flatten();
    if let Some(old) = old {
        old.shut();
    }
    s
}

/// The state of `fd` if the registry has one (makes none).
pub(crate) fn state_if_any(fd: RawFd) -> Option<Rc<FdState>> {
    let i = usize::try_from(fd).ok()?;
    REGISTRY
        .try_with(|r| {
            r.try_borrow()
                .ok()
                .and_then(|r| r.fds.get(i).and_then(Clone::clone))
        })
        .ok()
        .flatten()
}

/// Waits until `fd` is ready in `dir`, up to `timeout` (`None`: no limit):
/// [`FdState::wait`] on the number's state.
///
/// # Errors
/// As [`FdState::wait`]; [`WaitError::Closed`] tells that the fd was closed through the
/// core while this greenlet waited.
pub(crate) fn wait(
    fd: RawFd,
    dir: Direction,
    timeout: Option<Duration>,
    closes: Closes,
) -> Result<(), WaitError> {
    state(fd)?.wait(dir, timeout, closes)
}

/// Tells the core that `fd` is about to be closed, or that its number was (or is about
/// to be) made to name another file (`dup2`/`dup3` onto it, a close the core missed):
/// wakes its waiters with [`WaitError::Closed`], stops and drops its watchers and
/// remembered state. Call it *before* the number can be reused. A number the core has
/// no state for costs a `Vec` lookup.
pub(crate) fn forget(fd: RawFd) {
    let Ok(i) = usize::try_from(fd) else { return };
    // `try_borrow_mut`: libc's `close` hook calls this, and must not panic even if it
    // were ever reached while the registry is borrowed.
    let taken = REGISTRY
        .try_with(|r| {
            r.try_borrow_mut()
                .ok()
                .and_then(|mut r| r.fds.get_mut(i).and_then(Option::take))
        })
        .ok()
        .flatten();
    if let Some(s) = taken {
        s.shut();
    }
}

/// What this thread's core holds, for tests and diagnostics.
// Read by the unit tests only, so far; the monkey layer's diagnostics will too.
#[cfg_attr(not(test), allow(dead_code))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Stats {
    /// Fd numbers with state in the registry.
    pub(crate) fds: usize,
    /// Io watchers this thread's core has made so far.
    pub(crate) watchers_created: u64,
}

/// This thread's [`Stats`] (all zero once its registry is gone).
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) fn stats() -> Stats {
    REGISTRY
        .try_with(|r| {
            let r = r.borrow();
            Stats {
                fds: r.fds.iter().filter(|s| s.is_some()).count(),
                watchers_created: r.watchers_created,
            }
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    //! The registry's own promises, seen through its crate-internal API: one watcher per
    //! fd and direction however many waits, and a close through the core that ends a
    //! wait before the number can be reused. (Each test runs on its own thread, so the
    //! thread's registry and its counts are the test's alone.)

    use super::*;
    use crate::{sleep, spawn, with_timeout};
    use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd};

    const WATCHDOG: Duration = Duration::from_secs(10);

    /// A non-blocking pipe: (read end, write end).
    fn pipe() -> (OwnedFd, OwnedFd) {
        let mut fds = [0; 2];
        // SAFETY: pipe2 fills the two-int array we pass.
        let r = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) };
        assert_eq!(r, 0, "pipe2: {}", io::Error::last_os_error());
        // SAFETY: both fds were just made and are owned by nobody else.
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
    }

    fn put(fd: &OwnedFd, b: u8) {
        // SAFETY: writes one byte from a valid buffer to an open fd.
        let r = unsafe { libc::write(fd.as_raw_fd(), [b].as_ptr().cast(), 1) };
        assert_eq!(r, 1, "write: {}", io::Error::last_os_error());
    }

    fn take(fd: &OwnedFd) -> u8 {
        let mut b = [0u8; 1];
        // SAFETY: reads one byte into a valid buffer from an open fd.
        let r = unsafe { libc::read(fd.as_raw_fd(), b.as_mut_ptr().cast(), 1) };
        assert_eq!(r, 1, "read: {}", io::Error::last_os_error());
        b[0]
    }

    #[test]
    fn waits_on_one_fd_reuse_its_watcher() {
        with_timeout(WATCHDOG, || {
            let (rd, wr) = pipe();
            let wr = Rc::new(wr);
            let before = stats().watchers_created;
            for i in 0..5u8 {
                let w = wr.clone();
                // Runs once the wait below has parked.
                let writer = spawn(move || put(&w, i));
                wait(rd.as_raw_fd(), Direction::Read, None, Closes::Unreported).unwrap();
                assert_eq!(take(&rd), i);
                writer.join().unwrap();
            }
            assert_eq!(
                stats().watchers_created - before,
                1,
                "five waits for one fd made one io watcher"
            );
            // The other direction has its own, made once too.
            for _ in 0..3 {
                wait(wr.as_raw_fd(), Direction::Write, None, Closes::Unreported).unwrap();
            }
            assert_eq!(stats().watchers_created - before, 2);
        })
        .unwrap();
    }

    #[test]
    fn a_close_through_the_core_ends_a_wait_before_the_number_is_reused() {
        with_timeout(WATCHDOG, || {
            let (rd, wr) = pipe();
            let n = rd.as_raw_fd();
            let waiter = spawn(move || wait(n, Direction::Read, None, Closes::Reported));
            sleep(Duration::ZERO);
            assert!(!waiter.ready(), "the waiter is parked");
            // Another greenlet closes the fd through the core, and the number is reused
            // at once by a pipe that is readable (dup2 closes and reuses in one step,
            // which other tests' threads opening fds cannot race).
            let closer = spawn(move || {
                forget(n);
                let (rd2, wr2) = pipe();
                put(&wr2, 1);
                // SAFETY: `rd` is ours: dup2 closes it and makes its number name rd2's
                // pipe; `n` is then owned by the returned OwnedFd.
                let r = unsafe { libc::dup2(rd2.as_raw_fd(), rd.into_raw_fd()) };
                assert_eq!(r, n, "dup2: {}", io::Error::last_os_error());
                // SAFETY: as above.
                (unsafe { OwnedFd::from_raw_fd(n) }, rd2, wr2)
            });
            let (reused, _rd2, _wr2) = closer.join().unwrap();
            assert_eq!(take(&reused), 1, "the number names the new pipe");
            match waiter.join().unwrap() {
                Err(WaitError::Closed) => {}
                other => {
                    panic!("the waiter must learn of the close, not of the new file: {other:?}")
                }
            }
            assert_eq!(stats().fds, 0, "the core forgot the number");
            drop(wr);
        })
        .unwrap();
    }

    #[test]
    fn a_second_waiter_in_one_direction_is_busy() {
        with_timeout(WATCHDOG, || {
            let (rd, wr) = pipe();
            let n = rd.as_raw_fd();
            let first = spawn(move || wait(n, Direction::Read, None, Closes::Unreported));
            sleep(Duration::ZERO);
            assert!(matches!(
                wait(n, Direction::Read, None, Closes::Unreported),
                Err(WaitError::Busy)
            ));
            // The other direction is free.
            wait(wr.as_raw_fd(), Direction::Write, None, Closes::Unreported).unwrap();
            put(&wr, 7);
            first.join().unwrap().unwrap();
            assert_eq!(take(&rd), 7);
        })
        .unwrap();
    }

    #[test]
    fn adopting_a_number_retires_what_the_core_held_for_it() {
        with_timeout(WATCHDOG, || {
            let (rd, _wr) = pipe();
            let n = rd.as_raw_fd();
            let old = state(n).unwrap();
            let waiter = spawn(move || wait(n, Direction::Read, None, Closes::Unreported));
            sleep(Duration::ZERO);
            let fresh = adopt(n);
            assert!(!Rc::ptr_eq(&old, &fresh));
            assert!(Rc::ptr_eq(&state(n).unwrap(), &fresh));
            assert!(matches!(waiter.join().unwrap(), Err(WaitError::Closed)));
            fresh.retire();
            assert_eq!(stats().fds, 0);
        })
        .unwrap();
    }
}
