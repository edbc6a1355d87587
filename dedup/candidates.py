"""Candidate search for the matching rule: every asset the rule could link to a given one,
from exact digests and Hamming indexes, without comparing all pairs.

The indexes hold each asset's file and pixel digests, its upright ``dct256`` hash, its
frame's ``dct64`` hash and its strongest ``kp64`` keypoint hashes. A query looks up the new
asset's digests exactly, its eight ``dct256`` orientations against stored upright hashes (a
whole-picture or turned copy: the rule asks a turned pair to be near both ways round, so the
newer picture's turns find it whichever came first), its ``dct64`` against stored ones (a
local edit), and its strongest keypoint hashes against stored ones (one picture inside the
other), each at the rule's distance; the ``dct256`` and keypoint indexes answer only hashes
also equal on one of the rule's bands,
and a pair with such a hit is a candidate only when the rule's whole precondition for a
placement holds (at least two keypoints on each side within the distance), checked on the
two assets' indexed keypoints. So every pair the rule would link is among the candidates.

Queries are answered for a whole batch of assets at once (one search per index). An asset's
rows in each index are consecutive and assets are numbered in the order they are added, so
each index needs only the first row of every asset: a row's asset is found by binary search
and an asset's keypoints are the rows up to the next asset's first. Beyond the fingerprints and their
chunk tables, the index costs 8 bytes per asset and index, nothing per row.
"""

from __future__ import annotations

import time
from typing import Collection, Hashable, Sequence

import numpy as np

from dedup.fingerprint.wire import Hashes
from dedup.index import TAIL_ROWS, HammingIndex
from dedup.matching import DEFAULT_RULE, Rule, compared_hashes, near_points
from dedup.v1 import asset_pb2


#: The searches of ``CandidateIndex.candidates_many``: the exact digests and the whole
#: picture in its eight orientations (cheap: a few rows per asset), and the frame's local-edit
#: hash and the keypoints (most of the cost).
WHOLE = ("exact", "upright")
PARTS = ("low", "points")
SEARCHES = WHOLE + PARTS


def _points(h: Hashes, rule: Rule) -> list[bytes]:
    """The keypoint hashes an asset is indexed and searched by: its strongest ones."""
    return [int(v).to_bytes(8, "big") for v in h.keypoints.hashes[:rule.points_indexed].tolist()]


def _whole_radius(rule: Rule) -> int:
    """The ``dct256`` search's distance: an upright match's, or a turned match's either way round."""
    return max(rule.whole, rule.whole_turned_back)


def _digests(asset: asset_pb2.Asset) -> list[bytes]:
    return [bytes(asset.sha256[:8]).ljust(8, b"\0"), bytes(asset.pixel_digest[:8]).ljust(8, b"\0")]


