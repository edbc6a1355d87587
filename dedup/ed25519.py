"""Ed25519 verification whose verdict is OpenSSL's, made faster with libsodium.

Every party checks signatures with OpenSSL (through `cryptography`). An auditor checks a
million of them, so ``verify`` asks libsodium first: it checks a signature about twice as fast
as OpenSSL through `cryptography`, and it is stricter (it refuses small-order keys and R, and
non-canonical encodings, that OpenSSL accepts). Whatever libsodium refuses is checked again by
OpenSSL, so libsodium can only save time, never change a verdict.

Nothing here does curve arithmetic: both verifiers are the libraries' own.
"""

from __future__ import annotations

from collections.abc import Iterable

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from nacl.bindings import crypto_core_ed25519_is_valid_point

try:
    from nacl._sodium import ffi as _ffi, lib as _sodium
except ImportError:  # pragma: no cover - PyNaCl is a dependency
    _sodium = None

_openssl_keys: dict[bytes, Ed25519PublicKey] = {}
_out = None  # libsodium's output buffer, reused: it only receives a copy of the message


def openssl_verify(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """RFC 8032 Ed25519 verification by OpenSSL: the reference verdict."""
    try:
        key = _openssl_keys.get(public_key)
        if key is None:
            key = Ed25519PublicKey.from_public_bytes(public_key)
            if len(_openssl_keys) < 4096:  # a log has few signers; a stream of strangers stays bounded
                _openssl_keys[public_key] = key
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


def weak_key(public_key: bytes) -> str:
    """Why ``public_key`` is not a key any honest key pair has, or "" when it is one.

    libsodium's ``crypto_core_ed25519_is_valid_point`` decides: an encoding that is not
    canonical, not a point of the curve, of small order (the identity among them, for which one
    signature verifies under every message) or off the prime-order subgroup is refused. A key
    made the standard way, [s]B, is none of these. OpenSSL accepts some of them."""
    if len(public_key) != 32:
        return f"an Ed25519 public key is 32 bytes, not {len(public_key)}"
    if not crypto_core_ed25519_is_valid_point(public_key):
        return ("weak Ed25519 public key: small order, off the prime-order subgroup, or not a canonical"
                " encoding of a curve point; no key pair made the standard way has it")
    return ""


def verify(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """OpenSSL's verdict on one raw 64-byte signature, through libsodium when it accepts."""
    if len(signature) != 64:
        return False
    if _sodium is not None and _sodium_ok(signature + message, public_key):
        return True
    return openssl_verify(public_key, message, signature)


def verify_many(jobs: Iterable[tuple[bytes, bytes, bytes]]) -> list[bool]:
    """OpenSSL's verdict on each (public key, message, signature)."""
    return [verify(*job) for job in jobs]
