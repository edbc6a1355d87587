"""The ``dct256`` perceptual hash, version 1: a PDQ-style DCT hash defined here.

Every party (nodes, coordinator, auditors) must compute bit-identical values, so
each step is fixed exactly:

1. Input: a 2-D luminance array (any float or integer dtype, at least 32x32),
   conventionally on a 0-255 scale. It is converted to float64.
2. Area downsampling to 64x64. Output cell ``i`` on an axis of length ``n``
   averages the source interval ``[i*n/64, (i+1)*n/64)``, weighting each source
   pixel by the exact length of its overlap (integer arithmetic in units of
   1/64 pixel). The weights are mirror-symmetric, so downsampling commutes with
   flips, rotations and transposes (which the dihedral shortcut relies on).
3. Orthonormal 2-D DCT-II of the 64x64 grid in matrix form, ``D @ X @ D.T``.
4. The 16x16 block of frequencies 1..16 on each axis. The DC row and column are
   skipped, as PDQ does: they describe mean brightness along one axis and carry
   almost nothing that tells photographs apart.
5. The block ``C`` is quantised to integers, computed exactly as
   ``q = numpy.rint(C * (2**20 / S))`` (round half to even) with
   ``S = max(P, 64 * M * 2**-12)``, where ``P`` is the largest magnitude in
   ``C`` and ``M`` the largest magnitude in the 64x64 grid (``64 * M`` bounds
   any coefficient; if ``S`` is 0 all ``q`` are 0). Floating-point noise (BLAS
   summation order, platforms, the dihedral shortcut versus real rotation) then
   does not flip bits in practice, and an image with no energy in the block (flat, linear
   ramps) hashes to all zeros, which :func:`dedup.fingerprint.kinds.validate`
   rejects, instead of to amplified noise.
6. Bit ``k = 16*u + v`` (``u`` vertical frequency index, ``v`` horizontal, both
   0-based within the block, i.e. frequencies ``u+1`` and ``v+1``) is 1 when the
   quantised coefficient is strictly greater than the median of the 256
   quantised values (the mean of the 128th and 129th smallest).
7. Bits are packed big-endian: bit ``k`` is bit ``7 - k % 8`` of byte ``k // 8``
   (``numpy.packbits`` order), giving 32 bytes.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

ALGORITHM = "dct256"
VERSION = 1
GRID = 64
BLOCK = 16
MIN_SIDE = 32
HASH_BYTES = BLOCK * BLOCK // 8
_QUANT_STEPS = float(2**20)
_FLOOR_FRACTION = 2.0**-12

#: Order of the variants returned by :func:`dihedral_hashes`, as numpy
#: operations on the image array (``rot90`` is numpy's counter-clockwise turn).
DIHEDRAL_ORDER: tuple[str, ...] = (
    "identity",    # a
    "rot90",       # np.rot90(a, 1)
    "rot180",      # np.rot90(a, 2)
    "rot270",      # np.rot90(a, 3), i.e. 90 degrees clockwise
    "flip_lr",     # a[:, ::-1]  (mirror)
    "flip_ud",     # a[::-1, :]
    "transpose",   # a.T
    "transverse",  # np.rot90(a, 2).T  (anti-diagonal transpose)
)


@lru_cache(maxsize=64)
def _area_weights(n: int) -> np.ndarray:
    """64 x n matrix averaging exact 1/64-pixel overlaps of each output cell."""
    cell_lo = np.arange(GRID, dtype=np.int64)[:, None] * n
    pix_lo = np.arange(n, dtype=np.int64)[None, :] * GRID
    overlap = np.minimum(cell_lo + n, pix_lo + GRID) - np.maximum(cell_lo, pix_lo)
    weights = np.clip(overlap, 0, None).astype(np.float64) / n
    weights.setflags(write=False)
    return weights


@lru_cache(maxsize=1)
def _dct_rows() -> np.ndarray:
    """Rows 1..16 of the orthonormal 64-point DCT-II matrix."""
    k = np.arange(1, BLOCK + 1, dtype=np.float64)[:, None]
    n = np.arange(GRID, dtype=np.float64)[None, :]
    rows = np.sqrt(2.0 / GRID) * np.cos(np.pi * k * (2.0 * n + 1.0) / (2.0 * GRID))
    rows.setflags(write=False)
    return rows


def downsample(gray: np.ndarray) -> np.ndarray:
    """Area-average a 2-D array to 64x64 (float64), exactly as step 2 defines."""
    a = np.asarray(gray, dtype=np.float64)
    if a.ndim != 2:
        raise ValueError(f"expected a 2-D luminance array, got shape {a.shape}")
    h, w = a.shape
    if h < MIN_SIDE or w < MIN_SIDE:
        raise ValueError(f"image is {w}x{h}; dct256 needs at least {MIN_SIDE}x{MIN_SIDE}")
    if not np.all(np.isfinite(a)):
        raise ValueError("luminance array contains NaN or infinity")
    return _area_weights(h) @ a @ _area_weights(w).T


def _band(grid: np.ndarray) -> np.ndarray:
    d = _dct_rows()
    return d @ grid @ d.T


def frequency_band(gray: np.ndarray) -> np.ndarray:
    """Unquantised float64 16x16 DCT coefficients (frequencies 1..16) of ``gray``."""
    return _band(downsample(gray))


def dct_block(gray: np.ndarray) -> np.ndarray:
    """Quantised 16x16 DCT block (int64) that the hash bits are taken from."""
    grid = downsample(gray)
    block = _band(grid)
    floor = GRID * float(np.max(np.abs(grid))) * _FLOOR_FRACTION
    scale = max(float(np.max(np.abs(block))), floor)
    if scale == 0.0:
        return np.zeros((BLOCK, BLOCK), dtype=np.int64)
    return np.rint(block * (_QUANT_STEPS / scale)).astype(np.int64)


def bits_from_block(block: np.ndarray) -> bytes:
    """Threshold a 16x16 block against its median and pack (steps 6 and 7)."""
    b = np.asarray(block)
    if b.shape != (BLOCK, BLOCK):
        raise ValueError(f"expected a {BLOCK}x{BLOCK} block, got {b.shape}")
    bits = (b > np.median(b)).reshape(-1)
    return np.packbits(bits).tobytes()


def dct256(gray: np.ndarray) -> bytes:
    """32-byte ``dct256`` v1 hash of a luminance array."""
    return bits_from_block(dct_block(gray))


def _sign(parity_rows: bool, parity_cols: bool) -> np.ndarray:
    # Frequency f = index + 1; mirroring an axis negates odd frequencies on it.
    odd = (np.arange(BLOCK) + 1) % 2 == 1
    rows = np.where(odd & parity_rows, -1, 1)[:, None]
    cols = np.where(odd & parity_cols, -1, 1)[None, :]
    return rows * cols


def dihedral_blocks(block: np.ndarray) -> tuple[np.ndarray, ...]:
    """The 8 dihedral variants of a DCT block, in :data:`DIHEDRAL_ORDER`.

    Flipping an axis negates the odd frequencies along it and transposing the
    image transposes the block, so one DCT yields all eight orientations.
    """
    c = np.asarray(block)
    t = c.T
    return (
        c,
        _sign(True, False) * t,   # rot90 = flip_ud(transpose)
        _sign(True, True) * c,    # rot180
        _sign(False, True) * t,   # rot270 = flip_lr(transpose)
        _sign(False, True) * c,   # flip_lr
        _sign(True, False) * c,   # flip_ud
        t,                        # transpose
        _sign(True, True) * t,    # transverse
    )


def dihedral_hashes(gray: np.ndarray) -> tuple[bytes, ...]:
    """Hashes of all 8 rotations/mirrors of ``gray`` from one DCT, in DIHEDRAL_ORDER."""
    return tuple(bits_from_block(b) for b in dihedral_blocks(dct_block(gray)))
