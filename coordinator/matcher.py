"""Cross-member matching and clustering, in memory, grown with each intake.

Candidates come from exact digests and the perceptual index; a candidate becomes a link only
if the shared matching rule accepts it, and a link joins two clusters only if the new asset
is also close to every copy already in the cluster (the verification step), so one loose
link cannot chain unrelated photographs together.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass

from dedup.index import HammingIndex
from dedup.matching import Link, link, perceptual_value
from dedup.v1 import asset_pb2

Key = tuple[str, str]  # (member_id, asset_id)


@dataclass(frozen=True)
class Candidate:
    key: Key
    link: Link


class Matcher:
    def __init__(self, threshold: int, verify_factor: float = 1.5) -> None:
        self.threshold = threshold
        self.verify_threshold = int(threshold * verify_factor)
        self.index = HammingIndex(32)
        self.rows: list[Key] = []
        self.row_of: dict[Key, int] = {}
        self.assets: dict[Key, asset_pb2.Asset] = {}
        self.by_sha: dict[bytes, set[Key]] = defaultdict(set)
        self.by_pixels: dict[bytes, set[Key]] = defaultdict(set)
        self.cluster_of: dict[Key, str] = {}
        self.members_of: dict[str, set[Key]] = defaultdict(set)

    # --- state -------------------------------------------------------------------------

    def add(self, key: Key, asset: asset_pb2.Asset) -> None:
        """Make ``asset`` findable (replacing an earlier record under the same key)."""
        if key in self.assets:
            self._forget(key)
        self.assets[key] = asset
        self.by_sha[asset.sha256].add(key)
        self.by_pixels[asset.pixel_digest].add(key)
        value = perceptual_value(asset)
        if value is not None and not asset.low_information:
            row = self.index.add(value)
            self.rows.append(key)
            self.row_of[key] = row

    def _forget(self, key: Key) -> None:
        old = self.assets.pop(key)
        self.by_sha[old.sha256].discard(key)
        self.by_pixels[old.pixel_digest].discard(key)
        row = self.row_of.pop(key, None)
        if row is not None:
            self.index.remove(row)

    def assign(self, key: Key, cluster_id: str) -> None:
        old = self.cluster_of.get(key)
        if old is not None:
            self.members_of[old].discard(key)
        self.cluster_of[key] = cluster_id
        self.members_of[cluster_id].add(key)

    # --- queries -----------------------------------------------------------------------

    def candidates(self, member_id: str, asset: asset_pb2.Asset) -> list[Candidate]:
        """Links from ``asset`` to other members' assets, by the shared matching rule."""
        keys: set[Key] = set(self.by_sha.get(asset.sha256, ())) | set(self.by_pixels.get(asset.pixel_digest, ()))
        value = perceptual_value(asset)
        if value is not None and not asset.low_information:
            keys.update(self.rows[row] for row, _ in self.index.search(value, self.threshold))
        out = []
        for key in sorted(keys):
            if key[0] == member_id:
                continue
            found = link(self.assets[key], asset, self.threshold)
            if found is not None:
                out.append(Candidate(key, found))
        return out

    def verified(self, asset: asset_pb2.Asset, cluster_id: str) -> bool:
        """Is ``asset`` a plausible copy of every asset already in the cluster?"""
        return all(
            link(self.assets[k], asset, self.verify_threshold) is not None
            for k in self.members_of.get(cluster_id, ())
        )


def new_cluster_id(a: Key, b: Key) -> str:
    """Deterministic from the first link, so a replayed intake gives the same ids."""
    h = hashlib.sha256("\n".join((*a, *b)).encode()).hexdigest()
    return f"c-{h[:16]}"
