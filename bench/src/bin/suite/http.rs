//! The suite's HTTP part: `wrk` against the `http_server` example and its peers, and
//! a conformance table of raw requests.
//!
//! - Scenarios H1 (`/plaintext`), H2 (`/plaintext`, pipelined 16 deep) and H3
//!   (`/json`): `wrk -t1 -c200 -dNs --latency -s bench/wrk/http.lua`, the server
//!   pinned to core 1, wrk to core 0, a fresh server process per run. The Rust
//!   servers run `--repeat` times, interleaved; Python once. Each run records wrk's
//!   totals (requests/s, p50/p90/p99 latency, its error counts: a run with any error
//!   is flagged and never shown as a result), the server's CPU time (`/proc/PID/stat`,
//!   utime + stime, read just before wrk starts and just after it exits) per 100,000
//!   requests, its peak RSS (`VmHWM`), wrk's own CPU time, and the CPU time the rest
//!   of the machine used meanwhile (on a shared machine, a sign of a noisy run). Each
//!   run first waits, boundedly, for the rest of the machine to be quiet.
//! - HC, the conformance table: each server (fresh) gets raw requests, each on a new
//!   TCP connection, and the status lines it answers (or that it closed, reset or
//!   kept silent) are recorded beside what a careful server answers.

use super::{stop, Ctx, BENCH_DIR};
use gevent_bench::{fmt, http, mem_status, process_cpu_secs};
use serde_json::{json, Value};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// wrk's connections and threads in every scenario.
pub const CONNECTIONS: u32 = 200;
const WRK_THREADS: u32 = 1;

/// Seconds of load per run at `--scale 1` (`--http-duration` overrides).
pub const DURATION_S: f64 = 5.0;

/// Before each run, wait (at most `QUIET_WAIT_S`, and `QUIET_BUDGET_S` over the whole
/// HTTP part) for the rest of the machine to use less than `QUIET_PCT` of a core: on a
/// machine shared with other work, a build running beside wrk and the server skews the
/// figures (the report shows what the rest of the machine used during each run).
const QUIET_PCT: f64 = 20.0;
const QUIET_WAIT_S: f64 = 10.0;
pub const QUIET_BUDGET_S: f64 = 60.0;

/// The conformance table's id in `--scenarios`.
pub const CONFORMANCE: &str = "HC";

pub struct HttpServer {
    pub name: &'static str,
    pub what: &'static str,
    pub python: bool,
}

pub const HTTP_SERVERS: &[HttpServer] = &[
    HttpServer {
        name: "gevent-rs",
        python: false,
        what: "this project: the `http_server` example (`gevent::http`)",
    },
    HttpServer {
        name: "may-minihttp",
        python: false,
        what: "may_minihttp, one may worker thread (`http_may`)",
    },
    HttpServer {
        name: "hyper",
        python: false,
        what: "hyper 1.x HTTP/1.1, tokio current-thread runtime, default settings \
               (`pipeline_flush` off) but `TCP_NODELAY` (`http_hyper`)",
    },
    HttpServer {
        name: "py-pywsgi",
        python: true,
        what: "Python gevent.pywsgi WSGIServer, `log=None` (`py/http_pywsgi.py`)",
    },
];

pub struct HttpScenario {
    pub id: &'static str,
    pub what: &'static str,
    pub path: &'static str,
    /// Requests per write (1: no pipelining).
    pub pipeline: u32,
}

pub fn http_scenarios() -> Vec<HttpScenario> {
    vec![
        HttpScenario {
            id: "H1",
            what: "GET /plaintext, 200 connections, no pipelining",
            path: "/plaintext",
            pipeline: 1,
        },
        HttpScenario {
            id: "H2",
            what: "GET /plaintext, 200 connections, pipelined 16 deep",
            path: "/plaintext",
            pipeline: 16,
        },
        HttpScenario {
            id: "H3",
            what: "GET /json, 200 connections, no pipelining",
            path: "/json",
            pipeline: 1,
        },
    ]
}

/// Every id `--scenarios` takes for the HTTP part.
pub fn ids() -> Vec<&'static str> {
    let mut v: Vec<&str> = http_scenarios().iter().map(|s| s.id).collect();
    v.push(CONFORMANCE);
    v
}

/// The first line of `wrk -v` (it prints its version there).
fn wrk_version() -> String {
    Command::new("wrk")
        .arg("-v")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .map(|l| l.split(" Copyright").next().unwrap_or(l).trim().to_owned())
        })
        .unwrap_or_else(|| "not found".to_owned())
}

