"""Offline verification of an exported log, with nothing but the coordinator's public key.

Replays every entry in order: each statement's signature by a key the log itself has
introduced (members are admitted by coordinator-signed entries, a new coordinator key by a
``LogKeyRotated`` entry signed with the old one; the coordinator's matches, proposals,
outcomes and lookup counts carry no signature of their own, as the checkpoints over them sign
them), that each statement is well formed and
signed by the party allowed to make it, that every master proposal is the cited policy's
choice on the evidence it states (and marks as derived exactly the copies the log's matches
show to be crops or bordered copies), that every vote is by a holder of a copy, once, on a
proposal still open, every ruling by an arbiter on a disputed proposal, and every agreed
outcome follows from those votes, that ruling or the deadline; then rebuilds the Merkle tree and checks every signed
checkpoint's root against it, the latest checkpoint's witness cosignatures against a quorum,
and that the log extends the last checkpoint this auditor trusted (the state file).

Who may sign what, and with which key, depends on the entries before; that is one cheap
sequential pass. Hashing, parsing, the signature checks and policy re-runs do not, and fan out
over a process pool (audit/parallel.py), which sends back a compact summary of each entry; the
sequential pass judges the entries in order from those summaries and stops at the first
failure, which is the one reported. It keeps of each proposal only what later votes, rulings
and outcomes need, and reads the entry again for the rest.
"""

from __future__ import annotations

import array
import gc
import hashlib
import json
import os
import struct
import tempfile
import time
from collections import deque
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Callable, Iterator

from google.protobuf.message import DecodeError

from dedup.checkpoint import Checkpoint, CheckpointError
from dedup.cosignature import CosignatureError, CosignatureVerifier, cosignatures
from dedup.ed25519 import verify as verify_ed25519
from dedup.export import (BLOCK, CHECKPOINTS, ENTRIES, MAX_ENTRY, ExportError, checkpoint_name, frame_length,
                          open_entries, read_entries, read_frames)
from dedup.merkle import Tree
from dedup.note import NoteError, NoteVerifier, Signature, split_note
from dedup.policy import POLICIES, POLICY_V1, derived_copies
from dedup.signing import CHECKPOINTED_TYPES, STATEMENT_TYPES, pae, unbound_pae
from dedup.v1 import asset_pb2, statement_pb2, statements_pb2

from .parallel import UNBOUND, UNCHECKED, UNSIGNED, Chunk, ChunkChanged, check_chunk, check_notes, policy_problem

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
    key_replacements: int = 0
    withdrawals: int = 0
    votes: int = 0  # each vote, sent alone or in a ballot
    ballots: int = 0
    rulings: int = 0
    agreements: int = 0
    rotations: int = 0
    lookup_counts: int = 0
    unbound: int = 0  # entries signed for no log, by releases before statements were bound to theirs
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
                "proposals": self.proposals, "revocations": self.revocations,
                "key_replacements": self.key_replacements, "withdrawals": self.withdrawals,
                "votes": self.votes, "ballots": self.ballots, "rulings": self.rulings, "agreements": self.agreements,
                "rotations": self.rotations, "lookup_counts": self.lookup_counts, "unbound": self.unbound,
                "checkpoints": self.checkpoints,
                "coordinator_key": self.coordinator_key,
                "cosigned_by": self.cosigned_by, "quorum": self.quorum, "trusted_size": self.trusted_size,
                "seconds": round(self.seconds, 3)}


COORDINATOR_TYPES = {
    statements_pb2.MemberAdmitted.DESCRIPTOR.full_name,
    statements_pb2.MemberRevoked.DESCRIPTOR.full_name,
    statements_pb2.MemberKeyReplaced.DESCRIPTOR.full_name,
    statements_pb2.MatchRecorded.DESCRIPTOR.full_name,
    statements_pb2.MasterProposed.DESCRIPTOR.full_name,
    statements_pb2.LogKeyRotated.DESCRIPTOR.full_name,
    statements_pb2.MasterAgreed.DESCRIPTOR.full_name,
    statements_pb2.LookupsCounted.DESCRIPTOR.full_name,
}
MEMBER_TYPES = {asset_pb2.BatchManifest.DESCRIPTOR.full_name, asset_pb2.AssetsWithdrawn.DESCRIPTOR.full_name,
                statements_pb2.MasterVote.DESCRIPTOR.full_name, statements_pb2.MasterBallot.DESCRIPTOR.full_name,
                statements_pb2.MasterRuling.DESCRIPTOR.full_name}
_ACCEPT, _REJECT, _CLAIM = (statements_pb2.VOTE_CHOICE_ACCEPT, statements_pb2.VOTE_CHOICE_REJECT,
                            statements_pb2.VOTE_CHOICE_CLAIM)

