//! The blocking monitor: a watchdog thread that reports a greenlet holding its hub's
//! thread for too long (gevent's `monitor_thread` and `max_blocking_time`).
//!
//! Cooperative scheduling only works if greenlets switch often. A greenlet that
//! computes for a second, or calls a blocking system function directly, stalls every
//! other greenlet and all I/O of its thread. The monitor notices, and says who.
//!
//! ## Episodes
//! An *episode* is one uninterrupted run of one greenlet on the hub's thread: it begins
//! when the thread switches to that greenlet and ends at the next greenlet switch. The
//! hub greenlet's own runs count too (a slow raw watcher callback is reported as the
//! hub), except while it is inside the poll: waiting for events is not blocking. The
//! loop's prepare phase marks "entering the poll" and its check phase "left the poll",
//! so a run of the hub also begins when it leaves the poll and ends when it enters it
//! again. An episode that lasts longer than the threshold is reported three ways
//! (see [`ReportKind`]): once when it is first seen over the threshold, again every
//! *period* while it lasts (default: the threshold, but at least 1 s, so a stuck
//! greenlet does not flood the log; gevent repeats every threshold), and once when it
//! ends, with its whole duration. A greenlet that makes five blocking calls in a row
//! without switching is one episode; two calls separated by a switch to the hub (even
//! `sleep(Duration::ZERO)`) are two.
//!
//! ## Where data moves
//! ```text
//!  hub's thread (writer)                         monitor thread (reader)
//!  ─────────────────────                         ───────────────────────
//!  every greenlet switch ─► on_switch(g) ──┐
//!  loop prepare (last)  ──► enter_poll() ──┼──►  Slot (seqlock, atomics only) ◄── read() every tick
//!  loop check (first)   ──► leave_poll() ──┘     seq | poll_seq | id | spawned_at | name[64 B]
//! ```
//! Each write bumps `seq`, so "`seq` has not moved since the last tick" means "no
//! switch, no loop phase": the same episode is still going on. The monitor thread
//! wakes every *tick* (threshold / 10, clamped to 1..=50 ms), reads the slot, and times
//! episodes with its own clock: an episode starts at the first tick that sees its
//! `seq` and ends at the first tick that sees a later one. Both ends are seen late by
//! less than one tick, so durations are accurate to about one tick (plus however late
//! the OS wakes the monitor thread, or however long its report function takes).
//!
//! ## The switch path
//! `on_switch` runs on every greenlet switch of every thread. Without a monitor it
//! is one thread-local load and a branch. With one, it is a seqlock write of a dozen
//! relaxed stores: no lock, no allocation, no formatting. The greenlet's name is
//! copied into the slot (up to 64 bytes; longer names are cut at a character boundary
//! and reported with `…`); an unnamed greenlet's `Greenlet-<id>` is formatted by the
//! monitor thread, not made on the switch path. The monitor thread never dereferences
//! memory of the hub's thread: the slot is shared through an `Arc`, the name is a
//! copy, and `spawned_at` is a `&'static Location`.
//!
//! ## One slot per hub
//! The slot belongs to the thread (= its hub): monitors on other threads have their
//! own and never see it. Several monitors on one thread share its slot, each with its
//! own threshold, period and report function; the slot is unhooked when the last of
//! them is dropped. The thread-local that points at it is a plain pointer without a
//! destructor, so switches made during thread-exit teardown read it safely whatever
//! order the other thread-locals are destroyed in.
//!
//! ## Turning it on
//! In code, with [`start_monitor`], [`start_monitor_with`] or [`MonitorBuilder`]; or
//! with gevent's environment variables, read by [`from_env`]:
//! `GEVENT_MONITOR_THREAD_ENABLE` (`1`/`true`/`on`/`yes`, any case) and
//! `GEVENT_MAX_BLOCKING_TIME` (the threshold in seconds, default `0.1`).

