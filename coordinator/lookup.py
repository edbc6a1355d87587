"""Provenance lookups: which cluster a queried picture belongs to, its master and where that
master's choice stands, without storing anything of the query.

A queried file is matched exactly as intake would match it: the same candidate search, the
same rule, and for a candidate already in a cluster the same verification (it must match
at least half of the cluster's copies by the loosened rule), so a lookup never reports a
match intake would not record. The answer names the master's member, opaque asset id and
declared evidence, never a fingerprint. What was asked is kept nowhere: only a count of
lookups per member, logged periodically as a LookupsCounted entry (vouched for by the checkpoints, SPEC 3.1).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import grpc

from dedup.fingerprint.wire import Hashes
from dedup.matching import Link, compared_hashes
from dedup.policy import POLICY_VERSION, Candidate as PolicyCandidate, choose_master
from dedup.proofbundle import Bundle
from dedup.provenance import describe
from dedup.v1 import asset_pb2, lookup_pb2 as L, negotiation_pb2 as N, statements_pb2 as S

from .negotiation import Negotiator
from .ratelimit import Limit, RateLimiter
from .refusal import Refusal
from .store import Store
from .validation import check_record, invalid

if TYPE_CHECKING:
    from .consortium import Coordinator
    from .matcher import Key

_STATUS = {N.PROPOSAL_STATUS_OPEN: L.MASTER_STATUS_PROPOSED, N.PROPOSAL_STATUS_DISPUTED: L.MASTER_STATUS_DISPUTED,
           N.PROPOSAL_STATUS_AGREED: L.MASTER_STATUS_AGREED}


def check_file(i: int, a: asset_pb2.Asset) -> None:
    """The intake's checks of one asset, less the id: a lookup carries none."""
    where = f"file {i}"
    if a.asset_id:
        raise invalid("asset_id_in_lookup", f"{where}: a lookup carries no asset id (it is never stored); "
                                            "leave asset_id empty")
    check_record(a, where)


