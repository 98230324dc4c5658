"""The coordinator's private keys on disk.

Decision (docs/AUCTION_PROTOCOL.md, "Coordinator keys"): the Ed25519 signing key and the
X25519 bid-opening key live in one file under ``data_dir`` (``auction/coordinator.key``),
created with mode 0600 and refused when its mode lets anyone else read it, as PKCS#8 PEM
— encrypted ("sealed") with the passphrase in ``LENDGATE_AUCTION_KEY_PASSPHRASE`` when
that is set. Only the public keys go to the store (``auction_coordinator_keys``): a
database dump or a database administrator cannot forge the coordinator's signatures.

A restart reuses the file, so receipts, roots and results signed before it still verify
under the key participants pinned. A missing file while the store remembers keys stops
the start instead of silently making new keys (participants would then see signatures
they cannot verify).
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Sequence
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from lendgate.auction.crypto import KeyPair

PASSPHRASE_ENV = "LENDGATE_AUCTION_KEY_PASSPHRASE"  # noqa: S105 - a variable name
FILE_NAME = "coordinator.key"


class KeyFileError(RuntimeError):
    """The key file cannot be used; the message says why and what to do."""


def key_path(data_dir: str | os.PathLike[str]) -> Path:
    """Where the coordinator's key file lives under ``data_dir``."""
    return Path(data_dir) / "auction" / FILE_NAME


def _passphrase() -> bytes | None:
    value = os.environ.get(PASSPHRASE_ENV, "")
    return value.encode() if value else None


def _pem(keys: KeyPair, passphrase: bytes | None) -> bytes:
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase)
        if passphrase
        else serialization.NoEncryption()
    )
    return b"".join(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
        for key in (keys.signing, keys.encryption)
    )


_PEM_BLOCK = re.compile(rb"-----BEGIN [A-Z ]+-----.+?-----END [A-Z ]+-----", re.DOTALL)


def _parse(data: bytes, passphrase: bytes | None, path: Path) -> KeyPair:
    blocks = _PEM_BLOCK.findall(data)
    if len(blocks) != 2:
        raise KeyFileError(f"{path}: expected two PEM private keys, found {len(blocks)}")
    try:
        signing, encryption = (
            serialization.load_pem_private_key(block, password=passphrase) for block in blocks
        )
    except (ValueError, TypeError) as exc:
        raise KeyFileError(f"{path}: cannot read the coordinator keys ({exc})") from None
    if not isinstance(signing, Ed25519PrivateKey) or not isinstance(encryption, X25519PrivateKey):
        raise KeyFileError(f"{path}: expected an Ed25519 and an X25519 private key")
    return KeyPair(signing, encryption)


def load_or_create(path: Path, known_signing_keys: Sequence[bytes] = ()) -> KeyPair:
    """The coordinator's keys from ``path``; new keys written there (0600) if it does
    not exist and the store knows no earlier key (``known_signing_keys``)."""
    if path.exists():
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            raise KeyFileError(
                f"{path}: mode {mode:o} lets others read the coordinator's private keys;"
                f" chmod 600 {path}"
            )
        return _parse(path.read_bytes(), _passphrase(), path)
    if known_signing_keys:
        raise KeyFileError(
            f"{path} is missing but the store holds signatures by coordinator key"
            f" {known_signing_keys[-1].hex()[:16]}...: restore the key file (new keys would"
            " make every stored receipt and result unverifiable to the participants)"
        )
    keys = KeyPair.generate()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, _pem(keys, _passphrase()))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    return keys
