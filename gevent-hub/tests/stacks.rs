//! Greenlet stacks at scale: 100,000 greenlets parked at once on a default Linux
//! (`vm.max_map_count` = 65530), many stacks per memory mapping, a clear error at the
//! mapping limit and for impossible sizes, and stacks unmapped when their thread exits.
//!
//! The tests read process-wide counts (mappings), so they take turns (`serial`); the
//! ones that use up the process's mappings run in a child: this test binary re-run with
//! an environment variable that makes one `child_*` test do it.

mod util;

use gevent_hub::greenlet::{RawGreenlet, SwitchError};
use gevent_hub::stack;
use gevent_hub::{spawn, Event, Greenlet};
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::{Mutex, MutexGuard};
use util::{is_child, mapping_count, run_child, scaled, settle, stack_address, Counter};

const CHILD_ENV: &str = "GEVENT_HUB_STACKS_CHILD";

fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn max_map_count() -> usize {
    std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .expect("read /proc/sys/vm/max_map_count")
        .trim()
        .parse()
        .expect("a number")
}

/// Can this kernel hold `n` stacks at once? Without guard regions each costs two
/// mappings.
fn room_for(n: usize) -> bool {
    if stack::guard_regions().expect("ask for guard regions") {
        return true;
    }
    let room = max_map_count() > 2 * n + 1000;
    if !room {
        eprintln!("no guard regions (Linux < 6.13) and vm.max_map_count too low: skipped");
    }
    room
}

/// Spawns `n` greenlets that each wait on their own event, lets all of them start and
/// park, runs `while_parked`, then wakes and joins them one by one. Returns how many
/// had started (and were parked) before the first was woken.
fn park_and_wake(n: usize, while_parked: impl FnOnce()) -> usize {
    let started = Counter::new();
    let finished = Counter::new();
    let parked: Vec<(Event, Greenlet<()>)> = (0..n)
        .map(|_| {
            let ev = Event::new();
            let (e, s, f) = (ev.clone(), started.clone(), finished.clone());
            let g = spawn(move || {
                s.bump();
                e.wait().unwrap();
                f.bump();
            });
            (ev, g)
        })
        .collect();
    settle();
    let parked_at_once = started.get();
    assert_eq!(
        finished.get(),
        0,
        "no greenlet runs past its wait before it is woken"
    );
    while_parked();
    for (ev, g) in parked {
        ev.set();
        if g.started() {
            g.join().unwrap();
        }
    }
    assert_eq!(finished.get(), parked_at_once);
    parked_at_once
}

#[test]
fn a_hundred_thousand_greenlets_park_at_once() {
    let _serial = serial();
    let n = scaled(100_000, 1);
    if !room_for(n) {
        return;
    }
    let parked = park_and_wake(n, || ());
    assert_eq!(parked, n, "only {parked} of {n} greenlets started");
}

#[test]
fn parked_greenlets_share_memory_mappings() {
    let _serial = serial();
    if !stack::guard_regions().unwrap() {
        eprintln!("no guard regions (Linux < 6.13): each stack is two mappings; skipped");
        return;
    }
    let n = scaled(20_000, 1).max(1_000);
    let before = mapping_count();
    let mut during = 0;
    let parked = park_and_wake(n, || during = mapping_count());
    assert_eq!(parked, n);
    let new = during.saturating_sub(before);
    // 64 stacks per mapping; the kernel may merge neighbouring chunks into fewer.
    assert!(
        new <= n / 64 + 16,
        "{n} parked greenlets took {new} new mappings"
    );
}

