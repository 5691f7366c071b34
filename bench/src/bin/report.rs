//! Turns the suite's results (JSON lines) into `docs/benchmarks.md` and its plots
//! (hand-written SVG, in `docs/benchmarks/`).
//!
//! Run: `report [--results target/bench-results/results.jsonl] [--out docs/benchmarks.md]
//!       [--svg-dir docs/benchmarks]`
//!
//! Every number is formatted with the same `gevent_bench::fmt` function the run that
//! measured it printed it with, from the value that run wrote: the report shows the
//! numbers exactly as the tools printed them. Ratios and verdicts are computed here.

// The HTTP section, in a directory of its own (a file beside this one would be a binary).
#[path = "report/http.rs"]
mod http;

use gevent_bench::fmt;
use serde_json::Value;
use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};

/// The servers, in table order, with the colour of their bars.
const SERVERS: &[(&str, &str)] = &[
    ("gevent-rs", "#d62728"),
    ("gevent-monkey", "#e377c2"),
    ("c-libev", "#1f77b4"),
    ("tokio", "#2ca02c"),
    ("rust-threads", "#9467bd"),
    ("py-gevent", "#ff7f0e"),
    ("py-threads", "#8c564b"),
];

/// The throughput scenarios with goals against C and tokio.
const GOAL_SCENARIOS: &[&str] = &["S1", "S2", "S4'"];

/// The monkey-patched std server and the native one it is measured against.
const MONKEY: &str = "gevent-monkey";
const NATIVE: &str = "gevent-rs";

/// The scenarios with targets for the monkey-patched server, and the targets: its
/// throughput at least this × the native server's, its server CPU per message at
/// most this × the native server's, at most this many system calls per message, and
/// a hooked call on a thread that did not patch at most this many ns over the real one.
const MONKEY_SCENARIOS: &[&str] = &["S1", "S2"];
const MONKEY_MIN_THROUGHPUT: f64 = 0.9;
const MONKEY_MAX_CPU: f64 = 1.1;
const MONKEY_MAX_SYSCALLS: f64 = 2.1;
const MONKEY_MAX_PASS_NS: f64 = 5.0;

/// The pass-through micro-benchmark's operation (`micro_monkey`'s `NAME`).
const MONKEY_MICRO: &str = "recv(fd, buf, 1, MSG_DONTWAIT) on an empty socketpair (EAGAIN)";

struct Data {
    meta: Value,
    end: Value,
    echo: Vec<Value>,
    micro: Vec<Value>,
    syscalls: Vec<Value>,
    failures: Vec<Value>,
    /// The HTTP runs (`wrk`) and the conformance probes.
    http: Vec<Value>,
    probes: Vec<Value>,
}

fn num(v: &Value, key: &str) -> Option<f64> {
    v.get(key).and_then(Value::as_f64)
}

/// `a ÷ b` of each of `keys`, formatted, for every round (`run`) that both `a` and
/// `b` ran without errors: each round runs the servers one after the other, so a
/// machine that slowed down between rounds affects the pair's ratio less than the
/// ratio of the medians, which may come from different rounds.
fn paired_ratios(a: &[&Value], b: &[&Value], keys: [&str; 2]) -> [Vec<String>; 2] {
    let mut out = [Vec::new(), Vec::new()];
    for x in a {
        let Some(y) = b.iter().find(|y| int(y, "run") == int(x, "run")) else {
            continue;
        };
        if int(x, "errors") != Some(0) || int(y, "errors") != Some(0) {
            continue;
        }
        for (i, k) in keys.iter().enumerate() {
            if let (Some(p), Some(q)) = (num(x, k), num(y, k)) {
                if q > 0.0 {
                    out[i].push(fmt::ratio(p / q));
                }
            }
        }
    }
    out
}

fn int(v: &Value, key: &str) -> Option<u64> {
    v.get(key).and_then(Value::as_u64)
}

/// The runs among `records` of `server` in `scenario`.
fn runs_of<'a>(records: &'a [Value], scenario: &str, server: &str) -> Vec<&'a Value> {
    records
        .iter()
        .filter(|e| text(e, "scenario") == scenario && text(e, "server") == server)
        .collect()
}

/// The median by `key` of the `runs` that counted no error (the lower median of an
/// even count); none if every run had errors.
fn median_clean_run<'a>(runs: &[&'a Value], key: &str) -> Option<&'a Value> {
    let mut ok: Vec<&Value> = runs
        .iter()
        .copied()
        .filter(|e| int(e, "errors") == Some(0))
        .collect();
    if ok.is_empty() {
        return None;
    }
    ok.sort_by(|a, b| {
        let (x, y) = (num(a, key), num(b, key));
        x.partial_cmp(&y).unwrap_or(std::cmp::Ordering::Equal)
    });
    Some(ok[(ok.len() - 1) / 2])
}

/// The table row of a server with no result in scenario `id`: "failed" when the log
/// has a failure for it, else "not run" if the run measured this kind of scenario at
/// all (`any_results`); no row otherwise.
fn unmeasured_row(out: &mut String, d: &Data, id: &str, server: &str, any_results: bool) {
    let failed = d
        .failures
        .iter()
        .any(|f| text(f, "what").starts_with(&format!("{id} {server} ")));
    if failed || any_results {
        let _ = writeln!(
            out,
            "| {server} | {} |",
            if failed {
                "failed (see the log)"
            } else {
                "not run"
            }
        );
    }
}

fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("?")
}

impl Data {
    fn load(path: &Path) -> io::Result<Data> {
        let body = std::fs::read_to_string(path)?;
        let mut d = Data {
            meta: Value::Null,
            end: Value::Null,
            echo: Vec::new(),
            micro: Vec::new(),
            syscalls: Vec::new(),
            failures: Vec::new(),
            http: Vec::new(),
            probes: Vec::new(),
        };
        for (i, line) in body.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let v: Value = serde_json::from_str(line).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{}:{}: {e}", path.display(), i + 1),
                )
            })?;
            match v.get("kind").and_then(Value::as_str) {
                Some("meta") => d.meta = v,
                Some("end") => d.end = v,
                Some("echo") => d.echo.push(v),
                Some("micro") => d.micro.push(v),
                Some("syscalls") => d.syscalls.push(v),
                Some("failure") => d.failures.push(v),
                Some("http") => d.http.push(v),
                Some("http_probe") => d.probes.push(v),
                _ => {}
            }
        }
        if d.meta.is_null() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "no meta record: not a results file of the suite",
            ));
        }
        Ok(d)
    }

    /// Every run of `server` in `scenario`.
    fn runs(&self, scenario: &str, server: &str) -> Vec<&Value> {
        runs_of(&self.echo, scenario, server)
    }

    /// The run shown for `server` in `scenario`: the median by throughput of the runs
    /// without errors (the lower median of an even count), else the first run.
    fn echo(&self, scenario: &str, server: &str) -> Option<&Value> {
        let runs = self.runs(scenario, server);
        median_clean_run(&runs, "msgs_per_s").or_else(|| runs.first().copied())
    }

    fn rate(&self, scenario: &str, server: &str) -> Option<f64> {
        self.echo(scenario, server)
            .filter(|e| int(e, "errors") == Some(0))
            .and_then(|e| num(e, "msgs_per_s"))
    }

    fn micro(&self, name: &str, imp: &str) -> Option<f64> {
        self.micro
            .iter()
            .find(|m| text(m, "name") == name && text(m, "impl") == imp)
            .and_then(|m| num(m, "ns"))
    }

    fn syscalls(&self, server: &str) -> Option<&Value> {
        self.syscalls.iter().find(|s| text(s, "server") == server)
    }

    fn scenarios(&self) -> Vec<&Value> {
        self.meta
            .get("scenarios")
            .and_then(Value::as_array)
            .map(|a| a.iter().collect())
            .unwrap_or_default()
    }

    fn server_what(&self, server: &str) -> String {
        self.meta
            .get("servers")
            .and_then(Value::as_array)
            .and_then(|a| a.iter().find(|s| text(s, "name") == server))
            .map(|s| text(s, "what").to_owned())
            .unwrap_or_default()
    }
}