use crate::error::{Error, Result};
use crate::greenlet::GreenletState;
use gevent_core::{Check, Loop, Prepare, MAXPRI, MINPRI};
use std::cell::Cell;
use std::fmt;
use std::marker::PhantomData;
use std::panic::{catch_unwind, AssertUnwindSafe, Location};
use std::ptr;
use std::sync::atomic::{fence, AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The default threshold, as in gevent (`GEVENT_MAX_BLOCKING_TIME=0.1`).
pub const DEFAULT_THRESHOLD: Duration = Duration::from_millis(100);

/// The shortest default period between reports of one long episode.
pub const MIN_DEFAULT_PERIOD: Duration = Duration::from_secs(1);

/// The sampling interval's bounds: fine enough to time episodes near the threshold,
/// coarse enough that an idle monitor thread costs nothing noticeable.
const MIN_TICK: Duration = Duration::from_millis(1);
const MAX_TICK: Duration = Duration::from_millis(50);

/// Which report of an episode this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReportKind {
    /// The episode has just been seen running longer than the threshold.
    Started,
    /// The episode is still going on, one more period later.
    Ongoing,
    /// The episode is over (the thread switched greenlets, or the hub went back to its
    /// poll): its whole duration.
    Ended,
}

/// What the monitor reports: one greenlet holding its hub's thread without switching.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct BlockingReport {
    /// Which report of the episode this is.
    pub kind: ReportKind,
    /// The greenlet holding the thread.
    pub greenlet_id: u64,
    /// Its name (`Hub` for the hub itself, `main` for the thread's main greenlet).
    pub greenlet_name: String,
    /// Where it was spawned (`file:line:col`), if it was spawned through the hub.
    pub spawned_at: Option<String>,
    /// How long it has held the thread without switching: so far (`Started`,
    /// `Ongoing`) or in all (`Ended`). Accurate to about one tick
    /// ([`BlockingMonitor::tick`]).
    pub blocked_for: Duration,
    /// The hub's thread: its name, or its id if it has none.
    pub thread: String,
}

impl fmt::Display for BlockingReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "gevent: greenlet '{}' (id {}",
            self.greenlet_name, self.greenlet_id
        )?;
        if let Some(at) = &self.spawned_at {
            write!(f, ", spawned at {at}")?;
        }
        let d = Secs(self.blocked_for);
        let t = &self.thread;
        match self.kind {
            ReportKind::Started => write!(
                f,
                ") has held the hub of thread '{t}' for {d} without switching"
            ),
            ReportKind::Ongoing => write!(
                f,
                ") is still holding the hub of thread '{t}': {d} without switching so far"
            ),
            ReportKind::Ended => write!(
                f,
                ") held the hub of thread '{t}' for {d} in all without switching; it has switched now"
            ),
        }
    }
}

/// A duration at the precision the monitor measures.
struct Secs(Duration);

impl fmt::Display for Secs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 < Duration::from_secs(1) {
            write!(f, "{:.1} ms", self.0.as_secs_f64() * 1e3)
        } else {
            write!(f, "{:.3} s", self.0.as_secs_f64())
        }
    }
}

// ---------------------------------------------------------------------------------
// The slot: written by the hub's thread, read by monitor threads.

const NAME_WORDS: usize = 8;
const NAME_CAP: usize = NAME_WORDS * 8;
/// `name_len` of a greenlet that has no name yet: the reader makes `Greenlet-<id>`.
const NAME_UNSET: usize = usize::MAX;
/// Set in `name_len` when the name was cut to fit.
const NAME_CUT: usize = 1 << (usize::BITS - 2);

/// What the hub's thread is running. A seqlock: the hub's thread is the only writer
/// (`seq` is odd while it writes); readers retry or give up when `seq` moved under
/// them. Every field is an atomic, so a reader racing a writer reads stale or mixed
/// values, never undefined ones, and the `seq` check throws mixed ones away.
struct Slot {
    /// Bumped by 2 on every write (switch, prepare, check): "it has not moved" means
    /// "the same episode".
    seq: AtomicU64,
    /// The `seq` the last prepare left: equal to `seq` while the loop is in its poll.
    poll_seq: AtomicU64,
    /// The running greenlet's id.
    id: AtomicU64,
    /// Its spawn location: null or a `&'static Location`.
    spawned_at: AtomicPtr<Location<'static>>,
    /// Bytes of `name` in use, or `NAME_UNSET`; `NAME_CUT` flags a cut name.
    name_len: AtomicUsize,
    /// Its name's UTF-8 bytes, eight to a word.
    name: [AtomicU64; NAME_WORDS],
    /// How many monitors of the hub's thread share this slot (touched by that thread
    /// only; atomic because the slot is shared).
    users: AtomicUsize,
}

