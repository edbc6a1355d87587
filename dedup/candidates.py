"""Candidate search for the matching rule: every asset the rule could link to a given one,
from exact digests and Hamming indexes, without comparing all pairs.

The indexes hold each asset's eight ``dct256`` orientations (upright apart from the other
seven), its ``dct64`` hashes and its ``win64`` windows (with their positions). A query looks
up the new asset's eight orientations against stored upright hashes and its upright hash
against stored other orientations, its ``dct64`` against whole pictures and against
windows, its windows against whole pictures and against the same window position, each at
the rule's distance, so every pair the rule would link is among the candidates.

Queries are answered for a whole batch of assets at once (one search per index), and rows
map to assets through compact integer arrays, so the index costs a few bytes per
fingerprint beyond the fingerprints themselves.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Hashable, Sequence

import numpy as np

from dedup.fingerprint.suite import WINDOWS
from dedup.index import HammingIndex
from dedup.matching import DEFAULT_RULE, Rule, hashes
from dedup.v1 import asset_pb2


class _Owners:
    """Row -> asset number (and window position) for one HammingIndex, as growable arrays."""

    def __init__(self) -> None:
        self.asset = np.zeros(1024, dtype=np.int32)
        self.position = np.zeros(1024, dtype=np.int8)
        self.n = 0

    def extend(self, first_row: int, assets: np.ndarray, positions: Sequence[int] | None) -> None:
        k = len(assets)
        if first_row != self.n:
            raise RuntimeError("index rows and owners out of step")
        if self.n + k > self.asset.size:
            cap = max(self.n + k, self.asset.size + self.asset.size // 2)
            self.asset = np.resize(self.asset, cap)
            self.position = np.resize(self.position, cap)
        self.asset[self.n:self.n + k] = assets
        self.position[self.n:self.n + k] = 0 if positions is None else positions
        self.n += k


class CandidateIndex:
    def __init__(self, rule: Rule = DEFAULT_RULE) -> None:
        self.rule = rule
        self.upright = HammingIndex(32, radius=rule.whole)
        # The other seven orientations of stored assets: a new upright hash close to one of
        # them is a turned copy, whichever of the two came first.
        self.turned = HammingIndex(32, radius=rule.whole)
        self.low = HammingIndex(8, radius=max(rule.low, rule.window))
        # Every window of every asset; a row's position says which window it is, so one
        # index serves both crops (any position) and local edits (the same position).
        self.windows = HammingIndex(8, radius=rule.window)
        # File and pixel digests, by their first 8 bytes: an exact (radius 0) lookup whose rare
        # prefix collisions only add a candidate, since the rule compares whole digests.
        self.exact = HammingIndex(8, radius=0)
        self._names = ("exact", "upright", "turned", "low", "windows")
        self._owners = {name: _Owners() for name in self._names}
        self._keys: list[Hashable | None] = []
        self._number: dict[Hashable, int] = {}
        # Per asset number and index: its first row there and how many rows it has.
        self._first = np.zeros((1024, len(self._names)), dtype=np.int64)
        self._count = np.zeros((1024, len(self._names)), dtype=np.int8)

    def __len__(self) -> int:
        return len(self._number)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._number

    def add(self, key: Hashable, asset: asset_pb2.Asset) -> None:
        self.add_many([(key, asset)])

    def add_many(self, items: Sequence[tuple[Hashable, asset_pb2.Asset]]) -> None:
        """Make assets findable (replacing earlier records under the same keys); one append
        per index, so loading a whole store on start-up builds each index in one go."""
        values: dict[str, list[bytes]] = {name: [] for name in self._names}
        owners: dict[str, list[int]] = {name: [] for name in self._names}
        positions: list[int] = []
        items = list(dict(items).items())  # a key given twice keeps its last record
        for key, asset in items:
            if key in self._number:
                self.remove(key)
            number = len(self._keys)
            self._keys.append(key)
            self._number[key] = number

            def put(name: str, vals: list[bytes]) -> None:
                values[name] += vals
                owners[name] += [number] * len(vals)

            put("exact", [bytes(asset.sha256[:8]).ljust(8, b"\0"), bytes(asset.pixel_digest[:8]).ljust(8, b"\0")])
            h = None if asset.low_information else hashes(asset)
            if h is not None:
                put("upright", [h.upright])
                put("turned", list(h.dihedral[1:]))
                put("low", [h.low] if h.low_whole == h.low else [h.low, h.low_whole])
                put("windows", list(h.windows))
                positions += range(len(h.windows))
        need = len(self._keys)
        if need > self._first.shape[0]:
            cap = max(need, 2 * self._first.shape[0])
            self._first = np.resize(self._first, (cap, len(self._names)))
            self._count = np.resize(self._count, (cap, len(self._names)))
        if not items:
            return
        numbers = np.array([self._number[k] for k, _ in items], dtype=np.int64)
        self._count[numbers] = 0
        for col, name in enumerate(self._names):
            if not values[name]:
                continue
            first = getattr(self, name).add_many(values[name])
            own = np.array(owners[name], dtype=np.int64)
            self._owners[name].extend(first, own, positions if name == "windows" else None)
            # Rows of one asset are consecutive: its first row is where its number first appears.
            nums, start, count = np.unique(own, return_index=True, return_counts=True)
            self._first[nums, col] = first + start
            self._count[nums, col] = count

    def remove(self, key: Hashable) -> None:
        number = self._number.pop(key)
        self._keys[number] = None
        for col, name in enumerate(self._names):
            index = getattr(self, name)
            first = int(self._first[number, col])
            for row in range(first, first + int(self._count[number, col])):
                index.remove(row)

    def candidates(self, asset: asset_pb2.Asset) -> set[Hashable]:
        return self.candidates_many([asset])[0]

    def candidates_many(self, assets: Sequence[asset_pb2.Asset]) -> list[set[Hashable]]:
        """For each asset, every stored key the rule could link to it (one search per index)."""
        numbers: list[set[int]] = [set() for _ in assets]
        queries: dict[str, list[bytes]] = defaultdict(list)
        owner_of: dict[str, list[tuple[int, int]]] = defaultdict(list)  # query -> (asset, window position)

        def ask(kind: str, i: int, values, positions=None) -> None:
            queries[kind] += values
            owner_of[kind] += [(i, p) for p in (positions if positions is not None else [-1] * len(values))]

        for i, a in enumerate(assets):
            ask("exact", i, [bytes(a.sha256[:8]).ljust(8, b"\0"), bytes(a.pixel_digest[:8]).ljust(8, b"\0")])
            h = None if a.low_information else hashes(a)
            if h is None:
                continue
            ask("upright", i, list(h.dihedral))
            ask("turned", i, [h.upright])
            ask("low", i, [h.low])
            ask("windows", i, [h.low, h.low_whole])
            ask("low_by_window", i, list(h.windows))
            ask("same_window", i, list(h.windows), range(len(h.windows)))
        r = self.rule
        plan = (("exact", self.exact, "exact", 0), ("upright", self.upright, "upright", r.whole), ("turned", self.turned, "turned", r.whole),
                ("low", self.low, "low", r.low), ("windows", self.windows, "windows", r.window),
                ("low_by_window", self.low, "low", r.window),
                ("same_window", self.windows, "windows", r.same_window))
        for kind, index, owners_name, radius in plan:
            if not queries.get(kind):
                continue
            qi, rows, _ = index.search_batch(queries[kind], radius)
            if qi.size == 0:
                continue
            owners = self._owners[owners_name]
            asks = np.array(owner_of[kind], dtype=np.int64).reshape(-1, 2)
            asker, position = asks[qi, 0], asks[qi, 1]
            hit = owners.asset[rows]
            if kind == "same_window":
                keep = owners.position[rows] == position
                asker, hit = asker[keep], hit[keep]
            for i, number in set(zip(asker.tolist(), hit.tolist())):
                numbers[i].add(number)
        keys = self._keys
        return [{keys[n] for n in nums if keys[n] is not None} for nums in numbers]
