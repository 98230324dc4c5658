"""The log of strategy decisions, kept in the store's event log.

Every evaluation served by the API is appended as an event of kind
``strategy_decision``: the payload is the request as it arrived (its input included, so
a simulation can replay it), the stored response is the answer sent (output, strategy
version, A/B variant and abTest paths). The client's ``request_id`` is the event's
idempotency key, so a retried request gets the first decision back unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

from lendgate.store import NewEvent, Store

KIND = "strategy_decision"


def _subject(strategy: str) -> str:
    # Prefixed so that a strategy id never meets an application id of the same partner.
    return f"strategy:{strategy}"


@dataclass(frozen=True)
class StoredDecision:
    """One logged decision: the request and response bytes and when it was made."""

    request_id: str
    partner_id: str
    strategy: str
    decided_at_us: int
    request: bytes
    response: bytes


class DecisionLog:
    """Appends decisions to, and reads them back from, the store's event log."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def find(self, request_id: str, partner_id: str) -> bytes | None:
        """The response first sent for ``request_id`` by this partner, if any."""
        event = await self._store.get_event_by_request(request_id)
        if event is None or event.kind != KIND or event.partner_id != partner_id:
            return None
        return event.response

    async def record(
        self,
        *,
        request_id: str,
        partner_id: str,
        strategy: str,
        decided_at_us: int,
        request: bytes,
        response: bytes,
    ) -> bytes:
        """Append a decision; returns the response to send (the first one on a retry)."""
        ack = await self._store.append_event(
            NewEvent(
                request_id=request_id,
                partner_id=partner_id,
                kind=KIND,
                event_time_us=decided_at_us,
                payload=request,
                subject_id=_subject(strategy),
                response=response,
            )
        )
        return ack.response if ack.response is not None else response

    async def between(
        self, partner_id: str, strategy: str, start_us: int, end_us: int
    ) -> list[StoredDecision]:
        """The partner's decisions by ``strategy`` made in ``[start_us, end_us)``, in order."""
        events = await self._store.events_by_subject(partner_id, _subject(strategy))
        return [
            StoredDecision(
                e.request_id, e.partner_id, strategy, e.event_time_us, e.payload, e.response or b""
            )
            for e in events
            if e.kind == KIND and start_us <= e.event_time_us < end_us
        ]
