"""The one place where domain errors become gRPC statuses.

A :class:`~lendgate.errors.LendgateError` is sent as ``google.rpc.Status`` in the
``grpc-status-details-bin`` trailer, with an ``ErrorInfo`` (stable reason, domain
``lendgate.dev``) and, for invalid input, a ``BadRequest`` listing every bad field; an
overload (RESOURCE_EXHAUSTED) carries a ``RetryInfo`` with the delay to wait.
"""

from __future__ import annotations

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

from lendgate.errors import InvalidArgumentError, LendgateError, ResourceExhaustedError

ERROR_DOMAIN = "lendgate.dev"
STATUS_DETAILS_KEY = "grpc-status-details-bin"
RETRY_DELAY_MS = 50
"""The delay an overloaded server asks a client to wait before retrying."""


def grpc_code(err: LendgateError) -> grpc.StatusCode:
    """The ``grpc.StatusCode`` of a domain error."""
    return grpc.StatusCode[err.grpc_status_code().value]


def to_status_proto(err: LendgateError) -> status_pb2.Status:
    """Build the ``google.rpc.Status`` (with details) that reports ``err``."""
    code = grpc_code(err)
    status = status_pb2.Status(code=code_pb2.Code.Value(code.name), message=err.message)
    info = error_details_pb2.ErrorInfo(reason=err.reason, domain=ERROR_DOMAIN)
    _pack(status, info)
    if isinstance(err, InvalidArgumentError) and err.violations:
        bad = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(
                    field=v.field, description=v.description
                )
                for v in err.violations
            ]
        )
        _pack(status, bad)
    if isinstance(err, ResourceExhaustedError):
        hint = error_details_pb2.RetryInfo()
        hint.retry_delay.FromMilliseconds(RETRY_DELAY_MS)
        _pack(status, hint)
    return status


def trailing_metadata(err: LendgateError) -> tuple[tuple[str, bytes], ...]:
    """The trailer that carries the rich status of ``err``."""
    return ((STATUS_DETAILS_KEY, to_status_proto(err).SerializeToString()),)


def _pack(
    status: status_pb2.Status,
    detail: error_details_pb2.ErrorInfo
    | error_details_pb2.BadRequest
    | error_details_pb2.RetryInfo,
) -> None:
    packed = any_pb2.Any()
    packed.Pack(detail)
    status.details.append(packed)
