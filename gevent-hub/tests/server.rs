//! `StreamServer`, `DatagramServer` and `signal_handler`: a thousand concurrent
//! clients echoed byte for byte by one thread, a client that resets while its handler
//! writes, `stop(grace)` finishing some handlers and killing the rest, the pool bound,
//! a panicking handler, a UDP echo, and signal handlers that run in greenlets without
//! keeping the loop alive.
//!
//! `server_emfile.rs` (its own process: it lowers the fd limit) covers accept when out
//! of file descriptors.

mod util;

use util::{test_scale, with_watchdog, with_watchdog_for};

use gevent_hub::net::{TcpStream, UdpSocket};
use gevent_hub::server::{signal_handler, DatagramServer, ServerOptions, StreamServer};
use gevent_hub::{
    current_id, idle, joinall, sleep, spawn, try_sleep, AnyGreenlet, Error, Event, Greenlet,
    Semaphore,
};
use std::cell::{Cell, RefCell};
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

/// A lost wake-up fails the test after this long instead of hanging it.
const WATCHDOG: Duration = Duration::from_secs(10);
/// Far enough away that it never fires during a test.
const NEVER: Duration = Duration::from_secs(3600);

/// The slides' echo handler: recv up to 4096 bytes, sendall them back, until EOF.
fn echo(sock: TcpStream, _peer: SocketAddr) {
    let mut buf = [0u8; 4096];
    loop {
        match (&sock).read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if (&sock).write_all(&buf[..n]).is_err() {
                    return;
                }
            }
        }
    }
}

fn echo_server() -> StreamServer {
    let server = StreamServer::new("127.0.0.1:0", echo).expect("bind an echo server");
    server.start().expect("start the server");
    server
}

/// One connection, one message, its echo checked.
fn round_trip(addr: SocketAddr, msg: &[u8]) {
    let c = TcpStream::connect(addr).expect("connect to the server");
    (&c).write_all(msg).expect("send");
    let mut back = vec![0u8; msg.len()];
    (&c).read_exact(&mut back).expect("receive the echo");
    assert_eq!(back, msg);
}

fn refs<T>(gs: &[Greenlet<T>]) -> Vec<&dyn AnyGreenlet> {
    gs.iter().map(|g| g as &dyn AnyGreenlet).collect()
}

/// Message `msg` of client `client`: 1 to 1024 bytes, different in length and content
/// for every (client, message), so a reply routed to the wrong connection or a byte
/// out of place is caught.
fn payload(client: usize, msg: usize) -> Vec<u8> {
    let len = 1 + (client * 7919 + msg * 104_729) % 1024;
    (0..len)
        .map(|i| (client.wrapping_mul(31) ^ msg.wrapping_mul(131) ^ i.wrapping_mul(7)) as u8)
        .collect()
}

/// Makes sure this process may hold `n` file descriptors, or fails saying so.
fn ensure_fd_limit(n: u64) {
    let got = gevent_hub::server::raise_fd_limit(n).expect("raise RLIMIT_NOFILE");
    assert!(
        got >= n,
        "this test needs {n} file descriptors; the limit is {got}"
    );
}

