//! Killing greenlets in every state they can be in, through every kill entry point,
//! blocking or not: afterwards each one is dead and ready, its links fired exactly
//! once, its destructors ran, and a greenlet killed before it started never ran.

mod util;

use gevent_hub::{
    joinall, killall, sleep, spawn, spawn_later, AnyGreenlet, Event, Greenlet, JoinError, Outcome,
};
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;
use util::{settle, with_watchdog, Counter};

/// Far enough away that it never fires during a test.
const NEVER: Duration = Duration::from_secs(3600);

#[derive(Debug, Clone, Copy)]
enum State {
    /// Spawned; the hub has not run yet.
    Unstarted,
    /// Ran, then blocked on an Event nobody sets.
    BlockedOnEvent,
    /// `spawn_later` whose timer has not fired.
    StartsLater,
    /// Ran, then went to sleep.
    Sleeping,
}

#[derive(Debug, Clone, Copy)]
enum How {
    Kill,
    KillTimeout,
    KillNowait,
    KillallBlocking,
    KillallNonBlocking,
}

const STATES: [State; 4] = [
    State::Unstarted,
    State::BlockedOnEvent,
    State::StartsLater,
    State::Sleeping,
];

/// What one case observes.
struct Case {
    g: Greenlet<()>,
    ran: Rc<Cell<bool>>,
    drops: Counter,
    links: Counter,
    _event: Event,
}

fn prepare(state: State) -> Case {
    let ran = Rc::new(Cell::new(false));
    let drops = Counter::new();
    let event = Event::new();
    let (r, guard, ev) = (ran.clone(), drops.drop_guard(), event.clone());
    let body = move || {
        // Owned by the body's frame from here on: dropped by return or by unwinding.
        let _guard = guard;
        r.set(true);
        match state {
            State::Sleeping => sleep(NEVER),
            _ => ev.wait().unwrap(),
        }
        unreachable!("the greenlet is killed while it blocks");
    };
    let g = match state {
        State::StartsLater => spawn_later(NEVER, body),
        _ => spawn(body),
    };
    let links = Counter::new();
    let l = links.clone();
    g.link(move |info| {
        assert_eq!(info.outcome, Outcome::Killed);
        l.bump();
    });
    if matches!(state, State::BlockedOnEvent | State::Sleeping) {
        // Start it: its first switch is queued ahead of main's wake-up.
        sleep(Duration::ZERO);
        assert!(
            ran.get() && g.started() && !g.ready(),
            "{state:?}: it runs and blocks"
        );
    } else {
        assert!(!g.started());
    }
    Case {
        g,
        ran,
        drops,
        links,
        _event: event,
    }
}

fn kill(case: &Case, how: How) {
    let g = &case.g;
    match how {
        How::Kill => g.kill().unwrap(),
        How::KillTimeout => assert!(g.kill_timeout(util::WATCHDOG_LIMIT).unwrap()),
        How::KillNowait => {
            g.kill_nowait();
            // Unstarted greenlets die on the spot; started ones at the hub's next turn.
            assert_eq!(g.ready(), !g.started(), "kill_nowait does not wait");
        }
        How::KillallBlocking => assert!(killall(&[g as &dyn AnyGreenlet], true, None).unwrap()),
        How::KillallNonBlocking => {
            let all_done = killall(&[g as &dyn AnyGreenlet], false, None).unwrap();
            // Unstarted greenlets die on the spot; started ones at the hub's next turn.
            assert_eq!(
                all_done,
                !g.started(),
                "killall(block = false) reports what is done"
            );
        }
    }
}

fn check(case: Case, state: State, how: How) {
    let what = format!("{state:?} killed by {how:?}");
    settle();
    let g = &case.g;
    assert!(g.ready() && g.dead(), "{what}: dead and ready");
    assert!(!g.successful(), "{what}");
    assert_eq!(g.outcome(), Some(Outcome::Killed), "{what}");
    assert_eq!(case.links.get(), 1, "{what}: link fired once");
    assert_eq!(case.drops.get(), 1, "{what}: destructors ran");
    let should_have_run = matches!(state, State::BlockedOnEvent | State::Sleeping);
    assert_eq!(case.ran.get(), should_have_run, "{what}: body ran?");

    // Killing again, linking late and joining change nothing more.
    g.kill().unwrap();
    let late = case.links.clone();
    g.link(move |_| late.bump());
    settle();
    assert_eq!(
        case.links.get(),
        2,
        "{what}: the first link did not fire again; the late one fired once"
    );
    assert_eq!(case.drops.get(), 1, "{what}");
    assert!(
        matches!(case.g.join(), Err(JoinError::Killed)),
        "{what}: join reports the kill"
    );
}

