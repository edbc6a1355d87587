"""The Hamming index answers exactly what brute force answers, on random and real fingerprints."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dedup.fingerprint.distance import hamming
from dedup.index import HammingIndex


def brute(values: list[bytes], q: bytes, radius: int, removed: set[int], bands: int | None = None) -> list[tuple[int, int]]:
    return [(i, hamming(v, q)) for i, v in enumerate(values)
            if i not in removed and hamming(v, q) <= radius and (bands is None or same_band(v, q, bands))]


def same_band(a: bytes, b: bytes, bands: int) -> bool:
    """Equal on one of ``bands`` bands of bits, widest first, counted from the lowest bit of
    each 8-byte word read little-endian (how the index cuts a row)."""
    bits = 8 * len(a)
    x = int.from_bytes(a, "little") ^ int.from_bytes(b, "little")
    at = 0
    for i in range(bands):
        w = bits // bands + (1 if i < bits % bands else 0)
        if not (x >> at) & ((1 << w) - 1):
            return True
        at += w
    return False


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from([8, 32]), st.integers(0, 96), st.integers(1, 3000))
def test_search_equals_brute_force_on_random_values(seed: int, nbytes: int, radius: int, n: int) -> None:
    check_against_brute_force(seed, nbytes, radius, n, None)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from([(8, 3), (8, 4), (8, 5), (8, 64), (32, 11), (32, 16)]),
       st.integers(0, 96), st.integers(1, 3000))
def test_banded_search_equals_brute_force_on_random_values(seed: int, shape: tuple[int, int], radius: int,
                                                            n: int) -> None:
    """A banded index answers exactly the rows within the radius that share a band with the
    query, through growth, sealing, merging and removal."""
    check_against_brute_force(seed, shape[0], radius, n, shape[1])


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from([3, 4, 5, 8, 64]), st.integers(0, 70), st.integers(1, 3000))
def test_sketched_search_equals_brute_force_on_random_values(seed: int, bands: int, radius: int, n: int) -> None:
    """Sketches beside the tables set candidates aside without losing one, through growth,
    sealing, merging and removal, at radii below and above their 32 bits."""
    check_against_brute_force(seed, 8, radius, n, bands, sketched=True)


def check_against_brute_force(seed: int, nbytes: int, radius: int, n: int, bands: int | None,
                              sketched: bool = False) -> None:
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
    # Small capacity and tail, so growth, sealed segments and their merging are all exercised.
    index = HammingIndex(nbytes, capacity=7, radius=radius % 40, tail=int(rng.integers(1, 300)), bands=bands,
                         sketched=sketched)
    k = 0
    while k < n:
        step = int(rng.integers(1, 400))
        if step == 1:
            index.add(values[k])
        else:
            index.add_many(np.frombuffer(b"".join(values[k:k + step]), dtype=np.uint8).reshape(-1, nbytes))
        k += step
    removed = set(rng.choice(n, size=min(n, 5), replace=False).tolist())
    for r in removed:
        index.remove(r)
    r = min(radius, nbytes * 8)
    for q in (values[0], base[3].tobytes(), rng.integers(0, 256, nbytes, dtype=np.uint8).tobytes()):
        assert index.search(q, r) == brute(values, q, r, removed, bands)
        assert index.search_many([q, values[-1]], r) == {i for i, _ in brute(values, q, r, removed, bands)} | {
            i for i, _ in brute(values, values[-1], r, removed, bands)}


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
            # Keypoint hashes as the candidate index holds them: 8 bytes, big-endian.
            hashes += list(s.dihedral) + [s.low, s.low_whole] + [int(v).to_bytes(8, "big") for v in s.points.hashes]
    wide = [h for h in hashes if len(h) == 32]
    narrow = [h for h in hashes if len(h) == 8]
    assert len(narrow) > 1000  # mostly keypoints
    for values, nbytes, radii, bands, sketched in ((wide, 32, (0, 16, 32, 64, 100), None, False),
                                                   (narrow, 8, (0, 4, 6, 8, 10, 12, 20), None, False),
                                                   (narrow, 8, (0, 6, 8, 12), 4, False),
                                                   (narrow, 8, (0, 6, 8, 12, 40), 4, True)):
        index = HammingIndex(nbytes, bands=bands, sketched=sketched)
        for v in values:
            index.add(v)
        for r in radii:
            for q in values[::7]:
                assert index.search(q, r) == brute(values, q, r, set(), bands)


def test_wrong_length_refused() -> None:
    with pytest.raises(ValueError, match="multiple of 8"):
        HammingIndex(5)
    with pytest.raises(ValueError, match="expected 32 bytes"):
        HammingIndex(32).add(b"\0" * 8)
    for bands in (0, 2, 65):  # none; 32-bit tables; more bands than bits
        with pytest.raises(ValueError, match="bands of a 64-bit row"):
            HammingIndex(8, bands=bands)
    for nbytes, bands in ((32, 16), (8, None)):
        with pytest.raises(ValueError, match="banded indexes of 8-byte rows only"):
            HammingIndex(nbytes, bands=bands, sketched=True)


def test_sketches_are_rebuilt_on_loading_not_saved() -> None:
    """A saved state has the same arrays with or without sketches, and either kind of
    index loads it and answers as the saved one did."""
    rng = np.random.default_rng(9)
    data = rng.integers(0, 256, (5000, 8), dtype=np.uint8)
    data[2500:] = data[:2500] ^ (rng.random((2500, 8)) < 0.04).astype(np.uint8)  # near pairs
    sketched = HammingIndex(8, bands=4, tail=256, sketched=True)
    sketched.add_many(data)
    plain = HammingIndex(8, bands=4, tail=256)
    plain.add_many(data)
    assert sketched.state().keys() == plain.state().keys()
    assert sketched.memory_bytes() - plain.memory_bytes() == 4 * 4 * sum(
        s.size for s in sketched._segments)  # 4 bytes per row and table
    for saved in (sketched, plain):
        for loaded in (HammingIndex(8, bands=4, tail=256, sketched=True), HammingIndex(8, bands=4, tail=256)):
            loaded.load_state(saved.state())
            assert loaded.memory_bytes() == (sketched if loaded.sketched else plain).memory_bytes()
            for q in data[::50]:
                assert loaded.search(q.tobytes(), 10) == saved.search(q.tobytes(), 10)


def test_banded_state_loads_only_into_an_index_with_the_same_bands() -> None:
    rng = np.random.default_rng(5)
    data = rng.integers(0, 256, (3000, 8), dtype=np.uint8)
    saved = HammingIndex(8, bands=4, tail=256)
    saved.add_many(data)
    loaded = HammingIndex(8, bands=4, tail=256)
    loaded.load_state(saved.state())
    for q in data[::50]:
        assert loaded.search(q.tobytes(), 10) == saved.search(q.tobytes(), 10)
    with pytest.raises(ValueError, match="not tabled by this index's bands"):
        HammingIndex(8, bands=5, tail=256).load_state(saved.state())
    with pytest.raises(ValueError, match="not tabled by this index's bands"):
        HammingIndex(8, bands=4, tail=256).load_state(_exact_state(data))


def _exact_state(data: np.ndarray) -> dict:
    exact = HammingIndex(8, radius=8, tail=256)
    exact.add_many(data)
    return exact.state()


def brute_batch(data: np.ndarray, queries: np.ndarray, radius: int, alive: np.ndarray):
    d = np.bitwise_count(data.view(np.uint64)[None, :, :] ^ queries.view(np.uint64)[:, None, :]).sum(axis=2)
    qi, ri = np.nonzero((d <= radius) & alive[None, :])
    return qi, ri, d[qi, ri]


@pytest.mark.parametrize("nbytes,radius", [(32, 32), (32, 0), (32, 80), (8, 6), (8, 2), (8, 0), (8, 20)])
def test_batch_search_equals_brute_force_across_segments(nbytes: int, radius: int) -> None:
    """Clustered rows in enough batches to seal and merge many segments; every pair within
    the radius is found once, none beyond it, removed rows never."""
    rng = np.random.default_rng(nbytes * 1000 + radius)
    centres = rng.integers(0, 256, (40, nbytes), dtype=np.uint8)
    n = 12_000
    data = centres[rng.integers(0, 40, n)]
    data ^= np.packbits(rng.random((n, nbytes * 8)) < 0.05, axis=1)
    index = HammingIndex(nbytes, radius=radius, tail=512)
    for lo in range(0, n, 700):
        index.add_many(data[lo:lo + 700])
    assert len(index._segments) >= 2  # the layout under test, not only the linear tail
    alive = np.ones(n, dtype=bool)
    for row in rng.choice(n, 300, replace=False):
        index.remove(int(row))
        alive[row] = False
    queries = np.concatenate([data[rng.choice(n, 150)], rng.integers(0, 256, (20, nbytes), dtype=np.uint8)])
    got = index.search_batch(queries, radius)
    want = brute_batch(data, queries, radius, alive)
    for g, w in zip(got, want):
        assert np.array_equal(g, w)
    assert index.live == n - 300


def test_one_segment_from_a_bulk_load_equals_brute_force() -> None:
    """A restart loads every row at once: one segment, the same answers."""
    rng = np.random.default_rng(5)
    data = rng.integers(0, 256, (20_000, 8), dtype=np.uint8)
    data[10_000:] = data[:10_000] ^ np.packbits(rng.random((10_000, 64)) < 0.04, axis=1)
    index = HammingIndex(8, radius=6)
    index.add_many(data)
    assert len(index._segments) == 1 and index._sealed == len(data)
    got = index.search_batch(data[::50], 6)
    want = brute_batch(data, data[::50], 6, np.ones(len(data), dtype=bool))
    for g, w in zip(got, want):
        assert np.array_equal(g, w)


def test_a_merge_that_fails_leaves_its_rows_searchable(monkeypatch) -> None:
    """A merge drops the two segments' tables before building the merged ones (so the two
    never coexist); if building fails (out of memory), the rows are scanned as the tail
    until the next seal tables them again, and no answer loses a row."""
    from dedup import index_kernels

    rng = np.random.default_rng(11)
    data = rng.integers(0, 256, (3000, 8), dtype=np.uint8)
    data[1500:] = data[:1500] ^ (rng.random((1500, 8)) < 0.03).astype(np.uint8)
    values = [bytes(v) for v in data]
    index = HammingIndex(8, bands=4, tail=256, sketched=True)
    index.add_many(data[:2048])  # one segment of 2,048 rows
    real, calls = index_kernels.table, []

    def failing(*args):
        calls.append(args[1:3])
        if len(calls) == 5:  # the merge's first table, after the new segment's four
            raise MemoryError
        return real(*args)

    monkeypatch.setattr(index_kernels, "table", failing)
    with pytest.raises(MemoryError):
        index.add_many(data[2048:2560])  # 512 rows seal, then merge into the 2,048
    assert index._sealed == 0 and not index._segments  # all 2,560 rows are now the tail
    for q in values[::37]:
        assert index.search(q, 10) == brute(values[:2560], q, 10, set(), 4)
    monkeypatch.setattr(index_kernels, "table", real)
    index.add_many(data[2560:])
    assert index._sealed == 3000
    for q in values[::37]:
        assert index.search(q, 10) == brute(values, q, 10, set(), 4)
