//! The request body: read lazily, as `std::io::Read`, from the connection.

use crate::conn::Shared;
use crate::head::Framing;
use http::HeaderMap;
use std::fmt;
use std::io::{self, Read};
use std::net::SocketAddr;
use std::rc::Rc;

/// A request's body, read from the connection as the handler reads it.
///
/// `Content-Length` and chunked bodies (with chunk extensions, which are skipped, and
/// trailer fields, which [`trailers`](Body::trailers) gives once the body has been
/// read) read the same way: `read` returns the body's bytes, then `Ok(0)`. Nothing is
/// read before the handler asks, so a handler that answers without reading the body
/// never waits for it; a client that sent `Expect: 100-continue` is told to go on the
/// first time the handler reads.
///
/// A body that breaks (malformed chunks, the client gone mid-body, over
/// [`Config::max_body_bytes`](crate::Config::max_body_bytes)) fails the read with an
/// error, and the server answers `400` or `413` whatever the handler returns.
///
/// The body can be the response's body ([`ResponseBody`](crate::ResponseBody) is
/// `From<Body>`): the request's bytes are then streamed back as they come.
///
/// ```
/// use gevent_http::Body;
/// use std::io::Read;
///
/// // Bodies made by hand, for testing handlers without a server:
/// let mut body = Body::from("hello");
/// let mut text = String::new();
/// body.read_to_string(&mut text)?;
/// assert_eq!(text, "hello");
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Body {
    inner: Inner,
}

enum Inner {
    Conn {
        shared: Rc<Shared>,
        seq: u64,
        length: Option<u64>,
        chunked: bool,
    },
    Bytes(io::Cursor<Vec<u8>>),
}

impl Body {
    pub(crate) fn conn(
        shared: Rc<Shared>,
        seq: u64,
        length: Option<u64>,
        framing: Framing,
    ) -> Body {
        Body {
            inner: Inner::Conn {
                shared,
                seq,
                length: match framing {
                    Framing::Empty => Some(0),
                    _ => length,
                },
                chunked: framing == Framing::Chunked,
            },
        }
    }

    /// An empty body.
    pub fn empty() -> Body {
        Body::from(Vec::new())
    }

    /// The body's length, if the request said it (`Content-Length`, or no body at
    /// all); `None` for a chunked body.
    pub fn content_length(&self) -> Option<u64> {
        match &self.inner {
            Inner::Conn { length, .. } => *length,
            Inner::Bytes(c) => Some(c.get_ref().len() as u64),
        }
    }

    /// Whether the body is sent in the chunked coding.
    pub fn is_chunked(&self) -> bool {
        matches!(&self.inner, Inner::Conn { chunked: true, .. })
    }

    /// The trailer fields of a chunked body, once it has been read to its end
    /// (`None` before, or if it had none).
    pub fn trailers(&self) -> Option<HeaderMap> {
        match &self.inner {
            Inner::Conn { shared, seq, .. } => {
                let st = shared.body.try_borrow().ok()?;
                if st.seq != *seq {
                    return None;
                }
                st.decoder.as_ref()?.trailers.clone()
            }
            Inner::Bytes(_) => None,
        }
    }

    /// The client's address (`None` for a body made by hand).
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        match &self.inner {
            Inner::Conn { shared, .. } => Some(shared.peer),
            Inner::Bytes(_) => None,
        }
    }

    /// The server's address the client connected to (`None` for a body made by hand).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        match &self.inner {
            Inner::Conn { shared, .. } => Some(shared.local),
            Inner::Bytes(_) => None,
        }
    }
}

impl Read for Body {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match &mut self.inner {
            Inner::Conn { shared, seq, .. } => shared.read_body(*seq, buf),
            Inner::Bytes(c) => c.read(buf),
        }
    }
}

impl Default for Body {
    fn default() -> Body {
        Body::empty()
    }
}

impl From<Vec<u8>> for Body {
    fn from(v: Vec<u8>) -> Body {
        Body {
            inner: Inner::Bytes(io::Cursor::new(v)),
        }
    }
}

impl From<&[u8]> for Body {
    fn from(v: &[u8]) -> Body {
        Body::from(v.to_vec())
    }
}

impl From<String> for Body {
    fn from(s: String) -> Body {
        Body::from(s.into_bytes())
    }
}

impl From<&str> for Body {
    fn from(s: &str) -> Body {
        Body::from(s.as_bytes())
    }
}

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Body")
            .field("content_length", &self.content_length())
            .field("chunked", &self.is_chunked())
            .finish_non_exhaustive()
    }
}
