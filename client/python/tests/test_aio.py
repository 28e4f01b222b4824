"""hasp.aio against a real haspd: the async client, cancellation, rapfiles'
lock_file and examples, AsyncFileLock."""

import asyncio
import os
import select
import signal
import subprocess
import sys
import time

import pytest

import hasp
import hasp.aio as aio
from conftest import bound, python_child, read_line


def _resource(c, name):
    """The daemon's entry for name (a key or a file's path), or None."""
    rep = c._call("list", {"prefix": name})
    for r in rep.get("resources"):
        if r.get("key") == name or r.get("path") == name:
            return r
    return None


async def _until(pred, what, seconds=5.0):
    """Polls pred (the daemon's state has no event to wait on) within a bound."""
    end = time.monotonic() + bound(seconds)
    while not pred():
        if time.monotonic() > end:
            pytest.fail("timed out waiting for %s" % what)
        await asyncio.sleep(0.002)


def _waiting(c, name):
    r = _resource(c, name)
    return bool(r and r.get("waiters"))


def _nothing_on(c, name):
    return _resource(c, name) is None


async def test_lease_attributes_and_one_client_many_requests(daemon):
    async with aio.Client(name="aio") as c, aio.Client() as d:
        a = await d.lock("a", owner="alice")
        b = await d.lock("b")
        assert a.key == "a" and a.mode == "exclusive" and a.fence < 2 ** 53 and not a.lost
        # two waits in flight on one client, granted in the other order
        wa = asyncio.ensure_future(c.lock("a", timeout=bound(10)))
        wb = asyncio.ensure_future(c.lock("b", timeout=bound(10)))
        with hasp.Client() as admin:
            await _until(lambda: _waiting(admin, "a") and _waiting(admin, "b"), "two waiters")
        await b.release()
        got_b = await asyncio.wait_for(wb, bound(5))
        assert not wa.done()
        await a.release()
        got_a = await asyncio.wait_for(wa, bound(5))
        assert got_a.fence > got_b.fence > a.fence
        assert await c.ping() < bound(1)
        await got_a.release()
        await got_b.release()
        assert a.released and await a.release() is None  # a second release does nothing


async def test_busy_and_timeout_carry_holders(daemon):
    async with aio.lock("res", owner="bob", message="why") as held:
        with pytest.raises(hasp.Busy) as ei:
            async with aio.lock("res", timeout=0):
                pass
        [h] = ei.value.holders
        assert (h.pid, h.owner, h.message, h.lease) == (os.getpid(), "bob", "why", held.id)
        start = time.monotonic()
        with pytest.raises(hasp.Timeout) as ei:
            async with aio.lock("res", timeout=0.2):
                pass
        assert 0.2 <= time.monotonic() - start < 0.4 + bound(1)
        assert str(ei.value) == "The lock 'res' could not be acquired."
        assert [x.owner for x in ei.value.holders] == ["bob"]


async def test_cancelled_waiting_async_with_leaves_nothing(daemon, workdir):
    path = os.path.join(workdir, "data.txt")
    with hasp.Client() as admin:
        holder = admin.lock_file(path)

        async def wait_for_it():
            async with aio.lock_file(path):
                pytest.fail("granted while held")

        task = asyncio.ensure_future(wait_for_it())
        await _until(lambda: _waiting(admin, path), "the waiter")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        r = _resource(admin, path)
        assert r.get("waiters", []) == [] and len(r["holders"]) == 1
        holder.release()
        assert _nothing_on(admin, path)
        # and the same on a shared client, with the cancel op (the session stays)
        held = admin.lock("k")
        async with aio.Client() as c:
            task = asyncio.ensure_future(c.lock("k"))
            await _until(lambda: _waiting(admin, "k"), "the waiter")
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert not c.closed
            assert _resource(admin, "k").get("waiters", []) == []
            stats = admin._call("stats")
            assert stats.get("cancels", stats.get("counters", {}).get("cancels", 1)) >= 1
            held.release()
            assert _nothing_on(admin, "k")
            assert not c.closed and await c.ping() >= 0


