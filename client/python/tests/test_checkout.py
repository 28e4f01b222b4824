"""Checkouts (leases of no session), time-to-live and renew, against a real
haspd: hasp.checkout / checkin / renew, Client's, hasp.aio's, and ttl= on
locks."""

import asyncio
import errno
import fcntl
import os
import pickle
import re
import threading
import time

import pytest

import hasp
import hasp.aio as aio
from conftest import HERE, bound, python_child, read_line


@pytest.fixture
def checkouts(daemon):
    """A daemon that checks leases out: the tests of this file need one."""
    try:
        hasp.checkin(hasp.checkout("probe", timeout=bound(5)))
    except hasp.Unavailable as e:
        pytest.skip(str(e))
    return daemon


def _holder(c, name):
    rep = c._call("list", {"prefix": name})
    for r in rep.get("resources"):
        if r.get("key") == name or r.get("path") == name:
            return r["holders"][0] if r.get("holders") else None
    return None


def _child(code):
    """A Python child that runs code and prints one line; that line."""
    child = python_child("import hasp, sys\n" + code)
    try:
        line = read_line(child.stdout)
        child.stdin.close()
        assert child.wait(timeout=bound(10)) == 0
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    return line.strip()


def test_checkout_outlives_its_process_and_is_checked_in_by_another(checkouts):
    # Alice checks out in one process, which exits ...
    line = _child("co = hasp.checkout('part-7.mcam', owner='alice', message='fixing fillets')\n"
                  "print(co.token, co.lease, co.fence, co.mode, flush=True)\n")
    token, lease, fence, mode = line.split()
    assert len(token) == 32 and int(token, 16) >= 0 and token == token.lower()
    assert mode == "exclusive"
    # ... and the lease stays, held by no session, and refuses Bob
    with hasp.Client() as bob:
        with pytest.raises(hasp.Busy) as ei:
            bob.lock("part-7.mcam", timeout=0)
        h = ei.value.holder
        assert h.detached and h.lease == int(lease) and h.fence == int(fence)
        assert (h.owner, h.message, h.uid, h.session) == ("alice", "fixing fillets",
                                                          os.getuid(), 0)
        assert h.granted_at.endswith("Z") and "token" not in h.raw
        assert str(h) == "a checkout by alice (uid %d)" % os.getuid()
    # Another process checks it in with the token; then Bob gets it.
    ended = _child("print(hasp.checkin(%r), flush=True)\n" % token)
    assert int(ended) == int(lease)
    with hasp.lock("part-7.mcam", timeout=0) as got:
        assert got.fence > int(fence)


def test_a_conflicting_checkout_names_the_holder_and_message(checkouts):
    co = hasp.checkout("part-7.mcam", owner="alice", message="fixing fillets")
    try:
        with pytest.raises(hasp.Busy) as ei:
            hasp.checkout("part-7.mcam", timeout=0, owner="bob")
        text = str(ei.value)
        assert "is checked out by alice (uid %d) since " % os.getuid() in text
        assert text.endswith(": fixing fillets")
        assert ei.value.holder.owner == "alice" and ei.value.holder.detached
        with pytest.raises(hasp.Timeout) as ei:
            hasp.checkout("part-7.mcam", timeout=0.05)
        text = str(ei.value)
        assert text.startswith("The lock 'part-7.mcam' could not be acquired: ")
        assert "checked out by alice" in text and text.endswith(": fixing fillets")
        assert ei.value.holder.lease == co.lease
        # a holder without an owner is named by uid
        anon = hasp.checkout("anon")
        with pytest.raises(hasp.Busy) as ei:
            hasp.checkout("anon", timeout=0)
        assert "is checked out by uid %d since " % os.getuid() in str(ei.value)
        hasp.checkin(anon)
    finally:
        hasp.checkin(co.token)


def test_checkin_by_key_and_wrong_tokens(checkouts):
    co = hasp.checkout("k")
    with hasp.Client() as c:
        with pytest.raises(hasp.UnknownLease):
            c.checkin("0" * 32)
        with pytest.raises(hasp.BadRequest):
            c.checkin("not-a-token")  # 32 lowercase hex digits
        # A token given must be the right one, even from the checkout's uid.
        with pytest.raises(hasp.PermissionDenied):
            c.checkin("0" * 32, key="k")
        with pytest.raises(hasp.PermissionDenied):
            c.renew("0" * 32, key="k", ttl=5)
        assert _holder(c, "k")["lease"] == co.lease  # still checked out
        assert c.checkin(key="k") == co.lease  # this uid's checkout on it
        with pytest.raises(hasp.UnknownLease):
            c.checkin(key="k")
        with pytest.raises(hasp.UnknownLease):
            c.checkin(co.token)  # checked in already
    with pytest.raises(TypeError):
        hasp.checkin()
    with pytest.raises(TypeError):
        hasp.checkin(key="a", path="/b")


