//! The report's HTTP section: the `wrk` scenarios (H1-H3) with ratios against each
//! peer, the goals computed from the same run, the plots, and the conformance table.

use super::{
    cell, esc_md, int, median_clean_run, not_measured, num, paired_ratios, runs_of, scenario_panel,
    svg_panels, text, unmeasured_row, Axis, Data, Goal, Panel,
};
use gevent_bench::fmt;
use serde_json::Value;
use std::fmt::Write as _;
use std::io;
use std::path::Path;

/// The HTTP servers, in table order, with the colour of their bars.
const SERVERS: &[(&str, &str)] = &[
    ("gevent-rs", "#d62728"),
    ("may-minihttp", "#17becf"),
    ("hyper", "#2ca02c"),
    ("py-pywsgi", "#ff7f0e"),
];
const OURS: &str = "gevent-rs";
const RUST_PEERS: &[&str] = &["may-minihttp", "hyper"];
const PYTHON_PEER: &str = "py-pywsgi";

/// The scenarios where gevent-rs must be ahead of both Rust peers (requests/s and
/// server CPU per request), the pipelined one and its floor against may_minihttp,
/// and the floor against gevent.pywsgi (every scenario).
const AHEAD_SCENARIOS: &[&str] = &["H1", "H3"];
const PIPELINED: &str = "H2";
const PIPELINED_MIN_VS_MAY: f64 = 0.9;
const MIN_VS_PYWSGI: f64 = 20.0;

/// wrk CPU at or above this: wrk may have been the bottleneck.
const WRK_SATURATED_PCT: f64 = 90.0;
/// The rest of the machine's CPU at or above this (% of one core): a noisy run.
const BUSY_PCT: f64 = 20.0;

impl Data {
    fn http_scenarios(&self) -> Vec<&Value> {
        self.meta
            .get("http")
            .and_then(|h| h.get("scenarios"))
            .and_then(Value::as_array)
            .map(|a| a.iter().collect())
            .unwrap_or_default()
    }

    fn http_runs(&self, sc: &str, server: &str) -> Vec<&Value> {
        runs_of(&self.http, sc, server)
    }

    /// The run shown: the median by requests/s of the runs wrk counted no error in
    /// (the lower median of an even count); none if every run had errors.
    fn http_run(&self, sc: &str, server: &str) -> Option<&Value> {
        median_clean_run(&self.http_runs(sc, server), "rps")
    }

    fn http_value(&self, sc: &str, server: &str, key: &str) -> Option<f64> {
        self.http_run(sc, server).and_then(|e| num(e, key))
    }

    fn http_what(&self, server: &str) -> String {
        self.meta
            .get("http")
            .and_then(|h| h.get("servers"))
            .and_then(Value::as_array)
            .and_then(|a| a.iter().find(|s| text(s, "name") == server))
            .map(|s| text(s, "what").to_owned())
            .unwrap_or_default()
    }

    fn probe(&self, server: &str, id: &str) -> Option<&Value> {
        self.probes
            .iter()
            .find(|p| text(p, "server") == server && text(p, "probe") == id)
    }
}

fn pipelined(sc: &Value) -> bool {
    int(sc, "pipeline").unwrap_or(1) > 1
}

fn wrk_saturated(e: &Value) -> bool {
    num(e, "wrk_cpu_pct").is_some_and(|p| p >= WRK_SATURATED_PCT)
}

/// " (wrk ≥ 90% CPU with a and b)" for those of `servers` whose shown run in `sc`
/// had wrk near the end of its core, or nothing.
fn sat_note(d: &Data, sc: &str, servers: &[&str]) -> String {
    let with = |f: &dyn Fn(&Value) -> bool| -> Vec<&str> {
        servers
            .iter()
            .copied()
            .filter(|s| d.http_run(sc, s).is_some_and(f))
            .collect()
    };
    let sat = with(&wrk_saturated);
    let busy = with(&|e: &Value| num(e, "other_cpu_pct").is_some_and(|p| p >= BUSY_PCT));
    let mut note = String::new();
    if !sat.is_empty() {
        note = format!(
            " (wrk ≥ {}% CPU with {})",
            fmt::pct(WRK_SATURATED_PCT),
            sat.join(" and ")
        );
    }
    if !busy.is_empty() {
        let _ = write!(
            note,
            " (the rest of the machine used ≥ {}% of a core while {} ran)",
            fmt::pct(BUSY_PCT),
            busy.join(" and ")
        );
    }
    note
}

