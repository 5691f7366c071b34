//! A std lock waited for by a greenlet of a patched thread blocks the whole thread
//! (and deadlocks it if another greenlet of the thread holds the lock across a
//! patched call): the hooks cannot make it cooperative, but they see it (std waits
//! with a futex through libc's `syscall`) and say so, naming the greenlet.

mod common;

use std::sync::{Arc, Barrier, Mutex};

static LOGGED: Mutex<Vec<String>> = Mutex::new(Vec::new());

struct Capture;

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, r: &log::Record<'_>) {
        LOGGED
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(format!("{}: {}", r.level(), r.args()));
    }
    fn flush(&self) {}
}

#[test]
fn a_greenlet_waiting_for_a_std_mutex_is_reported_by_name() {
    log::set_logger(&Capture).unwrap();
    log::set_max_level(log::LevelFilter::Warn);
    let m = Arc::new(Mutex::new(0u32));
    let held = Arc::new(Barrier::new(2));
    let (m2, h2) = (m.clone(), held.clone());
    // Another OS thread holds the lock until the greenlet has been seen waiting.
    let holder = std::thread::spawn(move || {
        let mut g = m2.lock().unwrap();
        // Read before the greenlet can start waiting, so its wait is never missed.
        let before = gevent_monkey::lock_waits();
        h2.wait();
        while gevent_monkey::lock_waits() == before {
            std::thread::yield_now();
        }
        *g += 1;
    });
    held.wait();
    let before = gevent_monkey::lock_waits();
    let v = common::patched(move || {
        let g = gevent_hub::Builder::new()
            .name("the-locker")
            .spawn(move || *m.lock().unwrap())
            .unwrap();
        g.join().unwrap()
    });
    holder.join().unwrap();
    assert_eq!(v, 1, "the greenlet got the lock once the holder let go");
    assert!(gevent_monkey::lock_waits() > before);
    let logged = LOGGED.lock().unwrap().clone();
    assert!(
        logged
            .iter()
            .any(|l| l.starts_with("WARN") && l.contains("'the-locker'") && l.contains("futex")),
        "{logged:?}"
    );
}