#[test]
fn a_thousand_concurrent_clients_are_echoed_every_byte_by_one_thread() {
    const CLIENTS: usize = 1000;
    let messages = ((100.0 * test_scale()).round() as usize).max(1);
    // Two fds per connection (client and server side), plus the test harness's.
    ensure_fd_limit(2 * CLIENTS as u64 + 256);
    with_watchdog_for(Duration::from_secs(600), || {
        let server = echo_server();
        let addr = server.server_addr();
        // Every client connects before any sends: all 1,000 connections are open at once.
        let connected = Rc::new(Cell::new(0usize));
        let all_connected = Event::new();
        let clients: Vec<Greenlet<Result<usize, String>>> = (0..CLIENTS)
            .map(|c| {
                let (connected, all_connected) = (connected.clone(), all_connected.clone());
                spawn(move || {
                    let sock = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
                    connected.set(connected.get() + 1);
                    if connected.get() == CLIENTS {
                        all_connected.set();
                    }
                    all_connected.wait().map_err(|e| e.to_string())?;
                    let mut verified = 0;
                    let mut back = Vec::new();
                    for m in 0..messages {
                        let msg = payload(c, m);
                        (&sock)
                            .write_all(&msg)
                            .map_err(|e| format!("client {c} message {m}: send: {e}"))?;
                        back.resize(msg.len(), 0);
                        (&sock)
                            .read_exact(&mut back)
                            .map_err(|e| format!("client {c} message {m}: recv: {e}"))?;
                        if back != msg {
                            return Err(format!("client {c} message {m}: echo differs"));
                        }
                        verified += msg.len();
                    }
                    Ok(verified)
                })
            })
            .collect();
        assert!(joinall(&refs(&clients), None, false).unwrap());
        assert_eq!(connected.get(), CLIENTS);
        let expected: usize = (0..CLIENTS)
            .flat_map(|c| (0..messages).map(move |m| payload(c, m).len()))
            .sum();
        let mut verified = 0;
        for g in clients {
            verified += g.join().expect("a client greenlet ended normally")?;
        }
        assert_eq!(verified, expected, "every byte sent came back");
        assert_eq!(server.accepted_count(), CLIENTS as u64);
        // The clients closed their sockets: every handler sees EOF and returns.
        server.stop().unwrap();
        assert_eq!(server.connection_count(), 0);
        Ok::<(), String>(())
    })
    .unwrap();
}

#[test]
fn a_client_resetting_mid_write_fails_its_handler_and_the_server_serves_others() {
    with_watchdog(|| {
        let failed_with: Rc<RefCell<Option<io::Error>>> = Rc::default();
        let handler_failed = Event::new();
        let (f, done) = (failed_with.clone(), handler_failed.clone());
        // 'B': blast data until the write fails; anything else: echo.
        let server = StreamServer::new("127.0.0.1:0", move |sock, peer| {
            let mut cmd = [0u8; 1];
            if (&sock).read_exact(&mut cmd).is_err() {
                return;
            }
            if cmd[0] != b'B' {
                (&sock).write_all(&cmd).ok();
                return echo(sock, peer);
            }
            let chunk = [0x5a_u8; 64 * 1024];
            loop {
                if let Err(e) = (&sock).write_all(&chunk) {
                    *f.borrow_mut() = Some(e);
                    done.set();
                    return;
                }
            }
        })
        .unwrap();
        server.start().unwrap();
        let addr = server.server_addr();

        let c = TcpStream::connect(addr).unwrap();
        (&c).write_all(b"B").unwrap();
        // The handler is writing once its first bytes arrive.
        let mut first = [0u8; 1];
        (&c).read_exact(&mut first).unwrap();
        assert_eq!(first, [0x5a]);
        // SO_LINGER 0 then close: the kernel sends RST instead of FIN.
        socket2::SockRef::from(&c)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
        drop(c);

        handler_failed.wait().unwrap();
        let e = failed_with.borrow_mut().take().unwrap();
        assert!(
            matches!(
                e.kind(),
                io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
            ),
            "the handler's write failed with {e:?}"
        );
        // The server goes on: a new client gets its echo.
        round_trip(addr, b"Eafter the reset");
        server.stop_timeout(WATCHDOG).unwrap();
    });
}

