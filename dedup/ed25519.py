"""Ed25519 verification whose verdict is OpenSSL's, made fast for logs with few signers.

Every party checks signatures with OpenSSL (through `cryptography`). An auditor checks a
million of them, almost all made by the same handful of keys, so this module offers two
faster routes that accept only what OpenSSL accepts:

- ``verify_many`` uses the compiled ``dedup._ed25519`` module: each key's multiples are
  tabulated once (about 0.5 MB and a few milliseconds per key), after which a check costs
  about 64 point additions instead of a double scalar multiplication. It computes the same
  cofactorless equation as OpenSSL, exactly, and compares encodings as OpenSSL does.
- ``verify`` uses libsodium, which is stricter than OpenSSL about degenerate keys.

Whatever a fast route refuses, or cannot take (a key whose encoding is not canonical), is
checked again by OpenSSL, so a fast route can only ever save time, never change a verdict.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Sequence

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

try:
    from dedup import _ed25519
except ImportError:  # pragma: no cover - built by the package install where a C compiler exists
    _ed25519 = None

try:  # libsodium verifies a single signature about twice as fast as OpenSSL through cryptography
    from nacl._sodium import ffi as _ffi, lib as _sodium
except ImportError:  # pragma: no cover - PyNaCl is a dependency
    _sodium = None

P = 2**255 - 19
L = 2**252 + 27742317777372353535851937790883648493
_D = -121665 * pow(121666, -1, P) % P
_SQRT_M1 = pow(2, (P - 1) // 4, P)
_BASE_Y = 4 * pow(5, -1, P) % P
_BASE_X = 15112221349535400772501151409588531511454012693041857206046113283949847762202

#: The compiled verifier is present (it is built when the package is installed).
COMPILED = _ed25519 is not None
_MAX_KEYS = 255  # key slots per call to the compiled verifier (slot 0 is the base point)


def decode_point(encoded: bytes) -> tuple[int, int] | None:
    """The affine point (x, y) of a canonical 32-byte encoding (RFC 8032, 5.1.3), or None.

    None also for the two points with x = 0 and the sign bit set, whose handling differs
    between implementations; those keys are left to OpenSSL."""
    if len(encoded) != 32:
        return None
    n = int.from_bytes(encoded, "little")
    sign, y = n >> 255, n & ((1 << 255) - 1)
    if y >= P:
        return None
    x2 = (y * y - 1) * pow(_D * y * y + 1, -1, P) % P
    if x2 == 0:
        return None if sign else (0, y)
    x = pow(x2, (P + 3) // 8, P)
    if (x * x - x2) % P:
        x = x * _SQRT_M1 % P
    if (x * x - x2) % P:
        return None
    if x & 1 != sign:
        x = P - x
    return x, y


def _table(point: tuple[int, int]) -> bytes:
    x, y = point
    return _ed25519.table(x.to_bytes(32, "little"), y.to_bytes(32, "little"))


class TableVerifier:
    """Checks many signatures by a few keys, keeping the tables of the keys it uses most.

    A table costs about 0.5 MB and as much time as some 40 checks by libsodium, so a key gets
    one only when a call brings at least ``min_uses`` of its signatures (or it has one
    already), and at most ``max_tables`` are kept; other signatures go through ``verify``."""

    def __init__(self, max_tables: int = 32, min_uses: int = 64) -> None:
        if _ed25519 is None:
            raise RuntimeError("dedup._ed25519 is not built (the package was installed without a C compiler)")
        if not 1 <= max_tables <= _MAX_KEYS:
            raise ValueError(f"max_tables must be between 1 and {_MAX_KEYS}")
        self.max_tables, self.min_uses = max_tables, min_uses
        self._base = _table((_BASE_X, _BASE_Y))
        self._tables: dict[bytes, bytes | None] = {}  # in order of last use; None: left to OpenSSL

    def _table(self, public_key: bytes, uses: int) -> bytes | None:
        table = self._tables.pop(public_key, False)
        if table is False:
            if uses < self.min_uses:
                return None
            point = decode_point(public_key)
            table = None if point is None else _table(point)
        self._tables[public_key] = table
        while len(self._tables) > self.max_tables:
            del self._tables[next(iter(self._tables))]
        return table

    def verify_many(self, jobs: Sequence[tuple[bytes, bytes, bytes]]) -> list[bool]:
        """OpenSSL's verdict on each (public key, message, signature)."""
        uses = Counter(key for key, _, _ in jobs)
        slots: dict[bytes, int] = {}
        tables = [self._base]
        for key, n in uses.most_common(self.max_tables):
            table = self._table(key, n)
            if table is not None:
                slots[key] = len(tables)
                tables.append(table)
        sha512 = hashlib.sha512
        from_bytes = int.from_bytes
        records = []
        fast = []  # indexes of the jobs in ``records``
        for i, (key, message, signature) in enumerate(jobs):
            slot = slots.get(key)
            if slot is None or len(signature) != 64:
                continue
            r = signature[:32]
            k = from_bytes(sha512(r + key + message).digest(), "little") % L
            records.append(b"%c%s%s%s" % (slot, signature[32:], k.to_bytes(32, "little"), r))
            fast.append(i)
        verdicts: list[bool | None] = [None] * len(jobs)
        if records:
            for i, ok in zip(fast, _ed25519.verify(tables, b"".join(records))):
                # A refusal is OpenSSL's too; asking it again costs little, as refusals are rare.
                verdicts[i] = ok == 1 or openssl_verify(*jobs[i])
        return [verify(*jobs[i]) if ok is None else ok for i, ok in enumerate(verdicts)]


_openssl_keys: dict[bytes, Ed25519PublicKey] = {}
_out = None  # libsodium's output buffer, reused: it only receives a copy of the message


def openssl_verify(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """RFC 8032 Ed25519 verification by OpenSSL: the reference verdict."""
    try:
        key = _openssl_keys.get(public_key)
        if key is None:
            key = _openssl_keys[public_key] = Ed25519PublicKey.from_public_bytes(public_key)
        key.verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True


def _sodium_ok(signed: bytes, public_key: bytes) -> bool:
    global _out
    if len(public_key) != 32:
        return False
    if _out is None or len(_out) < len(signed):
        _out = _ffi.new("unsigned char[]", max(len(signed), 1 << 16))
    return _sodium.crypto_sign_open(_out, _ffi.NULL, signed, len(signed), public_key) == 0


def verify(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """OpenSSL's verdict on one raw 64-byte signature, through libsodium when it accepts."""
    if len(signature) != 64:
        return False
    if _sodium is not None and _sodium_ok(signature + message, public_key):
        return True
    return openssl_verify(public_key, message, signature)


def verify_many(jobs: Iterable[tuple[bytes, bytes, bytes]], verifier: TableVerifier | None = None) -> list[bool]:
    """OpenSSL's verdict on each (public key, message, signature), through ``verifier``'s
    tables when the compiled module is built."""
    jobs = list(jobs)
    if verifier is None and COMPILED:
        verifier = TableVerifier()
    if verifier is None:
        return [verify(*job) for job in jobs]
    return verifier.verify_many(jobs)
