//! The slides' simplified hub: a greenlet running the event loop, and a `sleep` that
//! arms a timer whose callback switches back to the sleeper, then switches to the hub.
//!
//! ```python
//! import gevent.core, greenlet, time
//!
//! # simplified hub. (Use hub = gevent.get_hub() normally)
//! loop = gevent.core.loop()
//! hub = greenlet.greenlet(loop.run)
//!
//! # simplified gevent.sleep()
//! def sleep(seconds):
//!     timer = loop.timer(seconds)
//!     # Switch to current greenlet on callback.
//!     timer.start(greenlet.getcurrent().switch)
//!     # Switch to hub and run event loop.
//!     hub.switch()
//!
//! # function looks like blocking code.
//! def sleeper():
//!     for _ in range(4):
//!         print time.time()
//!         sleep(1)
//!
//! sleeper()
//! ```
//!
//! This is how `gevent::hub` works underneath (its hub adds the run queue, kills,
//! timeouts and the rest); use `gevent::hub::sleep` in real code.
//!
//! Run: `cargo run --example hub_sleep -- [COUNT] [SECONDS]` (default 4 and 1).

use gevent::core::Loop;
use gevent::hub::greenlet::{getcurrent, RawGreenlet, Value};
use std::error::Error;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let count: u32 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(4);
    let seconds: f64 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(1.0);
    // A negative, infinite or NaN SECONDS is an error, not a panic.
    let pause = Duration::try_from_secs_f64(seconds)
        .map_err(|e| format!("SECONDS must be a finite number, 0 or more ({e})"))?;

    // The simplified hub: a greenlet whose body runs the loop.
    let lp = Loop::new()?;
    let hub = {
        let lp = lp.clone();
        RawGreenlet::new(move |_: Value| lp.run())
    };

    // The simplified gevent.sleep().
    let sleep = |d: Duration| -> Result<(), Box<dyn Error>> {
        let timer = lp.timer(d, Duration::ZERO);
        // Switch to the current greenlet on callback.
        let me = getcurrent();
        timer.start(move |_, _| {
            let _ = me.switch(());
        })?;
        // Switch to the hub and run the event loop.
        hub.switch(())?;
        Ok(())
    };

    // A function that looks like blocking code.
    for _ in 0..count {
        let now = SystemTime::now().duration_since(UNIX_EPOCH)?;
        println!("{:.2}", now.as_secs_f64());
        sleep(pause)?;
    }

    // The hub is suspended in the last timer's callback: let it return, so that the
    // loop (with nothing left to watch) returns and the hub's body ends.
    hub.switch(())?;
    assert!(hub.is_dead());
    Ok(())
}
