//! Runs the whole benchmark suite and writes its results as JSON lines; `report` turns
//! them into `docs/benchmarks.md`. `bench/run` builds everything and calls this.
//!
//! Run: `suite --out DIR --python PY [--scale F] [--servers a,b] [--scenarios S1,S3]
//!       [--repeat N] [--python-busy-scale F] [--micros a,b] [--no-micro] [--no-echo]
//!       [--no-strace] [--no-http] [--http-only] [--http-duration SECS]`
//!
//! - Every echo server runs pinned to core 1 (`taskset -c 1`), the load generator to
//!   core 0; each (server, scenario) gets a fresh server process on its own port, so
//!   its peak memory (`VmHWM`, `VmPeak`) belongs to that scenario alone.
//! - The micro-benchmarks (`micro_core`, `micro_hub`, `micro_monkey`, `py/micro.py`)
//!   run pinned to core 1 too; `--micros` picks some of them (by those names).
//! - System calls per message: the gevent-rs example, the monkey-patched std server
//!   and the C server run a short load under `strace -c -f -p PID` (those of them
//!   that `--servers` names).
//! - `--scale F` multiplies the message counts of every scenario and the micro
//!   iterations (1.0, the default, is the full suite; it is there for quick checks).
//! - `--repeat N` (default 3): the native servers run each timed scenario N times,
//!   interleaved; the report shows the median run and the spread. Python servers run
//!   once.
//! - `--python-busy-scale F` (default 1): the Python servers' S2-busy sends F × the
//!   messages (Python threads need minutes there; `bench/run` passes 0.2 to stay
//!   within its time budget, and the report says so).
//!
//! - The HTTP part (`suite/http.rs`): `wrk` against the `http_server` example and its
//!   peers in H1 (`/plaintext`), H2 (`/plaintext` pipelined 16 deep) and H3 (`/json`),
//!   and HC, a conformance table of raw requests. `--servers` and `--scenarios` pick
//!   from these too (HTTP servers: gevent-rs, may-minihttp, hyper, py-pywsgi); each
//!   run lasts `--http-duration` seconds (default 5 × `--scale`, at least 1);
//!   `--http-only` runs nothing else, `--no-http` skips it.
//!
//! Everything lands in `DIR/results.jsonl` (one record per line: `meta`, `echo`,
//! `syscalls`, `micro`, `http`, `http_probe`, `failure`) and the runs' own output in
//! `DIR/log.txt`.

// The HTTP part, in a directory of its own (a file beside this one would be a binary).
#[path = "suite/http.rs"]
mod http;

use gevent_bench::fmt;
use serde_json::json;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

/// The directory of the bench crate (for `py/`) and of the workspace.
const BENCH_DIR: &str = env!("CARGO_MANIFEST_DIR");

/// Size of every echo message, in bytes.
const MSG_SIZE: usize = 64;

/// The micro-benchmarks, by the names `--micros` takes, in the order they run.
const MICROS: &[&str] = &["micro_core", "micro_hub", "micro_monkey", "micro.py"];

/// First port; each server run takes the next one.
const BASE_PORT: u16 = 24000;

struct Server {
    /// Name in the results.
    name: &'static str,
    /// What it is, for the report.
    what: &'static str,
    /// Python: run once per scenario (the others are repeated, see `--repeat`).
    python: bool,
}

const SERVERS: &[Server] = &[
    Server {
        name: "gevent-rs",
        python: false,
        what: "this project: the `echo_server` example (`echo_hub` with `--busy`)",
    },
    Server {
        name: "gevent-monkey",
        python: false,
        what: "the thread-per-connection std server (`echo_threads`) under \
               `gevent_monkey::patch_all()`, `gevent_hub::spawn` per connection \
               (`echo_monkey_std`)",
    },
    Server {
        name: "c-libev",
        python: false,
        what: "C on raw libev callbacks, same vendored libev (`bench/c/echo_libev.c`)",
    },
    Server {
        name: "tokio",
        python: false,
        what: "tokio current-thread runtime, a task per connection",
    },
    Server {
        name: "rust-threads",
        python: false,
        what: "Rust std, a thread per connection",
    },
    Server {
        name: "py-gevent",
        python: true,
        what: "Python gevent StreamServer, the slides' server_gevent.py",
    },
    Server {
        name: "py-threads",
        python: true,
        what: "Python threads, the slides' threaded echo",
    },
];