# Below this many bytes of entries the pool costs more to start than it saves.
POOL_THRESHOLD = 4 << 20
CHUNK_ENTRIES = 4096
FIRST_CHUNK_ENTRIES = 256
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
    signers: dict[tuple[str, bytes], int] = field(default_factory=dict)  # (name, key id) -> slot, for the workers
    member_slot: dict[str, int] = field(default_factory=dict)
    coordinator_slot: int = 0
    # (name, key id) of each retired coordinator key -> index of the entry that retired it
    retired: dict[tuple[str, bytes], int] = field(default_factory=dict)
    # (entry index of each rotation, the key in force from the next entry on)
    rotations: list[tuple[int, NoteVerifier]] = field(default_factory=list)
    # (member, key id) of each replaced member key -> index of the entry that replaced it
    replaced: dict[tuple[str, bytes], int] = field(default_factory=dict)
    # Every raw public key the log has put in force, for anyone -> whose: no key serves two parties
    owners: dict[bytes, str] = field(default_factory=dict)

    arbiters: set[str] = field(default_factory=set)
    readers: set[str] = field(default_factory=set)  # admitted to look up only: they sign nothing
    auditors: set[str] = field(default_factory=set)  # admitted to read every entry: they sign nothing either
    # The latest MatchRecorded between two assets (pair in sorted order) -> (a, b, relation, crop or None),
    # kept only while it is a crop or border match: no other relation makes a copy derived.
    links: dict[tuple, tuple] = field(default_factory=dict)
    # asset -> the pairs of ``links`` it is in: a proposal of thousands of copies is checked
    # against its copies' links, not against every pair of copies.
    linked: dict[tuple, set] = field(default_factory=dict)
    proposals: dict[str, _Proposal] = field(default_factory=dict)
    live: dict[str, str] = field(default_factory=dict)  # cluster id -> its latest proposal
    holder_sets: dict[frozenset, frozenset] = field(default_factory=dict)  # one object per set of holders
    # (type, signer, key id) -> key slot, as _signer_slot decides it until the next change of keys
    allowed: dict[tuple[str, str, bytes], int] = field(default_factory=dict)
    read: Callable[[int], bytes] | None = None  # entry by index, from the file, checked against its leaf hash
    origin: str = ""  # the log's (its checkpoints' first line): every statement must be signed for it
    first_bound: int | None = None  # the first entry signed for the log: no unbound one may follow it

    def slot(self, name: str, key_id: bytes, key: bytes) -> int:
        self.keys.append(key)
        self.signers[(name, key_id)] = len(self.keys) - 1
        return len(self.keys) - 1

    def proposed(self, p: _Proposal) -> statements_pb2.MasterProposed:
        """The MasterProposed entry of ``p``, read again: copies, master and deadline are
        needed only by the rare claim, ruling or outcome, so they are not kept."""
        stmt = statement_pb2.SignedStatement.FromString(self.read(p.index))
        return statements_pb2.MasterProposed.FromString(stmt.body)


_OPEN, _DISPUTED, _AGREED, _SUPERSEDED = "open", "disputed", "agreed", "superseded"
_DIRECTED = (statements_pb2.RELATION_CROPPED, statements_pb2.RELATION_BORDERED)
_MATCH = statements_pb2.MatchRecorded.DESCRIPTOR.full_name
_PROPOSAL = statements_pb2.MasterProposed.DESCRIPTOR.full_name
_MANIFEST = asset_pb2.BatchManifest.DESCRIPTOR.full_name
_WITHDRAWN = asset_pb2.AssetsWithdrawn.DESCRIPTOR.full_name
_KEY_TYPES = {statements_pb2.MemberAdmitted.DESCRIPTOR.full_name, statements_pb2.MemberRevoked.DESCRIPTOR.full_name,
              statements_pb2.MemberKeyReplaced.DESCRIPTOR.full_name, statements_pb2.LogKeyRotated.DESCRIPTOR.full_name}


@dataclass(slots=True)
class _Proposal:
    """What the auditor keeps of a proposal to judge the votes, ruling and outcome on it."""

    cluster_id: str
    holders: frozenset[str]
    index: int  # its entry, for the copies, master and deadline
    status: str = _OPEN
    votes: dict[str, tuple[int, int]] | None = None  # member -> (entry index, choice)
    ruling: tuple[int, tuple[str, str]] | None = None  # (entry index, master)

    def close(self, status: str) -> None:
        # A closed proposal only has to refuse what comes later: drop what judged it.
        self.status = status
        self.votes = None


