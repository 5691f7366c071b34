//! The echo server on tokio's current-thread runtime: one thread, a task per
//! connection, the same handler as the `echo_server` example (read up to 4096 bytes,
//! write them all back).
//!
//! Run: `cargo run --release -p gevent-bench --bin echo_tokio -- [PORT] [--busy REPS]`
//! (`--busy`: the slides' busy loop, `gevent_bench::stress`, before each write).

use gevent_bench::{server_args, stress};
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

async fn handler(mut sock: TcpStream, busy: u32) {
    let mut buf = [0u8; 4096];
    loop {
        let n = match sock.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if busy > 0 {
            stress(busy);
        }
        if sock.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

fn main() -> std::io::Result<()> {
    let (port, busy) = server_args();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    rt.block_on(async move {
        let addr: SocketAddr = ([0, 0, 0, 0], port).into();
        let sock = TcpSocket::new_v4()?;
        sock.set_reuseaddr(true)?;
        sock.bind(addr)?;
        // The same backlog as the other servers (the slides' 1024).
        let listener = sock.listen(1024)?;
        eprintln!("echo_tokio on port {port} (busy {busy})");
        loop {
            let (s, _) = listener.accept().await?;
            tokio::spawn(handler(s, busy));
        }
    })
}
