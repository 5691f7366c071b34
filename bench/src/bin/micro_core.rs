//! Core micro-benchmarks: the gevent-core binding against the same operations written
//! in C (`c/micro_core.c`) on the same libev, in one run, reported as ns/op and the
//! ratio Rust/C.
//!
//! Run: `cargo run --release -p gevent-bench --bin micro_core -- [SCALE] [--json FILE]`.
//! SCALE (default 1.0) multiplies every iteration count; the default run takes a few
//! seconds. Each measurement is repeated (`RUNS` times, after one warm-up run, C and
//! Rust alternating) and the best run is reported: the minimum is the least disturbed
//! by the rest of the machine. With `--json FILE`, each row is also appended to FILE
//! as two JSON lines (C and Rust), for the suite's report.
//!
//! | row | Rust (gevent-core) | C (libev) |
//! |---|---|---|
//! | timer start+stop | `t.start(cb)?; t.stop()` (callback boxed per start) | `ev_timer_start; ev_timer_stop` |
//! | timer rearm+disarm | `t.rearm()?; t.disarm()` (callback kept) | the same C |
//! | io start+stop | `w.start(cb)?; w.stop()` on a pipe | `ev_io_start; ev_io_stop` |
//! | run_callback | `lp.run_callback(f)` × batch, then `run_nowait` | an array of (fn, arg) drained by a prepare watcher, then `ev_run (NOWAIT)` |
//! | loop iteration | `run_nowait` with one active idle watcher | `ev_run (loop, EVRUN_NOWAIT)`, same |
//! | feed+invoke | `w.feed(CUSTOM)` + `ev_invoke_pending` | `ev_feed_event` + `ev_invoke_pending` |
//! | feed+run_nowait | `w.feed(CUSTOM)` + `run_nowait` | `ev_feed_event` + `ev_run (NOWAIT)` |
//!
//! gevent-core has no `invoke_pending` of its own, so the feed+invoke row calls libev's
//! through `libev-sys` on the binding's loop; feed+run_nowait is the same thing through
//! the safe API only.
#![deny(unsafe_op_in_unsafe_fn, rust_2018_idioms)]

use gevent_bench::fmt;
use gevent_core::{Events, Loop};
use libev_sys as ffi;
use std::cell::Cell;
use std::ffi::c_long;
use std::hint::black_box;
use std::rc::Rc;
use std::time::{Duration, Instant};

use gevent_bench::c::{
    c_feed_invoke_ns, c_feed_run_nowait_ns, c_io_start_stop_ns, c_loop_iteration_ns,
    c_run_callback_ns, c_timer_start_stop_ns,
};

/// Timed runs per measurement (after one warm-up); the best is reported.
const RUNS: usize = 7;
/// Callbacks queued per loop iteration in the run_callback row.
const BATCH: u64 = 100;

type BenchResult = Result<f64, Box<dyn std::error::Error>>;

fn per_op(elapsed: Duration, ops: u64) -> f64 {
    elapsed.as_nanos() as f64 / ops as f64
}

fn rust_timer_start_stop(iters: u64) -> BenchResult {
    let lp = Loop::new()?;
    let t = lp.timer(Duration::from_secs(1), Duration::ZERO);
    let t0 = Instant::now();
    for _ in 0..iters {
        // A closure that captures nothing is boxed without allocating, like a C
        // function pointer.
        t.start(|_, _| {})?;
        t.stop();
    }
    Ok(per_op(t0.elapsed(), iters))
}

/// The same with a closure that captures an `Rc`, as real callbacks do: one heap
/// allocation per `start` (the box), freed by `stop`.
fn rust_timer_start_stop_capturing(iters: u64) -> BenchResult {
    let lp = Loop::new()?;
    let state = Rc::new(Cell::new(0u64));
    let t = lp.timer(Duration::from_secs(1), Duration::ZERO);
    let t0 = Instant::now();
    for _ in 0..iters {
        let s = state.clone();
        t.start(move |_, _| s.set(s.get() + 1))?;
        t.stop();
    }
    Ok(per_op(t0.elapsed(), iters))
}

/// `disarm` + `rearm`: stop and start again with the callback the watcher already has,
/// which is what C's start/stop does (its callback is set once, by `ev_timer_init`).
fn rust_timer_rearm_disarm(iters: u64) -> BenchResult {
    let lp = Loop::new()?;
    let state = Rc::new(Cell::new(0u64));
    let t = lp.timer(Duration::from_secs(1), Duration::ZERO);
    let s = state.clone();
    t.start(move |_, _| s.set(s.get() + 1))?;
    t.disarm();
    let t0 = Instant::now();
    for _ in 0..iters {
        t.rearm()?;
        t.disarm();
    }
    Ok(per_op(t0.elapsed(), iters))
}

