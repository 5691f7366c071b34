//! [`Flags`]: the backends and behaviour flags a loop is made with, by gevent's names
//! (`"epoll"`, `"poll,signalfd"`), and what this build and kernel support.

use crate::error::{Error, Result};
use libev_sys as ffi;
use std::fmt;
use std::sync::OnceLock;

/// Loop creation flags: a backend set plus libev's behaviour flags, as in
/// `ev_loop_new(flags)`. Parse them from gevent-style names with [`str::parse`]:
/// `"epoll"`, `"poll,select"`, `"epoll,signalfd,nosigmask"`.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct Flags(pub u32);

/// libev's behaviour flags, by gevent's names. The backends' names come from
/// [`libev_sys::BACKENDS`], the workspace's one list of them.
const BEHAVIOUR_FLAGS: &[(&str, u32)] = &[
    ("noenv", ffi::EVFLAG_NOENV),
    ("forkcheck", ffi::EVFLAG_FORKCHECK),
    ("noinotify", ffi::EVFLAG_NOINOTIFY),
    ("signalfd", ffi::EVFLAG_SIGNALFD),
    ("nosigmask", ffi::EVFLAG_NOSIGMASK),
    ("notimerfd", ffi::EVFLAG_NOTIMERFD),
];
const BACKEND_MASK: u32 = ffi::EVBACKEND_MASK;

/// Every name [`Flags`] parses, with its bits: the backends, then the behaviour flags.
fn flag_names() -> impl Iterator<Item = (&'static str, u32)> {
    ffi::BACKENDS.iter().chain(BEHAVIOUR_FLAGS).copied()
}

/// The names of [`flag_names`] as a list for messages: `"select, poll, …"`.
fn valid_names() -> &'static str {
    static VALID: OnceLock<String> = OnceLock::new();
    VALID.get_or_init(|| flag_names().map(|(n, _)| n).collect::<Vec<_>>().join(", "))
}

impl Flags {
    /// Let libev choose (`EVFLAG_AUTO`): the recommended backends.
    pub const AUTO: Flags = Flags(0);
    /// The backend bits of these flags.
    pub fn backends(self) -> u32 {
        self.0 & BACKEND_MASK
    }
}

impl std::ops::BitOr for Flags {
    type Output = Flags;
    fn bitor(self, o: Flags) -> Flags {
        Flags(self.0 | o.0)
    }
}

impl std::str::FromStr for Flags {
    type Err = Error;
    /// Comma- or space-separated names; see [`Flags`].
    fn from_str(s: &str) -> Result<Flags> {
        let mut bits = 0;
        for name in s.split([',', ' ']).map(str::trim).filter(|n| !n.is_empty()) {
            let lower = name.to_ascii_lowercase();
            let lower = lower.strip_prefix("ev").unwrap_or(&lower);
            match flag_names().find(|&(n, _)| n == lower) {
                Some((_, b)) => bits |= b,
                None => {
                    return Err(Error::UnknownBackend {
                        name: name.to_owned(),
                        valid: valid_names(),
                    })
                }
            }
        }
        Ok(Flags(bits))
    }
}

impl fmt::Debug for Flags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&backend_names(self.0))
    }
}

/// The names of the bits set in `bits`, comma-separated (`"epoll,signalfd"`).
pub fn backend_names(bits: u32) -> String {
    let names: Vec<&str> = flag_names()
        .filter(|&(_, b)| bits & b != 0)
        .map(|(n, _)| n)
        .collect();
    if names.is_empty() {
        "auto".into()
    } else {
        names.join(",")
    }
}

/// The backends this libev was built with and this kernel supports. (io_uring is not
/// built: libev 4.33 cannot tear an io_uring loop down cleanly; see
/// `libev-sys/csrc/ev_config.h`.)
pub fn supported_backends() -> Flags {
    // SAFETY: a getter of libev's build and the kernel, without preconditions.
    Flags(unsafe { ffi::ev_supported_backends() })
}

/// The backends libev recommends on this system (what `Flags::AUTO` picks from).
pub fn recommended_backends() -> Flags {
    // SAFETY: a getter of libev's build and the kernel, without preconditions.
    Flags(unsafe { ffi::ev_recommended_backends() })
}

/// Refuses a backend set with nothing usable in it (libev would fail or fall back).
pub(crate) fn check_backends(flags: Flags) -> Result<Flags> {
    let wanted = flags.backends();
    if wanted != 0 && wanted & supported_backends().0 == 0 {
        return Err(Error::BackendUnavailable(backend_names(wanted)));
    }
    Ok(flags)
}
