//! Greenlet stacks: carved from large mappings, a guard page below each, committed
//! lazily, pooled for reuse.
//!
//! ## Why chunks
//! Linux limits the number of memory mappings (VMAs) of a process (`vm.max_map_count`,
//! 65530 by default). A stack that is its own mapping with an `mprotect`ed guard page
//! costs two, which caps a process at about 32,700 greenlet stacks. So stacks are
//! carved from *chunks*: one anonymous mapping holds K slots of one size class (K = 64
//! for the default 256 KiB stack, one slot for stacks over 8 MiB), and each slot is a
//! guard page followed by the usable stack:
//!
//! ```text
//!   one chunk = one mmap = one VMA                                    high addresses ->
//!   ┌───────┬──────────────────┬───────┬──────────────────┬─────┬───────┬──────────────────┐
//!   │ guard │ usable stack 0   │ guard │ usable stack 1   │ ... │ guard │ usable stack K-1 │
//!   └───────┴──────────────────┴───────┴──────────────────┴─────┴───────┴──────────────────┘
//!             stack 0 grows down <- top   stack 1 grows down <- top
//! ```
//!
//! The guard pages are *guard markers* (`madvise(MADV_GUARD_INSTALL)`, Linux 6.13): the
//! kernel records them in the page tables, so they do not split the mapping; touching
//! one raises `SIGSEGV` with the faulting address in the guard page, exactly like a
//! `PROT_NONE` page. On an older kernel (the advice is refused) the process falls back,
//! once, to `mprotect(PROT_NONE)` guards with one slot per chunk: the old layout, two
//! mappings per stack. (With guard regions the kernel even merges neighbouring chunks:
//! 100,000 parked greenlets add about three mappings.) When the kernel refuses a
//! mapping because the process has reached `vm.max_map_count`, spawning fails with an
//! error that says so, how many stacks this thread has, and how to raise the limit.
//!
//! The kernel commits pages only when they are touched, so a 256 KiB stack of a
//! greenlet that uses 8 KiB costs 8 KiB of memory. Chunks of small stacks are mapped
//! with `MAP_NORESERVE` (no commit charge for untouched stack); a stack over 8 MiB gets
//! its own mapping without it, so the kernel's overcommit policy refuses absurd sizes.
//!
//! ## The pool
//! A finished greenlet's slot goes back to this thread's pool. Up to [`POOL_MAX`] freed
//! slots stay *warm* (their touched pages stay committed) and are handed out first, so
//! spawning in steady state makes no system call. A slot freed beyond that is *cold*:
//! its pages are released with `MADV_DONTNEED` (guard markers survive it) and it stays
//! available. A chunk whose slots are all cold is unmapped. Every `GreenletStack`
//! holds its chunk (`Rc`), so a stack dropped late frees correctly whatever happened to
//! the pool meanwhile.
//!
//! The pool lives in a thread-local without a destructor (it stays usable while other
//! thread-locals are torn down at thread exit); `release_thread_pool` empties it.
//!
//! ## Stack overflow
//! Running into the guard page raises `SIGSEGV` on a stack that has no room left. A
//! handler installed once per process (running on the thread's alternate signal stack)
//! checks whether the fault address is in the current greenlet's guard page; if it is,
//! it prints which greenlet overflowed and aborts. Any other fault is passed on to the
//! handler that was there before (Rust's own, which reports main-stack overflows).
//!
//! ## Valgrind
//! Every stack handed out is registered with valgrind (`VALGRIND_STACK_REGISTER`) so
//! that memcheck understands stack switches instead of reporting them as wild accesses.
//! Outside valgrind the client request is a handful of no-op instructions.

use context::stack::Stack;
use std::cell::{Cell, RefCell};
use std::io;
use std::io::Read;
use std::mem::ManuallyDrop;
use std::rc::Rc;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::OnceLock;

/// Default virtual size of a greenlet stack.
pub const DEFAULT_STACK_SIZE: usize = 256 * 1024;
/// Freed stacks kept warm (memory committed) for reuse per thread.
pub const POOL_MAX: usize = 256;

/// Smallest usable stack handed out, whatever was asked for.
const MIN_STACK_SIZE: usize = 16 * 1024;
/// Aimed-at size of a chunk: it holds this much usable stack (64 default stacks).
const CHUNK_TARGET: usize = 16 << 20;
/// Stacks larger than this get a chunk of their own, mapped without `MAP_NORESERVE`.
const LARGE_STACK: usize = CHUNK_TARGET / 2;
/// Most slots in one chunk (reached by the smallest stacks).
const MAX_SLOTS: usize = 1024;
/// Linux's `MADV_GUARD_INSTALL` (6.13, `include/uapi/asm-generic/mman-common.h`); the
/// libc crate does not define it yet.
const MADV_GUARD_INSTALL: libc::c_int = 102;

/// `-1` from a libc call as the `errno` it set (the crate's helper, without the value).
fn cvt(r: libc::c_int) -> io::Result<()> {
    crate::sys::cvt(r).map(drop)
}

