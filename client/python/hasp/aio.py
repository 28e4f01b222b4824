"""hasp for asyncio: an async Client, rapfiles' ``lock_file`` /
``lock_file_shared`` and file helpers, and py-filelock's ``AsyncFileLock``.

Asyncio-native: no threads, no executor. The connection is a non-blocking
Unix socket driven by the loop's ``add_reader`` / ``add_writer`` (asyncio's
streams cannot pass descriptors; a file lease sends its file's descriptor
with SCM_RIGHTS, as libhasp does), and the protocol is :mod:`hasp._proto`,
the same sans-IO module the blocking client drives. One :class:`Client` may
have any number of requests in flight; replies are matched by id::

    import hasp.aio

    async with hasp.aio.lock_file("counter.txt"):          # rapfiles' spelling
        n = int(await hasp.aio.read_file("counter.txt") or 0)
        await hasp.aio.atomic_write_file("counter.txt", str(n + 1))

Cancelling a task that waits for a lock cancels the request in haspd (the
``cancel`` op); if the grant crossed the cancel, the lease is released, so
nothing is left held.
"""

from __future__ import annotations

import array
import asyncio
import errno
import os
import socket as _socket
import time
from collections import deque
from typing import Any, Awaitable, Callable, Deque, Dict, Iterable, Optional, Set, Tuple
from weakref import WeakValueDictionary

from . import _held, _paths, _proto, checkouts
from .checkouts import Checkout, TokenLike
from .client import (KeySpec, LeaseState, PathLike, Session, acquire_fields, convert_fields,
                     default_name, lease_converted, lease_failure, lease_gone, lease_renewed,
                     multikey_fields, multikey_granted)
from .errors import Busy, Error, Timeout, Unavailable, Untrusted
from .filelock import singleton
from .files import Contents, _Replacement, read_file_bytes as _read_bytes, write_file as _write

__all__ = ["Client", "Lease", "lock", "lock_file", "lock_file_shared", "checkout", "checkin",
           "renew", "AsyncFileLock",
           "AsyncAcquireReturnProxy", "BaseAsyncFileLock", "read_file", "read_file_bytes",
           "write_file", "write_file_bytes", "atomic_write_file", "atomic_write_file_bytes"]


class Lease(LeaseState):
    """A granted lease of an asyncio :class:`Client`.

    ``id``, ``fence``, ``key`` (None for a file), ``path`` (None for a key),
    ``mode``, ``client``, ``released``, ``lost``. ``async with lease:``
    releases it at the end. ``release()`` sends the release at once and
    returns an awaitable for the daemon's answer, so both ``lease.release()``
    (as rapfiles' ``FileLock.release()``) and ``await lease.release()`` work;
    awaiting it raises :class:`hasp.LeaseLost` if the lease had been lost.
    """

    client: "Client"

    def __init__(self, client: "Client", reply: _proto.Reply, key: Optional[str],
                 path: Optional[str], mode: str) -> None:
        super().__init__(client, reply, key, path, mode)
        self._done: Optional[asyncio.Future] = None

    async def upgrade(self, timeout: Optional[float] = None) -> None:
        """As :meth:`hasp.Lease.upgrade`: makes this shared lease
        exclusive, once the other holders have left (up to timeout seconds;
        None: for ever), with a new fence. Cancelling the task withdraws the
        upgrade; the lease stays shared (or, if the grant crossed the
        withdrawal, exclusive)."""
        await self.client._convert(self, "exclusive", timeout)

    async def downgrade(self) -> None:
        """As :meth:`hasp.Lease.downgrade`: makes this exclusive lease
        shared, at once, with the same fence."""
        await self.client._convert(self, "shared", None)

    async def renew(self, ttl: Optional[float] = None) -> float:
        """As :meth:`hasp.Lease.renew`: restarts the lease's time-to-live
        (ttl seconds, or the one it has); the seconds until it expires."""
        if self.released:
            raise Error("the lease %d on %r was released" % (self.id, self.name))
        return await self.client._renew_lease(self, ttl)

    def release(self) -> "asyncio.Future[None]":
        """Releases the lease (the request is sent now); await the result for
        the daemon's answer, which for a named key's lease is not waited for
        (it is done once the release is written: haspd serves it before
        anything this client sends later). A second call returns the first one's result;
        one after a checkin by key or path that ended it, None."""
        if self._done is not None:
            return self._done
        if self.released:  # checked in by key or path through its client
            self._done = asyncio.get_running_loop().create_future()
            self._done.set_result(None)
            return self._done
        self.released = True
        _held.unregister(self)
        self._done = self.client._release(self)
        if self._owns_client:
            self._done.add_done_callback(lambda _f: self.client._abort())
        return self._done

    async def __aenter__(self) -> "Lease":
        return self

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            await self._release_and_close()
            return
        try:
            await self._release_and_close()
        except Error:
            pass  # the body's exception matters more

    async def _release_and_close(self) -> None:
        try:
            await self.release()
        finally:
            if self._owns_client:
                await self.client.close()

    async def _adopt_async(self, fd: int, path: str) -> None:
        await self.client._adopt(self, fd, path)

    def __repr__(self) -> str:
        state = " released" if self.released else ""
        return "<hasp.aio.Lease %d %s %r fence %s%s>" % (self.id, self.mode, self.name,
                                                        self.fence, state)