/// The HTTP part of the `meta` record.
pub fn meta(duration_s: u64) -> Value {
    json!({
        "wrk": wrk_version(),
        "hyper": super::lock_version("hyper"),
        "may_minihttp": super::lock_version("may_minihttp"),
        "may": super::lock_version("may"),
        "duration_s": duration_s,
        "connections": CONNECTIONS,
        "wrk_threads": WRK_THREADS,
        "servers": HTTP_SERVERS.iter().map(|s| json!({"name": s.name, "what": s.what})).collect::<Vec<_>>(),
        "scenarios": http_scenarios().iter().map(|s| json!({
            "id": s.id, "what": s.what, "path": s.path, "pipeline": s.pipeline,
        })).collect::<Vec<_>>(),
    })
}

/// What `wrk`'s run printed: its stdout, and its own CPU time (from `wait4`).
struct WrkRun {
    stdout: String,
    stderr: String,
    ok: bool,
    cpu_s: f64,
    wall_s: f64,
}

impl Ctx {
    fn http_server_cmd(&self, server: &str, port: u16) -> Vec<String> {
        let addr = format!("127.0.0.1:{port}");
        match server {
            "gevent-rs" => vec![
                self.release
                    .join("examples")
                    .join("http_server")
                    .display()
                    .to_string(),
                addr,
            ],
            "may-minihttp" => vec![self.release.join("http_may").display().to_string(), addr],
            "hyper" => vec![self.release.join("http_hyper").display().to_string(), addr],
            "py-pywsgi" => vec![
                self.python.clone(),
                Path::new(BENCH_DIR)
                    .join("py")
                    .join("http_pywsgi.py")
                    .display()
                    .to_string(),
                addr,
            ],
            _ => unreachable!("unknown HTTP server {server}"),
        }
    }

    /// Waits, within what is left of `quiet_budget_s` and at most `QUIET_WAIT_S`, until
    /// the rest of the machine uses less than `QUIET_PCT` of a core (the server is
    /// started and idle, wrk not yet running: all the machine's busy time is others').
    /// Returns the seconds waited.
    fn wait_for_quiet(&mut self, what: &str) -> f64 {
        let started = Instant::now();
        let limit = QUIET_WAIT_S.min(self.quiet_budget_s);
        let others = loop {
            let (Some(a), t) = (machine_busy_secs(), Instant::now()) else {
                return 0.0;
            };
            std::thread::sleep(Duration::from_millis(250));
            let Some(b) = machine_busy_secs() else {
                return 0.0;
            };
            let others = (b - a) / t.elapsed().as_secs_f64() * 100.0;
            if others < QUIET_PCT || started.elapsed().as_secs_f64() >= limit {
                break others;
            }
        };
        let waited = started.elapsed().as_secs_f64();
        // The 250 ms sample itself is no wait.
        if waited > 0.5 {
            self.quiet_budget_s = (self.quiet_budget_s - waited).max(0.0);
            self.log(&format!(
                "{what}: waited {} s for the rest of the machine to quieten (now {}% of a core)",
                fmt::secs(waited),
                fmt::pct(others)
            ));
        }
        waited
    }

    /// Why `server` cannot run: its binary is not built (`bench/run` builds them all).
    /// Starts a fresh `server` on a port of its own; `Err`: why it could not.
    fn fresh_http_server(&mut self, server: &str) -> Result<(crate::Child, u16), String> {
        if let Some(missing) = self.unbuilt(server) {
            return Err(missing);
        }
        let port = self.port();
        let cmd = self.http_server_cmd(server, port);
        let child = self.start_server(&cmd, port).map_err(|e| e.to_string())?;
        Ok((child, port))
    }

    fn unbuilt(&self, server: &str) -> Option<String> {
        let python = HTTP_SERVERS.iter().any(|s| s.name == server && s.python);
        let cmd = self.http_server_cmd(server, 0);
        (!python && !Path::new(&cmd[0]).exists()).then(|| format!("{} is not built", cmd[0]))
    }

