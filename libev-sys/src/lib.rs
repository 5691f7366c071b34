//! Raw FFI bindings to libev 4.33.
//!
//! The C library is compiled from the pristine sources in `vendor/libev` with the
//! configuration in `csrc/ev_config.h` (epoll, poll, select, linuxaio; not io_uring,
//! whose libev 4.33 teardown is broken; eventfd, signalfd, timerfd, inotify; monotonic
//! clock; 4-heap; multiplicity; `EV_VERIFY 1`). The bindings in `src/bindings.rs` were
//! produced by bindgen from that same configuration and are committed, so a build
//! needs only a C compiler; the `buildtime-bindgen` feature regenerates them
//! (libclang required).
//!
//! libev's own `assert`s are compiled out (`NDEBUG`) unless the `libev-asserts`
//! feature is on; then a misuse libev checks for aborts the process.
//!
//! This crate has no safe API and makes no policy: see `gevent-core` for that.
//!
//! ## Contents
//! - At the root: every libev function, struct and constant of `ev.h`, as bindgen
//!   wrote them, everything in [`macros`] (re-exported), and [`BACKENDS`], the names of
//!   libev's backends (the workspace's one list of them).
//! - [`macros`]: libev's function-like macros (`ev_init`, `ev_io_set`, `ev_is_active`,
//!   …), which have no symbols, as `#[inline]` functions with the same names.
//! - `probe` (hidden, only with the `probe` feature): the C side of the crate's own
//!   layout and macro tests; the tests turn the feature on, users never need it.
#![no_std]
#![allow(non_camel_case_types, non_upper_case_globals, non_snake_case)]
#![warn(missing_debug_implementations, rust_2018_idioms)]
#![deny(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]

// bindgen's output: its few unsafe operations (union field accessors, layout tests) are
// generated and carry no SAFETY comments.
#[allow(
    clippy::all,
    clippy::undocumented_unsafe_blocks,
    unsafe_op_in_unsafe_fn,
    missing_docs,
    missing_debug_implementations
)]
mod bindings {
    #[cfg(not(feature = "buildtime-bindgen"))]
    include!("bindings.rs");
    #[cfg(feature = "buildtime-bindgen")]
    include!(concat!(env!("OUT_DIR"), "/bindings.rs"));
}
pub use bindings::*;

pub mod macros;
pub use macros::*;

macro_rules! backends {
    ($($name:ident = $bit:ident),* $(,)?) => {
        /// Every I/O backend libev has on Linux, as `(name, EVBACKEND_* bit)`, whether
        /// compiled in or not (`ev_supported_backends` says which this build and kernel
        /// have). The workspace's one list of backend names (`src/backend_table.rs`).
        pub const BACKENDS: &[(&str, core::ffi::c_uint)] = &[$((stringify!($name), $bit)),*];
    };
}
include!("backend_table.rs");

#[cfg(feature = "probe")]
#[doc(hidden)]
pub mod probe;
