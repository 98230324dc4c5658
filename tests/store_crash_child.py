"""Child process for the crash test: append events under load, print each acknowledged id.

Run as ``python tests/store_crash_child.py DATABASE_URL PREFIX``. Each line on stdout is the
``request_id`` of an append the store acknowledged (committed). The parent kills this
process with SIGKILL mid-stream and checks every printed id survived.
"""

from __future__ import annotations

import asyncio
import sys

from lendgate.store import NewEvent, StoreSettings, open_store

CONCURRENCY = 64


async def main(url: str, prefix: str) -> None:
    """Append forever from ``CONCURRENCY`` tasks; print each id once its append is acked."""
    settings = StoreSettings(database_url=url, retention_interval_s=0)
    store = await asyncio.to_thread(open_store, None, settings)
    out = sys.stdout

    async def worker(w: int) -> None:
        i = 0
        while True:
            request_id = f"{prefix}-{w}-{i}"
            await store.append_event(
                NewEvent(
                    request_id,
                    "partner",
                    "application",
                    1_700_000_000_000_000 + i,
                    b"payload-" + request_id.encode(),
                    keys=[("phone", f"7999{w:03d}{i % 100:04d}")],
                )
            )
            out.write(request_id + "\n")
            out.flush()
            i += 1

    await asyncio.gather(*(worker(w) for w in range(CONCURRENCY)))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