async def test_grant_crossing_the_cancel_is_released(daemon):
    with hasp.Client() as admin:
        held = admin.lock("x")
        async with aio.Client() as c:
            task = asyncio.ensure_future(c.lock("x"))
            await _until(lambda: _waiting(admin, "x"), "the waiter")
            # stop reading: the grant will wait in the socket while we cancel
            c._loop.remove_reader(c._sock.fileno())
            held.release()  # the daemon grants c before it answers this
            r = _resource(admin, "x")
            assert r and r["holders"] and r["holders"][0]["pid"] == os.getpid()
            task.cancel()
            await asyncio.sleep(0)  # the task sends its cancel now
            c._loop.add_reader(c._sock.fileno(), c._on_readable)
            with pytest.raises(asyncio.CancelledError):
                await task
            assert _nothing_on(admin, "x"), _resource(admin, "x")
            assert await c.ping() >= 0


async def test_killed_holder_lets_the_next_async_waiter_in(daemon, workdir):
    path = os.path.join(workdir, "crash.txt")
    child = python_child("import asyncio, sys, hasp.aio\n"
                         "async def main():\n"
                         "    async with hasp.aio.lock_file(%r):\n"
                         "        print('locked', flush=True)\n"
                         "        sys.stdin.read()\n"
                         "asyncio.run(main())\n" % path)
    try:
        assert read_line(child.stdout) == "locked\n"
        task = asyncio.ensure_future(aio.lock_file(path, timeout=bound(10)))
        with hasp.Client() as admin:
            await _until(lambda: _waiting(admin, path), "the waiter")
        killed = time.monotonic()
        child.send_signal(signal.SIGKILL)
        lease = await asyncio.wait_for(task, bound(10))
        assert time.monotonic() - killed < bound(0.5)
        await lease.release()
    finally:
        child.kill()
        child.wait()


async def test_async_file_lock_as_filelock(daemon, workdir):
    path = os.path.join(workdir, "a.lock")
    lock = aio.AsyncFileLock(path, timeout=bound(5))
    assert not lock.is_locked and lock.lock_file == path and lock.timeout == bound(5)
    async with lock as got:
        assert got is lock and lock.is_locked and lock.lock_counter == 1
        proxy = await lock.acquire()
        assert lock.lock_counter == 2
        async with proxy:
            pass
        assert lock.is_locked and lock.lock_counter == 1
        other = aio.AsyncFileLock(path)
        with pytest.raises(hasp.Timeout) as ei:
            await other.acquire(timeout=0.05)
        assert str(ei.value) == "The file lock '%s' could not be acquired." % path
        assert ei.value.holders[0].pid == os.getpid()
        with pytest.raises(hasp.Timeout):
            await other.acquire(blocking=False)
        assert not other.is_locked and other.lock_counter == 0
    assert not lock.is_locked
    with pytest.raises(NotImplementedError):
        with lock:
            pass
    assert aio.AsyncFileLock(path, is_singleton=True) is aio.AsyncFileLock(path,
                                                                           is_singleton=True)
    await lock.release()  # not held: nothing


async def test_shared_readers_together_writer_alone(daemon, workdir):
    path = os.path.join(workdir, "shared.txt")
    inside = 0
    all_in = asyncio.Event()

    async def reader():
        nonlocal inside
        async with aio.lock_file_shared(path) as lease:
            assert lease.mode == "shared"
            inside += 1
            if inside == 3:
                all_in.set()
            await asyncio.wait_for(all_in.wait(), bound(5))  # three readers at once
            with pytest.raises(hasp.Busy) as ei:
                async with aio.lock_file(path, exclusive=True, timeout=0):
                    pass
            assert {h.mode for h in ei.value.holders} == {"shared"}

    await asyncio.gather(reader(), reader(), reader())


async def test_file_helpers(daemon, workdir):
    p = os.path.join(workdir, "h.txt")
    assert await aio.write_file(p, "héllo") is None
    assert await aio.read_file(p) == "héllo"
    assert await aio.read_file_bytes(p) == "héllo".encode()
    os.chmod(p, 0o640)
    await aio.atomic_write_file(p, "new")
    assert hasp.read_file(p) == "new" and os.stat(p).st_mode & 0o777 == 0o640
    hasp.atomic_write_file(p, b"\x00bytes")
    assert hasp.read_file_bytes(p) == b"\x00bytes"
    hasp.write_file(p, "short")
    assert hasp.read_file(p) == "short"
    assert sorted(os.listdir(workdir)) == ["h.txt"]  # no temporary file left
    with pytest.raises(FileNotFoundError):
        await aio.read_file(os.path.join(workdir, "missing"))


# -- atomic replacement under a lease -------------------------------------------


def _adopt_or_skip(err):
    if err.code == "unknown_op":
        pytest.skip("this haspd has no adopt op yet (unknown_op): atomic replacement "
                    "cannot keep the lock")
    raise err


