"""The auction coordinator: participants, auctions, sealed bids, the deadline, opening,
the winner, proofs, the deal registry and the ledger (docs/AUCTION_PROTOCOL.md).

Protobuf messages are the domain vocabulary here (they are what gets signed); no gRPC
types. The servicer in ``servers/auction.py`` only authenticates the caller and
delegates.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import time
import uuid
from collections import OrderedDict, defaultdict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from google.protobuf.message import DecodeError, Message
from google.protobuf.timestamp_pb2 import Timestamp

from lendgate import _core
from lendgate.auction import crypto, keystore
from lendgate.auction.books import Books
from lendgate.auction.crypto import CryptoError, KeyPair
from lendgate.auction.ledger import Entry, EntryType, Ledger
from lendgate.auction.records import AuctionRecord, Bid
from lendgate.errors import (
    AbortedError,
    AlreadyExistsError,
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
    UnauthenticatedError,
)
from lendgate.listfilter import Fields, compile_filter
from lendgate.store import Store
from lendgate.v1 import auction_pb2 as pb
from lendgate.v1 import common_pb2

T = TypeVar("T")
PROTOCOL_VERSION = "lendgate-auction/1"
IDEMPOTENCY_KEYS = 100_000
"""Answers remembered for retried writes (``request_id``), the oldest forgotten first."""
PLATFORM = "platform"
COORDINATOR = "coordinator"
INNER_LABEL = "lendgate.v1 bid opening inner"
OUTER_LABEL = "lendgate.v1 bid opening outer"
LEAD_KEY_LABEL = "lendgate.v1 lead key"
MAX_AMOUNT_MINOR = 1 << 62
CALL_AUTH_SKEW_S = 30.0
TIE_BREAK = "highest amount; a tie goes to the lower leaf index (the earlier receipt)"
OFFER_MAX_AGE_S = 30.0
OPERATOR_PREFIX = "operators/"
RESTART_CANCEL_REASON = "the coordinator restarted before the auction was decided"
UNSEAL_CANCEL_REASON = "the seller did not unseal in time"


@dataclass(frozen=True)
class AuctionConfig:
    """Protocol parameters of one coordinator."""

    bidding_window_s: float = 2.0
    min_bidding_window_s: float = 0.05
    max_bidding_window_s: float = 30.0
    unseal_timeout_s: float = 2.0
    rejection_window_s: float = 600.0
    duplicate_window_s: float = 30 * 86400.0
    commission_bps: int = 1000
    cpa_payout_minor: int = 500_000
    refusal_fee_minor: int = 10_000
    close_when_all_bid: bool = True
    """Close the bid set as soon as every invited buyer has bid, before the deadline."""
    max_rejections: int = 3
    """Sanction: a buyer that rejects this many won leads within ``rejection_count_window_s``
    is suspended (0 = never)."""
    rejection_count_window_s: float = 30 * 86400.0
    max_unpaid_minor: int = 0
    """Sanction: a participant whose ledger balance falls below minus this (per currency)
    is suspended until it settles (0 = no limit)."""
    auto_activate: bool = True
    """Dev/test networks: self-registered participants start ACTIVE, not PENDING."""
    operators: dict[str, bytes] = field(default_factory=dict)
    """Operator identities: ``operators/{id}`` -> Ed25519 public key. Operators sign
    their calls like participants do; they activate, suspend and lift suspensions, and
    read every participant and the network-wide metrics. They cannot trade."""


def ts(t: float) -> Timestamp:
    out = Timestamp()
    out.FromNanoseconds(int(t * 1e9))
    return out


def entry_proto(entry: Entry) -> pb.LedgerEntry:
    """The wire form of a booked ledger entry."""
    out = pb.LedgerEntry(
        name=f"ledgerEntries/{entry.sequence}",
        sequence=entry.sequence,
        type=entry.type.value,  # type: ignore[arg-type]
        deal=entry.deal,
        reverses=f"ledgerEntries/{entry.reverses}" if entry.reverses else "",
        description=entry.description,
    )
    for p in entry.postings:
        out.postings.add(
            account=p.account,
            amount=common_pb2.Money(amount_minor=p.amount_minor, currency=entry.currency),
        )
    out.post_time.CopyFrom(ts(entry.post_time))
    return out


def participant_name(participant_id: str) -> str:
    """``participants/{id}``."""
    return f"participants/{participant_id}"


class Coordinator:
    """The coordinator's domain service. One instance per process; not thread-safe
    (runs on the server's event loop)."""

    def __init__(
        self,
        config: AuctionConfig | None = None,
        keys: KeyPair | None = None,
        store: Store | None = None,
        *,
        key_file: Path | None = None,
    ) -> None:
        """``store`` set: participants, auctions, deals and the ledger are restored from
        it now (blocking, at start) and written to it as they change (see
        :mod:`lendgate.auction.books`); auctions a crash left undecided are cancelled
        with a signed result. ``key_file``: the keys are read from it (made on first
        start), see :mod:`lendgate.auction.keystore`; else ``keys``, else fresh keys."""
        self.config = config or AuctionConfig()
        self.participants: dict[str, pb.Participant] = {}
        self.auctions: dict[str, AuctionRecord] = {}
        self.deals: dict[str, pb.Deal] = {}
        self.ledger = Ledger()
        self.books = Books(store) if store is not None else None
        self._phones: dict[bytes, float] = {}
        self._events: dict[str, list[pb.SubscribeResponse]] = defaultdict(list)
        self._wakeups: dict[str, asyncio.Event] = defaultdict(asyncio.Event)
        self._wins_per_day: dict[tuple[str, int], int] = defaultdict(int)
        self._spend_per_day: dict[tuple[str, int], int] = defaultdict(int)
        self._rejections: dict[str, list[float]] = defaultdict(list)
        self._answers: OrderedDict[tuple[str, str, str], tuple[bytes, Any]] = OrderedDict()
        self._background: set[asyncio.Task[None]] = set()
        # Test hook: a dishonest coordinator picks a different winner (see tests).
        self.cheat_pick_second: bool = False
        known_keys: list[bytes] = []
        restored = None
        if self.books is not None:
            restored = self.books.restore()
            self.ledger, self.deals = restored.ledger, restored.deals
            self.participants = restored.participants
            known_keys = restored.signing_keys
        if key_file is not None:
            keys = keystore.load_or_create(key_file, known_keys)
        self.keys = keys or KeyPair.generate()
        self._signer_of: KeyPair | None = None
        self._signer = _core.Ed25519Signer(bytes(32))
        if self.books is not None:
            self.books.key_used(self.keys.signing_public, self.keys.encryption_public)
        if restored is not None:
            self._restore(restored.auctions)

    def _restore(self, auctions: list[AuctionRecord]) -> None:
        """Adopt the stored auctions and rebuild what is derived from them and the deals
        (duplicate detection, caps and budgets, rejection counts). An auction the crash
        left OPEN or UNSEALING is cancelled with a signed result (no bid was opened, no
        deal exists: a deal is stored only with its decided auction)."""
        for record in auctions:
            self.auctions[record.name] = record
            if record.offer.phone_keyed_hash:
                self._phones[record.offer.phone_keyed_hash] = record.open_time
            if record.state in (pb.AUCTION_STATE_OPEN, pb.AUCTION_STATE_UNSEALING):
                record.state = pb.AUCTION_STATE_CANCELLED
                record.ranking = []
                self._sign_result(record, None, RESTART_CANCEL_REASON)
            record.published = True
            record.decided.set()
        for deal in self.deals.values():
            day = int(deal.create_time.ToNanoseconds() / 1e9 // 86400)
            self._wins_per_day[(deal.buyer, day)] += 1
            if deal.status != pb.LEAD_STATUS_REJECTED_BY_BUYER:
                self._spend_per_day[(deal.buyer, day)] += deal.price.amount_minor
            for change in deal.history:
                if change.status == pb.LEAD_STATUS_REJECTED_BY_BUYER:
                    self._rejections[deal.buyer].append(change.record_time.ToNanoseconds() / 1e9)

    async def start(self) -> None:
        """Make the start-up writes durable (the keys in use, cancelled auctions) before
        the first call is served."""
        if self.books is not None:
            await self.books.flush()

    # --- identity ----------------------------------------------------------------

    def info(self) -> pb.GetCoordinatorInfoResponse:
        """Public keys and parameters."""
        c = self.config
        out = pb.GetCoordinatorInfoResponse(
            signing_public_key=self.keys.signing_public,
            encryption_public_key=self.keys.encryption_public,
            protocol_version=PROTOCOL_VERSION,
            cipher_suite=pb.CIPHER_SUITE_STANDARD,
            commission_bps=c.commission_bps,
        )
        out.default_bidding_window.FromNanoseconds(int(c.bidding_window_s * 1e9))
        out.min_bidding_window.FromNanoseconds(int(c.min_bidding_window_s * 1e9))
        out.max_bidding_window.FromNanoseconds(int(c.max_bidding_window_s * 1e9))
        out.lead_rejection_window.FromNanoseconds(int(c.rejection_window_s * 1e9))
        out.duplicate_window.FromNanoseconds(int(c.duplicate_window_s * 1e9))
        return out

    def register(self, request: pb.RegisterParticipantRequest) -> pb.Participant:
        """Register a participant after checking its proof of possession."""
        pid = request.participant_id
        if (
            not pid
            or len(pid) > 64
            or not all(ch.isdigit() or "a" <= ch <= "z" or ch == "-" for ch in pid)
        ):
            raise InvalidArgumentError("1..64 of [a-z0-9-]", field="participant_id")
        p = request.participant
        pop = pid.encode() + b"\x00" + p.encryption_public_key
        try:
            ok = _core.verify_signature(
                p.signing_public_key,
                "lendgate.v1.ProofOfPossession",
                pop,
                request.proof_of_possession,
            )
        except _core.CoreInvalidArgument as exc:
            raise InvalidArgumentError(exc.args[1], field=f"participant.{exc.args[0]}") from None
        if not ok or len(p.encryption_public_key) != 32:
            raise PermissionDeniedError("the proof of possession does not verify")
        name = participant_name(pid)
        existing = self.participants.get(name)
        if existing is not None:
            if existing.signing_public_key == p.signing_public_key:
                return existing  # idempotent retry
            raise AlreadyExistsError(f"{name} exists")
        stored = pb.Participant()
        stored.CopyFrom(p)
        stored.name = name
        stored.state = (
            pb.PARTICIPANT_STATE_ACTIVE
            if self.config.auto_activate
            else pb.PARTICIPANT_STATE_PENDING
        )
        now = ts(time.time())
        stored.create_time.CopyFrom(now)
        stored.update_time.CopyFrom(now)
        stored.etag = uuid.uuid4().hex[:8]
        self.participants[name] = stored
        self._persist_participant(stored)
        return stored

    def _persist_participant(self, p: pb.Participant) -> None:
        if self.books is not None:
            self.books.participant_changed(p)

    def participant(self, name: str) -> pb.Participant:
        """The participant ``name``; NOT_FOUND otherwise."""
        p = self.participants.get(name)
        if p is None:
            raise NotFoundError(f"{name} not found")
        return p

    def authenticate(self, participant: str, method: str, unix_ms: int, signature: bytes) -> str:
        """Check a call's signature (see docs, "Caller identity"); returns the caller
        (a participant, or an operator ``operators/{id}``)."""
        if participant.startswith(OPERATOR_PREFIX):
            key = self.config.operators.get(participant)
        else:
            p = self.participants.get(participant)
            key = None if p is None else p.signing_public_key
        if key is None or abs(time.time() * 1000 - unix_ms) > CALL_AUTH_SKEW_S * 1000:
            raise UnauthenticatedError("unknown participant or stale call signature")
        payload = crypto.call_auth_payload(participant, method, unix_ms)
        try:
            ok = _core.verify_signature(key, crypto.CALL_AUTH_TYPE, payload, signature)
        except _core.CoreInvalidArgument:
            ok = False
        if not ok:
            raise UnauthenticatedError("the call signature does not verify")
        return participant

    def payload_signer(self, signed: pb.SignedPayload) -> str:
        """The registered participant a signed payload claims as its signer (the
        signature itself is checked where the payload is used); UNAUTHENTICATED for
        anyone else."""
        if signed.signer not in self.participants:
            raise UnauthenticatedError("the payload's signer is not a registered participant")
        return signed.signer

    def is_operator(self, caller: str) -> bool:
        """Whether ``caller`` (authenticated) is one of the configured operators."""
        return caller in self.config.operators

    def readable_participant(self, caller: str, name: str) -> pb.Participant:
        """``name`` as ``caller`` may read it: the operator any, a participant itself."""
        name = name or caller
        if name != caller and not self.is_operator(caller):
            raise PermissionDeniedError("a participant may read only itself")
        return self.participant(name)

    def list_participants(
        self, caller: str, request: pb.ListParticipantsRequest
    ) -> pb.ListParticipantsResponse:
        """Participants ordered by id: every one for the operator (filtered by
        AIP-160 over ``state`` and ``display_name``), only itself for a participant."""
        if request.page_size < 0:
            raise InvalidArgumentError("must not be negative", field="page_size")
        size = min(request.page_size or 100, 1000)
        wanted = compile_filter(request.filter, PARTICIPANT_FILTER)
        names = sorted(self.participants) if self.is_operator(caller) else [caller]
        out = pb.ListParticipantsResponse()
        for name in names:
            p = self.participants.get(name)
            if p is None or name <= request.page_token:
                continue
            if not wanted(_participant_fields(p)):
                continue
            if len(out.participants) == size:
                out.next_page_token = out.participants[-1].name
                break
            out.participants.append(p)
        return out

    def update_participant(
        self, caller: str, request: pb.UpdateParticipantRequest
    ) -> pb.Participant:
        """Apply the masked fields of ``request.participant`` (see the proto). The operator
        may change anyone's state: ACTIVE activates or lifts a suspension, SUSPENDED
        suspends (with ``suspension_reason``)."""
        new = request.participant
        current = self.participant(new.name)
        operator = self.is_operator(caller)
        if new.name != caller and not operator:
            raise PermissionDeniedError("a participant may update only itself")
        paths = list(request.update_mask.paths)
        if not paths:
            raise InvalidArgumentError("required", field="update_mask")
        if not new.etag:
            raise InvalidArgumentError("required", field="participant.etag")
        if new.etag != current.etag:
            raise AbortedError("the participant changed since it was read; read it again")
        updated = pb.Participant()
        updated.CopyFrom(current)
        for path in paths:
            if path in ("signing_public_key", "encryption_public_key"):
                self._check_new_keys(new, request.proof_of_possession, updated)
            elif path == "state":
                if not operator:
                    raise PermissionDeniedError("only the operator changes a participant's state")
                _apply_state(updated, new)
            elif path != "suspension_reason":
                _apply_field(updated, new, path)
        updated.etag = uuid.uuid4().hex[:8]
        updated.update_time.CopyFrom(ts(time.time()))
        self.participants[updated.name] = updated
        self._persist_participant(updated)
        if updated.state == pb.PARTICIPANT_STATE_ACTIVE and current.state != updated.state:
            # A lifted suspension starts a clean slate of rejections.
            self._rejections.pop(updated.name, None)
        return updated

    def _check_new_keys(self, new: pb.Participant, proof: bytes, updated: pb.Participant) -> None:
        pid = new.name.removeprefix("participants/")
        signing = new.signing_public_key or updated.signing_public_key
        encryption = new.encryption_public_key or updated.encryption_public_key
        try:
            ok = _core.verify_signature(
                signing,
                "lendgate.v1.ProofOfPossession",
                pid.encode() + b"\x00" + encryption,
                proof,
            )
        except _core.CoreInvalidArgument as exc:
            raise InvalidArgumentError(exc.args[1], field=f"participant.{exc.args[0]}") from None
        if not ok or len(encryption) != 32:
            raise PermissionDeniedError("the proof of possession of the new keys does not verify")
        updated.signing_public_key, updated.encryption_public_key = signing, encryption

    def _verify_from(self, caller: str, signed: pb.SignedPayload, cls: type[crypto.M]) -> crypto.M:
        if signed.signer != caller:
            raise PermissionDeniedError("the payload is not signed by the caller")
        try:
            return crypto.verify(signed, cls, self.participant(caller).signing_public_key)
        except CryptoError as exc:
            raise PermissionDeniedError(str(exc)) from None

    def _active(self, name: str) -> pb.Participant:
        p = self.participant(name)
        if p.state != pb.PARTICIPANT_STATE_ACTIVE:
            raise FailedPreconditionError(f"{name} is not active", reason="PARTICIPANT_NOT_ACTIVE")
        return p

    def _sign(self, message: Message) -> pb.SignedPayload:
        # The Rust signer: the same deterministic signature as crypto.sign, at half the
        # cost; made once per key (tests may swap the keys).
        if self._signer_of is not self.keys:
            seed = self.keys.signing.private_bytes_raw()
            self._signer, self._signer_of = _core.Ed25519Signer(seed), self.keys
        payload = message.SerializeToString(deterministic=True)
        signature = self._signer.sign(message.DESCRIPTOR.full_name, payload)
        return pb.SignedPayload(payload=payload, signature=signature, signer=COORDINATOR)

    def once(
        self, caller: str, method: str, request_id: str, request: bytes, write: Callable[[], T]
    ) -> T:
        """Run ``write`` once per ``request_id`` of ``caller``: a retry gets the first
        answer (nothing is booked twice); the key reused for another request is
        INVALID_ARGUMENT. No key: no deduplication. Failures are not remembered."""
        if not request_id:
            return write()
        if len(request_id) > 128:
            raise InvalidArgumentError("at most 128 characters", field="request_id")
        key = (caller, method, request_id)
        digest = hashlib.sha256(request).digest()
        seen = self._answers.get(key)
        if seen is not None:
            if seen[0] != digest:
                raise InvalidArgumentError(
                    "already used for a different request", field="request_id"
                )
            answer: T = seen[1]
            return answer
        result = write()
        self._answers[key] = (digest, result)
        if len(self._answers) > IDEMPOTENCY_KEYS:
            self._answers.popitem(last=False)
        return result

    # --- events ------------------------------------------------------------------

    def _emit(self, participant: str, event: pb.SubscribeResponse) -> None:
        queue = self._events[participant]
        event.sequence = len(queue) + 1
        queue.append(event)
        self._wakeups[participant].set()

    async def subscribe(self, participant: str, after: int) -> AsyncIterator[pb.SubscribeResponse]:
        """Events for ``participant`` after sequence ``after`` (0 = from now), forever."""
        queue = self._events[participant]
        position = after if after > 0 else len(queue)
        while True:
            while position < len(queue):
                yield queue[position]
                position += 1
            wake = self._wakeups[participant]
            wake.clear()
            await wake.wait()

    # --- auction -----------------------------------------------------------------

    def _auction(self, name: str) -> AuctionRecord:
        record = self.auctions.get(name)
        if record is None:
            raise NotFoundError(f"{name} not found")
        return record

    def open_auction(self, caller: str, signed_offer: pb.SignedPayload) -> pb.Auction:
        """Open an auction for the caller's signed offer and announce it."""
        offer = self._verify_from(caller, signed_offer, pb.LeadOffer)
        self._active(caller)
        if offer.seller != caller:
            raise PermissionDeniedError("offer.seller must be the caller")
        now = time.time()
        if abs(now - offer.create_time.ToNanoseconds() / 1e9) > OFFER_MAX_AGE_S:
            raise InvalidArgumentError("older than 30 s", field="offer.create_time")
        if len(offer.lead_ref) != 16:
            raise InvalidArgumentError("must be 16 bytes", field="offer.lead_ref")
        if len(offer.seller_layer_public_key) != 32:
            raise InvalidArgumentError("must be 32 bytes", field="offer.seller_layer_public_key")
        price = offer.min_bid_price
        if not price.currency or not 0 < price.amount_minor <= MAX_AMOUNT_MINOR:
            raise InvalidArgumentError("must be a positive amount", field="offer.min_bid_price")
        c = self.config
        window = c.bidding_window_s
        if offer.HasField("bidding_window"):
            window = offer.bidding_window.ToNanoseconds() / 1e9
            if not c.min_bidding_window_s <= window <= c.max_bidding_window_s:
                raise InvalidArgumentError("out of the allowed range", field="offer.bidding_window")
        seen = self._phones.get(offer.phone_keyed_hash)
        if offer.phone_keyed_hash and seen is not None and now - seen < c.duplicate_window_s:
            raise AlreadyExistsError("the client was offered recently", reason="DUPLICATE_LEAD")
        name = f"auctions/{uuid.uuid4().hex}"
        announcement = pb.AuctionAnnouncement(
            auction=name,
            offer_hash=crypto.sha256(signed_offer.payload),
            lead_ref=offer.lead_ref,
            features=offer.features,
            min_bid_price=price,
            seller_layer_public_key=offer.seller_layer_public_key,
        )
        announcement.open_time.CopyFrom(ts(now))
        announcement.deadline.CopyFrom(ts(now + window))
        signed = self._sign(announcement)
        record = AuctionRecord(
            name, caller, offer, signed, now + window, price.currency, price.amount_minor, now
        )
        self.auctions[name] = record
        if self.books is not None:
            self.books.auction_changed(record)
        if offer.phone_keyed_hash:
            self._phones[offer.phone_keyed_hash] = now
        for buyer in self.participants.values():
            if self._eligible(buyer, record):
                record.invited.add(buyer.name)
                self._emit(buyer.name, pb.SubscribeResponse(announcement=signed))
        asyncio.get_running_loop().call_later(window, self._close, name)
        return self._auction_view(record)

    def _budget_left(self, buyer: pb.Participant, currency: str, day: int) -> int | None:
        """What is left of the buyer's daily budget in ``currency``; None = no budget."""
        budget = buyer.caps.daily_budget
        if budget.amount_minor <= 0 or budget.currency != currency:
            return None
        return max(0, budget.amount_minor - self._spend_per_day[(buyer.name, day)])

    def _within_budget(self, bidder: str, currency: str, amount: int) -> bool:
        buyer = self.participants.get(bidder)
        if buyer is None:
            return False
        left = self._budget_left(buyer, currency, int(time.time() // 86400))
        return left is None or amount <= left

    def suspend(self, name: str, reason: str) -> None:
        """Suspend a participant (sanction): it can neither sell nor bid, and is told."""
        p = self.participant(name)
        if p.state == pb.PARTICIPANT_STATE_SUSPENDED:
            return
        p.state = pb.PARTICIPANT_STATE_SUSPENDED
        p.suspension_reason = reason
        p.etag = uuid.uuid4().hex[:8]
        p.update_time.CopyFrom(ts(time.time()))
        self._persist_participant(p)

    def _check_sanctions(self, name: str, currency: str) -> None:
        c = self.config
        now = time.time()
        recent = [t for t in self._rejections[name] if now - t < c.rejection_count_window_s]
        self._rejections[name] = recent
        if c.max_rejections and len(recent) >= c.max_rejections:
            self.suspend(name, f"{len(recent)} won leads rejected within the window")
        elif c.max_unpaid_minor and self.ledger.balance(name, currency) < -c.max_unpaid_minor:
            self.suspend(name, f"unpaid balance over {c.max_unpaid_minor} {currency} minor units")

    def _auction_view(self, record: AuctionRecord) -> pb.Auction:
        out = pb.Auction(
            name=record.name,
            state=_visible_state(record),  # type: ignore[arg-type]
            announcement=record.announcement,
        )
        out.deadline.CopyFrom(ts(record.deadline))
        return out

    def _eligible(self, buyer: pb.Participant, record: AuctionRecord) -> bool:
        if buyer.name == record.seller or buyer.state != pb.PARTICIPANT_STATE_ACTIVE:
            return False
        f, features = buyer.filters, record.offer.features
        if f.segments and features.segment not in f.segments:
            return False
        if f.regions and features.region not in f.regions:
            return False
        return not (features.retro and not f.accept_retro_leads and f.ByteSize() > 0)

    def place_bid(self, caller: str, signed_bid: pb.SignedPayload) -> pb.PlaceBidResponse:  # noqa: PLR0911
        """Accept a sealed bid with a signed receipt, or reject it with a signed rejection."""
        received = time.time()
        bid = self._verify_from(caller, signed_bid, pb.SealedBid)
        if bid.bidder != caller:
            raise PermissionDeniedError("bid.bidder must be the caller")
        if (
            len(bid.nonce) != 16
            or len(bid.commitment) != 32
            or len(bid.pedersen_commitment) != 32
            or not bid.encrypted_opening
        ):
            raise InvalidArgumentError(
                "nonce 16 bytes, commitment and pedersen_commitment 32, opening set", field="bid"
            )
        record = self._auction(bid.auction)
        bid_hash = crypto.sha256(signed_bid.payload)

        def reject(reason: int) -> pb.PlaceBidResponse:
            rejection = pb.BidRejection(
                auction=record.name,
                bidder=caller,
                bid_hash=bid_hash,
                reason=reason,  # type: ignore[arg-type]
            )
            rejection.receive_time.CopyFrom(ts(received))
            rejection.deadline.CopyFrom(ts(record.deadline))
            return pb.PlaceBidResponse(rejection=self._sign(rejection))

        buyer = self.participant(caller)
        if received >= record.deadline:
            return reject(pb.BID_REJECTION_REASON_LATE)
        if record.state != pb.AUCTION_STATE_OPEN:
            return reject(pb.BID_REJECTION_REASON_AUCTION_CLOSED)
        if buyer.state == pb.PARTICIPANT_STATE_SUSPENDED:
            return reject(pb.BID_REJECTION_REASON_SUSPENDED)
        if not self._eligible(buyer, record):
            return reject(pb.BID_REJECTION_REASON_NOT_ELIGIBLE)
        cap, day = buyer.caps.max_leads_per_day, int(received // 86400)
        if cap and self._wins_per_day[(caller, day)] >= cap:
            return reject(pb.BID_REJECTION_REASON_CAP_EXCEEDED)
        if self._budget_left(buyer, record.currency, day) == 0:
            return reject(pb.BID_REJECTION_REASON_CAP_EXCEEDED)
        if caller in record.bidders or bid.nonce in record.nonces:
            return reject(pb.BID_REJECTION_REASON_DUPLICATE)
        leaf = _core.leaf_hash(bid.commitment, bid.encrypted_opening, bid.pedersen_commitment)
        accepted = Bid(
            len(record.bids),
            caller,
            bid_hash,
            bid.commitment,
            bid.encrypted_opening,
            leaf,
            bid.pedersen_commitment,
        )
        record.bids.append(accepted)
        record.bidders.add(caller)
        record.nonces.add(bid.nonce)
        if self.config.close_when_all_bid and record.invited <= record.bidders:
            # Everyone invited has bid: nothing can change, so the bid set closes now
            # (the signed root carries the close time next to the announced deadline).
            asyncio.get_running_loop().call_soon(self._close, record.name)
        receipt = pb.BidReceipt(
            auction=record.name,
            bidder=caller,
            bid_hash=bid_hash,
            leaf_index=accepted.leaf_index,
            leaf_hash=leaf,
        )
        receipt.receive_time.FromNanoseconds(int(received * 1e9))
        receipt.deadline.FromNanoseconds(int(record.deadline * 1e9))
        return pb.PlaceBidResponse(receipt=self._sign(receipt))

    def _leaves(self, record: AuctionRecord) -> list[bytes]:
        return [b.leaf_hash for b in record.bids]

    def _close(self, name: str) -> None:
        """At the deadline: sign the root over all accepted bids; ask the seller to unseal."""
        record = self.auctions[name]
        if record.state != pb.AUCTION_STATE_OPEN:
            return
        leaves = self._leaves(record)
        root = _core.merkle_root(leaves)
        commitment = pb.BidSetCommitment(auction=name, merkle_root=root, leaf_count=len(leaves))
        commitment.deadline.CopyFrom(ts(record.deadline))
        commitment.close_time.CopyFrom(ts(time.time()))
        record.bid_set = self._sign(commitment)
        if not record.bids:
            self._decide(record, [])
            return
        record.state = pb.AUCTION_STATE_UNSEALING
        task = pb.UnsealTask(auction=name, bid_set=record.bid_set)
        task.unseal_deadline.CopyFrom(ts(time.time() + self.config.unseal_timeout_s))
        for b in record.bids:
            task.items.add(
                commitment=b.commitment,
                encrypted_opening=b.encrypted_opening,
                inclusion=self._inclusion(record, b.leaf_index),
                pedersen_commitment=b.pedersen,
            )
        self._emit(record.seller, pb.SubscribeResponse(unseal_task=task))
        asyncio.get_running_loop().call_later(
            self.config.unseal_timeout_s, self._unseal_timeout, name
        )

    def _inclusion(self, record: AuctionRecord, index: int) -> pb.MerkleInclusionProof:
        leaves = self._leaves(record)
        return pb.MerkleInclusionProof(
            leaf_index=index,
            leaf_count=len(leaves),
            leaf_hash=leaves[index],
            audit_path=_core.inclusion_proof(leaves, index),
        )

    def _unseal_timeout(self, name: str) -> None:
        record = self.auctions[name]
        if record.state == pb.AUCTION_STATE_UNSEALING:
            record.state = pb.AUCTION_STATE_CANCELLED
            self._sign_result(record, None, UNSEAL_CANCEL_REASON)
            self._publish(record)

    def unseal(self, caller: str, signed: pb.SignedPayload) -> pb.Auction:
        """Take the seller's unsealed bids, open them, decide and publish the result."""
        unsealed = self._verify_from(caller, signed, pb.UnsealedBids)
        record = self._auction(unsealed.auction)
        if record.seller != caller:
            raise PermissionDeniedError("only the seller unseals")
        if record.state != pb.AUCTION_STATE_UNSEALING or record.bid_set is None:
            return self._auction_view(record)  # idempotent after the decision
        root = pb.BidSetCommitment.FromString(record.bid_set.payload).merkle_root
        if unsealed.merkle_root != root or len(unsealed.bids) != len(record.bids):
            raise InvalidArgumentError("not the signed bid set", field="unsealed.merkle_root")
        opened: list[tuple[Bid, pb.BidOpening]] = []
        for item in unsealed.bids:
            if item.leaf_index >= len(record.bids):
                raise InvalidArgumentError("no such leaf", field="unsealed.bids.leaf_index")
            bid = record.bids[item.leaf_index]
            opening = self._open(record, bid, item.inner_opening)
            if opening is not None:
                opened.append((bid, opening))
        # Every Pedersen opening of the auction in one batched Rust check.
        matches = _core.verify_pedersen_openings(
            record.name,
            [(b.pedersen, o.amount.amount_minor, o.blinding, b.bidder) for b, o in opened],
        )
        for (bid, opening), match in zip(opened, matches, strict=True):
            amount = opening.amount.amount_minor
            if not match:
                bid.invalid_reason = "the opening does not match the Pedersen commitment"
            elif amount < record.min_price:
                bid.invalid_reason = "below MinBidPrice"
            elif not self._within_budget(bid.bidder, record.currency, amount):
                # Amounts are sealed until now, so the budget can only be judged on opening.
                bid.invalid_reason = "over the buyer's daily budget"
            else:
                bid.amount_minor, bid.nonce = amount, opening.blinding
        self._decide(record, record.bids)
        return self._auction_view(record)

    def _open(self, record: AuctionRecord, bid: Bid, inner: bytes) -> pb.BidOpening | None:
        """Decrypt a bid's inner layer and check it against the hash commitment; the
        opening, or None with the bid marked invalid."""
        aad = f"{record.name}\x00{bid.bidder}".encode()
        try:
            box = pb.SealedBox.FromString(inner)
            opening = pb.BidOpening.FromString(
                crypto.open_sealed(self.keys.encryption, INNER_LABEL, aad, box)
            )
        except (CryptoError, DecodeError):
            bid.invalid_reason = "the opening does not decrypt"
            return None
        amount = opening.amount
        if opening.auction != record.name or opening.bidder != bid.bidder:
            bid.invalid_reason = "the opening names another auction or bidder"
        elif amount.currency != record.currency:
            bid.invalid_reason = "wrong currency"
        elif not 0 < amount.amount_minor <= MAX_AMOUNT_MINOR:
            bid.invalid_reason = "absurd amount"
        elif not _core.verify_bid_opening(
            bid.commitment,
            amount.amount_minor,
            amount.currency,
            opening.blinding,
            bid.bidder,
            record.name,
        ):
            bid.invalid_reason = "the opening does not match the commitment"
        else:
            return opening
        return None

    def _decide(self, record: AuctionRecord, bids: list[Bid]) -> None:
        # Winner rule fixed in advance: highest amount; a tie goes to the earlier
        # receipt (lower leaf index), which the tied bidders' signed receipts prove.
        valid = [b for b in bids if not b.invalid_reason]
        record.ranking = sorted(valid, key=lambda b: (-b.amount_minor, b.leaf_index))
        if self.cheat_pick_second and len(record.ranking) > 1:
            record.ranking = record.ranking[1:]
        self._award(record)

    def _award(self, record: AuctionRecord) -> None:
        record.award_round += 1
        winner = record.ranking[0] if record.ranking else None
        record.state = pb.AUCTION_STATE_SOLD if winner else pb.AUCTION_STATE_UNSOLD
        if winner is not None:
            record.deal = f"deals/{uuid.uuid4().hex}"
        # The decision is queued for the store before the deal and its entries, in the
        # same batch (see Books): the store never holds a deal without its decision.
        self._sign_result(record, winner)
        if winner is not None:
            self._make_deal(record, winner)
        self._publish(record)

    def _sign_result(self, record: AuctionRecord, winner: Bid | None, reason: str = "") -> None:
        """Sign the result of the current round and queue the auction for the store."""
        result = pb.AuctionResult(
            auction=record.name,
            leaf_count=len(record.bids),
            state=record.state,  # type: ignore[arg-type]
            award_round=record.award_round,
            invalid_leaf_indexes=[b.leaf_index for b in record.bids if b.invalid_reason],
            tie_break=TIE_BREAK,
            cancel_reason=reason,
        )
        if record.bid_set is not None:
            result.merkle_root = pb.BidSetCommitment.FromString(record.bid_set.payload).merkle_root
        if winner is not None:
            result.winning_leaf_index = winner.leaf_index
            result.winning_commitment = winner.commitment
            result.winning_pedersen_commitment = winner.pedersen
        result.decide_time.CopyFrom(ts(time.time()))
        record.result = self._sign(result)
        record.cancel_reason = reason
        record.published = False
        if self.books is not None:
            self.books.auction_changed(record)

    def _publish(self, record: AuctionRecord) -> None:
        """Tell the parties the result — with a store, only once it is stored, so a
        crash can never contradict a result someone has seen."""
        if self.books is None:
            self._announce(record, record.award_round)
            return
        task = asyncio.get_running_loop().create_task(self._announce_stored(record))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _announce_stored(self, record: AuctionRecord) -> None:
        award_round = record.award_round
        assert self.books is not None
        await self.books.flush()
        self._announce(record, award_round)

    def _announce(self, record: AuctionRecord, award_round: int) -> None:
        if record.award_round != award_round or record.published:
            return  # a later round superseded it before it was stored
        record.published = True
        record.decided.set()
        parties = {record.seller, *(b.bidder for b in record.bids)}
        for party in sorted(parties):
            event = pb.SubscribeResponse()
            event.result.auction = record.name
            self.result_view(party, record.name, event.result.result)  # built in place
            self._emit(party, event)

    def _make_deal(self, record: AuctionRecord, winner: Bid) -> None:
        deal = pb.Deal(
            name=record.deal,
            auction=record.name,
            award_round=record.award_round,
            seller=record.seller,
            buyer=winner.bidder,
            status=pb.LEAD_STATUS_SOLD,
        )
        commission = winner.amount_minor * self.config.commission_bps // 10_000
        deal.price.CopyFrom(
            common_pb2.Money(amount_minor=winner.amount_minor, currency=record.currency)
        )
        deal.commission.CopyFrom(
            common_pb2.Money(amount_minor=commission, currency=record.currency)
        )
        now = time.time()
        deal.create_time.CopyFrom(ts(now))
        deal.update_time.CopyFrom(ts(now))
        self.deals[deal.name] = deal
        self._persist(deal)
        self._wins_per_day[(winner.bidder, int(now // 86400))] += 1
        self._spend_per_day[(winner.bidder, int(now // 86400))] += winner.amount_minor
        cur = record.currency
        self.ledger.transfer(
            EntryType.LEAD_PRICE,
            cur,
            winner.bidder,
            record.seller,
            winner.amount_minor,
            deal=deal.name,
        )
        self.ledger.transfer(
            EntryType.COMMISSION, cur, record.seller, PLATFORM, commission, deal=deal.name
        )
        self._check_sanctions(winner.bidder, cur)

    # --- views and proofs --------------------------------------------------------

    def result_view(
        self, caller: str, name: str, out: pb.GetAuctionResultResponse | None = None
    ) -> pb.GetAuctionResultResponse:
        """The result as ``caller`` may see it (seller: winner and price; winner: the lead;
        bidder: its own outcome); written into ``out`` if given (no copy)."""
        record = self._auction(name)
        state = _visible_state(record)
        if out is None:
            out = pb.GetAuctionResultResponse()
        out.state = state  # type: ignore[assignment]
        if record.result is not None and record.published:
            out.result.CopyFrom(record.result)
        if record.bid_set is not None:
            out.bid_set.CopyFrom(record.bid_set)
        winner = record.ranking[0] if state == pb.AUCTION_STATE_SOLD else None
        deal = self.deals.get(record.deal)
        if caller == record.seller and winner is not None and deal is not None:
            buyer = self.participant(winner.bidder)
            out.seller_view.winner = winner.bidder
            out.seller_view.winner_encryption_public_key = buyer.encryption_public_key
            out.seller_view.price.CopyFrom(deal.price)
            out.seller_view.price_blinding = winner.nonce
            out.seller_view.redirect_url = f"{buyer.landing_url}?lg_lead={deal.name.split('/')[1]}"
        if winner is not None and caller == winner.bidder and deal is not None:
            w = out.winner_view
            w.price.CopyFrom(deal.price)
            w.lead_token = deal.name.split("/")[1]
            w.personal_data.CopyFrom(record.offer.personal_data)
            w.lead_ref = record.offer.lead_ref
            w.rejection_deadline.CopyFrom(
                ts(deal.create_time.ToNanoseconds() / 1e9 + self.config.rejection_window_s)
            )
        own = [b for b in record.bids if b.bidder == caller]
        if own:
            out.bidder_view.leaf_index = own[0].leaf_index
            out.bidder_view.outcome = self._outcome(record, own[0])  # type: ignore[assignment]
        return out

    def _outcome(self, record: AuctionRecord, bid: Bid) -> int:
        state = _visible_state(record)
        if state == pb.AUCTION_STATE_CANCELLED:
            return pb.BID_OUTCOME_CANCELLED
        if state in (pb.AUCTION_STATE_OPEN, pb.AUCTION_STATE_UNSEALING):
            return pb.BID_OUTCOME_UNSPECIFIED
        if bid.invalid_reason:
            return pb.BID_OUTCOME_INVALID
        if bid.leaf_index in record.relinquished:
            return pb.BID_OUTCOME_RELINQUISHED
        if record.state == pb.AUCTION_STATE_SOLD and record.ranking[0] is bid:
            return pb.BID_OUTCOME_WON
        return pb.BID_OUTCOME_LOST

    async def bid_proof(self, caller: str, name: str, bid_hash: bytes) -> pb.GetBidProofResponse:
        """Inclusion proof of the caller's bid under the signed root, its outcome, and for
        a lost bid the zero-knowledge proof of the loss (made on a worker thread: the Rust
        prover releases the GIL, so the event loop keeps serving auctions meanwhile)."""
        record = self._auction(name)
        if record.bid_set is None:
            raise FailedPreconditionError("the auction is still open", reason="AUCTION_OPEN")
        for bid in record.bids:
            if bid.bid_hash == bid_hash:
                if bid.bidder != caller:
                    raise PermissionDeniedError("not the caller's bid")
                outcome = self._outcome(record, bid)
                out = pb.GetBidProofResponse(
                    outcome=outcome,  # type: ignore[arg-type]
                    inclusion=self._inclusion(record, bid.leaf_index),
                    invalid_reason=bid.invalid_reason,
                    award_round=record.award_round,
                )
                if outcome == pb.BID_OUTCOME_LOST and record.state == pb.AUCTION_STATE_SOLD:
                    winner = record.ranking[0]
                    out.range_proof = await self._loser_proof(record, winner, bid)
                    out.winning_inclusion.CopyFrom(self._inclusion(record, winner.leaf_index))
                    out.winning_opening_digest = crypto.sha256(winner.encrypted_opening)
                    # Set for every lost bid, so it tells nothing about a tie.
                    out.tie_break = TIE_BREAK
                return out
        raise NotFoundError("no such bid in the signed set")

    async def _loser_proof(self, record: AuctionRecord, winner: Bid, loser: Bid) -> bytes:
        """The range proof that ``winner`` beats ``loser`` (made once, on request: proving
        costs milliseconds, so it stays off the decision path)."""
        key = (record.award_round, winner.leaf_index)
        proof = loser.range_proofs.get(key)
        if proof is None:
            assert record.bid_set is not None
            root = pb.BidSetCommitment.FromString(record.bid_set.payload).merkle_root
            proof = await asyncio.to_thread(
                self.prove_winner_exceeds, record.name, root, winner, loser
            )
            loser.range_proofs[key] = proof
        return proof

    def prove_winner_exceeds(self, auction: str, root: bytes, winner: Bid, loser: Bid) -> bytes:
        """Bulletproofs range proof (Rust, GIL released) that ``winner``'s amount exceeds
        ``loser``'s under the tie rule. An honest coordinator always has one; a false
        claim has none, and then the loser gets an empty proof, which fails its check."""
        try:
            return _core.prove_winner_exceeds(
                auction,
                root,
                winner.leaf_index,
                winner.amount_minor,
                winner.nonce,
                winner.bidder,
                loser.leaf_index,
                loser.amount_minor,
                loser.nonce,
                loser.bidder,
            )
        except _core.CoreInvalidArgument:
            return b""

    def release_key(self, caller: str, signed: pb.SignedPayload) -> None:
        """Forward the seller's data-key release to the current winner."""
        release = self._verify_from(caller, signed, pb.LeadKeyRelease)
        record = self._auction(release.auction)
        if record.seller != caller:
            raise PermissionDeniedError("only the seller releases the lead key")
        if record.state != pb.AUCTION_STATE_SOLD or release.award_round != record.award_round:
            raise FailedPreconditionError("not the current award round", reason="STALE_ROUND")
        if release.winner != record.ranking[0].bidder:
            raise PermissionDeniedError("the key may be released to the winner only")
        self._emit(release.winner, pb.SubscribeResponse(lead_key=signed))

    # --- lead tracking and money -------------------------------------------------

    def report_status(
        self, caller: str, request: pb.ReportLeadStatusRequest
    ) -> pb.ReportLeadStatusResponse:
        """Apply a lead status change and book its ledger entries."""
        deal = self.deals.get(request.deal)
        if deal is None:
            raise NotFoundError(f"{request.deal} not found")
        if caller != deal.buyer:
            raise PermissionDeniedError("only the buyer reports the lead's status")
        status = request.status
        allowed = {
            pb.LEAD_STATUS_SOLD: {
                pb.LEAD_STATUS_CLIENT_ARRIVED,
                pb.LEAD_STATUS_REJECTED_BY_BUYER,
                pb.LEAD_STATUS_ISSUED,
                pb.LEAD_STATUS_REFUSED,
            },
            pb.LEAD_STATUS_CLIENT_ARRIVED: {
                pb.LEAD_STATUS_ISSUED,
                pb.LEAD_STATUS_REFUSED,
                pb.LEAD_STATUS_REJECTED_BY_BUYER,
            },
        }
        if status not in allowed.get(deal.status, set()):
            raise FailedPreconditionError(
                f"{pb.LeadStatus.Name(deal.status)} -> {pb.LeadStatus.Name(status)} not allowed",
                reason="BAD_TRANSITION",
            )
        now = time.time()
        if (
            status == pb.LEAD_STATUS_REJECTED_BY_BUYER
            and now > deal.create_time.ToNanoseconds() / 1e9 + self.config.rejection_window_s
        ):
            raise FailedPreconditionError(
                "the rejection window is over", reason="REJECTION_WINDOW_OVER"
            )
        if status == pb.LEAD_STATUS_ISSUED and request.loan_amount.amount_minor <= 0:
            raise InvalidArgumentError("required for ISSUED", field="loan_amount")
        cur, entries = deal.price.currency, []
        if status == pb.LEAD_STATUS_ISSUED:
            entries.append(
                self.ledger.transfer(
                    EntryType.CPA_PAYOUT,
                    cur,
                    deal.buyer,
                    deal.seller,
                    self.config.cpa_payout_minor,
                    deal=deal.name,
                )
            )
        elif status == pb.LEAD_STATUS_REFUSED:
            entries.append(
                self.ledger.transfer(
                    EntryType.REFUSAL_FEE,
                    cur,
                    deal.buyer,
                    deal.seller,
                    self.config.refusal_fee_minor,
                    deal=deal.name,
                )
            )
        elif status == pb.LEAD_STATUS_REJECTED_BY_BUYER:
            entries.extend(self.ledger.reverse_deal(deal.name, "rejected by the buyer"))
            self._rejections[deal.buyer].append(now)
            day = int(deal.create_time.ToNanoseconds() / 1e9 // 86400)
            self._spend_per_day[(deal.buyer, day)] -= deal.price.amount_minor
        deal.status = status
        change = deal.history.add(status=status, reporter=caller, reason=request.reason)
        change.record_time.CopyFrom(ts(now))
        deal.update_time.CopyFrom(ts(now))
        self._persist(deal)
        for party in (deal.seller, deal.buyer):
            self._emit(party, pb.SubscribeResponse(deal=deal))
        self._check_sanctions(deal.buyer, cur)
        if status == pb.LEAD_STATUS_REJECTED_BY_BUYER:
            record = self._auction(deal.auction)
            record.relinquished.add(record.ranking[0].leaf_index)
            record.ranking = record.ranking[1:]  # the lead passes to the next-highest bid
            self._award(record)
        out = pb.ReportLeadStatusResponse(deal=deal)
        out.ledger_entries.extend(entry_proto(e) for e in entries if e is not None)
        return out

    def _persist(self, deal: pb.Deal) -> None:
        if self.books is not None:
            self.books.deal_changed(deal)

    async def flush_books(self) -> None:
        """Wait until the store holds everything changed so far (no-op without a store)."""
        if self.books is not None:
            await self.books.flush()

    async def sync_books(self) -> None:
        """Make the store hold everything booked so far, and adopt final settlements
        made by ``lendgate settle`` since the last call (a no-op without a store)."""
        if self.books is not None:
            await self.books.sync(self.ledger)

    def list_deals(self, caller: str) -> list[pb.Deal]:
        """Deals the caller is a party to, newest first."""
        mine = [d for d in self.deals.values() if caller in (d.seller, d.buyer)]
        return sorted(mine, key=lambda d: -d.create_time.ToNanoseconds())


PARTICIPANT_FILTER = {"state": "enum:PARTICIPANT_STATE_", "display_name": "str"}
"""Fields of ``ListParticipants.filter`` (AIP-160 subset of :mod:`lendgate.listfilter`)."""


def _participant_fields(p: pb.Participant) -> Fields:
    return {
        "state": pb.ParticipantState.Name(p.state).removeprefix("PARTICIPANT_STATE_"),
        "display_name": p.display_name,
    }


def _check_caps(caps: pb.BuyerCaps) -> None:
    if caps.max_leads_per_day < 0:
        raise InvalidArgumentError(
            "must not be negative", field="participant.caps.max_leads_per_day"
        )
    budget = caps.daily_budget
    if budget.amount_minor < 0 or budget.amount_minor > MAX_AMOUNT_MINOR:
        raise InvalidArgumentError(
            "must be 0 (no budget) or a positive amount", field="participant.caps.daily_budget"
        )
    if budget.amount_minor and len(budget.currency) != 3:
        raise InvalidArgumentError(
            "an ISO 4217 code is required", field="participant.caps.daily_budget.currency"
        )


def _apply_field(updated: pb.Participant, new: pb.Participant, path: str) -> None:
    if path == "caps":
        _check_caps(new.caps)
        updated.caps.CopyFrom(new.caps)
    elif path == "filters":
        updated.filters.CopyFrom(new.filters)
    elif path in ("display_name", "landing_url"):
        setattr(updated, path, getattr(new, path))
    else:
        raise InvalidArgumentError(f"{path!r} cannot be updated", field="update_mask")


def _apply_state(updated: pb.Participant, new: pb.Participant) -> None:
    if new.state == pb.PARTICIPANT_STATE_ACTIVE:
        updated.state = pb.PARTICIPANT_STATE_ACTIVE
        updated.suspension_reason = ""
    elif new.state == pb.PARTICIPANT_STATE_SUSPENDED:
        if not new.suspension_reason:
            raise InvalidArgumentError(
                "a reason is required to suspend", field="participant.suspension_reason"
            )
        updated.state = pb.PARTICIPANT_STATE_SUSPENDED
        updated.suspension_reason = new.suspension_reason
    else:
        raise InvalidArgumentError("ACTIVE or SUSPENDED", field="participant.state")


def auction_operators(text: str) -> dict[str, bytes]:
    """Parse ``id:hex-key,...`` (``Config.auction_operators``) into ``operators/{id}`` ->
    32-byte Ed25519 public key; ValueError naming the bad item."""
    out: dict[str, bytes] = {}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        oid, _, key = item.partition(":")
        try:
            raw = bytes.fromhex(key)
        except ValueError:
            raw = b""
        if not re.fullmatch(r"[a-z0-9-]{1,64}", oid) or len(raw) != 32:
            raise ValueError(f"auction_operators: {item!r} is not operator_id:<64 hex digits>")
        out[OPERATOR_PREFIX + oid] = raw
    return out


def _visible_state(record: AuctionRecord) -> int:
    """The state others may see: a decision not yet stored still reads UNSEALING."""
    if record.published or record.state in (pb.AUCTION_STATE_OPEN, pb.AUCTION_STATE_UNSEALING):
        return record.state
    return pb.AUCTION_STATE_UNSEALING


def new_lead_ref() -> bytes:
    """16 random bytes identifying one offer."""
    return os.urandom(16)
