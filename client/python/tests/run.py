"""meson test's entry to the python suite: pytest on this directory, or exit
77 (skipped) when pytest is not installed. Writes nothing into the source
tree (no bytecode, no cache)."""

import os
import sys

sys.dont_write_bytecode = True
try:
    import pytest
except ImportError:
    print("pytest is not installed (apt-get install python3-pytest): skipped")
    sys.exit(77)

sys.exit(pytest.main(["-q", "-p", "no:cacheprovider", "-o", "asyncio_mode=auto",
                      os.path.dirname(os.path.abspath(__file__))] + sys.argv[1:]))
