//! Cooperative child processes (gevent's `gevent.subprocess`), with
//! `std::process`'s names and signatures: waiting for a child, and reading and
//! writing its pipes, park the greenlet, not the thread.
//!
//! ```
//! use gevent_hub::process::Command;
//!
//! let out = Command::new("sh").args(["-c", "echo hello; echo oops >&2; exit 3"]).output()?;
//! assert_eq!(out.stdout, b"hello\n");
//! assert_eq!(out.stderr, b"oops\n");
//! assert_eq!(out.status.code(), Some(3));
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! ## How it works
//! std starts the child ([`std::process::Command::spawn`]: it gets `fork`/`exec`,
//! the close-on-exec flags and the report of a failed `exec` right). Starting is
//! therefore the one step that holds the thread, until the child has exec'd. Then:
//!
//! ```text
//!  Command::spawn ──► std's spawn ──► Child { std child, exit watch, pipes }
//!  pipes:       our end made non-blocking, waited on in the readiness core (as sockets)
//!  exit watch:  pidfd_open(pid): readable once the child has exited ──► try_wait reaps
//!               (no pidfd: waitid(WNOWAIT) on a thread of its own, which wakes the
//!                hub through its remote waker, then try_wait reaps)
//! ```
//!
//! A pidfd works on any thread's loop and needs no `SIGCHLD` handler (libev's child
//! watchers need both the default loop and the signal). It needs Linux 5.3; where
//! `pidfd_open` is refused (`ENOSYS` on an older kernel, a seccomp filter, valgrind),
//! the first wait for a child starts a small detached thread that blocks in
//! `waitid(…, WEXITED | WNOWAIT)`, which sees the exit without reaping, and then
//! wakes the wait, if one is still on, through the hub's
//! [remote waker](crate::RemoteWaker); the child is still reaped by
//! [`Child::try_wait`] on the hub's thread. The thread lives until the child exits
//! (later waits reuse it) but holds nothing of the hub: only a parked wait keeps the
//! loop running, as a wait on a pidfd does, and the hub's thread never joins it, so
//! a dropped [`Child`] of a running child holds up neither "would block forever" nor
//! the thread's exit. It is a thread per waited child, not a task on the
//! [thread pool](crate::threadpool): a task would hold one of the pool's few threads
//! for the child's whole life (a few long-lived children would starve it) and keep
//! the loop referenced. (A `SIGCHLD` handler would serve every child with one
//! watcher, but libev's signal and child watchers belong to the default loop, and the
//! signal's disposition is the program's.)
//!
//! ## Dropping a child, kills and timeouts
//! As in std, dropping a [`Child`] neither kills the child nor waits for it. A kill
//! or a [`Timeout`](crate::Timeout) that ends a greenlet's [`Child::wait`] unwinds it
//! like any other wait, and leaves the `Child` as it was: it can be waited for again.
//! If the unwinding drops the `Child` (it lived on the greenlet's stack), its pidfd
//! and pipes are closed with it, and the child goes on running. So that an ended child does not
//! stay a zombie for the rest of the process, a dropped `Child` that was not reaped is
//! remembered (its pid, process-wide) and reaped, if it has ended, by the next
//! [`Command::spawn`] (as Python's `subprocess` does). Kill it first
//! ([`Child::kill`]) to end it. (A program that reaps children by itself, with
//! `waitpid(-1)` or a `SIGCHLD` handler, should wait for its `Child`ren instead of
//! dropping them: a pid reaped behind this list's back may be reused.)
//!
//! ## What differs from std
//! - [`Child::wait_timeout`] (std has none; gevent's `Popen.wait(timeout)`).
//! - [`Command::spawn`]'s error names the program (`cannot run "nope": No such file
//!   or directory (os error 2)`); its kind is the OS error's (`NotFound`,
//!   `PermissionDenied`), but `raw_os_error()` is `None`: the number is in the
//!   message.
//! - The standard streams are set through this `Command` only (not through
//!   [`as_std_mut`](Command::as_std_mut)), since [`output`](Command::output) must
//!   know which ones the caller chose.
//! - A pipe handed on ([`Stdio::from`], `OwnedFd::from`) is blocking again, as std's.
//! - [`Child`] and its pipes are `!Send` (std's are `Send`): their waits go through
//!   the readiness core and hub of the thread that spawned them. Wait for a child on
//!   that thread, or hand the other thread what it needs (a pipe as an `OwnedFd`,
//!   the pid):
//!
//!   ```compile_fail
//!   let child = gevent_hub::process::Command::new("true").spawn().unwrap();
//!   std::thread::spawn(move || child); // `Rc<FdState>` cannot be sent between threads
//!   ```
//! - A write to a pipe whose reader has gone raises `SIGPIPE` unless it is ignored, as
//!   with std (Rust programs ignore it by default), and then fails with `BrokenPipe`.

