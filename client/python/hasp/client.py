"""The blocking client: :class:`Client` (one session), :class:`Lease`, and the
one-off :func:`lock` / :func:`lock_file`.

Threads: a Client's calls are serialized by a lock inside it, so a Client may
be shared, but a waiting ``lock()`` holds that lock until it is granted or
fails; give each thread its own Client to wait in parallel. A Client must not
be used in a child after ``fork()`` (it raises :class:`hasp.Error`): the
connection is the session, and two processes writing to it would be refused.
"""

from __future__ import annotations

import errno
import os
import select
import socket as _socket
import sys
import threading
import time
from typing import Any, Dict, Iterable, List, Optional, Tuple, Union

from . import _held, _paths, _proto, checkouts
from .checkouts import Checkout, TokenLike
from .errors import Busy, Error, LeaseLost, Unavailable, UnknownLease, Untrusted
from .files import _adopt_error

__all__ = ["Client", "Lease", "lock", "lock_file", "checkout", "checkin", "renew",
           "default_name"]

PathLike = Union[str, bytes, "os.PathLike[Any]"]


def default_name() -> str:
    """"python:<argv0> (pid N)", the name a Client gives in hello."""
    prog = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "python"
    name = "python:%s (pid %d)" % (prog, os.getpid())
    raw = name.encode("utf-8", "replace")[:_proto.CLIENT_MAX]
    return raw.decode("utf-8", "ignore")


def acquire_fields(key: Optional[str], path: Optional[str], shared: bool,
                   timeout: Optional[float], owner: Optional[str],
                   message: Optional[str], ttl: Optional[float] = None,
                   detach: bool = False,
                   limit: Optional[int] = None) -> Tuple[Dict[str, Any], str, Optional[int]]:
    """An acquire's fields (checked), its mode and its timeout_ms. ttl:
    seconds the lease lives after its grant or last renew (None: no limit);
    detach: a checkout; limit: a semaphore's (None: an ordinary key)."""
    _proto.check_text("the owner", owner, _proto.OWNER_MAX)
    _proto.check_text("the message", message, _proto.MESSAGE_MAX)
    mode = "shared" if shared else "exclusive"
    tms = _proto.timeout_ms(timeout)
    fields: Dict[str, Any] = {"mode": mode, "timeout_ms": tms, "owner": owner,
                              "message": message, "ttl_ms": _proto.ttl_ms(ttl),
                              "detach": True if detach else None}
    if limit is not None:
        fields["limit"] = _proto.semaphore_limit(limit)
    if key is not None:
        fields["key"] = key
    else:
        fields["path"] = _proto.shown_path(path)  # type: ignore[arg-type]
        fields["fd"] = True
    return fields, mode, tms


KeySpec = Union[str, Tuple[str, str]]


def multikey_items(keys: Iterable[KeySpec], shared: bool) -> Tuple[List[Dict[str, str]],
                                                                   List[str]]:
    """A multi-key acquire's "keys" (checked: 2 to 64 distinct keys, each
    a name in the call's mode or a (name, "shared"|"exclusive") pair), and
    the names."""
    items: List[Dict[str, str]] = []
    for spec in keys:
        name, mode = (spec, "shared" if shared else "exclusive") if isinstance(spec, str) \
            else spec
        _proto.check_text("a key", name, _proto.KEY_MAX, empty=False)
        if mode not in ("shared", "exclusive"):
            raise ValueError("a key's mode is 'shared' or 'exclusive', not %r" % (mode,))
        items.append({"key": name, "mode": mode})
    names = [i["key"] for i in items]
    if not _proto.KEYS_MIN <= len(names) <= _proto.KEYS_MAX or len(set(names)) != len(names):
        raise ValueError("lock_many takes %d to %d distinct keys"
                         % (_proto.KEYS_MIN, _proto.KEYS_MAX))
    return items, names


def multikey_fields(keys: Iterable[KeySpec], shared: bool, timeout: Optional[float],
                    owner: Optional[str], message: Optional[str]
                    ) -> Tuple[Dict[str, Any], List[str], str, Optional[int]]:
    """A multi-key acquire's fields (checked), its keys' names, the
    lease's mode (the first key's) and its timeout_ms."""
    items, names = multikey_items(keys, shared)
    fields, _, tms = acquire_fields("", None, shared, timeout, owner, message)
    del fields["key"]
    fields["keys"] = items
    return fields, names, items[0]["mode"], tms


def multikey_granted(session: Any, rep: _proto.Reply, names: List[str], mode: str,
                     lease_class: Any) -> Any:
    """A multi-key acquire's lease (of lease_class, noted in the
    session's), or raises its refusal."""
    if not rep.ok:
        raise _proto.error_for(rep, key=names[0])
    lease = lease_class(session, rep, "\n".join(names), None, mode)
    lease.keys = names
    session._leases[lease.id] = lease
    return lease