fn missing(goal: String) -> Goal {
    not_measured(goal, "no error-free run (failed, flagged or skipped)")
}

fn goals(d: &Data) -> Vec<Goal> {
    let mut g = Vec::new();
    let rps = |sc: &str, s: &str| d.http_value(sc, s, "rps");
    let cpu = |sc: &str, s: &str| d.http_value(sc, s, "server_cpu_s_per_100k");
    for sc in AHEAD_SCENARIOS {
        for peer in RUST_PEERS {
            let goal = format!("{sc} requests/s ahead of {peer}");
            g.push(match (rps(sc, OURS), rps(sc, peer)) {
                (Some(a), Some(b)) if b > 0.0 => Goal {
                    goal,
                    measured: format!(
                        "{} / {} req/s = {}×{}",
                        fmt::rate(a),
                        fmt::rate(b),
                        fmt::ratio(a / b),
                        sat_note(d, sc, &[OURS, peer])
                    ),
                    verdict: if a > b {
                        "met".to_owned()
                    } else {
                        format!("**missed**: {:.1}% behind", (b - a) / b * 100.0)
                    },
                },
                _ => missing(goal),
            });
        }
        for peer in RUST_PEERS {
            let goal = format!("{sc} server CPU per request below {peer}'s");
            g.push(match (cpu(sc, OURS), cpu(sc, peer)) {
                (Some(a), Some(b)) if b > 0.0 => Goal {
                    goal,
                    measured: format!(
                        "{} s vs {} s per 100k requests = {}×{}",
                        fmt::cpu100k(a),
                        fmt::cpu100k(b),
                        fmt::ratio(a / b),
                        sat_note(d, sc, &[OURS, peer])
                    ),
                    verdict: if a < b {
                        "met".to_owned()
                    } else {
                        format!("**missed**: {:.1}% more", (a - b) / b * 100.0)
                    },
                },
                _ => missing(goal),
            });
        }
    }
    {
        let peer = "may-minihttp";
        let goal = format!("{PIPELINED} requests/s ≥ {PIPELINED_MIN_VS_MAY:.1}× {peer}");
        g.push(ratio_goal(
            d,
            PIPELINED,
            peer,
            goal,
            PIPELINED_MIN_VS_MAY,
            rps(PIPELINED, OURS),
            rps(PIPELINED, peer),
        ));
    }
    for sc in d.http_scenarios() {
        let sc = text(sc, "id");
        let goal = format!("{sc} requests/s ≥ {MIN_VS_PYWSGI:.0}× {PYTHON_PEER}");
        g.push(ratio_goal(
            d,
            sc,
            PYTHON_PEER,
            goal,
            MIN_VS_PYWSGI,
            rps(sc, OURS),
            rps(sc, PYTHON_PEER),
        ));
    }
    for (limit, goal) in [
        (
            true,
            format!("{OURS}: every protective limit of the conformance table holds"),
        ),
        (
            false,
            format!("{OURS}: every route of the conformance table as specified"),
        ),
    ] {
        let ps: Vec<&Value> = d
            .probes
            .iter()
            .filter(|p| {
                text(p, "server") == OURS && p.get("limit").and_then(Value::as_bool) == Some(limit)
            })
            .collect();
        if ps.is_empty() {
            g.push(Goal {
                goal,
                measured: "not probed".to_owned(),
                verdict: "not measured".to_owned(),
            });
            continue;
        }
        let failed: Vec<String> = ps
            .iter()
            .filter(|p| p.get("pass").and_then(Value::as_bool) != Some(true))
            .map(|p| format!("{}: {}", text(p, "probe"), esc_md(text(p, "shown"))))
            .collect();
        g.push(Goal {
            goal,
            measured: format!("{} of {} as wanted", ps.len() - failed.len(), ps.len()),
            verdict: if failed.is_empty() {
                "met".to_owned()
            } else {
                format!("**missed**: {}", failed.join("; "))
            },
        });
    }
    g
}

