"""hasp.Client, Lease and the one-off hasp.lock / hasp.lock_file against a
real haspd."""

import fcntl
import os
import signal
import socket
import stat
import subprocess
import threading
import time

import pytest

import hasp
from conftest import bound, python_child, read_line


def test_key_lease_attributes(daemon):
    with hasp.Client() as c:
        a = c.lock("db", owner="alice", message="v42")
        assert isinstance(a.id, int) and a.id >= 1
        assert isinstance(a.fence, int) and 0 < a.fence < 2 ** 53
        assert (a.key, a.path, a.mode, a.name) == ("db", None, "exclusive", "db")
        assert not a.lost and not a.released
        b = c.lock("other", shared=True)
        assert b.mode == "shared" and b.fence > a.fence and b.id != a.id
        a.release()
        assert a.released and not a.lost
        a.release()  # a second release does nothing
        b.release()


def test_file_lease_attributes(daemon, workdir, monkeypatch):
    monkeypatch.chdir(workdir)
    with hasp.lock_file("f.lock", shared=True) as lease:
        assert lease.path == os.path.join(workdir, "f.lock")  # absolute, not resolved
        assert lease.key is None and lease.mode == "shared"
        assert isinstance(lease.fence, int)
    assert lease.released and lease.client.closed  # the one-off client went with it


def test_one_off_lock_closes_its_client(daemon):
    with hasp.lock("k") as lease:
        with pytest.raises(hasp.Busy):
            hasp.lock("k", timeout=0)
    assert lease.client.closed
    with hasp.lock("k", timeout=0):
        pass


def test_busy_names_the_holder(daemon):
    with hasp.Client(name="holder") as c, hasp.Client() as d:
        c.lock("res", owner="alice", message="checked out")
        with pytest.raises(hasp.Busy) as ei:
            d.lock("res", timeout=0)
        e = ei.value
        assert isinstance(e, hasp.Conflict) and isinstance(e, hasp.Error)
        assert e.code == "busy"
        [h] = e.holders
        assert (h.pid, h.uid, h.owner, h.message) == (os.getpid(), os.getuid(), "alice",
                                                       "checked out")
        assert h["client"] == "holder" and h.mode == "exclusive"
        assert h.since.endswith("Z") and isinstance(h.since_ms, int)
        assert "alice" in str(e)


def test_timeout_waits_its_time_and_names_holders(daemon):
    with hasp.Client() as c, hasp.Client() as d:
        c.lock("res", owner="bob")
        start = time.monotonic()
        with pytest.raises(hasp.Timeout) as ei:
            d.lock("res", timeout=0.3)
        took = time.monotonic() - start
        assert 0.3 <= took < 0.3 + bound(0.5)
        e = ei.value
        assert isinstance(e, TimeoutError)
        assert str(e) == "The lock 'res' could not be acquired."
        assert e.lock_file == "res" and e.key == "res"
        assert [h.owner for h in e.holders] == ["bob"]
        assert "timed out" in e.detail


def test_file_timeout_is_filelocks(daemon, workdir):
    path = os.path.join(workdir, "t.lock")
    with hasp.lock_file(path):
        with pytest.raises(hasp.Timeout) as ei:
            hasp.lock_file(path, timeout=0.05)
    assert str(ei.value) == "The file lock '%s' could not be acquired." % path
    assert ei.value.lock_file == path and ei.value.key is None


def test_shared_and_exclusive(daemon):
    with hasp.Client() as a, hasp.Client() as b, hasp.Client() as x:
        la = a.lock("rw", shared=True)
        lb = b.lock("rw", shared=True, timeout=0)  # shared leases coexist
        with pytest.raises(hasp.Busy) as ei:
            x.lock("rw", timeout=0)
        assert sorted(h.lease for h in ei.value.holders) == sorted([la.id, lb.id])
        la.release()
        with pytest.raises(hasp.Busy):
            x.lock("rw", timeout=0)
        lb.release()  # written, not awaited: haspd serves it before x's try
        lx = x.lock("rw", timeout=0)
        with pytest.raises(hasp.Busy):
            a.lock("rw", shared=True, timeout=0)
        lx.release()


def test_waiter_granted_on_release(daemon):
    with hasp.Client() as a, hasp.Client() as b:
        la = a.lock("q")
        got = []
        t = _lock_in_thread(b, "q", got, seen_by=a)
        la.release()
        t.join(bound(10))
        assert got and got[0].fence > la.fence


def _lock_in_thread(c, key, got, seen_by):
    """Starts a thread whose c.lock(key) waits, appending its lease to got;
    returns it once the daemon lists the wait (asked through seen_by)."""
    t = threading.Thread(target=lambda: got.append(c.lock(key, timeout=bound(10))))
    t.start()
    deadline = time.monotonic() + bound(5)
    while not _waiters(seen_by, key) and time.monotonic() < deadline:
        threading.Event().wait(0.005)
    return t


def _waiters(c, key):
    rep = c._call("list", {"prefix": key})
    return [w for r in rep.get("resources") for w in r.get("waiters", []) if r.get("key") == key]