def test_checkin_by_key_ends_a_lease_of_the_session_first(checkouts):
    with hasp.Client() as c:
        lease = c.lock("mine")
        assert c.checkin(key="mine") == lease.id
        assert lease.released and not lease.lost
        lease.release()  # nothing left to do
        c.lock("mine", timeout=0)


def test_file_checkout_holds_the_flock_until_checked_in(checkouts, workdir):
    path = os.path.join(workdir, "part.mcam")
    co = hasp.checkout(path=path, owner="alice", ttl=3600)
    assert co.path == path and co.key is None and co.name == path
    assert os.path.exists(path)  # created, as lock_file creates it
    with open(path) as f:
        with pytest.raises(OSError) as ei:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert ei.value.errno == errno.EWOULDBLOCK
        assert hasp.renew(path=path) == pytest.approx(3600, abs=1)
        assert hasp.checkin(path=path) == co.lease
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    with pytest.raises(FileNotFoundError):
        hasp.checkin(path=os.path.join(workdir, "none"))  # checkin never creates the file


def test_renew_restarts_a_checkouts_ttl(checkouts):
    co = hasp.checkout("r", ttl=60)
    assert co.ttl == 60.0 and 55 < co.expires_in <= 60
    try:
        assert hasp.renew(co, ttl=120) == 120.0
        assert co.ttl == 120.0 and 115 < co.expires_in <= 120  # the object follows
        with hasp.Client() as c:
            h = _holder(c, "r")
            assert h["ttl_ms"] == 120000 and 60000 < h["expires_in_ms"] <= 120000
            assert c.renew(key="r") == 120.0  # its own TTL again
            assert c.renew(co.token, ttl=30) == 30.0
            assert _holder(c, "r")["ttl_ms"] == 30000
    finally:
        hasp.checkin(co)
    with pytest.raises(hasp.UnknownLease):
        hasp.renew(co.token)


def test_a_checkout_without_a_ttl_gets_one_from_renew(checkouts):
    co = hasp.checkout("forever")
    assert co.ttl is None and co.expires is None
    try:
        with pytest.raises(hasp.BadRequest):
            hasp.renew(co)  # no TTL to restart
        assert hasp.renew(co, ttl=bound(60)) == bound(60) and co.ttl == bound(60)
        assert hasp.renew(co) == bound(60)  # now its own
    finally:
        hasp.checkin(co)


def test_a_checkout_expires_with_its_ttl_and_the_waiter_gets_in(checkouts):
    start = time.monotonic()  # before the grant: the expiry is 0.2 s after it
    co = hasp.checkout("short", ttl=0.2)
    with hasp.lock("short", timeout=bound(10)) as lease:  # waits for the expiry
        assert time.monotonic() - start >= 0.2
        assert lease.fence > co.fence
    with pytest.raises(hasp.UnknownLease):
        hasp.checkin(co)


def test_session_lease_ttl_expiry_marks_it_lost_and_lets_the_next_in(checkouts):
    with hasp.Client() as a, hasp.Client() as b:
        start = time.monotonic()  # before the grant: the expiry is 0.2 s after it
        la = a.lock("ttl", ttl=0.2)
        keep = a.lock("keep")
        assert la.ttl == 0.2 and la.expires is not None
        lb = b.lock("ttl", timeout=bound(10))  # granted when la expires
        assert time.monotonic() - start >= 0.2
        assert lb.fence > la.fence
        a.ping()  # the expired event was queued before the ping's reply
        assert la.lost and not keep.lost
        with pytest.raises(hasp.LeaseLost) as ei:
            la.renew()
        assert "expired" in str(ei.value)
        with pytest.raises(hasp.LeaseLost) as ei:
            la.release()
        assert "expired" in str(ei.value)
        keep.release()