#[derive(Clone)]
struct Scenario {
    id: &'static str,
    what: &'static str,
    clients: u32,
    messages: u32,
    /// Server-side busy loop repetitions (the slides' stress() before each send).
    busy: u32,
    hold: bool,
    timeout_s: u64,
}

fn scenarios(scale: f64) -> Vec<Scenario> {
    let m = |n: u32| ((f64::from(n) * scale).round() as u32).max(1);
    vec![
        Scenario {
            id: "S1",
            what: "1000 clients x 1000 messages (the slides' Benchmark 1)",
            clients: 1000,
            messages: m(1000),
            busy: 0,
            hold: false,
            timeout_s: 400,
        },
        Scenario {
            id: "S2",
            what: "2000 clients x 50 messages, no busy loop",
            clients: 2000,
            messages: m(50),
            busy: 0,
            hold: false,
            timeout_s: 300,
        },
        Scenario {
            id: "S2-busy",
            what:
                "2000 clients x 50 messages, the slides' busy loop before each send (Benchmark 2)",
            clients: 2000,
            messages: m(50),
            busy: 1,
            hold: false,
            // Python threads need minutes here (the GIL with 2000 threads).
            timeout_s: 900,
        },
        Scenario {
            id: "S3",
            what: "1 client x 20,000 messages (latency)",
            clients: 1,
            messages: m(20_000),
            busy: 0,
            hold: false,
            timeout_s: 300,
        },
        Scenario {
            id: "S4-idle",
            what: "10,000 concurrent connections, one message each (memory per connection)",
            clients: 10_000,
            messages: 0,
            busy: 0,
            hold: true,
            timeout_s: 300,
        },
        Scenario {
            id: "S4'",
            what: "100 clients x 10,000 messages (throughput)",
            clients: 100,
            messages: m(10_000),
            busy: 0,
            hold: false,
            timeout_s: 400,
        },
    ]
}

struct Ctx {
    out: PathBuf,
    results: File,
    log: File,
    python: String,
    release: PathBuf,
    next_port: u16,
    failures: u32,
    /// HTTP runs in which wrk counted errors (recorded, never shown as results).
    flagged: u32,
    /// Seconds the HTTP part may still spend waiting for a quiet machine.
    quiet_budget_s: f64,
}

impl Ctx {
    fn record(&mut self, v: serde_json::Value) -> io::Result<()> {
        writeln!(self.results, "{v}")?;
        self.results.flush()
    }

    fn log(&mut self, line: &str) {
        println!("{line}");
        let _ = writeln!(self.log, "{line}");
    }

    fn port(&mut self) -> u16 {
        self.next_port += 1;
        self.next_port
    }

    fn fail(&mut self, what: &str, why: &str) -> io::Result<()> {
        self.failures += 1;
        self.log(&format!("FAILED: {what}: {why}"));
        self.record(json!({"kind": "failure", "what": what, "why": why}))
    }

    /// The command line of `server` on `port` with `busy` rounds of busy loop.
    fn server_cmd(&self, server: &str, port: u16, busy: u32) -> Vec<String> {
        let bin = |name: &str| self.release.join(name).display().to_string();
        let py = |script: &str| {
            Path::new(BENCH_DIR)
                .join("py")
                .join(script)
                .display()
                .to_string()
        };
        let mut cmd = match (server, busy) {
            ("gevent-rs", 0) => vec![
                self.release
                    .join("examples")
                    .join("echo_server")
                    .display()
                    .to_string(),
                port.to_string(),
            ],
            ("gevent-rs", _) => vec![bin("echo_hub"), port.to_string()],
            ("gevent-monkey", _) => vec![bin("echo_monkey_std"), port.to_string()],
            ("c-libev", _) => vec![bin("echo_libev"), port.to_string()],
            ("tokio", _) => vec![bin("echo_tokio"), port.to_string()],
            ("rust-threads", _) => vec![bin("echo_threads"), port.to_string()],
            ("py-gevent", _) => vec![self.python.clone(), py("echo_gevent.py"), port.to_string()],
            ("py-threads", _) => vec![self.python.clone(), py("echo_threads.py"), port.to_string()],
            _ => unreachable!("unknown server {server}"),
        };
        if busy > 0 {
            cmd.push("--busy".to_owned());
            cmd.push(busy.to_string());
        }
        cmd
    }

