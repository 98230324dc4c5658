"""Keys, signatures and encryption of the auction protocol (docs/AUCTION_PROTOCOL.md).

Signing and encryption use the ``cryptography`` package (Ed25519, X25519 HPKE RFC 9180
base mode with ChaCha20-Poly1305, ChaCha20-Poly1305, HMAC-SHA256); verification of
signatures, commitments and Merkle proofs runs in the Rust core (``lendgate._core``).
"""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass
from typing import TypeVar

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hpke, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from google.protobuf.message import Message

from lendgate import _core
from lendgate.v1 import auction_pb2

M = TypeVar("M", bound=Message)

_HPKE = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.CHACHA20_POLY1305)
_ENC_LEN = 32
_RAW = serialization.Encoding.Raw


class CryptoError(Exception):
    """A signature, ciphertext or proof did not verify."""


@dataclass(frozen=True)
class KeyPair:
    """A party's Ed25519 signing key and X25519 encryption key."""

    signing: Ed25519PrivateKey
    encryption: X25519PrivateKey

    @classmethod
    def generate(cls) -> KeyPair:
        """Fresh random keys."""
        return cls(Ed25519PrivateKey.generate(), X25519PrivateKey.generate())

    @property
    def signing_public(self) -> bytes:
        """The 32-byte Ed25519 public key."""
        return self.signing.public_key().public_bytes(_RAW, serialization.PublicFormat.Raw)

    @property
    def encryption_public(self) -> bytes:
        """The 32-byte X25519 public key."""
        return self.encryption.public_key().public_bytes(_RAW, serialization.PublicFormat.Raw)


def type_name(message: Message) -> str:
    """The full protobuf type name, the signing context of ``message``."""
    return message.DESCRIPTOR.full_name


def sign(key: Ed25519PrivateKey, message: Message, signer: str) -> auction_pb2.SignedPayload:
    """Sign ``message`` as ``signer`` over ``type_name || 0x00 || payload``."""
    payload = message.SerializeToString(deterministic=True)
    signature = key.sign(type_name(message).encode() + b"\x00" + payload)
    return auction_pb2.SignedPayload(payload=payload, signature=signature, signer=signer)


def verify(signed: auction_pb2.SignedPayload, cls: type[M], public_key: bytes) -> M:
    """Verify ``signed`` (strictly, in Rust) and decode its payload as ``cls``.

    The signature is checked over the received bytes before they are decoded.
    Raises :class:`CryptoError` when it does not verify or the payload does not decode.
    """
    name = cls.DESCRIPTOR.full_name
    try:
        ok = _core.verify_signature(public_key, name, signed.payload, signed.signature)
    except _core.CoreInvalidArgument as exc:
        raise CryptoError(f"bad {name} signature: {exc.args[1]}") from None
    if not ok:
        raise CryptoError(f"the {name} signature does not verify")
    try:
        return cls.FromString(signed.payload)
    except Exception as exc:
        raise CryptoError(f"the signed payload is not a {name}") from exc


def sha256(data: bytes) -> bytes:
    """SHA-256 of ``data``."""
    return hashlib.sha256(data).digest()


def _info(label: str, aad: bytes) -> bytes:
    # cryptography's single-shot HPKE takes no AEAD aad; the context is bound through
    # HPKE's `info` instead, which enters the key schedule (RFC 9180 section 5.1).
    return label.encode() + b"\x00" + aad


def seal(public_key: bytes, label: str, aad: bytes, plaintext: bytes) -> auction_pb2.SealedBox:
    """HPKE base-mode seal (X25519, HKDF-SHA256, ChaCha20-Poly1305) to ``public_key``."""
    blob = _HPKE.encrypt(
        plaintext, X25519PublicKey.from_public_bytes(public_key), _info(label, aad)
    )
    return auction_pb2.SealedBox(enc=blob[:_ENC_LEN], ciphertext=blob[_ENC_LEN:])


def open_sealed(
    private_key: X25519PrivateKey, label: str, aad: bytes, box: auction_pb2.SealedBox
) -> bytes:
    """Open an HPKE :class:`SealedBox`; raises :class:`CryptoError` if it fails."""
    try:
        return _HPKE.decrypt(box.enc + box.ciphertext, private_key, _info(label, aad))
    except (InvalidTag, ValueError) as exc:
        raise CryptoError(f"cannot open the {label} box") from exc


PERSONAL_DATA_AAD = b"lendgate.v1.PersonalData\x00"


def encrypt_personal_data(
    data_key: bytes, lead_ref: bytes, plaintext: bytes
) -> auction_pb2.EncryptedPersonalData:
    """ChaCha20-Poly1305 under the lead's data key, bound to ``lead_ref``."""
    nonce = os.urandom(12)
    ciphertext = ChaCha20Poly1305(data_key).encrypt(nonce, plaintext, PERSONAL_DATA_AAD + lead_ref)
    return auction_pb2.EncryptedPersonalData(nonce=nonce, ciphertext=ciphertext)


def decrypt_personal_data(
    data_key: bytes, lead_ref: bytes, encrypted: auction_pb2.EncryptedPersonalData
) -> bytes:
    """Inverse of :func:`encrypt_personal_data`; raises :class:`CryptoError`."""
    try:
        return ChaCha20Poly1305(data_key).decrypt(
            encrypted.nonce, encrypted.ciphertext, PERSONAL_DATA_AAD + lead_ref
        )
    except (InvalidTag, ValueError) as exc:
        raise CryptoError("cannot decrypt the personal data") from exc


def phone_keyed_hash(network_key: bytes, phone: str) -> bytes:
    """HMAC-SHA256 of the phone under the network's duplicate-detection key."""
    return hmac.new(network_key, phone.encode(), hashlib.sha256).digest()


CALL_AUTH_TYPE = "lendgate.v1.CallAuth"


def call_auth_payload(participant: str, method: str, unix_ms: int) -> bytes:
    """The payload a node signs (as type ``lendgate.v1.CallAuth``) to authenticate a call."""
    return f"{participant}\n{method}\n{unix_ms}".encode()


def sign_call(key: Ed25519PrivateKey, participant: str, method: str, unix_ms: int) -> bytes:
    """Signature authenticating one call of ``participant`` to ``method``."""
    payload = call_auth_payload(participant, method, unix_ms)
    return key.sign(CALL_AUTH_TYPE.encode() + b"\x00" + payload)
