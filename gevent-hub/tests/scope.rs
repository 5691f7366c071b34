//! `scope`: greenlets borrowing from the caller's stack, every one finished before the
//! scope returns or unwinds — on return, on a panic in the scope, on a kill or a
//! Timeout of its owner, and when the thread ends under it.

mod util;

use gevent_hub::{scope, sleep, spawn, with_timeout, Error, Outcome};
use std::cell::{Cell, RefCell};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::time::Duration;
use util::{quiet_expected_panics, with_watchdog};

/// Pushes `"<name> dropped"` to the log it borrows when dropped.
struct Guard<'a>(&'static str, &'a RefCell<Vec<String>>);

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        self.1.borrow_mut().push(format!("{} dropped", self.0));
    }
}

#[test]
fn scoped_greenlets_borrow_from_the_stack_and_are_all_done_when_it_returns() {
    with_watchdog(|| {
        let words = ["a", "bb", "ccc"];
        let total = Cell::new(0usize);
        let log = RefCell::new(Vec::new());
        let first = scope(|s| {
            let first = s.spawn(|| words[0].len());
            let (total, log) = (&total, &log);
            for w in &words[1..] {
                s.spawn(move || {
                    sleep(Duration::from_millis(w.len() as u64));
                    total.set(total.get() + w.len());
                    log.borrow_mut().push(format!("{w} done"));
                });
            }
            first.join().unwrap()
        });
        assert_eq!(first, 1);
        // The unjoined ones finished before scope returned.
        assert_eq!(total.get(), 5);
        assert_eq!(log.into_inner(), ["bb done", "ccc done"]);
    });
}

#[test]
fn a_panicking_scoped_greenlet_makes_the_scope_panic_after_the_others_finish() {
    quiet_expected_panics();
    with_watchdog(|| {
        let finished = Cell::new(false);
        let r = catch_unwind(AssertUnwindSafe(|| {
            scope(|s| {
                s.spawn(|| panic!("expected: a scoped greenlet fails"));
                s.spawn(|| {
                    sleep(Duration::from_millis(2));
                    finished.set(true);
                });
            })
        }));
        let msg = r.unwrap_err();
        assert_eq!(
            msg.downcast_ref::<&str>(),
            Some(&"a scoped greenlet panicked")
        );
        assert!(finished.get(), "the other greenlet ran to its end first");
    });
}

#[test]
fn a_panic_in_the_scope_kills_its_greenlets_before_it_goes_on() {
    quiet_expected_panics();
    with_watchdog(|| {
        let log = RefCell::new(Vec::new());
        let r = catch_unwind(AssertUnwindSafe(|| {
            scope(|s| {
                s.spawn(|| {
                    let _g = Guard("child", &log);
                    sleep(Duration::from_secs(60));
                    log.borrow_mut().push("child woke (must not happen)".into());
                });
                sleep(Duration::ZERO);
                panic!("expected: the scope's own code fails");
            })
        }));
        assert!(r.is_err());
        assert_eq!(log.into_inner(), ["child dropped"]);
    });
}

#[test]
fn killing_the_owner_kills_the_scoped_greenlets_first() {
    with_watchdog(|| {
        let log: Rc<RefCell<Vec<String>>> = Rc::default();
        let l = log.clone();
        let owner = spawn(move || {
            let local = RefCell::new(Vec::new());
            struct Out(Rc<RefCell<Vec<String>>>, *const RefCell<Vec<String>>);
            impl Drop for Out {
                fn drop(&mut self) {
                    // SAFETY: `local` outlives this guard (declared before it).
                    let mine = unsafe { &*self.1 }.borrow().clone();
                    self.0.borrow_mut().extend(mine);
                    self.0.borrow_mut().push("owner unwound".into());
                }
            }
            let _out = Out(l, &local);
            scope(|s| {
                for name in ["c1", "c2"] {
                    let local = &local;
                    s.spawn(move || {
                        let _g = Guard(name, local);
                        sleep(Duration::from_secs(60));
                    });
                }
                sleep(Duration::from_secs(60));
            });
        });
        sleep(Duration::ZERO);
        owner.kill().unwrap();
        assert_eq!(owner.outcome(), Some(Outcome::Killed));
        let log = log.borrow().clone();
        assert_eq!(log.last().map(String::as_str), Some("owner unwound"));
        let mut kids: Vec<_> = log[..log.len() - 1].to_vec();
        kids.sort();
        assert_eq!(kids, ["c1 dropped", "c2 dropped"]);
    });
}

#[test]
fn a_timeout_around_a_scope_ends_its_greenlets_and_fires() {
    with_watchdog(|| {
        let log = RefCell::new(Vec::new());
        let r = with_timeout(Duration::from_millis(5), || {
            scope(|s| {
                s.spawn(|| {
                    let _g = Guard("child", &log);
                    sleep(Duration::from_secs(60));
                });
            })
        });
        assert!(matches!(r, Err(Error::TimedOut)), "{r:?}");
        assert_eq!(log.into_inner(), ["child dropped"]);
    });
}

#[test]
fn a_thread_ending_under_a_scope_ends_its_greenlets_before_the_owners_frame() {
    use std::sync::{Arc, Mutex};
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s2 = seen.clone();
    std::thread::spawn(move || {
        spawn(move || {
            let local = RefCell::new(Vec::new());
            struct Report(Arc<Mutex<Vec<String>>>, *const RefCell<Vec<String>>);
            impl Drop for Report {
                fn drop(&mut self) {
                    // SAFETY: `local` outlives this guard (declared before it).
                    let mine = unsafe { &*self.1 }.borrow().clone();
                    let mut s = self.0.lock().unwrap();
                    s.extend(mine);
                    s.push("owner unwound".into());
                }
            }
            let _r = Report(s2, &local);
            scope(|s| {
                let local = &local;
                s.spawn(move || {
                    let _g = Guard("child", local);
                    sleep(Duration::from_secs(60));
                });
                sleep(Duration::from_secs(60));
            });
        });
        // Let both park, then end the thread with them parked.
        sleep(Duration::ZERO);
        sleep(Duration::ZERO);
    })
    .join()
    .unwrap();
    assert_eq!(*seen.lock().unwrap(), ["child dropped", "owner unwound"]);
}