/// A goal and how the run measured against it.
struct Goal {
    goal: String,
    measured: String,
    verdict: String,
}

/// Verdict for "ratio ≥ want".
fn at_least(ratio: f64, want: f64) -> String {
    if ratio >= want {
        "met".to_owned()
    } else {
        format!("**missed** by {:.1}%", (want - ratio) / want * 100.0)
    }
}

/// Verdict for "value ≤ limit".
fn at_most(value: f64, limit: f64) -> String {
    if value <= limit {
        "met".to_owned()
    } else {
        format!("**missed**: {:.1}% over", (value - limit) / limit * 100.0)
    }
}

/// A goal the run has no result for.
fn missing(goal: String) -> Goal {
    not_measured(goal, "no result (run failed or skipped)")
}

/// A goal the run could not measure, and why.
fn not_measured(goal: String, why: &str) -> Goal {
    Goal {
        goal,
        measured: why.to_owned(),
        verdict: "not measured".to_owned(),
    }
}

/// "`a` ≤ `limit` × `b`", both shown in `unit` through `show`.
fn ratio_at_most(
    goal: String,
    a: Option<f64>,
    b: Option<f64>,
    show: fn(f64) -> String,
    unit: &str,
    limit: f64,
) -> Goal {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Goal {
            goal,
            measured: format!(
                "{} {unit} vs {} {unit} = {}×",
                show(a),
                show(b),
                fmt::ratio(a / b)
            ),
            verdict: at_most(a / b, limit),
        },
        _ => missing(goal),
    }
}

/// "`server`'s throughput in `sc` ≥ `want` × `peer`'s", from the run's medians.
fn throughput_goal(d: &Data, sc: &str, server: &str, peer: &str, want: f64) -> Goal {
    let goal = format!("{sc} throughput ≥ {want:.2}× {peer}");
    match (d.rate(sc, server), d.rate(sc, peer)) {
        (Some(a), Some(b)) if b > 0.0 => Goal {
            goal,
            measured: format!(
                "{} / {} msg/s = {}×{}",
                fmt::rate(a),
                fmt::rate(b),
                fmt::ratio(a / b),
                sat_note(d, sc, &[server, peer])
            ),
            verdict: at_least(a / b, want),
        },
        _ => missing(goal),
    }
}

fn goals(d: &Data) -> Vec<Goal> {
    let mut g = Vec::new();
    for sc in GOAL_SCENARIOS {
        for (peer, want) in [("c-libev", 0.95), ("tokio", 1.0)] {
            g.push(throughput_goal(d, sc, "gevent-rs", peer, want));
        }
    }
    {
        let goal = "S4-idle RSS per connection at 10,000 ≤ Python gevent's".to_owned();
        let per = |s| {
            d.echo("S4-idle", s)
                .and_then(|e| num(e, "rss_per_conn_kib"))
        };
        match (per("gevent-rs"), per("py-gevent")) {
            (Some(a), Some(b)) => g.push(Goal {
                goal,
                measured: format!("{} KiB vs {} KiB", fmt::kib2(a), fmt::kib2(b)),
                verdict: at_most(a, b),
            }),
            _ => g.push(missing(goal)),
        }
    }
    for sc in GOAL_SCENARIOS {
        let goal = format!("{sc} server CPU per message ≤ 1.05× c-libev's");
        let cpu = |s| d.echo(sc, s).and_then(|e| num(e, "server_cpu_us_per_msg"));
        match (cpu("gevent-rs"), cpu("c-libev")) {
            (Some(a), Some(b)) => g.push(Goal {
                goal,
                measured: format!(
                    "{} µs vs {} µs = {}×",
                    fmt::us2(a),
                    fmt::us2(b),
                    fmt::ratio(a / b)
                ),
                verdict: at_most(a / b, 1.05),
            }),
            _ => g.push(missing(goal)),
        }
    }
    {
        let goal = "system calls per message ≤ c-libev's".to_owned();
        let per = |s| d.syscalls(s).and_then(|v| num(v, "per_msg"));
        match (per("gevent-rs"), per("c-libev")) {
            (Some(a), Some(b)) => g.push(Goal {
                goal,
                measured: format!("{} vs {}", fmt::ratio(a), fmt::ratio(b)),
                verdict: at_most(a, b),
            }),
            _ => g.push(missing(goal)),
        }
    }
    {
        let e = |s| d.echo("S2-busy", s).filter(|e| int(e, "errors") == Some(0));
        match (e("gevent-rs"), e("rust-threads")) {
            (Some(a), Some(b)) => {
                let (ta, tb) = (
                    num(a, "wall_s").unwrap_or(0.0),
                    num(b, "wall_s").unwrap_or(0.0),
                );
                g.push(Goal {
                    goal: "S2-busy time < rust-threads'".to_owned(),
                    measured: format!("{} s vs {} s", fmt::secs(ta), fmt::secs(tb)),
                    verdict: if ta < tb {
                        "met".to_owned()
                    } else {
                        format!("**missed**: {:.1}% slower", (ta - tb) / tb * 100.0)
                    },
                });
                let (ma, mb) = (
                    int(a, "server_hwm_kib").unwrap_or(0),
                    int(b, "server_hwm_kib").unwrap_or(0),
                );
                g.push(Goal {
                    goal: "S2-busy peak RSS < rust-threads'".to_owned(),
                    measured: format!("{} MiB vs {} MiB", fmt::mib(ma), fmt::mib(mb)),
                    verdict: if ma < mb {
                        "met".to_owned()
                    } else {
                        format!(
                            "**missed**: {:.1}% more",
                            (ma as f64 - mb as f64) / mb.max(1) as f64 * 100.0
                        )
                    },
                });
            }
            _ => g.push(missing("S2-busy ahead of rust-threads".to_owned())),
        }
    }
    let ctx = d.micro("context resume round trip", "context");
    for (name, want) in [
        ("raw greenlet switch round trip", 4.0),
        ("hub switch: sleep(0)", 8.0),
    ] {
        let goal = format!("{name} within {want:.0}× of a bare context round trip");
        g.push(ratio_at_most(
            goal,
            d.micro(name, "gevent-rs"),
            ctx,
            fmt::ns,
            "ns",
            want,
        ));
    }
    {
        let goal = "spawn+join < 1 µs".to_owned();
        match d.micro("spawn+join", "gevent-rs") {
            Some(a) => g.push(Goal {
                goal,
                measured: format!("{} ns", fmt::ns(a)),
                verdict: if a < 1000.0 {
                    "met".to_owned()
                } else {
                    at_most(a, 1000.0)
                },
            }),
            None => g.push(missing(goal)),
        }
    }
    for (name, want) in [
        ("raw greenlet switch round trip", 10.0),
        ("hub switch: sleep(0)", 10.0),
        ("Event ping-pong round trip", 10.0),
        ("spawn+join", 5.0),
    ] {
        let goal = format!("{name} ≥ {want:.0}× faster than Python gevent");
        match (d.micro(name, "gevent-rs"), d.micro(name, "python-gevent")) {
            (Some(a), Some(b)) => g.push(Goal {
                goal,
                measured: format!(
                    "{} ns vs {} ns: {}× faster",
                    fmt::ns(a),
                    fmt::ns(b),
                    fmt::ratio(b / a)
                ),
                verdict: at_least(b / a, want),
            }),
            _ => g.push(missing(goal)),
        }
    }
    g
}

