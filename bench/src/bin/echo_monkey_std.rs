//! The thread-per-connection std echo server (`echo_threads`), monkey-patched: the
//! same std code — `std::net::TcpListener`, `std::net::TcpStream`,
//! `std::io::{Read, Write}` — with `gevent_monkey::patch_all()` at the top of `main`
//! and `gevent_hub::spawn` instead of `std::thread::spawn`. Its std calls (`accept4`,
//! `recv`, `send`) reach gevent-monkey's hooks, which park the calling greenlet on the
//! hub instead of blocking the thread: one OS thread, a greenlet per connection.
//!
//! The std code is `gevent_bench::std_server`, the very code `echo_threads` runs:
//! read up to 4096 bytes, write them all back, stop at EOF or on an error (as the
//! `echo_server` example, the suite's native `gevent::hub::net` server, does). The
//! listen backlog is 1024, as every server of the suite has.
//!
//! Run: `cargo run --release -p gevent-bench --bin echo_monkey_std -- [PORT] [--busy REPS]`
//! (`--busy`: the slides' busy loop, `gevent_bench::stress`, before each write).

use gevent_bench::echo;
use gevent_bench::std_server::serve;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    gevent_monkey::patch_all()?;
    serve(
        "echo_monkey_std (patched: std code, greenlets)",
        |s, busy| {
            gevent_hub::spawn(move || echo(s, busy));
        },
    )?;
    Ok(())
}
