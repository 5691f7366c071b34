//! The echo load generator: N clients each send M messages of S bytes, one at a time,
//! read each echo back and check it byte for byte.
//!
//! Run: `loadgen --addr 127.0.0.1:4000 --clients 1000 --messages 1000 --size 64
//!       [--server-pid PID] [--client-busy REPS] [--hold] [--json FILE]
//!       [--scenario NAME] [--server NAME] [--connect-batch N] [--timeout SECS] [--run K]`
//!
//! One thread on epoll (mio), so that it is not the bottleneck and not itself a test
//! of threads. The phases:
//! 1. *connect*: every client connects (at most `--connect-batch` connects in flight,
//!    so a slow acceptor is not flooded past its backlog);
//! 2. *warm-up*: every client exchanges one message, untimed, so that every
//!    connection has been accepted and has its handler running before the clock
//!    starts (a thread server spawns its threads here, not in the timed phase);
//! 3. *timed*: every client sends its M messages; each one is sent when the echo of
//!    the previous one is back (optionally after `--client-busy` rounds of the slides'
//!    busy loop). The server's CPU time (`/proc/PID/stat`) and this process's are read
//!    just before and just after.
//!
//! With `--hold` (the idle-connections scenario) there is no timed phase: after the
//! warm-up, with every connection open, the server's memory is sampled and compared
//! with a sample taken before the first connect.
//!
//! Payloads differ per client and message ([`gevent_bench::payload`]); any mismatch,
//! early EOF or socket error is counted, and the exit status is non-zero if there was
//! any. Prints one human line and, with `--json`, appends one JSON line to FILE.

use gevent_bench::{fmt, mem_status, payload, process_cpu_secs, self_cpu_secs, stress, MemStatus};
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
struct Opts {
    addr: SocketAddr,
    clients: u32,
    messages: u32,
    size: usize,
    client_busy: u32,
    server_pid: Option<u32>,
    hold: bool,
    json: Option<String>,
    scenario: String,
    /// Which repetition of this (scenario, server) this run is, for the report.
    run: u32,
    server: String,
    connect_batch: u32,
    timeout: Duration,
}

fn usage() -> String {
    "usage: loadgen --addr HOST:PORT [--clients N] [--messages M] [--size S] \
     [--server-pid PID] [--client-busy REPS] [--hold] [--json FILE] [--scenario NAME] \
     [--server NAME] [--connect-batch N] [--timeout SECS] [--run K]"
        .to_owned()
}

fn parse_opts() -> Result<Opts, String> {
    let mut o = Opts {
        addr: "127.0.0.1:4000".parse().map_err(|e| format!("{e}"))?,
        clients: 1,
        messages: 1000,
        size: 64,
        client_busy: 0,
        server_pid: None,
        hold: false,
        json: None,
        scenario: "adhoc".to_owned(),
        run: 0,
        server: "server".to_owned(),
        connect_batch: 256,
        timeout: Duration::from_secs(600),
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--hold" {
            o.hold = true;
            continue;
        }
        if a == "-h" || a == "--help" {
            return Err(usage());
        }
        let v = args
            .next()
            .ok_or_else(|| format!("{a} needs a value\n{}", usage()))?;
        let num = |v: &str| -> Result<u64, String> {
            v.parse()
                .map_err(|e| format!("{a}: expected a number, got {v:?}: {e}"))
        };
        match a.as_str() {
            "--addr" => o.addr = v.parse().map_err(|e| format!("--addr {v:?}: {e}"))?,
            "--clients" => o.clients = num(&v)? as u32,
            "--messages" => o.messages = num(&v)? as u32,
            "--size" => o.size = num(&v)? as usize,
            "--client-busy" => o.client_busy = num(&v)? as u32,
            "--server-pid" => o.server_pid = Some(num(&v)? as u32),
            "--json" => o.json = Some(v),
            "--scenario" => o.scenario = v,
            "--server" => o.server = v,
            "--connect-batch" => o.connect_batch = (num(&v)? as u32).max(1),
            "--timeout" => o.timeout = Duration::from_secs(num(&v)?),
            "--run" => o.run = num(&v)? as u32,
            _ => return Err(format!("unknown option {a}\n{}", usage())),
        }
    }
    if o.clients == 0 || o.size == 0 {
        return Err("--clients and --size must be at least 1".to_owned());
    }
    if o.messages == u32::MAX {
        return Err("--messages too large".to_owned());
    }
    Ok(o)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Connecting,
    /// Connected, nothing in flight.
    Idle,
    /// Message `msg` in flight.
    Busy,
    /// Done with this phase.
    Done,
    Failed,
}