use crate::hub::Wait;
use crate::net::readiness::{self, Closes, Direction, FdState, WaitError};
use std::ffi::OsStr;
use std::fmt;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

pub use std::process::{ExitStatus, Output, Stdio};

/// A process builder, as [`std::process::Command`], whose children are waited for
/// cooperatively.
///
/// # Examples
/// ```
/// use gevent_hub::process::{Command, Stdio};
/// use std::io::{Read, Write};
///
/// let mut child = Command::new("tr")
///     .arg("a-z")
///     .arg("A-Z")
///     .stdin(Stdio::piped())
///     .stdout(Stdio::piped())
///     .spawn()?;
/// child.stdin.take().unwrap().write_all(b"gevent")?; // dropped: the child sees EOF
/// let mut upper = String::new();
/// child.stdout.take().unwrap().read_to_string(&mut upper)?;
/// assert_eq!(upper, "GEVENT");
/// assert!(child.wait()?.success());
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Command {
    inner: std::process::Command,
    /// Which standard streams the caller set ([`Command::output`]'s defaults differ).
    set: [bool; 3],
}

impl fmt::Debug for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.inner, f)
    }
}

impl Command {
    /// A command for `program`, as [`std::process::Command::new`]: no arguments, the
    /// parent's environment and working directory, the standard streams inherited by
    /// [`spawn`](Command::spawn) and [`status`](Command::status).
    pub fn new(program: impl AsRef<OsStr>) -> Command {
        Command {
            inner: std::process::Command::new(program),
            set: [false; 3],
        }
    }

    /// Adds an argument.
    pub fn arg(&mut self, arg: impl AsRef<OsStr>) -> &mut Command {
        self.inner.arg(arg);
        self
    }

    /// Adds arguments.
    pub fn args<I, S>(&mut self, args: I) -> &mut Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.inner.args(args);
        self
    }

    /// Sets an environment variable of the child.
    pub fn env(&mut self, key: impl AsRef<OsStr>, val: impl AsRef<OsStr>) -> &mut Command {
        self.inner.env(key, val);
        self
    }

    /// Sets environment variables of the child.
    pub fn envs<I, K, V>(&mut self, vars: I) -> &mut Command
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        self.inner.envs(vars);
        self
    }

    /// Removes an environment variable from the child's environment.
    pub fn env_remove(&mut self, key: impl AsRef<OsStr>) -> &mut Command {
        self.inner.env_remove(key);
        self
    }

    /// Starts the child with an empty environment (plus what `env` adds).
    pub fn env_clear(&mut self) -> &mut Command {
        self.inner.env_clear();
        self
    }

    /// Sets the child's working directory.
    pub fn current_dir(&mut self, dir: impl AsRef<Path>) -> &mut Command {
        self.inner.current_dir(dir);
        self
    }

    /// Sets the child's standard input.
    pub fn stdin(&mut self, cfg: impl Into<Stdio>) -> &mut Command {
        self.inner.stdin(cfg);
        self.set[0] = true;
        self
    }

    /// Sets the child's standard output.
    pub fn stdout(&mut self, cfg: impl Into<Stdio>) -> &mut Command {
        self.inner.stdout(cfg);
        self.set[1] = true;
        self
    }

    /// Sets the child's standard error.
    pub fn stderr(&mut self, cfg: impl Into<Stdio>) -> &mut Command {
        self.inner.stderr(cfg);
        self.set[2] = true;
        self
    }

    /// The program, as given to [`new`](Command::new).
    pub fn get_program(&self) -> &OsStr {
        self.inner.get_program()
    }

    /// The arguments (not the program).
    pub fn get_args(&self) -> std::process::CommandArgs<'_> {
        self.inner.get_args()
    }

    /// The environment changes made with `env`, `envs` and `env_remove`.
    pub fn get_envs(&self) -> std::process::CommandEnvs<'_> {
        self.inner.get_envs()
    }

    /// The working directory set with [`current_dir`](Command::current_dir).
    pub fn get_current_dir(&self) -> Option<&Path> {
        self.inner.get_current_dir()
    }

    /// The std command underneath, for what `std::os::unix::process::CommandExt`
    /// adds (`uid`, `process_group`, `arg0`, `pre_exec`, …). Set the standard streams
    /// through this `Command`, not there.
    pub fn as_std_mut(&mut self) -> &mut std::process::Command {
        &mut self.inner
    }

    /// Starts the child, as [`std::process::Command::spawn`]. The thread is held until
    /// the child has exec'd (or failed to); everything after that is cooperative.
    ///
    /// # Errors
    /// The program cannot be run (`NotFound`, `PermissionDenied`, …, naming it), or
    /// the OS refused the process or its pipes.
    pub fn spawn(&mut self) -> io::Result<Child> {
        reap_dropped();
        let child = self.inner.spawn().map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot run {:?}: {e}", self.inner.get_program()),
            )
        })?;
        Child::new(child)
    }

    /// Runs the child to its end and collects its output, as
    /// [`std::process::Command::output`]: unless set, standard input is
    /// [`Stdio::null`] and standard output and error are piped. Both pipes are read at
    /// once, so a child filling either cannot stall.
    ///
    /// # Errors
    /// As [`spawn`](Command::spawn) and [`Child::wait_with_output`].
    pub fn output(&mut self) -> io::Result<Output> {
        let set = self.set;
        if !set[0] {
            self.inner.stdin(Stdio::null());
        }
        if !set[1] {
            self.inner.stdout(Stdio::piped());
        }
        if !set[2] {
            self.inner.stderr(Stdio::piped());
        }
        let child = self.spawn();
        // Back to what `spawn` and `status` use when nothing is set.
        for (i, was) in set.iter().enumerate() {
            if !was {
                match i {
                    0 => self.inner.stdin(Stdio::inherit()),
                    1 => self.inner.stdout(Stdio::inherit()),
                    _ => self.inner.stderr(Stdio::inherit()),
                };
            }
        }
        child?.wait_with_output()
    }

    /// Runs the child to its end and returns its exit status, as
    /// [`std::process::Command::status`] (the streams inherited unless set).
    ///
    /// # Errors
    /// As [`spawn`](Command::spawn) and [`Child::wait`].
    pub fn status(&mut self) -> io::Result<ExitStatus> {
        self.spawn()?.wait()
    }
}