/// " (load generator ≥ 90% CPU with a and b)" for the servers of `servers` whose
/// shown run in `sc` saturated the load generator, or nothing.
fn sat_note(d: &Data, sc: &str, servers: &[&str]) -> String {
    let sat: Vec<&str> = servers
        .iter()
        .copied()
        .filter(|s| d.echo(sc, s).is_some_and(saturated))
        .collect();
    if sat.is_empty() {
        String::new()
    } else {
        format!(" (load generator ≥ 90% CPU with {})", sat.join(" and "))
    }
}

/// The monkey-patched std server's targets, against the native server of the same run.
fn monkey_goals(d: &Data) -> Vec<Goal> {
    let mut g = Vec::new();
    for sc in MONKEY_SCENARIOS {
        g.push(throughput_goal(
            d,
            sc,
            MONKEY,
            NATIVE,
            MONKEY_MIN_THROUGHPUT,
        ));
    }
    for sc in MONKEY_SCENARIOS {
        let goal = format!("{sc} server CPU per message ≤ {MONKEY_MAX_CPU:.2}× {NATIVE}'s");
        let cpu = |s| {
            d.echo(sc, s)
                .filter(|e| int(e, "errors") == Some(0))
                .and_then(|e| num(e, "server_cpu_us_per_msg"))
        };
        g.push(ratio_at_most(
            goal,
            cpu(MONKEY),
            cpu(NATIVE),
            fmt::us2,
            "µs",
            MONKEY_MAX_CPU,
        ));
    }
    {
        let goal = format!("system calls per message ≤ {MONKEY_MAX_SYSCALLS:.1}");
        let per = |s| d.syscalls(s).and_then(|v| num(v, "per_msg"));
        match per(MONKEY) {
            Some(a) => g.push(Goal {
                goal,
                measured: match per(NATIVE) {
                    Some(b) => format!("{} ({NATIVE}: {})", fmt::ratio(a), fmt::ratio(b)),
                    None => fmt::ratio(a),
                },
                verdict: at_most(a, MONKEY_MAX_SYSCALLS),
            }),
            None => g.push(missing(goal)),
        }
    }
    {
        let goal = format!(
            "hooked `recv` on a thread that did not patch ≤ {} ns over the real call",
            fmt::ns(MONKEY_MAX_PASS_NS)
        );
        match (
            d.micro(MONKEY_MICRO, "gevent-monkey"),
            d.micro(MONKEY_MICRO, "libc"),
        ) {
            (Some(h), Some(r)) => {
                let over = h - r;
                g.push(Goal {
                    goal,
                    measured: format!(
                        "{} ns vs {} ns: {} ns over",
                        fmt::ns(h),
                        fmt::ns(r),
                        fmt::ns(over)
                    ),
                    verdict: if over <= MONKEY_MAX_PASS_NS {
                        "met".to_owned()
                    } else {
                        format!("**missed** by {} ns", fmt::ns(over - MONKEY_MAX_PASS_NS))
                    },
                });
            }
            _ => g.push(missing(goal)),
        }
    }
    g
}

/// Every scenario both the monkey-patched and the native server ran: their figures
/// side by side, with the ratios (informational outside `MONKEY_SCENARIOS`).
fn monkey_section(d: &Data, out: &mut String) {
    let ran = |id: &str| d.echo(id, MONKEY).is_some() || d.echo(id, NATIVE).is_some();
    if !d.scenarios().iter().any(|sc| ran(text(sc, "id"))) {
        return;
    }
    let _ = writeln!(
        out,
        "## gevent-monkey: unmodified std code against the native server

\
         `{MONKEY}` is `bench/src/bin/echo_monkey_std.rs`: the thread-per-connection std \
         server (`std::net::TcpListener`, `std::net::TcpStream`, `std::io::{{Read, Write}}`, \
         the same 4096-byte read and `write_all` loop as the `echo_server` example), with \
         `gevent_monkey::patch_all()` at the top of `main` and `gevent_hub::spawn` per \
         connection instead of `std::thread::spawn`. `{NATIVE}` is the `echo_server` example \
         on `gevent::hub::net` (`echo_hub` in S2-busy). Both are from the same run, shown \
         as in the tables above (the median run by throughput); ratios are {MONKEY} ÷ \
         {NATIVE}. Targets apply to {}; the other rows are for information.\n",
        MONKEY_SCENARIOS.join(" and ")
    );
    out.push_str(
        "| scenario | gevent-rs msg/s | gevent-monkey msg/s | × gevent-rs | gevent-rs CPU/msg (µs) | gevent-monkey CPU/msg (µs) | × gevent-rs | gevent-rs p50 RTT (µs) | gevent-monkey p50 RTT (µs) | peak RSS (MiB), gevent-rs / gevent-monkey |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for sc in d.scenarios() {
        let id = text(sc, "id");
        if sc.get("hold").and_then(Value::as_bool).unwrap_or(false) || !ran(id) {
            continue;
        }
        let ok = |s| d.echo(id, s).filter(|e| int(e, "errors") == Some(0));
        let (n, m) = (ok(NATIVE), ok(MONKEY));
        let f = |e: Option<&Value>, k: &str| e.and_then(|e| num(e, k));
        let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) if b > 0.0 => fmt::ratio(a / b),
            _ => "–".to_owned(),
        };
        let (rn, rm) = (f(n, "msgs_per_s"), f(m, "msgs_per_s"));
        let (cn, cm) = (f(n, "server_cpu_us_per_msg"), f(m, "server_cpu_us_per_msg"));
        let hwm = |e: Option<&Value>| cell(e.and_then(|e| int(e, "server_hwm_kib")), fmt::mib);
        let _ = writeln!(
            out,
            "| {id} | {} | {} | {} | {} | {} | {} | {} | {} | {} / {} |",
            cell(rn, fmt::rate),
            cell(rm, fmt::rate),
            ratio(rm, rn),
            cell(cn, fmt::us2),
            cell(cm, fmt::us2),
            ratio(cm, cn),
            cell(f(n, "p50_us"), fmt::us),
            cell(f(m, "p50_us"), fmt::us),
            hwm(n),
            hwm(m),
        );
    }
    // Each round of the suite runs the two servers back to back: the ratios of each
    // round's pair, which a machine that slowed down between rounds affects less than
    // the ratio of the medians (which may come from different rounds).
    let mut paired = String::new();
    for sc in d.scenarios() {
        let id = text(sc, "id");
        if sc.get("hold").and_then(Value::as_bool).unwrap_or(false) {
            continue;
        }
        let [thr, cpu] = paired_ratios(
            &d.runs(id, MONKEY),
            &d.runs(id, NATIVE),
            ["msgs_per_s", "server_cpu_us_per_msg"],
        );
        if thr.len() > 1 || cpu.len() > 1 {
            let _ = writeln!(paired, "| {id} | {} | {} |", thr.join(", "), cpu.join(", "));
        }
    }
    if !paired.is_empty() {
        let _ = write!(
            out,
            "\nRound by round (each round of the suite runs {NATIVE} and then {MONKEY}, each on a \
             fresh server), {MONKEY} ÷ {NATIVE}, for information:\n\n\
             | scenario | msg/s, round by round | server CPU/msg, round by round |\n|---|---|---|\n{paired}"
        );
    }
    let per = |s: &str| {
        d.echo("S4-idle", s)
            .filter(|e| int(e, "errors") == Some(0))
            .and_then(|e| num(e, "rss_per_conn_kib"))
    };
    if let (Some(a), Some(b)) = (per(NATIVE), per(MONKEY)) {
        let _ = writeln!(
            out,
            "\nS4-idle, RSS per connection at 10,000: {NATIVE} {} KiB, {MONKEY} {} KiB.",
            fmt::kib2(a),
            fmt::kib2(b)
        );
    }
    out.push('\n');
}

