"""Domain errors. Each knows its gRPC status; one server layer maps them.

Domain code raises these and never imports gRPC: ``servers/errors.py`` turns them into
``google.rpc.Status`` with ``BadRequest`` field violations and an ``ErrorInfo`` reason.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import Enum

from lendgate import _core


class Code(Enum):
    """The gRPC status codes that domain errors use (names as in ``grpc.StatusCode``)."""

    INVALID_ARGUMENT = "INVALID_ARGUMENT"
    NOT_FOUND = "NOT_FOUND"
    PERMISSION_DENIED = "PERMISSION_DENIED"
    UNAUTHENTICATED = "UNAUTHENTICATED"
    ALREADY_EXISTS = "ALREADY_EXISTS"
    FAILED_PRECONDITION = "FAILED_PRECONDITION"
    ABORTED = "ABORTED"
    RESOURCE_EXHAUSTED = "RESOURCE_EXHAUSTED"
    UNAVAILABLE = "UNAVAILABLE"
    UNIMPLEMENTED = "UNIMPLEMENTED"


@dataclass(frozen=True)
class FieldViolation:
    """One invalid field: its path in the request (``applicant.passport.number``) and why."""

    field: str
    description: str


class LendgateError(Exception):
    """Base of every error lendgate reports to a client.

    ``reason`` is a stable, machine-readable UPPER_SNAKE string (sent as
    ``google.rpc.ErrorInfo.reason``); the message is for humans.
    """

    code = Code.FAILED_PRECONDITION
    reason = "FAILED_PRECONDITION"

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if reason is not None:
            self.reason = reason

    def grpc_status_code(self) -> Code:
        """The gRPC status code this error is reported with."""
        return self.code


class InvalidArgumentError(LendgateError):
    """The request can never succeed as sent; ``violations`` say which fields and why."""

    code = Code.INVALID_ARGUMENT
    reason = "INVALID_ARGUMENT"

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        violations: list[FieldViolation] | None = None,
        reason: str | None = None,
    ) -> None:
        super().__init__(message, reason=reason)
        self.violations = list(violations or [])
        if field is not None:
            self.violations.append(FieldViolation(field, message))


def malformed_message(type_name: str, why: object) -> InvalidArgumentError:
    """The error for bytes that are not a ``type_name`` message (reason
    ``MALFORMED_MESSAGE``), wherever they are decoded: grpc's own deserializer would
    answer INTERNAL instead."""
    return InvalidArgumentError(
        f"the request is not a valid {type_name} message: {why}", reason="MALFORMED_MESSAGE"
    )


class ExpressionEvaluationError(InvalidArgumentError):
    """An expression failed on this input: a type mismatch, an overflow, a limit hit."""

    reason = "EXPRESSION_EVALUATION"


class NotFoundError(LendgateError):
    """The named resource does not exist."""

    code = Code.NOT_FOUND
    reason = "NOT_FOUND"


class AlreadyExistsError(LendgateError):
    """A resource with that name exists already."""

    code = Code.ALREADY_EXISTS
    reason = "ALREADY_EXISTS"


class PermissionDeniedError(LendgateError):
    """The caller is known but may not do this (wrong role, bad signature of its own)."""

    code = Code.PERMISSION_DENIED
    reason = "PERMISSION_DENIED"


class UnauthenticatedError(LendgateError):
    """The call carries no valid proof of who makes it."""

    code = Code.UNAUTHENTICATED
    reason = "UNAUTHENTICATED"


class FailedPreconditionError(LendgateError):
    """The system is not in a state where the request can run (e.g. a stale etag)."""


class UnavailableError(LendgateError):
    """A dependency (the database) is unreachable for now; the client may retry."""

    code = Code.UNAVAILABLE
    reason = "UNAVAILABLE"


class ResourceExhaustedError(LendgateError):
    """Too much work is in flight: the call is shed before latency collapses; retry later."""

    code = Code.RESOURCE_EXHAUSTED
    reason = "OVERLOADED"


class AbortedError(LendgateError):
    """A concurrent change won: the etag sent is stale (reason ``ETAG_MISMATCH``)."""

    code = Code.ABORTED
    reason = "ABORTED"


class UnimplementedError(LendgateError):
    """The capability behind the method has not been built yet."""

    code = Code.UNIMPLEMENTED
    reason = "NOT_BUILT_YET"


@contextmanager
def core_errors() -> Iterator[None]:
    """Translate the Rust core's exceptions raised inside the block into domain errors."""
    try:
        yield
    except _core.CoreInvalidArgument as exc:
        field, reason = exc.args
        raise InvalidArgumentError(reason, field=field) from exc
    except _core.CoreEvaluationError as exc:
        field, reason = exc.args
        raise ExpressionEvaluationError(reason, field=field) from exc
    except _core.CoreNotFound as exc:
        kind, name = exc.args
        raise NotFoundError(f"{kind} {name!r} not found") from exc
