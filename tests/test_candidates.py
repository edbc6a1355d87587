"""The candidate index against brute force, across its growth and removal paths.

``CandidateIndex`` keeps, per Hamming index, the first row of every asset and grows that
table as assets arrive; each Hamming index seals and merges segments as rows arrive. An
index built one asset at a time, in chunks, with removals and replacements in between,
must answer every query exactly as comparing the query with every live record does.
"""

from __future__ import annotations

import hashlib
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from dedup.candidates import CandidateIndex
from dedup.fingerprint import wire
from dedup.matching import DEFAULT_RULE, Rule
from dedup.v1 import asset_pb2

from oracles import BruteForce


# -- records with structure: copies near their picture in the parts each search compares --

def _flip(value: bytes, bits: int, rng: random.Random) -> bytes:
    out = bytearray(value)
    for bit in rng.sample(range(8 * len(value)), bits):
        out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


def _picture(rng: random.Random) -> dict:
    # Up to 40 keypoints: beyond the strongest ``points_indexed`` they are not searched.
    points = [rng.randbytes(8) for _ in range(rng.choice([0, 1, 2, 5, 12, 32, 40]))]
    if points and rng.random() < 0.1:  # one blob found twice
        points[rng.randrange(len(points))] = rng.choice(points)
    return {"dihedral": [rng.randbytes(32) for _ in range(8)], "low": rng.randbytes(8),
            "low_whole": rng.randbytes(8), "points": points}


def _copy(p: dict, rng: random.Random, rule: Rule) -> dict:
    """A record near ``p`` in one or more parts, at distances around each search's radius
    (so some fall inside and some just outside)."""
    c = _picture(rng)  # unrelated unless a part is taken from p below
    kind = rng.choice(["upright", "turned", "low", "inside", "inside", "mixed"])
    near = lambda v, r: _flip(v, max(0, min(8 * len(v), r + rng.randint(-3, 2))), rng)  # noqa: E731
    if kind in ("upright", "mixed"):
        c["dihedral"][0] = near(p["dihedral"][0], rule.whole)
        c["dihedral"][1:] = [near(d, rule.whole) for d in p["dihedral"][1:]]
    if kind == "turned":  # one of the copy's orientations is p's upright, the other way round, or both
        k = rng.randrange(1, 8)
        way = rng.choice(["mine", "theirs", "both"])
        if way in ("mine", "both"):
            c["dihedral"][k] = near(p["dihedral"][0], rng.choice([rule.whole, rule.whole_turned_back]))
        if way in ("theirs", "both"):
            c["dihedral"][0] = near(p["dihedral"][k], rng.choice([rule.whole, rule.whole_turned_back]))
    if kind in ("low", "mixed"):
        c["low"] = near(p["low"], rule.low)
        c["low_whole"] = rng.choice([c["low"], near(p["low_whole"], rule.low)])
    if kind in ("inside", "mixed") and p["points"]:
        # Some of p's keypoints, possibly one of them twice, at any of the copy's ranks
        # (searched or not).
        shared = [near(rng.choice(p["points"]), rule.points_index) for _ in range(rng.choice([1, 2, 2, 3, 6]))]
        c["points"] += [rng.randbytes(8) for _ in range(max(0, len(shared) - len(c["points"])))]
        for rank, value in zip(rng.sample(range(len(c["points"])), len(shared)), shared):
            c["points"][rank] = value
    return c


def _points(values: list[bytes], rng: random.Random) -> bytes:
    """A kp64 value: the picture's extent, then each point's hash, position and scale."""
    out = bytearray((320).to_bytes(2, "big") + (240).to_bytes(2, "big"))
    for v in values:
        out += v + ((rng.randrange(4096) << 12) | rng.randrange(4096)).to_bytes(3, "big") + bytes((rng.randrange(256),))
    return bytes(out)


def _asset(name: str, parts: dict | None, digest_of: str, rng: random.Random) -> asset_pb2.Asset:
    """``parts`` None: a low-information record (matched by its digests only)."""
    a = asset_pb2.Asset(asset_id=name, sha256=hashlib.sha256(b"file " + digest_of.encode()).digest(),
                        pixel_digest=hashlib.sha256(b"px " + digest_of.encode()).digest(),
                        low_information=parts is None)
    if parts is not None:
        for (alg, version), value in ((wire.DCT256, b"".join(parts["dihedral"])),
                                      (wire.DCT64, parts["low"] + parts["low_whole"]),
                                      (wire.KP64, _points(parts["points"], rng))):
            a.fingerprints.add(algorithm=alg, version=version, value=value)
    return a