def _let_go(lease: Any) -> None:
    """Releases a lease the caller will never see, on the way out of an
    error: a release that fails too (the lease lost already) is not the
    error to report."""
    try:
        lease.release()
    except Error:
        pass


def lease_failure(rep: _proto.Reply, lease: Any, adopting: bool = False) -> Error:
    """The exception for a failed release or adopt of lease: an unknown
    lease is a lost one."""
    err = _proto.error_for(rep)
    if isinstance(err, UnknownLease):
        lost = LeaseLost("the lease %d on %r had ended: %s" % (lease.id, lease.name, rep.message))
        lost.__cause__ = err
        return lost
    return _adopt_error(err, lease.name) if adopting else err


def lease_renewed(rep: _proto.Reply, lease: Any) -> float:
    """After a renew of lease: its seconds to live, or the exception."""
    if not rep.ok:
        raise lease_failure(rep, lease)
    lease._renewed(rep)
    return checkouts.seconds_left(rep)


def convert_fields(lease: Any, mode: str,
                   timeout: Optional[float]) -> Tuple[Dict[str, Any], Optional[int]]:
    """A convert's fields and its timeout_ms (None: for ever)."""
    if lease.released:
        raise Error("the lease %d on %r was released" % (lease.id, lease.name))
    tms = _proto.timeout_ms(timeout)
    return {"lease": lease.id, "mode": mode, "timeout_ms": tms}, tms


def lease_converted(rep: _proto.Reply, lease: Any) -> None:
    """After a convert of lease: its new mode and fence, or the exception
    (the lease is as it was: Busy, Timeout, Deadlock; LeaseLost when it
    had ended)."""
    if not rep.ok:
        raise lease_failure(rep, lease)
    lease._converted(rep)


def lease_gone(lease: Any, e: BaseException) -> LeaseLost:
    """The lease's connection ended while releasing or adopting."""
    lost = LeaseLost("the lease %d on %r was lost: %s" % (lease.id, lease.name, e))
    lost.__cause__ = e
    return lost


class Session:
    """What the blocking and the asyncio Client share: the state checks, and
    what a checkin's or a renew's reply does to the session's leases."""

    _proto: _proto.Protocol
    _leases: Dict[int, Any]
    _pid: int
    _user_closed: bool
    _sock: Optional[_socket.socket]
    _kind = "hasp.Client"

    def _usable(self) -> None:
        if os.getpid() != self._pid:
            raise Error("a %s cannot be used after fork(): open a new one" % self._kind)
        if self._user_closed:
            raise Error("the client is closed")
        if self._proto.refusal is not None:
            raise self._proto.refusal
        if self._proto.closed or self._sock is None:
            raise Unavailable("the connection to haspd was lost, and every lease taken "
                              "through it")

    def _loss_reason(self, lease_id: int) -> str:
        ending = self._proto.endings.get(lease_id)
        if ending == "expired":
            return "expired: its time-to-live ran out"
        if ending == "lost":
            return "lost: haspd could no longer keep it in etcd (cluster mode)"
        if ending is not None or lease_id in self._proto.revoked:
            return "revoked"
        return "the connection to haspd was lost"

    def _lost_before(self, lease: Any, what: str) -> LeaseLost:
        return LeaseLost("the lease %d on %r was lost %s (%s)"
                         % (lease.id, lease.name, what, self._loss_reason(lease.id)))

    def _checked_in(self, rep: _proto.Reply) -> int:
        """After a checkin (a release by token, key or path): the lease id
        it ended, a lease of this session then released; or the exception."""
        if not rep.ok:
            raise _proto.error_for(rep)
        ended = checkouts.released_lease(rep)
        lease = self._leases.pop(ended, None) if ended is not None else None
        if lease is not None:
            lease.released = True
            _held.unregister(lease)
        return ended  # type: ignore[return-value]

    def _renewed(self, rep: _proto.Reply, token: TokenLike, now: float) -> float:
        """After a renew by token, key or path: its seconds to live (a
        Checkout given, or a lease of this session renewed, follows); or the
        exception."""
        if not rep.ok:
            raise _proto.error_for(rep)
        if isinstance(token, Checkout):
            token._renewed(rep, now)
        lease = self._leases.get(rep.get("lease"))  # type: ignore[arg-type]
        if lease is not None:
            lease._renewed(rep)
        return checkouts.seconds_left(rep)


