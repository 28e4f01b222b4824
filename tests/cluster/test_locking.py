"""Cluster keys across two haspd "hosts" on one etcd: exclusion, shared
readers, FIFO, timeouts, cancel, list, revoke, release on disconnect, and
what is refused or stays local (spec19.md, "Semantics")."""

import json
import os
import subprocess
import time

import pytest

import hasp
from conftest import (HASP_CLI, TTL, bound, end_child, end_cli, holder_child, holders, read_line,
                      spawn, wait_for, wait_waiters, waiters)


def check_intervals(runs):
    """runs: (start, end, fence, who) of every critical section. None may
    overlap another, and the fences must rise in the order they ran."""
    runs = sorted(runs)
    for prev, nxt in zip(runs, runs[1:]):
        assert prev[1] <= nxt[0], "critical sections overlap: %r and %r" % (prev, nxt)
        assert prev[2] < nxt[2], "fences do not rise in grant order: %r then %r" % (prev, nxt)


BODY = r"""
s=$(date +%s%N)
n=$(cat "$COUNTER")
sleep 0.02
echo $((n + 1)) > "$COUNTER"
e=$(date +%s%N)
echo "$s $e $HASP_FENCE $WHO" >> "$RUNS"
"""

WORKER = r"""
i=0
while [ $i -lt "$M" ]; do
    "$HASP" lock -k cluster/deploy -- sh -c "$BODY" || exit $?
    i=$((i + 1))
done
"""


def test_cli_serialises_deploy_from_both_hosts(two, tmpdir_private):
    """The issue's "done when": `hasp lock -k cluster/deploy -- CMD` from
    both hosts, 2 workers on each, M runs each: the counter reaches N x M,
    and no two runs overlap."""
    counter = os.path.join(tmpdir_private, "counter")
    runs_file = os.path.join(tmpdir_private, "runs")
    with open(counter, "w") as f:
        f.write("0\n")
    m = 6
    procs = []
    for host in (two.a, two.b):
        for w in range(2):
            env = dict(host.env(), COUNTER=counter, RUNS=runs_file, BODY=BODY, M=str(m),
                       HASP=HASP_CLI, WHO="%s.%d" % (host.name, w))
            procs.append(subprocess.Popen(["sh", "-c", WORKER], env=env, stdin=subprocess.DEVNULL,
                                          stderr=subprocess.PIPE, text=True))
    for p in procs:
        try:
            _, err = p.communicate(timeout=bound(60))
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            pytest.fail("the workers did not finish within %s s" % bound(60))
        assert p.returncode == 0, "a worker failed (%s): %s" % (p.returncode, err)
    n = len(procs) * m
    with open(counter) as f:
        assert int(f.read()) == n
    with open(runs_file) as f:
        runs = [(int(s), int(e), int(fence), who) for s, e, fence, who in
                (line.split() for line in f)]
    assert len(runs) == n
    assert {who.split(".")[0] for *_, who in runs} == {"hostA", "hostB"}
    check_intervals(runs)


def test_python_mutual_exclusion(two, key, tmpdir_private):
    """Python clients on both hosts increment a counter under one cluster
    key: exactly N x M, no overlap, fences rising."""
    counter = os.path.join(tmpdir_private, "counter")
    with open(counter, "w") as f:
        f.write("0")
    m = 10

    def worker(host, who):
        runs = []
        with host.client(name=who) as c:
            for _ in range(m):
                lease = c.lock(key, timeout=bound(30))
                t0 = time.monotonic()
                with open(counter) as f:
                    n = int(f.read())
                time.sleep(0.002)  # widens the window a lost exclusion would show in
                with open(counter, "w") as f:
                    f.write(str(n + 1))
                runs.append((t0, time.monotonic(), lease.fence, who))
                lease.release()
        return runs

    threads = [spawn(worker, h, "%s.%d" % (h.name, i)) for h in (two.a, two.b) for i in range(2)]
    runs = []
    for t in threads:
        runs += t.get(60, "a worker")
    with open(counter) as f:
        assert int(f.read()) == len(threads) * m
    check_intervals(runs)