def test_already_held_in_one_session(daemon):
    with hasp.Client() as c:
        c.lock("k")
        with pytest.raises(hasp.AlreadyHeld):
            c.lock("k", timeout=0)


def test_bad_arguments():
    with pytest.raises(ValueError):
        hasp.Client(socket="/nonexistent/x.sock", name="x" * 300)


def test_unavailable_without_daemon(tmpdir_private):
    with pytest.raises(hasp.Unavailable) as ei:
        hasp.Client(socket=os.path.join(tmpdir_private, "none.sock"))
    assert "none.sock" in str(ei.value)
    assert isinstance(ei.value, ConnectionError)


def test_lease_lost_on_revoke(daemon, cli):
    with hasp.Client() as c:
        lease = c.lock("rev")
        keep = c.lock("keep")
        assert not lease.lost
        subprocess.run([cli, "revoke", str(lease.id)], check=True, capture_output=True,
                       timeout=bound(10))
        # the revoked event reaches our socket before hasp revoke is answered
        assert lease.lost
        assert not keep.lost
        with pytest.raises(hasp.LeaseLost):
            lease.release()
        keep.release()


def test_lease_lost_when_daemon_dies(daemon):
    c = hasp.Client()
    lease = c.lock("k")
    daemon.kill()
    assert lease.lost  # the kernel closed the daemon's end when it died
    with pytest.raises(hasp.LeaseLost):
        lease.release()
    with pytest.raises(hasp.Unavailable):
        c.lock("k2")


def test_with_block_raises_lease_lost(daemon, cli):
    with pytest.raises(hasp.LeaseLost):
        with hasp.lock("w") as lease:
            subprocess.run([cli, "revoke", "--key", "w"], check=True, capture_output=True,
                           timeout=bound(10))
    assert lease.client.closed