def _chunks(path: Path, offsets: array.array) -> Iterator[tuple[int, int, int, int]]:
    """(first index, file offset, byte length, entry count) of consecutive runs of entries,
    from the length prefixes alone; each entry's offset is appended to ``offsets``. A bad frame
    raises ExportError, after the run of good entries before it. The first run is short: the
    members it admits are known before the next runs are handed out."""
    unpack = struct.Struct(">I").unpack_from
    add = offsets.append
    with open_entries(path) as f:
        buf, base, pos, index = b"", 0, 0, 0  # buf holds the file from offset `base`
        first, start, size, error = 0, 0, FIRST_CHUNK_ENTRIES, None
        try:
            while True:
                if len(buf) - pos < 4 + MAX_ENTRY:
                    more = f.read(BLOCK)
                    buf, base, pos = buf[pos:] + more, base + pos, 0
                if pos == len(buf):
                    break
                # Frames that lie whole in buf whatever their length, up to the end of the run.
                stop = min(len(buf) - 4 - MAX_ENTRY, start - base + CHUNK_BYTES - 1)
                k, most = 0, first + size - index
                while k < most and pos <= stop:
                    (n,) = unpack(buf, pos)
                    if n > MAX_ENTRY:
                        break
                    add(base + pos)
                    pos += 4 + n
                    k += 1
                index += k
                if not k:  # near the end of the file, or a bad frame: one entry, with every check
                    n = frame_length(buf, pos, index)
                    add(base + pos)
                    pos += 4 + n
                    index += 1
                if index - first >= size or base + pos - start >= CHUNK_BYTES:
                    yield first, start, base + pos - start, index - first
                    first, start, size = index, base + pos, CHUNK_ENTRIES
        except ExportError as exc:
            error = exc
    if index > first:
        yield first, start, base + pos - start, index - first
    if error is not None:
        raise error


class _Entries:
    """Entries read back by index, for the few rules that need more than the workers' summary;
    each must hash to its leaf, so every rule judges the bytes the tree and signatures cover."""

    def __init__(self, path: Path, offsets: array.array, tree: Tree) -> None:
        self.path, self.offsets, self.tree = path, offsets, tree
        self.f = None

    def read(self, i: int) -> bytes:
        if self.f is None:
            self.f = open(self.path / ENTRIES, "rb")
        self.f.seek(self.offsets[i])
        head = self.f.read(4)
        entry = self.f.read(struct.unpack(">I", head)[0]) if len(head) == 4 else b""
        if i >= self.tree.size or hashlib.sha256(b"\x00" + entry).digest() != self.tree.leaf_hash_at(i):
            raise _Failure(i, 0, f"{self.path / ENTRIES} changed while it was being read")
        return entry

    def close(self) -> None:
        if self.f is not None:
            self.f.close()


def _member_key(member_id: str, raw: bytes) -> NoteVerifier:
    return NoteVerifier(member_id, Ed25519PublicKey.from_public_bytes(raw))


def _new_key_owner(member_id: str, raw: bytes, what: str, st: _State, fail) -> None:
    """Refuse a member key that any party (another member, the log, or this member before) has
    had; else record it as ``member_id``'s."""
    owner = st.owners.get(raw)
    if owner == st.coordinator.name or (owner is not None and owner not in st.members):
        fail(f"member {member_id!r} {what} a key of the log's own")
    if owner is not None and owner != member_id:
        fail(f"member {member_id!r} {what} member {owner!r}'s public key")
    if owner == member_id:
        fail(f"member {member_id!r} {what} a key it has had before")
    st.owners[raw] = member_id


