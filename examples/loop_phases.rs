//! The loop phases: prepare and check watchers around the blocking poll, an idle
//! watcher that keeps the poll from blocking, and `run_callback` drained just before
//! the loop blocks, printed in the order libev runs them.
//!
//! As the talk puts it: "Before blocking the process, it calls [the prepare watchers],
//! and after blocking the process, it calls [the check watchers]". One iteration of
//! `ev_run` is:
//!
//! ```text
//!   prepare watchers        (the loop's own, draining run_callback, then yours)
//!   poll (epoll_wait)       blocks until the next timer or fd event -- unless an idle
//!                           watcher is active, then it only peeks
//!   check watchers          run first among what the poll produced
//!   timer / io callbacks
//!   idle watchers           only when nothing of higher priority is pending
//! ```
//!
//! Run: `cargo run --example loop_phases -- [TICKS] [INTERVAL_MS]` (defaults: 3 ticks,
//! 300 ms). A repeating timer drives the iterations; on the second tick it queues a
//! `run_callback` and starts an idle watcher, so one iteration shows each of them. The
//! program stops by itself after TICKS ticks: the prepare, check and idle watchers do
//! not keep the loop alive (`set_ref(false)`), so the loop ends with the timer.

use gevent::core::{Loop, Timer};
use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let ticks: u32 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(3);
    let interval =
        Duration::from_millis(args.next().map(|s| s.parse()).transpose()?.unwrap_or(300));

    let lp = Loop::new()?;
    let start = Instant::now();
    // Milliseconds since start, for the left column.
    let ms = move || start.elapsed().as_secs_f64() * 1e3;
    // The iteration number as this program counts it (one per prepare phase), and the
    // moment the last prepare ran, to show how long the poll blocked.
    let iteration = Rc::new(Cell::new(0u32));
    let before_poll = Rc::new(Cell::new(Instant::now()));

    let prepare = lp.prepare();
    prepare.set_ref(false);
    {
        let (iteration, before_poll) = (iteration.clone(), before_poll.clone());
        prepare.start(move |_, _| {
            iteration.set(iteration.get() + 1);
            println!(
                "{:8.1} ms  iteration {}: prepare  -- about to block",
                ms(),
                iteration.get()
            );
            before_poll.set(Instant::now());
        })?;
    }

    let check = lp.check();
    check.set_ref(false);
    {
        let (iteration, before_poll) = (iteration.clone(), before_poll.clone());
        check.start(move |_, _| {
            let blocked = before_poll.get().elapsed();
            println!(
                "{:8.1} ms  iteration {}: check    -- polled, blocked {:.1} ms",
                ms(),
                iteration.get(),
                blocked.as_secs_f64() * 1e3
            );
        })?;
    }

    // Made now, started by the timer on its second tick.
    let idle = Rc::new(lp.idle());
    idle.set_ref(false);

    let timer: Timer = lp.timer(interval, interval);
    let mut n = 0;
    {
        let (iteration, idle) = (iteration.clone(), idle.clone());
        let lp2 = lp.clone();
        timer.start(move |t, _| {
            n += 1;
            println!(
                "{:8.1} ms  iteration {}: timer    -- tick {n} of {ticks}",
                ms(),
                iteration.get()
            );
            if n == 2 {
                let it = iteration.clone();
                lp2.run_callback(move || {
                    println!(
                        "{:8.1} ms  iteration {}: run_callback -- drained by the loop's own \
                         prepare watcher, before yours",
                        ms(),
                        it.get() + 1
                    );
                });
                let it = iteration.clone();
                let started = idle.start(move |w, _| {
                    println!(
                        "{:8.1} ms  iteration {}: idle     -- nothing else pending; while \
                         active, the poll does not block",
                        ms(),
                        it.get()
                    );
                    w.stop();
                });
                if let Err(e) = started {
                    eprintln!("idle start: {e}");
                }
            }
            if n == ticks {
                t.stop();
            }
        })?;
    }

    println!(
        "{:8.1} ms  running: a {} ms timer, {ticks} ticks, backend {}",
        ms(),
        interval.as_millis(),
        lp.backend_name()
    );
    lp.run()?;
    println!(
        "{:8.1} ms  done after {} iterations: only unreferenced watchers were left",
        ms(),
        iteration.get()
    );
    Ok(())
}