fn rust_io_start_stop(iters: u64) -> BenchResult {
    let lp = Loop::new()?;
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two new fds into the array; they are closed below.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } == -1 {
        return Err(std::io::Error::last_os_error().into());
    }
    let result = (|| {
        let w = lp.io(fds[0], Events::READ)?;
        let t0 = Instant::now();
        for _ in 0..iters {
            w.start(|_, _| {})?;
            w.stop();
        }
        Ok::<_, gevent_core::Error>(per_op(t0.elapsed(), iters))
        // The watcher is dropped here, before its fd is closed.
    })();
    for fd in fds {
        // SAFETY: the fds were created above and are not used after this.
        unsafe { libc::close(fd) };
    }
    Ok(result?)
}

fn rust_run_callback(iters: u64) -> BenchResult {
    let lp = Loop::new()?;
    let rounds = iters / BATCH;
    let counter = Rc::new(Cell::new(0u64));
    let t0 = Instant::now();
    for _ in 0..rounds {
        for _ in 0..BATCH {
            let c = counter.clone();
            lp.run_callback(move || c.set(c.get() + 1));
        }
        lp.run_nowait()?;
    }
    let elapsed = t0.elapsed();
    check_count(counter.get(), rounds * BATCH)?;
    Ok(per_op(elapsed, rounds * BATCH))
}

fn rust_loop_iteration(iters: u64) -> BenchResult {
    let lp = Loop::new()?;
    let counter = Rc::new(Cell::new(0u64));
    let idle = lp.idle();
    let c = counter.clone();
    idle.start(move |_, _| c.set(c.get() + 1))?;
    let t0 = Instant::now();
    for _ in 0..iters {
        black_box(lp.run_nowait()?);
    }
    let elapsed = t0.elapsed();
    check_count(counter.get(), iters)?;
    Ok(per_op(elapsed, iters))
}

fn rust_feed_invoke(iters: u64) -> BenchResult {
    let lp = Loop::new()?;
    let counter = Rc::new(Cell::new(0u64));
    let t = lp.timer(Duration::from_secs(3600), Duration::ZERO);
    let c = counter.clone();
    t.start(move |_, _| c.set(c.get() + 1))?;
    let raw = lp.as_raw();
    let t0 = Instant::now();
    for _ in 0..iters {
        t.feed(Events::CUSTOM);
        // SAFETY: `raw` is the live loop `lp`, used on its own thread. The only pending
        // watcher is `t`, whose trampoline catches panics (and its callback cannot
        // panic); libev allows ev_invoke_pending outside ev_run.
        unsafe { ffi::ev_invoke_pending(raw) };
    }
    let elapsed = t0.elapsed();
    check_count(counter.get(), iters)?;
    Ok(per_op(elapsed, iters))
}

fn rust_feed_run_nowait(iters: u64) -> BenchResult {
    let lp = Loop::new()?;
    let counter = Rc::new(Cell::new(0u64));
    let t = lp.timer(Duration::from_secs(3600), Duration::ZERO);
    let c = counter.clone();
    t.start(move |_, _| c.set(c.get() + 1))?;
    let t0 = Instant::now();
    for _ in 0..iters {
        t.feed(Events::CUSTOM);
        lp.run_nowait()?;
    }
    let elapsed = t0.elapsed();
    check_count(counter.get(), iters)?;
    Ok(per_op(elapsed, iters))
}

fn check_count(got: u64, want: u64) -> Result<(), Box<dyn std::error::Error>> {
    if got != want {
        return Err(format!("callbacks ran {got} times, expected {want}").into());
    }
    Ok(())
}

/// Wraps a C benchmark: a negative result is its way of reporting a failure.
fn c_bench(name: &str, ns: f64) -> BenchResult {
    if ns < 0.0 {
        return Err(format!("C benchmark {name} failed (setup error or missed callbacks)").into());
    }
    Ok(ns)
}

fn c_iters(iters: u64) -> c_long {
    c_long::try_from(iters).unwrap_or(c_long::MAX)
}

