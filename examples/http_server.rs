//! An HTTP/1.1 server on greenlets (gevent's `pywsgi`), with the routes the
//! benchmarks and conformance checks drive:
//!
//! - `GET /plaintext` -> `200 text/plain` `Hello, World!`
//! - `GET /json` -> `200 application/json` `{"message":"Hello, World!"}` (serialized
//!   for each request)
//! - `POST /echo` -> `200` with the request body streamed back as it arrives (any
//!   size: a 64 MiB body passes through 64 KiB of buffer)
//! - `GET /stream?n=N` -> `200`, chunked: N lines `line i\n`, i from 0, each sent as
//!   it is made
//! - `GET /sleep?ms=N` -> a cooperative sleep of N ms, then `200` `slept N`
//! - anything else -> `404`
//!
//! `HEAD` is answered as `GET`, without the body.
//!
//! Run: `cargo run --release --example http_server -- [ADDR]` (default
//! `127.0.0.1:8080`; a bare port means `0.0.0.0:PORT`). Serves until Ctrl-C.
//! `--self-test` serves on a free port, requests every route over loopback from client
//! greenlets, checks each answer and exits.

use gevent::http::header::{HeaderValue, CONTENT_TYPE};
use gevent::http::{Body, Method, Request, Response, ResponseBody, Server, StatusCode};
use std::time::Duration;

fn text(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<ResponseBody>,
) -> Response<ResponseBody> {
    let mut resp = Response::new(body.into());
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

/// The value of `key` in the request's query (`?key=value&...`), as a number.
fn query_number(req: &Request<Body>, key: &str) -> Option<u64> {
    req.uri().query()?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        if k == key {
            v.parse().ok()
        } else {
            None
        }
    })
}

fn route(req: Request<Body>) -> Response<ResponseBody> {
    let get = req.method() == Method::GET || req.method() == Method::HEAD;
    match (req.uri().path(), get, req.method() == Method::POST) {
        ("/plaintext", true, _) => text(StatusCode::OK, "text/plain", "Hello, World!"),
        ("/json", true, _) => {
            let body = serde_json::to_vec(&serde_json::json!({ "message": "Hello, World!" }))
                .unwrap_or_default();
            text(StatusCode::OK, "application/json", body)
        }
        ("/echo", _, true) => text(
            StatusCode::OK,
            "application/octet-stream",
            ResponseBody::from(req.into_body()),
        ),
        ("/stream", true, _) => match query_number(&req, "n") {
            Some(n) => text(
                StatusCode::OK,
                "text/plain",
                ResponseBody::from_chunks((0..n).map(|i| format!("line {i}\n"))),
            ),
            None => text(
                StatusCode::BAD_REQUEST,
                "text/plain",
                "n must be a number\n",
            ),
        },
        ("/sleep", true, _) => match query_number(&req, "ms") {
            Some(ms) => {
                gevent::hub::sleep(Duration::from_millis(ms));
                text(StatusCode::OK, "text/plain", format!("slept {ms}"))
            }
            None => text(
                StatusCode::BAD_REQUEST,
                "text/plain",
                "ms must be a number\n",
            ),
        },
        _ => text(StatusCode::NOT_FOUND, "text/plain", "not found\n"),
    }
}

fn main() -> std::io::Result<()> {
    let arg = std::env::args().nth(1);
    if arg.as_deref() == Some("--self-test") {
        return self_test();
    }
    let addr = match arg {
        None => "127.0.0.1:8080".to_owned(),
        Some(a) if a.parse::<u16>().is_ok() => format!("0.0.0.0:{a}"),
        Some(a) => a,
    };
    let server = Server::new(addr.as_str(), route)?;
    eprintln!("http server on http://{}", server.server_addr());
    let (s1, s2) = (server.clone(), server.clone());
    let _int = gevent::hub::server::signal_handler(libc::SIGINT, move || drop(s1.stop()));
    let _term = gevent::hub::server::signal_handler(libc::SIGTERM, move || drop(s2.stop()));
    server.serve_forever()
}

/// Sends `request` on a new connection and returns the whole answer (the request
/// asks to close, so the answer ends at EOF).
fn ask(addr: std::net::SocketAddr, request: &[u8]) -> std::io::Result<String> {
    use std::io::{Read, Write};
    let mut c = gevent::hub::net::TcpStream::connect(addr)?;
    c.write_all(request)?;
    let mut answer = Vec::new();
    c.read_to_end(&mut answer)?;
    Ok(String::from_utf8_lossy(&answer).into_owned())
}

fn self_test() -> std::io::Result<()> {
    let server = Server::new("127.0.0.1:0", route)?;
    server.start()?;
    let addr = server.server_addr();
    let checks: [(&str, &[u8], &[&str]); 7] = [
        (
            "plaintext",
            b"GET /plaintext HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
            &["HTTP/1.1 200 OK\r\n", "content-type: text/plain\r\n", "content-length: 13\r\n", "\r\n\r\nHello, World!"],
        ),
        (
            "json",
            b"GET /json HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
            &["HTTP/1.1 200 OK\r\n", "content-type: application/json\r\n", "\r\n\r\n{\"message\":\"Hello, World!\"}"],
        ),
        (
            "echo",
            b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
            &["HTTP/1.1 200 OK\r\n", "content-length: 5\r\n", "\r\n\r\nhello"],
        ),
        (
            "echo chunked",
            b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
            &["HTTP/1.1 200 OK\r\n", "transfer-encoding: chunked\r\n", "\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"],
        ),
        (
            "stream",
            b"GET /stream?n=3 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
            &["transfer-encoding: chunked\r\n", "\r\n\r\n7\r\nline 0\n\r\n7\r\nline 1\n\r\n7\r\nline 2\n\r\n0\r\n\r\n"],
        ),
        (
            "sleep",
            b"GET /sleep?ms=10 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
            &["HTTP/1.1 200 OK\r\n", "\r\n\r\nslept 10"],
        ),
        (
            "404",
            b"GET /nothing HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
            &["HTTP/1.1 404 Not Found\r\n"],
        ),
    ];
    // Every route at once, each from its own client greenlet.
    let clients: Vec<_> = checks
        .iter()
        .map(|&(name, request, want)| {
            gevent::hub::spawn(move || {
                let answer = ask(addr, request).map_err(|e| format!("{name}: {e}"))?;
                for w in want {
                    if !answer.contains(w) {
                        return Err(format!("{name}: {w:?} missing from {answer:?}"));
                    }
                }
                Ok(name)
            })
        })
        .collect();
    let mut failed = 0;
    for c in clients {
        match c.join() {
            Ok(Ok(name)) => println!("ok: {name}"),
            Ok(Err(e)) => {
                println!("FAILED: {e}");
                failed += 1;
            }
            Err(e) => {
                println!("FAILED: client greenlet: {e}");
                failed += 1;
            }
        }
    }
    server.stop()?;
    if failed > 0 {
        return Err(std::io::Error::other(format!("{failed} checks failed")));
    }
    println!("all {} routes answered as expected", checks.len());
    Ok(())
}
