//! Killing greenlets in every state they can be in, through every kill entry point,
//! blocking or not: afterwards each one is dead and ready, its links fired exactly
//! once, its destructors ran, and a greenlet killed before it started never ran.

mod util;

use gevent_hub::{
    killall, sleep, spawn, spawn_later, AnyGreenlet, Event, Greenlet, JoinError, Outcome,
};
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;
use util::{settle, Counter};

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
            State::Sleeping => sleep(NEVER).unwrap(),
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
        sleep(Duration::ZERO).unwrap();
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
        sleep(NEVER).unwrap();
    });
    let killer = spawn(move || {
        victim.kill().unwrap();
        victim.outcome()
    });
    assert_eq!(killer.join().unwrap(), Some(Outcome::Killed));
    assert_eq!(drops.get(), 1);

    // A greenlet reaching its own handle (through a slot) and killing itself unwinds
    // on the spot, as a kill at its next blocking point would.
    let slot: Rc<RefCell<Option<Greenlet<()>>>> = Rc::default();
    let after = Rc::new(Cell::new(false));
    let (s, a, guard) = (slot.clone(), after.clone(), drops.drop_guard());
    let g = spawn(move || {
        let _guard = guard;
        s.borrow()
            .as_ref()
            .expect("the handle is in the slot")
            .kill_nowait();
        a.set(true);
    });
    *slot.borrow_mut() = Some(g);
    settle();
    let g = slot.borrow_mut().take().unwrap();
    assert_eq!(g.outcome(), Some(Outcome::Killed));
    assert!(!after.get(), "kill_nowait on itself does not return");
    assert_eq!(drops.get(), 2);
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
