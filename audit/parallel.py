"""The auditor's order-independent work, done in worker processes: leaf hashes, parsing,
Ed25519 signature checks and re-running the master policy.

The sequential pass (audit/verify.py) walks the entries file's length prefixes and hands a
worker a slice of it by byte offsets (so entries never cross a pipe) with the signing keys
the log has introduced so far. The worker reads the slice itself and sends back each entry's
leaf hash and a compact summary: its type, signer and key id, whether its signature verified
and with which key, and the few body fields the sequential rules need, so the sequential pass
never parses the common entries. It decides nothing: the sequential pass checks that the key
used is the one the log puts in force for that entry and applies every rule; whatever the
summary does not settle it works out from the entry itself.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from pathlib import Path

from google.protobuf.message import DecodeError

from dedup.policy import POLICIES, Candidate, master_of
from dedup.signing import pae_head, unbound_pae
from dedup.v1 import asset_pb2, statement_pb2, statements_pb2

from dedup.ed25519 import verify_many

_PROPOSAL = statements_pb2.MasterProposed.DESCRIPTOR.full_name
_MATCH = statements_pb2.MatchRecorded.DESCRIPTOR.full_name
_MANIFEST = asset_pb2.BatchManifest.DESCRIPTOR.full_name
_WITHDRAWN = asset_pb2.AssetsWithdrawn.DESCRIPTOR.full_name


@dataclass(frozen=True)
class Chunk:
    """Entries [first_index, first_index + count) at [offset, offset + length) of the file."""

    path: Path
    offset: int
    length: int
    first_index: int
    count: int
    signers: dict[tuple[str, bytes], int]  # (name, key id) -> key slot, of every key the log introduced so far
    keys: tuple[bytes, ...]  # raw public keys, by slot
    priorities: dict[str, int]  # custodial priority of every member admitted so far
    origin: str  # the log's, which every statement is signed for


class ChunkChanged(Exception):
    """The slice no longer frames as it did when the sequential pass walked it."""


#: A proposal's ranking could not be re-run here (a copy's member was not yet known).
UNCHECKED = False
#: A summary's verdict on an entry signed for no log (by releases before statements were bound
#: to their log), and on one that carries no signature (a coordinator statement the checkpoints
#: vouch for, if its type is one of those: the sequential pass decides).
UNBOUND = 2
UNSIGNED = 3


def check_chunk(chunk: Chunk) -> tuple[bytes, list]:
    """(leaf hashes of the chunk's entries, back to back; a summary of each entry).

    A summary is None when the entry is not a SignedStatement with a type and a signer, else
    (type, signer, key id, key slot verified with or -1, verified (True; UNBOUND if signed for no
    log, as releases before statements were bound to their log signed; UNSIGNED if it carries no
    signature, from a known key; else False), body), where body is a
    tuple of the fields the sequential rules need for the common types
    (see ``_summary``) or, for the others and for a body that does not parse, its bytes.
    """
    with open(chunk.path / "entries", "rb") as f:
        f.seek(chunk.offset)
        data = f.read(chunk.length)
    signers, keys, priorities = chunk.signers, chunk.keys, chunk.priorities
    parse = statement_pb2.SignedStatement.FromString
    unpack = struct.Struct(">I").unpack_from
    pack_q = struct.Struct(">Q").pack
    sha = hashlib.sha256
    strings: dict = {}  # one object per repeated string, so the summaries pickle small
    prefixes: dict[str, bytes] = {}
    hashes = []
    parsed: list = []  # None, or (type, signer, key id, slot, body, index into jobs or -1)
    jobs: list[tuple[bytes, bytes, bytes]] = []
    signed: list[tuple[str, bytes]] = []  # (type, body) of each job
    pos, end = 0, len(data)
    for _ in range(chunk.count):
        if end - pos < 4:
            raise ChunkChanged
        (n,) = unpack(data, pos)
        entry = data[pos + 4 : pos + 4 + n]
        pos += 4 + n
        if len(entry) != n:
            raise ChunkChanged
        hashes.append(sha(b"\x00" + entry).digest())
        try:
            stmt = parse(entry)
        except DecodeError:
            parsed.append(None)
            continue
        typ, signer = stmt.type, stmt.signer
        if not typ or not signer:
            parsed.append(None)
            continue
        typ = strings.setdefault(typ, typ)
        signer = strings.setdefault(signer, signer)
        key_id = stmt.key_id
        key_id = strings.setdefault(key_id, key_id)
        body, signature = stmt.body, stmt.signature
        slot = signers.get((signer, key_id), -1)
        job = -1
        if not signature:
            pass  # vouched for by the checkpoints alone, if its type may be: the sequential pass decides
        elif slot >= 0 and len(signature) == 64:
            head = prefixes.get(typ)
            if head is None:
                head = prefixes[typ] = pae_head(chunk.origin, typ)
            job = len(jobs)
            jobs.append((keys[slot], head + pack_q(len(body)) + body, signature))
            signed.append((typ, body))
        elif slot >= 0:
            slot = -1  # the sequential pass reports the malformed signature
        parsed.append((typ, signer, key_id, slot, body, job))
    if pos != end:
        raise ChunkChanged
    verdicts: list = verify_many(jobs)
    failed = [j for j, ok in enumerate(verdicts) if not ok]
    if failed:
        # Signed for no log, by a release before statements were bound to theirs? 2 if so: the
        # sequential pass decides whether the entry may be.
        again = verify_many([(jobs[j][0], unbound_pae(*signed[j]), jobs[j][2]) for j in failed])
        for j, ok in zip(failed, again):
            if ok:
                verdicts[j] = UNBOUND
    out: list = []
    for item in parsed:
        if item is None:
            out.append(None)
            continue
        typ, signer, key_id, slot, body, job = item
        ok = verdicts[job] if job >= 0 else (UNSIGNED if slot >= 0 else False)
        try:
            fields = _summary(typ, body, ok, priorities, strings)
        except DecodeError:
            fields = body
        out.append((typ, signer, key_id, slot, ok, fields))
    return b"".join(hashes), out


def _summary(typ: str, body: bytes, ok: bool, priorities: dict[str, int], strings: dict):
    if typ == _MATCH:
        m = statements_pb2.MatchRecorded.FromString(body)
        a, b = m.a, m.b
        crop = (m.crop.member_id, m.crop.asset_id) if m.HasField("crop") else None
        am, bm = a.member_id, b.member_id
        return (strings.setdefault(am, am), a.asset_id, strings.setdefault(bm, bm), b.asset_id, m.relation, crop)
    if typ == _PROPOSAL:
        p = statements_pb2.MasterProposed.FromString(body)
        version = p.policy_version
        keys, cands, derived, known = [], [], False, True
        for c in p.copies:
            ref = c.ref
            m, a = ref.member_id, ref.asset_id
            m = strings.setdefault(m, m)
            keys.append((m, a))
            d = c.derived
            derived = derived or d
            priority = priorities.get(m)
            if priority is None:
                known = False
            else:
                cands.append(Candidate(m, a, c.evidence, priority, d))
        # The ranking is re-run only on a proposal whose signature holds (or that carries none,
        # as the coordinator's proposals now do), as a failure of it is reported after the
        # signature's.
        problem = UNCHECKED
        if ok and known and version in POLICIES and len({m for m, _ in keys}) >= 2:
            problem = _ranking_problem(p, cands)
        return (p.proposal_id, p.cluster_id, p.supersedes, strings.setdefault(version, version), tuple(keys),
                derived, problem)
    if typ == _MANIFEST or typ == _WITHDRAWN:
        cls = asset_pb2.BatchManifest if typ == _MANIFEST else asset_pb2.AssetsWithdrawn
        member = cls.FromString(body).member_id
        return (strings.setdefault(member, member),)
    return body


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
    return _ranking_problem(p, cands)


def _ranking_problem(p: statements_pb2.MasterProposed, cands: list[Candidate]) -> str | None:
    master, rule = master_of(cands, p.policy_version)
    got = (p.master.member_id, p.master.asset_id)
    want = (master.member_id, master.asset_id)
    if got != want:
        return (f"proposal {p.proposal_id!r} names master {got[0]}/{got[1]} but the policy chooses "
                f"{want[0]}/{want[1]}")
    if p.deciding_rule != rule:
        return f"proposal {p.proposal_id!r} says rule {p.deciding_rule!r} decided; the policy says {rule!r}"
    return None


def check_notes(jobs: list[tuple[str, bytes, bytes, bytes]]) -> list[tuple[str, bool]]:
    """(checkpoint name, verified) for each (name, public key, message, signature)."""
    verdicts = verify_many([(key, msg, sig) for _, key, msg, sig in jobs])
    return [(name, ok) for (name, *_), ok in zip(jobs, verdicts)]