def _signer_slot(i: int, typ: str, signer: str, key_id: bytes, st: _State) -> int:
    """Who may sign what, by the entries before this one: the key slot to verify with."""
    if not typ or not signer:
        raise _Failure(i, 0, "entry lacks a statement type or signer")
    if typ not in STATEMENT_TYPES:
        raise _Failure(i, 0, f"unknown statement type {typ!r}")
    who = (signer, key_id)
    c = st.coordinator
    if who in st.retired:
        raise _Failure(i, 0, f"signed with the retired coordinator key {signer}+{key_id.hex()},"
                             f" replaced at entry {st.retired[who]}")
    if signer == c.name:
        if typ not in COORDINATOR_TYPES:
            raise _Failure(i, 0, f"the coordinator may not sign {typ} statements")
        if key_id != c.key_id:
            raise _Failure(i, 0, f"statement signed by key id {key_id.hex()}, not the known key "
                                 f"{c.key_id.hex()} of {c.name!r}")
        return st.coordinator_slot
    if signer in st.members:
        if signer in st.revoked:
            raise _Failure(i, 0, f"signed by {signer!r} after its key was revoked")
        if typ not in MEMBER_TYPES:
            raise _Failure(i, 0, f"member {signer!r} may not sign {typ} statements")
        if signer in st.readers:
            raise _Failure(i, 0, f"{typ} signed by {signer!r}, which was admitted as a reader "
                                 "(readers look up only)")
        if signer in st.auditors:
            raise _Failure(i, 0, f"{typ} signed by {signer!r}, which was admitted as an auditor "
                                 "(auditors read the log and look up only)")
        v = st.members[signer]
        if key_id != v.key_id and who in st.replaced:
            raise _Failure(i, 0, f"signed with a replaced key of {signer!r} ({key_id.hex()}), replaced at entry {st.replaced[who]}")
        if key_id != v.key_id:
            raise _Failure(i, 0, f"statement signed by key id {key_id.hex()}, not the known key "
                                 f"{v.key_id.hex()} of {v.name!r}")
        return st.member_slot[signer]
    raise _Failure(i, 0, f"signed by {signer!r}, which is neither the coordinator nor an admitted member")


def _check_summary(i: int, summary: tuple | None, st: _State, report: AuditReport) -> None:
    """Every check on entry ``i``, from the worker's summary of it (audit/parallel.py) where
    that settles them: the signature must have verified with the key the log puts in force
    for it, and the common statements are judged on the fields summarised. Anything else, and
    any statement the fast checks do not pass, is judged by ``_check_entry`` on the entry
    itself, which gives the reason."""
    if summary is None:
        return _check_entry(i, st.read(i), st, report)
    typ, signer, key_id, verified_slot, ok, fields = summary
    slot = st.allowed.get((typ, signer, key_id))
    if slot is None:
        slot = st.allowed[(typ, signer, key_id)] = _signer_slot(i, typ, signer, key_id, st)
    if verified_slot != slot:
        return _check_entry(i, st.read(i), st, report)
    if ok is not True:
        if ok is UNSIGNED:
            _unsigned(i, signer, typ, slot, st)
        elif ok is UNBOUND:
            _unbound(i, signer, typ, st, report)
        else:
            raise _Failure(i, 1, f"bad signature by {signer!r} on {typ}")
    elif st.first_bound is None:
        st.first_bound = i
    if fields.__class__ is tuple:
        if typ == _MATCH:
            if _fast_match(fields, st):
                report.matches += 1
                return
        elif typ == _PROPOSAL:
            if _fast_proposal(i, fields, st):
                report.proposals += 1
                _ranking(i, fields[-1], None, st)
                return
        elif fields[0] == signer:
            if typ == _MANIFEST:
                report.batches += 1
                return
            if typ == _WITHDRAWN:
                report.withdrawals += 1
                return
        body = _body(i, st.read(i), typ)
        problem = fields[-1] if typ == _PROPOSAL else None
    else:
        body = _body(i, fields, typ, raw=True)
        problem = UNCHECKED
    _check_body(i, typ, signer, body, st, report)
    if typ == _PROPOSAL:
        _ranking(i, problem, body, st)


def _ranking(i: int, problem, body, st: _State) -> None:
    """Fail a proposal the cited policy would not make, by the workers' re-run of the ranking
    or, where they could not, by one here."""
    if problem is UNCHECKED:
        problem = policy_problem(body if body is not None else _body(i, st.read(i), _PROPOSAL), st.priority)
    if problem:
        raise _Failure(i, 2, problem)


def _body(i: int, data: bytes, typ: str, raw: bool = False):
    """The parsed body of entry ``i`` (or, with ``raw``, of its body bytes)."""
    if not raw:
        data = statement_pb2.SignedStatement.FromString(data).body
    try:
        return STATEMENT_TYPES[typ].FromString(data)
    except DecodeError as exc:
        raise _Failure(i, 2, f"{typ} body does not parse: {exc}") from None


def _fast_match(fields: tuple, st: _State) -> bool:
    """Apply a MatchRecorded that passes every check; False (nothing applied) otherwise."""
    am, aa, bm, ba, relation, crop = fields
    members = st.members
    if am not in members or bm not in members or am == bm:
        return False
    a, b = (am, aa), (bm, ba)
    if crop is not None and crop != a and crop != b:
        return False
    _link(st, a, b, relation, crop)
    return True


def _link(st: _State, a: tuple, b: tuple, relation: int, crop) -> None:
    pair = (a, b) if a <= b else (b, a)
    if relation in _DIRECTED:
        st.links[pair] = (a, b, relation, crop)
        for k in pair:
            st.linked.setdefault(k, set()).add(pair)
    elif st.links and st.links.pop(pair, None) is not None:  # the latest match between the two is what counts
        for k in pair:
            st.linked[k].discard(pair)


