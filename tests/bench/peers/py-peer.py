#!/usr/bin/env python3
"""py-filelock's FileLock or hasp.FileLock, for compare.sh, measured by
client/python/bench/bench.py's functions and printed as the C peers print:

    py-peer.py [--pairs N] [--handoffs N] filelock|hasp DIR
    py-peer.py --probe filelock|hasp DIR    exit 0 when the lock works

    result pair MEDIAN_US P99_US N        with FileLock(path): pass
    result handoff MEDIAN_US P99_US N     A releases, B returns from acquire()

hasp.FileLock asks the haspd of $HASP_SOCKET. py-filelock's waiter polls
(its default poll_interval, 50 ms); bench.py gives B 5 ms to be waiting.
Needs py-filelock (Debian's python3-filelock) either way: bench.py does.
"""

import argparse
import os
import statistics
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "..", "client", "python", "bench"))

import bench  # noqa: E402  (exits when py-filelock is missing)


def result(what, xs):
    print("result %s %.1f %.1f %d" % (what, statistics.median(xs), bench.pct(xs, 99), len(xs)))
    sys.stdout.flush()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pairs", type=int, default=2000)
    ap.add_argument("--handoffs", type=int, default=40)
    ap.add_argument("--probe", action="store_true")
    ap.add_argument("lock", choices=["filelock", "hasp"])
    ap.add_argument("dir")
    a = ap.parse_args()
    cls = bench.filelock.FileLock if a.lock == "filelock" else bench.hasp.FileLock
    path = os.path.join(a.dir, "%s.lock" % a.lock)
    if a.probe:
        with cls(path, timeout=5):
            return
    if a.pairs > 0:
        result("pair", bench.uncontended(cls, path, a.pairs))
    if a.handoffs > 0:
        result("handoff", bench.handoff(cls, path, a.handoffs))


if __name__ == "__main__":
    main()
