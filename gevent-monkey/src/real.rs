//! The real libc functions behind the hooks, found with `dlsym(RTLD_NEXT, name)` on
//! first use and cached: the next definition after this binary's, which is libc's.
//!
//! Each function here has the hooked function's name and C signature (variadic ones
//! are called through a variadic pointer type, as C would). If libc has no such
//! symbol, the call fails with `ENOSYS`.

#![allow(clippy::missing_safety_doc)] // each is the libc function of the same name

use libc::{
    addrinfo, c_char, c_int, c_uint, c_ulong, c_void, clockid_t, fd_set, iovec, msghdr, nfds_t,
    off_t, pid_t, pollfd, sigset_t, size_t, sockaddr, socklen_t, ssize_t, timespec, timeval,
};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The address of the next definition of `name` (NUL-terminated), cached in `slot`;
/// 0 if there is none.
#[cold]
fn lookup(slot: &AtomicUsize, name: &'static str) -> usize {
    // SAFETY: `name` is NUL-terminated (every caller passes a `concat!(.., "\0")`);
    // dlsym only reads it.
    let p = unsafe { libc::dlsym(libc::RTLD_NEXT, name.as_ptr().cast()) } as usize;
    slot.store(p, Ordering::Relaxed);
    p
}

#[inline(always)]
fn resolve(slot: &AtomicUsize, name: &'static str) -> usize {
    match slot.load(Ordering::Relaxed) {
        0 => lookup(slot, name),
        p => p,
    }
}

/// Defines `pub unsafe fn $name(args) -> ret` calling libc's `$name`; a `...` after
/// the arguments calls it through a variadic pointer type, as C does.
macro_rules! real {
    ($( fn $name:ident($($arg:ident: $t:ty),*) -> $r:ty = $fail:expr; )*) => {$(
        real!(@def $name ($($arg: $t),*) ($($t),*) -> $r = $fail);
    )*};
    (@def $name:ident ($($arg:ident: $t:ty),*) ($($ft:tt)*) -> $r:ty = $fail:expr) => {
        #[inline(always)]
        pub unsafe fn $name($($arg: $t),*) -> $r {
            match resolve(&slots::$name, concat!(stringify!($name), "\0")) {
                0 => {
                    crate::errno::set(libc::ENOSYS);
                    $fail
                }
                p => {
                    // SAFETY: `p` is libc's definition of this very function, whose C
                    // signature the type spells; the caller's contract is libc's.
                    let f = unsafe {
                        std::mem::transmute::<usize, unsafe extern "C" fn($($ft)*) -> $r>(p)
                    };
                    // SAFETY: as above.
                    unsafe { f($($arg),*) }
                }
            }
        }
    };
}

/// [`real!`] for libc's variadic functions: the fixed arguments, then one more passed
/// as C passes a variadic argument.
macro_rules! real_variadic {
    ($( fn $name:ident($($arg:ident: $t:ty),*; $va:ident: $vt:ty) -> $r:ty = $fail:expr; )*) => {$(
        #[inline(always)]
        pub unsafe fn $name($($arg: $t,)* $va: $vt) -> $r {
            match resolve(&slots::$name, concat!(stringify!($name), "\0")) {
                0 => {
                    crate::errno::set(libc::ENOSYS);
                    $fail
                }
                p => {
                    // SAFETY: `p` is libc's definition of this variadic function, whose
                    // fixed C arguments the type spells; the caller's contract is libc's.
                    let f = unsafe {
                        std::mem::transmute::<usize, unsafe extern "C" fn($($t,)* ...) -> $r>(p)
                    };
                    // SAFETY: as above.
                    unsafe { f($($arg,)* $va) }
                }
            }
        }
    )*};
}

real_variadic! {
    fn fcntl(fd: c_int, cmd: c_int; arg: c_ulong) -> c_int = -1;
    fn ioctl(fd: c_int, req: c_ulong; arg: *mut c_void) -> c_int = -1;
}

