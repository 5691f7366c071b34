//! The greenlet API on the hub, gevent's: [`spawn`] and [`Builder`], the
//! [`Greenlet`] handle (`join`, `kill`, `link`), [`joinall`], [`killall`],
//! [`wait`]/[`iwait`], [`sleep`], [`idle`], [`Group`], and [`Timeout`].
//!
//! A spawned greenlet's parent is the hub; its first switch is queued with
//! `loop.run_callback`, so it starts at the hub's next prepare phase. It runs whether
//! or not its [`Greenlet`] handle is kept; the handle is how to get its result.
//!
//! Parts: [`handle`] (spawning, the handle, links, kills), [`join`] (waiting for many
//! at once), [`sleep`](mod@sleep) (`sleep`, `idle`, who is running), [`group`],
//! [`timeout`].

pub(crate) mod group;
pub(crate) mod handle;
pub(crate) mod join;
pub(crate) mod local;
pub(crate) mod report;
pub(crate) mod scope;
pub(crate) mod sleep;
pub(crate) mod timeout;

pub use group::{Callback, Group, Imap};
pub use handle::{
    spawn, spawn_later, AnyGreenlet, Builder, Greenlet, GreenletInfo, JoinError, LinkId, Outcome,
};
pub use join::{hub_wait, iwait, joinall, joinall_count, killall, wait, Iwait};
pub use local::GreenletLocal;
pub use scope::{scope, Scope, ScopedGreenlet};
pub use sleep::{current_id, current_name, idle, sleep, try_sleep};
pub use timeout::{with_timeout, with_timeout_value, Timeout, TimeoutExpired};
