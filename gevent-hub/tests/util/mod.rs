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

/// Runs `f` (in the test's greenlet) under a watchdog [`with_timeout`](gevent_hub::with_timeout):
/// a lost wake-up fails the test after [`WATCHDOG_LIMIT`] instead of hanging it.
pub fn with_watchdog<R>(f: impl FnOnce() -> R) -> R {
    with_watchdog_for(WATCHDOG_LIMIT, f)
}

/// [`with_watchdog`] with a limit of its own (for tests that take long under valgrind).
pub fn with_watchdog_for<R>(limit: Duration, f: impl FnOnce() -> R) -> R {
    gevent_hub::with_timeout(limit, f)
        .unwrap_or_else(|e| panic!("watchdog: the test did not finish within {limit:?}: {e}"))
}

/// Runs `body` on a thread of its own (with a hub of its own) and fails the test if it
/// has not returned within [`WATCHDOG_LIMIT`]. Unlike [`with_watchdog`], whose gevent
/// `Timeout` fires only when the hub runs, this catches a call that blocks the whole
/// thread: the regression some tests exist for. The stuck thread is left behind.
pub fn on_thread<T: Send + 'static>(body: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    let h = std::thread::spawn(move || {
        let r = body();
        let _ = tx.send(());
        r
    });
    match rx.recv_timeout(WATCHDOG_LIMIT) {
        Ok(()) => h.join().expect("the test body panicked"),
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => match h.join() {
            Ok(_) => unreachable!("the body returned without reporting"),
            Err(p) => std::panic::resume_unwind(p),
        },
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
            panic!("hung: the test body did not return within {WATCHDOG_LIMIT:?} (a call blocked its thread)")
        }
    }
}

/// Runs `f` in the hub, from a loop callback (where nothing may wait, as in a watcher
/// callback), and returns what it returned.
pub fn in_hub<R: 'static>(f: impl FnOnce() -> R + 'static) -> R {
    let out = Rc::new(RefCell::new(None));
    let done = gevent_hub::Event::new();
    let (o, d) = (out.clone(), done.clone());
    gevent_hub::get_hub().get_loop().run_callback(move || {
        *o.borrow_mut() = Some(f());
        d.set();
    });
    done.wait().expect("the hub runs its callbacks");
    let r = out.borrow_mut().take();
    r.expect("the callback stored its result before setting the event")
}

/// Panics a test provokes on purpose (message starting with `expected:`) are not
/// printed: with `RUST_BACKTRACE` set, symbolising their backtraces under valgrind
/// takes seconds. Every other panic goes to the previous hook.
pub fn quiet_expected_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let p = info.payload();
            let msg = p
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| p.downcast_ref::<&str>().copied())
                .unwrap_or("");
            if !msg.starts_with("expected:") {
                prev(info);
            }
        }));
    });
}

/// `n` scaled by [`test_scale`], at least `min`.
pub fn scaled(n: usize, min: usize) -> usize {
    ((n as f64 * test_scale()) as usize).max(min)
}

/// An address on the running stack (of whatever greenlet calls it).
#[inline(never)]
pub fn stack_address() -> usize {
    let local = std::hint::black_box(0u8);
    std::hint::black_box(&local as *const u8 as usize)
}

/// Tests that must crash, exhaust or otherwise spoil their process run in a child: the
/// test binary re-run with only that test selected and `env` set to its name; the
/// test itself does its work only when [`is_child`] says it is that child.
pub fn run_child(env: &str, test: &str) -> std::process::Output {
    let exe = std::env::current_exe().expect("path of the test binary");
    std::process::Command::new(exe)
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(env, test)
        .output()
        .expect("run the test binary as a child")
}

/// True in the child [`run_child`] started for `test`.
pub fn is_child(env: &str, test: &str) -> bool {
    std::env::var(env).is_ok_and(|v| v == test)
}