async def _let_go(lease: "Lease") -> None:
    """As hasp.client._let_go, for an asyncio lease."""
    try:
        await lease.release()
    except Error:
        pass


class Client(Session):
    """One session with haspd, for asyncio: ``async with hasp.aio.Client()
    as c`` (or ``c = await hasp.aio.Client.connect()``). The socket is
    checked as the blocking client checks it (:class:`hasp.Untrusted`).

    Any number of calls may wait at once on one Client (each on a different
    key or file: a session holds or waits for one lease per resource).
    """

    #: Seconds a reply may take beyond the request's own timeout before the
    #: daemon is deemed to have stopped answering (the connection is then
    #: dropped, with its leases, and Unavailable raised).
    reply_margin = 10.0
    #: The same for requests that do not wait.
    request_timeout = 30.0
    _kind = "hasp.aio.Client"

    def __init__(self, socket: Optional[PathLike] = None, name: Optional[str] = None) -> None:
        self.path = os.fsdecode(socket) if socket is not None else _paths.default_socket()
        self.name = default_name() if name is None else name
        _proto.check_text("the client name", self.name, _proto.CLIENT_MAX)
        self._pid = os.getpid()
        self._sock: Optional[_socket.socket] = None
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._proto = _proto.Protocol()
        self._pending: Dict[int, asyncio.Future] = {}
        self._out: Deque[Tuple[memoryview, Optional[int]]] = deque()
        self._writing = False
        self._leases: Dict[int, Lease] = {}
        self._tasks: Set[asyncio.Task] = set()
        self._eof: Optional[asyncio.Future] = None
        self._user_closed = False
        self._opened = False

    @classmethod
    async def connect(cls, socket: Optional[PathLike] = None,
                      name: Optional[str] = None) -> "Client":
        """A connected Client."""
        c = cls(socket, name)
        await c.open()
        return c

    async def open(self) -> None:
        """Connects (once)."""
        if self._opened:
            return
        self._opened = True
        loop = asyncio.get_running_loop()
        try:
            trust = _paths.check_socket(self.path)
        except Untrusted:
            raise
        except OSError as e:
            raise Unavailable("cannot connect to haspd at %s: %s"
                              % (self.path, e.strerror or e)) from e
        sock = _socket.socket(_socket.AF_UNIX,
                              _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC | _socket.SOCK_NONBLOCK)
        try:
            await loop.sock_connect(sock, self.path)
            _paths.check_peer(sock, self.path, trust)
        except Untrusted:
            sock.close()
            raise
        except OSError as e:
            sock.close()
            raise Unavailable("cannot connect to haspd at %s: %s"
                              % (self.path, e.strerror or e)) from e
        except BaseException:
            sock.close()
            raise
        self._loop = loop
        self._sock = sock
        self._eof = loop.create_future()
        loop.add_reader(sock.fileno(), self._on_readable)
        hello = self._proto.request("hello", client=self.name, version=_proto.VERSION)
        self._pending[hello.id] = loop.create_future()
        self._pending[hello.id].add_done_callback(_quiet)
        self._send(hello.data)

    # -- the public calls --------------------------------------------------

    async def lock(self, key: str, *, shared: bool = False, timeout: Optional[float] = None,
                   owner: Optional[str] = None, message: Optional[str] = None,
                   ttl: Optional[float] = None, limit: Optional[int] = None) -> Lease:
        """A lease on the named lock key; as :meth:`hasp.Client.lock` (limit:
        one of that many places on a semaphore)."""
        _proto.check_text("the key", key, _proto.KEY_MAX, empty=False)
        return await self._acquire(key=key, path=None, fd=None, shared=shared, timeout=timeout,
                                   owner=owner, message=message, ttl=ttl, limit=limit)

    async def lock_many(self, keys: Iterable[KeySpec], *, shared: bool = False,
                        timeout: Optional[float] = None, owner: Optional[str] = None,
                        message: Optional[str] = None) -> Lease:
        """One lease over several keys, all-or-nothing; as
        :meth:`hasp.Client.lock_many`. Cancelling it withdraws the request
        (a grant that crossed the withdrawal is released)."""
        fields, names, mode, tms = multikey_fields(keys, shared, timeout, owner, message)
        req, fut = self._request("acquire", fields, None)
        try:
            rep = await self._reply(fut, None if tms is None else tms / 1000.0 + self.reply_margin)
        except asyncio.CancelledError:
            await self._withdraw_shielded(req.id, fut)
            raise
        return multikey_granted(self, rep, names, mode, Lease)

    async def lock_file(self, path: PathLike, *, shared: bool = False,
                        timeout: Optional[float] = None, owner: Optional[str] = None,
                        message: Optional[str] = None, create_mode: int = 0o666,
                        ttl: Optional[float] = None) -> Lease:
        """A lease on a file, created if missing; as :meth:`hasp.Client.lock_file`
        (the descriptor goes to haspd with SCM_RIGHTS)."""
        spath = _paths.absolute(os.fsdecode(os.fspath(path)))
        deadline = None if timeout is None else time.monotonic() + timeout
        self._usable()
        while True:
            fd, st = _paths.open_lock_file_stat(spath, create_mode)
            lease = await self._acquire(key=None, path=spath, fd=fd, shared=shared,
                                        timeout=_paths.remaining(deadline), owner=owner,
                                        message=message, ttl=ttl)
            if await self._settle(lease, spath, st, create_mode):
                return lease

    async def _settle(self, lease: Lease, path: str, st: os.stat_result,
                      create_mode: int) -> bool:
        """As :meth:`hasp.Client._settle`: whether lease holds the file path
        names now, the file that replaced st adopted if need be."""
        if _paths.replaced_since(path, st):
            try:
                fd = _paths.open_lock_file(path, create_mode, create=False)
            except FileNotFoundError:
                fd = -1  # gone since: the lease stands, as flock's would
            except BaseException:
                await _let_go(lease)
                raise
            try:
                if fd >= 0:
                    st = os.fstat(fd)
                    await self._adopt(lease, fd, path)
            except Busy:
                await lease.release()
                return False
            except BaseException:
                await _let_go(lease)
                raise
            finally:
                if fd >= 0:
                    os.close(fd)
        _held.register(lease, st)
        return True

    async def checkout(self, key: Optional[str] = None, *, path: Optional[PathLike] = None,
                       shared: bool = False, timeout: Optional[float] = None,
                       ttl: Optional[float] = None, owner: Optional[str] = None,
                       message: Optional[str] = None, create_mode: int = 0o666) -> Checkout:
        """Checks out key or the file at path; as :meth:`hasp.Client.checkout`
        (a file replaced since its opening is asked for again). Cancelling
        the wait withdraws the request (and checks in a grant that crossed
        the cancel)."""
        key, spath = checkouts.resource(key, path)
        self._usable()
        if spath is None:
            rep, mode = await self._grant(key=key, path=None, fd=None, shared=shared,
                                          timeout=timeout, owner=owner, message=message,
                                          ttl=ttl, detach=True)
            return Checkout(rep, key, None, mode, self.path)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            fd, st = _paths.open_lock_file_stat(spath, create_mode)
            rep, mode = await self._grant(key=None, path=spath, fd=fd, shared=shared,
                                          timeout=_paths.remaining(deadline), owner=owner,
                                          message=message, ttl=ttl, detach=True)
            co = Checkout(rep, None, spath, mode, self.path)
            if not _paths.replaced_since(spath, st):
                return co
            await self.checkin(co)  # a file replaced since its opening: ask again

    async def checkin(self, token: TokenLike = None, *, key: Optional[str] = None,
                      path: Optional[PathLike] = None) -> int:
        """Ends a checkout; as :meth:`hasp.Client.checkin`."""
        fields, spath = checkouts.target_fields(token, key, path)
        return self._checked_in(await self._call_on("release", fields, spath))

    async def renew(self, token: TokenLike = None, *, key: Optional[str] = None,
                    path: Optional[PathLike] = None, ttl: Optional[float] = None) -> float:
        """Restarts a checkout's (or a lease's) time-to-live; as
        :meth:`hasp.Client.renew`."""
        fields, spath = checkouts.target_fields(token, key, path)
        fields["ttl_ms"] = _proto.ttl_ms(ttl)
        now = time.time()
        return self._renewed(await self._call_on("renew", fields, spath), token, now)

    async def ping(self) -> float:
        """Round trip to the daemon, in seconds."""
        start = time.monotonic()
        await self._call("ping")
        return time.monotonic() - start

    async def close(self) -> None:
        """Ends the session (every lease of it is released); returns once
        haspd has ended it, when leases were held."""
        self._user_closed = True
        sock = self._sock
        if sock is None:
            return
        if self._leases and not self._proto.closed and os.getpid() == self._pid:
            try:
                self._flush()
                if not self._out:
                    sock.shutdown(_socket.SHUT_WR)
                    assert self._eof is not None
                    await asyncio.wait_for(asyncio.shield(self._eof), self.request_timeout)
            except (OSError, asyncio.TimeoutError):
                pass
        self._abort()

    @property
    def closed(self) -> bool:
        return self._sock is None or self._proto.closed

    async def __aenter__(self) -> "Client":
        await self.open()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    def __del__(self) -> None:
        try:
            if self._sock is not None and os.getpid() == self._pid:
                self._sock.close()
        except Exception:
            pass

    # -- requests ----------------------------------------------------------

    def _usable(self) -> None:
        if not self._opened:
            raise Error("the client is not open: await client.open() or use async with")
        super()._usable()

    def _request(self, op: str, fields: Optional[Dict[str, Any]] = None,
                 fd: Optional[int] = None) -> Tuple[_proto.Request, asyncio.Future]:
        """Sends a request now; its reply will complete the future. fd, if
        given, is owned by the send queue from here on (closed once sent)."""
        try:
            self._usable()
            req = self._proto.request(op, **(fields or {}))
        except BaseException:
            if fd is not None:
                os.close(fd)
            raise
        assert self._loop is not None
        fut = self._loop.create_future()
        self._pending[req.id] = fut
        self._send(req.data, fd)
        return req, fut

    async def _reply(self, fut: asyncio.Future, limit: Optional[float]) -> _proto.Reply:
        """The reply fut will carry; past limit seconds the connection is
        dropped. The future itself is never cancelled from here (shielded),
        so that a cancelled caller can still see how its request ended."""
        try:
            if limit is None:
                return await asyncio.shield(fut)
            return await asyncio.wait_for(asyncio.shield(fut), limit)
        except asyncio.TimeoutError:
            if fut.done():
                return fut.result()
            self._lost(Unavailable("haspd at %s did not answer within %.1f s; the connection "
                                   "(and every lease of it) was dropped" % (self.path, limit)))
            return await fut

    async def _call(self, op: str, fields: Optional[Dict[str, Any]] = None,
                    fd: Optional[int] = None) -> _proto.Reply:
        _req, fut = self._request(op, fields, fd)
        return await self._reply(fut, self.request_timeout)

    async def _grant(self, *, key: Optional[str], path: Optional[str], fd: Optional[int],
                     shared: bool, timeout: Optional[float], owner: Optional[str],
                     message: Optional[str], ttl: Optional[float],
                     detach: bool, limit: Optional[int] = None) -> Tuple[_proto.Reply, str]:
        """Acquires (fd, if any, is sent and closed); the grant and its mode,
        or raises the refusal (naming the holder in a checkout's Timeout)."""
        try:
            fields, mode, tms = acquire_fields(key, path, shared, timeout, owner, message, ttl,
                                               detach, limit)
        except BaseException:
            if fd is not None:
                os.close(fd)
            raise
        req, fut = self._request("acquire", fields, fd)
        limit = None if tms is None else tms / 1000.0 + self.reply_margin
        try:
            rep = await self._reply(fut, limit)
        except asyncio.CancelledError:
            await self._withdraw_shielded(req.id, fut)
            raise
        if not rep.ok:
            raise _proto.error_for(rep, key=key, path=path, explain=detach)
        refusal = checkouts.untokened(rep, self.path) if detach else None
        if refusal is not None:
            await self._call("release", {"lease": rep.get("lease")})
            raise refusal
        return rep, mode

    async def _acquire(self, *, key: Optional[str], path: Optional[str], fd: Optional[int],
                       shared: bool, timeout: Optional[float], owner: Optional[str],
                       message: Optional[str], ttl: Optional[float] = None,
                       limit: Optional[int] = None) -> Lease:
        rep, mode = await self._grant(key=key, path=path, fd=fd, shared=shared,
                                      timeout=timeout, owner=owner, message=message, ttl=ttl,
                                      detach=False, limit=limit)
        lease = Lease(self, rep, key, path, mode)
        self._leases[lease.id] = lease
        return lease

    async def _call_on(self, op: str, fields: Dict[str, Any],
                       path: Optional[str]) -> _proto.Reply:
        """A request about a key, a token, or the file at path (opened, not
        created; its descriptor travels with the request)."""
        fd = None if path is None else _paths.open_lock_file(path, create=False)
        return await self._call(op, fields, fd)

    async def _renew_lease(self, lease: Lease, ttl: Optional[float]) -> float:
        fields = {"lease": lease.id, "ttl_ms": _proto.ttl_ms(ttl)}
        if self._lease_lost(lease.id):
            raise self._lost_before(lease, "before its renewal")
        try:
            rep = await self._call("renew", fields)
        except Unavailable as e:
            raise lease_gone(lease, e) from e
        return lease_renewed(rep, lease)

    async def _convert(self, lease: Lease, mode: str, timeout: Optional[float]) -> None:
        fields, tms = convert_fields(lease, mode, timeout)
        if self._lease_lost(lease.id):
            raise self._lost_before(lease, "before its conversion")
        req, fut = self._request("convert", fields)
        limit = None if tms is None else tms / 1000.0 + self.reply_margin
        try:
            rep = await self._reply(fut, limit)
        except asyncio.CancelledError:
            await self._withdraw_shielded(req.id, fut, keep=True)
            if fut.done() and not fut.cancelled() and fut.exception() is None and fut.result().ok:
                lease._converted(fut.result())
            raise
        except Unavailable as e:
            raise lease_gone(lease, e) from e
        lease_converted(rep, lease)

    async def _withdraw_shielded(self, rid: int, fut: asyncio.Future, keep: bool = False) -> None:
        """Withdraws request rid in a task of its own, waiting for it to end
        unless cancelled again (the withdrawal then goes on by itself)."""
        assert self._loop is not None
        task = self._loop.create_task(self._withdraw(rid, fut, keep))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            pass

    async def _withdraw(self, rid: int, fut: asyncio.Future, keep: bool = False) -> None:
        """Cancels waiting acquire rid; if it was granted meanwhile (the grant
        crossed the cancel), releases the grant, unless keep (a convert's,
        whose lease stays). If the outcome cannot be
        known, drops the connection, which ends everything of the session."""
        if self.closed:
            return
        try:
            _creq, cfut = self._request("cancel", {"request": rid})
            rep = await asyncio.wait_for(asyncio.shield(fut), self.request_timeout)
            await asyncio.wait_for(asyncio.shield(cfut), self.request_timeout)
            if rep.ok and isinstance(rep.get("lease"), int) and not keep:
                _rreq, rfut = self._request("release", {"lease": rep.get("lease")})
                await asyncio.wait_for(asyncio.shield(rfut), self.request_timeout)
        except Unavailable:
            pass  # the connection ended: the session, and all of it, with it
        except (Error, asyncio.TimeoutError):
            self._abort()

    def _release(self, lease: Lease) -> "asyncio.Future[None]":
        assert self._loop is not None
        done: asyncio.Future = self._loop.create_future()
        self._leases.pop(lease.id, None)
        if lease.key is not None:
            # What haspd sent already (a revoke, the end) is read first, as
            # the blocking client's _lease_lost() reads it: the release of a
            # lease known lost raises, whether or not the loop ran since.
            self._on_readable()
        if self._lease_lost(lease.id):
            done.set_exception(self._lost_before(lease, "before its release"))
            return done
        _req, fut = self._request("release", {"lease": lease.id})
        if lease.key is not None and not self._writing:
            # Written, not waited for, as the blocking client does (see
            # hasp.Client._release_unawaited): the answer is dropped. While
            # the socket takes no more (haspd is slow to read), it is awaited
            # as a file's is: its answer says that it arrived.
            fut.add_done_callback(lambda f: f.cancelled() or f.exception())
            done.set_result(None)
            return done

        def finish(f: asyncio.Future) -> None:
            if done.done():
                return
            if f.cancelled():
                done.cancel()
                return
            e = f.exception()
            if e is not None:
                done.set_exception(lease_gone(lease, e))
            elif f.result().ok:
                done.set_result(None)
            else:
                done.set_exception(lease_failure(f.result(), lease))

        fut.add_done_callback(finish)
        return done

    async def _adopt(self, lease: Lease, fd: int, path: str) -> None:
        """haspd adopts the file open on fd into lease's resource (fd stays
        the caller's: a duplicate travels)."""
        if self._lease_lost(lease.id):
            raise self._lost_before(lease, "before the file was replaced")
        try:
            rep = await self._call("adopt", _proto.adopt_fields(lease.id, path), os.dup(fd))
        except Unavailable as e:
            raise lease_gone(lease, e) from e
        if not rep.ok:
            raise lease_failure(rep, lease, adopting=True)

    def _lease_lost(self, lease_id: int) -> bool:
        return lease_id in self._proto.revoked or self._proto.closed or self._sock is None

    # -- the socket --------------------------------------------------------

    def _send(self, data: bytes, fd: Optional[int] = None) -> None:
        self._out.append((memoryview(data), fd))
        if not self._writing:
            self._flush()

    def _flush(self) -> None:
        """Sends what is queued, in order; a descriptor goes in the sendmsg
        of the first bytes of its own line, and nothing after that line's
        newline goes with it."""
        sock = self._sock
        while self._out and sock is not None:
            data, fd = self._out[0]
            try:
                if fd is not None:
                    n = sock.sendmsg([data], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS,
                                               array.array("i", [fd]))])
                    os.close(fd)
                else:
                    n = sock.send(data)
            except (BlockingIOError, InterruptedError):
                if not self._writing and self._loop is not None:
                    self._loop.add_writer(sock.fileno(), self._flush)
                    self._writing = True
                return
            except OSError as e:
                self._lost(Unavailable("cannot send to haspd: %s" % (e.strerror or e)))
                return
            if n >= len(data):
                self._out.popleft()
            else:
                self._out[0] = (data[n:], None)
        if self._writing and self._loop is not None and sock is not None:
            self._loop.remove_writer(sock.fileno())
            self._writing = False

    def _on_readable(self) -> None:
        sock = self._sock
        if sock is None:
            return
        try:
            data = sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as e:
            if e.errno not in (errno.ECONNRESET, errno.EPIPE):
                self._lost(Unavailable("cannot read from haspd: %s" % (e.strerror or e)))
                return
            data = b""
        try:
            msgs = self._proto.receive(data)
        except Error as e:
            self._lost(e)
            return
        for msg in msgs:
            if isinstance(msg, _proto.Reply) and msg.id is not None:
                fut = self._pending.pop(msg.id, None)
                if fut is not None and not fut.done():
                    fut.set_result(msg)
        if self._proto.refusal is not None:
            self._lost(self._proto.refusal)
        elif self._proto.closed:
            self._lost(Unavailable("the connection to haspd was lost, and every lease taken "
                                   "through it"))

    def _lost(self, exc: BaseException) -> None:
        """The connection ended (or is dropped): every waiting call fails
        with exc, and every lease of it is lost."""
        sock, self._sock = self._sock, None
        self._proto.closed = True
        if sock is not None:
            if self._loop is not None:
                self._loop.remove_reader(sock.fileno())
                if self._writing:
                    self._loop.remove_writer(sock.fileno())
            self._writing = False
            sock.close()
        for _data, fd in self._out:
            if fd is not None:
                os.close(fd)
        self._out.clear()
        pending, self._pending = self._pending, {}
        for fut in pending.values():
            if not fut.done():
                fut.set_exception(exc)
                fut.add_done_callback(_quiet)
        if self._eof is not None and not self._eof.done():
            self._eof.set_result(None)

    def _abort(self) -> None:
        """Closes the connection now (haspd ends the session on its own)."""
        self._user_closed = True
        for lease in self._leases.values():
            _held.unregister(lease)
        self._leases.clear()
        self._lost(Unavailable("the client was closed"))