def _links_among(st: _State, keys) -> list[tuple]:
    """The links in ``st.links`` between two of ``keys``, by pair."""
    keys = set(keys)
    pairs = {pair for k in keys for pair in st.linked.get(k, ()) if pair[0] in keys and pair[1] in keys}
    return [st.links[pair] for pair in sorted(pairs)]


def _fast_proposal(i: int, fields: tuple, st: _State) -> bool:
    """Apply a MasterProposed that passes every check but the ranking and that no match in the
    log makes a copy of derived; False (nothing applied) otherwise."""
    pid, cluster_id, supersedes, version, keys, derived, _ = fields
    if version not in POLICIES or derived:
        return False
    members = st.members
    for m, _ in keys:
        if m not in members:
            return False
    holders = frozenset([m for m, _ in keys])
    if len(holders) < 2 or pid in st.proposals or len(set(keys)) != len(keys):
        return False
    if st.links and version != POLICY_V1 and _links_among(st, keys):
        return False
    if supersedes:
        old = st.proposals.get(supersedes)
        if old is None or old.cluster_id != cluster_id or old.status == _SUPERSEDED:
            return False
    _add_proposal(st, pid, cluster_id, holders, i)
    return True


def _add_proposal(st: _State, pid: str, cluster_id: str, holders: frozenset, i: int) -> None:
    # A new proposal replaces every earlier one for its cluster still open, disputed or agreed.
    old_id = st.live.pop(cluster_id, None)
    if old_id is not None:
        st.proposals[old_id].close(_SUPERSEDED)
    holders = st.holder_sets.setdefault(holders, holders)
    st.proposals[pid] = _Proposal(cluster_id, holders, i)
    st.live[cluster_id] = pid


def _check_entry(i: int, entry: bytes, st: _State, report: AuditReport) -> None:
    """Every check on entry ``i``, from its bytes alone (signature included)."""
    try:
        stmt = statement_pb2.SignedStatement.FromString(entry)
    except DecodeError as exc:
        raise _Failure(i, 0, f"entry is not a SignedStatement: {exc}") from None
    slot = _signer_slot(i, stmt.type, stmt.signer, stmt.key_id, st)
    if not stmt.signature:
        _unsigned(i, stmt.signer, stmt.type, slot, st)
    elif verify_ed25519(st.keys[slot], pae(st.origin, stmt.type, stmt.body), stmt.signature):
        if st.first_bound is None:
            st.first_bound = i
    elif verify_ed25519(st.keys[slot], unbound_pae(stmt.type, stmt.body), stmt.signature):
        _unbound(i, stmt.signer, stmt.type, st, report)
    else:
        raise _Failure(i, 1, f"bad signature by {stmt.signer!r} on {stmt.type}")
    body = _body(i, stmt.body, stmt.type, raw=True)
    _check_body(i, stmt.type, stmt.signer, body, st, report)
    if stmt.type == _PROPOSAL:
        _ranking(i, UNCHECKED, body, st)


def _unsigned(i: int, signer: str, typ: str, slot: int, st: _State) -> None:
    """An entry without a signature: only a coordinator statement the checkpoints vouch for
    may be one (its signer and key id were checked against the key in force)."""
    if slot != st.coordinator_slot or typ not in CHECKPOINTED_TYPES:
        raise _Failure(i, 1, f"{typ} by {signer!r} carries no signature; only the coordinator's "
                             f"{', '.join(sorted(t.removeprefix('dedup.v1.') for t in CHECKPOINTED_TYPES))} "
                             "entries are signed by the checkpoints alone")


def _unbound(i: int, signer: str, typ: str, st: _State, report: AuditReport) -> None:
    """A signature in the encoding of releases that bound no log: accepted in a log's first
    entries only, before any statement signed for the log."""
    if st.first_bound is not None:
        raise _Failure(i, 1, f"{typ} by {signer!r} is signed for no log (as releases before statements were "
                             f"bound to their log signed), after entry {st.first_bound}, which is signed for this log")
    report.unbound += 1


