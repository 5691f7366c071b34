//! Waiting for many objects at once: [`joinall`], [`killall`], [`wait`], [`iwait`]. Each
//! object is subscribed to once (a sink gathers their notifications), whatever the
//! number of hub turns the wait spans.

use super::handle::{AnyGreenlet, Outcome};
use super::sleep::current_id;
use crate::error::{Error, Result};
use crate::hub::{deadline_after, SinkOwner, Wait, Waitable};
use std::fmt;
use std::time::Duration;

/// Subscribes a sink to every object of `objects` that is not ready yet, once; returns
/// the sink and which objects were ready from the start.
fn subscribe_all<O: Waitable + ?Sized>(objects: &[&O]) -> (SinkOwner, Vec<bool>) {
    let sink = SinkOwner::new();
    let ready: Vec<bool> = objects.iter().map(|o| o.is_ready()).collect();
    for (i, o) in objects.iter().enumerate() {
        if !ready[i] {
            o.subscribe(sink.waker(i));
        }
    }
    (sink, ready)
}

/// The indexes of the objects seen ready by a [`wait_for_many`] (`ready`) or ready
/// by now (`is_ready`), in order.
fn ready_indexes(ready: &[bool], is_ready: impl Fn(usize) -> bool) -> Vec<usize> {
    (0..ready.len())
        .filter(|&i| ready[i] || is_ready(i))
        .collect()
}

/// Waits until `done(&ready)` holds, where `ready[i]` is set once object `i` was ready
/// or notified (each object subscribed to once, each notification O(1)); `on_ready` is
/// told each index as it becomes ready and may end the wait early with an error.
/// Returns whether `done` held before `timeout`.
fn wait_for_many<O: Waitable + ?Sized>(
    what: &'static str,
    objects: &[&O],
    timeout: Option<Duration>,
    mut done: impl FnMut(usize) -> bool,
    mut on_ready: impl FnMut(usize) -> Result<()>,
) -> Result<(bool, Vec<bool>)> {
    let deadline = timeout.and_then(deadline_after);
    let (sink, mut ready) = subscribe_all(objects);
    let mut count = 0;
    for (i, r) in ready.iter().enumerate() {
        if *r {
            count += 1;
            on_ready(i)?;
        }
    }
    loop {
        if done(count) {
            return Ok((true, ready));
        }
        if !sink.wait(what, deadline)? {
            return Ok((false, ready));
        }
        for i in sink.take() {
            if !ready[i] {
                ready[i] = true;
                count += 1;
                on_ready(i)?;
            }
        }
    }
}

/// Waits for all `greenlets` to finish (up to `timeout`); returns whether they all did.
/// With `raise_error`, returns at the first one that panicked, with
/// [`Error::GreenletFailed`]. Each greenlet is subscribed to once, however many hub
/// turns the wait takes.
///
/// `greenlets` is anything that iterates over references to greenlets: `&gs` for a
/// `Vec<Greenlet<T>>`, `&[&a, &b]`, `gs.iter().filter(..)`, or a list of
/// `&dyn AnyGreenlet` to mix value types (`&[&a as &dyn AnyGreenlet, &b]`).
///
/// ```
/// use gevent_hub::{joinall, spawn};
///
/// let gs: Vec<_> = (0..3).map(|i| spawn(move || i * 2)).collect();
/// assert!(joinall(&gs, None, false).unwrap());
/// ```
///
/// # Errors
/// Wait errors, or the first failure with `raise_error`.
pub fn joinall<'a, G: AnyGreenlet + 'a>(
    greenlets: impl IntoIterator<Item = &'a G>,
    timeout: Option<Duration>,
    raise_error: bool,
) -> Result<bool> {
    let gs: Vec<&dyn AnyGreenlet> = greenlets.into_iter().map(|g| g as _).collect();
    joinall_dyn(&gs, timeout, raise_error)
}

fn joinall_dyn(
    greenlets: &[&dyn AnyGreenlet],
    timeout: Option<Duration>,
    raise_error: bool,
) -> Result<bool> {
    let failed = |i: usize| failure(greenlets[i], raise_error);
    let n = greenlets.len();
    let (all, _) = wait_for_many(
        "greenlets to finish (joinall)",
        greenlets,
        timeout,
        |count| count == n,
        failed,
    )?;
    Ok(all)
}

