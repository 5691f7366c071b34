//! The connection, handed over after a `101 Switching Protocols`.

use crate::conn::{busy, Shared};
use gevent_hub::net::TcpStream;
use std::fmt;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::rc::Rc;

/// The raw connection of an upgraded request ([`ResponseBody::upgrade`](crate::ResponseBody::upgrade)):
/// `Read` and `Write` over the client's socket, starting with any bytes the client
/// sent after its request head. A WebSocket library that works over `Read + Write`
/// (such as `tungstenite`'s `WebSocket::from_raw_socket`) takes it as it is.
///
/// Reads have no timeout (set one on [`stream`](Upgraded::stream) if wanted); writes
/// keep the server's [`Config::write_timeout`](crate::Config::write_timeout). The
/// connection closes when the upgrade's function returns and this is dropped.
pub struct Upgraded {
    shared: Rc<Shared>,
}

impl Upgraded {
    pub(crate) fn new(shared: Rc<Shared>) -> Upgraded {
        let _ = shared.stream.set_read_timeout(None);
        Upgraded { shared }
    }

    /// The socket, for its options (timeouts, `shutdown`, addresses). Read through
    /// the `Upgraded` itself, not the socket: bytes may already be buffered.
    pub fn stream(&self) -> &TcpStream {
        &self.shared.stream
    }

    /// The client's address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.shared.peer
    }
}

impl Read for Upgraded {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        {
            let mut io = self.shared.io.try_borrow_mut().map_err(|_| busy())?;
            let have = io.buffered();
            if !have.is_empty() {
                let n = have.len().min(buf.len());
                buf[..n].copy_from_slice(&have[..n]);
                io.consume(n);
                return Ok(n);
            }
        }
        (&self.shared.stream).read(buf)
    }
}

impl Write for Upgraded {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.shared.flush()?;
        (&self.shared.stream).write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.shared.flush()
    }
}

impl fmt::Debug for Upgraded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Upgraded")
            .field("peer", &self.shared.peer)
            .finish_non_exhaustive()
    }
}