#[test]
fn stop_lets_handlers_finish_within_grace_and_kills_the_rest() {
    const QUICK: usize = 3;
    const SLOW: usize = 3;
    with_watchdog(|| {
        let in_request = Rc::new(Cell::new(0usize));
        let all_in_request = Event::new();
        let finish_quick = Event::new();
        let completed = Rc::new(Cell::new(0usize));
        let slow_returned = Rc::new(Cell::new(0usize));
        let slow_dropped = Rc::new(Cell::new(0usize));

        struct BumpOnDrop(Rc<Cell<usize>>);
        impl Drop for BumpOnDrop {
            fn drop(&mut self) {
                self.0.set(self.0.get() + 1);
            }
        }

        let (ir, all, go, done, sr, sd) = (
            in_request.clone(),
            all_in_request.clone(),
            finish_quick.clone(),
            completed.clone(),
            slow_returned.clone(),
            slow_dropped.clone(),
        );
        let server = StreamServer::new("127.0.0.1:0", move |sock, _| {
            let mut req = [0u8; 1];
            (&sock).read_exact(&mut req).unwrap();
            ir.set(ir.get() + 1);
            if ir.get() == QUICK + SLOW {
                all.set();
            }
            if req[0] == b'q' {
                // Finishes as soon as stop has begun: well within the grace period.
                go.wait().unwrap();
                (&sock).write_all(b"done").unwrap();
                done.set(done.get() + 1);
            } else {
                let _guard = BumpOnDrop(sd.clone());
                sleep(NEVER);
                sr.set(sr.get() + 1);
            }
        })
        .unwrap();
        server.start().unwrap();
        let addr = server.server_addr();

        let clients: Vec<(u8, TcpStream)> = (0..QUICK + SLOW)
            .map(|i| {
                let kind = if i < QUICK { b'q' } else { b's' };
                let c = TcpStream::connect(addr).unwrap();
                (&c).write_all(&[kind]).unwrap();
                (kind, c)
            })
            .collect();
        // Every handler is mid-request.
        all_in_request.wait().unwrap();
        assert_eq!(server.connection_count(), QUICK + SLOW);

        finish_quick.set();
        server.stop_timeout(Duration::from_millis(200)).unwrap();

        assert_eq!(completed.get(), QUICK, "the quick handlers completed");
        assert_eq!(slow_returned.get(), 0, "no slow handler returned normally");
        assert_eq!(
            slow_dropped.get(),
            SLOW,
            "the slow handlers' destructors ran"
        );
        assert_eq!(server.connection_count(), 0);
        for (kind, c) in clients {
            let mut got = Vec::new();
            (&c).read_to_end(&mut got).unwrap();
            if kind == b'q' {
                assert_eq!(got, b"done");
            } else {
                // The killed handler's stream was dropped while unwinding: EOF.
                assert_eq!(got, b"");
            }
        }
        // The listener is closed: nobody accepts any more.
        let e = TcpStream::connect(addr).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused);
    });
}

#[test]
fn stop_without_grace_waits_for_every_handler() {
    with_watchdog(|| {
        let started = Rc::new(Cell::new(0usize));
        let all_started = Event::new();
        let finished = Rc::new(Cell::new(0usize));
        let (s, all, f) = (started.clone(), all_started.clone(), finished.clone());
        let server = StreamServer::new("127.0.0.1:0", move |sock, _| {
            let mut req = [0u8; 1];
            (&sock).read_exact(&mut req).unwrap();
            s.set(s.get() + 1);
            if s.get() == 3 {
                all.set();
            }
            // Takes a while, cooperatively.
            sleep(Duration::from_millis(20));
            f.set(f.get() + 1);
        })
        .unwrap();
        server.start().unwrap();
        let clients: Vec<TcpStream> = (0..3)
            .map(|_| {
                let c = TcpStream::connect(server.server_addr()).unwrap();
                (&c).write_all(b"x").unwrap();
                c
            })
            .collect();
        all_started.wait().unwrap();
        assert_eq!(server.connection_count(), clients.len());
        server.stop().unwrap();
        assert_eq!(finished.get(), 3);
    });
}

