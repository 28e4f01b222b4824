"""Multi-key leases: Client.lock_many and hasp.lock_many against a real
haspd. One lease over several keys, all-or-nothing, FIFO on each key."""

import threading

import pytest

import hasp
from conftest import bound


def test_one_lease_over_several_keys(daemon):
    with hasp.Client() as c, hasp.Client() as d:
        lease = c.lock_many(["a", ("b", "shared")])
        assert lease.keys == ["a", "b"] and lease.key == "a\nb"
        assert lease.mode == "exclusive" and lease.fence > 0
        with pytest.raises(hasp.Busy):
            d.lock("a", timeout=0)
        d.lock("b", shared=True, timeout=0).release()
        lease.release()
        d.lock("a", timeout=0).release()
        d.lock("b", timeout=0).release()


def test_all_or_nothing_and_fifo(daemon):
    with hasp.Client() as holder, hasp.Client() as m, hasp.Client() as d:
        hb = holder.lock("y")
        got = []
        t = threading.Thread(target=lambda: got.append(m.lock_many(["x", "y"],
                                                                   timeout=bound(10))))
        t.start()
        pause = threading.Event()
        for _ in range(1000):  # until the daemon lists its wait on x
            rep = d._call("list", {"prefix": "x"})
            if any(r.get("waiters") for r in rep.get("resources")):
                break
            pause.wait(0.005)
        # x is free, but nothing is held while it waits, and a later
        # request on x waits behind it.
        with pytest.raises(hasp.Busy):
            d.lock("x", timeout=0)
        hb.release()
        t.join(bound(10))
        assert got and got[0].keys == ["x", "y"]
        got[0].release()


def test_refusals(daemon):
    with hasp.Client() as c:
        c.lock("held")
        with pytest.raises(hasp.AlreadyHeld):
            c.lock_many(["held", "other"], timeout=0)
        with pytest.raises(ValueError):
            c.lock_many(["one"])
        with pytest.raises(ValueError):
            c.lock_many(["twice", "twice"])
        with pytest.raises(ValueError):
            c.lock_many([("k", "both"), "l"])


def test_one_off_lock_many_closes_its_client(daemon):
    with hasp.lock_many(["p", "q"], shared=True) as lease:
        assert lease.mode == "shared"
    assert lease.released and lease.client.closed


def test_aio_lock_many(daemon):
    import asyncio

    async def main():
        async with hasp.aio.Client() as c:
            lease = await c.lock_many(["aio-a", ("aio-b", "shared")], timeout=1)
            assert lease.keys == ["aio-a", "aio-b"] and lease.key == "aio-a\naio-b"
            with hasp.Client() as d:
                with pytest.raises(hasp.Busy):
                    d.lock("aio-a", timeout=0)
            await lease.release()
            with hasp.Client() as d:
                d.lock("aio-a", timeout=0).release()

    asyncio.run(main())