def _quiet(fut: asyncio.Future) -> None:
    """Marks a future's exception as seen (a reply nobody waits for)."""
    if not fut.cancelled():
        fut.exception()


# -- rapfiles' lock_file, and lock(key) ----------------------------------------


class _LeaseContext:
    """``async with`` gives the lease (its own Client, closed with it);
    ``await`` gives the lease too, to release by hand."""

    def __init__(self, socket: Optional[PathLike], name: Optional[str],
                 take: Callable[[Client], Awaitable[Lease]]) -> None:
        self._socket = socket
        self._name = name
        self._take = take
        self.lease: Optional[Lease] = None

    async def _open(self) -> Lease:
        client = Client(self._socket, self._name)
        try:
            await client.open()
            lease = await self._take(client)
        except BaseException:
            client._abort()
            raise
        lease._owns_client = True
        return lease

    def __await__(self) -> Any:
        return self._open().__await__()

    async def __aenter__(self) -> Lease:
        self.lease = await self._open()
        return self.lease

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        assert self.lease is not None
        await self.lease.__aexit__(exc_type, exc, tb)


def lock_file(path: PathLike, exclusive: bool = True, *, shared: Optional[bool] = None,
              timeout: Optional[float] = None, owner: Optional[str] = None,
              message: Optional[str] = None, socket: Optional[PathLike] = None,
              name: Optional[str] = None, create_mode: int = 0o666,
              ttl: Optional[float] = None) -> _LeaseContext:
    """rapfiles' ``lock_file(path, exclusive=True)``: ``async with`` it to
    hold a lease on the file (created if missing), through a connection of
    its own that ends with the lease. ``shared=True`` is the same as
    ``exclusive=False``; the other arguments are :meth:`Client.lock_file`'s.
    """
    is_shared = (not exclusive) if shared is None else shared
    return _LeaseContext(socket, name, lambda c: c.lock_file(
        path, shared=is_shared, timeout=timeout, owner=owner, message=message,
        create_mode=create_mode, ttl=ttl))


