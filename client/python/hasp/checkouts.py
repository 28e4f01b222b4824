"""Checkouts: leases that belong to no session (DESIGN.md, *Lease lifetimes*).

A checkout is a lease acquired with ``detach``: once granted it outlives the
connection and the process that took it, and haspd's restarts, until it is
checked in (``release`` by its token, or by key or file from its own uid),
revoked, or its time-to-live runs out. The grant carries a ``token`` (32 hex
characters): whoever has it may check the lease in or renew it, from any
process::

    co = hasp.checkout("part-7.mcam", ttl=86400, owner="alice", message="fixing fillets")
    print(co.token)                   # keep it: in a database, a cookie, a file
    ...
    hasp.checkin(co.token)            # hours later, from another process

This module holds what both clients share: :class:`Checkout`, and the fields
of checkin (``release``) and ``renew`` requests. The calls themselves are
:meth:`hasp.Client.checkout` and friends (and ``hasp.aio``'s).
"""

from __future__ import annotations

import os
import time
from typing import Any, Dict, Optional, Tuple, Union

from . import _paths, _proto
from .errors import Unavailable

__all__ = ["Checkout", "resource", "token_of", "target_fields", "untokened", "socket_of",
           "expires_ms_of", "seconds_left", "released_lease"]


class Checkout:
    """A granted checkout (what :func:`hasp.checkout` returns).

    ``lease`` (its id), ``fence``, ``token`` (the secret that ends or renews
    it from anywhere), ``mode``, ``key`` (None for a file), ``path`` (None
    for a key), ``name`` (the key or the path), ``ttl`` (seconds, None
    without a time-to-live), ``expires`` (when it expires, as a
    ``time.time()`` value, per this side's clock, at the grant or the last
    renew through this object; None without a TTL), ``expires_in`` (seconds
    left by that reckoning), ``socket`` (the daemon's socket it was taken
    from). ``repr()`` leaves the token out. Plain data: check it in with
    ``hasp.checkin(checkout)`` (or its token), from this process or another.
    """

    def __init__(self, reply: _proto.Reply, key: Optional[str], path: Optional[str],
                 mode: str, socket: str, now: Optional[float] = None) -> None:
        self.lease: int = reply.get("lease")
        self.fence: int = reply.get("fence")
        self.token: str = reply.get("token")
        self.mode: str = reply.get("mode") or mode
        self.key = key
        self.path = path
        self.socket = socket
        self.ttl: Optional[float] = None
        self.expires: Optional[float] = None
        self._renewed(reply, now)

    @property
    def name(self) -> str:
        """The key, or the path."""
        return self.key if self.key is not None else self.path  # type: ignore[return-value]

    @property
    def expires_in(self) -> Optional[float]:
        """Seconds until it expires (0 once past), None without a TTL."""
        if self.expires is None:
            return None
        return max(0.0, self.expires - time.time())

    def _renewed(self, reply: _proto.Reply, now: Optional[float] = None) -> None:
        """Notes the expires_ms of a grant or a renew."""
        ms = expires_ms_of(reply)
        if ms is None:
            return
        self.ttl = ms / 1000.0
        self.expires = (time.time() if now is None else now) + self.ttl

    def as_dict(self) -> Dict[str, Any]:
        """The checkout as plain data (for JSON), the token included."""
        return {"lease": self.lease, "fence": self.fence, "token": self.token,
                "mode": self.mode, "key": self.key, "path": self.path, "ttl": self.ttl,
                "expires": self.expires, "socket": self.socket}

    def __repr__(self) -> str:
        ttl = "" if self.ttl is None else " ttl %gs" % self.ttl
        return "<hasp.Checkout %d %s %r fence %s%s>" % (self.lease, self.mode, self.name,
                                                       self.fence, ttl)


TokenLike = Union[str, Checkout, None]


def untokened(reply: _proto.Reply, socket: str) -> Optional[Unavailable]:
    """The error for a detached acquire granted without a token: a haspd
    that does not know checkouts (it ignored detach, so the grant is a lease
    of the session, which the caller must release); None for a good one."""
    token = reply.get("token")
    if isinstance(token, str) and token:
        return None
    e = Unavailable("haspd at %s cannot check leases out (it granted lease %s without a "
                    "token: a version before checkouts)" % (socket, reply.get("lease")))
    e.code = "unavailable"
    return e


def socket_of(token: TokenLike, socket: Any) -> Any:
    """The socket to reach a checkout at: socket if given, else that of a
    Checkout given as token (None: the default)."""
    if socket is None and isinstance(token, Checkout):
        return token.socket
    return socket


def expires_ms_of(reply: _proto.Reply) -> Optional[int]:
    """A grant's or a renew's expires_ms, None if it has none."""
    ms = reply.get("expires_ms")
    if isinstance(ms, int) and not isinstance(ms, bool) and ms >= 0:
        return ms
    return None


def seconds_left(reply: _proto.Reply) -> float:
    """A renew's expires_ms in seconds (0 if it gave none)."""
    return (expires_ms_of(reply) or 0) / 1000.0


def resource(key: Optional[str], path: Optional[Any]) -> Tuple[Optional[str], Optional[str]]:
    """Exactly one of key and path, checked: (key, absolute path)."""
    if (key is None) == (path is None):
        raise TypeError("give a key or a path=, not both" if key is not None
                        else "give a key or a path=")
    if key is not None:
        _proto.check_text("the key", key, _proto.KEY_MAX, empty=False)
        return key, None
    return None, _paths.absolute(os.fsdecode(os.fspath(path)))


def token_of(token: TokenLike) -> Optional[str]:
    """The token of a Checkout, or token itself (a str or None)."""
    if isinstance(token, Checkout):
        return token.token
    if token is not None and (not isinstance(token, str) or not token):
        raise TypeError("the token must be a non-empty str (or a hasp.Checkout)")
    return token


def target_fields(token: TokenLike, key: Optional[str],
                  path: Optional[Any]) -> Tuple[Dict[str, Any], Optional[str]]:
    """The target of a checkin (``release``) or a ``renew``: a token, a key
    or a path (the token may go with a key or a path: then it must be that
    one's). Returns the fields and, for a path, the absolute path whose
    descriptor must go with the request."""
    tok = token_of(token)
    if key is not None and path is not None:
        raise TypeError("give a key or a path=, not both")
    fields: Dict[str, Any] = {}
    if tok is not None:
        fields["token"] = tok
    spath = None
    if key is not None:
        _proto.check_text("the key", key, _proto.KEY_MAX, empty=False)
        fields["key"] = key
    elif path is not None:
        spath = _paths.absolute(os.fsdecode(os.fspath(path)))
        fields["path"] = _proto.shown_path(spath)
        fields["fd"] = True
    elif tok is None:
        raise TypeError("give a token, a key= or a path=")
    return fields, spath


def released_lease(reply: _proto.Reply) -> Optional[int]:
    """The lease a release by token, key or path ended."""
    lease = reply.get("lease")
    return lease if isinstance(lease, int) and not isinstance(lease, bool) else None
