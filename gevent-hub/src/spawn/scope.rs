//! Structured concurrency: greenlets that borrow from the caller's stack, all ended
//! before the scope returns (as `std::thread::scope`).

use super::handle::{spawn, AnyGreenlet, Greenlet, JoinError};
use super::join::joinall;
use crate::greenlet::GreenletState;
use std::cell::RefCell;
use std::fmt;
use std::marker::PhantomData;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::rc::Rc;

/// Runs `f` with a [`Scope`] whose greenlets may borrow anything that outlives the
/// call (as [`std::thread::scope`]'s threads do), and returns once every greenlet
/// spawned in it has finished.
///
/// - If `f` returns, the scope waits for the greenlets it has not joined. If one of
///   them panicked, the scope then panics too ("a scoped greenlet panicked"), as
///   std's does.
/// - If `f` panics, or the greenlet running the scope is killed or its
///   [`Timeout`](crate::Timeout) expires (in `f` or while the scope waits), the
///   scope's greenlets are killed, waited for, and then the panic, kill or
///   timeout goes on.
///
/// No greenlet outlives the call: even when the thread ends under it, the scope ends
/// its greenlets one by one before its own frame goes.
///
/// # Examples
/// ```
/// use gevent_hub::{scope, sleep};
/// use std::cell::RefCell;
/// use std::time::Duration;
///
/// let words = vec!["hub", "greenlet", "libev"];
/// let lengths = RefCell::new(Vec::new());
/// scope(|s| {
///     let lengths = &lengths;
///     for w in &words {
///         // Borrows `words` and `lengths` from the stack: no Rc, no 'static.
///         s.spawn(move || {
///             sleep(Duration::from_millis(w.len() as u64));
///             lengths.borrow_mut().push(w.len());
///         });
///     }
/// });
/// assert_eq!(lengths.into_inner(), [3, 5, 8]);
/// ```
pub fn scope<'env, F, T>(f: F) -> T
where
    F: for<'scope> FnOnce(&'scope Scope<'scope, 'env>) -> T,
{
    let scope = Scope {
        children: RefCell::new(Vec::new()),
        _scope: PhantomData,
        _env: PhantomData,
    };
    let r = catch_unwind(AssertUnwindSafe(|| f(&scope)));
    let (late, child_panicked) = scope.end(r.is_err());
    match r {
        Err(p) => resume_unwind(p),
        Ok(v) => {
            if let Some(p) = late {
                resume_unwind(p);
            }
            if child_panicked {
                panic!("a scoped greenlet panicked");
            }
            v
        }
    }
}

/// The scope of [`scope`]: spawns greenlets that may borrow from the caller.
pub struct Scope<'scope, 'env: 'scope> {
    children: RefCell<Vec<Child>>,
    // Invariant in both, as std's scope: the borrows cannot be shortened.
    _scope: PhantomData<&'scope mut &'scope ()>,
    _env: PhantomData<&'env mut &'env ()>,
}

impl fmt::Debug for Scope<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scope")
            .field("greenlets", &self.children.borrow().len())
            .finish()
    }
}

/// A greenlet of the scope, as the scope's end sees it.
struct Child {
    handle: Box<dyn AnyGreenlet>,
    raw: Rc<GreenletState>,
    /// Joined by the caller: its panic was reported there.
    joined: Rc<std::cell::Cell<bool>>,
}

impl<'scope> Scope<'scope, '_> {
    /// Spawns `f` in a greenlet of this scope (it starts at the hub's next turn, as
    /// [`spawn`](crate::spawn)'s). `f` may borrow what outlives the scope; its value
    /// must be `'static`.
    #[track_caller]
    pub fn spawn<T: 'static>(
        &'scope self,
        f: impl FnOnce() -> T + 'scope,
    ) -> ScopedGreenlet<'scope, T> {
        let f: Box<dyn FnOnce() -> T + 'scope> = Box::new(f);
        // SAFETY: only the lifetime is changed. The greenlet runs `f` (or drops it
        // unrun) before `scope` returns or unwinds: `Scope::end` waits for every
        // greenlet spawned here to finish, and ends them itself if waiting cannot, so
        // nothing `f` borrows for 'scope is used after 'scope.
        let f: Box<dyn FnOnce() -> T + 'static> = unsafe { std::mem::transmute(f) };
        let g = spawn(f);
        let joined = Rc::new(std::cell::Cell::new(false));
        self.children.borrow_mut().push(Child {
            handle: Box::new(g.clone_handle()),
            raw: g.core_raw(),
            joined: joined.clone(),
        });
        ScopedGreenlet {
            g,
            joined,
            _scope: PhantomData,
        }
    }

    /// Waits for every greenlet of the scope (killing them first if `kill`, or if
    /// waiting cannot end). Returns a kill or timeout of the caller that arrived while
    /// it waited (to go on with once all are done), and whether a greenlet not joined
    /// by the caller panicked. Never unwinds.
    fn end(&self, mut kill: bool) -> (Option<crate::greenlet::PanicPayload>, bool) {
        let children = std::mem::take(&mut *self.children.borrow_mut());
        let mut late = None;
        loop {
            if kill {
                for c in &children {
                    c.handle.kill_nowait();
                }
            }
            if children.iter().all(done) {
                break;
            }
            let handles: Vec<&dyn AnyGreenlet> = children.iter().map(|c| &*c.handle).collect();
            match catch_unwind(AssertUnwindSafe(|| joinall(&handles, None, false))) {
                Ok(Ok(_)) => {}
                // The caller was killed, or its Timeout expired, while it waited: its
                // greenlets go first.
                Err(p) => {
                    late.get_or_insert(p);
                    kill = true;
                }
                // Nothing can end the wait (the hub has nothing else to run, or the
                // thread is ending): end them here, one by one.
                Ok(Err(_)) => {
                    for c in &children {
                        end_now(c);
                    }
                }
            }
        }
        let panicked = children.iter().any(|c| {
            !c.joined.get()
                && matches!(
                    c.handle.outcome(),
                    Some(super::handle::Outcome::Panicked(_))
                )
        });
        (late, panicked)
    }
}

/// Its function has returned or unwound (or was dropped unrun): nothing it borrowed
/// is used any more.
fn done(c: &Child) -> bool {
    c.handle.outcome().is_some() || c.raw.is_dead()
}

/// Ends a child at once, from the scope's greenlet: an unstarted one never runs (its
/// body, and what it borrowed, is dropped now); a started one unwinds with
/// `GreenletExit` until it finishes.
fn end_now(c: &Child) {
    if !c.raw.is_started() {
        c.handle.kill_nowait();
        return;
    }
    while !done(c) {
        crate::hub::end_greenlet_at_exit(&c.raw);
    }
}

/// A greenlet of a [`Scope`].
pub struct ScopedGreenlet<'scope, T> {
    g: Greenlet<T>,
    joined: Rc<std::cell::Cell<bool>>,
    _scope: PhantomData<&'scope ()>,
}

impl<T> fmt::Debug for ScopedGreenlet<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ScopedGreenlet").field(&self.g).finish()
    }
}

impl<T> ScopedGreenlet<'_, T> {
    /// Waits for it and returns its value (its panic is then the caller's to report,
    /// not the scope's).
    ///
    /// # Errors
    /// As [`Greenlet::join`].
    pub fn join(self) -> Result<T, JoinError> {
        self.joined.set(true);
        self.g.join()
    }

    /// The greenlet itself (its id, name, state, kill, links).
    pub fn greenlet(&self) -> &Greenlet<T> {
        &self.g
    }
}
