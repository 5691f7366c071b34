//! Response bodies, and writing a response in HTTP/1.1's framing.

use crate::conn::{Shared, WRITE_HIGH};
use crate::head::{self, Reject};
use crate::upgrade::Upgraded;
use crate::Body;
use http::header::{CONNECTION, CONTENT_LENGTH, DATE, TRANSFER_ENCODING};
use http::{HeaderMap, Response, StatusCode, Version};
use std::borrow::Cow;
use std::fmt;
use std::io::{self, Read};
use std::rc::Rc;

/// What a handler answers with: bytes, a reader, chunks as they are made, or a
/// takeover of the connection.
///
/// Strings, byte vectors, `()` and a request's [`Body`] convert into it, so a handler
/// can return `Response<String>`, `Response<&'static str>`, `Response<Vec<u8>>` or
/// `Response<ResponseBody>`.
///
/// How it is framed on the wire is the server's business: a body of known length is
/// sent with `Content-Length`, any other with `Transfer-Encoding: chunked` (to an
/// HTTP/1.0 client: by closing the connection after it). A `HEAD` request's response,
/// a `204` and a `304` never carry a body.
///
/// ```
/// use gevent_http::ResponseBody;
///
/// let bytes = ResponseBody::from("Hello, World!");
/// assert_eq!(bytes.len(), Some(13));
/// let lines = ResponseBody::from_chunks((0..3).map(|i| format!("line {i}\n")));
/// assert_eq!(lines.len(), None);
/// let file_like = ResponseBody::from_reader_with_len(std::io::repeat(b'x').take(1 << 20), 1 << 20);
/// assert_eq!(file_like.len(), Some(1 << 20));
/// # use std::io::Read;
/// ```
pub struct ResponseBody {
    kind: Kind,
    /// It is the request's own body (so the request body needs no draining).
    reads_request: bool,
}

type NextChunk = Box<dyn FnMut(&mut Vec<u8>) -> Option<io::Result<()>>>;

enum Kind {
    Bytes(Cow<'static, [u8]>),
    Reader {
        reader: Box<dyn Read>,
        len: Option<u64>,
    },
    Chunks(NextChunk),
    Upgrade(Box<dyn FnOnce(Upgraded)>),
}

impl ResponseBody {
    fn of(kind: Kind) -> ResponseBody {
        ResponseBody {
            kind,
            reads_request: false,
        }
    }

    /// Whether it is a request's own body, streamed back.
    pub(crate) fn reads_request(&self) -> bool {
        self.reads_request
    }

    /// No body.
    pub fn empty() -> ResponseBody {
        ResponseBody::of(Kind::Bytes(Cow::Borrowed(&[])))
    }

    /// A body read from `reader` as it is sent, of unknown length (sent chunked). What
    /// one `read` returns goes out together; bytes are written as soon as a read
    /// returns less than asked or 64 KiB have gathered.
    pub fn from_reader(reader: impl Read + 'static) -> ResponseBody {
        ResponseBody::of(Kind::Reader {
            reader: Box::new(reader),
            len: None,
        })
    }

    /// A body of exactly `len` bytes read from `reader` (sent with `Content-Length`).
    /// A reader that ends early cuts the connection (the client sees a short body);
    /// bytes past `len` are not read.
    pub fn from_reader_with_len(reader: impl Read + 'static, len: u64) -> ResponseBody {
        ResponseBody::of(Kind::Reader {
            reader: Box::new(reader),
            len: Some(len),
        })
    }

    /// A body made of the chunks `chunks` yields (WSGI's iterable), each written to
    /// the client as soon as it is made: a handler can stream, sleeping between chunks.
    /// Empty chunks are skipped.
    pub fn from_chunks<I, T>(chunks: I) -> ResponseBody
    where
        I: IntoIterator<Item = T>,
        I::IntoIter: 'static,
        T: AsRef<[u8]>,
    {
        let mut it = chunks.into_iter();
        ResponseBody::of(Kind::Chunks(Box::new(move |out: &mut Vec<u8>| {
            let c = it.next()?;
            out.extend_from_slice(c.as_ref());
            Some(Ok(()))
        })))
    }

