"""Fixtures of the cluster suite (issue 19): etcd clusters of 1 and 3 members
on 127.0.0.1 ports of their own, started and stopped by pid, and haspd
"hosts" on temporary sockets pointed at them (--cluster-host tells them
apart), with three kinds of client: the Python package, the CLI, and a raw
protocol session (for what the clients do not surface: list, stats, revoke,
events).

Every wait is bounded (bound(), stretched by HASP_TEST_TIME_FACTOR as the
other suites' are); none is a sleep standing in for an event.

By hand: `meson test -C build --suite cluster --print-errorlogs`, or
`python3 tests/cluster/run.py [-k NAME]` (HASPD and HASP_CLI name the
binaries, else build/'s; HASP_ETCD and HASP_ETCDCTL etcd's, else PATH's;
HASP_CLUSTER_KEEP=1 keeps each test's directory, with the etcd and haspd
logs). A failed test shows the end of each log."""

import base64
import ctypes
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
PYCLIENT = os.path.join(ROOT, "client", "python")
sys.path.insert(0, PYCLIENT)  # the package under test, from the source tree

import hasp  # noqa: E402

BUILD = os.path.join(ROOT, "build")
HASPD = os.environ.get("HASPD") or os.path.join(BUILD, "daemon", "haspd")
HASP_CLI = os.environ.get("HASP_CLI") or os.path.join(BUILD, "client", "hasp")
ETCD = os.environ.get("HASP_ETCD") or shutil.which("etcd") or "/usr/bin/etcd"
ETCDCTL = os.environ.get("HASP_ETCDCTL") or shutil.which("etcdctl") or "/usr/bin/etcdctl"
FACTOR = max(1, int(os.environ.get("HASP_TEST_TIME_FACTOR", "1") or 1))

PREFIX = "cluster/"
TTL = 3  # --cluster-ttl of every host: small, so that the SIGKILL tests are quick


def bound(seconds):
    """A test's bound on a wait, stretched for slow runs (valgrind, ASan)."""
    return seconds * FACTOR


def wait_for(pred, seconds=5.0, what="a condition", every=0.005):
    """Polls pred (every `every` s) until true, failing after a bounded time
    (for states with no event to wait on: a socket coming up, a list showing
    a waiter)."""
    end = time.monotonic() + bound(seconds)
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > end:
            pytest.fail("timed out after %s s waiting for %s" % (bound(seconds), what))
        time.sleep(every)


