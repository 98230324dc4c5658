"""Who is calling: the partner (lender) identity of every call.

Every platform call is made on behalf of one partner. The gRPC layer authenticates
the call from its metadata with the configured :class:`Authenticator` and makes the
partner available to domain code through :func:`current_partner` for the duration of
the call, so no domain function trusts a partner id sent in a request body.

Modes (``auth_mode`` setting):

- ``token``: ``authorization: Bearer <token>``; tokens are configured by their SHA-256
  only (``auth_tokens_file``, lines ``<partner_id> <sha256-hex-of-token>``), so the file
  holds no usable secret. Unknown or missing token: UNAUTHENTICATED.
- ``dev`` (what ``make run`` uses): no secret; the partner is the ``x-lendgate-partner``
  metadata value, or ``dev`` when absent. Never for production: any caller can claim
  any partner. The server logs a warning at start in this mode.

mTLS (the partner from the client certificate's subject) is the planned third mode.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from lendgate.config import Config, ConfigError
from lendgate.errors import UnauthenticatedError

PARTNER_HEADER = "x-lendgate-partner"
DEV_PARTNER = "dev"
_PARTNER_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")

_current: ContextVar[Partner | None] = ContextVar("lendgate_partner", default=None)


@dataclass(frozen=True)
class Partner:
    """An authenticated partner: a lender of the consortium."""

    partner_id: str


class Authenticator(Protocol):
    """Turns a call's metadata into the calling partner, or raises UnauthenticatedError."""

    def authenticate(self, metadata: Iterable[tuple[str, str | bytes]]) -> Partner:
        """The partner the call is made for."""
        ...


class DevAuthenticator:
    """Trusts the ``x-lendgate-partner`` header (development only)."""

    def authenticate(self, metadata: Iterable[tuple[str, str | bytes]]) -> Partner:
        """The partner named by the header, or ``dev``."""
        for key, value in metadata:
            if key == PARTNER_HEADER and isinstance(value, str):
                return Partner(_checked_partner_id(value, PARTNER_HEADER))
        return Partner(DEV_PARTNER)


class TokenAuthenticator:
    """Bearer tokens checked against their SHA-256 digests."""

    def __init__(self, digests: dict[bytes, str]) -> None:
        self._digests = digests

    @classmethod
    def from_file(cls, path: Path) -> TokenAuthenticator:
        """Load ``<partner_id> <sha256-hex>`` lines; ``#`` starts a comment."""
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise ConfigError(f"auth tokens file {path}: {exc.strerror or exc}") from None
        digests: dict[bytes, str] = {}
        for number, line in enumerate(lines, start=1):
            content = line.split("#", 1)[0].strip()
            if not content:
                continue
            parts = content.split()
            if len(parts) != 2 or not re.fullmatch(r"[0-9a-f]{64}", parts[1]):
                raise ConfigError(f"auth tokens file {path}:{number}: expected PARTNER SHA256HEX")
            try:
                partner = _checked_partner_id(parts[0], "partner_id")
            except UnauthenticatedError as exc:
                raise ConfigError(f"auth tokens file {path}:{number}: {exc.message}") from None
            digests[bytes.fromhex(parts[1])] = partner
        if not digests:
            raise ConfigError(f"auth tokens file {path}: no tokens")
        return cls(digests)

    def authenticate(self, metadata: Iterable[tuple[str, str | bytes]]) -> Partner:
        """The partner whose token the ``authorization`` header carries."""
        for key, value in metadata:
            if key == "authorization" and isinstance(value, str):
                scheme, _, token = value.partition(" ")
                if scheme.lower() == "bearer" and token:
                    digest = hashlib.sha256(token.strip().encode()).digest()
                    for known, partner in self._digests.items():
                        if hmac.compare_digest(known, digest):
                            return Partner(partner)
                raise UnauthenticatedError("the bearer token is not valid")
        raise UnauthenticatedError("missing `authorization: Bearer <token>` metadata")


def authenticator_for(config: Config) -> Authenticator:
    """The authenticator the configuration asks for."""
    if config.auth_mode == "dev":
        return DevAuthenticator()
    if not config.auth_tokens_file:
        raise ConfigError("setting 'auth_tokens_file': required when auth_mode is 'token'")
    return TokenAuthenticator.from_file(Path(config.auth_tokens_file))


def current_partner() -> Partner:
    """The partner of the call being served; raises UnauthenticatedError outside a call."""
    partner = _current.get()
    if partner is None:
        raise UnauthenticatedError("no authenticated partner for this call")
    return partner


@contextmanager
def acting_as(partner: Partner) -> Iterator[None]:
    """Make ``partner`` the current partner inside the block (the gRPC layer uses this)."""
    token = _current.set(partner)
    try:
        yield
    finally:
        _current.reset(token)


def _checked_partner_id(value: str, field: str) -> str:
    if not _PARTNER_ID.fullmatch(value):
        raise UnauthenticatedError(
            f"{field}: a partner id is 1-64 characters of a-z, 0-9, '.', '_', '-'"
        )
    return value
