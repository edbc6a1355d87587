"""The fingerprint set a node computes for every image, from one luminance array.

The global hashes are taken of the picture's frame (mattes trimmed, scanner skew undone, see
``frame``), on one 128x128 exact area-average grid of that frame:

* ``dct256`` v2 — the 256-bit DCT hash (``dct``) of the frame and its seven other
  dihedral variants (rotations by 90/180/270 degrees, mirror images) from the same DCT:
  8 x 32 bytes, upright first. Stored copies are indexed by the upright hash; a new
  copy is looked up with all eight, which finds rotated and mirrored copies.
* ``dct64`` v2 — 64-bit hashes of frequencies 1..8 only, of the frame and of the whole
  picture before trimming (2 x 8 bytes): less detail, but far steadier under local edits
  (watermarks, overlays, grain) and small misalignment.

and the local ones of the whole picture (after undoing skew, before trimming: whether a flat
strip at an edge is trimmed depends on where a crop cut it):

* ``kp64`` v1 — keypoints with 64-bit hashes of their patches (``points``): a crop, however
  it was cut, shares keypoints with the picture it was cut from, at positions that say where.

Low-frequency hashes use the same quantisation and median rule as ``dct256``; each is
computed as ``D8 @ A_rows @ G @ A_cols.T @ D8.T`` where ``A`` averages the grid into 64 cells
exactly and ``D8`` holds rows 1..8 of the orthonormal 64-point DCT-II.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from . import dct, points
from .frame import Frame, flat_edges, frame
from .information import LOW_INFORMATION_THRESHOLD, band_energy, few_flat_areas
from .points import Points

GRID = 128
LOW_BAND = 8


@dataclass(frozen=True)
class Suite:
    dihedral: tuple[bytes, ...]  # dct256 v2: 8 x 32 bytes, upright first
    low: bytes  # dct64 v2, first part: the frame
    low_whole: bytes  # dct64 v2, second part: the whole picture before trimming
    points: Points  # kp64 v1, of the whole picture
    information: float
    few_flat_areas: bool  # only a few areas of one tone and their edges (``information.few_flat_areas``)
    content_fraction: float
    skew_degrees: float
    frame_shape: tuple[int, int]  # (height, width) of the frame in the input array's pixels
    #: (top, bottom, left, right) flat runs at the whole picture's edges (``frame.flat_edges``)
    flat_edges: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)

    @property
    def low_information(self) -> bool:
        return self.information < LOW_INFORMATION_THRESHOLD or self.few_flat_areas


@lru_cache(maxsize=256)
def area_matrix(n_out: int, n_in: int, lo: float = 0.0, hi: float | None = None) -> np.ndarray:
    """n_out x n_in matrix averaging the source interval [lo, hi) into n_out equal cells."""
    hi = float(n_in) if hi is None else hi
    edges = lo + (hi - lo) * np.arange(n_out + 1, dtype=np.float64) / n_out
    a, b = edges[:-1, None], edges[1:, None]
    r = np.arange(n_in, dtype=np.float64)[None, :]
    overlap = np.clip(np.minimum(b, r + 1.0) - np.maximum(a, r), 0.0, None)
    out = overlap / (b - a)
    out.setflags(write=False)
    return out


@lru_cache(maxsize=1)
def _low_rows() -> np.ndarray:
    k = np.arange(1, LOW_BAND + 1, dtype=np.float64)[:, None]
    n = np.arange(dct.GRID, dtype=np.float64)[None, :]
    return np.sqrt(2.0 / dct.GRID) * np.cos(np.pi * k * (2.0 * n + 1.0) / (2.0 * dct.GRID))


@lru_cache(maxsize=64)
def _window_rows(lo: float, hi: float) -> np.ndarray:
    """D8 @ A for one window extent over the 128-cell grid axis (8 x 128)."""
    return _low_rows() @ area_matrix(dct.GRID, GRID, lo * GRID, hi * GRID)


def _quantise(block: np.ndarray, grid_max: float) -> np.ndarray:
    floor = dct.GRID * grid_max * 2.0**-12
    scale = max(float(np.max(np.abs(block))), floor)
    if scale == 0.0:
        return np.zeros(block.shape, dtype=np.int64)
    return np.rint(block * (2.0**20 / scale)).astype(np.int64)


def grid(gray: np.ndarray) -> np.ndarray:
    """Exact area average of a 2-D array onto GRID x GRID cells (float64)."""
    h, w = gray.shape
    return area_matrix(GRID, h) @ np.asarray(gray, dtype=np.float64) @ area_matrix(GRID, w).T


def low_hash(g: np.ndarray, top: float, bottom: float, left: float, right: float, grid_max: float) -> bytes:
    """The 64-bit low-frequency hash of one window of the grid."""
    block = _window_rows(top, bottom) @ g @ _window_rows(left, right).T
    return _block_bits(block[None], grid_max)[0]


def _block_bits(blocks: np.ndarray, grid_max: float) -> list[bytes]:
    """Quantise each (8 x 8) block as ``_quantise`` does and threshold it at its median."""
    floor = dct.GRID * grid_max * 2.0**-12
    scale = np.maximum(np.abs(blocks).max(axis=(1, 2)), floor)
    safe = np.where(scale == 0.0, 1.0, scale)
    q = np.rint(blocks * (2.0**20 / safe)[:, None, None]).astype(np.int64)
    q[scale == 0.0] = 0
    flat = q.reshape(q.shape[0], -1)
    bits = flat > np.median(flat, axis=1)[:, None]
    return [b.tobytes() for b in np.packbits(bits, axis=1)]


def _grid_and_max(gray: np.ndarray) -> tuple[np.ndarray, float]:
    g = grid(gray)
    return g, float(np.max(np.abs(g)))


def compute(gray: np.ndarray) -> Suite:
    """Every fingerprint of one image from its luminance array (0-255 scale, >= 32x32)."""
    fr: Frame = frame(gray)
    g = grid(fr.gray)
    grid_max = float(np.max(np.abs(g)))
    # 128 -> 64 cells by 2x2 means is the exact area average dct256 defines.
    g64 = g.reshape(dct.GRID, 2, dct.GRID, 2).mean(axis=(1, 3))
    rows = dct._dct_rows()
    band = rows @ g64 @ rows.T
    info = band_energy(band)
    q = _quantise(band, float(np.max(np.abs(g64))))
    dihedral = tuple(dct.bits_from_block(b) for b in dct.dihedral_blocks(q))
    low = low_hash(g, 0.0, 1.0, 0.0, 1.0, grid_max)
    if fr.whole is fr.gray:
        low_whole = low
    else:
        gw, wmax = _grid_and_max(fr.whole)
        low_whole = low_hash(gw, 0.0, 1.0, 0.0, 1.0, wmax)
    return Suite(dihedral, low, low_whole, points.compute(fr.whole), info, few_flat_areas(g), fr.content_fraction,
                 fr.skew_degrees, fr.gray.shape, flat_edges(fr.whole))