def free_ports(n):
    """n distinct free TCP ports of 127.0.0.1 (bound to port 0 together, so
    that none is handed out twice)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def die_with_us():
    """preexec_fn of the etcd members and haspd: SIGKILL when the test
    process goes (prctl PR_SET_PDEATHSIG), so that a run killed by meson's
    timeout leaves no daemon behind. Only for children started from the
    main thread (the signal follows the thread that forked)."""
    ctypes.CDLL(None).prctl(1, int(signal.SIGKILL), 0, 0, 0)


def b64(s):
    return base64.b64encode(s.encode() if isinstance(s, str) else s).decode()


def log_tail(path, n=60):
    """The last n lines of a log, without haspd's lines about sessions
    coming and going (the tests' own list and stats sessions)."""
    try:
        with open(path, "rb") as f:
            lines = f.read().decode("utf-8", "replace").splitlines()
        session = re.compile(r"haspd: debug: session \d+ (connected|\(pid)")
        lines = [x for x in lines if not session.match(x)]
        return "\n".join(lines[-n:])
    except OSError as e:
        return "(%s)" % e


# ---------------------------------------------------------------- etcd

class Member:
    def __init__(self, cluster, index, client_port, peer_port):
        self.cluster = cluster
        self.index = index
        self.name = "m%d" % index
        self.client_port = client_port
        self.peer_port = peer_port
        self.url = "http://127.0.0.1:%d" % client_port
        self.peer_url = "http://127.0.0.1:%d" % peer_port
        self.data = os.path.join(cluster.dir, self.name)
        self.logpath = os.path.join(cluster.dir, self.name + ".log")
        self.proc = None
        self.id = None  # the member id, as etcd's status gives it (a decimal string)

    @property
    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def start(self):
        assert not self.alive
        log = open(self.logpath, "ab")
        argv = [ETCD, "--name", self.name, "--data-dir", self.data,
                "--listen-client-urls", self.url, "--advertise-client-urls", self.url,
                "--listen-peer-urls", self.peer_url,
                "--initial-advertise-peer-urls", self.peer_url,
                "--initial-cluster", self.cluster.initial_cluster,
                "--initial-cluster-state", "new",
                "--initial-cluster-token", self.cluster.token,
                "--heartbeat-interval", "50", "--election-timeout", "500"]
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                     preexec_fn=die_with_us)
        log.close()
        return self

    def kill(self, sig=signal.SIGKILL):
        """Signals the member by pid and reaps it (bounded)."""
        if self.alive:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=bound(10))
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def stop(self):
        self.kill(signal.SIGTERM)

    def post(self, path, body, timeout=2.0):
        """A POST to etcd's JSON gateway (/v3/...); the decoded reply."""
        req = urllib.request.Request(self.url + path, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return json.loads(r.read())

    def healthy(self):
        """GET /health says true (the member has a leader and answers)."""
        if not self.alive:
            return False
        try:
            with urllib.request.urlopen(self.url + "/health", timeout=1) as r:
                return json.loads(r.read()).get("health") == "true"
        except (OSError, ValueError, urllib.error.URLError):
            return False

    def status(self):
        """/v3/maintenance/status, or None when it does not answer."""
        if not self.alive:
            return None
        try:
            return self.post("/v3/maintenance/status", {}, timeout=1)
        except (OSError, ValueError, urllib.error.URLError):
            return None


class Etcd:
    """An etcd cluster of n members on 127.0.0.1, data in a directory of
    the test's, every member a process of ours (stopped by pid)."""

    def __init__(self, directory, n):
        self.dir = directory
        ports = free_ports(2 * n)
        self.members = [Member(self, i, ports[2 * i], ports[2 * i + 1]) for i in range(n)]
        self.initial_cluster = ",".join("%s=%s" % (m.name, m.peer_url) for m in self.members)
        self.token = "hasp-test-%d-%d" % (os.getpid(), ports[0])

    @property
    def urls(self):
        return [m.url for m in self.members]

    @property
    def endpoints(self):
        return ",".join(self.urls)

    def start(self):
        for m in self.members:
            m.start()
        self.wait_healthy()
        for m in self.members:
            m.id = m.status()["header"]["member_id"]
        return self

    def wait_healthy(self, seconds=20):
        """Every running member answers /health with true."""
        def ok():
            for m in self.members:
                if m.proc is not None and m.proc.poll() is not None and m.proc.returncode not in (
                        -signal.SIGKILL, -signal.SIGTERM):
                    pytest.fail("etcd %s exited with %s:\n%s" % (
                        m.name, m.proc.returncode, log_tail(m.logpath)))
            alive = [m for m in self.members if m.alive]
            return alive and all(m.healthy() for m in alive)
        wait_for(ok, seconds, "etcd to be healthy")

    def leader(self, seconds=10):
        """The member that the running members agree leads (bounded wait for
        an election)."""
        def find():
            ids = set()
            for m in self.members:
                if m.alive:
                    st = m.status()
                    if st is None or st.get("leader", "0") == "0":
                        return None
                    ids.add(st["leader"])
            if len(ids) != 1:
                return None
            lead = [m for m in self.members if m.id in ids and m.alive]
            return lead[0] if lead else None
        return wait_for(find, seconds, "an etcd leader")

    def followers(self):
        lead = self.leader()
        return [m for m in self.members if m is not lead and m.alive]

    def any_alive(self):
        return [m for m in self.members if m.alive][0]

    def stop(self):
        for m in self.members:
            m.stop()

    def etcdctl_run(self, *args, timeout=10):
        """etcdctl against the running members (bounded); the CompletedProcess."""
        eps = ",".join(m.url for m in self.members if m.alive)
        return subprocess.run([ETCDCTL, "--endpoints", eps, "--command-timeout", "5s"] + list(args),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              timeout=bound(timeout), env=dict(os.environ, ETCDCTL_API="3"))

    def etcdctl(self, *args, timeout=10):
        """etcdctl against the running members; its stdout (a failure fails the test)."""
        r = self.etcdctl_run(*args, timeout=timeout)
        if r.returncode != 0:
            pytest.fail("etcdctl %s: %s%s" % (" ".join(args), r.stdout, r.stderr))
        return r.stdout

    def put(self, key, value):
        """A put through the gateway; the new revision (an int)."""
        rep = self.any_alive().post("/v3/kv/put", {"key": b64(key), "value": b64(value)})
        return int(rep["header"]["revision"])


@pytest.fixture
def tmpdir_private():
    d = tempfile.mkdtemp(prefix="hasp-cluster-")
    os.chmod(d, 0o700)
    yield d
    if os.environ.get("HASP_CLUSTER_KEEP"):  # to read the logs after a run
        print("kept %s" % d)
    else:
        shutil.rmtree(d, ignore_errors=True)


def _need_etcd():
    if not os.access(ETCD, os.X_OK):
        pytest.skip("no etcd at %s (apt-get install etcd-server)" % ETCD)


@pytest.fixture
def etcd1(tmpdir_private, request):
    """A one-member etcd cluster."""
    _need_etcd()
    d = os.path.join(tmpdir_private, "etcd")
    os.mkdir(d)
    c = Etcd(d, 1)
    request.node.hasp_logs = getattr(request.node, "hasp_logs", []) + [m.logpath for m in c.members]
    try:
        c.start()
        yield c
    finally:
        c.stop()


@pytest.fixture
def etcd3(tmpdir_private, request):
    """A three-member etcd cluster."""
    _need_etcd()
    d = os.path.join(tmpdir_private, "etcd")
    os.mkdir(d)
    c = Etcd(d, 3)
    request.node.hasp_logs = getattr(request.node, "hasp_logs", []) + [m.logpath for m in c.members]
    try:
        c.start()
        yield c
    finally:
        c.stop()


# ---------------------------------------------------------------- haspd

class Raw:
    """A raw protocol session: JSON lines out, replies and events in."""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.buf = b""
        self.next_id = 1
        self.replies = {}
        self.events = []
        self.closed = False

    def send(self, op, **fields):
        """Sends a request; its id."""
        rid = self.next_id
        self.next_id += 1
        msg = {"id": rid, "op": op}
        msg.update({k: v for k, v in fields.items() if v is not None})
        self.sock.sendall(json.dumps(msg).encode() + b"\n")
        return rid

    def _read(self, deadline):
        """Reads what comes until deadline (monotonic; at or past it, what is
        there already); False when nothing came."""
        if self.closed:
            return False
        self.sock.settimeout(max(0.0, deadline - time.monotonic()))
        try:
            data = self.sock.recv(65536)
        except (socket.timeout, BlockingIOError):
            return False
        if not data:
            self.closed = True
            return False
        self.buf += data
        while b"\n" in self.buf:
            line, self.buf = self.buf.split(b"\n", 1)
            if not line.strip():
                continue
            msg = json.loads(line)
            if "event" in msg:
                self.events.append(msg)
            else:
                self.replies[msg.get("id")] = msg
        return True

    def reply(self, rid, seconds=5.0, what=None):
        """The reply to request rid, within a bounded time."""
        deadline = time.monotonic() + bound(seconds)
        while rid not in self.replies:
            if not self._read(deadline) and (self.closed or time.monotonic() >= deadline):
                pytest.fail("no reply to %s within %s s (closed: %s)" % (
                    what or "request %d" % rid, bound(seconds), self.closed))
        return self.replies.pop(rid)

    def poll_reply(self, rid, seconds=0.0):
        """The reply to rid if it has come (reading for up to seconds), else None."""
        deadline = time.monotonic() + seconds
        while rid not in self.replies:
            if not self._read(deadline):
                break
        return self.replies.pop(rid, None)

    def drain(self):
        """Reads whatever has come (events, replies) without waiting."""
        while self._read(time.monotonic()):
            pass

    def call(self, op, seconds=5.0, **fields):
        return self.reply(self.send(op, **fields), seconds, what=op)

    def event(self, name, seconds=5.0, **match):
        """The first event named name (whose fields match), within a bounded time."""
        deadline = time.monotonic() + bound(seconds)
        while True:
            for ev in self.events:
                if ev.get("event") == name and all(ev.get(k) == v for k, v in match.items()):
                    self.events.remove(ev)
                    return ev
            if not self._read(deadline) and (self.closed or time.monotonic() >= deadline):
                pytest.fail("no %r event %r within %s s (events: %r, closed: %s)" % (
                    name, match, bound(seconds), self.events, self.closed))

    def close(self):
        self.sock.close()


class Host:
    """A haspd "host" of the cluster: its own socket, --cluster-host NAME."""

    def __init__(self, directory, name, endpoints, ttl=TTL, prefix=PREFIX):
        self.dir = directory
        self.name = name
        self.endpoints = endpoints
        self.ttl = ttl
        self.prefix = prefix
        self.socket = os.path.join(directory, "haspd.sock")
        self.logpath = os.path.join(directory, "haspd.log")
        self.proc = None
        self.killed = False
        self.raws = []

    def argv(self):
        return [HASPD, "--socket", self.socket, "--cluster-endpoints", self.endpoints,
                "--cluster-prefix", self.prefix, "--cluster-ttl", str(self.ttl),
                "--cluster-host", self.name, "--log-level", "debug"]

    def start(self, ready=True):
        if not os.access(HASPD, os.X_OK):
            pytest.skip("no haspd at %s (set HASPD)" % HASPD)
        log = open(self.logpath, "ab")
        self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                     preexec_fn=die_with_us)
        log.close()

        def up():
            if self.proc.poll() is not None:
                pytest.fail("haspd %s exited with %s:\n%s" % (
                    self.name, self.proc.returncode, log_tail(self.logpath)))
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect(self.socket)
                return True
            except OSError:
                return False
            finally:
                s.close()

        wait_for(up, 10, "haspd %s's socket" % self.name)
        if ready:
            self.wait_available()
        return self

    def cluster_stats(self):
        r = self.raw()
        try:
            rep = r.call("stats")
        finally:
            self.forget(r)
        assert rep["ok"], rep
        return rep["stats"].get("cluster")

    def wait_available(self, seconds=10):
        """stats says this haspd has its etcd lease and etcd is reachable."""
        def ok():
            st = self.cluster_stats()
            if st is None:
                pytest.fail("haspd %s's stats have no \"cluster\" (is cluster mode built?)"
                            % self.name)
            return st.get("available") is True and st.get("lease") is not None
        wait_for(ok, seconds, "haspd %s to be available in the cluster" % self.name, every=0.05)

    @property
    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self, sig=signal.SIGKILL):
        """Signals haspd (a test's doing: not a failure at its stop)."""
        if self.alive:
            self.killed = True
            self.proc.send_signal(sig)
            self.proc.wait(timeout=bound(10))

    def stop(self):
        """Stops haspd with SIGTERM; its exit status (that of its end if it
        had ended already), None if the test killed it, or why it did not
        stop (then it is killed)."""
        for r in self.raws:
            r.close()
        self.raws = []
        if self.proc is None or self.killed:
            return None
        if not self.alive:
            return self.proc.returncode
        self.proc.terminate()
        try:
            return self.proc.wait(timeout=bound(10))
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return "no end within %s s of SIGTERM (killed)" % bound(10)

    # clients

    def client(self, name=None):
        """A session of the Python package."""
        return hasp.Client(socket=self.socket, name=name or "test on %s" % self.name)

    def raw(self):
        r = Raw(self.socket)
        self.raws.append(r)
        return r

    def forget(self, r):
        r.close()
        if r in self.raws:
            self.raws.remove(r)

    def env(self):
        return dict(os.environ, HASP_SOCKET=self.socket, HASP_NO_AUTOSTART="1")

    def cli(self, *args, **kw):
        """Starts `hasp ARGS` against this host (a Popen), in a process group
        of its own, which end_cli() kills with whatever it runs."""
        if not os.access(HASP_CLI, os.X_OK):
            pytest.skip("no hasp CLI at %s (set HASP_CLI)" % HASP_CLI)
        kw.setdefault("stdin", subprocess.DEVNULL)
        return subprocess.Popen([HASP_CLI] + list(args), env=self.env(), start_new_session=True,
                                **kw)

    def cli_run(self, *args, seconds=10):
        """Runs `hasp ARGS` to its end (bounded); the CompletedProcess."""
        if not os.access(HASP_CLI, os.X_OK):
            pytest.skip("no hasp CLI at %s (set HASP_CLI)" % HASP_CLI)
        return subprocess.run([HASP_CLI] + list(args), env=self.env(), stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              timeout=bound(seconds))

    def list(self, prefix):
        """list's resources under prefix (every page)."""
        r = self.raw()
        try:
            out, after = [], None
            while True:
                rep = r.call("list", prefix=prefix, after=after)
                assert rep["ok"], rep
                out += rep["resources"]
                after = rep.get("next")
                if after is None:
                    return out
        finally:
            self.forget(r)

    def resource(self, key):
        """list's entry for key, or None."""
        for res in self.list(key):
            if res.get("key") == key:
                return res
        return None


