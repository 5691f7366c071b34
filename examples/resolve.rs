//! Concurrent name lookups with a deadline, from the "Non-blocking I/O with Gevent"
//! slides:
//!
//! ```python
//! >>> import gevent
//! >>> from gevent import socket
//! >>> urls = ['www.google.com', 'www.example.com', 'www.python.org']
//! >>> jobs = [gevent.spawn(socket.gethostbyname, url) for url in urls]
//! >>> gevent.joinall(jobs, timeout=2)
//! >>> [job.value for job in jobs]
//! ['74.125.79.106', '208.77.188.166', '82.94.164.162']
//! ```
//!
//! One greenlet per name calls `lookup_host`, which runs the blocking `getaddrinfo` on
//! a helper thread while the greenlet waits, so the lookups overlap; `joinall` waits
//! for them with a timeout, and each job then has its value, its error, or is still
//! running (gevent's `job.value` is `None` then).
//!
//! Run: `cargo run --example resolve -- [--timeout SECS] [NAME...]`
//! Without names it looks up names that work offline: `localhost`, this machine's
//! host name, numeric addresses, and a name that cannot exist (`.invalid`), whose
//! lookup fails or, where DNS is unreachable, is still running at the deadline.
//! Finishes by itself (after at most the timeout, 2 s by default).

use gevent::hub::net::lookup_host;
use gevent::hub::{joinall, spawn, AnyGreenlet, Greenlet};
use std::io;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// This machine's host name (`gethostname`).
fn hostname() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most `buf.len()` bytes into `buf`.
    if unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } != 0 {
        return None;
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8(buf[..end].to_vec()).ok()
}

fn main() {
    let mut timeout = Duration::from_secs(2);
    let mut names: Vec<String> = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--timeout" {
            let secs: f64 = args.next().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
                eprintln!("--timeout needs a number of seconds");
                std::process::exit(2)
            });
            timeout = Duration::from_secs_f64(secs);
        } else {
            names.push(a);
        }
    }
    if names.is_empty() {
        names = vec!["localhost".into()];
        names.extend(hostname());
        names.extend([
            "127.0.0.1".into(),
            "::1".into(),
            "no-such-host.invalid".into(),
        ]);
    }

    let t0 = Instant::now();
    let jobs: Vec<Greenlet<io::Result<Vec<IpAddr>>>> = names
        .iter()
        .map(|name| {
            let name = name.clone();
            spawn(move || lookup_host(&name))
        })
        .collect();
    let refs: Vec<&dyn AnyGreenlet> = jobs.iter().map(|g| g as _).collect();
    let all_done = joinall(&refs, Some(timeout), false).unwrap_or(false);
    let elapsed = t0.elapsed();

    let width = names.iter().map(String::len).max().unwrap_or(0);
    for (name, job) in names.iter().zip(jobs) {
        let what = if !job.ready() {
            format!("still running after {timeout:?} (no value)")
        } else {
            match job.join() {
                Ok(Ok(ips)) => ips
                    .iter()
                    .map(IpAddr::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
                Ok(Err(e)) => format!("error: {e}"),
                Err(e) => format!("the lookup greenlet failed: {e}"),
            }
        };
        println!("{name:>width$}  {what}");
    }
    println!(
        "{} lookups, {} in {:.1} ms",
        names.len(),
        if all_done {
            "all finished"
        } else {
            "not all finished"
        },
        elapsed.as_secs_f64() * 1000.0
    );
}
