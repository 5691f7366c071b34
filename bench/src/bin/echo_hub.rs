//! The `echo_server` example's handler on this project's hub, plus the slides' busy
//! loop before each write (`--busy REPS`). The suite runs the example itself wherever
//! there is no busy loop; this copy exists because "Benchmark 2" of the slides puts
//! the busy loop in the server (`echo_simple.py` calls `stress()` before `sendall`).
//!
//! Run: `cargo run --release -p gevent-bench --bin echo_hub -- [PORT] [--busy REPS]`

use gevent_bench::{server_args, stress};
use gevent_hub::net::TcpStream;
use gevent_hub::server::{signal_handler, ServerOptions, StreamServer};
use std::io::{Read, Write};
use std::net::SocketAddr;

fn handler(mut sock: TcpStream, busy: u32) {
    let mut buf = [0u8; 4096];
    loop {
        let n = match sock.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if busy > 0 {
            stress(busy);
        }
        if sock.write_all(&buf[..n]).is_err() {
            return;
        }
    }
}

fn main() -> std::io::Result<()> {
    let (port, busy) = server_args();
    let opts = ServerOptions {
        backlog: 1024,
        ..ServerOptions::default()
    };
    let server = StreamServer::with_options(
        SocketAddr::from(([0, 0, 0, 0], port)),
        opts,
        move |sock: TcpStream, _addr: SocketAddr| handler(sock, busy),
    )?;
    eprintln!("echo_hub on {} (busy {busy})", server.server_addr());
    let s = server.clone();
    let _term =
        signal_handler(libc::SIGTERM, move || drop(s.stop())).map_err(std::io::Error::other)?;
    server.serve_forever()
}
