//! Raw greenlets: explicit `switch`, parents, `throw`, and what happens to a greenlet
//! that is abandoned, panics or has finished. No hub is involved here.

mod util;

use gevent_hub::greenlet::{
    getcurrent, panic_message, ParentCycle, RawGreenlet, SwitchError, Value,
};
use gevent_hub::GreenletExit;
use std::cell::{Cell, RefCell};
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::rc::Rc;
use util::{Counter, Log};

/// A slot a greenlet body can read its peer's handle from, filled after both exist.
type Slot = Rc<RefCell<Option<RawGreenlet>>>;

fn peer(slot: &Slot) -> RawGreenlet {
    slot.borrow()
        .clone()
        .expect("peer greenlet is set before the first switch")
}

fn parent_of_current() -> RawGreenlet {
    getcurrent()
        .parent()
        .expect("a non-main greenlet has a parent")
}

#[test]
fn f1_and_f2_alternate_in_program_order() {
    let log = Log::new();
    let slot1: Slot = Rc::default();
    let slot2: Slot = Rc::default();

    let (l, s2) = (log.clone(), slot2.clone());
    let g1 = RawGreenlet::new(move |_: Value| {
        l.push("f1 1");
        peer(&s2).switch(()).unwrap();
        l.push("f1 3");
        peer(&s2).switch(()).unwrap();
        l.push("f1 5");
    });
    let (l, s1) = (log.clone(), slot1.clone());
    let g2 = RawGreenlet::new(move |_: Value| {
        l.push("f2 2");
        peer(&s1).switch(()).unwrap();
        l.push("f2 4");
        peer(&s1).switch(()).unwrap();
        l.push("f2 never: f1 finished and returned to main");
    });
    *slot1.borrow_mut() = Some(g1.clone());
    *slot2.borrow_mut() = Some(g2.clone());

    g1.switch(()).unwrap();

    assert_eq!(log.entries(), ["f1 1", "f2 2", "f1 3", "f2 4", "f1 5"]);
    assert!(g1.is_dead());
    assert!(
        g2.is_started() && !g2.is_dead(),
        "f2 is left suspended in its last switch"
    );
    // Break the handle cycle so that dropping g2 unwinds it (see the abandon tests).
    slot1.borrow_mut().take();
    slot2.borrow_mut().take();
    drop(g2);
    assert_eq!(
        log.entries().len(),
        5,
        "unwinding f2 must not resume its body"
    );
}

#[test]
fn switch_passes_values_both_ways_and_the_return_value_goes_to_the_parent() {
    let g = RawGreenlet::new(|arg: Value| {
        let n = *arg.downcast::<i32>().expect("first switch passes an i32");
        let back = parent_of_current().switch(n + 1).unwrap();
        let s = *back
            .downcast::<String>()
            .expect("second switch passes a String");
        format!("{s}!")
    });

    let first = g.switch(41).unwrap();
    assert_eq!(*first.downcast::<i32>().unwrap(), 42);
    assert!(g.is_started() && !g.is_dead());

    let last = g.switch(String::from("done")).unwrap();
    assert_eq!(*last.downcast::<String>().unwrap(), "done!");
    assert!(g.is_dead());
}

#[test]
fn a_finished_child_returns_to_its_parent_not_to_whoever_switched_to_it() {
    // p switches back to main (its parent) at once; when it is resumed it expects the
    // value of its child c, which main (not p) switches to.
    let p = RawGreenlet::new(|_: Value| {
        let from_child = parent_of_current().switch("p is waiting").unwrap();
        *from_child
            .downcast::<i32>()
            .expect("the child's return value")
            + 1
    });
    let c = RawGreenlet::with_options(|_: Value| 5, Some(&p), 64 * 1024, Some("child".to_owned()));
    assert!(c.parent().unwrap().ptr_eq(&p));
    assert_eq!(c.name(), "child");

    let hello = p.switch(()).unwrap();
    assert_eq!(*hello.downcast::<&str>().unwrap(), "p is waiting");
    // c returns 5 to p; p returns 6 to its own parent, main.
    let r = c.switch(()).unwrap();
    assert_eq!(*r.downcast::<i32>().unwrap(), 6);
    assert!(c.is_dead() && p.is_dead());
}

