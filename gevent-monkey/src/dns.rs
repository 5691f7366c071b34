//! Name resolution: `getaddrinfo` (std's `to_socket_addrs`, every client crate's
//! connect by name) and `getnameinfo`, run on the hub's thread pool while the
//! greenlet parks, as gevent's threaded resolver does. The pool's workers have no hub,
//! so their own call is the real one.
//!
//! A kill or a `Timeout` during a lookup fails it with `EAI_SYSTEM` and `errno`
//! `ECANCELED`/`ETIMEDOUT`; the lookup finishes on its worker and its result is freed
//! there.

use crate::{errno, real, Patch};
use gevent_hub::monkey_seam::{self as seam, Stop};
use libc::{addrinfo, c_char, c_int, sockaddr, socklen_t};
use std::ffi::{CStr, CString};

/// A lookup's failure for `s`: `EAI_SYSTEM`, with `errno` saying why.
fn eai_fail(s: Stop) -> c_int {
    crate::io::fail(s);
    libc::EAI_SYSTEM
}

/// A `getaddrinfo` result list, freed when dropped unless handed to the caller.
struct List(*mut addrinfo);

// SAFETY: the list is plain heap memory owned by whoever holds this; glibc's
// freeaddrinfo may be called from any thread.
unsafe impl Send for List {}

impl Drop for List {
    fn drop(&mut self) {
        if !self.0.is_null() {
            // SAFETY: a list getaddrinfo made, freed once (into_raw empties it).
            unsafe { real::freeaddrinfo(self.0) }
        }
    }
}

impl List {
    fn into_raw(mut self) -> *mut addrinfo {
        std::mem::replace(&mut self.0, std::ptr::null_mut())
    }
}

/// A copy of a C string argument that may be null.
///
/// # Safety
/// `p` is null or a valid C string.
unsafe fn owned(p: *const c_char) -> Option<CString> {
    // SAFETY: the caller's contract.
    (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) }.to_owned())
}

/// libc's `getaddrinfo`.
///
/// # Safety
/// libc's contract for `getaddrinfo`.
#[no_mangle]
pub unsafe extern "C" fn getaddrinfo(
    node: *const c_char,
    service: *const c_char,
    hints: *const addrinfo,
    res: *mut *mut addrinfo,
) -> c_int {
    match crate::parks(Patch::DNS) {
        Ok(()) if !res.is_null() => {}
        Err(Some(s)) => return eai_fail(s),
        // SAFETY: the caller's contract is libc's.
        _ => return unsafe { real::getaddrinfo(node, service, hints, res) },
    }
    // SAFETY: the caller's contract: valid or null strings, hints null or valid.
    let (node_c, service_c) = unsafe { (owned(node), owned(service)) };
    // Only these fields of the hints are read (the others must be zero or null).
    // SAFETY: as above.
    let hint =
        unsafe { hints.as_ref() }.map(|h| (h.ai_flags, h.ai_family, h.ai_socktype, h.ai_protocol));
    let job = move || {
        // SAFETY: a zeroed addrinfo is a valid "no hints" value; the fields are
        // set from the caller's copy.
        let mut h: addrinfo = unsafe { std::mem::zeroed() };
        if let Some((fl, fa, st, pr)) = hint {
            (h.ai_flags, h.ai_family, h.ai_socktype, h.ai_protocol) = (fl, fa, st, pr);
        }
        let mut out: *mut addrinfo = std::ptr::null_mut();
        let p = |c: &Option<CString>| c.as_ref().map_or(std::ptr::null(), |c| c.as_ptr());
        // SAFETY: the strings and hints are ours and live through the call.
        let r = unsafe {
            real::getaddrinfo(
                p(&node_c),
                p(&service_c),
                if hint.is_some() { &h } else { std::ptr::null() },
                &mut out,
            )
        };
        (r, errno::get(), List(out))
    };
    crate::io::guarded(libc::EAI_SYSTEM, || match seam::run_blocking(job) {
        Ok((r, e, list)) => {
            // SAFETY: `res` is non-null (checked above) and the caller's to write.
            unsafe { *res = list.into_raw() };
            errno::set(e);
            r
        }
        Err(Stop::CannotPark) => {
            // SAFETY: the caller's contract is libc's.
            unsafe { real::getaddrinfo(node, service, hints, res) }
        }
        Err(s) => eai_fail(s),
    })
}

/// libc's `getnameinfo`.
///
/// # Safety
/// libc's contract for `getnameinfo`.
#[no_mangle]
pub unsafe extern "C" fn getnameinfo(
    addr: *const sockaddr,
    len: socklen_t,
    host: *mut c_char,
    hostlen: socklen_t,
    serv: *mut c_char,
    servlen: socklen_t,
    flags: c_int,
) -> c_int {
    let size_ok = (len as usize) <= std::mem::size_of::<libc::sockaddr_storage>();
    match crate::parks(Patch::DNS) {
        Ok(()) if !addr.is_null() && size_ok => {}
        Err(Some(s)) => return eai_fail(s),
        // SAFETY: the caller's contract is libc's.
        _ => return unsafe { real::getnameinfo(addr, len, host, hostlen, serv, servlen, flags) },
    }
    // SAFETY: `addr` is valid for `len` bytes (the caller's contract), and `len` fits
    // a sockaddr_storage (checked above).
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    unsafe {
        std::ptr::copy_nonoverlapping(
            addr.cast::<u8>(),
            (&mut storage as *mut libc::sockaddr_storage).cast::<u8>(),
            len as usize,
        )
    };
    let (want_host, want_serv) = (!host.is_null(), !serv.is_null());
    let job = move || {
        let mut h = vec![0 as c_char; if want_host { hostlen as usize } else { 0 }];
        let mut s = vec![0 as c_char; if want_serv { servlen as usize } else { 0 }];
        let ptr = |v: &mut Vec<c_char>, on: bool| {
            if on {
                v.as_mut_ptr()
            } else {
                std::ptr::null_mut()
            }
        };
        // SAFETY: the address copy and the buffers are ours, of the sizes passed.
        let r = unsafe {
            real::getnameinfo(
                (&storage as *const libc::sockaddr_storage).cast(),
                len,
                ptr(&mut h, want_host),
                h.len() as socklen_t,
                ptr(&mut s, want_serv),
                s.len() as socklen_t,
                flags,
            )
        };
        (r, errno::get(), h, s)
    };
    crate::io::guarded(libc::EAI_SYSTEM, || match seam::run_blocking(job) {
        Ok((r, e, h, s)) => {
            // SAFETY: the caller's buffers hold `hostlen`/`servlen` bytes, the sizes
            // of the copies.
            unsafe {
                if want_host {
                    std::ptr::copy_nonoverlapping(h.as_ptr(), host, h.len());
                }
                if want_serv {
                    std::ptr::copy_nonoverlapping(s.as_ptr(), serv, s.len());
                }
            }
            errno::set(e);
            r
        }
        Err(Stop::CannotPark) => {
            // SAFETY: the caller's contract is libc's.
            unsafe { real::getnameinfo(addr, len, host, hostlen, serv, servlen, flags) }
        }
        Err(s) => eai_fail(s),
    })
}
