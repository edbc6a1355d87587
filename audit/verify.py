"""Offline verification of an exported log, with nothing but the coordinator's public key.

Replays every entry in order: each statement's signature by a key the log itself has
introduced (members are admitted by coordinator-signed entries), that each statement is well
formed and signed by the party allowed to make it, that every master proposal is the
published policy's choice on the evidence it states; then rebuilds the Merkle tree and checks
every signed checkpoint's root against it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from dedup.checkpoint import Checkpoint, CheckpointError
from dedup.export import ExportError, read_checkpoints, read_entries
from dedup.merkle import Tree, leaf_hash
from dedup.note import NoteError, NoteVerifier, open_note
from dedup.policy import POLICY_VERSION, Candidate, choose_master
from dedup.signing import SignatureError, parse_body, parse_entry, verify_statement
from dedup.v1 import asset_pb2, statements_pb2

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey


class AuditFailure(Exception):
    """The export does not verify; the message names the entry or checkpoint and why."""


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
    checkpoints: int = 0
    origin: str = ""

    def as_dict(self) -> dict:
        return {"ok": True, "entries": self.entries, "root": self.root.hex(), "origin": self.origin,
                "members": self.members, "batches": self.batches, "matches": self.matches,
                "proposals": self.proposals, "revocations": self.revocations, "withdrawals": self.withdrawals, "checkpoints": self.checkpoints}


COORDINATOR_TYPES = {
    statements_pb2.MemberAdmitted.DESCRIPTOR.full_name,
    statements_pb2.MemberRevoked.DESCRIPTOR.full_name,
    statements_pb2.MatchRecorded.DESCRIPTOR.full_name,
    statements_pb2.MasterProposed.DESCRIPTOR.full_name,
}
MEMBER_TYPES = {asset_pb2.BatchManifest.DESCRIPTOR.full_name, asset_pb2.AssetsWithdrawn.DESCRIPTOR.full_name}


@dataclass
class _State:
    coordinator: NoteVerifier
    members: dict[str, NoteVerifier] = field(default_factory=dict)
    priority: dict[str, int] = field(default_factory=dict)
    revoked: set[str] = field(default_factory=set)


def _check_entry(i: int, entry: bytes, st: _State, report: AuditReport) -> None:
    stmt = parse_entry(entry)
    if stmt.signer == st.coordinator.name:
        if stmt.type not in COORDINATOR_TYPES:
            raise SignatureError(f"the coordinator may not sign {stmt.type} statements")
        verify_statement(stmt, st.coordinator)
    elif stmt.signer in st.members:
        if stmt.signer in st.revoked:
            raise SignatureError(f"signed by {stmt.signer!r} after its key was revoked")
        if stmt.type not in MEMBER_TYPES:
            raise SignatureError(f"member {stmt.signer!r} may not sign {stmt.type} statements")
        verify_statement(stmt, st.members[stmt.signer])
    else:
        raise SignatureError(f"signed by {stmt.signer!r}, which is neither the coordinator nor an admitted member")
    body = parse_body(stmt)

    if isinstance(body, statements_pb2.MemberAdmitted):
        if body.member_id in st.members:
            raise SignatureError(f"member {body.member_id!r} admitted twice")
        if len(body.public_key) != 32:
            raise SignatureError(f"member {body.member_id!r}: public key is not 32 bytes")
        v = NoteVerifier(body.member_id, Ed25519PublicKey.from_public_bytes(body.public_key))
        st.members[body.member_id] = v
        st.priority[body.member_id] = body.custodial_priority
        report.members.append(body.member_id)
    elif isinstance(body, statements_pb2.MemberRevoked):
        v = st.members.get(body.member_id)
        if v is None or v.public_bytes() != body.public_key:
            raise SignatureError(f"revocation of {body.member_id!r} names a key the log never admitted for it")
        st.revoked.add(body.member_id)
        report.revocations += 1
    elif isinstance(body, asset_pb2.AssetsWithdrawn):
        if body.member_id != stmt.signer:
            raise SignatureError(f"withdrawal names member {body.member_id!r} but is signed by {stmt.signer!r}")
        report.withdrawals += 1
    elif isinstance(body, asset_pb2.BatchManifest):
        if body.member_id != stmt.signer:
            raise SignatureError(f"batch manifest names member {body.member_id!r} but is signed by {stmt.signer!r}")
        report.batches += 1
    elif isinstance(body, statements_pb2.MatchRecorded):
        for ref in (body.a, body.b):
            if ref.member_id not in st.members:
                raise SignatureError(f"match {body.match_id!r} names {ref.member_id!r}, not an admitted member")
        if body.a.member_id == body.b.member_id:
            raise SignatureError(f"match {body.match_id!r} links two assets of the same member")
        report.matches += 1
    elif isinstance(body, statements_pb2.MasterProposed):
        _check_proposal(body, st)
        report.proposals += 1


def _check_proposal(p: statements_pb2.MasterProposed, st: _State) -> None:
    if p.policy_version != POLICY_VERSION:
        raise SignatureError(f"proposal {p.proposal_id!r} cites policy {p.policy_version!r}; this auditor knows {POLICY_VERSION!r}")
    cands = []
    for c in p.copies:
        if c.ref.member_id not in st.members:
            raise SignatureError(f"proposal {p.proposal_id!r} names {c.ref.member_id!r}, not an admitted member")
        cands.append(Candidate(c.ref.member_id, c.ref.asset_id, c.evidence, st.priority[c.ref.member_id]))
    if len({c.member_id for c in cands}) < 2:
        raise SignatureError(f"proposal {p.proposal_id!r} is not for a cross-member cluster")
    decision = choose_master(cands)
    got = (p.master.member_id, p.master.asset_id)
    want = (decision.master.member_id, decision.master.asset_id)
    if got != want:
        raise SignatureError(f"proposal {p.proposal_id!r} names master {got[0]}/{got[1]} but the policy chooses {want[0]}/{want[1]}")
    if p.deciding_rule != decision.deciding_rule:
        raise SignatureError(f"proposal {p.proposal_id!r} says rule {p.deciding_rule!r} decided; the policy says {decision.deciding_rule!r}")


def verify_export(path: Path, coordinator: NoteVerifier) -> AuditReport:
    """Verify the export at ``path``; raise AuditFailure naming the first thing that fails."""
    report = AuditReport()
    st = _State(coordinator)
    tree = Tree()
    try:
        checkpoints = read_checkpoints(path)
        for i, entry in enumerate(read_entries(path)):
            try:
                _check_entry(i, entry, st, report)
            except SignatureError as exc:
                raise AuditFailure(f"entry {i}: {exc}") from exc
            tree.append_leaf_hash(leaf_hash(entry))
    except ExportError as exc:
        raise AuditFailure(str(exc)) from exc
    report.entries = tree.size

    latest: Checkpoint | None = None
    for name, note in checkpoints:
        try:
            opened = open_note(note, [coordinator])
            cp = Checkpoint.parse(opened.text)
        except (NoteError, CheckpointError) as exc:
            raise AuditFailure(f"checkpoint {name}: {exc}") from exc
        if latest is not None and cp.origin != latest.origin:
            raise AuditFailure(f"checkpoint {name}: origin {cp.origin!r} differs from {latest.origin!r}")
        if cp.size > tree.size:
            raise AuditFailure(f"checkpoint {name}: signed for {cp.size} entries but the export holds only {tree.size}:"
                               " the log is truncated")
        if tree.root(cp.size) != cp.root_hash:
            raise AuditFailure(f"checkpoint {name}: signed root for size {cp.size} does not match the entries"
                               " (an entry was altered, removed, inserted or reordered)")
        report.checkpoints += 1
        if latest is None or cp.size >= latest.size:
            latest = cp
    assert latest is not None
    if latest.size != tree.size:
        raise AuditFailure(f"the export holds {tree.size} entries but the latest signed checkpoint covers {latest.size}:"
                           f" entries {latest.size}..{tree.size - 1} are vouched for by no checkpoint")
    report.root = tree.root()
    report.origin = latest.origin
    return report