/// The best (C, Rust) of `RUNS` timed runs each, after one warm-up run each. The C and
/// Rust runs alternate, so a slow phase of the machine affects both sides alike.
fn best_pair(row: &Row, iters: u64) -> Result<(f64, f64), Box<dyn std::error::Error>> {
    (row.c)(iters)?;
    (row.rust)(iters)?;
    let (mut c, mut rust) = (f64::INFINITY, f64::INFINITY);
    for _ in 0..RUNS {
        c = c.min((row.c)(iters)?);
        rust = rust.min((row.rust)(iters)?);
    }
    Ok((c, rust))
}

struct Row {
    name: &'static str,
    iters: u64,
    rust: Box<dyn Fn(u64) -> BenchResult>,
    c: Box<dyn Fn(u64) -> BenchResult>,
}

fn rows() -> Vec<Row> {
    // Each C call below: SAFETY: the C functions take a plain count, make and destroy
    // their own loop, and touch no memory of ours.
    vec![
        Row {
            name: "timer start+stop",
            iters: 2_000_000,
            rust: Box::new(rust_timer_start_stop),
            // SAFETY: see above.
            c: Box::new(|n| c_bench("timer", unsafe { c_timer_start_stop_ns(c_iters(n)) })),
        },
        Row {
            name: "timer start+stop, capturing closure",
            iters: 2_000_000,
            rust: Box::new(rust_timer_start_stop_capturing),
            // SAFETY: see above.
            c: Box::new(|n| c_bench("timer", unsafe { c_timer_start_stop_ns(c_iters(n)) })),
        },
        Row {
            name: "timer rearm+disarm (callback kept)",
            iters: 2_000_000,
            rust: Box::new(rust_timer_rearm_disarm),
            // SAFETY: see above.
            c: Box::new(|n| c_bench("timer", unsafe { c_timer_start_stop_ns(c_iters(n)) })),
        },
        Row {
            name: "io start+stop (pipe)",
            iters: 300_000,
            rust: Box::new(rust_io_start_stop),
            // SAFETY: see above.
            c: Box::new(|n| c_bench("io", unsafe { c_io_start_stop_ns(c_iters(n)) })),
        },
        Row {
            name: "run_callback, per callback (batches of 100)",
            iters: 2_000_000,
            rust: Box::new(rust_run_callback),
            c: Box::new(|n| {
                // SAFETY: see above.
                c_bench("run_callback", unsafe {
                    c_run_callback_ns(c_iters(n), BATCH as c_long)
                })
            }),
        },
        Row {
            name: "loop iteration (run_nowait, 1 idle)",
            iters: 200_000,
            rust: Box::new(rust_loop_iteration),
            // SAFETY: see above.
            c: Box::new(|n| c_bench("iteration", unsafe { c_loop_iteration_ns(c_iters(n)) })),
        },
        Row {
            name: "feed+invoke (ev_invoke_pending)",
            iters: 2_000_000,
            rust: Box::new(rust_feed_invoke),
            // SAFETY: see above.
            c: Box::new(|n| c_bench("feed+invoke", unsafe { c_feed_invoke_ns(c_iters(n)) })),
        },
        Row {
            name: "feed+run_nowait",
            iters: 200_000,
            rust: Box::new(rust_feed_run_nowait),
            c: Box::new(|n| {
                // SAFETY: see above.
                c_bench("feed+run_nowait", unsafe {
                    c_feed_run_nowait_ns(c_iters(n))
                })
            }),
        },
    ]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (scale, mut out) = gevent_bench::micro_args()?;

    let probe = Loop::new()?;
    let (major, minor) = gevent_core::version();
    println!(
        "gevent-core vs C on libev {major}.{minor} (backend {}), best of {RUNS} runs, ns/op",
        probe.backend_name()
    );
    drop(probe);

    let started = Instant::now();
    println!(
        "{:<44} {:>10} {:>10} {:>8}",
        "operation", "C", "Rust", "Rust/C"
    );
    for row in rows() {
        let iters = ((row.iters as f64 * scale) as u64).max(BATCH);
        let (c, rust) = best_pair(&row, iters)?;
        println!(
            "{:<44} {:>10} {:>10} {:>8}",
            row.name,
            fmt::ns(c),
            fmt::ns(rust),
            fmt::ratio(rust / c)
        );
        if let Some(f) = out.as_mut() {
            use std::io::Write;
            for (imp, ns) in [("c", c), ("gevent-rs", rust)] {
                let rec = serde_json::json!({
                    "kind": "micro", "group": "core", "name": row.name,
                    "impl": imp, "ns": ns, "iters": iters,
                });
                writeln!(f, "{rec}")?;
            }
        }
    }
    println!("total time {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}
