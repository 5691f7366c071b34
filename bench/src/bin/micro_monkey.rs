//! gevent-monkey's pass-through cost: what a hooked libc call costs a thread that did
//! not patch, against the real call. This binary links gevent-monkey (it names the
//! crate), so every call to `recv` in it reaches the crate's hook, which on a thread
//! that did not patch makes the real call unchanged; the real one is libc's, found
//! with `dlsym(RTLD_NEXT, "recv")` and called through a function pointer.
//!
//! Run: `cargo run --release -p gevent-bench --bin micro_monkey -- [SCALE] [--json FILE]`
//! SCALE (default 1.0) multiplies the calls per run. The rows are timed in short runs,
//! interleaved (`RUNS` rounds after a warm-up round, each round timing every row once,
//! in alternating order), and each row shows its best run: the difference between two
//! rows is tenths of a system call, and short interleaved runs take it from the same
//! moments of the machine (timing the real call twice this way agrees within about
//! half a nanosecond; long runs of one row after the other disagree by several).
//!
//! | row | what one operation is |
//! |---|---|
//! | real | `real(fd, buf, 1, MSG_DONTWAIT)`: libc's `recv` through a pointer, on an empty socketpair end (`EAGAIN`) |
//! | hooked, unpatched thread | `libc::recv(fd, buf, 1, MSG_DONTWAIT)` (the hook), same fd, from `main`, which never patched |
//! | real, second thread | the real call again, on the patched thread, interleaved with the row below: its baseline (libc's `recv` costs more once the process has had a second thread) |
//! | hooked, patched thread | the hooked call from a thread that called `gevent_monkey::patch_socket()`: `MSG_DONTWAIT` never parks, so this is the patched thread's pass-through (for information) |
//!
//! `main` times its rows first, while it is the process's only thread.
//!
//! The target: the hook on a thread that did not patch costs at most 5 ns more than
//! the real call.

use gevent_bench::fmt;
use libc::{c_int, c_void, size_t, ssize_t};
use std::hint::black_box;
use std::io::Write;
use std::time::Instant;

/// Timed rounds (after one warm-up round); the best run of each row is reported.
const RUNS: usize = 200;

/// Calls per timed run at scale 1 (about 2 ms).
const ITERS: u64 = 10_000;

/// The operation, as the report names it.
const NAME: &str = "recv(fd, buf, 1, MSG_DONTWAIT) on an empty socketpair (EAGAIN)";

type RecvFn = unsafe extern "C" fn(c_int, *mut c_void, size_t, c_int) -> ssize_t;

type Error = Box<dyn std::error::Error + Send + Sync>;

/// ns per call of libc's own `recv`, through the pointer `real`.
fn real_run(real: RecvFn, fd: c_int, iters: u64) -> f64 {
    let real = black_box(real);
    let mut buf = [0u8; 1];
    let t0 = Instant::now();
    for _ in 0..iters {
        // SAFETY: `real` is libc's recv; `buf` is one writable byte.
        let r = unsafe {
            real(
                black_box(fd),
                buf.as_mut_ptr().cast(),
                1,
                libc::MSG_DONTWAIT,
            )
        };
        black_box(r);
    }
    t0.elapsed().as_nanos() as f64 / iters as f64
}

/// ns per call of `recv` as the binary calls it: gevent-monkey's hook.
fn hooked_run(fd: c_int, iters: u64) -> f64 {
    let mut buf = [0u8; 1];
    let t0 = Instant::now();
    for _ in 0..iters {
        // SAFETY: `buf` is one writable byte; the hook has libc's contract.
        let r = unsafe {
            libc::recv(
                black_box(fd),
                buf.as_mut_ptr().cast(),
                1,
                libc::MSG_DONTWAIT,
            )
        };
        black_box(r);
    }
    t0.elapsed().as_nanos() as f64 / iters as f64
}

/// Checks that one call of `f` fails with `EAGAIN`, as a call on an empty, open
/// socket end must (anything else: the benchmark would not time what it says).
fn expect_eagain(what: &str, f: impl FnOnce() -> ssize_t) -> Result<(), Error> {
    let r = f();
    let e = std::io::Error::last_os_error();
    if r != -1 || e.raw_os_error() != Some(libc::EAGAIN) {
        return Err(format!("{what}: returned {r} ({e}), expected -1 with EAGAIN").into());
    }
    Ok(())
}

/// The best (lowest) of `RUNS` runs of each of `rows`, interleaved round by round
/// (forwards in even rounds, backwards in odd ones), after one warm-up round.
fn best_of(rows: &mut [&mut dyn FnMut() -> f64]) -> Vec<f64> {
    for r in rows.iter_mut() {
        r();
    }
    let n = rows.len();
    let mut best = vec![f64::INFINITY; n];
    for round in 0..RUNS {
        for k in 0..n {
            let i = if round % 2 == 0 { k } else { n - 1 - k };
            best[i] = best[i].min(rows[i]());
        }
    }
    best
}

