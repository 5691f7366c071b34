//! The `ureq` HTTP client, unmodified, made cooperative by `gevent_monkey::patch_all()`:
//! 20 greenlets GET from an HTTP server that runs on the same hub and thread, all at
//! once.
//!
//! ureq knows nothing of gevent: it connects a `std::net::TcpStream`, writes its
//! request and reads the response with std's blocking calls. The server is a
//! `gevent_hub::server::StreamServer` whose handler answers no request before all 20
//! have arrived, so the test can pass only if the 20 `ureq` calls are in flight at
//! the same time on one thread: each must park its greenlet in its read of the
//! response, letting the server accept and read the others. Each response's body
//! names the request's path, so each client checks it got its own answer.
//! Unpatched, the first client's read blocks the OS thread: the server's greenlets
//! never run (they never even accept), the thread hangs for good, and the watchdog
//! fails the test.

mod common;

use gevent_hub::server::StreamServer;
use gevent_hub::{spawn, Event};
use std::cell::Cell;
use std::io::{Read, Write};
use std::rc::Rc;

/// Reads an HTTP/1.1 request head (up to the blank line) and returns its path.
fn read_request_path(sock: &mut impl Read) -> String {
    const MAX_HEAD: usize = 16 * 1024;
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        assert!(head.len() < MAX_HEAD, "request head over {MAX_HEAD} bytes");
        let n = sock.read(&mut buf).expect("read the request");
        assert!(n > 0, "client closed before the end of its request head");
        head.extend_from_slice(&buf[..n]);
    }
    let head = String::from_utf8(head).expect("request head is UTF-8");
    let request_line = head.lines().next().unwrap_or_default();
    let mut parts = request_line.split_whitespace();
    assert_eq!(parts.next(), Some("GET"), "request line {request_line:?}");
    parts
        .next()
        .unwrap_or_else(|| panic!("no path in request line {request_line:?}"))
        .to_string()
}

/// 20 greenlets each GET `/client/<i>` with `ureq::get(..).call()`; the server's
/// handler waits until all 20 requests have arrived before answering any, and answers
/// each with a body naming its path.
#[test]
fn twenty_ureq_gets_in_flight_at_once_on_one_thread() {
    const N: usize = 20;
    common::patched(|| {
        let arrived = Rc::new(Cell::new(0usize));
        let all_arrived = Event::new();
        let server = StreamServer::new("127.0.0.1:0", {
            let arrived = arrived.clone();
            let all_arrived = all_arrived.clone();
            move |mut sock, _peer| {
                let path = read_request_path(&mut sock);
                arrived.set(arrived.get() + 1);
                if arrived.get() == N {
                    all_arrived.set();
                }
                // Answer nothing until every client's request is in: possible only if
                // every client is parked in its ureq call, all on this thread.
                all_arrived.wait().expect("wait for all the requests");
                let body = format!("you asked for {path}");
                let response = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\
                     Connection: close\r\n\r\n{body}",
                    body.len()
                );
                sock.write_all(response.as_bytes())
                    .expect("write the response");
            }
        })
        .expect("bind the HTTP server");
        server.start().expect("start the HTTP server");
        let addr = server.server_addr();

        let clients: Vec<_> = (0..N)
            .map(|i| {
                spawn(move || {
                    let url = format!("http://{addr}/client/{i}");
                    let mut response = ureq::get(&url)
                        .call()
                        .unwrap_or_else(|e| panic!("client {i}: GET {url}: {e}"));
                    assert_eq!(response.status().as_u16(), 200, "client {i}: status");
                    response
                        .body_mut()
                        .read_to_string()
                        .unwrap_or_else(|e| panic!("client {i}: read the body: {e}"))
                })
            })
            .collect();

        for (i, client) in clients.into_iter().enumerate() {
            let body = client
                .join()
                .unwrap_or_else(|e| panic!("client {i} failed: {e:?}"));
            assert_eq!(
                body,
                format!("you asked for /client/{i}"),
                "client {i} got its own answer"
            );
        }
        assert_eq!(arrived.get(), N, "the server saw each request once");
        assert_eq!(server.accepted_count(), N as u64, "one connection per GET");
        let report = server.stop().expect("stop the HTTP server");
        assert!(
            report.resisted.is_empty(),
            "handlers still running: {report:?}"
        );
    });
}