fn ratio_goal(
    d: &Data,
    sc: &str,
    peer: &str,
    goal: String,
    want: f64,
    a: Option<f64>,
    b: Option<f64>,
) -> Goal {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Goal {
            goal,
            measured: format!(
                "{} / {} req/s = {}×{}",
                fmt::rate(a),
                fmt::rate(b),
                fmt::ratio(a / b),
                sat_note(d, sc, &[OURS, peer])
            ),
            verdict: if a / b >= want {
                "met".to_owned()
            } else {
                format!("**missed** by {:.1}%", (want - a / b) / want * 100.0)
            },
        },
        _ => missing(goal),
    }
}

fn scenario_table(d: &Data, sc: &Value, out: &mut String) {
    let id = text(sc, "id");
    let pipe = pipelined(sc);
    let _ = writeln!(out, "### {id}: {}\n", text(sc, "what"));
    out.push_str("| server | req/s | runs: min–max req/s |");
    for (peer, _) in SERVERS.iter().filter(|(s, _)| *s != OURS) {
        let _ = write!(out, " × {peer} |");
    }
    out.push_str(
        " p50 (µs) | p99 (µs) | server CPU per 100k req (s) | server CPU | wrk CPU | others' CPU | peak RSS (MiB) | errors |\n|---|---:|---:|",
    );
    for _ in SERVERS.iter().skip(1) {
        out.push_str("---:|");
    }
    out.push_str("---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for (server, _) in SERVERS {
        let runs = d.http_runs(id, server);
        if runs.is_empty() {
            unmeasured_row(out, d, id, server, !d.http.is_empty());
            continue;
        }
        let errors: u64 = runs.iter().filter_map(|e| int(e, "errors")).sum();
        let flagged = runs
            .iter()
            .filter(|e| int(e, "errors").unwrap_or(0) > 0)
            .count();
        let errors_cell = if flagged > 0 {
            format!("**{errors}** ({flagged} of {} runs flagged)", runs.len())
        } else {
            "0".to_owned()
        };
        let Some(e) = d.http_run(id, server) else {
            let _ = writeln!(
                out,
                "| {server} | every run had errors: no result | {} |{} – | – | – | – | – | – | – | {errors_cell} |",
                runs.len(),
                " – |".repeat(SERVERS.len() - 1),
            );
            continue;
        };
        let rate = num(e, "rps");
        let rates: Vec<f64> = runs.iter().filter_map(|e| num(e, "rps")).collect();
        let spread = if rates.len() > 1 {
            let lo = rates.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = rates.iter().copied().fold(0.0, f64::max);
            format!("{}: {}–{}", rates.len(), fmt::rate(lo), fmt::rate(hi))
        } else {
            "1".to_owned()
        };
        let _ = write!(out, "| {server} | {} | {spread} |", cell(rate, fmt::rate));
        for (peer, _) in SERVERS.iter().filter(|(s, _)| *s != OURS) {
            let r = match (rate, d.http_value(id, peer, "rps")) {
                (Some(a), Some(b)) if b > 0.0 && server != peer => fmt::ratio(a / b),
                _ => "–".to_owned(),
            };
            let _ = write!(out, " {r} |");
        }
        let (p50, p99) = if pipe {
            ("–²".to_owned(), "–²".to_owned())
        } else {
            (
                cell(num(e, "p50_us"), fmt::us),
                cell(num(e, "p99_us"), fmt::us),
            )
        };
        let wrk = cell(num(e, "wrk_cpu_pct"), |p| {
            format!(
                "{}%{}",
                fmt::pct(p),
                if wrk_saturated(e) { " (sat.)" } else { "" }
            )
        });
        let _ = writeln!(
            out,
            " {p50} | {p99} | {} | {} | {wrk} | {} | {} | {errors_cell} |",
            cell(num(e, "server_cpu_s_per_100k"), fmt::cpu100k),
            cell(num(e, "server_cpu_pct"), |p| format!("{}%", fmt::pct(p))),
            cell(num(e, "other_cpu_pct"), |p| format!("{}%", fmt::pct(p))),
            cell(int(e, "server_hwm_kib"), fmt::mib),
        );
    }
    out.push('\n');
    round_by_round(d, id, out);
    if pipe {
        let conns = int(&d.meta["http"], "connections").unwrap_or(200) as f64;
        let depth = int(sc, "pipeline").unwrap_or(1) as f64;
        let means: Vec<String> = SERVERS
            .iter()
            .filter_map(|(s, _)| {
                let r = d.http_value(id, s, "rps")?;
                Some(format!("{s} {} µs", fmt::us(conns * depth / r * 1e6)))
            })
            .collect();
        if !means.is_empty() {
            let _ = writeln!(
                out,
                "² wrk's latency percentiles are not usable with pipelining: it records one \
                 latency per batch of {depth} but corrects for coordinated omission as if it \
                 had one per response, and its percentiles come out shifted or as 0. The mean \
                 time from a batch's write to its last response, from Little's law \
                 ({conns} connections × {depth} requests ÷ req/s): {}.\n",
                means.join(", ")
            );
        }
    }
}

