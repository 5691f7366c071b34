//! The PyCon 2016 talk's `download_photos`, blocking one after another and then
//! concurrently with greenlets, against a local HTTP server the program starts itself.
//!
//! ```python
//! # As the talk tells it: first one user at a time ...
//! for user in users:
//!     download_photos(user)          # a blocking HTTP request each
//!
//! # ... then with gevent: the same function, one greenlet per user
//! from gevent import monkey; monkey.patch_all()
//! jobs = [gevent.spawn(download_photos, user) for user in users]
//! gevent.joinall(jobs)
//! ```
//!
//! `download_photos` is written in plain blocking style over `TcpStream` (a `BufReader`
//! for the response head, `read_exact` for the body) and speaks HTTP/1.1: it sends a
//! request, reads the status line and headers, then exactly `Content-Length` bytes,
//! and checks their size and content. The server is a `StreamServer` serving generated
//! "photos" (`GET /photo/N`, 16 KiB to 1 MiB, with `Content-Length`), each after a
//! delay that stands in for a far-away server's latency. Run sequentially, the delays
//! add up; run concurrently, they overlap.
//!
//! Run: `cargo run --release --example download -- [--count N] [--latency-ms MS] [--port PORT]`
//! (defaults: 50 photos, 100 ms, an ephemeral port). Finishes by itself; exit status 1
//! if any download fails or does not verify.

use gevent::hub::net::TcpStream;
use gevent::hub::server::StreamServer;
use gevent::hub::{joinall, sleep, spawn, AnyGreenlet, Greenlet};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Size of photo `n`: 16 KiB to 1 MiB.
fn photo_size(n: usize) -> usize {
    16 * 1024 + (n * 48_271) % (1024 * 1024 - 16 * 1024)
}

/// Byte `i` of photo `n`.
fn photo_byte(n: usize, i: usize) -> u8 {
    (i.wrapping_mul(2_654_435_761) >> 7 ^ n) as u8
}

/// The server's side: parse request heads, answer each with a generated body after
/// `latency`. Keeps the connection open for further requests unless asked to close.
fn serve_photos(sock: TcpStream, latency: Duration) -> io::Result<()> {
    let mut reader = BufReader::new(&sock);
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line)? == 0 {
            return Ok(()); // the client closed the connection
        }
        let mut close = false;
        loop {
            let mut header = String::new();
            reader.read_line(&mut header)?;
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            close |= header.eq_ignore_ascii_case("connection: close");
        }
        let path = request_line.split_whitespace().nth(1).unwrap_or("");
        let photo = path
            .strip_prefix("/photo/")
            .and_then(|n| n.parse::<usize>().ok());
        sleep(latency); // a far-away server thinking
        let mut out = &sock;
        match photo {
            Some(n) => {
                let body: Vec<u8> = (0..photo_size(n)).map(|i| photo_byte(n, i)).collect();
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: image/x-generated\r\nContent-Length: {}\r\n\r\n",
                    body.len()
                );
                out.write_all(head.as_bytes())?;
                out.write_all(&body)?;
            }
            None => {
                out.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")?;
            }
        }
        if close {
            return Ok(());
        }
    }
}

/// The talk's `download_photos`, for one user: a blocking HTTP/1.1 GET, its response
/// head parsed, its body read and checked. Returns the body's size.
fn download_photos(server: SocketAddr, n: usize) -> io::Result<usize> {
    let sock = TcpStream::connect(server)?;
    let request = format!("GET /photo/{n} HTTP/1.1\r\nHost: {server}\r\nConnection: close\r\n\r\n");
    (&sock).write_all(request.as_bytes())?;
    let mut reader = BufReader::new(&sock);
    let mut status = String::new();
    reader.read_line(&mut status)?;
    if !status.starts_with("HTTP/1.1 200") {
        return Err(io::Error::other(format!(
            "photo {n}: unexpected status {:?}",
            status.trim_end()
        )));
    }
    let mut length = None;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse::<usize>().ok();
            }
        }
    }
    let length = length.ok_or_else(|| io::Error::other("no Content-Length"))?;
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body)?;
    if length != photo_size(n) {
        return Err(io::Error::other(format!(
            "photo {n}: {length} bytes, expected {}",
            photo_size(n)
        )));
    }
    if let Some(i) = (0..length).find(|&i| body[i] != photo_byte(n, i)) {
        return Err(io::Error::other(format!("photo {n}: byte {i} differs")));
    }
    Ok(length)
}

fn arg(args: &[String], name: &str, default: u64) -> u64 {
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

fn mib(bytes: usize) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let count = arg(&args, "--count", 50) as usize;
    let latency = Duration::from_millis(arg(&args, "--latency-ms", 100));
    let port = arg(&args, "--port", 0) as u16;

    let server = StreamServer::new(("127.0.0.1", port), move |sock, _| {
        let _ = serve_photos(sock, latency);
    })
    .unwrap_or_else(|e| {
        eprintln!("cannot start the photo server on port {port}: {e}");
        std::process::exit(1)
    });
    server.start().expect("start the photo server");
    let addr = server.server_addr();
    println!("photo server on http://{addr}/photo/N, {latency:?} latency per request");
    let mut failures = 0;

    // One user after another: each request waits for the one before.
    let t0 = Instant::now();
    let mut total = 0;
    for n in 0..count {
        match download_photos(addr, n) {
            Ok(size) => total += size,
            Err(e) => {
                eprintln!("sequential: {e}");
                failures += 1;
            }
        }
    }
    let sequential = t0.elapsed();
    println!(
        "sequential: {count} photos, {:.1} MiB verified in {:.3} s",
        mib(total),
        sequential.as_secs_f64()
    );

    // With greenlets: one per user, all waiting on the network at once.
    let t0 = Instant::now();
    let jobs: Vec<Greenlet<(io::Result<usize>, Duration)>> = (0..count)
        .map(|n| {
            spawn(move || {
                let t = Instant::now();
                (download_photos(addr, n), t.elapsed())
            })
        })
        .collect();
    let refs: Vec<&dyn AnyGreenlet> = jobs.iter().map(|g| g as _).collect();
    joinall(&refs, None, false).expect("wait for the downloads");
    let concurrent = t0.elapsed();
    let mut total = 0;
    let mut slowest = Duration::ZERO;
    for job in jobs {
        match job.join() {
            Ok((Ok(size), took)) => {
                total += size;
                slowest = slowest.max(took);
            }
            Ok((Err(e), _)) => {
                eprintln!("concurrent: {e}");
                failures += 1;
            }
            Err(e) => {
                eprintln!("concurrent: a download greenlet failed: {e}");
                failures += 1;
            }
        }
    }
    println!(
        "concurrent: {count} photos, {:.1} MiB verified in {:.3} s (slowest single download {:.3} s)",
        mib(total),
        concurrent.as_secs_f64(),
        slowest.as_secs_f64()
    );
    println!(
        "speed-up:   {:.1}x, in one thread",
        sequential.as_secs_f64() / concurrent.as_secs_f64()
    );
    let _ = server.stop_timeout(Duration::from_secs(1));
    if failures > 0 {
        eprintln!("FAILED: {failures} download(s) failed");
        std::process::exit(1);
    }
}
