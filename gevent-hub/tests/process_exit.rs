//! What a program meets when `main` returns (or a thread ends) with the hub still
//! holding work: parked greenlets, a queued kill, a stopped server's leftovers, a
//! queued callback, a pending watcher. Nothing queued may run during thread-local
//! teardown, nothing may panic, and the exit status is the program's.
//!
//! This binary has its own `main` (no libtest harness): each scenario runs in a child
//! process, this binary re-run with the scenario's name, and the parent checks the
//! child's exit status and that its output holds no panic message.

use gevent_hub::net::UnixStream;
use gevent_hub::server::StreamServer;
use gevent_hub::{get_hub, sleep, spawn, spawn_blocking, try_sleep, Event};
use std::io::Read;
use std::process::{Command, ExitCode};
use std::time::Duration;

const NEVER: Duration = Duration::from_secs(3600);

/// The smallest reproduction: a server started and stopped, then `main` returns.
fn server_stopped() {
    let server = StreamServer::new("127.0.0.1:0", |_, _| {}).unwrap();
    server.start().unwrap();
    sleep(Duration::ZERO);
    server.stop().unwrap();
}

/// A thread-pool task, then a kill queued for a parked greenlet, then `main` returns.
fn kill_queued_after_spawn_blocking() {
    let g = spawn(|| sleep(NEVER));
    sleep(Duration::ZERO);
    spawn_blocking(|| ()).join().unwrap();
    g.kill_nowait();
}

/// Greenlets parked on a timer, an event, a socket; unstarted ones; a queued user
/// callback and a pending raw watcher that would panic if they ran.
fn parked_everywhere() {
    let (a, b) = UnixStream::pair().unwrap();
    let _gs = (
        spawn(|| sleep(NEVER)),
        spawn(|| Event::new().wait_timeout(NEVER).unwrap()),
        spawn(move || {
            let _keep = b;
            let mut buf = [0u8; 8];
            let _ = (&a).read(&mut buf);
        }),
    );
    sleep(Duration::ZERO);
    let _unstarted = spawn(|| panic!("an unstarted greenlet ran at exit"));
    get_hub()
        .get_loop()
        .run_callback(|| panic!("a queued callback ran at exit"));
    let t = get_hub().get_loop().timer(Duration::ZERO, Duration::ZERO);
    t.start(|_, _| panic!("a timer callback ran at exit"))
        .unwrap();
    t.detach();
}

/// A greenlet that swallows its kill at exit and tries to wait again.
fn swallows_the_exit() {
    let _g = spawn(|| {
        let r = std::panic::catch_unwind(|| try_sleep(NEVER));
        assert!(r.is_err());
        // Waiting again at thread exit fails at once instead of hanging.
        assert!(try_sleep(NEVER).is_err());
    });
    sleep(Duration::ZERO);
}

const SCENARIOS: &[(&str, fn())] = &[
    ("server_stopped", server_stopped),
    (
        "kill_queued_after_spawn_blocking",
        kill_queued_after_spawn_blocking,
    ),
    ("parked_everywhere", parked_everywhere),
    ("swallows_the_exit", swallows_the_exit),
];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    if let [_, mode @ ("main" | "thread"), name] = words[..] {
        let Some((_, f)) = SCENARIOS.iter().find(|(n, _)| *n == name) else {
            eprintln!("unknown scenario {name}");
            return ExitCode::from(2);
        };
        if mode == "main" {
            f();
        } else {
            std::thread::spawn(f).join().expect("the thread ended");
        }
        return ExitCode::SUCCESS;
    }
    // Any other arguments are libtest's (filters, `--test-threads`, `-q`, `--list`):
    // this binary runs whole.
    if args.iter().any(|a| a == "--list") {
        return ExitCode::SUCCESS;
    }
    let exe = std::env::current_exe().expect("path of this binary");
    let mut failed = 0;
    for (name, _) in SCENARIOS {
        for mode in ["main", "thread"] {
            let out = Command::new(&exe)
                .args([mode, name])
                .output()
                .expect("run a scenario");
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            if out.status.success() && !text.contains("panicked") {
                println!("ok: {name} ({mode})");
            } else {
                failed += 1;
                println!("FAILED: {name} ({mode}): {}\n{text}", out.status);
            }
        }
    }
    if failed == 0 {
        println!("test result: ok. {} scenarios", 2 * SCENARIOS.len());
        ExitCode::SUCCESS
    } else {
        println!("test result: FAILED. {failed} scenarios failed");
        ExitCode::FAILURE
    }
}
