//! Reading a request head: httparse's parse, then the checks of RFC 9112 that keep
//! one request from being read as another (request smuggling), into `http` types.

use crate::config::Config;
use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::{Method, Request, StatusCode, Uri, Version};
use std::mem::MaybeUninit;
use std::ops::Range;

/// How the request's body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// No body.
    Empty,
    /// `Content-Length: n` (n > 0).
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// What the server needs to know of a complete, valid request head besides what its
/// `Request` says.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Head {
    pub(crate) framing: Framing,
    /// The client asked to keep the connection (HTTP/1.1 without `close`, or
    /// HTTP/1.0 with `keep-alive`).
    pub(crate) keep_alive: bool,
    /// `Expect: 100-continue` from an HTTP/1.1 client.
    pub(crate) expect_continue: bool,
}

/// A complete head checked for framing, whose target and fields are still
/// positions in the read buffer: [`finish`] makes them `http` types that share the
/// head's bytes instead of copying each.
pub(crate) struct Scan {
    pub(crate) method: Method,
    target: Range<usize>,
    pub(crate) version: Version,
    pub(crate) framing: Framing,
    pub(crate) keep_alive: bool,
    pub(crate) expect_continue: bool,
    /// The bytes the head takes at the start of the buffer.
    pub(crate) len: usize,
}

/// Where a header field's name and value are in the head.
#[derive(Debug, Clone)]
pub(crate) struct FieldPos {
    name: Range<usize>,
    value: Range<usize>,
}

/// The position of `part` (a slice of `base`) in `base`.
fn position(base: &[u8], part: &[u8]) -> Range<usize> {
    let start = (part.as_ptr() as usize).wrapping_sub(base.as_ptr() as usize);
    start..start + part.len()
}

/// Why a request is refused before any handler sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Reject {
    pub(crate) status: StatusCode,
    pub(crate) reason: &'static str,
}

pub(crate) fn reject(status: StatusCode, reason: &'static str) -> Reject {
    Reject { status, reason }
}

fn bad(reason: &'static str) -> Reject {
    reject(StatusCode::BAD_REQUEST, reason)
}

// A head is the common case: boxing it would cost an allocation per request.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Parsed {
    /// More bytes are needed.
    Partial,
    Head(Scan),
    Reject(Reject),
}

/// Header slots on the stack; more (a `max_headers` over this) are on the heap.
const STACK_HEADERS: usize = 128;

/// Parses the head at the start of `buf`; a complete one's field positions are left
/// in `fields`.
pub(crate) fn parse(buf: &[u8], cfg: &Config, fields: &mut Vec<FieldPos>) -> Parsed {
    if buf.is_empty() {
        return Parsed::Partial;
    }
    let mut stack = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; STACK_HEADERS];
    let mut heap = Vec::new();
    let slots: &mut [MaybeUninit<httparse::Header<'_>>] = if cfg.max_headers <= STACK_HEADERS {
        &mut stack[..cfg.max_headers]
    } else {
        heap.resize_with(cfg.max_headers, MaybeUninit::uninit);
        &mut heap[..]
    };
    let mut req = httparse::Request::new(&mut []);
    let len = match req.parse_with_uninit_headers(buf, slots) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(httparse::Error::Version) => {
            return Parsed::Reject(if names_a_version(buf) {
                reject(
                    StatusCode::HTTP_VERSION_NOT_SUPPORTED,
                    "only HTTP/1.0 and HTTP/1.1 are served",
                )
            } else {
                bad("malformed request line")
            })
        }
        Err(httparse::Error::TooManyHeaders) => {
            return Parsed::Reject(reject(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "too many header fields",
            ))
        }
        Err(httparse::Error::HeaderName | httparse::Error::HeaderValue) => {
            return Parsed::Reject(bad("malformed header field"))
        }
        Err(httparse::Error::NewLine) => return Parsed::Reject(bad("malformed line ending")),
        Err(_) => return Parsed::Reject(bad("malformed request line")),
    };
    if len > cfg.max_header_bytes {
        return Parsed::Reject(too_large(buf, cfg));
    }
    match scan(buf, &req, len, cfg, fields) {
        Ok(head) => Parsed::Head(head),
        Err(r) => Parsed::Reject(r),
    }
}

