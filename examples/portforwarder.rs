//! A TCP port forwarder, after gevent's `examples/portforwarder.py`: accept on a local
//! port, connect to a target, and pump bytes both ways, one greenlet per direction.
//!
//! ```python
//! class PortForwarder(StreamServer):
//!     def handle(self, source, address):
//!         dest = create_connection(self.dest)
//!         forwarders = (gevent.spawn(forward, source, dest),
//!                       gevent.spawn(forward, dest, source))
//!         gevent.joinall(forwarders)
//!
//! def forward(source, dest):
//!     try:
//!         while True:
//!             data = source.recv(1024)
//!             if not data:
//!                 break
//!             dest.sendall(data)
//!     finally:
//!         source.close()
//!         dest.close()
//! ```
//!
//! One difference: at EOF in one direction this passes the half-close on
//! (`shutdown(Write)`) and lets the other direction finish, where the Python closes
//! both sockets at once. An error in either direction closes both, which wakes the
//! other greenlet (blocked reading) with an error.
//!
//! Each socket is read by one greenlet and written by the other: `Read`/`Write` are
//! implemented for `&TcpStream`, and `try_clone` gives each greenlet its handle.
//!
//! Run: `cargo run --example portforwarder -- LISTEN_PORT TARGET_HOST:PORT`
//! (e.g. `8080 example.com:80`); serves until Ctrl-C. Or
//! `cargo run --example portforwarder -- --self-test`, which starts a local echo
//! target, forwards to it, pushes data through from a few clients, checks it, and exits.

use gevent::hub::net::TcpStream;
use gevent::hub::server::StreamServer;
use gevent::hub::{joinall, spawn, AnyGreenlet, Greenlet};
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::rc::Rc;

/// Copies `from` to `to` until EOF (then half-closes `to`) or an error (then closes
/// both, so that the other direction's greenlet is woken too). Returns the bytes copied.
fn forward(mut from: &TcpStream, mut to: &TcpStream) -> io::Result<u64> {
    let mut buf = [0u8; 16 * 1024];
    let mut copied = 0;
    let r = loop {
        match from.read(&mut buf) {
            Ok(0) => break to.shutdown(Shutdown::Write).map(|_| copied),
            Ok(n) => match to.write_all(&buf[..n]) {
                Ok(()) => copied += n as u64,
                Err(e) => break Err(e),
            },
            Err(e) => break Err(e),
        }
    };
    if r.is_err() {
        from.close();
        to.close();
    }
    r
}

/// One forwarded connection: connect to `target`, then one greenlet per direction.
fn handle(source: TcpStream, peer: SocketAddr, target: &str) {
    let dest = match TcpStream::connect(target) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("{peer}: failed to connect to {target}: {e}");
            return;
        }
    };
    eprintln!("{peer}: accepted, forwarding to {target}");
    let (s2, d2) = (
        source.try_clone().expect("clone"),
        dest.try_clone().expect("clone"),
    );
    let upstream = spawn(move || forward(&s2, &d2));
    // The handler's own greenlet pumps the other direction.
    let down = forward(&dest, &source);
    let up = upstream.join();
    match (up, down) {
        (Ok(Ok(up)), Ok(down)) => eprintln!("{peer}: closed, {up} bytes up, {down} bytes down"),
        (up, down) => eprintln!("{peer}: ended with an error: up {up:?}, down {down:?}"),
    }
}

fn echo(mut sock: TcpStream, _peer: SocketAddr) {
    let mut buf = [0u8; 4096];
    while let Ok(n @ 1..) = sock.read(&mut buf) {
        if sock.write_all(&buf[..n]).is_err() {
            return;
        }
    }
}

/// Starts an echo target and a forwarder to it, sends data from a few clients through
/// the forwarder, and checks what comes back.
fn self_test() -> io::Result<()> {
    const CLIENTS: usize = 8;
    const BYTES: usize = 256 * 1024;
    let target = StreamServer::new("127.0.0.1:0", echo)?;
    target.start()?;
    let target_addr = target.server_addr().to_string();
    let forwarder = StreamServer::new("127.0.0.1:0", move |s, p| handle(s, p, &target_addr))?;
    forwarder.start()?;
    let via = forwarder.server_addr();
    println!(
        "self-test: {CLIENTS} clients -> forwarder {via} -> echo target {}",
        target.server_addr()
    );

    let clients: Vec<Greenlet<io::Result<bool>>> = (0..CLIENTS)
        .map(|c| {
            spawn(move || {
                let data: Rc<Vec<u8>> =
                    Rc::new((0..BYTES).map(|i| (i * 7 + c * 13) as u8).collect());
                let sock = TcpStream::connect(via)?;
                // Write and read at once: the echo comes back while we still send.
                let (w, d) = (sock.try_clone()?, data.clone());
                let writer = spawn(move || {
                    (&w).write_all(&d)?;
                    w.shutdown(Shutdown::Write)
                });
                let mut back = Vec::with_capacity(BYTES);
                (&sock).read_to_end(&mut back)?;
                writer
                    .join()
                    .map_err(|e| io::Error::other(e.to_string()))??;
                Ok(back == *data)
            })
        })
        .collect();
    let refs: Vec<&dyn AnyGreenlet> = clients.iter().map(|g| g as _).collect();
    joinall(&refs, None, false).map_err(io::Error::from)?;
    let mut ok = 0;
    for (i, c) in clients.into_iter().enumerate() {
        match c.join() {
            Ok(Ok(true)) => ok += 1,
            Ok(Ok(false)) => eprintln!("client {i}: the echo differs"),
            Ok(Err(e)) => eprintln!("client {i}: {e}"),
            Err(e) => eprintln!("client {i}: {e}"),
        }
    }
    forwarder.stop()?;
    target.stop()?;
    println!(
        "self-test: {ok}/{CLIENTS} clients got their {} KiB back through the forwarder",
        BYTES / 1024
    );
    if ok == CLIENTS {
        Ok(())
    } else {
        Err(io::Error::other("some clients failed"))
    }
}

fn main() -> io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [flag] if flag == "--self-test" => self_test(),
        [port, target] => {
            let port: u16 = port.parse().map_err(|_| {
                io::Error::new(io::ErrorKind::InvalidInput, "LISTEN_PORT must be a number")
            })?;
            let target = target.clone();
            let server = StreamServer::new(("0.0.0.0", port), move |s, p| handle(s, p, &target))?;
            eprintln!(
                "forwarding {} -> {}; Ctrl-C to stop",
                server.server_addr(),
                args[1]
            );
            server.serve_forever()
        }
        _ => {
            eprintln!("usage: portforwarder LISTEN_PORT TARGET_HOST:PORT | --self-test");
            std::process::exit(2);
        }
    }
}
