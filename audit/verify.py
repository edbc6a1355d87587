"""Offline verification of an exported log, with nothing but the coordinator's public key.

Replays every entry in order: each statement's signature by a key the log itself has
introduced (members are admitted by coordinator-signed entries, a new coordinator key by a
``LogKeyRotated`` entry signed with the old one), that each statement is well formed and
signed by the party allowed to make it, that every master proposal is the cited policy's
choice on the evidence it states (and marks as derived exactly the copies the log's matches
show to be crops or bordered copies), that every vote is by a holder of a copy, once, on a
proposal still open, every ruling by an arbiter on a disputed proposal, and every agreed
outcome follows from those votes, that ruling or the deadline; then rebuilds the Merkle tree and checks every signed
checkpoint's root against it, the latest checkpoint's witness cosignatures against a quorum,
and that the log extends the last checkpoint this auditor trusted (the state file).

Who may sign what, and with which key, depends on the entries before; that is one cheap
sequential pass. The signature checks and policy re-runs do not, and fan out over a process
pool (audit/parallel.py); the first failure by entry index is the one reported.
"""

from __future__ import annotations

import array
import hashlib
import json
import os
import struct
import tempfile
import time
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Iterator

from google.protobuf.message import DecodeError

from dedup.checkpoint import Checkpoint, CheckpointError
from dedup.cosignature import CosignatureError, CosignatureVerifier, cosignatures
from dedup.export import CHECKPOINTS, ENTRIES, MAX_ENTRY, ExportError, checkpoint_name
from dedup.merkle import Tree
from dedup.note import NoteError, NoteVerifier, Signature, split_note
from dedup.policy import POLICIES, POLICY_V1, derived_copies
from dedup.signing import STATEMENT_TYPES
from dedup.v1 import asset_pb2, statement_pb2, statements_pb2

from .parallel import _SKIP, Chunk, check_chunk, check_notes

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey


class AuditFailure(Exception):
    """The export does not verify; the message names the entry or checkpoint and why."""


class StateError(ValueError):
    """The state file cannot be read or is not well formed."""


STATE_FORMAT = "dedup-audit-state/1"


