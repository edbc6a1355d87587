"""Cross-member matching and clustering, in memory, grown with each intake.

Candidates come from the shared candidate index; a candidate becomes a link only if the
shared matching rule accepts it; and a link joins an existing cluster only after
verification: the new asset must also match more than half of the copies already in that
cluster (by the rule loosened by ``VERIFY_SLACK``), so a single loose link cannot chain
unrelated photographs together.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass

from dedup.candidates import CandidateIndex
from dedup.matching import Link, Rule, link
from dedup.v1 import asset_pb2

Key = tuple[str, str]  # (member_id, asset_id)

VERIFY_SLACK = 1.5


@dataclass(frozen=True)
class Candidate:
    key: Key
    link: Link


class Matcher:
    def __init__(self, rule: Rule) -> None:
        self.rule = rule
        self.verify_rule = rule.loosened(VERIFY_SLACK)
        self.index = CandidateIndex(rule)
        self.assets: dict[Key, asset_pb2.Asset] = {}
        self.cluster_of: dict[Key, str] = {}
        self.members_of: dict[str, set[Key]] = defaultdict(set)

    def add(self, key: Key, asset: asset_pb2.Asset) -> None:
        """Make ``asset`` findable (replacing an earlier record under the same key)."""
        self.assets[key] = asset
        self.index.add(key, asset)

    def remove(self, key: Key) -> str | None:
        """Forget a withdrawn asset; return the cluster it was in, if any."""
        if key not in self.assets:
            return None
        del self.assets[key]
        self.index.remove(key)
        cid = self.cluster_of.pop(key, None)
        if cid is not None:
            self.members_of[cid].discard(key)
        return cid

    def detach(self, key: Key) -> str | None:
        """Take an asset out of its cluster (it stays findable); return that cluster."""
        cid = self.cluster_of.pop(key, None)
        if cid is not None:
            self.members_of[cid].discard(key)
        return cid

    def assign(self, key: Key, cluster_id: str) -> None:
        old = self.cluster_of.get(key)
        if old is not None:
            self.members_of[old].discard(key)
        self.cluster_of[key] = cluster_id
        self.members_of[cluster_id].add(key)

    def add_many(self, items: list[tuple[Key, asset_pb2.Asset]], *, indexed: bool = True) -> None:
        """``indexed=False`` records the assets without making them findable yet (an intake
        adds a batch's assets to the index in one go, once its own search is done)."""
        for key, asset in items:
            self.assets[key] = asset
        if indexed:
            self.index.add_many(items)

    def candidates(self, member_id: str, asset: asset_pb2.Asset) -> list[Candidate]:
        """Links from ``asset`` to other members' assets, by the shared matching rule."""
        return self.candidates_many(member_id, [asset])[0]

    def candidates_many(self, member_id: str, assets: list[asset_pb2.Asset]) -> list[list[Candidate]]:
        """For each of one member's ``assets``, its links to other members' assets (one index
        search for them all; the member's own assets are never candidates)."""
        out = []
        for asset, keys in zip(assets, self.index.candidates_many(assets)):
            links = []
            for key in sorted(keys):
                if key[0] == member_id:
                    continue
                found = link(self.assets[key], asset, self.rule)
                if found is not None:
                    links.append(Candidate(key, found))
            out.append(links)
        return out

    def verified(self, asset: asset_pb2.Asset, cluster_id: str) -> bool:
        """Does ``asset`` also match more than half of the copies already in the cluster?"""
        members = self.members_of.get(cluster_id, ())
        need = len(members) // 2 + 1
        agree = 0
        for left, k in enumerate(sorted(members), start=0):
            if agree + (len(members) - left) < need:
                return False  # the rest could not make a majority
            if link(self.assets[k], asset, self.verify_rule) is not None:
                agree += 1
                if agree >= need:
                    return True
        return agree >= need


def new_cluster_id(a: Key, b: Key) -> str:
    """Deterministic from the first link, so a replayed intake gives the same ids."""
    h = hashlib.sha256("\n".join((*a, *b)).encode()).hexdigest()
    return f"c-{h[:16]}"
