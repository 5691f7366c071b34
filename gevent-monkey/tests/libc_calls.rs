//! The patched libc calls as C code makes them: pipes, `poll` and `select` over many
//! fds, the sleeps, `MSG_DONTWAIT`, `getaddrinfo`, and what is never patched: a plain
//! std thread in the same process, the hub itself, a fork's child.

mod common;

use common::{on_thread, patched, pipe, put, take, tcp_pair};
use gevent_hub::{spawn, Event};
use std::cell::Cell;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::rc::Rc;
use std::time::Duration;

#[test]
fn a_pipe_read_parks_until_another_greenlet_writes() {
    let (r, data) = patched(|| {
        let (rd, wr) = pipe();
        let reader = spawn(move || take(&rd, 16));
        spawn(move || put(&wr, b"through a pipe"));
        reader.join().unwrap()
    });
    assert_eq!((r, &data[..]), (14, &b"through a pipe"[..]));
}

#[test]
fn poll_over_many_fds_parks_and_says_which_became_ready() {
    let (n, revents) = patched(|| {
        let pipes: Vec<_> = (0..10).map(|_| pipe()).collect();
        let mut fds: Vec<libc::pollfd> = pipes
            .iter()
            .map(|(r, _)| libc::pollfd {
                fd: r.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        let wr7 = pipes[7].1.try_clone().unwrap();
        spawn(move || put(&wr7, b"7"));
        // SAFETY: a valid array of pollfds we own.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) };
        let revents: Vec<_> = fds.iter().map(|p| p.revents).collect();
        (n, revents)
    });
    assert_eq!(n, 1);
    for (i, r) in revents.iter().enumerate() {
        assert_eq!(*r != 0, i == 7, "fd {i}: {r:#x}");
    }
}

#[test]
fn poll_with_a_timeout_returns_zero_and_lets_others_run() {
    let (n, ran) = patched(|| {
        let (rd, _wr) = pipe();
        let flag = Rc::new(Cell::new(false));
        let f = flag.clone();
        spawn(move || f.set(true));
        let mut p = libc::pollfd {
            fd: rd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one pollfd we own.
        let n = unsafe { libc::poll(&mut p, 1, 10) };
        (n, flag.get())
    });
    assert_eq!((n, ran), (0, true));
}

#[test]
fn select_parks_and_reports_the_ready_fd() {
    let (n, set_r, set_other) = patched(|| {
        let (r1, _w1) = pipe();
        let (r2, w2) = pipe();
        spawn(move || put(&w2, b"x"));
        // SAFETY: an fd_set we own, filled with FD_SET.
        let mut set: libc::fd_set = unsafe { std::mem::zeroed() };
        unsafe {
            libc::FD_ZERO(&mut set);
            libc::FD_SET(r1.as_raw_fd(), &mut set);
            libc::FD_SET(r2.as_raw_fd(), &mut set);
        }
        let nfds = r1.as_raw_fd().max(r2.as_raw_fd()) + 1;
        // SAFETY: valid sets and a null timeout (no limit).
        let n = unsafe {
            libc::select(
                nfds,
                &mut set,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            )
        };
        // SAFETY: reads a set we own.
        let (a, b) = unsafe {
            (
                libc::FD_ISSET(r2.as_raw_fd(), &set),
                libc::FD_ISSET(r1.as_raw_fd(), &set),
            )
        };
        (n, a, b)
    });
    assert_eq!((n, set_r, set_other), (1, true, false));
}

#[test]
fn the_libc_sleeps_park() {
    let ran = patched(|| {
        let count = Rc::new(Cell::new(0));
        let c = count.clone();
        // Advances once per hub turn while the sleeps below park.
        let ticker = spawn(move || loop {
            c.set(c.get() + 1);
            gevent_hub::sleep(Duration::ZERO);
        });
        let mut seen = Vec::new();
        let ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 1_000_000,
        };
        let before = count.get();
        // SAFETY: a valid timespec; no remainder wanted.
        assert_eq!(unsafe { libc::nanosleep(&ts, std::ptr::null_mut()) }, 0);
        seen.push(count.get() > before);
        let before = count.get();
        // SAFETY: as above.
        let r =
            unsafe { libc::clock_nanosleep(libc::CLOCK_MONOTONIC, 0, &ts, std::ptr::null_mut()) };
        assert_eq!(r, 0);
        seen.push(count.get() > before);
        let before = count.get();
        // SAFETY: usleep has no memory contract.
        assert_eq!(unsafe { libc::usleep(1000) }, 0);
        seen.push(count.get() > before);
        ticker.kill().unwrap();
        seen
    });
    assert_eq!(ran, [true, true, true], "the ticker ran during each sleep");
}

#[test]
fn a_bad_sleep_is_refused_as_libc_refuses_it() {
    let r = patched(|| {
        let ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 2_000_000_000,
        };
        // SAFETY: a timespec we own (invalid on purpose).
        let r = unsafe { libc::nanosleep(&ts, std::ptr::null_mut()) };
        (r, std::io::Error::last_os_error().raw_os_error())
    });
    assert_eq!(r, (-1, Some(libc::EINVAL)));
}

#[test]
fn msg_dontwait_is_honoured() {
    let r = patched(|| {
        let (a, _b) = tcp_pair();
        let mut buf = [0u8; 4];
        // SAFETY: reads into a buffer we own.
        let r = unsafe {
            libc::recv(
                a.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT,
            )
        };
        (r, std::io::Error::last_os_error().raw_os_error())
    });
    assert_eq!(r, (-1, Some(libc::EAGAIN)));
}

#[test]
fn msg_waitall_gathers_the_whole_buffer() {
    let got = patched(|| {
        let (a, b) = tcp_pair();
        spawn(move || {
            for part in [&b"ab"[..], b"cd", b"ef"] {
                (&b).write_all(part).unwrap();
                gevent_hub::sleep(Duration::ZERO);
            }
            b
        });
        let mut buf = [0u8; 6];
        // SAFETY: reads into a buffer we own.
        let r = unsafe {
            libc::recv(
                a.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_WAITALL,
            )
        };
        (r, buf)
    });
    assert_eq!(got, (6, *b"abcdef"));
}

#[test]
fn getaddrinfo_from_c_code_resolves_on_the_pool() {
    let (r, found, ran) = patched(|| {
        let flag = Rc::new(Cell::new(false));
        let f = flag.clone();
        let g = spawn(move || {
            let mut res: *mut libc::addrinfo = std::ptr::null_mut();
            // SAFETY: C strings we own, no hints, an out pointer we own.
            let r = unsafe {
                libc::getaddrinfo(
                    c"localhost".as_ptr(),
                    c"80".as_ptr(),
                    std::ptr::null(),
                    &mut res,
                )
            };
            let found = !res.is_null();
            if found {
                // SAFETY: a list getaddrinfo made, freed once.
                unsafe { libc::freeaddrinfo(res) };
            }
            (r, found, f.get())
        });
        let f = flag.clone();
        spawn(move || f.set(true));
        g.join().unwrap()
    });
    assert_eq!((r, found, ran), (0, true, true));
}

#[test]
fn a_plain_std_thread_in_the_same_process_is_untouched() {
    // A socket used cooperatively on a patched thread (so its file is non-blocking
    // underneath), then handed to a thread that never patched: there its reads block,
    // as std promises, instead of failing with WouldBlock.
    let (tx, rx) = std::sync::mpsc::channel::<std::net::TcpStream>();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<()>();
    let plain = std::thread::spawn(move || {
        let s = rx.recv().unwrap();
        ready_tx.send(()).unwrap();
        let mut buf = [0u8; 5];
        (&s).read_exact(&mut buf)
            .map(|()| buf)
            .map_err(|e| e.kind())
    });
    patched(move || {
        let (a, b) = tcp_pair();
        let w = spawn(move || (&b).write_all(b"1").map(|()| b));
        let mut one = [0u8; 1];
        (&a).read_exact(&mut one).unwrap();
        let b = w.join().unwrap().unwrap();
        tx.send(a).unwrap();
        ready_rx.recv().unwrap();
        // Written only once the plain thread is on its way to its read.
        (&b).write_all(b"hello").unwrap();
    });
    assert_eq!(plain.join().unwrap(), Ok(*b"hello"));
}

#[test]
fn an_unpatched_thread_sleeps_for_real() {
    // On a thread with a hub that did not patch, thread::sleep blocks the thread: a
    // greenlet spawned before it has not run when it returns.
    let ran = on_thread(|| {
        let flag = Rc::new(Cell::new(false));
        let f = flag.clone();
        let g = spawn(move || f.set(true));
        std::thread::sleep(Duration::from_millis(1));
        let ran = flag.get();
        g.join().unwrap();
        ran
    });
    assert!(!ran);
}

#[test]
fn the_hub_itself_is_never_parked() {
    // A hub callback's std sleep blocks the hub for its duration (the real call): the
    // callback runs to its end, nothing is switched in the middle of it.
    let order = patched(|| {
        let order = Rc::new(std::cell::RefCell::new(Vec::new()));
        let done = Rc::new(Event::new());
        let (o, d) = (order.clone(), done.clone());
        gevent_hub::get_hub().get_loop().run_callback(move || {
            o.borrow_mut().push("callback start");
            std::thread::sleep(Duration::from_millis(1));
            o.borrow_mut().push("callback end");
            d.set();
        });
        let o = order.clone();
        spawn(move || o.borrow_mut().push("greenlet"));
        done.wait().unwrap();
        let v = order.borrow().clone();
        v
    });
    let i = |s: &str| order.iter().position(|x| *x == s).unwrap();
    assert_eq!(i("callback end"), i("callback start") + 1, "{order:?}");
}

#[test]
fn dup2_onto_a_parked_fd_ends_the_wait_with_ebadf() {
    let r = patched(|| {
        let (rd, _wr) = pipe();
        let n = rd.as_raw_fd();
        let reader = spawn(move || {
            let r = take(&rd, 1).0;
            let e = std::io::Error::last_os_error().raw_os_error();
            // The number now names the other pipe: leave it to its new owner.
            std::mem::forget(rd);
            (r, e)
        });
        spawn(move || {
            let (other, _w) = pipe();
            // SAFETY: makes `n` name `other`'s pipe; the parked reader forgets `n`.
            assert_eq!(unsafe { libc::dup2(other.as_raw_fd(), n) }, n);
            // SAFETY: `n` is ours now.
            drop(unsafe { OwnedFd::from_raw_fd(n) });
        });
        reader.join().unwrap()
    });
    assert_eq!(r, (-1, Some(libc::EBADF)));
}

#[test]
fn getnameinfo_from_c_code_answers_on_the_pool() {
    let (r, host, ran) = patched(|| {
        let flag = Rc::new(Cell::new(false));
        let f = flag.clone();
        let g = spawn(move || {
            let addr = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: 80u16.to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_be_bytes([127, 0, 0, 1]).to_be(),
                },
                sin_zero: [0; 8],
            };
            let mut host = [0 as libc::c_char; 64];
            // SAFETY: a sockaddr_in we own, of its size; a host buffer of its size; no
            // service wanted.
            let r = unsafe {
                libc::getnameinfo(
                    (&addr as *const libc::sockaddr_in).cast(),
                    std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
                    host.as_mut_ptr(),
                    host.len() as libc::socklen_t,
                    std::ptr::null_mut(),
                    0,
                    libc::NI_NUMERICHOST,
                )
            };
            // SAFETY: getnameinfo wrote a NUL-terminated string on success.
            let host = unsafe { std::ffi::CStr::from_ptr(host.as_ptr()) }
                .to_string_lossy()
                .into_owned();
            (r, host, f.get())
        });
        let f = flag.clone();
        spawn(move || f.set(true));
        g.join().unwrap()
    });
    assert_eq!((r, host.as_str(), ran), (0, "127.0.0.1", true));
}

