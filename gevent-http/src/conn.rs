//! One connection: its buffers, its request loop, and the state a request's [`Body`]
//! shares with it.

use crate::chunked::{DecodeError, Decoder};
use crate::config::Config;
use crate::head::Framing;
use bytes::{Buf, Bytes, BytesMut};
use gevent_hub::net::TcpStream;
use std::cell::{Cell, RefCell};
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// The read buffer's first size; it grows (up to the head limit) for larger heads.
pub(crate) const READ_BUF: usize = 8 * 1024;
/// Buffered response bytes are written out once there are this many.
pub(crate) const WRITE_HIGH: usize = 64 * 1024;

/// The most and the least one read asks for. The room a read goes into must be
/// initialised bytes (it is handed to `read` as a `&mut [u8]`), so the buffer keeps
/// the room it zeroed once past its filled part and zeroes only what a read needs
/// beyond it. How much a read asks for follows what reads bring: it doubles after a
/// read that filled it and halves after one that used a quarter.
const READ_ROOM: usize = 16 * 1024;
const MIN_READ_ROOM: usize = 2 * 1024;

/// The connection's bytes: what was read and not yet parsed, and the responses not
/// yet written.
pub(crate) struct Io {
    /// Request heads are split off it and frozen, so that a request's target and
    /// header values share its bytes instead of copying each; once the request is
    /// dropped, the buffer's space is reused. Its first `filled` bytes are what was
    /// read; the rest is initialised room for the next read.
    rbuf: BytesMut,
    filled: usize,
    /// How much the next read asks for (between `MIN_READ_ROOM` and `READ_ROOM`).
    room: usize,
    pub(crate) wbuf: Vec<u8>,
}

impl Io {
    pub(crate) fn new() -> Io {
        Io {
            rbuf: BytesMut::with_capacity(READ_BUF),
            filled: 0,
            room: MIN_READ_ROOM,
            wbuf: Vec::with_capacity(READ_BUF),
        }
    }

    /// The first `n` buffered bytes, taken out of the buffer.
    pub(crate) fn take(&mut self, n: usize) -> Bytes {
        debug_assert!(n <= self.filled);
        self.filled -= n;
        self.rbuf.split_to(n).freeze()
    }

    pub(crate) fn buffered(&self) -> &[u8] {
        &self.rbuf[..self.filled]
    }

    pub(crate) fn consume(&mut self, n: usize) {
        debug_assert!(n <= self.filled);
        self.filled -= n;
        self.rbuf.advance(n);
    }

    /// Reads once from `stream` into the buffer, which holds at most `limit` bytes;
    /// `Ok(0)` at EOF or when the buffer is full.
    fn read_from(&mut self, stream: &TcpStream, limit: usize) -> io::Result<usize> {
        let filled = self.filled;
        if filled >= limit {
            return Ok(0);
        }
        if self.rbuf.capacity() - filled < READ_BUF / 2 {
            // Reclaims the space of heads already dropped, or grows; the room past
            // the filled part is not worth moving.
            self.rbuf.truncate(filled);
            self.rbuf.reserve(READ_BUF);
        }
        let room = (self.rbuf.capacity() - filled)
            .min(limit - filled)
            .min(self.room);
        if self.rbuf.len() < filled + room {
            self.rbuf.resize(filled + room, 0);
        }
        let r = (&*stream).read(&mut self.rbuf[filled..filled + room]);
        let n = *r.as_ref().unwrap_or(&0);
        self.filled += n;
        if n == room {
            self.room = (self.room * 2).min(READ_ROOM);
        } else if n < self.room / 4 {
            self.room = (self.room / 2).max(MIN_READ_ROOM);
        }
        r
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
    /// The response's head has been written: a `100 Continue` can no longer go
    /// before it (the client sends the body when its own wait for one ends).
    pub(crate) head_sent: bool,
    /// The body ended (or there was none).
    pub(crate) done: bool,
    /// The body broke the size limit.
    pub(crate) too_large: bool,
    /// The body's framing broke (bad chunk syntax, or the client stopped sending):
    /// the connection cannot go on.
    pub(crate) broken: bool,
}

impl BodyState {
    /// Before the first request: no body.
    pub(crate) fn new() -> BodyState {
        BodyState {
            seq: 0,
            framing: Framing::Empty,
            left: 0,
            decoder: None,
            received: 0,
            continue_owed: false,
            head_sent: false,
            done: true,
            too_large: false,
            broken: false,
        }
    }
}

/// What a connection's request [`Body`]s and [`Upgraded`](crate::Upgraded) share
/// with its loop.
pub(crate) struct Shared {
    pub(crate) stream: TcpStream,
    pub(crate) peer: SocketAddr,
    pub(crate) local: SocketAddr,
    pub(crate) io: RefCell<Io>,
    pub(crate) body: RefCell<BodyState>,
    pub(crate) config: Rc<Config>,
    /// What the connection is waiting for, for the server's timeout sweep (and a
    /// graceful stop, which closes the idle ones).
    pub(crate) phase: Cell<Phase>,
    /// The sweep cut the connection's read off: its wait ran out.
    pub(crate) swept: Cell<bool>,
}

/// What a connection waits for, as the timeout sweep sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Reading a body, running the handler, writing: bounded per call, if at all.
    Busy,
    /// Waiting for a next request with nothing buffered, since then (`None`: with
    /// no keep-alive timeout).
    Idle(Option<Instant>),
    /// Reading a request head, which must be complete by then (`None`: no bound).
    Head(Option<Instant>),
}

/// The interim answer to `Expect: 100-continue`.
pub(crate) const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

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
        io.read_from(&self.stream, limit)
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
            if !st.head_sent {
                self.write_all(CONTINUE)?;
            }
        }
        let cfg = &self.config;
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

pub(crate) fn early_eof() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "the client closed the connection before the request body ended",
    )
}

pub(crate) fn too_large_error() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        "the request body is larger than the server accepts",
    )
}
