"""hasp: the Python client of the hasp lock service (haspd).

Named locks and file leases through the daemon, which queues waiters in order
(FIFO), grants at once on release, knows who holds what, gives fencing tokens
and takes the real flock(2) lock on files::

    import hasp

    with hasp.lock("db-migrate", timeout=5, owner="alice") as lease:
        print(lease.fence)

    from hasp import FileLock, Timeout      # py-filelock's API
    with FileLock("data.json.lock", timeout=5):
        ...

    async with hasp.aio.lock_file("counter.txt"):   # asyncio, rapfiles' spelling
        ...

    co = hasp.checkout("part-7", ttl=3600, owner="alice")  # outlives this process
    hasp.checkin(co.token)                                  # from any process

    for ev in hasp.watch("jobs/"):          # every lock event under jobs/
        print(ev["event"], ev.get("key"))

``read_file``, ``write_file`` and ``atomic_write_file`` are rapfiles' file
helpers; an atomic replacement of a file this process holds a lease on
keeps the lock.
"""

from ._paths import default_socket
from .checkouts import Checkout
from .client import Client, Lease, checkin, checkout, lock, lock_file, lock_many, renew
from .errors import (AlreadyHeld, BadRequest, Busy, Cancelled, Conflict, Deadlock, Error,
                     Holder, LeaseLost, LimitReached, PermissionDenied, ProtocolError, Timeout,
                     Unavailable, UnknownLease, Untrusted, Wait)
from .files import (atomic_write_file, atomic_write_file_bytes, read_file, read_file_bytes,
                    write_file, write_file_bytes)
from .filelock import AcquireReturnProxy, BaseFileLock, FileLock, SoftFileLock, UnixFileLock
from .watch import Watch, watch

__version__ = "0.1.0"

__all__ = [
    "__version__", "default_socket", "Client", "Lease", "lock", "lock_file", "lock_many",
    "Checkout", "checkout", "checkin", "renew",
    "FileLock", "SoftFileLock", "UnixFileLock", "BaseFileLock", "AcquireReturnProxy",
    "Error", "Conflict", "Busy", "Timeout", "Cancelled", "AlreadyHeld", "UnknownLease",
    "LeaseLost", "Unavailable", "Untrusted", "PermissionDenied", "Deadlock", "LimitReached",
    "BadRequest", "ProtocolError", "Holder", "Wait", "read_file", "read_file_bytes", "write_file",
    "write_file_bytes", "atomic_write_file", "atomic_write_file_bytes", "aio", "watch", "Watch",
]


def __getattr__(name: str):  # hasp.aio without importing asyncio up front
    if name == "aio":
        import importlib
        return importlib.import_module(".aio", __name__)
    raise AttributeError("module 'hasp' has no attribute %r" % (name,))