#[test]
fn max_connections_pauses_accepting_while_the_pool_is_full() {
    with_watchdog(|| {
        let release = Event::new();
        let handled = Rc::new(Cell::new(0usize));
        let first_handled = Event::new();
        let (r, h, fh) = (release.clone(), handled.clone(), first_handled.clone());
        let opts = ServerOptions {
            max_connections: Some(1),
            ..ServerOptions::default()
        };
        let server = StreamServer::with_options("127.0.0.1:0", opts, move |sock, _| {
            h.set(h.get() + 1);
            fh.set();
            r.wait().unwrap();
            (&sock).write_all(b"ok").unwrap();
        })
        .unwrap();
        server.start().unwrap();
        let addr = server.server_addr();

        let first = TcpStream::connect(addr).unwrap();
        first_handled.wait().unwrap();
        // The kernel completes the second handshake, but the server does not accept it
        // while the first handler runs.
        let second = TcpStream::connect(addr).unwrap();
        idle().unwrap();
        assert_eq!(server.accepted_count(), 1);
        assert_eq!(handled.get(), 1);

        release.set();
        for mut c in [&first, &second] {
            let mut got = Vec::new();
            c.read_to_end(&mut got).unwrap();
            assert_eq!(got, b"ok");
        }
        assert_eq!(server.accepted_count(), 2);
        server.stop().unwrap();
        assert!(matches!(
            StreamServer::with_options(
                "127.0.0.1:0",
                ServerOptions {
                    max_connections: Some(0),
                    ..ServerOptions::default()
                },
                echo
            ),
            Err(e) if e.kind() == io::ErrorKind::InvalidInput
        ));
    });
}

#[test]
fn a_panicking_handler_does_not_stop_the_server() {
    with_watchdog(|| {
        let server = StreamServer::new("127.0.0.1:0", |sock, peer| {
            let mut cmd = [0u8; 1];
            (&sock).read_exact(&mut cmd).unwrap();
            if cmd[0] == b'P' {
                panic!("this handler panics on purpose");
            }
            (&sock).write_all(&cmd).unwrap();
            echo(sock, peer);
        })
        .unwrap();
        server.start().unwrap();
        let addr = server.server_addr();
        let c = TcpStream::connect(addr).unwrap();
        (&c).write_all(b"P").unwrap();
        let mut got = Vec::new();
        // The panicking handler's stream is dropped as it unwinds.
        (&c).read_to_end(&mut got).unwrap();
        assert_eq!(got, b"");
        round_trip(addr, b"still serving");
        server.stop_timeout(WATCHDOG).unwrap();
    });
}

#[test]
fn serve_forever_returns_when_stop_is_called_from_a_greenlet() {
    with_watchdog(|| {
        let server = StreamServer::new("127.0.0.1:0", echo).unwrap();
        let s2 = server.clone();
        let client = spawn(move || {
            round_trip(s2.server_addr(), b"one round trip, then stop");
            s2.stop().unwrap();
        });
        server.serve_forever().unwrap();
        client.join().unwrap();
        assert_eq!(server.accepted_count(), 1);
        // Stopped servers do not restart.
        let e = server.start().unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    });
}

#[test]
fn datagram_server_echoes_each_datagram() {
    with_watchdog(|| {
        let server = DatagramServer::new("127.0.0.1:0", |data, peer, sock: &UdpSocket| {
            sock.send_to(&data, peer).unwrap();
        })
        .unwrap();
        server.start().unwrap();
        let addr = server.server_addr().unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut buf = [0u8; 2048];
        for i in 0..20usize {
            let msg: Vec<u8> = (0..=i * 50).map(|b| (b * 3 + i) as u8).collect();
            client.send_to(&msg, addr).unwrap();
            let (n, from) = client.recv_from(&mut buf).unwrap();
            assert_eq!(from, addr);
            assert_eq!(&buf[..n], &msg[..]);
        }
        let report = server.stop().unwrap();
        assert_eq!(report.killed, 0);
        assert!(report.resisted.is_empty());
        // Stopped: serve_forever returns at once.
        server.serve_forever().unwrap();
    });
}

