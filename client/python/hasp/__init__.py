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
"""

from ._paths import default_socket
from .client import Client, Lease, lock, lock_file
from .errors import (AlreadyHeld, BadRequest, Busy, Cancelled, Conflict, Deadlock, Error,
                     Holder, LeaseLost, LimitReached, PermissionDenied, ProtocolError, Timeout,
                     Unavailable, UnknownLease, Untrusted)
from .filelock import AcquireReturnProxy, BaseFileLock, FileLock, SoftFileLock, UnixFileLock

__version__ = "0.1.0"

__all__ = [
    "__version__", "default_socket", "Client", "Lease", "lock", "lock_file",
    "FileLock", "SoftFileLock", "UnixFileLock", "BaseFileLock", "AcquireReturnProxy",
    "Error", "Conflict", "Busy", "Timeout", "Cancelled", "AlreadyHeld", "UnknownLease",
    "LeaseLost", "Unavailable", "Untrusted", "PermissionDenied", "Deadlock", "LimitReached",
    "BadRequest", "ProtocolError", "Holder",
]
