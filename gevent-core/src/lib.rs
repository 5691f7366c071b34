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
//! ## Modules
//! Everything is re-exported at the root; the modules hold each watcher type's
//! documentation and its own operations.
//! - [`watcher`]: what every watcher shares: [`Watcher`], [`WatcherCore`], [`Kind`],
//!   priorities; the state machine and how it keeps the soundness rules.
//! - [`kind`]: the marker types that name each watcher type in `Watcher<K>`.
//! - [`io`], [`timer`], [`periodic`], [`signal`], [`child`], [`stat`], [`async_`]: one
//!   module per libev watcher type, named after it.
//! - [`phases`]: the loop-phase watchers: idle, prepare, check, fork, cleanup.
//!
//! ## Soundness rules
//! The crate's unsafe code rests on these rules, numbered as in the project's design;
//! each is pinned by tests (`tests/soundness.rs`, `tests/bad_input.rs`, and the file of
//! the watcher type concerned), and every `// SAFETY:` comment names the ones it
//! relies on. [`watcher`] shows how the shared machinery keeps them.
//!
//! 1. A watcher's libev struct never moves and is never freed while libev may touch
//!    it (active or pending): it lives in the watcher's heap allocation
//!    ([`WatcherCore`]), and stopping a watcher also clears a pending event.
//! 2. Dropping a watcher handle stops it. A started watcher without a handle is an
//!    explicit opt-in ([`Watcher::detach`]), owned by the loop until it stops.
//! 3. A callback may stop, restart, re-arm or drop any watcher, its own included, and
//!    replace its own callback: the trampoline holds a strong count on the watcher and
//!    takes the closure out of its slot while it runs.
//! 4. The loop outlives every watcher: `Loop` handles, watchers and [`LoopRef`]s hold
//!    the loop's state, so a loop reached through one of them is alive, and
//!    `ev_loop_destroy` runs once, for the last of them. Cleanup watchers hold it
//!    weakly and see it as gone once its destruction has begun.
//! 5. No panic unwinds into C: every function libev calls catches it; the loop breaks
//!    and [`Loop::run`] resumes the panic, or the
//!    [error handler](Loop::set_error_handler) gets it.
//! 6. Every libev `assert` and `abort` reachable from this API is an [`Error`] first,
//!    and libev's fatal `syserr` path is routed into [`Error::System`].
//! 7. A loop and its watchers belong to one thread (`!Send`): libev never runs
//!    concurrently with the code that holds them. Only [`AsyncSender`] crosses
//!    threads, under a lock, and it stays valid (a no-op) after its loop is gone.
//!
//! Two pointers lead from C back to Rust; these rules are this crate's own:
//!
//! 8. A loop's `ev_userdata` is its state, set as soon as the loop is made and valid
//!    until `ev_loop_destroy` returns.
//! 9. A watcher's `data` is its [`WatcherCore`], set before the struct can be started
//!    and valid for as long as the watcher is (rules 1 and 2).
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
#![deny(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]

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
#[allow(deprecated)]
pub use watcher::WatcherRef;
pub use watcher::{Kind, Watcher, WatcherCore, WeakWatcher, MAXPRI, MINPRI};
pub use watchers::async_::{Async, AsyncSender};
pub use watchers::child::Child;
pub use watchers::io::Io;
pub use watchers::periodic::Periodic;
pub use watchers::phases::{Check, Cleanup, Fork, Idle, Prepare};
pub use watchers::signal::{Signal, NSIG};
pub use watchers::stat::{Stat, StatInfo};
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
