//! gevent's heart in Rust: greenlets (stackful coroutines on the `context` crate)
//! scheduled by a per-thread hub that runs a libev loop.
//!
//! Code written in a blocking style runs in greenlets; when it would block (sleep,
//! wait for an event, a socket, a timeout), it arms a watcher and switches to the hub,
//! which runs the loop and switches back when the watcher fires.
//!
//! ```
//! use gevent_hub::{spawn, sleep, joinall};
//! use std::time::Duration;
//! use std::rc::Rc;
//! use std::cell::RefCell;
//!
//! let log = Rc::new(RefCell::new(Vec::new()));
//! let gs: Vec<_> = (1..=2)
//!     .map(|i| {
//!         let log = log.clone();
//!         spawn(move || {
//!             log.borrow_mut().push(format!("{i}A"));
//!             sleep(Duration::ZERO); // let the other one run
//!             log.borrow_mut().push(format!("{i}B"));
//!         })
//!     })
//!     .collect();
//! assert!(joinall(&gs, None, false).unwrap());
//! assert_eq!(*log.borrow(), ["1A", "2A", "1B", "2B"]);
//! ```
//!
//! ## Kills and timeouts
//! A kill ([`Greenlet::kill`], [`killall`]) and a [`Timeout`] expiry unwind the target
//! from its blocking point with a panic payload ([`GreenletExit`], [`TimeoutExpired`]),
//! so its destructors run. Killing the running greenlet (itself, or a group it belongs
//! to) is scheduled, as in gevent: it goes on until its next blocking point and is
//! killed there, after what is already queued.
//!
//! Code that catches panics (`catch_unwind`) therefore also catches kills and
//! timeouts: test the payload ([`Timeout::is_expiry`], `p.is::<GreenletExit>()`) and
//! `resume_unwind` what is not yours. A [`Greenlet::join`] of a greenlet ended by a
//! Timeout it did not catch says so ([`JoinError`]'s message names the Timeout).
//!
//! ## Panic reports
//! The first spawn adds to the process's panic hook: a panic in a greenlet other than
//! a thread's main one is preceded, on stderr, by a line naming the greenlet, its id
//! and where it was spawned (`greenlet 'worker-7' (id 3, spawned at src/main.rs:9:45)
//! panicked:`), since std's own report names only the thread. The hook in place then
//! runs as before; a hook set later replaces both.
//!
//! ## Waiting with a timeout
//! A method that blocks comes in std's two forms (`Condvar::wait`/`wait_timeout`,
//! `Receiver::recv`/`recv_timeout`): `x()` waits without a bound, `x_timeout(d)` gives
//! up after `d` and says so (`Ok(false)`, or `Error::TimedOut` where a value is
//! returned): [`Event::wait`], [`AsyncResult::wait`]/[`get`](AsyncResult::get),
//! [`Greenlet::join`], [`pool::Group::join`]/[`kill`](pool::Group::kill),
//! [`pool::Pool::wait_available`], [`Semaphore::acquire`], `Queue::get`/`put`,
//! `StreamServer::stop`/`DatagramServer::stop` (whose plain form uses gevent's
//! default grace of 1 s), [`process::Child::wait`]/[`wait_timeout`](process::Child::wait_timeout)
//! (which returns `Ok(None)`, as the `wait-timeout` crate's). gevent's module-level functions keep gevent's
//! `timeout=None` parameter as an `Option<Duration>`: [`joinall`], [`killall`],
//! [`wait`], [`iwait`], [`net::wait_read`]/[`wait_write`](net::wait_write),
//! [`select::poll`]/[`select`](select::select).
//!
//! ## Thread exit
//! When a thread ends (`main` returns, or a spawned thread's closure does) with
//! greenlets still on its hub, the hub ends them before anything of the thread is
//! torn down: a greenlet that never started is dropped unrun, a started one gets
//! [`GreenletExit`] raised where it is suspended, so its destructors run and its
//! sockets and timers are released; a wait it starts then fails at once with
//! [`Error::ThreadExiting`]. Nothing queued (wake-ups, links, `run_callback`s, watcher
//! callbacks) runs during the teardown; then the loop and its file descriptors are
//! released. Greenlets are therefore never leaked by an ending thread, whatever order
//! std destroys the thread's other thread-locals in.
//!
//! ## The layers, bottom up
//! Each layer uses only those below it (CI checks there is no cycle between them):
//!
//! | layer | public face | what it is |
//! |---|---|---|
//! | the greenlet core | [`greenlet`], [`stack`] | raw coroutines: switching with values, parents, `throw`; stacks carved from shared mappings, the overflow report. Knows nothing of the hub. |
//! | the hub | [`get_hub`], [`Hub`], [`HubHandle`], [`Wait`], [`Waker`], [`Waitable`], [`monitor`], [`run_info`] | one per thread, the greenlet that runs the libev loop; its record of each greenlet; the wait vocabulary; other threads' handles; the blocking monitor; what every greenlet is doing. |
//! | spawning | [`spawn`], [`Builder`], [`Greenlet`], [`joinall`], [`killall`], [`wait`], [`iwait`], [`sleep`], [`idle`], [`Timeout`], [`with_timeout`], [`pool::Group`] | gevent's greenlet API on the hub. |
//! | [`sync`] | [`Event`], [`AsyncResult`], [`Semaphore`], [`Lock`], [`Queue`], … | synchronisation between greenlets. |
//! | [`pool`] | [`pool::Pool`] | a bounded group. |
//! | [`threadpool`] | [`ThreadPool`], [`spawn_blocking`] | blocking work on OS threads. |
//! | [`fileobject`] | [`fileobject::FileObjectThread`] | a file whose calls run on the thread pool (gevent's `FileObjectThread`). |
//! | [`signal`] | [`signal::signal_handler`] | signals run greenlets. |
//! | [`net`] | `TcpStream`, `TcpListener`, `UdpSocket`, Unix sockets, `wait_read`/`wait_write` | cooperative sockets with `std::net`'s surface, on one fd-keyed readiness core. |
//! | [`server`] | `StreamServer`, `DatagramServer` | servers. |
//! | [`select`] | [`select::poll`], [`select::select`] | many fds at once (gevent's `select`), with libc's semantics. |
//! | [`process`] | [`process::Command`], [`process::Child`] | child processes (gevent's `subprocess`): waits and pipes park the greenlet. |
#![deny(missing_docs, missing_debug_implementations, rust_2018_idioms)]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