def test_shared_readers_across_hosts(two, key):
    """Readers on A and on B hold at once; a writer waits for both; a reader
    that comes after the waiting writer waits for it too."""
    ca, cb = two.a.client(name="reader A"), two.b.client(name="reader B")
    ra = ca.lock(key, shared=True, timeout=bound(5))
    rb = cb.lock(key, shared=True, timeout=bound(5))  # granted while ra holds
    assert ra.mode == rb.mode == "shared"
    res = two.a.resource(key)
    assert res["mode"] == "shared"
    assert sorted(h["host"] for h in res["holders"]) == ["hostA", "hostB"]

    cw = two.b.client(name="writer")
    with pytest.raises(hasp.Busy) as ei:
        cw.lock(key, timeout=0)
    assert sorted(h.raw["host"] for h in ei.value.holders) == ["hostA", "hostB"]

    w = spawn(cw.lock, key, timeout=bound(20))
    wait_waiters(two.a, key, 1)
    with two.a.client(name="late reader") as late:
        with pytest.raises(hasp.Busy):
            late.lock(key, shared=True, timeout=0)  # a writer waits ahead of it

    ra.release()
    wait_for(lambda: [h["host"] for h in holders(two.b, key)] == ["hostB"], 5,
             "reader A's release to show on B")
    assert not w.done.is_set(), "the writer was granted while reader B held"
    rb.release()
    lease = w.get(5, "the writer's grant")
    assert lease.mode == "exclusive"
    assert lease.fence > max(ra.fence, rb.fence)
    lease.release()
    for c in (ca, cb, cw):
        c.close()


