//! Greenlet-local storage (gevent's `gevent.local.local`): a value per greenlet.

use crate::hub::record::current_record;
use std::any::Any;
use std::fmt;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};

/// A value per greenlet, made on a greenlet's first access and dropped when that
/// greenlet's function returns (gevent's `gevent.local.local`). `thread_local!` is
/// one value for all the greenlets of a thread; this is one for each.
///
/// The main greenlet's value lives until the thread ends. Dropping the
/// `GreenletLocal` itself does not drop the values greenlets still hold: each goes
/// with its greenlet.
///
/// # Examples
/// ```
/// use gevent_hub::{spawn, GreenletLocal};
/// use std::cell::RefCell;
/// use std::rc::Rc;
///
/// // A request id per greenlet, as a web framework keeps one per request.
/// let request: Rc<GreenletLocal<RefCell<String>>> = Rc::new(GreenletLocal::new(RefCell::default));
/// let handlers: Vec<_> = (0..3)
///     .map(|i| {
///         let request = request.clone();
///         spawn(move || {
///             request.with(|r| *r.borrow_mut() = format!("request {i}"));
///             gevent_hub::sleep(std::time::Duration::ZERO); // the others run here
///             request.with(|r| r.borrow().clone())
///         })
///     })
///     .collect();
/// let seen: Vec<String> = handlers.into_iter().map(|h| h.join().unwrap()).collect();
/// assert_eq!(seen, ["request 0", "request 1", "request 2"]);
/// ```
pub struct GreenletLocal<T: 'static> {
    id: u64,
    init: Box<dyn Fn() -> T>,
}

impl<T: 'static> fmt::Debug for GreenletLocal<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GreenletLocal")
            .field("id", &self.id)
            .finish()
    }
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

impl<T: 'static> GreenletLocal<T> {
    /// A local whose value in each greenlet starts as `init()`.
    pub fn new(init: impl Fn() -> T + 'static) -> GreenletLocal<T> {
        GreenletLocal {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            init: Box::new(init),
        }
    }

    /// Runs `f` with the running greenlet's value (made first if this greenlet has
    /// none yet). `f` may use other locals, and this one too.
    pub fn with<R>(&self, f: impl FnOnce(&T) -> R) -> R {
        let v = self.value();
        let v = v
            .downcast_ref::<T>()
            .unwrap_or_else(|| unreachable!("a local's id holds only its own type"));
        f(v)
    }

    /// True if the running greenlet has a value yet.
    pub fn is_set(&self) -> bool {
        current_record()
            .locals
            .borrow()
            .iter()
            .any(|(id, _)| *id == self.id)
    }

    fn value(&self) -> Rc<dyn Any> {
        let rec = current_record();
        let found = rec
            .locals
            .borrow()
            .iter()
            .find(|(id, _)| *id == self.id)
            .map(|(_, v)| v.clone());
        if let Some(v) = found {
            return v;
        }
        // Made outside the borrow: `init` may use locals too.
        let v: Rc<dyn Any> = Rc::new((self.init)());
        rec.locals.borrow_mut().push((self.id, v.clone()));
        v
    }
}

/// Drops the running greenlet's local values (its function has returned). Values
/// made by the drops themselves are dropped too.
pub(crate) fn drop_locals() {
    let rec = current_record();
    loop {
        let values = std::mem::take(&mut *rec.locals.borrow_mut());
        if values.is_empty() {
            return;
        }
        drop(values);
    }
}