/// A running or exited child process, as [`std::process::Child`]; its waits park the
/// greenlet. See the [module docs](self) for what dropping it does.
///
/// # Examples
/// ```
/// use gevent_hub::process::{Command, Stdio};
/// use std::os::unix::process::ExitStatusExt;
/// use std::time::Duration;
///
/// // `cat` with a pipe for its input runs until that pipe is closed.
/// let mut child = Command::new("cat").stdin(Stdio::piped()).stdout(Stdio::null()).spawn()?;
/// assert_eq!(child.wait_timeout(Duration::from_millis(10))?, None);
/// child.kill()?;
/// assert_eq!(child.wait()?.signal(), Some(9));
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Child {
    inner: std::process::Child,
    /// How an exit is waited for; `Reaped` once the status is known.
    watch: ExitWatch,
    /// The child's standard input, if piped.
    pub stdin: Option<ChildStdin>,
    /// The child's standard output, if piped.
    pub stdout: Option<ChildStdout>,
    /// The child's standard error, if piped.
    pub stderr: Option<ChildStderr>,
}

enum ExitWatch {
    /// A pidfd, readable once the child has exited.
    Pidfd(Pipe),
    /// No pidfd: a thread blocked in `waitid(WNOWAIT)`, started by the first wait and
    /// kept for the next ones.
    Thread(Option<Arc<ExitThread>>),
    /// The child was reaped: its status is std's to remember.
    Reaped,
}

impl fmt::Debug for Child {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Child")
            .field("pid", &self.inner.id())
            .field(
                "watch",
                &match self.watch {
                    ExitWatch::Pidfd(_) => "pidfd",
                    ExitWatch::Thread(_) => "thread",
                    ExitWatch::Reaped => "reaped",
                },
            )
            .field("stdin", &self.stdin)
            .field("stdout", &self.stdout)
            .field("stderr", &self.stderr)
            .finish()
    }
}

/// `pidfd_open` said `ENOSYS` once: it will not work in this process.
static NO_PIDFD: AtomicBool = AtomicBool::new(false);

/// A pidfd for `pid`, or `None` where the kernel refuses one.
fn pidfd_open(pid: u32) -> Option<OwnedFd> {
    if NO_PIDFD.load(Ordering::Relaxed) {
        return None;
    }
    let pid = libc::pid_t::try_from(pid).ok()?;
    // SAFETY: pidfd_open takes a pid and a flags word and returns a new fd or -1. The
    // pid is our unreaped child's, so it cannot name another process meanwhile.
    let r = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if r < 0 {
        if io::Error::last_os_error().raw_os_error() == Some(libc::ENOSYS) {
            NO_PIDFD.store(true, Ordering::Relaxed);
        }
        return None;
    }
    let fd = RawFd::try_from(r).ok()?;
    // SAFETY: the kernel just made `fd` (close-on-exec) and nothing else owns it.
    Some(unsafe { OwnedFd::from_raw_fd(fd) })
}