/// One consistent reading of a [`Slot`].
#[derive(Clone, Copy)]
struct Snapshot {
    seq: u64,
    in_poll: bool,
    id: u64,
    spawned_at: Option<&'static Location<'static>>,
    name_len: usize,
    name: [u8; NAME_CAP],
}

impl Slot {
    fn new() -> Slot {
        Slot {
            seq: AtomicU64::new(0),
            poll_seq: AtomicU64::new(u64::MAX), // never equal to an even seq
            id: AtomicU64::new(0),
            spawned_at: AtomicPtr::new(ptr::null_mut()),
            name_len: AtomicUsize::new(NAME_UNSET),
            name: Default::default(),
            users: AtomicUsize::new(0),
        }
    }

    /// Opens a write (hub's thread only). Returns the even `seq` it started from.
    #[inline]
    fn write_begin(&self) -> u64 {
        // The only writer: a load and a store are the increment, no read-modify-write.
        let s = self.seq.load(Ordering::Relaxed);
        self.seq.store(s.wrapping_add(1), Ordering::Relaxed);
        // Orders the odd `seq` before the data stores that follow (Boehm's seqlock).
        fence(Ordering::Release);
        s
    }

    #[inline]
    fn write_end(&self, s: u64) {
        self.seq.store(s.wrapping_add(2), Ordering::Release);
    }

    /// Records that the thread now runs `g`.
    #[inline]
    fn record(&self, g: &GreenletState) {
        let at = super::record::record_if_any(g).and_then(|r| r.spawned_at.get());
        self.record_parts(g.id(), g.name_if_set(), at);
    }

    #[inline]
    fn record_parts(&self, id: u64, name: Option<&str>, at: Option<&'static Location<'static>>) {
        let s = self.write_begin();
        self.id.store(id, Ordering::Relaxed);
        let at = at.map_or(ptr::null_mut(), |l| ptr::from_ref(l).cast_mut());
        self.spawned_at.store(at, Ordering::Relaxed);
        match name {
            None => self.name_len.store(NAME_UNSET, Ordering::Relaxed),
            Some(n) if n.len() <= NAME_CAP => {
                self.name_len.store(n.len(), Ordering::Relaxed);
                self.write_name(n.as_bytes());
            }
            Some(n) => self.write_cut_name(n),
        }
        self.write_end(s);
    }

    /// Copies at most `NAME_CAP` bytes into `name`, a little-endian word at a time
    /// (no memcpy call on the switch path).
    #[inline]
    fn write_name(&self, bytes: &[u8]) {
        let mut words = self.name.iter();
        let mut chunks = bytes.chunks_exact(8);
        // Chunks first: zip must not take a word it has no chunk for.
        for (c, word) in (&mut chunks).zip(&mut words) {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            word.store(u64::from_le_bytes(w), Ordering::Relaxed);
        }
        let rest = chunks.remainder();
        if let (false, Some(word)) = (rest.is_empty(), words.next()) {
            let v = match bytes.len().checked_sub(8) {
                // The last eight bytes, shifted down to the `rest.len()` that are new.
                Some(from) => {
                    let mut w = [0u8; 8];
                    w.copy_from_slice(&bytes[from..]);
                    u64::from_le_bytes(w) >> (8 * (8 - rest.len()))
                }
                None => rest.iter().rev().fold(0, |v, &b| v << 8 | u64::from(b)),
            };
            word.store(v, Ordering::Relaxed);
        }
    }

    /// A name too long for the slot: its first `NAME_CAP` bytes or fewer, ending on a
    /// character boundary.
    #[cold]
    fn write_cut_name(&self, n: &str) {
        let mut cut = NAME_CAP;
        while !n.is_char_boundary(cut) {
            cut -= 1;
        }
        self.name_len.store(cut | NAME_CUT, Ordering::Relaxed);
        self.write_name(&n.as_bytes()[..cut]);
    }

    /// The loop is about to poll (its last prepare watcher).
    fn enter_poll(&self) {
        let s = self.write_begin();
        self.poll_seq.store(s.wrapping_add(2), Ordering::Relaxed);
        self.write_end(s);
    }

    /// The loop is back from its poll (its first check watcher).
    fn leave_poll(&self) {
        let s = self.write_begin();
        self.write_end(s);
    }