/// Text for a Markdown table cell (a `|` would end it).
fn esc_md(s: &str) -> String {
    s.replace('|', "\\|")
}

fn cell<T>(v: Option<T>, f: impl Fn(T) -> String) -> String {
    v.map(f).unwrap_or_else(|| "–".to_owned())
}

/// Whether the load generator was (close to) saturating its core in a run.
fn saturated(e: &Value) -> bool {
    num(e, "loadgen_cpu_pct").is_some_and(|p| p >= 90.0)
}

fn scenario_table(d: &Data, sc: &Value, out: &mut String) {
    let id = text(sc, "id");
    let hold = sc.get("hold").and_then(Value::as_bool).unwrap_or(false);
    let _ = writeln!(out, "### {id}: {}\n", text(sc, "what"));
    if hold {
        out.push_str(
            "| server | RSS per connection (KiB) | RSS at 10,000 (MiB) | peak RSS (MiB) | peak VSZ (MiB) | threads | connect + one message each (s) | errors |\n|---|---:|---:|---:|---:|---:|---:|---:|\n",
        );
    } else {
        out.push_str(
            "| server | msg/s | runs: min–max msg/s | × c-libev | × tokio | p50 RTT (µs) | p99 RTT (µs) | server CPU/msg (µs) | server CPU | loadgen CPU | wall (s) | peak RSS (MiB) | peak VSZ (MiB) | errors |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
        );
    }
    for (server, _) in SERVERS {
        let Some(e) = d.echo(id, server) else {
            unmeasured_row(out, d, id, server, !d.echo.is_empty());
            continue;
        };
        let errors = int(e, "errors").unwrap_or(0);
        if hold {
            let _ = writeln!(
                out,
                "| {server} | {} | {} | {} | {} | {} | {} | {errors} |",
                cell(num(e, "rss_per_conn_kib"), fmt::kib2),
                cell(int(e, "server_rss_kib"), fmt::mib),
                cell(int(e, "server_hwm_kib"), fmt::mib),
                cell(int(e, "server_vm_peak_kib"), fmt::mib),
                cell(int(e, "server_threads"), |t| t.to_string()),
                cell(num(e, "connect_s"), fmt::secs),
            );
        } else {
            let rate = num(e, "msgs_per_s");
            let vs = |peer: &str| match (rate, d.rate(id, peer)) {
                (Some(a), Some(b)) if b > 0.0 => fmt::ratio(a / b),
                _ => "–".to_owned(),
            };
            let lg = cell(num(e, "loadgen_cpu_pct"), |p| {
                format!(
                    "{}%{}",
                    fmt::pct(p),
                    if saturated(e) { " (sat.)" } else { "" }
                )
            });
            let runs = d.runs(id, server);
            let rates: Vec<f64> = runs.iter().filter_map(|e| num(e, "msgs_per_s")).collect();
            let spread = if rates.len() > 1 {
                let lo = rates.iter().copied().fold(f64::INFINITY, f64::min);
                let hi = rates.iter().copied().fold(0.0, f64::max);
                format!("{}: {}–{}", rates.len(), fmt::rate(lo), fmt::rate(hi))
            } else {
                "1".to_owned()
            };
            // Errors of every run of this server, not only the one shown.
            let errors: u64 = runs.iter().filter_map(|e| int(e, "errors")).sum();
            let per_client = int(e, "messages_per_client");
            let scaled = match (per_client, int(sc, "messages")) {
                (Some(a), Some(b)) if a != b => format!(" ({a} msgs/client)"),
                _ => String::new(),
            };
            let _ = writeln!(
                out,
                "| {server}{scaled} | {} | {spread} | {} | {} | {} | {} | {} | {} | {lg} | {} | {} | {} | {errors} |",
                cell(rate, fmt::rate),
                vs("c-libev"),
                vs("tokio"),
                cell(num(e, "p50_us"), fmt::us),
                cell(num(e, "p99_us"), fmt::us),
                cell(num(e, "server_cpu_us_per_msg"), fmt::us2),
                cell(num(e, "server_cpu_pct"), |p| format!("{}%", fmt::pct(p))),
                cell(num(e, "wall_s"), fmt::secs),
                cell(int(e, "server_hwm_kib"), fmt::mib),
                cell(int(e, "server_vm_peak_kib"), fmt::mib),
            );
        }
    }
    out.push('\n');
    // Runs cut short by a flag: say so, and what the full count would have taken.
    let full = int(sc, "messages").unwrap_or(0);
    for (server, _) in SERVERS {
        let Some(e) = d.echo(id, server) else {
            continue;
        };
        let (Some(per), Some(rate)) = (int(e, "messages_per_client"), num(e, "msgs_per_s")) else {
            continue;
        };
        if per == full || hold || rate <= 0.0 {
            continue;
        }
        let clients = int(e, "clients").unwrap_or(0);
        let _ = writeln!(
            out,
            "**{server} ran {per} messages per client here, not {full}** (`--python-busy-scale {}`, \
             which `bench/run` passes to keep the suite within its 20-minute budget; \
             `bench/run --python-busy-scale 1` runs the full count). At this run's rate the \
             full {} messages would take about {} s. Its msg/s and CPU per message compare \
             directly; its wall time does not.\n",
            num(&d.meta, "python_busy_scale").unwrap_or(1.0),
            clients * full,
            fmt::secs((clients * full) as f64 / rate),
        );
    }
}

