//! Hub micro-benchmarks: greenlet switches, switches through the hub, spawn+join, and
//! the toolkit (Queue, Event, Semaphore, ThreadPool), each in ns per operation. Their
//! peers: a bare `context` crate resume (the switch the greenlets are built on), and
//! the same operations in Python gevent (`bench/py/micro.py`, run by the suite; the
//! report shows the ratios).
//!
//! Run: `cargo run --release -p gevent-bench --bin micro_hub -- [SCALE] [--json FILE]`
//! SCALE (default 1.0) multiplies every iteration count. Each row is the best of
//! `RUNS` timed runs after one warm-up run.
//!
//! | row | what one operation is |
//! |---|---|
//! | context resume round trip | `Context::resume` into a coroutine that resumes straight back: two jumps |
//! | raw greenlet switch round trip | `g.switch(())` into a greenlet that switches straight back to main |
//! | hub switch: sleep(0) | one `sleep(Duration::ZERO)` in one of two greenlets doing it in turn: out to the hub and back in |
//! | Event ping-pong round trip | greenlet A sets e1 and waits e2, B waits e1 and sets e2 |
//! | spawn+join | `spawn(\|\| 1).join()` of a trivial greenlet, from main |
//! | Queue put+get (two greenlets) | `Queue::bounded(1)`: a producer's `put` and a consumer's `get`, handing over through the hub |
//! | Event set+wait (already set) | `e.set(); e.wait(); e.clear()`: the uncontended path |
//! | Semaphore acquire+release | uncontended |
//! | ThreadPool round trip | `pool.apply(\|\| 1)` from a greenlet: a worker thread runs it, the hub is woken |
//! | busy loop: the slides' stress() | `gevent_bench::stress(1)`: the unit of work of S2-busy, to compare with Python's |

use context::stack::ProtectedFixedSizeStack;
use context::{Context, Transfer};
use gevent_bench::fmt;
use gevent_hub::greenlet::{getcurrent, RawGreenlet};
use gevent_hub::{sleep, spawn, Event, Queue, Semaphore, ThreadPool};
use std::hint::black_box;
use std::time::{Duration, Instant};

/// Timed runs per measurement (after one warm-up); the best is reported.
const RUNS: usize = 5;

type BenchResult = Result<f64, Box<dyn std::error::Error>>;

fn per_op(elapsed: Duration, ops: u64) -> f64 {
    elapsed.as_nanos() as f64 / ops as f64
}

extern "C" fn bounce(mut t: Transfer) -> ! {
    loop {
        // SAFETY: `t.context` is the context that resumed us, suspended in its own
        // resume call; resuming it is what it waits for.
        t = unsafe { t.context.resume(t.data) };
    }
}

fn context_round_trip(iters: u64) -> BenchResult {
    let stack = ProtectedFixedSizeStack::new(64 * 1024)?;
    // SAFETY: the stack outlives the context: the coroutine is never resumed after this
    // function returns, and `bounce` owns nothing that would need unwinding.
    let mut t = Transfer::new(unsafe { Context::new(&stack, bounce) }, 0);
    let t0 = Instant::now();
    for i in 0..iters {
        // SAFETY: `t.context` is the coroutine, suspended in `bounce` (or not started).
        t = unsafe { t.context.resume(i as usize) };
        black_box(t.data);
    }
    Ok(per_op(t0.elapsed(), iters))
}

fn raw_greenlet_round_trip(iters: u64) -> BenchResult {
    let main = getcurrent();
    let g = RawGreenlet::new(move |_| loop {
        // Dropping `g` below throws GreenletExit in here, which ends the loop.
        if main.switch(()).is_err() {
            break;
        }
    });
    let t0 = Instant::now();
    for _ in 0..iters {
        g.switch(())?;
    }
    Ok(per_op(t0.elapsed(), iters))
}

fn hub_sleep0(iters: u64) -> BenchResult {
    let body = move || -> gevent_hub::Result<()> {
        for _ in 0..iters {
            sleep(Duration::ZERO);
        }
        Ok(())
    };
    let t0 = Instant::now();
    let (a, b) = (spawn(body), spawn(body));
    a.join()??;
    b.join()??;
    Ok(per_op(t0.elapsed(), 2 * iters))
}

fn event_ping_pong(iters: u64) -> BenchResult {
    let (e1, e2) = (Event::new(), Event::new());
    let (a1, a2) = (e1.clone(), e2.clone());
    let t0 = Instant::now();
    let a = spawn(move || -> gevent_hub::Result<()> {
        for _ in 0..iters {
            a1.set();
            a2.wait()?;
            a2.clear();
        }
        Ok(())
    });
    let b = spawn(move || -> gevent_hub::Result<()> {
        for _ in 0..iters {
            e1.wait()?;
            e1.clear();
            e2.set();
        }
        Ok(())
    });
    a.join()??;
    b.join()??;
    Ok(per_op(t0.elapsed(), iters))
}