    /// A consistent reading, or `None` if the hub's thread kept writing under us,
    /// which itself means it is switching, not blocked.
    fn read(&self) -> Option<Snapshot> {
        for _ in 0..64 {
            let s1 = self.seq.load(Ordering::Acquire);
            if s1 & 1 == 1 {
                std::hint::spin_loop();
                continue;
            }
            let poll = self.poll_seq.load(Ordering::Relaxed);
            let id = self.id.load(Ordering::Relaxed);
            let at = self.spawned_at.load(Ordering::Relaxed);
            let name_len = self.name_len.load(Ordering::Relaxed);
            let mut name = [0u8; NAME_CAP];
            for (chunk, word) in name.chunks_mut(8).zip(&self.name) {
                chunk.copy_from_slice(&word.load(Ordering::Relaxed).to_le_bytes());
            }
            // Orders the data loads before the second `seq` load (Boehm's seqlock).
            fence(Ordering::Acquire);
            if self.seq.load(Ordering::Relaxed) != s1 {
                std::hint::spin_loop();
                continue;
            }
            // SAFETY: the writer stores only null or a pointer made from a
            // `&'static Location<'static>`, which is valid forever on every thread.
            let spawned_at = unsafe { at.cast_const().as_ref() };
            return Some(Snapshot {
                seq: s1,
                in_poll: poll == s1,
                id,
                spawned_at,
                name_len,
                name,
            });
        }
        None
    }
}

impl Snapshot {
    fn greenlet_name(&self) -> String {
        if self.name_len == NAME_UNSET {
            return format!("Greenlet-{}", self.id);
        }
        let len = (self.name_len & !NAME_CUT).min(NAME_CAP);
        let mut s = String::from_utf8_lossy(&self.name[..len]).into_owned();
        if self.name_len & NAME_CUT != 0 {
            s.push('…');
        }
        s
    }
}

thread_local! {
    /// This thread's slot while at least one monitor watches its hub, else null. It
    /// owns one strong count of the slot's `Arc` (`Arc::into_raw`). A plain pointer, no
    /// destructor: switches made during thread-exit teardown read it whatever order the
    /// other thread-locals are destroyed in.
    static SLOT: Cell<*const Slot> = const { Cell::new(ptr::null()) };
}

/// The greenlet core's switch hook while a monitor watches this thread: called on
/// every switch with the greenlet switched to. (Without a monitor no hook is installed:
/// the switch path pays one thread-local load and a branch.)
#[inline]
pub(crate) fn on_switch(g: &GreenletState) {
    let p = SLOT.with(Cell::get);
    if !p.is_null() {
        // SAFETY: a non-null SLOT owns a strong count of the slot (taken by the first
        // monitor of this thread, given back by the last one after nulling SLOT), so
        // the slot is alive; monitors cannot leave the thread (they are !Send).
        unsafe { &*p }.record(g);
    }
}

// ---------------------------------------------------------------------------------
// The monitor.

/// Configures a monitor before starting it: the threshold and the period of repeated
/// reports.
///
/// # Examples
/// ```
/// use gevent_hub::monitor::MonitorBuilder;
/// use std::time::Duration;
///
/// let monitor = MonitorBuilder::new(Duration::from_millis(50))
///     .period(Duration::from_secs(5))
///     .start_with(|report| eprintln!("{report}"))?;
/// assert_eq!(monitor.period(), Duration::from_secs(5));
/// drop(monitor); // stops it
/// # Ok::<(), gevent_hub::Error>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct MonitorBuilder {
    threshold: Duration,
    period: Option<Duration>,
}

impl MonitorBuilder {
    /// A monitor that reports episodes longer than `threshold`. Thresholds under the
    /// 1 ms sampling tick act as one tick.
    pub fn new(threshold: Duration) -> MonitorBuilder {
        MonitorBuilder {
            threshold,
            period: None,
        }
    }

    /// How often a long episode is reported again while it lasts (default: the
    /// threshold, but at least [`MIN_DEFAULT_PERIOD`]). Reports come at tick
    /// boundaries, so a period under the tick acts as one tick.
    pub fn period(mut self, period: Duration) -> MonitorBuilder {
        self.period = Some(period);
        self
    }

