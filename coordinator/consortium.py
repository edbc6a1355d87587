"""The coordinator's core: membership, batch intake, matching, master proposals, the log.

No gRPC here: the service layer maps requests in and Refusal out; this module decides.
One lock serialises intakes, which keeps the log, the store and the in-memory matcher in the
same order (the store has one writer anyway).
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass
from typing import Callable

import grpc

from dedup.candidates import CandidateIndex
from dedup.fingerprint.wire import Hashes
from dedup.matching import Rule, compared_hashes
from dedup.note import NoteVerifier
from dedup.policy import POLICY_VERSION, Candidate as PolicyCandidate, choose_master, derived_copies
from dedup.signing import SignatureError, parse_body, verify_statement
from dedup.v1 import asset_pb2, intake_pb2, lookup_pb2, negotiation_pb2, statement_pb2, statements_pb2

from .log import LogTransaction, TransparencyLog
from .matcher import Candidate, Key, Matcher, new_cluster_id
from .lookup import Lookups
from .negotiation import Negotiator
from .ratelimit import Limit, RateLimiter
from .refusal import Refusal
from .settings import CoordinatorSettings, MemberSettings
from .store import StoredMatch, Store
from .validation import check_batch_id, invalid, parse_assets


#: Records parsed at a time when the index is rebuilt on start-up (parsed records are large;
#: the index keeps only their hashes).
_LOAD_CHUNK = 10_000


#: What a reader member is refused, by the statement it sent.
_READER_REFUSES = {
    asset_pb2.BatchManifest: "submit batches (it holds no collection)",
    asset_pb2.AssetsWithdrawn: "withdraw assets (it holds no collection)",
    statements_pb2.MasterVote: "vote on master proposals",
    statements_pb2.MasterRuling: "rule on master proposals",
}


@dataclass(frozen=True)
class Member:
    settings: MemberSettings
    verifier: NoteVerifier


def _member(m: MemberSettings) -> Member:
    verifier = NoteVerifier.from_string(m.public_key)
    if verifier.name != m.id:
        raise ValueError(f"member {m.id}: its public key is named {verifier.name!r}; key names must equal member ids")
    return Member(m, verifier)


class Coordinator:
    def __init__(self, settings: CoordinatorSettings, store: Store, log: TransparencyLog, clock=time.time,
                 candidates: Callable[[Rule], CandidateIndex] = CandidateIndex) -> None:
        self.settings = settings
        self._candidates = candidates
        self.store = store
        self.log = log
        self.clock = clock
        self.members = {m.id: _member(m) for m in settings.members}
        self.lock = threading.Lock()
        #: Per-member flood control on intake (batches and withdrawals), checked before any work.
        self.limiter = RateLimiter({"intake": Limit(settings.intake_rate, settings.intake_burst)})
        #: Set when the matcher could not be reloaded after a failed write (the store was
        #: unreachable): the next intake reloads it first.
        self._matcher_stale = False
        self.matcher = self._load_matcher()
        self.negotiation = Negotiator(self)
        self._admit_members()
        #: Members admitted as arbiters in the log (the log, not the configuration, decides).
        self.arbiters = self.store.admitted_arbiters()
        #: Members admitted as readers: they look up, and send no batches, withdrawals or votes.
        self.readers = self.store.admitted_readers()
        self.lookups = Lookups(self)

    # --- start-up ----------------------------------------------------------------------

    def _load_matcher(self) -> Matcher:
        matcher = Matcher(self.settings.match.rule(), self._record, candidates=self._candidates)
        items = []
        for member_id, asset_id, record, cid in self.store.assets():
            member_id = sys.intern(member_id)  # one string per member, not one per asset
            items.append(((member_id, asset_id), asset_pb2.Asset.FromString(record)))
            if cid is not None:
                matcher.assign((member_id, asset_id), cid)
            if len(items) == _LOAD_CHUNK:
                matcher.add_many(items, remember=False)
                items = []
        matcher.add_many(items, remember=False)
        return matcher

    def _record(self, key: Key) -> asset_pb2.Asset | None:
        blob = self.store.asset(*key)
        return None if blob is None else asset_pb2.Asset.FromString(bytes(blob))

    def _admit_members(self) -> None:
        """Log a MemberAdmitted entry for each configured member not admitted yet."""
        admitted = self.store.admitted_members()
        new = [m for mid, m in sorted(self.members.items()) if mid not in admitted]
        for mid, key in admitted.items():
            if mid in self.members and self.members[mid].verifier.public_bytes() != key:
                raise ValueError(f"member {mid}: configured key differs from the key admitted in the log;"
                                 " key rotation must be logged, not edited in the configuration")
        for role, named in (("arbiter", self.store.admitted_arbiters()), ("reader", self.store.admitted_readers())):
            for mid in admitted:
                if mid in self.members and (configured := getattr(self.members[mid].settings, role)) != (mid in named):
                    raise ValueError(f"member {mid}: configured {role} = {configured}, but the log admitted it with"
                                     f" {role} = {mid in named}; {role}s are named when first admitted")
        revoked = self.store.revoked_keys()
        to_revoke = [m for _, m in sorted(self.members.items())
                     if m.settings.revoked and (m.settings.id, m.verifier.public_bytes()) not in revoked]
        if not new and not to_revoke:
            return
        with self.log.transaction() as txn:
            for m in new:
                idx = txn.append_signed(statements_pb2.MemberAdmitted(
                    member_id=m.settings.id,
                    display_name=m.settings.name,
                    public_key=m.verifier.public_bytes(),
                    custodial_priority=m.settings.custodial_priority,
                    admitted_unix=int(self.clock()),
                    arbiter=m.settings.arbiter,
                    reader=m.settings.reader,
                ))
                Store.add_member(txn.db, m.settings.id, m.verifier.public_bytes(), idx, m.settings.arbiter,
                                 m.settings.reader)
            for m in to_revoke:
                idx = txn.append_signed(statements_pb2.MemberRevoked(
                    member_id=m.settings.id, public_key=m.verifier.public_bytes(), reason=m.settings.revoked,
                    revoked_unix=int(self.clock())))
                Store.add_revocation(txn.db, m.settings.id, m.verifier.public_bytes(), idx)

    # --- intake ------------------------------------------------------------------------

    def submit_batch(self, identity: str, stmt: statement_pb2.SignedStatement, payload: bytes) -> intake_pb2.SubmitBatchResponse:
        self.member(identity)
        self.limiter.take(identity, "intake")
        manifest = self.signed_body(identity, stmt, asset_pb2.BatchManifest, "manifest")
        check_batch_id(manifest.batch_id)

        with self.lock:
            self._fresh_matcher()
            stored = self.store.find_batch(identity, manifest.batch_id)
            if stored is not None:
                if stored.manifest != stmt.body:
                    raise Refusal(grpc.StatusCode.ALREADY_EXISTS, "batch_id_reused",
                                  f"batch id {manifest.batch_id!r} was already used for a different batch")
                return intake_pb2.SubmitBatchResponse(batch_id=manifest.batch_id, accepted=stored.accepted,
                                                      already_stored=True, log_index=stored.log_index,
                                                      new_matches=stored.new_matches)
            last = self.store.last_sequence(identity)
            if manifest.sequence <= last:
                raise Refusal(grpc.StatusCode.FAILED_PRECONDITION, "replay",
                              f"batch sequence {manifest.sequence} is not after the last accepted sequence {last}:"
                              " replayed or out-of-order batch")
            assets = parse_assets(manifest, payload, self.settings.max_batch_assets)
            try:
                return self._store_batch(identity, stmt, manifest, assets)
            except BaseException:
                # The transaction rolled back; the matcher may hold part of it.
                self._reload_matcher()
                raise

    def _reload_matcher(self) -> None:
        """Rebuild the matcher from the store after a failed write; if the store cannot be read
        either, say so and rebuild before the next intake."""
        self._matcher_stale = True
        try:
            self.matcher = self._load_matcher()
        except Exception:  # noqa: BLE001 - the write's own error is the one the caller sees
            return
        self._matcher_stale = False

    def _fresh_matcher(self) -> None:
        if self._matcher_stale:
            self.matcher = self._load_matcher()
            self._matcher_stale = False

    def withdraw(self, identity: str, stmt: statement_pb2.SignedStatement) -> intake_pb2.WithdrawAssetsResponse:
        """Tombstone a member's assets, by its own signed statement."""
        self.member(identity)
        self.limiter.take(identity, "intake")
        body = self.signed_body(identity, stmt, asset_pb2.AssetsWithdrawn, "withdrawal")
        check_batch_id(body.withdrawal_id)
        if not body.asset_ids or len(body.asset_ids) > self.settings.max_batch_assets:
            raise invalid("bad_withdrawal", f"a withdrawal names 1 to {self.settings.max_batch_assets} assets")
        with self.lock:
            self._fresh_matcher()
            stored = self.store.find_withdrawal(identity, body.withdrawal_id)
            if stored is not None:
                if stored[0] != stmt.body:
                    raise Refusal(grpc.StatusCode.ALREADY_EXISTS, "withdrawal_id_reused",
                                  f"withdrawal id {body.withdrawal_id!r} was already used for another withdrawal")
                return intake_pb2.WithdrawAssetsResponse(withdrawn=stored[1], already_stored=True, log_index=stored[2])
            unknown = [a for a in body.asset_ids if (identity, a) not in self.matcher]
            if unknown:
                raise Refusal(grpc.StatusCode.NOT_FOUND, "unknown_asset",
                              f"{len(unknown)} asset(s) are not held by {identity!r} here, e.g. {unknown[0]!r}")
            ids = sorted(set(body.asset_ids))
            try:
                touched: set[str] = set()
                with self.log.transaction() as txn:
                    idx = txn.append(stmt)
                    Store.withdraw(txn.db, identity, body.withdrawal_id, stmt.body, ids, idx)
                    for a in ids:
                        cid = self.matcher.remove((identity, a))
                        if cid is not None:
                            touched.add(cid)
                    for cid in sorted(touched):
                        # A master that left, or a cluster now held by one member, needs a new look.
                        self._repropose(txn, cid, "copy_withdrawn")
            except BaseException:
                self._reload_matcher()
                raise
        return intake_pb2.WithdrawAssetsResponse(withdrawn=len(ids), log_index=idx)

    def member(self, identity: str, refused: str = "nothing it sends is accepted") -> Member:
        """The member behind this connection; refused if unknown or revoked (``refused`` says
        what the revocation stops, for the message)."""
        member = self.members.get(identity)
        if member is None:
            raise Refusal(grpc.StatusCode.PERMISSION_DENIED, "unknown_member",
                          f"TLS identity {identity!r} is not a member of this consortium")
        if member.settings.revoked:
            raise Refusal(grpc.StatusCode.PERMISSION_DENIED, "revoked",
                          f"the key of member {identity!r} is revoked ({member.settings.revoked}); {refused}")
        return member

    def signed_body(self, identity: str, stmt: statement_pb2.SignedStatement, kind, noun: str,
                    field: str = "member_id", role: str = "member", then=None):
        """A member's signed statement of type ``kind``, checked (``_signer``, then ``then()`` if
        given) and parsed; its ``field`` must name the signer. ``noun`` names it in refusals."""
        self._signer(identity, stmt, kind)
        if then is not None:
            then()
        try:
            body = parse_body(stmt, kind)
        except SignatureError as exc:
            raise invalid(f"bad_{noun}", str(exc)) from exc
        named = getattr(body, field)
        if named != identity:
            raise invalid("member_mismatch", f"{noun} names {role} {named!r}, signer is {identity!r}")
        return body

    def _signer(self, identity: str, stmt: statement_pb2.SignedStatement, kind) -> Member:
        """The member behind this connection, having checked it signed ``stmt`` of type ``kind``."""
        member = self.member(identity)
        if identity in self.readers:
            # Every statement a member sends is a batch, a withdrawal, a vote or a ruling.
            raise Refusal(grpc.StatusCode.PERMISSION_DENIED, "reader",
                          f"{identity!r} is a reader member: it may look up, but not {_READER_REFUSES.get(kind, 'sign statements')}")
        if stmt.type != kind.DESCRIPTOR.full_name:
            raise invalid("wrong_statement", f"expected a {kind.DESCRIPTOR.full_name} statement, got {stmt.type!r}")
        if stmt.signer != identity:
            raise Refusal(grpc.StatusCode.PERMISSION_DENIED, "identity_mismatch",
                          f"statement is signed by {stmt.signer!r} but the connection is authenticated as {identity!r}")
        try:
            verify_statement(stmt, member.verifier)
        except SignatureError as exc:
            raise Refusal(grpc.StatusCode.UNAUTHENTICATED, "bad_signature", str(exc)) from exc
        return member

    def _store_batch(self, member_id: str, stmt, manifest, assets) -> intake_pb2.SubmitBatchResponse:
        # cluster -> why it is proposed again; a cluster that gained a copy says so, whatever else changed.
        touched: dict[str, str] = {}
        new_matches = 0
        with self.log.transaction() as txn:
            batch_index = txn.append(stmt)
            # Other members' assets do not change during the batch, so all of its candidates
            # are found in one search; clustering then goes asset by asset, in batch order.
            parsed = [compared_hashes(a) for a in assets]  # once per asset, for every comparison below
            found = self.matcher.candidates_many(member_id, assets, parsed)
            for asset in assets:
                self._update(txn, (member_id, asset.asset_id), asset, touched)
            Store.put_assets(txn.db, member_id, [(a.asset_id, a.SerializeToString(deterministic=True)) for a in assets],
                             manifest.batch_id)
            for asset, h, candidates in zip(assets, parsed, found):
                new_matches += self._match(txn, (member_id, asset.asset_id), asset, candidates, touched, h)
            self.matcher.index.add_many([((member_id, a.asset_id), a) for a in assets], parsed)
            Store.add_batch(txn.db, member_id, manifest.batch_id, manifest.sequence, stmt.body, len(assets),
                            new_matches, batch_index, int(self.clock()))
            for cid in sorted(touched):
                self._repropose(txn, cid, touched[cid])
        return intake_pb2.SubmitBatchResponse(batch_id=manifest.batch_id, accepted=len(assets),
                                              log_index=batch_index, new_matches=new_matches)

    def _update(self, txn: LogTransaction, key: Key, asset: asset_pb2.Asset, touched: dict[str, str]) -> None:
        """A member declaring an asset again (a rescan). New evidence only: its cluster stays
        and gets a fresh proposal, since the master may change. New pixels or fingerprints:
        it leaves its cluster (which is proposed again without it) and is matched afresh."""
        m = self.matcher
        old = m.record(key)
        if old is None or old == asset:
            return
        cid = m.cluster_of.get(key)
        if cid is None:
            return
        same_picture = (old.sha256 == asset.sha256 and old.pixel_digest == asset.pixel_digest
                        and old.low_information == asset.low_information
                        and list(old.fingerprints) == list(asset.fingerprints))
        if not same_picture:
            m.detach(key)
            Store.leave_cluster(txn.db, key[0], key[1])
        # Proposed again if still cross-member; closed (no more votes) if not.
        touched.setdefault(cid, "copy_changed")

    def _match(self, txn: LogTransaction, key: Key, asset: asset_pb2.Asset, candidates: list[Candidate],
               touched: dict[str, str], parsed: Hashes | None) -> int:
        m = self.matcher
        m.add_many([(key, asset)], indexed=False, parsed=[parsed])
        accepted = []
        verdicts: dict[str, bool] = {}  # one check per cluster, however many of its copies link
        for c in candidates:
            cid = m.cluster_of.get(c.key)
            if cid is not None and cid not in verdicts:
                verdicts[cid] = m.verified(asset, cid, parsed)
            if cid is None or verdicts[cid]:
                accepted.append(c)
        if not accepted:
            return 0
        existing = sorted({m.cluster_of[c.key] for c in accepted if c.key in m.cluster_of})
        if key in m.cluster_of:
            existing = sorted(set(existing) | {m.cluster_of[key]})
        if len(existing) > 1:
            # Two clusters meet in this copy: it joins the one it is held in, else the one with
            # most of its links; another merges in only if it also matches that one elsewhere.
            links_to = {cid: sum(1 for c in accepted if m.cluster_of.get(c.key) == cid) for cid in existing}
            home = m.cluster_of.get(key) or min(existing, key=lambda cid: (-links_to[cid], cid))
            joined_clusters = {home} | {cid for cid in existing if cid != home and m.bridged(home, cid)}
            accepted = [c for c in accepted if m.cluster_of.get(c.key, home) in joined_clusters]
            existing = sorted(joined_clusters)
        target = existing[0] if existing else new_cluster_id(accepted[0].key, key)
        for other in existing[1:]:
            Store.rename_cluster(txn.db, other, target)
            # Its proposals end with it; the merged cluster gets a proposal of its own.
            self.negotiation.supersede(txn.db, other, None)
            touched.pop(other, None)
            for k in list(m.members_of.get(other, ())):
                m.assign(k, target)
        joined = bool(existing[1:])
        for k in [key, *(c.key for c in accepted)]:
            if m.cluster_of.get(k) != target:
                m.assign(k, target)
                Store.set_cluster(txn.db, k[0], k[1], target)
                joined = True
        if joined:
            touched[target] = "copy_added"
        else:  # a copy declared again, its links found again
            touched.setdefault(target, "copy_changed")
        for c in accepted:
            match_id = f"{target}/{c.key[0]}/{c.key[1]}/{key[0]}/{key[1]}"
            stmt = statements_pb2.MatchRecorded(
                match_id=match_id, cluster_id=target,
                a=statements_pb2.AssetRef(member_id=c.key[0], asset_id=c.key[1]),
                b=statements_pb2.AssetRef(member_id=key[0], asset_id=key[1]),
                relation=c.link.relation, algorithm=c.link.algorithm, distance=c.link.distance,
                recorded_unix=int(self.clock()), kept_permille=round(c.link.kept * 1000),
            )
            # The link was found as link(candidate, new asset): side 1 is a, side 2 is b.
            if c.link.crop:
                stmt.crop.CopyFrom(stmt.a if c.link.crop == 1 else stmt.b)
            idx = txn.append_signed(stmt)
            Store.add_match(txn.db, StoredMatch(match_id, target, c.key[0], c.key[1], key[0], key[1],
                                                c.link.relation, c.link.algorithm, c.link.distance,
                                                round(c.link.kept * 1000), c.link.crop), idx)
        return len(accepted)

    def _repropose(self, txn: LogTransaction, cluster_id: str, reason: str) -> None:
        """A changed cluster: proposed again while members still share it; otherwise its
        proposals are closed, as nothing is left to agree between members."""
        if len({k[0] for k in self.matcher.members_of.get(cluster_id, ())}) >= 2:
            self._propose(txn, cluster_id, reason)
        else:
            self.negotiation.supersede(txn.db, cluster_id, None)

    def _propose(self, txn: LogTransaction, cluster_id: str, reason: str) -> None:
        """Propose a master for the cluster by the current policy, superseding its open, disputed
        or agreed proposal; ``reason`` says what changed ("copy_added", "copy_changed",
        "copy_withdrawn"; "new_cluster" when the cluster was never proposed)."""
        keys = sorted(self.matcher.members_of[cluster_id])
        evidence = {k: self.matcher.record(k).evidence for k in keys}
        derived = derived_copies(evidence, Store.links_between(txn.db, keys))
        candidates = [
            PolicyCandidate(k[0], k[1], evidence[k], self.members[k[0]].settings.custodial_priority, k in derived)
            for k in keys
        ]
        decision = choose_master(candidates, POLICY_VERSION)
        n = txn.db.execute("SELECT COUNT(*) FROM proposals WHERE cluster_id=?", (cluster_id,)).fetchone()[0]
        proposal_id = f"{cluster_id}/p{n + 1}"
        supersedes = self.negotiation.supersede(txn.db, cluster_id, proposal_id)
        now = int(self.clock())
        master = statements_pb2.AssetRef(member_id=decision.master.member_id, asset_id=decision.master.asset_id)
        proposal = statements_pb2.MasterProposed(
            proposal_id=proposal_id, cluster_id=cluster_id,
            copies=[statements_pb2.Copy(ref=statements_pb2.AssetRef(member_id=c.member_id, asset_id=c.asset_id),
                                        evidence=c.evidence, derived=c.derived) for c in candidates],
            master=master, policy_version=POLICY_VERSION, deciding_rule=decision.deciding_rule,
            proposed_unix=now, supersedes=supersedes, reason=reason if n else "new_cluster",
            deadline_unix=now + self.settings.vote_deadline_seconds,
        )
        idx = txn.append_signed(proposal)
        Store.add_proposal(txn.db, proposal_id, cluster_id, master.member_id, master.asset_id, decision.deciding_rule, idx)
        self.negotiation.opened(txn.db, proposal, idx)

    # --- negotiation (coordinator/negotiation.py) ---------------------------------------------

    def vote(self, identity: str, stmt: statement_pb2.SignedStatement) -> negotiation_pb2.VoteResponse:
        return self.negotiation.vote(identity, stmt)

    def rule(self, identity: str, stmt: statement_pb2.SignedStatement) -> negotiation_pb2.RuleResponse:
        return self.negotiation.rule(identity, stmt)

    def list_proposals(self, identity: str, statuses, page_size: int, page_token: str):
        return self.negotiation.list_proposals(identity, statuses, page_size, page_token)

    # --- provenance lookups (coordinator/lookup.py) -------------------------------------------

    def lookup(self, identity: str, files) -> lookup_pb2.LookupResponse:
        return self.lookups.lookup(identity, files)

    def expire_deadlines(self, now: int | None = None) -> list[tuple[str, int]]:
        """Agree the open proposals past their deadline (silence counts as acceptance)."""
        return self.negotiation.expire_deadlines(int(self.clock()) if now is None else int(now))

    # --- what a member may read ------------------------------------------------------------

    def list_matches(self, identity: str, page_size: int, page_token: str) -> intake_pb2.ListMatchesResponse:
        if identity not in self.members:
            raise Refusal(grpc.StatusCode.PERMISSION_DENIED, "unknown_member",
                          f"TLS identity {identity!r} is not a member of this consortium")
        try:
            offset = int(page_token) if page_token else 0
        except ValueError:
            raise invalid("bad_page_token", "page_token is not one this server issued") from None
        if offset < 0:
            raise invalid("bad_page_token", "page_token is not one this server issued")
        size = min(page_size or 100, 1000)
        rows = self.store.matches_for(identity, offset, size)
        out = intake_pb2.ListMatchesResponse()
        for r in rows:
            own, other = ((r.a_asset, (r.b_member, r.b_asset)) if r.a_member == identity
                          else (r.b_asset, (r.a_member, r.a_asset)))
            record = self.matcher.record(other)
            out.matches.append(intake_pb2.MemberMatch(
                cluster_id=r.cluster_id, own_asset_id=own, counterpart_member=other[0],
                counterpart_asset_id=other[1], relation=r.relation, distance=r.distance,
                kept_permille=r.kept_permille,
                counterpart_evidence=record.evidence if record is not None else None,
            ))
        if len(rows) == size:
            out.next_page_token = str(offset + size)
        return out
