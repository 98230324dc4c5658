"""ScoringService servicer: thin routing between the contract and lendgate.scoring.

CheckApplication and CheckPayment take the raw request bytes (the Rust core decodes
them) and answer with bytes: the domain returns the serialized ``Report`` and the
response (``Report report = 1``) is that message behind its field tag.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator

from google.rpc import code_pb2

from lendgate import _core
from lendgate.auth import current_partner
from lendgate.errors import InvalidArgumentError, LendgateError, malformed_message
from lendgate.scoring import ScoringService
from lendgate.v1 import common_pb2, scoring_pb2
from servers.errors import grpc_code
from servers.handlers import Ctx, raw_request

STREAM_WINDOW = 32
"""Items of one ``CheckStream`` in the service at once (read ahead of their answers)."""


GC_GEN0_THRESHOLD = 20_000
"""Allocations between young collections while serving (CPython's default: 700)."""


def tune_gc_for_serving() -> None:
    """Move everything alive now (modules, the recovered state's Python side, grpc and
    protobuf internals) to the collector's permanent generation, and collect the young
    generation less often. A check allocates a few hundred short-lived containers; with
    the defaults the collector runs every few checks and, now and then, a full
    collection walks every object of the process (tens of milliseconds: the latency
    tail). Frozen objects are never walked again; what serving allocates is still
    collected."""
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GC_GEN0_THRESHOLD, gen1, gen2)


def _retrieve(task: asyncio.Task[bytes]) -> None:
    """Consume an abandoned item's outcome, so an error is not logged as never retrieved."""
    if not task.cancelled():
        task.exception()


def _length_delimited(field: int, payload: bytes) -> bytes:
    """``payload`` as length-delimited field ``field`` (1..15) of its enclosing message."""
    size = len(payload)
    prefix = bytearray(((field << 3) | 2,))
    while True:
        byte = size & 0x7F
        size >>= 7
        if size:
            prefix.append(byte | 0x80)
        else:
            prefix.append(byte)
            return bytes(prefix) + payload


def _field_1(message: bytes) -> bytes:
    """``message`` as field 1 (length-delimited) of its enclosing message."""
    return _length_delimited(1, message)


def _split_item(raw: bytes) -> tuple[str, str, bytes]:
    """A ``CheckStreamRequest``'s correlation id, event kind and the unary request it
    stands for (with its ``request_id``); bytes that are not one end the stream
    ``INVALID_ARGUMENT`` (as any malformed message does)."""
    try:
        return _core.split_check_stream_item(raw)
    except _core.CoreInvalidArgument as exc:
        raise malformed_message("lendgate.v1.CheckStreamRequest", exc.args[1]) from None


def item_error(exc: LendgateError) -> common_pb2.ItemError:
    """What a stream or batch item reports instead of the unary call's status."""
    err = common_pb2.ItemError(
        code=code_pb2.Code.Value(grpc_code(exc).name), reason=exc.reason, message=exc.message
    )
    if isinstance(exc, InvalidArgumentError):
        for v in exc.violations:
            err.field_violations.add(field=v.field, description=v.description)
    return err