    /// Runs `wrk` pinned to core 0 with `args`; kills it if it is still running
    /// `limit` after it started.
    fn wrk(&self, args: &[String], limit: Duration) -> io::Result<WrkRun> {
        let started = Instant::now();
        let mut child = Command::new("taskset")
            .arg("-c")
            .arg("0")
            .arg("wrk")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let mut out = child.stdout.take().expect("piped");
        let mut err = child.stderr.take().expect("piped");
        let out_reader = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = out.read_to_string(&mut s);
            s
        });
        let err_reader = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            s
        });
        // `taskset` execs wrk, so the child's pid is wrk's: wait4 gives its rusage.
        let pid = child.id() as libc::pid_t;
        let mut status = 0;
        // SAFETY: an all-zero rusage is a valid value for wait4 to overwrite.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        let mut killed = false;
        loop {
            // SAFETY: wait4 on our own child, with valid pointers to locals.
            let r = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut ru) };
            if r == pid {
                break;
            }
            if r < 0 {
                return Err(io::Error::last_os_error());
            }
            if started.elapsed() > limit && !killed {
                // SAFETY: kill only sends a signal to our own, unreaped child.
                unsafe { libc::kill(pid, libc::SIGKILL) };
                killed = true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let wall_s = started.elapsed().as_secs_f64();
        let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
        let mut stderr = err_reader.join().unwrap_or_default();
        if killed {
            stderr.push_str(&format!("\n(killed: still running after {limit:?})"));
        }
        Ok(WrkRun {
            stdout: out_reader.join().unwrap_or_default(),
            stderr,
            ok: !killed && libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            cpu_s: tv(ru.ru_utime) + tv(ru.ru_stime),
            wall_s,
        })
    }

    pub fn run_http(
        &mut self,
        server: &str,
        sc: &HttpScenario,
        duration_s: u64,
        run: u32,
    ) -> io::Result<()> {
        let what = format!("{} {server} (run {run})", sc.id);
        let (mut child, port) = match self.fresh_http_server(server) {
            Ok(started) => started,
            Err(why) => return self.fail(&what, &why),
        };
        let pid = child.id();
        let script = Path::new(BENCH_DIR).join("wrk").join("http.lua");
        const WRK_TIMEOUT_S: u64 = 10;
        let mut args: Vec<String> = vec![
            format!("-t{WRK_THREADS}"),
            format!("-c{CONNECTIONS}"),
            format!("-d{duration_s}s"),
            // wrk's default (2 s) counts gevent.pywsgi's slowest answers as errors,
            // which would leave its runs without a result; every server gets 10 s.
            format!("--timeout={WRK_TIMEOUT_S}s"),
            "--latency".into(),
            "-s".into(),
            script.display().to_string(),
            format!("http://127.0.0.1:{port}{}", sc.path),
        ];
        if sc.pipeline > 1 {
            args.push("--".into());
            args.push(sc.pipeline.to_string());
        }
        let quiet_wait_s = self.wait_for_quiet(&what);
        let cpu0 = process_cpu_secs(pid);
        let busy0 = machine_busy_secs();
        let wrk = self.wrk(&args, Duration::from_secs(duration_s + 30));
        let busy1 = machine_busy_secs();
        let cpu1 = process_cpu_secs(pid);
        let mem = mem_status(pid);
        stop(&mut child);
        let wrk = match wrk {
            Ok(w) => w,
            Err(e) => return self.fail(&what, &format!("cannot run wrk: {e}")),
        };
        let summary = wrk
            .stdout
            .lines()
            .find_map(|l| l.strip_prefix("WRK_JSON "))
            .and_then(|j| serde_json::from_str::<Value>(j).ok());
        let text = wrk
            .stdout
            .lines()
            .filter(|l| !l.starts_with("WRK_JSON "))
            .collect::<Vec<_>>()
            .join("\n");
        self.log(&format!(
            "-- {what}: wrk {}\n{}",
            args.join(" "),
            text.trim_end()
        ));
        if !wrk.stderr.trim().is_empty() {
            self.log(wrk.stderr.trim());
        }
        let (Some(s), true) = (summary, wrk.ok) else {
            return self.fail(
                &what,
                &format!("wrk failed or printed no summary: {}", wrk.stderr.trim()),
            );
        };
        let (Ok(cpu0), Ok(cpu1), Ok(mem)) = (cpu0, cpu1, mem) else {
            return self.fail(&what, "the server exited during the run");
        };
        let g = |k: &str| s.get(k).and_then(Value::as_f64).unwrap_or(0.0);
        let requests = g("requests");
        let duration = g("duration_us") / 1e6;
        if requests <= 0.0 || duration <= 0.0 {
            return self.fail(&what, "wrk completed no request");
        }
        let rps = requests / duration;
        let cpu = cpu1 - cpu0;
        // What else ran on the machine meanwhile (other users' builds, say): every
        // core's busy time less the server's and wrk's, as a share of one core.
        let other_pct = match (busy0, busy1) {
            (Some(a), Some(b)) => ((b - a - cpu - wrk.cpu_s) / wrk.wall_s * 100.0).max(0.0),
            _ => 0.0,
        };
        let cpu_per_100k = cpu / requests * 1e5;
        let kinds = ["connect", "read", "write", "status", "timeout"];
        let errors: u64 = kinds.iter().map(|k| g(k) as u64).sum();
        let error_text = kinds
            .iter()
            .filter(|k| g(k) > 0.0)
            .map(|k| format!("{k} {}", g(k)))
            .collect::<Vec<_>>()
            .join(", ");
        self.log(&format!(
            "{what}: {} req/s, p50 {} µs, p99 {} µs, server CPU {} s per 100k requests ({}%), \
             wrk CPU {}%, others {}%, peak RSS {} MiB, errors {errors}",
            fmt::rate(rps),
            fmt::us(g("p50_us")),
            fmt::us(g("p99_us")),
            fmt::cpu100k(cpu_per_100k),
            fmt::pct(cpu / wrk.wall_s * 100.0),
            fmt::pct(wrk.cpu_s / wrk.wall_s * 100.0),
            fmt::pct(other_pct),
            fmt::mib(mem.hwm_kib),
        ));
        if errors > 0 {
            self.flagged += 1;
            self.log(&format!(
                "FLAGGED: {what}: wrk counted {errors} error(s) ({error_text}); \
                 the run is not shown as a result"
            ));
        }
        self.record(json!({
            "kind": "http", "scenario": sc.id, "server": server, "run": run,
            "path": sc.path, "pipeline": sc.pipeline, "connections": CONNECTIONS,
            "duration_s": duration, "requests": requests as u64, "rps": rps,
            "p50_us": g("p50_us"), "p90_us": g("p90_us"), "p99_us": g("p99_us"),
            "max_us": g("max_us"), "mean_us": g("mean_us"), "bytes": g("bytes") as u64,
            "errors": errors,
            "error_counts": kinds.iter().map(|k| (k.to_string(), json!(g(k) as u64)))
                .collect::<serde_json::Map<_, _>>(),
            "server_cpu_s": cpu, "server_cpu_s_per_100k": cpu_per_100k,
            "server_cpu_pct": cpu / wrk.wall_s * 100.0,
            "wrk_cpu_pct": wrk.cpu_s / wrk.wall_s * 100.0, "other_cpu_pct": other_pct,
            "quiet_wait_s": quiet_wait_s,
            "server_hwm_kib": mem.hwm_kib, "server_threads": mem.threads,
        }))
    }

    /// The conformance table's probes against a fresh `server`.
    pub fn run_conformance(&mut self, server: &str) -> io::Result<()> {
        let what = format!("{CONFORMANCE} {server}");
        let (mut child, port) = match self.fresh_http_server(server) {
            Ok(started) => started,
            Err(why) => return self.fail(&what, &why),
        };
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        for p in probes() {
            let o = probe(addr, &p.request, p.want.responses());
            let (pass, note) = p.want.judge(&o);
            let answers: Vec<String> = o.answers.iter().map(|r| r.line.clone()).collect();
            let shown = o.shown();
            self.log(&format!(
                "{what}: {}: {shown}{} -> {}",
                p.id,
                if note.is_empty() {
                    String::new()
                } else {
                    format!(" ({note})")
                },
                if pass { "as wanted" } else { "NOT as wanted" }
            ));
            self.record(json!({
                "kind": "http_probe", "server": server, "probe": p.id, "what": p.what,
                "want": p.want.text(), "answers": answers, "end": o.end.text(),
                "shown": shown, "note": note, "pass": pass, "limit": p.limit,
            }))?;
        }
        // A server that died of a probe is a finding of its own.
        if let Ok(Some(status)) = child.try_wait() {
            self.log(&format!(
                "{what}: the server exited during the probes: {status}"
            ));
        }
        stop(&mut child);
        Ok(())
    }
}

