//! The blocking monitor: a watchdog thread that reports a greenlet holding the hub's
//! thread for too long (gevent's `max_blocking_time`).
//!
//! Cooperative scheduling only works if greenlets switch often. A greenlet that
//! computes for a second, or calls a blocking system function directly, stalls every
//! other greenlet and all I/O of its thread. The monitor notices: the hub counts its
//! loop iterations (a prepare watcher) and marks when it is inside the poll (prepare
//! sets, check clears); the monitor thread wakes every quarter threshold, and when
//! the count has not moved for longer than the threshold while the hub is *not*
//! polling, it reports the greenlet that was switched to last: its name, id, where
//! it was spawned, and for how long it has held the thread. One report per episode.

use crate::error::Result;
use crate::greenlet::GInner;
use crate::hub::get_hub;
use gevent_core::{Check, Prepare};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The default threshold, as in gevent.
pub const DEFAULT_THRESHOLD: Duration = Duration::from_millis(100);

/// What the monitor reports.
#[derive(Debug, Clone)]
pub struct BlockingReport {
    /// The greenlet holding the thread.
    pub greenlet_id: u64,
    /// Its name.
    pub greenlet_name: String,
    /// Where it was spawned (`file:line:col`), if it was spawned through the hub.
    pub spawned_at: Option<String>,
    /// How long the hub has not run, when the report was made.
    pub blocked_for: Duration,
}

impl fmt::Display for BlockingReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "gevent: greenlet '{}' (id {}) has held the hub for {:?} without switching",
            self.greenlet_name, self.greenlet_id, self.blocked_for
        )?;
        if let Some(at) = &self.spawned_at {
            write!(f, " (spawned at {at})")?;
        }
        Ok(())
    }
}

struct Running {
    id: u64,
    name: String,
    spawned_at: Option<&'static std::panic::Location<'static>>,
}

struct Shared {
    iterations: AtomicU64,
    in_poll: AtomicBool,
    stop: AtomicBool,
    running: Mutex<Running>,
}

static ACTIVE: AtomicBool = AtomicBool::new(false);

thread_local! {
    static SHARED: std::cell::RefCell<Option<Arc<Shared>>> = const { std::cell::RefCell::new(None) };
}

/// Called on every greenlet switch; costs one relaxed load unless a monitor runs.
#[inline]
pub(crate) fn on_switch(g: &GInner) {
    if !ACTIVE.load(Ordering::Relaxed) {
        return;
    }
    let _ = SHARED.try_with(|s| {
        if let Some(s) = &*s.borrow() {
            let mut r = s.running.lock().unwrap_or_else(|e| e.into_inner());
            if r.id != g.id() {
                r.id = g.id();
                r.name.clear();
                r.name.push_str(g.name());
                r.spawned_at = g.spawned_at.get();
            }
        }
    });
}

/// A running monitor; dropping it stops the thread.
pub struct BlockingMonitor {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    _prepare: Prepare,
    _check: Check,
}

impl fmt::Debug for BlockingMonitor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlockingMonitor").finish()
    }
}

/// Starts a monitor for this thread's hub that prints a [`BlockingReport`] to stderr
/// when a greenlet holds the thread longer than `threshold`.
///
/// # Errors
/// The hub's loop refused the watchers.
pub fn start_monitor(threshold: Duration) -> Result<BlockingMonitor> {
    start_monitor_with(threshold, |r| eprintln!("{r}"))
}

/// [`start_monitor`] with a custom report function (called on the monitor thread).
///
/// # Errors
/// The hub's loop refused the watchers.
pub fn start_monitor_with(
    threshold: Duration,
    report: impl Fn(&BlockingReport) + Send + 'static,
) -> Result<BlockingMonitor> {
    let hub = get_hub();
    let shared = Arc::new(Shared {
        iterations: AtomicU64::new(0),
        in_poll: AtomicBool::new(false),
        stop: AtomicBool::new(false),
        running: Mutex::new(Running {
            id: 0,
            name: String::with_capacity(64),
            spawned_at: None,
        }),
    });
    {
        let cur = crate::greenlet::current_rc();
        let mut r = shared.running.lock().unwrap_or_else(|e| e.into_inner());
        r.id = cur.id();
        r.name.push_str(cur.name());
        r.spawned_at = cur.spawned_at.get();
    }
    let lp = hub.get_loop();
    let prepare = lp.prepare();
    let s = shared.clone();
    prepare.start(move |_, _| {
        s.iterations.fetch_add(1, Ordering::Relaxed);
        s.in_poll.store(true, Ordering::Relaxed);
    })?;
    prepare.set_ref(false);
    let check = lp.check();
    let s = shared.clone();
    check.start(move |_, _| {
        s.in_poll.store(false, Ordering::Relaxed);
    })?;
    check.set_ref(false);
    SHARED.with(|x| *x.borrow_mut() = Some(shared.clone()));
    ACTIVE.store(true, Ordering::Relaxed);

    let s = shared.clone();
    let thread = std::thread::Builder::new()
        .name("gevent-monitor".into())
        .spawn(move || {
            let tick = (threshold / 4).max(Duration::from_millis(1));
            let mut last = s.iterations.load(Ordering::Relaxed);
            let mut since = Instant::now();
            let mut reported = false;
            while !s.stop.load(Ordering::Relaxed) {
                std::thread::park_timeout(tick);
                let now = s.iterations.load(Ordering::Relaxed);
                if now != last || s.in_poll.load(Ordering::Relaxed) {
                    last = now;
                    since = Instant::now();
                    reported = false;
                    continue;
                }
                let held = since.elapsed();
                if held > threshold && !reported {
                    reported = true;
                    let r = s.running.lock().unwrap_or_else(|e| e.into_inner());
                    report(&BlockingReport {
                        greenlet_id: r.id,
                        greenlet_name: r.name.clone(),
                        spawned_at: r.spawned_at.map(|l| l.to_string()),
                        blocked_for: held,
                    });
                }
            }
        })
        .map_err(crate::error::Error::Spawn)?;
    Ok(BlockingMonitor {
        shared,
        thread: Some(thread),
        _prepare: prepare,
        _check: check,
    })
}

impl Drop for BlockingMonitor {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
        let _ = SHARED.try_with(|x| x.borrow_mut().take());
        ACTIVE.store(false, Ordering::Relaxed);
    }
}
