//! The greenlet f1/f2 program from the slides: two greenlets switching explicitly.
//!
//! ```python
//! import greenlet
//! def f1():
//!     print 'f1', 1
//!     g2.switch()
//!     print 'f1', 3
//!     g2.switch()
//!     print 'f1', 5
//!
//! def f2():
//!     print 'f2', 2
//!     g1.switch()
//!     print 'f2', 4
//!     g1.switch()
//!
//! g1 = greenlet.greenlet(f1)
//! g2 = greenlet.greenlet(f2)
//! g1.switch()
//! ```
//!
//! Prints `f1 1`, `f2 2`, `f1 3`, `f2 4`, `f1 5`. When f1 returns, control goes to its
//! parent (main), and the program ends; g2, still suspended in its second switch, is
//! unwound with `GreenletExit` when its handle is dropped.
//!
//! Run: `cargo run --example greenlet_switch`

use gevent::hub::greenlet::{RawGreenlet, Value};
use std::cell::RefCell;

thread_local! {
    static G1: RefCell<Option<RawGreenlet>> = const { RefCell::new(None) };
    static G2: RefCell<Option<RawGreenlet>> = const { RefCell::new(None) };
}

fn switch(g: &'static std::thread::LocalKey<RefCell<Option<RawGreenlet>>>) {
    let target = g.with(|g| g.borrow().clone()).expect("greenlet created");
    target.switch(()).expect("switch");
}

fn main() {
    let g1 = RawGreenlet::new(|_: Value| {
        println!("f1 1");
        switch(&G2);
        println!("f1 3");
        switch(&G2);
        println!("f1 5");
    });
    let g2 = RawGreenlet::new(|_: Value| {
        println!("f2 2");
        switch(&G1);
        println!("f2 4");
        switch(&G1);
    });
    G1.with(|g| *g.borrow_mut() = Some(g1.clone()));
    G2.with(|g| *g.borrow_mut() = Some(g2.clone()));
    g1.switch(()).expect("run f1");
    // Drop the globals' handles first, then ours: g2 is unwound here.
    G1.with(|g| g.borrow_mut().take());
    G2.with(|g| g.borrow_mut().take());
    assert!(g1.is_dead());
    drop(g2);
}