class ScoringServicer:
    """Implements ``lendgate.v1.ScoringService`` over a :class:`ScoringService`."""

    def __init__(self, service: ScoringService) -> None:
        self.service = service

    async def start(self) -> None:
        """Called once by the server before it takes calls, after the state's recovery:
        tune the collector for serving (:func:`tune_gc_for_serving`)."""
        tune_gc_for_serving()

    @raw_request
    async def CheckApplication(self, request: bytes, context: Ctx) -> bytes:
        return _field_1(
            await self.service.check("application", request, current_partner().partner_id)
        )

    @raw_request
    async def CheckPayment(self, request: bytes, context: Ctx) -> bytes:
        return _field_1(await self.service.check("payment", request, current_partner().partner_id))

    @raw_request
    async def CheckStream(
        self, requests: AsyncIterator[bytes], context: Ctx
    ) -> AsyncIterator[bytes]:
        # Pipelined: up to STREAM_WINDOW items are in the service at once, so one item's
        # store write (group commit) overlaps the next items' scoring. Each item starts
        # scoring only once the previous one's place in the scoring order is fixed, so
        # the items are scored in stream order — the same reports as the unary calls
        # one after another — and answers leave in that order too. The reader takes the
        # next item only while the window has room: past it, gRPC flow control reaches
        # the client. Items stay bytes: Rust takes each apart and decodes its event once
        # (as a unary call's), and the answer is the report's bytes behind their tag.
        partner = current_partner().partner_id
        loop = asyncio.get_running_loop()
        room = asyncio.Semaphore(STREAM_WINDOW)
        answers: asyncio.Queue[asyncio.Task[bytes] | None] = asyncio.Queue()
        failure: list[BaseException] = []

        async def read() -> None:
            previous: asyncio.Future[None] | None = None
            try:
                async for raw in requests:
                    item = _split_item(raw)
                    await room.acquire()
                    turn: asyncio.Future[None] = loop.create_future()
                    answers.put_nowait(
                        loop.create_task(self._stream_item(item, partner, previous, turn))
                    )
                    previous = turn
            except BaseException as exc:  # the client went away: end the answers too
                failure.append(exc)
                raise
            finally:
                answers.put_nowait(None)

        reader = loop.create_task(read())
        try:
            while (task := await answers.get()) is not None:
                out = await task
                room.release()
                yield out
            if failure and not isinstance(failure[0], asyncio.CancelledError):
                raise failure[0]
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader
            # Items already handed to the service finish (they are scored and logged, as
            # a unary call cancelled by its deadline is); nobody awaits their answers.
            while not answers.empty():
                left = answers.get_nowait()
                if left is not None:
                    left.add_done_callback(_retrieve)

    async def _stream_item(
        self,
        item: tuple[str, str, bytes],
        partner: str,
        previous: asyncio.Future[None] | None,
        turn: asyncio.Future[None],
    ) -> bytes:
        """One stream item (:func:`_split_item`), scored after ``previous`` fixed its
        place; resolves ``turn`` once this one's place is fixed (always, whatever
        happens). The serialized ``CheckStreamResponse``."""
        correlation_id, kind, unary = item
        try:
            if previous is not None:
                await previous
            if not correlation_id:
                raise InvalidArgumentError("required", field="correlation_id")
            if not kind:
                raise InvalidArgumentError("one of application, payment", field="event")
            report = await self.service.check(kind, unary, partner, ordered=turn)
            return _length_delimited(1, correlation_id.encode()) + _length_delimited(2, report)
        except LendgateError as exc:
            return scoring_pb2.CheckStreamResponse(
                correlation_id=correlation_id, error=item_error(exc)
            ).SerializeToString()
        finally:
            if not turn.done():
                turn.set_result(None)

    async def ReportOutcome(
        self, request: scoring_pb2.ReportOutcomeRequest, context: Ctx
    ) -> scoring_pb2.ReportOutcomeResponse:
        outcome = await self.service.report_outcome(request, current_partner().partner_id)
        return scoring_pb2.ReportOutcomeResponse(outcome=outcome)

    async def BatchReportOutcomes(
        self, request: scoring_pb2.BatchReportOutcomesRequest, context: Ctx
    ) -> scoring_pb2.BatchReportOutcomesResponse:
        results = await self.service.batch_report_outcomes(
            list(request.requests), current_partner().partner_id
        )
        out = scoring_pb2.BatchReportOutcomesResponse()
        for i, result in enumerate(results):
            item = out.results.add(index=i)
            if isinstance(result, LendgateError):
                item.error.CopyFrom(item_error(result))
            elif isinstance(result, scoring_pb2.Outcome):
                item.outcome.CopyFrom(result)
        return out

    async def GetReport(
        self, request: scoring_pb2.GetReportRequest, context: Ctx
    ) -> scoring_pb2.GetReportResponse:
        report = await self.service.get_report(request.name, current_partner().partner_id)
        return scoring_pb2.GetReportResponse(report=report)

    async def ListIncidents(
        self, request: scoring_pb2.ListIncidentsRequest, context: Ctx
    ) -> scoring_pb2.ListIncidentsResponse:
        incidents, token = await self.service.list_incidents(
            current_partner().partner_id,
            page_size=request.page_size,
            page_token=request.page_token,
            filter_text=request.filter,
        )
        return scoring_pb2.ListIncidentsResponse(incidents=incidents, next_page_token=token)

    async def GetIncident(
        self, request: scoring_pb2.GetIncidentRequest, context: Ctx
    ) -> scoring_pb2.GetIncidentResponse:
        incident = await self.service.get_incident(request.name, current_partner().partner_id)
        return scoring_pb2.GetIncidentResponse(incident=incident)

    async def AssignIncident(
        self, request: scoring_pb2.AssignIncidentRequest, context: Ctx
    ) -> scoring_pb2.AssignIncidentResponse:
        incident = await self.service.assign_incident(
            request.request_id,
            request.name,
            request.assignee,
            request.etag,
            current_partner().partner_id,
        )
        return scoring_pb2.AssignIncidentResponse(incident=incident)

    async def CommentIncident(
        self, request: scoring_pb2.CommentIncidentRequest, context: Ctx
    ) -> scoring_pb2.CommentIncidentResponse:
        comment = await self.service.comment_incident(
            request.request_id, request.name, request.text, current_partner().partner_id
        )
        return scoring_pb2.CommentIncidentResponse(comment=comment)

    async def ResolveIncident(
        self, request: scoring_pb2.ResolveIncidentRequest, context: Ctx
    ) -> scoring_pb2.ResolveIncidentResponse:
        incident, outcome = await self.service.resolve_incident(
            request.request_id,
            request.name,
            request.resolution,
            request.etag,
            current_partner().partner_id,
        )
        return scoring_pb2.ResolveIncidentResponse(incident=incident, outcome=outcome)
