"""The file leases this process holds, by device and inode.

hasp keys a file lease by the file's inode, so an atomic replacement (a new
file renamed over the path) must tell haspd first (the ``adopt`` op), through
the session that holds the lease. ``atomic_write_file`` finds that session
here: every file lease taken by :meth:`hasp.Client.lock_file` (and so by
:class:`hasp.FileLock`) or by the asyncio client is registered while held.
A child after ``fork()`` sees none of its parent's: the leases are the
parent's sessions.
"""

from __future__ import annotations

import os
import threading
from typing import Any, Dict, List, Optional, Tuple

__all__ = ["register", "unregister", "find", "moved"]

Key = Tuple[int, int]

_lock = threading.Lock()
_by_inode: Dict[Key, List[Any]] = {}
_pid = os.getpid()


def _fresh() -> None:
    """Forgets the parent's leases in a forked child (called under _lock)."""
    global _pid
    if os.getpid() != _pid:
        _pid = os.getpid()
        _by_inode.clear()


def register(lease: Any, st: os.stat_result) -> None:
    """Notes that lease (a file lease of this process) holds the file st."""
    key = (st.st_dev, st.st_ino)
    with _lock:
        _fresh()
        lease._held_key = key
        _by_inode.setdefault(key, []).append(lease)


def unregister(lease: Any) -> None:
    """Forgets lease (released, or its session closed); idempotent."""
    with _lock:
        _fresh()
        key = getattr(lease, "_held_key", None)
        if key is None:
            return
        lease._held_key = None
        leases = _by_inode.get(key, [])
        if lease in leases:
            leases.remove(lease)
        if not leases:
            _by_inode.pop(key, None)


def find(st: os.stat_result) -> Optional[Any]:
    """A lease this process holds on the file st (an exclusive one first),
    or None."""
    with _lock:
        _fresh()
        leases = _by_inode.get((st.st_dev, st.st_ino), [])
        for lease in leases:
            if lease.mode == "exclusive":
                return lease
        return leases[0] if leases else None


def moved(lease: Any, st: os.stat_result) -> None:
    """After an atomic replacement: lease now holds the new file st (the
    old inode is no longer at the path). Every lease of this process on the
    old file follows, since haspd adopted the new file into their resource."""
    new = (st.st_dev, st.st_ino)
    with _lock:
        _fresh()
        old = getattr(lease, "_held_key", None)
        if old is None or old == new:
            return
        followers = _by_inode.pop(old, [])
        for other in followers:
            other._held_key = new
        _by_inode.setdefault(new, []).extend(followers)