    /// Starts `cmd` pinned to core 1 and waits until it accepts connections on `port`.
    fn start_server(&mut self, cmd: &[String], port: u16) -> io::Result<Child> {
        let log = self.log.try_clone()?;
        let mut child = Command::new("taskset")
            .arg("-c")
            .arg("1")
            .args(cmd)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait()? {
                return Err(io::Error::other(format!(
                    "{} exited before listening: {status}",
                    cmd.join(" ")
                )));
            }
            // `taskset` execs the server, so the child's pid is the server's. The
            // probe connection is closed at once: servers see an EOF and move on.
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(child);
            }
            if Instant::now() > deadline {
                stop(&mut child);
                return Err(io::Error::other(format!(
                    "{} did not listen on {port} within 30 s",
                    cmd.join(" ")
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn loadgen(&self, args: &[String]) -> Command {
        let mut c = Command::new("taskset");
        c.arg("-c")
            .arg("0")
            .arg(self.release.join("loadgen"))
            .args(args);
        c
    }

    fn run_echo(&mut self, server: &str, sc: &Scenario, messages: u32, run: u32) -> io::Result<()> {
        let port = self.port();
        let cmd = self.server_cmd(server, port, sc.busy);
        let what = format!("{} {server} (run {run})", sc.id);
        let mut child = match self.start_server(&cmd, port) {
            Ok(c) => c,
            Err(e) => return self.fail(&what, &e.to_string()),
        };
        let results = self.out.join("results.jsonl").display().to_string();
        let mut args: Vec<String> = [
            "--addr",
            &format!("127.0.0.1:{port}"),
            "--clients",
            &sc.clients.to_string(),
            "--messages",
            &messages.to_string(),
            "--size",
            &MSG_SIZE.to_string(),
            "--run",
            &run.to_string(),
            "--server-pid",
            &child.id().to_string(),
            "--scenario",
            sc.id,
            "--server",
            server,
            "--timeout",
            &sc.timeout_s.to_string(),
            "--json",
            &results,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        if sc.hold {
            args.push("--hold".to_owned());
        }
        // The loadgen appends its record to results.jsonl itself; keep ours closed
        // meanwhile (appends of whole lines from two handles do not interleave).
        let out = self.loadgen(&args).stderr(Stdio::piped()).output();
        stop(&mut child);
        match out {
            Ok(o) => {
                let text = String::from_utf8_lossy(&o.stdout).trim().to_owned();
                let err = String::from_utf8_lossy(&o.stderr).trim().to_owned();
                if !text.is_empty() {
                    self.log(&text);
                }
                if !err.is_empty() {
                    self.log(&err);
                }
                if !o.status.success() {
                    self.fail(&what, &format!("loadgen exited with {}: {err}", o.status))?;
                }
                Ok(())
            }
            Err(e) => self.fail(&what, &format!("cannot run loadgen: {e}")),
        }
    }

    /// Counts the system calls of `server` over a short run under `strace -c -f`.
    fn run_strace(&mut self, server: &str, clients: u32, messages: u32) -> io::Result<()> {
        let port = self.port();
        let cmd = self.server_cmd(server, port, 0);
        let what = format!("strace {server}");
        let mut child = match self.start_server(&cmd, port) {
            Ok(c) => c,
            Err(e) => return self.fail(&what, &e.to_string()),
        };
        let file = self.out.join(format!("strace-{server}.txt"));
        let mut strace = Command::new("strace")
            .args(["-c", "-f", "-p", &child.id().to_string(), "-o"])
            .arg(&file)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?;
        // strace prints "Process N attached" once it is in; wait for that line.
        let attached = strace.stderr.take().map(|e| {
            let mut lines = io::BufReader::new(e).lines();
            let ok = lines
                .next()
                .is_some_and(|l| l.is_ok_and(|l| l.contains("attached")));
            // Keep draining in the background so strace never blocks on stderr.
            std::thread::spawn(move || for _ in lines {});
            ok
        });
        if attached != Some(true) {
            let _ = strace.kill();
            stop(&mut child);
            return self.fail(&what, "strace did not attach");
        }
        let args: Vec<String> = vec![
            "--addr".into(),
            format!("127.0.0.1:{port}"),
            "--clients".into(),
            clients.to_string(),
            "--messages".into(),
            messages.to_string(),
            "--size".into(),
            MSG_SIZE.to_string(),
            "--scenario".into(),
            "strace".into(),
            "--server".into(),
            server.into(),
        ];
        let out = self.loadgen(&args).output();
        // Let the server see the EOFs and close its connections, which are part of
        // its cost, before strace stops counting.
        std::thread::sleep(Duration::from_millis(500));
        // SIGINT makes strace detach and write its summary.
        // SAFETY: kill only sends a signal to the strace process we started.
        unsafe { libc::kill(strace.id() as i32, libc::SIGINT) };
        let _ = strace.wait();
        stop(&mut child);
        let out = out?;
        if !out.status.success() {
            return self.fail(&what, &String::from_utf8_lossy(&out.stderr));
        }
        self.log(String::from_utf8_lossy(&out.stdout).trim());
        let text = std::fs::read_to_string(&file)?;
        let (by_name, total) = parse_strace(&text);
        // Every client's warm-up message is a message too.
        let msgs = u64::from(clients) * (u64::from(messages) + 1);
        let per_msg = total as f64 / msgs as f64;
        self.log(&format!(
            "syscalls {server}: {total} calls for {msgs} messages = {} per message",
            fmt::ratio(per_msg)
        ));
        let by_name: serde_json::Map<String, serde_json::Value> =
            by_name.into_iter().map(|(k, v)| (k, json!(v))).collect();
        self.record(json!({
            "kind": "syscalls", "server": server, "clients": clients,
            "messages": msgs, "total": total, "per_msg": per_msg, "by_name": by_name,
        }))
    }

    /// Runs a micro-benchmark command pinned to core 1; it appends its own records.
    fn run_micro(&mut self, what: &str, cmd: &[String]) -> io::Result<()> {
        self.log(&format!("== {what}"));
        let out = Command::new("taskset")
            .arg("-c")
            .arg("1")
            .args(cmd)
            .stdin(Stdio::null())
            .output()?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        self.log(text.trim_end());
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr).into_owned();
            self.fail(what, err.trim())?;
        }
        Ok(())
    }
}

/// `strace -c` summary: calls per syscall name, and the total.
fn parse_strace(text: &str) -> (Vec<(String, u64)>, u64) {
    let mut rows = Vec::new();
    let mut total = 0;
    for line in text.lines() {
        let t: Vec<&str> = line.split_whitespace().collect();
        // "% time  seconds  usecs/call  calls  [errors]  syscall"
        if t.len() < 5 || t[0].parse::<f64>().is_err() {
            continue;
        }
        let Ok(calls) = t[3].parse::<u64>() else {
            continue;
        };
        let name = t[t.len() - 1].to_owned();
        if name == "total" {
            total = calls;
        } else {
            rows.push((name, calls));
        }
    }
    if total == 0 {
        total = rows.iter().map(|(_, c)| c).sum();
    }
    rows.sort_by_key(|e| std::cmp::Reverse(e.1));
    (rows, total)
}

/// SIGTERM, then SIGKILL if it has not exited within 5 s; reaps it.
fn stop(child: &mut Child) {
    // SAFETY: kill only sends a signal to a process we started and have not reaped.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn command_output(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| {
            let mut s = String::from_utf8_lossy(&o.stdout).trim().to_owned();
            if s.is_empty() {
                s = String::from_utf8_lossy(&o.stderr).trim().to_owned();
            }
            s
        })
        .unwrap_or_else(|| "unknown".to_owned())
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// `YYYY-MM-DD HH:MM:SS UTC` (days-to-civil, Howard Hinnant's algorithm).
fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn lock_version(krate: &str) -> String {
    let lock = Path::new(BENCH_DIR).join("..").join("Cargo.lock");
    let text = std::fs::read_to_string(lock).unwrap_or_default();
    let mut lines = text.lines();
    while let Some(l) = lines.next() {
        if l.trim() == format!("name = \"{krate}\"") {
            if let Some(v) = lines.next().and_then(|v| v.split('"').nth(1)) {
                return v.to_owned();
            }
        }
    }
    "unknown".to_owned()
}

fn meta(
    python: &str,
    scale: f64,
    repeat: u32,
    python_busy_scale: f64,
    http_duration: u64,
) -> serde_json::Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_owned())
        .unwrap_or_else(|| "unknown".to_owned());
    let mhz = cpuinfo
        .lines()
        .find(|l| l.starts_with("cpu MHz"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_owned())
        .unwrap_or_default();
    // SAFETY: sysconf only reads a configuration value.
    let nproc = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    let (major, minor) = gevent_core::version();
    json!({
        "kind": "meta",
        "date": utc_now(),
        "nproc": nproc,
        "cpu_model": model,
        "cpu_mhz": mhz,
        "kernel": std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim(),
        "rustc": command_output("rustc", &["-V"]),
        "python": command_output(python, &["-V"]),
        "gevent": command_output(python, &["-c", "import gevent; print(gevent.__version__)"]),
        "greenlet": command_output(python, &["-c", "import greenlet; print(greenlet.__version__)"]),
        "tokio": lock_version("tokio"),
        "mio": lock_version("mio"),
        "context": lock_version("context"),
        "libev": format!("{major}.{minor}"),
        "strace": command_output("strace", &["-V"]).lines().next().unwrap_or("unknown").to_owned(),
        "loadavg_start": loadavg(),
        "scale": scale,
        "repeat": repeat,
        "python_busy_scale": python_busy_scale,
        "msg_size": MSG_SIZE,
        "servers": SERVERS.iter().map(|s| json!({"name": s.name, "what": s.what})).collect::<Vec<_>>(),
        "scenarios": scenarios(scale).iter().map(|s| json!({
            "id": s.id, "what": s.what, "clients": s.clients, "messages": s.messages,
            "busy": s.busy, "hold": s.hold,
        })).collect::<Vec<_>>(),
        "http": http::meta(http_duration),
    })
}

struct Opts {
    out: PathBuf,
    python: String,
    scale: f64,
    servers: Vec<String>,
    scenarios: Vec<String>,
    micro: bool,
    micros: Vec<String>,
    echo: bool,
    strace: bool,
    http: bool,
    /// Seconds of load per HTTP run; `None`: `http::DURATION_S` × scale.
    http_duration: Option<u64>,
    repeat: u32,
    python_busy_scale: f64,
}

impl Opts {
    fn http_duration(&self) -> u64 {
        self.http_duration
            .unwrap_or_else(|| ((http::DURATION_S * self.scale).round() as u64).max(1))
    }
}

fn parse_opts() -> Result<Opts, String> {
    let mut o = Opts {
        out: PathBuf::from("target/bench-results"),
        python: "python3".to_owned(),
        scale: 1.0,
        servers: SERVERS
            .iter()
            .map(|s| s.name)
            .chain(http::HTTP_SERVERS.iter().map(|s| s.name))
            .map(str::to_owned)
            .collect(),
        scenarios: scenarios(1.0)
            .iter()
            .map(|s| s.id.to_owned())
            .chain(http::ids().into_iter().map(str::to_owned))
            .collect(),
        micro: true,
        micros: MICROS.iter().map(|m| (*m).to_owned()).collect(),
        echo: true,
        strace: true,
        http: true,
        http_duration: None,
        repeat: 3,
        python_busy_scale: 1.0,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--no-micro" => o.micro = false,
            "--no-echo" => o.echo = false,
            "--no-strace" => o.strace = false,
            "--no-http" => o.http = false,
            "--http-only" => {
                o.micro = false;
                o.echo = false;
                o.strace = false;
            }
            _ => {
                let v = args.next().ok_or_else(|| format!("{a} needs a value"))?;
                match a.as_str() {
                    "--out" => o.out = PathBuf::from(v),
                    "--python" => o.python = v,
                    "--scale" => {
                        o.scale = v.parse().map_err(|e| format!("--scale {v:?}: {e}"))?;
                        if !(o.scale > 0.0 && o.scale.is_finite()) {
                            return Err("--scale must be positive".to_owned());
                        }
                    }
                    "--servers" => o.servers = v.split(',').map(str::to_owned).collect(),
                    "--micros" => o.micros = v.split(',').map(str::to_owned).collect(),
                    "--repeat" => {
                        o.repeat = v.parse().map_err(|e| format!("--repeat {v:?}: {e}"))?;
                        o.repeat = o.repeat.max(1);
                    }
                    "--python-busy-scale" => {
                        o.python_busy_scale = v
                            .parse()
                            .map_err(|e| format!("--python-busy-scale {v:?}: {e}"))?;
                        if !(o.python_busy_scale > 0.0 && o.python_busy_scale <= 1.0) {
                            return Err("--python-busy-scale must be in (0, 1]".to_owned());
                        }
                    }
                    "--scenarios" => o.scenarios = v.split(',').map(str::to_owned).collect(),
                    "--http-duration" => {
                        let d: u64 = v
                            .parse()
                            .map_err(|e| format!("--http-duration {v:?}: {e}"))?;
                        o.http_duration = Some(d.max(1));
                    }
                    _ => return Err(format!("unknown option {a}")),
                }
            }
        }
    }
    for s in &o.servers {
        if !SERVERS.iter().any(|k| k.name == s) && !http::HTTP_SERVERS.iter().any(|k| k.name == s) {
            return Err(format!("unknown server {s}"));
        }
    }
    for m in &o.micros {
        if !MICROS.contains(&m.as_str()) {
            return Err(format!(
                "unknown micro-benchmark {m} (one of {})",
                MICROS.join(", ")
            ));
        }
    }
    for s in &o.scenarios {
        if !scenarios(1.0).iter().any(|k| k.id == s) && !http::ids().contains(&s.as_str()) {
            return Err(format!("unknown scenario {s}"));
        }
    }
    Ok(o)
}