#[test]
fn a_greenlet_sees_itself_as_current_and_main_has_no_parent() {
    let seen = Rc::new(Cell::new(0));
    let s = seen.clone();
    let g = RawGreenlet::new(move |_: Value| s.set(getcurrent().id()));
    g.switch(()).unwrap();
    assert_eq!(seen.get(), g.id());
    assert!(
        getcurrent().parent().is_none(),
        "the thread's main greenlet is the root"
    );
    assert_eq!(getcurrent().name(), "main");
}

#[test]
fn throw_unwinds_a_suspended_greenlet_and_its_parent_gets_the_result() {
    let drops = Counter::new();
    let guard = drops.drop_guard();
    let after_switch = Rc::new(Cell::new(false));
    let a = after_switch.clone();
    let g = RawGreenlet::new(move |_: Value| {
        let _guard = guard;
        parent_of_current().switch(()).unwrap();
        a.set(true);
    });
    g.switch(()).unwrap();
    assert_eq!(drops.get(), 0);

    // GreenletExit counts as a kill: the parent gets GreenletExit back as a value.
    let r = g.throw(Box::new(GreenletExit)).unwrap();
    assert!(
        r.downcast_ref::<GreenletExit>().is_some(),
        "parent is told GreenletExit"
    );
    assert_eq!(drops.get(), 1, "the greenlet's destructors ran");
    assert!(
        !after_switch.get(),
        "the code after the suspension point never ran"
    );
    assert!(g.is_dead());
}

#[test]
fn throw_of_another_payload_comes_back_as_a_panic_of_the_greenlet() {
    let drops = Counter::new();
    let guard = drops.drop_guard();
    let g = RawGreenlet::new(move |_: Value| {
        let _guard = guard;
        parent_of_current().switch(()).unwrap();
    });
    g.switch(()).unwrap();
    match g.throw(Box::new("thrown in")) {
        Err(SwitchError::Panicked(p)) => assert_eq!(panic_message(&*p), "thrown in"),
        other => panic!("expected the thrown payload back as Panicked, got {other:?}"),
    }
    assert_eq!(drops.get(), 1);
    assert!(g.is_dead());
}

#[test]
fn a_greenlet_that_catches_a_throw_returns_its_own_result_to_the_parent() {
    let g = RawGreenlet::new(|_: Value| {
        let caught = catch_unwind(AssertUnwindSafe(|| parent_of_current().switch(()))).unwrap_err();
        format!("caught {}", panic_message(&*caught))
    });
    g.switch(()).unwrap();
    let r = g.throw(Box::new("stop")).unwrap();
    assert_eq!(*r.downcast::<String>().unwrap(), "caught stop");
}

#[test]
fn throw_into_an_unstarted_greenlet_means_its_body_never_runs() {
    let ran = Rc::new(Cell::new(false));
    let drops = Counter::new();
    let (r, guard) = (ran.clone(), drops.drop_guard());
    let g = RawGreenlet::new(move |_: Value| {
        let _guard = guard;
        r.set(true);
    });
    assert!(!g.is_started());
    let back = g.throw(Box::new(GreenletExit)).unwrap();
    assert!(back.downcast_ref::<GreenletExit>().is_some());
    assert!(!ran.get(), "the body must never run");
    assert_eq!(drops.get(), 1, "what the body captured is dropped");
    assert!(g.is_dead());
}

/// A body that reports how it was ended: records the payload it was unwound with.
fn abandoned_body(drops: &Counter, ended_by: &Rc<RefCell<Option<String>>>) -> RawGreenlet {
    let guard = drops.drop_guard();
    let ended_by = ended_by.clone();
    RawGreenlet::new(move |_: Value| {
        let _guard = guard;
        let r = catch_unwind(AssertUnwindSafe(|| parent_of_current().switch(())));
        let p = r.expect_err("an abandoned greenlet is resumed only by unwinding");
        *ended_by.borrow_mut() = Some(panic_message(&*p));
        // Go on unwinding, as well-behaved code does.
        resume_unwind(p)
    })
}

#[test]
fn dropping_the_last_handle_of_a_suspended_greenlet_unwinds_it() {
    let drops = Counter::new();
    let ended_by = Rc::new(RefCell::new(None));
    let g = abandoned_body(&drops, &ended_by);
    g.switch(()).unwrap();

    let other = g.clone();
    drop(g);
    assert_eq!(
        drops.get(),
        0,
        "another handle still exists: nothing happens"
    );
    assert!(ended_by.borrow().is_none());

    drop(other);
    assert_eq!(ended_by.borrow().as_deref(), Some("GreenletExit"));
    assert_eq!(drops.get(), 1, "its destructors ran");
}

