"""The Hamming index answers exactly what brute force answers, on random and real fingerprints."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dedup.fingerprint.distance import hamming
from dedup.index import HammingIndex


def brute(values: list[bytes], q: bytes, radius: int, removed: set[int]) -> list[tuple[int, int]]:
    return [(i, hamming(v, q)) for i, v in enumerate(values) if i not in removed and hamming(v, q) <= radius]


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from([8, 32]), st.integers(0, 96), st.integers(1, 3000))
def test_search_equals_brute_force_on_random_values(seed: int, nbytes: int, radius: int, n: int) -> None:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (8, nbytes), dtype=np.uint8)
    # Values clustered around a few bases, so every radius has hits and misses.
    values = []
    for i in range(n):
        v = base[i % 8].copy()
        flips = rng.integers(0, nbytes * 8, int(rng.integers(0, nbytes * 4)))
        for bit in flips:
            v[bit // 8] ^= 1 << (bit % 8)
        values.append(v.tobytes())
    index = HammingIndex(nbytes, capacity=7)  # small, so growth is exercised
    for v in values:
        index.add(v)
    removed = set(rng.choice(n, size=min(n, 5), replace=False).tolist())
    for r in removed:
        index.remove(r)
    r = min(radius, nbytes * 8)
    for q in (values[0], base[3].tobytes(), rng.integers(0, 256, nbytes, dtype=np.uint8).tobytes()):
        assert index.search(q, r) == brute(values, q, r, removed)
        assert index.search_many([q, values[-1]], r) == {i for i, _ in brute(values, q, r, removed)} | {
            i for i, _ in brute(values, values[-1], r, removed)}


def test_search_equals_brute_force_on_real_fingerprints(tmp_path: Path) -> None:
    import skimage.data
    from PIL import Image

    from dedup.fingerprint.suite import compute
    from dedup.node.imaging import luminance

    hashes = []
    for name in ("astronaut", "camera", "coffee", "chelsea", "rocket", "coins", "moon", "page"):
        im = Image.fromarray(getattr(skimage.data, name)())
        for k, scale in enumerate((1.0, 0.5, 0.3)):
            v = im.resize((max(32, int(im.width * scale)), max(32, int(im.height * scale))))
            s = compute(luminance(v.rotate(3 * k)))
            hashes += list(s.dihedral) + [s.low, s.low_whole, *s.windows]
    wide = [h for h in hashes if len(h) == 32]
    narrow = [h for h in hashes if len(h) == 8]
    for values, nbytes, radii in ((wide, 32, (0, 16, 32, 64, 100)), (narrow, 8, (0, 4, 6, 12, 20))):
        index = HammingIndex(nbytes)
        for v in values:
            index.add(v)
        for r in radii:
            for q in values[::7]:
                assert index.search(q, r) == brute(values, q, r, set())


def test_wrong_length_refused() -> None:
    with pytest.raises(ValueError, match="multiple of 8"):
        HammingIndex(5)
    with pytest.raises(ValueError, match="expected 32 bytes"):
        HammingIndex(32).add(b"\0" * 8)