/// The head `scan` found, written into `req` in `http` types: `head` is its bytes
/// (the buffer's first `scan.len`), which the target and the field values share. The
/// fields go into `req`'s header map (emptied first), so that a map's allocation
/// can serve request after request. `scan` and `fields` must be what [`parse`] made
/// of these same bytes: the field values are taken as httparse checked them.
pub(crate) fn finish<B>(
    scan: Scan,
    head: &Bytes,
    fields: &[FieldPos],
    req: &mut Request<B>,
) -> Result<Head, Reject> {
    *req.uri_mut() = target_uri(&scan.method, head.slice(scan.target))?;
    *req.method_mut() = scan.method;
    *req.version_mut() = scan.version;
    let headers = req.headers_mut();
    if !headers.is_empty() {
        headers.clear();
    }
    let too_many = || {
        reject(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "too many header fields",
        )
    };
    headers.try_reserve(fields.len()).map_err(|_| too_many())?;
    for f in fields {
        let name = HeaderName::from_bytes(&head[f.name.clone()])
            .map_err(|_| bad("invalid header name"))?;
        let value = field_value(head.slice(f.value.clone()));
        headers.try_append(name, value).map_err(|_| too_many())?;
    }
    Ok(Head {
        framing: scan.framing,
        keep_alive: scan.keep_alive,
        expect_continue: scan.expect_continue,
    })
}

/// The refusal for a head that does not fit in `max_header_bytes`: 414 when the
/// request line alone does not, 431 otherwise.
pub(crate) fn too_large(buf: &[u8], cfg: &Config) -> Reject {
    // Leading empty lines are ignored before a request line (RFC 9112, 2.2).
    let start = buf
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(buf.len());
    let line_end = buf[start..].iter().position(|&b| b == b'\n');
    match line_end {
        Some(n) if n <= cfg.max_header_bytes => reject(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "the request's header section is too large",
        ),
        _ => reject(StatusCode::URI_TOO_LONG, "the request line is too long"),
    }
}

/// Whether the request line ends in a well-formed `HTTP/x.y` (or `HTTP/x`) that
/// httparse refused: a version this server does not speak, not garbage.
fn names_a_version(buf: &[u8]) -> bool {
    let start = buf
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(buf.len());
    let buf = &buf[start..];
    let Some(end) = buf.iter().position(|&b| b == b'\r' || b == b'\n') else {
        return false;
    };
    let line = &buf[..end];
    let Some(sp) = line.iter().rposition(|&b| b == b' ') else {
        return false;
    };
    match &line[sp + 1..] {
        [b'H', b'T', b'T', b'P', b'/', major] => major.is_ascii_digit(),
        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor] => {
            major.is_ascii_digit() && minor.is_ascii_digit()
        }
        _ => false,
    }
}