#[test]
fn impossible_and_refused_stack_sizes_are_errors() {
    let _serial = serial();
    let ran = Counter::new();
    let try_size = |size: usize| {
        let r = ran.clone();
        RawGreenlet::with_options(move |_| r.bump(), None, size, None).switch(())
    };
    for size in [usize::MAX, isize::MAX as usize] {
        match try_size(size) {
            Err(SwitchError::NoStack(e)) => {
                assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput, "{e}");
                assert!(e.to_string().contains(&format!("{size} bytes")), "{e}");
                assert!(
                    e.to_string().contains("larger than the address space"),
                    "{e}"
                );
            }
            other => panic!("stack_size {size}: expected NoStack, got {other:?}"),
        }
    }
    // A size the kernel refuses: more than memory and swap (unless it overcommits
    // without limit).
    let always_overcommit =
        std::fs::read_to_string("/proc/sys/vm/overcommit_memory").is_ok_and(|m| m.trim() == "1");
    match try_size(1 << 46) {
        Err(SwitchError::NoStack(e)) => {
            let text = e.to_string();
            assert!(
                text.contains("cannot map a 64 TiB greenlet stack"),
                "{text}"
            );
        }
        Ok(_) if always_overcommit => {}
        other => panic!("stack_size 1 << 46: expected NoStack, got {other:?}"),
    }
    assert_eq!(ran.get(), usize::from(always_overcommit));
    // Nothing is broken: the next greenlet runs.
    try_size(stack::DEFAULT_STACK_SIZE).unwrap();
}

#[test]
fn a_thread_unmaps_its_stacks_when_it_exits() {
    let _serial = serial();
    // More than the warm pool keeps, parked together: at exit the thread has warm
    // slots, cold slots and the hub's stack, in several chunks.
    let n = stack::POOL_MAX + 100;
    let addrs = std::thread::spawn(move || {
        let addrs = Rc::new(RefCell::new(Vec::new()));
        let gs: Vec<(Event, Greenlet<()>)> = (0..n)
            .map(|_| {
                let (ev, a) = (Event::new(), addrs.clone());
                let e = ev.clone();
                let g = spawn(move || {
                    a.borrow_mut().push(stack_address());
                    e.wait().unwrap();
                });
                (ev, g)
            })
            .collect();
        settle();
        for (ev, g) in gs {
            ev.set();
            g.join().unwrap();
        }
        let addrs = addrs.borrow().clone();
        addrs
    })
    .join()
    .expect("the thread");
    assert_eq!(addrs.len(), n);
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    let ranges: Vec<(usize, usize)> = maps
        .lines()
        .map(|l| {
            let (lo, hi) = l
                .split_whitespace()
                .next()
                .unwrap()
                .split_once('-')
                .unwrap();
            (
                usize::from_str_radix(lo, 16).unwrap(),
                usize::from_str_radix(hi, 16).unwrap(),
            )
        })
        .collect();
    let still = addrs
        .iter()
        .filter(|&&a| ranges.iter().any(|&(lo, hi)| lo <= a && a < hi))
        .count();
    assert_eq!(
        still, 0,
        "{still} of {n} stacks still mapped after their thread exited"
    );
}

// ---------------------------------------------------------------------------------
// At the mapping limit (in a child process: it uses up every mapping).

/// Maps single pages (alternately read-only and read-write, so that the kernel cannot
/// merge them) until the kernel refuses; returns them (never unmapped: the child exits).
fn exhaust_mappings() -> Vec<usize> {
    let mut pages = Vec::with_capacity(max_map_count());
    loop {
        let prot = if pages.len() % 2 == 0 {
            libc::PROT_READ
        } else {
            libc::PROT_READ | libc::PROT_WRITE
        };
        // SAFETY: a fresh private anonymous page; no existing memory is affected.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                4096,
                prot,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            break;
        }
        pages.push(p as usize);
    }
    pages
}

/// Uses up every mapping, then asks for a stack of a size no chunk has yet, which
/// needs a new mapping. Prints the error.
fn exhaust_mappings_then_take_a_stack() {
    if max_map_count() > 2_000_000 {
        println!("SKIP: vm.max_map_count is {}", max_map_count());
        return;
    }
    // The first stack: the overflow handler, the guard probe and the hub-less pool
    // are set up while mappings are still free.
    RawGreenlet::new(|_| ()).switch(()).unwrap();
    let _pages = exhaust_mappings();
    match RawGreenlet::with_options(|_| (), None, 1 << 20, None).switch(()) {
        Err(SwitchError::NoStack(e)) => println!("ERROR: {e}"),
        other => println!("UNEXPECTED: {other:?}"),
    }
    // Exit without unwinding anything: the process is out of mappings.
    std::process::exit(0);
}

#[test]
fn child_mapping_limit() {
    if is_child(CHILD_ENV, "child_mapping_limit") {
        exhaust_mappings_then_take_a_stack();
    }
}

