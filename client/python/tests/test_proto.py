"""hasp._proto without a daemon: encoding, framing, decoding, errors."""

import json

import pytest

import hasp
from hasp import _proto


def test_request_ids_and_encoding():
    p = _proto.Protocol()
    a = p.request("hello", client="x", version=1)
    b = p.request("acquire", key="k", mode="exclusive", timeout_ms=None, owner="é")
    assert (a.id, b.id) == (1, 2)
    assert a.data.endswith(b"\n") and a.data.count(b"\n") == 1
    assert json.loads(b.data) == {"id": 2, "op": "acquire", "key": "k", "mode": "exclusive",
                                  "owner": "é"}
    with pytest.raises(ValueError):
        p.request("frob")


def test_request_line_limit():
    p = _proto.Protocol()
    with pytest.raises(hasp.BadRequest):
        p.request("acquire", key="k", message="x" * 70000)
    assert p.request("ping").id == 1  # the refused one used no id
    line = p.request("acquire", key="k" * (65536 - 40)).data
    assert len(line) <= 65536


def test_splitter_and_events():
    p = _proto.Protocol()
    msgs = p.receive(b'{"id":1,"ok":true}\n\n  \n{"event":"revoked","lease":7,"ke')
    assert len(msgs) == 1 and msgs[0].ok and msgs[0].id == 1
    msgs = p.receive(b'y":"a"}\n{"event":"future"}\n')
    assert [m.name for m in msgs] == ["revoked", "future"]
    assert p.revoked == {7} and not p.closed
    assert p.receive(b"") == [] and p.closed


def test_refusal_closes_the_session():
    p = _proto.Protocol()
    p.receive(b'{"id":null,"ok":false,"error":{"code":"limit","message":"too many"}}\n')
    assert p.closed and isinstance(p.refusal, hasp.LimitReached)


def test_bad_lines():
    p = _proto.Protocol()
    with pytest.raises(hasp.ProtocolError):
        p.receive(b"not json\n")
    with pytest.raises(hasp.ProtocolError):
        _proto.Protocol().receive(b'{"id":1,"id":2}\n')
    s = _proto.LineSplitter(max_line=10)
    with pytest.raises(hasp.ProtocolError):
        s.feed(b"x" * 11)


@pytest.mark.parametrize("code,cls", [
    ("busy", hasp.Busy), ("timeout", hasp.Timeout), ("already_held", hasp.AlreadyHeld),
    ("unknown_lease", hasp.UnknownLease), ("permission_denied", hasp.PermissionDenied),
    ("limit", hasp.LimitReached), ("bad_request", hasp.BadRequest),
    ("unknown_op", hasp.BadRequest), ("too_large", hasp.BadRequest),
    ("deadlock", hasp.Deadlock), ("cancelled", hasp.Cancelled),
    ("unavailable", hasp.Unavailable), ("internal", hasp.ProtocolError),
    ("something_new", hasp.ProtocolError),
])
def test_error_mapping(code, cls):
    rep = _proto.Reply({"id": 3, "ok": False, "error": {
        "code": code, "message": "m", "holders": [{"pid": 1, "owner": "o"}]}})
    e = _proto.error_for(rep, key="k")
    assert type(e) is cls and isinstance(e, hasp.Error)
    if isinstance(e, hasp.Conflict):
        assert e.holders[0].owner == "o" and e.holders[0]["pid"] == 1


def test_timeout_ms_rounds_up():
    assert _proto.timeout_ms(None) is None
    assert _proto.timeout_ms(-1) is None
    assert _proto.timeout_ms(0) == 0
    assert _proto.timeout_ms(0.0001) == 1
    assert _proto.timeout_ms(1.5) == 1500
    with pytest.raises(ValueError):
        _proto.timeout_ms(float("nan"))


def test_shown_path():
    assert _proto.shown_path(b"/a/\xff.lock") == "/a/\ufffd.lock"
    assert _proto.shown_path("/a/b") == "/a/b"


def test_text_limits():
    with pytest.raises(ValueError):
        _proto.check_text("the key", "", 1024, empty=False)
    with pytest.raises(ValueError):
        _proto.check_text("the key", "é" * 513, 1024)
    _proto.check_text("the key", "é" * 512, 1024)


def test_ttl_ms():
    assert _proto.ttl_ms(None) is None
    assert _proto.ttl_ms(0.0001) == 1
    assert _proto.ttl_ms(1.5) == 1500
    assert _proto.ttl_ms(86400) == 86400000
    assert _proto.ttl_ms(1e13) == 10 ** 12  # the daemon's ceiling
    for bad in (0, -1, float("nan"), float("inf")):
        with pytest.raises(ValueError):
            _proto.ttl_ms(bad)
    with pytest.raises(TypeError):
        _proto.ttl_ms("5")


