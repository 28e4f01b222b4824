"""Failures in cluster mode (spec19.md, "Failure"): a haspd SIGKILLed under
its client's lease, etcd members killed (a follower, the leader), quorum
lost and back, and a compaction while a request waits."""

import signal
import subprocess
import time

import pytest

import hasp
from conftest import (TTL, bound, end_child, end_cli, holder_child, holders, read_line, spawn,
                      wait_for, wait_waiters, waiters)


def test_sigkill_of_haspd_frees_its_locks_within_ttl(two, key):
    """haspd B SIGKILLed while its client holds: A's waiter is granted
    within TTL + 1 s of the kill, and not before it."""
    child = holder_child(two.b, key)
    try:
        with two.a.client(name="waiter") as ca:
            w = spawn(ca.lock, key, timeout=bound(30))
            wait_waiters(two.a, key, 1)
            assert not w.done.is_set()
            t0 = time.monotonic()
            two.b.kill(signal.SIGKILL)
            lease = w.get(TTL + 10, "the waiter's grant")
            took = time.monotonic() - t0
            assert took <= bound(TTL + 1), "granted %.3f s after the kill (TTL %d s)" % (took, TTL)
            assert lease.fence > child.fence
            lease.release()
    finally:
        end_child(child)


def handoff(h1, h2, key, seconds=10):
    """A lock on h1, a waiter on h2, the release: the waiter is granted.
    Every step bounded (a host may first have to find a live endpoint)."""
    with h1.client(name="first") as c1, h2.client(name="second") as c2:
        l1 = c1.lock(key, timeout=bound(seconds))
        w = spawn(c2.lock, key, timeout=bound(seconds))
        wait_waiters(h1, key, 1, "%s's waiter in %s's list" % (h2.name, h1.name))
        l1.release()
        l2 = w.get(seconds + 5, "the grant on %s" % h2.name)
        assert l2.fence > l1.fence
        l2.release()


def test_etcd_member_and_leader_killed(hosts3, key):
    """Three members. A follower SIGKILLed, then (once it is back) the
    leader: locking goes on from both hosts, and a lease held through both
    stays held (no `lost`, its release answered ok)."""
    etcd = hosts3.etcd
    m = etcd.members
    a = hosts3("hostA", ",".join(x.url for x in m))
    b = hosts3("hostB", ",".join(x.url for x in (m[2], m[0], m[1])))
    kept = a.raw()
    held = kept.call("acquire", key=key + "/kept")
    assert held["ok"], held
    handoff(a, b, key)

    # A follower that a host talks to (stats' "endpoint"), if one is.
    lead = etcd.leader()
    used = {h.cluster_stats()["endpoint"]: h for h in (a, b)}
    followers = [x for x in m if x is not lead]
    victim = ([x for x in followers if x.url in used] or followers)[0]
    victim.kill()
    handoff(a, b, key)
    handoff(b, a, key)
    if victim.url in used:
        now = used[victim.url].cluster_stats()["endpoint"]
        assert now != victim.url and now in etcd.urls, (victim.url, now)
    victim.start()
    etcd.wait_healthy()

    lead = etcd.leader()
    lead.kill()
    new = etcd.leader(10)
    assert new is not lead
    handoff(a, b, key)
    handoff(b, a, key)
    lead.start()
    etcd.wait_healthy()
    handoff(a, b, key)

    kept.drain()
    assert [e for e in kept.events if e.get("event") in ("lost", "revoked")] == []
    rep = kept.call("release", lease=held["lease"])
    assert rep["ok"], rep


def kill_quorum(etcd):
    """SIGKILLs the leader and a follower of three members; the members
    killed and the monotonic time of the kill."""
    lead = etcd.leader()
    down = [lead, etcd.followers()[0]]
    t = time.monotonic()
    for mb in down:
        mb.kill()
    return down, t


