//! The HTTP peer on may_minihttp: may's stackful coroutines, one worker thread
//! (`may::config().set_workers(1)`, its pinning off so that the suite's `taskset`
//! decides the core), a coroutine per connection. The routes of the `http_server`
//! example (`gevent_bench::http`), as far as may_minihttp's API allows:
//!
//! - every response carries a `Content-Length` (may_minihttp has no chunked
//!   responses): `/stream?n=` is the same N lines, but in one counted body;
//! - `/echo` reads the whole body before answering (a body is read by its
//!   `Content-Length`; may_minihttp knows no chunked request bodies);
//! - it binds the listener itself (backlog 1024, as the others) and sets no
//!   `TCP_NODELAY`, but writes all the responses to one read in one write.
//!
//! Run: `cargo run --release -p gevent-bench --bin http_may -- [HOST:PORT]`

use gevent_bench::http::{self, listen_addr, query_u64};
use may_minihttp::{HttpServer, HttpService, Request, Response};
use std::io::{self, Read};
use std::time::Duration;

#[derive(Clone)]
struct Routes;

impl HttpService for Routes {
    fn call(&mut self, req: Request<'_, '_, '_>, rsp: &mut Response<'_>) -> io::Result<()> {
        let target = req.path().to_owned();
        match (req.method(), http::path(&target)) {
            ("GET", "/plaintext") => {
                rsp.header("Content-Type: text/plain").body(http::PLAINTEXT);
            }
            ("GET", "/json") => {
                rsp.header("Content-Type: application/json")
                    .body_vec(http::json_body());
            }
            ("POST", "/echo") => {
                let mut body = Vec::new();
                req.body().read_to_end(&mut body)?;
                rsp.header("Content-Type: application/octet-stream")
                    .body_vec(body);
            }
            ("GET", "/stream") => {
                let n = query_u64(&target, "n").unwrap_or(0);
                let body = rsp.header("Content-Type: text/plain").body_mut();
                for i in 0..n {
                    body.extend_from_slice(http::stream_line(i).as_bytes());
                }
            }
            ("GET", "/sleep") => {
                let ms = query_u64(&target, "ms").unwrap_or(0);
                may::coroutine::sleep(Duration::from_millis(ms));
                rsp.header("Content-Type: text/plain")
                    .body_vec(format!("slept {ms}").into_bytes());
            }
            _ => {
                rsp.status_code(404, "Not Found");
            }
        }
        Ok(())
    }
}

fn main() -> io::Result<()> {
    may::config().set_workers(1);
    // may pins its workers to cores of its own choosing by default; the suite pins the
    // whole process with taskset instead.
    may::config().set_worker_pin(false);
    let addr = listen_addr();
    let server = HttpServer(Routes).start(addr)?;
    eprintln!("http_may on {addr}");
    server
        .join()
        .map_err(|_| io::Error::other("the server coroutine panicked"))
}