class Hosts:
    """Makes hosts for a test against one etcd, and stops them at its end."""

    def __init__(self, tmpdir, etcd, request):
        self.tmpdir = tmpdir
        self.etcd = etcd
        self.request = request
        self.all = []

    def __call__(self, name, endpoints=None, **kw):
        d = os.path.join(self.tmpdir, name)
        os.mkdir(d, 0o700)
        h = Host(d, name, endpoints or self.etcd.endpoints, **kw)
        self.all.append(h)
        self.request.node.hasp_logs = getattr(self.request.node, "hasp_logs", []) + [h.logpath]
        return h.start()

    def stop(self):
        """Stops every host; a haspd that does not stop cleanly on SIGTERM
        (a crash, a sanitizer's report) fails the test."""
        bad = []
        for h in self.all:
            rc = h.stop()
            if rc is not None and rc != 0:
                bad.append("haspd %s stopped with %s:\n%s" % (h.name, rc, log_tail(h.logpath, 30)))
        if bad:
            pytest.fail("\n".join(bad))


@pytest.fixture
def hosts(tmpdir_private, etcd1, request):
    """hosts(name, ...): a haspd on the one-member etcd."""
    hs = Hosts(tmpdir_private, etcd1, request)
    yield hs
    hs.stop()


@pytest.fixture
def two(hosts):
    """hostA and hostB on one one-member etcd: two, two.a, two.b, two.etcd."""
    class Two:
        pass
    t = Two()
    t.etcd = hosts.etcd
    t.a = hosts("hostA")
    t.b = hosts("hostB")
    return t