/// The busy time of every core so far (`/proc/stat`: all but idle and iowait), in
/// seconds.
fn machine_busy_secs() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let t: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest is counted in user).
    let busy: u64 = t.iter().take(8).sum::<u64>() - t.get(3)? - t.get(4)?;
    Some(busy as f64 / gevent_bench::clock_ticks_per_sec() as f64)
}

// ---- conformance probes ---------------------------------------------------------

/// What a careful server answers to a probe.
enum Want {
    /// Exactly one response, with this status.
    Status(u16),
    /// Exactly one response, with this status and body.
    Body(u16, Vec<u8>),
    /// One 200 response with a chunked body that decodes to this.
    Chunked(Vec<u8>),
    /// Two 200 responses: `/plaintext`'s body, then `/json`'s.
    Pipelined,
}

impl Want {
    fn responses(&self) -> usize {
        match self {
            Want::Pipelined => 2,
            _ => 1,
        }
    }

    fn text(&self) -> String {
        match self {
            Want::Status(s) => s.to_string(),
            Want::Body(s, _) => format!("{s} + body"),
            Want::Chunked(_) => "200 chunked".to_owned(),
            Want::Pipelined => "200, 200 in order".to_owned(),
        }
    }

    /// Whether `o` is what is wanted, and a note on how it differs.
    fn judge(&self, o: &Outcome) -> (bool, String) {
        let a = &o.answers;
        let extra = |n: usize| {
            if a.len() > n {
                format!("{} responses to one request", a.len())
            } else {
                String::new()
            }
        };
        match self {
            Want::Status(s) => {
                let ok = a.len() == 1 && a[0].status == *s;
                (ok, extra(1))
            }
            Want::Body(s, body) => {
                let ok = a.len() == 1 && a[0].status == *s && &a[0].body == body;
                let note = if a.first().is_some_and(|r| r.status == *s && &r.body != body) {
                    format!("body {:?}", String::from_utf8_lossy(&a[0].body))
                } else {
                    extra(1)
                };
                (ok, note)
            }
            Want::Chunked(body) => {
                let Some(r) = a.first() else {
                    return (false, String::new());
                };
                let note = if !r.chunked {
                    "not chunked".to_owned()
                } else if &r.body != body {
                    format!("body {:?}", String::from_utf8_lossy(&r.body))
                } else {
                    extra(1)
                };
                (
                    a.len() == 1 && r.status == 200 && r.chunked && &r.body == body,
                    note,
                )
            }
            Want::Pipelined => {
                let ok = a.len() == 2
                    && a.iter().all(|r| r.status == 200)
                    && a[0].body == http::PLAINTEXT.as_bytes()
                    && a[1].body == http::JSON.as_bytes();
                let note = if a.len() == 2 && a.iter().all(|r| r.status == 200) && !ok {
                    "bodies out of order or wrong".to_owned()
                } else if a.len() > 2 {
                    extra(2)
                } else {
                    String::new()
                };
                (ok, note)
            }
        }
    }
}

