//! A connection's greenlet: the request loop, from reading a head to writing its
//! answer and reading past what the handler left of the body.

use crate::body::Body;
use crate::chunked::Decoder;
use crate::conn::{BodyState, Io, Phase, Shared};
use crate::head::{self, Framing, Head, Parsed, Reject};
use crate::response::{self, Ended, Sent};
use crate::state::ServerState;
use gevent_hub::net::TcpStream;
use gevent_hub::{GreenletExit, TimeoutExpired};
use http::{HeaderMap, Request, StatusCode};
use std::cell::{Cell, RefCell};
use std::io::Read;
use std::net::{Shutdown, SocketAddr};
use std::os::fd::AsRawFd;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::time::{Duration, Instant};

/// How long a closing connection waits for the client to take the last response
/// (and how much it reads meanwhile), so that unread input does not turn the close
/// into a reset that destroys the response.
const LINGER: Duration = Duration::from_secs(1);
const LINGER_BYTES: usize = 256 * 1024;

/// A connection's greenlet: serves requests until one asks to close, the client
/// goes, a limit is hit or the server stops.
pub(crate) fn serve(stream: TcpStream, peer: SocketAddr, server: Rc<ServerState>) {
    let _ = stream.set_nodelay(true);
    if stream
        .set_write_timeout(server.config.write_timeout)
        .is_err()
    {
        return;
    }
    let local = stream.local_addr().unwrap_or(peer);
    let shared = Rc::new(Shared {
        stream,
        peer,
        local,
        io: RefCell::new(Io::new()),
        body: RefCell::new(BodyState::new()),
        config: server.config.clone(),
        phase: Cell::new(Phase::Busy),
        swept: Cell::new(false),
    });
    let id = server.register(&shared);
    let end = run(&shared, &server);
    server.unregister(id);
    match end {
        End::Refused => linger(&shared),
        End::Close if input_left(&shared) => linger(&shared),
        End::Close | End::Gone => {}
    }
}

/// How a connection ends.
enum End {
    /// Close it (its answers written).
    Close,
    /// Close it after refusing a request: half-close, and let the client read the
    /// refusal while it may still be sending.
    Refused,
    /// The client went, or the connection is no longer the loop's (upgraded).
    Gone,
}

fn run(shared: &Rc<Shared>, server: &Rc<ServerState>) -> End {
    let cfg = &server.config;
    // A connection's first request must arrive within the head timeout of the accept.
    let mut deadline = cfg.header_read_timeout.map(|t| Instant::now() + t);
    let mut first = true;
    // Where the fields of the head being read are (kept, to reuse its allocation).
    let mut fields = Vec::new();
    // The header map the next request's fields go into: the last response's, once
    // written (a request's own map goes with it to the handler).
    let mut spare = HeaderMap::new();
    loop {
        let parsed = {
            let io = shared.io.borrow();
            head::parse(io.buffered(), cfg, &mut fields)
        };
        match parsed {
            Parsed::Partial => {
                let buffered = shared.io.borrow().buffered().len();
                if buffered >= cfg.max_header_bytes {
                    let r = {
                        let io = shared.io.borrow();
                        head::too_large(io.buffered(), cfg)
                    };
                    return refuse(shared, r);
                }
                let idle = buffered == 0 && !first;
                if idle && server.stopping.get() {
                    return flush_then(shared, End::Close);
                }
                // The waits are bounded by the server's sweep (state.rs), not by a
                // timer per read: a kept-alive connection waits for each request.
                let phase = if idle {
                    Phase::Idle(cfg.keep_alive_timeout.map(|_| Instant::now()))
                } else {
                    if deadline.is_none() {
                        deadline = cfg.header_read_timeout.map(|t| Instant::now() + t);
                    }
                    Phase::Head(deadline)
                };
                shared.phase.set(phase);
                let got = shared.fill(cfg.max_header_bytes, None);
                shared.phase.set(Phase::Busy);
                if shared.swept.get() {
                    if idle {
                        return End::Gone;
                    }
                    return refuse(
                        shared,
                        head::reject(
                            StatusCode::REQUEST_TIMEOUT,
                            "the request head took too long",
                        ),
                    );
                }
                match got {
                    Ok(0) | Err(_) => return End::Gone,
                    Ok(_) => {}
                }
            }
            Parsed::Reject(r) => return refuse(shared, r),
            Parsed::Head(scan) => {
                let bytes = shared.io.borrow_mut().take(scan.len);
                let mut req = Request::new(Body::empty());
                std::mem::swap(req.headers_mut(), &mut spare);
                let h = match head::finish(scan, &bytes, &fields, &mut req) {
                    Ok(h) => h,
                    Err(r) => return refuse(shared, r),
                };
                drop(bytes);
                first = false;
                deadline = None;
                match handle(shared, server, h, req, &mut spare) {
                    Ok(true) => {}
                    Ok(false) => return flush_then(shared, End::Close),
                    Err(Ended::Upgraded) => return End::Gone,
                    Err(Ended::Io) => return End::Gone,
                    Err(Ended::Refuse(r)) => return refuse(shared, r),
                }
            }
        }
    }
}

