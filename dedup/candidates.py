"""Candidate search for the matching rule: every asset the rule could link to a given one,
from exact digests and Hamming indexes, without comparing all pairs.

The indexes hold each asset's eight ``dct256`` orientations (upright apart from the other
seven), its ``dct64`` and its ``win64`` windows (all together, and by position). A query
looks up the new asset's eight orientations against stored upright hashes and its upright
hash against stored other orientations, its ``dct64`` against whole pictures and against
windows, its windows against whole pictures and against the same window position, each at
the rule's distance, so every pair the rule would link is among the candidates.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Hashable

from dedup.index import HammingIndex
from dedup.fingerprint.suite import WINDOWS
from dedup.matching import DEFAULT_RULE, Rule, hashes
from dedup.v1 import asset_pb2


class CandidateIndex:
    def __init__(self, rule: Rule = DEFAULT_RULE) -> None:
        self.rule = rule
        self.upright = HammingIndex(32)
        # The other seven orientations of stored assets: a new upright hash close to one of
        # them is a turned copy, whichever of the two came first.
        self.turned = HammingIndex(32)
        self.low = HammingIndex(8)
        self.windows = HammingIndex(8)
        # One index per window position, for edits that leave some windows untouched.
        self.by_window = [HammingIndex(8) for _ in WINDOWS]
        self._owner: dict[str, list[Hashable]] = {"upright": [], "turned": [], "low": [], "windows": []}
        self._owner.update({f"w{k}": [] for k in range(len(WINDOWS))})
        self._rows: dict[Hashable, list[tuple[str, int]]] = {}
        self._exact: dict[bytes, set[Hashable]] = defaultdict(set)
        self._digests: dict[Hashable, tuple[bytes, bytes]] = {}

    def __len__(self) -> int:
        return len(self._digests)

    def add(self, key: Hashable, asset: asset_pb2.Asset) -> None:
        if key in self._digests:
            self.remove(key)
        self._digests[key] = (asset.sha256, asset.pixel_digest)
        self._exact[asset.sha256].add(key)
        self._exact[asset.pixel_digest].add(key)
        rows: list[tuple[str, int]] = []
        h = None if asset.low_information else hashes(asset)
        if h is not None:
            rows.append(("upright", self._put("upright", self.upright, h.upright, key)))
            for v in h.dihedral[1:]:
                rows.append(("turned", self._put("turned", self.turned, v, key)))
            rows.append(("low", self._put("low", self.low, h.low, key)))
            if h.low_whole != h.low:
                rows.append(("low", self._put("low", self.low, h.low_whole, key)))
            for k, w in enumerate(h.windows):
                rows.append(("windows", self._put("windows", self.windows, w, key)))
                rows.append((f"w{k}", self._put(f"w{k}", self.by_window[k], w, key)))
        self._rows[key] = rows

    def _put(self, name: str, index: HammingIndex, value: bytes, key: Hashable) -> int:
        row = index.add(value)
        self._owner[name].append(key)
        return row

    def remove(self, key: Hashable) -> None:
        sha, px = self._digests.pop(key)
        self._exact[sha].discard(key)
        self._exact[px].discard(key)
        for name, row in self._rows.pop(key, ()):
            self._index(name).remove(row)

    def _index(self, name: str) -> HammingIndex:
        return self.by_window[int(name[1:])] if name.startswith("w") and name != "windows" else getattr(self, name)

    def candidates(self, asset: asset_pb2.Asset) -> set[Hashable]:
        found: set[Hashable] = set(self._exact.get(asset.sha256, ())) | set(self._exact.get(asset.pixel_digest, ()))
        h = None if asset.low_information else hashes(asset)
        if h is None:
            return found
        r = self.rule
        owners = self._owner
        for row in self.upright.search_many(h.dihedral, r.whole):
            found.add(owners["upright"][row])
        for row, _ in self.turned.search(h.upright, r.whole):
            found.add(owners["turned"][row])
        for row, _ in self.low.search(h.low, r.low):
            found.add(owners["low"][row])
        for row in self.windows.search_many([h.low, h.low_whole], r.window):
            found.add(owners["windows"][row])
        for row in self.low.search_many(h.windows, r.window):
            found.add(owners["low"][row])
        for k, w in enumerate(h.windows):
            for row, _ in self.by_window[k].search(w, r.same_window):
                found.add(owners[f"w{k}"][row])
        return found