struct Client {
    stream: TcpStream,
    state: State,
    /// The message in flight (or next to send).
    msg: u32,
    /// The last message of this phase, exclusive.
    end: u32,
    /// Bytes of the echo received so far.
    got: usize,
    rbuf: Box<[u8]>,
    /// What is left to write of the message in flight.
    pending: Vec<u8>,
    sent_at: Instant,
}

struct Gen {
    opts: Opts,
    poll: Poll,
    events: Events,
    clients: Vec<Client>,
    /// Scratch for the expected payload.
    expect: Vec<u8>,
    errors: u64,
    first_error: Option<String>,
    /// Round-trip times of the timed phase, in ns.
    rtts: Vec<u64>,
    record: bool,
    /// Clients not yet Done or Failed in the current phase.
    unfinished: u32,
    deadline: Instant,
    /// Scratch for the events of one poll: (client, readable, writable).
    ready: Vec<(usize, bool, bool)>,
}

impl Gen {
    fn fail(&mut self, i: usize, why: String) {
        self.errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some(format!("client {i}: {why}"));
        }
        let c = &mut self.clients[i];
        if c.state != State::Failed && c.state != State::Done {
            self.unfinished -= 1;
        }
        c.state = State::Failed;
        let _ = self.poll.registry().deregister(&mut c.stream);
    }

    fn check_deadline(&self, phase: &str) -> io::Result<()> {
        if Instant::now() > self.deadline {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "{phase}: timed out after {:?} with {} clients unfinished",
                    self.opts.timeout, self.unfinished
                ),
            ));
        }
        Ok(())
    }

    /// Connects every client, at most `connect_batch` at a time.
    fn connect_all(&mut self) -> io::Result<()> {
        let n = self.opts.clients as usize;
        let mut started = 0usize;
        let mut in_flight = 0u32;
        let mut connected = 0usize;
        self.unfinished = self.opts.clients;
        while connected + (self.errors as usize) < n {
            while started < n && in_flight < self.opts.connect_batch {
                let mut stream = TcpStream::connect(self.opts.addr)?;
                self.poll.registry().register(
                    &mut stream,
                    Token(started),
                    Interest::READABLE | Interest::WRITABLE,
                )?;
                self.clients.push(Client {
                    stream,
                    state: State::Connecting,
                    msg: 0,
                    end: 0,
                    got: 0,
                    rbuf: vec![0; self.opts.size].into_boxed_slice(),
                    pending: Vec::new(),
                    sent_at: Instant::now(),
                });
                started += 1;
                in_flight += 1;
            }
            self.poll
                .poll(&mut self.events, Some(Duration::from_millis(500)))?;
            self.check_deadline("connect")?;
            let ready: Vec<usize> = self.events.iter().map(|e| e.token().0).collect();
            for i in ready {
                if self.clients[i].state != State::Connecting {
                    continue;
                }
                let c = &mut self.clients[i];
                if let Ok(Some(e)) | Err(e) = c.stream.take_error() {
                    in_flight -= 1;
                    self.fail(i, format!("connect: {e}"));
                    continue;
                }
                match c.stream.peer_addr() {
                    Ok(_) => {
                        // One message in flight at a time: Nagle would never delay
                        // it, but say so anyway, as any latency client does.
                        let _ = c.stream.set_nodelay(true);
                        c.state = State::Idle;
                        in_flight -= 1;
                        connected += 1;
                    }
                    Err(e) if e.kind() == io::ErrorKind::NotConnected => {}
                    Err(e) => {
                        in_flight -= 1;
                        self.fail(i, format!("connect: {e}"));
                    }
                }
            }
        }
        Ok(())
    }

    /// Sends message `c.msg` of client `i` (after the optional busy loop).
    fn send(&mut self, i: usize, now: Option<Instant>) {
        if self.opts.client_busy > 0 && self.record {
            stress(self.opts.client_busy);
        }
        let size = self.opts.size;
        let c = &mut self.clients[i];
        c.pending.resize(size, 0);
        payload(i as u32, c.msg, &mut c.pending);
        c.got = 0;
        c.state = State::Busy;
        c.sent_at = match now {
            Some(t) if self.opts.client_busy == 0 => t,
            _ => Instant::now(),
        };
        self.flush(i);
    }

    /// Writes what is pending for client `i`.
    fn flush(&mut self, i: usize) {
        loop {
            let c = &mut self.clients[i];
            if c.pending.is_empty() {
                return;
            }
            match c.stream.write(&c.pending) {
                Ok(0) => return self.fail(i, "write returned 0".to_owned()),
                Ok(n) => {
                    c.pending.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return self.fail(i, format!("write: {e}")),
            }
        }
    }

    /// Reads what has arrived for client `i`; on a complete echo, checks it, records
    /// its round trip, and sends the next message.
    fn on_readable(&mut self, i: usize) {
        loop {
            let c = &mut self.clients[i];
            if c.state != State::Busy {
                return;
            }
            let got = c.got;
            match c.stream.read(&mut c.rbuf[got..]) {
                Ok(0) => {
                    let msg = c.msg;
                    return self.fail(i, format!("EOF in message {msg}"));
                }
                Ok(n) => {
                    c.got += n;
                    if c.got < c.rbuf.len() {
                        continue;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return self.fail(i, format!("read: {e}")),
            }
            // A whole echo is here: we read no further (the next echo brings its own
            // edge; anything extra the server sent shows up as a mismatch).
            let now = Instant::now();
            let c = &mut self.clients[i];
            payload(i as u32, c.msg, &mut self.expect);
            if *c.rbuf != *self.expect {
                let at = c.rbuf.iter().zip(&self.expect).position(|(a, b)| a != b);
                let msg = c.msg;
                return self.fail(i, format!("echo of message {msg} differs at byte {at:?}"));
            }
            if self.record {
                self.rtts
                    .push(now.duration_since(c.sent_at).as_nanos() as u64);
            }
            c.msg += 1;
            if c.msg >= c.end {
                c.state = State::Done;
                self.unfinished -= 1;
                return;
            }
            self.send(i, Some(now));
        }
    }

    /// Every live client sends messages `start..end`, one at a time.
    fn exchange(&mut self, start: u32, end: u32, phase: &str) -> io::Result<()> {
        self.unfinished = 0;
        for i in 0..self.clients.len() {
            let c = &mut self.clients[i];
            if c.state == State::Failed {
                continue;
            }
            c.msg = start;
            c.end = end;
            self.unfinished += 1;
            if start >= end {
                c.state = State::Done;
                self.unfinished -= 1;
            } else {
                self.send(i, None);
            }
        }
        while self.unfinished > 0 {
            self.poll
                .poll(&mut self.events, Some(Duration::from_millis(500)))?;
            self.check_deadline(phase)?;
            // Tokens are client indexes; collect first (the handlers borrow `self`).
            let mut ready = std::mem::take(&mut self.ready);
            ready.clear();
            ready.extend(self.events.iter().map(|e| {
                let r = e.is_readable() || e.is_read_closed() || e.is_error();
                (e.token().0, r, e.is_writable())
            }));
            for &(i, r, w) in &ready {
                if w && !self.clients[i].pending.is_empty() {
                    self.flush(i);
                }
                if r {
                    self.on_readable(i);
                }
            }
            self.ready = ready;
        }
        Ok(())
    }
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1] as f64
}

fn main() {
    let opts = match parse_opts() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    // 10,000 clients need more open files than the usual 1024.
    let _ = gevent_hub::server::raise_fd_limit(u64::MAX);
    match run(opts) {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(e) => {
            eprintln!("loadgen: {e}");
            std::process::exit(1);
        }
    }
}

fn run(opts: Opts) -> io::Result<bool> {
    let mem_base = match opts.server_pid {
        Some(pid) => Some(mem_status(pid)?),
        None => None,
    };
    let mut g = Gen {
        poll: Poll::new()?,
        events: Events::with_capacity(4096),
        clients: Vec::with_capacity(opts.clients as usize),
        expect: vec![0; opts.size],
        errors: 0,
        first_error: None,
        rtts: Vec::new(),
        record: false,
        unfinished: 0,
        deadline: Instant::now() + opts.timeout,
        ready: Vec::with_capacity(4096),
        opts: opts.clone(),
    };

    let t_connect = Instant::now();
    g.connect_all()?;
    g.exchange(0, 1, "warm-up")?;
    let connect_s = t_connect.elapsed().as_secs_f64();

    let messages = if opts.hold { 0 } else { opts.messages };
    g.rtts.reserve(opts.clients as usize * messages as usize);
    g.record = true;
    let server_cpu0 = opts.server_pid.map(process_cpu_secs).transpose()?;
    let self_cpu0 = self_cpu_secs();
    let t0 = Instant::now();
    g.exchange(1, 1 + messages, "timed")?;
    let wall_s = t0.elapsed().as_secs_f64();
    let self_cpu_s = self_cpu_secs() - self_cpu0;
    let server_cpu_s = match (opts.server_pid, server_cpu0) {
        (Some(pid), Some(c0)) => Some(process_cpu_secs(pid)? - c0),
        _ => None,
    };
    // Sampled with every connection still open.
    let mem = opts.server_pid.map(mem_status).transpose()?;

    let done = g.rtts.len() as u64;
    g.rtts.sort_unstable();
    let p50_us = percentile(&g.rtts, 50.0) / 1e3;
    let p99_us = percentile(&g.rtts, 99.0) / 1e3;
    let rate = if wall_s > 0.0 {
        done as f64 / wall_s
    } else {
        0.0
    };
    // Meaningless without a timed phase (`--hold`).
    let loadgen_pct = (done > 0 && wall_s > 0.0).then(|| 100.0 * self_cpu_s / wall_s);
    let server_pct = server_cpu_s
        .filter(|_| done > 0 && wall_s > 0.0)
        .map(|c| 100.0 * c / wall_s);
    let server_us_per_msg = server_cpu_s
        .filter(|_| done > 0)
        .map(|c| c * 1e6 / done as f64);
    let per_conn_kib = match (mem, mem_base) {
        (Some(m), Some(b)) => Some((m.rss_kib as f64 - b.rss_kib as f64) / f64::from(opts.clients)),
        _ => None,
    };
    let errors = g.errors;
    drop(g.clients);

    let mut line = format!(
        "{} {}: {} clients x {} msgs x {} B: ",
        opts.scenario, opts.server, opts.clients, messages, opts.size
    );
    if opts.hold {
        line += &format!(
            "connected and exchanged one message each in {} s",
            fmt::secs(connect_s)
        );
    } else {
        line += &format!(
            "{done} msgs in {} s = {} msg/s; rtt p50 {} us, p99 {} us; loadgen cpu {} s ({}%)",
            fmt::secs(wall_s),
            fmt::rate(rate),
            fmt::us(p50_us),
            fmt::us(p99_us),
            fmt::secs(self_cpu_s),
            fmt::pct(loadgen_pct.unwrap_or(0.0)),
        );
    }
    if let (Some(c), Some(per), Some(pct)) = (server_cpu_s, server_us_per_msg, server_pct) {
        line += &format!(
            "; server cpu {} s ({}%) = {} us/msg",
            fmt::secs(c),
            fmt::pct(pct),
            fmt::us2(per)
        );
    }
    if let Some(m) = mem {
        line += &format!(
            "; server rss {} MiB (peak {}), vsz {} MiB (peak {}), {} threads",
            fmt::mib(m.rss_kib),
            fmt::mib(m.hwm_kib),
            fmt::mib(m.vsz_kib),
            fmt::mib(m.vm_peak_kib),
            m.threads
        );
    }
    if let Some(k) = per_conn_kib {
        if opts.hold {
            line += &format!("; rss per connection {} KiB", fmt::kib2(k));
        }
    }
    line += &format!("; errors {errors}");
    println!("{line}");
    if let Some(e) = &g.first_error {
        eprintln!("loadgen: first error: {e}");
    }

    if let Some(path) = &opts.json {
        let mem = mem.unwrap_or_default();
        let base = mem_base.unwrap_or(MemStatus::default());
        let rec = serde_json::json!({
            "kind": "echo",
            "scenario": opts.scenario,
            "run": opts.run,
            "server": opts.server,
            "clients": opts.clients,
            "messages_per_client": messages,
            "size": opts.size,
            "client_busy": opts.client_busy,
            "hold": opts.hold,
            "messages": done,
            "connect_s": connect_s,
            "wall_s": wall_s,
            "msgs_per_s": rate,
            "p50_us": p50_us,
            "p99_us": p99_us,
            "errors": errors,
            "first_error": g.first_error,
            "loadgen_cpu_s": self_cpu_s,
            "loadgen_cpu_pct": loadgen_pct,
            "server_cpu_s": server_cpu_s,
            "server_cpu_pct": server_pct,
            "server_cpu_us_per_msg": server_us_per_msg,
            "server_rss_base_kib": base.rss_kib,
            "server_rss_kib": mem.rss_kib,
            "server_hwm_kib": mem.hwm_kib,
            "server_vsz_kib": mem.vsz_kib,
            "server_vm_peak_kib": mem.vm_peak_kib,
            "server_threads": mem.threads,
            "rss_per_conn_kib": per_conn_kib,
            "line": line,
        });
        use std::io::Write as _;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        writeln!(f, "{rec}")?;
    }
    Ok(errors == 0)
}
