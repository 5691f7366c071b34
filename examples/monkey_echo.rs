//! The slides' `patch_all()` echo server: the threaded std program, unchanged but for
//! one added line (`gevent::monkey::patch_all()`) and greenlets instead of threads.
//!
//! ```python
//! import gevent.monkey; gevent.monkey.patch_all()
//! import socket, threading
//!
//! def echo(sock):
//!     while True:
//!         data = sock.recv(1024)
//!         if not data:
//!             break
//!         sock.sendall(data)
//!
//! def serve(addr):
//!     sock = socket.socket()
//!     sock.bind(addr); sock.listen(50)
//!     while True:
//!         conn, _ = sock.accept()
//!         threading.Thread(target=echo, args=(conn,)).start()
//! ```
//!
//! Here the sockets are `std::net`'s own, and `Read`/`Write` std's: nothing in `echo`
//! or `serve` knows about gevent. What differs from the threaded original is:
//!
//! ```diff
//! +    gevent::monkey::patch_all()?;
//! -use std::thread::spawn;
//! +use gevent::hub::spawn;
//! ```
//!
//! (Threads are not patched: a `std::thread::spawn` stays an OS thread, whose calls
//! are not patched either. `examples/echo_monkey.rs` swaps the socket types instead of
//! patching; this one patches libc.)
//!
//! Run: `cargo run --release --features monkey --example monkey_echo -- [PORT]`
//! (default 4000), then `nc localhost 4000`. With `--self-test` it serves 50 clients
//! (std `TcpStream`s, greenlets too) of 20 messages each on an ephemeral port, checks
//! every byte and exits.

use gevent::hub::spawn;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};

fn echo(mut sock: TcpStream) {
    let mut buf = [0u8; 1024];
    loop {
        match sock.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if sock.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
}

fn serve(sock: TcpListener) -> std::io::Result<()> {
    loop {
        let (conn, _) = sock.accept()?;
        spawn(move || echo(conn));
    }
}

/// Clients, as std code too: each connects, sends its messages one at a time and
/// checks each answer.
fn self_test(clients: usize, messages: usize) -> Result<(), Box<dyn std::error::Error>> {
    let sock = TcpListener::bind("127.0.0.1:0")?;
    let addr = sock.local_addr()?;
    let server = spawn(move || serve(sock));
    let runs: Vec<_> = (0..clients)
        .map(|i| {
            spawn(move || -> std::io::Result<usize> {
                let mut c = TcpStream::connect(addr)?;
                for m in 0..messages {
                    let msg = format!("client {i} says {m}\n");
                    c.write_all(msg.as_bytes())?;
                    let mut back = vec![0u8; msg.len()];
                    c.read_exact(&mut back)?;
                    if back != msg.as_bytes() {
                        return Err(std::io::Error::other(format!("client {i}: wrong echo")));
                    }
                }
                Ok(messages)
            })
        })
        .collect();
    let mut total = 0;
    for r in runs {
        total += r
            .join()
            .map_err(|e| format!("a client greenlet failed: {e}"))??;
    }
    server.kill()?;
    println!(
        "self-test: {clients} clients x {messages} messages echoed ({total} in all), one thread"
    );
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    gevent::monkey::patch_all()?;
    let arg = std::env::args().nth(1);
    if arg.as_deref() == Some("--self-test") {
        return self_test(50, 20);
    }
    let port: u16 = match arg {
        None => 4000,
        Some(p) => p
            .parse()
            .map_err(|_| "usage: monkey_echo [PORT | --self-test]")?,
    };
    eprintln!("echo server on 0.0.0.0:{port} (std::net, patched), a greenlet per client");
    serve(TcpListener::bind(("0.0.0.0", port))?)?;
    Ok(())
}