/// gevent-rs ÷ each Rust peer in every round of `sc` ([`paired_ratios`]).
fn round_by_round(d: &Data, sc: &str, out: &mut String) {
    let mut rows = Vec::new();
    for peer in RUST_PEERS {
        let [thr, cpu] = paired_ratios(
            &d.http_runs(sc, OURS),
            &d.http_runs(sc, peer),
            ["rps", "server_cpu_s_per_100k"],
        );
        if thr.len() > 1 {
            rows.push(format!(
                "| {peer} | {} | {} |",
                thr.join(", "),
                cpu.join(", ")
            ));
        }
    }
    if !rows.is_empty() {
        let _ = writeln!(
            out,
            "Round by round, {OURS} ÷ peer (each round runs every server once, one after the \
             other), for information:\n\n\
             | peer | req/s | server CPU per request |\n|---|---|---|\n{}\n",
            rows.join("\n")
        );
    }
}

fn conformance_table(d: &Data, out: &mut String) {
    if d.probes.is_empty() {
        return;
    }
    let servers: Vec<&str> = SERVERS
        .iter()
        .map(|(s, _)| *s)
        .filter(|s| d.probes.iter().any(|p| text(p, "server") == *s))
        .collect();
    out.push_str(
        "### Conformance: raw requests\n\n\
         Each request is sent on a new connection to a fresh server of each kind; the cell is \
         the status code and reason of every response that came back (within 3 s, and 300 ms \
         of quiet after the responses wanted), or how the connection ended without one \
         (`closed`: the server closed it; `reset`; `timeout`: open and silent). ✓: what a \
         careful server answers (the \"want\" column, exactly one response unless said); \
         ✗: anything else, with how the connection ended after an unwanted answer. The first rows are the protective limits; `route:` rows check \
         that every server serves the same routes.\n\n",
    );
    out.push_str("| request | want |");
    for s in &servers {
        let _ = write!(out, " {s} |");
    }
    out.push_str("\n|---|---|");
    for _ in &servers {
        out.push_str("---|");
    }
    out.push('\n');
    // The probes in the order the suite sent them.
    let mut ids: Vec<&str> = Vec::new();
    for p in &d.probes {
        let id = text(p, "probe");
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    for id in ids {
        let Some(first) = d.probes.iter().find(|p| text(p, "probe") == id) else {
            continue;
        };
        let _ = write!(out, "| {} | {} |", text(first, "what"), text(first, "want"));
        for s in &servers {
            let c = match d.probe(s, id) {
                Some(p) => {
                    let mark = if p.get("pass").and_then(Value::as_bool) == Some(true) {
                        "✓"
                    } else {
                        "✗"
                    };
                    let mut notes: Vec<String> = Vec::new();
                    let note = text(p, "note");
                    if !note.is_empty() && note != "?" {
                        notes.push(esc_md(note));
                    }
                    // How a connection that got an unwanted answer ended: closed after
                    // it, or kept open for whatever the client sends next.
                    let answered = p
                        .get("answers")
                        .and_then(Value::as_array)
                        .is_some_and(|a| !a.is_empty());
                    if mark == "✗" && answered {
                        notes.push(match text(p, "end") {
                            "open" => "kept open".to_owned(),
                            end => format!("then {end}"),
                        });
                    }
                    let note = if notes.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", notes.join("; "))
                    };
                    format!("{mark} {}{note}", esc_md(text(p, "shown")))
                }
                None => "–".to_owned(),
            };
            let _ = write!(out, " {c} |");
        }
        out.push('\n');
    }
    out.push('\n');
}