fn run_matrix(how: How) {
    for state in STATES {
        let case = prepare(state);
        kill(&case, how);
        check(case, state, how);
    }
}

#[test]
fn kill_blocks_until_the_greenlet_is_dead() {
    run_matrix(How::Kill);
}

#[test]
fn kill_timeout_reports_the_greenlet_dead() {
    run_matrix(How::KillTimeout);
}

#[test]
fn kill_nowait_takes_effect_when_the_hub_runs() {
    run_matrix(How::KillNowait);
}

#[test]
fn killall_blocking_kills_every_state() {
    run_matrix(How::KillallBlocking);
}

#[test]
fn killall_non_blocking_kills_every_state() {
    run_matrix(How::KillallNonBlocking);
}

#[test]
fn blocking_kills_return_with_the_greenlet_already_dead() {
    for state in STATES {
        for how in [How::Kill, How::KillTimeout, How::KillallBlocking] {
            let case = prepare(state);
            kill(&case, how);
            // Before the hub runs again (no settle): the kill itself waited.
            assert!(case.g.ready(), "{state:?} {how:?}");
            assert_eq!(case.drops.get(), 1, "{state:?} {how:?}");
            check(case, state, how);
        }
    }
}

#[test]
fn killall_kills_greenlets_in_all_states_at_once() {
    // The unstarted ones last: preparing the others lets the hub run.
    let states = [
        State::BlockedOnEvent,
        State::Sleeping,
        State::StartsLater,
        State::Unstarted,
    ];
    let cases: Vec<Case> = states.iter().map(|&s| prepare(s)).collect();
    assert!(!cases[3].g.started());
    let refs: Vec<&dyn AnyGreenlet> = cases.iter().map(|c| &c.g as &dyn AnyGreenlet).collect();
    assert!(killall(&refs, true, None).unwrap());
    for (case, state) in cases.into_iter().zip(states) {
        check(case, state, How::KillallBlocking);
    }
}

#[test]
fn a_greenlet_can_kill_a_sibling_and_itself() {
    let drops = Counter::new();
    let guard = drops.drop_guard();
    let victim = spawn(move || {
        let _guard = guard;
        sleep(NEVER);
    });
    let killer = spawn(move || {
        victim.kill().unwrap();
        victim.outcome()
    });
    assert_eq!(killer.join().unwrap(), Some(Outcome::Killed));
    assert_eq!(drops.get(), 1);

    // A greenlet reaching its own handle (through a slot) and killing itself goes on
    // running until its next blocking point, as in gevent (the kill is scheduled), and
    // unwinds there.
    let slot: Rc<RefCell<Option<Greenlet<()>>>> = Rc::default();
    let after_kill = Rc::new(Cell::new(false));
    let after_block = Rc::new(Cell::new(false));
    let (s, a, b, guard) = (
        slot.clone(),
        after_kill.clone(),
        after_block.clone(),
        drops.drop_guard(),
    );
    let g = spawn(move || {
        let _guard = guard;
        s.borrow()
            .as_ref()
            .expect("the handle is in the slot")
            .kill_nowait();
        a.set(true);
        sleep(NEVER);
        b.set(true);
    });
    *slot.borrow_mut() = Some(g);
    settle();
    let g = slot.borrow_mut().take().unwrap();
    assert_eq!(g.outcome(), Some(Outcome::Killed));
    assert!(after_kill.get(), "kill_nowait on itself returns");
    assert!(!after_block.get(), "it died at its next blocking point");
    assert_eq!(drops.get(), 2);

    // One that kills itself and returns without blocking again ends normally.
    let slot: Rc<RefCell<Option<Greenlet<u32>>>> = Rc::default();
    let s = slot.clone();
    let g = spawn(move || {
        s.borrow().as_ref().expect("in the slot").kill_nowait();
        7
    });
    *slot.borrow_mut() = Some(g);
    settle();
    let g = slot.borrow_mut().take().unwrap();
    assert_eq!(g.join().unwrap(), 7);
}

