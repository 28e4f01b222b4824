"""File helpers as rapfiles spells them, blocking twins of hasp.aio's.

``read_file(path) -> str`` (UTF-8), ``write_file(path, contents)``,
``atomic_write_file(path, contents)`` (a temporary file in the same
directory, written, fsync'd, renamed over the path, the directory fsync'd),
and the ``_bytes`` variants. ``contents`` may be str (written as UTF-8) or
bytes.

An atomic replacement of a file this process holds a hasp lease on keeps
the lock: before the rename, the new file is adopted into the lease's
resource (the ``adopt`` op, through the session holding the lease), so
waiters and newcomers stay in one queue.
"""

from __future__ import annotations

import os
import stat
from typing import Any, Optional, Tuple, Union

from . import _held, _paths
from .errors import Error

__all__ = ["read_file", "read_file_bytes", "write_file", "write_file_bytes",
           "atomic_write_file", "atomic_write_file_bytes"]

Contents = Union[str, bytes, bytearray, memoryview]


def _data(contents: Contents) -> bytes:
    if isinstance(contents, str):
        return contents.encode("utf-8")
    if isinstance(contents, (bytes, bytearray, memoryview)):
        return bytes(contents)
    raise TypeError("contents must be str or bytes, not %s" % type(contents).__name__)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def read_file_bytes(path: Any) -> bytes:
    """The file's contents as bytes."""
    with open(os.fspath(path), "rb") as f:
        return f.read()


def read_file(path: Any) -> str:
    """The file's contents, decoded as UTF-8."""
    return read_file_bytes(path).decode("utf-8")


def write_file(path: Any, contents: Contents) -> None:
    """Writes contents to path (created if missing, truncated otherwise)."""
    data = _data(contents)
    fd = os.open(os.fspath(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)
    try:
        _write_all(fd, data)
    finally:
        os.close(fd)


write_file_bytes = write_file


class _Replacement:
    """One atomic replacement: the temporary file written and synced
    (prepare), the lease to keep (``lease``, None if this process holds none
    on the path), then the rename (commit) or the clean-up (abort)."""

    def __init__(self, path: Any, contents: Contents) -> None:
        data = _data(contents)
        self.path = _paths.absolute(os.fsdecode(os.fspath(path)))
        self.dir = os.path.dirname(self.path) or "/"
        try:
            st: Optional[os.stat_result] = os.stat(self.path)
        except FileNotFoundError:
            st = None
        self.lease = _held.find(st) if st is not None else None
        perm = stat.S_IMODE(st.st_mode) if st is not None else None
        self.fd, self.tmp = self._create(perm)
        try:
            _write_all(self.fd, data)
            os.fsync(self.fd)
        except BaseException:
            self.abort()
            raise

    def _create(self, perm: Optional[int]) -> Tuple[int, str]:
        base = os.path.basename(self.path)
        flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW
        for _ in range(100):
            tmp = os.path.join(self.dir, ".%s.%s.tmp" % (base, os.urandom(6).hex()))
            try:
                fd = os.open(tmp, flags, 0o666 if perm is None else 0o600)
            except FileExistsError:
                continue
            if perm is not None:
                try:
                    os.fchmod(fd, perm)
                except OSError:
                    pass
            return fd, tmp
        raise FileExistsError("no free temporary name beside %s" % self.path)

    def commit(self) -> None:
        """Renames the temporary file over the path and syncs the directory."""
        try:
            os.rename(self.tmp, self.path)
        except BaseException:
            self.abort()
            raise
        try:
            if self.lease is not None:
                _held.moved(self.lease, os.fstat(self.fd))
        finally:
            os.close(self.fd)
            self.fd = -1
        dfd = os.open(self.dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)

    def abort(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        try:
            os.unlink(self.tmp)
        except OSError:
            pass


def atomic_write_file(path: Any, contents: Contents) -> None:
    """Replaces path's contents atomically: readers see the old contents or
    the new, never a part. A temporary file beside it is written, fsync'd
    and renamed over path; then the directory is fsync'd. An existing file's
    permissions are kept; a new one gets 0666 minus the umask.

    When this process holds a hasp file lease on path (``lock_file``,
    ``FileLock``), the new file joins the lease's resource before the
    rename, so the lock is kept: everyone waiting for the path, and everyone
    who opens it afterwards, is in the one queue. A lease held by an asyncio
    client must be kept with ``await hasp.aio.atomic_write_file`` instead
    (RuntimeError here). Raises :class:`hasp.LeaseLost` if that lease was
    lost, and :class:`hasp.BadRequest` (code ``unknown_op``) if haspd cannot
    adopt files; the file is then unchanged.
    """
    rep = _Replacement(path, contents)
    try:
        if rep.lease is not None:
            adopt = getattr(rep.lease, "_adopt", None)
            if adopt is None:
                raise RuntimeError("%s is leased through a hasp.aio client: replace it with "
                                   "await hasp.aio.atomic_write_file()" % rep.path)
            adopt(rep.fd, rep.tmp)
    except BaseException:
        rep.abort()
        raise
    rep.commit()


atomic_write_file_bytes = atomic_write_file


def _adopt_error(e: Error, path: str) -> Error:
    """Says what an unknown_op from an older haspd means here."""
    if e.code == "unknown_op":
        e.args = ("haspd cannot adopt a new file into a lease (no adopt op), so %s was left "
                  "unchanged: replacing it would split its lock in two" % path,)
    return e
