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


LIBHASP = os.environ.get("HASP_LIBHASP")
needs_libhasp = pytest.mark.skipif(not LIBHASP, reason="HASP_LIBHASP names no libhasp.so")


def _libhasp():
    import ctypes

    lib = ctypes.CDLL(LIBHASP)
    lib.hasp_connect.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p)]
    lib.hasp_lock_file.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p,
                                   ctypes.POINTER(ctypes.c_void_p)]
    lib.hasp_close.argtypes = [ctypes.c_void_p]
    lib.hasp_close.restype = ctypes.c_void_p
    lib.hasp_lease_free.argtypes = [ctypes.c_void_p]
    lib.hasp_lease_free.restype = ctypes.c_void_p
    return lib


@needs_libhasp
def test_c_libhasp_and_us_on_one_file(daemon, workdir):
    """C libhasp (through ctypes, in this process: its own session) and the
    Python client exclude each other on one file, both ways."""
    import ctypes

    lib, path = _libhasp(), os.path.join(workdir, "shared.lock")
    c, lease = ctypes.c_void_p(), ctypes.c_void_p()
    assert lib.hasp_connect(daemon.socket.encode(), ctypes.byref(c)) == 0
    try:
        assert lib.hasp_lock_file(c, path.encode(), None, ctypes.byref(lease)) == 0
        with pytest.raises(hasp.Busy) as e:
            hasp.lock_file(path, timeout=0)
        assert e.value.holders and e.value.holders[0].pid == os.getpid()
    finally:
        lib.hasp_lease_free(lease)
        lib.hasp_close(c)  # the session ends: its lease goes
    with hasp.lock_file(path, timeout=bound(5)):
        assert lib.hasp_connect(daemon.socket.encode(), ctypes.byref(c)) == 0
        try:
            # HASP_LOCK_OPTIONS_INIT with timeout 0: try once.
            class Opts(ctypes.Structure):
                _fields_ = [("mode", ctypes.c_int), ("timeout_ms", ctypes.c_int64),
                            ("owner", ctypes.c_char_p), ("message", ctypes.c_char_p),
                            ("waiting", ctypes.c_void_p), ("waiting_after_ms", ctypes.c_int64),
                            ("userdata", ctypes.c_void_p)]

            o = Opts(0, 0, None, None, None, 0, None)
            assert lib.hasp_lock_file(c, path.encode(), ctypes.byref(o),
                                      ctypes.byref(lease)) == -1002  # -HASP_E_BUSY
        finally:
            lib.hasp_close(c)


@pytest.fixture
def cli_checkouts(cli):
    """A CLI that has `hasp checkout` (issue 14's CLI side)."""
    r = subprocess.run([cli, "checkout", "--help"], capture_output=True, text=True,
                       timeout=bound(10))
    if r.returncode != 0:
        pytest.skip("this hasp CLI has no checkout command")
    return cli


def test_a_checkout_of_ours_is_checked_in_by_the_cli_and_back(daemon, workdir, cli_checkouts):
    """Checkouts cross clients: a token from hasp.checkout works with `hasp
    checkin --token`, one printed by `hasp checkout` with hasp.checkin, and
    each names the other's holder when busy."""
    cli = cli_checkouts
    co = hasp.checkout("part-7.mcam", owner="alice", message="fixing fillets")
    r = subprocess.run([cli, "checkout", "-n", "--verbose", "-k", "part-7.mcam"],
                       capture_output=True, text=True, timeout=bound(10))
    assert r.returncode == 1 and "checked out by alice" in r.stderr
    r = subprocess.run([cli, "checkin", "--token", co.token], capture_output=True, text=True,
                       timeout=bound(10))
    assert r.returncode == 0, r.stderr
    path = os.path.join(workdir, "part.mcam")
    r = subprocess.run([cli, "checkout", "--ttl", "60", "--owner", "bob", "--message", "v2",
                        path], capture_output=True, text=True, timeout=bound(10))
    assert r.returncode == 0, r.stderr
    token = r.stdout.strip()
    with pytest.raises(hasp.Busy) as ei:
        hasp.checkout(path=path, timeout=0)
    assert "checked out by bob" in str(ei.value) and ei.value.holder.ttl_ms == 60000
    assert hasp.renew(token, ttl=120) == 120.0
    assert hasp.checkin(path=path) == ei.value.holder.lease  # our uid's, by the file
    with pytest.raises(hasp.UnknownLease):
        hasp.checkin(token)
