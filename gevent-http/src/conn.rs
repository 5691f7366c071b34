//! One connection: its buffers, its request loop, and the state a request's [`Body`]
//! shares with it.

use crate::body::Body;
use crate::chunked::{DecodeError, Decoder};
use crate::head::{self, Framing, Head, Parsed, Reject};
use crate::response::{self, Sent};
use crate::server::ServerState;
use gevent_hub::net::TcpStream;
use gevent_hub::{GreenletExit, TimeoutExpired};
use http::{Request, StatusCode};
use std::cell::{Cell, RefCell};
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::os::fd::AsRawFd;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::time::{Duration, Instant};

/// The read buffer's first size; it grows (up to the head limit) for larger heads.
const READ_BUF: usize = 8 * 1024;
/// Buffered response bytes are written out once there are this many.
pub(crate) const WRITE_HIGH: usize = 64 * 1024;
/// How long a closing connection waits for the client to take the last response
/// (and how much it reads meanwhile), so that unread input does not turn the close
/// into a reset that destroys the response.
const LINGER: Duration = Duration::from_secs(1);
const LINGER_BYTES: usize = 256 * 1024;

/// The connection's bytes: what was read and not yet parsed, and the responses not
/// yet written.
pub(crate) struct Io {
    rbuf: Vec<u8>,
    rpos: usize,
    rend: usize,
    pub(crate) wbuf: Vec<u8>,
}

impl Io {
    pub(crate) fn buffered(&self) -> &[u8] {
        &self.rbuf[self.rpos..self.rend]
    }

    pub(crate) fn consume(&mut self, n: usize) {
        self.rpos += n;
        if self.rpos == self.rend {
            self.rpos = 0;
            self.rend = 0;
        }
    }

    /// Room to read into, growing the buffer up to `limit` bytes when it is full.
    fn room(&mut self, limit: usize) -> &mut [u8] {
        if self.rend == self.rbuf.len() {
            if self.rpos > 0 {
                self.rbuf.copy_within(self.rpos..self.rend, 0);
                self.rend -= self.rpos;
                self.rpos = 0;
            } else if self.rbuf.len() < limit {
                let size = (self.rbuf.len() * 2).clamp(READ_BUF, limit);
                self.rbuf.resize(size, 0);
            }
        }
        &mut self.rbuf[self.rend..]
    }
}

/// The state of the request being served, shared with its [`Body`].
pub(crate) struct BodyState {
    /// Which request of the connection it is (a `Body` of an earlier one reads
    /// nothing more).
    pub(crate) seq: u64,
    pub(crate) framing: Framing,
    /// For `Framing::Length`: bytes still to come.
    pub(crate) left: u64,
    pub(crate) decoder: Option<Decoder>,
    /// Body bytes read so far.
    pub(crate) received: u64,
    /// `100 Continue` is still owed (the client waits for it before sending).
    pub(crate) continue_owed: bool,
    /// The body ended (or there was none).
    pub(crate) done: bool,
    /// The body broke the size limit.
    pub(crate) too_large: bool,
    /// The body's framing broke (bad chunk syntax, or the client stopped sending):
    /// the connection cannot go on.
    pub(crate) broken: bool,
}

/// What a connection's request [`Body`]s and [`Upgraded`](crate::Upgraded) share
/// with its loop.
pub(crate) struct Shared {
    pub(crate) stream: TcpStream,
    pub(crate) peer: SocketAddr,
    pub(crate) local: SocketAddr,
    pub(crate) io: RefCell<Io>,
    pub(crate) body: RefCell<BodyState>,
    pub(crate) server: Rc<ServerState>,
    /// Waiting for a next request with nothing buffered (a graceful stop closes it).
    pub(crate) idle: Cell<bool>,
}

pub(crate) fn busy() -> io::Error {
    io::Error::other("the connection is in use by another greenlet")
}

