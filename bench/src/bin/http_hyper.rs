//! The HTTP peer on hyper 1.x: HTTP/1.1 only (`hyper::server::conn::http1`, default
//! settings: keep-alive on, `pipeline_flush` off), tokio's current-thread runtime,
//! a task per connection, `TCP_NODELAY` on every connection (hyper writes each
//! response on its own: with Nagle's algorithm, pipelined responses after the first
//! would wait for the client's delayed ACK). The routes of the `http_server` example
//! (`gevent_bench::http`): `/echo` streams the request body back as it arrives (the
//! request's body is the response's), `/stream?n=` sends one chunk per line.
//!
//! Run: `cargo run --release -p gevent-bench --bin http_hyper -- [HOST:PORT]`

use bytes::Bytes;
use gevent_bench::http::{self, listen_addr, query_u64};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::{Body, Frame, Incoming};
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::TcpSocket;

type Resp = Response<BoxBody<Bytes, hyper::Error>>;

/// `/stream?n=N`'s body: N frames, one line each; with no length known, hyper sends
/// each as a chunk.
struct Lines {
    next: u64,
    n: u64,
}

impl Body for Lines {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        if this.next >= this.n {
            return Poll::Ready(None);
        }
        let line = http::stream_line(this.next);
        this.next += 1;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(line)))))
    }

    fn is_end_stream(&self) -> bool {
        self.next >= self.n
    }
}

fn full(body: impl Into<Bytes>, content_type: &'static str) -> Resp {
    let mut r = Response::new(
        Full::new(body.into())
            .map_err(|never: Infallible| match never {})
            .boxed(),
    );
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

async fn route(req: Request<Incoming>) -> Result<Resp, Infallible> {
    let target = req
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    let r = match (req.method(), http::path(&target)) {
        (&Method::GET, "/plaintext") => full(http::PLAINTEXT, "text/plain"),
        (&Method::GET, "/json") => full(http::json_body(), "application/json"),
        (&Method::POST, "/echo") => {
            let mut r = Response::new(req.into_body().boxed());
            r.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            );
            r
        }
        (&Method::GET, "/stream") => {
            let n = query_u64(&target, "n").unwrap_or(0);
            let mut r = Response::new(Lines { next: 0, n }.boxed());
            r.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
            r
        }
        (&Method::GET, "/sleep") => {
            let ms = query_u64(&target, "ms").unwrap_or(0);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            full(format!("slept {ms}"), "text/plain")
        }
        _ => {
            let mut r = Response::new(
                Empty::new()
                    .map_err(|never: Infallible| match never {})
                    .boxed(),
            );
            *r.status_mut() = StatusCode::NOT_FOUND;
            r
        }
    };
    Ok(r)
}

fn main() -> std::io::Result<()> {
    let addr = listen_addr();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()?;
    rt.block_on(async move {
        let sock = TcpSocket::new_v4()?;
        sock.set_reuseaddr(true)?;
        sock.bind(addr)?;
        // The same backlog as the suite's other servers.
        let listener = sock.listen(1024)?;
        eprintln!("http_hyper on {addr}");
        loop {
            let (s, _) = listener.accept().await?;
            s.set_nodelay(true)?;
            tokio::spawn(async move {
                // Errors (a client that went away, a malformed request that hyper
                // answered itself) end the connection: nothing to do with them here.
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(s), service_fn(route))
                    .await;
            });
        }
    })
}
