//! An io watcher: a repeating timer writes numbered messages into a pipe, and an io
//! watcher on the pipe's read end prints what it reads, until COUNT messages arrived.
//!
//! ```python
//! loop = gevent.core.loop()
//! r, w = os.pipe()
//! reader = loop.io(r, 1)            # 1 = READ
//! writer = loop.timer(0, 0.2)
//! writer.start(lambda: os.write(w, b"message"))
//! reader.start(lambda: print(os.read(r, 4096)))
//! loop.run()
//! ```
//!
//! Run: `cargo run --example io -- [COUNT] [INTERVAL_MS]` (defaults: 5 messages, 200 ms).
//! It stops by itself: after COUNT messages the timer stops and the write end is
//! closed; the reader sees end of file, stops its watcher, and the loop has no more
//! work.
//!
//! `cargo run --example io -- --stdin` echoes the lines read from stdin instead, until
//! end of file (Ctrl-D on a terminal, or the end of a pipe: `seq 3 | cargo run
//! --example io -- --stdin`).

use gevent::core::{Events, Loop};
use std::cell::RefCell;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::time::Duration;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1).peekable();
    if args.peek().map(String::as_str) == Some("--stdin") {
        return echo_stdin();
    }
    let count: u32 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(5);
    let interval =
        Duration::from_millis(args.next().map(|s| s.parse()).transpose()?.unwrap_or(200));

    let lp = Loop::new()?;
    let (reader, writer) = pipe()?;
    println!(
        "pipe: read end fd {}, write end fd {}; backend {}",
        reader.as_raw_fd(),
        writer.as_raw_fd(),
        lp.backend_name()
    );

    // The writer: a repeating timer. It owns the write end and closes it (by dropping
    // it) after the last message, which is how the reader learns that it is done.
    let writer = RefCell::new(Some(writer));
    let mut sent = 0;
    let timer = lp.timer(Duration::ZERO, interval);
    timer.start(move |t, _events| {
        sent += 1;
        if let Some(w) = writer.borrow_mut().as_mut() {
            // A pipe buffer holds far more than these few bytes: the write cannot block.
            if let Err(e) = writeln!(w, "message {sent} of {count}") {
                eprintln!("write: {e}");
            }
        }
        if sent == count {
            writer.borrow_mut().take(); // close the write end: the reader gets EOF
            t.stop();
        }
    })?;

    // The reader: an io watcher for READ on the pipe's read end. The fd is
    // non-blocking, so a spurious wake-up costs an EAGAIN, never a hang.
    let io = lp.io(reader.as_raw_fd(), Events::READ)?;
    let mut reader = reader;
    let mut received = 0;
    io.start(move |w, events| {
        let mut buf = [0u8; 4096];
        match reader.read(&mut buf) {
            Ok(0) => {
                println!("end of file after {received} messages; stopping the io watcher");
                w.stop();
            }
            Ok(n) => {
                let text = String::from_utf8_lossy(&buf[..n]);
                for line in text.lines() {
                    received += 1;
                    println!("read ({events:?}): {line}");
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => {
                eprintln!("read: {e}");
                w.stop();
            }
        }
    })?;

    lp.run()?;
    println!("done: the loop ran out of active watchers");
    Ok(())
}

/// `--stdin`: prints every line read from stdin, until end of file.
///
/// stdin is left in blocking mode (it may be a terminal shared with the shell, whose
/// flags are not ours to change); the io watcher only says that one `read(2)` will not
/// block, and the callback does exactly one read per wake-up.
fn echo_stdin() -> Result<(), Box<dyn std::error::Error>> {
    const STDIN: RawFd = 0;
    let lp = Loop::new()?;
    let io = lp.io(STDIN, Events::READ)?;
    let mut partial = Vec::new();
    let mut lines = 0;
    io.start(move |w, _events| {
        let mut buf = [0u8; 4096];
        // SAFETY: reads into a local buffer of the given length; fd 0 was checked to be
        // open when the watcher was made.
        let n = unsafe { libc::read(STDIN, buf.as_mut_ptr().cast(), buf.len()) };
        // Negative means an error: it does not fit in a usize.
        match usize::try_from(n) {
            Ok(0) => {
                if !partial.is_empty() {
                    lines += 1;
                    println!("echo {lines}: {}", String::from_utf8_lossy(&partial));
                }
                println!("end of input after {lines} lines");
                w.stop();
            }
            Ok(n) => {
                partial.extend_from_slice(&buf[..n]);
                while let Some(end) = partial.iter().position(|&b| b == b'\n') {
                    let line: Vec<u8> = partial.drain(..=end).collect();
                    lines += 1;
                    println!(
                        "echo {lines}: {}",
                        String::from_utf8_lossy(&line[..line.len() - 1])
                    );
                }
            }
            Err(_) => {
                let e = io::Error::last_os_error();
                if !matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) {
                    eprintln!("read stdin: {e}");
                    w.stop();
                }
            }
        }
    })?;
    lp.run()?;
    Ok(())
}

/// A pipe whose ends are non-blocking and close-on-exec, as owned `File`s.
fn pipe() -> io::Result<(File, File)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two fds into the array it is given.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) } == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both fds were just created and are owned by nothing else.
    Ok(unsafe { (File::from_raw_fd(fds[0]), File::from_raw_fd(fds[1])) })
}