// ---- SVG ----------------------------------------------------------------------

struct Bar {
    label: String,
    colour: &'static str,
    value: f64,
    /// A second, lighter bar drawn behind the first (p99 behind p50).
    value2: Option<f64>,
    shown: String,
}

struct Panel {
    title: String,
    bars: Vec<Bar>,
}

/// How bar lengths map values.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Axis {
    /// Proportional, from 0 to the panel's largest value.
    Linear,
    /// Logarithmic, from half the panel's smallest value to its largest.
    Log,
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Small multiples: one horizontal bar chart per panel, each on its own linear scale.
fn svg_panels(title: &str, note: &str, axis: Axis, panels: &[Panel]) -> String {
    const W: f64 = 900.0;
    const LABEL_W: f64 = 110.0;
    const VALUE_W: f64 = 210.0;
    const BAR_H: f64 = 16.0;
    const GAP: f64 = 4.0;
    let plot_w = W - LABEL_W - VALUE_W - 20.0;
    let mut y = 46.0;
    let mut body = String::new();
    for p in panels {
        let _ = writeln!(
            body,
            r#"<text x="10" y="{:.0}" font-weight="bold" font-size="13">{}</text>"#,
            y + 12.0,
            esc(&p.title)
        );
        y += 20.0;
        let max = p
            .bars
            .iter()
            .map(|b| b.value.max(b.value2.unwrap_or(0.0)))
            .fold(0.0f64, f64::max);
        let min = p
            .bars
            .iter()
            .map(|b| b.value)
            .filter(|v| *v > 0.0)
            .fold(f64::INFINITY, f64::min);
        let lo = (min / 2.0).log10();
        for b in &p.bars {
            let scale = |v: f64| match axis {
                _ if max <= 0.0 || v <= 0.0 => 0.0,
                Axis::Linear => v / max * plot_w,
                Axis::Log if max.log10() > lo => (v.log10() - lo) / (max.log10() - lo) * plot_w,
                Axis::Log => plot_w,
            };
            let _ = writeln!(
                body,
                r#"<text x="{:.0}" y="{:.0}" text-anchor="end" font-size="12">{}</text>"#,
                LABEL_W,
                y + BAR_H - 4.0,
                esc(&b.label)
            );
            if let Some(v2) = b.value2 {
                let _ = writeln!(
                    body,
                    r#"<rect x="{:.0}" y="{y:.0}" width="{:.1}" height="{BAR_H}" fill="{}" fill-opacity="0.35"/>"#,
                    LABEL_W + 6.0,
                    scale(v2),
                    b.colour
                );
            }
            let _ = writeln!(
                body,
                r#"<rect x="{:.0}" y="{y:.0}" width="{:.1}" height="{BAR_H}" fill="{}"/>"#,
                LABEL_W + 6.0,
                scale(b.value),
                b.colour
            );
            let _ = writeln!(
                body,
                r#"<text x="{:.0}" y="{:.0}" font-size="12">{}</text>"#,
                LABEL_W + 12.0 + plot_w,
                y + BAR_H - 4.0,
                esc(&b.shown)
            );
            y += BAR_H + GAP;
        }
        y += 12.0;
    }
    let h = y + 10.0;
    format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{W:.0}" height="{h:.0}" viewBox="0 0 {W:.0} {h:.0}" font-family="sans-serif">
<rect width="100%" height="100%" fill="white"/>
<text x="10" y="20" font-size="16" font-weight="bold">{}</text>
<text x="10" y="38" font-size="12" fill="#555">{}</text>
{body}</svg>
"##,
        esc(title),
        esc(note)
    )
}

fn echo_panels(
    d: &Data,
    ids: &[&str],
    value: impl Fn(&Value) -> Option<(f64, Option<f64>, String)>,
) -> Vec<Panel> {
    d.scenarios()
        .into_iter()
        .filter(|sc| ids.contains(&text(sc, "id")))
        .filter_map(|sc| {
            let id = text(sc, "id");
            let record = |s: &str| d.echo(id, s).filter(|e| int(e, "errors") == Some(0));
            scenario_panel(sc, SERVERS, record, &value)
        })
        .collect()
}