impl Child {
    fn new(mut c: std::process::Child) -> io::Result<Child> {
        let pid = c.id();
        let made = (|| {
            let watch = match pidfd_open(pid) {
                Some(fd) => ExitWatch::Pidfd(Pipe::new(fd)?),
                None => ExitWatch::Thread(None),
            };
            let pipe = |fd: Option<OwnedFd>| fd.map(Pipe::new).transpose();
            let stdin = pipe(c.stdin.take().map(OwnedFd::from))?;
            let stdout = pipe(c.stdout.take().map(OwnedFd::from))?;
            let stderr = pipe(c.stderr.take().map(OwnedFd::from))?;
            Ok::<_, io::Error>((watch, stdin, stdout, stderr))
        })();
        match made {
            Ok((watch, stdin, stdout, stderr)) => Ok(Child {
                inner: c,
                watch,
                stdin: stdin.map(ChildStdin),
                stdout: stdout.map(ChildStdout),
                stderr: stderr.map(ChildStderr),
            }),
            Err(e) => {
                // The child runs on with nobody to wait for it: reap it later.
                remember_dropped(pid);
                Err(e)
            }
        }
    }

    /// The child's process id.
    pub fn id(&self) -> u32 {
        self.inner.id()
    }

    /// Sends the child `SIGKILL`, as [`std::process::Child::kill`]. It still has to be
    /// waited for.
    ///
    /// # Errors
    /// As std's (`Ok` if it has already exited).
    pub fn kill(&mut self) -> io::Result<()> {
        self.inner.kill()
    }

    /// The exit status if the child has exited (reaping it), `None` if it still runs.
    /// Never waits.
    ///
    /// # Errors
    /// `waitpid`'s.
    pub fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        let s = self.inner.try_wait()?;
        if s.is_some() {
            // Closes the pidfd (or lets go of the exit thread, which has ended).
            self.watch = ExitWatch::Reaped;
        }
        Ok(s)
    }

    /// Waits for the child to exit and returns its status, parking the greenlet. As
    /// std's, closes the child's standard input first (so a child reading it to its
    /// end can finish). Later calls return the same status.
    ///
    /// # Errors
    /// `waitpid`'s; the hub's (called in the hub, the loop ran out of work).
    ///
    /// # Panics
    /// A kill or a [`Timeout`](crate::Timeout) unwinds from here; the child runs on.
    pub fn wait(&mut self) -> io::Result<ExitStatus> {
        drop(self.stdin.take());
        loop {
            // Without a deadline only an exit ends the wait.
            if let Some(s) = self.wait_until(None)? {
                return Ok(s);
            }
        }
    }

    /// Waits at most `timeout` for the child to exit: `Ok(Some(status))` if it did,
    /// `Ok(None)` if it still runs (gevent's `Popen.wait(timeout)`; std has no such
    /// method). Unlike [`wait`](Child::wait) it leaves standard input open.
    ///
    /// # Errors
    /// As [`wait`](Child::wait).
    pub fn wait_timeout(&mut self, timeout: Duration) -> io::Result<Option<ExitStatus>> {
        match Instant::now().checked_add(timeout) {
            Some(deadline) => self.wait_until(Some(deadline)),
            None => self.wait_until(None),
        }
    }

    /// Waits until the child exits (`Some`) or `deadline` passes (`None`).
    fn wait_until(&mut self, deadline: Option<Instant>) -> io::Result<Option<ExitStatus>> {
        loop {
            if let Some(s) = self.try_wait()? {
                return Ok(Some(s));
            }
            let left = match deadline {
                None => None,
                Some(d) => match d.checked_duration_since(Instant::now()) {
                    Some(l) if !l.is_zero() => Some(l),
                    _ => return Ok(None),
                },
            };
            match &mut self.watch {
                ExitWatch::Pidfd(p) => {
                    match p.state.wait(Direction::Read, left, Closes::Reported) {
                        Ok(()) => {}
                        Err(WaitError::TimedOut) => return Ok(None),
                        Err(e) => return Err(e.into_io(Direction::Read, "child process")),
                    }
                }
                ExitWatch::Thread(watch) => {
                    // First: a wait the hub refuses (in the hub, the thread ending)
                    // starts nothing.
                    let w = Wait::timed("a child process to exit", left)?;
                    let t = match watch {
                        Some(t) => t.clone(),
                        None => watch.insert(watch_exit_on_thread(self.inner.id())?).clone(),
                    };
                    {
                        let mut st = t.lock();
                        match st.done {
                            // Exited: `try_wait` reaps it.
                            Some(Ok(())) => continue,
                            Some(Err(errno)) => return Err(io::Error::from_raw_os_error(errno)),
                            None => st.waker = Some(w.remote_waker()),
                        }
                    }
                    // The waker left behind by a kill is stale (its wait is over).
                    let woken = w.park();
                    t.lock().waker = None;
                    if !woken? {
                        return Ok(None);
                    }
                }
                // Reaped already: `try_wait` above returned its status.
                ExitWatch::Reaped => {}
            }
        }
    }

    /// Closes standard input, reads standard output and error to their ends at once
    /// (neither can stall the child) and waits for it, as
    /// [`std::process::Child::wait_with_output`]. A stream that is not piped comes
    /// back empty.
    ///
    /// # Errors
    /// A read's, or as [`wait`](Child::wait).
    pub fn wait_with_output(mut self) -> io::Result<Output> {
        drop(self.stdin.take());
        let (stdout, stderr) = read2(self.stdout.take(), self.stderr.take())?;
        let status = self.wait()?;
        Ok(Output {
            status,
            stdout,
            stderr,
        })
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if !matches!(self.watch, ExitWatch::Reaped) {
            if let Ok(None) = self.inner.try_wait() {
                remember_dropped(self.inner.id());
            }
        }
    }
}

