"""The socket trust checks (PROTOCOL.md, Transport): refused before anything
is sent, with an error naming the directory's owner."""

import os
import socket

import pytest

import hasp
from hasp import _paths

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to chown")


def listener(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    s.listen(4)
    return s


def nothing_sent(srv):
    """The refused client may have connected, but sent nothing."""
    srv.setblocking(False)
    try:
        conn, _ = srv.accept()
    except BlockingIOError:
        return True
    conn.settimeout(5)
    return conn.recv(1) == b""


def test_writable_directory_refused(tmpdir_private):
    d = os.path.join(tmpdir_private, "open")
    os.mkdir(d)
    srv = listener(os.path.join(d, "s.sock"))
    os.chmod(d, 0o777)
    with pytest.raises(hasp.Untrusted) as ei:
        hasp.Client(socket=os.path.join(d, "s.sock"))
    msg = str(ei.value)
    assert "its directory %s belongs to uid %d" % (d, os.geteuid()) in msg
    assert "mode 0777" in msg and "others can write" in msg
    assert isinstance(ei.value, hasp.Unavailable)
    assert nothing_sent(srv)
    os.chmod(d, 0o775)
    with pytest.raises(hasp.Untrusted):
        hasp.Client(socket=os.path.join(d, "s.sock"))
    os.chmod(d, 0o755)
    hasp.Client(socket=os.path.join(d, "s.sock")).close()


def test_symlinks_refused(tmpdir_private):
    d = os.path.join(tmpdir_private, "real")
    os.mkdir(d, 0o700)
    srv = listener(os.path.join(d, "s.sock"))
    os.symlink(d, os.path.join(tmpdir_private, "link"))
    with pytest.raises(hasp.Untrusted) as ei:
        hasp.Client(socket=os.path.join(tmpdir_private, "link", "s.sock"))
    assert "symbolic link" in str(ei.value)
    os.symlink(os.path.join(d, "s.sock"), os.path.join(d, "l.sock"))
    with pytest.raises(hasp.Untrusted) as ei:
        hasp.Client(socket=os.path.join(d, "l.sock"))
    assert "it is a symbolic link" in str(ei.value)
    assert nothing_sent(srv)


@root_only
def test_strangers_directory_refused(tmpdir_private):
    d = os.path.join(tmpdir_private, "theirs")
    os.mkdir(d, 0o755)
    srv = listener(os.path.join(d, "s.sock"))
    os.chown(d, 4242, 4242)
    with pytest.raises(hasp.Untrusted) as ei:
        hasp.Client(socket=os.path.join(d, "s.sock"))
    assert "belongs to uid 4242" in str(ei.value) and ei.value.owner_uid == 4242
    assert nothing_sent(srv)
    os.chown(os.path.join(d, "s.sock"), 4242, 4242)  # a daemon of uid 4242 in its own dir
    hasp.Client(socket=os.path.join(d, "s.sock")).close()


def test_squatted_per_user_directory_refused(tmpdir_private, monkeypatch):
    """/tmp/hasp-$UID must be ours, mode 0700, even though it is not writable
    by others: here it belongs to someone else (our real uid, while we
    pretend to be another)."""
    fake = 3999999
    d = "/tmp/hasp-%d" % fake
    if os.path.lexists(d):
        pytest.skip("%s exists" % d)
    os.mkdir(d, 0o755)
    try:
        srv = listener(d + "/haspd.sock")
        monkeypatch.setattr(os, "geteuid", lambda: fake)
        monkeypatch.delenv("HASP_SOCKET", raising=False)
        monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
        assert _paths.default_socket() == d + "/haspd.sock"
        with pytest.raises(hasp.Untrusted) as ei:
            hasp.Client()
        assert "it must be yours, mode 0700" in str(ei.value)
        assert nothing_sent(srv)
        srv.close()
    finally:
        for name in os.listdir(d):
            os.unlink(os.path.join(d, name))
        os.rmdir(d)


@root_only
def test_stranger_serving_refused(tmpdir_private):
    """A socket root made but a process of another uid serves."""
    path = os.path.join(tmpdir_private, "s.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)  # root's socket; SO_PEERCRED is whoever calls listen()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            os.setgid(4243)
            os.setuid(4243)
            srv.listen(1)
            os.write(w, b"x")
            conn, _ = srv.accept()
            conn.settimeout(5)
            os._exit(0 if conn.recv(1) == b"" else 1)
        except BaseException:
            os._exit(2)
    os.close(w)
    assert os.read(r, 1) == b"x"
    srv.close()
    with pytest.raises(hasp.Untrusted) as ei:
        hasp.Client(socket=path)
    assert "served by pid %d of uid 4243" % pid in str(ei.value)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0  # it received nothing


def test_default_socket_rules(monkeypatch):
    monkeypatch.setenv("HASP_SOCKET", "/x/y.sock")
    assert hasp.default_socket() == "/x/y.sock"
    monkeypatch.setenv("HASP_SOCKET", "")
    monkeypatch.setenv("XDG_RUNTIME_DIR", "/run/user/7")
    assert hasp.default_socket() == "/run/user/7/hasp/haspd.sock"
    monkeypatch.delenv("XDG_RUNTIME_DIR")
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert hasp.default_socket() == "/run/hasp/haspd.sock"
    monkeypatch.setattr(os, "geteuid", lambda: 1001)
    assert hasp.default_socket() == "/tmp/hasp-1001/haspd.sock"