def _records(seed: int, n: int, rule: Rule = DEFAULT_RULE) -> list[asset_pb2.Asset]:
    rng = random.Random(seed)
    pictures: list[dict] = []
    out = []
    for i in range(n):
        roll = rng.random()
        if roll < 0.06:
            out.append(_asset(f"r{i}", None, f"flat{rng.randrange(8)}", rng))  # some share digests
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
        out.append(_asset(f"r{i}", parts, f"r{i}", rng))
    return out


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


# -- saved and loaded: a restart from the index's own state ----------------------------------

@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), tail=st.integers(1, 9), remove_rate=st.floats(0.0, 0.4))
def test_state_loaded_into_a_new_index_answers_as_brute_force_and_keeps_growing(seed: int, tail: int,
                                                                              remove_rate: float) -> None:
    """Saved at any point of its growth (sealed and merged segments, a tail, removed and
    replaced assets), loaded from copies of the arrays, then grown and shrunk further."""
    rng = random.Random(seed)
    pool = _records(seed, 80)
    index = CandidateIndex(capacity=1, tail=tail)
    live: dict[str, asset_pb2.Asset] = {}
    for n, a in enumerate(pool[:60]):
        key = rng.choice(sorted(live)) if live and rng.random() < 0.1 else f"k{n}"
        index.add_many([(key, a)])
        live[key] = a
        if live and rng.random() < remove_rate:
            gone = rng.choice(sorted(live))
            index.remove(gone)
            del live[gone]
    keys, arrays = index.state()
    assert sorted(k for k in keys if k is not None) == sorted(live)
    loaded = CandidateIndex(capacity=1, tail=tail)
    loaded.load(keys, {k: v.copy() for k, v in arrays.items()})
    assert len(loaded) == len(live)
    assert [len(getattr(loaded, n)._segments) for n in loaded._names] == [len(getattr(index, n)._segments)
                                                                         for n in index._names]
    _check(loaded, live, pool)
    # The loaded index goes on growing and losing assets like any other.
    for n, a in enumerate(pool[60:]):
        loaded.add_many([(f"n{n}", a)])
        live[f"n{n}"] = a
    for gone in rng.sample(sorted(live), len(live) // 4):
        loaded.remove(gone)
        del live[gone]
    _check(loaded, live, pool)


def test_load_refuses_a_filled_index_and_arrays_that_do_not_fit() -> None:
    import numpy as np
    import pytest

    pool = _records(3, 300)
    index = CandidateIndex(tail=64)
    index.add_many([(a.asset_id, a) for a in pool])
    keys, arrays = index.state()
    assert any(k.startswith("points/seg0.order") for k in arrays)  # tables are saved, not rebuilt
    with pytest.raises(ValueError, match="empty index"):
        index.load(keys, arrays)

    def broken(name: str, change) -> dict:
        out = {k: v.copy() for k, v in arrays.items()}
        out[name] = change(out[name])
        return out

    with pytest.raises(ValueError, match="first rows"):
        CandidateIndex().load(keys[:-1], arrays)
    with pytest.raises(ValueError, match="twice"):
        CandidateIndex().load(keys[:1] * len(keys), arrays)
    with pytest.raises(ValueError, match="tables do not fit"):
        CandidateIndex().load(keys, broken("points/seg0.offsets0", lambda o: o[::-1].copy()))
    with pytest.raises(ValueError, match="tables do not fit"):
        CandidateIndex().load(keys, broken("upright/seg0.order0", lambda o: o + np.uint32(10**6)))
    with pytest.raises(ValueError, match="rows of 8 bytes"):
        CandidateIndex().load(keys, broken("points/data", lambda d: d[:, :0]))
    with pytest.raises(ValueError, match="first rows out of order"):
        CandidateIndex().load(keys, broken("first", lambda f: f[:, ::-1].copy()))
