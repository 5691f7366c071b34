//! Name resolution off the hub, and the `ToSocketAddrs` trait of this module.
//!
//! `getaddrinfo` blocks, and a slow resolver would stall every greenlet of the thread.
//! As gevent's default resolver does, a lookup runs on the hub's thread pool
//! ([`crate::threadpool::default_pool`]) while the asking greenlet waits (costing no
//! CPU); addresses that are already numeric never leave the greenlet.

use std::io;
use std::net::{IpAddr, SocketAddr, SocketAddrV4, SocketAddrV6, ToSocketAddrs as StdToSocketAddrs};

/// Runs the blocking `f` on the hub's default thread pool while this greenlet waits.
fn off_hub<T: Send + 'static>(
    _what: &'static str,
    f: impl FnOnce() -> T + Send + 'static,
) -> io::Result<T> {
    crate::threadpool::default_pool()
        .apply(f)
        .map_err(|e| io::Error::other(e.to_string()))
}

/// Resolves `host` (a name or a numeric address) to IP addresses, off the hub (the
/// seed's concurrent `gethostbyname`).
///
/// # Errors
/// The resolver's error, or the hub's errors.
pub fn lookup_host(host: &str) -> io::Result<Vec<IpAddr>> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![ip]);
    }
    let h = host.to_owned();
    let addrs = off_hub("a name lookup", move || {
        StdToSocketAddrs::to_socket_addrs(&(h.as_str(), 0u16)).map(|i| i.collect::<Vec<_>>())
    })??;
    let mut ips: Vec<IpAddr> = Vec::new();
    for a in addrs {
        if !ips.contains(&a.ip()) {
            ips.push(a.ip());
        }
    }
    Ok(ips)
}

/// Like `std::net::ToSocketAddrs`, but names are resolved off the hub.
///
/// Implemented for the same types as std's trait, so `TcpStream::connect("host:80")`
/// and `TcpListener::bind(("0.0.0.0", 4000))` read the same after porting.
pub trait ToSocketAddrs {
    /// The addresses, resolving names on a helper thread.
    ///
    /// # Errors
    /// Unparsable input or a failed lookup.
    fn to_socket_addrs(&self) -> io::Result<Vec<SocketAddr>>;
}

fn host_port(host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let h = host.to_owned();
    off_hub("a name lookup", move || {
        StdToSocketAddrs::to_socket_addrs(&(h.as_str(), port)).map(|i| i.collect())
    })?
}

impl ToSocketAddrs for SocketAddr {
    fn to_socket_addrs(&self) -> io::Result<Vec<SocketAddr>> {
        Ok(vec![*self])
    }
}
impl ToSocketAddrs for SocketAddrV4 {
    fn to_socket_addrs(&self) -> io::Result<Vec<SocketAddr>> {
        Ok(vec![SocketAddr::V4(*self)])
    }
}
impl ToSocketAddrs for SocketAddrV6 {
    fn to_socket_addrs(&self) -> io::Result<Vec<SocketAddr>> {
        Ok(vec![SocketAddr::V6(*self)])
    }
}
impl ToSocketAddrs for (IpAddr, u16) {
    fn to_socket_addrs(&self) -> io::Result<Vec<SocketAddr>> {
        Ok(vec![SocketAddr::new(self.0, self.1)])
    }
}
impl ToSocketAddrs for (std::net::Ipv4Addr, u16) {
    fn to_socket_addrs(&self) -> io::Result<Vec<SocketAddr>> {
        Ok(vec![SocketAddr::new(IpAddr::V4(self.0), self.1)])
    }
}
impl ToSocketAddrs for (std::net::Ipv6Addr, u16) {
    fn to_socket_addrs(&self) -> io::Result<Vec<SocketAddr>> {
        Ok(vec![SocketAddr::new(IpAddr::V6(self.0), self.1)])
    }
}
impl ToSocketAddrs for (&str, u16) {
    fn to_socket_addrs(&self) -> io::Result<Vec<SocketAddr>> {
        host_port(self.0, self.1)
    }
}
impl ToSocketAddrs for (String, u16) {
    fn to_socket_addrs(&self) -> io::Result<Vec<SocketAddr>> {
        host_port(&self.0, self.1)
    }
}
impl ToSocketAddrs for str {
    fn to_socket_addrs(&self) -> io::Result<Vec<SocketAddr>> {
        if let Ok(a) = self.parse::<SocketAddr>() {
            return Ok(vec![a]);
        }
        let (host, port) = self.rsplit_once(':').ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "invalid socket address: expected HOST:PORT",
            )
        })?;
        let port: u16 = port
            .parse()
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "invalid port value"))?;
        host_port(host.trim_start_matches('[').trim_end_matches(']'), port)
    }
}
impl ToSocketAddrs for String {
    fn to_socket_addrs(&self) -> io::Result<Vec<SocketAddr>> {
        ToSocketAddrs::to_socket_addrs(self.as_str())
    }
}
impl ToSocketAddrs for [SocketAddr] {
    fn to_socket_addrs(&self) -> io::Result<Vec<SocketAddr>> {
        Ok(self.to_vec())
    }
}
impl<T: ToSocketAddrs + ?Sized> ToSocketAddrs for &T {
    fn to_socket_addrs(&self) -> io::Result<Vec<SocketAddr>> {
        (**self).to_socket_addrs()
    }
}

/// Tries `f` on each address in turn, returning the first success or the last error.
pub(crate) fn each_addr<A: ToSocketAddrs + ?Sized, T>(
    addr: &A,
    mut f: impl FnMut(&SocketAddr) -> io::Result<T>,
) -> io::Result<T> {
    let mut last = None;
    for a in addr.to_socket_addrs()? {
        match f(&a) {
            Ok(t) => return Ok(t),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "could not resolve to any addresses",
        )
    }))
}