/// Pids of children dropped before they were reaped (see the module docs).
static DROPPED: Mutex<Vec<libc::pid_t>> = Mutex::new(Vec::new());

fn remember_dropped(pid: u32) {
    if let Ok(pid) = libc::pid_t::try_from(pid) {
        DROPPED.lock().unwrap_or_else(|e| e.into_inner()).push(pid);
    }
}

/// Reaps the dropped children that have exited.
fn reap_dropped() {
    let mut pids = DROPPED.lock().unwrap_or_else(|e| e.into_inner());
    pids.retain(|&pid| {
        let mut status = 0;
        // SAFETY: waitpid with WNOHANG only reaps `pid`, a child of ours whose `Child`
        // is gone (nobody else will wait for it), if it has exited.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        // 0: still running. -1 (ECHILD): reaped by someone else; forget it too.
        r == 0
    });
}

/// What a fallback exit thread shares with its [`Child`].
#[derive(Default)]
struct ExitThread {
    state: Mutex<ExitState>,
}

#[derive(Default)]
struct ExitState {
    /// What `waitid` said, once it returned: exited, or its errno.
    done: Option<Result<(), i32>>,
    /// The wake-up of the wait parked on the exit, while one is.
    waker: Option<crate::hub::RemoteWaker>,
}

impl ExitThread {
    fn lock(&self) -> MutexGuard<'_, ExitState> {
        // Nothing panics while holding it; a poisoned lock has consistent data.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The fallback exit watch: a detached thread that returns once `pid` has exited,
/// leaving it to be reaped, and wakes the wait parked on it then (see the module
/// docs). It holds no reference on the hub's loop, and nobody joins it.
fn watch_exit_on_thread(pid: u32) -> io::Result<Arc<ExitThread>> {
    let pid = libc::id_t::from(pid);
    let watch = Arc::new(ExitThread::default());
    let w = watch.clone();
    std::thread::Builder::new()
        .name("gevent-child-exit".to_owned())
        // It only calls waitid: the smallest stack std allows is plenty.
        .stack_size(64 * 1024)
        .spawn(move || {
            let r = loop {
                // SAFETY: a zeroed siginfo_t is a valid out-parameter for waitid.
                let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
                // SAFETY: waitid writes into `info`; WNOWAIT leaves the child unreaped,
                // so the pid stays the child's until the hub's thread reaps it.
                let r = unsafe {
                    libc::waitid(libc::P_PID, pid, &mut info, libc::WEXITED | libc::WNOWAIT)
                };
                match crate::sys::cvt(r) {
                    Ok(_) => break Ok(()),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => break Err(e.raw_os_error().unwrap_or(libc::ECHILD)),
                }
            };
            let waker = {
                let mut st = w.lock();
                st.done = Some(r);
                st.waker.take()
            };
            if let Some(k) = waker {
                // `false`: the hub is gone; nobody waits any more.
                let _ = k.wake();
            }
        })
        .map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot start a thread to wait for child {pid}: {e}"),
            )
        })?;
    Ok(watch)
}