fn main() {
    let opts = match parse_opts() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("suite: {e}");
            eprintln!(
                "usage: suite --out DIR --python PY [--scale F] [--servers a,b] \
                 [--scenarios S1,S3] [--repeat N] [--python-busy-scale F] [--micros a,b] \
                 [--no-micro] [--no-echo] [--no-strace] [--no-http] [--http-only] \
                 [--http-duration SECS]"
            );
            std::process::exit(2);
        }
    };
    match run(opts) {
        Ok(0) => {}
        Ok(n) => {
            eprintln!("suite: {n} run(s) failed (see the log)");
            std::process::exit(1);
        }
        Err(e) => {
            eprintln!("suite: {e}");
            std::process::exit(1);
        }
    }
}

fn run(opts: Opts) -> io::Result<u32> {
    std::fs::create_dir_all(&opts.out)?;
    let results_path = opts.out.join("results.jsonl");
    let _ = std::fs::remove_file(&results_path);
    let release = std::env::current_exe()?
        .parent()
        .map(Path::to_path_buf)
        .ok_or_else(|| io::Error::other("cannot locate target/release"))?;
    let open = |p: &Path| OpenOptions::new().create(true).append(true).open(p);
    let mut cx = Ctx {
        results: open(&results_path)?,
        log: File::create(opts.out.join("log.txt"))?,
        out: opts.out.clone(),
        python: opts.python.clone(),
        release,
        next_port: BASE_PORT,
        failures: 0,
        flagged: 0,
        quiet_budget_s: http::QUIET_BUDGET_S,
    };
    let started = Instant::now();
    let m = meta(
        &opts.python,
        opts.scale,
        opts.repeat,
        opts.python_busy_scale,
        opts.http_duration(),
    );
    cx.log(&format!(
        "suite started {}, load average {}",
        m["date"], m["loadavg_start"]
    ));
    cx.record(m)?;
    let results = results_path.display().to_string();
    let scale = opts.scale.to_string();

    if opts.micro {
        let release = cx.release.clone();
        let bin = |n: &str| release.join(n).display().to_string();
        let py = Path::new(BENCH_DIR)
            .join("py")
            .join("micro.py")
            .display()
            .to_string();
        let runs: [(&str, &str, Vec<String>); 4] = [
            (
                "micro_core",
                "micro_core (gevent-core vs C on the same libev)",
                vec![bin("micro_core")],
            ),
            (
                "micro_hub",
                "micro_hub (gevent-rs hub and toolkit)",
                vec![bin("micro_hub")],
            ),
            (
                "micro_monkey",
                "micro_monkey (gevent-monkey's hooked recv vs the real one)",
                vec![bin("micro_monkey")],
            ),
            (
                "micro.py",
                "micro.py (Python gevent)",
                vec![opts.python.clone(), py],
            ),
        ];
        for (name, what, mut cmd) in runs {
            if !opts.micros.iter().any(|m| m == name) {
                continue;
            }
            cmd.extend([scale.clone(), "--json".into(), results.clone()]);
            cx.run_micro(what, &cmd)?;
        }
    }

    if opts.echo {
        for sc in scenarios(opts.scale) {
            if !opts.scenarios.iter().any(|s| s == sc.id) {
                continue;
            }
            cx.log(&format!("== {}: {}", sc.id, sc.what));
            // The native servers run `repeat` times, interleaved (so that a slow
            // phase of the machine hits them alike); the report shows the median run.
            // The Python servers, far slower, run once; `--python-busy-scale` shortens
            // their S2-busy, which alone would otherwise take most of the budget.
            let rounds = if sc.hold { 1 } else { opts.repeat };
            for run in 0..rounds {
                for s in SERVERS {
                    if !opts.servers.iter().any(|n| n == s.name) || (s.python && run > 0) {
                        continue;
                    }
                    let messages = if s.python && sc.busy > 0 {
                        ((f64::from(sc.messages) * opts.python_busy_scale).round() as u32).max(1)
                    } else {
                        sc.messages
                    };
                    cx.run_echo(s.name, &sc, messages, run)?;
                }
            }
        }
    }

    if opts.strace {
        cx.log("== system calls per message (strace -c -f, 100 clients x 500 messages)");
        let msgs = ((500.0 * opts.scale).round() as u32).max(10);
        for s in ["gevent-rs", "gevent-monkey", "c-libev"] {
            if !opts.servers.iter().any(|n| n == s) {
                continue;
            }
            cx.run_strace(s, 100, msgs)?;
        }
    }

    if opts.http {
        run_http_part(&mut cx, &opts)?;
    }

    let elapsed = started.elapsed().as_secs_f64();
    let end = json!({
        "kind": "end", "suite_s": elapsed, "loadavg_end": loadavg(),
        "failures": cx.failures, "http_flagged": cx.flagged,
    });
    cx.record(end)?;
    cx.log(&format!(
        "suite done in {} s, load average {}, {} failure(s), {} HTTP run(s) with errors",
        fmt::secs(elapsed),
        loadavg(),
        cx.failures,
        cx.flagged
    ));
    Ok(cx.failures)
}