/// `DatagramServer::stop` deals with running handlers as `StreamServer::stop` does: a
/// handler that ends within the grace period is counted as finished, one still running
/// after it is killed, and neither is left running.
#[test]
fn datagram_server_stop_joins_then_kills_its_running_handlers() {
    with_watchdog(|| {
        let release = Event::new();
        // Each handler releases a permit when it starts: main takes two.
        let started = Semaphore::new(0);
        let (r, s) = (release.clone(), started.clone());
        let server = DatagramServer::new("127.0.0.1:0", move |data, _, _: &UdpSocket| {
            s.release();
            if data == b"quick" {
                r.wait().unwrap();
            } else {
                sleep(Duration::from_secs(3600));
            }
        })
        .unwrap();
        server.start().unwrap();
        let addr = server.server_addr().unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        client.send_to(b"quick", addr).unwrap();
        client.send_to(b"stuck", addr).unwrap();
        started.acquire().unwrap();
        started.acquire().unwrap();
        assert_eq!(server.handler_count(), 2);
        // The quick one ends as soon as the stop waits (on the hub's next turn, well
        // within the default 1 s grace); the stuck one never does.
        let r = release.clone();
        let _releaser = spawn(move || r.set());
        let report = server.stop().unwrap();
        assert_eq!((report.finished, report.killed), (1, 1), "{report:?}");
        assert!(report.resisted.is_empty());
        assert_eq!(server.handler_count(), 0);
        server.serve_forever().unwrap();
    });
}

#[test]
fn signal_handler_runs_its_function_in_a_greenlet_without_keeping_the_loop_alive() {
    let ran = Event::new();
    let ran_in: Rc<Cell<Option<u64>>> = Rc::default();
    let could_block = Rc::new(Cell::new(false));
    let (r, id, cb) = (ran.clone(), ran_in.clone(), could_block.clone());
    let handler = signal_handler(libc::SIGUSR1, move || {
        id.set(Some(current_id()));
        // A greenlet may block; the hub itself may not.
        cb.set(try_sleep(Duration::ZERO).is_ok());
        r.set();
    })
    .unwrap();

    // Nothing else is pending: the handler alone does not keep the loop running, so a
    // wait nobody can end is reported instead of hanging. The watchdog here must not
    // keep the loop alive either (an unreferenced timer): if the handler wrongly did,
    // the watchdog ends the wait successfully after a while and the assert fails.
    let never_set = Event::new();
    let watchdog = gevent_hub::get_hub()
        .get_loop()
        .timer(WATCHDOG, Duration::ZERO);
    let ns = never_set.clone();
    watchdog.start(move |_, _| ns.set()).unwrap();
    watchdog.set_ref(false);
    let r = never_set.wait();
    assert!(
        matches!(r, Err(Error::WouldBlockForever(_))),
        "a wait with only a signal handler left is reported: {r:?}"
    );
    drop(watchdog);
    assert!(!ran.is_set());

    with_watchdog(|| {
        // SAFETY: raise sends the signal to this thread, whose loop watches it.
        assert_eq!(unsafe { libc::raise(libc::SIGUSR1) }, 0);
        ran.wait().unwrap();
        let in_greenlet = ran_in.get().unwrap();
        assert_ne!(in_greenlet, current_id(), "not in the test's greenlet");
        assert!(
            could_block.get(),
            "the function ran in a greenlet, not in the hub"
        );

        // Each delivery runs it again.
        ran.clear();
        // SAFETY: as above.
        assert_eq!(unsafe { libc::raise(libc::SIGUSR1) }, 0);
        ran.wait().unwrap();
        assert_ne!(
            ran_in.get().unwrap(),
            in_greenlet,
            "a new greenlet each time"
        );
    });
    drop(handler);
}

