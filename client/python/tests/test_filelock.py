"""hasp.FileLock against py-filelock's documented behaviour, and the seed
example (load_locks/save_locks of a locks.json) from several processes."""

import gc
import json
import os
import pickle
import threading
import time

import pytest

import hasp
from hasp import FileLock, SoftFileLock, Timeout
from conftest import bound


@pytest.fixture
def lockpath(daemon, workdir):
    return os.path.join(workdir, "x.lock")


def test_reentrancy_counts(lockpath):
    lock = FileLock(lockpath)
    assert not lock.is_locked and lock.lock_counter == 0
    with lock:
        assert lock.is_locked and lock.lock_counter == 1
        with lock:
            assert lock.lock_counter == 2
            lock.acquire()
            assert lock.lock_counter == 3
            lock.release()
        assert lock.is_locked and lock.lock_counter == 1
    assert not lock.is_locked and lock.lock_counter == 0
    with hasp.lock_file(lockpath, timeout=0):  # really released
        pass


def test_release_force(lockpath):
    lock = FileLock(lockpath)
    lock.acquire()
    lock.acquire()
    lock.release(force=True)
    assert not lock.is_locked and lock.lock_counter == 0
    lock.release()  # releasing an unlocked lock does nothing
    assert lock.lock_counter == 0


def test_timeout_message_attribute_and_holders(lockpath):
    holder = FileLock(lockpath)
    other = FileLock(lockpath, timeout=0.05)
    with holder:
        start = time.monotonic()
        with pytest.raises(Timeout) as ei:
            other.acquire()
        assert time.monotonic() - start >= 0.05
        with pytest.raises(Timeout):
            other.acquire(timeout=0)
        with pytest.raises(Timeout):
            other.acquire(blocking=False)
        with pytest.raises(Timeout):
            FileLock(lockpath, blocking=False).acquire(timeout=-1)
    e = ei.value
    assert str(e) == "The file lock '%s' could not be acquired." % lockpath
    assert e.lock_file == lockpath
    assert [h.pid for h in e.holders] == [os.getpid()]
    assert other.lock_counter == 0 and not other.is_locked
    copy = pickle.loads(pickle.dumps(e))
    assert str(copy) == str(e) and copy.lock_file == lockpath
    assert str(Timeout("a.lock")) == "The file lock 'a.lock' could not be acquired."


def test_acquire_returns_a_proxy(lockpath):
    lock = FileLock(lockpath)
    proxy = lock.acquire()
    assert isinstance(proxy, hasp.AcquireReturnProxy)
    with proxy as entered:
        assert entered is lock and lock.lock_counter == 1  # not acquired twice
    assert not lock.is_locked


def test_timeout_and_lock_file_properties(lockpath):
    lock = FileLock(lockpath, timeout=3)
    assert lock.timeout == 3 and lock.lock_file == lockpath
    lock.timeout = "0.5"
    assert lock.timeout == 0.5
    assert lock.mode == 0o644 and lock.blocking is True and lock.is_thread_local()
    lock.blocking = False
    assert lock.blocking is False


def test_decorator(lockpath):
    lock = FileLock(lockpath)

    @lock
    def inside():
        return lock.is_locked, lock.lock_counter

    assert inside() == (True, 1)
    assert not lock.is_locked


def test_release_on_garbage_collection(lockpath):
    lock = FileLock(lockpath)
    lock.acquire()
    del lock
    gc.collect()
    with hasp.lock_file(lockpath, timeout=0):
        pass


def test_never_truncates_and_creates_with_mode(lockpath):
    old = os.umask(0o022)
    try:
        with FileLock(lockpath, mode=0o660):
            pass
    finally:
        os.umask(old)
    assert os.stat(lockpath).st_mode & 0o777 == 0o640
    with open(lockpath, "w") as f:
        f.write("data")
    with FileLock(lockpath):
        pass
    with open(lockpath) as f:
        assert f.read() == "data"
    assert os.path.exists(lockpath)  # nor deleted


def test_threads_exclude_each_other_when_thread_local(lockpath):
    lock = FileLock(lockpath)
    lock.acquire()
    assert _in_thread(lock) == ["timeout"]
    lock.release()