def lock_file_shared(path: PathLike, **kwargs: Any) -> _LeaseContext:
    """rapfiles' ``lock_file_shared(path)``: a shared lease on the file."""
    return lock_file(path, exclusive=False, **kwargs)


def lock(key: str, *, shared: bool = False, timeout: Optional[float] = None,
         owner: Optional[str] = None, message: Optional[str] = None,
         socket: Optional[PathLike] = None, name: Optional[str] = None,
         ttl: Optional[float] = None, limit: Optional[int] = None) -> _LeaseContext:
    """A lease on a named key, as :func:`hasp.lock`: ``async with
    hasp.aio.lock("db", timeout=5) as lease`` (``limit=4``: one of four
    places on a semaphore)."""
    return _LeaseContext(socket, name, lambda c: c.lock(
        key, shared=shared, timeout=timeout, owner=owner, message=message, ttl=ttl,
        limit=limit))


# -- checkouts -----------------------------------------------------------------


async def checkout(key: Optional[str] = None, *, path: Optional[PathLike] = None,
                   shared: bool = False, timeout: Optional[float] = None,
                   ttl: Optional[float] = None, owner: Optional[str] = None,
                   message: Optional[str] = None, socket: Optional[PathLike] = None,
                   name: Optional[str] = None, create_mode: int = 0o666) -> Checkout:
    """As :func:`hasp.checkout`, through a Client of its own."""
    async with Client(socket, name) as c:
        return await c.checkout(key, path=path, shared=shared, timeout=timeout, ttl=ttl,
                                owner=owner, message=message, create_mode=create_mode)


