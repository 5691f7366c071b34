//! Greenlet stacks: mmap'd, a guard page below, committed lazily, pooled for reuse.
//!
//! A stack comes from `context`'s `ProtectedFixedSizeStack`: one anonymous mapping
//! whose lowest page is `PROT_NONE`. The kernel commits pages only when they are
//! touched, so a 256 KiB stack of a greenlet that uses 8 KiB costs 8 KiB of memory.
//! Finished greenlets hand their stack back to a per-thread pool, so spawning does not
//! `mmap` in steady state; the pool keeps at most [`POOL_MAX`] stacks.
//!
//! ## Stack overflow
//! Running into the guard page raises `SIGSEGV` on a stack that has no room left. A
//! handler installed once per process (running on the thread's alternate signal stack)
//! checks whether the fault address is in the current greenlet's guard page; if it is,
//! it prints which greenlet overflowed and aborts. Any other fault is passed on to the
//! handler that was there before (Rust's own, which reports main-stack overflows).
//!
//! ## Valgrind
//! Every stack is registered with valgrind (`VALGRIND_STACK_REGISTER`) so that memcheck
//! understands stack switches instead of reporting them as wild accesses. Outside
//! valgrind the client request is a handful of no-op instructions.

use context::stack::{ProtectedFixedSizeStack, Stack};
use std::cell::{Cell, RefCell};
use std::sync::Once;

/// Default virtual size of a greenlet stack.
pub const DEFAULT_STACK_SIZE: usize = 256 * 1024;
/// Stacks kept for reuse per thread, per size.
pub const POOL_MAX: usize = 256;

/// A greenlet stack with its valgrind registration.
pub(crate) struct GreenletStack {
    stack: ProtectedFixedSizeStack,
    valgrind_id: usize,
}

impl GreenletStack {
    fn new(size: usize) -> std::io::Result<GreenletStack> {
        let stack =
            ProtectedFixedSizeStack::new(size).map_err(|e| std::io::Error::other(e.to_string()))?;
        let valgrind_id = valgrind::stack_register(stack.bottom() as usize, stack.top() as usize);
        Ok(GreenletStack { stack, valgrind_id })
    }

    pub(crate) fn stack(&self) -> &Stack {
        &self.stack
    }

    /// The usable size (without the guard page).
    pub(crate) fn size(&self) -> usize {
        self.stack.len()
    }

    /// The guard page: `[start, end)`.
    pub(crate) fn guard(&self) -> (usize, usize) {
        let bottom = self.stack.bottom() as usize;
        (bottom - page_size(), bottom)
    }
}

impl Drop for GreenletStack {
    fn drop(&mut self) {
        valgrind::stack_deregister(self.valgrind_id);
    }
}

fn page_size() -> usize {
    static PAGE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let p = PAGE.load(std::sync::atomic::Ordering::Relaxed);
    if p != 0 {
        return p;
    }
    // SAFETY: sysconf has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    let p = if p > 0 { p as usize } else { 4096 };
    PAGE.store(p, std::sync::atomic::Ordering::Relaxed);
    p
}

thread_local! {
    // No destructor: the greenlet layer's thread teardown frees it last, explicitly
    // (`release_thread_pool`), so it never depends on thread-local destruction order.
    static POOL: std::mem::ManuallyDrop<RefCell<Vec<GreenletStack>>> =
        const { std::mem::ManuallyDrop::new(RefCell::new(Vec::new())) };
    static ALLOCATED: Cell<usize> = const { Cell::new(0) };
}

/// Frees this thread's pooled stacks: the last step of its teardown.
pub(crate) fn release_thread_pool() {
    drop(POOL.with(|p| std::mem::take(&mut *p.borrow_mut())));
}

/// A stack of at least `size` bytes, from the pool when one of that size is there.
pub(crate) fn take(size: usize) -> std::io::Result<GreenletStack> {
    install_overflow_handler();
    let want = round_up(size.max(16 * 1024));
    if let Some(s) = POOL.with(|p| {
        let mut p = p.borrow_mut();
        let i = p.iter().rposition(|s| s.size() == want)?;
        Some(p.swap_remove(i))
    }) {
        return Ok(s);
    }
    let s = GreenletStack::new(want)?;
    ALLOCATED.with(|a| a.set(a.get() + 1));
    Ok(s)
}

/// Returns a stack that no code is running on any more.
pub(crate) fn give_back(s: GreenletStack) {
    // If the thread's pool is already gone (thread exit), the closure is dropped
    // unrun and the stack with it.
    let _ = POOL.try_with(move |p| {
        let mut p = p.borrow_mut();
        if p.len() < POOL_MAX {
            p.push(s);
        }
    });
}

fn round_up(n: usize) -> usize {
    let p = page_size();
    n.div_ceil(p) * p
}

/// Stack statistics for this thread: `(mapped by this thread so far, in the pool now)`.
pub fn stats() -> (usize, usize) {
    (ALLOCATED.with(Cell::get), POOL.with(|p| p.borrow().len()))
}

/// Frees the pooled stacks of this thread.
pub fn trim_pool() {
    POOL.with(|p| p.borrow_mut().clear());
}

// ---------------------------------------------------------------------------------
// Overflow detection.

/// What the SIGSEGV handler needs to know about the running greenlet. Written on every
/// switch (two stores); read only by the signal handler.
#[derive(Clone, Copy)]
pub(crate) struct RunningInfo {
    pub(crate) guard_lo: usize,
    pub(crate) guard_hi: usize,
    pub(crate) id: u64,
    /// Pointer and length of the greenlet's name; the name is immutable and outlives
    /// the greenlet's time on the CPU.
    pub(crate) name: (*const u8, usize),
}

