"""Lease.upgrade() and Lease.downgrade() (convert, issue 17) against a real
haspd, with the blocking and the asyncio client."""

import asyncio
import threading
import time

import pytest

import hasp
import hasp.aio as aio
from conftest import bound


def _upgrading(c, key):
    """Whether the daemon lists a pending upgrade on key."""
    rep = c._call("list", {"prefix": key})
    return any(h.get("upgrading") for r in rep.get("resources") if r.get("key") == key
               for h in r.get("holders", []))


def _until(pred, what):
    end = time.monotonic() + bound(5)
    while not pred():
        assert time.monotonic() < end, "no " + what
        time.sleep(0.005)


def test_upgrade_and_downgrade(daemon):
    with hasp.Client() as a, hasp.Client() as b:
        la = a.lock("k", shared=True)
        lb = b.lock("k", shared=True)
        with pytest.raises(hasp.Busy):
            la.upgrade(timeout=0)
        with pytest.raises(hasp.Timeout):
            la.upgrade(timeout=0.05)
        assert la.mode == "shared"
        shared_fence = la.fence
        t = threading.Thread(target=la.upgrade, kwargs={"timeout": bound(10)})
        t.start()
        _until(lambda: _upgrading(b, "k"), "pending upgrade")
        lb.release()
        t.join(bound(10))
        assert la.mode == "exclusive" and la.fence > shared_fence
        exclusive_fence = la.fence
        la.downgrade()
        assert la.mode == "shared" and la.fence == exclusive_fence
        b.lock("k", shared=True, timeout=0).release()  # readers go in again
        la.upgrade()  # alone: at once
        assert la.mode == "exclusive"
        la.release()


def test_second_upgrader_gets_deadlock(daemon):
    with hasp.Client() as a, hasp.Client() as b:
        la = a.lock("k", shared=True)
        lb = b.lock("k", shared=True)
        t = threading.Thread(target=la.upgrade)
        t.start()
        _until(lambda: _upgrading(b, "k"), "pending upgrade")
        with pytest.raises(hasp.Deadlock) as ei:
            lb.upgrade()
        assert len(ei.value.cycle) == 2
        assert lb.mode == "shared"
        lb.release()
        t.join(bound(10))
        assert la.mode == "exclusive"


async def test_aio_upgrade_downgrade_and_cancel(daemon):
    async with aio.Client() as a, aio.Client() as b:
        la = await a.lock("k", shared=True)
        lb = await b.lock("k", shared=True)
        with pytest.raises(hasp.Busy):
            await la.upgrade(timeout=0)
        up = asyncio.ensure_future(la.upgrade())
        with hasp.Client() as admin:
            end = time.monotonic() + bound(5)
            while not _upgrading(admin, "k"):
                assert time.monotonic() < end
                await asyncio.sleep(0.005)
            up.cancel()  # withdraws the upgrade: the lease stays shared
            with pytest.raises(asyncio.CancelledError):
                await up
            assert la.mode == "shared"
            end = time.monotonic() + bound(5)
            while _upgrading(admin, "k"):
                assert time.monotonic() < end
                await asyncio.sleep(0.005)
        fence = la.fence
        up = asyncio.ensure_future(la.upgrade(timeout=bound(10)))
        await asyncio.sleep(0.05)
        await lb.release()
        await asyncio.wait_for(up, bound(10))
        assert la.mode == "exclusive" and la.fence > fence
        await la.downgrade()
        assert la.mode == "shared"
        await la.release()
