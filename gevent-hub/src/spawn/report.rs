//! What a greenlet's bad end says: a panic's report names the greenlet, and a payload
//! this layer knows (a [`Timeout`](crate::Timeout)'s expiry) is described as what it is.

use super::timeout::TimeoutExpired;
use crate::greenlet::{self, PanicPayload};
use crate::hub::record::spawned_at_if_known;
use std::any::Any;
use std::io::Write;
use std::sync::Once;

/// What ended a greenlet, in words: a panic's message, or an uncaught Timeout.
pub(crate) fn describe_payload(p: &(dyn Any + Send)) -> String {
    match p.downcast_ref::<TimeoutExpired>() {
        Some(t) => format!("an uncaught Timeout (id {}) expired", t.id),
        None => greenlet::panic_message(p),
    }
}

/// The id of the Timeout whose expiry `p` is, if it is one.
pub(crate) fn timeout_id(p: &PanicPayload) -> Option<u64> {
    p.downcast_ref::<TimeoutExpired>().map(|t| t.id)
}

/// Adds to the process's panic hook, once: a panic in a greenlet other than a thread's
/// main one is preceded by a line naming the greenlet, its id and where it was
/// spawned (std's own report names only the thread). The hook in place is kept and
/// runs after; a hook set later replaces this one.
pub(crate) fn install_panic_report() {
    static ONCE: Once = Once::new();
    // The hook cannot be changed by a panicking thread (std would panic again).
    if ONCE.is_completed() || std::thread::panicking() {
        return;
    }
    ONCE.call_once(|| {
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if let Some(line) = running_greenlet() {
                // As std's hook: a failed write to stderr is ignored, never a panic.
                let _ = writeln!(std::io::stderr().lock(), "{line}");
            }
            prev(info);
        }));
    });
}

/// "greenlet 'name' (id N, spawned at file:line:col) panicked:", unless the running
/// greenlet is a thread's main one (or none runs).
fn running_greenlet() -> Option<String> {
    let g = greenlet::try_current_rc()?;
    if greenlet::is_main(&g) {
        return None;
    }
    let at = spawned_at_if_known(&g)
        .map(|l| format!(", spawned at {}:{}:{}", l.file(), l.line(), l.column()))
        .unwrap_or_default();
    Some(format!(
        "greenlet '{}' (id {}{at}) panicked:",
        g.name(),
        g.id()
    ))
}
