//! Helpers shared by the gevent-hub integration tests: counters that greenlet bodies
//! can capture, an ordered log, a way to let the hub drain what it has queued, and
//! readings of this process's memory.

// Each test binary compiles this module and uses only some of it.
#![allow(dead_code)]

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

/// How long a wait may last before a watchdog fails the test. Generous on purpose: it
/// only exists so that a lost wake-up fails instead of hanging (valgrind included).
pub const WATCHDOG_LIMIT: Duration = Duration::from_secs(10);

/// A shared counter for greenlet bodies to bump (greenlets live on one thread, so
/// `Rc<Cell>` is enough).
#[derive(Clone, Debug, Default)]
pub struct Counter(Rc<Cell<usize>>);

impl Counter {
    pub fn new() -> Counter {
        Counter::default()
    }

    pub fn bump(&self) {
        self.0.set(self.0.get() + 1);
    }

    pub fn get(&self) -> usize {
        self.0.get()
    }

    /// A value whose destructor bumps this counter: capture it in a greenlet body to
    /// see whether that body's destructors ran.
    pub fn drop_guard(&self) -> DropGuard {
        DropGuard(self.clone())
    }
}

/// Bumps its [`Counter`] when dropped (by a normal return or by unwinding).
#[derive(Debug)]
pub struct DropGuard(Counter);

impl Drop for DropGuard {
    fn drop(&mut self) {
        self.0.bump();
    }
}

/// An ordered record of what greenlets did, to assert on interleavings.
#[derive(Clone, Debug, Default)]
pub struct Log(Rc<RefCell<Vec<String>>>);

impl Log {
    pub fn new() -> Log {
        Log::default()
    }

    pub fn push(&self, entry: impl Into<String>) {
        self.0.borrow_mut().push(entry.into());
    }

    pub fn entries(&self) -> Vec<String> {
        self.0.borrow().clone()
    }
}

/// Lets the hub run until it has nothing queued: an idle watcher only fires once the
/// callback queue (greenlet starts, wake-ups, throws, links) is drained, including
/// callbacks queued while it was being drained.
pub fn settle() {
    gevent_hub::idle().expect("idle() in a greenlet never fails");
}

/// Field `field` of /proc/self/statm (0: virtual size, 1: resident), in bytes.
fn statm_bytes(field: usize) -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("read /proc/self/statm");
    let pages: usize = statm
        .split_whitespace()
        .nth(field)
        .and_then(|f| f.parse().ok())
        .expect("statm has the field");
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    pages * usize::try_from(page).unwrap_or(4096)
}

/// Resident set size of this process, from /proc/self/statm.
pub fn rss_bytes() -> usize {
    statm_bytes(1)
}

/// Virtual size of this process (all its mappings), from /proc/self/statm.
pub fn virtual_bytes() -> usize {
    statm_bytes(0)
}

/// Number of memory mappings of this process (greenlet stacks share them, 64 to a
/// mapping; two per stack on kernels without guard regions), from /proc/self/maps.
pub fn mapping_count() -> usize {
    std::fs::read_to_string("/proc/self/maps")
        .expect("read /proc/self/maps")
        .lines()
        .count()
}

/// True when running under valgrind, whose own allocations show up in RSS.
pub fn under_valgrind() -> bool {
    std::env::var("LD_PRELOAD").is_ok_and(|p| p.contains("vgpreload"))
}

/// `GEVENT_TEST_SCALE` (a factor in (0, 1], default 1): slow runs (valgrind) scale
/// the sizes of the large tests down with it.
pub fn test_scale() -> f64 {
    match std::env::var("GEVENT_TEST_SCALE") {
        Ok(s) => {
            let f: f64 = s
                .parse()
                .unwrap_or_else(|_| panic!("GEVENT_TEST_SCALE={s:?} is not a number"));
            assert!(
                f > 0.0 && f <= 1.0,
                "GEVENT_TEST_SCALE must be in (0, 1], got {f}"
            );
            f
        }
        Err(_) => 1.0,
    }
}
