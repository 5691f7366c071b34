//! std's own types, unchanged, made cooperative by `patch_all()`: `std::net` sockets,
//! `thread::sleep`, `to_socket_addrs`, read timeouts, `connect_timeout`, shutdown, the
//! user's non-blocking mode. Each test shows concurrency by ordering: something
//! another greenlet did while this one was in a std call. Unpatched, the std call
//! blocks the thread, the other greenlet never runs first, and the test fails (or its
//! watchdog fires).

mod common;

use common::{patched, tcp_pair};
use gevent_hub::{spawn, Event};
use std::cell::{Cell, RefCell};
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream, ToSocketAddrs};
use std::rc::Rc;
use std::time::Duration;

/// The slides' threaded echo server with std's code unchanged and `gevent_hub::spawn`
/// for `thread::spawn`: 500 concurrent std clients × 100 messages, every byte checked,
/// all on one OS thread. Every client connects before any sends (they wait on one
/// event), so all 500 connections are open at once.
#[test]
fn the_std_echo_server_serves_500_clients_on_one_thread() {
    const CLIENTS: usize = 500;
    let messages = common::scaled(100);
    patched(move || {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let me = std::thread::current().id();
        let handler_threads = Rc::new(RefCell::new(Vec::new()));
        let ht = handler_threads.clone();
        let server = spawn(move || {
            for _ in 0..CLIENTS {
                let (mut conn, _) = listener.accept().unwrap();
                let ht = ht.clone();
                spawn(move || {
                    ht.borrow_mut().push(std::thread::current().id());
                    let mut buf = [0u8; 1024];
                    loop {
                        match conn.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => {
                                if conn.write_all(&buf[..n]).is_err() {
                                    break;
                                }
                            }
                        }
                    }
                });
            }
        });
        let all_connected = Rc::new(Event::new());
        let connected = Rc::new(Cell::new(0usize));
        let clients: Vec<_> = (0..CLIENTS)
            .map(|i| {
                let (go, n) = (all_connected.clone(), connected.clone());
                spawn(move || {
                    let mut c = TcpStream::connect(addr).unwrap();
                    n.set(n.get() + 1);
                    if n.get() == CLIENTS {
                        go.set();
                    }
                    go.wait().unwrap();
                    let mut sent = Vec::new();
                    let mut got = Vec::new();
                    for m in 0..messages {
                        let msg = format!("client {i} message {m}\n");
                        c.write_all(msg.as_bytes()).unwrap();
                        let mut back = vec![0u8; msg.len()];
                        c.read_exact(&mut back).unwrap();
                        sent.extend_from_slice(msg.as_bytes());
                        got.extend_from_slice(&back);
                    }
                    assert_eq!(got, sent, "client {i}: every byte comes back in order");
                    got.len()
                })
            })
            .collect();
        let mut total = 0;
        for c in clients {
            total += c.join().unwrap();
        }
        server.join().unwrap();
        assert!(total > CLIENTS * messages * 10);
        let ht = handler_threads.borrow();
        assert_eq!(ht.len(), CLIENTS);
        assert!(ht.iter().all(|t| *t == me), "one OS thread served them all");
    });
}

#[test]
fn thread_sleep_lets_the_other_greenlets_run() {
    let saw = patched(common::a_thread_sleep_lets_others_run);
    assert!(
        saw,
        "the greenlet spawned after the sleeper ran during its sleep"
    );
}

#[test]
fn to_socket_addrs_resolves_on_the_thread_pool_while_others_run() {
    let (addrs, ran) = patched(|| {
        let flag = Rc::new(Cell::new(false));
        let f = flag.clone();
        let lookup = spawn(move || {
            let a: Vec<_> = ("localhost", 8080).to_socket_addrs().unwrap().collect();
            (a, f.get())
        });
        let f = flag.clone();
        spawn(move || f.set(true));
        lookup.join().unwrap()
    });
    assert!(
        ran,
        "another greenlet ran while the name was being resolved"
    );
    assert!(!addrs.is_empty() && addrs.iter().all(|a| a.port() == 8080));
    assert!(addrs.iter().any(|a| a.ip().is_loopback()), "{addrs:?}");
}

#[test]
fn a_read_parks_until_another_greenlet_writes() {
    patched(|| {
        let (mut a, b) = tcp_pair();
        let order = Rc::new(RefCell::new(Vec::new()));
        let o = order.clone();
        let reader = spawn(move || {
            let mut buf = [0u8; 5];
            a.read_exact(&mut buf).unwrap();
            o.borrow_mut().push("read");
            buf
        });
        let o = order.clone();
        spawn(move || {
            o.borrow_mut().push("write");
            (&b).write_all(b"hello").unwrap();
            b
        });
        assert_eq!(&reader.join().unwrap(), b"hello");
        assert_eq!(*order.borrow(), ["write", "read"]);
    });
}

#[test]
fn a_read_timeout_ends_the_wait_with_would_block_and_others_run_meanwhile() {
    let (kind, ran) = patched(|| {
        let (mut a, _b) = tcp_pair();
        a.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
        let flag = Rc::new(Cell::new(false));
        let f = flag.clone();
        let reader = spawn(move || {
            let r = a.read(&mut [0u8; 8]);
            (r.map_err(|e| e.kind()), f.get())
        });
        let f = flag.clone();
        spawn(move || f.set(true));
        let (r, ran) = reader.join().unwrap();
        (r.err(), ran)
    });
    // What std says for a blocking socket whose SO_RCVTIMEO passed (EAGAIN).
    assert_eq!(kind, Some(ErrorKind::WouldBlock));
    assert!(ran);
}