@pytest.fixture
def hosts3(tmpdir_private, etcd3, request):
    hs = Hosts(tmpdir_private, etcd3, request)
    yield hs
    hs.stop()


@pytest.fixture
def key(request):
    """A cluster key of the test's own."""
    return PREFIX + request.node.name.replace("[", "-").replace("]", "")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A failed test shows the tails of its haspd and etcd logs."""
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        for path in getattr(item, "hasp_logs", []):
            name = os.path.join(os.path.basename(os.path.dirname(path)), os.path.basename(path))
            rep.sections.append(("log " + name, log_tail(path, 40)))


class Thread(threading.Thread):
    """A thread whose result (or exception) is kept, and awaited with a bound."""

    def __init__(self, fn, *args, **kw):
        super().__init__(daemon=True)
        self.fn, self.args, self.kw = fn, args, kw
        self.result = self.error = None
        self.done = threading.Event()

    def run(self):
        try:
            self.result = self.fn(*self.args, **self.kw)
        except BaseException as e:  # noqa: B902 (handed to the test)
            self.error = e
        finally:
            self.done.set()

    def get(self, seconds=10.0, what="a thread"):
        if not self.done.wait(bound(seconds)):
            pytest.fail("%s did not finish within %s s" % (what, bound(seconds)))
        if self.error is not None:
            raise self.error
        return self.result


def spawn(fn, *args, **kw):
    t = Thread(fn, *args, **kw)
    t.start()
    return t


def read_line(stream, seconds=10.0, what="a line from the child"):
    """One line from a child's pipe, within a bounded time."""
    import select
    r, _, _ = select.select([stream], [], [], bound(seconds))
    if not r:
        pytest.fail("no %s within %s s" % (what, bound(seconds)))
    return stream.readline()


