"""The hasp wire protocol, version 1 (proto/PROTOCOL.md), without I/O.

Nothing here touches a socket or a clock. :class:`Protocol` numbers the
requests of one session, encodes them as lines, splits what the daemon sends
back into replies and events, and remembers what the session learnt on the
way (revoked leases, the end of the connection). A blocking client
(:mod:`hasp.client`) and an asyncio one drive it the same way::

    proto = Protocol()
    req = proto.request("acquire", key="db", mode="exclusive", timeout_ms=0)
    send(req.data, fds=...)                 # the descriptor, if any, with these bytes
    for msg in proto.receive(recv()):       # b"" at end of file
        if isinstance(msg, Reply) and msg.id == req.id: ...

:func:`error_for` turns a failed :class:`Reply` into the matching exception.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any, Dict, List, Optional, Set, Union

from . import errors

__all__ = [
    "VERSION", "MAX_REQUEST_LINE", "MAX_REPLY_LINE", "KEY_MAX", "OWNER_MAX", "MESSAGE_MAX",
    "CLIENT_MAX", "PATH_MAX", "Request", "Reply", "Event", "LineSplitter", "Protocol",
    "error_for", "adopt_fields", "timeout_ms", "ttl_ms", "semaphore_limit", "shown_path",
    "check_text", "KEYS_MIN", "KEYS_MAX",
]

VERSION = 1
MAX_REQUEST_LINE = 65536          # bytes, the newline included
MAX_REPLY_LINE = 256 << 20        # as libhasp accepts
KEY_MAX = 1024
KEYS_MIN, KEYS_MAX = 2, 64  # a multi-key acquire's keys
OWNER_MAX = 256
MESSAGE_MAX = 1024
CLIENT_MAX = 256
PATH_MAX = 4096
TTL_MAX_MS = 10 ** 12             # the daemon cuts a longer ttl_ms to this
SEMAPHORE_MAX = 10000             # a semaphore's largest limit

OPS = frozenset(("hello", "acquire", "release", "cancel", "list", "stats", "ping", "revoke",
                 "convert", "renew", "watch", "adopt"))


class Request:
    """An encoded request: ``id``, ``op`` and the line to send (``data``)."""

    __slots__ = ("id", "op", "data")

    def __init__(self, id: int, op: str, data: bytes) -> None:
        self.id = id
        self.op = op
        self.data = data

    def __repr__(self) -> str:
        return "Request(%d, %r)" % (self.id, self.op)


class Reply:
    """A reply: ``id`` (None for a session-wide error), ``ok``, the whole
    object (``body``), and for a failure ``code``, ``message``, ``error``."""

    __slots__ = ("id", "ok", "body", "code", "message", "error")

    def __init__(self, body: Dict[str, Any]) -> None:
        self.body = body
        rid = body.get("id")
        self.id = rid if isinstance(rid, int) and not isinstance(rid, bool) else None
        self.ok = body.get("ok") is True
        err = body.get("error")
        self.error: Dict[str, Any] = err if isinstance(err, dict) else {}
        code = self.error.get("code")
        self.code: Optional[str] = None if self.ok else (code if isinstance(code, str)
                                                          else "internal")
        msg = self.error.get("message")
        self.message = msg if isinstance(msg, str) else (self.code or "")

    def get(self, name: str, default: Any = None) -> Any:
        return self.body.get(name, default)

    def __repr__(self) -> str:
        return "Reply(%r)" % (self.body,)


class Event:
    """An unsolicited message: ``name`` (``"revoked"``, ...) and ``body``."""

    __slots__ = ("name", "body")

    def __init__(self, body: Dict[str, Any]) -> None:
        self.body = body
        self.name = body.get("event")

    def get(self, name: str, default: Any = None) -> Any:
        return self.body.get(name, default)

    def __repr__(self) -> str:
        return "Event(%r)" % (self.body,)


Message = Union[Reply, Event]


class LineSplitter:
    """Splits a byte stream into lines (without the newline). A line longer
    than ``max_line`` raises :class:`hasp.ProtocolError`."""

    def __init__(self, max_line: int = MAX_REPLY_LINE) -> None:
        self._buf = bytearray()
        self._max = max_line

    def feed(self, data: bytes) -> List[bytes]:
        self._buf += data
        lines = []
        start = 0
        while True:
            nl = self._buf.find(b"\n", start)
            if nl < 0:
                break
            lines.append(bytes(self._buf[start:nl]))
            start = nl + 1
        del self._buf[:start]
        if len(self._buf) >= self._max or any(len(x) >= self._max for x in lines):
            raise errors.ProtocolError("haspd sent a line over %d bytes" % self._max)
        return lines

    @property
    def pending(self) -> int:
        """Bytes of an unfinished line."""
        return len(self._buf)


def _no_duplicates(pairs: List[Any]) -> Dict[str, Any]:
    obj: Dict[str, Any] = {}
    for k, v in pairs:
        if k in obj:
            raise ValueError("duplicate member %r" % k)
        obj[k] = v
    return obj


def decode(line: bytes) -> Optional[Message]:
    """One line from the daemon as a Reply or an Event; None for a blank
    line. A line that is not a JSON object raises ProtocolError."""
    if not line.strip(b" \t\r"):
        return None
    try:
        obj = json.loads(line.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except (UnicodeDecodeError, ValueError) as e:
        raise errors.ProtocolError("a reply from haspd could not be read: %s" % e) from None
    if not isinstance(obj, dict):
        raise errors.ProtocolError("a reply from haspd is not a JSON object")
    if "event" in obj:
        return Event(obj)
    return Reply(obj)


# The events that end a lease of the session; ``lost`` (cluster mode) as
# ``revoked`` does.
LEASE_ENDINGS = ("revoked", "expired", "lost")


class Protocol:
    """The state of one session, without I/O.

    ``request()`` gives the bytes of a request; ``receive()`` takes what the
    daemon sent (``b""`` for end of file) and gives the complete messages.
    Along the way it notes ``revoked`` (ids of leases the daemon ended:
    ``revoked``, ``expired`` and ``lost`` events; ``lost``: a haspd in
    cluster mode could no longer keep the lease alive in etcd) and
    ``endings`` (lease id: the name of the event that ended it), ``closed`` (the connection ended: every
    lease with it) and ``refusal`` (the daemon refused the session: an error
    with a null id, kept as the exception it maps to).
    """

    def __init__(self) -> None:
        self._next_id = 1
        self._splitter = LineSplitter()
        self.revoked: Set[int] = set()
        self.endings: Dict[int, str] = {}
        self.closed = False
        self.refusal: Optional[errors.Error] = None

    def request(self, op: str, **fields: Any) -> Request:
        """Encodes op with fields (None values left out). A line over 64 KiB
        raises :class:`hasp.BadRequest` and consumes no id."""
        if op not in OPS:
            raise ValueError("unknown op %r" % (op,))
        rid = self._next_id
        obj: Dict[str, Any] = {"id": rid, "op": op}
        obj.update((k, v) for k, v in fields.items() if v is not None)
        data = json.dumps(obj, ensure_ascii=False, separators=(",", ":"),
                          allow_nan=False).encode("utf-8") + b"\n"
        if len(data) > MAX_REQUEST_LINE:
            raise errors.BadRequest("request of %d bytes, over the protocol's %d"
                                    % (len(data), MAX_REQUEST_LINE), code="too_large")
        self._next_id += 1
        return Request(rid, op, data)

    def receive(self, data: bytes) -> List[Message]:
        """The messages completed by data; b"" means the daemon closed."""
        if not data:
            self.closed = True
            return []
        out: List[Message] = []
        for line in self._splitter.feed(data):
            msg = decode(line)
            if msg is None:
                continue
            if isinstance(msg, Event):
                self._note_event(msg)
            elif msg.id is None and not msg.ok:
                self.refusal = error_for(msg)
                self.closed = True
            out.append(msg)
        return out

    def _note_event(self, ev: Event) -> None:
        lease = ev.get("lease")
        if ev.name in LEASE_ENDINGS and isinstance(lease, int):
            self.revoked.add(lease)
            self.endings[lease] = ev.name


def adopt_fields(lease: int, path: str) -> Dict[str, Any]:
    """The fields of an ``adopt`` request: the file whose descriptor travels
    with it (SCM_RIGHTS, as for a file acquire) joins lease's resource, so
    that once it is renamed over the leased path, newcomers opening the path
    queue behind the same holders and waiters. path is the new file's
    absolute path (display text, as for acquire)."""
    return {"lease": lease, "path": shown_path(path), "fd": True}


def error_for(reply: Reply, *, key: Optional[str] = None, path: Optional[str] = None,
              explain: bool = False) -> errors.Error:
    """The exception for a failed reply. key or path names the resource of
    an acquire, for Timeout's filelock-style message; explain adds the
    daemon's message (who holds it) to a Timeout's."""
    code = reply.code or "internal"
    msg = reply.message
    holders = reply.error.get("holders")
    if code == "timeout":
        if path is not None:
            return errors.Timeout(path, holders=holders, detail=msg, explain=explain)
        return errors.Timeout(key=key if key is not None else "?", holders=holders, detail=msg,
                              explain=explain)
    if code == "busy":
        return errors.Busy(msg, holders=holders)
    cls = _CODES.get(code)
    if cls is None:
        return errors.ProtocolError(msg, code=code)
    if code == "deadlock":
        return errors.Deadlock(msg, cycle=reply.error.get("cycle"))
    return cls(msg, code=code)


_CODES = {
    "bad_request": errors.BadRequest,
    "unknown_op": errors.BadRequest,
    "too_large": errors.BadRequest,
    "cancelled": errors.Cancelled,
    "already_held": errors.AlreadyHeld,
    "unknown_lease": errors.UnknownLease,
    "unknown_request": errors.Error,
    "deadlock": errors.Deadlock,
    "permission_denied": errors.PermissionDenied,
    "limit": errors.LimitReached,
    "unavailable": errors.Unavailable,
    "internal": errors.ProtocolError,
    "unsupported": errors.ProtocolError,
}


def timeout_ms(timeout: Optional[float]) -> Optional[int]:
    """Seconds (None or negative: forever) as the protocol's timeout_ms,
    rounded up so that a wait is never shorter than asked."""
    if timeout is None or timeout < 0:
        return None
    if math.isnan(timeout) or math.isinf(timeout):
        raise ValueError("timeout must be a finite number of seconds, or None")
    return int(math.ceil(timeout * 1000))


def ttl_ms(ttl: Optional[float]) -> Optional[int]:
    """A time-to-live in seconds (None: none) as the protocol's ttl_ms,
    rounded up, at least 1 ms; longer than the daemon's 10^12 ms is cut to
    that, as the daemon would. Zero, negative or not finite: ValueError."""
    if ttl is None:
        return None
    if isinstance(ttl, bool) or not isinstance(ttl, (int, float)):
        raise TypeError("ttl must be a number of seconds, or None")
    if math.isnan(ttl) or math.isinf(ttl) or ttl <= 0:
        raise ValueError("ttl must be a positive, finite number of seconds, or None")
    return min(TTL_MAX_MS, max(1, int(math.ceil(ttl * 1000))))


def semaphore_limit(limit: Optional[int]) -> Optional[int]:
    """A semaphore's limit (None: an ordinary key) as the protocol's:
    an int from 1 to SEMAPHORE_MAX, else TypeError or ValueError."""
    if limit is None:
        return None
    if isinstance(limit, bool) or not isinstance(limit, int):
        raise TypeError("limit must be an int, or None")
    if not 1 <= limit <= SEMAPHORE_MAX:
        raise ValueError("limit must be from 1 to %d, or None" % SEMAPHORE_MAX)
    return limit


def check_text(what: str, value: Optional[str], limit: int, *, empty: bool = True) -> None:
    """Raises ValueError unless value is None or a str of at most limit
    UTF-8 bytes (and not empty, unless empty)."""
    if value is None:
        return
    if not isinstance(value, str):
        raise TypeError("%s must be a str" % what)
    try:
        n = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        raise ValueError("%s must be valid Unicode" % what) from None
    if n > limit or (not empty and n == 0):
        raise ValueError("%s is %s%d bytes of UTF-8" % (what, "" if empty else "1 to ", limit))


def shown_path(path: Union[str, bytes]) -> str:
    """A path as the protocol shows it: every byte sequence that is not
    UTF-8 replaced by U+FFFD (the descriptor, not the name, is the file)."""
    return os.fsencode(path).decode("utf-8", "replace")