mod diag;
mod error;
pub mod fileobject;
pub mod greenlet;
mod hub;
mod ids;
#[doc(hidden)]
pub mod monkey_seam;
pub mod net;
pub mod pool;
pub mod process;
pub mod select;
pub mod server;
pub mod signal;
mod spawn;
pub mod sync;
mod sys;
pub mod threadpool;

pub use error::{Error, Result};
pub use greenlet::stack;
pub use greenlet::GreenletExit;
pub use hub::monitor;
pub use hub::runinfo::{run_info, GreenletRunInfo, RunInfo, RunState};
pub use hub::{get_hub, try_get_hub, Hub, HubHandle, RemoteWaker, Wait, Waitable, Waker};
pub use spawn::{
    current_id, current_name, hub_wait, idle, iwait, joinall, killall, sleep, spawn, spawn_later,
    try_sleep, wait, AnyGreenlet, Builder, Greenlet, GreenletInfo, GreenletLocal, Iwait, JoinError,
    LinkId, Outcome,
};
pub use spawn::{scope, Scope, ScopedGreenlet};
pub use spawn::{with_timeout, with_timeout_value, Timeout, TimeoutExpired};
pub use sync::{AsyncResult, Event};
pub use sync::{
    BoundedSemaphore, Channel, LifoQueue, Lock, PriorityQueue, Queue, QueueError, RLock, Semaphore,
};
pub use threadpool::{spawn_blocking, ThreadPool};
