//! The echo server with a thread per connection (std): the slides' "blocking with
//! threading" version, in Rust. Threads get std's default stack (2 MiB), as a program
//! that does not tune it would.
//!
//! Run: `cargo run --release -p gevent-bench --bin echo_threads -- [PORT] [--busy REPS]`
//! (`--busy`: the slides' busy loop, `gevent_bench::stress`, before each write).

use gevent_bench::{server_args, stress};
use socket2::{Domain, Socket, Type};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};

fn echo(mut sock: TcpStream, busy: u32) {
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
    let addr: SocketAddr = ([0, 0, 0, 0], port).into();
    // std's TcpListener::bind has a fixed backlog; the suite gives every server 1024.
    let sock = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    sock.set_reuse_address(true)?;
    sock.bind(&addr.into())?;
    sock.listen(1024)?;
    let listener: TcpListener = sock.into();
    eprintln!("echo_threads on port {port} (busy {busy})");
    for conn in listener.incoming() {
        match conn {
            Ok(s) => {
                std::thread::spawn(move || echo(s, busy));
            }
            Err(e) => eprintln!("accept: {e}"),
        }
    }
    Ok(())
}