#[test]
fn a_number_reused_by_another_thread_is_waited_on_as_its_new_file() {
    use std::os::fd::IntoRawFd;
    let got = patched(|| {
        // Made on another thread, so that this one only ever waits to read `n`.
        let (a, b) = std::thread::spawn(tcp_pair).join().unwrap();
        let n = a.into_raw_fd();
        // A cooperative read on `n`: this thread's readiness core now has it armed.
        let w = spawn(move || (&b).write_all(b"1").map(|()| b));
        assert_eq!(take(&unsafe_fd(n), 1).1, b"1");
        // The peer stays open, so nothing more happens on the old file: its watcher
        // stays armed (lazy disarm), as after any exchange.
        let _old_peer = w.join().unwrap().unwrap();
        // Another thread makes `n` name a new socket (dup2 closes the old one).
        let (c, d) = std::thread::spawn(move || {
            let (c, d) = tcp_pair();
            // SAFETY: `n` is this test's; dup2 makes it name `c`'s socket.
            assert_eq!(unsafe { libc::dup2(c.as_raw_fd(), n) }, n);
            (c, d)
        })
        .join()
        .unwrap();
        drop(c);
        // Here, the same number: the wait must be on the new file, not the old one.
        let writer = spawn(move || (&d).write_all(b"2").map(|()| d));
        let got = take(&unsafe_fd(n), 1).1;
        drop(writer.join().unwrap().unwrap());
        // SAFETY: `n` is ours.
        drop(unsafe { OwnedFd::from_raw_fd(n) });
        got
    });
    assert_eq!(got, b"2");
}