    /// Starts the monitor on this thread's hub, printing each report to stderr.
    ///
    /// # Errors
    /// The hub could not be created, its loop refused the watchers, or the monitor
    /// thread could not be spawned.
    pub fn start(self) -> Result<BlockingMonitor> {
        self.start_with(|r| eprintln!("{r}"))
    }

    /// Starts the monitor on this thread's hub with a report function, called on the
    /// monitor thread. A panic in it is caught and printed, and monitoring goes on.
    ///
    /// # Errors
    /// As [`start`](MonitorBuilder::start).
    pub fn start_with(
        self,
        report: impl Fn(&BlockingReport) + Send + 'static,
    ) -> Result<BlockingMonitor> {
        let hub = crate::hub::try_get_hub()?;
        self.start_on(hub.get_loop(), Box::new(report))
    }

    fn start_on(self, lp: &Loop, report: Box<ReportFn>) -> Result<BlockingMonitor> {
        let threshold = self.threshold;
        let period = self
            .period
            .unwrap_or_else(|| threshold.max(MIN_DEFAULT_PERIOD));
        let tick = (threshold / 10).clamp(MIN_TICK, MAX_TICK);

        let existing = SLOT.with(Cell::get);
        let slot = if existing.is_null() {
            let slot = Arc::new(Slot::new());
            slot.record(&crate::greenlet::current_rc());
            slot
        } else {
            // SAFETY: a non-null SLOT came from `Arc::into_raw` and owns a strong count
            // (see `on_switch`), so the slot is alive and may gain a reference.
            unsafe {
                Arc::increment_strong_count(existing);
                Arc::from_raw(existing)
            }
        };

        // The prepare watcher runs last in its phase (lowest priority; libev runs the
        // hub's callback drain at the highest), so nothing runs between it and the
        // poll; the check watcher runs first after the poll.
        let prepare = lp.prepare();
        prepare.set_priority(MINPRI)?;
        let s = slot.clone();
        prepare.start(move |_, _| s.enter_poll())?;
        prepare.set_ref(false);
        let check = lp.check();
        check.set_priority(MAXPRI)?;
        let s = slot.clone();
        check.start(move |_, _| s.leave_poll())?;
        check.set_ref(false);

        let stop = Arc::new(AtomicBool::new(false));
        let cur = std::thread::current();
        let watch = Watch {
            slot: slot.clone(),
            stop: stop.clone(),
            threshold,
            period,
            tick,
            thread: cur
                .name()
                .map_or_else(|| format!("{:?}", cur.id()), str::to_owned),
            report,
        };
        let thread = std::thread::Builder::new()
            .name("gevent-monitor".into())
            .spawn(move || watch.run())
            .map_err(|e| {
                Error::ThreadSpawn(std::io::Error::new(
                    e.kind(),
                    format!("no thread for the blocking monitor: {e}"),
                ))
            })?;

        // Nothing can fail from here on: register the slot for the switch path.
        if slot.users.fetch_add(1, Ordering::Relaxed) == 0 {
            SLOT.with(|p| p.set(Arc::into_raw(slot.clone())));
            crate::greenlet::set_switch_hook(Some(on_switch));
        }
        Ok(BlockingMonitor {
            slot,
            stop,
            thread: Some(thread),
            threshold,
            period,
            tick,
            _prepare: prepare,
            _check: check,
            _this_thread: PhantomData,
        })
    }
}

type ReportFn = dyn Fn(&BlockingReport) + Send;

/// A running monitor of this thread's hub. Dropping it stops it: the monitor thread
/// takes one last sample (so an episode that has just ended still gets its `Ended`
/// report), then it is joined.
///
/// It cannot leave its thread (`!Send`). A report function that waits for the hub's
/// thread would deadlock the drop, which waits for the report function.
///
/// ```compile_fail
/// fn send_away<T: Send>(_: T) {}
/// let m = gevent_hub::monitor::start_monitor(std::time::Duration::from_secs(1)).unwrap();
/// send_away(m); // it stays on the thread whose hub it watches
/// ```
#[must_use = "the monitor stops as soon as it is dropped"]
pub struct BlockingMonitor {
    slot: Arc<Slot>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    threshold: Duration,
    period: Duration,
    tick: Duration,
    _prepare: Prepare,
    _check: Check,
    /// The slot registration is per thread, so the monitor must be dropped on its own.
    _this_thread: PhantomData<*const ()>,
}

