"""Fixtures: a real haspd on a temporary socket (HASPD gives its path, as
for the C tests), the CLI (HASP_CLI), and bounds that stretch with
HASP_TEST_TIME_FACTOR as the C harness's do."""

import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # the package under test, from the source tree

BUILD = os.path.join(HERE, "..", "..", "..", "build")
HASPD = os.environ.get("HASPD") or os.path.join(BUILD, "daemon", "haspd")
HASP_CLI = os.environ.get("HASP_CLI") or os.path.join(BUILD, "client", "hasp")
FACTOR = max(1, int(os.environ.get("HASP_TEST_TIME_FACTOR", "1") or 1))


def bound(seconds):
    """A test's bound on a wait, stretched for slow runs (valgrind, ASan)."""
    return seconds * FACTOR


def wait_for(pred, seconds=5.0, what="a condition"):
    """Polls pred until true, failing after a bounded time (for states with
    no event to wait on, e.g. a daemon's socket coming up)."""
    end = time.monotonic() + bound(seconds)
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > end:
            pytest.fail("timed out waiting for %s" % what)
        time.sleep(0.002)


def read_line(stream, seconds=10.0):
    """One line from a child's pipe, within a bounded time."""
    r, _, _ = select.select([stream], [], [], bound(seconds))
    if not r:
        pytest.fail("no line from the child within %s s" % bound(seconds))
    return stream.readline()


class Daemon:
    def __init__(self, directory):
        self.dir = directory
        self.socket = os.path.join(directory, "haspd.sock")
        self.proc = None

    def start(self):
        if not os.access(HASPD, os.X_OK):
            pytest.skip("no haspd at %s (set HASPD)" % HASPD)
        self.log = open(os.path.join(self.dir, "haspd.log"), "ab")
        self.proc = subprocess.Popen([HASPD, "--socket", self.socket], stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=self.log)

        def up():
            if self.proc.poll() is not None:
                pytest.fail("haspd exited with %s" % self.proc.returncode)
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect(self.socket)
                return True
            except OSError:
                return False
            finally:
                s.close()

        wait_for(up, 10, "haspd's socket")
        return self

    def kill(self, sig=signal.SIGKILL):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=bound(10))

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=bound(10))
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc:
            self.log.close()


@pytest.fixture
def tmpdir_private():
    d = tempfile.mkdtemp(prefix="hasp-py-")
    os.chmod(d, 0o700)
    yield d
    subprocess.run(["rm", "-rf", d])


@pytest.fixture
def daemon(tmpdir_private, monkeypatch):
    """A haspd of the test's own; HASP_SOCKET names it for the test and for
    the processes it starts."""
    d = Daemon(tmpdir_private).start()
    monkeypatch.setenv("HASP_SOCKET", d.socket)
    yield d
    d.stop()


@pytest.fixture
def cli():
    if not os.access(HASP_CLI, os.X_OK):
        pytest.skip("no hasp CLI at %s (set HASP_CLI)" % HASP_CLI)
    return HASP_CLI


@pytest.fixture
def workdir(tmpdir_private):
    """A directory for lock files (not the daemon's)."""
    d = os.path.join(tmpdir_private, "files")
    os.mkdir(d)
    return d


def python_child(code, **kw):
    """A Python child running code, with the package importable, its stdout
    a pipe, its stdin a pipe (close it to let the child go on)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.path.dirname(HERE) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, env=env, text=True, **kw)