fn main() -> Result<(), Error> {
    let (scale, mut out) = gevent_bench::micro_args().map_err(|e| e.to_string())?;
    let iters = ((ITERS as f64 * scale) as u64).max(10);

    // This thread (`main`) never patches: its hooked calls are the pass-through.
    if gevent_monkey::patched_here() != gevent_monkey::Patched::default() {
        return Err("main patched something: the unpatched row would be wrong".into());
    }
    // SAFETY: the name is NUL-terminated; dlsym only reads it.
    let p = unsafe { libc::dlsym(libc::RTLD_NEXT, c"recv".as_ptr()) };
    if p.is_null() {
        return Err("dlsym(RTLD_NEXT, \"recv\") found no recv".into());
    }
    // SAFETY: `p` is libc's `recv`, whose C signature `RecvFn` spells.
    let real: RecvFn = unsafe { std::mem::transmute::<*mut c_void, RecvFn>(p) };
    // The hook must be what the binary's calls reach, else both rows time libc.
    let hooked = libc::recv as *const () as usize;
    if hooked == p as usize {
        return Err(
            "calls to recv reach libc directly: gevent-monkey's hooks are not linked".into(),
        );
    }

    let mut fds = [0 as c_int; 2];
    // SAFETY: `fds` has room for the two fds socketpair writes.
    if unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_STREAM, 0, fds.as_mut_ptr()) } != 0 {
        return Err(format!("socketpair: {}", std::io::Error::last_os_error()).into());
    }
    let fd = fds[0];
    let mut buf = [0u8; 1];
    // SAFETY: as in the runs.
    expect_eagain("real recv", || unsafe {
        real(fd, buf.as_mut_ptr().cast(), 1, libc::MSG_DONTWAIT)
    })?;
    // SAFETY: as in the runs.
    expect_eagain("hooked recv", || unsafe {
        libc::recv(fd, buf.as_mut_ptr().cast(), 1, libc::MSG_DONTWAIT)
    })?;

    let best = best_of(&mut [&mut || real_run(real, fd, iters), &mut || {
        hooked_run(fd, iters)
    }]);
    let (real_ns, hooked_ns) = (best[0], best[1]);

    // The patched thread: patch_socket() also checks that the hooks are in effect.
    // From here on the process is multi-threaded, and libc's `recv` itself costs more
    // (glibc's cancellation-point wrappers take their multi-threaded path once a second
    // thread has been created, for good), so this thread times the real call again as
    // its own baseline.
    let (patched_real_ns, patched_ns) = std::thread::spawn(move || -> Result<(f64, f64), Error> {
        gevent_monkey::patch_socket().map_err(|e| e.to_string())?;
        if !gevent_monkey::patched_here().socket {
            return Err("patch_socket() did not patch this thread".into());
        }
        let mut buf = [0u8; 1];
        // SAFETY: as in the runs.
        expect_eagain("hooked recv, patched thread", || unsafe {
            libc::recv(fd, buf.as_mut_ptr().cast(), 1, libc::MSG_DONTWAIT)
        })?;
        let b = best_of(&mut [&mut || real_run(real, fd, iters), &mut || {
            hooked_run(fd, iters)
        }]);
        Ok((b[0], b[1]))
    })
    .join()
    .map_err(|_| "the patched thread panicked")??;

    // SAFETY: both fds are ours, open, and not used after this.
    unsafe {
        libc::close(fds[0]);
        libc::close(fds[1]);
    }

    println!("gevent-monkey pass-through, {NAME}, best of {RUNS} runs of {iters} calls, ns/call");
    println!("{:<44} {:>10}", "call", "ns/call");
    let rows = [
        (
            "libc",
            "real libc recv (dlsym RTLD_NEXT, by pointer)",
            real_ns,
        ),
        (
            "gevent-monkey",
            "hooked recv, thread that did not patch",
            hooked_ns,
        ),
        (
            "patched-thread-libc",
            "real libc recv, second thread (its baseline)",
            patched_real_ns,
        ),
        (
            "patched-thread-hooked",
            "hooked recv, patched thread (MSG_DONTWAIT)",
            patched_ns,
        ),
    ];
    for (_, label, ns) in rows {
        println!("{label:<44} {:>10}", fmt::ns(ns));
    }
    println!(
        "{:<44} {:>10} (target: at most 5.0)",
        "hooked - real, thread that did not patch",
        fmt::ns(hooked_ns - real_ns)
    );
    println!(
        "{:<44} {:>10} (for information)",
        "hooked - real, patched thread",
        fmt::ns(patched_ns - patched_real_ns)
    );
    if let Some(f) = out.as_mut() {
        for (imp, _, ns) in rows {
            let rec = serde_json::json!({
                "kind": "micro", "group": "monkey", "name": NAME,
                "impl": imp, "ns": ns, "iters": iters, "runs": RUNS,
            });
            writeln!(f, "{rec}")?;
        }
    }
    Ok(())
}
