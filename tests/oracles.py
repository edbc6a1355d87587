"""References the tests compare the real components with: answers computed the slow, obvious
way, by comparing a query with every live record.

``BruteForce`` is the candidate definition (which stored records the matching rule could link
to a query), one array row per record; ``ExhaustiveCandidates`` offers the candidate index's
methods on top of it, so a coordinator built with ``candidates=ExhaustiveCandidates`` matches
with an exact candidate search and its matches show what the real index should have found.
Neither uses ``CandidateIndex`` or ``HammingIndex``.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np

from dedup.fingerprint.wire import Hashes
from dedup.matching import DEFAULT_RULE, Rule, compared_hashes, shares_band
from dedup.v1 import asset_pb2


def _u64(data: bytes, n: int) -> np.ndarray:
    """``n`` 64-bit words; Hamming distances do not depend on the byte order."""
    return np.frombuffer(data, dtype="<u8", count=n)


def _bits(x: np.ndarray) -> np.ndarray:
    return np.bitwise_count(x)


def _band_equal(x: np.ndarray, bands: int) -> np.ndarray:
    """Over the last axis of little-endian 64-bit words ``x`` (XORs of two hashes): zero on one
    of ``bands`` equal bands of bits, none crossing a word (how the index cuts 256 bits into 16)."""
    width = 64 * x.shape[-1] // bands
    assert 64 % width == 0, "bands that cross words are not what the rule uses"
    out = np.zeros(x.shape[:-1], dtype=bool)
    for shift in range(0, 64, width):
        out |= ((x >> np.uint64(shift)) & np.uint64((1 << width) - 1) == 0).any(axis=-1)
    return out


def _digests(a: asset_pb2.Asset) -> np.ndarray:
    # The first 8 bytes of each digest, as the index looks them up (a prefix collision only
    # adds a candidate: the rule compares whole digests).
    return _u64(b"".join(bytes(d[:8]).ljust(8, b"\0") for d in (a.sha256, a.pixel_digest)), 2)


def _points(h: Hashes, rule: Rule) -> np.ndarray:
    """The strongest keypoints' hashes, the ones a placement is first looked for by."""
    return np.asarray(h.keypoints.hashes[:rule.points_indexed], dtype=np.uint64)


def _row(asset: asset_pb2.Asset, rule: Rule) -> tuple:
    """One record's parts, as BruteForce stacks them: (digests, full, dihedral, low, points,
    number of points); a record without the compared hashes never matches perceptually."""
    h = compared_hashes(asset)
    points = np.zeros(rule.points_indexed, dtype=np.uint64)
    if h is None:
        return _digests(asset), False, np.zeros(32, dtype=np.uint64), np.uint64(0), points, 0
    own = _points(h, rule)
    points[:own.size] = own
    return _digests(asset), True, _u64(b"".join(h.dihedral), 32), _u64(h.low, 1)[0], points, own.size


