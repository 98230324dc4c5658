"""The server factory and the ``lendgate serve`` process.

:func:`create_server` wires every hosted service, health checking and reflection onto
one ``grpc.aio`` server and returns it with the port it bound, so tests can bind port 0.
:func:`serve` runs it until SIGTERM/SIGINT and drains in-flight calls.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import pkgutil
import signal
import socket
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf import descriptor_pool
from google.protobuf.descriptor import ServiceDescriptor
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection

import lendgate.v1
from lendgate import core_version
from lendgate.auth import authenticator_for
from lendgate.config import Config
from lendgate.store import StoreOpenError, open_store
from servers.handlers import service_handlers
from servers.wiring import build_servicers, close_state, recover_state

log = logging.getLogger("lendgate.server")

PACKAGE = "lendgate.v1"

# The services `lendgate serve` hosts. ParticipantNodeService runs in each participant's
# own `lendgate node` process, never in the coordinator.
PLATFORM_SERVICES = (
    f"{PACKAGE}.ScoringService",
    f"{PACKAGE}.RuleAdminService",
    f"{PACKAGE}.StrategyService",
    f"{PACKAGE}.AuctionService",
    f"{PACKAGE}.ModelRegistryService",
)


class ServerStartError(Exception):
    """The server could not start (e.g. its port is taken); the message says why."""


@dataclass
class RunningServer:
    """A started server: the grpc object, the port it bound and its health servicer."""

    server: grpc.aio.Server
    port: int
    health: HealthServicer
    services: tuple[str, ...] = field(default=())

    async def stop(self, grace_s: float) -> None:
        """Report NOT_SERVING, refuse new calls and give in-flight ones ``grace_s`` seconds."""
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace_s)


def service_descriptor(full_name: str) -> ServiceDescriptor:
    """The descriptor of a service of the contract (all ``lendgate.v1`` modules loaded)."""
    for info in pkgutil.iter_modules(lendgate.v1.__path__):
        if info.name.endswith("_pb2"):
            importlib.import_module(f"{PACKAGE}.{info.name}")
    return descriptor_pool.Default().FindServiceByName(full_name)


async def create_server(
    config: Config, servicers: dict[str, object] | None = None
) -> RunningServer:
    """Create and start a server hosting :data:`PLATFORM_SERVICES` on ``config.listen``.

    ``servicers`` maps a service's full name to the object implementing (some of) its
    methods; methods nobody implements answer UNIMPLEMENTED.
    Raises :class:`ServerStartError` when the address cannot be bound, and
    :class:`~lendgate.config.ConfigError` for unusable authentication settings.
    """
    servicers = servicers or {}
    options: list[tuple[str, Any]] = [
        # Without this, a second server on a busy port would silently share it.
        ("grpc.so_reuseport", 0),
        ("grpc.max_receive_message_length", config.max_message_bytes),
        ("grpc.max_send_message_length", config.max_message_bytes),
    ]
    if config.max_pending_calls:
        # The queue in front of the accept loop: bounded, so overload is refused instead
        # of making every call late (Config.max_pending_calls; docs/SCORING.md, Overload).
        options += [
            ("grpc.server.max_pending_requests_hard_limit", config.max_pending_calls),
            ("grpc.server.max_pending_requests", config.max_pending_calls // 2),
            # grpc's age limit on waiting calls is left at its default (30 s): grpc's
            # core applies it to every waiting call, however short the queue, so a
            # one-second limit cancelled calls whenever the server paused for a second
            # (a snapshot on a loaded machine) with nothing queued behind them.
        ]
    authenticator = authenticator_for(config)
    # Past the limit grpc refuses a call at once with RESOURCE_EXHAUSTED: overload is
    # answered before the queue makes every call late.
    server = grpc.aio.server(
        options=options, maximum_concurrent_rpcs=config.max_concurrent_rpcs or None
    )
    for name in PLATFORM_SERVICES:
        handlers = service_handlers(service_descriptor(name), servicers.get(name), authenticator)
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(name, handlers),))

    health = HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    reflection.enable_server_reflection(
        (
            *PLATFORM_SERVICES,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
        ),
        server,
    )
    _check_bindable(config)
    try:
        port = server.add_insecure_port(config.listen)
    except RuntimeError as exc:
        raise ServerStartError(f"cannot listen on {config.listen}: {exc}") from None
    if port == 0:
        raise ServerStartError(f"cannot listen on {config.listen}: address in use or unavailable")
    await server.start()
    for name in ("", *PLATFORM_SERVICES):
        await health.set(name, health_pb2.HealthCheckResponse.SERVING)
    return RunningServer(server, port, health, PLATFORM_SERVICES)


def _check_bindable(config: Config) -> None:
    """Fail with a clear message before gRPC's C core logs its own bind error."""
    host, port = config.host_port
    if port == 0:
        return
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ServerStartError(f"cannot listen on {config.listen}: {exc.strerror}") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        try:
            probe.bind(address)
        except OSError as exc:
            raise ServerStartError(f"cannot listen on {config.listen}: {exc.strerror}") from None


async def serve(config: Config) -> None:
    """Run the platform until SIGTERM or SIGINT, then shut down gracefully."""
    try:
        store = await asyncio.to_thread(open_store, config.effective_database_url)
    except StoreOpenError as exc:
        raise ServerStartError(str(exc)) from None
    try:
        servicers = build_servicers(config, store)
        _check_bindable(config)  # before a recovery that may take a while, not after
        await recover_state(servicers)
        running = await create_server(config, servicers)
    except BaseException:
        await store.aclose()
        raise
    host, _ = config.host_port
    log.info(
        "serving",
        extra={
            "address": f"{host}:{running.port}",
            "port": running.port,
            "services": list(running.services),
            "core_version": core_version,
            "database_url": config.effective_database_url,
        },
    )
    if config.auth_mode == "dev":
        log.warning(
            "auth_mode is 'dev': any caller may act as any partner; use 'token' in production"
        )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down", extra={"grace_period_s": config.grace_period_s})
    await running.stop(config.grace_period_s)
    await close_state(servicers)
    await store.aclose()
    log.info("stopped")