fn page_size() -> usize {
    static PAGE: AtomicUsize = AtomicUsize::new(0);
    let p = PAGE.load(Ordering::Relaxed);
    if p != 0 {
        return p;
    }
    // SAFETY: sysconf has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    let p = if p > 0 { p as usize } else { 4096 };
    PAGE.store(p, Ordering::Relaxed);
    p
}

// ---------------------------------------------------------------------------------
// Guard pages.

/// How a chunk's guard pages are made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum GuardKind {
    /// `MADV_GUARD_INSTALL` markers: the chunk stays one mapping.
    Marker,
    /// `mprotect(PROT_NONE)`: the guard page is a mapping of its own.
    Mprotect,
}

const UNDECIDED: u8 = 0;
const MARKER: u8 = 1;
const MPROTECT: u8 = 2;

/// The process-wide choice of [`GuardKind`], made by the first chunk mapped.
static GUARD_KIND: AtomicU8 = AtomicU8::new(UNDECIDED);

/// The kind of guard new chunks get: guard markers if this kernel has them (asked once
/// per process, on a page mapped for the purpose), else `mprotect`.
fn guard_kind() -> io::Result<GuardKind> {
    match GUARD_KIND.load(Ordering::Relaxed) {
        MARKER => return Ok(GuardKind::Marker),
        MPROTECT => return Ok(GuardKind::Mprotect),
        _ => {}
    }
    let page = page_size();
    // SAFETY: a fresh private anonymous mapping; no existing memory is affected.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            page,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(
            e.kind(),
            format!("cannot map a page to test for guard regions: {e}"),
        ));
    }
    let probe = install_marker(p.cast(), page);
    // SAFETY: `p` is the page mapped above, used by nothing else.
    let r = cvt(unsafe { libc::munmap(p, page) });
    // Unmapping a whole mapping needs no split, so it cannot fail; if it did, one page
    // of address space would stay reserved.
    debug_assert!(r.is_ok(), "munmap of the guard probe page: {r:?}");
    let code = match probe {
        Ok(()) => MARKER,
        Err(e) if e.raw_os_error() == Some(libc::ENOMEM) => {
            return Err(io::Error::new(
                e.kind(),
                format!("cannot install a guard page: {e}"),
            ))
        }
        // EINVAL before Linux 6.13; anything else (a seccomp filter) means the same.
        Err(_) => MPROTECT,
    };
    // A racing thread decides the same (or was forced to `mprotect` by a test): keep
    // whatever is there.
    let _ = GUARD_KIND.compare_exchange(UNDECIDED, code, Ordering::Relaxed, Ordering::Relaxed);
    Ok(if GUARD_KIND.load(Ordering::Relaxed) == MARKER {
        GuardKind::Marker
    } else {
        GuardKind::Mprotect
    })
}

/// True if greenlet stacks get their guard pages as guard regions (Linux 6.13 and
/// later): stacks share mappings, 64 per mapping at the default size. False if each
/// stack is two mappings (a stack and its `PROT_NONE` guard page), so that
/// `vm.max_map_count` limits a process to about half as many stacks.
///
/// # Errors
/// The first call in a process maps a page to ask the kernel, which may fail.
pub fn guard_regions() -> io::Result<bool> {
    guard_kind().map(|k| k == GuardKind::Marker)
}

/// Makes new stacks use `mprotect(PROT_NONE)` guard pages (and one mapping per stack),
/// as on a kernel without guard regions. Stacks already mapped keep their guards.
/// For tests and benchmarks of the fallback layout.
#[doc(hidden)]
pub fn force_mprotect_guards() {
    GUARD_KIND.store(MPROTECT, Ordering::Relaxed);
}

/// `madvise(MADV_GUARD_INSTALL)` on `[addr, addr + len)`, retried while the kernel asks
/// for it (`EAGAIN`, `EINTR`).
fn install_marker(addr: *mut u8, len: usize) -> io::Result<()> {
    loop {
        // SAFETY: `[addr, addr + len)` is a private anonymous mapping of ours whose
        // contents nobody uses; the advice only replaces its pages by guard markers.
        let r = cvt(unsafe { libc::madvise(addr.cast(), len, MADV_GUARD_INSTALL) });
        match r {
            Err(e) if matches!(e.raw_os_error(), Some(libc::EAGAIN | libc::EINTR)) => {}
            r => return r,
        }
    }
}

// ---------------------------------------------------------------------------------
// Chunks.

/// One mapping of `slots` stack slots of one size. Unmapped when the last `Rc` to it
/// goes: the pool's and those of the stacks handed out.
struct Chunk {
    base: *mut u8,
    len: usize,
    /// Usable bytes of each slot (its guard page not included).
    usable: usize,
    slots: usize,
    /// Slots handed out (in a `GreenletStack`).
    in_use: Cell<usize>,
    /// Slots in the pool's warm list.
    warm: Cell<usize>,
    /// Free slots whose pages are released (never used, or `MADV_DONTNEED`ed); taken
    /// from the end. `in_use + warm + cold.len() == slots` while the pool holds it.
    cold: RefCell<Vec<u32>>,
}

