//! The chunked transfer coding of request bodies (RFC 9112, 7.1): sizes in hex,
//! extensions skipped, trailer fields kept. Strict about line endings (CRLF only) and
//! sizes, so that no two parsers can disagree on where the body ends.

use http::header::{HeaderName, HeaderValue};
use http::HeaderMap;

/// The longest chunk extension accepted (the bytes between the size and its CRLF).
const MAX_EXTENSION: usize = 4096;

#[derive(Debug, Clone)]
pub(crate) enum State {
    /// In the size line: `value` so far, from `digits` hex digits.
    Size {
        value: u64,
        digits: u8,
    },
    /// Whitespace after the size, before `;` or CR.
    SizeSpace,
    /// In the extensions, `len` bytes so far.
    Extension {
        len: usize,
    },
    /// The size line's CR seen; LF next. `value` is the chunk's size.
    SizeLf {
        value: u64,
    },
    /// In a chunk's data, `left` bytes to go.
    Data {
        left: u64,
    },
    /// After a chunk's data: CR, then LF.
    DataCr,
    DataLf,
    /// In the trailer section (after the last chunk): the bytes so far.
    Trailers {
        at_line_start: bool,
        cr: bool,
    },
    /// The body has ended.
    Done,
}

impl State {
    pub(crate) fn new() -> State {
        State::Size {
            value: 0,
            digits: 0,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DecodeError {
    /// The coding is malformed.
    Syntax(&'static str),
    /// The trailer section is over the limit.
    TrailersTooLarge,
}

/// A decoder's step: `consumed` bytes of input taken, `produced` bytes of data
/// written to the output.
pub(crate) struct Step {
    pub(crate) consumed: usize,
    pub(crate) produced: usize,
}

pub(crate) struct Decoder {
    pub(crate) state: State,
    /// The raw trailer section, while in it.
    trailer_bytes: Vec<u8>,
    pub(crate) trailers: Option<HeaderMap>,
    max_trailer_bytes: usize,
    /// The size of the chunk whose size line is being read.
    pending: u64,
}

impl Decoder {
    pub(crate) fn new(max_trailer_bytes: usize) -> Decoder {
        Decoder {
            state: State::new(),
            trailer_bytes: Vec::new(),
            trailers: None,
            max_trailer_bytes,
            pending: 0,
        }
    }

    pub(crate) fn is_done(&self) -> bool {
        matches!(self.state, State::Done)
    }

    /// Decodes from `input` into `out` until `out` has data, the input is used up,
    /// or the body ends.
    pub(crate) fn step(&mut self, input: &[u8], out: &mut [u8]) -> Result<Step, DecodeError> {
        let mut i = 0;
        let mut produced = 0;
        while i < input.len() {
            let b = input[i];
            match &mut self.state {
                State::Size { value, digits } => {
                    if let Some(d) = hex(b) {
                        if *digits >= 15 {
                            return Err(DecodeError::Syntax("chunk size too large"));
                        }
                        *value = *value << 4 | u64::from(d);
                        *digits += 1;
                    } else if *digits == 0 {
                        return Err(DecodeError::Syntax("chunk size is not hex"));
                    } else {
                        let value = *value;
                        self.state = match b {
                            b'\r' => State::SizeLf { value },
                            b';' => State::Extension { len: 0 },
                            b' ' | b'\t' => State::SizeSpace,
                            _ => return Err(DecodeError::Syntax("chunk size is not hex")),
                        };
                        self.remember_size(value);
                    }
                    i += 1;
                }
                State::SizeSpace => {
                    match b {
                        b' ' | b'\t' => {}
                        b';' => self.state = State::Extension { len: 0 },
                        b'\r' => {
                            self.state = State::SizeLf {
                                value: self.pending,
                            }
                        }
                        _ => return Err(DecodeError::Syntax("junk after the chunk size")),
                    }
                    i += 1;
                }
                State::Extension { len } => {
                    match b {
                        b'\r' => {
                            self.state = State::SizeLf {
                                value: self.pending,
                            }
                        }
                        b'\n' => return Err(DecodeError::Syntax("bare LF in a chunk extension")),
                        b if b < 0x20 && b != b'\t' || b == 0x7f => {
                            return Err(DecodeError::Syntax("control byte in a chunk extension"))
                        }
                        _ => {
                            *len += 1;
                            if *len > MAX_EXTENSION {
                                return Err(DecodeError::Syntax("chunk extension too long"));
                            }
                        }
                    }
                    i += 1;
                }
                State::SizeLf { value } => {
                    if b != b'\n' {
                        return Err(DecodeError::Syntax("chunk size line not ended by CRLF"));
                    }
                    self.state = if *value == 0 {
                        State::Trailers {
                            at_line_start: true,
                            cr: false,
                        }
                    } else {
                        State::Data { left: *value }
                    };
                    i += 1;
                }
                State::Data { left } => {
                    if produced == out.len() {
                        break;
                    }
                    let n = (input.len() - i)
                        .min(out.len() - produced)
                        .min(usize::try_from(*left).unwrap_or(usize::MAX));
                    out[produced..produced + n].copy_from_slice(&input[i..i + n]);
                    produced += n;
                    i += n;
                    *left -= n as u64;
                    if *left == 0 {
                        self.state = State::DataCr;
                    }
                }
                State::DataCr => {
                    if b != b'\r' {
                        return Err(DecodeError::Syntax("chunk data not followed by CRLF"));
                    }
                    self.state = State::DataLf;
                    i += 1;
                }
                State::DataLf => {
                    if b != b'\n' {
                        return Err(DecodeError::Syntax("chunk data not followed by CRLF"));
                    }
                    self.state = State::new();
                    i += 1;
                    // Hand back what there is rather than wait for the next chunk.
                    if produced > 0 {
                        break;
                    }
                }
                State::Trailers { at_line_start, cr } => {
                    i += 1;
                    if *cr {
                        if b != b'\n' {
                            return Err(DecodeError::Syntax("bare CR in the trailer section"));
                        }
                        if *at_line_start {
                            self.finish_trailers()?;
                            break;
                        }
                        *cr = false;
                        *at_line_start = true;
                        self.trailer_bytes.extend_from_slice(b"\r\n");
                    } else if b == b'\r' {
                        *cr = true;
                    } else if b == b'\n' {
                        return Err(DecodeError::Syntax("bare LF in the trailer section"));
                    } else {
                        *at_line_start = false;
                        self.trailer_bytes.push(b);
                    }
                    if self.trailer_bytes.len() > self.max_trailer_bytes {
                        return Err(DecodeError::TrailersTooLarge);
                    }
                }
                State::Done => break,
            }
        }
        Ok(Step {
            consumed: i,
            produced,
        })
    }

    fn remember_size(&mut self, value: u64) {
        self.pending = value;
    }

    fn finish_trailers(&mut self) -> Result<(), DecodeError> {
        self.state = State::Done;
        if self.trailer_bytes.is_empty() {
            return Ok(());
        }
        self.trailer_bytes.extend_from_slice(b"\r\n");
        let mut slots = [httparse::EMPTY_HEADER; 64];
        let parsed = httparse::parse_headers(&self.trailer_bytes, &mut slots)
            .map_err(|_| DecodeError::Syntax("malformed trailer field"))?;
        let httparse::Status::Complete((_, fields)) = parsed else {
            return Err(DecodeError::Syntax("malformed trailer section"));
        };
        let mut map = HeaderMap::with_capacity(fields.len());
        for f in fields {
            let name = HeaderName::from_bytes(f.name.as_bytes())
                .map_err(|_| DecodeError::Syntax("malformed trailer field"))?;
            let value = HeaderValue::from_bytes(f.value)
                .map_err(|_| DecodeError::Syntax("malformed trailer field"))?;
            map.append(name, value);
        }
        self.trailers = Some(map);
        self.trailer_bytes = Vec::new();
        Ok(())
    }
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `input` fed in pieces of `piece` bytes, with an output of `out` bytes.
    fn decode(input: &[u8], piece: usize, out: usize) -> Result<(Vec<u8>, Decoder), DecodeError> {
        let mut d = Decoder::new(1024);
        let mut data = Vec::new();
        let mut buf = vec![0u8; out];
        let mut pending: Vec<u8> = Vec::new();
        let mut fed = 0;
        while !d.is_done() {
            if pending.is_empty() {
                if fed == input.len() {
                    break;
                }
                let end = (fed + piece).min(input.len());
                pending.extend_from_slice(&input[fed..end]);
                fed = end;
            }
            let s = d.step(&pending, &mut buf)?;
            data.extend_from_slice(&buf[..s.produced]);
            pending.drain(..s.consumed);
        }
        Ok((data, d))
    }

    #[test]
    fn decodes_in_any_pieces() {
        let raw = b"5;name=value\r\nhello\r\n6\r\n world\r\n0\r\nX-Sum: 11\r\nX-B: 2\r\n\r\n";
        for piece in [1, 2, 3, 7, raw.len()] {
            for out in [1, 4, 64] {
                let (data, d) = decode(raw, piece, out).unwrap();
                assert_eq!(data, b"hello world", "piece {piece} out {out}");
                assert!(d.is_done());
                let t = d.trailers.as_ref().unwrap();
                assert_eq!(t["x-sum"], "11");
                assert_eq!(t["x-b"], "2");
            }
        }
        let (data, d) = decode(b"A \t;x\r\n0123456789\r\n0\r\n\r\n", 3, 8).unwrap();
        assert_eq!(data, b"0123456789");
        assert!(d.trailers.is_none());
    }

    #[test]
    fn refuses_what_parsers_could_disagree_on() {
        for raw in [
            &b"5\nhello\r\n0\r\n\r\n"[..],
            b"5\r\nhello\n0\r\n\r\n",
            b"5\r\nhelloX\r\n0\r\n\r\n",
            b"-5\r\nhello\r\n0\r\n\r\n",
            b"0x5\r\nhello\r\n0\r\n\r\n",
            b"5 x\r\nhello\r\n0\r\n\r\n",
            b"1000000000000000\r\n",
            b"\r\n",
            b"0\r\nX: 1\n\r\n",
        ] {
            assert!(
                matches!(decode(raw, 4, 16), Err(DecodeError::Syntax(_))),
                "{:?}",
                String::from_utf8_lossy(raw)
            );
        }
        let big = format!("0\r\nX: {}\r\n\r\n", "a".repeat(2000));
        assert!(matches!(
            decode(big.as_bytes(), 64, 16),
            Err(DecodeError::TrailersTooLarge)
        ));
    }
}
