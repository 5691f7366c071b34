//! The blocking monitor: which greenlet held the hub's thread, for how long, reported
//! when it starts, while it lasts, and when it ends; one monitor per thread.
//!
//! A greenlet blocks its thread for real in `std::sync::mpsc::Receiver::recv`, and the
//! report function (on the monitor thread) releases it once it has seen the reports
//! the test needs: no sleeps, no timing in the assertions. The watchdog bound on each
//! wait only turns a broken monitor into a failure instead of a hang.

mod util;

use gevent_hub::monitor::{BlockingMonitor, BlockingReport, MonitorBuilder, ReportKind};
use gevent_hub::{get_hub, sleep, Builder, Event};
use std::cell::Cell;
use std::rc::Rc;
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use util::WATCHDOG_LIMIT;
use ReportKind::{Ended, Ongoing, Started};

/// Small, so the whole file blocks for a few hundred milliseconds at most.
const THRESHOLD: Duration = Duration::from_millis(20);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A report function that panics on purpose poisons nothing we care about.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Which reports a test is about: greenlets named by id (known once spawned) or name.
#[derive(Clone, Default)]
struct Target {
    ids: Arc<Mutex<Vec<u64>>>,
    names: Arc<Mutex<Vec<&'static str>>>,
    reports: Arc<Mutex<Vec<BlockingReport>>>,
}

impl Target {
    fn add_id(&self, id: u64) {
        lock(&self.ids).push(id);
    }
    fn add_name(&self, name: &'static str) {
        lock(&self.names).push(name);
    }
    fn matches(&self, r: &BlockingReport) -> bool {
        lock(&self.ids).contains(&r.greenlet_id)
            || lock(&self.names).contains(&r.greenlet_name.as_str())
    }
    /// The target's reports so far, in the order they were made.
    fn reports(&self) -> Vec<BlockingReport> {
        lock(&self.reports).clone()
    }
}

/// Starts a monitor on this thread that logs the target's reports and sends a token
/// to the returned receiver each time `release` (given those reports so far) says so.
fn watch(
    b: MonitorBuilder,
    release: impl Fn(&[BlockingReport]) -> bool + Send + 'static,
) -> (BlockingMonitor, Target, Receiver<()>) {
    let target = Target::default();
    let t = target.clone();
    let (tx, rx) = mpsc::channel();
    let m = b
        .start_with(move |r| {
            if !t.matches(r) {
                return; // e.g. the main greenlet, descheduled on a loaded machine
            }
            let mut log = lock(&t.reports);
            log.push(r.clone());
            if release(&log) {
                let _ = tx.send(());
            }
        })
        .unwrap();
    (m, target, rx)
}

/// Blocks the thread (not just the greenlet) until the monitor releases it.
fn block(gate: &Receiver<()>) {
    gate.recv_timeout(WATCHDOG_LIMIT)
        .expect("the monitor never reported the blocked greenlet");
}

fn kinds(rs: &[BlockingReport]) -> Vec<ReportKind> {
    rs.iter().map(|r| r.kind).collect()
}

/// Reports of one episode: Started, then Ongoing ones, then Ended; durations that never
/// go down.
fn assert_one_episode(rs: &[BlockingReport]) {
    let k = kinds(rs);
    assert!(k.len() >= 2, "{rs:#?}");
    assert_eq!(k[0], Started, "{rs:#?}");
    assert_eq!(k[k.len() - 1], Ended, "{rs:#?}");
    assert!(k[1..k.len() - 1].iter().all(|&k| k == Ongoing), "{rs:#?}");
    for w in rs.windows(2) {
        assert!(w[0].blocked_for <= w[1].blocked_for, "{rs:#?}");
        assert_eq!(w[0].greenlet_id, w[1].greenlet_id, "{rs:#?}");
    }
}

