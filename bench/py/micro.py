#!/usr/bin/env python3
"""The hub and toolkit micro-benchmarks of src/bin/micro_hub.rs, in Python gevent: the
same operations under the same names, in ns per operation (best of RUNS timed runs
after one warm-up), so that the report can show the ratios.

Usage: micro.py [SCALE] [--json FILE]
"""
import json
import sys
import time

import gevent
import gevent.event
import gevent.lock
import gevent.queue
import gevent.threadpool
import greenlet

from stress import stress

RUNS = 5


def raw_greenlet_round_trip(n):
    main = greenlet.getcurrent()

    def body():
        while True:
            main.switch()

    g = greenlet.greenlet(body)
    t0 = time.perf_counter_ns()
    for _ in range(n):
        g.switch()
    t = time.perf_counter_ns() - t0
    g.throw(greenlet.GreenletExit)
    return t / n


def hub_sleep0(n):
    def body():
        for _ in range(n):
            gevent.sleep(0)

    t0 = time.perf_counter_ns()
    gevent.joinall([gevent.spawn(body), gevent.spawn(body)], raise_error=True)
    return (time.perf_counter_ns() - t0) / (2 * n)


def event_ping_pong(n):
    e1, e2 = gevent.event.Event(), gevent.event.Event()

    def a():
        for _ in range(n):
            e1.set()
            e2.wait()
            e2.clear()

    def b():
        for _ in range(n):
            e1.wait()
            e1.clear()
            e2.set()

    t0 = time.perf_counter_ns()
    gevent.joinall([gevent.spawn(a), gevent.spawn(b)], raise_error=True)
    return (time.perf_counter_ns() - t0) / n


def spawn_join(n):
    def f(i):
        return i

    t0 = time.perf_counter_ns()
    for i in range(n):
        g = gevent.spawn(f, i)
        g.join()
    return (time.perf_counter_ns() - t0) / n


def queue_put_get(n):
    q = gevent.queue.Queue(maxsize=1)
    total = []

    def producer():
        for i in range(n):
            q.put(i)

    def consumer():
        s = 0
        for _ in range(n):
            s += q.get()
        total.append(s)

    t0 = time.perf_counter_ns()
    gevent.joinall([gevent.spawn(producer), gevent.spawn(consumer)], raise_error=True)
    t = time.perf_counter_ns() - t0
    assert total == [n * (n - 1) // 2], "the consumer got the wrong items"
    return t / n


def event_set_wait(n):
    e = gevent.event.Event()
    t0 = time.perf_counter_ns()
    for _ in range(n):
        e.set()
        e.wait()
        e.clear()
    return (time.perf_counter_ns() - t0) / n


def semaphore(n):
    s = gevent.lock.Semaphore(1)
    t0 = time.perf_counter_ns()
    for _ in range(n):
        s.acquire()
        s.release()
    return (time.perf_counter_ns() - t0) / n


def threadpool_round_trip(n):
    pool = gevent.threadpool.ThreadPool(1)

    def f(i):
        return i

    def body():
        t0 = time.perf_counter_ns()
        for i in range(n):
            pool.apply(f, (i,))
        return (time.perf_counter_ns() - t0) / n

    g = gevent.spawn(body)
    r = g.get()
    pool.kill()
    return r


def busy_loop(n):
    t0 = time.perf_counter_ns()
    for _ in range(n):
        stress()
    return (time.perf_counter_ns() - t0) / n


ROWS = [
    ("raw greenlet switch round trip", "hub", 300_000, raw_greenlet_round_trip),
    ("hub switch: sleep(0)", "hub", 100_000, hub_sleep0),
    ("Event ping-pong round trip", "hub", 50_000, event_ping_pong),
    ("spawn+join", "hub", 50_000, spawn_join),
    ("Queue put+get (two greenlets)", "toolkit", 50_000, queue_put_get),
    ("Event set+wait (already set)", "toolkit", 300_000, event_set_wait),
    ("Semaphore acquire+release", "toolkit", 300_000, semaphore),
    ("ThreadPool round trip", "toolkit", 5_000, threadpool_round_trip),
    ("busy loop: the slides' stress()", "calib", 300, busy_loop),
]


def main(argv):
    scale, out = 1.0, None
    args = iter(argv)
    for a in args:
        if a == "--json":
            out = next(args)
        else:
            scale = float(a)
    print("Python gevent %s (greenlet %s) on %s, best of %d runs, ns/op"
          % (gevent.__version__, greenlet.__version__, sys.version.split()[0], RUNS))
    print("%-40s %10s" % ("operation", "ns/op"))
    started = time.perf_counter()
    records = []
    for name, group, iters, fn in ROWS:
        n = max(10, int(iters * scale))
        fn(n)
        best = min(fn(n) for _ in range(RUNS))
        print("%-40s %10.1f" % (name, best))
        records.append({"kind": "micro", "group": group, "name": name,
                        "impl": "python-gevent", "ns": best, "iters": n})
    print("total time %.1f s" % (time.perf_counter() - started))
    if out:
        with open(out, "a") as f:
            for r in records:
                f.write(json.dumps(r) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
