//! The `redis` crate's synchronous client, unmodified, against a real `redis-server`,
//! made cooperative by `gevent_monkey::patch_all()`: a greenlet parked in `BLPOP`
//! leaves the thread to the other greenlets, one of which pushes the value it waits
//! for.
//!
//! The redis crate knows nothing of gevent: it opens a `std::net::TcpStream` and reads
//! it with std's blocking calls. Patched, those calls park the calling greenlet; each
//! test shows that by ordering — a greenlet spawned after the one in `BLPOP` runs
//! while that `BLPOP` has not returned, and redis itself reports the blocked clients
//! (`INFO clients`) before anything is pushed. Unpatched, the first `BLPOP` blocks
//! the OS thread in `recv`: the greenlet that would push never runs, so the `BLPOP`
//! returns nil at its server-side timeout (`blpop_parks_until_another_greenlet_pushes`
//! fails its assertions) or never returns (`fifty_blpops_served_by_one_producer`
//! hangs and its watchdog fails it).
//!
//! Each test starts its own `redis-server` (the Debian package `redis-server`, which
//! `.ci/run` installs) on a free loopback port, without persistence, and kills it when
//! the test ends, however it ends.

mod common;

use gevent_hub::spawn;
use std::cell::Cell;
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::rc::Rc;
use std::time::Duration;

/// A port on 127.0.0.1 that was free a moment ago: bound with port 0, read, released.
fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local_addr").port()
}

/// A `redis-server` child process on a free loopback port. Dropping it kills the
/// process and waits for it, so it never outlives its test (a failed or hung test
/// included: the guard lives on libtest's thread, which unwinds).
struct RedisServer {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl RedisServer {
    /// How many times a connect is tried while the server starts.
    const CONNECT_ATTEMPTS: u32 = 500;
    /// How many fresh ports are tried if the server exits at once (another process
    /// took the port between `free_port` and the server's `bind`).
    const PORT_ATTEMPTS: u32 = 3;

    fn start() -> RedisServer {
        let mut failures = Vec::new();
        for _ in 0..Self::PORT_ATTEMPTS {
            match Self::try_start() {
                Ok(server) => return server,
                Err(why) => failures.push(why),
            }
        }
        panic!("redis-server did not start: {}", failures.join("; then: "));
    }

