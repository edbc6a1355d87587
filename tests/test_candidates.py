"""The candidate index against brute force, across its growth and removal paths.

``CandidateIndex`` keeps, per Hamming index, the first row of every asset and grows that
table as assets arrive; each Hamming index seals and merges segments as rows arrive. An
index built one asset at a time, in chunks, with removals and replacements in between,
must answer every query exactly as comparing the query with every live record does.
"""

from __future__ import annotations

import hashlib
import random

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from dedup.candidates import CandidateIndex
from dedup.fingerprint.suite import WINDOWS
from dedup.matching import DEFAULT_RULE, Rule, compared_hashes
from dedup.v1 import asset_pb2

NW = len(WINDOWS)


# -- records with structure: copies near their picture in the parts each search compares --

def _flip(value: bytes, bits: int, rng: random.Random) -> bytes:
    out = bytearray(value)
    for bit in rng.sample(range(8 * len(value)), bits):
        out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


def _picture(rng: random.Random) -> dict:
    return {"dihedral": [rng.randbytes(32) for _ in range(8)], "low": rng.randbytes(8),
            "low_whole": rng.randbytes(8), "windows": [rng.randbytes(8) for _ in range(NW)]}


def _copy(p: dict, rng: random.Random, rule: Rule) -> dict:
    """A record near ``p`` in one or more parts, at distances around each search's radius
    (so some fall inside and some just outside)."""
    c = _picture(rng)  # unrelated unless a part is taken from p below
    kind = rng.choice(["upright", "turned", "low", "crop", "crop_of", "edit", "mixed"])
    near = lambda v, r: _flip(v, max(0, min(8 * len(v), r + rng.randint(-3, 2))), rng)  # noqa: E731
    if kind in ("upright", "mixed"):
        c["dihedral"][0] = near(p["dihedral"][0], rule.whole)
        c["dihedral"][1:] = [near(d, rule.whole) for d in p["dihedral"][1:]]
    if kind == "turned":  # one of the copy's orientations is p's upright, or the other way round
        k = rng.randrange(1, 8)
        if rng.random() < 0.5:
            c["dihedral"][k] = near(p["dihedral"][0], rule.whole)
        else:
            c["dihedral"][0] = near(p["dihedral"][k], rule.whole)
    if kind in ("low", "mixed"):
        c["low"] = near(p["low"], rule.low)
        c["low_whole"] = rng.choice([c["low"], near(p["low_whole"], rule.low)])
    if kind == "crop":  # the copy, as a whole, is one of p's windows
        c["low"] = near(p["windows"][rng.randrange(NW)], rule.window)
    if kind == "crop_of":  # p, as a whole, is one of the copy's windows
        c["windows"][rng.randrange(NW)] = near(rng.choice([p["low"], p["low_whole"]]), rule.window)
    if kind in ("edit", "mixed"):
        for k in rng.sample(range(NW), rng.randint(1, 6)):
            c["windows"][k] = near(p["windows"][k], rule.same_window)
    if rng.random() < 0.1:  # a flat strip: its window hash is all zeros
        c["windows"][rng.randrange(NW)] = bytes(8)
    return c


def _asset(name: str, parts: dict | None, digest_of: str) -> asset_pb2.Asset:
    """``parts`` None: a low-information record (matched by its digests only)."""
    a = asset_pb2.Asset(asset_id=name, sha256=hashlib.sha256(b"file " + digest_of.encode()).digest(),
                        pixel_digest=hashlib.sha256(b"px " + digest_of.encode()).digest(),
                        low_information=parts is None)
    if parts is not None:
        for alg, value in (("dct256", b"".join(parts["dihedral"])), ("dct64", parts["low"] + parts["low_whole"]),
                           ("win64", b"".join(parts["windows"]))):
            a.fingerprints.add(algorithm=alg, version=2, value=value)
    return a


def _records(seed: int, n: int, rule: Rule = DEFAULT_RULE) -> list[asset_pb2.Asset]:
    rng = random.Random(seed)
    pictures: list[dict] = []
    out = []
    for i in range(n):
        roll = rng.random()
        if roll < 0.06:
            out.append(_asset(f"r{i}", None, f"flat{rng.randrange(8)}"))  # some share digests
            continue
        if roll < 0.10 and out:  # the same file or pixels as an earlier record
            twin = rng.choice(out)
            out.append(asset_pb2.Asset(asset_id=f"r{i}", sha256=twin.sha256, pixel_digest=twin.pixel_digest,
                                       low_information=twin.low_information, fingerprints=twin.fingerprints))
            continue
        if not pictures or rng.random() < 0.3:
            pictures.append(_picture(rng))
            parts = pictures[-1]
        else:
            parts = _copy(rng.choice(pictures), rng, rule)
        out.append(_asset(f"r{i}", parts, f"r{i}"))
    return out


# -- brute force: the candidate definition, one stored record at a time -------------------

def _bits(x: np.ndarray) -> np.ndarray:
    return np.bitwise_count(x).sum(axis=-1)


