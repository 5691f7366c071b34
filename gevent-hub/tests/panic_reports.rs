//! What a user reads when a greenlet ends badly: a panic's report names the greenlet
//! (std's own line names only the thread), and a `Timeout` nobody caught says it was a
//! Timeout instead of "a non-string panic payload".

mod util;

use gevent_hub::{sleep, spawn, Builder, JoinError, Outcome, Timeout};
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;
use util::{is_child, run_child};

const CHILD_ENV: &str = "GEVENT_TEST_PANIC_REPORTS_CHILD";

#[test]
fn child_greenlet_panics() {
    if !is_child(CHILD_ENV, "child_greenlet_panics") {
        return;
    }
    let g = Builder::new()
        .name("worker-7")
        .spawn(|| panic!("boom in a worker"))
        .unwrap();
    assert!(g.join().is_err());
    // The main greenlet's panics are the thread's: std's line says it all.
    panic!("boom in main");
}

#[test]
fn a_panic_in_a_greenlet_is_reported_with_the_greenlets_name_and_spawn_site() {
    let out = run_child(CHILD_ENV, "child_greenlet_panics");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("boom in a worker"), "{err}");
    let line = err
        .lines()
        .find(|l| l.contains("greenlet 'worker-7'"))
        .unwrap_or_else(|| panic!("no line names the greenlet:\n{err}"));
    assert!(line.contains("(id "), "{line}");
    assert!(
        line.contains("panic_reports.rs:"),
        "names where it was spawned: {line}"
    );
    // The report comes before std's own lines about the panic.
    let named = err.find("greenlet 'worker-7'").unwrap();
    let boom = err.find("boom in a worker").unwrap();
    assert!(named < boom, "{err}");
    // Exactly one such line, and none for the main greenlet's own panic.
    assert_eq!(err.matches("greenlet '").count(), 1, "{err}");
    assert!(err.contains("boom in main"), "{err}");
}

#[test]
fn an_uncaught_timeout_says_it_was_a_timeout() {
    let outcome = Rc::new(RefCell::new(None));
    let o = outcome.clone();
    let g = spawn(|| {
        let _t = Timeout::start_new(Duration::from_millis(1)).unwrap();
        sleep(Duration::from_secs(3600));
    });
    g.link(move |info| *o.borrow_mut() = Some(info.outcome.clone()));
    let e = g.join().unwrap_err();
    let shown = e.to_string();
    assert!(shown.contains("Timeout"), "{shown}");
    assert!(!shown.contains("non-string"), "{shown}");
    assert!(
        matches!(e, JoinError::Panicked(_)),
        "still the payload, to re-raise"
    );
    sleep(Duration::ZERO); // the link runs
    let seen = outcome.borrow().clone();
    match seen {
        Some(Outcome::Panicked(msg)) => assert!(msg.contains("Timeout"), "{msg}"),
        other => panic!("outcome {other:?}"),
    }
}
