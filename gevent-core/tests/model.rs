//! A model-based property test of the watcher state machine.
//!
//! Random (seeded, reproducible) sequences of start / stop / drop / re-create / feed /
//! clear_pending / run_nowait over eight watchers (two zero-delay one-shot timers, two
//! idle, two check, two io watchers on pipes that stay readable) are checked, step by
//! step, against a small model of what libev guarantees:
//!
//! - after every operation, each watcher's `is_active`, `is_pending` and
//!   `has_callback` match the model, and exactly the closures of watchers that have a
//!   callback are alive (stop and drop free the callback at once);
//! - in a `run_nowait`, a fed watcher with a callback gets its fed event exactly once
//!   (fed events are `CUSTOM`, so they are told apart from real ones even when libev
//!   merges them into one call); a watcher without a callback, or stopped or dropped
//!   after the feed, never runs;
//! - an active io watcher on a readable fd and an active check watcher get exactly one
//!   real event per iteration;
//! - a zero-delay timer *may* expire in a given iteration (libev only promises "after
//!   the timeout has passed"), but at most once, and it is inactive afterwards exactly
//!   when it expired;
//! - an active idle watcher gets no event when an io or timer event of its priority is
//!   pending, and exactly one when nothing is pending (nothing fed, no io active, no
//!   timer expired); otherwise it may or may not run;
//! - after `run_nowait` nothing is pending, its result says whether any watcher is
//!   still active, and a dropped watcher's callback never runs again.

mod util;

use gevent_core::kind::{CheckKind, IdleKind, IoKind, TimerKind};
use gevent_core::{Check, Events, Idle, Io, Loop, Timer, WatcherCore};
use std::cell::{Cell, RefCell};
use std::fmt::Write as _;
use std::rc::Rc;
use std::time::Duration;
use util::ReadablePipe;

const SEQUENCES: u64 = 200;
const OPS_PER_SEQUENCE: usize = 50;

/// xorshift64*: small, deterministic, good enough to pick operations.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        // Never zero (xorshift's fixed point); the seeds differ in the high bits too.
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        (self.next() >> 32) % n
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Timer,
    Idle,
    Check,
    Io,
}

impl Kind {
    /// The bit of a real (not fed) event of this kind.
    fn bit(self) -> Events {
        match self {
            Kind::Timer => Events::TIMER,
            Kind::Idle => Events::IDLE,
            Kind::Check => Events::CHECK,
            Kind::Io => Events::READ,
        }
    }
}

const KINDS: [Kind; 8] = [
    Kind::Timer,
    Kind::Timer,
    Kind::Idle,
    Kind::Idle,
    Kind::Check,
    Kind::Check,
    Kind::Io,
    Kind::Io,
];

/// Alive while the closure that owns it is: counts live callbacks.
struct Live(Rc<Cell<i64>>);

impl Live {
    fn new(count: &Rc<Cell<i64>>) -> Live {
        count.set(count.get() + 1);
        Live(count.clone())
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.0.set(self.0.get() - 1);
    }
}

type EventLog = Rc<RefCell<Vec<Events>>>;

/// A callback that appends every `revents` it gets to `log`.
fn recorder<K: gevent_core::Kind>(
    log: &EventLog,
    live: &Rc<Cell<i64>>,
) -> impl FnMut(&WatcherCore<K>, Events) + 'static {
    let log = log.clone();
    let guard = Live::new(live);
    move |_, ev| {
        let _keep = &guard;
        log.borrow_mut().push(ev);
    }
}

enum Handle {
    Timer(Timer),
    Idle(Idle),
    Check(Check),
    Io(Io),
}

/// Applies the same expression to whichever watcher type the handle holds.
macro_rules! each {
    ($h:expr, $w:ident => $e:expr) => {
        match $h {
            Handle::Timer($w) => $e,
            Handle::Idle($w) => $e,
            Handle::Check($w) => $e,
            Handle::Io($w) => $e,
        }
    };
}

impl Handle {
    fn new(lp: &Loop, kind: Kind, fd: i32) -> Handle {
        match kind {
            Kind::Timer => Handle::Timer(lp.timer(Duration::ZERO, Duration::ZERO)),
            Kind::Idle => Handle::Idle(lp.idle()),
            Kind::Check => Handle::Check(lp.check()),
            Kind::Io => Handle::Io(lp.io(fd, Events::READ).unwrap()),
        }
    }
    fn start(&self, log: &EventLog, live: &Rc<Cell<i64>>) {
        let r = match self {
            Handle::Timer(w) => w.start(recorder::<TimerKind>(log, live)),
            Handle::Idle(w) => w.start(recorder::<IdleKind>(log, live)),
            Handle::Check(w) => w.start(recorder::<CheckKind>(log, live)),
            Handle::Io(w) => w.start(recorder::<IoKind>(log, live)),
        };
        r.unwrap();
    }
    fn stop(&self) {
        each!(self, w => w.stop())
    }
    fn feed(&self, ev: Events) {
        each!(self, w => w.feed(ev))
    }
    fn clear_pending(&self) -> Events {
        each!(self, w => w.clear_pending())
    }
    fn is_active(&self) -> bool {
        each!(self, w => w.is_active())
    }
    fn is_pending(&self) -> bool {
        each!(self, w => w.is_pending())
    }
    fn has_callback(&self) -> bool {
        each!(self, w => w.has_callback())
    }
}

