"""Watching haspd's lock events: :func:`watch`, over a connection of its own.

::

    for ev in hasp.watch("jobs/"):
        print(ev["event"], ev.get("key", ev.get("path")), ev.get("waited_ms"))

Each event is the daemon's JSON object as a dict: ``event`` (``queued``,
``granted``, ``released``, ``timeout``, ``cancelled``, ``converted``,
``deadlock``, or ``overflow`` when the daemon had to drop events for this
watcher: ``lost`` says how many), ``time`` and the members of the event
(see PROTOCOL.md, *watch*).
"""

from __future__ import annotations

import time
from typing import Any, Dict, List, Optional

from . import _proto
from .client import Client, PathLike
from .errors import Unavailable

__all__ = ["watch", "Watch", "WATCH_EVENTS"]

#: The events a watcher is sent (others, such as ``revoked`` for a lease of
#: the watching session itself, are not watch events).
WATCH_EVENTS = frozenset(("queued", "granted", "released", "timeout", "cancelled",
                          "converted", "deadlock", "overflow"))


class Watch:
    """The events of every lock whose key or path starts with ``prefix``
    (None or "": all), in the order the daemon saw them: an iterator of
    dicts that ends only when the daemon goes away (:class:`hasp.Unavailable`)
    or :meth:`close` is called. The watch request is answered before the
    constructor returns: an error (a prefix the daemon refuses, an older
    haspd without ``watch``) raises there. Also a context manager."""

    def __init__(self, prefix: Optional[str] = None, socket: Optional[PathLike] = None) -> None:
        _proto.check_text("the watch prefix", prefix, _proto.PATH_MAX)  # TypeError, ValueError
        self._client = Client(socket)
        self._events: List[Dict[str, Any]] = []
        try:
            self._start(prefix)
        except BaseException:
            self._client.close()
            raise

    def _start(self, prefix: Optional[str]) -> None:
        c = self._client
        req = c._proto.request("watch", prefix=prefix or None)
        c._send(req.data)
        end = time.monotonic() + c.request_timeout
        while True:
            answered = False
            for msg in c._poll(max(0.0, end - time.monotonic())):
                if isinstance(msg, _proto.Reply) and msg.id == req.id:
                    if not msg.ok:
                        raise _proto.error_for(msg)
                    answered = True
                elif answered:  # events that came with the reply
                    self._keep(msg)
            if answered:
                return
            self._check_connection()
            if time.monotonic() >= end:
                raise Unavailable("haspd at %s did not answer the watch within %.1f s"
                                  % (c.path, c.request_timeout))

    def _keep(self, msg: Any) -> None:
        if isinstance(msg, _proto.Event) and msg.name in WATCH_EVENTS:
            self._events.append(msg.body)

    def _check_connection(self) -> None:
        c = self._client
        if c._proto.refusal is not None:
            raise c._proto.refusal
        if c.closed:
            raise Unavailable("the connection to haspd was lost: no more events")

    def get(self, timeout: Optional[float] = None) -> Optional[Dict[str, Any]]:
        """The next event, waiting up to ``timeout`` seconds (None: for
        ever); None if none came in time. :class:`hasp.Unavailable` once the
        daemon has gone (or after :meth:`close`)."""
        end = None if timeout is None else time.monotonic() + timeout
        while not self._events:
            self._check_connection()
            left = None if end is None else end - time.monotonic()
            if left is not None and left <= 0:
                return None
            for msg in self._client._poll(left):
                self._keep(msg)
        return self._events.pop(0)

    def fileno(self) -> int:
        """The connection's descriptor, for select(); mind that events may
        be read already (:meth:`get` with timeout 0 takes them)."""
        sock = self._client._sock
        return sock.fileno() if sock is not None else -1

    def close(self) -> None:
        """Ends the watch (and its connection)."""
        self._client.close()

    def __iter__(self) -> "Watch":
        return self

    def __next__(self) -> Dict[str, Any]:
        ev = self.get(None)
        assert ev is not None
        return ev

    def __enter__(self) -> "Watch":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def watch(prefix: Optional[str] = None, socket: Optional[PathLike] = None) -> Watch:
    """Watches the locks whose key or path starts with ``prefix`` (None:
    every lock) over a connection of its own: an iterator of one dict per
    event (see :class:`Watch`)."""
    return Watch(prefix, socket)
