//! Greenlet-aware synchronisation: waiting parks the greenlet and switches to the hub;
//! it never blocks the thread.

mod event;

pub use event::{AsyncResult, Event};