#[test]
fn names_the_blocking_greenlet_where_it_was_spawned_and_its_thread() {
    let (m, target, gate) = watch(MonitorBuilder::new(THRESHOLD), |rs| rs.len() == 1);
    let g = Builder::new()
        .name("cpu-hog")
        .spawn(move || block(&gate))
        .unwrap();
    target.add_id(g.id());
    let (id, at) = (g.id(), g.spawned_at().to_string());
    g.join().unwrap();
    drop(m);

    let rs = target.reports();
    assert_eq!(kinds(&rs), [Started, Ended], "{rs:#?}");
    let thread = std::thread::current().name().unwrap_or_default().to_owned();
    for r in &rs {
        assert_eq!(r.greenlet_id, id);
        assert_eq!(r.greenlet_name, "cpu-hog");
        assert_eq!(r.spawned_at.as_deref(), Some(at.as_str()));
        assert!(at.contains("tests/monitor.rs:"), "{at}");
        assert_eq!(r.thread, thread);
    }
    assert!(rs[1].blocked_for >= rs[0].blocked_for);
    let (started, ended) = (rs[0].to_string(), rs[1].to_string());
    assert!(
        started.contains("'cpu-hog'") && started.contains("has held"),
        "{started}"
    );
    assert!(ended.contains(&at) && ended.contains("in all"), "{ended}");
}

#[test]
fn a_long_episode_is_reported_periodically_then_once_when_it_ends() {
    let b = MonitorBuilder::new(THRESHOLD).period(THRESHOLD);
    let (m, target, gate) = watch(b, |rs| {
        rs.last().is_some_and(|r| r.kind == Ongoing)
            && rs.iter().filter(|r| r.kind == Ongoing).count() == 2
    });
    let g = Builder::new()
        .name("stuck")
        .spawn(move || block(&gate))
        .unwrap();
    target.add_id(g.id());
    g.join().unwrap();
    drop(m);

    let rs = target.reports();
    assert_one_episode(&rs);
    assert!(
        kinds(&rs).iter().filter(|&&k| k == Ongoing).count() >= 2,
        "{rs:#?}"
    );
    assert!(rs[rs.len() - 1].to_string().contains("'stuck'"));
    assert!(rs[1].to_string().contains("still holding"), "{}", rs[1]);
}

#[test]
fn several_blocking_calls_without_a_switch_are_one_episode() {
    // Each of the first three reports releases one of three blocking calls in a row.
    let b = MonitorBuilder::new(THRESHOLD).period(THRESHOLD);
    let (m, target, gate) = watch(b, |rs| rs.len() <= 3);
    let g = Builder::new()
        .spawn(move || {
            for _ in 0..3 {
                block(&gate);
            }
        })
        .unwrap();
    target.add_id(g.id());
    let id = g.id();
    g.join().unwrap();
    drop(m);

    let rs = target.reports();
    assert_one_episode(&rs);
    assert!(rs.len() >= 4, "{rs:#?}"); // Started, two Ongoing, Ended
    for r in &rs {
        // Unnamed: the monitor thread names it; the switch path did not.
        assert_eq!(r.greenlet_name, format!("Greenlet-{id}"));
    }
}

#[test]
fn a_switch_to_the_hub_separates_two_episodes() {
    let (m, target, gate) = watch(MonitorBuilder::new(THRESHOLD), |rs| {
        rs.last().is_some_and(|r| r.kind == Started)
    });
    let g = Builder::new()
        .name("twice")
        .spawn(move || {
            block(&gate);
            sleep(Duration::ZERO);
            block(&gate);
        })
        .unwrap();
    target.add_id(g.id());
    g.join().unwrap();
    drop(m);

    let rs = target.reports();
    let ends: Vec<_> = kinds(&rs).into_iter().filter(|&k| k != Ongoing).collect();
    assert_eq!(ends, [Started, Ended, Started, Ended], "{rs:#?}");
    let second = rs.iter().rposition(|r| r.kind == Started).unwrap();
    assert_one_episode(&rs[..second]);
    assert_one_episode(&rs[second..]);
}

#[test]
fn the_hub_running_a_slow_callback_is_reported_as_the_hub() {
    let (m, target, gate) = watch(MonitorBuilder::new(THRESHOLD), |rs| rs.len() == 1);
    target.add_name("Hub");
    let (done, released) = (Event::new(), Rc::new(Cell::new(false)));
    let (d2, r2) = (done.clone(), released.clone());
    get_hub().get_loop().run_callback(move || {
        // In the hub itself: a panic here would only be reported by the loop.
        r2.set(gate.recv_timeout(WATCHDOG_LIMIT).is_ok());
        d2.set();
    });
    done.wait().unwrap();
    drop(m);

    assert!(released.get(), "the monitor never reported the hub");
    let rs = target.reports();
    assert_one_episode(&rs);
    assert!(rs.iter().all(|r| r.spawned_at.is_none()), "{rs:#?}");
}