/// What a chunk is, for error messages: "a 64 TiB greenlet stack", or
/// "16.2 MiB for 64 greenlet stacks of 256 KiB".
fn describe(usable: usize, slots: usize, len: usize) -> String {
    if slots == 1 {
        format!("a {} greenlet stack", human(usable))
    } else {
        format!(
            "{} for {slots} greenlet stacks of {}",
            human(len),
            human(usable)
        )
    }
}

/// Bytes in binary units, one decimal unless exact: "256 KiB", "16.2 MiB".
fn human(n: usize) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if n < 1024 {
        return format!("{n} bytes");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if v.fract() == 0.0 {
        format!("{v:.0} {}", UNITS[unit])
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// How many slots a chunk of stacks of `usable` bytes holds.
fn slots_per_chunk(usable: usize, kind: GuardKind) -> usize {
    match kind {
        GuardKind::Marker => (CHUNK_TARGET / usable).clamp(1, MAX_SLOTS),
        // Every guard page is a mapping anyway: nothing to gain from sharing one, and
        // unused slots would cost two mappings each.
        GuardKind::Mprotect => 1,
    }
}

impl Chunk {
    /// Maps a chunk of `slots` slots of `usable` bytes each (page multiples; the caller
    /// checked that the whole length fits in an `isize`) and guards every slot.
    /// `stacks` (this thread's, in use and pooled) is only for the error message.
    fn map(
        usable: usize,
        slots: usize,
        kind: GuardKind,
        stacks: (usize, usize),
    ) -> io::Result<Chunk> {
        let page = page_size();
        let len = (usable + page) * slots;
        let mut flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS;
        if usable <= LARGE_STACK {
            flags |= libc::MAP_NORESERVE;
        }
        let map_error = |e: io::Error| map_error(&describe(usable, slots, len), e, kind, stacks);
        // SAFETY: a fresh private anonymous mapping; no existing memory is affected.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                flags,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(map_error(io::Error::last_os_error()));
        }
        let chunk = Chunk {
            base: base.cast(),
            len,
            usable,
            slots,
            in_use: Cell::new(0),
            warm: Cell::new(0),
            // Handed out from the lowest address up.
            cold: RefCell::new((0..slots as u32).rev().collect()),
        };
        // On an error the chunk is dropped, which unmaps it.
        for i in 0..slots {
            let (lo, _) = chunk.guard(i);
            let r = match kind {
                GuardKind::Marker => install_marker(lo as *mut u8, page),
                GuardKind::Mprotect => {
                    // SAFETY: the guard page lies inside the mapping made above, which
                    // nothing uses yet.
                    cvt(unsafe { libc::mprotect(lo as *mut libc::c_void, page, libc::PROT_NONE) })
                }
            };
            r.map_err(map_error)?;
        }
        Ok(chunk)
    }

    fn slot_len(&self) -> usize {
        self.usable + page_size()
    }

    /// The guard page of slot `i`: `[lo, hi)`.
    fn guard(&self, i: usize) -> (usize, usize) {
        let lo = self.base as usize + i * self.slot_len();
        (lo, lo + page_size())
    }

    /// The usable stack of slot `i`: `[bottom, top)`.
    fn stack_range(&self, i: usize) -> (usize, usize) {
        let (_, bottom) = self.guard(i);
        (bottom, bottom + self.usable)
    }

    /// Gives the memory of slot `i` (not in use) back to the kernel; the guard stays.
    fn release(&self, i: usize) {
        let (bottom, _) = self.stack_range(i);
        // SAFETY: slot i is free: no greenlet runs on it and nothing points into it,
        // so its contents may be discarded (later reads see zeroes).
        let r = cvt(unsafe {
            libc::madvise(
                bottom as *mut libc::c_void,
                self.usable,
                libc::MADV_DONTNEED,
            )
        });
        // It cannot fail on a private anonymous mapping of ours; if it did, the slot
        // would only keep its memory until it is reused or its chunk unmapped.
        debug_assert!(r.is_ok(), "MADV_DONTNEED of a free stack slot: {r:?}");
    }
}

impl Drop for Chunk {
    fn drop(&mut self) {
        // SAFETY: the last reference to the chunk is gone: no stack is handed out from
        // it (each holds an Rc) and the pool no longer lists it.
        let r = cvt(unsafe { libc::munmap(self.base.cast(), self.len) });
        if r.is_err() {
            // Unmapping part of a larger mapping (the kernel merges neighbours) needs
            // a new mapping, refused at vm.max_map_count. Give the memory back at
            // least; the address range stays reserved.
            // SAFETY: as above: nothing uses the chunk's memory any more.
            let r = cvt(unsafe { libc::madvise(self.base.cast(), self.len, libc::MADV_DONTNEED) });
            // Nothing more can be done in a destructor.
            debug_assert!(
                r.is_ok(),
                "MADV_DONTNEED of a chunk that could not be unmapped: {r:?}"
            );
        }
    }
}

/// The error for a refused `mmap`/`mprotect`/`madvise` of `what`: for `ENOMEM` at the
/// mapping limit, what happened and what to do about it. `stacks`: this thread's
/// stacks `(in use, pooled)`.
fn map_error(what: &str, e: io::Error, kind: GuardKind, stacks: (usize, usize)) -> io::Error {
    if e.raw_os_error() == Some(libc::ENOMEM) {
        let max = std::fs::read_to_string("/proc/sys/vm/max_map_count")
            .ok()
            .and_then(|s| s.trim().parse::<usize>().ok());
        if let (Some(max), Some(maps)) = (max, count_mappings()) {
            // The count is read after the fact (other threads map and unmap): near the
            // limit counts as at it.
            if maps + max / 64 >= max {
                let mut msg = format!(
                    "cannot map {what}: the process has reached its limit of memory \
                     mappings ({maps} in use, vm.max_map_count = {max}); this thread \
                     has {} greenlet stacks in use and {} pooled; raise the limit, e.g. \
                     `sysctl -w vm.max_map_count={}`",
                    stacks.0,
                    stacks.1,
                    max.saturating_mul(4)
                );
                if kind == GuardKind::Mprotect {
                    msg.push_str(
                        ". Each stack costs two mappings here because its guard page is \
                         a mapping of its own: this kernel has no guard regions \
                         (MADV_GUARD_INSTALL needs Linux 6.13), with which 64 stacks \
                         of the default size share one mapping",
                    );
                }
                return io::Error::new(e.kind(), msg);
            }
        }
    }
    io::Error::new(e.kind(), format!("cannot map {what}: {e}"))
}

/// Lines of /proc/self/maps (one per mapping), read through a small buffer: this runs
/// when mappings are scarce, so it must not need one.
fn count_mappings() -> Option<usize> {
    let mut f = std::fs::File::open("/proc/self/maps").ok()?;
    let mut buf = [0u8; 4096];
    let mut lines = 0;
    loop {
        match f.read(&mut buf) {
            Ok(0) => return Some(lines),
            Ok(n) => lines += buf[..n].iter().filter(|&&b| b == b'\n').count(),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
}

/// The usable size of a stack asked for as `size`: at least [`MIN_STACK_SIZE`], whole
/// pages; with its guard page it must fit in an `isize` (the most `mmap` can map).
fn usable_size(size: usize) -> io::Result<usize> {
    let page = page_size();
    size.max(MIN_STACK_SIZE)
        .checked_next_multiple_of(page)
        .filter(|u| {
            u.checked_add(page)
                .is_some_and(|n| n <= isize::MAX as usize)
        })
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "a greenlet stack_size of {size} bytes is impossible: rounded up to \
                     whole pages, with its guard page, it is larger than the address space"
                ),
            )
        })
}