/// [`joinall`] with gevent's `count`: waits until `count` of `greenlets` have
/// finished (all of them if `count` is larger), or `timeout` passes, and returns the
/// indexes of those that have finished, in order, as gevent's `joinall` returns the
/// finished greenlets. With `raise_error`, returns at the first one that panicked,
/// with [`Error::GreenletFailed`] naming it.
///
/// A separate function because [`joinall`] returns whether all finished (a `bool`):
/// the indexes say which, and `wait`'s `count` returns the same for any
/// [`Waitable`].
///
/// # Examples
/// ```
/// use gevent_hub::{joinall_count, spawn, Event};
///
/// let never = Event::new();
/// let n2 = never.clone();
/// let gs = vec![
///     spawn(move || n2.wait().unwrap()),
///     spawn(|| ()),
///     spawn(|| ()),
/// ];
/// assert_eq!(joinall_count(&gs, 2, None, false).unwrap(), [1, 2]);
/// assert!(!gs[0].ready());
/// never.set();
/// assert_eq!(joinall_count(&gs, 3, None, false).unwrap(), [0, 1, 2]);
/// ```
///
/// # Errors
/// Wait errors, or the first failure with `raise_error`.
pub fn joinall_count<'a, G: AnyGreenlet + 'a>(
    greenlets: impl IntoIterator<Item = &'a G>,
    count: usize,
    timeout: Option<Duration>,
    raise_error: bool,
) -> Result<Vec<usize>> {
    let gs: Vec<&dyn AnyGreenlet> = greenlets.into_iter().map(|g| g as _).collect();
    let want = count.min(gs.len());
    let (_, ready) = wait_for_many(
        "greenlets to finish (joinall_count)",
        &gs,
        timeout,
        |n| n >= want,
        |i| failure(gs[i], raise_error),
    )?;
    Ok(ready_indexes(&ready, |i| gs[i].is_ready()))
}

/// With `raise_error`, a greenlet that panicked as an error naming it.
fn failure(g: &dyn AnyGreenlet, raise_error: bool) -> Result<()> {
    match g.outcome() {
        Some(Outcome::Panicked(m)) if raise_error => {
            Err(Error::GreenletFailed(format!("{}: {m}", g.name())))
        }
        _ => Ok(()),
    }
}

/// Kills all `greenlets` and, unless `block` is false, waits up to `timeout` for them
/// to finish; returns whether they all did. A caller that is among them is killed last,
/// at its next blocking point (with `block`, that is this wait).
///
/// `greenlets` as for [`joinall`].
///
/// # Errors
/// Wait errors.
pub fn killall<'a, G: AnyGreenlet + 'a>(
    greenlets: impl IntoIterator<Item = &'a G>,
    block: bool,
    timeout: Option<Duration>,
) -> Result<bool> {
    let greenlets: Vec<&dyn AnyGreenlet> = greenlets.into_iter().map(|g| g as _).collect();
    let me = current_id();
    let mut mine = None;
    for &g in &greenlets {
        if g.id() == Some(me) {
            mine = Some(g);
        } else {
            g.kill_nowait();
        }
    }
    if let Some(g) = mine {
        g.kill_nowait();
    }
    if !block {
        return Ok(greenlets.iter().all(|g| g.is_ready()));
    }
    joinall_dyn(&greenlets, timeout, false)
}

/// Waits until `count` of `objects` (all of them if `None`) are ready, or `timeout`
/// passes; returns the indexes of the ready ones, in order. An object that became ready
/// while this greenlet waited counts even if it is no longer (an [`Event`](crate::Event)
/// set and cleared again).
///
/// `objects` is anything that iterates over references to [`Waitable`]s, as for
/// [`joinall`]; to mix kinds, make them `&dyn Waitable`:
///
/// ```
/// use gevent_hub::{spawn, wait, Event, Waitable};
///
/// let e = Event::new();
/// let g = spawn(|| ());
/// assert_eq!(wait(&[&e as &dyn Waitable, &g], None, Some(1)).unwrap(), [1]);
/// ```
///
/// # Errors
/// Wait errors.
pub fn wait<'a, W: Waitable + 'a>(
    objects: impl IntoIterator<Item = &'a W>,
    timeout: Option<Duration>,
    count: Option<usize>,
) -> Result<Vec<usize>> {
    let objects: Vec<&dyn Waitable> = objects.into_iter().map(|o| o as _).collect();
    let objects = &objects[..];
    let want = count.unwrap_or(objects.len()).min(objects.len());
    let (_, ready) = wait_for_many(
        "objects to become ready (wait)",
        objects,
        timeout,
        |n| n >= want,
        |_| Ok(()),
    )?;
    Ok(ready_indexes(&ready, |i| objects[i].is_ready()))
}