/// Reads both pipes to their ends, whichever has data, parking on both when neither
/// has.
fn read2(out: Option<ChildStdout>, err: Option<ChildStderr>) -> io::Result<(Vec<u8>, Vec<u8>)> {
    let mut pipes = [out.map(|p| p.0), err.map(|p| p.0)];
    let mut bufs = [Vec::new(), Vec::new()];
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let mut waits = Vec::with_capacity(2);
        for (slot, buf) in pipes.iter_mut().zip(&mut bufs) {
            let Some(p) = slot else { continue };
            loop {
                match p.try_read(&mut chunk) {
                    Ok(0) => {
                        *slot = None;
                        break;
                    }
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        waits.push((p.state.clone(), Direction::Read));
                        break;
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        if waits.is_empty() {
            let [o, e] = bufs;
            return Ok((o, e));
        }
        readiness::wait_any(&waits, None, Closes::Reported)
            .map_err(|e| e.into_io(Direction::Read, "pipe"))?;
    }
}

/// Retires an fd's state in the readiness core when dropped: declared before the fd,
/// so that it runs before the fd is closed.
struct Retire(Rc<FdState>);

impl Drop for Retire {
    fn drop(&mut self) {
        self.0.retire();
    }
}

/// Our non-blocking end of a pipe to a child (or a pidfd), waited on in the core.
struct Pipe {
    state: Rc<FdState>,
    _retire: Retire,
    fd: OwnedFd,
}

impl Pipe {
    fn new(fd: OwnedFd) -> io::Result<Pipe> {
        set_nonblocking(fd.as_raw_fd(), true)?;
        let state = readiness::adopt(fd.as_raw_fd());
        Ok(Pipe {
            _retire: Retire(state.clone()),
            state,
            fd,
        })
    }

    /// One `read(2)`, never waiting (`WouldBlock` when empty).
    fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        // SAFETY: reads at most `buf.len()` bytes into `buf` from an fd we own.
        let r = unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        crate::sys::cvt(r).map(|n| n as usize)
    }

    fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.retry(Direction::Read, || self.try_read(buf))
    }

    fn write(&self, buf: &[u8]) -> io::Result<usize> {
        self.retry(Direction::Write, || {
            // SAFETY: writes at most `buf.len()` bytes from `buf` to an fd we own.
            let r = unsafe { libc::write(self.fd.as_raw_fd(), buf.as_ptr().cast(), buf.len()) };
            crate::sys::cvt(r).map(|n| n as usize)
        })
    }

    /// Retries `op` until it does not say `EAGAIN`, waiting in `dir` in between.
    fn retry(
        &self,
        dir: Direction,
        mut op: impl FnMut() -> io::Result<usize>,
    ) -> io::Result<usize> {
        loop {
            match op() {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self
                    .state
                    .wait(dir, None, Closes::Reported)
                    .map_err(|e| e.into_io(dir, "pipe"))?,
                r => return r,
            }
        }
    }

    /// The fd, out of the core and blocking again, as std hands pipes on.
    fn into_blocking(self) -> OwnedFd {
        let Pipe { state, _retire, fd } = self;
        drop((state, _retire));
        // Best effort: the fd is still usable (non-blocking) if this fails.
        let _ = set_nonblocking(fd.as_raw_fd(), false);
        fd
    }
}

fn set_nonblocking(fd: RawFd, on: bool) -> io::Result<()> {
    // SAFETY: F_GETFL only reads the file status flags of an fd we own.
    let flags = crate::sys::cvt(unsafe { libc::fcntl(fd, libc::F_GETFL) })?;
    let want = if on {
        flags | libc::O_NONBLOCK
    } else {
        flags & !libc::O_NONBLOCK
    };
    if want != flags {
        // SAFETY: F_SETFL changes the status flags of an fd we own (our end of the
        // pipe: the child's end is a file description of its own).
        crate::sys::cvt(unsafe { libc::fcntl(fd, libc::F_SETFL, want) })?;
    }
    Ok(())
}

macro_rules! pipe_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        pub struct $name(Pipe);

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($name)).field("fd", &self.0.fd.as_raw_fd()).finish()
            }
        }

        impl AsFd for $name {
            fn as_fd(&self) -> BorrowedFd<'_> {
                self.0.fd.as_fd()
            }
        }

        impl AsRawFd for $name {
            fn as_raw_fd(&self) -> RawFd {
                self.0.fd.as_raw_fd()
            }
        }

        /// The fd, blocking again (the readiness core forgets it).
        impl From<$name> for OwnedFd {
            fn from(p: $name) -> OwnedFd {
                p.0.into_blocking()
            }
        }

        /// For another child's standard stream (a pipeline), blocking again as std's.
        impl From<$name> for Stdio {
            fn from(p: $name) -> Stdio {
                Stdio::from(OwnedFd::from(p))
            }
        }
    };
}