// ---------------------------------------------------------------------------------
// The pool.

/// A free slot in the warm list.
struct WarmSlot {
    chunk: Rc<Chunk>,
    index: u32,
}

/// The free slots of one stack size.
struct Class {
    usable: usize,
    /// Freed slots with their memory still committed, most recent last.
    warm: Vec<WarmSlot>,
    /// Chunks with at least one cold slot.
    partial: Vec<Rc<Chunk>>,
}

/// This thread's stacks.
struct Pool {
    /// Size classes seen so far (usually one or two).
    classes: Vec<Class>,
    /// Warm slots, all classes together (at most `POOL_MAX`).
    warm: usize,
    /// Slots handed out that were not warm (`stats().0`).
    fresh: usize,
    /// Slots handed out and not returned yet (for the mapping-limit error).
    in_use: usize,
    /// `release_thread_pool` ran: nothing is pooled any more.
    released: bool,
}

thread_local! {
    /// No destructor (`ManuallyDrop`): stacks can come back while other thread-locals
    /// are destroyed at thread exit; the greenlet layer's thread teardown calls
    /// `release_thread_pool` last, to free what it holds.
    static POOL: ManuallyDrop<RefCell<Pool>> = const {
        ManuallyDrop::new(RefCell::new(Pool {
            classes: Vec::new(),
            warm: 0,
            fresh: 0,
            in_use: 0,
            released: false,
        }))
    };
}

const _: () = assert!(!std::mem::needs_drop::<ManuallyDrop<RefCell<Pool>>>());

impl Pool {
    fn class(&mut self, usable: usize) -> &mut Class {
        let i = match self.classes.iter().position(|c| c.usable == usable) {
            Some(i) => i,
            None => {
                self.classes.push(Class {
                    usable,
                    warm: Vec::new(),
                    partial: Vec::new(),
                });
                self.classes.len() - 1
            }
        };
        &mut self.classes[i]
    }

