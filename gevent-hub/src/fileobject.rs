//! Files whose calls run on the thread pool (gevent's
//! `gevent.fileobject.FileObjectThread`).
//!
//! A regular file is always "ready" to the kernel's readiness calls, so an event loop
//! cannot wait for it: a read from a slow disk, an NFS mount or a FIFO blocks the
//! thread, and with it every greenlet of the hub. A [`FileObjectThread`] runs each call
//! on the hub's [default thread pool](crate::threadpool::default_pool) instead, and the
//! calling greenlet parks until it is done, while the others run.
//!
//! ```
//! use gevent_hub::fileobject::FileObjectThread;
//! use std::fs::OpenOptions;
//! use std::io::{Read, Seek, SeekFrom, Write};
//!
//! let path = std::env::temp_dir().join(format!("gevent-doc-{}", std::process::id()));
//! let mut f = FileObjectThread::create(&path)?;
//! f.write_all(b"hello, pool")?;
//! drop(f);
//! let mut f = FileObjectThread::open_with(OpenOptions::new().read(true).append(true), &path)?;
//! f.seek(SeekFrom::Start(7))?;
//! let mut s = String::new();
//! f.read_to_string(&mut s)?;
//! assert_eq!(s, "pool");
//! # std::fs::remove_file(&path)?;
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! ## How a call runs
//! The [`File`] itself travels: each call moves it into a pool task with a copy of
//! the data to write (or a buffer to read into), and the task hands both back. The
//! file is used by one call at a time, so calls happen in the order they were made.
//!
//! ## Kills and timeouts
//! A kill or a [`Timeout`](crate::Timeout) unwinds the greenlet from its wait, but a
//! call already handed to the pool cannot be taken back: it runs to its end. The next
//! call on the same object first waits for it to finish (the file comes back with it),
//! so order is kept; what the interrupted call read is lost, and what it wrote is
//! written. If the interrupted call failed, its error is not lost: the next call
//! ([`flush`](Write::flush) included) returns it instead of being made, as a later
//! write of a buffered writer reports an earlier failure. (Only
//! [`into_inner`](FileObjectThread::into_inner) and dropping the object let go of
//! it.) Dropping the object while such a call runs lets the task close the file.
//!
//! ## Buffering
//! Every call is a round trip to a worker thread (microseconds, not the nanoseconds of
//! a buffered read), so read through [`std::io::BufReader`] (it then has
//! [`BufRead`](std::io::BufRead): `lines`, `read_line`) and write through
//! [`std::io::BufWriter`], with a capacity to match (say 64 KiB). `read_to_end`,
//! `read_to_string` and `write_all` are one round trip each.
//!
//! The name is gevent's: the concept is gevent's (std has no file whose calls move
//! to other threads), and a gevent user looks for it under that name.

use crate::threadpool::{default_pool, ThreadResult};
use std::any::Any;
use std::fmt;
use std::fs::{File, Metadata, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;

/// The most one `read` or `write` call moves (a larger buffer is served in part, as
/// `Read` and `Write` allow), so that a huge buffer does not mean a huge copy.
const MAX_CHUNK: usize = 1 << 20;

/// What a pool task hands back.
struct Done {
    file: File,
    /// The call's value (its type is the caller's, who downcasts it).
    value: Box<dyn Any + Send>,
    /// The call's error, if it failed: what an interrupted call must not lose.
    error: Option<io::Error>,
}

/// A [`File`] whose calls run on the thread pool (see the [module docs](self)):
/// [`Read`], [`Write`] and [`Seek`], each call parking the greenlet, not the thread.
///
/// # Examples
/// ```
/// use gevent_hub::fileobject::FileObjectThread;
/// use gevent_hub::spawn;
/// use std::io::{BufRead, BufReader};
///
/// // Another greenlet runs while the file is read.
/// let other = spawn(|| 7);
/// let f = FileObjectThread::open("Cargo.toml")?;
/// let first = BufReader::new(f).lines().next().unwrap()?;
/// assert!(first.starts_with('['));
/// assert!(other.ready());
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct FileObjectThread {
    /// The file, when no pool task holds it.
    file: Option<File>,
    /// A call interrupted (kill, Timeout) while its task ran: the file comes back with
    /// it, and the next call waits for it first.
    in_flight: Option<ThreadResult<Done>>,
    /// The error of an interrupted call, found when its task gave the file back: the
    /// next call returns it.
    lost: Option<io::Error>,
}

impl fmt::Debug for FileObjectThread {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileObjectThread")
            .field("file", &self.file)
            .field("in_flight", &self.in_flight.is_some())
            .field("lost", &self.lost)
            .finish()
    }
}