real! {
    fn read(fd: c_int, buf: *mut c_void, n: size_t) -> ssize_t = -1;
    fn readv(fd: c_int, iov: *const iovec, cnt: c_int) -> ssize_t = -1;
    fn write(fd: c_int, buf: *const c_void, n: size_t) -> ssize_t = -1;
    fn writev(fd: c_int, iov: *const iovec, cnt: c_int) -> ssize_t = -1;
    fn recv(fd: c_int, buf: *mut c_void, n: size_t, flags: c_int) -> ssize_t = -1;
    fn recvfrom(fd: c_int, buf: *mut c_void, n: size_t, flags: c_int, addr: *mut sockaddr, len: *mut socklen_t) -> ssize_t = -1;
    fn recvmsg(fd: c_int, msg: *mut msghdr, flags: c_int) -> ssize_t = -1;
    fn send(fd: c_int, buf: *const c_void, n: size_t, flags: c_int) -> ssize_t = -1;
    fn sendto(fd: c_int, buf: *const c_void, n: size_t, flags: c_int, addr: *const sockaddr, len: socklen_t) -> ssize_t = -1;
    fn sendmsg(fd: c_int, msg: *const msghdr, flags: c_int) -> ssize_t = -1;
    fn sendfile(out_fd: c_int, in_fd: c_int, offset: *mut off_t, count: size_t) -> ssize_t = -1;
    fn accept(fd: c_int, addr: *mut sockaddr, len: *mut socklen_t) -> c_int = -1;
    fn accept4(fd: c_int, addr: *mut sockaddr, len: *mut socklen_t, flags: c_int) -> c_int = -1;
    fn connect(fd: c_int, addr: *const sockaddr, len: socklen_t) -> c_int = -1;
    fn poll(fds: *mut pollfd, n: nfds_t, timeout: c_int) -> c_int = -1;
    fn ppoll(fds: *mut pollfd, n: nfds_t, timeout: *const timespec, mask: *const sigset_t) -> c_int = -1;
    fn select(n: c_int, r: *mut fd_set, w: *mut fd_set, e: *mut fd_set, timeout: *mut timeval) -> c_int = -1;
    fn nanosleep(req: *const timespec, rem: *mut timespec) -> c_int = -1;
    fn clock_nanosleep(clock: clockid_t, flags: c_int, req: *const timespec, rem: *mut timespec) -> c_int = libc::ENOSYS;
    fn usleep(us: libc::useconds_t) -> c_int = -1;
    fn sleep(secs: c_uint) -> c_uint = secs;
    fn getaddrinfo(node: *const c_char, service: *const c_char, hints: *const addrinfo, res: *mut *mut addrinfo) -> c_int = libc::EAI_SYSTEM;
    fn freeaddrinfo(res: *mut addrinfo) -> () = ();
    fn getnameinfo(addr: *const sockaddr, len: socklen_t, host: *mut c_char, hostlen: socklen_t, serv: *mut c_char, servlen: socklen_t, flags: c_int) -> c_int = libc::EAI_SYSTEM;
    fn close(fd: c_int) -> c_int = -1;
    fn dup(fd: c_int) -> c_int = -1;
    fn dup2(old: c_int, new: c_int) -> c_int = -1;
    fn dup3(old: c_int, new: c_int, flags: c_int) -> c_int = -1;
    fn setsockopt(fd: c_int, level: c_int, name: c_int, val: *const c_void, len: socklen_t) -> c_int = -1;
    fn socket(domain: c_int, ty: c_int, proto: c_int) -> c_int = -1;
    fn socketpair(domain: c_int, ty: c_int, proto: c_int, sv: *mut c_int) -> c_int = -1;
    fn pipe(fds: *mut c_int) -> c_int = -1;
    fn pipe2(fds: *mut c_int, flags: c_int) -> c_int = -1;
    fn fork() -> pid_t = -1;
}

/// The cache of each function's address, by the function's name.
#[allow(non_upper_case_globals)]
mod slots {
    use std::sync::atomic::AtomicUsize;
    macro_rules! slots {
        ($($name:ident)*) => {
            $(pub(super) static $name: AtomicUsize = AtomicUsize::new(0);)*
            /// Every slot with its function's name.
            pub(super) static ALL: &[(&AtomicUsize, &str)] =
                &[$((&$name, concat!(stringify!($name), "\0"))),*];
        };
    }
    slots! {
        read readv write writev recv recvfrom recvmsg send sendto sendmsg sendfile accept
        accept4 connect poll ppoll select nanosleep clock_nanosleep usleep sleep getaddrinfo
        freeaddrinfo getnameinfo close dup dup2 dup3 fcntl ioctl setsockopt socket socketpair
        pipe pipe2 fork
    }
}

/// Looks every function up now (`patch_all` does), so that no `dlsym` runs later at an
/// awkward time: in a fork's child, where a lock another thread held at the fork stays
/// taken, or in a signal handler.
pub(crate) fn resolve_all() {
    for (slot, name) in slots::ALL {
        resolve(slot, name);
    }
}