impl fmt::Debug for BlockingMonitor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlockingMonitor")
            .field("threshold", &self.threshold)
            .field("period", &self.period)
            .field("tick", &self.tick)
            .finish()
    }
}

impl BlockingMonitor {
    /// Episodes longer than this are reported.
    pub fn threshold(&self) -> Duration {
        self.threshold
    }

    /// A long episode is reported again this often while it lasts.
    pub fn period(&self) -> Duration {
        self.period
    }

    /// The sampling interval: threshold / 10, clamped to 1..=50 ms. Durations are
    /// accurate to about this much.
    pub fn tick(&self) -> Duration {
        self.tick
    }
}

impl Drop for BlockingMonitor {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
        if self.slot.users.fetch_sub(1, Ordering::Relaxed) == 1 {
            // The last monitor of this thread: unhook the switch path, then give back
            // the reference SLOT owned.
            crate::greenlet::set_switch_hook(None);
            let p = SLOT.with(|p| p.replace(ptr::null()));
            if !p.is_null() {
                // SAFETY: SLOT's pointer came from `Arc::into_raw` and owned one strong
                // count; SLOT is null now, so nothing else will use that count.
                drop(unsafe { Arc::from_raw(p) });
            }
        }
    }
}

/// Starts a monitor for this thread's hub that prints a [`BlockingReport`] to stderr
/// when a greenlet holds the thread longer than `threshold`; see [`MonitorBuilder`]
/// for the period of repeated reports.
///
/// Monitors are per thread: one on another thread neither sees nor disturbs this
/// one. A second monitor on the same thread runs beside the first (both see the same
/// switches, each with its own threshold and reports).
///
/// # Errors
/// The hub could not be created, its loop refused the watchers, or the monitor thread
/// could not be spawned.
pub fn start_monitor(threshold: Duration) -> Result<BlockingMonitor> {
    MonitorBuilder::new(threshold).start()
}

/// [`start_monitor`] with a custom report function (called on the monitor thread).
///
/// # Examples
/// ```
/// use gevent_hub::monitor::{start_monitor_with, ReportKind};
/// use std::time::Duration;
///
/// let monitor = start_monitor_with(Duration::from_millis(100), |r| {
///     if r.kind != ReportKind::Ongoing {
///         eprintln!("{r}");
///     }
/// })?;
/// gevent_hub::sleep(Duration::ZERO); // switching: nothing to report
/// drop(monitor);
/// # Ok::<(), gevent_hub::Error>(())
/// ```
///
/// # Errors
/// As [`start_monitor`].
pub fn start_monitor_with(
    threshold: Duration,
    report: impl Fn(&BlockingReport) + Send + 'static,
) -> Result<BlockingMonitor> {
    MonitorBuilder::new(threshold).start_with(report)
}

/// Starts a monitor on this thread's hub if gevent's environment variables ask for
/// one: `GEVENT_MONITOR_THREAD_ENABLE` true (`1`, `true`, `on`, `yes`, any case and
/// surrounding spaces; `0`, `false`, `off`, `no` or empty for false) and
/// `GEVENT_MAX_BLOCKING_TIME` the threshold in seconds (default `0.1`). Reports go to
/// stderr, with the default period.
///
/// An invalid value prints one line to stderr saying which and why, and no monitor
/// is started (gevent refuses such a configuration with an error).
pub fn from_env() -> Option<BlockingMonitor> {
    match crate::hub::try_get_hub() {
        Ok(hub) => from_env_on(hub.get_loop()),
        Err(e) => {
            log::error!("cannot start the blocking monitor: {e}");
            None
        }
    }
}

/// [`from_env`] for a hub that is being made: takes its loop, does not look the hub
/// up.
pub(crate) fn from_env_on(lp: &Loop) -> Option<BlockingMonitor> {
    let enable = std::env::var_os(ENV_ENABLE);
    let max = std::env::var_os(ENV_MAX);
    let threshold = match parse_env(enable.as_deref(), max.as_deref()) {
        Ok(Some(t)) => t,
        Ok(None) => return None,
        Err(msg) => {
            log::error!("{msg}; the blocking monitor is not started");
            return None;
        }
    };
    match MonitorBuilder::new(threshold).start_on(lp, Box::new(|r| eprintln!("{r}"))) {
        Ok(m) => Some(m),
        Err(e) => {
            log::error!("cannot start the blocking monitor: {e}");
            None
        }
    }
}