def _check_body(i: int, typ: str, signer: str, body, st: _State, report: AuditReport) -> None:
    """The checks on a statement's body that depend on the entries before it; applies it."""
    c = st.coordinator
    if typ in _KEY_TYPES:
        st.allowed.clear()  # who may sign what is about to change

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
        _link(st, a, b, body.relation, crop)
        report.matches += 1
    elif isinstance(body, statements_pb2.MasterProposed):
        _check_proposal(i, body, st, fail)
        report.proposals += 1  # the ranking itself is re-run by the workers
    elif isinstance(body, statements_pb2.MasterVote):
        _check_vote(i, body, signer, st, fail)
        report.votes += 1
    elif isinstance(body, statements_pb2.MasterBallot):
        if body.member_id != signer:
            fail(f"ballot names member {body.member_id!r} but is signed by {signer!r}")
        if not body.votes:
            fail(f"ballot by {signer} holds no vote")
        seen: set[str] = set()
        for v in body.votes:
            if v.proposal_id in seen:
                fail(f"ballot by {signer} votes twice on proposal {v.proposal_id!r}")
            seen.add(v.proposal_id)
            _check_vote(i, v, signer, st, fail)
        report.ballots += 1
        report.votes += len(body.votes)
    elif isinstance(body, statements_pb2.MasterRuling):
        _check_ruling(i, body, signer, st, fail)
        report.rulings += 1
    elif isinstance(body, statements_pb2.MasterAgreed):
        _check_agreed(body, st, fail)
        report.agreements += 1
    elif isinstance(body, asset_pb2.BatchManifest):
        if body.member_id != signer:
            fail(f"batch manifest names member {body.member_id!r} but is signed by {signer!r}")
        report.batches += 1
    elif isinstance(body, asset_pb2.AssetsWithdrawn):
        if body.member_id != signer:
            fail(f"withdrawal names member {body.member_id!r} but is signed by {signer!r}")
        report.withdrawals += 1
    elif isinstance(body, statements_pb2.MemberAdmitted):
        if body.member_id in st.members:
            fail(f"member {body.member_id!r} admitted twice")
        if body.member_id == c.name:
            fail(f"member {body.member_id!r} has the coordinator's name")
        if len(body.public_key) != 32:
            fail(f"member {body.member_id!r}: public key is not 32 bytes")
        try:
            v = st.members[body.member_id] = _member_key(body.member_id, body.public_key)
        except (ValueError, NoteError) as exc:
            fail(f"member {body.member_id!r}: {exc}")
        _new_key_owner(body.member_id, body.public_key, "is admitted with", st, fail)
        st.priority[body.member_id] = body.custodial_priority
        if body.arbiter:
            st.arbiters.add(body.member_id)
        if body.reader:
            if body.arbiter:
                fail(f"member {body.member_id!r} is admitted as both a reader and an arbiter")
            st.readers.add(body.member_id)
        if body.auditor:
            if body.arbiter:
                fail(f"member {body.member_id!r} is admitted as both an auditor and an arbiter")
            st.auditors.add(body.member_id)
        st.member_slot[body.member_id] = st.slot(body.member_id, v.key_id, body.public_key)
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
    elif isinstance(body, statements_pb2.MemberKeyReplaced):
        mid = body.member_id
        v = st.members.get(mid)
        if v is None or v.public_bytes() != body.old_public_key:
            fail(f"key replacement for {mid!r} names an old key the log does not hold for it")
        if mid in st.revoked:
            fail(f"key replacement for {mid!r}, whose key was revoked")
        try:
            new = _member_key(mid, body.new_public_key)
        except (ValueError, NoteError) as exc:
            fail(f"key replacement for {mid!r}: {exc}")
        _new_key_owner(mid, body.new_public_key, "gets", st, fail)
        if (mid, new.key_id) in st.signers:
            fail(f"key replacement for {mid!r}: its new key has the key id {new.key_id.hex()} of a key it used before")
        st.replaced[(mid, v.key_id)] = i
        st.members[mid] = new
        st.member_slot[mid] = st.slot(mid, new.key_id, body.new_public_key)
        report.key_replacements += 1
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
        if st.owners.get(new.public_bytes(), c.name) != c.name:
            fail("key rotation to a member's public key")
        st.owners[new.public_bytes()] = c.name
        st.retired[(c.name, c.key_id)] = i
        st.coordinator = new
        st.coordinator_slot = st.slot(new.name, new.key_id, new.public_bytes())
        st.rotations.append((i, new))
        report.rotations += 1


def _key(ref: statements_pb2.AssetRef) -> tuple[str, str]:
    return (ref.member_id, ref.asset_id)


def _name(key: tuple[str, str]) -> str:
    return f"{key[0]}/{key[1]}"


def _check_proposal(i: int, p: statements_pb2.MasterProposed, st: _State, fail) -> None:
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
        want = derived_copies(evidence, _links_among(st, evidence))
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
    _add_proposal(st, pid, p.cluster_id, frozenset(m for m, _ in evidence), i)


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


def _copies(st: _State, p: _Proposal) -> set[tuple[str, str]]:
    return {_key(c.ref) for c in st.proposed(p).copies}


