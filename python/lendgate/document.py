"""Messages of the contract as the documents expressions see (Rust: ``document.rs``)."""

from __future__ import annotations

import json
from typing import Any

from lendgate import _core
from lendgate.errors import core_errors


def decode_document(message_type: str, data: bytes) -> dict[str, Any]:
    """Decode ``data`` as the ``lendgate.v1`` message ``message_type`` into its document.

    Fields keep their proto names, enum values lose their prefix (``"LOAN_APP_CREATE"``),
    timestamps become RFC 3339 strings; see ``rules.proto`` for the whole convention.
    """
    with core_errors():
        document: dict[str, Any] = json.loads(_core.decode_document(message_type, data))
    return document