class Lookups:
    """The lookup half of the coordinator; ``core`` holds the lock, store, log and matcher."""

    def __init__(self, core: Coordinator) -> None:
        self.core = core
        s = core.settings.lookup
        self.limiter = RateLimiter({"lookup": Limit(s.rate, s.burst)})

    def lookup(self, identity: str, files) -> L.LookupResponse:
        core = self.core
        core.member(identity, "it may not look up")
        limit = core.settings.lookup.max_files
        if not files:
            raise invalid("no_files", "a lookup names at least one file")
        if len(files) > limit:
            raise Refusal(grpc.StatusCode.RESOURCE_EXHAUSTED, "oversized_lookup",
                          f"a lookup of {len(files)} files; this coordinator answers at most {limit} per call")
        # Each file is one query of the index: the bucket counts files, not calls.
        self.limiter.take(identity, "lookup", cost=len(files))
        for i, a in enumerate(files):
            check_file(i, a)
        files = list(files)
        with core.lock:
            m = core.matcher
            parsed = [compared_hashes(a) for a in files]  # once per file, for every comparison
            found = m.index.candidates_many(files, parsed)
            out = L.LookupResponse(results=[self._answer(i, a, keys, h)
                                            for i, (a, keys, h) in enumerate(zip(files, found, parsed))])
            with core.store.transaction() as db:
                Store.count_lookup(db, identity, len(files), int(core.clock()))
        return out

    # --- one file ------------------------------------------------------------------------------

    def _answer(self, position: int, asset: asset_pb2.Asset, keys, parsed: Hashes | None) -> L.LookupResult:
        m = self.core.matcher
        groups: dict[str | None, list[tuple[Key, Link]]] = {}
        for key in sorted(keys):
            found = m.link(key, asset, parsed)
            if found is not None:
                groups.setdefault(m.cluster_of.get(key), []).append((key, found))
        # As intake: a candidate in a cluster counts only if the file also matches most of it.
        accepted = {cid: g for cid, g in groups.items() if cid is None or m.verified(asset, cid, parsed)}
        if not accepted:
            return L.LookupResult(position=position, matched=False)
        # Several clusters (intake would merge them): the one with the most links, then the closest.
        cid, links = min(accepted.items(), key=lambda kv: (kv[0] is None, -len(kv[1]),
                                                           min(lk.distance for _, lk in kv[1]), kv[0] or ""))
        copies = sorted(m.members_of.get(cid, ())) if cid is not None else sorted(k for k, _ in links)
        r = L.LookupResult(position=position, matched=True, cluster_id=cid or "", copies=len(copies),
                           holders=len({k[0] for k in copies}))
        db = self.core.store._db
        current = Negotiator.latest(db, cid) if cid is not None else None
        evidence: dict[Key, asset_pb2.Evidence] = {}
        if current is not None and current.status in _STATUS:
            r.master_status = _STATUS[current.status]
            r.proposal_id = current.proposal_id
            master = current.agreed if current.agreed is not None else (current.body.master.member_id,
                                                                        current.body.master.asset_id)
            evidence = {(c.ref.member_id, c.ref.asset_id): c.evidence for c in current.body.copies}
            if current.outcome_index is not None:
                self._agreed(r, current.outcome_index, master)
            elif (earlier := Negotiator.latest(db, cid, agreed=True)) is not None:
                # The earlier agreement stays in force until the re-proposal is agreed.
                self._agreed(r, earlier.outcome_index, earlier.agreed)
        else:
            # No proposal to speak of (one member's copies only): the policy's choice among them.
            r.master_status = L.MASTER_STATUS_NONE
            records = {k: m.record(k) for k in copies}
            candidates = [PolicyCandidate(k[0], k[1], rec.evidence, self.core.members[k[0]].settings.custodial_priority
                                          if k[0] in self.core.members else 100, False)
                          for k, rec in records.items() if rec is not None]
            d = choose_master(candidates, POLICY_VERSION).master
            master = (d.member_id, d.asset_id)
        r.master.CopyFrom(S.AssetRef(member_id=master[0], asset_id=master[1]))
        record = m.record(master)
        ev = evidence.get(master) or (record.evidence if record is not None else None)
        if ev is not None:
            r.master_evidence.CopyFrom(ev)
        # The file's relation to the master itself: the link found, else the rule (then the
        # verification's looser rule) applied to the pair; unknown if only other copies match.
        lk = next((lk for k, lk in links if k == master), None)
        if lk is None and record is not None:
            lk = m.link(master, asset, parsed) or m.link(master, asset, parsed, m.verify_rule)
        if lk is not None:
            r.relation, r.distance = lk.relation, lk.distance
            if lk.relation == S.RELATION_CROPPED and lk.kept < 1:
                r.kept_permille = round(lk.kept * 1000)
                r.master_is_crop = lk.crop == 1  # link(master, file): side 1 is the master
        r.description = describe(r.relation, asset.evidence, r.master_evidence,
                                 kept=r.kept_permille / 1000 if r.kept_permille else 1.0, master_is_crop=r.master_is_crop)
        return r

    def _agreed(self, r: L.LookupResult, index: int, master: tuple[str, str]) -> None:
        """The MasterAgreed entry's index and its inclusion proof in the latest checkpoint."""
        core = self.core
        r.outcome_log_index = index
        r.agreed_master.CopyFrom(S.AssetRef(member_id=master[0], asset_id=master[1]))
        latest = core.store.latest_checkpoint()
        if latest is None or index >= latest[0]:
            return
        size = latest[0]
        entry, = core.store.log_entries(index, index + 1)
        proof = core.log.tree.inclusion_proof(index, size)
        r.inclusion_proof = Bundle(bytes(entry), index, tuple(proof), core.log.checkpoint_note(size)).to_text()

    # --- counts --------------------------------------------------------------------------------

    def flush(self, now: int | None = None, *, force: bool = False) -> list[int]:
        """Log a LookupsCounted entry for each member whose count period has ended (every
        member with a count, with ``force``) and start its next period; returns the entries."""
        core = self.core
        now = int(core.clock()) if now is None else int(now)
        period = core.settings.lookup.count_period_seconds
        with core.lock:
            due = [c for c in Store.lookup_counts(core.store._db) if force or now - c[3] >= period]
            if not due:
                return []
            out = []
            with core.log.transaction() as txn:
                for member_id, calls, files, since in due:
                    out.append(txn.append_statement(S.LookupsCounted(member_id=member_id, calls=calls, files=files,
                                                                  period_start_unix=since, period_end_unix=now)))
                    txn.db.execute("DELETE FROM lookup_counts WHERE member_id=?", (member_id,))
            return out