def test_quorum_loss(hosts3, key):
    """Two of three members SIGKILLed: a cluster acquire fails `unavailable`
    within about TTL/2; a holder gets `lost`, a waiter `unavailable`; a
    local key locks and releases on the same haspd throughout; stats says
    unavailable. With the members back, the host takes cluster locks
    again."""
    etcd = hosts3.etcd
    a = hosts3("hostA")
    holder = a.raw()
    held = holder.call("acquire", key=key, owner="holder")
    assert held["ok"], held
    waiter = a.raw()
    wid = waiter.send("acquire", key=key, owner="waiter")
    wait_waiters(a, key, 1)
    holder2 = a.raw()
    held2 = holder2.call("acquire", key=key + "/2")
    assert held2["ok"], held2

    down, t_kill = kill_quorum(etcd)
    # A release while etcd cannot be reached is answered all the same (the
    # delete is retried in the background).
    rep = holder2.call("release", seconds=max(1.0, TTL / 2) + 1.5, lease=held2["lease"])
    assert rep["ok"], rep

    def local_key_works():
        with a.client(name="local") as c:
            t0 = time.monotonic()
            c.lock("local/q", timeout=0).release()
            c.ping()
            assert time.monotonic() - t0 < bound(0.5)
    local_key_works()

    fresh = a.raw()
    t0 = time.monotonic()
    rep = fresh.call("acquire", seconds=TTL + 10, key=key + "/fresh")
    took = time.monotonic() - t0
    assert not rep["ok"] and rep["error"]["code"] == "unavailable", rep
    assert took <= bound(max(1.0, TTL / 2) + 1.5), "unavailable after %.3f s" % took

    ev = holder.event("lost", TTL + 5, lease=held["lease"])
    assert ev["key"] == key and isinstance(ev.get("message"), str), ev
    assert time.monotonic() - t_kill <= bound(TTL + 2)
    rep = waiter.reply(wid, TTL + 5, "the waiter's answer")
    assert not rep["ok"] and rep["error"]["code"] == "unavailable", rep

    local_key_works()
    st = a.cluster_stats()
    assert st["available"] is False, st
    assert st["counters"]["lost"] >= 1, st
    rep = holder.call("release", lease=held["lease"])
    assert not rep["ok"] and rep["error"]["code"] == "unknown_lease", rep

    for mb in down:
        mb.start()
    etcd.wait_healthy()
    with a.client(name="after") as c:
        def relock():
            try:
                return c.lock(key, timeout=bound(TTL + 2))
            except hasp.Unavailable as e:
                if e.code != "unavailable":
                    raise
                return None
        lease = wait_for(relock, TTL + 10, "a cluster lock once etcd is back", every=0.1)
        assert lease.fence > held["fence"]
        lease.release()


def test_lease_regained_when_etcd_is_back(hosts3, key):
    """After quorum is lost (haspd's etcd lease given up) and comes back,
    haspd grants itself a new etcd lease without waiting for a request:
    stats says available again, with a new lease. The outage lasts until
    a cluster acquire made during it has failed `unavailable` (so haspd's
    own attempts to get a lease have failed by then too)."""
    etcd = hosts3.etcd
    a = hosts3("hostA")
    before = a.cluster_stats()["lease"]
    down, _ = kill_quorum(etcd)
    wait_for(lambda: a.cluster_stats()["available"] is False, TTL + 5,
             "stats to say unavailable", every=0.05)
    rep = a.raw().call("acquire", seconds=TTL + 10, key=key)
    assert not rep["ok"] and rep["error"]["code"] == "unavailable", rep
    for mb in down:
        mb.start()
    etcd.wait_healthy()
    a.wait_available(TTL + 10)
    assert a.cluster_stats()["lease"] != before


def test_quorum_loss_ends_the_clients_leases(hosts3, key):
    """The clients treat `lost` as `revoked`: the Python lease is lost (its
    release raises LeaseLost), `hasp lock -- CMD` signals CMD and exits 75."""
    a = hosts3("hostA")
    cpy = a.client(name="python holder")
    lease = cpy.lock(key + "/py")
    cli = a.cli("lock", "-k", key + "/cli", "--kill-after", "5", "--", "sh", "-c",
                "echo held; exec sleep 60", stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                text=True)
    try:
        assert read_line(cli.stdout, 10, "the CLI's command") == "held\n"
        _, t_kill = kill_quorum(hosts3.etcd)
        deadline = t_kill + bound(TTL + 10)
        while not lease.lost and time.monotonic() < deadline:
            time.sleep(0.01)  # no event to wait on: .lost reads what came
        py_lost = lease.lost
        try:
            cli.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
        cli_rc = cli.poll()
        assert py_lost, "the Python lease is not lost %s s after quorum was lost" % bound(TTL + 10)
        with pytest.raises(hasp.LeaseLost):
            lease.release()
        assert cli_rc is not None, "hasp lock's command still runs after its lease was lost"
        assert cli_rc == 75, (cli_rc, cli.stderr.read())
    finally:
        end_cli(cli)
        cpy.close()


