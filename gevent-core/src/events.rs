//! [`Events`]: the `revents` bit set a callback receives, and the io interest mask.

use libev_sys as ffi;
use std::fmt;
use std::ops::{BitAnd, BitOr, BitOrAssign};

/// A set of libev event bits (`EV_READ`, `EV_TIMER`, …).
///
/// An io watcher is created with an interest mask (`Events::READ | Events::WRITE`);
/// every callback receives the events that made it run.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Events(u32);

macro_rules! bits {
    ($($(#[$m:meta])* $name:ident = $c:ident;)*) => {
        impl Events {
            $($(#[$m])* pub const $name: Events = Events(ffi::$c as u32);)*
        }
        const NAMES: &[(&str, u32)] = &[$((stringify!($name), ffi::$c as u32)),*];
    };
}

bits! {
    /// No events.
    NONE = EV_NONE;
    /// The fd is readable.
    READ = EV_READ;
    /// The fd is writable.
    WRITE = EV_WRITE;
    /// A timer expired.
    TIMER = EV_TIMER;
    /// A periodic watcher reached its time.
    PERIODIC = EV_PERIODIC;
    /// A signal arrived.
    SIGNAL = EV_SIGNAL;
    /// A child changed status.
    CHILD = EV_CHILD;
    /// A stat watcher saw the path change.
    STAT = EV_STAT;
    /// Nothing else to do.
    IDLE = EV_IDLE;
    /// The loop is about to block.
    PREPARE = EV_PREPARE;
    /// The loop has just polled.
    CHECK = EV_CHECK;
    /// An embedded loop needs attention.
    EMBED = EV_EMBED;
    /// The loop was re-initialised after `fork`.
    FORK = EV_FORK;
    /// The loop is being destroyed.
    CLEANUP = EV_CLEANUP;
    /// An async watcher was sent to.
    ASYNC = EV_ASYNC;
    /// A user-defined event (for `feed`).
    CUSTOM = EV_CUSTOM;
    /// libev stopped the watcher because of an error (for io: a bad fd).
    ERROR = EV_ERROR;
}

impl Events {
    /// The raw bits.
    pub const fn bits(self) -> u32 {
        self.0
    }
    /// From raw bits, as libev passes them.
    pub const fn from_bits(bits: u32) -> Events {
        Events(bits)
    }
    /// True if every bit of `other` is set in `self`.
    pub const fn contains(self, other: Events) -> bool {
        self.0 & other.0 == other.0
    }
    /// True if any bit of `other` is set in `self`.
    pub const fn intersects(self, other: Events) -> bool {
        self.0 & other.0 != 0
    }
    /// True if no bit is set.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl BitOr for Events {
    type Output = Events;
    fn bitor(self, o: Events) -> Events {
        Events(self.0 | o.0)
    }
}
impl BitOrAssign for Events {
    fn bitor_assign(&mut self, o: Events) {
        self.0 |= o.0;
    }
}
impl BitAnd for Events {
    type Output = Events;
    fn bitand(self, o: Events) -> Events {
        Events(self.0 & o.0)
    }
}

impl fmt::Debug for Events {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 == 0 {
            return f.write_str("NONE");
        }
        let mut rest = self.0;
        let mut first = true;
        for &(name, bit) in NAMES {
            if bit != 0 && rest & bit == bit {
                if !first {
                    f.write_str(" | ")?;
                }
                f.write_str(name)?;
                first = false;
                rest &= !bit;
            }
        }
        if rest != 0 {
            if !first {
                f.write_str(" | ")?;
            }
            write!(f, "{rest:#x}")?;
        }
        Ok(())
    }
}
