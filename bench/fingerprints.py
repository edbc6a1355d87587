"""Realistic fingerprint rows for the coordinator benchmarks: real hashes, their variants, random fill.

``realistic(n, kind, seed)`` returns ``n`` rows of one fingerprint kind as an (n, nbytes)
uint8 array. The mix, for every ``n``:

* **10 % real** — hashes the project computes from the accuracy corpus (``bench.dataset``:
  200 originals, their 33 variant classes, the must-not-match sets; low-information images
  have no fingerprints and give none). For ``dct256`` the pool is every image's 8 dihedral
  256-bit hashes (upright and the 7 rotated or mirrored ones); for ``dct64`` both ``dct64``
  hashes (frame and whole picture); for ``kp64`` every keypoint hash (up to 64 per image). Rows are drawn without replacement; only
  when 10 % of ``n`` exceeds the pool is it drawn again (exact repeats, as when several
  members hold the same file).
* **40 % perturbed** — a copy of one of the real rows chosen above (uniformly) with ``k``
  distinct bits flipped, so it lies at distance exactly ``k`` from that row: a quarter are
  *near copies*, ``k`` uniform in 0..40 for 256-bit (0..8 for dct64, 0..10 for keypoints),
  around the match radius (32 / 6 / 8); three quarters are *far*, ``k`` uniform in 41..128
  (9..32, 11..32): related-looking rows that must not match.
* **50 % random** — uniform random bits.

The rows are then shuffled (seeded), so every batch of a run holds all three parts. The same
``(n, kind, seed)`` always gives the same rows (for a given corpus and fingerprint code).

The real hashes are computed once (``read_image`` on every corpus file, 2 worker processes)
and cached in ``bench/.cache/fingerprints/`` under a key of the fingerprint code, the image
reader and the corpus generator, so they are recomputed only when one of those changes.
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from bench.common import CACHE, ROOT, log, sources_digest

FP_CACHE = CACHE / "fingerprints"
#: Bytes per row of each kind.
KINDS = {"dct256": 32, "dct64": 8, "kp64": 8}
REAL_SHARE = 0.10
PERTURBED_SHARE = 0.40  # the rest (0.50) is uniform random
NEAR_SHARE = 0.25  # of the perturbed rows
#: (near flips max, far flips min, far flips max) per kind.
FLIPS = {"dct256": (40, 41, 128), "dct64": (8, 9, 32), "kp64": (10, 11, 32)}
WORKERS = 2


def _code_key() -> str:
    """Digest of the fingerprint code, the image reader, this module and the corpus generator."""
    import hashlib

    from bench import dataset

    files = sorted((ROOT / "dedup" / "fingerprint").glob("*.py")) + [ROOT / "node" / "imaging.py"]
    gen = hashlib.sha256(dataset._generator_key().encode()).hexdigest()[:8]
    return sources_digest(*files, Path(__file__)) + gen


def _read(path: str):
    """Worker: (dihedral 8x32, low 2x8, keypoint hashes n x 8) bytes of one file, or None."""
    from dedup.fingerprint.wire import from_wire
    from dedup.node.imaging import ImageError, read_image

    try:
        facts = read_image(Path(path))
    except ImageError:
        return None
    h = from_wire(facts.fingerprints)
    if h is None:  # low-information: no fingerprints
        return None
    return b"".join(h.dihedral), h.low + h.low_whole, h.keypoints.hashes.astype(">u8").tobytes()


def real() -> dict[str, np.ndarray]:
    """The corpus's real hashes: ``dihedral`` (K, 8, 32), ``low`` (K, 2, 8) uint8, one row per
    image that has fingerprints, in corpus order, and ``points`` (P, 8), every keypoint hash.
    Cached."""
    key = _code_key()
    path = FP_CACHE / f"real-{key}.npz"
    if path.exists():
        with np.load(path) as z:
            return {k: z[k] for k in z.files}
    from bench import dataset

    corpus = dataset.build()
    paths = [str(corpus.path(e)) for e in corpus.entries]
    log(f"fingerprints: computing real hashes of {len(paths)} corpus files ({WORKERS} processes)")
    dihedral, low, points = [], [], []
    with ProcessPoolExecutor(max_workers=WORKERS) as pool:
        for i, got in enumerate(pool.map(_read, paths, chunksize=16)):
            if got is not None:
                dihedral.append(got[0])
                low.append(got[1])
                points.append(got[2])
            if (i + 1) % 1000 == 0:
                log(f"fingerprints: {i + 1}/{len(paths)}")
    k = len(dihedral)
    out = {
        "dihedral": np.frombuffer(b"".join(dihedral), np.uint8).reshape(k, 8, 32),
        "low": np.frombuffer(b"".join(low), np.uint8).reshape(k, 2, 8),
        "points": np.frombuffer(b"".join(points), np.uint8).reshape(-1, 8),
    }
    FP_CACHE.mkdir(parents=True, exist_ok=True)
    for old in FP_CACHE.glob("real-*.npz"):
        old.unlink()
    tmp = path.with_name(path.stem + f".tmp{os.getpid()}.npz")
    np.savez(tmp, **out)
    tmp.replace(path)
    log(f"fingerprints: {k} of {len(paths)} files have fingerprints; cached in {path.relative_to(ROOT)}")
    return out


def pool(kind: str) -> np.ndarray:
    """Every real row of ``kind`` (see the module docstring), as (rows, nbytes) uint8."""
    r = real()
    if kind == "dct256":
        return np.ascontiguousarray(r["dihedral"].reshape(-1, 32))
    if kind == "dct64":
        return np.ascontiguousarray(r["low"].reshape(-1, 8))
    if kind == "kp64":
        return np.ascontiguousarray(r["points"])
    raise ValueError(f"unknown kind {kind!r}; expected one of {sorted(KINDS)}")


def _flip(rows: np.ndarray, flips: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Each row with ``flips[i]`` distinct random bits inverted (distance exactly flips[i])."""
    n, nbytes = rows.shape
    bits = nbytes * 8
    # k distinct positions per row: the first k of a random permutation of the bit positions.
    order = np.argsort(rng.random((n, bits)), axis=1)
    mask = np.arange(bits)[None, :] < flips[:, None]  # which permutation slots are used
    flip_bits = np.zeros((n, bits), dtype=np.uint8)
    np.put_along_axis(flip_bits, order, mask.astype(np.uint8), axis=1)
    return rows ^ np.packbits(flip_bits, axis=1)


