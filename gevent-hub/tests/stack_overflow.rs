//! A greenlet that overflows its stack is reported by name and the process aborts;
//! an overflow of a plain thread's stack still gets Rust's own report.
//!
//! Both crash the process, so each runs in a child: this test binary re-run with an
//! environment variable that makes one of the `child_*` tests below do the crashing
//! (without it they return at once).

use gevent_hub::Builder;
use std::hint::black_box;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Output};

const CHILD_ENV: &str = "GEVENT_HUB_OVERFLOW_CHILD";

/// Recurses without bound; the array and `black_box` keep every frame real.
#[allow(unconditional_recursion)] // the point: it only ends by overflowing
fn recurse(depth: u64) -> u64 {
    let frame = black_box([depth as u8; 512]);
    recurse(depth + 1) + u64::from(frame[0])
}

/// Re-runs this binary with only `test` selected, in crash mode.
fn run_child(test: &str) -> Output {
    let exe = std::env::current_exe().expect("path of the test binary");
    Command::new(exe)
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, test)
        .output()
        .expect("run the test binary as a child")
}

fn is_child(test: &str) -> bool {
    std::env::var(CHILD_ENV).is_ok_and(|v| v == test)
}

#[test]
fn child_greenlet_overflow() {
    if !is_child("child_greenlet_overflow") {
        return;
    }
    let g = Builder::new()
        .name("deep-recursion")
        .spawn(|| recurse(0))
        .expect("spawn");
    let _ = g.join();
    unreachable!("the overflow aborts the process");
}

#[test]
fn child_thread_overflow() {
    if !is_child("child_thread_overflow") {
        return;
    }
    // Install the greenlet overflow handler first, so the fault must be passed on to
    // Rust's handler.
    Builder::new()
        .spawn(|| ())
        .expect("spawn")
        .join()
        .expect("join");
    std::thread::Builder::new()
        .name("plain-thread".to_owned())
        .stack_size(128 * 1024)
        .spawn(|| recurse(0))
        .expect("spawn a thread")
        .join()
        .expect("the overflow aborts the process");
    unreachable!("the overflow aborts the process");
}

#[test]
fn a_greenlet_stack_overflow_names_the_greenlet_and_aborts() {
    let out = run_child("child_greenlet_overflow");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGABRT),
        "{:?}, stderr:\n{stderr}",
        out.status
    );
    assert!(
        stderr.contains("deep-recursion"),
        "stderr names the greenlet:\n{stderr}"
    );
    assert!(
        stderr.contains("overflowed"),
        "stderr says what happened:\n{stderr}"
    );
}

#[test]
fn a_thread_stack_overflow_still_gets_rusts_report() {
    let out = run_child("child_thread_overflow");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGABRT),
        "{:?}, stderr:\n{stderr}",
        out.status
    );
    assert!(
        stderr.contains("plain-thread"),
        "stderr names the thread:\n{stderr}"
    );
    assert!(stderr.contains("overflowed"), "{stderr}");
    assert!(
        !stderr.contains("gevent: greenlet"),
        "not reported as a greenlet:\n{stderr}"
    );
}