struct Probe {
    id: &'static str,
    what: &'static str,
    request: Vec<u8>,
    want: Want,
    /// A protective limit (rather than a route working).
    limit: bool,
}

fn get(target: &str) -> Vec<u8> {
    format!("GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").into_bytes()
}

fn probes() -> Vec<Probe> {
    let smuggled = "0\r\n\r\nGET /json HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    let big = "a".repeat(70 * 1024);
    let mut pipelined = get("/plaintext");
    pipelined.extend(get("/json"));
    vec![
        Probe {
            id: "version",
            what: "`GET / HTTP/2.0` (a version it does not speak)",
            request: b"GET / HTTP/2.0\r\nHost: 127.0.0.1\r\n\r\n".to_vec(),
            want: Want::Status(505),
            limit: true,
        },
        Probe {
            id: "big-header",
            what: "`GET / HTTP/1.1` with a 70 KiB header",
            request: format!("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: {big}\r\n\r\n")
                .into_bytes(),
            want: Want::Status(431),
            limit: true,
        },
        Probe {
            id: "cl-te",
            what: "`POST /echo` with both `Content-Length` and `Transfer-Encoding: chunked`, \
                   a `GET /json` smuggled after the chunked body's end",
            request: format!(
                "POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\n\
                 Transfer-Encoding: chunked\r\n\r\n{smuggled}",
                smuggled.len()
            )
            .into_bytes(),
            want: Want::Status(400),
            limit: true,
        },
        Probe {
            id: "cl-cl",
            what: "`POST /echo` with two different `Content-Length`s (5 and 6)",
            request: b"POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\n\
                       Content-Length: 6\r\n\r\nhello!"
                .to_vec(),
            want: Want::Status(400),
            limit: true,
        },
        Probe {
            id: "cl-abc",
            what: "`POST /echo` with `Content-Length: abc`",
            request: b"POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: abc\r\n\r\nhello"
                .to_vec(),
            want: Want::Status(400),
            limit: true,
        },
        Probe {
            id: "garbage",
            what: "a garbage request line (`\\x16\\x03\\x01 garbage \\xff`)",
            request: b"\x16\x03\x01 garbage \xff\r\n\r\n".to_vec(),
            want: Want::Status(400),
            limit: true,
        },
        Probe {
            id: "pipelined",
            what: "`GET /plaintext` and `GET /json` in one write",
            request: pipelined,
            want: Want::Pipelined,
            limit: true,
        },
        Probe {
            id: "plaintext",
            what: "route: `GET /plaintext`",
            request: get("/plaintext"),
            want: Want::Body(200, http::PLAINTEXT.into()),
            limit: false,
        },
        Probe {
            id: "json",
            what: "route: `GET /json`",
            request: get("/json"),
            want: Want::Body(200, http::JSON.into()),
            limit: false,
        },
        Probe {
            id: "echo",
            what: "route: `POST /echo`, an 11-byte body by `Content-Length`",
            request:
                b"POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 11\r\n\r\nhello, echo"
                    .to_vec(),
            want: Want::Body(200, b"hello, echo".to_vec()),
            limit: false,
        },
        Probe {
            id: "echo-chunked",
            what: "route: `POST /echo`, the same body chunked",
            request:
                b"POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n\
                       5\r\nhello\r\n6\r\n, echo\r\n0\r\n\r\n"
                    .to_vec(),
            want: Want::Body(200, b"hello, echo".to_vec()),
            limit: false,
        },
        Probe {
            id: "stream",
            what: "route: `GET /stream?n=3`",
            request: get("/stream?n=3"),
            want: Want::Chunked((0..3).map(http::stream_line).collect::<String>().into()),
            limit: false,
        },
        Probe {
            id: "sleep",
            what: "route: `GET /sleep?ms=50`",
            request: get("/sleep?ms=50"),
            want: Want::Body(200, b"slept 50".to_vec()),
            limit: false,
        },
        Probe {
            id: "404",
            what: "route: `GET /nope`",
            request: get("/nope"),
            want: Want::Status(404),
            limit: false,
        },
        Probe {
            id: "alive",
            what: "`GET /plaintext` after all of the above: still serving",
            request: get("/plaintext"),
            want: Want::Body(200, http::PLAINTEXT.into()),
            limit: true,
        },
    ]
}

