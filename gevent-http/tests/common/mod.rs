//! What the HTTP tests share: a watchdog, a server on a free port, and a client that
//! reads responses off a raw connection (so that the tests see the bytes on the wire).

#![allow(dead_code)] // each test binary uses its own part

use gevent_http::{Config, Handler, Server};
use gevent_hub::net::TcpStream;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::mpsc;
use std::time::Duration;

/// How long a test body may take before it counts as hung.
pub const WATCHDOG: Duration = Duration::from_secs(60);

/// Runs `body` on a thread of its own (its own hub) and returns what it returned;
/// panics with the body's panic, or if it did not finish within [`WATCHDOG`].
pub fn on_thread<T: Send + 'static>(body: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    let h = std::thread::spawn(move || {
        let r = body();
        let _ = tx.send(());
        r
    });
    match rx.recv_timeout(WATCHDOG) {
        Ok(()) => h.join().expect("the test body panicked"),
        Err(mpsc::RecvTimeoutError::Disconnected) => match h.join() {
            Ok(_) => unreachable!("the body returned without reporting"),
            Err(p) => std::panic::resume_unwind(p),
        },
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("the test body hung for {WATCHDOG:?}"),
    }
}

/// A started server on a free loopback port.
pub fn serve(config: Config, handler: impl Handler) -> Server {
    let s = Server::with_config("127.0.0.1:0", config, handler).expect("bind");
    s.start().expect("start");
    s
}

/// A response as read off the wire.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A client connection that reads one response at a time.
pub struct Client {
    pub sock: TcpStream,
    buf: Vec<u8>,
    /// The request method of each response to come (a HEAD's has no body).
    pub head_next: bool,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        Client {
            sock: TcpStream::connect(addr).expect("connect"),
            buf: Vec::new(),
            head_next: false,
        }
    }

    pub fn send(&mut self, raw: &[u8]) {
        self.sock.write_all(raw).expect("send");
    }

    /// Reads more; false at EOF (or a reset).
    fn more(&mut self) -> bool {
        let mut chunk = [0u8; 65536];
        match self.sock.read(&mut chunk) {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
        }
    }

    /// The next response, or `None` if the server closed the connection first.
    pub fn response(&mut self) -> Option<Resp> {
        let (status, headers, len) = loop {
            let mut slots = [httparse::EMPTY_HEADER; 64];
            let mut r = httparse::Response::new(&mut slots);
            match r.parse(&self.buf).expect("a well-formed response head") {
                httparse::Status::Complete(n) => {
                    let headers: Vec<(String, String)> = r
                        .headers
                        .iter()
                        .map(|h| {
                            (
                                h.name.to_ascii_lowercase(),
                                String::from_utf8_lossy(h.value).into_owned(),
                            )
                        })
                        .collect();
                    break (r.code.expect("status"), headers, n);
                }
                httparse::Status::Partial => {
                    if !self.more() {
                        assert!(
                            self.buf.is_empty(),
                            "EOF inside a response head: {:?}",
                            self.buf
                        );
                        return None;
                    }
                }
            }
        };
        self.buf.drain(..len);
        let mut resp = Resp {
            status,
            headers,
            body: Vec::new(),
        };
        if status == 100 || status == 101 {
            return Some(resp);
        }
        if self.head_next || status == 204 || status == 304 {
            self.head_next = false;
            return Some(resp);
        }
        if let Some(n) = resp.header("content-length") {
            let n: usize = n.parse().expect("a numeric content-length");
            while self.buf.len() < n {
                assert!(self.more(), "EOF inside a body");
            }
            resp.body = self.buf.drain(..n).collect();
        } else if resp.header("transfer-encoding") == Some("chunked") {
            loop {
                let line_end = loop {
                    if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                        break i;
                    }
                    assert!(self.more(), "EOF inside a chunk size");
                };
                let size = usize::from_str_radix(
                    std::str::from_utf8(&self.buf[..line_end]).expect("hex"),
                    16,
                )
                .expect("a hex chunk size");
                self.buf.drain(..line_end + 2);
                while self.buf.len() < size + 2 {
                    assert!(self.more(), "EOF inside a chunk");
                }
                resp.body.extend_from_slice(&self.buf[..size]);
                assert_eq!(&self.buf[size..size + 2], b"\r\n");
                self.buf.drain(..size + 2);
                if size == 0 {
                    break;
                }
            }
        } else {
            while self.more() {}
            resp.body = std::mem::take(&mut self.buf);
        }
        Some(resp)
    }

    /// Whether the server closed the connection (after any response already read).
    pub fn closed(&mut self) -> bool {
        self.buf.is_empty() && !self.more()
    }

    /// Bytes received and not yet read as a response.
    pub fn pending(&self) -> &[u8] {
        &self.buf
    }
}

/// Sends `raw` on a new connection; returns the first response and whether the
/// server closed the connection after it.
pub fn once(addr: SocketAddr, raw: &[u8]) -> (Resp, bool) {
    let mut c = Client::connect(addr);
    c.send(raw);
    let r = c.response().expect("a response");
    let closed = c.closed();
    (r, closed)
}

/// The routes of `examples/http_server.rs`, for the tests that drive real clients.
pub fn routes(
    req: gevent_http::Request<gevent_http::Body>,
) -> gevent_http::Response<gevent_http::ResponseBody> {
    use gevent_http::{Method, Response, ResponseBody, StatusCode};
    let number = |key: &str| -> Option<u64> {
        req.uri().query()?.split('&').find_map(|p| {
            let (k, v) = p.split_once('=')?;
            (k == key).then(|| v.parse().ok()).flatten()
        })
    };
    let get = req.method() == Method::GET || req.method() == Method::HEAD;
    let body: ResponseBody = match (req.uri().path(), get) {
        ("/plaintext", true) => "Hello, World!".into(),
        ("/json", true) => r#"{"message":"Hello, World!"}"#.into(),
        ("/stream", true) => match number("n") {
            Some(n) => ResponseBody::from_chunks((0..n).map(|i| format!("line {i}\n"))),
            None => "n?".into(),
        },
        ("/sleep", true) => match number("ms") {
            Some(ms) => {
                gevent_hub::sleep(Duration::from_millis(ms));
                format!("slept {ms}").into()
            }
            None => "ms?".into(),
        },
        ("/echo", false) if req.method() == Method::POST => req.into_body().into(),
        _ => {
            let mut r = Response::new(ResponseBody::from("not found\n"));
            *r.status_mut() = StatusCode::NOT_FOUND;
            return r;
        }
    };
    Response::new(body)
}

/// Runs a program to its end on the hub's thread pool (the hub serves meanwhile).
pub fn run(program: &str, args: Vec<String>) -> std::process::Output {
    let p = program.to_owned();
    let out =
        gevent_hub::spawn_blocking(move || std::process::Command::new(&p).args(&args).output())
            .join()
            .expect("the pool ran it");
    match out {
        Ok(o) => o,
        Err(e) => panic!("cannot run {program} (.ci/run installs it): {e}"),
    }
}

/// A writer of `len` deterministic bytes, and their FNV-1a hash, for bodies too big
/// to keep.
pub fn pattern_byte(i: u64) -> u8 {
    (i.wrapping_mul(2_654_435_761) >> 13) as u8
}

pub struct Fnv(pub u64);

impl Fnv {
    pub fn new() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }

    pub fn update(&mut self, data: &[u8]) {
        for &b in data {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
    }
}