impl From<File> for FileObjectThread {
    fn from(file: File) -> FileObjectThread {
        FileObjectThread {
            file: Some(file),
            in_flight: None,
            lost: None,
        }
    }
}

impl FileObjectThread {
    /// Opens `path` for reading, on the pool (as [`File::open`]; opening a FIFO waits
    /// for its writer there).
    ///
    /// # Errors
    /// As [`File::open`]; the pool's ([`ThreadError`](crate::threadpool::ThreadError)
    /// as an `io::Error`) and the hub's.
    pub fn open(path: impl AsRef<Path>) -> io::Result<FileObjectThread> {
        FileObjectThread::open_with(OpenOptions::new().read(true), path)
    }

    /// Creates (or truncates) `path` for writing, on the pool (as [`File::create`]).
    ///
    /// # Errors
    /// As [`open`](FileObjectThread::open).
    pub fn create(path: impl AsRef<Path>) -> io::Result<FileObjectThread> {
        FileObjectThread::open_with(
            OpenOptions::new().write(true).create(true).truncate(true),
            path,
        )
    }

    /// Opens `path` with `options`, on the pool.
    ///
    /// # Errors
    /// As [`OpenOptions::open`], and as [`open`](FileObjectThread::open).
    pub fn open_with(
        options: &OpenOptions,
        path: impl AsRef<Path>,
    ) -> io::Result<FileObjectThread> {
        let (options, path) = (options.clone(), path.as_ref().to_owned());
        crate::hub::refuse_in_hub("FileObjectThread::open")?;
        let file = default_pool().spawn(move || options.open(path)).join()??;
        Ok(FileObjectThread::from(file))
    }

