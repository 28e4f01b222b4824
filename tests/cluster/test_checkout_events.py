"""Checkouts of cluster keys (held by etcd: past their session and haspd,
checked in or renewed by token from another host, ended by their TTL, given
up when cancelled while being made), the watch events of cluster requests,
and a revoke of more holders than etcd takes in one transaction."""

import time

from conftest import bound, holders, wait_for


def test_checkout_outlives_its_session_and_is_checked_in_from_the_other_host(two, key):
    ra, rb = two.a.raw(), two.b.raw()
    rep = ra.call("acquire", key=key, detach=True, ttl_ms=60000, owner="alice")
    assert rep["ok"] and len(rep["token"]) == 32 and rep["expires_ms"] == 60000, rep
    ra.close()  # the checkout is not its session's
    busy = rb.call("acquire", key=key, timeout_ms=0)
    assert busy["error"]["code"] == "busy", busy
    h = busy["error"]["holders"][0]
    assert h["host"] == "hostA" and h["checkout"] is True and h["owner"] == "alice", h
    renew = rb.call("renew", token=rep["token"])
    assert renew["ok"] and renew["lease"] == rep["lease"] and renew["expires_ms"] == 60000, renew
    wrong = rb.call("release", key=key + "/other", token=rep["token"])
    assert wrong["error"]["code"] == "permission_denied", wrong
    done = rb.call("release", token=rep["token"])
    assert done == {"id": done["id"], "ok": True, "lease": rep["lease"]}, done
    again = rb.call("release", token=rep["token"])
    assert again["error"]["code"] == "unknown_lease", again
    assert rb.call("acquire", key=key, timeout_ms=0)["ok"]


def test_checkout_needs_a_ttl_and_ends_at_it(two, key):
    ra, rb = two.a.raw(), two.b.raw()
    bad = ra.call("acquire", key=key, detach=True)
    assert bad["error"]["code"] == "bad_request" and "ttl_ms" in bad["error"]["message"], bad
    rep = ra.call("acquire", key=key, detach=True, ttl_ms=1500)
    assert rep["ok"], rep
    t0 = time.monotonic()
    rid = rb.send("acquire", key=key)
    got = rb.reply(rid, 10, "the waiter behind a checkout with a TTL")
    took = time.monotonic() - t0
    assert got["ok"], got
    # etcd's TTL is whole seconds, at least the checkout's: never early.
    assert 1.4 <= took <= bound(1.5) + 2.5, took


def test_checkout_cancelled_while_being_made_is_given_up(two, key):
    """The cancel reaches haspd while it makes the checkout (between the
    grant and the reply): the checkout is given up, not left in etcd with a
    token nobody has. The cancel is pipelined with the acquire, so it lands
    in that window or before it; either way nothing may stay held."""
    ra, rb = two.a.raw(), two.b.raw()
    rid = ra.send("acquire", key=key, detach=True, ttl_ms=600000)
    cid = ra.send("cancel", request=rid)
    first = ra.reply(rid, 5)
    cancel = ra.reply(cid, 5)
    if first["ok"]:  # granted before the cancel was read: a checkout, ended by token
        assert cancel["error"]["code"] == "unknown_request", cancel
        assert rb.call("release", token=first["token"])["ok"]
    else:
        assert first["error"]["code"] == "cancelled" and cancel["ok"], (first, cancel)
    # The cancelled request's key may still be on its way in or out of
    # etcd: B gets the key within a bound far below the checkout's TTL.
    got = rb.call("acquire", key=key, timeout_ms=3000, seconds=10)
    assert got["ok"], got


def test_watch_tells_cluster_requests_with_their_host(two, key):
    ra, rb, watcher = two.a.raw(), two.b.raw(), two.a.raw()
    assert watcher.call("watch", prefix=key)["ok"]
    held = rb.call("acquire", key=key)
    assert held["ok"], held
    rid = ra.send("acquire", key=key, owner="bob")
    q = watcher.event("queued", 5, key=key)
    assert q["host"] == "hostA" and q["owner"] == "bob" and q["request"] == rid, q
    assert rb.call("release", lease=held["lease"])["ok"]
    got = ra.reply(rid, 5)
    g = watcher.event("granted", 5, key=key)
    assert g["lease"] == got["lease"] and g["fence"] == got["fence"] and g["waited_ms"] >= 0, g
    assert ra.call("release", lease=got["lease"])["ok"]
    r = watcher.event("released", 5, key=key)
    assert r["reason"] == "release" and r["lease"] == got["lease"], r
    timed = ra.call("acquire", key=key, timeout_ms=0)
    assert timed["ok"]
    # another host's requests are that host's to tell
    rid = rb.send("acquire", key=key, timeout_ms=100)
    assert rb.reply(rid, 5)["error"]["code"] == "timeout"
    watcher.drain()
    assert not [e for e in watcher.events if e.get("host") == "hostB"], watcher.events


def test_revoke_by_key_of_more_holders_than_one_etcd_transaction_takes(two, key):
    """etcd refuses a transaction of more than 128 operations: a revoke of
    130 shared holders still ends every one."""
    sessions = []
    for _ in range(130):
        r = two.b.raw()
        sessions.append((r, r.send("acquire", key=key, mode="shared")))
    for r, rid in sessions:
        assert r.reply(rid, 10)["ok"]
    rep = two.a.raw().call("revoke", key=key, seconds=20)
    assert rep["ok"] and len(rep["revoked"]) == 130, rep
    for r, _ in sessions:
        r.event("revoked", 10)
    assert holders(two.a, key) == []