/// Yields the indexes of `objects` as they become ready (gevent's `iwait`); ends when
/// all have, or when `timeout` (for the whole iteration) passes. Objects already ready
/// come first, in order; the others in the order they became ready. Each object is
/// subscribed to once for the whole iteration, so the loop body may block on other
/// things between items without losing any.
pub fn iwait<'a>(objects: &'a [&'a dyn Waitable], timeout: Option<Duration>) -> Iwait<'a> {
    Iwait {
        objects,
        seen: vec![false; objects.len()],
        left: objects.len(),
        deadline: timeout.map(deadline_after),
        sink: None,
        queue: std::collections::VecDeque::new(),
    }
}

/// The iterator of [`iwait`].
pub struct Iwait<'a> {
    objects: &'a [&'a dyn Waitable],
    seen: Vec<bool>,
    /// Objects not yielded yet.
    left: usize,
    /// `Some(None)`: a timeout too long for the clock (no deadline).
    deadline: Option<Option<std::time::Instant>>,
    /// Subscribed on the first `next`.
    sink: Option<SinkOwner>,
    /// Ready, not yielded yet, in order.
    queue: std::collections::VecDeque<usize>,
}

impl fmt::Debug for Iwait<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Iwait").field("left", &self.left).finish()
    }
}

impl Iterator for Iwait<'_> {
    type Item = Result<usize>;
    fn next(&mut self) -> Option<Result<usize>> {
        if self.left == 0 {
            self.sink = None;
            return None;
        }
        if self.sink.is_none() {
            let (sink, ready) = subscribe_all(self.objects);
            self.queue.extend(
                ready
                    .iter()
                    .enumerate()
                    .filter(|(_, r)| **r)
                    .map(|(i, _)| i),
            );
            self.sink = Some(sink);
        }
        let sink = self.sink.as_ref()?;
        loop {
            self.queue.extend(sink.take());
            while let Some(i) = self.queue.pop_front() {
                if !self.seen[i] {
                    self.seen[i] = true;
                    self.left -= 1;
                    return Some(Ok(i));
                }
            }
            match sink.wait("objects to become ready (iwait)", self.deadline.flatten()) {
                Ok(true) => {}
                Ok(false) => {
                    self.left = 0;
                    self.sink = None;
                    return None;
                }
                Err(e) => {
                    self.left = 0;
                    self.sink = None;
                    return Some(Err(e));
                }
            }
        }
    }
}

/// Runs the hub until its loop has nothing left to do — no greenlet to run, no
/// timer, no watcher that keeps it alive — then returns (gevent's `gevent.wait()`
/// with no arguments: the end of a program whose work is all in greenlets).
///
/// # Examples
/// ```
/// use gevent_hub::{hub_wait, sleep, spawn};
/// use std::cell::Cell;
/// use std::rc::Rc;
/// use std::time::Duration;
///
/// let done = Rc::new(Cell::new(0));
/// for i in 1..=3 {
///     let d = done.clone();
///     spawn(move || {
///         sleep(Duration::from_millis(i));
///         d.set(d.get() + 1);
///     });
/// }
/// hub_wait().unwrap();
/// assert_eq!(done.get(), 3);
/// ```
///
/// # Errors
/// [`Error::NotMainGreenlet`] from a spawned greenlet (only the main greenlet is
/// resumed when the loop runs out of work); as any wait otherwise.
pub fn hub_wait() -> Result<()> {
    const WHAT: &str = "hub_wait (the loop to run out of work)";
    if !crate::greenlet::is_main(&crate::greenlet::current_rc()) {
        return Err(Error::NotMainGreenlet("hub_wait"));
    }
    let w = Wait::new(WHAT)?;
    loop {
        match w.park() {
            Err(Error::WouldBlockForever(_)) => return Ok(()),
            // Nothing holds this wait's wakers: a stray wake-up.
            Ok(_) => continue,
            Err(e) => return Err(e),
        }
    }
}