def test_compaction_during_a_wait(two, key):
    """A waits behind B's holder; etcd gets many revisions and is compacted
    (physically) past the wait's start; then a waiter on B queues. The
    holder's release grants A's waiter, and B's only after A's release."""
    rb = two.b.raw()
    held = rb.call("acquire", key=key)
    assert held["ok"], held
    ra = two.a.raw()
    w1 = ra.send("acquire", key=key, owner="w1")
    wait_waiters(two.a, key, 1)

    for i in range(100):
        rev = two.etcd.put("unrelated/churn", str(i))
    two.etcd.etcdctl("compact", str(rev), "--physical")
    old = two.etcd.etcdctl_run("get", "unrelated/churn", "--rev", str(rev - 1))
    assert old.returncode != 0 and "compacted" in old.stderr, old

    rb2 = two.b.raw()
    w2 = rb2.send("acquire", key=key, owner="w2")
    ws = wait_waiters(two.a, key, 2)
    assert [w["owner"] for w in ws] == ["w1", "w2"]
    assert ra.poll_reply(w1) is None

    assert rb.call("release", lease=held["lease"])["ok"]
    rep = ra.reply(w1, 5, "w1's grant")
    assert rep["ok"], rep
    assert rep["fence"] > held["fence"]
    wait_for(lambda: [h["owner"] for h in holders(two.b, key)] == ["w1"], 5, "w1 to hold")
    assert rb2.poll_reply(w2) is None, "w2 was granted while w1 held"
    assert [w["owner"] for w in waiters(two.b, key)] == ["w2"]
    assert ra.call("release", lease=rep["lease"])["ok"]
    rep2 = rb2.reply(w2, 5, "w2's grant")
    assert rep2["ok"], rep2
    assert rep2["fence"] > rep["fence"]


def test_compaction_then_the_watched_member_dies(hosts3, key):
    """Three members. A waits behind B's holder; etcd is compacted past the
    wait's start, then the member A talks to is SIGKILLed, so that A's watch
    must start again from a compacted revision (etcd cancels it with
    compact_revision): A re-reads and keeps its place. The holder's release
    grants A's waiter, not B's later one."""
    etcd = hosts3.etcd
    a = hosts3("hostA")
    m = etcd.members
    b = hosts3("hostB", ",".join(x.url for x in (m[2], m[1], m[0])))
    rb = b.raw()
    held = rb.call("acquire", key=key)
    assert held["ok"], held
    ra = a.raw()
    w1 = ra.send("acquire", key=key, owner="w1")
    wait_waiters(a, key, 1)

    for i in range(100):
        rev = etcd.put("unrelated/churn", str(i))
    etcd.etcdctl("compact", str(rev), "--physical")
    used = a.cluster_stats()["endpoint"]
    (victim,) = [x for x in m if x.url == used]
    victim.kill()
    etcd.leader()

    rb2 = b.raw()
    w2 = rb2.send("acquire", key=key, owner="w2")
    ws = wait_waiters(b, key, 2)
    assert [w["owner"] for w in ws] == ["w1", "w2"]
    assert ra.poll_reply(w1) is None

    assert rb.call("release", lease=held["lease"])["ok"]
    rep = ra.reply(w1, 10, "w1's grant")
    assert rep["ok"], rep
    wait_for(lambda: [h["owner"] for h in holders(b, key)] == ["w1"], 5, "w1 to hold")
    assert rb2.poll_reply(w2) is None, "w2 was granted while w1 held"
    assert ra.call("release", lease=rep["lease"])["ok"]
    rep2 = rb2.reply(w2, 10, "w2's grant")
    assert rep2["ok"], rep2
    assert held["fence"] < rep["fence"] < rep2["fence"]
