//! Parked greenlets: memory and time of N greenlets (default 100,000) parked at once on
//! one thread, each waiting on its own `Event`.
//!
//! For each run it prints the resident memory per parked greenlet (`VmRSS` of
//! /proc/self/status before and while they are parked, so greenlet, handle, event and
//! stack together), the part of it on their stacks (`Rss` in /proc/self/smaps of the
//! mappings that hold them), page tables (`VmPTE`), the memory mappings they added,
//! and the time to spawn them until all are parked and to wake and join them.
//!
//! Then the comparison, in the same process: M greenlets (default 30,000, which fits
//! the default `vm.max_map_count` of 65530 either way) with the chunked layout and with
//! one mapping plus an `mprotect` guard page per stack: the layout before chunks, and
//! the fallback on kernels without guard regions (Linux < 6.13).
//!
//! Run: `cargo run --release -p gevent-bench --bin parked -- [N] [M]`

use gevent_hub::{spawn, stack, Event, Greenlet};
use std::cell::RefCell;
use std::hint::black_box;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// What one run measured.
struct Run {
    greenlets: usize,
    /// Growth of VmRSS, KiB.
    rss_kib: u64,
    /// Rss of the mappings that hold the stacks, KiB.
    stack_rss_kib: u64,
    /// Growth of VmPTE, KiB.
    pte_kib: u64,
    /// Mappings added while parked.
    mappings: usize,
    spawn_park: Duration,
    wake_join: Duration,
}

/// `key` of /proc/self/status, KiB.
fn status_kib(key: &str) -> u64 {
    let text = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn mapping_count() -> usize {
    std::fs::read_to_string("/proc/self/maps")
        .expect("read /proc/self/maps")
        .lines()
        .count()
}

/// Sum of `Rss` of the mappings that contain one of `addrs` (sorted), KiB.
fn rss_of_mappings_holding(addrs: &[usize]) -> u64 {
    let smaps = std::fs::read_to_string("/proc/self/smaps").expect("read /proc/self/smaps");
    let mut total = 0;
    let mut holds = false;
    for line in smaps.lines() {
        let first = line.split_whitespace().next().unwrap_or("");
        if let Some((lo, hi)) = first.split_once('-') {
            if let (Ok(lo), Ok(hi)) = (usize::from_str_radix(lo, 16), usize::from_str_radix(hi, 16))
            {
                let i = addrs.partition_point(|&a| a < lo);
                holds = i < addrs.len() && addrs[i] < hi;
                continue;
            }
        }
        if holds {
            if let Some(v) = line.strip_prefix("Rss:") {
                total += v
                    .split_whitespace()
                    .next()
                    .and_then(|n| n.parse::<u64>().ok())
                    .unwrap_or(0);
            }
        }
    }
    total
}

/// Address of a local of the calling frame: somewhere on the running stack.
#[inline(never)]
fn stack_address() -> usize {
    let local = black_box(0u8);
    black_box(&local as *const u8 as usize)
}

fn run(n: usize) -> Run {
    // Nothing warm from an earlier run.
    stack::trim_pool();
    let (rss0, pte0, maps0) = (status_kib("VmRSS"), status_kib("VmPTE"), mapping_count());
    let addrs = Rc::new(RefCell::new(Vec::with_capacity(n)));
    let t0 = Instant::now();
    let parked: Vec<(Event, Greenlet<()>)> = (0..n)
        .map(|_| {
            let ev = Event::new();
            let (e, a) = (ev.clone(), addrs.clone());
            let g = spawn(move || {
                a.borrow_mut().push(stack_address());
                e.wait().expect("wait for the event");
            });
            (ev, g)
        })
        .collect();
    gevent_hub::idle().expect("idle in the main greenlet");
    let spawn_park = t0.elapsed();
    let (rss1, pte1, maps1) = (status_kib("VmRSS"), status_kib("VmPTE"), mapping_count());
    let started = addrs.borrow().len();
    assert_eq!(started, n, "only {started} of {n} greenlets started");
    let mut sorted = addrs.borrow().clone();
    sorted.sort_unstable();
    let stack_rss_kib = rss_of_mappings_holding(&sorted);
    let t1 = Instant::now();
    for (ev, g) in parked {
        ev.set();
        g.join().expect("join");
    }
    let wake_join = t1.elapsed();
    Run {
        greenlets: n,
        rss_kib: rss1.saturating_sub(rss0),
        stack_rss_kib,
        pte_kib: pte1.saturating_sub(pte0),
        mappings: maps1.saturating_sub(maps0),
        spawn_park,
        wake_join,
    }
}

fn print(layout: &str, r: &Run) {
    let per = |kib: u64| kib as f64 / r.greenlets as f64;
    let us = |d: Duration| d.as_secs_f64() * 1e6 / r.greenlets as f64;
    println!(
        "{layout:<28} {:>8} {:>9.2} {:>9.2} {:>7.2} {:>9} {:>9.2} {:>9.2} {:>9.3} {:>9.3}",
        r.greenlets,
        per(r.rss_kib),
        per(r.stack_rss_kib),
        per(r.pte_kib),
        r.mappings,
        r.spawn_park.as_secs_f64() * 1e3,
        r.wake_join.as_secs_f64() * 1e3,
        us(r.spawn_park),
        us(r.wake_join),
    );
}

fn arg(i: usize, default: usize) -> usize {
    std::env::args()
        .nth(i)
        .map(|a| {
            a.parse()
                .unwrap_or_else(|e| panic!("argument {i} ({a:?}) must be a count: {e}"))
        })
        .unwrap_or(default)
}

fn main() {
    let n = arg(1, 100_000);
    let m = arg(2, 30_000);
    if cfg!(debug_assertions) {
        eprintln!("warning: a debug build; run with --release for meaningful numbers");
    }
    let regions = stack::guard_regions().expect("ask the kernel for guard regions");
    println!(
        "guard regions (MADV_GUARD_INSTALL): {}; vm.max_map_count = {}",
        if regions { "yes" } else { "no (Linux < 6.13)" },
        std::fs::read_to_string("/proc/sys/vm/max_map_count")
            .map(|s| s.trim().to_owned())
            .unwrap_or_else(|_| "?".to_owned())
    );
    // The hub (its loop and its own stack) exists before anything is measured.
    spawn(|| ()).join().expect("a first greenlet");
    println!(
        "{:<28} {:>8} {:>9} {:>9} {:>7} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "layout (per greenlet:)",
        "parked",
        "KiB RSS",
        "KiB stk",
        "KiB PTE",
        "mappings",
        "ms spawn",
        "ms wake",
        "us spawn",
        "us wake"
    );
    let chunked = if regions {
        "chunks, guard regions"
    } else {
        "one mapping + mprotect guard"
    };
    print(chunked, &run(n));
    print(chunked, &run(m));
    stack::force_mprotect_guards();
    print("one mapping + mprotect guard", &run(m));
}
