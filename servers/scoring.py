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

from lendgate.auth import current_partner
from lendgate.errors import InvalidArgumentError, LendgateError
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


def _retrieve(task: asyncio.Task[scoring_pb2.CheckStreamResponse]) -> None:
    """Consume an abandoned item's outcome, so an error is not logged as never retrieved."""
    if not task.cancelled():
        task.exception()


def _field_1(message: bytes) -> bytes:
    """``message`` as field 1 (length-delimited) of its enclosing message."""
    size = len(message)
    prefix = bytearray(b"\x0a")
    while True:
        byte = size & 0x7F
        size >>= 7
        if size:
            prefix.append(byte | 0x80)
        else:
            prefix.append(byte)
            return bytes(prefix) + message


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

    async def CheckStream(
        self, requests: AsyncIterator[scoring_pb2.CheckStreamRequest], context: Ctx
    ) -> AsyncIterator[scoring_pb2.CheckStreamResponse]:
        # Pipelined: up to STREAM_WINDOW items are in the service at once, so one item's
        # store write (group commit) overlaps the next items' scoring. Each item starts
        # scoring only once the previous one's place in the scoring order is fixed, so
        # the items are scored in stream order — the same reports as the unary calls
        # one after another — and answers leave in that order too. The reader takes the
        # next item only while the window has room: past it, gRPC flow control reaches
        # the client.
        partner = current_partner().partner_id
        loop = asyncio.get_running_loop()
        room = asyncio.Semaphore(STREAM_WINDOW)
        answers: asyncio.Queue[asyncio.Task[scoring_pb2.CheckStreamResponse] | None] = (
            asyncio.Queue()
        )
        failure: list[BaseException] = []

        async def read() -> None:
            previous: asyncio.Future[None] | None = None
            try:
                async for item in requests:
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
        item: scoring_pb2.CheckStreamRequest,
        partner: str,
        previous: asyncio.Future[None] | None,
        turn: asyncio.Future[None],
    ) -> scoring_pb2.CheckStreamResponse:
        """One stream item, scored after ``previous`` fixed its place; resolves ``turn``
        once this one's place is fixed (always, whatever happens)."""
        out = scoring_pb2.CheckStreamResponse(correlation_id=item.correlation_id)
        try:
            if previous is not None:
                await previous
            kind = item.WhichOneof("event")
            if not item.correlation_id:
                raise InvalidArgumentError("required", field="correlation_id")
            if kind == "application":
                unary = scoring_pb2.CheckApplicationRequest(
                    request_id=item.request_id, application=item.application
                ).SerializeToString()
            elif kind == "payment":
                unary = scoring_pb2.CheckPaymentRequest(
                    request_id=item.request_id, payment=item.payment
                ).SerializeToString()
            else:
                raise InvalidArgumentError("one of application, payment", field="event")
            out.report.ParseFromString(await self.service.check(kind, unary, partner, ordered=turn))
        except LendgateError as exc:
            out.error.CopyFrom(item_error(exc))
        finally:
            if not turn.done():
                turn.set_result(None)
        return out

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