fn scan(
    buf: &[u8],
    req: &httparse::Request<'_, '_>,
    len: usize,
    cfg: &Config,
    fields: &mut Vec<FieldPos>,
) -> Result<Scan, Reject> {
    let (Some(method), Some(target), Some(minor)) = (req.method, req.path, req.version) else {
        return Err(bad("incomplete request line"));
    };
    let version = if minor == 0 {
        Version::HTTP_10
    } else {
        Version::HTTP_11
    };
    let method = Method::from_bytes(method.as_bytes()).map_err(|_| bad("invalid method"))?;
    let target = position(buf, target.as_bytes());

    fields.clear();
    let mut hosts = 0u32;
    let mut length: Option<u64> = None;
    let mut chunked = 0u32;
    let mut other_coding = false;
    let mut chunked_last = false;
    let mut te = false;
    let mut conn_close = false;
    let mut conn_keep_alive = false;
    let mut expect_continue = false;
    for h in req.headers.iter() {
        let name = h.name.as_bytes();
        let value = h.value;
        match name.len() {
            4 if name.eq_ignore_ascii_case(b"host") => hosts += 1,
            6 if name.eq_ignore_ascii_case(b"expect") => {
                if value.eq_ignore_ascii_case(b"100-continue") {
                    expect_continue = true;
                } else {
                    return Err(reject(
                        StatusCode::EXPECTATION_FAILED,
                        "the only expectation served is 100-continue",
                    ));
                }
            }
            10 if name.eq_ignore_ascii_case(b"connection") => {
                for token in list(value) {
                    if token.eq_ignore_ascii_case(b"close") {
                        conn_close = true;
                    } else if token.eq_ignore_ascii_case(b"keep-alive") {
                        conn_keep_alive = true;
                    }
                }
            }
            14 if name.eq_ignore_ascii_case(b"content-length") => {
                for item in list_keep_empty(value) {
                    let n = content_length(item).ok_or(bad("invalid Content-Length"))?;
                    if length.is_some_and(|l| l != n) {
                        return Err(bad("conflicting Content-Length values"));
                    }
                    length = Some(n);
                }
            }
            17 if name.eq_ignore_ascii_case(b"transfer-encoding") => {
                te = true;
                for coding in list(value) {
                    // A coding's parameters (`;q=..`) do not change its name.
                    let name = coding.split(|&b| b == b';').next().unwrap_or(coding);
                    let name = trim(name);
                    if name.eq_ignore_ascii_case(b"chunked") {
                        chunked += 1;
                        chunked_last = true;
                    } else {
                        other_coding = true;
                        chunked_last = false;
                    }
                }
            }
            _ => {}
        }
        fields.push(FieldPos {
            name: position(buf, name),
            value: position(buf, value),
        });
    }

    if version == Version::HTTP_11 && hosts != 1 {
        return Err(bad(if hosts == 0 {
            "an HTTP/1.1 request needs a Host header"
        } else {
            "more than one Host header"
        }));
    }
    let framing = if te {
        if version == Version::HTTP_10 {
            return Err(bad("Transfer-Encoding in an HTTP/1.0 request"));
        }
        if length.is_some() {
            return Err(bad("both Content-Length and Transfer-Encoding"));
        }
        if !chunked_last || chunked > 1 {
            return Err(bad("chunked must be the last transfer coding, once"));
        }
        if other_coding {
            return Err(reject(
                StatusCode::NOT_IMPLEMENTED,
                "the only transfer coding served is chunked",
            ));
        }
        Framing::Chunked
    } else {
        match length {
            None | Some(0) => Framing::Empty,
            Some(n) => Framing::Length(n),
        }
    };
    let keep_alive =
        cfg.keep_alive && !conn_close && (version == Version::HTTP_11 || conn_keep_alive);
    Ok(Scan {
        method,
        target,
        version,
        framing,
        keep_alive,
        expect_continue: expect_continue
            && version == Version::HTTP_11
            && framing != Framing::Empty,
        len,
    })
}

/// A field value httparse accepted, as a `HeaderValue` sharing the head's bytes.
fn field_value(value: Bytes) -> HeaderValue {
    debug_assert!(value.iter().copied().all(httparse_value_byte));
    // SAFETY: httparse accepts in a field value only HTAB, SP, visible ASCII and
    // obs-text (0x80-0xFF), all of which `HeaderValue` allows (it refuses only the
    // other controls and DEL). `field_bytes_httparse_accepts_are_valid_header_values`
    // checks this for every byte against the httparse and http in use.
    unsafe { HeaderValue::from_maybe_shared_unchecked(value) }
}

/// The bytes httparse lets into a field value.
fn httparse_value_byte(b: u8) -> bool {
    b == b'\t' || (b' '..=0x7e).contains(&b) || b >= 0x80
}