/// A borrowed view of fd `n` that does not close it.
fn unsafe_fd(n: i32) -> std::mem::ManuallyDrop<OwnedFd> {
    // SAFETY: the caller keeps `n` open while the view is used, and the view never
    // closes it.
    std::mem::ManuallyDrop::new(unsafe { OwnedFd::from_raw_fd(n) })
}

/// O_NONBLOCK of `fd` as the kernel has it (not as the hooks' `F_GETFL` shows it).
fn kernel_nonblocking(fd: i32) -> bool {
    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}")).unwrap();
    let flags = info
        .lines()
        .find_map(|l| l.strip_prefix("flags:"))
        .map(|v| i32::from_str_radix(v.trim(), 8).unwrap())
        .unwrap();
    flags & libc::O_NONBLOCK != 0
}

#[test]
fn the_users_own_blocking_mode_reaches_the_kernel_where_the_hooks_need_nothing() {
    patched(|| {
        let mut fds = [0; 2];
        // SAFETY: pipe2 fills the array.
        assert_eq!(
            unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK) },
            0
        );
        // SAFETY: both fds are ours.
        let (rd, _wr) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        let fd = rd.as_raw_fd();
        // SAFETY: F_GETFL/F_SETFL on our fd.
        let fl = unsafe { libc::fcntl(fd, libc::F_GETFL) };
        assert_ne!(fl & libc::O_NONBLOCK, 0);
        // SAFETY: as above.
        assert_eq!(
            unsafe { libc::fcntl(fd, libc::F_SETFL, fl & !libc::O_NONBLOCK) },
            0
        );
        assert!(
            !kernel_nonblocking(fd),
            "the user's blocking mode is the file's"
        );
    });
}