def test_fifo_across_hosts(two, key):
    """Waiters queued alternately on A and B are granted in the order they
    queued, whichever host they are on."""
    holder = two.a.client(name="holder")
    first = holder.lock(key)
    order = []
    threads = []

    def waiter(host, i):
        with host.client(name="w%d" % i) as c:
            lease = c.lock(key, owner="w%d" % i, timeout=bound(30))
            order.append((i, lease.fence))
            lease.release()

    n = 6
    for i in range(n):
        host = two.a if i % 2 == 0 else two.b
        threads.append(spawn(waiter, host, i))
        ws = wait_waiters(two.a, key, i + 1, "w%d in hostA's list" % i)
        assert ws[-1]["owner"] == "w%d" % i
    for host in (two.a, two.b):
        ws = waiters(host, key)
        assert [w["owner"] for w in ws] == ["w%d" % i for i in range(n)], host.name
        assert [w["host"] for w in ws] == ["hostA", "hostB"] * (n // 2), host.name
    first.release()
    for t in threads:
        t.get(30, "a waiter")
    assert [i for i, _ in order] == list(range(n))
    fences = [first.fence] + [f for _, f in order]
    assert fences == sorted(fences) and len(set(fences)) == len(fences)
    holder.close()


def test_readers_wait_for_the_last_writer_ahead(two, key):
    """A writer holds on A; queued: reader (B), reader (A), writer (B),
    reader (A). The release lets both first readers in together; the second
    writer waits for them, and the last reader for that writer."""
    rx = two.a.raw()
    x = rx.call("acquire", key=key, owner="x")
    assert x["ok"], x
    plan = [("s1", two.b, "shared"), ("s2", two.a, "shared"), ("x2", two.b, "exclusive"),
            ("s3", two.a, "shared")]
    sess = {}
    for i, (name, host, mode) in enumerate(plan):
        r = host.raw()
        sess[name] = (r, r.send("acquire", key=key, mode=mode, owner=name))
        wait_waiters(two.a, key, i + 1)

    def granted(name, seconds=5):
        r, rid = sess[name]
        rep = r.reply(rid, seconds, "%s's grant" % name)
        assert rep["ok"], (name, rep)
        return rep

    def not_granted(*names):
        for name in names:
            r, rid = sess[name]
            assert r.poll_reply(rid) is None, "%s was granted out of turn" % name

    def holding(*names):
        wait_for(lambda: sorted(h["owner"] for h in holders(two.b, key)) == sorted(names), 5,
                 "%s to hold, in hostB's list" % (names,))

    assert rx.call("release", lease=x["lease"])["ok"]
    s1, s2 = granted("s1"), granted("s2")
    holding("s1", "s2")
    not_granted("x2", "s3")
    assert [w["owner"] for w in waiters(two.a, key)] == ["x2", "s3"]
    assert sess["s1"][0].call("release", lease=s1["lease"])["ok"]
    holding("s2")
    not_granted("x2", "s3")
    assert sess["s2"][0].call("release", lease=s2["lease"])["ok"]
    x2 = granted("x2")
    holding("x2")
    not_granted("s3")
    assert sess["x2"][0].call("release", lease=x2["lease"])["ok"]
    s3 = granted("s3")
    assert x["fence"] < s1["fence"] < s2["fence"] < x2["fence"] < s3["fence"]


def test_a_waiter_leaving_mid_queue(two, key):
    """holder (B); queued w1 (A), w2 (B, times out), w3 (A), w4 (B, its
    session ends). Each waiter watches the one ahead of it: w3 and w4 lose
    theirs while the holder still holds, and must neither be granted then
    nor lose their places: the release grants w1, w1's grants w3."""
    rh = two.b.raw()
    h = rh.call("acquire", key=key, owner="holder")
    assert h["ok"], h
    # w2's timeout leaves time to queue w3 and w4 behind it.
    plan = [("w1", two.a, None), ("w2", two.b, int(bound(1.5) * 1000)), ("w3", two.a, None),
            ("w4", two.b, None)]
    sess = {}
    for i, (name, host, tms) in enumerate(plan):
        r = host.raw()
        sess[name] = (r, r.send("acquire", key=key, owner=name, timeout_ms=tms))
        wait_waiters(two.a, key, i + 1)
    r4, _ = sess["w4"]
    two.b.forget(r4)  # w4's session ends
    r2, id2 = sess["w2"]
    rep = r2.reply(id2, 5, "w2's timeout")
    assert not rep["ok"] and rep["error"]["code"] == "timeout", rep
    ws = wait_waiters(two.a, key, 2, "w2 and w4 to leave hostA's list")
    assert [w["owner"] for w in ws] == ["w1", "w3"]
    for name in ("w1", "w3"):
        r, rid = sess[name]
        assert r.poll_reply(rid) is None, "%s was granted while the holder held" % name

    assert rh.call("release", lease=h["lease"])["ok"]
    r1, id1 = sess["w1"]
    g1 = r1.reply(id1, 5, "w1's grant")
    assert g1["ok"], g1
    wait_for(lambda: [x["owner"] for x in holders(two.b, key)] == ["w1"], 5, "w1 to hold")
    r3, id3 = sess["w3"]
    assert r3.poll_reply(id3) is None, "w3 was granted while w1 held"
    assert r1.call("release", lease=g1["lease"])["ok"]
    g3 = r3.reply(id3, 5, "w3's grant")
    assert g3["ok"], g3
    assert h["fence"] < g1["fence"] < g3["fence"]


def test_a_reader_behind_a_writer_that_leaves(two, key):
    """A reader holds (B); a writer waits (A, then times out); a reader
    queued behind the writer (B) joins the holding reader as soon as the
    writer has left, while that reader still holds."""
    rr = two.b.raw()
    r = rr.call("acquire", key=key, mode="shared", owner="r")
    assert r["ok"], r
    rw = two.a.raw()
    wid = rw.send("acquire", key=key, owner="w", timeout_ms=int(bound(1.0) * 1000))
    wait_waiters(two.b, key, 1)
    rs = two.b.raw()
    sid = rs.send("acquire", key=key, mode="shared", owner="s")
    wait_waiters(two.b, key, 2)
    assert rs.poll_reply(sid) is None, "the reader went ahead of the waiting writer"
    rep = rw.reply(wid, 5, "the writer's timeout")
    assert not rep["ok"] and rep["error"]["code"] == "timeout", rep
    s = rs.reply(sid, 5, "the second reader's grant")
    assert s["ok"] and s["mode"] == "shared", s
    assert sorted(h["owner"] for h in holders(two.a, key)) == ["r", "s"]
    assert rr.call("release", lease=r["lease"])["ok"]
    assert rs.call("release", lease=s["lease"])["ok"]


def test_timeouts_against_a_holder_on_the_other_host(two, key):
    """timeout_ms 200 against B's holder: `timeout` after 200 ms and not much
    more; 0: `busy`; the holders in both name hostB. The timed-out waiter
    leaves nothing behind: once B's release is answered, a try from A
    succeeds."""
    rb = two.b.raw()
    rep = rb.call("acquire", key=key, owner="bob")
    assert rep["ok"], rep
    with two.a.client() as ca:
        t0 = time.monotonic()
        with pytest.raises(hasp.Timeout) as ei:
            ca.lock(key, timeout=0.2)
        took = time.monotonic() - t0
        assert took >= 0.2
        assert took < 0.2 + bound(0.4), "the timeout came %.3f s after the request" % took
        assert ei.value.code == "timeout"
        assert [h.raw.get("host") for h in ei.value.holders] == ["hostB"]
        assert ei.value.holders[0].owner == "bob"

        with pytest.raises(hasp.Busy) as ei:
            ca.lock(key, timeout=0)
        assert ei.value.code == "busy"
        assert [h.raw.get("host") for h in ei.value.holders] == ["hostB"]

        # The timed-out waiter's etcd key is deleted after the reply.
        wait_waiters(two.a, key, 0, "the timed-out waiter to leave hostA's list")
        wait_waiters(two.b, key, 0, "the timed-out waiter to leave hostB's list")
        rel = rb.call("release", lease=rep["lease"])
        assert rel["ok"], rel
        lease = ca.lock(key, timeout=0)
        assert lease.fence > rep["fence"]
        lease.release()


def test_cancel_of_a_waiting_cluster_acquire(two, key):
    """cancel answers the waiting acquire `cancelled`, and its place in the
    queue goes: once B's holder leaves, a try from B succeeds."""
    rb = two.b.raw()
    held = rb.call("acquire", key=key)
    assert held["ok"], held
    ra = two.a.raw()
    rid = ra.send("acquire", key=key)
    wait_waiters(two.b, key, 1)
    cid = ra.send("cancel", request=rid)
    rep = ra.reply(rid)
    assert not rep["ok"] and rep["error"]["code"] == "cancelled", rep
    assert ra.reply(cid)["ok"]
    # haspd answers the cancel before its etcd delete is done (seen: B's
    # list still showed the waiter right after the reply): bounded wait.
    wait_waiters(two.b, key, 0, "the cancelled waiter to leave hostB's list")
    assert rb.call("release", lease=held["lease"])["ok"]
    other = two.b.raw()
    rep = other.call("acquire", key=key, timeout_ms=0)
    assert rep["ok"], rep


def test_list_shows_the_other_hosts_holder(two, key):
    """list on A shows B's holder with "host":"hostB", with the fields of a
    local holder; A's own waiter with "host":"hostA"; and `hasp ls --json`."""
    child = holder_child(two.b, key)
    try:
        ra = two.a.raw()
        rid = ra.send("acquire", key=key, owner="alice", message="waits")
        wait_waiters(two.a, key, 1)
        res = two.a.resource(key)
        assert res["mode"] == "exclusive"
        (h,) = res["holders"]
        assert h["host"] == "hostB"
        assert h["pid"] == child.pid
        assert h["uid"] == os.getuid()
        assert h["mode"] == "exclusive"
        assert h["fence"] == child.fence
        assert h["client"] == "holder child"
        for field in ("session", "gid", "lease", "held_ms"):
            assert field in h, field
        (w,) = res["waiters"]
        assert w["host"] == "hostA"
        assert w["pid"] == os.getpid()
        assert w["owner"] == "alice" and w["message"] == "waits"
        assert w["request"] == rid
        assert "waiting_ms" in w

        local = two.a.raw()
        for k in ("a-local", "cluster.local", "zzz-local"):
            assert local.call("acquire", key=k)["ok"]
        names = [r.get("key", r.get("path")) for r in two.a.list("")]
        assert names == sorted(["a-local", key, "cluster.local", "zzz-local"],
                               key=lambda n: n.encode()), names
        for prefix in ("", "clus", "cluster/", key):
            assert [r["key"] for r in two.a.list(prefix) if r.get("key") == key] == [key], prefix
        assert [r for r in two.a.list(key + "/") if r.get("key") == key] == []

        out = two.a.cli_run("ls", "--json", key)
        assert out.returncode == 0, out.stderr
        (res,) = json.loads(out.stdout)
        assert res["key"] == key
        assert [x["host"] for x in res["holders"]] == ["hostB"]
        assert [x["host"] for x in res["waiters"]] == ["hostA"]
        table = two.a.cli_run("ls", key)
        assert table.returncode == 0 and key in table.stdout, table
        assert "%d@hostB" % child.pid in table.stdout, table.stdout
        assert "%d@hostA" % os.getpid() in table.stdout, table.stdout
    finally:
        end_child(child)


def test_revoke_on_a_of_a_holder_on_b(two, key):
    """revoke of cluster keys on A ends B's holders: the Python lease is
    lost (its release raises LeaseLost), `hasp lock -- CMD` signals CMD and
    exits 75, and the raw session gets its `revoked` event."""
    py_key, cli_key, raw_key = key + "/py", key + "/cli", key + "/raw"
    cb = two.b.client(name="python holder")
    lease = cb.lock(py_key)
    cli = two.b.cli("lock", "-k", cli_key, "--kill-after", "5", "--", "sh", "-c",
                    "echo held; exec sleep 60", stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                    text=True)
    try:
        assert read_line(cli.stdout, 10, "the CLI's command") == "held\n"
        rb = two.b.raw()
        held = rb.call("acquire", key=raw_key)
        assert held["ok"], held

        ra = two.a.raw()
        for k in (py_key, cli_key):
            rep = ra.call("revoke", key=k)
            assert rep["ok"] and len(rep["revoked"]) == 1, rep
        rep = ra.call("revoke", key=raw_key)
        assert rep["ok"] and len(rep["revoked"]) == 1, rep

        ev = rb.event("revoked", 5, lease=held["lease"])
        assert ev["key"] == raw_key
        wait_for(lambda: lease.lost, 5, "the Python lease to be lost")
        with pytest.raises(hasp.LeaseLost):
            lease.release()
        try:
            cli.wait(timeout=bound(10))
        except subprocess.TimeoutExpired:
            pytest.fail("hasp lock's command still runs after the revoke")
        assert cli.returncode == 75, (cli.returncode, cli.stderr.read())
        for k in (py_key, cli_key, raw_key):
            assert holders(two.a, k) == [], k

        # revoke by lease id, of this haspd's own cluster lease
        own = two.b.raw()
        mine = own.call("acquire", key=raw_key)
        assert mine["ok"], mine
        rep = rb.call("revoke", lease=mine["lease"])
        assert rep["ok"] and rep["revoked"] == [mine["lease"]], rep
        own.event("revoked", 5, lease=mine["lease"])
        # As after a release, or a revoke by key: once answered, the key is
        # gone from etcd, and so from the other host's list.
        assert holders(two.a, raw_key) == [], "revoke by lease id answered before etcd's delete"
        with two.a.client() as ca:
            ca.lock(py_key, timeout=0).release()
    finally:
        end_cli(cli)
        cb.close()


def test_disconnect_releases_promptly(two, key):
    """A client on B that holds and dies: A's waiter is granted at once
    (the session's end deletes its keys), well within the TTL."""
    child = holder_child(two.b, key)
    with two.a.client(name="waiter") as ca:
        w = spawn(ca.lock, key, timeout=bound(30))
        wait_waiters(two.a, key, 1)
        assert not w.done.is_set()
        t0 = time.monotonic()
        child.kill()
        lease = w.get(10, "the waiter's grant")
        took = time.monotonic() - t0
        child.wait()
        assert took < bound(1.0), "granted %.3f s after the holder died (TTL %s s)" % (took, TTL)
        assert lease.fence > child.fence
        lease.release()


def test_a_waiters_disconnect_leaves_no_place_in_the_queue(two, key):
    """A waiter on A that disconnects leaves the queue: once B's holder
    releases, a try from B succeeds at once."""
    rb = two.b.raw()
    held = rb.call("acquire", key=key)
    assert held["ok"], held
    ra = two.a.raw()
    ra.send("acquire", key=key)
    wait_waiters(two.b, key, 1)
    two.a.forget(ra)  # closes the connection
    wait_waiters(two.b, key, 0, "the disconnected waiter to leave hostB's list")
    assert rb.call("release", lease=held["lease"])["ok"]
    rep = two.b.raw().call("acquire", key=key, timeout_ms=0)
    assert rep["ok"], rep


def test_unsupported_on_cluster_keys(two, key):
    """limit, a multi-key acquire naming a cluster key, ttl_ms and convert
    are refused `bad_request` on cluster keys."""
    ra = two.a.raw()
    for fields in ({"key": key, "limit": 2},
                   {"keys": [key, "local/other"]},
                   {"keys": ["local/one", "local/two", key]},
                   {"key": key, "ttl_ms": 5000}):
        rep = ra.call("acquire", **fields)
        assert not rep["ok"] and rep["error"]["code"] == "bad_request", (fields, rep)
        assert waiters(two.a, key) == [] and holders(two.a, key) == []
    held = ra.call("acquire", key=key, mode="shared")
    assert held["ok"], held
    rep = ra.call("convert", lease=held["lease"], mode="exclusive")
    assert not rep["ok"] and rep["error"]["code"] == "bad_request", rep
    assert ra.call("release", lease=held["lease"])["ok"]


def test_other_keys_stay_local(two):
    """Keys outside the prefix are each haspd's own: held on A and on B at
    once, each listed by its own host only."""
    for k in ("local/x", "clusterx", "cluster"):
        with two.a.client() as ca, two.b.client() as cb:
            la = ca.lock(k, timeout=0)
            lb = cb.lock(k, timeout=0)
            for host, lease in ((two.a, la), (two.b, lb)):
                hs = holders(host, k)
                assert [h["lease"] for h in hs] == [lease.id], (k, host.name, hs)
                assert hs[0].get("host") in (None, host.name), (k, host.name, hs)
            la.release()
            lb.release()


def test_stats_cluster(two, key):
    """stats' "cluster": endpoints, the one in use, prefix, host, the etcd
    lease, available, and the locks held and waiting."""
    ra = two.a.raw()
    held = ra.call("acquire", key=key)
    assert held["ok"], held
    rb = two.b.raw()
    assert rb.call("acquire", key=key + "/w")["ok"]
    rw = two.a.raw()
    rw.send("acquire", key=key + "/w")
    wait_waiters(two.a, key + "/w", 1)
    st = two.a.cluster_stats()
    assert st["endpoints"] == two.etcd.urls
    assert st["endpoint"] in two.etcd.urls
    assert st["prefix"] == "cluster/"
    assert st["host"] == "hostA"
    assert isinstance(st["lease"], str) and int(st["lease"], 16) > 0
    assert st["available"] is True
    assert st["locks"] == 1 and st["waiting"] == 1, st
    for c in ("requests", "errors", "lost", "revoked"):
        assert isinstance(st["counters"][c], int), c
    assert two.b.cluster_stats()["lease"] != st["lease"]


def test_fences_are_etcd_create_revisions(two, key):
    """A cluster grant's fence is its etcd key's create revision: between
    the revisions of puts made before and after it, and rising across keys
    and hosts."""
    fences = []
    for i, host in enumerate((two.a, two.b, two.a)):
        before = two.etcd.put("unrelated/mark", str(i))
        with host.client() as c:
            lease = c.lock("%s/%d" % (key, i), timeout=bound(5))
            after = two.etcd.put("unrelated/mark", str(i))
            assert before < lease.fence < after, (before, lease.fence, after)
            fences.append(lease.fence)
            lease.release()
    assert fences == sorted(fences)
