//! A `StreamServer` that runs out of file descriptors keeps running: `accept` failing
//! with `EMFILE` backs off instead of spinning, and the server serves again once fds
//! are free (libev's "special problem of accept()ing when you can't").
//!
//! Its own test binary: it lowers this process's fd limit and fills the fd table.

use gevent_hub::net::TcpStream;
use gevent_hub::server::StreamServer;
use gevent_hub::{sleep, with_timeout};
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

/// Generous: the server's back-off reaches up to a second before it retries.
const WATCHDOG: Duration = Duration::from_secs(30);
/// How long the server is left out of fds while its CPU use is measured: long enough
/// for its back-off (10 ms, doubling) to make the difference between idling and
/// spinning.
const STARVED: Duration = Duration::from_millis(300);

fn echo(sock: TcpStream, _peer: SocketAddr) {
    let mut buf = [0u8; 4096];
    while let Ok(n @ 1..) = (&sock).read(&mut buf) {
        if (&sock).write_all(&buf[..n]).is_err() {
            return;
        }
    }
}

fn round_trip(c: &TcpStream, msg: &[u8]) {
    let mut c = c;
    c.write_all(msg).unwrap();
    let mut back = vec![0u8; msg.len()];
    c.read_exact(&mut back).unwrap();
    assert_eq!(back, msg);
}

fn getrlimit() -> libc::rlimit {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
    lim
}

fn setrlimit(lim: &libc::rlimit) -> io::Result<()> {
    // SAFETY: setrlimit reads the struct we pass.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, lim) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Restores the fd limit when dropped, also when the test fails.
struct RestoreLimit(libc::rlimit);

impl Drop for RestoreLimit {
    fn drop(&mut self) {
        setrlimit(&self.0).expect("restore RLIMIT_NOFILE");
    }
}

/// Opens /dev/null: one more fd in use.
fn open_one() -> io::Result<OwnedFd> {
    std::fs::File::open("/dev/null").map(OwnedFd::from)
}

/// True when running under valgrind (its preload library is in LD_PRELOAD).
fn under_valgrind() -> bool {
    std::env::var("LD_PRELOAD").is_ok_and(|p| p.contains("vgpreload"))
}

/// User plus system CPU time this process has used so far.
fn cpu_time() -> Duration {
    // SAFETY: rusage is plain data; getrusage fills it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    assert_eq!(unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) }, 0);
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// Ends the process if the test has not finished after `limit`. The in-loop watchdog
/// ([`with_timeout`]) cannot fire if the server spins without ever switching to the
/// hub; this thread can.
struct HangGuard {
    /// Dropping it tells the thread the test finished.
    _finished: std::sync::mpsc::Sender<()>,
}

impl HangGuard {
    fn new(limit: Duration) -> HangGuard {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        std::thread::spawn(move || {
            // Disconnected (the guard was dropped) ends the wait early.
            if rx.recv_timeout(limit) == Err(std::sync::mpsc::RecvTimeoutError::Timeout) {
                eprintln!("the test hung for {limit:?}: the server spins without switching");
                std::process::exit(101);
            }
        });
        HangGuard { _finished: tx }
    }
}

#[test]
fn accept_out_of_fds_backs_off_without_spinning_and_serves_again_once_fds_are_free() {
    let _hang_guard = HangGuard::new(2 * WATCHDOG);
    let r = with_timeout(WATCHDOG, || {
        let server = StreamServer::new("127.0.0.1:0", echo).unwrap();
        server.start().unwrap();
        let addr = server.server_addr();
        // Served normally first (this also runs every path once before measuring).
        let before = TcpStream::connect(addr).unwrap();
        round_trip(&before, b"before");

        // Lower the limit a little above the fds in use, then take every free fd but
        // one, which the client socket below takes: the server cannot accept it.
        let orig = getrlimit();
        let restore = RestoreLimit(orig);
        let highest = std::fs::read_dir("/proc/self/fd")
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u64>().ok())
            .max()
            .unwrap();
        let low = libc::rlimit {
            rlim_cur: (highest + 32).min(orig.rlim_cur),
            rlim_max: orig.rlim_max,
        };
        setrlimit(&low).unwrap();
        let mut filler = Vec::new();
        let e = loop {
            match open_one() {
                Ok(fd) => filler.push(fd),
                Err(e) => break e,
            }
        };
        assert_eq!(e.raw_os_error(), Some(libc::EMFILE), "{e:?}");
        assert!(!filler.is_empty(), "some fds were free");
        filler.pop();
        let accepted = server.accepted_count();
        let client = TcpStream::connect(addr).unwrap();
        (&client).write_all(b"while starved").unwrap();
        assert_eq!(
            open_one().unwrap_err().raw_os_error(),
            Some(libc::EMFILE),
            "no fd is left for the server"
        );

        // The server's accept now fails with EMFILE for as long as this lasts.
        let (cpu0, t0) = (cpu_time(), Instant::now());
        sleep(STARVED);
        let (cpu, wall) = (cpu_time() - cpu0, t0.elapsed());
        assert_eq!(
            server.accepted_count(),
            accepted,
            "nothing could be accepted"
        );
        assert!(
            cpu < wall / 2,
            "the server spun while out of fds: {cpu:?} of CPU time in {wall:?} of wall time"
        );

        // Free the fds: the waiting connection is accepted and served, and so is a new one.
        drop(filler);
        drop(restore);
        let mut back = [0u8; 13];
        let served_the_waiting_one = match (&client).read_exact(&mut back) {
            Ok(()) => {
                assert_eq!(&back, b"while starved");
                true
            }
            // Valgrind emulates the fd limit: the kernel accepts the connection, then
            // valgrind closes the new fd and reports EMFILE, so that connection is reset.
            Err(e) if under_valgrind() && e.kind() == io::ErrorKind::ConnectionReset => false,
            Err(e) => panic!("the connection that waited was not served: {e:?}"),
        };
        round_trip(&TcpStream::connect(addr).unwrap(), b"after");
        assert_eq!(
            server.accepted_count(),
            accepted + 1 + u64::from(served_the_waiting_one)
        );
        drop((before, client));
        server.stop().unwrap();
    });
    r.unwrap_or_else(|e| panic!("watchdog: the test did not finish within {WATCHDOG:?}: {e}"));
}
