//! Per-thread id counters: greenlets, timeouts, thread-pool tasks and remote wake-ups
//! are each numbered from 1 on their thread.

use std::cell::Cell;

/// A counter handing out 1, 2, 3, … (wrapping after `u64::MAX`, which a thread cannot
/// reach).
#[derive(Debug)]
pub(crate) struct Ids(Cell<u64>);

impl Ids {
    pub(crate) const fn new() -> Ids {
        Ids(Cell::new(1))
    }

    /// The next id.
    pub(crate) fn next(&self) -> u64 {
        let id = self.0.get();
        self.0.set(id.wrapping_add(1));
        id
    }
}
