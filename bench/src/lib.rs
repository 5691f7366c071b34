//! What the benchmark binaries share: the slides' busy loop, the load generator's
//! payloads, reading a server's CPU time and memory from `/proc`, and the number
//! formats (the report prints the numbers exactly as the runs printed them).
//!
//! The binaries:
//! - `loadgen`: the echo load generator (one thread on epoll, via mio).
//! - `echo_libev` (C on raw libev callbacks, `c/echo_libev.c`), `echo_tokio`
//!   (tokio current-thread), `echo_threads` (std, a thread per connection), `echo_hub`
//!   (the `echo_server` example's handler plus the busy loop): the servers compared
//!   with the `echo_server` example and the Python ones in `py/`.
//! - `http_hyper` (hyper 1.x on tokio's current-thread runtime), `http_may`
//!   (may_minihttp on one may worker) and `py/http_pywsgi.py` (gevent.pywsgi): the HTTP
//!   servers compared with the `http_server` example, all serving the same routes
//!   ([`http`]).
//! - `micro_core`, `micro_hub`: micro-benchmarks, each beside its peer.
//! - `parked`: memory and time per parked greenlet at 100,000, and the chunked stack
//!   layout against one mapping per stack.
//! - `suite`: runs all of it and writes JSON lines; `report` turns them into
//!   `docs/benchmarks.md`. `bench/run` builds and runs everything with one command.
#![deny(missing_docs, rust_2018_idioms, unsafe_op_in_unsafe_fn)]

use std::hint::black_box;
use std::io;

/// The C peers (`c/*.c`), compiled by build.rs into static libraries that are bundled
/// with this library: a binary that calls them through here links them.
pub mod c {
    use std::ffi::{c_char, c_int, c_long};

    // The C peers call libev's `ev_*` functions: this makes every binary that links
    // this library link libev-sys's static libev too, even if it uses nothing else of
    // libev-sys (a dependency that no code names is not linked).
    #[allow(unused_extern_crates)]
    extern crate libev_sys;

    extern "C" {
        /// `c/echo_libev.c`'s `main`: the echo server on raw libev callbacks.
        pub fn c_echo_main(argc: c_int, argv: *mut *mut c_char) -> c_int;

        /// `c/micro_core.c`: ns per `ev_timer_start` + `ev_timer_stop` (negative: failed).
        pub fn c_timer_start_stop_ns(iters: c_long) -> f64;
        /// ns per `ev_io_start` + `ev_io_stop` on a pipe.
        pub fn c_io_start_stop_ns(iters: c_long) -> f64;
        /// ns per callback of a hand-made run_callback queue.
        pub fn c_run_callback_ns(iters: c_long, batch: c_long) -> f64;
        /// ns per `ev_run (EVRUN_NOWAIT)` with one idle watcher.
        pub fn c_loop_iteration_ns(iters: c_long) -> f64;
        /// ns per `ev_feed_event` + `ev_invoke_pending`.
        pub fn c_feed_invoke_ns(iters: c_long) -> f64;
        /// ns per `ev_feed_event` + `ev_run (EVRUN_NOWAIT)`.
        pub fn c_feed_run_nowait_ns(iters: c_long) -> f64;
    }
}

/// The recursion of the slides' `stress()`:
/// `def rec(n): if n: return rec(n-1)`.
#[inline(never)]
fn rec(n: u32) -> u32 {
    if n == 0 {
        0
    } else {
        // `black_box` on the argument and the result keeps the call a real,
        // non-tail call: the optimiser can neither fold nor loop-ify it.
        black_box(rec(black_box(n - 1)))
    }
}

/// The slides' busy loop ("Benchmark 2", `stress.py`), `reps` times:
/// `for i in range(100): rec(100)`. The same fixed work, the very same machine code,
/// in every native server: the C server calls it too
/// ([`gevent_bench_stress`]); the Python servers run the slides' own.
pub fn stress(reps: u32) {
    for _ in 0..reps {
        for _ in 0..100 {
            black_box(rec(black_box(100)));
        }
    }
}

/// [`stress`] for the C echo server (`c/echo_libev.c`), so that the busy loop of
/// S2-busy is the same code in C as in the Rust servers (a C copy of the recursion
/// compiles to different code and runs at a different speed).
#[no_mangle]
pub extern "C" fn gevent_bench_stress(reps: u32) {
    stress(reps);
}

/// The arguments every Rust echo server of the suite takes: `[PORT] [--busy REPS]`
/// (default port 4000, no busy loop).
pub fn server_args() -> (u16, u32) {
    let (mut port, mut busy) = (4000, 0);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--busy" {
            busy = args.next().and_then(|v| v.parse().ok()).unwrap_or(1);
        } else if let Ok(p) = a.parse() {
            port = p;
        } else {
            eprintln!("ignoring argument {a:?} (usage: [PORT] [--busy REPS])");
        }
    }
    (port, busy)
}