#[test]
fn msg_waitall_on_a_datagram_socket_reads_one_datagram() {
    let got = patched(|| {
        let a = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        b.send_to(b"ab", a.local_addr().unwrap()).unwrap();
        b.send_to(b"cd", a.local_addr().unwrap()).unwrap();
        let mut buf = [0u8; 4];
        // SAFETY: reads into a buffer we own.
        let r = unsafe { libc::recv(a.as_raw_fd(), buf.as_mut_ptr().cast(), 4, libc::MSG_WAITALL) };
        (r, buf)
    });
    assert_eq!((got.0, &got.1[..2]), (2, &b"ab"[..]));
}

#[test]
fn a_close_wakes_every_greenlet_waiting_on_the_fd() {
    use std::os::fd::IntoRawFd;
    let results = patched(|| {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let n = l.into_raw_fd();
        let acceptors: Vec<_> = (0..2)
            .map(|_| {
                spawn(move || {
                    // SAFETY: accept on our listener; it may be closed meanwhile.
                    let r = unsafe { libc::accept(n, std::ptr::null_mut(), std::ptr::null_mut()) };
                    (r, std::io::Error::last_os_error().raw_os_error())
                })
            })
            .collect();
        spawn(move || {
            // SAFETY: the listener is ours; the acceptors only learn it is gone.
            unsafe { libc::close(n) };
        });
        acceptors
            .into_iter()
            .map(|a| a.join().unwrap())
            .collect::<Vec<_>>()
    });
    assert_eq!(results, [(-1, Some(libc::EBADF)), (-1, Some(libc::EBADF))]);
}

#[test]
fn poll_for_what_a_watcher_cannot_tell_apart_does_not_spin() {
    let (n, turns) = patched(|| {
        let (a, b) = tcp_pair();
        // Ordinary data is there, but the poll asks only for urgent data (POLLPRI):
        // the read watcher fires at once, and again, while poll says nothing.
        (&b).write_all(b"x").unwrap();
        let lp = gevent_hub::get_hub().get_loop().clone();
        let before = lp.iteration();
        let mut p = libc::pollfd {
            fd: a.as_raw_fd(),
            events: libc::POLLPRI,
            revents: 0,
        };
        // SAFETY: one pollfd we own.
        let n = unsafe { libc::poll(&mut p, 1, 30) };
        (n, lp.iteration() - before)
    });
    assert_eq!(n, 0);
    // Spinning, the loop turns once per wake-up: thousands in 30 ms.
    assert!(turns < 100, "{turns} loop iterations in one poll");
}

#[test]
fn the_childs_side_of_the_fork_hook_replaces_the_thread_pool_and_keeps_the_loop() {
    let (before, after, looked_up, ran) = patched(|| {
        use std::net::ToSocketAddrs;
        // A task first, so the pool has a worker. (Not a lookup: that worker is
        // orphaned below and never joined, and glibc's per-thread resolver state
        // would be left behind with it.)
        gevent_hub::spawn_blocking(|| ()).join().unwrap();
        let before = gevent_hub::threadpool::default_pool().threads();
        // What the fork hook does in a child (here without the fork: the old pool's
        // worker goes on existing, orphaned).
        gevent_hub::monkey_seam::after_fork_in_child();
        let after = gevent_hub::threadpool::default_pool().threads();
        let looked_up = ("localhost", 80).to_socket_addrs().is_ok();
        // The loop, told it forked, makes its backend anew and goes on.
        let ran = common::a_thread_sleep_lets_others_run();
        (before, after, looked_up, ran)
    });
    assert!(before >= 1, "the first task started a worker");
    assert_eq!(
        after, 0,
        "the pool after the fork is a new one, with no worker yet"
    );
    assert!(looked_up && ran);
}