HOLDER = r"""
import sys, hasp
c = hasp.Client(socket=sys.argv[1], name="holder child")
lease = c.lock(sys.argv[2], shared=sys.argv[3] == "shared")
print("held", lease.id, lease.fence, flush=True)
sys.stdin.read()
"""


def holder_child(host, key, mode="exclusive"):
    """A Python child process that holds key on host (a session of its own)
    until its stdin closes or it is killed; returns once it holds, with
    .lease and .fence set."""
    env = dict(os.environ)
    env["PYTHONPATH"] = PYCLIENT + os.pathsep + env.get("PYTHONPATH", "")
    p = subprocess.Popen([sys.executable, "-c", HOLDER, host.socket, key, mode],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, text=True)
    line = read_line(p.stdout, 10, "the holder child's grant")
    assert line.startswith("held "), line
    _, lease, fence = line.split()
    p.lease, p.fence = int(lease), int(fence)
    return p


def end_cli(p):
    """Kills what is left of a Host.cli() process group (hasp and its
    command), and reaps hasp."""
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    p.wait(timeout=bound(10))


def end_child(p):
    if p.poll() is None:
        p.kill()
    p.wait(timeout=bound(10))


def waiters(host, key):
    res = host.resource(key)
    return res["waiters"] if res else []


def holders(host, key):
    res = host.resource(key)
    return res["holders"] if res else []


def wait_waiters(host, key, n, what=None):
    """Waits until host's list shows n waiters on key; returns them."""
    seen = []

    def ok():
        seen[:] = waiters(host, key)
        return len(seen) == n
    wait_for(ok, 10, what or "%d waiter(s) on %s in %s's list" % (n, key, host.name))
    return list(seen)
