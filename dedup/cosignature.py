"""Witness cosignatures on checkpoints (C2SP tlog-cosignature, Ed25519 ``cosignature/v1``).

A cosignature is a signature line added to a checkpoint's signed note. It states that, at
its timestamp, the checkpoint is the largest consistent tree its signer has seen for the
log. The signed message is ``"cosignature/v1\\n" "time <t>\\n"`` followed by the checkpoint
body; the signature bytes are ``uint64be(t) || Ed25519 signature``; the key ID uses the
algorithm byte 0x04, so a cosigner key never verifies an ordinary note signature.

Members act as the log's witnesses with the Ed25519 key they sign statements with: statement
signatures cover bytes that start with 0xFF (never UTF-8), cosignatures cover text, so one
can never pass for the other.
"""

from __future__ import annotations

import base64
import hashlib
import struct
import time
from dataclasses import dataclass
from typing import Sequence

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from dedup.ed25519 import weak_key
from dedup.note import NoteError, Signature, check_key_name, split_note

__all__ = ["ALG_COSIGNATURE_V1", "Cosignature", "CosignatureError", "CosignatureSigner",
           "CosignatureVerifier", "add_cosignature", "cosignatures", "cosigned_message", "cosigner_key_id"]

ALG_COSIGNATURE_V1 = 0x04
_HEADER = "cosignature/v1\n"
_MAX_TIMESTAMP = (1 << 63) - 1


class CosignatureError(ValueError):
    """A cosignature is malformed or does not verify."""


def cosigner_key_id(name: str, public_key: bytes) -> bytes:
    """SHA-256(name || 0x0A || 0x04 || 32-byte Ed25519 public key)[:4]."""
    return hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([ALG_COSIGNATURE_V1]) + public_key).digest()[:4]


def cosigned_message(checkpoint_text: str, timestamp: int) -> bytes:
    """The bytes a ``cosignature/v1`` signature covers."""
    if not 0 <= timestamp <= _MAX_TIMESTAMP:
        raise CosignatureError(f"cosignature timestamp {timestamp} is out of range")
    return f"{_HEADER}time {timestamp}\n{checkpoint_text}".encode("utf-8")


def _raw(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


@dataclass(frozen=True)
class Cosignature:
    """A verified cosignature: who made it and when."""

    name: str
    key_id: bytes
    timestamp: int


class CosignatureVerifier:
    """A named Ed25519 cosigner key."""

    def __init__(self, name: str, public_key: Ed25519PublicKey) -> None:
        check_key_name(name)
        if why := weak_key(_raw(public_key)):
            raise CosignatureError(f"cosigner key {name!r}: {why}")
        self.name = name
        self.public_key = public_key
        self.key_id = cosigner_key_id(name, _raw(public_key))

    @classmethod
    def from_raw(cls, name: str, public_key: bytes) -> CosignatureVerifier:
        return cls(name, Ed25519PublicKey.from_public_bytes(public_key))

    @classmethod
    def from_string(cls, vkey: str) -> CosignatureVerifier:
        """Parse a C2SP verifier key string with signature type 0x04."""
        fields = vkey.split("+", 2)  # names hold no '+'; the base64 key may
        if len(fields) != 3 or len(fields[1]) != 8:
            raise CosignatureError("malformed cosigner key: expected name+keyid+key")
        name, hex_id, b64 = fields
        try:
            raw = base64.b64decode(b64, validate=True)
        except (ValueError, TypeError):
            raise CosignatureError("malformed cosigner key: key data is not base64") from None
        if len(raw) != 33 or raw[0] != ALG_COSIGNATURE_V1:
            raise CosignatureError("malformed cosigner key: want 0x04 followed by a 32-byte Ed25519 key")
        verifier = cls.from_raw(name, raw[1:])
        if verifier.key_id.hex() != hex_id.lower():
            raise CosignatureError(f"cosigner key id {hex_id} does not match its name and key")
        return verifier

    def to_string(self) -> str:
        key = base64.b64encode(bytes([ALG_COSIGNATURE_V1]) + _raw(self.public_key)).decode()
        return f"{self.name}+{self.key_id.hex()}+{key}"

    def public_bytes(self) -> bytes:
        return _raw(self.public_key)

    def verify(self, checkpoint_text: str, signature: bytes) -> Cosignature:
        """Check one cosignature's bytes (timestamp || signature) over ``checkpoint_text``."""
        if len(signature) != 8 + 64:
            raise CosignatureError(f"cosignature by {self.name} is {len(signature)} bytes, want 72")
        (timestamp,) = struct.unpack(">Q", signature[:8])
        try:
            self.public_key.verify(signature[8:], cosigned_message(checkpoint_text, timestamp))
        except InvalidSignature:
            raise CosignatureError(f"invalid cosignature by {self.name}+{self.key_id.hex()}") from None
        return Cosignature(self.name, self.key_id, timestamp)


class CosignatureSigner:
    """A named Ed25519 cosigner key (a witness)."""

    def __init__(self, name: str, private_key: Ed25519PrivateKey) -> None:
        check_key_name(name)
        self.name = name
        self.private_key = private_key
        self.verifier = CosignatureVerifier(name, private_key.public_key())
        self.key_id = self.verifier.key_id

    def cosign(self, checkpoint_text: str, timestamp: int | None = None) -> Signature:
        t = int(time.time()) if timestamp is None else timestamp
        sig = self.private_key.sign(cosigned_message(checkpoint_text, t))
        return Signature(self.name, self.key_id, struct.pack(">Q", t) + sig)


def add_cosignature(signed_note: str, signer: CosignatureSigner, timestamp: int | None = None) -> str:
    """``signed_note`` with ``signer``'s cosignature appended (replacing an earlier one by it)."""
    text, old = split_note(signed_note)
    new = signer.cosign(text, timestamp)
    kept = [s for s in old if (s.name, s.key_id) != (new.name, new.key_id)]
    return text + "\n" + "".join(s.to_line() for s in kept + [new])


def cosignatures(signed_note: str, verifiers: Sequence[CosignatureVerifier]) -> list[Cosignature]:
    """The verified cosignatures in ``signed_note`` by the given cosigners (one per cosigner).

    Lines by other keys are ignored; a line by a known cosigner that fails is an error, as
    for note signatures. The note's own (log) signature is not checked here.
    """
    try:
        text, sigs = split_note(signed_note)
    except NoteError as e:
        raise CosignatureError(str(e)) from None
    known = {(v.name, v.key_id): v for v in verifiers}
    out: dict[tuple[str, bytes], Cosignature] = {}
    for sig in sigs:
        v = known.get((sig.name, sig.key_id))
        if v is not None:
            out.setdefault((sig.name, sig.key_id), v.verify(text, sig.signature))
    return list(out.values())
