"""meson test's entry to the cluster suite (issue 19): pytest on this
directory against etcd members and haspd "hosts" it starts itself; exit 77
(skipped) when pytest or etcd is not installed. Writes nothing into the
source tree (no bytecode, no cache)."""

import os
import shutil
import sys

sys.dont_write_bytecode = True
try:
    import pytest
except ImportError:
    print("pytest is not installed (apt-get install python3-pytest): skipped")
    sys.exit(77)

etcd = os.environ.get("HASP_ETCD") or shutil.which("etcd") or "/usr/bin/etcd"
if not os.access(etcd, os.X_OK):
    print("etcd is not installed (apt-get install etcd-server etcd-client): skipped")
    sys.exit(77)
etcdctl = os.environ.get("HASP_ETCDCTL") or shutil.which("etcdctl") or "/usr/bin/etcdctl"
if not os.access(etcdctl, os.X_OK):
    print("etcdctl is not installed (apt-get install etcd-client): skipped")
    sys.exit(77)

sys.exit(pytest.main(["-q", "-p", "no:cacheprovider", "-rfEs",
                      os.path.dirname(os.path.abspath(__file__))] + sys.argv[1:]))