const ENV_ENABLE: &str = "GEVENT_MONITOR_THREAD_ENABLE";
const ENV_MAX: &str = "GEVENT_MAX_BLOCKING_TIME";

/// The threshold the two variables ask for (`None`: no monitor), as gevent's
/// `validate_bool` and its positive-float setting read them.
fn parse_env(
    enable: Option<&std::ffi::OsStr>,
    max: Option<&std::ffi::OsStr>,
) -> std::result::Result<Option<Duration>, String> {
    let text = |name: &str, v: &std::ffi::OsStr| {
        v.to_str()
            .map(|s| s.trim().to_owned())
            .ok_or_else(|| format!("{name}={v:?} is not valid UTF-8"))
    };
    let Some(enable) = enable else {
        return Ok(None);
    };
    let on = text(ENV_ENABLE, enable)?;
    match on.to_ascii_lowercase().as_str() {
        "1" | "true" | "on" | "yes" => {}
        "0" | "false" | "off" | "no" | "" => return Ok(None),
        _ => {
            return Err(format!(
                "{ENV_ENABLE}={on:?} is not a boolean (1/true/on/yes or 0/false/off/no)"
            ))
        }
    }
    let Some(max) = max else {
        return Ok(Some(DEFAULT_THRESHOLD));
    };
    let secs = text(ENV_MAX, max)?;
    if secs.is_empty() {
        return Ok(Some(DEFAULT_THRESHOLD));
    }
    match secs.parse::<f64>() {
        Ok(s) if s > 0.0 => Duration::try_from_secs_f64(s)
            .map(Some)
            .map_err(|_| format!("{ENV_MAX}={secs:?} is too large a number of seconds")),
        _ => Err(format!(
            "{ENV_MAX}={secs:?} is not a positive number of seconds (e.g. 0.1)"
        )),
    }
}

// ---------------------------------------------------------------------------------
// The monitor thread.

/// What the monitor thread owns.
struct Watch {
    slot: Arc<Slot>,
    stop: Arc<AtomicBool>,
    threshold: Duration,
    period: Duration,
    tick: Duration,
    thread: String,
    report: Box<ReportFn>,
}

/// The episode being timed.
struct Episode {
    snap: Snapshot,
    /// The first tick that saw it.
    since: Instant,
    /// When it was last reported; `None` while it is under the threshold.
    reported: Option<Instant>,
}

impl Watch {
    fn run(self) {
        let mut episode = None;
        loop {
            std::thread::park_timeout(self.tick);
            let stopping = self.stop.load(Ordering::Acquire);
            // Also when stopping: the hub's thread has switched since an episode that is
            // now over, and its Ended report is due.
            self.sample(&mut episode);
            if stopping {
                return;
            }
        }
    }

    fn sample(&self, episode: &mut Option<Episode>) {
        let snap = self.slot.read();
        let now = Instant::now();
        if let (Some(e), Some(s)) = (episode.as_mut(), &snap) {
            if e.snap.seq == s.seq {
                if !e.snap.in_poll {
                    self.going_on(e, now);
                }
                return;
            }
        }
        // The thread has moved on (or is moving right now: `snap` is None).
        if let Some(e) = episode.take() {
            if e.reported.is_some() {
                self.emit(ReportKind::Ended, &e, now);
            }
        }
        *episode = snap.map(|snap| Episode {
            snap,
            since: now,
            reported: None,
        });
    }

    fn going_on(&self, e: &mut Episode, now: Instant) {
        let held = now.saturating_duration_since(e.since);
        match e.reported {
            None if held > self.threshold => {
                self.emit(ReportKind::Started, e, now);
                e.reported = Some(now);
            }
            Some(last) if now.saturating_duration_since(last) >= self.period => {
                self.emit(ReportKind::Ongoing, e, now);
                e.reported = Some(now);
            }
            _ => {}
        }
    }