def test_threads_share_when_not_thread_local(lockpath):
    lock = FileLock(lockpath, thread_local=False)
    assert not lock.is_thread_local()
    lock.acquire()
    assert _in_thread(lock) == ["acquired"]
    assert lock.lock_counter == 1
    lock.release()
    assert not lock.is_locked


def _in_thread(lock):
    result = []
    t = threading.Thread(target=lambda: result.append(_try(lock)))
    t.start()
    t.join(bound(10))
    return result


def _try(lock):
    try:
        lock.acquire(timeout=0.05)
    except Timeout:
        return "timeout"
    lock.release()
    return "acquired"


def test_singleton(lockpath):
    a = FileLock(lockpath, is_singleton=True)
    assert FileLock(lockpath, is_singleton=True) is a
    assert FileLock(lockpath) is not a
    with pytest.raises(ValueError):
        FileLock(lockpath, timeout=5, is_singleton=True)


def test_soft_file_lock_is_the_same(lockpath):
    assert SoftFileLock is FileLock


def test_poll_intervall_is_deprecated(lockpath):
    lock = FileLock(lockpath)
    with pytest.warns(DeprecationWarning):
        lock.acquire(poll_intervall=0.1)
    lock.release()


def test_flock_compatible_lock(lockpath):
    """A py-filelock FileLock and hasp's exclude each other."""
    filelock = pytest.importorskip("filelock")
    with FileLock(lockpath):
        with pytest.raises(filelock.Timeout):
            filelock.FileLock(lockpath, timeout=0).acquire()
    theirs = filelock.FileLock(lockpath)
    with theirs:
        with pytest.raises(Timeout):
            FileLock(lockpath, timeout=0.05).acquire()
    with FileLock(lockpath, timeout=bound(5)):
        pass


# The seed: filelock's docs' style of a checkout service keeping locks.json
# under a FileLock; several processes each add their entries. Only the import
# differs from the filelock version.
SEED = r'''
import json, os, sys
from hasp import FileLock, Timeout

LOCKS = sys.argv[1]
lock = FileLock(LOCKS + ".lock", timeout=30)

def load_locks():
    if not os.path.exists(LOCKS):
        return {}
    with open(LOCKS) as f:
        return json.load(f)

def save_locks(locks):
    with open(LOCKS, "w") as f:
        json.dump(locks, f)

def checkout(part, user):
    with lock:
        locks = load_locks()
        if part in locks:
            return "409: already checked out by %s" % locks[part]
        locks[part] = user
        save_locks(locks)
        return "200"

user = sys.argv[2]
for i in range(int(sys.argv[3])):
    assert checkout("part-%s-%d" % (user, i), user) == "200"
    assert checkout("part-%s-%d" % (user, i), "someone").startswith("409: already checked out by " + user)
print("done", flush=True)
'''


def test_seed_locks_json_under_contention(daemon, workdir):
    import subprocess
    import sys
    locks = os.path.join(workdir, "locks.json")
    users, per = 6, 25
    env = dict(os.environ)
    env["PYTHONPATH"] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    procs = [subprocess.Popen([sys.executable, "-c", SEED, locks, "u%d" % u, str(per)],
                              env=env, stdout=subprocess.PIPE, text=True)
             for u in range(users)]
    try:
        for p in procs:
            out, _ = p.communicate(timeout=bound(60))
            assert p.returncode == 0 and out == "done\n"
    finally:
        for p in procs:
            p.kill()
            p.wait()
    with open(locks) as f:
        got = json.load(f)
    assert len(got) == users * per  # none lost
    assert got == {"part-u%d-%d" % (u, i): "u%d" % u for u in range(users) for i in range(per)}




def test_the_connection_is_kept_between_acquires(lockpath):
    """One session for a FileLock (and thread): acquire and release are a
    round trip each, not a connection each; the session ends with the lock
    object, and holds nothing between acquires."""
    lock = FileLock(lockpath)
    with lock:
        first = lock.lease.client
    assert not first.closed
    other = FileLock(lockpath)
    with other.acquire(timeout=0):  # nothing was left held
        pass
    with lock:
        assert lock.lease.client is first
    del lock
    gc.collect()
    assert first.closed
