//! The slides' gevent echo server, line for line:
//!
//! ```python
//! from gevent.server import StreamServer
//!
//! def handler(sock, addr):
//!     try:
//!         while 1:
//!             buf = sock.recv(4096)
//!             if not buf:
//!                 return
//!             sock.sendall(buf)
//!     finally:
//!         sock.close()
//!
//! def serve(addr):
//!     server = StreamServer(addr, handler, backlog=1024)
//!     server.serve_forever()
//!
//! serve(('', 4000))
//! ```
//!
//! Run: `cargo run --release --example echo_server -- [ADDR] [--threads N]`
//! ADDR is `HOST:PORT` or a bare port (default `0.0.0.0:4000`). With `--threads N` it
//! runs N hubs, one per thread, each with its own server on the same port
//! (`SO_REUSEPORT`): the kernel spreads connections over them. Serves until Ctrl-C.

use gevent::hub::net::TcpStream;
use gevent::hub::server::{signal_handler, ServerOptions, StreamServer};
use std::io::{Read, Write};
use std::net::SocketAddr;

fn handler(mut sock: TcpStream, _addr: SocketAddr) {
    let mut buf = [0u8; 4096];
    loop {
        let n = match sock.read(&mut buf) {
            Ok(0) | Err(_) => return, // `sock` is closed when dropped
            Ok(n) => n,
        };
        if sock.write_all(&buf[..n]).is_err() {
            return;
        }
    }
}

fn serve(addr: &str, reuse_port: bool) -> std::io::Result<()> {
    let opts = ServerOptions {
        backlog: 1024,
        reuse_port,
        ..ServerOptions::default()
    };
    let server = StreamServer::with_options(addr, opts, handler)?;
    eprintln!("echo server on {}", server.server_addr());
    // Ctrl-C (or SIGTERM) stops the server; serve_forever then returns.
    let (s1, s2) = (server.clone(), server.clone());
    let _int = signal_handler(libc::SIGINT, move || drop(s1.stop()));
    let _term = signal_handler(libc::SIGTERM, move || drop(s2.stop()));
    server.serve_forever()
}

fn main() -> std::io::Result<()> {
    let mut addr = "0.0.0.0:4000".to_owned();
    let mut threads = 1usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--threads" => threads = args.next().and_then(|n| n.parse().ok()).unwrap_or(1),
            a if a.parse::<u16>().is_ok() => addr = format!("0.0.0.0:{a}"),
            a => addr = a.to_owned(),
        }
    }
    if threads <= 1 {
        return serve(&addr, false);
    }
    // One hub per thread. Signals go to the first thread's loop only (a signal can be
    // watched by one loop), so the other threads are stopped when the process exits.
    let handles: Vec<_> = (0..threads)
        .map(|i| {
            let addr = addr.clone();
            std::thread::spawn(move || {
                if i == 0 {
                    serve(&addr, true)
                } else {
                    let opts = ServerOptions {
                        reuse_port: true,
                        ..ServerOptions::default()
                    };
                    StreamServer::with_options(addr.as_str(), opts, handler)?.serve_forever()
                }
            })
        })
        .collect();
    let first = handles.into_iter().next().expect("at least one thread");
    first.join().expect("server thread")?;
    std::process::exit(0);
}
