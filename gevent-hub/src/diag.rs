//! Diagnostics through the `log` facade, rate-limited where they can flood.
//!
//! Library code reports through `log` (the ecosystem's standard: the program picks
//! the logger, or none). Messages that a misbehaving peer or program can produce at
//! any rate — accept errors, handler panics, panics of hub callbacks — go through a
//! [`RateLimit`]: at most a burst per second, then one line saying how many were left
//! out.

use std::cell::Cell;
use std::time::{Duration, Instant};

/// Lets through at most `burst` events per second.
#[derive(Debug)]
pub(crate) struct RateLimit {
    burst: u32,
    window: Cell<Option<Instant>>,
    passed: Cell<u32>,
    dropped: Cell<u32>,
}

impl RateLimit {
    /// A limit of `burst` events per second.
    pub(crate) const fn new(burst: u32) -> RateLimit {
        RateLimit {
            burst,
            window: Cell::new(None),
            passed: Cell::new(0),
            dropped: Cell::new(0),
        }
    }

    /// Whether this event may be reported; when a new second begins after events were
    /// left out, `on_dropped` is told how many.
    pub(crate) fn allow(&self, on_dropped: impl FnOnce(u32)) -> bool {
        let now = Instant::now();
        let fresh = self
            .window
            .get()
            .is_none_or(|w| now.saturating_duration_since(w) >= Duration::from_secs(1));
        if fresh {
            self.window.set(Some(now));
            self.passed.set(0);
            let dropped = self.dropped.replace(0);
            if dropped > 0 {
                on_dropped(dropped);
            }
        }
        if self.passed.get() < self.burst {
            self.passed.set(self.passed.get() + 1);
            true
        } else {
            self.dropped.set(self.dropped.get().saturating_add(1));
            false
        }
    }
}

/// Logs at `error` level through `limit`.
macro_rules! error_limited {
    ($limit:expr, $($arg:tt)+) => {
        if $limit.allow(|n| log::error!("({n} more like the next were left out in the last second)")) {
            log::error!($($arg)+);
        }
    };
}
pub(crate) use error_limited;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_passes_then_events_are_counted_not_reported() {
        let l = RateLimit::new(3);
        let passed = (0..10).filter(|_| l.allow(|_| {})).count();
        assert_eq!(passed, 3);
        assert_eq!(l.dropped.get(), 7);
    }
}