    /// A free slot of `usable` bytes: warm if there is one, else cold, else from a
    /// new chunk.
    fn take(&mut self, usable: usize) -> io::Result<(Rc<Chunk>, u32)> {
        let stacks = (self.in_use, self.warm);
        if self.released {
            // After thread teardown: an unpooled stack, unmapped when it is dropped.
            let chunk = Chunk::map(usable, 1, guard_kind()?, stacks)?;
            chunk.cold.borrow_mut().clear();
            chunk.in_use.set(1);
            self.fresh += 1;
            self.in_use += 1;
            return Ok((Rc::new(chunk), 0));
        }
        let class = self.class(usable);
        let (chunk, index, warm) = if let Some(s) = class.warm.pop() {
            s.chunk.warm.set(s.chunk.warm.get() - 1);
            (s.chunk, s.index, true)
        } else if let Some(c) = class.partial.last() {
            let c = c.clone();
            let mut cold = c.cold.borrow_mut();
            let index = cold
                .pop()
                .expect("a chunk listed as partial has a cold slot");
            if cold.is_empty() {
                class.partial.pop();
            }
            drop(cold);
            (c, index, false)
        } else {
            let kind = guard_kind()?;
            let c = Rc::new(Chunk::map(
                usable,
                slots_per_chunk(usable, kind),
                kind,
                stacks,
            )?);
            let index = c.cold.borrow_mut().pop().expect("a new chunk has a slot");
            if !c.cold.borrow().is_empty() {
                class.partial.push(c.clone());
            }
            (c, index, false)
        };
        chunk.in_use.set(chunk.in_use.get() + 1);
        if warm {
            self.warm -= 1;
        } else {
            self.fresh += 1;
        }
        self.in_use += 1;
        Ok((chunk, index))
    }

    /// Slot `index` of `chunk` is free again.
    fn give_back(&mut self, chunk: &Rc<Chunk>, index: u32) {
        chunk.in_use.set(chunk.in_use.get() - 1);
        self.in_use -= 1;
        if self.released {
            // The caller's Rc is the chunk's last but for other stacks in use.
            return;
        }
        if self.warm < POOL_MAX {
            self.warm += 1;
            chunk.warm.set(chunk.warm.get() + 1);
            self.class(chunk.usable).warm.push(WarmSlot {
                chunk: chunk.clone(),
                index,
            });
        } else {
            self.class(chunk.usable).make_cold(chunk, index);
        }
    }
}

impl Class {
    /// Slot `index` of `chunk` (neither in use nor warm any more) becomes cold: its
    /// memory is released, or the chunk is unmapped if no other slot is used or warm.
    fn make_cold(&mut self, chunk: &Rc<Chunk>, index: u32) {
        let mut cold = chunk.cold.borrow_mut();
        if chunk.in_use.get() == 0 && chunk.warm.get() == 0 && cold.len() + 1 == chunk.slots {
            drop(cold);
            // Once the pool drops its reference the chunk goes with the caller's.
            if let Some(i) = self.partial.iter().position(|c| Rc::ptr_eq(c, chunk)) {
                self.partial.swap_remove(i);
            }
            return;
        }
        chunk.release(index as usize);
        cold.push(index);
        if cold.len() == 1 {
            self.partial.push(chunk.clone());
        }
    }

    /// All warm slots become cold.
    fn trim(&mut self) {
        for s in std::mem::take(&mut self.warm) {
            s.chunk.warm.set(s.chunk.warm.get() - 1);
            self.make_cold(&s.chunk, s.index);
        }
    }
}

// ---------------------------------------------------------------------------------
// Stacks handed out.

/// A greenlet stack: one slot of a chunk, registered with valgrind. Dropping it gives
/// the slot back to this thread's pool.
pub(crate) struct GreenletStack {
    chunk: Rc<Chunk>,
    index: u32,
    stack: Stack,
    valgrind_id: usize,
}

impl GreenletStack {
    pub(crate) fn stack(&self) -> &Stack {
        &self.stack
    }

    /// The usable size (without the guard page).
    #[allow(dead_code)] // part of the handle's interface; tests read it
    pub(crate) fn size(&self) -> usize {
        self.chunk.usable
    }

    /// The guard page: `[start, end)`.
    pub(crate) fn guard(&self) -> (usize, usize) {
        self.chunk.guard(self.index as usize)
    }
}

impl Drop for GreenletStack {
    fn drop(&mut self) {
        valgrind::stack_deregister(self.valgrind_id);
        // The pool never drops a GreenletStack while it is borrowed.
        POOL.with(|p| p.borrow_mut().give_back(&self.chunk, self.index));
    }
}

/// A stack of at least `size` bytes, from the pool when one of that size is there.
///
/// # Errors
/// `InvalidInput` for a size no mapping can have; the kernel's error (with what could
/// not be mapped, and at `vm.max_map_count` what to do) when it refuses the mapping;
/// an error if the stack-overflow handler cannot be installed.
pub(crate) fn take(size: usize) -> io::Result<GreenletStack> {
    install_overflow_handler()?;
    let usable = usable_size(size)?;
    let (chunk, index) = POOL.with(|p| p.borrow_mut().take(usable))?;
    let (bottom, top) = chunk.stack_range(index as usize);
    // SAFETY: [bottom, top) is the usable part of slot `index`, inside the chunk's
    // mapping, which the handle keeps alive (Rc) and no other handle uses.
    let stack = unsafe { Stack::new(top as *mut libc::c_void, bottom as *mut libc::c_void) };
    let valgrind_id = valgrind::stack_register(bottom, top);
    Ok(GreenletStack {
        chunk,
        index,
        stack,
        valgrind_id,
    })
}

