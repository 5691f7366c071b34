//! The slides' threaded echo server, "monkey-patched": the same code, made cooperative
//! by swapping its imports, the Rust analogue of `gevent.monkey.patch_all()`.
//!
//! ```python
//! import gevent.monkey; gevent.monkey.patch_all()
//! import socket, threading
//!
//! def echo(sock):
//!     try:
//!         while True:
//!             data = sock.recv(1024)
//!             if not data:
//!                 break
//!             sock.sendall(data)
//!     finally:
//!         sock.close()
//!
//! def serve(addr):
//!     sock = socket.socket()
//!     sock.bind(addr); sock.listen(50)
//!     while True:
//!         conn, _ = sock.accept()
//!         threading.Thread(target=echo, args=(conn,)).start()
//!
//! serve(('0.0.0.0', 4000))
//! ```
//!
//! Rust has no run-time patching; the patch is the import lines. The threaded program
//! below (`std::net` + `std::thread::spawn`, one OS thread per client) becomes a
//! one-thread program with a greenlet per client by this diff and nothing else:
//!
//! ```diff
//! -use std::net::{TcpListener, TcpStream};
//! -use std::thread::spawn;
//! +use gevent::hub::net::{TcpListener, TcpStream};
//! +use gevent::hub::spawn;
//! ```
//!
//! To show that literally, the program's text is written once (in the macro
//! `the_threaded_echo_server!`) and compiled twice, under each set of imports.
//!
//! Run: `cargo run --release --example echo_monkey -- [PORT] [--threads]`
//! (default port 4000). Serves until Ctrl-C; try it with `nc localhost 4000`. With
//! `--threads` it runs the unpatched, threaded original instead, for comparison.

/// The slides' threaded echo server, in Rust, as a std user would write it. Its names
/// (`TcpListener`, `TcpStream`, `spawn`) are whatever the module that expands it imports.
macro_rules! the_threaded_echo_server {
    () => {
        use std::io::{Read, Write};

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
            // `sock.close()`: dropping it closes it.
        }

        pub fn serve(addr: (&str, u16)) -> std::io::Result<()> {
            let sock = TcpListener::bind(addr)?;
            loop {
                let (conn, _) = sock.accept()?;
                spawn(move || echo(conn));
            }
        }
    };
}

/// The original: one OS thread per client.
mod threaded {
    use std::net::{TcpListener, TcpStream};
    use std::thread::spawn;

    the_threaded_echo_server!();
}

/// Patched: one greenlet per client, all on this thread's hub.
mod patched {
    use gevent::hub::net::{TcpListener, TcpStream};
    use gevent::hub::spawn;

    the_threaded_echo_server!();
}

fn main() -> std::io::Result<()> {
    let mut port = 4000u16;
    let mut threads = false;
    for a in std::env::args().skip(1) {
        match a.as_str() {
            "--threads" => threads = true,
            p => {
                port = p.parse().unwrap_or_else(|_| {
                    eprintln!("usage: echo_monkey [PORT] [--threads]");
                    std::process::exit(2)
                })
            }
        }
    }
    let how = if threads {
        "a thread per client (std)"
    } else {
        "a greenlet per client, one thread (gevent)"
    };
    eprintln!("echo server on 0.0.0.0:{port}, {how}; Ctrl-C to stop");
    if threads {
        threaded::serve(("0.0.0.0", port))
    } else {
        patched::serve(("0.0.0.0", port))
    }
}