#[test]
fn stop_called_from_a_handler_stops_the_server_and_closes_the_other_connections() {
    with_watchdog(|| {
        let slot: Rc<RefCell<Option<StreamServer>>> = Rc::default();
        let idle_in = Rc::new(Cell::new(0usize));
        let idle_ready = Event::new();
        let after_stop = Rc::new(Cell::new(false));
        let after_next_block = Rc::new(Cell::new(false));
        let (s, n, ready, a, b) = (
            slot.clone(),
            idle_in.clone(),
            idle_ready.clone(),
            after_stop.clone(),
            after_next_block.clone(),
        );
        let server = StreamServer::new("127.0.0.1:0", move |sock, _| {
            let mut req = [0u8; 1];
            (&sock).read_exact(&mut req).unwrap();
            if req[0] == b'i' {
                n.set(n.get() + 1);
                if n.get() == 2 {
                    ready.set();
                }
                sleep(NEVER);
                return;
            }
            let server = s.borrow().clone().expect("the server is in the slot");
            let report = server.stop_timeout(Duration::ZERO).unwrap();
            assert!(report.resisted.is_empty(), "{report:?}");
            a.set(true);
            (&sock).write_all(b"bye").unwrap();
            // Its own kill was scheduled: it dies at this blocking point.
            let _ = (&sock).read(&mut req);
            b.set(true);
        })
        .unwrap();
        *slot.borrow_mut() = Some(server.clone());
        let addr = server.server_addr();
        let runner = {
            let server = server.clone();
            spawn(move || server.serve_forever())
        };
        let idle_clients: Vec<TcpStream> = (0..2)
            .map(|_| {
                let c = TcpStream::connect(addr).unwrap();
                (&c).write_all(b"i").unwrap();
                c
            })
            .collect();
        idle_ready.wait().unwrap();
        let stopper = TcpStream::connect(addr).unwrap();
        (&stopper).write_all(b"s").unwrap();

        runner.join().unwrap().unwrap();
        for c in idle_clients {
            let mut got = Vec::new();
            (&c).read_to_end(&mut got).unwrap();
            assert_eq!(got, b"", "the idle handlers were killed: EOF");
        }
        let mut got = Vec::new();
        (&stopper).read_to_end(&mut got).unwrap();
        assert_eq!(got, b"bye", "the stopping handler went on after stop");
        assert!(after_stop.get());
        assert!(
            !after_next_block.get(),
            "then died at its next blocking point"
        );
        idle().unwrap();
        assert_eq!(server.connection_count(), 0);
        slot.borrow_mut().take();
    });
}

#[test]
fn stop_returns_and_names_a_handler_that_swallows_the_kill() {
    with_watchdog(|| {
        let in_request = Event::new();
        let release = Event::new();
        let swallowed = Rc::new(Cell::new(0usize));
        let (ir, rel, sw) = (in_request.clone(), release.clone(), swallowed.clone());
        let opts = ServerOptions {
            kill_timeout: Duration::from_millis(20),
            ..ServerOptions::default()
        };
        let server = StreamServer::with_options("127.0.0.1:0", opts, move |sock, _| {
            let mut req = [0u8; 1];
            (&sock).read_exact(&mut req).unwrap();
            ir.set();
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| try_sleep(NEVER)));
            assert!(r.is_err(), "only a kill ends that sleep");
            sw.set(sw.get() + 1);
            // Blocks again, as if the kill had not happened.
            rel.wait().unwrap();
        })
        .unwrap();
        server.start().unwrap();
        let c = TcpStream::connect(server.server_addr()).unwrap();
        let local = c.local_addr().unwrap();
        (&c).write_all(b"x").unwrap();
        in_request.wait().unwrap();

        let report = server.stop_timeout(Duration::ZERO).unwrap();
        assert_eq!(swallowed.get(), 1, "it was killed once and swallowed it");
        assert_eq!(report.resisted.len(), 1, "{report:?}");
        assert_eq!(report.resisted[0].peer, local, "{report:?}");
        assert!(!report.resisted[0].greenlet_name.is_empty());

        release.set();
        idle().unwrap();
        assert_eq!(server.connection_count(), 0);
    });
}

/// Reads until EOF.
fn read_all(mut c: &TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    c.read_to_end(&mut got).unwrap();
    got
}

