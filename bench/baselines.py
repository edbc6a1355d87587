"""The two reference methods, as people use them, and all-pairs matching with numpy.

imagehash.phash: 64-bit DCT hash of ``Image.open(path)``, match at Hamming distance <= 10.
PDQ (Meta's, via the pdqhash package): 256-bit hash; a pair matches when the smallest
distance between one image's 8 dihedral hashes and the other's upright hash is <= 31
(taken both ways round, so the result does not depend on the order of the two images).
Hashes are cached by file name, size and mtime: the corpus files only change with it.
"""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from bench.common import CACHE, log

PHASH_THRESHOLD = 10
PDQ_THRESHOLD = 31
_CACHE_FILE = CACHE / "baselines.npz"


def pdq_available() -> str | None:
    """None when pdqhash imports, else why not."""
    try:
        import pdqhash  # noqa: F401
    except Exception as exc:
        return f"pdqhash unavailable: {exc}"
    return None


def _register_heif() -> None:
    try:
        import pillow_heif

        pillow_heif.register_heif_opener()
    except ImportError:
        pass


def _hash_one(path: str) -> tuple[int, np.ndarray, int, bool]:
    """(phash as uint64, PDQ dihedral hashes as 8x4 uint64, PDQ quality, ok)."""
    import imagehash

    _register_heif()
    try:
        with Image.open(path) as im:
            im.load()
            ph = imagehash.phash(im)
            ph_int = int.from_bytes(np.packbits(ph.hash.ravel()).tobytes(), "big")
            dihedral = np.zeros((8, 4), dtype=np.uint64)
            quality = -1
            try:
                import pdqhash

                rgb = np.ascontiguousarray(np.asarray(im.convert("RGB")))
                hashes, qualities = pdqhash.compute_dihedral(rgb)
                dihedral = np.stack([np.packbits(np.asarray(h, dtype=np.uint8)).view(">u8").astype(np.uint64) for h in hashes])
                quality = int(np.ravel(qualities)[0])
            except ImportError:
                pass
        return ph_int, dihedral, quality, True
    except (OSError, ValueError, Image.DecompressionBombError):
        # An unreadable file never matches; the report lists it.
        return 0, np.zeros((8, 4), dtype=np.uint64), -1, False


@dataclass
class Hashes:
    phash: np.ndarray  # (N,) uint64
    pdq: np.ndarray  # (N, 8, 4) uint64, dihedral variant 0 is upright
    pdq_quality: np.ndarray  # (N,) int
    ok: np.ndarray  # (N,) bool: the file decoded
    seconds: float  # time spent hashing files that were not cached


def compute(paths: list[Path], workers: int = 2) -> Hashes:
    import time

    keys = [f"{p}|{p.stat().st_size}|{p.stat().st_mtime_ns}" for p in paths]
    cached: dict[str, int] = {}
    old = None
    if _CACHE_FILE.exists():
        old = np.load(_CACHE_FILE, allow_pickle=False)
        cached = {k: i for i, k in enumerate(old["keys"].tolist())}
    n = len(paths)
    ph = np.zeros(n, dtype=np.uint64)
    pdq = np.zeros((n, 8, 4), dtype=np.uint64)
    q = np.full(n, -1, dtype=np.int64)
    ok = np.zeros(n, dtype=bool)
    todo = []
    for i, k in enumerate(keys):
        j = cached.get(k)
        if j is not None and old is not None:
            ph[i], pdq[i], q[i], ok[i] = old["phash"][j], old["pdq"][j], old["quality"][j], old["ok"][j]
        else:
            todo.append(i)
    t0 = time.monotonic()
    if todo:
        log(f"baselines: hashing {len(todo)} files (phash + PDQ), {len(paths) - len(todo)} cached")
        with ProcessPoolExecutor(max_workers=workers) as pool:
            for done, (i, res) in enumerate(zip(todo, pool.map(_hash_one, [str(paths[i]) for i in todo], chunksize=16)), 1):
                ph[i], pdq[i], q[i], ok[i] = np.uint64(res[0]), res[1], res[2], res[3]
                if done % 1000 == 0:
                    log(f"baselines: {done}/{len(todo)}")
        _CACHE_FILE.parent.mkdir(parents=True, exist_ok=True)
        np.savez(_CACHE_FILE, keys=np.array(keys), phash=ph, pdq=pdq, quality=q, ok=ok)
    else:
        log(f"baselines: all {n} hashes cached")
    return Hashes(ph, pdq, q, ok, time.monotonic() - t0)


def _pairs_from_mask(mask: np.ndarray, row0: int) -> np.ndarray:
    r, c = np.nonzero(mask)
    return np.stack([r + row0, c], axis=1)


def phash_pairs(h: Hashes, block: int = 1024) -> np.ndarray:
    """All (i, j), i < j, with phash Hamming distance <= PHASH_THRESHOLD."""
    n = len(h.phash)
    out = []
    cols = np.arange(n)
    for r0 in range(0, n, block):
        d = np.bitwise_count(h.phash[r0:r0 + block, None] ^ h.phash[None, :])
        rows = np.arange(r0, min(n, r0 + block))[:, None]
        mask = (d <= PHASH_THRESHOLD) & (cols[None, :] > rows) & h.ok[r0:r0 + block, None] & h.ok[None, :]
        out.append(_pairs_from_mask(mask, r0))
    return np.concatenate(out) if out else np.zeros((0, 2), dtype=np.int64)


def pdq_min_distance(h: Hashes, block: int = 48) -> np.ndarray:
    """(N, N) uint16: min over i's 8 dihedral hashes of the distance to j's upright hash."""
    n = len(h.pdq)
    upright = h.pdq[:, 0, :]  # (N, 4)
    out = np.empty((n, n), dtype=np.uint16)
    for r0 in range(0, n, block):
        x = h.pdq[r0:r0 + block, :, None, :] ^ upright[None, None, :, :]  # (B, 8, N, 4)
        d = np.bitwise_count(x).sum(axis=-1, dtype=np.uint16)  # (B, 8, N)
        out[r0:r0 + block] = d.min(axis=1)
    return out


def pdq_pairs(h: Hashes) -> np.ndarray:
    d = pdq_min_distance(h)
    m = np.minimum(d, d.T) <= PDQ_THRESHOLD
    m &= h.ok[:, None] & h.ok[None, :]
    return np.argwhere(np.triu(m, k=1))