class LeaseState:
    """What a granted lease is, for both clients' ``Lease``: its id, fence,
    mode, key or path, time-to-live, and whether it was released or lost."""

    def __init__(self, client: Any, reply: _proto.Reply, key: Optional[str],
                 path: Optional[str], mode: str, owns_client: bool = False) -> None:
        self.client = client
        self.id: int = reply.get("lease")
        self.fence: int = reply.get("fence")
        self.mode: str = reply.get("mode") or mode
        self.key = key
        self.keys: Optional[List[str]] = None  # a multi-key lease's names
        self.path = path
        self.released = False
        self.ttl: Optional[float] = None
        self.expires: Optional[float] = None
        self._owns_client = owns_client
        self._held_key = None
        self._renewed(reply)

    def _converted(self, reply: _proto.Reply) -> None:
        """Notes the mode and fence of a convert's reply."""
        self.mode = reply.get("mode") or self.mode
        self.fence = reply.get("fence") or self.fence

    def _renewed(self, reply: _proto.Reply) -> None:
        """Notes the expires_ms of the grant or of a renew."""
        ms = checkouts.expires_ms_of(reply)
        if ms is not None:
            self.ttl = ms / 1000.0
            self.expires = time.time() + self.ttl

    @property
    def name(self) -> str:
        """The key, or the path."""
        return self.key if self.key is not None else self.path  # type: ignore[return-value]

    @property
    def lost(self) -> bool:
        """Whether the lease ended without being released: revoked, expired,
        or the connection to haspd lost. Reads what the daemon already sent,
        without waiting."""
        if self.released:
            return False
        return self.client._lease_lost(self.id)


class Lease(LeaseState):
    """A granted lease. A context manager: leaving the ``with`` releases it.

    ``id``, ``fence`` (strictly increasing over the daemon's grants), ``key``
    (None for a file), ``path`` (None for a key), ``mode`` (``"exclusive"``
    or ``"shared"``), ``client``. ``lost`` is true once the daemon revoked it,
    it expired, haspd lost it (cluster mode: etcd out of reach) or the
    connection ended; ``released`` once it was released.
    ``ttl`` (seconds) and ``expires`` (a ``time.time()`` value, by this side's
    clock) for a lease taken with a ``ttl``, else None.
    """

    client: "Client"

    def renew(self, ttl: Optional[float] = None) -> float:
        """Restarts the lease's time-to-live from now (ttl: a new one, in
        seconds; None: the one it has). Returns the seconds until it
        expires. :class:`hasp.LeaseLost` if it had expired or was lost;
        :class:`hasp.BadRequest` for a lease taken without a ttl (haspd
        gives none after the grant)."""
        if self.released:
            raise Error("the lease %d on %r was released" % (self.id, self.name))
        return self.client._renew_lease(self, ttl)

    def upgrade(self, timeout: Optional[float] = None) -> None:
        """Makes this shared lease exclusive without letting go of it: at
        once if it is the only holder, else once the other holders have left
        (it goes ahead of every queued request; the lease stays shared while
        it waits), waiting up to timeout seconds (None: for ever; 0: try
        once). An upgrade is a grant: ``fence`` is a new one afterwards.
        :class:`hasp.Busy` or :class:`hasp.Timeout` leave it shared;
        :class:`hasp.Deadlock` when another holder upgrades too (or the wait
        would close another cycle), the lease still shared;
        :class:`hasp.LeaseLost` if it had ended; :class:`hasp.BadRequest`
        for a semaphore's lease."""
        self.client._convert(self, "exclusive", timeout)

    def downgrade(self) -> None:
        """Makes this exclusive lease shared, at once, without letting go
        of it (the same fence); the readers queued behind it go in."""
        self.client._convert(self, "shared", None)

    def release(self) -> None:
        """Releases the lease; a second call does nothing. Raises
        :class:`hasp.LeaseLost` if the lease had been lost meanwhile (it was
        not held until now), as far as the client knows.

        A named key's release is written and not waited for: haspd serves
        it before anything this client sends later, so that a lock and a
        release cost one round trip; another client's try (``timeout=0``)
        sent after this returned is served after it too (haspd reads what
        was sent before it answers a try busy). A file's release is
        awaited, so that its flock(2) is dropped, for programs outside hasp
        too, when this
        returns."""
        if self.released:
            return
        try:
            self.client._release(self)
        finally:
            self.released = True
            _held.unregister(self)
            if self._owns_client:
                self.client.close()

    def _adopt(self, fd: int, path: str) -> None:
        """Has haspd adopt the file open on fd (at path, about to be renamed
        over this lease's file) into this lease's resource."""
        self.client._adopt(self, fd, path)

    def __enter__(self) -> "Lease":
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.release()
            return
        try:
            self.release()
        except Error:
            pass  # the body's exception matters more

    def __repr__(self) -> str:
        state = " released" if self.released else ""
        return "<hasp.Lease %d %s %r fence %s%s>" % (self.id, self.mode, self.name, self.fence,
                                                    state)