    fn emit(&self, kind: ReportKind, e: &Episode, now: Instant) {
        let r = BlockingReport {
            kind,
            greenlet_id: e.snap.id,
            greenlet_name: e.snap.greenlet_name(),
            spawned_at: e.snap.spawned_at.map(|l| l.to_string()),
            blocked_for: now.saturating_duration_since(e.since),
            thread: self.thread.clone(),
        };
        if let Err(p) = catch_unwind(AssertUnwindSafe(|| (self.report)(&r))) {
            log::error!(
                "the blocking monitor's report function panicked: {}",
                crate::greenlet::panic_message(&*p)
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    fn name_of(slot: &Slot) -> String {
        slot.read().map(|s| s.greenlet_name()).unwrap_or_default()
    }

    #[test]
    fn names_survive_the_slot_and_long_ones_are_cut_at_a_char_boundary() {
        let slot = Slot::new();
        slot.record_parts(7, None, None);
        assert_eq!(name_of(&slot), "Greenlet-7");
        slot.record_parts(7, Some("Hub"), None);
        assert_eq!(name_of(&slot), "Hub");
        let exact = "x".repeat(NAME_CAP);
        slot.record_parts(7, Some(&exact), None);
        assert_eq!(name_of(&slot), exact);
        slot.record_parts(7, Some(&"y".repeat(NAME_CAP + 1)), None);
        assert_eq!(name_of(&slot), format!("{}…", "y".repeat(NAME_CAP)));
        // 'é' is two bytes: 63 of them do not end on byte 64.
        let wide = "é".repeat(NAME_CAP);
        slot.record_parts(7, Some(&wide), None);
        assert_eq!(name_of(&slot), format!("{}…", "é".repeat(NAME_CAP / 2)));
        // Every length, after a longer name: only its own bytes count.
        let all: String = ('a'..='z').cycle().take(NAME_CAP).collect();
        for len in 0..=NAME_CAP {
            slot.record_parts(9, Some(&exact), None);
            slot.record_parts(9, Some(&all[..len]), None);
            assert_eq!(name_of(&slot), &all[..len]);
        }
        slot.record_parts(8, Some("ab"), Some(Location::caller()));
        let s = slot.read().unwrap();
        assert_eq!((s.id, s.greenlet_name().as_str()), (8, "ab"));
        assert!(s
            .spawned_at
            .is_some_and(|l| l.file().ends_with("monitor.rs")));
    }

    #[test]
    fn every_write_moves_seq_and_only_the_last_prepare_means_in_poll() {
        let slot = Slot::new();
        let s0 = slot.read().unwrap();
        assert!(!s0.in_poll);
        slot.enter_poll();
        let s1 = slot.read().unwrap();
        assert!(s1.in_poll && s1.seq != s0.seq);
        slot.leave_poll();
        let s2 = slot.read().unwrap();
        assert!(!s2.in_poll && s2.seq != s1.seq);
        slot.enter_poll();
        slot.record_parts(1, None, None); // a switch out of the poll phase
        assert!(!slot.read().unwrap().in_poll);
    }

    #[test]
    fn env_values_are_read_as_gevent_reads_them() {
        let p = |e: Option<&str>, m: Option<&str>| parse_env(e.map(OsStr::new), m.map(OsStr::new));
        assert_eq!(p(None, Some("5")), Ok(None));
        for off in ["0", "false", "OFF", "no", "", "  "] {
            assert_eq!(p(Some(off), Some("junk")), Ok(None), "{off:?}");
        }
        for on in ["1", "true", "TRUE", " On ", "yes", "Yes"] {
            assert_eq!(p(Some(on), None), Ok(Some(DEFAULT_THRESHOLD)), "{on:?}");
        }
        assert_eq!(p(Some("1"), Some("")), Ok(Some(DEFAULT_THRESHOLD)));
        assert_eq!(
            p(Some("1"), Some(" 0.25 ")),
            Ok(Some(Duration::from_millis(250)))
        );
        assert_eq!(p(Some("1"), Some("2")), Ok(Some(Duration::from_secs(2))));
        for bad in ["0", "-1", "abc", "nan", "inf", "1e400", "0.1s"] {
            let e = p(Some("1"), Some(bad)).unwrap_err();
            assert!(e.contains(ENV_MAX), "{bad:?}: {e}");
        }
        let e = p(Some("maybe"), None).unwrap_err();
        assert!(e.contains(ENV_ENABLE) && e.contains("maybe"), "{e}");
    }
}
