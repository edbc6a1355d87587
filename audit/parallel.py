"""The auditor's order-independent work, done in worker processes: Ed25519 signature checks
and re-running the master policy.

The sequential pass (audit/verify.py) decides, entry by entry, which key must have signed
it; a worker gets a slice of the entries file by byte offsets plus that key assignment, reads
the slice itself (so entries never cross a pipe) and reports the entries that fail.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

from dedup.policy import POLICIES, Candidate, choose_master
from dedup.signing import pae
from dedup.v1 import statement_pb2, statements_pb2

try:  # libsodium verifies Ed25519 about twice as fast as OpenSSL, and verification is the bulk of an audit
    from nacl.bindings import crypto_sign_open as _sodium_open
    from nacl.exceptions import BadSignatureError as _SodiumBad
except ImportError:  # pragma: no cover - PyNaCl is a dependency; the fallback keeps the auditor working
    _sodium_open = None

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

_SKIP = 0xFFFFFFFF  # key slot of an entry whose signature is not to be checked
_PROPOSAL = statements_pb2.MasterProposed.DESCRIPTOR.full_name
_openssl_keys: dict[bytes, Ed25519PublicKey] = {}


def verify_ed25519(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """RFC 8032 Ed25519 verification of a raw 64-byte signature.

    libsodium is stricter than OpenSSL about degenerate keys, so a signature it refuses is
    checked again with OpenSSL (what every other party in the system verifies with): the
    verdict is OpenSSL's, only faster in the common case.
    """
    if len(signature) != 64:
        return False
    if _sodium_open is not None:
        try:
            _sodium_open(signature + message, public_key)
            return True
        except (_SodiumBad, ValueError):
            pass
    key = _openssl_keys.get(public_key)
    if key is None:
        key = _openssl_keys[public_key] = Ed25519PublicKey.from_public_bytes(public_key)
    try:
        key.verify(signature, message)
    except InvalidSignature:
        return False
    return True


@dataclass(frozen=True)
class Chunk:
    """Entries [first_index, first_index + len(slots)) at [offset, offset + length) of the file."""

    path: Path
    offset: int
    length: int
    first_index: int
    slots: bytes  # array('I'): per entry, the key it must verify with (index into keys), or _SKIP
    keys: tuple[bytes, ...]
    priorities: dict[str, int]  # custodial priority of every member admitted by the end of the chunk


def check_chunk(chunk: Chunk) -> list[tuple[int, int, str]]:
    """(entry index, phase, message) for each entry of the chunk that fails; phase 1 is the
    signature, 2 the policy re-run (the sequential pass uses 0 and 2 for its own checks)."""
    import array

    slots = array.array("I")
    slots.frombytes(chunk.slots)
    with open(chunk.path / "entries", "rb") as f:
        f.seek(chunk.offset)
        data = f.read(chunk.length)
    keys = chunk.keys
    parse = statement_pb2.SignedStatement.FromString
    unpack = struct.Struct(">I").unpack_from
    failures: list[tuple[int, int, str]] = []
    pos = 0
    for k, slot in enumerate(slots):
        (n,) = unpack(data, pos)
        entry = data[pos + 4 : pos + 4 + n]
        pos += 4 + n
        if slot == _SKIP:
            continue
        stmt = parse(entry)
        if not verify_ed25519(keys[slot], pae(stmt.type, stmt.body), stmt.signature):
            failures.append((chunk.first_index + k, 1, f"bad signature by {stmt.signer!r} on {stmt.type}"))
            continue
        if stmt.type == _PROPOSAL:
            problem = policy_problem(statements_pb2.MasterProposed.FromString(stmt.body), chunk.priorities)
            if problem:
                failures.append((chunk.first_index + k, 2, problem))
    return failures


def policy_problem(p: statements_pb2.MasterProposed, priorities: dict[str, int]) -> str | None:
    """Why a proposal is not the published policy's choice on its own evidence, or None.

    Membership, policy version, the cross-member rule and which copies are derived (from the
    log's matches) are checked in order by the sequential pass; this is the costly part,
    re-ranking the copies by the version the proposal cites."""
    if p.policy_version not in POLICIES or any(c.ref.member_id not in priorities for c in p.copies):
        return None
    cands = [Candidate(c.ref.member_id, c.ref.asset_id, c.evidence, priorities[c.ref.member_id], c.derived)
             for c in p.copies]
    if len({c.member_id for c in cands}) < 2:
        return None
    decision = choose_master(cands, p.policy_version)
    got = (p.master.member_id, p.master.asset_id)
    want = (decision.master.member_id, decision.master.asset_id)
    if got != want:
        return (f"proposal {p.proposal_id!r} names master {got[0]}/{got[1]} but the policy chooses "
                f"{want[0]}/{want[1]}")
    if p.deciding_rule != decision.deciding_rule:
        return f"proposal {p.proposal_id!r} says rule {p.deciding_rule!r} decided; the policy says {decision.deciding_rule!r}"
    return None


def check_notes(jobs: list[tuple[str, bytes, bytes, bytes]]) -> list[tuple[str, bool]]:
    """(checkpoint name, verified) for each (name, public key, message, signature)."""
    return [(name, verify_ed25519(key, msg, sig)) for name, key, msg, sig in jobs]
