"""Who may read a log entry in full (SPEC.md 8, "Who reads the log").

Membership and key entries are every member's business: a witness follows the log's key
rotations through them and anyone checking a signature needs the member keys. Everything
else names the members it is about, and only they read it: a match its two holders, a
proposal, its votes and its outcome the holders of a copy in the cluster (and the arbiters,
who may be asked to settle it), a batch or a withdrawal its sender. Members admitted as
auditors read every entry. Everyone may read every entry's leaf hash, so anyone can recompute
every root and check every proof without reading what the entries say.

An entry of a type this module does not know is shown to auditors only: a new statement type
is private until its readers are written down here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from google.protobuf.message import Message

from dedup.signing import SignatureError, parse_body, parse_entry
from dedup.v1 import asset_pb2, statements_pb2 as S


@dataclass(frozen=True)
class Readers:
    """Who reads one entry: everyone (``public``), or the members named, and arbiters if
    ``arbiters``; auditors always."""

    public: bool = False
    members: frozenset[str] = frozenset()
    arbiters: bool = False

    def allows(self, member_id: str, *, arbiter: bool = False, auditor: bool = False) -> bool:
        return self.public or auditor or member_id in self.members or (self.arbiters and arbiter)


PUBLIC = Readers(public=True)
AUDITORS_ONLY = Readers()

_PUBLIC_TYPES = frozenset(cls.DESCRIPTOR.full_name for cls in (
    S.MemberAdmitted, S.MemberRevoked, S.MemberKeyReplaced, S.LogKeyRotated))

#: Holders of a copy in a proposal's cluster, by proposal id (empty when unknown).
Holders = Callable[[str], Iterable[str]]


def _sender(body: Message) -> Readers:
    return Readers(members=frozenset({body.member_id}))


def _negotiation(*members: str, proposals: Iterable[str], holders: Holders) -> Readers:
    named = set(members)
    for proposal_id in proposals:
        named.update(holders(proposal_id))
    return Readers(members=frozenset(named), arbiters=True)


def readers_of(stmt_type: str, body: Message, holders: Holders) -> Readers:
    """Who reads an entry of ``stmt_type`` whose parsed body is ``body``."""
    if stmt_type in _PUBLIC_TYPES:
        return PUBLIC
    if isinstance(body, (asset_pb2.BatchManifest, asset_pb2.AssetsWithdrawn, S.LookupsCounted)):
        return _sender(body)
    if isinstance(body, S.MatchRecorded):
        return Readers(members=frozenset({body.a.member_id, body.b.member_id}))
    if isinstance(body, S.MasterProposed):
        return Readers(members=frozenset(c.ref.member_id for c in body.copies), arbiters=True)
    if isinstance(body, S.MasterVote):
        return _negotiation(body.member_id, proposals=[body.proposal_id], holders=holders)
    if isinstance(body, S.MasterBallot):
        # Signed once, so read whole: by the holders of every proposal it answers.
        return _negotiation(body.member_id, proposals=[v.proposal_id for v in body.votes], holders=holders)
    if isinstance(body, S.MasterRuling):
        return _negotiation(body.arbiter_id, proposals=[body.proposal_id], holders=holders)
    if isinstance(body, S.MasterAgreed):
        return _negotiation(proposals=[body.proposal_id], holders=holders)
    return AUDITORS_ONLY


def entry_readers(entry: bytes, holders: Holders) -> Readers:
    """Who reads a log entry (a serialised SignedStatement); one that does not parse, auditors only."""
    try:
        stmt = parse_entry(entry)
        return readers_of(stmt.type, parse_body(stmt), holders)
    except SignatureError:
        return AUDITORS_ONLY