async def checkin(token: TokenLike = None, *, key: Optional[str] = None,
                  path: Optional[PathLike] = None, socket: Optional[PathLike] = None,
                  name: Optional[str] = None) -> int:
    """As :func:`hasp.checkin`, through a Client of its own."""
    async with Client(checkouts.socket_of(token, socket), name) as c:
        return await c.checkin(token, key=key, path=path)


async def renew(token: TokenLike = None, *, key: Optional[str] = None,
                path: Optional[PathLike] = None, ttl: Optional[float] = None,
                socket: Optional[PathLike] = None, name: Optional[str] = None) -> float:
    """As :func:`hasp.renew`, through a Client of its own."""
    async with Client(checkouts.socket_of(token, socket), name) as c:
        return await c.renew(token, key=key, path=path, ttl=ttl)


# -- py-filelock's AsyncFileLock -----------------------------------------------


class AsyncAcquireReturnProxy:
    """What AsyncFileLock.acquire() returns: ``async with`` releases."""

    def __init__(self, lock: "AsyncFileLock") -> None:
        self.lock = lock

    async def __aenter__(self) -> "AsyncFileLock":
        return self.lock

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        await self.lock.release()


class AsyncFileLock:
    """py-filelock's ``AsyncFileLock`` (3.15) on a hasp file lease.

    ``AsyncFileLock(lock_file, timeout=-1, mode=0o644, thread_local=False, *,
    blocking=True, is_singleton=False, loop=None, run_in_executor=True,
    executor=None, socket=None)``; ``await acquire(timeout=None,
    poll_interval=0.05, *, blocking=None)`` (reentrant: counts),
    ``await release(force=False)``, ``async with lock``, ``is_locked``,
    ``lock_counter``, ``timeout``, ``blocking``, ``mode``, ``lock_file``.
    ``loop``, ``run_in_executor`` and ``executor`` are accepted and unused:
    nothing runs in a thread. Raises :class:`hasp.Timeout` (``.holders``).
    """

    _instances: "WeakValueDictionary[str, AsyncFileLock]" = WeakValueDictionary()

    def __new__(cls, lock_file: Any, timeout: float = -1, mode: int = 0o644,
                thread_local: bool = False, *, blocking: bool = True,
                is_singleton: bool = False, **kwargs: Any) -> "AsyncFileLock":
        if not is_singleton:
            return super().__new__(cls)
        return singleton(cls, lock_file, (timeout, mode, thread_local, blocking,
                                          kwargs.get("socket")))

    def __init__(self, lock_file: Any, timeout: float = -1, mode: int = 0o644,
                 thread_local: bool = False, *, blocking: bool = True,
                 is_singleton: bool = False, loop: Any = None, run_in_executor: bool = True,
                 executor: Any = None, socket: Optional[str] = None) -> None:
        if is_singleton and getattr(self, "_initialized", False):
            return
        if thread_local and run_in_executor:
            raise ValueError("run_in_executor is not supported when thread_local is True")
        self._initialized = True
        self._is_singleton = is_singleton
        self._params = (timeout, mode, thread_local, blocking, socket)
        self._lock_file = os.fspath(lock_file)
        self._timeout = float(timeout)
        self._mode = mode
        self._blocking = blocking
        self._socket = socket
        self._lease: Optional[Lease] = None
        self._counter = 0
        self._taking: Optional[asyncio.Lock] = None
        self.loop = loop
        self.run_in_executor = run_in_executor
        self.executor = executor

    @property
    def lock_file(self) -> str:
        return self._lock_file

    @property
    def timeout(self) -> float:
        return self._timeout

    @timeout.setter
    def timeout(self, value: Any) -> None:
        self._timeout = float(value)

    @property
    def blocking(self) -> bool:
        return self._blocking

    @blocking.setter
    def blocking(self, value: bool) -> None:
        self._blocking = value

    @property
    def mode(self) -> int:
        return self._mode

    @property
    def is_singleton(self) -> bool:
        return self._is_singleton

    def is_thread_local(self) -> bool:
        return False

    @property
    def is_locked(self) -> bool:
        return self._lease is not None

    @property
    def lock_counter(self) -> int:
        return self._counter

    @property
    def lease(self) -> Optional[Lease]:
        """hasp's addition: the lease while held, else None."""
        return self._lease

    async def acquire(self, timeout: Optional[float] = None, poll_interval: float = 0.05, *,
                      blocking: Optional[bool] = None) -> AsyncAcquireReturnProxy:
        """Acquires the lock (or counts one more acquire if held)."""
        if timeout is None:
            timeout = self._timeout
        if blocking is None:
            blocking = self._blocking
        wait: Optional[float] = 0.0 if not blocking else (None if timeout < 0 else timeout)
        self._counter += 1
        try:
            if self._lease is None:
                await self._take(wait)
        except BaseException:
            self._counter = max(0, self._counter - 1)
            raise
        return AsyncAcquireReturnProxy(self)

    async def _take(self, wait: Optional[float]) -> None:
        if self._taking is None:
            self._taking = asyncio.Lock()
        start = time.monotonic()
        try:
            if wait is None:
                await self._taking.acquire()
            else:
                await asyncio.wait_for(self._taking.acquire(), wait)
        except asyncio.TimeoutError:
            raise Timeout(self._lock_file) from None
        try:
            if self._lease is not None:
                return
            if wait is not None:
                wait = max(0.0, wait - (time.monotonic() - start))
            client = Client(self._socket)
            try:
                await client.open()
                lease = await client.lock_file(self._lock_file, timeout=wait,
                                               create_mode=self._mode)
            except (Busy, Timeout) as e:
                client._abort()
                raise Timeout(self._lock_file, holders=[h.raw for h in e.holders],
                              detail=e.detail) from None
            except BaseException:
                client._abort()
                raise
            lease._owns_client = True
            self._lease = lease
        finally:
            self._taking.release()

    async def release(self, force: bool = False) -> None:
        """Counts one release; the lock goes at 0, or at once with force.
        Raises :class:`hasp.LeaseLost` if it had been taken away meanwhile."""
        if self._lease is None:
            return
        self._counter -= 1
        if self._counter > 0 and not force:
            return
        lease, self._lease = self._lease, None
        self._counter = 0
        await lease._release_and_close()

    async def __aenter__(self) -> "AsyncFileLock":
        await self.acquire()
        return self

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        await self.release()

    def __enter__(self) -> None:
        raise NotImplementedError("Do not use `with` for asyncio locks, use `async with` "
                                  "instead.")

    def __exit__(self, *exc: Any) -> None:
        raise NotImplementedError("Do not use `with` for asyncio locks, use `async with` "
                                  "instead.")

    def __del__(self) -> None:
        lease = getattr(self, "_lease", None)
        if lease is not None:
            try:
                lease.client._abort()
            except Exception:
                pass

    def __repr__(self) -> str:
        return "<%s %r%s>" % (type(self).__name__, self._lock_file,
                              " locked" if self.is_locked else "")


