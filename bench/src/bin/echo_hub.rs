//! The `echo_server` example's handler on this project's hub, plus the slides' busy
//! loop before each write (`--busy REPS`). The suite runs the example itself wherever
//! there is no busy loop; this copy exists because "Benchmark 2" of the slides puts
//! the busy loop in the server (`echo_simple.py` calls `stress()` before `sendall`).
//!
//! Run: `cargo run --release -p gevent-bench --bin echo_hub -- [PORT] [--busy REPS]`

use gevent_bench::{echo, server_args};
use gevent_hub::net::TcpStream;
use gevent_hub::server::{signal_handler, ServerOptions, StreamServer};
use std::net::SocketAddr;

fn main() -> std::io::Result<()> {
    let (port, busy) = server_args();
    let opts = ServerOptions {
        backlog: 1024,
        ..ServerOptions::default()
    };
    let server = StreamServer::with_options(
        SocketAddr::from(([0, 0, 0, 0], port)),
        opts,
        move |sock: TcpStream, _addr: SocketAddr| echo(sock, busy),
    )?;
    eprintln!("echo_hub on {} (busy {busy})", server.server_addr());
    let s = server.clone();
    let _term =
        signal_handler(libc::SIGTERM, move || drop(s.stop())).map_err(std::io::Error::other)?;
    server.serve_forever()
}
