"""The default socket and the checks that make a socket trustworthy.

The same rules as libhasp (proto/sockpath.c, client/trust.c; PROTOCOL.md,
*Transport*): a client sends nothing, neither a request nor a descriptor,
to a socket that someone else could have put in place.
"""

from __future__ import annotations

import os
import pwd
import socket
import stat
import struct
import time
from typing import NamedTuple, Optional, Tuple

from .errors import Untrusted

__all__ = ["default_socket", "Trust", "check_socket", "check_peer"]


def default_socket() -> str:
    """$HASP_SOCKET if set and not empty; else $XDG_RUNTIME_DIR/hasp/haspd.sock;
    else /run/hasp/haspd.sock for root; else /tmp/hasp-$UID/haspd.sock."""
    env = os.environ.get("HASP_SOCKET")
    if env:
        return env
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg:
        return xdg + "/hasp/haspd.sock"
    if os.geteuid() == 0:
        return "/run/hasp/haspd.sock"
    return "/tmp/hasp-%d/haspd.sock" % os.geteuid()


class Trust(NamedTuple):
    """Who owns the socket's directory and the socket."""

    dir_uid: int
    sock_uid: int


def _user(uid: int) -> str:
    try:
        return " (%s)" % pwd.getpwuid(uid).pw_name
    except (KeyError, OverflowError):
        return ""


def _refuse_dir(path: str, d: str, st: os.stat_result, why: str) -> Untrusted:
    what = "is a symbolic link owned by" if stat.S_ISLNK(st.st_mode) else "belongs to"
    return Untrusted("refusing %s: its directory %s %s uid %d%s, mode %04o; %s"
                     % (path, d, what, st.st_uid, _user(st.st_uid),
                        stat.S_IMODE(st.st_mode), why), path=path, owner_uid=st.st_uid)


def _dir_of(path: str) -> str:
    slash = path.rfind("/")
    if slash < 0:
        return "."
    return path[:slash] or "/"


def _is_per_user(d: str) -> bool:
    """Whether d is /tmp/hasp-$EUID, however spelt ("/tmp//hasp-1001")."""
    mine = "/tmp/hasp-%d" % os.geteuid()
    if d == mine:
        return True
    if mine[5:] not in d:
        return False
    tmp = os.path.realpath("/tmp")
    real = os.path.realpath(d)
    if not os.path.exists(real):
        return False
    return real == tmp.rstrip("/") + mine[4:]


def check_socket(path: str) -> Trust:
    """Checks the socket's directory and the socket before connecting.

    Raises :class:`hasp.Untrusted`, naming the directory, its owner and its
    mode, or OSError (FileNotFoundError when there is no socket)."""
    d = _dir_of(path)
    dst = os.lstat(d)
    me = os.geteuid()
    if _is_per_user(d):
        if stat.S_ISLNK(dst.st_mode) or dst.st_uid != me or stat.S_IMODE(dst.st_mode) != 0o700:
            raise _refuse_dir(path, d, dst, "it must be yours, mode 0700")
    else:
        if stat.S_ISLNK(dst.st_mode):
            raise _refuse_dir(path, d, dst, "it must be a directory, not a symbolic link")
        if not stat.S_ISDIR(dst.st_mode):
            raise NotADirectoryError(20, "not a directory", d)
        if dst.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            raise _refuse_dir(path, d, dst, "others can write to it, so anyone could have "
                              "put the socket there")
    sst = os.lstat(path)
    if stat.S_ISLNK(sst.st_mode):
        raise Untrusted("refusing %s: it is a symbolic link; give the socket's own path" % path,
                        path=path, owner_uid=sst.st_uid)
    if dst.st_uid not in (0, me, sst.st_uid):
        raise _refuse_dir(path, d, dst, "it must belong to root, to you (uid %d) or to the "
                          "socket's owner (uid %d)" % (me, sst.st_uid))
    return Trust(dst.st_uid, sst.st_uid)


def check_peer(sock: socket.socket, path: str, trust: Trust) -> None:
    """Checks, once connected and before sending, who serves the socket
    (SO_PEERCRED): root, the caller, or the owner of the socket or of its
    directory. Raises :class:`hasp.Untrusted` otherwise."""
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, _gid = struct.unpack("3i", creds)
    me = os.geteuid()
    if uid in (0, me, trust.dir_uid, trust.sock_uid):
        return
    raise Untrusted("refusing %s: it is served by pid %d of uid %d%s, which is neither root, "
                    "you (uid %d), nor the owner of the socket (uid %d) or of its directory "
                    "(uid %d)" % (path, pid, uid, _user(uid), me, trust.sock_uid, trust.dir_uid),
                    path=path, owner_uid=uid)


def open_lock_file(path: str, create_mode: int = 0o666, create: bool = True) -> int:
    """Opens path as libhasp does: created if missing (create_mode minus the
    umask; unless not create), read access where allowed, else write
    access; never blocking (O_NONBLOCK, O_NOCTTY, O_CLOEXEC). A directory is
    opened read-only, as flock(1) does. Returns the descriptor; raises
    OSError."""
    flags = (os.O_CREAT if create else 0) | os.O_NOCTTY | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        return os.open(path, os.O_RDONLY | flags, create_mode)
    except PermissionError:
        try:
            return os.open(path, os.O_WRONLY | flags, create_mode)
        except IsADirectoryError:
            pass
    except IsADirectoryError:
        pass
    return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOCTTY | os.O_CLOEXEC)


def open_lock_file_stat(path: str, create_mode: int = 0o666) -> Tuple[int, os.stat_result]:
    """open_lock_file, and the file's fstat (the descriptor closed if that
    fails)."""
    fd = open_lock_file(path, create_mode)
    try:
        return fd, os.fstat(fd)
    except BaseException:
        os.close(fd)
        raise


def replaced_since(path: str, st: os.stat_result) -> bool:
    """Whether path names another file than st now: the file was replaced
    (renamed over) between its opening and the grant. A path that names
    nothing any more keeps the lease, as flock(2) would."""
    try:
        now = os.stat(path)
    except FileNotFoundError:
        return False
    return (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino)


def remaining(deadline: Optional[float]) -> Optional[float]:
    """Seconds left until a time.monotonic() deadline (never below 0), or
    None for no deadline."""
    return None if deadline is None else max(0.0, deadline - time.monotonic())


def absolute(path: str) -> str:
    """path made absolute from the working directory (not resolved: the
    descriptor, not the name, is the file)."""
    if path.startswith("/"):
        return path
    cwd = os.getcwd()
    return (cwd if cwd != "/" else "") + "/" + path


