"""The same file locked by hasp's Python client, flock(1) and the C CLI."""

import os
import shutil
import subprocess

import pytest

import hasp
from conftest import bound, read_line

FLOCK = shutil.which("flock")
needs_flock = pytest.mark.skipif(FLOCK is None, reason="no flock(1)")


def holder(argv):
    """Starts argv (a command that prints "locked", then waits for its
    stdin to close) and waits for the line."""
    p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    line = read_line(p.stdout)
    assert line == "locked\n", "the holder said %r" % line
    return p


def let_go(p):
    p.stdin.close()
    assert p.wait(timeout=bound(10)) == 0


def outside_holder_blocks_us(path, argv):
    """While argv holds a flock on path, we time out; once it lets go, we
    get the lease."""
    p = holder(argv)
    try:
        with pytest.raises(hasp.Timeout):
            hasp.lock_file(path, timeout=0.1)
    finally:
        let_go(p)
    with hasp.lock_file(path, timeout=bound(5)):
        pass


@needs_flock
def test_flock_sees_our_lease(daemon, workdir):
    path = os.path.join(workdir, "f")
    with hasp.lock_file(path):
        assert subprocess.run([FLOCK, "-n", path, "true"]).returncode == 1
    assert subprocess.run([FLOCK, "-n", path, "true"]).returncode == 0
    with hasp.lock_file(path, shared=True):
        assert subprocess.run([FLOCK, "-n", "-s", path, "true"]).returncode == 0
        assert subprocess.run([FLOCK, "-n", "-x", path, "true"]).returncode == 1


@needs_flock
def test_we_respect_flock(daemon, workdir):
    path = os.path.join(workdir, "g")
    outside_holder_blocks_us(path, [FLOCK, path, "sh", "-c", "echo locked; cat >/dev/null"])


def test_cli_holder_blocks_us_and_is_named(daemon, workdir, cli):
    path = os.path.join(workdir, "h")
    p = holder([cli, "lock", "--owner", "carol", path, "-c", "echo locked; cat >/dev/null"])
    try:
        with pytest.raises(hasp.Busy) as ei:
            hasp.lock_file(path, timeout=0)
        assert [h.owner for h in ei.value.holders] == ["carol"]
    finally:
        let_go(p)
    with hasp.lock_file(path, timeout=0):
        pass


def test_cli_respects_our_leases(daemon, workdir, cli):
    path = os.path.join(workdir, "i")
    with hasp.lock_file(path):
        assert subprocess.run([cli, "lock", "-n", path, "true"]).returncode == 1
    assert subprocess.run([cli, "lock", "-n", path, "true"]).returncode == 0
    with hasp.lock("shared-key"):
        assert subprocess.run([cli, "lock", "-n", "-k", "shared-key", "true"]).returncode == 1
    assert subprocess.run([cli, "lock", "-n", "-k", "shared-key", "true"]).returncode == 0


def test_cli_fd_form_and_us(daemon, workdir, cli):
    """hasp lock's fd form puts the flock on the shell's description."""
    path = os.path.join(workdir, "j")
    outside_holder_blocks_us(path, ["sh", "-c", '( "$1" lock 9 || exit 1; echo locked; '
                                    'cat >/dev/null ) 9>"$2"', "sh", cli, path])