/// Scenario `sc`'s panel: a bar for each of `servers` whose `record` has a `value`;
/// `None` when none has.
fn scenario_panel<'a>(
    sc: &Value,
    servers: &[(&str, &'static str)],
    record: impl Fn(&str) -> Option<&'a Value>,
    value: &impl Fn(&Value) -> Option<(f64, Option<f64>, String)>,
) -> Option<Panel> {
    let bars: Vec<Bar> = servers
        .iter()
        .filter_map(|&(s, colour)| {
            let (v, v2, shown) = value(record(s)?)?;
            Some(Bar {
                label: s.to_owned(),
                colour,
                value: v,
                value2: v2,
                shown,
            })
        })
        .collect();
    (!bars.is_empty()).then(|| Panel {
        title: format!("{}: {}", text(sc, "id"), text(sc, "what")),
        bars,
    })
}

fn write_svgs(d: &Data, dir: &Path) -> io::Result<Vec<(String, String)>> {
    std::fs::create_dir_all(dir)?;
    let mut made = Vec::new();
    let thr_ids = ["S1", "S2", "S2-busy", "S3", "S4'"];
    let charts: Vec<(&str, &str, String, Axis, Vec<Panel>)> = vec![
        (
            "throughput.svg",
            "Echo throughput",
            "messages per second, higher is better; each panel has its own scale".to_owned(),
            Axis::Linear,
            echo_panels(d, &thr_ids, |e| {
                let r = num(e, "msgs_per_s")?;
                Some((r, None, format!("{} msg/s", fmt::rate(r))))
            }),
        ),
        (
            "latency.svg",
            "Echo round-trip latency",
            "p50 (solid) and p99 (light) in µs, lower is better; logarithmic, each panel has its own scale"
                .to_owned(),
            Axis::Log,
            echo_panels(d, &thr_ids, |e| {
                let (a, b) = (num(e, "p50_us")?, num(e, "p99_us")?);
                Some((a, Some(b), format!("{} / {} µs", fmt::us(a), fmt::us(b))))
            }),
        ),
        (
            "cpu.svg",
            "Server CPU time per message",
            "user + system µs per echoed message (/proc/PID/stat), lower is better".to_owned(),
            Axis::Linear,
            echo_panels(d, &thr_ids, |e| {
                let c = num(e, "server_cpu_us_per_msg")?;
                Some((c, None, format!("{} µs", fmt::us2(c))))
            }),
        ),
        (
            "memory.svg",
            "Server memory",
            "peak RSS (VmHWM) per scenario in MiB, and RSS per idle connection in KiB; lower is better"
                .to_owned(),
            Axis::Linear,
            {
                let mut p = echo_panels(d, &["S4-idle"], |e| {
                    let k = num(e, "rss_per_conn_kib")?;
                    Some((k.max(0.0), None, format!("{} KiB per connection", fmt::kib2(k))))
                });
                for panel in &mut p {
                    panel.title = format!("RSS per connection, {}", panel.title);
                }
                let mut peaks = echo_panels(d, &["S1", "S2-busy", "S4-idle"], |e| {
                    let k = int(e, "server_hwm_kib")?;
                    Some((k as f64, None, format!("{} MiB peak RSS", fmt::mib(k))))
                });
                for panel in &mut peaks {
                    panel.title = format!("peak RSS, {}", panel.title);
                }
                p.extend(peaks);
                p
            },
        ),
        (
            "vsz.svg",
            "Server virtual memory",
            "peak VSZ (VmPeak) in MiB, lower is better; logarithmic: thread stacks reserve GiBs"
                .to_owned(),
            Axis::Log,
            {
                let mut p = echo_panels(d, &["S1", "S2-busy", "S4-idle"], |e| {
                    let k = int(e, "server_vm_peak_kib")?;
                    Some((k as f64, None, format!("{} MiB peak VSZ", fmt::mib(k))))
                });
                for panel in &mut p {
                    panel.title = format!("peak VSZ, {}", panel.title);
                }
                p
            },
        ),
    ];
    for (file, title, note, axis, panels) in charts {
        if panels.is_empty() {
            continue;
        }
        std::fs::write(dir.join(file), svg_panels(title, &note, axis, &panels))?;
        made.push((file.to_owned(), title.to_owned()));
    }
    Ok(made)
}

// ---- the document ---------------------------------------------------------------

fn micro_sections(d: &Data, out: &mut String) {
    let rows = |group: &str| -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for m in d.micro.iter().filter(|m| text(m, "group") == group) {
            let n = text(m, "name").to_owned();
            if !names.contains(&n) {
                names.push(n);
            }
        }
        names
    };
    let core = rows("core");
    if !core.is_empty() {
        out.push_str("### Core: gevent-core vs C on the same libev (`micro_core`)\n\n| operation | C (ns) | gevent-core (ns) | Rust/C |\n|---|---:|---:|---:|\n");
        for n in core {
            let (c, r) = (d.micro(&n, "c"), d.micro(&n, "gevent-rs"));
            let _ = writeln!(
                out,
                "| {n} | {} | {} | {} |",
                cell(c, fmt::ns),
                cell(r, fmt::ns),
                match (c, r) {
                    (Some(c), Some(r)) => fmt::ratio(r / c),
                    _ => "–".to_owned(),
                }
            );
        }
        out.push('\n');
    }
    monkey_micro(d, out);
    let ctx = d.micro("context resume round trip", "context");
    for (group, title) in [
        (
            "hub",
            "Hub: greenlets and switching (`micro_hub`, `py/micro.py`)",
        ),
        ("toolkit", "Toolkit (`micro_hub`, `py/micro.py`)"),
        ("calib", "The busy loop of S2-busy"),
    ] {
        let names = rows(group);
        if names.is_empty() {
            continue;
        }
        let _ = writeln!(out, "### {title}\n");
        let hub = group == "hub";
        if hub {
            out.push_str("| operation | gevent-rs (ns) | Python gevent (ns) | Python / gevent-rs | gevent-rs / bare context |\n|---|---:|---:|---:|---:|\n");
        } else {
            out.push_str("| operation | gevent-rs (ns) | Python gevent (ns) | Python / gevent-rs |\n|---|---:|---:|---:|\n");
        }
        for n in names {
            if n == "context resume round trip" {
                let _ = writeln!(
                    out,
                    "| {n} (`context` crate, the floor) | {} | – | – | 1.00 |",
                    cell(ctx, fmt::ns)
                );
                continue;
            }
            let (r, p) = (d.micro(&n, "gevent-rs"), d.micro(&n, "python-gevent"));
            let speedup = match (r, p) {
                (Some(r), Some(p)) => format!("{}×", fmt::ratio(p / r)),
                _ => "–".to_owned(),
            };
            let _ = write!(
                out,
                "| {n} | {} | {} | {speedup} |",
                cell(r, fmt::ns),
                cell(p, fmt::ns)
            );
            if hub {
                let vs_ctx = match (r, ctx) {
                    (Some(r), Some(c)) => format!("{}×", fmt::ratio(r / c)),
                    _ => "–".to_owned(),
                };
                let _ = write!(out, " {vs_ctx} |");
            }
            out.push('\n');
        }
        out.push('\n');
    }
}

/// `micro_monkey`: the hooked `recv` against the real one.
fn monkey_micro(d: &Data, out: &mut String) {
    let real = d.micro(MONKEY_MICRO, "libc");
    let hooked = d.micro(MONKEY_MICRO, "gevent-monkey");
    let patched = d.micro(MONKEY_MICRO, "patched-thread-hooked");
    let patched_real = d.micro(MONKEY_MICRO, "patched-thread-libc");
    if real.is_none() && hooked.is_none() && patched.is_none() {
        return;
    }
    let _ = writeln!(
        out,
        "### gevent-monkey's pass-through (`micro_monkey`)\n\n\
         `{MONKEY_MICRO}`, ns per call. The binary links gevent-monkey, so its calls to \
         `recv` reach the hook; the real call is libc's `recv` found with \
         `dlsym(RTLD_NEXT, \"recv\")`, called through a function pointer. Target: the hook \
         on a thread that did not patch costs at most {} ns more than the real call.\n",
        fmt::ns(MONKEY_MAX_PASS_NS)
    );
    out.push_str("| call | ns | over the real call (ns) |\n|---|---:|---:|\n");
    let over = |x: Option<f64>, real: Option<f64>| match (x, real) {
        (Some(x), Some(r)) => fmt::ns(x - r),
        _ => "–".to_owned(),
    };
    let _ = writeln!(
        out,
        "| real: libc's `recv`, through a pointer | {} | – |",
        cell(real, fmt::ns)
    );
    let verdict = match (hooked, real) {
        (Some(h), Some(r)) if h - r <= MONKEY_MAX_PASS_NS => " (target met)",
        (Some(_), Some(_)) => " (target **missed**)",
        _ => "",
    };
    let _ = writeln!(
        out,
        "| hooked, on a thread that did not patch | {} | {}{verdict} |",
        cell(hooked, fmt::ns),
        over(hooked, real)
    );
    if patched.is_some() || patched_real.is_some() {
        let _ = writeln!(
            out,
            "| real, on a second thread (the baseline of the row below) | {} | – |",
            cell(patched_real, fmt::ns)
        );
        let _ = writeln!(
            out,
            "| hooked, on a patched thread (`MSG_DONTWAIT` does not park; for information) | {} | {} |",
            cell(patched, fmt::ns),
            over(patched, patched_real)
        );
    }
    out.push_str(
        "\nThe first two rows are timed while the process has one thread; the last two on a \
         second thread, after which libc's `recv` itself costs more (glibc's cancellation-point \
         wrappers take their multi-threaded path for good once a thread has been created), so \
         that thread has its own baseline. Rows are timed in short runs, interleaved, best run \
         shown.\n\n",
    );
}

