//! The blocking monitor names the greenlet that holds the hub's thread.

use gevent_hub::monitor::start_monitor_with;
use gevent_hub::{sleep, Builder};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[test]
fn reports_a_greenlet_that_blocks_the_thread() {
    let reports = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::new(AtomicBool::new(false));
    let (r2, s2) = (reports.clone(), seen.clone());
    let monitor = start_monitor_with(Duration::from_millis(20), move |r| {
        r2.lock().unwrap().push(r.clone());
        s2.store(true, Ordering::SeqCst);
    })
    .unwrap();

    let seen2 = seen.clone();
    let g = Builder::new()
        .name("cpu-hog")
        .spawn(move || {
            // Hold the thread without switching until the monitor has reported (bounded,
            // so a broken monitor fails the test instead of hanging it).
            let start = Instant::now();
            while !seen2.load(Ordering::SeqCst) && start.elapsed() < Duration::from_secs(30) {
                std::thread::sleep(Duration::from_millis(1));
            }
        })
        .unwrap();
    g.join().unwrap();
    sleep(Duration::ZERO).unwrap();
    drop(monitor);

    let reports = reports.lock().unwrap();
    assert!(!reports.is_empty(), "the monitor never reported");
    let r = &reports[0];
    assert_eq!(r.greenlet_name, "cpu-hog");
    assert!(r.blocked_for > Duration::from_millis(20));
    let at = r.spawned_at.as_deref().unwrap_or("");
    assert!(at.contains("tests/monitor.rs:"), "spawned_at = {at:?}");
    assert_eq!(
        reports.len(),
        1,
        "one report per blocking episode: {reports:?}"
    );
}