/// One parsed response.
#[derive(Debug)]
struct Resp {
    status: u16,
    /// The status line as sent.
    line: String,
    body: Vec<u8>,
    chunked: bool,
}

/// How a probe's connection ended.
enum End {
    /// The server closed it (EOF).
    Closed,
    /// The server reset it.
    Reset,
    /// Still open after the wanted responses and a quiet spell.
    Open,
    /// Fewer responses than wanted within the time limit, connection still open.
    Timeout,
    /// Could not connect or send.
    Error(String),
}

impl End {
    fn text(&self) -> String {
        match self {
            End::Closed => "closed".to_owned(),
            End::Reset => "reset".to_owned(),
            End::Open => "open".to_owned(),
            End::Timeout => format!("timeout ({} s)", PROBE_LIMIT.as_secs()),
            End::Error(e) => format!("error: {e}"),
        }
    }
}

struct Outcome {
    answers: Vec<Resp>,
    end: End,
    /// Bytes received that do not parse as (the start of) a response.
    unparsed: usize,
}

impl Outcome {
    /// The table cell: the status codes and reasons, or how the connection ended.
    fn shown(&self) -> String {
        let mut s = self
            .answers
            .iter()
            .map(|r| {
                r.line
                    .split_once(' ')
                    .map_or(&*r.line, |(_, x)| x)
                    .to_owned()
            })
            .collect::<Vec<_>>()
            .join(" + ");
        if self.answers.is_empty() {
            s = self.end.text();
        }
        if self.unparsed > 0 {
            s.push_str(&format!(" ({} bytes that are no response)", self.unparsed));
        }
        s
    }
}