fn document(
    d: &Data,
    svgs: &[(String, String)],
    http_svgs: &[(String, String)],
    svg_rel: &str,
) -> String {
    let m = &d.meta;
    let mut out = String::new();
    out.push_str("# Benchmarks\n\n");
    out.push_str(
        "<!-- Generated by `bench/run` (the `report` binary of `bench/`): do not edit by hand. -->\n\n",
    );
    let _ = writeln!(
        out,
        "Measured by `bench/run` on {}; the whole run (build excluded) took {} s. Every number \
         below is the one the run printed (its log is `target/bench-results/log.txt`); ratios \
         are computed from them. Re-run with `bench/run`.\n",
        text(m, "date"),
        cell(num(&d.end, "suite_s"), fmt::secs)
    );
    out.push_str("## Machine and versions\n\n| | |\n|---|---|\n");
    for (k, label) in [
        ("cpu_model", "CPU"),
        ("cpu_mhz", "CPU MHz"),
        ("kernel", "kernel"),
        ("rustc", "rustc"),
        ("python", "Python"),
        ("gevent", "gevent"),
        ("greenlet", "greenlet"),
        ("tokio", "tokio"),
        ("mio", "mio (load generator)"),
        ("context", "context"),
        ("libev", "libev (vendored)"),
        ("strace", "strace"),
    ] {
        let _ = writeln!(out, "| {label} | {} |", text(m, k));
    }
    if let Some(h) = m
        .get("http")
        .filter(|_| !d.http.is_empty() || !d.probes.is_empty())
    {
        for (k, label) in [
            ("wrk", "wrk"),
            ("hyper", "hyper"),
            ("may_minihttp", "may_minihttp"),
            ("may", "may"),
        ] {
            let _ = writeln!(out, "| {label} | {} |", text(h, k));
        }
    }
    let _ = writeln!(
        out,
        "| cores (nproc) | {} |",
        cell(int(m, "nproc"), |n| n.to_string())
    );
    let _ = writeln!(
        out,
        "| load average (1, 5, 15 min) at start / end¹ | {} / {} |",
        text(m, "loadavg_start"),
        text(&d.end, "loadavg_end")
    );
    out.push_str(
        "\n¹ Load averages count runnable threads, and decay over minutes: the thread \
         servers' thousands of threads (this run's or an earlier one's) inflate them.\n",
    );
    let scale = num(m, "scale").unwrap_or(1.0);
    if scale != 1.0 {
        let _ = writeln!(
            out,
            "\n**This run was scaled down: message counts and micro-benchmark iterations × {scale}.**"
        );
    }
    out.push('\n');

    out.push_str("## Headline: the goals\n\n");
    out.push_str("gevent-rs is this project's `echo_server` example; its peers are the C server on raw libev callbacks (same vendored libev) and tokio's current-thread runtime. Throughput ratios are gevent-rs ÷ peer.\n\n");
    if !d.http.is_empty() || !d.probes.is_empty() {
        out.push_str("The HTTP server's goals (the `http_server` example against may_minihttp, hyper and gevent.pywsgi) are in [HTTP goals](#http-goals).\n\n");
    }
    out.push_str("| goal | measured | verdict |\n|---|---|---|\n");
    for g in goals(d) {
        let _ = writeln!(out, "| {} | {} | {} |", g.goal, g.measured, g.verdict);
    }
    out.push('\n');
    if d.echo.iter().any(|e| text(e, "server") == MONKEY)
        || d.syscalls(MONKEY).is_some()
        || d.micro(MONKEY_MICRO, "gevent-monkey").is_some()
    {
        let _ = writeln!(
            out,
            "### gevent-monkey's targets\n\n\
             `{MONKEY}` is unmodified std echo code made cooperative by \
             `gevent_monkey::patch_all()` (see [its section](#gevent-monkey-unmodified-std-code-against-the-native-server)); \
             it is measured against `{NATIVE}`, the native `gevent::hub::net` server, in the \
             same run. Ratios are {MONKEY} ÷ {NATIVE}.\n"
        );
        out.push_str("| target | measured | verdict |\n|---|---|---|\n");
        for g in monkey_goals(d) {
            let _ = writeln!(out, "| {} | {} | {} |", g.goal, g.measured, g.verdict);
        }
        out.push('\n');
    }
    // The runs the tables show (one per scenario and server).
    let mut sat: Vec<String> = Vec::new();
    for sc in d.scenarios() {
        for (server, _) in SERVERS {
            if let Some(e) = d.echo(text(sc, "id"), server).filter(|e| saturated(e)) {
                let pct = cell(num(e, "loadgen_cpu_pct"), fmt::pct);
                sat.push(format!("{} {server} ({pct}%)", text(sc, "id")));
            }
        }
    }
    if d.echo.is_empty() {
    } else if sat.is_empty() {
        out.push_str("The load generator used less than 90% of its core in every run: it was not the bottleneck.\n\n");
    } else {
        let _ = writeln!(
            out,
            "The load generator used 90% or more of its core in: {}. On loopback the TCP stack \
             costs the sending side about as much as the receiving side, so a one-core client needs \
             about as much CPU per message as a fast one-core server: in those runs both cores were \
             (nearly) full, the throughput is that of the pair, and throughput ratios between the \
             fastest servers are compressed towards 1. Server CPU per message is the server's own \
             cost and is not affected.\n",
            sat.join(", ")
        );
    }
    if !d.failures.is_empty() {
        out.push_str("**Failed runs:**\n\n");
        for f in &d.failures {
            let _ = writeln!(out, "- {}: {}", text(f, "what"), text(f, "why"));
        }
        out.push('\n');
    }

    out.push_str("## Echo servers\n\n");
    out.push_str("| server | what |\n|---|---|\n");
    for (s, _) in SERVERS {
        let _ = writeln!(out, "| {s} | {} |", d.server_what(s));
    }
    let _ = writeln!(
        out,
        "\nEach client sends {}-byte messages, one at a time, and checks every echo byte for byte. \
         Server pinned to core 1, load generator to core 0. RTT: send to complete echo, per message. \
         Server CPU/msg: the server's user + system time over the timed phase (`/proc/PID/stat`) ÷ \
         messages; server CPU: that time ÷ wall time. Peak RSS/VSZ: `VmHWM`/`VmPeak` of a server process that ran this scenario only. \
         loadgen CPU: the load generator's CPU time ÷ wall time (\"sat.\": ≥ 90%, it may have been \
         the bottleneck).\n",
        cell(int(m, "msg_size"), |n| n.to_string())
    );
    // A run without echo scenarios (`--http-only`, say) has no tables to show here.
    let echo_failed = d.failures.iter().any(|f| text(f, "what").starts_with('S'));
    if d.echo.is_empty() && !echo_failed {
        out.push_str("Not measured in this run.\n\n");
    } else {
        for sc in d.scenarios() {
            scenario_table(d, sc, &mut out);
        }
    }
    monkey_section(d, &mut out);

    http::section(d, http_svgs, svg_rel, &mut out);

    out.push_str("## System calls per message\n\n");
    if d.syscalls.is_empty() {
        out.push_str("Not measured in this run.\n\n");
    } else {
        out.push_str("`strace -c -f -p PID` on the server over a short run (100 clients × 500 messages, plus one warm-up message each; accepts and closes included). strace slows the server down, so more readiness is reported per `epoll_wait` than at full speed: the read/write counts are exact, the `epoll_wait` count is a lower bound.\n\n| server | calls per message | calls (total) | messages | per message, by call |\n|---|---:|---:|---:|---|\n");
        for s in ["gevent-rs", "gevent-monkey", "c-libev"] {
            let Some(v) = d.syscalls(s) else { continue };
            let msgs = num(v, "messages").unwrap_or(1.0);
            let by: Vec<String> = v
                .get("by_name")
                .and_then(Value::as_object)
                .map(|o| {
                    let mut kv: Vec<(&String, u64)> = o
                        .iter()
                        .map(|(k, v)| (k, v.as_u64().unwrap_or(0)))
                        .collect();
                    kv.sort_by_key(|e| std::cmp::Reverse(e.1));
                    kv.into_iter()
                        .filter(|(_, c)| *c as f64 / msgs >= 0.005)
                        .map(|(k, c)| format!("{k} {}", fmt::ratio(c as f64 / msgs)))
                        .collect()
                })
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "| {s} | {} | {} | {} | {} |",
                cell(num(v, "per_msg"), fmt::ratio),
                cell(int(v, "total"), |n| n.to_string()),
                cell(int(v, "messages"), |n| n.to_string()),
                by.join(", ")
            );
        }
        out.push('\n');
    }

    out.push_str("## Micro-benchmarks\n\nBest of several runs after a warm-up, ns per operation, pinned to core 1.\n\n");
    micro_sections(d, &mut out);

    if !svgs.is_empty() {
        out.push_str("## Plots\n\n");
        for (file, title) in svgs {
            let _ = writeln!(out, "![{title}]({svg_rel}/{file})\n");
        }
    }

    out.push_str("## Method\n\n");
    out.push_str(
        "- One command: `bench/run` builds everything in release, installs Python gevent (from PyPI, with pip) into a private venv under `target/`, raises the open-file limit, and runs `suite`, then `report`.\n\
         - The load generator (`bench/src/bin/loadgen.rs`) is one thread on epoll (mio). It connects every client (at most 256 connects in flight), has every client exchange one untimed warm-up message (so every connection is accepted and its handler running), then times the exchange of all messages. Any mismatch, early EOF or socket error makes it exit non-zero and the run is reported as failed.\n\
         - S2-busy follows the slides' own source: `echo_simple.py` calls `stress()` (100 × `rec(100)`) in the *server*, before `sendall`. The Python servers run that function; the native servers all run the same recursion compiled once, in Rust (`gevent_bench::stress`, which the C server calls too), which is much cheaper (see the busy-loop row above). gevent-rs runs the `echo_server` example everywhere except S2-busy, where it runs `echo_hub`, the same handler with the busy loop.\n\
         - gevent-monkey runs `bench/src/bin/echo_monkey_std.rs`: `echo_threads`' std code (its `--busy` too) under `gevent_monkey::patch_all()`, with `gevent_hub::spawn` for `std::thread::spawn`. It is one of the native servers, run right after gevent-rs in every round; `micro_monkey` times the hooks' pass-through (`recv` with `MSG_DONTWAIT` on an empty socketpair, `EAGAIN`) on a thread that did not patch, against libc's `recv` found with `dlsym(RTLD_NEXT, ..)`, the rows interleaved.\n\
         - Every timed scenario runs the native servers (all but the Python ones) several times (`--repeat`, 3 by default), interleaved, each time with a fresh server: the tables show the median run by throughput, with the spread; the Python servers run once.\n\
         - S4-idle: RSS per connection = (server RSS with all 10,000 connections open, after one message each − RSS before the first connect) ÷ 10,000. Kernel socket buffers are not in RSS.\n\
         - Thread servers use their platform's default thread stacks (2 MiB Rust, 8 MiB Python via `ulimit -s`): their VSZ is mostly reserved, untouched stack.\n",
    );
    if !d.http.is_empty() || !d.probes.is_empty() {
        out.push_str(
            "- HTTP: `wrk` (Debian's package) runs `bench/wrk/http.lua`, which pipelines by sending 16 copies of the request per write (H2) and otherwise leaves wrk's own static request alone; its `done` hook prints wrk's totals unrounded (the figures `--latency` prints rounded), which the suite records. The conformance requests are written by the suite (`bench/src/bin/suite/http.rs`) byte for byte; each response is parsed by its `Content-Length` or chunked framing.\n",
        );
    }
    out
}