/// The section, with its plots (already written by [`write_svgs`]).
pub fn section(d: &Data, svgs: &[(String, String)], svg_rel: &str, out: &mut String) {
    if d.http.is_empty() && d.probes.is_empty() {
        return;
    }
    let h = &d.meta["http"];
    out.push_str("## HTTP\n\n");
    let _ = writeln!(
        out,
        "`wrk` ({}) with {} thread and {} connections, {} s per run, `--latency`, a 10 s request timeout (wrk's default of 2 s counts gevent.pywsgi's slowest answers as errors), against each \
         server pinned to core 1 (`taskset -c 1`), wrk to core 0. Every run starts a fresh \
         server. The Rust servers run {} times per scenario, interleaved; the table shows the \
         median run by requests/s among those wrk counted no error in, and the spread of all; \
         gevent.pywsgi runs once. Ratios are the row's requests/s ÷ the column's. Server CPU: \
         the server's user + system time (`/proc/PID/stat`) from just before wrk starts to \
         just after it exits, per 100,000 requests and as a share of the wall time; wrk CPU: \
         wrk's own (\"sat.\": ≥ {}%: wrk used nearly all of its core, so it may have been the \
         bottleneck and the server faster than measured). Others' CPU: what the rest of the \
         machine used meanwhile (every core's busy time in `/proc/stat` less the server's and \
         wrk's), as a share of one core: on a machine shared with other work, more than a few \
         percent means the run competed for the cores (before each run the suite waits, up \
         to 10 s and 60 s in all, for the rest of the machine to use less than 20% of a core). Peak RSS: the server's `VmHWM`. Errors: wrk's \
         connect, read, write, timeout and non-2xx/3xx counts over every run; a run with any \
         is flagged and never shown as a result.\n",
        text(h, "wrk").trim_start_matches("wrk "),
        cell(int(h, "wrk_threads"), |n| n.to_string()),
        cell(int(h, "connections"), |n| n.to_string()),
        cell(int(h, "duration_s"), |n| n.to_string()),
        cell(int(&d.meta, "repeat"), |n| n.to_string()),
        fmt::pct(WRK_SATURATED_PCT),
    );
    out.push_str("| server | what |\n|---|---|\n");
    for (s, _) in SERVERS {
        let _ = writeln!(out, "| {s} | {} |", d.http_what(s));
    }
    out.push_str(
        "\nWhat the peers cannot do as the example does: may_minihttp has no chunked \
         responses (`/stream` is one counted body), reads request bodies by \
         `Content-Length` only (a chunked `/echo` fails), and binds its listener itself, \
         without `TCP_NODELAY` (gevent-rs, hyper and pywsgi set it), but it writes all the \
         responses to one read in one write. Every listener has a backlog of 1024. Every server serialises `/json`'s body for each request, as the example does.\n\n",
    );
    out.push_str("### HTTP goals\n\n");
    let _ = writeln!(
        out,
        "From this run's figures: gevent-rs ahead of both Rust peers in requests/s and in \
         server CPU per request on {}; {PIPELINED} (pipelined) at least \
         {PIPELINED_MIN_VS_MAY:.1}× may_minihttp; at least {MIN_VS_PYWSGI:.0}× gevent.pywsgi \
         in every scenario; and every protective limit holding (the conformance table).\n",
        AHEAD_SCENARIOS.join(" and ")
    );
    out.push_str("| goal | measured | verdict |\n|---|---|---|\n");
    for g in goals(d) {
        let _ = writeln!(out, "| {} | {} | {} |", g.goal, g.measured, g.verdict);
    }
    out.push('\n');
    let flagged: Vec<&Value> = d
        .http
        .iter()
        .filter(|e| int(e, "errors").unwrap_or(0) > 0)
        .collect();
    if !flagged.is_empty() {
        out.push_str("**Runs flagged for errors (not shown as results):**\n\n");
        for e in flagged {
            let counts = e
                .get("error_counts")
                .and_then(Value::as_object)
                .map(|o| {
                    o.iter()
                        .filter(|(_, v)| v.as_u64().unwrap_or(0) > 0)
                        .map(|(k, v)| format!("{k} {v}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "- {} {} (run {}): {} req/s, errors: {counts}",
                text(e, "scenario"),
                text(e, "server"),
                cell(int(e, "run"), |n| n.to_string()),
                cell(num(e, "rps"), fmt::rate),
            );
        }
        out.push('\n');
    }
    for sc in d.http_scenarios() {
        let id = text(sc, "id");
        let failed = d
            .failures
            .iter()
            .any(|f| text(f, "what").starts_with(&format!("{id} ")));
        // Scenarios this run did not select (`--scenarios`) have no table.
        if failed || d.http.iter().any(|e| text(e, "scenario") == id) {
            scenario_table(d, sc, out);
        }
    }
    conformance_table(d, out);
    for (file, title) in svgs {
        let _ = writeln!(out, "![{title}]({svg_rel}/{file})\n");
    }
}

fn panels(
    d: &Data,
    pick: impl Fn(&Value) -> bool,
    value: impl Fn(&Value) -> Option<(f64, Option<f64>, String)>,
) -> Vec<Panel> {
    d.http_scenarios()
        .into_iter()
        .filter(|sc| pick(sc))
        .filter_map(|sc| {
            let id = text(sc, "id");
            scenario_panel(sc, SERVERS, |s| d.http_run(id, s), &value)
        })
        .collect()
}

/// Writes the HTTP plots into `dir`; returns (file, title) of each.
pub fn write_svgs(d: &Data, dir: &Path) -> io::Result<Vec<(String, String)>> {
    let mut made = Vec::new();
    let charts: Vec<(&str, &str, &str, Axis, Vec<Panel>)> = vec![
        (
            "http_throughput.svg",
            "HTTP requests per second",
            "wrk -t1 -c200, higher is better; each panel has its own scale",
            Axis::Linear,
            panels(
                d,
                |_| true,
                |e| {
                    let r = num(e, "rps")?;
                    Some((r, None, format!("{} req/s", fmt::rate(r))))
                },
            ),
        ),
        (
            "http_latency.svg",
            "HTTP latency",
            "p50 (solid) and p99 (light) in µs, lower is better; logarithmic; not pipelined",
            Axis::Log,
            panels(
                d,
                |sc| !pipelined(sc),
                |e| {
                    let (a, b) = (num(e, "p50_us")?, num(e, "p99_us")?);
                    Some((a, Some(b), format!("{} / {} µs", fmt::us(a), fmt::us(b))))
                },
            ),
        ),
        (
            "http_cpu.svg",
            "HTTP server CPU per request",
            "user + system seconds per 100,000 requests (/proc/PID/stat), lower is better",
            Axis::Linear,
            panels(
                d,
                |_| true,
                |e| {
                    let c = num(e, "server_cpu_s_per_100k")?;
                    Some((c, None, format!("{} s", fmt::cpu100k(c))))
                },
            ),
        ),
        (
            "http_memory.svg",
            "HTTP server peak RSS",
            "VmHWM in MiB, lower is better",
            Axis::Linear,
            panels(
                d,
                |_| true,
                |e| {
                    let k = int(e, "server_hwm_kib")?;
                    Some((k as f64, None, format!("{} MiB", fmt::mib(k))))
                },
            ),
        ),
    ];
    for (file, title, note, axis, panels) in charts {
        if panels.is_empty() {
            continue;
        }
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join(file), svg_panels(title, note, axis, &panels))?;
        made.push((file.to_owned(), title.to_owned()));
    }
    Ok(made)
}
