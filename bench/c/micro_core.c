/*
 * The C side of the core micro-benchmarks (src/bin/micro_core.rs): the same
 * operations the Rust binding performs, written directly against the same libev
 * (libev-sys's build, same ev_config.h), the way a C program would.
 *
 * Each c_*_ns(iters) function makes its own loop, sets up outside the timed region,
 * times `iters` operations with CLOCK_MONOTONIC, tears down, and returns nanoseconds
 * per operation. A counter that the callbacks bump is checked after the timed region,
 * so no callback can have been skipped; a mismatch returns -1.
 */
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include "ev_config.h"
#include "ev.h"

static double
now_ns (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static unsigned long counter;

static void
noop_timer_cb (struct ev_loop *loop, ev_timer *w, int revents)
{
  (void)loop; (void)w; (void)revents;
}

static void
noop_io_cb (struct ev_loop *loop, ev_io *w, int revents)
{
  (void)loop; (void)w; (void)revents;
}

static void
count_idle_cb (struct ev_loop *loop, ev_idle *w, int revents)
{
  (void)loop; (void)w; (void)revents;
  ++counter;
}

static void
count_timer_cb (struct ev_loop *loop, ev_timer *w, int revents)
{
  (void)loop; (void)w; (void)revents;
  ++counter;
}

/* ev_timer_start + ev_timer_stop on an initialised timer. */
double
c_timer_start_stop_ns (long iters)
{
  struct ev_loop *loop = ev_loop_new (EVFLAG_AUTO);
  ev_timer w;
  long i;
  double t0, t1;

  if (!loop)
    return -1;
  ev_timer_init (&w, noop_timer_cb, 1., 0.);
  t0 = now_ns ();
  for (i = 0; i < iters; ++i)
    {
      ev_timer_start (loop, &w);
      ev_timer_stop (loop, &w);
    }
  t1 = now_ns ();
  ev_loop_destroy (loop);
  return (t1 - t0) / iters;
}

/* ev_io_start + ev_io_stop for EV_READ on a pipe's read end. */
double
c_io_start_stop_ns (long iters)
{
  struct ev_loop *loop = ev_loop_new (EVFLAG_AUTO);
  int fds[2];
  ev_io w;
  long i;
  double t0, t1;

  if (!loop)
    return -1;
  if (pipe (fds))
    {
      ev_loop_destroy (loop);
      return -1;
    }
  ev_io_init (&w, noop_io_cb, fds[0], EV_READ);
  t0 = now_ns ();
  for (i = 0; i < iters; ++i)
    {
      ev_io_start (loop, &w);
      ev_io_stop (loop, &w);
    }
  t1 = now_ns ();
  ev_loop_destroy (loop);
  close (fds[0]);
  close (fds[1]);
  return (t1 - t0) / iters;
}

/*
 * gevent's run_callback done by hand in C: a prepare watcher drains a plain array of
 * (function, argument) pairs just before the loop would block. `iters` callbacks are
 * queued in batches of `batch`, and each batch is drained by one ev_run (EVRUN_NOWAIT).
 */
struct cb_item
{
  void (*fn) (void *);
  void *arg;
};

struct cb_queue
{
  struct cb_item *items;
  long len, cap;
};

static void
bump (void *arg)
{
  ++*(unsigned long *)arg;
}

static void
drain_cb (struct ev_loop *loop, ev_prepare *w, int revents)
{
  struct cb_queue *q = w->data;
  long i;

  (void)loop; (void)revents;
  for (i = 0; i < q->len; ++i)
    q->items[i].fn (q->items[i].arg);
  q->len = 0;
}

double
c_run_callback_ns (long iters, long batch)
{
  struct ev_loop *loop = ev_loop_new (EVFLAG_AUTO);
  struct cb_queue q;
  ev_prepare drain;
  long rounds = iters / batch, r, i;
  double t0, t1;

  if (!loop || batch <= 0 || rounds <= 0)
    return -1;
  q.items = malloc (sizeof (struct cb_item) * batch);
  q.len = 0;
  q.cap = batch;
  if (!q.items)
    return -1;
  ev_prepare_init (&drain, drain_cb);
  drain.data = &q;
  ev_prepare_start (loop, &drain);
  counter = 0;
  t0 = now_ns ();
  for (r = 0; r < rounds; ++r)
    {
      for (i = 0; i < batch && q.len < q.cap; ++i)
        {
          q.items[q.len].fn = bump;
          q.items[q.len].arg = &counter;
          ++q.len;
        }
      ev_run (loop, EVRUN_NOWAIT);
    }
  t1 = now_ns ();
  ev_prepare_stop (loop, &drain);
  ev_loop_destroy (loop);
  free (q.items);
  if (counter != (unsigned long)(rounds * batch))
    return -1;
  return (t1 - t0) / (rounds * batch);
}

/* One ev_run (EVRUN_NOWAIT) with one active idle watcher (so the poll does not block). */
double
c_loop_iteration_ns (long iters)
{
  struct ev_loop *loop = ev_loop_new (EVFLAG_AUTO);
  ev_idle idle;
  long i;
  double t0, t1;

  if (!loop)
    return -1;
  ev_idle_init (&idle, count_idle_cb);
  ev_idle_start (loop, &idle);
  counter = 0;
  t0 = now_ns ();
  for (i = 0; i < iters; ++i)
    ev_run (loop, EVRUN_NOWAIT);
  t1 = now_ns ();
  ev_idle_stop (loop, &idle);
  ev_loop_destroy (loop);
  if (counter != (unsigned long)iters)
    return -1;
  return (t1 - t0) / iters;
}

/* ev_feed_event on an active (far-off) timer, then ev_invoke_pending runs its callback. */
double
c_feed_invoke_ns (long iters)
{
  struct ev_loop *loop = ev_loop_new (EVFLAG_AUTO);
  ev_timer w;
  long i;
  double t0, t1;

  if (!loop)
    return -1;
  ev_timer_init (&w, count_timer_cb, 3600., 0.);
  ev_timer_start (loop, &w);
  counter = 0;
  t0 = now_ns ();
  for (i = 0; i < iters; ++i)
    {
      ev_feed_event (loop, &w, EV_CUSTOM);
      ev_invoke_pending (loop);
    }
  t1 = now_ns ();
  ev_timer_stop (loop, &w);
  ev_loop_destroy (loop);
  if (counter != (unsigned long)iters)
    return -1;
  return (t1 - t0) / iters;
}

/* ev_feed_event, then one ev_run (EVRUN_NOWAIT) that invokes it. */
double
c_feed_run_nowait_ns (long iters)
{
  struct ev_loop *loop = ev_loop_new (EVFLAG_AUTO);
  ev_timer w;
  long i;
  double t0, t1;

  if (!loop)
    return -1;
  ev_timer_init (&w, count_timer_cb, 3600., 0.);
  ev_timer_start (loop, &w);
  counter = 0;
  t0 = now_ns ();
  for (i = 0; i < iters; ++i)
    {
      ev_feed_event (loop, &w, EV_CUSTOM);
      ev_run (loop, EVRUN_NOWAIT);
    }
  t1 = now_ns ();
  ev_timer_stop (loop, &w);
  ev_loop_destroy (loop);
  if (counter != (unsigned long)iters)
    return -1;
  return (t1 - t0) / iters;
}