class CandidateIndex:
    def __init__(self, rule: Rule = DEFAULT_RULE, *, capacity: int = 1024, tail: int = TAIL_ROWS) -> None:
        """``capacity`` (assets) and ``tail`` (each Hamming index's unsealed rows) only set
        when tables grow and seal; small values let tests cross many growth steps."""
        self.rule = rule
        self.upright = HammingIndex(32, radius=_whole_radius(rule), tail=tail, bands=rule.whole_bands)
        self.low = HammingIndex(8, radius=rule.low, tail=tail)
        # Each asset's strongest keypoint hashes, in rank order (a row's rank is its offset
        # from the asset's first row).
        # Tens of millions of rows at archive scale, each band's bucket hundreds of them: the
        # sketches let a query read its buckets in runs instead of one random read per row.
        self.points = HammingIndex(8, radius=rule.points_index, tail=tail, bands=rule.points_bands, sketched=True)
        # File and pixel digests, by their first 8 bytes: an exact (radius 0) lookup whose rare
        # prefix collisions only add a candidate, since the rule compares whole digests.
        self.exact = HammingIndex(8, radius=0, tail=tail)
        self._names = ("exact", "upright", "low", "points")
        self._keys: list[Hashable | None] = []
        self._number: dict[Hashable, int] = {}
        # _first[col, n]: asset n's first row in index col (where its rows would start if it
        # has none). Non-decreasing in n, so searchsorted maps rows back to asset numbers.
        self._first = np.zeros((len(self._names), max(1, capacity)), dtype=np.int64)
        #: Seconds and query rows spent in each search of ``candidates_many`` since creation,
        #: by search: where a large intake's time goes.
        self.search_seconds: dict[str, float] = {}
        self.search_queries: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._number)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._number

    def mark(self) -> int:
        """A point in the index's history: ``added_since`` it names the keys added later."""
        return len(self._keys)

    def added_since(self, mark: int) -> list[Hashable]:
        """The keys added after ``mark`` (a key added again counts as added) and still held."""
        return [k for k in self._keys[mark:] if k is not None]

    def add(self, key: Hashable, asset: asset_pb2.Asset) -> None:
        self.add_many([(key, asset)])

    def add_many(self, items: Sequence[tuple[Hashable, asset_pb2.Asset]],
                 parsed: Sequence[Hashes | None] | None = None) -> None:
        """Make assets findable (replacing earlier records under the same keys); one append
        per index, so loading a whole store on start-up builds each index in one go.
        ``parsed``, if given, is ``compared_hashes(asset)`` of each item, already computed."""
        # A key given twice keeps its first place and its last record.
        last = {key: i for i, (key, _) in enumerate(items)}
        if parsed is not None:
            parsed = [parsed[i] for i in last.values()]
        items = [items[i] for i in last.values()]
        if not items:
            return
        values: dict[str, list[bytes]] = {name: [] for name in self._names}
        counts = np.zeros((len(self._names), len(items)), dtype=np.int64)
        for key, _ in items:
            if key in self._number:
                self.remove(key)  # before any new number exists, so every row range is known
        for i, (key, asset) in enumerate(items):
            self._number[key] = len(self._keys)
            self._keys.append(key)
            rows = {"exact": _digests(asset)}
            h = compared_hashes(asset) if parsed is None else parsed[i]
            if h is not None:
                rows["upright"] = [h.upright]
                rows["low"] = [h.low]
                rows["points"] = _points(h, self.rule)
            for col, name in enumerate(self._names):
                vals = rows.get(name, ())
                values[name] += vals
                counts[col, i] = len(vals)
        first_number = len(self._keys) - len(items)
        self._reserve(len(self._keys))
        for col, name in enumerate(self._names):
            index: HammingIndex = getattr(self, name)
            start = index.add_many(values[name]) if values[name] else len(index)
            firsts = start + np.concatenate(([0], np.cumsum(counts[col])[:-1]))
            self._first[col, first_number:len(self._keys)] = firsts

    def state(self) -> tuple[list[Hashable | None], dict[str, np.ndarray]]:
        """The index as it is, to be saved and given to ``load`` on a restart: the keys in the
        order they were added (None where one was removed or added again) and arrays: each
        asset's first row in each index, and each Hamming index's rows and chunk tables
        (``HammingIndex.state``, under ``<search>/``). Nothing is rebuilt on loading, so a
        restart costs what reading the arrays costs."""
        arrays = {"first": self._first[:, :len(self._keys)]}
        for name in self._names:
            index: HammingIndex = getattr(self, name)
            arrays |= {f"{name}/{k}": v for k, v in index.state().items()}
        return list(self._keys), arrays

    def load(self, keys: Sequence[Hashable | None], arrays: dict[str, np.ndarray]) -> None:
        """Fill an empty index from ``state()``'s output; it answers, grows and loses assets
        exactly as the index that was saved. ValueError if the arrays do not fit together."""
        if self._keys:
            raise ValueError("load() fills an empty index")
        live = [k for k in keys if k is not None]
        if len(set(live)) != len(live):
            raise ValueError("a key is given twice")
        n = len(keys)
        first = arrays["first"]
        if first.shape != (len(self._names), n):
            raise ValueError(f"first rows: shape {first.shape}, expected {(len(self._names), n)}")
        for col, name in enumerate(self._names):
            index: HammingIndex = getattr(self, name)
            index.load_state({k.split("/", 1)[1]: v for k, v in arrays.items() if k.startswith(name + "/")})
            firsts = first[col]
            if n and (firsts[0] < 0 or (np.diff(firsts) < 0).any() or firsts[-1] > len(index)):
                raise ValueError(f"{name}: first rows out of order or past the index's rows")
        self._keys = list(keys)
        self._number = {k: i for i, k in enumerate(self._keys) if k is not None}
        self._reserve(n)
        self._first[:, :n] = first

    def _reserve(self, n: int) -> None:
        """Room in ``_first`` for ``n`` assets. Each index's column of first rows is copied
        as it is: a reshape of the whole table (``np.resize``) would refill it row-major and
        move every earlier asset's offsets."""
        cols, cap = self._first.shape
        if n <= cap:
            return
        grown = np.zeros((cols, max(n, cap * 3 // 2)), dtype=self._first.dtype)
        grown[:, :cap] = self._first
        self._first = grown

    def _rows_of(self, number: int, col: int) -> range:
        first = int(self._first[col, number])
        stop = int(self._first[col, number + 1]) if number + 1 < len(self._keys) else len(getattr(self, self._names[col]))
        return range(first, stop)

    def _owners(self, col: int, rows: np.ndarray) -> np.ndarray:
        """Asset numbers of index rows."""
        return np.searchsorted(self._first[col, :len(self._keys)], rows, side="right") - 1

    def _placeable(self, pairs: set[tuple[int, int]], hashes: dict[int, Hashes], col: int) -> set[tuple[int, int]]:
        """The (asker, stored asset) pairs, found by a banded keypoint hit, whose indexed
        keypoints meet the rule's whole precondition for a placement (``near_points``)."""
        rows = self.points._data
        out = set()
        for i, number in pairs:
            r = self._rows_of(number, col)
            theirs = rows[r.start:r.stop, 0].byteswap()  # the big-endian hash values
            if near_points(hashes[i].keypoints.hashes, theirs, self.rule):
                out.add((i, number))
        return out

    def remove(self, key: Hashable) -> None:
        number = self._number.pop(key)
        self._keys[number] = None
        for col, name in enumerate(self._names):
            index = getattr(self, name)
            for row in self._rows_of(number, col):
                index.remove(row)

    def candidates(self, asset: asset_pb2.Asset) -> set[Hashable]:
        return self.candidates_many([asset])[0]

    def candidates_many(self, assets: Sequence[asset_pb2.Asset],
                        parsed: Sequence[Hashes | None] | None = None,
                        searches: Collection[str] = SEARCHES) -> list[set[Hashable]]:
        """For each asset, every stored key the rule could link to it (one search per index).
        ``parsed``, if given, is ``compared_hashes(asset)`` of each, already computed.
        ``searches`` limits the answer to some of the searches (``WHOLE``: the digests and the
        whole-picture hashes; ``PARTS``: the frame's ``dct64`` and the keypoints)."""
        numbers: list[set[int]] = [set() for _ in assets]
        exact = b"".join(d for a in assets for d in _digests(a))
        if parsed is None:
            parsed = [compared_hashes(a) for a in assets]
        full = [i for i, h in enumerate(parsed) if h is not None]
        hs = [parsed[i] for i in full]
        # One block of query rows per kind, and which asset asked each row (and, for
        # keypoints, which of its keypoints).
        f = np.array(full, dtype=np.int64)
        pts = [_points(h, self.rule) for h in hs]
        npts = np.array([len(p) for p in pts], dtype=np.int64)
        queries = {
            "exact": (exact, np.repeat(np.arange(len(assets), dtype=np.int64), 2)),
            "upright": (b"".join(d for h in hs for d in h.dihedral), np.repeat(f, 8)),
            "low": (b"".join(h.low for h in hs), f),
            "points": (b"".join(v for p in pts for v in p), np.repeat(f, npts)),
        }
        rank = np.arange(int(npts.sum()), dtype=np.int64) - np.repeat(np.cumsum(npts) - npts, npts)
        r = self.rule
        plan = (("exact", 0), ("upright", _whole_radius(r)), ("low", r.low), ("points", r.points_index))
        for name, radius in plan:
            blob, owner = queries[name]
            if name not in searches or not owner.size:
                continue
            index: HammingIndex = getattr(self, name)
            q = np.frombuffer(blob, dtype=np.uint8).reshape(owner.size, index.nbytes)
            started = time.perf_counter()
            qi, rows, _ = index.search_batch(q, radius)
            self.search_seconds[name] = self.search_seconds.get(name, 0.0) + time.perf_counter() - started
            self.search_queries[name] = self.search_queries.get(name, 0) + owner.size
            if qi.size == 0:
                continue
            col = self._names.index(name)
            asker = owner[qi]
            hit = self._owners(col, rows)
            if name == "points":
                # Pairs whose banded hits alone show two keypoints of each side agreeing meet
                # the precondition (most pairs of real copies: one array pass); the others are
                # checked on all their indexed keypoints.
                sure_asker, sure_hit = _agreeing(asker, hit, rank[qi], rows - self._first[col, hit])
                width = np.int64(len(self._keys))
                rest = np.setdiff1d(asker * width + hit, sure_asker * width + sure_hit)
                pairs = set(zip(sure_asker.tolist(), sure_hit.tolist()))
                if rest.size:
                    pairs |= self._placeable(set(zip((rest // width).tolist(), (rest % width).tolist())),
                                             {i: h for i, h in zip(full, hs)}, col)
            else:
                pairs = set(zip(asker.tolist(), hit.tolist()))
            for i, number in pairs:
                numbers[i].add(number)
        keys = self._keys
        return [{keys[n] for n in nums if keys[n] is not None} for nums in numbers]


def _agreeing(asker: np.ndarray, hit: np.ndarray, mine: np.ndarray, theirs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The (asker, stored asset) pairs in which the hits show at least two of the asker's
    keypoints and at least two of the stored asset's (by rank) agreeing."""
    pair = np.stack([asker, hit], axis=1)
    keys, inverse = np.unique(pair, axis=0, return_inverse=True)
    inverse = inverse.ravel()
    distinct_mine = np.bincount(np.unique(np.stack([inverse, mine], axis=1), axis=0)[:, 0], minlength=len(keys))
    distinct_theirs = np.bincount(np.unique(np.stack([inverse, theirs], axis=1), axis=0)[:, 0], minlength=len(keys))
    keep = (distinct_mine >= 2) & (distinct_theirs >= 2)
    return keys[keep, 0], keys[keep, 1]
