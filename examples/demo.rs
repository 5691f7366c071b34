//! gevent-rs in one command: the slides' echo benchmark ("1000 clients send messages to
//! an echo server") with the server and every client in one thread, as greenlets.
//!
//! The server is the slides' gevent echo server (`StreamServer` + a handler that
//! `recv`s and `sendall`s); each client is a greenlet that connects, waits until all
//! the others are connected too (so every connection is open at once), then sends its
//! messages one at a time and checks that each echo is exactly what it sent. Payloads
//! vary per client and per message (1 to 1024 bytes), so a reply that went to the
//! wrong connection or a byte out of place is caught.
//!
//! It prints connections, messages, bytes verified, elapsed time, messages/s and peak
//! memory (VmHWM), and exits with status 1 on any mismatch or error.
//!
//! Run: `cargo run --release --example demo -- [--clients N] [--messages M]`
//! (defaults: 1000 clients, 100 messages each). Finishes by itself.

use gevent::hub::net::TcpStream;
use gevent::hub::server::StreamServer;
use gevent::hub::{joinall, spawn, AnyGreenlet, Event, Greenlet};
use std::cell::Cell;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// The slides' handler: `buf = sock.recv(4096); if not buf: return; sock.sendall(buf)`.
fn handler(mut sock: TcpStream, _addr: SocketAddr) {
    let mut buf = [0u8; 4096];
    loop {
        match sock.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if sock.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
        }
    }
}

/// Message `msg` of client `client`: its length and bytes depend on both.
fn payload(client: usize, msg: usize) -> Vec<u8> {
    let len = 1 + (client * 7919 + msg * 104_729) % 1024;
    (0..len)
        .map(|i| (client.wrapping_mul(31) ^ msg.wrapping_mul(131) ^ i.wrapping_mul(7)) as u8)
        .collect()
}

/// What one client did.
#[derive(Default)]
struct Tally {
    messages: u64,
    bytes: u64,
}

/// One client: connect, wait for everyone, then `messages` round trips, each checked.
fn client(
    id: usize,
    addr: SocketAddr,
    messages: usize,
    barrier: (Rc<Cell<usize>>, usize, Event),
) -> Result<Tally, String> {
    let mut sock = TcpStream::connect(addr).map_err(|e| format!("client {id}: connect: {e}"))?;
    let (connected, total, all_connected) = barrier;
    connected.set(connected.get() + 1);
    if connected.get() == total {
        all_connected.set();
    }
    all_connected
        .wait()
        .map_err(|e| format!("client {id}: {e}"))?;
    let mut tally = Tally::default();
    let mut back = Vec::new();
    for m in 0..messages {
        let msg = payload(id, m);
        sock.write_all(&msg)
            .map_err(|e| format!("client {id}, message {m}: send: {e}"))?;
        back.resize(msg.len(), 0);
        sock.read_exact(&mut back)
            .map_err(|e| format!("client {id}, message {m}: recv: {e}"))?;
        if back != msg {
            let at = back.iter().zip(&msg).position(|(a, b)| a != b).unwrap_or(0);
            return Err(format!(
                "client {id}, message {m}: the echo differs at byte {at} of {}",
                msg.len()
            ));
        }
        tally.messages += 1;
        tally.bytes += msg.len() as u64;
    }
    Ok(tally)
}

/// Peak resident memory of this process (VmHWM), as /proc/self/status prints it.
fn peak_memory() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:").map(|v| v.trim().to_owned()))
        })
        .unwrap_or_else(|| "unknown".to_owned())
}

fn arg(args: &[String], name: &str, default: usize) -> usize {
    match args.iter().position(|a| a == name) {
        Some(i) => args
            .get(i + 1)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| {
                eprintln!("{name} needs a number");
                std::process::exit(2)
            }),
        None => default,
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let clients = arg(&args, "--clients", 1000).max(1);
    let messages = arg(&args, "--messages", 100);
    // Each connection uses two fds here: the client's and the server's.
    let needed = 2 * clients as u64 + 64;
    match gevent::hub::server::raise_fd_limit(needed) {
        Ok(n) if n >= needed => {}
        Ok(n) => eprintln!("note: {clients} clients need {needed} open files; the limit is {n}"),
        Err(e) => eprintln!("note: cannot raise the open-file limit: {e}"),
    }

    let server = StreamServer::new("127.0.0.1:0", handler).unwrap_or_else(|e| {
        eprintln!("cannot start the echo server: {e}");
        std::process::exit(1)
    });
    server.start().expect("start the server");
    let addr = server.server_addr();
    println!(
        "echo server on {addr}; {clients} client greenlets x {messages} messages, one thread (libev backend: {})",
        gevent::hub::get_hub().get_loop().backend_name()
    );

    let t0 = Instant::now();
    let connected = Rc::new(Cell::new(0usize));
    let all_connected = Event::new();
    let greenlets: Vec<Greenlet<Result<Tally, String>>> = (0..clients)
        .map(|id| {
            let barrier = (connected.clone(), clients, all_connected.clone());
            spawn(move || client(id, addr, messages, barrier))
        })
        .collect();
    let refs: Vec<&dyn AnyGreenlet> = greenlets.iter().map(|g| g as _).collect();
    if let Err(e) = joinall(&refs, None, false) {
        eprintln!("waiting for the clients failed: {e}");
        std::process::exit(1);
    }
    let elapsed = t0.elapsed();
    let open_at_once = connected.get();

    let (mut total, mut errors) = (Tally::default(), Vec::new());
    for g in greenlets {
        match g.join() {
            Ok(Ok(t)) => {
                total.messages += t.messages;
                total.bytes += t.bytes;
            }
            Ok(Err(e)) => errors.push(e),
            Err(e) => errors.push(format!("a client greenlet failed: {e}")),
        }
    }
    let accepted = server.accepted_count();
    if let Err(e) = server.stop_timeout(Duration::from_secs(5)) {
        errors.push(format!("stopping the server: {e}"));
    }

    let secs = elapsed.as_secs_f64();
    println!("connections:  {accepted} accepted, {open_at_once} open at once");
    println!(
        "messages:     {} echoed and verified ({} expected)",
        total.messages,
        clients * messages
    );
    println!(
        "bytes:        {} sent, echoed and compared byte for byte",
        total.bytes
    );
    println!("elapsed:      {secs:.3} s");
    println!(
        "throughput:   {:.0} messages/s ({:.1} MiB/s each way)",
        total.messages as f64 / secs,
        total.bytes as f64 / secs / (1024.0 * 1024.0)
    );
    println!("peak memory:  {} (VmHWM)", peak_memory());

    if total.messages != (clients * messages) as u64 {
        errors.push(format!(
            "{} messages verified, {} expected",
            total.messages,
            clients * messages
        ));
    }
    if errors.is_empty() {
        println!("OK: every byte came back as sent");
    } else {
        for e in errors.iter().take(10) {
            eprintln!("error: {e}");
        }
        eprintln!("FAILED: {} error(s)", errors.len());
        std::process::exit(1);
    }
}
