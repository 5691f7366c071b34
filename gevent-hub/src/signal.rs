//! `signal_handler`: run a function in a new greenlet each time a signal arrives
//! (gevent's `signal_handler`).

use crate::error::Error;
use crate::hub::get_hub;
use crate::spawn::spawn;
use gevent_core::Signal;
use std::fmt;
use std::rc::Rc;

/// A signal handler installed with [`signal_handler`]; dropping it uninstalls it.
#[must_use = "the handler is uninstalled as soon as it is dropped"]
pub struct SignalHandler {
    _watcher: Signal,
}

impl fmt::Debug for SignalHandler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignalHandler").finish()
    }
}

/// Runs `f` in a new greenlet each time signal `sig` arrives (gevent's
/// `signal_handler`). The handler does not keep the hub's loop alive by itself.
///
/// # Errors
/// An invalid signal number, or the signal is watched by another thread's loop.
pub fn signal_handler(sig: i32, f: impl Fn() + 'static) -> Result<SignalHandler, Error> {
    let hub = get_hub();
    let w = hub.get_loop().signal(sig)?;
    let f: Rc<dyn Fn()> = Rc::new(f);
    w.start(move |_, _| {
        let f = f.clone();
        spawn(move || f());
    })?;
    w.set_ref(false);
    Ok(SignalHandler { _watcher: w })
}