def test_expired_and_revoked_events_end_leases():
    p = _proto.Protocol()
    p.receive(b'{"event":"expired","lease":4,"key":"k"}\n'
              b'{"event":"revoked","lease":5,"key":"j","by":{"pid":1,"uid":0,"session":2}}\n')
    assert p.revoked == {4, 5}
    assert p.endings == {4: "expired", 5: "revoked"}


def test_lost_event_ends_a_lease_as_revoked_does():
    # A haspd in cluster mode that could not keep its etcd lease alive.
    p = _proto.Protocol()
    msgs = p.receive(b'{"event":"lost","lease":6,"key":"cluster/x",'
                     b'"message":"etcd unreachable for 10 s"}\n')
    assert [m.name for m in msgs] == ["lost"]
    assert p.revoked == {6}
    assert p.endings == {6: "lost"}
    assert not p.closed


def test_a_cluster_holder_names_its_host():
    h = hasp.Holder({"pid": 12, "host": "web2", "owner": "alice", "lease": 3})
    assert h.host == "web2" and str(h) == "pid 12 on web2 (owner alice)"
    assert hasp.Holder({"pid": 12}).host is None


def test_checkout_fields():
    from hasp.client import acquire_fields
    fields, mode, tms = acquire_fields("k", None, False, 0, "alice", None, 3600, True)
    assert fields == {"key": "k", "mode": "exclusive", "timeout_ms": 0, "owner": "alice",
                      "message": None, "ttl_ms": 3600000, "detach": True}
    line = _proto.Protocol().request("acquire", **fields).data
    assert json.loads(line) == {"id": 1, "op": "acquire", "key": "k", "mode": "exclusive",
                                "timeout_ms": 0, "owner": "alice", "ttl_ms": 3600000,
                                "detach": True}
    plain, _, _ = acquire_fields("k", None, True, None, None, None)
    assert plain["ttl_ms"] is None and plain["detach"] is None  # left out of the line


def test_checkin_and_renew_targets():
    from hasp import checkouts
    assert checkouts.target_fields("ab" * 16, None, None) == ({"token": "ab" * 16}, None)
    assert checkouts.target_fields(None, "k", None) == ({"key": "k"}, None)
    fields, path = checkouts.target_fields("t", None, "/a/\udcff")
    assert fields == {"token": "t", "path": "/a/\ufffd", "fd": True} and path == "/a/\udcff"
    for args in ((None, None, None), (None, "k", "/p"), ("", None, None), (5, None, None)):
        with pytest.raises(TypeError):
            checkouts.target_fields(*args)


def test_checkout_from_a_grant():
    rep = _proto.Reply({"id": 3, "ok": True, "lease": 32, "fence": 99, "mode": "shared",
                        "token": "9f" * 16, "expires_ms": 86400000})
    co = hasp.Checkout(rep, "part-7", None, "shared", "/s", now=1000.0)
    assert (co.lease, co.fence, co.token, co.mode, co.name) == (32, 99, "9f" * 16, "shared",
                                                                "part-7")
    assert co.ttl == 86400.0 and co.expires == 1000.0 + 86400.0
    assert "9f9f" not in repr(co)
    co._renewed(_proto.Reply({"id": 4, "ok": True, "lease": 32, "expires_ms": 5000}), 2000.0)
    assert co.ttl == 5.0 and co.expires == 2005.0
    bare = hasp.Checkout(_proto.Reply({"id": 5, "ok": True, "lease": 1, "fence": 2,
                                       "token": "x"}), "k", None, "exclusive", "/s")
    assert bare.ttl is None and bare.expires is None and bare.expires_in is None


def test_holder_of_a_checkout_and_explained_timeout():
    h = hasp.Holder({"pid": 7, "uid": 1000, "session": 0, "owner": "alice", "detached": True,
                     "granted_at": "2026-11-30T10:21:09.123Z", "ttl_ms": 5000,
                     "expires_in_ms": 4000})
    assert h.detached and h.granted_at.endswith("Z") and (h.ttl_ms, h.expires_in_ms) == (5000,
                                                                                         4000)
    assert str(h) == "a checkout by alice (uid 1000)"
    assert not hasp.Holder({"pid": 7}).detached and str(hasp.Holder({"pid": 7})) == "pid 7"
    rep = _proto.Reply({"id": 1, "ok": False, "error": {
        "code": "timeout", "message": "timed out after 5 ms: 'k' is checked out by alice",
        "holders": [h.raw]}})
    plain = _proto.error_for(rep, key="k")
    assert str(plain) == "The lock 'k' could not be acquired."
    told = _proto.error_for(rep, key="k", explain=True)
    assert str(told) == ("The lock 'k' could not be acquired: timed out after 5 ms: 'k' is "
                         "checked out by alice")
    assert told.holder == h
    assert str(hasp.Timeout("f.lock")) == "The file lock 'f.lock' could not be acquired."
    assert hasp.Timeout("f.lock", explain=True).detail == str(hasp.Timeout("f.lock"))