    /// Runs `f` on the file in a pool task and parks until it is done.
    fn run<T: Send + 'static>(
        &mut self,
        f: impl FnOnce(&mut File) -> io::Result<T> + Send + 'static,
    ) -> io::Result<T> {
        let (v, r) = self.run_parts(move |file| match f(file) {
            Ok(v) => (Some(v), Ok(())),
            Err(e) => (None, Err(e)),
        })?;
        r?;
        v.ok_or_else(|| io::Error::other("a pool task returned no value"))
    }

    /// Runs `f` on the file in a pool task and parks until it is done, for a call
    /// whose value counts even when it fails (what `read_to_end` read before its
    /// error): `f` returns both. The outer error is the pool's, the hub's, or an
    /// interrupted call's; the call is then not made (or its value is lost).
    fn run_parts<T: Send + 'static>(
        &mut self,
        f: impl FnOnce(&mut File) -> (T, io::Result<()>) + Send + 'static,
    ) -> io::Result<(T, io::Result<()>)> {
        // Before the call is handed over: a call that then could not be waited for
        // would still be made.
        crate::hub::refuse_in_hub("a FileObjectThread call")?;
        let mut file = self.take_file()?;
        if let Some(e) = self.lost.take() {
            self.file = Some(file);
            return Err(e);
        }
        self.in_flight = Some(default_pool().spawn(move || {
            let (v, r) = f(&mut file);
            Done {
                file,
                value: Box::new(v),
                error: r.err(),
            }
        }));
        let done = self.finish_in_flight()?;
        self.file = Some(done.file);
        let r = done.error.map_or(Ok(()), Err);
        match done.value.downcast::<T>() {
            Ok(v) => Ok((*v, r)),
            Err(_) => Err(io::Error::other(
                "a pool task returned another call's result",
            )),
        }
    }

    /// Reads the rest of the file in a pool task: the bytes read, and the error that
    /// ended the read early, if one did.
    fn read_all(&mut self) -> io::Result<(Vec<u8>, io::Result<()>)> {
        self.run_parts(|f| {
            let mut v = Vec::new();
            let r = f.read_to_end(&mut v).map(drop);
            (v, r)
        })
    }

    /// The file, once an interrupted call's task has given it back (its error, if it
    /// failed, kept in `lost` for the next call).
    fn take_file(&mut self) -> io::Result<File> {
        if self.file.is_none() && self.in_flight.is_some() {
            let done = self.finish_in_flight()?;
            self.file = Some(done.file);
            if let Some(e) = done.error {
                self.lost = Some(e);
            }
        }
        self.file.take().ok_or_else(|| {
            io::Error::other("the file is gone: a thread pool task that held it did not finish")
        })
    }

    /// Waits for the task in flight (which stays recorded if the wait unwinds) and
    /// takes what it returned.
    fn finish_in_flight(&mut self) -> io::Result<Done> {
        if let Some(t) = &self.in_flight {
            // Duration::MAX: no timeout.
            t.join_timeout(std::time::Duration::MAX)?;
        }
        match self.in_flight.take() {
            Some(t) => Ok(t.join()?),
            None => Err(io::Error::other("no thread pool task in flight")),
        }
    }

    /// The file's metadata, from the pool.
    ///
    /// # Errors
    /// As [`File::metadata`], and the pool's and hub's.
    pub fn metadata(&mut self) -> io::Result<Metadata> {
        self.run(|f| f.metadata())
    }

    /// Truncates or extends the file, on the pool (as [`File::set_len`]).
    ///
    /// # Errors
    /// As [`File::set_len`], and the pool's and hub's.
    pub fn set_len(&mut self, size: u64) -> io::Result<()> {
        self.run(move |f| f.set_len(size))
    }

    /// `fsync`s data and metadata, on the pool (as [`File::sync_all`]).
    ///
    /// # Errors
    /// As [`File::sync_all`], and the pool's and hub's.
    pub fn sync_all(&mut self) -> io::Result<()> {
        self.run(|f| f.sync_all())
    }

    /// `fdatasync`s, on the pool (as [`File::sync_data`]).
    ///
    /// # Errors
    /// As [`File::sync_data`], and the pool's and hub's.
    pub fn sync_data(&mut self) -> io::Result<()> {
        self.run(|f| f.sync_data())
    }

    /// The file back, once no call holds it. The error of an interrupted call that
    /// no call has reported yet is dropped: the file is what is asked for.
    ///
    /// # Errors
    /// As an interrupted call's wait, if one is still running.
    pub fn into_inner(mut self) -> io::Result<File> {
        self.take_file()
    }
}

impl Read for FileObjectThread {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min(MAX_CHUNK);
        if n == 0 {
            return Ok(0);
        }
        let data = self.run(move |f| {
            let mut v = vec![0u8; n];
            let k = f.read(&mut v)?;
            v.truncate(k);
            Ok(v)
        })?;
        buf[..data.len()].copy_from_slice(&data);
        Ok(data.len())
    }

    /// As std's: on an error, the bytes read before it are in `buf` too.
    fn read_to_end(&mut self, buf: &mut Vec<u8>) -> io::Result<usize> {
        let (mut data, r) = self.read_all()?;
        let n = data.len();
        buf.append(&mut data);
        r.map(|()| n)
    }

    /// As std's: on an error, what was read before it is in `buf` too if it is valid
    /// UTF-8; `buf` is unchanged if it is not (then the error is `InvalidData`, unless
    /// the read failed).
    fn read_to_string(&mut self, buf: &mut String) -> io::Result<usize> {
        let (data, r) = self.read_all()?;
        match String::from_utf8(data) {
            Ok(s) => {
                buf.push_str(&s);
                r.map(|()| s.len())
            }
            Err(_) => r.and(Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "stream did not contain valid UTF-8",
            ))),
        }
    }
}

impl Write for FileObjectThread {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let data = buf[..buf.len().min(MAX_CHUNK)].to_vec();
        self.run(move |f| f.write(&data))
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        let data = buf.to_vec();
        self.run(move |f| f.write_all(&data))
    }

    /// A [`File`] has no buffer of its own; this only waits for an interrupted call,
    /// and returns its error if it failed.
    fn flush(&mut self) -> io::Result<()> {
        let file = self.take_file()?;
        self.file = Some(file);
        self.lost.take().map_or(Ok(()), Err)
    }
}

impl Seek for FileObjectThread {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.run(move |f| f.seek(pos))
    }
}
