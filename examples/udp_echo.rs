//! A UDP echo server on `DatagramServer`, and a client for it, after gevent's
//! `examples/udp_server.py` and `udp_client.py`:
//!
//! ```python
//! from gevent.server import DatagramServer
//!
//! class EchoServer(DatagramServer):
//!     def handle(self, data, address):
//!         self.socket.sendto(data, address)
//!
//! EchoServer(':9000').serve_forever()
//! ```
//!
//! The server runs its handler in a new greenlet per datagram. The client sends
//! numbered datagrams of varying sizes one at a time, waits for each echo with a read
//! timeout (UDP may lose datagrams), checks it, and prints round-trip times.
//!
//! Run:
//! - server: `cargo run --example udp_echo -- [PORT]` (default 9000; until Ctrl-C);
//! - client: `cargo run --example udp_echo -- --client [HOST:PORT] [COUNT]`
//!   (default `127.0.0.1:9000`, 10 datagrams); exits by itself, status 1 if any echo
//!   was lost or differs;
//! - both in one process: `cargo run --example udp_echo -- --self-test`.

use gevent::hub::net::UdpSocket;
use gevent::hub::server::{signal_handler, DatagramServer};
use gevent::hub::spawn;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

fn server(addr: &str) -> io::Result<DatagramServer> {
    DatagramServer::new(addr, |data, peer, socket: &UdpSocket| {
        if let Err(e) = socket.send_to(&data, peer) {
            eprintln!("{peer}: {e}");
        }
    })
}

/// Datagram `i`: its number, then filler whose length and bytes depend on `i`.
fn datagram(i: u32) -> Vec<u8> {
    let mut d = i.to_be_bytes().to_vec();
    d.extend((0..(i as usize * 97) % 1400).map(|b| (b as u32 ^ i) as u8));
    d
}

/// Sends `count` datagrams to `target`, one at a time; returns how many came back
/// intact.
fn client(target: SocketAddr, count: u32) -> io::Result<u32> {
    let bind = if target.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    };
    let sock = UdpSocket::bind(bind)?;
    sock.connect(target)?;
    sock.set_read_timeout(Some(Duration::from_secs(1)))?;
    let mut buf = [0u8; 2048];
    let (mut ok, mut rtts) = (0, Vec::new());
    for i in 0..count {
        let d = datagram(i);
        let t = Instant::now();
        sock.send(&d)?;
        loop {
            match sock.recv(&mut buf) {
                // A late echo of an earlier datagram: skip it.
                Ok(n) if n >= 4 && buf[..4] != d[..4] => continue,
                Ok(n) if buf[..n] == d[..] => {
                    rtts.push(t.elapsed());
                    ok += 1;
                }
                Ok(n) => eprintln!("datagram {i}: the echo differs ({n} bytes)"),
                Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                    eprintln!("datagram {i}: no echo within 1 s")
                }
                Err(e) => return Err(e),
            }
            break;
        }
    }
    if let (Some(min), Some(max)) = (rtts.iter().min(), rtts.iter().max()) {
        let avg = rtts.iter().sum::<Duration>() / rtts.len() as u32;
        println!(
            "{ok}/{count} datagrams echoed intact by {target}; round trip min {:.0} us, avg {:.0} us, max {:.0} us",
            min.as_secs_f64() * 1e6,
            avg.as_secs_f64() * 1e6,
            max.as_secs_f64() * 1e6
        );
    } else {
        println!("0/{count} datagrams echoed by {target}");
    }
    Ok(ok)
}

fn main() -> io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let count_arg = |i: usize| -> u32 { args.get(i).and_then(|c| c.parse().ok()).unwrap_or(10) };
    match args.first().map(String::as_str) {
        Some("--client") => {
            let target = args.get(1).map_or("127.0.0.1:9000", String::as_str);
            let target: SocketAddr = target.parse().map_err(|_| {
                io::Error::new(io::ErrorKind::InvalidInput, "expected HOST:PORT, numeric")
            })?;
            let count = count_arg(2);
            if client(target, count)? != count {
                std::process::exit(1);
            }
            Ok(())
        }
        Some("--self-test") => {
            let s = server("127.0.0.1:0")?;
            s.start()?;
            let addr = s.server_addr().expect("the server is bound");
            println!("self-test: echo server on {addr}");
            let count = count_arg(1).max(50);
            let c = spawn(move || client(addr, count));
            let ok = c.join().map_err(|e| io::Error::other(e.to_string()))??;
            s.stop()?;
            if ok != count {
                std::process::exit(1);
            }
            Ok(())
        }
        port => {
            let port: u16 = port.map_or(Ok(9000), str::parse).map_err(|_| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "usage: udp_echo [PORT] | --client [HOST:PORT] [COUNT] | --self-test",
                )
            })?;
            let s = server(&format!("0.0.0.0:{port}"))?;
            let s2 = s.clone();
            let _ctrl_c = signal_handler(libc::SIGINT, move || drop(s2.stop()));
            eprintln!("receiving datagrams on :{port}; Ctrl-C to stop");
            s.serve_forever()
        }
    }
}