class BruteForce:
    """Every live record as arrays; ``candidates`` compares a query with all of them."""

    def __init__(self, live: dict[str, asset_pb2.Asset], rule: Rule) -> None:
        self.rule = rule
        self.keys = sorted(live)
        hs = [compared_hashes(live[k]) for k in self.keys]
        self.full = np.array([h is not None for h in hs], dtype=bool)
        u8 = lambda bs, n: np.frombuffer(b"".join(bs), dtype=np.uint8).reshape(len(self.keys), n)  # noqa: E731
        self.exact = [u8([bytes(getattr(live[k], f)[:8]).ljust(8, b"\0") for k in self.keys], 8)
                      for f in ("sha256", "pixel_digest")]
        blank = (bytes(32),) * 8, bytes(8), bytes(8), (bytes(8),) * NW
        parts = [(h.dihedral, h.low, h.low_whole, h.windows) if h else blank for h in hs]
        self.dihedral = u8([b"".join(p[0]) for p in parts], 256).reshape(-1, 8, 32)
        self.low = u8([p[1] for p in parts], 8)
        self.low_whole = u8([p[2] for p in parts], 8)
        self.windows = u8([b"".join(p[3]) for p in parts], 8 * NW).reshape(-1, NW, 8)

    def candidates(self, q: asset_pb2.Asset) -> set[str]:
        r = self.rule
        qd = [np.frombuffer(bytes(getattr(q, f)[:8]).ljust(8, b"\0"), dtype=np.uint8) for f in ("sha256", "pixel_digest")]
        hit = np.zeros(len(self.keys), dtype=bool)
        for stored in self.exact:
            for d in qd:
                hit |= _bits(stored ^ d) == 0
        h = compared_hashes(q)
        if h is not None:
            arr = lambda b: np.frombuffer(b, dtype=np.uint8)  # noqa: E731
            qdih = np.stack([arr(d) for d in h.dihedral])
            qlow, qwhole = arr(h.low), arr(h.low_whole)
            qwin = np.stack([arr(w) for w in h.windows])
            up = self.dihedral[:, 0]
            # The query's eight orientations against each stored upright hash.
            near = (_bits(up[:, None, :] ^ qdih[None]) <= r.whole).any(axis=1)
            # The query's upright hash against each stored record's other seven orientations.
            near |= (_bits(self.dihedral[:, 1:] ^ qdih[0]) <= r.whole).any(axis=1)
            # The query's frame dct64 against the stored frame and whole-picture dct64.
            stored_lows = (self.low, self.low_whole)
            near |= np.logical_or.reduce([_bits(s ^ qlow) <= r.low for s in stored_lows])
            # The query's two dct64 against every stored window (a crop of a stored picture).
            for ql in (qlow, qwhole):
                near |= (_bits(self.windows ^ ql) <= r.window).any(axis=1)
            # Each query window against the stored dct64s (a stored crop of the query).
            for s in stored_lows:
                near |= (_bits(s[:, None, :] ^ qwin[None]) <= r.window).any(axis=1)
            # The same window position within same_window (a local edit).
            near |= (_bits(self.windows ^ qwin[None]) <= r.same_window).any(axis=1)
            hit |= near & self.full
        return {k for k, x in zip(self.keys, hit) if x}


def _check(index: CandidateIndex, live: dict[str, asset_pb2.Asset], queries: list[asset_pb2.Asset]) -> int:
    brute = BruteForce(live, index.rule)
    got = index.candidates_many(queries)
    want = [brute.candidates(q) for q in queries]
    for q, g, w in zip(queries, got, want):
        assert g == w, (q.asset_id, sorted(g - w), sorted(w - g))
    return sum(len(w) for w in want)


# -- the property: growth in random chunks, removals, replacements --------------------------

@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), capacity=st.integers(1, 3), tail=st.integers(1, 9),
       max_chunk=st.integers(1, 12), remove_rate=st.floats(0.0, 0.3))
def test_grown_in_chunks_with_removals_equals_brute_force(seed: int, capacity: int, tail: int, max_chunk: int,
                                                          remove_rate: float) -> None:
    rng = random.Random(seed)
    pool = _records(seed, 90)
    index = CandidateIndex(capacity=capacity, tail=tail)
    live: dict[str, asset_pb2.Asset] = {}
    grown, width = 0, index._first.shape[1]
    new_keys = (f"k{n}" for n in range(len(pool)))
    pending = list(pool)
    while pending:
        k = rng.randint(1, max_chunk)
        chunk, pending = pending[:k], pending[k:]
        # Mostly new keys; sometimes a new record under a live key (a rescan).
        items = [(rng.choice(sorted(live)) if live and rng.random() < 0.1 else next(new_keys), a) for a in chunk]
        index.add_many(items)
        live.update(items)
        for _ in range(sum(rng.random() < remove_rate for _ in chunk)):
            if live:
                gone = rng.choice(sorted(live))
                index.remove(gone)
                del live[gone]
        if index._first.shape[1] != width:
            grown, width = grown + 1, index._first.shape[1]
            # Checked at every growth step, not only at the end.
            _check(index, live, rng.sample(pool, 12))
        assert len(index) == len(live)
    assert grown >= 5
    _check(index, live, pool)


def test_one_at_a_time_past_five_default_growth_steps_equals_brute_force_and_a_bulk_build() -> None:
    """At the default sizes: 1,024 assets, then x1.5 steps at 1,536, 2,304, 3,456 and 5,184,
    while each Hamming index seals its 4,096-row tail and merges segments."""
    rng = random.Random(17)
    pool = _records(17, 5600)
    index = CandidateIndex()
    live: dict[str, asset_pb2.Asset] = {}
    widths = {index._first.shape[1]}
    at = 0
    while at < len(pool):
        k = rng.choice([1, 1, 1, 2, 3, 7, 40, 250])
        index.add_many([(a.asset_id, a) for a in pool[at:at + k]])
        live.update((a.asset_id, a) for a in pool[at:at + k])
        at += k
        if rng.random() < 0.05:
            gone = rng.choice(sorted(live))
            index.remove(gone)
            del live[gone]
        widths.add(index._first.shape[1])
    assert len(widths) >= 6  # five growth steps
    queries = rng.sample(pool, 250)
    found = _check(index, live, queries)
    assert found > 250  # the queries find more than themselves: the comparison has teeth
    bulk = CandidateIndex()
    bulk.add_many(sorted(live.items()))
    assert index.candidates_many(queries) == bulk.candidates_many(queries)
