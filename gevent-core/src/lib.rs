//! gevent.core in Rust: safe wrappers over libev's loop and every watcher.
//!
//! A [`Loop`] is libev's `struct ev_loop`; watchers are made from it the way gevent
//! makes them (`lp.timer(after, repeat)`, `lp.io(fd, events)`), started with a closure,
//! stopped with `stop()` or by dropping the handle:
//!
//! ```
//! use gevent_core::{Loop, Events};
//! use std::time::Duration;
//! use std::rc::Rc;
//! use std::cell::Cell;
//!
//! let lp = Loop::new()?;
//! let ticks = Rc::new(Cell::new(0));
//! let t = lp.timer(Duration::from_millis(1), Duration::from_millis(1));
//! let seen = ticks.clone();
//! t.start(move |w, events| {
//!     assert!(events.contains(Events::TIMER));
//!     seen.set(seen.get() + 1);
//!     if seen.get() == 3 {
//!         w.stop(); // the loop has nothing left to do and `run` returns
//!     }
//! })?;
//! lp.run()?;
//! assert_eq!(ticks.get(), 3);
//! # Ok::<(), gevent_core::Error>(())
//! ```
//!
//! | libev | here |
//! |---|---|
//! | `ev_loop_new (flags)` / `ev_default_loop (0)` | [`Loop::with_flags`] / [`Loop::default_loop`] |
//! | `ev_run (loop, 0)`, `EVRUN_ONCE`, `EVRUN_NOWAIT` | [`Loop::run`], [`Loop::run_once`], [`Loop::run_nowait`] |
//! | `ev_break (loop, EVBREAK_ALL)` | [`Loop::break_loop`]`(Break::All)` |
//! | `ev_io_init (&w, cb, fd, EV_READ); ev_io_start (loop, &w)` | `let w = lp.io(fd, Events::READ)?; w.start(cb)?` |
//! | `ev_timer_init (&w, cb, 1., 0.)` | `lp.timer(Duration::from_secs(1), Duration::ZERO)` |
//! | `ev_TYPE_stop (loop, &w)` | `w.stop()` or `drop(w)` |
//! | `ev_is_active`, `ev_is_pending`, `ev_set_priority`, `ev_feed_event` | `is_active`, `is_pending`, `set_priority`, `feed` |
//! | `ev_unref` after start (a watcher that doesn't keep the loop alive) | `w.set_ref(false)` |
//! | `ev_async_send` from another thread | [`AsyncSender::send`] |
//!
//! The full guide, with an ev.pod example ported side by side, is
//! `docs/porting-from-libev.md`.
//!
//! ## Soundness
//! Watchers live in stable heap allocations and keep their loop alive; dropping a
//! handle stops the watcher; callbacks may stop, restart, replace or drop any watcher,
//! their own included; panics never unwind into C (they stop the loop and resume from
//! [`Loop::run`], or go to the [error handler](Loop::set_error_handler)); every libev
//! assertion reachable from this API is an [`Error`] first. `Loop` and watchers are
//! `!Send`; only [`AsyncSender`] crosses threads. See [`watcher`] for the details.
//!
//! ## Time
//! Every time is a `Duration`. libev keeps times as `f64` seconds, so a duration too
//! large for it to tell apart from the end of time (`Duration::MAX` included) means
//! "never", and reads back (`repeat`, `remaining`, `at`, `interval`) as
//! `Duration::MAX` or close to it; no getter panics on it.
//!
//! ## The default loop and SIGCHLD
//! See [`child`]: child reaping is opt-in, so `std::process` keeps working.
#![deny(missing_docs, missing_debug_implementations, rust_2018_idioms)]
#![deny(unsafe_op_in_unsafe_fn)]

mod callbacks;
mod default_loop;
mod error;
mod event_loop;
mod events;
mod flags;
mod registry;
mod sys;
mod syserr;
pub mod watcher;
mod watchers;

pub use callbacks::Callback;
pub use error::{Error, PanicPayload, Result};
pub use event_loop::{version, Break, Loop, LoopRef};
pub use events::Events;
pub use flags::{backend_names, recommended_backends, supported_backends, Flags};
pub use watcher::{Kind, Watcher, WatcherCore, WatcherRef, WeakWatcher, MAXPRI, MINPRI};
pub use watchers::async_::{Async, AsyncSender};
pub use watchers::child::Child;
pub use watchers::io::Io;
pub use watchers::periodic::Periodic;
pub use watchers::phases::{Check, Cleanup, Fork, Idle, Prepare};
pub use watchers::signal::{Signal, NSIG};
pub use watchers::stat::Stat;
pub use watchers::timer::Timer;
pub use watchers::{async_, child, io, periodic, phases, signal, stat, timer};

/// The marker types that name each watcher type in [`Watcher<K>`](Watcher).
pub mod kind {
    pub use crate::watchers::async_::AsyncKind;
    pub use crate::watchers::child::ChildKind;
    pub use crate::watchers::io::IoKind;
    pub use crate::watchers::periodic::PeriodicKind;
    pub use crate::watchers::phases::{CheckKind, CleanupKind, ForkKind, IdleKind, PrepareKind};
    pub use crate::watchers::signal::SignalKind;
    pub use crate::watchers::stat::StatKind;
    pub use crate::watchers::timer::TimerKind;
}