def test_lease_renew(checkouts):
    with hasp.Client() as a, hasp.Client() as b:
        la = a.lock("ren", ttl=bound(30))
        assert la.renew(ttl=bound(60)) == bound(60)
        assert la.ttl == bound(60)
        with pytest.raises(hasp.Busy) as ei:
            b.lock("ren", timeout=0)
        assert ei.value.holder.ttl_ms == bound(60) * 1000
        assert not ei.value.holder.detached
        assert la.renew() == bound(60)
        plain = a.lock("plain")
        with pytest.raises(hasp.BadRequest):
            plain.renew()  # no TTL to restart
        with pytest.raises(hasp.BadRequest):
            plain.renew(ttl=bound(30))  # haspd gives no TTL after the grant
        assert not plain.lost
        la.release()
        with pytest.raises(hasp.Error):
            la.renew()


def test_lock_file_with_ttl(checkouts, workdir):
    path = os.path.join(workdir, "t.lock")
    with hasp.lock_file(path, ttl=bound(30)) as lease:
        assert lease.ttl == bound(30)
        with pytest.raises(hasp.Busy) as ei:
            hasp.lock_file(path, timeout=0)
        assert ei.value.holder.ttl_ms == bound(30) * 1000


def test_waiting_checkout_is_granted_when_the_holder_leaves(checkouts):
    with hasp.Client() as a:
        held = a.lock("q")
        got = []
        t = threading.Thread(target=lambda: got.append(
            hasp.checkout("q", timeout=bound(10), owner="later")))
        t.start()
        deadline = time.monotonic() + bound(5)
        while not _waiting(a, "q"):
            assert time.monotonic() < deadline, "the checkout never queued"
            threading.Event().wait(0.002)
        a.close()  # the session ends: the waiting checkout is granted
        t.join(bound(10))
        assert got and got[0].fence > held.fence and got[0].token
    assert _holder_of("q").detached
    hasp.checkin(got[0])


def _waiting(c, key):
    rep = c._call("list", {"prefix": key})
    return any(r.get("waiters") for r in rep.get("resources") if r.get("key") == key)


def _holder_of(key):
    with hasp.Client() as c:
        return hasp.Holder(_holder(c, key))


def test_checkout_arguments(daemon):
    with pytest.raises(TypeError):
        hasp.checkout()
    with pytest.raises(TypeError):
        hasp.checkout("k", path="/x")
    with pytest.raises(ValueError):
        hasp.checkout("k", ttl=0)
    with pytest.raises(ValueError):
        hasp.lock("k", ttl=-1)


def test_checkout_is_plain_data(checkouts):
    co = hasp.checkout("data", ttl=10)
    try:
        assert co.token not in repr(co) and "data" in repr(co)
        d = co.as_dict()
        assert d["token"] == co.token and d["lease"] == co.lease and d["ttl"] == 10.0
        assert d["socket"] == os.environ["HASP_SOCKET"]
        t = pickle.loads(pickle.dumps(hasp.Timeout(key="k", detail="why", explain=True)))
        assert str(t) == "The lock 'k' could not be acquired: why"
    finally:
        hasp.checkin(co)


# -- asyncio ---------------------------------------------------------------------


async def test_aio_checkout_checkin_renew(checkouts, workdir):
    co = await aio.checkout("a-part", ttl=60, owner="alice", message="m")
    assert co.token and co.ttl == 60.0
    async with aio.Client() as c:
        with pytest.raises(hasp.Busy) as ei:
            await c.checkout("a-part", timeout=0)
        assert "checked out by alice" in str(ei.value)
        assert await c.renew(co, ttl=90) == 90.0 and co.ttl == 90.0
        assert await c.checkin(key="a-part") == co.lease
    path = os.path.join(workdir, "a.mcam")
    fco = await aio.checkout(path=path)
    assert await aio.renew(path=path, ttl=5) == 5.0
    assert await aio.checkin(fco.token) == fco.lease


async def test_aio_lease_ttl_expires(checkouts):
    async with aio.Client() as a, aio.Client() as b:
        la = await a.lock("attl", ttl=0.2)
        assert await la.renew(ttl=0.2) == 0.2
        lb = await b.lock("attl", timeout=bound(10))
        await a.ping()
        assert la.lost and lb.fence > la.fence
        with pytest.raises(hasp.LeaseLost) as ei:
            await la.release()
        assert "expired" in str(ei.value)
    async with aio.lock("attl2", ttl=bound(30)) as lease:
        assert lease.ttl == bound(30)


async def test_aio_checkin_by_key_ends_a_lease_of_the_session(checkouts):
    async with aio.Client() as c:
        lease = await c.lock("amine")
        assert await c.checkin(key="amine") == lease.id
        assert lease.released and not lease.lost
        await lease.release()  # nothing left to do
        await (await c.lock("amine", timeout=0)).release()