const PROBE_LIMIT: Duration = Duration::from_secs(3);
/// After the wanted responses, how long to wait for more (a smuggled request's).
const QUIET: Duration = Duration::from_millis(300);

/// Sends `request` on a new connection and reads what comes back: until the server
/// closes, or `QUIET` passes with nothing new after `want` responses, or `PROBE_LIMIT`.
fn probe(addr: SocketAddr, request: &[u8], want: usize) -> Outcome {
    let fail = |e: io::Error| Outcome {
        answers: Vec::new(),
        end: End::Error(e.to_string()),
        unparsed: 0,
    };
    let mut s = match TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let _ = s.set_nodelay(true);
    let _ = s.set_read_timeout(Some(Duration::from_millis(50)));
    let _ = s.set_write_timeout(Some(Duration::from_secs(2)));
    // A server may answer and close before it has read everything (the big header):
    // a failed write is not the end, what it answered is read below.
    let _ = s.write_all(request);
    let started = Instant::now();
    let mut last = Instant::now();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16384];
    let end = loop {
        match s.read(&mut chunk) {
            Ok(0) => break End::Closed,
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                last = Instant::now();
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => break End::Reset,
            Err(e) => break End::Error(e.to_string()),
        }
        let (got, _) = parse_responses(&buf, false);
        if got.len() >= want && last.elapsed() >= QUIET {
            break End::Open;
        }
        if started.elapsed() >= PROBE_LIMIT {
            break End::Timeout;
        }
    };
    let closed = matches!(end, End::Closed | End::Reset);
    let (answers, used) = parse_responses(&buf, closed);
    Outcome {
        answers,
        end,
        unparsed: buf.len() - used,
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A complete chunked body starting at `at`: the decoded body and where it ends
/// (trailers included); `None` if `buf` does not hold all of it (or it is malformed).
fn parse_chunked(buf: &[u8], mut at: usize) -> Option<(Vec<u8>, usize)> {
    let mut body = Vec::new();
    loop {
        let e = find(&buf[at..], b"\r\n")?;
        let size_text = String::from_utf8_lossy(&buf[at..at + e]).into_owned();
        let size_text = size_text.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16).ok()?;
        at += e + 2;
        if size == 0 {
            // Trailers, if any, up to an empty line.
            if find(&buf[at..], b"\r\n")? == 0 {
                return Some((body, at + 2));
            }
            return Some((body, at + find(&buf[at..], b"\r\n\r\n")? + 4));
        }
        if buf.len() < at + size + 2 {
            return None;
        }
        body.extend_from_slice(&buf[at..at + size]);
        at += size + 2;
    }
}

/// The complete responses at the start of `buf`, and how many bytes they take.
/// `closed`: the connection has ended, so a body without a length ends here.
fn parse_responses(buf: &[u8], closed: bool) -> (Vec<Resp>, usize) {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < buf.len() {
        let Some(h) = find(&buf[pos..], b"\r\n\r\n") else {
            break;
        };
        let head = String::from_utf8_lossy(&buf[pos..pos + h]).into_owned();
        let mut lines = head.split("\r\n");
        let line = lines.next().unwrap_or("").to_owned();
        if !line.starts_with("HTTP/") {
            break;
        }
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let (mut length, mut chunked) = (None, false);
        for l in lines {
            let Some((k, v)) = l.split_once(':') else {
                continue;
            };
            let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
            if k == "content-length" {
                length = v.parse::<usize>().ok();
            } else if k == "transfer-encoding" && v.to_ascii_lowercase().contains("chunked") {
                chunked = true;
            }
        }
        let mut at = pos + h + 4;
        let mut body = Vec::new();
        if status < 200 || status == 204 || status == 304 {
        } else if chunked {
            let Some((b, end)) = parse_chunked(buf, at) else {
                break;
            };
            body = b;
            at = end;
        } else if let Some(n) = length {
            if buf.len() < at + n {
                break;
            }
            body.extend_from_slice(&buf[at..at + n]);
            at += n;
        } else if closed {
            body.extend_from_slice(&buf[at..]);
            at = buf.len();
        } else {
            break;
        }
        out.push(Resp {
            status,
            line,
            body,
            chunked,
        });
        pos = at;
    }
    (out, pos)
}

/// Checks that wrk is there (bench/run installs it) before the HTTP part starts.
pub fn wrk_available() -> bool {
    Command::new("wrk")
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}