def _check_vote(i: int, v: statements_pb2.MasterVote, signer: str, st: _State, fail) -> None:
    pid = v.proposal_id
    if v.member_id != signer:
        fail(f"vote on proposal {pid!r} names member {v.member_id!r} but is signed by {signer!r}")
    p = st.proposals.get(pid)
    if p is not None and signer not in p.holders:
        fail(f"vote on proposal {pid!r} signed by {signer}, who holds no copy in cluster {p.cluster_id}")
    p = _open_proposal("vote", pid, v.cluster_id, st, fail)
    if p.votes and signer in p.votes:
        fail(f"second vote by {signer} on proposal {pid!r} (the first is entry {p.votes[signer][0]})")
    if v.choice not in (_ACCEPT, _REJECT, _CLAIM):
        fail(f"vote by {signer} on proposal {pid!r} has no valid choice")
    if v.choice == _REJECT and not v.reason.strip():
        fail(f"vote by {signer} on proposal {pid!r} rejects it without a reason")
    if v.choice == _CLAIM and (_key(v.claimed_master) not in _copies(st, p) or not v.claim_kind.strip()):
        fail(f"vote by {signer} on proposal {pid!r} claims {_name(_key(v.claimed_master))}, which is not a copy in"
             " the cluster, or names no kind of evidence")
    if p.votes is None:
        p.votes = {}
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
    if _key(r.master) not in _copies(st, p):
        fail(f"ruling on proposal {pid!r} names master {_name(_key(r.master))}, which is not a copy in the cluster")
    p.ruling = (i, _key(r.master))


def _check_agreed(a: statements_pb2.MasterAgreed, st: _State, fail) -> None:
    pid = a.proposal_id
    p = _open_proposal("outcome", pid, a.cluster_id, st, fail)
    votes = p.votes or {}
    master, indexes = _key(a.master), list(a.vote_indexes)
    all_votes = sorted(i for i, _ in votes.values())
    accepts = {m for m, (_, c) in votes.items() if c == _ACCEPT}
    what = f"outcome of proposal {pid!r}"
    if a.basis == statements_pb2.AGREEMENT_BASIS_UNANIMOUS:
        if p.status != _OPEN or accepts != p.holders:
            missing = ", ".join(sorted(p.holders - accepts))
            fail(f"{what} claims unanimity, but {missing} did not accept it")
        proposed = _key(st.proposed(p).master)
        if master != proposed:
            fail(f"{what} agrees master {_name(master)}, not the proposed {_name(proposed)}")
        if indexes != all_votes:
            fail(f"{what} cites votes {indexes}; the votes on it are entries {all_votes}")
    elif a.basis == statements_pb2.AGREEMENT_BASIS_DEADLINE:
        if p.status != _OPEN:
            fail(f"{what} is agreed at the deadline, but a holder rejected it or claimed the master")
        msg = st.proposed(p)
        if a.agreed_unix < msg.deadline_unix:
            fail(f"{what} is agreed at the deadline at {a.agreed_unix}, before the deadline {msg.deadline_unix}")
        silent = sorted(p.holders - set(votes))
        if list(a.silent_members) != silent:
            fail(f"{what} counts {list(a.silent_members)} as silent; the holders who did not vote are {silent}")
        proposed = _key(msg.master)
        if master != proposed:
            fail(f"{what} agrees master {_name(master)}, not the proposed {_name(proposed)}")
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