fn spawn_join(iters: u64) -> BenchResult {
    let t0 = Instant::now();
    for i in 0..iters {
        let v = spawn(move || i).join()?;
        black_box(v);
    }
    Ok(per_op(t0.elapsed(), iters))
}

fn queue_put_get(iters: u64) -> BenchResult {
    let q: Queue<u64> = Queue::bounded(1);
    let q2 = q.clone();
    let t0 = Instant::now();
    let producer = spawn(move || -> Result<(), String> {
        for i in 0..iters {
            q2.put(i).map_err(|e| e.to_string())?;
        }
        Ok(())
    });
    let consumer = spawn(move || -> Result<u64, String> {
        let mut sum = 0u64;
        for _ in 0..iters {
            sum = sum.wrapping_add(q.get().map_err(|e| e.to_string())?);
        }
        Ok(sum)
    });
    producer.join()??;
    let sum = consumer.join()??;
    let elapsed = t0.elapsed();
    if sum != (0..iters).fold(0u64, u64::wrapping_add) {
        return Err("the consumer got the wrong items".into());
    }
    Ok(per_op(elapsed, iters))
}

fn event_set_wait(iters: u64) -> BenchResult {
    let e = Event::new();
    let t0 = Instant::now();
    for _ in 0..iters {
        e.set();
        e.wait()?;
        e.clear();
    }
    Ok(per_op(t0.elapsed(), iters))
}

fn semaphore(iters: u64) -> BenchResult {
    let s = Semaphore::new(1);
    let t0 = Instant::now();
    for _ in 0..iters {
        s.acquire()?;
        s.release();
    }
    Ok(per_op(t0.elapsed(), iters))
}

fn busy_loop(iters: u64) -> BenchResult {
    let t0 = Instant::now();
    for _ in 0..iters {
        gevent_bench::stress(1);
    }
    Ok(per_op(t0.elapsed(), iters))
}

fn threadpool_round_trip(iters: u64) -> BenchResult {
    let pool = ThreadPool::new(1).map_err(|e| e.to_string())?;
    let g = spawn(move || -> Result<f64, String> {
        let t0 = Instant::now();
        for i in 0..iters {
            let v = pool.apply(move || i).map_err(|e| e.to_string())?;
            black_box(v);
        }
        Ok(per_op(t0.elapsed(), iters))
    });
    Ok(g.join()??)
}

struct Row {
    name: &'static str,
    group: &'static str,
    iters: u64,
    run: fn(u64) -> BenchResult,
}

fn rows() -> Vec<Row> {
    vec![
        Row {
            name: "context resume round trip",
            group: "hub",
            iters: 5_000_000,
            run: context_round_trip,
        },
        Row {
            name: "raw greenlet switch round trip",
            group: "hub",
            iters: 2_000_000,
            run: raw_greenlet_round_trip,
        },
        Row {
            name: "hub switch: sleep(0)",
            group: "hub",
            iters: 300_000,
            run: hub_sleep0,
        },
        Row {
            name: "Event ping-pong round trip",
            group: "hub",
            iters: 200_000,
            run: event_ping_pong,
        },
        Row {
            name: "spawn+join",
            group: "hub",
            iters: 300_000,
            run: spawn_join,
        },
        Row {
            name: "Queue put+get (two greenlets)",
            group: "toolkit",
            iters: 200_000,
            run: queue_put_get,
        },
        Row {
            name: "Event set+wait (already set)",
            group: "toolkit",
            iters: 2_000_000,
            run: event_set_wait,
        },
        Row {
            name: "Semaphore acquire+release",
            group: "toolkit",
            iters: 2_000_000,
            run: semaphore,
        },
        Row {
            name: "ThreadPool round trip",
            group: "toolkit",
            iters: 20_000,
            run: threadpool_round_trip,
        },
        Row {
            name: "busy loop: the slides' stress()",
            group: "calib",
            iters: 20_000,
            run: busy_loop,
        },
    ]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (scale, mut out) = gevent_bench::micro_args()?;
    println!("gevent-rs hub micro-benchmarks, best of {RUNS} runs, ns/op");
    println!("{:<40} {:>10}", "operation", "ns/op");
    let started = Instant::now();
    for row in rows() {
        let iters = ((row.iters as f64 * scale) as u64).max(10);
        (row.run)(iters)?;
        let mut best = f64::INFINITY;
        for _ in 0..RUNS {
            best = best.min((row.run)(iters)?);
        }
        println!("{:<40} {:>10}", row.name, fmt::ns(best));
        if let Some(f) = out.as_mut() {
            use std::io::Write;
            let imp = if row.name.starts_with("context") {
                "context"
            } else {
                "gevent-rs"
            };
            let rec = serde_json::json!({
                "kind": "micro", "group": row.group, "name": row.name,
                "impl": imp, "ns": best, "iters": iters,
            });
            writeln!(f, "{rec}")?;
        }
    }
    println!("total time {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}
