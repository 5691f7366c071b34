//! The echo server in C on raw libev callbacks (`c/echo_libev.c`), linked against the
//! same libev as gevent-rs: this `main` only hands its arguments to the C `main`.
//!
//! Run: `cargo run --release -p gevent-bench --bin echo_libev -- [PORT] [--busy REPS]`

use gevent_bench::c::c_echo_main;
use std::ffi::{c_char, c_int, CString};

fn main() {
    let args: Vec<CString> = std::env::args()
        .map(|a| CString::new(a).expect("arguments have no NUL bytes"))
        .collect();
    let mut argv: Vec<*mut c_char> = args.iter().map(|a| a.as_ptr() as *mut c_char).collect();
    argv.push(std::ptr::null_mut());
    let argc = c_int::try_from(args.len()).expect("argument count fits in an int");
    // SAFETY: argv is a NULL-terminated array of `argc` valid C strings that outlive
    // the call (`args` is alive until the end of main); c_echo_main only reads them.
    let code = unsafe { c_echo_main(argc, argv.as_mut_ptr()) };
    std::process::exit(code);
}