def test_silent_daemon_hits_the_client_deadline(tmpdir_private, monkeypatch):
    path = os.path.join(tmpdir_private, "silent.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(1)
    monkeypatch.setattr(hasp.Client, "reply_margin", 0.3)
    c = hasp.Client(socket=path)
    conn, _ = srv.accept()
    start = time.monotonic()
    with pytest.raises(hasp.Unavailable) as ei:
        c.lock("k", timeout=0.2)
    took = time.monotonic() - start
    assert 0.5 <= took < 0.5 + bound(0.25)
    assert "did not answer" in str(ei.value)
    assert c.closed
    conn.close()
    srv.close()


def test_lost_lease_as_a_cluster_haspd_says_it(tmpdir_private):
    # A fake haspd in cluster mode: it grants a cluster key, then can no
    # longer keep it alive in etcd.
    path = os.path.join(tmpdir_private, "cluster.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(1)
    c = hasp.Client(socket=path)
    conn, _ = srv.accept()
    conn.sendall(b'{"id":1,"ok":true,"server":"fake"}\n'
                 b'{"id":2,"ok":true,"lease":9,"fence":77,"mode":"exclusive"}\n')
    lease = c.lock("cluster/x")
    assert lease.id == 9 and not lease.lost
    conn.sendall(b'{"event":"lost","lease":9,"key":"cluster/x","message":"etcd unreachable"}\n')
    deadline = time.monotonic() + bound(5)
    while not lease.lost and time.monotonic() < deadline:
        time.sleep(0.01)
    assert lease.lost
    with pytest.raises(hasp.LeaseLost) as ei:
        lease.release()
    assert "lost: haspd could no longer keep it in etcd" in str(ei.value)
    c.close()
    conn.close()
    srv.close()


def test_killed_holder_lets_the_next_waiter_in(daemon):
    child = python_child("import hasp, sys\n"
                         "l = hasp.lock('crash')\n"
                         "print('locked', flush=True)\n"
                         "sys.stdin.read()\n")
    try:
        assert read_line(child.stdout) == "locked\n"
        with hasp.Client() as c:
            got = []
            t = threading.Thread(target=lambda: got.append(
                (c.lock("crash", timeout=bound(10)), time.monotonic())))
            t.start()
            killed = time.monotonic()
            child.send_signal(signal.SIGKILL)
            t.join(bound(10))
            assert got, "the waiter was not granted"
            assert got[0][1] - killed < bound(0.5)
    finally:
        child.kill()
        child.wait()


def test_file_created_with_umask_and_never_truncated(daemon, workdir):
    path = os.path.join(workdir, "new.lock")
    old = os.umask(0o022)
    try:
        with hasp.lock_file(path):
            pass
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644  # 0666 minus umask
    with open(path, "w") as f:
        f.write("precious")
    with hasp.lock_file(path):
        pass
    with open(path) as f:
        assert f.read() == "precious"


def test_read_only_file_is_locked_through_write_access(daemon, workdir):
    path = os.path.join(workdir, "wo")
    with open(path, "w"):
        pass
    os.chmod(path, 0o200)
    if os.getuid() == 0:
        pytest.skip("root reads anything")
    with hasp.lock_file(path):
        pass


def test_directory_lease(daemon, workdir):
    with hasp.lock_file(workdir) as lease:
        with pytest.raises(hasp.Busy):
            hasp.lock_file(workdir, timeout=0)
    assert lease.released


def test_client_not_usable_after_fork(daemon):
    c = hasp.Client()
    pid = os.fork()
    if pid == 0:
        try:
            c.lock("x")
            os._exit(1)
        except hasp.Error:
            os._exit(0)
        except BaseException:
            os._exit(2)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    c.lock("x", timeout=0).release()
    c.close()


def test_a_failed_settle_leaves_no_lease_behind(daemon, workdir):
    """lock_file granted on a file that was replaced meanwhile by something
    that cannot join the lease (here a FIFO) raises, and holds nothing."""
    import threading

    path = os.path.join(workdir, "f")
    outcome = {}
    with hasp.Client() as admin, hasp.Client() as c:  # c stays open throughout
        held = admin.lock_file(path)

        def wait():
            try:
                outcome["lease"] = c.lock_file(path, timeout=bound(10))
            except hasp.Error as e:
                outcome["error"] = e

        t = threading.Thread(target=wait)
        t.start()
        deadline = time.monotonic() + bound(5)
        while not any(r.get("waiters") for r in admin._call("list").get("resources")):
            assert time.monotonic() < deadline, "the waiter never queued"
            time.sleep(0.005)
        fifo = os.path.join(workdir, "fifo")
        os.mkfifo(fifo)
        os.rename(fifo, path)
        held.release()
        t.join(bound(10))
        assert not t.is_alive()
        assert isinstance(outcome.get("error"), hasp.BadRequest), outcome
        assert not admin._call("list").get("resources"), "a lease or waiter was left"


def test_a_key_release_is_not_waited_for(daemon):
    """A named key's release is written and returns, even with haspd
    stopped; haspd serves it when it runs again, before anything the client
    sends later (the release's answer is dropped on the way)."""
    c = hasp.Client()
    try:
        lease = c.lock("unwaited")
        daemon.proc.send_signal(signal.SIGSTOP)
        try:
            start = time.monotonic()
            lease.release()
            assert time.monotonic() - start < bound(0.1)
        finally:
            daemon.proc.send_signal(signal.SIGCONT)
        with hasp.lock("unwaited", timeout=bound(5)):
            pass
        for _ in range(500):  # haspd ends each before it reads the next try
            c.lock("unwaited", timeout=0).release()
        assert c.ping() >= 0
    finally:
        c.close()


def test_a_file_release_is_awaited(daemon, workdir):
    """A file's release returns once haspd dropped its flock(2): a flock
    taken right after by a process outside hasp gets it."""
    path = os.path.join(workdir, "f.lock")
    for _ in range(50):
        with hasp.lock_file(path):
            pass
        fd = os.open(path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(fd)


def test_deadlock_names_the_cycle_and_the_other_wait_goes_on(daemon):
    with hasp.Client() as a, hasp.Client() as b:
        a.lock("dx")
        by = b.lock("dy")
        got = []
        t = _lock_in_thread(a, "dy", got, seen_by=b)
        with pytest.raises(hasp.Deadlock) as e:
            b.lock("dx", owner="bob")
        cycle = e.value.cycle
        assert [w.key for w in cycle] == ["dx", "dy"]
        assert cycle[0].owner == "bob" and cycle[0].pid == os.getpid()
        assert cycle[0].waits_for.session == cycle[1].session
        assert cycle[1].waits_for.lease == by.id
        assert "held by session %d" % cycle[1].session in str(e.value)
        by.release()  # b gives up: a's wait, which went on, is granted
        t.join(bound(10))
        assert got and got[0].key == "dy"


def test_semaphore_places_in_order(daemon):
    with hasp.Client() as a, hasp.Client() as b, hasp.Client() as c:
        la = a.lock("pool", limit=2)
        lb = b.lock("pool", limit=2)
        assert la.mode == lb.mode == "exclusive" and la.id != lb.id
        with pytest.raises(hasp.Busy):
            c.lock("pool", limit=2, timeout=0)
        with pytest.raises(hasp.BadRequest) as ei:
            c.lock("pool", limit=3)
        assert "semaphore with limit 2" in str(ei.value)
        with pytest.raises(hasp.BadRequest):
            c.lock("pool")
        with pytest.raises(hasp.BadRequest):
            c.lock("pool", limit=2, shared=True)
        [res] = [r for r in c._call("list", {"prefix": "pool"}).get("resources")]
        assert res.get("limit") == 2 and len(res.get("holders")) == 2
        la.release()
        with hasp.lock("pool", limit=2, timeout=0) as lc:  # a place came free
            assert lc.fence > lb.fence
        lb.release()
    with hasp.lock("pool", limit=5, timeout=0):  # the limit went with its holders
        pass


def test_semaphore_limit_is_checked_here(daemon):
    with hasp.Client() as c:
        for bad in (0, 10001, -1):
            with pytest.raises(ValueError):
                c.lock("pool", limit=bad)
        for bad in (True, 2.0, "2"):
            with pytest.raises(TypeError):
                c.lock("pool", limit=bad)
        assert not c._call("list", {"prefix": "pool"}).get("resources")  # nothing sent