/// Fills `buf` with the payload of message `msg` of client `client`: different for
/// every client and message, so an echo delivered to the wrong connection, repeated,
/// reordered or truncated is caught by comparing bytes.
pub fn payload(client: u32, msg: u32, buf: &mut [u8]) {
    let mut x = splitmix64((u64::from(client) << 32) | u64::from(msg));
    for chunk in buf.chunks_mut(8) {
        x = splitmix64(x);
        let bytes = x.to_le_bytes();
        chunk.copy_from_slice(&bytes[..chunk.len()]);
    }
}

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Clock ticks per second (`sysconf(_SC_CLK_TCK)`), the unit of `/proc/PID/stat`.
pub fn clock_ticks_per_sec() -> u64 {
    // SAFETY: sysconf only reads a configuration value.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as u64
    } else {
        100
    }
}

/// CPU time (user + system, all threads, dead ones included) of process `pid` in
/// seconds, from `/proc/PID/stat`.
///
/// # Errors
/// The process is gone or the file does not parse.
pub fn process_cpu_secs(pid: u32) -> io::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name (field 2) is in parentheses and may contain spaces: count
    // fields after the last ')'. utime and stime are fields 14 and 15.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| io::Error::other("malformed /proc/PID/stat"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| -> io::Result<u64> {
        fields
            .get(i - 3)
            .and_then(|f| f.parse().ok())
            .ok_or_else(|| io::Error::other("malformed /proc/PID/stat"))
    };
    let ticks = field(14)? + field(15)?;
    Ok(ticks as f64 / clock_ticks_per_sec() as f64)
}

/// A process's memory, from `/proc/PID/status`, in KiB.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemStatus {
    /// `VmRSS`: resident now.
    pub rss_kib: u64,
    /// `VmHWM`: peak resident.
    pub hwm_kib: u64,
    /// `VmSize`: virtual now.
    pub vsz_kib: u64,
    /// `VmPeak`: peak virtual.
    pub vm_peak_kib: u64,
    /// `Threads`.
    pub threads: u64,
}

/// Reads `/proc/PID/status`.
///
/// # Errors
/// The process is gone.
pub fn mem_status(pid: u32) -> io::Result<MemStatus> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let mut m = MemStatus::default();
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let n = value
            .split_whitespace()
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        match key {
            "VmRSS" => m.rss_kib = n,
            "VmHWM" => m.hwm_kib = n,
            "VmSize" => m.vsz_kib = n,
            "VmPeak" => m.vm_peak_kib = n,
            "Threads" => m.threads = n,
            _ => {}
        }
    }
    Ok(m)
}

/// This process's CPU time (user + system) in seconds, from `getrusage`.
pub fn self_cpu_secs() -> f64 {
    // SAFETY: an all-zero rusage is a valid value for getrusage to overwrite.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is a valid, writable rusage.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// Number formats shared by the runs and the report, so the report shows the
/// numbers exactly as the tools printed them.
pub mod fmt {
    /// Messages per second: whole numbers.
    pub fn rate(x: f64) -> String {
        format!("{x:.0}")
    }
    /// Microseconds: one decimal.
    pub fn us(x: f64) -> String {
        format!("{x:.1}")
    }
    /// Microseconds of CPU per message: two decimals.
    pub fn us2(x: f64) -> String {
        format!("{x:.2}")
    }
    /// Seconds: two decimals.
    pub fn secs(x: f64) -> String {
        format!("{x:.2}")
    }
    /// Percent: whole numbers.
    pub fn pct(x: f64) -> String {
        format!("{x:.0}")
    }
    /// Nanoseconds per operation: one decimal.
    pub fn ns(x: f64) -> String {
        format!("{x:.1}")
    }
    /// Ratios: two decimals.
    pub fn ratio(x: f64) -> String {
        format!("{x:.2}")
    }
    /// KiB as MiB: one decimal.
    pub fn mib(kib: u64) -> String {
        format!("{:.1}", kib as f64 / 1024.0)
    }
    /// CPU seconds per 100,000 requests: three decimals.
    pub fn cpu100k(x: f64) -> String {
        format!("{x:.3}")
    }
    /// KiB per connection: two decimals.
    pub fn kib2(x: f64) -> String {
        format!("{x:.2}")
    }
}

/// The command line of the micro-benchmark binaries: `[SCALE] [--json FILE]`. Returns
/// the iteration scale and, with `--json`, the results file opened for appending.
///
/// # Errors
/// A malformed or non-positive scale, `--json` without a file, or the file not opening.
pub fn micro_args() -> Result<(f64, Option<std::fs::File>), Box<dyn std::error::Error>> {
    let mut scale = 1.0f64;
    let mut json: Option<String> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--json" {
            json = Some(args.next().ok_or("--json needs a file")?);
        } else {
            scale = a
                .parse()
                .map_err(|e| format!("SCALE must be a number, got {a:?}: {e}"))?;
        }
    }
    if !(scale > 0.0 && scale.is_finite()) {
        return Err(format!("SCALE must be positive, got {scale}").into());
    }
    if cfg!(debug_assertions) {
        eprintln!("warning: a debug build; run with --release for meaningful numbers");
    }
    let out = match &json {
        Some(path) => Some(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)?,
        ),
        None => None,
    };
    Ok((scale, out))
}