/// One watcher slot: the real handle (None once dropped) and the model's view of it.
struct Slot {
    kind: Kind,
    fd: i32,
    handle: Option<Handle>,
    /// Events received by the current incarnation's callbacks.
    log: EventLog,
    /// Logs of dropped incarnations, with their length when dropped: they never grow.
    dead: Vec<(EventLog, usize)>,
    active: bool,
    has_cb: bool,
    fed: bool,
}

/// Real events seen per kind over all sequences: shows the sequences exercised them.
#[derive(Default)]
struct Totals {
    timer: u64,
    idle: u64,
    check: u64,
    io: u64,
    fed: u64,
    runs: u64,
}

struct Sequence {
    seed: u64,
    lp: Loop,
    slots: Vec<Slot>,
    live: Rc<Cell<i64>>,
    history: String,
}

impl Sequence {
    /// Fails the test with the seed and the operations so far.
    #[track_caller]
    fn check(&self, ok: bool, what: impl FnOnce() -> String) {
        if !ok {
            panic!(
                "model violated (seed {}): {}\noperations:\n{}",
                self.seed,
                what(),
                self.history
            );
        }
    }

    fn step(&mut self, rng: &mut Rng, totals: &mut Totals) {
        let i = rng.below(self.slots.len() as u64) as usize;
        let roll = rng.below(100);
        let exists = self.slots[i].handle.is_some();
        match roll {
            0..=24 if exists => {
                let _ = writeln!(self.history, "start {i}");
                let s = &mut self.slots[i];
                s.handle.as_ref().unwrap().start(&s.log, &self.live);
                s.active = true;
                s.has_cb = true;
            }
            25..=36 if exists => {
                let _ = writeln!(self.history, "stop {i}");
                let s = &mut self.slots[i];
                s.handle.as_ref().unwrap().stop();
                s.active = false;
                s.has_cb = false;
                s.fed = false;
            }
            37..=44 => {
                let s = &mut self.slots[i];
                if let Some(h) = s.handle.take() {
                    let _ = writeln!(self.history, "drop {i}");
                    drop(h);
                    let old = std::mem::take(&mut s.log);
                    let len = old.borrow().len();
                    s.dead.push((old, len));
                } else {
                    let _ = writeln!(self.history, "re-create {i}");
                    s.handle = Some(Handle::new(&self.lp, s.kind, s.fd));
                }
                s.active = false;
                s.has_cb = false;
                s.fed = false;
            }
            45..=64 if exists => {
                let _ = writeln!(self.history, "feed {i}");
                let s = &mut self.slots[i];
                s.handle.as_ref().unwrap().feed(Events::CUSTOM);
                s.fed = true;
            }
            65..=69 if exists => {
                let _ = writeln!(self.history, "clear_pending {i}");
                let s = &self.slots[i];
                let got = s.handle.as_ref().unwrap().clear_pending();
                let want = if s.fed { Events::CUSTOM } else { Events::NONE };
                self.check(got == want, || {
                    format!("clear_pending on {i} gave {got:?}, want {want:?}")
                });
                self.slots[i].fed = false;
            }
            70..=99 => self.run_nowait(totals),
            // The picked slot holds no watcher: nothing to do.
            _ => {}
        }
        self.check_states();
    }

    /// What every watcher reports matches the model.
    fn check_states(&self) {
        let mut with_cb = 0;
        for (i, s) in self.slots.iter().enumerate() {
            for (log, len) in &s.dead {
                self.check(log.borrow().len() == *len, || {
                    format!("a dropped watcher in slot {i} ran")
                });
            }
            let Some(h) = &s.handle else { continue };
            with_cb += i64::from(s.has_cb);
            self.check(h.is_active() == s.active, || {
                format!("slot {i} ({:?}) is_active {}", s.kind, h.is_active())
            });
            self.check(h.is_pending() == s.fed, || {
                format!("slot {i} ({:?}) is_pending {}", s.kind, h.is_pending())
            });
            self.check(h.has_callback() == s.has_cb, || {
                format!("slot {i} ({:?}) has_callback {}", s.kind, h.has_callback())
            });
        }
        self.check(self.live.get() == with_cb, || {
            format!(
                "{} callbacks alive, {with_cb} watchers have one",
                self.live.get()
            )
        });
    }

