//! gevent's link family: `link_value` runs only for a greenlet that returned a value,
//! `link_exception` only for one that panicked, neither for a killed one (it has no
//! value, as `successful()` and `join` say; gevent counts its `GreenletExit` as the
//! value); `unlink` takes a link back before it runs; and std's `is_finished`.

mod util;

use gevent_hub::{sleep, spawn, Outcome};
use std::time::Duration;
use util::{quiet_expected_panics, settle, Log};

#[test]
fn link_value_and_link_exception_run_for_their_outcome_only() {
    quiet_expected_panics();
    let log = Log::new();
    let ok = spawn(|| 1);
    let failed = spawn(|| -> i32 { panic!("expected: a failure for link_exception") });
    let killed = spawn(|| sleep(Duration::from_secs(3600)));
    for (name, g) in [("ok", &ok), ("failed", &failed)] {
        let (l1, l2) = (log.clone(), log.clone());
        g.link_value(move |_| l1.push(format!("{name}: value")));
        g.link_exception(move |info| {
            assert!(matches!(info.outcome, Outcome::Panicked(_)));
            l2.push(format!("{name}: exception"));
        });
    }
    let (l1, l2) = (log.clone(), log.clone());
    killed.link_value(move |_| l1.push("killed: value"));
    killed.link_exception(move |_| l2.push("killed: exception"));
    sleep(Duration::ZERO); // all three start; `killed` parks
    killed.kill().unwrap();
    settle();
    let mut seen = log.entries();
    seen.sort();
    assert_eq!(seen, ["failed: exception", "ok: value"]);
}

#[test]
fn unlink_takes_a_link_back_before_it_runs() {
    let log = Log::new();
    let g = spawn(|| sleep(Duration::ZERO));
    let (l1, l2) = (log.clone(), log.clone());
    let first = g.link(move |_| l1.push("first"));
    let _second = g.link(move |_| l2.push("second"));
    assert!(g.unlink(first), "it was linked and has not run");
    assert!(!g.unlink(first), "only once");
    assert!(!g.is_finished());
    g.join().unwrap();
    settle();
    assert_eq!(log.entries(), ["second"]);
}

#[test]
fn is_finished_is_std_s_name_for_ready() {
    let g = spawn(|| 7);
    assert!(!g.is_finished());
    sleep(Duration::ZERO);
    assert!(g.is_finished());
    assert_eq!(g.join().unwrap(), 7);
}
