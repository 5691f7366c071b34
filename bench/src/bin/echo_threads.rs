//! The echo server with a thread per connection (std): the slides' "blocking with
//! threading" version, in Rust. Threads get std's default stack (2 MiB), as a program
//! that does not tune it would.
//!
//! Run: `cargo run --release -p gevent-bench --bin echo_threads -- [PORT] [--busy REPS]`
//! (`--busy`: the slides' busy loop, `gevent_bench::stress`, before each write).

use gevent_bench::echo;
use gevent_bench::std_server::serve;

fn main() -> std::io::Result<()> {
    serve("echo_threads", |s, busy| {
        std::thread::spawn(move || echo(s, busy));
    })
}
