//! The repeated timer from the gevent.core slide: prints a timestamp every second.
//!
//! ```python
//! loop = gevent.core.loop()
//! timer = loop.timer(0, 1)          # after 0 s, then every 1 s
//! timer.start(lambda: print(time.time()))
//! loop.run()
//! ```
//!
//! Run: `cargo run --example timer -- [COUNT] [INTERVAL_MS]` (defaults: 5 ticks, 1000 ms).
//! It stops by itself after COUNT ticks, when the timer stops and the loop has no
//! more work.

use gevent::core::{Loop, Timer};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let count: u32 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(5);
    let interval =
        Duration::from_millis(args.next().map(|s| s.parse()).transpose()?.unwrap_or(1000));

    let lp = Loop::new()?;
    println!(
        "libev {}.{} on {}",
        gevent::core::version().0,
        gevent::core::version().1,
        lp.backend_name()
    );
    let timer: Timer = lp.timer(Duration::ZERO, interval);
    let mut ticks = 0;
    timer.start(move |t, _events| {
        ticks += 1;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        println!("tick {ticks}: {:.6}", now.as_secs_f64());
        if ticks == count {
            t.stop();
        }
    })?;
    lp.run()?;
    println!("done after {count} ticks");
    Ok(())
}