/// Serves one request (`req`, with `head`; its body is the connection's to set):
/// runs the handler, writes its response, and reads past what the handler left of
/// the body. `Ok(true)`: the connection goes on. The response's header map, once
/// written, is left in `spare`.
fn handle(
    shared: &Rc<Shared>,
    server: &ServerState,
    head: Head,
    mut req: Request<Body>,
    spare: &mut HeaderMap,
) -> Result<bool, Ended> {
    let cfg = &server.config;
    if let (Framing::Length(n), Some(max)) = (head.framing, cfg.max_body_bytes) {
        if n > max {
            return Err(Ended::Refuse(head::reject(
                StatusCode::PAYLOAD_TOO_LARGE,
                "the request body is larger than the server accepts",
            )));
        }
    }
    let seq = {
        let mut st = shared.body.borrow_mut();
        st.seq += 1;
        st.framing = head.framing;
        st.left = match head.framing {
            Framing::Length(n) => n,
            _ => 0,
        };
        st.decoder = match head.framing {
            Framing::Chunked => Some(Decoder::new(cfg.max_header_bytes)),
            _ => None,
        };
        st.received = 0;
        st.continue_owed = head.expect_continue;
        st.head_sent = false;
        st.done = head.framing == Framing::Empty;
        st.too_large = false;
        st.broken = false;
        st.seq
    };
    let declared = match head.framing {
        Framing::Length(n) => Some(n),
        _ => None,
    };
    let log = log::log_enabled!(target: crate::ACCESS_LOG, log::Level::Info);
    let started = log.then(Instant::now);
    let line = log.then(|| format!("{} {} {:?}", req.method(), req.uri(), req.version()));
    let mut ctx = response::Context {
        head_request: req.method() == http::Method::HEAD,
        version: req.version(),
        keep_alive: head.keep_alive,
    };
    *req.body_mut() = Body::conn(shared.clone(), seq, declared, head.framing);

    let answer = catch_unwind(AssertUnwindSafe(|| server.handler.call(req)));
    if let Err(p) = &answer {
        if p.is::<GreenletExit>() || p.is::<TimeoutExpired>() {
            if let Err(p) = answer {
                resume_unwind(p);
            }
            unreachable!("the answer is an Err");
        }
    }
    // A body the handler read into a failure: its error, whatever the handler made
    // of it (an answer, or a panic).
    {
        let st = shared.body.borrow();
        if st.too_large {
            return Err(Ended::Refuse(head::reject(
                StatusCode::PAYLOAD_TOO_LARGE,
                "the request body is larger than the server accepts",
            )));
        }
        if st.broken {
            return Err(Ended::Refuse(head::reject(
                StatusCode::BAD_REQUEST,
                "the request body is malformed",
            )));
        }
    }
    let resp = match answer {
        Ok(r) => r,
        Err(p) => {
            let msg = p
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| p.downcast_ref::<String>().map(String::as_str))
                .unwrap_or("a non-string payload");
            log::error!(
                "HTTP handler panicked serving {} for {}: {msg}",
                line.as_deref().unwrap_or("a request"),
                shared.peer
            );
            return Err(Ended::Refuse(head::reject(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the handler failed",
            )));
        }
    };
    // Whether the connection can go on is said in the response's head, so decided
    // now: not while stopping, nor if what the handler left of the body cannot be
    // read past (unless the response itself reads it: an echo).
    ctx.keep_alive &= !server.stopping.get()
        && (resp.body().reads_request() || drainable(&shared.body.borrow(), cfg.max_drain_bytes));
    let sent = response::send(shared, resp, &ctx, spare);
    if let (Some(started), Some(line)) = (started, &line) {
        if let Ok(s) = &sent {
            log::info!(
                target: crate::ACCESS_LOG,
                "{} \"{line}\" {} {} {:.6}",
                shared.peer,
                s.status.as_u16(),
                s.body_bytes,
                started.elapsed().as_secs_f64()
            );
        }
    }
    let sent: Sent = sent?;
    if !sent.keep_alive {
        return Ok(false);
    }
    drain(shared, seq)
}