pipe_type!(
    /// The child's standard input ([`Child::stdin`]), as [`std::process::ChildStdin`]:
    /// a write that would block parks the greenlet. Dropping it closes the pipe, so
    /// the child reads EOF.
    ChildStdin
);
pipe_type!(
    /// The child's standard output ([`Child::stdout`]), as
    /// [`std::process::ChildStdout`]: a read that would block parks the greenlet.
    ChildStdout
);
pipe_type!(
    /// The child's standard error ([`Child::stderr`]), as
    /// [`std::process::ChildStderr`]: a read that would block parks the greenlet.
    ChildStderr
);

impl Write for ChildStdin {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Write for &ChildStdin {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Read for ChildStdout {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl Read for ChildStderr {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

#[cfg(test)]
mod tests {
    //! The fallback without a pidfd, which a kernel with `pidfd_open` never takes: it
    //! is forced here on children spawned through std.

    use super::*;
    use std::os::unix::process::ExitStatusExt;
    use std::sync::{mpsc, Arc};

    const WATCHDOG: Duration = Duration::from_secs(10);

    /// Pids a hung test body's children have: killed before the watchdog fails the
    /// test, so that the stuck thread can end.
    type Pids = Arc<Mutex<Vec<u32>>>;

    /// Runs `body` on a thread of its own and fails the test if it has not returned
    /// within [`WATCHDOG`]: a call that blocks the thread (which a gevent `Timeout`
    /// could not end) fails the test instead of hanging it.
    fn on_thread(body: impl FnOnce(&Pids) + Send + 'static) {
        let pids = Pids::default();
        let p = pids.clone();
        let (tx, rx) = mpsc::channel();
        let h = std::thread::spawn(move || {
            body(&p);
            let _ = tx.send(());
        });
        match rx.recv_timeout(WATCHDOG) {
            Ok(()) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => match h.join() {
                Ok(()) => unreachable!("the body returned without reporting"),
                Err(p) => std::panic::resume_unwind(p),
            },
            Err(mpsc::RecvTimeoutError::Timeout) => {
                kill_all(&pids);
                panic!("the test body hung for {WATCHDOG:?}: a call blocked its thread");
            }
        }
    }

    fn kill_all(pids: &Pids) {
        for &pid in pids.lock().unwrap().iter() {
            // SAFETY: kill only sends a signal; the pid is a child of ours, unreaped
            // (a dropped `Child` is remembered, not reaped, until the next spawn).
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
        }
    }

    /// A child of `cmd` whose waits take the fallback; its pid noted in `pids`.
    fn without_pidfd(cmd: &mut std::process::Command, pids: &Pids) -> Child {
        let mut child = Child::new(cmd.spawn().unwrap()).unwrap();
        child.watch = ExitWatch::Thread(None);
        pids.lock().unwrap().push(child.id());
        child
    }

    /// Whether a fallback wait has started watching the child's exit.
    fn watch_started(child: &Child) -> bool {
        matches!(child.watch, ExitWatch::Thread(Some(_)))
    }

    fn sleeper() -> std::process::Command {
        let mut c = std::process::Command::new("sleep");
        c.arg("30");
        c
    }

    fn cat() -> std::process::Command {
        let mut c = std::process::Command::new("cat");
        c.stdin(Stdio::piped()).stdout(Stdio::null());
        c
    }

    #[test]
    fn without_a_pidfd_a_wait_runs_on_a_thread_of_its_own() {
        crate::with_timeout(Duration::from_secs(10), || {
            let c = std::process::Command::new("cat")
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .spawn()
                .unwrap();
            let mut child = Child::new(c).unwrap();
            child.watch = ExitWatch::Thread(None);
            assert_eq!(child.wait_timeout(Duration::from_millis(1)).unwrap(), None);
            let input = child.stdin.take().unwrap();
            let closer = crate::spawn(move || drop(input));
            assert!(child.wait().unwrap().success());
            closer.join().unwrap();
            assert!(matches!(child.watch, ExitWatch::Reaped));
        })
        .unwrap();
    }