async def test_atomic_write_under_a_lease_adopts(daemon, workdir):
    """Without the adopt op the file is left as it was (never a split lock);
    with it, the new file is the same lock: newcomers wait behind the holder."""
    path = os.path.join(workdir, "counter.txt")
    hasp.write_file(path, "0")
    before = os.stat(path).st_ino
    async with aio.lock_file(path):
        try:
            await aio.atomic_write_file(path, "1")
        except hasp.BadRequest as e:
            assert e.code == "unknown_op" and "unchanged" in str(e)
            assert hasp.read_file(path) == "0" and os.stat(path).st_ino == before
            assert os.listdir(workdir) == ["counter.txt"]
            _adopt_or_skip(e)
        assert hasp.read_file(path) == "1" and os.stat(path).st_ino != before
        with pytest.raises(hasp.Busy):
            await aio.lock_file(path, timeout=0)  # opens the new inode: the same lock
        await aio.atomic_write_file(path, "2")  # the registry follows the new inode
        with pytest.raises(hasp.Busy):
            hasp.lock_file(path, timeout=0)
    async with aio.lock_file(path, timeout=0):
        pass


def test_blocking_atomic_write_under_filelock_adopts(daemon, workdir):
    path = os.path.join(workdir, "data.json")
    hasp.write_file(path, "{}")
    with hasp.FileLock(path):
        try:
            hasp.atomic_write_file(path, '{"a": 1}')
        except hasp.BadRequest as e:
            assert hasp.read_file(path) == "{}"
            _adopt_or_skip(e)
        with pytest.raises(hasp.Busy):
            hasp.lock_file(path, timeout=0)
    assert hasp.read_file(path) == '{"a": 1}'


# -- rapfiles' examples, with only the import changed ---------------------------

RAPFILES_COUNTER = """
import asyncio
from hasp.aio import lock_file, read_file, write_file

async def update_counter():
    \"\"\"Safely increment a counter in a file.\"\"\"
    async with lock_file("counter.txt", exclusive=True):
        # Read current value
        try:
            current = int(await read_file("counter.txt"))
        except FileNotFoundError:
            current = 0

        # Write incremented value
        await write_file("counter.txt", str(current + 1))

# Multiple coroutines can safely update the counter
async def main():
    await asyncio.gather(
        update_counter(),
        update_counter(),
        update_counter(),
    )

asyncio.run(main())
"""

RAPFILES_READER_WRITER = """
import asyncio
from hasp.aio import lock_file, lock_file_shared, read_file, write_file

async def reader(file_path: str):
    \"\"\"Multiple readers can read simultaneously.\"\"\"
    async with lock_file_shared(file_path):
        content = await read_file(file_path)
        print(f"Read: {content}")
        await asyncio.sleep(0.1)  # Simulate reading

async def writer(file_path: str, data: str):
    \"\"\"Only one writer at a time.\"\"\"
    async with lock_file(file_path, exclusive=True):
        await write_file(file_path, data)
        print(f"Wrote: {data}")
        await asyncio.sleep(0.1)  # Simulate writing

async def main():
    file_path = "shared.txt"
    await write_file(file_path, "Initial content")

    # Multiple readers can read simultaneously
    await asyncio.gather(
        reader(file_path),
        reader(file_path),
        reader(file_path),
    )

    # Only one writer at a time
    await asyncio.gather(
        writer(file_path, "Update 1"),
        writer(file_path, "Update 2"),
    )

asyncio.run(main())
"""

ATOMIC_COUNTER = """
import asyncio, sys
from hasp.aio import lock_file, read_file, atomic_write_file

async def update_counter():
    async with lock_file("counter.txt", exclusive=True):
        try:
            current = int(await read_file("counter.txt"))
        except FileNotFoundError:
            current = 0
        await atomic_write_file("counter.txt", str(current + 1))

async def main(n):
    for _ in range(n):
        await asyncio.gather(update_counter(), update_counter(), update_counter())

asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 1))
"""