/// The request target as a `Uri`, in the form its method allows (RFC 9112, 3.2).
fn target_uri(method: &Method, target: Bytes) -> Result<Uri, Reject> {
    let star = &target[..] == b"*";
    let origin = target.first() == Some(&b'/');
    let uri = Uri::from_maybe_shared(target).map_err(|_| bad("invalid request target"))?;
    let ok = if method == Method::CONNECT {
        // authority-form: host:port only.
        uri.scheme().is_none() && uri.authority().is_some() && !origin
    } else if star {
        method == Method::OPTIONS
    } else {
        origin || (uri.scheme().is_some() && uri.authority().is_some())
    };
    if ok {
        Ok(uri)
    } else {
        Err(bad("request target not allowed for this method"))
    }
}

/// A Content-Length element: 1 to 19 digits, nothing else.
fn content_length(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 19 || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    s.iter().try_fold(0u64, |n, &d| {
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

fn trim(s: &[u8]) -> &[u8] {
    let start = s
        .iter()
        .position(|&b| b != b' ' && b != b'\t')
        .unwrap_or(s.len());
    let end = s
        .iter()
        .rposition(|&b| b != b' ' && b != b'\t')
        .map_or(start, |e| e + 1);
    &s[start..end]
}

/// The elements of a comma-separated header value, trimmed, empty ones skipped.
fn list(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(trim)
        .filter(|s| !s.is_empty())
}

/// As [`list`], keeping empty elements (an empty Content-Length is invalid).
fn list_keep_empty(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value.split(|&b| b == b',').map(trim)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The head of `raw` and the request made of it, or the status refusing it.
    fn read(raw: &[u8], mut req: Request<()>) -> Result<(Head, Request<()>), StatusCode> {
        let mut fields = Vec::new();
        match parse(raw, &Config::default(), &mut fields) {
            Parsed::Head(h) => {
                let bytes = Bytes::copy_from_slice(&raw[..h.len]);
                let head = finish(h, &bytes, &fields, &mut req).map_err(|r| r.status)?;
                Ok((head, req))
            }
            Parsed::Reject(r) => Err(r.status),
            Parsed::Partial => panic!("partial: {raw:?}"),
        }
    }

    fn status(raw: &str) -> Result<Head, StatusCode> {
        read(raw.as_bytes(), Request::new(())).map(|(h, _)| h)
    }

    fn request(raw: &str) -> Request<()> {
        match read(raw.as_bytes(), Request::new(())) {
            Ok((_, req)) => req,
            Err(status) => panic!("{status} for {raw:?}"),
        }
    }

    #[test]
    fn framing_and_smuggling() {
        let h = status("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n").unwrap();
        assert_eq!(h.framing, Framing::Length(5));
        let h = status("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n").unwrap();
        assert_eq!(h.framing, Framing::Length(5));
        let h = status("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n").unwrap();
        assert_eq!(h.framing, Framing::Chunked);
        for raw in [
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 6\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: abc\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: \r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length : 5\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n",
            "GET / HTTP/1.1\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            "GET x HTTP/1.1\r\nHost: a\r\n\r\n",
            "GET * HTTP/1.1\r\nHost: a\r\n\r\n",
            "garbage\r\n\r\n",
        ] {
            assert_eq!(status(raw).err(), Some(StatusCode::BAD_REQUEST), "{raw:?}");
        }
        assert_eq!(
            status("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n").err(),
            Some(StatusCode::NOT_IMPLEMENTED)
        );
    }

    /// What `field_value` relies on: every byte httparse lets into a field value is
    /// one `HeaderValue` allows, and the bytes it refuses are refused here too.
    #[test]
    fn field_bytes_httparse_accepts_are_valid_header_values() {
        // At each position of a 3-byte value and of a 70-byte one, so that httparse's
        // byte-at-a-time scan and its 8-, 16- and 32-byte ones all see the byte.
        let mut cases = vec![(3, 1)];
        cases.extend([0, 7, 8, 15, 16, 31, 32, 40, 63, 68].map(|at| (70, at)));
        for b in 0..=255u8 {
            for &(len, at) in &cases {
                let mut value = vec![b'v'; len];
                value[at] = b;
                let mut raw = b"GET / HTTP/1.1\r\nHost: a\r\nX: w".to_vec();
                raw.extend_from_slice(&value);
                raw.extend_from_slice(b"w\r\n\r\n");
                match read(&raw, Request::new(())) {
                    Ok((_, req)) => {
                        assert!(httparse_value_byte(b), "httparse accepted {b:#04x} at {at}");
                        let got = req.headers()["x"].as_bytes();
                        assert!(
                            HeaderValue::from_bytes(got).is_ok(),
                            "{b:#04x} is not a valid header value byte"
                        );
                        assert_eq!(&got[1..=len], &value[..], "{b:#04x} at {at}");
                    }
                    Err(_) => {
                        assert!(!httparse_value_byte(b), "httparse refused {b:#04x} at {at}")
                    }
                }
            }
        }
    }

    #[test]
    fn a_recycled_map_holds_only_the_new_fields() {
        let mut old = Request::new(());
        old.headers_mut()
            .insert("x-old", HeaderValue::from_static("1"));
        let raw = b"GET / HTTP/1.1\r\nHost: a\r\nX-New: 2\r\n\r\n";
        let (_, req) = read(raw, old).unwrap();
        assert_eq!(req.headers().len(), 2);
        assert!(req.headers().get("x-old").is_none());
        assert_eq!(req.headers()["x-new"], "2");
    }

    #[test]
    fn versions() {
        assert_eq!(
            status("GET / HTTP/2.0\r\nHost: a\r\n\r\n").err(),
            Some(StatusCode::HTTP_VERSION_NOT_SUPPORTED)
        );
        assert_eq!(
            status("GET / HTTP/3\r\nHost: a\r\n\r\n").err(),
            Some(StatusCode::HTTP_VERSION_NOT_SUPPORTED)
        );
        assert_eq!(
            status("GET / HTTQ/1.1\r\nHost: a\r\n\r\n").err(),
            Some(StatusCode::BAD_REQUEST)
        );
        let h = status("GET / HTTP/1.0\r\n\r\n").unwrap();
        assert!(!h.keep_alive);
        let h = status("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").unwrap();
        assert!(h.keep_alive);
        let h = status("GET / HTTP/1.1\r\nHost: a\r\nConnection: foo, close\r\n\r\n").unwrap();
        assert!(!h.keep_alive);
    }

    #[test]
    fn target_forms() {
        assert!(status("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n").is_ok());
        assert!(status("CONNECT a.example:443 HTTP/1.1\r\nHost: a\r\n\r\n").is_ok());
        let req = request("GET http://a.example/x?y HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!(req.uri().path(), "/x");
        assert_eq!(
            status("GET / HTTP/1.1\r\nHost: a\r\nExpect: magic\r\n\r\n").err(),
            Some(StatusCode::EXPECTATION_FAILED)
        );
    }

    #[test]
    fn oversized_heads() {
        let cfg = Config {
            max_header_bytes: 100,
            ..Config::default()
        };
        let long_line = format!("GET /{} HTTP/1.1\r\n", "a".repeat(200));
        assert_eq!(
            too_large(long_line.as_bytes(), &cfg).status,
            StatusCode::URI_TOO_LONG
        );
        let long_headers = format!("GET / HTTP/1.1\r\nX: {}\r\n", "a".repeat(200));
        assert_eq!(
            too_large(long_headers.as_bytes(), &cfg).status,
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
        );
        let many: String = (0..101).map(|i| format!("X-{i}: v\r\n")).collect();
        assert_eq!(
            status(&format!("GET / HTTP/1.1\r\nHost: a\r\n{many}\r\n")).err(),
            Some(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE)
        );
    }
}