    /// As [`from_chunks`](ResponseBody::from_chunks), for chunks that can fail: an
    /// error ends the response early (the connection is cut, so the client sees the
    /// body did not end) and is logged.
    pub fn try_from_chunks<I, T>(chunks: I) -> ResponseBody
    where
        I: IntoIterator<Item = io::Result<T>>,
        I::IntoIter: 'static,
        T: AsRef<[u8]>,
    {
        let mut it = chunks.into_iter();
        ResponseBody::of(Kind::Chunks(Box::new(move |out: &mut Vec<u8>| {
            Some(it.next()?.map(|c| out.extend_from_slice(c.as_ref())))
        })))
    }

    /// A takeover of the connection, for a `101 Switching Protocols` response: once
    /// the response head is sent, `f` runs (in the connection's greenlet) with the raw
    /// connection, and the connection is its to keep or close. The response's status
    /// must be 101, and it carries the `Connection: upgrade` and `Upgrade` headers of
    /// the protocol it switches to.
    pub fn upgrade(f: impl FnOnce(Upgraded) + 'static) -> ResponseBody {
        ResponseBody::of(Kind::Upgrade(Box::new(f)))
    }

    /// The body's length, if known before it is sent.
    pub fn len(&self) -> Option<u64> {
        match &self.kind {
            Kind::Bytes(b) => Some(b.len() as u64),
            Kind::Reader { len, .. } => *len,
            Kind::Chunks(_) | Kind::Upgrade(_) => None,
        }
    }

    /// Whether the body is known to be empty.
    pub fn is_empty(&self) -> bool {
        self.len() == Some(0)
    }
}

impl Default for ResponseBody {
    fn default() -> ResponseBody {
        ResponseBody::empty()
    }
}

impl fmt::Debug for ResponseBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.kind {
            Kind::Bytes(_) => "bytes",
            Kind::Reader { .. } => "reader",
            Kind::Chunks(_) => "chunks",
            Kind::Upgrade(_) => "upgrade",
        };
        f.debug_struct("ResponseBody")
            .field("kind", &kind)
            .field("len", &self.len())
            .finish()
    }
}

impl From<()> for ResponseBody {
    fn from(_: ()) -> ResponseBody {
        ResponseBody::empty()
    }
}

impl From<&'static str> for ResponseBody {
    fn from(s: &'static str) -> ResponseBody {
        ResponseBody::of(Kind::Bytes(Cow::Borrowed(s.as_bytes())))
    }
}

impl From<String> for ResponseBody {
    fn from(s: String) -> ResponseBody {
        ResponseBody::of(Kind::Bytes(Cow::Owned(s.into_bytes())))
    }
}

impl From<&'static [u8]> for ResponseBody {
    fn from(b: &'static [u8]) -> ResponseBody {
        ResponseBody::of(Kind::Bytes(Cow::Borrowed(b)))
    }
}

impl From<Vec<u8>> for ResponseBody {
    fn from(b: Vec<u8>) -> ResponseBody {
        ResponseBody::of(Kind::Bytes(Cow::Owned(b)))
    }
}

impl From<Cow<'static, [u8]>> for ResponseBody {
    fn from(b: Cow<'static, [u8]>) -> ResponseBody {
        ResponseBody::of(Kind::Bytes(b))
    }
}