BaseAsyncFileLock = AsyncFileLock
AsyncSoftFileLock = AsyncFileLock
AsyncUnixFileLock = AsyncFileLock


# -- rapfiles' file helpers ----------------------------------------------------
#
# Regular files never make read(2) or write(2) wait for readiness, so these
# do their I/O in the loop's own thread (no executor); fsync blocks the loop
# for its duration.


async def read_file(path: Any) -> str:
    """rapfiles' ``read_file``: the file's contents decoded as UTF-8."""
    return _read_bytes(path).decode("utf-8")


async def read_file_bytes(path: Any) -> bytes:
    """rapfiles' ``read_file_bytes``."""
    return _read_bytes(path)


async def write_file(path: Any, contents: Contents) -> None:
    """rapfiles' ``write_file``: contents (str as UTF-8, or bytes) to path,
    created if missing, truncated otherwise."""
    _write(path, contents)


write_file_bytes = write_file


async def atomic_write_file(path: Any, contents: Contents) -> None:
    """rapfiles' ``atomic_write_file``: as :func:`hasp.atomic_write_file`
    (temporary file, fsync, rename, directory fsync), keeping the lock of a
    lease this process holds on path (an asyncio lease's through its own
    connection, a blocking one's through its client)."""
    rep = _Replacement(path, contents)
    try:
        if rep.lease is not None:
            adopt_async = getattr(rep.lease, "_adopt_async", None)
            if adopt_async is not None:
                await adopt_async(rep.fd, rep.tmp)
            else:
                rep.lease._adopt(rep.fd, rep.tmp)
    except BaseException:
        rep.abort()
        raise
    rep.commit()


atomic_write_file_bytes = atomic_write_file