/// The HTTP part: the conformance table (HC), then H1-H3, the servers interleaved.
fn run_http_part(cx: &mut Ctx, opts: &Opts) -> io::Result<()> {
    let servers: Vec<&http::HttpServer> = http::HTTP_SERVERS
        .iter()
        .filter(|s| opts.servers.iter().any(|n| n == s.name))
        .collect();
    let wanted = |id: &str| opts.scenarios.iter().any(|s| s == id);
    if servers.is_empty() || !http::ids().iter().any(|id| wanted(id)) {
        return Ok(());
    }
    if !http::wrk_available() {
        return cx.fail("HTTP", "wrk is not installed (bench/run installs it)");
    }
    let started = Instant::now();
    if wanted(http::CONFORMANCE) {
        cx.log(&format!(
            "== {}: conformance, raw requests on new connections",
            http::CONFORMANCE
        ));
        for s in &servers {
            cx.run_conformance(s.name)?;
        }
    }
    let duration = opts.http_duration();
    for sc in http::http_scenarios() {
        if !wanted(sc.id) {
            continue;
        }
        cx.log(&format!(
            "== {}: {} (wrk -t1 -c{} -d{duration}s)",
            sc.id,
            sc.what,
            http::CONNECTIONS
        ));
        // As the echo scenarios: the native servers `repeat` times, interleaved; the
        // Python server once.
        for run in 0..opts.repeat {
            for s in &servers {
                if s.python && run > 0 {
                    continue;
                }
                cx.run_http(s.name, &sc, duration, run)?;
            }
        }
    }
    cx.log(&format!(
        "HTTP part done in {} s",
        fmt::secs(started.elapsed().as_secs_f64())
    ));
    Ok(())
}
