"""C2SP signed notes (c2sp.org/signed-note) with Ed25519 keys only.

Checkpoints and witness cosignatures travel as signed notes, so the parser
here is strict: anything the spec forbids is refused with a NoteError rather
than guessed at, and a known key whose signature fails poisons the whole note.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from dedup.ed25519 import weak_key

__all__ = [
    "MAX_SIGNATURES",
    "Note",
    "NoteError",
    "NoteSigner",
    "NoteVerifier",
    "Signature",
    "add_signatures",
    "b64decode_canonical",
    "check_key_name",
    "key_id",
    "open_note",
    "sign_note",
    "split_note",
]

ALG_ED25519 = 0x01
# The spec asks verifiers to accept at least 16; the Go implementation stops at 100.
MAX_SIGNATURES = 100
_SIG_PREFIX = "\u2014 "  # em dash, space
_PRIVATE_PREFIX = "PRIVATE+KEY+"
_HEX8 = re.compile(r"[0-9a-fA-F]{8}")


class NoteError(ValueError):
    """A key string, note text or signed note is malformed or does not verify."""


def check_key_name(name: str) -> None:
    if not isinstance(name, str) or not name:
        raise NoteError("key name must be a non-empty string")
    if "+" in name:
        raise NoteError(f"key name {name!r} contains '+'")
    # str.isspace covers every Unicode space; control characters could never
    # appear in a valid note anyway.
    if any(c.isspace() or ord(c) < 0x20 for c in name):
        raise NoteError(f"key name {name!r} contains spaces or control characters")
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise NoteError(f"key name {name!r} is not valid UTF-8") from None


def b64decode_canonical(s: str, what: str) -> bytes:
    """Standard base64, padded and canonical, so one value has one spelling."""
    try:
        raw = base64.b64decode(s.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise NoteError(f"{what} is not valid base64") from None
    if base64.b64encode(raw).decode("ascii") != s:
        raise NoteError(f"{what} is not canonical base64")
    return raw


def key_id(name: str, public_key: bytes) -> bytes:
    """Key ID: SHA-256(name || 0x0A || 0x01 || 32-byte Ed25519 public key)[:4]."""
    return hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([ALG_ED25519]) + public_key).digest()[:4]


def _raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def _parse_key_string(s: str, parts: int, what: str) -> tuple[list[str], bytes, bytes]:
    """Split '...+name+hex8+base64(type||key)': the base64 may itself contain '+'."""
    fields = s.split("+", parts - 1)
    if len(fields) != parts:
        raise NoteError(f"malformed {what}: expected {parts} '+'-separated fields")
    *head, hex_id, b64 = fields
    check_key_name(head[-1])
    if not _HEX8.fullmatch(hex_id):
        raise NoteError(f"malformed {what}: key id {hex_id!r} is not 8 hex digits")
    key = b64decode_canonical(b64, f"{what} key data")
    if len(key) != 33:
        raise NoteError(f"malformed {what}: key data is {len(key)} bytes, want 33")
    if key[0] != ALG_ED25519:
        raise NoteError(f"unsupported {what} algorithm 0x{key[0]:02x} (only Ed25519, 0x01)")
    return head, bytes.fromhex(hex_id), key[1:]


class NoteVerifier:
    """A named Ed25519 public key that checks note signatures."""

    def __init__(self, name: str, public_key: Ed25519PublicKey) -> None:
        check_key_name(name)
        raw = _raw_public(public_key)
        if why := weak_key(raw):
            raise NoteError(f"key {name!r}: {why}")
        self.name = name
        self.public_key = public_key
        self.key_id = key_id(name, raw)

    @classmethod
    def from_string(cls, vkey: str) -> NoteVerifier:
        """Parse 'name+hex8(keyid)+base64(0x01||pubkey)', checking the key id."""
        (name,), kid, raw = _parse_key_string(vkey, 3, "verifier key")
        try:
            public_key = Ed25519PublicKey.from_public_bytes(raw)
        except ValueError as e:
            raise NoteError(f"malformed verifier key: {e}") from None
        verifier = cls(name, public_key)
        if verifier.key_id != kid:
            raise NoteError(f"verifier key id {kid.hex()} does not match its name and key")
        return verifier

    def to_string(self) -> str:
        key = base64.b64encode(bytes([ALG_ED25519]) + _raw_public(self.public_key)).decode()
        return f"{self.name}+{self.key_id.hex()}+{key}"

    def public_bytes(self) -> bytes:
        """The raw 32-byte Ed25519 public key."""
        return _raw_public(self.public_key)

    def verify(self, message: bytes, signature: bytes) -> bool:
        try:
            self.public_key.verify(bytes(signature), bytes(message))
        except InvalidSignature:
            return False
        return True

    def __repr__(self) -> str:
        return f"NoteVerifier({self.to_string()!r})"


class NoteSigner:
    """A named Ed25519 private key that signs notes."""

    def __init__(self, name: str, private_key: Ed25519PrivateKey) -> None:
        check_key_name(name)
        self.name = name
        self.private_key = private_key
        self.key_id = key_id(name, _raw_public(private_key.public_key()))

    @classmethod
    def generate(cls, name: str) -> NoteSigner:
        return cls(name, Ed25519PrivateKey.generate())

    @classmethod
    def from_string(cls, skey: str) -> NoteSigner:
        """Parse 'PRIVATE+KEY+name+hex8(keyid)+base64(0x01||seed)', checking the key id."""
        (private, key, name), kid, seed = _parse_key_string(skey, 5, "signer key")
        if (private, key) != ("PRIVATE", "KEY"):
            raise NoteError("malformed signer key: must start with 'PRIVATE+KEY+'")
        try:
            private_key = Ed25519PrivateKey.from_private_bytes(seed)
        except ValueError as e:
            raise NoteError(f"malformed signer key: {e}") from None
        signer = cls(name, private_key)
        if signer.key_id != kid:
            raise NoteError(f"signer key id {kid.hex()} does not match its name and key")
        return signer

    def to_string(self) -> str:
        seed = self.private_key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        key = base64.b64encode(bytes([ALG_ED25519]) + seed).decode()
        return f"{_PRIVATE_PREFIX}{self.name}+{self.key_id.hex()}+{key}"

    def verifier(self) -> NoteVerifier:
        return NoteVerifier(self.name, self.private_key.public_key())

    def sign(self, message: bytes) -> bytes:
        """Raw 64-byte Ed25519 signature (deterministic, per RFC 8032)."""
        return self.private_key.sign(bytes(message))

    def __repr__(self) -> str:
        # Never print the seed.
        return f"NoteSigner(name={self.name!r}, key_id={self.key_id.hex()!r})"


@dataclass(frozen=True)
class Signature:
    """One signature line: key name, 4-byte key id and the raw signature bytes."""

    name: str
    key_id: bytes
    signature: bytes

    def to_line(self) -> str:
        b64 = base64.b64encode(self.key_id + self.signature).decode()
        return f"{_SIG_PREFIX}{self.name} {b64}\n"


@dataclass(frozen=True)
class Note:
    """An opened note: its text, every signature line, and the verified ones."""

    text: str
    signatures: tuple[Signature, ...]
    verified: tuple[Signature, ...]


_CONTROL = re.compile("[\x00-\x09\x0b-\x1f]")  # every character below U+0020 but the newline


def _check_chars(s: str, what: str) -> None:
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        raise NoteError(f"{what} is not valid UTF-8") from None
    m = _CONTROL.search(s)
    if m:
        i = m.start()
        raise NoteError(f"{what} contains control character U+{ord(s[i]):04X} at offset {i}")


def _check_text(text: str) -> None:
    if not isinstance(text, str):
        raise NoteError("note text must be a str")
    if not text.endswith("\n"):
        raise NoteError("note text must end with a newline")
    _check_chars(text, "note text")


def split_note(msg: str | bytes) -> tuple[str, list[Signature]]:
    """Parse a signed note into its text and signature lines, verifying nothing."""
    if isinstance(msg, (bytes, bytearray)):
        try:
            msg = bytes(msg).decode("utf-8")
        except UnicodeDecodeError:
            raise NoteError("signed note is not valid UTF-8") from None
    _check_chars(msg, "signed note")
    # The last blank line separates the text (which may itself hold blank
    # lines) from the signatures.
    split = msg.rfind("\n\n")
    if split < 0:
        raise NoteError("signed note has no signature block (no blank line)")
    text, block = msg[: split + 1], msg[split + 2 :]
    if not block:
        raise NoteError("signed note has no signature lines")
    if not block.endswith("\n"):
        raise NoteError("signed note does not end with a newline")
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise NoteError(f"signed note has {len(lines)} signatures, more than {MAX_SIGNATURES}")
    sigs = []
    for n, line in enumerate(lines, 1):
        if not line.startswith(_SIG_PREFIX):
            raise NoteError(f"signature line {n} does not start with an em dash and a space")
        name, sep, b64 = line[len(_SIG_PREFIX) :].partition(" ")
        if not sep or not b64:
            raise NoteError(f"signature line {n} has no signature after the key name")
        try:
            check_key_name(name)
        except NoteError as e:
            raise NoteError(f"signature line {n}: {e}") from None
        raw = b64decode_canonical(b64, f"signature line {n}")
        if len(raw) < 5:
            raise NoteError(f"signature line {n} is too short ({len(raw)} bytes)")
        sigs.append(Signature(name, raw[:4], raw[4:]))
    return text, sigs


def open_note(msg: str | bytes, verifiers: Sequence[NoteVerifier]) -> Note:
    """Parse a signed note and verify it against the known verifiers.

    Signatures by unknown keys (name and key id not both matching a verifier)
    are kept but ignored. A failing signature by a known key is an error, and
    so is a note that no known key verified.
    """
    known: dict[tuple[str, bytes], NoteVerifier] = {}
    for v in verifiers:
        k = (v.name, v.key_id)
        if k in known:
            raise NoteError(f"ambiguous verifiers: two keys for {v.name}+{v.key_id.hex()}")
        known[k] = v
    text, sigs = split_note(msg)
    message = text.encode("utf-8")
    verified: list[Signature] = []
    seen: set[tuple[str, bytes]] = set()
    for sig in sigs:
        k = (sig.name, sig.key_id)
        v = known.get(k)
        if v is None:
            continue
        if not v.verify(message, sig.signature):
            raise NoteError(f"invalid signature by known key {sig.name}+{sig.key_id.hex()}")
        if k not in seen:
            seen.add(k)
            verified.append(sig)
    if not verified:
        raise NoteError("no known key signed this note")
    return Note(text=text, signatures=tuple(sigs), verified=tuple(verified))


def _signature_lines(text: str, signers: Sequence[NoteSigner]) -> list[Signature]:
    message = text.encode("utf-8")
    return [Signature(s.name, s.key_id, s.sign(message)) for s in signers]


def sign_note(text: str, signers: Sequence[NoteSigner]) -> str:
    """Sign `text` (which must end in a newline) with each signer, in order."""
    _check_text(text)
    if not signers:
        raise NoteError("a note needs at least one signer")
    sigs = _signature_lines(text, signers)
    return text + "\n" + "".join(s.to_line() for s in sigs)


def add_signatures(signed_note: str, signers: Sequence[NoteSigner]) -> str:
    """Add signatures (e.g. witness cosignatures) to an already signed note.

    Nothing is verified here; existing lines are kept in order, except those
    by the same name and key id as a new signer, which the new one replaces.
    """
    text, old = split_note(signed_note)
    new = _signature_lines(text, signers)
    replaced = {(s.name, s.key_id) for s in new}
    kept = [s for s in old if (s.name, s.key_id) not in replaced]
    if len(kept) + len(new) > MAX_SIGNATURES:
        raise NoteError(f"note would carry more than {MAX_SIGNATURES} signatures")
    return text + "\n" + "".join(s.to_line() for s in kept + new)
