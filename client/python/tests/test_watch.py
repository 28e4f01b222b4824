"""hasp.watch against a real haspd (issue 18): a contention story seen in
order, the prefix filter, and prefixes that are refused."""

import threading

import pytest

import hasp
from conftest import bound


def next_event(w, name, seconds=10.0):
    """The next event of w, which must be name (bounded)."""
    ev = w.get(bound(seconds))
    assert ev is not None, "no %s event within %s s" % (name, bound(seconds))
    assert ev["event"] == name, "expected %s, got %r" % (name, ev)
    return ev


def test_a_contention_story_in_order(daemon):
    with hasp.watch("story/") as w, hasp.Client() as a, hasp.Client() as b:
        lease = a.lock("story/db", owner="alice")
        g = next_event(w, "granted")  # at once: no queued before it
        assert g["key"] == "story/db" and g["owner"] == "alice" and g["mode"] == "exclusive"
        assert g["lease"] == lease.id and g["fence"] == lease.fence and g["waited_ms"] == 0
        with pytest.raises(hasp.Timeout):
            b.lock("story/db", timeout=0.05, owner="bob")
        assert next_event(w, "queued")["owner"] == "bob"
        t = next_event(w, "timeout")
        assert t["owner"] == "bob" and t["waited_ms"] >= 50
        lease.release()
        r = next_event(w, "released")
        assert r["lease"] == lease.id and r["reason"] == "release" and r["held_ms"] >= 0


def test_a_release_grants_the_waiter(daemon):
    with hasp.watch("hand/") as w, hasp.Client() as a, hasp.Client() as b:
        lease = a.lock("hand/x")
        next_event(w, "granted")
        got = []
        t = threading.Thread(target=lambda: got.append(b.lock("hand/x", timeout=bound(10))))
        t.start()
        next_event(w, "queued")  # the waiter is in the queue: now release
        lease.release()
        assert next_event(w, "released")["reason"] == "release"
        g = next_event(w, "granted")
        t.join(bound(10))
        assert got and g["lease"] == got[0].id and g["waited_ms"] >= 0
        got[0].release()


def test_prefix_filters(daemon):
    with hasp.watch("mine/") as w, hasp.Client() as a:
        a.lock("other/k").release()
        a.lock("mine/k").release()
        ev = next_event(w, "granted")
        assert ev["key"] == "mine/k", "an event of another prefix came: %r" % ev
        assert next_event(w, "released")["key"] == "mine/k"


def test_a_prefix_that_is_not_a_string_is_refused(daemon):
    with pytest.raises(TypeError):
        hasp.watch(prefix=42)
    with pytest.raises(ValueError):
        hasp.watch(prefix="x" * 5000)


def test_the_daemon_refuses_a_prefix_of_another_type(daemon):
    with hasp.Client() as c:
        rep = c._call("watch", {"prefix": 42})
        assert not rep.ok and rep.code == "bad_request"
        rep = c._call("watch", {"prefix": ["a"]})
        assert not rep.ok and rep.code == "bad_request"


def test_the_daemon_going_away_ends_the_watch(daemon):
    w = hasp.watch()
    daemon.stop()
    with pytest.raises(hasp.Unavailable):
        w.get(bound(10))
    w.close()