/// Returns a stack that no code is running on any more (the same as dropping it).
pub(crate) fn give_back(s: GreenletStack) {
    drop(s);
}

/// Stack statistics for this thread: `(stacks mapped by this thread so far, in the
/// pool now)`. "Mapped" counts the stacks handed out without committed memory (a slot
/// never used or released), i.e. not reused warm from the pool; "in the pool" counts
/// the warm ones (at most [`POOL_MAX`]).
pub fn stats() -> (usize, usize) {
    POOL.with(|p| {
        let p = p.borrow();
        (p.fresh, p.warm)
    })
}

/// Frees the pooled stacks of this thread: their memory is given back to the kernel,
/// and every chunk of which no stack is in use is unmapped.
pub fn trim_pool() {
    POOL.with(|p| {
        let mut p = p.borrow_mut();
        for c in &mut p.classes {
            c.trim();
        }
        p.warm = 0;
    });
}

/// Frees this thread's pooled stacks and drops the pool's references to chunks, for
/// thread exit: a chunk is unmapped once no stack of it is in use. Safe to call more
/// than once. Afterwards stacks given back are not pooled, and [`take`] still works:
/// each stack is then a mapping of its own, unmapped when it is dropped.
pub(crate) fn release_thread_pool() {
    let classes = POOL.with(|p| {
        let mut p = p.borrow_mut();
        p.released = true;
        p.warm = 0;
        std::mem::take(&mut p.classes)
    });
    // Unmapped here, outside the borrow.
    drop(classes);
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

/// The SIGSEGV and SIGBUS dispositions found when the overflow handler was installed:
/// faults that are not a greenlet's overflow are handed to them. Set once; read by the
/// handler (a `OnceLock` read is an atomic load, fine in a signal handler).
struct PrevHandlers {
    segv: libc::sigaction,
    bus: libc::sigaction,
}

static PREV: OnceLock<PrevHandlers> = OnceLock::new();

fn install_overflow_handler() -> io::Result<()> {
    static INSTALLED: OnceLock<Result<(), i32>> = OnceLock::new();
    let r = INSTALLED.get_or_init(|| {
        // SAFETY: installing a signal handler with a zeroed struct filled in here; the
        // previous dispositions come back in `segv` and `bus`, which are published in
        // PREV before any greenlet stack exists (so before an overflow can happen).
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = overflow_handler as *const () as usize;
            sa.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
            let mut segv: libc::sigaction = std::mem::zeroed();
            let mut bus: libc::sigaction = std::mem::zeroed();
            let r = cvt(libc::sigemptyset(&mut sa.sa_mask))
                .and_then(|()| cvt(libc::sigaction(libc::SIGSEGV, &sa, &mut segv)))
                .and_then(|()| cvt(libc::sigaction(libc::SIGBUS, &sa, &mut bus)))
                .map_err(|e| e.raw_os_error().unwrap_or(0));
            let _ = PREV.set(PrevHandlers { segv, bus });
            r
        }
    });
    if let Err(errno) = *r {
        let e = io::Error::from_raw_os_error(errno);
        return Err(io::Error::new(
            e.kind(),
            format!("cannot install the greenlet stack-overflow handler: {e}"),
        ));
    }
    ensure_altstack()
}

thread_local! {
    static ALTSTACK: Cell<bool> = const { Cell::new(false) };
}

