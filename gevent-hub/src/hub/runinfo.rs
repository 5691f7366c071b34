//! What every greenlet of the hub is doing (gevent's `gevent.util.print_run_info`):
//! what a person wants to see when something hangs.

use super::record::record_if_any;
use crate::greenlet::{self, GreenletState};
use std::fmt;
use std::panic::Location;

/// What a greenlet is doing, in a [`RunInfo`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RunState {
    /// Made with [`Builder::create`](crate::Builder::create) and not started.
    Unstarted,
    /// Its start is scheduled (it was spawned and has not run yet).
    Scheduled,
    /// It is the greenlet asking.
    Running,
    /// Parked in the hub, waiting for what the wait names.
    Parked(&'static str),
    /// Neither running nor parked: woken and queued to run, or suspended by a raw
    /// switch.
    Ready,
}

impl fmt::Display for RunState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunState::Unstarted => f.write_str("not started"),
            RunState::Scheduled => f.write_str("scheduled to start"),
            RunState::Running => f.write_str("running (this is the caller)"),
            RunState::Parked(what) => write!(f, "waiting for {what}"),
            RunState::Ready => f.write_str("ready to run"),
        }
    }
}

/// One greenlet in a [`RunInfo`].
#[derive(Debug, Clone)]
pub struct GreenletRunInfo {
    /// Its id.
    pub id: u64,
    /// Its name.
    pub name: String,
    /// Where it was spawned (`None` for the main greenlet).
    pub spawned_at: Option<&'static Location<'static>>,
    /// What it is doing.
    pub state: RunState,
}

impl fmt::Display for GreenletRunInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (id {}", self.name, self.id)?;
        if let Some(at) = self.spawned_at {
            write!(f, ", spawned at {at}")?;
        }
        write!(f, "): {}", self.state)
    }
}

/// The state of this thread's hub and of every greenlet it has not seen finish: the
/// main greenlet first, then the spawned ones. Its `Display` is one line each, as
/// gevent's `print_run_info` prints them.
#[derive(Debug, Clone)]
pub struct RunInfo {
    /// The loop's backend (`epoll`, ...).
    pub backend: String,
    /// The loop's iteration count.
    pub iteration: u32,
    /// Callbacks queued in the hub (starts, wake-ups, links).
    pub queued_callbacks: usize,
    /// The greenlets.
    pub greenlets: Vec<GreenletRunInfo>,
}

impl fmt::Display for RunInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "hub: {} loop, iteration {}, {} callback(s) queued; {} greenlet(s):",
            self.backend,
            self.iteration,
            self.queued_callbacks,
            self.greenlets.len()
        )?;
        for g in &self.greenlets {
            writeln!(f, "  {g}")?;
        }
        Ok(())
    }
}

/// What `g` is doing; `scheduled`: its start is scheduled (for one not started).
pub(crate) fn state_of(g: &GreenletState, scheduled: bool) -> RunState {
    if std::ptr::eq(greenlet::current_ptr(), g) {
        return RunState::Running;
    }
    if !g.is_started() {
        return if scheduled {
            RunState::Scheduled
        } else {
            RunState::Unstarted
        };
    }
    match record_if_any(g) {
        Some(r) if r.parked.get() => RunState::Parked(r.waiting_on.get()),
        _ => RunState::Ready,
    }
}

/// This thread's [`RunInfo`] (makes the hub if there is none yet).
///
/// # Examples
/// ```
/// use gevent_hub::{run_info, sleep, spawn, RunState};
/// use std::time::Duration;
///
/// let g = spawn(|| sleep(Duration::from_secs(60)));
/// sleep(Duration::ZERO); // let it park
/// let info = run_info();
/// let line = info.greenlets.iter().find(|l| l.id == g.id()).unwrap();
/// assert_eq!(line.state, RunState::Parked("sleep"));
/// print!("{info}"); // hub: epoll loop, ...; then a line per greenlet
/// g.kill().unwrap();
/// ```
pub fn run_info() -> RunInfo {
    let hub = super::get_hub();
    let main = greenlet::main_rc();
    let mut greenlets = vec![GreenletRunInfo {
        id: main.id(),
        name: main.name().to_owned(),
        spawned_at: None,
        state: state_of(&main, true),
    }];
    greenlets.extend(hub.members().iter().map(|m| m.run_info()));
    let lp = hub.get_loop();
    RunInfo {
        backend: lp.backend_name(),
        iteration: lp.iteration(),
        queued_callbacks: lp.pending_callbacks(),
        greenlets,
    }
}
