//! libev's own first example ("EXAMPLE PROGRAM" in ev.pod), ported line by line: wait
//! for stdin to become readable, or give up after 5.5 seconds.
//!
//! Run: `cargo run --example evpod_port`, then press Enter within 5.5 s ("stdin ready")
//! or wait ("timeout"). Unattended: `echo | cargo run --example evpod_port` prints
//! "stdin ready" at once; `sleep 7 | cargo run --example evpod_port` prints "timeout".
//! Like the C program, it does not read stdin; it only reports that it became readable.
//!
//! The C original, from `vendor/libev/ev.pod`:
//!
//! ```c
//! // a single header file is required
//! #include <ev.h>
//!
//! #include <stdio.h> // for puts
//!
//! // every watcher type has its own typedef'd struct
//! // with the name ev_TYPE
//! ev_io stdin_watcher;
//! ev_timer timeout_watcher;
//!
//! // all watcher callbacks have a similar signature
//! // this callback is called when data is readable on stdin
//! static void
//! stdin_cb (EV_P_ ev_io *w, int revents)
//! {
//!   puts ("stdin ready");
//!   // for one-shot events, one must manually stop the watcher
//!   // with its corresponding stop function.
//!   ev_io_stop (EV_A_ w);
//!
//!   // this causes all nested ev_run's to stop iterating
//!   ev_break (EV_A_ EVBREAK_ALL);
//! }
//!
//! // another callback, this time for a time-out
//! static void
//! timeout_cb (EV_P_ ev_timer *w, int revents)
//! {
//!   puts ("timeout");
//!   // this causes the innermost ev_run to stop iterating
//!   ev_break (EV_A_ EVBREAK_ONE);
//! }
//!
//! int
//! main (void)
//! {
//!   // use the default event loop unless you have special needs
//!   struct ev_loop *loop = EV_DEFAULT;
//!
//!   // initialise an io watcher, then start it
//!   // this one will watch for stdin to become readable
//!   ev_io_init (&stdin_watcher, stdin_cb, /*STDIN_FILENO*/ 0, EV_READ);
//!   ev_io_start (loop, &stdin_watcher);
//!
//!   // initialise a timer watcher, then start it
//!   // simple non-repeating 5.5 second timeout
//!   ev_timer_init (&timeout_watcher, timeout_cb, 5.5, 0.);
//!   ev_timer_start (loop, &timeout_watcher);
//!
//!   // now wait for events to arrive
//!   ev_run (loop, 0);
//!
//!   // break was called, so exit
//!   return 0;
//! }
//! ```
//!
//! What changes in Rust: the watchers are values owned by `main` instead of globals
//! (the handle must outlive `run`; dropping it stops the watcher), `EV_A` is
//! `w.get_loop()`, and errors that libev would `assert` on (a closed stdin) come back
//! as `Err` from `io` and `start`.

// a single use line is required (the facade re-exports gevent-core as `core`)
use gevent::core::kind::{IoKind, TimerKind};
use gevent::core::{Break, Events, Io, Loop, Timer, WatcherCore};

use std::time::Duration; // for the 5.5 s

// every watcher type has its own type, Io, Timer, ...; callbacks receive the
// watcher as a WatcherCore<KIND>

// all watcher callbacks have a similar signature
// this callback is called when data is readable on stdin
fn stdin_cb(w: &WatcherCore<IoKind>, _revents: Events) {
    println!("stdin ready");
    // for one-shot events, one must manually stop the watcher
    // with its corresponding stop function.
    w.stop();

    // this causes all nested run's to stop iterating
    if let Some(lp) = w.get_loop() {
        lp.break_loop(Break::All);
    }
}

// another callback, this time for a time-out
fn timeout_cb(w: &WatcherCore<TimerKind>, _revents: Events) {
    println!("timeout");
    // this causes the innermost run to stop iterating
    if let Some(lp) = w.get_loop() {
        lp.break_loop(Break::One);
    }
}

fn main() -> Result<(), gevent::core::Error> {
    // use the default event loop unless you have special needs
    let lp = Loop::default_loop()?;

    // initialise an io watcher, then start it
    // this one will watch for stdin to become readable
    let stdin_watcher: Io = lp.io(/*STDIN_FILENO*/ 0, Events::READ)?;
    stdin_watcher.start(stdin_cb)?;

    // initialise a timer watcher, then start it
    // simple non-repeating 5.5 second timeout
    let timeout_watcher: Timer = lp.timer(Duration::from_secs_f64(5.5), Duration::ZERO);
    timeout_watcher.start(timeout_cb)?;

    // now wait for events to arrive
    lp.run()?;

    // break was called, so exit
    Ok(())
}