    /// Fails (killing `pids` first) unless thread `t` ends, its exit included, within
    /// the watchdog: `join`, not `is_finished`, since the thread's exit hooks run after
    /// its closure.
    fn ends_within_watchdog(t: std::thread::JoinHandle<()>, pids: &Pids, hung: &str) {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || tx.send(t.join().is_ok()));
        match rx.recv_timeout(WATCHDOG) {
            Ok(ok) => assert!(ok, "the thread panicked"),
            Err(_) => {
                kill_all(pids);
                panic!("hung: {hung}");
            }
        }
    }

    #[test]
    fn a_thread_that_drops_a_waited_child_ends_without_waiting_for_it() {
        let pids = Pids::default();
        let p = pids.clone();
        let t = std::thread::spawn(move || {
            let mut child = without_pidfd(&mut sleeper(), &p);
            assert_eq!(child.wait_timeout(Duration::from_millis(1)).unwrap(), None);
            drop(child);
        });
        ends_within_watchdog(
            t,
            &pids,
            "the thread's exit waited for the child it had dropped",
        );
        // The child ran on; a later spawn reaps it.
        kill_all(&pids);
    }

    #[test]
    fn a_thread_ends_while_a_greenlet_waits_without_a_pidfd() {
        let pids = Pids::default();
        let p = pids.clone();
        let t = std::thread::spawn(move || {
            // One wait completes on this thread...
            let mut child = without_pidfd(&mut cat(), &p);
            drop(child.stdin.take());
            assert!(child.wait().unwrap().success());
            // ...and another is still parked when the thread's main returns: the
            // thread's exit ends it without waiting for the child.
            let mut child = without_pidfd(&mut sleeper(), &p);
            let parked = crate::spawn(move || child.wait());
            // One turn of the hub: the spawned greenlet runs and parks in its wait.
            crate::sleep(Duration::ZERO);
            assert!(!parked.ready());
        });
        ends_within_watchdog(
            t,
            &pids,
            "the thread's exit waited for a child a greenlet waited on",
        );
        kill_all(&pids);
    }

    #[test]
    fn a_dropped_child_does_not_keep_the_loop_alive() {
        on_thread(|pids| {
            let mut child = without_pidfd(&mut sleeper(), pids);
            assert_eq!(child.wait_timeout(Duration::from_millis(1)).unwrap(), None);
            drop(child);
            // Nothing can set it, and nothing else keeps the loop running.
            let e = crate::Event::new().wait().unwrap_err();
            assert!(matches!(e, crate::Error::WouldBlockForever(_)), "{e:?}");
            kill_all(pids);
        });
    }

    #[test]
    fn twelve_children_waited_for_at_once_without_a_pidfd_all_end() {
        on_thread(|pids| {
            // More than the default pool has threads (10).
            let mut inputs = Vec::new();
            let mut waits = Vec::new();
            for _ in 0..12 {
                let mut child = without_pidfd(&mut cat(), pids);
                inputs.push(child.stdin.take().unwrap());
                waits.push(crate::spawn(move || child.wait()));
            }
            // One turn of the hub: every spawned greenlet runs and parks in its wait.
            crate::sleep(Duration::ZERO);
            // The last ones first: their waits began last.
            while let Some(input) = inputs.pop() {
                drop(input);
                let w = waits.pop().unwrap();
                let status = crate::with_timeout(Duration::from_secs(5), || w.join())
                    .unwrap_or_else(|e| {
                        panic!("the wait for child {} did not end: {e}", waits.len() + 1)
                    })
                    .unwrap()
                    .unwrap();
                assert!(status.success());
            }
        });
    }

    #[test]
    fn a_fallback_wait_in_the_hub_is_refused_before_anything_starts() {
        on_thread(|pids| {
            let child = Rc::new(std::cell::RefCell::new(without_pidfd(&mut sleeper(), pids)));
            let out = Rc::new(std::cell::RefCell::new(None));
            let ran = crate::Event::new();
            let (c2, o2, r2) = (child.clone(), out.clone(), ran.clone());
            let t = crate::get_hub()
                .get_loop()
                .timer(Duration::from_millis(1), Duration::ZERO);
            // A watcher callback runs in the hub, which cannot wait.
            t.start(move |_, _| {
                *o2.borrow_mut() = Some(c2.borrow_mut().wait_timeout(Duration::from_millis(1)));
                r2.set();
            })
            .unwrap();
            ran.wait().unwrap();
            let e = out.borrow_mut().take().unwrap().unwrap_err();
            assert!(e.to_string().contains("in the hub"), "{e}");
            let mut child = child.borrow_mut();
            assert!(!watch_started(&child), "the refused wait started a watch");
            child.kill().unwrap();
            assert!(child.wait().unwrap().signal().is_some());
        });
    }
}
