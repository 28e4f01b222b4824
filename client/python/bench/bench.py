#!/usr/bin/env python3
"""Latency of hasp.FileLock against py-filelock's FileLock, in one run.

    python3 client/python/bench/bench.py [--rounds N] [--handoffs N] [--dir D]

Needs a haspd (HASP_SOCKET or the default socket) and py-filelock
(python3-filelock). Two figures per lock, median and p99 in microseconds:

- uncontended: ``with FileLock(path): pass`` (acquire + release), one process;
- hand-off: process A holds, process B waits in acquire(); A releases; the time
  from just before A's release() to just after B's acquire() returns
  (CLOCK_MONOTONIC is one clock for both processes).

A benchmark, not a test: B is given a few milliseconds to be waiting before A
releases.
"""

import argparse
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import hasp  # noqa: E402

try:
    import filelock  # noqa: E402
except ImportError:  # pragma: no cover
    sys.exit("py-filelock is not installed (apt-get install python3-filelock)")


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100.0 * (len(xs) - 1))))]


def uncontended(cls, path, rounds):
    lock = cls(path)
    for _ in range(20):  # warm up
        with lock:
            pass
    out = []
    for _ in range(rounds):
        t0 = time.perf_counter_ns()
        with lock:
            pass
        out.append((time.perf_counter_ns() - t0) / 1000.0)
    return out


def handoff(cls, path, rounds):
    go_r, go_w = os.pipe()
    back_r, back_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # B
        os.close(go_w)
        os.close(back_r)
        lock = cls(path)
        try:
            while os.read(go_r, 1) == b"g":
                lock.acquire()
                t1 = time.monotonic_ns()
                lock.release()
                os.write(back_w, b"%d\n" % t1)
        finally:
            os._exit(0)
    os.close(go_r)
    os.close(back_w)
    lock = cls(path)
    back = os.fdopen(back_r)
    out = []
    try:
        for _ in range(rounds):
            lock.acquire()
            os.write(go_w, b"g")
            time.sleep(0.005)  # B reaches acquire() and waits
            t0 = time.monotonic_ns()
            lock.release()
            t1 = int(back.readline())
            out.append((t1 - t0) / 1000.0)
    finally:
        os.write(go_w, b"q")
        os.waitpid(pid, 0)
    return out


def row(name, xs):
    return "%-22s median %9.1f us   p99 %9.1f us   (n=%d)" % (name, statistics.median(xs),
                                                              pct(xs, 99), len(xs))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=2000)
    ap.add_argument("--handoffs", type=int, default=200)
    ap.add_argument("--dir", default=None, help="where the lock files go")
    a = ap.parse_args()
    d = a.dir or tempfile.mkdtemp(prefix="hasp-bench-")
    hp, fp = os.path.join(d, "hasp.lock"), os.path.join(d, "filelock.lock")
    res = {
        ("hasp", "uncontended"): uncontended(hasp.FileLock, hp, a.rounds),
        ("filelock", "uncontended"): uncontended(filelock.FileLock, fp, a.rounds),
        ("hasp", "hand-off"): handoff(hasp.FileLock, hp, a.handoffs),
        ("filelock", "hand-off"): handoff(filelock.FileLock, fp, a.handoffs),
    }
    print("python %s, filelock %s, %d CPUs, affinity %s"
          % (sys.version.split()[0], filelock.__version__, os.cpu_count(),
             sorted(os.sched_getaffinity(0))))
    for what in ("uncontended", "hand-off"):
        h, f = res[("hasp", what)], res[("filelock", what)]
        print(row("hasp %s" % what, h))
        print(row("filelock %s" % what, f))
        print("%-22s median %9.3gx       p99 %9.3gx" % (
            "hasp/filelock", statistics.median(h) / statistics.median(f), pct(h, 99) / pct(f, 99)))


if __name__ == "__main__":
    main()