/// The handler must run on an alternate signal stack: the greenlet's is full. Rust's
/// runtime gives its own threads one; other threads get one here (leaked with the thread).
fn ensure_altstack() -> io::Result<()> {
    if ALTSTACK.with(Cell::get) {
        return Ok(());
    }
    let fail = |e: io::Error| {
        io::Error::new(
            e.kind(),
            format!("cannot set up the alternate signal stack that reports greenlet stack overflows: {e}"),
        )
    };
    // SAFETY: stack_t is plain data (a pointer, an int and a size); all-zero is valid.
    let mut old: libc::stack_t = unsafe { std::mem::zeroed() };
    // SAFETY: only queries this thread's alternate stack, into a local.
    cvt(unsafe { libc::sigaltstack(std::ptr::null(), &mut old) }).map_err(fail)?;
    if old.ss_flags & libc::SS_DISABLE == 0 {
        ALTSTACK.with(|a| a.set(true));
        return Ok(());
    }
    let size = libc::SIGSTKSZ.max(64 * 1024);
    // SAFETY: a fresh private anonymous mapping; no existing memory is affected.
    let mem = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            size,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if mem == libc::MAP_FAILED {
        return Err(fail(io::Error::last_os_error()));
    }
    let st = libc::stack_t {
        ss_sp: mem,
        ss_flags: 0,
        ss_size: size,
    };
    // SAFETY: `st` describes the mapping made above, which stays mapped for the rest
    // of the thread's life.
    if let Err(e) = cvt(unsafe { libc::sigaltstack(&st, std::ptr::null_mut()) }) {
        // SAFETY: the mapping made above, not installed, used by nothing.
        let r = cvt(unsafe { libc::munmap(mem, size) });
        // A whole mapping: nothing to split, so this cannot fail (else it stays mapped).
        debug_assert!(
            r.is_ok(),
            "munmap of an unused alternate signal stack: {r:?}"
        );
        return Err(fail(e));
    }
    ALTSTACK.with(|a| a.set(true));
    Ok(())
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
        let r = super::running_for_signal();
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
                // If stderr is gone there is nothing better to do: the abort follows.
                let _ = libc::write(2, buf.as_ptr().cast(), n);
                libc::abort();
            }
        }
        // Not ours: hand over to the previous handler (the default one if the fault
        // came before it was recorded).
        let prev = PREV
            .get()
            .map(|p| if sig == libc::SIGBUS { &p.bus } else { &p.segv });
        let Some(prev) = prev else {
            libc::signal(sig, libc::SIG_DFL);
            return;
        };
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::rc::Weak;

    /// True if the kernel can read the byte at `addr` on our behalf: `write(2)` of it to
    /// a pipe fails with `EFAULT` on a guard page instead of raising `SIGSEGV`.
    fn kernel_can_read(addr: usize) -> bool {
        let mut fds = [0; 2];
        // SAFETY: pipe writes two fds into the array.
        cvt(unsafe { libc::pipe(fds.as_mut_ptr()) }).expect("pipe");
        // SAFETY: the kernel checks the address; a bad one is EFAULT, not a fault here.
        let r = unsafe { libc::write(fds[1], addr as *const libc::c_void, 1) };
        let e = io::Error::last_os_error();
        for fd in fds {
            // SAFETY: closing the pipe made above.
            cvt(unsafe { libc::close(fd) }).expect("close");
        }
        match r {
            1 => true,
            -1 if e.raw_os_error() == Some(libc::EFAULT) => false,
            _ => panic!("write of one byte returned {r}: {e}"),
        }
    }

    fn markers_or_skip() -> bool {
        let markers = guard_regions().expect("ask for guard regions");
        if !markers {
            eprintln!("this kernel has no guard regions (Linux < 6.13): nothing to test");
        }
        markers
    }

    #[test]
    fn guard_markers_fault_and_survive_dontneed() {
        if !markers_or_skip() {
            return;
        }
        let chunk = Chunk::map(DEFAULT_STACK_SIZE, 4, GuardKind::Marker, (0, 0)).expect("map");
        for i in 0..4 {
            let (lo, hi) = chunk.guard(i);
            let (bottom, top) = chunk.stack_range(i);
            assert_eq!(hi, bottom);
            assert!(
                !kernel_can_read(lo) && !kernel_can_read(hi - 1),
                "slot {i}'s guard"
            );
            assert!(
                kernel_can_read(bottom) && kernel_can_read(top - 1),
                "slot {i}'s stack"
            );
            // Commit the stack's pages, so that releasing them has work to do.
            for p in (bottom..top).step_by(page_size()) {
                // SAFETY: inside slot i's usable stack, which nothing else uses.
                unsafe { (p as *mut u8).write(1) };
            }
        }
        chunk.release(1);
        assert!(
            !kernel_can_read(chunk.guard(1).0),
            "released slot keeps its guard"
        );
        assert!(
            !kernel_can_read(chunk.guard(2).0),
            "the slot above keeps its guard"
        );
        // SAFETY: the chunk's memory is ours and nothing points into it.
        let r = unsafe { libc::madvise(chunk.base.cast(), chunk.len, libc::MADV_DONTNEED) };
        cvt(r).expect("MADV_DONTNEED over the whole chunk");
        for i in 0..4 {
            assert!(
                !kernel_can_read(chunk.guard(i).0),
                "guard {i} after MADV_DONTNEED"
            );
            // Released pages read back as zeroes.
            // SAFETY: inside slot i's usable stack.
            assert_eq!(unsafe { (chunk.stack_range(i).0 as *const u8).read() }, 0);
        }
    }

    #[test]
    fn a_default_chunk_holds_64_stacks_in_16_mib() {
        assert_eq!(slots_per_chunk(DEFAULT_STACK_SIZE, GuardKind::Marker), 64);
        assert_eq!(
            slots_per_chunk(MIN_STACK_SIZE, GuardKind::Marker),
            MAX_SLOTS
        );
        assert_eq!(
            slots_per_chunk(LARGE_STACK + page_size(), GuardKind::Marker),
            1
        );
        assert_eq!(slots_per_chunk(DEFAULT_STACK_SIZE, GuardKind::Mprotect), 1);
        let len = 64 * (DEFAULT_STACK_SIZE + page_size());
        assert_eq!(
            describe(DEFAULT_STACK_SIZE, 64, len),
            "16.2 MiB for 64 greenlet stacks of 256 KiB"
        );
        assert_eq!(
            describe(1 << 46, 1, (1 << 46) + 4096),
            "a 64 TiB greenlet stack"
        );
    }

    #[test]
    fn impossible_sizes_are_invalid_input() {
        assert_eq!(usable_size(0).unwrap(), MIN_STACK_SIZE);
        assert_eq!(
            usable_size(DEFAULT_STACK_SIZE + 1).unwrap(),
            DEFAULT_STACK_SIZE + page_size()
        );
        assert_eq!(usable_size(1 << 46).unwrap(), 1 << 46);
        for size in [usize::MAX, usize::MAX - page_size(), isize::MAX as usize] {
            let e = usable_size(size).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
            assert!(e.to_string().contains(&format!("{size} bytes")), "{e}");
        }
    }

    /// Runs `f` on a thread of its own: a fresh pool, released at its exit.
    fn on_new_thread(f: impl FnOnce() + Send + 'static) {
        std::thread::spawn(f).join().expect("the test thread");
    }

    fn chunk_of(s: &GreenletStack) -> Weak<Chunk> {
        Rc::downgrade(&s.chunk)
    }

    #[test]
    fn freed_stacks_beyond_the_warm_pool_are_released_and_empty_chunks_unmapped() {
        on_new_thread(|| {
            // Six chunks' worth: the first four are given back warm, the last two cold.
            let stacks: Vec<GreenletStack> = (0..6 * 64)
                .map(|_| take(DEFAULT_STACK_SIZE).unwrap())
                .collect();
            let chunks: Vec<Weak<Chunk>> = stacks.iter().step_by(64).map(chunk_of).collect();
            assert_eq!(stats(), (6 * 64, 0));
            drop(stacks);
            assert_eq!(stats().1, POOL_MAX);
            let alive: Vec<bool> = chunks.iter().map(|c| c.upgrade().is_some()).collect();
            assert_eq!(alive, [true, true, true, true, false, false]);
            // Warm stacks are reused first and count as no new mapping.
            let s = take(DEFAULT_STACK_SIZE).unwrap();
            assert_eq!(stats(), (6 * 64, POOL_MAX - 1));
            // Trimming releases the rest: only the chunk of the stack in use stays.
            trim_pool();
            assert_eq!(stats().1, 0);
            let alive = chunks.iter().filter(|c| c.upgrade().is_some()).count();
            assert_eq!(alive, 1);
            let mine = chunk_of(&s);
            drop(s);
            assert!(mine.upgrade().is_some(), "warm again: the pool has room");
            release_thread_pool();
            assert!(mine.upgrade().is_none(), "released with the pool");
        });
    }

    #[test]
    fn stacks_dropped_after_the_pool_is_released_are_unmapped() {
        on_new_thread(|| {
            let a = take(DEFAULT_STACK_SIZE).unwrap();
            let b = take(DEFAULT_STACK_SIZE).unwrap();
            let chunk = chunk_of(&a);
            drop(b);
            release_thread_pool();
            assert!(chunk.upgrade().is_some(), "a stack in use keeps its chunk");
            drop(a);
            assert!(
                chunk.upgrade().is_none(),
                "the last stack of the chunk unmaps it"
            );
            // Still works afterwards, one mapping per stack, nothing pooled.
            let c = take(DEFAULT_STACK_SIZE).unwrap();
            assert_eq!(c.size(), DEFAULT_STACK_SIZE);
            let chunk = chunk_of(&c);
            drop(c);
            assert!(chunk.upgrade().is_none());
            assert_eq!(stats().1, 0);
            release_thread_pool();
        });
    }

    #[test]
    fn a_stack_dropped_after_the_thread_exit_release_is_unmapped() {
        // A thread-local that holds a stack and is destroyed after the pool's release
        // at thread exit (destroyed in reverse order of first use: it is touched
        // before the greenlet layer's exit guard). It reports what it saw.
        struct Late {
            stack: Option<GreenletStack>,
            report: Option<std::sync::mpsc::Sender<(bool, bool)>>,
        }
        impl Drop for Late {
            fn drop(&mut self) {
                let s = self.stack.take().expect("a stack was stored");
                let chunk = chunk_of(&s);
                let released = POOL.with(|p| p.borrow().released);
                drop(s);
                let report = self.report.take().expect("a channel was stored");
                report.send((released, chunk.upgrade().is_none())).unwrap();
            }
        }
        thread_local! {
            static LATE: RefCell<Late> = const { RefCell::new(Late { stack: None, report: None }) };
        }
        let (tx, rx) = std::sync::mpsc::channel();
        on_new_thread(move || {
            LATE.with(|_| ());
            // The greenlet layer's exit guard (which releases the pool) is registered
            // after LATE, so it runs first.
            drop(crate::greenlet::current_rc());
            let s = take(DEFAULT_STACK_SIZE).unwrap();
            LATE.with(|l| {
                let mut l = l.borrow_mut();
                l.stack = Some(s);
                l.report = Some(tx);
            });
        });
        let (released, unmapped) = rx.recv().unwrap();
        assert!(
            released,
            "the pool was released before the stack was dropped"
        );
        assert!(unmapped, "dropping the chunk's last stack unmapped it");
    }
}
