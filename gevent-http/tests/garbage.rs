//! Random input, the way a hostile or broken client sends it: mutated and truncated
//! requests, and valid pipelines cut at random points. The server must answer or
//! close every connection, never panic, never hang, and never lose its place in a
//! stream of requests. (Its own binary: it counts panics with a process-wide hook.)

mod common;

use common::{on_thread, serve, Client};
use gevent_http::{Body, Config, Request, Response};
use gevent_hub::net::TcpStream;
use std::io::{Read, Write};
use std::net::Shutdown;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

static PANICS: AtomicUsize = AtomicUsize::new(0);

/// A small deterministic generator (xorshift64*), so that a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Answers with the method, path and body it read, so that the tests can tell which
/// request a response belongs to.
fn echo(mut req: Request<Body>) -> Response<String> {
    let mut body = Vec::new();
    let read = req.body_mut().read_to_end(&mut body);
    let body = match read {
        Ok(_) => String::from_utf8_lossy(&body).into_owned(),
        Err(e) => format!("<{e}>"),
    };
    Response::new(format!("{} {} [{}]", req.method(), req.uri(), body))
}

/// A valid request, chosen by `rng`, and the answer `echo` gives it.
fn valid(rng: &mut Rng, i: usize) -> (Vec<u8>, String) {
    let path = format!("/r{i}?q={}", rng.below(1000));
    let body: String = (0..rng.below(40))
        .map(|k| (b'a' + (k % 26) as u8) as char)
        .collect();
    let raw = match rng.below(3) {
        0 => format!("GET {path} HTTP/1.1\r\nHost: t\r\nX-N: {i}\r\n\r\n").into_bytes(),
        1 => format!(
            "POST {path} HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes(),
        _ => {
            let mut s =
                format!("POST {path} HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n");
            let mut rest = body.as_str();
            while !rest.is_empty() {
                let n = (1 + rng.below(7) as usize).min(rest.len());
                s.push_str(&format!("{n:x};ext={n}\r\n{}\r\n", &rest[..n]));
                rest = &rest[n..];
            }
            s.push_str("0\r\nX-Trailer: t\r\n\r\n");
            s.into_bytes()
        }
    };
    let method = if raw.starts_with(b"GET") {
        "GET"
    } else {
        "POST"
    };
    let body = if method == "GET" { String::new() } else { body };
    (raw, format!("{method} {path} [{body}]"))
}

/// Writes `raw` in pieces of random sizes.
fn send_in_pieces(sock: &mut TcpStream, raw: &[u8], rng: &mut Rng) -> std::io::Result<()> {
    let mut at = 0;
    while at < raw.len() {
        let n = (1 + rng.below(64) as usize).min(raw.len() - at);
        sock.write_all(&raw[at..at + n])?;
        at += n;
        // Until the hub has nothing else to do (gevent's `idle`): the server mostly
        // reads this piece before the next is written, so its reads end at the
        // pieces' random cuts instead of taking whole batches of them.
        gevent_hub::idle().map_err(std::io::Error::other)?;
    }
    Ok(())
}

#[test]
fn mutated_and_truncated_requests_are_answered_or_closed_and_never_crash_the_server() {
    std::panic::set_hook(Box::new(|info| {
        PANICS.fetch_add(1, Ordering::SeqCst);
        eprintln!("panic: {info}");
    }));
    on_thread(|| {
        let config = Config {
            header_read_timeout: Some(Duration::from_secs(5)),
            max_body_bytes: Some(4096),
            ..Config::default()
        };
        let s = serve(config, echo);
        let addr = s.server_addr();
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut statuses = std::collections::BTreeMap::new();
        for i in 0..400 {
            let (mut raw, _) = valid(&mut rng, i);
            // Damage it: flip, insert or delete bytes, or cut it short.
            for _ in 0..1 + rng.below(4) {
                if raw.is_empty() {
                    break;
                }
                let at = rng.below(raw.len() as u64) as usize;
                const NASTY: &[u8] = b"\r\n :;\x00\x7f\xff\t0fF-+,\"";
                match rng.below(4) {
                    0 => raw[at] = NASTY[rng.below(NASTY.len() as u64) as usize],
                    1 => raw.insert(at, NASTY[rng.below(NASTY.len() as u64) as usize]),
                    2 => {
                        raw.remove(at);
                    }
                    _ => raw.truncate(at),
                }
            }
            let mut sock = TcpStream::connect(addr).unwrap();
            sock.set_read_timeout(Some(Duration::from_secs(20)))
                .unwrap();
            if send_in_pieces(&mut sock, &raw, &mut rng).is_err() {
                continue; // the server refused and closed mid-send: allowed
            }
            // Nothing more will come: the server must answer what it has, or close.
            let _ = sock.shutdown(Shutdown::Write);
            let mut answer = Vec::new();
            match sock.read_to_end(&mut answer) {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
                Err(e) => panic!(
                    "request {i} {:?}: {e} (the server neither answered nor closed)",
                    String::from_utf8_lossy(&raw)
                ),
            }
            let status = if answer.is_empty() {
                "closed".to_owned()
            } else {
                let text = String::from_utf8_lossy(&answer);
                assert!(
                    text.starts_with("HTTP/1.1 ")
                        && text
                            .as_bytes()
                            .get(9..12)
                            .is_some_and(|c| c.iter().all(u8::is_ascii_digit)),
                    "request {i}: not an HTTP answer: {text:?}"
                );
                text[9..12].to_owned()
            };
            *statuses.entry(status).or_insert(0u32) += 1;
        }
        // The mix is what random damage gives: refusals, answers, and closes.
        assert!(statuses.get("400").is_some_and(|&n| n > 0), "{statuses:?}");
        assert!(statuses.get("200").is_some_and(|&n| n > 0), "{statuses:?}");
        // And the server still serves.
        let mut c = Client::connect(addr);
        c.send(b"GET /after HTTP/1.1\r\nHost: t\r\n\r\n");
        assert_eq!(c.response().unwrap().text(), "GET /after []");
        s.stop().unwrap();
        eprintln!("answers to 400 damaged requests: {statuses:?}");
    });
    assert_eq!(PANICS.load(Ordering::SeqCst), 0, "the server panicked");
}

#[test]
fn valid_pipelines_cut_at_random_points_are_answered_whole_and_in_order() {
    on_thread(|| {
        let s = serve(Config::default(), echo);
        let mut rng = Rng(0x0123_4567_89ab_cdef);
        for round in 0..20 {
            let (raws, wants): (Vec<Vec<u8>>, Vec<String>) =
                (0..25).map(|i| valid(&mut rng, round * 100 + i)).unzip();
            let all = raws.concat();
            let mut c = Client::connect(s.server_addr());
            let writer_sock = c.sock.try_clone().unwrap();
            let seed = rng.next();
            // Sent from another greenlet while this one reads, as a real pipelining
            // client does (the answers could otherwise fill both ways).
            let writer = gevent_hub::spawn(move || {
                let mut sock = writer_sock;
                send_in_pieces(&mut sock, &all, &mut Rng(seed | 1))
            });
            for (i, want) in wants.iter().enumerate() {
                let r = c
                    .response()
                    .unwrap_or_else(|| panic!("round {round}: closed before answer {i}"));
                assert_eq!(&r.text(), want, "round {round}, answer {i}");
            }
            writer.join().unwrap().unwrap();
        }
        s.stop().unwrap();
    });
}