/// Whether what is left of the body can be read past without reading too much or
/// waiting for a body the client was never asked for.
fn drainable(st: &BodyState, max: u64) -> bool {
    if st.done {
        return true;
    }
    if st.continue_owed || st.broken || st.too_large {
        return false;
    }
    match st.framing {
        Framing::Length(_) => st.left <= max,
        _ => true,
    }
}

/// Reads and drops what the handler left of request `seq`'s body, so that the next
/// request starts where it should. `Ok(false)`: close instead (too much left, or
/// the client still waits for a `100 Continue` and may never send it).
fn drain(shared: &Rc<Shared>, seq: u64) -> Result<bool, Ended> {
    let cfg = &shared.config;
    {
        let st = shared.body.borrow();
        if st.done {
            return Ok(true);
        }
        if !drainable(&st, cfg.max_drain_bytes) {
            return Ok(false);
        }
    }
    let mut scratch = [0u8; 8192];
    let mut drained = 0u64;
    loop {
        match shared.read_body(seq, &mut scratch) {
            Ok(0) => return Ok(true),
            Ok(n) => {
                drained += n as u64;
                if drained > cfg.max_drain_bytes {
                    return Ok(false);
                }
            }
            Err(_) => return Err(Ended::Io),
        }
    }
}

/// Writes out what is buffered, then ends as `end`.
fn flush_then(shared: &Shared, end: End) -> End {
    match shared.flush() {
        Ok(()) => end,
        Err(_) => End::Gone,
    }
}

/// Answers `r` (after the responses before it) and closes.
fn refuse(shared: &Rc<Shared>, r: Reject) -> End {
    let body = r.reason.as_bytes();
    let mut out = Vec::with_capacity(160 + body.len());
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(r.status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(r.status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: ");
    response::push_decimal(&mut out, body.len() as u64 + 1);
    out.extend_from_slice(b"\r\nconnection: close\r\ndate: ");
    crate::date::append(&mut out);
    out.extend_from_slice(b"\r\n\r\n");
    out.extend_from_slice(body);
    out.push(b'\n');
    log::debug!(
        target: crate::ACCESS_LOG,
        "{} refused: {} {}",
        shared.peer,
        r.status.as_u16(),
        r.reason
    );
    if shared.write_all(&out).is_err() {
        return End::Gone;
    }
    flush_then(shared, End::Refused)
}

/// Whether the client sent what the server has not read: the request's body, a
/// next request, or bytes waiting in the socket.
fn input_left(shared: &Shared) -> bool {
    if !shared.io.borrow().buffered().is_empty() || !shared.body.borrow().done {
        return true;
    }
    let mut pending: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int to `pending`; the fd is the connection's own,
    // open for as long as `shared` is.
    let r = unsafe { libc::ioctl(shared.stream.as_raw_fd(), libc::FIONREAD, &mut pending) };
    r != 0 || pending > 0
}

/// Half-closes and reads (and drops) what the client still sends, for a moment, so
/// that the kernel does not answer that input with a reset that would destroy the
/// response before the client has read it.
fn linger(shared: &Shared) {
    if shared.stream.shutdown(Shutdown::Write).is_err() {
        return;
    }
    let until = Instant::now() + LINGER;
    let mut scratch = [0u8; 4096];
    let mut read = 0;
    while read < LINGER_BYTES {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() || shared.stream.set_read_timeout(Some(left)).is_err() {
            return;
        }
        match (&shared.stream).read(&mut scratch) {
            Ok(0) | Err(_) => return,
            Ok(n) => read += n,
        }
    }
}