    fn run_nowait(&mut self, totals: &mut Totals) {
        let _ = writeln!(self.history, "run_nowait");
        let before: Vec<usize> = self.slots.iter().map(|s| s.log.borrow().len()).collect();
        // Anything fed (with or without a callback) may still be pending when libev
        // decides about idle watchers.
        let any_fed = self.slots.iter().any(|s| s.handle.is_some() && s.fed);
        let more = self.lp.run_nowait().unwrap();
        totals.runs += 1;

        // Real events per slot, checked against what each kind promises.
        let mut real = vec![0usize; self.slots.len()];
        for (i, s) in self.slots.iter().enumerate() {
            if s.handle.is_none() {
                continue;
            }
            let log = s.log.borrow();
            let new = &log[before[i]..];
            let allowed = Events::CUSTOM | s.kind.bit();
            for ev in new {
                self.check(!ev.is_empty() && allowed.contains(*ev), || {
                    format!("slot {i} ({:?}) got {ev:?}", s.kind)
                });
            }
            let custom = new.iter().filter(|e| e.contains(Events::CUSTOM)).count();
            let want_custom = usize::from(s.fed && s.has_cb);
            self.check(custom == want_custom, || {
                format!(
                    "slot {i} ({:?}) got {custom} fed events, want {want_custom}",
                    s.kind
                )
            });
            totals.fed += custom as u64;
            real[i] = new.iter().filter(|e| e.contains(s.kind.bit())).count();
        }

        let io_pending = self
            .slots
            .iter()
            .any(|s| s.handle.is_some() && s.kind == Kind::Io && s.active);
        let timer_expired = self
            .slots
            .iter()
            .zip(&real)
            .any(|(s, &r)| s.kind == Kind::Timer && r > 0);
        for (i, s) in self.slots.iter().enumerate() {
            if s.handle.is_none() {
                continue;
            }
            let r = real[i];
            let ok = match s.kind {
                Kind::Io | Kind::Check => r == usize::from(s.active),
                Kind::Timer => r <= usize::from(s.active),
                Kind::Idle if !s.active || io_pending || timer_expired => r == 0,
                Kind::Idle if !any_fed => r == 1,
                Kind::Idle => r <= 1,
            };
            self.check(ok, || {
                format!(
                    "slot {i} ({:?}, active {}) got {r} real events \
                     (io pending {io_pending}, timer expired {timer_expired}, fed {any_fed})",
                    s.kind, s.active
                )
            });
            match s.kind {
                Kind::Timer => totals.timer += r as u64,
                Kind::Idle => totals.idle += r as u64,
                Kind::Check => totals.check += r as u64,
                Kind::Io => totals.io += r as u64,
            }
        }

        // The model moves on: fed events were delivered, expired timers stopped.
        for (s, &r) in self.slots.iter_mut().zip(&real) {
            s.fed = false;
            if s.kind == Kind::Timer && r > 0 {
                s.active = false;
            }
        }
        self.check(self.lp.pending_count() == 0, || {
            format!("{} events still pending", self.lp.pending_count())
        });
        let any_active = self.slots.iter().any(|s| s.handle.is_some() && s.active);
        self.check(more == any_active, || {
            format!("run_nowait returned {more}, active watchers: {any_active}")
        });
    }
}

fn run_sequence(seed: u64, totals: &mut Totals) {
    let pipes: Vec<ReadablePipe> = (0..2).map(|_| ReadablePipe::new()).collect();
    let lp = Loop::new().unwrap();
    let live = Rc::new(Cell::new(0));
    let mut io_fds = pipes.iter().map(|p| p.r);
    let slots = KINDS
        .iter()
        .map(|&kind| {
            let fd = if kind == Kind::Io {
                io_fds.next().unwrap()
            } else {
                -1
            };
            Slot {
                kind,
                fd,
                handle: Some(Handle::new(&lp, kind, fd)),
                log: EventLog::default(),
                dead: Vec::new(),
                active: false,
                has_cb: false,
                fed: false,
            }
        })
        .collect();
    let mut seq = Sequence {
        seed,
        lp,
        slots,
        live,
        history: String::new(),
    };
    let mut rng = Rng::new(seed);
    for _ in 0..OPS_PER_SEQUENCE {
        seq.step(&mut rng, totals);
    }
    // One last iteration settles whatever is still fed.
    seq.run_nowait(totals);
    seq.check_states();
    // Everything is freed with the handles: no callback outlives its watcher.
    let live = seq.live.clone();
    drop(seq);
    assert_eq!(
        live.get(),
        0,
        "seed {seed}: callbacks outlived their watchers"
    );
    drop(pipes);
}

#[test]
fn watchers_follow_the_model_over_random_sequences() {
    let mut totals = Totals::default();
    for seed in 0..SEQUENCES {
        run_sequence(seed, &mut totals);
    }
    // The sequences really exercised every kind of event.
    assert!(totals.runs > SEQUENCES, "runs: {}", totals.runs);
    assert!(totals.fed > 0, "no fed event was delivered");
    assert!(totals.io > 0, "no io event");
    assert!(totals.check > 0, "no check event");
    assert!(totals.idle > 0, "no idle event");
    assert!(totals.timer > 0, "no timer expired");
}