#[test]
fn dropping_a_monitor_on_one_thread_leaves_another_threads_monitor_intact() {
    let (a_ready, b_go) = mpsc::channel::<()>();
    let (b_done, a_go) = mpsc::channel::<()>();
    let b = std::thread::spawn(move || {
        b_go.recv().unwrap();
        let (m, target, gate) = watch(MonitorBuilder::new(THRESHOLD), |rs| rs.len() == 1);
        let g = Builder::new()
            .name("b-blocker")
            .spawn(move || block(&gate))
            .unwrap();
        target.add_id(g.id());
        g.join().unwrap();
        drop(m); // while A's monitor runs
        b_done.send(()).unwrap();
        target.reports()
    });

    let (m, target, gate) = watch(MonitorBuilder::new(THRESHOLD), |rs| rs.len() == 1);
    a_ready.send(()).unwrap();
    a_go.recv_timeout(WATCHDOG_LIMIT).unwrap();
    // Only now does A switch to the greenlet that blocks: A's monitor must see it.
    let g = Builder::new()
        .name("a-blocker")
        .spawn(move || block(&gate))
        .unwrap();
    target.add_id(g.id());
    g.join().unwrap();
    drop(m);

    let ra = target.reports();
    assert_one_episode(&ra);
    assert!(ra.iter().all(|r| r.greenlet_name == "a-blocker"), "{ra:#?}");
    let rb = b.join().unwrap();
    assert_one_episode(&rb);
    assert!(rb.iter().all(|r| r.greenlet_name == "b-blocker"), "{rb:#?}");
    assert_ne!(ra[0].thread, rb[0].thread);
}

#[test]
fn two_monitors_on_one_thread_both_report_and_either_may_go_first() {
    let (m1, t1, gate1) = watch(MonitorBuilder::new(THRESHOLD), |rs| rs.len() == 1);
    let (m2, t2, gate2) = watch(MonitorBuilder::new(THRESHOLD), |rs| {
        rs.last().is_some_and(|r| r.kind == Started)
    });
    let first = Builder::new()
        .name("first")
        .spawn(move || {
            block(&gate1);
            block(&gate2);
            gate2
        })
        .unwrap();
    t1.add_id(first.id());
    t2.add_id(first.id());
    let gate2 = first.join().unwrap();
    drop(m1);
    // The remaining monitor still sees this thread's switches.
    let second = Builder::new()
        .name("second")
        .spawn(move || block(&gate2))
        .unwrap();
    t2.add_id(second.id());
    let second_id = second.id();
    second.join().unwrap();
    drop(m2);

    let r1 = t1.reports();
    assert_one_episode(&r1);
    assert!(r1.iter().all(|r| r.greenlet_name == "first"), "{r1:#?}");
    let r2 = t2.reports();
    let split = r2.iter().position(|r| r.greenlet_id == second_id).unwrap();
    assert_one_episode(&r2[..split]);
    assert_one_episode(&r2[split..]);
    assert!(
        r2[..split].iter().all(|r| r.greenlet_name == "first"),
        "{r2:#?}"
    );
    assert!(
        r2[split..].iter().all(|r| r.greenlet_name == "second"),
        "{r2:#?}"
    );
}

#[test]
fn a_panicking_report_function_does_not_stop_the_monitor() {
    let b = MonitorBuilder::new(THRESHOLD).period(THRESHOLD);
    let (m, target, gate) = watch(b, |rs| {
        assert!(
            rs.len() != 1,
            "this report function fails on its first report"
        );
        rs.len() == 2
    });
    let g = Builder::new()
        .name("survivor")
        .spawn(move || block(&gate))
        .unwrap();
    target.add_id(g.id());
    g.join().unwrap();
    drop(m);

    let rs = target.reports();
    assert_one_episode(&rs);
    assert!(rs.len() >= 3, "{rs:#?}");
}
