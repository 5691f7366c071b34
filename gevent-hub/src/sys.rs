//! The one helper every raw libc call of this crate goes through (mio's habit): a
//! `-1` return becomes the `io::Error` for the `errno` it set, anything else is the
//! call's result. The `unsafe` stays at the call site, with the SAFETY comment that
//! belongs to that call.

use std::io;

/// `-1` from a libc call as the `errno` it set; any other value as is.
pub(crate) fn cvt<T: IsMinusOne>(r: T) -> io::Result<T> {
    if r.is_minus_one() {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// Integer types libc calls return `-1` in.
pub(crate) trait IsMinusOne: Copy {
    fn is_minus_one(self) -> bool;
}

impl IsMinusOne for libc::c_int {
    fn is_minus_one(self) -> bool {
        self == -1
    }
}

impl IsMinusOne for libc::ssize_t {
    fn is_minus_one(self) -> bool {
        self == -1
    }
}