def test_the_readmes_checkout_example_runs(checkouts, workdir):
    with open(os.path.join(os.path.dirname(HERE), "README.md"), encoding="utf-8") as f:
        section = f.read().split("## Checkouts", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert blocks, "the README lost its checkout example"
    for code in blocks:
        child = python_child(code, cwd=workdir)
        out, _ = child.communicate(timeout=bound(30))
        assert child.returncode == 0, code
        assert "409" in out and "is checked out by alice" in out


def test_checkout_survives_a_restart_of_haspd(checkouts):
    co = hasp.checkout("across", ttl=3600, owner="alice", message="over the restart")
    checkouts.kill()  # SIGKILL: no chance to write anything more
    checkouts.start()
    with pytest.raises(hasp.Busy) as ei:
        hasp.lock("across", timeout=0)
    h = ei.value.holder
    assert (h.lease, h.fence, h.owner, h.message, h.detached) == (co.lease, co.fence, "alice",
                                                                  "over the restart", True)
    assert 0 < h.expires_in_ms <= 3600000
    assert hasp.checkin(co.token) == co.lease
    with hasp.lock("across", timeout=0) as lease:
        assert lease.fence > co.fence


def test_file_checkout_of_a_file_replaced_while_it_waited(checkouts, workdir):
    """A checkout granted on a file that was renamed over meanwhile holds the
    file the path names now, not the old one."""
    path = os.path.join(workdir, "part.mcam")
    got = {}
    with hasp.Client() as admin:
        held = admin.lock_file(path)

        def wait():
            try:
                got["co"] = hasp.checkout(path=path, timeout=bound(10))
            except hasp.Error as e:
                got["error"] = e

        t = threading.Thread(target=wait)
        t.start()
        deadline = time.monotonic() + bound(5)
        while not any(r.get("waiters") for r in admin._call("list").get("resources")):
            assert time.monotonic() < deadline, "the checkout never queued"
            threading.Event().wait(0.002)
        new = os.path.join(workdir, "new")
        with open(new, "w") as f:
            f.write("v2")
        os.rename(new, path)  # outside hasp: no adopt
        held.release()
        t.join(bound(10))
        assert "co" in got, got
    with open(path) as f:
        with pytest.raises(OSError) as ei:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert ei.value.errno == errno.EWOULDBLOCK
    with pytest.raises(hasp.Busy):
        hasp.lock_file(path, timeout=0)
    hasp.checkin(got["co"])


def test_a_daemon_without_checkouts_is_refused_and_left_holding_nothing(daemon, monkeypatch):
    """A grant without a token (a haspd that ignores detach) is no checkout:
    the lease it is (the session's) is released and Unavailable raised."""
    real = hasp.Client._call

    def no_token(self, op, fields=None, **kw):
        rep = real(self, op, fields, **kw)
        rep.body.pop("token", None)
        return rep

    with hasp.Client() as c:
        with monkeypatch.context() as m:
            m.setattr(hasp.Client, "_call", no_token)
            with pytest.raises(hasp.Unavailable) as ei:
                c.checkout("old")
        assert ei.value.code == "unavailable" and "without a token" in str(ei.value)
        with hasp.lock("old", timeout=0):  # c, still open, holds nothing
            pass


async def test_aio_cancelled_checkout_leaves_nothing(checkouts):
    async with aio.Client() as holder, aio.Client() as c:
        held = await holder.lock("acancel")
        task = asyncio.ensure_future(c.checkout("acancel", timeout=bound(10)))
        with hasp.Client() as admin:
            deadline = time.monotonic() + bound(5)
            while not _waiting(admin, "acancel"):
                assert time.monotonic() < deadline, "the checkout never queued"
                await asyncio.sleep(0.002)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await held.release()
            assert _holder(admin, "acancel") is None  # no checkout, no waiter granted


def test_shared_checkouts_coexist(checkouts):
    a = hasp.checkout("ro", shared=True, owner="alice")
    b = hasp.checkout("ro", shared=True, owner="bob")
    assert a.mode == b.mode == "shared" and b.fence > a.fence
    with pytest.raises(hasp.Busy) as ei:
        hasp.checkout("ro", timeout=0)
    assert sorted(h.owner for h in ei.value.holders) == ["alice", "bob"]
    assert all(h.detached for h in ei.value.holders)
    hasp.checkin(a)
    hasp.checkin(b.token)
    hasp.checkin(hasp.checkout("ro", timeout=0))