impl Shared {
    /// Writes out the buffered responses.
    pub(crate) fn flush(&self) -> io::Result<()> {
        let mut io = self.io.try_borrow_mut().map_err(|_| busy())?;
        if io.wbuf.is_empty() {
            return Ok(());
        }
        let r = (&self.stream).write_all(&io.wbuf);
        io.wbuf.clear();
        if io.wbuf.capacity() > 4 * WRITE_HIGH {
            io.wbuf = Vec::with_capacity(WRITE_HIGH);
        }
        r
    }

    /// Writes `data` after the buffered responses.
    pub(crate) fn write_all(&self, data: &[u8]) -> io::Result<()> {
        {
            let mut io = self.io.try_borrow_mut().map_err(|_| busy())?;
            if io.wbuf.len() + data.len() <= WRITE_HIGH {
                io.wbuf.extend_from_slice(data);
                return Ok(());
            }
        }
        self.flush()?;
        (&self.stream).write_all(data)
    }

    /// Reads more of the connection into the read buffer (which may grow to
    /// `limit`), flushing the buffered responses first: the client may be waiting
    /// for them before it sends more. `Ok(0)`: the client closed its side, or the
    /// buffer is full.
    pub(crate) fn fill(&self, limit: usize, timeout: Option<Duration>) -> io::Result<usize> {
        self.flush()?;
        if let Some(t) = timeout {
            if t.is_zero() {
                return Err(io::ErrorKind::TimedOut.into());
            }
        }
        self.stream.set_read_timeout(timeout)?;
        let mut io = self.io.try_borrow_mut().map_err(|_| busy())?;
        let room = io.room(limit);
        if room.is_empty() {
            return Ok(0);
        }
        let n = (&self.stream).read(room)?;
        io.rend += n;
        Ok(n)
    }

    /// The request body's `read`, for the body of request `seq`.
    pub(crate) fn read_body(&self, seq: u64, out: &mut [u8]) -> io::Result<usize> {
        let mut st = self.body.try_borrow_mut().map_err(|_| busy())?;
        if st.seq != seq {
            return Err(io::Error::other(
                "the request this body belongs to has been answered",
            ));
        }
        if st.done || out.is_empty() {
            return Ok(0);
        }
        if st.broken {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "the request body is malformed",
            ));
        }
        if st.too_large {
            return Err(too_large_error());
        }
        if st.continue_owed {
            st.continue_owed = false;
            self.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
        }
        let cfg = &self.server.config;
        let timeout = cfg.body_read_timeout;
        let n = match st.framing {
            Framing::Empty => 0,
            Framing::Length(_) => {
                let want = out
                    .len()
                    .min(usize::try_from(st.left).unwrap_or(usize::MAX));
                let out = &mut out[..want];
                let buffered = {
                    let mut io = self.io.try_borrow_mut().map_err(|_| busy())?;
                    let have = io.buffered();
                    let n = have.len().min(want);
                    out[..n].copy_from_slice(&have[..n]);
                    io.consume(n);
                    n
                };
                let n = if buffered > 0 {
                    buffered
                } else {
                    // Nothing buffered: straight from the socket into the caller's
                    // buffer, after writing out what the client may be waiting for.
                    self.flush()?;
                    self.stream.set_read_timeout(timeout)?;
                    (&self.stream).read(out)?
                };
                if n == 0 {
                    st.broken = true;
                    return Err(early_eof());
                }
                st.left -= n as u64;
                if st.left == 0 {
                    st.done = true;
                }
                n
            }
            Framing::Chunked => loop {
                let step = {
                    let mut io = self.io.try_borrow_mut().map_err(|_| busy())?;
                    let Some(dec) = st.decoder.as_mut() else {
                        return Ok(0);
                    };
                    let step = dec.step(io.buffered(), out);
                    if let Ok(s) = &step {
                        io.consume(s.consumed);
                    }
                    step
                };
                match step {
                    Ok(s) => {
                        if st.decoder.as_ref().is_some_and(Decoder::is_done) {
                            st.done = true;
                        }
                        if s.produced > 0 || st.done {
                            break s.produced;
                        }
                    }
                    Err(DecodeError::Syntax(why)) => {
                        st.broken = true;
                        return Err(io::Error::new(io::ErrorKind::InvalidData, why));
                    }
                    Err(DecodeError::TrailersTooLarge) => {
                        st.broken = true;
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            "the request's trailer section is too large",
                        ));
                    }
                }
                // The buffer holds no whole piece: read more.
                if self.fill(READ_BUF.max(cfg.max_header_bytes), timeout)? == 0 {
                    st.broken = true;
                    return Err(early_eof());
                }
            },
        };
        st.received += n as u64;
        if let (Framing::Chunked, Some(max)) = (st.framing, cfg.max_body_bytes) {
            if st.received > max {
                st.too_large = true;
                return Err(too_large_error());
            }
        }
        Ok(n)
    }
}

