//! `Stat` watchers on real files in a fresh temp directory: writing, creating and
//! removing the file runs the callback, and `attr`/`prev` show the change. libev
//! learns of the changes through inotify, so nothing here waits for a poll interval.

mod util;

use gevent_core::{Error, Events, Loop};
use std::cell::RefCell;
use std::fs;
use std::io::Write;
use std::rc::Rc;
use std::time::Duration;
use util::{watchdog, TempDir};

const MS: Duration = Duration::from_millis(1);

fn size(st: Option<libc::stat>) -> Option<i64> {
    st.map(|s| s.st_size)
}

/// What one callback saw: `(revents, prev size, attr size)`.
type Seen = Rc<RefCell<Vec<(Events, Option<i64>, Option<i64>)>>>;

#[test]
fn writing_the_file_fires_with_the_new_size() {
    let dir = TempDir::new("stat-write");
    let path = dir.join("file");
    fs::write(&path, b"a").unwrap();

    let lp = Loop::new().unwrap();
    let _dog = watchdog(&lp);
    let w = lp.stat(&path, Duration::ZERO).unwrap();
    assert_eq!(w.path(), path);
    let seen: Seen = Default::default();
    let s = seen.clone();
    w.start(move |w, revents| {
        s.borrow_mut()
            .push((revents, size(w.prev()), size(w.attr())));
        w.stop();
    })
    .unwrap();
    // Starting reads the attributes once.
    assert_eq!(size(w.attr()), Some(1));

    // Appended while the loop runs.
    let writer = lp.timer(MS, Duration::ZERO);
    let p = path.clone();
    writer
        .start(move |_, _| {
            let mut f = fs::OpenOptions::new().append(true).open(&p).unwrap();
            f.write_all(b"bcd").unwrap();
        })
        .unwrap();
    lp.run().unwrap();

    assert_eq!(*seen.borrow(), [(Events::STAT, Some(1), Some(4))]);
}

#[test]
fn creating_a_missing_file_fires_with_no_previous_attributes() {
    let dir = TempDir::new("stat-create");
    let path = dir.join("not-yet");

    let lp = Loop::new().unwrap();
    let _dog = watchdog(&lp);
    let w = lp.stat(&path, Duration::ZERO).unwrap();
    let seen: Seen = Default::default();
    let s = seen.clone();
    w.start(move |w, revents| {
        s.borrow_mut()
            .push((revents, size(w.prev()), size(w.attr())));
        w.stop();
    })
    .unwrap();
    assert!(w.attr().is_none(), "the file does not exist yet");

    fs::write(&path, b"hello").unwrap();
    lp.run().unwrap();
    assert_eq!(*seen.borrow(), [(Events::STAT, None, Some(5))]);
}

#[test]
fn removing_the_file_fires_with_no_attributes() {
    let dir = TempDir::new("stat-remove");
    let path = dir.join("doomed");
    fs::write(&path, b"12").unwrap();

    let lp = Loop::new().unwrap();
    let _dog = watchdog(&lp);
    let w = lp.stat(&path, Duration::ZERO).unwrap();
    let seen: Seen = Default::default();
    let s = seen.clone();
    w.start(move |w, revents| {
        s.borrow_mut()
            .push((revents, size(w.prev()), size(w.attr())));
        w.stop();
    })
    .unwrap();

    let remover = lp.timer(MS, Duration::ZERO);
    let p = path.clone();
    remover
        .start(move |_, _| fs::remove_file(&p).unwrap())
        .unwrap();
    lp.run().unwrap();
    assert_eq!(*seen.borrow(), [(Events::STAT, Some(2), None)]);
}

#[test]
fn a_file_changed_again_fires_again() {
    let dir = TempDir::new("stat-again");
    let path = dir.join("file");
    fs::write(&path, b"").unwrap();

    let lp = Loop::new().unwrap();
    let _dog = watchdog(&lp);
    let w = lp.stat(&path, Duration::ZERO).unwrap();
    let sizes = Rc::new(RefCell::new(Vec::new()));
    let (s, p) = (sizes.clone(), path.clone());
    w.start(move |w, _| {
        let now = size(w.attr()).unwrap();
        s.borrow_mut().push((size(w.prev()).unwrap(), now));
        if now < 3 {
            // The next change comes from the callback of the previous one.
            fs::write(&p, vec![b'x'; now as usize + 1]).unwrap();
        } else {
            w.stop();
        }
    })
    .unwrap();
    fs::write(&path, b"x").unwrap();
    lp.run().unwrap();
    assert_eq!(*sizes.borrow(), [(0, 1), (1, 2), (2, 3)]);
}

#[test]
fn unrelated_files_in_the_same_directory_do_not_fire() {
    let dir = TempDir::new("stat-unrelated");
    // A missing path: libev watches the directory, so it hears about the neighbours
    // and must tell them apart from the watched file.
    let path = dir.join("watched");

    let lp = Loop::new().unwrap();
    let _dog = watchdog(&lp);
    let w = lp.stat(&path, Duration::ZERO).unwrap();
    let seen: Seen = Default::default();
    let s = seen.clone();
    w.start(move |w, revents| {
        s.borrow_mut()
            .push((revents, size(w.prev()), size(w.attr())));
        w.stop();
    })
    .unwrap();

    let neighbour = dir.join("neighbour");
    fs::write(&neighbour, b"noise").unwrap();
    fs::remove_file(&neighbour).unwrap();
    for _ in 0..3 {
        lp.run_nowait().unwrap();
    }
    assert!(seen.borrow().is_empty(), "{:?}", seen.borrow());

    fs::write(&path, b"finally").unwrap();
    lp.run().unwrap();
    assert_eq!(*seen.borrow(), [(Events::STAT, None, Some(7))]);
}

#[test]
fn stat_now_reads_the_attributes_without_the_loop() {
    let dir = TempDir::new("stat-now");
    let path = dir.join("file");
    let lp = Loop::new().unwrap();
    let w = lp.stat(&path, Duration::ZERO).unwrap();
    assert!(w.stat_now().is_none());
    fs::write(&path, b"abc").unwrap();
    assert_eq!(size(w.stat_now()), Some(3));
    assert_eq!(size(w.attr()), Some(3));
}

#[test]
fn path_and_interval() {
    let dir = TempDir::new("stat-path");
    let path = dir.join("some file with spaces");
    let lp = Loop::new().unwrap();
    let w = lp.stat(&path, Duration::from_secs(2)).unwrap();
    assert_eq!(w.path(), path);
    assert_eq!(w.interval(), Duration::from_secs(2));
    w.start(|_, _| {}).unwrap();
    assert_eq!(w.interval(), Duration::from_secs(2));

    // Zero stands for libev's default, before and after the start.
    let default = lp.stat(&path, Duration::ZERO).unwrap();
    default.start(|_, _| {}).unwrap();
    assert_eq!(default.interval(), Duration::ZERO);

    // libev raises a too-short polling interval to its minimum when started.
    let fast = lp.stat(&path, MS).unwrap();
    assert_eq!(fast.interval(), MS);
    fast.start(|_, _| {}).unwrap();
    assert!(fast.interval() > MS, "{:?}", fast.interval());

    use std::os::unix::ffi::OsStrExt;
    let nul = std::ffi::OsStr::from_bytes(b"bad\0path");
    assert_eq!(lp.stat(nul, MS).unwrap_err(), Error::InvalidPath);
}
