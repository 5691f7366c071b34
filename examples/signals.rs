//! Signal watchers: print a heartbeat until SIGINT (Ctrl-C) or SIGTERM arrives, then
//! stop the loop cleanly.
//!
//! libev catches the signal and runs the watcher's callback from the loop, like any
//! other event, so the callback may do anything (print, stop watchers, break the loop),
//! not just what is async-signal-safe.
//!
//! ```c
//! static void sigint_cb (struct ev_loop *loop, ev_signal *w, int revents)
//! {
//!   ev_break (loop, EVBREAK_ALL);
//! }
//! ev_signal_init (&signal_watcher, sigint_cb, SIGINT);
//! ev_signal_start (loop, &signal_watcher);
//! ```
//!
//! Run: `cargo run --example signals` and press Ctrl-C (or `kill -TERM <pid>`).
//! `cargo run --example signals -- --self-test` sends itself SIGTERM after 1.5 s, so it
//! can run unattended. Either way it ends by itself once the signal arrives.

use gevent::core::{Break, Loop, Signal};
use std::time::Duration;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let self_test = match std::env::args().nth(1).as_deref() {
        None => false,
        Some("--self-test") => true,
        Some(other) => return Err(format!("unknown argument {other:?}; try --self-test").into()),
    };

    let lp = Loop::new()?;

    // One watcher per signal; both stop the loop. Starting a watcher is what installs
    // libev's handler for that signal; dropping it (at the end of main) uninstalls it.
    let mut watchers: Vec<Signal> = Vec::new();
    for (signum, name) in [(libc::SIGINT, "SIGINT"), (libc::SIGTERM, "SIGTERM")] {
        let w = lp.signal(signum)?;
        w.start(move |w, _events| {
            println!("received {name} ({}): stopping the loop", w.signum());
            if let Some(lp) = w.get_loop() {
                // The heartbeat timer would keep the loop running: break out of it.
                lp.break_loop(Break::All);
            }
        })?;
        watchers.push(w);
    }

    let mut beats = 0u32;
    let heartbeat = lp.timer(Duration::ZERO, Duration::from_millis(500));
    heartbeat.start(move |_, _| {
        beats += 1;
        println!("heartbeat {beats}");
    })?;

    // --self-test: a one-shot timer plays the part of the user pressing Ctrl-C.
    let sender = lp.timer(Duration::from_millis(1500), Duration::ZERO);
    if self_test {
        sender.start(|_, _| {
            println!("self-test: sending SIGTERM to myself");
            // SAFETY: kill(2) with our own pid and a signal number; no memory involved.
            if unsafe { libc::kill(libc::getpid(), libc::SIGTERM) } == -1 {
                eprintln!("kill: {}", std::io::Error::last_os_error());
            }
        })?;
    }

    println!(
        "pid {}: press Ctrl-C or run `kill -TERM {}` to stop",
        std::process::id(),
        std::process::id()
    );
    lp.run()?;
    println!("loop stopped; exiting cleanly");
    Ok(())
}