def _executor(path: Path, workers: int | None) -> tuple[Executor, int]:
    if workers is None:
        try:
            big = (path / ENTRIES).stat().st_size >= POOL_THRESHOLD
        except OSError:
            big = False
        workers = (os.cpu_count() or 1) if big else 0
    if workers <= 0:
        return _Inline(), 0
    # spawn, not fork: the caller may run threads (a test's in-process coordinator, gRPC).
    return ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")), workers


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
    st.owners[coordinator.public_bytes()] = coordinator.name
    st.coordinator_slot = st.slot(coordinator.name, coordinator.key_id, coordinator.public_bytes())
    tree = Tree()
    offsets = array.array("Q")  # file offset of every entry, to read one back
    entries = _Entries(path, offsets, tree)
    st.read = entries.read
    try:
        checkpoint_files = _read_checkpoints(path)
    except ExportError as exc:
        raise AuditFailure(str(exc)) from exc
    # Statements are signed for their log; the checkpoints name it, and their signatures are
    # checked once the entries are.
    st.origin = _origin(checkpoint_files)
    pool, nworkers = _executor(path, workers)
    # Chunks handed out ahead of the one being checked: enough to keep every worker busy. Their
    # keys are those known when they are handed out; an entry signed by a key introduced after
    # that is verified here instead.
    ahead = 2 * nworkers + 1 if nworkers else 1
    failure: _Failure | None = None
    # The pass makes no reference cycles; a collector would only sweep the proposals it keeps,
    # hundreds of thousands of them, again and again.
    collecting = gc.isenabled()
    gc.disable()
    with pool:
        pending: deque = deque()

        def check(first: int, future: Future) -> None:
            try:
                hashes, summaries = future.result()
            except ChunkChanged:
                raise _Failure(first, -1, f"{path / ENTRIES} changed while it was being read") from None
            tree.extend_leaf_hashes(hashes)
            for i, summary in enumerate(summaries, first):
                _check_summary(i, summary, st, report)

        try:
            try:
                for first, offset, length, count in _chunks(path, offsets):
                    pending.append((first, pool.submit(check_chunk, Chunk(
                        path, offset, length, first, count, dict(st.signers), tuple(st.keys), dict(st.priority),
                        st.origin))))
                    while len(pending) >= (ahead if first else 1):
                        check(*pending.popleft())
            except ExportError as exc:
                failure = _Failure(len(offsets), -1, str(exc))
            while pending:
                check(*pending.popleft())
        except _Failure as f:
            failure = f
            for _, future in pending:
                future.cancel()
        finally:
            entries.close()
            if collecting:
                gc.enable()
        if failure is None:
            cps = _check_checkpoint_signatures(checkpoint_files, st, coordinator, pool)
    if failure is not None:
        if failure.phase < 0:
            raise AuditFailure(failure.message)
        broken = f"entry {failure.index}: {failure.message}"
        # An entry removed, inserted or reordered makes a later one break a rule; the first
        # checkpoint whose root no longer matches says where the log was changed, so it comes first.
        mismatch = _root_mismatch(path, checkpoint_files)
        raise AuditFailure(f"{mismatch}; the first rule broken: {broken}" if mismatch else broken)
    report.entries = tree.size

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


def _root_mismatch(path: Path, checkpoint_files: list[tuple[str, str]]) -> str | None:
    """After a rule failed: the first checkpoint whose root does not match the export's entries,
    as ``_check_checkpoint_roots`` words it, or None if they all match (or cannot be read: the
    rule's failure is then the whole report)."""
    tree = Tree()
    try:
        for entry in read_entries(path):
            tree.append(entry)
        cps = [(name, Checkpoint.parse(split_note(note)[0]), note) for name, note in checkpoint_files]
        _check_checkpoint_roots(cps, tree)
    except AuditFailure as exc:
        return str(exc)
    except (ExportError, CheckpointError, NoteError, OSError, ValueError):
        return None
    return None


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


def _origin(files: list[tuple[str, str]]) -> str:
    """The origin the checkpoints name: the log the statements must have been signed for. A
    checkpoint that does not parse, or names another origin, is reported once the entries are
    checked (as it would be without this); only an export with no readable checkpoint is
    refused here."""
    first = None
    for name, note in files:
        try:
            return Checkpoint.parse(split_note(note)[0]).origin
        except (NoteError, CheckpointError) as exc:
            first = first or AuditFailure(f"checkpoint {name}: {exc}")
    raise first


def _check_checkpoint_signatures(files: list[tuple[str, str]], st: _State, initial: NoteVerifier,
                                 pool: Executor) -> list[tuple[str, Checkpoint, str]]:
    """Parse every checkpoint and check it is signed by the coordinator key in force at its
    size; return (file name, checkpoint, note) in order of size."""
    parsed: list[tuple[str, Checkpoint, str, Signature, NoteVerifier, str]] = []
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
        parsed.append((name, cp, note, mine[0], key, text))
        if len(mine) > 1:
            raise AuditFailure(f"checkpoint {name}: two signatures by the coordinator key")
    jobs = [(name, key.public_bytes(), text.encode("utf-8"), sig.signature) for name, _, _, sig, key, text in parsed]
    # Notes are small, so unlike entries they are shipped to the workers whole.
    futures = [pool.submit(check_notes, jobs[k : k + 2048]) for k in range(0, len(jobs), 2048)]
    bad = {name for fut in futures for name, ok in fut.result() if not ok}
    for name, cp, note, sig, key, _ in parsed:
        if name in bad:
            raise AuditFailure(f"checkpoint {name}: invalid signature by the coordinator key {key.name}+{key.key_id.hex()}")
    return sorted(((name, cp, note) for name, cp, note, *_ in parsed), key=lambda t: (t[1].size, t[0]))


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
        for i, _, e in read_frames(path):
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
