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