/// A request's body streamed back (its length, if it has one, is the response's).
impl From<Body> for ResponseBody {
    fn from(b: Body) -> ResponseBody {
        let len = b.content_length();
        ResponseBody {
            kind: Kind::Reader {
                reader: Box::new(b),
                len,
            },
            reads_request: true,
        }
    }
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

/// What the response is written for.
pub(crate) struct Context {
    pub(crate) head_request: bool,
    pub(crate) version: Version,
    /// The connection may go on after it (the request asked, the server allows).
    pub(crate) keep_alive: bool,
}

/// What was sent.
pub(crate) struct Sent {
    pub(crate) status: StatusCode,
    pub(crate) body_bytes: u64,
    pub(crate) keep_alive: bool,
}

pub(crate) fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// A chunk's size line (`n` in hex, then CRLF), in `buf`; returns its bytes.
fn chunk_size_line(buf: &mut [u8; 18], n: usize) -> &[u8] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    buf[16..].copy_from_slice(b"\r\n");
    let mut i = 16;
    let mut n = n;
    loop {
        i -= 1;
        buf[i] = HEX[n & 15];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    &buf[i..]
}

/// A header value, as a comma-separated list, contains `token`.
fn has_token(value: &http::HeaderValue, token: &str) -> bool {
    value
        .as_bytes()
        .split(|&b| b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
}

/// A `Content-Length` value, if it is one.
fn valid_length(value: &http::HeaderValue) -> Option<u64> {
    let v = value.as_bytes().trim_ascii();
    if v.is_empty() || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(v).ok()?.parse().ok()
}

/// The most headers a written response's map may hold, and hold room for, and still
/// be kept for the connection's next request (its room for repeated names' values
/// grows with the values it held).
const SPARE_CAPACITY: usize = 48;

fn internal(reason: &'static str) -> Ended {
    log::error!("HTTP handler answered with an unusable response: {reason}");
    Ended::Refuse(head::reject(StatusCode::INTERNAL_SERVER_ERROR, reason))
}

/// How the body is delimited on the wire.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Wire {
    /// No body, no framing header (HEAD of an unknown length, 204, 304, 101).
    None,
    Length(u64),
    Chunked,
    /// Ended by closing the connection (an HTTP/1.0 client, unknown length).
    Close,
}

/// Writes `resp` (its head into the connection's buffer, its body after) for a
/// request of `ctx`. Its header map, once written and emptied, is left in `spare`
/// (unless it grew large).
pub(crate) fn send(
    shared: &Rc<Shared>,
    resp: Response<ResponseBody>,
    ctx: &Context,
    spare: &mut HeaderMap,
) -> Result<Sent, Ended> {
    let (parts, body) = resp.into_parts();
    let http::response::Parts {
        status,
        mut headers,
        ..
    } = parts;
    let upgrade = status == StatusCode::SWITCHING_PROTOCOLS;
    match (&body.kind, upgrade) {
        (Kind::Upgrade(_), false) => return Err(internal("an upgrade needs status 101")),
        (Kind::Upgrade(_), true) => {}
        (_, true) => return Err(internal("status 101 needs ResponseBody::upgrade")),
        _ if status.is_informational() => {
            return Err(internal("a handler cannot answer with a 1xx status"))
        }
        _ => {}
    }
    let no_body = upgrade || status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED;
    let keep;
    let wire;
    {
        let mut st = shared.body.try_borrow_mut().map_err(|_| Ended::Io)?;
        let mut io = shared.io.try_borrow_mut().map_err(|_| Ended::Io)?;
        let out = &mut io.wbuf;
        // A response that streams the request's body back asks for that body: the
        // client is told to send it before the head that answers it.
        if st.continue_owed && body.reads_request && !ctx.head_request && !no_body {
            st.continue_owed = false;
            out.extend_from_slice(crate::conn::CONTINUE);
        }
        st.head_sent = true;
        drop(st);
        if status == StatusCode::OK {
            out.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
        } else {
            out.extend_from_slice(b"HTTP/1.1 ");
            out.extend_from_slice(status.as_str().as_bytes());
            out.push(b' ');
            out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        // One pass over the handler's headers writes them and notes the ones the
        // framing is made of; those are the server's to write.
        let mut close_asked = false;
        let mut given_length: Option<Option<u64>> = None;
        let mut dated = false;
        for (name, value) in &headers {
            if name == CONTENT_LENGTH {
                given_length.get_or_insert_with(|| valid_length(value));
                continue;
            }
            if name == TRANSFER_ENCODING {
                continue;
            }
            if name == CONNECTION {
                close_asked |= has_token(value, "close");
                if !upgrade {
                    continue;
                }
            }
            dated |= name == DATE;
            out.extend_from_slice(name.as_str().as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        let given_length = given_length.flatten();
        let length = match &body.kind {
            Kind::Reader { len: None, .. } => given_length,
            _ => body.len(),
        };
        wire = if no_body {
            Wire::None
        } else if ctx.head_request {
            // The headers a GET would get, without its body; a length given by the
            // handler is what it says the GET's would be.
            let n = if body.is_empty() {
                given_length.or(length)
            } else {
                length
            };
            n.map_or(Wire::None, Wire::Length)
        } else {
            match length {
                Some(n) => Wire::Length(n),
                None if ctx.version == Version::HTTP_11 => Wire::Chunked,
                None => Wire::Close,
            }
        };
        keep = ctx.keep_alive && !close_asked && wire != Wire::Close;
        if !dated {
            out.extend_from_slice(b"date: ");
            crate::date::append(out);
            out.extend_from_slice(b"\r\n");
        }
        match wire {
            Wire::Length(n) => {
                out.extend_from_slice(b"content-length: ");
                push_decimal(out, n);
                out.extend_from_slice(b"\r\n");
            }
            Wire::Chunked => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
            Wire::None | Wire::Close => {}
        }
        if !upgrade {
            match (keep, ctx.version) {
                (false, Version::HTTP_11) => out.extend_from_slice(b"connection: close\r\n"),
                (true, Version::HTTP_10) => out.extend_from_slice(b"connection: keep-alive\r\n"),
                _ => {}
            }
        }
        out.extend_from_slice(b"\r\n");
    }
    if headers.capacity() <= SPARE_CAPACITY && headers.len() <= SPARE_CAPACITY {
        headers.clear();
        *spare = headers;
    }

    let mut sent = Sent {
        status,
        body_bytes: 0,
        keep_alive: keep,
    };
    if ctx.head_request || no_body {
        if let Kind::Upgrade(f) = body.kind {
            shared.flush().map_err(|_| Ended::Io)?;
            f(Upgraded::new(shared.clone()));
            return Err(Ended::Upgraded);
        }
        return Ok(sent);
    }
    match body.kind {
        Kind::Bytes(b) => {
            shared.write_all(&b).map_err(|_| Ended::Io)?;
            sent.body_bytes = b.len() as u64;
        }
        Kind::Reader { mut reader, .. } => {
            sent.body_bytes = stream_reader(shared, &mut *reader, wire)?;
        }
        Kind::Chunks(mut next) => {
            let mut chunk = Vec::new();
            loop {
                chunk.clear();
                match next(&mut chunk) {
                    None => break,
                    Some(Ok(())) => {}
                    Some(Err(e)) => {
                        log::warn!("HTTP response body to {} failed: {e}", shared.peer);
                        return Err(Ended::Io);
                    }
                }
                if chunk.is_empty() {
                    continue;
                }
                write_piece(shared, &chunk, wire)?;
                shared.flush().map_err(|_| Ended::Io)?;
                sent.body_bytes += chunk.len() as u64;
            }
        }
        Kind::Upgrade(_) => unreachable!("an upgrade has no body (checked above)"),
    }
    if wire == Wire::Chunked {
        shared.write_all(b"0\r\n\r\n").map_err(|_| Ended::Io)?;
    }
    Ok(sent)
}

/// Writes one piece of the body in `wire`'s framing.
fn write_piece(shared: &Shared, data: &[u8], wire: Wire) -> Result<(), Ended> {
    if wire == Wire::Chunked {
        let mut line = [0u8; 18];
        shared
            .write_all(chunk_size_line(&mut line, data.len()))
            .map_err(|_| Ended::Io)?;
        shared.write_all(data).map_err(|_| Ended::Io)?;
        shared.write_all(b"\r\n").map_err(|_| Ended::Io)
    } else {
        shared.write_all(data).map_err(|_| Ended::Io)
    }
}

/// Sends what `reader` gives, at most the length `wire` says.
fn stream_reader(shared: &Shared, reader: &mut dyn Read, wire: Wire) -> Result<u64, Ended> {
    let mut left = match wire {
        Wire::Length(n) => n,
        _ => u64::MAX,
    };
    // No more room than the body needs, up to the write threshold.
    let mut scratch = vec![0u8; usize::try_from(left).unwrap_or(usize::MAX).min(WRITE_HIGH)];
    let mut total = 0u64;
    while left > 0 {
        let want = scratch
            .len()
            .min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = match reader.read(&mut scratch[..want]) {
            Ok(0) if matches!(wire, Wire::Length(_)) => {
                log::warn!(
                    "HTTP response body to {} ended {left} bytes short of its length",
                    shared.peer
                );
                return Err(Ended::Io);
            }
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                log::warn!("HTTP response body to {} failed: {e}", shared.peer);
                return Err(Ended::Io);
            }
        };
        write_piece(shared, &scratch[..n], wire)?;
        total += n as u64;
        left -= n as u64;
        if n < want {
            shared.flush().map_err(|_| Ended::Io)?;
        }
    }
    Ok(total)
}