def realistic(n: int, kind: str, seed: int) -> np.ndarray:
    """``n`` rows of ``kind`` ("dct256": 32 bytes, "dct64" and "kp64": 8 bytes), drawn from real images
    and their variants plus random fill, in the mix the module docstring states."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; expected one of {sorted(KINDS)}")
    nbytes = KINDS[kind]
    rng = np.random.default_rng([seed, nbytes])
    src = pool(kind)
    n_real = round(n * REAL_SHARE)
    n_pert = round(n * PERTURBED_SHARE)
    n_rand = n - n_real - n_pert
    picks = np.concatenate([rng.permutation(len(src)) for _ in range(-(-n_real // len(src)))])[:n_real]
    real_rows = src[picks]
    parts = [real_rows]
    if n_pert:
        if n_real == 0:
            real_rows = src[rng.integers(0, len(src), 1)]
        parents = real_rows[rng.integers(0, len(real_rows), n_pert)]
        near_max, far_min, far_max = FLIPS[kind]
        near = rng.random(n_pert) < NEAR_SHARE
        flips = np.where(near, rng.integers(0, near_max + 1, n_pert), rng.integers(far_min, far_max + 1, n_pert))
        step = 100_000  # bounds the (rows, bits) temporaries
        parts += [_flip(parents[i:i + step], flips[i:i + step], rng) for i in range(0, n_pert, step)]
    parts.append(rng.integers(0, 256, (n_rand, nbytes), dtype=np.uint8))
    out = np.concatenate(parts)
    return np.ascontiguousarray(out[rng.permutation(n)])


def cached(n: int, kind: str, seed: int) -> Path:
    """``realistic(n, kind, seed)`` saved as .npy in the cache (made once); its path."""
    path = FP_CACHE / f"rows-{kind}-{n}-{seed}-{_code_key()}.npy"
    if not path.exists():
        rows = realistic(n, kind, seed)
        FP_CACHE.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.stem + f".tmp{os.getpid()}.npy")
        np.save(tmp, rows)
        tmp.replace(path)
    return path
