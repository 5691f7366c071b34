//! One file per watcher type, each holding only what makes that type different; the
//! shared machinery is in [`crate::watcher`].

pub mod async_;
pub mod child;
pub mod io;
pub mod periodic;
pub mod phases;
pub mod signal;
pub mod stat;
pub mod timer;
