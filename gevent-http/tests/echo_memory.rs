//! A body far larger than memory should hold passes through the echo in bounded
//! memory: the server streams it, it does not gather it. (Its own binary: the
//! process's peak resident size is the measure.)

mod common;

use common::{on_thread, pattern_byte, routes, serve, Fnv};
use gevent_http::Config;
use gevent_hub::net::TcpStream;
use std::io::{Read, Write};

fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/self/status")
}

#[test]
fn a_64_mib_echo_needs_far_less_than_64_mib() {
    const LEN: u64 = 64 << 20;
    on_thread(|| {
        let s = serve(Config::default(), routes);
        let before = peak_rss_kib();
        let sock = TcpStream::connect(s.server_addr()).unwrap();
        let writer_sock = sock.try_clone().unwrap();
        // The client sends and reads at once, as curl does (the echo streams, so a
        // client that only reads after sending would fill both ways and stall).
        let writer = gevent_hub::spawn(move || {
            let mut w = &writer_sock;
            w.write_all(format!("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: {LEN}\r\nConnection: close\r\n\r\n").as_bytes())?;
            let mut sent = Fnv::new();
            let mut chunk = vec![0u8; 64 * 1024];
            let mut i = 0u64;
            while i < LEN {
                for b in chunk.iter_mut() {
                    *b = pattern_byte(i);
                    i += 1;
                }
                sent.update(&chunk);
                w.write_all(&chunk)?;
            }
            Ok::<u64, std::io::Error>(sent.0)
        });
        let mut r = &sock;
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            assert_eq!(r.read(&mut byte).unwrap(), 1, "EOF in the head");
            head.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&head);
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        assert!(
            head.contains(&format!("content-length: {LEN}\r\n")),
            "{head}"
        );
        let mut got = Fnv::new();
        let mut total = 0u64;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = r.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            got.update(&buf[..n]);
            total += n as u64;
        }
        let sent = writer.join().unwrap().unwrap();
        assert_eq!(total, LEN);
        assert_eq!(got.0, sent, "the echo differs from what was sent");
        let grown = peak_rss_kib().saturating_sub(before);
        assert!(
            grown < 16 * 1024,
            "the peak resident size grew by {grown} KiB for a 64 MiB echo"
        );
        s.stop().unwrap();
    });
}