thread_local! {
    static RUNNING: Cell<RunningInfo> = const {
        Cell::new(RunningInfo { guard_lo: 0, guard_hi: 0, id: 0, name: (std::ptr::null(), 0) })
    };
}

pub(crate) fn set_running(info: RunningInfo) {
    RUNNING.with(|r| r.set(info));
}

static mut PREV_SEGV: std::mem::MaybeUninit<libc::sigaction> = std::mem::MaybeUninit::zeroed();
static mut PREV_BUS: std::mem::MaybeUninit<libc::sigaction> = std::mem::MaybeUninit::zeroed();

fn install_overflow_handler() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: installing a signal handler; the previous ones are saved before
        // ours can run (the Once finishes before any greenlet stack exists).
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = overflow_handler as *const () as usize;
            sa.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(libc::SIGSEGV, &sa, (&raw mut PREV_SEGV).cast());
            libc::sigaction(libc::SIGBUS, &sa, (&raw mut PREV_BUS).cast());
        }
    });
    ensure_altstack();
}

thread_local! {
    static ALTSTACK: Cell<bool> = const { Cell::new(false) };
}

/// The handler must run on an alternate signal stack: the greenlet's is full. Rust's
/// runtime gives its own threads one; other threads get one here (leaked with the thread).
fn ensure_altstack() {
    if ALTSTACK.with(Cell::get) {
        return;
    }
    ALTSTACK.with(|a| a.set(true));
    // SAFETY: querying and, if absent, installing this thread's alternate stack.
    unsafe {
        let mut old: libc::stack_t = std::mem::zeroed();
        libc::sigaltstack(std::ptr::null(), &mut old);
        if old.ss_flags & libc::SS_DISABLE == 0 {
            return;
        }
        let size = libc::SIGSTKSZ.max(64 * 1024);
        let mem = libc::mmap(
            std::ptr::null_mut(),
            size,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        if mem == libc::MAP_FAILED {
            return;
        }
        let st = libc::stack_t {
            ss_sp: mem,
            ss_flags: 0,
            ss_size: size,
        };
        libc::sigaltstack(&st, std::ptr::null_mut());
    }
}

extern "C" fn overflow_handler(
    sig: libc::c_int,
    info: *mut libc::siginfo_t,
    ctx: *mut libc::c_void,
) {
    // SAFETY: called by the kernel with a valid siginfo; reads a thread-local Cell with
    // a const initialiser (no lazy init, no allocation) and writes to stderr with write(2).
    unsafe {
        let addr = (*info).si_addr() as usize;
        let r = RUNNING.try_with(Cell::get).ok();
        if let Some(r) = r {
            if r.guard_hi != 0 && addr >= r.guard_lo && addr < r.guard_hi {
                let mut buf = [0u8; 256];
                let mut n = 0;
                let mut put = |s: &[u8]| {
                    for &b in s {
                        if n < buf.len() {
                            buf[n] = b;
                            n += 1;
                        }
                    }
                };
                let mut digits = [0u8; 20];
                let mut i = digits.len();
                let mut id = r.id;
                loop {
                    i -= 1;
                    digits[i] = b'0' + (id % 10) as u8;
                    id /= 10;
                    if id == 0 {
                        break;
                    }
                }
                put(b"\ngevent: greenlet '");
                if r.name.0.is_null() {
                    put(b"Greenlet-");
                    put(&digits[i..]);
                } else {
                    put(std::slice::from_raw_parts(r.name.0, r.name.1.min(120)));
                }
                put(b"' (id ");
                put(&digits[i..]);
                put(b") has overflowed its stack; spawn it with a larger stack_size\n");
                libc::write(2, buf.as_ptr().cast(), n);
                libc::abort();
            }
        }
        // Not ours: hand over to the previous handler.
        let prev = if sig == libc::SIGBUS {
            (&raw const PREV_BUS)
        } else {
            (&raw const PREV_SEGV)
        };
        let prev = &*(*prev).as_ptr();
        if prev.sa_sigaction == libc::SIG_DFL || prev.sa_sigaction == libc::SIG_IGN {
            libc::signal(sig, libc::SIG_DFL);
        } else if prev.sa_flags & libc::SA_SIGINFO != 0 {
            let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                std::mem::transmute(prev.sa_sigaction);
            f(sig, info, ctx);
        } else {
            let f: extern "C" fn(libc::c_int) = std::mem::transmute(prev.sa_sigaction);
            f(sig);
        }
    }
}

// ---------------------------------------------------------------------------------
// Valgrind client requests (the documented "special instruction" sequence). A no-op
// when not running under valgrind.

mod valgrind {
    const STACK_REGISTER: usize = 0x1501;
    const STACK_DEREGISTER: usize = 0x1502;

    #[cfg(target_arch = "x86_64")]
    fn request(default: usize, args: [usize; 6]) -> usize {
        let mut result = default;
        // SAFETY: the rotations of rdi add up to 128 bits, leaving it unchanged, and
        // `xchg rbx, rbx` is a no-op; valgrind recognises the sequence and reads the
        // argument block through rax, returning its answer in rdx.
        unsafe {
            std::arch::asm!(
                "rol rdi, 3",
                "rol rdi, 13",
                "rol rdi, 61",
                "rol rdi, 51",
                "xchg rbx, rbx",
                inout("rdx") result,
                in("rax") args.as_ptr(),
                options(nostack),
            );
        }
        result
    }

    #[cfg(not(target_arch = "x86_64"))]
    fn request(default: usize, _args: [usize; 6]) -> usize {
        default
    }

    pub(super) fn stack_register(lo: usize, hi: usize) -> usize {
        request(0, [STACK_REGISTER, lo, hi, 0, 0, 0])
    }

    pub(super) fn stack_deregister(id: usize) {
        request(0, [STACK_DEREGISTER, id, 0, 0, 0, 0]);
    }
}