#[test]
fn stop_accepting_leaves_clients_in_the_backlog_until_start_accepting() {
    with_watchdog(|| {
        let server = echo_server();
        let addr = server.server_addr();
        round_trip(addr, b"before");
        server.stop_accepting();
        assert!(!server.is_accepting() && server.started() && !server.closed());
        // The listener stays open: the kernel completes these handshakes.
        let waiting: Vec<_> = (0..3).map(|_| TcpStream::connect(addr).unwrap()).collect();
        idle().unwrap();
        assert_eq!(server.accepted_count(), 1, "nothing accepted while paused");
        server.start_accepting().unwrap();
        for (i, c) in waiting.iter().enumerate() {
            let msg = format!("queued {i}");
            (&*c).write_all(msg.as_bytes()).unwrap();
            let mut back = vec![0u8; msg.len()];
            (&*c).read_exact(&mut back).unwrap();
            assert_eq!(back, msg.as_bytes());
        }
        assert_eq!(server.accepted_count(), 4);
        // Pausing and resuming without letting the hub run in between loses nothing.
        for _ in 0..3 {
            server.stop_accepting();
            server.start_accepting().unwrap();
        }
        round_trip(addr, b"after");
        assert_eq!(server.accepted_count(), 5);
        server.stop().unwrap();
        assert!(
            server.start_accepting().is_err(),
            "a stopped server stays stopped"
        );
    });
}

#[test]
fn close_refuses_new_clients_and_leaves_running_handlers_alone() {
    with_watchdog(|| {
        let gate = Event::new();
        let entered = Event::new();
        let (g2, e2) = (gate.clone(), entered.clone());
        let server = StreamServer::new("127.0.0.1:0", move |sock, _| {
            e2.set();
            g2.wait().unwrap();
            (&sock).write_all(b"bye").unwrap();
        })
        .unwrap();
        let s2 = server.clone();
        let forever = spawn(move || s2.serve_forever());
        sleep(Duration::ZERO); // let serve_forever start the server
        assert!(server.started());
        let addr = server.server_addr();
        let client = TcpStream::connect(addr).unwrap();
        entered.wait().unwrap();
        server.close();
        assert!(server.closed() && !server.started() && !server.is_accepting());
        forever.join().unwrap().unwrap();
        let refused = TcpStream::connect(addr).unwrap_err();
        assert_eq!(refused.kind(), io::ErrorKind::ConnectionRefused);
        assert_eq!(server.connection_count(), 1, "the handler still runs");
        gate.set();
        assert_eq!(read_all(&client), b"bye");
        server.close(); // twice: nothing happens
        assert!(server.start().is_err());
        let report = server.stop().unwrap();
        assert!(report.resisted.is_empty());
    });
}

/// A started server spawning its handlers in `pool`: each counts itself in `handled`
/// (setting `two_in` as the second), waits for `gate`, then answers "ok".
fn pool_server(
    pool: &gevent_hub::pool::Pool,
    gate: &Event,
    handled: &Rc<Cell<usize>>,
    two_in: &Event,
) -> StreamServer {
    let (g, h, t) = (gate.clone(), handled.clone(), two_in.clone());
    let server = StreamServer::with_spawn(
        "127.0.0.1:0",
        ServerOptions::default(),
        gevent_hub::server::Spawn::Pool(pool.clone()),
        move |sock, _| {
            h.set(h.get() + 1);
            if h.get() == 2 {
                t.set();
            }
            g.wait().unwrap();
            let _ = (&sock).write_all(b"ok");
        },
    )
    .unwrap();
    server.start().unwrap();
    server
}

