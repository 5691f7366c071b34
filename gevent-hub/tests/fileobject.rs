//! FileObjectThread: a read that blocks in the pool while the hub runs others (a
//! FIFO fed only after a ticker advanced), the std surface on a regular file (std's
//! contract for `read_to_end` on an error included), and what a Timeout does to a call
//! already handed to the pool (it finishes first; its error is reported by the next).

mod util;

use gevent_hub::fileobject::FileObjectThread;
use gevent_hub::{spawn, with_timeout, Error, Event};
use std::cell::RefCell;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use util::{in_hub, on_thread, with_watchdog, Counter, Log};

/// A fresh path in the temp dir, removed when dropped.
struct TempPath(PathBuf);

impl TempPath {
    fn new(what: &str) -> TempPath {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        TempPath(std::env::temp_dir().join(format!(
            "gevent-fileobject-{}-{what}-{n}",
            std::process::id()
        )))
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn mkfifo(what: &str) -> TempPath {
    let p = TempPath::new(what);
    let c = std::ffi::CString::new(p.0.as_os_str().as_bytes()).unwrap();
    // SAFETY: mkfifo reads the NUL-terminated path it is given.
    let r = unsafe { libc::mkfifo(c.as_ptr(), 0o600) };
    assert_eq!(r, 0, "mkfifo: {}", io::Error::last_os_error());
    p
}

#[test]
fn a_fifo_read_blocks_in_the_pool_while_a_ticker_runs() {
    // On a thread of its own: a read that blocked the thread (not the pool) would
    // hang the hub, and with it any watchdog running in the hub.
    on_thread(|| {
        let fifo = mkfifo("fifo");
        let log = Log::new();
        let ticks = Counter::new();
        let ticked = Event::new();
        let (l, t, e) = (log.clone(), ticks.clone(), ticked.clone());
        let ticker = spawn(move || {
            for _ in 0..3 {
                t.bump();
                gevent_hub::sleep(Duration::ZERO);
            }
            l.push("ticked");
            e.set();
        });
        let (l, e, path) = (log.clone(), ticked.clone(), fifo.0.clone());
        // Feeds the FIFO only once the ticker has advanced, which it can only do while
        // the reader below is parked.
        let writer = spawn(move || {
            e.wait().unwrap();
            let mut w = FileObjectThread::open_with(OpenOptions::new().write(true), &path).unwrap();
            l.push("writing");
            w.write_all(b"through the pool").unwrap();
        });
        log.push("reading");
        // Opening a FIFO for reading waits for a writer, and then the read for data:
        // both in the pool.
        let mut r = FileObjectThread::open(&fifo.0).unwrap();
        let mut got = String::new();
        r.read_to_string(&mut got).unwrap();
        log.push("read");
        assert_eq!(got, "through the pool");
        assert_eq!(ticks.get(), 3);
        assert_eq!(log.entries(), ["reading", "ticked", "writing", "read"]);
        ticker.join().unwrap();
        writer.join().unwrap();
    });
}

#[test]
fn read_write_and_seek_behave_as_a_file() {
    with_watchdog(|| {
        let path = TempPath::new("rw");
        let mut f = FileObjectThread::open_with(
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true),
            &path.0,
        )
        .unwrap();
        f.write_all(b"one\ntwo\nthree\n").unwrap();
        assert_eq!(f.write(b"four\n").unwrap(), 5);
        f.flush().unwrap();
        assert_eq!(f.stream_position().unwrap(), 19);
        assert_eq!(f.metadata().unwrap().len(), 19);
        f.seek(SeekFrom::Start(4)).unwrap();
        let mut three = [0u8; 3];
        f.read_exact(&mut three).unwrap();
        assert_eq!(&three, b"two");
        let mut rest = Vec::new();
        assert_eq!(f.read_to_end(&mut rest).unwrap(), 12);
        assert_eq!(rest, b"\nthree\nfour\n");
        assert_eq!(f.read(&mut three).unwrap(), 0, "at the end");
        f.set_len(8).unwrap();
        f.sync_all().unwrap();
        f.seek(SeekFrom::Start(0)).unwrap();
        let lines: Vec<String> = BufReader::new(f).lines().map(Result::unwrap).collect();
        assert_eq!(lines, ["one", "two"]);
        // From a std File, and back.
        let f = FileObjectThread::from(File::open(&path.0).unwrap());
        assert_eq!(f.into_inner().unwrap().metadata().unwrap().len(), 8);
    });
}

#[test]
fn opening_a_missing_file_is_not_found() {
    with_watchdog(|| {
        let e = FileObjectThread::open("/nonexistent/gevent-no-such-file").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
    });
}

#[test]
fn a_call_interrupted_by_a_timeout_finishes_in_the_pool_before_the_next() {
    with_watchdog(|| {
        let mut fds = [0; 2];
        // SAFETY: pipe2 fills the two-int array it is given.
        assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
        // SAFETY: both fds were just made and are owned by nobody else.
        let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        let mut f = FileObjectThread::from(File::from(r));
        let mut buf = [0u8; 16];
        // Nothing to read: the read waits in the pool until the Timeout ends the wait.
        let e = with_timeout(Duration::from_millis(5), || f.read(&mut buf));
        assert!(matches!(e, Err(Error::TimedOut)), "{e:?}");
        // The read still runs: it gets these bytes, which are lost with it.
        let mut w = File::from(w);
        w.write_all(b"abc").unwrap();
        drop(w);
        let mut rest = Vec::new();
        f.read_to_end(&mut rest).unwrap();
        assert!(
            rest.is_empty(),
            "the interrupted read took the data: {rest:?}"
        );
    });
}

#[test]
fn a_call_made_in_the_hub_is_refused_before_it_runs() {
    with_watchdog(|| {
        let path = TempPath::new("hub");
        let f = Rc::new(RefCell::new(FileObjectThread::create(&path.0).unwrap()));
        let f2 = f.clone();
        // A callback runs in the hub, which cannot wait.
        let r = in_hub(move || f2.borrow_mut().write_all(b"never"));
        let e = r.unwrap_err();
        assert!(e.to_string().contains("in the hub"), "{e}");
        // Nothing was handed to the pool: the file is empty and still usable.
        let mut f = f.borrow_mut();
        assert_eq!(f.metadata().unwrap().len(), 0);
        f.write_all(b"later").unwrap();
        assert_eq!(f.metadata().unwrap().len(), 5);
    });
}

/// A pipe: (read end, write end).
fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills the two-int array it is given.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: both fds were just made and are owned by nobody else.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

#[test]
fn the_error_of_an_interrupted_call_is_reported_by_the_next() {
    with_watchdog(|| {
        // A write larger than the pipe holds blocks in the pool; the Timeout ends the
        // wait, and the write then fails (EPIPE) once the reader has gone.
        let interrupted = |f: &mut FileObjectThread, r: OwnedFd| {
            let big = vec![7u8; 1 << 20];
            let e = with_timeout(Duration::from_millis(5), || f.write_all(&big));
            assert!(matches!(e, Err(Error::TimedOut)), "{e:?}");
            drop(r);
        };
        let (r, w) = pipe();
        let mut f = FileObjectThread::from(File::from(w));
        interrupted(&mut f, r);
        let e = f.flush().expect_err("flush reports the lost write's error");
        assert_eq!(e.kind(), io::ErrorKind::BrokenPipe, "{e}");
        // Reported once.
        f.flush().unwrap();
        // Any other call reports it as well, instead of being made.
        let (r, w) = pipe();
        let mut f = FileObjectThread::from(File::from(w));
        interrupted(&mut f, r);
        let e = f
            .write(b"x")
            .expect_err("the next write reports the lost error");
        assert_eq!(e.kind(), io::ErrorKind::BrokenPipe, "{e}");
    });
}

/// A socket whose reads give `b"abc"`, then fail with `WouldBlock` (its receive
/// timeout), while its peer stays open.
fn three_bytes_then_an_error() -> (File, std::os::unix::net::UnixStream) {
    let (a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
    a.set_read_timeout(Some(Duration::from_millis(5))).unwrap();
    b.write_all(b"abc").unwrap();
    (File::from(OwnedFd::from(a)), b)
}

#[test]
fn read_to_end_keeps_what_it_read_before_an_error_as_std_does() {
    with_watchdog(|| {
        // std's contract, on the same kind of file.
        let (mut std_file, _peer) = three_bytes_then_an_error();
        let mut want = b"pre".to_vec();
        let e = std_file.read_to_end(&mut want).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock, "{e}");
        assert_eq!(want, b"preabc");

        let (file, _peer) = three_bytes_then_an_error();
        let mut f = FileObjectThread::from(file);
        let mut buf = b"pre".to_vec();
        let e = f.read_to_end(&mut buf).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock, "{e}");
        assert_eq!(buf, want, "the bytes read before the error are kept");

        // read_to_string keeps valid UTF-8 read before an error, as std's.
        let (file, _peer) = three_bytes_then_an_error();
        let mut f = FileObjectThread::from(file);
        let mut s = String::from("pre");
        let e = f.read_to_string(&mut s).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock, "{e}");
        assert_eq!(s, "preabc");
    });
}
