"""py-filelock's API on hasp: ``from hasp import FileLock, Timeout``.

The lock is a hasp file lease (so also a real flock(2) lock, held by haspd),
taken through a connection of its own that lives while the lock is held. The
daemon queues waiters in order, so nothing polls: ``poll_interval`` is
accepted and ignored. The lock file is created if missing (with ``mode``
minus the umask) and never truncated or removed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
import warnings
from typing import Any, Optional
from weakref import WeakValueDictionary

from .client import Client, Lease
from .errors import Busy, Timeout

__all__ = ["FileLock", "SoftFileLock", "UnixFileLock", "BaseFileLock", "AcquireReturnProxy"]

_LOGGER = logging.getLogger("hasp")


def singleton(cls: Any, lock_file: Any, params: Any) -> Any:
    """The one object of cls for lock_file's absolute path (is_singleton):
    a new one, or the existing one if made with the same params."""
    path = os.path.abspath(os.fspath(lock_file))
    instance = cls._instances.get(path)
    if instance is None:
        instance = object.__new__(cls)
        cls._instances[path] = instance
        return instance
    if instance._params != params:
        raise ValueError("singleton lock created with different arguments: %r, not %r"
                         % (params, instance._params))
    return instance


class AcquireReturnProxy:
    """What acquire() returns: usable in ``with``, releasing on exit."""

    def __init__(self, lock: "FileLock") -> None:
        self.lock = lock

    def __enter__(self) -> "FileLock":
        return self.lock

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.lock.release()


class _Context:
    """What one holder (a thread, or every thread) knows of the lock."""

    def __init__(self, lock_file: str, timeout: float, mode: int, blocking: bool) -> None:
        self.lock_file = lock_file
        self.timeout = timeout
        self.mode = mode
        self.blocking = blocking
        self.lease: Optional[Lease] = None
        self.lock_counter = 0
        # The connection, kept between acquires: one round trip to acquire
        # and one to release, not a connection each time.
        self.client: Optional[Client] = None

    def connection(self, socket: Any) -> Client:
        """The connection to ask with: the one kept, or a new one after a
        fork (the parent's is the parent's) or once it ended."""
        c = self.client
        if c is not None and (c.closed or c._pid != os.getpid()):
            c.close()
            c = None
        if c is None:
            c = self.client = Client(socket)
        return c

    def disconnect(self) -> None:
        """Ends the kept connection, if any (its session, and any lease)."""
        c, self.client = self.client, None
        if c is not None:
            c.close()


class _ThreadLocalContext(_Context, threading.local):
    pass


class FileLock(contextlib.ContextDecorator):
    """A lock on ``lock_file``, as py-filelock's ``FileLock`` (3.10 and later).

    :param lock_file: the lock file's path, created if missing, never
        truncated.
    :param timeout: the default timeout of acquire(), in seconds; negative:
        wait for ever; 0: one attempt.
    :param mode: the permissions a missing lock file is created with (minus
        the umask).
    :param thread_local: whether each thread has its own state (lock counter
        and lease), so that threads exclude each other (the default, as in
        filelock 3.10+); False shares one lock among threads, reentrantly.
    :param blocking: the default of acquire()'s ``blocking``.
    :param is_singleton: one object per lock file path (per class): creating
        it again gives the same object, and must pass the same arguments.
    :param socket: haspd's socket (hasp's own addition; default:
        :func:`hasp.default_socket`).
    """

    _instances: "WeakValueDictionary[str, FileLock]"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._instances = WeakValueDictionary()

    def __new__(cls, lock_file: Any, timeout: float = -1, mode: int = 0o644,
                thread_local: bool = True, *, blocking: bool = True,
                is_singleton: bool = False, **kwargs: Any) -> "FileLock":
        if not is_singleton:
            return super().__new__(cls)
        return singleton(cls, lock_file, (timeout, mode, thread_local, blocking,
                                          kwargs.get("socket")))

    def __init__(self, lock_file: Any, timeout: float = -1, mode: int = 0o644,
                 thread_local: bool = True, *, blocking: bool = True,
                 is_singleton: bool = False, socket: Optional[str] = None) -> None:
        if is_singleton and getattr(self, "_initialized", False):
            return
        self._initialized = True
        self._is_thread_local = thread_local
        self._is_singleton = is_singleton
        self._socket = socket
        self._params = (timeout, mode, thread_local, blocking, socket)
        ctx_cls = _ThreadLocalContext if thread_local else _Context
        self._context: _Context = ctx_cls(os.fspath(lock_file), timeout, mode, blocking)
        # Serializes the threads of a shared (not thread-local) context: one
        # of them asks the daemon, the others find the lock held.
        self._thread_lock = threading.Lock()

    # -- properties, as filelock's -------------------------------------------

    def is_thread_local(self) -> bool:
        """Whether each thread has its own state."""
        return self._is_thread_local

    @property
    def is_singleton(self) -> bool:
        return self._is_singleton

    @property
    def lock_file(self) -> str:
        """The lock file's path."""
        return self._context.lock_file

    @property
    def timeout(self) -> float:
        """The default timeout of acquire(), in seconds."""
        return self._context.timeout

    @timeout.setter
    def timeout(self, value: Any) -> None:
        self._context.timeout = float(value)

    @property
    def blocking(self) -> bool:
        """The default of acquire()'s blocking."""
        return self._context.blocking

    @blocking.setter
    def blocking(self, value: bool) -> None:
        self._context.blocking = value

    @property
    def mode(self) -> int:
        """The permissions a missing lock file is created with."""
        return self._context.mode

    @property
    def is_locked(self) -> bool:
        """Whether this object (this thread, if thread-local) holds the lock."""
        return self._context.lease is not None

    @property
    def lock_counter(self) -> int:
        """How many acquire()s wait for their release()."""
        return self._context.lock_counter

    @property
    def lease(self) -> Optional[Lease]:
        """hasp's addition: the lease while held (``.fence``, ``.lost``), else None."""
        return self._context.lease

    # -- acquire and release ------------------------------------------------

    def acquire(self, timeout: Optional[float] = None, poll_interval: float = 0.05, *,
                poll_intervall: Optional[float] = None,
                blocking: Optional[bool] = None) -> AcquireReturnProxy:
        """Acquires the lock, or counts one more acquire if held already.

        :param timeout: seconds; None: the ``timeout`` property; negative:
            for ever; 0: one attempt.
        :param poll_interval: ignored: haspd grants waiters in order, at once.
        :param blocking: False: one attempt (as timeout 0); None: the
            ``blocking`` property.
        :raises Timeout: not acquired in time (``.holders`` says who holds it).
        :return: a proxy that releases the lock when its ``with`` ends.
        """
        ctx = self._context
        if timeout is None:
            timeout = ctx.timeout
        if blocking is None:
            blocking = ctx.blocking
        if poll_intervall is not None:
            warnings.warn("use poll_interval instead of poll_intervall", DeprecationWarning,
                          stacklevel=2)
        wait: Optional[float] = 0.0 if not blocking else (None if timeout < 0 else timeout)
        ctx.lock_counter += 1
        try:
            if ctx.lease is None:
                self._acquire_lease(ctx, wait)
        except BaseException:
            ctx.lock_counter = max(0, ctx.lock_counter - 1)
            raise
        return AcquireReturnProxy(self)

    def _acquire_lease(self, ctx: _Context, wait: Optional[float]) -> None:
        # A shared context: one thread at a time asks; the others then find
        # the lock held. Waiting for the thread lock counts against the timeout.
        start = time.monotonic()
        if not self._thread_lock.acquire(timeout=-1 if wait is None else wait):
            raise Timeout(ctx.lock_file)
        try:
            if ctx.lease is not None:
                return
            if wait is not None:
                wait = max(0.0, wait - (time.monotonic() - start))
            client = ctx.connection(self._socket)
            try:
                _LOGGER.debug("Attempting to acquire lock %s on %s", id(self), ctx.lock_file)
                ctx.lease = client.lock_file(ctx.lock_file, timeout=wait,
                                             create_mode=ctx.mode)
                _LOGGER.debug("Lock %s acquired on %s", id(self), ctx.lock_file)
            except (Busy, Timeout) as e:  # the connection stays, for the next try
                raise Timeout(ctx.lock_file, holders=[h.raw for h in e.holders],
                              detail=e.detail) from None
            except BaseException:
                ctx.disconnect()  # in a state unknown
                raise
        finally:
            self._thread_lock.release()

    def release(self, force: bool = False) -> None:
        """Counts one release; the lock goes when the count reaches 0, or at
        once with force. Raises :class:`hasp.LeaseLost` if the lock had been
        taken away meanwhile (revoked, or haspd gone): the section it guarded
        was not protected to its end."""
        ctx = self._context
        if ctx.lease is None:
            return
        ctx.lock_counter -= 1
        if ctx.lock_counter > 0 and not force:
            return
        lease, ctx.lease = ctx.lease, None
        ctx.lock_counter = 0
        _LOGGER.debug("Attempting to release lock %s on %s", id(self), ctx.lock_file)
        try:
            lease.release()
        except BaseException:
            ctx.disconnect()  # a lost lease, or a connection in a state unknown
            raise
        _LOGGER.debug("Lock %s released on %s", id(self), ctx.lock_file)

    def __enter__(self) -> "FileLock":
        self.acquire()
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.release()

    def __del__(self) -> None:
        try:
            self.release(force=True)
        except Exception:
            pass
        try:
            self._context.disconnect()
        except Exception:
            pass

    def __repr__(self) -> str:
        return "<%s %r%s>" % (type(self).__name__, self.lock_file,
                              " locked" if self.is_locked else "")


FileLock._instances = WeakValueDictionary()

#: filelock's other names for the same thing: with hasp there is one kind.
SoftFileLock = FileLock
UnixFileLock = FileLock
BaseFileLock = FileLock