#[test]
fn servers_sharing_a_pool_handle_at_most_its_size_together() {
    use gevent_hub::pool::Pool;
    use gevent_hub::server::Spawn;
    with_watchdog(|| {
        let pool = Pool::new(2);
        let gate = Event::new();
        let handled = Rc::new(Cell::new(0usize));
        let two_in = Event::new();
        let make = || pool_server(&pool, &gate, &handled, &two_in);
        let (a, b) = (make(), make());
        let c1 = TcpStream::connect(a.server_addr()).unwrap();
        let c2 = TcpStream::connect(b.server_addr()).unwrap();
        two_in.wait().unwrap();
        assert!(pool.full());
        // The pool is full: neither server accepts, whichever the client chose.
        let c3 = TcpStream::connect(a.server_addr()).unwrap();
        let c4 = TcpStream::connect(b.server_addr()).unwrap();
        idle().unwrap();
        assert_eq!((a.accepted_count(), b.accepted_count()), (1, 1));
        assert_eq!(handled.get(), 2);
        gate.set();
        for c in [&c1, &c2, &c3, &c4] {
            assert_eq!(read_all(c), b"ok");
        }
        assert_eq!((a.accepted_count(), b.accepted_count()), (2, 2));
        assert_eq!(handled.get(), 4);
        a.stop().unwrap();
        b.stop().unwrap();
        // A shared pool is the bound: max_connections beside it is refused.
        let both = StreamServer::with_spawn(
            "127.0.0.1:0",
            ServerOptions {
                max_connections: Some(3),
                ..ServerOptions::default()
            },
            Spawn::Pool(pool.clone()),
            echo,
        );
        assert!(matches!(both, Err(e) if e.kind() == io::ErrorKind::InvalidInput));
    });
}

/// Two servers share a pool of one, both parked until a client comes, and a client
/// reaches each at once: the first to wake takes the slot, and the other sees the pool
/// full again and leaves its client in the backlog (gevent's second look at the pool)
/// instead of accepting a connection it has no slot for.
#[test]
fn a_server_woken_for_a_client_leaves_it_in_the_backlog_if_a_shared_pool_filled() {
    use gevent_hub::pool::Pool;
    with_watchdog(|| {
        let pool = Pool::new(1);
        let gate = Event::new();
        let handled = Rc::new(Cell::new(0usize));
        let two_in = Event::new();
        let make = || pool_server(&pool, &gate, &handled, &two_in);
        let (a, b) = (make(), make());
        // Both acceptors park, waiting for a client.
        idle().unwrap();
        assert_eq!((a.accepted_count(), b.accepted_count()), (0, 0));
        // std's connect does not switch: both clients are in the backlogs before
        // either acceptor runs again.
        let _c1 = std::net::TcpStream::connect(a.server_addr()).unwrap();
        let _c2 = std::net::TcpStream::connect(b.server_addr()).unwrap();
        idle().unwrap();
        assert!(pool.full());
        assert_eq!(
            a.accepted_count() + b.accepted_count(),
            1,
            "only the server that took the slot accepted"
        );
        assert_eq!(handled.get(), 1);
        gate.set();
        two_in.wait().unwrap();
        assert_eq!((a.accepted_count(), b.accepted_count()), (1, 1));
        a.stop().unwrap();
        b.stop().unwrap();
    });
}

#[test]
fn a_custom_spawn_function_starts_each_handler() {
    use gevent_hub::server::Spawn;
    with_watchdog(|| {
        let spawned = Rc::new(Cell::new(0usize));
        let s2 = spawned.clone();
        let spawn_fn = Spawn::with(move |body| {
            s2.set(s2.get() + 1);
            if s2.get() == 2 {
                // Refused: that connection is closed, the server goes on.
                return Err(Error::TimedOut);
            }
            gevent_hub::Builder::new()
                .name(format!("conn-{}", s2.get()))
                .spawn(body)
                .map(Rc::new)
        });
        let server = StreamServer::with_spawn(
            "127.0.0.1:0",
            ServerOptions::default(),
            spawn_fn,
            |sock, _| {
                (&sock)
                    .write_all(gevent_hub::current_name().as_bytes())
                    .unwrap();
            },
        )
        .unwrap();
        server.start().unwrap();
        let addr = server.server_addr();
        assert_eq!(read_all(&TcpStream::connect(addr).unwrap()), b"conn-1");
        assert_eq!(read_all(&TcpStream::connect(addr).unwrap()), b"");
        assert_eq!(read_all(&TcpStream::connect(addr).unwrap()), b"conn-3");
        assert_eq!(spawned.get(), 3);
        server.stop().unwrap();
    });
}
