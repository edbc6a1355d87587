"""The scale benchmark's correctness check: for a random sample of the stored assets, the
coordinator's candidate index (as the intake left it, read from its saved file) against brute
force over the same records.

Brute force compares the sampled record with every indexed record by the candidate
definition (``tests/oracles.py``'s ``BruteForce``, written again as one compiled loop over
the records, since at 10^6 records the numpy version takes seconds per query). A sampled
asset passes when the two answers, restricted to other members' assets, are the same set; the
rule is then applied to every such pair, so the cross-member matches are the same too.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from numba import njit, prange

from dedup.matching import DEFAULT_RULE, Rule, compared_hashes, link


@njit(cache=True)
def _pop(x):
    x = x - ((x >> np.uint64(1)) & np.uint64(0x5555555555555555))
    x = (x & np.uint64(0x3333333333333333)) + ((x >> np.uint64(2)) & np.uint64(0x3333333333333333))
    x = (x + (x >> np.uint64(4))) & np.uint64(0x0F0F0F0F0F0F0F0F)
    return (x * np.uint64(0x0101010101010101)) >> np.uint64(56)


@njit(cache=True)
def _piece_zero(x):
    """Whether one of the word's four aligned 16-bit pieces is zero (the bands of both the
    whole-picture rule, 16 of 256 bits, and the keypoint rule, 4 of 64)."""
    m = np.uint64(0xFFFF)
    return (x & m) == 0 or ((x >> np.uint64(16)) & m) == 0 or ((x >> np.uint64(32)) & m) == 0 \
        or (x >> np.uint64(48)) == 0


@njit(cache=True)
def _near_whole(a, b, whole):
    d = np.uint64(0)
    band = False
    for w in range(4):
        x = a[w] ^ b[w]
        d += _pop(x)
        band = band or _piece_zero(x)
    return d <= whole and band


@njit(cache=True, parallel=True)
def brute(qe, qd, ql, qp, exact, full, up, low, pts, npts, whole, lowr, pr):
    """Which rows the candidate definition offers for one query (a record with hashes)."""
    n = exact.shape[0]
    out = np.zeros(n, np.bool_)
    for j in prange(n):
        if exact[j, 0] == qe[0] or exact[j, 0] == qe[1] or exact[j, 1] == qe[0] or exact[j, 1] == qe[1]:
            out[j] = True
            continue
        if not full[j]:
            continue
        hit = _pop(low[j] ^ ql) <= lowr
        for o in range(8):
            if hit:
                break
            hit = _near_whole(up[j], qd[o], whole)
        if not hit:
            theirs = np.uint64(0)
            mine = 0
            banded = False
            for a in range(qp.size):
                close = False
                for b in range(npts[j]):
                    x = pts[j, b] ^ qp[a]
                    if _pop(x) <= pr:
                        close = True
                        theirs |= np.uint64(1) << np.uint64(b)
                        # The rule's bands are the big-endian hash's byte pairs: the same
                        # aligned 16-bit pieces of the word, whichever byte order holds it.
                        banded = banded or _piece_zero(x)
                if close:
                    mine += 1
            hit = mine >= 2 and _pop(theirs) >= 2 and banded
        out[j] = hit
    return out


def _u64(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype="<u8")


class Records:
    """The indexed records as arrays, one row each (what ``brute`` scans)."""

    def __init__(self, keys: list, assets: list, rule: Rule) -> None:
        n = len(keys)
        self.keys, self.assets, self.rule = keys, assets, rule
        self.exact = np.zeros((n, 2), np.uint64)
        self.full = np.zeros(n, np.bool_)
        self.up = np.zeros((n, 4), np.uint64)
        self.low = np.zeros(n, np.uint64)
        self.pts = np.zeros((n, rule.points_indexed), np.uint64)
        self.npts = np.zeros(n, np.int64)
        self.hashes = []
        for i, a in enumerate(assets):
            self.exact[i] = _digests(a)
            h = compared_hashes(a)
            self.hashes.append(h)
            if h is None:
                continue
            self.full[i] = True
            self.up[i] = _u64(h.upright)
            self.low[i] = _u64(h.low)[0]
            p = np.asarray(h.keypoints.hashes[:rule.points_indexed], dtype=np.uint64)
            self.pts[i, :p.size] = p
            self.npts[i] = p.size

    def candidates(self, i: int) -> set:
        """Brute force's answer for record ``i``, as keys."""
        h, r = self.hashes[i], self.rule
        if h is None:
            hit = (self.exact[:, :, None] == self.exact[i][None, None, :]).any(axis=(1, 2))
        else:
            dih = _u64(b"".join(h.dihedral)).reshape(8, 4)
            hit = brute(self.exact[i], dih, self.low[i], self.pts[i, :self.npts[i]], self.exact, self.full,
                        self.up, self.low, self.pts, self.npts, np.uint64(max(r.whole, r.whole_turned_back)),
                        np.uint64(r.low),
                        np.uint64(r.points_index))
        return {self.keys[j] for j in np.flatnonzero(hit).tolist()}


def _digests(a) -> np.ndarray:
    return _u64(b"".join(bytes(d[:8]).ljust(8, b"\0") for d in (a.sha256, a.pixel_digest)))


def check(snapshot: Path, records: dict, sample: int = 1000, seed: int = 7, rule: Rule = DEFAULT_RULE) -> dict:
    """Compare the saved index with brute force for ``sample`` random indexed assets.
    ``records`` maps every key the intake sent to its record."""
    from dedup.candidates import CandidateIndex
    from dedup.coordinator import snapshot as snap

    started = time.monotonic()
    keys, arrays = snap.load(snapshot)
    index = CandidateIndex(rule)
    index.load(keys, arrays)
    indexed = [k for k in keys if k is not None]
    recs = Records(indexed, [records[k] for k in indexed], rule)
    loaded = time.monotonic() - started
    rng = np.random.default_rng(seed)
    picks = sorted(rng.choice(len(indexed), size=min(sample, len(indexed)), replace=False).tolist())
    found = index.candidates_many([recs.assets[i] for i in picks])
    mismatched, pairs, links = [], 0, 0
    t0 = time.monotonic()
    for i, got in zip(picks, found):
        member = indexed[i][0]
        want = {k for k in recs.candidates(i) if k[0] != member}
        got = {k for k in got if k[0] != member}
        if got != want:
            mismatched.append({"asset": list(indexed[i]), "index_only": sorted(map(list, got - want))[:5],
                               "brute_force_only": sorted(map(list, want - got))[:5]})
        pairs += len(want)
        links += sum(link(recs.assets[i], records[k], rule) is not None for k in want)
    return {"sample": len(picks), "indexed_assets": len(indexed), "equal": not mismatched,
            "mismatched": mismatched[:10], "cross_member_candidates": pairs, "cross_member_matches": links,
            "brute_force_seconds": round(time.monotonic() - t0, 1), "load_seconds": round(loaded, 1)}