def _run_script(code, cwd, *args):
    """The example as a script file in cwd, run there."""
    script = os.path.join(cwd, "example.py")
    if not os.path.exists(script):
        with open(script, "w") as f:
            f.write(code)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return subprocess.Popen([sys.executable, script] + list(args), cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(proc):
    out, err = proc.communicate(timeout=bound(120))
    assert proc.returncode == 0, err
    return out


def test_rapfiles_counter_example(daemon, workdir):
    # As rapfiles' docs have it: the lock creates counter.txt, so a first run
    # would read "" (int("") is a ValueError, not the FileNotFoundError the
    # example expects, with rapfiles too): it starts from a counter of 0.
    hasp.write_file(os.path.join(workdir, "counter.txt"), "0")
    _finish(_run_script(RAPFILES_COUNTER, workdir))
    assert hasp.read_file(os.path.join(workdir, "counter.txt")) == "3"


def test_rapfiles_reader_writer_example(daemon, workdir):
    out = _finish(_run_script(RAPFILES_READER_WRITER, workdir)).splitlines()
    assert out[:3] == ["Read: Initial content"] * 3
    assert sorted(out[3:]) == ["Wrote: Update 1", "Wrote: Update 2"]
    assert hasp.read_file(os.path.join(workdir, "shared.txt")) in ("Update 1", "Update 2")


def _probe_adopt(workdir):
    path = os.path.join(workdir, ".probe")
    with hasp.lock_file(path):
        try:
            hasp.atomic_write_file(path, "probe")
        except hasp.BadRequest as e:
            _adopt_or_skip(e)
    os.unlink(path)


def test_atomic_counter_three_coroutines(daemon, workdir):
    _probe_adopt(workdir)
    hasp.write_file(os.path.join(workdir, "counter.txt"), "0")
    _finish(_run_script(ATOMIC_COUNTER, workdir, "10"))
    assert hasp.read_file(os.path.join(workdir, "counter.txt")) == "30"


def test_atomic_counter_several_processes_loses_nothing(daemon, workdir):
    _probe_adopt(workdir)
    hasp.write_file(os.path.join(workdir, "counter.txt"), "0")
    procs = [_run_script(ATOMIC_COUNTER, workdir, "10") for _ in range(4)]
    try:
        for p in procs:
            _finish(p)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    # 4 processes x 10 rounds x 3 coroutines
    assert hasp.read_file(os.path.join(workdir, "counter.txt")) == "120"


async def test_release_of_a_key_lease_revoked_meanwhile_raises(daemon):
    """A revoke that haspd sent before the release (its event unread: the
    loop did not run meanwhile) makes the release raise LeaseLost, as
    the README promises: the section was not protected to its end."""
    async with aio.Client() as c:
        lease = await c.lock("revoked-aio")
        with hasp.Client() as admin:  # blocking: the loop does not run meanwhile
            assert admin._call("revoke", {"lease": lease.id}).ok
        r, _, _ = select.select([c._sock], [], [], bound(5))
        assert r, "the revoked event did not come"
        with pytest.raises(hasp.LeaseLost):
            await lease.release()


async def test_a_key_release_into_a_full_socket_is_done_once_written(daemon):
    """With haspd stopped under a pile of requests (the socket full), a
    named key's release is not done before it is written: a try that
    another client sends once it is done must find the key free."""
    async with aio.Client() as c:
        lease = await c.lock("full-aio")
        piled = []
        daemon.proc.send_signal(signal.SIGSTOP)
        try:
            while not c._writing and len(piled) < 1000:  # until the socket takes no more
                piled.append(c._request("ping", {"pad": "x" * 60000})[1])
            assert c._writing
            rel = lease.release()
            await asyncio.sleep(0.1)
            assert not rel.done(), "the release was done before it was written"
        finally:
            daemon.proc.send_signal(signal.SIGCONT)
        await asyncio.wait_for(rel, bound(10))
        with hasp.Client() as other:
            other.lock("full-aio", timeout=0).release()
        for f in piled:
            assert (await asyncio.wait_for(f, bound(10))).ok


async def test_semaphore_grants_the_queue_in_order(daemon):
    async with aio.Client() as a, aio.Client() as b, aio.Client() as c:
        la = await a.lock("apool", limit=2)
        lb = await b.lock("apool", limit=2)
        wait = asyncio.ensure_future(c.lock("apool", limit=2, timeout=bound(10)))
        with hasp.Client() as admin:
            await _until(lambda: _waiting(admin, "apool"), "a waiter")
            assert _resource(admin, "apool").get("limit") == 2
        assert not wait.done()
        await lb.release()
        lc = await asyncio.wait_for(wait, bound(5))
        assert lc.fence > lb.fence
        with pytest.raises(hasp.BadRequest):
            await b.lock("apool", limit=4)
        await la.release()
        await lc.release()
    async with aio.lock("apool", limit=1, timeout=0) as held:
        assert held.mode == "exclusive"