fn early_eof() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "the client closed the connection before the request body ended",
    )
}

fn too_large_error() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        "the request body is larger than the server accepts",
    )
}

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
        io: RefCell::new(Io {
            rbuf: vec![0; READ_BUF],
            rpos: 0,
            rend: 0,
            wbuf: Vec::with_capacity(READ_BUF),
        }),
        body: RefCell::new(BodyState {
            seq: 0,
            framing: Framing::Empty,
            left: 0,
            decoder: None,
            received: 0,
            continue_owed: false,
            done: true,
            too_large: false,
            broken: false,
        }),
        server: server.clone(),
        idle: Cell::new(false),
    });
    let id = server.register(&shared);
    let end = run(&shared);
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

fn run(shared: &Rc<Shared>) -> End {
    let server = &shared.server;
    let cfg = &server.config;
    // A connection's first request must arrive within the head timeout of the accept.
    let mut deadline = cfg.header_read_timeout.map(|t| Instant::now() + t);
    let mut first = true;
    loop {
        let parsed = {
            let io = shared.io.borrow();
            head::parse(io.buffered(), cfg)
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
                let timeout = if idle {
                    cfg.keep_alive_timeout
                } else {
                    if deadline.is_none() {
                        deadline = cfg.header_read_timeout.map(|t| Instant::now() + t);
                    }
                    deadline.map(|d| d.saturating_duration_since(Instant::now()))
                };
                shared.idle.set(idle);
                let got = shared.fill(cfg.max_header_bytes, timeout);
                shared.idle.set(false);
                match got {
                    Ok(0) => return End::Gone,
                    Ok(_) => {}
                    Err(e) if is_timeout(&e) && !idle => {
                        return refuse(
                            shared,
                            head::reject(
                                StatusCode::REQUEST_TIMEOUT,
                                "the request head took too long",
                            ),
                        )
                    }
                    Err(_) => return End::Gone,
                }
            }
            Parsed::Reject(r) => return refuse(shared, r),
            Parsed::Head(h) => {
                shared.io.borrow_mut().consume(h.len);
                first = false;
                deadline = None;
                match handle(shared, *h) {
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

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
    )
}

/// Why a request's service ended the connection.
pub(crate) enum Ended {
    /// The connection broke, or a response could not be finished.
    Io,
    /// The handler took the connection over.
    Upgraded,
    /// Answer with this error and close.
    Refuse(Reject),
}

/// Serves one request: runs the handler, writes its response, and reads past what
/// the handler left of the body. `Ok(true)`: the connection goes on.
fn handle(shared: &Rc<Shared>, head: Head) -> Result<bool, Ended> {
    let server = &shared.server;
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
    let line = log.then(|| format!("{} {} {:?}", head.method, head.uri, head.version));
    let mut ctx = response::Context {
        head_request: head.method == http::Method::HEAD,
        version: head.version,
        keep_alive: head.keep_alive,
    };
    let mut req = Request::new(Body::conn(shared.clone(), seq, declared, head.framing));
    *req.method_mut() = head.method;
    *req.uri_mut() = head.uri;
    *req.version_mut() = head.version;
    *req.headers_mut() = head.headers;

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
    let sent = response::send(shared, resp, &ctx);
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
    let cfg = &shared.server.config;
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