/// `n` greenlets asleep, each logging its name when its destructors run; and a slot
/// through which they can reach all their handles.
type Handles = Rc<RefCell<Vec<Greenlet<()>>>>;

struct LogOnDrop(Rc<RefCell<Vec<String>>>, String);
impl Drop for LogOnDrop {
    fn drop(&mut self) {
        self.0.borrow_mut().push(self.1.clone());
    }
}

#[test]
fn killall_called_by_one_of_its_targets_kills_the_others_then_the_caller() {
    let log: Rc<RefCell<Vec<String>>> = Rc::default();
    let handles: Handles = Rc::default();
    let go = Event::new();
    let mut gs = Vec::new();
    for name in ["a", "b", "c", "d"] {
        let (l, h, go) = (log.clone(), handles.clone(), go.clone());
        gs.push(spawn(move || {
            let _on_drop = LogOnDrop(l.clone(), name.to_owned());
            if name == "b" {
                go.wait().unwrap();
                let hs = h.borrow();
                let refs: Vec<&dyn AnyGreenlet> = hs.iter().map(|g| g as _).collect();
                let r = killall(&refs, true, None);
                l.borrow_mut().push(format!("killall returned {r:?}"));
            }
            sleep(NEVER);
        }));
    }
    *handles.borrow_mut() = gs;
    sleep(Duration::ZERO);
    go.set();
    let all_done = {
        let hs = handles.borrow();
        let refs: Vec<&dyn AnyGreenlet> = hs.iter().map(|g| g as _).collect();
        joinall(&refs, Some(util::WATCHDOG_LIMIT), false).unwrap()
    };
    assert!(all_done, "every target died");
    let hs = handles.borrow_mut().drain(..).collect::<Vec<_>>();
    for g in &hs {
        assert_eq!(g.outcome(), Some(Outcome::Killed), "{}", g.name());
    }
    let log = log.borrow().clone();
    assert_eq!(
        log.last().map(String::as_str),
        Some("b"),
        "the caller dies after the others: {log:?}"
    );
    let mut others: Vec<_> = log[..3].to_vec();
    others.sort();
    assert_eq!(others, ["a", "c", "d"], "{log:?}");
    assert_eq!(
        log.len(),
        4,
        "killall never returned to the caller: {log:?}"
    );
}

#[test]
fn group_kill_called_by_a_member_kills_the_others_then_the_caller() {
    use gevent_hub::pool::Group;
    let log: Rc<RefCell<Vec<String>>> = Rc::default();
    let group = Group::new();
    let go = Event::new();
    let mut gs = Vec::new();
    for name in ["a", "b", "c"] {
        let (l, grp, go) = (log.clone(), group.clone(), go.clone());
        gs.push(group.spawn(move || {
            let _on_drop = LogOnDrop(l.clone(), name.to_owned());
            if name == "b" {
                go.wait().unwrap();
                let _ = grp.kill();
                l.borrow_mut().push("kill returned".to_owned());
            }
            sleep(NEVER);
        }));
    }
    sleep(Duration::ZERO);
    go.set();
    with_watchdog(|| group.join().unwrap());
    for g in &gs {
        assert_eq!(g.outcome(), Some(Outcome::Killed), "{}", g.name());
    }
    let log = log.borrow().clone();
    assert_eq!(log.len(), 3, "{log:?}");
    assert_eq!(log[2], "b", "the caller dies last: {log:?}");
}

#[test]
fn killing_an_unstarted_spawn_later_greenlet_cancels_its_timer() {
    let g = spawn_later(NEVER, || ());
    g.kill().unwrap();
    // A watchdog that does not keep the loop alive: if the start timer is gone, nothing
    // does, and the wait below fails at once.
    let ev = Event::new();
    let e = ev.clone();
    let watchdog = gevent_hub::get_hub()
        .get_loop()
        .timer(Duration::from_secs(1), Duration::ZERO);
    watchdog.start(move |_, _| e.set()).unwrap();
    watchdog.set_ref(false);
    let r = ev.wait();
    assert!(
        matches!(r, Err(gevent_hub::Error::WouldBlockForever(_))),
        "the killed greenlet's timer kept the loop alive: {r:?}"
    );
}