#[test]
fn a_write_timeout_ends_a_write_to_a_peer_that_never_reads() {
    let r = patched(|| {
        let (a, _b) = tcp_pair();
        a.set_write_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        let chunk = vec![7u8; 1 << 16];
        // The peer never reads: the buffers fill, then the write times out.
        loop {
            if let Err(e) = (&a).write(&chunk) {
                break e.kind();
            }
        }
    });
    assert_eq!(r, ErrorKind::WouldBlock);
}

#[test]
fn connect_timeout_connects_and_leaves_the_stream_blocking() {
    patched(|| {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let acceptor = spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            s.write_all(b"x").unwrap();
            s
        });
        let mut c = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
        let mut b = [0u8; 1];
        // Blocking in the user's view: this read parks until the acceptor writes.
        c.read_exact(&mut b).unwrap();
        assert_eq!(&b, b"x");
        acceptor.join().unwrap();
        // SAFETY: F_GETFL only reads the flags of an open fd.
        let fl = unsafe { libc::fcntl(std::os::fd::AsRawFd::as_raw_fd(&c), libc::F_GETFL) };
        assert_eq!(fl & libc::O_NONBLOCK, 0, "the user's view is blocking");
        // And to a port nobody listens on: refused, as std says.
        let closed = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let e = TcpStream::connect_timeout(&closed, Duration::from_secs(5)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ConnectionRefused);
    });
}

#[test]
fn a_shutdown_ends_a_read_parked_on_the_same_socket() {
    let r = patched(|| {
        let (a, _b) = tcp_pair();
        let a2 = a.try_clone().unwrap();
        let reader = spawn(move || (&a).read(&mut [0u8; 8]).map_err(|e| e.kind()));
        spawn(move || a2.shutdown(Shutdown::Read).unwrap());
        reader.join().unwrap()
    });
    assert_eq!(r, Ok(0), "the parked read sees end of stream");
}

#[test]
fn a_socket_the_user_made_non_blocking_still_says_would_block() {
    patched(|| {
        let (a, _b) = tcp_pair();
        a.set_nonblocking(true).unwrap();
        let e = (&a).read(&mut [0u8; 8]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::WouldBlock);
        // SAFETY: F_GETFL only reads the flags of an open fd.
        let fl = unsafe { libc::fcntl(std::os::fd::AsRawFd::as_raw_fd(&a), libc::F_GETFL) };
        assert_ne!(fl & libc::O_NONBLOCK, 0, "the user's own flag is shown");
        // Back to blocking: a read parks again (and the flag is hidden again).
        a.set_nonblocking(false).unwrap();
        // SAFETY: as above.
        let fl = unsafe { libc::fcntl(std::os::fd::AsRawFd::as_raw_fd(&a), libc::F_GETFL) };
        assert_eq!(fl & libc::O_NONBLOCK, 0);
    });
}

#[test]
fn the_hooks_flag_stays_out_of_the_users_view() {
    patched(|| {
        let (a, b) = tcp_pair();
        let w = spawn(move || (&b).write_all(b"z").map(|()| b));
        // This read parks, so the hooks make the file non-blocking underneath.
        let mut x = [0u8; 1];
        (&a).read_exact(&mut x).unwrap();
        w.join().unwrap().unwrap();
        let fd = std::os::fd::AsRawFd::as_raw_fd(&a);
        // SAFETY: F_GETFL only reads the flags of an open fd.
        let fl = unsafe { libc::fcntl(fd, libc::F_GETFL) };
        assert_eq!(fl & libc::O_NONBLOCK, 0, "F_GETFL shows what the user set");
    });
}

#[test]
fn a_close_by_another_greenlet_ends_a_parked_read_with_ebadf() {
    let r = patched(|| {
        let (a, _b) = tcp_pair();
        let fd = std::os::fd::IntoRawFd::into_raw_fd(a);
        let reader = spawn(move || {
            let mut b = [0u8; 1];
            // SAFETY: reads into a buffer we own; the fd may be closed meanwhile.
            let r = unsafe { libc::read(fd, b.as_mut_ptr().cast(), 1) };
            (r, std::io::Error::last_os_error().raw_os_error())
        });
        spawn(move || {
            // SAFETY: the fd is this test's; nobody uses it after the reader wakes.
            unsafe { libc::close(fd) };
        });
        reader.join().unwrap()
    });
    assert_eq!(r, (-1, Some(libc::EBADF)));
}

#[test]
fn two_greenlets_accepting_on_one_listener_both_get_a_connection() {
    patched(|| {
        let l = Rc::new(TcpListener::bind("127.0.0.1:0").unwrap());
        let addr = l.local_addr().unwrap();
        let acceptors: Vec<_> = (0..2)
            .map(|_| {
                let l = l.clone();
                spawn(move || l.accept().map(|(s, _)| s).unwrap())
            })
            .collect();
        let clients: Vec<_> = (0..2)
            .map(|_| spawn(move || TcpStream::connect(addr).unwrap()))
            .collect();
        for a in acceptors {
            a.join().unwrap();
        }
        for c in clients {
            c.join().unwrap();
        }
    });
}