class Client(Session):
    """One session with haspd: one connection, opened at once.

    ``socket`` is the socket's path (default: :func:`hasp.default_socket`);
    it is checked as libhasp checks it, and :class:`hasp.Untrusted` raised,
    with nothing sent, when it cannot be trusted. :class:`hasp.Unavailable`
    when nothing listens. ``name`` is shown by ``hasp ls`` (default
    ``"python:<argv0> (pid N)"``).
    """

    #: Seconds a reply may take beyond the request's own timeout before the
    #: daemon is deemed to have stopped answering (the connection is then
    #: dropped, with its leases, and :class:`hasp.Unavailable` raised).
    reply_margin = 10.0
    #: The same for requests that do not wait (hello, release, ping...).
    request_timeout = 30.0

    def __init__(self, socket: Optional[PathLike] = None, name: Optional[str] = None) -> None:
        self._lock = threading.RLock()
        self._pid = os.getpid()
        self._sock: Optional[_socket.socket] = None
        self._proto = _proto.Protocol()
        self._leases: Dict[int, Lease] = {}
        self._user_closed = False
        self.path = os.fsdecode(socket) if socket is not None else _paths.default_socket()
        self.name = default_name() if name is None else name
        _proto.check_text("the client name", self.name, _proto.CLIENT_MAX)
        self._sock = self._connect(self.path)
        # hello goes with the first request: no round trip of its own.
        self._hello = self._proto.request("hello", client=self.name, version=_proto.VERSION)
        self._send(self._hello.data)

    @staticmethod
    def _connect(path: str) -> _socket.socket:
        try:
            trust = _paths.check_socket(path)
        except Untrusted:
            raise
        except OSError as e:
            raise Unavailable("cannot connect to haspd at %s: %s" % (path, e.strerror or e)) \
                from e
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
        try:
            sock.connect(path)
            _paths.check_peer(sock, path, trust)
        except Untrusted:
            sock.close()
            raise
        except OSError as e:
            sock.close()
            raise Unavailable("cannot connect to haspd at %s: %s" % (path, e.strerror or e)) \
                from e
        return sock

    # -- the public calls --------------------------------------------------

    def lock(self, key: str, *, shared: bool = False, timeout: Optional[float] = None,
             owner: Optional[str] = None, message: Optional[str] = None,
             ttl: Optional[float] = None, limit: Optional[int] = None) -> Lease:
        """A lease on the named lock key (1 to 1024 bytes of UTF-8).

        timeout: seconds; None (or negative) waits for ever, 0 tries once.
        ttl: seconds; the lease expires that long after its grant or last
        :meth:`Lease.renew` (it is then ``lost``, and the next waiter in).
        limit: 1 to 10000, the key is a semaphore of up to that many
        (exclusive) holders at once, granted in FIFO order; every lock on it
        while it is held or waited for must give the same limit, else
        :class:`hasp.BadRequest` naming the key's (also for shared=True).
        Raises :class:`hasp.Busy` (timeout 0) or :class:`hasp.Timeout`, both
        with ``.holders``; :class:`hasp.AlreadyHeld`; :class:`hasp.Unavailable`.
        """
        _proto.check_text("the key", key, _proto.KEY_MAX, empty=False)
        return self._acquire(key=key, path=None, fd=None, shared=shared, timeout=timeout,
                             owner=owner, message=message, ttl=ttl, limit=limit)

    def lock_many(self, keys: Iterable[KeySpec], *, shared: bool = False,
                  timeout: Optional[float] = None, owner: Optional[str] = None,
                  message: Optional[str] = None) -> Lease:
        """One lease over 2 to 64 distinct named keys, each a name (in the
        mode shared says) or a ``(name, "shared"|"exclusive")`` pair,
        granted all-or-nothing: while it waits it holds none of them, in
        FIFO order on each key. The lease's ``keys`` are the names, its
        ``key`` them joined by newlines (as libhasp's and the CLI's), its
        ``mode`` the first key's; releasing it releases every key. Raises as
        :meth:`lock` (:class:`hasp.AlreadyHeld` when this client holds or
        waits for any of the keys), and ValueError for keys that are not 2
        to 64 distinct ones."""
        fields, names, mode, tms = multikey_fields(keys, shared, timeout, owner, message)
        rep = self._call("acquire", fields, wait=None if tms is None else tms / 1000.0,
                         cancellable=True)
        return multikey_granted(self, rep, names, mode, Lease)

    def lock_file(self, path: PathLike, *, shared: bool = False,
                  timeout: Optional[float] = None, owner: Optional[str] = None,
                  message: Optional[str] = None, create_mode: int = 0o666,
                  ttl: Optional[float] = None) -> Lease:
        """A lease on a file, created if missing (create_mode minus the
        umask), whose flock(2) lock haspd takes, so flock users see it. The
        file is opened here (read access where allowed, else write) and its
        descriptor passed to haspd, which checks nothing more: the file is
        its device and inode, whatever the path. Never truncated. Errors as
        :meth:`lock` (and ``ttl`` too), and OSError when the file cannot be
        opened."""
        spath = _paths.absolute(os.fsdecode(os.fspath(path)))
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            self._usable()
            while True:
                fd = _paths.open_lock_file(spath, create_mode)
                try:
                    lease = self._acquire(key=None, path=spath, fd=fd, shared=shared,
                                          timeout=_paths.remaining(deadline), owner=owner,
                                          message=message, ttl=ttl)
                    st = os.fstat(fd)
                finally:
                    os.close(fd)
                if self._settle(lease, spath, st, create_mode):
                    return lease

    def _settle(self, lease: Lease, path: str, st: os.stat_result, create_mode: int) -> bool:
        """Whether lease, granted on the file st, holds the file path names
        now. If the file was replaced meanwhile (an atomic write renamed a new
        one over it), the new one joins the lease (adopt) unless it is a lock
        of its own: then the lease goes, and False says to start again."""
        if _paths.replaced_since(path, st):
            try:
                fd = _paths.open_lock_file(path, create_mode, create=False)
            except FileNotFoundError:
                fd = -1  # gone since: the lease stands, as flock's would
            except BaseException:
                _let_go(lease)
                raise
            try:
                if fd >= 0:
                    st = os.fstat(fd)
                    self._adopt(lease, fd, path)
            except Busy:
                lease.release()
                return False
            except BaseException:
                _let_go(lease)
                raise
            finally:
                if fd >= 0:
                    os.close(fd)
        _held.register(lease, st)
        return True

    def checkout(self, key: Optional[str] = None, *, path: Optional[PathLike] = None,
                 shared: bool = False, timeout: Optional[float] = None,
                 ttl: Optional[float] = None, owner: Optional[str] = None,
                 message: Optional[str] = None, create_mode: int = 0o666) -> Checkout:
        """Checks out key, or the file at path (opened, created if missing,
        as :meth:`lock_file` does): a lease of no session, which outlives
        this Client and its process, and haspd's restarts, until checked in
        (:meth:`checkin`), revoked, or past its ttl (seconds; None: none).
        Raises :class:`hasp.Busy` / :class:`hasp.Timeout` whose message names
        the holder (``"... is checked out by alice (uid 1000) since ...:
        fixing fillets"``) and ``.holders``; :class:`hasp.LimitReached` past
        the daemon's per-user cap; :class:`hasp.Unavailable` from a daemon
        that keeps no journal of checkouts, or knows no checkouts (one that
        grants no token: that lease is released).

        A file replaced (renamed over) between its opening and the grant is
        not the one the path names: that checkout is checked in again and
        the file the path names now asked for, within the timeout."""
        key, spath = checkouts.resource(key, path)
        if spath is None:
            rep, mode = self._grant(key=key, path=None, fd=None, shared=shared, timeout=timeout,
                                    owner=owner, message=message, ttl=ttl, detach=True)
            return Checkout(rep, key, None, mode, self.path)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            fd = _paths.open_lock_file(spath, create_mode)
            try:
                rep, mode = self._grant(key=None, path=spath, fd=fd, shared=shared,
                                        timeout=_paths.remaining(deadline), owner=owner,
                                        message=message, ttl=ttl, detach=True)
                st = os.fstat(fd)
            finally:
                os.close(fd)
            co = Checkout(rep, None, spath, mode, self.path)
            if not _paths.replaced_since(spath, st):
                return co
            self.checkin(co)

    def checkin(self, token: TokenLike = None, *, key: Optional[str] = None,
                path: Optional[PathLike] = None) -> int:
        """Ends a checkout: the one with token (a str, or a
        :class:`hasp.Checkout`), from anyone; or, by key or path, this
        session's own lease on it, else this uid's checkout on it (with a
        token too: the checkout with that token on it). Returns the lease id
        ended. :class:`hasp.UnknownLease` when there is none;
        :class:`hasp.PermissionDenied` for a wrong token."""
        fields, spath = checkouts.target_fields(token, key, path)
        rep = self._call_on("release", fields, spath)
        with self._lock:
            return self._checked_in(rep)

    def renew(self, token: TokenLike = None, *, key: Optional[str] = None,
              path: Optional[PathLike] = None, ttl: Optional[float] = None) -> float:
        """Restarts the time-to-live of the checkout with token (a str, or a
        :class:`hasp.Checkout`, whose ``ttl`` and ``expires`` follow), or
        of this session's or this uid's lease on key or path, from now: ttl
        seconds, or (None) the TTL it has. Returns the seconds until it
        expires. Errors as :meth:`checkin`, and :class:`hasp.BadRequest`
        for a lease taken without a TTL, or a checkout without one and no
        ttl (a checkout gets one from a ttl)."""
        fields, spath = checkouts.target_fields(token, key, path)
        fields["ttl_ms"] = _proto.ttl_ms(ttl)
        now = time.time()
        rep = self._call_on("renew", fields, spath)
        with self._lock:
            return self._renewed(rep, token, now)

    def ping(self) -> float:
        """Round trip to the daemon, in seconds."""
        start = time.monotonic()
        self._call("ping")
        return time.monotonic() - start

    def close(self) -> None:
        """Ends the session: every lease of it is released. Returns once the
        daemon has ended the session (when leases were held), so that the next
        waiter may already have them."""
        with self._lock:
            self._user_closed = True
            sock, self._sock = self._sock, None
            if sock is None:
                return
            try:
                if self._leases and not self._proto.closed and os.getpid() == self._pid:
                    sock.shutdown(_socket.SHUT_WR)
                    end = time.monotonic() + self.request_timeout
                    while time.monotonic() < end:
                        r, _, _ = select.select([sock], [], [], end - time.monotonic())
                        if not r or not sock.recv(65536):
                            break
            except OSError:
                pass
            finally:
                sock.close()
                self._proto.closed = True
                for lease in self._leases.values():
                    _held.unregister(lease)
                self._leases.clear()

    @property
    def closed(self) -> bool:
        """Whether close() was called or the connection ended."""
        return self._sock is None or self._proto.closed

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            if self._sock is not None and os.getpid() == self._pid:
                self._sock.close()
        except Exception:
            pass

    # -- inside ------------------------------------------------------------

    def _grant(self, *, key: Optional[str], path: Optional[str], fd: Optional[int],
               shared: bool, timeout: Optional[float], owner: Optional[str],
               message: Optional[str], ttl: Optional[float],
               detach: bool, limit: Optional[int] = None) -> Tuple[_proto.Reply, str]:
        """Acquires; the grant and its mode, or raises the refusal (naming
        the holder in a checkout's Timeout)."""
        fields, mode, tms = acquire_fields(key, path, shared, timeout, owner, message, ttl,
                                           detach, limit)
        rep = self._call("acquire", fields, fd=fd,
                         wait=None if tms is None else tms / 1000.0, cancellable=True)
        if not rep.ok:
            raise _proto.error_for(rep, key=key, path=path, explain=detach)
        refusal = checkouts.untokened(rep, self.path) if detach else None
        if refusal is not None:
            self._call("release", {"lease": rep.get("lease")})
            raise refusal
        return rep, mode

    def _acquire(self, *, key: Optional[str], path: Optional[str], fd: Optional[int],
                 shared: bool, timeout: Optional[float], owner: Optional[str],
                 message: Optional[str], ttl: Optional[float] = None,
                 limit: Optional[int] = None) -> Lease:
        rep, mode = self._grant(key=key, path=path, fd=fd, shared=shared, timeout=timeout,
                                owner=owner, message=message, ttl=ttl, detach=False,
                                limit=limit)
        lease = Lease(self, rep, key, path, mode)
        self._leases[lease.id] = lease
        return lease

    def _call_on(self, op: str, fields: Dict[str, Any], path: Optional[str]) -> _proto.Reply:
        """A request about a key, a token, or the file at path (opened, not
        created, and its descriptor sent)."""
        if path is None:
            return self._call(op, fields)
        fd = _paths.open_lock_file(path, create=False)
        try:
            return self._call(op, fields, fd=fd)
        finally:
            os.close(fd)

    def _renew_lease(self, lease: Lease, ttl: Optional[float]) -> float:
        fields = {"lease": lease.id, "ttl_ms": _proto.ttl_ms(ttl)}
        with self._lock:
            if self._lease_lost(lease.id):
                raise self._lost_before(lease, "before its renewal")
            try:
                rep = self._call("renew", fields)
            except Unavailable as e:
                raise lease_gone(lease, e) from e
            return lease_renewed(rep, lease)

    def _convert(self, lease: Lease, mode: str, timeout: Optional[float]) -> None:
        fields, tms = convert_fields(lease, mode, timeout)
        with self._lock:
            if self._lease_lost(lease.id):
                raise self._lost_before(lease, "before its conversion")
            try:
                rep = self._call("convert", fields, wait=None if tms is None else tms / 1000.0,
                                 cancellable=True, keep_grant=lease)
            except Unavailable as e:
                raise lease_gone(lease, e) from e
            lease_converted(rep, lease)

    def _release(self, lease: Lease) -> None:
        with self._lock:
            self._leases.pop(lease.id, None)
            if self._lease_lost(lease.id):
                raise self._lost_before(lease, "before its release")
            try:
                if lease.key is not None:
                    self._release_unawaited(lease)
                    return
                rep = self._call("release", {"lease": lease.id})
            except Unavailable as e:
                raise lease_gone(lease, e) from e
            if not rep.ok:
                raise lease_failure(rep, lease)

    def _release_unawaited(self, lease: Lease) -> None:
        """A named key's release is written and not waited for, as libhasp's
        hasp_unlock() does: haspd ends the lease before it reads anything
        else from this connection, and its answer (ok, or that the lease had
        ended: its event says so) is read, and dropped, with the next. A
        file's release is awaited: its flock(2), which programs outside hasp
        see, is dropped only when haspd has served it."""
        self._usable()
        self._send(self._proto.request("release", lease=lease.id).data)

    def _adopt(self, lease: Lease, fd: int, path: str) -> None:
        with self._lock:
            if self._lease_lost(lease.id):
                raise self._lost_before(lease, "before the file was replaced")
            try:
                rep = self._call("adopt", _proto.adopt_fields(lease.id, path), fd=fd)
            except Unavailable as e:
                raise lease_gone(lease, e) from e
            if not rep.ok:
                raise lease_failure(rep, lease, adopting=True)

    def _lease_lost(self, lease_id: int) -> bool:
        if self._lock.acquire(blocking=False):
            try:
                self._poll(0)
            except (OSError, Error):
                pass
            finally:
                self._lock.release()
        return lease_id in self._proto.revoked or self._proto.closed or self._sock is None

    def _send(self, data: bytes, fd: Optional[int] = None) -> None:
        assert self._sock is not None
        try:
            if fd is not None:
                n = _socket.send_fds(self._sock, [data], [fd])
                data = data[n:]
            if data:
                self._sock.sendall(data)
        except OSError as e:
            self._drop()
            raise Unavailable("cannot send to haspd: %s" % (e.strerror or e)) from e

    def _poll(self, wait: Optional[float]) -> List[_proto.Message]:
        """Reads what is there (waiting up to wait seconds, None: for ever,
        for something) and returns the messages it completes."""
        sock = self._sock
        if sock is None or self._proto.closed:
            return []
        try:
            r, _, _ = select.select([sock], [], [], wait)
        except InterruptedError:  # pragma: no cover (PEP 475 retries)
            return []
        if not r:
            return []
        try:
            data = sock.recv(65536, _socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return []
        except OSError as e:
            if e.errno not in (errno.ECONNRESET, errno.EPIPE):
                raise
            data = b""
        msgs = self._proto.receive(data)
        if self._proto.closed and self._sock is not None:
            self._sock.close()
            self._sock = None
        return msgs

    def _drop(self) -> None:
        """Ends the connection after a request whose outcome is unknown."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        self._proto.closed = True

    def _call(self, op: str, fields: Optional[Dict[str, Any]] = None, *,
              fd: Optional[int] = None, wait: Optional[float] = 0,
              cancellable: bool = False, keep_grant: Optional[Lease] = None) -> _proto.Reply:
        """Sends one request and returns its reply. wait: how long the
        daemon itself may take (None: for ever); past it and the margin, the
        connection is dropped and Unavailable raised. keep_grant: the lease
        a cancelled convert was for, which a crossing grant converted."""
        with self._lock:
            self._usable()
            req = self._proto.request(op, **(fields or {}))
            self._send(req.data, fd)
            limit = self.request_timeout if wait == 0 else (
                None if wait is None else wait + self.reply_margin)
            try:
                return self._await(req.id, limit)
            except BaseException as e:
                if cancellable and not isinstance(e, Error):
                    self._cancel(req.id, keep_grant)  # KeyboardInterrupt, ...: leave nothing behind
                raise

    def _await(self, rid: int, limit: Optional[float]) -> _proto.Reply:
        end = None if limit is None else time.monotonic() + limit
        while True:
            left = None if end is None else max(0.0, end - time.monotonic())
            for msg in self._poll(left):
                if isinstance(msg, _proto.Reply) and msg.id == rid:
                    return msg
            if self._proto.refusal is not None:
                raise self._proto.refusal
            if self._proto.closed:
                raise Unavailable("the connection to haspd was lost, and every lease taken "
                                  "through it")
            if end is not None and time.monotonic() >= end:
                self._drop()
                raise Unavailable("haspd at %s did not answer within %.1f s; the connection "
                                  "(and every lease of it) was dropped" % (self.path, limit))

    def _cancel(self, rid: int, keep_grant: Optional[Lease] = None) -> None:
        """Cancels waiting request rid; if it was granted meanwhile, releases
        the grant (a convert's grant is kept: keep_grant, its lease, has its
        new mode); if anything fails, drops the connection."""
        try:
            req = self._proto.request("cancel", request=rid)
            self._send(req.data)
            end = time.monotonic() + self.request_timeout
            done = granted = None
            while done is None and time.monotonic() < end and not self._proto.closed:
                for msg in self._poll(end - time.monotonic()):
                    if isinstance(msg, _proto.Reply) and msg.id == rid and msg.ok:
                        granted = msg.get("lease")
                        if keep_grant is not None:
                            keep_grant._converted(msg)
                            granted = None
                    if isinstance(msg, _proto.Reply) and msg.id == req.id:
                        done = msg
            if done is None:
                self._drop()
            elif granted is not None:
                rel = self._proto.request("release", lease=granted)
                self._send(rel.data)
                self._await(rel.id, self.request_timeout)
        except BaseException:
            self._drop()


def lock(key: str, *, shared: bool = False, timeout: Optional[float] = None,
         owner: Optional[str] = None, message: Optional[str] = None,
         socket: Optional[PathLike] = None, name: Optional[str] = None,
         ttl: Optional[float] = None, limit: Optional[int] = None) -> Lease:
    """A lease on key through a Client of its own, closed with the lease::

        with hasp.lock("db-migrate", timeout=5) as lease:
            ...
        with hasp.lock("builds", limit=4):    # one of 4 places on a semaphore
            ...
    """
    c = Client(socket, name)
    try:
        lease = c.lock(key, shared=shared, timeout=timeout, owner=owner, message=message,
                       ttl=ttl, limit=limit)
    except BaseException:
        c.close()
        raise
    lease._owns_client = True
    return lease


def lock_many(keys: Iterable[KeySpec], *, shared: bool = False,
              timeout: Optional[float] = None, owner: Optional[str] = None,
              message: Optional[str] = None, socket: Optional[PathLike] = None,
              name: Optional[str] = None) -> Lease:
    """One lease over several keys (see :meth:`Client.lock_many`) through a
    Client of its own, closed with the lease::

        with hasp.lock_many(["accounts/alice", "accounts/bob"], timeout=5):
            ...
    """
    c = Client(socket, name)
    try:
        lease = c.lock_many(keys, shared=shared, timeout=timeout, owner=owner,
                            message=message)
    except BaseException:
        c.close()
        raise
    lease._owns_client = True
    return lease


def lock_file(path: PathLike, *, shared: bool = False, timeout: Optional[float] = None,
              owner: Optional[str] = None, message: Optional[str] = None,
              socket: Optional[PathLike] = None, name: Optional[str] = None,
              create_mode: int = 0o666, ttl: Optional[float] = None) -> Lease:
    """A lease on a file through a Client of its own, closed with the lease."""
    c = Client(socket, name)
    try:
        lease = c.lock_file(path, shared=shared, timeout=timeout, owner=owner,
                            message=message, create_mode=create_mode, ttl=ttl)
    except BaseException:
        c.close()
        raise
    lease._owns_client = True
    return lease


def checkout(key: Optional[str] = None, *, path: Optional[PathLike] = None,
             shared: bool = False, timeout: Optional[float] = None, ttl: Optional[float] = None,
             owner: Optional[str] = None, message: Optional[str] = None,
             socket: Optional[PathLike] = None, name: Optional[str] = None,
             create_mode: int = 0o666) -> Checkout:
    """Checks out key, or the file at path, through a Client of its own
    (closed before returning: the checkout outlives it); as
    :meth:`Client.checkout`::

        co = hasp.checkout("part-7.mcam", ttl=86400, owner="alice")
        ...
        hasp.checkin(co.token)        # from this process or any other
    """
    with Client(socket, name) as c:
        return c.checkout(key, path=path, shared=shared, timeout=timeout, ttl=ttl, owner=owner,
                          message=message, create_mode=create_mode)


def checkin(token: TokenLike = None, *, key: Optional[str] = None,
            path: Optional[PathLike] = None, socket: Optional[PathLike] = None,
            name: Optional[str] = None) -> int:
    """Ends a checkout by its token, or this uid's checkout on key or path;
    as :meth:`Client.checkin`. Returns the lease id ended. A Checkout
    given is looked for at its own socket, unless socket says otherwise."""
    with Client(checkouts.socket_of(token, socket), name) as c:
        return c.checkin(token, key=key, path=path)


def renew(token: TokenLike = None, *, key: Optional[str] = None,
          path: Optional[PathLike] = None, ttl: Optional[float] = None,
          socket: Optional[PathLike] = None, name: Optional[str] = None) -> float:
    """Restarts a checkout's time-to-live (by token, or this uid's on key
    or path); as :meth:`Client.renew`. Returns the seconds until it
    expires. A Checkout given is looked for at its own socket, unless
    socket says otherwise."""
    with Client(checkouts.socket_of(token, socket), name) as c:
        return c.renew(token, key=key, path=path, ttl=ttl)

