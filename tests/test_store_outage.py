"""PostgreSQL unreachable for a while during serving, through the real gRPC server.

The store reaches the test server through a TCP relay this test controls: "down" closes
every relayed connection and refuses new ones at once (what a crashed server or a cut
network look like to the client), "up" relays again. While it is down every check is
UNAVAILABLE (never a hang, never an acknowledgement), the writer retries its connection
with backoff (fewer attempts than failed writes), and once it is up serving resumes; every
check answered OK is in the database and none answered UNAVAILABLE is.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from urllib.parse import urlsplit, urlunsplit

import grpc
import pytest

from lendgate.errors import UnavailableError
from lendgate.scoring import ScoringService
from lendgate.store import NewEvent, StoreSettings, open_store
from lendgate.store.backends import Tx
from lendgate.v1 import scoring_pb2_grpc
from servers.scoring import ScoringServicer
from tests.test_scoring import Person, application
from tests.test_scoring_service import Client
from tests.test_server import serve_in_process
from tests.test_store import postgres_schema

pytestmark = pytest.mark.postgres


class Relay:
    """A TCP relay on 127.0.0.1 to ``target`` that can be taken down and up again."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.up = True
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return  # closed
            if not self.up:
                client.close()
                continue
            server = socket.create_connection(self.target)
            with self._lock:
                self._open.update((client, server))
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        for s in (source, sink):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
        with self._lock:
            self._open.discard(source)
        source.close()  # each socket is the source of exactly one pump

    def down(self) -> None:
        """Cut every relayed connection; refuse new ones until :meth:`back_up`."""
        self.up = False
        with self._lock:
            for s in self._open:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
            self._open.clear()

    def back_up(self) -> None:
        """Relay new connections again."""
        self.up = True

    def close(self) -> None:
        """Stop relaying."""
        self.down()
        self.listener.close()


def test_an_unreachable_postgres_is_unavailable_then_serving_resumes() -> None:
    async def scenario(url: str, relay: Relay) -> None:
        store = await asyncio.to_thread(open_store, None, StoreSettings(database_url=url))
        service = ScoringService(store)
        # Count the writer's connection attempts (the readers' pool retries on its own).
        attempts = 0
        connect = store._db.connect_writer

        def counted() -> Tx:
            nonlocal attempts
            attempts += 1
            return connect()

        store._db.connect_writer = counted  # type: ignore[method-assign]
        answered: list[str] = []
        refused: list[str] = []
        try:
            async with serve_in_process(
                {"lendgate.v1.ScoringService": ScoringServicer(service)}
            ) as ch:
                c = Client(scoring_pb2_grpc.ScoringServiceStub(ch), "bank-a")
                await c.check(application(Person(), app_id="a0"), request_id="ok-0")
                answered.append("ok-0")
                relay.down()
                for i in range(3):
                    with pytest.raises(grpc.aio.AioRpcError) as lost:
                        await c.check(application(Person(), app_id=f"d{i}"), request_id=f"down-{i}")
                    assert lost.value.code() == grpc.StatusCode.UNAVAILABLE
                    refused.append(f"down-{i}")
                # Backoff: a burst of writes, one after the other (each its own commit),
                # fails at once without a connection attempt for each.
                tried = attempts
                for i in range(40):
                    with pytest.raises(UnavailableError):
                        await store.append_event(
                            NewEvent(f"bank-a/burst-{i}", "bank-a", "application", 0, b"")
                        )
                    refused.append(f"burst-{i}")
                assert attempts - tried < 20
                relay.back_up()
                for i in range(400):
                    try:
                        await c.check(application(Person(), app_id=f"u{i}"), request_id=f"up-{i}")
                        answered.append(f"up-{i}")
                        break
                    except grpc.aio.AioRpcError as err:
                        assert err.code() == grpc.StatusCode.UNAVAILABLE
                        refused.append(f"up-{i}")
                        await asyncio.sleep(0.05)
                else:
                    raise AssertionError("serving did not resume")
                for i in range(3):
                    await c.check(application(Person(), app_id=f"n{i}"), request_id=f"next-{i}")
                    answered.append(f"next-{i}")
            for request_id in answered:
                assert await store.get_event_by_request(f"bank-a/{request_id}") is not None
            for request_id in refused:
                assert await store.get_event_by_request(f"bank-a/{request_id}") is None
        finally:
            await service.aclose(snapshot=False)
            await store.aclose()

    with postgres_schema() as url:
        parts = urlsplit(url)
        relay = Relay((parts.hostname or "127.0.0.1", parts.port or 5432))
        netloc = f"{parts.username}@127.0.0.1:{relay.port}" if parts.username else ""
        try:
            asyncio.run(scenario(urlunsplit(parts._replace(netloc=netloc)), relay))
        finally:
            relay.close()