    fn try_start() -> Result<RedisServer, String> {
        let port = free_port();
        let log = std::env::temp_dir().join(format!(
            "gevent-monkey-redis-{}-{port}.log",
            std::process::id()
        ));
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .args(["--logfile", log.to_str().expect("temp dir is UTF-8")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run redis-server ({e}): install the Debian package \
                     redis-server (.ci/run does)"
                )
            });
        // From here the guard owns the child: every way out kills it.
        let mut server = RedisServer { child, port, log };
        for _ in 0..Self::CONNECT_ATTEMPTS {
            if let Some(status) = server.child.try_wait().expect("try_wait redis-server") {
                return Err(format!(
                    "redis-server on 127.0.0.1:{port} exited ({status}) before accepting \
                     connections; its log: {:?}",
                    server.log_text()
                ));
            }
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(server);
            }
            // Waiting for another process to start listening: nothing to wait on but
            // retries. This is libtest's thread, never patched, so it really sleeps.
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(format!(
            "redis-server on 127.0.0.1:{port} did not accept a connection after {} \
             attempts; its log: {:?}",
            Self::CONNECT_ATTEMPTS,
            server.log_text()
        ))
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

/// What redis says in `INFO clients`: how many clients are blocked (in `BLPOP`).
fn blocked_clients(con: &mut redis::Connection) -> usize {
    let info: String = redis::cmd("INFO")
        .arg("clients")
        .query(con)
        .expect("INFO clients");
    info.lines()
        .find_map(|l| l.strip_prefix("blocked_clients:"))
        .unwrap_or_else(|| panic!("no blocked_clients in INFO clients: {info:?}"))
        .trim()
        .parse()
        .expect("blocked_clients is a number")
}

/// Waits until redis reports `n` blocked clients. The state to wait for is another
/// process's, and redis gives no notification of it, so this polls, parking the
/// greenlet between polls (the other greenlets run meanwhile); bounded, with the last
/// count in the failure message.
fn wait_until_blocked(con: &mut redis::Connection, n: usize) {
    const POLLS: u32 = 2000;
    let mut last = 0;
    for _ in 0..POLLS {
        last = blocked_clients(con);
        if last == n {
            return;
        }
        gevent_hub::sleep(Duration::from_millis(5));
    }
    panic!("redis reports {last} blocked clients after {POLLS} polls, waiting for {n}");
}

/// Where greenlet A is, as greenlet B sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum AState {
    NotStarted,
    InBlpop,
    Returned,
}

/// Greenlet A does `BLPOP k 5` on one connection; greenlet B, spawned after A, runs
/// only once A has parked in it, sees A still in its `BLPOP` (and redis reporting one
/// blocked client), and does `LPUSH k v` on another connection; A receives `v`.
/// Unpatched, A's `BLPOP` blocks the thread for its 5 s and returns nil; only then
/// does B run, and it finds A returned.
#[test]
fn blpop_parks_until_another_greenlet_pushes() {
    let server = RedisServer::start();
    let url = server.url();
    common::patched(move || {
        let client = redis::Client::open(url.as_str()).expect("redis URL");
        let mut con_a = client.get_connection().expect("A's connection");
        let mut con_b = client.get_connection().expect("B's connection");
        let a_state = Rc::new(Cell::new(AState::NotStarted));

        let a = spawn({
            let a_state = a_state.clone();
            move || {
                a_state.set(AState::InBlpop);
                let got: Option<(String, String)> = redis::cmd("BLPOP")
                    .arg("k")
                    .arg(5)
                    .query(&mut con_a)
                    .expect("A's BLPOP");
                a_state.set(AState::Returned);
                got
            }
        });
        let b = spawn({
            let a_state = a_state.clone();
            move || {
                // B runs only when A has given up the thread, and A's only way to give
                // it up is to park: in its BLPOP, since it has not returned from it.
                let a_when_b_ran = a_state.get();
                if a_when_b_ran == AState::InBlpop {
                    wait_until_blocked(&mut con_b, 1);
                }
                let len: i64 = redis::cmd("LPUSH")
                    .arg("k")
                    .arg("v")
                    .query(&mut con_b)
                    .expect("B's LPUSH");
                (a_when_b_ran, len)
            }
        });

        let got = a.join().expect("greenlet A");
        let (a_when_b_ran, len) = b.join().expect("greenlet B");
        assert_eq!(
            a_when_b_ran,
            AState::InBlpop,
            "when B ran, A was not parked in its BLPOP: unpatched, the BLPOP blocks the \
             thread and B runs only after it returned"
        );
        assert_eq!(len, 1, "LPUSH made a list of one");
        assert_eq!(
            got,
            Some(("k".to_string(), "v".to_string())),
            "A's BLPOP returned B's value"
        );
        let left: i64 = redis::cmd("LLEN")
            .arg("k")
            .query(&mut client.get_connection().expect("a third connection"))
            .expect("LLEN");
        assert_eq!(left, 0, "A took the only value");
    });
    drop(server);
}

/// 50 greenlets, each on its own connection, do `BLPOP q 0` (no server-side
/// timeout); one producer greenlet waits until redis reports all 50 blocked, then
/// pushes 50 distinct values. Every consumer gets exactly one and every value is
/// delivered once. Unpatched, the first consumer's `BLPOP` blocks the thread for good
/// (the watchdog fails the test).
#[test]
fn fifty_blpops_served_by_one_producer() {
    const N: usize = 50;
    let server = RedisServer::start();
    let url = server.url();
    common::patched(move || {
        let client = redis::Client::open(url.as_str()).expect("redis URL");
        let returned = Rc::new(Cell::new(0usize));

        let consumers: Vec<_> = (0..N)
            .map(|i| {
                let client = client.clone();
                let returned = returned.clone();
                spawn(move || {
                    let mut con = client
                        .get_connection()
                        .unwrap_or_else(|e| panic!("consumer {i}: connect: {e}"));
                    let got: Option<(String, String)> = redis::cmd("BLPOP")
                        .arg("q")
                        .arg(0)
                        .query(&mut con)
                        .unwrap_or_else(|e| panic!("consumer {i}: BLPOP: {e}"));
                    returned.set(returned.get() + 1);
                    let (key, value) =
                        got.unwrap_or_else(|| panic!("consumer {i}: BLPOP q 0 returned nil"));
                    assert_eq!(key, "q", "consumer {i}: BLPOP's key");
                    value
                })
            })
            .collect();

        let producer = spawn({
            let client = client.clone();
            let returned = returned.clone();
            move || {
                let mut con = client.get_connection().expect("producer's connection");
                wait_until_blocked(&mut con, N);
                let returned_before_push = returned.get();
                for v in 0..N {
                    let _: i64 = redis::cmd("LPUSH")
                        .arg("q")
                        .arg(format!("v{v:02}"))
                        .query(&mut con)
                        .unwrap_or_else(|e| panic!("producer: LPUSH v{v:02}: {e}"));
                }
                returned_before_push
            }
        });

        let returned_before_push = producer.join().expect("producer");
        assert_eq!(
            returned_before_push, 0,
            "a consumer's BLPOP returned before anything was pushed"
        );
        let mut got: Vec<String> = consumers
            .into_iter()
            .enumerate()
            .map(|(i, c)| {
                c.join()
                    .unwrap_or_else(|e| panic!("consumer {i} failed: {e:?}"))
            })
            .collect();
        got.sort();
        let want: Vec<String> = (0..N).map(|v| format!("v{v:02}")).collect();
        assert_eq!(got, want, "each value delivered to exactly one consumer");
        let mut con = client.get_connection().expect("a last connection");
        let left: i64 = redis::cmd("LLEN").arg("q").query(&mut con).expect("LLEN");
        assert_eq!(left, 0, "nothing left in the list");
        assert_eq!(blocked_clients(&mut con), 0, "no client still blocked");
    });
    drop(server);
}