@dataclass(frozen=True)
class TrustedCheckpoint:
    """The last checkpoint an auditor verified, kept in its state file."""

    size: int
    root: bytes
    note: str
    origin: str

    @classmethod
    def load(cls, path: Path) -> TrustedCheckpoint | None:
        """The trusted checkpoint in ``path``, or None if there is no such file yet."""
        try:
            raw = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StateError(f"cannot read state file {path}: {exc.strerror}") from exc
        try:
            d = json.loads(raw)
            if d.get("format") != STATE_FORMAT:
                raise StateError(f"state file {path} is not a {STATE_FORMAT} file")
            size, root, note = d["size"], bytes.fromhex(d["root"]), d["checkpoint"]
            cp = Checkpoint.parse(split_note(note)[0])
        except StateError:
            raise
        except (ValueError, KeyError, TypeError, AttributeError, NoteError, CheckpointError) as exc:
            raise StateError(f"state file {path} is not well formed: {exc}") from exc
        if (cp.size, cp.root_hash) != (size, root):
            raise StateError(f"state file {path}: size and root disagree with its checkpoint")
        return cls(size, root, note, cp.origin)

    def save(self, path: Path) -> None:
        """Replace ``path`` atomically: a crash leaves either the old state or the new one."""
        data = json.dumps({"format": STATE_FORMAT, "origin": self.origin, "size": self.size,
                           "root": self.root.hex(), "checkpoint": self.note, "saved_unix": int(time.time())},
                          indent=2) + "\n"
        path = path.resolve()
        fd, tmp = tempfile.mkstemp(prefix=".audit-state-", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


@dataclass
class AuditReport:
    entries: int = 0
    root: bytes = b""
    members: list[str] = field(default_factory=list)
    batches: int = 0
    matches: int = 0
    proposals: int = 0
    revocations: int = 0
    withdrawals: int = 0
    votes: int = 0
    rulings: int = 0
    agreements: int = 0
    rotations: int = 0
    lookup_counts: int = 0
    checkpoints: int = 0
    origin: str = ""
    latest_note: str = ""
    coordinator_key: str = ""  # the key in force at the end of the log
    cosigned_by: list[str] = field(default_factory=list)
    quorum: int = 0
    trusted_size: int | None = None  # the state file's checkpoint this export was shown to extend
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return {"ok": True, "entries": self.entries, "root": self.root.hex(), "origin": self.origin,
                "members": self.members, "batches": self.batches, "matches": self.matches,
                "proposals": self.proposals, "revocations": self.revocations, "withdrawals": self.withdrawals,
                "votes": self.votes, "rulings": self.rulings, "agreements": self.agreements,
                "rotations": self.rotations, "lookup_counts": self.lookup_counts, "checkpoints": self.checkpoints,
                "coordinator_key": self.coordinator_key,
                "cosigned_by": self.cosigned_by, "quorum": self.quorum, "trusted_size": self.trusted_size,
                "seconds": round(self.seconds, 3)}


COORDINATOR_TYPES = {
    statements_pb2.MemberAdmitted.DESCRIPTOR.full_name,
    statements_pb2.MemberRevoked.DESCRIPTOR.full_name,
    statements_pb2.MatchRecorded.DESCRIPTOR.full_name,
    statements_pb2.MasterProposed.DESCRIPTOR.full_name,
    statements_pb2.LogKeyRotated.DESCRIPTOR.full_name,
    statements_pb2.MasterAgreed.DESCRIPTOR.full_name,
    statements_pb2.LookupsCounted.DESCRIPTOR.full_name,
}
MEMBER_TYPES = {asset_pb2.BatchManifest.DESCRIPTOR.full_name, asset_pb2.AssetsWithdrawn.DESCRIPTOR.full_name,
                statements_pb2.MasterVote.DESCRIPTOR.full_name, statements_pb2.MasterRuling.DESCRIPTOR.full_name}
_ACCEPT, _REJECT, _CLAIM = (statements_pb2.VOTE_CHOICE_ACCEPT, statements_pb2.VOTE_CHOICE_REJECT,
                            statements_pb2.VOTE_CHOICE_CLAIM)

# Below this many bytes of entries the pool costs more to start than it saves.
POOL_THRESHOLD = 4 << 20
CHUNK_ENTRIES = 4096
CHUNK_BYTES = 4 << 20


class _Failure(Exception):
    def __init__(self, index: int, phase: int, message: str) -> None:
        super().__init__(message)
        self.index, self.phase, self.message = index, phase, message


@dataclass
class _State:
    coordinator: NoteVerifier
    members: dict[str, NoteVerifier] = field(default_factory=dict)
    priority: dict[str, int] = field(default_factory=dict)
    revoked: set[str] = field(default_factory=set)
    keys: list[bytes] = field(default_factory=list)  # raw public keys, by slot
    member_slot: dict[str, int] = field(default_factory=dict)
    coordinator_slot: int = 0
    # (name, key id) of each retired coordinator key -> index of the entry that retired it
    retired: dict[tuple[str, bytes], int] = field(default_factory=dict)
    # (entry index of each rotation, the key in force from the next entry on)
    rotations: list[tuple[int, NoteVerifier]] = field(default_factory=list)

    arbiters: set[str] = field(default_factory=set)
    readers: set[str] = field(default_factory=set)  # admitted to look up only: they sign nothing
    # the latest MatchRecorded between two assets (pair in sorted order) -> (a, b, relation, crop or None)
    links: dict[tuple, tuple] = field(default_factory=dict)
    proposals: dict[str, _Proposal] = field(default_factory=dict)
    live: dict[str, list[str]] = field(default_factory=dict)  # cluster id -> its proposals not superseded

    def slot(self, key: bytes) -> int:
        self.keys.append(key)
        return len(self.keys) - 1


_OPEN, _DISPUTED, _AGREED, _SUPERSEDED = "open", "disputed", "agreed", "superseded"


@dataclass(slots=True)
class _Proposal:
    """What the auditor keeps of a proposal to judge the votes, ruling and outcome on it."""

    cluster_id: str
    holders: frozenset[str]
    copies: frozenset[tuple[str, str]]
    master: tuple[str, str]
    deadline_unix: int
    status: str = _OPEN
    votes: dict[str, tuple[int, int]] = field(default_factory=dict)  # member -> (entry index, choice)
    ruling: tuple[int, tuple[str, str]] | None = None  # (entry index, master)

    def close(self, status: str) -> None:
        # A closed proposal only has to refuse what comes later: drop what judged it.
        self.status = status
        self.copies = frozenset()
        self.votes = {}


def _frames(path: Path) -> Iterator[tuple[int, int, bytes]]:
    """(index, file offset, entry) in order, read in large blocks; ExportError on a bad frame."""
    try:
        f = open(path / ENTRIES, "rb")
    except OSError as exc:
        raise ExportError(f"cannot read {path / ENTRIES}: {exc.strerror}") from exc
    unpack = struct.Struct(">I").unpack_from
    with f:
        buf, base, pos, index = b"", 0, 0, 0  # buf holds the file from offset `base`
        while True:
            if len(buf) - pos < 4 + MAX_ENTRY:
                more = f.read(8 << 20)
                buf, base, pos = buf[pos:] + more, base + pos, 0
            if pos == len(buf):
                return
            if len(buf) - pos < 4:
                raise ExportError(f"entry {index}: truncated length prefix")
            (n,) = unpack(buf, pos)
            if n > MAX_ENTRY:
                raise ExportError(f"entry {index}: declared length {n} exceeds {MAX_ENTRY}")
            if len(buf) - pos - 4 < n:
                raise ExportError(f"entry {index}: truncated ({len(buf) - pos - 4} of {n} bytes)")
            yield index, base + pos, buf[pos + 4 : pos + 4 + n]
            pos += 4 + n
            index += 1


def _member_key(member_id: str, raw: bytes) -> NoteVerifier:
    return NoteVerifier(member_id, Ed25519PublicKey.from_public_bytes(raw))


def _check_entry(i: int, entry: bytes, st: _State, report: AuditReport) -> int:
    """Checks that depend on the entries before this one; returns the key slot to verify with.

    State changes are applied before the entry's signature is known to hold: if it does not,
    that failure has this entry's index and is reported ahead of anything built on it."""
    try:
        stmt = statement_pb2.SignedStatement.FromString(entry)
    except DecodeError as exc:
        raise _Failure(i, 0, f"entry is not a SignedStatement: {exc}") from None
    if not stmt.type or not stmt.signer:
        raise _Failure(i, 0, "entry lacks a statement type or signer")
    cls = STATEMENT_TYPES.get(stmt.type)
    if cls is None:
        raise _Failure(i, 0, f"unknown statement type {stmt.type!r}")
    who = (stmt.signer, stmt.key_id)
    c = st.coordinator
    if who in st.retired:
        raise _Failure(i, 0, f"signed with the retired coordinator key {stmt.signer}+{stmt.key_id.hex()},"
                             f" replaced at entry {st.retired[who]}")
    if stmt.signer == c.name:
        if stmt.type not in COORDINATOR_TYPES:
            raise _Failure(i, 0, f"the coordinator may not sign {stmt.type} statements")
        if stmt.key_id != c.key_id:
            raise _Failure(i, 0, f"statement signed by key id {stmt.key_id.hex()}, not the known key "
                                 f"{c.key_id.hex()} of {c.name!r}")
        slot = st.coordinator_slot
    elif stmt.signer in st.members:
        if stmt.signer in st.revoked:
            raise _Failure(i, 0, f"signed by {stmt.signer!r} after its key was revoked")
        if stmt.type not in MEMBER_TYPES:
            raise _Failure(i, 0, f"member {stmt.signer!r} may not sign {stmt.type} statements")
        if stmt.signer in st.readers:
            raise _Failure(i, 0, f"{stmt.type} signed by {stmt.signer!r}, which was admitted as a reader "
                                 "(readers look up only)")
        v = st.members[stmt.signer]
        if stmt.key_id != v.key_id:
            raise _Failure(i, 0, f"statement signed by key id {stmt.key_id.hex()}, not the known key "
                                 f"{v.key_id.hex()} of {v.name!r}")
        slot = st.member_slot[stmt.signer]
    else:
        raise _Failure(i, 0, f"signed by {stmt.signer!r}, which is neither the coordinator nor an admitted member")
    if len(stmt.signature) != 64:
        raise _Failure(i, 1, f"bad signature by {stmt.signer!r} on {stmt.type}")
    try:
        body = cls.FromString(stmt.body)
    except DecodeError as exc:
        raise _Failure(i, 2, f"{stmt.type} body does not parse: {exc}") from None

    def fail(message: str):
        raise _Failure(i, 2, message)

    if isinstance(body, statements_pb2.MatchRecorded):
        for ref in (body.a, body.b):
            if ref.member_id not in st.members:
                fail(f"match {body.match_id!r} names {ref.member_id!r}, not an admitted member")
        if body.a.member_id == body.b.member_id:
            fail(f"match {body.match_id!r} links two assets of the same member")
        a, b = _key(body.a), _key(body.b)
        crop = _key(body.crop) if body.HasField("crop") else None
        if crop is not None and crop not in (a, b):
            fail(f"match {body.match_id!r} names {crop[0]}/{crop[1]} as the crop, which is neither of its assets")
        st.links[(min(a, b), max(a, b))] = (a, b, body.relation, crop)
        report.matches += 1
    elif isinstance(body, statements_pb2.MasterProposed):
        _check_proposal(body, st, fail)
        report.proposals += 1  # the ranking itself is re-run by the workers
    elif isinstance(body, statements_pb2.MasterVote):
        _check_vote(i, body, stmt.signer, st, fail)
        report.votes += 1
    elif isinstance(body, statements_pb2.MasterRuling):
        _check_ruling(i, body, stmt.signer, st, fail)
        report.rulings += 1
    elif isinstance(body, statements_pb2.MasterAgreed):
        _check_agreed(body, st, fail)
        report.agreements += 1
    elif isinstance(body, asset_pb2.BatchManifest):
        if body.member_id != stmt.signer:
            fail(f"batch manifest names member {body.member_id!r} but is signed by {stmt.signer!r}")
        report.batches += 1
    elif isinstance(body, asset_pb2.AssetsWithdrawn):
        if body.member_id != stmt.signer:
            fail(f"withdrawal names member {body.member_id!r} but is signed by {stmt.signer!r}")
        report.withdrawals += 1
    elif isinstance(body, statements_pb2.MemberAdmitted):
        if body.member_id in st.members:
            fail(f"member {body.member_id!r} admitted twice")
        if body.member_id == c.name:
            fail(f"member {body.member_id!r} has the coordinator's name")
        if len(body.public_key) != 32:
            fail(f"member {body.member_id!r}: public key is not 32 bytes")
        try:
            st.members[body.member_id] = _member_key(body.member_id, body.public_key)
        except (ValueError, NoteError) as exc:
            fail(f"member {body.member_id!r}: {exc}")
        st.priority[body.member_id] = body.custodial_priority
        if body.arbiter:
            st.arbiters.add(body.member_id)
        if body.reader:
            if body.arbiter:
                fail(f"member {body.member_id!r} is admitted as both a reader and an arbiter")
            st.readers.add(body.member_id)
        st.member_slot[body.member_id] = st.slot(body.public_key)
        report.members.append(body.member_id)
    elif isinstance(body, statements_pb2.LookupsCounted):
        if body.member_id not in st.members:
            fail(f"lookup count for {body.member_id!r}, not an admitted member")
        if body.calls == 0 or body.files < body.calls:
            fail(f"lookup count for {body.member_id!r}: {body.calls} calls asking about {body.files} files "
                 "(each call asks about at least one file)")
        if body.period_end_unix < body.period_start_unix:
            fail(f"lookup count for {body.member_id!r}: its period ends before it starts")
        report.lookup_counts += 1
    elif isinstance(body, statements_pb2.MemberRevoked):
        v = st.members.get(body.member_id)
        if v is None or v.public_bytes() != body.public_key:
            fail(f"revocation of {body.member_id!r} names a key the log never admitted for it")
        st.revoked.add(body.member_id)
        report.revocations += 1
    elif isinstance(body, statements_pb2.LogKeyRotated):
        try:
            old = NoteVerifier.from_string(body.old_verifier_key)
            new = NoteVerifier.from_string(body.new_verifier_key)
        except NoteError as exc:
            fail(f"key rotation: {exc}")
        if old.to_string() != c.to_string():
            fail(f"key rotation names old key {body.old_verifier_key!r}, but the key in force is {c.to_string()!r}")
        if (new.name, new.key_id) == (c.name, c.key_id) or (new.name, new.key_id) in st.retired:
            fail(f"key rotation to {new.name}+{new.key_id.hex()}, a key this log has already used")
        if new.name in st.members:
            fail(f"key rotation to a key named {new.name!r}, which is a member's name")
        st.retired[(c.name, c.key_id)] = i
        st.coordinator = new
        st.coordinator_slot = st.slot(new.public_bytes())
        st.rotations.append((i, new))
        report.rotations += 1
    return slot


def _key(ref: statements_pb2.AssetRef) -> tuple[str, str]:
    return (ref.member_id, ref.asset_id)


def _name(key: tuple[str, str]) -> str:
    return f"{key[0]}/{key[1]}"


def _check_proposal(p: statements_pb2.MasterProposed, st: _State, fail) -> None:
    """Everything about a proposal but the ranking (the workers re-run that)."""
    pid = p.proposal_id
    if p.policy_version not in POLICIES:
        fail(f"proposal {pid!r} cites policy {p.policy_version!r}; this auditor knows {', '.join(map(repr, POLICIES))}")
    for cp in p.copies:
        if cp.ref.member_id not in st.members:
            fail(f"proposal {pid!r} names {cp.ref.member_id!r}, not an admitted member")
    if len({cp.ref.member_id for cp in p.copies}) < 2:
        fail(f"proposal {pid!r} is not for a cross-member cluster")
    if pid in st.proposals:
        fail(f"proposal {pid!r} is proposed twice")
    evidence = {_key(cp.ref): cp.evidence for cp in p.copies}
    if len(evidence) != len(p.copies):
        fail(f"proposal {pid!r} lists a copy twice")
    if p.policy_version == POLICY_V1:
        want: set = set()
    else:
        # Only pairs of this proposal's copies: a match to anything else cannot make a copy derived.
        keys = sorted(evidence)
        links = [st.links[(x, y)] for n, x in enumerate(keys) for y in keys[n + 1:] if (x, y) in st.links]
        want = derived_copies(evidence, links)
    for cp in p.copies:
        if cp.derived != (_key(cp.ref) in want):
            why = ("the log's matches show it is a crop or bordered copy of another copy" if not cp.derived
                   else "no match in the log shows it is a crop or bordered copy of another copy")
            fail(f"proposal {pid!r} marks copy {_name(_key(cp.ref))} derived={cp.derived}, but {why}")
    if p.supersedes:
        old = st.proposals.get(p.supersedes)
        if old is None or old.cluster_id != p.cluster_id:
            fail(f"proposal {pid!r} supersedes {p.supersedes!r}, which is no earlier proposal for cluster {p.cluster_id!r}")
        if old.status == _SUPERSEDED:
            fail(f"proposal {pid!r} supersedes {p.supersedes!r}, which was already superseded")
    # A new proposal replaces every earlier one for its cluster still open, disputed or agreed.
    for old_id in st.live.pop(p.cluster_id, ()):
        st.proposals[old_id].close(_SUPERSEDED)
    st.proposals[pid] = _Proposal(p.cluster_id, frozenset(m for m, _ in evidence), frozenset(evidence),
                                  _key(p.master), p.deadline_unix)
    st.live[p.cluster_id] = [pid]


def _open_proposal(kind: str, pid: str, cluster_id: str, st: _State, fail) -> _Proposal:
    p = st.proposals.get(pid)
    if p is None:
        fail(f"{kind} on proposal {pid!r}, which the log does not hold")
    if cluster_id != p.cluster_id:
        fail(f"{kind} on proposal {pid!r} names cluster {cluster_id!r}, not its cluster {p.cluster_id!r}")
    if p.status == _SUPERSEDED:
        fail(f"{kind} on proposal {pid!r}, which was superseded")
    if p.status == _AGREED:
        fail(f"{kind} on proposal {pid!r}, which was already agreed")
    return p


def _check_vote(i: int, v: statements_pb2.MasterVote, signer: str, st: _State, fail) -> None:
    pid = v.proposal_id
    if v.member_id != signer:
        fail(f"vote on proposal {pid!r} names member {v.member_id!r} but is signed by {signer!r}")
    p = st.proposals.get(pid)
    if p is not None and signer not in p.holders:
        fail(f"vote on proposal {pid!r} signed by {signer}, who holds no copy in cluster {p.cluster_id}")
    p = _open_proposal("vote", pid, v.cluster_id, st, fail)
    if signer in p.votes:
        fail(f"second vote by {signer} on proposal {pid!r} (the first is entry {p.votes[signer][0]})")
    if v.choice not in (_ACCEPT, _REJECT, _CLAIM):
        fail(f"vote by {signer} on proposal {pid!r} has no valid choice")
    if v.choice == _REJECT and not v.reason.strip():
        fail(f"vote by {signer} on proposal {pid!r} rejects it without a reason")
    if v.choice == _CLAIM and (_key(v.claimed_master) not in p.copies or not v.claim_kind.strip()):
        fail(f"vote by {signer} on proposal {pid!r} claims {_name(_key(v.claimed_master))}, which is not a copy in"
             " the cluster, or names no kind of evidence")
    p.votes[signer] = (i, v.choice)
    if v.choice != _ACCEPT:
        p.status = _DISPUTED


def _check_ruling(i: int, r: statements_pb2.MasterRuling, signer: str, st: _State, fail) -> None:
    pid = r.proposal_id
    if signer not in st.arbiters:
        fail(f"ruling on proposal {pid!r} signed by {signer}, who was not admitted as an arbiter")
    if r.arbiter_id != signer:
        fail(f"ruling on proposal {pid!r} names arbiter {r.arbiter_id!r} but is signed by {signer!r}")
    p = _open_proposal("ruling", pid, r.cluster_id, st, fail)
    if p.status != _DISPUTED:
        fail(f"ruling on proposal {pid!r}, which no holder disputed")
    if p.ruling is not None:
        fail(f"second ruling on proposal {pid!r} (the first is entry {p.ruling[0]})")
    if _key(r.master) not in p.copies:
        fail(f"ruling on proposal {pid!r} names master {_name(_key(r.master))}, which is not a copy in the cluster")
    p.ruling = (i, _key(r.master))


def _check_agreed(a: statements_pb2.MasterAgreed, st: _State, fail) -> None:
    pid = a.proposal_id
    p = _open_proposal("outcome", pid, a.cluster_id, st, fail)
    master, indexes = _key(a.master), list(a.vote_indexes)
    all_votes = sorted(i for i, _ in p.votes.values())
    accepts = {m for m, (_, c) in p.votes.items() if c == _ACCEPT}
    what = f"outcome of proposal {pid!r}"
    if a.basis == statements_pb2.AGREEMENT_BASIS_UNANIMOUS:
        if p.status != _OPEN or accepts != p.holders:
            missing = ", ".join(sorted(p.holders - accepts))
            fail(f"{what} claims unanimity, but {missing} did not accept it")
        if master != p.master:
            fail(f"{what} agrees master {_name(master)}, not the proposed {_name(p.master)}")
        if indexes != all_votes:
            fail(f"{what} cites votes {indexes}; the votes on it are entries {all_votes}")
    elif a.basis == statements_pb2.AGREEMENT_BASIS_DEADLINE:
        if p.status != _OPEN:
            fail(f"{what} is agreed at the deadline, but a holder rejected it or claimed the master")
        if a.agreed_unix < p.deadline_unix:
            fail(f"{what} is agreed at the deadline at {a.agreed_unix}, before the deadline {p.deadline_unix}")
        silent = sorted(p.holders - set(p.votes))
        if list(a.silent_members) != silent:
            fail(f"{what} counts {list(a.silent_members)} as silent; the holders who did not vote are {silent}")
        if master != p.master:
            fail(f"{what} agrees master {_name(master)}, not the proposed {_name(p.master)}")
        if indexes != all_votes:
            fail(f"{what} cites votes {indexes}; the votes on it are entries {all_votes}")
    elif a.basis == statements_pb2.AGREEMENT_BASIS_RULING:
        if p.ruling is None or p.ruling[0] != a.ruling_index:
            fail(f"{what} cites ruling entry {a.ruling_index}, which is not a ruling on it")
        if master != p.ruling[1]:
            fail(f"{what} agrees master {_name(master)}, but the ruling names {_name(p.ruling[1])}")
        if indexes != all_votes:
            fail(f"{what} cites votes {indexes}; the votes on it are entries {all_votes}")
    else:
        fail(f"{what} has no valid basis")
    p.close(_AGREED)


class _Inline(Executor):
    """Runs each job at once in this process: for small exports and for tests."""

    def submit(self, fn, /, *args, **kwargs):
        f: Future = Future()
        try:
            f.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # noqa: BLE001 - handed to the caller through the future
            f.set_exception(exc)
        return f


def _executor(path: Path, workers: int | None) -> Executor:
    if workers is None:
        try:
            big = (path / ENTRIES).stat().st_size >= POOL_THRESHOLD
        except OSError:
            big = False
        workers = (os.cpu_count() or 1) if big else 0
    if workers <= 0:
        return _Inline()
    # spawn, not fork: the caller may run threads (a test's in-process coordinator, gRPC).
    return ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"))


def _key_for_size(st: _State, initial: NoteVerifier, size: int) -> tuple[NoteVerifier, int | None]:
    """The coordinator key that signs a checkpoint of ``size`` entries, and the index of the
    rotation that put it in force (None for the initial key): a checkpoint whose tree holds a
    LogKeyRotated entry is signed with that entry's new key."""
    key, at = initial, None
    for index, new in st.rotations:
        if index < size:
            key, at = new, index
    return key, at


def verify_export(path: Path, coordinator: NoteVerifier, *, witnesses: tuple[CosignatureVerifier, ...] = (),
                  witnesses_from_log: bool = False, quorum: int = 0, trusted: TrustedCheckpoint | None = None,
                  state_name: str = "the state file", workers: int | None = None) -> AuditReport:
    """Verify the export at ``path``; raise AuditFailure naming the first thing that fails."""
    started = time.perf_counter()
    report = AuditReport(quorum=quorum)
    st = _State(coordinator)
    st.coordinator_slot = st.slot(coordinator.public_bytes())
    tree = Tree()
    failures: list[_Failure] = []
    futures: list[Future] = []
    with _executor(path, workers) as pool:
        try:
            slots = array.array("I")
            chunk_start = chunk_offset = chunk_end = 0

            def flush(upto: int) -> None:
                nonlocal slots
                if len(slots):
                    futures.append(pool.submit(check_chunk, Chunk(
                        path, chunk_offset, upto - chunk_offset, chunk_start, slots.tobytes(), tuple(st.keys),
                        dict(st.priority))))
                slots = array.array("I")

            checkpoint_files = _read_checkpoints(path)

            append, sha = tree.append_leaf_hash, hashlib.sha256
            for i, offset, entry in _frames(path):
                if not len(slots):
                    chunk_start, chunk_offset = i, offset
                try:
                    slots.append(_check_entry(i, entry, st, report))
                except _Failure as f:
                    failures.append(f)
                    # The signature of a failing entry is still checked when the failure came
                    # after it (phase 2), so a forged entry is reported as such.
                    slots.append(_SKIP if f.phase < 2 else _last_slot(entry, st))
                    chunk_end = offset + 4 + len(entry)
                    break
                append(sha(b"\x00" + entry).digest())
                chunk_end = offset + 4 + len(entry)
                if len(slots) >= CHUNK_ENTRIES or chunk_end - chunk_offset >= CHUNK_BYTES:
                    flush(chunk_end)
            flush(chunk_end)
        except ExportError as exc:
            flush(chunk_end)
            failures.append(_Failure(tree.size, -1, str(exc)))
        report.entries = tree.size
        cps: list[tuple[str, Checkpoint, str]] = []
        checkpoint_failure = None
        if not failures:
            # Checked here while the pool is still busy with the entries; reported after them.
            try:
                cps = _check_checkpoint_signatures(checkpoint_files, st, coordinator, pool)
            except AuditFailure as exc:
                checkpoint_failure = exc
        for fut in futures:
            failures.extend(_Failure(*f) for f in fut.result())
    if checkpoint_failure is not None and not failures:
        raise checkpoint_failure
    if failures:
        first = min(failures, key=lambda f: (f.index, f.phase))
        if first.phase < 0:
            raise AuditFailure(first.message)
        raise AuditFailure(f"entry {first.index}: {first.message}")

    latest = _check_checkpoint_roots(cps, tree)
    report.checkpoints = len(cps)
    report.root = tree.root()
    report.origin = latest[1].origin
    report.latest_note = latest[2]
    report.coordinator_key = st.coordinator.to_string()

    wits = list(witnesses)
    if witnesses_from_log:
        wits += [CosignatureVerifier.from_raw(m, v.public_bytes()) for m, v in sorted(st.members.items())
                 if m not in st.revoked]
    if quorum:
        report.cosigned_by = _check_quorum(latest, wits, quorum)
    if trusted is not None:
        _check_trusted(trusted, latest, cps, tree, state_name)
        report.trusted_size = trusted.size
    report.seconds = time.perf_counter() - started
    return report


def _last_slot(entry: bytes, st: _State) -> int:
    stmt = statement_pb2.SignedStatement.FromString(entry)
    if stmt.signer == st.coordinator.name:
        return st.coordinator_slot
    return st.member_slot.get(stmt.signer, _SKIP)


def _read_checkpoints(path: Path) -> list[tuple[str, str]]:
    d = path / CHECKPOINTS
    if not d.is_dir():
        raise ExportError(f"{d} is missing: an export needs at least one signed checkpoint")
    out = []
    for p in sorted(d.iterdir()):
        if p.is_file():
            try:
                out.append((p.name, p.read_text(encoding="utf-8")))
            except UnicodeDecodeError:
                out.append((p.name, "\x00"))  # refused by the note parser, naming the file
    if not out:
        raise ExportError(f"{d} holds no checkpoint")
    return out


def _check_checkpoint_signatures(files: list[tuple[str, str]], st: _State, initial: NoteVerifier,
                                 pool: Executor) -> list[tuple[str, Checkpoint, str]]:
    """Parse every checkpoint and check it is signed by the coordinator key in force at its
    size; return (file name, checkpoint, note) in order of size."""
    parsed: list[tuple[str, Checkpoint, str, Signature, NoteVerifier]] = []
    for name, note in files:
        try:
            text, sigs = split_note(note)
            cp = Checkpoint.parse(text)
        except (NoteError, CheckpointError) as exc:
            raise AuditFailure(f"checkpoint {name}: {exc}") from exc
        key, rotated_at = _key_for_size(st, initial, cp.size)
        mine = [s for s in sigs if (s.name, s.key_id) == (key.name, key.key_id)]
        if not mine:
            retired = [s for s in sigs if (s.name, s.key_id) in st.retired
                       and st.retired[(s.name, s.key_id)] < cp.size]
            if retired:
                s = retired[0]
                raise AuditFailure(
                    f"checkpoint {name}: signed for size {cp.size} with the retired coordinator key "
                    f"{s.name}+{s.key_id.hex()}, replaced at entry {st.retired[(s.name, s.key_id)]}; "
                    f"the key in force is {key.name}+{key.key_id.hex()}")
            others = ", ".join(f"{s.name}+{s.key_id.hex()}" for s in sigs)
            raise AuditFailure(f"checkpoint {name}: not signed by the coordinator key {key.name}+{key.key_id.hex()}"
                               f" in force at size {cp.size}; signed only by unknown key(s) {others}")
        parsed.append((name, cp, note, mine[0], key))
        if len(mine) > 1:
            raise AuditFailure(f"checkpoint {name}: two signatures by the coordinator key")
    jobs = [(name, key.public_bytes(), split_note(note)[0].encode("utf-8"), sig.signature)
            for name, cp, note, sig, key in parsed]
    # Notes are small, so unlike entries they are shipped to the workers whole.
    futures = [pool.submit(check_notes, jobs[k : k + 2048]) for k in range(0, len(jobs), 2048)]
    bad = {name for fut in futures for name, ok in fut.result() if not ok}
    for name, cp, note, sig, key in parsed:
        if name in bad:
            raise AuditFailure(f"checkpoint {name}: invalid signature by the coordinator key {key.name}+{key.key_id.hex()}")
    return sorted(((name, cp, note) for name, cp, note, _, _ in parsed), key=lambda t: (t[1].size, t[0]))


def _cp(name: str, cp: Checkpoint) -> str:
    return f"checkpoint {name} (size {cp.size}, root {cp.root_hash.hex()})"


def _check_checkpoint_roots(cps: list[tuple[str, Checkpoint, str]], tree: Tree) -> tuple[str, Checkpoint, str]:
    by_size: dict[int, tuple[str, Checkpoint]] = {}
    origin = None
    for name, cp, _ in cps:
        other = by_size.get(cp.size)
        if other is not None and other[1].root_hash != cp.root_hash:
            raise AuditFailure(f"{_cp(other[0], other[1])} and {_cp(name, cp)} are a fork: two signed trees of one"
                               " size cannot both be views of one log")
        by_size[cp.size] = (name, cp)
        if origin is not None and cp.origin != origin:
            raise AuditFailure(f"checkpoint {name}: origin {cp.origin!r} differs from {origin!r}")
        origin = cp.origin
        if name != checkpoint_name(cp.size):
            raise AuditFailure(f"checkpoint {name}: the file name does not match its size {cp.size}")
    size = tree.size
    matches = [cp.size <= size and tree.root(cp.size) == cp.root_hash for _, cp, _ in cps]
    for k, (name, cp, _) in enumerate(cps):
        if matches[k]:
            continue
        later = next(((n, c) for (n, c, _), ok in zip(cps[k + 1:], matches[k + 1:]) if ok), None)
        if later is not None:
            # A later checkpoint that matches the entries commits to their tree at every smaller
            # size, so this one's root is not the same log's, whatever the entries say.
            raise AuditFailure(
                f"{_cp(name, cp)} and {_cp(*later)} are a fork: the later one commits to root "
                f"{tree.root(cp.size).hex()} at size {cp.size}, so they cannot both be views of one log")
        if cp.size > size:
            raise AuditFailure(f"checkpoint {name}: signed for {cp.size} entries but the export holds only {size}:"
                               " the log is truncated")
        earlier = next(((n, c) for (n, c, _), ok in zip(reversed(cps[:k]), reversed(matches[:k])) if ok), None)
        since = f"; the entries still match {_cp(*earlier)}" if earlier else ""
        raise AuditFailure(f"checkpoint {name}: signed root for size {cp.size} does not match the entries"
                           f" (an entry was altered, removed, inserted or reordered){since}")
    latest = cps[-1]
    if latest[1].size != size:
        raise AuditFailure(f"the export holds {size} entries but the latest signed checkpoint covers {latest[1].size}:"
                           f" entries {latest[1].size}..{size - 1} are vouched for by no checkpoint")
    return latest


def _check_quorum(latest: tuple[str, Checkpoint, str], witnesses: list[CosignatureVerifier], quorum: int) -> list[str]:
    name, cp, note = latest
    try:
        found = cosignatures(note, witnesses)
    except CosignatureError as exc:
        raise AuditFailure(f"checkpoint {name}: {exc}") from exc
    names = sorted({c.name for c in found})
    if len(names) < quorum:
        got = f" ({', '.join(names)})" if names else ""
        raise AuditFailure(f"checkpoint {name}: the latest checkpoint carries {len(names)} valid cosignature(s) by"
                           f" known witnesses{got}, fewer than the quorum of {quorum}")
    return names


def _check_trusted(trusted: TrustedCheckpoint, latest: tuple[str, Checkpoint, str],
                   cps: list[tuple[str, Checkpoint, str]], tree: Tree, state_name: str) -> None:
    t = f"the trusted checkpoint in {state_name} (size {trusted.size}, root {trusted.root.hex()})"
    name, cp, _ = latest
    if cp.origin != trusted.origin:
        raise AuditFailure(f"{_cp(name, cp)} is for log {cp.origin!r} but {t} is for {trusted.origin!r}")
    if cp.size < trusted.size:
        raise AuditFailure(f"{_cp(name, cp)}, the export's latest, is smaller than {t}: the log was truncated or"
                           " rolled back")
    if tree.root(trusted.size) != trusted.root:
        # Name the export's first checkpoint that covers the trusted size: it commits to the other tree.
        other = next((n, c) for n, c, _ in cps if c.size >= trusted.size)
        raise AuditFailure(f"{_cp(*other)} and {t} cannot both be views of one log: the export's tree at size "
                           f"{trusted.size} has root {tree.root(trusted.size).hex()} (a fork)")


def trusted_from(report: AuditReport) -> TrustedCheckpoint:
    cp = Checkpoint.parse(split_note(report.latest_note)[0])
    return TrustedCheckpoint(cp.size, cp.root_hash, report.latest_note, cp.origin)


def make_bundle(path: Path, index: int, size: int | None = None):
    """The c2sp.org/tlog-proof bundle of entry ``index`` against the export's checkpoint of
    ``size`` entries (default: the latest). Nothing is verified but that the checkpoint's root
    is the entries' root at that size: the bundle's reader verifies the rest."""
    from dedup.proofbundle import Bundle

    try:
        files = dict(_read_checkpoints(path))
    except ExportError as exc:
        raise AuditFailure(str(exc)) from exc
    if size is None:
        name = max(files)
    else:
        name = checkpoint_name(size)
        if name not in files:
            raise AuditFailure(f"the export has no checkpoint for size {size}")
    note = files[name]
    try:
        cp = Checkpoint.parse(split_note(note)[0])
    except (NoteError, CheckpointError) as exc:
        raise AuditFailure(f"checkpoint {name}: {exc}") from exc
    if not 0 <= index < cp.size:
        raise AuditFailure(f"entry {index} is not inside the tree of checkpoint {name} (size {cp.size})")
    tree = Tree()
    entry = b""
    try:
        for i, _, e in _frames(path):
            if i >= cp.size:
                break
            if i == index:
                entry = e
            tree.append_leaf_hash(hashlib.sha256(b"\x00" + e).digest())
    except ExportError as exc:
        raise AuditFailure(str(exc)) from exc
    if tree.size < cp.size:
        raise AuditFailure(f"checkpoint {name}: signed for {cp.size} entries but the export holds only {tree.size}")
    if tree.root(cp.size) != cp.root_hash:
        raise AuditFailure(f"checkpoint {name}: signed root for size {cp.size} does not match the entries")
    return Bundle(entry, index, tuple(tree.inclusion_proof(index, cp.size)), note)


__all__ = ["AuditFailure", "AuditReport", "StateError", "TrustedCheckpoint", "make_bundle", "trusted_from",
           "verify_export"]