class BruteForce:
    """Every live record as arrays; ``candidates`` compares a query with all of them."""

    def __init__(self, live: dict[Hashable, asset_pb2.Asset], rule: Rule) -> None:
        self._stack({k: _row(a, rule) for k, a in live.items()}, rule)

    @classmethod
    def from_rows(cls, rows: dict[Hashable, tuple], rule: Rule) -> BruteForce:
        """From ``_row(record, rule)`` of each live record, kept by a caller that adds records
        one by one."""
        self = cls.__new__(cls)
        self._stack(rows, rule)
        return self

    def _stack(self, rows: dict[Hashable, tuple], rule: Rule) -> None:
        self.rule = rule
        self.keys = sorted(rows)
        cols = list(zip(*(rows[k] for k in self.keys))) or [()] * 6
        n = len(self.keys)
        self.exact = np.array(cols[0], dtype=np.uint64).reshape(n, 2)
        self.full = np.array(cols[1], dtype=bool).reshape(n)
        self.dihedral = np.array(cols[2], dtype=np.uint64).reshape(n, 8, 4)
        self.low = np.array(cols[3], dtype=np.uint64).reshape(n)
        self.points = np.array(cols[4], dtype=np.uint64).reshape(n, rule.points_indexed)
        self.has_point = np.arange(rule.points_indexed)[None, :] < np.array(cols[5], dtype=np.int64).reshape(n, 1)

    def candidates(self, q: asset_pb2.Asset) -> set[Hashable]:
        r = self.rule
        qd = _digests(q)
        hit = (self.exact[:, :, None] == qd[None, None, :]).any(axis=(1, 2))
        h = compared_hashes(q)
        if h is not None:
            qdih = _u64(b"".join(h.dihedral), 32).reshape(8, 4)
            up = self.dihedral[:, 0]
            # The query's eight orientations against each stored upright hash, within an
            # upright match's distance or a turned match's either way round, and equal on one
            # of the bands.
            x = up[:, None, :] ^ qdih[None]
            far = max(r.whole, r.whole_turned_back)
            near = ((_bits(x).sum(axis=-1) <= far) & _band_equal(x, r.whole_bands)).any(axis=1)
            # The frames' dct64 (a local edit).
            near |= _bits(self.low ^ _u64(h.low, 1)[0]) <= r.low
            # One picture inside the other: at least two of the query's strongest keypoints
            # and at least two of the stored record's within points_index of one another, one
            # of those pairs equal on one of their bands.
            theirs = np.zeros(self.points.shape, dtype=bool)  # stored ranks close to some query point
            mine = np.zeros(len(self.keys), dtype=np.int64)  # query ranks close to some stored point
            banded = np.zeros(len(self.keys), dtype=bool)
            for point in _points(h, r):
                x = self.points ^ point
                close = (_bits(x) <= r.points_index) & self.has_point
                theirs |= close
                mine += close.any(axis=1)
                banded |= (close & shares_band(x, r.points_bands)).any(axis=1)
            near |= (theirs.sum(axis=1) >= 2) & (mine >= 2) & banded
            hit |= near & self.full
        return {k for k, x in zip(self.keys, hit.tolist()) if x}


class ExhaustiveCandidates:
    """The candidate index's interface (what the coordinator's matcher, intake and lookups
    call), answered by ``BruteForce`` over the live records. Hashes are always parsed from the
    records themselves: ``parsed`` is accepted and ignored, so a caller's mistake there cannot
    hide in the reference."""

    def __init__(self, rule: Rule = DEFAULT_RULE) -> None:
        self.rule = rule
        self._rows: dict[Hashable, tuple] = {}
        self._brute: BruteForce | None = None  # over the current rows; None once they change
        self._history: list[Hashable | None] = []  # keys in the order added (None once removed or added again)
        self._at: dict[Hashable, int] = {}

    def mark(self) -> int:
        return len(self._history)

    def added_since(self, mark: int) -> list[Hashable]:
        return [k for k in self._history[mark:] if k is not None]

    def __len__(self) -> int:
        return len(self._rows)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._rows

    def add(self, key: Hashable, asset: asset_pb2.Asset) -> None:
        self.add_many([(key, asset)])

    def add_many(self, items: Sequence[tuple[Hashable, asset_pb2.Asset]],
                 parsed: Sequence[Hashes | None] | None = None) -> None:
        for key, asset in items:  # a key given again: its last record
            self._rows[key] = _row(asset, self.rule)
            if key in self._at:
                self._history[self._at[key]] = None
            self._at[key] = len(self._history)
            self._history.append(key)
        if items:
            self._brute = None

    def remove(self, key: Hashable) -> None:
        del self._rows[key]
        self._history[self._at.pop(key)] = None
        self._brute = None

    def candidates(self, asset: asset_pb2.Asset) -> set[Hashable]:
        return self.candidates_many([asset])[0]

    def candidates_many(self, assets: Sequence[asset_pb2.Asset], parsed: Sequence[Hashes | None] | None = None,
                        searches=None) -> list[set[Hashable]]:
        """Every candidate, whichever ``searches`` are asked for (a superset of each)."""
        if self._brute is None:
            self._brute = BruteForce.from_rows(self._rows, self.rule)
        return [self._brute.candidates(a) for a in assets]
