"""The exceptions of the hasp package.

Every exception is a subclass of :class:`Error`. A request that could not be
granted because someone holds the resource (:class:`Busy`, :class:`Timeout`)
carries ``.holders``, a list of :class:`Holder`, so that "already checked out
by alice" is one attribute away.

:class:`Timeout` is also py-filelock's ``Timeout``: a :class:`TimeoutError`
whose ``str()`` is ``"The file lock '...' could not be acquired."`` and that
has ``.lock_file``.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

__all__ = [
    "Error", "Conflict", "Busy", "Timeout", "Cancelled", "AlreadyHeld", "UnknownLease",
    "LeaseLost", "Unavailable", "Untrusted", "PermissionDenied", "Deadlock", "LimitReached",
    "BadRequest", "ProtocolError", "Holder", "Wait",
]


class Holder:
    """One holder (or waiter) of a resource, as the daemon reported it.

    Attributes: ``pid``, ``uid``, ``gid``, ``session``, ``mode``, ``client``,
    ``owner``, ``message``, ``lease``, ``fence``, ``held_ms``, ``since`` (the
    grant's wall-clock time, ISO 8601 UTC, or None), ``since_ms``,
    ``granted_at`` (the grant's time, RFC 3339 UTC with ms), ``ttl_ms`` and
    ``expires_in_ms`` (a lease with a time-to-live), ``host`` (a cluster
    key's holder: the cluster host of the haspd it holds through; None for
    a local one). Absent fields are None,
    but ``detached`` (a checkout: a lease of no session, whose pid and uid
    are the process that checked it out) is always a bool.
    ``holder["pid"]`` and ``holder.get("owner")`` work too, on the raw dict
    (``.raw``).
    """

    _FIELDS = ("pid", "uid", "gid", "session", "mode", "client", "owner", "message",
               "lease", "fence", "held_ms", "since", "since_ms", "granted_at", "ttl_ms",
               "expires_in_ms", "host")

    def __init__(self, raw: Dict[str, Any]) -> None:
        self.raw = dict(raw)
        for name in self._FIELDS:
            setattr(self, name, self.raw.get(name))
        self.detached = self.raw.get("detached") is True

    def __getitem__(self, name: str) -> Any:
        return self.raw[name]

    def get(self, name: str, default: Any = None) -> Any:
        return self.raw.get(name, default)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Holder):
            return self.raw == other.raw
        if isinstance(other, dict):
            return self.raw == other
        return NotImplemented

    def __repr__(self) -> str:
        return "Holder(%r)" % (self.raw,)

    def __str__(self) -> str:
        if self.detached:
            who = "uid %s" % self.uid
            if self.owner:
                who = "%s (%s)" % (self.owner, who)
            return "a checkout by " + who
        who = "pid %s" % self.pid
        if self.host:
            who += " on %s" % self.host
        if self.owner:
            who += " (owner %s)" % self.owner
        return who


def _holders(raw: Optional[Sequence[Any]]) -> List[Holder]:
    return [Holder(h) for h in raw or () if isinstance(h, dict)]


class Wait(Holder):
    """One wait of a deadlock's cycle: a session's request, as the daemon
    reported it (a waiter, with the fields of :class:`Holder`), ``key`` or
    ``path`` (the other is None), ``request`` (its id in that session), and
    ``waits_for``, a :class:`Holder`: the lease (``lease`` set) or the request
    queued ahead (``request`` set, no ``lease``) of the next wait's session.
    """

    def __init__(self, raw: Dict[str, Any]) -> None:
        super().__init__(raw)
        self.key = self.raw.get("key")
        self.path = self.raw.get("path")
        self.request = self.raw.get("request")
        by = self.raw.get("waits_for")
        self.waits_for = Holder(by if isinstance(by, dict) else {})

    def __repr__(self) -> str:
        return "Wait(%r)" % (self.raw,)

    def __str__(self) -> str:
        return "session %s (pid %s) waits for %s on %r" % (
            self.session, self.pid, self.mode, self.key if self.key is not None else self.path)


class Error(Exception):
    """The base of every hasp error.

    ``code`` is the daemon's stable error code (``"busy"``, ``"timeout"``, ...)
    or None for errors found on this side; ``detail`` is the daemon's message
    for people (it may change between versions).
    """

    code: Optional[str] = None

    def __init__(self, message: str = "", *, code: Optional[str] = None,
                 detail: Optional[str] = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code
        self.detail = detail if detail is not None else message


class Conflict(Error):
    """Someone holds the resource: ``.holders`` says who (at most 16),
    ``.holder`` the first of them (None if the daemon named none)."""

    def __init__(self, message: str = "", *, holders: Optional[Sequence[Any]] = None,
                 code: Optional[str] = None, detail: Optional[str] = None) -> None:
        super().__init__(message, code=code, detail=detail)
        self.holders = _holders(holders)

    @property
    def holder(self) -> Optional[Holder]:
        return self.holders[0] if self.holders else None


class Busy(Conflict):
    """Not granted at once, and the caller asked not to wait (timeout 0)."""

    code = "busy"


class Timeout(Conflict, TimeoutError):
    """Not granted within the timeout; py-filelock's ``Timeout`` too.

    ``Timeout(lock_file)`` builds one as filelock does; ``str()`` is filelock's
    message for a file (``"The file lock 'x.lock' could not be acquired."``)
    and ``"The lock 'KEY' could not be acquired."`` for a named key.
    ``.lock_file`` is the path (or the key), ``.key`` the key (None for a file).
    With ``explain`` (as :func:`hasp.checkout` raises it), the daemon's
    message follows, which names the holder: ``"The lock 'part-7' could not
    be acquired: timed out after 5000 ms: 'part-7' is checked out by alice
    (uid 1000) since ...: fixing fillets"``.
    """

    code = "timeout"

    def __init__(self, lock_file: Optional[str] = None, *,
                 holders: Optional[Sequence[Any]] = None, key: Optional[str] = None,
                 detail: Optional[str] = None, explain: bool = False) -> None:
        self.lock_file = lock_file if lock_file is not None else key
        self.key = key
        self.explain = explain
        super().__init__(self._filelocks(), holders=holders, detail=detail)
        self.args = (self._text(),)

    def _filelocks(self) -> str:
        if self.key is not None and self.lock_file == self.key:
            return "The lock '%s' could not be acquired." % (self.key,)
        return "The file lock '%s' could not be acquired." % (self.lock_file,)

    def _text(self) -> str:
        text = self._filelocks()
        if self.explain and self.detail and self.detail != text:
            text = "%s: %s" % (text[:-1], self.detail)
        return text

    def __str__(self) -> str:
        return self._text()

    def __reduce__(self) -> Any:
        return (_rebuild_timeout, (self.lock_file, self.key, [h.raw for h in self.holders],
                                   self.detail, self.explain))


def _rebuild_timeout(lock_file: Optional[str], key: Optional[str], holders: Any,
                     detail: Optional[str], explain: bool = False) -> Timeout:
    return Timeout(lock_file, key=key, holders=holders, detail=detail, explain=explain)


class Cancelled(Error):
    """A waiting request was cancelled (``cancel`` op)."""

    code = "cancelled"


class AlreadyHeld(Error):
    """This session already holds, or waits for, the resource."""

    code = "already_held"


class UnknownLease(Error):
    """The daemon knows no such lease in this session."""

    code = "unknown_lease"


class LeaseLost(Error):
    """A lease ended without its holder releasing it: revoked by an
    administrator, expired, lost by a haspd in cluster mode (it could no
    longer keep the lease alive in etcd), or the connection to haspd was
    lost (the daemon stopped, crashed or restarted), which ends every lease
    of the session."""


class Unavailable(Error, ConnectionError):
    """haspd cannot be reached, stopped answering, or closed the connection.

    Also the daemon's ``unavailable`` code (a cluster backend unreachable).
    """


class Untrusted(Unavailable):
    """The socket is not to be trusted (a squatted or writable directory, a
    symbolic link, a server of a stranger's uid); nothing was sent to it.

    A subclass of :class:`Unavailable`: for the caller, no trustworthy daemon
    is reachable. ``.path`` is the socket, ``.owner_uid`` the uid that made it
    untrusted (the directory's or the server's owner), when one did.
    """

    def __init__(self, message: str, *, path: str = "",
                 owner_uid: Optional[int] = None) -> None:
        super().__init__(message)
        self.path = path
        self.owner_uid = owner_uid


class PermissionDenied(Error, PermissionError):
    """The daemon refused: another user's lease, or a file it may not open."""

    code = "permission_denied"


class Deadlock(Error):
    """Waiting would close a cycle of sessions waiting for each other: the
    request was refused at once (nothing of it is queued), and the others'
    waits go on. ``.cycle`` is a list of :class:`Wait`, the refused request's
    first (at most 16); ``str()`` names each, as PostgreSQL's message does.
    """

    code = "deadlock"

    def __init__(self, message: str = "", *, cycle: Optional[Sequence[Any]] = None,
                 code: Optional[str] = None, detail: Optional[str] = None) -> None:
        super().__init__(message, code=code, detail=detail)
        self.cycle = [Wait(w) for w in cycle or () if isinstance(w, dict)]


class LimitReached(Error):
    """A daemon limit (leases, waiters, sessions, descriptors) was reached."""

    code = "limit"


class BadRequest(Error, ValueError):
    """The daemon found the request malformed or invalid (``bad_request``,
    ``unknown_op``, ``too_large``)."""

    code = "bad_request"


class ProtocolError(Error):
    """The daemon said something this client cannot understand, or an error
    code this client does not know (treated as ``internal``)."""

    code = "internal"