#[test]
fn dropping_an_unstarted_greenlet_drops_its_body_without_running_it() {
    let drops = Counter::new();
    let ran = Rc::new(Cell::new(false));
    let (guard, r) = (drops.drop_guard(), ran.clone());
    let g = RawGreenlet::new(move |_: Value| {
        let _guard = guard;
        r.set(true);
    });
    drop(g);
    assert!(!ran.get());
    assert_eq!(drops.get(), 1);
}

#[test]
fn a_panic_in_a_greenlet_is_returned_to_its_parent_and_does_not_cross() {
    let g = RawGreenlet::new(|_: Value| -> i32 { panic!("kaboom {}", 7) });
    match g.switch(()) {
        Err(SwitchError::Panicked(p)) => assert_eq!(panic_message(&*p), "kaboom 7"),
        other => panic!("expected Panicked, got {other:?}"),
    }
    assert!(g.is_dead());
    assert!(
        !std::thread::panicking(),
        "the panic stayed inside the greenlet"
    );

    // One level down: a child's panic reaches its parent greenlet, which handles it;
    // main only sees the parent's normal return.
    let outer = RawGreenlet::new(|_: Value| {
        let inner = RawGreenlet::new(|_: Value| -> () { panic!("inner") });
        match inner.switch(()) {
            Err(SwitchError::Panicked(p)) => format!("handled {}", panic_message(&*p)),
            other => format!("unexpected {other:?}"),
        }
    });
    let r = outer.switch(()).unwrap();
    assert_eq!(*r.downcast::<String>().unwrap(), "handled inner");
}

#[test]
fn switching_to_or_throwing_into_a_dead_greenlet_is_an_error() {
    let g = RawGreenlet::new(|_: Value| 1);
    g.switch(()).unwrap();
    assert!(g.is_dead());
    assert!(matches!(g.switch(()), Err(SwitchError::Dead)));
    assert!(matches!(
        g.throw(Box::new(GreenletExit)),
        Err(SwitchError::Dead)
    ));

    let p = RawGreenlet::new(|_: Value| panic!("dies"));
    assert!(matches!(p.switch(()), Err(SwitchError::Panicked(_))));
    assert!(matches!(p.switch(()), Err(SwitchError::Dead)));
}

#[test]
fn set_parent_refuses_cycles() {
    let a = RawGreenlet::new(|_: Value| ());
    let b = RawGreenlet::new(|_: Value| ());
    let c = RawGreenlet::new(|_: Value| ());
    let main = getcurrent();

    assert_eq!(
        a.set_parent(&a),
        Err(ParentCycle),
        "a greenlet cannot be its own parent"
    );
    assert_eq!(b.set_parent(&a), Ok(()));
    assert_eq!(c.set_parent(&b), Ok(()));
    // a <- b <- c: making c (or b) a's parent would close a loop.
    assert_eq!(a.set_parent(&c), Err(ParentCycle));
    assert_eq!(a.set_parent(&b), Err(ParentCycle));
    assert!(
        a.parent().unwrap().ptr_eq(&main),
        "a refused set_parent changes nothing"
    );
    assert!(c.parent().unwrap().ptr_eq(&b));

    // c finishes into b, which starts (with c's return value) and finishes into a.
    let c2 = RawGreenlet::with_options(|_: Value| 10, Some(&b), 64 * 1024, None);
    drop(c);
    let r = c2.switch(()).unwrap();
    assert!(r.downcast_ref::<()>().is_some(), "a's body returns ()");
    assert!(b.is_dead() && a.is_dead() && c2.is_dead());
}

#[test]
fn dropping_a_getcurrent_handle_of_a_spawned_greenlet_does_not_kill_it() {
    use gevent_hub::{sleep, spawn, Event};
    let slot: Slot = Rc::default();
    let ev = Event::new();
    let (s, e) = (slot.clone(), ev.clone());
    let g = spawn(move || {
        *s.borrow_mut() = Some(getcurrent());
        e.wait().unwrap();
        5
    });
    sleep(std::time::Duration::ZERO);
    assert!(g.started() && !g.ready());
    // The Greenlet handle (and the hub) still refer to it: this is not its last handle.
    drop(slot.borrow_mut().take());
    assert!(!g.ready(), "outcome: {:?}", g.outcome());
    ev.set();
    assert_eq!(g.join().unwrap(), 5);
}
