"""Whether this process may fork a child that does not use grpc.

grpc's own fork handlers re-initialise grpc in a forked child and can crash it; the
scoring service forks a child to capture its state (``lendgate.scoring.service``). grpc
reads ``GRPC_ENABLE_FORK_SUPPORT`` when it is imported, so the default set here holds only
when lendgate is imported first (the CLI, the servers); otherwise the capture stays in the
serving process.
"""

import os
import sys

if "grpc" not in sys.modules:
    os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

FORK_SAFE = os.environ.get("GRPC_ENABLE_FORK_SUPPORT", "").lower() in ("false", "0")
"""True when grpc's fork handlers are off in this process."""
