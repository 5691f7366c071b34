//! A greenlet that overflows its stack is reported by name and the process aborts;
//! an overflow of a plain thread's stack still gets Rust's own report.
//!
//! Both crash the process, so each runs in a child: this test binary re-run with an
//! environment variable that makes one of the `child_*` tests below do the crashing
//! (without it they return at once).

mod util;

use util::{is_child, run_child, stack_address};

use gevent_hub::stack;
use gevent_hub::{Builder, Event};
use std::cell::RefCell;
use std::hint::black_box;
use std::os::unix::process::ExitStatusExt;
use std::rc::Rc;

const CHILD_ENV: &str = "GEVENT_HUB_OVERFLOW_CHILD";

/// Recurses without bound; the array and `black_box` keep every frame real.
#[allow(unconditional_recursion)] // the point: it only ends by overflowing
fn recurse(depth: u64) -> u64 {
    let frame = black_box([depth as u8; 512]);
    recurse(depth + 1) + u64::from(frame[0])
}

#[test]
fn child_greenlet_overflow() {
    if !is_child(CHILD_ENV, "child_greenlet_overflow") {
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
    if !is_child(CHILD_ENV, "child_thread_overflow") {
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
    let out = run_child(CHILD_ENV, "child_greenlet_overflow");
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
    let out = run_child(CHILD_ENV, "child_thread_overflow");
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

// ---------------------------------------------------------------------------------
// The stack layout: many stacks share a mapping, freed slots are released and reused.

/// The slot size of a default stack: its usable part plus a 4 KiB guard page.
const SLOT: usize = gevent_hub::stack::DEFAULT_STACK_SIZE + 4096;

#[test]
fn child_overflow_mid_chunk() {
    if !is_child(CHILD_ENV, "child_overflow_mid_chunk") {
        return;
    }
    // Greenlets parked below and above the one that overflows, in the same chunk: its
    // guard page lies right above the stack of the one below.
    let addrs = Rc::new(RefCell::new(Vec::new()));
    let release = Event::new();
    let park = |name: &str, overflow: bool| {
        let (a, r) = (addrs.clone(), release.clone());
        Builder::new()
            .name(name)
            .spawn(move || {
                a.borrow_mut().push(stack_address());
                r.wait().unwrap();
                if overflow {
                    recurse(0);
                }
            })
            .expect("spawn")
    };
    let below: Vec<_> = (0..10)
        .map(|i| park(&format!("below-{i}"), false))
        .collect();
    let g = park("mid-chunk", true);
    let above: Vec<_> = (0..10)
        .map(|i| park(&format!("above-{i}"), false))
        .collect();
    gevent_hub::idle().unwrap();
    let a = addrs.borrow().clone();
    assert_eq!(a.len(), 21, "all parked");
    let (lo, mid, hi) = (a[9], a[10], a[11]);
    assert!(
        lo < mid && mid < hi && hi - lo < 3 * SLOT,
        "the overflowing stack sits between its neighbours: {lo:#x} {mid:#x} {hi:#x}"
    );
    release.set();
    let _ = g.join();
    drop((below, above));
    unreachable!("the overflow aborts the process");
}

#[test]
fn child_overflow_in_released_slot() {
    if !is_child(CHILD_ENV, "child_overflow_in_released_slot") {
        return;
    }
    let first = Builder::new()
        .spawn(stack_address)
        .expect("spawn")
        .join()
        .expect("join");
    // Its stack is now in the warm pool; trimming releases its pages (MADV_DONTNEED)
    // and keeps the slot, cold, for the next stack of the same size.
    stack::trim_pool();
    assert_eq!(stack::stats().1, 0);
    let g = Builder::new()
        .name("released-slot")
        .spawn(move || {
            let here = stack_address();
            if here.abs_diff(first) >= SLOT {
                return here;
            }
            recurse(0);
            unreachable!("the overflow aborts the process");
        })
        .expect("spawn");
    let here = g.join().expect("join");
    panic!("the slot was not reused: {first:#x}, then {here:#x}");
}

#[test]
fn child_overflow_mprotect_guard() {
    if !is_child(CHILD_ENV, "child_overflow_mprotect_guard") {
        return;
    }
    // The fallback of kernels without guard regions: a PROT_NONE page of its own.
    stack::force_mprotect_guards();
    let g = Builder::new()
        .name("mprotect-guarded")
        .spawn(|| recurse(0))
        .expect("spawn");
    let _ = g.join();
    unreachable!("the overflow aborts the process");
}

fn assert_overflow_reported(child: &str, name: &str) {
    let out = run_child(CHILD_ENV, child);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGABRT),
        "{:?}, stderr:\n{stderr}",
        out.status
    );
    assert!(
        stderr.contains(&format!("gevent: greenlet '{name}'")) && stderr.contains("overflowed"),
        "stderr names the greenlet and what happened:\n{stderr}"
    );
}

#[test]
fn an_overflow_in_the_middle_of_a_chunk_names_the_greenlet() {
    assert_overflow_reported("child_overflow_mid_chunk", "mid-chunk");
}

#[test]
fn an_overflow_on_a_released_and_reused_slot_names_the_greenlet() {
    // The guard page survives MADV_DONTNEED of the slot below it.
    assert_overflow_reported("child_overflow_in_released_slot", "released-slot");
}

#[test]
fn an_overflow_onto_an_mprotect_guard_page_names_the_greenlet() {
    assert_overflow_reported("child_overflow_mprotect_guard", "mprotect-guarded");
}