/// The echo servers' handler: echoes what `sock` sends (4096 bytes at a time) until
/// end of stream or an error, running the slides' busy loop ([`stress`]) before each
/// write when `busy` is non-zero. The same code serves std's `TcpStream` and the
/// hub's.
pub fn echo(mut sock: impl std::io::Read + std::io::Write, busy: u32) {
    let mut buf = [0u8; 4096];
    loop {
        let n = match sock.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if busy > 0 {
            stress(busy);
        }
        if sock.write_all(&buf[..n]).is_err() {
            return;
        }
    }
}

/// The slides' threaded echo server in std Rust, written once for the two servers
/// that run it: `echo_threads` (a thread per connection) and `echo_monkey_std` (the
/// same std code, monkey-patched, a greenlet per connection). Only `spawn` differs:
/// it is handed each accepted connection and the `--busy` count, and starts
/// [`echo`] on it however the server runs its connections.
pub mod std_server {
    use super::server_args;
    use socket2::{Domain, Socket, Type};
    use std::net::{SocketAddr, TcpListener, TcpStream};

    /// Listens on the port the command line gives (backlog 1024, as every server of
    /// the suite) and hands each connection to `spawn`.
    ///
    /// # Errors
    /// The listener could not be made.
    pub fn serve(name: &str, spawn: impl Fn(TcpStream, u32)) -> std::io::Result<()> {
        let (port, busy) = server_args();
        let addr: SocketAddr = ([0, 0, 0, 0], port).into();
        // std's TcpListener::bind has a fixed backlog; the suite gives every server 1024.
        let sock = Socket::new(Domain::IPV4, Type::STREAM, None)?;
        sock.set_reuse_address(true)?;
        sock.bind(&addr.into())?;
        sock.listen(1024)?;
        let listener: TcpListener = sock.into();
        eprintln!("{name} on port {port} (busy {busy})");
        for conn in listener.incoming() {
            match conn {
                Ok(s) => spawn(s, busy),
                Err(e) => eprintln!("accept: {e}"),
            }
        }
        Ok(())
    }
}

/// What the HTTP servers of the suite share with the `http_server` example: its
/// routes' fixed bodies, the query of `/stream?n=` and `/sleep?ms=`, and the
/// command line (the listen address).
///
/// The routes: `GET /plaintext` (`text/plain`, [`PLAINTEXT`](http::PLAINTEXT)),
/// `GET /json` (`application/json`, [`JSON`](http::JSON), serialised per request), `POST /echo` (the request
/// body back), `GET /stream?n=N` (N lines `line i\n`, chunked), `GET /sleep?ms=N`
/// (`slept N` after N ms), 404 for anything else.
pub mod http {
    use std::net::SocketAddr;

    /// The body of `GET /plaintext`.
    pub const PLAINTEXT: &str = "Hello, World!";
    /// The body of `GET /json`. Every server serialises it for each request, as the
    /// example does (the Rust ones with [`json_body`]).
    pub const JSON: &str = r#"{"message":"Hello, World!"}"#;

    /// `/json`'s body, serialised for this request as the example serialises it
    /// (`serde_json::json!` to bytes).
    pub fn json_body() -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({ "message": "Hello, World!" })).unwrap_or_default()
    }

    /// The numeric value of `key` in the query of `target` (`/path?a=1&b=2`); `None`
    /// if it is absent or not a number.
    pub fn query_u64(target: &str, key: &str) -> Option<u64> {
        let (_, query) = target.split_once('?')?;
        query.split('&').find_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            if k == key {
                v.parse().ok()
            } else {
                None
            }
        })
    }

    /// The path of `target` without its query.
    pub fn path(target: &str) -> &str {
        target.split_once('?').map_or(target, |(p, _)| p)
    }

    /// Line `i` of `/stream`.
    pub fn stream_line(i: u64) -> String {
        format!("line {i}\n")
    }

    /// The listen address, the first argument: `HOST:PORT`, or a bare port on
    /// 127.0.0.1 (where the example takes a bare port as 0.0.0.0: the peers serve the
    /// suite's loopback runs only); `127.0.0.1:8080` without one.
    pub fn listen_addr() -> SocketAddr {
        let Some(a) = std::env::args().nth(1) else {
            return ([127, 0, 0, 1], 8080).into();
        };
        if let Ok(port) = a.parse::<u16>() {
            return ([127, 0, 0, 1], port).into();
        }
        a.parse().unwrap_or_else(|e| {
            eprintln!("bad listen address {a:?} ({e}); usage: [HOST:PORT]");
            std::process::exit(2)
        })
    }
}