fn main() {
    let mut results = PathBuf::from("target/bench-results/results.jsonl");
    let mut out = PathBuf::from("docs/benchmarks.md");
    let mut svg_dir: Option<PathBuf> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let Some(v) = args.next() else {
            eprintln!("report: {a} needs a value");
            std::process::exit(2);
        };
        match a.as_str() {
            "--results" => results = PathBuf::from(v),
            "--out" => out = PathBuf::from(v),
            "--svg-dir" => svg_dir = Some(PathBuf::from(v)),
            _ => {
                eprintln!("usage: report [--results FILE] [--out FILE.md] [--svg-dir DIR]");
                std::process::exit(2);
            }
        }
    }
    let svg_dir = svg_dir.unwrap_or_else(|| out.with_extension(""));
    if let Err(e) = run(&results, &out, &svg_dir) {
        eprintln!("report: {e}");
        std::process::exit(1);
    }
}

fn run(results: &Path, out: &Path, svg_dir: &Path) -> io::Result<()> {
    let d = Data::load(results)?;
    let svgs = write_svgs(&d, svg_dir)?;
    let http_svgs = http::write_svgs(&d, svg_dir)?;
    // The plots are linked relative to the document.
    let rel = match (svg_dir.parent(), out.parent()) {
        (Some(a), Some(b)) if a == b => svg_dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        _ => svg_dir.display().to_string(),
    };
    std::fs::write(out, document(&d, &svgs, &http_svgs, &rel))?;
    println!(
        "report: wrote {} and {} plot(s) in {}",
        out.display(),
        svgs.len() + http_svgs.len(),
        svg_dir.display()
    );
    Ok(())
}
