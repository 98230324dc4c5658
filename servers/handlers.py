"""Method handlers built from the service descriptors of the contract.

Every method of a hosted service gets a handler here, whether or not a servicer
implements it, so that:

- requests arrive as raw bytes and are parsed here: a malformed message is answered
  ``INVALID_ARGUMENT`` (grpcio's own deserializer would answer ``INTERNAL``);
- a servicer method marked with :func:`raw_request` receives the bytes untouched, to
  hand them to the Rust core (the hot path); it may return bytes the core encoded;
- domain errors are mapped to statuses in one place (:mod:`servers.errors`), and an
  unexpected exception becomes ``INTERNAL`` with the details logged, never leaked;
- a method whose capability is not built answers ``UNIMPLEMENTED`` saying so.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeAlias, TypeVar

import grpc
from google.protobuf import message, message_factory
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor

from lendgate.auth import Authenticator, Partner, acting_as
from lendgate.errors import (
    LendgateError,
    UnimplementedError,
    malformed_message,
)
from servers.errors import grpc_code, trailing_metadata

log = logging.getLogger("lendgate.rpc")

F = TypeVar("F", bound=Callable[..., Any])
M = TypeVar("M", bound=message.Message)
Parse = Callable[[bytes], Any]

RAW_REQUEST_ATTR = "__lendgate_raw_request__"

# grpc ships no type information; the servicer context is untyped.
Ctx: TypeAlias = Any


def raw_request(method: F) -> F:
    """Mark a servicer method as taking the serialized request bytes (the hot path)."""
    setattr(method, RAW_REQUEST_ATTR, True)
    return method


def service_handlers(
    service: ServiceDescriptor, servicer: object | None, authenticator: Authenticator
) -> dict[str, grpc.RpcMethodHandler]:
    """Handlers for every method of ``service``, served by ``servicer`` where it can.

    Every call is authenticated first; the servicer runs with the caller as
    :func:`lendgate.auth.current_partner`.
    """
    return {
        method.name: _method_handler(method, getattr(servicer, method.name, None), authenticator)
        for method in service.methods
    }


def _method_handler(
    method: MethodDescriptor, impl: Callable[..., Any] | None, authenticator: Authenticator
) -> grpc.RpcMethodHandler:
    full_name = f"/{method.containing_service.full_name}/{method.name}"
    request_class = message_factory.GetMessageClass(method.input_type)
    wants_raw = impl is not None and getattr(impl, RAW_REQUEST_ATTR, False)
    parse: Parse = _raw if wants_raw else _parser(request_class)
    if impl is None:
        impl = _not_built(full_name)
    if method.client_streaming and method.server_streaming:
        return grpc.stream_stream_rpc_method_handler(
            _stream_stream(full_name, impl, parse, authenticator), response_serializer=_serialize
        )
    if method.client_streaming:
        return grpc.stream_unary_rpc_method_handler(
            _stream_unary(full_name, impl, parse, authenticator), response_serializer=_serialize
        )
    if method.server_streaming:
        return grpc.unary_stream_rpc_method_handler(
            _unary_stream(full_name, impl, parse, authenticator), response_serializer=_serialize
        )
    return grpc.unary_unary_rpc_method_handler(
        _unary_unary(full_name, impl, parse, authenticator), response_serializer=_serialize
    )


def _serialize(response: message.Message | bytes) -> bytes:
    return response if isinstance(response, bytes) else response.SerializeToString()


def parse_request(request_class: type[M], raw: bytes) -> M:
    """``raw`` parsed as a ``request_class`` message; a malformed one is answered
    ``INVALID_ARGUMENT`` (for servicer methods that take raw bytes, see
    :func:`raw_request`)."""
    try:
        return request_class.FromString(raw)
    except message.DecodeError as exc:
        raise malformed_message(request_class.DESCRIPTOR.full_name, exc) from None


def _raw(raw: bytes) -> bytes:
    """The parse of a :func:`raw_request` method: none."""
    return raw


def _parser(request_class: type[message.Message]) -> Parse:
    return lambda raw: parse_request(request_class, raw)


def _not_built(full_name: str) -> Callable[..., Any]:
    async def not_built(_request: object, _context: object) -> None:
        raise UnimplementedError(f"{full_name} is not built yet in this lendgate release")

    return not_built


async def _fail(full_name: str, exc: Exception, context: Ctx) -> None:
    """Abort the call for ``exc`` with the right status; always raises."""
    if isinstance(exc, LendgateError):
        await context.abort(grpc_code(exc), exc.message, trailing_metadata(exc))
    incident = uuid.uuid4().hex[:12]
    log.error("unhandled error", exc_info=exc, extra={"method": full_name, "incident": incident})
    await context.abort(grpc.StatusCode.INTERNAL, f"internal error (incident {incident})")


@asynccontextmanager
async def _guarded(full_name: str, auth: Authenticator, context: Ctx) -> AsyncIterator[None]:
    """Run the block as the authenticated caller; map any failure to the call's status."""
    try:
        with acting_as(_caller(auth, context)):
            yield
    except grpc.aio.AbortError:
        raise
    except Exception as exc:
        await _fail(full_name, exc, context)


def _unary_unary(
    full_name: str, impl: Callable[..., Awaitable[Any]], parse: Parse, auth: Authenticator
) -> Callable[..., Any]:
    async def handle(raw: bytes, context: Ctx) -> Any:
        async with _guarded(full_name, auth, context):
            return await impl(parse(raw), context)

    return handle


def _unary_stream(
    full_name: str, impl: Callable[..., AsyncIterator[Any]], parse: Parse, auth: Authenticator
) -> Callable[..., Any]:
    async def handle(raw: bytes, context: Ctx) -> AsyncIterator[Any]:
        async with _guarded(full_name, auth, context):
            async for response in _as_async_iter(impl(parse(raw), context)):
                yield response

    return handle


def _stream_unary(
    full_name: str, impl: Callable[..., Awaitable[Any]], parse: Parse, auth: Authenticator
) -> Callable[..., Any]:
    async def handle(requests: AsyncIterator[bytes], context: Ctx) -> Any:
        async with _guarded(full_name, auth, context):
            return await impl(_parsed(requests, parse), context)

    return handle


def _stream_stream(
    full_name: str, impl: Callable[..., AsyncIterator[Any]], parse: Parse, auth: Authenticator
) -> Callable[..., Any]:
    async def handle(requests: AsyncIterator[bytes], context: Ctx) -> AsyncIterator[Any]:
        async with _guarded(full_name, auth, context):
            async for response in _as_async_iter(impl(_parsed(requests, parse), context)):
                yield response

    return handle


def _caller(auth: Authenticator, context: Ctx) -> Partner:
    """The partner a call is made for, authenticated before anything else runs."""
    return auth.authenticate(context.invocation_metadata() or ())


def _parsed(requests: AsyncIterator[bytes], parse: Parse) -> AsyncIterator[Any]:
    """The requests of a client stream, each parsed (raw ones passed as they are)."""
    if parse is _raw:
        return requests
    return _parse_each(requests, parse)


async def _parse_each(requests: AsyncIterator[bytes], parse: Parse) -> AsyncIterator[Any]:
    async for raw in requests:
        yield parse(raw)


async def _as_async_iter(result: Any) -> AsyncIterator[Any]:
    """Servicer stream methods are async generators; an unbuilt one is a coroutine."""
    if hasattr(result, "__aiter__"):
        async for item in result:
            yield item
    else:
        await result