#[test]
fn child_mapping_limit_mprotect() {
    if is_child(CHILD_ENV, "child_mapping_limit_mprotect") {
        stack::force_mprotect_guards();
        exhaust_mappings_then_take_a_stack();
    }
}

#[test]
fn child_spawn_at_the_mapping_limit() {
    if !is_child(CHILD_ENV, "child_spawn_at_the_mapping_limit") {
        return;
    }
    if max_map_count() > 2_000_000 {
        println!("SKIP: vm.max_map_count is {}", max_map_count());
        return;
    }
    // The hub and its first chunk of stacks exist before the mappings run out.
    spawn(|| ()).join().unwrap();
    let _pages = exhaust_mappings();
    // Unstarted greenlets hold their stacks: the chunk fills up, then a spawn needs a
    // mapping the process cannot have.
    let linked: Rc<RefCell<Option<String>>> = Rc::default();
    let mut started = Vec::new();
    let failed = loop {
        let g = spawn(|| ());
        if g.ready() {
            break g;
        }
        started.push(g);
        assert!(started.len() < 100_000, "every spawn found a stack");
    };
    let l = linked.clone();
    failed.link(move |info| *l.borrow_mut() = Some(format!("{:?}", info.outcome)));
    settle();
    println!(
        "LINK: {}",
        linked.borrow().as_deref().unwrap_or("did not fire")
    );
    match failed.join() {
        Err(e @ gevent_hub::JoinError::Spawn(_)) => println!("JOIN: {e}"),
        other => println!("UNEXPECTED: {other:?}"),
    }
    println!("OTHERS RAN: {}", started.iter().all(Greenlet::ready));
    std::process::exit(0);
}

#[test]
fn a_spawn_that_gets_no_stack_ends_at_once_its_join_says_why_and_its_links_fire() {
    let out = run_child_stdout("child_spawn_at_the_mapping_limit");
    if out.contains("SKIP:") {
        eprintln!("{out}");
        return;
    }
    let line = |tag: &str| {
        out.lines()
            .find_map(|l| l.split_once(tag).map(|(_, rest)| rest))
            .unwrap_or_else(|| panic!("no {tag:?} line in:\n{out}"))
            .to_owned()
    };
    let link = line("LINK: ");
    assert!(link.starts_with("Panicked("), "{link}");
    assert!(link.contains("cannot start a greenlet"), "{link}");
    let join = line("JOIN: ");
    assert!(join.contains("cannot start a greenlet"), "{join}");
    assert!(join.contains("limit of memory mappings"), "{join}");
    assert_eq!(line("OTHERS RAN: "), "true");
}

/// Runs `test` in a child; its stdout.
fn run_child_stdout(test: &str) -> String {
    let out = run_child(CHILD_ENV, test);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{:?}\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn assert_mapping_limit_error(test: &str) -> Option<String> {
    let out = run_child_stdout(test);
    if out.contains("SKIP:") {
        eprintln!("{out}");
        return None;
    }
    let line = out
        .lines()
        .find_map(|l| l.split_once("ERROR: ").map(|(_, e)| e))
        .unwrap_or_else(|| panic!("the child reports an error:\n{out}"));
    for part in [
        "cannot map ",
        "greenlet stack",
        "1 MiB",
        "reached its limit of memory mappings",
        "vm.max_map_count = ",
        "this thread has 0 greenlet stacks in use and 1 pooled",
        "sysctl -w vm.max_map_count=",
    ] {
        assert!(line.contains(part), "{part:?} is missing from: {line}");
    }
    Some(line.to_owned())
}

#[test]
fn at_the_mapping_limit_the_error_says_so_and_how_to_raise_it() {
    if let Some(line) = assert_mapping_limit_error("child_mapping_limit") {
        if stack::guard_regions().unwrap() {
            assert!(!line.contains("Linux 6.13"), "{line}");
        }
    }
}

#[test]
fn at_the_mapping_limit_without_guard_regions_the_error_says_they_need_linux_6_13() {
    if let Some(line) = assert_mapping_limit_error("child_mapping_limit_mprotect") {
        assert!(line.contains("two mappings"), "{line}");
        assert!(
            line.contains("MADV_GUARD_INSTALL needs Linux 6.13"),
            "{line}"
        );
    }
}
